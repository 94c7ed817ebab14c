/**
 * The in-process pool: worker fibers for I/O-bound work, with a bounded priority queue, typed errors,
 * per-job timeouts, cancellation and graceful shutdown, all tied to a `Scope`.
 *
 * A job is any `Effect`. Many kinds of job share one pool and keep their own result and error
 * types: `pool.run(job)` has the type `Effect<A, E | JobError, R>`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { WorkPool } from "effect-workpool"
 *
 * class Thumbnails extends WorkPool.Service<Thumbnails>()("app/Thumbnails", {
 *   concurrency: 8,
 *   capacity: 1024,
 *   timeout: "30 seconds"
 * }) {}
 *
 * const program = Effect.gen(function* () {
 *   const pool = yield* Thumbnails
 *   const one = yield* pool.run(Effect.succeed("thumb.png"), { priority: 10 })
 *   const all = yield* pool.runAll(["a", "b"].map((name) => Effect.succeed(`${name}.png`)))
 *   return [one, ...all]
 * }).pipe(Effect.provide(Thumbnails.layer))
 * ```
 *
 * @since 0.1.0
 */
import {
  type Cause,
  Clock,
  Context,
  type Duration,
  Effect,
  Exit,
  type Fiber,
  Layer,
  Option,
  type Schedule,
  Stream
} from "effect"
import * as Scope from "effect/Scope"
import { dual } from "effect/Function"
import { hasProperty } from "effect/Predicate"
import {
  type AdmissionError,
  type AdmittedJobError,
  type InvalidJob,
  InvalidJobOptions,
  InvalidPoolConfig,
  type JobError
} from "./PoolError.ts"
import * as config from "./internal/config.ts"
import { fiberExecutor } from "./internal/fiberExecutor.ts"
import * as Items from "./internal/items.ts"
import * as JobKind from "./internal/job.ts"
import * as JobContexts from "./internal/jobContext.ts"
import * as Metrics from "./internal/metrics.ts"
import * as Pools from "./internal/service.ts"
import * as Primitive from "./internal/primitive.ts"
import * as RateLimits from "./internal/rateLimit.ts"
import * as Retries from "./internal/retry.ts"
import * as Internal from "./internal/scheduler.ts"
import { type Job as JobRecord, Scheduler, WAITING } from "./internal/scheduler.ts"

/**
 * Marks a value as a `WorkPool` (see `isWorkPool`).
 *
 * @example
 * ```ts
 * import { WorkPool } from "effect-workpool"
 *
 * const looksLikeAPool = (u: object) => WorkPool.TypeId in u
 * ```
 * @since 0.2.0
 * @category type ids
 */
export const TypeId = "~effect-workpool/WorkPool" as const

/**
 * The type of `TypeId`.
 *
 * @example
 * ```ts
 * import type { WorkPool } from "effect-workpool"
 *
 * const id: WorkPool.TypeId = "~effect-workpool/WorkPool"
 * ```
 * @since 0.2.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * What happens when a job is submitted to a full queue.
 *
 * - `"suspend"` (default): the submitter waits for room (backpressure).
 * - `"fail"`: the submission fails at once with `QueueFull`.
 * - `"dropNewest"`: the new job is dropped; its awaiter gets `JobDropped`.
 * - `"dropOldest"`: the job that has waited longest is dropped (its awaiter gets `JobDropped`) and
 *   the new one is queued.
 *
 * @example
 * ```ts
 * import { WorkPool } from "effect-workpool"
 *
 * // keep the freshest 100 readings; older ones are dropped when the queue is full
 * const readings = WorkPool.make({ concurrency: 2, capacity: 100, overflow: "dropOldest" })
 * ```
 * @since 0.1.0
 * @category models
 */
export type Overflow = "suspend" | "fail" | "dropNewest" | "dropOldest"

/**
 * Options of a pool. Only `concurrency` is required.
 *
 * @example
 * ```ts
 * import { Schedule } from "effect"
 * import type { WorkPool } from "effect-workpool"
 *
 * const options: WorkPool.Options = {
 *   concurrency: 8,          // worker fibers
 *   capacity: 1024,          // waiting jobs (default 1024; Infinity for unbounded)
 *   overflow: "suspend",     // or "fail" | "dropNewest" | "dropOldest"
 *   timeout: "30 seconds",   // per job, from its start (default: none)
 *   queueTimeout: "1 minute",// per job, from its submission while queued (default: none)
 *   aging: "1 second",       // a waiting job gains 1 priority level per second (default: none)
 *   retry: { schedule: Schedule.exponential("100 millis"), times: 5 }, // failed attempts (default: none)
 *   rateLimit: { limit: 50, interval: "1 second" }, // at most 50 starts in any second (default: none)
 *   shutdownTimeout: "10 seconds" // graceful shutdown deadline (default 30 seconds)
 * }
 * ```
 * @since 0.1.0
 * @category models
 */
export interface Options<W = void, EW = never, RW = never> {
  /** How many jobs run at once: the number of workers. A whole number from 1 to 100,000. */
  readonly concurrency: number
  /**
   * The pool's name: the `pool` attribute of its metrics and spans, and `JobContext.pool`. A
   * non-empty string; default `"workpool-1"`, `"workpool-2"`, ... Each live pool publishing metrics
   * needs its own (their series would overwrite each other's): `make` fails with
   * `InvalidPoolConfig` (field `name`) for a name a live pool already has in the same
   * `Metric.MetricRegistry` with the same `Metric.CurrentMetricAttributes`. The name is free again
   * once that pool's scope closes.
   */
  readonly name?: string | undefined
  /** Publish the pool's `Metric`s (see the README's Metrics section); default true. */
  readonly metrics?: boolean | undefined
  /** How many jobs may wait in the queue. A whole number ≥ 0 or `Infinity`; default 1024. */
  readonly capacity?: number | undefined
  /** What a full queue does to a new submission; default `"suspend"`. */
  readonly overflow?: Overflow | undefined
  /** Deadline of each job, counted from its start; default none. Jobs can override it. */
  readonly timeout?: Duration.Input | undefined
  /** Deadline of each job while it waits, counted from its submission; default none. */
  readonly queueTimeout?: Duration.Input | undefined
  /**
   * Aging: each `aging` of waiting raises a queued job by one priority level, so that a job of
   * priority `p` is passed by a job of priority `q > p` only if that job came less than
   * `(q - p) × aging` after it (one that came exactly that much later runs after it: FIFO).
   * Default: none (strict priority), which `Infinity` also means.
   *
   * The rule holds exactly for whole-number priorities (and halves, quarters, ...) and an `aging` of
   * whole milliseconds, as long as `|priority| × aging` stays below 2^53 ms (with `aging: "1 second"`,
   * priorities within ±9 × 10^12); otherwise (a priority of 0.1, an aging of 1.3 ms) to within the
   * rounding of `priority × aging`.
   */
  readonly aging?: Duration.Input | undefined
  /** How a failed attempt of a job is retried (see `Retry`); default: never. Jobs can override it. */
  readonly retry?: Retry | undefined
  /** How long a graceful shutdown waits for queued and running jobs; default 30 seconds. */
  readonly shutdownTimeout?: Duration.Input | undefined
  /** Start with dispatch paused (jobs are queued until `resume`); default false. */
  readonly paused?: boolean | undefined
  /**
   * At most `limit` job starts in any window of `interval` (see `RateLimit`); default none. Jobs the
   * limit holds back wait in the queue, in priority order, on no worker.
   */
  readonly rateLimit?: RateLimit | undefined
  /**
   * Whether and how long ended jobs stay visible to `jobs` and `job` (see `Retention`); default:
   * none are kept (live jobs are always visible).
   */
  readonly retention?: Retention | undefined
  /**
   * A resource per worker, such as a connection: acquired when a worker starts, released (its
   * scope closed) when the worker stops, and handed to the jobs that worker runs when a job is
   * written as a function `(resource) => Effect`. A shutdown interrupts the acquisitions still in
   * flight (waits for one that cannot be interrupted) and releases what they acquired before it
   * returns. A release that fails or dies is logged at error level with its cause (no caller
   * awaits it) and does not stop the pool.
   */
  readonly resource?: ((workerId: number) => Effect.Effect<W, EW, RW | Scope.Scope>) | undefined
}

/**
 * A rate limit: at most `limit` job starts (attempts: a retry counts) in any window of `interval`,
 * however the windows are placed. The window slides, so the bound holds for every span of
 * `interval`, not only for aligned ones: a server that allows 100 requests per second, counted
 * any way, is never sent 101 in a second. After an idle spell up to `limit` jobs start at once;
 * to spread them evenly, make the window smaller: `{ limit: 1, interval: "10 millis" }` is also
 * 100 per second, one every 10 ms.
 *
 * - `limit`: a whole number from 1 to 1,000,000.
 * - `interval`: a finite duration above 0.
 *
 * Jobs held back by the limit wait in the queue in priority order, holding no worker; timeouts,
 * cancellation, pause, resize and shutdown work on them as on any queued job (a graceful shutdown
 * keeps the limit while it drains). `PoolStats.rateLimited` and the gauge
 * `workpool_jobs_rate_limited` show how many are held back right now. `setRateLimit` changes it.
 *
 * @example
 * ```ts
 * import { WorkPool } from "effect-workpool"
 *
 * // the mail provider accepts 10 sends per second: at most 10 starts in any second
 * const mailer = WorkPool.make({ concurrency: 4, rateLimit: { limit: 10, interval: "1 second" } })
 * ```
 * @since 0.3.0
 * @category models
 */
export interface RateLimit {
  readonly limit: number
  readonly interval: Duration.Input
}

/**
 * How many ended jobs a pool keeps for lookup, and for how long: memory stays flat however many jobs
 * run. Live jobs (waiting, queued, running, retrying) are always visible; ended ones only with a
 * retention, which is opt-in: keeping them costs a trivial job a few percent (a ring slot per ending,
 * an old object pointing at a young one), so a pool without one pays nothing. An ended job keeps its
 * result alive until it is evicted; one that ran lets its Effect and its submitter's services go
 * when it ends (one that never started keeps them).
 *
 * - `count` (required): at most this many ended jobs, the most recent; a whole number from 1 to
 *   1,000,000 (0 is refused: a pool without a retention keeps none).
 * - `age`: each for at most this long after it ended; `Infinity` for no age limit; default 1 hour.
 *
 * @example
 * ```ts
 * import { WorkPool } from "effect-workpool"
 *
 * // the last 10,000 ended jobs, each for 15 minutes
 * const pool = WorkPool.make({ concurrency: 4, retention: { count: 10_000, age: "15 minutes" } })
 * ```
 * @since 0.2.0
 * @category models
 */
export interface Retention {
  readonly count: number
  readonly age?: Duration.Input | undefined
}

/**
 * What `jobs` tells about one job of a pool: a snapshot taken when it was listed.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { WorkPool } from "effect-workpool"
 *
 * const describe = (job: WorkPool.JobSummary) =>
 *   `#${job.id} ${job.status} (attempt ${job.attempt}, priority ${job.priority})`
 * ```
 * @since 0.2.0
 * @category models
 */
export interface JobSummary {
  readonly id: number
  readonly status: JobStatus
  readonly priority: number
  readonly attempt: number
  /** The latest progress the job reported, if any. */
  readonly progress: Option.Option<unknown>
  /** How it ended (its result or error), once it has. */
  readonly exit: Option.Option<Exit.Exit<unknown, unknown>>
}

/**
 * Which jobs `jobs` lists, in id order: those whose status is `status` (or one of them; default
 * every job the pool knows, live and retained), with an id above `after`, at most `limit` of them.
 * A page's last id is the next page's `after`: a job that ends or is evicted between two pages moves
 * or goes, but no job is listed twice in one status, and none is skipped that stayed.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { WorkPool } from "effect-workpool"
 *
 * const stuck: WorkPool.JobFilter = { status: ["queued", "retrying"] }
 *
 * // every queued job, 100 at a time
 * const eachQueued = (pool: WorkPool.WorkPool, f: (job: WorkPool.JobSummary) => Effect.Effect<void>) =>
 *   Effect.gen(function* () {
 *     let after = 0
 *     while (true) {
 *       const page = yield* pool.jobs({ status: "queued", limit: 100, after })
 *       if (page.length === 0) return
 *       yield* Effect.forEach(page, f, { discard: true })
 *       after = page[page.length - 1]!.id
 *     }
 *   })
 * ```
 * @since 0.2.0
 * @category models
 */
export interface JobFilter {
  readonly status?: JobStatus | ReadonlyArray<JobStatus> | undefined
  /** At most this many jobs, the lowest ids first: a whole number of at least 1, or Infinity (the default). */
  readonly limit?: number | undefined
  /** Only jobs whose id is above this one (0, the default, lists from the first): a page's last id. */
  readonly after?: number | undefined
}

/**
 * Options of one job. Each value is checked (`InvalidJobOptions`), but unlike the pool's options a
 * key they do not have is not refused: they are read on every submit, and `mapStream`'s and a thread
 * task's options carry keys of their own through them.
 *
 * @example
 * ```ts
 * import type { WorkPool } from "effect-workpool"
 *
 * const urgent: WorkPool.JobOptions = { priority: 100, timeout: "500 millis", queueTimeout: "2 seconds" }
 * ```
 * @since 0.1.0
 * @category models
 */
export interface JobOptions {
  /** Higher runs first; FIFO within a priority. Any finite number; default 0. */
  readonly priority?: number | undefined
  /** Overrides the pool's `timeout` for this job (`Infinity` for none). */
  readonly timeout?: Duration.Input | undefined
  /** Overrides the pool's `queueTimeout` for this job (`Infinity` for none). */
  readonly queueTimeout?: Duration.Input | undefined
  /** Overrides the pool's `retry` for this job (`{ times: 0 }` for none). */
  readonly retry?: Retry | undefined
}

/**
 * How failed attempts of a job are retried: a `Schedule` of the delays, or, in the style of
 * `Effect.retry`, `{ schedule?, times?, while? }`:
 * - `schedule`: the delay before each retry; it stops the retries when it ends. Without one a retry
 *   is due at once.
 * - `times`: at most this many retries (so `times + 1` attempts).
 * - `while(error, cause)`: retry only while it returns true. `error` is what the attempt failed
 *   with (`Cause.squash`): the job's typed error, `JobTimeout` for an attempt that passed its
 *   `timeout`, `WorkerCrashed` on threads, or the defect itself; `cause` tells a defect apart
 *   (`(_, cause) => !Cause.hasDies(cause)` retries typed failures only).
 *
 * A typed failure, a defect and a timed-out attempt are retried; an interruption (cancellation,
 * shutdown, the job's own) never is, nor is a job that ended in the queue (`queueTimeout`, a drop).
 * The schedule's input is the error, and it steps synchronously, with the pool's Clock and Random:
 * the built-in schedules all do.
 *
 * Between attempts the job waits on no worker: the pool's own timer puts it back in the queue when
 * its delay has passed, at its priority, aging (and `queueTimeout`) counted from then. Its awaiters
 * see only the last attempt's outcome; `JobHandle.attempt` and the stats `retrying` and `retried`
 * show the attempts. A thread pool sends the task's payload again for each attempt.
 *
 * @example
 * ```ts
 * import { Cause, Effect, Schedule } from "effect"
 * import { WorkPool } from "effect-workpool"
 *
 * const program = Effect.scoped(Effect.gen(function* () {
 *   // every job: up to 5 retries, 100 ms, 200 ms, 400 ms ... apart
 *   const pool = yield* WorkPool.make({
 *     concurrency: 4,
 *     retry: { schedule: Schedule.exponential("100 millis"), times: 5 }
 *   })
 *   // this one: typed failures only, 3 retries at once
 *   return yield* pool.run(Effect.fail("busy"), { retry: { times: 3, while: (_, cause) => !Cause.hasDies(cause) } })
 * }))
 * ```
 * @since 0.2.0
 * @category models
 */
export type Retry =
  | Schedule.Schedule<unknown, unknown>
  | {
    readonly schedule?: Schedule.Schedule<unknown, unknown> | undefined
    readonly times?: number | undefined
    readonly while?: ((error: unknown, cause: Cause.Cause<unknown>) => boolean) | undefined
  }

/**
 * A job: an `Effect`, or a function of the worker's resource (see `Options.resource`) and of the
 * job's id, called when the job starts.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { WorkPool } from "effect-workpool"
 *
 * const plain: WorkPool.Job<number, never, never> = Effect.succeed(1)
 * const withConnection: WorkPool.Job<string, never, never, { query: (sql: string) => Effect.Effect<string> }> =
 *   (conn, jobId) => conn.query(`select ${jobId}`)
 * ```
 * @since 0.1.0
 * @category models
 */
export type Job<A, E, R, W = void> =
  | Effect.Effect<A, E, R>
  | ((resource: W, jobId: number) => Effect.Effect<A, E, R>)

/**
 * Where a submitted job is: waiting for room, queued, running, waiting for a retry (`"retrying"`), or
 * how it ended.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { WorkPool } from "effect-workpool"
 *
 * const isFinished = (status: WorkPool.JobStatus) => !["waiting", "queued", "running", "retrying"].includes(status)
 * ```
 * @since 0.1.0
 * @category models
 */
export type JobStatus =
  | "waiting"
  | "queued"
  | "running"
  | "retrying"
  | "succeeded"
  | "failed"
  | "defect"
  | "timedOut"
  | "interrupted"
  | "dropped"
  | "rejected"

/**
 * A job submitted with `submit`. It runs under the pool's scope, not its submitter's: it goes on
 * when the submitter ends, and stops when the pool shuts down.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { WorkPool } from "effect-workpool"
 *
 * const program = Effect.gen(function* () {
 *   const pool = yield* WorkPool.make({ concurrency: 2 })
 *   const handle = yield* pool.submit(Effect.succeed(42))
 *   const status = yield* handle.status // "succeeded", "running", "queued", ...
 *   return yield* handle.await // 42
 * })
 * ```
 * @since 0.1.0
 * @category models
 */
export interface JobHandle<A, E> {
  readonly id: number
  /**
   * Waits for the job's result: its success, its own error, what the pool did to it once admitted
   * (`JobDropped`, `JobTimeout`, `PoolShutdown`), or its defect. A waiting fiber is resumed on its
   * own scheduler once the job has ended, as after `Effect.yieldNow`, not inside the job's ending:
   * a fiber awaiting many handles in turn while they end in a burst is resumed once for the burst
   * (by then the jobs queued behind may have started). `pool.run` resumes its caller at once.
   */
  readonly await: Effect.Effect<A, E | AdmittedJobError>
  /** Removes the job if it is still waiting or queued, interrupts it if running, and waits until it stopped. */
  readonly interrupt: Effect.Effect<void>
  readonly status: Effect.Effect<JobStatus>
  /**
   * Which attempt the job is on: 1, then one more each time a failed attempt is retried (see
   * `Retry`). A job waiting for its retry is on its next attempt.
   */
  readonly attempt: Effect.Effect<number>
  /** The latest value the job reported with `JobContext`'s `progress`, if any. */
  readonly progress: Effect.Effect<Option.Option<unknown>>
  /**
   * The latest progress (if any), then each newer report, ending when the job ends. Coalesced: a
   * slow reader sees the latest value, not a backlog.
   */
  readonly progressChanges: Stream.Stream<unknown>
}

/**
 * A job that was not running, returned by `shutdownNow` so it can be run elsewhere: it never
 * started, or it was waiting for a retry. Its awaiters got `PoolShutdown`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { WorkPool } from "effect-workpool"
 *
 * const handOver = (from: WorkPool.WorkPool, to: WorkPool.WorkPool) =>
 *   Effect.flatMap(from.shutdownNow, (unstarted) =>
 *     Effect.forEach(unstarted, (job: WorkPool.UnstartedJob) => to.submit(job.effect, { priority: job.priority })))
 * ```
 * @since 0.1.0
 * @category models
 */
export interface UnstartedJob<W = void> {
  readonly id: number
  readonly priority: number
  /**
   * The job, with its submitter's services already provided. A job written as a function of its
   * worker's resource cannot run without one: its `effect` dies saying so; resubmit `job` to a
   * pool with the same kind of resource instead. If its submitter's `Scope` has closed by the time
   * it runs, it runs in a scope of its own, closed when it ends (what it acquires is released then).
   */
  readonly effect: Effect.Effect<unknown, unknown>
  /**
   * The job as it was submitted (an Effect, or a function of a `W` resource), with its submitter's
   * services: the pool it is resubmitted to runs it with them, filling in what that pool's submitter
   * lacks (its own services, and the new pool's `JobContext`, win). A closed `Scope` of the first
   * submitter's is not used: the job then runs in a scope of its own, as `effect` does.
   */
  readonly job: Job<unknown, unknown, never, W>
}

/**
 * A snapshot of a pool, from `stats` or the `changes` stream.
 *
 * Every submitted job ends exactly once, so at any time `submitted = waiting + queued + retrying +
 * running + succeeded + failed + defects + timedOut + interrupted + dropped`.
 * `rejected` counts submissions refused before admission (`QueueFull`, `PoolShutdown`).
 *
 * @example
 * ```ts
 * import { Console, Effect, Stream } from "effect"
 * import type { WorkPool } from "effect-workpool"
 *
 * const report = (pool: WorkPool.WorkPool) =>
 *   Stream.runForEach(pool.changes, (s: WorkPool.PoolStats) =>
 *     Console.log(`${s.running}/${s.workers} busy, ${s.queued} queued, ${(s.utilization * 100).toFixed(0)}% used`))
 * ```
 * @since 0.1.0
 * @category models
 */
export interface PoolStats {
  readonly state: "running" | "paused" | "draining" | "stopped"
  /** The target number of workers (`concurrency`, or the last `resize`). */
  readonly concurrency: number
  /** Live workers; differs from `concurrency` while a resize is under way. */
  readonly workers: number
  readonly running: number
  /**
   * Jobs that timed out (their awaiters have `JobTimeout`) but are still stopping: each keeps its
   * worker until its finalizers have run, so that no more than `concurrency` jobs are ever at work.
   */
  readonly stopping: number
  readonly queued: number
  /** Queued jobs per priority, highest first. */
  readonly queuedByPriority: ReadonlyArray<{ readonly priority: number; readonly count: number }>
  /** Submitters suspended by backpressure (overflow `"suspend"`), not yet admitted. */
  readonly waiting: number
  /** Jobs waiting for a retry after a failed attempt (see `Retry`); they hold no worker. */
  readonly retrying: number
  /** Failed attempts that were retried, since the pool started. */
  readonly retried: number
  /**
   * Queued jobs that free workers would start now but for the rate limit (`Options.rateLimit`);
   * 0 without one.
   */
  readonly rateLimited: number
  readonly submitted: number
  readonly succeeded: number
  readonly failed: number
  readonly defects: number
  readonly timedOut: number
  readonly interrupted: number
  readonly dropped: number
  readonly rejected: number
  /** Busy worker time over available worker time since the pool started, 0 to 1. */
  readonly utilization: number
  /** Mean time from submission (or return to the queue, for a retry) to start, of the attempts that started. */
  readonly meanWaitMillis: number
  /** Mean time from start to stop, of the attempts that stopped. */
  readonly meanRunMillis: number
}

/**
 * A pool of worker fibers. Get one with `make` (scoped) or as a service with `Service` / `layer`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { WorkPool } from "effect-workpool"
 *
 * const program = Effect.scoped(Effect.gen(function* () {
 *   const pool: WorkPool.WorkPool = yield* WorkPool.make({ concurrency: 4 })
 *   const handle = yield* pool.submit(Effect.succeed("done"))
 *   yield* pool.awaitIdle
 *   return yield* handle.await
 * }))
 * ```
 * @since 0.1.0
 * @category models
 */
export interface WorkPool<W = void, EW = never> {
  readonly [TypeId]: TypeId
  /** The pool's name (see `Options.name`). */
  readonly name: string
  /**
   * Runs a job and waits for its result. Interrupting the caller removes the job if it is queued,
   * or interrupts it (running its finalizers) if it is running.
   */
  readonly run: <A, E, R>(job: Job<A, E, R, W>, options?: JobOptions) => Effect.Effect<A, E | JobError, R>
  /**
   * Submits a job and returns its handle once it is admitted (after waiting for room with overflow
   * `"suspend"`). The job runs under the pool's scope.
   */
  readonly submit: <A, E, R>(
    job: Job<A, E, R, W>,
    options?: JobOptions
  ) => Effect.Effect<JobHandle<A, E>, AdmissionError, R>
  /**
   * Runs many jobs through the pool and returns their results in input order. The first failure
   * interrupts the others and is returned once they have stopped. To keep every outcome, map the
   * jobs with `Effect.result` or `Effect.exit` first. The jobs are read and checked in full before
   * any is submitted, so a bad one submits none: at most 1,000,000 of them (the call holds every job
   * and result until it returns), an array at once, any other iterable 1,000 at a time with a yield
   * between (the read can be interrupted, and closes the iterator when it stops early). An iterable
   * that throws, an endless one (past the limit) or a `Stream`, Promise or async iterable passed by
   * mistake fails with `InvalidJob` naming `jobs`: for an endless or lazy source, use `mapStream`.
   */
  readonly runAll: {
    <A, E, R>(jobs: Iterable<Job<A, E, R, W>>, options?: JobOptions): Effect.Effect<Array<A>, E | JobError, R>
    /** Jobs of different types (`[fetchUser, fetchPosts]`): the union of their results, errors and services. */
    <J extends Job<any, any, any, W>>(
      jobs: Iterable<J>,
      options?: JobOptions
    ): Effect.Effect<Array<JobKind.Success<J>>, JobKind.Failure<J> | JobError, JobKind.Services<J>>
  }
  readonly stats: Effect.Effect<PoolStats>
  /** The current stats, then new stats after every change (coalesced), ending when the pool has stopped. */
  readonly changes: Stream.Stream<PoolStats>
  /**
   * Changes the number of workers (1 to 100,000). Growing starts work at once; shrinking lets
   * running jobs finish. A shutdown during a resize stops the resources being acquired for it,
   * and the resize is then done. A resize that fails to acquire them, or is interrupted, leaves
   * the pool at the workers it has (unless a later resize has set another size since).
   */
  readonly resize: (concurrency: number) => Effect.Effect<void, InvalidPoolConfig | EW>
  /**
   * Sets the rate limit (see `RateLimit`), or removes it with `undefined`. The starts already made
   * under a limit stay counted when it changes, so a change lets no extra burst through; a looser
   * limit starts held jobs at once. Starts are counted from when a limit is set: one set on a pool
   * without one (never had, or removed) does not see the starts made before, and may let `limit`
   * start at once. A limit remembers its last `limit` starts only: changed to a longer interval or
   * a higher limit, it cannot count the starts before those, and a window that spans the change may
   * hold more than the new `limit` (`{ limit: 1, interval: 10 }` starting at 0, 10 and 20, changed at
   * 25 to `{ limit: 2, interval: 100 }`, starts one more at 25).
   */
  readonly setRateLimit: (rateLimit: RateLimit | undefined) => Effect.Effect<void, InvalidPoolConfig>
  /** Stops dispatching queued jobs; running jobs go on. */
  readonly pause: Effect.Effect<void>
  readonly resume: Effect.Effect<void>
  /** Waits until nothing is queued, running, waiting for room or waiting for a retry. */
  readonly awaitIdle: Effect.Effect<void>
  /**
   * Graceful shutdown: stops admitting (new submissions fail with `PoolShutdown`), lets queued and
   * running jobs finish within `shutdownTimeout`, then interrupts the rest; waits until done. Jobs
   * waiting for a retry are drained too: retried when due, and ended with `PoolShutdown` if the
   * deadline comes first.
   * Closing the pool's scope does this. Idempotent.
   */
  readonly shutdown: Effect.Effect<void>
  /**
   * Immediate shutdown: interrupts running jobs and returns the jobs that were not running (never
   * started, or waiting for a retry; their awaiters get `PoolShutdown`); waits until every job has
   * stopped. Nothing is retried from then on. Idempotent: later calls return an empty array.
   */
  readonly shutdownNow: Effect.Effect<ReadonlyArray<UnstartedJob<W>>>
  /** Waits until the pool has shut down. */
  readonly awaitTermination: Effect.Effect<void>
  /**
   * The jobs the pool knows, oldest submission first: the live ones, and the ended ones kept by the
   * pool's `retention` (none by default), filtered by status and paged by `limit` and `after` (see
   * `JobFilter`). O(jobs known) per call, whatever the page's size.
   */
  readonly jobs: (filter?: JobFilter) => Effect.Effect<ReadonlyArray<JobSummary>, InvalidJobOptions>
  /** The handle of a live job, or of an ended one kept by the pool's `retention`, by its id. O(jobs known). */
  readonly job: (id: number) => Effect.Effect<Option.Option<JobHandle<unknown, unknown>>>
  /**
   * Cancels a job by its id as `JobHandle.interrupt` does (removed if waiting or queued, interrupted
   * if running; waits until it stopped). True if the job was live, false if it had ended or is unknown.
   */
  readonly cancel: (id: number) => Effect.Effect<boolean>
}

/**
 * A job handed back by `shutdownNow`, carrying its submitter's services: typed as needing none, it
 * must need none wherever it is resubmitted (its services were `any`, which made every program that
 * resubmitted one impossible to run, and a missing service a defect).
 */
const withServices = <W>(job: JobRecord["effect"], context: Context.Context<never>): Job<unknown, unknown, never, W> => {
  const fillIn = (effect: Effect.Effect<unknown, unknown, any>): Effect.Effect<unknown, unknown> =>
    Effect.updateContext(inOpenScope(effect), (current: Context.Context<never>) => Context.merge(context, current) as Context.Context<any>)
  // a function keeps its own properties (a thread pool's job carries its task and payload on it)
  return JobKind.isFunction(job) ? Object.assign((resource: W, jobId: number) => fillIn(job(resource, jobId)), job) : fillIn(job)
}

/**
 * `effect` in a scope of its own, closed when it ends, if the Scope it is given has closed: a job
 * handed over by `shutdownNow` carries its submitter's, which closes once the submitter, told
 * `PoolShutdown`, leaves it, and Effect runs a finalizer added to a closed scope at once (a resource
 * the job acquired was released before it used it).
 */
const inOpenScope = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.contextWith((context: Context.Context<never>) =>
    Context.getOrUndefined(context, Scope.Scope)?.state._tag === "Closed" ? Effect.scoped(effect) as Effect.Effect<A, E, R> : effect
  )

const DEFAULT_CAPACITY = 1024
/** Pools made in this process, for their default names. */
let poolCount = 0
const DEFAULT_SHUTDOWN_TIMEOUT = 30_000

const OPTION_HINTS = { maxQueue: "capacity", queueSize: "capacity", maxConcurrency: "concurrency", workers: "concurrency" }

const validatePoolOptions = (options: Options<any, any, any>) =>
  config.checkPoolOptions(() => {
    config.object("options", options)
    config.onlyKeys("", options, config.POOL_KEYS, OPTION_HINTS)
    return {
      concurrency: config.positiveInteger("concurrency", options.concurrency, config.MAX_CONCURRENCY),
      capacity: options.capacity === undefined ? DEFAULT_CAPACITY : config.capacity("capacity", options.capacity),
      overflow: options.overflow === undefined
        ? "suspend" as const
        : config.oneOf("overflow", options.overflow, ["suspend", "fail", "dropNewest", "dropOldest"]),
      timeout: options.timeout === undefined ? 0 : config.millis("timeout", options.timeout, "positive"),
      queueTimeout: options.queueTimeout === undefined
        ? 0
        : config.millis("queueTimeout", options.queueTimeout, "positive"),
      aging: options.aging === undefined ? 0 : config.millis("aging", options.aging, "positive"),
      shutdownTimeout: options.shutdownTimeout === undefined
        ? DEFAULT_SHUTDOWN_TIMEOUT
        : config.millis("shutdownTimeout", options.shutdownTimeout, "nonNegative"),
      paused: options.paused === undefined ? false : config.boolean("paused", options.paused),
      rateLimit: options.rateLimit === undefined ? undefined : RateLimits.check("rateLimit", options.rateLimit),
      retention: retention(options.retention),
      name: options.name === undefined ? `workpool-${++poolCount}` : config.name("name", options.name),
      metrics: options.metrics === undefined ? true : config.boolean("metrics", options.metrics),
      retry: options.retry === undefined ? undefined : Retries.policy("retry", options.retry),
      resource: options.resource === undefined || typeof options.resource === "function"
        ? options.resource
        : config.fail("resource", options.resource, "expected a function (workerId) => Effect")
    }
  })

const DEFAULT_RETENTION = { count: 0, age: 3_600_000 }

const retention = (options: Retention | undefined): { readonly count: number; readonly age: number } => {
  if (options === undefined) return DEFAULT_RETENTION
  config.object("retention", options)
  config.onlyKeys("retention.", options, ["count", "age"])
  const age = options.age === undefined ? DEFAULT_RETENTION.age : config.millis("retention.age", options.age, "positive")
  // a retention keeps at most `count` ended jobs: without one, or with 0, it would keep none, which
  // nobody who wrote a retention meant (no retention is the way to keep none)
  const count = options.count
  if (count === undefined) {
    return config.fail("retention.count", undefined, "a retention needs a count: how many ended jobs to keep at most")
  }
  const why = count === 0 ? "a retention of 0 keeps none: leave retention out" : undefined
  return { count: config.positiveInteger("retention.count", count, config.MAX_RETAINED, why), age }
}

const summary = (job: JobRecord): JobSummary => ({
  id: job.id,
  status: job.statusNow(),
  priority: job.priority,
  attempt: job.attemptNow(),
  progress: job.progressState === undefined ? Option.none() : job.progressState.latest(),
  exit: Option.fromUndefinedOr(job.exit)
})

const STATUSES: ReadonlyArray<JobStatus> = [
  "waiting", "queued", "running", "retrying", "succeeded", "failed", "defect", "timedOut", "interrupted", "dropped", "rejected"
]

interface CheckedFilter {
  /** The statuses kept; undefined: all. */
  readonly keep: ReadonlySet<JobStatus> | undefined
  readonly limit: number
  readonly after: number
}

const NO_FILTER: CheckedFilter = { keep: undefined, limit: Infinity, after: 0 }

/** A filter, checked: a typo must not list nothing silently. */
const checkFilter = (filter: JobFilter | undefined): CheckedFilter | InvalidJobOptions =>
  config.checkJobOptions(() => {
    if (filter === undefined) return NO_FILTER
    config.object("filter", filter)
    config.onlyKeys("", filter, ["status", "limit", "after"], { state: "status" })
    const status = filter.status
    const list = status === undefined ? undefined : Array.isArray(status) ? status : [status]
    return {
      keep: list === undefined
        ? undefined
        : new Set(list.map((s, i) => config.oneOf(Array.isArray(status) ? `status[${i}]` : "status", s, STATUSES))),
      limit: filter.limit === undefined || filter.limit === Infinity
        ? Infinity
        : config.positiveInteger("limit", filter.limit, Number.MAX_SAFE_INTEGER),
      after: filter.after === undefined ? 0 : config.count("after", filter.after, Number.MAX_SAFE_INTEGER)
    }
  })

/** The page of the jobs the pool knows that `filter` asks for, in id order. */
const listJobs = (scheduler: Scheduler<any>, filter: CheckedFilter): Array<JobSummary> => {
  scheduler.evict()
  const { after, keep, limit } = filter
  // a Set: a job timed out while running is in the ring and still on its worker
  const found = new Set<JobRecord>()
  for (const job of scheduler.knownJobs()) {
    if (job.seq > after && (keep === undefined || keep.has(job.statusNow()))) found.add(job)
  }
  const sorted = Array.from(found).sort((a, b) => a.seq - b.seq)
  return (sorted.length > limit ? sorted.slice(0, limit) : sorted).map(summary)
}

/** Per-job options, checked without allocating when there are none. */
interface CheckedJobOptions {
  readonly priority: number
  readonly timeout: number
  readonly queueTimeout: number
  readonly retry: Retries.Policy | undefined
}

const checkJobOptions = (
  scheduler: Scheduler<any>,
  options: JobOptions | undefined
): CheckedJobOptions | InvalidJobOptions => {
  const defaults = scheduler.config
  if (options === undefined) return defaults.jobDefaults
  return config.checkJobOptions(() => {
    config.object("options", options)
    return {
      priority: options.priority === undefined ? 0 : config.finiteNumber("priority", options.priority),
      timeout: options.timeout === undefined ? defaults.timeout : config.millis("timeout", options.timeout, "positive"),
      queueTimeout: options.queueTimeout === undefined
        ? defaults.queueTimeout
        : config.millis("queueTimeout", options.queueTimeout, "positive"),
      retry: options.retry === undefined ? defaults.jobDefaults.retry : Retries.policy("retry", options.retry)
    }
  })
}

/** Checks a submitted job and its options: what `run` and `submit` do before making its record. */
const checkSubmission = (
  scheduler: Scheduler<any>,
  job: unknown,
  options: JobOptions | undefined
): CheckedJobOptions | InvalidJob | InvalidJobOptions => JobKind.check(job, "job") ?? checkJobOptions(scheduler, options)

/** A job's record; one with a retry policy gets its retry state. */
const makeRecord = (
  scheduler: Scheduler<any>,
  job: JobRecord["effect"],
  context: Context.Context<never>,
  checked: CheckedJobOptions
): JobRecord => {
  const record = scheduler.makeJob(job, context, checked.priority, checked.timeout)
  if (checked.retry !== undefined) record.hook = new Retries.Attempts(checked.retry, checked.queueTimeout)
  return record
}

/** A submitted job's handle, or the reason it was refused. */
const admitted = <A, E>(job: JobRecord): Effect.Effect<JobHandle<A, E>, AdmissionError> =>
  job.ending === "rejected" ? (job.exit as Exit.Exit<never, AdmissionError>) : Effect.succeed(job as any)

const snapshot = (scheduler: Scheduler<any>): PoolStats => {
  const ended = scheduler.ended
  const stopped = scheduler.started - scheduler.busy
  return {
    state: scheduler.state === "running" && scheduler.paused ? "paused" : scheduler.state,
    concurrency: scheduler.target,
    workers: scheduler.workers.size,
    running: scheduler.busy - scheduler.stoppingJobs,
    stopping: scheduler.stoppingJobs,
    queued: scheduler.queuedCount(),
    queuedByPriority: scheduler.queuedByPriority(),
    waiting: scheduler.waitingCount,
    retrying: scheduler.held.size,
    retried: scheduler.retried,
    rateLimited: RateLimits.held(scheduler),
    submitted: scheduler.submitted,
    succeeded: ended.succeeded,
    failed: ended.failed,
    defects: ended.defects,
    timedOut: ended.timedOut,
    interrupted: ended.interrupted,
    dropped: ended.dropped,
    rejected: scheduler.rejected,
    utilization: scheduler.utilization(),
    meanWaitMillis: scheduler.started === 0 ? 0 : scheduler.totalWaitMillis / scheduler.started,
    meanRunMillis: stopped === 0 ? 0 : scheduler.totalRunMillis / stopped
  }
}

/**
 * Makes a pool whose lifetime is the current `Scope`. Closing the scope shuts it down gracefully
 * (see `shutdown`); afterwards no fiber of the pool is alive and no awaiter is left waiting.
 *
 * Fails with `InvalidPoolConfig`, naming the field, when an option is invalid, and with the
 * resource's error when a worker's resource cannot be acquired. A make that fails or is
 * interrupted keeps nothing: the resources its other workers acquired are released, and its metric
 * series and its name go, at once (a make retried in the same scope can take the name). But for an
 * interruption that arrives as make returns, once the pool is made (its fiber yielding there for
 * its budget of operations): as with any scoped resource, that pool goes when the scope closes.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { WorkPool } from "effect-workpool"
 *
 * const program = Effect.scoped(Effect.gen(function* () {
 *   const pool = yield* WorkPool.make({ concurrency: 4, timeout: "5 seconds" })
 *   const fast = yield* pool.run(Effect.succeed("high"), { priority: 10 })
 *   const handle = yield* pool.submit(Effect.log("in the background"))
 *   yield* handle.await
 *   return fast
 * }))
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const make = <W = void, EW = never, RW = never>(
  options: Options<W, EW, RW>
): Effect.Effect<WorkPool<W, EW>, InvalidPoolConfig | EW, Scope.Scope | RW> =>
  Effect.gen(function*() {
    const checked = yield* validatePoolOptions(options)
    const context = yield* Effect.context<RW>()
    const clock = yield* Clock.Clock
    const resource = checked.resource
    const scheduler = new Scheduler<W>(
      {
        ...checked,
        jobDefaults: { priority: 0, timeout: checked.timeout, queueTimeout: checked.queueTimeout, retry: checked.retry },
        acquireWorker: resource === undefined ? undefined : (worker) => acquired(resource(worker.id))
      },
      context as Context.Context<never>,
      clock
    )
    scheduler.executor = fiberExecutor(scheduler)
    if (checked.rateLimit !== undefined) scheduler.gate = new RateLimits.RateGate(checked.rateLimit, scheduler, clock)
    // the pool's finalizers (its metric series, its shutdown) in a scope of its own, closed at once
    // if `make` fails (a resource that cannot be acquired): a failed pool's series, its name, and the
    // resources its other workers acquired are not kept until the caller's scope closes, where a
    // `make` retried in that scope met its own name taken
    // (closed uninterruptibly: a make interrupted, under a timeout say, keeps nothing either)
    const scope = yield* Scope.fork(yield* Effect.scope)
    yield* Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(
        Effect.exit(restore(Scope.provide(start<W, EW>(checked, scheduler, context as Context.Context<never>), scope))),
        (made) => Exit.isFailure(made) ? Effect.andThen(Scope.close(scope, made), Effect.failCause(made.cause)) : Effect.void
      )
    )
    const pool = makePool<W, EW>(scheduler, clock)
    Internal.registerScheduler(pool, scheduler)
    return pool
  })

/** Publishes a made pool's metrics and starts its workers; its finalizers go in the current scope. */
const start = <W, EW>(
  checked: Effect.Success<ReturnType<typeof validatePoolOptions>>,
  scheduler: Scheduler<W>,
  context: Context.Context<never>
): Effect.Effect<void, InvalidPoolConfig | EW, Scope.Scope> =>
  Effect.gen(function*() {
    if (checked.metrics) {
      const recorded = new Metrics.PoolMetrics(scheduler)
      scheduler.observer = recorded
      // registered and its release added as one step: an interruption between the two kept the
      // pool's name taken for good. Added before the shutdown finalizer, so it runs after it: the
      // last counts stay readable until then
      const unregister = yield* Effect.acquireRelease(
        Effect.sync(() => Metrics.register(checked.name, scheduler, recorded, context)),
        (unregister) => Effect.sync(() => unregister?.())
      )
      if (unregister === undefined) {
        return yield* Effect.fail(config.invalidPoolConfig(
          "name",
          checked.name,
          "expected a name no other live pool has (with the same metric attributes, in the same MetricRegistry): " +
            "their metric series would overwrite each other's; give each pool its own name, or metrics: false"
        ))
      }
    }
    yield* Effect.addFinalizer(() => scheduler.shutdown())
    yield* scheduler.addWorkers(checked.concurrency) as Effect.Effect<void, EW>
  })

/** What a `resource` function returned, checked: from JavaScript it may be anything. */
const acquired = <W>(effect: unknown): Effect.Effect<W, unknown, Scope.Scope> =>
  Effect.isEffect(effect) ? effect as Effect.Effect<W, unknown, Scope.Scope> : Effect.fail(
    config.invalidPoolConfig("resource", effect, "expected the function to return an Effect (of the worker's resource)")
  )

/**
 * A `submit` (`Submit`) or a `run` (`Run`): one small object that the calling fiber evaluates
 * (internal/primitive.ts), with that fiber's services for the job. `Effect.withFiber` would cost a
 * primitive, a closure and the closure's captured variables per job.
 */
class Submission {
  readonly scheduler: Scheduler<any>
  readonly job: unknown
  readonly options: JobOptions | undefined
  constructor(scheduler: Scheduler<any>, job: unknown, options: JobOptions | undefined) {
    this.scheduler = scheduler
    this.job = job
    this.options = options
  }
}

/** `submit`: hands back the job's handle. */
class Submit extends Submission {}

/** `run`: waits for the job's result. */
class Run extends Submission {}

Object.setPrototypeOf(
  Submit.prototype,
  Primitive.prototype("WorkPool.submit", function(this: Effect.Effect<any, any>, fiber) {
    const self = this as unknown as Submit
    const scheduler = self.scheduler
    const checked = checkSubmission(scheduler, self.job, self.options)
    if ("_tag" in checked) return Exit.fail(checked)
    return submitRecord(scheduler, makeRecord(scheduler, self.job as JobRecord["effect"], fiber.context, checked), checked, fiber)
  })
)

Object.setPrototypeOf(
  Run.prototype,
  Primitive.prototype("WorkPool.run", function(this: Effect.Effect<any, any>, fiber) {
    const self = this as unknown as Run
    const scheduler = self.scheduler
    const checked = checkSubmission(scheduler, self.job, self.options)
    if ("_tag" in checked) return Exit.fail(checked)
    return runRecord(scheduler, makeRecord(scheduler, self.job as JobRecord["effect"], fiber.context, checked), checked)
  })
)

/**
 * Admits a job inside the callback, so that an interruption at any point after admission reaches
 * the job; a job that ends during admission resumes the caller at once.
 */
const runRecord = (scheduler: Scheduler<any>, record: JobRecord, checked: CheckedJobOptions): Effect.Effect<any, any> =>
  Effect.callback<any, any>((resume) => {
    record.addListener(resume as any)
    scheduler.admit(record, checked.queueTimeout, undefined)
    if (record.exit === undefined) return Effect.suspend(() => scheduler.cancel(record))
  })

/** Admits a job and hands back its handle (to `fiber`), once there is room for it (overflow "suspend"). */
const submitRecord = (
  scheduler: Scheduler<any>,
  record: JobRecord,
  checked: CheckedJobOptions,
  fiber: Fiber.Fiber<any, any>
): Effect.Effect<JobHandle<any, any>, AdmissionError> => {
  if (scheduler.admit(record, checked.queueTimeout, undefined)) {
    return record.ending === "rejected" ? record.exit as Exit.Exit<never, AdmissionError> : Primitive.succeed(fiber, record)
  }
  return Effect.callback<JobHandle<any, any>, AdmissionError>((resume) => {
    if (record.state !== WAITING) return resume(admitted(record))
    scheduler.whenAdmitted(record, () => resume(admitted(record)))
    return Effect.sync(() => {
      if (record.state === WAITING) scheduler.settle(record, Exit.interrupt(), "interrupted")
    })
  })
}

/** `runAll`'s jobs, as the errors of their reading name them. */
const JOBS: Items.Batch = {
  field: "jobs",
  of: "jobs",
  max: Items.MAX_JOBS,
  more: "run more with WorkPool.mapStream",
  lazy: "use WorkPool.mapStream",
  effect: "for one job, use run, or pass [job]"
}

/** A job of `runAll`'s, refused with its index if it is none. */
const checkJob = (job: unknown, index: number): any => {
  if (!JobKind.isJob(job)) throw new config.OptionError(JobKind.notAJob(job, `jobs[${index}]`))
  return job
}

const makePool = <W, EW>(scheduler: Scheduler<W>, clock: Clock.Clock): WorkPool<W, EW> => {
  const run = <A, E, R>(job: Job<A, E, R, W>, options?: JobOptions): Effect.Effect<A, E | JobError, R> =>
    new Run(scheduler, job, options) as unknown as Effect.Effect<A, E | JobError, R>

  const submit = <A, E, R>(
    job: Job<A, E, R, W>,
    options?: JobOptions
  ): Effect.Effect<JobHandle<A, E>, AdmissionError, R> =>
    new Submit(scheduler, job, options) as unknown as Effect.Effect<JobHandle<A, E>, AdmissionError, R>

  const runAll = <A, E, R>(
    jobs: Iterable<Job<A, E, R, W>>,
    options?: JobOptions
  ): Effect.Effect<Array<A>, E | JobError, R> =>
    Effect.withFiber((fiber) => {
      const checked = checkJobOptions(scheduler, options)
      if (checked instanceof InvalidJobOptions) return Effect.fail(checked)
      // the whole batch is read and checked first: a bad job submits none of it
      return Items.collect(jobs, JOBS, checkJob, JobKind.refusedBatch, (items) => runBatch(items, checked, fiber.context))
    })

  /** Runs a batch read and checked, submitting its jobs as there is room for them. */
  const runBatch = <A, E, R>(
    items: Array<Job<A, E, R, W>>,
    checked: CheckedJobOptions,
    context: Context.Context<never>
  ): Effect.Effect<Array<A>, E | JobError, R> => {
    const count = items.length
    if (count === 0) return Effect.succeed([])
    return Effect.callback<Array<A>, E | JobError, R>((resume) => {
      const results = new Array<A>(count)
      const submitted: Array<JobRecord> = []
      let next = 0
      let unsettled = count
      let failure: Exit.Exit<never, any> | undefined
      const settled = () => {
        if (--unsettled === 0) resume(failure ?? Exit.succeed(results))
      }
      const stopAll = () => {
        scheduler.cancelAllNow(submitted)
      }
      // jobs that ended since `submitted` was last swept (at most: some of them were never kept)
      let endedSince = 0
      /**
       * Drops the ended jobs from `submitted` once they may be half of it: a long batch keeps its
       * jobs still to be cancelled, not every one it has run (amortised O(1)). Never while
       * `cancelAll` goes through the list: only before the first failure or interruption. Called
       * once 512 jobs have ended since the last sweep: the count is kept inline in the listener, a
       * call per job cost a batch of synchronous jobs some 6% of its CPU time.
       */
      const sweep = () => {
        if (endedSince * 2 < submitted.length) return
        endedSince = 0
        let kept = 0
        for (let i = 0; i < submitted.length; i++) {
          const record = submitted[i]!
          if (record.state < Internal.DONE) submitted[kept++] = record
        }
        submitted.length = kept
      }
      const feed = (): void => {
        while (next < count && failure === undefined) {
          const index = next++
          const record = makeRecord(scheduler, items[index]!, context, checked)
          // the record has it now; and it lets it go once it has run
          items[index] = undefined as any
          record.addListener((exit: Exit.Exit<any, any>) => {
            if (Exit.isSuccess(exit)) {
              results[index] = exit.value
              // once stopping, `cancelAll` may be going through `submitted`: left as it is
              if (++endedSince >= 512 && failure === undefined) sweep()
            } else if (failure === undefined) {
              failure = exit as Exit.Exit<never, any>
              stopAll()
            }
            settled()
          })
          // kept before it is admitted: a job may fail another one of the batch as it starts
          submitted.push(record)
          const admitted = scheduler.admit(record, checked.queueTimeout, feed)
          // only jobs that may still have to be cancelled stay: one that ended (a synchronous job
          // ends as it starts) would only age into the old generation here
          if (record.state >= Internal.DONE && submitted[submitted.length - 1] === record) submitted.pop()
          if (!admitted) return
        }
        if (failure !== undefined && next < count) {
          // never submitted: nothing to wait for
          unsettled -= count - next - 1
          next = count
          settled()
        }
      }
      feed()
      return Effect.suspend(() => {
        failure ??= Exit.interrupt()
        next = count
        return scheduler.cancelAll(submitted)
      })
    })
  }

  const changes: Stream.Stream<PoolStats> = Stream.paginate(-1, (seen: number) => {
    const emit = Effect.sync(() => {
      const version = scheduler.version
      const stats = snapshot(scheduler)
      const done = stats.state === "stopped"
      return [[stats], done ? Option.none<number>() : Option.some(version)] as const
    })
    if (seen < 0) return emit
    return scheduler.waitUntil(() => scheduler.version !== seen).pipe(
      Effect.andThen(Effect.yieldNow),
      Effect.andThen(emit)
    )
  })

  /** Resizes so far: only the latest one's failure sets the size (an earlier one's, even to the same number, is overtaken). */
  let resizes = 0
  const resize = (concurrency: number): Effect.Effect<void, InvalidPoolConfig | EW> =>
    Effect.flatMap(config.checkPoolOptions(() => config.positiveInteger("concurrency", concurrency, config.MAX_CONCURRENCY)), (target) => {
      if (scheduler.state !== "running") return Effect.void
      const grow = target - scheduler.workers.size
      const resizing = ++resizes
      scheduler.target = target
      scheduler.retireIdle()
      scheduler.changed()
      if (grow <= 0) return Effect.void
      // a worker whose resource could not be acquired (or whose acquisition the caller interrupted)
      // is not counted on: the target is what runs
      return Effect.onError(scheduler.addWorkers(grow) as Effect.Effect<void, EW>, () =>
        Effect.sync(() => {
          if (resizes === resizing) scheduler.target = scheduler.workers.size
          scheduler.changed()
        }))
    })

  const setRateLimit = (rateLimit: RateLimit | undefined): Effect.Effect<void, InvalidPoolConfig> =>
    Effect.flatMap(
      config.checkPoolOptions(() => rateLimit === undefined ? undefined : RateLimits.check("rateLimit", rateLimit)),
      (limit) =>
        Effect.sync(() => {
          const gate = scheduler.gate as RateLimits.RateGate | undefined
          if (limit !== undefined && gate !== undefined) gate.set(limit)
          else if (limit !== undefined) {
            if (scheduler.state !== "stopped") scheduler.setGate(new RateLimits.RateGate(limit, scheduler, clock))
          } else {
            gate?.close()
            scheduler.setGate(undefined)
          }
          scheduler.changed()
          scheduler.pump()
        })
    )

  const setPaused = (paused: boolean) => Effect.sync(() => scheduler.setPaused(paused))

  return {
    [TypeId]: TypeId,
    name: scheduler.config.name,
    run,
    submit,
    runAll,
    stats: Effect.sync(() => snapshot(scheduler)),
    changes,
    resize,
    setRateLimit,
    pause: setPaused(true),
    resume: setPaused(false),
    awaitIdle: scheduler.waitUntil(() => scheduler.isIdle()),
    shutdown: scheduler.shutdown(),
    shutdownNow: Effect.map(scheduler.shutdownNow(), (jobs) =>
      jobs.map((job): UnstartedJob<W> => ({
        id: job.id,
        priority: job.priority,
        effect: JobKind.isFunction(job.effect)
          ? Effect.die(new Error(`job ${job.id} needs its pool's worker resource: resubmit UnstartedJob.job to such a pool`))
          : Effect.provideContext(inOpenScope(job.effect), job.context) as Effect.Effect<unknown, unknown>,
        job: withServices(job.effect, job.context)
      }))),
    awaitTermination: scheduler.awaitTermination(),
    jobs: (filter) =>
      Effect.suspend(() => {
        const checked = checkFilter(filter)
        return checked instanceof InvalidJobOptions ? Effect.fail(checked) : Effect.succeed(listJobs(scheduler, checked))
      }),
    job: (id) =>
      Effect.sync(() => {
        scheduler.evict()
        return Option.fromUndefinedOr(scheduler.findJob(id) as JobHandle<unknown, unknown> | undefined)
      }),
    cancel: (id) =>
      Effect.suspend(() => {
        const job = scheduler.findJob(id)
        if (job === undefined || job.state >= Internal.DONE) return Effect.succeed(false)
        return Effect.as(scheduler.cancel(job), true)
      })
  }
}

/**
 * A layer that makes the pool for `tag` and shuts it down when the layer is released. The options
 * may be an `Effect`, for example read from `Config` when the layer is built.
 *
 * @example
 * ```ts
 * import { Config, Context, Effect } from "effect"
 * import { WorkPool } from "effect-workpool"
 *
 * class Mailer extends Context.Service<Mailer, WorkPool.WorkPool>()("app/Mailer") {}
 * const MailerLive = WorkPool.layer(Mailer, { concurrency: 4, timeout: "10 seconds" })
 * const MailerFromConfig = WorkPool.layer(
 *   Mailer,
 *   Effect.map(Config.Int("MAILER_CONCURRENCY"), (concurrency) => ({ concurrency }))
 * )
 * ```
 * @since 0.1.0
 * @category layers
 */
export const layer = <I, W = void, EW = never, RW = never, EO = never, RO = never>(
  tag: Context.Key<I, WorkPool<W, EW>>,
  options: Options<W, EW, RW> | Effect.Effect<Options<W, EW, RW>, EO, RO>
): Layer.Layer<I, InvalidPoolConfig | EW | EO, RW | RO> =>
  Pools.layer(tag, options, make<W, EW, RW>)

/**
 * Declares a pool as a service class with a `layer`, in one line, the way an app defines its other
 * services. The options may be an `Effect` (say, read from `Config`), run when the layer is built.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { WorkPool } from "effect-workpool"
 *
 * class Crawler extends WorkPool.Service<Crawler>()("app/Crawler", { concurrency: 16 }) {}
 *
 * const fetchAll = (urls: ReadonlyArray<string>) =>
 *   Effect.gen(function* () {
 *     const pool = yield* Crawler
 *     return yield* pool.runAll(urls.map((url) => Effect.succeed(url.length)))
 *   })
 *
 * const main = fetchAll(["https://a.test", "https://b.test"]).pipe(Effect.provide(Crawler.layer))
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const Service = <Self>() =>
<const Id extends string, W = void, EW = never, RW = never, EO = never, RO = never>(
  id: Id,
  options: Options<W, EW, RW> | Effect.Effect<Options<W, EW, RW>, EO, RO>
): Context.ServiceClass<Self, Id, WorkPool<W, EW>> & {
  readonly layer: Layer.Layer<Self, InvalidPoolConfig | EW | EO, RW | RO>
} =>
  Pools.service<Self, WorkPool<W, EW>, Options<W, EW, RW>, InvalidPoolConfig | EW, Scope.Scope | RW, EO, RO>(
    id,
    options,
    make
  ) as any

/**
 * Runs every element of a stream through the pool as a job, emitting the results in input order,
 * or in completion order with `unordered: true`. `buffer` (default: twice the pool's concurrency
 * when the stream runs) bounds how many elements are in the pool at once; a slow consumer holds the
 * upstream back. A job that fails fails the stream at once, and the stream's other jobs (running or
 * queued) are stopped, as when the consumer is interrupted or stops early. An upstream that fails
 * fails the stream once the jobs already in the pool have ended (their results first in input
 * order), as `Stream.mapEffect` does: they are not interrupted.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { WorkPool } from "effect-workpool"
 *
 * const program = Effect.gen(function* () {
 *   const pool = yield* WorkPool.make({ concurrency: 4 })
 *   return yield* Stream.range(1, 10).pipe(
 *     WorkPool.mapStream(pool, (n) => Effect.succeed(n * n)),
 *     Stream.runCollect
 *   )
 * })
 * ```
 * @since 0.1.0
 * @category combinators
 */
export const mapStream: {
  <In, A, E2, R2, W = void, EW = never>(
    pool: WorkPool<W, EW>,
    f: (input: In) => Job<A, E2, R2, W>,
    options?: MapStreamOptions
  ): <E, R>(self: Stream.Stream<In, E, R>) => Stream.Stream<A, E | E2 | JobError, R | R2>
  <In, E, R, A, E2, R2, W = void, EW = never>(
    self: Stream.Stream<In, E, R>,
    pool: WorkPool<W, EW>,
    f: (input: In) => Job<A, E2, R2, W>,
    options?: MapStreamOptions
  ): Stream.Stream<A, E | E2 | JobError, R | R2>
} = dual(
  (args) => Stream.isStream(args[0]),
  <In, E, R, A, E2, R2, W, EW>(
    self: Stream.Stream<In, E, R>,
    pool: WorkPool<W, EW>,
    f: (input: In) => Job<A, E2, R2, W>,
    options?: MapStreamOptions
  ): Stream.Stream<A, E | E2 | JobError, R | R2> => {
    const invalid = JobKind.checkFunction(f, "mapStream f", "a function (element) => job")
    return invalid !== undefined
      ? Stream.fail(invalid)
      : Pools.mapStream(self, pool.stats, (input: In) => pool.run(f(input), options), options)
  }
)

/**
 * Options of `mapStream`: the options of each job, and how the stream goes through the pool.
 *
 * @example
 * ```ts
 * import type { WorkPool } from "effect-workpool"
 *
 * const options: WorkPool.MapStreamOptions = { priority: 1, unordered: true, buffer: 64 }
 * ```
 * @since 0.2.0
 * @category models
 */
export interface MapStreamOptions extends JobOptions {
  /** Emit results in completion order rather than input order; default false. */
  readonly unordered?: boolean | undefined
  /** How many elements may be in the pool at once; default twice the pool's concurrency when the stream runs. */
  readonly buffer?: number | undefined
}

/**
 * Whether a value is a `WorkPool`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { WorkPool } from "effect-workpool"
 *
 * const program = Effect.scoped(Effect.gen(function* () {
 *   const pool = yield* WorkPool.make({ concurrency: 1 })
 *   return WorkPool.isWorkPool(pool) && !WorkPool.isWorkPool({ run: () => {} }) // true
 * }))
 * ```
 * @since 0.2.0
 * @category guards
 */
export const isWorkPool = (u: unknown): u is WorkPool<unknown, unknown> => hasProperty(u, TypeId)


/**
 * What a job knows about itself while it runs: its pool's name, its id, its attempt, and
 * `progress(value)` to report how far along it is (its handle's `progress` and `progressChanges`
 * show the latest value). Every job of a `WorkPool` or `ThreadPool` has it (a thread pool's task
 * reads it in its thread; its reports are forwarded, at most one message per 50 ms with the latest
 * value, which must be structured-cloneable: one that is not is not forwarded). Outside a pool it reads
 * `{ pool: "", id: 0, attempt: 0 }` and `progress` does nothing, so a job also runs on its own.
 *
 * A job also runs with the log annotation `jobId`, and, when a tracer is installed, under a span
 * `workpool.job` (child of its submitter's span) with the attributes `workpool.pool`,
 * `workpool.job.id`, `workpool.job.priority`, `workpool.job.attempt`, `workpool.job.wait_ms`,
 * `workpool.task` (threads) and `workpool.job.ending`.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { WorkPool } from "effect-workpool"
 *
 * const resizeAll = (files: ReadonlyArray<string>) =>
 *   Effect.gen(function* () {
 *     const job = yield* WorkPool.JobContext
 *     for (let i = 0; i < files.length; i++) {
 *       yield* Effect.log(`file ${files[i]}`) // annotated with jobId
 *       yield* job.progress({ done: i + 1, of: files.length })
 *     }
 *   })
 *
 * const program = Effect.scoped(Effect.gen(function* () {
 *   const pool = yield* WorkPool.make({ concurrency: 2, name: "images" })
 *   const handle = yield* pool.submit(resizeAll(["a.png", "b.png"]))
 *   yield* Stream.runForEach(handle.progressChanges, (p) => Effect.log("progress", p))
 *   return yield* handle.progress // Option.some({ done: 2, of: 2 })
 * }))
 * ```
 * @since 0.2.0
 * @category context
 */
export const JobContext: Context.Reference<JobContext> = JobContexts.JobContext

/**
 * The value of `JobContext`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { WorkPool } from "effect-workpool"
 *
 * const halfway = (job: WorkPool.JobContext) => job.progress(0.5)
 * const job = Effect.flatMap(WorkPool.JobContext, halfway)
 * ```
 * @since 0.2.0
 * @category context
 */
export interface JobContext extends JobContexts.JobInfo {}
