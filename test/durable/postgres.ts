/**
 * The Postgres server the tests use: `WORKPOOL_PG_URL` (`.ci/run` starts one on loopback and sets
 * it). Without it the Postgres tests are skipped with a message, except under `CI=true`, where a
 * missing server is a failure. Each test gets its own schema, dropped when its file ends.
 */
import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Layer, Redacted } from "effect"
import * as Reactivity from "effect/reactivity/Reactivity"
import { afterAll } from "vitest"
import * as JobStore from "../../src/JobStore.ts"
import * as Postgres from "../../src/internal/store/postgres.ts"
import { Listening } from "./conformance.ts"
import * as pgServer from "./pgserver.ts"

export const url = process.env.WORKPOOL_PG_URL
if (url === undefined || url === "") {
  if (process.env.CI === "true") throw new Error("WORKPOOL_PG_URL is not set: under CI=true the Postgres tests must run")
  console.warn("WORKPOOL_PG_URL is not set: the Postgres store's tests are skipped (.ci/run shows how to start a server)")
}
export const enabled = url !== undefined && url !== ""

const schemas: Array<string> = []
let n = 0
/** A schema name of its own, dropped after the file's tests. */
export const freshSchema = () => {
  const schema = `wp_test_${process.pid}_${Date.now().toString(36)}_${++n}`
  schemas.push(schema)
  return schema
}

/** A Postgres server of the test's own (to freeze or restart), stopped with the test's scope. */
export const ownServer = (options?: Parameters<typeof pgServer.startServer>[1]) =>
  Effect.acquireRelease(
    Effect.promise(() => pgServer.startServer(pgServer.binaries()!, options)),
    (s) => Effect.promise(() => s.destroy())
  )

/**
 * Freezes every process of `server` (SIGSTOP, `server.freeze`: no backend forked meanwhile escapes)
 * until the test's scope ends (SIGCONT); returns the thaw, to end it sooner.
 */
export const freeze = (server: pgServer.Server) =>
  Effect.uninterruptible(Effect.gen(function*() {
    const pids = yield* Effect.promise(() => server.freeze())
    const thaw = Effect.sync(() =>
      pids.forEach((pid) => {
        try {
          process.kill(pid, "SIGCONT")
        } catch {
          // gone
        }
      })
    )
    yield* Effect.addFinalizer(() => thaw)
    return thaw
  }))

/** A client of the application's own on `serverUrl` (what `layerClient` is given), closed with the test's scope. */
export const appClient = (serverUrl: string, maxConnections: number, multiplex?: boolean) =>
  PgClient.make({ url: Redacted.make(serverUrl), maxConnections, ...(multiplex === undefined ? {} : { multiplex }) }).pipe(
    Effect.provideServiceEffect(Reactivity.Reactivity, Reactivity.make)
  )

/** Runs SQL on the test server outside any store (setup, cleanup, inspection). */
export const admin = <A>(f: (sql: PgClient.PgClient) => Effect.Effect<A, unknown>) => adminOn(url!, f)

/** Runs SQL on the server of `on` (a server of the test's own) outside any store. */
export const adminOn = <A>(on: string, f: (sql: PgClient.PgClient) => Effect.Effect<A, unknown>) =>
  Effect.runPromise(
    Effect.scoped(Effect.flatMap(PgClient.make({ url: Redacted.make(on), maxConnections: 1 }), f)).pipe(
      Effect.provideServiceEffect(Reactivity.Reactivity, Reactivity.make)
    )
  )

/**
 * The plan of a store statement (built on the test server's client) as the store runs it: prepared,
 * so the generic plan, for any parameters.
 */
export const genericPlan = (
  statement: (sql: PgClient.PgClient) => { compile(): readonly [string, ReadonlyArray<unknown>] },
  mode: "generic" | "custom" = "generic"
) =>
  Effect.promise(() =>
    admin((sql) => {
      const [text, params] = statement(sql).compile()
      const literal = (value: unknown): string =>
        Array.isArray(value) ? `ARRAY[${value.map(literal).join(",")}]::text[]` : `'${String(value).replaceAll("'", "''")}'`
      return sql.withTransaction(Effect.gen(function*() {
        yield* sql.unsafe(`SET LOCAL plan_cache_mode = force_${mode}_plan`).raw
        yield* sql.unsafe(`PREPARE wp_plan AS ${text}`).raw
        const rows = yield* sql.unsafe<{ "QUERY PLAN": string }>(`EXPLAIN EXECUTE wp_plan (${params.map(literal).join(", ")})`)
        yield* sql.unsafe(`DEALLOCATE wp_plan`).raw
        return rows.map((row) => row["QUERY PLAN"]).join("\n")
      }))
    })
  )

/**
 * The backends whose last statement was a LISTEN or an UNLISTEN of `channel` (a store's listener
 * connection), with that statement: what the channel tests wait on, instead of a sleep.
 */
export const listenBackends = (channel: string) =>
  Effect.promise(() =>
    admin((sql) =>
      sql<{ pid: number; query: string }>`SELECT pid, query FROM pg_stat_activity
        WHERE query LIKE ${`%LISTEN "${channel}"`} AND datname = current_database()`
    )
  )

/**
 * What a migration left in `schema` (on the server of `on`): the values of its wp_meta (its version:
 * one row) and whether it has `index` (`[index]` or `[]`).
 */
export const versionAndIndex = (schema: string, index: string, on = url!) =>
  Effect.promise(() =>
    adminOn(on, (sql) =>
      Effect.all([
        sql<{ value: string }>`SELECT value FROM ${sql.literal(`"${schema}"`)}.wp_meta WHERE key = 'schema_version'`,
        sql<{ indexname: string }>`SELECT indexname FROM pg_indexes WHERE schemaname = ${schema} AND indexname = ${index}`
      ])
    )
  ).pipe(Effect.map(([versions, indexes]) => [versions.map((row) => row.value), indexes.map((row) => row.indexname)]))

/** What version 13 added (per-key caps: their columns, their indexes with them), undone: by every `backTo` before 13. */
export const undoGroups = (S: string) => [
  `ALTER TABLE ${S}.wp_queue DROP COLUMN group_concurrency, DROP COLUMN group_cursor`,
  `ALTER TABLE ${S}.wp_job DROP COLUMN group_key`
]

/** What versions 12 (queue holds, a job's snoozes) and 13 added, undone: by every `backTo` before 12. */
export const undoHolds = (S: string) => [
  ...undoGroups(S),
  `ALTER TABLE ${S}.wp_queue DROP COLUMN held_until`,
  `ALTER TABLE ${S}.wp_job DROP COLUMN snoozes`
]

/** Takes the schema `S` (quoted) back to version 12, before per-key caps (13). */
export const backToBeforeGroups = (S: string) => backTo(S, 12, undoGroups(S))

/** Takes the schema `S` (quoted, on the server of `on`) back to version 13: without the per-key caps' index of due jobs (14). */
export const backToBeforeGroupDue = (S: string, on = url!) => backTo(S, 13, [`DROP INDEX ${S}.wp_job_group_due`], on)

/** Takes the schema `S` (quoted) back to version 14: without the expiries' column and its index (15). */
export const backToBeforeExpiry = (S: string) => backTo(S, 14, [`ALTER TABLE ${S}.wp_job DROP COLUMN expire_at`])

/**
 * Takes the schema `S` (quoted, on the server of `on`) back to version 15: without job dependencies
 * (16): their triggers, functions, table, columns and indexes, and the dedup index as it was
 * (without blocked jobs).
 */
export const backToBeforeDependencies = (S: string, on = url!) =>
  backTo(S, 15, [
    `DROP TRIGGER wp_job_ended ON ${S}.wp_job`,
    `DROP TRIGGER wp_job_dropped ON ${S}.wp_job`,
    `DROP FUNCTION ${S}.wp_dependents_ended()`,
    `DROP TRIGGER wp_job_deleted ON ${S}.wp_job`,
    `DROP FUNCTION ${S}.wp_dependent_deleted()`,
    `DROP TABLE ${S}.wp_dep`,
    `ALTER TABLE ${S}.wp_job DROP COLUMN waiting_for, DROP COLUMN after_failure, DROP COLUMN failed_dep_id, DROP COLUMN failed_dep_state, DROP COLUMN has_dependents`,
    `DROP INDEX ${S}.wp_job_blocked`,
    `DROP INDEX ${S}.wp_job_blocked_expiring`,
    `DROP INDEX ${S}.wp_job_dedup`,
    `CREATE UNIQUE INDEX wp_job_dedup ON ${S}.wp_job (queue, dedup_key) WHERE dedup_key IS NOT NULL AND state IN ('queued', 'running')`
  ], on)

/** What version 11 added (the queues' caps, `setConcurrency`), undone. */
export const undoCap = (S: string) => `ALTER TABLE ${S}.wp_queue DROP COLUMN concurrency`

/** What versions 10 (retention), 11 (caps) and 12 (holds) added: undone by every `backTo` before 10. */
export const beforeRetention = (S: string) => [
  ...undoHolds(S),
  undoCap(S),
  `DROP INDEX ${S}.wp_job_retained`,
  `ALTER TABLE ${S}.wp_queue DROP COLUMN retention`
]

/** Takes schema `S` (quoted) back to what version 6 left: no settling transaction (7), its index gone with it, no counts' index (8). */
export const backToVersion6 = (S: string) =>
  backTo(S, 6, [...beforeRetention(S), undoDedupModes(S), `DROP INDEX ${S}.wp_job_counted`, `ALTER TABLE ${S}.wp_job DROP COLUMN settled_xid`])

/** Takes the schema `S` (quoted, on the server of `on`) back to version 7: without the counts' index `wp_job_counted`. */
export const backToVersion7 = (S: string, on = url!) => backTo(S, 7, [...beforeRetention(S), undoDedupModes(S), `DROP INDEX ${S}.wp_job_counted`], on)

/** What the dedup modes' migration (version 9) adds, undone: its columns, their index with them. */
export const undoDedupModes = (S: string) => `ALTER TABLE ${S}.wp_job DROP COLUMN dedup_queued, DROP COLUMN dedup_until`

/** Takes the schema `S` (quoted) back to version 8, before the dedup modes' migration (and retention's after it). */
export const backToBeforeDedupModes = (S: string) => backTo(S, 8, [...beforeRetention(S), undoDedupModes(S)])

/** Takes the schema `S` (quoted) back to version 10, before the queues' caps (11) and holds (12). */
export const backToBeforeCaps = (S: string) => backTo(S, 10, [...undoHolds(S), undoCap(S)])

/** Takes the schema `S` (quoted) back to version 11, before queue holds and snoozes (12). */
export const backToBeforeHolds = (S: string) => backTo(S, 11, undoHolds(S))

const backTo = (S: string, version: number, statements: ReadonlyArray<string>, on = url!) =>
  Effect.promise(() =>
    adminOn(on, (sql) =>
      Effect.forEach(
        [...statements, `UPDATE ${S}.wp_meta SET value = '${version}' WHERE key = 'schema_version'`],
        (statement) => sql.unsafe(statement).raw,
        { discard: true }
      )
    )
  )

/**
 * Waits until `count` backends wait for a lock that backend `holder` holds (`pg_blocking_pids`), each
 * look on a connection of its own: what the lock tests wait on, instead of a sleep. A look from the
 * holder's own open transaction never saw the waiter: there pg_stat_activity's state and query are
 * a snapshot taken at the transaction's first read of it (the latencies race test hung 1 run in 3).
 */
export const blockedBy = (holder: number, count = 1) =>
  lookUntil(
    (sql) => sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_stat_activity WHERE ${holder} = ANY(pg_blocking_pids(pid))`,
    (n) => n >= count
  )

/** Waits until `count` statements naming `schema` wait for a lock, whoever holds it. */
export const lockWaitersOn = (schema: string, count: number) =>
  lookUntil(
    (sql) =>
      sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE wait_event_type = 'Lock' AND query LIKE ${`%${schema}%`} AND pid <> pg_backend_pid()`,
    (n) => n >= count
  )

/** Waits until no statement naming `schema` runs: every write of a test's store has ended, committed or not. */
export const schemaIdle = (schema: string) =>
  lookUntil(
    (sql) =>
      sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE state = 'active' AND query LIKE ${`%${schema}%`} AND pid <> pg_backend_pid()`,
    (n) => n === 0
  )

/**
 * Looks every 5 ms of real time until `done` holds of the look's `n`: timed by the platform's
 * timer, not the Effect Clock, so that a wait inside a `TestClock` test (it.effect) does not hang
 * once the first look falls short.
 */
const lookUntil = (
  look: (sql: PgClient.PgClient) => Effect.Effect<ReadonlyArray<{ n: number }>, unknown>,
  done: (n: number) => boolean
) =>
  Effect.promise(async () => {
    while (!done((await admin(look))[0]?.n ?? 0)) await new Promise((resolve) => setTimeout(resolve, 5))
  })

/**
 * A session of its own, outside every store's pool, to hold locks with: its backend's pid (for
 * `blockedBy`); `open` begins a transaction that runs a statement and stays open (the locks it took
 * held: `LOCK TABLE`, `SELECT ... FOR UPDATE`), `hold` one holding a job's row, `release` ends it
 * (rolled back: it wrote nothing); the session ends with the scope.
 */
export const lockSession = Effect.gen(function*() {
  const { Client } = yield* Effect.promise(() => import("pg"))
  const client = new Client({ connectionString: url! })
  yield* Effect.acquireRelease(Effect.promise(() => client.connect()), () => Effect.promise(() => client.end()))
  const pid = (yield* Effect.promise(() => client.query("SELECT pg_backend_pid() AS pid"))).rows[0].pid as number
  /** One statement on the session (a failure, e.g. a deadlock error, is a defect). */
  const query = (text: string, values?: ReadonlyArray<unknown>) =>
    Effect.promise(() => client.query(text, values as Array<unknown>))
  const open = (text: string, values?: ReadonlyArray<unknown>) => Effect.andThen(query("BEGIN"), query(text, values))
  return {
    pid,
    query,
    open,
    /** Holds the row of job `id` in schema `S` (quoted). */
    hold: (S: string, id: string) => open(`SELECT 1 FROM ${S}.wp_job WHERE id = $1 FOR UPDATE`, [id]),
    release: Effect.promise(() => client.query("ROLLBACK"))
  }
})

/** The pids of the backends listening on `channel` now. */
export const listeners = (channel: string) =>
  Effect.map(listenBackends(channel), (rows) => rows.filter((row) => row.query === `LISTEN "${channel}"`).map((row) => row.pid))

if (enabled) {
  afterAll(() =>
    admin((sql) =>
      Effect.forEach(schemas, (schema) => sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).raw, { discard: true })
    )
  )
}

/**
 * The store on its own schema, its time from the Effect Clock (so that `TestClock` drives leases and
 * delays, as on the other stores); the public layer uses the server's `now()`.
 */
export const testLayer = (schema = freshSchema()): Layer.Layer<JobStore.JobStore, any> =>
  Layer.effectContext(
    Effect.flatMap(Postgres.options({ url: url!, schema, maxConnections: 4 }), (cfg) => Postgres.make({ ...cfg, clock: "effect" })).pipe(
      Effect.map((store) => Context.make(JobStore.JobStore, store).pipe(Context.add(Listening, (queues) => Postgres.listening(store, queues))))
    )
  )
