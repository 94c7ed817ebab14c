/**
 * The dashboard under attack: requests a browser can be tricked into sending (DNS rebinding),
 * values that a pool reports and the page must survive, and the page's own content policy.
 * Requests are real, on loopback; those that need a Host header of their own go through
 * `node:http` (fetch does not let a caller set it).
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import { createHash } from "node:crypto"
import { existsSync } from "node:fs"
import { request as httpRequest } from "node:http"
import * as Dashboard from "../src/Dashboard.ts"
import { JobQueue, WorkPool } from "../src/index.ts"
import { StoreError } from "../src/DurableError.ts"
import * as JobStore from "../src/JobStore.ts"
import { JobStore as StoreTag } from "../src/internal/store/model.ts"
import { jsonSafe } from "../src/internal/dashboard/sampler.ts"
import { type Browser, CHROMIUM, launch } from "./browser/chromium.ts"
import { answeredWithin, settle, tickUntil } from "./helpers.ts"

const TOKEN = "0123456789abcdef-test-token"

const start = (options: Dashboard.Options = { token: TOKEN }) =>
  Effect.map(Layer.build(Dashboard.layer(options)), (context) => Context.get(context, Dashboard.Dashboard))

/** A request with the Host header given. */
const send = (
  dashboard: Dashboard.Dashboard["Service"],
  path: string,
  host: string,
  options: { readonly method?: "GET" | "POST"; readonly headers?: Record<string, string>; readonly body?: string } = {}
) =>
  Effect.promise(() =>
    new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
      const url = new URL(dashboard.address)
      const req = httpRequest({
        host: url.hostname,
        port: url.port,
        path,
        method: options.method ?? "GET",
        agent: false,
        headers: { host, ...options.headers }
      }, (response) => {
        let body = ""
        response.setEncoding("utf8")
        response.on("data", (chunk) => (body += chunk))
        response.on("end", () => resolve({ status: response.statusCode!, headers: response.headers, body }))
      })
      req.on("error", reject)
      req.end(options.body)
    })
  )

/** The first server-sent event of a new page (a sample with the job lists). */
const firstEvent = (dashboard: Dashboard.Dashboard["Service"]) =>
  Effect.promise(async () => {
    const controller = new AbortController()
    const response = await fetch(dashboard.address + "api/events", {
      headers: { authorization: `Bearer ${TOKEN}` },
      signal: controller.signal
    })
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
    let buffer = ""
    try {
      while (!buffer.includes("\n\n")) {
        const { done, value } = await reader.read()
        if (done) break
        buffer += value
      }
    } finally {
      controller.abort()
    }
    return JSON.parse(/^data: (.*)$/m.exec(buffer)![1]!)
  })

const port = (dashboard: Dashboard.Dashboard["Service"]) => new URL(dashboard.address).port

describe("Dashboard: DNS rebinding", () => {
  // A site the operator visits makes its own name resolve to 127.0.0.1: its page is then the same
  // origin as the dashboard, so it may send any header, and a check that trusts a header (or
  // trusts loopback) would let it in. Its requests carry its own name in the Host header.
  it.effect("a request whose Host is not this server's gets 403, whatever the check says", () =>
    Effect.gen(function*() {
      const dashboard = yield* start({ authorize: () => Effect.succeed(true) })
      const pool = yield* WorkPool.make({ concurrency: 1, name: "rebound" })
      yield* dashboard.add(pool)
      const job = yield* pool.submit(Effect.never)
      yield* Effect.addFinalizer(() => pool.cancel(job.id)) // a pool's graceful close would wait for it
      yield* settle
      const evil = `evil.example:${port(dashboard)}`

      const snapshot = yield* send(dashboard, "/api/snapshot", evil)
      assert.strictEqual(snapshot.status, 403)
      assert.match(JSON.parse(snapshot.body).error, /evil\.example.*allowedHosts/)
      assert.strictEqual((yield* send(dashboard, "/api/events", evil)).status, 403)
      assert.strictEqual((yield* send(dashboard, "/", evil)).status, 403)
      const cancel = yield* send(dashboard, `/api/pools/rebound/jobs/${job.id}/cancel`, evil, {
        method: "POST",
        headers: { "x-workpool-dashboard": "1" }
      })
      assert.strictEqual(cancel.status, 403)
      assert.strictEqual(yield* job.status, "running")
      // a name that ends like a loopback one is still another name
      assert.strictEqual((yield* send(dashboard, "/api/snapshot", `localhost.evil.example:${port(dashboard)}`)).status, 403)
      assert.strictEqual((yield* send(dashboard, "/api/snapshot", `127.0.0.1.evil.example`)).status, 403)

      // the names this server is reached by directly: loopback names and IP addresses
      for (const host of [`127.0.0.1:${port(dashboard)}`, `localhost:${port(dashboard)}`, "LOCALHOST.", `[::1]:${port(dashboard)}`, "app.localhost", "10.1.2.3:80"]) {
        assert.strictEqual((yield* send(dashboard, "/api/snapshot", host)).status, 200, host)
      }
    }))

  it.effect("allowedHosts adds names (a leading dot: the name and its subdomains), or 'any' turns the check off", () =>
    Effect.gen(function*() {
      const named = yield* start({ token: TOKEN, allowedHosts: ["dash.example.com", ".ops.example"] })
      const auth = { authorization: `Bearer ${TOKEN}` }
      for (const host of ["dash.example.com", "dash.example.com:443", "ops.example", "a.b.ops.example"]) {
        assert.strictEqual((yield* send(named, "/api/snapshot", host, { headers: auth })).status, 200, host)
      }
      for (const host of ["example.com", "x.dash.example.com", "evilops.example"]) {
        assert.strictEqual((yield* send(named, "/api/snapshot", host, { headers: auth })).status, 403, host)
      }
      const any = yield* start({ token: TOKEN, allowedHosts: "any" })
      assert.strictEqual((yield* send(any, "/api/snapshot", "whatever.example", { headers: auth })).status, 200)
      // the token is still needed
      assert.strictEqual((yield* send(any, "/api/snapshot", "whatever.example")).status, 401)
    }))

  it.effect("a bad allowedHosts fails with InvalidDashboardOptions naming it", () =>
    Effect.gen(function*() {
      for (const bad of ["*", [""], ["a b"], ["host:80"], [7], {}]) {
        const error = yield* Effect.flip(start({ token: TOKEN, allowedHosts: bad as any }))
        assert.strictEqual(error._tag, "InvalidDashboardOptions")
        assert.strictEqual((error as Dashboard.InvalidDashboardOptions).field, "allowedHosts")
      }
    }))
})

describe("Dashboard: values a pool reports", () => {
  it("jsonSafe turns any progress value into something JSON carries, even one that neither JSON nor String can read", () => {
    const bare = Object.assign(Object.create(null), { done: 1n }) // no toString, and a bigint JSON refuses
    const hostile = { toJSON: () => { throw new Error("no JSON") }, toString: () => { throw new Error("no text") } }
    for (const value of [bare, hostile, Symbol("s"), 10n]) {
      const safe = jsonSafe(value)
      assert.strictEqual(typeof safe, "string")
      assert.doesNotThrow(() => JSON.stringify(safe))
    }
  })

  it.effect("a job whose progress cannot be read leaves its pool's counts and lists readable", () =>
    Effect.gen(function*() {
      const dashboard = yield* start()
      const pool = yield* WorkPool.make({ concurrency: 2, name: "odd-progress" })
      yield* dashboard.add(pool)
      const job = yield* pool.submit(Effect.gen(function*() {
        const { progress } = yield* WorkPool.JobContext
        yield* progress(Object.assign(Object.create(null), { done: 1n }))
        return yield* Effect.never
      }))
      yield* Effect.addFinalizer(() => pool.cancel(job.id))
      yield* settle
      const events = yield* firstEvent(dashboard)
      const source = events.sources.find((s: any) => s.name === "odd-progress")
      assert.strictEqual(source.counts.running, 1, JSON.stringify(source.counts))
      assert.strictEqual(source.detail.running.length, 1)
      assert.strictEqual(typeof source.detail.running[0].progress, "string")
    }))

  it.effect("a job that failed with an error Cause.pretty cannot print leaves its pool's counts and lists readable", () =>
    Effect.gen(function*() {
      const dashboard = yield* start()
      const pool = yield* WorkPool.make({ concurrency: 2, name: "odd-error", retention: { count: 10, age: "1 hour" } })
      yield* dashboard.add(pool)
      const unprintable = { toJSON: () => { throw new Error("no JSON") } }
      const vanishing = Object.defineProperty(new Error("x"), "message", { get: () => { throw new Error("no message") } })
      yield* Effect.exit(Effect.flatMap(pool.submit(Effect.fail(unprintable)), (job) => job.await))
      yield* Effect.exit(Effect.flatMap(pool.submit(Effect.die(vanishing)), (job) => job.await))
      const source = (yield* firstEvent(dashboard)).sources.find((s: any) => s.name === "odd-error")
      assert.strictEqual(source.counts.failed + source.counts.defects, 2, JSON.stringify(source.counts))
      assert.strictEqual(source.detail.failed.length, 2)
      for (const job of source.detail.failed) assert.strictEqual(typeof job.error, "string")
    }))
})

describe("Dashboard: the page's content policy", () => {
  it.effect("only the page's own script may run: its hash, not 'unsafe-inline'", () =>
    Effect.gen(function*() {
      const dashboard = yield* start()
      const response = yield* Effect.promise(() => fetch(dashboard.address))
      const html = yield* Effect.promise(() => response.text())
      const policy = response.headers.get("content-security-policy") ?? ""
      const scriptSrc = /(?:^|;)\s*script-src ([^;]*)/.exec(policy)?.[1] ?? ""
      assert.notInclude(scriptSrc, "'unsafe-inline'")
      const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]!)
      assert.strictEqual(scripts.length, 1)
      const hash = createHash("sha256").update(scripts[0]!, "utf8").digest("base64")
      assert.strictEqual(scriptSrc.trim(), `'sha256-${hash}'`)
    }))
})

describe("Dashboard: a source that stops answering", () => {
  // a store whose connection hangs (a network partition, an exhausted pool of connections) must
  // not freeze the page: the other sources, new pages and the buttons go on
  it.effect("a queue whose store never answers shows an error; pools, new pages and buttons go on", () =>
    Effect.gen(function*() {
      const memory = yield* Layer.build(JobStore.memory())
      const store = Context.get(memory, StoreTag)
      const stuck = Layer.succeed(StoreTag, { ...store, counts: (queue: string) => queue === "stuck" ? Effect.never : store.counts(queue) })
      const dashboard = yield* start()
      const pool = yield* WorkPool.make({ concurrency: 1, name: "alive" })
      yield* dashboard.add(pool)
      yield* Effect.provide(dashboard.addQueue("stuck"), stuck)
      const job = yield* pool.submit(Effect.never)
      yield* Effect.addFinalizer(() => pool.cancel(job.id))
      yield* TestClock.adjust("1 second") // the interval's sample starts, and waits on the store

      // a button: its answer comes after a reading of its own source, not of the stuck queue
      const pressed = yield* answeredWithin(() =>
        fetch(`${dashboard.address}api/pools/alive/jobs/${job.id}/cancel`, {
          method: "POST",
          headers: { authorization: `Bearer ${TOKEN}`, "x-workpool-dashboard": "1" }
        }).then((r) => r.status), 300)
      assert.isDefined(pressed, "the button's request was not answered")
      assert.strictEqual(pressed, 200)
      assert.strictEqual(yield* job.status, "interrupted")

      const read = () =>
        Effect.promise(() =>
          fetch(`${dashboard.address}api/snapshot`, { headers: { authorization: `Bearer ${TOKEN}` } }).then((r) => r.json() as Promise<any>)
        )
      const stuckError = (snapshot: any) => snapshot.sources.find((s: any) => s.name === "stuck").counts?.error
      // the interval's reading shows the stuck queue as not answering once its 5 s are over
      yield* tickUntil(Effect.map(read(), (snapshot) => stuckError(snapshot) !== undefined), 30)
      assert.match(stuckError(yield* read()), /no answer within 5 seconds/)
      // and the readings go on: the pool gets its next points
      const points = (snapshot: any) => snapshot.sources.find((s: any) => s.name === "alive").points.length
      yield* tickUntil(Effect.map(read(), (snapshot) => points(snapshot) > 1), 30)
      assert.isAbove(points(yield* read()), 1)
    }).pipe(Effect.provide(JobStore.memory())))
})

describe("Dashboard: a button on a queue whose store hangs", () => {
  // BUG (fixed): a queue's cancel, redrive, pause and resume called the store with no bound: on a
  // hung store (a partition, an exhausted pool of connections) the request, and its connection, waited for ever
  it.effect("cancel, redrive, pause, resume, a hold, a cap and a per-key cap answer 504 once the store has not answered for 5 s, saying the action may still be applied", () =>
    Effect.gen(function*() {
      const memory = yield* Layer.build(JobStore.memory())
      const store = Context.get(memory, StoreTag)
      const hung = Layer.succeed(StoreTag, { ...store, get: () => Effect.never, configure: () => Effect.never })
      const dashboard = yield* start()
      yield* Effect.provide(dashboard.addQueue("hung"), hung)
      const bodies: Record<string, string> = { hold: `{"duration":0}`, concurrency: `{"limit":2}`, "group-concurrency": `{"limit":1}` }
      for (const action of ["jobs/some-id/cancel", "jobs/some-id/redrive", "pause", "resume", "hold", "concurrency", "group-concurrency"]) {
        const answer = yield* answeredWithin(() =>
          fetch(`${dashboard.address}api/queues/hung/${action}`, {
            method: "POST",
            headers: { authorization: `Bearer ${TOKEN}`, "x-workpool-dashboard": "1" },
            ...(bodies[action] === undefined ? {} : { body: bodies[action] })
          }).then(async (r) => ({ status: r.status, body: await r.json() as { error: string } })), 60)
        if (answer === undefined) return assert.fail(`${action}: not answered`)
        assert.strictEqual(answer.status, 504, action)
        assert.match(answer.body.error, /did not answer the .* within 5 seconds; it may still be applied: look again/, action)
      }
    }).pipe(Effect.provide(JobStore.memory())))
})

describe("Dashboard: read-only", () => {
  it.effect("readOnly: every button's POST is a 403 saying so, the snapshot tells the page, nothing changes; a readOnly that is not a boolean is refused", () =>
    Effect.gen(function*() {
      const dashboard = yield* start({ token: TOKEN, readOnly: true })
      yield* dashboard.addQueue("mail")
      yield* JobQueue.holdQueue("mail", "1 hour")
      const pool = yield* WorkPool.make({ concurrency: 1, name: "images", shutdownTimeout: 0 })
      yield* dashboard.add(pool)
      const job = yield* pool.submit(Effect.never)
      const posts: ReadonlyArray<readonly [string, string | undefined]> = [
        ["api/queues/mail/hold", `{"duration":0}`],
        ["api/queues/mail/concurrency", `{"limit":1}`],
        ["api/queues/mail/group-concurrency", `{"limit":1}`],
        ["api/queues/mail/pause", undefined],
        ["api/queues/mail/jobs/some-id/cancel", undefined],
        ["api/queues/mail/jobs/some-id/redrive", undefined],
        ["api/pools/images/pause", undefined],
        [`api/pools/images/jobs/${job.id}/cancel`, undefined]
      ]
      for (const [path, body] of posts) {
        const reply = yield* send(dashboard, `/${path}`, new URL(dashboard.address).host, {
          method: "POST",
          headers: { authorization: `Bearer ${TOKEN}`, "x-workpool-dashboard": "1" },
          ...(body === undefined ? {} : { body })
        })
        assert.strictEqual(reply.status, 403, path)
        assert.match(JSON.parse(reply.body).error, /read-only/, path)
      }
      const stats = yield* JobQueue.stats("mail")
      assert.isDefined(stats.heldUntil, "still held")
      assert.deepStrictEqual([stats.paused, stats.concurrency, stats.groupConcurrency], [false, undefined, undefined])
      assert.strictEqual((yield* pool.stats).state, "running")
      assert.strictEqual(yield* job.status, "running")
      assert.isTrue((yield* firstEvent(dashboard)).readOnly)
      const writable = yield* start()
      assert.isFalse((yield* firstEvent(writable)).readOnly)
      for (const readOnly of ["true", 1, null]) {
        const error = yield* Effect.flip(start({ token: TOKEN, readOnly: readOnly as never }))
        assert.strictEqual(error._tag === "InvalidDashboardOptions" && error.field, "readOnly")
      }
    }).pipe(Effect.provide(JobStore.memory())))
})

describe("Dashboard: a setting's body", () => {
  it.effect("a body past 1 KB, one that is not UTF-8 JSON, or with __proto__ is a 400; the queue is left as it was and the server goes on", () =>
    Effect.gen(function*() {
      const dashboard = yield* start()
      yield* dashboard.addQueue("mail")
      yield* JobQueue.setConcurrency("mail", 3)
      const post = (path: string, body: string | Uint8Array) =>
        Effect.promise(async () => {
          const response = await fetch(`${dashboard.address}${path}`, {
            method: "POST",
            headers: { authorization: `Bearer ${TOKEN}`, "x-workpool-dashboard": "1" },
            body
          })
          return { status: response.status, error: ((await response.json()) as { error: string }).error }
        })
      const padded = `{"limit":1${" ".repeat(2000)}}`
      for (
        const [body, reason] of [
          [padded, /at most 1024 bytes/],
          ["x".repeat(5_000_000), /at most 1024 bytes/],
          [new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), /not JSON/],
          [`{"__proto__":{"limit":1}}`, /unknown field "__proto__"/],
          [`{"limit":1e400}`, /invalid limit Infinity/]
        ] as const
      ) {
        const reply = yield* post("api/queues/mail/concurrency", body)
        assert.strictEqual(reply.status, 400, reply.error)
        assert.match(reply.error, reason)
      }
      assert.strictEqual((yield* JobQueue.stats("mail")).concurrency?.limit, 3)
      assert.deepStrictEqual(yield* post("api/queues/mail/concurrency", `{"limit":4}`), { status: 200, error: undefined } as never)
      assert.strictEqual((yield* JobQueue.stats("mail")).concurrency?.limit, 4)
    }).pipe(Effect.provide(JobStore.memory())))

  it.effect("a hold or a per-key cap on a queue whose store fails answers 500 with the store's error", () =>
    Effect.gen(function*() {
      const memory = yield* Layer.build(JobStore.memory())
      const store = Context.get(memory, StoreTag)
      const failing = Layer.succeed(StoreTag, {
        ...store,
        configure: () => Effect.fail(new StoreError({ operation: "configure", reason: "connection reset" }))
      })
      const dashboard = yield* start()
      yield* Effect.provide(dashboard.addQueue("broken"), failing)
      for (const [action, body] of [["hold", `{"duration":"5 minutes"}`], ["group-concurrency", `{"limit":1}`]] as const) {
        const reply = yield* send(dashboard, `/api/queues/broken/${action}`, new URL(dashboard.address).host, {
          method: "POST",
          headers: { authorization: `Bearer ${TOKEN}`, "x-workpool-dashboard": "1" },
          body
        })
        assert.strictEqual(reply.status, 500, action)
        assert.strictEqual(JSON.parse(reply.body).error, "the store failed: job store: configure failed: connection reset", action)
      }
    }))
})

describe("Dashboard: a store that fails", () => {
  // a 500 names what failed, and shows no stack trace (the server's paths and dependencies) to
  // whoever holds the token: the whole cause goes to the log
  it.effect("a button on a queue whose store fails answers 500 with the error's message and no stack", () =>
    Effect.gen(function*() {
      const memory = yield* Layer.build(JobStore.memory())
      const store = Context.get(memory, StoreTag)
      const failing = Layer.succeed(StoreTag, {
        ...store,
        get: () => Effect.fail(new StoreError({ operation: "get", reason: "connection reset" })),
        cancel: () => Effect.die(new Error("the driver broke"))
      })
      const dashboard = yield* start()
      yield* Effect.provide(dashboard.addQueue("broken"), failing)
      const reply = yield* send(dashboard, "/api/queues/broken/jobs/j1/cancel", new URL(dashboard.address).host, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "x-workpool-dashboard": "1" }
      })
      assert.strictEqual(reply.status, 500)
      const error: string = JSON.parse(reply.body).error
      assert.strictEqual(error, "the store failed: job store: get failed: connection reset")
      assert.notMatch(reply.body, /\bat |\.ts:\d|node:/)
    }))
})

describe("Dashboard in headless Chromium: hostile values", () => {
  it.live.skipIf(!existsSync(CHROMIUM) && process.env.CI !== "true")(
    "names, progress and errors that look like HTML are shown as text, and the buttons still reach their job",
    () =>
      Effect.gen(function*() {
        const dashboard = yield* Dashboard.Dashboard
        const attack = (where: string) => `<img src=x onerror="window.pwned='${where}'"><script>window.pwned='${where}'</script>`
        const name = `a/b?c#d%20 ${attack("name")}`
        const pool = yield* WorkPool.make({ concurrency: 2, name, retention: { count: 10, age: "1 hour" } })
        yield* dashboard.add(pool)
        yield* dashboard.addQueue(`q ${attack("queue")}`)
        const failed = yield* pool.submit(Effect.fail(`</pre>${attack("error")}`))
        yield* Effect.exit(failed.await)
        const running = yield* pool.submit(Effect.gen(function*() {
          const { progress } = yield* WorkPool.JobContext
          yield* progress({ done: 1, of: 2, note: attack("progress") })
          return yield* Effect.never
        }))

        const browser: Browser = yield* Effect.acquireRelease(Effect.promise(launch), (browser) => Effect.promise(browser.close))
        const page = yield* Effect.promise(() => browser.open(dashboard.url))
        const card = `document.querySelector('section.card')`
        yield* Effect.promise(() =>
          page.waitFor("the pool's card with its failed and running jobs", `() => ${card} && ${card}.textContent.includes("50%") && document.querySelector('td.error pre')`)
        )
        assert.isNull(yield* Effect.promise(() => page.evaluate("window.pwned ?? null")))
        assert.strictEqual(yield* Effect.promise(() => page.evaluate<number>(`document.querySelectorAll("img, script:not(:first-of-type), [onerror]").length`)), 0)
        const names = yield* Effect.promise(() => page.evaluate<Array<string>>(`[...document.querySelectorAll("h2 > span:first-child")].map((n) => n.textContent)`))
        assert.includeMembers(names, [name, `q ${attack("queue")}`])
        assert.include(yield* Effect.promise(() => page.evaluate<string>(`document.querySelector('td.error pre').textContent`)), attack("error"))

        // the cancel button of a pool whose name has /, ?, # and % in it
        const row = `tr[data-job="${running.id}"]`
        yield* Effect.promise(() => page.evaluate(`document.querySelector('${row} button[data-action="cancel"]').click()`))
        yield* Effect.promise(() =>
          page.waitFor("the cancel is confirmed", `() => document.getElementById("message").textContent.endsWith("#${running.id}: done")`)
        )
        assert.strictEqual(yield* running.status, "interrupted")
        assert.isNull(yield* Effect.promise(() => page.evaluate("window.pwned ?? null")))
      }).pipe(
        Effect.scoped,
        Effect.provide(Layer.merge(Dashboard.layer({ interval: "250 millis" }), JobStore.memory()))
      ),
    120_000
  )
})

describe("Dashboard: a token that cannot travel in a header", () => {
  it.effect("a token with characters outside printable ASCII fails with InvalidDashboardOptions (no client could send it)", () =>
    Effect.gen(function*() {
      for (const token of ["pässwörd-pässwörd-1", "0123456789abcdef\u0000", "0123456789abcdef🔑", "0123456789abcdef\u007f"]) {
        const error = yield* Effect.flip(start({ token }))
        assert.strictEqual(error._tag, "InvalidDashboardOptions", JSON.stringify(token))
        assert.strictEqual((error as Dashboard.InvalidDashboardOptions).field, "token")
        assert.notInclude((error as Dashboard.InvalidDashboardOptions).message, token)
      }
      // every printable ASCII character works, sent as the page sends it
      const token = "!\"#$%&'()*+,-./0123456789:;<=>?@AZ[\\]^_`az{|}~"
      const dashboard = yield* start({ token })
      const status = yield* Effect.promise(() =>
        fetch(`${dashboard.address}api/snapshot`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status)
      )
      assert.strictEqual(status, 200)
    }))
})

describe("Dashboard in headless Chromium: the url", () => {
  it.live.skipIf(!existsSync(CHROMIUM) && process.env.CI !== "true")(
    "a token with %, &, # and + in it still opens the page from dashboard.url; a mangled url asks for the token",
    () =>
      Effect.gen(function*() {
        const token = "0123456789abcdef%zz&x=1#y+%41"
        const dashboard = yield* Dashboard.Dashboard
        const browser: Browser = yield* Effect.acquireRelease(Effect.promise(launch), (browser) => Effect.promise(browser.close))
        const page = yield* Effect.promise(() => browser.open(dashboard.url))
        yield* Effect.promise(() => page.waitFor("the page is live", `() => document.getElementById("status").textContent === "live"`))
        assert.strictEqual(yield* Effect.promise(() => page.evaluate<string>(`sessionStorage.getItem("workpool-dashboard-token")`)), token)
        // a mangled one (a stray %): the page asks for the token instead of stopping
        const mangled = yield* Effect.promise(() => browser.open(`${dashboard.address}#token=%E0%A4%A`))
        yield* Effect.promise(() => mangled.waitFor("the page asks for a token", `() => document.getElementById("status").textContent === "token needed"`))
      }).pipe(Effect.scoped, Effect.provide(Dashboard.layer({ token: "0123456789abcdef%zz&x=1#y+%41" }))),
    120_000
  )
})

describe("Dashboard: a check that dies with an odd value", () => {
  it.effect("still answers 500 as JSON, whatever the defect (one String cannot print)", () =>
    Effect.gen(function*() {
      const dashboard = yield* start({ authorize: () => Effect.die(Object.assign(Object.create(null), { why: "no prototype" })) })
      const reply = yield* Effect.promise(() =>
        fetch(`${dashboard.address}api/snapshot`).then(async (r) => ({ status: r.status, body: await r.text() }))
      )
      assert.strictEqual(reply.status, 500)
      assert.match(JSON.parse(reply.body).error, /^the dashboard failed: .*no prototype/)
    }))
})

describe("Dashboard: a store that fails with no Error", () => {
  // the answer is the squashed error's message (or the value, shown as a string), never the
  // cause's rendering: a defect's fields (here a password and a stack) stay in the log
  const variants: ReadonlyArray<readonly [string, () => Effect.Effect<never>, string]> = [
    [
      "a defect that is a plain object",
      () => Effect.die({ password: "hunter2", stack: "at secret (/srv/app.ts:1)" }),
      "the store failed: [object Object]"
    ],
    ["a defect that is a string", () => Effect.die("boom"), "the store failed: boom"],
    ["an interrupt only", () => Effect.interrupt, "the store failed: All fibers interrupted without error"]
  ]
  for (const [name, get, expected] of variants) {
    it.effect(`${name}: 500 with its message only, no field of it and no stack`, () =>
      Effect.gen(function*() {
        const memory = yield* Layer.build(JobStore.memory())
        const store = Context.get(memory, StoreTag)
        const failing = Layer.succeed(StoreTag, { ...store, get })
        const dashboard = yield* start()
        yield* Effect.provide(dashboard.addQueue("broken"), failing)
        const reply = yield* send(dashboard, "/api/queues/broken/jobs/j1/cancel", new URL(dashboard.address).host, {
          method: "POST",
          headers: { authorization: `Bearer ${TOKEN}`, "x-workpool-dashboard": "1" }
        })
        assert.strictEqual(reply.status, 500)
        assert.strictEqual(JSON.parse(reply.body).error, expected)
        assert.notMatch(reply.body, /hunter2|\bat |\.ts:\d|node:/)
      }))
  }
})
