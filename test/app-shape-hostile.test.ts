/**
 * The library inside a real Node app, as users deploy it (fixtures/app-shape/app.ts): run by
 * `NodeRuntime.runMain`, with a WorkPool, a ThreadPool and a durable consumer on an SQLite file;
 * stopped by signals as a terminal, Kubernetes, systemd or pm2 stop it. Every wait is for an event
 * (a line the app printed, its exit), under an overall deadline; bounds are generous, since a busy
 * 2-core machine is slow to start a process, never tight.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, ManagedRuntime, Schedule } from "effect"
import { afterAll, assert, describe, it } from "vitest"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as ThreadPool from "../src/ThreadPool.ts"

const node = existsSync("node_modules/.bin/node") ? "node_modules/.bin/node" : process.execPath
const app = new URL("./fixtures/app-shape/app.ts", import.meta.url).pathname
const dir = mkdtempSync(join(tmpdir(), "app-shape-"))
const children: Array<ChildProcess> = []
afterAll(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
  rmSync(dir, { recursive: true, force: true })
})

interface App {
  readonly child: ChildProcess
  readonly lines: Array<string>
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  stderr: () => string
  readonly has: (line: string) => boolean
  readonly until: (check: () => boolean, what: string, millis?: number) => Promise<void>
  /** The app's `exited <ms>`: ms from the first signal to its scope's end. */
  readonly drainMillis: () => number
}

let dbs = 0
const start = (env: Record<string, string>, script = app, args: ReadonlyArray<string> = []): App & { db: string } => {
  const db = join(dir, `app-${dbs++}.db`)
  const child = spawn(node, [...args, script], { env: { ...process.env, APP_DB: db, ...env }, stdio: ["ignore", "pipe", "pipe"] })
  children.push(child)
  const lines: Array<string> = []
  let stderr = ""
  let partial = ""
  const waiters = new Set<() => void>()
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    const parts = (partial + chunk).split("\n")
    partial = parts.pop()!
    lines.push(...parts)
    for (const waiter of waiters) waiter()
  })
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => {
      resolve({ code, signal })
      for (const waiter of waiters) waiter()
    })
  )
  const until = (check: () => boolean, what: string, millis = 60_000) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(onEvent)
        reject(new Error(`timed out waiting until ${what}; output:\n${lines.join("\n")}\n${stderr}`))
      }, millis)
      const onEvent = () => {
        if (check()) {
          clearTimeout(timer)
          waiters.delete(onEvent)
          resolve()
        } else if (child.exitCode !== null || child.signalCode !== null) {
          clearTimeout(timer)
          waiters.delete(onEvent)
          reject(new Error(`the app exited (${child.exitCode ?? child.signalCode}) before ${what}; output:\n${lines.join("\n")}\n${stderr}`))
        }
      }
      waiters.add(onEvent)
      onEvent()
    })
  const has = (line: string) => lines.includes(line)
  const drainMillis = () => Number(lines.find((line) => line.startsWith("exited "))?.slice(7) ?? NaN)
  return { child, lines, exited, stderr: () => stderr, has, until, drainMillis, db }
}

const store = (db: string) => ManagedRuntime.make(JobStore.sqlite({ filename: db }))
const statusOf = async (db: string, id: string) => {
  const runtime = store(db)
  try {
    return await runtime.runPromise(JobQueue.status(id))
  } finally {
    await runtime.dispose()
  }
}
const durableId = (a: App, n: number) => a.lines.find((line) => line.startsWith(`enqueued ${n} `))!.split(" ")[2]!

describe("signals: an app run by NodeRuntime.runMain", { timeout: 120_000 }, () => {
  it("SIGTERM while a fiber job, a thread task and a durable job run: each finishes within the grace, the app exits 130", async () => {
    const a = start({ APP_JOBS: "fiber:1500,thread:1500,durable:1500", APP_SHUTDOWN_MS: "20000" })
    await a.until(() => ["fiber start 0", "thread start 1", "durable start 2"].every(a.has), "every job runs")
    a.child.kill("SIGTERM")
    const exit = await a.exited
    assert.deepStrictEqual(exit, { code: 130, signal: null }, a.stderr())
    for (const line of ["fiber done 0", "thread done 1", "durable done 2", "outcome 0 success", "outcome 1 success"]) {
      assert.include(a.lines, line)
    }
    const info = await statusOf(a.db, durableId(a, 2))
    assert.deepStrictEqual([info.state, info.attempts], ["succeeded", 1])
  })
})

describe("a worker file that never finishes loading", () => {
  // Node ends a thread whose top-level await can never settle with exit code 13 (its warning goes to
  // stderr, far from the error): "exited with code 13" named nothing the user wrote
  it("its top-level await never settles: WorkerStartFailed says so, not only 'exited with code 13'", async () => {
    const error = await Effect.runPromise(Effect.flip(Effect.scoped(ThreadPool.make({
      worker: new URL("./fixtures/app-shape/unsettled-await-worker.ts", import.meta.url),
      threads: 1,
      startSchedule: Schedule.recurs(0)
    }))))
    assert.strictEqual(error._tag, "WorkerStartFailed")
    assert.include(error.message, "exited with code 13 before it was ready")
    assert.include(error.message, "top-level await")
  }, 60_000)
})
