/**
 * The SQLite store, on `node:sqlite` (synchronous, in-process). Several processes share one file:
 * WAL mode lets readers go on while one writes, and every write is a `BEGIN IMMEDIATE` transaction,
 * so it takes the write lock before reading (a deferred transaction that reads then writes can fail
 * with SQLITE_BUSY without waiting, when another process wrote in between). Each operation runs
 * synchronously to its end, so fibers of one process never interleave inside a transaction.
 *
 * Waiting for another process's lock is not SQLite's busy timeout: its wait is synchronous and
 * blocks the whole thread (every fiber, timer and heartbeat of the process) for as long as it
 * lasts. SQLite waits at most `SPIN` ms, and for one operation of the store at a time (the others
 * try without waiting: see `lockWaits`); an operation that still finds the lock taken rolled back
 * whatever it did, and is tried again after a timer (the event loop runs meanwhile, and an
 * interrupt stops it there), until `busyTimeout` has passed.
 *
 * Time is this machine's clock (every process on the file shares it), read through the Effect
 * `Clock`.
 *
 * @internal
 */
import { Clock, Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import type { DatabaseSync, SQLInputValue, StatementSync } from "node:sqlite"
import { JobNotFound, StoreError } from "../../DurableError.ts"
import * as config from "../config.ts"
import {
  type Claim,
  EXPIRE_BATCH,
  type Claimed,
  type ClaimRequest,
  fullQueues,
  keepTurns,
  claimWindow,
  type ClaimWindow,
  type JobRow,
  cursorTime,
  type Latencies,
  type LimitedQueue,
  type LatencyCursor,
  latencyOf,
  type FreshJob,
  withItemsNamed,
  type NewJob,
  type ProgressOf,
  type QueueCounts,
  type QueueSettings,
  decodeRetention,
  encodeRetention,
  RETAIN_QUEUES,
  retainCursor,
  retainPass,
  retainRules,
  retentionField,
  type Settled,
  type Settlement,
  type ListFilter,
  type State,
  type Store,
  takeFromWindows,
  withId,
  holdShown,
  type ReapedJob,
  type ReapedRow,
  reapedOf,
  groupBudget,
  groupRounds,
  type GroupWalked
} from "./model.ts"
import { cancelledForGood, type SqlRow, toRow } from "./sqlRow.ts"
import { makeSignal } from "./signal.ts"
import * as Closing from "./closing.ts"
import { watchOtherProcesses } from "./sqliteWatch.ts"
import * as Backoff from "../durable/backoff.ts"
import * as RetainCount from "./retainCount.ts"

/** The schema's migrations, in order: version n is reached by running `MIGRATIONS[n - 1]`. */
export const MIGRATIONS: ReadonlyArray<string> = [
  `CREATE TABLE wp_job (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    queue TEXT NOT NULL,
    task TEXT NOT NULL,
    payload TEXT NOT NULL,
    priority REAL NOT NULL,
    rank REAL NOT NULL,
    dedup_key TEXT,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    timeout_ms INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    visible_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    lease_token TEXT,
    lease_until INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    exit TEXT
  );
  CREATE INDEX wp_job_ready ON wp_job (queue, rank DESC, seq) WHERE state = 'queued';
  CREATE INDEX wp_job_running ON wp_job (lease_until) WHERE state = 'running';
  CREATE UNIQUE INDEX wp_job_token ON wp_job (lease_token) WHERE lease_token IS NOT NULL;
  CREATE UNIQUE INDEX wp_job_dedup ON wp_job (queue, dedup_key)
    WHERE dedup_key IS NOT NULL AND state IN ('queued', 'running');
  CREATE INDEX wp_job_finished ON wp_job (finished_at) WHERE finished_at IS NOT NULL;
  CREATE TABLE wp_queue (
    name TEXT PRIMARY KEY,
    paused INTEGER NOT NULL DEFAULT 0,
    aging_ms REAL NOT NULL DEFAULT 0
  );`,
  // 2: per-job progress
  `ALTER TABLE wp_job ADD COLUMN progress TEXT;`,
  // 3: shared rate limits: the limit per queue, and the times of each limited queue's last claims
  `ALTER TABLE wp_queue ADD COLUMN rate_limit INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE wp_queue ADD COLUMN rate_interval_ms REAL NOT NULL DEFAULT 0;
  ALTER TABLE wp_queue ADD COLUMN rate_count INTEGER NOT NULL DEFAULT 0;
  CREATE TABLE wp_rate (id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, at REAL NOT NULL);
  CREATE INDEX wp_rate_queue ON wp_rate (queue, id);
  CREATE INDEX wp_rate_at ON wp_rate (queue, at);`,
  // 4: the producer's span (trace context)
  `ALTER TABLE wp_job ADD COLUMN trace TEXT;`,
  // 5: the job's own retry policy (a backoff, or the name of a consumer's policy)
  `ALTER TABLE wp_job ADD COLUMN retry TEXT;`,
  // 6: the delayed jobs by due time, for the claim's "next due in" (see DELAYED)
  `CREATE INDEX wp_job_delayed ON wp_job (queue, visible_at) WHERE state = 'queued' AND visible_at > created_at;`,
  // 7: a queue's counts (see COUNTS) from indexes alone, where they scanned the whole table (200,000
  // jobs: 450 ms, the process's event loop held): the indexes the claim, the reaper and the purge
  // keep anyway carry what the counts need. No index of its own: a claim or a settle would write
  // one more page per commit (an index of every job by state: the store's claims took 1.8× and
  // settles 1.5× the time; one of finished jobs by queue and state: settles 1.2×)
  `DROP INDEX wp_job_ready;
  CREATE INDEX wp_job_ready ON wp_job (queue, rank DESC, seq, priority, visible_at) WHERE state = 'queued';
  DROP INDEX wp_job_running;
  CREATE INDEX wp_job_running ON wp_job (lease_until, queue) WHERE state = 'running';
  DROP INDEX wp_job_finished;
  CREATE INDEX wp_job_finished ON wp_job (finished_at, queue, state) WHERE finished_at IS NOT NULL;`,
  // 8: dedup modes: a "queued"-mode job's key (`dedup_key` is cleared when it starts, which
  // releases it from wp_job_dedup), and the end of a throttle window (`dedupFor`) during which the
  // key stays held whatever the state. A process of an older version ignores both: it claims a
  // "queued"-mode job without releasing its key (held until it finishes, as before), and creates a
  // job while another's window holds the key once that one has finished
  `ALTER TABLE wp_job ADD COLUMN dedup_queued TEXT;
  ALTER TABLE wp_job ADD COLUMN dedup_until INTEGER;
  CREATE INDEX wp_job_dedup_until ON wp_job (queue, COALESCE(dedup_key, dedup_queued), dedup_until)
    WHERE dedup_until IS NOT NULL;`,
  // 9: a queue's retention of its finished jobs (JSON text, see `JobQueue.setRetention`). No index
  // of its own: its batches read `wp_job_finished` (see RETAIN_AGE)
  `ALTER TABLE wp_queue ADD COLUMN retention TEXT;`,
  // 10: a queue's cap on running jobs (JobQueue.setConcurrency), 0 for none: counted at each claim from
  // the running rows (wp_job_running), never kept as a counter a missed settle could leave wrong
  `ALTER TABLE wp_queue ADD COLUMN concurrency INTEGER NOT NULL DEFAULT 0;`,
  // 11: a queue held until a time (`JobQueue.holdQueue`, a snooze's `holdQueue`): no claims before
  // it; and a job's count of snoozes (`JobQueue.snooze`)
  `ALTER TABLE wp_queue ADD COLUMN held_until INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE wp_job ADD COLUMN snoozes INTEGER NOT NULL DEFAULT 0;`,
  // 12: a queue's finished jobs of a state, by end time (and seq, the rowid every index holds), for
  // its retention by count (RETAIN_COUNT, RETAIN_LOOK): along `wp_job_finished` (by end time first)
  // a batch read every queue's finished jobs from the newest to this queue's cut, under the write lock
  `CREATE INDEX wp_job_retained ON wp_job (queue, state, finished_at) WHERE finished_at IS NOT NULL;`,
  // 13: per-key caps (JobQueue.setGroupConcurrency): a job's key, '' for an ungrouped job of a queue
  // with the cap (NULL otherwise), the cap (0: none) and the key a claim served last. Indexes of
  // grouped jobs only: a job without a key (every job of a queue without the cap) writes neither, so
  // the claim and settle of such queues cost what they did. A claim walks the keys of the queued
  // jobs in order from the one after the cursor (`GROUP_NEXT`), and counts the running ones per key
  `ALTER TABLE wp_queue ADD COLUMN group_concurrency INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE wp_queue ADD COLUMN group_cursor TEXT;
  ALTER TABLE wp_job ADD COLUMN group_key TEXT;
  CREATE INDEX wp_job_group_ready ON wp_job (queue, group_key, rank DESC, seq) WHERE state = 'queued' AND group_key IS NOT NULL;
  CREATE INDEX wp_job_group_running ON wp_job (queue, group_key) WHERE state = 'running' AND group_key IS NOT NULL;`,
  // 14: a key's queued jobs by due time, for a claim's probe of a key (`GROUP_DUE`): without it a
  // key's delayed backlog was read in full along `wp_job_group_ready` by each claim that visited it
  `CREATE INDEX wp_job_group_due ON wp_job (queue, group_key, visible_at) WHERE state = 'queued' AND group_key IS NOT NULL;`,
  // 15: a job's expiry (`EnqueueOptions.expireIn`): when it ends unstarted, NULL for none (every
  // older row) and from its first start on. The index holds only the queued jobs with one, so a
  // claim's and a reap's look for expired jobs (`EXPIRE`) costs nothing where no job has one. A
  // process of an older version ignores the column: it claims an expired job (and clears nothing)
  `ALTER TABLE wp_job ADD COLUMN expire_at INTEGER;
  CREATE INDEX wp_job_expiring ON wp_job (expire_at, queue) WHERE state = 'queued' AND expire_at IS NOT NULL;`,
  // 16: job dependencies (`NewJob.after`). A job with some has `waiting_for` (how many have not
  // succeeded; NULL: none) and an edge per dependency in `wp_dep`, kept when the dependency's row is
  // deleted (a redrive of the dependent reads what it still needs), gone with the dependent's row
  // (`wp_dep_gone`). `has_dependents` gates a settle's look at them: a job without dependents pays
  // nothing. A blocked job holds its dedup key and expires (`expireIn`) as a queued one: those two
  // indexes take it in, their predicates an OR with the old one, which a version-15 process's
  // statements still imply (with \`state IN (...)\` its claims failed, "no query solution" for
  // EXPIRE's INDEXED BY, and its dedup look scanned the table); its own partial index is empty where
  // no job has dependencies (the counts read it). A process of an older version still running
  // settles a dependency without releasing its dependents: every process is upgraded before \`after\`
  // is used
  `ALTER TABLE wp_job ADD COLUMN waiting_for INTEGER;
  ALTER TABLE wp_job ADD COLUMN after_failure INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE wp_job ADD COLUMN failed_dep_id TEXT;
  ALTER TABLE wp_job ADD COLUMN failed_dep_state TEXT;
  ALTER TABLE wp_job ADD COLUMN has_dependents INTEGER NOT NULL DEFAULT 0;
  CREATE TABLE wp_dep (
    dep_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    succeeded INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (dep_id, job_id)
  ) WITHOUT ROWID;
  CREATE INDEX wp_dep_job ON wp_dep (job_id);
  CREATE TRIGGER wp_dep_gone AFTER DELETE ON wp_job WHEN OLD.waiting_for IS NOT NULL
    BEGIN DELETE FROM wp_dep WHERE job_id = OLD.id; END;
  CREATE INDEX wp_job_blocked ON wp_job (queue) WHERE state = 'blocked';
  DROP INDEX wp_job_dedup;
  CREATE UNIQUE INDEX wp_job_dedup ON wp_job (queue, dedup_key)
    WHERE dedup_key IS NOT NULL AND (state = 'blocked' OR state IN ('queued', 'running'));
  DROP INDEX wp_job_expiring;
  CREATE INDEX wp_job_expiring ON wp_job (expire_at, queue) WHERE (state = 'blocked' OR state = 'queued') AND expire_at IS NOT NULL;`
]

/**
 * Queued or blocked jobs past their expiry (`:now`), at most `:limit`, soonest first (then the
 * oldest): those of the queues `:queues` (a JSON array; null: every queue's), with whether they
 * have dependents. Along `wp_job_expiring` (named: with the queues given, the planner may take
 * `wp_job_ready`, every queued job of them). `END_EXPIRED` ends them.
 */
export const EXPIRE = `SELECT seq, has_dependents FROM wp_job INDEXED BY wp_job_expiring
  WHERE (state = 'blocked' OR state = 'queued') AND expire_at IS NOT NULL AND expire_at <= :now
    AND (:queues IS NULL OR queue IN (SELECT value FROM json_each(:queues)))
  ORDER BY expire_at, seq LIMIT :limit`

/** Ends expired jobs (`:seqs`, a JSON array) still waiting, cancelled at `:now` (see `EXPIRE`). */
const END_EXPIRED = `UPDATE wp_job SET state = 'cancelled', finished_at = :now, exit = NULL
  WHERE seq IN (SELECT value FROM json_each(:seqs)) AND (state = 'blocked' OR state = 'queued')
  RETURNING id, has_dependents`

/**
 * The first key after `:after` (`:first`: from it, '' included) of a queue's queued jobs under a
 * per-key cap, up to `:stop` (null: none): one probe of `wp_job_group_ready` per key, however many
 * jobs a key has.
 */
const GROUP_NEXT = (first: boolean) =>
  `SELECT group_key AS g FROM wp_job WHERE queue = ?1 AND state = 'queued' AND group_key ${first ? ">=" : ">"} ?2
    AND (?3 IS NULL OR group_key <= ?3)
  ORDER BY group_key LIMIT 1`

/**
 * Whether a key has a visible job (queue, key, now), along `wp_job_group_due`: a key whose jobs are
 * all delayed costs one probe, not a read of its backlog (named, as `GROUP_HEADS` is: no planner choice).
 */
const GROUP_DUE = `SELECT 1 AS due FROM wp_job INDEXED BY wp_job_group_due
  WHERE queue = ? AND state = 'queued' AND group_key = ? AND visible_at <= ? LIMIT 1`

/**
 * A key's best visible jobs of the claim's tasks (queue, key, now, tasks, limit), along
 * `wp_job_group_ready` (named: by its visible_at, `wp_job_group_due` looked better to the planner,
 * which then read and sorted every visible job of the key)
 */
const GROUP_HEADS = `SELECT seq, rank, queue, group_key FROM wp_job INDEXED BY wp_job_group_ready
  WHERE queue = ? AND state = 'queued' AND group_key = ? AND visible_at <= ? AND task IN (SELECT value FROM json_each(?))
  ORDER BY rank DESC, seq LIMIT ?`

/** A queue's running jobs per key, along `wp_job_group_running` (as many as the fleet's slots). */
const GROUP_RUNNING = `SELECT group_key AS g, COUNT(*) AS n FROM wp_job
  WHERE queue = ? AND state = 'running' AND group_key IS NOT NULL GROUP BY group_key`

/**
 * A queue's counts (`:queue`, at `:now`) of running and queued jobs, from indexes alone: the running
 * ones (`wp_job_running`: every queue's, as many as the consumers' slots), the blocked ones
 * (`wp_job_blocked`), the queued ones by priority with how many of each are delayed (`wp_job_ready`).
 */
export const COUNTS = `SELECT 'running' AS state, NULL AS priority, COUNT(*) AS n, 0 AS delayed FROM wp_job
    WHERE state = 'running' AND queue = :queue
  UNION ALL
  SELECT 'blocked', NULL, COUNT(*), 0 FROM wp_job WHERE queue = :queue AND state = 'blocked'
  UNION ALL
  SELECT 'queued', priority, COUNT(*), SUM(visible_at > :now) FROM wp_job
    WHERE queue = :queue AND state = 'queued' GROUP BY priority`

/**
 * A queue's counts (`:queue`) of finished jobs, from an index alone: since version 12 the queue's
 * range of each state in `wp_job_retained`; before it, every queue's finished jobs along
 * `wp_job_finished` (a purge keeps them few), in one pass.
 */
export const FINISHED = `SELECT SUM(state = 'succeeded') AS succeeded, SUM(state = 'dead') AS dead,
    SUM(state = 'cancelled') AS cancelled FROM wp_job
  WHERE finished_at IS NOT NULL AND queue = :queue AND state IN ('succeeded', 'dead', 'cancelled')`

/** The most finished jobs one purge transaction deletes (see `purge`). */
export const PURGE_BATCH = 2000

/**
 * What a delete of finished jobs (purge, retention) returns of each where some job has dependents:
 * enough to end what still waits for one that did not succeed (see `forgotten` in `make`).
 */
const FORGOTTEN = "seq, id, state, has_dependents, failed_dep_id, (expire_at IS NOT NULL AND finished_at >= expire_at) AS expired"

/** A batch of a purge: args `from` (a finish time), `before`, the states as JSON, the batch's size. */
export const PURGE = `DELETE FROM wp_job WHERE seq IN (
    SELECT seq FROM wp_job WHERE finished_at >= ? AND finished_at < ?
      AND state IN ('succeeded', 'dead', 'cancelled') AND state IN (SELECT value FROM json_each(?))
    ORDER BY finished_at LIMIT ?)
  RETURNING finished_at`

/**
 * A retention batch by age: args queue, state, `before`, the batch's size. The oldest first, along
 * `wp_job_retained` since version 12 (before it, `wp_job_finished`: by end time, its queue and state
 * in the index): no row read but those deleted.
 */
export const RETAIN_AGE = `DELETE FROM wp_job WHERE seq IN (
    SELECT seq FROM wp_job WHERE finished_at IS NOT NULL AND queue = ? AND state = ? AND finished_at < ?
    ORDER BY finished_at, seq LIMIT ?)`

/**
 * A retention batch by count: `:queue`, `:state`, `:batch` (its size), `:keep` (how many of the
 * newest to keep). The cut (the newest job past them) is read along `wp_job_retained` from the
 * queue and state's newest end, reading only the kept ones; the batch is then the oldest up to it,
 * as an age's and every other store's go. As one `LIMIT batch OFFSET keep` from the newest end, a
 * backlog went from the newest past the count backwards, the oldest jobs last.
 */
export const RETAIN_COUNT = `DELETE FROM wp_job WHERE seq IN (
    SELECT seq FROM wp_job WHERE finished_at IS NOT NULL AND queue = :queue AND state = :state
      AND (finished_at, seq) <= (SELECT finished_at, seq FROM wp_job WHERE finished_at IS NOT NULL AND queue = :queue
        AND state = :state ORDER BY finished_at DESC, seq DESC LIMIT 1 OFFSET :keep)
    ORDER BY finished_at, seq LIMIT :batch)`

/**
 * A look of a retention by count (see `retainCount.ts`), one statement's snapshot: how many of a
 * queue's finished jobs of a state came after (`:finishedAt`, `:seq`), at most `:bound`, and the
 * newest of them. Along `wp_job_retained`, reading only those.
 */
export const RETAIN_LOOK = `SELECT
    (SELECT COUNT(*) FROM (SELECT 1 FROM wp_job WHERE finished_at IS NOT NULL AND queue = :queue AND state = :state
      AND (finished_at, seq) > (:finishedAt, :seq) LIMIT :bound)) AS n,
    newest.finished_at AS finishedAt, newest.seq AS seq
  FROM (SELECT 1) LEFT JOIN (SELECT finished_at, seq FROM wp_job WHERE finished_at IS NOT NULL AND queue = :queue
    AND state = :state ORDER BY finished_at DESC, seq DESC LIMIT 1) newest`

/**
 * The soonest delayed job of some queues (`:queues`, a JSON array), of those not paused, at `:now`:
 * each queue's first entry of `wp_job_delayed`, in one statement. That index holds only the queued
 * jobs that were not visible when they entered the queue (`visible_at > created_at`: a delay, a
 * retry's backoff, a reaped job's), so a job enqueued to run at once costs it nothing; a job due
 * later than now is always in it (it was created before now). The query repeats the index's
 * condition, as SQLite needs to use it. One statement for all the queues, not one per queue: in a
 * claim's write transaction, a statement per queue of 10,000 (a queue per tenant) took 25-60 ms
 * per claim that came up short (each idle consumer's look), the store locked for every process
 * meanwhile; one statement takes a few.
 *
 * A value used twice is a named parameter, never a numbered one (`?1`): the node:sqlite of Node
 * 22.13 (the store's floor) fails a statement with numbered parameters, "column index out of range".
 */
export const DELAYED = `SELECT min(coalesce(
    (SELECT h.held_until FROM wp_queue h WHERE h.name = q.value AND h.held_until > :now),
    (SELECT d.visible_at FROM wp_job d
      WHERE d.queue = q.value AND d.state = 'queued' AND d.visible_at > d.created_at AND d.visible_at > :after
      ORDER BY d.visible_at LIMIT 1))) AS visible_at
  FROM json_each(:queues) q
  WHERE NOT EXISTS (SELECT 1 FROM wp_queue p WHERE p.name = q.value AND p.paused = 1)`

/**
 * The best visible jobs of some queues, best first, at most a limit: what follows a select's columns
 * (`j` the job table); parameters now, the queues and the tasks (JSON arrays), now again (a queue
 * held past it gives none), the limit. A claim's
 * one statement and a rate-limited claim's candidates pick by it alike.
 */
const BEST = `FROM wp_job j
  WHERE j.state = 'queued' AND j.visible_at <= ?
    AND j.queue IN (SELECT value FROM json_each(?))
    AND j.task IN (SELECT value FROM json_each(?))
    AND NOT EXISTS (SELECT 1 FROM wp_queue q WHERE q.name = j.queue AND (q.paused = 1 OR q.held_until > ?))
  ORDER BY j.rank DESC, j.seq
  LIMIT ?`

/** A claim's change to the jobs it takes, before its WHERE; parameters now, the lease's end. */
const CLAIM = `UPDATE wp_job SET state = 'running', attempts = attempts + 1, started_at = ?,
  lease_token = lower(hex(randomblob(16))), lease_until = ?, expire_at = NULL,
  dedup_key = CASE WHEN dedup_queued IS NULL THEN dedup_key END`

/** A claim's one statement: the best visible jobs of the request's queues become running. */
const CLAIM_BEST = `${CLAIM} WHERE seq IN (SELECT j.seq ${BEST}) RETURNING *`

/** A rate-limited claim's statement: the candidates it picked (their seqs, a JSON array) become running. */
const CLAIM_PICKED = `${CLAIM} WHERE seq IN (SELECT value FROM json_each(?)) RETURNING *`

/** A rate-limited claim's candidates (the columns it picks by), best first. */
const CANDIDATES = `SELECT j.seq, j.rank, j.queue ${BEST}`

/**
 * A fair claim's round (`ClaimRequest.fair`): the best visible job of each queue of `:queues` (a
 * JSON array, in turn order; paused ones left out), at most `:left`. SQLite runs the correlated
 * subquery row by row, in the array's order, and stops at the LIMIT: with 10,000 queues and a few
 * free slots, a round reads the few first queues that have a job, one index probe each
 * (`wp_job_ready`), not every queue's best as a claim by priority does.
 */
const FAIR_ROUND = `SELECT queue, seq FROM (
    SELECT q.value AS queue, (SELECT j.seq FROM wp_job j
        WHERE j.queue = q.value AND j.state = 'queued' AND j.visible_at <= :now
          AND j.task IN (SELECT value FROM json_each(:tasks))
        ORDER BY j.rank DESC, j.seq LIMIT 1) AS seq
      FROM json_each(:queues) q
      WHERE NOT EXISTS (SELECT 1 FROM wp_queue p WHERE p.name = q.value AND (p.paused = 1 OR p.held_until > :now)))
  WHERE seq IS NOT NULL
  LIMIT :left`

/**
 * Whether a job of the row `alias` holds its dedup key by its state: `wp_job_dedup`'s predicate, as
 * it is written there (SQLite takes a partial index only for a query that repeats its terms: with
 * `state IN ('blocked', 'queued', 'running')` a look scanned the table).
 */
const HOLDS_KEY = (alias: string) => `(${alias}.state = 'blocked' OR ${alias}.state IN ('queued', 'running'))`

/**
 * The job holding a dedup key (queue, key, queue, key, now): an unfinished one in `wp_job_dedup` (a
 * started "queued"-mode job is not: its `dedup_key` was cleared), or one whose throttle window is open.
 */
export const HOLDER = `SELECT id, state, expire_at FROM wp_job WHERE queue = ? AND dedup_key = ? AND ${HOLDS_KEY("wp_job")}
  UNION ALL
  SELECT id, state, expire_at FROM wp_job WHERE queue = ? AND COALESCE(dedup_key, dedup_queued) = ?
    AND dedup_until IS NOT NULL AND dedup_until > ?
  LIMIT 1`

/** Ends a waiting job (now, id) past its expiry: a holder of a dedup key an enqueue met (see `EXPIRE`). */
const EXPIRE_HOLDER = `UPDATE wp_job SET state = 'cancelled', finished_at = ?, exit = NULL WHERE id = ? AND state IN ('blocked', 'queued')
  RETURNING id, has_dependents`

/** Whether a row is of an expired job (see `model.expiredAt`), in SQL. */
export const EXPIRED = `(state = 'cancelled' AND expire_at IS NOT NULL AND finished_at >= expire_at)`

/** Best first: higher rank, then the older job. */
const bestFirst = (a: { readonly rank: number; readonly seq: number }, b: { readonly rank: number; readonly seq: number }) =>
  b.rank - a.rank || a.seq - b.seq

export interface Config {
  readonly filename: string
  readonly busyTimeout: number
}

export const options = (options: { readonly filename: string; readonly busyTimeout?: unknown }) =>
  Effect.mapError(
    config.checkPoolOptions((): Config => {
      config.object("options", options)
      config.onlyKeys("", options, ["filename", "busyTimeout"], { timeout: "busyTimeout", path: "filename" })
      if (typeof options.filename !== "string" || options.filename.length === 0) {
        config.fail("filename", options.filename, "expected a file name")
      }
      // node:sqlite opens with URIs on: the store's look at its file (deleted or replaced, the -wal
      // bound) went to the path "file:..." names literally, never the file opened, and
      // "?mode=memory" made a store no other process could share, all silently
      if (options.filename.startsWith("file:")) {
        config.fail(
          "filename",
          options.filename,
          `expected a file path, not an SQLite URI (a file whose name starts with "file:": "./${options.filename}")`
        )
      }
      return {
        filename: options.filename,
        busyTimeout: options.busyTimeout === undefined ? 5000 : config.finiteMillis("busyTimeout", options.busyTimeout)
      }
    }),
    config.storeOptionError
  )

const reasonOf = (error: unknown) => error instanceof Error ? error.message : String(error)

/** The rank of a job entering the queue at `visible`: an SQL expression (see model.rank). */
const RANK = (visible: string) =>
  `(CASE WHEN COALESCE((SELECT aging_ms FROM wp_queue WHERE name = wp_job.queue), 0) > 0
    THEN priority * (SELECT aging_ms FROM wp_queue WHERE name = wp_job.queue) - (${visible})
    ELSE priority END)`

/**
 * Whether the blocked job of the row `wp_job` may run (memory's `unblocked`): every dependency
 * succeeded, or (`afterFailure: "run"`) every one not succeeded ended; one whose row is gone ended
 * (only finished jobs are deleted).
 */
const UNBLOCKED = `(wp_job.waiting_for = 0 OR (wp_job.after_failure = 1 AND NOT EXISTS (
  SELECT 1 FROM wp_dep d JOIN wp_job j ON j.id = d.dep_id
  WHERE d.job_id = wp_job.id AND d.succeeded = 0 AND j.state NOT IN ('succeeded', 'dead', 'cancelled'))))`

/**
 * After jobs of `:ids` (a JSON array) succeeded: each dependent's count of dependencies not yet
 * succeeded goes down (whatever its state: a dependent redriven later waits for what it still
 * needs), before their edges are marked (`DEPENDENCIES_SUCCEEDED`).
 */
export const COUNT_DOWN = `UPDATE wp_job SET waiting_for = waiting_for - (SELECT COUNT(*) FROM wp_dep d
    WHERE d.job_id = wp_job.id AND d.succeeded = 0 AND d.dep_id IN (SELECT value FROM json_each(:ids)))
  WHERE id IN (SELECT job_id FROM wp_dep WHERE dep_id IN (SELECT value FROM json_each(:ids)) AND succeeded = 0)`
export const DEPENDENCIES_SUCCEEDED = `UPDATE wp_dep SET succeeded = 1 WHERE dep_id IN (SELECT value FROM json_each(:ids)) AND succeeded = 0`

/**
 * The closure of the blocked dependents of job `:id` (dead or cancelled) that do not run after a
 * failure, and theirs after them: each job once (a row per job, not per path: paths through a
 * ladder, each job after the two before it, are exponentially many, and a walk keeping one row per
 * path length took minutes for 2,000 jobs under the write lock).
 */
export const DEPENDENTS_CLOSURE: string = `WITH RECURSIVE closure(id) AS (
    SELECT d.job_id FROM wp_dep d JOIN wp_job j ON j.id = d.job_id
      WHERE d.dep_id = :id AND j.state = 'blocked' AND j.after_failure = 0
    UNION
    SELECT d.job_id FROM closure JOIN wp_dep d ON d.dep_id = closure.id JOIN wp_job j ON j.id = d.job_id
      WHERE j.state = 'blocked' AND j.after_failure = 0
  )`

/**
 * Of jobs of `:ids` (a JSON array) that ended dead or cancelled, in their order, those with a blocked
 * dependent that does not run after a failure: the only ones `CANCEL_DEPENDENTS` has work for. One
 * look for all of them: a purge of 10,000 dead jobs whose dependents were cancelled long ago ran the
 * walk 10,000 times for nothing (2.4x the purge's time).
 */
export const CANCELLING: string = `SELECT e.value AS id FROM json_each(:ids) e
  WHERE EXISTS (SELECT 1 FROM wp_dep d JOIN wp_job j ON j.id = d.job_id
    WHERE d.dep_id = e.value AND j.state = 'blocked' AND j.after_failure = 0)
  ORDER BY e.key`

/**
 * After job `:id` ended `:state` (dead or cancelled): its closure (`DEPENDENTS_CLOSURE`) ends
 * cancelled at `:now`, their expiry gone (a redrive runs them with none), each naming a dependency
 * of its own that ended so: the job itself if it is one, else one of the closure (which, unspecified).
 * Run once per job ended, in the order they ended, as memory's walk meets them: a job the first
 * cancelled is no longer blocked for the next (so each job is walked once, however many ended
 * jobs reach it). One already past its own expiry, which no claim or reap met yet, expired first and
 * reads so (memory's `settled`): it names none and keeps its expiry.
 */
export const CANCEL_DEPENDENTS: string = `${DEPENDENTS_CLOSURE},
  -- one row per job, its dependency ranked among its own edges into the closure: a scalar subquery
  -- per updated row scanned the whole closure again (20,000 dependents: 4e8 rows, 18 s)
  named(id, dep) AS (
    SELECT id, dep FROM (
      SELECT d.job_id AS id, d.dep_id AS dep, ROW_NUMBER() OVER (PARTITION BY d.job_id ORDER BY d.dep_id <> :id, d.dep_id) AS n
        FROM closure JOIN wp_dep d ON d.job_id = closure.id
        WHERE d.dep_id = :id OR d.dep_id IN (SELECT id FROM closure)
    ) WHERE n = 1
  )
  UPDATE wp_job SET state = 'cancelled', exit = NULL, finished_at = :now,
    expire_at = CASE WHEN expire_at <= :now THEN expire_at END,
    failed_dep_id = CASE WHEN expire_at IS NULL OR expire_at > :now THEN named.dep END,
    failed_dep_state = CASE WHEN expire_at IS NULL OR expire_at > :now THEN
      CASE WHEN named.dep = :id THEN :state ELSE 'cancelled' END END
  FROM named WHERE wp_job.id = named.id
  RETURNING id`

/**
 * Of the dependents of jobs `:ids` (a JSON array), deleted without having succeeded or cancelled for
 * good, those ended cancelled that now can never succeed, in the order of their creation: each waits
 * (not of `afterFailure: "run"`) for one of them, or for another such job, or for a blocked one that
 * waits so (the ends cancel it). A job redriven to wait for one of them would wait for ever
 * (memory's `settled`, `doomed`): they end their blocked dependents as their own end did.
 */
export const DOOMED_BY_DELETE: string = `WITH RECURSIVE doomed(id) AS (
    SELECT d.job_id FROM wp_dep d JOIN wp_job j ON j.id = d.job_id
      WHERE d.dep_id IN (SELECT value FROM json_each(:ids)) AND d.succeeded = 0 AND j.after_failure = 0
        AND j.state IN ('cancelled', 'blocked')
    UNION
    SELECT d.job_id FROM doomed JOIN wp_dep d ON d.dep_id = doomed.id JOIN wp_job j ON j.id = d.job_id
      WHERE d.succeeded = 0 AND j.after_failure = 0 AND j.state IN ('cancelled', 'blocked')
  )
  SELECT j.id FROM doomed JOIN wp_job j ON j.id = doomed.id WHERE j.state = 'cancelled' ORDER BY j.seq`

/**
 * After jobs of `:ids` (a JSON array) ended: their blocked dependents that may run now are queued,
 * visible from their own run time or `:now`, whichever is later (memory's `release`).
 */
export const RELEASE = `UPDATE wp_job SET state = 'queued', visible_at = MAX(visible_at, :now), rank = ${RANK("MAX(visible_at, :now)")}
  WHERE state = 'blocked' AND id IN (SELECT job_id FROM wp_dep WHERE dep_id IN (SELECT value FROM json_each(:ids)))
    AND ${UNBLOCKED}`

/**
 * Whether the row `wp_job`, redriven, could wait for ever (memory's `canAllSucceed`): not with
 * `afterFailure: "run"` (a failure is done for it); otherwise if a job it still needs, or one that
 * one still needs up the chain (through jobs not of `afterFailure: "run"`), is gone or was cancelled
 * for good (neither by a dependency of its own nor expired: those a redrive puts back to wait). One
 * walk of the unfinished ancestors, each once.
 */
const DOOMED_DEPENDENCY = `EXISTS (WITH RECURSIVE needed(id) AS (
    SELECT d.dep_id FROM wp_dep d WHERE d.job_id = wp_job.id AND d.succeeded = 0 AND wp_job.after_failure = 0
    UNION
    SELECT d.dep_id FROM needed JOIN wp_job j ON j.id = needed.id JOIN wp_dep d ON d.job_id = j.id
      WHERE j.after_failure = 0 AND d.succeeded = 0
  )
  SELECT 1 FROM needed LEFT JOIN wp_job j ON j.id = needed.id
  WHERE j.id IS NULL OR ${cancelledForGood("j")})`

/**
 * A job's `group_key` as it is queued: its group, or '' for an ungrouped job of a queue with a per-key
 * cap (a claim there walks keyed jobs only: a NULL one was never claimed); NULL otherwise. `group` and
 * `queue` are SQL (a `?`, or a column).
 */
const GROUP_KEY = (group: string, queue: string) =>
  `COALESCE(${group}, (SELECT '' FROM wp_queue WHERE name = ${queue} AND group_concurrency > 0))`

/**
 * A redrive (now, now, id): a dead or expired job back to the queue, or a job its dependency
 * cancelled back to blocked, waiting for what it still needs (queued if it needs nothing); not if
 * another job holds its dedup key, or a dependency it still needs can never succeed (it would be
 * blocked for ever).
 */
export const REDRIVE = `UPDATE wp_job SET state = CASE WHEN waiting_for IS NOT NULL AND NOT ${UNBLOCKED} THEN 'blocked' ELSE 'queued' END,
    attempts = 0, visible_at = ?, started_at = NULL, finished_at = NULL, progress = NULL,
    cancel_requested = 0, dedup_key = COALESCE(dedup_key, dedup_queued),
    rank = ${RANK("?")}, group_key = ${GROUP_KEY("group_key", "wp_job.queue")}, expire_at = NULL,
    failed_dep_id = NULL, failed_dep_state = NULL
  WHERE id = ? AND (state = 'dead' OR ${EXPIRED} OR (state = 'cancelled' AND failed_dep_id IS NOT NULL)) AND NOT EXISTS (
    SELECT 1 FROM wp_job other WHERE other.queue = wp_job.queue
      AND other.dedup_key = COALESCE(wp_job.dedup_key, wp_job.dedup_queued) AND ${HOLDS_KEY("other")}
  ) AND NOT ${DOOMED_DEPENDENCY}`

/** The queued jobs of `ListFilter.waiting`, at the now bound to its `?` (see `waitingAs`, which says it for the memory store). */
const waitingSql = (waiting: "ready" | "delayed") =>
  waiting === "delayed" ? "visible_at > ? AND visible_at > created_at" : "visible_at <= ?"

/**
 * The list's statement for `filter` at `now`, with its parameters. Queued jobs alone of one half
 * (`waiting`) are spelled out, not as one state of many: the planner serves them by an index
 * (wp_job_delayed's predicate, wp_job_ready's visible_at), and takes their seqs first, so only the
 * rows listed are read (a list of 10 queued jobs read the 100,000 of its queue into its sort).
 * Expired jobs alone (`expired`, of the cancelled ones) likewise, by wp_job_retained: as one state
 * of many the plan walked every row by seq, all of them for a queue with none expired (2.5 ms for
 * 20,000 rows, 0.23 ms spelled out).
 */
export const listStatement = (filter: ListFilter, now: number): readonly [string, Array<SQLInputValue>] => {
  const where: Array<string> = []
  const params: Array<SQLInputValue> = []
  if (filter.queue !== undefined) {
    where.push("queue = ?")
    params.push(filter.queue)
  }
  const waiting = filter.waiting === undefined ? undefined : waitingSql(filter.waiting)
  const one = filter.states?.length === 1 ? filter.states[0] : undefined
  const spelled = waiting !== undefined && one === "queued"
    ? `state = 'queued' AND ${waiting}`
    : filter.expired === true && one === "cancelled"
    ? EXPIRED
    : undefined
  if (spelled !== undefined) {
    where.push(spelled)
    return [
      `SELECT * FROM wp_job WHERE seq IN (SELECT seq FROM wp_job WHERE ${where.join(" AND ")} ORDER BY seq LIMIT ?) ORDER BY seq`,
      [...params, ...(one === "queued" ? [now] : []), filter.limit]
    ]
  }
  if (filter.states !== undefined) {
    where.push("state IN (SELECT value FROM json_each(?))")
    params.push(JSON.stringify(filter.states))
  }
  if (waiting !== undefined) {
    where.push(`(state <> 'queued' OR (${waiting}))`)
    params.push(now)
  }
  if (filter.expired === true) where.push(`(state <> 'cancelled' OR ${EXPIRED})`)
  return [`SELECT * FROM wp_job ${where.length === 0 ? "" : `WHERE ${where.join(" AND ")}`} ORDER BY seq LIMIT ?`, [...params, filter.limit]]
}

/** Entry `attempts` of a JSON list of delays (its last entry for later attempts). */
const listAt = (list: string) => `json_extract(${list}, '$[' || (MIN(attempts, json_array_length(${list})) - 1) || ']')`
const ownNumber = (key: string) => `json_type(retry, '$.${key}') IN ('integer', 'real')`
const own = (key: string) => `json_extract(retry, '$.${key}')`

/**
 * A reaped job's delay (see `Store.reap`), with `:backoff` the consumer's backoff list and `:policies` its named
 * policies' lists as JSON: the job's own backoff by the formula of `Backoff.delay` (keep them in
 * step), its named policy's list, or the consumer's.
 */
const REAP_DELAY = `(CASE
  WHEN NOT json_valid(COALESCE(retry, '')) THEN COALESCE(${listAt(":backoff")}, 0)
  WHEN json_type(retry, '$.policy') = 'text'
    THEN COALESCE(${listAt(`(SELECT value FROM json_each(:policies) WHERE key = json_extract(retry, '$.policy'))`)}, ${listAt(":backoff")}, 0)
  WHEN ${ownNumber("fixed")} AND ${own("fixed")} >= 0 THEN MIN(floor(${own("fixed")} + 0.5), ${Backoff.MAX_DELAY})
  WHEN ${ownNumber("exponential")} AND ${ownNumber("factor")} THEN MIN(floor(MIN(
    ${own("exponential")} * pow(${own("factor")}, attempts - 1),
    CASE WHEN ${ownNumber("max")} THEN ${own("max")} ELSE 1e300 END) + 0.5), ${Backoff.MAX_DELAY})
  ELSE COALESCE(${listAt(":backoff")}, 0) END)`

/**
 * `node:sqlite`, loaded when a store opens rather than imported: on a Node without it (before
 * 22.5, or 22.5 to 22.12 without --experimental-sqlite) the rest of the package still loads, and
 * opening the store fails with a `StoreError` that says what is needed.
 */
const sqliteModule = (): Effect.Effect<typeof import("node:sqlite"), StoreError> =>
  Effect.suspend(() => {
    let found: typeof import("node:sqlite") | undefined
    try {
      found = typeof process.getBuiltinModule === "function"
        ? process.getBuiltinModule("node:sqlite") as typeof import("node:sqlite") | undefined
        : undefined
    } catch {
      found = undefined
    }
    return found?.DatabaseSync === undefined
      ? Effect.fail(
        new StoreError({
          operation: "open",
          reason: `the SQLite store needs node:sqlite: Node 22.13 or later (22.5 to 22.12 with --experimental-sqlite); ` +
            `this is Node ${process.versions.node}. Use the Postgres store, or a newer Node`
        })
      )
      : Effect.succeed(found)
  })

/**
 * Waits `millis` of real time. The retries below stand in for SQLite's own busy wait, which is
 * real time: on the Effect clock, a store opened under a TestClock would wait for the test to move it.
 */
const realSleep = (millis: number): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), millis)
    return Effect.sync(() => clearTimeout(timer))
  })

/**
 * SQLite's own busy wait, in milliseconds: how long a statement may block the thread for a lock.
 * Most locks are another process's short transaction, over within it; a longer one is waited
 * for between tries (`attempt`), with the event loop free.
 */
export const SPIN = 5
/**
 * SQLite's own busy wait for a store whose `busyTimeout` is `busyTimeout`: whole milliseconds, as
 * `node:sqlite` takes only those ("2.5 millis" failed the open), never under the asked wait.
 */
const spinOf = (busyTimeout: number) => Math.min(SPIN, Math.ceil(busyTimeout))
/** The longest pause between two tries for a lock held longer than `SPIN`. */
const MAX_PAUSE = 50

/** SQLITE_BUSY, or the error of a journal-mode switch refused while others open the file. */
const isBusy = (error: unknown) =>
  typeof error === "object" && error !== null &&
  ((((error as { errcode?: unknown }).errcode as number) & 0xff) === 5 || reasonOf(error).includes("database is locked"))

/**
 * SQLite's errors of the file or its disk (READONLY, IOERR, CORRUPT, FULL, CANTOPEN, NOTADB: their
 * primary codes): the reason names the file, which the message ("database or disk is full") does not
 */
const OF_THE_FILE = new Set([8, 10, 11, 13, 14, 26])

const reasonIn = (filename: string, error: unknown) => {
  const code = typeof error === "object" && error !== null ? (error as { errcode?: unknown }).errcode : undefined
  return typeof code === "number" && OF_THE_FILE.has(code & 0xff) ? `${reasonOf(error)} (${filename})` : reasonOf(error)
}

/**
 * How often, at most, in ms of real time, an operation looks whether the store's path still names the
 * file it opened. A file deleted or replaced (renamed over) under an open connection stays usable to
 * it alone: its writes would reach no other process and be lost with it. A look is a `stat` (a few
 * microseconds): once per operation would cost an enqueue some 4%.
 */
export const FILE_CHECK = 250

/** The file `filename` names now (device and inode), if any. */
const fileAt = (filename: string) => {
  try {
    const found = fs.statSync(filename, { throwIfNoEntry: false })
    return found === undefined ? undefined : `${found.dev}:${found.ino}`
  } catch {
    return undefined
  }
}

/**
 * The `-wal` file's size kept after a checkpoint (SQLite's `journal_size_limit`): without it, the
 * file kept the size of the largest transaction (an `enqueueAll` of 50,000 jobs: 19 MB) for as long
 * as any process had the database open. SQLite checkpoints at about 4 MB (1,000 pages).
 */
export const WAL_LIMIT = 4 * 1024 * 1024

/**
 * How often, at most, in ms of real time, a write looks at the `-wal` file's size, to start it over
 * when it has grown past `2 * WAL_LIMIT` (see `restartWal` in `make`). A look is a `stat`. After a
 * restart that found readers in its way the next look waits twice as long, up to `WAL_CHECK_MAX`.
 */
export const WAL_CHECK = 25
export const WAL_CHECK_MAX = 1000

/**
 * The lock waits of one connection: `attempt` runs `once` (synchronous) until it does not find the
 * lock busy, for up to `busyTimeout` ms of real time (`performance.now()`, which a wall-clock step
 * does not move). A try that found it busy changed nothing (a write rolls back), so trying again
 * loses and repeats no write. Its first try is synchronous, as an operation was before: only a busy
 * lock costs timers.
 *
 * One operation at a time waits in SQLite's busy wait (`SPIN`, blocking the thread); the others'
 * tries, while it waits, do not wait at all (busy timeout 0: a try costs microseconds). Each
 * waiting operation blocking the thread for `SPIN` per try stalled the process again with many
 * of them waiting (300 enqueues: a timer 3 s late).
 */
const lockWaits = (db: DatabaseSync, filename: string, busyTimeout: number, guard: (operation: string, now: number) => void) => {
  const spin = spinOf(busyTimeout)
  /** The connection's busy timeout now (`spin`, or 0 for a try while another operation waits). */
  let current = spin
  /**
   * The operation whose tries may wait in SQLite's busy wait: the first to find the lock busy. One
   * that has not tried for `2 * MAX_PAUSE` (it ended without letting go) is replaced: the spin is
   * never lost to a store for good.
   */
  let spinner: object | undefined
  let spunAt = 0
  const tryOnce = <A>(operation: string, me: object, once: () => A, now: number): A => {
    guard(operation, now)
    if (spinner === undefined || spinner === me || now - spunAt > 2 * MAX_PAUSE) {
      spinner = me
      spunAt = now
    }
    const wanted = spinner === me ? spin : 0
    if (wanted !== current) {
      db.exec(`PRAGMA busy_timeout = ${wanted}`)
      current = wanted
    }
    return once()
  }
  const release = (me: object) => {
    if (spinner === me) spinner = undefined
  }
  return <A>(operation: string, once: () => A): Effect.Effect<A, StoreError> => {
    const fail = (error: unknown) =>
      Effect.fail(error instanceof StoreError ? error : new StoreError({ operation, reason: reasonIn(filename, error) }))
    const retry = (me: object, deadline: number, pause: number): Effect.Effect<A, StoreError> =>
      Effect.flatMap(realSleep(Math.min(pause, Math.max(1, deadline - performance.now()))), () => {
        try {
          return Effect.succeed(tryOnce(operation, me, once, performance.now()))
        } catch (error) {
          return isBusy(error) && performance.now() < deadline ? retry(me, deadline, Math.min(pause * 2, MAX_PAUSE)) : fail(error)
        }
      })
    return Effect.suspend(() => {
      const me = {}
      const start = performance.now()
      let result: A
      try {
        result = tryOnce(operation, me, once, start)
      } catch (error) {
        // one that waits keeps the spin (if it took it) until it ends, however it ends (an
        // interrupt between tries, the deadline, a write)
        if (isBusy(error) && busyTimeout > SPIN) return Effect.ensuring(retry(me, start + busyTimeout, 1), Effect.sync(() => release(me)))
        release(me)
        return fail(error)
      }
      release(me)
      return Effect.succeed(result)
    })
  }
}

/** A job a statement ended, with whether it has dependents (see `dependentsEnded`). */
interface EndedRow {
  readonly id: string
  readonly state: State
  readonly has_dependents: number
}

/** A job a purge or retention deleted (`FORGOTTEN`). */
interface ForgottenRow extends EndedRow {
  readonly seq: number
  readonly failed_dep_id: string | null
  readonly expired: number | null
}

/** Those of `rows`, ended in `state`, that have dependents. */
const ended = (rows: ReadonlyArray<Omit<EndedRow, "state">>, state: State) =>
  rows.filter((row) => row.has_dependents !== 0).map((row) => ({ id: row.id, state }))

/** The `wp_meta` key that counts the cancels requested of running jobs. */
const CANCELS = "cancel_requests"

export const make = (cfg: Config): Effect.Effect<Store, StoreError, import("effect/Scope").Scope> =>
  Effect.gen(function*() {
    const clock = yield* Clock.Clock
    const time = () => clock.currentTimeMillisUnsafe()
    const { DatabaseSync } = yield* sqliteModule()
    const db: DatabaseSync = yield* Effect.acquireRelease(
      Effect.try({
        try: () => new DatabaseSync(cfg.filename, { timeout: spinOf(cfg.busyTimeout) }),
        catch: (error) => new StoreError({ operation: "open", reason: `${cfg.filename}: ${reasonOf(error)}` })
      }),
      (db) => Effect.sync(() => db.close())
    )
    // a fiber that waits for a change arms the watch of other processes' commits (below)
    let arm = () => {}
    const signal = makeSignal({ onWait: () => arm(), clock })
    const cancels = makeSignal()
    const closing = yield* Closing.make([signal, cancels])

    const all = <Row = SqlRow>(sql: string, ...params: Array<SQLInputValue>) => db.prepare(sql).all(...params) as unknown as Array<Row>
    const run = (sql: string, ...params: Array<SQLInputValue>) => db.prepare(sql).run(...params)

    const changes = () => (db.prepare("SELECT total_changes() AS n").get() as { n: number }).n
    // the file opened (none where the name is no file: the look is then skipped)
    const filename = path.resolve(cfg.filename)
    let opened: string | undefined
    let checkedAt = 0
    let moved: string | undefined
    const attempt = lockWaits(db, cfg.filename, cfg.busyTimeout, (operation, now) => {
      // an operation waiting for the lock when its store closed: the closed store's error, not
      // node:sqlite's "database is not open"
      if (closing.isClosed()) throw Closing.closedError(operation)
      if (opened !== undefined && moved === undefined && now - checkedAt >= FILE_CHECK) {
        checkedAt = now
        if (fileAt(filename) !== opened) {
          moved = `${cfg.filename} was deleted or replaced while this store had it open: its writes would reach ` +
            `no other process, and be lost with it. Open the store again`
        }
      }
      if (moved !== undefined) throw new StoreError({ operation, reason: moved })
    })
    const wal = `${filename}-wal`
    let walLookAt = 0
    let walPause = WAL_CHECK
    /**
     * Starts the `-wal` file over once it is past twice WAL_LIMIT, after a commit. SQLite's own
     * checkpoint (at a commit past 1,000 pages) copies pages back only up to the oldest reader's
     * snapshot, and the file starts over only at a commit that finds every page copied and no reader
     * on it: with another process reading all the time (a stats loop, a dashboard, awaiters), one
     * snapshot or another was open at nearly every commit, and the file grew without end (322 MB in
     * 30 s). A RESTART checkpoint copies every page, then waits (SQLite's busy wait: `SPIN` at most,
     * the thread held) for the readers of older snapshots to end; a reader that begins after the copy
     * reads the database file, not the WAL, so it needs no gap between reads, only reads shorter than
     * the wait. The next commit starts the file over and cuts it back to WAL_LIMIT. Readers still in
     * its way (a longer read; its process not scheduled) put the next look off, doubling: a reader
     * that never lets go costs the writer at most one wait a second, and its file grows (SQLite's
     * nature: no checkpoint passes a snapshot in use).
     */
    const restartWal = () => {
      const now = performance.now()
      if (now < walLookAt) return
      try {
        if ((fs.statSync(wal, { throwIfNoEntry: false })?.size ?? 0) > 2 * WAL_LIMIT) {
          const { busy } = db.prepare("PRAGMA wal_checkpoint(RESTART)").get() as { busy: number }
          walPause = busy === 0 ? WAL_CHECK : Math.min(2 * walPause, WAL_CHECK_MAX)
        }
      } catch {
        // the write is committed: it stands, and a later one tries again
        walPause = Math.min(2 * walPause, WAL_CHECK_MAX)
      }
      walLookAt = now + walPause
    }
    /** Set by a write whose change makes a job visible only later (a delay): its waiters wake then. */
    let visibleIn = 0
    /** Runs `body` in a write transaction; a change wakes this process's waiters. */
    const write = <A>(operation: string, body: () => A, committed?: (result: A) => void): Effect.Effect<A, StoreError> =>
      attempt(operation, () => {
        try {
          db.exec("BEGIN IMMEDIATE")
        } catch (error) {
          // a transaction left open by a rollback that failed (an I/O error; or on a Node without
          // `isTransaction`, see below) would fail every later write: end it, and begin again
          if (!reasonOf(error).includes("within a transaction")) throw error
          db.exec("ROLLBACK")
          db.exec("BEGIN IMMEDIATE")
        }
        visibleIn = 0
        try {
          const before = changes()
          const result = body()
          const changed = changes() !== before
          db.exec("COMMIT")
          // told before any waiter wakes: what it was told of comes before what a woken claim does
          committed?.(result)
          // only a change wakes waiters: a waiter that looked and found nothing waits for the next
          // one (its own empty claim must not wake it, or it would claim again and again)
          if (changed) {
            restartWal()
            signal.notifyIn(visibleIn)
          }
          return result
        } catch (error) {
          // `isTransaction` is Node 22.16+ and 24: on an older Node (undefined) the rollback is tried,
          // and its "no transaction is active" ignored. A transaction left open made every later
          // write fail ("cannot start a transaction within a transaction")
          if (db.isTransaction ?? true) {
            try {
              db.exec("ROLLBACK")
            } catch {
              // none was open: the failed statement or COMMIT ended it
            }
          }
          throw error
        }
      })
    // a read waits for no write lock in WAL mode, but may for a moment (another connection's recovery)
    const read = <A>(operation: string, body: () => A): Effect.Effect<A, StoreError> => attempt(operation, body)

    // --- open: WAL, then the migrations, in one write transaction
    // switching a new file to WAL takes its exclusive lock, and SQLite may refuse that at once
    // ("database is locked", without its busy wait) while other processes open the same new file:
    // tried again for up to `busyTimeout` (seen with three consumer processes starting together)
    yield* read("open", () => {
      db.exec("PRAGMA journal_mode = WAL")
      db.exec("PRAGMA synchronous = NORMAL")
      db.exec(`PRAGMA journal_size_limit = ${WAL_LIMIT}`)
    })
    yield* write("migrate", () => {
      db.exec("CREATE TABLE IF NOT EXISTS wp_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
      const found = db.prepare("SELECT value FROM wp_meta WHERE key = 'schema_version'").get() as { value: string } | undefined
      const version = found === undefined ? 0 : Number(found.value)
      if (!(Number.isInteger(version) && version >= 0 && version <= MIGRATIONS.length)) {
        throw new Error(
          `${cfg.filename} has schema version ${found?.value}, this code knows versions up to ${MIGRATIONS.length}: upgrade effect-workpool`
        )
      }
      for (let v = version; v < MIGRATIONS.length; v++) db.exec(MIGRATIONS[v]!)
      run(
        "INSERT INTO wp_meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        String(MIGRATIONS.length)
      )
    })
    opened = fileAt(filename)
    checkedAt = performance.now()

    // --- wake-ups from other processes: a watch of the WAL file (after the migration wrote to it)
    // data_version changes when another connection commits; the cancel count when one of those
    // commits asked a running job to stop. Only that wakes the heartbeats: waking them for any commit
    // would make each heartbeat (a commit) wake the other processes' heartbeats, and so on.
    const dataVersion = db.prepare("PRAGMA data_version")
    const cancelCount = db.prepare(`SELECT value FROM wp_meta WHERE key = '${CANCELS}'`)
    const readVersion = () => (dataVersion.get() as { data_version: number }).data_version
    const readCancels = () => (cancelCount.get() as { value: string } | undefined)?.value
    let seenVersion = readVersion()
    let seenCancels = readCancels()
    const watch = yield* watchOtherProcesses({
      filename,
      waiting: signal.waiting,
      look: () => {
        const version = readVersion()
        if (version === seenVersion) return false
        seenVersion = version
        // any change may be a job to claim or a result to await
        signal.notify()
        const cancelsNow = readCancels()
        if (cancelsNow !== seenCancels) {
          seenCancels = cancelsNow
          cancels.notify()
        }
        return true
      }
    })
    arm = watch.arm

    /**
     * A dedup hit in the open write transaction: the holder's handle, its payload (and run time)
     * replaced first if `job` asks for it and the holder waits (see `NewJob.dedupReplace`).
     */
    const replaced = (
      id: string,
      job: NewJob,
      prepare: (sql: string) => StatementSync,
      now: number
    ): { id: string; created: boolean; visibleIn?: number } => {
      if (job.dedupReplace === "payload") {
        prepare("UPDATE wp_job SET payload = ? WHERE id = ? AND state IN ('blocked', 'queued') AND task = ?").run(job.payload, id, job.task)
      } else if (job.dedupReplace === "debounce") {
        const visible = job.runAt ?? now + job.delay
        const moved = prepare(
          `UPDATE wp_job SET payload = ?, visible_at = ?, rank = ${RANK("MAX(?, ?)")} WHERE id = ? AND state IN ('blocked', 'queued') AND task = ?`
        ).run(job.payload, visible, visible, now, id, job.task)
        if (Number(moved.changes) > 0) return { id, created: false, visibleIn: visible - now }
      }
      return { id, created: false }
    }

    /**
     * Adds a job in the open write transaction; `prepare` compiles its statements (a batch keeps
     * them). Says when a created job is due.
     */
    const add = (
      input: NewJob,
      prepare: (sql: string) => StatementSync,
      now: number
    ): { id: string; created: boolean; late?: true; visibleIn?: number } => {
      const job = withId(input)
      if (prepare("SELECT id FROM wp_job WHERE id = ?").all(job.id).length > 0) return { id: job.id, created: false }
      if (job.dedupKey !== null) {
        type Holder = { id: string; state: string; expire_at: number | null }
        const holder = () => prepare(HOLDER).all(job.queue, job.dedupKey, job.queue, job.dedupKey, now)[0] as Holder | undefined
        let found = holder()
        // a holder past its expiry is met here, as a claim would meet it: ended, the key free (unless
        // a `dedupFor` window still holds it: looked at again)
        if (found !== undefined && found.state !== "running" && found.expire_at !== null && found.expire_at <= now) {
          dependentsEnded(ended(prepare(EXPIRE_HOLDER).all(now, found.id) as unknown as Array<EndedRow>, "cancelled"), now)
          found = holder()
        }
        if (found !== undefined) return replaced(found.id, job, prepare, now)
      }
      if (job.notAfter !== undefined && now > job.notAfter) return { id: job.id, created: false, late: true as const }
      const visible = job.runAt ?? now + job.delay
      prepare(
        `INSERT INTO wp_job (id, queue, task, payload, priority, rank, dedup_key, state, max_attempts, timeout_ms,
          created_at, visible_at, trace, retry, dedup_queued, dedup_until, group_key, expire_at)
         VALUES (?, ?, ?, ?, ?, 0, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?,
           ${GROUP_KEY("?", "?")}, ?)`
      ).run(
        job.id,
        job.queue,
        job.task,
        job.payload,
        job.priority,
        job.dedupKey,
        job.maxAttempts,
        job.timeout,
        now,
        visible,
        job.trace ?? null,
        job.retry ?? null,
        job.dedupWhile === "queued" ? job.dedupKey : null,
        job.dedupFor === undefined || job.dedupKey === null ? null : now + job.dedupFor,
        // an ungrouped job of a queue with a per-key cap: the key '' (see GROUP_NEXT)
        job.group ?? null,
        job.queue,
        job.expireIn === undefined ? null : now + job.expireIn
      )
      // a runAt in the past is waited for from now (see model.rank)
      prepare(`UPDATE wp_job SET rank = ${RANK("MAX(visible_at, created_at)")} WHERE id = ?`).run(job.id)
      // blocked or cancelled: no consumer has anything to look at
      if (job.after !== undefined && job.after.length > 0 && attach(job, prepare, now) !== "queued") return { id: job.id, created: true }
      return { id: job.id, created: true, visibleIn: visible - now }
    }

    /**
     * A new job's dependencies (`NewJob.after`, all in the store), in the open write transaction
     * (memory's `attach`): it waits for those not yet succeeded (blocked), or runs at once, or is
     * cancelled at once by one already dead or cancelled. Its state.
     */
    const attach = (job: NewJob & { readonly id: string }, prepare: (sql: string) => StatementSync, now: number): State => {
      // each once, as memory keeps them (a set): two handles of one dedup holder name it twice
      const ids = Array.from(new Set(job.after))
      const after = JSON.stringify(ids)
      const states = new Map(
        (prepare("SELECT id, state FROM wp_job WHERE id IN (SELECT value FROM json_each(?))").all(after) as Array<{ id: string; state: State }>)
          .map((row) => [row.id, row.state])
      )
      let pending = 0
      let running = false
      let failed: { id: string; state: string } | undefined
      for (const id of ids) {
        const state = states.get(id)!
        if (state === "succeeded") continue
        pending++
        if (state === "dead" || state === "cancelled") failed ??= { id, state }
        else running = true
      }
      prepare(
        `INSERT OR REPLACE INTO wp_dep (dep_id, job_id, succeeded)
         SELECT id, ?, state = 'succeeded' FROM wp_job WHERE id IN (SELECT value FROM json_each(?))`
      ).run(job.id, after)
      prepare("UPDATE wp_job SET has_dependents = 1 WHERE id IN (SELECT value FROM json_each(?)) AND has_dependents = 0").run(after)
      const runOnFailure = job.afterFailure === "run"
      if (failed !== undefined && !runOnFailure) {
        prepare(
          `UPDATE wp_job SET state = 'cancelled', finished_at = ?, failed_dep_id = ?, failed_dep_state = ?, waiting_for = ?,
             expire_at = NULL WHERE id = ?`
        ).run(now, failed.id, failed.state, pending, job.id)
        return "cancelled"
      }
      // one not succeeded still to end (or, failures not run after, any): it waits
      const state = running || (pending > 0 && !runOnFailure) ? "blocked" : "queued"
      prepare("UPDATE wp_job SET state = ?, waiting_for = ?, after_failure = ? WHERE id = ?").run(state, pending, runOnFailure ? 1 : 0, job.id)
      return state
    }

    /** The first dependency of `jobs` (`NewJob.after`) not in the store: their enqueue stores nothing. */
    const missingDependency = (jobs: ReadonlyArray<{ readonly after?: ReadonlyArray<string> | undefined }>): JobNotFound | undefined => {
      const ids = jobs.flatMap((job) => job.after ?? [])
      if (ids.length === 0) return undefined
      const missing = db.prepare(
        "SELECT value AS id FROM json_each(?) WHERE NOT EXISTS (SELECT 1 FROM wp_job WHERE id = value) ORDER BY key LIMIT 1"
      ).get(JSON.stringify(ids)) as { id: string } | undefined
      return missing === undefined ? undefined : new JobNotFound({ id: missing.id })
    }

    /**
     * After jobs ended (rows with `has_dependents`, in the open write transaction), their
     * dependents as memory's `settled` says: a succeeded one counted off its dependents; a dead or
     * cancelled one cancels its blocked dependents that do not run after a failure, and theirs
     * (`CANCEL_DEPENDENTS`); then the blocked dependents of all of them that may run are queued. A
     * job without dependents never comes here: its settle costs what it did.
     */
    // compiled once, as the Final settle's: every settle of a job with dependents runs some of them
    const countDown = db.prepare(COUNT_DOWN)
    const dependenciesSucceeded = db.prepare(DEPENDENCIES_SUCCEEDED)
    const cancelling = db.prepare(CANCELLING)
    const cancelDependents = db.prepare(CANCEL_DEPENDENTS)
    const release = db.prepare(RELEASE)
    const doomedByDelete = db.prepare(DOOMED_BY_DELETE)
    const forGood = db.prepare(
      `SELECT j.id FROM wp_job j WHERE j.id IN (SELECT value FROM json_each(:ids)) AND ${cancelledForGood("j")}`
    )
    /** `ends` and, after them, the jobs the ends of `doomed` (ids, which can never succeed now) doom (`DOOMED_BY_DELETE`). */
    const withDoomed = <E extends { readonly id: string; readonly state: State }>(ends: ReadonlyArray<E>, doomed: ReadonlyArray<string>) =>
      doomed.length === 0 ? ends : [
        ...ends,
        ...(doomedByDelete.all({ ids: JSON.stringify(doomed) }) as Array<{ id: string }>).map(({ id }) => ({ id, state: "cancelled" as const }))
      ]
    /**
     * After jobs ended (`ends`, in that order): what waits for them, as memory's `settled`. `cancels`:
     * some may have been cancelled for good, which a job redriven to wait for one they doom would
     * wait for ever on (memory's `doomed`).
     */
    const dependentsEnded = (ends: ReadonlyArray<{ readonly id: string; readonly state: State }>, now: number, cancels = false) => {
      if (ends.length === 0) return
      if (cancels) {
        const cancelled = ends.filter((end) => end.state === "cancelled").map((end) => end.id)
        if (cancelled.length > 0) {
          ends = withDoomed(ends, (forGood.all({ ids: JSON.stringify(cancelled) }) as Array<{ id: string }>).map(({ id }) => id))
        }
      }
      const succeeded = JSON.stringify(ends.filter((end) => end.state === "succeeded").map((end) => end.id))
      if (succeeded !== "[]") {
        countDown.run({ ids: succeeded })
        dependenciesSucceeded.run({ ids: succeeded })
      }
      const failed = new Map(ends.flatMap((end) => end.state === "succeeded" ? [] : [[end.id, end.state] as const]))
      const cancelled = failed.size === 0 ? [] : (cancelling.all({ ids: JSON.stringify([...failed.keys()]) }) as Array<{ id: string }>)
        .flatMap(({ id }) => (cancelDependents.all({ id, state: failed.get(id)!, now }) as Array<{ id: string }>).map((row) => row.id))
      release.run({ ids: JSON.stringify([...ends.map((end) => end.id), ...cancelled]), now })
    }
    const edges = db.prepare("SELECT 1 AS edge FROM wp_dep LIMIT 1")
    /**
     * Whether some job has dependents (an edge): a delete of finished jobs (purge, retention) then
     * returns its rows (`FORGOTTEN`) for `forgotten`. Where none has, it does not: such a store's
     * deletes cost what they did (returning the rows cost a purge of 100,000 jobs 20%, a retention 45%).
     */
    const anyEdge = () => edges.get() !== undefined
    /**
     * After finished jobs were deleted (rows as `FORGOTTEN` returns them), in the open write
     * transaction (memory's `drop`): one that did not succeed ends what still waits for it as its
     * end did, a dependent redriven back to blocked since (nothing else would ever end it), in the
     * order of their creation, as memory's purge meets them; so do the jobs it dooms
     * (`DOOMED_BY_DELETE`), for one redriven to wait for them. Their rows are gone, which `RELEASE`
     * reads as ended. How many were deleted.
     */
    const couldSucceed = db.prepare(
      `SELECT 1 AS yes FROM wp_job j WHERE j.id = ? AND NOT ${cancelledForGood("j")}`
    )
    const forgotten = (rows: ReadonlyArray<ForgottenRow>, now: number): number => {
      const failed = rows.filter((row) => row.has_dependents !== 0 && row.state !== "succeeded").sort((a, b) => a.seq - b.seq)
      if (failed.length === 0) return rows.length
      // only those that could still succeed until now doom what waits for them: one that could
      // already never succeed had its doom walked when it became so (a chain's jobs walked again at
      // each delete made its retention quadratic). Its own edges are gone with it: only the
      // dependency it names is looked at (one it could not succeed for is walked again, for nothing).
      // One whose named dependency is a doomer deleted here too is one (in seq order: a dependency
      // comes first): that doomer's walk cannot reach what waits for it, its row and edges gone
      const doomers = new Set<string>()
      for (const row of failed) {
        if (
          (row.state !== "cancelled" || row.failed_dep_id !== null || row.expired === 1) &&
          (row.failed_dep_id === null || doomers.has(row.failed_dep_id) || couldSucceed.get(row.failed_dep_id) !== undefined)
        ) doomers.add(row.id)
      }
      dependentsEnded(withDoomed(failed, [...doomers]), now)
      return rows.length
    }
    const prepareOnce = (sql: string) => db.prepare(sql)

    const enqueue = (input: NewJob) =>
      write("enqueue", () => {
        // read in the write transaction: no dependency is deleted between the look and the insert
        const missing = input.after === undefined ? undefined : missingDependency([input])
        if (missing !== undefined) return missing
        const { id, created, late, visibleIn: due } = add(input, prepareOnce, time())
        if (due !== undefined) visibleIn = due
        return late ? { id, created, late } : { id, created }
      }).pipe(Effect.flatMap((result) => result instanceof JobNotFound ? Effect.fail(result) : Effect.succeed(result)))

    const enqueueAll = (jobs: ReadonlyArray<FreshJob>) =>
      write("enqueue", () => {
        const statements = new Map<string, StatementSync>()
        const prepare = (sql: string) => {
          let statement = statements.get(sql)
          if (statement === undefined) statements.set(sql, statement = db.prepare(sql))
          return statement
        }
        const missing = missingDependency(jobs)
        if (missing !== undefined) return missing
        const now = time()
        let soonest = Infinity
        const out: Array<{ readonly id: string; readonly created: boolean }> = []
        for (const job of jobs) {
          // the call's own jobs it runs after, named now (a dedup hit's: the holder)
          const { id, created, visibleIn: due } = add(withItemsNamed(job, out), prepare, now)
          if (due !== undefined && due < soonest) soonest = due
          out.push({ id, created })
        }
        // its waiters wake when the soonest of them is due
        if (soonest !== Infinity) visibleIn = soonest
        return out
      }).pipe(Effect.flatMap((result) => result instanceof JobNotFound ? Effect.fail(result) : Effect.succeed(result)))

    const get = (id: string) =>
      read("get", () => {
        const rows = all("SELECT * FROM wp_job WHERE id = ?", id)
        return rows.length === 0 ? undefined : toRow(rows[0]!)
      })

    const progressOf = (id: string) =>
      read("get", () => {
        const rows = all("SELECT state, progress FROM wp_job WHERE id = ?", id) as unknown as Array<ProgressOf>
        return rows.length === 0 ? undefined : { state: rows[0]!.state, progress: rows[0]!.progress }
      })

    const list = (filter: ListFilter) =>
      read("list", () => {
        const [sql, params] = listStatement(filter, time())
        return all(sql, ...params).map(toRow)
      })

    const cancel = (id: string) =>
      write("cancel", () => {
        const rows = all<{ state: State; has_dependents: number }>("SELECT state, has_dependents FROM wp_job WHERE id = ?", id)
        if (rows.length === 0) return "missing" as const
        switch (rows[0]!.state) {
          case "blocked":
          case "queued": {
            const now = time()
            run("UPDATE wp_job SET state = 'cancelled', finished_at = ?, exit = NULL WHERE id = ?", now, id)
            if (rows[0]!.has_dependents !== 0) dependentsEnded([{ id, state: "cancelled" }], now, true)
            return "cancelled" as const
          }
          case "running": {
            run("UPDATE wp_job SET cancel_requested = 1 WHERE id = ?", id)
            // tells the other processes' stores that this commit is a cancel (see the watch below)
            run(
              `INSERT INTO wp_meta (key, value) VALUES ('${CANCELS}', '1')
               ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1`
            )
            return "requested" as const
          }
          default:
            return "finished" as const
        }
      }).pipe(
        // after the commit: a woken heartbeat may run its own transaction at once
        Effect.tap((result) => result === "requested" ? Effect.sync(cancels.notify) : Effect.void)
      )

    const redrive = (id: string) =>
      write("redrive", () => {
        const now = time()
        // a job its dependency cancelled too: back to blocked, waiting for what it still needs, unless
        // one of those can never succeed (it would be blocked for ever)
        return Number(run(REDRIVE, now, now, id).changes) > 0
      })

    /**
     * In transactions of at most `PURGE_BATCH` jobs, oldest first, each batch from the last one's
     * finish time on (the jobs of other states before it are not read again), the event loop and
     * other processes' writers let in between. In one transaction, a purge of 300,000 jobs held
     * the file's write lock and blocked this process's event loop for 8 s (its heartbeats, claims,
     * dashboard): past a lease, other processes took back its running jobs.
     */
    const purge = (before: number, states: ReadonlyArray<State>) =>
      Effect.gen(function*() {
        const json = JSON.stringify(states)
        let purged = 0
        let from = -Number.MAX_VALUE
        while (true) {
          const gone = yield* write("purge", () => {
            if (!anyEdge()) return all<{ finished_at: number }>(PURGE, from, before, json, PURGE_BATCH)
            const rows = all<ForgottenRow & { finished_at: number }>(`${PURGE}, ${FORGOTTEN}`, from, before, json, PURGE_BATCH)
            forgotten(rows, time())
            return rows
          })
          purged += gone.length
          if (gone.length < PURGE_BATCH) return purged
          for (const row of gone) if (row.finished_at > from) from = row.finished_at
          yield* Effect.yieldNow
        }
      })

    const retainAt = retainCursor((after: string | undefined, n: number) =>
      read("retain", () =>
        after === undefined
          ? all<{ name: string; retention: string }>(
            "SELECT name, retention FROM wp_queue WHERE retention IS NOT NULL ORDER BY name LIMIT ?",
            n
          )
          : all<{ name: string; retention: string }>(
            "SELECT name, retention FROM wp_queue WHERE retention IS NOT NULL AND name > ? ORDER BY name LIMIT ?",
            after,
            n
          ))
    )
    const retainCounted = RetainCount.make()
    // the event loop let go between rounds too
    const thenYield = <A>(round: Effect.Effect<A, StoreError>) => Effect.tap(round, () => Effect.yieldNow)
    /**
     * Each queue's retention, once (see `Store.retain`): a write transaction per batch, so that the
     * file's write lock is let go, and the event loop, between them, as in `purge`.
     */
    const retain = (batch: number, limit = RETAIN_QUEUES) =>
      retainPass(retainAt, limit, (queue) =>
        retainRules(decodeRetention(queue.retention), batch, {
          age: (state, age) =>
            thenYield(write("retain", () => {
              const now = time()
              return anyEdge()
                ? forgotten(all<ForgottenRow>(`${RETAIN_AGE} RETURNING ${FORGOTTEN}`, queue.name, state, now - age, batch), now)
                : Number(run(RETAIN_AGE, queue.name, state, now - age, batch).changes)
            })),
          // a look outside the write lock first (see retainCount.ts), the batch only when some are past
          count: (state, count) =>
            thenYield(
              retainCounted(
                queue.name,
                state,
                count,
                (from, bound) => read("retain", () => RetainCount.lookOf(db.prepare(RETAIN_LOOK).get({ queue: queue.name, state, ...from, bound }))),
                write("retain", () => {
                  const params = { queue: queue.name, state, batch, keep: count }
                  return anyEdge()
                    ? forgotten(db.prepare(`${RETAIN_COUNT} RETURNING ${FORGOTTEN}`).all(params) as unknown as Array<ForgottenRow>, time())
                    : Number(db.prepare(RETAIN_COUNT).run(params).changes)
                })
              )
            )
        }))

    const configure = (
      queue: string,
      settings: QueueSettings
    ) =>
      write("configure", () => {
        run("INSERT INTO wp_queue (name) VALUES (?) ON CONFLICT (name) DO NOTHING", queue)
        if (settings.retention !== undefined) {
          run(
            "UPDATE wp_queue SET retention = ? WHERE name = ?",
            settings.retention === null ? null : encodeRetention(settings.retention),
            queue
          )
        }
        if (settings.paused !== undefined) run("UPDATE wp_queue SET paused = ? WHERE name = ?", settings.paused ? 1 : 0, queue)
        if (settings.aging !== undefined) run("UPDATE wp_queue SET aging_ms = ? WHERE name = ?", settings.aging, queue)
        if (settings.holdFor !== undefined) run("UPDATE wp_queue SET held_until = ? WHERE name = ?", time() + settings.holdFor, queue)
        if (settings.holdAtLeast !== undefined) {
          run("UPDATE wp_queue SET held_until = MAX(held_until, ?) WHERE name = ?", time() + settings.holdAtLeast, queue)
        }
        const rate = settings.rateLimit
        if (rate === null) {
          run("DELETE FROM wp_rate WHERE queue = ?", queue)
          run("UPDATE wp_queue SET rate_limit = 0, rate_interval_ms = 0, rate_count = 0 WHERE name = ?", queue)
        } else if (rate !== undefined) {
          // the latest claims stay counted: at most the new limit of them
          run(
            `DELETE FROM wp_rate WHERE id IN (SELECT id FROM wp_rate WHERE queue = ? ORDER BY id DESC LIMIT -1 OFFSET ?)`,
            queue,
            rate.limit
          )
          run(
            `UPDATE wp_queue SET rate_limit = ?, rate_interval_ms = ?,
               rate_count = (SELECT COUNT(*) FROM wp_rate WHERE queue = ?) WHERE name = ?`,
            rate.limit,
            rate.interval,
            queue,
            queue
          )
        }
        if (settings.concurrency !== undefined) run("UPDATE wp_queue SET concurrency = ? WHERE name = ?", settings.concurrency ?? 0, queue)
        if (settings.groupConcurrency !== undefined) {
          run("UPDATE wp_queue SET group_concurrency = ? WHERE name = ?", settings.groupConcurrency ?? 0, queue)
          // the ungrouped jobs there already take the key '' (a claim walks keyed jobs only); a running
          // one too, as it may be retried. Left so when removed: '' is no key
          if (settings.groupConcurrency !== null) {
            run("UPDATE wp_job SET group_key = '' WHERE queue = ? AND state IN ('blocked', 'queued', 'running') AND group_key IS NULL", queue)
          }
        }
      })

    const runningOf = db.prepare("SELECT COUNT(*) AS n FROM (SELECT 1 FROM wp_job WHERE state = 'running' AND queue = ? LIMIT ?)")
    /**
     * How many more jobs a queue with a cap (`concurrency`, 0: none) may start now: the running rows
     * counted (a job whose lease expired unreaped still holds its slot: its process may still run it),
     * at most `concurrency` of them read.
     */
    const freeSlots = (queue: string, concurrency: number) =>
      concurrency === 0 ? Infinity : concurrency - (runningOf.get(queue, concurrency) as { n: number }).n

    /** The oldest `count` claim times of a limited queue's window. */
    const oldestClaims = (queue: string, count: number) =>
      db.prepare("SELECT id, at FROM wp_rate WHERE queue = ? ORDER BY id LIMIT ?").all(queue, count) as Array<
        { id: number; at: number }
      >

    // A cursor is the store's time. A writer stamps its time once it holds the write lock, and
    // commits before it lets go: this read takes the lock too (it writes nothing), so that a
    // settle stamped before `until` is committed and seen, not left for a read starting after it
    // (another process's settle between its stamp and its commit was in no interval).
    const latencies = (queue: string, cursor: LatencyCursor | undefined, limit: number) =>
      Effect.flatMap(cursorTime(cursor), (since) =>
        write("latencies", (): Latencies => {
          const until = time()
          if (since === undefined) return { until: String(until), jobs: [] }
          // the newest first along the index on finished_at, stopping at `limit` of this queue's
          const rows = all<{ visible_at: number; started_at: number; finished_at: number }>(
            `SELECT visible_at, started_at, finished_at FROM wp_job
               WHERE finished_at >= ? AND finished_at < ? AND queue = ? AND state IN ('succeeded', 'dead')
                 AND started_at IS NOT NULL
               ORDER BY finished_at DESC LIMIT ?`,
            since,
            until,
            queue,
            Math.max(0, limit)
          )
          return { until: String(until), jobs: rows.map((row) => latencyOf(row.visible_at, row.started_at, row.finished_at)) }
        }))

    const counts = (queue: string) =>
      read("stats", (): QueueCounts => {
        // one read transaction: its statements see one snapshot (each on its own saw other processes'
        // commits in between, and the counts by priority did not add up to the queued ones mid-drain)
        db.exec("BEGIN")
        try {
          return countsIn(queue)
        } finally {
          db.exec("COMMIT")
        }
      })

    const countsOf = db.prepare(COUNTS)
    const finishedOf = db.prepare(FINISHED)
    const countsIn = (queue: string): QueueCounts => {
      const now = time()
      const finished = finishedOf.get({ queue }) as { succeeded: number | null; dead: number | null; cancelled: number | null }
      const tally = {
        blocked: 0,
        waiting: 0,
        delayed: 0,
        running: 0,
        succeeded: finished.succeeded ?? 0,
        dead: finished.dead ?? 0,
        cancelled: finished.cancelled ?? 0
      }
      const byPriority: Array<{ priority: number; count: number }> = []
      const rows = countsOf.all({ queue, now }) as Array<{ state: "blocked" | "queued" | "running"; priority: number | null; n: number; delayed: number }>
      for (const { delayed, n, priority, state } of rows) {
        if (state === "queued") {
          tally.delayed += delayed
          tally.waiting += n - delayed
          byPriority.push({ priority: priority!, count: n })
        } else tally[state] += n
      }
      byPriority.sort((a, b) => b.priority - a.priority)
      const settings = db.prepare(
        "SELECT paused, aging_ms, rate_limit, rate_interval_ms, rate_count, concurrency, group_concurrency, retention, held_until FROM wp_queue WHERE name = ?"
      ).get(queue) as
        | {
          paused: number
          aging_ms: number
          rate_limit: number
          rate_interval_ms: number
          rate_count: number
          concurrency: number
          group_concurrency: number
          retention: string | null
          held_until: number
        }
        | undefined
      const rate = settings === undefined || settings.rate_limit === 0
        ? undefined
        : { limit: settings.rate_limit, interval: settings.rate_interval_ms }
      return {
        queue,
        paused: settings !== undefined && settings.paused !== 0,
        aging: settings?.aging_ms ?? 0,
        ...retentionField(decodeRetention(settings?.retention)),
        // the claims still in the window (their times follow their order): an index range, not the log
        rateLimit: rate === undefined ? undefined : {
          ...rate,
          available: Math.max(
            0,
            rate.limit - (db.prepare("SELECT COUNT(*) AS n FROM wp_rate WHERE queue = ? AND at > ?").get(
              queue,
              now - rate.interval
            ) as { n: number }).n
          )
        },
        // only when set: a queue without a cap counts as before (a field of undefined is a field)
        ...(settings === undefined || settings.concurrency === 0 ? {} : { concurrency: { limit: settings.concurrency, running: tally.running } }),
        ...(settings === undefined || settings.group_concurrency === 0 ? {} : { groupConcurrency: settings.group_concurrency }),
        ...tally,
        queuedByPriority: byPriority,
        ...holdShown(settings?.held_until, now)
      }
    }

    /** The best visible jobs of `queues` (not paused), at most `limit`. */
    const best = (queues: ReadonlyArray<string>, tasks: string, now: number, limit: number) =>
      db.prepare(CANDIDATES).all(now, JSON.stringify(queues), tasks, now, limit) as Array<{ seq: number; rank: number; queue: string }>

    const delayed = db.prepare(DELAYED)
    /**
     * After a claim that took fewer than asked for: when its queues' soonest delayed job is due, of
     * those due `after` (0: at once if one came due since, see `groupRounds`).
     */
    const dueIn = (request: ClaimRequest, now: number, claimed: number, after = now): number | undefined => {
      if (claimed >= request.limit) return undefined
      const soonest = (delayed.get({ queues: JSON.stringify(request.queues), now, after }) as { visible_at: number | null } | undefined)
        ?.visible_at
      return soonest === null || soonest === undefined ? undefined : Math.max(0, soonest - now)
    }

    /** Claimed rows, best first (RETURNING comes in table order: they start best first). */
    const toClaims = (rows: Array<SqlRow & { readonly rank: number; readonly seq: number }>): Array<Claim> =>
      rows.sort(bestFirst).map((row) => ({ job: toRow(row), token: row.lease_token! }))

    /** One statement: the best visible jobs of the request's queues become running. */
    const claimBest = (request: ClaimRequest, now: number) =>
      toClaims(all(
        CLAIM_BEST,
        now,
        now + request.lease,
        now,
        JSON.stringify(request.queues),
        JSON.stringify(request.tasks),
        now,
        request.limit
      ))

    /**
     * A claim by priority under rate limits and caps: up to `limit` of each queue, as far as what
     * it `allowed` (its window, its free slots) lets it, then the best of them.
     */
    const claimCandidates = (request: ClaimRequest, tasks: string, now: number, allowed: ReadonlyMap<string, number>, groups: Groups) => {
      let candidates = best(request.queues.filter((q) => !allowed.has(q)), tasks, now, request.limit)
      for (const [queue, left] of allowed) {
        if (left > 0) candidates = candidates.concat(groups.has(queue) ? groups.take(queue, left) : best([queue], tasks, now, left))
      }
      if (allowed.size > 0) candidates.sort(bestFirst)
      const picked = groups.inOrder(candidates).slice(0, request.limit)
      const claims = picked.length === 0 ? [] : toClaims(all(
        CLAIM_PICKED,
        now,
        now + request.lease,
        JSON.stringify(picked.map((job) => job.seq))
      ))
      return { claims, picked }
    }

    /**
     * A fair claim (`ClaimRequest.fair`): rounds of `FAIR_ROUND`, each one's jobs made running before
     * the next, which asks only the queues that gave what they were asked (the others had no more)
     * and whose window and cap allow more. A round that filled the claim ends it, so a round past the first
     * reads at most the queues served by the one before. Rounds that cannot fill it are taken at
     * once: with `each` slots left per queue of the turn, each queue's next `each` jobs (its window
     * allowing), what `each` rounds of one would take. A round per job held the write lock 0.4-0.6 s
     * for a claim of 1,000 over 2 queues (by priority, 15-50 ms).
     */
    const claimFair = (request: ClaimRequest, tasks: string, now: number, allowedAtStart: ReadonlyMap<string, number>, groups: Groups) => {
      const allowed = new Map(allowedAtStart)
      let turn = [...new Set(request.queues)].filter((queue) => allowed.get(queue) !== 0)
      const claims: Array<Claim> = []
      const picked: Array<{ readonly seq: number; readonly queue: string }> = []
      const round = db.prepare(FAIR_ROUND)
      while (turn.length > 0 && picked.length < request.limit) {
        const left = request.limit - picked.length
        const each = Math.floor(left / turn.length)
        // what each queue of the turn is asked for: one (a round), or its next `each`
        const asked = new Map(turn.map((queue) => [queue, each < 2 ? 1 : Math.min(each, allowed.get(queue) ?? each)]))
        // a queue with a per-key cap gives its keys' next jobs (FAIR_ROUND's best could be a full key's)
        const found = turn.some((queue) => groups.has(queue))
          ? groups.inTurn(turn, asked, left, (queue, n) => best([queue], tasks, now, n))
          : each < 2
          ? round.all({ now, tasks, queues: JSON.stringify(turn), left }) as Array<{ queue: string; seq: number }>
          : turn.flatMap((queue) => best([queue], tasks, now, asked.get(queue)!))
        if (found.length === 0) break
        claims.push(...toClaims(all(CLAIM_PICKED, now, now + request.lease, JSON.stringify(found.map((job) => job.seq)))))
        // the next round's keys start after those served in this one
        groups.served(found)
        picked.push(...found)
        const gave = new Map<string, number>()
        for (const { queue } of found) gave.set(queue, (gave.get(queue) ?? 0) + 1)
        for (const [queue, count] of gave) {
          const left = allowed.get(queue)
          if (left !== undefined) allowed.set(queue, left - count)
        }
        turn = turn.filter((queue) => gave.get(queue) === asked.get(queue) && allowed.get(queue) !== 0)
      }
      return { claims, picked }
    }

    const groupNext = db.prepare(GROUP_NEXT(false))
    const groupFirst = db.prepare(GROUP_NEXT(true))
    const groupDue = db.prepare(GROUP_DUE)
    const groupHeads = db.prepare(GROUP_HEADS)
    const groupRunning = db.prepare(GROUP_RUNNING)
    const groupCursor = db.prepare("UPDATE wp_queue SET group_cursor = ? WHERE name = ?")
    /** Where this connection's empty claims stopped in their queues' rounds of keys (see `groupRounds`). */
    const rounds = groupRounds((version, queue) => signal.changedSince(version, [queue]))

    /**
     * A claim's queues with a per-key cap (`caps`, not held): their candidates in their keys' turn
     * (see `byKeys`, which says it for the memory store), read along the keys, not the jobs.
     */
    const makeGroups = (caps: ReadonlyMap<string, number>, taskNames: ReadonlyArray<string>, now: number) => {
      const tasks = JSON.stringify(taskNames)
      /** The key of each candidate given, by seq, and its place in its queue's turn. */
      const given = new Map<number, { readonly key: string; readonly at: number }>()
      /** Each queue's walk in this claim (its last, in a fair claim's rounds). */
      const walks = new Map<string, GroupWalked>()
      const self = {
        /** A key had more ready jobs than free slots: the claim may be short for it. */
        full: false,
        /** A walk stopped at its budget of keys before it had seen them all, or ended a round the queue changed during (`groupRounds`): claim again at once. */
        more: false,
        /** When the earliest round walked began (see `groupRounds`): its jobs come due since then count. */
        since: now,
        has: (queue: string) => caps.has(queue),
        /**
         * Up to `limit` jobs of `queue`: the keys in their round (`groupRounds`), each its best
         * visible jobs up to its free slots ('' uncapped), one per key per round. One probe per key,
         * a second if it has a visible job, until `limit` keys gave a job, every key was seen, or
         * the claim's budget of keys (`groupBudget`) was.
         */
        take: (queue: string, limit: number): Array<{ seq: number; rank: number; queue: string }> => {
          if (limit <= 0) return []
          const cap = caps.get(queue)!
          const running = new Map((groupRunning.all(queue) as Array<{ g: string; n: number }>).map((row) => [row.g, row.n]))
          const cursor = (db.prepare("SELECT group_cursor AS c FROM wp_queue WHERE name = ?").get(queue) as { c: string | null }).c
          const budget = groupBudget(limit, running.size)
          const lists: Array<Array<{ seq: number; rank: number; queue: string; group_key: string }>> = []
          let visits = 0
          let cut = false
          let last: GroupWalked["last"] = undefined
          // read in the claim's transaction: a change after it is a later commit, told after it
          const round = rounds.round(queue, taskNames, cursor, now, signal.current())
          self.since = Math.min(self.since, round.since)
          walk: for (const phase of round.phases) {
            let at = phase.from
            let inclusive = phase.inclusive
            while (lists.length < limit) {
              const next = (inclusive ? groupFirst : groupNext).get(queue, at, phase.stop) as { g: string } | undefined
              if (next === undefined) break
              // cut only with a key left to see: a budget that ran out on the round's last key saw them all
              if (visits >= budget) {
                cut = true
                break walk
              }
              at = next.g
              inclusive = false
              visits++
              last = { phase: phase.index, key: at }
              if (groupDue.get(queue, at, now) === undefined) continue
              const free = at === "" ? limit : cap - (running.get(at) ?? 0)
              // one more than it may take: whether its slots, not its jobs, ran out
              const heads = groupHeads.all(queue, at, now, tasks, Math.max(0, Math.min(free, limit)) + 1) as Array<
                { seq: number; rank: number; queue: string; group_key: string }
              >
              // ('' is never capped, and a key with slots for the whole claim is not what cut it)
              if (at !== "" && free < limit && heads.length > free) self.full = true
              if (free > 0 && heads.length > 0) lists.push(heads.slice(0, Math.min(free, limit)))
            }
          }
          const out: Array<{ seq: number; rank: number; queue: string }> = []
          for (let round = 0; out.length < limit; round++) {
            const before = out.length
            for (const list of lists) {
              const job = list[round]
              if (job === undefined || out.length >= limit) continue
              given.set(job.seq, { key: job.group_key, at: out.length })
              out.push(job)
            }
            if (out.length === before) break
          }
          const walked: GroupWalked = { cursor: round.cursor, since: round.since, version: round.version, resumed: round.resumed, cut, last, offered: out.length }
          walks.set(queue, walked)
          self.more ||= cut || rounds.again(queue, walked)
          return out
        },
        /**
         * A fair round over `turn`: each queue's `asked` jobs (a queue with the cap from `take`, the
         * others from `best`), in turn order, at most `left`.
         */
        inTurn: (
          turn: ReadonlyArray<string>,
          asked: ReadonlyMap<string, number>,
          left: number,
          best: (queue: string, n: number) => Array<{ seq: number; rank: number; queue: string }>
        ) => {
          const found: Array<{ seq: number; rank: number; queue: string }> = []
          for (const queue of turn) {
            const n = Math.min(asked.get(queue)!, left - found.length)
            if (n <= 0) break
            found.push(...(caps.has(queue) ? self.take(queue, n) : best(queue, n)))
          }
          return found
        },
        /** Candidates sorted by rank, with each grouped queue's back in its keys' turn (see `keepTurns`). */
        inOrder: <T extends { readonly seq: number; readonly queue: string }>(candidates: ReadonlyArray<T>) => {
          if (given.size === 0) return candidates
          const turns = new Map<string, Array<T>>()
          for (const candidate of candidates) {
            const one = given.get(candidate.seq)
            if (one === undefined) continue
            const turn = turns.get(candidate.queue) ?? []
            turn[one.at] = candidate
            turns.set(candidate.queue, turn)
          }
          return keepTurns(candidates, (candidate) => candidate.queue, turns)
        },
        /** Moves each walked queue's cursor on past what it took (see `groupRounds`); an empty walk writes nothing. */
        served: (picked: ReadonlyArray<{ readonly seq: number; readonly queue: string }>) => {
          for (const [queue, walked] of walks) {
            let taken = 0
            let last: { readonly key: string; readonly at: number } | undefined
            for (const job of picked) {
              const one = job.queue === queue ? given.get(job.seq) : undefined
              if (one === undefined) continue
              taken++
              if ((last?.at ?? -1) < one.at) last = one
            }
            const cursor = rounds.settled(queue, taskNames, walked, taken, last?.key)
            if (cursor !== undefined) groupCursor.run(cursor, queue)
          }
          walks.clear()
          given.clear()
        }
      }
      return self
    }
    type Groups = ReturnType<typeof makeGroups>

    const expireStatement = db.prepare(EXPIRE)
    const endExpired = db.prepare(END_EXPIRED)
    /**
     * Ends up to `limit` expired jobs of `queues` (JSON; null: all), in the open write transaction,
     * as cancelled ones to their dependents: how many.
     */
    const expire = (queues: string | null, now: number, limit: number): number => {
      const due = expireStatement.all({ now, queues, limit }) as Array<{ seq: number; has_dependents: number }>
      if (due.every((job) => job.has_dependents === 0)) {
        // none ends another: at once
        if (due.length > 0) endExpired.run({ now, seqs: JSON.stringify(due.map((job) => job.seq)) })
      } else {
        // one at a time, in the order they expired (as memory): a job a dependency expired before it
        // cancels (`DependencyFailed`) is not expired after
        for (const { seq } of due) {
          dependentsEnded(ended(endExpired.all({ now, seqs: `[${seq}]` }) as unknown as Array<EndedRow>, "cancelled"), now)
        }
      }
      return due.length
    }

    const claim = (request: ClaimRequest) =>
      write("claim", (): Claimed => {
        const now = time()
        const tasks = JSON.stringify(request.tasks)
        // the expired jobs of its queues, met by the claim: ended before it picks, so that none is
        // handed out, however many (a backlog ends in batches, once)
        const queues = JSON.stringify(request.queues)
        while (expire(queues, now, EXPIRE_BATCH) === EXPIRE_BATCH) continue
        // the queues' rate limits and caps, read in the claim's own (exclusive) transaction: no other
        // claim runs between the count of a capped queue's running jobs and this claim's commit
        const limited = db.prepare(
          `SELECT name, rate_limit, rate_interval_ms, rate_count, concurrency, group_concurrency, held_until FROM wp_queue
           WHERE name IN (SELECT value FROM json_each(?)) AND (rate_limit > 0 OR concurrency > 0 OR group_concurrency > 0)
             AND paused = 0`
        ).all(JSON.stringify(request.queues)) as unknown as Array<
          LimitedQueue & { concurrency: number; group_concurrency: number; held_until: number }
        >
        if (limited.length === 0 && request.fair !== true) {
          const claims = claimBest(request, now)
          return { claims, limitedFor: 0, dueIn: dueIn(request, now, claims.length) }
        }
        const windows = limited.filter((queue) => queue.rate_limit > 0).map((queue) =>
          claimWindow(queue, oldestClaims(queue.name, Math.min(queue.rate_count, request.limit)), now, request.limit)
        )
        // what each limited queue may start now: as far as its window and its cap allow
        const free = new Map<string, number>()
        const allowed = new Map<string, number>()
        for (const queue of limited) {
          const window = windows.find((w) => w.name === queue.name)
          if (queue.concurrency > 0) free.set(queue.name, freeSlots(queue.name, queue.concurrency))
          allowed.set(queue.name, Math.max(0, Math.min(window?.allowed ?? request.limit, free.get(queue.name) ?? Infinity)))
        }
        const groups = makeGroups(
          new Map(limited.filter((queue) => queue.group_concurrency > 0 && queue.held_until <= now).map((queue) => [queue.name, queue.group_concurrency])),
          request.tasks,
          now
        )
        const { claims, picked } = (request.fair === true ? claimFair : claimCandidates)(request, tasks, now, allowed, groups)
        groups.served(picked)
        const { limitedFor, taken } = takeFromWindows(windows, picked, request.limit, now)
        for (const window of taken) {
          const insert = db.prepare("INSERT INTO wp_rate (queue, at) VALUES (?, ?)")
          for (let i = 0; i < window.taken; i++) insert.run(window.name, now)
          if (window.dropped.length > 0) run("DELETE FROM wp_rate WHERE id IN (SELECT value FROM json_each(?))", JSON.stringify(window.dropped))
          run("UPDATE wp_queue SET rate_count = ? WHERE name = ?", window.count, window.name)
        }
        // held back by a cap: a queue at it still has a job ready (its jobs taken are running now), or a
        // key with more ready jobs than free slots
        const capped = (groups.full && picked.length < request.limit) ||
          fullQueues(free, picked, request.limit).some((queue) => best([queue], tasks, now, 1).length > 0)
        // a walk cut short by its budget of keys: the rest of its round at once (see `groupRounds`)
        const due = groups.more && claims.length < request.limit ? 0 : dueIn(request, now, claims.length, groups.since)
        return { claims, limitedFor, ...(capped ? { capped } : {}), dueIn: due }
      })

    const heartbeat = (tokens: ReadonlyArray<string>, lease: number) =>
      write("heartbeat", () => {
        const alive = db.prepare(
          `UPDATE wp_job SET lease_until = ? WHERE state = 'running' AND lease_token IN (SELECT value FROM json_each(?))
           RETURNING lease_token, cancel_requested`
        ).all(time() + lease, JSON.stringify(tokens)) as Array<{ lease_token: string; cancel_requested: number }>
        const found = new Set(alive.map((row) => row.lease_token))
        return {
          lost: tokens.filter((token) => !found.has(token)),
          cancelled: alive.filter((row) => row.cancel_requested !== 0).map((row) => row.lease_token)
        }
      })

    const progress = (token: string, value: string) =>
      write("progress", () =>
        Number(run("UPDATE wp_job SET progress = ? WHERE lease_token = ? AND state = 'running'", value, token).changes) > 0)

    // compiled once: a settle's statement writes most of the table's indexes, and its compile was
    // much of a settle's time
    const settleFinal = db.prepare(
      `UPDATE wp_job SET state = ?, exit = ?, finished_at = ?, cancel_requested = 0, lease_token = NULL, lease_until = NULL
       WHERE lease_token = ? AND state = 'running' RETURNING id, has_dependents`
    )
    const settle = (token: string, settlement: Settlement) =>
      write("settle", (): Settled => {
        const now = time()
        const fence = "WHERE lease_token = ? AND state = 'running'"
        const lease = "lease_token = NULL, lease_until = NULL"
        switch (settlement._tag) {
          case "Final": {
            const row = settleFinal.get(settlement.state, settlement.exit, now, token) as EndedRow | undefined
            if (row === undefined) return false
            dependentsEnded(ended([row], settlement.state), now, true)
            return true
          }
          case "Retry":
          case "Release": {
            // a cancel asked for while the attempt ran, which failed or was given back before its
            // heartbeat heard of it: the job ends cancelled, not queued again (as the reaper ends it)
            const cancelled = db.prepare(
              `UPDATE wp_job SET state = 'cancelled', exit = NULL, finished_at = ?, cancel_requested = 0,
                 attempts = attempts - ?, ${lease} ${fence} AND cancel_requested = 1 RETURNING id, has_dependents`
            ).get(now, settlement._tag === "Release" ? 1 : 0, token) as EndedRow | undefined
            if (cancelled !== undefined) {
              dependentsEnded(ended([cancelled], "cancelled"), now, true)
              return "cancelled"
            }
            if (settlement._tag === "Release" && settlement.delay === undefined) {
              return Number(run(`UPDATE wp_job SET state = 'queued', attempts = attempts - 1, ${lease} ${fence}`, token).changes) > 0
            }
            if (settlement._tag === "Release") {
              // snoozed: visible after its delay, ranked from then, its attempt not counted
              const delay = settlement.delay!
              visibleIn = delay
              return Number(
                run(
                  `UPDATE wp_job SET state = 'queued', attempts = attempts - 1, snoozes = snoozes + 1, visible_at = ?, rank = ${RANK("?")}, ${lease} ${fence}`,
                  now + delay,
                  now + delay,
                  token
                ).changes
              ) > 0
            }
            visibleIn = settlement.delay
            return Number(
              run(
                `UPDATE wp_job SET state = 'queued', exit = ?, visible_at = ?, rank = ${RANK("?")}, ${lease} ${fence}`,
                settlement.exit,
                now + settlement.delay,
                now + settlement.delay,
                token
              ).changes
            ) > 0
          }
        }
      })

    const reap = (
      backoff: ReadonlyArray<number>,
      policies: Readonly<Record<string, ReadonlyArray<number>>> = {},
      reaped?: (job: ReapedJob) => void
    ) =>
      write("reap", () => {
        const out = `(cancel_requested = 1 OR attempts >= max_attempts)`
        const params = { now: time(), backoff: JSON.stringify(backoff), policies: JSON.stringify(policies) }
        // told of each job (a consumer's events), and each one's dependents: the same statement, returning its rows
        const returning = " RETURNING id, queue, task, attempts, state, visible_at, has_dependents, seq"
        // named parameters (see DELAYED): :backoff and :policies as REAP_DELAY takes them
        const statement = db.prepare(
          `UPDATE wp_job SET
             state = CASE WHEN cancel_requested = 1 THEN 'cancelled' WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END,
             exit = NULL,
             finished_at = CASE WHEN ${out} THEN :now ELSE NULL END,
             visible_at = CASE WHEN ${out} THEN visible_at ELSE :now + ${REAP_DELAY} END,
             rank = CASE WHEN ${out} THEN rank ELSE ${RANK(`:now + ${REAP_DELAY}`)} END,
             cancel_requested = 0, lease_token = NULL, lease_until = NULL
           WHERE state = 'running' AND lease_until < :now${returning}`
        )
        const rows = statement.all(params) as unknown as ReadonlyArray<ReapedRow & EndedRow & { seq: number }>
        // in the order memory reaps them (of the jobs' creation)
        const ends = rows.filter((row) => row.has_dependents !== 0 && row.state !== "queued").sort((a, b) => a.seq - b.seq)
        dependentsEnded(ends.map(({ id, state }) => ({ id, state })), params.now, true)
        // then every queue's expired jobs, a batch: a paused or unconsumed queue's end too, their
        // awaiters told. After the leases, as memory: a blocked job a reaped dependency releases, then
        // past its expiry, expires queued, and its dependents name the reaped one, not it
        expire(null, params.now, EXPIRE_BATCH)
        return rows
      }, (rows) => {
        // told once committed (a reap rolled back took nothing back), and before a claim its commit
        // wakes can start a job it took back: a job's Reaped comes before its Started
        if (reaped !== undefined) for (const row of rows) reaped(reapedOf(row))
      }).pipe(Effect.map((rows) => rows.length))

    return {
      enqueue,
      enqueueAll,
      get,
      progressOf,
      list,
      cancel,
      redrive,
      purge,
      configure,
      retain,
      counts,
      latencies,
      claim,
      heartbeat,
      progress,
      settle,
      reap,
      wait: signal.wait,
      version: signal.version,
      waitCancel: cancels.wait,
      cancelVersion: cancels.version,
      now: Effect.sync(time),
      closed: closing.closed,
      dependencies: true,
      kind: "SQLite"
    }
  })
