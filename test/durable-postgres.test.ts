/**
 * The Postgres store: the conformance suite (under TestClock, the store's time from the Effect
 * Clock), then what only Postgres does, live on the public layer (the server's clock): concurrent
 * migrations, wake-ups across store instances by LISTEN/NOTIFY, the claim served by its index, bad
 * URLs and unreachable servers as typed errors.
 */
import { assert, describe, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import { existsSync, mkdtempSync, realpathSync, rmSync, symlinkSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { PgClient } from "@effect/sql-pg"
import { Context, Deferred, Effect, Exit, Fiber, Latch, Layer, Redacted, Schedule, type Scope } from "effect"
import * as DurableError from "../src/DurableError.ts"
import { StoreError } from "../src/DurableError.ts"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as Postgres from "../src/internal/store/postgres.ts"
import * as RetainCount from "../src/internal/store/retainCount.ts"
import * as PgJobStore from "../src/PgJobStore.ts"
import type { Store } from "../src/internal/store/model.ts"
import * as Task from "../src/Task.ts"
import * as Reactivity from "effect/reactivity/Reactivity"
import { claimsAmongOtherTasks, concurrencyCapFreedElsewhere, concurrencyCapTwoInstances, conformance, connectionsKilled, groupWalkBudget, groupWalkPastTaken, dedupRaceAcrossInstances, delayedWakeAcrossInstances, delayOnServerClock, Echo, notAfterOnServerClock, rateLimitChangeAcrossInstances, rateLimitLiftTwoInstances, retentionAcrossInstances } from "./durable/conformance.ts"
import { hasCommit, waitFor } from "./helpers.ts"
import * as pgServer from "./durable/pgserver.ts"
import { admin, adminOn, backToBeforeCaps, backToBeforeDependencies, backToBeforeExpiry, backToBeforeDedupModes, backToBeforeGroupDue, backToBeforeGroups, backToBeforeHolds, backToVersion6, beforeRetention, backToVersion7, blockedBy, enabled, freshSchema, genericPlan, listenBackends, listeners, lockSession, lockWaitersOn, ownServer, testLayer, undoDedupModes, url, versionAndIndex } from "./durable/postgres.ts"

if (!enabled) describe.skip("the Postgres store (WORKPOOL_PG_URL is not set)", () => {})
else {
  conformance("Postgres", () => testLayer())
  /** The schema version every migration reaches (the test names each one's index, which comes with it). */
  const LATEST = String(Postgres.MIGRATIONS.length)
  /** Migration `version`'s text for schema `S` (quoted) as `commit`'s code had it: its tree extracted, its module run by node. */
  const oldMigration = (commit: string, version: number, S: string): string => {
    const dir = mkdtempSync(join(tmpdir(), "wp-old-"))
    try {
      execFileSync("sh", ["-c", `git archive "${commit}" src package.json | tar -x -C "${dir}"`])
      symlinkSync(realpathSync("node_modules"), join(dir, "node_modules"))
      const node = existsSync("node_modules/.bin/node") ? "node_modules/.bin/node" : process.execPath
      const script = `const m = await import(${JSON.stringify(join(dir, "src/internal/store/postgres.ts"))}); process.stdout.write(m.MIGRATIONS[${version - 1}](${JSON.stringify(S)}))`
      return execFileSync(node, ["--input-type=module", "-e", script], { encoding: "utf8" })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }

  const layer = (schema: string, options: Partial<PgJobStore.PgJobStoreOptions> = {}) =>
    PgJobStore.layer({ url: url!, schema, maxConnections: 2, ...options })

  describe("the Postgres store", () => {
    // counted once the store's listener hears the queue: its LISTEN's one wake-up (for jobs that came
    // before it; seen under load as a second claim) is not a look of the ten minutes, in which the
    // three enqueues' NOTIFYs, sent before the LISTEN, are never heard
    it.effect("an idle consumer whose queue holds only jobs of tasks it does not handle claims once its store listens, not again at every poll or look", () =>
      Effect.map(claimsAmongOtherTasks(testLayer()), (claims) => assert.strictEqual(claims, 0)))

    it.effect("a delay counts on the server's clock, not the producer's (here a TestClock at 1970)", () =>
      Effect.provide(delayOnServerClock, layer(freshSchema())))

    it.effect("a repeat's tick's notAfter is checked on the server's clock as the insert reaches it, not the producer's (here a TestClock at 1970)", () =>
      Effect.provide(notAfterOnServerClock, layer(freshSchema())))

    // a settle stamps finished_at with its statement's start time but becomes visible only at its
    // commit: a read by time between the two moved `until` past a job it could not see yet, and the
    // next read (since = that until) started after it, so the job was in no interval. The cursor is
    // a snapshot of the committed transactions instead (see latenciesStatement)
    it.live("latencies: a job whose settle commits after an interval's read, stamped before it, still counts in the next one", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const locker = yield* lockSession
        yield* Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "race" })
          const [claim] = (yield* store.claim({ queues: ["race"], tasks: ["Echo"], limit: 1, lease: 60_000 })).claims
          const start = yield* store.latencies("race", undefined, 10)
          // another transaction holds the row: the settle's statement starts (its now()) and waits
          yield* locker.hold(`"${schema}"`, job.id)
          const settling = yield* Effect.forkChild(
            store.settle(claim!.token, { _tag: "Final", state: "succeeded", exit: JSON.stringify({ _tag: "Success", value: 1 }) })
          )
          yield* blockedBy(locker.pid) // the settle waits for the lock
          yield* Effect.sleep("20 millis") // the server's clock moves past the settle's stamp
          const between = yield* store.latencies("race", start.until, 10)
          assert.deepStrictEqual(between.jobs, [], "not committed yet")
          yield* locker.release
          assert.isTrue(yield* Fiber.join(settling))
          assert.strictEqual((yield* store.latencies("race", start.until, 10)).jobs.length, 1, "it ended after `start`")
          const next = yield* store.latencies("race", between.until, 10)
          assert.strictEqual(next.jobs.length, 1, "between's read did not count it: the next one must")
        }).pipe(Effect.provide(layer(schema, { maxConnections: 4 }))) // one waits on the lock, one listens
      }).pipe(Effect.scoped), { timeout: 30_000 })

    it.live("processes starting together migrate once: the advisory lock serializes them", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const starters = Array.from({ length: 6 }, () => Effect.provide(JobQueue.stats("default"), layer(schema)))
        const results = yield* Effect.all(starters, { concurrency: "unbounded", mode: "result" })
        for (const result of results) assert.strictEqual(result._tag, "Success", JSON.stringify(result))
        assert.deepStrictEqual(yield* versionAndIndex(schema, "wp_job_counted"), [[LATEST], ["wp_job_counted"]])
      }), { timeout: 60_000 })

    it.live("a schema from a newer version is refused, not migrated down", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        yield* Effect.provide(JobQueue.stats("default"), layer(schema))
        yield* Effect.promise(() =>
          admin((sql) => sql`UPDATE ${sql.literal(`"${schema}"`)}.wp_meta SET value = '99' WHERE key = 'schema_version'`)
        )
        const error = yield* Effect.flip(Effect.provide(JobQueue.stats("default"), layer(schema)))
        assert.instanceOf(error, StoreError)
        assert.strictEqual((error as StoreError).operation, "migrate")
        assert.match(error.message, new RegExp(`version 99.*up to ${Postgres.MIGRATIONS.length}`))
      }))

    it.live("a version-1 schema is migrated to the latest version on start, and its jobs run", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const S = `"${schema}"`
        yield* Effect.provide(JobQueue.enqueue(Echo, { n: 4 }), layer(schema))
        // back to what version 1 left: no progress column (2), no rate limits (3), no trace column (4), no retry column (5),
        // no index of delayed jobs (6), no settling transaction (7), no counts' index (8), dedup modes (9), retention (10), caps (11), queue holds (12)
        yield* Effect.promise(() =>
          admin((sql) =>
            Effect.forEach([
              `ALTER TABLE ${S}.wp_job DROP COLUMN progress, DROP COLUMN trace, DROP COLUMN retry, DROP COLUMN settled_xid`,
              `ALTER TABLE ${S}.wp_queue DROP COLUMN rate_limit, DROP COLUMN rate_interval_ms, DROP COLUMN rate_count`,
              `DROP TABLE ${S}.wp_rate`,
              `DROP INDEX ${S}.wp_job_delayed`,
              `DROP INDEX ${S}.wp_job_counted`,
              ...beforeRetention(S),
              undoDedupModes(S),
              `UPDATE ${S}.wp_meta SET value = '1' WHERE key = 'schema_version'`
            ], (statement) => sql.unsafe(statement).raw, { discard: true })
          )
        )
        const [result] = yield* Effect.gen(function*() {
          yield* JobQueue.consume({ handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n * 2))], concurrency: 1 })
          const [job] = yield* JobQueue.list()
          return [yield* JobQueue.await(Echo, job!.id)]
        }).pipe(Effect.scoped, Effect.provide(layer(schema)), Effect.timeout("30 seconds"))
        assert.strictEqual(result, 8)
        assert.deepStrictEqual(yield* versionAndIndex(schema, "wp_job_counted"), [[LATEST], ["wp_job_counted"]])
      }), { timeout: 60_000 })

    it.live("a version-6 schema with jobs that ended is migrated to version 7 in place: the jobs that ended before are in no latencies read, those after are", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const S = `"${schema}"`
        const run = <A, E>(effect: Effect.Effect<A, E, JobStore.JobStore | Scope.Scope>) =>
          effect.pipe(Effect.provide(layer(schema)), Effect.scoped, Effect.timeout("30 seconds"))
        const handlers = [Task.handle(Echo, ({ n }) => Effect.succeed(n * 2))]
        const runOne = (n: number) =>
          Effect.gen(function*() {
            yield* JobQueue.consume({ handlers, concurrency: 1 })
            const job = yield* JobQueue.enqueue(Echo, { n })
            return yield* JobQueue.await(Echo, job.id)
          })
        assert.strictEqual(yield* run(runOne(1)), 2)
        yield* backToVersion6(S)
        const [before, after, again] = yield* run(Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          const start = yield* store.latencies("default", undefined, 10)
          const before = yield* store.latencies("default", start.until, 10)
          const result = yield* runOne(2)
          return [before.jobs.length, (yield* store.latencies("default", before.until, 10)).jobs.length, result] as const
        }))
        assert.deepStrictEqual([before, after, again], [0, 1, 4])
        assert.deepStrictEqual(yield* versionAndIndex(schema, "wp_job_settled"), [[LATEST], ["wp_job_settled"]])
      }), { timeout: 60_000 })

    // the counts read each state from an index of the queue (durable-scale-hostile checks the plan):
    // here that they are exactly those of a plain GROUP BY over the table, for two queues of every
    // state, delayed beside waiting at now, three priorities, one queue paused with aging
    it.live("a version-7 schema with jobs of every state is migrated to version 8 in place (the counts' index), and its counts are those of a read of the whole table", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const S = `"${schema}"`
        const stats = (queue: string) => Effect.provide(JobQueue.stats(queue), layer(schema)).pipe(Effect.timeout("30 seconds"))
        yield* stats("a")
        yield* backToVersion7(S)
        const now = Date.now()
        yield* Effect.promise(() =>
          admin((sql) =>
            Effect.forEach([
              `INSERT INTO ${S}.wp_job (id, queue, task, payload, priority, rank, state, max_attempts, timeout_ms, created_at,
                visible_at, finished_at, lease_token, lease_until, settled_xid)
                SELECT 'job-' || i, (ARRAY['a', 'b'])[1 + i % 2], 'Echo', '{}', (ARRAY[0, 1, 5])[1 + i % 3], 0,
                  (ARRAY['queued', 'running', 'succeeded', 'dead', 'cancelled', 'queued', 'queued'])[1 + i % 7], 1, 0, ${now} - 5000,
                  ${now} + CASE WHEN i % 11 < 4 THEN 3600000 ELSE -1000 END, CASE WHEN i % 7 IN (2, 3, 4) THEN ${now} END,
                  CASE WHEN i % 7 = 1 THEN 'token-' || i END, CASE WHEN i % 7 = 1 THEN ${now} + 60000 END,
                  CASE WHEN i % 7 IN (2, 3) THEN i END
                FROM generate_series(1, 1000) i`,
              `INSERT INTO ${S}.wp_queue (name, paused, aging_ms) VALUES ('a', true, 250) ON CONFLICT (name) DO UPDATE SET paused = true, aging_ms = 250`
            ], (statement) => sql.unsafe(statement).raw, { discard: true })
          )
        )
        const [a, b] = [yield* stats("a"), yield* stats("b")]
        const truth = yield* Effect.promise(() =>
          admin((sql) =>
            sql.unsafe<{ queue: string; kind: string; priority: number | null; n: number }>(
              `SELECT queue, CASE WHEN state = 'queued' AND visible_at > ${now} THEN 'delayed' WHEN state = 'queued' THEN 'waiting' ELSE state END AS kind,
                CASE WHEN state = 'queued' THEN priority END AS priority, COUNT(*)::int AS n FROM ${S}.wp_job GROUP BY 1, 2, 3`
            )
          )
        )
        const expected = (queue: string, paused: boolean, aging: number) => {
          const rows = truth.filter((row) => row.queue === queue)
          const count = (kind: string) => rows.filter((row) => row.kind === kind).reduce((sum, row) => sum + row.n, 0)
          const priorities = [5, 1, 0].map((priority) => ({
            priority,
            count: rows.filter((row) => row.priority === priority).reduce((sum, row) => sum + row.n, 0)
          }))
          return {
            queue,
            paused,
            aging,
            blocked: count("blocked"),
            waiting: count("waiting"),
            delayed: count("delayed"),
            running: count("running"),
            succeeded: count("succeeded"),
            dead: count("dead"),
            cancelled: count("cancelled"),
            queuedByPriority: priorities,
            rateLimit: undefined
          }
        }
        assert.deepStrictEqual(a, expected("a", true, 250))
        assert.deepStrictEqual(b, expected("b", false, 0))
        // every state there, in both queues
        for (const counts of [a, b]) assert.isTrue([counts.waiting, counts.delayed, counts.running, counts.succeeded, counts.dead, counts.cancelled].every((n) => n > 0))
        assert.deepStrictEqual(yield* versionAndIndex(schema, "wp_job_counted"), [[LATEST], ["wp_job_counted"]])
      }), { timeout: 60_000 })

    it.live("a schema from before queue holds (version 11) is migrated in place: its queued job is held by a hold, counts its snoozes, and runs once the hold is lifted", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const job = yield* Effect.provide(JobQueue.enqueue(Echo, { n: 1 }), layer(schema))
        yield* backToBeforeHolds(`"${schema}"`)
        yield* Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          const request = { queues: ["default"], tasks: ["Echo"], limit: 1, lease: 60_000 }
          yield* JobQueue.holdQueue("default", "1 hour")
          assert.deepStrictEqual((yield* store.claim(request)).claims, [], "held")
          yield* JobQueue.holdQueue("default", 0)
          const [claim] = (yield* store.claim(request)).claims
          assert.strictEqual(claim!.job.id, job.id)
          assert.isTrue(yield* store.settle(claim!.token, { _tag: "Release", delay: 1 }))
          assert.strictEqual((yield* JobQueue.status(job.id)).snoozes, 1)
        }).pipe(Effect.scoped, Effect.provide(layer(schema)))
        assert.deepStrictEqual((yield* versionAndIndex(schema, "wp_job_counted"))[0], [LATEST])
      }), { timeout: 60_000 })

    it.live("a schema from before per-key caps (version 12) is migrated in place: its queued jobs, ungrouped, are claimed under a cap set after; a job with a group is kept with it", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const old = yield* Effect.provide(
          Effect.forEach([1, 2], (n) => JobQueue.enqueue(Echo, { n })),
          layer(schema)
        )
        yield* backToBeforeGroups(`"${schema}"`)
        yield* Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          yield* JobQueue.setGroupConcurrency("default", 1)
          const grouped = yield* JobQueue.enqueueAll(Echo, [{ payload: { n: 3 } }, { payload: { n: 4 } }], { group: "g" })
          const claimed = (yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 10, lease: 60_000 })).claims
          assert.sameMembers(claimed.map((c) => c.job.id), [old[0]!.id, old[1]!.id, grouped[0]!.id], "the old ones ungrouped, one of g")
          assert.strictEqual((yield* JobQueue.status(grouped[1]!.id)).group, "g")
        }).pipe(Effect.scoped, Effect.provide(layer(schema)))
        assert.deepStrictEqual(yield* versionAndIndex(schema, "wp_job_group_ready"), [[LATEST], ["wp_job_group_ready"]])
        assert.deepStrictEqual(yield* versionAndIndex(schema, "wp_job_group_due"), [[LATEST], ["wp_job_group_due"]])
      }), { timeout: 60_000 })

    // A known gap, kept as a failing test (docs/durable.md, "Per-key caps": set the first cap before
    // enqueueing): an ungrouped job enqueued in a transaction (layerClient) that read the queue before
    // its first setGroupConcurrency, committed after it, gets no key ('' neither from its insert nor
    // from the cap's backfill, which cannot see it), and a claim under the cap walks keyed jobs only.
    // It fails while the gap is open: when it passes, make it an it.live.
    it.live.fails("a job enqueued in a transaction open across the queue's first per-key cap is claimed under it", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const sql = yield* PgClient.make({ url: Redacted.make(url!), maxConnections: 3 }).pipe(
          Effect.provideServiceEffect(Reactivity.Reactivity, Reactivity.make)
        )
        const store = yield* Postgres.makeWith(sql, yield* Postgres.clientOptions({ schema }))
        const jobs = <A, E>(effect: Effect.Effect<A, E, JobStore.JobStore>) => Effect.provideService(effect, JobStore.JobStore, store)
        const enqueued = yield* Deferred.make<void>()
        const capSet = yield* Deferred.make<void>()
        const producer = yield* Effect.forkChild(sql.withTransaction(Effect.gen(function*() {
          yield* jobs(JobQueue.enqueue(Echo, { n: 1 }))
          yield* Deferred.succeed(enqueued, undefined)
          yield* Deferred.await(capSet)
        })))
        yield* Deferred.await(enqueued)
        yield* jobs(JobQueue.setGroupConcurrency("default", 1))
        yield* Deferred.succeed(capSet, undefined)
        yield* Fiber.join(producer)
        const { claims } = yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 10, lease: 60_000 })
        assert.strictEqual(claims.length, 1, "the committed job is claimed")
      }).pipe(Effect.scoped, Effect.timeout("30 seconds")), { timeout: 60_000 })

    it.live("a schema of version 13 (per-key caps without wp_job_group_due) is migrated in place: the index built, its keyed jobs claimed in their keys' turn past a key of delayed jobs", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        yield* Effect.provide(
          Effect.gen(function*() {
            yield* JobQueue.setGroupConcurrency("default", 1)
            yield* JobQueue.enqueue(Echo, { n: 1 }, { group: "a", delay: "1 hour" })
            yield* JobQueue.enqueueAll(Echo, [{ payload: { n: 2 } }, { payload: { n: 3 } }], { group: "b" })
          }),
          layer(schema)
        )
        yield* backToBeforeGroupDue(`"${schema}"`)
        assert.deepStrictEqual(yield* versionAndIndex(schema, "wp_job_group_due"), [["13"], []])
        yield* Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          const claimed = (yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 10, lease: 60_000 })).claims
          assert.deepStrictEqual(claimed.map((c) => JSON.parse(c.job.payload).n), [2], "b's first: a's is delayed, b at its cap")
        }).pipe(Effect.scoped, Effect.provide(layer(schema)))
        assert.deepStrictEqual(yield* versionAndIndex(schema, "wp_job_group_due"), [[LATEST], ["wp_job_group_due"]])
      }), { timeout: 60_000 })

    it.live("a schema of version 14 (before expiries) is migrated in place: the column and its index added, its old jobs never expire, a new job's expiry works", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const [old] = yield* Effect.provide(JobQueue.enqueueAll(Echo, [{ payload: { n: 1 } }]), layer(schema))
        yield* backToBeforeExpiry(`"${schema}"`)
        assert.deepStrictEqual(yield* versionAndIndex(schema, "wp_job_expiring"), [["14"], []])
        yield* Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          const fresh = yield* JobQueue.enqueue(Echo, { n: 2 }, { expireIn: "1 second", delay: "500 millis" })
          const created = (yield* JobQueue.status(fresh.id)).createdAt.getTime()
          assert.strictEqual((yield* JobQueue.status(fresh.id)).expiresAt?.getTime(), created + 1000)
          assert.isUndefined((yield* JobQueue.status(old!.id)).expiresAt)
          // real time: the server's clock passes the expiry before the claim
          while ((yield* store.now) <= created + 1000) yield* Effect.sleep(50)
          const claimed = (yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 10, lease: 60_000 })).claims
          assert.deepStrictEqual(claimed.map((c) => c.job.id), [old!.id])
          assert.instanceOf(yield* Effect.flip(fresh.await), DurableError.JobExpired)
        }).pipe(Effect.scoped, Effect.provide(layer(schema)))
        assert.deepStrictEqual(yield* versionAndIndex(schema, "wp_job_expiring"), [[LATEST], ["wp_job_expiring"]])
      }), { timeout: 60_000 })

    it.live("a schema of version 15 (before dependencies) is migrated in place: its old job runs, a new job runs after it, and while blocked holds its dedup key", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const [old] = yield* Effect.provide(JobQueue.enqueueAll(Echo, [{ payload: { n: 1 } }]), layer(schema))
        yield* backToBeforeDependencies(`"${schema}"`)
        assert.deepStrictEqual(yield* versionAndIndex(schema, "wp_job_blocked"), [["15"], []])
        yield* Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          const after = yield* JobQueue.enqueue(Echo, { n: 2 }, { after: [old!.id], dedupKey: "k" })
          assert.deepStrictEqual([(yield* JobQueue.status(after.id)).state, (yield* JobQueue.stats("default")).blocked], ["blocked", 1])
          assert.strictEqual((yield* JobQueue.enqueue(Echo, { n: 3 }, { dedupKey: "k" })).id, after.id, "the blocked one holds the key")
          const claimed = (yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 10, lease: 60_000 })).claims
          assert.deepStrictEqual(claimed.map((c) => c.job.id), [old!.id], "the blocked one is not claimed")
          assert.isTrue(yield* store.settle(claimed[0]!.token, { _tag: "Final", state: "succeeded", exit: null }))
          assert.deepStrictEqual([(yield* JobQueue.status(after.id)).state, (yield* JobQueue.status(after.id)).waitingFor], ["queued", 0])
        }).pipe(Effect.scoped, Effect.provide(layer(schema)))
        assert.deepStrictEqual(yield* versionAndIndex(schema, "wp_job_blocked"), [[LATEST], ["wp_job_blocked"]])
      }), { timeout: 60_000 })

    // The tests of an operator's CREATE INDEX CONCURRENTLY, each on a server of its own: such a
    // build waits for every transaction of its database older than it (whatever it touches), and the
    // shared database's other tests (other files too) keep some open: under load builds waited past
    // their test's 60 s
    describe.skipIf(pgServer.binaries() === undefined)("on a server of its own", () => {
      /** A server of the test's own: its url, SQL on it outside any store, and the public layer on it. */
      const ownDatabase = Effect.map(ownServer(), (server) => ({
        url: server.url,
        admin: <A>(f: (sql: PgClient.PgClient) => Effect.Effect<A, unknown>) => adminOn(server.url, f),
        layer: (schema: string) => PgJobStore.layer({ url: server.url, schema, maxConnections: 2 })
      }))

      // review25: an operator keeps the build out of the upgrade on a large table by making the index
      // first, concurrently (docs/durable.md); the migration failed on it ("already exists")
      it.live("a version-7 schema whose counts' index an operator built first (CREATE INDEX CONCURRENTLY) is migrated to version 8 over it", () =>
        Effect.gen(function*() {
          const { admin, layer, url } = yield* ownDatabase
          const schema = "wp_prebuilt"
          const S = `"${schema}"`
          const stats = Effect.provide(JobQueue.stats("a"), layer(schema)).pipe(Effect.timeout("30 seconds"))
          yield* stats
          yield* backToVersion7(S, url)
          yield* Effect.promise(() =>
            admin((sql) =>
              sql.unsafe(`CREATE INDEX CONCURRENTLY wp_job_counted ON ${S}.wp_job (queue, state) WHERE state IN ('running', 'dead', 'cancelled')`).raw
            )
          )
          yield* stats
          assert.deepStrictEqual(yield* versionAndIndex(schema, "wp_job_counted", url), [[LATEST], ["wp_job_counted"]])
        }).pipe(Effect.scoped), { timeout: 60_000 })

      // Was a bug (fixed): an invalid wp_job_group_due, which a failed or cancelled CREATE INDEX
      // CONCURRENTLY pre-build (docs/durable.md, "Rolling upgrades") leaves, was kept by the migration's
      // CREATE INDEX IF NOT EXISTS: no plan uses it, and each claim's probe of a key read the table.
      it.live("a schema of version 13 with an invalid wp_job_group_due (a pre-build that failed) is migrated to a valid one", () =>
        Effect.gen(function*() {
          const { admin, layer, url } = yield* ownDatabase
          const schema = "wp_prebuilt"
          const S = `"${schema}"`
          yield* Effect.provide(JobQueue.enqueueAll(Echo, [{ payload: { n: 1 } }, { payload: { n: 2 } }]), layer(schema))
          yield* backToBeforeGroupDue(S, url)
          // unique over the queue of two jobs: the concurrent build fails, and leaves its index invalid
          yield* Effect.flip(Effect.tryPromise(() =>
            admin((sql) => sql.unsafe(`CREATE UNIQUE INDEX CONCURRENTLY wp_job_group_due ON ${S}.wp_job (queue)`))
          ))
          const index = Effect.promise(() =>
            admin((sql) =>
              sql<{ valid: boolean; def: string }>`
                SELECT i.indisvalid AS valid, pg_get_indexdef(i.indexrelid) AS def FROM pg_index i
                JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = ${schema} AND c.relname = 'wp_job_group_due'`
            )
          ).pipe(Effect.map((rows) => rows.map((row) => [row.valid, /\(queue, group_key, visible_at\) WHERE/.test(row.def)])))
          assert.deepStrictEqual(yield* index, [[false, false]], "left invalid")
          yield* Effect.provide(JobQueue.setGroupConcurrency("default", 1), layer(schema))
          assert.deepStrictEqual(yield* versionAndIndex(schema, "wp_job_group_due", url), [[LATEST], ["wp_job_group_due"]])
          assert.deepStrictEqual(yield* index, [[true, true]], "built again by the migration, valid")
        }).pipe(Effect.scoped), { timeout: 60_000 })

      // review41 M8: migration 16 held wp_job through its index builds (the dedup index's DROP and
      // CREATE could not be skipped). Built first, concurrently (docs/durable.md "Rolling upgrades"),
      // each is kept: the dedup one under its build's name, renamed; nothing is built again
      it.live("a version-15 schema whose dependencies' indexes an operator built first (CREATE INDEX CONCURRENTLY) is migrated to version 16 over them, none built again", () =>
        Effect.gen(function*() {
          const { admin, layer, url } = yield* ownDatabase
          const schema = "wp_prebuilt"
          const S = `"${schema}"`
          yield* Effect.provide(JobQueue.enqueue(Echo, { n: 1 }, { dedupKey: "k" }), layer(schema))
          yield* backToBeforeDependencies(S, url)
          const prebuilt = [
            `CREATE INDEX CONCURRENTLY wp_job_blocked ON ${S}.wp_job (queue) WHERE state = 'blocked'`,
            `CREATE INDEX CONCURRENTLY wp_job_blocked_expiring ON ${S}.wp_job (expire_at) WHERE state = 'blocked' AND expire_at IS NOT NULL`,
            `CREATE UNIQUE INDEX CONCURRENTLY wp_job_dedup_blocked ON ${S}.wp_job (queue, dedup_key)
              WHERE dedup_key IS NOT NULL AND state IN ('queued', 'running', 'blocked')`
          ]
          for (const statement of prebuilt) yield* Effect.promise(() => admin((sql) => sql.unsafe(statement).raw))
          const indexes = Effect.promise(() =>
            admin((sql) =>
              sql<{ name: string; oid: number }>`SELECT c.relname AS name, c.oid::int AS oid FROM pg_class c
                JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = ${schema} AND c.relname LIKE 'wp_job_%' AND c.relkind = 'i' ORDER BY c.relname`
            )
          )
          const before = new Map((yield* indexes).map((row) => [row.name, row.oid]))
          const made = yield* Effect.provide(JobQueue.enqueue(Echo, { n: 2 }, { dedupKey: "k" }), layer(schema))
          const after = new Map((yield* indexes).map((row) => [row.name, row.oid]))
          assert.deepStrictEqual(
            ["wp_job_blocked", "wp_job_blocked_expiring", "wp_job_dedup"].map((name) => after.get(name)),
            ["wp_job_blocked", "wp_job_blocked_expiring", "wp_job_dedup_blocked"].map((name) => before.get(name))
          )
          assert.isFalse(after.has("wp_job_dedup_blocked"))
          assert.deepStrictEqual((yield* versionAndIndex(schema, "wp_job_blocked", url))[0], [LATEST])
          assert.isFalse(made.created, "the key is still held")
        }).pipe(Effect.scoped), { timeout: 60_000 })
    })

    // review42 L6: CREATE UNIQUE INDEX IF NOT EXISTS wp_job_dedup_blocked looked at the name only: a
    // pre-build with a typo (here not UNIQUE) was kept, renamed to wp_job_dedup, and a second job
    // with a key an unfinished job held was created. The migration now drops an index of its name
    // unlike its own build, and builds it
    it.live("a version-15 schema whose dedup index an operator pre-built wrong (not UNIQUE) is migrated to the unique one: a held key still dedups", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const S = `"${schema}"`
        yield* Effect.provide(JobQueue.enqueue(Echo, { n: 1 }), layer(schema))
        yield* backToBeforeDependencies(S)
        yield* Effect.promise(() =>
          admin((sql) =>
            sql.unsafe(`CREATE INDEX wp_job_dedup_blocked ON ${S}.wp_job (queue, dedup_key)
              WHERE dedup_key IS NOT NULL AND state IN ('queued', 'running', 'blocked')`).raw
          )
        )
        const made = yield* Effect.provide(
          Effect.all([JobQueue.enqueue(Echo, { n: 2 }, { dedupKey: "k" }), JobQueue.enqueue(Echo, { n: 3 }, { dedupKey: "k" })]),
          layer(schema)
        )
        assert.deepStrictEqual(made.map((job) => job.created), [true, false], "the second enqueue meets the first's key")
        const [index] = yield* Effect.promise(() =>
          admin((sql) =>
            sql<{ unique: boolean }>`SELECT i.indisunique AS unique FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
              JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ${schema} AND c.relname = 'wp_job_dedup'`
          )
        )
        assert.deepStrictEqual(index, { unique: true })
        assert.deepStrictEqual(yield* versionAndIndex(schema, "wp_job_dedup_blocked"), [[LATEST], []])
      }), { timeout: 60_000 })

    // review42 M3: migration 16 was changed in place before 0.3.0. A development build's 16 (here
    // 244e902's) made the dependents' triggers row triggers, and an index for them: a schema it
    // migrated kept both, and the deadlocks the statement triggers mend. Version 17 replaces them
    it.live.skipIf(!hasCommit("244e902"))("a schema that a development build's migration 16 made (row triggers, wp_job_ended_dependents) gets the statement triggers, the index dropped", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const S = `"${schema}"`
        yield* Effect.provide(JobQueue.enqueue(Echo, { n: 1 }), layer(schema))
        yield* backToBeforeDependencies(S)
        for (const statement of Postgres.statementsOf(oldMigration("244e902", 16, S))) {
          yield* Effect.promise(() => admin((sql) => sql.unsafe(statement).raw))
        }
        yield* Effect.promise(() => admin((sql) => sql.unsafe(`UPDATE ${S}.wp_meta SET value = '16' WHERE key = 'schema_version'`).raw))
        const triggers = Effect.promise(() =>
          admin((sql) =>
            sql<{ name: string; row: boolean }>`SELECT t.tgname AS name, (t.tgtype & 1) = 1 AS row FROM pg_trigger t
              JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = ${schema} AND t.tgname IN ('wp_job_ended', 'wp_job_dropped') ORDER BY t.tgname`
          )
        ).pipe(Effect.map((rows) => rows.map((row) => [row.name, row.row])))
        assert.deepStrictEqual(yield* triggers, [["wp_job_dropped", true], ["wp_job_ended", true]], "the old build's row triggers")
        assert.deepStrictEqual((yield* versionAndIndex(schema, "wp_job_ended_dependents"))[1], ["wp_job_ended_dependents"])
        yield* Effect.provide(JobQueue.enqueue(Echo, { n: 2 }), layer(schema))
        assert.deepStrictEqual(yield* triggers, [["wp_job_dropped", false], ["wp_job_ended", false]])
        assert.deepStrictEqual(yield* versionAndIndex(schema, "wp_job_ended_dependents"), [[LATEST], []])
      }), { timeout: 60_000 })

    // review42b M4: a trigger function's text can change after its migration landed (17's was
    // edited in place before 0.3.0), and a schema at the version kept the text it was migrated with.
    // The open now replaces a function whose text is not this build's, unless a newer build's
    // revision is written (it would put its own back at its next open, and this one again)
    it.live("a schema at this version whose dependents' trigger function has another text gets this build's at open, unless a newer build's revision is written", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const S = `"${schema}"`
        const run = (statement: string) => Effect.promise(() => admin((sql) => sql.unsafe(statement).raw))
        const body = Effect.promise(() =>
          admin((sql) =>
            sql<{ body: string }>`SELECT p.prosrc AS body FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = ${schema} AND p.proname = 'wp_dependents_ended'`
          )
        ).pipe(Effect.map((rows) => rows[0]!.body))
        const ours = Postgres.statementsOf(Postgres.MIGRATIONS[16]!(S))[0]!.split("$wp$")[1]
        yield* Effect.provide(JobQueue.enqueue(Echo, { n: 1 }), layer(schema))
        assert.strictEqual(yield* body, ours)
        // an old body: one that settles no dependents
        const old = `CREATE OR REPLACE FUNCTION ${S}.wp_dependents_ended() RETURNS trigger LANGUAGE plpgsql AS $wp$ BEGIN RETURN NULL; END $wp$`
        yield* run(old)
        const deathCancels = Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          const head = yield* JobQueue.enqueue(Echo, { n: 2 }, { queue: "head" })
          const after = yield* JobQueue.enqueue(Echo, { n: 3 }, { queue: "after", after: [head] })
          const [claimed] = (yield* store.claim({ queues: ["head"], tasks: ["Echo"], limit: 1, lease: 60_000 })).claims
          yield* store.settle(claimed!.token, { _tag: "Final", state: "dead", exit: null })
          return (yield* JobQueue.status(after.id)).state
        })
        assert.strictEqual(yield* Effect.provide(deathCancels, layer(schema)), "cancelled", "the open put this build's text back")
        assert.strictEqual(yield* body, ours)
        // a newer build's revision: its text is left as it is
        yield* run(`UPDATE ${S}.wp_meta SET value = '999' WHERE key = 'triggers'`)
        yield* run(old)
        assert.strictEqual(yield* Effect.provide(deathCancels, layer(schema)), "blocked", "the newer build's text kept")
        assert.notStrictEqual(yield* body, ours)
      }), { timeout: 60_000 })

    it.live("a schema from before the dedup modes is migrated in place: its jobs keep their keys (held until they finish), and the new modes work on it", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const S = `"${schema}"`
        const held = yield* Effect.provide(JobQueue.enqueue(Echo, { n: 1 }, { dedupKey: "k" }), layer(schema))
        yield* backToBeforeDedupModes(S)
        yield* Effect.gen(function*() {
          assert.strictEqual((yield* JobQueue.enqueue(Echo, { n: 2 }, { dedupKey: "k", dedupWhile: "queued" })).id, held.id)
          const store = yield* JobStore.JobStore
          const [claim] = (yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 1, lease: 60_000 })).claims
          assert.strictEqual(claim!.job.id, held.id)
          assert.strictEqual((yield* JobQueue.enqueue(Echo, { n: 3 }, { dedupKey: "k" })).id, held.id, "held through its run, as before")
          const queued = yield* JobQueue.enqueue(Echo, { n: 4 }, { dedupKey: "q", dedupWhile: "queued", dedupFor: "1 hour" })
          assert.isTrue(queued.created)
        }).pipe(Effect.scoped, Effect.provide(layer(schema)))
        assert.deepStrictEqual(yield* versionAndIndex(schema, "wp_job_dedup_until"), [[LATEST], ["wp_job_dedup_until"]])
      }), { timeout: 60_000 })

    it.live("an idle consumer polling once an hour starts a job enqueued by another store instance at once (NOTIFY)", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const started = yield* Effect.gen(function*() {
          yield* JobQueue.consume({ handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n * 2))], concurrency: 1, poll: "1 hour" })
          // another "process": its own store instance, its own connections
          const job = yield* Effect.provide(JobQueue.enqueue(Echo, { n: 21 }), layer(schema))
          return yield* JobQueue.await(Echo, job.id)
        }).pipe(Effect.scoped, Effect.provide(layer(schema)), Effect.timeout("30 seconds"))
        assert.strictEqual(started, 42)
      }), { timeout: 60_000 })

    it.live("an idle consumer of one queue does not claim when 100 jobs are enqueued on another (by this store instance and by another); a job of its own queue still starts at once", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const other = layer(schema)
        const claims = yield* Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          let claims = 0
          const counting: Store = { ...store, claim: (request) => Effect.andThen(Effect.sync(() => claims++), store.claim(request)) }
          yield* Effect.provideService(
            JobQueue.consume({ queues: ["a"], handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n * 2))], concurrency: 1, poll: "1 hour" }),
            JobStore.JobStore,
            counting
          )
          // its queue's wake-up works (a job of `a` from another instance starts without a poll) and
          // the consumer has settled into its wait: then it claims for nothing more
          const first = yield* Effect.provide(JobQueue.enqueue(Echo, { n: 1 }, { queue: "a" }), other)
          assert.strictEqual(yield* first.await, 2)
          yield* Effect.yieldNow
          const before = claims
          for (let n = 0; n < 50; n++) {
            yield* JobQueue.enqueue(Echo, { n }, { queue: "b" })
            yield* Effect.provide(JobQueue.enqueue(Echo, { n }, { queue: "b" }), other)
          }
          // the NOTIFYs of b were sent before this one of a, on the same server: heard before it
          const last = yield* Effect.provide(JobQueue.enqueue(Echo, { n: 21 }, { queue: "a" }), other)
          assert.strictEqual(yield* Effect.provide(JobQueue.await(Echo, last.id), other), 42)
          return claims - before
        }).pipe(Effect.scoped, Effect.provide(layer(schema)), Effect.timeout("60 seconds"))
        // the claim that takes a's job, the one after it (its slot is free), and at most one more
        // left from the first job's end; before, each of b's enqueues could wake it (60-100 claims)
        assert.isAtMost(claims, 4)
      }), { timeout: 90_000 })

    it.live("after the listener's connection is killed (pg_terminate_backend), an idle consumer hears its queue again: a job from another instance starts without a poll", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const channel = Postgres.queueChannel(schema, "default")
        const listening = listeners(channel)
        const result = yield* Effect.gen(function*() {
          yield* JobQueue.consume({ handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n * 2))], concurrency: 1, poll: "1 hour" })
          // the consumer's first wait makes the listener LISTEN on the queue
          const [killed] = yield* listening.pipe(
            Effect.filterOrFail((pids) => pids.length === 1),
            Effect.retry(Schedule.spaced("20 millis"))
          )
          yield* Effect.promise(() => admin((sql) => sql`SELECT pg_terminate_backend(${killed!})`))
          // a new connection LISTENs again (after the listener's second of rest)
          yield* listening.pipe(
            Effect.filterOrFail((pids) => pids.length === 1 && pids[0] !== killed),
            Effect.retry(Schedule.spaced("20 millis"))
          )
          const job = yield* Effect.provide(JobQueue.enqueue(Echo, { n: 21 }), layer(schema))
          return yield* JobQueue.await(Echo, job.id)
        }).pipe(Effect.scoped, Effect.provide(layer(schema)), Effect.timeout("30 seconds"))
        assert.strictEqual(result, 42)
      }), { timeout: 60_000 })

    it.live("a paused consumer's store stops hearing its queue (UNLISTEN, within seconds: it would not claim); resumed, it hears it again", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const channel = Postgres.queueChannel(schema, "default")
        /** What the backends that last ran a statement on the queue's channel ran. */
        const last = Effect.map(listenBackends(channel), (rows) => rows.map((row) => row.query))
        const until = (ok: (queries: ReadonlyArray<string>) => boolean) =>
          last.pipe(Effect.filterOrFail(ok), Effect.retry(Schedule.spaced("20 millis")))
        const result = yield* Effect.gen(function*() {
          const consumer = yield* JobQueue.consume({ handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n * 2))], concurrency: 1, poll: "1 hour" })
          yield* until((queries) => queries.length === 1 && queries[0]!.startsWith("LISTEN"))
          // pause wakes the consumer out of the store's wait (with a poll of an hour nothing else would),
          // into its own wait for the resume
          yield* consumer.pause
          yield* until((queries) => queries.length === 1 && queries[0]!.startsWith("UNLISTEN"))
          const held = yield* Effect.provide(JobQueue.enqueue(Echo, { n: 1 }), layer(schema))
          assert.strictEqual((yield* held.status).state, "queued")
          yield* consumer.resume
          assert.strictEqual(yield* held.await, 2)
          yield* until((queries) => queries.length === 1 && queries[0]!.startsWith("LISTEN"))
          const job = yield* Effect.provide(JobQueue.enqueue(Echo, { n: 21 }), layer(schema))
          return yield* JobQueue.await(Echo, job.id)
        }).pipe(Effect.scoped, Effect.provide(layer(schema)), Effect.timeout("30 seconds"))
        assert.strictEqual(result, 42)
      }), { timeout: 60_000 })

    it.live("a delayed job enqueued by another store instance starts at its time on a consumer polling once an hour (NOTIFY), whose wall clock is an hour ahead", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        yield* delayedWakeAcrossInstances(() => layer(schema))
      }), { timeout: 60_000 })

    it.live("a queue's rate limit raised, then lifted, through another store instance starts the held-back jobs at once on a consumer polling once an hour (NOTIFY)", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        yield* rateLimitChangeAcrossInstances(() => layer(schema))
      }), { timeout: 60_000 })

    it.live("a queue's retention applied by three store instances at once deletes each job once (each batch skips the rows another holds)", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        yield* retentionAcrossInstances(() => layer(schema))
      }), { timeout: 90_000 })

    it.live("a queue's rate limit lifted through a third store instance starts jobs at once on both of two held-back consumers of their own instances", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        yield* rateLimitLiftTwoInstances(() => layer(schema))
      }), { timeout: 60_000 })

    it.live("a per-key cap's claim cut short by its budget after taking all it offered goes on past the keys it saw: a key after 220 keys of delayed jobs in the fourth claim, not the fifth", () =>
      groupWalkPastTaken(() => layer(freshSchema())), { timeout: 60_000 })

    it.live("a per-key cap's claim visits at most its budget of keys: beside 300 keys of delayed jobs, claims cut short say dueIn 0, go on where the last stopped, find the key after them, and the round ends", () =>
      groupWalkBudget(() => layer(freshSchema())), { timeout: 60_000 })

    it.live("a queue's concurrency cap holds across two store instances' consumers polling once an hour, and each freed slot starts the next job at once (NOTIFY)", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        yield* concurrencyCapTwoInstances(() => layer(schema))
      }), { timeout: 60_000 })

    it.live("a slot of a capped queue freed by another store instance (a final settle, a retry, a release, a reap that ends it dead or takes it back) starts the next job at once on a consumer polling once an hour (NOTIFY)", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        // listening, its claim for the LISTEN's own wake-up made, and waiting: from then on only a
        // NOTIFY wakes it
        yield* concurrencyCapFreedElsewhere(() => layer(schema), (queue, consumer) =>
          waitFor(
            Effect.map(
              listeners(Postgres.queueChannel(schema, queue)),
              (pids) => pids.length > 0 && consumer.emptyClaims() >= 2 && consumer.waiting()
            ),
            "the consumer listens on its queue, has claimed once more and waits"
          ))
      }), { timeout: 120_000 })

    // the cap's count is exact only because each claim of a capped queue counts after the queue row's
    // lock: without it, claims in flight together each saw the same free slots (pg-boss's groups)
    it.live("a concurrency cap holds under claims in flight together from two store instances: never more jobs claimed and unsettled than the cap", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const instance = Effect.map(Layer.build(layer(schema, { maxConnections: 5 })), (context) => Context.get(context, JobStore.JobStore))
        const stores = [yield* instance, yield* instance]
        const queue = "race"
        yield* Effect.provideService(JobQueue.setConcurrency(queue, 3), JobStore.JobStore, stores[0]!)
        const total = 60
        yield* Effect.provideService(
          Effect.forEach(Array.from({ length: total }, (_, n) => n), (n) => JobQueue.enqueue(Echo, { n }, { queue }), { discard: true }),
          JobStore.JobStore,
          stores[0]!
        )
        // counted once a claim has answered and until its settle is sent: never more than the store's running rows
        let held = 0
        let most = 0
        let settled = 0
        const exit = JSON.stringify({ _tag: "Success", value: 0 })
        const claimer = (store: Store) =>
          Effect.gen(function*() {
            while (settled < total) {
              const { claims } = yield* store.claim({ queues: [queue], tasks: ["Echo"], limit: 2, lease: 60_000 })
              held += claims.length
              most = Math.max(most, held)
              yield* Effect.sleep(claims.length === 0 ? "2 millis" : "5 millis")
              held -= claims.length
              for (const claim of claims) {
                assert.isTrue(yield* store.settle(claim.token, { _tag: "Final", state: "succeeded", exit }))
                settled++
              }
            }
          })
        yield* Effect.all(Array.from({ length: 8 }, (_, i) => claimer(stores[i % 2]!)), { concurrency: "unbounded" }).pipe(
          Effect.timeout("60 seconds")
        )
        assert.strictEqual(settled, total)
        assert.isAtMost(most, 3)
      }).pipe(Effect.scoped), { timeout: 90_000 })

    // a capped queue paused when a claim locked the capped queues' rows was left unlocked, and its
    // jobs were taken as an uncapped queue's: resumed between that lock and the claim's read of the
    // jobs (READ COMMITTED: a new snapshot), its jobs were claimed past its cap
    it.live("a capped queue resumed while a claim over it waits for another capped queue's lock: the claim keeps its cap", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const locker = yield* lockSession
        yield* Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          yield* JobQueue.setConcurrency("qa", 1)
          yield* JobQueue.setConcurrency("zz", 100)
          for (let n = 0; n < 4; n++) yield* JobQueue.enqueue(Echo, { n }, { queue: "qa" })
          yield* JobQueue.pause("qa")
          // the claim's lock of the capped queues' rows waits for "zz"'s
          yield* locker.open(`SELECT 1 FROM "${schema}".wp_queue WHERE name = 'zz' FOR UPDATE`)
          const claiming = yield* Effect.forkChild(store.claim({ queues: ["qa", "zz"], tasks: ["Echo"], limit: 4, lease: 60_000 }))
          yield* blockedBy(locker.pid)
          // the resume goes through at once, or waits for the claim's lock of "qa"
          const resuming = yield* Effect.forkChild(JobQueue.resume("qa"))
          yield* Effect.raceFirst(Effect.asVoid(Fiber.join(resuming)), lockWaitersOn(schema, 2))
          yield* locker.release
          const first = (yield* Fiber.join(claiming)).claims
          yield* Fiber.join(resuming)
          const second = (yield* store.claim({ queues: ["qa", "zz"], tasks: ["Echo"], limit: 4, lease: 60_000 })).claims
          assert.isAtMost(first.length, 1)
          assert.strictEqual((yield* JobQueue.stats("qa")).running, 1)
          assert.strictEqual(first.length + second.length, 1)
        }).pipe(Effect.provide(layer(schema, { maxConnections: 4 })))
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("two store instances enqueue one dedup key at once, in each mode and in batches that repeat it: one job, whose handle both get", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        yield* dedupRaceAcrossInstances(() => layer(schema))
      }), { timeout: 60_000 })

    it.live("a cancel from another store instance interrupts a running job at once (NOTIFY), not at the next heartbeat", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const error = yield* Effect.gen(function*() {
          const started = yield* Latch.make(false)
          // heartbeats every 20 minutes: only the notification can stop the job within the test
          yield* JobQueue.consume({
            handlers: [Task.handle(Echo, () => Effect.andThen(started.open, Effect.never))],
            concurrency: 1,
            lease: "1 hour"
          })
          const job = yield* JobQueue.enqueue(Echo, { n: 1 })
          yield* started.await
          // another "process"
          assert.strictEqual(yield* Effect.provide(JobQueue.cancel(job.id), layer(schema)), "requested")
          return yield* Effect.flip(job.await)
        }).pipe(Effect.scoped, Effect.provide(layer(schema)), Effect.timeout("30 seconds"))
        assert.strictEqual(error._tag, "JobCancelled")
      }), { timeout: 60_000 })

    it.live("the claim (one queue or several, by priority or fair) is served by the partial index wp_job_ready: no sort of the queued jobs; its look for the soonest delayed job by wp_job_delayed", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        yield* Effect.provide(JobQueue.stats("default"), layer(schema))
        const S = `"${schema}"`
        const plan = (queues: ReadonlyArray<string>, fair: boolean) =>
          genericPlan((sql) => Postgres.claimStatement(sql, sql.literal(S), { queues, tasks: ["Echo"], limit: 4, lease: 1000, fair }, 1))
        yield* Effect.promise(() =>
          admin((sql) =>
            Effect.gen(function*() {
              // 20,000 finished jobs and 3 × 20,000 waiting ones in three queues
              yield* sql.unsafe(`INSERT INTO ${S}.wp_job (id, queue, task, payload, priority, rank, state, max_attempts,
                timeout_ms, created_at, visible_at, finished_at)
                SELECT 'done-' || i, 'default', 'Echo', '{}', 0, 0, 'succeeded', 1, 0, 0, 0, 0 FROM generate_series(1, 20000) i`).raw
              yield* sql.unsafe(`INSERT INTO ${S}.wp_job (id, queue, task, payload, priority, rank, state, max_attempts,
                timeout_ms, created_at, visible_at)
                SELECT 'ready-' || q || '-' || i, q, 'Echo', '{}', i % 5, i % 5, 'queued', 1, 0, 0, 0
                FROM generate_series(1, 20000) i, unnest(ARRAY['default', 'b', 'c']) q`).raw
              // and 3 × 20,000 delayed ones, due after the claim's time (1)
              yield* sql.unsafe(`INSERT INTO ${S}.wp_job (id, queue, task, payload, priority, rank, state, max_attempts,
                timeout_ms, created_at, visible_at)
                SELECT 'delayed-' || q || '-' || i, q, 'Echo', '{}', i % 5, i % 5, 'queued', 1, 0, 0, 1000 + i
                FROM generate_series(1, 20000) i, unnest(ARRAY['default', 'b', 'c']) q`).raw
              yield* sql.unsafe(`ANALYZE ${S}.wp_job`).raw
            })
          )
        )
        for (const [queues, fair] of [[["default"], false], [["default", "b", "c"], false], [["default", "b", "c"], true]] as const) {
          const text = yield* plan(queues, fair)
          if (process.env.SHOW_PLAN) console.log(text)
          assert.match(text, /Index Scan using wp_job_ready/, text)
          assert.notMatch(text, /Seq Scan on wp_job|Bitmap Heap Scan on wp_job/, text)
          if (queues.length === 1) assert.notMatch(text, /Sort/, text)
          // several: a sort of the few rows each queue's index scan hands up (a LIMIT in a LATERAL), not of the queued jobs
          else assert.match(text, /Sort[\s\S]*Function Scan on unnest[\s\S]*Limit[\s\S]*LockRows[\s\S]*Index Scan using wp_job_ready/, text)
          // the soonest delayed job: the first entry of each queue's range of wp_job_delayed
          assert.match(text, /Limit[\s\S]*Index (Only )?Scan using wp_job_delayed/, text)
          // the expired jobs of its queues: along wp_job_expiring (empty when no job has an expiry)
          assert.match(text, /Index (Only )?Scan using wp_job_expiring/, text)
        }
      }), { timeout: 60_000 })

    it.live("a grouped claim's walk of the keys reads wp_job_group_ready, one probe per key: a key's 20,000 queued jobs, a key's 20,000 delayed ones (probed along wp_job_group_due) and a queue's 20,000 ungrouped ones are not read", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        yield* Effect.provide(JobQueue.stats("default"), layer(schema))
        const S = `"${schema}"`
        yield* Effect.promise(() =>
          admin((sql) =>
            Effect.gen(function*() {
              // key 'a': 20,000 jobs, the oldest and the best; keys k1..k9 one job each; 20,000 ungrouped jobs in 'other'
              yield* sql.unsafe(`INSERT INTO ${S}.wp_job (id, queue, task, payload, priority, rank, state, max_attempts,
                timeout_ms, created_at, visible_at, group_key)
                SELECT 'a-' || i, 'default', 'Echo', '{}', 5, 5, 'queued', 1, 0, 0, 0, 'a' FROM generate_series(1, 20000) i`).raw
              yield* sql.unsafe(`INSERT INTO ${S}.wp_job (id, queue, task, payload, priority, rank, state, max_attempts,
                timeout_ms, created_at, visible_at, group_key)
                SELECT 'k-' || i, 'default', 'Echo', '{}', 0, 0, 'queued', 1, 0, 0, 0, 'k' || i FROM generate_series(1, 9) i`).raw
              // key 'd': 20,000 jobs, the best, all delayed (each claim that visits it read them all, 45 ms)
              yield* sql.unsafe(`INSERT INTO ${S}.wp_job (id, queue, task, payload, priority, rank, state, max_attempts,
                timeout_ms, created_at, visible_at, group_key)
                SELECT 'd-' || i, 'default', 'Echo', '{}', 9, 9, 'queued', 1, 0, 0, 1000000, 'd' FROM generate_series(1, 20000) i`).raw
              yield* sql.unsafe(`INSERT INTO ${S}.wp_job (id, queue, task, payload, priority, rank, state, max_attempts,
                timeout_ms, created_at, visible_at)
                SELECT 'o-' || i, 'other', 'Echo', '{}', 0, 0, 'queued', 1, 0, 0, 0 FROM generate_series(1, 20000) i`).raw
              yield* sql.unsafe(`ANALYZE ${S}.wp_job`).raw
            })
          )
        )
        const walk = (sql: PgClient.PgClient) =>
          Postgres.groupWalk(sql, sql.literal(S), {
            queue: "default", from: "", inclusive: true, stop: null, step: 12, cap: 1, limit: 4,
            running: new Map([["a", 1]]), tasks: ["Echo"], now: 1
          })
        const text = yield* genericPlan(walk)
        if (process.env.SHOW_PLAN) console.log(text)
        // the next key: the first entry past the last along either keyed index (both lead with the key)
        assert.match(text, /InitPlan[\s\S]*Limit[\s\S]*Index Only Scan using wp_job_group_(ready|due)/, text)
        assert.match(text, /LockRows[\s\S]*Index Scan using wp_job_group_ready/, text)
        // whether a key has a visible job at all, before its heads are read
        assert.match(text, /Index Only Scan using wp_job_group_due on wp_job d/, text)
        assert.notMatch(text, /Seq Scan on wp_job|Bitmap Heap Scan on wp_job|wp_job_ready/, text)
        // run: every key once, a's one extra job read (its one slot taken), each other key's one job
        const analyzed = yield* Effect.promise(() =>
          admin((sql) =>
            sql.withTransaction(Effect.gen(function*() {
              const [statement, params] = walk(sql).compile()
              const rows = yield* sql.unsafe<{ "QUERY PLAN": string }>(`EXPLAIN (ANALYZE, FORMAT JSON) ${statement}`, params as Array<never>)
              return rows[0]!["QUERY PLAN"] as unknown
            }))
          )
        )
        const most = (node: { "Actual Rows"?: number; "Actual Loops"?: number; Plans?: ReadonlyArray<unknown> }): number =>
          Math.max(node["Actual Rows"] ?? 0, ...(node.Plans ?? []).map((child) => most(child as typeof node)))
        const plan = (analyzed as Array<{ Plan: Parameters<typeof most>[0] }>)[0]!.Plan
        assert.isAtMost(most(plan), 20, JSON.stringify(plan))
        const removed = (node: { "Rows Removed by Filter"?: number; "Actual Loops"?: number; Plans?: ReadonlyArray<unknown> }): number =>
          Math.max((node["Rows Removed by Filter"] ?? 0) * (node["Actual Loops"] ?? 1), ...(node.Plans ?? []).map((child) => removed(child as typeof node)))
        assert.isAtMost(removed(plan), 20, JSON.stringify(plan))
        const rows = yield* Effect.promise(() => admin((sql) => sql.withTransaction(walk(sql))))
        assert.deepStrictEqual(rows.map((row) => [row.g, row.seq === null ? 0 : 1]), [
          ["a", 1], ["d", 0], ["k1", 1], ["k2", 1], ["k3", 1], ["k4", 1], ["k5", 1], ["k6", 1], ["k7", 1], ["k8", 1], ["k9", 1]
        ])
      }), { timeout: 60_000 })

    it.live("a list of delayed jobs alone reads their seqs from wp_job_delayed, of queued ones alone walks an index up to its limit, of expired ones alone reads the queue's cancelled rows by an index; none scans the table (delayed and queued were told apart after reading the oldest 100,000 waiting jobs; as one state of many, a generic plan walked every row by seq for the expired ones: all of them for a queue with none)", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        yield* Effect.provide(JobQueue.stats("default"), layer(schema))
        const S = `"${schema}"`
        yield* Effect.promise(() =>
          admin((sql) =>
            Effect.gen(function*() {
              // 20,000 finished jobs, 20,000 queued ones in each of two queues, and 100 delayed ones (to 2100)
              yield* sql.unsafe(`INSERT INTO ${S}.wp_job (id, queue, task, payload, priority, rank, state, max_attempts,
                timeout_ms, created_at, visible_at, finished_at)
                SELECT 'done-' || i, 'default', 'Echo', '{}', 0, 0, 'succeeded', 1, 0, 0, 0, 0 FROM generate_series(1, 20000) i`).raw
              yield* sql.unsafe(`INSERT INTO ${S}.wp_job (id, queue, task, payload, priority, rank, state, max_attempts,
                timeout_ms, created_at, visible_at)
                SELECT 'queued-' || q || '-' || i, q, 'Echo', '{}', 0, 0, 'queued', 1, 0, 0, 0
                FROM generate_series(1, 20000) i, unnest(ARRAY['default', 'b']) q`).raw
              yield* sql.unsafe(`INSERT INTO ${S}.wp_job (id, queue, task, payload, priority, rank, state, max_attempts,
                timeout_ms, created_at, visible_at)
                SELECT 'delayed-' || i, 'default', 'Echo', '{}', 0, 0, 'queued', 1, 0, 0, 4102444800000 FROM generate_series(1, 100) i`).raw
              // and 100 cancelled ones, of which the last 10 expired
              yield* sql.unsafe(`INSERT INTO ${S}.wp_job (id, queue, task, payload, priority, rank, state, max_attempts,
                timeout_ms, created_at, visible_at, finished_at, expire_at)
                SELECT 'cancelled-' || i, 'default', 'Echo', '{}', 0, 0, 'cancelled', 1, 0, 0, 0, 100, CASE WHEN i > 90 THEN 50 ELSE 200 END
                FROM generate_series(1, 100) i`).raw
              yield* sql.unsafe(`ANALYZE ${S}.wp_job`).raw
            })
          )
        )
        const plan = (waiting: "ready" | "delayed") =>
          genericPlan((sql) => Postgres.listStatement(sql, sql.literal(S), { queue: "default", states: ["queued"], limit: 10, waiting }, 1))
        const delayed = yield* plan("delayed")
        const ready = yield* plan("ready")
        if (process.env.SHOW_PLAN) console.log(delayed, "\n", ready)
        // the delayed jobs' seqs from their index (a bitmap of its entries: the delayed rows alone),
        // then the listed rows by seq; the queued ones by seq in order, up to the limit
        assert.match(delayed, /CTE listed[\s\S]*Index Scan (using|on) wp_job_delayed[\s\S]*Limit[\s\S]*Index Scan using wp_job_pkey/, delayed)
        assert.match(ready, /Limit[\s\S]*Index Scan using wp_job_(pkey|ready)/, ready)
        for (const text of [delayed, ready]) assert.notMatch(text, /Seq Scan on wp_job/, text)
        const listed = yield* Effect.provide(JobQueue.list({ queue: "default", state: "delayed", limit: 10 }), layer(schema))
        assert.deepStrictEqual(listed.map((job) => job.id), Array.from({ length: 10 }, (_, i) => `delayed-${i + 1}`))
        const expired = yield* genericPlan((sql) =>
          Postgres.listStatement(sql, sql.literal(S), { queue: "default", states: ["cancelled"], limit: 10, expired: true }, 1)
        )
        if (process.env.SHOW_PLAN) console.log(expired)
        // the expired jobs' seqs from the queue's cancelled rows, then the listed rows by seq
        assert.match(expired, /CTE listed[\s\S]*(Index|Index Only|Bitmap Index) Scan (using|on) wp_job_(retained|counted)[^\n]*\n\s*Index Cond: \(\(queue = \$1\) AND \(state = 'cancelled'[\s\S]*Limit[\s\S]*Index Scan using wp_job_pkey/, expired)
        assert.notMatch(expired, /Seq Scan on wp_job/, expired)
        const missed = yield* Effect.provide(JobQueue.list({ queue: "default", expired: true, limit: 5 }), layer(schema))
        assert.deepStrictEqual(missed.map((job) => job.id), Array.from({ length: 5 }, (_, i) => `cancelled-${i + 91}`))
      }), { timeout: 60_000 })

    // as an OFFSET under the lock, a batch locked every kept job (a retention keeping 100,000 locked
    // 100,000 rows per batch), and skipped one held elsewhere, keeping one more
    it.live("a retention batch by count locks only the jobs it deletes: a kept job held by another session is neither waited for nor counted out", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const locker = yield* lockSession
        yield* Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          const ids: Array<string> = []
          for (let n = 0; n < 7; n++) {
            const job = yield* JobQueue.enqueue(Echo, { n }, { queue: "kept" })
            const [claim] = (yield* store.claim({ queues: ["kept"], tasks: ["Echo"], limit: 1, lease: 60_000 })).claims
            yield* Effect.sleep("5 millis") // each ends at its own time
            assert.isTrue(yield* store.settle(claim!.token, { _tag: "Final", state: "succeeded", exit: null }))
            ids.push(job.id)
          }
          yield* JobQueue.setRetention("kept", { succeeded: { count: 2 } })
          // the newest job, kept, is held by another transaction
          yield* locker.hold(`"${schema}"`, ids[6]!)
          assert.deepStrictEqual(yield* store.retain(100).pipe(Effect.timeout("20 seconds")), { deleted: 5, more: false })
          assert.deepStrictEqual((yield* JobQueue.list({ queue: "kept" })).map((job) => job.id), ids.slice(5))
          yield* locker.release
        }).pipe(Effect.provide(layer(schema)))
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("a retention batch (by age, by count) is served by the index wp_job_retained: no read of other queues' or states' finished jobs, no sort of them", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        yield* Effect.provide(JobQueue.stats("default"), layer(schema))
        const S = `"${schema}"`
        yield* Effect.promise(() =>
          admin((sql) =>
            Effect.gen(function*() {
              // a queue of 2 × 2,000 finished jobs among 2 queues × 3 final states × 20,000 others of
              // the same times (kept: no retention), whose index of end times leads to this queue's
              // only through all of theirs
              yield* sql.unsafe(`INSERT INTO ${S}.wp_job (id, queue, task, payload, priority, rank, state, max_attempts,
                timeout_ms, created_at, visible_at, finished_at)
                SELECT q || '-' || st || '-' || i, q, 'Echo', '{}', 0, 0, st, 1, 0, 0, 0, i
                FROM generate_series(1, 20000) i, unnest(ARRAY['b', 'c']) q, unnest(ARRAY['succeeded', 'dead', 'cancelled']) st`).raw
              yield* sql.unsafe(`INSERT INTO ${S}.wp_job (id, queue, task, payload, priority, rank, state, max_attempts,
                timeout_ms, created_at, visible_at, finished_at)
                SELECT 'default-' || st || '-' || i, 'default', 'Echo', '{}', 0, 0, st, 1, 0, 0, 0, i * 10
                FROM generate_series(1, 2000) i, unnest(ARRAY['succeeded', 'dead']) st`).raw
              yield* sql.unsafe(`ANALYZE ${S}.wp_job`).raw
            })
          )
        )
        // the prepared statement's generic plan (see retainStatement)
        for (const past of [{ before: 15_000 }, { keep: 100 }]) {
          const text = yield* genericPlan((sql) => Postgres.retainStatement(sql, sql.literal(S), "default", "succeeded", 1000, past, 30_000))
          if (process.env.SHOW_PLAN) console.log(text)
          assert.match(text, /Index (Only )?Scan (Backward )?using wp_job_retained/, text)
          assert.notMatch(text, /Seq Scan on wp_job|wp_job_finished|Sort/, text)
        }
        // the look of a retention by count (see retainCount.ts): by the row comparison alone, estimated
        // at half the queue's jobs, it was planned as a read of the whole table
        for (const [from, mode] of [[{ finishedAt: 25_000, seq: 5 }, "custom"], [{ finishedAt: 15_000, seq: 5 }, "generic"], [RetainCount.BEFORE_ALL, "generic"]] as const) {
          const text = yield* genericPlan((sql) => Postgres.retainLookStatement(sql, sql.literal(S), "default", "succeeded", from, 101), mode)
          if (process.env.SHOW_PLAN) console.log(text)
          assert.match(text, /(Index Only Scan using|Bitmap Index Scan on) wp_job_retained[^\n]*\n[^\n]*Index Cond: [^\n]*finished_at >=/, text)
          assert.notMatch(text, /Seq Scan on wp_job|wp_job_finished|Sort/, text)
        }
      }), { timeout: 60_000 })

    it.live("the latencies read is served by the index wp_job_settled: newest first from the cursor's xmax, a lookup per transaction it listed; no sort of the ended jobs", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        yield* Effect.provide(JobQueue.stats("default"), layer(schema))
        const S = `"${schema}"`
        yield* Effect.promise(() =>
          admin((sql) =>
            Effect.gen(function*() {
              // 3 × 30,000 ended jobs (a third dead), settled by transactions 1000..31000, and 20,000 queued
              yield* sql.unsafe(`INSERT INTO ${S}.wp_job (id, queue, task, payload, priority, rank, state, max_attempts,
                timeout_ms, created_at, visible_at, started_at, finished_at, settled_xid)
                SELECT 'ended-' || q || '-' || i, q, 'Echo', '{}', 0, 0, CASE WHEN i % 3 = 0 THEN 'dead' ELSE 'succeeded' END, 1,
                  0, i, i, i + 1, i + 2, 1000 + i
                FROM generate_series(1, 30000) i, unnest(ARRAY['default', 'b', 'c']) q`).raw
              yield* sql.unsafe(`INSERT INTO ${S}.wp_job (id, queue, task, payload, priority, rank, state, max_attempts,
                timeout_ms, created_at, visible_at)
                SELECT 'queued-' || i, 'default', 'Echo', '{}', 0, 0, 'queued', 1, 0, 0, 0 FROM generate_series(1, 20000) i`).raw
              yield* sql.unsafe(`ANALYZE ${S}.wp_job`).raw
            })
          )
        )
        // prepared: the generic plan, for any queue and cursor
        const text = yield* genericPlan((sql) =>
          Postgres.latenciesStatement(sql, sql.literal(S), "default", "29000:30990:29000,29500", 1000)
        )
        if (process.env.SHOW_PLAN) console.log(text)
        assert.match(text, /Index Scan Backward using wp_job_settled[\s\S]*Index Scan using wp_job_settled/, text)
        assert.notMatch(text, /Seq Scan on wp_job|Bitmap Heap Scan on wp_job/, text)
        // the ended jobs read the index in order; only the at most limit + listed rows picked are sorted
        assert.match(text, /Limit[\s\S]*Sort[\s\S]*Append[\s\S]*Limit[\s\S]*Index Scan Backward/, text)
        // and it reads what it should: the two listed transactions, and everything from the xmax up
        const found = yield* Effect.provide(
          Effect.gen(function*() {
            const store = yield* JobStore.JobStore
            return yield* store.latencies("default", "29000:30990:29000,29500", 1000)
          }),
          layer(schema)
        )
        assert.strictEqual(found.jobs.length, 2 + 11)
      }), { timeout: 60_000 })

    it.live("final settles, alone or carried by a claim, find their jobs by wp_job_token, not among all running jobs (wp_job_running), on a table never analyzed", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        yield* Effect.provide(JobQueue.stats("default"), layer(schema))
        const S = `"${schema}"`
        // a drain right after a bulk enqueue: 20,000 running jobs and no statistics yet (autovacuum
        // would gather them within a minute: not during the test)
        const analyzed = yield* Effect.promise(() =>
          admin((sql) =>
            Effect.gen(function*() {
              yield* sql.unsafe(`ALTER TABLE ${S}.wp_job SET (autovacuum_enabled = false)`).raw
              yield* sql.unsafe(`INSERT INTO ${S}.wp_job (id, queue, task, payload, priority, rank, state, max_attempts,
                timeout_ms, created_at, visible_at, started_at, lease_token, lease_until)
                SELECT 'running-' || i, 'default', 'Echo', '{}', 0, 0, 'running', 1, 0, 0, 0, 0, 'token-' || i, 60000
                FROM generate_series(1, 20000) i`).raw
              return yield* sql<{ analyzed: boolean }>`SELECT last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL AS analyzed
                FROM pg_stat_user_tables WHERE schemaname = ${schema} AND relname = 'wp_job'`
            })
          )
        )
        assert.deepStrictEqual(analyzed.map((row) => row.analyzed), [false])
        const finals = [1, 2, 3].map((i) => ({ token: `token-${i}`, state: "succeeded", exit: "{}" }))
        const plans = [
          yield* genericPlan((sql) => Postgres.settleStatement(sql, sql.literal(S), finals, 1, (queue) => sql`pg_notify('plan', ${queue})`)),
          yield* genericPlan((sql) =>
            Postgres.claimStatement(sql, sql.literal(S), { queues: ["default"], tasks: ["Echo"], limit: 4, lease: 1000 }, 1, finals, (queue) =>
                sql`pg_notify('plan', ${queue})`)
          )
        ]
        for (const text of plans) {
          if (process.env.SHOW_PLAN) console.log(text)
          assert.match(text, /Index Scan using wp_job_token|Bitmap Index Scan on wp_job_token/, text)
          assert.notMatch(text, /wp_job_running|Seq Scan on wp_job/, text)
        }
      }), { timeout: 60_000 })

    it.live("a claim over several queues (one LATERAL index scan each) takes the best jobs across them, FIFO within a priority, under its limit", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const picked = yield* Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          const jobs: ReadonlyArray<readonly [string, number]> = [["a", 1], ["b", 5], ["a", 5], ["c", 9], ["b", 0], ["a", 5]]
          for (const [i, [queue, priority]] of jobs.entries()) yield* JobQueue.enqueue(Echo, { n: i }, { queue, priority })
          yield* JobQueue.pause("c")
          const claim = (limit: number) =>
            Effect.map(
              store.claim({ queues: ["a", "b", "c"], tasks: ["Echo"], limit, lease: 60_000 }),
              ({ claims }) => claims.map((c) => (JSON.parse(c.job.payload) as { n: number }).n)
            )
          return [yield* claim(3), yield* claim(5)]
        }).pipe(Effect.provide(layer(schema)))
        assert.deepStrictEqual(picked, [[1, 2, 5], [0, 4]])
      }), { timeout: 60_000 })

    it.live("a claim takes the final settles queued in this store along, in its own statement, each still fenced by its token", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const S = `"${schema}"`
        const outcome = yield* Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          for (let n = 0; n < 4; n++) yield* JobQueue.enqueue(Echo, { n })
          const request = { queues: ["default"], tasks: ["Echo"], limit: 2, lease: 60_000 }
          const [a, b] = (yield* store.claim(request)).claims
          // b's lease is taken back (as a reaper would): its token no longer holds the job
          yield* Effect.promise(() =>
            admin((sql) => sql`UPDATE ${sql.literal(S)}.wp_job SET state = 'queued', lease_token = NULL WHERE id = ${b!.job.id}`)
          )
          // as a busy consumer does: its jobs end, and the claim for their slots starts before their settles are written
          const [settledA, settledB, claimed] = yield* Effect.all([
            store.settle(a!.token, { _tag: "Final", state: "succeeded", exit: "{}" }),
            store.settle(b!.token, { _tag: "Final", state: "succeeded", exit: "{}" }),
            store.claim(request)
          ], { concurrency: "unbounded" })
          // the transaction that last wrote each row: one statement is one transaction
          const writers = yield* Effect.promise(() =>
            admin((sql) => sql<{ payload: string; state: string; xmin: string }>`SELECT payload, state, xmin::text FROM ${sql.literal(S)}.wp_job ORDER BY seq`)
          )
          return { settledA, settledB, claimed: claimed.claims.map((claim) => claim.job.payload), writers }
        }).pipe(Effect.provide(layer(schema)))
        assert.isTrue(outcome.settledA)
        // b's settle is refused by its fence: the claim took b again, with a new token
        assert.isFalse(outcome.settledB)
        assert.deepStrictEqual(outcome.claimed, [`{"n":1}`, `{"n":2}`])
        assert.deepStrictEqual(outcome.writers.map((row) => row.state), ["succeeded", "running", "running", "queued"])
        // a's settle was written by the claim's own statement
        assert.strictEqual(outcome.writers[0]!.xmin, outcome.writers[2]!.xmin)
      }), { timeout: 60_000 })

    it.live("the heartbeat and the final settles lock several jobs in seq order: waiting for one, each holds only those before it (a consumer's heartbeat and its claim carrying settles of the same jobs deadlocked)", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const S = `"${schema}"`
        const outcome = yield* Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          for (let n = 0; n < 10; n++) yield* JobQueue.enqueue(Echo, { n })
          const claims = (yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 10, lease: 60_000 })).claims
          const seqOf = new Map<string, number>()
          const rows = yield* Effect.promise(() =>
            admin((sql) => sql<{ id: string; seq: string }>`SELECT id, seq::text FROM ${sql.literal(S)}.wp_job`)
          )
          for (const row of rows) seqOf.set(row.id, Number(row.seq))
          const bySeq = [...claims].sort((a, b) => seqOf.get(a.job.id)! - seqOf.get(b.job.id)!)
          const middle = bySeq[4]!
          // another transaction holds the fifth job's row until `letGo`
          const hold = Effect.gen(function*() {
            const held = yield* Deferred.make<number>() // the holder's backend
            const release = yield* Deferred.make<void>()
            const holder = admin((sql) =>
              sql.withTransaction(
                sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`.pipe(
                  Effect.tap(() => sql`SELECT 1 FROM ${sql.literal(S)}.wp_job WHERE id = ${middle.job.id} FOR UPDATE`),
                  Effect.flatMap(([row]) => Deferred.succeed(held, row!.pid)),
                  Effect.andThen(Deferred.await(release))
                )
              )
            )
            const pid = yield* Deferred.await(held)
            return { pid, letGo: Effect.andThen(Deferred.succeed(release, undefined), Effect.promise(() => holder)) }
          })
          /** Waits until a statement is waiting for a row lock; then which rows are held (another statement cannot lock them at once). */
          const heldWhileWaiting = (holder: number) => Effect.gen(function*() {
            yield* blockedBy(holder)
            const locked: Array<boolean> = []
            for (const claim of bySeq) {
              locked.push(
                yield* Effect.promise(() =>
                  admin((sql) =>
                    sql`SELECT 1 FROM ${sql.literal(S)}.wp_job WHERE id = ${claim.job.id} FOR UPDATE NOWAIT`.pipe(
                      Effect.as(false),
                      Effect.catch(() => Effect.succeed(true))
                    )
                  )
                )
              )
            }
            return locked
          })
          // the tokens in an order of their own (the consumer's, or the order its jobs ended in)
          const tokens = claims.map((claim) => claim.token).reverse()
          const first = yield* hold
          const beat = yield* Effect.forkChild(store.heartbeat(tokens, 60_000))
          const byHeartbeat = yield* heldWhileWaiting(first.pid)
          yield* first.letGo
          yield* Fiber.join(beat)
          // once more, for the final settles of the same jobs, in the same order
          const second = yield* hold
          const settled = yield* Effect.forkChild(Effect.promise(() =>
            admin((sql) =>
              Postgres.settleStatement(sql, sql.literal(S), tokens.map((token) => ({ token, state: "succeeded", exit: "{}" })), 1)
            )
          ))
          const bySettle = yield* heldWhileWaiting(second.pid)
          yield* second.letGo
          const written = yield* Fiber.join(settled)
          return { byHeartbeat, bySettle, written: written.length }
        }).pipe(Effect.provide(layer(schema)))
        // the four before the held one (seq order), the held one itself, none after it
        const expected = [true, true, true, true, true, false, false, false, false, false]
        assert.deepStrictEqual(outcome.byHeartbeat, expected)
        assert.deepStrictEqual(outcome.bySettle, expected)
        assert.strictEqual(outcome.written, 10)
      }), { timeout: 60_000 })

    it.live("a claim that fails (here a trigger's error) fails the settles it carried, which wrote nothing: their retry writes them", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const S = `"${schema}"`
        const outcome = yield* Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          for (let n = 0; n < 2; n++) yield* JobQueue.enqueue(Echo, { n })
          const request = { queues: ["default"], tasks: ["Echo"], limit: 1, lease: 60_000 }
          const [a] = (yield* store.claim(request)).claims
          // from now on a claim's statement fails (as a deadlock or a dropped connection would)
          yield* Effect.promise(() =>
            admin((sql) =>
              Effect.andThen(
                sql.unsafe(`CREATE FUNCTION ${S}.no_claim() RETURNS trigger LANGUAGE plpgsql AS $$
                  BEGIN IF OLD.state = 'queued' AND NEW.state = 'running' THEN RAISE EXCEPTION 'no claim'; END IF; RETURN NEW; END $$`),
                sql.unsafe(`CREATE TRIGGER no_claim BEFORE UPDATE ON ${S}.wp_job FOR EACH ROW EXECUTE FUNCTION ${S}.no_claim()`)
              )
            )
          )
          const [settled, claimed] = yield* Effect.all([
            Effect.exit(store.settle(a!.token, { _tag: "Final", state: "succeeded", exit: "{}" })),
            Effect.exit(store.claim(request))
          ], { concurrency: "unbounded" })
          const during = yield* Effect.promise(() =>
            admin((sql) => sql<{ state: string; lease_token: string | null }>`SELECT state, lease_token FROM ${sql.literal(S)}.wp_job WHERE id = ${a!.job.id}`)
          )
          yield* Effect.promise(() => admin((sql) => sql.unsafe(`DROP TRIGGER no_claim ON ${S}.wp_job`)))
          const again = yield* store.settle(a!.token, { _tag: "Final", state: "succeeded", exit: "{}" })
          return { settled, claimed, during: during[0]!, again, state: (yield* JobQueue.status(a!.job.id)).state }
        }).pipe(Effect.provide(layer(schema)))
        // the claim carried the settle: both failed, and the job is still a's
        assert.isTrue(Exit.isFailure(outcome.claimed))
        assert.isTrue(Exit.isFailure(outcome.settled))
        assert.deepStrictEqual([outcome.during.state, outcome.during.lease_token !== null], ["running", true])
        assert.isTrue(outcome.again)
        assert.strictEqual(outcome.state, "succeeded")
      }), { timeout: 60_000 })

    it.live("layerClient: the store on the application's own PgClient (its pool), migrated in the given schema", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        const Database = PgClient.layer({ url: Redacted.make(url!), maxConnections: 3 })
        const Jobs = PgJobStore.layerClient({ schema }).pipe(Layer.provide(Database))
        const result = yield* Effect.gen(function*() {
          yield* JobQueue.consume({ handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n + 1))], concurrency: 2 })
          // the job's row is in the schema, through the application's client
          const job = yield* JobQueue.enqueue(Echo, { n: 41 })
          const sql = yield* PgClient.PgClient
          const rows = yield* sql<{ id: string }>`SELECT id FROM ${sql.literal(`"${schema}"`)}.wp_job`
          assert.deepStrictEqual(rows.map((row) => row.id), [job.id])
          return yield* job.await
        }).pipe(Effect.scoped, Effect.provide(Layer.merge(Jobs, Database)), Effect.timeout("30 seconds"))
        assert.strictEqual(result, 42)
        const bad = yield* Effect.flip(
          Effect.provide(JobQueue.stats("default"), PgJobStore.layerClient({ schema: "No-Such Schema" }).pipe(Layer.provide(Database)))
        )
        assert.instanceOf(bad, StoreError)
        assert.match(bad.message, /schema: expected a lower-case SQL identifier.*got "No-Such Schema"/)
      }), { timeout: 60_000 })

    it.live("bad options and unreachable servers fail with a typed StoreError; nothing hangs", () =>
      Effect.gen(function*() {
        const run = (options: PgJobStore.PgJobStoreOptions) => Effect.flip(Effect.provide(JobQueue.stats("default"), PgJobStore.layer(options)))
        const notUrl = yield* run({ url: "mysql://root@localhost/db" })
        assert.instanceOf(notUrl, StoreError)
        assert.match(notUrl.message, /url.*postgres:\/\//)
        assert.notInclude(notUrl.message, "root@localhost", "the URL may hold a password: it is not repeated")
        const schema = yield* run({ url: url!, schema: "Robert'); DROP TABLE students;--" })
        assert.match(schema.message, /schema/)
        const pool = yield* run({ url: url!, maxConnections: 0 })
        assert.match(pool.message, /maxConnections/)
        // a port where nobody listens: refused at once
        const refused = yield* run({ url: Redacted.make("postgres://workpool:workpool@127.0.0.1:9/workpool"), connectTimeout: "5 seconds" })
        assert.strictEqual((refused as StoreError).operation, "migrate")
        // wrong credentials: the server's own message
        const denied = yield* run({ url: url!.replace(/\/\/[^@]*@/, "//nobody:wrong@") })
        assert.instanceOf(denied, StoreError)
        assert.match(denied.message, /nobody|password|authentication/i)
      }), { timeout: 60_000 })

    it.live("a connection killed under a running consumer: the operations in flight fail typed, the next ones reconnect, the job finishes", () =>
      Effect.gen(function*() {
        const schema = freshSchema()
        // every connection of this store, the listener's included, is cut by the server; only this
        // store's (its statements name its schema, its listener's last one its queue's channel):
        // other tests and processes share the server
        const kill = Effect.promise(() =>
          admin((sql) =>
            sql<{ n: number }>`SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
              WHERE application_name = 'effect-workpool' AND pid <> pg_backend_pid() AND datname = current_database()
                AND (query LIKE ${`%${schema}%`} OR query LIKE ${`%"${Postgres.queueChannel(schema, "default")}"`})`
          )
        ).pipe(Effect.map((killed) => assert.isAbove(killed[0]!.n, 0)))
        const errors = yield* connectionsKilled(kill, 20).pipe(Effect.scoped, Effect.provide(layer(schema)), Effect.timeout("60 seconds"))
        if (process.env.DURABLE_DEBUG) console.log(errors)
      }), { timeout: 90_000 })
  })
}
