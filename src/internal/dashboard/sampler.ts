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
 * Many sources (more than `ALL_SHOWN`, a queue per tenant): reading each in full every interval
 * took 5 s for 10,000 queues, and a page of 10,000 cards was unusable. Then only the sources a page
 * shows (those an open page selected, and the `TOP` by backlog) are read in full and kept in
 * charts; the others' counts only, `SWEEP` of them per interval in turn, for the overview (a
 * table a page reads a window of, sorted and filtered here). A source no page shows keeps no history.
 *
 * @internal
 */
import { Cause, Clock, Effect, Exit, Metric, Option, PubSub, Ref } from "effect"
import { inspect } from "node:util"
import type * as WorkPool from "../../WorkPool.ts"
import { expiredAt, type JobRow, type JobStore, type Latency, type LatencyCursor } from "../store/model.ts"
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
  /** A durable job's: how many times its handlers snoozed it (`JobQueue.snooze`), attempts not spent. */
  readonly snoozes?: number | undefined
  /** A durable job's dedup key (`EnqueueOptions.dedupKey`), or null. */
  readonly dedupKey?: string | null | undefined
  /** A durable job's key under its queue's per-key cap (`EnqueueOptions.group`), or null. */
  readonly group?: string | null | undefined
  /** A durable job's expiry (`EnqueueOptions.expireIn`, store ms) while it waits unstarted, or null. */
  readonly expiresAt?: number | null | undefined
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

/**
 * What an SSE client receives each interval (`history` only in the first message). With more than
 * `ALL_SHOWN` sources (`overview`), `sources` holds only those shown (the client's selection and
 * `top`); the others are in the overview (`GET /api/overview`).
 */
export interface Snapshot {
  readonly t: number
  readonly interval: number
  /** How many points a chart keeps. */
  readonly history: number
  /** The dashboard refuses every change (its `readOnly` option): the page shows no button. */
  readonly readOnly: boolean
  /** How many sources the dashboard has. */
  readonly total: number
  /** Whether it has too many to show each (more than `ALL_SHOWN`): a page then shows an overview. */
  readonly overview: boolean
  /** With `overview`: the keys (`kind:name`) of the `TOP` sources by backlog, shown on every page. */
  readonly top: ReadonlyArray<string>
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
  /** When `counts` were read (the overview's sources are read in turn, not every interval). */
  at?: number | undefined
  detail: Detail | null
}

export const key = (kind: "pool" | "queue", name: string) => `${kind}:${name}`

export interface Config {
  readonly interval: number
  readonly history: number
  /** The dashboard's `readOnly`: told to the page, which then shows no button. */
  readonly readOnly?: boolean | undefined
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
  const expired = expiredAt(row)
  if (expired !== undefined) return `expired unstarted at ${new Date(expired).toISOString()}`
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
  status: row.state === "queued" && row.visibleAt > now ? "delayed" : expiredAt(row) !== undefined ? "expired" : row.state,
  priority: row.priority,
  attempt: row.attempts,
  progress: storedProgress(row.progress),
  error: row.state === "queued" || row.state === "running" ? null : storedError(row),
  snoozes: row.snoozes ?? 0,
  dedupKey: row.dedupKey,
  // '': an ungrouped job of a queue with a per-key cap, as the SQL stores keep it (JobInfo.group's rule)
  group: row.group == null || row.group === "" ? null : row.group,
  expiresAt: row.state === "queued" && row.expireAt != null ? row.expireAt : null
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
    const list = (state: "running" | "queued" | "dead" | "cancelled", expired = false) =>
      Effect.map(store.list({ queue: source.name, states: [state], limit: config.listed, expired }), (rows) => rows.map(queueJob(now)))
    // the expired jobs beside the dead letters (both can be redriven), picked out of the cancelled
    // ones by the store, before its limit: a page of cancelled jobs older than them hid them all
    const dead = yield* list("dead")
    const expired = dead.length >= config.listed ? [] : yield* list("cancelled", true)
    source.detail = { running: yield* list("running"), queued: yield* list("queued"), failed: [...dead, ...expired].slice(0, config.listed) }
  })

/**
 * Up to this many sources, each is read in full every interval and shown on every page, as a card
 * with its charts and lists; past it the dashboard shows an overview (see the module's comment).
 */
export const ALL_SHOWN = 20

/** Past `ALL_SHOWN`: the sources with the largest backlog, read in full and shown on every page. */
export const TOP = 5

/** Past `ALL_SHOWN`: how many of the sources no page shows have their counts read per interval, in turn. */
export const SWEEP = 500

/** How many sources one page may select (its stream's `show`): each is read in full every interval. */
export const MAX_SELECTED = 20

/**
 * How many distinct sources the open pages may select together: each page's `MAX_SELECTED` alone
 * left N pages reading 20·N sources in full every interval.
 */
export const MAX_SELECTED_ACROSS = 100

/** The overview's orders: each source's number to sort by, largest first. */
export const ORDERS = ["backlog", "failed", "running", "name"] as const
export type Order = typeof ORDERS[number]

type Counted = Readonly<Record<string, unknown>> | undefined

const num = (value: unknown) => typeof value === "number" ? value : 0

/** A source's number for an order, from its latest counts; undefined while it has none (unread, or failed). */
const measure = (source: Source, order: Exclude<Order, "name">): number | undefined => {
  const c = source.counts as Counted
  if (c === undefined || c === null || "error" in c) return undefined
  if (order === "running") return num(c.running)
  if (source.kind === "pool") {
    return order === "backlog" ? num(c.queued) + num(c.waiting) + num(c.retrying) : num(c.failed) + num(c.defects) + num(c.timedOut)
  }
  return order === "backlog" ? num(c.waiting) + num(c.delayed) : num(c.dead)
}

export interface OverviewQuery {
  /** Only sources whose name holds it (case-insensitive). */
  readonly filter: string
  readonly order: Order
  readonly offset: number
  readonly limit: number
}

/** A window of the overview: every source, filtered and sorted, without history or lists. */
export interface Overview {
  readonly t: number
  readonly total: number
  /** How many sources match the filter. */
  readonly matched: number
  readonly offset: number
  readonly rows: ReadonlyArray<{
    readonly kind: "pool" | "queue"
    readonly name: string
    readonly counts: unknown
    /** When its counts were read; null: not yet. */
    readonly at: number | null
  }>
}

export interface Sampler {
  readonly sources: Map<string, Source>
  /** Each snapshot, as it is taken. */
  readonly hub: PubSub.PubSub<Snapshot>
  /** How many SSE clients are connected: job lists are read only when some are. */
  readonly watchers: Ref.Ref<number>
  /**
   * The sources the open pages selected (by key), with how many pages did: read in full every
   * interval. Only past `ALL_SHOWN`; below it every source is.
   */
  readonly selected: Map<string, number>
  /**
   * Takes a sample now: every source, or past `ALL_SHOWN` the shown ones (and, for the interval's
   * own, `SWEEP` others' counts). Only the interval's own samples (`record`) add a point to the
   * history: one taken for a new client refreshes the counts and lists, but a rate over a few
   * milliseconds would only make the charts noisy.
   */
  readonly sample: (record: boolean) => Effect.Effect<Snapshot>
  /**
   * Reads one source now (its counts and lists, no point) and publishes a snapshot: a button's,
   * which must not wait for the other sources (a hung store's queues).
   */
  readonly sampleOne: (source: Source) => Effect.Effect<Snapshot>
  /** The latest snapshot with every source, each with every point of its history (the JSON API's). */
  readonly full: Effect.Effect<Snapshot>
  /** The latest snapshot as a page that selected `selection` receives it, with every point of its history. */
  readonly fullFor: (selection: ReadonlySet<string>) => Effect.Effect<Snapshot>
  /** The sources of `snapshot` a page that selected `selection` is sent; the snapshot itself below `ALL_SHOWN`. */
  readonly forPage: (snapshot: Snapshot, selection: ReadonlySet<string>) => Snapshot
  readonly overview: (query: OverviewQuery) => Effect.Effect<Overview>
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

/** How a source is read in a sample: in full (its point, if `record`; lists, if `watched`), or its counts only. */
interface Reading {
  readonly watched: boolean
  readonly record: boolean
}

const COUNTS_ONLY: Reading = { watched: false, record: false }

/** The `n` sources with the largest backlog (any, not none: a quiet dashboard shows no card). */
const topOf = (sources: Iterable<Source>, n: number): Array<string> => {
  const best: Array<{ readonly key: string; readonly backlog: number }> = []
  for (const source of sources) {
    const backlog = measure(source, "backlog") ?? 0
    if (backlog <= 0 || (best.length === n && backlog <= best[n - 1]!.backlog)) continue
    best.push({ key: key(source.kind, source.name), backlog })
    best.sort((a, b) => b.backlog - a.backlog)
    if (best.length > n) best.pop()
  }
  return best.map((b) => b.key)
}

/** Sorted largest first, unread sources last, then by name (a stable order while counts tie). */
const compareBy = (order: Order) => (a: Source, b: Source): number => {
  if (order !== "name") {
    const x = measure(a, order) ?? -1
    const y = measure(b, order) ?? -1
    if (x !== y) return y - x
  }
  return a.name < b.name ? -1 : a.name > b.name ? 1 : a.kind < b.kind ? -1 : a.kind > b.kind ? 1 : 0
}

/** A source no page shows keeps no history: memory stays bounded by the shown ones, not the tenants. */
const forget = (source: Source) => {
  if (source.history.length === 0 && source.previous === undefined) return
  source.history.length = 0
  source.previous = undefined
  source.since = undefined
  source.detail = null
}

export const make = (config: Config): Effect.Effect<Sampler> =>
  Effect.gen(function*() {
    const sources = new Map<string, Source>()
    // a slow client loses old snapshots, not memory: each one holds only the newest few
    const hub = yield* PubSub.sliding<Snapshot>(4)
    const watchers = yield* Ref.make(0)
    const selected = new Map<string, number>()
    let last = 0
    let top: ReadonlyArray<string> = []
    /** Where the next interval's sweep of the unshown sources' counts starts. */
    let sweepAt = 0
    const many = () => sources.size > ALL_SHOWN
    /** The sources read in full: every one, or past `ALL_SHOWN` the selected and the top ones. */
    const shown = (): Array<Source> => {
      if (!many()) return Array.from(sources.values())
      const keys = new Set([...top, ...selected.keys()])
      return Array.from(keys, (k) => sources.get(k)).filter((s): s is Source => s !== undefined)
    }
    /** `SWEEP` of the sources not shown, in turn, so that each one's counts are read every so often. */
    const sweep = (hot: ReadonlySet<Source>): Array<Source> => {
      const all = Array.from(sources.values())
      const taken: Array<Source> = []
      let i = 0
      for (; i < all.length && taken.length < SWEEP; i++) {
        const source = all[(sweepAt + i) % all.length]!
        if (hot.has(source)) continue
        forget(source)
        taken.push(source)
      }
      sweepAt = all.length === 0 ? 0 : (sweepAt + i) % all.length
      return taken
    }
    /** One source's reading, bounded: a store that fails or never answers shows it as its counts. */
    const read = (source: Source, t: number, metrics: ReadonlyArray<Metric.Metric.Snapshot>, { record, watched }: Reading) => {
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
        })).pipe(Effect.tap(() => Effect.sync(() => void (source.at = t))))
    }
    /**
     * A group's sources, a few at a time. Once one did not answer, the group's sources not yet
     * read are shown as not answering without waiting their 5 s each: they share its store, and
     * 20 queues of a hung store read one after another made a reading take 100 s.
     */
    const readGroup = (
      group: ReadonlyArray<Source>,
      t: number,
      metrics: ReadonlyArray<Metric.Metric.Snapshot>,
      how: (source: Source) => Reading
    ) => {
      let hung = false
      const one = (source: Source) =>
        Effect.suspend(() =>
          hung
            ? Effect.sync(() => void (source.counts = { error: NO_ANSWER }))
            : Effect.map(read(source, t, metrics, how(source)), (answered) => void (hung ||= !answered))
        )
      return Effect.forEach(group, one, { concurrency: READ_CONCURRENCY, discard: true })
    }
    const snapshotOf = (t: number, of: ReadonlyArray<Source>, points: (source: Source) => ReadonlyArray<Point>): Snapshot => ({
      t,
      interval: config.interval,
      history: config.history,
      readOnly: config.readOnly === true,
      total: sources.size,
      overview: many(),
      top: many() ? top : [],
      sources: of.map((source) => viewOf(source, points(source)))
    })
    const publish = (t: number, record: boolean) => {
      const snapshot = snapshotOf(t, shown(), (source) => record ? source.history.slice(-1) : [])
      return Effect.as(PubSub.publish(hub, snapshot), snapshot)
    }
    const sample = (record: boolean) => Effect.gen(function*() {
      const t = yield* Clock.currentTimeMillis
      last = t
      const watched = (yield* Ref.get(watchers)) > 0
      const metrics = yield* Metric.snapshot
      // the top by the backlogs read so far: its sources are read in full from this interval on
      if (record) top = many() ? topOf(sources.values(), TOP) : []
      const hot = new Set(shown())
      const cold = record && many() ? sweep(hot) : []
      const full: Reading = { watched, record }
      yield* Effect.forEach(groupsOf([...hot, ...cold]), (group) => readGroup(group, t, metrics, (s) => hot.has(s) ? full : COUNTS_ONLY), {
        concurrency: "unbounded",
        discard: true
      })
      return yield* publish(t, record)
    })
    const sampleOne = (source: Source) => Effect.gen(function*() {
      const t = yield* Clock.currentTimeMillis
      last = Math.max(last, t)
      const watched = (yield* Ref.get(watchers)) > 0
      // a source no page shows: its counts only (a button of the overview's, or the API's)
      const reading = shown().includes(source) ? { watched, record: false } : COUNTS_ONLY
      yield* read(source, t, yield* Metric.snapshot, reading)
      return yield* publish(t, false)
    })
    const full = Effect.sync(() => snapshotOf(last, Array.from(sources.values()), (source) => source.history.slice()))
    const forPage = (snapshot: Snapshot, selection: ReadonlySet<string>): Snapshot => {
      if (!snapshot.overview) return snapshot
      const keys = new Set([...snapshot.top, ...selection])
      return { ...snapshot, sources: snapshot.sources.filter((s) => keys.has(key(s.kind, s.name))) }
    }
    const fullFor = (selection: ReadonlySet<string>) =>
      Effect.sync(() => forPage(snapshotOf(last, shown(), (source) => source.history.slice()), selection))
    const overview = (query: OverviewQuery) =>
      Effect.sync((): Overview => {
        const needle = query.filter.toLowerCase()
        const matching = Array.from(sources.values()).filter((s) => needle === "" || s.name.toLowerCase().includes(needle))
        matching.sort(compareBy(query.order))
        return {
          t: last,
          total: sources.size,
          matched: matching.length,
          offset: query.offset,
          rows: matching.slice(query.offset, query.offset + query.limit).map((s) => ({
            kind: s.kind,
            name: s.name,
            counts: s.counts,
            at: s.at ?? null
          }))
        }
      })
    return { sources, hub, watchers, selected, sample, sampleOne, full, fullFor, forPage, overview }
  })
