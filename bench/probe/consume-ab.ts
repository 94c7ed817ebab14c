/**
 * A consumer's claim/settle path, two source trees side by side in one process, in turns (old,
 * new, new, old, ...): each drains `--jobs` no-op jobs (enqueued first) through `JobQueue.consume`
 * (concurrency 50) on the memory store and on an SQLite file. Prints the medians of each tree's
 * main-thread CPU ms per drain, and the new tree's with an `onEvent` that does nothing (what the
 * lifecycle events cost when used). `<tree>` holds a `src/` inside this checkout (say
 * `git archive <commit> src | tar -x -C .scratch/old`).
 *
 * node bench/probe/consume-ab.ts --old=<tree> [--new=<tree>] [--jobs=5000] [--pairs=7]
 */
import { Effect, Layer, Schema } from "effect"
import * as fs from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { pathToFileURL } from "node:url"

const arg = (name: string, otherwise: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? otherwise
const jobs = Number(arg("jobs", "5000"))
const pairs = Number(arg("pairs", "7"))
if (arg("old", "") === "") throw new Error("--old=<tree> is required")
const trees = { old: path.resolve(arg("old", "")), new: path.resolve(arg("new", path.resolve(import.meta.dirname, "../.."))) }
const dir = fs.mkdtempSync(path.join(tmpdir(), "consume-ab-"))
process.on("exit", () => fs.rmSync(dir, { recursive: true, force: true }))

const load = async (tree: string) => {
  const at = (file: string) => import(pathToFileURL(path.join(tree, "src", file)).href)
  const JobQueue: typeof import("../../src/JobQueue.ts") = await at("JobQueue.ts")
  const JobStore: typeof import("../../src/JobStore.ts") = await at("JobStore.ts")
  const Task: typeof import("../../src/Task.ts") = await at("Task.ts")
  const Noop = Task.make("Noop", { payload: Schema.Number, success: Schema.Number })
  let files = 0
  return (store: "memory" | "sqlite", events: boolean) => {
    const layer: Layer.Layer<import("../../src/JobStore.ts").JobStore> = store === "memory"
      ? JobStore.memory()
      : JobStore.sqlite({ filename: path.join(dir, `${path.basename(tree)}-${files++}.db`) }) as never
    return Effect.gen(function*() {
      yield* JobQueue.enqueueAll(Noop, Array.from({ length: jobs }, (_, n) => ({ payload: n })))
      const before = process.cpuUsage()
      const consumer = yield* JobQueue.consume({
        concurrency: 50,
        poll: "10 millis",
        handlers: [Task.handle(Noop, (n) => Effect.succeed(n))],
        ...(events ? { onEvent: () => Effect.void } : {})
      } as never)
      while ((yield* JobQueue.stats("default")).succeeded < jobs) yield* Effect.sleep(5)
      const used = process.cpuUsage(before)
      yield* (consumer as { shutdown: Effect.Effect<void> }).shutdown
      return (used.user + used.system) / 1000
    }).pipe(Effect.scoped, Effect.provide(layer), Effect.runPromise)
  }
}

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const run = { old: await load(trees.old), new: await load(trees.new) }
for (const store of ["memory", "sqlite"] as const) {
  const times = { old: [] as Array<number>, new: [] as Array<number>, events: [] as Array<number> }
  await run.old(store, false) // warm-up
  await run.new(store, false)
  for (let i = 0; i < pairs; i++) {
    const order = i % 2 === 0 ? ["old", "new"] as const : ["new", "old"] as const
    for (const which of order) times[which].push(await run[which](store, false))
    times.events.push(await run.new(store, true))
  }
  console.log(
    `${store}: ${jobs} jobs, CPU ms per drain (median of ${pairs}): old ${median(times.old).toFixed(0)}, new ${
      median(times.new).toFixed(0)
    } (${(median(times.new) / median(times.old)).toFixed(3)}), new with onEvent ${median(times.events).toFixed(0)}`
  )
}
