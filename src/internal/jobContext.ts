/**
 * What every job runs with, whatever its executor: the `JobContext` (its id, attempt and a way to
 * report progress), a log annotation with its id and, when a tracer is installed, a span of its
 * own (`workpool.job`) whose parent is its submitter's span.
 *
 * @internal
 */
import { Context, Effect, Exit, References, Tracer } from "effect"
import { isFunction } from "./job.ts"
import type { JobInfo } from "./jobInfo.ts"
import { JobContext } from "./jobInfo.ts"
import { DONE, type Job, outcomeOf } from "./scheduler.ts"

export { JobContext, type JobInfo } from "./jobInfo.ts"

class InPool implements JobInfo {
  readonly job: Job
  readonly attempt: number
  constructor(job: Job, attempt: number) {
    this.job = job
    this.attempt = attempt
  }
  get pool(): string {
    return this.job.scheduler.config.name
  }
  get id(): number {
    return this.job.id
  }
  private reporter: ((value: unknown) => Effect.Effect<void>) | undefined = undefined
  // a function of its own (made on first use, not per job), so that `const { progress } = ...` works
  get progress(): (value: unknown) => Effect.Effect<void> {
    return this.reporter ??= (value) => Effect.sync(() => this.job.reportProgress(value))
  }
}

/** Reports progress for the job of `info` without an Effect: how a thread's reports arrive. */
export const reporterOf = (info: JobInfo): (value: unknown) => void =>
  info instanceof InPool ? (value) => info.job.reportProgress(value) : () => {}

export const attemptOf = (job: Job): number => job.attemptNow()

/**
 * Makes the function that gives a job its own context: its submitter's, with its `JobContext` and
 * its id among the log annotations. Most jobs come from a few submitters, so the submitter's
 * annotations are looked up once per submitter context (a lookup per job cost ~7% of a trivial job).
 */
export const makeContextOf = (): (job: Job) => Context.Context<never> => {
  let lastContext: Context.Context<never> | undefined
  let annotations: Readonly<Record<string, unknown>> | undefined
  return (job) => {
    if (job.context !== lastContext) {
      lastContext = job.context
      const found = Context.get(job.context, References.CurrentLogAnnotations)
      annotations = Object.keys(found).length === 0 ? undefined : found
    }
    const context = Context.add(job.context, JobContext, new InPool(job, attemptOf(job)))
    return Context.add(
      context,
      References.CurrentLogAnnotations,
      annotations === undefined ? { jobId: job.id } : { ...annotations, jobId: job.id }
    )
  }
}

/** Whether spans made in `context` go anywhere: a tracer other than the native one, enabled. */
export const isTraced = (context: Context.Context<never>): boolean =>
  Context.get(context, Tracer.Tracer) !== Tracer.nativeTracer && Context.get(context, References.TracerEnabled)

/** The name of the task a thread pool's job runs (ThreadPool marks its jobs with it). */
const taskName = (job: Job): string | undefined =>
  isFunction(job.effect) ? (job.effect as { readonly task?: { readonly name?: string } }).task?.name : undefined

const endingOf = (job: Job, exit: Exit.Exit<unknown, unknown>): string => {
  const ending = job.state >= DONE ? job.ending! : outcomeOf(exit)
  return ending === "defects" ? "defect" : ending
}

/** Runs one attempt of `job` under a `workpool.job` span, child of the submitter's span. */
export const traced = <A, E, R>(job: Job, effect: Effect.Effect<A, E, R>, waitMillis: number): Effect.Effect<A, E, R> => {
  const attributes: Record<string, unknown> = {
    "workpool.pool": job.scheduler.config.name,
    "workpool.job.id": job.id,
    "workpool.job.priority": job.priority,
    "workpool.job.attempt": attemptOf(job),
    "workpool.job.wait_ms": waitMillis
  }
  const task = taskName(job)
  if (task !== undefined) attributes["workpool.task"] = task
  return effect.pipe(
    Effect.onExit((exit) => Effect.annotateCurrentSpan("workpool.job.ending", endingOf(job, exit))),
    Effect.withSpan("workpool.job", { attributes })
  )
}
