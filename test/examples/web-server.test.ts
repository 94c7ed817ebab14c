/**
 * Tests for examples/web-server.ts, over real HTTP on the loopback interface: the app is started on
 * port 0 (a free port) with its job queue in a fresh SQLite file, and driven with `fetch`. Waiting is
 * done by polling a job's status or reading the program's log lines, never by sleeping a fixed time,
 * and nothing asserts on timing, so a slow machine only makes it slower.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Logger, References, Schedule, Scope } from "effect"
import { HttpServer } from "effect/http"
import { TestClock } from "effect/testing"
import { spawn } from "node:child_process"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { connect } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { fileURLToPath } from "node:url"
import { afterAll } from "vitest"
import { Jobs, type JobView, makeApp, maxBodyBytes, maxWaiting, Report } from "../../examples/web-server.ts"
import { JobQueue } from "../../src/index.ts"
import * as JobStore from "../../src/JobStore.ts"

const dir = mkdtempSync(join(tmpdir(), "web-server-test-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let files = 0
/** A new SQLite file for each test: no test sees another's jobs. */
const freshDatabase = () => join(dir, `jobs-${++files}.db`)

// The app logs its jobs and its drain; keep the test output quiet.
const appOn = (database: string, level: "Info" | "Warn" = "Warn") =>
  makeApp({ port: 0, host: "127.0.0.1", database, logRequests: false }).pipe(
    Layer.provide(Layer.succeed(References.MinimumLogLevel, level))
  )
const TestApp = Layer.suspend(() => appOn(freshDatabase()))

/** A job as the store has it, read by another connection to the file (as another process would). */
const stored = (database: string, id: string) => JobQueue.status(id).pipe(Effect.provide(JobStore.sqlite({ filename: database })))

const baseUrl = (app: Context.Context<HttpServer.HttpServer>) =>
  HttpServer.formatAddress(Context.get(app, HttpServer.HttpServer).address)

const post = (base: string, body: unknown) =>
  Effect.promise(async () => {
    const response = await fetch(`${base}/jobs`, { method: "POST", body: JSON.stringify(body) })
    return { status: response.status, body: await response.json() as { id: string; status: string; location: string } }
  })

const get = (base: string, id: string) =>
  Effect.promise(async () => {
    const response = await fetch(`${base}/jobs/${id}`)
    return { status: response.status, body: await response.json() as JobView }
  })

// Polls until the job reaches `wanted`; the test's own timeout bounds the wait. Only for an end
// state: a job can pass through "running" between two polls, and then this would never return.
const waitForStatus = (base: string, id: string, wanted: string) =>
  get(base, id).pipe(Effect.repeat({ until: (r) => r.body.status === wanted, schedule: Schedule.spaced("10 millis") }))

const tick = Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 1)))

describe("web-server", () => {
  it.live("POST /jobs answers 202 with an id, and GET /jobs/:id follows the job to succeeded", () =>
    Effect.gen(function*() {
      const base = baseUrl(yield* Layer.build(TestApp))
      const accepted = yield* post(base, { task: "report", millis: 20 })
      assert.strictEqual(accepted.status, 202)
      assert.isString(accepted.body.id)
      assert.strictEqual(accepted.body.location, `/jobs/${accepted.body.id}`)

      const done = yield* waitForStatus(base, accepted.body.id, "succeeded")
      assert.strictEqual(done.status, 200)
      assert.deepStrictEqual(done.body, {
        id: accepted.body.id,
        status: "succeeded",
        attempts: 1,
        progress: 1, // the last of its quarterly reports
        result: { task: "report", tookMillis: 20 }
      })
    }))

  it.live("a failing job is retried, then ends dead with its error; bad requests and unknown ids are refused", () =>
    Effect.gen(function*() {
      const base = baseUrl(yield* Layer.build(TestApp))
      const accepted = yield* post(base, { task: "mail", millis: 0, fail: true })
      assert.strictEqual(accepted.status, 202)
      const failed = yield* waitForStatus(base, accepted.body.id, "dead")
      assert.strictEqual(failed.body.error, "task mail failed")
      assert.strictEqual(failed.body.attempts, 3)

      assert.strictEqual((yield* post(base, { task: "no millis" })).status, 400)
      assert.strictEqual((yield* post(base, { task: "x", millis: -1 })).status, 400)
      assert.strictEqual((yield* get(base, "999999")).status, 404)
    }))

  it.live("with maxWaiting jobs waiting in the file, POST /jobs answers 429 and stores nothing", () =>
    Effect.gen(function*() {
      const database = freshDatabase()
      const base = baseUrl(yield* Layer.build(appOn(database)))
      // another process fills the queue, paused so that this server's consumer leaves it alone
      const backlog = yield* Effect.provide(
        Effect.gen(function*() {
          yield* JobQueue.pause("web")
          for (let i = 0; i < maxWaiting; i++) yield* JobQueue.enqueue(Report, { task: `old ${i}`, millis: 0 }, { queue: "web" })
          return yield* JobQueue.stats("web")
        }),
        JobStore.sqlite({ filename: database })
      )
      assert.strictEqual(backlog.waiting, maxWaiting)
      const refused = yield* post(base, { task: "one too many", millis: 0 })
      assert.deepStrictEqual<unknown>(refused, { status: 429, body: { error: `${maxWaiting} jobs are waiting; try again later` } })
      const after = yield* Effect.provide(JobQueue.stats("web"), JobStore.sqlite({ filename: database }))
      assert.strictEqual(after.waiting, maxWaiting)
    }))

  it.live("while another process holds the file's write lock past the busy timeout, POST /jobs answers 503; then 202", () =>
    Effect.gen(function*() {
      const database = freshDatabase()
      const app = makeApp({ port: 0, host: "127.0.0.1", database, busyTimeout: "50 millis", logRequests: false }).pipe(
        // the consumer's claims fail too while the lock is held, and say so at warning level
        Layer.provide(Layer.succeed(References.MinimumLogLevel, "Error"))
      )
      const base = baseUrl(yield* Layer.build(app))
      const other = new DatabaseSync(database)
      yield* Effect.addFinalizer(() => Effect.sync(() => other.close()))
      other.exec("BEGIN IMMEDIATE")
      const refused = yield* Effect.promise(async () => {
        const response = await fetch(`${base}/jobs`, { method: "POST", body: JSON.stringify({ task: "locked out", millis: 0 }) })
        return { status: response.status, retryAfter: response.headers.get("retry-after"), body: await response.json() as { error: string } }
      })
      assert.strictEqual(refused.status, 503)
      assert.strictEqual(refused.retryAfter, "1")
      assert.match(refused.body.error, /job store: .* failed/)
      other.exec("ROLLBACK")
      const accepted = yield* post(base, { task: "after the lock", millis: 0 })
      assert.strictEqual(accepted.status, 202)
      assert.strictEqual((yield* waitForStatus(base, accepted.body.id, "succeeded")).body.attempts, 1)
    }))

  it.live("a body over the size limit is refused with 413 and a reason; one exactly at the limit is accepted", () =>
    Effect.gen(function*() {
      const base = baseUrl(yield* Layer.build(TestApp))
      // JSON may end in whitespace, so padding makes a valid request of any size.
      const sized = (bytes: number) => {
        const json = JSON.stringify({ task: "padded", millis: 0 })
        return json + " ".repeat(bytes - json.length)
      }
      const send = (body: string) =>
        Effect.promise(async () => {
          const response = await fetch(`${base}/jobs`, { method: "POST", body })
          return { status: response.status, connection: response.headers.get("connection"), body: await response.json() }
        })

      assert.strictEqual((yield* send(sized(maxBodyBytes))).status, 202)
      for (const bytes of [maxBodyBytes + 1, 10 * 1024 * 1024]) {
        const refused = yield* send(sized(bytes))
        assert.deepStrictEqual(refused, {
          status: 413,
          connection: "close", // the rest of a large upload is not waited for
          body: { error: `request body larger than ${maxBodyBytes} bytes` }
        })
      }
    }))

  it.live("shutting the app down drains the running jobs; a queued one stays in the file and runs after a restart", () =>
    Effect.gen(function*() {
      const database = freshDatabase()
      const logged: Array<string> = []
      const collector = Logger.make((options) => void logged.push(String(options.message)))
      const scope = yield* Scope.make()
      const app = yield* Layer.buildWithScope(
        appOn(database, "Info").pipe(Layer.provide(Logger.layer([collector]))),
        scope
      )
      const base = baseUrl(app)

      // Two workers: the first two jobs start as they are admitted, the third waits in the queue.
      const ids: Array<string> = []
      for (const task of ["a", "b", "c"]) ids.push((yield* post(base, { task, millis: 200 })).body.id)
      while (!(logged.includes("working on a (200 ms)") && logged.includes("working on b (200 ms)"))) yield* tick

      // What SIGTERM does to the real program: release the app's layers.
      yield* Scope.close(scope, Exit.void)

      // The running jobs finished; the one that had not started is still queued, in the file.
      const states = yield* Effect.forEach(ids, (id) => Effect.map(stored(database, id), (job) => [job.state, job.attempts]))
      assert.deepStrictEqual(states, [["succeeded", 1], ["succeeded", 1], ["queued", 0]])
      // And the server no longer accepts connections.
      const refused = yield* Effect.promise(() => fetch(`${base}/jobs/${ids[0]}`).then(() => false, () => true))
      assert.isTrue(refused)

      // The next start runs it.
      const restarted = baseUrl(yield* Layer.build(appOn(database)))
      const done = yield* waitForStatus(restarted, ids[2]!, "succeeded")
      assert.deepStrictEqual(done.body.result, { task: "c", tookMillis: 200 })
    }))
})

describe("web-server shutdown and slow clients", () => {
  // A client that sent its headers and part of its body, and then stalls, must not hold the
  // process for the HTTP server's default grace (20 s) after the drain: added to the drain's 10 s,
  // that is the 30 s after which an orchestrator sends SIGKILL. Timed on the TestClock: the test
  // counts how much clock time the close needs, waiting for real events between steps.
  it.effect("a request whose body never completes delays the stop by at most a few seconds", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const app = yield* Layer.buildWithScope(TestApp, scope)
      const { port } = new URL(baseUrl(app))
      const socket = connect(Number(port), "127.0.0.1")
      yield* Effect.addFinalizer(() => Effect.sync(() => socket.destroy()))
      // With `Expect: 100-continue` the server answers "100 Continue" when the handler starts
      // reading the body: from then on the request is in flight on the server.
      yield* Effect.callback<void>((resume) => {
        socket.on("data", (chunk) => {
          if (String(chunk).startsWith("HTTP/1.1 100")) resume(Effect.void)
        })
        socket.write("POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
          "Content-Length: 100\r\nExpect: 100-continue\r\n\r\n")
      })
      socket.write("{\"task\":")

      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      let clockMillis = 0
      while (closing.pollUnsafe() === undefined && clockMillis < 30_000) {
        yield* TestClock.adjust("100 millis")
        clockMillis += 100
        yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 1)))
      }
      assert.isDefined(closing.pollUnsafe(), "the app did not stop within 30 s of clock time")
      assert.isAtMost(clockMillis, 3_000)
    }))
})

describe("web-server drain cut short", () => {
  // Background's shutdownTimeout is 10 s: a job accepted before the drain and still running after it
  // is interrupted and given back to the store, to start over after the restart. Its work so far is
  // lost, and the log must say so above the INFO level.
  it.effect("a job interrupted by the drain's deadline is given back to the store, its attempt not counted, with a warning", () =>
    Effect.gen(function*() {
      const database = freshDatabase()
      const logged: Array<string> = []
      const collector = Logger.make((options) => void logged.push(`${options.logLevel} ${String(options.message)}`))
      const scope = yield* Scope.make()
      const app = yield* Layer.buildWithScope(appOn(database).pipe(Layer.provide(Logger.layer([collector]))), scope)
      const accepted = yield* post(baseUrl(app), { task: "long", millis: 60_000 })
      assert.strictEqual(accepted.status, 202)
      const jobs = Context.get(app, Jobs)
      const status = Effect.map(jobs.view(accepted.body.id), (view) => view._tag === "Some" ? view.value.status : "missing")
      while ((yield* status) !== "running") yield* tick

      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      while (closing.pollUnsafe() === undefined) {
        yield* TestClock.adjust("1 second")
        yield* tick
      }
      const job = yield* stored(database, accepted.body.id)
      assert.deepStrictEqual([job.state, job.attempts], ["queued", 0])
      const warnings = logged.filter((line) => line.startsWith("Warn"))
      assert.strictEqual(warnings.length, 1, logged.join("\n"))
      assert.match(warnings[0]!, /1 job was interrupted .*given back to the store/)
    }))
})

// The real program, as a child process on a file of its own: start it, give it a job, stop it (SIGTERM,
// or SIGKILL), start it again; every wait is for a line it prints or for the job in the store.
const node = existsSync("node_modules/.bin/node") ? "node_modules/.bin/node" : process.execPath
const script = fileURLToPath(new URL("../../examples/web-server.ts", import.meta.url))

type Child = Readonly<{
  /** Resolves with the first match of `pattern` in the output, as soon as it is printed. */
  printed: (pattern: RegExp) => Promise<RegExpExecArray>
  exited: Promise<number | null>
  output: () => string
  kill: (signal: NodeJS.Signals) => void
}>

const start = (database: string, onTestFinished: (f: () => void) => void): Child => {
  const child = spawn(node, [script], { env: { ...process.env, PORT: "0", JOBS_DB: database }, stdio: ["ignore", "pipe", "pipe"] })
  // Also when the test times out: no server is left running.
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
  })
  let output = ""
  child.stdout.on("data", (chunk) => output += chunk)
  child.stderr.on("data", (chunk) => output += chunk)
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
  const printed = (pattern: RegExp) =>
    new Promise<RegExpExecArray>((resolve, reject) => {
      const check = () => {
        const match = pattern.exec(output)
        if (match) resolve(match)
      }
      check()
      child.stdout.on("data", check)
      child.on("exit", () => reject(new Error(`exited before printing ${pattern}:\n${output}`)))
    })
  return { printed, exited, output: () => output, kill: (signal) => void child.kill(signal) }
}

const listening = async (child: Child) => (await child.printed(/Listening on (http:\/\/127\.0\.0\.1:\d+)/))[1]!

describe("web-server as a program", () => {
  // Starting a node process is CPU work, slow on a busy machine: a generous limit, as in examples-run.
  it("on SIGTERM it answers 503 to new jobs while it drains the accepted one, then exits 0", { timeout: 90_000 }, async ({ onTestFinished }) => {
    const database = freshDatabase()
    const server = start(database, onTestFinished)
    const base = await listening(server)
    const accepted = await fetch(`${base}/jobs`, { method: "POST", body: JSON.stringify({ task: "t", millis: 3000 }) })
    assert.strictEqual(accepted.status, 202)
    const { id } = await accepted.json() as { id: string }
    await server.printed(/working on t \(3000 ms\)/)

    server.kill("SIGTERM")
    await server.printed(/shutting down: draining 1 running jobs/)

    // While it drains (the job has seconds to go; these two requests take milliseconds) the server
    // still answers: new work is refused with a 503 that tells the client to go elsewhere...
    const refused = await fetch(`${base}/jobs`, { method: "POST", body: JSON.stringify({ task: "late", millis: 0 }) })
    assert.strictEqual(refused.status, 503)
    assert.strictEqual(refused.headers.get("connection"), "close")
    assert.isNotNull(refused.headers.get("retry-after"))
    assert.deepStrictEqual(await refused.json(), { error: "shutting down" })
    // ...and the status of accepted jobs can still be read.
    const status = await fetch(`${base}/jobs/${id}`)
    assert.strictEqual((await status.json() as JobView).status, "running")

    const code = await server.exited
    assert.include(server.output(), "drained: 1 succeeded, 0 failed, 0 given back")
    assert.strictEqual(code, 0) // a complete drain is a clean exit, not "killed by a signal" (130)
    const job = await Effect.runPromise(stored(database, id))
    assert.deepStrictEqual([job.state, job.attempts], ["succeeded", 1])
  })

  it("a job running when the program is killed (SIGKILL) runs again after a restart, and GET /jobs/:id shows its result", { timeout: 90_000 }, async ({ onTestFinished }) => {
    const database = freshDatabase()
    const first = start(database, onTestFinished)
    const accepted = await fetch(`${await listening(first)}/jobs`, {
      method: "POST",
      body: JSON.stringify({ task: "k9", millis: 4000 })
    })
    assert.strictEqual(accepted.status, 202)
    const { id } = await accepted.json() as { id: string }
    await first.printed(/working on k9 \(4000 ms\)/)
    first.kill("SIGKILL") // no drain, no give-back: the job is left running in the file, under a lease
    await first.exited
    assert.strictEqual((await Effect.runPromise(stored(database, id))).state, "running")

    // The new process's reaper finds the lease expired and puts the job back; its consumer runs it.
    const second = start(database, onTestFinished)
    const base = await listening(second)
    const result = await Effect.runPromise(JobQueue.handleOf(Report, id).await.pipe(Effect.provide(JobStore.sqlite({ filename: database }))))
    assert.deepStrictEqual(result, { task: "k9", tookMillis: 4000 })
    const view = await fetch(`${base}/jobs/${id}`)
    assert.strictEqual(view.status, 200)
    assert.deepStrictEqual(await view.json(), {
      id,
      status: "succeeded",
      attempts: 2, // the killed one counts: it may have done part of the work
      progress: 1,
      result: { task: "k9", tookMillis: 4000 }
    })

    second.kill("SIGTERM")
    assert.strictEqual(await second.exited, 0)
  })
})
