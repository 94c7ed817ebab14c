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
  /** Undefined on the prototype until first used: most jobs never report progress. */
  declare private reporter: ((value: unknown) => Effect.Effect<void>) | undefined
  // a function of its own (made on first use, not per job), so that `const { progress } = ...` works
  get progress(): (value: unknown) => Effect.Effect<void> {
    return this.reporter ??= (value) => Effect.sync(() => this.job.reportProgress(value))
  }
}

// writable: a job that reports progress gets its own
Object.defineProperty(InPool.prototype, "reporter", { value: undefined, writable: true })

/**
 * A job's `JobContext` with another attempt count: a durable job's, whose every attempt is a new job
 * of its consumer's pool (attempt 1 there), counted across attempts and processes by the store.
 */
class Renumbered implements JobInfo {
  readonly info: JobInfo
  readonly attempt: number
  constructor(info: JobInfo, attempt: number) {
    this.info = info
    this.attempt = attempt
  }
  get pool(): string {
    return this.info.pool
  }
  get id(): number {
    return this.info.id
  }
  get progress(): (value: unknown) => Effect.Effect<void> {
    return this.info.progress
  }
}

export const withAttempt = (info: JobInfo, attempt: number): JobInfo =>
  new Renumbered(info instanceof Renumbered ? info.info : info, attempt)

/** A job that takes no progress reports (one not run by a pool). */
const NO_PROGRESS = { reportProgress: (_value: unknown): void => {} }

/** Where progress for the job of `info` goes without an Effect: how a thread's reports arrive. */
export const reporterOf = (info: JobInfo): { readonly reportProgress: (value: unknown) => void } =>
  info instanceof Renumbered ? reporterOf(info.info) : info instanceof InPool ? info.job : NO_PROGRESS

export const attemptOf = (job: Job): number => job.attemptNow()

/** One layer of an Effect 4.1 `Context`: a service added on top of its parent's (effect/Context.ts). */
interface Overlay {
  readonly key: string
  readonly value: unknown
  readonly parent: Overlay | undefined
}

/** The fields of an Effect 4.1 `Context` that `addLayer` writes (effect/Context.ts's `ContextImpl`). */
interface Layered {
  overlay: Overlay | undefined
  depth: number
  readonly maxDepth: number
  readonly _flat: unknown
}

const LOG_ANNOTATIONS = References.CurrentLogAnnotations.key

/**
 * Every own field of an Effect 4.1 `Context`, in the order `makeImpl` writes them: a field that
 * `addLayer` does not know of (say, one an upgrade keeps per `add`) would be left stale by it.
 */
const FIELDS = "cacheRoot,base,overlay,depth,_flat,baseHits,maxDepth"

/**
 * Whether a `Context` made by `Context.add` is what `addLayer` expects: its last service in an
 * overlay over its parent's, not flattened, and adding the log annotations keeps the services a
 * fiber caches (a key that changes them makes a new cache root, which `addLayer` would not), and
 * it has no field but the ones `addLayer` keeps right. An Effect whose `Context` differs: false,
 * and every job pays a second `Context.add`.
 */
export const LAYERED: boolean = (() => {
  const base = Context.empty()
  const added = Context.add(base, References.CurrentLogAnnotations, {}) as unknown as Layered & {
    readonly cacheRoot?: unknown
  }
  const overlay = added.overlay
  return overlay !== undefined && overlay.key === LOG_ANNOTATIONS && overlay.parent === undefined &&
    added.depth === 1 && typeof added.maxDepth === "number" && added._flat === undefined &&
    "cacheRoot" in added && added.cacheRoot === (base as unknown as { readonly cacheRoot?: unknown }).cacheRoot &&
    Object.keys(added).join() === FIELDS
})()

/**
 * `context` (made by `Context.add` just now, so no one else holds it yet) with `annotations` as the
 * log annotations: one more layer on the same object, where a second `Context.add` would make a
 * second `Context` (80 bytes per job, of the ~370 a job's context costs).
 */
export const addLayer = (context: Context.Context<never>, annotations: Readonly<Record<string, unknown>>): Context.Context<never> => {
  const layered = context as unknown as Layered
  if (!LAYERED || layered.depth >= layered.maxDepth) {
    return Context.add(context, References.CurrentLogAnnotations, annotations)
  }
  layered.overlay = { key: LOG_ANNOTATIONS, value: annotations, parent: layered.overlay }
  layered.depth++
  return context
}

/**
 * The layers a job adds to its submitter's context: its `JobContext` and its log annotations.
 */
const JOB_LAYERS = 2

/**
 * `context` itself, or, when the job's layers would take it past its `maxDepth`, the same services
 * in one flat `Context`. Effect flattens a `Context` into a new `Map` of all its services at the
 * add that reaches `maxDepth` (8): from a submitter 7 or 8 layers deep (nested `provideService`,
 * `withSpan`, `annotateLogs`) every job would copy every service. Flattened once per run of jobs
 * from one submitter context instead (`makeContextOf` keeps the last one with its annotations; jobs
 * from two deep contexts in turns flatten each time, as before), its jobs add their layers to it.
 *
 * Flattened by Effect itself: adding the submitter's own `JobContext` (each job's shadows it) until
 * an add flattens, one or two adds. Such a `Context` keeps the submitter's fiber cache (its
 * `cacheRoot`), where one made anew (`Context.makeUnsafe`) has every job's fiber look up its cached
 * services again: a submitter whose context differs at every submit paid 6-8% more per job so.
 */
export const withRoom = (context: Context.Context<never>): Context.Context<never> => {
  const layered = context as unknown as Layered
  if (!LAYERED || layered.depth + JOB_LAYERS <= layered.maxDepth) return context
  const own = Context.get(context, JobContext)
  let flat = context
  do {
    flat = Context.add(flat, JobContext, own)
  } while ((flat as unknown as Layered).depth !== 0)
  return flat
}

/**
 * Makes the function that gives a job its own context: its submitter's, with its `JobContext` and
 * its id among the log annotations. Most jobs come from a few submitters, so what the submitter's
 * context holds (its annotations, `withRoom`) is looked up once per run of jobs from the same
 * submitter context (a lookup per job cost ~7% of a trivial job). It keeps the last submitter's
 * context, and so its services, reachable until a job from another context starts.
 */
export const makeContextOf = (): (job: Job) => Context.Context<never> => {
  let lastContext: Context.Context<never> | undefined
  let base: Context.Context<never> | undefined
  let annotations: Readonly<Record<string, unknown>> | undefined
  return (job) => {
    if (job.context !== lastContext) {
      lastContext = job.context
      base = withRoom(job.context)
      const found = Context.get(job.context, References.CurrentLogAnnotations)
      annotations = Object.keys(found).length === 0 ? undefined : found
    }
    return addLayer(
      Context.add(base!, JobContext, new InPool(job, attemptOf(job))),
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

/**
 * The attempt's ending: the job's, if it has ended; `timedOut` for an attempt that passed its timeout
 * and is retried (it stops interrupted, but the job's retry hook took its timeout); else its Exit's.
 */
const endingOf = (job: Job, exit: Exit.Exit<unknown, unknown>): string => {
  const ending = job.state >= DONE ? job.ending! : job.hook?.attemptTimedOut === true ? "timedOut" : outcomeOf(exit)
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
