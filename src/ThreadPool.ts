/**
 * A pool of worker threads for CPU-bound work, behind the same scheduler as `WorkPool`: bounded
 * priority queue, overflow policies, timeouts, cancellation, stats and shutdown work the same way.
 *
 * Tasks are defined once with `Task.make` (a name and Schemas) and implemented in a worker entry
 * file with `ThreadWorker.serve`. A task's failure comes back decoded, as an instance of its own
 * class; a defect in the thread comes back as a defect with its message and stack.
 *
 * What threads add to the contract:
 * - a task that does not stop within `cancelGrace` of being cancelled or timing out (say, a
 *   synchronous loop) has its thread terminated; the thread is replaced and the pool keeps its size;
 * - a thread that crashes (an uncaught exception, `process.exit`, running out of memory under
 *   `resourceLimits`) fails only its own in-flight tasks, with `WorkerCrashed`, and is replaced (one
 *   that keeps dying soon after it started, per `startSchedule`);
 * - a thread that cannot start is tried again per `startSchedule`, then fails with
 *   `WorkerStartFailed` (at `make`, or for the tasks that needed it); a worker file that does not
 *   exist is refused by `make` with `InvalidPoolConfig`;
 * - a reply or a payload the other side cannot deserialize fails its task with `TaskCodecError`,
 *   and the thread goes on.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as ThreadPool from "effect-workpool/ThreadPool"
 * import { Hash } from "./tasks.ts"
 *
 * const program = Effect.scoped(Effect.gen(function* () {
 *   const pool = yield* ThreadPool.make({ worker: new URL("./worker.ts", import.meta.url), threads: 4 })
 *   return yield* pool.run(Hash, { input: "hello", rounds: 1000 }, { timeout: "5 seconds" })
 * }))
 * ```
 * @since 0.1.0
 */
import { Context, Effect, Exit, type Fiber, type Layer, Schedule, Stream, Tracer } from "effect"
import type * as Duration from "effect/Duration"
import { dual } from "effect/Function"
import { hasProperty } from "effect/Predicate"
import type * as Scope from "effect/Scope"
import { availableParallelism } from "node:os"
import type { ResourceLimits, TransferListItem } from "node:worker_threads"
import * as config from "./internal/config.ts"
import * as Items from "./internal/items.ts"
import * as job from "./internal/job.ts"
import * as JobContexts from "./internal/jobContext.ts"
import * as Pools from "./internal/service.ts"
import * as ThreadJson from "./internal/threadJson.ts"
import * as threadOptions from "./internal/threadOptions.ts"
import { checkTask, codecsOf, decodeReply, issueOf } from "./internal/taskCodecs.ts"
import { ThreadPrefetch } from "./internal/prefetch.ts"
import { threadExecutor } from "./internal/threadExecutor.ts"
import * as Scheduler from "./internal/scheduler.ts"
import { type ProgressSink, type TaskJob as ThreadJob, Threads } from "./internal/threads.ts"
import { transferIssue } from "./internal/transfer.ts"
import {
  type AdmissionError,
  type InvalidPoolConfig,
  InvalidJob,
  InvalidJobOptions,
  type JobError,
  PoolShutdown,
  TaskCodecError,
  WorkerCrashed,
  type WorkerStartFailed
} from "./PoolError.ts"
import type * as Task from "./Task.ts"
import * as WorkPool from "./WorkPool.ts"

/**
 * Marks a value as a `ThreadPool` (see `isThreadPool`).
 *
 * @example
 * ```ts
 * import * as ThreadPool from "effect-workpool/ThreadPool"
 *
 * const looksLikeAThreadPool = (u: object) => ThreadPool.TypeId in u
 * ```
 * @since 0.2.0
 * @category type ids
 */
export const TypeId = "~effect-workpool/ThreadPool" as const

/**
 * The type of `TypeId`.
 *
 * @example
 * ```ts
 * import type * as ThreadPool from "effect-workpool/ThreadPool"
 *
 * const id: ThreadPool.TypeId = "~effect-workpool/ThreadPool"
 * ```
 * @since 0.2.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * Options of a thread pool. Only `worker` is required. The queue options (`capacity`, `overflow`,
 * `timeout`, `queueTimeout`, `aging`, `shutdownTimeout`, `paused`, `rateLimit`) mean what they mean
 * for `WorkPool`.
 *
 * @example
 * ```ts
 * import type * as ThreadPool from "effect-workpool/ThreadPool"
 *
 * const options: ThreadPool.Options = {
 *   worker: new URL("./worker.ts", import.meta.url),
 *   threads: 4,
 *   timeout: "10 seconds",
 *   cancelGrace: "500 millis",
 *   resourceLimits: { maxOldGenerationSizeMb: 256 }
 * }
 * ```
 * @since 0.1.0
 * @category models
 */
export interface Options extends Omit<WorkPool.Options, "concurrency" | "resource"> {
  /**
   * The worker entry file, which calls `ThreadWorker.serve`: a path (absolute, or relative to the
   * current directory when `make` runs, starting with `./` or `../`), a `file:` or a `data:` URL. A file that does not
   * exist fails `make` with `InvalidPoolConfig`, before any thread starts.
   */
  readonly worker: URL | string
  /**
   * How many threads, at most 1024 (and `threads × tasksPerThread` at most 100,000); default the
   * machine's available parallelism.
   */
  readonly threads?: number | undefined
  /**
   * Tasks in flight per thread, at most 1024; default 1. With more, a thread terminated for one task
   * fails the others.
   */
  readonly tasksPerThread?: number | undefined
  /**
   * How long a cancelled or timed-out task may take to stop before its thread is terminated, and how
   * long a thread asked to close may take to release its layer; default 1 second. Finite: a thread
   * stuck in a loop must be terminated at some point, or the pool's shutdown would never end.
   */
  readonly cancelGrace?: Duration.Input | undefined
  /** Threads idle this long are stopped and started again on demand; default never (`Infinity`). */
  readonly idleTimeout?: Duration.Input | undefined
  /**
   * When a thread fails to start, how to try again (a `Schedule`); default `Schedule.recurs(2)` (3
   * attempts). Also the delays between replacements of a thread that keeps dying soon after it started.
   */
  readonly startSchedule?: Schedule.Schedule<unknown, unknown> | undefined
  /**
   * How long a thread may take to start and report ready before the attempt fails; default 30
   * seconds, `Infinity` for no limit.
   */
  readonly startTimeout?: Duration.Input | undefined
  /**
   * Passed to each `Worker` (heap limits): a thread over them crashes alone. `maxOldGenerationSizeMb`
   * must be at least 4 and `stackSizeMb` at least 0.5: Node aborts the whole process below about 2.5
   * and 0.25 (measured on Node 24.21; the bounds keep a margin), and a thread that loads effect needs
   * about 24 MB of old generation to start. `stackSizeMb` and `codeRangeSizeMb` are at most 1024: far
   * larger ones crash or abort it too.
   */
  readonly resourceLimits?: ResourceLimits | undefined
  /** Passed to each `Worker` as `workerData`; it must be structured-cloneable. */
  readonly workerData?: unknown
}

/**
 * Options of one thread task: the job options, and objects to move to the thread without copying.
 *
 * @example
 * ```ts
 * import type * as ThreadPool from "effect-workpool/ThreadPool"
 *
 * const image = new ArrayBuffer(1024)
 * const options: ThreadPool.TaskOptions = { priority: 5, timeout: "2 seconds", transfer: [image] }
 * ```
 * @since 0.1.0
 * @category models
 */
export interface TaskOptions extends WorkPool.JobOptions {
  /**
   * `ArrayBuffer`s (or other transferables) in the payload to move rather than copy. Not for a task
   * that may be retried (see `WorkPool.Retry`): each attempt sends the payload again.
   */
  readonly transfer?: ReadonlyArray<TransferListItem> | undefined
}

/**
 * The errors of a thread task besides its own failure. Through `JobError` it includes `InvalidJob`
 * (what was given as the task is not a `Task`, possible from JavaScript) and `InvalidJobOptions`;
 * `TaskCodecError` includes a reply the main thread could not deserialize (part `"reply"`) and a
 * payload the thread could not (part `"payload"`).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { PoolError } from "effect-workpool"
 * import type * as ThreadPool from "effect-workpool/ThreadPool"
 *
 * const retryCrashes = <A, E>(task: Effect.Effect<A, E | ThreadPool.TaskError>) =>
 *   Effect.retry(task, { while: (e) => e instanceof PoolError.WorkerCrashed, times: 2 })
 * ```
 * @since 0.1.0
 * @category models
 */
export type TaskError = JobError | WorkerCrashed | WorkerStartFailed | TaskCodecError

/**
 * A pool of worker threads. `T` is the union of the tasks it takes (default: any task); given to
 * `make` (`ThreadPool.make<typeof Hash | typeof Resize>(...)`), it refuses other tasks at compile
 * time and types what `shutdownNow` hands back.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as ThreadPool from "effect-workpool/ThreadPool"
 * import { Hash } from "./tasks.ts"
 *
 * const digests = (inputs: ReadonlyArray<string>) =>
 *   Effect.scoped(Effect.gen(function* () {
 *     const pool: ThreadPool.ThreadPool = yield* ThreadPool.make({ worker: new URL("./worker.ts", import.meta.url) })
 *     return yield* pool.runAll(Hash, inputs.map((input) => ({ input, rounds: 1000 })))
 *   }))
 * ```
 * @since 0.1.0
 * @category models
 */
export interface ThreadPool<T extends Task.Any = Task.Any> extends
  Pick<
    WorkPool.WorkPool,
    | "name"
    | "stats"
    | "changes"
    | "setRateLimit"
    | "pause"
    | "resume"
    | "awaitIdle"
    | "awaitTermination"
    | "jobs"
    | "job"
    | "cancel"
  >
{
  readonly [TypeId]: TypeId
  /** Runs a task on a thread and waits for its decoded result. */
  readonly run: <U extends T>(
    task: U,
    payload: Task.Payload<U>,
    options?: TaskOptions
  ) => Effect.Effect<Task.Success<U>, Task.Failure<U> | TaskError>
  /** Submits a task; the handle's `await` gives its result. */
  readonly submit: <U extends T>(
    task: U,
    payload: Task.Payload<U>,
    options?: TaskOptions
  ) => Effect.Effect<
    WorkPool.JobHandle<Task.Success<U>, Task.Failure<U> | WorkerCrashed | WorkerStartFailed | TaskCodecError>,
    AdmissionError
  >
  /**
   * Runs a task for each payload; results in input order; the first failure stops the rest. The
   * payloads are read in full first, as `WorkPool`'s `runAll` reads its jobs: at most 1,000,000,
   * interruptibly; an iterable that throws, an endless one or a `Stream` or a string passed by
   * mistake fails with `InvalidJob` naming `payloads` (use `ThreadPool.mapStream` for a stream).
   */
  readonly runAll: <U extends T>(
    task: U,
    payloads: Iterable<Task.Payload<U>>,
    options?: WorkPool.JobOptions
  ) => Effect.Effect<Array<Task.Success<U>>, Task.Failure<U> | TaskError>
  /** Threads alive: started and not exited, including those still starting or being terminated. */
  readonly threads: Effect.Effect<number>
  /**
   * Changes the number of threads (1 to 1024, and `threads × tasksPerThread` at most 100,000, as at
   * `make`): new ones are started (and waited for), retired ones close. A resize still starting
   * threads when the pool shuts down ends as done. A durable consumer of the pool without a
   * `concurrency` of its own (`JobQueue.consume({ threadPool })`) claims for the new slots.
   */
  readonly resize: (threads: number) => Effect.Effect<void, InvalidPoolConfig | WorkerStartFailed>
  /**
   * Graceful shutdown, as `WorkPool`'s (queued and running tasks finish within `shutdownTimeout`),
   * then every thread is asked to close, releasing its layer, and terminated if it has not within
   * `cancelGrace`; waits until no thread is alive. Closing the pool's scope does this. Idempotent.
   */
  readonly shutdown: Effect.Effect<void>
  /**
   * Immediate shutdown; returns the tasks that never started, with their payloads. Running tasks are
   * interrupted, then every thread is asked to close (releasing its layer) as at `shutdown`.
   */
  readonly shutdownNow: Effect.Effect<ReadonlyArray<UnstartedTask<T>>>
}

/**
 * A task that never started, returned by `shutdownNow` so that it can be run elsewhere. Its
 * awaiters got `PoolShutdown`. For a pool of several tasks (`ThreadPool<typeof A | typeof B>`) it
 * is a union with one member per task, each with that task's payload type.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type * as ThreadPool from "effect-workpool/ThreadPool"
 *
 * const handOver = (from: ThreadPool.ThreadPool, to: ThreadPool.ThreadPool) =>
 *   Effect.flatMap(from.shutdownNow, (unstarted) =>
 *     Effect.forEach(unstarted, (t: ThreadPool.UnstartedTask) => to.submit(t.task, t.payload, { priority: t.priority })))
 * ```
 * @since 0.1.0
 * @category models
 */
export type UnstartedTask<T extends Task.Any = Task.Any> = T extends Task.Any ? {
    readonly id: number
    readonly priority: number
    readonly task: T
    readonly payload: Task.Payload<T>
  }
  : never

/** The pool's job for one task; it carries its task and payload for `shutdownNow`. */
interface TaskJob {
  (index: number, jobId: number): Effect.Effect<any, any>
  readonly task: Task.Any
  readonly payload: unknown
}

/** Whether a `retry` option (checked by the pool) allows a retry at all. */
const mayRetry = (retry: WorkPool.Retry | undefined): boolean =>
  retry !== undefined && (Schedule.isSchedule(retry) || (retry as { readonly times?: unknown }).times !== 0)

/** `runAll`'s payloads, as the errors of their reading name them. */
const PAYLOADS: Items.Batch = {
  field: "payloads",
  of: "payloads",
  max: Items.MAX_JOBS,
  more: "run more with ThreadPool.mapStream",
  lazy: "use ThreadPool.mapStream",
  effect: "yield* it for its payloads first"
}

/**
 * What the thread needs of the job running the task: its id and attempt, the span to run under
 * (the job's `workpool.job` span, or its submitter's), the tracer its own spans are replayed on,
 * and where its progress reports go.
 */
const taskJobOf = (fiber: Fiber.Fiber<unknown, unknown>): ThreadJob => {
  const job = fiber.getRef(JobContexts.JobContext)
  // read, not cached: the fiber's context is its job's own (its JobContext, and its `workpool.job`
  // span when traced), never seen again, so a cached reading would only be a WeakMap entry per task
  return taskJobIn(tracingIn(fiber.context), job.id, job.attempt, JobContexts.reporterOf(job))
}

/** The same for a job's offer (internal/prefetch.ts), made before its attempt has a fiber. */
const offeredTaskJob = (job: Scheduler.Job): ThreadJob => taskJobIn(tracingOf(job.context), job.id, job.attemptNow(), job)

const taskJobIn = (traced: Tracing, id: number, attempt: number, progress: ProgressSink): ThreadJob => ({
  id,
  attempt,
  trace: traced.trace,
  span: traced.span,
  tracer: traced.tracer,
  progress
})

/** What a task's thread needs of its submitter's context: the same for every job of that context. */
interface Tracing {
  readonly trace: ThreadJob["trace"]
  readonly span: Tracer.AnySpan | undefined
  readonly tracer: Tracer.Tracer
}

// a Context never changes and most offered jobs come from a few submitters: an offer's is read once
// per submitter context rather than per task (three lookups, an Option and the trace tuple). Not a
// job's fiber's (`taskJobOf`): that one is the job's own. Weakly: a submitter's context, with its
// services, must not outlive it here
const tracings = new WeakMap<Context.Context<never>, Tracing>()

/** `context`'s tracing, kept for the next job of the same submitter context. */
const tracingOf = (context: Context.Context<never>): Tracing => {
  let tracing = tracings.get(context)
  if (tracing !== undefined) return tracing
  tracing = tracingIn(context)
  tracings.set(context, tracing)
  return tracing
}

const tracingIn = (context: Context.Context<never>): Tracing => {
  const span = Context.getOption(context, Tracer.ParentSpan)
  const tracer = Context.get(context, Tracer.Tracer)
  // the thread records its spans only for a tracer that shows them (Effect's native one keeps
  // nothing), and only with tracing on: off, the caller makes no span, and the thread's must not appear
  const record = span._tag === "Some" && span.value.sampled && JobContexts.isTraced(context)
  return {
    trace: span._tag === "Some" ? [span.value.traceId, span.value.spanId, span.value.sampled, record] : undefined,
    span: span._tag === "Some" ? span.value : undefined,
    tracer
  }
}

/** A task's job function, marked with what prefetch.ts `markOf` reads of it. */
const mark = <F extends Function, U extends Task.Any>(
  f: F,
  task: U,
  payload: Task.Payload<U>,
  transfer: ReadonlyArray<TransferListItem>
): F & { readonly task: U; readonly payload: Task.Payload<U>; readonly transfer: ReadonlyArray<TransferListItem> } => {
  const marked = f as F & { task: U; payload: Task.Payload<U>; transfer: ReadonlyArray<TransferListItem> }
  marked.task = task
  marked.payload = payload
  marked.transfer = transfer
  return marked
}

/** Thread pools made in this process, for their default names. */
let poolCount = 0

/** The keys of `Options` (see `config.POOL_KEYS`), with piscina's names for some. */
const OPTION_KEYS = [
  ...config.POOL_KEYS.filter((key) => key !== "concurrency" && key !== "resource"),
  "worker", "threads", "tasksPerThread", "cancelGrace", "idleTimeout", "startSchedule", "startTimeout", "resourceLimits",
  "workerData"
]
const OPTION_HINTS = {
  filename: "worker",
  file: "worker",
  thread: "threads",
  maxThreads: "threads",
  maxWorkers: "threads",
  numberOfThreads: "threads",
  minThreads: "threads",
  concurrency: "threads",
  concurrentTasksPerWorker: "tasksPerThread",
  maxQueue: "capacity"
}

/**
 * Makes a thread pool whose lifetime is the current `Scope`: its threads are started (all of them,
 * at once; interrupting `make` stops that and terminates them), and when the scope closes the pool
 * shuts down gracefully and every thread is asked to close, releasing its layer, and terminated if
 * it has not within `cancelGrace`; afterwards no thread of the pool is alive.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as ThreadPool from "effect-workpool/ThreadPool"
 * import { Resize } from "./tasks.ts"
 *
 * const thumbnails = (images: ReadonlyArray<Uint8Array>) =>
 *   Effect.scoped(Effect.gen(function* () {
 *     const pool = yield* ThreadPool.make({
 *       worker: new URL("./worker.ts", import.meta.url),
 *       timeout: "10 seconds",
 *       resourceLimits: { maxOldGenerationSizeMb: 256 }
 *     })
 *     return yield* pool.runAll(Resize, images.map((image) => ({ image, width: 128 })))
 *   }))
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const make = <T extends Task.Any = Task.Any>(
  options: Options
): Effect.Effect<ThreadPool<T>, InvalidPoolConfig | WorkerStartFailed, Scope.Scope> =>
  Effect.gen(function*() {
    const checked = yield* config.checkPoolOptions(() => {
      config.object("options", options)
      config.onlyKeys("", options, OPTION_KEYS, OPTION_HINTS)
      const entry = threadOptions.entry(options.worker)
      const tasksPerThread = options.tasksPerThread === undefined
        ? 1
        : config.positiveInteger("tasksPerThread", options.tasksPerThread, config.MAX_TASKS_PER_THREAD)
      return {
        entry,
        threads: options.threads === undefined
          ? Math.min(availableParallelism(), config.maxThreads(tasksPerThread))
          : config.threads(options.threads, tasksPerThread),
        tasksPerThread,
        cancelGrace: options.cancelGrace === undefined
          ? 1000
          : config.millis("cancelGrace", options.cancelGrace, "nonNegativeFinite"),
        startTimeout: options.startTimeout === undefined
          ? 30_000
          : config.millis("startTimeout", options.startTimeout, "positive"),
        idleTimeout: options.idleTimeout === undefined
          ? 0
          : config.millis("idleTimeout", options.idleTimeout, "positive"),
        startSchedule: options.startSchedule === undefined
          ? Schedule.recurs(2)
          : threadOptions.startSchedule(options.startSchedule),
        resourceLimits: options.resourceLimits === undefined
          ? undefined
          : threadOptions.resourceLimits(options.resourceLimits),
        workerData: threadOptions.workerData(options.workerData)
      }
    })
    const context = yield* Effect.context<never>()
    const name = options.name === undefined ? `threadpool-${++poolCount}` : options.name
    const threads = new Threads({
      pool: name,
      entry: checked.entry,
      tasksPerThread: checked.tasksPerThread,
      cancelGrace: checked.cancelGrace,
      idleTimeout: checked.idleTimeout,
      startSchedule: checked.startSchedule,
      startTimeout: checked.startTimeout,
      resourceLimits: checked.resourceLimits,
      workerData: checked.workerData
    }, context)
    // added first, so it runs last: after the pool has shut down and released its slots
    yield* Effect.addFinalizer(() => threads.close())
    threads.target = checked.threads
    const { cancelGrace: _g, idleTimeout: _i, resourceLimits: _r, startSchedule: _s, startTimeout: _st, tasksPerThread: _t, threads: _n, worker: _w, workerData: _d, ...queue } = options
    const pool = yield* WorkPool.make<number, WorkerStartFailed>({
      ...queue,
      name,
      concurrency: checked.threads * checked.tasksPerThread,
      // the slot is taken (and its release registered) at once; the wait for its thread stays
      // interruptible, so that make under a timeout stops at once
      resource: () =>
        Effect.acquireRelease(threads.assign(), (index) => threads.release(index)).pipe(
          Effect.flatMap((index) => threads.ready(index))
        )
    }).pipe(
      // a make that fails or is interrupted leaves no thread behind, even while its scope stays open
      Effect.onError(() => threads.close())
    )
    const prefetch = new ThreadPrefetch(threads, offeredTaskJob)
    const scheduler = Scheduler.schedulerOf(pool)
    scheduler.prefetch = prefetch
    // tasks start on their threads with no fiber here; what it cannot start goes to the fiber executor
    scheduler.executor = threadExecutor(scheduler, scheduler.executor, threads, prefetch, offeredTaskJob)

    const taskJob = <U extends T>(task: U, payload: Task.Payload<U>, transfer: ReadonlyArray<TransferListItem>) => {
      // the slot only bounds how many tasks run; the thread is chosen when the task starts
      const run = (_slot: number, jobId: number) =>
          Effect.suspend(() => {
            // its offer (internal/prefetch.ts) was started by its thread, or is being started there
            const offer = prefetch.take(jobId)
            if (offer !== undefined) {
              prefetch.ran(jobId, offer.thread)
              return Effect.flatMap(threads.attach(offer, task.name), (reply) => decodeReply(task, reply, jobId))
            }
            const encoded = codecsOf(task).encodePayload(payload)
            if (Exit.isFailure(encoded)) {
              return Effect.fail(new TaskCodecError({ task: task.name, part: "payload", issue: issueOf(encoded) }))
            }
            return threads.take().pipe(
              // the pool shut down while the task waited for its thread: the pool is stopping the
              // task, and gives its awaiter PoolShutdown
              Effect.catchIf((error) => error instanceof PoolShutdown, () => Effect.interrupt),
              Effect.flatMap((thread) =>
                Effect.withFiber((fiber) => {
                  prefetch.ran(jobId, thread)
                  return threads.call(thread, task.name, encoded.value, transfer, taskJobOf(fiber))
                })
              ),
              Effect.flatMap((reply) => decodeReply(task, reply, jobId))
            )
          })
      // marked as set one by one, not with Object.assign: its object of three fields was garbage per task
      return mark(run, task, payload, transfer)
    }

    const noTransfer: ReadonlyArray<TransferListItem> = []
    /** The task's transfer list, or what is wrong with it. */
    const transferOf = (task: TaskOptions | undefined): ReadonlyArray<TransferListItem> | InvalidJobOptions => {
      // options that are not an object are the job options' check to report
      if (typeof task !== "object" || task === null || task.transfer === undefined) return noTransfer
      const issue = transferIssue(task.transfer)
      if (issue !== undefined) {
        return new InvalidJobOptions({ field: issue.field, value: config.show(issue.value), reason: issue.reason })
      }
      // a retry sends the payload again, but a moved buffer is gone from this thread after the first send
      if (task.transfer.length > 0 && mayRetry(task.retry === undefined ? options.retry : task.retry)) {
        return new InvalidJobOptions({
          field: "transfer",
          value: config.show(task.transfer),
          reason: "a task that may be retried is sent again, but a moved buffer is gone after the first send: " +
            "leave out transfer (copy it) or retry (retry: { times: 0 })"
        })
      }
      return task.transfer
    }
    /** `f` with the task's transfer list, once the task and its options are checked; their error otherwise. */
    const admitted = <A, E>(
      task: Task.Any,
      options: TaskOptions | undefined,
      f: (transfer: ReadonlyArray<TransferListItem>) => Effect.Effect<A, E>
    ): Effect.Effect<A, E | InvalidJob | InvalidJobOptions> =>
      Effect.suspend((): Effect.Effect<A, E | InvalidJob | InvalidJobOptions> => {
        const invalid = checkTask(task) ?? transferOf(options)
        return invalid instanceof InvalidJob || invalid instanceof InvalidJobOptions ? Effect.fail(invalid) : f(invalid)
      })
    const self: ThreadPool<T> = ThreadJson.register({
      [TypeId]: TypeId,
      // suspended: the task and options are read (and may throw) when the Effect runs, not when it is built
      run: (task, payload, options) => admitted(task, options, (transfer) => pool.run(taskJob(task, payload, transfer), options)),
      submit: (task, payload, options) =>
        admitted(task, options, (transfer) => pool.submit(taskJob(task, payload, transfer), options)),
      runAll: (task, payloads, options) =>
        Effect.suspend(() => {
          const invalid = checkTask(task)
          if (invalid !== undefined) return Effect.fail(invalid)
          const each = (payload: unknown) => taskJob(task, payload as Task.Payload<typeof task>, noTransfer)
          return Items.collect(payloads, PAYLOADS, each, job.refusedBatch, (jobs) => pool.runAll(jobs, options))
        }),
      threads: Effect.sync(() => threads.live),
      resize: (n) =>
        Effect.flatMap(
          config.checkPoolOptions(() => config.threads(n, checked.tasksPerThread)),
          (n) => {
            threads.target = n
            return Effect.ensuring(
              pool.resize(n * checked.tasksPerThread),
              Effect.sync(() => {
                // the threads wanted are the ones the pool's slots are on: this resize's, or, if it
                // failed, was interrupted or came during a shutdown, the ones kept (or a later resize's)
                threads.target = Math.ceil(scheduler.target / checked.tasksPerThread)
                // a consumer following the pool's slots claims for the new threads once they have started
                ThreadJson.resized(self)
              })
            )
          }
        ),
      name: pool.name,
      stats: pool.stats,
      changes: pool.changes,
      setRateLimit: pool.setRateLimit,
      pause: pool.pause,
      resume: pool.resume,
      awaitIdle: pool.awaitIdle,
      jobs: pool.jobs,
      job: pool.job,
      cancel: pool.cancel,
      shutdown: Effect.andThen(pool.shutdown, threads.close()),
      shutdownNow: Effect.suspend(() => {
        threads.closing()
        return pool.shutdownNow.pipe(
          Effect.tap(() => threads.close()),
          Effect.map((jobs) =>
            jobs.map((unstarted) => {
              const { payload, task } = unstarted.job as TaskJob
              return { id: unstarted.id, priority: unstarted.priority, task, payload } as UnstartedTask<T>
            })
          )
        )
      }),
      awaitTermination: Effect.andThen(pool.awaitTermination, threads.close())
    } satisfies ThreadPool<T>, (task, payload, options, progress, durable) =>
      pool.run(
        Object.assign((_slot: number, jobId: number) =>
          threads.take().pipe(
            Effect.catchIf((error) => error instanceof PoolShutdown, () => Effect.interrupt),
            Effect.flatMap((thread) =>
              Effect.withFiber((fiber) => {
                // its thread's offer starts in its slot when it ends
                prefetch.ran(jobId, thread)
                const job = taskJobOf(fiber)
                return threads.call(thread, task.name, payload, noTransfer, {
                  ...job,
                  durable,
                  progress: {
                    reportProgress: (value) => {
                      job.progress.reportProgress(value)
                      progress(value)
                    }
                  }
                })
              })
            )
          ), { task, payload }),
        options
      ), () => Effect.runSync(pool.stats).concurrency)
    // found from the thread pool as from its inner pool (see Scheduler.schedulerOf)
    Scheduler.registerScheduler(self, scheduler)
    return self
  })

/**
 * Whether a value is a `ThreadPool`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as ThreadPool from "effect-workpool/ThreadPool"
 *
 * const describe = (pool: unknown) => ThreadPool.isThreadPool(pool) ? pool.threads : Effect.succeed(0)
 * ```
 * @since 0.2.0
 * @category guards
 */
export const isThreadPool = (u: unknown): u is ThreadPool<Task.Any> => hasProperty(u, TypeId)

/**
 * A layer that makes the thread pool for `tag` and shuts it down gracefully when the layer is
 * released (every thread is asked to close, releasing its own layer, as at `make`'s scope close).
 * The options may be an `Effect`, for example read from `Config`.
 *
 * @example
 * ```ts
 * import { Config, Context, Effect } from "effect"
 * import * as ThreadPool from "effect-workpool/ThreadPool"
 * import type { Hash } from "./tasks.ts"
 *
 * class Hasher extends Context.Service<Hasher, ThreadPool.ThreadPool<typeof Hash>>()("app/Hasher") {}
 * const worker = new URL("./worker.ts", import.meta.url)
 * const HasherLive = ThreadPool.layer(Hasher, { worker, threads: 4 })
 * const HasherFromConfig = ThreadPool.layer(
 *   Hasher,
 *   Effect.map(Config.Int("HASH_THREADS"), (threads) => ({ worker, threads }))
 * )
 * ```
 * @since 0.2.0
 * @category layers
 */
export const layer = <I, T extends Task.Any = Task.Any, EO = never, RO = never>(
  tag: Context.Key<I, ThreadPool<T>>,
  options: Options | Effect.Effect<Options, EO, RO>
): Layer.Layer<I, InvalidPoolConfig | WorkerStartFailed | EO, RO> => Pools.layer(tag, options, make<T>)

/**
 * Declares a thread pool as a service class with a `layer`, the way `WorkPool.Service` does. The
 * second type parameter lists the pool's tasks (default: any task).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as ThreadPool from "effect-workpool/ThreadPool"
 * import { Hash } from "./tasks.ts"
 *
 * class Hasher extends ThreadPool.Service<Hasher, typeof Hash>()("app/Hasher", {
 *   worker: new URL("./worker.ts", import.meta.url),
 *   threads: 4
 * }) {}
 *
 * const digest = (input: string) =>
 *   Effect.gen(function* () {
 *     const pool = yield* Hasher
 *     return yield* pool.run(Hash, { input, rounds: 1000 })
 *   }).pipe(Effect.provide(Hasher.layer))
 * ```
 * @since 0.2.0
 * @category constructors
 */
export const Service = <Self, T extends Task.Any = Task.Any>() =>
<const Id extends string, EO = never, RO = never>(
  id: Id,
  options: Options | Effect.Effect<Options, EO, RO>
): Context.ServiceClass<Self, Id, ThreadPool<T>> & {
  readonly layer: Layer.Layer<Self, InvalidPoolConfig | WorkerStartFailed | EO, RO>
} => Pools.service<Self, ThreadPool<T>, Options, InvalidPoolConfig | WorkerStartFailed, Scope.Scope, EO, RO>(
  id,
  options,
  make<T>
) as any

/**
 * Runs `task` on a thread for every element of a stream of payloads, emitting the results in input
 * order, or in completion order with `unordered: true`. `buffer` (default: twice the pool's
 * concurrency, `threads × tasksPerThread`, when the stream runs) bounds how many elements are in
 * the pool at once. Failure, interruption and an upstream's failure go as for `WorkPool.mapStream`.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import * as ThreadPool from "effect-workpool/ThreadPool"
 * import { Hash } from "./tasks.ts"
 *
 * const program = Effect.scoped(Effect.gen(function* () {
 *   const pool = yield* ThreadPool.make({ worker: new URL("./worker.ts", import.meta.url) })
 *   return yield* Stream.make("a", "b", "c").pipe(
 *     Stream.map((input) => ({ input, rounds: 1000 })),
 *     ThreadPool.mapStream(pool, Hash, { unordered: true }),
 *     Stream.runCollect
 *   )
 * }))
 * ```
 * @since 0.2.0
 * @category combinators
 */
export const mapStream: {
  <T extends Task.Any, U extends T>(
    pool: ThreadPool<T>,
    task: U,
    options?: WorkPool.MapStreamOptions
  ): <E, R>(self: Stream.Stream<Task.Payload<U>, E, R>) => Stream.Stream<Task.Success<U>, E | Task.Failure<U> | TaskError, R>
  <E, R, T extends Task.Any, U extends T>(
    self: Stream.Stream<Task.Payload<U>, E, R>,
    pool: ThreadPool<T>,
    task: U,
    options?: WorkPool.MapStreamOptions
  ): Stream.Stream<Task.Success<U>, E | Task.Failure<U> | TaskError, R>
} = dual(
  (args) => Stream.isStream(args[0]),
  <E, R, T extends Task.Any, U extends T>(
    self: Stream.Stream<Task.Payload<U>, E, R>,
    pool: ThreadPool<T>,
    task: U,
    options?: WorkPool.MapStreamOptions
  ): Stream.Stream<Task.Success<U>, E | Task.Failure<U> | TaskError, R> =>
    Pools.mapStream(self, pool.stats, (payload: Task.Payload<U>) => pool.run(task, payload, options), options)
)
