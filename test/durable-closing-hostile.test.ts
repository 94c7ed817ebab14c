/**
 * Hostile tests of a store that closes under its users (its layer released first), on every store,
 * and of the Redis idle watch's look, which names its idle consumers' tasks.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber, Layer, Logger, Redacted, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as PgJobStore from "../src/PgJobStore.ts"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as RedisJobStore from "../src/RedisJobStore.ts"
import * as Task from "../src/Task.ts"
import type { Store } from "../src/internal/store/model.ts"
import * as Postgres from "../src/internal/store/postgres.ts"
import * as RedisStore from "../src/internal/store/redis.ts"
import * as Sqlite from "../src/internal/store/sqlite.ts"
import * as ConsumerImpl from "../src/internal/durable/consumer.ts"
import { createClient } from "redis"
import { Echo } from "./durable/conformance.ts"
import { Work } from "./fixtures/durable-tasks.ts"
import { closeWithin, sqliteLockHolder, warnings } from "./helpers.ts"
import * as Pg from "./durable/postgres.ts"
import * as Rd from "./durable/redis.ts"
import * as pgServer from "./durable/pgserver.ts"
import { storeLayers } from "./durable/stores.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wp-closing-"))
let files = 0

const stores = storeLayers(() => path.join(dir, `s${files++}.db`))

/** What an effect on a closed store ended with: a typed failure's tag, "interrupted", "defect", or "success". */
const outcome = (exit: Exit.Exit<unknown, unknown>): string => {
  if (Exit.isSuccess(exit)) return "success"
  const error = Cause.findErrorOption(exit.cause)
  if (error._tag === "Some") return (error.value as { _tag?: string })._tag ?? "untagged"
  return Cause.hasInterruptsOnly(exit.cause) ? "interrupted" : "defect"
}

describe.each(stores)("a closed %s store", (_name, makeLayer) => {
  it.live("an awaiter waiting when the store closes, and one that starts after, fail with StoreError (no hang, no interruption, no defect); so do enqueue and status", () =>
    Effect.gen(function*() {
      const storeScope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(makeLayer(), storeScope)
      const job = yield* Effect.provideContext(JobQueue.enqueue(Echo, { n: 1 }), context)
      const waiting = yield* Effect.forkChild(Effect.provideContext(JobQueue.await(Echo, job.id), context))
      yield* Effect.sleep(50)
      yield* Scope.close(storeScope, Exit.void)
      const during = yield* Fiber.await(waiting).pipe(Effect.timeout("10 seconds"))
      assert.strictEqual(outcome(during), "StoreError", `awaiter during the close: ${Cause.pretty(Exit.isFailure(during) ? during.cause : Cause.empty)}`)
      const after = yield* Effect.exit(Effect.provideContext(JobQueue.await(Echo, job.id), context)).pipe(Effect.timeout("10 seconds"))
      assert.strictEqual(outcome(after), "StoreError", "awaiter after the close")
      const enqueued = yield* Effect.exit(Effect.provideContext(JobQueue.enqueue(Echo, { n: 2 }), context)).pipe(Effect.timeout("10 seconds"))
      assert.strictEqual(outcome(enqueued), "StoreError", "enqueue after the close")
    }), { timeout: 60_000 })
})

describe.skipIf(!Rd.enabled)("the Redis idle watch's look, which names its idle consumers' tasks", () => {
  it.live("a ready job whose marker a killed holder took still reaches its idle consumer, on a store whose idle consumers handle different tasks and one of which stopped mid-wait", () =>
    Effect.gen(function*() {
      const prefix = Rd.freshPrefix()
      const layer = RedisJobStore.layer({ url: Rd.url!, prefix })
      // the holder: blocked on the queue's marker before the store, so it pops the next marker and
      // never hands it back (a process killed with -9 after its pop)
      const holder = createClient({ url: Rd.url!, name: `holder:${prefix}`, RESP: 2 })
      holder.on("error", () => {})
      yield* Effect.promise(() => holder.connect())
      yield* Effect.addFinalizer(() => Effect.sync(() => holder.destroy()))
      const popped = holder.bzPopMin(`{${prefix}:q}:marker`, 60)
      yield* Effect.promise(() => Rd.blocked(prefix, 1, `holder:${prefix}`))
      const store = yield* Layer.build(layer)
      const here = <A, E>(effect: Effect.Effect<A, E, JobStore.JobStore | Scope.Scope>) => Effect.provideContext(effect, store)
      const common = { queues: ["q"], concurrency: 1, poll: "1 hour" } as const
      // two idle consumers of Echo and one of Work, all on this store and queue; one of Echo stops mid-wait
      yield* here(JobQueue.consume({ ...common, handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n * 2))] }))
      yield* here(JobQueue.consume({ ...common, handlers: [Task.handle(Work, ({ n }) => Effect.succeed(n))] }))
      const leaving = yield* Scope.make()
      yield* here(JobQueue.consume({ ...common, handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n * 2))] })).pipe(Scope.provide(leaving))
      yield* Effect.promise(() => Rd.blocked(prefix))
      yield* Effect.sleep(100)
      yield* Scope.close(leaving, Exit.void)
      // another process enqueues: the holder (blocked first) takes the marker
      const job = yield* Effect.provide(JobQueue.enqueue(Echo, { n: 5 }, { queue: "q" }), layer)
      const marker = yield* Effect.promise(() => popped).pipe(Effect.timeout("10 seconds"))
      assert.isNotNull(marker, "the holder took the marker")
      // the store's next look (<= 5 s) sees a ready Echo job no marker tells of
      assert.strictEqual(yield* here(JobQueue.await(Echo, job.id)).pipe(Effect.timeout("20 seconds")), 10)
      // the Work consumer beside it still gets its jobs
      const work = yield* Effect.provide(JobQueue.enqueue(Work, { n: 3 }, { queue: "q" }), layer)
      assert.strictEqual(yield* here(JobQueue.await(Work, work.id)).pipe(Effect.timeout("20 seconds")), 3)
    }).pipe(Effect.scoped), { timeout: 90_000 })
})

/** Lets every fiber run, then moves the TestClock `millis` on in steps. */
const tick = (millis: number, step = 500) =>
  Effect.gen(function*() {
    for (let i = 0; i < 50; i++) yield* Effect.yieldNow
    for (let t = 0; t < millis; t += step) {
      yield* TestClock.adjust(Math.min(step, millis - t))
      for (let i = 0; i < 50; i++) yield* Effect.yieldNow
    }
  })

describe.each([
  ["memory", () => JobStore.memory()],
  ["SQLite", () => JobStore.sqlite({ filename: path.join(dir, `d${files++}.db`) })]
] as const)("a draining consumer whose %s store closes under it", (_name, makeLayer) => {
  it.effect("its graceful shutdown does not wait for a job that never ends: the job is interrupted within a lease (its result could not be stored)", () =>
    Effect.gen(function*() {
      const storeScope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(makeLayer(), storeScope)
      const started = yield* Deferred.make<void>()
      const { logged, collector } = warnings()
      const consumerScope = yield* Scope.make()
      const consumer = yield* JobQueue.consume({
        concurrency: 1,
        lease: "30 seconds",
        poll: "1 second",
        shutdownTimeout: "1 hour",
        handlers: [Task.handle(Echo, () => Effect.andThen(Deferred.succeed(started, undefined), Effect.never))]
      }).pipe(Scope.provide(consumerScope), Effect.provideContext(context), Effect.provide(Logger.layer([collector])))
      yield* Effect.provideContext(JobQueue.enqueue(Echo, { n: 1 }), context)
      yield* tick(1000)
      yield* Deferred.await(started)
      // a graceful shutdown drains (the job runs on), then the store's layer goes
      const shutdown = yield* Effect.forkChild(consumer.shutdown)
      yield* tick(1000)
      yield* Scope.close(storeScope, Exit.void)
      // with its store open, a lease later its heartbeat's failures would have ended the job as lost
      yield* tick(60_000)
      assert.isDefined(shutdown.pollUnsafe(), "the shutdown still waits for a job whose store is gone")
      assert.strictEqual(logged.length, 1, JSON.stringify(logged))
      assert.match(logged[0]!, /store closed before the consumer.*interrupting 1 running job/)
      yield* Scope.close(consumerScope, Exit.void)
    }))
})

/**
 * A consumer of 2 in `scope` (shutdownTimeout 200 ms, polling once an hour) running two jobs: job 0
 * ends when the returned Deferred is done, job 1 never does.
 */
const twoRunning = (store: Store, scope: Scope.Scope) =>
  Effect.gen(function*() {
    const here = Effect.provideService(JobStore.JobStore, store)
    const release = yield* Deferred.make<void>()
    let started = 0
    yield* JobQueue.consume({
      handlers: [Task.handle(Echo, ({ n }) => Effect.andThen(Effect.sync(() => started++), n === 0 ? Effect.as(Deferred.await(release), n) : Effect.never))],
      concurrency: 2,
      poll: "1 hour",
      shutdownTimeout: 200
    }).pipe(here, Scope.provide(scope))
    yield* here(JobQueue.enqueue(Echo, { n: 0 }))
    yield* here(JobQueue.enqueue(Echo, { n: 1 }))
    while (started < 2) yield* Effect.sleep(20)
    return release
  })

describe("a stopping consumer whose settles never end (a frozen server, a connection that never comes)", () => {
  it.effect("its close ends STOP_SETTLE_GRACE after its drain, with one warning, its job left to the reaper", () =>
    Effect.gen(function*() {
      const { logged, collector } = warnings()
      const settles: Array<string> = []
      const frozen = Layer.effect(
        JobStore.JobStore,
        Effect.map(JobStore.JobStore, (inner): Store => ({
          ...inner,
          settle: (_token, settlement) => Effect.andThen(Effect.sync(() => settles.push(settlement._tag)), Effect.never)
        }))
      ).pipe(Layer.provide(JobStore.memory()))
      const context = yield* Layer.build(frozen)
      const consumerScope = yield* Scope.make()
      yield* JobQueue.consume({ concurrency: 1, poll: "1 second", handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))] }).pipe(
        Scope.provide(consumerScope),
        Effect.provideContext(context),
        Effect.provide(Logger.layer([collector]))
      )
      yield* Effect.provideContext(JobQueue.enqueue(Echo, { n: 1 }), context)
      yield* tick(1000)
      assert.deepStrictEqual(settles, ["Final"])
      const closing = yield* Effect.forkChild(Scope.close(consumerScope, Exit.void))
      yield* tick(ConsumerImpl.STOP_SETTLE_GRACE - 10, 10)
      assert.isUndefined(closing.pollUnsafe(), "the close waits for its settles for a while")
      yield* tick(20, 10)
      assert.isDefined(closing.pollUnsafe(), "the close still waits for a settle that never ends")
      assert.strictEqual(logged.length, 1, JSON.stringify(logged))
      assert.match(logged[0]!, /settles did not end within 2000 ms .* 1 job is left to the reaper/)
    }))
})

describe.skipIf(!Pg.enabled)("a closed Postgres store on the caller's client (layerClient), which outlives it", () => {
  it.live("its operations fail with StoreError, and a consumer outliving it stops with one warning, as on every other store", () =>
    Effect.gen(function*() {
      const client = yield* Layer.build(PgClient.layer({ url: Redacted.make(Pg.url!) }))
      const storeScope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        PgJobStore.layerClient({ schema: Pg.freshSchema() }).pipe(Layer.provide(Layer.succeedContext(client))),
        storeScope
      )
      const { logged, collector } = warnings()
      const consumer = yield* JobQueue.consume({ concurrency: 1, poll: "100 millis", handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))] }).pipe(
        Effect.provideContext(context),
        Effect.provide(Logger.layer([collector]))
      )
      yield* Scope.close(storeScope, Exit.void)
      const enqueued = yield* Effect.exit(Effect.provideContext(JobQueue.enqueue(Echo, { n: 1 }), context))
      assert.strictEqual(outcome(enqueued), "StoreError", "enqueue on the closed store")
      yield* consumer.awaitTermination.pipe(Effect.timeout("10 seconds"))
      assert.strictEqual(logged.length, 1, JSON.stringify(logged))
      assert.match(logged[0]!, /store closed before the consumer/)
    }).pipe(Effect.scoped), { timeout: 60_000 })
})

describe.each(stores.filter(([name]) => name === "Postgres" || name === "Redis"))("a draining consumer whose %s store closes under it (live)", (_name, makeLayer) => {
  it.live("its graceful shutdown ends at once, interrupting a job that never ends, with one warning", () =>
    Effect.gen(function*() {
      const storeScope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(makeLayer(), storeScope)
      const started = yield* Deferred.make<void>()
      const { logged, collector } = warnings()
      const consumer = yield* JobQueue.consume({
        concurrency: 1,
        lease: "3 seconds",
        poll: "100 millis",
        shutdownTimeout: "1 hour",
        handlers: [Task.handle(Echo, () => Effect.andThen(Deferred.succeed(started, undefined), Effect.never))]
      }).pipe(Effect.provideContext(context), Effect.provide(Logger.layer([collector])))
      yield* Effect.provideContext(JobQueue.enqueue(Echo, { n: 1 }), context)
      yield* Deferred.await(started).pipe(Effect.timeout("20 seconds"))
      const shutdown = yield* Effect.forkChild(consumer.shutdown)
      yield* Scope.close(storeScope, Exit.void)
      // a lease is 3 s: the heartbeat hears of the close at once (the close wakes it), or fails at its next beat
      yield* Fiber.join(shutdown).pipe(Effect.timeout("15 seconds"))
      assert.strictEqual(logged.length, 1, JSON.stringify(logged))
      assert.match(logged[0]!, /store closed before the consumer.*interrupting 1 running job/)
    }).pipe(Effect.scoped), { timeout: 60_000 })
})

/**
 * A consumer in its store's own scope: the store made in that scope (as `RedisStore.open` or
 * `Postgres.make` are, not through a layer, whose store gets a scope of its own), one close for
 * both. The scope is marked closed when its close starts, and the consumer's finalizer (added after
 * the store's) runs first: a settle it makes then must still be written, and the close must end.
 */
interface Reopenable {
  /** The store, made in the caller's scope. */
  readonly make: Effect.Effect<Store, unknown, Scope.Scope>
  /** The same store again, through its layer (to look at it after the close). */
  readonly layer: () => Layer.Layer<JobStore.JobStore, any>
}
const reopenable: Array<[string, () => Reopenable]> = [
  ["SQLite", () => {
    const filename = path.join(dir, `o${files++}.db`)
    return { make: Effect.flatMap(Sqlite.options({ filename }), Sqlite.make), layer: () => JobStore.sqlite({ filename }) }
  }]
]
if (Pg.enabled) {
  reopenable.push(["Postgres", () => {
    const schema = Pg.freshSchema()
    return {
      make: Effect.flatMap(Postgres.options({ url: Pg.url!, schema, maxConnections: 4 }), (cfg) => Postgres.make({ ...cfg, clock: "effect" })),
      layer: () => Pg.testLayer(schema)
    }
  }])
}
if (Rd.enabled) {
  reopenable.push(["Redis", () => {
    const prefix = Rd.freshPrefix()
    return {
      make: Effect.flatMap(RedisStore.options({ url: Rd.url!, prefix }), (cfg) => RedisStore.open({ ...cfg, clock: "effect" })),
      layer: () => Rd.testLayer(prefix)
    }
  }])
}

describe.each(reopenable)("a consumer in its %s store's own scope", (_name, makeStore) => {
  it.live("a job that ends during the scope's close (the consumer's drain) is settled, and the close ends (it waited for a settle writer forked into the closing scope, forever)", () =>
    Effect.gen(function*() {
      const { layer, make } = makeStore()
      const scope = yield* Scope.make()
      const store = yield* Scope.provide(make, scope)
      const started = yield* Deferred.make<void>()
      const finish = yield* Deferred.make<void>()
      const here = Effect.provideService(JobStore.JobStore, store)
      yield* JobQueue.consume({
        concurrency: 1,
        poll: "100 millis",
        handlers: [Task.handle(Echo, ({ n }) => Effect.andThen(Deferred.succeed(started, undefined), Effect.as(Deferred.await(finish), n)))]
      }).pipe(Scope.provide(scope), here)
      // runs first in the close (added last): the job ends while the consumer drains, its store's scope closing
      yield* Scope.addFinalizer(scope, Deferred.succeed(finish, undefined))
      const job = yield* here(JobQueue.enqueue(Echo, { n: 7 }))
      yield* Deferred.await(started).pipe(Effect.timeout("20 seconds"))
      yield* closeWithin(scope, "10 seconds")
      const state = yield* Effect.provide(JobQueue.status(job.id), layer())
      assert.strictEqual(state.state, "succeeded")
    }), { timeout: 60_000 })
})

describe.skipIf(!Pg.enabled || pgServer.binaries() === undefined)("a scope holding a Postgres consumer and its store, its server frozen (SIGSTOP) at the close", () => {
  it.live("a claim and a settle in flight that never get a reply, a job that never ends: the close ends within shutdownTimeout + 6 s (the stated bound), not for ever", () =>
    Effect.gen(function*() {
      const server = yield* Pg.ownServer()
      const scope = yield* Scope.make()
      const cfg = yield* Postgres.options({ url: server.url, schema: Pg.freshSchema(), maxConnections: 2 })
      const store = yield* Postgres.make({ ...cfg, clock: "effect" }).pipe(Scope.provide(scope))
      const here = Effect.provideService(JobStore.JobStore, store)
      const release = yield* twoRunning(store, scope)
      // thawed before the server is destroyed
      yield* Pg.freeze(server)
      // job 0 ends: its settle, and the claim for its slot, get no reply
      yield* Deferred.succeed(release, undefined)
      yield* Effect.sleep(300)
      // 2 s for the claim, the drain's 200 ms, 2 s for the settles, 1 s for the client: the stated
      // bound is shutdownTimeout + 6 s (6.2 s); a busy machine is given 1.3 s more
      assert.isBelow(yield* closeWithin(scope, "30 seconds"), 7500)
    }).pipe(Effect.scoped), { timeout: 90_000 })
})

describe.skipIf(!Pg.enabled)("a consumer in its Postgres store's own scope, a settle in flight when the scope's close starts (server up)", () => {
  it.live("the settle is written (the job succeeded), not interrupted with the store's writer and dropped, its job left to the reaper to run again", () =>
    Effect.gen(function*() {
      const schema = Pg.freshSchema()
      const locker = yield* Pg.lockSession
      const scope = yield* Scope.make()
      const cfg = yield* Postgres.options({ url: Pg.url!, schema, maxConnections: 4 })
      const store = yield* Postgres.make({ ...cfg, clock: "effect" }).pipe(Scope.provide(scope))
      const here = Effect.provideService(JobStore.JobStore, store)
      const started = yield* Deferred.make<void>()
      const finish = yield* Deferred.make<void>()
      let runs = 0
      const consumer = yield* JobQueue.consume({
        concurrency: 1,
        poll: "1 hour",
        handlers: [Task.handle(Echo, ({ n }) =>
          Effect.andThen(Effect.sync(() => runs++), Effect.andThen(Deferred.succeed(started, undefined), Effect.as(Deferred.await(finish), n))))]
      }).pipe(Scope.provide(scope), here)
      const job = yield* here(JobQueue.enqueue(Echo, { n: 7 }))
      yield* Deferred.await(started).pipe(Effect.timeout("20 seconds"))
      // paused: no claim for the freed slot carries the settle, the store's settle writer writes it
      yield* consumer.pause
      yield* locker.hold(`"${schema}"`, job.id)
      yield* Deferred.succeed(finish, undefined)
      // the settle's statement waits for the row
      yield* Pg.blockedBy(locker.pid)
      // runs first in the close (added last)
      const closeBegun = yield* Deferred.make<void>()
      yield* Scope.addFinalizer(scope, Deferred.succeed(closeBegun, undefined))
      // looks on a session opened beforehand: a connection per look (~100 ms each on a busy
      // machine) took the loop past the consumer's 2 s wait, the settle dropped with no bug
      const watcher = yield* Pg.lockSession
      const waiting = Effect.map(
        watcher.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", [locker.pid]),
        (result) => result.rows[0].n as number
      )
      const closing = yield* Effect.forkDetach(closeWithin(scope, "20 seconds"))
      yield* Deferred.await(closeBegun)
      // the row is given back once the statement no longer waits for it (cancelled: the bug) or
      // 500 ms (wall time, however slow the looks) into the close, well within the consumer's 2 s
      // wait for its settles
      const begun = Date.now()
      while (Date.now() - begun < 500 && (yield* waiting) > 0) yield* Effect.sleep(20)
      yield* locker.release
      yield* Fiber.join(closing)
      const state = yield* Effect.provide(JobQueue.status(job.id), Pg.testLayer(schema))
      assert.strictEqual(state.state, "succeeded")
      assert.strictEqual(runs, 1)
    }).pipe(Effect.scoped), { timeout: 60_000 })
})

describe.skipIf(!Pg.enabled || pgServer.binaries() === undefined)("a scope holding a Postgres consumer (a 3 s lease) and its store, its server frozen (SIGSTOP) with a heartbeat and a reap in flight", () => {
  it.live("the close ends within shutdownTimeout + 6 s (the stated bound), not after the driver's 5 s drain of the interrupted beat or reap", () =>
    Effect.gen(function*() {
      const server = yield* Pg.ownServer()
      const scope = yield* Scope.make()
      const cfg = yield* Postgres.options({ url: server.url, schema: Pg.freshSchema(), maxConnections: 4 })
      const store = yield* Postgres.make({ ...cfg, clock: "effect" }).pipe(Scope.provide(scope))
      const here = Effect.provideService(JobStore.JobStore, store)
      let started = 0
      yield* JobQueue.consume({
        handlers: [Task.handle(Echo, () => Effect.andThen(Effect.sync(() => started++), Effect.never))],
        concurrency: 1,
        lease: "3 seconds",
        poll: "1 hour",
        shutdownTimeout: 200
      }).pipe(here, Scope.provide(scope))
      yield* here(JobQueue.enqueue(Echo, { n: 1 }))
      while (started < 1) yield* Effect.sleep(20)
      yield* Pg.freeze(server)
      // a beat every second, a reap every 1.5 s: both in flight by now, neither answered
      yield* Effect.sleep(1600)
      assert.isBelow(yield* closeWithin(scope, "30 seconds"), 7500)
    }).pipe(Effect.scoped), { timeout: 90_000 })
})

describe.skipIf(!Pg.enabled || pgServer.binaries() === undefined)("a Postgres consumer (a 2 s lease) whose server is frozen (SIGSTOP)", () => {
  it.live("its reap, never answered, is given up and logged as a failed reap, and the next reap runs (and fails) too: the reaper is not silent for ever", () => {
    const { logged, collector } = warnings()
    return Effect.gen(function*() {
      const server = yield* Pg.ownServer()
      const cfg = yield* Postgres.options({ url: server.url, schema: Pg.freshSchema(), maxConnections: 4 })
      const store = yield* Postgres.make({ ...cfg, clock: "effect" })
      yield* JobQueue.consume({ handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))], concurrency: 1, lease: "2 seconds", poll: "1 hour", shutdownTimeout: 200 })
        .pipe(Effect.provideService(JobStore.JobStore, store))
      yield* Pg.freeze(server)
      const reaps = () => logged.filter((line) => line.startsWith("effect-workpool: taking back expired durable jobs failed"))
      // each reap is given up a lease after it was sent (the driver's drain of the interrupted
      // statement, up to 5 s, on top), the next one a half lease later
      yield* Effect.gen(function*() {
        while (reaps().length < 2) yield* Effect.sleep(50)
      }).pipe(Effect.timeout("30 seconds"))
      assert.deepStrictEqual(reaps().map((line) => line.match(/\((\d+) times? in a row/)![1]), ["1", "2"])
    }).pipe(Effect.scoped, Effect.provide(Logger.layer([collector])))
  }, { timeout: 90_000 })
})

describe("a scope holding a SQLite consumer and its store, the file's write lock held by another process at the close", () => {
  // it took 30.7 s when SQLite's own busy wait (synchronous) waited the 5 s: every statement against
  // the held lock blocked the whole thread (the ended job's settle and its retries 200 ms apart, the
  // interrupted job's release, beats, the reaper, a claim), and no timer (the stop's 2 s graces) fired
  it.live("the close ends within shutdownTimeout + 6 s (as with a frozen server), a job ending and one interrupted in it", () =>
    Effect.gen(function*() {
      const filename = path.join(dir, `locked${files++}.db`)
      const scope = yield* Scope.make()
      const store = yield* Effect.flatMap(Sqlite.options({ filename }), Sqlite.make).pipe(Scope.provide(scope))
      const release = yield* twoRunning(store, scope)
      yield* sqliteLockHolder(filename)
      yield* Deferred.succeed(release, undefined)
      yield* Effect.sleep(300)
      assert.isBelow(yield* closeWithin(scope, "90 seconds"), 7500)
    }).pipe(Effect.scoped), { timeout: 120_000 })
})

describe.each(stores)("a consumer outliving its %s store under TestClock (the store's layer released first, as Effect.provide inside it.effect does)", (_name, makeLayer) => {
  it.effect("a job that ended just before the store closed: the consumer's close ends without the clock moving (the settle the store's close failed, its flag not yet set, was retried on the clock, and the close hung)", () =>
    Effect.gen(function*() {
      const consumerScope = yield* Scope.make()
      const started = yield* Deferred.make<void>()
      yield* Effect.gen(function*() {
        yield* JobQueue.consume({
          concurrency: 2,
          lease: 30_000,
          poll: "1 second",
          handlers: [Task.handle(Echo, ({ n }) => Effect.as(Deferred.succeed(started, undefined), n))]
        })
        yield* JobQueue.enqueue(Echo, { n: 1 })
        yield* Deferred.await(started)
      }).pipe(Effect.provide(makeLayer()), Effect.provideService(Scope.Scope, consumerScope))
      const closing = yield* Effect.forkDetach(Scope.close(consumerScope, Exit.void))
      // real time: the TestClock does not move here
      const hung = Effect.as(Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5000))), "hung")
      assert.strictEqual(yield* Effect.raceFirst(Effect.as(Fiber.await(closing), "closed"), hung), "closed")
    }).pipe(Effect.provide(Logger.layer([]))), 30_000)
})
