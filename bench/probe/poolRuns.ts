/**
 * `node --expose-gc bench/probe/poolRuns.ts [runs] [keep]`: scenario 2's shape (submit 10,000
 * `Effect.sleep(1)` jobs at concurrency 100, then await them; the first two runs 3,000 jobs, as the
 * bench child's warm-ups), a fresh pool per run, each run's main-thread and other-thread CPU (from
 * /proc). What V8 compiles again in each new pool shows with `--trace-opt --trace-deopt`: count
 * "completed compiling", "bailout" and "embedded weak objects cleared" between the lines printed.
 * `keep` (any of `pool,jobs,fiber,timer`) keeps alive across runs the pools, each run's last job,
 * a fiber or a 1 ms timer, to see which dying objects make V8 drop its compiled code.
 * `TREE=<path to a tree's src/index.ts>` runs another tree's pool.
 */
import { Effect, Exit, Scope } from "effect"
import { readdirSync, readFileSync } from "node:fs"
const { WorkPool }: typeof import("../../src/index.ts") = await import(process.env.TREE ?? "../../src/index.ts")
const runs = Number(process.argv[2] ?? 8)
const keep = process.argv[3] ?? ""
const keptHandles: Array<unknown> = []
if (keep.includes("fiber")) Effect.runFork(Effect.never)
if (keep.includes("timer")) setInterval(() => {}, 1).unref()
const JOBS = 10_000
let sink = 0
const job = (i: number) => Effect.sleep(1).pipe(Effect.map(() => (sink += i, i)))
const threadsCpu = () => {
  let main = 0
  let others = 0
  for (const t of readdirSync("/proc/self/task")) {
    const ns = Number(readFileSync(`/proc/self/task/${t}/schedstat`, "utf8").split(" ")[0]) / 1e6
    if (Number(t) === process.pid) main += ns
    else others += ns
  }
  return { main, others }
}
const kept: Array<Scope.Scope> = []
const once = async (jobs: number) => {
  const scope = Effect.runSync(Scope.make())
  const pool = await Effect.runPromise(WorkPool.make({ concurrency: 100, capacity: Infinity }).pipe(Scope.provide(scope)))
  const gc = (globalThis as { gc?: () => void }).gc
  gc?.()
  const before = threadsCpu()
  const t0 = performance.now()
  await Effect.runPromise(Effect.gen(function*() {
    const handles = new Array<Effect.Effect<number, unknown>>(jobs)
    for (let i = 0; i < jobs; i++) handles[i] = (yield* pool.submit(job(i))).await
    for (const h of handles) yield* h
    if (keep.includes("jobs")) keptHandles.push(handles[handles.length - 1])
  }))
  const wall = performance.now() - t0
  const after = threadsCpu()
  if (keep.includes("pool")) kept.push(scope)
  else await Effect.runPromise(Scope.close(scope, Exit.void))
  return { wall, main: after.main - before.main, others: after.others - before.others }
}
for (let r = 0; r < runs; r++) {
  const { main, others, wall } = await once(r < 2 ? 3000 : JOBS)
  console.log(`${r < 2 ? "warm-up" : "full"} ${r}: wall ${wall.toFixed(1)} main ${main.toFixed(1)} others ${others.toFixed(1)}`)
}
process.exit(0)
