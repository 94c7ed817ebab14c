/**
 * Hostile tests of a queue's shared rate limit as its held-back consumers see it (memory store,
 * TestClock): a held-back consumer waits on the store (after a nap of CLAIM_RETRY_FLOOR) rather
 * than sleeping to its window; nothing it hears may hold a job back longer than its window, its
 * poll or a delayed job's time, let a job through the window, or hold up a pause or a shutdown.
 */
import { assert, describe, it } from "@effect/vitest"
import { vi } from "vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import { Context, Deferred, Effect, Fiber, Layer, Redacted, Schedule, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as PgJobStore from "../src/PgJobStore.ts"
import * as Postgres from "../src/internal/store/postgres.ts"
import * as RedisJobStore from "../src/RedisJobStore.ts"
import type { Store } from "../src/internal/store/model.ts"
import * as Task from "../src/Task.ts"
import { Echo } from "./durable/conformance.ts"
import * as Pg from "./durable/postgres.ts"
import * as Rd from "./durable/redis.ts"
import { settle } from "./helpers.ts"

const HOUR = 3_600_000

/** Lets the clock run `millis` in steps, every fiber settling after each. */
const tick = (millis: number, step = 10) =>
  Effect.gen(function*() {
    yield* settle
    for (let t = 0; t < millis; t += step) {
      yield* TestClock.adjust(Math.min(step, millis - t))
      yield* settle
    }
  })

/** A memory store that counts its claims, and the jobs a consumer started (by payload). */
const setup = Effect.gen(function*() {
  const store = yield* JobStore.JobStore
  const counter = { claims: 0 }
  const counting: Store = { ...store, claim: (request) => Effect.andThen(Effect.sync(() => counter.claims++), store.claim(request)) }
  const started: Array<number> = []
  const consume = (options: { readonly queues?: ReadonlyArray<string>; readonly concurrency?: number; readonly poll?: number }) =>
    Effect.provideService(
      JobQueue.consume({
        queues: options.queues ?? ["default"],
        concurrency: options.concurrency ?? 4,
        poll: options.poll ?? HOUR,
        lease: HOUR,
        handlers: [Task.handle(Echo, ({ n }) => Effect.sync(() => (started.push(n), n)))]
      }),
      JobStore.JobStore,
      counting
    )
  return { counter, started, consume }
})

const provide = <A, E>(effect: Effect.Effect<A, E, JobStore.JobStore | Scope.Scope>) =>
  Effect.provide(Effect.scoped(effect), Layer.fresh(JobStore.memory()))

describe("a queue's rate limit and its held-back consumers (memory, TestClock)", () => {
  it.effect("the window's end starts the next job at its time (poll of an hour), at a claim or two per window", () =>
    provide(Effect.gen(function*() {
      const { counter, started, consume } = yield* setup
      yield* JobQueue.setRateLimit("default", { limit: 1, interval: "1 second" })
      for (let n = 0; n < 3; n++) yield* JobQueue.enqueue(Echo, { n }, { priority: -n })
      yield* consume({})
      yield* tick(50)
      assert.deepStrictEqual(started, [0])
      const before = counter.claims
      yield* tick(900)
      assert.deepStrictEqual(started, [0], "held back before the window frees")
      yield* tick(100)
      assert.deepStrictEqual(started, [0, 1], "started when the window freed")
      assert.isAtMost(counter.claims - before, 4, "no claim loop while held back")
      yield* tick(1000)
      assert.deepStrictEqual(started, [0, 1, 2])
    })))

  it.effect("a delayed job of another of its queues starts at its time while the consumer is held back by an hour's window", () =>
    provide(Effect.gen(function*() {
      const { started, consume } = yield* setup
      yield* JobQueue.setRateLimit("default", { limit: 1, interval: "1 hour" })
      for (let n = 0; n < 2; n++) yield* JobQueue.enqueue(Echo, { n }, { priority: -n })
      yield* JobQueue.enqueue(Echo, { n: 10 }, { queue: "other", delay: "500 millis" })
      yield* consume({ queues: ["default", "other"] })
      yield* tick(50)
      assert.deepStrictEqual(started, [0])
      yield* tick(400)
      assert.deepStrictEqual(started, [0])
      yield* tick(150)
      assert.deepStrictEqual(started, [0, 10], "the delayed job at its time, not at the window or the poll")
      // and one enqueued to the other queue now starts within the floor
      yield* JobQueue.enqueue(Echo, { n: 11 }, { queue: "other" })
      yield* tick(150)
      assert.deepStrictEqual(started, [0, 10, 11])
    })))

  it.effect("a limit raised, then lowered at once: what the raise allowed at most, then nothing through the lowered window", () =>
    provide(Effect.gen(function*() {
      const { started, consume } = yield* setup
      yield* JobQueue.setRateLimit("default", { limit: 1, interval: "1 hour" })
      for (let n = 0; n < 4; n++) yield* JobQueue.enqueue(Echo, { n }, { priority: -n })
      yield* consume({})
      yield* tick(200)
      assert.deepStrictEqual(started, [0])
      yield* JobQueue.setRateLimit("default", { limit: 5, interval: "1 hour" })
      yield* JobQueue.setRateLimit("default", { limit: 1, interval: "1 hour" })
      yield* tick(1000)
      // a claim may race in between (the raise was in force): at most what it allowed
      assert.isAtMost(started.length, 4)
      const through = [...started]
      yield* tick(5000)
      assert.deepStrictEqual(started, through, "the latest claim still counted by the lowered limit: the window full")
    })))

  // at 50 ms it naps (CLAIM_RETRY_FLOOR), at 500 ms it waits on the store
  for (const [at, where] of [[50, "mid-nap"], [500, "waiting on the store, past its nap"]] as const) {
    it.effect(`shutdown of a consumer held back by an hour's window, ${where}, ends at once (it does not wait the window)`, () =>
      provide(Effect.gen(function*() {
        const { started, consume } = yield* setup
        yield* JobQueue.setRateLimit("default", { limit: 1, interval: "1 hour" })
        for (let n = 0; n < 3; n++) yield* JobQueue.enqueue(Echo, { n }, { priority: -n })
        const consumer = yield* consume({})
        yield* tick(at)
        assert.deepStrictEqual(started, [0])
        const stopping = yield* Effect.forkChild(consumer.shutdown)
        yield* tick(20)
        assert.isDefined(stopping.pollUnsafe(), "the shutdown ended within 20 ms")
        yield* Fiber.join(stopping)
        assert.deepStrictEqual(started, [0], "the held-back jobs stay queued")
      })))
  }

  it.effect("paused while held back: a lift starts nothing; resumed, what the raise allows starts at once, then the raised window holds", () =>
    provide(Effect.gen(function*() {
      const { started, consume } = yield* setup
      yield* JobQueue.setRateLimit("default", { limit: 1, interval: "1 hour" })
      for (let n = 0; n < 3; n++) yield* JobQueue.enqueue(Echo, { n }, { priority: -n })
      const consumer = yield* consume({})
      yield* tick(500)
      yield* consumer.pause
      yield* JobQueue.setRateLimit("default", { limit: 2, interval: "1 hour" })
      yield* tick(500)
      assert.deepStrictEqual(started, [0])
      yield* consumer.resume
      yield* tick(150)
      assert.deepStrictEqual(started, [0, 1], "raised to 2: one more, no more")
      yield* tick(2000)
      assert.deepStrictEqual(started, [0, 1])
    })))

  it.effect("resized from 1 to 4 while held back: no more through the window; the lift starts the rest within the floor", () =>
    provide(Effect.gen(function*() {
      const { started, consume } = yield* setup
      yield* JobQueue.setRateLimit("default", { limit: 1, interval: "1 hour" })
      for (let n = 0; n < 4; n++) yield* JobQueue.enqueue(Echo, { n }, { priority: -n })
      const consumer = yield* consume({ concurrency: 1 })
      yield* tick(500)
      yield* consumer.resize(4)
      yield* tick(500)
      assert.deepStrictEqual(started, [0])
      yield* JobQueue.setRateLimit("default", undefined)
      yield* tick(120)
      assert.deepStrictEqual(started, [0, 1, 2, 3])
    })))
})

/**
 * Two store instances of one queue limited to 1 an hour: `elsewhere` (another process's) enqueues
 * jobs 0 and 1; the other instance runs a consumer of 2, which starts job 0 and is then held back by
 * the window (its claim that says so made when this returns). `result(n)` awaits job n from elsewhere.
 */
const heldBackElsewhere = (layer: () => Layer.Layer<JobStore.JobStore, any>, queue: string) =>
  Effect.gen(function*() {
    const admin = Context.get(yield* Layer.build(layer()), JobStore.JobStore)
    const elsewhere = <A, E>(effect: Effect.Effect<A, E, JobStore.JobStore>) => Effect.provideService(effect, JobStore.JobStore, admin)
    const mine = Context.get(yield* Layer.build(layer()), JobStore.JobStore)
    const held = yield* Deferred.make<void>()
    const telling: Store = {
      ...mine,
      claim: (request) => Effect.tap(mine.claim(request), (claimed) => claimed.limitedFor > 0 ? Deferred.succeed(held, undefined) : Effect.void)
    }
    yield* elsewhere(JobQueue.setRateLimit(queue, { limit: 1, interval: "1 hour" }))
    const jobs = yield* elsewhere(Effect.forEach([0, 1], (n) => JobQueue.enqueue(Echo, { n }, { queue, priority: -n })))
    yield* Effect.provideService(
      JobQueue.consume({ queues: [queue], handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))], concurrency: 2, poll: "1 hour" }),
      JobStore.JobStore,
      telling
    )
    const result = (n: number) => elsewhere(JobQueue.await(Echo, jobs[n]!.id)).pipe(Effect.timeout("30 seconds"))
    assert.strictEqual(yield* result(0), 0)
    yield* Deferred.await(held).pipe(Effect.timeout("30 seconds"))
    return { elsewhere, result }
  })

/**
 * Live, across store instances: the window of an hour shortened to 7 s while it is still full (its
 * claim just made) frees at the claim's time + 7 s; the held-back consumer of another instance, its
 * poll an hour, must claim then, not at the old window's end. Redis' CONFIGURE woke no one for a new
 * limit under which the window is still full, though it frees sooner: the consumer waited for the
 * old window (an hour), and the job started only at the watch's next look once it freed (up to 5 s
 * late; before ORPHANS skipped full windows, the same).
 */
const intervalShortened = (layer: () => Layer.Layer<JobStore.JobStore, any>) =>
  Effect.gen(function*() {
    const queue = "limited"
    const { elsewhere, result } = yield* heldBackElsewhere(layer, queue)
    const heldAt = Date.now()
    // still full under the new interval (the claim was made well within 7 s): it frees at the claim + 7 s
    yield* elsewhere(JobQueue.setRateLimit(queue, { limit: 1, interval: "7 seconds" }))
    assert.strictEqual(yield* result(1), 1, "the shortened window's end started the next job")
    const late = Date.now() - heldAt - 7000
    assert.isAtMost(late, 1500, "at the window's end, not at a later look")
  }).pipe(Effect.scoped)

describe("a queue's window shortened while full reaches a held-back consumer of another store instance", () => {
  it.effect("memory (TestClock): the next job starts at the claim + the new interval", () =>
    provide(Effect.gen(function*() {
      const { started, consume } = yield* setup
      yield* JobQueue.setRateLimit("default", { limit: 1, interval: "1 hour" })
      for (let n = 0; n < 2; n++) yield* JobQueue.enqueue(Echo, { n }, { priority: -n })
      yield* consume({})
      yield* tick(500)
      assert.deepStrictEqual(started, [0])
      yield* JobQueue.setRateLimit("default", { limit: 1, interval: "2 seconds" })
      yield* tick(1400)
      assert.deepStrictEqual(started, [0])
      yield* tick(200)
      assert.deepStrictEqual(started, [0, 1])
    })))

  it.live.skipIf(!Pg.enabled)("Postgres", () => {
    const schema = Pg.freshSchema()
    return intervalShortened(() => PgJobStore.layer({ url: Pg.url!, schema, maxConnections: 2 }))
  }, { timeout: 60_000 })

  it.live.skipIf(!Rd.enabled)("Redis", () => {
    const prefix = Rd.freshPrefix()
    return intervalShortened(() => RedisJobStore.layer({ url: Rd.url!, prefix }))
  }, { timeout: 60_000 })
})

describe.skipIf(!Pg.enabled)("a queue's rate limit changed in the application's transaction (Postgres, layerClient)", () => {
  // The store's own waiters are woken when its statement returns, which inside the caller's
  // transaction is before the commit, and its own listener ignores the NOTIFY of its own change at
  // the commit (a payload id). Its held-back consumer's claim then must not settle for the old
  // limit: it takes the queue's row lock, which the transaction holds until its end, and reads the
  // committed limit once it has it.
  it.live("a limit lifted in the application's transaction starts the held-back consumer's jobs once it commits (same store instance)", () =>
    Effect.gen(function*() {
      const queue = "limited"
      const Database = PgClient.layer({ url: Redacted.make(Pg.url!), maxConnections: 4 })
      const Jobs = PgJobStore.layerClient({ schema: Pg.freshSchema() }).pipe(Layer.provide(Database))
      yield* Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const sql = yield* PgClient.PgClient
        const held = yield* Deferred.make<void>()
        let claiming = yield* Deferred.make<void>()
        let inFlight = 0
        const telling: Store = {
          ...store,
          claim: (request) =>
            Effect.andThen(
              Effect.andThen(Effect.sync(() => inFlight++), Deferred.succeed(claiming, undefined)),
              Effect.tap(store.claim(request), (claimed) => claimed.limitedFor > 0 ? Deferred.succeed(held, undefined) : Effect.void)
            ).pipe(Effect.ensuring(Effect.sync(() => inFlight--)))
        }
        yield* JobQueue.setRateLimit(queue, { limit: 1, interval: "1 hour" })
        const jobs = yield* Effect.forEach([0, 1], (n) => JobQueue.enqueue(Echo, { n }, { queue, priority: -n }))
        yield* Effect.provideService(
          JobQueue.consume({ queues: [queue], concurrency: 2, poll: "1 hour", handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))] }),
          JobStore.JobStore,
          telling
        )
        assert.strictEqual(yield* JobQueue.await(Echo, jobs[0]!.id).pipe(Effect.timeout("30 seconds")), 0)
        yield* Deferred.await(held).pipe(Effect.timeout("30 seconds"))
        yield* sql.withTransaction(Effect.gen(function*() {
          claiming = yield* Deferred.make<void>()
          yield* JobQueue.setRateLimit(queue, undefined)
          // the store's own consumer, woken before the commit, claims while the transaction is open
          // (or its claim in flight, which the transaction's lock on the queue's row holds up)
          if (inFlight === 0) yield* Deferred.await(claiming).pipe(Effect.timeout("30 seconds"))
        }))
        assert.strictEqual(
          yield* JobQueue.await(Echo, jobs[1]!.id).pipe(Effect.timeout("10 seconds")),
          1,
          "the lift reached the consumer once committed"
        )
      }).pipe(Effect.scoped, Effect.provide(Layer.merge(Jobs, Database)))
    }), { timeout: 60_000 })
})

describe.skipIf(!Pg.enabled)("a held-back consumer whose store's listener connection is lost (Postgres)", () => {
  it.live("a limit lifted by another instance while the listener reconnects starts the held-back job (the reconnect's look, or the NOTIFY)", () =>
    Effect.gen(function*() {
      const queue = "limited"
      const schema = Pg.freshSchema()
      const { elsewhere, result } = yield* heldBackElsewhere(() => PgJobStore.layer({ url: Pg.url!, schema, maxConnections: 2 }), queue)
      // the held-back consumer's store listens on the queue's channel: its connection is killed
      const channel = Postgres.queueChannel(schema, queue)
      const listening = yield* Pg.listenBackends(channel).pipe(
        Effect.filterOrFail((rows) => rows.length === 1, () => "not yet"),
        Effect.retry(Schedule.spaced("50 millis")),
        Effect.timeout("20 seconds")
      )
      yield* Effect.promise(() => Pg.admin((sql) => sql`SELECT pg_terminate_backend(${listening[0]!.pid})`))
      yield* elsewhere(JobQueue.setRateLimit(queue, undefined))
      assert.strictEqual(yield* result(1), 1, "lifted while the listener was lost: started once it is back")
    }).pipe(Effect.scoped), { timeout: 60_000 })
})

describe("a consumer's own rate limit on the live clock", () => {
  it.live("two claims less than `interval` apart in real time are never both allowed, whatever the milliseconds' fractions", () =>
    Effect.gen(function*() {
      let at = 1000
      const spy = vi.spyOn(performance, "now").mockImplementation(() => at)
      try {
        const started: Array<number> = []
        yield* Effect.gen(function*() {
          yield* JobQueue.consume({
            concurrency: 2,
            poll: HOUR,
            lease: HOUR,
            rateLimit: { limit: 1, interval: "10 millis" },
            handlers: [Task.handle(Echo, ({ n }) => Effect.sync(() => (started.push(n), n)))]
          })
          // claimed 0.95 ms after the consumer began
          at = 1000.95
          const first = yield* JobQueue.enqueue(Echo, { n: 1 })
          assert.strictEqual(yield* first.await, 1)
          // 9.1 ms later: within the window (floored readings would be 1000 and 1010, 10 apart)
          at = 1010.05
          const second = yield* JobQueue.enqueue(Echo, { n: 2 })
          // the consumer looks again at every nap's end; it has had time for several
          yield* Effect.sleep("100 millis")
          assert.deepStrictEqual(started, [1], "a second claim 9.1 ms after the first, with a limit of 1 per 10 ms")
          at = 1011
          assert.strictEqual(yield* second.await, 2)
        }).pipe(Effect.scoped, Effect.provide(Layer.fresh(JobStore.memory())))
      } finally {
        spy.mockRestore()
      }
    }), { timeout: 30_000 })
})

describe("a consumer's own rate limit counts its jobs' starts, not its claims' beginnings (memory, TestClock)", () => {
  it.effect("a claim that takes 500 ms (a store's round trip, a lock): the next job starts a whole interval after it", () =>
    provide(Effect.gen(function*() {
      const store = yield* JobStore.JobStore
      let slow = true
      // the first claim answers 500 ms after it is sent, the next ones at once
      const slowFirst: Store = {
        ...store,
        claim: (request) =>
          slow ? Effect.andThen(Effect.sleep(500), Effect.suspend(() => (slow = false, store.claim(request)))) : store.claim(request)
      }
      const started: Array<readonly [number, number]> = []
      const clockNow = Effect.clockWith((clock) => Effect.sync(() => clock.currentTimeMillisUnsafe()))
      const origin = yield* clockNow
      yield* JobQueue.enqueue(Echo, { n: 0 })
      yield* Effect.provideService(
        JobQueue.consume({
          concurrency: 4,
          poll: HOUR,
          lease: HOUR,
          rateLimit: { limit: 1, interval: 1000 },
          handlers: [Task.handle(Echo, ({ n }) => Effect.map(clockNow, (at) => (started.push([n, at - origin]), n)))]
        }),
        JobStore.JobStore,
        slowFirst
      )
      yield* tick(600)
      assert.deepStrictEqual(started, [[0, 500]])
      yield* JobQueue.enqueue(Echo, { n: 1 })
      yield* tick(2000)
      assert.strictEqual(started.length, 2)
      assert.isAtLeast(started[1]![1] - started[0]![1], 1000, "two jobs started less than the limit's interval apart")
    })))
})
