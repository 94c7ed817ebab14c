/**
 * The in-process executor: each job runs in its own fiber, started synchronously with its
 * submitter's services (Clock, tracer, current span as parent), and owned by the pool rather than
 * by the submitter, so that `submit`ted jobs outlive their caller and shutdown can stop them.
 *
 * @internal
 */
import { type Context, Effect, Fiber } from "effect"
import type { Executor, Job, Scheduler, Worker } from "./scheduler.ts"

export const fiberExecutor = (scheduler: Scheduler<any>): Executor => ({
  start(job: Job, worker: Worker<any>): void {
    // the job's requirements are in job.context, its submitter's services
    let effect: Effect.Effect<any, any, any>
    if (typeof job.effect === "function") {
      try {
        effect = job.effect(worker.resource, job.id)
      } catch (defect) {
        effect = Effect.die(defect)
      }
    } else {
      effect = job.effect
    }
    const fiber = Effect.runForkWith(job.context as Context.Context<any>)(effect)
    job.fiber = fiber
    fiber.addObserver((exit) => scheduler.jobStopped(job, exit))
  },
  interrupt(job: Job): void {
    job.fiber?.interruptUnsafe()
  },
  awaitStopped(job: Job): Effect.Effect<void> {
    const fiber = job.fiber
    return fiber === undefined ? Effect.void : Effect.asVoid(Fiber.await(fiber))
  }
})
