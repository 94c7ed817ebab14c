/**
 * Tests for examples/web-server.ts, over real HTTP on the loopback interface: the app is started on
 * port 0 (a free port) and driven with `fetch`. Waiting is done by polling a job's status, never by
 * sleeping a fixed time, and nothing asserts on timing, so a slow machine only makes it slower.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, References, Schedule, Scope } from "effect"
import { HttpServer } from "effect/http"
import { spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { Jobs, type JobView, makeApp } from "../../examples/web-server.ts"

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

// Polls until the job reaches `wanted`; the test's own timeout bounds the wait.
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

  it.live("shutting the app down drains running and queued jobs before it completes", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const app = yield* Layer.buildWithScope(TestApp, scope)
      const base = baseUrl(app)
      const jobs = Context.get(app, Jobs)

      // Two workers: the first two jobs run, the third waits in the queue.
      const ids: Array<number> = []
      for (const task of ["a", "b", "c"]) ids.push((yield* post(base, { task, millis: 200 })).body.id)
      yield* waitForStatus(base, ids[0]!, "running")

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

// The real program, as a child process: start it, give it a job, send SIGTERM while the job runs,
// and check that it waited for the job before exiting.
const node = existsSync("node_modules/.bin/node") ? "node_modules/.bin/node" : process.execPath
const script = fileURLToPath(new URL("../../examples/web-server.ts", import.meta.url))

describe("web-server as a program", () => {
  it("drains a running job on SIGTERM, then exits 0", async () => {
    const child = spawn(node, [script], { env: { ...process.env, PORT: "0" }, stdio: ["ignore", "pipe", "pipe"] })
    let output = ""
    child.stdout.on("data", (chunk) => output += chunk)
    child.stderr.on("data", (chunk) => output += chunk)
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
    try {
      const base = await new Promise<string>((resolve, reject) => {
        const check = () => {
          const match = /Listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(output)
          if (match) resolve(match[1]!)
        }
        child.stdout.on("data", check)
        child.on("exit", () => reject(new Error(`server exited early:\n${output}`)))
      })
      const accepted = await fetch(`${base}/jobs`, { method: "POST", body: JSON.stringify({ task: "t", millis: 300 }) })
      const { id } = await accepted.json() as { id: number }
      while ((await (await fetch(`${base}/jobs/${id}`)).json() as JobView).status !== "running") {
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
      child.kill("SIGTERM")
      const code = await exited
      assert.include(output, "shutting down: draining 1 running and 0 queued jobs")
      assert.include(output, "drained: 1 succeeded, 0 failed, 0 interrupted")
      assert.strictEqual(code, 0) // a complete drain is a clean exit, not "killed by a signal" (130)
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL")
    }
  })
})
