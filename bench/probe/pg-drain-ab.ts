/**
 * The Postgres store's drain, two source trees side by side in one process, interleaved claim by
 * claim so that a loaded machine's drift falls on both: each tree's store, on a schema of its own,
 * enqueues `--jobs` jobs (one `enqueueAll` per 500), then the two drain them in lockstep (old, new,
 * new, old, ...), each as scenario 8's consumers do: a claim of up to `--limit` jobs carrying the
 * final settles of the ones it claimed before (a claim made while settles wait takes them along: see
 * settles.ts), until the queue is empty. Each step is timed: wall, this thread's CPU, and the CPU of
 * the Postgres backends of this process's sessions (/proc/<pid>/schedstat: the server must run on
 * this machine; only the stepping tree's backend works then). Prints the medians of each tree's
 * per-round sums and of the per-round ratios new ÷ old, with their interquartile range. With
 * `--consumers=k` (k > 1) each tree drains with k stores at once (sessions racing for the queue's
 * head, as scenario 8's consumer processes do), a whole drain timed at a time, the trees in turns
 * (old, new, new, old, ...): noisier, so more rounds. `--new` (this checkout by default) makes an
 * A/A control. `<tree>` holds a `src/` inside this checkout (say `git archive <commit> src | tar -x
 * -C .scratch/old`). Its findings: `claimStatement`'s comment (src/internal/store/postgres.ts).
 *
 * node bench/probe/pg-drain-ab.ts --old=<tree> [--new=<tree>] [--jobs=1000] [--limit=8] [--consumers=1] [--rounds=10]
 *
 * Linux only; WORKPOOL_PG_URL names the server.
 */
import { Effect, Fiber, Redacted, Scope } from "effect"
import * as fs from "node:fs"
import { loadavg } from "node:os"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import pg from "pg"

const arg = (name: string, otherwise: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? otherwise
const jobs = Number(arg("jobs", "1000"))
const limit = Number(arg("limit", "8"))
const rounds = Number(arg("rounds", "10"))
const consumers = Number(arg("consumers", "1"))
const url = process.env.WORKPOOL_PG_URL ?? ""
if (url === "") throw new Error("WORKPOOL_PG_URL is required")
if (arg("old", "") === "") throw new Error("--old=<tree> is required")
const trees = { old: path.resolve(arg("old", "")), new: path.resolve(arg("new", path.resolve(import.meta.dirname, "../.."))) }
type Tree = keyof typeof trees

const monitor = new pg.Client({ connectionString: url, application_name: "pg-drain-ab" })
await monitor.connect()
const schemas: Array<string> = []

/** The local ports of this process's TCP sockets (the client ends of its sessions). */
const ownPorts = (): Set<number> => {
  const inodes = new Set<string>()
  for (const fd of fs.readdirSync("/proc/self/fd")) {
    try {
      const link = fs.readlinkSync(`/proc/self/fd/${fd}`)
      if (link.startsWith("socket:[")) inodes.add(link.slice(8, -1))
    } catch {
      // closed meanwhile
    }
  }
  const ports = new Set<number>()
  for (const table of ["/proc/self/net/tcp", "/proc/self/net/tcp6"]) {
    for (const line of fs.readFileSync(table, "utf8").split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/)
      if (fields.length > 9 && inodes.has(fields[9]!)) ports.add(parseInt(fields[1]!.split(":")[1]!, 16))
    }
  }
  return ports
}

/** The Postgres backends serving this process's store sessions. */
const backends = async (): Promise<Array<number>> => {
  const ports = ownPorts()
  const { rows } = await monitor.query<{ pid: number; client_port: number }>(
    `SELECT pid, client_port FROM pg_stat_activity WHERE application_name = 'effect-workpool'`
  )
  return rows.filter((row) => ports.has(row.client_port)).map((row) => row.pid)
}

/** Milliseconds on CPU of these processes (schedstat's first field, ns); a process gone counts 0. */
const cpuOf = (pids: ReadonlyArray<number>) =>
  pids.reduce((sum, pid) => {
    try {
      return sum + Number(fs.readFileSync(`/proc/${pid}/schedstat`, "utf8").split(" ")[0]) / 1e6
    } catch {
      return sum
    }
  }, 0)

const measures = ["proc", "server", "cpu", "wall"] as const
type Measure = typeof measures[number]
type Times = Record<Measure, number>
const zero = (): Times => ({ proc: 0, server: 0, cpu: 0, wall: 0 })

const QUEUE = "drain"
const final = { _tag: "Final", state: "succeeded", exit: "{}" } as const

const open = async (name: Tree) => {
  const Pg: typeof import("../../src/internal/store/postgres.ts") = await import(
    pathToFileURL(path.join(trees[name], "src/internal/store/postgres.ts")).href
  )
  const schema = `pgab_${name}_${process.pid}`
  schemas.push(schema)
  const scope = Effect.runSync(Scope.make())
  const config = { url: Redacted.make(url), schema, maxConnections: 10, connectTimeout: 10_000, clock: "server" as const }
  const stores = await Promise.all(Array.from({ length: consumers }, () => Effect.runPromise(Pg.make(config).pipe(Scope.provide(scope)))))
  const store = stores[0]!
  let n = 0
  const tokens: Array<ReadonlyArray<string>> = stores.map(() => [])
  /** One claim of consumer `i` carrying the settles of its last one's jobs; how many it claimed. */
  const step = (i: number) =>
    Effect.runPromise(Effect.gen(function*() {
      // the settles queue first (a fiber each, started at once), then the claim takes them along
      const settles = yield* Effect.forEach(tokens[i]!, (token) => Effect.forkChild(stores[i]!.settle(token, final), { startImmediately: true }))
      const claimed = yield* stores[i]!.claim({ queues: [QUEUE], tasks: ["Echo"], limit, lease: 60_000 })
      for (const settle of settles) {
        if (!(yield* Fiber.join(settle))) throw new Error(`${name}: a settle was not written`)
      }
      tokens[i] = claimed.claims.map((claim) => claim.token)
      return tokens[i]!.length
    }))
  return {
    step: () => step(0),
    /** Every consumer claims until it claims none (the last claim writes the settles of the one before); how many they ran. */
    drain: () =>
      Promise.all(stores.map(async (_, i) => {
        let ran = 0
        for (let claimed = await step(i); claimed > 0; claimed = await step(i)) ran += claimed
        return ran
      })).then((ran) => ran.reduce((a, b) => a + b, 0)),
    enqueue: () =>
      Effect.runPromise(Effect.gen(function*() {
        for (let left = jobs; left > 0; left -= 500) {
          yield* store.enqueueAll(Array.from({ length: Math.min(500, left) }, () => ({
            queue: QUEUE, task: "Echo", payload: JSON.stringify({ n: n++, t: 0 }), priority: 0, dedupKey: null,
            maxAttempts: 3, timeout: 0, delay: 0, runAt: undefined
          })))
        }
      })),
    /** Checks the round's jobs all succeeded, and empties the table for the next round. */
    reset: async () => {
      const { rows } = await monitor.query<{ n: string }>(`SELECT count(*) AS n FROM ${schema}.wp_job WHERE state <> 'succeeded'`)
      if (rows[0]!.n !== "0") throw new Error(`${name}: ${rows[0]!.n} jobs not succeeded`)
      await monitor.query(`DELETE FROM ${schema}.wp_job`)
      await monitor.query(`VACUUM ${schema}.wp_job`)
    }
  }
}

/** One round: both trees enqueue, then drain in lockstep; each tree's drain times, summed. */
const round = async (stores: Record<Tree, Awaited<ReturnType<typeof open>>>, first: Tree) => {
  for (const which of ["old", "new"] as const) await stores[which].enqueue()
  const pids = await backends()
  const sums = { old: zero(), new: zero() }
  const ran = { old: 0, new: 0 }
  const done = { old: false, new: false }
  let order: Array<Tree> = first === "old" ? ["old", "new"] : ["new", "old"]
  while (!done.old || !done.new) {
    for (const which of order) {
      if (done[which]) continue
      const w0 = performance.now(), p0 = process.threadCpuUsage(), s0 = cpuOf(pids)
      const claimed = await stores[which].step()
      const s1 = cpuOf(pids), p1 = process.threadCpuUsage(p0), w1 = performance.now()
      const t = sums[which]
      const proc = (p1.user + p1.system) / 1000
      t.proc += proc
      t.server += s1 - s0
      t.cpu += proc + s1 - s0
      t.wall += w1 - w0
      ran[which] += claimed
      // the last step claims none and writes the settles of the one before
      if (claimed === 0) done[which] = true
    }
    order = [order[1]!, order[0]!]
  }
  for (const which of ["old", "new"] as const) {
    if (ran[which] !== jobs) throw new Error(`${which}: drained ${ran[which]} of ${jobs}`)
    await stores[which].reset()
  }
  return sums
}

/** One round with several consumers per tree: each tree enqueues and drains, in turns. */
const concurrentRound = async (stores: Record<Tree, Awaited<ReturnType<typeof open>>>, first: Tree) => {
  const sums = { old: zero(), new: zero() }
  for (const which of first === "old" ? (["old", "new"] as const) : (["new", "old"] as const)) {
    await stores[which].enqueue()
    const pids = await backends()
    const w0 = performance.now(), p0 = process.threadCpuUsage(), s0 = cpuOf(pids)
    const ran = await stores[which].drain()
    const s1 = cpuOf(pids), p1 = process.threadCpuUsage(p0), w1 = performance.now()
    const proc = (p1.user + p1.system) / 1000
    sums[which] = { proc, server: s1 - s0, cpu: proc + s1 - s0, wall: w1 - w0 }
    if (ran !== jobs) throw new Error(`${which}: drained ${ran} of ${jobs}`)
    await stores[which].reset()
  }
  return sums
}

const quantile = (xs: Array<number>, q: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(s.length * q))]!
}

try {
  const stores = { old: await open("old"), new: await open("new") }
  await (consumers === 1 ? round : concurrentRound)(stores, "old") // warm both
  const load = loadavg()[0]!.toFixed(2)
  const times = { old: [] as Array<Times>, new: [] as Array<Times> }
  for (let r = 0; r < rounds; r++) {
    const sums = await (consumers === 1 ? round : concurrentRound)(stores, r % 2 === 0 ? "old" : "new")
    times.old.push(sums.old)
    times.new.push(sums.new)
    if (process.env.PG_DRAIN_AB_VERBOSE) {
      console.error(r, ...(["old", "new"] as const).map((which) => {
        const t = sums[which]
        return `${which} proc ${t.proc.toFixed(0)} server ${t.server.toFixed(0)} wall ${t.wall.toFixed(0)}`
      }))
    }
  }
  const result: Record<string, unknown> = { jobs, limit, consumers, rounds, loadAtStart: load, loadAtEnd: loadavg()[0]!.toFixed(2) }
  for (const measure of measures) {
    const ratios = times.new.map((t, i) => t[measure] / times.old[i]![measure])
    result[measure] = {
      oldMs: quantile(times.old.map((t) => t[measure]), 0.5).toFixed(1),
      newMs: quantile(times.new.map((t) => t[measure]), 0.5).toFixed(1),
      ratio: quantile(ratios, 0.5).toFixed(3),
      iqr: `${quantile(ratios, 0.25).toFixed(3)}-${quantile(ratios, 0.75).toFixed(3)}`
    }
  }
  console.log(JSON.stringify(result))
} catch (error) {
  console.error(error)
  process.exitCode = 1
} finally {
  for (const schema of schemas) await monitor.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
  await monitor.end()
  // the stores' sessions stay open: their scopes are never closed
  process.exit()
}
