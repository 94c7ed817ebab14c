/**
 * Job dependencies on every store (test/durable/dependencies.ts), under TestClock: kept by the
 * memory store and Redis (when its server is set: WORKPOOL_REDIS_URL); SQLite and Postgres (when
 * WORKPOOL_PG_URL is set) refuse them with a typed error until they keep them.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Ref } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"
import * as JobStore from "../src/JobStore.ts"
import { JobNotFound } from "../src/DurableError.ts"
import * as JobQueue from "../src/JobQueue.ts"
import { JobStore as Store } from "../src/internal/store/model.ts"
import { Echo, newJob, options, tick, tracked } from "./durable/conformance.ts"
import { dependenciesConformance, handlers, unsupportedDependencies } from "./durable/dependencies.ts"
import * as Pg from "./durable/postgres.ts"
import * as Redis from "./durable/redis.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wp-deps-"))
let n = 0
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

dependenciesConformance("the memory store", () => JobStore.memory())

unsupportedDependencies("SQLite", () => JobStore.sqlite({ filename: path.join(dir, `jobs-${++n}.db`) }))

if (!Pg.enabled) describe.skip("job dependencies on Postgres (WORKPOOL_PG_URL is not set)", () => {})
else unsupportedDependencies("Postgres", () => Pg.testLayer())

if (!Redis.enabled) describe.skip("job dependencies on Redis (WORKPOOL_REDIS_URL is not set)", () => {})
else dependenciesConformance("Redis", () => Redis.testLayer())

if (Redis.enabled) {
  describe("job dependencies on Redis: what only Redis has", () => {
    it.effect("a DAG across queues in one enqueueAll is one script: a missing dependency stores nothing in any queue; whole, it runs in order, and its purge leaves no key", () => {
      const prefix = Redis.freshPrefix()
      return Effect.gen(function*() {
        const runs = yield* Ref.make<Array<string>>([])
        const graph = (last: ReadonlyArray<string | { readonly item: number }>) =>
          JobQueue.enqueueAll(Echo, [
            { payload: { n: 1 }, options: { queue: "a" } },
            { payload: { n: 2 }, options: { queue: "b", after: [{ item: 0 }] } },
            { payload: { n: 3 }, options: { queue: "c", after: last } }
          ])
        const refused = yield* Effect.flip(graph([{ item: 1 }, "gone"]))
        assert.deepStrictEqual(refused, new JobNotFound({ id: "gone" }))
        assert.deepStrictEqual(yield* JobQueue.list(), [], "no queue's jobs were stored")
        const jobs = yield* graph([{ item: 0 }, { item: 1 }])
        assert.deepStrictEqual(yield* Effect.forEach(jobs, (job) => Effect.map(JobQueue.status(job.id), (info) => info.state)), ["queued", "blocked", "blocked"])
        yield* JobQueue.consume({ ...options, queues: ["a", "b", "c"], handlers: handlers(runs) })
        yield* tick(3000)
        assert.strictEqual(yield* JobQueue.await(Echo, jobs[2]!.id), 3)
        assert.deepStrictEqual(yield* Ref.get(runs), ["echo:1", "echo:2", "echo:3"])
        yield* tick(1000)
        assert.strictEqual(yield* JobQueue.purge({ olderThan: "1 millis" }), 3)
        const keys = yield* Effect.promise(() => Redis.admin((client) => Redis.keysOf(client, prefix)))
        assert.deepStrictEqual(keys, [], "no key is left")
      }).pipe(Effect.scoped, Effect.provide(tracked(Redis.testLayer(prefix))))
    })

    it.effect("a blocked job is never placed: its enqueue, and a redrive back to blocked, write no wake-up marker for its queue's idle consumers; its release does", () => {
      const prefix = Redis.freshPrefix()
      return Effect.gen(function*() {
        const store = yield* Store
        const markers = Effect.promise(() => Redis.admin((client) => client.sendCommand(["ZRANGE", `{${prefix}:q}:marker`, "0", "-1"]) as Promise<Array<string>>))
        const claimDeps = Effect.map(store.claim({ queues: ["deps"], tasks: ["Echo"], limit: 1, lease: 60_000 }), ({ claims }) => claims[0]!)
        const child = yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "deps", maxAttempts: 1 })
        const parent = yield* JobQueue.enqueue(Echo, { n: 2 }, { queue: "q", after: [child] })
        assert.deepStrictEqual(yield* markers, [], "enqueued blocked")
        yield* store.settle((yield* claimDeps).token, { _tag: "Final", state: "dead", exit: null })
        assert.isTrue(yield* JobQueue.redrive(parent.id))
        assert.strictEqual((yield* JobQueue.status(parent.id)).state, "blocked")
        assert.deepStrictEqual(yield* markers, [], "redriven blocked")
        assert.isTrue(yield* JobQueue.redrive(child.id))
        yield* store.settle((yield* claimDeps).token, { _tag: "Final", state: "succeeded", exit: "1" })
        assert.strictEqual((yield* JobQueue.status(parent.id)).state, "queued")
        assert.deepStrictEqual(yield* markers, ["0"], "released: ready now")
      }).pipe(Effect.scoped, Effect.provide(tracked(Redis.testLayer(prefix))))
    })

    it.effect("a dependency of another queue whose id names none (a repeat's tick) is found through the id index: its end releases or cancels its dependents there; deleted, a redrive answers false", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const repeatTick = (id: string) => newJob("ticks", { id, notAfter: Number.MAX_SAFE_INTEGER })
        yield* store.enqueue(repeatTick("repeat:r:1"))
        yield* store.enqueue(repeatTick("repeat:r:2"))
        const cleanup = yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "q", after: ["repeat:r:1", "repeat:r:2"], afterFailure: "run" })
        const after = yield* JobQueue.enqueue(Echo, { n: 2 }, { queue: "q", after: ["repeat:r:1"] })
        const claimOne = Effect.map(store.claim({ queues: ["ticks"], tasks: ["Echo"], limit: 1, lease: 60_000 }), ({ claims }) => claims[0]!)
        const first = yield* claimOne
        assert.isTrue(yield* store.settle(first.token, { _tag: "Final", state: "dead", exit: null }))
        assert.strictEqual((yield* JobQueue.status(after.id)).failedDependency?.id, "repeat:r:1")
        yield* tick(1000)
        assert.strictEqual(yield* JobQueue.purge({ olderThan: "1 millis", states: ["dead"] }), 1)
        assert.isFalse(yield* JobQueue.redrive(after.id), "its dependency is gone")
        const second = yield* claimOne
        assert.isTrue(yield* store.settle(second.token, { _tag: "Final", state: "succeeded", exit: "1" }))
        assert.strictEqual((yield* JobQueue.status(cleanup.id)).state, "queued")
      }).pipe(Effect.scoped, Effect.provide(tracked(Redis.testLayer()))))
  })
}
