/**
 * A pool's Effect `Metric`s. Everything the scheduler already counts (endings, queue depth, running
 * jobs, workers, utilization) is read when the metrics are read (`Metric.registerUnsafe`), so it
 * costs a job nothing; only wait and run times other than 0 ms are recorded per job, into histograms
 * kept here (a few array increments, no registry lookup), and those of 0 ms are what the scheduler
 * counted less those (see `Observer`).
 *
 * Every series carries the attribute `pool` (the pool's name) and those of
 * `Metric.CurrentMetricAttributes` where the pool was made but for the pool's own (`pool`, `ending`,
 * `priority`: Effect lets the context's win, and two pools' series, or a pool's six endings, would be
 * one series), and lives in that context's
 * `Metric.MetricRegistry` until the pool's scope closes. Two live pools with the same name and
 * attributes in one registry would overwrite each other's series (the registry keeps one per key,
 * and the first to close would remove the other's): `register` refuses the second.
 *
 * @internal
 */
import { Context, Metric } from "effect"
import * as RateLimits from "./rateLimit.ts"
import type { Job, Observer, Scheduler } from "./scheduler.ts"

/** Milliseconds: 1, 2, 4, ... 65,536 (about a minute), then Infinity. */
export const BOUNDARIES: ReadonlyArray<number> = Metric.exponentialBoundaries({ start: 1, factor: 2, count: 18 })

/** The last finite boundary; the bucket after it is Infinity's. */
const OVERFLOW = BOUNDARIES.length - 1
const LAST = BOUNDARIES[OVERFLOW - 1]!

/**
 * A histogram's state, counted here and read by `Metric`'s snapshot. Only times other than 0 ms are
 * recorded (a negative one too: a clock of the caller's may go back, and it lands in the first
 * bucket as before): `count` is how many times there were in all (recorded or not), and the rest
 * were 0 ms.
 */
class Histogram {
  private readonly count: () => number
  private readonly counts = new Float64Array(BOUNDARIES.length)
  private others = 0
  private sum = 0
  private min = Number.MAX_VALUE
  private max = -Number.MAX_VALUE

  constructor(count: () => number) {
    this.count = count
  }

  record(millis: number): void {
    // boundaries double: the bucket is the bit length of the whole milliseconds (0 and 1 share ≤ 1)
    const bucket = millis <= 1 ? 0 : millis > LAST ? OVERFLOW : 32 - Math.clz32(Math.ceil(millis) - 1)
    this.counts[bucket]!++
    this.others++
    this.sum += millis
    if (millis < this.min) this.min = millis
    if (millis > this.max) this.max = millis
  }

  state(): Metric.HistogramState {
    const count = this.count()
    const buckets: Array<[number, number]> = []
    let cumulated = count - this.others
    for (let i = 0; i < BOUNDARIES.length; i++) {
      cumulated += this.counts[i]!
      buckets.push([BOUNDARIES[i]!, cumulated])
    }
    const zeros = count > this.others
    return {
      buckets,
      count,
      min: zeros ? Math.min(0, this.min) : this.min,
      max: zeros ? Math.max(0, this.max) : this.max,
      sum: this.sum
    }
  }
}

/**
 * The wait and run histograms of the pool whose scheduler is `scheduler`, as its series show them;
 * `undefined` if it publishes none (`metrics: false`).
 */
export const histogramsOf = (
  scheduler: Scheduler<any>
): { readonly wait: Metric.HistogramState; readonly run: Metric.HistogramState } | undefined => {
  const observer = scheduler.observer
  return observer instanceof PoolMetrics ? { wait: observer.wait.state(), run: observer.run.state() } : undefined
}

/** Records the wait and run time of every attempt of `scheduler`'s: its `Observer`. */
export class PoolMetrics implements Observer {
  /** Every attempt started waited. */
  readonly wait: Histogram
  /** Every attempt started and no longer running (`busy`) ran. */
  readonly run: Histogram
  constructor(scheduler: Scheduler<any>) {
    this.wait = new Histogram(() => scheduler.started)
    this.run = new Histogram(() => scheduler.started - scheduler.busy)
  }
  started(_job: Job, waitMillis: number): void {
    this.wait.record(waitMillis)
  }
  stopped(_job: Job, runMillis: number): void {
    this.run.record(runMillis)
  }
}

const ENDED = [
  ["succeeded", "succeeded"],
  ["failed", "failed"],
  ["defect", "defects"],
  ["timedOut", "timedOut"],
  ["interrupted", "interrupted"],
  ["dropped", "dropped"]
] as const

/** At most this many `workpool_jobs_queued_by_priority` series per pool. */
export const MAX_PRIORITY_SERIES = 32

/** The attributes the pool's series set themselves: the context's of the same name are left out. */
const OWN: ReadonlySet<string> = new Set(["pool", "ending", "priority"])

const hooks = <S>(get: () => S): Metric.Metric.Hooks<any, S> => ({ get, update: () => {}, modify: () => {} })

/** Per registry, the pools whose series are in it, by name and extra attributes. */
const live = new WeakMap<Metric.MetricRegistry, Set<string>>()

/**
 * Registers the pool's series in the registry of `context`; returns the function that removes them,
 * or `undefined` if a live pool of the same name (and extra attributes) has series there.
 */
export const register = (
  name: string,
  scheduler: Scheduler<any>,
  recorded: PoolMetrics,
  context: Context.Context<never>
): (() => void) | undefined => {
  const registry = Context.get(context, Metric.MetricRegistry)
  const extra = Object.entries(Context.get(context, Metric.CurrentMetricAttributes))
    .filter(([key]) => !OWN.has(key))
    .sort(([a], [b]) => a < b ? -1 : 1)
  // the context's attributes, less the pool's own: Effect merges them over a series' own attributes
  const labelled = Context.add(context, Metric.CurrentMetricAttributes, Object.fromEntries(extra))
  const key = JSON.stringify([name, extra])
  let names = live.get(registry)
  if (names === undefined) live.set(registry, names = new Set())
  if (names.has(key)) return undefined
  names.add(key)
  const pool = { pool: name }
  const registrations: Array<Metric.Registration> = []
  const counter = (id: string, description: string, attributes: Metric.Metric.AttributeSet, get: () => number) =>
    registrations.push(Metric.registerUnsafe(
      Metric.counter(id, { description, attributes: { ...pool, ...attributes } }),
      labelled,
      hooks(() => ({ count: get(), incremental: true }))
    ))
  const gauge = (id: string, description: string, get: () => number) =>
    registrations.push(Metric.registerUnsafe(
      Metric.gauge(id, { description, attributes: pool }),
      labelled,
      hooks(() => ({ value: get() }))
    ))
  const histogram = (id: string, description: string, state: Histogram) =>
    registrations.push(Metric.registerUnsafe(
      Metric.histogram(id, { description, attributes: pool, boundaries: BOUNDARIES }),
      labelled,
      hooks(() => state.state())
    ))
  // admitted: `submitted` less the submitters still waiting for room, whom a shutdown refuses (moves
  // to `rejected`); `submitted` itself would go down then, which a counter must never do
  counter("workpool_jobs_submitted", "Jobs admitted to the pool", {}, () => scheduler.submitted - scheduler.waitingCount)
  counter("workpool_jobs_rejected", "Submissions refused before admission (QueueFull, PoolShutdown)", {}, () =>
    scheduler.rejected)
  for (const [ending, field] of ENDED) {
    counter("workpool_jobs_ended", "Jobs that ended, by ending", { ending }, () => scheduler.ended[field])
  }
  counter("workpool_jobs_started", "Attempts started", {}, () => scheduler.started)
  counter("workpool_jobs_retried", "Failed attempts that were retried", {}, () => scheduler.retried)
  // A series per priority, registered when a read finds that priority queued (a job pays nothing);
  // new ones show from the next read. Capped: priorities are any numbers, series are not free.
  const priorities = new Set<number>()
  const byPriority = () => {
    for (const { priority } of scheduler.queuedByPriority()) {
      if (priorities.size >= MAX_PRIORITY_SERIES) return
      if (priorities.has(priority)) continue
      priorities.add(priority)
      registrations.push(Metric.registerUnsafe(
        Metric.gauge("workpool_jobs_queued_by_priority", {
          description: "Jobs in the queue, by priority",
          attributes: { ...pool, priority: String(priority) }
        }),
        labelled,
        hooks(() => ({ value: scheduler.queuedOf(priority) }))
      ))
    }
  }
  gauge("workpool_jobs_queued", "Jobs in the queue", () => {
    const queued = scheduler.queuedCount()
    if (queued > 0 && priorities.size < MAX_PRIORITY_SERIES) byPriority()
    return queued
  })
  gauge("workpool_jobs_waiting", "Submitters waiting for room in the queue", () => scheduler.waitingCount)
  gauge("workpool_jobs_running", "Jobs running (including timed-out ones still stopping)", () => scheduler.busy)
  gauge("workpool_jobs_retrying", "Jobs waiting for a retry", () => scheduler.held.size)
  gauge("workpool_jobs_rate_limited", "Queued jobs that free workers would start now but for the rate limit (a durable consumer: its free slots the limit keeps idle)", () =>
    RateLimits.held(scheduler))
  gauge("workpool_workers", "Live workers", () => scheduler.workers.size)
  gauge("workpool_utilization", "Busy worker time over available worker time since the pool started, 0 to 1", () =>
    scheduler.utilization())
  histogram("workpool_job_wait_ms", "Time from submission (or return for a retry) to start, per attempt", recorded.wait)
  histogram("workpool_job_run_ms", "Time from start to stop, per attempt", recorded.run)
  return () => {
    names.delete(key)
    for (const registration of registrations) registration.remove()
  }
}
