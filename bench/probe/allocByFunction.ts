// node bench/probe/allocByFunction.ts: where scenario 1's shape allocates, by function (sampling heap profiler, garbage included)
import { Effect, Scope } from "effect"
import { Session } from "node:inspector/promises"
import { WorkPool } from "../../src/index.ts"
const work = (i: number): number => Math.imul(i ^ 0x5bd1e995, 0x27d4eb2d) >>> 0
const scope = Effect.runSync(Scope.make())
const pool = await Effect.runPromise(WorkPool.make({ concurrency: 8, capacity: Infinity }).pipe(Scope.provide(scope)))
let ran = 0
const submitAll = (n: number) => Effect.gen(function*() {
  const handles = new Array<Effect.Effect<number, unknown>>(n)
  for (let i = 0; i < n; i++) handles[i] = (yield* pool.submit(Effect.sync(() => (ran++, work(i))))).await
  let s = 0
  for (const h of handles) s += yield* h
  return s
})
for (let k = 0; k < 5; k++) await Effect.runPromise(submitAll(200_000))
const session = new Session()
session.connect()
await session.post("HeapProfiler.startSampling", { samplingInterval: 64, includeObjectsCollectedByMinorGC: true, includeObjectsCollectedByMajorGC: true })
const RUNS = 3
for (let k = 0; k < RUNS; k++) await Effect.runPromise(submitAll(200_000))
const { profile } = await session.post("HeapProfiler.stopSampling") as any
const m = new Map<string, number>()
let total = 0
const walk = (n: any) => {
  const k = `${n.callFrame.functionName || "(anon)"} ${n.callFrame.url.split("/").slice(-2).join("/")}:${n.callFrame.lineNumber + 1}`
  total += n.selfSize
  m.set(k, (m.get(k) ?? 0) + n.selfSize)
  for (const c of n.children) walk(c)
}
walk(profile.head)
const per = (b: number) => (b / RUNS / 200_000).toFixed(1)
for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, 20)) console.log(per(v).padStart(7), "B/job", k)
console.log("total", per(total), "B/job")
