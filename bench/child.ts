/**
 * Runs one contestant of one scenario once, in a process of its own: untimed warm-up runs at a small
 * size, then one timed run at the real size. Prints one JSON line on stdout, the last thing it does:
 * { scenario, contestant, ms, jobs, checksumOk, why?, heapBytesPerJob? }
 *
 * Usage: node --expose-gc bench/child.ts <scenario file> <contestant name> <full|quick>
 */
import { performance } from "node:perf_hooks"
import * as v8 from "node:v8"
import { pathToFileURL } from "node:url"
import type { Metric, Scenario, Size } from "./common.ts"
import { Tally } from "./tally.ts"

export interface ChildResult {
  readonly scenario: string
  readonly contestant: string
  readonly ms: number
  readonly jobs: number
  readonly checksumOk: boolean
  readonly why?: string
  readonly heapBytesPerJob?: number
  readonly rssBytesPerThread?: number
  /** Scenarios with the metric "peakHeapMB": the most heap in use during the timed run, over the heap before it. */
  readonly peakHeapBytes?: number
  /** The process's CPU time (user + system, every thread) during the timed run, in ms. */
  readonly cpuMs?: number
  readonly extra?: Partial<Record<Metric, number>>
}

const [file, name, mode] = process.argv.slice(2)
if (file === undefined || name === undefined || (mode !== "full" && mode !== "quick")) {
  throw new Error("usage: child.ts <scenario file> <contestant> <full|quick>")
}
const { scenario } = (await import(pathToFileURL(file).href)) as { scenario: Scenario }
const contestant = scenario.contestants.find((c) => c.name === name)
if (contestant === undefined) throw new Error(`no contestant "${name}" in scenario ${scenario.id}`)

const measurePeak = scenario.metrics.includes("peakHeapMB")

/**
 * Watches the heap during a run: the used heap after a full collection before it, and the largest
 * used heap any collection found during it (or at its end). V8 collects the young generation every
 * few megabytes, so this is the high-water mark within about that much.
 */
const watchHeap = () => {
  globalThis.gc?.()
  globalThis.gc?.()
  const base = process.memoryUsage().heapUsed
  const profiler = new v8.GCProfiler()
  profiler.start()
  return () => {
    let peak = process.memoryUsage().heapUsed
    for (const gc of profiler.stop()?.statistics ?? []) peak = Math.max(peak, gc.beforeGC.heapStatistics.usedHeapSize)
    return peak - base
  }
}

/** Sets up, runs and tears down once; only `run` is inside the clock. */
const once = async (size: Size) => {
  const tally = scenario.tally?.(size) ?? new Tally(size.jobs)
  const trial = await contestant.setup(size, tally)
  const peak = measurePeak ? watchHeap() : undefined
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const outcome = await trial.run()
  const ms = outcome.ms ?? performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  const cpuMs = (cpu.user + cpu.system) / 1000
  const peakHeapBytes = peak?.()
  await trial.teardown?.()
  return { ms, cpuMs, outcome, peakHeapBytes, check: tally.verify(outcome.observed) }
}

// A crash or a wrong warm-up checksum is reported on the same JSON line, with exit code 1.
process.on("uncaughtException", (error) => {
  process.stdout.write(JSON.stringify({ scenario: scenario.id, contestant: name, error: String(error?.stack ?? error) }) + "\n")
  process.exit(1)
})
process.on("unhandledRejection", (error) => {
  throw error
})

// Warm-up: lets the JIT compile the hot paths of this contestant, and must be right too.
// Quick mode (a smoke test) warms up once (or as the scenario says), at a quarter of its own size at most.
const size = scenario.sizes[mode]
const warmup = mode === "full"
  ? scenario.sizes.warmup
  : { ...scenario.sizes.warmup, jobs: Math.min(scenario.sizes.warmup.jobs, Math.ceil(size.jobs / 4)) }
const warmups = mode === "full" ? (scenario.full?.warmups ?? 2) : (scenario.quick?.warmups ?? 1)
for (let i = 0; i < warmups; i++) {
  const { check } = await once(warmup)
  if (!check.ok) throw new Error(`warm-up checksum wrong: ${check.why}`)
}
globalThis.gc?.()

const { ms, cpuMs, outcome, peakHeapBytes, check } = await once(size)
const result: ChildResult = {
  scenario: scenario.id,
  contestant: name,
  ms,
  cpuMs,
  jobs: size.jobs,
  checksumOk: check.ok,
  ...(check.why === undefined ? {} : { why: check.why }),
  ...(outcome.heapBytesPerJob === undefined ? {} : { heapBytesPerJob: outcome.heapBytesPerJob }),
  ...(outcome.rssBytesPerThread === undefined ? {} : { rssBytesPerThread: outcome.rssBytesPerThread }),
  ...(peakHeapBytes === undefined ? {} : { peakHeapBytes }),
  ...(outcome.extra === undefined ? {} : { extra: outcome.extra })
}
process.stdout.write(JSON.stringify(result) + "\n")
// Do not wait for stray timers or handles of a contestant: the measurement is done.
process.exit(0)
