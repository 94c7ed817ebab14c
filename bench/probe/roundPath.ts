/**
 * `node --expose-gc bench/probe/roundPath.ts <tree> [<tree> ...] [--reps=N]`: scenario 2's per-job
 * path without its 1 ms timers, so it can be timed warm many times on a busy machine: 10,000 jobs
 * at concurrency 100, each an `Effect.callback` that a driver resumes 100 at a time in a macrotask
 * (as a round of timers would), submitted all and awaited in order; `Effect.forEach` over the same
 * jobs for reference. Prints each tree's median CPU µs per job over interleaved reps (after 5
 * untimed), and each tree's median ratio to the first tree's. Two trees at a time: with more, the
 * ratios stray further (an A/A read 0.92 among four, 0.99-1.04 in pairs at load 13-15).
 * `PROF_DIR=<dir>` writes a CPU profile of each timed run of the first tree there.
 */
import { Effect } from "effect"
import * as path from "node:path"
import { pathToFileURL } from "node:url"

const args = process.argv.slice(2)
const reps = Number(args.find((a) => a.startsWith("--reps="))?.slice(7) ?? 40)
const trees = args.filter((a) => !a.startsWith("--"))
const JOBS = 10_000
const CONCURRENCY = 100
let waiting: Array<(effect: Effect.Effect<void>) => void> = []
let sink = 0
// resumes every waiting job at the next macrotask, as a round of timers would
let driving = false
const drive = () => {
  if (driving) return
  driving = true
  setImmediate(() => {
    driving = false
    const round = waiting
    waiting = []
    for (const resume of round) resume(Effect.void)
  })
}
const job = (i: number) =>
  Effect.callback<void>((resume) => {
    waiting.push(resume)
    drive()
  }).pipe(Effect.map(() => (sink += i, i)))

const contestants: Array<[string, () => Promise<unknown>]> = []
const ids = Array.from({ length: JOBS }, (_, i) => i)
contestants.push(["Effect.forEach", () => Effect.runPromise(Effect.forEach(ids, job, { concurrency: CONCURRENCY }))])
for (const tree of trees) {
  const { WorkPool }: typeof import("../../src/index.ts") = await import(pathToFileURL(path.join(path.resolve(tree), "src/index.ts")).href)
  contestants.push([tree, () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: CONCURRENCY, capacity: Infinity })
      const handles = new Array<Effect.Effect<number, unknown>>(JOBS)
      for (let i = 0; i < JOBS; i++) handles[i] = (yield* pool.submit(job(i))).await
      for (let i = 0; i < JOBS; i++) yield* handles[i]!
    })))])
}
const samples = contestants.map(() => [] as Array<number>)
// PROF_DIR=<dir>: profiles the first tree's runs after the warm-ups (one file per run)
const profDir = process.env.PROF_DIR
const { Session } = await import("node:inspector/promises")
const session = new Session()
if (profDir !== undefined) {
  session.connect()
  await session.post("Profiler.enable")
  await session.post("Profiler.setSamplingInterval", { interval: 25 })
}
for (let r = 0; r < reps + 5; r++) {
  const order = r % 2 === 0 ? contestants.map((_, i) => i) : contestants.map((_, i) => i).reverse()
  for (const i of order) {
    const profiled = profDir !== undefined && i === 1 && r >= 5
    if (profiled) await session.post("Profiler.start")
    const t = process.cpuUsage()
    await contestants[i]![1]()
    const c = process.cpuUsage(t)
    if (profiled) {
      const { profile } = await session.post("Profiler.stop")
      process.getBuiltinModule("node:fs").writeFileSync(`${profDir}/${r}.cpuprofile`, JSON.stringify(profile))
    }
    if (r >= 5) samples[i]!.push((c.user + c.system) / JOBS)
  }
}
const median = (v: Array<number>) => [...v].sort((a, b) => a - b)[v.length >> 1]!
const load = process.getBuiltinModule("node:os").loadavg().map((l) => l.toFixed(1)).join(" ")
console.log(`${reps} reps, load ${load}`)
for (let i = 0; i < contestants.length; i++) {
  const ratios = i === 0 ? "" : `  ÷ first tree (median of pairs) ${median(samples[i]!.map((s, k) => s / samples[1]![k]!)).toFixed(3)}`
  console.log(`${contestants[i]![0].padEnd(24)} ${median(samples[i]!).toFixed(2)} µs/job${ratios}`)
}
process.exit(0)
