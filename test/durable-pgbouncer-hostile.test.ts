/**
 * Hostile tests of the Postgres store behind a real PgBouncer (Debian's, 1.18; started per test by
 * test/durable/pgbouncer.ts in front of WORKPOOL_PG_URL's server). Session pooling: the store opens
 * (PgBouncer refuses the idle bound's startup parameter, or drops it with ignore_startup_parameters),
 * its transactions of several statements run, another instance's job wakes an idle consumer
 * (LISTEN), the consumer recovers from the pooler's KILL of the database and from PgBouncer killed
 * -9 (a job running) and restarted, each job run once, a typed StoreError while it is down; an open
 * during PAUSE waits for RESUME; server_lifetime and RECONNECT leave live sessions alone.
 * Transaction and statement pooling: the store's open fails at once with a StoreError saying so
 * (before this check it opened, and its idle consumers never heard another process's jobs: the
 * NOTIFY reached a server connection no client was linked to, which PgBouncer dropped).
 * Every consumer polls once an hour: only a NOTIFY can start a job within the test's time.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Schedule } from "effect"
import { StoreError } from "../src/DurableError.ts"
import * as JobQueue from "../src/JobQueue.ts"
import type * as JobStore from "../src/JobStore.ts"
import * as Postgres from "../src/internal/store/postgres.ts"
import * as PgJobStore from "../src/PgJobStore.ts"
import { countingEcho, Echo } from "./durable/conformance.ts"
import { appClient, enabled, freshSchema, url } from "./durable/postgres.ts"
import { type Bouncer, type BouncerOptions, pgbouncerBinary, startBouncer } from "./durable/pgbouncer.ts"
import { waitFor } from "./helpers.ts"

const HOUR = "1 hour"

const installed = pgbouncerBinary() !== undefined
if (!installed && process.env.CI === "true") throw new Error("pgbouncer is not installed: under CI=true the PgBouncer tests must run (.ci/run installs it)")
if (!installed) console.warn("pgbouncer is not installed (apt-get install pgbouncer): the PgBouncer tests are skipped")

/** A PgBouncer of the test's own, in front of the test server, killed with the test's scope. */
const bouncer = (options: BouncerOptions) =>
  Effect.acquireRelease(
    Effect.promise(() => startBouncer(url!, options)),
    (b) => Effect.promise(() => b.destroy())
  )

const storeLayer = (b: Bouncer, schema: string): Layer.Layer<JobStore.JobStore, StoreError> =>
  PgJobStore.layer({ url: b.url, schema, maxConnections: 3, connectTimeout: "5 seconds" })

/** Runs `effect` with a store of its own (opened and closed around it). */
const withStore = <A, E>(b: Bouncer, schema: string, effect: Effect.Effect<A, E, JobStore.JobStore>) =>
  Effect.provide(effect, storeLayer(b, schema))

const counting = countingEcho

/** A job of another store instance, enqueued (tried again while the pooler is down) and awaited here. */
const roundTrip = (b: Bouncer, schema: string, n: number) =>
  Effect.gen(function*() {
    const job = yield* withStore(b, schema, JobQueue.enqueue(Echo, { n })).pipe(
      Effect.retry({ while: (error) => error instanceof StoreError, schedule: Schedule.spaced("200 millis"), times: 100 })
    )
    return yield* JobQueue.await(Echo, job.id).pipe(Effect.timeout("20 seconds"))
  })

if (!enabled || !installed) describe.skip("the Postgres store behind PgBouncer (WORKPOOL_PG_URL not set, or pgbouncer not installed)", () => {})
else {
  describe("the Postgres store behind PgBouncer in session mode", () => {
    it.live.each(["refused", "ignored"] as const)("opens (the idle bound's startup parameter %s: opened without it, its transactions setting it), and another instance's jobs wake an idle consumer", (parameter) =>
      Effect.gen(function*() {
        const b = yield* bouncer({
          poolMode: "session",
          settings: parameter === "ignored" ? { ignore_startup_parameters: "idle_in_transaction_session_timeout" } : {}
        })
        const schema = freshSchema()
        const { handler, runs } = counting()
        const results = yield* Effect.gen(function*() {
          // the store's transactions of several statements: a rate-limited queue's claims, the
          // dedup keys' locks of enqueueAll (each setting its idle bound itself, behind PgBouncer)
          yield* JobQueue.setRateLimit("default", { limit: 1000, interval: 1000 })
          const batch = yield* JobQueue.enqueueAll(Echo, [6, 7].map((n) => ({ payload: { n }, options: { dedupKey: `k${n}` } })))
          yield* JobQueue.consume({ handlers: [handler], concurrency: 2, poll: HOUR })
          const woken = yield* Effect.forEach([1, 2, 3, 4, 5], (n) => roundTrip(b, schema, n))
          return [...woken, ...yield* Effect.forEach(batch, (job) => JobQueue.await(Echo, job.id).pipe(Effect.timeout("20 seconds")))]
        }).pipe(Effect.scoped, Effect.provide(storeLayer(b, schema)))
        assert.deepStrictEqual(results, [2, 4, 6, 8, 10, 12, 14])
        assert.deepStrictEqual([...runs.values()].sort(), [1, 1, 1, 1, 1, 1, 1])
        const refusals = b.log().includes("unsupported startup parameter: idle_in_transaction_session_timeout")
        assert.strictEqual(refusals, parameter === "refused")
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("the pooler's KILL of the database, then PgBouncer killed -9 (a job running) and started again: the consumer recovers, a typed StoreError while it is down, each job run once, the running one settled", () =>
      Effect.gen(function*() {
        const b = yield* bouncer({ poolMode: "session" })
        const schema = freshSchema()
        const { go, handler, runs, started } = counting()
        yield* Effect.gen(function*() {
          yield* JobQueue.consume({ handlers: [handler], concurrency: 2, poll: HOUR })
          assert.strictEqual(yield* roundTrip(b, schema, 1), 2)
          // every client and server connection of the database dropped at once
          yield* Effect.promise(() => b.admin("KILL workpool"))
          yield* Effect.promise(() => b.admin("RESUME workpool"))
          assert.strictEqual(yield* roundTrip(b, schema, 2), 4)
          const running = yield* JobQueue.enqueue(Echo, { n: 100 })
          yield* Deferred.await(started)
          yield* Effect.promise(() => b.kill9())
          // down: a typed error, not a hang
          const down = yield* Effect.flip(JobQueue.status("no-such-job"))
          assert.instanceOf(down, StoreError)
          yield* Effect.promise(() => b.start())
          yield* Deferred.succeed(go, undefined)
          assert.strictEqual(yield* JobQueue.await(Echo, running.id).pipe(Effect.timeout("20 seconds")), 200)
          assert.strictEqual(yield* roundTrip(b, schema, 3), 6)
          assert.strictEqual(yield* roundTrip(b, schema, 4), 8)
        }).pipe(Effect.scoped, Effect.provide(storeLayer(b, schema)))
        assert.deepStrictEqual([...runs.entries()].sort(), [[1, 1], [100, 1], [2, 1], [3, 1], [4, 1]])
      }).pipe(Effect.scoped), { timeout: 90_000 })

    it.live("a store opened while the pooler is PAUSEd waits (what PAUSE is for) and opens once it is RESUMEd; server_lifetime and RECONNECT leave a live store's sessions alone", () =>
      Effect.gen(function*() {
        const b = yield* bouncer({ poolMode: "session", settings: { server_lifetime: 1 } })
        const schema = freshSchema()
        yield* withStore(b, schema, JobQueue.status("none")).pipe(Effect.ignore)
        yield* Effect.promise(() => b.admin("PAUSE workpool"))
        const opening = yield* withStore(b, schema, Effect.flip(JobQueue.status("none"))).pipe(Effect.forkScoped)
        // SHOW POOLS' cl_waiting (its fourth column): the open's first statement held by the pause
        yield* waitFor(
          Effect.map(Effect.promise(() => b.admin("SHOW POOLS")), (rows) => rows.split("\n").some((row) => row.startsWith("workpool|") && Number(row.split("|")[3]) > 0)),
          "the open's statement waiting in the paused pool"
        )
        yield* Effect.promise(() => b.admin("RESUME workpool"))
        const error = yield* Fiber.join(opening).pipe(Effect.timeout("20 seconds"))
        assert.strictEqual(error._tag, "JobNotFound")
        const { handler, runs } = counting()
        yield* Effect.gen(function*() {
          yield* JobQueue.consume({ handlers: [handler], concurrency: 1, poll: HOUR })
          assert.strictEqual(yield* roundTrip(b, schema, 1), 2)
          // past server_lifetime, then RECONNECT: both apply to a server connection once released,
          // which a session's never is while its client is connected
          yield* Effect.sleep("1500 millis")
          yield* Effect.promise(() => b.admin("RECONNECT workpool"))
          assert.strictEqual(yield* roundTrip(b, schema, 2), 4)
        }).pipe(Effect.scoped, Effect.provide(storeLayer(b, schema)))
        assert.deepStrictEqual([...runs.entries()].sort(), [[1, 1], [2, 1]])
      }).pipe(Effect.scoped), { timeout: 60_000 })
  })

  describe("the Postgres store behind PgBouncer in transaction or statement mode", () => {
    const refused = (options: BouncerOptions) =>
      Effect.gen(function*() {
        const b = yield* bouncer(options)
        const error = yield* Effect.flip(withStore(b, freshSchema(), JobQueue.status("any")).pipe(Effect.timeout("30 seconds")))
        assert.instanceOf(error, StoreError)
        assert.strictEqual((error as StoreError).operation, "migrate")
        assert.strictEqual((error as StoreError).reason, Postgres.TRANSACTION_POOLING)
      }).pipe(Effect.scoped)

    it.live("transaction mode: the open fails at once with a StoreError saying the sessions are not kept (it opened, and idle consumers never heard another process's jobs)", () =>
      refused({ poolMode: "transaction" }), { timeout: 60_000 })

    it.live("transaction mode with server_round_robin (FIFO) and a pool of one server connection: refused too", () =>
      Effect.gen(function*() {
        yield* refused({ poolMode: "transaction", settings: { server_round_robin: 1 } })
        yield* refused({ poolMode: "transaction", settings: { default_pool_size: 1 } })
      }), { timeout: 60_000 })

    it.live.each([{ default_pool_size: 4 }, { default_pool_size: 8, server_round_robin: 1 }, { default_pool_size: 2 }])(
      "transaction mode while eight other clients are busy on the pool (%o): refused at each of 20 opens (one round of the look missed one open in ten)",
      (settings) =>
      Effect.gen(function*() {
        const b = yield* bouncer({ poolMode: "transaction", settings })
        const busy = yield* appClient(b.url, 8)
        // clients taking and releasing server connections all along (short statements, some sleeping)
        yield* Effect.forEach([0, 1, 2, 3, 4, 5, 6, 7], (i) =>
          busy`SELECT pg_sleep(${i % 3 === 0 ? 0 : 0.002})`.unprepared.pipe(Effect.forever, Effect.forkScoped))
        for (let i = 0; i < 20; i++) {
          const error = yield* Effect.flip(withStore(b, freshSchema(), JobQueue.status("any")).pipe(Effect.timeout("30 seconds")))
          assert.strictEqual((error as StoreError).reason, Postgres.TRANSACTION_POOLING)
        }
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("statement mode: refused", () => refused({ poolMode: "statement" }), { timeout: 60_000 })

    it.live("the application's own client through a transaction pooler (layerClient): refused the same", () =>
      Effect.gen(function*() {
        const b = yield* bouncer({ poolMode: "transaction" })
        const client = yield* appClient(b.url, 2)
        const error = yield* Effect.flip(Effect.scoped(Postgres.makeWith(client, yield* Postgres.clientOptions({ schema: freshSchema() }))))
        assert.strictEqual(error.reason, Postgres.TRANSACTION_POOLING)
      }).pipe(Effect.scoped), { timeout: 60_000 })
  })
}
