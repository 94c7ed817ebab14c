import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { WorkPool } from "../src/index.ts"
import { settle } from "./helpers.ts"

describe("priority", () => {
  it.effect("runs higher priority first, FIFO within a priority", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, capacity: Infinity, paused: true })
      const order: Array<string> = []
      const job = (name: string) => Effect.sync(() => void order.push(name))
      const submitted = [
        ["low-1", -1],
        ["mid-1", 0],
        ["high-1", 10],
        ["low-2", -1],
        ["high-2", 10],
        ["mid-2", 0],
        ["top", 99.5]
      ] as const
      for (const [name, priority] of submitted) yield* pool.submit(job(name), { priority })
      assert.deepStrictEqual((yield* pool.stats).queuedByPriority, [
        { priority: 99.5, count: 1 },
        { priority: 10, count: 2 },
        { priority: 0, count: 2 },
        { priority: -1, count: 2 }
      ])
      yield* pool.resume
      yield* pool.awaitIdle
      assert.deepStrictEqual(order, ["top", "high-1", "high-2", "mid-1", "mid-2", "low-1", "low-2"])
    }))

  it.effect("removing queued jobs keeps the order of the rest", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, capacity: Infinity, paused: true })
      const order: Array<number> = []
      const handles = yield* Effect.forEach(
        Array.from({ length: 300 }, (_, i) => i),
        (i) => pool.submit(Effect.sync(() => void order.push(i)), { priority: i % 3 })
      )
      // interrupt every other job, including lane heads and jobs deep inside lanes
      yield* Effect.forEach(handles.filter((_, i) => i % 2 === 0), (h) => h.interrupt, { discard: true })
      yield* pool.resume
      yield* pool.awaitIdle
      const expected = Array.from({ length: 300 }, (_, i) => i)
        .filter((i) => i % 2 === 1)
        .sort((a, b) => (b % 3) - (a % 3) || a - b)
      assert.deepStrictEqual(order, expected)
    }))

  it.effect("without aging, a steady stream of high-priority jobs starves a low one", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, capacity: Infinity, shutdownTimeout: 0 })
      // the worker is busy with high-priority work, and a new high job arrives every 100 ms
      yield* pool.submit(Effect.sleep("100 millis"), { priority: 10 })
      const low = yield* pool.submit(Effect.void, { priority: 0 })
      for (let i = 0; i < 100; i++) {
        yield* pool.submit(Effect.sleep("100 millis"), { priority: 10 })
        yield* TestClock.adjust("100 millis")
      }
      assert.strictEqual(yield* low.status, "queued")
    }))

  it.effect("with aging, a low-priority job runs within the bound under a steady high-priority stream", () =>
    Effect.gen(function*() {
      // one level per second: a job 10 levels lower is passed only by jobs that came within 10 s after it
      const pool = yield* WorkPool.make({ concurrency: 1, capacity: Infinity, aging: "1 second", shutdownTimeout: 0 })
      yield* pool.submit(Effect.sleep("100 millis"), { priority: 10 })
      let lowRanAt = -1
      const low = yield* pool.submit(
        Effect.clockWith((clock) => Effect.sync(() => void (lowRanAt = clock.currentTimeMillisUnsafe()))),
        { priority: 0 }
      )
      const start = yield* Effect.clockWith((clock) => Effect.sync(() => clock.currentTimeMillisUnsafe()))
      for (let i = 0; i < 300 && lowRanAt < 0; i++) {
        yield* pool.submit(Effect.sleep("100 millis"), { priority: 10 })
        yield* TestClock.adjust("100 millis")
      }
      assert.strictEqual(yield* low.status, "succeeded")
      const waited = lowRanAt - start
      // bound: (10 levels × 1 s) + one job's run time
      assert.isAtMost(waited, 10_100)
      assert.isAtLeast(waited, 9_900, "aging must not promote the job earlier than its priority gap allows")
    }))

  it.effect("rejects a non-finite priority with InvalidJobOptions", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const error = yield* Effect.flip(pool.run(Effect.void, { priority: Number.NaN }))
      assert.strictEqual(error._tag, "InvalidJobOptions")
      assert.strictEqual(error._tag === "InvalidJobOptions" && error.field, "priority")
      const fiber = yield* Effect.forkChild(pool.submit(Effect.void, { priority: Infinity }))
      yield* settle
      const exit = yield* Fiber.await(fiber)
      assert.strictEqual(exit._tag, "Failure")
    }))
})
