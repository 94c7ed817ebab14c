/**
 * A rate limit on a `ThreadPool` that sends tasks ahead (prefetch.ts): a thread starts a task sent
 * ahead on its own, without the main thread, so no such start could pass the limit's gate. A pool
 * with a limit sends none, and setting one takes back those out that no thread has started.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Hold, Mark } from "./fixtures/tasks.ts"
import { makeReleasingPool as makePool } from "./fixtures/pool.ts"
import { settle, waitFor } from "./helpers.ts"

/** Blocks the main thread until slot `slot` reaches `n` or `millis` pass; whether it got there. */
const blockUntilCount = (counters: Int32Array, slot: number, n: number, millis: number): boolean => {
  const deadline = Date.now() + millis
  for (let seen = Atomics.load(counters, slot); seen < n; seen = Atomics.load(counters, slot)) {
    const left = deadline - Date.now()
    if (left <= 0) return false
    Atomics.wait(counters, slot, seen, Math.min(left, 50))
  }
  return true
}

describe("ThreadPool rate limit with tasks sent ahead", () => {
  it.live("setRateLimit on a pool with tasks sent ahead: no more than the limit start after it, even with no help from the main thread", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 1, capacity: Infinity, shutdownTimeout: 0 })
      const hold = yield* pool.submit(Hold, { mark: 0, release: 1 })
      yield* waitFor(Effect.sync(() => Atomics.load(counters, 0)), "the held task started", { until: (n) => n === 1 })
      // queued behind it: the busy thread is sent the first ones ahead (at least 2)
      const marks = yield* Effect.forEach([1, 2, 3, 4, 5], () => pool.submit(Mark, { mark: 2, millis: 0 }))
      yield* settle
      yield* pool.setRateLimit({ limit: 1, interval: "1 hour" })
      // the held task ends while the main thread is blocked: its thread starts whatever it still
      // holds, on its own (before, the tasks sent ahead: every one of them, past the limit)
      const startedAlone = yield* Effect.sync(() => {
        Atomics.store(counters, 1, 1)
        return blockUntilCount(counters, 2, 2, 1000)
      })
      assert.isFalse(startedAlone, `started with the main thread blocked: ${Atomics.load(counters, 2)}`)
      assert.strictEqual(yield* hold.await, 0)
      const stats = yield* waitFor(pool.stats, "one task started under the limit, the others held", {
        until: (s) => s.succeeded === 2 && s.queued === 4 && s.rateLimited === 1
      })
      assert.strictEqual(stats.running, 0)
      assert.strictEqual(Atomics.load(counters, 2), 1, "one start in the window")
      // a looser limit lets the held ones start
      yield* pool.setRateLimit(undefined)
      assert.deepStrictEqual(yield* Effect.forEach(marks, (mark) => mark.await), [2, 2, 2, 2, 2])
      assert.strictEqual(Atomics.load(counters, 2), 5)
    }), { timeout: 60_000 })
})
