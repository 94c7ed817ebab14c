/**
 * The in-process executor: each job runs in its own fiber, started synchronously with its
 * submitter's services (Clock, tracer, current span as parent) plus its own (jobContext.ts: its
 * JobContext, its jobId log annotation, its span when a tracer is installed), and owned by the pool
 * rather than by the submitter, so that `submit`ted jobs outlive their caller and shutdown can stop
 * them.
 *
 * Two kinds of job need no fiber of their own: an `Effect.sync` runs to its end as it starts, and a
 * callback primitive whose register reads no fiber (`Effect.promise`, `Effect.tryPromise`,
 * `Effect.never`: see `asCallback`) waits for its callback (see `startCallback`). Neither can read its fiber's services (only an Effect can), so
 * each runs without one, as long as it does not need one: a fiber and its context cost a trivial
 * job about half of its time.
 *
 * @internal
 */
import { Context, Effect, Exit, Fiber, Scheduler } from "effect"
import { leaveFiber, restoreFiber, runThunk } from "./fiberless.ts"
import { IntMap } from "./intMap.ts"
import { asCallback, asExit, type Callback, isFunction, notAnEffect, syncThunk } from "./job.ts"
import * as JobContext from "./jobContext.ts"
import type { Executor, Job, Worker } from "./scheduler.ts"
import type { Scheduler as PoolScheduler } from "./scheduler.ts"

/** A callback job's phases while it waits on no fiber (see `startCallback`). */
const REGISTERING = 0
/** Asked to stop during its `register` call: it stops once that returns. */
const REGISTERING_STOPPED = 1
const WAITING = 2

/** A callback job waiting for its callback, on no fiber (see `startCallback`). */
class Pending {
  phase = REGISTERING
  /** What it was resumed with during its `register` call (the first resume wins, as in Effect). */
  early: Effect.Effect<any, any, any> | undefined = undefined
  readonly job: Job
  readonly worker: Worker<any>
  readonly controller: AbortController | undefined
  /** Its executor's `resume`. */
  readonly resume: (waiting: Pending, effect: Effect.Effect<any, any, any>) => void
  constructor(
    job: Job,
    worker: Worker<any>,
    withSignal: boolean,
    resume: (waiting: Pending, effect: Effect.Effect<any, any, any>) => void
  ) {
    this.job = job
    this.worker = worker
    this.controller = withSignal ? new AbortController() : undefined
    this.resume = resume
  }
}

/**
 * What a callback job's `register` resumes it with, bound to its `Pending`: a bound function is
 * half the bytes of a closure and its context.
 */
function resumePending(this: Pending, effect: Effect.Effect<any, any, any>): void {
  this.resume(this, effect)
}

export const fiberExecutor = (scheduler: PoolScheduler<any>): Executor => {
  /**
   * Jobs asked to stop while their fiber was being started: a job's first synchronous steps can
   * make its own caller cancel it (say, by completing something the caller waits for).
   */
  const interruptedWhileStarting = new Set<Job>()
  /**
   * The fibers of the jobs that did not stop while they were started: at most one per worker, kept
   * here rather than in every job's record. Keyed by job id: keyed by the record itself, V8 would
   * give every record an identity hash, a call into its runtime per job.
   */
  const fibers = new IntMap<Fiber.Fiber<any, any>>()
  /** The callback jobs waiting on no fiber, by job id as `fibers`. */
  const pending = new IntMap<Pending>()
  const contextOf = JobContext.makeContextOf()
  // most jobs come from a few submitters: what their context holds is looked up once each
  let lastContext: Context.Context<never> | undefined
  let lastTraced = false
  let lastScheduler: Scheduler.Scheduler | undefined
  const lookUp = (context: Context.Context<never>): void => {
    if (context !== lastContext) {
      lastContext = context
      lastTraced = JobContext.isTraced(context)
      lastScheduler = undefined
    }
  }
  const isTraced = (context: Context.Context<never>): boolean => {
    lookUp(context)
    return lastTraced
  }
  /** The Effect `Scheduler` a fiber of this context would run a callback's `register` with (its `this`). */
  const schedulerOf = (context: Context.Context<never>): Scheduler.Scheduler => {
    lookUp(context)
    return lastScheduler ??= Context.get(context, Scheduler.Scheduler)
  }

  /**
   * What each worker's fibers call as they end: one function per worker, made at its first fiber,
   * rather than a closure per job. A worker runs one job at a time and keeps it (`worker.job`) until
   * `jobStopped`, which only the end of that job's fiber calls once it has a fiber, so the job is
   * read there.
   */
  const observers = new WeakMap<Worker<any>, (exit: Exit.Exit<any, any>) => void>()
  const observerOf = (worker: Worker<any>): (exit: Exit.Exit<any, any>) => void => {
    let observer = observers.get(worker)
    if (observer === undefined) {
      observer = (exit) => {
        const job = worker.job!
        fibers.delete(job.seq)
        scheduler.jobStopped(job, worker, exit)
      }
      observers.set(worker, observer)
    }
    return observer
  }

  const startFiber = (job: Job, worker: Worker<any>, effect: Effect.Effect<any, any, any>): void => {
    const fiber = Effect.runForkWith(contextOf(job) as Context.Context<any>)(effect)
    if (interruptedWhileStarting.size > 0 && interruptedWhileStarting.delete(job)) fiber.interruptUnsafe()
    const exit = fiber.pollUnsafe()
    if (exit !== undefined) return scheduler.jobStopped(job, worker, exit)
    fibers.set(job.seq, fiber)
    fiber.addObserver(observerOf(worker))
  }

  /**
   * Starts a callback job without a fiber: calls its `register` (an `Effect.promise` calls its
   * function) and waits. What it resumes with ends it if it is an Exit (as an `Effect.promise`'s
   * value or defect is); anything else (a `tryPromise`'s failure runs its `catch`) goes on in a
   * fiber. The registers it is given (`asCallback`: `Effect.promise`'s, `Effect.tryPromise`'s,
   * `Effect.never`'s) return no canceler.
   */
  const startCallback = (job: Job, worker: Worker<any>, callback: Callback, interrupted: boolean): void => {
    const waiting = new Pending(job, worker, callback.withSignal, resume)
    // asked to stop before it started: it registers all the same, as its fiber would, then stops
    if (interrupted) waiting.phase = REGISTERING_STOPPED
    pending.set(job.seq, waiting)
    try {
      const current = leaveFiber()
      try {
        callback.register.call(schedulerOf(job.context), resumePending.bind(waiting), waiting.controller?.signal)
      } finally {
        restoreFiber(current)
      }
    } catch (defect) {
      pending.delete(job.seq)
      return scheduler.jobStopped(job, worker, Exit.die(defect))
    }
    const stopped = waiting.phase === REGISTERING_STOPPED
    waiting.phase = WAITING
    // resumed during its register, it ends as it starts, a stop asked meanwhile or not: the registers
    // run here resume early only with an Exit or tryPromise's catch (run in a fiber, synchronously),
    // as a job's own fiber that ends as it starts ends before its cancel reaches it (startFiber)
    if (waiting.early !== undefined) return resumed(waiting, waiting.early)
    if (stopped) stop(waiting)
  }

  const resume = (waiting: Pending, effect: Effect.Effect<any, any, any>): void => {
    // stopped, or resumed before: only the first resume counts
    if (pending.get(waiting.job.seq) !== waiting) return
    if (waiting.phase !== WAITING) {
      waiting.early ??= effect
      return
    }
    resumed(waiting, effect)
  }

  const resumed = (waiting: Pending, effect: Effect.Effect<any, any, any>): void => {
    pending.delete(waiting.job.seq)
    const exit = asExit(effect)
    if (exit !== undefined) return scheduler.jobStopped(waiting.job, waiting.worker, exit)
    startFiber(waiting.job, waiting.worker, effect)
  }

  /** Stops a waiting callback job: its signal aborts, and it ends interrupted, as its fiber would. */
  const stop = (waiting: Pending): void => {
    pending.delete(waiting.job.seq)
    waiting.controller?.abort()
    scheduler.jobStopped(waiting.job, waiting.worker, Exit.interrupt())
  }

  return {
    start(job: Job, worker: Worker<any>, waitMillis: number): void {
      let effect: Effect.Effect<any, any, any>
      if (isFunction(job.effect)) {
        try {
          effect = job.effect(worker.resource, job.id)
          if (!Effect.isEffect(effect)) effect = Exit.die(notAnEffect(job.id, effect))
        } catch (defect) {
          effect = Exit.die(defect)
        }
      } else {
        effect = job.effect
      }
      if (isTraced(job.context)) effect = JobContext.traced(job, effect, waitMillis)
      else {
        let exit: Exit.Exit<any, any> | undefined
        let callback: Callback | undefined
        try {
          const thunk = syncThunk(effect)
          // an Exit (Effect.succeed, Effect.fail, ...) is already its own result: no fiber needed
          exit = thunk !== undefined ? runThunk(thunk) : asExit(effect)
          if (exit === undefined) callback = asCallback(effect)
        } catch (defect) {
          // a Proxy of an Effect whose traps throw, asked what it is: it dies, as it would in a fiber
          // (thrown from here, it was never counted and a job of Effect.sync held its worker for ever)
          exit = Exit.die(defect)
        }
        if (exit !== undefined) {
          if (interruptedWhileStarting.size > 0) interruptedWhileStarting.delete(job)
          return scheduler.jobStopped(job, worker, exit)
        }
        if (callback !== undefined) {
          return startCallback(job, worker, callback, interruptedWhileStarting.size > 0 && interruptedWhileStarting.delete(job))
        }
      }
      startFiber(job, worker, effect)
    },
    interrupt(job: Job): void {
      const fiber = fibers.get(job.seq)
      if (fiber !== undefined) return fiber.interruptUnsafe()
      const waiting = pending.get(job.seq)
      if (waiting === undefined) interruptedWhileStarting.add(job)
      else if (waiting.phase === WAITING) stop(waiting)
      else waiting.phase = REGISTERING_STOPPED
    },
    awaitStopped(job: Job): Effect.Effect<void> {
      // looked up when run: a job asked to stop while starting has its fiber by then
      return Effect.suspend(() => {
        const fiber = fibers.get(job.seq)
        return fiber === undefined ? Effect.void : Effect.asVoid(Fiber.await(fiber))
      })
    },
    isStopping(job: Job): boolean {
      return fibers.has(job.seq) || pending.has(job.seq)
    }
  }
}
