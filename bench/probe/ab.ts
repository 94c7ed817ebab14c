/**
 * Old and new side by side in one process: two source trees' `ThreadPool`s (each on its own tree's
 * ThreadWorker), run in turns (old, new, new, old, ...), so that the machine's load, which on a
 * shared machine swings more than the change under test, falls on both alike. Prints each run and
 * the median of the pairwise ratios new ÷ old (wall time, main-thread CPU and the process's CPU,
 * every thread's, per task).
 *
 * `--fresh`: each run on a pool of its own, opened (and its threads warmed) before the run and closed
 * after it, so that only one pool is alive at a time: the other pool's idle threads (which, parked,
 * wake every few ms: see src/internal/park.ts) cannot touch the run.
 *
 * node bench/probe/ab.ts --old=/path/to/old/tree [--kind=cpu|noop] [--mode=all|one] [--jobs=N] [--reps=N] [--fresh]
 */
import { Effect, Exit, Scope } from "effect"
import { loadavg } from "node:os"
import * as path from "node:path"
import { treePool } from "./treePool.ts"

const arg = (name: string, otherwise: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? otherwise
const kind = arg("kind", "cpu")
const mode = arg("mode", "all")
const jobs = Number(arg("jobs", kind === "cpu" ? "2000" : "20000"))
const reps = Number(arg("reps", "10"))
const trees = { old: arg("old", ""), new: path.resolve(import.meta.dirname, "../..") }
if (trees.old === "") throw new Error("--old=<tree> is required")

const open = async (tree: string) => {
  // typed as this tree's: the old tree's are the same API
  const { tasks, scope, pool } = await treePool(tree)
  const task = kind === "cpu" ? tasks.Cpu : tasks.Noop
  const program = (n: number) =>
    mode === "all"
      ? Effect.gen(function*() {
        const handles = new Array<Effect.Effect<number, unknown>>(n)
        for (let i = 0; i < n; i++) handles[i] = (yield* pool.submit(task, i)).await
        for (let i = 0; i < n; i++) yield* handles[i]!
      })
      : Effect.gen(function*() {
        for (let i = 0; i < n; i++) yield* pool.run(task, i)
      })
  await Effect.runPromise(Effect.all([pool.run(tasks.Probe, 0), pool.run(tasks.Probe, 0)], { concurrency: 2 }))
  await Effect.runPromise(program(Math.min(jobs, 1000)))
  return {
    run: async () => {
      const c0 = process.threadCpuUsage()
      const p0 = process.cpuUsage()
      const t0 = performance.now()
      await Effect.runPromise(program(jobs))
      const wall = performance.now() - t0
      const c1 = process.threadCpuUsage()
      const p1 = process.cpuUsage(p0)
      return { wall, cpu: (c1.user + c1.system - c0.user - c0.system) / jobs, all: (p1.user + p1.system) / jobs }
    },
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

const median = (xs: Array<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}
const fresh = process.argv.includes("--fresh")
type Side = { run: () => Promise<{ wall: number; cpu: number; all: number }>; close: () => Promise<void> }
/** With --fresh: opens the pool for each run and closes it after. */
const each = (tree: string): Side => ({
  run: async () => {
    const side = await open(tree)
    try {
      return await side.run()
    } finally {
      await side.close()
    }
  },
  close: async () => {}
})
const old: Side = fresh ? each(trees.old) : await open(trees.old)
const neu: Side = fresh ? each(trees.new) : await open(trees.new)
const walls: Array<number> = [], cpus: Array<number> = [], alls: Array<number> = [], loads: Array<number> = []
for (let rep = 0; rep < reps; rep++) {
  loads.push(loadavg()[0]!)
  const first = rep % 2 === 0 ? old : neu
  const second = rep % 2 === 0 ? neu : old
  const a = await first.run()
  const b = await second.run()
  const [o, n] = rep % 2 === 0 ? [a, b] : [b, a]
  walls.push(n.wall / o.wall)
  cpus.push(n.cpu / o.cpu)
  alls.push(n.all / o.all)
  const show = (s: { wall: number; cpu: number; all: number }) =>
    `${(s.wall * 1000 / jobs).toFixed(1)} us/task (main cpu ${s.cpu.toFixed(1)} us, all threads ${s.all.toFixed(1)} us)`
  console.log(`rep ${rep}: old ${show(o)}, new ${show(n)}`)
}
console.log(`${kind} ${mode}${fresh ? " (a fresh pool per run)" : ""}, ${jobs} tasks, ${reps} pairs, load ${Math.min(...loads).toFixed(1)}-${Math.max(...loads).toFixed(1)}: median new/old wall ${median(walls).toFixed(3)} (${Math.min(...walls).toFixed(2)}-${Math.max(...walls).toFixed(2)}), main cpu ${median(cpus).toFixed(3)}, cpu of all threads ${median(alls).toFixed(3)}`)
await old.close()
await neu.close()
