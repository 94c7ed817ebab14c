/**
 * Hostile tests of the Postgres store's per-queue NOTIFY channels and its listener: wake-ups that
 * could be lost (a consumer that starts waiting as another instance enqueues, a delayed job heard
 * by a consumer that started after it, many queues, odd queue names, schema names at the
 * identifier limit, a consumer of two on one queue stopping, the listener's connection killed).
 * Every consumer polls once an hour: only a NOTIFY (or the listener's look after its LISTEN) can
 * start a job within the test's time.
 */
import { assert, describe, it } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Cause, Deferred, Effect, Exit, Fiber, Latch, Layer, Logger, Option, Queue, Redacted, Schedule, Scope, Tracer } from "effect"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as Net from "node:net"
import { TestClock } from "effect/testing"
import { StoreError } from "../src/DurableError.ts"
import * as JobStore from "../src/JobStore.ts"
import * as JobQueue from "../src/JobQueue.ts"
import type { Settled, Store } from "../src/internal/store/model.ts"
import * as Postgres from "../src/internal/store/postgres.ts"
import * as PgJobStore from "../src/PgJobStore.ts"
import * as Task from "../src/Task.ts"
import { Echo, newJob } from "./durable/conformance.ts"
import { admin, appClient, backToVersion6, blockedBy, enabled, freeze, freshSchema, genericPlan, listenBackends, listeners, lockSession, lockWaitersOn, ownServer, testLayer, url } from "./durable/postgres.ts"
import * as pgServer from "./durable/pgserver.ts"
import { closeWithin, recordingTracer, waitFor } from "./helpers.ts"

const HOUR = "1 hour"
const double = Task.handle(Echo, ({ n }) => Effect.succeed(n * 2))

/** A schema name of exactly 63 bytes (the identifier limit), of its own. */
const longSchema = () => {
  const base = freshSchema()
  const schema = (base + "_" + "x".repeat(63)).slice(0, 63)
  // dropped with the file's others: freshSchema's list holds `base`; drop this one too
  afterDrop.push(schema)
  return schema
}
const afterDrop: Array<string> = []

if (!enabled) describe.skip("the Postgres store, hostile (WORKPOOL_PG_URL is not set)", () => {})
else {
  const layer = (schema: string) => PgJobStore.layer({ url: url!, schema, maxConnections: 2 })

  describe("the Postgres store's wake-ups, hostile", () => {
    it.live("a schema name of 63 bytes: cancels reach the running job and another instance's job wakes an idle consumer", () =>
      Effect.gen(function*() {
        const schema = longSchema()
        const error = yield* Effect.gen(function*() {
          const started = yield* Latch.make(false)
          yield* JobQueue.consume({
            handlers: [Task.handle(Echo, ({ n }) => n === 0 ? Effect.andThen(started.open, Effect.never) : Effect.succeed(n * 2))],
            concurrency: 2,
            poll: HOUR,
            lease: "1 hour"
          })
          const running = yield* JobQueue.enqueue(Echo, { n: 0 })
          yield* started.await
          // another instance's job: only the queue's NOTIFY starts it within the test
          const other = yield* Effect.provide(JobQueue.enqueue(Echo, { n: 21 }), layer(schema))
          assert.strictEqual(yield* JobQueue.await(Echo, other.id), 42)
          assert.strictEqual(yield* Effect.provide(JobQueue.cancel(running.id), layer(schema)), "requested")
          return yield* Effect.flip(running.await)
        }).pipe(Effect.scoped, Effect.provide(layer(schema)), Effect.timeout("30 seconds"))
        assert.strictEqual(error._tag, "JobCancelled")
      }).pipe(Effect.ensuring(Effect.promise(() =>
        admin((sql) => Effect.forEach(afterDrop, (s) => sql.unsafe(`DROP SCHEMA IF EXISTS "${s}" CASCADE`).raw, { discard: true }))
      ))), { timeout: 60_000 })

    // (a lone surrogate is refused: test/bad-input-hostile.test.ts)
    it.live("queue names with quotes, backslashes, unicode, a surrogate pair and 1,000 bytes: another instance's jobs wake their idle consumers", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const queues = [
          `it's "quoted"; DROP TABLE x;--`,
          "back\\slash\\",
          "ünïcødé 🚀 キュー",
          "q".repeat(996) + "🚀",
          "é".repeat(500),
          "$$ $1 %s \\x00"
        ]
        const results = yield* Effect.gen(function*() {
          for (const queue of queues) yield* JobQueue.consume({ queues: [queue], handlers: [double], concurrency: 1, poll: HOUR })
          return yield* Effect.forEach(queues, (queue, n) =>
            Effect.flatMap(
              Effect.provide(JobQueue.enqueue(Echo, { n }, { queue }), layer(schema)),
              (job) => JobQueue.await(Echo, job.id)
            ), { concurrency: "unbounded" })
        }).pipe(Effect.scoped, Effect.provide(layer(schema)), Effect.timeout("30 seconds"))
        assert.deepStrictEqual(results, queues.map((_, n) => n * 2))
      }), { timeout: 60_000 })

    it.live("120 queues on one store instance, each with an idle consumer: a job of each from another instance starts (LISTENs issued before or after its NOTIFY)", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const queues = Array.from({ length: 120 }, (_, i) => `q${i}`)
        const results = yield* Effect.gen(function*() {
          // one consumer on all of them and one per queue: both shapes of waiting on many channels
          yield* JobQueue.consume({ queues: queues.slice(0, 60), handlers: [double], concurrency: 1, poll: HOUR })
          for (const queue of queues.slice(60)) yield* JobQueue.consume({ queues: [queue], handlers: [double], concurrency: 1, poll: HOUR })
          return yield* Effect.forEach(queues, (queue, n) =>
            Effect.flatMap(
              Effect.provide(JobQueue.enqueue(Echo, { n }, { queue }), layer(schema)),
              (job) => JobQueue.await(Echo, job.id)
            ), { concurrency: 8 })
        }).pipe(Effect.scoped, Effect.provide(layer(schema)), Effect.timeout("60 seconds"))
        assert.deepStrictEqual(results, queues.map((_, n) => n * 2))
      }), { timeout: 90_000 })

    it.live("two consumers of one store instance on one queue, one stopped: the other still hears the queue", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const channel = Postgres.queueChannel(schema, "default")
        const result = yield* Effect.gen(function*() {
          yield* JobQueue.consume({ handlers: [double], concurrency: 1, poll: HOUR })
          yield* Effect.scoped(Effect.gen(function*() {
            yield* JobQueue.consume({ handlers: [double], concurrency: 1, poll: HOUR })
            const job = yield* Effect.provide(JobQueue.enqueue(Echo, { n: 1 }), layer(schema))
            assert.strictEqual(yield* JobQueue.await(Echo, job.id), 2)
          }))
          // past the linger: had the stopped consumer's end counted for both, the listener would UNLISTEN
          yield* Effect.sleep("1500 millis")
          const rows = yield* listenBackends(channel)
          assert.deepStrictEqual(rows.map((row) => row.query), [`LISTEN "${channel}"`])
          const job = yield* Effect.provide(JobQueue.enqueue(Echo, { n: 21 }), layer(schema))
          return yield* JobQueue.await(Echo, job.id)
        }).pipe(Effect.scoped, Effect.provide(layer(schema)), Effect.timeout("30 seconds"))
        assert.strictEqual(result, 42)
      }), { timeout: 60_000 })

    it.live("a delayed job enqueued by another instance before the consumer started: it starts at its time (the consumer never heard its NOTIFY)", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const result = yield* Effect.gen(function*() {
          const job = yield* Effect.provide(JobQueue.enqueue(Echo, { n: 21 }, { delay: "1500 millis" }), layer(schema))
          yield* JobQueue.consume({ handlers: [double], concurrency: 1, poll: HOUR })
          return yield* JobQueue.await(Echo, job.id)
        }).pipe(Effect.scoped, Effect.provide(layer(schema)), Effect.timeout("30 seconds"))
        assert.strictEqual(result, 42)
      }), { timeout: 60_000 })

    it.live("the listener's connection killed and a job enqueued by another instance before it reconnects: the job starts", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const channel = Postgres.queueChannel(schema, "default")
        const listening = listeners(channel)
        const result = yield* Effect.gen(function*() {
          yield* JobQueue.consume({ handlers: [double], concurrency: 1, poll: HOUR })
          const [killed] = yield* listening.pipe(Effect.filterOrFail((pids) => pids.length === 1), Effect.retry(Schedule.spaced("20 millis")))
          yield* Effect.promise(() => admin((sql) => sql`SELECT pg_terminate_backend(${killed!})`))
          // at once, while nobody listens: the new listener's first look must find it
          const job = yield* Effect.provide(JobQueue.enqueue(Echo, { n: 21 }), layer(schema))
          return yield* JobQueue.await(Echo, job.id)
        }).pipe(Effect.scoped, Effect.provide(layer(schema)), Effect.timeout("30 seconds"))
        assert.strictEqual(result, 42)
      }), { timeout: 60_000 })

    it.live("an UNLISTEN (a paused consumer's queue, after the linger) and the LISTEN again stay on the listener's one connection: no reconnect", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const channel = Postgres.queueChannel(schema, "default")
        const backends = listenBackends(channel)
        const until = (verb: string) =>
          backends.pipe(
            Effect.filterOrFail((rows) => rows.length === 1 && rows[0]!.query.startsWith(verb)),
            Effect.map((rows) => rows[0]!.pid),
            Effect.retry(Schedule.spaced("20 millis"))
          )
        const pids = yield* Effect.gen(function*() {
          const consumer = yield* JobQueue.consume({ handlers: [double], concurrency: 1, poll: HOUR })
          const first = yield* until("LISTEN")
          yield* consumer.pause
          const unlistened = yield* until("UNLISTEN")
          yield* consumer.resume
          const again = yield* until("LISTEN")
          const job = yield* Effect.provide(JobQueue.enqueue(Echo, { n: 21 }), layer(schema))
          assert.strictEqual(yield* JobQueue.await(Echo, job.id), 42)
          return [first, unlistened, again]
        }).pipe(Effect.scoped, Effect.provide(layer(schema)), Effect.timeout("30 seconds"))
        assert.strictEqual(new Set(pids).size, 1, String(pids))
      }), { timeout: 60_000 })

    it.live("paused and resumed at once, again and again (LISTEN, UNLISTEN, LISTEN within the linger): another instance's job still starts", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const result = yield* Effect.gen(function*() {
          const consumer = yield* JobQueue.consume({ handlers: [double], concurrency: 1, poll: HOUR })
          for (let i = 0; i < 20; i++) {
            yield* consumer.pause
            yield* consumer.resume
          }
          const job = yield* Effect.provide(JobQueue.enqueue(Echo, { n: 21 }), layer(schema))
          return yield* JobQueue.await(Echo, job.id)
        }).pipe(Effect.scoped, Effect.provide(layer(schema)), Effect.timeout("30 seconds"))
        assert.strictEqual(result, 42)
      }), { timeout: 60_000 })
  })

  describe("the Postgres store's NOTIFY of a retry or a give-back, hostile", () => {
    it.live("a retry sends 'due:<delay>' and a give-back 'job' on the queue's channel; one that ends its job cancelled (its cancel asked for while it ran) sends none: no job of the queue became claimable, the other processes' idle consumers would look for nothing", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const channel = Postgres.queueChannel(schema, "default")
        const client = yield* PgClient.make({ url: Redacted.make(url!), maxConnections: 2 })
        const notes = yield* client.listen(channel)
        const heard = yield* Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          const out: Array<string> = []
          for (const cancelled of [false, true]) {
            for (const settlement of [{ _tag: "Retry", delay: 5000, exit: "{}" }, { _tag: "Release" }] as const) {
              yield* JobQueue.enqueue(Echo, { n: 1 }, { maxAttempts: 5 })
              const [claim] = (yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 1, lease: 60_000 })).claims
              if (cancelled) assert.strictEqual(yield* store.cancel(claim!.job.id), "requested")
              // what the enqueue sent is heard before the settle (a fence of our own after it)
              yield* client`SELECT pg_notify(${channel}, 'fence')`
              while ((yield* Queue.take(notes)).payload !== "fence") {}
              assert.strictEqual(yield* store.settle(claim!.token, settlement), cancelled ? "cancelled" : true)
              yield* client`SELECT pg_notify(${channel}, 'fence')`
              const payloads: Array<string> = []
              for (let p = (yield* Queue.take(notes)).payload; p !== "fence"; p = (yield* Queue.take(notes)).payload) payloads.push(p)
              out.push(`${cancelled ? "cancelled" : "running"} ${settlement._tag}: ${payloads.join(",")}`)
              assert.strictEqual((yield* store.get(claim!.job.id))!.state, cancelled ? "cancelled" : "queued")
            }
          }
          return out
        }).pipe(Effect.provide(testLayer(schema)))
        assert.deepStrictEqual(heard, ["running Retry: due:5000", "running Release: job", "cancelled Retry: ", "cancelled Release: "])
      }).pipe(Effect.scoped, Effect.provideServiceEffect(Reactivity.Reactivity, Reactivity.make), Effect.timeout("30 seconds")), { timeout: 60_000 })
  })

  describe("the Postgres store's latencies, hostile", () => {
    it.live("settles in transactions open across reads (their xid taken before the first read, or between the reads): each counts once, in the first read after its commit", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const counts = yield* Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          const a = yield* JobQueue.enqueue(Echo, { n: 1 })
          const b = yield* JobQueue.enqueue(Echo, { n: 2 })
          /** What the store's final settle writes, in a transaction held open until `commit`. */
          const settle = (id: string, early: boolean, open: Deferred.Deferred<void>, commit: Deferred.Deferred<void>) =>
            Effect.promise(() => admin((sql) => sql.withTransaction(Effect.gen(function*() {
              // an xid now (before the reads), or only at the settle's write
              if (early) yield* sql`SELECT pg_current_xact_id()::text AS xid`
              yield* Deferred.succeed(open, undefined)
              yield* Deferred.await(commit)
              yield* sql.unsafe(`UPDATE "${schema}".wp_job SET state = 'succeeded', started_at = visible_at + 1,
                finished_at = visible_at + 2, settled_xid = pg_current_xact_id()::text::bigint WHERE id = $1`, [id]).raw
            }))))
          const r0 = yield* store.latencies("default", undefined, 100)
          const openA = yield* Deferred.make<void>()
          const commitA = yield* Deferred.make<void>()
          const fiberA = yield* Effect.forkChild(settle(a.id, true, openA, commitA))
          // the transaction's failure, if any, ends the wait
          yield* Effect.raceFirst(Deferred.await(openA), Fiber.join(fiberA))
          const r1 = yield* store.latencies("default", r0.until, 100)
          // a's xid is in r1's list of transactions in progress; b's comes after r1
          const openB = yield* Deferred.make<void>()
          const commitB = yield* Deferred.make<void>()
          const fiberB = yield* Effect.forkChild(settle(b.id, false, openB, commitB))
          yield* Effect.raceFirst(Deferred.await(openB), Fiber.join(fiberB))
          yield* Deferred.succeed(commitB, undefined)
          yield* Fiber.join(fiberB)
          const r2 = yield* store.latencies("default", r1.until, 100)
          yield* Deferred.succeed(commitA, undefined)
          yield* Fiber.join(fiberA)
          const r3 = yield* store.latencies("default", r2.until, 100)
          const r4 = yield* store.latencies("default", r3.until, 100)
          // a stale cursor (every transaction since the server's start): both, once
          const stale = yield* store.latencies("default", "1:1:", 100)
          return [r1, r2, r3, r4, stale].map((read) => read.jobs.length)
        }).pipe(Effect.scoped, Effect.provide(layer(schema)), Effect.timeout("30 seconds"))
        assert.deepStrictEqual(counts, [0, 1, 1, 0, 2])
      }), { timeout: 60_000 })

    it.effect("a job reaped dead counts once; redriven, retried (not an end), and settled, it counts once more; nothing counts twice", () =>
      Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const claim = Effect.map(store.claim({ queues: ["default"], tasks: ["Echo"], limit: 1, lease: 1000 }), ({ claims }) => claims[0]!)
        const exit = JSON.stringify({ _tag: "Success", value: 0 })
        const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { maxAttempts: 1 })
        const r0 = yield* store.latencies("default", undefined, 10)
        yield* claim
        yield* TestClock.adjust(2000)
        assert.strictEqual(yield* store.reap([0]), 1)
        const r1 = yield* store.latencies("default", r0.until, 10)
        assert.isTrue(yield* store.redrive(job.id))
        const r2 = yield* store.latencies("default", r1.until, 10)
        const first = yield* claim
        yield* TestClock.adjust(100)
        assert.isTrue(yield* store.settle(first.token, { _tag: "Retry", delay: 0, exit }))
        const r3 = yield* store.latencies("default", r2.until, 10)
        const second = yield* claim
        yield* TestClock.adjust(100)
        assert.isTrue(yield* store.settle(second.token, { _tag: "Final", state: "succeeded", exit }))
        const r4 = yield* store.latencies("default", r3.until, 10)
        const r5 = yield* store.latencies("default", r4.until, 10)
        assert.deepStrictEqual([r1, r2, r3, r4, r5].map((read) => read.jobs.length), [1, 0, 0, 1, 0])
        assert.deepStrictEqual(r4.jobs, [{ wait: 0, run: 100 }], "the last attempt: visible again at the retry, claimed at once")
        assert.strictEqual((yield* store.latencies("default", r0.until, 10)).jobs.length, 1, "the reaped end was overwritten by the last one")
      }).pipe(Effect.provide(testLayer())), { timeout: 60_000 })

    it.live("cursors the store cannot have made fail typed (StoreError), not as defects; a cursor from another schema only says where the server stood", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const other = freshSchema()
        yield* Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          for (const bad of ["5:3:", "3:5:9", "99999999999999999999:99999999999999999999:", "x", ""]) {
            const error = yield* Effect.flip(store.latencies("default", bad, 10))
            assert.strictEqual(error._tag, "StoreError", `${bad}: ${JSON.stringify(error)}`)
          }
          const foreign = yield* Effect.provide(Effect.flatMap(JobStore.JobStore, (s) => s.latencies("default", undefined, 10)), layer(other))
          const job = yield* JobQueue.enqueue(Echo, { n: 1 })
          yield* JobQueue.consume({ handlers: [double], concurrency: 1 })
          yield* job.await
          assert.strictEqual((yield* store.latencies("default", foreign.until, 10)).jobs.length, 1)
        }).pipe(Effect.scoped, Effect.provide(layer(schema)), Effect.timeout("30 seconds"))
      }), { timeout: 60_000 })

    it.live("a chain of reads over a live drain (two instances' consumers, the reads from a third): every end counted exactly once", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const N = 400
        const total = yield* Effect.gen(function*() {
          // a store instance of its own for the reads, one for the second consumer
          const reader = yield* Effect.provide(JobStore.JobStore, yield* Layer.build(layer(schema)))
          const second = yield* Layer.build(layer(schema))
          let cursor = (yield* reader.latencies("default", undefined, N)).until
          let seen = 0
          const read = Effect.map(Effect.suspend(() => reader.latencies("default", cursor, N)), (r) => {
            cursor = r.until
            seen += r.jobs.length
          })
          const drain = Effect.gen(function*() {
            yield* JobQueue.consume({ handlers: [double], concurrency: 4, poll: "50 millis" })
            yield* Effect.provide(JobQueue.consume({ handlers: [double], concurrency: 4, poll: "50 millis" }), second)
            const jobs = yield* Effect.forEach(Array.from({ length: N }, (_, n) => n), (n) => JobQueue.enqueue(Echo, { n }), { concurrency: 8 })
            yield* Effect.forEach(jobs, (job) => job.await, { concurrency: 16, discard: true })
          }).pipe(Effect.scoped)
          const drained = yield* Effect.forkChild(drain)
          // reads as fast as they come, while the settles commit
          while (drained.pollUnsafe() === undefined) yield* read
          yield* Fiber.join(drained)
          yield* read
          return seen
        }).pipe(Effect.scoped, Effect.provide(layer(schema)), Effect.timeout("90 seconds"))
        assert.strictEqual(total, N)
      }), { timeout: 120_000 })
  })

  /**
   * The final settle and the heartbeat find their jobs by `lease_token` alone (no `state = 'running'`
   * beside it): sound only while a job has a token exactly while it runs. A trigger logs every row
   * any statement leaves otherwise (a token on a job not running, a running job without one).
   */
  const watchTokens = (S: string) =>
    Effect.promise(() =>
      admin((sql) =>
        Effect.gen(function*() {
          yield* sql.unsafe(`CREATE TABLE ${S}.wp_broken (op text, id text, state text, token boolean)`).raw
          yield* sql.unsafe(`CREATE FUNCTION ${S}.wp_token_check() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF (NEW.lease_token IS NOT NULL) <> (NEW.state = 'running') THEN
                INSERT INTO ${S}.wp_broken VALUES (TG_OP, NEW.id, NEW.state, NEW.lease_token IS NOT NULL);
              END IF;
              RETURN NULL;
            END $$`).raw
          yield* sql.unsafe(`CREATE TRIGGER wp_token_check AFTER INSERT OR UPDATE ON ${S}.wp_job
            FOR EACH ROW EXECUTE FUNCTION ${S}.wp_token_check()`).raw
        })
      )
    )
  /** The rows logged by `watchTokens`, and the rows of the table that break the invariant now. */
  const brokenTokens = (S: string) =>
    Effect.promise(() =>
      admin((sql) =>
        Effect.all([
          sql<{ op: string; id: string; state: string; token: boolean }>`SELECT * FROM ${sql.literal(S)}.wp_broken`,
          sql<{ id: string; state: string }>`SELECT id, state FROM ${sql.literal(S)}.wp_job
            WHERE (lease_token IS NOT NULL) <> (state = 'running')`
        ])
      )
    )

  describe("the Postgres store's lease-token fence, hostile", () => {
    it.effect("a job has a lease token exactly while it runs, after every statement that writes state or token: both claims, final settles alone and carried, retry, release, reap to queued/dead/cancelled, cancels, redrive, purge; stale tokens write nothing", () => {
      const schema = freshSchema()
      const S = `"${schema}"`
      const LEASE = 1000
      return Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        yield* watchTokens(S)
        const exit = JSON.stringify({ _tag: "Success", value: 0 })
        const request = { queues: ["default"], tasks: ["Echo"], lease: LEASE }
        const claim = (limit: number) => Effect.map(store.claim({ ...request, limit }), ({ claims }) => claims)
        const ids: Record<string, string> = {}
        for (const [name, n, maxAttempts] of [["fin", 1, 3], ["retry", 2, 3], ["rel", 3, 3], ["cancelRun", 4, 3], ["dead", 5, 1], ["back", 6, 3], ["cancelQ", 7, 3]] as const) {
          ids[name] = (yield* JobQueue.enqueue(Echo, { n }, { maxAttempts })).id
        }
        ids.delayed = (yield* JobQueue.enqueue(Echo, { n: 8 }, { delay: "10 seconds" })).id
        ids.dedup = (yield* JobQueue.enqueue(Echo, { n: 9 }, { dedupKey: "k" })).id
        assert.strictEqual(yield* store.cancel(ids.cancelQ!), "cancelled")
        // the one-statement claim
        const first = yield* claim(6)
        const token: Record<string, string> = {}
        for (const c of first) token[Object.keys(ids).find((name) => ids[name] === c.job.id)!] = c.token
        assert.deepStrictEqual(Object.keys(token).sort(), ["back", "cancelRun", "dead", "fin", "rel", "retry"])
        // a cancel of a running job only flags it
        assert.strictEqual(yield* store.cancel(ids.cancelRun!), "requested")
        assert.deepStrictEqual(yield* store.heartbeat(Object.values(token), LEASE), { lost: [], cancelled: [token.cancelRun!] })
        // the final settle alone (a batch of one), a retry, a release
        assert.isTrue(yield* store.settle(token.fin!, { _tag: "Final", state: "succeeded", exit }))
        assert.isTrue(yield* store.progress(token.retry!, "1"))
        assert.isTrue(yield* store.settle(token.retry!, { _tag: "Retry", delay: 0, exit }))
        assert.isTrue(yield* store.settle(token.rel!, { _tag: "Release" }))
        // the others' leases end: the reaper takes back one (queued), one out of attempts (dead), one cancelled
        yield* TestClock.adjust(LEASE + 1)
        assert.strictEqual(yield* store.reap([0]), 3)
        const reaped = [token.back!, token.dead!, token.cancelRun!]
        // the reaped jobs' consumers, late: their heartbeat hears them lost, their settles write nothing
        assert.deepStrictEqual(yield* store.heartbeat(reaped, LEASE), { lost: reaped, cancelled: [] })
        for (const stale of [...reaped, token.fin!, token.retry!, token.rel!]) {
          assert.isFalse(yield* store.settle(stale, { _tag: "Final", state: "succeeded", exit }), stale)
          assert.isFalse(yield* store.settle(stale, { _tag: "Retry", delay: 0, exit }), stale)
          assert.isFalse(yield* store.settle(stale, { _tag: "Release" }), stale)
          assert.isFalse(yield* store.progress(stale, "2"), stale)
        }
        assert.strictEqual((yield* store.get(ids.cancelRun!))?.state, "cancelled")
        assert.strictEqual((yield* store.get(ids.dead!))?.state, "dead")
        assert.isTrue(yield* store.redrive(ids.dead!))
        // the claim under a rate limit (its own transaction) takes the queued ones: retry, rel, back, dead, dedup
        yield* store.configure("default", { rateLimit: { limit: 100, interval: 60_000 } })
        const limited = yield* claim(10)
        assert.deepStrictEqual(limited.map((c) => c.job.id).sort(), [ids.retry!, ids.rel!, ids.back!, ids.dead!, ids.dedup!].sort())
        yield* store.configure("default", { rateLimit: null })
        // the stale tokens of the jobs claimed again still write nothing
        for (const stale of [token.back!, token.dead!, token.retry!, token.rel!]) {
          assert.isFalse(yield* store.settle(stale, { _tag: "Final", state: "dead", exit }), stale)
        }
        assert.deepStrictEqual((yield* store.heartbeat([token.back!, token.retry!], LEASE)).lost, [token.back!, token.retry!])
        // a final settle carried by a claim (the claim takes the delayed job, now due)
        yield* TestClock.adjust(10_000)
        const byId = new Map(limited.map((c) => [c.job.id, c.token]))
        const [carried, claimed] = yield* Effect.all([
          store.settle(byId.get(ids.retry!)!, { _tag: "Final", state: "succeeded", exit }),
          claim(1)
        ], { concurrency: "unbounded" })
        assert.isTrue(carried)
        assert.deepStrictEqual(claimed.map((c) => c.job.id), [ids.delayed!])
        // a job cancelled while running, settled cancelled by its consumer; the others end as they may
        assert.strictEqual(yield* store.cancel(ids.back!), "requested")
        assert.isTrue(yield* store.settle(byId.get(ids.back!)!, { _tag: "Final", state: "cancelled", exit: null }))
        assert.isFalse((yield* store.get(ids.back!))!.cancelRequested)
        assert.isTrue(yield* store.settle(byId.get(ids.rel!)!, { _tag: "Final", state: "dead", exit }))
        assert.isTrue(yield* store.settle(byId.get(ids.dead!)!, { _tag: "Final", state: "succeeded", exit }))
        assert.isTrue(yield* store.settle(byId.get(ids.dedup!)!, { _tag: "Final", state: "succeeded", exit }))
        assert.isTrue(yield* store.settle(claimed[0]!.token, { _tag: "Final", state: "succeeded", exit }))
        // the carried settle's token, once more: written once
        assert.isFalse(yield* store.settle(byId.get(ids.retry!)!, { _tag: "Final", state: "dead", exit }))
        assert.strictEqual((yield* store.get(ids.retry!))?.state, "succeeded")
        assert.isAbove(yield* store.purge(Number.MAX_SAFE_INTEGER, ["succeeded", "dead", "cancelled"]), 0)
        const [logged, now] = yield* brokenTokens(S)
        assert.deepStrictEqual(logged, [])
        assert.deepStrictEqual(now, [])
      }).pipe(Effect.provide(testLayer(schema)))
    }, { timeout: 60_000 })

    it.effect("a late final settle carried by the very claim that takes its reaped job again writes nothing; a batch naming a token twice, or a job's stale and live tokens, writes the job once, by its live token", () => {
      const schema = freshSchema()
      const S = `"${schema}"`
      const LEASE = 1000
      return Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        yield* watchTokens(S)
        const request = { queues: ["default"], tasks: ["Echo"], limit: 1, lease: LEASE }
        const claim = Effect.map(store.claim(request), ({ claims }) => claims)
        const exit = JSON.stringify({ _tag: "Success", value: 0 })
        const job = yield* JobQueue.enqueue(Echo, { n: 1 })
        const [stale] = yield* claim
        yield* TestClock.adjust(LEASE + 1)
        assert.strictEqual(yield* store.reap([0]), 1)
        // the zombie's settle and the claim that takes the job back: one statement
        const [settled, again] = yield* Effect.all([
          store.settle(stale!.token, { _tag: "Final", state: "dead", exit }),
          claim
        ], { concurrency: "unbounded" })
        assert.isFalse(settled)
        assert.deepStrictEqual(again.map((c) => c.job.id), [job.id])
        const live = again[0]!.token
        assert.notStrictEqual(live, stale!.token)
        assert.deepStrictEqual(yield* store.heartbeat([stale!.token, live], LEASE), { lost: [stale!.token], cancelled: [] })
        const row = yield* store.get(job.id)
        assert.deepStrictEqual([row?.state, row?.attempts], ["running", 2])
        // one batch: the stale token first, the live one, the live one again with another outcome
        const batch = (finals: ReadonlyArray<Postgres.FinalSettle>) =>
          Effect.promise(() => admin((sql) => Postgres.settleStatement(sql, sql.literal(S), finals, 1)))
        const written = yield* batch([
          { token: stale!.token, state: "dead", exit: null },
          { token: live, state: "succeeded", exit },
          { token: live, state: "succeeded", exit }
        ])
        assert.deepStrictEqual(written.map((w) => w.token), [live])
        assert.strictEqual((yield* store.get(job.id))?.state, "succeeded")
        assert.deepStrictEqual(yield* batch([{ token: live, state: "dead", exit: null }, { token: stale!.token, state: "dead", exit: null }]), [])
        assert.strictEqual((yield* store.get(job.id))?.state, "succeeded")
        assert.deepStrictEqual(yield* store.heartbeat([live, live], LEASE), { lost: [live, live], cancelled: [] })
        const [logged, now] = yield* brokenTokens(S)
        assert.deepStrictEqual(logged, [])
        assert.deepStrictEqual(now, [])
      }).pipe(Effect.provide(testLayer(schema)))
    }, { timeout: 60_000 })

    it.live("the heartbeat and the final settles (alone, carried by a claim) find their jobs through wp_job_token, never among all running jobs, however stale the statistics: 20,000 running jobs never analyzed, or analyzed while they were all queued without tokens", () =>
      Effect.gen(function*() {
        const tokens = ["token-1", "token-2", "token-3"]
        const finals = tokens.map((token) => ({ token, state: "succeeded", exit: "{}" }))
        for (const analyzedQueued of [false, true]) {
          const schema = freshSchema()
          const S = `"${schema}"`
          yield* Effect.provide(JobQueue.stats("default"), layer(schema))
          const running = `'running', lease_token = 'token-' || seq, lease_until = 60000, started_at = 0`
          yield* Effect.promise(() =>
            admin((sql) =>
              Effect.gen(function*() {
                yield* sql.unsafe(`ALTER TABLE ${S}.wp_job SET (autovacuum_enabled = false)`).raw
                yield* sql.unsafe(`INSERT INTO ${S}.wp_job (id, queue, task, payload, priority, rank, state, max_attempts,
                  timeout_ms, created_at, visible_at) SELECT 'job-' || i, 'default', 'Echo', '{}', 0, 0, 'queued', 1, 0, 0, 0
                  FROM generate_series(1, 20000) i`).raw
                // statistics that say no job runs and no job has a token (a drain's claims after a bulk enqueue)
                if (analyzedQueued) yield* sql.unsafe(`ANALYZE ${S}.wp_job`).raw
                yield* sql.unsafe(`UPDATE ${S}.wp_job SET state = ${running}`).raw
              })
            )
          )
          const plans = {
            heartbeat: yield* genericPlan((sql) => Postgres.heartbeatStatement(sql, sql.literal(S), tokens, 1000, 1)),
            settle: yield* genericPlan((sql) => Postgres.settleStatement(sql, sql.literal(S), finals, 1, (queue) => sql`pg_notify('plan', ${queue})`)),
            carried: yield* genericPlan((sql) =>
              Postgres.claimStatement(sql, sql.literal(S), { queues: ["default"], tasks: ["Echo"], limit: 4, lease: 1000 }, 1, finals, (queue) =>
                sql`pg_notify('plan', ${queue})`)
            )
          }
          for (const [name, text] of Object.entries(plans)) {
            if (process.env.SHOW_PLAN) console.log(name, analyzedQueued, text)
            assert.match(text, /Index Scan using wp_job_token|Bitmap Index Scan on wp_job_token/, `${name}, analyzed while queued: ${analyzedQueued}\n${text}`)
            assert.notMatch(text, /wp_job_running|Seq Scan on wp_job/, `${name}, analyzed while queued: ${analyzedQueued}\n${text}`)
          }
        }
      }), { timeout: 60_000 })

    it.effect("claims, final settles (alone and carried), retries, releases, heartbeats, reaps, cancels and redrives racing on two store instances: every settle that says written wrote once, by the token that held the running job; none that says not wrote anything", () => {
      const schema = freshSchema()
      const S = `"${schema}"`
      const LEASE = 1000
      const N = 150
      // a seeded choice of outcomes: the interleaving is the server's, the checks hold for any
      let seed = 19
      const random = () => {
        seed = (seed * 1103515245 + 12345) % 2147483648
        return seed / 2147483648
      }
      return Effect.gen(function*() {
        const first = yield* JobStore.JobStore
        const second = yield* Effect.provide(JobStore.JobStore, yield* Layer.build(testLayer(schema)))
        yield* watchTokens(S)
        // every update of a job: before and after
        yield* Effect.promise(() =>
          admin((sql) =>
            Effect.gen(function*() {
              yield* sql.unsafe(`CREATE TABLE ${S}.wp_audit (id text, old_state text, new_state text, old_token text,
                new_token text, old_exit text, new_exit text, old_attempts int, new_attempts int)`).raw
              yield* sql.unsafe(`CREATE FUNCTION ${S}.wp_audit() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                  INSERT INTO ${S}.wp_audit VALUES (NEW.id, OLD.state, NEW.state, OLD.lease_token, NEW.lease_token,
                    OLD.exit, NEW.exit, OLD.attempts, NEW.attempts);
                  RETURN NULL;
                END $$`).raw
              yield* sql.unsafe(`CREATE TRIGGER wp_audit AFTER UPDATE ON ${S}.wp_job FOR EACH ROW EXECUTE FUNCTION ${S}.wp_audit()`).raw
            })
          )
        )
        const ids: Array<string> = []
        for (let n = 0; n < N; n++) ids.push((yield* JobQueue.enqueue(Echo, { n }, { maxAttempts: 4 })).id)
        const settles: Array<{ token: string; kind: "final" | "retry" | "release"; written: boolean; said: Settled }> = []
        const held = new Set<string>()
        let done = false
        const finished = yield* Latch.make(false)
        const worker = (store: JobStore.JobStore["Service"], limit: number) =>
          Effect.gen(function*() {
            while (!done) {
              const { claims } = yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit, lease: LEASE })
              if (claims.length === 0) {
                // until the clock moves on, or the end
                yield* Effect.raceFirst(Effect.sleep(1), finished.await)
                continue
              }
              for (const claim of claims) held.add(claim.token)
              yield* Effect.forEach(claims, (claim) => {
                const r = random()
                const kind = r < 0.5 ? "final" as const : r < 0.75 ? "retry" as const : "release" as const
                const exit = `settle:${claim.token}`
                const settlement = kind === "final"
                  ? { _tag: "Final" as const, state: r < 0.4 ? "succeeded" as const : "dead" as const, exit }
                  : kind === "retry"
                  ? { _tag: "Retry" as const, delay: 0, exit }
                  : { _tag: "Release" as const }
                return Effect.map(store.settle(claim.token, settlement), (written) => {
                  held.delete(claim.token)
                  settles.push({ token: claim.token, kind, written: written !== false, said: written })
                })
              }, { concurrency: "unbounded", discard: true })
            }
          })
        let redrives = 0
        const clock = Effect.gen(function*() {
          while (true) {
            const tokens = [...held]
            const [beat] = yield* Effect.all([
              (random() < 0.5 ? first : second).heartbeat(tokens, LEASE),
              (random() < 0.5 ? first : second).cancel(ids[Math.floor(random() * N)]!)
            ], { concurrency: "unbounded" })
            assert.isTrue(beat.lost.every((token) => tokens.includes(token)))
            if (random() < 0.6) {
              // the leases of the jobs being worked on end now: the reapers race their settles
              yield* TestClock.adjust(LEASE + 1)
              yield* Effect.all([first.reap([0]), second.reap([0])], { concurrency: "unbounded" })
            } else yield* TestClock.adjust(1)
            const open = yield* first.list({ queue: "default", states: ["queued", "running", "dead"], limit: N })
            const dead = open.filter((job) => job.state === "dead")
            if (dead.length > 0 && redrives < 20) {
              redrives++
              yield* second.redrive(dead[0]!.id)
            }
            if (open.every((job) => job.state === "dead")) break
          }
          done = true
          yield* finished.open
        })
        yield* Effect.all([worker(first, 1), worker(first, 3), worker(second, 2), worker(second, 1), clock], {
          concurrency: "unbounded",
          discard: true
        })
        const [audit, [logged, now]] = yield* Effect.all([
          Effect.promise(() =>
            admin((sql) =>
              sql<{ id: string; old_state: string; new_state: string; old_token: string | null; new_token: string | null; old_exit: string | null; new_exit: string | null; old_attempts: number; new_attempts: number }>`
                SELECT * FROM ${sql.literal(S)}.wp_audit`
            )
          ),
          brokenTokens(S)
        ])
        assert.deepStrictEqual(logged, [])
        assert.deepStrictEqual(now, [])
        // a settle's write: its exit names its token; the row was running under that very token
        const writes = audit.filter((row) => row.new_exit !== row.old_exit && row.new_exit?.startsWith("settle:"))
        assert.deepStrictEqual(writes.filter((row) => row.old_state !== "running" || row.new_exit !== `settle:${row.old_token}`), [])
        const releases = audit.filter((row) => row.new_state === "queued" && row.old_token !== null && row.new_attempts === row.old_attempts - 1)
        // a retry or a release of a job whose cancel was asked for while it ran ends it cancelled (as a
        // reaper ends it): its row leaves running under that token for cancelled, no exit written
        const cancels = audit.filter((row) => row.old_state === "running" && row.new_state === "cancelled" && row.old_token !== null)
        const byToken = (rows: ReadonlyArray<typeof audit[number]>, token: string) => rows.filter((row) => row.old_token === token).length
        const cancelledBy = (kind: string, token: string, written: boolean) =>
          written && kind !== "final" && byToken(kind === "release" ? releases : writes, token) === 0 && byToken(cancels, token) === 1
        const wrong = settles.filter(({ kind, token, written }) =>
          (kind === "release" ? byToken(releases, token) : byToken(writes, token)) !== (written ? 1 : 0) &&
          !cancelledBy(kind, token, written)
        )
        assert.deepStrictEqual(wrong, [])
        // and each settle that ended its job cancelled said so (a consumer tells Cancelled), no other
        assert.deepStrictEqual(settles.filter(({ kind, token, written, said }) => (said === "cancelled") !== cancelledBy(kind, token, written)), [])
        const cancelledBySettle = settles.filter(({ kind, token, written }) => cancelledBy(kind, token, written)).length
        assert.strictEqual(writes.length + releases.length + cancelledBySettle, settles.filter((settle) => settle.written).length)
        // the races happened: settles that lost their job to a reaper, and settles that won
        assert.isAbove(settles.filter((settle) => !settle.written).length, 0)
        assert.isAbove(settles.filter((settle) => settle.written).length, 0)
      }).pipe(Effect.provide(testLayer(schema)))
    }, { timeout: 120_000 })

    // the claim locked the jobs it took (SKIP LOCKED) before its carried settles waited for theirs:
    // a heartbeat whose snapshot came before a reap held a settled job and waited for the reaped one
    // (by its old token), which the claim had just taken: "deadlock detected", Postgres failing one
    // of them after deadlock_timeout (a CI run of the racing test above, 'settle failed')
    // both forms of the claim's statement: one queue, and several (one index scan per queue, the
    // one-time filter above their join)
    for (const queues of [["default"], ["default", "other"]]) it.effect(`a claim of ${queues.length} queue(s) carrying a settle, racing a heartbeat that holds the settled job and waits for a reaped one the claim takes: both end, no deadlock`, () => {
      const schema = freshSchema()
      const S = `"${schema}"`
      return Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const request = { queues, tasks: ["Echo"], limit: 2, lease: 60_000 }
        // in seq order: y and m held for a minute, x for a second (reaped)
        for (let n = 0; n < 3; n++) yield* JobQueue.enqueue(Echo, { n })
        const [y, m] = (yield* store.claim(request)).claims
        const [x] = (yield* store.claim({ ...request, limit: 1, lease: 1000 })).claims
        // m's row held by another transaction: the heartbeat locks y, then waits at m
        const locker = yield* lockSession
        yield* locker.hold(S, m!.job.id)
        const own = yield* appClient(url!, 1)
        const other = yield* appClient(url!, 1)
        const beating = (yield* own<{ pid: number }>`SELECT pg_backend_pid() AS pid`)[0]!.pid
        const now = 1001
        yield* TestClock.adjust(now)
        const beat = yield* Effect.forkChild(Effect.exit(Postgres.heartbeatStatement(own, own.literal(S), [y!.token, m!.token, x!.token], 60_000, now)))
        yield* blockedBy(locker.pid)
        // x's lease has ended: reaped (SKIP LOCKED: x is not locked), queued again
        assert.strictEqual(yield* store.reap([0]), 1)
        // the claim carries y's final settle: y is the heartbeat's, so the claim waits for it
        const claim = yield* Effect.forkChild(Effect.exit(
          Postgres.claimStatement(other, other.literal(S), request, now, [{ token: y!.token, state: "succeeded", exit: null }])
        ))
        yield* blockedBy(beating)
        yield* locker.release
        const [beaten, claimed] = [yield* Fiber.join(beat), yield* Fiber.join(claim)]
        assert.isTrue(Exit.isSuccess(beaten), String(beaten))
        assert.isTrue(Exit.isSuccess(claimed), String(claimed))
        if (Exit.isSuccess(beaten) && Exit.isSuccess(claimed)) {
          // the heartbeat renewed y (settled after it) and m; x's old token holds nothing
          assert.deepStrictEqual(beaten.value.map((row) => row.lease_token).sort(), [y!.token, m!.token].sort())
          assert.deepStrictEqual(claimed.value[0]?.settled, [y!.token])
          assert.deepStrictEqual(claimed.value.map((row) => row.id), [x!.job.id])
        }
        assert.strictEqual((yield* store.get(y!.job.id))?.state, "succeeded")
      }).pipe(Effect.scoped, Effect.provide(testLayer(schema)))
    }, { timeout: 60_000 })

    // a tick's insert is checked as it reaches the table: by clock_timestamp() once its lock is
    // granted, not by now() (its transaction's start, before the wait), which stored an insert held
    // past its deadline however late, after other processes may have run and purged the tick
    it.live("a repeat's tick whose insert waits on a table lock until past its notAfter stores nothing and answers late; one whose lock is let go in time is stored", () => {
      const schema = freshSchema()
      return Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const serverNow = Effect.promise(() =>
          admin((sql) => sql<{ now: string }>`SELECT floor(extract(epoch from clock_timestamp()) * 1000)::bigint::text AS now`)
        ).pipe(Effect.map((rows) => Number(rows[0]!.now)))
        const locker = yield* lockSession
        /** A tick's enqueue, `ahead` ms before its notAfter on the server's clock, held by the lock until `letGo`. */
        const held = (id: string, ahead: number, letGo: (notAfter: number) => Effect.Effect<unknown>) =>
          Effect.gen(function*() {
            yield* locker.open(`LOCK TABLE "${schema}".wp_job IN EXCLUSIVE MODE`)
            const at = yield* serverNow
            const fiber = yield* Effect.forkChild(store.enqueue(newJob("ticks", { id, runAt: at, notAfter: at + ahead })))
            yield* blockedBy(locker.pid)
            yield* letGo(at + ahead)
            yield* locker.release
            return yield* Fiber.join(fiber)
          })
        // let go once the server's clock is past notAfter
        const late = yield* held("tick:held", 1000, (notAfter) =>
          serverNow.pipe(Effect.repeat({ until: (now) => now > notAfter, schedule: Schedule.spaced("20 millis") })))
        assert.deepStrictEqual(late, { id: "tick:held", created: false, late: true })
        assert.isUndefined(yield* store.get("tick:held"))
        // let go at once, a minute before: stored
        const onTime = yield* held("tick:on-time", 60_000, () => Effect.void)
        assert.deepStrictEqual(onTime, { id: "tick:on-time", created: true })
      }).pipe(Effect.scoped, Effect.provide(layer(schema)))
    }, { timeout: 60_000 })

    // ON CONFLICT waits for another session's uncommitted insert of the same id, after the
    // insert's WHERE was checked: once that session rolled back, the insert went ahead, past its
    // notAfter however late (the tick stored after its deadline)
    // on a multiplexed client (layerClient's, multiplex: true) the insert runs in a transaction,
    // which the deadline's failed statement ends
    for (const multiplex of [false, true]) it.live(`a repeat's tick whose insert waits on another session's uncommitted insert of its id, rolled back past its notAfter, stores nothing and answers late by its deadline; one rolled back in time is stored (multiplex: ${multiplex})`, () => {
      const schema = freshSchema()
      const S = `"${schema}"`
      return Effect.gen(function*() {
        const client = yield* appClient(url!, 2, multiplex)
        const store = yield* Postgres.makeWith(client, yield* Postgres.clientOptions({ schema }))
        const serverNow = Effect.promise(() =>
          admin((sql) => sql<{ now: string }>`SELECT floor(extract(epoch from clock_timestamp()) * 1000)::bigint::text AS now`)
        ).pipe(Effect.map((rows) => Number(rows[0]!.now)))
        const other = yield* lockSession
        /**
         * A tick's enqueue, `ahead` ms before its notAfter, waiting on the other session's insert of
         * its id until `rollBack`; with whether it had answered before the rollback.
         */
        const held = (id: string, ahead: number, rollBack: (fiber: Fiber.Fiber<unknown, unknown>) => Effect.Effect<unknown>) =>
          Effect.gen(function*() {
            yield* other.query("BEGIN")
            yield* other.query(`INSERT INTO ${S}.wp_job (id, queue, task, payload, priority, rank, state, max_attempts,
              timeout_ms, created_at, visible_at) VALUES ('${id}', 'ticks', 'Echo', '{}', 0, 0, 'queued', 1, 0, 0, 0)`)
            const at = yield* serverNow
            const fiber = yield* Effect.forkChild(store.enqueue(newJob("ticks", { id, runAt: at, notAfter: at + ahead })))
            yield* blockedBy(other.pid)
            yield* rollBack(fiber)
            const before = fiber.pollUnsafe() !== undefined
            yield* other.query("ROLLBACK")
            return { result: yield* Fiber.join(fiber), before }
          })
        // rolled back well after notAfter (a second away): the enqueue answers late at its deadline,
        // without waiting for the other session's end (a generous bound for a loaded machine)
        const late = yield* held("tick:held", 1000, (fiber) => Effect.ignore(Effect.timeout(Fiber.await(fiber), "20 seconds")))
        assert.deepStrictEqual(late, { result: { id: "tick:held", created: false, late: true }, before: true })
        assert.isUndefined(yield* store.get("tick:held"))
        // rolled back at once, a minute before: stored
        const onTime = yield* held("tick:on-time", 60_000, () => Effect.void)
        assert.deepStrictEqual(onTime, { result: { id: "tick:on-time", created: true }, before: false })
        // held by a session that commits: the job holding the id is returned
        yield* other.query("BEGIN")
        yield* other.query(`INSERT INTO ${S}.wp_job (id, queue, task, payload, priority, rank, state, max_attempts,
          timeout_ms, created_at, visible_at) VALUES ('tick:theirs', 'ticks', 'Echo', '{}', 0, 0, 'queued', 1, 0, 0, 0)`)
        const at = yield* serverNow
        const theirs = yield* Effect.forkChild(store.enqueue(newJob("ticks", { id: "tick:theirs", runAt: at, notAfter: at + 60_000 })))
        yield* blockedBy(other.pid)
        yield* other.query("COMMIT")
        assert.deepStrictEqual(yield* Fiber.join(theirs), { id: "tick:theirs", created: false })
      }).pipe(Effect.scoped)
    }, { timeout: 60_000 })

    it.effect("a version-6 schema migrated under held jobs: a job claimed before the upgrade is renewed and settled by its token after it; a job reaped before it stays lost to its old token", () => {
      const schema = freshSchema()
      const S = `"${schema}"`
      const request = { queues: ["default"], tasks: ["Echo"], limit: 1 }
      const exit = JSON.stringify({ _tag: "Success", value: 0 })
      return Effect.gen(function*() {
        // version 6's rows: ended, queued, running (long lease), reaped back to queued
        const [live, reaped, ids] = yield* Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          const ids: Array<string> = []
          for (let n = 0; n < 4; n++) ids.push((yield* JobQueue.enqueue(Echo, { n })).id)
          const [ended] = (yield* store.claim({ ...request, lease: 1000 })).claims
          assert.isTrue(yield* store.settle(ended!.token, { _tag: "Final", state: "succeeded", exit }))
          const [live] = (yield* store.claim({ ...request, lease: 60_000 })).claims
          const [reaped] = (yield* store.claim({ ...request, lease: 1000 })).claims
          yield* TestClock.adjust(1001)
          assert.strictEqual(yield* store.reap([0]), 1)
          return [live!, reaped!, ids] as const
        }).pipe(Effect.provide(testLayer(schema)))
        yield* backToVersion6(S)
        yield* Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          yield* watchTokens(S)
          assert.deepStrictEqual((yield* brokenTokens(S))[1], [], "the migrated rows")
          assert.deepStrictEqual(yield* store.heartbeat([live.token, reaped.token], 60_000), { lost: [reaped.token], cancelled: [] })
          assert.isFalse(yield* store.settle(reaped.token, { _tag: "Final", state: "dead", exit }))
          assert.isTrue(yield* store.settle(live.token, { _tag: "Final", state: "succeeded", exit }))
          assert.isFalse(yield* store.settle(live.token, { _tag: "Final", state: "dead", exit }))
          const again = (yield* store.claim({ ...request, limit: 2, lease: 1000 })).claims
          assert.deepStrictEqual(again.map((c) => c.job.id).sort(), [reaped.job.id, ids[3]!].sort())
          for (const claim of again) assert.isTrue(yield* store.settle(claim.token, { _tag: "Final", state: "succeeded", exit }))
          const jobs = yield* Effect.forEach(ids, (id) => store.get(id))
          assert.deepStrictEqual(jobs.map((job) => job?.state), ["succeeded", "succeeded", "succeeded", "succeeded"])
          const [logged, now] = yield* brokenTokens(S)
          assert.deepStrictEqual(logged, [])
          assert.deepStrictEqual(now, [])
        }).pipe(Effect.provide(testLayer(schema)))
        const versions = yield* Effect.promise(() => admin((sql) => sql<{ value: string }>`SELECT value FROM ${sql.literal(S)}.wp_meta WHERE key = 'schema_version'`))
        assert.deepStrictEqual(versions.map((row) => row.value), [String(Postgres.MIGRATIONS.length)])
      })
    }, { timeout: 60_000 })
  })

  const binaries = pgServer.binaries()
  describe.skipIf(binaries === undefined)("the Postgres store's listener across a server restart, hostile", () => {
    it.live("the server stopped and started under idle consumers: another instance's jobs wake them again, and its cancels reach a running job", () =>
      Effect.gen(function*() {
        const server = yield* ownServer()
        const privateLayer = () => PgJobStore.layer({ url: server.url, maxConnections: 2 })
        const error = yield* Effect.gen(function*() {
          const other = yield* Layer.build(privateLayer())
          const started = yield* Latch.make(false)
          yield* JobQueue.consume({
            queues: ["a", "b"],
            handlers: [Task.handle(Echo, ({ n }) => n === 0 ? Effect.andThen(started.open, Effect.never) : Effect.succeed(n * 2))],
            concurrency: 2,
            poll: HOUR,
            lease: "1 hour"
          })
          const before = yield* Effect.provide(JobQueue.enqueue(Echo, { n: 1 }, { queue: "a" }), other)
          assert.strictEqual(yield* JobQueue.await(Echo, before.id), 2)
          yield* Effect.promise(() => server.stop())
          yield* Effect.promise(() => server.start())
          // the other instance's pool holds dead connections too: its first statements may fail
          const enqueue = (n: number, queue: string) =>
            Effect.provide(JobQueue.enqueue(Echo, { n }, { queue }), other).pipe(Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 50 }))
          const after = yield* enqueue(21, "b")
          assert.strictEqual(yield* JobQueue.await(Echo, after.id).pipe(Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 50 })), 42)
          const running = yield* enqueue(0, "a")
          yield* started.await
          assert.strictEqual(yield* Effect.provide(JobQueue.cancel(running.id), other), "requested")
          return yield* Effect.flip(JobQueue.await(Echo, running.id))
        }).pipe(Effect.scoped, Effect.provide(privateLayer()), Effect.timeout("90 seconds"))
        assert.strictEqual(error._tag, "JobCancelled")
      }).pipe(Effect.scoped), { timeout: 180_000 })

    it.live("a claim cut off by the server's stop: the consumer (polling once an hour) tries again within seconds, and starts another instance's job once the server is back", () =>
      Effect.gen(function*() {
        const server = yield* ownServer()
        const privateLayer = () => PgJobStore.layer({ url: server.url, maxConnections: 2 })
        // the next claim stops the server while it is in flight (it then fails), as a restart can
        const cut = yield* Deferred.make<void>()
        let armed = false
        const cutting = Layer.effect(
          JobStore.JobStore,
          Effect.map(JobStore.JobStore, (inner): Store => ({
            ...inner,
            claim: (request) =>
              Effect.suspend(() => {
                if (!armed) return inner.claim(request)
                armed = false
                return Effect.promise(() => server.stop()).pipe(
                  Effect.andThen(inner.claim(request)),
                  Effect.ensuring(Deferred.succeed(cut, undefined))
                )
              })
          }))
        ).pipe(Layer.provide(privateLayer()))
        const value = yield* Effect.gen(function*() {
          const other = yield* Layer.build(privateLayer())
          yield* JobQueue.consume({ queues: ["a"], handlers: [double], concurrency: 1, poll: HOUR, lease: "1 hour" })
          const before = yield* Effect.provide(JobQueue.enqueue(Echo, { n: 1 }, { queue: "a" }), other)
          assert.strictEqual(yield* JobQueue.await(Echo, before.id), 2)
          armed = true
          // the claim cut is the one this job wakes, or the one after the first job's settle (the
          // enqueue then fails until the server is back): either way the job waits in the table
          const enqueued = yield* Effect.forkChild(
            Effect.provide(JobQueue.enqueue(Echo, { n: 21 }, { queue: "a" }), other).pipe(
              Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 600 })
            )
          )
          yield* Deferred.await(cut)
          yield* Effect.promise(() => server.start())
          const job = yield* Fiber.join(enqueued)
          return yield* JobQueue.await(Echo, job.id).pipe(Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 50 }))
        }).pipe(Effect.scoped, Effect.provide(cutting), Effect.timeout("60 seconds"))
        assert.strictEqual(value, 42)
      }).pipe(Effect.scoped), { timeout: 120_000 })

    it.live("a scope holding a consumer and its store (made in it), closed while the server is stopped, with a job whose settle failed and one that never ends: the close ends within 4.5 s (the drain, then 2 s at most for the settles), both jobs left for the reaper", () =>
      Effect.gen(function*() {
        const server = yield* ownServer()
        const scope = yield* Scope.make()
        const cfg = yield* Postgres.options({ url: server.url, schema: freshSchema(), maxConnections: 2 })
        const store = yield* Postgres.make({ ...cfg, clock: "effect" }).pipe(Scope.provide(scope))
        const here = Effect.provideService(JobStore.JobStore, store)
        const release = yield* Deferred.make<void>()
        let started = 0
        yield* JobQueue.consume({
          handlers: [Task.handle(Echo, ({ n }) =>
            Effect.andThen(Effect.sync(() => started++), n === 0 ? Effect.as(Deferred.await(release), n) : Effect.never))],
          concurrency: 2,
          poll: HOUR,
          shutdownTimeout: 200
        }).pipe(here, Scope.provide(scope))
        yield* here(JobQueue.enqueue(Echo, { n: 0 }))
        yield* here(JobQueue.enqueue(Echo, { n: 1 }))
        while (started < 2) yield* Effect.sleep(20)
        yield* Effect.promise(() => server.stop())
        // its settle fails (the server is down) and would be tried again lease / 10 (3 s) later. The
        // other job's release, made in the drain, needs a new connection: effect's Pool opens it in
        // a fiber forked into its scope (the store's, marked closed when its close starts), which
        // never starts, so that statement never ends
        yield* Deferred.succeed(release, undefined)
        yield* Effect.sleep(200)
        // the drain's 200 ms, and the settles' 2 s at most
        assert.isBelow(yield* closeWithin(scope, "30 seconds"), 4500)
      }).pipe(Effect.scoped), { timeout: 120_000 })
  })
}

if (enabled) {
  describe("the Postgres store's own connections: where its URL leads, hostile", () => {
    // A URL given the same parameter twice (a deployment that appends its override to a shared
    // DATABASE_URL, `${DATABASE_URL}&host=...`): @effect/sql-pg reads the parameters in order, so the
    // last one wins (as in libpq). The store connects on sockets of its own (its close can destroy
    // them), worked out from the URL: they must lead where the driver's would
    const base = new URL(url!)
    const forms: Array<[string, string]> = [
      ["host twice, the last the server's", `${url!}?host=/nonexistent-wp-socket-dir&host=${base.hostname}`],
      ["port twice, the last the server's", `${url!}?port=1&port=${base.port || "5432"}`]
    ]
    // libpq's documented form for a Unix socket: no host in the authority, the socket directory in
    // `host=` (`postgresql:///app?host=/var/run/postgresql`)
    it.live("no host in the authority, a Unix socket directory in host=: the driver connects, and so does the store (over the socket)", () =>
      Effect.gen(function*() {
        const [setting] = yield* Effect.promise(() =>
          admin((sql) =>
            sql<{ dir: string; port: number }>`SELECT split_part(current_setting('unix_socket_directories'), ',', 1) AS dir,
              current_setting('port')::int AS port`
          )
        )
        // credentials as parameters too: a URL cannot have them without a host
        const credentials = (base.username === "" ? "" : `&user=${base.username}`) + (base.password === "" ? "" : `&password=${base.password}`)
        const socketUrl = `postgresql://${base.pathname}?host=${encodeURIComponent(setting!.dir.trim())}&port=${setting!.port}${credentials}`
        const driver = yield* Effect.scoped(
          PgClient.make({ url: Redacted.make(socketUrl), maxConnections: 1 }).pipe(
            Effect.flatMap((sql) => sql<{ addr: string | null }>`SELECT inet_client_addr()::text AS addr`),
            Effect.provideServiceEffect(Reactivity.Reactivity, Reactivity.make)
          )
        )
        assert.strictEqual(driver[0]!.addr, null)
        const cfg = yield* Postgres.options({ url: socketUrl, schema: freshSchema(), maxConnections: 2, connectTimeout: 5000 })
        const store = yield* Postgres.make(cfg)
        const job = yield* JobQueue.enqueue(Echo, { n: 1 }).pipe(Effect.provideService(JobStore.JobStore, store))
        assert.strictEqual((yield* JobQueue.status(job.id).pipe(Effect.provideService(JobStore.JobStore, store))).state, "queued")
      }).pipe(Effect.scoped), { timeout: 30_000 })

    it.live.each(forms)("%s: the driver connects, and so does the store (to the same server)", ([_name, twice]) =>
      Effect.gen(function*() {
        // the driver itself, given that URL, connects (to the test server)
        const driver = yield* Effect.scoped(
          PgClient.make({ url: Redacted.make(twice), maxConnections: 1 }).pipe(
            Effect.flatMap((sql) => sql<{ one: number }>`SELECT 1 AS one`),
            Effect.provideServiceEffect(Reactivity.Reactivity, Reactivity.make)
          )
        )
        assert.strictEqual(driver[0]!.one, 1)
        const cfg = yield* Postgres.options({ url: twice, schema: freshSchema(), maxConnections: 2, connectTimeout: 5000 })
        const store = yield* Postgres.make(cfg)
        const job = yield* JobQueue.enqueue(Echo, { n: 1 }).pipe(Effect.provideService(JobStore.JobStore, store))
        assert.strictEqual((yield* JobQueue.status(job.id).pipe(Effect.provideService(JobStore.JobStore, store))).state, "queued")
      }).pipe(Effect.scoped), { timeout: 30_000 })
  })
}

/** The sockets of this process that are open (not yet destroyed): TCP, Unix, and TLS over them. */


const openSockets = () =>
  (process as unknown as { _getActiveHandles(): Array<unknown> })._getActiveHandles().filter((handle) =>
    handle instanceof Net.Socket && !handle.destroyed
  ).length

if (enabled && pgServer.binaries() !== undefined) {
  describe("the Postgres store's own connections: the URL forms users write, hostile", () => {
    it.live("each connects where (and as) the driver would, on sockets of its own: its close with the server frozen and a statement in flight ends in about CLIENT_CLOSE_GRACE, its sockets destroyed", () =>
      Effect.gen(function*() {
        const server = yield* ownServer({ ssl: true, ipv6: true })
        const P = server.port
        const dir = server.socketDir
        // sslmode=require verifies the certificate (it is self-signed here): told not to, for this test
        const before = process.env.NODE_TLS_REJECT_UNAUTHORIZED
        yield* Effect.acquireRelease(
          Effect.sync(() => {
            process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0"
          }),
          () =>
            Effect.sync(() => {
              if (before === undefined) delete process.env.NODE_TLS_REJECT_UNAUTHORIZED
              else process.env.NODE_TLS_REJECT_UNAUTHORIZED = before
            })
        )
        type Expect = { readonly ssl: boolean; readonly client: "tcp4" | "tcp6" | "tcp" | "unix" }
        const forms: Array<[string, string | Redacted.Redacted<string>, Expect]> = [
          ["postgresql:// scheme", `postgresql://postgres@127.0.0.1:${P}/postgres`, { ssl: false, client: "tcp4" }],
          ["a Redacted URL", Redacted.make(`postgres://postgres@127.0.0.1:${P}/postgres`), { ssl: false, client: "tcp4" }],
          ["IPv6 [::1]", `postgres://postgres@[::1]:${P}/postgres`, { ssl: false, client: "tcp6" }],
          ["localhost, no port (port=)", `postgres://postgres@localhost/postgres?port=${P}`, { ssl: false, client: "tcp4" }],
          ["a Unix socket directory in host=", `postgres://postgres@localhost/postgres?host=${dir}&port=${P}`, { ssl: false, client: "unix" }],
          ["a Unix socket directory percent-encoded as the host", `postgres://postgres@${encodeURIComponent(dir)}:${P}/postgres`, { ssl: false, client: "unix" }],
          [
            "percent-encoded user, sslmode=disable, options, application_name",
            `postgres://pos%74gres@127.0.0.1:${P}/postgres?sslmode=disable&options=-c%20search_path%3Dpg_catalog&application_name=mine`,
            { ssl: false, client: "tcp4" }
          ],
          ["sslmode=require (TLS over the store's socket)", `postgres://postgres@localhost:${P}/postgres?sslmode=require`, { ssl: true, client: "tcp4" }],
          ["sslmode=prefer to a server with TLS", `postgres://postgres@127.0.0.1:${P}/postgres?sslmode=prefer`, { ssl: true, client: "tcp4" }],
          // an unset variable in a template (`?host=${PGHOST}`): the driver connects to an empty host, which
          // Node takes for localhost (over IPv4 or IPv6)
          ["an empty host= parameter", `postgres://postgres@127.0.0.1:${P}/postgres?host=`, { ssl: false, client: "tcp" }]
        ]
        // the store's sessions as the server sees them; the inspecting client's socket ended (the
        // server has read its Terminate) before this returns, so that it is not counted as the store's
        const inspect = Effect.gen(function*() {
          const open = openSockets()
          const rows = yield* Effect.scoped(
            PgClient.make({ url: Redacted.make(server.url), maxConnections: 1 }).pipe(
              Effect.flatMap((sql) =>
                sql<{ ssl: boolean; addr: string | null }>`SELECT s.ssl, a.client_addr::text AS addr
                  FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = 'effect-workpool'`
              ),
              Effect.provideServiceEffect(Reactivity.Reactivity, Reactivity.make)
            )
          )
          for (let i = 0; i < 250 && openSockets() > open; i++) yield* Effect.sleep(20)
          return rows
        })
        for (const [name, form, expect] of forms) {
          // the last form's sessions, destroyed while the server was frozen, have ended there
          for (let i = 0; i < 250 && (yield* inspect).length > 0; i++) yield* Effect.sleep(20)
          const baseline = openSockets()
          const scope = yield* Scope.make()
          const cfg = yield* Postgres.options({ url: form, schema: freshSchema(), maxConnections: 2 })
          const store = yield* Postgres.make(cfg).pipe(Scope.provide(scope))
          const here = Effect.provideService(JobStore.JobStore, store)
          yield* here(JobQueue.enqueue(Echo, { n: 1 }))
          // its sessions (the pool's, the listener's: it connects on its own fiber) as the server sees them
          let sessions = yield* inspect
          for (let i = 0; i < 100 && sessions.length < 2; i++) sessions = yield* Effect.andThen(Effect.sleep(50), inspect)
          assert.isAtLeast(sessions.length, 2, name)
          for (const session of sessions) {
            assert.strictEqual(session.ssl, expect.ssl, `${name}: TLS`)
            const client = session.addr === null ? "unix" : session.addr.includes(":") ? "tcp6" : "tcp4"
            assert.strictEqual(expect.client === "tcp" ? client.slice(0, 3) : client, expect.client, `${name}: client address ${session.addr}`)
          }
          const thaw = yield* freeze(server)
          const inFlight = yield* Effect.forkDetach(Effect.flip(here(JobQueue.enqueue(Echo, { n: 2 }))))
          yield* Effect.sleep(300)
          const took = yield* closeWithin(scope, "15 seconds")
          const error = yield* Fiber.join(inFlight).pipe(Effect.timeout("5 seconds"))
          yield* thaw
          // the statement was on the wire (not refused as the store closed), and failed typed
          assert.strictEqual(error._tag, "StoreError", name)
          assert.notInclude(error.message, "the store is closed", `${name}: ${error.message}`)
          // CLIENT_CLOSE_GRACE (1 s), then the pool's close; a busy machine is given 2 s more
          assert.isBelow(took, Postgres.CLIENT_CLOSE_GRACE + 2000, name)
          assert.strictEqual(openSockets(), baseline, `${name}: sockets left open`)
        }
      }).pipe(Effect.scoped), { timeout: 120_000 })
  })
}

if (enabled && pgServer.binaries() !== undefined) {
  describe("the Postgres store's own connections: a close that ends before CLIENT_CLOSE_GRACE, hostile", () => {
    it.live("a pool session whose backend is frozen (it never reads the Terminate) while the listener's answers: the close ends at once, and the session's socket is still destroyed 1 s into it (not left open, holding the process, until the server wakes)", () =>
      Effect.gen(function*() {
        const server = yield* ownServer()
        const admin = <A>(f: (sql: PgClient.PgClient) => Effect.Effect<A, unknown>) =>
          Effect.scoped(
            PgClient.make({ url: Redacted.make(server.url), maxConnections: 1 }).pipe(
              Effect.flatMap(f),
              Effect.provideServiceEffect(Reactivity.Reactivity, Reactivity.make)
            )
          ).pipe(Effect.orDie)
        const baseline = openSockets()
        const scope = yield* Scope.make()
        const cfg = yield* Postgres.options({ url: server.url, schema: freshSchema(), maxConnections: 2 })
        const store = yield* Postgres.make(cfg).pipe(Scope.provide(scope))
        yield* JobQueue.enqueue(Echo, { n: 1 }).pipe(Effect.provideService(JobStore.JobStore, store))
        // the pool's session (idle now), not the listener's (its last statement a LISTEN)
        let backends: ReadonlyArray<{ pid: number; query: string }> = []
        for (let i = 0; i < 250; i++) {
          backends = yield* admin((sql) =>
            sql<{ pid: number; query: string }>`SELECT pid, query FROM pg_stat_activity WHERE application_name = 'effect-workpool'`
          )
          if (backends.some((b) => b.query.startsWith("LISTEN"))) break
          yield* Effect.sleep(20)
        }
        const pool = backends.filter((b) => !b.query.startsWith("LISTEN")).map((b) => b.pid)
        assert.strictEqual(pool.length, 1)
        yield* Effect.addFinalizer(() => Effect.sync(() => pool.forEach((pid) => process.kill(pid, "SIGCONT"))))
        pool.forEach((pid) => process.kill(pid, "SIGSTOP"))
        const began = Date.now()
        // the pool's close sends its session a Terminate and ends the socket; the listener's close is answered
        assert.isBelow(yield* closeWithin(scope, "30 seconds"), Postgres.CLIENT_CLOSE_GRACE)
        // its socket is closed once the backend answers the end, or destroyed 1 s into the close
        while (openSockets() > baseline && Date.now() - began < Postgres.CLIENT_CLOSE_GRACE + 3000) yield* Effect.sleep(20)
        assert.strictEqual(openSockets(), baseline, `sockets left open ${Date.now() - began} ms into the close`)
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("the server restarted, then frozen while the listener reconnects (its session lost, its next one pending or just made): the close ends within CLIENT_CLOSE_GRACE + 2 s, no socket left open 1 s into it", () =>
      Effect.gen(function*() {
        const server = yield* ownServer()
        const baseline = openSockets()
        const scope = yield* Scope.make()
        const cfg = yield* Postgres.options({ url: server.url, schema: freshSchema(), maxConnections: 2 })
        const store = yield* Postgres.make(cfg).pipe(Scope.provide(scope))
        const here = Effect.provideService(JobStore.JobStore, store)
        yield* here(JobQueue.enqueue(Echo, { n: 1 }))
        yield* Effect.promise(() => server.stop())
        yield* Effect.promise(() => server.start())
        // a pool session again (the first statements may meet the dead ones)
        yield* here(JobQueue.enqueue(Echo, { n: 2 })).pipe(Effect.retry({ schedule: Schedule.spaced("50 millis"), times: 100 }))
        yield* freeze(server)
        // the listener's next try (1 s after its session was lost) meets the frozen server
        yield* Effect.sleep(1200)
        const began = Date.now()
        assert.isBelow(yield* closeWithin(scope, "30 seconds"), Postgres.CLIENT_CLOSE_GRACE + 2000)
        while (openSockets() > baseline && Date.now() - began < Postgres.CLIENT_CLOSE_GRACE + 3000) yield* Effect.sleep(20)
        assert.strictEqual(openSockets(), baseline, `sockets left open ${Date.now() - began} ms into the close`)
      }).pipe(Effect.scoped), { timeout: 90_000 })
  })
}

if (enabled && pgServer.binaries() !== undefined) {
  describe("the Postgres store's listener on the caller's client (layerClient), its server frozen at the close, hostile", () => {
    it.live("a LISTEN in flight (a consumer's new queue) when the store's scope closes: the close goes on 2 × LISTENER_CLOSE_GRACE in at the latest, not after the driver's 5 s cancel request of that LISTEN", () =>
      Effect.gen(function*() {
        const server = yield* ownServer()
        // the application's own client, outliving the store
        const sql = yield* appClient(server.url, 2)
        const schema = freshSchema()
        const scope = yield* Scope.make()
        const store = yield* Postgres.makeWith(sql, yield* Postgres.clientOptions({ schema })).pipe(Scope.provide(scope))
        // the listener hears queue a (an idle consumer's wait)
        yield* Effect.forkDetach(store.wait(60_000, undefined, ["a"]))
        for (let i = 0; i < 250; i++) {
          const rows = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_stat_activity WHERE query = ${`LISTEN "${Postgres.queueChannel(schema, "a")}"`}`
          if (rows[0]!.n > 0) break
          yield* Effect.sleep(20)
        }
        yield* freeze(server)
        // a wait on queue b: the listener's LISTEN for it gets no reply
        yield* Effect.forkDetach(store.wait(60_000, undefined, ["b"]))
        yield* Effect.sleep(300)
        // interrupted, the LISTEN sends a cancel request (@effect/sql-pg) on a socket of the driver's,
        // which the frozen server never closes: 5 s. The listener's session is destroyed 1 s in, and
        // its close goes on 2 s in; a busy machine is given 1.5 s more
        assert.isBelow(yield* closeWithin(scope, "30 seconds"), 2 * Postgres.LISTENER_CLOSE_GRACE + 1500)
      }).pipe(Effect.scoped), { timeout: 60_000 })
  })

  describe("the Postgres store's reaps refused by the server, hostile", () => {
    // a reap the server refuses (here a trigger that raises on a running job put back in its queue)
    // leaves a dead consumer's job held: the consumer says so at the 1st, 2nd, 4th, ... failure in a
    // row, and once a reap works again; the job then runs
    it.effect("a dead consumer's expired job: its reaps are refused and logged, then reaped and run once the refusal ends", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const logged: Array<string> = []
        const collector = Logger.make((options) => {
          logged.push(`${options.logLevel}: ${String(Array.isArray(options.message) ? options.message[0] : options.message)}`)
        })
        const refuse = (on: boolean) =>
          Effect.promise(() =>
            admin((sql) =>
              on
                ? Effect.andThen(
                  sql.unsafe(`CREATE FUNCTION "${schema}".refuse() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN RAISE EXCEPTION 'reaps refused'; END $$`),
                  sql.unsafe(`CREATE TRIGGER refuse BEFORE UPDATE ON "${schema}".wp_job FOR EACH ROW
                    WHEN (OLD.state = 'running' AND NEW.state = 'queued') EXECUTE FUNCTION "${schema}".refuse()`)
                )
                : sql.unsafe(`DROP TRIGGER refuse ON "${schema}".wp_job`)
            )
          )
        /** Moves the TestClock `step` ms at a time, giving the server real time, until `done` (at most `steps` steps). */
        const until = (done: () => boolean, step: number, steps: number) =>
          Effect.gen(function*() {
            for (let i = 0; i < steps && !done(); i++) {
              yield* TestClock.adjust(step)
              yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 20)))
            }
          })
        const reapFailed = () => logged.filter((line) => line.includes("taking back expired durable jobs failed"))
        yield* Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          const job = yield* JobQueue.enqueue(Echo, { n: 21 })
          // the consumer that dies: its claim, never beaten nor settled
          const { claims } = yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 1, lease: 1000 })
          assert.strictEqual(claims.length, 1)
          yield* refuse(true)
          yield* JobQueue.consume({ handlers: [double], concurrency: 1, lease: 1000, poll: HOUR })
          yield* until(() => reapFailed().length >= 2, 100, 300)
          assert.deepStrictEqual(reapFailed().slice(0, 2).map((line) => line.match(/^(\w+): .*\((\d+) times? in a row; (.*)\)$/)!.slice(1)), [
            ["Warn", "1", "the jobs of a consumer that died stay held until a reap works"],
            ["Warn", "2", "the jobs of a consumer that died stay held until a reap works"]
          ])
          assert.strictEqual((yield* JobQueue.status(job.id)).state, "running")
          yield* refuse(false)
          yield* until(() => logged.some((line) => line.includes("works again")), 100, 300)
          assert.isTrue(logged.some((line) => /^Info: effect-workpool: taking back expired durable jobs works again, after \d+ failures?$/.test(line)), logged.join("\n"))
          const done = yield* Effect.forkChild(JobQueue.await(Echo, job.id))
          yield* until(() => done.pollUnsafe() !== undefined, 100, 300)
          assert.strictEqual(yield* Fiber.join(done), 42)
          assert.isFalse(logged.some((line) => line.includes("claiming durable jobs")), logged.join("\n"))
        }).pipe(Effect.scoped, Effect.provide(Layer.merge(testLayer(schema), Logger.layer([collector]))))
      }), { timeout: 60_000 })

  describe("the Postgres reaper's bound, hostile", () => {
    // the reaper gave a reap up after a lease (its bound against a frozen server): a reap that is
    // merely slow (a backlog of expired jobs, a loaded server) was cancelled every time, in one
    // statement that took back nothing once cut, and the backlog stayed held for ever; in batches,
    // each reap cut at 100 ms still took back only a few hundred rows on a loaded machine
    it.live("a backlog of 100,000 expired jobs whose one reap statement takes longer than the reaper's consumer's lease (100 ms): they are taken back all the same", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const layer = testLayer(schema)
        const context = yield* Layer.build(layer)
        const store = context.mapUnsafe.get(JobStore.JobStore.key) as Store
        yield* store.enqueue({ queue: "other", task: "Other", payload: "{}", priority: 0, dedupKey: null, maxAttempts: 3, timeout: 0, delay: 0, runAt: undefined })
        // dead consumers' jobs (a task nobody here runs), their leases long over
        yield* Effect.promise(() =>
          admin((sql) =>
            sql.unsafe(
              `INSERT INTO ${schema}.wp_job (id, queue, task, payload, priority, rank, state, attempts, max_attempts, timeout_ms, created_at, visible_at, started_at, lease_token, lease_until)
               SELECT 'dead' || g, 'q', 'Other', '{}', 0, 0, 'running', 1, 3, 0, 0, 0, 0, 'token' || g, 1 FROM generate_series(1, 100000) g`
            )
          )
        )
        const running = Effect.promise(() =>
          admin((sql) => sql.unsafe<{ n: string }>(`SELECT count(*) AS n FROM ${schema}.wp_job WHERE state = 'running'`))
        ).pipe(Effect.map((rows) => Number(rows[0]!.n)))
        yield* Effect.gen(function*() {
          yield* JobQueue.consume({ queues: ["other"], handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))], concurrency: 1, lease: "100 millis" })
          yield* waitFor(running, "the expired jobs are taken back", { until: (n) => n === 0, within: "30 seconds" })
        }).pipe(Effect.scoped, Effect.provide(context))
      }).pipe(Effect.scoped), { timeout: 60_000 })
  })
  })
}

if (enabled && pgServer.binaries() !== undefined) {
  describe("the Postgres store on a frozen server: its callers are not held, hostile", () => {
    // the store's time was a query (`SELECT now()`) with no bound: the consumer's heartbeat loop asks
    // it before each beat, so on a frozen server (or a partition that drops packets) the loop waited
    // there for ever, never bounding its beat nor giving up its jobs as lost, which ran on past their
    // leases (and past another consumer's run of them once the server answered again)
    it.live("a consumer whose server freezes (SIGSTOP) while its job runs: the job is given up as lost about a lease after its last renewal, and the store's time answers at once", () =>
      Effect.gen(function*() {
        const server = yield* ownServer()
        const store = yield* Postgres.make(yield* Postgres.options({ url: server.url, schema: freshSchema(), maxConnections: 2 }))
        const here = Effect.provideService(JobStore.JobStore, store)
        const started = yield* Deferred.make<void>()
        const lost = yield* Deferred.make<void>()
        const handler = Task.handle(Echo, ({ n }) =>
          Deferred.succeed(started, undefined).pipe(
            Effect.andThen(Effect.never),
            Effect.as(n),
            Effect.onInterrupt(() => Deferred.succeed(lost, undefined))
          ))
        yield* here(JobQueue.consume({ handlers: [handler], concurrency: 1, lease: "2 seconds", poll: HOUR }))
        yield* here(JobQueue.enqueue(Echo, { n: 1 }))
        yield* Deferred.await(started).pipe(Effect.timeout("20 seconds"))
        yield* freeze(server)
        const from = Date.now()
        const given = yield* Deferred.await(lost).pipe(Effect.timeoutOption("20 seconds"))
        assert.strictEqual(given._tag, "Some", "the job is given up as lost")
        // a lease (2 s) and a beat's time after the last renewal; a busy machine is given more
        assert.isBelow(Date.now() - from, 10_000)
        const read = Date.now()
        const now = yield* store.now.pipe(Effect.timeoutOption("5 seconds"))
        assert.isTrue(now._tag === "Some" && Math.abs(now.value - Date.now()) < 5_000, String(now))
        assert.isBelow(Date.now() - read, 500, "the store's time does not wait on a frozen server")
      }).pipe(Effect.scoped), { timeout: 60_000 })

    // the reaper cut a reap at its bound with Effect.timeout, which waits for the interruption: an
    // interrupted statement's connection drains (the driver's cancel request, then its wait for
    // ReadyForQuery) for up to 5 s when nothing answers, and the failure's report and the next reap
    // waited for it
    it.live("a reap cut at its bound (5 s, above a lease of 1 s) on a frozen server is reported at its bound, not after the driver's drain of its statement (up to 5 s more)", () =>
      Effect.gen(function*() {
        const server = yield* ownServer()
        const store = yield* Postgres.make(yield* Postgres.options({ url: server.url, schema: freshSchema(), maxConnections: 4 }))
        const failures: Array<number> = []
        const collector = Logger.make((options) => {
          const message = String(Array.isArray(options.message) ? options.message[0] : options.message)
          if (message.includes("taking back expired durable jobs failed")) failures.push(Date.now())
        })
        yield* JobQueue.consume({ handlers: [double], concurrency: 1, lease: "1 second", poll: HOUR }).pipe(
          Effect.provideService(JobStore.JobStore, store),
          Effect.provide(Logger.layer([collector]))
        )
        // reaps on the live server: the pool holds a connection for the next one, which writes its statement
        yield* Effect.sleep("1500 millis")
        yield* freeze(server)
        const from = Date.now()
        yield* waitFor(Effect.sync(() => failures.length), "a reap's failure is reported", { until: (n) => n >= 1, within: "20 seconds" })
        // the bound (5 s), and more for a busy machine; not the drain's 5 s after it
        assert.isBelow(failures[0]! - from, 8_500)
      }).pipe(Effect.scoped), { timeout: 60_000 })

    // the reads had no bound: JobQueue.status, list and stats, an awaiter's look, the dashboard's
    // samples waited on a frozen server (or a partition that drops packets) for as long as it was
    // frozen, where a stopped one fails them at once
    it.live("its reads (get, a job's progress, list, the queue's counts and latencies: status, await, list, stats, the dashboard) on a frozen server fail with StoreError within READ_BOUND", () =>
      Effect.gen(function*() {
        const server = yield* ownServer()
        const store = yield* Postgres.make(yield* Postgres.options({ url: server.url, schema: freshSchema(), maxConnections: 8 }))
        const here = Effect.provideService(JobStore.JobStore, store)
        const job = yield* here(JobQueue.enqueue(Echo, { n: 1 }))
        const since = (yield* store.latencies("default", undefined, 10)).until
        yield* freeze(server)
        const timed = (name: string, read: Effect.Effect<unknown, unknown>) =>
          Effect.gen(function*() {
            const from = Date.now()
            const exit = yield* Effect.exit(read).pipe(Effect.timeoutOption("20 seconds"))
            return { name, took: Date.now() - from, exit }
          })
        const reads = yield* Effect.all([
          timed("get", store.get(job.id)),
          timed("progressOf", store.progressOf(job.id)),
          timed("list", store.list({ queue: "default", states: undefined, limit: 100 })),
          timed("counts", store.counts("default")),
          timed("latencies", store.latencies("default", since, 10)),
          timed("JobQueue.status", here(JobQueue.status(job.id))),
          timed("JobQueue.await", here(JobQueue.await(Echo, job.id))),
          timed("JobQueue.list", here(JobQueue.list({ queue: "default" }))),
          timed("JobQueue.stats", here(JobQueue.stats("default")))
        ], { concurrency: "unbounded" })
        for (const { exit, name, took } of reads) {
          assert.isTrue(exit._tag === "Some", `${name}: no answer within 20 s`)
          const ended = exit._tag === "Some" ? exit.value : undefined
          assert.isTrue(ended !== undefined && ended._tag === "Failure", `${name}: ${String(ended)}`)
          const error = ended !== undefined && ended._tag === "Failure" ? Cause.findErrorOption(ended.cause) : undefined
          assert.isTrue(error?._tag === "Some" && (error.value as { _tag?: string })._tag === "StoreError", `${name}: ${String(ended)}`)
          // the bound, and more for a busy machine
          assert.isAtLeast(took, Postgres.READ_BOUND - 100, name)
          assert.isBelow(took, Postgres.READ_BOUND + 3000, name)
        }
      }).pipe(Effect.scoped), { timeout: 90_000 })

    // an interrupted statement waits for its connection's drain (@effect/sql-pg: a cancel request,
    // then up to 5 s for the server's ReadyForQuery), which a frozen server never sends: its caller
    // (a consumer's bounded beat or reap, a stopping consumer, a timeout of the user's) waited for it
    it.live("an operation in flight to a frozen server, interrupted, returns at once, a write after CANCEL_SETTLE (its statement drains in the background)", () =>
      Effect.gen(function*() {
        const server = yield* ownServer()
        const store = yield* Postgres.make(yield* Postgres.options({ url: server.url, schema: freshSchema(), maxConnections: 8 }))
        const job = yield* JobQueue.enqueue(Echo, { n: 1 }).pipe(Effect.provideService(JobStore.JobStore, store))
        const { claims } = yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 1, lease: 60_000 })
        assert.strictEqual(claims.length, 1)
        yield* freeze(server)
        const operations: Array<[string, Effect.Effect<unknown, unknown>]> = [
          ["get", store.get(job.id)],
          ["heartbeat", store.heartbeat([claims[0]!.token], 60_000)],
          ["reap", store.reap([0])],
          ["enqueue", store.enqueue({ queue: "default", task: "Echo", payload: "{}", priority: 0, dedupKey: null, maxAttempts: 3, timeout: 0, delay: 0, runAt: undefined })],
          ["progress", store.progress(claims[0]!.token, "1")]
        ]
        const fibers = yield* Effect.forEach(operations, ([, operation]) => Effect.forkDetach(operation))
        // on the wire (the pool has its sessions: the enqueue and claim above, and new ones never come)
        yield* Effect.sleep(500)
        const took = yield* Effect.forEach(fibers, (fiber) =>
          Effect.gen(function*() {
            const from = Date.now()
            yield* Fiber.interrupt(fiber).pipe(Effect.timeoutOption("20 seconds"))
            return Date.now() - from
          }), { concurrency: "unbounded" })
        // a write waits up to CANCEL_SETTLE for its cancel, which a frozen server never confirms
        operations.forEach(([name], i) => assert.isBelow(took[i]!, (name === "get" ? 0 : Postgres.CANCEL_SETTLE) + 1000, name))
      }).pipe(Effect.scoped), { timeout: 90_000 })

    // the drain of a statement whose caller left it goes on in the background, owned by the store:
    // on the caller's client (which the store does not close) its close waits for it, so that no
    // statement of the store runs on past the store
    it.live("on the caller's client (layerClient): a read interrupted returns at once, its statement still draining; the store's close waits for the drain (the driver's 5 s bound): no statement of the store runs past its close", () =>
      Effect.gen(function*() {
        const server = yield* ownServer()
        const sql = yield* appClient(server.url, 4)
        const scope = yield* Scope.make()
        const store = yield* Postgres.makeWith(sql, yield* Postgres.clientOptions({ schema: freshSchema() })).pipe(Scope.provide(scope))
        const job = yield* JobQueue.enqueue(Echo, { n: 1 }).pipe(Effect.provideService(JobStore.JobStore, store))
        yield* freeze(server)
        const { spans, tracer } = recordingTracer()
        const read = yield* Effect.forkDetach(Effect.withTracer(store.get(job.id), tracer))
        yield* Effect.sleep(500)
        const from = Date.now()
        yield* Fiber.interrupt(read).pipe(Effect.timeoutOption("20 seconds"))
        assert.isBelow(Date.now() - from, 1000, "the interrupted read returns at once")
        const running = () => spans.filter((span) => (span as Tracer.NativeSpan).status._tag === "Started").map((span) => span.name)
        assert.isAbove(running().length, 0, "its statement drains in the background")
        const took = yield* closeWithin(scope, "30 seconds")
        assert.deepStrictEqual(running(), [], "statements of the store still running after its close")
        // the driver's drain bound (5 s) from the interruption; a busy machine is given 3 s more
        assert.isBelow(took, 8000)
      }).pipe(Effect.scoped), { timeout: 90_000 })

    // the consumer cut a reap at its bound by interrupting it in a fiber of its own, not awaited, and
    // interrupted its reaper so at its stop: the reap's statement drained for up to 5 s, its fibers
    // running past the consumer's stop
    it.live("a consumer stopped while its reap, cut at its bound, drains: its stop ends within its bound, and no store operation of it is still running then", () =>
      Effect.gen(function*() {
        const server = yield* ownServer()
        const inner = yield* Postgres.make(yield* Postgres.options({ url: server.url, schema: freshSchema(), maxConnections: 8 }))
        let running = 0
        const counted = <A, E>(effect: Effect.Effect<A, E>) =>
          Effect.suspend(() => {
            running++
            return Effect.ensuring(effect, Effect.sync(() => running--))
          })
        const store: Store = {
          ...inner,
          claim: (request) => counted(inner.claim(request)),
          heartbeat: (tokens, lease) => counted(inner.heartbeat(tokens, lease)),
          reap: (backoff, policies) => counted(inner.reap(backoff, policies)),
          settle: (token, settlement) => counted(inner.settle(token, settlement))
        }
        const failures: Array<number> = []
        const collector = Logger.make((options) => {
          const message = String(Array.isArray(options.message) ? options.message[0] : options.message)
          if (message.includes("taking back expired durable jobs failed")) failures.push(Date.now())
        })
        const scope = yield* Scope.make()
        const consumer = yield* JobQueue.consume({ handlers: [double], concurrency: 1, lease: "1 second", poll: HOUR, shutdownTimeout: 200 }).pipe(
          Effect.provideService(JobStore.JobStore, store),
          Effect.provide(Logger.layer([collector])),
          Scope.provide(scope)
        )
        // reaps on the live server: the pool holds a connection for the next one
        yield* Effect.sleep("1500 millis")
        yield* freeze(server)
        yield* waitFor(Effect.sync(() => failures.length), "a reap is cut at its bound", { until: (n) => n >= 1, within: "20 seconds" })
        const from = Date.now()
        yield* consumer.shutdown.pipe(Effect.timeoutOption("20 seconds"))
        const took = Date.now() - from
        const left = running
        yield* Scope.close(scope, Exit.void)
        // the stated bound: shutdownTimeout + 6 s
        assert.isBelow(took, 200 + 6000)
        assert.strictEqual(left, 0, "store operations of the stopped consumer still running")
      }).pipe(Effect.scoped), { timeout: 90_000 })
  })

  describe("the Postgres store's lock order, hostile", () => {
    /** Runs `statement` on a connection of `sql`'s whose backend's pid it gives first (`pid`), in one transaction. */
    const onBackend = <A>(sql: PgClient.PgClient, pid: Deferred.Deferred<number>, statement: Effect.Effect<A, unknown>, settings: ReadonlyArray<string> = []) =>
      sql.withTransaction(Effect.gen(function*() {
        for (const setting of settings) yield* sql.unsafe(`SET LOCAL ${setting}`).raw
        const [row] = yield* sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`
        yield* Deferred.succeed(pid, row!.pid)
        return yield* statement
      }))
    const FINISHED = ["succeeded", "dead", "cancelled"] as const
    const final = (token: string) => [{ token, state: "succeeded", exit: null }]

    // the purge deleted in its scan's order (the table's, or wp_job_finished's: by end time), while
    // heartbeats, settles and claims lock in seq order, and a heartbeat whose snapshot predates a
    // settle still locks the settled job (found by its token in that snapshot, then skipped): a
    // purge that deleted a later job and waited for an earlier one, held by such a heartbeat waiting
    // for the later one, deadlocked ("deadlock detected", one of them failed)
    it.effect("a purge racing a heartbeat whose snapshot predates the settles of its jobs: the heartbeat holds an earlier job, the purge a later one; both end, no deadlock", () => {
      const schema = freshSchema()
      const S = `"${schema}"`
      return Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        // in seq order: z (still running), a, b (the heartbeat's), c (another's)
        for (let n = 0; n < 4; n++) yield* JobQueue.enqueue(Echo, { n })
        const [z, a, b, c] = (yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 4, lease: 60_000 })).claims
        const first = yield* lockSession
        const second = yield* lockSession
        const [beater, settler, purger] = [yield* appClient(url!, 1), yield* appClient(url!, 1), yield* appClient(url!, 1)]
        // the heartbeat's snapshot: z, a and b running; it waits at z
        yield* first.hold(S, z!.job.id)
        const beat = yield* Effect.forkChild(Effect.exit(
          Postgres.heartbeatStatement(beater, beater.literal(S), [z!.token, a!.token, b!.token], 60_000, 1000)
        ))
        yield* blockedBy(first.pid)
        // b, c, a end in that order (so the table's order and the end times' agree: b, c, a)
        yield* Postgres.settleStatement(settler, settler.literal(S), final(b!.token), 10)
        yield* Postgres.settleStatement(settler, settler.literal(S), final(c!.token), 20)
        yield* Postgres.settleStatement(settler, settler.literal(S), final(a!.token), 30)
        // the purge deletes b, then waits at c
        yield* second.hold(S, c!.job.id)
        const purgePid = yield* Deferred.make<number>()
        const purge = yield* Effect.forkChild(Effect.exit(
          onBackend(purger, purgePid, Postgres.purgeStatement(purger, purger.literal(S), 1000, FINISHED, 2000))
        ))
        yield* blockedBy(second.pid)
        // the heartbeat goes on: z, then a (settled since its snapshot: locked, then skipped), then b
        yield* first.release
        yield* blockedBy(yield* Deferred.await(purgePid))
        // the purge goes on: c, then a
        yield* second.release
        const [beaten, purged] = [yield* Fiber.join(beat), yield* Fiber.join(purge)]
        assert.isTrue(Exit.isSuccess(beaten), String(beaten))
        assert.isTrue(Exit.isSuccess(purged), String(purged))
        if (Exit.isSuccess(beaten)) assert.deepStrictEqual(beaten.value.map((row) => row.lease_token), [z!.token])
        if (Exit.isSuccess(purged)) assert.strictEqual(Number(purged.value[0]!.n), 3)
      }).pipe(Effect.scoped, Effect.provide(testLayer(schema)))
    }, { timeout: 60_000 })

    // a purge deleting a cancelled dependent x (itself with a dependent) of a running job y, while y's
    // settle ends y: the settle's trigger waits for x, which the purge holds, and the purge's own
    // trigger (x was cancelled, with dependents) runs beside it (with the schema's turn of the
    // development builds, each waited for the other)
    it.effect("a purge deleting a cancelled dependent of a job being settled, the purge's delete trigger and the settle's trigger both running: both end, no deadlock", () => {
      const schema = freshSchema()
      const S = `"${schema}"`
      return Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        // in seq order: y (running), x (after y, cancelled), w (after x, cancelled by it), r (finished)
        const y = yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "a" })
        const x = yield* JobQueue.enqueue(Echo, { n: 2 }, { queue: "a", after: [y] })
        yield* JobQueue.enqueue(Echo, { n: 3 }, { queue: "a", after: [x] })
        yield* JobQueue.enqueue(Echo, { n: 4 }, { queue: "b" })
        const [claimY] = (yield* store.claim({ queues: ["a"], tasks: ["Echo"], limit: 1, lease: 60_000 })).claims
        const [claimR] = (yield* store.claim({ queues: ["b"], tasks: ["Echo"], limit: 1, lease: 60_000 })).claims
        assert.strictEqual(yield* JobQueue.cancel(x.id), "cancelled")
        const [settler, purger] = [yield* appClient(url!, 1), yield* appClient(url!, 1)]
        yield* Postgres.settleStatement(settler, settler.literal(S), final(claimR!.token), 10)
        // the purge locks x and w, then waits at r
        const holder = yield* lockSession
        yield* holder.hold(S, claimR!.job.id)
        const purgePid = yield* Deferred.make<number>()
        const purge = yield* Effect.forkChild(Effect.exit(
          onBackend(purger, purgePid, Postgres.purgeStatement(purger, purger.literal(S), 100_000_000, FINISHED, 2000))
        ))
        yield* blockedBy(holder.pid)
        // y's settle: its trigger waits for x
        const settle = yield* Effect.forkChild(Effect.exit(Postgres.settleStatement(settler, settler.literal(S), final(claimY!.token), 20)))
        yield* blockedBy(yield* Deferred.await(purgePid))
        yield* holder.release
        const [settled, purged] = [yield* Fiber.join(settle), yield* Fiber.join(purge)]
        assert.isTrue(Exit.isSuccess(settled), String(settled))
        assert.isTrue(Exit.isSuccess(purged), String(purged))
      }).pipe(Effect.scoped, Effect.provide(testLayer(schema)))
    }, { timeout: 60_000 })

    /** The schema of a store opened and closed again, taken back to version 6. */
    const version6 = (schema: string) =>
      Effect.gen(function*() {
        yield* Effect.scoped(Layer.build(testLayer(schema)))
        yield* backToVersion6(`"${schema}"`)
      })
    const versionOf = (S: string) =>
      Effect.promise(() => admin((sql) => sql<{ value: string }>`SELECT value FROM ${sql.literal(S)}.wp_meta WHERE key = 'schema_version'`))
        .pipe(Effect.map((rows) => rows[0]?.value))

    // a migration's lock on wp_job waited, without a bound, for every transaction using the table,
    // and every statement on it after (every process's heartbeats, claims, settles) waited behind
    // that lock: one long transaction (a large enqueueAll, a report) stalled the whole schema
    it.live("a store opening on an older schema while a long transaction reads the job table: the other statements on it still run (the migration gives way), and it migrates once the transaction ends", () => {
      const schema = freshSchema()
      const S = `"${schema}"`
      return Effect.gen(function*() {
        yield* version6(schema)
        const long = yield* lockSession
        yield* long.open(`SELECT count(*) FROM ${S}.wp_job`)
        const opening = yield* Effect.forkChild(Effect.exit(Effect.scoped(Layer.build(testLayer(schema)))))
        yield* blockedBy(long.pid)
        // another process's statement on the table, while the migration waits
        const other = yield* appClient(url!, 1)
        const look = yield* other`SELECT count(*)::int AS n FROM ${other.literal(S)}.wp_job`.pipe(Effect.timeoutOption("10 seconds"))
        assert.isTrue(Option.isSome(look), "a statement on the job table waited behind the migration")
        yield* long.release
        const opened = yield* Fiber.join(opening)
        assert.isTrue(Exit.isSuccess(opened), String(opened))
        assert.strictEqual(yield* versionOf(S), String(Postgres.MIGRATIONS.length))
      }).pipe(Effect.scoped)
    }, { timeout: 60_000 })

    it.live("a store opening on an older schema while a transaction holds the job table for good: its open fails typed (StoreError, migrate) after its tries, the schema left as it was", () => {
      const schema = freshSchema()
      const S = `"${schema}"`
      return Effect.gen(function*() {
        yield* version6(schema)
        const long = yield* lockSession
        yield* long.open(`SELECT count(*) FROM ${S}.wp_job`)
        const error = yield* Effect.flip(Effect.scoped(Layer.build(testLayer(schema))))
        assert.instanceOf(error, StoreError)
        assert.strictEqual(error.operation, "migrate")
        assert.include(error.reason, "long transaction")
        assert.strictEqual(yield* versionOf(S), "6")
      }).pipe(Effect.scoped)
    }, { timeout: 60_000 })

    // two purges at once (every replica's nightly purge) whose plans differ (the planner's choice for
    // their `before`, or a synchronized seq scan starting mid-table) deleted the same rows in other
    // orders, each waiting for a row the other had deleted
    it.effect("two purges at once, one reading the table in its order and one by end time: both end, no deadlock, each job deleted once", () => {
      const schema = freshSchema()
      const S = `"${schema}"`
      return Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        for (let n = 0; n < 3; n++) yield* JobQueue.enqueue(Echo, { n })
        // in seq order a, m, b; ended in that order (the table's order a, m, b), at times 30, 20, 10
        const [a, m, b] = (yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 3, lease: 60_000 })).claims
        const settler = yield* appClient(url!, 1)
        yield* Postgres.settleStatement(settler, settler.literal(S), final(a!.token), 30)
        yield* Postgres.settleStatement(settler, settler.literal(S), final(m!.token), 20)
        yield* Postgres.settleStatement(settler, settler.literal(S), final(b!.token), 10)
        const holder = yield* lockSession
        yield* holder.hold(S, m!.job.id)
        const [one, two] = [yield* appClient(url!, 1), yield* appClient(url!, 1)]
        const purging = (sql: PgClient.PgClient, settings: ReadonlyArray<string>) =>
          Effect.gen(function*() {
            const pid = yield* Deferred.make<number>()
            return yield* Effect.forkChild(Effect.exit(
              onBackend(sql, pid, Postgres.purgeStatement(sql, sql.literal(S), 1000, FINISHED, 2000), settings)
            ))
          })
        // the first deletes a, then waits at m; the second deletes b, then waits at m
        const byTable = yield* purging(one, ["enable_indexscan = off", "enable_bitmapscan = off"])
        yield* blockedBy(holder.pid)
        const byEnd = yield* purging(two, ["enable_seqscan = off", "enable_bitmapscan = off"])
        yield* lockWaitersOn(schema, 2)
        yield* holder.release
        const results = [yield* Fiber.join(byTable), yield* Fiber.join(byEnd)]
        for (const result of results) assert.isTrue(Exit.isSuccess(result), String(result))
        assert.strictEqual(results.reduce((sum, result) => sum + (Exit.isSuccess(result) ? Number(result.value[0]!.n) : 0), 0), 3)
      }).pipe(Effect.scoped, Effect.provide(testLayer(schema)))
    }, { timeout: 60_000 })
  })
}

if (enabled) {
  describe("the Postgres store's tables dropped under it", () => {
    it.live("a schema version that is not a number (an empty string) is refused at open, not read as 0 (every migration run again)", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const store = PgJobStore.layer({ url: url!, schema, maxConnections: 2 })
        yield* Effect.scoped(Layer.build(store))
        yield* Effect.promise(() => admin((sql) => sql.unsafe(`UPDATE "${schema}".wp_meta SET value = '' WHERE key = 'schema_version'`).raw))
        const exit = yield* Effect.exit(Effect.scoped(Layer.build(store)))
        assert.isTrue(Exit.isFailure(exit))
        assert.include(String(exit), "this code knows versions up to")
      }), { timeout: 60_000 })

    it.live("an operation on a dropped schema fails with StoreError saying to open the store again (its open recreates them)", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const store = PgJobStore.layer({ url: url!, schema, maxConnections: 2 })
        const error = yield* Effect.gen(function*() {
          yield* JobQueue.enqueue(Echo, { n: 1 })
          yield* Effect.promise(() => admin((sql) => sql.unsafe(`DROP SCHEMA "${schema}" CASCADE`).raw))
          return yield* Effect.flip(JobQueue.enqueue(Echo, { n: 2 }))
        }).pipe(Effect.scoped, Effect.provide(store), Effect.timeout("30 seconds"))
        assert.strictEqual(error._tag, "StoreError")
        assert.include((error as StoreError).reason, "does not exist")
        assert.include((error as StoreError).reason, "open the store again")
        // and it does: a new open recreates the schema
        const again = yield* Effect.scoped(Effect.flatMap(JobQueue.enqueue(Echo, { n: 3 }), (job) => Effect.succeed(job.id))).pipe(Effect.provide(store))
        assert.isString(again)
      }), { timeout: 60_000 })
  })
}
