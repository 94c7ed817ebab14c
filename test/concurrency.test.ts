import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { WorkPool } from "../src/index.ts"
import { makeGauge, settle } from "./helpers.ts"

describe("concurrency", () => {
  it.effect("never runs more jobs than `concurrency`", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 3, capacity: Infinity })
      const gauge = yield* makeGauge
      const jobs = Array.from({ length: 20 }, (_, i) => gauge.track(Effect.as(Effect.sleep("10 millis"), i)))
      const all = yield* Effect.forkChild(pool.runAll(jobs))
      yield* settle
      assert.strictEqual((yield* gauge.get).now, 3)
      assert.strictEqual((yield* pool.stats).running, 3)
      assert.strictEqual((yield* pool.stats).queued, 17)
      for (let i = 0; i < 7; i++) yield* TestClock.adjust("10 millis")
      assert.deepStrictEqual(yield* Fiber.join(all), Array.from({ length: 20 }, (_, i) => i))
      assert.strictEqual((yield* gauge.get).peak, 3)
    }))

  it.effect("growing starts queued work at once", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, capacity: Infinity })
      const gauge = yield* makeGauge
      const all = yield* Effect.forkChild(pool.runAll(Array.from({ length: 6 }, () => gauge.track(Effect.sleep("1 second")))))
      yield* settle
      assert.strictEqual((yield* gauge.get).now, 1)
      yield* pool.resize(4)
      yield* settle
      assert.strictEqual((yield* gauge.get).now, 4)
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.concurrency, stats.workers, stats.running, stats.queued], [4, 4, 4, 2])
      yield* TestClock.adjust("1 second")
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(all)
      assert.strictEqual((yield* gauge.get).peak, 4)
    }))

  it.effect("shrinking lets running jobs finish, then runs fewer at once", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 3, capacity: Infinity })
      const gauge = yield* makeGauge
      const all = yield* Effect.forkChild(pool.runAll(Array.from({ length: 9 }, () => gauge.track(Effect.sleep("1 second")))))
      yield* settle
      yield* pool.resize(1)
      let stats = yield* pool.stats
      // the three running jobs are not interrupted
      assert.deepStrictEqual([stats.concurrency, stats.workers, stats.running], [1, 3, 3])
      yield* TestClock.adjust("1 second")
      stats = yield* pool.stats
      assert.deepStrictEqual([stats.workers, stats.running, stats.succeeded, stats.interrupted], [1, 1, 3, 0])
      for (let i = 0; i < 6; i++) {
        assert.isAtMost((yield* gauge.get).now, 1)
        yield* TestClock.adjust("1 second")
      }
      yield* Fiber.join(all)
      assert.strictEqual((yield* pool.stats).succeeded, 9)
    }))

  it.effect("resize rejects a bad size with InvalidPoolConfig", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2 })
      const error = yield* Effect.flip(pool.resize(0))
      assert.strictEqual(error._tag, "InvalidPoolConfig")
      assert.strictEqual(error._tag === "InvalidPoolConfig" && error.field, "concurrency")
      assert.strictEqual((yield* pool.stats).concurrency, 2)
    }))

  it.effect("pause stops dispatch, resume restarts it", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2, paused: true })
      const fiber = yield* Effect.forkChild(pool.run(Effect.succeed("ran")))
      yield* settle
      assert.deepStrictEqual([(yield* pool.stats).state, (yield* pool.stats).queued], ["paused", 1])
      yield* pool.resume
      assert.strictEqual(yield* Fiber.join(fiber), "ran")
      yield* pool.pause
      const second = yield* Effect.forkChild(pool.run(Effect.succeed("later")))
      yield* settle
      assert.strictEqual((yield* pool.stats).queued, 1)
      yield* pool.resume
      assert.strictEqual(yield* Fiber.join(second), "later")
    }))
})
