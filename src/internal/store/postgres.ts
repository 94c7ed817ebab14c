/**
 * The Postgres store, on `@effect/sql-pg`'s `PgClient`: any number of processes on any number of
 * machines share one database. Every operation is one statement (the dedup enqueue may take two):
 *
 * - `claim` is a CTE that picks the best visible jobs `FOR UPDATE SKIP LOCKED` (concurrent
 *   claimers skip each other's rows instead of waiting), in the order of the partial index
 *   `wp_job_ready (queue, rank DESC, seq) WHERE state = 'queued'`, and makes them running with a
 *   fresh token in the same statement; a queue with a rate limit is claimed in a transaction
 *   under its `wp_queue` row's lock instead (`claimLimited`);
 * - settles and heartbeats are fenced by the lease token. A job has a token exactly while it runs:
 *   both claims set a fresh one in the UPDATE that makes a job running, and every UPDATE that takes
 *   a job out of running (final settle, retry, release, reap) sets it NULL; nothing else writes
 *   `lease_token`, or the `state` of a running job (a cancel of a running job only flags it, a
 *   cancel of a queued one and a redrive change jobs that have none, an enqueue inserts none). So
 *   `lease_token = $token` alone is the fence `AND state = 'running'` was, and the statements for
 *   many tokens say only that: a planner without statistics took the state for the more selective
 *   of the two and scanned every running job (wp_job_running). A row changed by hand must keep
 *   this (test/durable-postgres-hostile.test.ts checks every statement of the store by a trigger);
 * - time is the server's (`now()`), so producers and consumers on different machines agree on
 *   when a delayed job is due and when a lease has expired;
 * - a change that makes a job claimable sends `NOTIFY` on its queue's channel, and each store
 *   instance `LISTEN`s to the queues its idle consumers wait on, so an idle consumer in another
 *   process starts a new job at once instead of at its next poll.
 *
 * The migrations run on start under a transaction-scoped advisory lock, so processes starting
 * together do not race to create the tables.
 *
 * Lock order (no two statements can wait for each other: test/durable-postgres-hostile.test.ts,
 * 'the Postgres store's lock order'). Every statement that waits for several jobs' row locks takes
 * them in `seq` order, before any it takes without waiting: the heartbeat, the final settles (alone,
 * or carried by a claim, before its jobs), the purge. One found by an older snapshot still locks a
 * job that has changed since (then skips it), so the order must hold for every job, finished or
 * not. The claims and the reap never wait for a job (SKIP LOCKED); cancel, redrive, progress, a
 * retry and a give-back lock one job, and wait for nothing after it but a dedup key's insert (which
 * waits for nothing). The rate-limited claim waits for its queues' `wp_queue` rows in name order,
 * then for no job; configure locks one such row. `enqueueAll` takes its advisory locks (per queue,
 * in one order) before its inserts; `enqueue` inserts one row, and holds nothing while it waits.
 *
 * @internal
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as PgConnection from "@effect/sql-pg/PgConnection"
import { Cause, Clock, Context, Deferred, Effect, Exit, Fiber, Queue, Redacted, Schedule, Scope } from "effect"
import { createHash, randomUUID } from "node:crypto"
import * as Net from "node:net"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as SqlError from "effect/sql/SqlError"
import type { Fragment } from "effect/sql/Statement"
import { JobNotFound, StoreError } from "../../DurableError.ts"
import * as config from "../config.ts"
import {
  badCursor,
  type Claim,
  type Claimed,
  type FailedDependency,
  type ClaimRequest,
  fullQueues,
  keepTurns,
  claimWindow,
  type JobRow,
  type Latencies,
  type LatencyCursor,
  latencyOf,
  type ListFilter,
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
  roundRobin,
  type Settled,
  type Settlement,
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
  type GroupPhase,
  type GroupWalked,
  EXPIRE_BATCH
} from "./model.ts"
import { cancelledForGood, type SqlRow, toRow } from "./sqlRow.ts"
import * as Detached from "./detached.ts"
import * as RetainCount from "./retainCount.ts"
import * as ServerTime from "./serverTime.ts"
import * as Settles from "./settles.ts"
import { makeSignal, UNKEYED } from "./signal.ts"
import * as Closing from "./closing.ts"
import { inOtherTransaction } from "../sqlTransaction.ts"
import * as Backoff from "../durable/backoff.ts"

export interface Config {
  readonly url: Redacted.Redacted
  readonly schema: string
  readonly maxConnections: number
  readonly connectTimeout: number
  /**
   * Where time comes from: the server's `now()`, or (tests only) the Effect `Clock`, so that the
   * conformance suite drives leases and delays with `TestClock` as it does on the other stores.
   */
  readonly clock: "server" | "effect"
}

/** The schema's migrations, in order: version n is reached by running `MIGRATIONS[n - 1]`. */
export const MIGRATIONS: ReadonlyArray<(schema: string) => string> = [
  (s) =>
    `CREATE TABLE ${s}.wp_job (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text NOT NULL UNIQUE,
    queue text NOT NULL,
    task text NOT NULL,
    payload text NOT NULL,
    priority double precision NOT NULL,
    rank double precision NOT NULL,
    dedup_key text,
    state text NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL,
    timeout_ms bigint NOT NULL,
    created_at bigint NOT NULL,
    visible_at bigint NOT NULL,
    started_at bigint,
    finished_at bigint,
    lease_token text,
    lease_until bigint,
    cancel_requested boolean NOT NULL DEFAULT false,
    exit text
  );
  CREATE INDEX wp_job_ready ON ${s}.wp_job (queue, rank DESC, seq) WHERE state = 'queued';
  CREATE INDEX wp_job_running ON ${s}.wp_job (lease_until) WHERE state = 'running';
  CREATE UNIQUE INDEX wp_job_token ON ${s}.wp_job (lease_token) WHERE lease_token IS NOT NULL;
  CREATE UNIQUE INDEX wp_job_dedup ON ${s}.wp_job (queue, dedup_key)
    WHERE dedup_key IS NOT NULL AND state IN ('queued', 'running');
  CREATE INDEX wp_job_finished ON ${s}.wp_job (finished_at) WHERE finished_at IS NOT NULL;
  CREATE TABLE ${s}.wp_queue (
    name text PRIMARY KEY,
    paused boolean NOT NULL DEFAULT false,
    aging_ms double precision NOT NULL DEFAULT 0
  );`,
  // 2: per-job progress
  (s) => `ALTER TABLE ${s}.wp_job ADD COLUMN progress text;`,
  // 3: shared rate limits: the limit per queue, and the times of each limited queue's last claims
  (s) =>
    `ALTER TABLE ${s}.wp_queue ADD COLUMN rate_limit integer NOT NULL DEFAULT 0;
  ALTER TABLE ${s}.wp_queue ADD COLUMN rate_interval_ms double precision NOT NULL DEFAULT 0;
  ALTER TABLE ${s}.wp_queue ADD COLUMN rate_count integer NOT NULL DEFAULT 0;
  CREATE TABLE ${s}.wp_rate (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, queue text NOT NULL,
    at double precision NOT NULL);
  CREATE INDEX wp_rate_queue ON ${s}.wp_rate (queue, id);
  CREATE INDEX wp_rate_at ON ${s}.wp_rate (queue, at);`,
  // 4: the producer's span (trace context)
  (s) => `ALTER TABLE ${s}.wp_job ADD COLUMN trace text;`,
  // 5: the job's own retry policy (a backoff, or the name of a consumer's policy)
  (s) => `ALTER TABLE ${s}.wp_job ADD COLUMN retry text;`,
  // 6: the delayed jobs by due time, for the claim's "next due in" (see `dueInStatement`)
  (s) => `CREATE INDEX wp_job_delayed ON ${s}.wp_job (queue, visible_at) WHERE state = 'queued' AND visible_at > created_at;`,
  // 7: the transaction that ended a job, for the latencies read (see `latenciesStatement`); jobs
  // that ended before it have none, and are in no latencies read. A bigint, not an xid8: the
  // driver cannot read an xid8 column (in every `SELECT *`), and a 64-bit id fits
  (s) =>
    `ALTER TABLE ${s}.wp_job ADD COLUMN settled_xid bigint;
  CREATE INDEX wp_job_settled ON ${s}.wp_job (queue, settled_xid) WHERE state IN ('succeeded', 'dead');`,
  // 8: a queue's running, dead and cancelled jobs, for its counts (see `countsStatement`): the other
  // indexes leave them to a read of the whole table. Partial: a job is written to it when it is
  // claimed, dies or is cancelled, not when it is enqueued or succeeds. IF NOT EXISTS: on a large
  // table an operator may build it first with CREATE INDEX CONCURRENTLY (docs/durable.md)
  (s) => `CREATE INDEX IF NOT EXISTS wp_job_counted ON ${s}.wp_job (queue, state) WHERE state IN ('running', 'dead', 'cancelled');`,
  // 9: dedup modes: a "queued"-mode job's key (`dedup_key` is cleared when it starts, which
  // releases it from wp_job_dedup), and the end of a throttle window (`dedupFor`) during which the
  // key stays held whatever the state. A process of an older version ignores both: it claims a
  // "queued"-mode job without releasing its key (held until it finishes, as before), and creates a
  // job while another's window holds the key once that one has finished
  (s) =>
    `ALTER TABLE ${s}.wp_job ADD COLUMN dedup_queued text, ADD COLUMN dedup_until bigint;
  CREATE INDEX IF NOT EXISTS wp_job_dedup_until ON ${s}.wp_job (queue, (COALESCE(dedup_key, dedup_queued)), dedup_until)
    WHERE dedup_until IS NOT NULL;`,
  // 10: a queue's retention of its finished jobs (JSON text, see
  // `JobQueue.setRetention`), and their index by queue, state and end time, from which a consumer's
  // retention batch reads the oldest past an age or the newest `count` (see `retainStatement`): the
  // other indexes of finished jobs hold every queue's, or not by end time. IF NOT EXISTS, as 8
  (s) =>
    `ALTER TABLE ${s}.wp_queue ADD COLUMN IF NOT EXISTS retention text;
  CREATE INDEX IF NOT EXISTS wp_job_retained ON ${s}.wp_job (queue, state, finished_at, seq) WHERE state IN ('succeeded', 'dead', 'cancelled');`,
  // 11: a queue's cap on running jobs (JobQueue.setConcurrency), 0 for none: counted at each claim
  // from the running rows (wp_job_counted) under the queue row's lock, never kept as a counter.
  // A column with a constant default: a change of the catalog only, instant on a large table
  (s) => `ALTER TABLE ${s}.wp_queue ADD COLUMN concurrency integer NOT NULL DEFAULT 0;`,
  // 12: a queue held until a time (`JobQueue.holdQueue`, a snooze's `holdQueue`): no claims before
  // it; and a job's count of snoozes (`JobQueue.snooze`)
  (s) =>
    `ALTER TABLE ${s}.wp_queue ADD COLUMN held_until bigint NOT NULL DEFAULT 0;
  ALTER TABLE ${s}.wp_job ADD COLUMN snoozes integer NOT NULL DEFAULT 0;`,
  // 13: per-key caps (JobQueue.setGroupConcurrency): a job's key ('' for an ungrouped job of a queue
  // with the cap, NULL otherwise), the cap (0: none) and the key a claim served last. Columns without
  // a default to write: catalog changes. Indexes of keyed jobs only, empty when built: a job without a
  // key writes neither. A claim walks the keys of the queued jobs from the cursor, one probe each
  // (`groupWalk`), and counts the running jobs per key, under the queue row's lock
  (s) =>
    `ALTER TABLE ${s}.wp_queue ADD COLUMN group_concurrency integer NOT NULL DEFAULT 0, ADD COLUMN group_cursor text;
  ALTER TABLE ${s}.wp_job ADD COLUMN group_key text;
  CREATE INDEX IF NOT EXISTS wp_job_group_ready ON ${s}.wp_job (queue, group_key, rank DESC, seq)
    WHERE state = 'queued' AND group_key IS NOT NULL;
  CREATE INDEX IF NOT EXISTS wp_job_group_running ON ${s}.wp_job (queue, group_key)
    WHERE state = 'running' AND group_key IS NOT NULL;`,
  // 14: a key's queued jobs by due time, for a claim's probe of a key (`groupWalk`): without it a
  // key's delayed backlog was read in full along `wp_job_group_ready` by each claim that visited it
  // (20,000 rows removed by filter, 45 ms). The build reads wp_job (see docs/operations.md: it may be
  // built CONCURRENTLY beforehand, under this name)
  (s) =>
    `CREATE INDEX IF NOT EXISTS wp_job_group_due ON ${s}.wp_job (queue, group_key, visible_at)
    WHERE state = 'queued' AND group_key IS NOT NULL;`,
  // 15: a job's expiry (`EnqueueOptions.expireIn`): when it ends unstarted, NULL for none (every
  // older row, at no rewrite: a nullable column without a default) and from its first start on. The
  // index holds only the queued jobs with one, so a claim's and a reap's look for expired jobs
  // (`expireStatement`) costs an empty probe where no job has one. A process of an older version
  // ignores the column: it claims an expired job (and clears nothing)
  (s) => `ALTER TABLE ${s}.wp_job ADD COLUMN IF NOT EXISTS expire_at bigint;
  CREATE INDEX IF NOT EXISTS wp_job_expiring ON ${s}.wp_job (expire_at, queue) WHERE state = 'queued' AND expire_at IS NOT NULL;`,
  // 16: job dependencies (`NewJob.after`): a job's count of dependencies not yet succeeded (NULL:
  // none), its `afterFailure`, the dependency that ended it cancelled, and whether it has dependents
  // (columns of constant defaults or none: catalog changes); the edges (`wp_dep`), kept when a
  // dependency's row is deleted (a redrive then knows what is still needed). A job that ends with
  // dependents settles them in the statement that ended it, whichever it is (a settle, a claim's
  // carried settles or its expiries, a reap, a cancel): a statement trigger, made by version 17,
  // which finds the statement's ended jobs with dependents among its own rows (transition tables)
  // and locks all their dependents in one pass in seq order (see `DEPENDENTS_ENDED`); a statement
  // without one, every claim's and renewal's, reads its rows and stops (a few µs: see
  // docs/durable.md). A deleted job
  // that had dependencies takes its own edges with it (a row trigger, run only for such a job): the
  // edges of a deleted dependency stay while their dependent does. A dead or cancelled job deleted
  // (purge, retention) with dependents settles them as its end did (the same function, a statement
  // trigger on DELETE, version 17's too). A blocked job holds its dedup key: the unique index is built again with it
  // (it reads wp_job), under another name that the old one's is then given, so that an operator may
  // build it first (CREATE UNIQUE INDEX CONCURRENTLY wp_job_dedup_blocked, docs/durable.md "Rolling
  // upgrades"), as the two indexes of blocked jobs: by queue (the counts) and by expiry (a reap
  // ends them), empty where no job has dependencies
  (s) =>
    `ALTER TABLE ${s}.wp_job ADD COLUMN IF NOT EXISTS waiting_for integer, ADD COLUMN IF NOT EXISTS after_failure boolean NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS failed_dep_id text, ADD COLUMN IF NOT EXISTS failed_dep_state text,
    ADD COLUMN IF NOT EXISTS has_dependents boolean NOT NULL DEFAULT false;
  CREATE TABLE IF NOT EXISTS ${s}.wp_dep (dep_id text NOT NULL, job_id text NOT NULL, succeeded boolean NOT NULL DEFAULT false,
    PRIMARY KEY (dep_id, job_id));
  CREATE INDEX IF NOT EXISTS wp_dep_job ON ${s}.wp_dep (job_id);
  CREATE INDEX IF NOT EXISTS wp_job_blocked ON ${s}.wp_job (queue) WHERE state = 'blocked';
  CREATE INDEX IF NOT EXISTS wp_job_blocked_expiring ON ${s}.wp_job (expire_at) WHERE state = 'blocked' AND expire_at IS NOT NULL;
  CREATE UNIQUE INDEX IF NOT EXISTS wp_job_dedup_blocked ON ${s}.wp_job (queue, dedup_key)
    WHERE dedup_key IS NOT NULL AND state IN ('queued', 'running', 'blocked');
  DROP INDEX IF EXISTS ${s}.wp_job_dedup;
  ALTER INDEX ${s}.wp_job_dedup_blocked RENAME TO wp_job_dedup;
  CREATE OR REPLACE FUNCTION ${s}.wp_dependent_deleted() RETURNS trigger LANGUAGE plpgsql AS $wp$
  BEGIN
    DELETE FROM ${s}.wp_dep WHERE job_id = OLD.id;
    RETURN NULL;
  END
  $wp$;
  DROP TRIGGER IF EXISTS wp_job_deleted ON ${s}.wp_job;
  CREATE TRIGGER wp_job_deleted AFTER DELETE ON ${s}.wp_job FOR EACH ROW WHEN (OLD.waiting_for IS NOT NULL)
    EXECUTE FUNCTION ${s}.wp_dependent_deleted();`,
  // 17: the dependents' triggers of version 16 (see `DEPENDENTS_ENDED`). A development build's 16
  // (before 0.3.0) made them row triggers, whose function took a per-schema advisory lock first,
  // and an index of ended jobs with dependents for them: a schema it migrated kept both, and the
  // deadlocks the statement triggers mend. Function and triggers replaced, the index dropped:
  // catalog changes only
  (s) =>
    `${DEPENDENTS_ENDED(s)};
  DROP TRIGGER IF EXISTS wp_job_ended ON ${s}.wp_job;
  CREATE TRIGGER wp_job_ended AFTER UPDATE ON ${s}.wp_job REFERENCING OLD TABLE AS wp_old NEW TABLE AS wp_new
    FOR EACH STATEMENT EXECUTE FUNCTION ${s}.wp_dependents_ended();
  DROP TRIGGER IF EXISTS wp_job_dropped ON ${s}.wp_job;
  CREATE TRIGGER wp_job_dropped AFTER DELETE ON ${s}.wp_job REFERENCING OLD TABLE AS wp_old
    FOR EACH STATEMENT EXECUTE FUNCTION ${s}.wp_dependents_ended();
  DROP INDEX IF EXISTS ${s}.wp_job_ended_dependents;`
]

/**
 * Whether job `id` (an SQL expression) is one a death cancels: blocked, `afterFailure: "cancel"`.
 * Read by its key alone, a scalar subquery the planner never turns into a join: joined to wp_job on
 * state = 'blocked', a table not analyzed since its blocked jobs came was read along wp_job_blocked
 * (or in full, hashed), every blocked job of the schema at each ended job. "state || ''" keeps the
 * planner off that partial index whatever its estimates.
 */
const DOOMABLE = (s: string, id: string): string =>
  `(SELECT b.state || '' = 'blocked' AND NOT b.after_failure FROM ${s}.wp_job b WHERE b.id = ${id})`

/**
 * Whether job `id` (an SQL expression) ended waiting for its dependency, or still waits (cancelled or
 * blocked, `afterFailure: "cancel"`): a doom walk goes on through it (see `DEPENDENTS_ENDED`). Read
 * by its key alone, as `DOOMABLE`.
 */
const WAITED = (s: string, id: string): string =>
  `(SELECT b.state || '' IN ('cancelled', 'blocked') AND NOT b.after_failure FROM ${s}.wp_job b WHERE b.id = ${id})`

/**
 * The closure of blocked "cancel" dependents of the jobs `starts` (an SQL array of ids), `doomed`:
 * their dependents that a death cancels, and theirs after them, each walked once (a row per job,
 * whatever the paths to it; a row per (job, dependency) walked a lattice's jobs once per edge into
 * them). Walked by ids: each job's dependents by wp_dep's key, each read in wp_job by its own (see
 * `DOOMABLE`), so that no plan reads the schema's other blocked jobs or edges.
 */
const CLOSURE = (s: string, starts: string): string =>
  `WITH RECURSIVE doomed(id) AS (
      SELECT y.id FROM unnest(ARRAY(SELECT d.job_id FROM ${s}.wp_dep d WHERE d.dep_id = ANY(${starts}))) y(id)
        WHERE ${DOOMABLE(s, "y.id")}
    UNION
      SELECT y.id FROM doomed x, unnest(ARRAY(SELECT d.job_id FROM ${s}.wp_dep d WHERE d.dep_id = x.id)) y(id)
        WHERE ${DOOMABLE(s, "y.id")}
  )`

/**
 * The closure of job `id` (SQL: the trigger's variable) that ended `state` (see `CLOSURE`), then
 * `one`: each of them with the dependency it names, the ended job itself first, else the least of
 * its own in the closure (each job's dependencies read by wp_dep's key).
 */
export const DOOMED = (s: string, id: string, state: string): string =>
  `${CLOSURE(s, `ARRAY[${id}]`)},
  one AS (SELECT DISTINCT ON (p.id) p.id, p.dep, CASE WHEN p.dep = ${id} THEN ${state} ELSE 'cancelled' END AS dep_state
    FROM (SELECT x.id, unnest(ARRAY(SELECT d.dep_id FROM ${s}.wp_dep d WHERE d.job_id = x.id)) AS dep FROM doomed x) p
    WHERE p.dep = ${id} OR p.dep IN (SELECT y.id FROM doomed y)
    ORDER BY p.id, p.dep <> ${id}, p.dep)`

/** SQL text as it is written inside a single-quoted string (the trigger's EXECUTEs): its quotes doubled. */
const inString = (sql: string): string => sql.replaceAll("'", "''")

/**
 * The trigger function that settles a job's dependents when it ends (the memory store's `settled`):
 * a statement trigger, which reads the statement's rows (its transition tables) for the jobs it
 * ended (or deleted dead or cancelled) that have dependents, and stops there when there are none.
 * Those jobs' dependents that it may write are locked first, in one pass in `seq` order (as every
 * statement that locks several jobs: see `settleStatement`), then each job settles its own in `seq`
 * order. A row
 * trigger locked each row's dependents in turn: a statement that ended several jobs locked them in
 * the order of its rows, and two settle batches whose jobs' dependents crossed (one ending x's
 * dependency then y's, the other y's then x's) deadlocked. That was mended by a per-schema
 * advisory lock taken by every such transaction (a "turn"), which made its own waits: an open
 * application transaction that enqueued after a blocked job held back every settle of a job with
 * dependents in the schema, and deadlocks the rows alone never made. The cost is the statement's: a
 * trigger call on every UPDATE of `wp_job` (a few µs, see docs/durable.md), where the row trigger's
 * condition cost a job without dependents nothing. A success strikes its edges
 * (each once: the edge's row lock serializes two settles, so a count is never lost) and counts
 * down its dependents' `waiting_for`, whatever their state (a dependent redriven later waits for
 * what it still needs only); a death or cancel ends each blocked dependent of `afterFailure:
 * "cancel"` cancelled by it, and theirs after them: the whole closure in one UPDATE (their own
 * triggers then find nothing blocked left to cancel, two levels deep whatever a chain's length). A blocked dependent with nothing left to wait for (or, `afterFailure: "run"`, none
 * unfinished) is queued, visible from its own run time or the end's, whichever is later, and its
 * queue NOTIFYed as an enqueue's (`notify`: `at:` its due time, or `job`). The end's time is the
 * job's `finished_at` (the statement's store time). A blocked dependent past its own expiry (no
 * claim or reap met it yet) expired first: it ends so, not cancelled by this one (memory.ts's
 * `settled`). The same function runs for a dead or cancelled job deleted (purge, retention: the
 * `wp_job_dropped` trigger), which ends what still waits for it (a dependent redriven back to
 * blocked since) as its end did: nothing else ever would. A DELETE has no end time of its own: the
 * deleting statement's store time is read from the setting `deleting` writes (the server's time for
 * a DELETE made by hand). Dollar-quoted: `statementsOf` keeps it whole.
 */
const DEPENDENTS_ENDED = (s: string) =>
  `CREATE OR REPLACE FUNCTION ${s}.wp_dependents_ended() RETURNS trigger LANGUAGE plpgsql AS $wp$
  DECLARE
    released record;
    ids text[];
    states text[];
    ats bigint[];
    ended_id text;
    ended_state text;
    ended_at bigint;
    closure_ids text[];
    closure_deps text[];
    closure_states text[];
    deps text[];
    jit_was text;
    doomers text[];
    doomed_ids text[];
    statement_ends integer;
    gone_ids text[];
    gone_doomers boolean[];
    gone_named integer[];
  BEGIN
    -- the statement's jobs that ended with dependents, in seq order. A statement of jobs without
    -- dependents (every claim's and renewal's, mostly) stops at the first look, the cheapest: a
    -- one-row UPDATE pays 0 to 3 µs for the call (the aggregates below cost it 5 to 10)
    IF TG_OP = 'DELETE' THEN
      IF NOT EXISTS (SELECT FROM wp_old o WHERE o.has_dependents) THEN
        RETURN NULL;
      END IF;
      -- any state but a success: the store deletes finished jobs only, but a job deleted by hand
      -- before its end (queued, running, blocked) can never succeed either, and reads as cancelled
      SELECT array_agg(o.id ORDER BY o.seq), array_agg(CASE WHEN o.state = 'dead' THEN 'dead' ELSE 'cancelled' END ORDER BY o.seq),
          array_agg(COALESCE(NULLIF(current_setting('${NOW_SETTING}', true), '')::bigint, floor(extract(epoch from now()) * 1000)::bigint))
        INTO ids, states, ats
        FROM wp_old o WHERE o.has_dependents AND o.state <> 'succeeded';
      -- of those, the ones that could still succeed until now (they doom what waits for them, below):
      -- not one cancelled for good, nor one its dependency cancelled when that one is gone (deleted
      -- before it, as a chain's retention deletes it) or cancelled for good. A job that could already
      -- never succeed had its doom walked when it became so: a chain's jobs walked again at each
      -- delete made its retention quadratic. Its own dependencies' edges are gone (wp_job_deleted),
      -- so only the one it names is looked at: one it could not succeed for is walked again, for nothing.
      -- One whose named dependency is a doomer this statement deleted too is one: that doomer's walk
      -- cannot reach what waits for it, its row and edges gone. In seq order (a dependency comes
      -- first), each row's named one found by its position: one hash join of the statement's rows
      -- (planned at each call, EXECUTE, for their number), then a loop. A recursive walk of them
      -- read them all at each step of a deleted chain: one purge of a 4,000 jobs' chain took 29 s
      EXECUTE 'WITH gone AS (SELECT o.id, o.failed_dep_id, row_number() OVER (ORDER BY o.seq)::integer AS at,
            o.failed_dep_id IS NULL OR EXISTS (SELECT 1 FROM ${s}.wp_job f WHERE f.id = o.failed_dep_id
              AND NOT ${inString(cancelledForGood("f"))}) AS doomer
          FROM wp_old o WHERE o.has_dependents AND o.state <> ''succeeded''
            AND NOT ${inString(cancelledForGood("o"))})
        SELECT array_agg(g.id ORDER BY g.at), array_agg(g.doomer ORDER BY g.at), array_agg(p.at ORDER BY g.at)
          FROM gone g LEFT JOIN gone p ON p.id = g.failed_dep_id' INTO gone_ids, gone_doomers, gone_named;
      FOR i IN 1 .. COALESCE(cardinality(gone_ids), 0) LOOP
        gone_doomers[i] := gone_doomers[i] OR COALESCE(gone_doomers[gone_named[i]], false);
      END LOOP;
      SELECT array_agg(g.id ORDER BY g.at) INTO doomers FROM unnest(gone_ids, gone_doomers) WITH ORDINALITY AS g(id, doomer, at) WHERE g.doomer;
    ELSE
      IF NOT EXISTS (SELECT FROM wp_new n WHERE n.has_dependents) THEN
        RETURN NULL;
      END IF;
      -- planned at each call (EXECUTE), for its transition tables' sizes: a plan kept from the
      -- session's first call, made for a few rows, joined wp_new to wp_old by a nested loop, and a
      -- statement ending thousands of jobs with dependents (the cancel of a chain's closure) took
      -- seconds here, quadratic in its rows
      -- doomers: those cancelled for good (neither by a dependency nor expired), which doom what
      -- waits for them (below)
      EXECUTE 'SELECT array_agg(n.id ORDER BY n.seq), array_agg(n.state ORDER BY n.seq), array_agg(n.finished_at ORDER BY n.seq),
          array_agg(n.id ORDER BY n.seq) FILTER (WHERE ${inString(cancelledForGood("n"))})
        FROM wp_new n WHERE n.has_dependents AND n.state IN (''succeeded'', ''dead'', ''cancelled'')
          AND NOT EXISTS (SELECT 1 FROM wp_old o WHERE o.seq = n.seq AND o.state = n.state)'
        INTO ids, states, ats, doomers;
    END IF;
    IF ids IS NULL THEN
      RETURN NULL;
    END IF;
    -- JIT off for the statements below, each a walk by ids: the planner's costs of their per-row
    -- lookups passed jit_above_cost, and each compiled for 50 to 180 ms, at each ended job (a
    -- cancel of 1,000 jobs with dependents took a minute). Set back at the end (and by a rollback)
    jit_was := current_setting('jit');
    PERFORM set_config('jit', 'off', true);
    -- the doomers (deleted, or cancelled for good) could succeed until now and never can from now
    -- on, nor can the jobs ended waiting for one of them (cancelled by it, or expired blocked), nor
    -- those ended waiting for such a job or for a blocked one that does (cancelled below), which no
    -- redrive can put back now: each with a blocked dependent (redriven to wait for it) ends it as
    -- its own end did, after the statement's, in seq order (memory.ts's \`settled\`, \`doomed\`). One
    -- walk for the statement, each job once
    -- walked by ids, as CLOSURE: joined, each step of a chain's walk read wp_dep or wp_job whole
    -- (a dead root's purge of a 4,000 jobs' chain took 1.8 s, 114 ms at 1,000)
    IF doomers IS NOT NULL THEN
      WITH RECURSIVE waiting(id) AS (
          SELECT y.id FROM unnest(ARRAY(SELECT d.job_id FROM ${s}.wp_dep d WHERE d.dep_id = ANY(doomers) AND NOT d.succeeded)) y(id)
            WHERE ${WAITED(s, "y.id")}
        UNION
          SELECT y.id FROM waiting x, unnest(ARRAY(SELECT d.job_id FROM ${s}.wp_dep d WHERE d.dep_id = x.id AND NOT d.succeeded)) y(id)
            WHERE ${WAITED(s, "y.id")})
      SELECT array_agg(j.id ORDER BY j.seq) INTO doomed_ids
        FROM waiting x JOIN ${s}.wp_job j ON j.id = x.id WHERE j.state = 'cancelled';
      IF doomed_ids IS NOT NULL THEN
        statement_ends := cardinality(ids);
        ids := ids || doomed_ids;
        states := states || array_fill('cancelled'::text, ARRAY[cardinality(doomed_ids)]);
        ats := ats || array_fill(ats[1], ARRAY[cardinality(doomed_ids)]);
      END IF;
    END IF;
    -- the closure of its deaths and cancels (their blocked "cancel" dependents, and theirs after
    -- them), walked here to be locked with the rest
    IF NOT ('succeeded' = ALL(states)) THEN
      SELECT ARRAY(${CLOSURE(s, "ARRAY(SELECT e.id FROM unnest(ids, states) AS e(id, state) WHERE e.state <> 'succeeded')")}
        SELECT doomed.id FROM doomed) INTO closure_ids;
    END IF;
    -- their dependents and the closure's at once, in seq order: locked job by job, two statements
    -- whose jobs' dependents crossed locked them in other orders and deadlocked; and the closure
    -- locked in later passes (each death's, then its own dependents in its nested call), so a death
    -- holding its direct dependents and wanting its closure's deadlocked with a success holding one
    -- of that closure and wanting one of those. Only those written below (or in the nested call
    -- for the closure's): of a success all (their counts), of a death, a cancel or the closure the
    -- blocked ones (cancelled or released) and the ended ones (a redrive puts one back to blocked:
    -- it locks the row first, so either it waits for this transaction and sees the dependency ended
    -- or gone, or this one waits for it and sees the row blocked). A running or queued one was
    -- locked too, and a settle of it (holding it, its trigger waiting for a job this statement ended
    -- or deleted) deadlocked with this statement. Ids first (wp_dep by its key), wp_job by id only
    PERFORM 1 FROM ${s}.wp_job j WHERE j.id = ANY(ARRAY(SELECT d.job_id FROM ${s}.wp_dep d WHERE d.dep_id = ANY(ids || closure_ids)))
        AND (j.state IN ('blocked', 'dead', 'cancelled') OR j.id = ANY(ARRAY(
          SELECT d.job_id FROM ${s}.wp_dep d WHERE d.dep_id = ANY(ARRAY(SELECT e.id FROM unnest(ids, states) AS e(id, state) WHERE e.state = 'succeeded')))))
      ORDER BY j.seq FOR NO KEY UPDATE;
    -- of the doomed, only those with a blocked dependent (now locked, and read as committed: a
    -- redrive in flight was waited for) have anything to end: the others' turns below cost a chain's
    -- purge 0.4 ms a job for nothing
    IF statement_ends IS NOT NULL THEN
      SELECT array_agg(x.id ORDER BY x.n) INTO doomed_ids FROM unnest(doomed_ids) WITH ORDINALITY x(id, n)
        WHERE EXISTS (SELECT 1 FROM unnest(ARRAY(SELECT d.job_id FROM ${s}.wp_dep d WHERE d.dep_id = x.id)) w(id) WHERE ${DOOMABLE(s, "w.id")});
      ids := ids[1:statement_ends] || COALESCE(doomed_ids, '{}');
      states := states[1:statement_ends] || array_fill('cancelled'::text, ARRAY[cardinality(ids) - statement_ends]);
      ats := ats[1:statement_ends] || array_fill(ats[1], ARRAY[cardinality(ids) - statement_ends]);
    END IF;
    FOR i IN 1 .. cardinality(ids) LOOP
      ended_id := ids[i];
      ended_state := states[i];
      ended_at := ats[i];
      -- its dependents' ids by wp_dep's key, and wp_job read by id only: joined on state = 'blocked',
      -- a table not analyzed since its blocked jobs came was read along wp_job_blocked (or in full,
      -- hashed) at each ended job, every blocked job of the schema: a chain's closure cancel (each
      -- of its jobs ended in the nested call) took seconds beside 10,000 others. "state || ''" keeps
      -- the planner off that partial index whatever its estimates
      SELECT array_agg(d.job_id) INTO deps FROM ${s}.wp_dep d WHERE d.dep_id = ended_id;
      IF ended_state = 'succeeded' THEN
        WITH struck AS (UPDATE ${s}.wp_dep d SET succeeded = true WHERE d.dep_id = ended_id AND NOT d.succeeded RETURNING d.job_id)
        UPDATE ${s}.wp_job j SET waiting_for = j.waiting_for - 1 FROM struck WHERE j.id = struck.job_id;
      ELSIF EXISTS (SELECT 1 FROM ${s}.wp_job j WHERE j.id = ANY(deps) AND j.state || '' = 'blocked' AND NOT j.after_failure) THEN
        -- one past its own expiry, which no claim or reap met yet, expired first and reads so (its
        -- expire_at kept, no failed dependency); the others are cancelled by this one, their expiry gone
        -- The whole closure of blocked "cancel" dependents in one UPDATE: cancelled one by one, each
        -- row's trigger ran inside the last's, and a chain of a few hundred jobs passed max_stack_depth
        -- (every retry of the ending statement failed). Their own triggers then find nothing blocked
        -- left to cancel: two levels deep, whatever the chain's length
        ${DOOMED(s, "ended_id", "ended_state")}
        SELECT array_agg(one.id), array_agg(one.dep), array_agg(one.dep_state) INTO closure_ids, closure_deps, closure_states FROM one;
        -- locked in seq order (held since the pass above, but for a job made blocked since): the
        -- UPDATE locked them in the order of its join (by id, random), and an enqueue after two of
        -- them in seq order holding the one and waiting for the other deadlocked with it
        PERFORM 1 FROM ${s}.wp_job j WHERE j.id = ANY(closure_ids) AND j.state || '' = 'blocked' AND NOT j.after_failure
          ORDER BY j.seq FOR NO KEY UPDATE;
        UPDATE ${s}.wp_job j SET state = 'cancelled', finished_at = ended_at, exit = NULL,
            expire_at = CASE WHEN j.expire_at <= ended_at THEN j.expire_at END,
            failed_dep_id = CASE WHEN j.expire_at <= ended_at THEN NULL ELSE one.dep END,
            failed_dep_state = CASE WHEN j.expire_at <= ended_at THEN NULL ELSE one.dep_state END
          FROM unnest(closure_ids, closure_deps, closure_states) AS one(id, dep, dep_state)
          WHERE j.id = one.id AND j.state || '' = 'blocked' AND NOT j.after_failure;
      END IF;
      FOR released IN
        UPDATE ${s}.wp_job j SET state = 'queued', visible_at = GREATEST(j.visible_at, ended_at),
            rank = (SELECT CASE WHEN COALESCE(MAX(q.aging_ms), 0) > 0 THEN j.priority * MAX(q.aging_ms) - GREATEST(j.visible_at, ended_at)
              ELSE j.priority END FROM ${s}.wp_queue q WHERE q.name = j.queue)
          WHERE j.id = ANY(deps) AND j.state || '' = 'blocked'
            AND (j.waiting_for = 0 OR j.after_failure AND NOT EXISTS (
              SELECT 1 FROM ${s}.wp_dep p JOIN ${s}.wp_job o ON o.id = p.dep_id
              WHERE p.job_id = j.id AND NOT p.succeeded AND o.state NOT IN ('succeeded', 'dead', 'cancelled')))
          RETURNING j.queue, j.visible_at
      LOOP
        PERFORM pg_notify('${CHANNEL_PREFIX}' || left(encode(sha256(convert_to(TG_TABLE_SCHEMA || '.' || released.queue, 'UTF8')), 'hex'), ${CHANNEL_HASH}),
          CASE WHEN released.visible_at > ended_at THEN 'at:' || released.visible_at::text ELSE 'job' END);
      END LOOP;
    END LOOP;
    PERFORM set_config('jit', jit_was, true);
    RETURN NULL;
  END
  $wp$`

/** The transaction's setting that carries a deleting statement's store time to its triggers. */
const NOW_SETTING = "workpool.now"

/**
 * A deleting statement's condition, an uncorrelated subquery run once before any row is deleted (a
 * one-time filter): it writes the statement's store time (`now`) for the trigger that ends a deleted
 * job's dependents (see `DEPENDENTS_ENDED`).
 */
const deleting = (sql: PgClient.PgClient, now: Fragment | number) =>
  sql`(SELECT set_config(${NOW_SETTING}, (${now})::bigint::text, true)) IS NOT NULL`

/**
 * A migration's statements, one at a time (a prepared statement holds one command): split at each
 * `;`, but not inside a dollar-quoted body (`$wp$ ... $wp$`, a function's).
 */
export const statementsOf = (text: string): Array<string> => {
  const out: Array<string> = []
  let current = ""
  for (const part of text.split(";")) {
    current = current === "" ? part : `${current};${part}`
    if ((current.split("$wp$").length - 1) % 2 === 0) {
      if (current.trim() !== "") out.push(current)
      current = ""
    }
  }
  if (current.trim() !== "") out.push(current)
  return out
}

/**
 * Ends queued jobs past their expiry at `now`, cancelled then, at most `limit`, soonest first: of
 * `queues` (undefined: every queue's), along `wp_job_expiring`. SKIP LOCKED: a job a claim or an
 * enqueue holds is left to the next look (a claim never takes an expired one: see `UNEXPIRED`).
 * `blocked`: the blocked jobs instead (a reap's and a claim's, along `wp_job_blocked_expiring`), whose dependents
 * the trigger then ends (see `DEPENDENTS_ENDED`). `dependents`: only the jobs with dependents.
 */
export const expireStatement = (
  sql: PgClient.PgClient,
  S: Fragment,
  now: Fragment | number,
  limit: number,
  queues?: ReadonlyArray<string>,
  blocked = false,
  dependents = false
) =>
  sql`UPDATE ${S}.wp_job x SET ${expiredAt(sql, now)}
    FROM (${expiringStatement(sql, S, now, limit, queues, blocked, dependents)}) e
    WHERE x.seq = e.seq`

/** What `expireStatement` writes to an expired job. */
const expiredAt = (sql: PgClient.PgClient, now: Fragment | number) => sql`state = 'cancelled', finished_at = ${now}, exit = NULL`

/** The jobs `expireStatement` ends, locked (their `seq`, and whether each has dependents). */
const expiringStatement = (
  sql: PgClient.PgClient,
  S: Fragment,
  now: Fragment | number,
  limit: number,
  queues: ReadonlyArray<string> | undefined,
  blocked: boolean,
  dependents = false
) =>
  sql`SELECT e.seq, e.has_dependents FROM ${S}.wp_job e
    WHERE e.state = ${sql.literal(blocked ? "'blocked'" : "'queued'")} AND e.expire_at IS NOT NULL AND e.expire_at <= ${now}
      ${queues === undefined ? sql`` : sql`AND e.queue = ANY(${queues})`}${dependents ? sql` AND e.has_dependents` : sql``}
    ORDER BY e.expire_at LIMIT ${limit} FOR UPDATE OF e SKIP LOCKED`

/**
 * A dependency `o` that can never succeed (memory.ts's `canAllSucceed`): gone (a finished job deleted),
 * or cancelled for good: not by a dependency of its own, nor expired (both may be redriven, to wait
 * for what they still need, which the redrive's walk looks at in turn).
 */
const CANNOT_SUCCEED = `(o.id IS NULL OR ${cancelledForGood("o")})`

/** A job `j` that may start at `now`: none past its expiry (see `JobRow.expireAt`). */
const UNEXPIRED = (sql: PgClient.PgClient, now: Fragment | number) => sql`(j.expire_at IS NULL OR j.expire_at > ${now})`

/**
 * A grouped claim's walk of a queue's keys (see `JobQueue.setGroupConcurrency`): from the key after
 * `from` (or from `from` itself, `inclusive`), at most `step` keys, up to `stop` if given, in key
 * order, each one probe of `wp_job_group_ready` (and one of `wp_job_group_due`: is its soonest job
 * visible? An EXISTS of a visible one was planned as a scan of wp_job), never a key's backlog; with each key its best
 * visible jobs of `tasks`, one more than it may start (its free slots from `running`, counted before;
 * the key '' uncapped), locked. A key without such a job comes with a NULL seq.
 */
export const groupWalk = (
  sql: PgClient.PgClient,
  S: Fragment,
  walk: {
    readonly queue: string
    readonly from: string
    readonly inclusive: boolean
    readonly stop: string | null
    readonly step: number
    readonly cap: number
    readonly limit: number
    readonly running: ReadonlyMap<string, number>
    readonly tasks: ReadonlyArray<string>
    readonly now: Fragment | number
  }
) => {
  const { queue, stop } = walk
  const next = (after: Fragment, inclusive: boolean) =>
    sql`SELECT j.group_key FROM ${S}.wp_job j WHERE j.queue = ${queue} AND j.state = 'queued'
      AND j.group_key ${sql.literal(inclusive ? ">=" : ">")} ${after} ORDER BY j.group_key LIMIT 1`
  const free = sql`CASE WHEN w.g = '' THEN ${walk.limit}::int ELSE GREATEST(0, LEAST(${walk.limit}::int, ${walk.cap}::int - COALESCE(
      (SELECT r.n::int FROM unnest(${[...walk.running.keys()]}::text[], ${[...walk.running.values()].map(String)}::text[]) AS r(k, n)
        WHERE r.k = w.g), 0))) END`
  return sql<{ g: string; n: number; seq: string | number | bigint | null; rank: number | null }>`WITH RECURSIVE walk(g, n) AS (
      SELECT (${next(sql`${walk.from}::text`, walk.inclusive)}), 1
      UNION ALL
      SELECT (${next(sql`w.g`, false)}), w.n + 1 FROM walk w
      WHERE w.g IS NOT NULL AND w.n < ${walk.step}::int ${stop === null ? sql`` : sql`AND w.g < ${stop}`}
    )
    SELECT w.g, w.n, h.seq, h.rank FROM (SELECT g, n FROM walk) w
    LEFT JOIN LATERAL (
      SELECT j.seq, j.rank FROM ${S}.wp_job j
      WHERE j.queue = ${queue} AND j.state = 'queued' AND j.group_key = w.g AND j.visible_at <= ${walk.now}
        AND j.task = ANY(${walk.tasks}) AND ${UNEXPIRED(sql, walk.now)}
        AND (SELECT d.visible_at FROM ${S}.wp_job d WHERE d.queue = ${queue} AND d.state = 'queued' AND d.group_key = w.g
          ORDER BY d.visible_at LIMIT 1) <= ${walk.now}
      ORDER BY j.rank DESC, j.seq
      LIMIT ${free} + 1
      FOR UPDATE SKIP LOCKED
    ) h ON true
    WHERE w.g IS NOT NULL ${stop === null ? sql`` : sql`AND w.g <= ${stop}`}
    ORDER BY w.n, h.rank DESC, h.seq`
}

/**
 * Whether a grouped claim's walk has a key left to see: one in the rest of the first of `phases`
 * (after `from`, or from it, `inclusive`) or in the phases after it.
 */
const groupAhead = (
  sql: PgClient.PgClient,
  S: Fragment,
  queue: string,
  phases: ReadonlyArray<GroupPhase>,
  from: string,
  inclusive: boolean
) =>
  Effect.gen(function*() {
    for (const [i, phase] of phases.entries()) {
      const after = i === 0 ? { from, inclusive } : phase
      const rows = yield* sql`SELECT 1 AS one FROM ${S}.wp_job WHERE queue = ${queue} AND state = 'queued'
        AND group_key ${sql.literal(after.inclusive ? ">=" : ">")} ${after.from}::text
        ${phase.stop === null ? sql`` : sql`AND group_key <= ${phase.stop}`} LIMIT 1`
      if (rows.length > 0) return true
    }
    return false
  })

/**
 * A claim's release of the dedup keys of the "queued"-mode jobs it starts (see `NewJob.dedupWhile`),
 * and of their expiry (a started job never expires).
 */
const RELEASE_QUEUED = "dedup_key = CASE WHEN j.dedup_queued IS NULL THEN j.dedup_key END, expire_at = NULL"

/** This transaction's id (`settled_xid`). */
const XID = "pg_current_xact_id()::text::bigint"

/** A `pg_snapshot` as text (`xmin:xmax:xip,...`): the Postgres store's latency cursor. */
const SNAPSHOT = /^\d{1,20}:\d{1,20}:(\d{1,20}(,\d{1,20})*)?$/

/**
 * The latencies read: the jobs of `queue` that succeeded or went dead in a transaction that
 * committed after the snapshot `since` was taken and before this statement's (the cursor it
 * returns as `until`), the newest `limit`.
 *
 * A settle stamps `finished_at` with its statement's time but becomes visible only at its commit,
 * so a read by time could look between the two, move past the stamp and never count it. A settle
 * records its transaction id instead (`settled_xid`), and a snapshot says exactly which
 * transactions had committed when it was taken: a job ended after `since` if its transaction is
 * not visible in `since`, which is every id from `since`'s xmax up and those of its list of
 * transactions then in progress. Both are ranges of `wp_job_settled (queue, settled_xid)`: the
 * first read newest first, stopping at `limit`, the second a lookup per listed transaction. Exported
 * for the test that checks the plan.
 */
export const latenciesStatement = (sql: PgClient.PgClient, S: Fragment, queue: string, since: string, limit: number) => {
  const n = sql.literal(String(Math.max(0, Math.floor(limit))))
  const ended = sql`queue = ${queue} AND state IN ('succeeded', 'dead') AND started_at IS NOT NULL`
  return sql<{ until: string; v: bigint | number | null; s: bigint | number | null; f: bigint | number | null }>`
    SELECT t.until::text AS until, j.v, j.s, j.f
      FROM (SELECT pg_current_snapshot() AS until, ${since}::pg_snapshot AS since) t
      LEFT JOIN LATERAL (
        SELECT u.visible_at AS v, u.started_at AS s, u.finished_at AS f FROM (
          (SELECT visible_at, started_at, finished_at, settled_xid FROM ${S}.wp_job
            WHERE ${ended} AND settled_xid >= pg_snapshot_xmax(t.since)::text::bigint
            ORDER BY settled_xid DESC LIMIT ${n})
          UNION ALL
          (SELECT visible_at, started_at, finished_at, settled_xid FROM ${S}.wp_job
            WHERE ${ended} AND settled_xid = ANY(ARRAY(SELECT x::text::bigint FROM pg_snapshot_xip(t.since) x)))
        ) u
        ORDER BY u.finished_at DESC, u.settled_xid DESC LIMIT ${n}
      ) j ON true`
}

/**
 * The list's statement for `filter` at `now` (the store's time). Queued jobs alone of one half
 * (`waiting`), and expired jobs alone (`expired`, of the cancelled ones), are spelled out, not as
 * one state of many: the planner then serves them by an index (wp_job_delayed's predicate, the
 * queue's cancelled rows; wp_job_ready, or the seqs in order).
 */
export const listStatement = (sql: PgClient.PgClient, S: Fragment, filter: ListFilter, now: Fragment | number) => {
  const where: Array<Fragment> = []
  if (filter.queue !== undefined) where.push(sql`queue = ${filter.queue}`)
  // a job visible at or before its creation was never delayed (see `waitingAs`)
  const waiting = filter.waiting === undefined
    ? undefined
    : filter.waiting === "delayed"
    ? sql`visible_at > ${now} AND visible_at > created_at`
    : sql`visible_at <= ${now}`
  const one = filter.states?.length === 1 ? filter.states[0] : undefined
  // see `expiredAt`
  const expired = sql`expire_at IS NOT NULL AND finished_at >= expire_at`
  const spelled = waiting !== undefined && one === "queued"
    ? sql`state = 'queued' AND ${waiting}`
    : filter.expired === true && one === "cancelled"
    ? sql`state = 'cancelled' AND ${expired}`
    : undefined
  if (spelled !== undefined) {
    where.push(spelled)
    // the delayed (or expired) jobs' seqs first, fenced: left to it, a generic plan walked the seqs
    // in order (by wp_job_pkey) through every waiting and finished job before them
    if (filter.waiting === "delayed" || one === "cancelled") {
      return sql<SqlRow>`WITH listed AS MATERIALIZED (SELECT seq FROM ${S}.wp_job WHERE ${sql.and(where)})
        SELECT * FROM ${S}.wp_job WHERE seq IN (SELECT seq FROM listed ORDER BY seq LIMIT ${filter.limit}) ORDER BY seq`
    }
  } else {
    if (filter.states !== undefined) where.push(sql`state = ANY(${filter.states})`)
    if (waiting !== undefined) where.push(sql`(state <> 'queued' OR (${waiting}))`)
    if (filter.expired === true) where.push(sql`(state <> 'cancelled' OR (${expired}))`)
  }
  return sql<SqlRow>`SELECT * FROM ${S}.wp_job ${where.length === 0 ? sql`` : sql`WHERE ${sql.and(where)}`}
    ORDER BY seq LIMIT ${filter.limit}`
}

/** The schema of the tables: a plain identifier, since it is spliced into every statement. */
const schemaOf = (value: unknown): string => {
  const schema = value ?? "workpool"
  if (typeof schema !== "string" || !/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    config.fail("schema", schema, "expected a lower-case SQL identifier (letters, digits, _; at most 63)")
  }
  return schema as string
}

/** The key meant, for a store option given by another client's name (node-postgres', mostly). */
const PG_HINTS = {
  connectionString: "url",
  max: "maxConnections",
  connectionTimeoutMillis: "connectTimeout",
  schemaName: "schema"
}

export const options = (options: {
  readonly url: unknown
  readonly schema?: unknown
  readonly maxConnections?: unknown
  readonly connectTimeout?: unknown
}): Effect.Effect<Config, StoreError> =>
  Effect.mapError(
    config.checkPoolOptions((): Config => {
      config.object("options", options)
      config.onlyKeys("", options, ["url", "schema", "maxConnections", "connectTimeout"], PG_HINTS)
      const url = Redacted.isRedacted(options.url) ? Redacted.value(options.url as Redacted.Redacted<unknown>) : options.url
      if (typeof url !== "string" || !/^postgres(ql)?:\/\/[^\s]+$/.test(url)) {
        // the URL may hold a password: name its shape, not its text
        config.fail("url", typeof url === "string" ? "<a string>" : url, "expected a postgres:// or postgresql:// URL")
      }
      let parsed: URL | undefined
      try {
        parsed = new URL(url as string)
      } catch {
        config.fail("url", "<a string>", "expected a postgres:// URL that parses (host, port, database)")
      }
      // the host in the authority, or in a `host` parameter (libpq's form for a Unix socket:
      // `postgresql:///app?host=/var/run/postgresql`, which the driver reads as the store does)
      if (parsed!.hostname === "" && !parsed!.searchParams.getAll("host").some((host) => host !== "")) {
        config.fail("url", "<a string>", "expected a host in the postgres:// URL (or a host= parameter)")
      }
      return {
        url: Redacted.make(url as string),
        schema: schemaOf(options.schema),
        maxConnections: options.maxConnections === undefined
          ? 10
          : config.positiveInteger("maxConnections", options.maxConnections, 1000),
        connectTimeout: options.connectTimeout === undefined
          ? 10_000
          : config.finiteMillis("connectTimeout", options.connectTimeout),
        clock: "server"
      }
    }),
    config.storeOptionError
  )

/** A claimed row, with what orders the claims (RETURNING has no order). */
type RankedRow = SqlRow & { readonly rank: number; readonly seq: bigint | number }

const isUniqueViolation = (error: unknown): boolean => SqlError.isSqlError(error) && error.reason._tag === "UniqueViolation"

const isLockTimeout = (error: unknown): boolean => SqlError.isSqlError(error) && error.reason._tag === "LockTimeoutError"

/**
 * A migration that cannot have its locks now: it waited too long, or closed a cycle with another
 * transaction (the migration from version 1 or 2 alters wp_job, then wp_queue: one that read
 * wp_queue, then wp_job, deadlocks with it, and Postgres ends the migration, which waited first).
 * Either way it gives way, and tries again.
 */
const isLockConflict = (error: unknown): boolean => isLockTimeout(error) || isDeadlock(error)

const isDeadlock = (error: unknown): boolean => SqlError.isSqlError(error) && error.reason._tag === "DeadlockError"

/**
 * How many times in all an enqueue with `after` runs its transaction of the store's own when
 * Postgres ends it as a deadlock's victim (40P01). Its lock of the dependencies' rows, in seq order,
 * can still close a cycle with a statement that ended several jobs: that statement locks its own rows
 * first, then their dependents (docs/durable.md "Dependencies"). Rolled back, it is the same
 * transaction again: the other has what it waited for then. Inside an application's transaction
 * it is not tried again (the transaction is the application's: it retries it on 40P01).
 */
export const DEADLOCK_TRIES = 3

/**
 * How long (ms) a migration waits for a lock on a table before it gives up and tries again, after
 * `MIGRATE_PAUSE`, `MIGRATE_TRIES` times in all (then the store's open fails): while it waits, every
 * other statement on that table waits behind it.
 */
export const MIGRATE_LOCK_WAIT = 2000

/**
 * How long (ms) the server lets a transaction of the store's own wait for its next statement
 * (`idle_in_transaction_session_timeout`) before it ends the session, rolling the transaction back.
 * The store sends a transaction's statements one after another, with only its own code in between;
 * a process frozen there (SIGSTOP, a paused VM, a host gone with its connection half open) held the
 * transaction's locks as long as it lived: a rate-limited queue's row, which every consumer's claim
 * and every `configure` of the queue waits for, or a batch's dedup locks, which every batch with
 * dedup keys in its queues waits for. Long past any pause of a live process, short against the
 * hours a dead host's connection stays open.
 */
export const IDLE_IN_TRANSACTION = 10_000

/** Whether the transaction open is one the store opened for a write of its own (`pinned`), not the application's. */
const OwnPin = Context.Reference<boolean>("effect-workpool/PgStore/OwnPin", { defaultValue: () => false })

/**
 * How long (ms) a claim's expiry of the jobs with dependents it met (`expireMet`) waits for a
 * dependent's row before it leaves them to the reap: the claim returns after it, and its jobs'
 * leases run meanwhile. An application transaction that enqueued after a dependent holds its row
 * until it ends, which may be long past a lease.
 */
export const EXPIRE_LOCK_WAIT = 100

/** The largest `lock_timeout` Postgres takes (ms). */
const MAX_LOCK_TIMEOUT = 2_147_483_647
const MIGRATE_PAUSE = 1000
const MIGRATE_TRIES = 5

const reasonOf = (cause: unknown): string => {
  const error = cause as { message?: unknown; cause?: unknown }
  const inner = error?.cause as { message?: unknown; cause?: { message?: unknown } } | undefined
  // SqlError wraps the driver's error (and sometimes a reason that wraps it again): say the deepest
  const deepest = inner?.cause?.message ?? inner?.message ?? error?.message
  return typeof deepest === "string" ? deepest : String(cause)
}

/**
 * The best visible jobs of `queues` (not paused, nor held past `now`), at most `limit`, locked `FOR UPDATE SKIP LOCKED`
 * (concurrent claimers skip each other's rows): their `seq`, `rank` and `queue`, for `when` (a
 * condition checked once).
 *
 * Each queue is read through the index `wp_job_ready (queue, rank DESC, seq)` in order, so a claim
 * reads a few rows however many jobs wait. One queue is `queue = $1`; several are one LATERAL
 * index scan per queue (each locking at most `limit` of its best), merged: `queue = ANY($1)` would
 * make the prepared statement's generic plan sort every queued job of the queues. The limit is a
 * literal (one prepared statement per limit): with `LIMIT $n` the generic plan assumes a tenth of
 * the rows are wanted, and sorts them all too.
 *
 * `fair` (`ClaimRequest.fair`): the same scans, merged by turn instead of rank: each queue's best
 * first, then each one's second..., the queues of a turn in the order of `queues`. As many index
 * probes and locks as by priority; only the order the merge keeps changes.
 */
export const bestStatement = (
  sql: PgClient.PgClient,
  S: Fragment,
  queues: ReadonlyArray<string>,
  tasks: ReadonlyArray<string>,
  limit: number,
  now: Fragment | number,
  when: Fragment = sql`true`,
  fair = false
) => {
  // a queue named twice, scanned twice, gave its jobs twice: the claim took each once, short
  const names = Array.from(new Set(queues))
  const visible = sql`j.state = 'queued' AND j.visible_at <= ${now} AND j.task = ANY(${tasks}) AND ${UNEXPIRED(sql, now)}`
  const n = sql.literal(String(Math.max(1, Math.floor(limit))))
  // a queue's best `limit`, of the queue `q.name`
  const scan = sql`SELECT j.seq, j.rank, j.queue FROM ${S}.wp_job j
    WHERE j.queue = q.name AND ${visible}
    ORDER BY j.rank DESC, j.seq
    LIMIT ${n}
    FOR UPDATE SKIP LOCKED`
  return names.length === 1
    ? sql`SELECT j.seq, j.rank, j.queue FROM ${S}.wp_job j
        WHERE ${when} AND j.queue = ${names[0]!} AND ${visible}
          -- a check of the queue alone (a one-time filter): tied to j.queue, the planner expects
          -- it to remove every row and then sorts them rather than reading the index in order
          AND NOT EXISTS (SELECT 1 FROM ${S}.wp_queue q WHERE q.name = ${names[0]!} AND (q.paused OR q.held_until > ${now}))
        ORDER BY j.rank DESC, j.seq
        LIMIT ${n}
        FOR UPDATE SKIP LOCKED`
    : sql`SELECT c.seq, c.rank, c.queue FROM unnest(${names}::text[]) ${fair ? sql`WITH ORDINALITY AS q(name, place)` : sql`AS q(name)`}
        CROSS JOIN LATERAL (${
      fair ? sql`SELECT b.*, row_number() OVER (ORDER BY b.rank DESC, b.seq) AS turn FROM (${scan}) b` : scan
    }) c
        WHERE ${when} AND NOT EXISTS (SELECT 1 FROM ${S}.wp_queue p WHERE p.name = q.name AND (p.paused OR p.held_until > ${now}))
        ORDER BY ${fair ? sql`c.turn, q.place` : sql`c.rank DESC, c.seq`}
        LIMIT ${n}`
}

/**
 * How long (ms) from `now` until the soonest delayed job of `queues` (not paused, any task) becomes
 * visible; NULL if none. Each queue's first entry of `wp_job_delayed`, an index of only the queued
 * jobs that were not visible when they entered the queue (`visible_at > created_at`: a delay, a
 * retry's backoff, a reaped job's), so an enqueue to run at once costs it nothing; a job due after
 * now is always in it (it was created before now). The query repeats the index's condition, so
 * that the planner can use it.
 */
export const dueInStatement = (
  sql: PgClient.PgClient,
  S: Fragment,
  queues: ReadonlyArray<string>,
  now: Fragment | number,
  after: Fragment | number = now
) => {
  const delayed = (queue: Fragment | string) =>
    sql`SELECT d.visible_at FROM ${S}.wp_job d
      WHERE d.queue = ${queue} AND d.state = 'queued' AND d.visible_at > d.created_at AND d.visible_at > ${after}
      ORDER BY d.visible_at LIMIT 1`
  // a held queue's jobs are due at its hold's end at the soonest: its consumers claim again then
  const dueAt = (queue: Fragment | string) =>
    sql`coalesce((SELECT h.held_until FROM ${S}.wp_queue h WHERE h.name = ${queue} AND h.held_until > ${now}), (${delayed(queue)}))`
  return queues.length === 1
    ? sql`(SELECT ${dueAt(queues[0]!)} - ${now}
        WHERE NOT EXISTS (SELECT 1 FROM ${S}.wp_queue p WHERE p.name = ${queues[0]!} AND p.paused))`
    : sql`(SELECT min(${dueAt(sql`q.name`)}) - ${now} FROM unnest(${queues}::text[]) AS q(name)
        WHERE NOT EXISTS (SELECT 1 FROM ${S}.wp_queue p WHERE p.name = q.name AND p.paused))`
}

/**
 * The claim when no queue of the request has a rate limit, one statement: the best jobs
 * (`bestStatement`) made running with a fresh token. If a queue has a limit it claims nothing and
 * says so (`limited`): the store then claims under the queues' locks. Exported for the test that
 * checks the plan.
 *
 * What writing the settles first costs (bench/probe/pg-drain-ab.ts against bcc309a^, which wrote
 * them after the claim; load 9-16): nothing for one consumer (backends' CPU ×0.99–1.05), ~+15%
 * of the backends' CPU for 4 consumers racing for one queue's head (×1.11–1.21 in 4 runs, each
 * run's interquartile range above 1; its inverse, main against bcc309a^, ×0.81–0.87 in 4 more;
 * A/A runs ×0.92–1.14, each range across 1).
 * Likely why: the claim's snapshot is the statement's, taken before the settles run, so it reaches
 * the head later, when more jobs taken by others since still look queued to it; it locks each (then
 * skips it on the recheck) and holds it to its commit. Tried, none better (backends' CPU over
 * this order's): the settles locked first and updated after the claim (×0.96, ×1.02); carried after
 * the claim but SKIP LOCKED, those skipped left to the writer (×1.02, ×1.25: other claims' stale
 * locks held 4% of them, each then a statement more); not carried, a statement of their own beside
 * the claim (×0.75, ×0.95, but this process's CPU ×1.25–1.45); the claim's pick in a volatile
 * PL/pgSQL function, run after the settles on a fresh snapshot (×0.85, ×1.03, but ×1.22 for one
 * consumer). Left: the settles and the claim as two statements of one transaction, pipelined in
 * one round trip (which the driver does not offer here).
 */
export const claimStatement = (
  sql: PgClient.PgClient,
  S: Fragment,
  request: ClaimRequest,
  now: Fragment | number,
  finals: ReadonlyArray<FinalSettle> = [],
  freed?: SlotFreed
) =>
  sql<
    RankedRow & { limited: boolean; expiring: boolean; settled: ReadonlyArray<string> | null; due_in: bigint | number | string | null }
  >`WITH limited AS (
      SELECT EXISTS (
        SELECT 1 FROM ${S}.wp_queue WHERE name = ANY(${request.queues})
          AND (rate_limit > 0 OR concurrency > 0 OR group_concurrency > 0)
      ) AS limited
    ),
    -- the expired jobs of its queues, met by the claim: ended (run whether read or not), none taken;
    -- its blocked ones too, as the other stores' claims do. Those without dependents only: the
    -- trigger locks an ended job's dependents at the statement's end, after the jobs the claim took
    -- (SKIP LOCKED), and an enqueue after a dependent and a claimed job (holding the one, wanting
    -- the other) deadlocked with it. Those with dependents, met here, the store ends in statements
    -- of their own after the claim (see expireMet). Its carried settles likewise: those of jobs with
    -- dependents it leaves to the store's settle writer, which writes them after the claim commits
    expiring AS (${expiringStatement(sql, S, now, EXPIRE_BATCH, request.queues, false)}),
    expired AS (UPDATE ${S}.wp_job x SET ${expiredAt(sql, now)} FROM expiring e WHERE x.seq = e.seq AND NOT e.has_dependents),
    expiring_blocked AS (${expiringStatement(sql, S, now, EXPIRE_BATCH, request.queues, true)}),
    expired_blocked AS (UPDATE ${S}.wp_job x SET ${expiredAt(sql, now)} FROM expiring_blocked e WHERE x.seq = e.seq AND NOT e.has_dependents),${
    finals.length === 0 ? sql`` : sql`
    settled AS (${settleStatement(sql, S, finals, now, freed, false)}),`
  }
    next AS (${
    bestStatement(
      sql,
      S,
      request.queues,
      request.tasks,
      request.limit,
      now,
      // the carried settles first (a one-time filter: settled runs whole before the claim locks any
      // job): their locks wait, in seq order, and must come before the claim's, which never wait
      // (SKIP LOCKED). Run after them, a claim holding a job it had just taken waited for a settled
      // one that a heartbeat or a settle batch held, which waited for that job (found by a token of
      // its before a reap, its snapshot older than the reap): "deadlock detected"
      finals.length === 0
        ? sql`NOT (SELECT limited FROM limited)`
        : sql`NOT (SELECT limited FROM limited) AND (SELECT count(*) FROM settled) >= 0`,
      request.fair === true
    )
  }),
    claimed AS (
      UPDATE ${S}.wp_job j SET state = 'running', attempts = j.attempts + 1, started_at = ${now},
        lease_token = gen_random_uuid()::text, lease_until = ${now}::bigint + ${request.lease}::bigint,
        ${sql.literal(RELEASE_QUEUED)}
      FROM next WHERE j.seq = next.seq
      RETURNING j.*
    )
    SELECT claimed.*, limited.limited,
      EXISTS (SELECT 1 FROM expiring WHERE has_dependents) OR EXISTS (SELECT 1 FROM expiring_blocked WHERE has_dependents) AS expiring${
    finals.length === 0 ? sql`` : sql`, (SELECT array_agg(token) FROM settled) AS settled`
  },
      -- only after a claim that took fewer than asked for (the consumer sleeps then): a busy one
      -- claims again at once, and pays nothing for it
      CASE WHEN NOT limited.limited AND (SELECT count(*) FROM claimed) < ${sql.literal(String(Math.max(1, Math.floor(request.limit))))}
        THEN ${dueInStatement(sql, S, request.queues, now)} END AS due_in
    FROM limited LEFT JOIN claimed ON true`

/** A final settle waiting to be written (see `settle` in `makeWith`). */
export interface FinalSettle {
  readonly token: string
  readonly state: string
  readonly exit: string | null
}

/**
 * The NOTIFY of a queue (an SQL expression of its name) whose running job stopped, sent only when
 * the queue has a cap (`setConcurrency`): the consumers the cap held back, in every process, claim
 * the freed slot. Read from the queue's row as the job stops, not from what the claim knew: a cap
 * set while the job ran is the operator's ordinary case (a provider struggling), and its settle
 * must wake them as well.
 */
export type SlotFreed = (queue: Fragment) => Fragment

/**
 * Final settles, fenced by their tokens: returns the tokens written. With `freed`, each settled
 * job of a capped queue NOTIFYs it (see `SlotFreed`): a look at the queue's row by its key, for
 * each job; an uncapped queue's settle sends nothing, as before. Every statement that updates
 * several running jobs (this one, the heartbeat, the reaper) locks them in `seq` order first: in
 * the order each happened to find them, a consumer's heartbeat and its claim carrying settles of
 * the same jobs deadlocked (Postgres broke it after a second, failing the claim).
 *
 * The jobs are found by token alone (a token exists only while its job runs: see the header), and
 * by a token array as well as the join: joined only to the recordset, whose rows the planner cannot
 * count, an unanalyzed table was read whole instead of through wp_job_token.
 *
 * `dependents` false: only the jobs without dependents (a claim's carried settles: see
 * `claimStatement`); the others are left as they are, unlocked.
 */
export const settleStatement = (
  sql: PgClient.PgClient,
  S: Fragment,
  batch: ReadonlyArray<FinalSettle>,
  now: Fragment | number,
  freed?: SlotFreed,
  dependents = true
) => {
  const finals = firstOfEachToken(batch)
  return sql<{ token: string }>`UPDATE ${S}.wp_job j
    SET state = v.state, exit = v.exit, finished_at = ${now}, settled_xid = ${sql.literal(XID)}, cancel_requested = false,
      lease_token = NULL, lease_until = NULL
    FROM (SELECT l.seq, v.token, v.state, v.exit
      FROM jsonb_to_recordset(${JSON.stringify(finals.map(({ exit, state, token }) => ({ token, state, exit })))}::jsonb)
        AS v(token text, state text, exit text)
      JOIN ${S}.wp_job l ON l.lease_token = v.token
      WHERE l.lease_token = ANY(${finals.map((final) => final.token)}::text[])${dependents ? sql`` : sql` AND NOT l.has_dependents`}
      ORDER BY l.seq FOR UPDATE OF l) v
    WHERE j.seq = v.seq
    RETURNING v.token${
    freed === undefined ? sql`` : sql`, (SELECT ${freed(sql`j.queue`)} FROM ${S}.wp_queue q
      WHERE q.name = j.queue AND (q.concurrency > 0 OR q.group_concurrency > 0)) IS NULL AS freed`
  }`
}

/**
 * A batch's settles, each token's first only: two of one token (sent together by one consumer)
 * joined the job twice, and the UPDATE wrote it once, with either's values.
 */
const firstOfEachToken = (batch: ReadonlyArray<FinalSettle>): ReadonlyArray<FinalSettle> => {
  const seen = new Set<string>()
  return batch.filter((entry) => {
    if (seen.has(entry.token)) return false
    seen.add(entry.token)
    return true
  })
}

/**
 * Whether each settle of a batch was written, from the tokens the statement returned: only a
 * token's first settle was (see `firstOfEachToken`); a second one of the same token wrote nothing.
 */
const writtenEach = (batch: ReadonlyArray<FinalSettle>, tokens: Iterable<string>): Array<boolean> => {
  const written = new Set(tokens)
  return batch.map((entry) => written.delete(entry.token))
}

/**
 * The heartbeat: renews the leases of the jobs `tokens` hold, found by token alone like the final
 * settle's (a token exists only while its job runs: see the header), locked in `seq` order (see
 * `settleStatement`); returns the renewed jobs' tokens and whether a cancel was requested. Exported
 * for the test that checks the plan.
 */
export const heartbeatStatement = (
  sql: PgClient.PgClient,
  S: Fragment,
  tokens: ReadonlyArray<string>,
  lease: number,
  now: Fragment | number
) =>
  sql<{ lease_token: string; cancel_requested: boolean }>`UPDATE ${S}.wp_job j
    SET lease_until = ${now}::bigint + ${lease}::bigint
    FROM (SELECT l.seq FROM ${S}.wp_job l WHERE l.lease_token = ANY(${tokens}::text[])
      ORDER BY l.seq FOR UPDATE OF l) l
    WHERE j.seq = l.seq
    RETURNING j.lease_token, j.cancel_requested`

/**
 * The purge: deletes the finished jobs of `states` that ended before `before`; returns how many.
 * Locked in `seq` order first, as every statement that waits for several jobs' locks (see
 * `settleStatement`): deleted in the scan's order (the table's, or wp_job_finished's, by end time)
 * a purge holding a job and waiting for another deadlocked with a heartbeat or a settle that held
 * the other (a statement whose snapshot predates a settle still locks the settled job, then skips
 * it) and waited for the first, and with a purge whose plan read the rows in another order.
 * Exported for the lock-order tests.
 */
export const purgeStatement = (
  sql: PgClient.PgClient,
  S: Fragment,
  before: number,
  states: ReadonlyArray<State>,
  now: Fragment | number
) =>
  sql<{ n: bigint }>`WITH gone AS (
      DELETE FROM ${S}.wp_job j
      USING (SELECT l.seq FROM ${S}.wp_job l
        WHERE l.state IN ('succeeded', 'dead', 'cancelled') AND l.state = ANY(${states}) AND l.finished_at < ${before}
        ORDER BY l.seq FOR UPDATE OF l) l
      WHERE j.seq = l.seq AND ${deleting(sql, now)}
      RETURNING 1
    ) SELECT COUNT(*) AS n FROM gone`

/**
 * A batch of a queue's retention for one final state: deletes at most `batch` of its jobs of `state`
 * that ended before `before`, or those past the newest `keep` (by end time, then creation), oldest
 * first. The newest `keep` are only read, to find the cut (the first job past them), not locked: as
 * an `OFFSET` under the lock, every batch locked them all (a retention keeping 100,000 wrote a lock
 * on 100,000 rows per batch). The rows another statement holds are skipped, not waited for (SKIP
 * LOCKED): consumers running it together delete each job once and never deadlock, with each other
 * or with a purge or a settle. Skipping a locked job among the newest keeps one more, never fewer.
 * Read from `wp_job_retained`: the age's cut is a row comparison on its columns, which only that
 * index serves as a bound. As `finished_at < $before` the prepared statement's generic plan (taken
 * after five runs) read `wp_job_finished` from the oldest end, every queue's finished jobs, filtered
 * for this queue's: a queue with a retention among millions of other queues' jobs kept read them
 * all at every batch. The batch's rows are deleted by their keys (an array of them, read first): joined
 * to the table (`DELETE ... USING`), a batch of a thousand was planned as a hash join over a
 * read of the whole table. Exported for the tests.
 */
export const retainStatement = (
  sql: PgClient.PgClient,
  S: Fragment,
  queue: string,
  state: State,
  batch: number,
  past: { readonly before: number } | { readonly keep: number },
  now: Fragment | number
) =>
  "before" in past
    ? sql<{ n: bigint }>`WITH gone AS (
      DELETE FROM ${S}.wp_job j
      WHERE j.seq = ANY(ARRAY(SELECT l.seq FROM ${S}.wp_job l
        WHERE l.queue = ${queue} AND l.state = ${state} AND l.state IN ('succeeded', 'dead', 'cancelled')
          AND (l.queue, l.state, l.finished_at) < (${queue}, ${state}, ${past.before}::bigint)
        ORDER BY l.finished_at, l.seq LIMIT ${batch}
        FOR UPDATE SKIP LOCKED)) AND ${deleting(sql, now)}
      RETURNING 1
    ) SELECT COUNT(*) AS n FROM gone`
    : sql<{ n: bigint }>`WITH cut AS (
      SELECT c.finished_at, c.seq FROM ${S}.wp_job c
      WHERE c.queue = ${queue} AND c.state = ${state} AND c.state IN ('succeeded', 'dead', 'cancelled')
      ORDER BY c.finished_at DESC, c.seq DESC OFFSET ${past.keep} LIMIT 1
    ), gone AS (
      DELETE FROM ${S}.wp_job j
      WHERE j.seq = ANY(ARRAY(SELECT l.seq FROM ${S}.wp_job l
        WHERE l.queue = ${queue} AND l.state = ${state} AND l.state IN ('succeeded', 'dead', 'cancelled')
          AND (l.queue, l.state, l.finished_at, l.seq)
            <= (${queue}, ${state}, (SELECT finished_at FROM cut), (SELECT seq FROM cut))
        ORDER BY l.finished_at, l.seq LIMIT ${batch}
        FOR UPDATE SKIP LOCKED)) AND ${deleting(sql, now)}
      RETURNING 1
    ) SELECT COUNT(*) AS n FROM gone`

/**
 * A look of a retention by count (see `retainCount.ts`), one statement's snapshot: how many of a
 * queue's finished jobs of a state came after `from` (at most `bound`), and the newest of them.
 * Along `wp_job_retained`, reading only those: the end time's own bound (beside the row comparison
 * that orders by it and seq) is what the planner estimates the read by; the row comparison alone
 * was estimated at half the queue's jobs, and read as a scan of the whole table (204 ms for
 * 400,000 rows, to count none). Exported for the tests.
 */
export const retainLookStatement = (
  sql: PgClient.PgClient,
  S: Fragment,
  queue: string,
  state: State,
  from: RetainCount.Newest,
  bound: number
) =>
  sql<{ n: bigint; finishedAt: string | null; seq: string | null }>`WITH newest AS (
      SELECT l.finished_at, l.seq FROM ${S}.wp_job l
      WHERE l.queue = ${queue} AND l.state = ${state} AND l.state IN ('succeeded', 'dead', 'cancelled')
      ORDER BY l.finished_at DESC, l.seq DESC LIMIT 1
    ) SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM ${S}.wp_job c
        WHERE c.queue = ${queue} AND c.state = ${state} AND c.state IN ('succeeded', 'dead', 'cancelled')
          AND c.finished_at >= ${from.finishedAt}::bigint
          AND (c.queue, c.state, c.finished_at, c.seq) > (${queue}, ${state}, ${from.finishedAt}::bigint, ${from.seq}::bigint)
        LIMIT ${bound}) x) AS n,
      (SELECT finished_at FROM newest)::text AS "finishedAt", (SELECT seq FROM newest)::text AS seq`

/**
 * A queue's jobs by state, each from an index that holds the queue's jobs of that state (no read of
 * the whole table, every queue's jobs: the plan test in durable-scale-hostile): its queued jobs by
 * priority, delayed apart from waiting at `now` (`wp_job_ready`), its running, dead and cancelled
 * ones (`wp_job_counted`), its succeeded and dead ones together (`wp_job_settled`: `settled` less
 * `dead` is `succeeded`, one statement's snapshot for both), and its settings. See `countsOf`.
 */
export const countsStatement = (sql: PgClient.PgClient, S: Fragment, queue: string, now: number | Fragment) =>
  sql<{ kind: string; priority: number | null; n: bigint }>`
    SELECT CASE WHEN visible_at > ${now} THEN 'delayed' ELSE 'waiting' END AS kind, priority, COUNT(*) AS n
      FROM ${S}.wp_job WHERE queue = ${queue} AND state = 'queued' GROUP BY 1, 2
    UNION ALL
    SELECT state, NULL, COUNT(*) FROM ${S}.wp_job
      WHERE queue = ${queue} AND state IN ('running', 'dead', 'cancelled') GROUP BY state
    UNION ALL
    SELECT 'settled', NULL, COUNT(*) FROM ${S}.wp_job WHERE queue = ${queue} AND state IN ('succeeded', 'dead')
    UNION ALL
    SELECT 'blocked', NULL, COUNT(*) FROM ${S}.wp_job WHERE queue = ${queue} AND state = 'blocked'
    UNION ALL
    SELECT 'paused', NULL, 1 FROM ${S}.wp_queue WHERE name = ${queue} AND paused
    UNION ALL
    SELECT 'aging', aging_ms, 1 FROM ${S}.wp_queue WHERE name = ${queue} AND aging_ms > 0
    UNION ALL
    SELECT 'held', NULL, held_until FROM ${S}.wp_queue WHERE name = ${queue} AND held_until > ${now}`

/** The counts of `queue` from the rows of its `countsStatement`. */
const countsOf = (
  queue: string,
  rows: ReadonlyArray<{ kind: string; priority: number | null; n: bigint | number | string }>
): Omit<QueueCounts, "rateLimit"> => {
  const tally = { blocked: 0, waiting: 0, delayed: 0, running: 0, succeeded: 0, dead: 0, cancelled: 0 }
  const byPriority = new Map<number, number>()
  let settled = 0
  let paused = false
  let aging = 0
  let heldUntil = 0
  for (const row of rows) {
    const n = Number(row.n)
    if (row.kind === "waiting" || row.kind === "delayed") {
      tally[row.kind] += n
      byPriority.set(row.priority!, (byPriority.get(row.priority!) ?? 0) + n)
    } else if (row.kind === "settled") settled = n
    else if (row.kind === "paused") paused = true
    else if (row.kind === "aging") aging = Number(row.priority)
    else if (row.kind === "held") heldUntil = n
    else if (row.kind in tally) tally[row.kind as keyof typeof tally] += n
  }
  tally.succeeded = settled - tally.dead
  const queuedByPriority = Array.from(byPriority, ([priority, count]) => ({ priority, count })).sort((a, b) => b.priority - a.priority)
  // held past the statement's now: shown whatever the clock here says
  return { queue, paused, aging, ...tally, queuedByPriority, ...holdShown(heldUntil, 0) }
}

/**
 * A queue's channel: a prefix and the first hex digits of the SHA-256 of `<schema>.<queue>`
 * (a channel name is an identifier of at most 63 bytes; a queue name is any string). Postgres
 * computes the same name for NOTIFY (sha256(), not md5(), which a FIPS server refuses).
 */
const CHANNEL_PREFIX = "workpool_q_"
const CHANNEL_HASH = 40

/** The channel of `queue`'s wake-ups in `schema`. */
export const queueChannel = (schema: string, queue: string) =>
  CHANNEL_PREFIX + createHash("sha256").update(`${schema}.${queue}`, "utf8").digest("hex").slice(0, CHANNEL_HASH)

/**
 * The schema's channel (cancels): `workpool_<schema>`, or, for a schema name too long for that to
 * be an identifier (a channel is at most 63 bytes, a schema name up to 63), a prefix and the first
 * hex digits of its SHA-256. Postgres refuses a NOTIFY on a longer name, and the listener's LISTEN
 * fails: such a store had no cancels and no wake-ups from other instances.
 */
export const schemaChannel = (schema: string) =>
  schema.length <= 63 - "workpool_".length
    ? `workpool_${schema}`
    : "workpool_s_" + createHash("sha256").update(schema, "utf8").digest("hex").slice(0, CHANNEL_HASH)

/**
 * How long the listener keeps hearing a queue no consumer of this store instance waits on any
 * more: not a LISTEN at every idle moment of a consumer that claims between waits (each new one
 * costs its consumers one claim), but soon not the NOTIFYs of a queue whose consumers are all busy
 * or paused, who would claim its jobs anyway (hearing one cost ~80 µs of CPU on a loaded machine).
 */
const LINGER = 1000

const fail = (operation: string, inApplications = false) => (cause: unknown) => {
  const reason = reasonOf(cause) + goneHint(cause) + readOnlyHint(cause, inApplications)
  // the SQLSTATE, for an application that retries its transaction on 40001 or 40P01 (docs/durable.md)
  const sqlState = sqlStateOf(cause)
  return new StoreError(sqlState === undefined ? { operation, reason } : { operation, reason, sqlState })
}

/**
 * SQLSTATE 25006 (read_only_sql_transaction): a write on a server that takes none, a hot standby
 * (in recovery) or one with `default_transaction_read_only` on. Reached through a URL that moved
 * (a failover's DNS name, VIP or proxy) a session stays on the server it opened on: a standby's
 * sessions, opened while the name still pointed there, failed every write for as long as the pool
 * kept them, which a busy store's pool does for ever (a session closes after a minute unused). On
 * its own client the store ends all its sessions then, as a cut connection would, and the next
 * statements connect again through the URL (test/durable-postgres-failover-hostile.test.ts). On the
 * application's client (`layerClient`) the pool is the application's: the error says why.
 */
const READ_ONLY = "25006"

/** The least time (ms) between two drops of the store's sessions for a write refused as read-only. */
export const READ_ONLY_DROP_EVERY = 1000

const readOnlyHint = (cause: unknown, inApplications: boolean): string =>
  sqlStateOf(cause) !== READ_ONLY
    ? ""
    : inApplications
    ? " (the application's transaction it ran in is read-only, BEGIN READ ONLY or SET TRANSACTION READ ONLY, or the server is: a standby in recovery, reached before or during a failover or through a replica's address, or default_transaction_read_only is on)"
    : " (the server is read-only: a standby in recovery, reached before or during a failover or through a replica's address, or default_transaction_read_only is on; writes work again once the URL reaches the primary)"

/**
 * The SQLSTATE of the driver's error under `cause` (SqlError wraps it, sometimes twice), if any:
 * 42P01 (undefined_table), 3F000 (invalid_schema_name) say the store's tables are gone.
 */
const sqlStateOf = (cause: unknown): string | undefined => {
  for (let error = cause as { code?: unknown; cause?: unknown } | undefined, depth = 0; error != null && depth < 4; error = error.cause as typeof error, depth++) {
    if (typeof error.code === "string" && error.code.length === 5) return error.code
  }
  return undefined
}

/**
 * Only an open makes the store's tables (it reads their version then, not at each statement): a
 * schema dropped, or a database recreated, under a running store fails every statement until it is
 * opened again, which the error says.
 */
const goneHint = (cause: unknown): string => {
  const state = sqlStateOf(cause)
  return state === "42P01" || state === "3F000"
    ? " (the store's tables are gone: their schema was dropped or the database recreated while the store ran; open the store again to recreate them)"
    : ""
}

/**
 * The driver's error of a transaction whose session ended in it (pg_terminate_backend, an
 * idle_in_transaction_session_timeout, a restart, a network cut): its statement fails, then its
 * ROLLBACK, which effect's `withTransaction` makes a defect. A cause of those defects only (and
 * typed failures) is that error, to be failed with; any other defect is a bug, left a defect.
 */
const lostTransaction = (cause: Cause.Cause<unknown>): SqlError.SqlError | undefined => {
  let found: SqlError.SqlError | undefined
  for (const reason of cause.reasons) {
    if (reason._tag === "Interrupt") return undefined
    if (reason._tag === "Die") {
      if (!SqlError.isSqlError(reason.defect)) return undefined
      found ??= reason.defect
    }
  }
  return found
}

/**
 * Before a migration's `CREATE INDEX IF NOT EXISTS` (an index an operator may build first with
 * CREATE INDEX CONCURRENTLY, docs/durable.md "Rolling upgrades"): drops an index of that name in
 * `schema` that is not the one the statement builds, so that the statement builds it. IF NOT EXISTS
 * looks at the name only: it kept an invalid one, which a failed or cancelled concurrent build
 * leaves (the planner never uses it, and the claims it is for read the table instead), and a
 * pre-build with a typo (the dedup index built not UNIQUE, or over other rows: renamed to
 * `wp_job_dedup`, dedup broke). A valid one is compared with the statement's own build on an empty
 * copy of the table's columns: same uniqueness, method, columns and predicate, as `pg_get_indexdef`
 * gives them. The copy is made in the schema itself, dropped at once (and with the migration's
 * transaction if it fails): as a temporary table it needed the database's TEMP right, which a
 * migrating role need not have, and its refusal read as a missing grant on the schema.
 */
const dropStaleIndex = (sql: PgClient.PgClient, schema: string, statement: string) =>
  Effect.gen(function*() {
    const head = /CREATE (UNIQUE )?INDEX IF NOT EXISTS (\w+) ON (.+?)\.(\w+) \(/.exec(statement)
    if (head === null) return
    const [unique, name, table] = [head[1] ?? "", head[2]!, head[4]!]
    const [found] = yield* sql<{ valid: boolean; def: string }>`
      SELECT i.indisvalid AS valid, pg_get_indexdef(i.indexrelid) AS def FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ${schema} AND c.relname = ${name}`
    if (found === undefined) return
    if (found.valid) {
      yield* sql.unsafe(`CREATE TABLE "${schema}".wp_shape (LIKE "${schema}".${table})`).raw
      yield* sql.unsafe(statement.replace(head[0], `CREATE ${unique}INDEX wp_shape_index ON "${schema}".wp_shape (`)).raw
      const [built] = yield* sql<{ def: string }>`SELECT pg_get_indexdef(to_regclass(${`"${schema}".wp_shape_index`})) AS def`
      yield* sql.unsafe(`DROP TABLE "${schema}".wp_shape`).raw
      if (indexShape(found.def) === indexShape(built!.def)) return
    }
    yield* sql.unsafe(`DROP INDEX "${schema}".${name}`).raw
  })

/** An index's definition (`pg_get_indexdef`) without its name and table: whether unique, then from its method on. */
const indexShape = (def: string): string => `${def.startsWith("CREATE UNIQUE ")}${def.slice(def.indexOf(" USING "))}`

/**
 * The trigger functions of a schema at this version, each made (CREATE OR REPLACE) by the last
 * migration that names it. Their text can change after their migration landed (17's was edited in
 * place before 0.3.0): the open gives a schema at this version the text of this build when it
 * differs (see `staleTriggers`), unless a newer build's is there: change `TRIGGERS_REVISION` with
 * the text of any of them, or two builds would each put theirs back at every open.
 */
export const TRIGGER_FUNCTIONS = ["wp_dependents_ended", "wp_dependent_deleted"] as const

/** The revision of `TRIGGER_FUNCTIONS`' text, written to wp_meta ('triggers') by whoever writes that text. */
export const TRIGGERS_REVISION = 3

/** The statement that makes trigger function `name` in schema `S` (quoted), as this build has it. */
export const triggerFunction = (S: string, name: string): string =>
  MIGRATIONS.flatMap((migration) => statementsOf(migration(S))).reverse()
    .find((statement) => statement.includes(`CREATE OR REPLACE FUNCTION ${S}.${name}()`))!

/**
 * The trigger functions of `schema` whose text is not this build's (`TRIGGER_FUNCTIONS`), none if
 * a newer build's revision is written there; and whether the store's role may replace them (their
 * owner, or a member of its role).
 */
const staleTriggers = (sql: PgClient.PgClient, S: Fragment, schema: string) =>
  Effect.map(
    sql<{ name: string; body: string; owned: boolean; revision: string | null }>`SELECT p.proname AS name, p.prosrc AS body,
        pg_has_role(p.proowner, 'USAGE') AS owned, (SELECT value FROM ${S}.wp_meta WHERE key = 'triggers') AS revision
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = ${schema} AND p.proname = ANY(${TRIGGER_FUNCTIONS})`,
    (rows) => {
      const newer = rows.some((row) => Number(row.revision ?? 0) > TRIGGERS_REVISION)
      const stale = newer ? [] : rows.filter((row) => row.body !== triggerFunction(`"${schema}"`, row.name).split("$wp$")[1])
      return { stale: stale.map((row) => row.name), owned: stale.every((row) => row.owned) }
    }
  )

/** Writes this build's `TRIGGERS_REVISION` to wp_meta: its trigger functions' text is the schema's. */
const triggersWritten = (sql: PgClient.PgClient, S: Fragment) =>
  sql`INSERT INTO ${S}.wp_meta (key, value) VALUES ('triggers', ${String(TRIGGERS_REVISION)})
    ON CONFLICT (key) DO UPDATE SET value = excluded.value`

/** Whether `stored` (wp_meta's schema_version) is a version this code can use or migrate from. */
const knownVersion = (stored: string): boolean => /^\d{1,9}$/.test(stored) && Number(stored) <= MIGRATIONS.length

const unknownVersion = (schema: string, stored: string) =>
  new Error(`schema "${schema}" has version ${stored}, this code knows versions up to ${MIGRATIONS.length}: upgrade effect-workpool`)

const quoted = (name: string) => `"${name.replaceAll(`"`, `""`)}"`

/**
 * A migration refused for want of a right (SQLSTATE 42501): what to grant, to whom, or who may
 * migrate instead; any other error as it is. `who`: the role and database, once known.
 */
const grantNeeded = (error: unknown, schema: string, who?: { readonly role: string; readonly database: string }): unknown => {
  if (!(SqlError.isSqlError(error) && error.reason._tag === "AuthorizationError")) return error
  const role = who === undefined ? "the store's role" : quoted(who.role)
  const onDatabase = who === undefined ? "" : `, and GRANT CREATE ON DATABASE ${quoted(who.database)} TO ${role} while the schema does not exist`
  return new Error(
    `${reasonOf(error)}: the store's open creates and migrates its tables in schema "${schema}". ` +
      `Grant that (GRANT USAGE, CREATE ON SCHEMA ${quoted(schema)} TO ${role}${onDatabase}) while its tables do not exist, or open the store once ` +
      `(and once after each upgrade of effect-workpool) as the owner of its tables, which a migration of existing tables needs, and grant this one ` +
      `SELECT, INSERT, UPDATE, DELETE on the schema's tables and USAGE on its sequences`
  )
}

/**
 * The driver's own timers (connect timeout, idle connections' time to live) run in real time even
 * when the store's time is the Effect Clock: a TestClock moving hours ahead must not expire them.
 */
const driverTimeOf = (clock: Config["clock"]) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  clock === "effect" ? Effect.provideService(effect, Clock.Clock, Clock.Clock.defaultValue()) : effect

/**
 * How long the listener's close may wait before its session is destroyed. Its close UNLISTENs each
 * channel and waits for the reply (@effect/sql-pg's `listen` finalizer): a frozen server (SIGSTOP,
 * a partition that drops packets) never sends it, and the store's close waited for ever. Past this
 * the session is destroyed (failing that statement); past twice this the close goes on regardless.
 */
export const LISTENER_CLOSE_GRACE = 1000

/**
 * How often (ms) the listener asks its session's server for an answer, however idle. A listener sends
 * nothing while its consumers wait: a failover that left its socket open to a host that is gone (a
 * VIP or DNS name moved, the old primary's host down or cut off, a proxy keeping the client's end)
 * left it waiting for NOTIFYs that never came, for as long as the socket stayed open (hours, without
 * TCP keepalive; for ever through a proxy that answers the keepalive itself), and its idle consumers
 * heard no other process's jobs until their `poll`. A ping sent there is reset or goes unanswered
 * (`LISTENER_PING_BOUND`), and the listener starts over on a new session, through the URL
 * (test/durable-postgres-failover-hostile.test.ts, 'a VIP moved').
 */
export const LISTENER_PING = 10_000

/** The listener's ping, named so that it tells itself apart in `pg_stat_activity`. */
export const LISTENER_PING_QUERY = "SELECT 1 AS workpool_listener_ping"

/** How long (ms) the listener's ping waits for its answer before its session is given up. */
export const LISTENER_PING_BOUND = 5_000

/** The listener's ping on `connection` (its pinned `session`): unanswered in time, the session is destroyed and the ping fails. */
const ping = (session: PgConnection.PgConnection, connection: PgConnection.PgConnection) =>
  Effect.raceFirst(
    connection.query(LISTENER_PING_QUERY, [], false),
    // destroyed before the query is interrupted: an interrupted query waits for its server's answer
    Effect.andThen(
      Effect.sleep(LISTENER_PING_BOUND),
      Effect.suspend(() => {
        destroySession(session)
        return Effect.fail(new Error(`the listener's server did not answer its ping within ${LISTENER_PING_BOUND} ms`))
      })
    )
  )

/**
 * Ends a session at once, failing its statements in flight: @effect/sql-pg 4.0.5's connection has
 * no public close, only its scope's, which this cannot reach. Its own `closeUnsafe` (it ends the
 * socket with a Terminate, which a frozen server never reads), then its socket destroyed. Either
 * missing (another version), nothing: the close's bound above still holds.
 */
const destroySession = (session: PgConnection.PgConnection) => {
  const internal = session as unknown as { closeUnsafe?: () => void; session?: { socket?: { destroy?: () => void } } }
  try {
    internal.closeUnsafe?.()
    internal.session?.socket?.destroy?.()
  } catch {
    // already closed
  }
}

/**
 * Why the store refuses a client whose sessions are not kept: a pooler in transaction or statement
 * mode between (PgBouncer's `pool_mode = transaction`, the pooled ports of managed offerings). Its
 * server connection changes between transactions, and the store's listener, which LISTENs on one,
 * would hear nothing (a NOTIFY reaches a server connection no client is linked to: PgBouncer drops
 * it, and idle consumers wait their whole `poll` for jobs from other processes), while the driver's
 * prepared statements are left on one server connection and looked for on another.
 */
export const TRANSACTION_POOLING =
  "the client's sessions are not kept from one statement to the next: a pooler in transaction or statement mode is between (PgBouncer's pool_mode = transaction, Supabase's port 6543, Neon's -pooler host, Heroku's connection pooling). The store needs sessions of its own (its listener holds a LISTEN; the driver prepares statements): give it a URL of session pooling, or of the server itself"

/** SQLSTATE 53300: the server's or the role's connection limit reached. */
const TOO_MANY_CONNECTIONS = "53300"

/** Rounds of `sessionsKept`'s look: each finds a transaction pooler mostly, together all but surely. */
const SESSION_PROBES = 6

/**
 * Whether the client's connections keep their server sessions: a session of its own reads its
 * backend's pid, then, `SESSION_PROBES` times, a statement on the client reads one and the session
 * reads its own twice. Through a pooler in session mode (or none) the session's pid is its own for
 * as long as it is open: the same each time, and never the client's. In transaction mode its server
 * connection goes back to the pooler after each statement: PgBouncer hands the most recently
 * released one out first, so the client's statement mostly gets the session's, or the session gets
 * another; with `server_round_robin` (the oldest first) the session's next statement gets another.
 * Other clients busy on the pooler can make one round miss (one in ten, with eight of them busy):
 * hence the rounds. Unprepared: a prepared statement would fail through such a pooler before the
 * pooler is seen. (A NOTIFY to a LISTEN of the session's, which no transaction pooler delivers,
 * would be a surer test, but it reaches whichever client holds that server connection then: an
 * application's client of the same pooler, whose driver need not expect it.)
 */
const sessionsKept = (sql: PgClient.PgClient) =>
  Effect.scoped(Effect.gen(function*() {
    const clientPid = Effect.map(sql<{ pid: unknown }>`SELECT pg_backend_pid() AS pid`.unprepared, ([row]) => String(row?.pid))
    // the client's first: its connection is open before the session's is asked for
    const first = yield* clientPid
    const opened = yield* Effect.exit(PgConnection.make({ ...sql.config, multiplex: false }))
    // a role or server at its connection limit (CONNECTION LIMIT 1, a small managed plan) opened a
    // store that only enqueues on one connection before the look: it still does, unlooked
    if (Exit.isFailure(opened) && sqlStateOf(Cause.squash(opened.cause)) === TOO_MANY_CONNECTIONS) return true
    const session = yield* opened
    const pid = Effect.map(session.query("SELECT pg_backend_pid() AS pid", [], false), (result) => String(result.rows[0]?.pid))
    const own = yield* pid
    if (first === own) return false
    for (let round = 0; round < SESSION_PROBES; round++) {
      if ((yield* clientPid) === own || (yield* pid) !== own || (yield* pid) !== own) return false
    }
    return true
  }))

/**
 * How long a read (a job, a list, a queue's counts or latencies) waits for its answer before it fails
 * with `StoreError`: the bound of the store's background ask of the server's time, the other read
 * the store makes of its own.
 */
export const READ_BOUND = ServerTime.ASK_BOUND

/**
 * How long a write whose caller was interrupted (a producer's timeout, a repeat's close, a
 * consumer's bound on a beat) waits for its statement's cancel: on a live server the cancel is
 * confirmed in milliseconds, and when the caller returns the write either committed before it or
 * never will (a repeat closed while its tick's insert waited for a lock stored that tick once the
 * lock was released); on a frozen server the caller returns after this, the write left draining
 * (it may still commit).
 */
export const CANCEL_SETTLE = 500

/** How long the store's close may wait for its server before its sessions are destroyed (see `make`). */
export const CLIENT_CLOSE_GRACE = 1000

/**
 * Where the sessions of `url` connect, as @effect/sql-pg resolves it (its host and port, a `host` or
 * `port` parameter overriding them, the last one of a parameter given twice, a host that is a
 * directory naming a Unix socket), or undefined if it cannot be told: then the driver connects on
 * its own (and its sessions are not tracked).
 */
const target = (url: string): Net.NetConnectOpts | undefined => {
  try {
    const parsed = new URL(url)
    let host: string | undefined = parsed.hostname === ""
      ? undefined
      : parsed.hostname.startsWith("[") && parsed.hostname.endsWith("]")
      ? parsed.hostname.slice(1, -1)
      : decodeURIComponent(parsed.hostname)
    let port = parsed.port === "" ? 5432 : Number(parsed.port)
    // in order, the last of a parameter given twice winning, as the driver reads them (and libpq)
    for (const [key, value] of parsed.searchParams) {
      if (key === "host") host = value
      else if (key === "port") port = Number(value)
    }
    // an empty `host=` is kept, as the driver keeps it (Node connects an empty host to localhost)
    host ??= "localhost"
    if (!Number.isInteger(port) || port <= 0 || port > 65535) return undefined
    return host.startsWith("/") ? { path: `${host}/.s.PGSQL.${port}` } : { host, port, noDelay: true }
  } catch {
    return undefined
  }
}

/**
 * The store on a client of its own, opened from `cfg.url`.
 *
 * Its close waits for its statements in flight: the pool's (effect's Pool waits for a connection in
 * use to come back; a consumer's claim in flight is uninterruptible), the listener's UNLISTEN. A
 * frozen server (SIGSTOP, a partition that drops packets) never answers them, and the close waited
 * for ever. The client's sockets are its own (the driver's `stream`), and those still open
 * `CLIENT_CLOSE_GRACE` after the store's close began are destroyed: those statements fail, and the
 * close ends (a socket ended by a close that ended sooner, which the server has not closed, too).
 */
export const make = (cfg: Config): Effect.Effect<Store, StoreError, Scope.Scope> =>
  Effect.gen(function*() {
    const sockets = new Set<Net.Socket>()
    const to = target(Redacted.value(cfg.url))
    let timer: ReturnType<typeof setTimeout> | undefined
    /** The sockets still open `CLIENT_CLOSE_GRACE` from now are destroyed. */
    const destroyLater = () => {
      if (timer !== undefined) return
      timer = setTimeout(() => {
        for (const socket of sockets) socket.destroy()
      }, CLIENT_CLOSE_GRACE)
      timer.unref()
    }
    // run last, after the client's close. A socket may still be open: a session the pool has ended
    // (a Terminate, then its end) that the server has not closed yet; a frozen server never does, and
    // the socket would stay open (holding the process) until it wakes. The timer goes on for those
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        if (sockets.size === 0) clearTimeout(timer)
        else destroyLater()
      })
    )
    /**
     * Ends every session open now (see `READ_ONLY`), resolving once the driver has seen them closed:
     * their statements in flight fail, as at a cut connection, and the next ones connect again,
     * through the URL's DNS name, VIP or proxy. At most once per `READ_ONLY_DROP_EVERY`: on a primary
     * made read-only (`default_transaction_read_only`, a managed server's disk-full guard) every write
     * is refused, and a drop at each one failed half the reads meanwhile.
     */
    let droppedAt = Number.NEGATIVE_INFINITY
    const dropSessions = () => {
      if (Date.now() - droppedAt < READ_ONLY_DROP_EVERY) return Promise.resolve()
      droppedAt = Date.now()
      return Promise.all(Array.from(sockets, (socket) =>
        new Promise<void>((resolve) => {
          socket.once("close", () => resolve())
          socket.destroy()
        }))).then(() => undefined)
    }
    const open = (bounded: boolean) =>
      PgClient.make({
        url: cfg.url,
        maxConnections: cfg.maxConnections,
        connectTimeout: cfg.connectTimeout,
        applicationName: "effect-workpool",
        // every transaction on this pool is the store's: the bound is the session's default, sent
        // in the connection's startup packet, and `transaction` runs no set_config (a round trip of
        // each rate-limited claim). Outside a transaction it does nothing (the listener's session
        // idles there). The URL's own `options` (startupOptions) are left as they are
        startupParameters: bounded ? { idle_in_transaction_session_timeout: String(IDLE_IN_TRANSACTION) } : undefined,
        stream: to === undefined ? undefined : () => {
          const socket = Net.connect(to)
          sockets.add(socket)
          socket.once("close", () => sockets.delete(socket))
          return socket
        }
      }).pipe(
        Effect.provideServiceEffect(Reactivity.Reactivity, Reactivity.make),
        driverTimeOf(cfg.clock),
        Effect.mapError(fail("open")),
        Effect.flatMap((sql) => makeWith(sql, cfg, { bounded, dropSessions }))
      )
    const scope = yield* Effect.scope
    const first = yield* Scope.fork(scope)
    // a pooler between (PgBouncer, session pooling) refuses a startup parameter it does not know:
    // then without it, each transaction setting its bound as on the application's client
    const store = yield* open(true).pipe(
      Scope.provide(first),
      Effect.catchIf(
        (error) => error.reason.includes("unsupported startup parameter"),
        () => Effect.andThen(Scope.close(first, Exit.void), open(false))
      )
    )
    // run first: the store's close starts here
    yield* Effect.addFinalizer(() => Effect.sync(destroyLater))
    return store
  })

/** Checks the options of a store on the caller's own client (its schema). */
export const clientOptions = (options: { readonly schema?: unknown }): Effect.Effect<Pick<Config, "schema" | "clock">, StoreError> =>
  Effect.mapError(
    config.checkPoolOptions(() => {
      config.object("options", options)
      config.onlyKeys("", options, ["schema"], PG_HINTS)
      return { schema: schemaOf(options.schema), clock: "server" as const }
    }),
    config.storeOptionError
  )

/**
 * Jobs per INSERT of `enqueueAll` (one JSON parameter, see `insertAll`): bounds a statement's size
 * (a few MB), and one call of 10,000 items still runs in several statements of one transaction.
 */
const PG_BATCH = 5000

/**
 * Payload characters per INSERT of `enqueueAll` (one more job goes in past it): 5,000 large payloads
 * made a JSON text past V8's longest string (2 ** 29 - 24), a RangeError before anything was sent.
 */
const PG_BATCH_CHARS = 32 * 1024 * 1024

/** `jobs` in runs of at most `PG_BATCH` jobs and about `PG_BATCH_CHARS` of payload, one job at least. */
const insertRuns = <J extends { readonly payload: string }>(jobs: ReadonlyArray<J>): Array<Array<J>> => {
  const runs: Array<Array<J>> = []
  let from = 0
  let chars = 0
  for (let i = 0; i < jobs.length; i++) {
    chars += jobs[i]!.payload.length
    if (i + 1 - from === PG_BATCH || chars >= PG_BATCH_CHARS || i + 1 === jobs.length) {
      runs.push(jobs.slice(from, i + 1))
      from = i + 1
      chars = 0
    }
  }
  return runs
}

/** A new job's dependency not in the store: its enqueue's transaction rolled back, and `JobNotFound` said. */
class MissingDependency {
  readonly id: string
  constructor(id: string) {
    this.id = id
  }
}

/**
 * Whether an id can be no job's: one with a NUL (a Postgres text holds none, and a query with one
 * fails with "invalid byte sequence": a caller's bad id, say from a URL, is no store failure).
 */
const noSuchId = (id: string): boolean => id.includes("\u0000")

/**
 * The store on a given client: the caller's own `PgClient` (its pool, its settings), or one `make`
 * opened. The client must keep sessions (LISTEN holds one connection): not PgBouncer's transaction
 * mode, refused at open (`sessionsKept`). `ownClient`: the client is the one `make` opened: with
 * `bounded`, its sessions start with the store's idle bound (`IDLE_IN_TRANSACTION`), so its
 * transactions need not set it (checked at open: a pooler may drop the parameter); `dropSessions`
 * ends every session it has open, called when a statement finds its server read-only (see `READ_ONLY`).
 */
export const makeWith = (
  sql: PgClient.PgClient,
  cfg: Pick<Config, "schema" | "clock">,
  ownClient?: { readonly bounded: boolean; readonly dropSessions: () => Promise<void> }
): Effect.Effect<Store, StoreError, Scope.Scope> =>
  Effect.gen(function*() {
    const clock = yield* Clock.Clock
    const driverTime = driverTimeOf(cfg.clock)
    const S = sql.literal(`"${cfg.schema}"`)
    const channel = schemaChannel(cfg.schema)
    /**
     * The payload of this store instance's NOTIFY of a new rate limit: its own listener ignores it
     * (its waiters were woken when the change committed here; woken again by the echo, each
     * held-back consumer claimed twice per change), the other instances' wake theirs.
     */
    const rateChanged = `rate:${randomUUID()}`
    const signal = makeSignal({ clock })
    const cancels = makeSignal()
    const closing = yield* Closing.make([signal, cancels])
    // its close (after the settle writer's and the listener's) interrupts the operations still
    // running and waits for their statements: ended by the server, by the driver's drain bound
    // (5 s), or, on a client of the store's own, by its sockets' destruction (`CLIENT_CLOSE_GRACE`)
    const detached = yield* Detached.make(closing.close)

    /** The server's time in ms as an SQL expression, read `at` its transaction's start or the moment the statement reads it. */
    const serverTime = (at: "now()" | "clock_timestamp()"): Fragment => sql.literal(`floor(extract(epoch from ${at}) * 1000)::bigint`)

    /** The store's time as an SQL expression: a parameter from the Effect Clock, or the server's. */
    const NOW = (): Fragment | number => cfg.clock === "effect" ? clock.currentTimeMillisUnsafe() : serverTime("now()")

    /**
     * The store's time when a statement looks at it, for a job's `notAfter`: on the server's clock,
     * `clock_timestamp()`, not `now()` (the transaction's start: an insert held by a lock on the
     * table would be checked against the time it was sent, and stored however late).
     */
    const CHECKED_AT = (): Fragment | number => cfg.clock === "effect" ? clock.currentTimeMillisUnsafe() : serverTime("clock_timestamp()")

    /**
     * A statement as one store operation, on a fiber of its own (`Detached`): a caller that stops
     * waiting (interrupted, or past a read's bound) returns at once, the statement's drain going on
     * in the background. Failing when the store is closed: on the caller's client (layerClient), which
     * outlives the store, it would still work.
     */
    const run = <A>(operation: string, effect: Effect.Effect<A, StoreError>, bound: number, settle: number): Effect.Effect<A, StoreError> =>
      Effect.suspend(() =>
        closing.isClosed()
          ? Effect.fail(Closing.closedError(operation))
          : detached.run(effect, {
            bound,
            late: () => new StoreError({ operation, reason: `no answer within ${bound} ms (the server frozen or unreachable?)` }),
            settle
          }).pipe(
            // interrupted by the store's close, its caller still waiting
            Effect.catchCause((cause) =>
              closing.isClosed() && Cause.hasInterruptsOnly(cause) ? Effect.fail(Closing.cutError(operation)) : Effect.failCause(cause)
            )
          )
      )

    /** Whether the statement runs in a transaction of the application's (`layerClient`), not one the store opened. */
    const inApplications: Effect.Effect<boolean> = Effect.gen(function*() {
      return (yield* Effect.serviceOption(sql.transactionService))._tag === "Some" && !(yield* OwnPin)
    })

    const statement = <A>(operation: string, effect: Effect.Effect<A, unknown>): Effect.Effect<A, StoreError> =>
      effect.pipe(
        driverTime,
        // its sessions closed before the caller hears (a next statement would take one that is closing)
        Effect.tapError((error) => ownClient !== undefined && sqlStateOf(error) === READ_ONLY ? Effect.promise(ownClient.dropSessions) : Effect.void),
        // inside the application's transaction (layerClient) a write refused as read-only may be its
        // own doing (BEGIN READ ONLY): the hint says so rather than only a failover
        Effect.catch((error) => Effect.flatMap(inApplications, (inApp) => Effect.fail(fail(operation, inApp)(error)))),
        // the pool's close interrupts the queries under it: the caller (an awaiter, a producer)
        // gets a typed error, not an interruption it never asked for
        Effect.catchCause((cause) => {
          if (closing.isClosed() && Cause.hasInterruptsOnly(cause)) return Effect.fail(Closing.closedError(operation))
          const lost = lostTransaction(cause)
          return lost === undefined ? Effect.failCause(cause) : Effect.fail(fail(operation)(lost))
        })
      )

    /**
     * Runs a statement that writes; its change wakes this process's waiters (even if its caller has
     * left): at once, or (`changed` gives a number) when the job it made visible later is due, that
     * many ms from now; with `queue`, only the consumers of that queue (and the awaiters). Not bounded:
     * a write given up may still commit, so its caller (a consumer, which bounds its beats and reaps;
     * a producer's own timeout) decides how long to wait.
     */
    const op = <A>(
      operation: string,
      effect: Effect.Effect<A, unknown>,
      changed: (a: A) => boolean | number = () => false,
      queue?: string
    ): Effect.Effect<A, StoreError> => written(operation, pinned(effect), changed, queue)

    /**
     * A write's statements on a connection of their own: on a multiplexed client (the caller's own,
     * `multiplex: true`) an unpinned statement shares its connection, and the driver cannot cancel
     * it (the cancel could end another fiber's): interrupted, its caller returned at once and the
     * write committed later (once a lock it waited for was released). A transaction pins one. Inside
     * the application's transaction the pin is a savepoint of it, not the store's own (`transaction`
     * must leave that transaction's bounds alone).
     */
    const pinned: <A, E>(effect: Effect.Effect<A, E>) => Effect.Effect<A, E | SqlError.SqlError> = sql.config.multiplex === true
      ? (effect) =>
        Effect.flatMap(Effect.serviceOption(sql.transactionService), (outer) =>
          sql.withTransaction(outer._tag === "Some" ? effect : Effect.provideService(effect, OwnPin, true)))
      : (effect) => effect

    /**
     * A transaction of the store's statements, bounded while it idles (`IDLE_IN_TRANSACTION`). One
     * inside the application's transaction (its client's, `layerClient`) is a savepoint of it, and
     * its bounds are the application's: it is left as it is. One inside the store's own pin of a
     * write (`pinned`, on a multiplexed client) bounds that. On the store's own client the bound is
     * each session's default (see `make`): nothing to set.
     */
    let sessionBounded = false
    const transaction = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      sessionBounded ? sql.withTransaction(effect) : Effect.gen(function*() {
        return yield* sql.withTransaction(
          (yield* inApplications)
            ? effect
            : Effect.andThen(sql`SELECT set_config('idle_in_transaction_session_timeout', ${String(IDLE_IN_TRANSACTION)}, true)`, effect)
        )
      })

    /**
     * A transaction of the store's own run again when it is a deadlock's victim, `DEADLOCK_TRIES`
     * times in all; as it is inside the application's transaction (a savepoint of that one, whose
     * other locks may be the cycle's: the application retries the whole of it).
     */
    const deadlockRetried = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
      Effect.flatMap(inApplications, (inApp) => inApp ? effect : Effect.retry(effect, { while: isDeadlock, times: DEADLOCK_TRIES - 1 }))

    /** `op` without the pin: for a write whose statement another fiber runs (a batched settle's). */
    const written = <A>(
      operation: string,
      effect: Effect.Effect<A, unknown>,
      changed: (a: A) => boolean | number = () => false,
      queue?: string
    ): Effect.Effect<A, StoreError> =>
      Effect.andThen(
        foreignTransaction(operation),
        run(
          operation,
          Effect.tap(statement(operation, effect), (a) => {
            const change = changed(a)
            return change === false ? Effect.void : Effect.sync(() => change === true ? signal.notify(queue) : signal.notifyIn(change, queue))
          }),
          0,
          CANCEL_SETTLE
        )
      )

    /**
     * On the application's client (`layerClient`), a write made inside a transaction of another SQL
     * client than the store's (two `PgClient` instances: two `PgClient.layer` values, or one built
     * twice) commits on its own: an enqueue "in the transaction" stayed when the transaction rolled
     * back, and nothing said so. Logged once per store instance; not an error, since writing to
     * another database than the transaction's can be meant.
     */
    let foreignWarned = ownClient !== undefined
    const foreignTransaction = (operation: string): Effect.Effect<void> =>
      foreignWarned ? Effect.void : Effect.withFiber((fiber) => {
        if (!inOtherTransaction(fiber.context, sql.transactionService.key)) return Effect.void
        foreignWarned = true
        return Effect.logWarning(
          `effect-workpool: a ${operation} of the job store ran inside a transaction of another SQL client than the store's: it commits on its own, not with that transaction. To enqueue in your transaction, give PgJobStore.layerClient the PgClient your queries use (one layer, built once)`
        )
      })

    /**
     * Runs a statement that only reads, failing with `StoreError` past `READ_BOUND`: a status, a list,
     * an awaiter's look, a dashboard's sample waited for as long as the server was frozen.
     */
    const read = <A>(operation: string, effect: Effect.Effect<A, unknown>): Effect.Effect<A, StoreError> =>
      run(operation, statement(operation, effect), READ_BOUND, 0)

    // the server's time: this machine's clock corrected by the offset its last answers give (`ServerTime`), never
    // waiting on the server
    const time = ServerTime.make(
      clock,
      read("now", Effect.map(sql<{ now: bigint }>`SELECT ${serverTime("now()")} AS now`, (rows) => Number(rows[0]!.now))).pipe(
        // never in the caller's transaction (the background ask forks with the caller's context): in
        // the application's (layerClient: a status read in it) now() is the transaction's start, and
        // the store's time went back by the transaction's age, its consumers' leases and repeats too
        Effect.updateContext(Context.omit(sql.transactionService))
      )
    )
    /** The store's time (ms) outside an Effect: the Effect Clock's, or the server's as `time` knows it. */
    const nowUnsafe = (): number => cfg.clock === "effect" ? clock.currentTimeMillisUnsafe() : time.nowUnsafe()

    // --- open: sessions kept (not a pooler in transaction mode), then the migrations, one starter at a
    // time. Failures of the open are the migration's, as they were before this look came first
    if (!(yield* op("migrate", sessionsKept(sql)))) yield* op("migrate", Effect.fail(new Error(TRANSACTION_POOLING)))
    // Postgres checks the right to create before it looks whether the object exists: CREATE ... IF
    // NOT EXISTS at every open kept a role that may only use the tables (made by their owner) out
    // for good. A schema at this version is read, not created; one to migrate is created only if missing
    const [who] = yield* op(
      "migrate",
      sql<{ role: string; database: string; meta: boolean; idle: string }>`SELECT current_user AS role, current_database() AS database,
        to_regclass(${`"${cfg.schema}".wp_meta`}) IS NOT NULL AS meta, (SELECT setting FROM pg_settings WHERE name = 'idle_in_transaction_session_timeout') AS idle`.pipe(
          Effect.mapError((error) => grantNeeded(error, cfg.schema))
        )
    )
    // the session's default as the server has it: a pooler that ignores the startup parameter
    // (PgBouncer's ignore_startup_parameters) drops it, and each transaction sets it then
    sessionBounded = ownClient?.bounded === true && who!.idle === String(IDLE_IN_TRANSACTION)
    const stored = who!.meta
      ? (yield* op("migrate", sql<{ value: string }>`SELECT value FROM ${S}.wp_meta WHERE key = 'schema_version'`))[0]?.value
      : undefined
    // a schema newer than this code (a rolling upgrade's owner migrated it) is said so here: a role
    // that may only use the tables would have its migration's first DDL refused, and be told to grant
    if (stored !== undefined && !knownVersion(stored)) yield* op("migrate", Effect.fail(unknownVersion(cfg.schema, stored)))
    const migrated = stored === String(MIGRATIONS.length)
    if (!migrated) yield* op(
      "migrate",
      transaction(Effect.gen(function*() {
        yield* sql`SELECT pg_advisory_xact_lock(hashtext(${`effect-workpool:${cfg.schema}`}))`
        const [schema] = yield* sql<{ found: boolean }>`SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = ${cfg.schema}) AS found`
        if (!schema!.found) yield* sql`CREATE SCHEMA IF NOT EXISTS ${S}`
        yield* sql`CREATE TABLE IF NOT EXISTS ${S}.wp_meta (key text PRIMARY KEY, value text NOT NULL)`
        const found = yield* sql<{ value: string }>`SELECT value FROM ${S}.wp_meta WHERE key = 'schema_version'`
        if (found.length > 0 && !knownVersion(found[0]!.value)) return yield* Effect.fail(unknownVersion(cfg.schema, found[0]!.value))
        const version = found.length === 0 ? 0 : Number(found[0]!.value)
        // a migration's lock on a table waits for every transaction using it, and every statement on
        // it after waits behind it: behind one long transaction (a large enqueueAll, a report) the
        // whole schema's heartbeats, claims and settles stalled until it ended. Waited for a while
        // only, then tried again (others go on in between)
        if (version < MIGRATIONS.length) yield* sql.unsafe(`SET LOCAL lock_timeout = ${MIGRATE_LOCK_WAIT}`).raw
        for (let v = version; v < MIGRATIONS.length; v++) {
          // one statement at a time: a prepared statement holds one command
          for (const statement of statementsOf(MIGRATIONS[v]!(`"${cfg.schema}"`))) {
            yield* dropStaleIndex(sql, cfg.schema, statement)
            yield* sql.unsafe(statement).raw
          }
        }
        yield* sql`INSERT INTO ${S}.wp_meta (key, value) VALUES ('schema_version', ${String(MIGRATIONS.length)})
          ON CONFLICT (key) DO UPDATE SET value = excluded.value`
        yield* triggersWritten(sql, S)
      })).pipe(
        Effect.retry({ while: isLockConflict, schedule: Schedule.spaced(MIGRATE_PAUSE), times: MIGRATE_TRIES - 1 }),
        Effect.mapError((error) =>
          isLockConflict(error)
            ? new Error(
              `the migration waited ${MIGRATE_TRIES} times ${MIGRATE_LOCK_WAIT} ms for a lock on the schema's tables, held by a long transaction: start again once it has ended`
            )
            : grantNeeded(error, cfg.schema, who!)
        )
      )
    )

    // --- the trigger functions as this build makes them, on a schema at its version whose text
    // differs (see `TRIGGER_FUNCTIONS`), replaced under the migration's lock. A role that may only
    // use the tables cannot: it is told, and the schema's own go on
    const found = yield* op("migrate", staleTriggers(sql, S, cfg.schema))
    if (found.stale.length > 0 && !found.owned) {
      yield* Effect.logWarning(
        `effect-workpool: the trigger functions ${found.stale.join(", ")} of schema "${cfg.schema}" are not this version's, and role "${who!.role}" ` +
          `does not own them: open the store once as the owner of its tables to replace them`
      )
    } else if (found.stale.length > 0) {
      yield* op(
        "migrate",
        transaction(Effect.gen(function*() {
          yield* sql`SELECT pg_advisory_xact_lock(hashtext(${`effect-workpool:${cfg.schema}`}))`
          const { stale } = yield* staleTriggers(sql, S, cfg.schema)
          for (const name of stale) yield* sql.unsafe(triggerFunction(`"${cfg.schema}"`, name)).raw
          if (stale.length > 0) yield* triggersWritten(sql, S)
        })).pipe(Effect.mapError((error) => grantNeeded(error, cfg.schema, who!)))
      )
    }

    // --- wake-ups from other processes: LISTEN, on a connection of the store's own
    /**
     * The queues this store instance's idle consumers wait on, with how many wait on each; and when
     * the last one stopped waiting on a queue no one waits on now (the listener's clock). The
     * listener hears a queue's channel while someone waits on it, and for `LINGER` after.
     */
    const waitedOn = new Map<string, number>()
    const leftAt = new Map<string, number>()
    /** The queues the listener hears, with the scope whose close UNLISTENs. */
    const heard = new Map<string, Scope.Closeable>()
    /** A queue not heard is waited on: the listener LISTENs to it. */
    const wanted = makeSignal()
    /** How long (ms) until the store's time `at` (a job's `visible_at`): 0 when past, or not a time. */
    const dueAt = (at: number): number => Number.isFinite(at) ? Math.max(0, at - nowUnsafe()) : 0
    /** The listener's session, the latest (it starts over on a new one when one is lost). */
    let listenerSession: PgConnection.PgConnection | undefined
    /** Whether the listener's session has woken everyone once, for the changes made before it listened. */
    let looked = false
    /** The listener's steps (its LISTENs answered, their wake-ups sent), for `listening`. */
    const listened = makeSignal()
    const listen = Effect.gen(function*() {
      const scope = yield* Effect.scope
      // one connection for the schema's channel and every queue's (a pool's `listen` would hold a
      // connection per channel), opened with the client's own settings
      const session = yield* PgConnection.make({ ...sql.config, multiplex: false })
      listenerSession = session
      const connection = yield* session.pin
      // a reader's end that is not an UNLISTEN (the connection is lost): the listener starts over
      const lost = yield* Deferred.make<void, unknown>()
      const hear = (name: string, onPayload: (payload: string) => void) =>
        Effect.gen(function*() {
          const listening = yield* Scope.fork(scope)
          const queue = yield* Scope.provide(connection.listen(name), listening)
          yield* Queue.take(queue).pipe(
            Effect.map(({ payload }) => onPayload(payload)),
            Effect.forever,
            Effect.catchCause((cause) => Cause.hasInterruptsOnly(cause) ? Effect.void : Deferred.failCause(lost, cause)),
            Effect.forkIn(listening)
          )
          return listening
        })
      // the last connection's channels closed with it
      heard.clear()
      looked = false
      yield* hear(channel, (payload) => payload === "cancel" && cancels.notify())
      let pinged = yield* Clock.currentTimeMillis
      while (true) {
        const since = yield* wanted.version
        for (const queue of waitedOn.keys()) {
          if (heard.has(queue)) continue
          heard.set(
            queue,
            yield* hear(queueChannel(cfg.schema, queue), (payload) =>
              payload.startsWith("at:")
                ? signal.notifyIn(dueAt(Number(payload.slice(3))), queue)
                : payload.startsWith("due:")
                ? signal.notifyIn(Number(payload.slice(4)), queue)
                : payload !== rateChanged && signal.notify(queue))
          )
          // a job of this queue may have come between its consumer's claim and the LISTEN
          if (looked) signal.notify(queue)
        }
        // changes may have been missed while not listening: everyone looks once
        if (!looked) {
          looked = true
          signal.notify()
          cancels.notify()
        }
        listened.notify()
        const now = yield* Clock.currentTimeMillis
        for (const [queue, listening] of heard) {
          if (waitedOn.has(queue) || now - (leftAt.get(queue) ?? 0) < LINGER) continue
          heard.delete(queue)
          leftAt.delete(queue)
          yield* Scope.close(listening, Exit.void)
        }
        if (now - pinged >= LISTENER_PING) {
          // its bound in real time: a TestClock step past it while the ping is answered must not end the session
          yield* driverTime(ping(session, connection))
          pinged = now
        }
        yield* Effect.raceFirst(wanted.wait(LINGER, since), Deferred.await(lost))
      }
    }).pipe(Effect.scoped)
    // not forked into the scope: its fork's finalizer would await the interruption past the bound
    // below (an interrupted LISTEN sends the driver's cancel request, on a socket of the driver's that
    // a frozen server never closes: 5 s); this finalizer interrupts it: see `LISTENER_CLOSE_GRACE`.
    // Added before the fork, so that the listener never outlives the scope (an interruption between
    // the two would leave it running for ever)
    let listener: Fiber.Fiber<never, never> | undefined
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        if (listener === undefined) return Effect.void
        const timer = setTimeout(() => {
          if (listenerSession !== undefined) destroySession(listenerSession)
        }, LISTENER_CLOSE_GRACE)
        timer.unref()
        return Effect.timeoutOption(Fiber.interrupt(listener), 2 * LISTENER_CLOSE_GRACE).pipe(
          Effect.ensuring(Effect.sync(() => clearTimeout(timer)))
        )
      })
    )
    listener = yield* listen.pipe(
      Effect.catchCause((cause) => Cause.hasInterruptsOnly(cause) ? Effect.interrupt : Effect.void),
      Effect.andThen(Effect.sleep(1000)),
      Effect.forever,
      driverTime,
      Effect.forkDetach
    )
    /** See `listening`. */
    const heardAll = (queues: ReadonlyArray<string>) =>
      Effect.gen(function*() {
        while (true) {
          const since = yield* listened.version
          if (looked && queues.every((queue) => heard.has(queue))) return
          yield* listened.wait(LINGER, since)
        }
      })
    /**
     * An idle consumer's wait (it names its queues) makes the listener hear them; an awaiter's does
     * not (a job's end sends no NOTIFY: an awaiter polls).
     */
    const wait = (millis: number, since?: number, queues?: ReadonlyArray<string>) =>
      queues === undefined || queues.length === 0 ? signal.wait(millis, since) : Effect.acquireUseRelease(
        Effect.sync(() => {
          let added = false
          for (const queue of queues) {
            const n = waitedOn.get(queue) ?? 0
            waitedOn.set(queue, n + 1)
            added ||= n === 0 && !heard.has(queue)
          }
          if (added) wanted.notify()
        }),
        () => signal.wait(millis, since, queues),
        () =>
          Effect.flatMap(driverTime(Clock.currentTimeMillis), (now) =>
            Effect.sync(() => {
              for (const queue of queues) {
                const n = waitedOn.get(queue)! - 1
                if (n > 0) waitedOn.set(queue, n)
                else {
                  waitedOn.delete(queue)
                  leftAt.set(queue, now)
                }
              }
            }))
      )
    /**
     * NOTIFY within the statement's own transaction: sent when (and only if) it commits, on the
     * queue's channel (`queueChannel`), which only the store instances whose consumers wait on the
     * queue hear. The payload says what for: `job` (a job can be claimed), `due:<ms>` (a job
     * becomes claimable in `ms`, on the server's clock: listeners wake their idle consumers then,
     * not at once to look) or `payload` (`rateChanged`). With `delay`, an SQL expression of the
     * job's delay: `job` when it is not positive. With `at` too, an SQL expression of the job's due time
     * (its `visible_at`), `at:<ms>` instead of `due:<ms>`: an enqueue's, whose commit (in the
     * application's transaction) may come long after its statement, a delay counted again from
     * there. Cancels go to the schema's channel, which every instance hears.
     */
    const notify = (queue: Fragment | string, delay?: Fragment, payload?: string, at?: Fragment) => {
      const name = sql`${sql.literal(`'${CHANNEL_PREFIX}'`)} || left(encode(sha256(convert_to(${`${cfg.schema}.`} || ${queue}, 'UTF8')), 'hex'), ${CHANNEL_HASH})`
      return payload !== undefined
        ? sql`pg_notify(${name}, ${payload})`
        : delay === undefined
        ? sql`pg_notify(${name}, 'job')`
        : at === undefined
        ? sql`pg_notify(${name}, CASE WHEN ${delay} > 0 THEN 'due:' || (${delay})::text ELSE 'job' END)`
        : sql`pg_notify(${name}, CASE WHEN ${delay} > 0 THEN 'at:' || (${at})::text ELSE 'job' END)`
    }

    /**
     * The rank of a job of `queue` visible at `visible` (see model.rank), as an SQL expression. An
     * enqueue passes its `now`: a runAt in the past is waited for from then (see model.rank).
     */
    const RANK = (queue: Fragment | string, priority: Fragment | number, visible: Fragment | number, now?: Fragment | number) => {
      const from = now === undefined ? visible : sql`GREATEST(${visible}, ${now}::bigint)`
      return sql`(SELECT CASE WHEN COALESCE(MAX(q.aging_ms), 0) > 0 THEN ${priority} * MAX(q.aging_ms) - ${from}
        ELSE ${priority} END FROM ${S}.wp_queue q WHERE q.name = ${queue})`
    }

    /**
     * A new job's `group_key`: its group, or '' for an ungrouped job of a queue with a per-key cap
     * (whose claims walk keyed jobs only); NULL otherwise. One more look at the queue's row, which
     * the job's rank reads already.
     */
    const GROUP_KEY = (group: Fragment, queue: Fragment | string) =>
      sql`COALESCE(${group}, (SELECT '' FROM ${S}.wp_queue g WHERE g.name = ${queue} AND g.group_concurrency > 0))`

    /**
     * A reaped job's delay (see `Store.reap`): its own backoff by the formula of `Backoff.delay` (keep
     * them in step; the logarithms only keep power() from overflowing, which Postgres refuses), its
     * named policy's list, or the consumer's list. A `retry` that is not a JSON object is none.
     */
    const REAP_DELAY = (backoff: Fragment, policies: Fragment) => {
      const retry = `(CASE WHEN retry LIKE '{%}' THEN retry::jsonb END)`
      const json = sql.literal(retry)
      const isNumber = (key: string) => sql.literal(`jsonb_typeof(${retry} -> '${key}') = 'number'`)
      const own = (key: string) => sql.literal(`(${retry} ->> '${key}')::float8`)
      const listAt = (list: Fragment) => sql`((${list}) ->> (LEAST(attempts, jsonb_array_length(${list})) - 1))::float8`
      const MAX = sql.literal(`${Backoff.MAX_DELAY}::float8`)
      return sql`(CASE
        WHEN jsonb_typeof(${json} -> 'policy') = 'string'
          THEN COALESCE(${listAt(sql`${policies} -> (${json} ->> 'policy')`)}, ${listAt(backoff)}, 0)
        WHEN ${isNumber("fixed")} AND ${own("fixed")} >= 0 THEN LEAST(floor(${own("fixed")} + 0.5), ${MAX})
        WHEN ${isNumber("exponential")} AND ${isNumber("factor")} AND ${own("exponential")} > 0 AND ${own("factor")} > 0
          THEN LEAST(floor(LEAST(
            CASE WHEN ln(${own("exponential")}) + (attempts - 1) * ln(${own("factor")}) >= ln(${MAX}) THEN ${MAX}
              ELSE ${own("exponential")} * power(${own("factor")}, attempts - 1) END,
            CASE WHEN ${isNumber("max")} THEN ${own("max")} ELSE 'Infinity'::float8 END) + 0.5), ${MAX})
        ELSE COALESCE(${listAt(backoff)}, 0) END)::bigint`
    }

    /** A job's throttle window's end (see `NewJob.dedupFor`): the store's time plus the window, or null. */
    const dedupUntil = (job: NewJob, now: Fragment | number) =>
      job.dedupFor === undefined || job.dedupKey === null ? null : sql`${now}::bigint + ${job.dedupFor}::bigint`

    /** The jobs whose throttle window holds a key of a queue at `now` (`columns` of `w`), by `wp_job_dedup_until`. */
    const inWindow = (queue: Fragment, key: Fragment, now: Fragment | number, columns: Fragment = sql`w.id`) =>
      sql`SELECT ${columns} FROM ${S}.wp_job w WHERE w.queue = ${queue} AND COALESCE(w.dedup_key, w.dedup_queued) = ${key}
        AND w.dedup_until IS NOT NULL AND w.dedup_until > ${now}::bigint`

    /** Whether a holder (`table`) of a dedup key is past its expiry: it holds it no longer (see `expireHolder`). */
    const expiredHolder = (table: Fragment) =>
      sql`(${table}.state IN ('queued', 'blocked') AND ${table}.expire_at IS NOT NULL AND ${table}.expire_at <= ${NOW()}) AS expired`

    /** Ends a holder of a dedup key past its expiry (see `expiredHolder`), if it still is: its key is free. */
    const expireHolder = (id: string) => {
      const now = NOW()
      return sql`UPDATE ${S}.wp_job SET state = 'cancelled', finished_at = ${now}, exit = NULL
        WHERE id = ${id} AND state IN ('queued', 'blocked') AND expire_at IS NOT NULL AND expire_at <= ${now}`
    }

    /** Whether a holder (`table`) is one `job` may replace (see `NewJob.dedupReplace`): waiting (or blocked), of its task. */
    const waiting = (table: Fragment, job: NewJob) => sql`(${table}.state IN ('queued', 'blocked') AND ${table}.task = ${job.task}) AS waiting`

    /**
     * When `job` becomes visible (`visible`, store time) and how long until then (`delay`), on the
     * server's clock (a runAt is the producer's): an enqueue's, and a debounce's new run time.
     */
    const runTime = (job: NewJob, now: Fragment | number) => {
      const visible = job.runAt === undefined ? sql`(${now}::bigint + ${job.delay}::bigint)` : sql`${job.runAt}::bigint`
      return { visible, delay: job.runAt === undefined ? sql`${job.delay}::bigint` : sql`(${visible} - ${now}::bigint)` }
    }

    /**
     * A waiting holder's payload (and, debounced, its run time) replaced by `job`'s (see
     * `NewJob.dedupReplace`): a row with when it is due (debounced), or none if it no longer waits.
     */
    const replace = (id: string, job: NewJob) => {
      const now = NOW()
      const fence = sql`WHERE id = ${id} AND state IN ('queued', 'blocked') AND task = ${job.task}`
      if (job.dedupReplace !== "debounce") {
        return sql<{ due_in: null; visible: null }>`UPDATE ${S}.wp_job SET payload = ${job.payload} ${fence}
          RETURNING NULL::bigint AS due_in, NULL::bigint AS visible`
      }
      const { delay, visible } = runTime(job, now)
      return sql<{ due_in: bigint | number | string | null; visible: bigint | number | string | null }>`UPDATE ${S}.wp_job SET payload = ${job.payload}, visible_at = ${visible},
          rank = ${RANK(sql`wp_job.queue`, sql`wp_job.priority`, visible, now)}
        ${fence}
        RETURNING ${delay} AS due_in, visible_at AS visible, ${notify(job.queue, delay, undefined, visible)} IS NULL AS notified`
    }

    /**
     * `again`: a try after one that lost the key's holder (see `enqueue`). `attached`: what its
     * dependencies make of a job that has some (see `attach`): its state and their columns.
     */
    const insert = (job: NewJob & { readonly id: string }, again = false, attached?: Attached) => {
      const now = NOW()
      const { delay, visible } = runTime(job, now)
      const ended = attached?.state === "cancelled"
      const values = sql`${job.id}, ${job.queue}, ${job.task}, ${job.payload}, ${job.priority},
          ${RANK(job.queue, job.priority, visible, now)}, ${job.dedupKey}, ${attached === undefined ? sql.literal("'queued'") : attached.state}, ${job.maxAttempts}, ${job.timeout},
          ${now}, ${visible}, ${job.trace ?? null}, ${job.retry ?? null},
          ${job.dedupWhile === "queued" ? job.dedupKey : null}, ${dedupUntil(job, now)}, ${GROUP_KEY(sql`${job.group ?? null}::text`, job.queue)},
          ${job.expireIn === undefined || ended ? null : sql`${now}::bigint + ${job.expireIn}::bigint`}${
        attached === undefined ? sql`` : sql`, ${attached.waitingFor}::integer, ${attached.runOnFailure}::boolean,
          ${attached.failed?.id ?? null}::text, ${attached.failed?.state ?? null}::text, ${ended ? sql`${now}::bigint` : sql`NULL::bigint`}`
      }`
      // a job with a notAfter (a repeat's tick) is inserted only until then: a SELECT with a WHERE,
      // a statement of its own (every other enqueue's is as it was). The WHERE is checked before the
      // row is written, and ON CONFLICT then waits for another session's uncommitted insert of its id
      // or dedup key: rolled back, this insert went ahead however late. So the WHERE also sets the
      // statement's lock_timeout to the time left (`isLockTimeout`: late), which bounds that wait
      // (every lock on a table is taken before the WHERE runs: `CHECKED_AT`)
      const checked = CHECKED_AT()
      const inTime = job.notAfter === undefined ? undefined : sql`${checked} <= ${job.notAfter}::bigint
        AND set_config('lock_timeout', LEAST(GREATEST(${job.notAfter}::bigint + 1 - ${checked}, 1), ${MAX_LOCK_TIMEOUT})::text, true) IS NOT NULL`
      // a key another job's throttle window holds (whatever that one's state) is not taken: the
      // unique index sees only unfinished jobs
      const free = job.dedupKey === null ? undefined : sql`NOT EXISTS (${inWindow(sql`${job.queue}`, sql`${job.dedupKey}`, now)})`
      // a job its dependency cancels at once is stored finished, which the unique index does not see:
      // the key's unfinished holder is looked for here, and is the answer (as memory's dedup comes first)
      const unheld = job.dedupKey === null || attached?.state !== "cancelled" ? undefined : sql`NOT EXISTS (SELECT 1 FROM ${S}.wp_job h
          WHERE h.queue = ${job.queue} AND h.dedup_key = ${job.dedupKey} AND h.state IN ('queued', 'running', 'blocked'))`
      const where = [inTime, free, unheld].filter((fragment) => fragment !== undefined)
      // a replace (`dedupReplace`) of the unfinished holder of the key, in the insert's statement:
      // the conflicting row locked and replaced if it waits, or this job inserted, at once. As a
      // lookup then an update, a holder started between the two by a claim, its key taken by another
      // producer's job, started in turn..., failed enqueues under load ("kept changing hands")
      // (a tick, its id not fresh, keeps DO NOTHING: a conflict on its id would be an error under
      // an arbiter). A try again of any other enqueue takes its holder the same way, by a no-op
      // update of it: between its insert and its lookup, a claim could start a "queued"-mode
      // holder and another producer take the key, again and again under load
      const debounce = job.dedupReplace === "debounce"
      const arbiter = sql`ON CONFLICT (queue, dedup_key) WHERE dedup_key IS NOT NULL AND state IN ('queued', 'running', 'blocked')`
      const conflict = job.dedupKey === null || job.notAfter !== undefined
        ? sql`ON CONFLICT DO NOTHING`
        : job.dedupReplace !== undefined
        ? sql`${arbiter} DO UPDATE SET payload = EXCLUDED.payload${
          debounce ? sql`, visible_at = EXCLUDED.visible_at, rank = ${RANK(sql`wp_job.queue`, sql`wp_job.priority`, sql`EXCLUDED.visible_at`, now)}` : sql``
        }
          WHERE wp_job.state IN ('queued', 'blocked') AND wp_job.task = EXCLUDED.task`
        : again
        ? sql`${arbiter} DO UPDATE SET dedup_key = wp_job.dedup_key`
        : sql`ON CONFLICT DO NOTHING`
      // a payload's replace keeps the holder's run time: it wakes no one
      // a blocked job, or one its dependency ended at once, wakes no one: there is nothing to claim
      const wakes = debounce ? sql`true` : attached !== undefined && attached.state !== "queued" ? sql`false` : sql`wp_job.id = ${job.id}`
      return sql<{ id: string; due_in: bigint | number | string | null; created: boolean }>`INSERT INTO ${S}.wp_job (id, queue, task, payload, priority, rank,
          dedup_key, state, max_attempts, timeout_ms, created_at, visible_at, trace, retry, dedup_queued, dedup_until, group_key, expire_at${
        attached === undefined ? sql`` : sql`, waiting_for, after_failure, failed_dep_id, failed_dep_state, finished_at`
      })
        ${where.length === 0 ? sql`VALUES (${values})` : sql`SELECT ${values} WHERE ${sql.and(where)}`}
        ${conflict}
        RETURNING id, wp_job.id = ${job.id} AS created, CASE WHEN ${wakes} THEN ${delay} END AS due_in,
          CASE WHEN ${wakes} THEN ${notify(job.queue, delay, undefined, visible)} IS NULL END AS notified`
    }

    /** What an enqueue's statements did (`dueIn`: the job created, due in that many ms; `missing`: a dependency not there, nothing stored). */
    type Inserted = { id: string; created: boolean; late?: true; dueIn?: number; missing?: string }

    /**
     * What a new job's dependencies make of it (memory.ts's `attach`): blocked until those not
     * succeeded have; queued if none is left (or, `afterFailure: "run"`, every one left has ended);
     * cancelled at once by the first one already dead or cancelled (`afterFailure: "cancel"`).
     */
    interface Attached {
      readonly state: "queued" | "blocked" | "cancelled"
      readonly waitingFor: number
      readonly runOnFailure: boolean
      readonly failed: FailedDependency | undefined
      readonly dependencies: ReadonlyArray<string>
      readonly succeeded: ReadonlyArray<string>
    }

    /**
     * Locks and reads a new job's dependencies, in `seq` order (as every statement that locks several
     * jobs), marking them `has_dependents`: a lock that conflicts with every end of a job (a settle, a
     * reap, an expiry, a cancel) and with a delete (purge, retention), so that one of them running at
     * once either waits for this transaction's edge (the dependency's trigger then sees it) or ended
     * first and is read here (gone: `MissingDependency`, the transaction rolled back). A share lock
     * (FOR KEY SHARE) would not hold a settle back: its trigger would look for the edge before
     * this commit and the job wait for ever.
     */
    const attachTo = (named: ReadonlyArray<string>, runOnFailure: boolean) =>
      Effect.gen(function*() {
        // a job named twice (two handles of one job: a dedup hit's holder) is one dependency
        const after = Array.from(new Set(named))
        const gone = after.find(noSuchId)
        if (gone !== undefined) return yield* Effect.fail(new MissingDependency(gone))
        const rows = yield* sql<{ id: string; state: State; has_dependents: boolean }>`SELECT id, state, has_dependents
          FROM ${S}.wp_job WHERE id = ANY(${after}::text[]) ORDER BY seq FOR NO KEY UPDATE`
        // marked once: a dependency of many dependents is not written again for each
        const unmarked = rows.filter((row) => !row.has_dependents).map((row) => row.id)
        if (unmarked.length > 0) yield* sql`UPDATE ${S}.wp_job SET has_dependents = true WHERE id = ANY(${unmarked}::text[])`
        const states = new Map(rows.map((row) => [row.id, row.state]))
        const missing = after.find((id) => !states.has(id))
        if (missing !== undefined) return yield* Effect.fail(new MissingDependency(missing))
        const pending = after.filter((id) => states.get(id) !== "succeeded")
        const ended = (id: string) => states.get(id) === "dead" || states.get(id) === "cancelled"
        const first = pending.find(ended)
        const failed = first === undefined ? undefined : { id: first, state: states.get(first) as FailedDependency["state"] }
        const state = failed !== undefined && !runOnFailure
          ? "cancelled"
          : pending.length === 0 || (runOnFailure && pending.every(ended))
          ? "queued"
          : "blocked"
        return {
          state,
          waitingFor: pending.length,
          runOnFailure,
          failed: state === "cancelled" ? failed : undefined,
          dependencies: after,
          succeeded: after.filter((id) => states.get(id) === "succeeded")
        } satisfies Attached
      })

    /** A new job's edges to its dependencies (`wp_dep`), the succeeded ones struck already. */
    const insertEdges = (id: string, attached: Attached) =>
      sql`INSERT INTO ${S}.wp_dep (dep_id, job_id, succeeded)
        SELECT d, ${id}, d = ANY(${attached.succeeded}::text[]) FROM unnest(${attached.dependencies}::text[]) AS d
        ON CONFLICT DO NOTHING`

    /**
     * One job's insert: either it wins, or the job it conflicted with is returned: the one with its
     * id (a repeatable job's tick), or the unfinished one with its dedup key (if that one finished
     * in between, the insert is tried again). With `attached`, its dependencies' edges are written
     * with it (in the caller's transaction, which holds their rows: see `attachTo`).
     */
    const insertOne = (job: NewJob & { readonly id: string }, attached?: Attached) =>
      Effect.gen(function*() {
          for (let i = 0; i < 5; i++) {
            const [inserted] = yield* insert(job, i > 0, attached)
            if (inserted !== undefined) {
              if (attached !== undefined && inserted.created) yield* insertEdges(job.id, attached)
              const dueIn = inserted.due_in === null ? {} : { dueIn: Number(inserted.due_in) }
              return { id: inserted.id, created: inserted.created, ...dueIn }
            }
            const found = yield* sql<{ id: string; waiting: boolean; expired: boolean }>`SELECT id, false AS waiting, false AS expired
                FROM ${S}.wp_job WHERE id = ${job.id}
              UNION ALL
              SELECT id, ${waiting(sql`wp_job`, job)}, ${expiredHolder(sql`wp_job`)} FROM ${S}.wp_job
              WHERE queue = ${job.queue} AND dedup_key = ${job.dedupKey} AND state IN ('queued', 'running', 'blocked')
              UNION ALL
              (${inWindow(sql`${job.queue}`, sql`${job.dedupKey}`, NOW(), sql`w.id, ${waiting(sql`w`, job)}, false`)})
              LIMIT 1`
            if (found[0]?.expired === true) {
              // a holder past its expiry, met here as a claim would meet it: ended, and the insert tried again
              yield* expireHolder(found[0].id)
              continue
            }
            if (found.length > 0 && !(job.dedupReplace !== undefined && found[0]!.waiting)) return { id: found[0]!.id, created: false }
            if (found.length > 0) {
              const [moved] = yield* replace(found[0]!.id, job)
              if (moved !== undefined) return { id: found[0]!.id, created: false, ...(moved.due_in === null ? {} : { dueIn: Number(moved.due_in) }) }
              // it started (its key released, if "queued"-mode) or ended since: looked at again
              continue
            }
            // no job holds it: the insert was past its notAfter (a round trip only then), or the
            // holder was purged since (tried again)
            if (job.notAfter !== undefined) {
              const [late] = yield* sql<{ late: boolean }>`SELECT ${CHECKED_AT()} > ${job.notAfter}::bigint AS late`
              if (late?.late === true) return { id: job.id, created: false, late: true as const }
            }
          }
          return yield* Effect.fail(new Error(`the dedup key ${JSON.stringify(job.dedupKey)} kept changing hands`))
      }).pipe(Effect.map((result): Inserted => result))

    const enqueue = (input: NewJob) => {
      const job = withId(input)
      const after = job.after ?? []
      return written(
        "enqueue",
        pinned(
          after.length === 0 ? insertOne(job) : Effect.catchIf(
            // its dependencies' rows held until the commit: a settle, a purge or a delete of one
            // waits for its edge, or came first and is seen (see `attachTo`)
            deadlockRetried(transaction(Effect.flatMap(attachTo(after, job.afterFailure === "run"), (attached) => insertOne(job, attached)))),
            (error): error is MissingDependency => error instanceof MissingDependency,
            (missing): Effect.Effect<Inserted> => Effect.succeed({ id: job.id, created: false, missing: missing.id })
          )
        ).pipe(
          Effect.map((result): Inserted => result),
          // a tick's insert that waited for another session's until past its notAfter (a failed
          // statement ends a transaction: on a multiplexed client, the one `pinned` opened)
          Effect.catchIf((error) => job.notAfter !== undefined && isLockTimeout(error), () =>
            Effect.succeed<Inserted>({ id: job.id, created: false, late: true }))
        ),
        // a debounced holder wakes its consumers at its new time, as a created job does
        (result) => result.created ? result.dueIn ?? true : result.dueIn ?? false,
        input.queue
      ).pipe(Effect.flatMap(({ created, id, late, missing }) =>
        missing !== undefined
          ? Effect.fail(new JobNotFound({ id: missing }))
          : Effect.succeed(late ? { id, created, late } : { id, created })
      ))
    }

    /**
     * `enqueueAll`'s multi-row INSERT of new jobs (ids fresh), in their order (`n`: the identity
     * `seq` is taken in it, FIFO within a priority). The rows are one JSON parameter, not 12 bind
     * parameters a row: a statement takes at most 65,535 of those, and effect's SQL statement builder
     * spreads its fragments as call arguments, which overflowed the stack at 5,000 rows. A job whose
     * dedup key an unfinished job holds, one of this batch before it included, is left out (ON
     * CONFLICT DO NOTHING): the rows returned are those created. Numbers go through float8, as a
     * single enqueue's parameters do (a delay of 1.5 ms is stored as 2).
     */
    const insertAll = (jobs: ReadonlyArray<NewJob & { readonly id: string }>) => {
      const now = NOW()
      const rows = JSON.stringify(jobs.map((job) => [
        job.id, job.queue, job.task, job.payload, job.priority, job.dedupKey,
        job.maxAttempts, job.timeout, job.delay, job.runAt ?? null, job.trace ?? null, job.retry ?? null,
        job.dedupWhile === "queued" ? job.dedupKey : null, job.dedupKey === null ? null : job.dedupFor ?? null,
        job.group ?? null, job.expireIn ?? null
      ]))
      const at = (i: number, type = "") => sql.literal(`(v.job ->> ${i})${type}`)
      const priority = at(4, "::float8")
      const visible = sql`COALESCE(${at(9, "::float8::bigint")}, ${now}::bigint + ${at(8, "::float8::bigint")})`
      return sql<{ id: string; due_in: bigint | number | string; visible: bigint | number | string }>`INSERT INTO ${S}.wp_job (id, queue, task, payload, priority,
          rank, dedup_key, state, max_attempts, timeout_ms, created_at, visible_at, trace, retry, dedup_queued, dedup_until, group_key, expire_at)
        SELECT ${at(0)}, ${at(1)}, ${at(2)}, ${at(3)}, ${priority}, ${RANK(at(1), priority, visible, now)}, ${at(5)}, 'queued',
          ${at(6, "::float8::integer")}, ${at(7, "::float8::bigint")}, ${now}, ${visible}, ${at(10)}, ${at(11)},
          ${at(12)}, ${now}::bigint + ${at(13, "::float8::bigint")}, ${GROUP_KEY(at(14), at(1))}, ${now}::bigint + ${at(15, "::float8::bigint")}
        FROM json_array_elements(${rows}::json) WITH ORDINALITY AS v (job, n)
        WHERE ${at(5)} IS NULL OR NOT EXISTS (${inWindow(at(1), at(5), now)})
        ORDER BY v.n
        ON CONFLICT DO NOTHING
        RETURNING id, visible_at - ${now}::bigint AS due_in, visible_at AS visible`
    }

    /** A batch's items that replace one waiting holder: the last item's payload stays, and the last debounce's run time. */
    type Replacing = {
      readonly items: Array<NewJob & { readonly id: string }>
      last: NewJob & { readonly id: string }
      debounce: (NewJob & { readonly id: string }) | undefined
    }
    /** `entry` (a new one if undefined) with `job` after its items. */
    const replacingWith = (entry: Replacing | undefined, job: NewJob & { readonly id: string }): Replacing => {
      const next = entry ?? { items: [], last: job, debounce: undefined }
      next.items.push(job)
      next.last = job
      if (job.dedupReplace === "debounce") next.debounce = job
      return next
    }

    /** Locks the waiting jobs holding these jobs' dedup keys, in `seq` order (as every lock of several jobs). */
    const lockWaiting = (jobs: ReadonlyArray<NewJob>) =>
      sql`SELECT seq FROM ${S}.wp_job WHERE (queue, dedup_key) IN (SELECT key ->> 0, key ->> 1
          FROM json_array_elements(${JSON.stringify(jobs.map((job) => [job.queue, job.dedupKey]))}::json) key)
        AND state IN ('queued', 'blocked') ORDER BY seq FOR UPDATE`

    /** The jobs holding these jobs' dedup keys in their queues: unfinished, or by their throttle window. */
    const holders = (jobs: ReadonlyArray<NewJob>) => {
      const keys = sql`SELECT key ->> 0 AS queue, key ->> 1 AS dedup_key
        FROM json_array_elements(${JSON.stringify(jobs.map((job) => [job.queue, job.dedupKey]))}::json) key`
      return sql<{ id: string; queue: string; dedup_key: string; state: string; task: string; expired: boolean }>`SELECT * FROM (
          SELECT id, queue, dedup_key, state, task, 0 AS o, ${expiredHolder(sql`wp_job`)} FROM ${S}.wp_job
            WHERE (queue, dedup_key) IN (${keys}) AND state IN ('queued', 'running', 'blocked')
          UNION ALL
          SELECT w.id, k.queue, k.dedup_key, w.state, w.task, 1, false FROM (${keys}) k,
            LATERAL (${inWindow(sql`k.queue`, sql`k.dedup_key`, NOW(), sql`w.id, w.state, w.task`)} LIMIT 1) w
        ) h ORDER BY h.o`
    }

    /**
     * A batch's dedup keys' queues locked first, in one order for every batch: an INSERT holds each
     * key it inserted until the commit, so two batches of the same keys in other orders each waited
     * for a key the other held ("deadlock detected", one call failed whole). Advisory locks of the
     * transaction, two-key form (apart from the migrations' one-key lock): per queue, not per key
     * (100,000 keys ran out of the server's lock table, "out of shared memory"), and the schema's
     * whole past 32 queues. Batches with dedup keys in one queue take turns; `enqueue` holds no key
     * while it waits, and takes none.
     */
    const lockDedupQueues = (jobs: ReadonlyArray<NewJob>) =>
      Effect.gen(function*() {
        const queues = [...new Set(jobs.filter((job) => job.dedupKey !== null).map((job) => job.queue))]
        if (queues.length === 0) return
        // the schema's lock first, by every batch: alone past 32 queues, shared below, so that a
        // batch of many queues and one of some of them take turns too (each with its own kind of
        // lock, they deadlocked as above)
        const wide = queues.length > 32
        const schemaLock = sql.literal(wide ? "pg_advisory_xact_lock" : "pg_advisory_xact_lock_shared")
        yield* sql`SELECT ${schemaLock}(hashtext(${`effect-workpool-dedup-all:${cfg.schema}`}), 0)`
        if (!wide) {
          yield* sql`SELECT pg_advisory_xact_lock(hashtext(${`effect-workpool-dedup:${cfg.schema}`}), k.h) FROM (
              SELECT DISTINCT hashtext(q) AS h FROM json_array_elements_text(${JSON.stringify(queues)}::json) q
              ORDER BY h
            ) k`
        }
      })

    /**
     * `enqueueAll` of a batch with dependencies: one job after another in one transaction (a job's
     * `{ item }` dependencies are the ids the earlier items got: a dedup hit's, its holder), each
     * inserted as `enqueue` inserts it; a dependency missing rolls the whole batch back.
     */
    const enqueueAllAfter = (input: ReadonlyArray<FreshJob>) =>
      op(
        "enqueue",
        Effect.catchIf(
          deadlockRetried(transaction(Effect.gen(function*() {
            // its dedup keys' queues first, as any batch's (see `lockDedupQueues`)
            yield* lockDedupQueues(input)
            // then every dependency of the batch at once, in seq order (`attachTo` then finds each
            // item's held): locked item by item, two batches (or one and a settle) whose items named
            // them in crossing orders deadlocked
            const named = [...new Set(input.flatMap((job) => job.after ?? []))].filter((id) => !noSuchId(id))
            if (named.length > 0) yield* sql`SELECT 1 FROM ${S}.wp_job WHERE id = ANY(${named}::text[]) ORDER BY seq FOR NO KEY UPDATE`
            const out: Array<Inserted> = []
            for (const fresh of input) {
              const job = withId(fresh)
              const after = withItemsNamed(fresh, out).after ?? []
              out.push(
                after.length === 0
                  ? yield* insertOne(job)
                  : yield* Effect.flatMap(attachTo(after, job.afterFailure === "run"), (attached) => insertOne(job, attached))
              )
            }
            return out
          }))),
          (error): error is MissingDependency => error instanceof MissingDependency,
          (missing) => Effect.succeed(missing)
        ),
        // each created job NOTIFYed its queue (`insert`); this process's consumers look once
        (out) => !(out instanceof MissingDependency) && out.some((job) => job.created)
      ).pipe(Effect.flatMap((out) =>
        out instanceof MissingDependency
          ? Effect.fail(new JobNotFound({ id: out.id }))
          : Effect.succeed(out.map(({ created, id }) => ({ id, created })))
      ))

    const enqueueAll = (input: ReadonlyArray<FreshJob>) =>
      input.some((job) => (job.after?.length ?? 0) > 0 || (job.afterItems?.length ?? 0) > 0) ? enqueueAllAfter(input) : op(
        "enqueue",
        transaction(Effect.gen(function*() {
          const jobs = input.map(withId)
          yield* lockDedupQueues(jobs)
          const out: Array<{ id: string; created: boolean }> = []
          /** The soonest created job of each queue (in how long, and when): its consumers are woken once, for it. */
          const soonest = new Map<string, { due: number; at: number }>()
          /** The jobs inserted alone (`insertOne`, which NOTIFYs): this process's consumers woken for them too. */
          const woken: Array<readonly [string, number]> = []
          for (const chunk of insertRuns(jobs)) {
            const results = new Map<string, { id: string; created: boolean }>()
            let left = chunk
            // as `enqueue`: a job left out is its dedup key holder's, or (that one finished in between)
            // inserted again
            for (let i = 0; left.length > 0; i++) {
              if (i > 0) {
                // a holder gone between the insert that met it and its lookup (a claim started it:
                // a "queued"-mode key freed), or between the lookup and its replace, the key since
                // taken again: each such job alone, as `enqueue` inserts it, its try again reading
                // and locking the key's holder in the insert's own statement. Looked for after, as
                // the batch's rounds did, the holder was started by a claim and the key taken by a
                // producer again and again under load, and past five rounds the batch failed ("a
                // dedup key of the batch kept changing hands": 1 run in 3 of durable-dedup-hostile's
                // four producers beside a CI)
                for (const job of left) {
                  const one = yield* insertOne(job)
                  results.set(job.id, { id: one.id, created: one.created })
                  if (one.dueIn !== undefined) woken.push([job.queue, one.dueIn])
                }
                break
              }
              const inserted = yield* insertAll(left)
              const created = new Map(inserted.map((row) => [row.id, { due: Number(row.due_in), at: Number(row.visible) }]))
              const conflicted: Array<NewJob & { readonly id: string }> = []
              for (const job of left) {
                const due = created.get(job.id)
                if (due === undefined) conflicted.push(job)
                else {
                  results.set(job.id, { id: job.id, created: true })
                  if (!(due.due >= (soonest.get(job.queue)?.due ?? Infinity))) soonest.set(job.queue, due)
                }
              }
              if (conflicted.length === 0) break
              // the waiting holders a replace may change, locked first (a claim skips them until the
              // commit): a claim that started one between the lookup and its replace sent the batch
              // round again, and under load past its five rounds ("kept changing hands")
              if (conflicted.some((job) => job.dedupReplace !== undefined)) yield* lockWaiting(conflicted.filter((job) => job.dedupReplace !== undefined))
              const held = new Map<string, { id: string; state: string; task: string }>()
              for (const row of yield* holders(conflicted)) {
                // a holder past its expiry: ended, its key free for the next round's insert
                if (row.expired) {
                  yield* expireHolder(row.id)
                  continue
                }
                // an unfinished holder (listed first) over a window's
                const key = `${row.queue}\u0000${row.dedup_key}`
                if (!held.has(key)) held.set(key, row)
              }
              left = []
              const replacing = new Map<string, Replacing>()
              for (const job of conflicted) {
                const holder = held.get(`${job.queue}\u0000${job.dedupKey}`)
                if (holder === undefined) left.push(job)
                else if (job.dedupReplace === undefined || (holder.state !== "queued" && holder.state !== "blocked") || holder.task !== job.task) {
                  results.set(job.id, { id: holder.id, created: false })
                } else replacing.set(holder.id, replacingWith(replacing.get(holder.id), job))
              }
              for (const [holder, { items, last, debounce }] of replacing) {
                // as one enqueue after another, in two statements at most, not one per item (2,000
                // items of one key took 3 s): the last debounce's run time, then the last payload
                let moved: { due_in: unknown; visible: unknown } | undefined
                for (const job of debounce === undefined || debounce === last ? [last] : [debounce, last]) {
                  const [row] = yield* replace(holder, job)
                  if (row === undefined) break
                  if (row.due_in !== null) moved = row
                  else moved ??= row
                }
                if (moved === undefined) {
                  left.push(...items) // it started or ended since: looked at again
                  continue
                }
                for (const job of items) results.set(job.id, { id: holder, created: false })
                const due = moved.due_in === null ? undefined : { due: Number(moved.due_in), at: Number(moved.visible) }
                if (due !== undefined && !(due.due >= (soonest.get(last.queue)?.due ?? Infinity))) soonest.set(last.queue, due)
              }
              // in item order again: a job created on a second look keeps its place among the others
              if (replacing.size > 0) {
                const place = new Map(chunk.map((job, i) => [job, i]))
                left.sort((a, b) => place.get(a)! - place.get(b)!)
              }
            }
            for (const job of chunk) out.push(results.get(job.id)!)
          }
          // sent at the commit, one per queue: a row each of one JSON parameter (a column each, a
          // batch of more than 1,664 queues failed whole, "target lists can have at most 1664 entries")
          if (soonest.size > 0) {
            const rows = [...soonest].map(([queue, { at, due }]) => [queue, due, at])
            yield* sql`SELECT bool_and(${notify(sql.literal("(v.q ->> 0)"), sql.literal("(v.q ->> 1)::float8::bigint"), undefined, sql.literal("(v.q ->> 2)::float8::bigint"))} IS NULL)
              FROM json_array_elements(${JSON.stringify(rows)}::json) AS v (q)`
          }
          return { out, soonest, woken }
        })),
        () => false
      ).pipe(Effect.map(({ out, soonest, woken }) => {
        for (const [queue, { due }] of soonest) signal.notifyIn(due, queue)
        for (const [queue, due] of woken) signal.notifyIn(due, queue)
        return out
      }))

    const get = (id: string) =>
      noSuchId(id)
        ? Effect.succeed(undefined)
        : read("get", Effect.map(sql<SqlRow>`SELECT * FROM ${S}.wp_job WHERE id = ${id}`, (rows) => rows.length === 0 ? undefined : toRow(rows[0]!)))

    const progressOf = (id: string) =>
      noSuchId(id) ? Effect.succeed(undefined) : read(
        "get",
        Effect.map(sql<ProgressOf>`SELECT state, progress FROM ${S}.wp_job WHERE id = ${id}`, (rows) =>
          rows.length === 0 ? undefined : { state: rows[0]!.state, progress: rows[0]!.progress })
      )

    const list = (filter: ListFilter) => read("list", Effect.map(listStatement(sql, S, filter, NOW()), (rows) => rows.map(toRow)))

    const cancel = (id: string) =>
      noSuchId(id) ? Effect.succeed("missing" as const) : op(
        "cancel",
        Effect.map(
          sql<{ before: State }>`WITH target AS (SELECT seq, state FROM ${S}.wp_job WHERE id = ${id} FOR UPDATE),
            cancelled AS (
              UPDATE ${S}.wp_job j SET state = 'cancelled', finished_at = ${NOW()}, exit = NULL
              FROM target WHERE j.seq = target.seq AND target.state IN ('queued', 'blocked') RETURNING j.seq
            ),
            requested AS (
              UPDATE ${S}.wp_job j SET cancel_requested = true
              FROM target WHERE j.seq = target.seq AND target.state = 'running'
              RETURNING pg_notify(${channel}, 'cancel') IS NULL AS notified
            )
            SELECT state AS before, (SELECT count(*) FROM requested) AS requested FROM target`,
          (rows) => {
            if (rows.length === 0) return "missing" as const
            switch (rows[0]!.before) {
              case "blocked":
              case "queued":
                return "cancelled" as const
              case "running":
                return "requested" as const
              default:
                return "finished" as const
            }
          }
        ),
        (result) => {
          if (result === "requested") cancels.notify()
          return result === "cancelled" || result === "requested"
        }
      )

    /**
     * A redriven job's edges not yet succeeded whose dependency `o` (NULL: its row is gone) is such
     * that `condition` holds (`wp_dep_job`: a job without dependencies reads no row).
     */
    const pendingThat = (condition: Fragment) =>
      sql`SELECT 1 FROM ${S}.wp_dep p LEFT JOIN ${S}.wp_job o ON o.id = p.dep_id
        WHERE p.job_id = wp_job.id AND NOT p.succeeded AND ${condition}`
    /**
     * A job that the redriven job `wp_job` still needs to succeed, or one those need up the chain
     * (each walked once; `wp_dep_job`: a job without dependencies reads no row), that can never
     * succeed (`CANNOT_SUCCEED`): redriven, it would wait for ever. None through a job of
     * `afterFailure: "run"`, the redriven one included: a failure is done for it.
     */
    const doomedNeed = sql`WITH RECURSIVE needed(id) AS (
        SELECT p.dep_id FROM ${S}.wp_dep p WHERE p.job_id = wp_job.id AND NOT p.succeeded AND NOT wp_job.after_failure
        UNION
        SELECT p.dep_id FROM needed JOIN ${S}.wp_job n ON n.id = needed.id JOIN ${S}.wp_dep p ON p.job_id = n.id
          WHERE NOT n.after_failure AND NOT p.succeeded
      )
      SELECT 1 FROM needed LEFT JOIN ${S}.wp_job o ON o.id = needed.id WHERE ${sql.literal(CANNOT_SUCCEED)}`
    /**
     * A redriven job waits (blocked) for a dependency not yet succeeded; with `afterFailure: "run"`
     * for one not yet ended only (a row gone ended: only finished jobs are deleted).
     */
    const stillBlocked = sql`EXISTS (${pendingThat(sql`(NOT wp_job.after_failure OR o.state NOT IN ('succeeded', 'dead', 'cancelled'))`)})`

    const redrive = (id: string) => {
      if (noSuchId(id)) return Effect.succeed(false)
      const now = NOW()
      return op(
        "redrive",
        Effect.map(
          // the job's row first, in a statement of its own: the UPDATE's snapshot is then taken once
          // no other transaction holds it. A purge or retention deleting its dead dependency holds it
          // from its trigger's lock to its commit: an UPDATE that waited for it ran on a snapshot
          // older than the delete, saw the dependency still there and left the job blocked for good.
          // Only a finished row: a queued one locked here (a second redrive of a job the first put
          // back) was skipped by a claim at that moment (SKIP LOCKED), which then slept to its next poll
          transaction(Effect.andThen(
            sql`SELECT 1 FROM ${S}.wp_job WHERE id = ${id} AND state IN ('dead', 'cancelled') FOR NO KEY UPDATE`,
            sql`UPDATE ${S}.wp_job SET state = CASE WHEN ${stillBlocked} THEN 'blocked' ELSE 'queued' END,
              attempts = 0, visible_at = ${now}, started_at = NULL, finished_at = NULL,
              progress = NULL, settled_xid = NULL, dedup_key = COALESCE(wp_job.dedup_key, wp_job.dedup_queued),
              cancel_requested = false, rank = ${RANK(sql`wp_job.queue`, sql`wp_job.priority`, now)},
              group_key = ${GROUP_KEY(sql`wp_job.group_key`, sql`wp_job.queue`)}, expire_at = NULL,
              failed_dep_id = NULL, failed_dep_state = NULL
            WHERE id = ${id} AND (state = 'dead' OR (state = 'cancelled'
                AND (failed_dep_id IS NOT NULL OR (expire_at IS NOT NULL AND finished_at >= expire_at))))
              AND NOT EXISTS (${doomedNeed})
              AND NOT EXISTS (
              SELECT 1 FROM ${S}.wp_job other WHERE other.queue = wp_job.queue
                AND other.dedup_key = COALESCE(wp_job.dedup_key, wp_job.dedup_queued)
                AND other.state IN ('queued', 'running', 'blocked')
            )
            RETURNING ${notify(sql`wp_job.queue`)} IS NULL AS notified`
          )).pipe(
            // an enqueue that took the key since the check: the unique index says no (caught outside
            // the transaction, which the failed statement aborted)
            Effect.catchIf(isUniqueViolation, () => Effect.succeed([]))
          ),
          (rows) => rows.length > 0
        ),
        (done) => done
      )
    }

    const purge = (before: number, states: ReadonlyArray<State>) =>
      op("purge", Effect.map(purgeStatement(sql, S, before, states, NOW()), (rows) => Number(rows[0]!.n)), (n) => n > 0)

    const retainAt = retainCursor((after: string | undefined, n: number) =>
      sql<{ name: string; retention: string | null }>`
        SELECT name, retention FROM ${S}.wp_queue
        WHERE retention IS NOT NULL${after === undefined ? sql`` : sql` AND name > ${after}`}
        ORDER BY name LIMIT ${n}`
    )
    const retainCounted = RetainCount.make()
    const deletedBy = <E>(statement: Effect.Effect<ReadonlyArray<{ n: bigint }>, E>) => Effect.map(statement, (rows) => Number(rows[0]!.n))
    /** Each queue's retention, once: see `Store.retain`. */
    const retain = (batch: number, limit = RETAIN_QUEUES) =>
      op(
        "retain",
        // the age rules' cut: the store's time once per call
        Effect.flatMap(now, (at) =>
          retainPass(retainAt, limit, (queue) =>
            retainRules(decodeRetention(queue.retention), batch, {
              // an age may be a fraction of a millisecond: the cut is sent as a bigint, which rounded
              // it (half to even), a job that ended before it kept; an end is whole, so `< ceil` is exact
              age: (state, age) => deletedBy(retainStatement(sql, S, queue.name, state, batch, { before: Math.ceil(at - age) }, at)),
              count: (state, count) =>
                retainCounted(
                  queue.name,
                  state,
                  count,
                  (from, bound) => Effect.map(retainLookStatement(sql, S, queue.name, state, from, bound), (rows) => RetainCount.lookOf(rows[0])),
                  deletedBy(retainStatement(sql, S, queue.name, state, batch, { keep: count }, at))
                )
            }))),
        // its awaiters look (a job they await may be gone); no consumer has more to claim
        (retained) => retained.deleted > 0,
        UNKEYED
      )

    const configure = (
      queue: string,
      settings: QueueSettings
    ) => {
      // a snooze's hold (holdAtLeast): the later of the hold's end before and now + its delay, in this statement
      const heldUntil = settings.holdFor !== undefined
        ? sql`${NOW()}::bigint + ${settings.holdFor}::bigint`
        : settings.holdAtLeast !== undefined
        ? sql`${NOW()}::bigint + ${settings.holdAtLeast}::bigint`
        : undefined
      const heldSet = settings.holdFor === undefined && heldUntil !== undefined
        ? sql`GREATEST(wp_queue.held_until, ${heldUntil})`
        : heldUntil ?? sql`wp_queue.held_until`
      const retention = settings.retention == null ? null : encodeRetention(settings.retention)
      const upsert = sql`INSERT INTO ${S}.wp_queue (name, paused, aging_ms, retention, held_until)
          VALUES (${queue}, ${settings.paused ?? false}, ${settings.aging ?? 0}, ${retention}, ${heldUntil ?? 0})
          ON CONFLICT (name) DO UPDATE SET
            paused = ${settings.paused === undefined ? sql`wp_queue.paused` : settings.paused},
            aging_ms = ${settings.aging === undefined ? sql`wp_queue.aging_ms` : settings.aging},
            retention = ${settings.retention === undefined ? sql`wp_queue.retention` : retention},
            held_until = ${heldSet}
          RETURNING ${settings.paused === false || settings.holdFor !== undefined ? sql`${notify(queue)} IS NULL` : sql`true`} AS notified`
      const rate = settings.rateLimit
      const cap = settings.concurrency
      const groupCap = settings.groupConcurrency
      if (rate === undefined && cap === undefined && groupCap === undefined) return op("configure", upsert, () => true, queue)
      // under the queue row's lock, as a claim: the latest claims stay counted, at most the new limit of them
      const limit = rate === null ? 0 : rate?.limit
      return op(
        "configure",
        transaction(Effect.gen(function*() {
          yield* upsert
          yield* sql`SELECT 1 FROM ${S}.wp_queue WHERE name = ${queue} FOR UPDATE`
          if (rate !== undefined) {
            yield* sql`DELETE FROM ${S}.wp_rate WHERE id IN (
                SELECT id FROM ${S}.wp_rate WHERE queue = ${queue} ORDER BY id DESC OFFSET ${limit!})`
            yield* sql`UPDATE ${S}.wp_queue SET rate_limit = ${limit!}, rate_interval_ms = ${rate === null ? 0 : rate.interval},
                rate_count = (SELECT COUNT(*) FROM ${S}.wp_rate WHERE queue = ${queue})
              WHERE name = ${queue}`
          }
          if (cap !== undefined) yield* sql`UPDATE ${S}.wp_queue SET concurrency = ${cap ?? 0} WHERE name = ${queue}`
          if (groupCap !== undefined) {
            yield* sql`UPDATE ${S}.wp_queue SET group_concurrency = ${groupCap ?? 0} WHERE name = ${queue}`
            // the ungrouped jobs there already take the key '' (a claim walks keyed jobs only); a
            // running one too, as it may be retried, and a blocked one, released later. Left so when removed: '' is no key
            if (groupCap !== null) {
              yield* sql`UPDATE ${S}.wp_job SET group_key = '' WHERE queue = ${queue} AND state IN ('blocked', 'queued', 'running') AND group_key IS NULL`
            }
          }
          // the queue's consumers held back by the window or the cap, in every process, claim again
          // (the claim decides what the new setting allows): a limit lifted or raised starts jobs now
          yield* sql`SELECT ${notify(queue, undefined, rateChanged)}`
        })),
        () => true,
        queue
      )
    }

    /** The oldest `count` claim times of a limited queue's window. */
    const oldestClaims = (queue: string, count: number) =>
      Effect.map(
        sql<{ id: bigint | number | string; at: number }>`SELECT id, at FROM ${S}.wp_rate WHERE queue = ${queue}
          ORDER BY id LIMIT ${count}`,
        (rows) => rows.map((row) => ({ id: String(row.id), at: Number(row.at) }))
      )

    const latencies = (queue: string, since: LatencyCursor | undefined, limit: number) =>
      since !== undefined && !SNAPSHOT.test(since)
        ? Effect.fail(badCursor(since))
        : read(
          "latencies",
          since === undefined
            ? Effect.map(sql<{ until: string }>`SELECT pg_current_snapshot()::text AS until`, (rows): Latencies => ({ until: rows[0]!.until, jobs: [] }))
            : Effect.map(latenciesStatement(sql, S, queue, since, limit), (rows): Latencies => ({
              until: rows[0]!.until,
              jobs: rows.flatMap((row) => row.f === null ? [] : [latencyOf(Number(row.v), Number(row.s), Number(row.f))])
            }))
        )

    const counts = (queue: string) => {
      const now = NOW()
      return read(
        "stats",
        Effect.map(
          countsStatement(sql, S, queue, now),
          (rows) => countsOf(queue, rows)
        ).pipe(Effect.flatMap((counts) =>
          Effect.gen(function*() {
            // the claims still in the window (their times follow their order): an index range, not the log
            const found = yield* sql<
              {
                rate_limit: number
                rate_interval_ms: number
                concurrency: number
                group_concurrency: number
                recent: bigint | number | string
                retention: string | null
              }
            >`
              SELECT rate_limit, rate_interval_ms, concurrency, group_concurrency, retention,
                CASE WHEN rate_limit > 0 THEN
                  (SELECT COUNT(*) FROM ${S}.wp_rate r WHERE r.queue = q.name AND r.at > ${now}::bigint - q.rate_interval_ms)
                ELSE 0 END AS recent
              FROM ${S}.wp_queue q WHERE name = ${queue}`
            const retention = retentionField(decodeRetention(found[0]?.retention))
            if (found.length === 0) return { ...counts, rateLimit: undefined, ...retention }
            const { concurrency, group_concurrency, rate_interval_ms, rate_limit, recent } = found[0]!
            const rate = { limit: rate_limit, interval: rate_interval_ms }
            return {
              ...counts,
              rateLimit: rate_limit <= 0 ? undefined : { ...rate, available: Math.max(0, rate.limit - Number(recent)) },
              ...retention,
              // only when set: a queue without a cap counts as before
              ...(concurrency === 0 ? {} : { concurrency: { limit: concurrency, running: counts.running } }),
              ...(group_concurrency === 0 ? {} : { groupConcurrency: group_concurrency })
            } satisfies QueueCounts
          })
        ))
      )
    }

    /** Claimed rows, best first (RETURNING has no order). */
    const toClaims = (rows: ReadonlyArray<RankedRow>): Array<Claim> =>
      [...rows]
        .sort((a, b) => b.rank - a.rank || Number(a.seq) - Number(b.seq))
        .map((row): Claim => ({ job: toRow(row), token: row.lease_token! }))

    /** A running job stopped: its queue's NOTIFY if the queue has a cap now (see `SlotFreed`). */
    const freed: SlotFreed = (queue) => notify(queue)
    /** Whether the queue of the job row `wp_job` has a cap, as the row is written. */
    const capped = sql`EXISTS (SELECT 1 FROM ${S}.wp_queue q WHERE q.name = wp_job.queue AND (q.concurrency > 0 OR q.group_concurrency > 0))`

    // final settles are written together, or by this store's next claim (see settles.ts)
    const finals = Settles.make<FinalSettle>(
      (batch) =>
        Effect.map(driverTime(settleStatement(sql, S, batch, NOW(), freed)), (rows) => {
          return writtenEach(batch, rows.map((row) => row.token))
        }),
      yield* Effect.scope,
      closing.close
    )

    /**
     * One statement, when no queue of the request has a rate limit (it then claims nothing, and says
     * so: the claim is made by `claimLimited`).
     */
    const claimUnlimited = (request: ClaimRequest) =>
      finals.carry(() => true, (carried) =>
        Effect.map(driverTime(claimStatement(sql, S, request, NOW(), carried, freed)), (rows) => {
          const dueIn = rows[0]?.due_in
          return [
            {
              limited: rows[0]?.limited === true,
              expiring: rows[0]?.expiring === true,
              claims: toClaims(rows.filter((row) => row.id !== null)),
              dueIn: dueIn === null || dueIn === undefined ? undefined : Number(dueIn)
            },
            // those it did not write (their jobs have dependents, or their tokens are stale) the writer writes
            writtenEach(carried, rows[0]?.settled ?? []).map((written) => written === false ? undefined : written)
          ] as const
        }))

    /** The best visible jobs of `queues` (not paused), at most `limit`, locked for this claim. */
    const best = (queues: ReadonlyArray<string>, tasks: ReadonlyArray<string>, now: number, limit: number, fair = false) =>
      queues.length === 0 || limit <= 0
        ? Effect.succeed([])
        : sql<{ seq: bigint | number | string; rank: number; queue: string }>`${bestStatement(sql, S, queues, tasks, limit, now, sql`true`, fair)}`

    /** How many more jobs each capped queue may start now (a lease expired unreaped still holds its slot). */
    const runningOf = (capped: ReadonlyArray<{ readonly name: string; readonly concurrency: number }>) =>
      capped.length === 0 ? Effect.succeed(new Map<string, number>()) : Effect.map(
        sql<{ name: string; n: bigint | number | string }>`
          SELECT q.name, (SELECT count(*) FROM (SELECT 1 FROM ${S}.wp_job j WHERE j.queue = q.name AND j.state = 'running'
            LIMIT q.cap) c) AS n
          FROM unnest(${capped.map((q) => q.name)}::text[], ${capped.map((q) => q.concurrency)}::int[]) AS q(name, cap)`,
        (rows) => new Map(rows.map((row) => [row.name, Math.max(0, capped.find((q) => q.name === row.name)!.concurrency - Number(row.n))]))
      )

    /** Where this process's empty claims stopped in their queues' rounds of keys (see `groupRounds`). */
    const rounds = groupRounds((version, queue) => signal.changedSince(version, [queue]))

    /**
     * Up to `limit` jobs of a queue with a per-key cap, in its keys' turn (see `byKeys`, which says it
     * for the memory store): the keys in their round from `cursor` (`groupRounds`), walked a step of
     * keys per statement (`groupWalk`) until `limit` keys gave a job, every key was seen, or the
     * claim's budget of keys (`groupBudget`) was. Under the queue row's lock: the running jobs
     * counted here stay counted until the claim commits.
     */
    const groupTake = (
      queue: string,
      cap: number,
      cursor: string | null,
      tasks: ReadonlyArray<string>,
      now: number,
      limit: number,
      version: number
    ) =>
      Effect.gen(function*() {
        const jobs: Array<{ seq: string; rank: number; queue: string }> = []
        const keyOf = new Map<string, string>()
        if (limit <= 0) {
          return { jobs, keyOf, full: false, walked: { cursor, since: now, version, resumed: false, cut: false, last: undefined, offered: 0 } as GroupWalked }
        }
        const running = new Map((yield* sql<{ g: string; n: number }>`SELECT group_key AS g, count(*)::int AS n FROM ${S}.wp_job
            WHERE queue = ${queue} AND state = 'running' AND group_key IS NOT NULL GROUP BY group_key`).map((row) => [row.g, row.n]))
        const lists: Array<Array<{ seq: string; rank: number; queue: string }>> = []
        const budget = groupBudget(limit, running.size)
        let visits = 0
        let cut = false
        let last: GroupWalked["last"] = undefined
        let full = false
        const round = rounds.round(queue, tasks, cursor, now, version)
        walk: for (const phase of round.phases) {
          let from = phase.from
          let inclusive = phase.inclusive
          while (lists.length < limit) {
            if (visits >= budget) {
              // cut only with a key left to see: a budget that ran out on the round's last key saw them all
              cut = yield* groupAhead(sql, S, queue, round.phases.slice(round.phases.indexOf(phase)), from, inclusive)
              break walk
            }
            // full keys are walked past: as many as run, at most
            const step = Math.min(limit - lists.length + running.size + 8, budget - visits)
            const rows = yield* groupWalk(sql, S, { queue, from, inclusive, stop: phase.stop, step, cap, limit, running, tasks, now })
            const keys = new Map<number, { g: string; heads: Array<{ seq: string; rank: number; queue: string }> }>()
            for (const row of rows) {
              const key = keys.get(row.n) ?? { g: row.g, heads: [] }
              keys.set(row.n, key)
              if (row.seq !== null) key.heads.push({ seq: String(row.seq), rank: Number(row.rank), queue })
            }
            for (const { g, heads } of keys.values()) {
              const free = g === "" ? limit : Math.max(0, cap - (running.get(g) ?? 0))
              if (heads.length > Math.min(free, limit) && free < limit) full = true
              if (free > 0 && heads.length > 0 && lists.length < limit) {
                lists.push(heads.slice(0, Math.min(free, limit)))
                for (const head of heads) keyOf.set(head.seq, g)
              }
            }
            visits += keys.size
            if (keys.size > 0) last = { phase: phase.index, key: [...keys.values()].at(-1)!.g }
            if (keys.size < step) break
            from = last!.key
            inclusive = false
          }
        }
        for (let round = 0; jobs.length < limit; round++) {
          const before = jobs.length
          for (const list of lists) if (list[round] !== undefined && jobs.length < limit) jobs.push(list[round]!)
          if (jobs.length === before) break
        }
        const walked: GroupWalked = { cursor: round.cursor, since: round.since, version: round.version, resumed: round.resumed, cut, last, offered: jobs.length }
        return { jobs, keyOf, full, walked }
      })

    /**
     * A claim on rate-limited queues: one transaction under the lock of their `wp_queue` rows (taken
     * in name order, so that consumers of several queues cannot deadlock), so that the claims of all
     * consumers of a queue pass its window one at a time. Its time is read once the lock is held:
     * the windows' times then follow the order of the claims.
     */
    const claimLimited = (request: ClaimRequest) =>
      // the change count before the transaction's first snapshot: a commit its statements do not
      // see is told after it (see `groupRounds`)
      Effect.suspend(() => claimLimitedSince(request, signal.current()))
    const claimLimitedSince = (request: ClaimRequest, version: number) =>
      transaction(Effect.gen(function*() {
        // the paused ones locked too, and left out after: one left unlocked could be resumed before
        // this claim reads its jobs (READ COMMITTED, a snapshot per statement), which then took them
        // as an unlimited queue's, past its cap and its window. Locked, its resume waits for this commit
        const locked = yield* sql<
          {
            name: string
            rate_limit: number
            rate_interval_ms: number
            rate_count: number
            concurrency: number
            group_concurrency: number
            group_cursor: string | null
            held_until: bigint | number | string
            paused: boolean
          }
        >`
          SELECT name, rate_limit, rate_interval_ms, rate_count, concurrency, group_concurrency, group_cursor, held_until, paused
          FROM ${S}.wp_queue
          WHERE name = ANY(${request.queues}) AND (rate_limit > 0 OR concurrency > 0 OR group_concurrency > 0)
          ORDER BY name FOR UPDATE`
        const limited = locked.filter((queue) => !queue.paused)
        const at = CHECKED_AT()
        const now = typeof at === "number" ? at : Number((yield* sql<{ now: bigint | number }>`SELECT ${at} AS now`)[0]!.now)
        const windows = yield* Effect.forEach(limited.filter((queue) => queue.rate_limit > 0), (queue) =>
          Effect.map(oldestClaims(queue.name, Math.min(queue.rate_count, request.limit)), (oldest) =>
            claimWindow(queue, oldest, now, request.limit)))
        // the running jobs of each capped queue, counted after its lock: READ COMMITTED, this
        // statement's snapshot holds every claim that held the lock before (only a claim makes a job
        // running, and each of a capped queue's holds its lock to its commit), so the count is never
        // low; a settle or reap meanwhile only lowers it (a slot under-used for a round trip)
        const free = yield* runningOf(limited.filter((queue) => queue.concurrency > 0))
        const unlimited = request.queues.filter((queue) => !locked.some((l) => l.name === queue))
        const allowedOf = (queue: string) =>
          Math.min(windows.find((w) => w.name === queue)?.allowed ?? request.limit, free.get(queue) ?? Infinity)
        // a queue with a per-key cap (not held): its keys' next jobs, in their turn
        const grouped = limited.filter((l) => l.group_concurrency > 0 && Number(l.held_until) <= now)
        const turns = yield* Effect.forEach(grouped, (l) =>
          Effect.map(groupTake(l.name, l.group_concurrency, l.group_cursor, request.tasks, now, allowedOf(l.name), version), (taken) => [l.name, taken] as const))
        const groups = new Map(turns)
        // each queue's best, as far as its window and its cap allow, then the best of them all
        const candidates = (yield* Effect.forEach(
          [
            { queues: unlimited, limit: request.limit },
            ...limited.filter((l) => !groups.has(l.name)).map((l) => ({ queues: [l.name], limit: allowedOf(l.name) }))
          ],
          ({ limit, queues }) => best(queues, request.tasks, now, limit, request.fair === true)
        )).flat().concat(turns.flatMap(([, taken]) => taken.jobs))
        candidates.sort((a, b) => b.rank - a.rank || Number(a.seq) - Number(b.seq))
        const inTurn = keepTurns(candidates, (job) => job.queue, new Map(turns.map(([name, taken]) => [name, taken.jobs])))
        const picked = request.fair === true
          ? roundRobin(request.queues, inTurn, (job) => job.queue, request.limit)
          : inTurn.slice(0, request.limit)
        // each grouped queue's turn goes on after the last key it served; an empty walk writes nothing
        for (const [name, taken] of turns) {
          const mine = picked.filter((job) => job.queue === name)
          const last = mine.at(-1)
          const cursor = rounds.settled(
            name,
            request.tasks,
            taken.walked,
            mine.length,
            last === undefined ? undefined : taken.keyOf.get(String(last.seq))
          )
          if (cursor !== undefined) yield* sql`UPDATE ${S}.wp_queue SET group_cursor = ${cursor} WHERE name = ${name}`
        }
        // a walk cut short by its budget of keys: the rest of its round at once; a round the queue
        // changed during: one more (see `groupRounds`)
        const more = turns.some(([name, taken]) => taken.walked.cut || rounds.again(name, taken.walked))
        const groupsFull = turns.some(([, taken]) => taken.full)
        const rows = picked.length === 0 ? [] : yield* sql<RankedRow>`UPDATE ${S}.wp_job j
            SET state = 'running', attempts = j.attempts + 1, started_at = ${now},
              lease_token = gen_random_uuid()::text, lease_until = ${now}::bigint + ${request.lease}::bigint,
              ${sql.literal(RELEASE_QUEUED)}
            WHERE j.seq = ANY(${picked.map((job) => String(job.seq))}::bigint[])
            RETURNING j.*`
        const { limitedFor, taken } = takeFromWindows(windows, picked, request.limit, now)
        for (const window of taken) {
          yield* sql`INSERT INTO ${S}.wp_rate (queue, at) SELECT ${window.name}, ${now} FROM generate_series(1, ${window.taken})`
          if (window.dropped.length > 0) yield* sql`DELETE FROM ${S}.wp_rate WHERE id = ANY(${window.dropped}::bigint[])`
          yield* sql`UPDATE ${S}.wp_queue SET rate_count = ${window.count} WHERE name = ${window.name}`
        }
        const dueIn = rows.length >= request.limit || more
          ? []
          // a delayed job come due since the earliest round walked began counts (see `groupRounds`)
          : yield* sql<{ due_in: bigint | number | string | null }>`SELECT ${
            dueInStatement(sql, S, request.queues, now, Math.min(now, ...turns.map(([, taken]) => taken.walked.since)))
          } AS due_in`
        const claims = toClaims(rows)
        // held back by a cap: a queue at it still has a job ready (its jobs taken are running now)
        // or by a key's cap: a key with more ready jobs than free slots
        let capped = groupsFull && picked.length < request.limit
        for (const queue of fullQueues(free, picked, request.limit)) {
          if (capped) break
          capped = (yield* best([queue], request.tasks, now, 1)).length > 0
        }
        return {
          claims,
          limitedFor,
          ...(capped ? { capped } : {}),
          dueIn: more && rows.length < request.limit ? 0 : dueIn[0]?.due_in == null ? undefined : Math.max(0, Number(dueIn[0].due_in))
        }
      }))

    // a limit below 1 takes nothing, as on the other stores: the claim's statement takes at least
    // one job (its LIMIT is at least 1)
    const nothing: Claimed = { claims: [], limitedFor: 0, dueIn: undefined }
    const claim = (request: ClaimRequest): Effect.Effect<Claimed, StoreError> =>
      request.limit < 1 ? Effect.succeed(nothing) : op(
        "claim",
        Effect.flatMap(claimUnlimited(request), ({ claims, dueIn, expiring, limited }) =>
          Effect.map(
            limited ? claimLimited(request) : Effect.succeed({ claims, limitedFor: 0, dueIn }),
            (claimed) => [claimed, expiring] as const
          )),
        ([claimed]) => claimed.claims.length > 0
      ).pipe(Effect.flatMap(([claimed, expiring]) => expiring ? Effect.as(expireMet(request.queues), claimed) : Effect.succeed(claimed)))

    /**
     * Ends the jobs with dependents past their expiry that a claim of `queues` met (see
     * `claimStatement`), in a transaction of their own: the claim has committed, and these lock
     * their own rows (SKIP LOCKED), then their dependents in seq order, as a reap's do. Their
     * failure does not fail the claim, whose jobs are taken: the reap or the next claim ends them.
     * The claim returns after them, its jobs' leases running: the wait for a dependent's row
     * (an application transaction that enqueued after it holds it) is bounded by
     * `EXPIRE_LOCK_WAIT`, past which they are left to the reap too.
     */
    const expireMet = (queues: ReadonlyArray<string>) =>
      op(
        "expire",
        transaction(Effect.andThen(
          sql.unsafe(`SET LOCAL lock_timeout = ${EXPIRE_LOCK_WAIT}`).raw,
          Effect.andThen(
            expireStatement(sql, S, NOW(), EXPIRE_BATCH, queues, false, true),
            expireStatement(sql, S, NOW(), EXPIRE_BATCH, queues, true, true)
          )
        ))
      ).pipe(Effect.catch((error) =>
        error.sqlState === "55P03"
          ? Effect.logDebug("effect-workpool: a dependent of an expired job met by a claim is locked; the reap ends it", error)
          : Effect.logWarning("effect-workpool: ending expired jobs with dependents after a claim failed; the reap ends them", error)
      ))

    const heartbeat = (tokens: ReadonlyArray<string>, lease: number) =>
      op(
        "heartbeat",
        Effect.map(
          heartbeatStatement(sql, S, tokens, lease, NOW()),
          (alive) => {
            const found = new Set(alive.map((row) => row.lease_token))
            return {
              lost: tokens.filter((token) => !found.has(token)),
              cancelled: alive.filter((row) => row.cancel_requested).map((row) => row.lease_token)
            }
          }
        )
      )

    const progress = (token: string, value: string) =>
      op(
        "progress",
        Effect.map(
          sql`UPDATE ${S}.wp_job SET progress = ${value} WHERE lease_token = ${token} AND state = 'running' RETURNING true AS ok`,
          (rows) => rows.length > 0
        )
      )

    const settle = (token: string, settlement: Settlement) => {
      if (settlement._tag === "Final") {
        return written("settle", finals.add({ token, state: settlement.state, exit: settlement.exit }), (done) => done !== false)
      }
      const now = NOW()
      // one token: wp_job_token serves it with or without the state, which stays as a check that costs nothing
      const fence = sql`WHERE lease_token = ${token} AND state = 'running'`
      const lease = sql`lease_token = NULL, lease_until = NULL`
      // a cancel asked for while the attempt ran, which failed or was given back before its heartbeat
      // heard of it: the job ends cancelled, not queued again (as the reaper ends it). Every CASE reads
      // the row as it was, before this statement's own `cancel_requested = false`
      const ended = sql`state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END,
        finished_at = CASE WHEN cancel_requested THEN ${now} ELSE finished_at END,
        settled_xid = CASE WHEN cancel_requested THEN ${sql.literal(XID)} ELSE settled_xid END,
        cancel_requested = false`
      // the row as written: one that ended cancelled sends no NOTIFY (no job of its queue can be
      // claimed: the other processes' idle consumers would look for nothing, at once or at its time),
      // and one back in the queue its NOTIFY for its delay's end. Unless its queue has a cap: its
      // slot is free now, whatever its delay or its end (see SlotFreed)
      const returning = (delay: Fragment) =>
        sql`(CASE WHEN ${capped} THEN ${freed(sql`wp_job.queue`)} WHEN wp_job.state = 'cancelled' THEN NULL
          ELSE ${notify(sql`wp_job.queue`, delay)} END) IS NULL AS notified,
          wp_job.state = 'cancelled' AS ended`
      const statement = (() => {
        switch (settlement._tag) {
          case "Retry": {
            const visible = sql`(${now}::bigint + ${settlement.delay}::bigint)`
            return sql<{ ended: boolean }>`UPDATE ${S}.wp_job SET ${ended}, exit = CASE WHEN cancel_requested THEN NULL ELSE ${settlement.exit} END,
              visible_at = CASE WHEN cancel_requested THEN visible_at ELSE ${visible} END,
              rank = CASE WHEN cancel_requested THEN rank ELSE ${RANK(sql`wp_job.queue`, sql`wp_job.priority`, visible)} END,
              ${lease} ${fence}
              RETURNING ${returning(sql`${settlement.delay}::bigint`)}`
          }
          case "Release": {
            if (settlement.delay === undefined) {
              return sql<{ ended: boolean }>`UPDATE ${S}.wp_job SET ${ended}, exit = CASE WHEN cancel_requested THEN NULL ELSE exit END,
              attempts = attempts - 1, ${lease} ${fence}
              RETURNING ${returning(sql`0`)}`
            }
            // snoozed: visible after its delay, ranked from then, its attempt not counted (ended
            // cancelled instead, not counted as a snooze either, as the other stores)
            const visible = sql`(${now}::bigint + ${settlement.delay}::bigint)`
            return sql<{ ended: boolean }>`UPDATE ${S}.wp_job SET ${ended}, exit = CASE WHEN cancel_requested THEN NULL ELSE exit END,
              attempts = attempts - 1, snoozes = snoozes + CASE WHEN cancel_requested THEN 0 ELSE 1 END,
              visible_at = CASE WHEN cancel_requested THEN visible_at ELSE ${visible} END,
              rank = CASE WHEN cancel_requested THEN rank ELSE ${RANK(sql`wp_job.queue`, sql`wp_job.priority`, visible)} END,
              ${lease} ${fence}
              RETURNING ${returning(sql`${settlement.delay}::bigint`)}`
          }
        }
      })()
      // a retry's job is visible after its backoff: this process's waiters wake then; a job that
      // ended cancelled wakes them at once (its awaiters: the job has ended, not at the retry's time)
      return op(
        "settle",
        Effect.map(statement, (rows) => rows.length === 0 ? undefined : rows[0]!.ended),
        (cancelled) =>
          cancelled !== undefined &&
          (cancelled || settlement.delay === undefined ? true : settlement.delay)
      ).pipe(Effect.map((cancelled): Settled => cancelled === undefined ? false : cancelled ? "cancelled" : true))
    }

    /** The rows of the next reap batch: REAP_BATCH, halved after a batch was cut, doubled back after a full one. */
    let reapBatch = REAP_BATCH
    const reap = (
      backoff: ReadonlyArray<number>,
      policies: Readonly<Record<string, ReadonlyArray<number>>> = {},
      reaped?: (job: ReapedJob) => void
    ) => {
      const now = NOW()
      const delay = REAP_DELAY(sql`${JSON.stringify(backoff)}::jsonb`, sql`${JSON.stringify(policies)}::jsonb`)
      const out = sql`(cancel_requested OR attempts >= max_attempts)`
      const visible = sql`(${now}::bigint + ${delay})`
      // a capped queue's job taken back frees its slot now, whatever its delay: its NOTIFY wakes the
      // consumers the cap held back at once (a wake-up for its delay's end would leave the slot idle)
      // in batches, each its own statement (committed): the reaper gives a reap up past its bound (a
      // lease, at least 5 s: against a frozen server), and one statement over a backlog slower than
      // that (100,000 expired jobs: 1.6 s, cut at a lease of 100 ms) was cancelled every time, taking
      // back nothing, the backlog held for ever.
      // By lease_until (equal leases, a claim's, in the order of the jobs' creation, as memory ends
      // them: their dependents' walks meet them so), the running jobs' index's order: each batch reads its REAP_BATCH rows from the
      // index's start (ordered by seq, each batch sorted the whole expired backlog again: 100,000 took
      // 11 s, over 30 on a busy machine). SKIP LOCKED: the reap never waits on a row lock, so its
      // order cannot make a deadlock
      // told of each job (a consumer's events): the same statement, returning its rows
      const told = reaped === undefined ? sql`` : sql`, wp_job.id, wp_job.queue, wp_job.task, wp_job.attempts, wp_job.state, wp_job.visible_at`
      const batch = (size: number) => sql<{ back: boolean } & ReapedRow>`UPDATE ${S}.wp_job SET
              state = CASE WHEN cancel_requested THEN 'cancelled' WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END,
              exit = NULL,
              finished_at = CASE WHEN ${out} THEN ${now}::bigint ELSE NULL END,
              settled_xid = CASE WHEN ${out} THEN ${sql.literal(XID)} END,
              visible_at = CASE WHEN ${out} THEN visible_at ELSE ${visible} END,
              rank = CASE WHEN ${out} THEN rank ELSE ${RANK(sql`wp_job.queue`, sql`wp_job.priority`, visible)} END,
              cancel_requested = false, lease_token = NULL, lease_until = NULL
            FROM (SELECT l.seq FROM ${S}.wp_job l WHERE l.state = 'running' AND l.lease_until < ${now}
              ORDER BY l.lease_until, l.seq LIMIT ${size} FOR UPDATE OF l SKIP LOCKED) l
            WHERE wp_job.seq = l.seq
            RETURNING ${notify(sql`wp_job.queue`, sql`(CASE WHEN ${out} OR ${capped} THEN 0 ELSE ${delay} END)`)} IS NULL AS back${told}`
      return op(
        "reap",
        Effect.gen(function*() {
          let count = 0
          while (true) {
            const size = reapBatch
            // half as big until this one answers: a batch cut by the reaper's bound (a server too
            // loaded for 1,000 rows within it) is rolled back, and the next is half as big, so some
            // batch fits the bound and the backlog still goes down (when the bound was a lease, at
            // 1,000 on a machine at load 7 a 100 ms lease took nothing back in 30 s). Halved now, not once the cut one has drained in the
            // background: the next reap, half a lease later, may come before
            reapBatch = Math.max(REAP_BATCH_MIN, size >> 1)
            const rows = yield* batch(size)
            if (reaped !== undefined) for (const row of rows) reaped(reapedOf(row))
            count += rows.length
            reapBatch = rows.length < size ? size : Math.min(REAP_BATCH, size * 2)
            if (rows.length < size) break
          }
          // then every queue's expired jobs, a batch: a paused or unconsumed queue's end too, their
          // awaiters told (they poll). Not counted: the reaper took back nothing. After the leases, as
          // every store: a dependent of a job reaped dead and of one expiring names the reaped one
          yield* expireStatement(sql, S, now, EXPIRE_BATCH)
          yield* expireStatement(sql, S, now, EXPIRE_BATCH, undefined, true)
          return count
        }),
        (n) => n > 0
      )
    }

    const now: Effect.Effect<number> = cfg.clock === "effect" ? Effect.sync(() => clock.currentTimeMillisUnsafe()) : time.now
    if (cfg.clock === "server") yield* Effect.ignore(time.refresh)

    const store = {
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
      wait,
      version: signal.version,
      waitCancel: cancels.wait,
      cancelVersion: cancels.version,
      now,
      closed: closing.closed,
      dependencies: true,
      kind: "Postgres"
    } satisfies Store
    listenings.set(store, heardAll)
    return store
  })

const listenings = new WeakMap<Store, (queues: ReadonlyArray<string>) => Effect.Effect<void>>()

/**
 * For tests: waits until `store` (of `makeWith`) hears `queues` (its listener's LISTENs answered) and
 * has sent the wake-up that its listener's first look owes their waiters (jobs that came before
 * the LISTEN). A test that counts a consumer's claims counts from then, not with that wake among
 * them (the conformance suite's `Listening`, test/durable/postgres.ts).
 */
export const listening = (store: Store, queues: ReadonlyArray<string>): Effect.Effect<void> =>
  Effect.suspend(() => listenings.get(store)?.(queues) ?? Effect.die(new Error("listening: not a store of Postgres.makeWith")))

/** How many expired jobs one reap statement takes back at most (a reap runs as many as it needs). */
export const REAP_BATCH = 1000

/** The fewest rows a reap batch is cut down to (see `reapBatch`). */
export const REAP_BATCH_MIN = 10
