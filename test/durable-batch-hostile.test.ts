/**
 * Hostile tests of JobQueue.enqueueAll on every store: what a batch stores against what `enqueue`
 * stores for the same payloads and options, bad items and iterables, partial failures and races.
 */
import { assert, describe, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Layer, Schema } from "effect"
import { afterAll } from "vitest"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as Task from "../src/Task.ts"
import * as Pg from "./durable/postgres.ts"
import * as Rd from "./durable/redis.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wp-batch-hostile-"))
let files = 0
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const stores: Array<[string, () => Layer.Layer<JobStore.JobStore, any>]> = [
  ["memory", () => Layer.fresh(JobStore.memory())],
  ["SQLite", () => JobStore.sqlite({ filename: path.join(dir, `f${files++}.db`) })]
]
if (Pg.enabled) stores.push(["Postgres", () => Pg.testLayer(Pg.freshSchema())])
if (Rd.enabled) stores.push(["Redis", () => Rd.testLayer(Rd.freshPrefix())])

const Text = Task.make("Text", { payload: Schema.Unknown, success: Schema.Unknown })

describe.each(stores)("enqueueAll on the %s store", (_name, layer) => {
  it.live("stores what enqueue stores, for edge payloads and options", () =>
    Effect.gen(function*() {
      const store = yield* JobStore.JobStore
      const cases: Array<[unknown, JobQueue.EnqueueOptions]> = [
        ["\ud800 lone", {}],
        ["a\u0000b", {}],
        ["😀\u2028\u2029", { dedupKey: "😀ü\u2028" }],
        ["x".repeat(100_000), {}],
        [{ big: 1e308, small: 5e-324, neg: -0 }, { priority: 1e15 }],
        [1, { priority: -1e15 }],
        [2, { priority: -0 }],
        [3, { priority: 5e-324 }],
        [4, { priority: 0.1 }],
        [5, { runAt: new Date(8.64e15) }],
        [6, { runAt: new Date(-8.64e15) }],
        [7, { delay: 1e15 }],
        [8, { timeout: 1e15, maxAttempts: 1_000_000 }],
        [9, { retry: { exponential: "1 second", factor: 3, max: "1 hour" } }],
        [10, { retry: { fixed: 1.5 } }],
        [11, { delay: 1.5 }],
        [12, { queue: "q\u00e9😀" }],
        [13, { dedupKey: "k\\u0000" }],
        [14, { dedupKey: "\\" }],
        [15, { dedupKey: "'\"" }]
      ]
      // a row as both calls store it: its times from its own creation (a runAt: the time itself)
      const strip = (row: any, runAt: boolean) => {
        const { id: _id, createdAt, visibleAt, finishedAt: _f, ...rest } = row
        return { ...rest, priority: Object.is(rest.priority, -0) ? 0 : rest.priority, due: runAt ? visibleAt : visibleAt - createdAt }
      }
      for (const [i, [payload, options]] of cases.entries()) {
        const one = yield* JobQueue.enqueue(Text, payload, options)
        yield* JobQueue.cancel(one.id)
        const all = yield* JobQueue.enqueueAll(Text, [{ payload, options }, { payload, options }])
        assert.strictEqual(all[1]!.created, options.dedupKey === undefined, `case ${i}`)
        yield* JobQueue.cancel(all[0]!.id)
        assert.deepStrictEqual(
          strip(yield* store.get(all[0]!.id), options.runAt !== undefined),
          strip(yield* store.get(one.id), options.runAt !== undefined),
          `case ${i}`
        )
      }
    }).pipe(Effect.provide(layer())), 60_000)
})

const Echo = Task.make("Echo", { payload: Schema.Struct({ n: Schema.Number }), success: Schema.Number })

describe("enqueueAll's options, read as enqueue reads them", () => {
  it.effect("options given by getters (a class's defaults, an item's options as a class instance) apply to every item, as enqueue applies them: a spread merge dropped them for items with options of their own", () =>
    Effect.gen(function*() {
      class Defaults {
        get queue() {
          return "imports"
        }
        get maxAttempts() {
          return 7
        }
      }
      class Urgent {
        get priority() {
          return 5
        }
      }
      const single = yield* JobQueue.enqueue(Echo, { n: 0 }, new Urgent())
      assert.strictEqual((yield* JobQueue.status(single.id)).priority, 5, "enqueue reads an options getter")
      const jobs = yield* JobQueue.enqueueAll(Echo, [
        { payload: { n: 1 } },
        { payload: { n: 2 }, options: { priority: 1 } },
        { payload: { n: 3 }, options: new Urgent() }
      ], new Defaults())
      const infos = yield* Effect.forEach(jobs, (job) => JobQueue.status(job.id))
      assert.deepStrictEqual(
        infos.map((info) => [info.queue, info.maxAttempts, info.priority]),
        [["imports", 7, 0], ["imports", 7, 1], ["imports", 7, 5]]
      )
    }).pipe(Effect.provide(Layer.fresh(JobStore.memory()))))
})

describe.skipIf(!Pg.enabled)("enqueueAll on Postgres, two producers at once", () => {
  it.live("two batches of the same dedup keys in opposite orders: each key's job is created once and both calls get its handle (one failed with 'deadlock detected': each transaction held the keys it had inserted and waited for the other's)", () =>
    Effect.gen(function*() {
      const keys = Array.from({ length: 2000 }, (_, i) => `k${i}`)
      const batch = (order: ReadonlyArray<string>) =>
        JobQueue.enqueueAll(Echo, order.map((key, i) => ({ payload: { n: i }, options: { dedupKey: key } })))
      const [forward, backward] = yield* Effect.all([batch(keys), batch([...keys].reverse())], { concurrency: "unbounded" })
      const created = [...forward, ...backward].filter((job) => job.created).length
      assert.strictEqual(created, keys.length, "each key's job created once")
      keys.forEach((_, i) => assert.strictEqual(forward[i]!.id, backward[keys.length - 1 - i]!.id, `key ${i}: one job`))
      assert.strictEqual((yield* JobQueue.stats("default")).waiting, keys.length)
    }).pipe(Effect.provide(Pg.testLayer(Pg.freshSchema()))), 60_000)
})

describe("enqueueAll on the memory store, many dedup keys", () => {
  it.live("50,000 items with dedup keys in one call end within 15 s, every key's job created once (each item looked through every job for its key: quadratic, 24 s here, the process blocked all along)", () =>
    Effect.gen(function*() {
      const items = Array.from({ length: 50_000 }, (_, i) => ({ payload: { n: i }, options: { dedupKey: `k${i % 40_000}` } }))
      const from = Date.now()
      const jobs = yield* JobQueue.enqueueAll(Echo, items)
      const took = Date.now() - from
      assert.isBelow(took, 15_000)
      assert.strictEqual(jobs.filter((job) => job.created).length, 40_000)
      jobs.slice(40_000).forEach((job, i) => assert.strictEqual(job.id, jobs[i]!.id))
    }).pipe(Effect.provide(Layer.fresh(JobStore.memory()))), 120_000)
})

describe.skipIf(!Pg.enabled)("enqueueAll on Postgres, a batch of more than 32 queues", () => {
  it.live("and a batch of one of its queues, the same dedup keys in opposite orders: each key's job is created once (the wide batch took the schema's lock, the narrow one its queue's, so they did not take turns: 'deadlock detected')", () =>
    Effect.gen(function*() {
      const keys = Array.from({ length: 2000 }, (_, i) => `k${i}`)
      const item = (key: string, i: number, queue = "default") => ({ payload: { n: i }, options: { dedupKey: key, queue } })
      // 32 other queues, one key each, after the shared ones: 33 queues in all
      const others = Array.from({ length: 32 }, (_, q) => item("x", q, `other${q}`))
      const [wide, narrow] = yield* Effect.all([
        JobQueue.enqueueAll(Echo, [...keys.map((key, i) => item(key, i)), ...others]),
        JobQueue.enqueueAll(Echo, [...keys].reverse().map((key, i) => item(key, i)))
      ], { concurrency: "unbounded" })
      keys.forEach((_, i) => assert.strictEqual(wide[i]!.id, narrow[keys.length - 1 - i]!.id, `key ${i}: one job`))
      assert.strictEqual([...wide, ...narrow].filter((job) => job.created).length, keys.length + 32, "each key's job created once")
      assert.strictEqual((yield* JobQueue.stats("default")).waiting, keys.length)
    }).pipe(Effect.provide(Pg.testLayer(Pg.freshSchema()))), 60_000)
})
