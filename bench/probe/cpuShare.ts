/**
 * Probe for scenarios 5 and 6: main-thread CPU and whole-process CPU per task for the floor,
 * poolifier and ours, the same pools as the bench (bench/threads.ts), interleaved in one process.
 * The threads' CPU outside the job is the process's CPU less the main thread's less the jobs' own.
 *
 * With --fresh, each timed run is on a new pool that ran only 8 jobs, as in the bench (bench/child.ts),
 * so the threads' code is as cold as there; the main thread's is warm after the first rep.
 *
 * With --load, one CPU-bound process spins beside it (bench/load.ts), as in scenarios 5L and 6L.
 *
 * With --settle=MS, each timed run starts MS ms after its pool's setup (with --fresh: whatever a new
 * thread's start-up leaves to V8, its first major GC say, then falls outside the timed run or not).
 * With --switches, each kind of OS thread's voluntary context switches per job too (from /proc: how
 * often it went to sleep, so how often something had to wake it).
 * With --per-rep, --threads' figures are printed for each run too. With --mark, a line
 * `=== timed start <name>` / `=== timed end <name>` brackets each timed run, to tell which events of
 * `node --trace-gc --trace-gc-nvp` or `--trace-opt` fell inside one.
 *
 * node bench/probe/cpuShare.ts [--kind=cpu|noop] [--jobs=N] [--reps=N] [--only=floor,poolifier,ours] [--fresh] [--load] [--threads] [--settle=MS] [--per-rep] [--mark] [--switches]
 */
import { Effect } from "effect"
import { readdirSync, readFileSync } from "node:fs"
import { loadavg } from "node:os"
import { startLoad } from "../load.ts"
import { Floor, ours, poolifier, THREADS } from "../threads.ts"
import { Cpu, Noop } from "../workers/ours-tasks.ts"

const arg = (name: string, otherwise: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? otherwise
const kind = arg("kind", "cpu") as "cpu" | "noop"
const jobs = Number(arg("jobs", kind === "cpu" ? "2000" : "20000"))
const reps = Number(arg("reps", "6"))
const only = arg("only", "floor,poolifier,ours").split(",")

const fresh = process.argv.includes("--fresh")
const settle = Number(arg("settle", "0"))
const perRep = process.argv.includes("--per-rep")
const mark = process.argv.includes("--mark")
const load = process.argv.includes("--load") ? await startLoad() : undefined
const PRIME = Number(process.env.PRIME ?? 8)

/** Opens a pool and gives its timed run and its close. */
const openers: Record<string, () => Promise<{ run: () => Promise<void>; close: () => Promise<void> }>> = {
  floor: async () => {
    const floor = await Floor.open(kind)
    const push = (n: number) =>
      new Promise<void>((resolve) => {
        let finished = 0
        floor.onResult = () => {
          if (++finished === n) resolve()
        }
        for (let i = 0; i < n; i++) floor.send(i % THREADS, i)
      })
    await push(PRIME)
    return { run: () => push(jobs), close: () => floor.close() }
  },
  poolifier: async () => {
    const pool = await poolifier(kind)
    const push = async (n: number) => {
      const pending = new Array<Promise<number>>(n)
      for (let i = 0; i < n; i++) pending[i] = pool.run(i)
      await Promise.all(pending)
    }
    await push(PRIME)
    return { run: () => push(jobs), close: () => pool.close() }
  },
  ours: async () => {
    const { close, pool } = await ours()
    const task = kind === "cpu" ? Cpu : Noop
    const push = (n: number) =>
      Effect.runPromise(Effect.gen(function*() {
        const handles = new Array<Effect.Effect<number, unknown>>(n)
        for (let i = 0; i < n; i++) handles[i] = (yield* pool.submit(task, i)).await
        for (let i = 0; i < n; i++) yield* handles[i]!
      }))
    await push(PRIME)
    return { run: () => push(jobs), close }
  }
}
const names = only.filter((name) => name in openers)
const open: Record<string, { run: () => Promise<void>; close: () => Promise<void> }> = {}
if (!fresh) {
  for (const name of names) {
    open[name] = await openers[name]!()
    await open[name].run() // warm-up
  }
}

/** CPU ticks (1/100 s) of each of the process's OS threads, by name (with --threads): who spends the threads' CPU. */
const byThreadName = (): Map<string, number> => {
  const ticks = new Map<string, number>()
  for (const tid of readdirSync("/proc/self/task")) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8")
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"))
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      ticks.set(`${name}#${tid}`, Number(fields[11]) + Number(fields[12]))
    } catch {
      // the thread exited meanwhile
    }
  }
  return ticks
}
/** Voluntary context switches of each of the process's OS threads, by name (with --switches). */
const switchesByThread = (): Map<string, number> => {
  const counts = new Map<string, number>()
  for (const tid of readdirSync("/proc/self/task")) {
    try {
      const status = readFileSync(`/proc/self/task/${tid}/status`, "utf8")
      const name = /^Name:\s*(.*)$/m.exec(status)![1]!
      counts.set(`${name}#${tid}`, Number(/^voluntary_ctxt_switches:\s*(\d+)$/m.exec(status)![1]))
    } catch {
      // the thread exited meanwhile
    }
  }
  return counts
}
const switches = process.argv.includes("--switches")
const switchSums: Record<string, Map<string, number>> = {}
const perName: Record<string, Map<string, number>> = {}
/** CPU ticks by kind of OS thread over `runs` timed runs, as µs per job (a tick is 10 ms). */
const perTask = (ticks: Map<string, number>, runs: number): string =>
  [...ticks].filter(([, t]) => t > 0).map(([k, t]) => `${k} ${(t * 10_000 / jobs / runs).toFixed(1)}`).join(", ")

const results: Record<string, Array<{ wall: number; main: number; proc: number }>> = {}
const loads: Array<number> = []
for (let rep = 0; rep < reps; rep++) {
  loads.push(loadavg()[0]!)
  for (const name of names) {
    const pool = fresh ? await openers[name]!() : open[name]!
    if (settle > 0) await new Promise((resolve) => setTimeout(resolve, settle))
    if (mark) console.log(`=== timed start ${name}`)
    const k0 = byThreadName()
    const s0 = switches ? switchesByThread() : undefined
    const t0 = process.threadCpuUsage(), p0 = process.cpuUsage(), w0 = performance.now()
    await pool.run()
    const w1 = performance.now(), t1 = process.threadCpuUsage(), p1 = process.cpuUsage()
    const k1 = byThreadName()
    if (s0 !== undefined) {
      const sums = switchSums[name] ??= new Map()
      for (const [key, count] of switchesByThread()) {
        const kind = key.slice(0, key.indexOf("#"))
        sums.set(kind, (sums.get(kind) ?? 0) + count - (s0.get(key) ?? 0))
      }
    }
    if (mark) console.log(`=== timed end ${name}`)
    const sums = perName[name] ??= new Map()
    const run = new Map<string, number>()
    for (const [key, ticks] of k1) {
      const kind = key.slice(0, key.indexOf("#"))
      run.set(kind, (run.get(kind) ?? 0) + ticks - (k0.get(key) ?? 0))
    }
    for (const [kind, ticks] of run) sums.set(kind, (sums.get(kind) ?? 0) + ticks)
    if (perRep) {
      console.log(`rep ${rep} ${name.padEnd(10)} µs/task by OS thread: ${perTask(run, 1)}`)
    }
    ;(results[name] ??= []).push({
      wall: (w1 - w0) * 1000 / jobs,
      main: (t1.user + t1.system - t0.user - t0.system) / jobs,
      proc: (p1.user + p1.system - p0.user - p0.system) / jobs
    })
    if (fresh) await pool.close()
  }
}
const median = (xs: Array<number>) => xs.sort((a, b) => a - b)[xs.length >> 1]!
for (const [name, rs] of Object.entries(results)) {
  const m = (k: "wall" | "main" | "proc") => median(rs.map((r) => r[k])).toFixed(2)
  console.log(`${name.padEnd(10)} µs/task: wall ${m("wall")}  main cpu ${m("main")}  process cpu ${m("proc")}  (threads ${(Number(m("proc")) - Number(m("main"))).toFixed(2)})`)
}
if (process.argv.includes("--threads")) {
  for (const [name, sums] of Object.entries(perName)) {
    console.log(`${name.padEnd(10)} µs/task by OS thread: ${perTask(sums, reps)}`)
  }
}
for (const [name, sums] of Object.entries(switchSums)) {
  const per = [...sums].filter(([, n]) => n > 0).map(([k, n]) => `${k} ${(n / jobs / reps).toFixed(2)}`).join(", ")
  console.log(`${name.padEnd(10)} voluntary switches per job by OS thread: ${per}`)
}
console.log(`load ${loads.map((l) => l.toFixed(1)).join(" ")}`)
for (const pool of Object.values(open)) await pool.close()
await load?.stop()
