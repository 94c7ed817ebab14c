/**
 * `JobQueue.enqueueAll` against `JobQueue.enqueue` one call per job, one after another, on SQLite,
 * Postgres and Redis: `jobs` jobs each way, interleaved A, B, A, B (`pairs` pairs) so that a loaded
 * machine's drift falls on both. Prints, per store, the median wall time and this process's CPU time
 * (the server's is not in it) of each way, and their ratio. No consumer runs; each store is fresh
 * (a new file, schema or key prefix, left for the caller to drop) and each run has a queue of its own.
 *
 * `WORKPOOL_PG_URL=... WORKPOOL_REDIS_URL=... node bench/durable/enqueue-all.ts [jobs=10000] [pairs=5]`
 */
import { Effect, type Layer, ManagedRuntime } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as JobQueue from "../../src/JobQueue.ts"
import * as JobStore from "../../src/JobStore.ts"
import * as PgJobStore from "../../src/PgJobStore.ts"
import * as RedisJobStore from "../../src/RedisJobStore.ts"
import { BenchTask } from "./task.ts"

interface Timing {
  readonly wallMs: number
  readonly cpuMs: number
}

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

const timed = async (run: () => Promise<unknown>): Promise<Timing> => {
  const cpu = process.cpuUsage()
  const start = performance.now()
  await run()
  const wallMs = performance.now() - start
  const used = process.cpuUsage(cpu)
  return { wallMs, cpuMs: (used.user + used.system) / 1000 }
}

export const compare = async (name: string, layer: Layer.Layer<JobStore.JobStore, unknown>, jobs: number, pairs: number) => {
  const runtime = ManagedRuntime.make(layer)
  const payloads = Array.from({ length: jobs }, (_, n) => ({ n, t: 0 }))
  // a queue of its own per run: each starts from an empty queue (the table grows alike for both)
  const oneByOne = (queue: string) => () =>
    runtime.runPromise(Effect.forEach(payloads, (payload) => JobQueue.enqueue(BenchTask, payload, { queue }), { discard: true }))
  const batch = (queue: string) => () =>
    runtime.runPromise(JobQueue.enqueueAll(BenchTask, payloads.map((payload) => ({ payload })), { queue }))
  // warm: the scripts loaded, statements planned
  await runtime.runPromise(JobQueue.enqueueAll(BenchTask, payloads.slice(0, 100).map((payload) => ({ payload })), { queue: "warm" }))
  await runtime.runPromise(JobQueue.enqueue(BenchTask, { n: -1, t: 0 }, { queue: "warm" }))
  const a: Array<Timing> = []
  const b: Array<Timing> = []
  for (let pair = 0; pair < pairs; pair++) {
    a.push(await timed(oneByOne(`one-${pair}`)))
    b.push(await timed(batch(`all-${pair}`)))
  }
  await runtime.dispose()
  const wallA = median(a.map((t) => t.wallMs))
  const wallB = median(b.map((t) => t.wallMs))
  const cpuA = median(a.map((t) => t.cpuMs))
  const cpuB = median(b.map((t) => t.cpuMs))
  return {
    store: name,
    jobs,
    pairs,
    enqueue: { wallMs: Math.round(wallA), cpuMs: Math.round(cpuA), runsWallMs: a.map((t) => Math.round(t.wallMs)) },
    enqueueAll: { wallMs: Math.round(wallB), cpuMs: Math.round(cpuB), runsWallMs: b.map((t) => Math.round(t.wallMs)) },
    wallRatio: Math.round((wallA / wallB) * 10) / 10,
    cpuRatio: Math.round((cpuA / cpuB) * 10) / 10
  }
}

export const main = async (jobs: number, pairs: number, only?: ReadonlyArray<string>) => {
  const dir = mkdtempSync(join(tmpdir(), "enqueue-all-"))
  const stores: Array<[string, () => Layer.Layer<JobStore.JobStore, unknown>]> = [
    ["SQLite", () => JobStore.sqlite({ filename: join(dir, "jobs.db") }) as Layer.Layer<JobStore.JobStore, unknown>]
  ]
  const pg = process.env.WORKPOOL_PG_URL
  if (pg !== undefined && pg !== "") {
    stores.push(["Postgres", () => PgJobStore.layer({ url: pg, schema: `bench_all_${process.pid}` }) as Layer.Layer<JobStore.JobStore, unknown>])
  }
  const redis = process.env.WORKPOOL_REDIS_URL
  if (redis !== undefined && redis !== "") {
    stores.push(["Redis", () => RedisJobStore.layer({ url: redis, prefix: `bench-all-${process.pid}` }) as Layer.Layer<JobStore.JobStore, unknown>])
  }
  const results = []
  for (const [name, layer] of stores) {
    if (only !== undefined && !only.includes(name)) continue
    results.push(await compare(name, layer(), jobs, pairs))
  }
  rmSync(dir, { recursive: true, force: true })
  return results
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await main(Number(process.argv[2] ?? 10_000), Number(process.argv[3] ?? 5)), null, 1))
}
