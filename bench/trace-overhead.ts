/**
 * `node --expose-gc bench/trace-overhead.ts [runs] [jobs]`: what a trivial job costs (scenario 1's
 * notes quote it). Not part of `npm run bench`.
 *
 * Runs scenario 1's work (trivial jobs, concurrency 8, submit all then await all) for a few
 * contestants in one process, interleaved, and prints per contestant the medians over the runs
 * after two warm-ups of: wall ms, CPU ms, and allocated bytes per job (what every collection during
 * the run freed, plus the heap's growth), with scavenges per run. `--only=<substring>` runs only
 * the contestants whose name contains it (for a profile: `--cpu-prof`, `--heap-prof`).
 */
import { Effect, Exit, Scope } from "effect"
import { WorkPool } from "../src/index.ts"
import { allocatedBy } from "./allocated.ts"
import { work } from "./tally.ts"

const positional = process.argv.slice(2).filter((a) => !a.startsWith("--"))
const only = process.argv.find((a) => a.startsWith("--only="))?.slice("--only=".length)
const runs = Number(positional[0] ?? 7)
const JOBS = Number(positional[1] ?? 200_000)
const CONCURRENCY = 8
const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error("run with node --expose-gc")

let sink = 0
const job = (i: number) => Effect.sync(() => (sink++, work(i)))

/** Scenario 1's program for one of our pools: a handle per job, then every await in order. */
const submitAll = (pool: WorkPool.WorkPool, make: (i: number) => Effect.Effect<number>) =>
  Effect.gen(function*() {
    const handles = new Array<Effect.Effect<number, unknown>>(JOBS)
    for (let i = 0; i < JOBS; i++) handles[i] = (yield* pool.submit(make(i))).await
    let s = 0
    for (const h of handles) s += yield* h
    return s
  })

const withPool = async (options: Partial<WorkPool.Options>, make: (i: number) => Effect.Effect<number>) => {
  const scope = Effect.runSync(Scope.make())
  const pool = await Effect.runPromise(
    WorkPool.make({ concurrency: CONCURRENCY, capacity: Infinity, ...options }).pipe(Scope.provide(scope))
  )
  const program = submitAll(pool, make)
  return {
    run: () => Effect.runPromise(program),
    teardown: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

interface Trial {
  readonly run: () => Promise<unknown>
  readonly teardown?: () => Promise<void>
}

const contestants: Record<string, () => Promise<Trial>> = {
  "Effect.forEach": async () => {
    const ids = Array.from({ length: JOBS }, (_, i) => i)
    const program = Effect.forEach(ids, job, { concurrency: CONCURRENCY })
    return { run: () => Effect.runPromise(program) }
  },
  // scenario 1's loop without a pool: what its own two `yield*` per job and kept Exits cost
  "no pool: the loop, Effect.exit per job": async () => {
    const program = Effect.gen(function*() {
      const handles = new Array<Effect.Effect<number, unknown>>(JOBS)
      for (let i = 0; i < JOBS; i++) handles[i] = yield* Effect.exit(job(i))
      let s = 0
      for (const h of handles) s += yield* h
      return s
    })
    return { run: () => Effect.runPromise(program) }
  },
  "ours: Effect.sync job": () => withPool({}, job),
  "ours: Effect.sync job, metrics: false": () => withPool({ metrics: false }, job),
  "ours: Effect.promise job": () => withPool({}, (i) => Effect.promise(async () => (sink++, work(i)))),
  "ours: pool.runAll": async () => {
    const scope = Effect.runSync(Scope.make())
    const pool = await Effect.runPromise(
      WorkPool.make({ concurrency: CONCURRENCY, capacity: Infinity }).pipe(Scope.provide(scope))
    )
    return {
      run: () => Effect.runPromise(Effect.suspend(() => pool.runAll(Array.from({ length: JOBS }, (_, i) => job(i))))),
      teardown: () => Effect.runPromise(Scope.close(scope, Exit.void))
    }
  }
}

interface Sample {
  readonly wall: number
  readonly cpu: number
  readonly bytesPerJob: number
  readonly scavenges: number
}

const measure = async (prepare: () => Promise<Trial>): Promise<Sample> => {
  const trial = await prepare()
  gc()
  gc()
  const { bytes, cpu, scavenges, wall } = await allocatedBy(trial.run)
  await trial.teardown?.()
  return { wall, cpu, bytesPerJob: bytes / JOBS, scavenges }
}

const chosen = Object.entries(contestants).filter(([name]) => only === undefined || name.includes(only))
const samples = new Map<string, Array<Sample>>()
for (let r = 0; r < runs + 2; r++) {
  for (const [name, prepare] of chosen) {
    const sample = await measure(prepare)
    if (r >= 2) samples.set(name, [...(samples.get(name) ?? []), sample])
  }
}
const median = (values: Array<number>) => values.sort((a, b) => a - b)[values.length >> 1]!
const anchor = samples.get("Effect.forEach")
const forEachCpu = anchor === undefined ? undefined : median(anchor.map((s) => s.cpu))
console.log(
  `scenario 1's work, ${JOBS} jobs, ${runs} runs each after 2 warm-ups, medians; load average ${
    process.getBuiltinModule("node:os").loadavg().map((l) => l.toFixed(1)).join(" ")
  }`
)
for (const [name, list] of samples) {
  const m = (key: keyof Sample) => median(list.map((s) => s[key]))
  const ratio = forEachCpu === undefined ? "" : ` (${(forEachCpu / m("cpu")).toFixed(2)}× forEach)`
  console.log(
    `${name.padEnd(40)} ${m("wall").toFixed(1).padStart(7)} ms  cpu ${m("cpu").toFixed(1).padStart(6)} ms (min ${
      Math.min(...list.map((s) => s.cpu)).toFixed(1)
    })${ratio}  ` +
      `${(m("cpu") * 1000 / JOBS).toFixed(3)} µs/job  ${m("bytesPerJob").toFixed(0).padStart(5)} B allocated/job  ` +
      `${m("scavenges")} scavenges`
  )
}
process.exit(0)
