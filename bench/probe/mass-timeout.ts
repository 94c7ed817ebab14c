/**
 * `node bench/probe/mass-timeout.ts <tree> <N>`: a pool of concurrency N runs N jobs that never end
 * (timeout 1.5 s, no retry) with N trivial jobs queued behind them, and prints the CPU from the last
 * submit until every queued job has run: almost all of it is the N timeouts firing and the queued
 * jobs starting on the freed workers. `<tree>` holds a `src/` (`git archive <commit> src | tar -x -C
 * <tree>`, inside this checkout so that both load the same `effect`). Found in review15: the
 * scheduler's `waitingDeadlineDue` (c5e4570, 3c09b62) walks every deadline due at the instant on
 * each start inside the timer's loop, and running jobs' timeouts without a retry never end the walk
 * early, so k timeouts due together cost O(k²): N=16,000 took 0.4-3.8 s of CPU against 0.23-0.25 s
 * at e09b0d2 (3 runs each, load 9-11; the spread is how many timeouts land in one millisecond).
 */
import { Effect } from "effect"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
const tree = process.argv[2]!
const N = Number(process.argv[3])
const { WorkPool }: typeof import("../../src/index.ts") = await import(pathToFileURL(path.join(tree, "src/index.ts")).href)
await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
  const pool = yield* WorkPool.make({ concurrency: N, capacity: Infinity, metrics: false })
  const hs = []
  for (let i = 0; i < N; i++) hs.push((yield* pool.submit(Effect.never, { timeout: 1500 })).await)
  const qs = []
  for (let i = 0; i < N; i++) qs.push((yield* pool.submit(Effect.void)).await)
  const c0 = process.cpuUsage()
  for (const q of qs) yield* q
  const c = process.cpuUsage(c0)
  console.log(`${path.basename(tree)} N=${N} cpu ${(c.user + c.system) / 1000 | 0} ms`)
  for (const h of hs) yield* Effect.exit(h)
})))
process.exit(0)
