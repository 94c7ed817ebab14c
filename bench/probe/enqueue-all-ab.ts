/**
 * `JobQueue.enqueueAll` of one array of items on the memory store, two source trees side by side in
 * one process, run in turns (old, new, new, old, ...) so that a loaded machine's drift falls on both.
 * Each run is a fresh store (the table does not grow across runs). Prints the medians of each tree's
 * wall and main-thread CPU ms and the median of the pairwise ratios new ÷ old. `--new` (this checkout
 * by default) makes an A/A control. `<tree>` holds a `src/` inside this checkout (say
 * `git archive <commit> src | tar -x -C .scratch/old`), so that both load the same `effect`.
 *
 * `--shape=one`: one `enqueue` per item instead, one after another (its encode is the batch's).
 *
 * node --expose-gc bench/probe/enqueue-all-ab.ts --old=<tree> [--new=<tree>] [--items=10000] [--pairs=20] [--shape=all|one]
 */
import { Effect, Layer, Schema } from "effect"
import { loadavg } from "node:os"
import * as path from "node:path"
import { pathToFileURL } from "node:url"

const arg = (name: string, otherwise: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? otherwise
const items = Number(arg("items", "10000"))
const pairs = Number(arg("pairs", "20"))
const shape = arg("shape", "all")
const trees = { old: path.resolve(arg("old", "")), new: path.resolve(arg("new", path.resolve(import.meta.dirname, "../.."))) }
if (arg("old", "") === "") throw new Error("--old=<tree> is required")
const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error("run with node --expose-gc")

const open = async (tree: string) => {
  // typed as this tree's: the old tree's is the same API
  const { JobQueue, Task }: typeof import("../../src/index.ts") = await import(pathToFileURL(path.join(tree, "src/index.ts")).href)
  const JobStore: typeof import("../../src/JobStore.ts") = await import(pathToFileURL(path.join(tree, "src/JobStore.ts")).href)
  const Row = Task.make("Row", { payload: Schema.Struct({ n: Schema.Number, t: Schema.Number }), success: Schema.Void })
  const batch = Array.from({ length: items }, (_, n) => ({ payload: { n, t: 0 } }))
  const program = shape === "one"
    ? Effect.forEach(batch, (item) => JobQueue.enqueue(Row, item.payload, { queue: "ab" }), { discard: true })
    : JobQueue.enqueueAll(Row, batch, { queue: "ab" })
  return () => Effect.runPromise(program.pipe(Effect.provide(Layer.fresh(JobStore.memory()))))
}

const run = async (go: () => Promise<unknown>) => {
  gc()
  const c0 = process.threadCpuUsage()
  const t0 = performance.now()
  await go()
  const wall = performance.now() - t0
  const c1 = process.threadCpuUsage()
  return { wall, cpu: (c1.user + c1.system - c0.user - c0.system) / 1000 }
}

const median = (xs: Array<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}

const go = { old: await open(trees.old), new: await open(trees.new) }
for (let i = 0; i < 5; i++) await Promise.all([go.old(), go.new()]) // warm both
const load = loadavg()[0]!.toFixed(2)
const times = { old: [] as Array<{ wall: number; cpu: number }>, new: [] as Array<{ wall: number; cpu: number }> }
for (let pair = 0; pair < pairs; pair++) {
  const order = pair % 2 === 0 ? (["old", "new"] as const) : (["new", "old"] as const)
  for (const which of order) times[which].push(await run(go[which]))
}
const ratios = (key: "wall" | "cpu") => times.new.map((t, i) => t[key] / times.old[i]![key])
const spread = (xs: Array<number>) => `${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)}`
console.log(JSON.stringify({
  shape,
  items,
  pairs,
  loadAtStart: load,
  loadAtEnd: loadavg()[0]!.toFixed(2),
  old: { wallMs: median(times.old.map((t) => t.wall)).toFixed(1), cpuMs: median(times.old.map((t) => t.cpu)).toFixed(1) },
  new: { wallMs: median(times.new.map((t) => t.wall)).toFixed(1), cpuMs: median(times.new.map((t) => t.cpu)).toFixed(1) },
  wallRatio: median(ratios("wall")).toFixed(3),
  wallRatioSpread: spread(ratios("wall")),
  cpuRatio: median(ratios("cpu")).toFixed(3),
  cpuRatioSpread: spread(ratios("cpu"))
}))
