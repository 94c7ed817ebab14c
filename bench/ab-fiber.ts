/**
 * `node --expose-gc bench/ab-fiber.ts --old=<tree> [--new=<tree>] [--work=sleep|sync|promise] [--reps=N] [--shape=submit|runAll]`: two
 * source trees' `WorkPool`s side by side in one process, run in turns (old, new, new, old, ...), so
 * that the machine's load, which on a shared machine swings more than a change under test, falls on
 * both alike. `<tree>` holds an older `src/` (say `git archive <commit> src | tar -x -C <tree>`),
 * placed inside this checkout so that both trees load the same `effect`. `--new` (this checkout by
 * default) makes an A/A control: two copies of one `src/` show how far the ratios stray by noise.
 *
 * The work is scenario 2's (`sleep`: 10,000 jobs of `Effect.sleep(1)`, concurrency 100) or scenario
 * 1's (`sync` or `promise`: 200,000 trivial jobs, concurrency 8), in their shape: submit all, keep
 * every handle's `await`, then await them in order. Prints the medians of wall ms, CPU ms and bytes
 * allocated per job (what every collection freed plus the heap's growth) of each tree, and the
 * median of the pairwise ratios new ÷ old. `--shape=runAll` submits them as one `runAll` batch
 * instead (its own per-job path: its listener, its sweep). Not part of `npm run bench`.
 */
import { Effect, Exit, Scope } from "effect"
import { loadavg } from "node:os"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { allocatedBy } from "./allocated.ts"
import { work } from "./tally.ts"

const arg = (name: string, otherwise: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? otherwise
const kind = arg("work", "sleep")
const shape = arg("shape", "submit")
const reps = Number(arg("reps", "10"))
const trees = { old: path.resolve(arg("old", "")), new: path.resolve(arg("new", path.resolve(import.meta.dirname, ".."))) }
if (arg("old", "") === "") throw new Error("--old=<tree> is required")
const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error("run with node --expose-gc")

const JOBS = kind === "sleep" ? 10_000 : 200_000
const CONCURRENCY = kind === "sleep" ? 100 : 8
let sink = 0
const job = (i: number): Effect.Effect<number> =>
  kind === "sleep"
    ? Effect.sleep(1).pipe(Effect.map(() => (sink += i, i)))
    : kind === "sync"
    ? Effect.sync(() => (sink++, work(i)))
    : Effect.promise(async () => (sink++, work(i)))

const open = async (tree: string) => {
  // typed as this tree's: the old tree's is the same API
  const { WorkPool }: typeof import("../src/index.ts") = await import(pathToFileURL(path.join(tree, "src/index.ts")).href)
  return () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: CONCURRENCY, capacity: Infinity })
      if (shape === "runAll") return yield* pool.runAll(Array.from({ length: JOBS }, (_, i) => job(i)))
      const handles = new Array<Effect.Effect<number, unknown>>(JOBS)
      for (let i = 0; i < JOBS; i++) handles[i] = (yield* pool.submit(job(i))).await
      for (let i = 0; i < JOBS; i++) yield* handles[i]!
    })))
}

interface Sample {
  readonly wall: number
  readonly cpu: number
  readonly bytes: number
}

const measure = async (run: () => Promise<unknown>): Promise<Sample> => {
  gc()
  const { bytes, cpu, wall } = await allocatedBy(run)
  return { wall, cpu, bytes: bytes / JOBS }
}

const runs = { old: await open(trees.old), new: await open(trees.new) }
for (let i = 0; i < 3; i++) await runs.old(), await runs.new()
const samples = { old: [] as Array<Sample>, new: [] as Array<Sample> }
for (let r = 0; r < reps; r++) {
  const order = r % 2 === 0 ? (["old", "new"] as const) : (["new", "old"] as const)
  for (const side of order) samples[side].push(await measure(runs[side]))
}
const median = (values: Array<number>) => values.sort((a, b) => a - b)[values.length >> 1]!
const of = (side: "old" | "new", key: keyof Sample) => median(samples[side].map((s) => s[key]))
const ratio = (key: keyof Sample) => median(samples.new.map((s, i) => s[key] / samples.old[i]![key]))
console.log(`${kind} jobs by ${shape} (${JOBS}, concurrency ${CONCURRENCY}), ${reps} pairs, load ${loadavg().map((l) => l.toFixed(1)).join(" ")}`)
for (const side of ["old", "new"] as const) {
  console.log(
    `${side.padEnd(4)} wall ${of(side, "wall").toFixed(1).padStart(7)} ms  cpu ${of(side, "cpu").toFixed(1).padStart(7)} ms  ${
      of(side, "bytes").toFixed(0).padStart(5)
    } B/job`
  )
}
console.log(`new/old (median of pairs): wall ${ratio("wall").toFixed(3)}  cpu ${ratio("cpu").toFixed(3)}  bytes ${ratio("bytes").toFixed(3)}`)
process.exit(0)
