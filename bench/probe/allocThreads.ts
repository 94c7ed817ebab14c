/**
 * Where the main thread allocates per thread-pool task, by function (sampling heap profiler,
 * garbage included): a figure the machine's load barely moves, unlike CPU time. Scenario 5/6's
 * shape: submit all, then await all, on 2 threads.
 *
 * node bench/probe/allocThreads.ts [--tree=/path/to/a/tree] [--kind=noop|cpu] [--jobs=N] [--top=N]
 */
import { Effect, Exit, Scope } from "effect"
import { Session } from "node:inspector/promises"
import * as path from "node:path"
import { treePool } from "./treePool.ts"

const arg = (name: string, otherwise: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? otherwise
const tree = arg("tree", path.resolve(import.meta.dirname, "../.."))
const kind = arg("kind", "noop")
const jobs = Number(arg("jobs", kind === "cpu" ? "2000" : "20000"))
const top = Number(arg("top", "25"))
const { tasks, scope, pool } = await treePool(tree)
const task = kind === "cpu" ? tasks.Cpu : tasks.Noop
const program = (n: number) =>
  Effect.gen(function*() {
    const handles = new Array<Effect.Effect<number, unknown>>(n)
    for (let i = 0; i < n; i++) handles[i] = (yield* pool.submit(task, i)).await
    for (let i = 0; i < n; i++) yield* handles[i]!
  })
for (let k = 0; k < 3; k++) await Effect.runPromise(program(jobs))
const session = new Session()
session.connect()
await session.post("HeapProfiler.startSampling", {
  samplingInterval: 64,
  includeObjectsCollectedByMinorGC: true,
  includeObjectsCollectedByMajorGC: true
})
const RUNS = 3
for (let k = 0; k < RUNS; k++) await Effect.runPromise(program(jobs))
const { profile } = await session.post("HeapProfiler.stopSampling") as any
const m = new Map<string, number>()
let total = 0
const name = (n: any) => `${n.callFrame.functionName || "(anon)"} ${n.callFrame.url.split("/").slice(-2).join("/")}:${n.callFrame.lineNumber + 1}`
// a builtin's allocations (a Map's set, an array's splice) are shown under their caller
const walk = (n: any, parent: string) => {
  const own = name(n)
  const k = n.callFrame.url === "" && parent !== "" ? `${own} in ${parent}` : own
  total += n.selfSize
  m.set(k, (m.get(k) ?? 0) + n.selfSize)
  for (const c of n.children) walk(c, own)
}
walk(profile.head, "")
const per = (b: number) => (b / RUNS / jobs).toFixed(1)
for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(per(v).padStart(7), "B/task", k)
console.log(`total ${per(total)} B/task (${kind}, ${jobs} tasks, ${tree})`)
await Effect.runPromise(Scope.close(scope, Exit.void))
