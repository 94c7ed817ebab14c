/**
 * Consumer processes for the multi-process tests (fixtures/durable-consumer.ts), followed by their
 * output: each line is an event (`ready`, `start <n>`, `done <n>`, `interrupted <n>`, a logged
 * warning) that a test waits for, never a fixed sleep.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { DatabaseSync } from "node:sqlite"
import { Effect, type Layer, type ManagedRuntime } from "effect"
import { afterAll, assert } from "vitest"
import * as JobQueue from "../../src/JobQueue.ts"
import * as JobStore from "../../src/JobStore.ts"
import { storeOf } from "../fixtures/durable-store.ts"
import { Work } from "../fixtures/durable-tasks.ts"
import * as Pg from "./postgres.ts"
import * as Rd from "./redis.ts"

const node = existsSync("node_modules/.bin/node") ? "node_modules/.bin/node" : process.execPath
const fixture = new URL("../fixtures/durable-consumer.ts", import.meta.url).pathname
const children: Array<ChildProcess> = []
afterAll(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
})

export interface Consumer {
  readonly child: ChildProcess
  /** Job numbers in the order this process started them. */
  readonly started: Array<number>
  /** Every line it printed. */
  readonly lines: Array<string>
  /** Warnings it logged (e.g. a store it cannot reach). */
  warnings: number
  readonly exited: Promise<void>
  stderr: string
}

/** Calls `check` on every line of output until it returns true. */
export const waitUntil = (
  consumers: ReadonlyArray<Pick<Consumer, "child" | "lines" | "stderr">>,
  check: () => boolean,
  what: string,
  millis = 90_000
) =>
  new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup()
      const output = consumers.map((c) => `${c.stderr}${c.lines.slice(-20).join("\n")}`).join("\n---\n")
      reject(new Error(`timed out waiting until ${what}; last output:\n${output}`))
    }, millis)
    const onLine = () => {
      if (check()) {
        cleanup()
        resolve()
      }
    }
    const cleanup = () => {
      clearTimeout(timer)
      for (const c of consumers) c.child.stdout!.off("data", onLine)
    }
    for (const c of consumers) c.child.stdout!.on("data", onLine)
    onLine()
  })

/** Reads until `check` holds (a condition of the store, not a guessed time), every 50 ms; fails after `millis`. */
export const untilRead = async <A>(read: () => Promise<A>, check: (a: A) => boolean, what: string, millis = 90_000): Promise<A> => {
  const deadline = Date.now() + millis
  while (true) {
    const value = await read()
    if (check(value)) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}: ${JSON.stringify(value).slice(0, 500)}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

export const startConsumer = (
  store: string,
  options: { concurrency: number; lease: number; jobMillis: number; mode?: string; env?: Record<string, string> }
): Consumer => {
  const args = [fixture, store, String(options.concurrency), String(options.lease), String(options.jobMillis), options.mode ?? ""]
  const child = spawn(node, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...options.env } })
  children.push(child)
  return followConsumer(child)
}

/**
 * A consumer process's output, parsed as it comes: `start <n> ...` lines and logged warnings
 * counted. Its listener is registered first, so every later one sees the lines already parsed.
 */
export const followConsumer = (child: ChildProcess): Consumer => {
  const consumer: Consumer = {
    child,
    started: [],
    lines: [],
    warnings: 0,
    exited: new Promise((resolve) => child.on("close", () => resolve())), // after its output
    stderr: ""
  }
  let buffered = ""
  child.stdout!.on("data", (chunk: Buffer) => {
    buffered += chunk.toString()
    const lines = buffered.split("\n")
    buffered = lines.pop()!
    for (const line of lines) {
      consumer.lines.push(line)
      if (line.startsWith("start ")) consumer.started.push(Number(line.split(" ")[1]))
      else if (line.includes(" WARN ")) consumer.warnings++
    }
  })
  child.stderr!.on("data", (chunk: Buffer) => {
    consumer.stderr += chunk.toString()
  })
  return consumer
}

/** Polls the store (a condition, not a guessed time) until every job is final. */
export const untilFinal = async <S extends { succeeded: number; dead: number; cancelled: number }>(
  stats: () => Promise<S>,
  jobs: number,
  millis = 120_000
): Promise<S> => {
  const deadline = Date.now() + millis
  let last = await stats()
  while (last.succeeded + last.dead + last.cancelled < jobs) {
    if (Date.now() > deadline) throw new Error(`not finished: ${JSON.stringify(last)}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
    last = await stats().catch(() => last)
  }
  return last
}

/**
 * The at-least-once check after consumers were killed: every job of `ids` (job n's payload is n)
 * succeeds with its result, none is lost or dead, and the only jobs started more than once are
 * jobs the killed processes held (`inFlight`). Returns how many ran twice.
 */
export const assertEveryJobOnce = async (
  runtime: ManagedRuntime.ManagedRuntime<JobStore.JobStore, never>,
  consumers: ReadonlyArray<Consumer>,
  ids: ReadonlyArray<string>,
  inFlight: ReadonlySet<number>,
  millis?: number
): Promise<number> => {
  const stats = await untilFinal(() => runtime.runPromise(JobQueue.stats("default")), ids.length, millis)
  assert.strictEqual(stats.succeeded, ids.length, "0 lost, none dead")
  const results = await runtime.runPromise(Effect.forEach(ids, (id) => JobQueue.await(Work, id)))
  assert.deepStrictEqual(results, ids.map((_, n) => n))
  const starts = new Map<number, number>()
  for (const c of consumers) for (const n of c.started) starts.set(n, (starts.get(n) ?? 0) + 1)
  const duplicates = Array.from(starts).filter(([, count]) => count > 1).map(([n]) => n)
  assert.strictEqual(starts.size, ids.length)
  for (const n of duplicates) assert.isTrue(inFlight.has(n), `job ${n} ran twice but was not in flight in a killed process`)
  assert.isAtMost(duplicates.length, inFlight.size)
  return duplicates.length
}

/** How many jobs `consumer` printed the start of and not yet their end. */
const runningIn = (consumer: Consumer): number => {
  const open = new Set<string>()
  for (const line of consumer.lines) {
    const [event, n] = line.split(" ")
    if (event === "start") open.add(n!)
    else if (event === "done" || event === "interrupted") open.delete(n!)
  }
  return open.size
}

/**
 * Kills `victim` with SIGKILL once it has started `after` jobs (its jobs in flight then; with
 * `holding`, once it also runs one), and returns the jobs it held when it died: running jobs whose last start was the victim's. Only
 * those may run twice.
 */
export const killMidRun = async (
  victim: Consumer,
  consumers: ReadonlyArray<Consumer>,
  after: number,
  running: () => Promise<ReadonlyArray<number>>,
  holding = false
): Promise<Set<number>> => {
  // `holding`: killed while a job it printed the start of has not printed its end. A loaded test
  // process reads the victim's output late, many lines at once, and the victim may have ended and
  // settled every job it started by then (seen at load 12: 0 in flight), so such a victim is started
  // with WORKPOOL_TEST_HOLD_FROM=`after`: its `after`th job never ends (waiting for a job that
  // merely runs long enough also timed out at load 15: the queue drained first)
  await waitUntil(
    consumers,
    () => victim.started.length >= after && (!holding || runningIn(victim) > 0),
    `the victim has started ${after} jobs${holding ? " and runs one" : ""}`
  )
  victim.child.kill("SIGKILL")
  await victim.exited
  const lastStarter = new Map<number, Consumer>()
  for (const c of consumers) for (const n of c.started) lastStarter.set(n, c)
  return new Set((await running()).filter((n) => lastStarter.get(n) === victim))
}

/** Whether the process is stopped (state T in /proc: a SIGSTOP has landed, not just been sent). */
const isStopped = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("T")
  } catch {
    return false
  }
}

/**
 * Whether the SQLite file's write lock is free now (no wait). A process frozen inside a write
 * transaction holds the lock, and every other process's writes with it, until it resumes or dies:
 * a limit of SQLite (docs/durable.md), not what a zombie test is about.
 */
export const sqliteWritable = (file: string) => () => {
  const db = new DatabaseSync(file, { timeout: 0 })
  try {
    db.exec("BEGIN IMMEDIATE")
    db.exec("ROLLBACK")
    return true
  } catch {
    return false
  } finally {
    db.close()
  }
}

/**
 * SIGSTOPs a consumer between two of its store writes: frozen, then resumed and frozen again while
 * `writable` says another process could not write now (it caught the consumer inside a transaction).
 */
export const freeze = async (consumer: Consumer, writable: () => boolean = () => true) => {
  const pid = consumer.child.pid!
  for (let tries = 0; ; tries++) {
    consumer.child.kill("SIGSTOP")
    while (!isStopped(pid)) await new Promise((resolve) => setTimeout(resolve, 1))
    if (writable()) return
    assert.isBelow(tries, 100, "the consumer was inside a write transaction at every one of 100 freezes")
    consumer.child.kill("SIGCONT")
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/** A store as processes share it: the children's target and env, and the test's own (public) layer on it. */
export interface ProcessStore {
  readonly target: string
  readonly env: Record<string, string>
  readonly layer: Layer.Layer<JobStore.JobStore, unknown>
}

/** Each store the machine has, by name, for processes to share: an SQLite file from `freshFile`, Postgres and Redis when configured. */
export const processStoresOf = (freshFile: () => string): Array<[string, () => ProcessStore]> => {
  const stores: Array<[string, () => ProcessStore]> = [
    ["an SQLite file", () => {
      const file = freshFile()
      return { target: file, env: {}, layer: storeOf(file, { maxConnections: 2 }) }
    }]
  ]
  if (Pg.enabled) {
    stores.push(["Postgres", () => {
      const env = { WORKPOOL_PG_SCHEMA: Pg.freshSchema() }
      return { target: Pg.url!, env, layer: storeOf(Pg.url!, { maxConnections: 2, env }) }
    }])
  }
  if (Rd.enabled) {
    stores.push(["Redis", () => {
      const env = { WORKPOOL_REDIS_PREFIX: Rd.freshPrefix() }
      return { target: Rd.url!, env, layer: storeOf(Rd.url!, { maxConnections: 2, env }) }
    }])
  }
  return stores
}

/** A job's run in a consumer process, from the times the child printed (end Infinity: it never printed one). */
export interface Run {
  readonly n: number
  /** The consumer's place in the list given to `runsOf`. */
  readonly consumer: number
  readonly start: number
  end: number
}

/** The runs each consumer printed (`start <n> <ms>`, `done <n> <ms>`: WORKPOOL_TEST_STAMP). */
export const runsOf = (consumers: ReadonlyArray<Consumer>): Array<Run> =>
  consumers.flatMap((c, consumer) => {
    const runs: Array<Run> = []
    const open = new Map<number, Run>()
    for (const line of c.lines) {
      const [event, n, at] = line.split(" ")
      if (event === "start") {
        const run: Run = { n: Number(n), consumer, start: Number(at), end: Infinity }
        runs.push(run)
        open.set(run.n, run)
      } else if (event === "done") {
        const run = open.get(Number(n))
        if (run !== undefined) run.end = Number(at)
      }
    }
    return runs
  })

/**
 * The most runs at once: an end at the same millisecond as a start comes first (the settle that
 * freed the slot or key came before the claim).
 */
export const mostAtOnce = (runs: ReadonlyArray<Pick<Run, "start" | "end">>) => {
  const events = runs.flatMap((run) => [[run.start, 1], [run.end, -1]] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1])
  let now = 0
  let most = 0
  for (const [, delta] of events) most = Math.max(most, now += delta)
  return most
}
