/**
 * What the dashboard shows, read from its sources: the pools and durable queues added to it.
 *
 * Every `interval` the sampler reads each source's counts (a pool's `stats`, a queue's counts from
 * the store) and its latencies (a pool's wait and run histograms from the metric registry; for a
 * queue, the times of the jobs that ended since the last interval, from the store), and appends a
 * `Point` to that source's history: a ring of at most `history` points, so memory stays flat however
 * long it runs. Job lists (running, queued, failed, dead) are read only while someone watches (an
 * SSE client is connected): a page of the pool's jobs (`pool.jobs` with a `limit`) or a store query
 * per list and interval.
 *
 * @internal
 */
import { Cause, Clock, Effect, Exit, Metric, Option, PubSub, Ref } from "effect"
import { inspect } from "node:util"
import type * as WorkPool from "../../WorkPool.ts"
import { type JobRow, type JobStore, type Latency, type LatencyCursor } from "../store/model.ts"
import { histogramsOf } from "../metrics.ts"
import { findScheduler } from "../scheduler.ts"
import { type Buckets, quantile, quantileOf } from "./quantile.ts"

/** What the dashboard needs of a pool: `WorkPool`, `ThreadPool` and their services all have it. */
export type Pool = Pick<WorkPool.WorkPool<any, any>, "name" | "stats" | "jobs" | "cancel" | "pause" | "resume">

/** One interval of one source: counts at its end, rates over it, latencies of its attempts (ms). */
export interface Point {
  readonly t: number
  readonly queued: number
  readonly running: number
  /** Jobs that ended in the interval, per second. */
  readonly done: number
  /** Of those, the failures (failed, defect, timed out; dead for a queue), per second. */
  readonly failed: number
  readonly waitP50: number | null
  readonly waitP99: number | null
  readonly runP50: number | null
  readonly runP99: number | null
}

/** A job as the page lists it. */
export interface JobView {
  readonly id: string
  readonly status: string
  readonly priority: number
  readonly attempt: number
  /** The latest progress, JSON-safe (see `jsonSafe`), or null. */
  readonly progress: unknown
  /** How it failed, as text; null for a job that has not. */
  readonly error: string | null
}

export interface Detail {
  readonly running: ReadonlyArray<JobView>
  readonly queued: ReadonlyArray<JobView>
  /** Pools: failed, defect, timed out (kept by the pool's retention); queues: dead letters. */
  readonly failed: ReadonlyArray<JobView>
}

export interface SourceView {
  readonly kind: "pool" | "queue"
  readonly name: string
  /** The latest counts: a pool's `PoolStats`, a queue's `QueueCounts`. */
  readonly counts: unknown
  readonly detail: Detail | null
}

/** What an SSE client receives each interval (`history` only in the first message). */
export interface Snapshot {
  readonly t: number
  readonly interval: number
  /** How many points a chart keeps. */
  readonly history: number
  readonly sources: ReadonlyArray<SourceView & { readonly points: ReadonlyArray<Point> }>
}

interface Previous {
  readonly t: number
  readonly ended: number
  readonly failures: number
  readonly wait: Buckets | undefined
  readonly run: Buckets | undefined
}

export interface Source {
  readonly kind: "pool" | "queue"
  readonly name: string
  readonly pool: Pool | undefined
  /** A queue's store (queues of several stores can share a dashboard). */
  readonly store: JobStore["Service"] | undefined
  readonly history: Array<Point>
  previous: Previous | undefined
  /** A queue's: where its store's latencies read stood at the end of its last interval (the next one's start). */
  since?: LatencyCursor | undefined
  counts: unknown
  detail: Detail | null
}

export const key = (kind: "pool" | "queue", name: string) => `${kind}:${name}`

export interface Config {
  readonly interval: number
  readonly history: number
  /** At most this many jobs per list. */
  readonly listed: number
}

/** Errors shown as text are cut here: a page lists many. */
const MAX_ERROR = 2000

const truncate = (text: string) => text.length > MAX_ERROR ? `${text.slice(0, MAX_ERROR - 3)}...` : text

/**
 * A value as JSON can carry it: a progress value is any value, and a page must not break on one, nor
 * receive megabytes every interval (a large one comes as the start of its JSON text).
 */
export const jsonSafe = (value: unknown): unknown => {
  if (value === undefined) return null
  let text: string | undefined
  try {
    text = JSON.stringify(value)
  } catch {
    text = undefined
  }
  if (text === undefined) return truncate(describe(value))
  return text.length > MAX_ERROR ? truncate(text) : JSON.parse(text)
}

/**
 * A value JSON cannot carry, as text. Not `String` alone: it throws for an object without a prototype
 * (a dictionary holding a bigint) or with a `toString` that throws, and one bad progress value
 * would then hide its whole pool's counts.
 */
export const describe = (value: unknown): string => {
  try {
    return String(value)
  } catch {
    try {
      return inspect(value, { depth: 2, breakLength: Infinity, maxStringLength: MAX_ERROR })
    } catch {
      return "(a value that cannot be shown)"
    }
  }
}

/** Stored progress (JSON text, written by this library): parsed, or shown as it is if it is not JSON. */
const storedProgress = (text: string | null): unknown => {
  if (text === null) return null
  try {
    return jsonSafe(JSON.parse(text))
  } catch {
    return truncate(text)
  }
}

const exitError = (exit: Option.Option<Exit.Exit<unknown, unknown>>): string | null =>
  Option.match(exit, {
    onNone: () => null,
    onSome: (exit) => Exit.isFailure(exit) ? truncate(pretty(exit.cause)) : null
  })

/**
 * `Cause.pretty`, or, when it throws (an error whose `toJSON` or `message` getter throws), each
 * reason described as a value: a job's error must not hide its pool's counts.
 */
const pretty = (cause: Cause.Cause<unknown>): string => {
  try {
    return Cause.pretty(cause)
  } catch {
    return cause.reasons.map((reason) =>
      reason._tag === "Fail" ? `Error: ${describe(reason.error)}` : reason._tag === "Die" ? `Defect: ${describe(reason.defect)}` : "Interrupted"
    ).join("\n")
  }
}

/** A stored Exit (see `internal/durable/exit.ts`), as text, without the task's Schemas. */
export const storedError = (row: JobRow): string | null => {
  if (row.state === "cancelled") return "cancelled"
  if (row.exit === null) return row.state === "dead" ? "its lease expired (its consumer stopped or lost the store)" : null
  try {
    const stored = JSON.parse(row.exit) as { _tag: string; error?: unknown; defect?: { name: string; message: string; stack?: string } }
    switch (stored._tag) {
      case "Failure":
      case "Error":
        return truncate(JSON.stringify(stored.error))
      case "Die":
        return truncate(stored.defect?.stack ?? `${stored.defect?.name}: ${stored.defect?.message}`)
      default:
        return null
    }
  } catch {
    return truncate(row.exit)
  }
}

const poolJob = (job: WorkPool.JobSummary): JobView => ({
  id: String(job.id),
  status: job.status,
  priority: job.priority,
  attempt: job.attempt,
  progress: Option.match(job.progress, { onNone: () => null, onSome: jsonSafe }),
  error: exitError(job.exit)
})

const queueJob = (now: number) => (row: JobRow): JobView => ({
  id: row.id,
  status: row.state === "queued" && row.visibleAt > now ? "delayed" : row.state,
  priority: row.priority,
  attempt: row.attempts,
  progress: storedProgress(row.progress),
  error: row.state === "queued" || row.state === "running" ? null : storedError(row)
})

/**
 * A pool's wait and run histograms: its own, for a pool made by this library (another live pool of
 * the same name may publish series labelled as its are, under other metric attributes or in another
 * registry), none if it publishes none; else (a pool of another make) found in the registry by name.
 */
const histogramsOfPool = (
  pool: Pool,
  name: string,
  snapshot: ReadonlyArray<Metric.Metric.Snapshot>
): { readonly wait: Buckets | undefined; readonly run: Buckets | undefined } => {
  const scheduler = findScheduler(pool)
  if (scheduler !== undefined) {
    const own = histogramsOf(scheduler)
    return { wait: own?.wait.buckets, run: own?.run.buckets }
  }
  return {
    wait: histogramOf(snapshot, "workpool_job_wait_ms", name),
    run: histogramOf(snapshot, "workpool_job_run_ms", name)
  }
}

const histogramOf = (snapshot: ReadonlyArray<Metric.Metric.Snapshot>, id: string, pool: string): Buckets | undefined => {
  for (const metric of snapshot) {
    if (metric.type === "Histogram" && metric.id === id && metric.attributes?.pool === pool) {
      return (metric.state as Metric.HistogramState).buckets
    }
  }
  return undefined
}

const perSecond = (delta: number, millis: number) => millis <= 0 ? 0 : Math.max(0, delta) * 1000 / millis

const round = (n: number | undefined) => n === undefined ? null : Math.round(n * 100) / 100

type Percentiles = Pick<Point, "waitP50" | "waitP99" | "runP50" | "runP99">

const NO_PERCENTILES: Percentiles = { waitP50: null, waitP99: null, runP50: null, runP99: null }

/** A pool's: from its histograms at the interval's start and end. */
const histogramPercentiles = (previous: Previous | undefined, next: Previous): Percentiles => {
  const latency = (q: number, field: "wait" | "run") =>
    previous === undefined || next[field] === undefined ? null : round(quantile(previous[field], next[field]!, q))
  return { waitP50: latency(0.5, "wait"), waitP99: latency(0.99, "wait"), runP50: latency(0.5, "run"), runP99: latency(0.99, "run") }
}

/** A queue's: from the times the store gave of the jobs that ended in the interval. */
const samplePercentiles = (jobs: ReadonlyArray<Latency>): Percentiles => {
  if (jobs.length === 0) return NO_PERCENTILES
  const wait = jobs.map((job) => job.wait).sort((a, b) => a - b)
  const run = jobs.map((job) => job.run).sort((a, b) => a - b)
  return {
    waitP50: round(quantileOf(wait, 0.5)),
    waitP99: round(quantileOf(wait, 0.99)),
    runP50: round(quantileOf(run, 0.5)),
    runP99: round(quantileOf(run, 0.99))
  }
}

const pointOf = (
  source: Source,
  t: number,
  queued: number,
  running: number,
  next: Previous,
  percentiles: Percentiles
): Point => {
  const previous = source.previous
  const millis = previous === undefined ? 0 : t - previous.t
  return {
    t,
    queued,
    running,
    done: round(previous === undefined ? 0 : perSecond(next.ended - previous.ended, millis))!,
    failed: round(previous === undefined ? 0 : perSecond(next.failures - previous.failures, millis))!,
    ...percentiles
  }
}

const push = (source: Source, point: Point, capacity: number) => {
  source.history.push(point)
  if (source.history.length > capacity) source.history.splice(0, source.history.length - capacity)
}

/**
 * A queue's latencies per interval are those of the newest this many jobs that ended in it: a
 * bounded read of the store however busy the queue, and as many as a p99 needs.
 */
export const LATENCY_SAMPLE = 1000

const FAILED: ReadonlyArray<WorkPool.JobStatus> = ["failed", "defect", "timedOut"]

const samplePool = (
  source: Source & { pool: Pool },
  config: Config,
  t: number,
  metrics: ReadonlyArray<Metric.Metric.Snapshot>,
  watched: boolean,
  record: boolean
) =>
  Effect.gen(function*() {
    const stats = yield* source.pool.stats
    const ended = stats.succeeded + stats.failed + stats.defects + stats.timedOut + stats.interrupted + stats.dropped
    const { run, wait } = histogramsOfPool(source.pool, source.name, metrics)
    const next: Previous = { t, ended, failures: stats.failed + stats.defects + stats.timedOut, wait, run }
    if (record) {
      const percentiles = histogramPercentiles(source.previous, next)
      push(source, pointOf(source, t, stats.queued + stats.waiting + stats.retrying, stats.running, next, percentiles), config.history)
      source.previous = next
    }
    source.counts = stats
    if (!watched) {
      source.detail = null
      return
    }
    const list = (status: ReadonlyArray<WorkPool.JobStatus>, limit: number) =>
      Effect.map(Effect.orDie(source.pool.jobs({ status, limit })), (jobs) => jobs.map(poolJob))
    // one page each: the pool summarizes only the jobs shown, however many it has queued
    const running = yield* list(["running"], config.listed)
    const queued = yield* list(["waiting", "queued", "retrying"], config.listed)
    // the newest failures, and pages run oldest first: all of them (as many as the pool retains)
    const failed = yield* list(FAILED, Infinity)
    source.detail = { running, queued, failed: failed.slice(-config.listed).reverse() }
  })

const sampleQueue = (source: Source, store: JobStore["Service"], config: Config, t: number, watched: boolean, record: boolean) =>
  Effect.gen(function*() {
    const counts = yield* store.counts(source.name)
    const next: Previous = {
      t,
      ended: counts.succeeded + counts.dead + counts.cancelled,
      failures: counts.dead,
      wait: undefined,
      run: undefined
    }
    if (record) {
      // the interval's own samples only: one taken for a new client must not take the interval's jobs
      let percentiles = NO_PERCENTILES
      // the first only says where the store stands
      const ended = yield* store.latencies(source.name, source.since, LATENCY_SAMPLE)
      if (source.since !== undefined) percentiles = samplePercentiles(ended.jobs)
      source.since = ended.until
      push(source, pointOf(source, t, counts.waiting + counts.delayed, counts.running, next, percentiles), config.history)
      source.previous = next
    }
    source.counts = counts
    if (!watched) {
      source.detail = null
      return
    }
    const now = yield* store.now
    const list = (state: "running" | "queued" | "dead") =>
      Effect.map(store.list({ queue: source.name, states: [state], limit: config.listed }), (rows) => rows.map(queueJob(now)))
    source.detail = { running: yield* list("running"), queued: yield* list("queued"), failed: yield* list("dead") }
  })

export interface Sampler {
  readonly sources: Map<string, Source>
  /** Each snapshot, as it is taken. */
  readonly hub: PubSub.PubSub<Snapshot>
  /** How many SSE clients are connected: job lists are read only when some are. */
  readonly watchers: Ref.Ref<number>
  /**
   * Takes a sample of every source now. Only the interval's own samples (`record`) add a point to
   * the history: one taken for a new client refreshes the counts and lists, but a rate over a few
   * milliseconds would only make the charts noisy.
   */
  readonly sample: (record: boolean) => Effect.Effect<Snapshot>
  /**
   * Reads one source now (its counts and lists, no point) and publishes a snapshot: a button's,
   * which must not wait for the other sources (a hung store's queues).
   */
  readonly sampleOne: (source: Source) => Effect.Effect<Snapshot>
  /** The latest snapshot with every point of every source's history. */
  readonly full: Effect.Effect<Snapshot>
}

const viewOf = (source: Source, points: ReadonlyArray<Point>) => ({
  kind: source.kind,
  name: source.name,
  counts: source.counts,
  detail: source.detail,
  points
})

/** How long a source may take to answer one sample (its stats, a store's queries), or a button. */
export const ANSWER_WITHIN = "5 seconds"

const NO_ANSWER = `no answer within ${ANSWER_WITHIN}: the store (or the pool) is not answering`

/**
 * How many of one store's queues are read at once: enough that a slow store's reading is not the
 * sum of its queues' round trips, few enough that 10,000 queues do not open 10,000 store calls.
 */
export const READ_CONCURRENCY = 8

/**
 * The sources read together: a store's queues share its connections (and hang together), a pool
 * is read apart. Each group is read on its own, so a hung store holds up none of the others.
 */
const groupsOf = (sources: Iterable<Source>): ReadonlyArray<ReadonlyArray<Source>> => {
  const groups = new Map<unknown, Array<Source>>()
  for (const source of sources) {
    const by = source.pool ?? source.store
    const group = groups.get(by)
    if (group === undefined) groups.set(by, [source])
    else group.push(source)
  }
  return Array.from(groups.values())
}

export const make = (config: Config): Effect.Effect<Sampler> =>
  Effect.gen(function*() {
    const sources = new Map<string, Source>()
    // a slow client loses old snapshots, not memory: each one holds only the newest few
    const hub = yield* PubSub.sliding<Snapshot>(4)
    const watchers = yield* Ref.make(0)
    let last = 0
    /** One source's reading, bounded: a store that fails or never answers shows it as its counts. */
    const read = (source: Source, t: number, metrics: ReadonlyArray<Metric.Metric.Snapshot>, watched: boolean, record: boolean) => {
      const taken = source.pool !== undefined
        ? samplePool(source as Source & { pool: Pool }, config, t, metrics, watched, record)
        : sampleQueue(source, source.store!, config, t, watched, record)
      const answered = Effect.timeoutOrElse(Effect.as(taken, true), {
        duration: ANSWER_WITHIN,
        orElse: () =>
          Effect.sync(() => {
            source.counts = { error: NO_ANSWER }
            return false
          })
      })
      return Effect.catchCause(answered, (cause) =>
        Effect.sync(() => {
          source.counts = { error: truncate(Cause.pretty(cause)) }
          return true
        }))
    }
    /**
     * A group's sources, a few at a time. Once one did not answer, the group's sources not yet
     * read are shown as not answering without waiting their 5 s each: they share its store, and
     * 20 queues of a hung store read one after another made a reading take 100 s.
     */
    const readGroup = (group: ReadonlyArray<Source>, t: number, metrics: ReadonlyArray<Metric.Metric.Snapshot>, watched: boolean, record: boolean) => {
      let hung = false
      const one = (source: Source) =>
        Effect.suspend(() =>
          hung
            ? Effect.sync(() => void (source.counts = { error: NO_ANSWER }))
            : Effect.map(read(source, t, metrics, watched, record), (answered) => void (hung ||= !answered))
        )
      return Effect.forEach(group, one, { concurrency: READ_CONCURRENCY, discard: true })
    }
    const publish = (t: number, record: boolean) => {
      const snapshot: Snapshot = {
        t,
        interval: config.interval,
        history: config.history,
        sources: Array.from(sources.values(), (source) => viewOf(source, record ? source.history.slice(-1) : []))
      }
      return Effect.as(PubSub.publish(hub, snapshot), snapshot)
    }
    const sample = (record: boolean) => Effect.gen(function*() {
      const t = yield* Clock.currentTimeMillis
      last = t
      const watched = (yield* Ref.get(watchers)) > 0
      const metrics = yield* Metric.snapshot
      yield* Effect.forEach(groupsOf(sources.values()), (group) => readGroup(group, t, metrics, watched, record), {
        concurrency: "unbounded",
        discard: true
      })
      return yield* publish(t, record)
    })
    const sampleOne = (source: Source) => Effect.gen(function*() {
      const t = yield* Clock.currentTimeMillis
      last = Math.max(last, t)
      const watched = (yield* Ref.get(watchers)) > 0
      yield* read(source, t, yield* Metric.snapshot, watched, false)
      return yield* publish(t, false)
    })
    const full = Effect.sync((): Snapshot => ({
      t: last,
      interval: config.interval,
      history: config.history,
      sources: Array.from(sources.values(), (source) => viewOf(source, source.history.slice()))
    }))
    return { sources, hub, watchers, sample, sampleOne, full }
  })
