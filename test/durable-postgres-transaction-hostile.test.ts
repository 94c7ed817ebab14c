/**
 * Hostile tests of the promise docs/durable.md makes for the Postgres store on the application's
 * own client (`PgJobStore.layerClient`): a job enqueued inside the application's `withTransaction`
 * is written with the application's rows, committed with them or gone with them. In a database of
 * the file's own (CREATE DATABASE on the test server), with an application table `app.orders`.
 * Consumers poll once an hour: only a wake-up (a NOTIFY, or this process's own signal) can start a
 * job within a test's time.
 */
import { assert, describe, it } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Cause, Context, Deferred, Effect, Exit, Fiber, Layer, Logger, Option, Redacted, Schema, Scope, Stream } from "effect"
import { SqlClient } from "effect/sql"
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { afterAll, beforeAll } from "vitest"
import { followConsumer, untilRead, waitUntil } from "./durable/children.ts"
import * as Dashboard from "../src/Dashboard.ts"
import * as DurableError from "../src/DurableError.ts"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as Postgres from "../src/internal/store/postgres.ts"
import * as PgJobStore from "../src/PgJobStore.ts"
import * as Task from "../src/Task.ts"
import * as WorkPool from "../src/WorkPool.ts"
import * as Pg from "./durable/postgres.ts"
import { Work } from "./fixtures/durable-tasks.ts"
import { waitFor, warnings } from "./helpers.ts"

const HOUR = "1 hour"
const TOKEN = "transaction-dashboard-token"
const database = `wp_txn_${process.pid}_${Date.now().toString(36)}`
const serverUrl = (db: string) => {
  const u = new URL(Pg.url ?? "postgres://localhost/x")
  u.pathname = `/${db}`
  return u.toString()
}
const superUrl = (db: string) => {
  const u = new URL(serverUrl(db))
  u.username = "postgres"
  u.password = ""
  return u.toString()
}
const dbUrl = serverUrl(database)
const spawned: Array<ChildProcess> = []

/** The application's client on the file's database. */
const appDb = (maxConnections = 4) => PgClient.layer({ url: Redacted.make(dbUrl), maxConnections })
/** The store on the application's client, with the client itself (the application's queries). */
const appStack = (schema: string, maxConnections = 4) => {
  const db = appDb(maxConnections)
  return Layer.merge(PgJobStore.layerClient({ schema }).pipe(Layer.provide(db)), db)
}
/** Another process's store on the same tables (its own client, its own listener). */
const otherStore = (schema: string) => PgJobStore.layer({ url: dbUrl, schema, maxConnections: 2 })

const orders = (id: string) =>
  Effect.flatMap(PgClient.PgClient, (sql) =>
    Effect.map(sql<{ n: number }>`SELECT count(*)::int AS n FROM app.orders WHERE id = ${id}`, (rows) => rows[0]!.n)).pipe(Effect.orDie)
const insertOrder = (id: string) =>
  Effect.flatMap(PgClient.PgClient, (sql) => sql`INSERT INTO app.orders (id) VALUES (${id})`).pipe(Effect.orDie)

const withTransaction = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(PgClient.PgClient, (sql) => sql.withTransaction(effect))

/**
 * A transaction of the application's, forked, that enqueued job `n` with `dedupKey` in queue "q" and
 * holds the key uncommitted until the effect it gives is run: that one ends the transaction (a commit,
 * or with `rollBack` a rollback) and waits for its end.
 */
const holdingDedupKey = (n: number, dedupKey: string, rollBack = false) =>
  Effect.gen(function*() {
    const holder = yield* Deferred.make<void>()
    const release = yield* Deferred.make<void>()
    const held = yield* withTransaction(Effect.gen(function*() {
      yield* JobQueue.enqueue(Work, { n }, { queue: "q", dedupKey })
      yield* Deferred.succeed(holder, undefined)
      yield* Deferred.await(release)
      if (rollBack) return yield* Effect.fail("rolled back" as const)
    })).pipe(Effect.catch((error) => error === "rolled back" ? Effect.void : Effect.fail(error)), Effect.forkScoped)
    yield* Deferred.await(holder)
    return Effect.andThen(Deferred.succeed(release, undefined), Fiber.join(held))
  })

/** Every job of the schema's queues, by a raw look at its table (nothing the store could hide). */
const jobRows = (schema: string) =>
  Effect.flatMap(PgClient.PgClient, (sql) =>
    sql<{ id: string; queue: string; state: string; dedup_key: string | null }>`SELECT id, queue, state, dedup_key FROM ${sql(schema)}.wp_job ORDER BY seq`
  ).pipe(Effect.orDie)

/** Waits until the store's listener hears `queues` (its idle consumers' wake-ups from other processes). */
const heard = (queues: ReadonlyArray<string>) => Effect.flatMap(JobStore.JobStore, (store) => Postgres.listening(store, queues))

/** `f` on a schema of its own, with the store on the application's client (`maxConnections` of its pool). */
const inStore = <A, E, R>(f: (schema: string) => Effect.Effect<A, E, R>, maxConnections = 4) =>
  Effect.suspend(() => {
    const schema = Pg.freshSchema()
    return f(schema).pipe(Effect.scoped, Effect.provide(appStack(schema, maxConnections)))
  })

if (!Pg.enabled) describe.skip("the Postgres store in the application's transaction (WORKPOOL_PG_URL is not set)", () => {})
else {
  beforeAll(() =>
    Pg.adminOn(superUrl("postgres"), (sql) => sql.unsafe(`CREATE DATABASE ${database} OWNER workpool`)).then(() =>
      Pg.adminOn(dbUrl, (sql) => Effect.andThen(sql.unsafe(`CREATE SCHEMA app`), sql.unsafe(`CREATE TABLE app.orders (id text PRIMARY KEY)`)))
    ), 60_000)
  afterAll(() => {
    for (const child of spawned) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
  })
  afterAll(() => Pg.adminOn(superUrl("postgres"), (sql) => sql.unsafe(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`)), 60_000)

  describe("the Postgres store in the application's transaction (layerClient)", () => {
    it.live("rolled back: every write of the store in it is gone with the application's row (enqueue, enqueueAll, dedup key, delay, cancel, redrive, pause)", () =>
      inStore((schema) => Effect.gen(function*() {
        // a queued job to cancel and a dead one to redrive, committed before
        const queued = yield* JobQueue.enqueue(Work, { n: 1 }, { queue: "other" })
        const dead = yield* JobQueue.enqueue(Work, { n: 2 }, { queue: "dead", maxAttempts: 1 })
        yield* Effect.scoped(Effect.gen(function*() {
          yield* JobQueue.consume({
            queues: ["dead"],
            handlers: [Task.handle(Work, () => Effect.die("poison"))],
            concurrency: 1,
            poll: HOUR
          })
          const store = yield* JobStore.JobStore
          yield* waitFor(
            Effect.map(JobQueue.status(dead.id), (info) => info.state === "dead").pipe(Effect.orDie, Effect.provideService(JobStore.JobStore, store)),
            "the job went dead"
          )
        }))
        const before = yield* jobRows(schema)

        const exit = yield* Effect.exit(withTransaction(Effect.gen(function*() {
          yield* insertOrder("rolled-back")
          yield* JobQueue.enqueue(Work, { n: 10 }, { queue: "q", dedupKey: "order:rolled-back" })
          yield* JobQueue.enqueue(Work, { n: 11 }, { queue: "q", delay: "1 minute" })
          yield* JobQueue.enqueueAll(Work, [{ payload: { n: 12 } }, { payload: { n: 13 }, options: { dedupKey: "batch" } }], { queue: "q" })
          assert.strictEqual(yield* JobQueue.cancel(queued.id), "cancelled")
          assert.isTrue(yield* JobQueue.redrive(dead.id))
          yield* JobQueue.pause("q")
          // seen inside the transaction
          assert.strictEqual((yield* jobRows(schema)).length, before.length + 4)
          return yield* Effect.fail("the application's own failure" as const)
        })))
        assert.isTrue(Exit.isFailure(exit))
        assert.strictEqual(yield* orders("rolled-back"), 0)
        assert.deepStrictEqual(yield* jobRows(schema), before, "no trace of the store's writes")
        assert.strictEqual((yield* JobQueue.status(queued.id)).state, "queued")
        assert.strictEqual((yield* JobQueue.status(dead.id)).state, "dead")
        assert.isFalse((yield* JobQueue.stats("q")).paused)
        // the dedup keys are free again
        const again = yield* JobQueue.enqueue(Work, { n: 10 }, { queue: "q", dedupKey: "order:rolled-back" })
        assert.isTrue(again.created)
        const batch = yield* JobQueue.enqueueAll(Work, [{ payload: { n: 13 }, options: { dedupKey: "batch" } }], { queue: "q" })
        assert.isTrue(batch[0]!.created)
      })), 60_000)

    it.live("dedupReplace in the application's transaction: rolled back, the holder keeps its payload; while open, another process's claim skips the holder; committed, it runs with the new payload", () =>
      inStore((schema) => Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const payloadOf = (id: string) => Effect.map(store.get(id), (row) => JSON.parse(row!.payload).n as number)
        const replace = (n: number) => JobQueue.enqueue(Work, { n }, { queue: "q", dedupKey: "r", dedupReplace: "payload" })
        const holder = yield* JobQueue.enqueue(Work, { n: 1 }, { queue: "q", dedupKey: "r" })
        yield* withTransaction(Effect.andThen(replace(2), Effect.fail("rolled back" as const))).pipe(
          Effect.catch((error) => error === "rolled back" ? Effect.void : Effect.fail(error))
        )
        assert.strictEqual(yield* payloadOf(holder.id), 1)
        const replaced = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        const open = yield* withTransaction(Effect.gen(function*() {
          assert.strictEqual((yield* replace(3)).id, holder.id)
          yield* Deferred.succeed(replaced, undefined)
          yield* Deferred.await(release)
        })).pipe(Effect.forkScoped)
        yield* Deferred.await(replaced)
        const other = Context.get(yield* Layer.build(otherStore(schema)), JobStore.JobStore)
        const claim = other.claim({ queues: ["q"], tasks: ["Work"], limit: 1, lease: 60_000 })
        assert.strictEqual((yield* claim).claims.length, 0, "the holder's row is the open transaction's")
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(open)
        const [taken] = (yield* claim).claims
        assert.deepStrictEqual([taken?.job.id, JSON.parse(taken!.job.payload).n], [holder.id, 3])
      })), { timeout: 60_000 })

    it.live("committed: another process's consumer sees the job only after the commit, is woken by it (poll of an hour) and runs it once; so does a consumer of the same store", () =>
      inStore((schema) => Effect.gen(function*() {
        const runs: Array<string> = []
        const handlers = (who: string) => [Task.handle(Work, ({ n }) => Effect.sync(() => runs.push(`${who}:${n}`)).pipe(Effect.as(n)))]
        // another process: its own store instance, client and listener
        const other = yield* Layer.build(otherStore(schema))
        yield* Effect.provide(JobQueue.consume({ queues: ["remote"], handlers: handlers("other"), concurrency: 2, poll: HOUR }), other)
        yield* JobQueue.consume({ queues: ["local"], handlers: handlers("local"), concurrency: 2, poll: HOUR })
        yield* Effect.provide(heard(["remote"]), other)
        yield* heard(["local"])
        const inside = yield* Deferred.make<{ remote: string; local: string }>()
        const commit = yield* Deferred.make<void>()
        const tx = yield* withTransaction(Effect.gen(function*() {
          yield* insertOrder("committed")
          const remote = yield* JobQueue.enqueue(Work, { n: 1 }, { queue: "remote" })
          const local = yield* JobQueue.enqueue(Work, { n: 2 }, { queue: "local" })
          yield* Deferred.succeed(inside, { remote: remote.id, local: local.id })
          yield* Deferred.await(commit)
        })).pipe(Effect.forkScoped)
        const ids = yield* Deferred.await(inside)
        // not visible to the other process until the commit (its look is a statement of its own)
        const seen = yield* Effect.provide(Effect.exit(JobQueue.status(ids.remote)), other)
        assert.isTrue(Exit.isFailure(seen) && Cause.pretty(seen.cause).includes("JobNotFound"), String(seen))
        // the local consumer was told at once (its signal is this process's): it looked and found nothing
        yield* Effect.sleep(300)
        assert.deepStrictEqual(runs, [])
        yield* Deferred.succeed(commit, undefined)
        yield* Fiber.join(tx)
        yield* waitFor(Effect.sync(() => runs.length === 2), "both jobs ran after the commit", { within: 20_000 })
        assert.sameMembers(runs, ["other:1", "local:2"])
        assert.strictEqual(yield* orders("committed"), 1)
        yield* Effect.sleep(300)
        assert.strictEqual(runs.length, 2, "each ran once")
        assert.deepStrictEqual((yield* jobRows(schema)).map((row) => row.state), ["succeeded", "succeeded"])
      })), 60_000)

    it.live("interrupted (a timeout of the application's, in the transaction or while its enqueue waits for a dedup key's lock): neither the row nor the job", () =>
      inStore((schema) => Effect.gen(function*() {
        const sql = yield* PgClient.PgClient
        // after the enqueue, in the application's own work
        const late = yield* withTransaction(Effect.gen(function*() {
          yield* insertOrder("timed-out")
          yield* JobQueue.enqueue(Work, { n: 1 }, { queue: "q", dedupKey: "t" })
          yield* Effect.never
        })).pipe(Effect.timeoutOption("200 millis"))
        assert.isTrue(late._tag === "None")
        // during the enqueue: another session holds the dedup key uncommitted, so the insert waits
        const rollBack = yield* holdingDedupKey(2, "held", true)
        const waiting = yield* withTransaction(Effect.gen(function*() {
          yield* insertOrder("waited")
          yield* JobQueue.enqueue(Work, { n: 3 }, { queue: "q", dedupKey: "held" })
        })).pipe(Effect.forkScoped)
        // until the insert waits for the holder's lock
        yield* waitFor(
          Effect.map(sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`, (rows) => rows[0]!.n === 1).pipe(Effect.orDie),
          "the enqueue waited for the dedup key's lock"
        )
        yield* Fiber.interrupt(waiting)
        // the holder rolls back: the interrupted insert must not go ahead on its own
        yield* rollBack
        yield* Effect.sleep(300)
        assert.strictEqual(yield* orders("timed-out"), 0)
        assert.strictEqual(yield* orders("waited"), 0)
        assert.deepStrictEqual(yield* jobRows(schema), [])
        // the pool's connections are clean: a transaction of the application's works, the keys free
        yield* withTransaction(Effect.gen(function*() {
          yield* insertOrder("after")
          assert.isTrue((yield* JobQueue.enqueue(Work, { n: 4 }, { queue: "q", dedupKey: "held" })).created)
          assert.isTrue((yield* JobQueue.enqueue(Work, { n: 5 }, { queue: "q", dedupKey: "t" })).created)
        }))
        assert.strictEqual((yield* jobRows(schema)).length, 2)
      })), 60_000)

    it.live("an enqueue that fails in the server (the application's lock_timeout on a dedup key held elsewhere): a StoreError, and the application's commit fails rather than dropping its row silently", () =>
      inStore((schema) => Effect.gen(function*() {
        const sql = yield* PgClient.PgClient
        const commit = yield* holdingDedupKey(1, "k")
        const failed: Array<string> = []
        const exit = yield* Effect.exit(withTransaction(Effect.gen(function*() {
          yield* sql`SET LOCAL lock_timeout = '100ms'`
          yield* insertOrder("lost?")
          // the application goes on past the enqueue's failure (a job it thinks optional)
          yield* JobQueue.enqueue(Work, { n: 2 }, { queue: "q", dedupKey: "k" }).pipe(
            Effect.catchTag("StoreError", (error) => Effect.sync(() => failed.push(error.message)))
          )
        })))
        assert.strictEqual(failed.length, 1)
        assert.include(failed[0], "lock timeout")
        assert.isTrue(Exit.isFailure(exit), "the commit of a transaction the failed statement aborted fails")
        assert.strictEqual(yield* orders("lost?"), 0)
        yield* commit
        assert.strictEqual((yield* jobRows(schema)).length, 1)
      })), 60_000)

    it.live("nested: a savepoint of the application's rolled back takes its jobs with it, the outer transaction's commit keeps the rest; an enqueue in a transaction already aborted fails with the server's reason", () =>
      inStore((schema) => Effect.gen(function*() {
        const sql = yield* PgClient.PgClient
        yield* withTransaction(Effect.gen(function*() {
          yield* insertOrder("outer")
          yield* JobQueue.enqueue(Work, { n: 1 }, { queue: "q", dedupKey: "outer" })
          const inner = yield* Effect.exit(withTransaction(Effect.gen(function*() {
            yield* insertOrder("inner")
            yield* JobQueue.enqueue(Work, { n: 2 }, { queue: "q", dedupKey: "inner" })
            yield* JobQueue.enqueueAll(Work, [{ payload: { n: 3 } }], { queue: "q" })
            return yield* Effect.fail("inner failure" as const)
          })))
          assert.isTrue(Exit.isFailure(inner))
          // the inner dedup key is free again within the outer transaction
          assert.isTrue((yield* JobQueue.enqueue(Work, { n: 4 }, { queue: "q", dedupKey: "inner" })).created)
        }))
        assert.strictEqual(yield* orders("outer"), 1)
        assert.strictEqual(yield* orders("inner"), 0)
        assert.deepStrictEqual((yield* jobRows(schema)).map((row) => row.dedup_key), ["outer", "inner"])

        // the application's own statement failed, caught, and the transaction is aborted (25P02)
        const reasons: Array<string> = []
        const exit = yield* Effect.exit(withTransaction(Effect.gen(function*() {
          yield* insertOrder("aborted")
          yield* Effect.ignore(sql`SELECT 1 / 0`)
          yield* JobQueue.enqueue(Work, { n: 5 }, { queue: "q" }).pipe(
            Effect.catchTag("StoreError", (error) => Effect.sync(() => reasons.push(error.message)))
          )
        })))
        assert.strictEqual(reasons.length, 1)
        assert.include(reasons[0], "current transaction is aborted")
        assert.isTrue(Exit.isFailure(exit))
        assert.strictEqual(yield* orders("aborted"), 0)
        assert.strictEqual((yield* jobRows(schema)).length, 2)
      })), 60_000)

    it.live("an enqueueAll with dedup keys holds its queue's dedup lock until the application's commit: other batches with dedup keys of the queue wait for it, single enqueues do not", () =>
      inStore((schema) => Effect.gen(function*() {
        const sql = yield* PgClient.PgClient
        const inside = yield* Deferred.make<void>()
        const commit = yield* Deferred.make<void>()
        const tx = yield* withTransaction(Effect.gen(function*() {
          yield* JobQueue.enqueueAll(Work, [{ payload: { n: 1 }, options: { dedupKey: "a" } }], { queue: "q" })
          yield* Deferred.succeed(inside, undefined)
          yield* Deferred.await(commit)
        })).pipe(Effect.forkScoped)
        yield* Deferred.await(inside)
        // another process's store
        const other = yield* Layer.build(otherStore(schema))
        const single = yield* Effect.provide(JobQueue.enqueue(Work, { n: 2 }, { queue: "q", dedupKey: "b" }), other)
        assert.isTrue(single.created)
        const batch = yield* Effect.provide(JobQueue.enqueueAll(Work, [{ payload: { n: 3 }, options: { dedupKey: "c" } }], { queue: "q" }), other)
          .pipe(Effect.forkScoped)
        yield* waitFor(
          Effect.map(
            sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.datname = current_database() AND l.locktype = 'advisory' AND NOT l.granted`,
            (rows) => rows[0]!.n === 1
          ).pipe(Effect.orDie),
          "the other batch waited for the queue's dedup lock"
        )
        assert.isUndefined(batch.pollUnsafe())
        yield* Deferred.succeed(commit, undefined)
        yield* Fiber.join(tx)
        const [created] = yield* Fiber.join(batch)
        assert.isTrue(created!.created)
        assert.strictEqual((yield* jobRows(schema)).length, 3)
      })), 60_000)

    it.live("on a multiplexed client the enqueue that fails in the server is a savepoint of the transaction: the StoreError, and the transaction goes on and commits its row", () =>
      Effect.gen(function*() {
        const schema = Pg.freshSchema()
        const db = PgClient.layer({ url: Redacted.make(dbUrl), maxConnections: 4, multiplex: true })
        yield* Effect.gen(function*() {
          const sql = yield* PgClient.PgClient
          const commit = yield* holdingDedupKey(1, "k")
          const failed: Array<string> = []
          yield* withTransaction(Effect.gen(function*() {
            yield* sql`SET LOCAL lock_timeout = '100ms'`
            yield* JobQueue.enqueue(Work, { n: 2 }, { queue: "q", dedupKey: "k" }).pipe(
              Effect.catchTag("StoreError", (error) => Effect.sync(() => failed.push(error.message)))
            )
            yield* insertOrder("multiplexed")
          }))
          assert.strictEqual(failed.length, 1)
          assert.include(failed[0], "lock timeout")
          assert.strictEqual(yield* orders("multiplexed"), 1)
          yield* commit
          assert.strictEqual((yield* jobRows(schema)).length, 1)
        }).pipe(Effect.scoped, Effect.provide(Layer.merge(PgJobStore.layerClient({ schema }).pipe(Layer.provide(db)), db)))
      }), 60_000)

    it.live("a read of the store in a long transaction (a status): the store's time stays the server's, not the transaction's start", () =>
      inStore(() => Effect.gen(function*() {
        const sql = yield* PgClient.PgClient
        const store = yield* JobStore.JobStore
        const job = yield* JobQueue.enqueue(Work, { n: 1 }, { queue: "q" })
        /** How far (ms) the store's time, read after the server's clock (outside any transaction), is behind it. */
        const outside = yield* Pg.appClient(dbUrl, 1)
        const lag = Effect.gen(function*() {
          const [row] = yield* outside<{ at: number }>`SELECT floor(extract(epoch from clock_timestamp()) * 1000)::float8 AS at`.pipe(Effect.orDie)
          return row!.at - (yield* store.now)
        })
        let worst = 0
        yield* withTransaction(Effect.gen(function*() {
          // the transaction's now() is its start: 3 s back once this passes
          yield* waitFor(
            Effect.map(sql<{ past: boolean }>`SELECT clock_timestamp() > now() + interval '3 seconds' AS past`, (rows) => rows[0]!.past).pipe(Effect.orDie),
            "the transaction was 3 s old",
            { within: 30_000 }
          )
          // reads of the application's (each may ask the server's time in the background)
          for (let i = 0; i < 5; i++) {
            yield* JobQueue.status(job.id)
            yield* Effect.sleep("300 millis")
            worst = Math.max(worst, yield* lag)
          }
        }))
        assert.isBelow(worst, 1500, `the store's time lagged the server's by ${worst} ms`)
      })), 60_000)

    it.live("a cancel of a running job in the application's transaction: the job runs on while the transaction is open, is not interrupted if it rolls back, and is at the commit", () =>
      inStore(() => Effect.gen(function*() {
        const started = yield* Deferred.make<void>()
        const interrupted = yield* Deferred.make<void>()
        yield* JobQueue.consume({
          queues: ["q"],
          handlers: [Task.handle(Work, () =>
            Effect.andThen(Deferred.succeed(started, undefined), Effect.never).pipe(
              Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined))
            ))],
          concurrency: 1,
          poll: HOUR
        })
        const job = yield* JobQueue.enqueue(Work, { n: 1 }, { queue: "q" })
        yield* Deferred.await(started)
        const cancelIn = (then: "commit" | "roll back") =>
          Effect.exit(withTransaction(Effect.gen(function*() {
            assert.strictEqual(yield* JobQueue.cancel(job.id), "requested")
            // this process's consumer was told at once: it must not take the uncommitted request
            yield* Effect.sleep("500 millis")
            assert.isFalse(yield* Deferred.isDone(interrupted), "interrupted before the commit")
            if (then === "roll back") return yield* Effect.fail("rolled back" as const)
          })))
        yield* cancelIn("roll back")
        yield* Effect.sleep("500 millis")
        assert.isFalse(yield* Deferred.isDone(interrupted), "interrupted by a rolled-back cancel")
        assert.strictEqual((yield* JobQueue.status(job.id)).state, "running")
        yield* cancelIn("commit")
        yield* Deferred.await(interrupted).pipe(Effect.timeout("20 seconds"))
        yield* waitFor(Effect.map(JobQueue.status(job.id), (info) => info.state === "cancelled").pipe(Effect.orDie, Effect.provideService(JobStore.JobStore, yield* JobStore.JobStore)), "the job was cancelled")
      })), 60_000)

    it.live("the transaction's session ended by the server (pg_terminate_backend) after an enqueue: the next calls fail with StoreError, nothing is committed, the pool goes on", () =>
      inStore((schema) => Effect.gen(function*() {
        const sql = yield* PgClient.PgClient
        // a session of the same role may end another of its own
        const outside = yield* Pg.appClient(dbUrl, 1)
        const failures: Array<Exit.Exit<void, unknown>> = []
        const exit = yield* Effect.exit(withTransaction(Effect.gen(function*() {
          yield* insertOrder("terminated")
          yield* JobQueue.enqueue(Work, { n: 1 }, { queue: "q" })
          const [me] = yield* sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`
          yield* outside`SELECT pg_terminate_backend(${me!.pid})`.pipe(Effect.orDie)
          failures.push(yield* Effect.exit(Effect.asVoid(JobQueue.enqueue(Work, { n: 2 }, { queue: "q" }))))
          failures.push(yield* Effect.exit(Effect.asVoid(JobQueue.enqueueAll(Work, [{ payload: { n: 3 } }], { queue: "q" }))))
        })))
        assert.isTrue(Exit.isFailure(exit))
        for (const failure of failures) {
          assert.isTrue(Exit.isFailure(failure) && !Cause.hasDies(failure.cause) && Cause.pretty(failure.cause).includes("StoreError"), String(failure))
        }
        assert.strictEqual(yield* orders("terminated"), 0)
        assert.strictEqual((yield* jobRows(schema)).length, 0)
        yield* withTransaction(Effect.gen(function*() {
          yield* insertOrder("after-terminated")
          yield* JobQueue.enqueue(Work, { n: 4 }, { queue: "q" })
        }))
        assert.strictEqual((yield* jobRows(schema)).length, 1)
      })), 60_000)

    it.live("an enqueue in a READ ONLY transaction of the application's: the StoreError says the transaction is read-only, not only a failover", () =>
      inStore((schema) => Effect.gen(function*() {
        const exit = yield* Effect.exit(withTransaction(JobQueue.enqueue(Work, { n: 1 }, { queue: "q" })).pipe(
          Effect.provideService(SqlClient.BeginTransaction, "BEGIN READ ONLY")
        ))
        assert.isTrue(Exit.isFailure(exit))
        const text = Exit.isFailure(exit) ? Cause.pretty(exit.cause) : ""
        assert.include(text, "StoreError")
        assert.include(text, "the application's transaction it ran in is read-only")
        assert.strictEqual((yield* jobRows(schema)).length, 0)
        // outside it, the same store writes
        assert.isTrue((yield* JobQueue.enqueue(Work, { n: 2 }, { queue: "q" })).created)
      })), 60_000)

    it.live("a consumer started inside the application's transaction is not part of it: it does not run the transaction's uncommitted job, and goes on after the transaction ends", () =>
      inStore(() => Effect.gen(function*() {
        const runs: Array<number> = []
        const scope = yield* Effect.scope
        const exit = yield* Effect.exit(withTransaction(Effect.gen(function*() {
          // its scope is the caller's, not the transaction's: it outlives the transaction
          yield* JobQueue.consume({
            queues: ["q"],
            handlers: [Task.handle(Work, ({ n }) => Effect.sync(() => runs.push(n)).pipe(Effect.as(n)))],
            concurrency: 1,
            poll: "100 millis"
          }).pipe(Scope.provide(scope))
          yield* insertOrder("consumer-in-tx")
          yield* JobQueue.enqueue(Work, { n: 1 }, { queue: "q" })
          // its polls look several times meanwhile (on its own connections they see nothing)
          yield* Effect.sleep("1 second")
          return yield* Effect.fail("rolled back" as const)
        })))
        assert.isTrue(Exit.isFailure(exit))
        // not run: it had run inside the transaction (its claims on the transaction's connection), a job that then never was
        assert.deepStrictEqual(runs, [])
        const job = yield* JobQueue.enqueue(Work, { n: 2 }, { queue: "q" })
        // it goes on: its claims did not stay on the transaction's released connection
        assert.strictEqual(yield* JobQueue.await(Work, job.id).pipe(Effect.timeout("20 seconds")), 2)
        assert.deepStrictEqual(runs, [2])
      })), 60_000)

    it.live("a repeat started inside the application's transaction is not part of it: its ticks are enqueued after the transaction ends", () =>
      inStore((schema) => Effect.gen(function*() {
        const scope = yield* Effect.scope
        yield* Effect.exit(withTransaction(Effect.gen(function*() {
          yield* JobQueue.repeat("every-second", Work, { n: 1 }, { cron: "* * * * * *", queue: "ticks" }).pipe(Scope.provide(scope))
          return yield* Effect.fail("rolled back" as const)
        })))
        // ticks of its own, committed on their own (not on the transaction's released connection)
        const sql = yield* PgClient.PgClient
        yield* waitFor(
          Effect.map(jobRows(schema), (rows) => rows.length >= 2).pipe(Effect.provideService(PgClient.PgClient, sql)),
          "two ticks were enqueued",
          { within: 20_000 }
        )
      })), 60_000)

    it.live("an await inside a REPEATABLE READ transaction of the application's sees the job end (its looks are not in the transaction's snapshot)", () =>
      inStore(() => Effect.gen(function*() {
        const release = yield* Deferred.make<void>()
        const started = yield* Deferred.make<void>()
        yield* JobQueue.consume({
          queues: ["q"],
          handlers: [Task.handle(Work, ({ n }) => Effect.andThen(Deferred.succeed(started, undefined), Deferred.await(release)).pipe(Effect.as(n * 10)))],
          concurrency: 1,
          poll: HOUR
        })
        const job = yield* JobQueue.enqueue(Work, { n: 4 }, { queue: "q" })
        yield* Deferred.await(started)
        const result = yield* withTransaction(Effect.gen(function*() {
          // the snapshot is taken: the job running
          assert.strictEqual((yield* JobQueue.status(job.id)).state, "running")
          yield* Deferred.succeed(release, undefined)
          return yield* JobQueue.await(Work, job.id).pipe(Effect.timeout("15 seconds"))
        })).pipe(Effect.provideService(SqlClient.BeginTransaction, "BEGIN ISOLATION LEVEL REPEATABLE READ"))
        assert.strictEqual(result, 40)
        // in the transaction that enqueued it: not committed, not found (rather than waiting as long as the transaction)
        const own = yield* withTransaction(Effect.gen(function*() {
          const handle = yield* JobQueue.enqueue(Work, { n: 5 }, { queue: "q" })
          return yield* Effect.flip(handle.await)
        }))
        assert.strictEqual(own._tag, "JobNotFound")
      })), 60_000)

    it.live("progressChanges inside a REPEATABLE READ transaction of the application's sees the job's progress (its looks are not in the transaction's snapshot)", () =>
      inStore(() => Effect.gen(function*() {
        const started = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        const finish = yield* Deferred.make<void>()
        yield* JobQueue.consume({
          queues: ["q"],
          handlers: [Task.handle(Work, ({ n }) =>
            Effect.gen(function*() {
              yield* Deferred.succeed(started, undefined)
              yield* Deferred.await(release)
              yield* (yield* WorkPool.JobContext).progress({ step: 1 })
              yield* Deferred.await(finish)
              return n
            }))],
          concurrency: 1,
          poll: HOUR
        })
        const job = yield* JobQueue.enqueue(Work, { n: 4 }, { queue: "q" })
        yield* Deferred.await(started)
        const first = yield* withTransaction(Effect.gen(function*() {
          // the snapshot is taken: the job running, no progress yet
          assert.strictEqual((yield* JobQueue.status(job.id)).state, "running")
          yield* Deferred.succeed(release, undefined)
          return yield* Stream.runHead(JobQueue.progressChanges(job.id)).pipe(Effect.timeout("15 seconds"))
        })).pipe(Effect.provideService(SqlClient.BeginTransaction, "BEGIN ISOLATION LEVEL REPEATABLE READ"))
        assert.deepStrictEqual(first, Option.some({ step: 1 }))
        yield* Deferred.succeed(finish, undefined)
        assert.strictEqual(yield* job.await, 4)
      })), 60_000)

    it.live("a Dashboard started inside the application's transaction is not part of it: its readings of a queue go on after the transaction ends", () =>
      inStore(() => Effect.gen(function*() {
        const scope = yield* Effect.scope
        const dashboard = yield* withTransaction(Effect.gen(function*() {
          const built = yield* Layer.build(Dashboard.layer({ port: 0, token: TOKEN, interval: 100 })).pipe(Scope.provide(scope))
          const dashboard = Context.get(built, Dashboard.Dashboard)
          yield* dashboard.addQueue("q")
          // its readings in the transaction's time: on its own connections they see nothing of it
          yield* JobQueue.enqueue(Work, { n: 1 }, { queue: "q" })
          return dashboard
        })).pipe(Effect.provideService(SqlClient.BeginTransaction, "BEGIN ISOLATION LEVEL REPEATABLE READ"))
        yield* JobQueue.enqueue(Work, { n: 2 }, { queue: "q" })
        const waiting = Effect.promise(async () => {
          const response = await fetch(dashboard.address + "api/snapshot", { headers: { authorization: `Bearer ${TOKEN}` } })
          const body = await response.json() as { sources: Array<{ kind: string; name: string; counts?: { waiting?: number } }> }
          return body.sources.find((source) => source.kind === "queue" && source.name === "q")?.counts?.waiting
        })
        // read on the transaction's connection, every reading failed once it had ended ("Pinned connection was released")
        yield* waitFor(Effect.map(waiting, (n) => n === 2), "the dashboard reads the queue's 2 waiting jobs", { within: 20_000 })
      })), 60_000)

    it.live("serializable transactions, retried by the application on a serialization failure (the StoreError's sqlState 40001): the dedup key gives one job, each order its row", () =>
      inStore((schema) => Effect.gen(function*() {
        const first = yield* Deferred.make<void>()
        const go = yield* Deferred.make<void>()
        const attempts = { a: 0, b: 0 }
        const errors: Array<string> = []
        const refused: Array<DurableError.StoreError> = []
        const order = (who: "a" | "b") =>
          withTransaction(Effect.gen(function*() {
            attempts[who]++
            yield* insertOrder(`order-${who}`)
            const handle = yield* JobQueue.enqueue(Work, { n: who === "a" ? 1 : 2 }, { queue: "q", dedupKey: "report" })
            if (who === "a") {
              yield* Deferred.succeed(first, undefined)
              yield* Deferred.await(go)
            }
            return handle
          })).pipe(
            Effect.provideService(SqlClient.BeginTransaction, "BEGIN ISOLATION LEVEL SERIALIZABLE"),
            Effect.tapError((error) => Effect.sync(() => errors.push(String(error)))),
            Effect.tapError((error) => Effect.sync(() => error instanceof DurableError.StoreError && refused.push(error))),
            // the application's retry of a serialization failure, by its SQLSTATE (40001)
            Effect.retry({ while: (error) => error instanceof DurableError.StoreError && error.sqlState === "40001", times: 5 })
          )
        const a = yield* Effect.forkScoped(order("a"))
        yield* Deferred.await(first)
        const b = yield* Effect.forkScoped(order("b"))
        yield* Effect.sleep(200)
        yield* Deferred.succeed(go, undefined)
        const ha = yield* Fiber.join(a)
        const hb = yield* Fiber.join(b)
        assert.isTrue(ha.created)
        assert.strictEqual(hb.id, ha.id, errors.join("\n"))
        assert.isFalse(hb.created)
        assert.strictEqual(yield* orders("order-a"), 1)
        assert.strictEqual(yield* orders("order-b"), 1)
        assert.strictEqual((yield* jobRows(schema)).length, 1)
        assert.strictEqual(attempts.b, 2, errors.join("\n"))
        assert.strictEqual(refused[0]!.sqlState, "40001")
        // a Schema field: it crosses to another process with the error (an Exit stored with a job)
        const codec = Schema.toCodecJson(DurableError.StoreError)
        assert.strictEqual(Schema.decodeUnknownSync(codec)(Schema.encodeSync(codec)(refused[0]!)).sqlState, "40001")
      })), 60_000)

    it.live("a delayed job enqueued in a transaction that outlasts its delay starts at the commit, on another process's consumer and on this one's (poll of an hour), not a delay later", () =>
      inStore((schema) => Effect.gen(function*() {
        const startedAt = new Map<string, number>()
        const handlers = (who: string) => [Task.handle(Work, ({ n }) => Effect.sync(() => startedAt.set(`${who}:${n}`, Date.now())).pipe(Effect.as(n)))]
        const other = yield* Layer.build(otherStore(schema))
        yield* Effect.provide(JobQueue.consume({ queues: ["remote"], handlers: handlers("other"), concurrency: 2, poll: HOUR }), other)
        yield* JobQueue.consume({ queues: ["local"], handlers: handlers("local"), concurrency: 2, poll: HOUR })
        yield* Effect.provide(heard(["remote"]), other)
        yield* heard(["local"])
        const sql = yield* PgClient.PgClient
        const enqueued = yield* Deferred.make<void>()
        const tx = yield* withTransaction(Effect.gen(function*() {
          yield* JobQueue.enqueue(Work, { n: 1 }, { queue: "remote", delay: "3 seconds" })
          yield* JobQueue.enqueueAll(Work, [{ payload: { n: 2 }, options: { delay: "3 seconds" } }], { queue: "local" })
          yield* Deferred.succeed(enqueued, undefined)
          // the application's work goes on past the jobs' due time (the server's clock says when)
          yield* waitFor(
            Effect.map(sql<{ past: boolean }>`SELECT clock_timestamp() > now() + interval '3.5 seconds' AS past`, (rows) => rows[0]!.past).pipe(Effect.orDie),
            "the jobs were due",
            { within: 30_000 }
          )
        })).pipe(Effect.forkScoped)
        yield* Deferred.await(enqueued)
        yield* Fiber.join(tx)
        const committed = Date.now()
        yield* waitFor(Effect.sync(() => startedAt.size === 2), "both ran", { within: 20_000 })
        // late, each started 3 s after the commit (its delay counted again from the NOTIFY)
        for (const [who, at] of startedAt) assert.isBelow(at - committed, 2000, `${who} started ${at - committed} ms after the commit`)
      })), 60_000)

    // on a pool of one connection the same transaction starves the consumer: its heartbeats wait
    // for a connection past the lease, the job is given up as lost and runs again (docs/durable.md,
    // "Enqueue in your transaction": size the pool for the transactions open at once, plus one)
    it.live("a consumer on the application's pool, a long transaction of the application's holding one of its two connections for several leases: the running job keeps its lease and runs once", () =>
      inStore((schema) => Effect.gen(function*() {
        const started = yield* Deferred.make<void>()
        const finish = yield* Deferred.make<void>()
        const runs: Array<number> = []
        const interrupted: Array<number> = []
        yield* JobQueue.consume({
          queues: ["q"],
          handlers: [Task.handle(Work, ({ n }) =>
            Effect.gen(function*() {
              runs.push(n)
              if (n === 1) {
                yield* Deferred.succeed(started, undefined)
                yield* Deferred.await(finish)
              }
              return n
            }).pipe(Effect.onInterrupt(() => Effect.sync(() => interrupted.push(n)))))],
          concurrency: 2,
          lease: "2 seconds",
          poll: HOUR
        })
        yield* JobQueue.enqueue(Work, { n: 1 }, { queue: "q" })
        yield* Deferred.await(started)
        const sql = yield* PgClient.PgClient
        yield* withTransaction(Effect.gen(function*() {
          yield* insertOrder("long")
          yield* JobQueue.enqueue(Work, { n: 2 }, { queue: "q" })
          // three leases of the application's work, on the server's clock
          yield* waitFor(
            Effect.map(sql<{ past: boolean }>`SELECT clock_timestamp() > now() + interval '6 seconds' AS past`, (rows) => rows[0]!.past).pipe(Effect.orDie),
            "three leases passed",
            { within: 30_000 }
          )
        }))
        yield* waitFor(Effect.sync(() => runs.includes(2)), "the committed job ran", { within: 20_000 })
        yield* Deferred.succeed(finish, undefined)
        yield* waitFor(
          Effect.map(jobRows(schema), (rows) => rows.every((row) => row.state === "succeeded")).pipe(Effect.provideService(PgClient.PgClient, sql)),
          "both jobs succeeded",
          { within: 20_000 }
        )
        assert.deepStrictEqual(interrupted, [])
        assert.deepStrictEqual(runs, [1, 2])
      }), 2), 60_000)
  })

  describe("the Postgres store in the application's transaction: two client instances", () => {
    it.live("the application's transaction on another PgClient instance than the store's: the job commits on its own, and a warning says so, once", () =>
      Effect.gen(function*() {
        const schema = Pg.freshSchema()
        const { collector, logged } = warnings()
        // two layers of the same settings: two pools, two clients
        const Jobs = PgJobStore.layerClient({ schema }).pipe(Layer.provide(appDb(2)))
        const attempt = (id: string) =>
          Effect.exit(withTransaction(Effect.gen(function*() {
            yield* insertOrder(id)
            yield* JobQueue.enqueue(Work, { n: 1 }, { queue: "q" })
            return yield* Effect.fail("rolled back" as const)
          })))
        yield* Effect.gen(function*() {
          yield* attempt("two-pools-1")
          yield* attempt("two-pools-2")
          // a write outside any transaction says nothing
          yield* JobQueue.enqueue(Work, { n: 2 }, { queue: "q" })
          assert.strictEqual(yield* orders("two-pools-1"), 0)
          assert.strictEqual((yield* jobRows(schema)).length, 3, "not in the application's transaction")
        }).pipe(Effect.provide(Jobs), Effect.provide(appDb(2)), Effect.provide(Logger.layer([collector])))
        assert.strictEqual(logged.filter((line) => line.includes("another SQL client")).length, 1, logged.join("\n"))
        // one client for both: in the transaction, and no warning
        yield* Effect.gen(function*() {
          yield* attempt("one-pool")
          assert.strictEqual((yield* jobRows(schema)).length, 3)
        }).pipe(Effect.provide(appStack(schema, 2)), Effect.provide(Logger.layer([collector])))
        assert.strictEqual(logged.filter((line) => line.includes("another SQL client")).length, 1, logged.join("\n"))
      }), 60_000)
  })

  describe("the Postgres store in the application's transaction: a producer process killed (SIGKILL)", () => {
    const node = existsSync("node_modules/.bin/node") ? "node_modules/.bin/node" : process.execPath
    const fixture = new URL("./fixtures/durable-pg-transaction-child.ts", import.meta.url).pathname
    const spawnChild = (schema: string, mode?: "hold") => {
      const child = followConsumer(spawn(node, [fixture, dbUrl, schema, ...(mode === undefined ? [] : [mode])], { stdio: ["ignore", "pipe", "pipe"] }))
      spawned.push(child.child)
      return child
    }
    /** The orders of the child's loop and the jobs' `n`s, each sorted; once no session of the child's is left in a transaction. */
    const afterItsSessions = (schema: string) =>
      untilRead(
        () => Pg.adminOn(dbUrl, (sql) => sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'`),
        (rows) => rows[0]!.n === 0,
        "the killed child's transaction ended on the server"
      ).then(() =>
        Pg.adminOn(dbUrl, (sql) =>
          Effect.all([
            sql<{ id: string }>`SELECT id FROM app.orders WHERE id LIKE 'child-%'`,
            sql<{ payload: string }>`SELECT payload FROM ${sql(schema)}.wp_job`
          ]))
      ).then(([orderRows, jobs]) => ({
        orders: orderRows.map((row) => Number(row.id.slice("child-".length))).sort((a, b) => a - b),
        jobs: jobs.map((row) => (JSON.parse(row.payload) as { n: number }).n).sort((a, b) => a - b)
      }))

    it("killed inside its transaction, the order inserted and the job enqueued: neither is left", { timeout: 60_000 }, async () => {
      const schema = Pg.freshSchema()
      await Pg.adminOn(dbUrl, (sql) => sql`DELETE FROM app.orders WHERE id LIKE 'child-%'`)
      const child = spawnChild(schema, "hold")
      await waitUntil([child], () => child.lines.includes("inside 0"), "the child was inside its transaction", 45_000)
      child.child.kill("SIGKILL")
      await child.exited
      const left = await afterItsSessions(schema)
      assert.deepStrictEqual(left, { orders: [], jobs: [] })
    })

    it("killed at any point of a loop of transactions (order + job each): every order has its job and every job its order", { timeout: 90_000 }, async () => {
      const schema = Pg.freshSchema()
      await Pg.adminOn(dbUrl, (sql) => sql`DELETE FROM app.orders WHERE id LIKE 'child-%'`)
      const child = spawnChild(schema)
      // inside a transaction, after its enqueue, before its commit: the most hostile moment
      const at = 20 + Math.floor(Math.random() * 20)
      await waitUntil([child], () => child.lines.includes(`inside ${at}`), `the child was inside its transaction ${at}`, 60_000)
      child.child.kill("SIGKILL")
      await child.exited
      const left = await afterItsSessions(schema)
      assert.deepStrictEqual(left.jobs, left.orders)
      // the kill lands a little after `inside ${at}` was read (the child goes on meanwhile): what it
      // said before it died, all of its output read by now, bounds what is left
      const said = (word: string) => child.lines.filter((line) => line.startsWith(`${word} `)).map((line) => Number(line.slice(word.length + 1)))
      const committed = said("committed")
      const lastInside = Math.max(...said("inside"))
      assert.includeMembers(left.orders, committed, "the committed ones are all there")
      assert.isAtMost(left.orders.length, lastInside + 1, "none past the last one begun")
      assert.deepStrictEqual(left.orders, Array.from({ length: left.orders.length }, (_, n) => n), "in order, none missing")
    })
  })
}

