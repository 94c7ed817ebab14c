import { assert, describe, it } from "@effect/vitest"
import { Clock, Context, Deferred, Effect, Exit, Fiber, Layer, References } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { DatabaseSync } from "node:sqlite"
import { afterAll } from "vitest"
import * as DurableError from "../src/DurableError.ts"
import { StoreError } from "../src/DurableError.ts"
import * as Sqlite from "../src/internal/store/sqlite.ts"
import { DELAYED, MIGRATIONS } from "../src/internal/store/sqlite.ts"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as Task from "../src/Task.ts"
import { claimsAmongOtherTasks, concurrencyCapFreedElsewhere, concurrencyCapTwoInstances, conformance, Echo, groupWalkBudget, groupWalkPastTaken, groupWalkQuietAcrossInstances, rateLimitChangeAcrossInstances, rateLimitLiftTwoInstances, tellingIdle, dedupRaceAcrossInstances, retentionAcrossInstances } from "./durable/conformance.ts"
import { lateness, sqliteLockHolder, waitFor } from "./helpers.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wp-durable-"))
let n = 0
const fresh = () => path.join(dir, `jobs-${++n}.db`)
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

conformance("SQLite", () => JobStore.sqlite({ filename: fresh() }))

describe("the SQLite store", () => {
  it.live("a queue's rate limit raised, then lifted, through another connection starts the held-back jobs at once on a consumer polling once an hour (the file watch)", () =>
    Effect.gen(function*() {
      const filename = fresh()
      yield* rateLimitChangeAcrossInstances(() => JobStore.sqlite({ filename }))
    }), { timeout: 60_000 })

  it.live("a queue's retention applied by three connections at once deletes each job once (the writes take turns)", () =>
    Effect.gen(function*() {
      const filename = fresh()
      yield* retentionAcrossInstances(() => JobStore.sqlite({ filename }))
    }), { timeout: 90_000 })

  it.live("a queue's rate limit lifted through a third connection starts jobs at once on both of two held-back consumers of their own connections", () =>
    Effect.gen(function*() {
      const filename = fresh()
      yield* rateLimitLiftTwoInstances(() => JobStore.sqlite({ filename }))
    }), { timeout: 60_000 })

  it.live("a per-key cap's claim cut short by its budget after taking all it offered goes on past the keys it saw: a key after 220 keys of delayed jobs in the fourth claim, not the fifth", () =>
    groupWalkPastTaken(() => JobStore.sqlite({ filename: fresh() })), { timeout: 60_000 })

  it.live("a per-key cap's claim visits at most its budget of keys: beside 300 keys of delayed jobs, claims cut short say dueIn 0, go on where the last stopped, find the key after them, and the round ends", () =>
    groupWalkBudget(() => JobStore.sqlite({ filename: fresh() })), { timeout: 60_000 })

  it.live("a per-key cap beside 300 keys of delayed jobs: two connections' consumers do not wake each other (an empty claim cut short by its budget writes nothing)", () =>
    Effect.gen(function*() {
      const filename = fresh()
      yield* groupWalkQuietAcrossInstances(() => JobStore.sqlite({ filename }))
    }), { timeout: 60_000 })

  it.live("a queue's concurrency cap holds across two connections' consumers polling once an hour, and each freed slot starts the next job at once (the file watch)", () =>
    Effect.gen(function*() {
      const filename = fresh()
      yield* concurrencyCapTwoInstances(() => JobStore.sqlite({ filename }))
    }), { timeout: 60_000 })

  it.live("a slot of a capped queue freed by another connection (a final settle, a retry, a release, a reap that ends it dead or takes it back) starts the next job at once on a consumer polling once an hour (the file watch)", () =>
    Effect.gen(function*() {
      const filename = fresh()
      yield* concurrencyCapFreedElsewhere(() => JobStore.sqlite({ filename }))
    }), { timeout: 120_000 })

  it.live("two connections enqueue one dedup key at once, in each mode and in batches that repeat it: one job, whose handle both get", () =>
    Effect.gen(function*() {
      const filename = fresh()
      yield* dedupRaceAcrossInstances(() => JobStore.sqlite({ filename }))
    }), { timeout: 60_000 })

  it.effect("an idle consumer whose queue holds only jobs of tasks it does not handle claims once, not again at every poll or look", () =>
    Effect.map(claimsAmongOtherTasks(JobStore.sqlite({ filename: fresh() })), (claims) => assert.strictEqual(claims, 0)))

  // Another process's settle stamps its time once it holds the write lock and shows its end at its
  // commit: a latencies read between the two (WAL: a reader sees the last commit) moved `until` past
  // the stamp, and the next read (since = that until) started after it. Here the writer's clock runs
  // the other connection's read at the settle's stamp: the read must wait for the writer's lock (in
  // one thread it gives up after its busy timeout), and the chain of reads counts the job once
  it.live("latencies: a read cannot look between another connection's settle's stamp and its commit; the chain counts the job once", () =>
    Effect.gen(function*() {
      const filename = fresh()
      const base = Clock.Clock.defaultValue()
      let atStamp: (() => void) | undefined
      const hooked: Clock.Clock = {
        currentTimeMillisUnsafe: () => {
          const t = base.currentTimeMillisUnsafe()
          const f = atStamp
          atStamp = undefined
          if (f !== undefined) {
            while (base.currentTimeMillisUnsafe() <= t) {} // the reader's clock is past the stamp
            f()
          }
          return t
        },
        get currentTimeMillis() {
          return Effect.sync(() => hooked.currentTimeMillisUnsafe())
        },
        currentTimeNanosUnsafe: () => base.currentTimeNanosUnsafe(),
        currentTimeNanos: base.currentTimeNanos,
        monotonicTimeNanosUnsafe: () => base.monotonicTimeNanosUnsafe(),
        monotonicTimeNanos: base.monotonicTimeNanos,
        sleep: (duration) => base.sleep(duration)
      }
      const writer = yield* Effect.provideService(Sqlite.make({ filename, busyTimeout: 1000 }), Clock.Clock, hooked)
      const reader = yield* Sqlite.make({ filename, busyTimeout: 100 })
      yield* Effect.provideService(JobQueue.enqueue(Echo, { n: 1 }), JobStore.JobStore, writer)
      const [claim] = (yield* writer.claim({ queues: ["default"], tasks: ["Echo"], limit: 1, lease: 60_000 })).claims
      const start = yield* reader.latencies("default", undefined, 10)
      let between: Exit.Exit<unknown, StoreError> | undefined
      atStamp = () => {
        between = Effect.runSyncExit(reader.latencies("default", start.until, 10))
      }
      assert.isTrue(yield* writer.settle(claim!.token, { _tag: "Final", state: "succeeded", exit: JSON.stringify({ _tag: "Success", value: 2 }) }))
      assert.isDefined(between, "the settle read the clock")
      assert.isTrue(Exit.isFailure(between!), `the read waited for the writer's lock, not looked past its stamp: ${JSON.stringify(between)}`)
      const next = yield* reader.latencies("default", start.until, 10)
      assert.strictEqual(next.jobs.length, 1)
      assert.deepStrictEqual((yield* reader.latencies("default", next.until, 10)).jobs, [])
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live("jobs survive a restart: queued, delayed and claimed-but-unfinished ones all finish after it", () =>
    Effect.gen(function*() {
      const filename = fresh()
      const layer = () => JobStore.sqlite({ filename, busyTimeout: 1000 })
      const ids = yield* Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const a = yield* JobQueue.enqueue(Echo, { n: 1 })
        const b = yield* JobQueue.enqueue(Echo, { n: 2 }, { delay: "1 second" })
        const c = yield* JobQueue.enqueue(Echo, { n: 3 })
        // c is claimed by a consumer that then dies with the process
        yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 1, lease: 10 })
        return [a.id, b.id, c.id]
      }).pipe(Effect.provide(layer()))
      const results = yield* Effect.gen(function*() {
        yield* JobQueue.consume({
          handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n * 2))],
          concurrency: 2,
          lease: 30,
          poll: 5
        })
        return yield* Effect.forEach(ids, (id) => JobQueue.await(Echo, id))
      }).pipe(Effect.scoped, Effect.provide(layer()), Effect.timeout("20 seconds"))
      assert.deepStrictEqual(results, [2, 4, 6])
    }), { timeout: 30_000 })

  it.live("a job enqueued through another connection (no shared in-process signal) starts without waiting for the poll", () =>
    Effect.gen(function*() {
      const filename = fresh()
      const poll = 60_000
      const idle = yield* Deferred.make<void>()
      // the consumer's store: tells when the consumer found nothing and waits for its poll
      const consumerStore = tellingIdle(idle, poll, JobStore.sqlite({ filename }))
      const result = yield* Effect.gen(function*() {
        yield* JobQueue.consume({
          handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n * 3))],
          concurrency: 1,
          poll
        })
        yield* Deferred.await(idle)
        // another store instance (as another process would be): its change reaches the consumer
        // only through the file
        const job = yield* Effect.provide(JobQueue.enqueue(Echo, { n: 7 }), JobStore.sqlite({ filename }))
        return yield* JobQueue.await(Echo, job.id).pipe(Effect.timeout("20 seconds"))
      }).pipe(Effect.scoped, Effect.provide(consumerStore))
      assert.strictEqual(result, 21)
    }), { timeout: 30_000 })

  it.live("a delayed job enqueued through another connection starts at its time on an idle consumer, not at its poll", () =>
    Effect.gen(function*() {
      const filename = fresh()
      const poll = 60_000
      const idle = yield* Deferred.make<void>()
      const consumerStore = tellingIdle(idle, poll, JobStore.sqlite({ filename }))
      const { job, startedAt } = yield* Effect.gen(function*() {
        let startedAt = 0
        yield* JobQueue.consume({
          handlers: [Task.handle(Echo, ({ n }) => Effect.sync(() => (startedAt = Date.now(), n)))],
          concurrency: 1,
          poll
        })
        yield* Deferred.await(idle)
        // the commit wakes the consumer through the file: it finds the job not yet due, and sleeps
        // until it is rather than for its poll
        const job = yield* Effect.provide(JobQueue.enqueue(Echo, { n: 7 }, { delay: "300 millis" }), JobStore.sqlite({ filename }))
        assert.strictEqual(yield* JobQueue.await(Echo, job.id).pipe(Effect.timeout("20 seconds")), 7)
        return { job: yield* JobQueue.status(job.id), startedAt }
      }).pipe(Effect.scoped, Effect.provide(consumerStore))
      assert.isAtLeast(startedAt, job.visibleAt.getTime())
    }), { timeout: 30_000 })

  it.live("the claim's look for the soonest delayed job reads one entry of the delayed jobs' index per queue", () =>
    Effect.gen(function*() {
      const filename = fresh()
      yield* Effect.provide(JobQueue.stats("default"), JobStore.sqlite({ filename }))
      const db = new DatabaseSync(filename)
      const plan = db.prepare(`EXPLAIN QUERY PLAN ${DELAYED}`).all({ queues: JSON.stringify(["default", "other"]), now: 0, after: 0 }) as Array<{ detail: string }>
      db.close()
      assert.match(plan.map((row) => row.detail).join("\n"), /SEARCH d USING INDEX wp_job_delayed \(queue=\? AND visible_at>\?\)/)
    }))

  it.live("a retention by count (its batch and its look) reads the queue's finished jobs of the state from wp_job_retained, not every queue's along wp_job_finished", () =>
    Effect.gen(function*() {
      const filename = fresh()
      yield* Effect.provide(JobQueue.stats("default"), JobStore.sqlite({ filename }))
      const db = new DatabaseSync(filename)
      const plan = (sql: string, ...params: Array<any>) =>
        (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as Array<{ detail: string }>).map((row) => row.detail).join("\n")
      const plans = {
        count: plan(Sqlite.RETAIN_COUNT, { queue: "default", state: "succeeded", batch: 1000, keep: 100_000 }),
        look: plan(Sqlite.RETAIN_LOOK, { queue: "default", state: "succeeded", finishedAt: 0, seq: 0, bound: 10 })
      }
      db.close()
      assert.match(plans.count, /SEARCH wp_job USING COVERING INDEX wp_job_retained \(queue=\? AND state=\?/, plans.count)
      assert.match(plans.look, /SEARCH wp_job USING COVERING INDEX wp_job_retained \(queue=\? AND state=\? AND/, plans.look)
      assert.notMatch(`${plans.count}\n${plans.look}`, /wp_job_finished|TEMP B-TREE|SCAN wp_job/)
    }))

  it.live("a list of queued or of delayed jobs alone reads their seqs from an index, then only the rows it lists (a list of 10 queued jobs read every queued row of the queue into its sort)", () =>
    Effect.gen(function*() {
      const filename = fresh()
      yield* Effect.provide(JobQueue.stats("default"), JobStore.sqlite({ filename }))
      const db = new DatabaseSync(filename)
      const plan = (waiting: "ready" | "delayed") => {
        const [sql, params] = Sqlite.listStatement({ queue: "default", states: ["queued"], limit: 10, waiting }, 0)
        return (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as Array<{ detail: string }>).map((row) => row.detail)
      }
      const plans = { ready: plan("ready"), delayed: plan("delayed") }
      db.close()
      assert.deepStrictEqual(plans, {
        ready: ["SEARCH wp_job USING INTEGER PRIMARY KEY (rowid=?)", "LIST SUBQUERY 1", "SEARCH wp_job USING COVERING INDEX wp_job_ready (queue=?)", "USE TEMP B-TREE FOR ORDER BY"],
        delayed: ["SEARCH wp_job USING INTEGER PRIMARY KEY (rowid=?)", "LIST SUBQUERY 1", "SEARCH wp_job USING INDEX wp_job_delayed (queue=? AND visible_at>?)", "USE TEMP B-TREE FOR ORDER BY"]
      })
    }))

  it.live("a list of expired jobs alone reads the queue's cancelled rows by wp_job_retained (as one state of many it walked every row of the table by seq: all of them for a queue with none expired)", () =>
    Effect.gen(function*() {
      const filename = fresh()
      yield* Effect.provide(JobQueue.stats("default"), JobStore.sqlite({ filename }))
      const db = new DatabaseSync(filename)
      const [sql, params] = Sqlite.listStatement({ queue: "default", states: ["cancelled"], limit: 10, expired: true }, 0)
      const plan = (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as Array<{ detail: string }>).map((row) => row.detail)
      db.close()
      assert.deepStrictEqual(plan, [
        "SEARCH wp_job USING INTEGER PRIMARY KEY (rowid=?)",
        "LIST SUBQUERY 1",
        "SEARCH wp_job USING INDEX wp_job_retained (queue=? AND state=?)",
        "USE TEMP B-TREE FOR ORDER BY"
      ])
    }))

  it.live("the statements that end a job's dependents (count down, mark the edges, find the ended jobs with some to cancel, cancel the closure, release) read the ended jobs' edges and their dependents' rows by key, never a whole table", () =>
    Effect.gen(function*() {
      const filename = fresh()
      yield* Effect.provide(JobQueue.stats("default"), JobStore.sqlite({ filename }))
      const db = new DatabaseSync(filename)
      const plan = (sql: string, params: Record<string, string | number>) =>
        (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(params) as Array<{ detail: string }>).map((row) => row.detail).join("; ")
      const plans = [
        plan(Sqlite.COUNT_DOWN, { ids: "[]" }),
        plan(Sqlite.DEPENDENCIES_SUCCEEDED, { ids: "[]" }),
        plan(Sqlite.CANCELLING, { ids: "[]" }),
        plan(Sqlite.CANCEL_DEPENDENTS, { id: "", state: "dead", now: 0 }),
        plan(Sqlite.RELEASE, { ids: "[]", now: 0 })
      ]
      db.close()
      for (const one of plans) {
        assert.notMatch(one, /SCAN (wp_job|wp_dep|j|d)\b/, one)
        assert.match(one, /SEARCH (wp_dep|d) USING (PRIMARY KEY \(dep_id=\?\)|INDEX wp_dep_job)/, one)
      }
    }))

  it.live("another connection's commit wakes waiters for jobs; only its cancel of a running job wakes cancel watchers (while the watch is armed by a waiter)", () =>
    Effect.gen(function*() {
      const filename = fresh()
      const watching = yield* Layer.build(JobStore.sqlite({ filename }))
      const other = yield* Layer.build(JobStore.sqlite({ filename }))
      const store = Context.get(watching, JobStore.JobStore)
      const writer = Context.get(other, JobStore.JobStore)
      const changed = (version: Effect.Effect<number>, from: number, what: string) =>
        waitFor(Effect.map(version, (v) => v !== from), what)
      // a commit that is no cancel (a heartbeat of another consumer's jobs is one) must not make
      // this process's heartbeats beat: theirs would wake the other's, and so on
      const enqueued = yield* Effect.provideContext(JobQueue.enqueue(Echo, { n: 1 }), other)
      // a fiber waiting for a change (an idle consumer, an awaiter) is what keeps the file watched
      const waiter = () => Effect.forkChild(store.wait(600_000))
      let version = yield* store.version
      const cancelVersion = yield* store.cancelVersion
      yield* waiter()
      yield* writer.claim({ queues: ["default"], tasks: ["Echo"], limit: 1, lease: 60_000 })
      yield* changed(store.version, version, "the other connection's claim woke this store's waiters")
      assert.strictEqual(yield* store.cancelVersion, cancelVersion, "a claim woke the cancel watchers")
      version = yield* store.version
      yield* waiter()
      assert.strictEqual(yield* writer.cancel(enqueued.id), "requested")
      yield* changed(store.cancelVersion, cancelVersion, "the other connection's cancel woke this store's cancel watchers")
      yield* changed(store.version, version, "the cancel woke this store's waiters")
    }).pipe(Effect.scoped))

  it.live("a file that is not a database fails with StoreError naming it; nothing crashes", () =>
    Effect.gen(function*() {
      const filename = fresh()
      fs.writeFileSync(filename, "this is not an SQLite database, just text long enough to have a header".repeat(20))
      const error = yield* Effect.flip(Effect.provide(JobQueue.stats("default"), JobStore.sqlite({ filename })))
      assert.instanceOf(error, StoreError)
      assert.match(error.message, /not a database/)
    }))

  it.live("a file from a newer schema version is refused, not migrated down", () =>
    Effect.gen(function*() {
      const filename = fresh()
      yield* Effect.provide(JobQueue.stats("default"), JobStore.sqlite({ filename }))
      const db = new DatabaseSync(filename)
      db.exec("UPDATE wp_meta SET value = '99' WHERE key = 'schema_version'")
      db.close()
      const error = yield* Effect.flip(Effect.provide(JobQueue.stats("default"), JobStore.sqlite({ filename })))
      assert.instanceOf(error, StoreError)
      assert.strictEqual((error as StoreError).operation, "migrate")
      assert.match(error.message, new RegExp(`schema version 99.*up to ${MIGRATIONS.length}`))
    }))

  /** A new file at schema `version` (this code's first `version` migrations), `statements` run in it. */
  const fileAt = (version: number, ...statements: ReadonlyArray<string>) => {
    const filename = fresh()
    const db = new DatabaseSync(filename)
    db.exec("CREATE TABLE wp_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    for (const migration of MIGRATIONS.slice(0, version)) db.exec(migration)
    db.exec(`INSERT INTO wp_meta VALUES ('schema_version', '${version}')`)
    for (const statement of statements) db.exec(statement)
    db.close()
    return filename
  }

  /** A file's schema version, and its indexes named `index` (one or none). */
  const versionOf = (filename: string, index = "") => {
    const check = new DatabaseSync(filename)
    const version = (check.prepare("SELECT value FROM wp_meta WHERE key = 'schema_version'").get() as { value: string }).value
    const indexes = check.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name = ?").all(index).length
    check.close()
    return { version, indexes }
  }

  it.live("a file of schema version 1 is migrated on open: its jobs are kept and gain the new columns and tables", () =>
    Effect.gen(function*() {
      const filename = fileAt(
        1,
        `INSERT INTO wp_job (id, queue, task, payload, priority, rank, state, max_attempts, timeout_ms, created_at, visible_at)
               VALUES ('old', 'default', 'Echo', '{"n":5}', 0, 0, 'queued', 3, 0, 0, 0)`
      )
      const result = yield* Effect.gen(function*() {
        yield* JobQueue.consume({ handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n * 3))], concurrency: 1, poll: 10 })
        return yield* JobQueue.await(Echo, "old")
      }).pipe(Effect.scoped, Effect.provide(JobStore.sqlite({ filename })))
      assert.strictEqual(result, 15)
      assert.strictEqual(versionOf(filename).version, String(MIGRATIONS.length))
    }))

  it.live("a file of version 13 (per-key caps without wp_job_group_due) with keyed jobs: migrated on open, the index built, its jobs claimed in their keys' turn past a key of delayed jobs", () =>
    Effect.gen(function*() {
      const filename = fileAt(
        13,
        "INSERT INTO wp_queue (name, group_concurrency) VALUES ('default', 1)",
        `INSERT INTO wp_job (id, queue, task, payload, priority, rank, state, max_attempts, timeout_ms, created_at, visible_at, group_key)
               VALUES ('a', 'default', 'Echo', '{"n":1}', 0, 0, 'queued', 3, 0, 0, ${Number.MAX_SAFE_INTEGER}, 'a'),
                      ('b1', 'default', 'Echo', '{"n":2}', 0, 0, 'queued', 3, 0, 0, 0, 'b'),
                      ('b2', 'default', 'Echo', '{"n":3}', 0, 0, 'queued', 3, 0, 0, 0, 'b')`
      )
      yield* Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const claimed = (yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 10, lease: 60_000 })).claims
        assert.deepStrictEqual(claimed.map((c) => c.job.id), ["b1"], "a's is delayed, b at its cap")
      }).pipe(Effect.scoped, Effect.provide(JobStore.sqlite({ filename })))
      assert.deepStrictEqual(versionOf(filename, "wp_job_group_due"), { version: String(MIGRATIONS.length), indexes: 1 })
    }))

  it.live("a file of version 14 (before expiries) with a queued and a cancelled job: migrated on open, the index built, its old jobs never expire (expire_at NULL), a new job's expiry works and the claim's and reap's look for expired jobs reads the index alone", () =>
    Effect.gen(function*() {
      const filename = fileAt(
        14,
        `INSERT INTO wp_job (id, queue, task, payload, priority, rank, state, max_attempts, timeout_ms, created_at, visible_at, finished_at)
               VALUES ('old', 'default', 'Echo', '{"n":1}', 0, 0, 'queued', 3, 0, 0, 0, NULL),
                      ('gone', 'default', 'Echo', '{"n":2}', 0, 0, 'cancelled', 3, 0, 0, 0, 5)`
      )
      yield* Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const fresh = yield* JobQueue.enqueue(Echo, { n: 3 }, { expireIn: "1 second", delay: "500 millis" })
        const created = (yield* JobQueue.status(fresh.id)).createdAt.getTime()
        assert.strictEqual((yield* JobQueue.status(fresh.id)).expiresAt?.getTime(), created + 1000)
        assert.isUndefined((yield* JobQueue.status("gone")).expiredAt, "a cancelled old job is not expired")
        // the new job expires once the store's clock passes it (real time: no claim until then)
        while ((yield* store.now) <= created + 1000) yield* Effect.sleep(50)
        const claimed = (yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 10, lease: 60_000 })).claims
        assert.deepStrictEqual(claimed.map((c) => c.job.id), ["old"])
        assert.instanceOf(yield* Effect.flip(fresh.await), DurableError.JobExpired)
      }).pipe(Effect.scoped, Effect.provide(JobStore.sqlite({ filename })))
      assert.deepStrictEqual(versionOf(filename, "wp_job_expiring"), { version: String(MIGRATIONS.length), indexes: 1 })
      const check = new DatabaseSync(filename)
      const plan = (check.prepare(`EXPLAIN QUERY PLAN ${Sqlite.EXPIRE}`).all({ now: 0, queues: "[\"default\"]", limit: 10 }) as Array<{ detail: string }>)
        .map((row) => row.detail).filter((detail) => /wp_job/.test(detail))
      check.close()
      assert.isTrue(plan.some((detail) => /wp_job_expiring/.test(detail)), plan.join("; "))
      assert.isFalse(plan.some((detail) => /SCAN wp_job\b/.test(detail) && !/wp_job_expiring/.test(detail)), plan.join("; "))
    }))

  it.live("a file of version 15 (before dependencies) with a queued job holding a dedup key: migrated on open, a new job runs after the old one (blocked, then queued by its settle), a blocked job holds its key and is counted from its index", () =>
    Effect.gen(function*() {
      const filename = fileAt(
        15,
        `INSERT INTO wp_job (id, queue, task, payload, priority, rank, dedup_key, state, max_attempts, timeout_ms, created_at, visible_at)
               VALUES ('old', 'default', 'Echo', '{"n":1}', 0, 0, 'k', 'queued', 3, 0, 0, 0)`
      )
      yield* Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        assert.strictEqual((yield* JobQueue.status("old")).waitingFor, 0)
        const after = yield* JobQueue.enqueue(Echo, { n: 2 }, { after: ["old"], queue: "later", dedupKey: "b" })
        assert.deepStrictEqual([(yield* JobQueue.status(after.id)).state, (yield* JobQueue.stats("later")).blocked], ["blocked", 1])
        assert.strictEqual((yield* JobQueue.enqueue(Echo, { n: 3 }, { queue: "later", dedupKey: "b" })).id, after.id, "held while blocked")
        const [claim] = (yield* store.claim({ queues: ["default", "later"], tasks: ["Echo"], limit: 10, lease: 60_000 })).claims
        assert.strictEqual(claim!.job.id, "old", "the blocked one is not claimed")
        assert.isTrue(yield* store.settle(claim!.token, { _tag: "Final", state: "succeeded", exit: null }))
        assert.deepStrictEqual([(yield* JobQueue.status(after.id)).state, (yield* JobQueue.stats("later")).blocked], ["queued", 0])
      }).pipe(Effect.scoped, Effect.provide(JobStore.sqlite({ filename })))
      assert.deepStrictEqual(versionOf(filename, "wp_job_blocked"), { version: String(MIGRATIONS.length), indexes: 1 })
      const check = new DatabaseSync(filename)
      const plan = (sql: string, ...params: Array<any>) =>
        (check.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as Array<{ detail: string }>).map((row) => row.detail).join("; ")
      // a version-15 process still running beside this one during a rolling upgrade: its statements
      // (as it wrote them) still have their plans on the rebuilt indexes (with `state IN` predicates
      // its claims failed, "no query solution", and its dedup look scanned the table)
      const version15 = {
        expire: `UPDATE wp_job SET state = 'cancelled', finished_at = :now, exit = NULL
          WHERE seq IN (SELECT seq FROM wp_job INDEXED BY wp_job_expiring
            WHERE state = 'queued' AND expire_at IS NOT NULL AND expire_at <= :now
              AND (:queues IS NULL OR queue IN (SELECT value FROM json_each(:queues)))
            ORDER BY expire_at LIMIT :limit)`,
        holder: "SELECT id, state, expire_at FROM wp_job WHERE queue = ? AND dedup_key = ? AND state IN ('queued', 'running')",
        redrive: `UPDATE wp_job SET state = 'queued' WHERE id = ? AND state = 'dead' AND NOT EXISTS (
          SELECT 1 FROM wp_job other WHERE other.queue = wp_job.queue
            AND other.dedup_key = COALESCE(wp_job.dedup_key, wp_job.dedup_queued) AND other.state IN ('queued', 'running'))`
      }
      const plans = {
        counts: plan(Sqlite.COUNTS, { queue: "default", now: 0 }),
        expire: plan(Sqlite.EXPIRE, { now: 0, queues: null, limit: 10 }),
        holder: plan(Sqlite.HOLDER, "q", "k", "q", "k", 0),
        expire15: plan(version15.expire, { now: 0, queues: null, limit: 10 }),
        holder15: plan(version15.holder, "q", "k"),
        redrive: plan(Sqlite.REDRIVE, 0, 0, "x"),
        redrive15: plan(version15.redrive, "x")
      }
      check.close()
      assert.include(plans.counts, "SEARCH wp_job USING COVERING INDEX wp_job_blocked (queue=?)")
      assert.match(plans.expire, /USING INDEX wp_job_expiring/)
      assert.match(plans.expire15, /USING INDEX wp_job_expiring/)
      assert.include(plans.holder, "LEFT-MOST SUBQUERY; SEARCH wp_job USING INDEX wp_job_dedup (queue=? AND dedup_key=?)", plans.holder)
      assert.strictEqual(plans.holder15, "SEARCH wp_job USING INDEX wp_job_dedup (queue=? AND dedup_key=?)")
      // a redrive's look for another holder of its key: the index, not a scan of every job
      for (const redrive of [plans.redrive, plans.redrive15]) {
        assert.include(redrive, "SEARCH other USING INDEX wp_job_dedup (queue=? AND dedup_key=?)", redrive)
      }
    }))

  it.live("a file from before queue holds (version 10) with a queued job: migrated on open, a hold holds the job, a snooze is counted", () =>
    Effect.gen(function*() {
      const filename = fileAt(
        10,
        `INSERT INTO wp_job (id, queue, task, payload, priority, rank, state, max_attempts, timeout_ms, created_at, visible_at)
               VALUES ('old', 'default', 'Echo', '{"n":5}', 0, 0, 'queued', 3, 0, 0, 0)`
      )
      yield* Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const request = { queues: ["default"], tasks: ["Echo"], limit: 1, lease: 60_000 }
        yield* JobQueue.holdQueue("default", "1 hour")
        assert.deepStrictEqual((yield* store.claim(request)).claims, [], "held")
        yield* JobQueue.holdQueue("default", 0)
        const [claim] = (yield* store.claim(request)).claims
        assert.strictEqual(claim!.job.id, "old")
        assert.isTrue(yield* store.settle(claim!.token, { _tag: "Release", delay: 1 }))
        assert.strictEqual((yield* JobQueue.status("old")).snoozes, 1)
      }).pipe(Effect.scoped, Effect.provide(JobStore.sqlite({ filename })))
      assert.strictEqual(versionOf(filename).version, String(MIGRATIONS.length))
    }))

  it.live("a file from before the dedup modes with a job holding a key: migrated on open, the job keeps its key through its run, the new modes work", () =>
    Effect.gen(function*() {
      // version 8 is the dedup modes' migration (9, retention's, comes after it)
      const filename = fileAt(
        7,
        `INSERT INTO wp_job (id, queue, task, payload, priority, rank, dedup_key, state, max_attempts, timeout_ms, created_at, visible_at)
               VALUES ('old', 'default', 'Echo', '{"n":5}', 0, 0, 'k', 'queued', 3, 0, 0, 0)`
      )
      yield* Effect.gen(function*() {
        assert.strictEqual((yield* JobQueue.enqueue(Echo, { n: 1 }, { dedupKey: "k", dedupWhile: "queued" })).id, "old")
        const store = yield* JobStore.JobStore
        const [claim] = (yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 1, lease: 60_000 })).claims
        assert.strictEqual(claim!.job.id, "old")
        assert.strictEqual((yield* JobQueue.enqueue(Echo, { n: 2 }, { dedupKey: "k" })).id, "old", "held through its run, as before")
        assert.isTrue((yield* JobQueue.enqueue(Echo, { n: 3 }, { dedupKey: "q", dedupWhile: "queued", dedupFor: "1 hour" })).created)
      }).pipe(Effect.scoped, Effect.provide(JobStore.sqlite({ filename })))
      assert.strictEqual(versionOf(filename).version, String(MIGRATIONS.length))
    }))

  it.live("a file of schema version 5 with a delayed job made by the old code: migrated to 6, the job starts at its time under a 1 hour poll", () =>
    Effect.gen(function*() {
      const filename = fresh()
      const db = new DatabaseSync(filename)
      db.exec("CREATE TABLE wp_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
      for (const migration of MIGRATIONS.slice(0, 5)) db.exec(migration)
      db.exec("INSERT INTO wp_meta VALUES ('schema_version', '5')")
      // as version 5's enqueue wrote a job with a delay: created now, visible later
      const now = Date.now()
      db.prepare(`INSERT INTO wp_job (id, queue, task, payload, priority, rank, state, max_attempts, timeout_ms, created_at, visible_at)
               VALUES ('old', 'default', 'Echo', '{"n":5}', 0, 0, 'queued', 3, 0, ?, ?)`).run(now, now + 1500)
      db.close()
      const started = yield* Effect.gen(function*() {
        let at = 0
        yield* JobQueue.consume({
          handlers: [Task.handle(Echo, ({ n }) => Effect.sync(() => (at = Date.now(), n)))],
          concurrency: 1,
          poll: 3_600_000
        })
        assert.strictEqual(yield* JobQueue.await(Echo, "old"), 5)
        return at
      }).pipe(Effect.scoped, Effect.provide(JobStore.sqlite({ filename })), Effect.timeout("30 seconds"))
      assert.isAtLeast(started, now + 1500)
    }), { timeout: 60_000 })

  /**
   * Another connection that has begun writing a new file in its first journal mode: the store's
   * switch of that file to WAL is refused at once, without SQLite's busy wait (as it may be while
   * other processes open the same new file). `release` commits it.
   */
  const writingInRollbackMode = (filename: string) => {
    const other = new DatabaseSync(filename)
    other.exec("CREATE TABLE other_table (a)")
    other.exec("BEGIN IMMEDIATE")
    other.exec("INSERT INTO other_table VALUES (1)")
    return {
      release: () => {
        // a timer's: a test that failed before it may have removed the file
        if (other.isOpen) {
          if (other.isTransaction) other.exec("COMMIT")
          other.close()
        }
      }
    }
  }

  it.live("opening a new file whose write lock another connection holds (another process opening it too) waits for it", () =>
    Effect.gen(function*() {
      const filename = fresh()
      const other = writingInRollbackMode(filename)
      // released in real time, after the open's first try: the open must wait for it, not fail
      setTimeout(other.release, 300)
      const stats = yield* Effect.provide(JobQueue.stats("default"), JobStore.sqlite({ filename, busyTimeout: 5000 }))
      assert.strictEqual(stats.waiting, 0)
      const db = new DatabaseSync(filename)
      assert.deepStrictEqual(db.prepare("PRAGMA journal_mode").get(), { journal_mode: "wal" })
      db.close()
    }))

  it.effect("under a TestClock too: that wait is SQLite's busy wait, in real time, not the test's clock", () =>
    Effect.gen(function*() {
      const filename = fresh()
      const other = writingInRollbackMode(filename)
      const open = yield* Effect.forkChild(Effect.provide(JobQueue.stats("default"), JobStore.sqlite({ filename, busyTimeout: 5000 })))
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 50)))
      other.release()
      // nobody moves the TestClock: the open still ends once the lock is gone
      yield* waitFor(Effect.sync(() => open.pollUnsafe() !== undefined), "the open ended")
      const exit = open.pollUnsafe()!
      assert.isTrue(exit._tag === "Success", String(exit))
    }))

  it.live("a file locked by another process past the busy timeout: a typed StoreError, nothing stored; later it works", () =>
    Effect.gen(function*() {
      const filename = fresh()
      yield* Effect.gen(function*() {
        yield* JobQueue.stats("default") // created
        const other = new DatabaseSync(filename)
        other.exec("BEGIN IMMEDIATE")
        const error = yield* Effect.flip(JobQueue.enqueue(Echo, { n: 1 }))
        assert.instanceOf(error, StoreError)
        assert.strictEqual((error as StoreError).operation, "enqueue")
        assert.match(error.message, /locked|busy/)
        other.exec("ROLLBACK")
        other.close()
        assert.strictEqual((yield* JobQueue.list()).length, 0)
        yield* JobQueue.enqueue(Echo, { n: 1 })
        assert.strictEqual((yield* JobQueue.list()).length, 1)
      }).pipe(Effect.provide(JobStore.sqlite({ filename, busyTimeout: 50 })))
    }))

  it.live("11. a consumer goes on after the store failed it (a lock held past the busy timeout): no job lost", () =>
    Effect.gen(function*() {
      const filename = fresh()
      let failedClaims = 0
      const failing = Layer.effect(
        JobStore.JobStore,
        Effect.map(JobStore.JobStore, (store) => ({
          ...store,
          claim: (request: Parameters<typeof store.claim>[0]) =>
            Effect.tapError(store.claim(request), () => Effect.sync(() => failedClaims++))
        }))
      ).pipe(Layer.provide(JobStore.sqlite({ filename, busyTimeout: 20 })))
      const results = yield* Effect.gen(function*() {
        const jobs = yield* Effect.forEach([1, 2, 3, 4, 5], (n) => JobQueue.enqueue(Echo, { n }))
        const other = new DatabaseSync(filename)
        other.exec("BEGIN IMMEDIATE")
        yield* JobQueue.consume({ handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))], concurrency: 2, poll: 10 })
        yield* waitFor(Effect.sync(() => failedClaims), "claims failed on the lock", { until: (n) => n >= 3 })
        other.exec("ROLLBACK")
        other.close()
        return yield* Effect.forEach(jobs, (job) => job.await)
      }).pipe(Effect.scoped, Effect.provide(failing), Effect.provideService(References.MinimumLogLevel, "Error"))
      assert.deepStrictEqual(results, [1, 2, 3, 4, 5])
    }))

  // SQLite's own busy wait blocks the thread: with it waiting the 5 s, this timer came 5 s late
  it.live("another process holding the write lock blocks no fiber: a timer fires on time, and the settle and enqueue waiting for the lock are written once it is free", () =>
    Effect.gen(function*() {
      const filename = fresh()
      const finish = yield* Deferred.make<void>()
      let started = 0
      const results = yield* Effect.gen(function*() {
        yield* JobQueue.consume({
          handlers: [Task.handle(Echo, ({ n }) => Effect.andThen(Effect.sync(() => started++), Effect.as(Deferred.await(finish), n)))],
          concurrency: 1,
          poll: "1 hour"
        })
        const first = yield* JobQueue.enqueue(Echo, { n: 1 })
        yield* waitFor(Effect.sync(() => started), "the job started", { until: (n) => n === 1 })
        const holder = yield* sqliteLockHolder(filename)
        // the ended job's settle, and an enqueue, wait for the lock
        yield* Deferred.succeed(finish, undefined)
        const second = yield* Effect.forkChild(JobQueue.enqueue(Echo, { n: 2 }))
        const late = yield* lateness(100, 1500)
        // a loaded 2-core machine delays a timer by a few hundred ms; a blocked thread by the whole busy timeout (5 s)
        assert.isBelow(late, 1000, "the latest of 100 ms timers for 1.5 s while the lock was held")
        assert.isUndefined(second.pollUnsafe(), "the enqueue waits for the lock")
        yield* holder.release
        const job2 = yield* Fiber.join(second)
        return [yield* first.await, yield* job2.await]
      }).pipe(Effect.scoped, Effect.provide(JobStore.sqlite({ filename })))
      assert.deepStrictEqual(results, [1, 2])
    }), { timeout: 60_000 })

  it.live("bad options fail with StoreError naming the field", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.provide(JobQueue.stats("default"), JobStore.sqlite({ filename: "" })))
      assert.match(error.message, /filename/)
      const timeout = yield* Effect.flip(Effect.provide(JobQueue.stats("default"), JobStore.sqlite({ filename: fresh(), busyTimeout: -1 })))
      assert.match(timeout.message, /busyTimeout/)
    }))
})
