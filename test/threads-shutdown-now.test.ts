/**
 * `shutdownNow` on a thread pool whose threads ran tasks the main thread has not heard of yet (a
 * thread starts its offers on its own: see internal/prefetch.ts): those tasks ran, once, and end
 * as they did; only the tasks no thread started come back as unstarted.
 *
 * `Hold` runs until the test sets its release slot; `Mark` counts its starts. Blocking the main
 * thread (`Atomics.wait`) lets the thread run its offers with no word from it.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import { PoolError } from "../src/index.ts"
import { Hold, Mark } from "./fixtures/tasks.ts"
import { addsUp, blockUntil, makeReleasingPool as makePool } from "./fixtures/pool.ts"
import { settle, waitFor } from "./helpers.ts"

describe("ThreadPool shutdownNow", () => {
  it.live("tasks a thread ran before shutdownNow, unheard of, end as they did; a running one is interrupted", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 1, tasksPerThread: 2 })
      // a task that ends when released, one that runs on, then two offers the thread runs on its own
      const a = yield* pool.submit(Hold, { mark: 0, release: 1 })
      const stuck = yield* pool.submit(Mark, { mark: 10, millis: 60_000 })
      yield* waitFor(Effect.sync(() => Atomics.load(counters, 0) === 1 && Atomics.load(counters, 10) === 1), "both tasks run")
      const b = yield* pool.submit(Mark, { mark: 2, millis: 0 })
      const c = yield* pool.submit(Mark, { mark: 4, millis: 0 })
      yield* settle
      assert.deepStrictEqual((yield* pool.stats).queued, 2, "both are offered")
      const shutdown = yield* Effect.sync(() => {
        Atomics.store(counters, 1, 1)
        // the thread has run them by now, unheard of: the main thread is blocked
        assert.isTrue(blockUntil(counters, 2, 10_000) && blockUntil(counters, 4, 10_000), "the offers ran")
        return Effect.runFork(pool.shutdownNow)
      })
      const unstarted = yield* Fiber.join(shutdown)
      assert.deepStrictEqual(unstarted, [], "every task had started")
      assert.strictEqual(yield* a.await, 0)
      assert.strictEqual(yield* b.await, 2)
      assert.strictEqual(yield* c.await, 4)
      assert.deepStrictEqual(
        yield* Effect.exit(stuck.await),
        Exit.fail(new PoolError.PoolShutdown({ phase: "running" }))
      )
      assert.deepStrictEqual([2, 4].map((mark) => Atomics.load(counters, mark)), [1, 1], "each ran once")
      const s = yield* pool.stats
      assert.deepStrictEqual([s.succeeded, s.interrupted, s.running, s.queued], [3, 1, 0, 0])
      assert.isTrue(addsUp(s))
    }))
})
