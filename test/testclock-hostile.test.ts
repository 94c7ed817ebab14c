/**
 * Hostile: an app testing its pools and durable jobs under TestClock, as the README's "Testing with
 * TestClock" says: `TestClock.adjust` in one step, no real sleep.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Schedule, Schema, Scope } from "effect"
import { TestClock } from "effect/testing"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as DurableError from "../src/DurableError.ts"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as PoolError from "../src/PoolError.ts"
import * as Task from "../src/Task.ts"
import * as ThreadPool from "../src/ThreadPool.ts"
import * as WorkPool from "../src/WorkPool.ts"
import { Nap, Spin } from "./fixtures/durable-thread-tasks.ts"
import { waitFor } from "./helpers.ts"

const Sleep = Task.make("Sleep", { payload: Schema.Number, success: Schema.Number })
const sqliteFile = () => join(mkdtempSync(join(tmpdir(), "wp-testclock-")), "jobs.db")

const stores: ReadonlyArray<readonly [string, () => Layer.Layer<JobStore.JobStore, unknown>]> = [
  ["memory", () => JobStore.memory()],
  ["sqlite", () => JobStore.sqlite({ filename: sqliteFile() })]
]

for (const [name, store] of stores) {
  describe(`TestClock on the ${name} store`, () => {
    it.effect("T1 a job that sleeps 5 minutes (lease 30 s): one adjust of 5 minutes; it succeeds at its first attempt", () =>
      Effect.gen(function*() {
        let runs = 0
        yield* JobQueue.consume({
          handlers: [Task.handle(Sleep, (ms) => Effect.as(Effect.sync(() => runs++).pipe(Effect.andThen(Effect.sleep(ms))), ms))],
          concurrency: 1,
          shutdownTimeout: 0
        })
        const job = yield* JobQueue.enqueue(Sleep, 300_000)
        const fiber = yield* Effect.forkChild(job.await)
        // no yield
        // no yields
        yield* TestClock.adjust("5 minutes")
        assert.strictEqual(yield* Fiber.join(fiber), 300_000)
        const info = yield* JobQueue.status(job.id)
        assert.deepStrictEqual([info.state, info.attempts, runs], ["succeeded", 1, 1])
      }).pipe(Effect.scoped, Effect.provide(store())), { timeout: 20_000 })

    it.effect("T2 a delay of 10 minutes: not before, at once after one adjust", () =>
      Effect.gen(function*() {
        yield* JobQueue.consume({ handlers: [Task.handle(Sleep, (ms) => Effect.succeed(ms))], concurrency: 1 })
        const job = yield* JobQueue.enqueue(Sleep, 1, { delay: "10 minutes" })
        // no yields
        yield* TestClock.adjust("9 minutes")
        // no yields
        assert.strictEqual((yield* JobQueue.status(job.id)).state, "delayed")
        yield* TestClock.adjust("1 minute")
        assert.strictEqual(yield* job.await, 1)
      }).pipe(Effect.scoped, Effect.provide(store())), { timeout: 20_000 })

    it.effect("T3 retries with backoff of 1 minute: one adjust per retry", () =>
      Effect.gen(function*() {
        let runs = 0
        yield* JobQueue.consume({
          handlers: [Task.handle(Sleep, (ms) => Effect.suspend(() => ++runs < 3 ? Effect.die("not yet") : Effect.succeed(ms)))],
          concurrency: 1,
          retry: Schedule.spaced("1 minute")
        })
        const job = yield* JobQueue.enqueue(Sleep, 7, { maxAttempts: 5 })
        const fiber = yield* Effect.forkChild(job.await)
        // no yields
        yield* TestClock.adjust("1 minute")
        // no yields
        yield* TestClock.adjust("1 minute")
        assert.strictEqual(yield* Fiber.join(fiber), 7)
        assert.strictEqual(runs, 3)
      }).pipe(Effect.scoped, Effect.provide(store())), { timeout: 20_000 })

    it.effect("T4 repeat every minute: 3 adjusts of a minute, 3 jobs", () =>
      Effect.gen(function*() {
        let runs = 0
        yield* JobQueue.consume({ handlers: [Task.handle(Sleep, (ms) => Effect.sync(() => (runs++, ms)))], concurrency: 1 })
        yield* JobQueue.repeat("every-minute", Sleep, 1, { cron: "* * * * *" })
        for (let i = 0; i < 3; i++) {
          // no yields
          yield* TestClock.adjust("1 minute")
        }
        // no yields
        assert.strictEqual(runs, 3)
      }).pipe(Effect.scoped, Effect.provide(store())), { timeout: 20_000 })

    it.effect("T5 a per-job timeout of 1 minute: AttemptTimeout after one adjust", () =>
      Effect.gen(function*() {
        yield* JobQueue.consume({ handlers: [Task.handle(Sleep, () => Effect.never)], concurrency: 1, shutdownTimeout: 0 })
        const job = yield* JobQueue.enqueue(Sleep, 1, { timeout: "1 minute", maxAttempts: 1 })
        const fiber = yield* Effect.forkChild(Effect.flip(job.await))
        // no yields
        yield* TestClock.adjust("1 minute")
        const error = yield* Fiber.join(fiber)
        assert.strictEqual((error as { _tag: string })._tag, "AttemptTimeout")
      }).pipe(Effect.scoped, Effect.provide(store())), { timeout: 20_000 })
  })
}

describe("TestClock on a WorkPool", () => {
  it.effect("W1 README's example", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, timeout: "1 second" })
      const fiber = yield* Effect.forkChild(Effect.flip(pool.run(Effect.never)))
      yield* TestClock.adjust("1 second")
      assert.strictEqual((yield* Fiber.join(fiber))._tag, "JobTimeout")
    }))
})

// --- thread pools under TestClock. A thread is real: how long it takes to stop a cancelled task is
// real time, which no adjust of a TestClock shortens or lengthens. A `cancelGrace` waited on the
// TestClock (the submitter's clock) broke both ways:
// - one adjust past a task's timeout and the grace (the README's way: adjust once) ended the grace
//   within that adjust, before the thread could answer the cancel: the thread of a task that yields
//   (and stops in a millisecond) was terminated, failing every other task on it with WorkerCrashed
//   (a durable job among them had its attempt counted);
// - a task that does not yield, left running at the test's end: the close waited for a TestClock
//   nobody moves any more, so the test's scope never closed, even with `shutdownTimeout: 0` or
//   `shutdownNow` (the README's advice for a test that leaves jobs running).

const threadWorker = new URL("./fixtures/durable-thread-worker.ts", import.meta.url)
const makeThreads = (options: Partial<ThreadPool.Options> = {}) =>
  Effect.gen(function*() {
    const counters = new SharedArrayBuffer(16 * 4)
    const pool = yield* ThreadPool.make({ worker: threadWorker, threads: 1, workerData: { counters }, ...options })
    return { pool, counters: new Int32Array(counters) }
  })
const until = <E>(check: Effect.Effect<boolean, E, JobStore.JobStore>, what: string) =>
  Effect.flatMap(Effect.context<JobStore.JobStore>(), (context) => waitFor(Effect.orDie(Effect.provide(check, context)), what))

/** Closes `scope` in the background and waits, in real time, until the close has ended. */
const closesWithin = (scope: Scope.Closeable, what: string) =>
  Effect.gen(function*() {
    let closed = false
    yield* Effect.forkDetach(Effect.ensuring(Scope.close(scope, Exit.void), Effect.sync(() => void (closed = true))))
    yield* waitFor(Effect.sync(() => closed), what, { within: "20 seconds" })
  })

describe("TestClock on a ThreadPool: cancelGrace is real time", () => {
  it.effect("one adjust past a yielding task's timeout and its cancelGrace: the task is interrupted on its thread, not terminated with it; another task on that thread goes on", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makeThreads({ tasksPerThread: 2, cancelGrace: "30 seconds" })
      const bystander = yield* pool.submit(Nap, { millis: 500, mark: 1 })
      const timed = yield* pool.submit(Nap, { millis: 3_600_000, mark: 2 }, { timeout: "1 minute" })
      yield* waitFor(pool.stats, "both tasks run", { until: (s) => s.running === 2 })
      yield* TestClock.adjust("1 hour")
      assert.instanceOf(yield* Effect.flip(timed.await), PoolError.JobTimeout)
      assert.deepStrictEqual(yield* Effect.exit(bystander.await), Exit.succeed(500), "the bystander's thread was not terminated")
      assert.strictEqual(Atomics.load(counters, 2), 1, "the timed-out task was interrupted on its thread")
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.effect("the same with durable jobs on the thread pool: the bystander job succeeds at its first attempt", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeThreads({ tasksPerThread: 2, cancelGrace: "30 seconds" })
      yield* JobQueue.consume({ threadPool: pool, tasks: [Nap], retry: { times: 3 }, shutdownTimeout: 0 })
      const bystander = yield* JobQueue.enqueue(Nap, { millis: 500, mark: 1 })
      const timed = yield* JobQueue.enqueue(Nap, { millis: 3_600_000, mark: 2 }, { timeout: "1 minute", maxAttempts: 1 })
      yield* until(Effect.map(JobQueue.stats("default"), (s) => s.running === 2), "both jobs run")
      yield* waitFor(pool.stats, "both tasks run on the thread", { until: (s) => s.running === 2 })
      yield* TestClock.adjust("1 hour")
      assert.instanceOf(yield* Effect.flip(timed.await), DurableError.AttemptTimeout)
      assert.strictEqual(yield* bystander.await, 500)
      assert.strictEqual((yield* JobQueue.status(bystander.id)).attempts, 1, "the bystander's attempt did not crash")
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory())), { timeout: 30_000 })

  it.effect("a task that never yields, left running at the test's end (shutdownTimeout 0): the close ends, its thread terminated after cancelGrace in real time", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const { pool } = yield* makeThreads({ shutdownTimeout: 0, cancelGrace: "200 millis" }).pipe(Scope.provide(scope))
      yield* Effect.forkChild(pool.run(Spin, 1))
      yield* waitFor(pool.stats, "the task runs", { until: (s) => s.running === 1 })
      yield* closesWithin(scope, "the pool's scope closed")
      assert.strictEqual(yield* pool.threads, 0)
    }), { timeout: 30_000 })

  it.effect("shutdownNow with a task that never yields ends; so does a durable consumer's close with a thread job that never yields", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeThreads({ cancelGrace: "200 millis" })
      yield* Effect.forkChild(pool.run(Spin, 1))
      yield* waitFor(pool.stats, "the task runs", { until: (s) => s.running === 1 })
      const scope = yield* Scope.make()
      yield* Effect.forkDetach(pool.shutdownNow)
      yield* waitFor(pool.threads, "shutdownNow terminated the thread", { until: (n) => n === 0, within: "20 seconds" })
      yield* Scope.close(scope, Exit.void)

      const store = yield* Layer.build(JobStore.memory())
      const consumerScope = yield* Scope.make()
      const { pool: threads } = yield* makeThreads({ shutdownTimeout: 0, cancelGrace: "200 millis" }).pipe(Scope.provide(consumerScope))
      yield* JobQueue.consume({ threadPool: threads, tasks: [Spin], shutdownTimeout: 0 }).pipe(Scope.provide(consumerScope), Effect.provide(store))
      const job = yield* JobQueue.enqueue(Spin, 1).pipe(Effect.provide(store))
      yield* until(Effect.map(JobQueue.status(job.id), (info) => info.state === "running"), "the job runs").pipe(Effect.provide(store))
      yield* waitFor(threads.stats, "its task runs", { until: (s) => s.running === 1 })
      yield* closesWithin(consumerScope, "the consumer's and the pool's scope closed")
      const info = yield* JobQueue.status(job.id).pipe(Effect.provide(store))
      assert.deepStrictEqual([info.state, info.attempts], ["queued", 0], "given back, not counted")
    }).pipe(Effect.scoped), { timeout: 60_000 })
})

describe("TestClock on a ThreadPool: startTimeout is real time", () => {
  // a thread's start is real work too: on the TestClock, a worker that never reports ready (its
  // layer hangs, say) held `make` for ever in a test that does not move its clock, and one adjust
  // was not enough (each attempt's timer was set after the adjust, once the last one's thread had
  // exited): the test hung instead of failing with WorkerStartFailed
  it.effect("a worker that never reports ready: make fails with WorkerStartFailed after 3 attempts of startTimeout, the clock unmoved", () =>
    Effect.gen(function*() {
      const making = yield* Effect.forkChild(Effect.exit(Effect.scoped(ThreadPool.make({
        worker: new URL("./fixtures/never-ready-worker.ts", import.meta.url),
        threads: 1,
        startTimeout: "300 millis"
      }))))
      yield* waitFor(Effect.sync(() => making.pollUnsafe() !== undefined), "make ended", { within: "20 seconds" })
      const exit = yield* Fiber.join(making)
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
      const failed = (error as { error: PoolError.WorkerStartFailed } | undefined)?.error
      assert.deepStrictEqual([failed?._tag, failed?.attempts], ["WorkerStartFailed", 3])
      assert.include(failed?.reason, "did not report ready within 300 ms")
    }), { timeout: 30_000 })
})
