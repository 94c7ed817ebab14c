/**
 * Cancelling everything.
 *
 * In Go, cancellation is cooperative plumbing: a `context.Context` is passed to every worker, each
 * worker `select`s on `ctx.Done()`, and a forgotten check leaks a goroutine that keeps working.
 *
 * In Effect, cancellation is interruption, and it is built in:
 *
 *  1. Interrupt the fiber that is waiting on `pool.runAll(...)`: its queued jobs are removed, its
 *     running jobs are interrupted (their finalizers run), and the call returns only once all of
 *     them have stopped. A timeout on the caller (`Effect.timeout`) works the same way.
 *  2. `pool.shutdownNow` stops a whole pool at once: running jobs are interrupted, and the jobs that
 *     never started are handed back, so they can be run elsewhere or saved for later (like Java's
 *     `ExecutorService.shutdownNow`).
 *
 * Run: node examples/cancellation.ts   (JOBS=40 for more jobs)
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Config, Console, Effect, Fiber, Stream } from "effect"
import { WorkPool } from "../src/index.ts"

// A job that takes a while and has something to clean up. `ensuring` runs whether the job
// finishes, fails or is interrupted, so the counters show exactly what happened to each job.
const counters = { finished: 0, cleanedUp: 0 }
const slowJob = (id: number) =>
  Effect.sleep("50 millis").pipe(
    Effect.tap(() => Effect.sync(() => counters.finished++)),
    Effect.as(id),
    Effect.ensuring(Effect.sync(() => counters.cleanedUp++))
  )

// Waits until the pool's stats satisfy `predicate`, by watching its `changes` stream (no polling).
const waitFor = (pool: WorkPool.WorkPool, predicate: (stats: WorkPool.PoolStats) => boolean) =>
  pool.changes.pipe(Stream.takeUntil(predicate), Stream.runDrain)

const interruptTheCaller = Effect.gen(function*() {
  const jobs = yield* Config.Int("JOBS").pipe(Config.withDefault(20))
  const pool = yield* WorkPool.make({ concurrency: 4 })

  // Run a batch in a background fiber, as if it were the work of one request...
  const batch = yield* Effect.forkChild(pool.runAll(Array.from({ length: jobs }, (_, i) => slowJob(i))))
  // ...and cancel that request once a few jobs are done.
  yield* waitFor(pool, (s) => s.succeeded >= Math.min(4, jobs))
  yield* Fiber.interrupt(batch) // returns once every job of the batch has stopped

  // `ensuring` ran once per job that started, so: started = cleanedUp.
  const stats = yield* pool.stats
  yield* Console.log(`1. interrupted the caller of runAll after ${counters.finished} of ${jobs} jobs had finished`)
  yield* Console.log(`   still running: ${stats.running}, still queued: ${stats.queued}`)
  yield* Console.log(`   interrupted while running: ${counters.cleanedUp - counters.finished}`)
  yield* Console.log(`   removed before they started: ${jobs - counters.cleanedUp}`)
})

const shutdownNowAndSalvage = Effect.gen(function*() {
  const jobs = yield* Config.Int("JOBS").pipe(Config.withDefault(20))
  const pool = yield* WorkPool.make({ concurrency: 2 })

  // `submit` hands back a handle at once; the jobs run under the pool's scope, not ours.
  const handles = yield* Effect.forEach(Array.from({ length: jobs }, (_, i) => i), (i) => pool.submit(slowJob(i)))
  yield* waitFor(pool, (s) => s.succeeded >= Math.min(2, jobs))

  // Stop now: the two running jobs are interrupted, the rest come back unstarted.
  const unstarted = yield* pool.shutdownNow
  yield* Console.log(`2. shutdownNow returned ${unstarted.length} jobs that never started`)

  // Their awaiters learn what happened, with a typed error saying where each job was.
  const outcomes = yield* Effect.forEach(handles, (handle) =>
    handle.await.pipe(
      Effect.as("done"),
      Effect.catchTag("PoolShutdown", (e) => Effect.succeed(`shutdown while ${e.phase}`))
    ))
  const tally = new Map<string, number>()
  for (const outcome of outcomes) tally.set(outcome, (tally.get(outcome) ?? 0) + 1)
  for (const [outcome, n] of tally) yield* Console.log(`   ${n} x ${outcome}`)

  // The pool refuses new work from now on...
  const refused = yield* pool.run(slowJob(-1)).pipe(Effect.flip)
  yield* Console.log(`   a new job is refused: ${refused._tag} (${refused._tag === "PoolShutdown" ? refused.phase : ""})`)

  // ...but the unstarted jobs are plain effects (with their submitter's services already provided),
  // so nothing is lost: run them through a fresh pool.
  const spare = yield* WorkPool.make({ concurrency: 8 })
  const salvaged = yield* spare.runAll(unstarted.map((job) => job.effect))
  yield* Console.log(`   re-ran ${salvaged.length} salvaged jobs on another pool`)
})

const program = Effect.gen(function*() {
  // Each part gets its own scope, so each pool is shut down when its part ends.
  yield* Effect.scoped(interruptTheCaller)
  counters.finished = 0
  counters.cleanedUp = 0
  yield* Effect.scoped(shutdownNowAndSalvage)
  yield* Console.log("all cancelled work stopped, nothing left running")
})

NodeRuntime.runMain(program)
