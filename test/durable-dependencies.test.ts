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
