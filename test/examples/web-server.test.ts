/**
 * Tests for examples/web-server.ts, over real HTTP on the loopback interface: the app is started on
 * port 0 (a free port) and driven with `fetch`. Waiting is done by polling a job's status, never by
 * sleeping a fixed time, and nothing asserts on timing, so a slow machine only makes it slower.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Logger, References, Schedule, Scope } from "effect"
import { HttpServer } from "effect/http"
import { TestClock } from "effect/testing"
import { spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { connect } from "node:net"
import { fileURLToPath } from "node:url"
import { Jobs, type JobView, makeApp, maxBodyBytes } from "../../examples/web-server.ts"

// The app logs its drain at shutdown; keep the test output quiet.
const TestApp = makeApp({ port: 0, host: "127.0.0.1", logRequests: false }).pipe(
  Layer.provide(Layer.succeed(References.MinimumLogLevel, "Warn"))
)

const baseUrl = (app: Context.Context<HttpServer.HttpServer>) =>
  HttpServer.formatAddress(Context.get(app, HttpServer.HttpServer).address)

const post = (base: string, body: unknown) =>
  Effect.promise(async () => {
    const response = await fetch(`${base}/jobs`, { method: "POST", body: JSON.stringify(body) })
    return { status: response.status, body: await response.json() as { id: number; status: string; location: string } }
  })

const get = (base: string, id: number) =>
  Effect.promise(async () => {
    const response = await fetch(`${base}/jobs/${id}`)
    return { status: response.status, body: await response.json() as JobView }
  })

// Polls until the job reaches `wanted`; the test's own timeout bounds the wait. Only for an end
// state: a job can pass through "running" between two polls, and then this would never return.
const waitForStatus = (base: string, id: number, wanted: string) =>
  get(base, id).pipe(Effect.repeat({ until: (r) => r.body.status === wanted, schedule: Schedule.spaced("10 millis") }))

describe("web-server", () => {
  it.live("POST /jobs answers 202 with an id, and GET /jobs/:id follows the job to succeeded", () =>
    Effect.gen(function*() {
      const base = baseUrl(yield* Layer.build(TestApp))
      const accepted = yield* post(base, { task: "report", millis: 20 })
      assert.strictEqual(accepted.status, 202)
      assert.isNumber(accepted.body.id)
      assert.strictEqual(accepted.body.location, `/jobs/${accepted.body.id}`)

      const done = yield* waitForStatus(base, accepted.body.id, "succeeded")
      assert.strictEqual(done.status, 200)
      assert.deepStrictEqual(done.body, {
        id: accepted.body.id,
        status: "succeeded",
        result: { task: "report", tookMillis: 20 }
      })
    }))

  it.live("a failing job ends as failed, with its error; bad requests and unknown ids are refused", () =>
    Effect.gen(function*() {
      const base = baseUrl(yield* Layer.build(TestApp))
      const accepted = yield* post(base, { task: "mail", millis: 0, fail: true })
      assert.strictEqual(accepted.status, 202)
      const failed = yield* waitForStatus(base, accepted.body.id, "failed")
      assert.strictEqual(failed.body.error, "task mail failed")

      assert.strictEqual((yield* post(base, { task: "no millis" })).status, 400)
      assert.strictEqual((yield* post(base, { task: "x", millis: -1 })).status, 400)
      assert.strictEqual((yield* get(base, 999_999)).status, 404)
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

  it.live("shutting the app down drains running and queued jobs before it completes", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const app = yield* Layer.buildWithScope(TestApp, scope)
      const base = baseUrl(app)
      const jobs = Context.get(app, Jobs)

      // Two workers: the first two jobs start as they are admitted, the third waits in the queue.
      const ids: Array<number> = []
      for (const task of ["a", "b", "c"]) ids.push((yield* post(base, { task, millis: 200 })).body.id)

      // What SIGTERM does to the real program: release the app's layers.
      yield* Scope.close(scope, Exit.void)

      // Every job finished, even the one that had not started when the shutdown began.
      for (const id of ids) {
        const view = yield* jobs.view(id)
        assert.strictEqual(view._tag === "Some" ? view.value.status : "missing", "succeeded")
      }
      // And the server no longer accepts connections.
      const refused = yield* Effect.promise(() => fetch(`${base}/jobs/${ids[0]}`).then(() => false, () => true))
      assert.isTrue(refused)
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
  // is interrupted. That is work lost, and the log must say so above the INFO level.
  it.effect("a job interrupted by the drain's deadline is reported at warning level", () =>
    Effect.gen(function*() {
      const logged: Array<string> = []
      const collector = Logger.make((options) => void logged.push(`${options.logLevel} ${String(options.message)}`))
      const scope = yield* Scope.make()
      const app = yield* Layer.buildWithScope(TestApp.pipe(Layer.provide(Logger.layer([collector]))), scope)
      const accepted = yield* post(baseUrl(app), { task: "long", millis: 60_000 })
      assert.strictEqual(accepted.status, 202)
      const jobs = Context.get(app, Jobs)
      const status = Effect.map(jobs.view(accepted.body.id), (view) => view._tag === "Some" ? view.value.status : "missing")
      while ((yield* status) !== "running") yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 1)))

      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      while (closing.pollUnsafe() === undefined) {
        yield* TestClock.adjust("1 second")
        yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 1)))
      }
      assert.strictEqual(yield* status, "interrupted")
      const warnings = logged.filter((line) => line.startsWith("Warn"))
      assert.strictEqual(warnings.length, 1, logged.join("\n"))
      assert.match(warnings[0]!, /1 job .*interrupted/)
    }))
})

// The real program, as a child process: start it, give it a job, send SIGTERM while the job runs,
// and check that it refuses new work with 503 while it waits for the job, then exits 0.
const node = existsSync("node_modules/.bin/node") ? "node_modules/.bin/node" : process.execPath
const script = fileURLToPath(new URL("../../examples/web-server.ts", import.meta.url))

describe("web-server as a program", () => {
  // Starting a node process is CPU work, slow on a busy machine: a generous limit, as in examples-run.
  it("on SIGTERM it answers 503 to new jobs while it drains the accepted one, then exits 0", { timeout: 90_000 }, async ({ onTestFinished }) => {
    const child = spawn(node, [script], { env: { ...process.env, PORT: "0" }, stdio: ["ignore", "pipe", "pipe"] })
    // Also when the test times out: no server is left running.
    onTestFinished(() => {
      if (child.exitCode === null) child.kill("SIGKILL")
    })
    let output = ""
    child.stdout.on("data", (chunk) => output += chunk)
    child.stderr.on("data", (chunk) => output += chunk)
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
    // Resolves with the first match of `pattern` in the program's output, as soon as it is printed.
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
    const base = (await printed(/Listening on (http:\/\/127\.0\.0\.1:\d+)/))[1]!
    const accepted = await fetch(`${base}/jobs`, { method: "POST", body: JSON.stringify({ task: "t", millis: 3000 }) })
    assert.strictEqual(accepted.status, 202)
    const { id } = await accepted.json() as { id: number }

    // The job was accepted, so it is running (two workers, nothing else queued) when SIGTERM comes.
    child.kill("SIGTERM")
    await printed(/shutting down: draining 1 running and 0 queued jobs/)

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

    const code = await exited
    assert.include(output, "drained: 1 succeeded, 0 failed, 0 interrupted")
    assert.strictEqual(code, 0) // a complete drain is a clean exit, not "killed by a signal" (130)
  })
})
