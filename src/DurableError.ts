/**
 * The errors of durable jobs (`JobQueue`, `JobStore`) that in-process pools do not have: a store
 * that failed, a job id that is not in the store, a job cancelled from any process, one that
 * expired unstarted, an attempt
 * that ran past its timeout, an attempt whose consumer died (its lease expired), and a job awaited
 * as a task other than its own.
 *
 * Each is a `Schema.TaggedError`: the ones that end a job are stored with it, as part of its
 * encoded `Exit`, and come back as instances of their class in whichever process awaits the job.
 *
 * @since 0.2.0
 */
import { Schema } from "effect"

/**
 * The job store failed: the SQLite file could not be opened or is corrupt, the Postgres or Redis
 * server could not be reached, a statement or script failed, the store's schema is newer than this
 * code, or a store layer's options are invalid (`operation` "open"). `operation` names what was
 * being done. `sqlState`: the Postgres store's SQLSTATE of a statement the server refused (40001 a
 * serialization failure, 40P01 a deadlock, 25006 a read-only transaction, ...), absent otherwise.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { DurableError, JobQueue } from "effect-workpool"
 *
 * const stats = JobQueue.stats("mail").pipe(
 *   Effect.catchTag("StoreError", (e) => Effect.logError(`store: ${e.operation}: ${e.reason}`))
 * )
 *
 * // the application's transaction, retried when Postgres asks for it (serialization failure, deadlock)
 * const retryable = (e: unknown) =>
 *   e instanceof DurableError.StoreError && (e.sqlState === "40001" || e.sqlState === "40P01")
 * ```
 * @since 0.2.0
 * @category errors
 */
export class StoreError extends Schema.TaggedError<StoreError>()("StoreError", {
  operation: Schema.String,
  reason: Schema.String,
  /** @since 0.3.0 */
  sqlState: Schema.optional(Schema.String)
}) {
  override get message(): string {
    return `job store: ${this.operation} failed: ${this.reason}`
  }
}

/**
 * No job has this id in the store: it never existed, or it was purged.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { JobQueue } from "effect-workpool"
 *
 * const statusOrNull = (id: string) =>
 *   JobQueue.status(id).pipe(Effect.catchTag("JobNotFound", () => Effect.succeed(null)))
 * ```
 * @since 0.2.0
 * @category errors
 */
export class JobNotFound extends Schema.TaggedError<JobNotFound>()("JobNotFound", {
  id: Schema.String
}) {
  override get message(): string {
    return `no job ${this.id} in the store`
  }
}

/**
 * The job was cancelled (by `JobQueue.cancel`, from any process) before it finished.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { JobQueue, Task } from "effect-workpool"
 *
 * const Ping = Task.make("Ping", { payload: Schema.String, success: Schema.String })
 * const result = (id: string) =>
 *   JobQueue.await(Ping, id).pipe(Effect.catchTag("JobCancelled", () => Effect.succeed("cancelled")))
 * ```
 * @since 0.2.0
 * @category errors
 */
export class JobCancelled extends Schema.TaggedError<JobCancelled>()("JobCancelled", {
  id: Schema.String
}) {
  override get message(): string {
    return `job ${this.id} was cancelled`
  }
}

/**
 * The job expired: no attempt of it had started within its `expireIn` (`JobQueue.enqueue`'s
 * option) of its enqueue, so it never runs. It ended `cancelled`, at `expiredAt` (store time).
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { JobQueue, Task } from "effect-workpool"
 *
 * const SendCode = Task.make("SendCode", { payload: Schema.String, success: Schema.Void })
 * const sent = (id: string) =>
 *   JobQueue.await(SendCode, id).pipe(
 *     Effect.as(true),
 *     Effect.catchTag("JobExpired", (e) => Effect.as(Effect.log(`too late since ${e.expiredAt.toISOString()}`), false))
 *   )
 * ```
 * @since 0.3.0
 * @category errors
 */
export class JobExpired extends Schema.TaggedError<JobExpired>()("JobExpired", {
  id: Schema.String,
  expiredAt: Schema.Date
}) {
  override get message(): string {
    return `job ${this.id} expired unstarted at ${this.expiredAt.toISOString()}`
  }
}

/**
 * The job was to run after another (`EnqueueOptions.after`), which ended `dead` or `cancelled`
 * instead of succeeding: the job ended cancelled without running (`afterFailure: "cancel"`, the
 * default). `dependency` is the one of its own `after` that ended so; a job cancelled this way
 * ends its own dependents the same way, each naming the job it waited for.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { JobQueue, Task } from "effect-workpool"
 *
 * const Zip = Task.make("Zip", { payload: Schema.String, success: Schema.String })
 * const zipped = (id: string) =>
 *   JobQueue.await(Zip, id).pipe(
 *     Effect.catchTag("DependencyFailed", (e) => Effect.succeed(`not zipped: ${e.dependency} ended ${e.state}`))
 *   )
 * ```
 * @since 0.3.0
 * @category errors
 */
export class DependencyFailed extends Schema.TaggedError<DependencyFailed>()("DependencyFailed", {
  id: Schema.String,
  dependency: Schema.String,
  state: Schema.Literals(["dead", "cancelled"])
}) {
  override get message(): string {
    return `job ${this.id} was cancelled: its dependency ${this.dependency} ended ${this.state}`
  }
}

/**
 * An attempt of a durable job ran longer than its `timeout`, counted from the attempt's start on
 * the consumer's clock. It counts as a failed attempt (retried while attempts remain).
 *
 * @example
 * ```ts
 * import { DurableError } from "effect-workpool"
 *
 * const error = new DurableError.AttemptTimeout({ id: "3f2a…", attempt: 1, millis: 30_000 })
 * ```
 * @since 0.2.0
 * @category errors
 */
export class AttemptTimeout extends Schema.TaggedError<AttemptTimeout>()("AttemptTimeout", {
  id: Schema.String,
  attempt: Schema.Number,
  millis: Schema.Number
}) {
  override get message(): string {
    return `job ${this.id}: attempt ${this.attempt} timed out after ${this.millis} ms`
  }
}

/**
 * The consumer running an attempt stopped renewing its lease (it died, or was stopped past its
 * lease), and a reaper took the job back. It counts as a failed attempt.
 *
 * @example
 * ```ts
 * import { DurableError } from "effect-workpool"
 *
 * const error = new DurableError.LeaseExpired({ id: "3f2a…", attempt: 2 })
 * ```
 * @since 0.2.0
 * @category errors
 */
export class LeaseExpired extends Schema.TaggedError<LeaseExpired>()("LeaseExpired", {
  id: Schema.String,
  attempt: Schema.Number
}) {
  override get message(): string {
    return `job ${this.id}: the consumer of attempt ${this.attempt} stopped renewing its lease`
  }
}

/**
 * A job was awaited (`JobQueue.await`, or a handle from `JobQueue.handleOf`) with a task other than
 * its own: its result would be decoded by the wrong Schemas. `task` is the job's (as stored),
 * `expected` the given task's name (or, from an untyped caller, what was given instead of a Task).
 * It fails at once, whatever the job's state.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { JobQueue, Task } from "effect-workpool"
 *
 * const Thumbnail = Task.make("Thumbnail", { payload: Schema.String, success: Schema.String })
 * const thumbnail = (id: string) =>
 *   JobQueue.await(Thumbnail, id).pipe(
 *     Effect.catchTag("TaskMismatch", (e) => Effect.fail(`job ${e.id} is a ${e.task} job`))
 *   )
 * ```
 * @since 0.3.0
 * @category errors
 */
export class TaskMismatch extends Schema.TaggedError<TaskMismatch>()("TaskMismatch", {
  id: Schema.String,
  task: Schema.String,
  expected: Schema.String
}) {
  override get message(): string {
    return `job ${this.id}: its task ${JSON.stringify(this.task)} is not ${JSON.stringify(this.expected)}`
  }
}
