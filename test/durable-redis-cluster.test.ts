/**
 * The Redis store on a Redis Cluster of three masters (private servers started here): the
 * conformance suite, and a consumer of queues whose slots are on different nodes. Each script
 * touches one queue's keys, all under its hash tag, so each runs on one node.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Ref } from "effect"
import { execFileSync } from "node:child_process"
import { dirname, join } from "node:path"
import { afterAll, beforeAll } from "vitest"
import * as JobQueue from "../src/JobQueue.ts"
import { InvalidJobOptions } from "../src/PoolError.ts"
import * as RedisJobStore from "../src/RedisJobStore.ts"
import * as Task from "../src/Task.ts"
import { JobStore as Store } from "../src/internal/store/model.ts"
import { concurrencyCapFreedElsewhere, concurrencyCapTwoInstances, conformance, delayedWakeAcrossInstances, Echo, newJob, rateLimitChangeAcrossInstances, rateLimitLiftTwoInstances, retentionAcrossInstances } from "./durable/conformance.ts"
import { handlers } from "./durable/dependencies.ts"
import { admin, clusterLayer, timeoutSignalsOfJobs, freshPrefix, purgeRacingEnqueues } from "./durable/redis.ts"
import * as redisServer from "./durable/redisserver.ts"

const binary = redisServer.binary()
if (binary === undefined && process.env.CI === "true") {
  throw new Error("no redis-server (apt-get install redis-server, or set WORKPOOL_REDIS_BIN): under CI=true the Cluster tests must run")
}

if (binary === undefined) describe.skip("the Redis store on a Cluster (no redis-server binary)", () => {})
else {
  let cluster: redisServer.Cluster | undefined
  beforeAll(async () => {
    cluster = await redisServer.startCluster(binary)
  }, 120_000)
  afterAll(() => cluster?.destroy())

  conformance("a Redis Cluster", () => clusterLayer(() => cluster!.url))

  describe("the Redis store on a Cluster", () => {
    it.live("a consumer of queues on different nodes runs them all (each script on its queue's node)", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        // the slots of the queues: redis-cli --cluster create gives each of the 3 nodes a third
        const cli = join(dirname(binary), "redis-cli")
        const [host, port] = cluster!.url.replace("redis://", "").split(":")
        const slotOf = (queue: string) =>
          Number(execFileSync(cli, ["-h", host!, "-p", port!, "cluster", "keyslot", `{${prefix}:${queue}}:meta`]).toString().trim())
        const queues = ["alpha", "beta", "gamma", "delta", "epsilon"]
        const nodes = new Set(queues.map((queue) => Math.floor(slotOf(queue) / Math.ceil(16384 / 3))))
        assert.isAbove(nodes.size, 1, "the queues' slots fall on more than one node")
        const results = yield* Effect.gen(function*() {
          const jobs = yield* Effect.forEach(queues, (queue, n) => JobQueue.enqueue(Echo, { n }, { queue, priority: n }))
          yield* JobQueue.consume({ queues, handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n * 10))], concurrency: 2 })
          return yield* Effect.forEach(jobs, (job) => JobQueue.await(Echo, job.id))
        }).pipe(Effect.scoped, Effect.provide(RedisJobStore.layer({ url: cluster!.url, prefix, cluster: true })), Effect.timeout("30 seconds"))
        assert.deepStrictEqual(results, [0, 10, 20, 30, 40])
      }), { timeout: 60_000 })

    it.live("a delayed job enqueued by another store instance starts at its time on a consumer polling once an hour, whose wall clock is an hour ahead", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        yield* delayedWakeAcrossInstances(() => RedisJobStore.layer({ url: cluster!.url, prefix, cluster: true }))
      }), { timeout: 60_000 })

    it.live("a queue's rate limit raised, then lifted, through another store instance starts the held-back jobs at once on a consumer polling once an hour", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        yield* rateLimitChangeAcrossInstances(() => RedisJobStore.layer({ url: cluster!.url, prefix, cluster: true }))
      }), { timeout: 60_000 })

    it.live("a queue's retention applied by three store instances at once deletes each job once (the ids' index cleaned after each script)", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        yield* retentionAcrossInstances(() => RedisJobStore.layer({ url: cluster!.url, prefix, cluster: true }))
      }), { timeout: 90_000 })

    it.live("a queue's rate limit lifted through a third store instance starts jobs at once on both of two held-back consumers of their own instances", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        yield* rateLimitLiftTwoInstances(() => RedisJobStore.layer({ url: cluster!.url, prefix, cluster: true }))
      }), { timeout: 60_000 })

    it.live("a queue's concurrency cap holds across two store instances' consumers polling once an hour, and each freed slot starts the next job at once", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        yield* concurrencyCapTwoInstances(() => RedisJobStore.layer({ url: cluster!.url, prefix, cluster: true }))
      }), { timeout: 60_000 })

    it.live("a slot of a capped queue freed by another store instance (a final settle, a retry, a release, a reap that ends it dead or takes it back) starts the next job at once on a consumer polling once an hour", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        yield* concurrencyCapFreedElsewhere(() => RedisJobStore.layer({ url: cluster!.url, prefix, cluster: true }))
      }), { timeout: 120_000 })

    // a purge drops a queue it emptied: on a Cluster the list of queues is in another slot than the
    // queue (on another node for most of them), so the drop and a racing enqueue are ordered by the
    // queue's seq, not by one script
    it.live("purges that drop emptied queues while enqueues to them run (60 rounds): every job is listed and claimed once, and no key of the queues is left on any node", () =>
      Effect.gen(function*() {
        const prefix = yield* purgeRacingEnqueues((prefix) => clusterLayer(() => cluster!.url, prefix))
        const left = yield* Effect.promise(() =>
          Promise.all(cluster!.nodes.map((node) => admin((client) => client.keys(`{${prefix}:racing-*`), node.url)))
        )
        assert.deepStrictEqual(left.flat(), [])
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("job dependencies on a Cluster: a DAG within a queue runs in order; a dependency in another queue (another slot) is refused with InvalidJobOptions saying why, nothing stored", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        const runs = yield* Effect.gen(function*() {
          const runs = yield* Ref.make<Array<string>>([])
          const other = yield* JobQueue.enqueue(Echo, { n: 9 }, { queue: "elsewhere" })
          const one = yield* Effect.flip(JobQueue.enqueue(Echo, { n: 1 }, { queue: "q", after: [other] }))
          assert.instanceOf(one, InvalidJobOptions)
          assert.strictEqual((one as InvalidJobOptions).field, "after")
          assert.match((one as InvalidJobOptions).reason, /Redis Cluster a job's dependencies must be of its own queue/)
          const all = yield* Effect.flip(JobQueue.enqueueAll(Echo, [
            { payload: { n: 2 }, options: { queue: "elsewhere" } },
            { payload: { n: 3 }, options: { queue: "q", after: [{ item: 0 }] } }
          ]))
          assert.strictEqual((all as InvalidJobOptions).field, "items[1].options.after")
          assert.deepStrictEqual((yield* JobQueue.list()).map((job) => job.id), [other.id], "neither call stored a job")
          const first = yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "q" })
          const jobs = yield* JobQueue.enqueueAll(Echo, [
            { payload: { n: 2 }, options: { queue: "q", after: [first] } },
            { payload: { n: 3 }, options: { queue: "q", after: [{ item: 0 }, first] } }
          ])
          assert.deepStrictEqual((yield* JobQueue.list({ state: "blocked" })).map((job) => job.id).sort(), jobs.map((job) => job.id).sort())
          yield* JobQueue.consume({ queues: ["q"], handlers: handlers(runs), concurrency: 2 })
          assert.strictEqual(yield* JobQueue.await(Echo, jobs[1]!.id), 3)
          return yield* Ref.get(runs)
        }).pipe(Effect.scoped, Effect.provide(RedisJobStore.layer({ url: cluster!.url, prefix, cluster: true })), Effect.timeout("30 seconds"))
        assert.deepStrictEqual(runs, ["echo:1", "echo:2", "echo:3"])
      }), { timeout: 60_000 })

    // a repeat's tick has an id that names no queue: the scripts found such a dependency gone from
    // its queue in the id index, another slot (CROSSSLOT: the settle and the redrive failed)
    it.live("job dependencies on a Cluster after repeat ticks (ids naming no queue), one deleted: a settle releases the dependent that counts it as ended, a redrive answers false", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        yield* Effect.gen(function*() {
          const store = yield* Store
          const tick = (id: string) => newJob("q", { id, runAt: Date.now(), notAfter: Date.now() + 3_600_000 })
          yield* store.enqueue(tick("repeat:r:1"))
          yield* store.enqueue(tick("repeat:r:2"))
          const cleanup = yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "q", after: ["repeat:r:1", "repeat:r:2"], afterFailure: "run" })
          const after = yield* JobQueue.enqueue(Echo, { n: 2 }, { queue: "q", after: ["repeat:r:1"] })
          const claimOne = Effect.map(store.claim({ queues: ["q"], tasks: ["Echo"], limit: 1, lease: 60_000 }), ({ claims }) => claims[0]!)
          const first = yield* claimOne
          assert.strictEqual(first.job.id, "repeat:r:1")
          assert.isTrue(yield* store.settle(first.token, { _tag: "Final", state: "dead", exit: null }))
          assert.strictEqual((yield* JobQueue.status(after.id)).state, "cancelled")
          assert.strictEqual(yield* store.purge(Date.now() + 60_000, ["dead"]), 1)
          assert.isFalse(yield* JobQueue.redrive(after.id), "its dependency is gone")
          const second = yield* claimOne
          assert.strictEqual(second.job.id, "repeat:r:2")
          assert.isTrue(yield* store.settle(second.token, { _tag: "Final", state: "succeeded", exit: "1" }))
          assert.strictEqual((yield* JobQueue.status(cleanup.id)).state, "queued")
        }).pipe(Effect.scoped, Effect.provide(RedisJobStore.layer({ url: cluster!.url, prefix, cluster: true })), Effect.timeout("30 seconds"))
      }), { timeout: 60_000 })

    it.live("commands leave no timer behind (node-redis's per-command AbortSignal.timeout, which fires 5 s after the reply)", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        const made = yield* timeoutSignalsOfJobs(
          RedisJobStore.layer({ url: cluster!.url, prefix, cluster: true }),
          prefix,
          cluster!.nodes.map((node) => node.url)
        )
        assert.strictEqual(made, 0)
      }), { timeout: 60_000 })
  })
}
