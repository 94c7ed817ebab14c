/**
 * `JobQueue.consume` given what an untyped caller may pass: each bad option fails the start with
 * `InvalidPoolConfig` naming it, before anything runs (the conformance suite has the common ones).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Metric, Schema } from "effect"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import type { InvalidPoolConfig } from "../src/PoolError.ts"
import * as Task from "../src/Task.ts"
import * as WorkPool from "../src/WorkPool.ts"

const Echo = Task.make("Echo", { payload: Schema.Number, success: Schema.Number })
const handlers = [Task.handle(Echo, (n) => Effect.succeed(n))]

/** The field the start was refused for, and why. */
const refused = (options: Record<string, unknown>) =>
  Effect.map(
    Effect.flip(Effect.scoped(JobQueue.consume({ handlers, concurrency: 1, ...options } as never))),
    (error) => {
      assert.strictEqual(error._tag, "InvalidPoolConfig", JSON.stringify(error))
      return [(error as InvalidPoolConfig).field, (error as InvalidPoolConfig).reason] as const
    }
  )

describe("JobQueue.consume refuses", () => {
  it.effect("a handler whose task is not a Task (it would fail every job it claims, one attempt at a time)", () =>
    Effect.gen(function*() {
      const [field, reason] = yield* refused({ handlers: [{ task: { name: "Echo" }, run: () => Effect.succeed(1) }] })
      assert.strictEqual(field, "handlers[0].task")
      assert.include(reason, "Task.make")
    }).pipe(Effect.provide(JobStore.memory())))

  it.effect("a null retry, as WorkPool does (undefined is the default, null is not)", () =>
    Effect.gen(function*() {
      assert.strictEqual((yield* refused({ retry: null }))[0], "retry")
    }).pipe(Effect.provide(JobStore.memory())))

  it.effect("a lease too long for a store to add to its time (Postgres' bigint overflowed at every claim)", () =>
    Effect.gen(function*() {
      for (const lease of [1e300, Number.MAX_VALUE, 2e15]) {
        const [field, reason] = yield* refused({ lease })
        assert.strictEqual(field, "lease")
        assert.include(reason, "at most")
      }
    }).pipe(Effect.provide(JobStore.memory())))
})

describe("JobQueue.enqueue refuses what a store cannot keep (Postgres failed with 'bigint out of range', 'payload string too long')", () => {
  const field = (options: Record<string, unknown>) =>
    Effect.map(Effect.flip(JobQueue.enqueue(Echo, 1, options as JobQueue.EnqueueOptions)), (error) => {
      assert.strictEqual(error._tag, "InvalidJobOptions", JSON.stringify(error))
      return (error as { field: string }).field
    })

  it.effect("a delay or a timeout past 1e15 ms, a queue name over 1,000 characters; nothing is stored", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* field({ delay: 1e300 }), "delay")
      assert.strictEqual(yield* field({ delay: 2e15 }), "delay")
      assert.strictEqual(yield* field({ timeout: 1e300 }), "timeout")
      assert.strictEqual(yield* field({ queue: "q".repeat(1001) }), "queue")
      assert.strictEqual((yield* JobQueue.list()).length, 0)
      // the bounds themselves are kept, and Infinity is still "no timeout"
      yield* JobQueue.enqueue(Echo, 1, { delay: 1e15, timeout: 1e15, queue: "q".repeat(1000) })
      yield* JobQueue.enqueue(Echo, 1, { timeout: Infinity })
      const [[queueField], [queuesField]] = [
        yield* Effect.flip(JobQueue.stats("q".repeat(1001))).pipe(Effect.map((e) => [(e as { field: string }).field])),
        yield* refused({ queues: ["default", "q".repeat(1001)] }).pipe(Effect.map(([f]) => [f]))
      ]
      assert.deepStrictEqual([queueField, queuesField], ["queue", "queues[1]"])
    }).pipe(Effect.provide(JobStore.memory())))

  it.effect("dedupWhile, dedupFor or dedupReplace without a dedupKey, a dedupWhile or dedupReplace of no mode, a dedupFor not finite above 0; nothing is stored", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* field({ dedupWhile: "queued" }), "dedupWhile")
      assert.strictEqual(yield* field({ dedupFor: "1 minute" }), "dedupFor")
      assert.strictEqual(yield* field({ dedupKey: "k", dedupWhile: "started" }), "dedupWhile")
      assert.strictEqual(yield* field({ dedupKey: "k", dedupFor: 0 }), "dedupFor")
      assert.strictEqual(yield* field({ dedupKey: "k", dedupFor: Infinity }), "dedupFor")
      assert.strictEqual(yield* field({ dedupKey: "k", dedupFor: 2e15 }), "dedupFor")
      assert.strictEqual(yield* field({ dedupReplace: "payload" }), "dedupReplace")
      assert.strictEqual(yield* field({ dedupKey: "k", dedupReplace: "replace" }), "dedupReplace")
      // pg-boss's name is pointed to ours
      const error = yield* Effect.flip(JobQueue.enqueue(Echo, 1, { singletonSeconds: 60 } as JobQueue.EnqueueOptions))
      assert.match(JSON.stringify(error), /dedupFor/)
      assert.strictEqual((yield* JobQueue.list()).length, 0)
      // the defaults spelt out are taken
      yield* JobQueue.enqueue(Echo, 1, { dedupKey: "k", dedupWhile: "running", dedupFor: 1.5, dedupReplace: "payload" })
    }).pipe(Effect.provide(JobStore.memory())))
})

describe("JobQueue.repeat refuses", () => {
  const field = (options: Record<string, unknown>) =>
    Effect.map(
      Effect.flip(Effect.scoped(JobQueue.repeat("r", Echo, 1, { cron: "* * * * *", ...options } as JobQueue.RepeatOptions))),
      (error) => {
        assert.strictEqual(error._tag, "InvalidJobOptions", JSON.stringify(error))
        return (error as { field: string }).field
      }
    )

  it.effect("each bad option its jobs share with an enqueue's, naming it; nothing is stored", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* field({ queue: "" }), "queue")
      assert.strictEqual(yield* field({ queue: "q".repeat(1001) }), "queue")
      assert.strictEqual(yield* field({ priority: Number.NaN }), "priority")
      assert.strictEqual(yield* field({ timeout: 1e300 }), "timeout")
      assert.strictEqual(yield* field({ timeout: -1 }), "timeout")
      assert.strictEqual(yield* field({ maxAttempts: 0 }), "maxAttempts")
      assert.strictEqual(yield* field({ maxAttempts: 1.5 }), "maxAttempts")
      assert.strictEqual(yield* field({ retry: { fixed: -1 } }), "retry.fixed")
      assert.strictEqual((yield* JobQueue.list()).length, 0)
    }).pipe(Effect.provide(JobStore.memory())))

  it.effect("a catchUp that is not a duration of at least 0, and graphile-worker's backfill key, naming catchUp; nothing is stored", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* field({ catchUp: -1 }), "catchUp")
      assert.strictEqual(yield* field({ catchUp: "soon" }), "catchUp")
      assert.strictEqual(yield* field({ catchUp: Number.NaN }), "catchUp")
      const error = yield* Effect.flip(Effect.scoped(JobQueue.repeat("r", Echo, 1, { cron: "* * * * *", backfillPeriod: "1 hour" } as never)))
      assert.strictEqual((error as { field: string }).field, "backfillPeriod")
      assert.include((error as { reason: string }).reason, "catchUp")
      assert.strictEqual((yield* JobQueue.list()).length, 0)
    }).pipe(Effect.provide(JobStore.memory())))
})

describe("aging 0: one rule on WorkPool and JobQueue", () => {
  // WorkPool refused it (0 would mean "at once"; Infinity is none) while setAging and consume took it
  // as none: the same option meant two things
  it.effect("setAging and consume refuse it as WorkPool.make does, same field, value and reason; the queue's aging is kept", () =>
    Effect.gen(function*() {
      yield* JobQueue.setAging("q", "1 minute")
      for (const aging of [0, "0 millis"] as const) {
        const pool = yield* Effect.flip(WorkPool.make({ concurrency: 1, aging }))
        const expected = [pool._tag, pool.field, pool.value, pool.reason]
        assert.deepStrictEqual(expected.slice(0, 2), ["InvalidPoolConfig", "aging"])
        const set = yield* Effect.flip(JobQueue.setAging("q", aging))
        assert.deepStrictEqual([set._tag, "field" in set && set.field, "value" in set && set.value, "reason" in set && set.reason], [
          "InvalidJobOptions",
          ...expected.slice(1)
        ])
        const consumer = yield* Effect.flip(Effect.scoped(JobQueue.consume({ handlers, concurrency: 1, queues: ["q"], aging })))
        assert.deepStrictEqual([consumer._tag, "field" in consumer && consumer.field, "value" in consumer && consumer.value, "reason" in consumer && consumer.reason], expected)
      }
      assert.strictEqual((yield* JobQueue.stats("q")).aging, 60_000)
      // Infinity is none on both
      yield* WorkPool.make({ concurrency: 1, aging: Infinity })
      yield* JobQueue.setAging("q", Infinity)
      assert.strictEqual((yield* JobQueue.stats("q")).aging, 0)
    }).pipe(Effect.provide(JobStore.memory())))
})

describe("JobQueue.purge refuses", () => {
  it.effect("states that are not an array (a single state died with 'states.forEach is not a function')", () =>
    Effect.gen(function*() {
      for (const states of ["dead", null, { 0: "dead" }]) {
        const error = yield* Effect.flip(JobQueue.purge({ olderThan: 0, states: states as never }))
        assert.strictEqual(error._tag, "InvalidJobOptions")
        assert.strictEqual((error as { field: string }).field, "states")
      }
    }).pipe(Effect.provide(JobStore.memory())))
})

describe("JobQueue.setRetention refuses", () => {
  it.effect("a retention whose reading throws (a getter, a Proxy) with InvalidJobOptions, not a defect", () =>
    Effect.gen(function*() {
      const getter = { get succeeded(): never { throw new Error("no") } }
      const proxy = new Proxy({}, { ownKeys: () => { throw new Error("trap") } })
      for (const retention of [getter, proxy, { dead: getter }]) {
        const error = yield* Effect.flip(JobQueue.setRetention("q", retention as never))
        assert.strictEqual(error._tag, "InvalidJobOptions")
      }
      assert.strictEqual((yield* JobQueue.stats("q")).retention, undefined)
    }).pipe(Effect.provide(JobStore.memory())))
})

describe("JobQueue's queue settings", () => {
  it.effect("answer void whatever the store's configure returns (Postgres answered its rows, Redis its script's 1)", () =>
    Effect.gen(function*() {
      const answers = Layer.effect(
        JobStore.JobStore,
        Effect.map(JobStore.JobStore, (store) => ({
          ...store,
          configure: (queue: string, settings: Parameters<typeof store.configure>[1]) =>
            Effect.as(store.configure(queue, settings), [{ notified: true }] as unknown as void)
        }))
      ).pipe(Layer.provide(JobStore.memory()))
      const answered = yield* Effect.all([
        JobQueue.pause("q"),
        JobQueue.resume("q"),
        JobQueue.setAging("q", "1 minute"),
        JobQueue.setRateLimit("q", { limit: 1, interval: "1 second" }),
        JobQueue.setRetention("q", { succeeded: { count: 1 } })
      ]).pipe(Effect.provide(answers))
      assert.deepStrictEqual(answered, [undefined, undefined, undefined, undefined, undefined])
    }))
})

describe("JobQueue.consume's name: its pool's, in its metrics", () => {
  /** The names of the pools whose series are in the registry. */
  const poolNames = Effect.map(Metric.snapshot, (all) => new Set(all.flatMap((m) => m.attributes?.pool === undefined ? [] : [String(m.attributes.pool)])))
  const fresh = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.provideService(effect, Metric.MetricRegistry, new Map())

  it.effect("the series carry the name given", () =>
    Effect.gen(function*() {
      yield* JobQueue.consume({ queues: ["emails"], handlers, concurrency: 1, name: "mailer" })
      assert.deepStrictEqual([...yield* poolNames], ["mailer"])
    }).pipe(Effect.scoped, fresh, Effect.provide(JobStore.memory())))

  it.effect("a bad name fails the start, typed, naming the field; so does a name a live pool has", () =>
    Effect.gen(function*() {
      for (const name of ["", 5, null]) assert.strictEqual((yield* refused({ name }))[0], "name")
      yield* WorkPool.make({ concurrency: 1, name: "taken" })
      const [field, reason] = yield* refused({ name: "taken" })
      assert.strictEqual(field, "name")
      assert.include(reason, "no other live pool")
    }).pipe(Effect.scoped, fresh, Effect.provide(JobStore.memory())))

  it.effect("the default is the queues' (the same at every run of a program, whatever started before: it was workpool-<n>, by start order); a second consumer of the same queues gets #2", () =>
    Effect.gen(function*() {
      const program = Effect.scoped(Effect.gen(function*() {
        yield* JobQueue.consume({ queues: ["emails"], handlers, concurrency: 1 })
        yield* JobQueue.consume({ queues: ["emails"], handlers, concurrency: 1 })
        yield* JobQueue.consume({ queues: ["a", "b", "c", "d", "e"], handlers, concurrency: 1 })
        return [...yield* poolNames].sort()
      }))
      const first = yield* program
      yield* Effect.scoped(WorkPool.make({ concurrency: 1 })) // a pool made between the runs
      assert.deepStrictEqual(first, ["consumer:a,b,c,+2", "consumer:emails", "consumer:emails#2"])
      assert.deepStrictEqual(yield* program, first)
    }).pipe(fresh, Effect.provide(JobStore.memory())))
})
