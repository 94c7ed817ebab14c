/**
 * `node bench/probe/peakSawtooth.ts [--real]`: how scenario 1's peak heap moves with the bytes each
 * job allocates. Each point runs in a process of its own, the peak measured as the bench child
 * measures it (the largest used heap any collection found during the run, or at its end, over the
 * heap after a full collection before it), after two warm-ups at 20,000 jobs.
 *
 * Without `--real`, a model with no pool and no run loop, for S from 48 to 600 bytes: 200,000 jobs,
 * each keeping one `Exit.succeed` of a 32-bit hash (scenario 1's survivors: the Exit and, for half
 * of them, a boxed number) while S bytes of garbage are allocated per job, then `AWAIT_BYTES` (56
 * unless set; scenario 1's await loop allocates 131) per job as the Exits are read back. With
 * `--real`, scenario 1's own run with 0 to 192 more bytes per submit, and the same program with no
 * pool (extraBytesScenario.ts).
 */
import { spawnSync } from "node:child_process"
import * as path from "node:path"
import * as v8 from "node:v8"
import { Exit } from "effect"
// loaded as the bench child loads it: what module loading leaves in the heap counts towards V8's
// growing its young generation
import "../../src/index.ts"

const [arg, bytes, awaitBytes] = process.argv.slice(2)
/** The garbage per job of the model's await loop (scenario 1's, a `yield*` of an Exit in `Effect.gen`: 131). */
const AWAIT = Number(awaitBytes ?? process.env.AWAIT_BYTES ?? 56)

class Four {
  a: number
  b: number
  c: number
  d: number
  constructor(i: number) {
    this.a = i
    this.b = i
    this.c = i
    this.d = i
  }
}
class Empty {}
let sink: unknown
/** Garbage: 56-byte objects, then 24-byte ones (no pointer compression in Node). */
const garbage = (n: number, i: number) => {
  let k = 0
  for (; k + 56 <= n; k += 56) sink = new Four(i)
  for (; k < n; k += 24) sink = new Empty()
}
const hash = (i: number): number => Math.imul(i ^ 0x5bd1e995, 0x27d4eb2d) >>> 0

const model = (perJob: number, jobs: number): number => {
  const gc = globalThis.gc
  if (gc === undefined) throw new Error("run with --expose-gc")
  gc()
  gc()
  const base = process.memoryUsage().heapUsed
  const profiler = new v8.GCProfiler()
  profiler.start()
  const kept = new Array<Exit.Exit<number>>(jobs)
  for (let i = 0; i < jobs; i++) {
    garbage(perJob, i)
    kept[i] = Exit.succeed(hash(i))
  }
  let s = 0
  for (const exit of kept) {
    garbage(AWAIT, s)
    if (Exit.isSuccess(exit)) s += exit.value
  }
  let peak = process.memoryUsage().heapUsed
  for (const { beforeGC } of profiler.stop()?.statistics ?? []) peak = Math.max(peak, beforeGC.heapStatistics.usedHeapSize)
  void sink
  return (peak - base) / 1e6
}

const run = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv = process.env) =>
  spawnSync(process.execPath, ["--expose-gc", ...args], { encoding: "utf8", env }).stdout

if (arg === "--model") {
  model(Number(bytes), 20_000)
  model(Number(bytes), 20_000)
  console.log(model(Number(bytes), 200_000).toFixed(1))
} else if (arg === "--real") {
  const child = path.join(import.meta.dirname, "..", "child.ts")
  const scenario = path.join(import.meta.dirname, "extraBytesScenario.ts")
  const peak = (name: string, extra: number) => {
    const out = run([child, scenario, name, "full"], { ...process.env, EXTRA_BYTES: String(extra) })
    return (Number(out.match(/"peakHeapBytes":(\d+)/)?.[1] ?? NaN) / 1e6).toFixed(1)
  }
  for (let extra = 0; extra <= 192; extra += 24) {
    const ours = peak("ours: Effect.sync job, extra bytes", extra)
    const bare = peak("no pool: Effect.exit per job, kept", extra)
    console.log(`+${String(extra).padStart(3)} bytes a job: ours ${ours} MB, no pool ${bare} MB`)
  }
} else {
  for (let perJob = 48; perJob <= 600; perJob += 24) {
    console.log(`${String(perJob).padStart(3)} bytes a job: peak ${run([import.meta.filename, "--model", String(perJob)]).trim()} MB`)
  }
}
