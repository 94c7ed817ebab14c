/**
 * What every scenario and contestant shares: the shapes the runner and the child agree on, the
 * checksum (`Tally`), a seeded PRNG, and a helper that builds one of our pools outside the timed
 * part.
 */
import { Effect, Exit, Scope } from "effect"
import { setTimeout as sleepPromise } from "node:timers/promises"
import { WorkPool } from "../src/index.ts"

/** How big one run is. Scenarios read the fields they need. */
export interface Size {
  readonly jobs: number
  /** Scenario 2 and 7: milliseconds each job sleeps. */
  readonly sleepMs?: number
}

/** What the timed part reports back. */
export interface RunOutcome {
  /** Whatever the contestant observed (sum of results); `Tally.verify` checks it. */
  readonly observed: number
  /** Set when the contestant times a phase itself (scenario 3 times only the drain). */
  readonly ms?: number
  readonly heapBytesPerJob?: number
}

/** One prepared run: set up (untimed), then `run` (timed), then `teardown` (untimed). */
export interface Trial {
  readonly run: () => Promise<RunOutcome>
  readonly teardown?: () => Promise<void>
}

export interface Contestant {
  readonly name: string
  /** The package whose version the report shows ("effect-workpool" for ours). */
  readonly library: string
  /** Anchors are the yardsticks: every row gets a ratio to each anchor measured in the same run. */
  readonly anchor?: boolean
  readonly setup: (size: Size, tally: Tally) => Promise<Trial>
}

/** Which number of a measurement a table shows, and which way is better. */
export type Metric = "jobsPerSec" | "ms" | "heapBytesPerJob" | "drainJobsPerSec"

export const metricInfo: Record<Metric, { readonly label: string; readonly higherIsBetter: boolean; readonly digits: number }> = {
  jobsPerSec: { label: "jobs/s", higherIsBetter: true, digits: 0 },
  ms: { label: "wall ms", higherIsBetter: false, digits: 1 },
  heapBytesPerJob: { label: "heap bytes per queued job", higherIsBetter: false, digits: 0 },
  drainJobsPerSec: { label: "drain jobs/s", higherIsBetter: true, digits: 0 }
}

/**
 * A target of the issue: `value(contestant) / value(anchor)` (or the contestant's own value when
 * there is no anchor) must be at least / at most `bound`, on medians of the same run.
 */
export interface Target {
  readonly label: string
  readonly metric: Metric
  readonly contestant: string
  readonly anchor?: string
  readonly atLeast?: number
  readonly atMost?: number
}

export interface Scenario {
  readonly id: string
  readonly title: string
  readonly description: string
  readonly sizes: { readonly full: Size; readonly quick: Size; readonly warmup: Size }
  /** Metrics shown, the first one is the headline (and the chart). */
  readonly metrics: ReadonlyArray<Metric>
  readonly contestants: ReadonlyArray<Contestant>
  readonly targets: ReadonlyArray<Target>
  /** Extra lines for the report, written after the table. */
  readonly notes?: ReadonlyArray<string>
  /** Extra child flags (scenario 3 needs a large heap). */
  readonly nodeFlags?: ReadonlyArray<string>
  /** The checksum of one run; default `new Tally(size.jobs)`. */
  readonly tally?: (size: Size) => Tally
  /** Extra report lines computed from the medians of this run (scenario 7's speedup). */
  readonly summary?: (median: (contestant: string, metric: Metric) => number) => ReadonlyArray<string>
  /** A scenario that cannot be measured yet (the thread scenarios): listed, not run. */
  readonly pending?: string
}

/** A cheap integer hash, so that a job's result depends on which job it was. */
export const work = (i: number): number => Math.imul(i ^ 0x5bd1e995, 0x27d4eb2d) >>> 0

/**
 * The checksum. Every job calls `job(i)` exactly once: it counts the run of job `i` and returns
 * `work(i)`. `verify` then checks that each job ran once (none lost, none duplicated) and that the
 * results the contestant handed back add up to the expected sum (no result lost or mixed up).
 * Given the jobs' priorities it also keeps the start order and checks it: non-increasing priority,
 * FIFO (increasing job number) within a priority.
 */
export class Tally {
  readonly n: number
  readonly ran: Uint8Array
  readonly priorities: ArrayLike<number> | undefined
  readonly order: Int32Array | undefined
  private started = 0
  constructor(n: number, priorities?: ArrayLike<number>) {
    this.n = n
    this.ran = new Uint8Array(n)
    this.priorities = priorities
    this.order = priorities === undefined ? undefined : new Int32Array(n)
  }

  readonly job = (i: number): number => {
    this.ran[i]!++
    if (this.order !== undefined) this.order[this.started] = i
    this.started++
    return work(i)
  }

  verify(observed: number): { ok: boolean; why?: string } {
    if (this.started !== this.n) return { ok: false, why: `${this.started} job runs for ${this.n} jobs` }
    let expected = 0
    for (let i = 0; i < this.n; i++) {
      if (this.ran[i] !== 1) return { ok: false, why: `job ${i} ran ${this.ran[i]} times` }
      expected += work(i)
    }
    if (observed !== expected) return { ok: false, why: `result sum ${observed}, expected ${expected}` }
    const { order, priorities } = this
    if (order !== undefined && priorities !== undefined) {
      for (let k = 1; k < this.n; k++) {
        const a = order[k - 1]!
        const b = order[k]!
        const pa = priorities[a]!
        const pb = priorities[b]!
        if (pb > pa || (pb === pa && b < a)) {
          return { ok: false, why: `start ${k}: job ${b} (priority ${pb}) after job ${a} (priority ${pa})` }
        }
      }
    }
    return { ok: true }
  }
}

/** mulberry32: a tiny seeded PRNG, so every contestant gets the same priority sequence. */
export const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = seed
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

export const sleep = (ms: number): Promise<void> => sleepPromise(ms)

/** A promise with its resolver outside: the gate that blocks the first job in scenario 3. */
export const gate = (): { promise: Promise<void>; open: () => void } => {
  let open!: () => void
  const promise = new Promise<void>((resolve) => (open = resolve))
  return { promise, open }
}

/**
 * Makes one of our pools in a fresh scope, outside the timed part; `teardown` closes the scope
 * (graceful shutdown), also outside.
 */
export const makePool = async (
  options: WorkPool.Options
): Promise<{ pool: WorkPool.WorkPool; teardown: () => Promise<void> }> => {
  const scope = Effect.runSync(Scope.make())
  const pool = await Effect.runPromise(WorkPool.make(options).pipe(Scope.provide(scope)))
  return { pool, teardown: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

/** The heap after a full collection (the child runs with --expose-gc). */
export const settledHeap = (): number => {
  const gc = globalThis.gc
  if (gc === undefined) throw new Error("run the child with --expose-gc")
  gc()
  gc()
  return process.memoryUsage().heapUsed
}
