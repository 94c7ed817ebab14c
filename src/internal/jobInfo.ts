/**
 * The `JobContext` key and what it holds, in a module of their own: a worker thread gives its
 * tasks a `JobContext` too, and importing it from jobContext.ts would load the scheduler (and
 * everything it imports) in every thread just for this key. Imports effect by subpath, as every
 * module a thread loads does: the `effect` barrel loads all of effect's ~250 modules.
 *
 * @internal
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { JobRow } from "./store/model.ts"

/** See `WorkPool.JobContext`. */
export interface JobInfo {
  /** The name of the pool running the job (a durable handler's: its consumer's pool); "" outside a pool. */
  readonly pool: string
  /**
   * The job's id in its pool; 0 outside a pool. A durable handler's is its consumer pool's number
   * for this attempt, not the durable job's id (`JobQueue.CurrentJob` has that).
   */
  readonly id: number
  /**
   * 1, then one more per retry; 0 outside a pool. A durable handler's counts the durable job's
   * attempts as the store does, across processes, on a fiber or on a `ThreadPool` consumer's thread.
   */
  readonly attempt: number
  /** Reports how far along the job is; the handle's `progress` and `progressChanges` show it. */
  readonly progress: (value: unknown) => Effect.Effect<void>
}

const outside: JobInfo = { pool: "", id: 0, attempt: 0, progress: () => Effect.void }

export const JobContext: Context.Reference<JobInfo> = Context.Reference<JobInfo>("effect-workpool/JobContext", {
  defaultValue: () => outside
})

/** See `JobQueue.CurrentJob`. */
export interface CurrentJobInfo {
  /** The durable id, as `enqueue` returned it: the same in every process and every attempt. */
  readonly id: string
  readonly queue: string
  readonly task: string
  /** This attempt, as the store counts it: 1, then one more per retry or lease expiry. */
  readonly attempt: number
  readonly maxAttempts: number
  /** When it was enqueued (the store's clock). */
  readonly createdAt: Date
  readonly dedupKey: string | undefined
  readonly priority: number
}

export const CurrentJob: Context.Reference<Option.Option<CurrentJobInfo>> = Context.Reference<Option.Option<CurrentJobInfo>>(
  "effect-workpool/JobQueue/CurrentJob",
  { defaultValue: Option.none }
)

/**
 * A durable job as it goes to a thread (protocol.Run): plain values, in an array (a structured
 * clone writes each key of an object: see protocol.ts).
 */
export type CurrentJobWire = readonly [
  id: string,
  queue: string,
  task: string,
  attempt: number,
  maxAttempts: number,
  createdAt: number,
  dedupKey: string | null,
  priority: number
]

export const currentJobWire = (job: JobRow): CurrentJobWire => [
  job.id,
  job.queue,
  job.task,
  job.attempts,
  job.maxAttempts,
  job.createdAt,
  job.dedupKey,
  job.priority
]

export const currentJobOfWire = (wire: CurrentJobWire): CurrentJobInfo => ({
  id: wire[0],
  queue: wire[1],
  task: wire[2],
  attempt: wire[3],
  maxAttempts: wire[4],
  createdAt: new Date(wire[5]),
  dedupKey: wire[6] ?? undefined,
  priority: wire[7]
})

/** The value a handler of `job` reads. */
export const currentJobOf = (job: JobRow): Option.Option<CurrentJobInfo> => Option.some(currentJobOfWire(currentJobWire(job)))
