/**
 * Hostile tests of JobQueue.enqueueAll on every store: what a batch stores against what `enqueue`
 * stores for the same payloads and options, bad items and iterables, partial failures and races.
 */
import { assert, describe, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Fiber, Layer, Schema, SchemaGetter, SchemaIssue, Stream } from "effect"
import { afterAll } from "vitest"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import type { StoreError } from "../src/DurableError.ts"
import { InvalidJobOptions, TaskCodecError } from "../src/PoolError.ts"
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

describe("enqueueAll's items, from a hostile caller", () => {
  const memory = () => Layer.fresh(JobStore.memory())
  const item = (n: number) => ({ payload: { n } })
  /** The call's InvalidJobOptions (a defect or a success fails the test), and that nothing was stored. */
  const refused = (items: unknown, options?: unknown) =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(JobQueue.enqueueAll(Echo, items as any, options as any).pipe(
        Effect.flatMap((jobs) => Effect.die(`it stored ${jobs.length} jobs`))
      ))
      assert.instanceOf(error, InvalidJobOptions, String(error))
      assert.deepStrictEqual(yield* JobQueue.list({}), [], "nothing stored")
      return error as InvalidJobOptions
    })

  it.effect("an iterable whose iterator throws fails the call with InvalidJobOptions naming items and where it threw, not a defect; so does one whose iterator is no iterator", () =>
    Effect.gen(function*() {
      function* throwing() {
        yield item(0)
        yield item(1)
        throw new Error("disk gone")
      }
      const thrown = yield* refused(throwing())
      assert.strictEqual(thrown.field, "items")
      assert.match(thrown.reason, /items\[2\]/)
      assert.match(thrown.reason, /disk gone/)
      const broken: ReadonlyArray<[string, unknown, RegExp]> = [
        ["[Symbol.iterator] throws", { [Symbol.iterator]: () => { throw new TypeError("no") } }, /no/],
        ["[Symbol.iterator] returns a number", { [Symbol.iterator]: () => 42 }, /iterator/],
        ["next is not a function", { [Symbol.iterator]: () => ({ next: 1 }) }, /next/],
        ["next returns a number", { [Symbol.iterator]: () => ({ next: () => 7 }) }, /items\[0\]/],
        ["a getter of [Symbol.iterator] throws", { get [Symbol.iterator]() { throw new Error("trap") } }, /trap/],
        ["done is a getter that throws", { [Symbol.iterator]: () => ({ next: () => ({ get done() { throw new Error("done?") } }) }) }, /done\?/],
        ["what it throws cannot be read", { [Symbol.iterator]: () => ({ next: () => { throw new Proxy({}, { get: () => { throw new Error("x") }, getPrototypeOf: () => { throw new Error("x") } }) } }) }, /items\[0\]/]
      ]
      for (const [name, items, reason] of broken) {
        const error = yield* refused(items)
        assert.strictEqual(error.field, "items", name)
        assert.match(error.reason, reason, name)
      }
    }).pipe(Effect.provide(memory())))

  it.effect("an endless iterable fails past 100,000 items with InvalidJobOptions naming items (it read forever, the process blocked until out of memory), having read one item past the limit and closed the iterator (its finally ran); so does a longer array, at once", () =>
    Effect.gen(function*() {
      let read = 0
      let closed = false
      function* endless() {
        try {
          // bounded, so that a regression fails instead of hanging
          while (read < 300_000) yield item(read++)
        } finally {
          closed = true
        }
      }
      const error = yield* refused(endless())
      assert.strictEqual(error.field, "items")
      assert.match(error.reason, /at most 100,000 items/)
      assert.strictEqual(read, 100_001)
      assert.isTrue(closed, "the iterator was closed")
      const dense = Array.from({ length: 100_001 }, (_, n) => item(n))
      assert.match((yield* refused(dense)).reason, /at most 100,000 items/)
      // told from its length: no 4 billion holes read
      const holes = new Array(2 ** 32 - 1)
      const started = Date.now()
      assert.match((yield* refused(holes)).reason, /at most 100,000 items/)
      assert.isBelow(Date.now() - started, 5_000)
      // exactly the limit is fine
      const jobs = yield* JobQueue.enqueueAll(Echo, dense.slice(1))
      assert.strictEqual(jobs.length, 100_000)
    }).pipe(Effect.provide(memory())), 120_000)

  it.effect("a call reading a long iterable lets other fibers run and can be interrupted: it stops reading, closes the iterator and stores nothing (it read every item in one uninterruptible loop)", () =>
    Effect.gen(function*() {
      let read = 0
      let closed = false
      function* many() {
        try {
          while (read < 90_000) yield item(read++)
        } finally {
          closed = true
        }
      }
      const fiber = yield* Effect.forkChild(JobQueue.enqueueAll(Echo, many()))
      // this fiber runs again only once the reading one gives way
      while (read === 0) yield* Effect.yieldNow
      yield* Fiber.interrupt(fiber)
      assert.isBelow(read, 90_000, "it stopped reading")
      assert.isTrue(closed, "the iterator was closed")
      assert.deepStrictEqual(yield* JobQueue.list({}), [])
    }).pipe(Effect.provide(memory())), 60_000)

  it.effect("a getter that throws on an item, its options or the call's options fails with InvalidJobOptions naming it, not a defect; one inside a payload is the payload's TaskCodecError", () =>
    Effect.gen(function*() {
      const boom = () => {
        throw new Error("boom")
      }
      const cases: ReadonlyArray<[unknown, unknown, string]> = [
        [[item(0), { get payload() { return boom() } }], undefined, "items[1]"],
        [[item(0), { payload: { n: 1 }, get options() { return boom() } }], undefined, "items[1]"],
        [[item(0), { payload: { n: 1 }, options: { get priority() { return boom() } } }], undefined, "items[1].options"],
        [[item(0), { payload: { n: 1 }, options: { retry: { get fixed() { return boom() } } } }], undefined, "items[1].options"],
        [[item(0)], { get queue() { return boom() } }, "options"]
      ]
      for (const [items, options, field] of cases) {
        const error = yield* refused(items, options)
        assert.strictEqual(error.field, field)
        assert.match(error.reason, /boom/)
      }
      const single = yield* Effect.flip(JobQueue.enqueue(Echo, { n: 0 }, { get priority(): number { return boom() } }))
      assert.instanceOf(single, InvalidJobOptions)
      assert.strictEqual((single as InvalidJobOptions).field, "options")
      const codec = yield* Effect.flip(JobQueue.enqueueAll(Echo, [item(0), { payload: { get n(): number { return boom() } } }]))
      assert.instanceOf(codec, TaskCodecError)
      assert.match((codec as TaskCodecError).issue, /^items\[1\]: /)
      assert.deepStrictEqual(yield* JobQueue.list({}), [])
    }).pipe(Effect.provide(memory())))

  it.effect("Proxy items: one whose every trap throws, a revoked one, and a Proxy as the items fail with InvalidJobOptions naming them; a well-behaved Proxy item is an item", () =>
    Effect.gen(function*() {
      const fail = () => {
        throw new Error("trap")
      }
      const hostile = new Proxy({}, { get: fail, has: fail, ownKeys: fail, getOwnPropertyDescriptor: fail, getPrototypeOf: fail })
      assert.strictEqual((yield* refused([item(0), hostile])).field, "items[1]")
      const { proxy, revoke } = Proxy.revocable({ payload: { n: 1 } }, {})
      revoke()
      assert.strictEqual((yield* refused([item(0), proxy])).field, "items[1]")
      assert.strictEqual((yield* refused(new Proxy([item(0)], { get: fail }))).field, "items")
      assert.strictEqual((yield* refused([item(0), { payload: { n: 1 }, options: hostile }])).field, "items[1].options")
      const kind = new Proxy({ payload: { n: 7 }, options: { priority: 3 } }, {})
      const [job] = yield* JobQueue.enqueueAll(Echo, [kind])
      const info = yield* JobQueue.status(job!.id)
      assert.strictEqual(info.priority, 3)
    }).pipe(Effect.provide(memory())))

  it.effect("a sparse array's hole is an item that is not one: InvalidJobOptions naming its index", () =>
    Effect.gen(function*() {
      // eslint-disable-next-line no-sparse-arrays
      const error = yield* refused([item(0), , item(2)])
      assert.strictEqual(error.field, "items[1]")
      assert.match(error.reason, /expected an object/)
    }).pipe(Effect.provide(memory())))

  it.effect("each item is read once, as it is when read: a later change to it (by the getter of an item after it) is not stored, and an options getter that answers otherwise the second time is asked once", () =>
    Effect.gen(function*() {
      const first = { n: 0 }
      let asked = 0
      const jobs = yield* JobQueue.enqueueAll(Echo, [
        { payload: first },
        {
          get payload() {
            first.n = 99
            return { n: 1 }
          }
        },
        {
          payload: { n: 2 },
          get options() {
            return asked++ === 0 ? { priority: 4 } : "fast" as any
          }
        }
      ])
      const store = yield* JobStore.JobStore
      assert.deepStrictEqual(JSON.parse((yield* store.get(jobs[0]!.id))!.payload), { n: 0 })
      assert.strictEqual((yield* JobQueue.status(jobs[2]!.id)).priority, 4)
      assert.strictEqual(asked, 1)
    }).pipe(Effect.provide(memory())))

  it.effect("a payload Schema that runs an Effect encodes each item in turn, in item order; one that fails names its item, and nothing is stored", () =>
    Effect.gen(function*() {
      // its encode takes a fiber step (so the Schema gives an Effect, not an Exit), and refuses a negative
      const Slow = Schema.Number.pipe(Schema.encodeTo(Schema.Number, {
        decode: SchemaGetter.transform((n: number) => n),
        encode: SchemaGetter.transformEffect((n: number) =>
          n < 0 ? Effect.fail(new SchemaIssue.InvalidValue({ message: "negative" }, n)) : Effect.as(Effect.yieldNow, n * 10))
      }))
      const Tens = Task.make("Tens", { payload: Slow, success: Schema.Void })
      const ns = Array.from({ length: 2500 }, (_, n) => n)
      const jobs = yield* JobQueue.enqueueAll(Tens, ns.map((n) => ({ payload: n })))
      const store = yield* JobStore.JobStore
      const stored = yield* Effect.forEach(jobs, (job) => Effect.map(store.get(job.id), (row) => JSON.parse(row!.payload)))
      assert.deepStrictEqual(stored, ns.map((n) => n * 10))
      const error = yield* Effect.flip(JobQueue.enqueueAll(Tens, [1, 2, -3, 4].map((payload) => ({ payload })), { queue: "other" }))
      assert.instanceOf(error, TaskCodecError)
      assert.match((error as TaskCodecError).issue, /^items\[2\]: .*negative/)
      assert.deepStrictEqual(yield* JobQueue.list({ queue: "other" }), [])
    }).pipe(Effect.provide(memory())))

  it.effect("something else by mistake (an async iterable, a Promise, an Effect, a Stream, a string) fails with InvalidJobOptions naming items and saying what it is", () =>
    Effect.gen(function*() {
      async function* rows() {
        yield item(0)
      }
      const mistakes: ReadonlyArray<[unknown, RegExp]> = [
        [rows(), /async iterable/],
        [Promise.resolve([item(0)]), /Promise/],
        [Effect.succeed([item(0)]), /Effect/],
        [Stream.make(item(0)), /Stream/],
        ["items", /string/]
      ]
      for (const [items, reason] of mistakes) {
        const error = yield* refused(items)
        assert.strictEqual(error.field, "items")
        assert.match(error.reason, reason)
      }
    }).pipe(Effect.provide(memory())))
})

describe("enqueueAll on a server store, a call whose payloads add up to more than a JavaScript string holds", () => {
  // 100 payloads of 5.4 million characters: 540 million in all, past V8's longest string (2 ** 29 - 24)
  const huge = () => Array.from({ length: 100 }, (_, i) => ({ payload: `${i}:${"x".repeat(5_400_000)}` }))

  // about 2 minutes at load 6 (540 MB into the server): run with WORKPOOL_HEAVY_TESTS=1, not in CI
  it.live.skipIf(!Pg.enabled || process.env.WORKPOOL_HEAVY_TESTS !== "1")("Postgres stores them, in several INSERTs of one transaction (the rows of 5,000 jobs were one JSON text: past the longest string, a defect RangeError 'Invalid string length')", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(JobQueue.enqueueAll(Text, huge()))
      assert.isTrue(exit._tag === "Success", String(exit._tag === "Failure" ? exit.cause : ""))
      const jobs = exit._tag === "Success" ? exit.value : []
      assert.strictEqual(jobs.length, 100)
      const store = yield* JobStore.JobStore
      const last = JSON.parse((yield* store.get(jobs[99]!.id))!.payload) as string
      assert.strictEqual(last.length, 5_400_003)
      assert.isTrue(last.startsWith("99:"))
    }).pipe(Effect.provide(Pg.testLayer(Pg.freshSchema()))), 600_000)

  it.live.skipIf(!Rd.enabled)("Redis refuses them with a StoreError saying the batch is too large (one script per queue: its argument was one JSON text, a defect RangeError 'Invalid string length'), storing nothing", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(JobQueue.enqueueAll(Text, huge()).pipe(
        Effect.flatMap((jobs) => Effect.die(`it stored ${jobs.length} jobs`))
      ))
      assert.strictEqual((error as { _tag: string })._tag, "StoreError", String(error))
      assert.match((error as StoreError).reason, /too large/)
      assert.deepStrictEqual(yield* JobQueue.list({}), [])
    }).pipe(Effect.provide(Rd.testLayer(Rd.freshPrefix()))), 180_000)
})
