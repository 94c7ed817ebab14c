/**
 * The in-process executor: each job runs in its own fiber, started synchronously with its
 * submitter's services (Clock, tracer, current span as parent) plus its own (jobContext.ts: its
 * JobContext, its jobId log annotation, its span when a tracer is installed), and owned by the pool
 * rather than by the submitter, so that `submit`ted jobs outlive their caller and shutdown can stop
 * them.
 *
 * @internal
 */
import { type Context, Effect, Exit, Fiber } from "effect"
import { asExit, isFunction, notAnEffect, syncThunk } from "./job.ts"
import * as JobContext from "./jobContext.ts"
import type { Executor, Job, Scheduler, Worker } from "./scheduler.ts"

/**
 * Runs an `Effect.sync` function as its fiber would: its value, or the defect it threw. Outside any
 * fiber (`Fiber.getCurrent()` is undefined in it, not the submitter's fiber).
 */
const runThunk = (thunk: () => unknown): Exit.Exit<unknown> => {
  const current = (globalThis as Record<string, unknown>)[CURRENT_FIBER]
  if (current !== undefined) (globalThis as Record<string, unknown>)[CURRENT_FIBER] = undefined
  try {
    return Exit.succeed(thunk())
  } catch (defect) {
    return Exit.die(defect)
  } finally {
    if (current !== undefined) (globalThis as Record<string, unknown>)[CURRENT_FIBER] = current
  }
}

/** Where Effect 4.1 keeps the running fiber (`Fiber.getCurrent`). */
const CURRENT_FIBER = "~effect/Fiber/currentFiber"

export const fiberExecutor = (scheduler: Scheduler<any>): Executor => {
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
  const fibers = new Map<number, Fiber.Fiber<any, any>>()
  const contextOf = JobContext.makeContextOf()
  // most jobs come from a few submitters: whether their context traces is looked up once each
  let lastContext: Context.Context<never> | undefined
  let lastTraced = false
  const isTraced = (context: Context.Context<never>): boolean => {
    if (context !== lastContext) {
      lastContext = context
      lastTraced = JobContext.isTraced(context)
    }
    return lastTraced
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
        const thunk = syncThunk(effect)
        // an Exit (Effect.succeed, Effect.fail, ...) is already its own result: no fiber needed
        const exit = thunk !== undefined ? runThunk(thunk) : asExit(effect)
        if (exit !== undefined) {
          if (interruptedWhileStarting.size > 0) interruptedWhileStarting.delete(job)
          return scheduler.jobStopped(job, worker, exit)
        }
      }
      const fiber = Effect.runForkWith(contextOf(job) as Context.Context<any>)(effect)
      if (interruptedWhileStarting.size > 0 && interruptedWhileStarting.delete(job)) fiber.interruptUnsafe()
      const exit = fiber.pollUnsafe()
      if (exit !== undefined) return scheduler.jobStopped(job, worker, exit)
      fibers.set(job.seq, fiber)
      fiber.addObserver((exit) => {
        fibers.delete(job.seq)
        scheduler.jobStopped(job, worker, exit)
      })
    },
    interrupt(job: Job): void {
      const fiber = fibers.get(job.seq)
      if (fiber !== undefined) fiber.interruptUnsafe()
      else interruptedWhileStarting.add(job)
    },
    awaitStopped(job: Job): Effect.Effect<void> {
      // looked up when run: a job asked to stop while starting has its fiber by then
      return Effect.suspend(() => {
        const fiber = fibers.get(job.seq)
        return fiber === undefined ? Effect.void : Effect.asVoid(Fiber.await(fiber))
      })
    },
    isStopping(job: Job): boolean {
      return fibers.has(job.seq)
    }
  }
}
