/**
 * Hostile tests of the Postgres store's detached operations (store/detached.ts): each runs on a
 * fiber of its own with its caller's context, and a caller that leaves returns at once while the
 * statement drains in the background.
 */
import { assert, describe, it } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Cause, Effect, Exit, Fiber, Redacted, Scope, type Tracer } from "effect"
import * as Reactivity from "effect/reactivity/Reactivity"
import { StoreError } from "../src/DurableError.ts"
import * as JobStore from "../src/JobStore.ts"
import * as JobQueue from "../src/JobQueue.ts"
import type { Store } from "../src/internal/store/model.ts"
import * as Postgres from "../src/internal/store/postgres.ts"
import { Echo, newJob } from "./durable/conformance.ts"
import { admin, appClient, blockedBy, enabled, freeze, freshSchema, lockSession, ownServer, schemaIdle, url } from "./durable/postgres.ts"
import * as pgServer from "./durable/pgserver.ts"
import { closeWithin, recordingTracer } from "./helpers.ts"


if (!enabled || pgServer.binaries() === undefined) describe.skip("the Postgres store's detached operations, hostile (WORKPOOL_PG_URL or the server binaries missing)", () => {})
else {
  describe("the Postgres store's detached operations on the caller's client (layerClient), hostile", () => {
    // the close waited only for the operations whose callers had left: one whose caller still
    // waited (an unbounded write, a read within its bound) went on, on the application's client,
    // past the store's close: a write to a frozen server for as long as it stayed frozen, its
    // caller waiting that long for a store that was gone
    it.live("the store closed while a write waits on a frozen server, its caller still waiting: the close ends it within the driver's drain bound (none runs past the close), and its caller fails with StoreError", () =>
      Effect.gen(function*() {
        const server = yield* ownServer()
        const sql = yield* appClient(server.url, 4)
        const scope = yield* Scope.make()
        const store = yield* Postgres.makeWith(sql, yield* Postgres.clientOptions({ schema: freshSchema() })).pipe(Scope.provide(scope))
        yield* JobQueue.enqueue(Echo, { n: 1 }).pipe(Effect.provideService(JobStore.JobStore, store))
        yield* freeze(server)
        const { spans, tracer } = recordingTracer()
        const write = yield* Effect.forkDetach(Effect.withTracer(JobQueue.enqueue(Echo, { n: 2 }), tracer).pipe(
          Effect.provideService(JobStore.JobStore, store)
        ))
        // on the wire
        yield* Effect.sleep(500)
        const running = () => spans.filter((span) => (span as Tracer.NativeSpan).status._tag === "Started").map((span) => span.name)
        assert.isAbove(running().length, 0, "the write is in flight")
        const took = yield* closeWithin(scope, "30 seconds")
        assert.deepStrictEqual(running(), [], "statements of the store still running after its close")
        // the driver's drain bound (5 s); a busy machine is given 3 s more
        assert.isBelow(took, 8000)
        const exit = yield* Fiber.await(write).pipe(Effect.timeoutOption("1 second"))
        assert.isTrue(exit._tag === "Some", "the write's caller still waits after the store's close")
        const error = exit._tag === "Some" && Exit.isFailure(exit.value) ? Cause.squash(exit.value.cause) : undefined
        assert.instanceOf(error, StoreError)
        assert.match((error as StoreError).message, /close cut it in flight/)
      }).pipe(Effect.scoped), { timeout: 90_000 })
  })
}

/**
 * An interrupted write on a live server: when its caller returns, it has committed, or never will.
 * Each write waits on a lock another session holds (`LOCK TABLE ... IN EXCLUSIVE MODE`: reads go
 * on, writes wait); its caller is interrupted; the lock is released; whatever the write would have
 * changed is looked at after every statement of the schema has ended.
 */
const underLock = <A>(
  clientOptions: { readonly multiplex: boolean },
  lock: (schema: string) => string,
  setup: (store: Store) => Effect.Effect<A, unknown>,
  write: (store: Store, a: A) => Effect.Effect<unknown, unknown>,
  landed: (store: Store, a: A) => Effect.Effect<boolean, unknown>
) =>
  Effect.gen(function*() {
    const { schema, store } = yield* ownClientStore(clientOptions)
    const a = yield* setup(store)
    const locker = yield* lockSession
    yield* locker.open(lock(`"${schema}"`))
    const fiber = yield* Effect.forkDetach(write(store, a))
    yield* blockedBy(locker.pid)
    yield* Fiber.interrupt(fiber)
    // the caller has returned: release the lock, and wait for every statement of the schema to end
    yield* locker.release
    yield* schemaIdle(schema)
    return yield* landed(store, a)
  }).pipe(Effect.scoped)

/** A store of a fresh schema on a client of the test's own (`layerClient`'s way), closed with the scope. */
const ownClientStore = (clientOptions: { readonly maxConnections?: number; readonly multiplex?: boolean | undefined }) =>
  Effect.gen(function*() {
    const schema = freshSchema()
    const sql = yield* PgClient.make({ url: Redacted.make(url!), maxConnections: 2, ...clientOptions }).pipe(
      Effect.provideServiceEffect(Reactivity.Reactivity, Reactivity.make)
    )
    return { schema, store: yield* Postgres.makeWith(sql, yield* Postgres.clientOptions({ schema })) }
  })

const tableLock = (table: string) => (S: string) => `LOCK TABLE ${S}.${table} IN EXCLUSIVE MODE`
const rowLock = (id: string) => (S: string) => `SELECT 1 FROM ${S}.wp_job WHERE id = '${id}' FOR UPDATE`

/** A job of queue `queue` claimed by `store`: its id and its token. */
const claimed = (store: Store, queue: string) =>
  Effect.gen(function*() {
    const { id } = yield* store.enqueue(newJob(queue))
    const { claims } = yield* store.claim({ queues: [queue], tasks: ["Echo"], limit: 1, lease: 60_000 })
    return { id, token: claims[0]!.token }
  })

if (enabled) {
  for (const multiplex of [false, true]) {
    describe(`an interrupted Postgres write waiting on a lock (${multiplex ? "the caller's multiplexed client, multiplex: true" : "a client of one statement per connection"}): when its caller returns it never commits after, hostile`, () => {
      // a multiplexed client (the caller's own, layerClient): the driver cannot cancel an unpinned
      // statement of one (it could be another fiber's), so the interrupted caller returned at once
      // and its insert committed once the lock was released
      it.live("enqueue", () =>
        Effect.gen(function*() {
          const landed = yield* underLock(
            { multiplex },
            tableLock("wp_job"),
            () => Effect.void,
            (store) => store.enqueue(newJob("locked", { id: "late" })),
            (store) => Effect.map(store.get("late"), (row) => row !== undefined)
          )
          assert.isFalse(landed, "the enqueue committed after its caller returned")
        }), 60_000)

      it.live("enqueueAll of 12,000 jobs (3 INSERTs of one transaction)", () =>
        Effect.gen(function*() {
          const landed = yield* underLock(
            { multiplex },
            tableLock("wp_job"),
            () => Effect.void,
            (store) => store.enqueueAll(Array.from({ length: 12_000 }, () => newJob("many"))),
            (store) => Effect.map(store.counts("many"), (counts) => counts.waiting > 0)
          )
          assert.isFalse(landed, "the enqueueAll committed after its caller returned")
        }), 60_000)

      it.live("cancel of a queued job whose row is locked", () =>
        Effect.gen(function*() {
          const landed = yield* underLock(
            { multiplex },
            rowLock("victim"),
            (store) => store.enqueue(newJob("locked", { id: "victim" })),
            (store) => store.cancel("victim"),
            (store) => Effect.map(store.get("victim"), (row) => row!.state !== "queued")
          )
          assert.isFalse(landed, "the cancel committed after its caller returned")
        }), 60_000)

      it.live("progress of a running job, its table locked", () =>
        Effect.gen(function*() {
          const landed = yield* underLock(
            { multiplex },
            tableLock("wp_job"),
            (store) => claimed(store, "progressing"),
            (store, { token }) => store.progress(token, "42"),
            (store, { id }) => Effect.map(store.get(id), (row) => row!.progress !== null)
          )
          assert.isFalse(landed, "the progress committed after its caller returned")
        }), 60_000)

      // the exception the Store states: a final settle is batched (its statement is the settle
      // writer's, others' too), and one given up (a stopping consumer's, past its grace) is better
      // written than its job run again (durable-closing-hostile holds that)
      it.live("a final settle of a running job whose row is locked is written all the same (the stated exception)", () =>
        Effect.gen(function*() {
          const landed = yield* underLock(
            { multiplex },
            tableLock("wp_job"),
            (store) => claimed(store, "settling"),
            (store, { token }) => store.settle(token, { _tag: "Final", state: "succeeded", exit: "{}" }),
            (store, { id }) => Effect.map(store.get(id), (row) => row!.state === "succeeded")
          )
          assert.isTrue(landed, "the settle given up was not written")
        }), 60_000)

      it.live("configure: pause, and a rate limit", () =>
        Effect.gen(function*() {
          const landed = yield* underLock(
            { multiplex },
            tableLock("wp_queue"),
            (store) => store.configure("cfg", { paused: false }),
            (store) => store.configure("cfg", { paused: true, rateLimit: { limit: 3, interval: 1000 } }),
            (store) => Effect.map(store.counts("cfg"), (counts) => counts.paused)
          )
          assert.isFalse(landed, "the configure committed after its caller returned")
        }), 60_000)
    })
  }
}

if (enabled) {
  describe("interrupted Postgres writes in bulk and at the commit, hostile", () => {
    // each interrupted write waits for its own cancel: a thousand given up at once on a pool of 2
    // must not wait one after another (N × CANCEL_SETTLE), nor leave the pool without sessions
    for (const pool of [2, 10]) it.live(`1,000 enqueues waiting on a lock (a pool of ${pool}: as many cancel requests at once) interrupted at once: they return together, none lands, and the pool works after`, () =>
      Effect.gen(function*() {
        const { schema, store } = yield* ownClientStore({ maxConnections: pool })
        yield* store.configure("bulk", { paused: false })
        const locker = yield* lockSession
        yield* locker.open(`LOCK TABLE "${schema}".wp_job IN EXCLUSIVE MODE`)
        const fibers = yield* Effect.forEach(
          Array.from({ length: 1000 }, (_, i) => i),
          (i) => Effect.forkDetach(store.enqueue(newJob("bulk", { id: `bulk-${i}` }))),
          { concurrency: "unbounded" }
        )
        yield* blockedBy(locker.pid, pool).pipe(Effect.timeout("20 seconds"))
        const from = Date.now()
        yield* Fiber.interruptAll(fibers)
        const took = Date.now() - from
        // one after another they would take up to 1,000 × CANCEL_SETTLE: 10 of it is generous on a loaded machine
        assert.isBelow(took, Postgres.CANCEL_SETTLE * 10, `1,000 interrupted writes returned in ${took} ms`)
        yield* locker.release
        yield* schemaIdle(schema)
        assert.strictEqual((yield* store.counts("bulk")).waiting, 0, "interrupted enqueues landed")
        // the pool recovered: writes work
        yield* Effect.forEach(Array.from({ length: 20 }, (_, i) => i), (i) => store.enqueue(newJob("bulk", { id: `after-${i}` })), {
          concurrency: 10
        }).pipe(Effect.timeout("20 seconds"))
        assert.strictEqual((yield* store.counts("bulk")).waiting, 20)
      }).pipe(Effect.scoped), 120_000)

    // interrupted at every moment of its round trip, the commit's too (a statement that takes tens
    // of ms: the driver's cancel goes out 10 ms after the interruption, and races the commit): it
    // lands after its caller returned only if it had when it returned, and whole or not at all
    it.live("an enqueueAll of 3,000 jobs interrupted at every moment of its round trip: it lands after its caller returned only if it had when it returned", () =>
      Effect.gen(function*() {
        const { store } = yield* ownClientStore({})
        const waiting = (queue: string) => Effect.map(store.counts(queue), (counts) => counts.waiting)
        // how long one takes here (a busy machine's too): the interruptions spread over 1.2 times that
        const from = Date.now()
        yield* store.enqueueAll(Array.from({ length: 3000 }, () => newJob("measure")))
        const step = Math.max(1, Math.round((Date.now() - from) * 1.2 / 40))
        const outcomes: Array<string> = []
        for (let i = 0; i < 40; i++) {
          const queue = `race-${i}`
          const fiber = yield* Effect.forkDetach(store.enqueueAll(Array.from({ length: 3000 }, () => newJob(queue))))
          yield* Effect.sleep(`${i * step} millis`)
          yield* Fiber.interrupt(fiber)
          const atReturn = yield* waiting(queue)
          yield* Effect.sleep("50 millis")
          const after = yield* waiting(queue)
          outcomes.push(`${i * step} ms: ${atReturn} then ${after}`)
          assert.include([0, 3000], atReturn, outcomes.join("; "))
          assert.strictEqual(after, atReturn, `landed after its caller returned: ${outcomes.join("; ")}`)
        }
      }).pipe(Effect.scoped), 120_000)
  })
}

if (enabled) {
  for (const multiplex of [false, true]) {
    describe(`the store closed while a write waits on a lock, its caller still waiting (${multiplex ? "multiplex: true" : "one statement per connection"}), hostile`, () => {
      it.live("the close ends promptly, the caller fails with StoreError (cut), and the write does not land once the lock is let go", () =>
        Effect.gen(function*() {
          const schema = freshSchema()
          const sql = yield* PgClient.make({ url: Redacted.make(url!), maxConnections: 2, multiplex }).pipe(
            Effect.provideServiceEffect(Reactivity.Reactivity, Reactivity.make)
          )
          // the store in a scope of its own, the client in the test's (the caller's client outlives the store)
          const scope = yield* Scope.make()
          const store = yield* Postgres.makeWith(sql, yield* Postgres.clientOptions({ schema })).pipe(Scope.provide(scope))
          yield* store.configure("cut", { paused: false })
          const locker = yield* lockSession
          yield* locker.open(`LOCK TABLE "${schema}".wp_job IN EXCLUSIVE MODE`)
          const write = yield* Effect.forkDetach(store.enqueue(newJob("cut", { id: "cut" })))
          yield* blockedBy(locker.pid)
          const took = yield* closeWithin(scope, "20 seconds")
          assert.isBelow(took, 3000, "the close waited for the lock")
          const exit = yield* Fiber.await(write).pipe(Effect.timeoutOption("2 seconds"))
          assert.isTrue(exit._tag === "Some", "the write's caller still waits after the store's close")
          const error = exit._tag === "Some" && Exit.isFailure(exit.value) ? Cause.squash(exit.value.cause) : undefined
          assert.instanceOf(error, StoreError)
          yield* locker.release
          yield* schemaIdle(schema)
          const rows = yield* Effect.promise(() =>
            admin((sql) => sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql.literal(`"${schema}"`)}.wp_job WHERE id = 'cut'`)
          )
          assert.strictEqual(rows[0]!.n, 0, "the cut write landed after the store's close")
        }).pipe(Effect.scoped), 60_000)
    })
  }
}
