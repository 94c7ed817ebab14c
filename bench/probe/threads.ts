/**
 * Probe for scenarios 5 and 6: where a thread pool's time goes against the raw worker_threads floor.
 * For each run: wall time, main-thread CPU per task (process.threadCpuUsage), the whole process's CPU
 * per task, and from each task's start and end as its thread recorded them: the threads' busy time,
 * their idle gaps between tasks, the head (run start to a thread's first task) and the tail (a
 * thread's last task to the run's end).
 *
 * The gaps are split by length (<20 µs, <100 µs, <0.5 ms, <2 ms, more: count and total): a gap on
 * the floor's threads, which always have their next job queued, is the OS running something else.
 *
 * node bench/probe/threads.ts [--kind=cpu|noop] [--jobs=N] [--reps=N] [--mode=all|one] [--only=floor,ours]
 */
import { Worker } from "node:worker_threads"
import { Effect, Exit, Scope } from "effect"
import * as ThreadPool from "../../src/ThreadPool.ts"
import { Cpu, Noop, Probe } from "../workers/ours-tasks.ts"
import { makeMarks, type Marks, now } from "./marks.ts"

const arg = (name: string, otherwise: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? otherwise
const kind = arg("kind", "cpu") as "cpu" | "noop"
const jobs = Number(arg("jobs", kind === "cpu" ? "2000" : "20000"))
const reps = Number(arg("reps", "5"))
const mode = arg("mode", "all") as "all" | "one"
const only = arg("only", "floor,ours").split(",")
const THREADS = 2

interface Run {
  readonly wall: number
  readonly mainCpu: number
  readonly procCpu: number
}

const cpuNow = () => {
  const t = process.threadCpuUsage()
  const p = process.cpuUsage()
  return { t: t.user + t.system, p: p.user + p.system }
}

const timed = async (go: () => Promise<void>): Promise<Run & { t0: number; t1: number }> => {
  const c0 = cpuNow()
  const t0 = now()
  await go()
  const t1 = now()
  const c1 = cpuNow()
  return { wall: t1 - t0, mainCpu: c1.t - c0.t, procCpu: c1.p - c0.p, t0, t1 }
}

const analyse = (marks: Marks, t0: number, t1: number) => {
  const byThread = new Map<number, Array<number>>()
  for (let i = 0; i < jobs; i++) {
    const list = byThread.get(marks.threads[i]!) ?? []
    list.push(i)
    byThread.set(marks.threads[i]!, list)
  }
  let busy = 0, idle = 0, head = 0, tail = 0, gaps = 0, bigGaps = 0
  const bounds = [0.02, 0.1, 0.5, 2, Infinity]
  const hist = bounds.map(() => 0)
  const histMs = bounds.map(() => 0)
  for (const list of byThread.values()) {
    list.sort((a, b) => marks.times[2 * a]! - marks.times[2 * b]!)
    head += marks.times[2 * list[0]!]! - t0
    tail += t1 - marks.times[2 * list[list.length - 1]! + 1]!
    for (let k = 0; k < list.length; k++) {
      const i = list[k]!
      busy += marks.times[2 * i + 1]! - marks.times[2 * i]!
      if (k > 0) {
        const gap = marks.times[2 * i]! - marks.times[2 * list[k - 1]! + 1]!

        idle += gap
        gaps++
        if (gap > 0.1) bigGaps++
        const b = bounds.findIndex((x) => gap < x)
        hist[b]!++
        histMs[b]! += gap
      }
    }
  }
  return { threads: byThread.size, busy, idle, head, tail, gaps, bigGaps, hist: hist.map((n, k) => `${n}:${histMs[k]!.toFixed(0)}ms`).join(' ') }
}

const fmt = (name: string, r: Run & { t0: number; t1: number }, marks: Marks) => {
  const a = analyse(marks, r.t0, r.t1)
  const us = (ms: number) => (ms * 1000 / jobs).toFixed(2)
  return `${name.padEnd(6)} wall ${r.wall.toFixed(1)} ms (${us(r.wall)} us/task)  main cpu ${(r.mainCpu / jobs).toFixed(2)} us/task  proc cpu ${(r.procCpu / jobs).toFixed(2)}` +
    `  | threads ${a.threads} busy ${us(a.busy)} idle ${us(a.idle)} head ${a.head.toFixed(2)} ms tail ${a.tail.toFixed(2)} ms gaps <20us,<100us,<0.5ms,<2ms,more ${a.hist}`
}

// ---- floor
const floorMarks = makeMarks(jobs + 100)
const floorWorkers = Array.from({ length: THREADS }, () =>
  new Worker(new URL("./floor-worker.ts", import.meta.url), { workerData: { ...floorMarks.shared, kind } }))
let onResult: (w: number) => void = () => {}
floorWorkers.forEach((w, k) => w.on("message", () => onResult(k)))
const floorRun = (n: number, base: number) =>
  new Promise<void>((resolve) => {
    let finished = 0
    if (mode === "all") {
      onResult = () => {
        if (++finished === n) resolve()
      }
      for (let i = 0; i < n; i++) floorWorkers[i % THREADS]!.postMessage(base + i)
    } else {
      let i = 0
      onResult = () => {
        if (++finished === n) return resolve()
        i++
        floorWorkers[i % THREADS]!.postMessage(base + i)
      }
      floorWorkers[0]!.postMessage(base)
    }
  })
await floorRun(THREADS, -1e9) // probes: negative numbers
await floorRun(1000, jobs)

// ---- ours
const oursMarks = makeMarks(jobs + 100)
const scope = Effect.runSync(Scope.make())
const pool = await Effect.runPromise(
  ThreadPool.make({ worker: new URL("./ours-worker.ts", import.meta.url), threads: THREADS, capacity: Infinity, workerData: oursMarks.shared })
    .pipe(Scope.provide(scope))
)
const task = kind === "cpu" ? Cpu : Noop
await Effect.runPromise(Effect.all([pool.run(Probe, 0), pool.run(Probe, 0)], { concurrency: 2 }))
const oursProgram = (n: number, base: number) =>
  mode === "all"
    ? Effect.gen(function*() {
      const handles = new Array<Effect.Effect<number, unknown>>(n)
      for (let i = 0; i < n; i++) handles[i] = (yield* pool.submit(task, base + i)).await
      for (let i = 0; i < n; i++) yield* handles[i]!
    })
    : Effect.gen(function*() {
      for (let i = 0; i < n; i++) yield* pool.run(task, base + i)
    })
await Effect.runPromise(oursProgram(1000, jobs))

const loads: Array<string> = []
const { loadavg } = await import("node:os")
for (let rep = 0; rep < reps; rep++) {
  loads.push(loadavg()[0]!.toFixed(1))
  if (only.includes("floor")) console.log(fmt("floor", await timed(() => floorRun(jobs, 0)), floorMarks.marks))
  if (only.includes("ours")) console.log(fmt("ours", await timed(() => Effect.runPromise(oursProgram(jobs, 0))), oursMarks.marks))
}
console.log(`load ${loads.join(" ")}`)
await Promise.all(floorWorkers.map((w) => w.terminate()))
await Effect.runPromise(Scope.close(scope, Exit.void))
