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
