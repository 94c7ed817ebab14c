/**
 * Scenario 8's drain of our queue on Postgres alone, with what the server and the consumers saw:
 * `consumers` consumer processes × 8 (cold, as in the scenario; connected and paused before the
 * jobs are enqueued, 16 enqueues at a time) drain `jobs` no-op jobs of a fresh schema. It prints a
 * JSON line: jobs/s; the consumers' CPU while the jobs were enqueued (paused: the NOTIFYs they
 * hear) and in the drain; the drain's jobs per 100 ms; from the server, the claims' index scans
 * (`wp_job_ready`: scans and entries read per scan: dead entries of claimed jobs that a held
 * snapshot keeps from being skipped show here), updates, autovacuum/autoanalyze runs, samples of
 * the run's sessions (what they waited on) and the oldest snapshot in the database and who held
 * it. A second line, from the consumers' timed store (bench/durable/pgdrain-consumer.ts): claims
 * per consumer, claim latency (p50 by 500 ms of the drain), jobs asked for and got per claim,
 * settle latency. The server's CPU in the drain is that of the backends serving the consumers.
 *
 *   node bench/durable/pgdrain.ts <postgres://…> [jobs=20000] [consumers=4]
 *
 * PGDRAIN_SAMPLE=0: neither sampling nor timed stores (bench/durable/ours.ts's consumers; for A/B
 * timings: the sampler's queries load the server too). PGDRAIN_PROF=<dir>: a CPU profile of each
 * consumer. Linux only (/proc).
 */
import { type ChildProcess, fork } from "node:child_process"
import { fileURLToPath } from "node:url"
import { existsSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import pg from "pg"
import { CONCURRENCY } from "./driver.ts"
import type { BenchJob, ConsumerConfig, FromConsumer, ToConsumer } from "./protocol.ts"

const [url = "", jobsArg = "20000", consumersArg = "4"] = process.argv.slice(2)
const jobs = Number(jobsArg)
const consumers = Number(consumersArg)
const config: ConsumerConfig = { url, schema: `pgdrain_${process.pid}`, queue: `pgdrain_${process.pid}`, concurrency: CONCURRENCY }

const { Effect, ManagedRuntime } = await import("effect")
const JobQueue = await import("../../src/JobQueue.ts")
const { storeOf } = await import("./ours.ts")
const { BenchTask } = await import("./task.ts")
const runtime = ManagedRuntime.make(storeOf(url, config.schema))
await runtime.runPromise(Effect.void)
const client = new pg.Client({ connectionString: url, application_name: "pgdrain-probe" })
await client.connect()

const sampled = process.env.PGDRAIN_SAMPLE !== "0"
const files: Array<string> = []
let reported = 0
let onEvent = () => {}
const children: Array<ChildProcess> = []
await Promise.all(Array.from({ length: consumers }, () =>
  new Promise<void>((resolve) => {
    const file = join(tmpdir(), `${config.schema}-${children.length}.json`)
    files.push(file)
    const child = fork(fileURLToPath(new URL(sampled ? "./pgdrain-consumer.ts" : "./ours.ts", import.meta.url)), [JSON.stringify(config), file], {
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      ...(process.env.PGDRAIN_PROF === undefined ? {} : { execArgv: ["--cpu-prof", `--cpu-prof-dir=${process.env.PGDRAIN_PROF}`] })
    })
    children.push(child)
    child.on("message", (message: FromConsumer) => {
      if ("ready" in message) resolve()
      else if ("ran" in message) reported += message.ran.length
      onEvent()
    })
  })))
/** A process's user + system CPU so far, ms (Linux: /proc). */
const cpuOf = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
  return (Number(fields[11]) + Number(fields[12])) * 10
}
const consumersCpu = () => children.reduce((sum, child) => sum + cpuOf(child.pid!), 0)
/**
 * The CPU so far (ms) of each server backend that serves a consumer: the backends whose client port
 * is one of the consumers' sockets (other runs share the server, so not all of its processes).
 */
const serverCpu = async () => {
  const inodes = new Set(children.flatMap((child) =>
    readdirSync(`/proc/${child.pid}/fd`).flatMap((fd) => {
      try {
        return /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${child.pid}/fd/${fd}`))?.slice(1) ?? []
      } catch {
        return [] // closed since the listing
      }
    })
  ))
  const ports = ["/proc/net/tcp", "/proc/net/tcp6"].filter(existsSync).flatMap((file) =>
    readFileSync(file, "utf8").split("\n").slice(1).map((line) => line.trim().split(/\s+/))
      .filter((fields) => inodes.has(fields[9]!)).map((fields) => parseInt(fields[1]!.split(":")[1]!, 16))
  )
  const rows = await client.query(`SELECT pid FROM pg_stat_activity WHERE client_port = ANY($1::int[])`, [ports])
  return new Map(rows.rows.flatMap((row: { pid: number }) => {
    try {
      return [[row.pid, cpuOf(row.pid)] as const]
    } catch {
      return [] // ended since
    }
  }))
}
const idleCpu = consumersCpu()
// 16 at a time: the scenario's one after another is most of a run's time on a loaded machine
let next = 0
await Promise.all(Array.from({ length: 16 }, async () => {
  while (next < jobs) {
    await runtime.runPromise(JobQueue.enqueue(BenchTask, { n: next++, t: 0 } satisfies BenchJob, { queue: config.queue }))
  }
}))

const stats = async () => {
  const table = await client.query(
    `SELECT n_tup_upd, n_tup_hot_upd, n_dead_tup, autovacuum_count, autoanalyze_count FROM pg_stat_user_tables
      WHERE schemaname = $1 AND relname = 'wp_job'`,
    [config.schema]
  )
  const index = await client.query(
    `SELECT idx_scan, idx_tup_read, idx_tup_fetch FROM pg_stat_user_indexes WHERE schemaname = $1 AND indexrelname = 'wp_job_ready'`,
    [config.schema]
  )
  const row = { ...table.rows[0], ...index.rows[0] } as Record<string, string>
  return Object.fromEntries(Object.entries(row).map(([k, v]) => [k, Number(v)]))
}
// cumulative stats reach the views up to a second after a backend's transaction
const settle = () => new Promise((resolve) => setTimeout(resolve, 1100))
const enqueuedCpu = consumersCpu()
await settle()
const before = await stats()

const waits = new Map<string, number>()
let samples = 0
let oldestXminAge = 0
const holders = new Map<string, number>()
let sampling = sampled
const sampler = (async () => {
  while (sampling) {
    const activity = await client.query(
      `SELECT application_name, state, wait_event_type, wait_event, age(backend_xmin) AS xmin_age,
          left(regexp_replace(query, '\\s+', ' ', 'g'), 300) AS query, pid = pg_backend_pid() AS me
        FROM pg_stat_activity WHERE backend_type = 'client backend' OR backend_type LIKE 'autovacuum%'`
    )
    samples++
    for (const row of activity.rows) {
      if (row.me) continue
      // this run's sessions: those whose statement names its schema (other runs share the database)
      if (row.state === "active" && String(row.query).includes(config.schema)) {
        const key = `${row.wait_event_type ?? "cpu"}:${row.wait_event ?? ""}`
        waits.set(key, (waits.get(key) ?? 0) + 1)
      }
      if (row.xmin_age !== null && Number(row.xmin_age) > 0) {
        oldestXminAge = Math.max(oldestXminAge, Number(row.xmin_age))
        if (Number(row.xmin_age) > 1000) {
          const key = `${row.application_name}|${row.state}|${String(row.query).slice(0, 60)}`
          holders.set(key, (holders.get(key) ?? 0) + 1)
        }
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
})()

const timeline: Array<number> = []
let last = 0
const ticker = setInterval(() => {
  timeline.push(reported - last)
  last = reported
}, 100)
const serverBefore = await serverCpu()
const t = performance.now()
for (const child of children) child.send({ go: true } satisfies ToConsumer)
await new Promise<void>((resolve) => {
  onEvent = () => reported >= jobs && resolve()
})
const ms = performance.now() - t
const drainCpu = consumersCpu()
// a backend that ended during the drain is missed: the consumers' pools keep theirs open
const serverDrainCpu = [...(await serverCpu())].reduce((sum, [pid, ms]) => sum + ms - (serverBefore.get(pid) ?? 0), 0)
clearInterval(ticker)
timeline.push(reported - last)
sampling = false
await sampler
await settle()
const after = await stats()
const delta = Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]))
console.log(JSON.stringify({
  jobs,
  jobsPerSec: Math.round(jobs / (ms / 1000)),
  load: (await import("node:os")).loadavg()[0]!.toFixed(1),
  // the consumers' CPU (ms) while the jobs were enqueued (they are paused: the wake-ups they hear) and in the drain
  consumersCpuMs: { enqueue: enqueuedCpu - idleCpu, drain: drainCpu - enqueuedCpu },
  // the server's backends that served the consumers, in the drain (ms, and µs per job)
  serverCpuMs: serverDrainCpu,
  serverCpuUsPerJob: Math.round(serverDrainCpu * 1000 / jobs),
  claims: delta.idx_scan,
  readPerClaim: +(delta.idx_tup_read! / Math.max(1, delta.idx_scan!)).toFixed(1),
  updates: delta.n_tup_upd,
  hot: delta.n_tup_hot_upd,
  autovacuum: delta.autovacuum_count,
  autoanalyze: delta.autoanalyze_count,
  oldestXminAge,
  holders: Object.fromEntries([...holders].sort((a, b) => b[1] - a[1]).slice(0, 4)),
  waits: Object.fromEntries([...waits].sort((a, b) => b[1] - a[1])),
  samples,
  timeline: timeline.join(" ")
}))
await Promise.all(children.map((child) =>
  new Promise<void>((resolve) => {
    child.on("exit", () => resolve())
    child.send({ stop: true } satisfies ToConsumer)
  })
))
if (sampled) {
  const all = files.filter((file) => existsSync(file)).map((file) => {
    const data = JSON.parse(readFileSync(file, "utf8")) as {
      claims: Array<[number, number, number, number]>
      settles: Array<number>
      heartbeats: number
      reaps: number
      handled: number
    }
    rmSync(file)
    return data
  })
  const pct = (values: Array<number>, p: number) => {
    const sorted = [...values].sort((a, b) => a - b)
    return +(sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0).toFixed(2)
  }
  const claimList = all.flatMap((data) => data.claims)
  const got = new Map<number, number>()
  for (const c of claimList) got.set(c[3], (got.get(c[3]) ?? 0) + 1)
  const asked = new Map<number, number>()
  for (const c of claimList) asked.set(c[2], (asked.get(c[2]) ?? 0) + 1)
  // claim time by 500 ms of the drain (the consumers' clocks: each from its first claim)
  const byHalf = new Map<number, Array<number>>()
  for (const data of all) {
    const t0 = data.claims[0]?.[0] ?? 0
    for (const c of data.claims) {
      const k = Math.floor((c[0] - t0) / 500)
      byHalf.set(k, [...(byHalf.get(k) ?? []), c[1]])
    }
  }
  const settleList = all.flatMap((data) => data.settles)
  console.log(JSON.stringify({
    claimsPerConsumer: all.map((data) => data.claims.length),
    handledPerConsumer: all.map((data) => data.handled),
    gotPerConsumer: all.map((data) => data.claims.reduce((sum, c) => sum + c[3], 0)),
    claimMs: { p50: pct(claimList.map((c) => c[1]), 0.5), p90: pct(claimList.map((c) => c[1]), 0.9), p99: pct(claimList.map((c) => c[1]), 0.99), max: pct(claimList.map((c) => c[1]), 1) },
    got: Object.fromEntries(got),
    asked: Object.fromEntries(asked),
    claimMsP50By500ms: [...byHalf].sort((a, b) => a[0] - b[0]).map(([, v]) => pct(v, 0.5)).join(" "),
    settleMs: { p50: pct(settleList, 0.5), p99: pct(settleList, 0.99) },
    heartbeats: all.map((data) => data.heartbeats),
    reaps: all.map((data) => data.reaps)
  }))
}
await runtime.dispose()
await client.query(`DROP SCHEMA IF EXISTS "${config.schema}" CASCADE`)
await client.end()
