/**
 * Hostile tests of the queue deadline a task offered to a busy thread carries (see
 * threads-queue-deadline.test.ts and internal/prefetch.ts): the pool's time is its Clock's, so a
 * thread, which can only read real time, must not judge a deadline on a clock that is not the pool's.
 *
 * `Hold` runs until the test sets its release slot; `Mark` counts its starts and records its start
 * order in the slot after its mark.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Hold, Mark } from "./fixtures/tasks.ts"
import { addsUp, makeReleasingPool as makePool } from "./fixtures/pool.ts"
import { settle, waitFor } from "./helpers.ts"

/** Blocks the main thread until `performance.now()` reaches `until`. */
const blockPast = (until: number) => {
  const wait = new Int32Array(new SharedArrayBuffer(4))
  for (let left = until - performance.now(); left > 0; left = until - performance.now()) Atomics.wait(wait, 0, 0, left)
}

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
