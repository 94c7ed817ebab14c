/**
 * Hostile tests of the ThreadPool fixes of cae5617..7816fce: the queue deadline an offer carries to
 * its thread (threads-queue-deadline.test.ts) and shutdownNow's reading of answers already on their
 * way (threads-shutdown-now.test.ts). The pool's time is its Clock's, so a thread, which can only
 * read real time, must not judge a deadline on another clock; a caller's cancel is the caller's,
 * whatever follows it; and under churn each task ends once, as what it did on its thread says.
 *
 * `Hold` runs until the test sets its release slot; `Mark` counts its starts and records its start
 * order in the slot after its mark.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber } from "effect"
import { PoolError } from "../src/index.ts"
import { AnswerThenBlock, Hold, Mark } from "./fixtures/tasks.ts"
import { addsUp, blockPast, blockUntil, makeReleasingPool as makePool } from "./fixtures/pool.ts"
import { prng, settle, waitFor } from "./helpers.ts"

const handoverWorker = new URL("./fixtures/handover-worker.ts", import.meta.url)

describe("ThreadPool queue deadlines, hostile", () => {
  it.effect("under a TestClock, real time passing an offer's queue timeout neither ends it nor lets a later task overtake it", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 1 })
      const first = yield* pool.submit(Hold, { mark: 0, release: 1 })
      yield* waitFor(Effect.sync(() => Atomics.load(counters, 0) === 1), "the first task started")
      const a = yield* pool.submit(Mark, { mark: 2, millis: 0 }, { queueTimeout: "50 millis" })
      const b = yield* pool.submit(Mark, { mark: 4, millis: 0 })
      yield* settle
      assert.deepStrictEqual((yield* pool.stats).queued, 2, "both are offered to the busy thread")
      // 100 ms of real time, none of the pool's: no deadline has passed for the pool
      yield* Effect.sync(() => blockPast(performance.now() + 100))
      Atomics.store(counters, 1, 1)
      assert.strictEqual(yield* first.await, 0)
      assert.strictEqual(yield* a.await, 2)
      assert.strictEqual(yield* b.await, 4)
      assert.isBelow(Atomics.load(counters, 3), Atomics.load(counters, 5), "the task submitted first started first")
      const s = yield* pool.stats
      assert.deepStrictEqual([s.succeeded, s.timedOut], [3, 0])
      assert.isTrue(addsUp(s))
    }))
})

describe("ThreadPool shutdownNow, hostile", () => {
  it.live("a caller's cancel sent before shutdownNow keeps its interruption, though the task's answer was on its way", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 1, worker: handoverWorker })
      yield* Effect.addFinalizer(() => Effect.sync(() => Atomics.store(counters, 7, 1)))
      const task = yield* pool.submit(AnswerThenBlock, { blocked: 6, release: 1, unblock: 7 })
      yield* settle
      const shutdown = yield* Effect.sync(() => {
        Atomics.store(counters, 1, 1)
        // the thread has answered and is blocked: it reads the cancel only after its answer is here
        assert.isTrue(blockUntil(counters, 6, 10_000), "the thread answered and blocks")
        Effect.runFork(task.interrupt)
        const shutdown = Effect.runFork(pool.shutdownNow)
        Atomics.store(counters, 7, 1)
        return shutdown
      })
      assert.deepStrictEqual(yield* Fiber.join(shutdown), [])
      // the caller decided about its job first: interrupted, which an immediate shutdown reports as PoolShutdown
      assert.deepStrictEqual(yield* Effect.exit(task.await), Exit.fail(new PoolError.PoolShutdown({ phase: "running" })))
      const s = yield* pool.stats
      assert.deepStrictEqual([s.succeeded, s.interrupted], [0, 1])
      assert.isTrue(addsUp(s))
    }))
})

describe("ThreadPool queue deadlines under churn, hostile", () => {
  it.live("tiny queue timeouts on offers, a main thread that stalls: each task ends once, and every one that ran succeeded", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 2, tasksPerThread: 2 })
      const random = prng(8)
      const handles = []
      for (let i = 0; i < 1500; i++) {
        const queueTimeout = random() < 0.2 ? undefined : 1 + Math.floor(random() * 20)
        handles.push(
          yield* pool.submit(Mark, { mark: 2, millis: Math.floor(random() * 3) }, {
            priority: Math.floor(random() * 3),
            ...(queueTimeout === undefined ? {} : { queueTimeout })
          })
        )
        // the main thread now and then too busy to take offers back or hear answers
        if (random() < 0.02) yield* Effect.sync(() => blockPast(performance.now() + random() * 15))
        if (random() < 0.1) yield* Effect.yieldNow
      }
      const exits = yield* Effect.forEach(handles, (handle) => Effect.exit(handle.await))
      let succeeded = 0
      let timedOut = 0
      for (const exit of exits) {
        if (Exit.isSuccess(exit)) succeeded++
        else {
          const error = Cause.squash(exit.cause)
          assert.isTrue(error instanceof PoolError.JobTimeout && error.phase === "queued", String(error))
          timedOut++
        }
      }
      assert.strictEqual(Atomics.load(counters, 2), succeeded, "the tasks that started are the ones that succeeded")
      const s = yield* pool.stats
      assert.deepStrictEqual([s.succeeded, s.timedOut, s.queued, s.running], [succeeded, timedOut, 0, 0])
      assert.isTrue(addsUp(s))
      assert.isAbove(timedOut, 0)
      assert.isAbove(succeeded, 0)
    }), 60_000)
})

describe("ThreadPool shutdownNow under churn, hostile", () => {
  it.live("offers, cancels, queue timeouts and a stalled main thread, then shutdownNow: a task that started ends as it did, one that did not never runs", () =>
    Effect.gen(function*() {
      // a thread terminated for a late answer would lose what its tasks did: on a loaded machine, not here
      const { counters, pool } = yield* makePool({ threads: 2, tasksPerThread: 2, cancelGrace: "30 seconds" })
      const random = prng(12)
      // mark 2: ends as it starts (it cannot be stopped half way); mark 4: runs 2 ms, and may be cancelled
      const quick: Array<{ readonly id: number; readonly await: Effect.Effect<number, unknown> }> = []
      const slow: Array<{ readonly interrupt: Effect.Effect<void> }> = []
      for (let i = 0; i < 600; i++) {
        const queueTimeout = random() < 0.5 ? undefined : 1 + Math.floor(random() * 20)
        const options = { priority: Math.floor(random() * 3), ...(queueTimeout === undefined ? {} : { queueTimeout }) }
        if (random() < 0.6) quick.push(yield* pool.submit(Mark, { mark: 2, millis: 0 }, options))
        else slow.push(yield* pool.submit(Mark, { mark: 4, millis: 2 }, options))
        if (random() < 0.05 && slow.length > 0) yield* Effect.forkDetach(slow[Math.floor(random() * slow.length)]!.interrupt)
        if (random() < 0.1) yield* Effect.yieldNow
      }
      // the threads run their offers unheard of, then the shutdown
      const shutdown = yield* Effect.sync(() => {
        blockPast(performance.now() + 10)
        return Effect.runFork(pool.shutdownNow)
      })
      const unstarted = new Set((yield* Fiber.join(shutdown)).map((task) => task.id))
      let succeeded = 0
      for (const handle of quick) {
        const exit = yield* Effect.exit(handle.await)
        if (Exit.isSuccess(exit)) {
          succeeded++
          continue
        }
        const error = Cause.squash(exit.cause)
        const queued = error instanceof PoolError.PoolShutdown && error.phase === "queued"
        assert.isTrue(
          queued || (error instanceof PoolError.JobTimeout && error.phase === "queued") ||
            (error instanceof PoolError.PoolShutdown && error.phase === "running"),
          String(error)
        )
        assert.strictEqual(unstarted.has(handle.id), queued, "returned as unstarted exactly when it ends so")
      }
      assert.strictEqual(Atomics.load(counters, 2), succeeded, "the quick tasks that started are the ones that succeeded")
      const s = yield* pool.stats
      assert.deepStrictEqual([s.queued, s.running], [0, 0])
      assert.isTrue(addsUp(s))
    }), 60_000)
})
