/**
 * The SQLite store's hot operations, two source trees side by side in one process, in turns (old,
 * new, new, old, ...) so that a loaded machine's drift falls on both: each tree's store on a file of
 * its own, holding a backlog (`--backlog` finished jobs, a tenth of them queued in another queue),
 * runs `--ops` enqueues, then as many claims of one job, then as many settles, one operation after
 * another. Prints the medians of each tree's main-thread CPU ms per phase and the medians of the
 * pairwise ratios new ÷ old. `--new` (this checkout by default) makes an A/A control. `<tree>` holds
 * a `src/` inside this checkout (say `git archive <commit> src | tar -x -C .scratch/old`).
 *
 * node bench/probe/sqlite-ops-ab.ts --old=<tree> [--new=<tree>] [--ops=500] [--pairs=10] [--backlog=20000]
 */
import { Effect, Scope } from "effect"
import * as fs from "node:fs"
import { loadavg, tmpdir } from "node:os"
import * as path from "node:path"
import { pathToFileURL } from "node:url"

const arg = (name: string, otherwise: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? otherwise
const ops = Number(arg("ops", "500"))
const pairs = Number(arg("pairs", "10"))
const backlog = Number(arg("backlog", "20000"))
const trees = { old: path.resolve(arg("old", "")), new: path.resolve(arg("new", path.resolve(import.meta.dirname, "../.."))) }
if (arg("old", "") === "") throw new Error("--old=<tree> is required")
const dir = fs.mkdtempSync(path.join(tmpdir(), "sqlite-ops-ab-"))
process.on("exit", () => fs.rmSync(dir, { recursive: true, force: true }))

const phases = ["enqueue", "claim", "settle"] as const
type Phase = typeof phases[number]

const open = async (name: string, tree: string) => {
  const Sqlite: typeof import("../../src/internal/store/sqlite.ts") = await import(
    pathToFileURL(path.join(tree, "src/internal/store/sqlite.ts")).href
  )
  const scope = Effect.runSync(Scope.make())
  const store = await Effect.runPromise(Sqlite.make({ filename: path.join(dir, `${name}.db`), busyTimeout: 5000 }).pipe(Scope.provide(scope)))
  const job = (n: number, queue: string) => ({
    queue, task: "Echo", payload: JSON.stringify({ n, text: "a payload of some size".repeat(4) }), priority: n % 3, dedupKey: null,
    maxAttempts: 3, timeout: 0, delay: 0, runAt: undefined
  })
  // the backlog: finished jobs of the queue, and queued ones of another
  await Effect.runPromise(Effect.gen(function*() {
    yield* store.enqueueAll(Array.from({ length: backlog }, (_, n) => job(n, n % 10 === 0 ? "other" : "default")))
    for (let left = backlog; left > 0; left -= 1000) {
      const { claims } = yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 1000, lease: 60_000 })
      for (const { token } of claims) yield* store.settle(token, { _tag: "Final", state: "succeeded", exit: "{}" })
    }
  }))
  let n = 0
  return async () => {
    const cpu: Record<Phase, number> = { enqueue: 0, claim: 0, settle: 0 }
    const tokens: Array<string> = []
    const timed = async (phase: Phase, body: Effect.Effect<void, unknown>) => {
      const c0 = process.threadCpuUsage()
      await Effect.runPromise(body)
      const c1 = process.threadCpuUsage()
      cpu[phase] = (c1.user + c1.system - c0.user - c0.system) / 1000
    }
    await timed("enqueue", Effect.gen(function*() {
      for (let i = 0; i < ops; i++) yield* store.enqueue(job(n++, "default"))
    }))
    await timed("claim", Effect.gen(function*() {
      for (let i = 0; i < ops; i++) {
        const { claims } = yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 1, lease: 60_000 })
        tokens.push(claims[0]!.token)
      }
    }))
    await timed("settle", Effect.gen(function*() {
      for (const token of tokens) yield* store.settle(token, { _tag: "Final", state: "succeeded", exit: "{}" })
    }))
    return cpu
  }
}

const median = (xs: Array<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}

const go = { old: await open("old", trees.old), new: await open("new", trees.new) }
for (let i = 0; i < 2; i++) for (const which of ["old", "new"] as const) await go[which]() // warm both
const load = loadavg()[0]!.toFixed(2)
const times = { old: [] as Array<Record<Phase, number>>, new: [] as Array<Record<Phase, number>> }
for (let pair = 0; pair < pairs; pair++) {
  const order = pair % 2 === 0 ? (["old", "new"] as const) : (["new", "old"] as const)
  for (const which of order) times[which].push(await go[which]())
}
const total = (t: Record<Phase, number>) => t.enqueue + t.claim + t.settle
const spread = (xs: Array<number>) => `${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)}`
const ratio = (key: (t: Record<Phase, number>) => number) => times.new.map((t, i) => key(t) / key(times.old[i]!))
console.log(JSON.stringify({
  ops,
  pairs,
  backlog,
  loadAtStart: load,
  loadAtEnd: loadavg()[0]!.toFixed(2),
  ...Object.fromEntries([...phases.map((phase) => [phase, (t: Record<Phase, number>) => t[phase]] as const), ["total", total] as const]
    .map(([name, key]) => [name, {
      oldCpuMs: median(times.old.map(key)).toFixed(1),
      newCpuMs: median(times.new.map(key)).toFixed(1),
      cpuRatio: median(ratio(key)).toFixed(3),
      cpuRatioSpread: spread(ratio(key))
    }]))
}, null, 1))
