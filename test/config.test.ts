import { assert, describe, it } from "@effect/vitest"
import { Config, ConfigProvider, Duration, Effect, Exit, Fiber, Layer, Stream } from "effect"
import { TestClock } from "effect/testing"
import { PoolError, WorkPool } from "../src/index.ts"
import * as ThreadPool from "../src/ThreadPool.ts"
import { makePool, worker } from "./fixtures/pool.ts"

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
    ["negative aging", { concurrency: 1, aging: -1 }, "aging"],
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
      assert.strictEqual(error.message, "invalid pool option concurrency: expected a whole number from 1 to 100000, got 0")
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

  // Declaring a service runs nothing (it is often a class at a module's top level): options that
  // throw when read make the layer fail when it is built, not the declaration.
  it.effect("options that throw when read (a Proxy) fail the layer when built, not the declaration", () =>
    Effect.gen(function*() {
      const hostile = new Proxy({}, {
        has: () => {
          throw new Error("no reading")
        },
        get: () => {
          throw new Error("no reading")
        }
      }) as any
      const declared = yield* Effect.orDie(Effect.try(() => [
        WorkPool.Service<unknown>()("test/Hostile", hostile).layer,
        ThreadPool.Service<unknown>()("test/HostileThreads", hostile).layer
      ] as const))
      for (const layer of declared) {
        const exit = yield* Effect.exit(Effect.scoped(Layer.build(layer as Layer.Layer<unknown, unknown>)))
        assert.isTrue(Exit.isFailure(exit), String(exit))
      }
    }))

  it.effect("a layer can read its options when it is built", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* concurrencyWith(3), 3)
      const error = yield* Effect.flip(concurrencyWith(0))
      assert.strictEqual(error._tag, "InvalidPoolConfig")
    }))
})

describe("durations", () => {
  // Duration.fromInput reads any object as a DurationObject and adds up the fields it knows, so
  // `{}` or `{ millis: 5000 }` would be 0 ms
  const bad: ReadonlyArray<readonly [string, unknown]> = [
    ["an empty object", {}],
    ["an object with an unknown unit", { millis: 5000 }],
    ["an object with a known and an unknown unit", { seconds: 1, milis: 500 }],
    ["an object whose unit is a string", { seconds: "5" }],
    ["an object whose unit is NaN", { seconds: Number.NaN }],
    ["an object with only undefined units", { seconds: undefined }],
    ["a Date", new Date(5000)],
    ["a one-element tuple", [5]],
    ["a tuple with NaN", [Number.NaN, 0]],
    ["a tuple of strings", ["1", "0"]],
    ["null", null],
    ["true", true],
    ["a function", () => 5000],
    ["a string without a unit", "5000"]
  ]
  const fields = ["timeout", "queueTimeout", "aging", "shutdownTimeout"] as const
  for (const field of fields) {
    for (const [name, value] of bad) {
      it.effect(`${field}: ${name} is not a duration`, () =>
        Effect.gen(function*() {
          const error = yield* invalid({ concurrency: 1, [field]: value })
          assert.strictEqual(error.field, field)
          // not a duration at all, rather than a duration of 0
          assert.include(error.reason, "{ seconds: 5 }")
        }))
    }
  }

  for (const field of ["timeout", "queueTimeout"] as const) {
    it.effect(`job option ${field}: objects that are not durations are refused`, () =>
      Effect.gen(function*() {
        const pool = yield* WorkPool.make({ concurrency: 1 })
        for (const [, value] of bad) {
          const error = yield* Effect.flip(pool.run(Effect.void, { [field]: value } as WorkPool.JobOptions))
          assert.instanceOf(error, PoolError.InvalidJobOptions)
          assert.strictEqual((error as PoolError.InvalidJobOptions).field, field)
          assert.include((error as PoolError.InvalidJobOptions).reason, "{ seconds: 5 }")
        }
      }))
  }

  for (const field of ["cancelGrace", "idleTimeout", "startTimeout"] as const) {
    it.effect(`ThreadPool ${field}: objects that are not durations are refused before any thread starts`, () =>
      Effect.gen(function*() {
        for (const [, value] of bad) {
          const error = yield* Effect.flip(
            ThreadPool.make({ worker: new URL("./fixtures/worker.ts", import.meta.url), threads: 1, [field]: value })
          )
          assert.instanceOf(error, PoolError.InvalidPoolConfig)
          assert.strictEqual((error as PoolError.InvalidPoolConfig).field, field)
          assert.include((error as PoolError.InvalidPoolConfig).reason, "{ seconds: 5 }")
        }
      }))
  }

  it.effect("every form of Duration.Input that Effect documents is accepted, with its value", () =>
    Effect.gen(function*() {
      const forms: ReadonlyArray<Duration.Input> = [
        1000,
        1_000_000_000n,
        "1 second",
        Duration.seconds(1),
        [1, 0],
        [0, 1e9],
        { seconds: 1 },
        { milliseconds: 500, microseconds: 500_000 },
        { minutes: 1, seconds: -59 }
      ]
      for (const timeout of forms) {
        const pool = yield* WorkPool.make({ concurrency: 1, timeout })
        const running = yield* Effect.forkChild(Effect.flip(pool.run(Effect.never)))
        yield* TestClock.adjust("1 second")
        const error = yield* Fiber.join(running)
        assert.deepStrictEqual(error, new PoolError.JobTimeout({ jobId: 1, millis: 1000, phase: "running" }), String(timeout))
      }
    }))
})

describe("upper bounds on counts", () => {
  // past these, a pool would block the event loop for seconds building workers, then die
  const huge = [100_001, 1e9, 2 ** 53, Infinity]

  it.effect("concurrency is at most 100000, at make and at resize; the pool keeps its size", () =>
    Effect.gen(function*() {
      for (const concurrency of huge) {
        const error = yield* invalid({ concurrency })
        assert.strictEqual(error.field, "concurrency")
        assert.strictEqual(error.reason, "expected a whole number from 1 to 100000")
      }
      const pool = yield* WorkPool.make({ concurrency: 2 })
      for (const concurrency of huge) {
        const error = yield* Effect.flip(pool.resize(concurrency))
        assert.deepStrictEqual(
          [error._tag, error.field, error.value],
          ["InvalidPoolConfig", "concurrency", String(concurrency)]
        )
      }
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.concurrency, stats.workers], [2, 2])
      // the bound itself is fine, and quick to reach
      yield* pool.resize(100_000)
      assert.strictEqual((yield* pool.stats).workers, 100_000)
      yield* pool.resize(1)
      assert.strictEqual((yield* pool.stats).workers, 1)
    }))

  it.effect("threads and tasksPerThread are at most 1024, and their product at most 100000", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [Partial<ThreadPool.Options>, string, string]> = [
        [{ threads: 1025 }, "threads", "expected a whole number from 1 to 1024"],
        [{ threads: 2 ** 53 }, "threads", "expected a whole number from 1 to 1024"],
        [{ tasksPerThread: 1025 }, "tasksPerThread", "expected a whole number from 1 to 1024"],
        [{ tasksPerThread: 2 ** 53 }, "tasksPerThread", "expected a whole number from 1 to 1024"],
        [
          { threads: 98, tasksPerThread: 1024 },
          "threads",
          "expected a whole number from 1 to 97 (threads × tasksPerThread is at most 100000)"
        ]
      ]
      for (const [options, field, reason] of cases) {
        // refused before any thread starts
        const error = yield* Effect.flip(ThreadPool.make({ worker, threads: 1, ...options }))
        assert.instanceOf(error, PoolError.InvalidPoolConfig)
        const invalid = error as PoolError.InvalidPoolConfig
        assert.deepStrictEqual([invalid.field, invalid.reason], [field, reason], JSON.stringify(options))
      }
    }))

  it.live("ThreadPool.resize refuses more threads than the bound and keeps its threads", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1, tasksPerThread: 200 })
      for (const [threads, reason] of [
        [1e9, "expected a whole number from 1 to 500 (threads × tasksPerThread is at most 100000)"],
        [2 ** 53, "expected a whole number from 1 to 500 (threads × tasksPerThread is at most 100000)"],
        [501, "expected a whole number from 1 to 500 (threads × tasksPerThread is at most 100000)"]
      ] as const) {
        const error = yield* Effect.flip(pool.resize(threads))
        assert.deepStrictEqual([error._tag, error._tag === "InvalidPoolConfig" && error.field, error._tag === "InvalidPoolConfig" && error.reason], ["InvalidPoolConfig", "threads", reason])
      }
      assert.strictEqual(yield* pool.threads, 1)
      assert.strictEqual((yield* pool.stats).concurrency, 200)
    }))
})

describe("job options", () => {
  const notObjects: ReadonlyArray<unknown> = [null, 42, "x", true, [], () => ({})]

  it.effect("options that are not an object fail with InvalidJobOptions in run, submit, runAll and mapStream", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      for (const options of notObjects) {
        const bad = options as WorkPool.JobOptions
        const errors = [
          yield* Effect.flip(pool.run(Effect.succeed(1), bad)),
          yield* Effect.flip(pool.submit(Effect.succeed(1), bad)),
          yield* Effect.flip(pool.runAll([Effect.succeed(1)], bad)),
          // even for an empty stream: the options are checked when it starts
          yield* Effect.flip(Stream.runCollect(WorkPool.mapStream(Stream.empty, pool, Effect.succeed, bad)))
        ]
        for (const error of errors) {
          assert.instanceOf(error, PoolError.InvalidJobOptions, String(options))
          assert.strictEqual((error as PoolError.InvalidJobOptions).field, "options")
          assert.strictEqual((error as PoolError.InvalidJobOptions).reason, "expected an object")
        }
      }
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.submitted, stats.rejected], [0, 0], "nothing was submitted")
    }))

  it.effect("mapStream checks its own options: buffer and unordered", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      for (const [options, field] of [
        [{ buffer: 0 }, "buffer"],
        [{ buffer: 1.5 }, "buffer"],
        [{ buffer: Number.NaN }, "buffer"],
        [{ buffer: "8" }, "buffer"],
        [{ unordered: "yes" }, "unordered"],
        [{ priority: Number.NaN }, "priority"],
        [{ timeout: {} }, "timeout"]
      ] as const) {
        const error = yield* Effect.flip(
          Stream.runCollect(WorkPool.mapStream(Stream.make(1, 2), pool, Effect.succeed, options as any))
        )
        assert.instanceOf(error, PoolError.InvalidJobOptions, JSON.stringify(options))
        assert.strictEqual((error as PoolError.InvalidJobOptions).field, field)
      }
      assert.strictEqual((yield* pool.stats).submitted, 0, "refused before any element ran")
      const squares = yield* Stream.runCollect(
        WorkPool.mapStream(Stream.make(1, 2, 3), pool, (n) => Effect.succeed(n * n), { buffer: 2, unordered: false })
      )
      assert.deepStrictEqual(Array.from(squares), [1, 4, 9])
    }))

  it.live("ThreadPool run, submit, runAll and mapStream refuse options that are not an object", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1 })
      const { Echo } = yield* Effect.promise(() => import("./fixtures/tasks.ts"))
      for (const options of [null, 42, "x"]) {
        const bad = options as any
        for (const error of [
          yield* Effect.flip(pool.run(Echo, "a", bad)),
          yield* Effect.flip(pool.submit(Echo, "a", bad)),
          yield* Effect.flip(pool.runAll(Echo, ["a"], bad)),
          yield* Effect.flip(Stream.runCollect(ThreadPool.mapStream(Stream.empty, pool, Echo, bad)))
        ]) {
          assert.strictEqual(error._tag, "InvalidJobOptions", String(options))
          assert.strictEqual(error._tag === "InvalidJobOptions" && error.field, "options")
        }
      }
    }))
})

describe("how an error shows the value it refused", () => {
  class Point {
    readonly x = 1
  }

  it.effect("the same way in InvalidPoolConfig, InvalidJobOptions and InvalidJob: a class instance by its class", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const point = new Point() as any
      const job: Effect.Effect<void> = point
      const errors: ReadonlyArray<{ readonly value: string }> = [
        yield* invalid({ concurrency: point }),
        yield* Effect.flip(pool.run(Effect.void, { priority: point })),
        yield* Effect.flip(pool.run(job)),
        yield* Effect.flip(pool.runAll([job]))
      ] as ReadonlyArray<any>
      assert.deepStrictEqual(errors.map((error) => error.value), [
        "a Point",
        "a Point",
        "a Point",
        "a Point"
      ])
    }))

  it.effect("an array by its items, each as a value of its own", () =>
    Effect.gen(function*() {
      const error = yield* invalid({ concurrency: [new Point(), 1, "x", [2]] })
      assert.strictEqual(error.value, "[a Point, 1, \"x\", [2]]")
    }))

  it.effect("a long value is cut short, in every error", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const long = "x".repeat(10_000)
      const job: Effect.Effect<void> = { long } as any
      const errors: ReadonlyArray<{ readonly _tag: string; readonly value: string }> = [
        yield* invalid({ concurrency: long }),
        yield* Effect.flip(pool.run(Effect.void, { priority: long as any })),
        yield* Effect.flip(pool.run(job))
      ] as ReadonlyArray<any>
      for (const error of errors) {
        assert.isAtMost(error.value.length, 80, error._tag)
        assert.isTrue(error.value.endsWith("..."), error._tag)
      }
    }))

  it.live("ThreadPool: a bad item of a transfer list is shown as any other value", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1 })
      const { Echo } = yield* Effect.promise(() => import("./fixtures/tasks.ts"))
      const error = yield* Effect.flip(pool.run(Echo, "a", { transfer: [new Uint8Array(4)] as any }))
      assert.strictEqual(error._tag, "InvalidJobOptions")
      assert.deepStrictEqual(
        error._tag === "InvalidJobOptions" ? [error.field, error.value] : [],
        ["transfer[0]", "a Uint8Array"]
      )
      const buffer = new ArrayBuffer(4)
      const twice = yield* Effect.flip(pool.run(Echo, "a", { transfer: [buffer, buffer] }))
      assert.strictEqual(twice._tag === "InvalidJobOptions" && twice.value, "an ArrayBuffer")
      const notAList = yield* Effect.flip(pool.run(Echo, "a", { transfer: "x" as any }))
      assert.strictEqual(notAList._tag === "InvalidJobOptions" && notAList.value, "\"x\"")
    }))
})

describe("a refused value that cannot be read", () => {
  it.effect("is still refused with its typed error (a Proxy whose every read throws)", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const hostile = new Proxy({}, {
        get: () => {
          throw new Error("no reading")
        }
      }) as any
      const job: Effect.Effect<void> = hostile
      const errors: ReadonlyArray<{ readonly _tag: string; readonly value: string }> = [
        yield* invalid({ concurrency: hostile }),
        yield* Effect.flip(pool.run(Effect.void, { priority: hostile })),
        yield* Effect.flip(pool.run(job))
      ] as ReadonlyArray<any>
      assert.deepStrictEqual(errors.map((error) => error._tag), ["InvalidPoolConfig", "InvalidJobOptions", "InvalidJob"])
      for (const error of errors) assert.isString(error.value)
    }))
})

describe("pool options that are not an object", () => {
  it.effect("fail WorkPool.make and ThreadPool.make with InvalidPoolConfig naming options, as job options do", () =>
    Effect.gen(function*() {
      for (const options of [null, 42, "x", [], [{ concurrency: 1 }]]) {
        const fromWorkPool = yield* invalid(options)
        const fromThreadPool = yield* Effect.flip(Effect.scoped(ThreadPool.make(options as any)))
        for (const error of [fromWorkPool, fromThreadPool]) {
          assert.strictEqual(error._tag, "InvalidPoolConfig", JSON.stringify(options))
          assert.deepStrictEqual(
            error._tag === "InvalidPoolConfig" ? [error.field, error.reason] : [],
            ["options", "expected an object"],
            JSON.stringify(options)
          )
        }
      }
    }))
})

describe("Infinity for none", () => {
  it.effect("aging: Infinity is no aging (strict priority), as timeout: Infinity is no timeout", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, aging: Infinity, paused: true })
      const order: Array<string> = []
      const old = yield* pool.submit(Effect.sync(() => order.push("old, priority 0")))
      yield* TestClock.adjust("1 day")
      const urgent = yield* pool.submit(Effect.sync(() => order.push("new, priority 1")), { priority: 1 })
      yield* pool.resume
      yield* old.await
      yield* urgent.await
      assert.deepStrictEqual(order, ["new, priority 1", "old, priority 0"])
    }))

  it.live("idleTimeout: Infinity keeps idle threads, as the default does", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1, idleTimeout: Infinity })
      const { Echo } = yield* Effect.promise(() => import("./fixtures/tasks.ts"))
      assert.strictEqual(yield* pool.run(Echo, "a"), "echo a")
      assert.strictEqual(yield* pool.threads, 1)
    }))

  it.effect("0 is refused where it would mean 'at once', with the hint to use Infinity", () =>
    Effect.gen(function*() {
      const error = yield* invalid({ concurrency: 1, aging: 0 })
      assert.deepStrictEqual([error.field, error.reason], ["aging", "expected a duration above 0 (use Infinity for none)"])
    }))
})
