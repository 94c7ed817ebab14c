/**
 * The library inside a real Node app, as users deploy it (fixtures/app-shape/app.ts): run by
 * `NodeRuntime.runMain`, with a WorkPool, a ThreadPool and a durable consumer on an SQLite file;
 * stopped by signals as a terminal, Kubernetes, systemd or pm2 stop it. Every wait is for an event
 * (a line the app printed, its exit), under an overall deadline; bounds are generous, since a busy
 * 2-core machine is slow to start a process, never tight.
 */
import * as esbuild from "esbuild"
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, ManagedRuntime, Schedule } from "effect"
import { afterAll, assert, describe, it } from "vitest"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as PgJobStore from "../src/PgJobStore.ts"
import * as RedisJobStore from "../src/RedisJobStore.ts"
import * as ThreadPool from "../src/ThreadPool.ts"
import { waitUntil } from "./durable/children.ts"
import * as pg from "./durable/postgres.ts"
import { type Setup, setup } from "./durable/processes.ts"
import * as redis from "./durable/redis.ts"
import { Work } from "./fixtures/durable-tasks.ts"

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

  // The parts close as a scope closes: one after another, in reverse order of making (consumer,
  // threads, fibers), each waiting up to its own shutdownTimeout, so the fiber job runs on while the
  // others drain: the stop takes the sum, which a process manager's grace must cover (docs/operations.md)
  it("SIGTERM with jobs past the grace: each part interrupts its jobs at its shutdownTimeout, in turn; the durable job is handed back, its attempt not counted", async () => {
    const a = start({ APP_JOBS: "fiber:600000,thread:600000,durable:600000,spin", APP_SHUTDOWN_MS: "1000" })
    await a.until(() => ["fiber start 0", "thread start 1", "durable start 2", "thread spinning 3"].every(a.has), "every job runs")
    a.child.kill("SIGTERM")
    assert.deepStrictEqual(await a.exited, { code: 130, signal: null }, a.stderr())
    for (const line of ["durable interrupted 2", "thread interrupted 1", "fiber interrupted 0", "outcome 3 failure PoolShutdown: the pool is shut down (job was running)"]) {
      assert.include(a.lines, line)
    }
    // consumer 1 s, then threads 1 s + the spinning thread's cancelGrace (1 s), then fibers 1 s
    assert.isAtLeast(a.drainMillis(), 4000, a.lines.join("\n"))
    const info = await statusOf(a.db, durableId(a, 2))
    assert.deepStrictEqual([info.state, info.attempts], ["queued", 0])
  })

  it("the documented recipe, one finalizer shutting every part down at once: the stop takes one shutdownTimeout (and a spinning thread's cancelGrace), not their sum", async () => {
    const a = start({ APP_JOBS: "fiber:600000,thread:600000,durable:600000,spin", APP_SHUTDOWN_MS: "3000", APP_STOP: "together" })
    await a.until(() => ["fiber start 0", "thread start 1", "durable start 2", "thread spinning 3"].every(a.has), "every job runs")
    a.child.kill("SIGTERM")
    assert.deepStrictEqual(await a.exited, { code: 130, signal: null }, a.stderr())
    for (const line of ["durable interrupted 2", "thread interrupted 1", "fiber interrupted 0"]) assert.include(a.lines, line)
    // together: 3 s + 1 s; in turn it would be 3 + (3 + 1) + 3 = 10 s
    assert.isAtLeast(a.drainMillis(), 3000)
    assert.isBelow(a.drainMillis(), 9000, a.lines.join("\n"))
    const info = await statusOf(a.db, durableId(a, 2))
    assert.deepStrictEqual([info.state, info.attempts], ["queued", 0])
  })

  // runMain interrupts its main fiber on the first signal and again (a no-op) on each later one: a
  // second Ctrl+C does not cut the drain short (docs/operations.md says so; SIGKILL does)
  it("a second SIGINT while draining changes nothing: the drain goes on to its deadline, the durable job is still handed back", async () => {
    const a = start({ APP_JOBS: "durable:600000", APP_SHUTDOWN_MS: "2000" })
    await a.until(() => a.has("durable start 0") && a.has("ready"), "the durable job runs")
    a.child.kill("SIGINT")
    await a.until(() => a.has("signal SIGINT"), "the app heard the first SIGINT")
    a.child.kill("SIGINT")
    assert.deepStrictEqual(await a.exited, { code: 130, signal: null }, a.stderr())
    assert.strictEqual(a.lines.filter((line) => line === "signal SIGINT").length, 2)
    assert.include(a.lines, "durable interrupted 0")
    assert.isAtLeast(a.drainMillis(), 2000)
    const info = await statusOf(a.db, durableId(a, 0))
    assert.deepStrictEqual([info.state, info.attempts], ["queued", 0])
  })

  it.each([
    ["its layer takes ten minutes to build", { APP_WORKER_LAYER_MS: "600000" }],
    ["its worker file spins at load", { APP_WORKER_LOAD: "spin" }]
  ])("SIGTERM while the ThreadPool's threads are still starting (%s): the app exits at once, not after startTimeout", async (_, env) => {
    const a = start({ ...env, APP_SHUTDOWN_MS: "30000" })
    await a.until(() => a.has("thread loaded"), "a thread is loading")
    a.child.kill("SIGTERM")
    assert.deepStrictEqual(await a.exited, { code: 130, signal: null }, a.stderr())
    assert.notInclude(a.lines, "pools")
    // the start is interrupted, its threads terminated: not the 30 s grace, nor the start's timeout
    assert.isBelow(a.drainMillis(), 15_000)
  })

  // docs/threads.md: a thread not gone within cancelGrace of being asked to close is terminated
  it("a thread whose layer's release never ends: SIGTERM still stops the app, the thread terminated after cancelGrace", async () => {
    const a = start({ APP_JOBS: "thread:600000", APP_SHUTDOWN_MS: "500", APP_WORKER_RELEASE: "hang" })
    await a.until(() => a.has("thread start 0") && a.has("ready"), "the task runs")
    a.child.kill("SIGTERM")
    assert.deepStrictEqual(await a.exited, { code: 130, signal: null }, a.stderr())
    assert.include(a.lines, "thread interrupted 0")
    assert.include(a.lines, "thread release")
    assert.isBelow(a.drainMillis(), 15_000)
  })

  // runMain listens to SIGINT and SIGTERM only (docs/operations.md says so)
  it("SIGHUP (a closed terminal) ends the app at once, with no drain: the durable job stays leased", async () => {
    const a = start({ APP_JOBS: "durable:600000", APP_SHUTDOWN_MS: "1000" })
    await a.until(() => a.has("durable start 0") && a.has("ready"), "the job runs")
    a.child.kill("SIGHUP")
    assert.deepStrictEqual(await a.exited, { code: null, signal: "SIGHUP" })
    assert.notInclude(a.lines, "durable interrupted 0")
    const info = await statusOf(a.db, durableId(a, 0))
    assert.deepStrictEqual([info.state, info.attempts], ["running", 1])
  })

  // documented: "a job that shields itself from interruption keeps its slot until it ends"
  it("an uninterruptible fiber job holds the stop past shutdownTimeout until it ends", async () => {
    const a = start({ APP_JOBS: "stuck:4000", APP_SHUTDOWN_MS: "200" })
    await a.until(() => a.has("fiber start 0") && a.has("ready"), "the job runs")
    a.child.kill("SIGTERM")
    assert.deepStrictEqual(await a.exited, { code: 130, signal: null }, a.stderr())
    assert.include(a.lines, "fiber done 0")
    assert.notInclude(a.lines, "fiber interrupted 0")
  })
})

/** What Kubernetes, systemd and pm2 do to stop a process: SIGTERM (pm2: SIGINT), then SIGKILL once `grace` has passed. */
const stopLikeAProcessManager = async (a: App, grace: number) => {
  a.child.kill("SIGTERM")
  const timer = setTimeout(() => a.child.kill("SIGKILL"), grace)
  const exit = await a.exited
  clearTimeout(timer)
  return exit
}

describe("a process manager: SIGTERM, then SIGKILL after its grace", { timeout: 120_000 }, () => {
  it("shutdownTimeouts that fit the grace: the app exits by itself and hands its durable job back", async () => {
    const a = start({ APP_JOBS: "durable:600000,thread:600000", APP_SHUTDOWN_MS: "500" })
    await a.until(() => a.has("durable start 0") && a.has("thread start 1"), "the jobs run")
    assert.deepStrictEqual(await stopLikeAProcessManager(a, 20_000), { code: 130, signal: null }, a.stderr())
    const info = await statusOf(a.db, durableId(a, 0))
    assert.deepStrictEqual([info.state, info.attempts], ["queued", 0])
  })

  // the defaults (30 s per part, drained in turn) outlast Kubernetes' 30 s, systemd's 90 s and pm2's
  // 1.6 s: the app is killed mid-drain, and its durable job waits for its lease (30 s) to expire
  it("the default shutdownTimeouts outlast the grace: killed mid-drain, the durable job stays leased (running) until its lease expires", async () => {
    const a = start({ APP_JOBS: "durable:600000", APP_SHUTDOWN_MS: "30000" })
    await a.until(() => a.has("durable start 0") && a.has("ready"), "the job runs")
    assert.deepStrictEqual(await stopLikeAProcessManager(a, 2000), { code: null, signal: "SIGKILL" })
    const info = await statusOf(a.db, durableId(a, 0))
    assert.deepStrictEqual([info.state, info.attempts], ["running", 1])
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

describe("bundled by esbuild, the worker file a second entry point", { timeout: 120_000 }, () => {
  const out = join(dir, "bundle")
  let built: Promise<unknown> | undefined
  const build = () =>
    (built ??= esbuild.build({
      entryPoints: ["app.ts", "worker.ts"].map((file) => new URL(`./fixtures/app-shape/${file}`, import.meta.url).pathname),
      bundle: true,
      platform: "node",
      format: "esm",
      outdir: out,
      sourcemap: true,
      logLevel: "silent"
    }))

  it.each([
    ["with --enable-source-maps: the source's file and line", ["--enable-source-maps"], /at failInTheThread \(.*test\/fixtures\/app-shape\/worker\.ts:\d+:\d+\)/],
    ["without: the bundle's", [], /at failInTheThread \(.*bundle\/worker\.js:\d+:\d+\)/]
  ])("worker pointed at the bundled worker.js: fiber, thread and durable jobs run; a thread task's defect's stack names %s", async (_, args, frame) => {
    await build()
    const a = start({ APP_WORKER: "./worker.js", APP_JOBS: "fiber:10,thread:10,throw,durable:10" }, join(out, "app.js"), args)
    await a.until(() => ["outcome 0 success", "outcome 1 success", "durable done 3"].every(a.has) && a.lines.some((line) => line.startsWith("outcome 2 die")), "every job ends")
    const failure = a.lines.slice(a.lines.findIndex((line) => line.startsWith("outcome 2 die")))
    assert.include(failure[0], "thrown in the thread for 2")
    assert.isTrue(failure.some((line) => frame.test(line)), failure.join("\n"))
    a.child.kill("SIGTERM")
    assert.deepStrictEqual(await a.exited, { code: 130, signal: null }, a.stderr())
  })

  // minified names (no function or class keeps its own) and chunks shared by the two entries
  it("minified and split into shared chunks (--minify --splitting): the same jobs run", async () => {
    const split = join(dir, "bundle-min")
    await esbuild.build({
      entryPoints: ["app.ts", "worker.ts"].map((file) => new URL(`./fixtures/app-shape/${file}`, import.meta.url).pathname),
      bundle: true,
      platform: "node",
      format: "esm",
      outdir: split,
      minify: true,
      splitting: true,
      logLevel: "silent"
    })
    const a = start({ APP_WORKER: "./worker.js", APP_JOBS: "fiber:10,thread:10,throw,durable:10" }, join(split, "app.js"))
    await a.until(() => ["outcome 0 success", "outcome 1 success", "durable done 3"].every(a.has) && a.lines.some((line) => line.startsWith("outcome 2 die Error: thrown in the thread for 2")), "every job ends")
    a.child.kill("SIGTERM")
    assert.deepStrictEqual(await a.exited, { code: 130, signal: null }, a.stderr())
  })

  // esbuild leaves `new URL("./worker.ts", import.meta.url)` as it is: after bundling it names a file
  // beside the bundle that is not there
  it("the source's worker path, kept in the bundle: make fails with InvalidPoolConfig naming the missing file, the app exits 1", async () => {
    await build()
    const a = start({}, join(out, "app.js"))
    assert.deepStrictEqual(await a.exited, { code: 1, signal: null })
    // runMain's report of the failure (on stdout or stderr, as its logger writes it)
    const output = a.lines.join("\n") + a.stderr()
    assert.include(output, "InvalidPoolConfig: invalid pool option worker")
    assert.include(output, `${join(out, "worker.ts")} does not exist`)
    // and which file to name instead
    assert.include(output, `worker.js is there: a build (tsc, a bundler) keeps the name written in the source, so name the file it emitted (new URL("./worker.js", import.meta.url))`)
    assert.notInclude(a.lines, "pools")
  })
})

describe("a TypeScript worker path after tsc emitted JavaScript", () => {
  it("worker.mts missing, worker.mjs beside it: InvalidPoolConfig says to name the emitted file; with no such file, no word of one", async () => {
    const built = join(dir, "tsc-out")
    mkdirSync(built)
    writeFileSync(join(built, "worker.mjs"), "")
    const makeWith = (file: string) =>
      Effect.runPromise(Effect.flip(Effect.scoped(ThreadPool.make({ worker: new URL(`file://${join(built, file)}`), threads: 1 }))))
    const error = await makeWith("worker.mts")
    assert.strictEqual(error._tag, "InvalidPoolConfig")
    assert.include(error.message, `${join(built, "worker.mts")} does not exist`)
    assert.include(error.message, `worker.mjs is there`)
    assert.include(error.message, `new URL("./worker.mjs", import.meta.url)`)
    assert.notInclude((await makeWith("other.ts")).message, "is there")
  })
})

describe("under Node's permission model (--permission)", { timeout: 120_000 }, () => {
  // the app itself, its sources and node_modules readable; its SQLite files readable and writable
  const allowed = () => {
    const files = `${join(dir, "app-")}*`
    return ["--permission", `--allow-fs-read=${process.cwd()}`, `--allow-fs-read=${realpathSync("node_modules")}`, `--allow-fs-read=${files}`, `--allow-fs-write=${files}`]
  }
  const failure = (a: App) => a.lines.join("\n") + a.stderr()

  it("with --allow-worker and its files readable: fiber, thread and durable jobs run", async () => {
    const a = start({ APP_JOBS: "thread:10,fiber:10,durable:10" }, app, [...allowed(), "--allow-worker"])
    await a.until(() => ["outcome 0 success", "outcome 1 success", "durable done 2"].every(a.has), "every job ends")
    a.child.kill("SIGTERM")
    assert.deepStrictEqual(await a.exited, { code: 130, signal: null }, failure(a))
  })

  it("without --allow-worker: make fails with WorkerStartFailed at its first attempt, naming the flag, not after every retry", async () => {
    const a = start({}, app, allowed())
    assert.deepStrictEqual(await a.exited, { code: 1, signal: null }, failure(a))
    assert.include(failure(a), "WorkerStartFailed: a worker thread failed to start (1 attempts)")
    assert.include(failure(a), "--allow-worker")
  })

  // a file system call on a path the process may not read throws ERR_ACCESS_DENIED, which the check
  // of `worker` read as a file that is not there
  it("a worker file it may not read: InvalidPoolConfig says the permission model forbids reading it, not that it does not exist", async () => {
    const outside = join(dir, "unreadable")
    mkdirSync(outside)
    for (const file of ["worker.ts", "tasks.ts"]) {
      const text = readFileSync(new URL(`./fixtures/app-shape/${file}`, import.meta.url), "utf8")
      writeFileSync(join(outside, file), text.replaceAll("../../../src/", `${process.cwd()}/src/`))
    }
    const a = start({ APP_WORKER: `file://${join(outside, "worker.ts")}` }, app, [...allowed(), "--allow-worker"])
    assert.deepStrictEqual(await a.exited, { code: 1, signal: null }, failure(a))
    assert.include(failure(a), `InvalidPoolConfig: invalid pool option worker: expected a worker file, but ${join(outside, "worker.ts")} cannot be read under Node's permission model (--permission): allow it with --allow-fs-read`)
  })
})

describe("node --watch: a restart hands the old process's work back", { timeout: 120_000 }, () => {
  it("the durable job the old process ran is given back at its SIGTERM and run again by the new one at once, not after its 30 s lease (attempt 1 again)", async () => {
    const watched = join(dir, "watched")
    mkdirSync(watched)
    writeFileSync(join(watched, "config.json"), "{}")
    const a = start({ APP_JOBS: "durable:600000", APP_SHUTDOWN_MS: "500" }, app, [`--watch-path=${watched}`])
    await a.until(() => a.has("durable start 0") && a.has("ready"), "the first process runs the job")
    const first = durableId(a, 0)
    writeFileSync(join(watched, "config.json"), "{\"changed\":true}")
    // the new process runs its own job 0 and the old one's
    await a.until(() => a.lines.filter((line) => line === "durable start 0").length === 3, "the new process runs both jobs")
    assert.include(a.lines, "durable interrupted 0")
    const info = await statusOf(a.db, first)
    assert.deepStrictEqual([info.state, info.attempts], ["running", 1])
    a.child.kill("SIGTERM")
    await a.exited
  })
})

// The consumer process of the multi-process tests (fixtures/durable-consumer.ts, run by runMain, its
// shutdownTimeout 5 s), on each store: those tests kill it (-9); here it is stopped as a deployment
// stops it, with a job that never ends running, on fibers and on a ThreadPool
describe("SIGTERM to a durable consumer process on each store: its running job is handed back", { timeout: 120_000 }, () => {
  const stores: ReadonlyArray<readonly [string, boolean, () => Setup]> = [
    ["SQLite", true, () => setup(JobStore.sqlite({ filename: join(dir, `consumer-${dbs}.db`) }), join(dir, `consumer-${dbs++}.db`), {})],
    ["Postgres", pg.enabled, () => {
      const schema = pg.freshSchema()
      return setup(PgJobStore.layer({ url: pg.url!, schema, maxConnections: 2 }), pg.url!, { WORKPOOL_PG_SCHEMA: schema })
    }],
    ["Redis", redis.enabled, () => {
      const prefix = redis.freshPrefix()
      return setup(RedisJobStore.layer({ url: redis.url!, prefix }), redis.url!, { WORKPOOL_REDIS_PREFIX: prefix })
    }]
  ]
  for (const [name, enabled, make] of stores) {
    for (const mode of ["fibers", "threads"] as const) {
      it.skipIf(!enabled)(`${name}, on ${mode}: exit 130, the job queued again with its attempt not counted`, async () => {
        const { consumer, runtime } = make()
        const job = await runtime.runPromise(JobQueue.enqueue(Work, { n: 1 }, { maxAttempts: 3 }))
        const c = consumer(1, 30_000, 60_000, mode === "threads" ? "threads" : undefined, { WORKPOOL_TEST_HOLD_FROM: "1" })
        await waitUntil([c], () => c.started.includes(1), "the consumer runs the job")
        c.child.kill("SIGTERM")
        await c.exited
        assert.strictEqual(c.child.exitCode, 130, `${c.stderr}\n${c.lines.join("\n")}`)
        const info = await runtime.runPromise(JobQueue.status(job.id))
        assert.deepStrictEqual([info.state, info.attempts], ["queued", 0], c.lines.join("\n"))
      })
    }
  }
})
