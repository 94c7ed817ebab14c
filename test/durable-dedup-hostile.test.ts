/**
 * Hostile tests of the dedup modes (`dedupWhile`, `dedupFor`, `dedupReplace`), on every store
 * (memory and SQLite always, Postgres and Redis when their servers are set), under TestClock.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Ref, Schema } from "effect"
import { TestClock } from "effect/testing"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll } from "vitest"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as Task from "../src/Task.ts"
import { Echo, options, tick, tracked } from "./durable/conformance.ts"
import * as Pg from "./durable/postgres.ts"
import * as Rd from "./durable/redis.ts"
import * as redisServer from "./durable/redisserver.ts"
import { storeLayers } from "./durable/stores.ts"
import { waitFor } from "./helpers.ts"

const LEASE = 3000
const Other = Task.make("Other", { payload: Schema.Struct({ n: Schema.Number }), success: Schema.Number })
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wp-dedup-hostile-"))
let n = 0
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const claimOne = (queue: string, tasks = ["Echo"]) =>
  Effect.gen(function*() {
    const store = yield* JobStore.JobStore
    return (yield* store.claim({ queues: [queue], tasks, limit: 1, lease: LEASE })).claims[0]
  })
const payloadOf = (id: string) =>
  Effect.gen(function*() {
    const store = yield* JobStore.JobStore
    return JSON.parse((yield* store.get(id))!.payload).n as number
  })
/** A job as a test compares it: its payload, state, attempts and when it is visible (from `since`). */
const shape = (id: string, since: number) =>
  Effect.gen(function*() {
    const job = yield* JobQueue.status(id)
    return { n: yield* payloadOf(id), state: job.state, attempts: job.attempts, visibleIn: job.visibleAt.getTime() - since }
  })

type Item = { readonly payload: { readonly n: number }; readonly options: JobQueue.EnqueueOptions }

/** Items of one call of mixed modes, keys repeated: as one `enqueue` after another, the docs say. */
const mixed = (queue: string): ReadonlyArray<Item> => [
  { payload: { n: 1 }, options: { queue, dedupKey: "k1" } },
  { payload: { n: 2 }, options: { queue, dedupKey: "k1", dedupReplace: "payload" } },
  { payload: { n: 3 }, options: { queue, dedupKey: "k2", dedupWhile: "queued", dedupFor: "1 minute", delay: "30 seconds" } },
  { payload: { n: 4 }, options: { queue, dedupKey: "k2", dedupReplace: "debounce", delay: "5 seconds" } },
  { payload: { n: 5 }, options: { queue, dedupKey: "k1", dedupReplace: "debounce", runAt: new Date(0) } },
  { payload: { n: 6 }, options: { queue, dedupKey: "k3", dedupFor: "10 seconds" } },
  { payload: { n: 7 }, options: { queue, dedupKey: "k3", dedupReplace: "payload", dedupWhile: "queued" } },
  { payload: { n: 8 }, options: { queue, dedupKey: "k1" } },
  { payload: { n: 9 }, options: { queue, dedupKey: "k4", dedupReplace: "debounce", delay: "1 minute" } },
  { payload: { n: 10 }, options: { queue, dedupKey: "k4", dedupReplace: "debounce" } },
  { payload: { n: 11 }, options: { queue, dedupKey: "k5", delay: "1 minute" } },
  { payload: { n: 12 }, options: { queue, dedupKey: "k5", dedupReplace: "debounce", delay: "7 seconds" } },
  { payload: { n: 13 }, options: { queue, dedupKey: "k5", dedupReplace: "payload", delay: "1 hour" } },
  { payload: { n: 14 }, options: { queue, dedupKey: "k1", dedupReplace: "payload" } }
]

const suite = (name: string, layer: () => Layer.Layer<JobStore.JobStore, any>) =>
  describe(`dedup modes, hostile, on ${name}`, () => {
    const provide = <A, E>(effect: Effect.Effect<A, E, JobStore.JobStore | import("effect/Scope").Scope>) =>
      Effect.scoped(Effect.provide(effect, tracked(layer())))

    it.effect("enqueueAll of mixed modes with repeated keys ends as the same items enqueued one by one: the same holders, payloads and run times", () =>
      provide(Effect.gen(function*() {
        yield* TestClock.adjust(1_000_000)
        const since = 1_000_000
        const batch = yield* JobQueue.enqueueAll(Echo, mixed("batch"))
        const single: Array<{ id: string; created: boolean }> = []
        for (const item of mixed("single")) single.push(yield* JobQueue.enqueue(Echo, item.payload, item.options))
        // which item's job each item got
        const owners = (out: ReadonlyArray<{ id: string; created: boolean }>) => out.map((h) => [out.findIndex((o) => o.id === h.id), h.created])
        assert.deepStrictEqual(owners(batch), owners(single))
        assert.deepStrictEqual(owners(single), [[0, true], [0, false], [2, true], [2, false], [0, false], [5, true], [5, false], [0, false], [8, true], [8, false], [10, true], [10, false], [10, false], [0, false]])
        for (const i of [0, 2, 5, 8, 10]) {
          assert.deepStrictEqual(yield* shape(batch[i]!.id, since), yield* shape(single[i]!.id, since), `item ${i}`)
        }
        assert.deepStrictEqual(
          [yield* shape(single[0]!.id, since), yield* shape(single[2]!.id, since), yield* shape(single[5]!.id, since), yield* shape(single[8]!.id, since), yield* shape(single[10]!.id, since)],
          [
            { n: 14, state: "queued", attempts: 0, visibleIn: -1_000_000 },
            { n: 4, state: "delayed", attempts: 0, visibleIn: 5_000 },
            { n: 7, state: "queued", attempts: 0, visibleIn: 0 },
            { n: 10, state: "queued", attempts: 0, visibleIn: 0 },
            { n: 13, state: "delayed", attempts: 0, visibleIn: 7_000 }
          ]
        )
      })))

    it.effect("a dedup key shared by two tasks: a replace of the other task's holder leaves it as it was, in a batch too; another queue's key is another key", () =>
      provide(Effect.gen(function*() {
        const echo = yield* JobQueue.enqueue(Echo, { n: 1 }, { dedupKey: "shared", delay: "1 minute" })
        const other = yield* JobQueue.enqueue(Other, { n: 2 }, { dedupKey: "shared", dedupReplace: "debounce" })
        assert.deepStrictEqual([other.id, other.created], [echo.id, false])
        const batch = yield* JobQueue.enqueueAll(Other, [{ payload: { n: 3 }, options: { dedupKey: "shared", dedupReplace: "payload" } }])
        assert.deepStrictEqual(batch.map((h) => [h.id, h.created]), [[echo.id, false]])
        const job = yield* shape(echo.id, (yield* JobQueue.status(echo.id)).createdAt.getTime())
        assert.deepStrictEqual(job, { n: 1, state: "delayed", attempts: 0, visibleIn: 60_000 })
        const elsewhere = yield* JobQueue.enqueue(Other, { n: 4 }, { dedupKey: "shared", queue: "q2", dedupReplace: "payload" })
        assert.isTrue(elsewhere.created)
      })))

    it.effect("a replace of a holder waiting for its retry keeps its attempts; a debounce moves the retry's time to its own, earlier as well", () =>
      provide(Effect.gen(function*() {
        const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { dedupKey: "r", maxAttempts: 3 })
        const store = yield* JobStore.JobStore
        const claim = (yield* claimOne("default"))!
        yield* store.settle(claim.token, { _tag: "Retry", delay: 60_000, exit: "{}" })
        const since = yield* Effect.map(JobQueue.status(job.id), (j) => j.createdAt.getTime())
        assert.deepStrictEqual(yield* shape(job.id, since), { n: 1, state: "delayed", attempts: 1, visibleIn: 60_000 })
        const replaced = yield* JobQueue.enqueue(Echo, { n: 2 }, { dedupKey: "r", dedupReplace: "payload" })
        assert.strictEqual(replaced.id, job.id)
        assert.deepStrictEqual(yield* shape(job.id, since), { n: 2, state: "delayed", attempts: 1, visibleIn: 60_000 })
        yield* JobQueue.enqueue(Echo, { n: 3 }, { dedupKey: "r", dedupReplace: "debounce", delay: "1 second" })
        assert.deepStrictEqual(yield* shape(job.id, since), { n: 3, state: "delayed", attempts: 1, visibleIn: 1_000 })
        yield* TestClock.adjust(1_000)
        const again = (yield* claimOne("default"))!
        assert.deepStrictEqual([again.job.id, again.job.attempts, JSON.parse(again.job.payload).n], [job.id, 2, 3])
      })))

    it.effect("a \"queued\"-mode job: cancelled while it waits, its key is free; given back by a shutdown, it holds nothing; redriven, it takes the key back", () =>
      provide(Effect.gen(function*() {
        const mode = { dedupKey: "q", dedupWhile: "queued" } as const
        const first = yield* JobQueue.enqueue(Echo, { n: 1 }, mode)
        yield* JobQueue.cancel(first.id)
        const second = yield* JobQueue.enqueue(Echo, { n: 2 }, mode)
        assert.isTrue(second.created, "a cancelled job holds no key")
        const store = yield* JobStore.JobStore
        const claim = (yield* claimOne("default"))!
        assert.strictEqual(claim.job.id, second.id)
        yield* store.settle(claim.token, { _tag: "Release" })
        const third = yield* JobQueue.enqueue(Echo, { n: 3 }, { ...mode, dedupReplace: "payload" })
        assert.isTrue(third.created, "given back, a started \"queued\"-mode job holds nothing")
        assert.strictEqual(yield* payloadOf(second.id), 2)
        yield* JobQueue.cancel(third.id)
        // the given back one runs and dies; a redrive takes its key back (no other holds it)
        const dying = (yield* claimOne("default"))!
        assert.strictEqual(dying.job.id, second.id)
        yield* store.settle(dying.token, { _tag: "Final", state: "dead", exit: null })
        assert.isTrue(yield* JobQueue.redrive(second.id))
        const fourth = yield* JobQueue.enqueue(Echo, { n: 4 }, { ...mode, dedupReplace: "payload" })
        assert.deepStrictEqual([fourth.id, fourth.created], [second.id, false])
        assert.strictEqual(yield* payloadOf(second.id), 4)
      })))

    it.effect("a redriven job and a finished job's open window both hold a key: a hit gets the unfinished one, alone or in a batch", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const dead = yield* JobQueue.enqueue(Echo, { n: 1 }, { dedupKey: "w" })
        const claim = (yield* claimOne("default"))!
        yield* store.settle(claim.token, { _tag: "Final", state: "dead", exit: null })
        const windowed = yield* JobQueue.enqueue(Echo, { n: 2 }, { dedupKey: "w", dedupFor: "1 hour" })
        assert.isTrue(windowed.created)
        const done = (yield* claimOne("default"))!
        yield* store.settle(done.token, { _tag: "Final", state: "succeeded", exit: null })
        assert.isTrue(yield* JobQueue.redrive(dead.id), "a window does not hold a redrive back")
        const hit = yield* JobQueue.enqueue(Echo, { n: 3 }, { dedupKey: "w", dedupReplace: "payload" })
        const batch = yield* JobQueue.enqueueAll(Echo, [{ payload: { n: 4 }, options: { dedupKey: "w", dedupReplace: "payload" } }])
        assert.deepStrictEqual([hit.id, batch[0]!.id], [dead.id, dead.id])
        assert.deepStrictEqual([yield* payloadOf(dead.id), yield* payloadOf(windowed.id)], [4, 2])
      })))

    for (const batch of [false, true]) {
      it.effect(`a debounce${batch ? " in a batch" : ""} that brings a delayed holder forward wakes an idle consumer (polling hourly) at its new time`, () =>
        provide(Effect.gen(function*() {
          const ran = yield* Ref.make<Array<number>>([])
          yield* JobQueue.consume({
            ...options,
            poll: "1 hour",
            handlers: [Task.handle(Echo, ({ n }) => Effect.as(Ref.update(ran, (r) => [...r, n]), n))]
          })
          yield* tick(500)
          const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { dedupKey: "d", delay: "30 minutes" })
          yield* tick(2000)
          const again = { payload: { n: 2 }, options: { dedupKey: "d", dedupReplace: "debounce", delay: "3 seconds" } } as const
          if (batch) yield* JobQueue.enqueueAll(Echo, [again])
          else yield* JobQueue.enqueue(Echo, again.payload, again.options)
          yield* tick(2500)
          assert.deepStrictEqual(yield* Ref.get(ran), [], "not before its new time")
          yield* tick(1500)
          assert.deepStrictEqual(yield* Ref.get(ran), [2], "at its new time, not at the next poll")
          assert.strictEqual(yield* job.await, 2)
        })))
    }

    it.effect("a \"queued\"-mode job shows its dedup key while it runs and after, though it holds it no more", () =>
      provide(Effect.gen(function*() {
        const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { dedupKey: "shown", dedupWhile: "queued" })
        const store = yield* JobStore.JobStore
        const claim = (yield* claimOne("default"))!
        assert.strictEqual((yield* JobQueue.status(job.id)).dedupKey, "shown")
        const listed = yield* JobQueue.list({ state: "running" })
        assert.deepStrictEqual(listed.map((j) => j.dedupKey), ["shown"])
        yield* store.settle(claim.token, { _tag: "Final", state: "succeeded", exit: null })
        assert.strictEqual((yield* JobQueue.status(job.id)).dedupKey, "shown")
      })))

    it.effect("a debounce to a runAt in the past under aging ranks the holder from now, behind a job that waited longer", () =>
      provide(Effect.gen(function*() {
        yield* TestClock.adjust(1_000_000)
        yield* JobQueue.setAging("aged", "1 minute")
        const holder = yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "aged", dedupKey: "a", delay: "10 minutes" })
        const waiting = yield* JobQueue.enqueue(Echo, { n: 2 }, { queue: "aged" })
        yield* TestClock.adjust(5_000)
        yield* JobQueue.enqueue(Echo, { n: 3 }, { queue: "aged", dedupKey: "a", dedupReplace: "debounce", runAt: new Date(0) })
        const later = yield* JobQueue.enqueue(Echo, { n: 4 }, { queue: "aged" })
        const store = yield* JobStore.JobStore
        const { claims } = yield* store.claim({ queues: ["aged"], tasks: ["Echo"], limit: 3, lease: LEASE })
        assert.deepStrictEqual(claims.map((c) => c.job.id), [waiting.id, holder.id, later.id])
      })))

    it.effect("enqueueAll of one key in two queues, interleaved: a job per queue, each with its queue's last payload, handles in item order", () =>
      provide(Effect.gen(function*() {
        const items = ["q-a", "q-b", "q-a", "q-b", "q-a"].map((queue, i) => ({
          payload: { n: i },
          options: { queue, dedupKey: "same", ...(i > 1 ? { dedupReplace: "payload" as const } : {}) }
        }))
        const out = yield* JobQueue.enqueueAll(Echo, items)
        assert.deepStrictEqual(out.map((h) => h.created), [true, true, false, false, false])
        assert.deepStrictEqual(out.map((h) => h.id), [out[0]!.id, out[1]!.id, out[0]!.id, out[1]!.id, out[0]!.id])
        assert.deepStrictEqual([yield* payloadOf(out[0]!.id), yield* payloadOf(out[1]!.id)], [4, 3])
      })))
  })

for (const [name, layer] of storeLayers(() => path.join(dir, `jobs-${++n}.db`))) suite(name, layer)

// a Redis Cluster of its own (three masters): each queue's scripts on its queue's node
const binary = redisServer.binary()
if (binary !== undefined) {
  let cluster: redisServer.Cluster | undefined
  beforeAll(async () => {
    cluster = await redisServer.startCluster(binary)
  }, 120_000)
  afterAll(() => cluster?.destroy())
  suite("a Redis Cluster", () => Rd.clusterLayer(() => cluster!.url))
}

/**
 * Live, two store instances on one storage (two processes): a producer debounces one key
 * (`dedupWhile: "queued"`) as fast as it can while a consumer of the other instance claims. A
 * replace that loses to a claim (the holder started between the lookup and the replace) must make
 * the next job, not return the started one: the last payload always runs, and no job runs twice.
 */
const debounceRacingClaims = (layer: () => Layer.Layer<JobStore.JobStore, any>) =>
  Effect.gen(function*() {
    const producer = Context.get(yield* Layer.build(layer()), JobStore.JobStore)
    const consumer = Context.get(yield* Layer.build(layer()), JobStore.JobStore)
    const ran = yield* Ref.make<Array<number>>([])
    yield* Effect.provideService(
      JobQueue.consume({
        concurrency: 3,
        poll: "50 millis",
        queues: ["race"],
        handlers: [Task.handle(Echo, ({ n }) => Effect.as(Effect.andThen(Ref.update(ran, (r) => [...r, n]), Effect.sleep("2 millis")), n))]
      }),
      JobStore.JobStore,
      consumer
    )
    const LAST = 150
    const ids = new Set<string>()
    for (let i = 1; i <= LAST; i++) {
      const options = { queue: "race", dedupKey: "k", dedupWhile: "queued", dedupReplace: "debounce" } as const
      const job = i % 10 === 0
        ? (yield* Effect.provideService(JobQueue.enqueueAll(Echo, [{ payload: { n: i }, options }]), JobStore.JobStore, producer))[0]!
        : yield* Effect.provideService(JobQueue.enqueue(Echo, { n: i }, options), JobStore.JobStore, producer)
      ids.add(job.id)
    }
    yield* waitFor(
      Effect.map(Effect.provideService(JobQueue.stats("race"), JobStore.JobStore, producer), (s) => s.waiting + s.delayed + s.running === 0).pipe(Effect.orDie),
      "every job ran"
    )
    const runs = yield* Ref.get(ran)
    assert.include(runs, LAST, "the last payload ran")
    assert.strictEqual(runs.length, ids.size, "one run per job")
    assert.strictEqual(new Set(runs).size, runs.length, "no payload ran twice")
  }).pipe(Effect.scoped)

/**
 * Live, four producers (store instances) debounce one `"queued"`-mode key at once while two
 * consumers claim as fast as they can: every enqueue answers (on Postgres, a lookup then a replace
 * of the holder, each undone by a claim and another producer's insert in between, failed 9 to 12
 * of 400 enqueues with "the dedup key kept changing hands").
 */
const debounceManyProducers = (
  layer: () => Layer.Layer<JobStore.JobStore, any>,
  mode: JobQueue.EnqueueOptions = { dedupWhile: "queued", dedupReplace: "debounce" },
  batch = false
) =>
  Effect.gen(function*() {
    const instance = Effect.map(Layer.build(layer()), (built) => Context.get(built, JobStore.JobStore))
    const producers = yield* Effect.all([instance, instance, instance, instance])
    for (const consumer of yield* Effect.all([instance, instance])) {
      yield* Effect.provideService(
        JobQueue.consume({ concurrency: 4, poll: "20 millis", queues: ["race"], handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))] }),
        JobStore.JobStore,
        consumer
      )
    }
    const failed = yield* Ref.make<Array<string>>([])
    const options = { ...mode, queue: "race", dedupKey: "k" }
    yield* Effect.forEach(producers, (producer, p) =>
      Effect.forEach(Array.from({ length: 100 }, (_, i) => i), (i) =>
        Effect.provideService(
          batch && p % 2 === 0
            ? Effect.asVoid(JobQueue.enqueueAll(Echo, [{ payload: { n: p * 1000 + i }, options }]))
            : Effect.asVoid(JobQueue.enqueue(Echo, { n: p * 1000 + i }, options)),
          JobStore.JobStore,
          producer
        ).pipe(
          Effect.catch((error) => Ref.update(failed, (f) => [...f, String(error)]))
        ), { discard: true }), { concurrency: "unbounded", discard: true })
    assert.deepStrictEqual(yield* Ref.get(failed), [])
  }).pipe(Effect.scoped)

describe("dedup modes, hostile, live on two store instances", () => {
  it.live("SQLite: a debounce racing claims loses no payload", () => {
    const filename = path.join(dir, `race-${++n}.db`)
    return debounceRacingClaims(() => JobStore.sqlite({ filename }))
  }, 60_000)
  if (Pg.enabled) {
    it.live("Postgres: a debounce racing claims loses no payload", () => {
      const schema = Pg.freshSchema()
      return debounceRacingClaims(() => Pg.testLayer(schema))
    }, 60_000)
    it.live("Postgres: four producers debouncing one key while consumers claim: every enqueue answers", () => {
      const schema = Pg.freshSchema()
      return debounceManyProducers(() => Pg.testLayer(schema))
    }, 60_000)
    it.live("Postgres: four producers of one \"queued\"-mode key (no replace; half of them by enqueueAll) while consumers claim: every enqueue answers", () => {
      const schema = Pg.freshSchema()
      return debounceManyProducers(() => Pg.testLayer(schema), { dedupWhile: "queued" }, true)
    }, 60_000)
    it.live("Postgres: four producers debouncing one key, half of them by enqueueAll, while consumers claim: every enqueue answers", () => {
      const schema = Pg.freshSchema()
      return debounceManyProducers(() => Pg.testLayer(schema), undefined, true)
    }, 60_000)
  }
  if (Rd.enabled) {
    it.live("Redis: a debounce racing claims loses no payload", () => {
      const prefix = Rd.freshPrefix()
      return debounceRacingClaims(() => Rd.testLayer(prefix))
    }, 60_000)
    it.live("Redis: four producers debouncing one key while consumers claim: every enqueue answers", () => {
      const prefix = Rd.freshPrefix()
      return debounceManyProducers(() => Rd.testLayer(prefix))
    }, 60_000)
  }
})
