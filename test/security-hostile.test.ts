/**
 * An attacker's input and an attacker's browser: names that reach URLs, keys and SQL, and what the
 * dashboard's HTTP surface does with requests a page of another origin, or a client that never ends
 * its request, can send. Requests are real, on loopback.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Schema } from "effect"
import { StoreError } from "../src/DurableError.ts"
import * as fs from "node:fs"
import { existsSync } from "node:fs"
import { createServer } from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"
import * as Dashboard from "../src/Dashboard.ts"
import { JobQueue, Task, WorkPool } from "../src/index.ts"
import * as JobStore from "../src/JobStore.ts"
import { type Browser, CHROMIUM, launch } from "./browser/chromium.ts"
import { storeLayers } from "./durable/stores.ts"
import { Echo } from "./fixtures/tasks.ts"

const TOKEN = "0123456789abcdef-test-token"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wp-security-hostile-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))
let files = 0
const stores = storeLayers(() => path.join(dir, `f${files++}.db`))

const start = (options: Dashboard.Options = { token: TOKEN }) =>
  Effect.map(Layer.build(Dashboard.layer(options)), (context) => Context.get(context, Dashboard.Dashboard))

/** A button's request as the page sends it: the URL the page builds, resolved as a browser does (WHATWG URL). */
const press = (dashboard: Dashboard.Dashboard["Service"], kind: "pool" | "queue", name: string, action: string) =>
  Effect.promise(async () => {
    const url = new URL("api/" + (kind === "pool" ? "pools/" : "queues/") + encodeURIComponent(name) + "/" + action, dashboard.address)
    const response = await fetch(url, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "x-workpool-dashboard": "1" },
      signal: AbortSignal.timeout(20_000)
    })
    return { status: response.status, body: await response.text() }
  })

describe("Dashboard: names the page puts in a URL's path", () => {
  // "." and ".." are dot segments: a browser resolves them away (and their %2e spellings too), so
  // the page's button for a pool or queue of that name reached another path ("api/pools/../pause"
  // is "api/pause", a 404) and could never act on it. Refused when added, as a name with a lone
  // surrogate is, instead of a page whose buttons fail.
  for (const name of [".", ".."]) {
    it.effect(`a pool or a queue named ${JSON.stringify(name)} is refused with InvalidDashboardOptions naming the field`, () =>
      Effect.gen(function*() {
        const dashboard = yield* start()
        const pool = yield* WorkPool.make({ concurrency: 1, name })
        const added = yield* Effect.exit(dashboard.add(pool))
        assert.isTrue(Exit.isFailure(added), "the pool was added, with buttons that cannot reach it")
        const error = yield* Effect.flip(dashboard.add(pool))
        assert.strictEqual(error._tag, "InvalidDashboardOptions")
        assert.strictEqual(error.field, "pool.name")
        assert.include(error.message, "path")
        const queue = yield* Effect.flip(Effect.provide(dashboard.addQueue(name), JobStore.memory()))
        assert.strictEqual(queue._tag, "InvalidDashboardOptions")
        assert.strictEqual(queue.field, "queue")
      }))
  }

  it.effect("names with / % ? # \\ * : and dots among other characters reach their own pool and queue from the page's URL", () =>
    Effect.gen(function*() {
      const dashboard = yield* start()
      const store = yield* Layer.build(JobStore.memory())
      const names = ["a/b", "x/jobs/1", "%", "a%2Fb", "?x", "#x", "\\", "*", ":pool", "...", ".a", "a..", "é ü"]
      for (const name of names) {
        yield* dashboard.add(yield* WorkPool.make({ concurrency: 1, name }))
        yield* Effect.provide(dashboard.addQueue(name), store)
      }
      for (const name of names) {
        for (const kind of ["pool", "queue"] as const) {
          const reply = yield* press(dashboard, kind, name, "pause")
          assert.deepStrictEqual([name, kind, reply.status, reply.body], [name, kind, 200, `{"paused":true}`])
        }
      }
    }))
})

describe("Dashboard in headless Chromium: a page of another origin", () => {
  // The worst case for CSRF: a check that lets every request through (an operator who trusts
  // loopback), so that only the POST's own header stands between another site and the buttons.
  // The attacker's page is served on localhost (another origin than 127.0.0.1) and tries what a page
  // can send without the dashboard's consent: a form post (urlencoded and text/plain), a beacon, a
  // no-cors fetch (its custom header dropped), and a CORS fetch with the header (a preflight).
  it.live.skipIf(!existsSync(CHROMIUM) && process.env.CI !== "true")(
    "cannot press a button: every request reaches the server, none pauses the pool",
    () =>
      Effect.gen(function*() {
        const seen: Array<string> = []
        const dashboard = yield* start({
          authorize: (request) => Effect.sync(() => (seen.push(`${request.method} ${request.url}`), true))
        })
        const pool = yield* WorkPool.make({ concurrency: 1, name: "mail" })
        yield* dashboard.add(pool)
        const target = `${dashboard.address}api/pools/mail/pause`
        const attacker = yield* Effect.acquireRelease(
          Effect.promise(() =>
            new Promise<{ url: string; close: () => Promise<void> }>((resolve) => {
              const server = createServer((_, response) => {
                response.writeHead(200, { "content-type": "text/html" })
                response.end(`<!doctype html><title>cute cats</title><iframe name="sink"></iframe>`)
              })
              server.listen(0, "127.0.0.1", () => {
                const port = (server.address() as { port: number }).port
                resolve({
                  url: `http://localhost:${port}/`,
                  close: () => new Promise((done) => server.close(() => done()))
                })
              })
            })
          ),
          (server) => Effect.promise(server.close)
        )
        const browser: Browser = yield* Effect.acquireRelease(Effect.promise(launch), (browser) => Effect.promise(browser.close))
        const page = yield* Effect.promise(() => browser.open(attacker.url))
        yield* Effect.promise(() => page.waitFor("the attacker's page", `() => document.title === "cute cats"`))
        const outcomes = yield* Effect.promise(() =>
          page.evaluate<Array<string>>(`(async () => {
            const target = ${JSON.stringify(target)}
            const out = []
            const post = (enctype) => new Promise((resolve) => {
              const frame = document.querySelector("iframe")
              frame.addEventListener("load", () => resolve("form " + enctype + ": loaded"), { once: true })
              const form = document.createElement("form")
              form.method = "POST"
              form.action = target
              form.enctype = enctype
              form.target = "sink"
              const input = document.createElement("input")
              input.name = "x-workpool-dashboard"
              input.value = "1"
              form.append(input)
              document.body.append(form)
              form.submit()
            })
            out.push(await post("application/x-www-form-urlencoded"))
            out.push(await post("text/plain"))
            out.push("beacon: " + navigator.sendBeacon(target, "x"))
            out.push(await fetch(target, { method: "POST", mode: "no-cors", credentials: "include", headers: { "X-Workpool-Dashboard": "1" } })
              .then((r) => "no-cors: " + r.type, (e) => "no-cors: " + e.name))
            out.push(await fetch(target, { method: "POST", credentials: "include", headers: { "X-Workpool-Dashboard": "1" } })
              .then((r) => "cors: " + r.status, (e) => "cors: " + e.name))
            return out
          })()`)
        )
        assert.deepStrictEqual(outcomes, [
          "form application/x-www-form-urlencoded: loaded",
          "form text/plain: loaded",
          "beacon: true",
          "no-cors: opaque",
          "cors: TypeError"
        ])
        // the beacon is sent in the background: wait for it to arrive, so that no request is still on its way
        const arrived = (method: string, n: number) => seen.filter((line) => line === `${method} /api/pools/mail/pause`).length >= n
        while (!(arrived("POST", 4) && arrived("OPTIONS", 1))) yield* Effect.sleep("20 millis")
        assert.strictEqual((yield* pool.stats).state, "running", JSON.stringify(seen))
      }).pipe(Effect.scoped),
    120_000
  )
})

describe("Dashboard: a durable job's id from the URL", () => {
  // The buttons of a queue take the id from the path and ask the store for it directly, not through
  // JobQueue's checks: a NUL, which a Postgres text cannot hold, must be no job's (postgres.ts's
  // noSuchId), not a store failure (a 500 and an error in the log for a caller's bad id), on every store.
  for (const [store, layer] of stores) {
    it.effect(`${store}: an id with a NUL, or one of 10,000 characters, is no job of the queue: 404 from cancel and redrive, the queue's job untouched`, () =>
      Effect.gen(function*() {
        const dashboard = yield* start()
        yield* dashboard.addQueue("default")
        const job = yield* JobQueue.enqueue(Echo, "x")
        for (const id of [`${job.id}\u0000`, "a\u0000b", "%00", "x".repeat(10_000)]) {
          for (const action of ["cancel", "redrive"]) {
            const reply = yield* Effect.promise(async () => {
              const response = await fetch(`${dashboard.address}api/queues/default/jobs/${encodeURIComponent(id)}/${action}`, {
                method: "POST",
                headers: { authorization: `Bearer ${TOKEN}`, "x-workpool-dashboard": "1" },
                signal: AbortSignal.timeout(20_000)
              })
              return { status: response.status, body: await response.text() }
            })
            // the id reached the handler as sent (its NUL too), and was looked up
            if (id.includes("\u0000")) assert.include(reply.body, "\\u0000")
            assert.deepStrictEqual([JSON.stringify(id.slice(0, 40)), action, reply.status], [JSON.stringify(id.slice(0, 40)), action, 404], reply.body)
          }
        }
        assert.strictEqual((yield* JobQueue.status(job.id)).state, "queued")
      }).pipe(Effect.provide(layer())), 60_000)
  }
})

describe("SQLite: a filename that SQLite reads as a URI", () => {
  // node:sqlite opens with URIs on: "file:<path>" opened <path>, but the store's look at its file
  // (deleted or replaced under it, the bound on its -wal) went to a file named "file:<path>" in the
  // working directory, which is none, so each was skipped without a word; "?mode=memory" made a
  // store in memory, which no other process shares (their jobs never met), and "?mode=ro" one
  // whose every write failed. Refused at open, naming the field and how to name such a file.
  it.effect("is refused with StoreError naming the filename, before any file is opened", () =>
    Effect.gen(function*() {
      const file = path.join(dir, "uri.db")
      for (const filename of [`file:${file}`, `file:${file}?mode=memory`, `file:${file}?mode=ro`, "file:jobs.db"]) {
        const error = yield* Effect.flip(Effect.provide(JobQueue.stats("default"), JobStore.sqlite({ filename })))
        assert.instanceOf(error, StoreError, filename)
        assert.include(error.message, "filename", filename)
        assert.include(error.message, "URI", filename)
        assert.include(error.message, `./${filename}`, filename)
      }
      assert.isFalse(fs.existsSync(file))
      assert.isFalse(fs.existsSync("jobs.db"))
      // a path with "file:" further on is a plain file name, opened as one
      const plain = path.join(dir, "a-file:b.db")
      yield* Effect.provide(JobQueue.stats("default"), JobStore.sqlite({ filename: plain }))
      assert.isTrue(fs.existsSync(plain))
    }))
})

describe("Dashboard: a check of one's own that answers something other than a boolean", () => {
  // BUG: the answer was used for its truth: a check that answered a Promise (an async session
  // lookup wrapped in Effect.succeed, easy to write in JavaScript or through an `any`), an object or
  // a non-empty string let every request in, the buttons too. Only `true` lets a request in now;
  // anything but a boolean is a 500 that names it (the operator's bug), never an open door.
  const answers: ReadonlyArray<readonly [string, unknown]> = [
    ["a Promise of false", Promise.resolve(false)],
    ["the string \"no\"", "no"],
    ["an object", { allowed: false }],
    ["the number 1", 1],
    ["undefined", undefined]
  ]
  it.effect("a check that returns no Effect (an async function, a boolean): 500 saying it is not an Effect, no request gets in", () =>
    Effect.gen(function*() {
      for (const [i, authorize] of [async () => true, () => true, () => undefined].entries()) {
        const dashboard = yield* start({ authorize: authorize as never })
        const pool = yield* WorkPool.make({ concurrency: 1, name: `mail${i}` })
        yield* dashboard.add(pool)
        const pressed = yield* press(dashboard, "pool", `mail${i}`, "pause")
        assert.strictEqual(pressed.status, 500, pressed.body)
        assert.match(JSON.parse(pressed.body).error, /authorize check returned .*, not an Effect/)
        assert.strictEqual((yield* pool.stats).state, "running")
      }
    }))

  // review24: an async check that rejects: the refused Promise was dropped with no handler, an
  // unhandled rejection per request (which ends a Node process by default); and a check whose
  // Effect fails (a JavaScript caller, a cast) was answered 200 with the error as its body, which
  // the page read as done
  it.effect("a check whose Promise rejects, or whose Effect fails: 500, no unhandled rejection, the pool not paused", () =>
    Effect.gen(function*() {
      const unhandled: Array<unknown> = []
      const onUnhandled = (reason: unknown) => unhandled.push(reason)
      process.on("unhandledRejection", onUnhandled)
      yield* Effect.addFinalizer(() => Effect.sync(() => process.off("unhandledRejection", onUnhandled)))
      const checks: ReadonlyArray<readonly [string, unknown]> = [
        ["an async check that throws", async () => {
          throw new Error("session store down")
        }],
        ["a rejected Promise in Effect.succeed", () => Effect.succeed(Promise.reject(new Error("session store down")))],
        ["an Effect that fails", () => Effect.fail(new Error("session store down"))]
      ]
      for (const [i, [name, authorize]] of checks.entries()) {
        const dashboard = yield* start({ authorize: authorize as never })
        const pool = yield* WorkPool.make({ concurrency: 1, name: `mail${i}` })
        yield* dashboard.add(pool)
        const pressed = yield* press(dashboard, "pool", `mail${i}`, "pause")
        assert.strictEqual(pressed.status, 500, `${name}: ${pressed.body}`)
        assert.strictEqual((yield* pool.stats).state, "running", name)
      }
      // Node reports an unhandled rejection when the microtasks after it have run, before any
      // setImmediate (and each was made before its answer was sent)
      yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
      assert.deepStrictEqual(unhandled.map(String), [])
    }))

  for (const [name, answer] of answers) {
    it.effect(`${name}: no request gets in, the API answers 500 naming the answer, the pool is not paused`, () =>
      Effect.gen(function*() {
        const dashboard = yield* start({ authorize: () => Effect.succeed(answer as boolean) })
        const pool = yield* WorkPool.make({ concurrency: 1, name: "mail" })
        yield* dashboard.add(pool)
        const snapshot = yield* Effect.promise(() =>
          fetch(`${dashboard.address}api/snapshot`).then(async (r) => ({ status: r.status, body: await r.text() }))
        )
        assert.strictEqual(snapshot.status, 500, snapshot.body)
        assert.match(JSON.parse(snapshot.body).error, /authorize.*not a boolean/)
        assert.notInclude(snapshot.body, "sources")
        const pressed = yield* press(dashboard, "pool", "mail", "pause")
        assert.strictEqual(pressed.status, 500, pressed.body)
        assert.strictEqual((yield* pool.stats).state, "running")
      }))
  }
})

describe("Durable queues: one tenant's queue name cannot reach another's jobs", () => {
  // Names that a store joining strings naively would make one: ':' after a name ("a" + ":b"), a
  // Redis key's suffix written into the name ("a:meta", "a}:ready:T"), the escape of '}' written
  // out ("a%7D" against "a}"), and dedup keys that move the separator ("a" + "b:k" against "a:b" +
  // "k"). Each pair is two queues: the dedup keys do not meet, a pause, a rate limit and the counts
  // are each queue's own, and a consumer of one queue claims only that queue's jobs.
  // its name ends as a key's suffix: were '}' in a queue's name not escaped, this task's ready set
  // in queue "a" would be queue "a}:ready:T"'s meta hash (its pause, its rate limit)
  const Tagged = Task.make("T}:meta", { payload: Schema.String, success: Schema.String })
  const pairs: ReadonlyArray<readonly [string, string, string, string]> = [
    ["a", "b:k", "a:b", "k"],
    ["a:meta", "k", "a", "meta:k"],
    ["a}:ready:T", "k", "a", "k"],
    ["a}", "k", "a%7D", "k"],
    ["a%}", "k", "a%25}", "k"],
    ["{x}", "k", "x", "k"]
  ]
  for (const [store, layer] of stores) {
    it.live(`${store}: dedup keys, pause, rate limit, counts and claims stay in their own queue`, () =>
      Effect.gen(function*() {
        for (const [i, [tenantName, tenantKey, otherName, otherKey]] of pairs.entries()) {
          // each pair on queues of its own (one prefix for both keeps what the pair tries)
          const tenant = `${i}-${tenantName}`
          const other = `${i}-${otherName}`
          const what = JSON.stringify([tenant, other])
          const mine = yield* JobQueue.enqueue(Tagged, tenant, { queue: tenant, dedupKey: tenantKey })
          const theirs = yield* JobQueue.enqueue(Tagged, other, { queue: other, dedupKey: otherKey })
          assert.isTrue(mine.created && theirs.created, what)
          assert.notStrictEqual(mine.id, theirs.id)
          assert.deepStrictEqual((yield* JobQueue.list({ queue: tenant })).map((job) => job.id), [mine.id], what)
          assert.deepStrictEqual((yield* JobQueue.list({ queue: other })).map((job) => job.id), [theirs.id], what)
          yield* JobQueue.pause(tenant)
          yield* JobQueue.setRateLimit(tenant, { limit: 1, interval: "1 hour" })
          assert.isFalse((yield* JobQueue.stats(other)).paused, what)
          // a consumer of the other queue runs its job, though the tenant's is paused and limited
          // (two jobs: a limit of one an hour that reached it would hold the second)
          const second = yield* JobQueue.enqueue(Tagged, other, { queue: other })
          const ran: Array<string> = []
          yield* Effect.scoped(Effect.gen(function*() {
            yield* JobQueue.consume({
              queues: [other],
              handlers: [Task.handle(Tagged, (payload: string) => Effect.sync(() => (ran.push(payload), payload)))],
              concurrency: 1
            })
            const both = Effect.all([theirs.await, second.await])
            assert.deepStrictEqual(yield* Effect.timeoutOrElse(both, { duration: "20 seconds", orElse: () => Effect.succeed([]) }), [other, other], what)
          }))
          assert.deepStrictEqual(ran, [other, other], what)
          const counts = yield* JobQueue.stats(tenant)
          assert.deepStrictEqual([counts.paused, counts.waiting, counts.succeeded], [true, 1, 0], what)
          assert.strictEqual((yield* mine.status).state, "queued", what)
          yield* JobQueue.resume(tenant)
          yield* JobQueue.setRateLimit(tenant, undefined)
        }
      }).pipe(Effect.provide(layer())), 60_000)
  }
})

describe("Durable payloads and results with __proto__, constructor and prototype keys", () => {
  // A payload read back from a store goes through JSON.parse and the task's Schema: a decoder that
  // assigned keys one by one into a fresh object ({}[key] = value) would set the object's prototype
  // from "__proto__", or write through "constructor" to every object's prototype.
  const Bag = Task.make("Bag", {
    payload: Schema.Record(Schema.String, Schema.Unknown),
    success: Schema.Record(Schema.String, Schema.Unknown)
  })
  const hostile = () => JSON.parse(`{"__proto__": {"polluted": "payload"}, "constructor": {"prototype": {"polluted": "ctor"}}, "prototype": {"polluted": "proto"}, "n": 1}`)
  for (const [store, layer] of stores) {
    it.live(`${store}: the handler and the awaiter get them as own keys; no prototype is touched`, () =>
      Effect.gen(function*() {
        const seen: Array<unknown> = []
        const job = yield* JobQueue.enqueue(Bag, hostile())
        const result = yield* Effect.scoped(Effect.gen(function*() {
          yield* JobQueue.consume({
            handlers: [Task.handle(Bag, (payload: Record<string, unknown>) => Effect.sync(() => (seen.push(payload), hostile())))],
            concurrency: 1
          })
          return yield* job.await
        }))
        for (const value of [seen[0], result] as Array<Record<string, unknown>>) {
          assert.strictEqual(Object.getPrototypeOf(value), Object.prototype)
          assert.isTrue(Object.hasOwn(value, "__proto__"))
          assert.deepStrictEqual(Object.getOwnPropertyDescriptor(value, "__proto__")!.value, { polluted: "payload" })
          assert.deepStrictEqual(value["constructor"] as unknown, { prototype: { polluted: "ctor" } })
          assert.strictEqual(value.n, 1)
          assert.isUndefined((value as { polluted?: unknown }).polluted)
        }
        assert.isUndefined(({} as { polluted?: unknown }).polluted)
        assert.isUndefined((Object.prototype as { polluted?: unknown }).polluted)
      }).pipe(Effect.provide(layer())), 60_000)
  }
})
