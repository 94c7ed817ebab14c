/**
 * When a new thread of ours runs its major GCs, on scenario 5's timeline as bench/child.ts runs it:
 * --warmups pools of --warmup-jobs CPU jobs, a full GC of the main thread, then the timed pool: make
 * (threads on bench/probe/gc-worker.ts, which logs each major GC of a thread), PRIME jobs, --settle
 * ms, then --jobs jobs timed. Prints the timed pool's ready and run (ms since `make` began), its wall
 * ms and process CPU µs per job, and each thread's major GCs (start ms / pause ms, `*` inside the run).
 * The pool is closed 300 ms after the run, so that a thread logs a GC the run ended in.
 *
 * node --expose-gc bench/probe/firstGc.ts [--jobs=N] [--warmups=N] [--warmup-jobs=N] [--settle=MS] [--kind=cpu|noop]
 */
import { Effect, Exit, Scope } from "effect"
import { readFileSync, rmSync } from "node:fs"
import { loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import * as ThreadPool from "../../src/ThreadPool.ts"
import { Cpu, Noop } from "../workers/ours-tasks.ts"

const arg = (name: string, otherwise: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? otherwise
const jobs = Number(arg("jobs", "2000"))
const warmups = Number(arg("warmups", "2"))
const warmupJobs = Number(arg("warmup-jobs", "500"))
const settle = Number(arg("settle", "0"))
const task = arg("kind", "cpu") === "cpu" ? Cpu : Noop
const PRIME = 8
const log = join(tmpdir(), `firstGc-${process.pid}.log`)
process.env.GC_LOG = log
const now = () => performance.timeOrigin + performance.now()

const push = (pool: ThreadPool.ThreadPool, n: number) =>
  Effect.runPromise(Effect.gen(function*() {
    const handles = new Array<Effect.Effect<number, unknown>>(n)
    for (let i = 0; i < n; i++) handles[i] = (yield* pool.submit(task, i)).await
    for (let i = 0; i < n; i++) yield* handles[i]!
  }))

const once = async (n: number, timed: boolean) => {
  rmSync(log, { force: true })
  const scope = Effect.runSync(Scope.make())
  const t0 = now()
  const pool = await Effect.runPromise(
    ThreadPool.make({ worker: new URL("./gc-worker.ts", import.meta.url), threads: 2, capacity: Infinity }).pipe(
      Scope.provide(scope)
    )
  )
  const ready = now() - t0
  await push(pool, PRIME)
  if (timed && settle > 0) await new Promise((resolve) => setTimeout(resolve, settle))
  const r0 = now() - t0
  const c0 = process.cpuUsage()
  await push(pool, n)
  const c1 = process.cpuUsage(c0)
  const r1 = now() - t0
  if (timed) await new Promise((resolve) => setTimeout(resolve, 300))
  await Effect.runPromise(Scope.close(scope, Exit.void))
  if (!timed) return
  let gcs = "(none)"
  try {
    gcs = readFileSync(log, "utf8").trim().split("\n").map((line) => {
      const [id, at, ms] = line.split(" ")
      const t = Number(at) - t0
      if (ms === "ready") return `t${id}:ready@${t.toFixed(0)}`
      return `t${id}@${t.toFixed(0)}${t >= r0 && t <= r1 ? "*" : ""}/${Number(ms).toFixed(1)}`
    }).join(" ")
  } catch {
    // no major GC logged
  }
  const cpu = (c1.user + c1.system) / n
  console.log(
    `ready ${ready.toFixed(0)} run ${r0.toFixed(0)}-${r1.toFixed(0)} wall ${(r1 - r0).toFixed(0)} ms cpu/job ${
      cpu.toFixed(1)
    } µs load ${loadavg()[0]!.toFixed(1)} GCs ${gcs}`
  )
}

for (let i = 0; i < warmups; i++) await once(warmupJobs, false)
globalThis.gc?.()
await once(jobs, true)
rmSync(log, { force: true })
