/**
 * The in-process executor: each job runs in its own fiber, started synchronously with its
 * submitter's services (Clock, tracer, current span as parent), and owned by the pool rather than
 * by the submitter, so that `submit`ted jobs outlive their caller and shutdown can stop them.
 *
 * @internal
 */
import { type Context, Effect, Exit, Fiber } from "effect"
import type { Executor, Job, Scheduler, Worker } from "./scheduler.ts"

export const fiberExecutor = (scheduler: Scheduler<any>): Executor => ({
  start(job: Job, worker: Worker<any>): void {
    let effect: Effect.Effect<any, any, any>
    if (typeof job.effect === "function") {
      try {
        effect = job.effect(worker.resource, job.id)
      } catch (defect) {
        effect = Exit.die(defect)
      }
    } else {
      effect = job.effect
    }
    // an Exit (Effect.succeed, Effect.fail, ...) is already its own result: no fiber needed
    if (Exit.isExit(effect)) return scheduler.jobStopped(job, worker, effect)
    const fiber = Effect.runForkWith(job.context as Context.Context<any>)(effect)
    const exit = fiber.pollUnsafe()
    if (exit !== undefined) return scheduler.jobStopped(job, worker, exit)
    job.fiber = fiber
    fiber.addObserver((exit) => scheduler.jobStopped(job, worker, exit))
  },
  interrupt(job: Job): void {
    job.fiber?.interruptUnsafe()
  },
  awaitStopped(job: Job): Effect.Effect<void> {
    const fiber = job.fiber
    return fiber === undefined ? Effect.void : Effect.asVoid(Fiber.await(fiber))
  }
})
