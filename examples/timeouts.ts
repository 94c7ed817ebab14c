/**
 * Per-job timeouts, and a deadline for waiting in the queue.
 *
 * The Go version gives each job a `context.WithTimeout`, starts the work in yet another goroutine
 * and `select`s between its result and `ctx.Done()`. When the timeout wins, the work goroutine is
 * simply abandoned: it keeps running (and holding whatever it holds) until it finishes by itself.
 *
 * Here the pool owns the deadline. When a job passes it, the awaiter gets a typed `JobTimeout`
 * error at once (saying how long the limit was, and whether the job was running or still waiting in
 * the queue), and the job is interrupted: its finalizers run, so the connection or file it held is
 * released, and then its worker moves on to the next job. Nothing is left running in the dark.
 *
 *  - `timeout` (per pool, overridable per job) counts from the moment the job starts.
 *  - `queueTimeout` counts from submission while the job waits: a job that could not even start in
 *    time is usually not worth starting any more (the user who asked for it has given up).
 *
 * Run: node examples/timeouts.ts
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Duration, Effect } from "effect"
import { type PoolError, WorkPool } from "../src/index.ts"

// A job that takes `millis`. Its finalizer counts interruptions, to show that a timed-out job is
// really stopped and cleaned up, not abandoned.
let interruptedJobs = 0
const work = (millis: number) =>
  Effect.sleep(Duration.millis(millis)).pipe(
    Effect.as(`finished after ${millis} ms`),
    Effect.onInterrupt(() => Effect.sync(() => interruptedJobs++))
  )

// Turns a JobTimeout into a line of text, so the outcomes can be printed side by side. The other
// pool errors stay in the error channel: `catchTag` removes only "JobTimeout" from the type.
const describe = (name: string, job: Effect.Effect<string, PoolError.JobError>) =>
  job.pipe(
    Effect.catchTag("JobTimeout", (e) =>
      Effect.succeed(`timed out while ${e.phase} (limit ${e.millis} ms)`)),
    Effect.map((outcome) => `${name.padEnd(7)} ${outcome}`)
  )

const perJobTimeouts = Effect.gen(function*() {
  yield* Console.log("1. pool timeout 100 ms, overridden per job")
  const pool = yield* WorkPool.make({ concurrency: 4, timeout: "100 millis" })

  const outcomes = yield* Effect.all([
    describe("fast", pool.run(work(20))), // well within the pool's 100 ms
    describe("slow", pool.run(work(300))), // cut at 100 ms
    describe("report", pool.run(work(300), { timeout: "1 second" })), // this job may take longer
    describe("ping", pool.run(work(50), { timeout: "10 millis" })) // and this one much less
  ], { concurrency: "unbounded" })
  for (const line of outcomes) yield* Console.log(`  ${line}`)

  // The timeout is an ordinary typed error, so the usual tools apply, for example a fallback value.
  const price = yield* pool.run(work(500)).pipe(
    Effect.catchTag("JobTimeout", () => Effect.succeed("stale price from the cache"))
  )
  yield* Console.log(`  pricing ${price}`)
})

const queueDeadline = Effect.gen(function*() {
  yield* Console.log("2. one worker, queueTimeout 200 ms")
  // One worker so that jobs have to queue. A job still queued 200 ms after submission is removed
  // from the queue with JobTimeout { phase: "queued" } and never starts.
  const pool = yield* WorkPool.make({ concurrency: 1, queueTimeout: "200 millis" })

  // The margins are wide (100 ms and more) so that the outcomes are the same on a busy machine.
  const outcomes = yield* Effect.all([
    describe("A", pool.run(work(100))), // starts at once
    describe("B", pool.run(work(300))), // starts at ~100 ms: in time
    describe("C", pool.run(work(100))), // would start at ~400 ms: too late
    describe("D", pool.run(work(100), { queueTimeout: "1 second" })) // this one is willing to wait
  ], { concurrency: "unbounded" })
  for (const line of outcomes) yield* Console.log(`  ${line}`)

  const stats = yield* pool.stats
  yield* Console.log(`  pool stats: succeeded ${stats.succeeded}, timedOut ${stats.timedOut}`)
})

const program = Effect.gen(function*() {
  // Each part has its own scope: closing it shuts its pool down and waits for every job to stop.
  yield* Effect.scoped(perJobTimeouts)
  yield* Effect.scoped(queueDeadline)
  // slow, ping and pricing were interrupted at their deadline; C never started, so it had nothing
  // to clean up.
  yield* Console.log(`jobs interrupted at their deadline: ${interruptedJobs}`)
})

NodeRuntime.runMain(program)
