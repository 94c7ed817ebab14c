/**
 * What the scheduler's deadlines cost when many fall due at one instant, counted, not timed: the
 * reads of its deadline heaps' items (a spy on each heap's array), for k jobs and for 8k. A heap
 * costs at most O(log k) reads a deadline (O(1) for equal deadlines, as here), so 8k jobs cost 8 to
 * 11 times k's (8.0 and 8.1 measured); a walk of the deadlines due on every start inside the timer's
 * loop, as `waitingDeadlineDue` once did, costs O(k) a deadline: 63 times (put back, it failed the
 * first test; a scan of `waitingDeadlines` in its place failed the second, 50 times). The count is
 * the same on any machine at any load: under `TestClock` every deadline falls due at the one
 * `adjust`. The CPU time of the same runs is not: at 1,000 timeouts it varied sevenfold between runs
 * on a loaded 2-core machine (12-87 ms), at 16,000 fivefold, too much for a bound between 8 and 64.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import { TestClock } from "effect/testing"
import { WorkPool } from "../src/index.ts"
import { schedulerOf } from "../src/internal/scheduler.ts"

/** Counts the reads of a heap's items by index: every heap operation and every walk goes through them. */
const spy = (heap: { items: Array<unknown> }) => {
  const counter = { reads: 0 }
  heap.items = new Proxy(heap.items, {
    get(target, key, receiver) {
      if (typeof key === "string" && key.length > 0 && key.charCodeAt(0) >= 48 && key.charCodeAt(0) <= 57) counter.reads++
      return Reflect.get(target, key, receiver)
    }
  })
  return counter
}

/** The scheduler's deadline heaps, spied on: every deadline is in `deadlines`, some in `waitingDeadlines` too. */
const spied = (pool: WorkPool.WorkPool) => {
  const scheduler = schedulerOf(pool) as unknown as Record<"deadlines" | "waitingDeadlines", { items: Array<unknown> }>
  const counters = [spy(scheduler.deadlines), spy(scheduler.waitingDeadlines)]
  return {
    reset: () => counters.forEach((counter) => (counter.reads = 0)),
    reads: () => counters.reduce((sum, counter) => sum + counter.reads, 0)
  }
}

/** The reads one scenario's instant of deadlines costs with `k` jobs. */
type Scenario = (k: number) => Effect.Effect<number, unknown>

/** Between the 8-11 times of O(k log k) or less and the 64 times of O(k²), three times the first. */
const RATIO = 24

/** k and 8k's counts, and that 8k's is far below the 64 times k's of a quadratic cost. */
const linearithmic = (scenario: Scenario) =>
  Effect.gen(function*() {
    const small = yield* scenario(250)
    const large = yield* scenario(2000)
    assert.isAbove(small, 0, "the spy saw the heaps' reads")
    const ratio = large / small
    assert.isBelow(ratio, RATIO, `250 jobs: ${small} reads, 2000 jobs: ${large} reads (${ratio.toFixed(1)} times)`)
  })

describe("deadlines due at one instant cost O(log k) each, counted on the heaps", () => {
  it.effect("k running jobs' timeouts (no retry) with k queued jobs behind them: each start inside the timer's loop once walked every timeout still due (0.27-3.97 s for 16,000)", () =>
    linearithmic((k) =>
      Effect.scoped(Effect.gen(function*() {
        const pool = yield* WorkPool.make({ concurrency: k, capacity: Infinity, metrics: false })
        const heaps = spied(pool)
        const running = []
        for (let i = 0; i < k; i++) running.push((yield* pool.submit(Effect.never, { timeout: "1 second" })).await)
        const queued = []
        for (let i = 0; i < k; i++) queued.push((yield* pool.submit(Effect.void)).await)
        heaps.reset()
        yield* TestClock.adjust("1 second")
        for (const job of queued) yield* job
        for (const job of running) assert.strictEqual((yield* Effect.flip(job))._tag, "JobTimeout")
        return heaps.reads()
      }))
    ))

  it.effect("k retryable running jobs' timeouts, their retries back at the same instant, with k queued jobs behind them", () =>
    linearithmic((k) =>
      Effect.scoped(Effect.gen(function*() {
        const pool = yield* WorkPool.make({ concurrency: k, capacity: Infinity, metrics: false })
        const heaps = spied(pool)
        const running = []
        for (let i = 0; i < k; i++) {
          running.push((yield* pool.submit(Effect.never, { timeout: "1 second", retry: Schedule.recurs(1) })).await)
        }
        const queued = []
        for (let i = 0; i < k; i++) queued.push((yield* pool.submit(Effect.void)).await)
        heaps.reset()
        yield* TestClock.adjust("1 second")
        for (const job of queued) yield* job
        yield* TestClock.adjust("1 second")
        for (const job of running) assert.strictEqual((yield* Effect.flip(job))._tag, "JobTimeout")
        return heaps.reads()
      }))
    ))
})
