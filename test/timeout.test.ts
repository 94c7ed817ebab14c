import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Exit, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { PoolError, WorkPool } from "../src/index.ts"
import { settle } from "./helpers.ts"
import { shiftedClock } from "./fixtures/shiftedClock.ts"

/**
 * A clock that is the test clock plus the milliseconds `spend` adds: a synchronous job spends them,
 * as a real clock moves while such a job runs (the test clock cannot move during synchronous code).
 */
const spendingClock = Effect.map(shiftedClock(), ({ clock, shift }) => ({ clock, spend: shift }))

describe("timeouts", () => {
  it.effect("the pool's timeout counts from the start and interrupts the job", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, timeout: "5 seconds" })
      const finalized = yield* Deferred.make<void>()
      const blocker = yield* pool.submit(Effect.sleep("3 seconds"))
      const fiber = yield* Effect.forkChild(
        Effect.flip(pool.run(Effect.never.pipe(Effect.ensuring(Deferred.succeed(finalized, undefined)))))
      )
      yield* settle
      // 3 s in the queue do not count
      yield* TestClock.adjust("3 seconds")
      yield* blocker.await
      yield* TestClock.adjust("4999 millis")
      assert.isUndefined(fiber.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      const error = yield* Fiber.join(fiber)
      assert.instanceOf(error, PoolError.JobTimeout)
      assert.deepStrictEqual(error, new PoolError.JobTimeout({ jobId: 2, millis: 5000, phase: "running" }))
      assert.isTrue(yield* Deferred.isDone(finalized))
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.timedOut, stats.running], [1, 0])
      // the slot is free
      assert.strictEqual(yield* pool.run(Effect.succeed("next")), "next")
    }))

  it.effect("a job can override the pool's timeout, or have none", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 3, timeout: "1 second" })
      const short = yield* pool.submit(Effect.sleep("10 seconds"), { timeout: "100 millis" })
      const long = yield* pool.submit(Effect.as(Effect.sleep("10 seconds"), "long"), { timeout: "1 minute" })
      const none = yield* pool.submit(Effect.as(Effect.sleep("10 seconds"), "none"), { timeout: Infinity })
      yield* TestClock.adjust("100 millis")
      assert.strictEqual(yield* short.status, "timedOut")
      const error = yield* Effect.flip(short.await)
      assert.deepStrictEqual([error._tag, (error as PoolError.JobTimeout).millis], ["JobTimeout", 100])
      yield* TestClock.adjust("10 seconds")
      assert.deepStrictEqual([yield* long.await, yield* none.await], ["long", "none"])
    }))

  it.effect("a job that finishes before its deadline is not affected", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2, timeout: "1 second" })
      const results = yield* Effect.forkChild(
        pool.runAll(Array.from({ length: 6 }, (_, i) => Effect.as(Effect.sleep("999 millis"), i)))
      )
      for (let i = 0; i < 3; i++) yield* TestClock.adjust("999 millis")
      assert.deepStrictEqual(yield* Fiber.join(results), [0, 1, 2, 3, 4, 5])
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual((yield* pool.stats).timedOut, 0)
    }))

  it.effect("the queue timeout counts from submission and removes a job that waited too long", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, queueTimeout: "2 seconds" })
      const blocker = yield* pool.submit(Effect.sleep("5 seconds"))
      let ran = false
      const waiting = yield* pool.submit(Effect.sync(() => (ran = true)))
      const quick = yield* pool.submit(Effect.succeed("quick"), { queueTimeout: "1 minute" })
      yield* TestClock.adjust("2 seconds")
      const error = yield* Effect.flip(waiting.await)
      assert.deepStrictEqual(error, new PoolError.JobTimeout({ jobId: waiting.id, millis: 2000, phase: "queued" }))
      // the running job is not affected by the queue timeout
      assert.strictEqual(yield* blocker.status, "running")
      yield* TestClock.adjust("3 seconds")
      assert.strictEqual(yield* quick.await, "quick")
      assert.isFalse(ran)
    }))

  it.effect("the queue timeout also covers a submitter suspended by backpressure", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, capacity: 0, shutdownTimeout: 0 })
      yield* pool.submit(Effect.sleep("1 hour"))
      const fiber = yield* Effect.forkChild(Effect.flip(pool.run(Effect.void, { queueTimeout: "1 second" })))
      yield* settle
      assert.strictEqual((yield* pool.stats).waiting, 1)
      yield* TestClock.adjust("1 second")
      const error = yield* Fiber.join(fiber)
      assert.strictEqual(error._tag, "JobTimeout")
      assert.strictEqual((yield* pool.stats).waiting, 0)
    }))

  it.effect("a submit suspended by backpressure resumes with a handle when its queue timeout passes", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, capacity: 0, shutdownTimeout: 0 })
      yield* pool.submit(Effect.sleep("1 hour"))
      const submitter = yield* Effect.forkChild(pool.submit(Effect.void, { queueTimeout: "1 second" }))
      yield* settle
      assert.isUndefined(submitter.pollUnsafe())
      yield* TestClock.adjust("1 second")
      const handle = yield* Fiber.join(submitter)
      assert.strictEqual(yield* handle.status, "timedOut")
      assert.strictEqual((yield* Effect.flip(handle.await))._tag, "JobTimeout")
    }))

  it.effect("many deadlines, added out of order, fire in order", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 10 })
      const handles = yield* Effect.forEach([7, 3, 9, 1, 5], (s) => pool.submit(Effect.never, { timeout: `${s} seconds` }))
      const timedOut: Array<number> = []
      for (let t = 1; t <= 9; t++) {
        yield* TestClock.adjust("1 second")
        for (const [i, h] of handles.entries()) {
          if ((yield* h.status) === "timedOut" && !timedOut.includes(i)) timedOut.push(i)
        }
      }
      assert.deepStrictEqual(timedOut, [3, 1, 4, 0, 2])
    }))

  it.effect("a job started after a long synchronous one counts its wait and timeout from its own start", () =>
    Effect.gen(function*() {
      const { clock, spend } = yield* spendingClock
      const pool = yield* WorkPool.make({ concurrency: 2, paused: true, timeout: "50 millis", shutdownTimeout: 0 }).pipe(
        Effect.provideService(Clock.Clock, clock)
      )
      const long = yield* pool.submit(Effect.sync(() => spend(100)))
      const next = yield* pool.submit(Effect.never)
      // one dispatch starts both: the second starts 100 ms after the first did
      yield* pool.resume
      yield* settle
      assert.strictEqual(yield* long.status, "succeeded")
      assert.strictEqual(yield* next.status, "running")
      assert.strictEqual((yield* pool.stats).meanWaitMillis, 50)
      yield* TestClock.adjust("49 millis")
      assert.strictEqual(yield* next.status, "running")
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* next.status, "timedOut")
    }))

  it.effect("a job whose queue deadline passed while a synchronous job ran is timed out, not started, when the worker frees", () =>
    Effect.gen(function*() {
      // the pool's clock moves while the synchronous job runs, as a real one does; the deadline's
      // timer cannot fire meanwhile (the event loop is busy), so the worker frees before it does
      const { clock, spend } = yield* spendingClock
      const pool = yield* WorkPool.make({ concurrency: 1, paused: true, queueTimeout: "100 millis" }).pipe(
        Effect.provideService(Clock.Clock, clock)
      )
      yield* pool.submit(Effect.sync(() => spend(150)))
      let ran = false
      const late = yield* pool.submit(Effect.sync(() => (ran = true)))
      const patient = yield* pool.submit(Effect.succeed("patient"), { queueTimeout: "1 second" })
      yield* pool.resume
      yield* settle
      assert.deepStrictEqual(
        yield* Effect.exit(late.await),
        Exit.fail(new PoolError.JobTimeout({ jobId: late.id, millis: 100, phase: "queued" }))
      )
      assert.isFalse(ran)
      assert.strictEqual(yield* patient.await, "patient")
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.succeeded, stats.timedOut], [2, 1])
    }))

  it.effect("a job whose queue deadline comes as a worker frees is timed out, not started", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, queueTimeout: "100 millis" })
      // its sleep is registered before the queued job's deadline: both wake at 100 ms, the sleep first
      yield* pool.submit(Effect.sleep("100 millis"), { queueTimeout: Infinity })
      let ran = false
      const due = yield* pool.submit(Effect.sync(() => (ran = true)))
      yield* TestClock.adjust("100 millis")
      assert.deepStrictEqual(
        yield* Effect.exit(due.await),
        Exit.fail(new PoolError.JobTimeout({ jobId: due.id, millis: 100, phase: "queued" }))
      )
      assert.isFalse(ran)
    }))

  it.effect("a timeout that is not a positive duration is rejected", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const zero = yield* Effect.flip(pool.run(Effect.void, { timeout: 0 }))
      const nan = yield* Effect.flip(pool.run(Effect.void, { queueTimeout: Number.NaN }))
      assert.deepStrictEqual([zero._tag, nan._tag], ["InvalidJobOptions", "InvalidJobOptions"])
      assert.strictEqual(zero._tag === "InvalidJobOptions" && zero.field, "timeout")
      assert.strictEqual(nan._tag === "InvalidJobOptions" && nan.field, "queueTimeout")
    }))
})
