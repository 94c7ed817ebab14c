/**
 * The errors a pool adds to a job's own error type. Each is a `Schema.TaggedError`, so it can be
 * matched with `Effect.catchTag`, encoded, and sent across a thread or process boundary unchanged.
 *
 * A job's own failure `E` reaches its awaiter as it is; a defect stays a defect with its `Cause`.
 * These errors describe what the pool itself did to the job.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * The queue was full and the pool's overflow policy is `"fail"`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { WorkPool } from "effect-workpool"
 *
 * const program = Effect.gen(function* () {
 *   const pool = yield* WorkPool.make({ concurrency: 1, capacity: 1, overflow: "fail" })
 *   return yield* pool.run(Effect.succeed(1)).pipe(
 *     Effect.catchTag("QueueFull", (e) => Effect.succeed(-e.capacity))
 *   )
 * })
 * ```
 * @since 0.1.0
 * @category errors
 */
export class QueueFull extends Schema.TaggedError<QueueFull>()("QueueFull", {
  capacity: Schema.Number
}) {
  override get message(): string {
    return `the pool's queue is full (capacity ${this.capacity})`
  }
}

/**
 * The job was queued and then dropped by the `"dropOldest"` or `"dropNewest"` overflow policy.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { WorkPool } from "effect-workpool"
 *
 * const program = Effect.gen(function* () {
 *   const pool = yield* WorkPool.make({ concurrency: 1, capacity: 1, overflow: "dropOldest" })
 *   return yield* pool.run(Effect.succeed("reading")).pipe(
 *     Effect.catchTag("JobDropped", (e) => Effect.succeed(`job ${e.jobId} dropped by ${e.policy}`))
 *   )
 * })
 * ```
 * @since 0.1.0
 * @category errors
 */
export class JobDropped extends Schema.TaggedError<JobDropped>()("JobDropped", {
  jobId: Schema.Number,
  policy: Schema.Literals(["dropOldest", "dropNewest"])
}) {
  override get message(): string {
    return `job ${this.jobId} was dropped by the ${this.policy} overflow policy`
  }
}

/**
 * The job passed its deadline. `phase: "running"` counts from the job's start (`timeout`);
 * `phase: "queued"` counts from its submission while it was still waiting (`queueTimeout`), or from
 * its return to the queue after a failed attempt (see `retry`).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { WorkPool } from "effect-workpool"
 *
 * const program = Effect.gen(function* () {
 *   const pool = yield* WorkPool.make({ concurrency: 2, timeout: "1 second" })
 *   return yield* pool.run(Effect.never).pipe(
 *     Effect.catchTag("JobTimeout", (e) => Effect.succeed(`job ${e.jobId} timed out after ${e.millis} ms`))
 *   )
 * })
 * ```
 * @since 0.1.0
 * @category errors
 */
export class JobTimeout extends Schema.TaggedError<JobTimeout>()("JobTimeout", {
  jobId: Schema.Number,
  millis: Schema.Number,
  phase: Schema.Literals(["queued", "running"])
}) {
  override get message(): string {
    return `job ${this.jobId} timed out after ${this.millis} ms while ${this.phase}`
  }
}

/**
 * The pool is shutting down or has shut down. `phase` says where the job was: `"admission"` (it was
 * never admitted), `"queued"` (admitted, never started), `"retrying"` (waiting for its retry after a
 * failed attempt) or `"running"` (interrupted at the shutdown deadline, or by `shutdownNow`).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { WorkPool } from "effect-workpool"
 *
 * const program = Effect.gen(function* () {
 *   const pool = yield* WorkPool.make({ concurrency: 1 })
 *   yield* pool.shutdown
 *   return yield* Effect.flip(pool.run(Effect.succeed(1))) // PoolShutdown { phase: "admission" }
 * })
 * ```
 * @since 0.1.0
 * @category errors
 */
export class PoolShutdown extends Schema.TaggedError<PoolShutdown>()("PoolShutdown", {
  phase: Schema.Literals(["admission", "queued", "retrying", "running"])
}) {
  override get message(): string {
    return `the pool is shut down (job ${this.phase === "admission" ? "not admitted" : `was ${this.phase}`})`
  }
}

/**
 * The worker that ran the job died (a worker thread that crashed or ran out of memory). Only the
 * jobs that were on that worker fail; the pool replaces the worker.
 *
 * @example
 * ```ts
 * import { PoolError } from "effect-workpool"
 *
 * const error = new PoolError.WorkerCrashed({ jobId: 7, reason: "exit code 1" })
 * ```
 * @since 0.1.0
 * @category errors
 */
export class WorkerCrashed extends Schema.TaggedError<WorkerCrashed>()("WorkerCrashed", {
  jobId: Schema.Number,
  reason: Schema.String
}) {
  override get message(): string {
    return `the worker running job ${this.jobId} crashed: ${this.reason}`
  }
}

/**
 * A worker thread could not be started: it failed or exited before it was ready, on every try of
 * the pool's start schedule.
 *
 * @example
 * ```ts
 * import { PoolError } from "effect-workpool"
 *
 * const error = new PoolError.WorkerStartFailed({ attempts: 3, reason: "SyntaxError: ..." })
 * ```
 * @since 0.1.0
 * @category errors
 */
export class WorkerStartFailed extends Schema.TaggedError<WorkerStartFailed>()("WorkerStartFailed", {
  attempts: Schema.Number,
  reason: Schema.String
}) {
  override get message(): string {
    return `a worker thread failed to start (${this.attempts} attempts): ${this.reason}`
  }
}

/**
 * A thread task's payload, success or failure did not encode or decode against its task's Schema,
 * or (part `"reply"`) the message carrying its success or failure could not be deserialized on the
 * main thread (a value nested too deep for its stack, say); a payload the thread could not
 * deserialize is part `"payload"`; a task the worker serves no handler for is part `"handler"`. The
 * task fails; the thread goes on serving.
 *
 * @example
 * ```ts
 * import { PoolError } from "effect-workpool"
 *
 * const error = new PoolError.TaskCodecError({ task: "Resize", part: "payload", issue: "Expected number" })
 * ```
 * @since 0.1.0
 * @category errors
 */
export class TaskCodecError extends Schema.TaggedError<TaskCodecError>()("TaskCodecError", {
  task: Schema.String,
  part: Schema.Literals(["payload", "success", "failure", "handler", "reply"]),
  issue: Schema.String
}) {
  override get message(): string {
    return this.part === "reply"
      ? `task ${this.task}: its reply could not be deserialized on the main thread: ${this.issue}`
      : this.part === "handler"
      ? `task ${this.task}: ${this.issue} (its worker does not serve it)`
      : `task ${this.task}: its ${this.part} does not match its schema: ${this.issue}`
  }
}

/**
 * A pool option is invalid. `field` names the option, `value` shows what was given (as text) and
 * `reason` says what was expected.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { WorkPool } from "effect-workpool"
 *
 * const program = WorkPool.make({ concurrency: 0 }).pipe(
 *   Effect.catchTag("InvalidPoolConfig", (e) => Effect.die(e.message)) // "invalid pool option concurrency: ... got 0"
 * )
 * ```
 * @since 0.1.0
 * @category errors
 */
export class InvalidPoolConfig extends Schema.TaggedError<InvalidPoolConfig>()("InvalidPoolConfig", {
  field: Schema.String,
  value: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `invalid pool option ${this.field}: ${this.reason}, got ${this.value}`
  }
}

/**
 * A per-job option is invalid (`priority`, `timeout`, `queueTimeout`, a thread task's `transfer`,
 * `mapStream`'s `unordered` and `buffer`), or the options are not an object (`field: "options"`); the
 * job was not admitted.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { WorkPool } from "effect-workpool"
 *
 * const program = Effect.gen(function* () {
 *   const pool = yield* WorkPool.make({ concurrency: 1 })
 *   return yield* Effect.flip(pool.run(Effect.void, { priority: Number.NaN })) // field: "priority"
 * })
 * ```
 * @since 0.1.0
 * @category errors
 */
export class InvalidJobOptions extends Schema.TaggedError<InvalidJobOptions>()("InvalidJobOptions", {
  field: Schema.String,
  value: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `invalid job option ${this.field}: ${this.reason}, got ${this.value}`
  }
}

/**
 * What was submitted as a job is neither an `Effect` nor a function `(resource, jobId) => Effect`
 * (a Promise, a number, `undefined`: possible from JavaScript, or through a cast). The job was not
 * admitted. `field` is `"job"`; `"jobs[i]"` for the `i`-th job given to `runAll`, or `"jobs"` when
 * they cannot be read as a batch (not iterable, an iterator that throws, more than 1,000,000, a
 * `Stream` or a Promise passed by mistake), in which case none of that batch was submitted. A
 * `ThreadPool` gives `"task"` for something that is not a `Task`, and `"payloads"` for `runAll`'s
 * payloads that cannot be read.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { WorkPool } from "effect-workpool"
 *
 * const program = Effect.gen(function* () {
 *   const pool = yield* WorkPool.make({ concurrency: 1 })
 *   const fromJavaScript: any = Promise.resolve(1)
 *   return yield* Effect.flip(pool.run(fromJavaScript)) // InvalidJob { field: "job", value: "a Promise" }
 * })
 * ```
 * @since 0.2.0
 * @category errors
 */
export class InvalidJob extends Schema.TaggedError<InvalidJob>()("InvalidJob", {
  field: Schema.String,
  value: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `invalid ${this.field}: ${this.reason}, got ${this.value}`
  }
}

/**
 * The errors a submission can fail with before its job is admitted: a full queue (overflow
 * `"fail"`), a pool that is shutting down, an invalid job or invalid job options.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { PoolError, WorkPool } from "effect-workpool"
 *
 * const trySubmit = <A, E>(pool: WorkPool.WorkPool, job: Effect.Effect<A, E>) =>
 *   pool.submit(job).pipe(Effect.catch((e: PoolError.AdmissionError) => Effect.succeed(e._tag)))
 * ```
 * @since 0.2.0
 * @category models
 */
export type AdmissionError = QueueFull | PoolShutdown | InvalidJobOptions | InvalidJob

/**
 * The errors the pool can give a job after admitting it: dropped by the overflow policy, timed out,
 * or stopped by a shutdown. It is what `JobHandle.await` adds to the job's own error.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { PoolError, WorkPool } from "effect-workpool"
 *
 * // after admission, only these three can happen: no QueueFull to handle here
 * const orNull = (handle: WorkPool.JobHandle<string, never>) =>
 *   handle.await.pipe(
 *     Effect.catch((e: PoolError.AdmittedJobError) => Effect.succeed(e._tag === "PoolShutdown" ? null : e.message))
 *   )
 * ```
 * @since 0.2.0
 * @category models
 */
export type AdmittedJobError = JobDropped | JobTimeout | PoolShutdown

/**
 * Every error the pool can add to a job submitted with `run`, `submit` or `runAll`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { PoolError } from "effect-workpool"
 *
 * const orNull = <A>(job: Effect.Effect<A, PoolError.JobError>) =>
 *   job.pipe(Effect.catchTags({ QueueFull: () => Effect.succeed(null), JobTimeout: () => Effect.succeed(null) }))
 * ```
 * @since 0.1.0
 * @category models
 */
export type JobError = AdmissionError | AdmittedJobError

/**
 * Every error of this library.
 *
 * @example
 * ```ts
 * import type { PoolError } from "effect-workpool"
 *
 * const describe = (error: PoolError.PoolError): string => `${error._tag}: ${error.message}`
 * ```
 * @since 0.1.0
 * @category models
 */
export type PoolError = JobError | WorkerCrashed | WorkerStartFailed | TaskCodecError | InvalidPoolConfig

const errors = [
  QueueFull,
  JobDropped,
  JobTimeout,
  PoolShutdown,
  InvalidJobOptions,
  InvalidJob,
  WorkerCrashed,
  WorkerStartFailed,
  TaskCodecError,
  InvalidPoolConfig
] as const

/**
 * Marks the library's errors, on their prototypes: the guards test it rather than `instanceof`, so
 * that an error made by a second copy of the package (two versions installed side by side) is
 * still recognized, as `WorkPool.isWorkPool` recognizes pools by their type id.
 *
 * @example
 * ```ts
 * import { PoolError } from "effect-workpool"
 *
 * const fromThisLibrary = (u: object) => PoolError.TypeId in u
 * ```
 * @since 0.2.0
 * @category symbols
 */
export const TypeId = "~effect-workpool/PoolError" as const

/**
 * The type of `TypeId`.
 *
 * @example
 * ```ts
 * import type { PoolError } from "effect-workpool"
 *
 * const id: PoolError.TypeId = "~effect-workpool/PoolError"
 * ```
 * @since 0.2.0
 * @category symbols
 */
export type TypeId = typeof TypeId

for (const error of errors) Object.defineProperty(error.prototype, TypeId, { value: TypeId })

const JOB_ERROR_TAGS: ReadonlySet<string> = new Set<JobError["_tag"]>([
  "QueueFull",
  "JobDropped",
  "JobTimeout",
  "PoolShutdown",
  "InvalidJobOptions",
  "InvalidJob"
])

/**
 * Whether a value is one of this library's errors, by its `TypeId`, not by `_tag` (a job's own error
 * tagged `"QueueFull"` is not one), and not by `instanceof` (an error from a second copy of the
 * package is one).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { PoolError } from "effect-workpool"
 *
 * // retry the job's own failures, not what the pool did to it
 * const retryOwnFailures = <A, E>(job: Effect.Effect<A, E>) =>
 *   Effect.retry(job, { times: 3, while: (e) => !PoolError.isPoolError(e) })
 * ```
 * @since 0.2.0
 * @category guards
 */
export const isPoolError = (u: unknown): u is PoolError =>
  typeof u === "object" && u !== null && (u as { readonly [TypeId]?: unknown })[TypeId] === TypeId

/**
 * Whether a value is one of the errors the pool adds to a job (`JobError`).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { PoolError } from "effect-workpool"
 *
 * const describe = (error: unknown) =>
 *   PoolError.isJobError(error) ? `the pool: ${error._tag}` : `the job: ${String(error)}`
 * ```
 * @since 0.2.0
 * @category guards
 */
export const isJobError = (u: unknown): u is JobError => isPoolError(u) && JOB_ERROR_TAGS.has(u._tag)
