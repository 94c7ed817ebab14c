import { assert, describe, it } from "@effect/vitest"
import { Config, ConfigProvider, Effect } from "effect"
import { PoolError, WorkPool } from "../src/index.ts"

const invalid = (options: unknown) =>
  Effect.flip(WorkPool.make(options as WorkPool.Options)).pipe(
    Effect.map((error) => {
      assert.instanceOf(error, PoolError.InvalidPoolConfig)
      return error as PoolError.InvalidPoolConfig
    })
  )

describe("options", () => {
  const cases: ReadonlyArray<readonly [string, Record<string, unknown>, string]> = [
    ["zero workers", { concurrency: 0 }, "concurrency"],
    ["fractional workers", { concurrency: 1.5 }, "concurrency"],
    ["missing concurrency", {}, "concurrency"],
    ["NaN workers", { concurrency: Number.NaN }, "concurrency"],
    ["negative capacity", { concurrency: 1, capacity: -1 }, "capacity"],
    ["NaN capacity", { concurrency: 1, capacity: Number.NaN }, "capacity"],
    ["unknown overflow", { concurrency: 1, overflow: "block" }, "overflow"],
    ["NaN timeout", { concurrency: 1, timeout: Number.NaN }, "timeout"],
    ["zero timeout", { concurrency: 1, timeout: 0 }, "timeout"],
    ["negative timeout", { concurrency: 1, timeout: -5 }, "timeout"],
    ["unparsable timeout", { concurrency: 1, timeout: "soon" }, "timeout"],
    ["NaN queue timeout", { concurrency: 1, queueTimeout: Number.NaN }, "queueTimeout"],
    ["infinite aging", { concurrency: 1, aging: Infinity }, "aging"],
    ["zero aging", { concurrency: 1, aging: "0 millis" }, "aging"],
    ["negative shutdown timeout", { concurrency: 1, shutdownTimeout: -1 }, "shutdownTimeout"],
    ["non-boolean paused", { concurrency: 1, paused: "yes" }, "paused"],
    ["non-function resource", { concurrency: 1, resource: 42 }, "resource"]
  ]
  for (const [name, options, field] of cases) {
    it.effect(`${name} fails with InvalidPoolConfig naming ${field}`, () =>
      Effect.gen(function*() {
        const error = yield* invalid(options)
        assert.strictEqual(error.field, field)
        assert.include(error.message, field)
        assert.isString(error.reason)
      }))
  }

  it.effect("the error shows the value and what was expected", () =>
    Effect.gen(function*() {
      const error = yield* invalid({ concurrency: 0 })
      assert.strictEqual(error.message, "invalid pool option concurrency: expected a whole number of at least 1, got 0")
    }))

  it.effect("good options are accepted, including Infinity where it means none", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({
        concurrency: 2,
        capacity: Infinity,
        overflow: "dropOldest",
        timeout: Infinity,
        queueTimeout: "1 minute",
        aging: "1 second",
        shutdownTimeout: 0,
        paused: false
      })
      assert.strictEqual(yield* pool.run(Effect.succeed("ok")), "ok")
    }))
})

describe("options from an Effect", () => {
  class Jobs extends WorkPool.Service<Jobs>()(
    "test/Jobs",
    Effect.gen(function*() {
      return { concurrency: yield* Config.Int("JOBS_CONCURRENCY") }
    })
  ) {}
  const concurrencyWith = (value: unknown) =>
    Effect.gen(function*() {
      const pool = yield* Jobs
      return (yield* pool.stats).concurrency
    }).pipe(
      Effect.provide(Jobs.layer),
      Effect.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ JOBS_CONCURRENCY: value })))
    )

  it.effect("a layer can read its options when it is built", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* concurrencyWith(3), 3)
      const error = yield* Effect.flip(concurrencyWith(0))
      assert.strictEqual(error._tag, "InvalidPoolConfig")
    }))
})
