/**
 * Hostile tests of snoozes and queue holds (`JobQueue.snooze`, `JobQueue.holdQueue`), on every
 * store (memory and SQLite always, Postgres and Redis when their servers are set), under TestClock.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Layer, Ref } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll } from "vitest"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import { InvalidJobOptions } from "../src/PoolError.ts"
import type { Store } from "../src/internal/store/model.ts"
import * as Task from "../src/Task.ts"
import { Boom, Echo, options, tick, tracked } from "./durable/conformance.ts"
import * as Rd from "./durable/redis.ts"
import * as redisServer from "./durable/redisserver.ts"
import { storeLayers } from "./durable/stores.ts"

const LEASE = 3000
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wp-snooze-hostile-"))
let n = 0
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const claimable = (queue: string) =>
  Effect.gen(function*() {
    const store = yield* JobStore.JobStore
    const { claims } = yield* store.claim({ queues: [queue], tasks: ["Echo"], limit: 10, lease: LEASE })
    for (const claim of claims) yield* store.settle(claim.token, { _tag: "Release" })
    return claims.length
  })

const suite = (name: string, layer: () => Layer.Layer<JobStore.JobStore, any>) =>
  describe(`snooze and holds, hostile, on ${name}`, () => {
    const provide = <A, E>(effect: Effect.Effect<A, E, JobStore.JobStore | import("effect/Scope").Scope>) =>
      Effect.scoped(Effect.provide(effect, tracked(layer())))

    it.effect("a purge of a held queue's last finished jobs keeps its hold: a job enqueued after it waits for the hold's end", () =>
      provide(Effect.gen(function*() {
        const done = yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "api" })
        const store = yield* JobStore.JobStore
        const { claims } = yield* store.claim({ queues: ["api"], tasks: ["Echo"], limit: 1, lease: LEASE })
        yield* store.settle(claims[0]!.token, { _tag: "Final", state: "succeeded", exit: null })
        yield* JobQueue.holdQueue("api", "1 hour")
        yield* tick(1000)
        const purged = yield* store.purge(Number.MAX_SAFE_INTEGER, ["succeeded"])
        assert.strictEqual(purged, 1, `${done.id} purged`)
        assert.isDefined((yield* JobQueue.stats("api")).heldUntil, "still held after the purge")
        yield* JobQueue.enqueue(Echo, { n: 2 }, { queue: "api" })
        assert.strictEqual(yield* claimable("api"), 0, "held: nothing claimed")
      })))

    it.effect("hold, pause and resume in any order: a resume does not lift a hold, a lift does not resume a pause", () =>
      provide(Effect.gen(function*() {
        yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "q" })
        yield* JobQueue.pause("q")
        yield* JobQueue.holdQueue("q", "1 hour")
        yield* JobQueue.resume("q")
        assert.strictEqual(yield* claimable("q"), 0, "resumed but held")
        const stats = yield* JobQueue.stats("q")
        assert.isDefined(stats.heldUntil)
        assert.isFalse(stats.paused)
        yield* JobQueue.pause("q")
        yield* JobQueue.holdQueue("q", 0)
        assert.strictEqual(yield* claimable("q"), 0, "lifted but paused")
        assert.isTrue((yield* JobQueue.stats("q")).paused)
        yield* JobQueue.resume("q")
        assert.strictEqual(yield* claimable("q"), 1, "resumed and not held")
      })))

    for (const dispatch of ["priority", "fair"] as const) {
    it.effect(`a hold on a queue never used holds its first job; holding one queue leaves a consumer of many (${dispatch} dispatch) serving the others without spinning`, () =>
      provide(Effect.gen(function*() {
        let claims = 0
        const counting = Layer.effect(
          JobStore.JobStore,
          Effect.map(JobStore.JobStore, (store): Store => ({ ...store, claim: (r) => Effect.andThen(Effect.sync(() => claims++), store.claim(r)) }))
        )
        yield* JobQueue.holdQueue("held", "1 hour")
        const runs = yield* Ref.make<Array<number>>([])
        yield* Effect.provide(
          JobQueue.consume({
            ...options,
            poll: "10 seconds",
            dispatch,
            queues: ["held", "b", "c"],
            handlers: [Task.handle(Echo, ({ n }) => Effect.as(Ref.update(runs, (r) => [...r, n]), n))]
          }),
          counting.pipe(Layer.provide(Layer.succeed(JobStore.JobStore, yield* JobStore.JobStore)))
        )
        const held = yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "held" })
        const b = yield* JobQueue.enqueue(Echo, { n: 2 }, { queue: "b" })
        const c = yield* JobQueue.enqueue(Echo, { n: 3 }, { queue: "c" })
        yield* tick(1000)
        assert.deepStrictEqual([yield* b.await, yield* c.await], [2, 3])
        const before = claims
        yield* tick(60_000, 1000)
        // polling every 10 s (and a Redis store's orphan look every 5 s): not a claim per tick
        assert.isAtMost(claims - before, 20, `${claims - before} claims in a held minute`)
        assert.deepStrictEqual(yield* Ref.get(runs), [2, 3])
        assert.strictEqual((yield* JobQueue.status(held.id)).state, "queued")
      })))
    }

    it.effect("a snooze of 0 is a snooze: counted, its attempt given back, run again at once", () =>
      provide(Effect.gen(function*() {
        const runs = yield* Ref.make(0)
        yield* JobQueue.consume({
          ...options,
          handlers: [Task.handle(Echo, ({ n }) =>
            Effect.flatMap(Ref.getAndUpdate(runs, (r) => r + 1), (before) => before === 0 ? JobQueue.snooze(0) : Effect.succeed(n)))]
        })
        const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { maxAttempts: 1 })
        yield* tick(500)
        assert.strictEqual(yield* job.await, 1)
        const info = yield* JobQueue.status(job.id)
        assert.deepStrictEqual([info.state, info.attempts, info.snoozes, yield* Ref.get(runs)], ["succeeded", 1, 1, 2])
      })))

    it.effect("a snooze between failed attempts: its attempt given back, the retries' count kept, not dead at maxAttempts", () =>
      provide(Effect.gen(function*() {
        const runs = yield* Ref.make(0)
        yield* JobQueue.consume({
          ...options,
          handlers: [Task.handle(Echo, ({ n }) =>
            Effect.flatMap(Ref.getAndUpdate(runs, (r) => r + 1), (before) =>
              before === 0 ? Effect.fail(new Boom({ n })) : before === 1 ? JobQueue.snooze("5 seconds") : Effect.succeed(n)))]
        })
        const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { maxAttempts: 2 })
        yield* tick(1500)
        const snoozed = yield* JobQueue.status(job.id)
        assert.deepStrictEqual([snoozed.state, snoozed.attempts, snoozed.snoozes, yield* Ref.get(runs)], ["delayed", 1, 1, 2])
        yield* tick(5500)
        assert.strictEqual(yield* job.await, 1)
        const info = yield* JobQueue.status(job.id)
        assert.deepStrictEqual([info.state, info.attempts, info.snoozes], ["succeeded", 2, 1])
      })))

    it.effect("a snooze under a per-attempt timeout, before it: a snooze, and the next attempt has its whole timeout", () =>
      provide(Effect.gen(function*() {
        const runs = yield* Ref.make(0)
        yield* JobQueue.consume({
          ...options,
          handlers: [Task.handle(Echo, ({ n }) =>
            Effect.flatMap(Ref.getAndUpdate(runs, (r) => r + 1), (before) =>
              Effect.andThen(Effect.sleep("1500 millis"), before === 0 ? JobQueue.snooze("1 second") : Effect.succeed(n))))]
        })
        const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { maxAttempts: 1, timeout: "2 seconds" })
        yield* tick(6000)
        assert.strictEqual(yield* job.await, 1)
        const info = yield* JobQueue.status(job.id)
        assert.deepStrictEqual([info.state, info.attempts, info.snoozes], ["succeeded", 1, 1])
      })))

    it.effect("a snooze after a cancel was asked for (the handler not interruptible): the job ends cancelled, its snooze not counted, its queue not held", () =>
      provide(Effect.gen(function*() {
        yield* JobQueue.consume({
          ...options,
          queues: ["api"],
          handlers: [Task.handle(Echo, () => Effect.uninterruptible(Effect.andThen(Effect.sleep("2 seconds"), JobQueue.snooze("1 minute", { holdQueue: true }))))]
        })
        const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "api" })
        yield* tick(500)
        assert.strictEqual(yield* JobQueue.cancel(job.id), "requested")
        yield* tick(3000)
        const info = yield* JobQueue.status(job.id)
        assert.deepStrictEqual([info.state, info.snoozes], ["cancelled", 0])
        assert.isUndefined((yield* JobQueue.stats("api")).heldUntil, "a cancelled job's snooze holds nothing")
      })))

    it.effect("a snooze's settle that finds a cancel asked for ends the job cancelled, its snooze not counted (every store alike)", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "api" })
        const { claims } = yield* store.claim({ queues: ["api"], tasks: ["Echo"], limit: 1, lease: LEASE })
        assert.strictEqual(yield* JobQueue.cancel(job.id), "requested")
        assert.strictEqual(yield* store.settle(claims[0]!.token, { _tag: "Release", delay: 60_000 }), "cancelled")
        const info = yield* JobQueue.status(job.id)
        assert.deepStrictEqual([info.state, info.attempts, info.snoozes], ["cancelled", 0, 0])
      })))

    it.effect("a snooze of 0 with holdQueue holds nothing: it does not lift the hold another job set meanwhile", () =>
      provide(Effect.gen(function*() {
        const go = yield* Deferred.make<void>()
        const runs = yield* Ref.make(0)
        yield* JobQueue.consume({
          ...options,
          queues: ["api"],
          handlers: [Task.handle(Echo, ({ n }) =>
            Effect.flatMap(Ref.getAndUpdate(runs, (r) => r + 1), (before) =>
              before === 0 ? Effect.andThen(Deferred.await(go), JobQueue.snooze(0, { holdQueue: true })) : Effect.succeed(n)))]
        })
        const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "api" })
        yield* tick(500)
        assert.strictEqual((yield* JobQueue.status(job.id)).state, "running")
        yield* JobQueue.holdQueue("api", "1 minute")
        yield* Deferred.succeed(go, undefined)
        yield* tick(500)
        assert.strictEqual((yield* JobQueue.status(job.id)).snoozes, 1)
        assert.isDefined((yield* JobQueue.stats("api")).heldUntil, "the minute's hold stays")
        yield* tick(2000)
        assert.deepStrictEqual([(yield* JobQueue.status(job.id)).state, yield* Ref.get(runs)], ["queued", 1], "held, not run again")
      })))

    // a snooze's hold was written as holdQueue's (latest wins): a job's 5 s snooze cut another's
    // (or the operator's) 60 s hold to 5 s, and the upstream that asked for 60 s was called at 5 s
    it.effect("a snooze's hold only extends a hold: a 5 s snooze under a 60 s hold leaves the queue held 60 s; a longer one extends it; holdQueue still sets it", () =>
      provide(Effect.gen(function*() {
        const go = yield* Deferred.make<void>()
        const runs = yield* Ref.make(0)
        yield* JobQueue.consume({
          ...options,
          queues: ["api"],
          handlers: [Task.handle(Echo, ({ n }) =>
            Effect.flatMap(Ref.getAndUpdate(runs, (r) => r + 1), (before) =>
              before === 0 ? Effect.andThen(Deferred.await(go), JobQueue.snooze("5 seconds", { holdQueue: true })) : Effect.succeed(n)))]
        })
        const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "api" })
        yield* tick(500)
        assert.strictEqual((yield* JobQueue.status(job.id)).state, "running")
        yield* JobQueue.holdQueue("api", "1 minute")
        const held = (yield* JobQueue.stats("api")).heldUntil!.getTime()
        yield* Deferred.succeed(go, undefined)
        yield* tick(500)
        assert.strictEqual((yield* JobQueue.status(job.id)).snoozes, 1)
        assert.strictEqual((yield* JobQueue.stats("api")).heldUntil?.getTime(), held, "the minute's hold stays as it was")
        yield* tick(10_000, 1000)
        assert.deepStrictEqual([(yield* JobQueue.status(job.id)).state, yield* Ref.get(runs)], ["queued", 1], "held past the snooze's 5 s, not run again")
        // a longer snooze's hold extends it, as far as its delay
        const store = yield* JobStore.JobStore
        yield* store.configure("api", { holdAtLeast: 120_000 })
        const now = yield* store.now
        const extended = (yield* JobQueue.stats("api")).heldUntil!.getTime()
        assert.isAbove(extended, held)
        assert.strictEqual(extended, now + 120_000)
        // the operator's holdQueue sets it exactly: shortened, then lifted
        yield* JobQueue.holdQueue("api", "2 seconds")
        assert.isBelow((yield* JobQueue.stats("api")).heldUntil!.getTime(), held)
        yield* JobQueue.holdQueue("api", 0)
        yield* tick(1000, 500)
        assert.strictEqual(yield* job.await, 1, "run once lifted")
        assert.strictEqual(yield* Ref.get(runs), 2)
      })))

    it.effect("a job's snoozes: the same in status and list, kept through a death and a redrive; a give-back by a shutdown is no snooze", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "s", maxAttempts: 1 })
        const take = Effect.map(store.claim({ queues: ["s"], tasks: ["Echo"], limit: 1, lease: LEASE }), ({ claims }) => claims[0]!)
        yield* store.settle((yield* take).token, { _tag: "Release", delay: 0 })
        yield* store.settle((yield* take).token, { _tag: "Release" })
        yield* store.settle((yield* take).token, { _tag: "Release", delay: 1000 })
        yield* tick(1000)
        yield* store.settle((yield* take).token, { _tag: "Final", state: "dead", exit: null })
        const listed = yield* JobQueue.list({ queue: "s" })
        assert.deepStrictEqual([listed[0]!.snoozes, (yield* JobQueue.status(job.id)).snoozes, listed[0]!.attempts], [2, 2, 1])
        assert.isTrue(yield* JobQueue.redrive(job.id))
        const info = yield* JobQueue.status(job.id)
        assert.deepStrictEqual([info.state, info.attempts, info.snoozes], ["queued", 0, 2])
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

describe("snooze's options, hostile", () => {
  // a misspelt or mistyped holdQueue was ignored: the snooze went on without holding its queue,
  // and the upstream's 429s with it, where every other option of the package is refused by name
  it.effect("an unknown key or a holdQueue that is not a boolean is the defect InvalidJobOptions naming it, not a snooze that holds nothing", () =>
    Effect.gen(function*() {
      for (const [options, field] of [
        [{ hold: true }, "hold"],
        [{ holdqueue: true }, "holdqueue"],
        [{ holdQueue: "true" }, "holdQueue"],
        [{ holdQueue: 1 }, "holdQueue"],
        ["hold", "options"]
      ] as const) {
        const exit = yield* Effect.exit(JobQueue.snooze("1 second", options as never))
        const defect = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
        assert.instanceOf(defect, InvalidJobOptions, JSON.stringify(options))
        assert.strictEqual((defect as InvalidJobOptions).field, field)
      }
      // the ones it takes: still snoozes (a defect the consumer reads as one)
      for (const options of [undefined, {}, { holdQueue: undefined }, { holdQueue: false }, { holdQueue: true }]) {
        const exit = yield* Effect.exit(JobQueue.snooze("1 second", options))
        const defect = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
        assert.strictEqual((defect as Error).name, "JobSnoozed", JSON.stringify(options))
      }
    }))
})
