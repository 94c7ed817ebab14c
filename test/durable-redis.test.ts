/**
 * The Redis store: the conformance suite (under TestClock, the store's time from the Effect Clock),
 * then what only Redis does, live on the public layer (the server's clock): delays on the server's
 * `TIME`, wake-ups across store instances by BZPOPMIN on the marker, every key of a queue under
 * its hash tag, bad URLs and unreachable servers as typed errors, connections killed mid-run.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Layer, Logger, Redacted, Scope } from "effect"
import { TestClock } from "effect/testing"
import { StoreError } from "../src/DurableError.ts"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as RedisJobStore from "../src/RedisJobStore.ts"
import * as Task from "../src/Task.ts"
import { concurrencyCapFreedElsewhere, concurrencyCapTwoInstances, conformance, connectionsKilled, newJob, delayedWakeAcrossInstances, delayOnServerClock, Echo, notAfterOnServerClock, rateLimitChangeAcrossInstances, rateLimitLiftTwoInstances, dedupRaceAcrossInstances, retentionAcrossInstances } from "./durable/conformance.ts"
import { admin, blocked, timeoutSignalsOfJobs, enabled, freshPrefix, keysOf, ownServer, testLayer, until, url, watchScripts } from "./durable/redis.ts"
import { startConsumer, waitUntil } from "./durable/children.ts"
import { Work } from "./fixtures/durable-tasks.ts"
import * as NodeRedis from "@effect/platform-node/NodeRedis"
import * as Redis from "effect/persistence/Redis"
import * as RedisStore from "../src/internal/store/redis.ts"
import * as RedisScripts from "../src/internal/store/redisScripts.ts"
import { createHash } from "node:crypto"
import { readFileSync } from "node:fs"

if (!enabled) describe.skip("the Redis store (WORKPOOL_REDIS_URL is not set)", () => {})
else {
  conformance("Redis", () => testLayer())

  const layer = (prefix: string, options: Partial<RedisJobStore.RedisJobStoreOptions> = {}) =>
    RedisJobStore.layer({ url: url!, prefix, ...options })

  /** A store instance of `prefix` on a client of its own, whose connections are named `name` (another process's, for CLIENT LIST). */
  const namedStore = (prefix: string, name: string) =>
    Effect.gen(function*() {
      const client = yield* Layer.build(NodeRedis.layer({ url: url!, name, maxConnections: RedisStore.WATCH_CONNECTIONS }))
      const cfg = yield* RedisStore.options({ url: url!, prefix })
      return yield* Effect.provideService(RedisStore.make(cfg), Redis.Redis, Context.get(client, Redis.Redis))
    })

  const HOUR = 3_600_000
  /** What a consumer of `queues` with `limit` free slots asks for. */
  const request = (queues: ReadonlyArray<string>, limit = 1) => ({ queues, tasks: ["Echo"], limit, lease: 60_000 })

  describe("the Redis store", () => {
    it.effect("a job's expiry is a member of its queue's sorted set of expiries (in the queue's hash tag): a claim takes it out, so does its expiry; a job without one writes nothing there", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        const expiring = () => Effect.promise(() => admin((client) => client.zRange(`{${prefix}:default}:expiring`, 0, -1)))
        yield* Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          const first = yield* JobQueue.enqueue(Echo, { n: 1 }, { expireIn: "1 minute" })
          const second = yield* JobQueue.enqueue(Echo, { n: 2 }, { expireIn: "1 minute" })
          yield* JobQueue.enqueue(Echo, { n: 3 })
          assert.sameMembers(yield* expiring(), [first.id, second.id])
          const [claim] = (yield* store.claim(request(["default"]))).claims
          assert.strictEqual(claim!.job.id, first.id)
          assert.isNull(claim!.job.expireAt ?? null)
          assert.deepStrictEqual(yield* expiring(), [second.id])
          yield* TestClock.adjust("61 seconds")
          yield* store.reap([])
          assert.deepStrictEqual(yield* expiring(), [])
          assert.isDefined((yield* JobQueue.status(second.id)).expiredAt)
        }).pipe(Effect.provide(testLayer(prefix)))
      }))

    it.effect("a delay counts on the server's clock (TIME), not the producer's (here a TestClock at 1970)", () =>
      Effect.provide(delayOnServerClock, layer(freshPrefix())))

    it.effect("a repeat's tick's notAfter is checked on the server's clock as the insert reaches it, not the producer's (here a TestClock at 1970)", () =>
      Effect.provide(notAfterOnServerClock, layer(freshPrefix())))

    it.live("an idle consumer polling once an hour starts a job enqueued by another store instance at once (BZPOPMIN)", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        const result = yield* Effect.gen(function*() {
          yield* JobQueue.consume({ handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n * 2))], concurrency: 1, poll: "1 hour" })
          const results: Array<number> = []
          for (let n = 1; n <= 3; n++) {
            // the claim loop has claimed nothing and this store blocks in BZPOPMIN: then another
            // "process" enqueues
            yield* Effect.promise(() => blocked(prefix))
            const job = yield* Effect.provide(JobQueue.enqueue(Echo, { n }), layer(prefix))
            results.push(yield* JobQueue.await(Echo, job.id))
          }
          return results
        }).pipe(Effect.scoped, Effect.provide(layer(prefix)), Effect.timeout("30 seconds"))
        assert.deepStrictEqual(result, [2, 4, 6])
      }), { timeout: 60_000 })

    it.live("an idle consumer of 12 queues polling once an hour starts a job enqueued by another store instance in any of them at once (a marker watch per queue)", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        const queues = Array.from({ length: 12 }, (_, i) => `q${i + 1}`)
        const result = yield* Effect.gen(function*() {
          yield* JobQueue.consume({ queues, handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n * 2))], concurrency: 1, poll: "1 hour" })
          yield* Effect.promise(() => blocked(prefix))
          const results: Array<number> = []
          for (const queue of [...queues].reverse()) {
            const job = yield* Effect.provide(JobQueue.enqueue(Echo, { n: Number(queue.slice(1)) }, { queue }), layer(prefix))
            results.push(yield* JobQueue.await(Echo, job.id))
          }
          return results
        }).pipe(Effect.scoped, Effect.provide(layer(prefix)), Effect.timeout("30 seconds"))
        assert.deepStrictEqual(result, queues.map((queue) => Number(queue.slice(1)) * 2).reverse())
      }), { timeout: 60_000 })

    it.live("a delayed job enqueued by another store instance starts at its time on a consumer polling once an hour (its marker), whose wall clock is an hour ahead", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        yield* delayedWakeAcrossInstances(() => layer(prefix))
      }), { timeout: 60_000 })

    it.live("a queue's rate limit raised, then lifted, through another store instance starts the held-back jobs at once on a consumer polling once an hour (its marker)", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        yield* rateLimitChangeAcrossInstances(() => layer(prefix))
      }), { timeout: 60_000 })

    it.live("a queue's retention applied by three store instances at once deletes each job once (a script per batch)", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        yield* retentionAcrossInstances(() => layer(prefix))
      }), { timeout: 90_000 })

    it.live("a queue's rate limit lifted through a third store instance starts jobs at once on both of two held-back consumers of their own instances (the marker passed on)", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        yield* rateLimitLiftTwoInstances(() => layer(prefix))
      }), { timeout: 60_000 })

    it.live("a queue's concurrency cap holds across two store instances' consumers polling once an hour, and each freed slot starts the next job at once (the marker a settle of a capped queue adds)", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        yield* concurrencyCapTwoInstances(() => layer(prefix))
      }), { timeout: 60_000 })

    it.live("a slot of a capped queue freed by another store instance (a final settle, a retry, a release, a reap that ends it dead or takes it back) starts the next job at once on a consumer polling once an hour (its marker)", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        // its watch blocked on the queue's marker (each round's consumer, idle after its round, keeps
        // its own blocked): from then on only the marker wakes it
        let rounds = 0
        yield* concurrencyCapFreedElsewhere(() => layer(prefix), () => Effect.promise(() => blocked(prefix, ++rounds)))
      }), { timeout: 120_000 })

    // the end-to-end tests above pass without it too, a 5 s orphan look later (each watch's look for
    // ready jobs no marker tells of): here the marker itself, with no consumer to pop it
    it.live("a settle or a reap that frees a slot of a capped queue with jobs ready adds its marker (the wake-up of consumers the cap held back, in every process); of a queue without a cap, neither does", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        const store = Context.get(yield* Layer.build(layer(prefix)), JobStore.JobStore)
        const marker = (queue: string) => Effect.promise(() => admin((client) => client.zScore(`{${prefix}:${queue}}:marker`, "0")))
        const dropMarker = (queue: string) => Effect.promise(() => admin((client) => client.zRem(`{${prefix}:${queue}}:marker`, "0")))
        const claimOne = (queue: string) =>
          Effect.map(store.claim({ queues: [queue], tasks: ["Echo"], limit: 1, lease: 60_000 }), ({ claims }) => {
            assert.strictEqual(claims.length, 1)
            return claims[0]!
          })
        const exit = JSON.stringify({ _tag: "Success", value: 0 })
        for (const queue of ["capped", "free"]) {
          const capped = queue === "capped"
          yield* Effect.provideService(
            Effect.andThen(
              capped ? JobQueue.setConcurrency(queue, 1) : Effect.void,
              Effect.forEach([0, 1, 2], (n) => JobQueue.enqueue(Echo, { n }, { queue, maxAttempts: 1 }))
            ),
            JobStore.JobStore,
            store
          )
          // the claim passes the marker on (jobs are left): dropped, as a consumer elsewhere pops it
          const settled = yield* claimOne(queue)
          yield* dropMarker(queue)
          assert.isTrue(yield* store.settle(settled.token, { _tag: "Final", state: "succeeded", exit }))
          assert.strictEqual(yield* marker(queue), capped ? 0 : null, `${queue}: a final settle`)
          const reaped = yield* claimOne(queue)
          yield* dropMarker(queue)
          // its lease cut to 1 ms, then reaped (dead: its one attempt spent) once that is over
          yield* store.heartbeat([reaped.token], 1)
          yield* until(Effect.orDie(store.reap([0])), (n) => n === 1, "the job reaped")
          assert.strictEqual((yield* Effect.provideService(JobQueue.status(reaped.job.id), JobStore.JobStore, store)).state, "dead")
          assert.strictEqual(yield* marker(queue), capped ? 0 : null, `${queue}: a reap that ends a job`)
        }
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("two store instances enqueue one dedup key at once, in each mode and in batches that repeat it: one job, whose handle both get", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        yield* dedupRaceAcrossInstances(() => layer(prefix))
      }), { timeout: 60_000 })

    it.live("a process whose idle consumer is on another queue does not swallow a queue's wake-up: an idle consumer of that queue in another process gets it at once, and a delayed one at its time", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        const producer = <A, E>(effect: Effect.Effect<A, E, JobStore.JobStore>) => Effect.provide(effect, layer(prefix))
        const one = Context.get(yield* Layer.build(layer(prefix)), JobStore.JobStore)
        const other = `${prefix}:other-process`
        const two = yield* namedStore(prefix, other)
        // process one: a consumer of q and one of "other", both idle (its watches of both queues block)
        assert.strictEqual((yield* one.claim(request(["q", "other"]))).claims.length, 0)
        const woken = yield* Effect.forkChild(one.wait(HOUR, undefined, ["q", "other"]))
        yield* Effect.promise(() => blocked(prefix, 2))
        // a job of q: process one's consumer of q takes it and is busy from now on; its consumer of "other" is idle again
        yield* producer(JobQueue.enqueue(Echo, { n: 1 }, { queue: "q" }))
        yield* Fiber.join(woken).pipe(Effect.timeout("10 seconds"))
        assert.strictEqual((yield* one.claim(request(["q"]))).claims.length, 1)
        assert.strictEqual((yield* one.claim(request(["other"]))).claims.length, 0)
        yield* Effect.forkChild(one.wait(HOUR, undefined, ["other"]))
        // process two: an idle consumer of q, whose watch blocks after process one's
        assert.strictEqual((yield* two.claim(request(["q"], 2))).claims.length, 0)
        const idle = yield* Effect.forkChild(two.wait(HOUR, undefined, ["q"]))
        yield* Effect.promise(() => blocked(prefix, 1, other))
        yield* producer(JobQueue.enqueue(Echo, { n: 2 }, { queue: "q" }))
        yield* Fiber.join(idle).pipe(
          Effect.timeout("10 seconds"),
          Effect.catchTag("TimeoutError", () => Effect.die("the idle consumer of q in process two was not woken for a job of q"))
        )
        assert.deepStrictEqual((yield* two.claim(request(["q"], 2))).claims.map((claim) => claim.job.payload), [`{"n":2}`])
        // a delayed job of q: process two's consumer (a slot still free) wakes at its time
        const again = yield* Effect.forkChild(two.wait(HOUR, undefined, ["q"]))
        yield* Effect.promise(() => blocked(prefix, 1, other))
        const delayed = yield* producer(JobQueue.enqueue(Echo, { n: 3 }, { queue: "q", delay: "1 second" }))
        yield* Fiber.join(again).pipe(
          Effect.timeout("10 seconds"),
          Effect.catchTag("TimeoutError", () => Effect.die("the idle consumer of q in process two was not woken for a delayed job of q"))
        )
        const claimed = yield* until(Effect.orDie(two.claim(request(["q"]))), (c) => c.claims.length > 0, "the delayed job is claimed")
        assert.strictEqual(claimed.claims[0]!.job.id, delayed.id)
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("two consumers on one store: the idle one is woken for its queue's job while the other's claims fill it (idleness is per consumer)", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        const producer = <A, E>(effect: Effect.Effect<A, E, JobStore.JobStore>) => Effect.provide(effect, layer(prefix))
        const store = Context.get(yield* Layer.build(layer(prefix)), JobStore.JobStore)
        yield* producer(JobQueue.enqueue(Echo, { n: 1 }, { queue: "other" }))
        // consumer x of q: its claim finds nothing; consumer y of "other": its claim fills its slot
        assert.strictEqual((yield* store.claim(request(["q"]))).claims.length, 0)
        assert.strictEqual((yield* store.claim(request(["other"]))).claims.length, 1)
        // x waits for a job of q: another process enqueues one
        const x = yield* Effect.forkChild(store.wait(HOUR, undefined, ["q"]))
        yield* producer(JobQueue.enqueue(Echo, { n: 2 }, { queue: "q" }))
        yield* Fiber.join(x).pipe(
          Effect.timeout("10 seconds"),
          Effect.catchTag("TimeoutError", () => Effect.die("the idle consumer of q was not woken"))
        )
        assert.strictEqual((yield* store.claim(request(["q"]))).claims.length, 1)
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("a wake-up is per queue: jobs of a, enqueued by another process or by this one, wake this process's idle consumer of a at once and never make its idle consumer of b claim", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        const plain = Context.get(
          yield* Layer.build(NodeRedis.layer({ url: url!, name: `effect-workpool:${prefix}`, maxConnections: RedisStore.WATCH_CONNECTIONS })),
          Redis.Redis
        )
        // the claim scripts this store sends, by queue (counted when sent)
        const claims = new Map<string, number>()
        const counted = watchScripts(plain, (lua, _, [key]) => {
          if (lua === RedisScripts.CLAIM) claims.set(key!, (claims.get(key!) ?? 0) + 1)
        })
        const claimsOf = (queue: string) => claims.get(`{${prefix}:${queue}}:meta`) ?? 0
        const store = yield* Effect.provideService(RedisStore.make(yield* RedisStore.options({ url: url!, prefix })), Redis.Redis, counted)
        const here = <A, E>(effect: Effect.Effect<A, E, JobStore.JobStore | Scope.Scope>) =>
          Effect.provideService(effect, JobStore.JobStore, store)
        const handlers = [Task.handle(Echo, ({ n }) => Effect.succeed(n * 2))]
        yield* here(JobQueue.consume({ queues: ["a"], handlers, concurrency: 1, poll: "1 hour" }))
        yield* here(JobQueue.consume({ queues: ["b"], handlers, concurrency: 1, poll: "1 hour" }))
        // both idle: their claims found nothing, and the watches of a and b block
        yield* Effect.promise(() => blocked(prefix, 2))
        const [a, b] = [claimsOf("a"), claimsOf("b")]
        const fromAnother = yield* Effect.provide(JobQueue.enqueue(Echo, { n: 1 }, { queue: "a" }), layer(prefix))
        assert.strictEqual(yield* here(JobQueue.await(Echo, fromAnother.id)).pipe(Effect.timeout("10 seconds")), 2)
        const fromHere = yield* here(JobQueue.enqueue(Echo, { n: 2 }, { queue: "a" }))
        assert.strictEqual(yield* here(JobQueue.await(Echo, fromHere.id)).pipe(Effect.timeout("10 seconds")), 4)
        // a's consumer claimed (a woken consumer's claim is sent before the job it takes can end)
        assert.isAtLeast(claimsOf("a") - a, 2)
        assert.strictEqual(claimsOf("b") - b, 0, "the idle consumer of b claimed for jobs of a")
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("an idle consumer whose queue holds only ready jobs of a task it does not handle is not woken to claim at each look of its store's watch (every 5 s)", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        const plain = Context.get(
          yield* Layer.build(NodeRedis.layer({ url: url!, name: `effect-workpool:${prefix}`, maxConnections: RedisStore.WATCH_CONNECTIONS })),
          Redis.Redis
        )
        // the claim scripts this store sends, and its watch's looks (ORPHANS) once answered
        const sent = { claims: 0, looks: 0 }
        const looked: Array<() => void> = []
        const counted = watchScripts(plain, (lua) => {
          if (lua === RedisScripts.CLAIM) sent.claims++
          return lua !== RedisScripts.ORPHANS ? undefined : () => {
            sent.looks++
            for (const wake of looked.splice(0)) wake()
          }
        })
        const looks = (n: number) =>
          Effect.callback<void>((resume) => {
            const check = () => sent.looks >= n ? resume(Effect.void) : void looked.push(check)
            check()
          })
        const store = yield* Effect.provideService(RedisStore.make(yield* RedisStore.options({ url: url!, prefix })), Redis.Redis, counted)
        const here = <A, E>(effect: Effect.Effect<A, E, JobStore.JobStore | Scope.Scope>) =>
          Effect.provideService(effect, JobStore.JobStore, store)
        // jobs of Work, for another process's consumers (all busy)
        for (let n = 0; n < 3; n++) yield* Effect.provide(JobQueue.enqueue(Work, { n }), layer(prefix))
        yield* here(JobQueue.consume({ handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n * 2))], concurrency: 1, poll: "1 hour" }))
        // its first claim, and one more for the enqueues' marker, which its watch pops (a wake-up of
        // the queue, whatever the task); then three looks (at the start, after 5 s, after 10 s): a
        // look that woke it would have had its claim sent by the next
        yield* looks(3).pipe(Effect.timeout("40 seconds"))
        assert.strictEqual(sent.claims, 2, "the idle consumer claimed at its store's looks for jobs of a task it does not handle")
        // a job it handles still wakes it
        const job = yield* Effect.provide(JobQueue.enqueue(Echo, { n: 4 }), layer(prefix))
        assert.strictEqual(yield* here(JobQueue.await(Echo, job.id)).pipe(Effect.timeout("10 seconds")), 8)
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("a delayed job's marker, taken by an idle store whose next claim fills its consumer, is handed back for other idle consumers; a claim of a store that holds none does not add it again", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        const marker = (queue: string) => Effect.promise(() => admin((client) => client.zScore(`{${prefix}:${queue}}:marker`, "1")))
        const context = yield* Layer.build(layer(prefix))
        const store = Context.get(context, JobStore.JobStore)
        // another process's store
        const producer = <A, E>(effect: Effect.Effect<A, E, JobStore.JobStore>) => Effect.provide(effect, layer(prefix))
        // an idle consumer of "q" and "other": its claim found nothing, and it waits (its store blocks on the markers)
        assert.strictEqual((yield* store.claim(request(["q", "other"]))).claims.length, 0)
        yield* Effect.forkChild(store.wait(3_600_000, undefined, ["q", "other"]))
        yield* Effect.promise(() => blocked(prefix))
        const delayed = yield* producer(JobQueue.enqueue(Echo, { n: 1 }, { queue: "q", delay: "1 minute" }))
        const due = (yield* Effect.provideContext(JobQueue.status(delayed.id), context)).visibleAt.getTime()
        // its store took the marker: no other process sees it now
        yield* until(marker("q"), (score) => score === null, "the idle store took the delayed job's marker")
        // the next claim fills the consumer (a job of "other"): the marker goes back, for the others
        yield* producer(JobQueue.enqueue(Echo, { n: 2 }, { queue: "other" }))
        assert.strictEqual((yield* store.claim(request(["other"]))).claims.length, 1)
        // (its own watch may pop it once more, before it stops: it puts it back)
        yield* until(marker("q"), (score) => score === due, "the marker was handed back")
        // another idle store takes it again; a claim here that takes a job of q leaves it there (it
        // re-added it at every such claim, and that store popped it again: a round trip each)
        yield* Effect.promise(() => admin((client) => client.zRem(`{${prefix}:q}:marker`, "1")))
        yield* producer(JobQueue.enqueue(Echo, { n: 3 }, { queue: "q" }))
        assert.strictEqual((yield* store.claim(request(["q"]))).claims.length, 1)
        assert.strictEqual(yield* marker("q"), null)
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("a store that took a queue's delayed markers answers for its next delayed job after the first one's time: its claim that fills up hands that one back", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        const marker = Effect.promise(() => admin((client) => client.zScore(`{${prefix}:q}:marker`, "1")))
        const producer = <A, E>(effect: Effect.Effect<A, E, JobStore.JobStore>) => Effect.provide(effect, layer(prefix))
        const store = Context.get(yield* Layer.build(layer(prefix)), JobStore.JobStore)
        assert.strictEqual((yield* store.claim(request(["q"], 2))).claims.length, 0)
        const woken = yield* Effect.forkChild(store.wait(HOUR, undefined, ["q"]))
        yield* Effect.promise(() => blocked(prefix))
        // two delayed jobs: the idle store takes both markers (it keeps the sooner one's time)
        const soon = yield* producer(JobQueue.enqueue(Echo, { n: 1 }, { queue: "q", delay: "1 second" }))
        yield* until(marker, (score) => score === null, "the idle store took the first marker")
        const later = yield* producer(JobQueue.enqueue(Echo, { n: 2 }, { queue: "q", delay: "1 hour" }))
        const due = (yield* store.get(later.id))!.visibleAt
        yield* until(marker, (score) => score === null, "the idle store took the second marker")
        // at the first one's time it claims it, with a slot left: it still answers for the second
        yield* Fiber.join(woken).pipe(Effect.timeout("10 seconds"))
        const first = yield* until(Effect.orDie(store.claim(request(["q"], 2))), (c) => c.claims.length > 0, "the first delayed job is claimed")
        assert.deepStrictEqual(first.claims.map((claim) => claim.job.id), [soon.id])
        assert.strictEqual(yield* marker, null)
        // then a claim fills its consumer: the second one's marker goes back, for the other processes
        yield* producer(JobQueue.enqueue(Echo, { n: 3 }, { queue: "q" }))
        assert.strictEqual((yield* store.claim(request(["q"]))).claims.length, 1)
        assert.strictEqual(yield* marker, due)
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("a delayed job's marker held by an idle store is handed back when that store closes (a graceful shutdown), not lost until another consumer's poll", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        const marker = Effect.promise(() => admin((client) => client.zScore(`{${prefix}:q}:marker`, "1")))
        const scope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(layer(prefix), scope)
        const store = Context.get(context, JobStore.JobStore)
        // an idle consumer: its claim found nothing, and it waits (its store blocks on the marker)
        assert.strictEqual((yield* store.claim({ queues: ["q"], tasks: ["Echo"], limit: 1, lease: 60_000 })).claims.length, 0)
        yield* Effect.forkIn(store.wait(3_600_000, undefined, ["q"]), scope)
        yield* Effect.promise(() => blocked(prefix))
        const delayed = yield* Effect.provide(JobQueue.enqueue(Echo, { n: 1 }, { queue: "q", delay: "1 hour" }), layer(prefix))
        const due = (yield* Effect.provideContext(JobQueue.status(delayed.id), context)).visibleAt.getTime()
        yield* until(marker, (score) => score === null, "the idle store took the delayed job's marker")
        // it answers for the job while it lives: another store's look for lost markers leaves it be
        const held = Effect.promise(() => admin((client) => client.zRangeWithScores(`{${prefix}:q}:held`, 0, -1)))
        yield* until(held, (entries) => entries.length === 1 && entries[0]!.score === due, "the store's hold is recorded")
        const orphans = Effect.promise(() =>
          admin((client) => client.eval(RedisScripts.ORPHANS, { keys: [`{${prefix}:q}:meta`], arguments: ["", "5000", "1"] }))
        )
        assert.strictEqual(yield* orphans, 0)
        assert.strictEqual(yield* marker, null)
        // the process stops: the other processes' idle consumers must still wake at the job's time
        yield* Scope.close(scope, Exit.void)
        assert.strictEqual(yield* marker, due)
        assert.deepStrictEqual(yield* held, [])
      }), { timeout: 60_000 })

    it.live("kill -9 of the process whose idle consumer took a delayed job's marker: an idle consumer of another process, polling once an hour, wakes for the job soon after its time", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        const marker = Effect.promise(() => admin((client) => client.zScore(`{${prefix}:default}:marker`, "1")))
        // process one: a consumer process (fixtures/durable-consumer.ts) whose claim found nothing, blocked on the marker
        const victim = startConsumer(url!, {
          concurrency: 1,
          lease: 60_000,
          jobMillis: 0,
          env: { WORKPOOL_REDIS_PREFIX: prefix, WORKPOOL_TEST_POLL: String(HOUR) }
        })
        yield* Effect.promise(() => waitUntil([victim], () => victim.lines.includes("ready"), "the victim is ready"))
        yield* Effect.promise(() => blocked(prefix))
        // process two: an idle consumer, whose claim found nothing before the job was enqueued
        const other = `${prefix}:other-process`
        const two = yield* namedStore(prefix, other)
        assert.strictEqual((yield* two.claim({ ...request(["default"]), tasks: ["Work"] })).claims.length, 0)
        const delayed = yield* Effect.provide(JobQueue.enqueue(Work, { n: 1 }, { delay: "3 seconds" }), layer(prefix))
        // process one's store took the marker, to wake its consumer then: nobody else knows of the job
        yield* until(marker, (score) => score === null, "the victim took the delayed job's marker")
        victim.child.kill("SIGKILL")
        yield* Effect.promise(() => victim.exited)
        assert.deepStrictEqual(victim.started, [])
        // process two's consumer waits (its watch blocks on the marker): it wakes for the job
        yield* two.wait(HOUR, undefined, ["default"]).pipe(
          Effect.timeout("30 seconds"),
          Effect.catchTag("TimeoutError", () => Effect.die("the idle consumer of process two was not woken for the killed process's delayed job"))
        )
        const claimed = yield* until(
          Effect.orDie(two.claim({ ...request(["default"]), tasks: ["Work"] })),
          (c) => c.claims.length > 0,
          "the delayed job is claimed"
        )
        assert.strictEqual(claimed.claims[0]!.job.id, delayed.id)
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("a throttle window's entry (B:window) goes with its job's purge, or with the next enqueue of its key once the window passed", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        const windowOf = () => Effect.promise(() => admin((client) => client.hGetAll(`{${prefix}:default}:window`)))
        yield* Effect.gen(function*() {
          yield* JobQueue.consume({ handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))], concurrency: 2 })
          const purged = yield* JobQueue.enqueue(Echo, { n: 1 }, { dedupKey: "a", dedupFor: "1 hour" })
          const passed = yield* JobQueue.enqueue(Echo, { n: 2 }, { dedupKey: "b", dedupFor: "1 millis" })
          yield* Effect.forEach([purged, passed], (job) => JobQueue.await(Echo, job.id))
          assert.deepStrictEqual(Object.keys(yield* windowOf()).sort(), ["a", "b"])
          // b's window of 1 ms passed (on the server's clock, waited for): the next enqueue of b drops its entry
          const ends = (yield* JobQueue.status(passed.id)).createdAt.getTime() + 1
          const serverNow = Effect.promise(() =>
            admin(async (client) => {
              const [seconds, micros] = await client.time()
              return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000)
            }))
          while ((yield* serverNow) <= ends) yield* Effect.sleep(5)
          const again = yield* JobQueue.enqueue(Echo, { n: 3 }, { dedupKey: "b" })
          assert.isTrue(again.created)
          yield* JobQueue.await(Echo, again.id)
          assert.deepStrictEqual(Object.keys(yield* windowOf()), ["a"])
          // a job left in the queue, so that the purge does not drop the queue's keys whole
          yield* JobQueue.enqueue(Echo, { n: 4 }, { delay: "1 hour" })
          yield* JobQueue.purge({ olderThan: 0, states: ["succeeded"] })
        }).pipe(Effect.scoped, Effect.provide(layer(prefix)), Effect.timeout("30 seconds"))
        assert.deepStrictEqual(yield* windowOf(), {})
      }), { timeout: 60_000 })

    it.live("a throttle window's entry (B:window) goes with its job's retention delete; another job's stays", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        const windowOf = () => Effect.promise(() => admin((client) => client.hGetAll(`{${prefix}:default}:window`)))
        yield* Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          const deleted = yield* JobQueue.enqueue(Echo, { n: 1 }, { dedupKey: "a", dedupFor: "1 hour" })
          const kept = yield* JobQueue.enqueue(Echo, { n: 2 }, { dedupKey: "b", dedupFor: "1 hour" })
          const { claims } = yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 2, lease: 60_000 })
          assert.deepStrictEqual(claims.map((claim) => claim.job.id), [deleted.id, kept.id])
          yield* store.settle(claims[0]!.token, { _tag: "Final", state: "succeeded", exit: null })
          yield* store.settle(claims[1]!.token, { _tag: "Final", state: "dead", exit: null })
          assert.deepStrictEqual(Object.keys(yield* windowOf()).sort(), ["a", "b"])
          yield* JobQueue.setRetention("default", { succeeded: { count: 0 } })
          assert.deepStrictEqual(yield* store.retain(100), { deleted: 1, more: false })
          assert.deepStrictEqual(yield* windowOf(), { b: kept.id })
        }).pipe(Effect.scoped, Effect.provide(layer(prefix)), Effect.timeout("30 seconds"))
      }), { timeout: 60_000 })

    it.live("a key's running set (B:grun) goes when the per-key cap is removed while its job runs, and with the job's purge", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        const running = () => Effect.promise(() => admin(async (client) => (await keysOf(client, prefix)).filter((key) => key.includes(":grun:"))))
        yield* Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          yield* JobQueue.setGroupConcurrency("default", 1)
          yield* JobQueue.enqueue(Echo, { n: 1 }, { group: "a" })
          const [claim] = (yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 1, lease: 60_000 })).claims
          assert.deepStrictEqual(yield* running(), [`{${prefix}:default}:grun:a`])
          yield* JobQueue.setGroupConcurrency("default", undefined)
          assert.deepStrictEqual(yield* running(), [], "removed: no set, whose entry no settle without a cap takes out")
          assert.isTrue(yield* store.settle(claim!.token, { _tag: "Final", state: "succeeded", exit: null }))
          // an entry an older version's settle left: the job's purge takes it out
          yield* Effect.promise(() => admin((client) => client.sAdd(`{${prefix}:default}:grun:a`, claim!.job.id)))
          assert.strictEqual(yield* store.purge((yield* store.now) + 1, ["succeeded"]), 1)
          assert.deepStrictEqual(yield* running(), [])
        }).pipe(Effect.scoped, Effect.provide(layer(prefix)), Effect.timeout("30 seconds"))
      }), { timeout: 60_000 })

    it.live("every key of a queue carries the queue's hash tag {prefix:queue} (one Cluster slot per queue)", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        yield* Effect.gen(function*() {
          yield* JobQueue.consume({ queues: ["a", "b"], handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))], concurrency: 2 })
          const jobs = yield* Effect.forEach([1, 2, 3, 4], (n) =>
            JobQueue.enqueue(Echo, { n }, { queue: n % 2 === 0 ? "a" : "b", dedupKey: `k${n}`, delay: n === 4 ? "1 hour" : 0 }))
          yield* Effect.forEach(jobs.slice(0, 3), (job) => JobQueue.await(Echo, job.id))
          yield* JobQueue.cancel(jobs[3]!.id)
        }).pipe(Effect.scoped, Effect.provide(layer(prefix)), Effect.timeout("30 seconds"))
        const keys = yield* Effect.promise(() => admin((client) => keysOf(client, prefix)))
        const tagged = (key: string) => /^\{([^}]*)\}/.exec(key)?.[1]
        const tags = new Set(keys.map(tagged))
        assert.deepStrictEqual([...tags].sort(), [prefix, `${prefix}:a`, `${prefix}:b`].sort())
        // the key outside a queue's slot: the list of queues (a new job's id names its queue: no id → queue index)
        assert.deepStrictEqual(keys.filter((key) => tagged(key) === prefix).sort(), [`{${prefix}}:queues`])
      }), { timeout: 60_000 })

    // names made of pieces of the key layout: a '}' in a queue's name ended its hash tag early, and
    // queue "a" task "x}:meta" had the meta hash of queue "a}:ready:x" as its ready set (WRONGTYPE)
    it.live("no two (queue, task) pairs share a key, whatever their names ('{', '}', ':', '%', unicode); names without '}' keep their keys {prefix:queue}:...", () =>
      Effect.gen(function*() {
        let seed = 0x5eed16
        // mulberry32: the same names at every run
        const random = () => {
          seed = (seed + 0x6d2b79f5) | 0
          let t = Math.imul(seed ^ (seed >>> 15), seed | 1)
          t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
          return ((t ^ (t >>> 14)) >>> 0) / 4294967296
        }
        const pieces = ["a", "x", "}", "{", ":", ":meta", ":ready:", "ready", "%", "%7D", "%25", "é", "😀", "job:", " ", "{p:a}"]
        const name = () => Array.from({ length: 1 + Math.floor(random() * 4) }, () => pieces[Math.floor(random() * pieces.length)]!).join("")
        const pairs = new Map<string, Set<string>>([
          ["a", new Set(["x}:meta", "Echo"])],
          ["a}:ready:x", new Set(["Echo"])],
          ["a}b", new Set(["Echo"])],
          ["a%7Db", new Set(["Echo"])],
          ["a%7Db}", new Set(["Echo"])],
          ["a%}b", new Set(["Echo"])],
          // the same text once '}' is escaped and '%' is not
          ["a}}", new Set(["Echo"])],
          ["a%7D}", new Set(["Echo"])]
        ])
        while (pairs.size < 40) {
          const queue = name()
          const tasks = pairs.get(queue) ?? new Set<string>()
          for (let n = 1 + Math.floor(random() * 3); n > 0; n--) tasks.add(name())
          pairs.set(queue, tasks)
        }
        const all = [...pairs].flatMap(([queue, tasks]) => [...tasks].map((task) => ({ queue, task })))
        // many more names, by the layout of a queue's keys (redisScripts.ts): a ready set is no other
        // pair's, nor another queue's meta hash
        const layout = new Map<string, string>()
        for (let n = 0; n < 20_000; n++) {
          const queue = name()
          const task = name()
          for (const [key, owner] of [[`${RedisStore.queueBase("p", queue)}:ready:${task}`, `${queue} ${task}`], [`${RedisStore.queueBase("p", queue)}:meta`, queue]]) {
            const before = layout.get(key!)
            if (before !== undefined) assert.strictEqual(before, owner, `two names share ${key}`)
            layout.set(key!, owner!)
          }
        }
        const prefix = freshPrefix()
        const store = yield* namedStore(prefix, `effect-workpool:${prefix}`)
        const ids = new Map<string, string>()
        for (const { queue, task } of all) {
          // a setting other than its default: its meta hash is a key (a default one is no field)
          yield* store.configure(queue, { aging: 3_600_000 })
          const made = yield* store.enqueue({ ...newJob(queue), task, payload: JSON.stringify([queue, task]) })
          ids.set(made.id, JSON.stringify([queue, task]))
        }
        // a queue's keys: meta, seq, all, tasks, prio, marker; a task's ready set; a job's hash; and
        // the list of queues. Two logical keys in one Redis key make fewer (or a WRONGTYPE above)
        const keys = yield* Effect.promise(() => admin((client) => keysOf(client, prefix)))
        assert.strictEqual(keys.length, pairs.size * 6 + all.length * 2 + 1, "one key per queue's, task's and job's key")
        for (const queue of pairs.keys()) {
          if (!queue.includes("}")) assert.include(keys, `{${prefix}:${queue}}:meta`, "a name without '}' keeps its keys")
        }
        // the reads of every queue (the dashboard's, the ops') find each job under its own names
        const listed = yield* store.list({ queue: undefined, states: undefined, limit: 1000 })
        assert.deepStrictEqual(new Map(listed.map((job) => [job.id, JSON.stringify([job.queue, job.task])])), ids)
        for (const [id, names] of ids) {
          const job = yield* store.get(id)
          assert.strictEqual(JSON.stringify([job?.queue, job?.task]), names)
        }
        for (const { queue, task } of all) {
          const claimed = yield* store.claim({ queues: [queue], tasks: [task], limit: 10, lease: 60_000 })
          assert.deepStrictEqual(claimed.claims.map((claim) => claim.job.payload), [JSON.stringify([queue, task])], `queue ${JSON.stringify(queue)}, task ${JSON.stringify(task)}`)
        }
        for (const [queue, tasks] of pairs) {
          const counts = yield* store.counts(queue)
          assert.deepStrictEqual([counts.waiting, counts.running], [0, tasks.size], `queue ${JSON.stringify(queue)}`)
        }
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("bad options and unreachable servers fail with a typed StoreError; nothing hangs", () =>
      Effect.gen(function*() {
        const run = (options: RedisJobStore.RedisJobStoreOptions) => Effect.flip(Effect.provide(JobQueue.stats("default"), RedisJobStore.layer(options)))
        const notUrl = yield* run({ url: "http://root:secret@localhost:6379" })
        assert.instanceOf(notUrl, StoreError)
        assert.match(notUrl.message, /url.*redis:\/\//)
        assert.notInclude(notUrl.message, "secret", "the URL may hold a password: it is not repeated")
        const prefix = yield* run({ url: url!, prefix: "a{b}" })
        assert.match(prefix.message, /prefix.*"a\{b\}"/)
        const timeout = yield* run({ url: url!, connectTimeout: -1 })
        assert.match(timeout.message, /connectTimeout/)
        // a port where nobody listens: refused at once
        const refused = yield* run({ url: Redacted.make("redis://:secret@127.0.0.1:9"), connectTimeout: "5 seconds" })
        assert.strictEqual((refused as StoreError).operation, "open")
        assert.match(refused.message, /ECONNREFUSED/)
        assert.notInclude(refused.message, "secret")
      }), { timeout: 60_000 })

    it.live("a claim takes the settles queued in this store along, in its own script, each still fenced by its token", () =>
      Effect.gen(function*() {
        // a server of its own: its count of scripts run is this test's
        const server = yield* ownServer()
        const scripts = Effect.promise(() =>
          admin(async (client) => {
            const stats = await client.info("commandstats")
            return Number(/cmdstat_evalsha:calls=(\d+)/.exec(stats)?.[1] ?? 0) + Number(/cmdstat_eval:calls=(\d+)/.exec(stats)?.[1] ?? 0)
          }, server.url)
        )
        const outcome = yield* Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          for (let n = 0; n < 4; n++) yield* JobQueue.enqueue(Echo, { n })
          const request = { queues: ["default"], tasks: ["Echo"], limit: 2, lease: 60_000 }
          const [a, b] = (yield* store.claim(request)).claims
          // b's settle is written first: its token no longer holds the job when it comes again
          assert.isTrue(yield* store.settle(b!.token, { _tag: "Final", state: "succeeded", exit: "{}" }))
          const before = yield* scripts
          // as a busy consumer does: its jobs end, and the claim for their slots starts before their settles are written
          const [settledA, settledB, claimed] = yield* Effect.all([
            store.settle(a!.token, { _tag: "Final", state: "succeeded", exit: "{}" }),
            store.settle(b!.token, { _tag: "Final", state: "dead", exit: "{}" }),
            store.claim(request)
          ], { concurrency: "unbounded" })
          return {
            settledA,
            settledB,
            claimed: claimed.claims.map((claim) => claim.job.payload),
            scripts: (yield* scripts) - before,
            states: [(yield* store.get(a!.job.id))!.state, (yield* store.get(b!.job.id))!.state]
          }
        }).pipe(Effect.provide(RedisJobStore.layer({ url: server.url, prefix: freshPrefix() })))
        assert.deepStrictEqual(outcome, {
          settledA: true,
          settledB: false,
          claimed: [`{"n":2}`, `{"n":3}`],
          // one script: the claim, carrying both settles
          scripts: 1,
          states: ["succeeded", "succeeded"]
        })
      }), { timeout: 60_000 })

    it.live("a claim and a batch of settles cost 2 Redis commands per job, and a token settled twice in one batch is written once", () =>
      Effect.gen(function*() {
        // a server of its own: its count of commands run (those the scripts make) is this test's
        const server = yield* ownServer()
        const commands = Effect.promise(() =>
          admin(async (client) => {
            let calls = 0
            for (const [, name, n] of (await client.info("commandstats")).matchAll(/cmdstat_(\w+):calls=(\d+)/g)) {
              if (!["evalsha", "eval", "info", "script"].includes(name!)) calls += Number(n)
            }
            return calls
          }, server.url)
        )
        const outcome = yield* Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          /** The commands of a claim of `jobs` jobs and those of their settles, written as one batch. */
          const round = (jobs: number) =>
            Effect.gen(function*() {
              for (let n = 0; n < jobs; n++) yield* JobQueue.enqueue(Echo, { n })
              let before = yield* commands
              const { claims } = yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: jobs, lease: 60_000 })
              const claimed = (yield* commands) - before
              before = yield* commands
              // the first token twice: its second settle finds it gone
              const settled = yield* Effect.all(
                [...claims, claims[0]!].map((claim) => store.settle(claim.token, { _tag: "Final", state: "succeeded", exit: "{}" })),
                { concurrency: "unbounded" }
              )
              return { taken: claims.length, claimed, settled, settles: (yield* commands) - before }
            })
          const few = yield* round(4)
          const many = yield* round(12)
          return {
            taken: [few.taken, many.taken],
            // per job more; before: 7 per claimed job (a ZRANGE and a ZREM to take it, a ZADD and two
            // HSETs per lease) and 9 per settle (the lease ended and the job finished job by job)
            claimPerJob: (many.claimed - few.claimed) / 8,
            settlePerJob: (many.settles - few.settles) / 8,
            twice: [few.settled.at(-1), many.settled.at(-1), few.settled.slice(0, -1).every((ok) => ok), many.settled.slice(0, -1).every((ok) => ok)],
            succeeded: (yield* store.list({ queue: "default", states: ["succeeded"], limit: 100 })).length
          }
        }).pipe(Effect.provide(RedisJobStore.layer({ url: server.url, prefix: freshPrefix() })))
        assert.deepStrictEqual(outcome, {
          taken: [4, 12],
          // its HMGET and its HSET; the rest (one ZPOPMIN, one ZADD of the leases...) is per claim
          claimPerJob: 2,
          // its HSET and the read of its dedup key; the tokens, leases and final set: a command per batch
          settlePerJob: 2,
          twice: [false, false, true, true],
          succeeded: 16
        })
      }), { timeout: 60_000 })

    it.live("a settle no claim carries (its queue is not claimed) is written while other queues' claims follow each other", () =>
      Effect.gen(function*() {
        const written = yield* Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "b" })
          const [b] = (yield* store.claim({ queues: ["b"], tasks: ["Echo"], limit: 1, lease: 60_000 })).claims
          // busy consumers of queues a and c: claims one after another, one of them nearly always in flight
          const busy = yield* Effect.forkChild(
            Effect.all(
              ["a", "c"].map((queue) => Effect.forever(store.claim({ queues: [queue], tasks: ["Echo"], limit: 8, lease: 60_000 }))),
              { concurrency: "unbounded" }
            )
          )
          yield* Effect.sleep(50)
          const settled = yield* store.settle(b!.token, { _tag: "Final", state: "succeeded", exit: "{}" }).pipe(
            Effect.timeout("10 seconds")
          )
          yield* Fiber.interrupt(busy)
          return settled
        }).pipe(Effect.provide(layer(freshPrefix())))
        assert.isTrue(written)
      }), { timeout: 60_000 })

    it.live("commands leave no timer behind (node-redis's per-command AbortSignal.timeout, which fires 5 s after the reply)", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        const made = yield* timeoutSignalsOfJobs(layer(prefix), prefix)
        assert.strictEqual(made, 0)
      }), { timeout: 60_000 })

    it.live("a server that evicts keys when full is named in a warning: jobs would be lost", () =>
      Effect.gen(function*() {
        const server = yield* ownServer(["--maxmemory-policy", "allkeys-lru"])
        const logged: Array<string> = []
        const logger = Logger.make((options) => logged.push(`${options.logLevel} ${String(options.message)}`))
        yield* Effect.provide(JobQueue.stats("default"), RedisJobStore.layer({ url: server.url })).pipe(
          Effect.provide(Logger.layer([logger]))
        )
        assert.isTrue(logged.some((line) => /^Warn.*maxmemory-policy allkeys-lru.*noeviction/.test(line)), logged.join("\n"))
        // and none on the test server (noeviction)
        logged.length = 0
        yield* Effect.provide(JobQueue.stats("default"), layer(freshPrefix())).pipe(Effect.provide(Logger.layer([logger])))
        assert.deepStrictEqual(logged.filter((line) => line.includes("maxmemory")), [])
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("connections killed under a running consumer: the operations in flight fail typed, the next ones reconnect, the job finishes", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        // every connection of this store (the commands', the blocked BZPOPMIN's, the subscriber's)
        const kill = Effect.promise(() =>
          admin(async (client) => {
            const ids = (await client.clientList()).filter((c) => c.name === `effect-workpool:${prefix}`).map((c) => c.id)
            for (const id of ids) await client.sendCommand(["CLIENT", "KILL", "ID", String(id)])
            return ids.length
          })
        ).pipe(Effect.map((killed) => assert.isAtLeast(killed, 3)))
        yield* connectionsKilled(kill, 50).pipe(Effect.scoped, Effect.provide(layer(prefix)), Effect.timeout("60 seconds"))
      }), { timeout: 90_000 })

    it.live("an enqueue is one command to the server (the id index is written by the enqueue script); stores of the two-command layout (a Cluster's) and of this one read and dedup each other's jobs", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        const { counted, plain, sent } = yield* countingClient
        const cfg = yield* RedisStore.options({ url: url!, prefix })
        const one = yield* Effect.provideService(RedisStore.make({ ...cfg, clock: "server" }), Redis.Redis, counted)
        // the layout of a Cluster's store: the id index written first, by its own command
        const two = yield* Effect.provideService(RedisStore.make({ ...cfg, cluster: true, clock: "server" }), Redis.Redis, plain)
        const job = (id: string, queue: string, dedupKey: string | null = null) => ({
          id,
          queue,
          task: "Echo",
          payload: "{}",
          priority: 0,
          dedupKey,
          maxAttempts: 3,
          timeout: 0,
          delay: 0,
          runAt: undefined,
          retry: null,
          trace: null
        })
        // a queue joins the list of queues once per store
        yield* one.enqueue(job("warm-a", "a"))
        yield* one.enqueue(job("warm-b", "b"))
        sent.commands = 0
        assert.deepStrictEqual(yield* one.enqueue(job("j1", "a")), { id: "j1", created: true })
        assert.strictEqual(sent.commands, 1)
        // an id of this queue's: not enqueued, in one command too
        sent.commands = 0
        assert.deepStrictEqual(yield* one.enqueue(job("j1", "a")), { id: "j1", created: false })
        assert.strictEqual(sent.commands, 1)
        // an id another queue holds: not enqueued, in one command too (the script looks at that
        // queue; an orphan entry of the index names a queue that does not: durable-redis-hostile)
        sent.commands = 0
        assert.deepStrictEqual(yield* one.enqueue(job("j1", "b")), { id: "j1", created: false })
        assert.strictEqual(sent.commands, 1)
        // a dedup key held: the unfinished job's id, and the new id is not indexed
        assert.deepStrictEqual(yield* one.enqueue(job("d1", "a", "k")), { id: "d1", created: true })
        assert.deepStrictEqual(yield* one.enqueue(job("d2", "a", "k")), { id: "d1", created: false })
        assert.isUndefined(yield* two.get("d2"))
        // the other layout's jobs, and this one's, seen from each side
        assert.deepStrictEqual(yield* two.enqueue(job("old", "b", "k")), { id: "old", created: true })
        assert.deepStrictEqual((yield* one.get("old"))?.queue, "b")
        assert.deepStrictEqual(yield* one.enqueue(job("old", "a")), { id: "old", created: false })
        assert.deepStrictEqual(yield* one.enqueue(job("old2", "b", "k")), { id: "old", created: false })
        assert.deepStrictEqual((yield* two.get("j1"))?.queue, "a")
        assert.deepStrictEqual(yield* two.enqueue(job("j1", "b")), { id: "j1", created: false })
        assert.strictEqual(yield* one.cancel("old"), "cancelled")
        assert.strictEqual(yield* two.cancel("j1"), "cancelled")
        assert.deepStrictEqual((yield* one.list({ queue: "b", states: undefined, limit: 10 })).map((row) => [row.id, row.state]), [["warm-b", "queued"], ["old", "cancelled"]])
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("a job the store names (JobQueue.enqueue's) has an id that names its queue: on a Cluster too its enqueue is one command and its lookup one, with no id index entry", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix()
        const { counted, sent } = yield* countingClient
        const cfg = yield* RedisStore.options({ url: url!, prefix })
        // the layout of a Cluster's store (on one server: every slot is on it), and of one Redis
        const clustered = yield* Effect.provideService(RedisStore.make({ ...cfg, cluster: true, clock: "server" }), Redis.Redis, counted)
        const single = yield* Effect.provideService(RedisStore.make({ ...cfg, clock: "server" }), Redis.Redis, counted)
        const job = (queue: string, dedupKey: string | null = null) => ({
          queue,
          task: "Echo",
          payload: "{}",
          priority: 0,
          dedupKey,
          maxAttempts: 3,
          timeout: 0,
          delay: 0,
          runAt: undefined
        })
        // a queue joins the list of queues once per store
        for (const store of [clustered, single]) yield* store.enqueue(job("a"))
        for (const [store, other] of [[clustered, single], [single, clustered]] as const) {
          sent.commands = 0
          const made = yield* store.enqueue(job("a"))
          assert.strictEqual(sent.commands, 1)
          assert.isTrue(made.created)
          sent.commands = 0
          assert.strictEqual((yield* store.get(made.id))?.queue, "a")
          assert.strictEqual(sent.commands, 1)
          assert.strictEqual((yield* other.get(made.id))?.queue, "a")
          assert.strictEqual(yield* other.cancel(made.id), "cancelled")
          // a dedup key held: the holder's id, in one command
          const held = yield* store.enqueue(job("a", "k"))
          sent.commands = 0
          assert.deepStrictEqual(yield* store.enqueue(job("a", "k")), { id: held.id, created: false })
          assert.strictEqual(sent.commands, 1)
          assert.strictEqual(yield* store.cancel(held.id), "cancelled")
        }
        assert.strictEqual(yield* Effect.promise(() => admin((client) => client.exists(`{${prefix}}:ids`))), 0)
        // an id of another queue's shape that no job has: missing, not an error
        assert.isUndefined(yield* single.get("00000000-0000-4000-8000-000000000000:nowhere"))
        assert.strictEqual(yield* single.cancel("00000000-0000-4000-8000-000000000000:nowhere"), "missing")
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("a claim's size does not grow with its free slots: the script makes the tokens of the jobs it takes (a claim of 1,000 slots sent 1,000 tokens)", () =>
      Effect.gen(function*() {
        const plain = yield* Effect.map(Layer.build(NodeRedis.layer({ url: url! })), (context) => Context.get(context, Redis.Redis))
        const sizes: Array<number> = []
        const counted = watchScripts(plain, (_, __, params) => void sizes.push(params.length))
        const store = yield* Effect.provideService(RedisStore.make(yield* RedisStore.options({ url: url!, prefix: freshPrefix() })), Redis.Redis, counted)
        const jobs = yield* Effect.forEach([1, 2], (n) => Effect.provideService(JobQueue.enqueue(Echo, { n }, { queue: "q" }), JobStore.JobStore, store))
        sizes.length = 0
        const first = yield* store.claim({ queues: ["q"], tasks: ["Echo"], limit: 1000, lease: 60_000 })
        const second = yield* store.claim({ queues: ["q"], tasks: ["Echo"], limit: 1000, lease: 60_000 })
        assert.isBelow(Math.max(...sizes), 20)
        const claims = [...first.claims, ...second.claims]
        assert.deepStrictEqual(claims.map((claim) => claim.job.id), jobs.map((job) => job.id))
        // the tokens are the ones the script stored: they renew their leases and fence their settles
        assert.notStrictEqual(claims[0]!.token, claims[1]!.token)
        assert.deepStrictEqual(yield* store.heartbeat(claims.map((claim) => claim.token), 60_000), { lost: [], cancelled: [] })
        for (const claim of claims) assert.isTrue(yield* store.settle(claim.token, { _tag: "Final", state: "succeeded", exit: "{}" }))
        assert.isFalse(yield* store.settle(claims[0]!.token, { _tag: "Final", state: "dead", exit: "{}" }))
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("a script goes by EVALSHA with the SHA1 of its source: an enqueue and a claim send one command each; the source goes whole (EVAL) once, to a server that lacks it", () =>
      Effect.gen(function*() {
        // a server of its own: it has none of the scripts yet
        const server = yield* ownServer()
        const plain = yield* Effect.map(Layer.build(NodeRedis.layer({ url: server.url })), (context) => Context.get(context, Redis.Redis))
        const sha = (lua: string) => createHash("sha1").update(lua).digest("hex")
        // every command the store sends; a script's by the SHA it names (an EVAL's: of the source it carries)
        const sent: Array<string> = []
        const recording = Redis.Redis.of({
          ...plain,
          send: <A>(command: string, ...args: ReadonlyArray<string>) =>
            Effect.suspend(() => {
              sent.push(command === "EVALSHA" ? `EVALSHA ${args[0]}` : command === "EVAL" ? `EVAL ${sha(args[0]!)}` : command)
              return plain.send<A>(command, ...args)
            })
        })
        const cfg = yield* RedisStore.options({ url: server.url, prefix: freshPrefix() })
        const store = yield* Effect.provideService(RedisStore.make({ ...cfg, clock: "server" }), Redis.Redis, recording)
        const enqueue = store.enqueue(newJob("q"))
        const [ENQUEUE, CLAIM] = [sha(RedisScripts.ENQUEUE), sha(RedisScripts.CLAIM)]
        // what the store's start sends (its server's settings, its time)
        sent.length = 0
        yield* enqueue
        // the queue's first job: listed before (this store instance has not added it) and after (its
        // script made the queue, which a purge may have taken out of the list meanwhile)
        assert.deepStrictEqual(sent.splice(0), ["SADD", `EVALSHA ${ENQUEUE}`, `EVAL ${ENQUEUE}`, "SADD"])
        for (let n = 0; n < 3; n++) {
          yield* enqueue
          assert.deepStrictEqual(sent.splice(0), [`EVALSHA ${ENQUEUE}`])
        }
        assert.lengthOf((yield* store.claim(request(["q"], 2))).claims, 2)
        assert.deepStrictEqual(sent.splice(0), [`EVALSHA ${CLAIM}`, `EVAL ${CLAIM}`])
        for (let n = 0; n < 2; n++) {
          assert.lengthOf((yield* store.claim(request(["q"]))).claims, 1)
          assert.deepStrictEqual(sent.splice(0), [`EVALSHA ${CLAIM}`])
        }
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("SCRIPT FLUSH under a live store: its next settle, enqueue and claim succeed (the server is sent each script again, once)", () =>
      Effect.gen(function*() {
        const server = yield* ownServer()
        const scriptsLoaded = Effect.promise(() =>
          admin((client) => client.scriptExists([RedisScripts.ENQUEUE, RedisScripts.CLAIM, RedisScripts.SETTLE].map((lua) => createHash("sha1").update(lua).digest("hex"))), server.url)
        )
        const outcome = yield* Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "q" })
          const [first] = (yield* store.claim(request(["q"]))).claims
          const before = yield* scriptsLoaded
          yield* Effect.promise(() => admin((client) => client.scriptFlush(), server.url))
          const flushed = yield* scriptsLoaded
          const settled = yield* store.settle(first!.token, { _tag: "Final", state: "succeeded", exit: "{}" })
          yield* JobQueue.enqueue(Echo, { n: 2 }, { queue: "q" })
          const claimed = (yield* store.claim(request(["q"]))).claims.map((claim) => claim.job.payload)
          return { before, flushed, settled, claimed, after: yield* scriptsLoaded, state: (yield* store.get(first!.job.id))?.state }
        }).pipe(Effect.provide(layer(freshPrefix(), { url: server.url })))
        assert.deepStrictEqual(outcome, {
          before: [1, 1, 0],
          flushed: [0, 0, 0],
          settled: true,
          claimed: [`{"n":2}`],
          after: [1, 1, 1],
          state: "succeeded"
        })
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("a consumer of concurrency 100,000 claims its jobs (a claim that large overflowed the stack, at every poll)", () =>
      Effect.gen(function*() {
        yield* JobQueue.consume({ handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))], concurrency: 100_000, poll: 50 })
        const job = yield* JobQueue.enqueue(Echo, { n: 7 })
        assert.strictEqual(yield* Effect.timeout(job.await, "20 seconds"), 7)
      }).pipe(Effect.scoped, Effect.provide(layer(freshPrefix()))), { timeout: 60_000 })
  })
}

// Redis 6.0 is what Debian 11 and Ubuntu 22.04 ship: an option newer than that (ZADD's LT/GT,
// GETDEL, LMOVE, ZRANGE's BYSCORE...) fails there as "ERR syntax error" on every call that uses it
/**
 * A client of the test server, and one over it that counts the commands sent through it
 * (`sent.commands`; an EVALSHA counts one, a NOSCRIPT retry would count two).
 */
const countingClient = Effect.gen(function*() {
  const plain = yield* Effect.map(Layer.build(NodeRedis.layer({ url: url! })), (context) => Context.get(context, Redis.Redis))
  const sent = { commands: 0 }
  const counted = Redis.Redis.of({
    ...plain,
    send: (command, ...args) => Effect.suspend(() => (sent.commands++, plain.send(command, ...args))),
    eval: (script) => (...params) => Effect.suspend(() => (sent.commands++, plain.eval(script)(...params)))
  })
  return { counted, plain, sent }
})

describe("Redis store: commands Redis 6.0 knows", () => {
  const newer = /"(LT|GT|GETDEL|GETEX|LMOVE|BLMOVE|ZRANGESTORE|ZMSCORE|BYSCORE|BYLEX|REV|HRANDFIELD|ZRANDMEMBER|ZUNION|ZINTER|ZDIFF|COPY|EXAT|PXAT)"/
  it("no script or command uses an option or command added in Redis 6.2 or later", () => {
    const sources: Array<[string, string]> = [
      ...Object.entries(RedisScripts).filter((e): e is [string, string] => typeof e[1] === "string"),
      ["redis.ts", readFileSync(new URL("../src/internal/store/redis.ts", import.meta.url), "utf8")]
    ]
    for (const [name, source] of sources) assert.isNull(source.match(newer), `${name} uses a Redis 6.2+ option`)
  })
})
