/**
 * Fiber jobs submitted from a context `depth` layers deep (over a base of 40 - depth services, as an
 * app's layers make), an older source tree and this one side by side in one process, in turns:
 * prints each tree's median CPU µs and bytes allocated per job, and the median of the pairwise CPU
 * ratios new ÷ old. A job adds two layers to its submitter's context (jobContext.ts `withRoom`).
 *
 * node --expose-gc bench/probe/deepContext.ts --old=<tree inside this checkout> [--depth=7] [--reps=8]
 */
import { Context, Effect, Exit, Scope } from "effect"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { loadavg } from "node:os"
import { allocatedBy } from "../allocated.ts"
const arg = (n: string, d: string) => process.argv.find((a) => a.startsWith(`--${n}=`))?.slice(n.length + 3) ?? d
if (arg("old", "") === "") throw new Error("--old=<tree> is required")
const depth = Number(arg("depth", "7")), reps = Number(arg("reps", "8")), JOBS = 100_000
const services = Array.from({ length: 40 }, (_, i) => Context.Service<number>(`S${i}`))
const gc = (globalThis as any).gc
const open = async (tree: string) => {
  const { WorkPool }: typeof import("../../src/index.ts") = await import(pathToFileURL(path.resolve(tree, "src/index.ts")).href)
  const scope = Effect.runSync(Scope.make())
  const pool = await Effect.runPromise(WorkPool.make({ concurrency: 8, capacity: Infinity }).pipe(Scope.provide(scope)))
  let program: Effect.Effect<number, unknown> = Effect.gen(function*() {
    const handles = new Array<Effect.Effect<number, unknown>>(JOBS)
    for (let i = 0; i < JOBS; i++) handles[i] = (yield* pool.submit(Effect.flatMap(Effect.void, () => Effect.succeed(i)))).await
    let s = 0
    for (const h of handles) s += yield* h
    return s
  })
  for (let i = 0; i < depth; i++) program = Effect.provideService(program, services[i]!, i)
  // a base with many services, as an app's layers make
  const wide = Effect.provide(program, Context.makeUnsafe(new Map(services.slice(depth).map((s, i) => [s.key, i] as const))))
  return () => Effect.runPromise(wide)
}
const runs = { old: await open(arg("old", "")), new: await open(path.resolve(import.meta.dirname, "../..")) }
for (let i = 0; i < 3; i++) await runs.old(), await runs.new()
const samples: Record<string, Array<{ cpu: number; bytes: number }>> = { old: [], new: [] }
for (let r = 0; r < reps; r++) for (const side of (r % 2 ? ["new", "old"] : ["old", "new"]) as Array<"old" | "new">) {
  gc(); const a = await allocatedBy(runs[side]); samples[side]!.push({ cpu: a.cpu, bytes: a.bytes / JOBS })
}
const med = (x: number[]) => x.sort((a, b) => a - b)[x.length >> 1]!
console.log(`depth ${depth}, ${JOBS} fiber jobs, ${reps} pairs, load ${loadavg().map((l) => l.toFixed(1)).join(" ")}`)
for (const k of ["old", "new"]) console.log(k, "cpu µs/job", (med(samples[k]!.map((s) => s.cpu)) * 1000 / JOBS).toFixed(3), "B/job", med(samples[k]!.map((s) => s.bytes)).toFixed(0))
console.log("new/old cpu (median of pairs)", med(samples.new!.map((s, i) => s.cpu / samples.old![i]!.cpu)).toFixed(3))
process.exit(0)
