/**
 * What every scenario and contestant shares: the shapes the runner and the child agree on, the
 * checksum (`Tally`), a seeded PRNG, and a helper that builds one of our pools outside the timed
 * part.
 */
import { Effect, Exit, Scope } from "effect"
import { setTimeout as sleepPromise } from "node:timers/promises"
import { WorkPool } from "../src/index.ts"
import type { Tally } from "./tally.ts"

// The checksums live in tally.ts, which imports nothing: a child whose contestant needs no Effect
// (the thread scenarios' anchors) then does not load it.
export { ResultTally, Tally, work } from "./tally.ts"

/** How big one run is. Scenarios read the fields they need. */
export interface Size {
  readonly jobs: number
  /** Scenario 2 and 7: milliseconds each job sleeps. */
  readonly sleepMs?: number
  /** Scenario 8: enqueue-to-start latencies measured after the drain. */
  readonly samples?: number
}

/** What the timed part reports back. */
export interface RunOutcome {
  /** Whatever the contestant observed (sum of results); `Tally.verify` checks it. */
  readonly observed: number
  /** Set when the contestant times a phase itself (scenario 3 times only the drain). */
  readonly ms?: number
  readonly heapBytesPerJob?: number
  /** Scenario 9: the process's resident memory grown per thread started. */
  readonly rssBytesPerThread?: number
  /** Other numbers of the run, by metric (scenario 8's enqueue rate and latency percentiles). */
  readonly extra?: Partial<Record<Metric, number>>
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
export type Metric =
  | "jobsPerSec"
  | "ms"
  | "heapBytesPerJob"
  | "drainJobsPerSec"
  | "usPerJob"
  | "enqueueJobsPerSec"
  | "p50Ms"
  | "p99Ms"
  | "rssBytesPerThread"
  | "peakHeapMB"
  | "cpuUsPerJob"
  | "cpuMsPerThread"

export const metricInfo: Record<Metric, { readonly label: string; readonly higherIsBetter: boolean; readonly digits: number }> = {
  jobsPerSec: { label: "jobs/s", higherIsBetter: true, digits: 0 },
  ms: { label: "wall ms", higherIsBetter: false, digits: 1 },
  heapBytesPerJob: { label: "heap bytes per queued job", higherIsBetter: false, digits: 0 },
  drainJobsPerSec: { label: "drain jobs/s", higherIsBetter: true, digits: 0 },
  usPerJob: { label: "µs per task", higherIsBetter: false, digits: 1 },
  enqueueJobsPerSec: { label: "enqueue jobs/s", higherIsBetter: true, digits: 0 },
  p50Ms: { label: "ms enqueue → start, p50", higherIsBetter: false, digits: 1 },
  p99Ms: { label: "ms enqueue → start, p99", higherIsBetter: false, digits: 1 },
  rssBytesPerThread: { label: "memory per thread (RSS bytes)", higherIsBetter: false, digits: 0 },
  peakHeapMB: { label: "peak heap MB", higherIsBetter: false, digits: 1 },
  cpuUsPerJob: { label: "CPU µs per job", higherIsBetter: false, digits: 2 },
  cpuMsPerThread: { label: "CPU ms per thread started (all of the process's threads)", higherIsBetter: false, digits: 1 }
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
  /** A scenario that cannot be measured yet: listed, not run. */
  readonly pending?: string
  /**
   * In --quick mode only: repetitions of this scenario (default: the run's) and untimed warm-up
   * runs per child (default 1). The thread scenarios start threads for every run and take fewer,
   * so that the smoke test stays under a minute.
   */
  readonly quick?: { readonly reps?: number; readonly warmups?: number }
  /** The same for a full run (the durable scenario starts processes and servers' work each run). */
  readonly full?: { readonly reps?: number; readonly warmups?: number }
  /** How long one child may take before it counts as hung (default: 30 s quick, 180 s full). */
  readonly childTimeoutMs?: { readonly quick: number; readonly full: number }
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
