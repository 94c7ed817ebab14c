/**
 * Hostile tests of the durable queue's user-facing features (JobQueue's repeat, dedup keys, cancel,
 * purge, pause, stats and its bad input) on every store: in one process under TestClock where time
 * is the point, across store instances where concurrency is, and across real processes (one SQLite
 * file, Postgres, Redis) where the point is several processes. Every wait is for an event (a child's
 * line, a state in the store) under a deadline, never a guessed sleep.
 */
import { assert, describe, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync } from "node:fs"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Cause, Cron, Deferred, Effect, Exit, Fiber, Layer, Logger, ManagedRuntime, Metric, Schema, Scope, Stream } from "effect"
import { TestClock } from "effect/testing"
import { afterAll } from "vitest"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as PgJobStore from "../src/PgJobStore.ts"
import * as RedisJobStore from "../src/RedisJobStore.ts"
import { StoreError } from "../src/DurableError.ts"
import type { Store } from "../src/internal/store/model.ts"
import * as Task from "../src/Task.ts"
import * as WorkPool from "../src/WorkPool.ts"
import { Echo } from "./durable/conformance.ts"
import { processStoresOf, startConsumer, untilRead, waitUntil } from "./durable/children.ts"
import * as Pg from "./durable/postgres.ts"
import * as Rd from "./durable/redis.ts"
import { Work } from "./fixtures/durable-tasks.ts"
import { warnings } from "./helpers.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wp-features-hostile-"))
let files = 0
const freshFile = () => path.join(dir, `f${files++}.db`)
const runtimes: Array<ManagedRuntime.ManagedRuntime<JobStore.JobStore, unknown>> = []
afterAll(async () => {
  await Promise.all(runtimes.map((runtime) => runtime.dispose()))
  fs.rmSync(dir, { recursive: true, force: true })
})

/**
 * Each store, as a maker of instances that share one queue (two processes, as far as the store can
 * tell; the memory store's instances are one).
 */
const stores: Array<[string, () => () => Layer.Layer<JobStore.JobStore, any>]> = [
  ["memory", () => {
    const shared = Layer.fresh(JobStore.memory())
    const built = Effect.runSync(Effect.map(Scope.make(), (scope) => Layer.buildWithScope(shared, scope)))
    const context = Effect.runSync(built)
    return () => Layer.succeedContext(context)
  }],
  ["SQLite", () => {
    const file = freshFile()
    return () => JobStore.sqlite({ filename: file })
  }]
]
if (Pg.enabled) {
  stores.push(["Postgres", () => {
    const schema = Pg.freshSchema()
    return () => Pg.testLayer(schema)
  }])
}
if (Rd.enabled) {
  stores.push(["Redis", () => {
    const prefix = Rd.freshPrefix()
    return () => Rd.testLayer(prefix)
  }])
}

/** The error an effect failed with (its tag and field), or "defect"/"success". */
const failure = (exit: Exit.Exit<unknown, unknown>): string => {
  if (Exit.isSuccess(exit)) return "success"
  const error = Cause.findErrorOption(exit.cause)
  if (error._tag === "None") return `defect ${Cause.pretty(exit.cause).slice(0, 200)}`
  const e = error.value as { _tag?: string; field?: string }
  return e.field === undefined ? `${e._tag}` : `${e._tag} ${e.field}`
}

const Text = Task.make("Text", { payload: Schema.String, success: Schema.String })

/** `n` random characters from `span` code points starting at `base` (random: Postgres compresses a repeated one). */
const random = (n: number, base: number, span: number) =>
  Array.from({ length: n }, () => String.fromCodePoint(base + Math.floor(Math.random() * span))).join("")

describe("bad input at JobQueue's functions: a typed error naming the field, nothing stored, no defect", () => {
  it.effect("enqueue and repeat of something that is not a Task (a defect, 'reading ast', before)", () =>
    Effect.gen(function*() {
      const notTask = { name: "Echo" } as unknown as typeof Echo
      assert.strictEqual(failure(yield* Effect.exit(JobQueue.enqueue(notTask, { n: 1 }))), "InvalidJobOptions task")
      assert.strictEqual(
        failure(yield* Effect.exit(Effect.scoped(JobQueue.repeat("r", notTask, { n: 1 }, { cron: "* * * * *" })))),
        "InvalidJobOptions task"
      )
      assert.strictEqual(failure(yield* Effect.exit(JobQueue.enqueue(null as never, 1 as never))), "InvalidJobOptions task")
      assert.strictEqual((yield* JobQueue.list()).length, 0)
    }).pipe(Effect.provide(JobStore.memory())))

  it.effect("list with a state that is neither a state nor an array of them (a TypeError defect before)", () =>
    Effect.gen(function*() {
      for (const state of [null, 5, { 0: "queued" }]) {
        assert.strictEqual(failure(yield* Effect.exit(JobQueue.list({ state: state as never }))), "InvalidJobOptions state")
      }
      assert.strictEqual(failure(yield* Effect.exit(JobQueue.list({ state: [null as never] }))), "InvalidJobOptions state[0]")
    }).pipe(Effect.provide(JobStore.memory())))

  it.effect("a queue, a dedup key or a repeat's name with a NUL, or over 1,000 bytes of UTF-8 (Postgres failed both with a StoreError, or a warning at every tick)", () =>
    Effect.gen(function*() {
      const long = random(334, 0x4e00, 20_000) // 1,002 bytes in 334 characters
      const ascii = "k".repeat(1001)
      for (const [options, field] of [
        [{ dedupKey: "a\u0000b" }, "dedupKey"],
        [{ queue: "a\u0000b" }, "queue"],
        [{ dedupKey: long }, "dedupKey"],
        [{ dedupKey: ascii }, "dedupKey"],
        [{ queue: long }, "queue"]
      ] as const) {
        assert.strictEqual(failure(yield* Effect.exit(JobQueue.enqueue(Echo, { n: 1 }, options))), `InvalidJobOptions ${field}`)
      }
      for (const name of ["a\u0000b", long]) {
        const exit = yield* Effect.exit(Effect.scoped(JobQueue.repeat(name, Echo, { n: 1 }, { cron: "* * * * * *" })))
        assert.strictEqual(failure(exit), "InvalidJobOptions name")
      }
      for (const queue of ["a\u0000b", long]) {
        assert.strictEqual(failure(yield* Effect.exit(JobQueue.pause(queue))), "InvalidJobOptions queue")
        assert.strictEqual(failure(yield* Effect.exit(JobQueue.stats(queue))), "InvalidJobOptions queue")
        const consumer = yield* Effect.exit(Effect.scoped(JobQueue.consume({ queues: [queue], handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))], concurrency: 1 })))
        assert.strictEqual(failure(consumer), "InvalidPoolConfig queues[0]")
      }
      assert.strictEqual((yield* JobQueue.list()).length, 0)
      // at the limit: 333 characters of 3 bytes, 1,000 of 1 byte
      assert.isTrue((yield* JobQueue.enqueue(Echo, { n: 1 }, { dedupKey: long.slice(0, 333), queue: "q".repeat(1000) })).created)
    }).pipe(Effect.provide(JobStore.memory())))

  it.effect("a priority past 1e15, or an aging past 1e15 ms, which a store multiplies (Postgres: 'value out of range: overflow' at every enqueue of the queue)", () =>
    Effect.gen(function*() {
      assert.strictEqual(failure(yield* Effect.exit(JobQueue.enqueue(Echo, { n: 1 }, { priority: 1e308 }))), "InvalidJobOptions priority")
      assert.strictEqual(failure(yield* Effect.exit(JobQueue.enqueue(Echo, { n: 1 }, { priority: -2e15 }))), "InvalidJobOptions priority")
      assert.strictEqual(
        failure(yield* Effect.exit(Effect.scoped(JobQueue.repeat("r", Echo, { n: 1 }, { cron: "* * * * *", priority: 1e16 })))),
        "InvalidJobOptions priority"
      )
      assert.strictEqual(failure(yield* Effect.exit(JobQueue.setAging("q", 1e300))), "InvalidJobOptions aging")
      const consumer = yield* Effect.exit(Effect.scoped(JobQueue.consume({ handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))], concurrency: 1, aging: 1e300 })))
      assert.strictEqual(failure(consumer), "InvalidPoolConfig aging")
      assert.strictEqual((yield* JobQueue.stats("q")).aging, 0)
      assert.strictEqual((yield* JobQueue.list()).length, 0)
      // Infinity is none, as before
      yield* JobQueue.setAging("q", Infinity)
      assert.strictEqual((yield* JobQueue.stats("q")).aging, 0)
    }).pipe(Effect.provide(JobStore.memory())))

  it.effect("a cron that matches no date (February 30th): its schedule's fiber died at the first tick, unseen", () =>
    Effect.gen(function*() {
      for (const cron of ["0 0 30 2 *", Cron.parseUnsafe("0 0 31 4 *")]) {
        const exit = yield* Effect.exit(Effect.scoped(JobQueue.repeat("never", Echo, { n: 1 }, { cron })))
        assert.strictEqual(failure(exit), "InvalidJobOptions cron")
      }
      // February 29th is every four years: kept
      yield* Effect.scoped(JobQueue.repeat("leap", Echo, { n: 1 }, { cron: "0 0 29 2 *" }))
    }).pipe(Effect.provide(JobStore.memory())))

  if (Pg.enabled) {
    it.live("Postgres keeps names at the limits: a queue and a dedup key of 1,000 bytes each (one index row), a repeat of a 1,000-byte name; the largest priority with the longest aging", () =>
      Effect.gen(function*() {
        const queue = random(333, 0x4e00, 20_000)
        const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { queue, dedupKey: random(333, 0x4e00, 20_000) })
        assert.strictEqual((yield* JobQueue.status(job.id)).queue, queue)
        yield* JobQueue.pause(queue)
        const { collector, logged } = warnings()
        yield* Effect.scoped(Effect.gen(function*() {
          yield* JobQueue.repeat(random(333, 0x4e00, 20_000), Echo, { n: 2 }, { cron: "* * * * * *", queue: "ticks" })
          while ((yield* JobQueue.list({ queue: "ticks" })).length === 0) {
            assert.deepStrictEqual(logged, [])
            yield* Effect.sleep(50)
          }
        })).pipe(Effect.provide(Logger.layer([collector])))
        yield* JobQueue.setAging("aged", 1e15)
        const high = yield* JobQueue.enqueue(Echo, { n: 3 }, { queue: "aged", priority: 1e15 })
        const low = yield* JobQueue.enqueue(Echo, { n: 4 }, { queue: "aged", priority: -1e15 })
        yield* Effect.scoped(Effect.gen(function*() {
          const order: Array<number> = []
          yield* JobQueue.consume({ queues: ["aged"], handlers: [Task.handle(Echo, ({ n }) => Effect.sync(() => (order.push(n), n)))], concurrency: 1 })
          yield* low.await
          yield* high.await
          assert.deepStrictEqual(order, [3, 4])
        }))
      }).pipe(Effect.provide(Pg.testLayer())), { timeout: 60_000 })
  }
})

/**
 * A memory store whose enqueues fail while `failing` is above 0 (counting down), or reach the store
 * `slow` ms after they are sent, and the next one `stall` ms more (once, as a lock held on the
 * table would; on the Effect clock), or answer `answer` ms after the store took them (a slow
 * network's way back); its time is `ahead` ms past the Effect clock (a process's timers that fire
 * that late).
 */
const flaky = (
  state: { failing: number; slow: number; calls: number; stall?: number; ahead?: number; failSlow?: number; answer?: number }
) =>
  Layer.effect(
    JobStore.JobStore,
    Effect.map(JobStore.JobStore, (store): Store => ({
      ...store,
      now: Effect.map(store.now, (now) => now + (state.ahead ?? 0)),
      enqueue: (job) =>
        Effect.suspend(() => {
          state.calls++
          if (state.failing > 0) {
            state.failing--
            const failed = Effect.fail(new StoreError({ operation: "enqueue", reason: "the server is restarting" }))
            return state.failSlow === undefined ? failed : Effect.andThen(Effect.sleep(state.failSlow), failed)
          }
          const wait = state.slow + (state.stall ?? 0)
          state.stall = 0
          const stored = (state.answer ?? 0) > 0 ? Effect.tap(store.enqueue(job), () => Effect.sleep(state.answer!)) : store.enqueue(job)
          return wait > 0 ? Effect.andThen(Effect.sleep(wait), stored) : stored
        })
    }))
  ).pipe(Layer.provide(JobStore.memory()))

/** Runs a repeat's test on a `flaky(state)` store, with a metric registry of its own and `collector`'s logs. */
const onFlaky = (state: Parameters<typeof flaky>[0], collector: Logger.Logger<unknown, void>) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    effect.pipe(
      Effect.scoped,
      Effect.provide(flaky(state)),
      Effect.provide(Logger.layer([collector])),
      Effect.provideService(Metric.MetricRegistry, new Map())
    )

/** The ticks of the repeat `name` this process skipped (`workpool_repeat_ticks_skipped`). */
const skippedOf = (name: string) =>
  Effect.map(Metric.snapshot, (all) => {
    const found = all.find((m) => m.id === "workpool_repeat_ticks_skipped" && m.attributes?.repeat === name)
    return found === undefined ? 0 : Number((found.state as { count: number }).count)
  })

/** The ticks (ms) of a repeat's jobs in the store, in order. */
const ticksOf = (name: string, queue = "default") =>
  Effect.map(JobQueue.list({ queue, limit: 100_000 }), (jobs) =>
    jobs.filter((job) => job.id.startsWith(`repeat:${name}:`)).map((job) => Number(job.id.slice(`repeat:${name}:`.length))).sort((a, b) => a - b))

/** Lets the TestClock run `millis` in steps of `step`, so that every timer on the way fires in order. */
const run = (millis: number, step = 100) =>
  Effect.gen(function*() {
    for (let t = 0; t < millis; t += step) {
      yield* TestClock.adjust(Math.min(step, millis - t))
      for (let i = 0; i < 20; i++) yield* Effect.yieldNow
    }
  })

describe("JobQueue.repeat under TestClock", () => {
  it.effect("a tick whose enqueue fails (the store restarting) is tried again until stored: a daily job was lost to one failed statement", () => {
    const state = { failing: 4, slow: 0, calls: 0 }
    const { collector, logged } = warnings()
    return Effect.gen(function*() {
      // 03:00 UTC; the TestClock starts at 1970-01-01T00:00 UTC
      yield* JobQueue.repeat("nightly", Echo, { n: 1 }, { cron: Cron.parseUnsafe("0 3 * * *", "UTC"), queue: "q" })
      yield* run(3 * 3_600_000, 60_000)
      assert.deepStrictEqual(yield* ticksOf("nightly", "q"), [])
      yield* run(10_000, 100)
      assert.deepStrictEqual(yield* ticksOf("nightly", "q"), [3 * 3_600_000])
      assert.strictEqual(state.calls, 5)
      // one warning for the failures, none per retry
      assert.strictEqual(logged.filter((line) => line.includes("nightly")).length, 1, logged.join("\n"))
    }).pipe(Effect.scoped, Effect.provide(flaky(state)), Effect.provide(Logger.layer([collector])))
  })

  it.effect("a tick that keeps failing until the next one is due is given up, saying so; the next tick is enqueued", () => {
    const state = { failing: 1_000_000, slow: 0, calls: 0 }
    const { collector, logged } = warnings()
    return Effect.gen(function*() {
      yield* JobQueue.repeat("flaky", Echo, { n: 1 }, { cron: "* * * * *" })
      yield* run(60_000 + 59_000, 1000)
      state.failing = 0
      yield* run(2_000, 100)
      assert.deepStrictEqual(yield* ticksOf("flaky"), [120_000])
      assert.isTrue(logged.some((line) => line.includes("flaky") && line.includes("skipped")), logged.join("\n"))
    }).pipe(Effect.scoped, Effect.provide(flaky(state)), Effect.provide(Logger.layer([collector])))
  })

  it.effect("a store that fails for a minute under a per-second cron: the ticks given up are logged once when the run starts and once when a tick is stored again (the docs: one warning per run), not twice a tick (120 warnings a minute, 172,800 a day)", () => {
    const state = { failing: 1_000_000, slow: 0, calls: 0 }
    const { collector, logged } = warnings()
    return Effect.gen(function*() {
      yield* JobQueue.repeat("outage", Echo, { n: 1 }, { cron: "* * * * * *" })
      yield* run(60_000, 100)
      state.failing = 0
      yield* run(3_000, 100)
      assert.deepStrictEqual(yield* ticksOf("outage"), [60_000, 61_000, 62_000, 63_000])
      assert.strictEqual(yield* skippedOf("outage"), 59, "1000 to 59000, each counted")
      assert.strictEqual(logged.length, 3, logged.slice(0, 5).join("\n"))
      assert.include(logged[2], "59 ticks due from 1970-01-01T00:00:01.000Z to before 1970-01-01T00:01:00.000Z skipped")
    }).pipe(onFlaky(state, collector))
  })

  it.effect("a store whose enqueues fail after 1.5 s each (a connect timeout) for a minute under a per-second cron: the ticks skipped between those given up are part of the same run, logged once when it starts and once when a tick is stored again, not once every 3 s (22 warnings a minute)", () => {
    const state = { failing: 1_000_000, slow: 0, calls: 0, failSlow: 1500 }
    const { collector, logged } = warnings()
    return Effect.gen(function*() {
      yield* JobQueue.repeat("slow-outage", Echo, { n: 1 }, { cron: "* * * * * *" })
      yield* run(60_000, 100)
      state.failing = 0
      yield* run(4_000, 100)
      const ticks = yield* ticksOf("slow-outage")
      assert.isAbove(ticks.length, 0)
      const first = ticks[0]!
      assert.strictEqual(yield* skippedOf("slow-outage"), first / 1000 - 1, "every tick before the first stored, counted")
      // the first tick given up (its one failure past its deadline), then the run's end
      assert.strictEqual(logged.length, 2, logged.slice(0, 5).join("\n"))
      assert.include(logged[1], `${first / 1000 - 1} ticks due from 1970-01-01T00:00:01.000Z to before ${new Date(first).toISOString()} skipped`)
    }).pipe(onFlaky(state, collector))
  })

  // spec change: a store slower than the ticks had every tick enqueued, later and later without
  // end; now it skips what it cannot keep up with (still none skipped for taking longer than a tick)
  it.effect("a store slower than the ticks (1.5 s per enqueue, a tick a second): a tick that comes while the one before is being enqueued is enqueued next, until the next one is due; those it cannot keep up with are skipped and counted, not enqueued later and later; with catchUp, each within it", () => {
    // each insert is at once, its answer 1.5 s later
    const state = { failing: 0, slow: 0, answer: 1500, calls: 0 }
    return Effect.gen(function*() {
      yield* JobQueue.repeat("fast", Echo, { n: 1 }, { cron: "* * * * * *" })
      yield* JobQueue.repeat("filled", Echo, { n: 1 }, { cron: "* * * * * *", catchUp: "1 hour" })
      yield* run(10_200, 50)
      // 1000 answered at 2500; 2000 (its deadline 3000) next, answered at 4000, when 3000's deadline
      // is reached: the schedule goes on at the tick due then, 4000 (on time)
      assert.deepStrictEqual(yield* ticksOf("fast"), [1000, 2000, 4000, 5000, 7000, 8000, 10_000])
      assert.strictEqual(yield* skippedOf("fast"), 3, "3000, 6000 and 9000 (10000 stored, its answer on the way)")
      const filled = yield* ticksOf("filled")
      assert.isAtLeast(filled.length, 6, filled.join())
      assert.deepStrictEqual(filled, filled.map((_, i) => 1000 * (i + 1)), "every second from the first, none skipped")
      assert.strictEqual(yield* skippedOf("filled"), 0)
    }).pipe(Effect.scoped, Effect.provide(flaky(state)), Effect.provideService(Metric.MetricRegistry, new Map()))
  })

  // spec change: an insert that reaches the store past its tick's deadline stores nothing (it was
  // stored, however late, and could run a tick twice: see 'hangs three periods' below)
  it.effect("a store whose inserts are reached 1.5 s after they are sent, a tick a second: none is stored by its deadline, so none is stored; each is counted, one warning for the run; with catchUp, each is stored, late", () => {
    const state = { failing: 0, slow: 1500, calls: 0 }
    const { collector, logged } = warnings()
    return Effect.gen(function*() {
      yield* JobQueue.repeat("held", Echo, { n: 1 }, { cron: "* * * * * *" })
      yield* JobQueue.repeat("filled", Echo, { n: 1 }, { cron: "* * * * * *", catchUp: "1 hour" })
      yield* run(10_200, 50)
      assert.deepStrictEqual(yield* ticksOf("held"), [])
      // 1000 and 2000 refused, 3000 skipped when 2000's answer came at its deadline (4000), and so on
      assert.strictEqual(yield* skippedOf("held"), 9, "1000 to 9000 (10000 is being enqueued)")
      assert.deepStrictEqual(logged.filter((line) => line.includes("repeat held")).length, 1, logged.join("\n"))
      assert.include(logged[0], "the enqueue of the tick of 1970-01-01T00:00:01.000Z reached the store past its deadline")
      const filled = yield* ticksOf("filled")
      assert.isAtLeast(filled.length, 6, filled.join())
      assert.deepStrictEqual(filled, filled.map((_, i) => 1000 * (i + 1)), "every second from the first, none skipped")
      assert.strictEqual(yield* skippedOf("filled"), 0)
    }).pipe(
      Effect.scoped,
      Effect.provide(flaky(state)),
      Effect.provide(Logger.layer([collector])),
      Effect.provideService(Metric.MetricRegistry, new Map())
    )
  })

  it.effect("a store that hangs 5.5 s on a tick's enqueue (a lock held on the table): the ticks that pass meanwhile are skipped, counted and logged once a run, not enqueued in a burst when it answers, nor the held one past its deadline; with catchUp, each is enqueued in order, once", () =>
    Effect.gen(function*() {
      // from a time of `base` (the TestClock goes on from one run to the next)
      const stalled = (base: number, catchUp: JobQueue.RepeatOptions["catchUp"]) =>
        Effect.gen(function*() {
          yield* TestClock.setTime(base)
          const state = { failing: 0, slow: 0, calls: 0, stall: 0 }
          const { collector, logged } = warnings()
          return yield* Effect.gen(function*() {
            yield* JobQueue.repeat("stall", Echo, { n: 1 }, { cron: "* * * * * *", ...(catchUp === undefined ? {} : { catchUp }) })
            yield* run(2_500, 50)
            state.stall = 5_500
            // 3000's enqueue answers at 8500
            yield* run(8_000, 50)
            const ticks = (yield* ticksOf("stall")).map((at) => at - base)
            return { ticks, skipped: yield* skippedOf("stall"), logged, calls: state.calls }
          }).pipe(onFlaky(state, collector))
        })
      const plain = yield* stalled(0, undefined)
      // 3000's insert reaches the store at 8500, past its deadline (4000): not stored; 4000 to 7000
      // skipped, 8000 (its deadline 9000 still ahead) enqueued at once
      assert.deepStrictEqual(plain.ticks, [1000, 2000, 8000, 9000, 10000])
      assert.strictEqual(plain.skipped, 5)
      assert.strictEqual(plain.logged.length, 2, plain.logged.join("\n"))
      assert.include(plain.logged[0], "the enqueue of the tick of 1970-01-01T00:00:03.000Z reached the store past its deadline")
      assert.include(plain.logged[1], "5 ticks due from 1970-01-01T00:00:03.000Z to before 1970-01-01T00:00:08.000Z skipped")
      const filled = yield* stalled(100_000, "10 seconds")
      assert.deepStrictEqual(filled.ticks, [1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10000])
      assert.strictEqual(filled.skipped, 0)
      assert.strictEqual(filled.calls, 10, "each tick enqueued once")
      assert.deepStrictEqual(filled.logged, [])
      // Infinity: none skipped, ever (the stall caught up however long)
      assert.deepStrictEqual((yield* stalled(200_000, Infinity)).ticks, filled.ticks)
    }))

  it.effect("a process whose timers fire 9.5 s late (frozen, or its event loop blocked): the ticks it passed are skipped and counted, it goes on at the next to come; with catchUp, each within it is enqueued, in order", () =>
    Effect.gen(function*() {
      const late = (base: number, catchUp: JobQueue.RepeatOptions["catchUp"], ahead = 9_500) =>
        Effect.gen(function*() {
          yield* TestClock.setTime(base)
          const state = { failing: 0, slow: 0, calls: 0, ahead: 0 }
          const { collector, logged } = warnings()
          return yield* Effect.gen(function*() {
            yield* JobQueue.repeat("late", Echo, { n: 1 }, { cron: "* * * * * *", ...(catchUp === undefined ? {} : { catchUp }) })
            yield* run(500, 50)
            // the timer of 1000 fires when the time is 1000 + ahead
            state.ahead = ahead
            yield* run(1_000, 50)
            return { ticks: (yield* ticksOf("late")).map((at) => at - base - ahead + 9_500), skipped: yield* skippedOf("late"), logged }
          }).pipe(onFlaky(state, collector))
        })
      const plain = yield* late(0, undefined)
      // reached at 10500: 10000 is still on time (its deadline is 11000), as the docs' rule says;
      // it was skipped with the ticks before it (the resume went on at the next tick to come)
      assert.deepStrictEqual([plain.ticks, plain.skipped], [[10_000, 11_000], 9])
      assert.deepStrictEqual(plain.logged.length, 1)
      const filled = yield* late(100_000, "5 seconds")
      assert.deepStrictEqual([filled.ticks, filled.skipped], [[6000, 7000, 8000, 9000, 10_000, 11_000], 5])
      // 5 hours late: 18,000 ticks, counted up to 10,000 (one by one: a cron's ticks are irregular)
      const hours = yield* late(200_000, undefined, 5 * 3_600_000 - 500)
      assert.deepStrictEqual([hours.ticks, hours.skipped], [[10_000, 11_000], 10_000])
      assert.include(hours.logged[0], "10000 or more ticks")
    }))

  it.effect("catchUp: a tick whose enqueue keeps failing is tried until catchUp after it (not only until the next tick), then the ticks after it, in order", () => {
    const state = { failing: 1_000_000, slow: 0, calls: 0 }
    return Effect.gen(function*() {
      yield* JobQueue.repeat("flaky", Echo, { n: 1 }, { cron: "* * * * *", catchUp: "5 minutes" })
      yield* run(150_000, 1000)
      state.failing = 0
      yield* run(6_000, 100)
      assert.deepStrictEqual(yield* ticksOf("flaky"), [60_000, 120_000])
      assert.strictEqual(yield* skippedOf("flaky"), 0)
    }).pipe(Effect.scoped, Effect.provide(flaky(state)), Effect.provideService(Metric.MetricRegistry, new Map()))
  })

  it.effect("a repeat whose scope closes and reopens: each tick once, the ticks in between skipped (not caught up); two schedules of one name at once enqueue each tick once", () =>
    Effect.gen(function*() {
      const first = yield* Scope.make()
      yield* Scope.provide(JobQueue.repeat("minutely", Echo, { n: 1 }, { cron: "* * * * *" }), first)
      yield* Scope.provide(JobQueue.repeat("minutely", Echo, { n: 1 }, { cron: "* * * * *" }), first)
      yield* run(2 * 60_000 + 500, 1000)
      yield* Scope.close(first, Exit.void)
      yield* run(3 * 60_000, 1000)
      const second = yield* Scope.make()
      yield* Scope.provide(JobQueue.repeat("minutely", Echo, { n: 1 }, { cron: "* * * * *" }), second)
      yield* run(2 * 60_000, 1000)
      yield* Scope.close(second, Exit.void)
      assert.deepStrictEqual((yield* ticksOf("minutely")).map((t) => t / 60_000), [1, 2, 6, 7])
      const jobs = yield* JobQueue.list()
      assert.strictEqual(jobs.length, 4)
      assert.isTrue(jobs.every((job) => job.visibleAt.getTime() === Number(job.id.split(":")[2])), "each job is due at its tick")
    }).pipe(Effect.provide(JobStore.memory())))

  it.effect("a stall that ends exactly at a tick's time: that tick is on time (its deadline is the next one) and is enqueued, not skipped with the ticks before it", () => {
    const state = { failing: 0, slow: 0, calls: 0, stall: 0 }
    return Effect.gen(function*() {
      yield* JobQueue.repeat("exact", Echo, { n: 1 }, { cron: "* * * * * *" })
      yield* run(2_500, 50)
      // 3000's enqueue reaches the store at 9000 (not stored: past its deadline), when 9000 is due
      state.stall = 6_000
      yield* run(8_000, 50)
      assert.deepStrictEqual(yield* ticksOf("exact"), [1000, 2000, 9000, 10_000])
      assert.strictEqual(yield* skippedOf("exact"), 6, "3000 to 8000")
    }).pipe(Effect.scoped, Effect.provide(flaky(state)), Effect.provideService(Metric.MetricRegistry, new Map()))
  })

  it.effect("a process whose timers fire 90 s late under a per-minute cron: the tick due at 2:00, whose deadline (3:00) is still ahead when it wakes at 2:30, is enqueued at once; only 1:00's is skipped (both were, against the docs' rule: a tick is enqueued until its deadline)", () => {
    const state = { failing: 0, slow: 0, calls: 0, ahead: 0 }
    const { collector, logged } = warnings()
    return Effect.gen(function*() {
      yield* JobQueue.repeat("woke", Echo, { n: 1 }, { cron: "* * * * *" })
      yield* run(30_000, 1000)
      // the timer of 60000 fires when the store's time is 150000
      state.ahead = 90_000
      yield* run(30_000, 1000)
      assert.deepStrictEqual(yield* ticksOf("woke"), [120_000])
      const [job] = yield* JobQueue.list()
      assert.strictEqual(job!.visibleAt.getTime(), 120_000, "due at its tick, so claimable at once")
      assert.strictEqual(yield* skippedOf("woke"), 1)
      assert.include(logged[0], "1 tick due from 1970-01-01T00:01:00.000Z to before 1970-01-01T00:02:00.000Z skipped")
      yield* run(30_000, 1000)
      assert.deepStrictEqual(yield* ticksOf("woke"), [120_000, 180_000])
    }).pipe(
      Effect.scoped,
      Effect.provide(flaky(state)),
      Effect.provide(Logger.layer([collector])),
      Effect.provideService(Metric.MetricRegistry, new Map())
    )
  })

  it.effect("a run of skipped ticks goes on at the tick its warning names: a daily 02:30 in America/St_Johns, whose DST day's tick (02:30 is in the gap: 03:30) comes next, was neither enqueued nor counted", () => {
    const state = { failing: 0, slow: 0, calls: 0, ahead: 0 }
    const { collector, logged } = warnings()
    return Effect.gen(function*() {
      yield* TestClock.setTime(Date.UTC(2024, 2, 7, 12))
      yield* JobQueue.repeat("gap", Echo, { n: 1 }, { cron: Cron.parseUnsafe("30 2 * * *", "America/St_Johns") })
      yield* run(3_600_000, 3_600_000)
      // the timer of 2024-03-08 02:30 fires 54 hours late: it and 03-09 are skipped, 03-10 (moved out
      // of the gap, its deadline 03-11 still ahead) is on time and enqueued at once
      state.ahead = 54 * 3_600_000
      yield* run(4 * 86_400_000, 3_600_000)
      assert.include(logged[0], "2 ticks due from 2024-03-08T06:00:00.000Z to before 2024-03-10T06:00:00.000Z skipped")
      assert.deepStrictEqual((yield* ticksOf("gap")).map((at) => new Date(at).toISOString()), [
        "2024-03-10T06:00:00.000Z",
        "2024-03-11T05:00:00.000Z",
        "2024-03-12T05:00:00.000Z",
        "2024-03-13T05:00:00.000Z"
      ])
      assert.strictEqual(yield* skippedOf("gap"), 2)
    }).pipe(onFlaky(state, collector))
  })

  // the tick's enqueue carries its deadline, which the store checks as the insert reaches it
  it.effect("a tick whose enqueue hangs three periods is not stored when the store answers (it was, and ran twice): another process had enqueued it, it ran and was purged once older than its period (as the docs allow)", () =>
    Effect.gen(function*() {
      const shared = Layer.succeedContext(yield* Layer.build(JobStore.memory()))
      const stall = { next: 0 }
      // the same store, whose next enqueue waits `stall.next` ms first (a statement held by a lock, a partition)
      const hanging = Layer.effect(
        JobStore.JobStore,
        Effect.map(JobStore.JobStore, (store): Store => ({
          ...store,
          enqueue: (job) =>
            Effect.suspend(() => {
              const wait = stall.next
              stall.next = 0
              return Effect.andThen(Effect.sleep(wait), store.enqueue(job))
            })
        }))
      ).pipe(Layer.provide(shared))
      const runs: Array<number> = []
      yield* Effect.provide(JobQueue.repeat("minutely", Echo, { n: 1 }, { cron: "* * * * *" }), shared)
      yield* Effect.provide(JobQueue.repeat("minutely", Echo, { n: 1 }, { cron: "* * * * *" }), hanging)
      yield* Effect.provide(
        JobQueue.consume({ handlers: [Task.handle(Echo, ({ n }) => Effect.sync(() => runs.push(n)))], concurrency: 1 }),
        shared
      )
      yield* run(59_000, 1000)
      stall.next = 180_000
      yield* run(72_000, 1000)
      // 60000 ran at once; it finished more than a period ago
      assert.strictEqual(yield* Effect.provide(JobQueue.purge({ olderThan: "61 seconds" }), shared), 1)
      yield* run(120_000, 1000)
      const ticks = yield* Effect.provide(ticksOf("minutely"), shared)
      assert.deepStrictEqual(ticks, [120_000, 180_000, 240_000], "60000 is not stored again")
      assert.strictEqual(runs.length, 4, "each tick ran once")
    }).pipe(Effect.scoped))

  it.effect("catchUp does not bring back the ticks no process ran: a schedule that starts, or whose scope closes and reopens, enqueues from then on (a first start would have enqueued all of its catch-up)", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(10 * 60_000 + 30_000)
      const minutely = { cron: "* * * * *", catchUp: "1 hour" } as const
      const first = yield* Scope.make()
      yield* Scope.provide(JobQueue.repeat("minutely", Echo, { n: 1 }, minutely), first)
      yield* run(60_000, 1000)
      yield* Scope.close(first, Exit.void)
      yield* run(3 * 60_000, 1000)
      const second = yield* Scope.make()
      yield* Scope.provide(JobQueue.repeat("minutely", Echo, { n: 1 }, minutely), second)
      yield* run(60_000, 1000)
      yield* Scope.close(second, Exit.void)
      assert.deepStrictEqual((yield* ticksOf("minutely")).map((t) => t / 60_000), [11, 15])
      assert.strictEqual(yield* skippedOf("minutely"), 0, "ticks no process ran are not this process's skips")
    }).pipe(Effect.provide(JobStore.memory()), Effect.provideService(Metric.MetricRegistry, new Map())))
})

/** A child of fixtures/durable-hostile-child.ts, followed by its lines. */
interface Child {
  readonly child: ChildProcess
  readonly lines: Array<string>
  readonly exited: Promise<void>
  stderr: string
}
const node = existsSync("node_modules/.bin/node") ? "node_modules/.bin/node" : process.execPath
const hostileChild = new URL("./fixtures/durable-hostile-child.ts", import.meta.url).pathname
const children: Array<ChildProcess> = []
afterAll(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
})
const spawnChild = (target: string, env: Record<string, string>, ...args: Array<string>): Child => {
  const child = spawn(node, [hostileChild, target, ...args], { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, ...env } })
  children.push(child)
  const result: Child = { child, lines: [], exited: new Promise((resolve) => child.on("close", () => resolve())), stderr: "" }
  let buffered = ""
  child.stdout!.on("data", (chunk: Buffer) => {
    buffered += chunk.toString()
    const lines = buffered.split("\n")
    buffered = lines.pop()!
    result.lines.push(...lines)
  })
  child.stderr!.on("data", (chunk: Buffer) => {
    result.stderr += chunk.toString()
  })
  return result
}

const processStores = processStoresOf(freshFile)

describe.each(processStores)("several processes on %s", (_name, makeStore) => {
  it("three processes run one per-second repeat: each tick is enqueued once, due at its tick, none skipped while any runs, also after one stops", async () => {
    const { target, env, layer } = makeStore()
    const runtime = ManagedRuntime.make(layer)
    runtimes.push(runtime)
    const ticks = () => runtime.runPromise(ticksOf("hostile", "ticks"))
    const procs = [0, 1, 2].map(() => spawnChild(target, env, "repeat", "* * * * * *"))
    try {
      await waitUntil(procs, () => procs.every((p) => p.lines.includes("ready")), "every process runs the schedule")
      const from = Date.now()
      // 4 ticks with all three running
      await untilRead(ticks, (t) => t.filter((at) => at > from).length >= 4, "4 ticks with every process")
      procs[0]!.child.kill("SIGTERM")
      await procs[0]!.exited
      const stopped = Date.now()
      await untilRead(ticks, (t) => t.filter((at) => at > stopped).length >= 3, "3 ticks after one process stopped")
    } finally {
      for (const p of procs) p.child.kill("SIGTERM")
      await Promise.all(procs.map((p) => p.exited))
    }
    const all = await ticks()
    const jobs = await runtime.runPromise(JobQueue.list({ queue: "ticks", limit: 100_000 }))
    assert.strictEqual(jobs.length, all.length, "only the schedule's jobs")
    assert.strictEqual(new Set(all).size, all.length)
    for (const [i, at] of all.entries()) {
      assert.strictEqual(at % 1000, 0, `a tick on a second: ${at}`)
      if (i > 0) assert.strictEqual(at - all[i - 1]!, 1000, `no tick skipped between ${all[i - 1]} and ${at}: ${all.join()}`)
    }
    for (const job of jobs) assert.strictEqual(job.visibleAt.getTime(), Number(job.id.split(":")[2]), "due at its tick")
  }, 180_000)

  it("three processes enqueue 20 jobs each with one dedup key at once: one job is created, every handle is its", async () => {
    const { target, env, layer } = makeStore()
    const runtime = ManagedRuntime.make(layer)
    runtimes.push(runtime)
    const procs = [0, 1, 2].map(() => spawnChild(target, env, "dedup", "the-key"))
    try {
      await waitUntil(procs, () => procs.every((p) => p.lines.includes("ready")), "every process is connected")
      for (const p of procs) p.child.stdin!.write("go\n")
      await waitUntil(procs, () => procs.every((p) => p.lines.includes("done")), "every process enqueued")
    } finally {
      // their work is done (or the test failed): nothing to shut down gracefully
      for (const p of procs) p.child.kill("SIGKILL")
      await Promise.all(procs.map((p) => p.exited))
    }
    const answers = procs.flatMap((p) => p.lines.filter((line) => line.startsWith("created ") || line.startsWith("existing ")))
    assert.strictEqual(answers.length, 60)
    assert.strictEqual(answers.filter((line) => line.startsWith("created ")).length, 1, answers.join("\n"))
    assert.strictEqual(new Set(answers.map((line) => line.split(" ")[1])).size, 1, "every handle is the one job's")
    const jobs = await runtime.runPromise(JobQueue.list({ limit: 1000 }))
    assert.strictEqual(jobs.length, 1)
    assert.strictEqual(jobs[0]!.dedupKey, "the-key")
  }, 120_000)

  it("stats read while two consumer processes drain 600 jobs of three priorities add up at every read: the states to the jobs, the counts by priority to the queued ones", async () => {
    const { target, env, layer } = makeStore()
    const runtime = ManagedRuntime.make(layer)
    runtimes.push(runtime)
    const JOBS = 600
    await runtime.runPromise(Effect.forEach(Array.from({ length: JOBS }, (_, n) => n), (n) => JobQueue.enqueue(Work, { n }, { priority: n % 3 })))
    const consumers = [0, 1].map(() => startConsumer(target, { concurrency: 4, lease: 10_000, jobMillis: 0, env }))
    let reads = 0
    const wrong: Array<string> = []
    try {
      while (true) {
        const stats = await runtime.runPromise(JobQueue.stats("default"))
        reads++
        const byPriority = stats.queuedByPriority.reduce((sum, p) => sum + p.count, 0)
        const total = stats.waiting + stats.delayed + stats.running + stats.succeeded + stats.dead + stats.cancelled
        if (byPriority !== stats.waiting + stats.delayed || total !== JOBS) {
          wrong.push(`queued ${stats.waiting}+${stats.delayed}, by priority ${byPriority}, total ${total}`)
        }
        if (stats.succeeded === JOBS) break
        if (consumers.some((c) => c.child.exitCode !== null)) throw new Error(`a consumer exited: ${consumers.map((c) => c.stderr).join("\n")}`)
      }
    } finally {
      for (const c of consumers) c.child.kill("SIGTERM")
      await Promise.all(consumers.map((c) => c.exited))
    }
    assert.deepStrictEqual(wrong.slice(0, 5), [], `${wrong.length} of ${reads} reads did not add up`)
    assert.isAtLeast(reads, 2)
  }, 120_000)

  it("a job running in a consumer process is cancelled from this one: 'requested', the process interrupts it, its awaiter here gets JobCancelled; a delayed job's cancel is at once, and a finished one's says so", async () => {
    const { target, env, layer } = makeStore()
    const runtime = ManagedRuntime.make(layer)
    runtimes.push(runtime)
    // every job the consumer starts holds on until interrupted; a 3 s lease (a heartbeat a second)
    const consumer = startConsumer(target, { concurrency: 2, lease: 3000, jobMillis: 0, env: { ...env, WORKPOOL_TEST_HOLD_FROM: "1" } })
    try {
      await waitUntil([consumer], () => consumer.lines.includes("ready"), "the consumer is ready")
      const running = await runtime.runPromise(JobQueue.enqueue(Work, { n: 7 }))
      const delayed = await runtime.runPromise(JobQueue.enqueue(Work, { n: 8 }, { delay: "1 hour" }))
      await waitUntil([consumer], () => consumer.started.includes(7), "job 7 started")
      const awaited = runtime.runPromise(Effect.flip(JobQueue.await(Work, running.id)))
      assert.strictEqual(await runtime.runPromise(JobQueue.cancel(delayed.id)), "cancelled")
      assert.strictEqual(await runtime.runPromise(JobQueue.cancel(running.id)), "requested")
      await waitUntil([consumer], () => consumer.lines.includes("interrupted 7"), "the consumer interrupted job 7")
      const error = await awaited
      assert.strictEqual(error._tag, "JobCancelled")
      assert.strictEqual(await runtime.runPromise(JobQueue.cancel(running.id)), "finished")
      assert.strictEqual(await runtime.runPromise(JobQueue.cancel(delayed.id)), "finished")
      const stats = await runtime.runPromise(JobQueue.stats("default"))
      assert.deepStrictEqual([stats.waiting, stats.delayed, stats.running, stats.cancelled], [0, 0, 0, 2])
      assert.notInclude(consumer.started, 8)
    } finally {
      consumer.child.kill("SIGTERM")
      await consumer.exited
    }
  }, 120_000)
})

/** A queue's counts recounted from its listed jobs, as `stats` should give them. */
const recount = (jobs: ReadonlyArray<JobQueue.JobInfo>) => {
  const count = (state: JobQueue.JobState) => jobs.filter((job) => job.state === state).length
  const byPriority = new Map<number, number>()
  for (const job of jobs) {
    if (job.state === "queued" || job.state === "delayed") byPriority.set(job.priority, (byPriority.get(job.priority) ?? 0) + 1)
  }
  return {
    waiting: count("queued"),
    delayed: count("delayed"),
    running: count("running"),
    succeeded: count("succeeded"),
    dead: count("dead"),
    cancelled: count("cancelled"),
    queuedByPriority: Array.from(byPriority).sort((a, b) => b[0] - a[0]).map(([priority, count]) => ({ priority, count }))
  }
}

describe.each(stores)("JobQueue on the %s store, live", (_name, makeInstances) => {
  it.live("stats add up at every step of 150 random enqueues, claims, settles (success, dead, retry, given back), cancels, redrives and purges, priorities and delays among them", () => {
    const instances = makeInstances()
    return Effect.gen(function*() {
      const store = yield* JobStore.JobStore
      // mulberry32, seeded: a failure can be replayed
      let seed = 1234
      const rand = () => {
        seed = (seed + 0x6d2b79f5) | 0
        let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
        t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296
      }
      const pick = <A>(items: ReadonlyArray<A>): A | undefined => items[Math.floor(rand() * items.length)]
      const ids: Array<string> = []
      const held: Array<string> = []
      const log: Array<string> = []
      for (let step = 0; step < 150; step++) {
        const r = rand()
        if (r < 0.3) {
          const priority = pick([-1, 0, 0, 2])!
          const delay = rand() < 0.25 ? "1 hour" : 0
          const dedupKey = rand() < 0.2 ? `k${Math.floor(rand() * 3)}` : undefined
          const job = yield* JobQueue.enqueue(Echo, { n: step }, { priority, delay, dedupKey, queue: "stats" })
          if (job.created) ids.push(job.id)
          log.push(`enqueue p${priority} ${delay} ${dedupKey} ${job.created}`)
        } else if (r < 0.5) {
          const { claims } = yield* store.claim({ queues: ["stats"], tasks: ["Echo"], limit: 1, lease: 600_000 })
          held.push(...claims.map((c) => c.token))
          log.push(`claim ${claims.length}`)
        } else if (r < 0.7 && held.length > 0) {
          const token = held.splice(Math.floor(rand() * held.length), 1)[0]!
          const how = pick(["succeeded", "dead", "retry", "retryLater", "release"] as const)!
          const settled = yield* store.settle(
            token,
            how === "release" ? { _tag: "Release" } : how === "retry" || how === "retryLater"
              ? { _tag: "Retry", delay: how === "retry" ? 0 : 3_600_000, exit: "null" }
              : { _tag: "Final", state: how, exit: null }
          )
          log.push(`settle ${how} ${settled}`)
        } else if (r < 0.8 && ids.length > 0) {
          log.push(`cancel ${yield* JobQueue.cancel(pick(ids)!).pipe(Effect.catchTag("JobNotFound", () => Effect.succeed("purged")))}`)
        } else if (r < 0.9 && ids.length > 0) {
          log.push(`redrive ${yield* JobQueue.redrive(pick(ids)!).pipe(Effect.catchTag("JobNotFound", () => Effect.succeed("purged")))}`)
        } else {
          yield* Effect.sleep(2) // finished before now
          log.push(`purge ${yield* JobQueue.purge({ olderThan: 0, states: rand() < 0.5 ? ["succeeded", "dead", "cancelled"] : ["dead"] })}`)
        }
        const stats = yield* JobQueue.stats("stats")
        const jobs = yield* JobQueue.list({ queue: "stats", limit: 100_000 })
        const { queuedByPriority, ...counts } = recount(jobs)
        assert.deepStrictEqual(
          { ...counts, queuedByPriority },
          {
            waiting: stats.waiting,
            delayed: stats.delayed,
            running: stats.running,
            succeeded: stats.succeeded,
            dead: stats.dead,
            cancelled: stats.cancelled,
            queuedByPriority: stats.queuedByPriority
          },
          `after step ${step}: ${log.slice(-5).join("; ")}`
        )
      }
    }).pipe(Effect.provide(instances()))
  }, 120_000)

  it.live("a job purged under its awaiter and its progress reader (cancelled, then purged from another instance): both end with JobNotFound or the job's end, never hang; a handle on a purged job fails JobNotFound", () => {
    const instances = makeInstances()
    return Effect.gen(function*() {
      const other = instances()
      const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { delay: "1 hour" })
      const awaiting = yield* Effect.forkChild(Effect.exit(JobQueue.await(Echo, job.id)))
      const reading = yield* Effect.forkChild(Effect.exit(Stream.runCollect(JobQueue.progressChanges(job.id))))
      yield* Effect.sleep(20)
      yield* Effect.provide(Effect.gen(function*() {
        assert.strictEqual(yield* JobQueue.cancel(job.id), "cancelled")
        yield* Effect.sleep(2)
        assert.strictEqual(yield* JobQueue.purge({ olderThan: 0 }), 1)
      }), other)
      const awaited = yield* Fiber.join(awaiting).pipe(Effect.timeout("20 seconds"))
      assert.include(["JobNotFound", "JobCancelled"], failure(awaited))
      const read = yield* Fiber.join(reading).pipe(Effect.timeout("20 seconds"))
      assert.include(["JobNotFound", "success"], failure(read))
      assert.strictEqual(failure(yield* Effect.exit(job.await)), "JobNotFound")
      assert.strictEqual(failure(yield* Effect.exit(job.status)), "JobNotFound")
      assert.strictEqual(failure(yield* Effect.exit(job.cancel)), "JobNotFound")
      assert.strictEqual(failure(yield* Effect.exit(Stream.runCollect(job.progressChanges))), "JobNotFound")
      assert.strictEqual(failure(yield* Effect.exit(JobQueue.redrive(job.id))), "JobNotFound")
    }).pipe(Effect.provide(instances()))
  }, 60_000)

  it.live("dedup keys: a delayed job and a runAt job hold their key until final; cancel frees it; a key is per queue; 30 concurrent enqueues through two instances create one job", () => {
    const instances = makeInstances()
    return Effect.gen(function*() {
      const delayed = yield* JobQueue.enqueue(Echo, { n: 1 }, { dedupKey: "d", delay: "1 hour" })
      const again = yield* JobQueue.enqueue(Echo, { n: 2 }, { dedupKey: "d" })
      assert.deepStrictEqual([again.id, again.created], [delayed.id, false])
      assert.strictEqual((yield* JobQueue.status(delayed.id)).state, "delayed")
      const past = yield* JobQueue.enqueue(Echo, { n: 3 }, { dedupKey: "r", runAt: new Date(Date.now() - 60_000) })
      assert.isFalse((yield* JobQueue.enqueue(Echo, { n: 4 }, { dedupKey: "r", runAt: new Date(Date.now() + 60_000) })).created)
      assert.strictEqual((yield* JobQueue.status(past.id)).state, "queued")
      assert.strictEqual(yield* JobQueue.cancel(delayed.id), "cancelled")
      const fresh = yield* JobQueue.enqueue(Echo, { n: 5 }, { dedupKey: "d" })
      assert.isTrue(fresh.created)
      assert.notStrictEqual(fresh.id, delayed.id)
      assert.isTrue((yield* JobQueue.enqueue(Echo, { n: 6 }, { dedupKey: "d", queue: "other" })).created)
      const other = instances()
      const handles = yield* Effect.forEach(
        Array.from({ length: 30 }, (_, n) => n),
        (n) => JobQueue.enqueue(Echo, { n }, { dedupKey: "race", queue: "race" }).pipe(n % 2 === 0 ? Effect.provide(other) : (e) => e),
        { concurrency: "unbounded" }
      )
      assert.strictEqual(handles.filter((h) => h.created).length, 1)
      assert.strictEqual(new Set(handles.map((h) => h.id)).size, 1)
      assert.strictEqual((yield* JobQueue.stats("race")).waiting, 1)
    }).pipe(Effect.provide(instances()))
  }, 60_000)

  it.live("pause while a consumer runs a job of the queue: the job finishes, nothing more starts until resume; stats say paused", () => {
    const instances = makeInstances()
    return Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const started: Array<number> = []
      yield* JobQueue.consume({
        handlers: [Task.handle(Echo, ({ n }) => Effect.andThen(Effect.sync(() => started.push(n)), Effect.as(Deferred.await(gate), n)))],
        concurrency: 1,
        poll: 20
      })
      const first = yield* JobQueue.enqueue(Echo, { n: 1 })
      while (started.length === 0) yield* Effect.sleep(10)
      yield* Effect.provide(JobQueue.pause("default"), instances())
      const second = yield* JobQueue.enqueue(Echo, { n: 2 })
      yield* Deferred.succeed(gate, undefined)
      assert.strictEqual(yield* first.await, 1)
      const stats = yield* JobQueue.stats("default")
      assert.deepStrictEqual([stats.paused, stats.waiting, stats.running, stats.succeeded], [true, 1, 0, 1])
      // a few polls of the paused queue: still waiting
      yield* Effect.sleep(200)
      assert.deepStrictEqual(started, [1])
      yield* JobQueue.resume("default")
      assert.strictEqual(yield* second.await.pipe(Effect.timeout("20 seconds")), 2)
    }).pipe(Effect.scoped, Effect.provide(instances()))
  }, 60_000)
})

describe.each(stores)("wake-ups on the %s store, live", (_name, makeInstances) => {
  it.live("a queue resumed from another instance starts its waiting job on an idle consumer whose poll is an hour (it does not wait for the poll)", () => {
    const instances = makeInstances()
    return Effect.gen(function*() {
      const other = instances()
      const started = yield* Deferred.make<number>()
      yield* Effect.provide(JobQueue.pause("default"), other)
      yield* JobQueue.consume({
        handlers: [Task.handle(Echo, ({ n }) => Effect.as(Deferred.succeed(started, n), n))],
        concurrency: 1,
        poll: "1 hour"
      })
      yield* Effect.provide(JobQueue.enqueue(Echo, { n: 1 }), other)
      // the enqueue's wake-up finds the queue paused; the consumer sleeps its poll
      yield* Effect.sleep(300)
      assert.isFalse(yield* Deferred.isDone(started))
      yield* Effect.provide(JobQueue.resume("default"), other)
      const n = yield* Deferred.await(started).pipe(Effect.timeout("20 seconds"), Effect.option)
      assert.deepStrictEqual(n._tag, "Some", "the job did not start within 20 s of the resume")
    }).pipe(Effect.scoped, Effect.provide(instances()))
  }, 60_000)
})

/**
 * A job whose cancel was asked for while it ran ends cancelled by its consumer's settle (a retry, a
 * give-back: 62fbd34) or by a reaper once its lease expired ("as a reap does", model.ts). Either
 * way its `cancelRequested` is over: the settle, and a final settle, clear it on every store, as
 * Redis' reap does; the memory, SQLite and Postgres reaps left it set on the ended job, so that its
 * status said a cancel was still on its way, on three stores of four.
 */
describe("a job cancelled while it ran, then reaped", () => {
  const fresh: Array<[string, () => Layer.Layer<JobStore.JobStore, any>]> = [
    ["memory", () => JobStore.memory()],
    ["SQLite", () => JobStore.sqlite({ filename: freshFile() })]
  ]
  if (Pg.enabled) fresh.push(["Postgres", () => Pg.testLayer()])
  if (Rd.enabled) fresh.push(["Redis", () => Rd.testLayer()])
  for (const [name, layer] of fresh) {
    it.effect(`${name}: ends cancelled, its cancel no longer requested (as a settle leaves it)`, () =>
      Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { maxAttempts: 3 })
        const [claim] = (yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 1, lease: 1000 })).claims
        assert.strictEqual(claim?.job.id, job.id)
        assert.strictEqual(yield* JobQueue.cancel(job.id), "requested")
        assert.isTrue((yield* JobQueue.status(job.id)).cancelRequested)
        yield* TestClock.adjust(2000)
        assert.strictEqual(yield* store.reap([0]), 1)
        const info = yield* JobQueue.status(job.id)
        assert.deepStrictEqual([info.state, info.cancelRequested], ["cancelled", false])
        assert.strictEqual(failure(yield* Effect.exit(JobQueue.await(Echo, job.id))), "JobCancelled")
      }).pipe(Effect.scoped, Effect.provide(layer())), 60_000)
  }
})

describe("WorkPool.JobContext in a durable handler", () => {
  const Flaky = Task.make("FlakyContext", { payload: Schema.Number, success: Schema.String })

  // JobInfo.attempt says "1, then one more per retry", and the README that a job reads its attempt
  // from its JobContext: a durable job's retries are retries too, though each runs as a new job of
  // the consumer's pool (whose own attempt is always 1)
  it.effect("attempt counts the durable job's attempts (1, 2, 3), and progress still reaches the store", () =>
    Effect.gen(function*() {
      const attempts: Array<number> = []
      yield* JobQueue.consume({
        handlers: [Task.handle(Flaky, () =>
          Effect.gen(function*() {
            const context = yield* WorkPool.JobContext
            attempts.push(context.attempt)
            yield* context.progress({ attempt: context.attempt })
            if (attempts.length < 3) return yield* Effect.die("not yet")
            return "done"
          }))],
        concurrency: 1,
        retry: { times: 5 },
        shutdownTimeout: 0
      })
      const job = yield* JobQueue.enqueue(Flaky, 1, { maxAttempts: 5 })
      for (let i = 0; i < 10; i++) yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* job.await, "done")
      assert.deepStrictEqual(attempts, [1, 2, 3])
      const info = yield* job.status
      assert.deepStrictEqual([info.attempts, info.progress], [3, { attempt: 3 }])
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory())))
})

describe("JobQueue.list", () => {
  // the store's list is ordered and limited: a filter on a state the store keeps as it is needs no
  // more rows than the page. Only queued and delayed, one without the other, share a stored state
  it.effect("asks the store for the page it returns, unless queued and delayed must be told apart", () =>
    Effect.gen(function*() {
      const asked: Array<number> = []
      const store = Layer.effect(
        JobStore.JobStore,
        Effect.map(JobStore.JobStore, (inner): Store => ({
          ...inner,
          list: (filter) => Effect.suspend(() => (asked.push(filter.limit), inner.list(filter)))
        }))
      ).pipe(Layer.provide(JobStore.memory()))
      yield* Effect.gen(function*() {
        for (let i = 0; i < 3; i++) yield* JobQueue.enqueue(Echo, { n: i }, { queue: "listed" })
        yield* JobQueue.enqueue(Echo, { n: 9 }, { queue: "listed", delay: "1 hour" })
        assert.lengthOf(yield* JobQueue.list({ queue: "listed", state: "dead", limit: 5 }), 0)
        assert.lengthOf(yield* JobQueue.list({ queue: "listed", state: ["queued", "delayed"], limit: 2 }), 2)
        assert.lengthOf(yield* JobQueue.list({ queue: "listed", limit: 3 }), 3)
        assert.deepStrictEqual(asked, [5, 2, 3])
        // one without the other: read further, then told apart by time
        assert.deepStrictEqual((yield* JobQueue.list({ queue: "listed", state: "delayed", limit: 1 })).map((job) => job.state), ["delayed"])
        assert.deepStrictEqual((yield* JobQueue.list({ queue: "listed", state: "queued", limit: 5 })).map((job) => job.state), ["queued", "queued", "queued"])
      }).pipe(Effect.provide(store))
    }))
})
