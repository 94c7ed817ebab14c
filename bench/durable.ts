/**
 * Durable jobs on SQLite, and on Postgres when WORKPOOL_PG_URL is set (in a schema of its own,
 * dropped after), measured (never asserted): `node bench/durable.ts [jobs] [consumers]
 * [concurrency] [poll ms]` (default 20000 4 8 10).
 *
 * 1. throughput: enqueue `jobs` no-op jobs (one transaction each), then drain them with `consumers`
 *    processes × `concurrency`;
 * 2. latency from enqueue to start on an idle consumer process: 200 jobs one at a time, from the
 *    store's own created_at and started_at (one machine, one clock). Another process's new job is
 *    seen at the consumer's next poll, so the poll interval bounds it.
 */
import { spawn } from "node:child_process"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { PgClient } from "@effect/sql-pg"
import { Effect, type Layer, ManagedRuntime, Redacted } from "effect"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as PgJobStore from "../src/PgJobStore.ts"
import { Noop } from "./durable/task.ts"

const [jobs = 20_000, consumers = 4, concurrency = 8, poll = 10] = process.argv.slice(2).map(Number)
const node = existsSync("node_modules/.bin/node") ? "node_modules/.bin/node" : process.execPath
const script = fileURLToPath(new URL("./durable/consumer.ts", import.meta.url))
const dir = mkdtempSync(join(tmpdir(), "bench-durable-"))

const pgUrl = process.env.WORKPOOL_PG_URL
const pgSchema = `bench_durable_${process.pid}`

/** A store: an SQLite file, or (a postgres:// URL) a Postgres schema of its own. */
const storeOf = (target: string) =>
  (target.startsWith("postgres://")
    ? PgJobStore.layer({ url: target, schema: pgSchema })
    : JobStore.sqlite({ filename: target })) as Layer.Layer<JobStore.JobStore, never>

const startConsumers = (file: string, count: number) =>
  Promise.all(Array.from({ length: count }, () =>
    new Promise<ReturnType<typeof spawn>>((resolve) => {
      const child = spawn(node, [script, file, String(concurrency), String(poll)], {
        stdio: ["ignore", "pipe", "inherit"],
        env: { ...process.env, WORKPOOL_PG_SCHEMA: pgSchema }
      })
      child.stdout!.on("data", (chunk: Buffer) => {
        if (chunk.toString().includes("ready")) resolve(child)
      })
    })))

const stop = (children: ReadonlyArray<ReturnType<typeof spawn>>) =>
  Promise.all(children.map((child) => new Promise((resolve) => (child.on("exit", resolve), child.kill("SIGTERM")))))

const percentile = (sorted: ReadonlyArray<number>, p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!

const measure = async (name: string, file: string, latencyFile: string) => {
  console.log(name)
  // 1. throughput
  const runtime = ManagedRuntime.make(storeOf(file))
  let t = performance.now()
  await runtime.runPromise(Effect.forEach(Array.from({ length: jobs }, (_, n) => n), (n) => JobQueue.enqueue(Noop, n), { discard: true }))
  const enqueueSeconds = (performance.now() - t) / 1000
  t = performance.now()
  const children = await startConsumers(file, consumers)
  while ((await runtime.runPromise(JobQueue.stats("default"))).succeeded < jobs) await new Promise((r) => setTimeout(r, 20))
  const drainSeconds = (performance.now() - t) / 1000
  await stop(children)
  await runtime.dispose()
  console.log(`enqueue: ${jobs} jobs in ${enqueueSeconds.toFixed(2)} s = ${Math.round(jobs / enqueueSeconds)} jobs/s (one process)`)
  console.log(`drain:   ${jobs} jobs in ${drainSeconds.toFixed(2)} s = ${Math.round(jobs / drainSeconds)} jobs/s (${consumers} processes × ${concurrency}, including their start)`)

  // 2. latency
  const latency = ManagedRuntime.make(storeOf(latencyFile))
  const [consumer] = await startConsumers(latencyFile, 1)
  const delays: Array<number> = []
  for (let i = 0; i < 200; i++) {
    const job = await latency.runPromise(JobQueue.enqueue(Noop, i))
    await latency.runPromise(job.await)
    const info = await latency.runPromise(JobQueue.status(job.id))
    delays.push(info.startedAt!.getTime() - info.createdAt.getTime())
  }
  await stop([consumer!])
  await latency.dispose()
  delays.sort((a, b) => a - b)
  console.log(`latency enqueue → start, idle consumer process, poll ${poll} ms: p50 ${percentile(delays, 0.5)} ms, p99 ${percentile(delays, 0.99)} ms`)
}

/** Drops the benchmark's Postgres schema. */
const dropSchema = (url: string) =>
  Effect.runPromise(
    Effect.scoped(Effect.flatMap(PgClient.make({ url: Redacted.make(url), maxConnections: 1 }), (sql) =>
      sql.unsafe(`DROP SCHEMA IF EXISTS "${pgSchema}" CASCADE`).raw)).pipe(
        Effect.provideServiceEffect(Reactivity.Reactivity, Reactivity.make)
      )
  )

const main = async () => {
  try {
    await measure("SQLite", join(dir, "throughput.db"), join(dir, "latency.db"))
    if (pgUrl) {
      // throughput and latency share one schema (the finished jobs stay in it, outside the claim index)
      await dropSchema(pgUrl)
      await measure("Postgres (a new job wakes an idle consumer by NOTIFY)", pgUrl, pgUrl)
    } else console.log("Postgres: set WORKPOOL_PG_URL to measure it")
  } finally {
    rmSync(dir, { recursive: true, force: true })
    if (pgUrl) await dropSchema(pgUrl)
  }
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
