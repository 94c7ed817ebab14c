/**
 * A job's row of `wp_job` as the SQL stores read it, and the `JobRow` it is: one reading for
 * Postgres and SQLite, whose tables have the same columns.
 *
 * @internal
 */
import type { FailedDependency, JobRow, State } from "./model.ts"

/**
 * The columns a `JobRow` is read from: Postgres's bigint columns come as bigint or number (the
 * driver's choice), SQLite's boolean as 0 or 1.
 */
export interface SqlRow {
  readonly id: string
  readonly queue: string
  readonly task: string
  readonly payload: string
  readonly priority: number
  readonly dedup_key: string | null
  /** A "queued"-mode job's key, kept once `dedup_key` is cleared by its start (absent before the column). */
  readonly dedup_queued?: string | null | undefined
  readonly state: State
  readonly attempts: number
  readonly max_attempts: number
  readonly timeout_ms: bigint | number
  readonly created_at: bigint | number
  readonly visible_at: bigint | number
  readonly started_at: bigint | number | null
  readonly finished_at: bigint | number | null
  readonly cancel_requested: boolean | number
  readonly exit: string | null
  readonly progress: string | null
  readonly trace: string | null
  readonly retry: string | null
  /** Absent from a row read before its schema had it, or by a statement that leaves it out. */
  readonly snoozes?: bigint | number | undefined
  /** Absent as `snoozes` is. */
  readonly group_key?: string | null | undefined
  /** Absent as `snoozes` is. */
  readonly expire_at?: bigint | number | null | undefined
  /** Its dependencies not yet succeeded (NULL: it has none); absent as `snoozes` is. */
  readonly waiting_for?: bigint | number | null | undefined
  /** The dependency that ended it cancelled (NULL: none); absent as `snoozes` is. */
  readonly failed_dep_id?: string | null | undefined
  readonly failed_dep_state?: string | null | undefined
  readonly lease_token: string | null
}

const orNull = (value: bigint | number | null) => value === null ? null : Number(value)

/**
 * The job a row holds.
 *
 * @example
 * ```ts
 * toRow(row).visibleAt // a number of ms, from a bigint column or a number
 * ```
 */
export const toRow = (row: SqlRow): JobRow => ({
  id: row.id,
  queue: row.queue,
  task: row.task,
  payload: row.payload,
  priority: row.priority,
  dedupKey: row.dedup_key ?? row.dedup_queued ?? null,
  state: row.state,
  attempts: row.attempts,
  maxAttempts: row.max_attempts,
  timeout: Number(row.timeout_ms),
  createdAt: Number(row.created_at),
  visibleAt: Number(row.visible_at),
  startedAt: orNull(row.started_at),
  finishedAt: orNull(row.finished_at),
  cancelRequested: row.cancel_requested === true || row.cancel_requested === 1,
  exit: row.exit,
  progress: row.progress,
  trace: row.trace,
  retry: row.retry,
  snoozes: row.snoozes === undefined ? undefined : Number(row.snoozes),
  group: row.group_key,
  expireAt: row.expire_at == null ? null : Number(row.expire_at),
  ...(row.waiting_for == null ? {} : { waitingFor: Number(row.waiting_for) }),
  ...(row.failed_dep_id == null ? {} : { failedDependency: { id: row.failed_dep_id, state: row.failed_dep_state as FailedDependency["state"] } })
})

/**
 * Whether the row `alias` of `wp_job` is of a job cancelled for good, in SQL (Postgres and SQLite
 * alike): cancelled neither by a dependency of its own nor by its expiry, so no redrive puts it back
 * (memory.ts's `cancelledForGood`).
 */
export const cancelledForGood = (alias: string): string =>
  `(${alias}.state = 'cancelled' AND ${alias}.failed_dep_id IS NULL AND NOT (${alias}.expire_at IS NOT NULL AND ${alias}.finished_at >= ${alias}.expire_at))`
