/**
 * A thread pool starts no task past its queue deadline, as a `WorkPool` starts no job past it
 * (timeout.test.ts): not even one offered ahead to a busy thread (see internal/prefetch.ts), which
 * the thread starts on its own the moment it frees, with no word from the main thread. A thread that
 * frees after the deadline gives the offer back, whatever the main thread is doing; one that took it
 * in time runs it.
 *
 * `Hold` runs until the test sets its release slot; `Mark` counts its starts. Blocking the main
 * thread (`Atomics.wait`) shows what a thread does with no help from it: the pool's timer cannot
 * take the offer back meanwhile.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Exit } from "effect"
import { PoolError } from "../src/index.ts"
import { AnswerThenBlock, Hold, Mark } from "./fixtures/tasks.ts"
import { addsUp, blockPast, blockUntil, makeReleasingPool as makePool } from "./fixtures/pool.ts"
import { settle, waitFor } from "./helpers.ts"
import { shiftedClock } from "./fixtures/shiftedClock.ts"

/**
 * The live clock plus the milliseconds `spend` adds: the pool's time passes a deadline at once,
 * while its timer, a real one, is still far off (as when the event loop is late).
 */
const spendingClock = Effect.map(shiftedClock(), ({ clock, shift }) => ({ clock, spend: shift }))

const handoverWorker = new URL("./fixtures/handover-worker.ts", import.meta.url)

describe("ThreadPool queue deadlines", () => {
  it.live("an offer past its queue deadline when its thread's slot frees is not confirmed: it ends timed out, unstarted", () =>
    Effect.gen(function*() {
      const { clock, spend } = yield* spendingClock
      const { counters, pool } = yield* makePool({ threads: 1, worker: handoverWorker }).pipe(
        Effect.provideService(Clock.Clock, clock)
      )
      const a = yield* pool.submit(AnswerThenBlock, { blocked: 6, release: 1, unblock: 7 })
      yield* Effect.addFinalizer(() => Effect.sync(() => Atomics.store(counters, 7, 1)))
      yield* settle
      // in one synchronous step, so that the main thread reads nothing in between: the thread
      // answers and blocks, the next task is offered to it (unread: it is blocked), and the pool's
      // time passes that task's queue deadline
      const late = yield* Effect.sync(() => {
        Atomics.store(counters, 1, 1)
        assert.isTrue(blockUntil(counters, 6, 10_000), "the thread answered and blocks")
        const late = Effect.runSync(pool.submit(Mark, { mark: 2, millis: 0 }, { queueTimeout: "10 seconds" }))
        assert.strictEqual(Effect.runSync(late.status), "queued")
        spend(20_000)
        return late
      })
      // its slot frees now, with the offer unclaimed: the main thread decides
      assert.strictEqual(yield* a.await, 6)
      Atomics.store(counters, 7, 1)
      assert.deepStrictEqual(
        yield* Effect.exit(late.await),
        Exit.fail(new PoolError.JobTimeout({ jobId: late.id, millis: 10_000, phase: "queued" }))
      )
      // the thread has read the offer by the time it answers a task sent after it
      assert.strictEqual(yield* pool.run(Mark, { mark: 4, millis: 0 }), 4)
      assert.strictEqual(Atomics.load(counters, 2), 0, "the late offer never started")
      const s = yield* pool.stats
      assert.deepStrictEqual([s.succeeded, s.timedOut, s.queued, s.running], [2, 1, 0, 0])
      assert.isTrue(addsUp(s))
    }))

  it.live("a thread that frees after an offer's queue deadline gives it back: it ends timed out, unstarted", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 1 })
      const a = yield* pool.submit(Hold, { mark: 0, release: 1 })
      yield* waitFor(Effect.sync(() => Atomics.load(counters, 0) === 1), "the first task started")
      const submitted = performance.now()
      const late = yield* pool.submit(Mark, { mark: 2, millis: 0 }, { queueTimeout: "100 millis" })
      // no deadline: its thread starts it right after, which tells that the thread has decided on `late`
      const next = yield* pool.submit(Mark, { mark: 4, millis: 0 })
      yield* settle
      const s = yield* pool.stats
      assert.deepStrictEqual([s.running, s.queued], [1, 2], "both are offered to the busy thread")
      const started = yield* Effect.sync(() => {
        // the main thread does nothing from here until the thread has started `next`: its timer
        // cannot take `late` back, and only the thread can keep it from starting
        blockPast(submitted + 150)
        Atomics.store(counters, 1, 1)
        return blockUntil(counters, 4, 10_000)
      })
      assert.isTrue(started, "the thread started the task offered after the late one")
      assert.strictEqual(Atomics.load(counters, 2), 0, "the late offer did not start")
      assert.deepStrictEqual(
        yield* Effect.exit(late.await),
        Exit.fail(new PoolError.JobTimeout({ jobId: late.id, millis: 100, phase: "queued" }))
      )
      assert.strictEqual(yield* a.await, 0)
      assert.strictEqual(yield* next.await, 4)
      // the thread has read every offer by the time it answers a task sent after them
      assert.strictEqual(yield* pool.run(Mark, { mark: 6, millis: 0 }), 6)
      assert.strictEqual(Atomics.load(counters, 2), 0, "the late offer never started")
      const after = yield* pool.stats
      assert.deepStrictEqual([after.succeeded, after.timedOut, after.queued, after.running], [3, 1, 0, 0])
      assert.isTrue(addsUp(after))
    }))

  it.live("an offer its thread started in time runs, though the main thread hears of it after the deadline", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 1 })
      const a = yield* pool.submit(Hold, { mark: 0, release: 1 })
      yield* waitFor(Effect.sync(() => Atomics.load(counters, 0) === 1), "the first task started")
      const submitted = performance.now()
      const offered = yield* pool.submit(Mark, { mark: 2, millis: 0 }, { queueTimeout: "2 seconds" })
      yield* settle
      const started = yield* Effect.sync(() => {
        Atomics.store(counters, 1, 1)
        const started = blockUntil(counters, 2, 10_000)
        // the main thread hears of the start only after the deadline
        blockPast(submitted + 2100)
        return started
      })
      assert.isTrue(started, "the thread started the offer in time")
      assert.strictEqual(yield* offered.await, 2)
      assert.strictEqual(yield* a.await, 0)
      const s = yield* pool.stats
      assert.deepStrictEqual([s.succeeded, s.timedOut], [2, 0])
    }))
})
