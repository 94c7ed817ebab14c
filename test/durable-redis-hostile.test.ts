/**
 * The Redis store under hostile input: queue names with the characters its keys and ids use (`:`
 * `{` `}`), unicode, the longest allowed; ids of the store's `<UUID>:<queue>` shape that name another
 * queue, a missing one, or differ only in case; stores of different prefixes on one server.
 */
import { assert, describe, it } from "@effect/vitest"
import * as NodeRedis from "@effect/platform-node/NodeRedis"
import { Context, Effect, Fiber, Layer } from "effect"
import * as Redis from "effect/persistence/Redis"
import * as RedisStore from "../src/internal/store/redis.ts"
import { StoreError } from "../src/DurableError.ts"
import * as JobQueue from "../src/JobQueue.ts"
import * as RedisJobStore from "../src/RedisJobStore.ts"
import * as Task from "../src/Task.ts"
import { Echo } from "./durable/conformance.ts"
import { admin, blocked, enabled, freshPrefix, keysOf, url } from "./durable/redis.ts"
import { Work } from "./fixtures/durable-tasks.ts"

if (!enabled) describe.skip("the Redis store, hostile (WORKPOOL_REDIS_URL is not set)", () => {})
else {
  const layer = (prefix: string) => RedisJobStore.layer({ url: url!, prefix })
  const HOUR = 3_600_000
  const keys = (prefix: string) => Effect.promise(() => admin((client) => keysOf(client, prefix)))

  describe("the Redis store, hostile", () => {
    it.live("queue names with : { } unicode and 1,000 characters: enqueue, status, consume, await, cancel", () =>
      Effect.gen(function*() {
        const names = [":", "a:b", "{", "}", "a}b{c", "{x}", "очередь ✓ 🚀", "q".repeat(999) + "}"]
        for (const queue of names) {
          const job = yield* JobQueue.enqueue(Echo, { n: 2 }, { queue })
          assert.strictEqual((yield* JobQueue.status(job.id)).queue, queue)
          const queued = yield* JobQueue.enqueue(Echo, { n: 3 }, { queue, delay: "1 hour" })
          assert.strictEqual(yield* JobQueue.cancel(queued.id), "cancelled")
        }
        yield* JobQueue.consume({ queues: names, handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n * 2))], concurrency: 2 })
        for (const queue of names) {
          const job = yield* JobQueue.enqueue(Echo, { n: 5 }, { queue })
          assert.strictEqual(yield* JobQueue.await(Echo, job.id), 10)
        }
      }).pipe(Effect.scoped, Effect.provide(layer(freshPrefix())), Effect.timeout("40 seconds")), { timeout: 60_000 })

    it.live("an id of the store's shape naming another queue, a missing one, or in capitals: JobNotFound for status, await, cancel, redrive; no key is written; the real job is untouched", () => {
      const prefix = freshPrefix()
      return Effect.gen(function*() {
        const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "a", delay: "1 hour" })
        yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "b", delay: "1 hour" })
        const uuid = job.id.slice(0, 36)
        const before = (yield* keys(prefix)).sort()
        const forged = [`${uuid}:b`, `${uuid}:nowhere`, `${uuid}:`, `${uuid}:a:`, `${uuid.toUpperCase()}:a`, uuid, `${uuid}:a}`, `${uuid}:${"z".repeat(5000)}`]
        for (const id of forged) {
          for (const attempt of [JobQueue.status(id), JobQueue.cancel(id), JobQueue.redrive(id), JobQueue.await(Echo, id)] as const) {
            const error = yield* Effect.flip(attempt as Effect.Effect<unknown, unknown, any>)
            assert.strictEqual((error as { _tag: string })._tag, "JobNotFound", id)
          }
        }
        assert.deepStrictEqual((yield* keys(prefix)).sort(), before)
        assert.strictEqual((yield* JobQueue.status(job.id)).state, "delayed")
      }).pipe(Effect.provide(layer(prefix)), Effect.timeout("40 seconds"))
    }, { timeout: 60_000 })

    it.live("two stores whose prefixes differ by a ':' part cannot share a queue (p's queue x:q was p:x's queue q): a prefix with ':' fails typed, naming it", () => {
      const outer = freshPrefix()
      const inner = `${outer}:x`
      return Effect.gen(function*() {
        yield* Effect.provide(JobQueue.enqueue(Echo, { n: 1 }, { queue: "x:q" }), layer(outer))
        const error = yield* Effect.flip(Effect.provide(JobQueue.stats("q"), layer(inner)))
        assert.instanceOf(error, StoreError)
        assert.include(error.message, `prefix`)
        assert.include(error.message, JSON.stringify(inner))
        assert.include(error.message, "no ':'")
      }).pipe(Effect.timeout("40 seconds"))
    }, { timeout: 60_000 })

    it.live("two processes idle on one queue, each handling other tasks: a job of the second's task is not left to its poll when the first one's watch takes its wake-up (it claims nothing)", () => {
      const prefix = freshPrefix()
      return Effect.gen(function*() {
        // the first process handles Work only, and blocks on the queue's marker first
        const first = yield* Layer.build(layer(prefix))
        yield* JobQueue.consume({ handlers: [Task.handle(Work, ({ n }) => Effect.succeed(n))], concurrency: 1, poll: "1 hour" }).pipe(
          Effect.provideContext(first)
        )
        yield* Effect.promise(() => blocked(prefix, 1))
        // the second handles Echo only
        yield* JobQueue.consume({ handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n * 2))], concurrency: 1, poll: "1 hour" })
        yield* Effect.promise(() => blocked(prefix, 2))
        const job = yield* Effect.provide(JobQueue.enqueue(Echo, { n: 21 }), layer(prefix))
        // the first process takes the marker and claims nothing; the second's watch looks every 5 s
        // (BLOCK_SECONDS): within that and a claim (it put the marker back, for the first to take
        // again while it blocked first: 10 s and more)
        assert.strictEqual(yield* JobQueue.await(Echo, job.id).pipe(Effect.timeout("8 seconds")), 42)
      }).pipe(Effect.scoped, Effect.provide(layer(prefix)), Effect.timeout("40 seconds"))
    }, { timeout: 60_000 })

    it.live("a job that ends or is cancelled wakes this process's awaiter at once (poll 1 hour), and not its idle consumer of another queue", () => {
      const prefix = freshPrefix()
      return Effect.gen(function*() {
        const client = yield* Layer.build(NodeRedis.layer({ url: url!, name: `effect-workpool:${prefix}`, maxConnections: RedisStore.WATCH_CONNECTIONS }))
        const store = yield* Effect.provideService(
          Effect.flatMap(RedisStore.options({ url: url!, prefix }), RedisStore.make),
          Redis.Redis,
          Context.get(client, Redis.Redis)
        )
        const job = (queue: string) => ({ queue, task: "Echo", payload: "{}", priority: 0, dedupKey: null, maxAttempts: 3, timeout: 0, delay: 0, runAt: undefined })
        const request = (queue: string) => ({ queues: [queue], tasks: ["Echo"], limit: 1, lease: 60_000 })
        assert.strictEqual((yield* store.claim(request("b"))).claims.length, 0)
        const idleOfB = yield* Effect.forkChild(store.wait(HOUR, yield* store.version, ["b"]))
        yield* Effect.promise(() => blocked(prefix))
        for (const end of ["settle", "cancel"] as const) {
          const made = yield* store.enqueue(job("a"))
          const claimed = end === "settle" ? (yield* store.claim(request("a"))).claims[0]! : undefined
          const awaiter = yield* Effect.forkChild(store.wait(HOUR, yield* store.version))
          yield* Effect.yieldNow
          if (claimed !== undefined) assert.isTrue(yield* store.settle(claimed.token, { _tag: "Final", state: "succeeded", exit: null }))
          else assert.strictEqual(yield* store.cancel(made.id), "cancelled")
          yield* Fiber.join(awaiter).pipe(Effect.timeout("5 seconds"))
        }
        assert.isUndefined(idleOfB.pollUnsafe(), "the idle consumer of b was woken by jobs of a ending")
      }).pipe(Effect.scoped, Effect.timeout("40 seconds"))
    }, { timeout: 60_000 })
  })
}
