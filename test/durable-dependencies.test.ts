/**
 * Job dependencies on every store (test/durable/dependencies.ts), under TestClock: kept by the
 * memory store, SQLite and Redis (when its server is set: WORKPOOL_REDIS_URL); Postgres (when
 * WORKPOOL_PG_URL is set) refuses them with a typed error until it keeps them.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Ref } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { DatabaseSync } from "node:sqlite"
import { afterAll } from "vitest"
import * as JobStore from "../src/JobStore.ts"
import { JobNotFound } from "../src/DurableError.ts"
import * as JobQueue from "../src/JobQueue.ts"
import { Echo, options, tick, tracked } from "./durable/conformance.ts"
import { dependenciesConformance, handlers, unsupportedDependencies } from "./durable/dependencies.ts"
import * as Pg from "./durable/postgres.ts"
import * as Redis from "./durable/redis.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wp-deps-"))
let n = 0
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

dependenciesConformance("the memory store", () => JobStore.memory())

dependenciesConformance("SQLite", () => JobStore.sqlite({ filename: path.join(dir, `jobs-${++n}.db`) }))

describe("job dependencies on SQLite: what only SQLite has", () => {
  it.effect("a dependency's edges stay when it is deleted (its dependent still needs them) and go with the dependent's row", () => {
    const filename = path.join(dir, `jobs-${++n}.db`)
    const edges = () => {
      const db = new DatabaseSync(filename)
      const rows = db.prepare("SELECT dep_id, job_id FROM wp_dep ORDER BY dep_id").all() as Array<{ dep_id: string; job_id: string }>
      db.close()
      return rows.map((row) => `${row.dep_id}>${row.job_id}`)
    }
    return Effect.gen(function*() {
      const runs = yield* Ref.make<Array<string>>([])
      const first = yield* JobQueue.enqueue(Echo, { n: 1 })
      const second = yield* JobQueue.enqueue(Echo, { n: 2 }, { delay: "1 minute" })
      const parent = yield* JobQueue.enqueue(Echo, { n: 3 }, { queue: "kept", after: [first, second] })
      yield* JobQueue.consume({ ...options, handlers: handlers(runs) })
      yield* tick(1000)
      assert.strictEqual(yield* JobQueue.purge({ olderThan: "1 millis", states: ["succeeded"] }), 1)
      assert.deepStrictEqual(edges().sort(), [`${first.id}>${parent.id}`, `${second.id}>${parent.id}`].sort(), "kept")
      yield* tick(60_000)
      assert.strictEqual(yield* JobQueue.await(Echo, second.id), 2)
      assert.strictEqual(yield* JobQueue.status(parent.id).pipe(Effect.map((job) => job.state)), "queued", "its queue has no consumer")
      yield* JobQueue.cancel(parent.id)
      yield* tick(1000)
      assert.strictEqual(yield* JobQueue.purge({ olderThan: "1 millis" }), 2)
      assert.deepStrictEqual(edges(), [], "gone with the dependent")
    }).pipe(Effect.scoped, Effect.provide(tracked(JobStore.sqlite({ filename }))))
  })
})

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
  })
}
