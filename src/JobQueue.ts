/**
 * Durable jobs: a queue kept in a store (`JobStore`: an SQLite file, Postgres, Redis, or memory for
 * tests) that survives restarts and is shared by any number of processes. Producers `enqueue` a `Task` with its
 * payload; consumers (`consume`) claim and run them on a pool with the same handlers
 * (`Task.handle`) the thread pool uses. Any process can follow a job by its id: `status`, `await`
 * (the typed result, decoded from the stored `Exit`), `cancel`.
 *
 * Delivery is at least once: a consumer that dies mid-job loses its lease and another consumer runs
 * the job again, so handlers should be idempotent (see docs/durable.md).
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { JobQueue, Task } from "effect-workpool"
 * import * as JobStore from "effect-workpool/JobStore"
 *
 * const SendEmail = Task.make("SendEmail", { payload: Schema.Struct({ to: Schema.String }), success: Schema.String })
 *
 * const program = Effect.scoped(Effect.gen(function* () {
 *   yield* JobQueue.consume({
 *     queues: ["mail"],
 *     handlers: [Task.handle(SendEmail, ({ to }) => Effect.succeed(`sent to ${to}`))],
 *     concurrency: 4
 *   })
 *   const job = yield* JobQueue.enqueue(SendEmail, { to: "ada@mail.test" }, { queue: "mail", priority: 5 })
 *   return yield* job.await // "sent to ada@mail.test", from this process or any other
 * })).pipe(Effect.provide(JobStore.sqlite({ filename: "jobs.db" })))
 * ```
 *
 * @since 0.2.0
 */
import { type Cause, Clock, type Context, Cron, type Data, type Duration, Effect, Exit, Option, Result, Schedule, Stream, Tracer } from "effect"
import type * as Scope from "effect/Scope"
import type { AttemptTimeout, JobCancelled, JobExpired, LeaseExpired } from "./DurableError.ts"
import { DependencyFailed, JobNotFound, type StoreError, TaskMismatch } from "./DurableError.ts"
import { InvalidJobOptions, InvalidPoolConfig, TaskCodecError } from "./PoolError.ts"
import type * as Task from "./Task.ts"
import type * as WorkPool from "./WorkPool.ts"
import * as config from "./internal/config.ts"
import * as ConsumerImpl from "./internal/durable/consumer.ts"
import * as Events from "./internal/durable/events.ts"
import * as JobInfos from "./internal/jobInfo.ts"
import { outsideTransactions } from "./internal/sqlTransaction.ts"
import { checkTask } from "./internal/taskCodecs.ts"
import * as ThreadJson from "./internal/threadJson.ts"
import * as RateLimits from "./internal/rateLimit.ts"
import * as Retries from "./internal/retry.ts"
import * as Backoff from "./internal/durable/backoff.ts"
import * as Repeat from "./internal/durable/repeat.ts"
import { JobSnoozed } from "./internal/durable/snooze.ts"
import { decodeExit, encodePayload, encodePayloadNow } from "./internal/durable/exit.ts"
import { type Batch, CHUNK, END, Items, MAX_ITEMS } from "./internal/items.ts"
import { encodeTrace, expiredAt, type FailedDependency, FINAL_STATES, type FreshJob, JobStore, type JobRow, MAX_AFTER, type NewJob, NO_TIMEOUT, type QueueCounts, RETAINED, type Retention as StoredRetention, type State, STATES } from "./internal/store/model.ts"

/**
 * Where a durable job is. `blocked` waits for the jobs it runs after (`EnqueueOptions.after`);
 * `delayed` is a queued job whose time has not come (a `delay`, or the wait before a retry); `dead`
 * ended in failure (out of attempts, or not retryable) and can be redriven.
 *
 * @example
 * ```ts
 * import type { JobQueue } from "effect-workpool"
 *
 * const isFinal = (state: JobQueue.JobState) => state === "succeeded" || state === "dead" || state === "cancelled"
 * ```
 * @since 0.2.0
 * @category models
 */
export type JobState = "blocked" | "queued" | "delayed" | "running" | "succeeded" | "dead" | "cancelled"

/**
 * A durable job as the store has it.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { JobQueue } from "effect-workpool"
 *
 * const describe = (id: string) =>
 *   Effect.map(JobQueue.status(id), (job: JobQueue.JobInfo) => `${job.task} ${job.state}, attempt ${job.attempts}/${job.maxAttempts}`)
 * ```
 * @since 0.2.0
 * @category models
 */
export interface JobInfo {
  readonly id: string
  readonly queue: string
  readonly task: string
  readonly state: JobState
  readonly priority: number
  readonly dedupKey: string | undefined
  /** Attempts started; one given back by a consumer's shutdown, or snoozed, does not count. */
  readonly attempts: number
  /**
   * How many times its handlers snoozed it (`snooze`): not bounded by `maxAttempts`, so a job that
   * snoozes for ever shows here. 0 on a row of a schema from before snoozes.
   */
  readonly snoozes: number
  readonly maxAttempts: number
  readonly createdAt: Date
  /** When it may run (next): its delay, or its retry's. */
  readonly visibleAt: Date
  readonly startedAt: Date | undefined
  readonly finishedAt: Date | undefined
  /** A cancel was asked for while it ran; its consumer stops it within a heartbeat. */
  readonly cancelRequested: boolean
  /** Its own retry policy (durations in milliseconds, `factor` filled in); undefined: the consumer's. */
  readonly retry: JobRetry | undefined
  /** Its key under its queue's per-key cap (`EnqueueOptions.group`); undefined: none. */
  readonly group: string | undefined
  /**
   * While it waits for its first attempt: when it expires if none has started by then
   * (`EnqueueOptions.expireIn`, store time); undefined once started, or with no expiry.
   */
  readonly expiresAt: Date | undefined
  /**
   * When it expired, never having started (it is `cancelled`, and its `await` fails with
   * `JobExpired`); undefined for any other job, a job cancelled before its expiry included.
   */
  readonly expiredAt: Date | undefined
  /**
   * The latest value its handler reported with `WorkPool.JobContext`'s `progress` (as JSON: a value
   * that is not JSON is not stored), kept after the job ends and through its retries; undefined if
   * none, or none since a `redrive`.
   */
  readonly progress: unknown
  /** How many of the jobs it runs after (`EnqueueOptions.after`) have not succeeded yet; 0 for none. */
  readonly waitingFor: number
  /**
   * The job of its `after` whose end (dead or cancelled) ended it cancelled without running
   * (`afterFailure: "cancel"`): its awaiters fail with `DependencyFailed`. Undefined: none.
   */
  readonly failedDependency: { readonly id: string; readonly state: "dead" | "cancelled" } | undefined
}

/**
 * The durable job a handler runs for: `Option.some` of it inside a consumer's handler (on a fiber,
 * or on a `ThreadPool` consumer's thread), `Option.none()` anywhere else. Its `id` is the one
 * `enqueue` returned, the same in every attempt and process (an idempotency key for a payment or
 * mail API); `attempt` is this attempt as the store counts it (a retry, or a lease that expired
 * and another consumer took back, is the next). A `Context.Reference`: reading it needs no
 * service, and a test of a handler can provide one.
 *
 * @example
 * ```ts
 * import { Effect, Option, Schema } from "effect"
 * import { JobQueue, Task } from "effect-workpool"
 *
 * const Charge = Task.make("Charge", { payload: Schema.Struct({ cents: Schema.Number }), success: Schema.String })
 * declare const charge: (cents: number, idempotencyKey: string) => Effect.Effect<string>
 *
 * const handler = Task.handle(Charge, ({ cents }) =>
 *   Effect.gen(function* () {
 *     const job = yield* JobQueue.CurrentJob
 *     if (Option.isNone(job)) return yield* Effect.die("Charge runs only as a durable job")
 *     const { id, attempt, maxAttempts, queue } = job.value
 *     if (attempt === maxAttempts) yield* Effect.logWarning(`last attempt of ${id} on ${queue}`)
 *     return yield* charge(cents, id) // the same key in every attempt: charged once
 *   }))
 *
 * // a test of the handler gives it a job of its own
 * const inTest = (effect: Effect.Effect<string>) =>
 *   Effect.provideService(effect, JobQueue.CurrentJob, Option.some({
 *     id: "job-1", queue: "payments", task: "Charge", attempt: 1, maxAttempts: 3,
 *     createdAt: new Date(0), dedupKey: undefined, priority: 0
 *   }))
 * ```
 * @since 0.3.0
 * @category context
 */
export const CurrentJob: Context.Reference<Option.Option<CurrentJob>> = JobInfos.CurrentJob

/**
 * The value of `CurrentJob`: the durable job's id, queue, task, this attempt (the store's count),
 * its `maxAttempts`, when it was enqueued (the store's clock), its dedup key and its priority.
 *
 * @example
 * ```ts
 * import { Effect, Option } from "effect"
 * import { JobQueue } from "effect-workpool"
 *
 * const isLastAttempt = (job: JobQueue.CurrentJob) => job.attempt >= job.maxAttempts
 * const lastAttempt = Effect.map(JobQueue.CurrentJob, Option.exists(isLastAttempt))
 * ```
 * @since 0.3.0
 * @category context
 */
export interface CurrentJob extends JobInfos.CurrentJobInfo {}

/**
 * A job's own retry policy, chosen by its producer and stored with the job, so that it holds in
 * whichever process retries it: a backoff (plain data, since a `Schedule` is code and cannot be
 * stored), or the name of a policy the consumers register with `consume({ retryPolicies })`.
 *
 * - `{ exponential, factor?, max? }`: `exponential * factor ** (n - 1)` before retry n (factor 2 by
 *   default), at most `max`;
 * - `{ fixed }`: the same delay before every retry;
 * - a name: that registered `Schedule` (or `{ schedule?, times?, while? }`). A consumer that does not
 *   register the name retries the job with its own `retry` and logs a warning.
 *
 * Like the consumer's own policy, it is replayed from the job's stored attempt count (so the delay is
 * the same whichever consumer retries), and `maxAttempts` bounds it. It has no jitter: a random delay
 * would differ between consumers. A job taken back from a dead consumer (its lease expired) waits its
 * own delay too: every store's reaper computes a backoff's by the same formula (delays are whole
 * milliseconds, rounded half up), and a named policy's from the reaping consumer's `retryPolicies`.
 *
 * @example
 * ```ts
 * import type { JobQueue } from "effect-workpool"
 *
 * const fast: JobQueue.JobRetry = { exponential: "500 millis", factor: 3, max: "1 minute" }
 * const steady: JobQueue.JobRetry = { fixed: "30 seconds" }
 * const named: JobQueue.JobRetry = "webhooks" // consume({ retryPolicies: { webhooks: ... } })
 * ```
 * @since 0.3.0
 * @category models
 */
export type JobRetry =
  // each backoff's keys are `never` in the other: TypeScript takes a key of any member of a union in an
  // object literal, and `{ fixed, factor }` compiled, to be refused at run time
  | {
    readonly exponential: Duration.Input
    readonly factor?: number | undefined
    readonly max?: Duration.Input | undefined
    readonly fixed?: never
  }
  | { readonly fixed: Duration.Input; readonly exponential?: never; readonly factor?: never; readonly max?: never }
  | string

/**
 * Options of `enqueue`.
 *
 * @example
 * ```ts
 * import type { JobQueue } from "effect-workpool"
 *
 * const options: JobQueue.EnqueueOptions = {
 *   queue: "mail",          // default "default"
 *   priority: 5,            // higher first; FIFO within a priority
 *   delay: "10 minutes",    // or runAt: a Date
 *   dedupKey: "welcome:42", // a second enqueue while this one is unfinished returns this one
 *   dedupWhile: "running",  // or "queued": the key is released when it starts
 *   dedupFor: "1 hour",     // and held at least an hour after this enqueue (a throttle)
 *   dedupReplace: "payload", // a hit on a waiting job gives it this payload ("debounce": its delay too)
 *   timeout: "30 seconds",  // per attempt, from its start
 *   maxAttempts: 5,         // default 3
 *   retry: { exponential: "1 second", max: "1 minute" }, // its own backoff (default: the consumer's retry)
 *   group: "tenant-42",     // under setGroupConcurrency, at most n of this key's jobs run at once
 *   after: ["0b8e6a8c-…"],  // runs once these jobs (ids or handles) have succeeded
 *   afterFailure: "cancel"  // the default: one that ends dead or cancelled cancels this one ("run": runs anyway)
 * }
 * ```
 * @since 0.2.0
 * @category models
 */
export interface EnqueueOptions {
  /** Default "default"; at most 1,000 bytes in UTF-8, no NUL, no lone surrogate (as every queue name this module takes). */
  readonly queue?: string | undefined
  /** Higher first; at most 1e15 either way (a store multiplies it by the queue's aging). */
  readonly priority?: number | undefined
  /** Finite, at most 1e15 ms (a store adds it to its time in an integer column). */
  readonly delay?: Duration.Input | undefined
  readonly runAt?: Date | undefined
  /**
   * While a job of the queue holds this key, another enqueue with it creates nothing and returns that
   * job. At most 1,000 bytes in UTF-8, no NUL, no lone surrogate.
   */
  readonly dedupKey?: string | undefined
  /**
   * How long the job holds its `dedupKey`: `"running"` (the default) until it finishes, so a trigger
   * arriving during its run is dropped; `"queued"` until it first starts, so such a trigger creates
   * one follow-up job (its retries do not take the key back). Needs a `dedupKey`.
   */
  readonly dedupWhile?: "running" | "queued" | undefined
  /**
   * A throttle window: the key stays held this long after the enqueue (store time) whatever the job's
   * state, finished included, so at most one job per window (on top of `dedupWhile`). Finite and
   * above 0; needs a `dedupKey`.
   */
  readonly dedupFor?: Duration.Input | undefined
  /**
   * When the key's holder is still waiting (queued or delayed: not running, not finished) and of the
   * same task, update it instead of only returning it: `"payload"` gives it this enqueue's payload;
   * `"debounce"` this enqueue's payload and run time too (its `delay` or `runAt`, from now: each
   * trigger pushes the run back). Its handle is returned as ever (`created: false`). Needs a `dedupKey`.
   */
  readonly dedupReplace?: "payload" | "debounce" | undefined
  /** Per attempt; at most 1e15 ms, or `Infinity` for none (the default: the consumer's). */
  readonly timeout?: Duration.Input | undefined
  /**
   * How long after this enqueue (store time) its first attempt may start: past it, no consumer
   * ever starts it, and it ends `cancelled`, its `await` failing with `JobExpired`. A started job
   * never expires (its retries run past it). Finite, above 0, at most 1e15 ms, and longer than
   * its `delay` (or than until its `runAt`). Default: none.
   */
  readonly expireIn?: Duration.Input | undefined
  readonly maxAttempts?: number | undefined
  /** Its own retry policy (see `JobRetry`), which wins over the consumer's `retry`. */
  readonly retry?: JobRetry | undefined
  /**
   * Its key under the queue's per-key cap (`setGroupConcurrency`): at most that many jobs of one key
   * run at once, fleet-wide, and the keys are served in turn. 1 to 256 characters, no NUL, no lone
   * surrogate. Kept (and shown by `status`) in a queue without the cap, which ignores it.
   */
  readonly group?: string | undefined
  /**
   * The jobs it runs after, by id or handle (of any queue and task): it is stored `blocked`, and
   * becomes queued (or delayed, if its `delay` or `runAt` is still ahead) once every one of them
   * has succeeded, in the same store step as the last one's end. One already succeeded counts as
   * done; one not in the store (never, or deleted) fails the enqueue with `JobNotFound` naming it,
   * nothing stored. In `enqueueAll`'s items, `{ item: i }` names the job of the call's item `i`
   * (an earlier one): a whole DAG in one atomic call. At most 1,000, no duplicates; empty: none.
   * Every store of this library keeps dependencies (on a Redis Cluster, of the job's own queue only);
   * a store of one's own that does not refuses them with `InvalidJobOptions`.
   */
  readonly after?: ReadonlyArray<string | { readonly id: string } | { readonly item: number }> | undefined
  /**
   * When one of `after` ends dead or cancelled: `"cancel"` (the default) ends this job cancelled at
   * once, without running (its awaiters fail with `DependencyFailed` naming that job), and its own
   * dependents after it; `"run"` counts it as done, so the job runs once every one of them has ended.
   * Needs `after`.
   */
  readonly afterFailure?: "cancel" | "run" | undefined
}

/**
 * What `await` can fail with besides the task's own error: a codec error, a timed-out last attempt,
 * a dead consumer's expired lease, a cancel, an expiry (`expireIn`), a dependency that did not
 * succeed, an unknown id, a job of another task, the store.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { JobQueue } from "effect-workpool"
 *
 * const tagOf = (error: JobQueue.AwaitError) => error._tag
 * ```
 * @since 0.2.0
 * @category models
 */
export type AwaitError =
  | TaskCodecError
  | AttemptTimeout
  | LeaseExpired
  | JobCancelled
  | JobExpired
  | DependencyFailed
  | JobNotFound
  | TaskMismatch
  | StoreError

/**
 * A durable job, by its id: valid in every process that shares the store.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { JobQueue, Task } from "effect-workpool"
 *
 * const Resize = Task.make("Resize", { payload: Schema.String, success: Schema.Number })
 * const program = Effect.gen(function* () {
 *   const job: JobQueue.JobHandle<number, never> = yield* JobQueue.enqueue(Resize, "cat.png")
 *   yield* Effect.log(`queued ${job.id}${job.created ? "" : " (already queued)"}`)
 *   return yield* job.await
 * })
 * ```
 * @since 0.2.0
 * @category models
 */
export interface JobHandle<S, F> {
  readonly id: string
  /** False when `dedupKey` matched an unfinished job: this is that job. */
  readonly created: boolean
  readonly await: Effect.Effect<S, F | AwaitError, JobStore>
  readonly status: Effect.Effect<JobInfo, JobNotFound | StoreError, JobStore>
  readonly cancel: Effect.Effect<CancelResult, JobNotFound | StoreError, JobStore>
  /** Its progress as stored, from any process: see `progressChanges`. */
  readonly progressChanges: Stream.Stream<unknown, JobNotFound | StoreError, JobStore>
}

/**
 * What `cancel` did: `"cancelled"` (it was queued, and is now cancelled), `"requested"` (it is
 * running: its consumer stops it within a heartbeat), `"finished"` (too late: it had ended).
 *
 * @example
 * ```ts
 * import type { JobQueue } from "effect-workpool"
 *
 * const done = (result: JobQueue.CancelResult) => result !== "requested"
 * ```
 * @since 0.2.0
 * @category models
 */
export type CancelResult = "cancelled" | "requested" | "finished"

const DEFAULT_QUEUE = "default"
const DEFAULT_MAX_ATTEMPTS = 3
/** How often `await` looks at the store for other processes' changes. */
const AWAIT_POLL = 250

const invalid = <A>(check: () => A): Effect.Effect<A, InvalidJobOptions> =>
  Effect.try({
    try: check,
    catch: (error) => {
      if (error instanceof config.OptionError) return new InvalidJobOptions(error.invalid)
      throw error
    }
  })

const { storedName, unstorable } = config
const queueName = storedName

/**
 * A store orders a queue with aging by `priority × aging − visibleAt`: both are bounded so that the
 * product is finite (Postgres failed the enqueue with "value out of range: overflow" past it).
 */
const MAX_PRIORITY = 1e15

/** A duration a store adds to its time, in integer columns (Postgres' bigint): at most `MAX_DELAY`. */
const stored = (field: string, value: unknown, millis: number): number => {
  if (millis > Backoff.MAX_DELAY) {
    config.fail(field, value, `expected a finite duration of at most ${Backoff.MAX_DELAY} milliseconds (about 31,700 years)`)
  }
  return millis
}

const priorityOf = (value: unknown): number => {
  const priority = config.finiteNumber("priority", value)
  if (Math.abs(priority) > MAX_PRIORITY) config.fail("priority", value, `expected a number from -${MAX_PRIORITY} to ${MAX_PRIORITY}`)
  return priority
}

/**
 * A queue's aging (see `priority`), as `WorkPool`'s `aging` is read: 0 is refused (it would mean
 * "at once"), `Infinity` is none (0, as the store keeps and `stats` shows it), else at most `MAX_DELAY`.
 */
const agingOf = (field: string, value: unknown): number => stored(field, value, config.millis(field, value, "positive"))

/** A task as `enqueue` and `repeat` take it from an untyped caller: a `Task.make`'s, or `InvalidJobOptions` (field `task`). */
const taskOf = (task: unknown): void => {
  const invalid = checkTask(task)
  if (invalid !== undefined) config.fail("task", task, invalid.reason)
  const why = storedTaskName((task as Task.Any).name)
  if (why !== undefined) config.fail("task", task, why)
}

/**
 * Why a task's name cannot be a durable job's (it is stored with each job, and a consumer finds
 * the job's handler by it): empty, or not storable as it is (see `unstorable`).
 */
const storedTaskName = (name: string): string | undefined =>
  name.length === 0 ? "expected a Task with a non-empty name" : unstorable(name)

/**
 * The keys of `EnqueueOptions` and `RepeatOptions`: another one is refused, not ignored (a
 * misspelt dedup key made duplicates), with the key meant for the names other queues use.
 */
const ENQUEUE_KEYS = [
  "queue", "priority", "delay", "runAt", "dedupKey", "dedupWhile", "dedupFor", "dedupReplace", "timeout", "expireIn", "maxAttempts",
  "retry", "group", "after", "afterFailure"
]
const ENQUEUE_HINTS = {
  dedupeKey: "dedupKey",
  jobId: "dedupKey",
  singletonKey: "dedupKey",
  singletonSeconds: "dedupFor",
  deduplication: "dedupKey (with dedupFor for a ttl)",
  // graphile-worker's: "replace" is debounce with the key released at the start, "preserve_run_at" a
  // payload replace, "unsafe_dedupe" the default
  jobKeyMode: `dedupReplace: "debounce" with dedupWhile: "queued" (replace), dedupReplace: "payload" (preserve_run_at)`,
  job_key_mode: `dedupReplace: "debounce" with dedupWhile: "queued" (replace), dedupReplace: "payload" (preserve_run_at)`,
  attempts: "maxAttempts",
  retryLimit: "maxAttempts",
  startAfter: "runAt",
  // Sidekiq Enterprise's; pg-boss' expireInSeconds bounds a running attempt, its retention a wait
  expires_in: "expireIn",
  expireInSeconds: "timeout (pg-boss' expireInSeconds bounds an attempt's run; expireIn here bounds the wait for its start)",
  retentionSeconds: "expireIn (how long it may wait to start)",
  // BullMQ Pro's `group: { id }` and pg-boss' (see groupOf); graphile-worker's serial named queue
  groupId: "group (with JobQueue.setGroupConcurrency)",
  queueName: "group (with JobQueue.setGroupConcurrency(queue, 1): serial per key)",
  queue_name: "group (with JobQueue.setGroupConcurrency(queue, 1): serial per key)",
  // BullMQ's flows and others' DAGs: a job names the jobs it runs after
  dependsOn: "after",
  parent: "after (the parent job runs after its children: enqueue them first)",
  children: "after (the parent job runs after its children: enqueue them first)",
  failParentOnFailure: `afterFailure: "cancel" (the default)`,
  ignoreDependencyOnFailure: `afterFailure: "run"`,
  continueParentOnFailure: `afterFailure: "run"`
}
const REPEAT_KEYS = ["cron", "catchUp", "queue", "priority", "timeout", "expireIn", "maxAttempts", "retry"]
// BullMQ's and pg-boss' names: a repeat is a cron schedule (an interval that divides no minute or
// hour has none), its zone a Cron's own
const REPEAT_HINTS = {
  attempts: "maxAttempts",
  retryLimit: "maxAttempts",
  backfill: "catchUp",
  backfillPeriod: "catchUp",
  every: `cron: a schedule of times, such as "*/30 * * * * *"`,
  pattern: "cron",
  tz: `cron: a Cron read in its zone, Cron.parseUnsafe("0 3 * * *", "Europe/Paris")`
}

/** The keys of `ConsumeOptions` (see `ENQUEUE_KEYS`). */
const CONSUME_KEYS = [
  "queues", "handlers", "threadPool", "tasks", "concurrency", "timeout", "retry", "retryPolicies", "lease", "poll",
  "shutdownTimeout", "rateLimit", "aging", "name", "dispatch", "onEvent"
]
const CONSUME_HINTS = { queue: "queues", leaseDuration: "lease", lockDuration: "lease", pollInterval: "poll", pollingInterval: "poll" }

/** A job's own timeout as stored: `Infinity` is none (`NO_TIMEOUT`), not the consumer's default (0). */
const jobTimeout = (value: unknown): number => {
  // a positive duration: Infinity comes back as 0
  const millis = config.millis("timeout", value, "positive")
  return millis === 0 ? NO_TIMEOUT : stored("timeout", value, millis)
}

/** An `expireIn` as stored: whole milliseconds (as the stores keep times), finite and above 0. */
const expireInOf = (value: unknown): number => Math.ceil(stored("expireIn", value, config.finiteMillis("expireIn", value)))

/** The options an enqueue and a repeat's jobs share, checked (an `OptionError` names the first bad one), with their defaults. */
const jobOptions = (options: Pick<EnqueueOptions, "queue" | "priority" | "timeout" | "expireIn" | "maxAttempts" | "retry">) => ({
  queue: options.queue === undefined ? DEFAULT_QUEUE : queueName("queue", options.queue),
  priority: options.priority === undefined ? 0 : priorityOf(options.priority),
  timeout: options.timeout === undefined ? 0 : jobTimeout(options.timeout),
  ...(options.expireIn === undefined ? {} : { expireIn: expireInOf(options.expireIn) }),
  maxAttempts: options.maxAttempts === undefined
    ? DEFAULT_MAX_ATTEMPTS
    : config.positiveInteger("maxAttempts", options.maxAttempts, 1_000_000),
  retry: options.retry === undefined ? null : Backoff.encode("retry", options.retry)
})

const toInfo = (row: JobRow, now: number): JobInfo => ({
  id: row.id,
  queue: row.queue,
  task: row.task,
  state: row.state === "queued" && row.visibleAt > now ? "delayed" : row.state,
  priority: row.priority,
  dedupKey: row.dedupKey ?? undefined,
  attempts: row.attempts,
  snoozes: row.snoozes ?? 0,
  // '': an ungrouped job of a queue with a per-key cap, as the SQL stores keep it
  group: row.group == null || row.group === "" ? undefined : row.group,
  maxAttempts: row.maxAttempts,
  createdAt: new Date(row.createdAt),
  visibleAt: new Date(row.visibleAt),
  startedAt: row.startedAt === null ? undefined : new Date(row.startedAt),
  finishedAt: row.finishedAt === null ? undefined : new Date(row.finishedAt),
  cancelRequested: row.cancelRequested,
  retry: retryInfo(row.retry),
  progress: row.progress === null ? undefined : Option.getOrUndefined(storedProgress(row.progress)),
  waitingFor: row.waitingFor ?? 0,
  failedDependency: row.failedDependency == null ? undefined : { id: row.failedDependency.id, state: row.failedDependency.state },
  ...expiryInfo(row)
})

/** A job's expiry as `JobInfo` shows it: pending while it waits unstarted, or when it expired. */
const expiryInfo = (row: JobRow): Pick<JobInfo, "expiresAt" | "expiredAt"> => {
  if (row.expireAt == null) return { expiresAt: undefined, expiredAt: undefined }
  const expired = expiredAt(row)
  return expired !== undefined
    ? { expiresAt: undefined, expiredAt: new Date(expired) }
    : { expiresAt: row.state === "queued" || row.state === "blocked" ? new Date(row.expireAt) : undefined, expiredAt: undefined }
}

/**
 * A stored progress, or none if it is not JSON: no version writes such a row (one edited by hand, a
 * damaged backup), and reading it must not kill `status`, `list` or `progressChanges`.
 */
const storedProgress = (text: string): Option.Option<unknown> => {
  try {
    return Option.some(JSON.parse(text))
  } catch {
    return Option.none()
  }
}

const retryInfo = (text: string | null | undefined): JobRetry | undefined => {
  const stored = Backoff.decode(text)
  if (stored === undefined) return undefined
  if ("policy" in stored) return stored.policy
  if ("fixed" in stored) return { fixed: stored.fixed }
  return stored.max === undefined
    ? { exponential: stored.exponential, factor: stored.factor }
    : { exponential: stored.exponential, factor: stored.factor, max: stored.max }
}

/**
 * An id as the stores take it. No job has an id that is not a string (from untyped callers: an id
 * read from a request): JobNotFound naming it, rather than a store's query failing on it or the
 * error's own Schema rejecting it as a defect.
 */
const withId = <A, E>(id: string, f: (id: string) => Effect.Effect<A, E>): Effect.Effect<A, E | JobNotFound> =>
  typeof id !== "string"
    ? Effect.fail(new JobNotFound({ id: `${typeof id} ${String(id)}` }))
    : unstorable(id) !== undefined
    // no stored id holds one (Postgres failed the query on a NUL; a lone surrogate, sent as U+FFFD,
    // could match another id)
    ? Effect.fail(new JobNotFound({ id }))
    : f(id)

const getRow = (store: JobStore["Service"], id: string) =>
  withId(id, (id) =>
    Effect.flatMap(store.get(id), (row) => row === undefined ? Effect.fail(new JobNotFound({ id })) : Effect.succeed(row)))

/**
 * Adds a job to the store. Fails with `InvalidJobOptions` (naming the field) for a bad option and
 * with `TaskCodecError` when the payload does not encode with the task's Schema: nothing is stored.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { JobQueue, Task } from "effect-workpool"
 *
 * const Welcome = Task.make("Welcome", { payload: Schema.Struct({ userId: Schema.Number }), success: Schema.Void })
 * const signUp = (userId: number) =>
 *   JobQueue.enqueue(Welcome, { userId }, { queue: "mail", delay: "10 minutes", dedupKey: `welcome:${userId}` })
 * ```
 * @since 0.2.0
 * @category producer
 */
export const enqueue = <T extends Task.Any>(
  task: T,
  payload: Task.Payload<T>,
  options: EnqueueOptions = {}
): Effect.Effect<
  JobHandle<Task.Success<T>, Task.Failure<T>>,
  InvalidJobOptions | TaskCodecError | JobNotFound | StoreError,
  JobStore
> =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const checked = yield* invalid(() => {
      taskOf(task)
      const checked = callOptions(options, now)
      itemsBefore(checked, "after", undefined)
      return checked
    })
    const encoded = yield* encodePayload(task, payload)
    const store = yield* JobStore
    const job = { task: task.name, payload: encoded, ...checked, trace: yield* producerTrace }
    yield* dependenciesKept(store, [job], false)
    // no id: the store names the job
    const { id, created } = yield* store.enqueue(job)
    return handle<Task.Success<T>, Task.Failure<T>>(task, id, created)
  })

/**
 * An enqueue's options checked (an `OptionError` names the first bad one), as a job's fields;
 * `now` (the caller's clock) is what a `runAt` is compared with an `expireIn` at.
 */
const enqueueOptions = (options: EnqueueOptions, now: number) => {
  config.object("options", options)
  config.onlyKeys("", options, ENQUEUE_KEYS, ENQUEUE_HINTS)
  if (options.delay !== undefined && options.runAt !== undefined) {
    config.fail("runAt", options.runAt, "expected either delay or runAt, not both")
  }
  if (options.runAt !== undefined && !(options.runAt instanceof Date && Number.isFinite(options.runAt.getTime()))) {
    config.fail("runAt", options.runAt, "expected a valid Date")
  }
  const job = {
    ...jobOptions(options),
    delay: options.delay === undefined ? 0 : stored("delay", options.delay, config.millis("delay", options.delay, "nonNegative")),
    dedupKey: options.dedupKey === undefined ? null : storedName("dedupKey", options.dedupKey),
    ...dedupModes(options),
    runAt: options.runAt?.getTime(),
    ...(options.group === undefined ? {} : { group: groupOf(options.group) }),
    ...dependenciesOf(options)
  }
  if (job.expireIn !== undefined) startsBefore(job.expireIn, job.runAt === undefined ? job.delay : job.runAt - now, options)
  return job
}

/**
 * A job with an `expireIn` must be able to start before it: one visible only at or past its
 * expiry would never run (the error names both options).
 */
const startsBefore = (expireIn: number, visibleIn: number, options: EnqueueOptions): void => {
  if (visibleIn < expireIn) return
  const field = options.runAt === undefined ? "delay" : "runAt"
  config.fail(
    field,
    options[field],
    `expected a ${field} before its expireIn (${expireIn} ms after the enqueue): the job would expire before it could start`
  )
}

/**
 * `after` and `afterFailure` checked, as a job's fields (absent: none, and the default); the call's
 * items it names (`{ item }`) are checked against its own place by `readJobs`, and refused by `enqueue`.
 */
const dependenciesOf = (
  options: EnqueueOptions
): { after?: Array<string>; afterItems?: Array<number>; afterFailure?: "run" } => {
  if (options.after === undefined) {
    if (options.afterFailure !== undefined) config.fail("afterFailure", options.afterFailure, "expected only with after")
    return {}
  }
  if (!Array.isArray(options.after)) config.fail("after", options.after, "expected an array of job ids or handles")
  if (options.after.length > MAX_AFTER) {
    config.fail("after", `${options.after.length} jobs`, `expected at most ${MAX_AFTER} jobs (chain them through a job that runs after a part)`)
  }
  const seen = new Set<string>()
  const items = new Set<number>()
  options.after.forEach((dependency: unknown, i) => {
    const field = `after[${i}]`
    if (typeof dependency === "object" && dependency !== null && "item" in dependency) {
      const item = config.count(`${field}.item`, dependency.item, MAX_ITEMS - 1)
      if (items.has(item)) config.fail(field, dependency, "expected each job once (it is named twice)")
      items.add(item)
      return
    }
    const id = typeof dependency === "object" && dependency !== null && "id" in dependency ? dependency.id : dependency
    const checked = storedName(field, id)
    if (checked.length === 0) config.fail(field, id, "expected a job id, not an empty string")
    if (seen.has(checked)) config.fail(field, id, "expected each job once (it is named twice)")
    seen.add(checked)
  })
  const onFailure = options.afterFailure === undefined ? "cancel" : config.oneOf("afterFailure", options.afterFailure, ["cancel", "run"])
  return seen.size === 0 && items.size === 0 ? {} : {
    ...(seen.size === 0 ? {} : { after: Array.from(seen) }),
    ...(items.size === 0 ? {} : { afterItems: Array.from(items) }),
    ...(onFailure === "run" ? { afterFailure: "run" as const } : {})
  }
}

/** A job's `{ item }` dependencies: only earlier items of its own `enqueueAll` call (`at`: its place; none for `enqueue`). */
const itemsBefore = (checked: { readonly afterItems?: ReadonlyArray<number> }, field: string, at: number | undefined) => {
  for (const item of checked.afterItems ?? []) {
    if (at === undefined) config.fail(field, { item }, "expected a job id or handle: { item } names an item of the same enqueueAll call")
    else if (item >= at) config.fail(field, { item }, `expected an earlier item of the call than this one (items[${at}])`)
  }
}

/**
 * A store that keeps no dependencies is never given `after` (it would store the job and ignore
 * them): `InvalidJobOptions` naming it, before anything is stored.
 */
const dependenciesKept = (
  store: JobStore["Service"],
  jobs: ReadonlyArray<FreshJob>,
  batch: boolean
): Effect.Effect<void, InvalidJobOptions> => {
  if (store.dependencies === true) return Effect.void
  const i = jobs.findIndex((job) => job.after !== undefined || job.afterItems !== undefined)
  return i === -1 ? Effect.void : Effect.fail(
    new InvalidJobOptions({
      field: batch ? `items[${i}].options.after` : "after",
      value: `${(jobs[i]!.after?.length ?? 0) + (jobs[i]!.afterItems?.length ?? 0)} jobs`,
      reason: `the ${store.kind ?? "job"} store does not keep job dependencies yet (the memory, SQLite, Postgres and Redis stores do)`
    })
  )
}

/** The longest `group` key, in UTF-16 code units. */
const MAX_GROUP = 256

/** A `group` checked: BullMQ Pro and pg-boss take an object (`{ id }`), named in the error. */
const groupOf = (group: unknown): string => {
  if (typeof group === "object" && group !== null && "id" in group) {
    config.fail("group", group, "expected the key itself, a string (BullMQ Pro's and pg-boss' group: { id } is group: id here)")
  }
  const key = storedName("group", group)
  if (key.length > MAX_GROUP) config.fail("group", group, `expected at most ${MAX_GROUP} characters`)
  return key
}

/** `dedupWhile`, `dedupFor` and `dedupReplace` checked, as a job's fields (absent: the defaults). */
const dedupModes = (
  options: EnqueueOptions
): { dedupWhile?: "queued"; dedupFor?: number; dedupReplace?: "payload" | "debounce" } => {
  for (const field of ["dedupWhile", "dedupFor", "dedupReplace"] as const) {
    if (options[field] !== undefined && options.dedupKey === undefined) {
      config.fail(field, options[field], "expected only with a dedupKey: without one, nothing is deduplicated")
    }
  }
  const mode = options.dedupWhile === undefined ? "running" : config.oneOf("dedupWhile", options.dedupWhile, ["running", "queued"])
  // whole milliseconds, as the stores keep times
  const window = options.dedupFor === undefined
    ? undefined
    : Math.ceil(stored("dedupFor", options.dedupFor, config.finiteMillis("dedupFor", options.dedupFor)))
  const replace = options.dedupReplace === undefined
    ? undefined
    : config.oneOf("dedupReplace", options.dedupReplace, ["payload", "debounce"])
  return {
    ...(mode === "queued" ? { dedupWhile: mode } : {}),
    ...(window === undefined ? {} : { dedupFor: window }),
    ...(replace === undefined ? {} : { dedupReplace: replace })
  }
}

/**
 * The producer's span, which goes with its jobs: their consumer's `workpool.job` span is a child of
 * it. serviceOption, not currentParentSpan: that one fails without a span, building a
 * NoSuchElementError (a stack trace) per enqueue.
 */
const producerTrace = Effect.map(
  Effect.serviceOption(Tracer.ParentSpan),
  (span) => span._tag === "Some" ? encodeTrace(span.value) : null
)

/**
 * An item of `enqueueAll`: a payload with its own options, which win over the call's key by key.
 *
 * @example
 * ```ts
 * import type { JobQueue } from "effect-workpool"
 *
 * const item: JobQueue.EnqueueItem<{ readonly userId: number }> = {
 *   payload: { userId: 42 },
 *   options: { dedupKey: "welcome:42", priority: 5 }
 * }
 * ```
 * @since 0.3.0
 * @category models
 */
export interface EnqueueItem<P> {
  readonly payload: P
  readonly options?: EnqueueOptions | undefined
}

/** The keys of `EnqueueItem` (see `ENQUEUE_KEYS`). */
const ITEM_KEYS = ["payload", "options"]

/**
 * Adds many jobs of a task in one call: what `enqueue` does for each item, in as few store round
 * trips as the store can (one transaction on SQLite and Postgres, one script per queue on Redis;
 * see docs/durable.md). Each item is `{ payload, options? }`; `options` (the third argument) apply to
 * every item, an item's own `options` winning key by key. Every item is checked and encoded before
 * anything is stored: one bad item fails the whole call with `InvalidJobOptions` (its `field` names
 * the item, as `items[3].options.priority`, or `items[3]`) or `TaskCodecError` (its `issue` starts
 * with `items[3]: `), and no job is stored. Each item is read once, and checked and encoded as it
 * is read. Any iterable will do, up to 100,000 items: it is read 1,000 items at a time, other
 * fibers running in between, and an interruption stops the read (closing the iterator). More items,
 * an iterator that throws, or a getter of an item that throws fail with `InvalidJobOptions` naming
 * `items` (or the item), as does an async iterable, a Promise or an Effect of items passed by
 * mistake. The handles come back in item order; an item whose
 * `dedupKey` an unfinished job holds, or an item before it in the same call, gets that job's handle
 * (`created: false`). Idle consumers are woken once per call and queue. An empty `items` returns
 * `[]` without touching the store.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { JobQueue, Task } from "effect-workpool"
 *
 * const Import = Task.make("Import", { payload: Schema.Struct({ row: Schema.Number }), success: Schema.Void })
 * const nightly = (rows: ReadonlyArray<number>) =>
 *   Effect.gen(function* () {
 *     const jobs = yield* JobQueue.enqueueAll(
 *       Import,
 *       rows.map((row) => ({ payload: { row }, options: { dedupKey: `import:${row}` } })),
 *       { queue: "imports", maxAttempts: 5 }
 *     )
 *     yield* Effect.log(`${jobs.filter((job) => job.created).length} new jobs`)
 *   })
 * ```
 * @since 0.3.0
 * @category producer
 */
export const enqueueAll = <T extends Task.Any>(
  task: T,
  items: Iterable<EnqueueItem<Task.Payload<T>>>,
  options: EnqueueOptions = {}
): Effect.Effect<
  ReadonlyArray<JobHandle<Task.Success<T>, Task.Failure<T>>>,
  InvalidJobOptions | TaskCodecError | JobNotFound | StoreError,
  JobStore
> =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const shared = yield* invalid(() => {
      taskOf(task)
      const checked = callOptions(options, now)
      // the call's options are every item's, the first's too: refused here, not as items[0]'s
      const item = checked.afterItems?.[0]
      if (item !== undefined) config.fail("after", { item }, "expected job ids or handles: { item } goes in the own options of the item that runs after it")
      return checked
    })
    const reader = yield* invalid(() => new Items(items, ITEMS))
    const jobs = yield* readJobs(task, reader, options, shared, yield* producerTrace, now)
    if (jobs.length === 0) return []
    const store = yield* JobStore
    yield* dependenciesKept(store, jobs, true)
    const results = yield* store.enqueueAll(jobs)
    return results.map(({ created, id }) => handle<Task.Success<T>, Task.Failure<T>>(task, id, created))
  })

/** `enqueueAll`'s items, as the errors of their reading name them. */
const ITEMS: Batch = {
  field: "items",
  of: "{ payload, options? }",
  max: MAX_ITEMS,
  more: "split the batch",
  lazy: "collect it first, or enqueue its chunks as they come",
  effect: "yield* it for its items first"
}

/** A job's fields from its options, as `enqueueOptions` checks them. */
type Checked = ReturnType<typeof enqueueOptions>

/** A call's options checked: what a getter of theirs throws names `options`. */
const callOptions = (options: EnqueueOptions, now: number): Checked =>
  config.reading("options", options, () => enqueueOptions(options, now))

/**
 * `enqueueAll`'s items as jobs, read `CHUNK` at a time with a yield between chunks (other fibers run,
 * an interruption stops the read). Each item is read once, checked, and its payload encoded, before
 * the next is read: a later change to it is not stored. The iterator is closed if the read stops
 * before its end (a bad item, too many, an interruption).
 */
const readJobs = (
  task: Task.Any,
  items: Items,
  options: EnqueueOptions,
  shared: Checked,
  trace: string | null,
  now: number
): Effect.Effect<Array<FreshJob>, InvalidJobOptions | TaskCodecError> => {
  const jobs: Array<FreshJob> = []
  const add = (payload: string, checked: Checked) => {
    jobs.push({ task: task.name, payload, ...checked, trace })
  }
  // reads up to CHUNK items; returns early with what is left of an item: its payload's encoding,
  // when its Schema runs an Effect, or its TaskCodecError (run before the next item is read)
  const chunk = (): Effect.Effect<void, TaskCodecError> | undefined => {
    for (let n = 0; n < CHUNK; n++) {
      const item = items.next()
      if (item === END) return
      const i = jobs.length
      const checked = readItem(item, `items[${i}]`, options, shared, now)
      itemsBefore(checked.options, `items[${i}].options.after`, i)
      const payload = encodePayloadNow(task, checked.payload)
      if (typeof payload === "string") {
        add(payload, checked.options)
        continue
      }
      const named = (error: TaskCodecError) => new TaskCodecError({ task: error.task, part: error.part, issue: `items[${i}]: ${error.issue}` })
      return payload instanceof TaskCodecError
        ? Effect.fail(named(payload))
        : payload.pipe(Effect.mapError(named), Effect.map((text) => add(text, checked.options)))
    }
  }
  return Effect.gen(function*() {
    while (!items.done) {
      const pending = yield* invalid(chunk)
      if (pending !== undefined) yield* pending
      else if (!items.done) yield* Effect.yieldNow
    }
    return jobs
  }).pipe(Effect.onExit((exit) => Exit.isSuccess(exit) ? Effect.void : Effect.sync(() => items.close())))
}

/**
 * An item read once (a getter asked twice may answer otherwise): its payload, and its options
 * checked over the call's as `enqueue` reads them. An `OptionError` names the item's field, as
 * `items[3].options.priority`; what its getters or a Proxy's traps throw names the item, or its options.
 */
const readItem = (item: unknown, field: string, options: EnqueueOptions, shared: Checked, now: number) => {
  const { own, payload } = config.reading(field, item, () => {
    config.object(field, item)
    config.onlyKeys(`${field}.`, item as object, ITEM_KEYS)
    const { options: own, payload } = item as EnqueueItem<unknown>
    return { own: own as unknown, payload }
  })
  if (own === undefined) return { payload, options: shared }
  try {
    return { payload, options: config.reading("", own, () => itemOptions(own, options, now)) }
  } catch (error) {
    if (!(error instanceof config.OptionError)) throw error
    const inner = error.invalid.field
    throw new config.OptionError({ ...error.invalid, field: inner === "" ? `${field}.options` : `${field}.options.${inner}` })
  }
}

/**
 * An item's own options over the call's, key by key, read as `enqueue` reads them: a spread copies
 * own enumerable keys only, and dropped options given by getters (a class's defaults) for the items
 * with options of their own. An item's key that is there, even undefined, wins (as in a spread).
 */
const itemOptions = (own: unknown, options: EnqueueOptions, now: number): Checked => {
  config.object("", own)
  config.onlyKeys("", own as object, ENQUEUE_KEYS, ENQUEUE_HINTS)
  const merged: Record<string, unknown> = {}
  for (const key of ENQUEUE_KEYS) {
    const value = key in (own as object) ? (own as Record<string, unknown>)[key] : (options as Record<string, unknown>)[key]
    if (value !== undefined) merged[key] = value
  }
  return enqueueOptions(merged as EnqueueOptions, now)
}

const handle = <S, F>(task: Task.Any, id: string, created: boolean): JobHandle<S, F> => ({
  id,
  created,
  await: awaitJob(task, id) as Effect.Effect<any, any, JobStore>,
  status: status(id),
  cancel: cancel(id),
  progressChanges: progressChanges(id)
})

/**
 * A handle on a job by its id, for a process that did not enqueue it. Its `await` fails with
 * `TaskMismatch` if the job's task is not `task` (its `status`, `cancel` and `progressChanges`
 * do not decode with the task, and work as for any id).
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { JobQueue, Task } from "effect-workpool"
 *
 * const Resize = Task.make("Resize", { payload: Schema.String, success: Schema.Number })
 * const job = JobQueue.handleOf(Resize, "0b8e6a8c-5f0e-4a8e-9a51-2f1c3f9a7d11")
 * ```
 * @since 0.2.0
 * @category producer
 */
export const handleOf = <T extends Task.Any>(task: T, id: string): JobHandle<Task.Success<T>, Task.Failure<T>> =>
  handle(task, id, false)

/**
 * Where a job is, from any process.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { JobQueue } from "effect-workpool"
 *
 * const stateOf = (id: string) => Effect.map(JobQueue.status(id), (job) => job.state)
 * ```
 * @since 0.2.0
 * @category producer
 */
export const status = (id: string): Effect.Effect<JobInfo, JobNotFound | StoreError, JobStore> =>
  Effect.gen(function*() {
    const store = yield* JobStore
    const row = yield* getRow(store, id)
    return toInfo(row, yield* store.now)
  })

/**
 * A durable job's progress as its handler reports it (`WorkPool.JobContext`'s `progress`), from any
 * process: the stored value (if any), then each newer one, ending once the job has ended (after
 * its last value). It reads the store every 250 ms (and at once when the job ends through this
 * process's store); the consumer writes at most one value per 250 ms per job, so a reader sees the
 * latest value, not every one reported.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { JobQueue } from "effect-workpool"
 *
 * const follow = (id: string) =>
 *   Stream.runForEach(JobQueue.progressChanges(id), (progress) => Effect.log("progress", progress))
 * ```
 * @since 0.3.0
 * @category producer
 */
export const progressChanges = (id: string): Stream.Stream<unknown, JobNotFound | StoreError, JobStore> =>
  Stream.paginate(null as string | null, (seen) =>
    // its looks outside the caller's transaction, as an await's: in a REPEATABLE READ one they never saw progress
    outsideTransactions(Effect.gen(function*() {
      const store = yield* JobStore
      while (true) {
        const since = yield* store.version
        // its state and progress only: it looks again at every change this process hears of
        const row = yield* withId(id, (id) =>
          Effect.flatMap(store.progressOf(id), (row) => row === undefined ? Effect.fail(new JobNotFound({ id })) : Effect.succeed(row)))
        const ended = FINAL_STATES.includes(row.state)
        const next = ended ? Option.none<string | null>() : Option.some(row.progress)
        if (row.progress !== null && row.progress !== seen) {
          const progress = storedProgress(row.progress)
          if (progress._tag === "Some") return [[progress.value], next] as const
          seen = row.progress
        }
        if (ended) return [[], next] as const
        yield* store.wait(AWAIT_POLL, since)
      }
    })))

const dependencyFailed = (id: string, failed: FailedDependency) =>
  new DependencyFailed({ id, dependency: failed.id, state: failed.state })

const awaitJob = <T extends Task.Any>(
  task: T,
  id: string
): Effect.Effect<Task.Success<T>, Task.Failure<T> | AwaitError, JobStore> =>
  // its looks outside the caller's transaction (see sqlTransaction.ts): in a REPEATABLE READ or
  // SERIALIZABLE one they read its snapshot, where the job never ended, and the await never returned
  outsideTransactions(Effect.gen(function*() {
    // an untyped caller's task that is not a Task matches no job: TaskMismatch saying what it is, not a TypeError
    const invalid = checkTask(task)
    const expected = invalid === undefined ? task.name : `${invalid.value} (not a Task made with Task.make)`
    const store = yield* JobStore
    while (true) {
      const since = yield* store.version
      const row = yield* getRow(store, id)
      // checked at every look, not only at the end: a job no consumer of `task` would ever end
      // must not keep its awaiter waiting for a result it could not decode anyway
      if (invalid !== undefined || row.task !== expected) return yield* Effect.fail(new TaskMismatch({ id, task: row.task, expected }))
      if (row.state === "cancelled" && row.failedDependency != null) {
        return yield* Effect.fail(dependencyFailed(id, row.failedDependency))
      }
      if (FINAL_STATES.includes(row.state)) {
        return yield* (yield* decodeExit<Task.Success<T>, Task.Failure<T>>(task, row))
      }
      yield* store.wait(AWAIT_POLL, since)
    }
  }))

/**
 * Waits for a job's result, from any process: its success, its own typed failure (decoded back into
 * its class), or why the queue ended it. A defect comes back as an `Error` with the original's
 * name, message and stack. A job of another task than `task` fails it at once with `TaskMismatch`.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { JobQueue, Task } from "effect-workpool"
 *
 * const Resize = Task.make("Resize", { payload: Schema.String, success: Schema.Number })
 * const bytes = (id: string) => JobQueue.await(Resize, id)
 * ```
 * @since 0.2.0
 * @category producer
 */
export { awaitJob as await }

/**
 * Cancels a job from any process: a queued (or blocked) job is cancelled at once; a running one is
 * interrupted by its consumer within a heartbeat (its finalizers run) and ends cancelled. The jobs
 * that run after it (`EnqueueOptions.after`) are cancelled by it, unless they have `afterFailure: "run"`.
 *
 * @example
 * ```ts
 * import { JobQueue } from "effect-workpool"
 *
 * const stop = (id: string) => JobQueue.cancel(id) // "cancelled" | "requested" | "finished"
 * ```
 * @since 0.2.0
 * @category producer
 */
export const cancel = (id: string): Effect.Effect<CancelResult, JobNotFound | StoreError, JobStore> =>
  JobStore.use((store) =>
    withId(id, (id) =>
      Effect.flatMap(store.cancel(id), (result) =>
        result === "missing" ? Effect.fail(new JobNotFound({ id })) : Effect.succeed(result))))

/**
 * Jobs, oldest first, by queue and state: at most `limit` (default 100, at most 100,000) of those
 * in the states asked for. `queued` jobs are visible now, `delayed` ones later, by the store's time;
 * a delayed job whose time comes while the list is read is left out of a list of delayed ones.
 * `expired: true` keeps, of the cancelled jobs, only those that expired unstarted
 * (`EnqueueOptions.expireIn`, `JobInfo.expiredAt`), picked out before the limit; with no `state`
 * it lists the expired jobs alone, and a `state` without `cancelled` fails `InvalidJobOptions`.
 * Without a `queue`, SQLite and Postgres may read every row of the store to find the expired ones
 * (their index of finished jobs is by queue): name the queue where a store holds many jobs.
 *
 * @example
 * ```ts
 * import { JobQueue } from "effect-workpool"
 *
 * const deadLetters = JobQueue.list({ queue: "mail", state: "dead", limit: 50 })
 * // the jobs that expired before any consumer started them, and the dead ones: both can be redriven
 * const missed = JobQueue.list({ queue: "mail", expired: true })
 * const redrivable = JobQueue.list({ queue: "mail", state: ["dead", "cancelled"], expired: true })
 * ```
 * @since 0.2.0
 * @category producer
 */
export const list = (
  filter: {
    readonly queue?: string | undefined
    readonly state?: JobState | ReadonlyArray<JobState> | undefined
    readonly limit?: number | undefined
    /** Of the cancelled jobs, only those that expired unstarted; false or none: every one. */
    readonly expired?: boolean | undefined
  } = {}
): Effect.Effect<ReadonlyArray<JobInfo>, InvalidJobOptions | StoreError, JobStore> =>
  Effect.gen(function*() {
    const checked = yield* invalid(() => {
      config.object("filter", filter)
      config.onlyKeys("", filter, ["queue", "state", "limit", "expired"], { status: "state", states: "state" })
      const states = filter.state === undefined ? undefined : (typeof filter.state === "string" ? [filter.state] : filter.state)
      const all: ReadonlyArray<JobState> = [...STATES, "delayed"]
      if (states !== undefined && !Array.isArray(states)) config.fail("state", filter.state, `expected a state or an array of ${all.join(", ")}`)
      states?.forEach((state, i) => config.oneOf(`state[${i}]`, state, all))
      const expired = filter.expired === undefined ? false : config.boolean("expired", filter.expired)
      // an expired job is a cancelled one: asked for among other states alone, nothing could be kept
      if (expired && states !== undefined && !states.includes("cancelled")) {
        config.fail("state", filter.state, "expected it to include cancelled with expired: true (an expired job is cancelled)")
      }
      return {
        queue: filter.queue === undefined ? undefined : queueName("queue", filter.queue),
        states: expired && states === undefined ? ["cancelled" as const] : states,
        limit: filter.limit === undefined ? 100 : config.positiveInteger("limit", filter.limit, 100_000),
        expired
      }
    })
    const store = yield* JobStore
    const states = checked.states
    const stored = states === undefined ? undefined : [...new Set(states.map((state): State => state === "delayed" ? "queued" : state))]
    // delayed and queued share a stored state: asked for one without the other, the store tells
    // them apart by its time before it limits (after, the oldest waiting jobs hid every other)
    const waiting = states === undefined || states.includes("queued") === states.includes("delayed")
      ? undefined
      : states.includes("delayed") ? "delayed" as const : "ready" as const
    const rows = yield* store.list({ queue: checked.queue, states: stored, limit: checked.limit, waiting, expired: checked.expired })
    const now = yield* store.now
    // a delayed job whose time came since the store's look is queued now: the state asked for is
    // the one shown, so a job of another is left out
    return rows.map((row) => toInfo(row, now)).filter((info) => states === undefined || states.includes(info.state))
  })

/**
 * Puts a dead job back in its queue as a new run: its attempts reset, and no progress or start time
 * from the dead run (its `status` and `progressChanges` show none until the new run reports). A job
 * its dependency cancelled (`EnqueueOptions.after`) goes back to `blocked` until every dependency it
 * still needs has succeeded (redrive a dead one too), or to the queue if they have. Fails with
 * `JobNotFound` for an unknown id; returns false for a job that is neither, one whose dedup key an
 * unfinished job of its queue holds (one job per key at a time), or one waiting for a dependency
 * that can no longer succeed (deleted since, cancelled for good, or waiting up its chain for such a
 * one). A blocked job redriven so ends cancelled if such a dependency of it (or up its chain) is
 * deleted later (docs/durable.md, "Retention: a dependency deleted").
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { JobQueue } from "effect-workpool"
 *
 * const redriveAll = Effect.flatMap(JobQueue.list({ state: "dead" }), (jobs) =>
 *   Effect.forEach(jobs, (job) => JobQueue.redrive(job.id)))
 * ```
 * @since 0.2.0
 * @category producer
 */
export const redrive = (id: string): Effect.Effect<boolean, JobNotFound | StoreError, JobStore> =>
  JobStore.use((store) =>
    Effect.flatMap(getRow(store, id), () => store.redrive(id)))

/**
 * Deletes finished jobs (by default every final state) that finished more than `olderThan` ago.
 * Returns how many. A queue left with no job keeps nothing in the store but its settings (pause,
 * aging, rate limit): it reads as a queue never used until its next job.
 *
 * @example
 * ```ts
 * import { JobQueue } from "effect-workpool"
 *
 * const nightly = JobQueue.purge({ olderThan: "7 days", states: ["succeeded", "cancelled"] })
 * ```
 * @since 0.2.0
 * @category producer
 */
export const purge = (options: {
  readonly olderThan: Duration.Input
  readonly states?: ReadonlyArray<"succeeded" | "dead" | "cancelled"> | undefined
}): Effect.Effect<number, InvalidJobOptions | StoreError, JobStore> =>
  Effect.gen(function*() {
    const checked = yield* invalid(() => {
      config.object("options", options)
      config.onlyKeys("", options, ["olderThan", "states"], { state: "states", status: "states" })
      const states = options.states === undefined ? FINAL_STATES : options.states
      if (!Array.isArray(states)) config.fail("states", states, `expected an array of ${FINAL_STATES.join(", ")}`)
      states.forEach((state, i) => config.oneOf(`states[${i}]`, state, FINAL_STATES))
      return { olderThan: config.millis("olderThan", options.olderThan, "nonNegative"), states }
    })
    const store = yield* JobStore
    return yield* store.purge((yield* store.now) - checked.olderThan, checked.states)
  })

const configure = (
  queue: string,
  settings: {
    readonly paused?: boolean
    readonly aging?: number
    readonly rateLimit?: { readonly limit: number; readonly interval: number } | null
    readonly holdFor?: number
    readonly concurrency?: number | null
    readonly groupConcurrency?: number | null
    readonly retention?: StoredRetention | null
  }
) =>
  // void, whatever a store's statement or script answers
  Effect.flatMap(invalid(() => queueName("queue", queue)), (queue) => JobStore.use((store) => Effect.asVoid(store.configure(queue, settings))))

/**
 * Stops every consumer from claiming jobs of a queue (running jobs go on), until `resume`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { JobQueue } from "effect-workpool"
 *
 * const maintenance = <A, E, R>(work: Effect.Effect<A, E, R>) =>
 *   Effect.acquireUseRelease(JobQueue.pause("mail"), () => work, () => Effect.orDie(JobQueue.resume("mail")))
 * ```
 * @since 0.2.0
 * @category producer
 */
export const pause = (queue: string): Effect.Effect<void, InvalidJobOptions | StoreError, JobStore> =>
  configure(queue, { paused: true })

/**
 * Lets consumers claim jobs of a paused queue again.
 *
 * @example
 * ```ts
 * import { JobQueue } from "effect-workpool"
 *
 * const reopen = JobQueue.resume("mail")
 * ```
 * @since 0.2.0
 * @category producer
 */
export const resume = (queue: string): Effect.Effect<void, InvalidJobOptions | StoreError, JobStore> =>
  configure(queue, { paused: false })

/**
 * Sets a queue's aging: each `aging` of waiting raises a job by one priority level, the rule of
 * `WorkPool`'s `aging`. The order is a static key computed when a job enters the queue, so the
 * setting applies to jobs enqueued (or retried) after it; set it once, before producing (or give it
 * to the queue's consumers: `ConsumeOptions.aging`). `Infinity` takes the queue's aging away
 * (strict priority; `stats` shows it as 0). 0 is refused, as `WorkPool`'s `aging` refuses it.
 *
 * @example
 * ```ts
 * import { JobQueue } from "effect-workpool"
 *
 * const setup = JobQueue.setAging("reports", "1 minute")
 * ```
 * @since 0.2.0
 * @category producer
 */
export const setAging = (queue: string, aging: Duration.Input): Effect.Effect<void, InvalidJobOptions | StoreError, JobStore> =>
  Effect.flatMap(invalid(() => agingOf("aging", aging)), (millis) => configure(queue, { aging: millis }))

/**
 * Sets a rate limit shared by every consumer of a queue, in every process: at most `limit` jobs of
 * the queue start (are claimed) in any window of `interval`, counted by the store on its own clock
 * in the claim's own transaction, so the total rate holds however many consumers claim at once.
 * The window slides, as `WorkPool`'s `rateLimit` does (see `WorkPool.RateLimit`). `undefined`
 * removes the limit. The latest claims stay counted when the limit changes; they are counted from
 * when a limit is first set. Jobs held back wait in the queue in their order; `stats` shows the
 * limit and how many claims its window allows now. A consumer held back by the window hears of a
 * limit lifted or raised at its next `poll` at the latest, not at once.
 *
 * Each consumer may also have a limit of its own (`ConsumeOptions.rateLimit`): both hold.
 *
 * @example
 * ```ts
 * import { JobQueue } from "effect-workpool"
 *
 * // the SMS provider takes 50 messages per second from the whole fleet
 * const setup = JobQueue.setRateLimit("sms", { limit: 50, interval: "1 second" })
 * const lift = JobQueue.setRateLimit("sms", undefined)
 * ```
 * @since 0.3.0
 * @category producer
 */
export const setRateLimit = (
  queue: string,
  rateLimit: WorkPool.RateLimit | undefined
): Effect.Effect<void, InvalidJobOptions | StoreError, JobStore> =>
  Effect.flatMap(
    invalid(() => rateLimit === undefined ? null : RateLimits.check("rateLimit", rateLimit)),
    (limit) => configure(queue, { rateLimit: limit })
  )

/**
 * A cap as `setConcurrency` (`least` 0) and `setGroupConcurrency` (`least` 1) take it: an integer from
 * `least` to `MAX_QUEUE_CAP`, or none (undefined, and 0 where taken): null. Anything else fails.
 */
const capOf = (concurrency: number | undefined, least: 0 | 1): number | null => {
  if (concurrency === undefined) return null
  if (typeof concurrency !== "number" || !Number.isInteger(concurrency) || concurrency < least || concurrency > config.MAX_QUEUE_CAP) {
    config.fail(
      "concurrency",
      concurrency,
      `expected an integer from ${least} to ${config.MAX_QUEUE_CAP} (${least === 0 ? "0 or " : ""}undefined: no cap)`
    )
  }
  return concurrency === 0 ? null : concurrency
}

/**
 * Caps how many jobs of a queue run at once, counted across every consumer of the queue in every
 * process: a claim starts a job only while fewer than `concurrency` of the queue's jobs are running.
 * The store counts the running jobs in the claim's own serialized step (the rate limit's), from the
 * jobs themselves, so the cap holds however many consumers claim at once and no settle, retry,
 * cancel, release or reap can leave it counting wrong. A job whose lease expired still holds its
 * slot until it is reaped (its process may be frozen and still running it): a crashed process's jobs
 * free their slots at the reap, a lease and a half after their last renewal at most.
 *
 * `undefined` (or 0) removes the cap. Lowering it below the jobs running now interrupts none: claims
 * resume once fewer run. A consumer's own `concurrency` and both rate limits hold too. Any other
 * `concurrency` than an integer from 0 to 1,000,000 fails with `InvalidJobOptions`. Every store
 * keeps it. A process of an older version ignores it: set a cap once every process runs this one.
 *
 * @example
 * ```ts
 * import { JobQueue } from "effect-workpool"
 *
 * // the payment provider takes at most 4 requests in flight from the whole fleet
 * const setup = JobQueue.setConcurrency("payments", 4)
 * const lift = JobQueue.setConcurrency("payments", undefined)
 * ```
 * @since 0.3.0
 * @category producer
 */
export const setConcurrency = (
  queue: string,
  concurrency: number | undefined
): Effect.Effect<void, InvalidJobOptions | StoreError, JobStore> =>
  Effect.flatMap(invalid(() => capOf(concurrency, 0)), (cap) => configure(queue, { concurrency: cap }))

/**
 * Caps how many jobs of one `group` (`EnqueueOptions.group`) of a queue run at once, across every
 * consumer in every process: 1 runs each key's jobs one at a time (serial per tenant, per account).
 * The keys take turns: a claim serves the keys round-robin, one job of each per round, and the
 * best job (priority, then the oldest) within a key, so one key's backlog never delays another
 * key's job. Jobs without a `group` are never capped, and take their turn as one more key. The
 * running jobs are counted from the jobs themselves in the claim's serialized step, as for
 * `setConcurrency` (which holds too): a crashed process's jobs hold their keys until reaped.
 *
 * `undefined` removes the cap (the keys stay with the jobs: a cap set again applies to them). Any
 * other `concurrency` than an integer from 1 to 1,000,000 fails with `InvalidJobOptions`. Every
 * store keeps it. A process of an older version neither keeps `group` nor honours the cap: set it,
 * and enqueue with `group`, once every process runs this version.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { JobQueue, Task } from "effect-workpool"
 *
 * const Sync = Task.make("Sync", { payload: Schema.String, success: Schema.Void })
 * // one sync at a time per account, every account served in turn
 * const setup = JobQueue.setGroupConcurrency("sync", 1)
 * const trigger = (account: string) => JobQueue.enqueue(Sync, account, { queue: "sync", group: account })
 * ```
 * @since 0.3.0
 * @category producer
 */
export const setGroupConcurrency = (
  queue: string,
  concurrency: number | undefined
): Effect.Effect<void, InvalidJobOptions | StoreError, JobStore> =>
  Effect.flatMap(invalid(() => capOf(concurrency, 1)), (cap) => configure(queue, { groupConcurrency: cap }))

/**
 * How long, and how many, of a queue's finished jobs of one state the store keeps (see
 * `setRetention`): those that ended less than `age` ago, and of them at most the newest `count`
 * (by end time). At least one of the two; a job past either is deleted.
 *
 * - `age`: a duration from 0 (0: none kept past the next maintenance); `Infinity`: no age limit.
 * - `count`: a whole number from 0 to 1,000,000,000.
 *
 * @example
 * ```ts
 * import type { JobQueue } from "effect-workpool"
 *
 * const lastThousandForADay: JobQueue.Keep = { age: "1 day", count: 1000 }
 * ```
 * @since 0.3.0
 * @category models
 */
export interface Keep {
  readonly age?: Duration.Input | undefined
  readonly count?: number | undefined
}

/**
 * A queue's retention by final state (see `setRetention`): a state left out is kept until a `purge`.
 *
 * @example
 * ```ts
 * import type { JobQueue } from "effect-workpool"
 *
 * const retention: JobQueue.Retention = { succeeded: { age: "1 hour", count: 10_000 }, dead: { age: "30 days" }, cancelled: { count: 0 } }
 * ```
 * @since 0.3.0
 * @category models
 */
export interface Retention {
  readonly succeeded?: Keep | undefined
  readonly dead?: Keep | undefined
  readonly cancelled?: Keep | undefined
}

/** The most finished jobs of one state a retention may keep by count (a store's OFFSET, read per maintenance). */
const MAX_KEEP_COUNT = 1_000_000_000

const keepOf = (field: string, keep: unknown): { age?: number; count?: number } | undefined => {
  if (keep === undefined) return undefined
  config.object(field, keep)
  config.onlyKeys(`${field}.`, keep as object, ["age", "count"])
  const { age, count } = keep as Keep
  if (age === undefined && count === undefined) config.fail(field, keep, "expected an age, a count or both (leave the state out to keep its jobs)")
  const rule: { age?: number; count?: number } = {}
  if (age !== undefined) {
    const millis = config.millis(`${field}.age`, age, "nonNegative")
    if (millis !== Infinity) rule.age = stored(`${field}.age`, age, millis)
  }
  if (count !== undefined) rule.count = config.count(`${field}.count`, count, MAX_KEEP_COUNT)
  return rule
}

const retentionOf = (retention: unknown): StoredRetention | null => {
  if (retention === undefined || retention === null) return null
  config.object("retention", retention)
  config.onlyKeys("retention.", retention as object, RETAINED, { completed: "succeeded", failed: "dead", removeOnComplete: "succeeded", removeOnFail: "dead" })
  const out: Record<string, { age?: number; count?: number }> = {}
  for (const state of RETAINED) {
    const rule = keepOf(`retention.${state}`, (retention as Retention)[state])
    // an age of Infinity alone limits nothing
    if (rule !== undefined && (rule.age !== undefined || rule.count !== undefined)) out[state] = rule
  }
  return Object.keys(out).length === 0 ? null : out
}

/**
 * Sets how long and how many of a queue's finished jobs (succeeded, dead, cancelled) the store
 * keeps, replacing the queue's retention before; `undefined` removes it (its jobs are then kept
 * until a `purge`). The setting is the store's, shared by every process; `stats` shows it.
 *
 * The queue's consumers delete the jobs past it: each consumer's maintenance (its reaper, every
 * half lease) deletes them in bounded batches (at most 1,000 jobs of a queue and state per
 * statement or script), oldest first, so a backlog goes over a few rounds, never in one huge
 * delete. With no consumer running on any queue of the store, nothing is deleted. Many consumers
 * do not delete a job twice (each batch is atomic, and skips the jobs another is deleting); every
 * one of them looks, at the cost of one indexed read per queue and state with a retention.
 *
 * A deleted job is gone as after a `purge`: its `await`, `status` and `cancel` (a handle's too) fail with
 * `JobNotFound`, so keep finished jobs longer than their awaiters may take to look; its dedup key
 * was free once it finished. Fails with `InvalidJobOptions` naming the field for a bad value.
 *
 * @example
 * ```ts
 * import { JobQueue } from "effect-workpool"
 *
 * // successes for a day (at most the last 10,000), dead letters for 30 days, cancelled ones not at all
 * const setup = JobQueue.setRetention("mail", {
 *   succeeded: { age: "1 day", count: 10_000 },
 *   dead: { age: "30 days" },
 *   cancelled: { count: 0 }
 * })
 * const keepAll = JobQueue.setRetention("mail", undefined)
 * ```
 * @since 0.3.0
 * @category producer
 */
export const setRetention = (
  queue: string,
  retention: Retention | undefined
): Effect.Effect<void, InvalidJobOptions | StoreError, JobStore> =>
  Effect.flatMap(
    // a getter or a Proxy of the caller's that throws is a bad value, not a defect
    invalid(() => config.reading("retention", retention, () => retentionOf(retention))),
    (checked) => configure(queue, { retention: checked })
  )

/**
 * Holds a queue: no consumer, in any process, claims its jobs for `duration` (the store's clock;
 * running jobs go on), as after an upstream's 429 with a Retry-After. A hold replaces the one
 * before it; `0` lifts it. Held consumers claim again at its end, or at once when it is lifted or
 * changed (in any process); `stats` shows it (`heldUntil`). A handler
 * that holds its own queue and gives its job back at once says `snooze(d, { holdQueue: true })`.
 *
 * @example
 * ```ts
 * import { JobQueue } from "effect-workpool"
 *
 * const backOff = JobQueue.holdQueue("sms", "30 seconds")
 * const lift = JobQueue.holdQueue("sms", 0)
 * ```
 * @since 0.3.0
 * @category producer
 */
export const holdQueue = (queue: string, duration: Duration.Input): Effect.Effect<void, InvalidJobOptions | StoreError, JobStore> =>
  Effect.flatMap(invalid(() => holdOf("holdQueue", duration)), (millis) => configure(queue, { holdFor: millis }))

/** A hold's or a snooze's duration: finite, at least 0, in whole milliseconds a store can add to its time. */
const holdOf = (field: string, value: unknown): number =>
  Backoff.wholeMillis(stored(field, value, config.millis(field, value, "nonNegativeFinite")))

/**
 * Options of `snooze`.
 *
 * @example
 * ```ts
 * import type { JobQueue } from "effect-workpool"
 *
 * const options: JobQueue.SnoozeOptions = { holdQueue: true }
 * ```
 * @since 0.3.0
 * @category models
 */
export interface SnoozeOptions {
  /**
   * Hold the job's whole queue at least as long (`holdQueue`), for every consumer in every
   * process. A hold that ends later (another job's longer snooze, an operator's `holdQueue`) stays
   * as it is: a snooze's hold only extends a hold, never shortens it (written in one step in the
   * store, so two processes' snoozes cannot race). Only `holdQueue` shortens or lifts one.
   */
  readonly holdQueue?: boolean | undefined
}

/**
 * Ends a durable handler's attempt with "not now": its job goes back to the queue, visible again
 * after `duration`, without spending an attempt (its `attempt` is the same next time), its lease
 * and its slot freed at once. With `{ holdQueue: true }` its queue is held at least as long too
 * (`holdQueue`; a longer hold stays): an upstream's 429 with a Retry-After. A snooze is not a failure of the task's
 * typed error: it ends the handler as a defect the consumer recognises (its pool counts the
 * attempt as ended well, not among its defects: a snooze is not a failure), and works on a
 * `ThreadPool` consumer's thread as on a fiber. Snoozes are counted (`JobInfo.snoozes`), not
 * bounded: a job that always snoozes never goes dead (bound it yourself, say by the time since
 * `CurrentJob`'s `createdAt`).
 * A cancel asked for meanwhile ends the job cancelled. A bad duration (negative, infinite, not a
 * duration) fails the attempt instead, with the defect `InvalidJobOptions` (field `snooze`), as do
 * options with another key than `holdQueue` or a `holdQueue` that is not a boolean (naming the key).
 * A snooze of 0 holds nothing.
 * Outside a durable handler it is a defect like any.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { JobQueue, Task } from "effect-workpool"
 *
 * const Send = Task.make("Send", { payload: Schema.Struct({ to: Schema.String }), success: Schema.Void })
 * declare const send: (to: string) => Effect.Effect<{ readonly status: number; readonly retryAfter: number }>
 *
 * const handler = Task.handle(Send, ({ to }) =>
 *   Effect.gen(function* () {
 *     const response = yield* send(to)
 *     // 429: the whole queue waits, fleet-wide, and this job runs again after it, its attempt unspent
 *     if (response.status === 429) return yield* JobQueue.snooze(`${response.retryAfter} seconds`, { holdQueue: true })
 *   }))
 * ```
 * @since 0.3.0
 * @category consumer
 */
export const snooze = (duration: Duration.Input, options?: SnoozeOptions): Effect.Effect<never> =>
  Effect.flatMap(
    Effect.orDie(invalid(() => [holdOf("snooze", duration), holdsQueue(options)] as const)),
    ([delay, hold]) => Effect.die(new JobSnoozed(delay, hold))
  )

/** A snooze's `holdQueue`: a key misspelt or a value not a boolean is refused, not read as false (its queue not held). */
const holdsQueue = (options: SnoozeOptions | undefined): boolean => {
  if (options === undefined) return false
  config.object("options", options)
  config.onlyKeys("", options, ["holdQueue"])
  return options.holdQueue === undefined ? false : config.boolean("holdQueue", options.holdQueue)
}

/**
 * A queue's counts from the store: blocked, waiting, delayed, running, succeeded, dead, cancelled, the
 * queued ones by priority, its shared rate limit (`setRateLimit`) with how many claims its
 * window allows now, and its retention (`setRetention`, in milliseconds).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { JobQueue } from "effect-workpool"
 *
 * const backlog = Effect.map(JobQueue.stats("mail"), (s: JobQueue.QueueStats) => s.waiting + s.delayed)
 * ```
 * @since 0.2.0
 * @category producer
 */
export const stats = (queue: string): Effect.Effect<QueueStats, InvalidJobOptions | StoreError, JobStore> =>
  Effect.flatMap(invalid(() => queueName("queue", queue)), (queue) => JobStore.use((store) => store.counts(queue)))

/**
 * A queue's counts, from `stats`.
 *
 * @example
 * ```ts
 * import type { JobQueue } from "effect-workpool"
 *
 * const unfinished = (s: JobQueue.QueueStats) => s.waiting + s.delayed + s.running
 * ```
 * @since 0.2.0
 * @category models
 */
export type QueueStats = QueueCounts

/**
 * Options of `repeat`.
 *
 * @example
 * ```ts
 * import type { JobQueue } from "effect-workpool"
 *
 * const nightly: JobQueue.RepeatOptions = { cron: "0 3 * * *", queue: "reports", priority: 1, maxAttempts: 5 }
 * // every minute, and the ticks of a stall of up to an hour enqueued late rather than skipped
 * const sync: JobQueue.RepeatOptions = { cron: "* * * * *", queue: "sync", catchUp: "1 hour" }
 * ```
 * @since 0.2.0
 * @category models
 */
export interface RepeatOptions {
  /** A cron expression (`"*\/5 * * * *"`, with an optional seconds field) or an effect `Cron`. */
  readonly cron: string | Cron.Cron
  /**
   * How late a tick may still be enqueued, if longer than until the next tick's time (the
   * default): after a stall (the store failing or hanging, the process frozen) the ticks within it
   * are enqueued late, in order, once each. `Infinity` skips none; a finite one is at most 1e15 ms
   * (a store keeps each tick's deadline in an integer column). Ticks that pass while no process
   * runs the schedule are not its to catch up.
   */
  readonly catchUp?: Duration.Input | undefined
  readonly queue?: string | undefined
  readonly priority?: number | undefined
  readonly timeout?: Duration.Input | undefined
  /** Each tick's job expires if not started this long after its enqueue, as for `enqueue`; default: never. */
  readonly expireIn?: Duration.Input | undefined
  readonly maxAttempts?: number | undefined
  /** Each tick's job's own retry, as for `enqueue`; default: the consumer's. */
  readonly retry?: JobRetry | undefined
}

/**
 * Enqueues one job per tick of a cron schedule, for as long as the current scope lasts. Any number of
 * processes may run the same `repeat` (the same `name`): each tick's job has an id made of the name
 * and the tick's time, so it is enqueued once however many processes reach it (as long as its job is
 * kept: purge a schedule's finished jobs only once older than its longest period (a weekday cron's
 * is its weekend) or `catchUp`, whichever is longer, with a margin, or a process that reaches a tick
 * late enqueues it again). A tick is enqueued until its
 * deadline: the next tick's time, or `catchUp` after its own if later, by the store's clock as the
 * insert reaches it. One reached after it (the store failing or hanging, the process frozen) is
 * skipped, logged and counted in the metric
 * `workpool_repeat_ticks_skipped`. A tick that passes while no process runs the schedule is skipped.
 * Processes that run one name with different payloads or options disagree silently: each tick's job
 * is the first process's to store it.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { JobQueue, Task } from "effect-workpool"
 *
 * const Cleanup = Task.make("Cleanup", { payload: Schema.Struct({ olderThanDays: Schema.Number }), success: Schema.Void })
 * const schedule = JobQueue.repeat("nightly-cleanup", Cleanup, { olderThanDays: 30 }, { cron: "0 3 * * *" })
 * ```
 * @since 0.2.0
 * @category producer
 */
export const repeat = <T extends Task.Any>(
  name: string,
  task: T,
  payload: Task.Payload<T>,
  options: RepeatOptions
): Effect.Effect<void, InvalidJobOptions | TaskCodecError, JobStore | Scope.Scope> =>
  Effect.gen(function*() {
    const checked = yield* invalid(() => {
      taskOf(task)
      config.object("options", options)
      config.onlyKeys("", options, REPEAT_KEYS, REPEAT_HINTS)
      const cron = Cron.isCron(options.cron)
        ? options.cron
        : typeof options.cron === "string"
        ? Result.getOrElse(Cron.parse(options.cron), (error) => config.fail("cron", options.cron, `expected a cron expression (${error.message}${macroHint(options.cron as string)})`))
        : config.fail("cron", options.cron, "expected a cron expression or a Cron")
      // a cron without years fires again and again or never (February 30th): Cron.next throws then,
      // which killed the schedule's fiber at its first tick, unseen
      try {
        Cron.next(cron, new Date(0))
      } catch {
        config.fail("cron", options.cron, "expected a cron expression that fires (this one matches no date)")
      }
      // the name is in each tick's id, which a store indexes
      const catchUp = options.catchUp === undefined ? 0 : catchUpOf(options.catchUp)
      return { name: storedName("name", name), cron, catchUp, ...jobOptions(options) }
    })
    const encoded = yield* encodePayload(task, payload)
    const store = yield* JobStore
    const job = (at: number): NewJob => ({
      id: `repeat:${checked.name}:${at}`,
      queue: checked.queue,
      task: task.name,
      payload: encoded,
      priority: checked.priority,
      dedupKey: null,
      maxAttempts: checked.maxAttempts,
      retry: checked.retry,
      timeout: checked.timeout,
      ...(checked.expireIn === undefined ? {} : { expireIn: checked.expireIn }),
      delay: 0,
      runAt: at
    })
    // its ticks are never part of its caller's transaction (see sqlTransaction.ts)
    yield* Effect.forkScoped(outsideTransactions(Repeat.run({ name: checked.name, cron: checked.cron, catchUp: checked.catchUp, store, job })))
  })

/**
 * The fields a cron macro stands for (cron-parser's, which BullMQ and pg-boss read): Effect's
 * `Cron` reads none, and its error alone ("Invalid number of segments") did not say why.
 */
const MACROS: Record<string, string> = {
  "@yearly": "0 0 1 1 *",
  "@annually": "0 0 1 1 *",
  "@monthly": "0 0 1 * *",
  "@weekly": "0 0 * * 0",
  "@daily": "0 0 * * *",
  "@midnight": "0 0 * * *",
  "@hourly": "0 * * * *"
}

/**
 * A repeat's `catchUp` (ms): `Infinity` for none skipped, or a deadline a store can keep (a tick's
 * enqueue carries it: past Postgres' bigint every enqueue failed, retried until that deadline).
 */
const catchUpOf = (value: unknown): number => {
  const millis = config.millis("catchUp", value, "nonNegative")
  if (millis !== Infinity && millis > Backoff.MAX_DELAY) {
    config.fail("catchUp", value, `expected a duration of at most ${Backoff.MAX_DELAY} milliseconds (about 31,700 years), or Infinity for none skipped`)
  }
  return millis
}

const macroHint = (expression: string): string => {
  const macro = expression.trim().toLowerCase()
  if (!macro.startsWith("@")) return ""
  const fields = Object.hasOwn(MACROS, macro) ? MACROS[macro] : undefined
  return fields === undefined
    ? "; macros such as @daily are not read"
    : `; macros such as @daily are not read: write "${fields}"`
}

/**
 * Options of `consume`.
 *
 * @example
 * ```ts
 * import { Effect, Schedule, Schema } from "effect"
 * import { type JobQueue, Task } from "effect-workpool"
 *
 * const Ping = Task.make("Ping", { payload: Schema.String, success: Schema.String })
 * const options: JobQueue.ConsumeOptions<never> = {
 *   queues: ["default"],
 *   handlers: [Task.handle(Ping, (s) => Effect.succeed(s))],
 *   concurrency: 8,
 *   timeout: "1 minute",                       // per attempt, unless the job has its own
 *   retry: Schedule.exponential("1 second"),   // delay before each retry (attempts are per job)
 *   retryPolicies: { webhooks: Schedule.spaced("1 minute") }, // for jobs enqueued with retry: "webhooks"
 *   lease: "30 seconds",                       // renewed every lease / 3; a dead consumer's jobs come back after it
 *   poll: "1 second",                          // how often to look for other processes' jobs
 *   rateLimit: { limit: 20, interval: "1 second" }, // this consumer's starts (the queue's: setRateLimit)
 *   aging: "1 minute",                         // the queues' aging: set if they have none, refused if another
 *   shutdownTimeout: "30 seconds",
 *   name: "mailer",                            // its metrics' and spans' pool; default "consumer:default"
 *   dispatch: "priority"                       // or "fair": round-robin over the queues (a queue per tenant)
 * }
 * ```
 * @since 0.2.0
 * @category models
 */
export interface ConsumeOptions<R> {
  /** The queues to claim from; default `["default"]`. A queue named twice is consumed once (one turn, if fair). */
  readonly queues?: ReadonlyArray<string> | undefined
  /** One per task, run on this process's fibers; only jobs of these tasks and of `tasks` are claimed. */
  readonly handlers?: ReadonlyArray<Task.Handler<R>> | undefined
  /**
   * A `ThreadPool` that runs `tasks` (CPU-bound durable work): its worker file serves them
   * (`ThreadWorker.serve`). A job's stored payload goes to a thread as it is and is decoded there,
   * and its result comes back encoded and is stored as it is. The job is a task of the pool for as
   * long as its attempt runs: the attempt's timeout, a cancel from any process and a shutdown
   * interrupt it on its thread (terminated past the pool's `cancelGrace`), its progress reaches the
   * store, its spans are children of the job's. The retries and timeout are this consumer's (none
   * of the pool's own apply). A crashed thread fails the attempt as a defect (retried). If the pool
   * shuts down first, this consumer stops too, giving its claims back.
   */
  readonly threadPool?: ThreadPoolLike | undefined
  /** The tasks to run on `threadPool`; only with it. */
  readonly tasks?: ReadonlyArray<Task.Any> | undefined
  /**
   * How many jobs run at once; required without a `threadPool`. With one, default the pool's slots
   * (`threads × tasksPerThread`), followed as `ThreadPool.resize` changes them, so that a claimed
   * job never waits for a thread. A larger number lets claimed jobs wait in the pool's queue, their
   * lease held and their timeout running.
   */
  readonly concurrency?: number | undefined
  readonly timeout?: Duration.Input | undefined
  /**
   * How failed attempts are retried, as for `WorkPool` (a `Schedule`, or `{ schedule?, times?,
   * while? }`), replayed from each job's stored attempt count so that every consumer computes the
   * same delay; a job's `maxAttempts` bounds it too. Default: exponential from 1 second.
   */
  readonly retry?: WorkPool.Retry | undefined
  /**
   * Retry policies by name, for jobs whose producer chose one (`enqueue({ retry: "name" })`): a job's
   * own policy wins over `retry`. Register the same names in every consumer of the queue.
   */
  readonly retryPolicies?: Readonly<Record<string, WorkPool.Retry>> | undefined
  readonly lease?: Duration.Input | undefined
  /**
   * How often an idle consumer looks for jobs no wake-up told it of (another process's, where the
   * store cannot hear of them). Default 1 second. Delayed jobs and retries start at their time
   * whatever it is: a claim says when its queues' next one is due.
   */
  readonly poll?: Duration.Input | undefined
  readonly shutdownTimeout?: Duration.Input | undefined
  /**
   * This consumer's own rate limit (see `WorkPool.RateLimit`): it claims only as many jobs as the
   * limit lets start now, so it holds no lease on a job it cannot start. For a limit shared by every
   * consumer of a queue, in every process, see `setRateLimit`.
   */
  readonly rateLimit?: WorkPool.RateLimit | undefined
  /**
   * The aging of `queues` (see `setAging`): each `aging` of waiting raises a job by one priority
   * level; `Infinity` for none (0 is refused, as `WorkPool`'s `aging` refuses it). A queue's order is a key computed when a job enters it, so
   * the aging is the queue's, kept in the store, not this consumer's: it is set when the consumer
   * starts if the queue has none, and a queue whose stored aging differs fails the start with
   * `InvalidPoolConfig` (field `aging`) rather than run under an order other than the one asked
   * for. Change a queue's aging with `setAging`. Default: the queue's, whatever it is.
   */
  readonly aging?: Duration.Input | undefined
  /**
   * The name of the consumer's pool: the `pool` attribute of its metrics and spans, and
   * `JobContext.pool`. A non-empty string; as for `WorkPool`'s `name`, a live pool with the same
   * name (in the same `Metric.MetricRegistry`, with the same `Metric.CurrentMetricAttributes`)
   * fails the start with `InvalidPoolConfig` (field `name`). Default: derived from `queues`,
   * `consumer:<queue>` (`consumer:a,b,c` for up to three, `consumer:a,b,c,+7` for ten), the same
   * at every start; a second live consumer of the same queues in the process gets `#2` after it
   * (`consumer:emails#2`), a third `#3`, in start order.
   */
  readonly name?: string | undefined
  /**
   * How a claim shares this consumer's free slots among its `queues` (default `"priority"`):
   * - `"priority"`: the best ready jobs across all of them, higher priority (with aging) first,
   *   then the oldest. A queue's backlog enqueued earlier runs before later jobs of the others.
   * - `"fair"`: round-robin over the queues that have ready jobs, one job of each per round, the
   *   next claim starting where the last one stopped; a claim of several jobs spreads them across
   *   the queues. Priority and aging order the jobs within a queue only: a queue's priority-10 job
   *   waits for its queue's turn behind the other queues' priority-0 jobs. A queue with nothing it
   *   may start now (empty, paused, its shared rate limit's window full) is passed over and comes
   *   first again when the turn comes round. One queue per tenant, a tenant's 100,000-job backlog
   *   then delays another tenant's job by at most one turn over the queues. The turn is each
   *   consumer's own (nothing is stored): several consumers of the same queues each rotate.
   */
  readonly dispatch?: "priority" | "fair" | undefined
  /**
   * Told of each lifecycle event of this consumer's jobs (`JobEvent`), in order, on a fiber of its
   * own with the consumer's services: the consumer never waits for it. Events wait for a slow
   * handler in a buffer of 1,024; past that they are dropped and counted (a `Dropped` event, where
   * they were). A handler that fails or dies loses that event (logged once); one that hangs holds
   * the events after it until they are dropped. A stopping consumer gives it 2 seconds to take
   * what is buffered. Without it no event is made (nothing per job).
   * @since 0.3.0
   */
  readonly onEvent?: ((event: JobEvent) => Effect.Effect<unknown, unknown, R>) | undefined
}

/**
 * A lifecycle event of a consumer's job (`ConsumeOptions.onEvent`). Every event but `Dropped` names
 * the job (`id`, `queue`, `task`, and the `attempt` as the store counts it):
 * - `Started`: claimed and handed to the consumer's pool.
 * - `Succeeded` (`duration` in ms, on this consumer's clock: from the attempt's start to its
 *   handler's end, the write of its outcome not counted).
 * - `Failed`: an attempt failed (`error`, its `Cause`; a timeout is `AttemptTimeout`); `willRetry`
 *   with `runAt` (this consumer's clock), or not, and then `Dead` follows.
 * - `Dead`: no attempt left, or a failure that is never retried (`error`).
 * - `Cancelled`: a cancel (`JobQueue.cancel`) stopped it mid-run; or, asked for before the consumer
 *   heard of it, ended it when its attempt failed with attempts left, snoozed or was given back
 *   (the cancel wins over a retry: the store ends the job cancelled, and that is what is told).
 * - `Snoozed` (`runAt`): its handler snoozed it (`JobQueue.snooze`).
 * - `GivenBack`: this consumer stopped (or could not start it) and gave it back unrun; the attempt
 *   does not count.
 * - `LeaseLost`: nothing of this attempt was written, and the job runs again (once reaped): its
 *   lease was no longer this consumer's (reaped after this process paused past it), or its settle
 *   failed for good (the store unreachable for a lease), or was cut by a stop past its
 *   grace (2 s).
 * - `Reaped`: this consumer's reaper took back the job of a consumer that stopped renewing its
 *   lease (died): `outcome` "retried" (with `runAt`, the store's time), "dead" or "cancelled".
 *   Any live consumer of the store may be the one that reaps it.
 * - `Dropped` (`count`): events lost because the handler fell behind.
 *
 * @example
 * ```ts
 * import { Cause, Effect } from "effect"
 * import { JobQueue } from "effect-workpool"
 *
 * const onEvent = JobQueue.JobEvent.$match({
 *   Dead: (e) => Effect.logError(`job ${e.id} (${e.task}) is dead`, Cause.pretty(e.error)),
 *   Reaped: (e) => Effect.logWarning(`job ${e.id} taken back from a dead consumer: ${e.outcome}`),
 *   Dropped: (e) => Effect.logWarning(`${e.count} job events dropped`),
 *   Started: () => Effect.void,
 *   Succeeded: () => Effect.void,
 *   Failed: () => Effect.void,
 *   Cancelled: () => Effect.void,
 *   Snoozed: () => Effect.void,
 *   GivenBack: () => Effect.void,
 *   LeaseLost: () => Effect.void
 * })
 * // JobQueue.consume({ ..., onEvent })
 * ```
 * @since 0.3.0
 * @category models
 */
export type JobEvent = Data.TaggedEnum<{
  Started: JobEventRef
  Succeeded: JobEventRef & { readonly duration: number }
  Failed: JobEventRef & {
    readonly error: Cause.Cause<unknown>
    readonly duration: number
    readonly willRetry: boolean
    readonly runAt: Date | undefined
  }
  Dead: JobEventRef & { readonly error: Cause.Cause<unknown> }
  Cancelled: JobEventRef
  Snoozed: JobEventRef & { readonly runAt: Date }
  GivenBack: JobEventRef
  LeaseLost: JobEventRef
  Reaped: JobEventRef & { readonly outcome: "retried" | "dead" | "cancelled"; readonly runAt: Date | undefined }
  Dropped: { readonly count: number }
}>

/**
 * The job a `JobEvent` is about (every kind but `Dropped`).
 *
 * @example
 * ```ts
 * import type { JobQueue } from "effect-workpool"
 *
 * const label = (job: JobQueue.JobEventRef) => `${job.queue}/${job.task} ${job.id} #${job.attempt}`
 * ```
 * @since 0.3.0
 * @category models
 */
export interface JobEventRef {
  readonly id: string
  readonly queue: string
  readonly task: string
  /** The attempt as the store counts it (1, then one more per retry or lease expiry). */
  readonly attempt: number
}

/**
 * Constructors, `$is` and `$match` of `JobEvent`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { JobQueue } from "effect-workpool"
 *
 * const isDeath = JobQueue.JobEvent.$is("Dead")
 * const onEvent = (event: JobQueue.JobEvent) => isDeath(event) ? Effect.logError(`dead: ${event.id}`) : Effect.void
 * ```
 * @since 0.3.0
 * @category models
 */
export const JobEvent = Events.JobEvent

/**
 * A `ThreadPool` (`effect-workpool/ThreadPool`), as `ConsumeOptions.threadPool` takes it: by its type
 * id, so that this module's types do not bring in the thread pool's (and `node:worker_threads`).
 *
 * @example
 * ```ts
 * import type { JobQueue } from "effect-workpool"
 * import type * as ThreadPool from "effect-workpool/ThreadPool"
 *
 * const asOption = (pool: ThreadPool.ThreadPool): JobQueue.ThreadPoolLike => pool
 * ```
 * @since 0.3.0
 * @category models
 */
export interface ThreadPoolLike {
  readonly "~effect-workpool/ThreadPool": "~effect-workpool/ThreadPool"
}

/**
 * A running consumer: the members of `WorkPool` that make sense for claimed jobs.
 *
 * @example
 * ```ts
 * import { Console, Effect, Stream } from "effect"
 * import type { JobQueue } from "effect-workpool"
 *
 * const watch = (consumer: JobQueue.Consumer) =>
 *   Stream.runForEach(consumer.changes, (s) => Console.log(`${s.running} running, ${s.succeeded} done`))
 * ```
 * @since 0.2.0
 * @category models
 */
export interface Consumer {
  /** The consumer's own pool stats (its jobs, not the queue's: see `JobQueue.stats`). */
  readonly stats: Effect.Effect<WorkPool.PoolStats>
  readonly changes: WorkPool.WorkPool["changes"]
  /** Stops claiming; running jobs go on. */
  readonly pause: Effect.Effect<void>
  readonly resume: Effect.Effect<void>
  /**
   * Sets how many jobs this consumer claims at once. With a `threadPool`, it never resizes the pool
   * (the pool is the caller's, and may serve others): the consumer stops following the pool's
   * slots and keeps this number; resize the pool (`ThreadPool.resize`) to run more at once.
   */
  readonly resize: (concurrency: number) => Effect.Effect<void, InvalidPoolConfig>
  /** Sets this consumer's own rate limit (`ConsumeOptions.rateLimit`), or removes it with `undefined`. */
  readonly setRateLimit: (rateLimit: WorkPool.RateLimit | undefined) => Effect.Effect<void, InvalidPoolConfig>
  /**
   * Stops claiming, lets running jobs finish within `shutdownTimeout`, then interrupts the rest and
   * gives them back to the queue without counting the attempt. Closing the scope does this.
   * Called from one of this consumer's own jobs (or its `onEvent` handler, or a fiber either forks,
   * while the job runs), it starts the stop and returns at once: the stop waits for that job (or
   * those events), which must not wait for it. So does one asked from inside another consumer
   * whose stop (or termination) this consumer's jobs await: two consumers whose jobs stop each
   * other both end.
   */
  readonly shutdown: Effect.Effect<void>
  /**
   * Interrupts running jobs at once and gives them back without counting the attempt. From inside
   * the consumer (see `shutdown`) it returns at once too; from one of its jobs, that job is left to
   * end as its handler ends (its result is stored).
   */
  readonly shutdownNow: Effect.Effect<void>
  /**
   * Waits until the consumer has stopped. From one of its own jobs it would wait for itself: the
   * job is interrupted when the stop starts, and given back.
   */
  readonly awaitTermination: Effect.Effect<void>
}

const retryPolicies = (value: unknown): ReadonlyMap<string, Retries.Policy> => {
  const policies = new Map<string, Retries.Policy>()
  if (value === undefined) return policies
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return config.fail("retryPolicies", value, "expected an object of named retry policies: { name: Schedule }")
  }
  for (const [name, policy] of Object.entries(value)) {
    // no job can name one that is not stored as it is, and the Postgres reaper fails on it
    const why = Backoff.policyName(name)
    if (why !== undefined) config.fail("retryPolicies", name, why)
    policies.set(name, Retries.policy(`retryPolicies.${name}`, policy))
  }
  return policies
}

/**
 * Starts a consumer in the current scope: it claims jobs of `queues` whose task has a handler, as
 * slots of its pool free up, and runs them with the caller's services; or whose task is one of
 * `tasks`, and runs them on the `threadPool`'s threads (see `ConsumeOptions.threadPool`).
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { JobQueue, Task } from "effect-workpool"
 * import * as JobStore from "effect-workpool/JobStore"
 *
 * const Resize = Task.make("Resize", { payload: Schema.String, success: Schema.Number })
 * const worker = Effect.scoped(Effect.gen(function* () {
 *   const consumer = yield* JobQueue.consume({
 *     queues: ["images"],
 *     handlers: [Task.handle(Resize, (file) => Effect.succeed(file.length))],
 *     concurrency: 4
 *   })
 *   return yield* consumer.awaitTermination
 * })).pipe(Effect.provide(JobStore.sqlite({ filename: "jobs.db" })))
 * ```
 * @since 0.2.0
 * @category consumer
 */
export const consume: {
  <R = never>(
    options: ConsumeOptions<R> & { readonly aging?: undefined }
  ): Effect.Effect<Consumer, InvalidPoolConfig, JobStore | Scope.Scope | R>
  /** With `aging`, the start reads (and may set) each queue's aging in the store: a `StoreError` if it cannot. */
  <R = never>(options: ConsumeOptions<R>): Effect.Effect<Consumer, InvalidPoolConfig | StoreError, JobStore | Scope.Scope | R>
  /** Handlers that need different services (one `R` is inferred from one handler): the consumer needs them all. */
  <H extends Task.Handler<any>>(
    options: ConsumeOptionsOf<H> & { readonly aging?: undefined }
  ): Effect.Effect<Consumer, InvalidPoolConfig, JobStore | Scope.Scope | ServicesOf<H>>
  <H extends Task.Handler<any>>(
    options: ConsumeOptionsOf<H>
  ): Effect.Effect<Consumer, InvalidPoolConfig | StoreError, JobStore | Scope.Scope | ServicesOf<H>>
} = (<R = never>(options: ConsumeOptions<R>): Effect.Effect<Consumer, InvalidPoolConfig | StoreError, JobStore | Scope.Scope | R> =>
  Effect.flatMap(
    config.checkPoolOptions(() => {
      config.object("options", options)
      config.onlyKeys("", options, CONSUME_KEYS, CONSUME_HINTS)
      const queues = options.queues ?? [DEFAULT_QUEUE]
      if (!Array.isArray(queues) || queues.length === 0) config.fail("queues", queues, "expected a non-empty array of queue names")
      queues.forEach((queue, i) => queueName(`queues[${i}]`, queue))
      const threads = threadTasks(options.threadPool, options.tasks)
      const handlers = options.handlers ?? []
      if (!Array.isArray(handlers) || (handlers.length === 0 && threads === undefined)) {
        config.fail("handlers", options.handlers, "expected a non-empty array of Task.handle(...) (or a threadPool and its tasks)")
      }
      const seen = new Set<string>()
      handlers.forEach((handler, i) => {
        if (typeof handler?.run !== "function" || typeof handler.task?.name !== "string") {
          config.fail(`handlers[${i}]`, handler, "expected Task.handle(task, run)")
        }
        const notTask = checkTask(handler.task)
        if (notTask !== undefined) config.fail(`handlers[${i}].task`, handler.task, notTask.reason)
        // no enqueue takes such a task: its handler would never run
        const badName = storedTaskName(handler.task.name)
        if (badName !== undefined) config.fail(`handlers[${i}].task`, handler.task, badName)
        if (seen.has(handler.task.name)) config.fail(`handlers[${i}]`, handler.task.name, "expected one handler per task")
        seen.add(handler.task.name)
      })
      threads?.tasks.forEach((task, i) => {
        if (seen.has(task.name)) config.fail(`tasks[${i}]`, task.name, "expected one handler or thread task per task")
        const badName = storedTaskName(task.name)
        if (badName !== undefined) config.fail(`tasks[${i}]`, task, badName)
        seen.add(task.name)
      })
      if (options.concurrency === undefined && threads === undefined) {
        config.fail("concurrency", options.concurrency, "expected a positive integer (it defaults only with a threadPool)")
      }
      const lease = options.lease === undefined ? 30_000 : config.finiteMillis("lease", options.lease, 3)
      // the stores add it to their time in integer columns (Postgres' bigint)
      if (lease > Backoff.MAX_DELAY) config.fail("lease", options.lease, `expected at most ${Backoff.MAX_DELAY} milliseconds (about 31,700 years)`)
      const aging = options.aging === undefined ? undefined : agingOf("aging", options.aging)
      return [aging, {
        // a queue named twice is consumed once: a fair consumer's turn over the list went a, b, a,
        // b, ... and never reached the queues after the second name; a Postgres claim read the
        // queue twice and took the same jobs twice, coming back short
        queues: Array.from(new Set(queues)),
        handlers,
        threads,
        concurrency: options.concurrency === undefined
          ? undefined // the thread pool's slots
          : config.positiveInteger("concurrency", options.concurrency, config.MAX_CONCURRENCY),
        timeout: options.timeout === undefined ? 0 : config.millis("timeout", options.timeout, "positive"),
        retry: Retries.policy("retry", options.retry === undefined ? Schedule.exponential("1 second") : options.retry),
        retryPolicies: retryPolicies(options.retryPolicies),
        shutdownTimeout: options.shutdownTimeout === undefined
          ? 30_000
          : config.millis("shutdownTimeout", options.shutdownTimeout, "nonNegative"),
        lease,
        poll: options.poll === undefined ? 1000 : config.finiteMillis("poll", options.poll),
        rateLimit: options.rateLimit === undefined ? undefined : RateLimits.check("rateLimit", options.rateLimit),
        name: options.name === undefined ? undefined : config.name("name", options.name),
        dispatch: options.dispatch === undefined ? "priority" : config.oneOf("dispatch", options.dispatch, ["priority", "fair"]),
        onEvent: options.onEvent === undefined || typeof options.onEvent === "function"
          ? options.onEvent
          : config.fail("onEvent", options.onEvent, "expected a function (event) => Effect")
      } satisfies ConsumerImpl.ConsumerConfig<R>] as const
    }),
    ([aging, checked]) =>
      // a consumer is never part of its caller's transaction (see sqlTransaction.ts)
      outsideTransactions(Effect.gen(function*() {
        if (aging !== undefined) yield* shareAging(checked.queues, aging)
        return yield* ConsumerImpl.make(checked)
      }))
  )) as typeof consume

/** `ConsumeOptions` whose handlers are any handlers `H`, each with its own services. */
type ConsumeOptionsOf<H> = Omit<ConsumeOptions<never>, "handlers"> & { readonly handlers?: ReadonlyArray<H> | undefined }
/** The services of handlers `H`: the union of each one's (a naked type parameter distributes). */
type ServicesOf<H> = H extends Task.Handler<infer R> ? R : never

/** `threadPool` and `tasks`, checked: both or neither, the pool one made by `ThreadPool.make`. */
const threadTasks = (pool: unknown, tasks: ReadonlyArray<Task.Any> | undefined): ConsumerImpl.ConsumerConfig<never>["threads"] => {
  if (pool === undefined) {
    if (tasks !== undefined) config.fail("tasks", tasks, "expected only with a threadPool: the pool whose worker serves them")
    return undefined
  }
  const entry = typeof pool === "object" && pool !== null ? ThreadJson.of(pool) : undefined
  if (entry === undefined) config.fail("threadPool", pool, "expected a ThreadPool made with ThreadPool.make")
  // a stopped pool has no slots: its consumer could claim jobs and only give them back
  if (entry!.slots() < 1) config.fail("threadPool", pool, "expected a running ThreadPool: this one has shut down")
  if (!Array.isArray(tasks) || tasks.length === 0) {
    return config.fail("tasks", tasks, "expected a non-empty array of the Tasks the thread pool's worker serves")
  }
  tasks.forEach((task, i) => {
    const invalid = checkTask(task)
    if (invalid !== undefined) config.fail(`tasks[${i}]`, task, invalid.reason)
  })
  return { pool: entry!, tasks }
}

/**
 * Sets the aging of each queue that has none, once none of them has another (see
 * `ConsumeOptions.aging`): a refused start changes nothing. Two consumers with different agings
 * starting at the same moment on a queue without one can both pass (the last write wins): this
 * catches a misconfigured consumer, it is not a lock.
 */
const shareAging = (queues: ReadonlyArray<string>, aging: number): Effect.Effect<void, InvalidPoolConfig | StoreError, JobStore> =>
  JobStore.use((store) =>
    Effect.gen(function*() {
      const unset: Array<string> = []
      for (const queue of queues) {
        const stored = (yield* store.counts(queue)).aging
        if (stored === aging) continue
        if (stored !== 0) {
          return yield* new InvalidPoolConfig({
            field: "aging",
            value: `${aging} ms`,
            reason: `queue ${JSON.stringify(queue)} has an aging of ${stored} ms in the store (JobQueue.setAging, or ` +
              `another consumer): a job's order is computed when it enters the queue, so a queue has one aging; ` +
              `change it with JobQueue.setAging, or leave out this consumer's`
          })
        }
        unset.push(queue)
      }
      for (const queue of unset) yield* store.configure(queue, { aging })
    }))
