/**
 * The dashboard's HTTP interface without a browser: authorization (token, a check of one's own, the
 * CSRF header), the JSON snapshot, the server-sent events, the buttons' endpoints on a pool and on
 * a durable queue, bad options, and the bounded history. Sampling runs on the TestClock, so each
 * test decides when a sample is taken; the requests are real ones, on loopback.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Context, Deferred, Effect, Exit, Fiber, Layer, Schema, Scope } from "effect"
import { TestClock } from "effect/testing"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll } from "vitest"
import * as Dashboard from "../src/Dashboard.ts"
import { JobQueue, Task, WorkPool } from "../src/index.ts"
import * as JobStore from "../src/JobStore.ts"
import { quantile, quantileOf } from "../src/internal/dashboard/quantile.ts"
import { jsonSafe, SWEEP, TOP } from "../src/internal/dashboard/sampler.ts"
import * as ThreadPool from "../src/ThreadPool.ts"
import { Echo, Fail } from "./fixtures/tasks.ts"
import { settle } from "./helpers.ts"
import * as PgTest from "./durable/postgres.ts"
import * as RedisTest from "./durable/redis.ts"

const TOKEN = "0123456789abcdef-test-token"

const start = (options: Dashboard.Options = { token: TOKEN }) =>
  Effect.map(Layer.build(Dashboard.layer(options)), (context) => Context.get(context, Dashboard.Dashboard))

interface Reply {
  readonly status: number
  readonly headers: Headers
  readonly body: any
}

const call = (
  dashboard: Dashboard.Dashboard["Service"],
  path: string,
  options: {
    readonly method?: "GET" | "POST"
    readonly headers?: Record<string, string>
    readonly token?: string | null
    readonly body?: string
  } = {}
): Effect.Effect<Reply> =>
  Effect.promise(async () => {
    const token = options.token === undefined ? TOKEN : options.token
    const response = await fetch(dashboard.address + path, {
      method: options.method ?? "GET",
      headers: {
        ...(token === null ? {} : { authorization: `Bearer ${token}` }),
        ...(options.method === "POST" ? { "x-workpool-dashboard": "1" } : {}),
        ...options.headers
      },
      ...(options.body === undefined ? {} : { body: options.body }),
      signal: AbortSignal.timeout(20_000)
    })
    const text = await response.text()
    return { status: response.status, headers: response.headers, body: text.startsWith("{") ? JSON.parse(text) : text }
  })

const post = (dashboard: Dashboard.Dashboard["Service"], path: string) => call(dashboard, path, { method: "POST" })

/** A POST of a setting, its body as JSON. */
const postJson = (dashboard: Dashboard.Dashboard["Service"], path: string, body: unknown) =>
  call(dashboard, path, { method: "POST", body: JSON.stringify(body) })

/** Lets the sampler take its next sample (interval 1 s by default). */
const tick = Effect.andThen(TestClock.adjust("1 second"), settle)

/**
 * Ticks until `done` holds; fails if it has not within 20 real seconds. A sample of a Redis or
 * Postgres store is real I/O, and the sampler's next one is timed from its last one's end: ticks
 * made while one is in flight are lost, so each tick leaves it some real time to end (on a busy
 * machine, 60 ticks in a row ran by before a Postgres sample had ended).
 */
const ticksUntil = <E, R>(done: Effect.Effect<boolean, E, R>) =>
  Effect.gen(function*() {
    const deadline = Date.now() + 20_000
    while (!(yield* done) && Date.now() < deadline) {
      yield* tick
      yield* TestClock.withLive(Effect.sleep("10 millis"))
    }
    assert.isTrue(yield* done, "the condition held within 20 s")
  })

const sourceIn = (snapshot: any, kind: string, name: string) => {
  const found = snapshot.sources.find((s: any) => s.kind === kind && s.name === name)
  assert.isDefined(found, `${kind} ${name} in ${JSON.stringify(snapshot.sources.map((s: any) => s.name))}`)
  return found
}

/** Reads server-sent events until `until` holds for the events so far. */
const readEvents = (
  dashboard: Dashboard.Dashboard["Service"],
  until: (events: Array<{ name: string; data: any }>) => boolean,
  onEvent: (count: number) => void = () => {},
  path = "api/events"
) =>
  Effect.promise(async () => {
    const controller = new AbortController()
    const response = await fetch(dashboard.address + path, {
      headers: { authorization: `Bearer ${TOKEN}` },
      signal: controller.signal
    })
    const events: Array<{ name: string; data: any }> = []
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
    let buffer = ""
    try {
      while (!until(events)) {
        const { done, value } = await reader.read()
        if (done) break
        buffer += value
        let end: number
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          const name = /^event: (.*)$/m.exec(block)?.[1] ?? "message"
          const data = /^data: (.*)$/m.exec(block)?.[1]
          events.push({ name, data: data === undefined ? undefined : JSON.parse(data) })
          onEvent(events.length)
        }
      }
    } finally {
      controller.abort()
    }
    return { status: response.status, contentType: response.headers.get("content-type"), events }
  })

/** An open stream of `path`, once its first event has come (or its refusal), until `close`. */
const openEvents = (dashboard: Dashboard.Dashboard["Service"], path: string) =>
  Effect.promise(async () => {
    const controller = new AbortController()
    const response = await fetch(dashboard.address + path, { headers: { authorization: `Bearer ${TOKEN}` }, signal: controller.signal })
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
    let text = ""
    while (!text.includes("\n\n")) {
      const { done, value } = await reader.read()
      if (done) break
      text += value
    }
    return { status: response.status, text, close: () => controller.abort() }
  })

describe("Dashboard: authorization", () => {
  it.effect("listens on loopback; an API request without the token, or with a wrong one, gets 401", () =>
    Effect.gen(function*() {
      const dashboard = yield* start()
      assert.match(dashboard.address, /^http:\/\/127\.0\.0\.1:\d+\/$/)
      assert.strictEqual(dashboard.url, `${dashboard.address}#token=${TOKEN}`)

      const none = yield* call(dashboard, "api/snapshot", { token: null })
      assert.strictEqual(none.status, 401)
      assert.strictEqual(none.headers.get("www-authenticate"), "Bearer")
      assert.match(none.body.error, /Authorization: Bearer <token>/)
      assert.strictEqual((yield* call(dashboard, "api/snapshot", { token: "0123456789abcdef-wrong-token" })).status, 401)
      assert.strictEqual((yield* call(dashboard, "api/snapshot", { token: TOKEN.slice(0, -1) })).status, 401)
      assert.strictEqual((yield* call(dashboard, "api/events", { token: null })).status, 401)
      // the token in the query string is not accepted: it would end up in logs
      assert.strictEqual((yield* call(dashboard, `api/snapshot?token=${TOKEN}`, { token: null })).status, 401)
      assert.strictEqual((yield* call(dashboard, "api/snapshot")).status, 200)

      // the page itself has no data: it is served to anyone, with a strict content policy
      const page = yield* call(dashboard, "", { token: null })
      assert.strictEqual(page.status, 200)
      assert.match(page.headers.get("content-type") ?? "", /^text\/html/)
      assert.match(page.headers.get("content-security-policy") ?? "", /frame-ancestors 'none'/)
      assert.include(page.body, "effect-workpool")
    }))

  it.effect("a random token by default, in the url's fragment only", () =>
    Effect.gen(function*() {
      const dashboard = yield* start({})
      const token = /#token=([0-9a-f]{32})$/.exec(dashboard.url)?.[1]
      assert.isDefined(token)
      assert.strictEqual((yield* call(dashboard, "api/snapshot", { token: token! })).status, 200)
      assert.strictEqual((yield* call(dashboard, "api/snapshot", { token: null })).status, 401)
    }))

  it.effect("a check of one's own instead of a token; a POST without the dashboard's header gets 403", () =>
    Effect.gen(function*() {
      const dashboard = yield* start({
        authorize: (request) => Effect.succeed(request.headers["x-user"] === "ops")
      })
      assert.strictEqual(dashboard.url, dashboard.address)
      assert.strictEqual((yield* call(dashboard, "api/snapshot", { token: null })).status, 401)
      const ok = yield* call(dashboard, "api/snapshot", { token: null, headers: { "x-user": "ops" } })
      assert.strictEqual(ok.status, 200)
      assert.isNull(ok.headers.get("www-authenticate"))

      const pool = yield* WorkPool.make({ concurrency: 1, name: "checked" })
      yield* dashboard.add(pool)
      const job = yield* pool.submit(Effect.never)
      yield* settle
      // as a cross-site form would send it: the user's cookie passes the check, the header is missing
      const forged = yield* Effect.promise((): Promise<{ status: number; body: any }> =>
        fetch(`${dashboard.address}api/pools/checked/jobs/${job.id}/cancel`, {
          method: "POST",
          headers: { "x-user": "ops" }
        }).then(async (r) => ({ status: r.status, body: await r.json() }))
      )
      assert.strictEqual(forged.status, 403)
      assert.match(forged.body.error, /X-Workpool-Dashboard/)
      assert.strictEqual(yield* job.status, "running")
      const cancelled = yield* call(dashboard, `api/pools/checked/jobs/${job.id}/cancel`, {
        method: "POST",
        token: null,
        headers: { "x-user": "ops" }
      })
      assert.strictEqual(cancelled.status, 200)
      assert.strictEqual(yield* job.status, "interrupted")
    }))

  it.effect("a check that dies answers 500 with the defect, and the server goes on", () =>
    Effect.gen(function*() {
      const dashboard = yield* start({
        authorize: (request) => request.headers["x-user"] === "ops" ? Effect.succeed(true) : Effect.die(new Error("session store down"))
      })
      const broken = yield* call(dashboard, "api/snapshot", { token: null })
      assert.strictEqual(broken.status, 500)
      assert.include(broken.body.error, "session store down")
      assert.strictEqual((yield* call(dashboard, "api/snapshot", { token: null, headers: { "x-user": "ops" } })).status, 200)
    }))

  it.effect("closing the layer with a page open ends its stream and closes the server", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const dashboard = yield* start().pipe(Scope.provide(scope))
      const response = yield* Effect.promise(() =>
        fetch(dashboard.address + "api/events", { headers: { authorization: `Bearer ${TOKEN}` } })
      )
      const reader = response.body!.getReader()
      const first = yield* Effect.promise(() => reader.read())
      assert.include(new TextDecoder().decode(first.value), "event: snapshot")
      yield* Scope.close(scope, Exit.void)
      // the stream ends (or the connection is cut), it does not stay open
      const next = yield* Effect.promise(() => reader.read().then((r) => r.done, () => true))
      assert.isTrue(next)
      const refused = yield* Effect.promise(() => fetch(dashboard.address).then(() => "answered", () => "refused"))
      assert.strictEqual(refused, "refused")
    }))

  it.effect("bad options fail with InvalidDashboardOptions naming the field; a token is never shown", () =>
    Effect.gen(function*() {
      const fieldOf = (options: unknown) =>
        Effect.map(Effect.flip(start(options as Dashboard.Options)), (error) => {
          assert.strictEqual(error._tag, "InvalidDashboardOptions")
          return (error as Dashboard.InvalidDashboardOptions)
        })
      assert.strictEqual((yield* fieldOf({ port: 70000 })).field, "port")
      assert.strictEqual((yield* fieldOf({ port: -1 })).field, "port")
      const short = yield* fieldOf({ token: "short secret" })
      assert.strictEqual(short.field, "token")
      assert.notInclude(short.message, "short secret")
      assert.strictEqual((yield* fieldOf({ token: TOKEN, authorize: () => Effect.succeed(true) })).field, "authorize")
      assert.strictEqual((yield* fieldOf({ authorize: "yes" })).field, "authorize")
      assert.strictEqual((yield* fieldOf({ interval: "10 millis" })).field, "interval")
      assert.strictEqual((yield* fieldOf({ interval: "soon" })).field, "interval")
      assert.strictEqual((yield* fieldOf({ history: 0 })).field, "history")
      assert.strictEqual((yield* fieldOf({ jobs: 1.5 })).field, "jobs")
      assert.strictEqual((yield* fieldOf({ host: "" })).field, "host")
      assert.strictEqual((yield* fieldOf(null)).field, "options")
    }))

  it.effect("a port in use fails with ServeError", () =>
    Effect.gen(function*() {
      const first = yield* start()
      const port = Number(new URL(first.address).port)
      const error = yield* Effect.flip(start({ token: TOKEN, port }))
      assert.strictEqual(error._tag, "ServeError")
    }))
})

describe("Dashboard: pools", () => {
  it.effect("the snapshot shows each pool added, its counts and points; a pool leaves with its scope", () =>
    Effect.gen(function*() {
      const dashboard = yield* start()
      const pool = yield* WorkPool.make({ concurrency: 2, name: "images", retention: { count: 10 } })
      yield* dashboard.add(pool)
      // (without metrics: a second pool of that name would replace the first one's series)
      const duplicate = yield* Effect.flip(dashboard.add(yield* WorkPool.make({ concurrency: 1, name: "images", metrics: false })))
      assert.strictEqual(duplicate.field, "pool.name")
      assert.strictEqual((yield* Effect.flip(dashboard.add({ name: "fake" } as never))).field, "pool")

      yield* tick
      yield* Effect.forEach([1, 2, 3], (i) => pool.run(Effect.succeed(i)))
      yield* Effect.exit(pool.run(Effect.fail("mailbox full")))
      yield* tick
      const snapshot = (yield* call(dashboard, "api/snapshot")).body
      const images = sourceIn(snapshot, "pool", "images")
      assert.strictEqual(images.counts.succeeded, 3)
      assert.strictEqual(images.counts.failed, 1)
      const last = images.points.at(-1)
      // 4 ended, 1 failed in the last second of the TestClock
      assert.deepInclude(last, { queued: 0, running: 0, done: 4, failed: 1 })
      // every attempt took 0 ms of the TestClock: in the first bucket (up to 1 ms), interpolated
      assert.deepInclude(last, { waitP50: 0.5, waitP99: 0.99, runP50: 0.5, runP99: 0.99 })
      assert.isTrue(images.points.length >= 2)
      // nobody watches: the job lists are not read
      assert.isNull(images.detail)

      // in its own scope: it leaves the dashboard when that scope closes
      yield* Effect.scoped(Effect.gen(function*() {
        yield* dashboard.add(yield* WorkPool.make({ concurrency: 1, name: "short-lived" }))
        yield* tick
        sourceIn((yield* call(dashboard, "api/snapshot")).body, "pool", "short-lived")
      }))
      yield* tick
      const names = (yield* call(dashboard, "api/snapshot")).body.sources.map((s: any) => s.name)
      assert.deepStrictEqual(names, ["images"])
    }))

  it.live("a ThreadPool is shown like a WorkPool, its failed tasks with their errors", () =>
    Effect.gen(function*() {
      const dashboard = yield* start({ token: TOKEN, interval: "50 millis" })
      const pool = yield* ThreadPool.make({
        worker: new URL("./fixtures/worker.ts", import.meta.url),
        threads: 1,
        name: "hashing",
        retention: { count: 10 }
      })
      yield* dashboard.add(pool)
      assert.strictEqual(yield* pool.run(Echo, "hi"), "echo hi")
      yield* Effect.exit(pool.run(Fail, "x"))
      const { events } = yield* readEvents(dashboard, (events) => events.length >= 1)
      const hashing = sourceIn(events[0]!.data, "pool", "hashing")
      assert.deepInclude(hashing.counts, { succeeded: 1, failed: 1 })
      assert.strictEqual(hashing.detail.failed.length, 1)
      assert.include(hashing.detail.failed[0].error, "HashFailed")
    }))

  it.effect("cancel: 200 for a live job (running or queued), 409 once ended, 400 for a bad id, 404 for an unknown pool", () =>
    Effect.gen(function*() {
      const dashboard = yield* start()
      const pool = yield* WorkPool.make({ concurrency: 1, name: "work", retention: { count: 10 } })
      yield* dashboard.add(pool)
      const running = yield* pool.submit(Effect.never)
      const queued = yield* pool.submit(Effect.never)
      yield* settle
      assert.strictEqual(yield* queued.status, "queued")

      const first = yield* post(dashboard, `api/pools/work/jobs/${running.id}/cancel`)
      assert.deepStrictEqual([first.status, first.body], [200, { cancelled: true }])
      assert.strictEqual(yield* running.status, "interrupted")
      assert.isTrue(Exit.hasInterrupts(yield* Effect.exit(running.await)))
      yield* settle
      assert.strictEqual(yield* queued.status, "running")
      assert.strictEqual((yield* post(dashboard, `api/pools/work/jobs/${queued.id}/cancel`)).status, 200)
      assert.strictEqual(yield* queued.status, "interrupted")

      const again = yield* post(dashboard, `api/pools/work/jobs/${running.id}/cancel`)
      assert.strictEqual(again.status, 409)
      assert.match(again.body.error, /not live/)
      const bad = yield* post(dashboard, "api/pools/work/jobs/abc/cancel")
      assert.strictEqual(bad.status, 400)
      assert.match(bad.body.error, /invalid job id "abc"/)
      assert.strictEqual((yield* post(dashboard, "api/pools/work/jobs/1.5/cancel")).status, 400)
      // a pool cannot tell an id it never had from an ended job it does not retain: 409 for both, as documented
      const never = yield* post(dashboard, "api/pools/work/jobs/999999/cancel")
      assert.deepStrictEqual([never.status, never.body.error], [409, "job 999999 of pool work is not live: it has ended, or is unknown"])
      const unknown = yield* post(dashboard, "api/pools/nope/jobs/1/cancel")
      assert.strictEqual(unknown.status, 404)
      assert.match(unknown.body.error, /no pool named "nope"/)
      assert.strictEqual((yield* call(dashboard, "api/nothing")).status, 404)

      // a name with spaces, a slash and a non-ASCII letter, as the page encodes it
      const odd = yield* WorkPool.make({ concurrency: 1, name: "mail / é" })
      yield* dashboard.add(odd)
      const oddJob = yield* odd.submit(Effect.never)
      yield* settle
      const encoded = yield* post(dashboard, `api/pools/${encodeURIComponent("mail / é")}/jobs/${oddJob.id}/cancel`)
      assert.strictEqual(encoded.status, 200)
      assert.strictEqual(yield* oddJob.status, "interrupted")
    }))

  it.effect("pause and resume: a pool stops starting jobs (running ones go on) and starts again; 404 for an unknown pool", () =>
    Effect.gen(function*() {
      const dashboard = yield* start()
      const pool = yield* WorkPool.make({ concurrency: 1, name: "work" })
      yield* dashboard.add(pool)
      const gate = yield* Deferred.make<void>()
      const running = yield* pool.submit(Deferred.await(gate))
      yield* settle
      const paused = yield* post(dashboard, "api/pools/work/pause")
      assert.deepStrictEqual([paused.status, paused.body], [200, { paused: true }])
      assert.strictEqual((yield* pool.stats).state, "paused")
      // twice is fine
      assert.strictEqual((yield* post(dashboard, "api/pools/work/pause")).status, 200)
      const next = yield* pool.submit(Effect.succeed("next"))
      yield* Deferred.succeed(gate, undefined)
      yield* running.await
      yield* settle
      assert.strictEqual(yield* next.status, "queued")
      const snapshot = yield* call(dashboard, "api/snapshot")
      assert.strictEqual(sourceIn(snapshot.body, "pool", "work").counts.state, "paused")

      const resumed = yield* post(dashboard, "api/pools/work/resume")
      assert.deepStrictEqual([resumed.status, resumed.body], [200, { paused: false }])
      assert.strictEqual(yield* next.await, "next")
      assert.strictEqual((yield* pool.stats).state, "running")
      assert.strictEqual((yield* post(dashboard, "api/pools/nope/pause")).status, 404)
      // a button: the CSRF header is required
      assert.strictEqual((yield* call(dashboard, "api/pools/work/pause", { method: "POST", headers: { "x-workpool-dashboard": "0" } })).status, 403)
      assert.strictEqual((yield* pool.stats).state, "running")
    }))

  it.effect("the job lists ask a pool for one page each (the jobs shown), not for every job it has queued", () =>
    Effect.gen(function*() {
      const dashboard = yield* start({ token: TOKEN, jobs: 5 })
      const pool = yield* WorkPool.make({ concurrency: 2, name: "deep", capacity: Infinity })
      const answers: Array<{ readonly filter: WorkPool.JobFilter | undefined; readonly count: number }> = []
      yield* dashboard.add({
        name: pool.name,
        stats: pool.stats,
        cancel: pool.cancel,
        pause: pool.pause,
        resume: pool.resume,
        jobs: (filter) => Effect.tap(pool.jobs(filter), (jobs) => Effect.sync(() => answers.push({ filter, count: jobs.length })))
      })
      const gate = yield* Deferred.make<void>()
      // released before the pool shuts down (finalizers run last first), even when an assertion fails
      yield* Effect.addFinalizer(() => Deferred.succeed(gate, undefined))
      yield* Effect.forEach(Array.from({ length: 200 }, (_, i) => i), () => pool.submit(Deferred.await(gate)), { discard: true })
      yield* settle
      const events = yield* readEvents(dashboard, (events) => events.length >= 1)
      const deep = sourceIn(events.events[0]!.data, "pool", "deep")
      assert.deepStrictEqual(deep.detail.queued.map((j: any) => j.id), ["3", "4", "5", "6", "7"])
      assert.strictEqual(deep.detail.running.length, 2)
      assert.strictEqual(deep.counts.queued, 198)
      // no answer carried more than a page of live jobs
      const live = answers.filter((a) => !String(a.filter?.status).includes("failed"))
      assert.isAbove(live.length, 0)
      for (const answer of live) {
        assert.strictEqual(answer.filter?.limit, 5)
        assert.isAtMost(answer.count, 5)
      }
    }))

  it.effect("server-sent events: a snapshot with the job lists, then a sample per interval", () =>
    Effect.gen(function*() {
      const dashboard = yield* start()
      const pool = yield* WorkPool.make({ concurrency: 1, name: "sse", retention: { count: 10 } })
      yield* dashboard.add(pool)
      const gate = yield* Deferred.make<void>()
      const running = yield* pool.submit(Effect.gen(function*() {
        const { progress } = yield* WorkPool.JobContext
        yield* progress({ done: 3, of: 10 })
        yield* Deferred.await(gate)
      }))
      yield* Effect.exit(pool.run(Effect.fail("boom"))) // waits behind the running one: submit instead
        .pipe(Effect.forkChild)
      yield* tick
      // the first event is taken when the client connects; the second at the next interval
      let connected!: () => void
      const firstEvent = new Promise<void>((resolve) => connected = resolve)
      const reading = yield* Effect.forkChild(
        readEvents(dashboard, (events) => events.length >= 2, (count) => count === 1 && connected())
      )
      yield* Effect.promise(() => firstEvent)
      yield* tick
      const { status, contentType, events } = yield* Fiber.join(reading)
      assert.strictEqual(status, 200)
      assert.strictEqual(contentType, "text/event-stream")
      assert.deepStrictEqual(events.map((e) => e.name), ["snapshot", "sample"])
      const first = sourceIn(events[0]!.data, "pool", "sse")
      assert.isTrue(first.points.length >= 2, "the snapshot has the history")
      assert.deepStrictEqual(first.detail.running.map((j: any) => [j.id, j.progress]), [[String(running.id), { done: 3, of: 10 }]])
      assert.strictEqual(first.detail.queued.length, 1)
      assert.strictEqual(sourceIn(events[1]!.data, "pool", "sse").points.length, 1, "a sample has its new point only")
      yield* Deferred.succeed(gate, undefined)
      yield* pool.awaitIdle
    }))

  it.effect("failed jobs are listed newest first, with their errors", () =>
    Effect.gen(function*() {
      const dashboard = yield* start()
      const pool = yield* WorkPool.make({ concurrency: 1, name: "failing", retention: { count: 10 } })
      yield* dashboard.add(pool)
      yield* Effect.exit(pool.run(Effect.fail("first <b>error</b>")))
      yield* Effect.exit(pool.run(Effect.die(new Error("a bug"))))
      const events = yield* readEvents(dashboard, (events) => events.length >= 1)
      const failed = sourceIn(events.events[0]!.data, "pool", "failing").detail.failed
      assert.deepStrictEqual(failed.map((j: any) => j.status), ["defect", "failed"])
      assert.include(failed[0].error, "a bug")
      assert.include(failed[1].error, "first <b>error</b>")
    }))

  it.effect("the history is bounded: at most `history` points per source", () =>
    Effect.gen(function*() {
      const dashboard = yield* start({ token: TOKEN, history: 5, interval: "100 millis" })
      yield* dashboard.add(yield* WorkPool.make({ concurrency: 1, name: "bounded" }))
      for (let i = 0; i < 20; i++) yield* Effect.andThen(TestClock.adjust("100 millis"), settle)
      const points = sourceIn((yield* call(dashboard, "api/snapshot")).body, "pool", "bounded").points
      assert.strictEqual(points.length, 5)
      assert.deepStrictEqual(points.map((p: any) => p.t), [1600, 1700, 1800, 1900, 2000])
    }))
})

class Refused extends Schema.TaggedError<Refused>()("Refused", { to: Schema.String }) {}
const Send = Task.make("Send", { payload: Schema.String, success: Schema.String, failure: Refused })

describe("Dashboard: durable queues", () => {
  it.effect("pause and resume a durable queue: its consumers stop claiming (the store's flag) and start again", () =>
    Effect.gen(function*() {
      const dashboard = yield* start()
      yield* JobQueue.consume({
        queues: ["mail"],
        concurrency: 2,
        handlers: [Task.handle(Send, (to) => Effect.succeed(`sent to ${to}`))]
      })
      yield* dashboard.addQueue("mail")
      const paused = yield* post(dashboard, "api/queues/mail/pause")
      assert.deepStrictEqual([paused.status, paused.body], [200, { paused: true }])
      const job = yield* JobQueue.enqueue(Send, "dave", { queue: "mail" })
      // the consumer polls: let it look a few times
      for (let i = 0; i < 5; i++) yield* tick
      assert.strictEqual((yield* job.status).state, "queued")
      assert.isTrue(sourceIn((yield* call(dashboard, "api/snapshot")).body, "queue", "mail").counts.paused)
      const resumed = yield* post(dashboard, "api/queues/mail/resume")
      assert.deepStrictEqual([resumed.status, resumed.body], [200, { paused: false }])
      for (let i = 0; i < 5 && (yield* job.status).state !== "succeeded"; i++) yield* tick
      assert.strictEqual(yield* job.await, "sent to dave")
      assert.strictEqual((yield* post(dashboard, "api/queues/nope/resume")).status, 404)
    }).pipe(Effect.provide(JobStore.memory())))

  const blockedStores: ReadonlyArray<readonly [string, () => Layer.Layer<JobStore.JobStore, any>]> = [
    ["memory", () => JobStore.memory()],
    // its file named when the test runs (`dir` is made further down)
    ["SQLite", () => JobStore.sqlite({ filename: join(dir, `blocked-${files++}.db`) })],
    ...(PgTest.enabled ? [["Postgres", () => PgTest.testLayer()] as const] : []),
    ...(RedisTest.enabled ? [["Redis", () => RedisTest.testLayer()] as const] : [])
  ]
  for (const [name, layer] of blockedStores) {
    it.effect(`a queue's blocked jobs (waiting for their dependencies) are counted in its card (${name})`, () =>
      Effect.gen(function*() {
        const dashboard = yield* start()
        yield* dashboard.addQueue("mail")
        const first = yield* JobQueue.enqueue(Send, "erin", { queue: "other" })
        yield* JobQueue.enqueue(Send, "frank", { queue: "mail", after: [first] })
        // a sample of a Redis or Postgres store is real I/O: one tick may read the snapshot before
        // it ends, or before the queue's first sample (no counts yet)
        const mail = () => Effect.map(call(dashboard, "api/snapshot"), (reply) => sourceIn(reply.body, "queue", "mail"))
        yield* ticksUntil(Effect.map(mail(), (queue) => queue.counts?.blocked === 1))
        assert.deepInclude((yield* mail()).counts, { blocked: 1, waiting: 0 })
      }).pipe(Effect.provide(layer())))
  }

  it.effect("a queue's latency chart: wait and run percentiles of the jobs that ended in each interval, read from the store", () =>
    Effect.gen(function*() {
      const dashboard = yield* start()
      yield* JobQueue.consume({
        queues: ["mail"],
        concurrency: 1,
        handlers: [Task.handle(Send, (to) => Effect.as(Effect.sleep(to === "slow" ? "400 millis" : "200 millis"), to))]
      })
      yield* dashboard.addQueue("mail")
      yield* tick
      // one at a time: the slow one waits 0 ms and runs 400, the next waits 400 and runs 200
      const jobs = yield* Effect.forEach(["slow", "quick"], (to) => JobQueue.enqueue(Send, to, { queue: "mail" }))
      yield* tick
      yield* Effect.forEach(jobs, (job) => job.await)
      const points = () => Effect.map(call(dashboard, "api/snapshot"), (reply) => sourceIn(reply.body, "queue", "mail").points)
      const latest = (yield* points()).at(-1)
      assert.deepInclude(latest, { done: 2, waitP50: 200, waitP99: 396, runP50: 300, runP99: 398 })
      // the next interval: nothing ended in it, so no latency (each job counts in one interval only)
      yield* tick
      assert.deepInclude((yield* points()).at(-1), { done: 0, waitP50: null, waitP99: null, runP50: null, runP99: null })
    }).pipe(Effect.provide(JobStore.memory())))

  it.effect("dead jobs with their errors; redrive puts one back (409 when it is not dead); cancel; 404 for another queue's job", () =>
    Effect.gen(function*() {
      const dashboard = yield* start()
      const failedOnce = new Set<string>()
      const gate = yield* Deferred.make<void>()
      yield* JobQueue.consume({
        queues: ["mail"],
        concurrency: 2,
        handlers: [Task.handle(Send, (to) =>
          to === "slow"
            ? Effect.as(Deferred.await(gate), "late")
            : failedOnce.has(to)
            ? Effect.succeed(`sent to ${to}`)
            : Effect.sync(() => failedOnce.add(to)).pipe(Effect.andThen(Effect.fail(new Refused({ to })))))]
      })
      yield* dashboard.addQueue("mail")
      const duplicate = yield* Effect.flip(dashboard.addQueue("mail"))
      assert.strictEqual(duplicate.field, "queue")
      assert.strictEqual((yield* Effect.flip(dashboard.addQueue(""))).field, "queue")

      const bounced = yield* JobQueue.enqueue(Send, "bob", { queue: "mail", maxAttempts: 1 })
      const slow = yield* JobQueue.enqueue(Send, "slow", { queue: "mail" })
      const other = yield* JobQueue.enqueue(Send, "carol", { queue: "elsewhere" })
      yield* Effect.exit(bounced.await)
      assert.strictEqual((yield* bounced.status).state, "dead")

      const events = yield* readEvents(dashboard, (events) => events.length >= 1)
      const mail = sourceIn(events.events[0]!.data, "queue", "mail")
      assert.strictEqual(mail.counts.dead, 1)
      assert.deepStrictEqual(mail.detail.failed.map((j: any) => j.id), [bounced.id])
      assert.include(mail.detail.failed[0].error, "Refused")
      assert.include(mail.detail.failed[0].error, "bob")
      assert.deepStrictEqual(mail.detail.running.map((j: any) => j.id), [slow.id])

      const redriven = yield* post(dashboard, `api/queues/mail/jobs/${bounced.id}/redrive`)
      assert.deepStrictEqual([redriven.status, redriven.body], [200, { redriven: true }])
      assert.strictEqual(yield* bounced.await, "sent to bob")
      const again = yield* post(dashboard, `api/queues/mail/jobs/${bounced.id}/redrive`)
      assert.strictEqual(again.status, 409)
      assert.match(again.body.error, /not dead \(it is succeeded\)/)

      assert.strictEqual((yield* post(dashboard, `api/queues/mail/jobs/${other.id}/redrive`)).status, 404)
      assert.strictEqual((yield* post(dashboard, `api/queues/mail/jobs/no-such-job/cancel`)).status, 404)
      assert.strictEqual((yield* post(dashboard, `api/queues/nope/jobs/${slow.id}/cancel`)).status, 404)

      const cancel = yield* post(dashboard, `api/queues/mail/jobs/${slow.id}/cancel`)
      assert.deepStrictEqual([cancel.status, cancel.body], [200, { result: "requested" }])
      const exit = yield* Effect.exit(slow.await)
      assert.isTrue(Exit.isFailure(exit))
      assert.strictEqual((yield* slow.status).state, "cancelled")
      assert.strictEqual((yield* post(dashboard, `api/queues/mail/jobs/${slow.id}/cancel`)).status, 409)
    }).pipe(Effect.provide(JobStore.memory())))
})

describe("Dashboard: a durable queue's settings", () => {
  it.effect("a job's snoozes and its dedup key are in its list's row", () =>
    Effect.gen(function*() {
      const dashboard = yield* start()
      yield* JobQueue.consume({
        queues: ["mail"],
        concurrency: 1,
        handlers: [Task.handle(Send, () => JobQueue.snooze("1 hour"))]
      })
      yield* dashboard.addQueue("mail")
      const job = yield* JobQueue.enqueue(Send, "ann", { queue: "mail", dedupKey: "ann-welcome" })
      yield* ticksUntil(Effect.map(job.status, (s) => s.snoozes === 1))
      const events = yield* readEvents(dashboard, (events) => events.length >= 1)
      const [row] = sourceIn(events.events[0]!.data, "queue", "mail").detail.queued
      assert.deepInclude(row, { id: job.id, status: "delayed", snoozes: 1, dedupKey: "ann-welcome", attempt: 0 })
    }).pipe(Effect.provide(JobStore.memory())))

  it.effect("a waiting job's expiry is in its row; once expired it is listed beside the dead letters as expired, and redrive runs it again", () =>
    Effect.gen(function*() {
      const dashboard = yield* start()
      yield* dashboard.addQueue("mail")
      const job = yield* JobQueue.enqueue(Send, "ann", { queue: "mail", expireIn: "1 minute" })
      const created = (yield* job.status).createdAt.getTime()
      const waiting = sourceIn((yield* readEvents(dashboard, (events) => events.length >= 1)).events[0]!.data, "queue", "mail")
      assert.deepInclude(waiting.detail.queued[0], { id: job.id, status: "queued", expiresAt: created + 60_000 })
      yield* TestClock.adjust("61 seconds")
      // a claim meets it (no consumer here: its reaper would too)
      const store = yield* JobStore.JobStore
      assert.strictEqual((yield* store.claim({ queues: ["mail"], tasks: ["Send"], limit: 1, lease: 1000 })).claims.length, 0)
      const mail = sourceIn((yield* readEvents(dashboard, (events) => events.length >= 1)).events[0]!.data, "queue", "mail")
      assert.deepStrictEqual(mail.detail.queued, [])
      assert.deepInclude(mail.detail.failed[0], { id: job.id, status: "expired", expiresAt: null })
      assert.include(mail.detail.failed[0].error, `expired unstarted at ${new Date(created + 60_000).toISOString()}`)
      const redriven = yield* post(dashboard, `api/queues/mail/jobs/${job.id}/redrive`)
      assert.deepStrictEqual([redriven.status, redriven.body], [200, { redriven: true }])
      assert.strictEqual((yield* job.status).state, "queued")
    }).pipe(Effect.provide(JobStore.memory())))

  it.effect("an expired job is listed behind more cancelled ones than a list holds (the store picks it out before its limit; a page of cancelled jobs hid it)", () =>
    Effect.gen(function*() {
      const dashboard = yield* start({ token: TOKEN, jobs: 3 })
      yield* dashboard.addQueue("mail")
      const cancelled = yield* JobQueue.enqueueAll(Send, ["a", "b", "c", "d"].map((to) => ({ payload: to })), { queue: "mail" })
      for (const job of cancelled) assert.strictEqual(yield* JobQueue.cancel(job.id), "cancelled")
      const job = yield* JobQueue.enqueue(Send, "ann", { queue: "mail", expireIn: "1 minute" })
      yield* TestClock.adjust("61 seconds")
      const store = yield* JobStore.JobStore
      assert.strictEqual((yield* store.claim({ queues: ["mail"], tasks: ["Send"], limit: 1, lease: 1000 })).claims.length, 0)
      const mail = sourceIn((yield* readEvents(dashboard, (events) => events.length >= 1)).events[0]!.data, "queue", "mail")
      assert.deepStrictEqual(mail.detail.failed.map((row: any) => [row.id, row.status]), [[job.id, "expired"]])
    }).pipe(Effect.provide(JobStore.memory())))

  it.effect("hold: a duration holds the queue (its consumers claim nothing), 0 lifts it and they claim again; the answer says until when", () =>
    Effect.gen(function*() {
      const dashboard = yield* start()
      yield* JobQueue.consume({
        queues: ["mail"],
        concurrency: 2,
        handlers: [Task.handle(Send, (to) => Effect.succeed(`sent to ${to}`))]
      })
      yield* dashboard.addQueue("mail")
      const now = yield* Clock.currentTimeMillis
      const held = yield* postJson(dashboard, "api/queues/mail/hold", { duration: "2 hours" })
      assert.deepStrictEqual([held.status, held.body], [200, { heldUntil: new Date(now + 7_200_000).toISOString() }])
      assert.strictEqual((yield* JobQueue.stats("mail")).heldUntil?.getTime(), now + 7_200_000)
      // milliseconds replace it
      const shorter = yield* postJson(dashboard, "api/queues/mail/hold", { duration: 3_600_000 })
      assert.deepStrictEqual(shorter.body, { heldUntil: new Date(now + 3_600_000).toISOString() })
      const job = yield* JobQueue.enqueue(Send, "dave", { queue: "mail" })
      for (let i = 0; i < 5; i++) yield* tick
      assert.strictEqual((yield* job.status).state, "queued")
      const lifted = yield* postJson(dashboard, "api/queues/mail/hold", { duration: 0 })
      assert.deepStrictEqual([lifted.status, lifted.body], [200, { heldUntil: null }])
      assert.isUndefined((yield* JobQueue.stats("mail")).heldUntil)
      yield* ticksUntil(Effect.map(job.status, (s) => s.state === "succeeded"))
      assert.strictEqual(yield* job.await, "sent to dave")
    }).pipe(Effect.provide(JobStore.memory())))

  it.effect("concurrency: a limit caps the queue's running jobs across its consumers, null (or 0) removes the cap", () =>
    Effect.gen(function*() {
      const dashboard = yield* start()
      const gate = yield* Deferred.make<void>()
      yield* JobQueue.consume({
        queues: ["mail"],
        concurrency: 4,
        handlers: [Task.handle(Send, (to) => Effect.as(Deferred.await(gate), to))]
      })
      yield* dashboard.addQueue("mail")
      const capped = yield* postJson(dashboard, "api/queues/mail/concurrency", { limit: 1 })
      assert.deepStrictEqual([capped.status, capped.body], [200, { concurrency: 1 }])
      yield* Effect.forEach(["a", "b", "c"], (to) => JobQueue.enqueue(Send, to, { queue: "mail" }))
      yield* ticksUntil(Effect.map(JobQueue.stats("mail"), (s) => s.running === 1))
      for (let i = 0; i < 3; i++) yield* tick
      assert.deepStrictEqual((yield* JobQueue.stats("mail")).concurrency, { limit: 1, running: 1 })
      const cleared = yield* postJson(dashboard, "api/queues/mail/concurrency", { limit: null })
      assert.deepStrictEqual([cleared.status, cleared.body], [200, { concurrency: null }])
      yield* ticksUntil(Effect.map(JobQueue.stats("mail"), (s) => s.running === 3))
      assert.isUndefined((yield* JobQueue.stats("mail")).concurrency)
      yield* postJson(dashboard, "api/queues/mail/concurrency", { limit: 2 })
      assert.deepStrictEqual((yield* postJson(dashboard, "api/queues/mail/concurrency", { limit: 0 })).body, { concurrency: null })
      yield* Deferred.succeed(gate, undefined)
    }).pipe(Effect.provide(JobStore.memory())))

  it.effect("bad input is a 400 naming it, an unknown queue a 404, a pool has neither endpoint; the queue is left as it was", () =>
    Effect.gen(function*() {
      const dashboard = yield* start()
      yield* dashboard.addQueue("mail")
      yield* dashboard.add(yield* WorkPool.make({ concurrency: 1, name: "images" }))
      yield* JobQueue.setConcurrency("mail", 3)
      const refused = (path: string, body: string) => Effect.map(call(dashboard, path, { method: "POST", body }), (r) => [r.status, r.body.error])
      const hold = "api/queues/mail/hold", cap = "api/queues/mail/concurrency"
      for (
        const [path, body, reason] of [
          [hold, `{"duration":-1}`, /invalid duration -1/],
          [hold, `{"duration":"NaN"}`, /invalid duration/],
          [hold, `{"duration":"soon"}`, /invalid duration "soon": expected milliseconds or a duration's text/],
          [hold, `{"duration":1e300}`, /at most \d+ milliseconds/],
          [hold, `{"duration":true}`, /invalid duration a boolean: expected milliseconds/],
          [hold, `{"duration":{"minutes":5}}`, /invalid duration/],
          [hold, `{}`, /the body has no "duration"/],
          [hold, `{"duraton":5}`, /unknown field "duraton"/],
          [hold, ``, /not JSON/],
          [hold, `{"duration":`, /not JSON/],
          [hold, `[0]`, /expected a JSON object/],
          [hold, `0`, /expected a JSON object/],
          [cap, `{"limit":-2}`, /invalid limit -2: expected a whole number from 1 to 1000000, or null \(or 0\) for no cap/],
          [cap, `{"limit":2.5}`, /invalid limit 2.5: expected a whole number/],
          [cap, `{"limit":1000001}`, /invalid limit 1000001: expected a whole number/],
          [cap, `{"limit":"5"}`, /invalid limit a string: expected a whole number from 1 to 1000000, or null/],
          [cap, `{"limit":5,"extra":1}`, /unknown field "extra"/]
        ] as const
      ) {
        const [status, error] = yield* refused(path, body)
        assert.strictEqual(status, 400, `${path} ${body}: ${error}`)
        assert.match(error, reason, `${path} ${body}`)
        // JSON's words: what only TypeScript can pass (undefined, a Duration, bigint) is no answer to a request
        assert.notMatch(error, /undefined|Duration|bigint/, `${path} ${body}`)
      }
      const stats = yield* JobQueue.stats("mail")
      assert.deepStrictEqual([stats.concurrency?.limit, stats.heldUntil], [3, undefined])
      assert.strictEqual((yield* postJson(dashboard, "api/queues/nope/hold", { duration: 0 })).status, 404)
      assert.strictEqual((yield* postJson(dashboard, "api/queues/nope/concurrency", { limit: 1 })).status, 404)
      assert.strictEqual((yield* postJson(dashboard, "api/pools/images/hold", { duration: 0 })).status, 404)
      // the guard of every button: the token, and the header against cross-site requests
      assert.strictEqual((yield* call(dashboard, hold, { method: "POST", body: `{"duration":0}`, token: null })).status, 401)
      const forged = yield* call(dashboard, hold, { method: "POST", body: `{"duration":0}`, headers: { "x-workpool-dashboard": "0" } })
      assert.strictEqual(forged.status, 403)
    }).pipe(Effect.provide(JobStore.memory())))
})

const dir = mkdtempSync(join(tmpdir(), "wp-dashboard-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let files = 0

// on an SQL store too: it keeps '' as the key of an ungrouped job of a queue with a per-key cap
describe.each([
  ["memory", () => JobStore.memory()],
  ["SQLite", () => JobStore.sqlite({ filename: join(dir, `group-${files++}.db`) })]
] as const)("Dashboard: a queue's per-key cap (%s)", (_name, layer) => {
  it.effect("group-concurrency: a limit caps each key's running jobs, the queue shows it and each job its key; null (or 0) removes it; bad input is a 400, an unknown queue a 404", () =>
    Effect.gen(function*() {
      const dashboard = yield* start()
      const gate = yield* Deferred.make<void>()
      yield* JobQueue.consume({
        queues: ["sync"],
        concurrency: 4,
        handlers: [Task.handle(Send, (to) => Effect.as(Deferred.await(gate), to))]
      })
      yield* dashboard.addQueue("sync")
      const path = "api/queues/sync/group-concurrency"
      const capped = yield* postJson(dashboard, path, { limit: 1 })
      assert.deepStrictEqual([capped.status, capped.body], [200, { groupConcurrency: 1 }])
      const [first, second, other] = yield* Effect.forEach(["a", "a", "b"], (key) => JobQueue.enqueue(Send, key, { queue: "sync", group: key }))
      const keyless = yield* JobQueue.enqueue(Send, "none", { queue: "sync" })
      yield* ticksUntil(Effect.map(JobQueue.stats("sync"), (s) => s.running === 3))
      for (let i = 0; i < 3; i++) yield* tick
      assert.strictEqual((yield* second!.status).state, "queued", "a's second job waits for its first")

      const events = yield* readEvents(dashboard, (events) => events.length >= 1)
      const sync = sourceIn(events.events[0]!.data, "queue", "sync")
      assert.strictEqual(sync.counts.groupConcurrency, 1)
      const keys = (jobs: ReadonlyArray<any>) => jobs.map((job) => [job.id, job.group]).sort()
      assert.deepStrictEqual(keys(sync.detail.running), [[first!.id, "a"], [other!.id, "b"], [keyless.id, null]].sort())
      assert.deepStrictEqual(keys(sync.detail.queued), [[second!.id, "a"]])

      for (
        const [body, reason] of [
          [`{"limit":-1}`, /invalid limit -1: expected a whole number from 1 to 1000000, or null \(or 0\) for no cap/],
          [`{"limit":1.5}`, /invalid limit 1.5: expected a whole number/],
          [`{"limit":1000001}`, /invalid limit 1000001/],
          [`{"limit":"2"}`, /invalid limit a string: expected a whole number from 1 to 1000000, or null/],
          [`{"limit":2,"group":"a"}`, /unknown field "group"/],
          [`{"limit":`, /not JSON/]
        ] as const
      ) {
        const refused = yield* call(dashboard, path, { method: "POST", body })
        assert.strictEqual(refused.status, 400, `${body}: ${refused.body.error}`)
        assert.match(refused.body.error, reason, body)
        assert.notMatch(refused.body.error, /undefined/, body)
      }
      assert.strictEqual((yield* JobQueue.stats("sync")).groupConcurrency, 1, "left as it was")
      const unknown = yield* postJson(dashboard, "api/queues/nope/group-concurrency", { limit: 1 })
      assert.deepStrictEqual([unknown.status, unknown.body.error], [404, `no queue named "nope" on this dashboard`])

      const cleared = yield* postJson(dashboard, path, { limit: null })
      assert.deepStrictEqual([cleared.status, cleared.body], [200, { groupConcurrency: null }])
      yield* ticksUntil(Effect.map(JobQueue.stats("sync"), (s) => s.running === 4))
      assert.isUndefined((yield* JobQueue.stats("sync")).groupConcurrency)
      yield* postJson(dashboard, path, { limit: 2 })
      assert.deepStrictEqual((yield* postJson(dashboard, path, { limit: 0 })).body, { groupConcurrency: null })
      yield* Deferred.succeed(gate, undefined)
    }).pipe(Effect.provide(layer())))
})

describe("jsonSafe", () => {
  it("keeps JSON values, shows others as text, and cuts large ones", () => {
    assert.deepStrictEqual(jsonSafe({ done: 1, of: 2 }), { done: 1, of: 2 })
    assert.strictEqual(jsonSafe(undefined), null)
    assert.strictEqual(jsonSafe(10n), "10")
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    assert.strictEqual(jsonSafe(cyclic), "[object Object]")
    const large = jsonSafe({ text: "x".repeat(10_000) }) as string
    assert.strictEqual(large.length, 2000)
    assert.isTrue(large.startsWith("{\"text\":\"xxx") && large.endsWith("..."))
  })
})

describe("quantile", () => {
  const buckets = (counts: ReadonlyArray<number>): ReadonlyArray<readonly [number, number]> => {
    let sum = 0
    return [1, 2, 4, 8, Infinity].map((b, i) => [b, sum += counts[i] ?? 0] as const)
  }
  it("interpolates within a bucket, over what was recorded between two readings", () => {
    const before = buckets([10, 0, 0, 0, 0])
    const after = buckets([10, 0, 10, 0, 0]) // 10 new values in (2, 4]
    assert.strictEqual(quantile(before, after, 0.5), 3)
    assert.strictEqual(quantile(before, after, 1), 4)
    assert.strictEqual(quantile(undefined, after, 0.75), 3) // 10 at most 1, then 10 in (2, 4]
    assert.strictEqual(quantile(undefined, after, 0.5), 1)
    assert.isUndefined(quantile(after, after, 0.5))
    // in the Infinity bucket: its lower boundary
    assert.strictEqual(quantile(undefined, buckets([0, 0, 0, 0, 3]), 0.99), 8)
  })
  it("quantileOf: exact, linear between the two nearest of a sorted sample", () => {
    assert.strictEqual(quantileOf([5], 0.99), 5)
    assert.strictEqual(quantileOf([0, 400], 0.5), 200)
    assert.strictEqual(quantileOf([0, 400], 0.99), 396)
    assert.strictEqual(quantileOf([1, 2, 3, 4, 100], 0.5), 3)
    assert.strictEqual(quantileOf([1, 2, 3, 4, 100], 1), 100)
  })
})

describe("Dashboard: many sources (a queue per tenant)", () => {
  const Job = Task.make("ManyJob", { payload: Schema.Number, success: Schema.Number })
  const name = (i: number) => `q-${String(i).padStart(2, "0")}`
  /** 30 queues (past the 20 shown each as a card): queue q-NN holds NN jobs, so the backlogs order them. */
  const thirty = Effect.gen(function*() {
    const dashboard = yield* start()
    const queues = Array.from({ length: 30 }, (_, i) => name(i))
    yield* JobQueue.enqueueAll(Job, queues.flatMap((queue, i) => Array.from({ length: i }, (_, k) => ({ payload: k, options: { queue } }))))
    for (const queue of queues) yield* dashboard.addQueue(queue)
    // the first interval reads the counts, the second the top by backlog in full
    yield* tick
    yield* tick
    return dashboard
  })

  it.effect("past 20 sources a page's stream carries the top 5 by backlog and the sources it selected (?show=), each with its lists; the JSON snapshot still has every source", () =>
    Effect.gen(function*() {
      const dashboard = yield* thirty
      const { events, status } = yield* readEvents(dashboard, (events) => events.length >= 1, undefined, "api/events?show=queue%3Aq-03")
      assert.strictEqual(status, 200)
      const first = events[0]!.data
      assert.isTrue(first.overview)
      assert.strictEqual(first.total, 30)
      assert.deepStrictEqual(first.top, ["queue:q-29", "queue:q-28", "queue:q-27", "queue:q-26", "queue:q-25"])
      // before: all 30, each with its lists (10,000 queues: a first message of megabytes, 30 s)
      assert.sameMembers(first.sources.map((s: any) => s.name), ["q-29", "q-28", "q-27", "q-26", "q-25", "q-03"])
      assert.strictEqual(sourceIn(first, "queue", "q-03").detail.queued.length, 3)
      assert.strictEqual(sourceIn(first, "queue", "q-27").detail.queued.length, 27)
      assert.isAbove(sourceIn(first, "queue", "q-29").points.length, 0, "a top source has its history")
      const snapshot = (yield* call(dashboard, "api/snapshot")).body
      assert.strictEqual(snapshot.sources.length, 30)
      assert.strictEqual(sourceIn(snapshot, "queue", "q-11").counts.waiting, 11)
      assert.deepStrictEqual(sourceIn(snapshot, "queue", "q-11").points, [], "a source no page shows keeps no history")
    }).pipe(Effect.provide(JobStore.memory())))

  it.effect("the overview: a window of every source's counts, filtered by name, sorted by backlog or name; bad parameters are a 400 naming them", () =>
    Effect.gen(function*() {
      const dashboard = yield* thirty
      const top = (yield* call(dashboard, "api/overview?order=backlog&limit=3")).body
      assert.strictEqual(top.total, 30)
      assert.strictEqual(top.matched, 30)
      assert.deepStrictEqual(top.rows.map((r: any) => [r.name, r.counts.waiting]), [["q-29", 29], ["q-28", 28], ["q-27", 27]])
      assert.isNumber(top.rows[0].at)
      const filtered = (yield* call(dashboard, "api/overview?filter=Q-1&order=name&offset=5&limit=3")).body
      assert.strictEqual(filtered.matched, 10)
      assert.deepStrictEqual(filtered.rows.map((r: any) => r.name), ["q-15", "q-16", "q-17"])
      assert.strictEqual((yield* call(dashboard, "api/overview")).body.rows.length, 30, "50 rows by default")
      for (const [query, field] of [["order=size", "order"], ["limit=0", "limit"], ["limit=201", "limit"], ["offset=-1", "offset"], ["offset=1.5", "offset"]]) {
        const reply = yield* call(dashboard, `api/overview?${query}`)
        assert.strictEqual(reply.status, 400, query)
        assert.match(reply.body.error, new RegExp(`^invalid ${field} `), query)
      }
      assert.strictEqual((yield* call(dashboard, "api/overview", { token: null })).status, 401)
      const badShow = yield* call(dashboard, "api/events?show=q-03")
      assert.strictEqual(badShow.status, 400)
      assert.match(badShow.body.error, /invalid show "q-03": expected pool:<name> or queue:<name>/)
      const tooMany = yield* call(dashboard, `api/events?${Array.from({ length: 21 }, (_, i) => `show=queue%3A${name(i)}`).join("&")}`)
      assert.strictEqual(tooMany.status, 400)
      assert.match(tooMany.body.error, /at most 20 sources/)
    }).pipe(Effect.provide(JobStore.memory())))

  it.effect("the open pages together select at most 100 sources: a stream whose selection would add past that is refused (429, naming the limit), one of sources already shown is not, and once a page closes there is room again (each page's 20 alone left N pages reading 20·N sources in full every interval)", () =>
    Effect.gen(function*() {
      const dashboard = yield* thirty
      const show = (keys: ReadonlyArray<number>) => `api/events?${keys.map((k) => `show=queue%3As-${k}`).join("&")}`
      const pages = yield* Effect.forEach(
        Array.from({ length: 5 }, (_, page) => Array.from({ length: 20 }, (_, i) => 20 * page + i)),
        (keys) => openEvents(dashboard, show(keys))
      )
      assert.deepStrictEqual(pages.map((page) => page.status), [200, 200, 200, 200, 200])
      const refused = yield* openEvents(dashboard, show([100]))
      refused.close()
      assert.strictEqual(refused.status, 429)
      assert.strictEqual(JSON.parse(refused.text).error, "at most 100 sources may be shown across the open pages: 100 are, and this page would add 1")
      // sources already shown add nothing
      const again = yield* openEvents(dashboard, show([0, 99]))
      assert.strictEqual(again.status, 200)
      again.close()
      pages[0]!.close()
      // its sources are let go once the server sees the stream closed
      let status = 429
      for (let i = 0; i < 200 && status === 429; i++) {
        const page = yield* openEvents(dashboard, show([100]))
        page.close()
        status = page.status
      }
      assert.strictEqual(status, 200)
      pages.forEach((page) => page.close())
    }).pipe(Effect.provide(JobStore.memory())))

  it.effect("a pool among many queues is ordered with them: its backlog is its queued jobs, its failures its failed ones", () =>
    Effect.gen(function*() {
      const dashboard = yield* thirty
      const pool = yield* WorkPool.make({ concurrency: 1, name: "p-big", retention: { count: 10 } })
      yield* Effect.forEach([1, 2], () => Effect.exit(pool.run(Effect.fail("boom"))), { discard: true })
      const gate = yield* Deferred.make<void>()
      yield* Effect.addFinalizer(() => Deferred.succeed(gate, undefined))
      yield* Effect.forEach(Array.from({ length: 41 }, (_, i) => i), () => pool.submit(Deferred.await(gate)), { discard: true })
      yield* dashboard.add(pool)
      yield* tick
      yield* tick
      const byBacklog = (yield* call(dashboard, "api/overview?limit=2")).body.rows.map((r: any) => `${r.kind}:${r.name}`)
      assert.deepStrictEqual(byBacklog, ["pool:p-big", "queue:q-29"])
      const byFailed = (yield* call(dashboard, "api/overview?order=failed&limit=1")).body.rows[0]
      assert.deepStrictEqual([byFailed.name, byFailed.counts.failed], ["p-big", 2])
      const byRunning = (yield* call(dashboard, "api/overview?order=running&limit=1")).body.rows[0]
      assert.strictEqual(byRunning.name, "p-big")
      const { events } = yield* readEvents(dashboard, (events) => events.length >= 1)
      assert.strictEqual(events[0]!.data.top[0], "pool:p-big")
      assert.strictEqual(sourceIn(events[0]!.data, "pool", "p-big").detail.failed.length, 2)
    }).pipe(Effect.provide(JobStore.memory())))

  it.effect("the reading schedule: lists and latencies only for the sources a page shows, the others' counts a sweep at a time, no history for them", () =>
    Effect.gen(function*() {
      const store = yield* JobStore.JobStore
      const counted = new Map<string, number>()
      const listed = new Set<string>()
      const latencies = new Set<string>()
      const watched: typeof store = {
        ...store,
        counts: (queue) => Effect.andThen(Effect.sync(() => counted.set(queue, (counted.get(queue) ?? 0) + 1)), store.counts(queue)),
        list: (filter) => Effect.andThen(Effect.sync(() => listed.add(String(filter.queue))), store.list(filter)),
        latencies: (queue, since, limit) => Effect.andThen(Effect.sync(() => latencies.add(queue)), store.latencies(queue, since, limit))
      }
      const dashboard = yield* start()
      const n = 2 * SWEEP + 200
      const queues = Array.from({ length: n }, (_, i) => `tenant-${i}`)
      // one job each, and ten in tenant-700: the top of the backlogs
      yield* JobQueue.enqueueAll(Job, [...queues, ...Array.from({ length: 9 }, () => "tenant-700")].map((queue, k) => ({ payload: k, options: { queue } })))
      for (const queue of queues) yield* Effect.provideService(dashboard.addQueue(queue), JobStore.JobStore, watched)
      const callsPerTick: Array<number> = []
      const ticked = Effect.gen(function*() {
        counted.clear()
        yield* tick
        callsPerTick.push(Array.from(counted.values()).reduce((a, b) => a + b, 0))
      })
      // three intervals read every queue's counts once (a sweep of 500 each)
      for (let i = 0; i < 3; i++) yield* ticked
      const overview = (yield* call(dashboard, `api/overview?limit=200&order=backlog`)).body
      assert.deepStrictEqual(overview.rows[0].name, "tenant-700")
      assert.strictEqual(overview.rows[0].counts.waiting, 10)
      const unread = (yield* call(dashboard, "api/snapshot")).body.sources.filter((s: any) => s.counts == null)
      assert.deepStrictEqual(unread.map((s: any) => s.name), [], "three sweeps read every queue")
      // a page selects tenant-5: its lists are read, and the top's, no other queue's
      let connected!: () => void
      const firstEvent = new Promise<void>((resolve) => connected = resolve)
      const reading = yield* Effect.forkChild(
        readEvents(dashboard, (events) => events.length >= 3, (count) => count === 1 && connected(), "api/events?show=queue%3Atenant-5")
      )
      yield* Effect.promise(() => firstEvent)
      listed.clear()
      latencies.clear()
      yield* ticked
      yield* ticked
      const { events } = yield* Fiber.join(reading)
      const shown = new Set(events[2]!.data.sources.map((s: any) => s.name))
      assert.isTrue(shown.has("tenant-700") && shown.has("tenant-5"), [...shown].join())
      assert.isAtMost(shown.size, TOP + 1)
      // before: every queue's three lists and latencies, every interval (10,000 queues: 5 s a reading)
      assert.sameMembers([...listed], [...shown])
      assert.sameMembers([...latencies], [...shown])
      for (const calls of callsPerTick) assert.isAtMost(calls, SWEEP + TOP + 1, `counts read per interval: ${callsPerTick.join(", ")}`)
      const snapshot = (yield* call(dashboard, "api/snapshot")).body
      const kept = snapshot.sources.filter((s: any) => s.points.length > 0).map((s: any) => s.name)
      assert.includeMembers([...shown], kept, "only the shown sources keep a history")
    }).pipe(Effect.provide(JobStore.memory())))
})
