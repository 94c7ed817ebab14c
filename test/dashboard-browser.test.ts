/**
 * The dashboard in a real browser: headless Chromium (Debian's, installed by .ci/run) opens the
 * page a `Dashboard.layer` serves, sees a pool's counts move while jobs run, cancels a running job,
 * redrives a dead durable job, and pauses and resumes the pool and the queue with the page's
 * buttons, and sees each take effect, on the page and in the pool or the store. Every wait is for a condition, bounded; nothing sleeps a guessed
 * time. A screenshot goes to .ci/out/dashboard.png (a CI artifact); with UPDATE_SCREENSHOT=1 also
 * to docs/dashboard.png, the README's.
 *
 * Outside CI the test is skipped where Chromium is missing; under CI=true it fails instead.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Exit, Fiber, Layer, Option, Schedule, Schema, Scope } from "effect"
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as Dashboard from "../src/Dashboard.ts"
import { JobQueue, Task, WorkPool } from "../src/index.ts"
import * as JobStore from "../src/JobStore.ts"
import { type Browser, CHROMIUM, launch } from "./browser/chromium.ts"

const root = fileURLToPath(new URL("..", import.meta.url))

class Bounced extends Schema.TaggedError<Bounced>()("Bounced", { to: Schema.String, reason: Schema.String }) {}
const SendMail = Task.make("SendMail", { payload: Schema.String, success: Schema.String, failure: Bounced })

/** An image job: a few steps of work, each reported as progress; every 7th one fails. */
const resize = (n: number) =>
  Effect.gen(function*() {
    const { progress } = yield* WorkPool.JobContext
    for (let step = 1; step <= 4; step++) {
      yield* Effect.sleep(`${20 + (n % 5) * 15} millis`)
      yield* progress({ done: step, of: 4 })
    }
    if (n % 7 === 0) return yield* Effect.fail(`image ${n}: not a JPEG`)
    return n
  })

/** Text of an element of a source's card, in the page. */
const countIn = (source: string, count: string) =>
  `document.querySelector('[data-source="${source}"] [data-count="${count}"] b')?.textContent`

describe("Dashboard in headless Chromium", () => {
  it.live.skipIf(!existsSync(CHROMIUM) && process.env.CI !== "true")(
    "counts move, cancel stops a running job, redrive reruns a dead one, pause and resume",
    () =>
      Effect.gen(function*() {
        const dashboard = yield* Dashboard.Dashboard
        const pool = yield* WorkPool.make({ concurrency: 3, name: "images", retention: { count: 200, age: "10 minutes" } })
        yield* dashboard.add(pool)
        // a long job to cancel, and a steady stream of short ones
        const long = yield* pool.submit(Effect.gen(function*() {
          const { progress } = yield* WorkPool.JobContext
          yield* progress({ done: 3, of: 10 })
          return yield* Effect.never
        }))
        let n = 0
        yield* Effect.forkScoped(Effect.repeat(
          Effect.suspend(() => pool.submit(resize(++n))),
          Schedule.spaced("70 millis")
        ))

        // durable mail: the first attempt of each address bounces, and with one attempt allowed it is dead
        const bouncedOnce = new Set<string>()
        yield* JobQueue.consume({
          queues: ["mail"],
          concurrency: 2,
          handlers: [Task.handle(SendMail, (to) =>
            bouncedOnce.has(to)
              ? Effect.succeed(`sent to ${to}`)
              : Effect.sync(() => bouncedOnce.add(to)).pipe(
                Effect.andThen(Effect.fail(new Bounced({ to, reason: "mailbox full" })))
              ))]
        })
        yield* dashboard.addQueue("mail")
        // rate limits: a pool holding jobs back, and the mail queue's shared limit
        yield* JobQueue.setRateLimit("mail", { limit: 100, interval: "1 second" })
        const throttled = yield* WorkPool.make({
          concurrency: 4,
          name: "throttled",
          shutdownTimeout: 0,
          rateLimit: { limit: 1, interval: "1 hour" }
        })
        yield* Effect.forEach([1, 2, 3], () => throttled.submit(Effect.void))
        yield* dashboard.add(throttled)
        const dead = yield* Effect.forEach(["ann@example.com", "bob@example.com"], (to) =>
          JobQueue.enqueue(SendMail, to, { queue: "mail", maxAttempts: 1 }))
        yield* Effect.forEach(dead, (job) => Effect.exit(job.await))
        // and some that succeed at their second attempt (a second later), for the queue's charts
        yield* Effect.forEach(["cat@example.com", "dan@example.com", "eve@example.com"], (to) =>
          JobQueue.enqueue(SendMail, to, { queue: "mail", maxAttempts: 2 }))


        const browser: Browser = yield* Effect.acquireRelease(Effect.promise(launch), (browser) => Effect.promise(browser.close))
        const page = yield* Effect.promise(() => browser.open(dashboard.url, { width: 1280, height: 1100 }))

        // the counts move while jobs run
        const first = Number(yield* Effect.promise(() =>
          page.waitFor<string>("the pool's succeeded count is above 0", `() => Number(${countIn("pool:images", "succeeded")}) > 0 && ${countIn("pool:images", "succeeded")}`)
        ))
        const later = Number(yield* Effect.promise(() =>
          page.waitFor<string>(`the succeeded count moves past ${first}`, `() => Number(${countIn("pool:images", "succeeded")}) > ${first} && ${countIn("pool:images", "succeeded")}`)
        ))
        assert.isAbove(later, first)
        // the limits show where they are set
        yield* Effect.promise(() =>
          page.waitFor("the throttled pool shows its 2 held jobs", `() => ${countIn("pool:throttled", "rateLimited")} === "2"`)
        )
        yield* Effect.promise(() =>
          page.waitFor("the mail queue shows its limit", `() => /^\\d+\\/100$/.test(${countIn("queue:mail", "rateLimit")} ?? "")`)
        )
        assert.isNull(yield* Effect.promise(() => page.evaluate<string | null>(`${countIn("pool:images", "rateLimited")} ?? null`)))
        // the token left the address bar, and the page lists the failures with their errors
        assert.notInclude(yield* Effect.promise(() => page.evaluate<string>("location.href")), "token")
        yield* Effect.promise(() =>
          page.waitFor("a failed image with its error", `() => [...document.querySelectorAll('[data-source="pool:images"] [data-list="failed"] td.error')].some((td) => td.textContent.includes("not a JPEG"))`)
        )

        // cancel: the long job's row has its progress (3 of 10) and a button
        const row = `[data-source="pool:images"] [data-list="running"] tr[data-job="${long.id}"]`
        yield* Effect.promise(() =>
          page.waitFor("the long job is listed as running, at 30%", `() => document.querySelector('${row}')?.textContent.includes("30%")`)
        )
        yield* Effect.promise(() => page.evaluate(`document.querySelector('${row} button[data-action="cancel"]').click()`))
        yield* Effect.promise(() =>
          page.waitFor("the cancel is confirmed and the job left the running list", `() => document.getElementById("message").textContent === "cancel images #${long.id}: done" && !document.querySelector('${row}')`)
        )
        assert.strictEqual(yield* long.status, "interrupted")
        const summary = Option.getOrThrow(yield* pool.job(long.id))
        assert.strictEqual(yield* summary.status, "interrupted")
        yield* Effect.promise(() =>
          page.waitFor("the cancelled count shows it", `() => Number(${countIn("pool:images", "interrupted")}) >= 1`)
        )

        // redrive: a dead mail job, listed with its error, goes back to its queue and succeeds
        const target = dead[0]!
        const deadRow = `[data-source="queue:mail"] [data-list="failed"] tr[data-job="${target.id}"]`
        yield* Effect.promise(() =>
          page.waitFor("the dead mail job is listed with its error", `() => document.querySelector('${deadRow}')?.textContent.includes("mailbox full")`)
        )
        assert.strictEqual(yield* Effect.promise(() => page.evaluate<string>(countIn("queue:mail", "dead"))), "2")
        yield* Effect.promise(() => page.evaluate(`document.querySelector('${deadRow} button[data-action="redrive"]').click()`))
        // the click's request is on its way: the job is dead until the page has its answer
        yield* Effect.promise(() =>
          page.waitFor("the redrive is confirmed", `() => document.getElementById("message").textContent === "redrive mail #${target.id}: done"`)
        )
        assert.strictEqual(yield* target.await, "sent to ann@example.com")
        assert.strictEqual((yield* target.status).state, "succeeded")
        yield* Effect.promise(() =>
          page.waitFor("the page shows one dead job left, not this one", `() => ${countIn("queue:mail", "dead")} === "1" && !document.querySelector('${deadRow}')`)
        )
        // the other dead job is still there, still dead
        assert.strictEqual((yield* dead[1]!.status).state, "dead")

        // the queue's latency chart: percentiles of the mail jobs that ended, read from the store
        const legend = `(document.querySelector('[data-source="queue:mail"] [data-chart="latency"] .legend')?.textContent ?? "")`
        const latencies = yield* Effect.promise(() =>
          page.waitFor<string>("the mail queue's latency legend shows wait and run times", `() => /wait p99 \\d[\\d.]* ms/.test(${legend}) && /run p99 \\d[\\d.]* ms/.test(${legend}) && ${legend}`)
        )
        assert.match(latencies, /wait p50 \d[\d.]* ms/)

        // for the screenshot (the README's): the mail queue's settings shown too, its cap, per-key cap and retention
        yield* Effect.orDie(JobQueue.setConcurrency("mail", 4))
        yield* Effect.orDie(JobQueue.setGroupConcurrency("mail", 1))
        yield* Effect.orDie(JobQueue.setRetention("mail", { succeeded: { age: "1 day", count: 1000 } }))
        yield* Effect.promise(() =>
          page.waitFor("the mail queue shows its cap, per-key cap and retention", `() => document.querySelector('[data-source="queue:mail"] [data-count="concurrency"]') && document.querySelector('[data-source="queue:mail"] [data-count="groupConcurrency"]') && document.querySelector('[data-source="queue:mail"] [data-count="retention"]')`)
        )
        // charts with some history (20 intervals of 250 ms)
        yield* Effect.promise(() =>
          page.waitFor("the pool's charts have 20 points", `() => document.querySelector('[data-source="pool:images"] svg path').getAttribute("d").split("L").length >= 20`)
        )
        const png = yield* Effect.promise(() => page.screenshot())
        assert.isAbove(png.length, 10_000)
        mkdirSync(join(root, ".ci/out"), { recursive: true })
        writeFileSync(join(root, ".ci/out/dashboard.png"), png)
        if (process.env.UPDATE_SCREENSHOT === "1") writeFileSync(join(root, "docs/dashboard.png"), png)

        // pause and resume: the pool's dispatch, the queue's claims; the page shows the state and the other button
        for (const [source, paused] of [["pool:images", Effect.map(pool.stats, (s) => s.state === "paused")],
          ["queue:mail", Effect.map(Effect.orDie(JobQueue.stats("mail")), (s) => s.paused)]] as const) {
          const name = source.slice(source.indexOf(":") + 1)
          for (const action of ["pause", "resume"] as const) {
            const button = `[data-source="${source}"] h2 button[data-action="${action}"]`
            yield* Effect.promise(() => page.waitFor(`the ${action} button of ${source}`, `() => !!document.querySelector('${button}')`))
            yield* Effect.promise(() => page.evaluate(`document.querySelector('${button}').click()`))
            const other = action === "pause" ? "resume" : "pause"
            yield* Effect.promise(() =>
              page.waitFor(
                `${action} ${source} is confirmed and the page offers ${other}`,
                `() => document.getElementById("message").textContent === "${action} ${name}: done" && ` +
                  `!!document.querySelector('[data-source="${source}"] h2 button[data-action="${other}"]') && ` +
                  `!!document.querySelector('[data-source="${source}"] [data-count="paused"]') === ${action === "pause"}`
              )
            )
            assert.strictEqual(yield* paused, action === "pause")
          }
        }

        // without the token in the URL (a new tab has none stored): the page asks for it, then connects
        const bare = yield* Effect.promise(() => browser.open(dashboard.address))
        yield* Effect.promise(() =>
          bare.waitFor("the page asks for a token", `() => document.getElementById("status").textContent === "token needed" && getComputedStyle(document.getElementById("login")).display !== "none"`)
        )
        const token = dashboard.url.slice(dashboard.url.indexOf("#token=") + "#token=".length)
        yield* Effect.promise(() =>
          bare.evaluate(`document.getElementById("token").value = ${JSON.stringify(token)}; document.getElementById("login").requestSubmit()`)
        )
        yield* Effect.promise(() =>
          bare.waitFor("the page is live with the pool on it", `() => document.getElementById("status").textContent === "live" && ${countIn("pool:images", "succeeded")}`)
        )
      }).pipe(
        Effect.scoped,
        Effect.provide(Layer.merge(Dashboard.layer({ interval: "250 millis", history: 240 }), JobStore.memory()))
      ),
    180_000
  )
})

describe("Dashboard in headless Chromium: a queue's settings", () => {
  const Sms = Task.make("Sms", { payload: Schema.String, success: Schema.String })
  it.live.skipIf(!existsSync(CHROMIUM) && process.env.CI !== "true")(
    "a waiting job shows its expiry; an expired one is listed beside the dead letters as expired, with a redrive button",
    () =>
      Effect.gen(function*() {
        const dashboard = yield* Dashboard.Dashboard
        const store = yield* JobStore.JobStore
        const waiting = yield* JobQueue.enqueue(Sms, "ann", { queue: "codes", expireIn: "1 hour" })
        const late = yield* JobQueue.enqueue(Sms, "bob", { queue: "codes", expireIn: "50 millis" })
        // no consumer here: a claim of the queue (of no task it has) meets the expired job and ends it
        while ((yield* store.now) <= (yield* late.status).createdAt.getTime() + 50) yield* Effect.sleep("20 millis")
        yield* store.claim({ queues: ["codes"], tasks: ["none"], limit: 1, lease: 1000 })
        assert.isDefined((yield* late.status).expiredAt)
        yield* dashboard.addQueue("codes")
        const browser: Browser = yield* Effect.acquireRelease(Effect.promise(launch), (browser) => Effect.promise(browser.close))
        const page = yield* Effect.promise(() => browser.open(dashboard.url, { width: 1280, height: 1100 }))
        const card = `[data-source="queue:codes"]`
        yield* Effect.promise(() =>
          page.waitFor(
            "the waiting job's row shows its expiry, the expired one is in the dead / expired list with its redrive button",
            `() => /^expires /.test(document.querySelector('${card} [data-list="queued"] tr[data-job="${waiting.id}"] [data-expires]')?.textContent ?? "") && document.querySelector('${card} [data-list="failed"] tr[data-job="${late.id}"]')?.getAttribute("data-status") === "expired" && /expired unstarted at/.test(document.querySelector('${card} [data-list="failed"] tr[data-job="${late.id}"] td.error')?.textContent ?? "") && !!document.querySelector('${card} [data-list="failed"] tr[data-job="${late.id}"] button[data-action="redrive"]') && (document.querySelector('${card} [data-list="failed"] h3')?.textContent ?? "").startsWith("Dead / expired")`
          )
        )
      }).pipe(
        Effect.scoped,
        Effect.provide(Layer.merge(Dashboard.layer({ interval: "250 millis", history: 240 }), JobStore.memory()))
      ),
    60_000
  )

  it.live.skipIf(!existsSync(CHROMIUM) && process.env.CI !== "true")(
    "a held queue shows until when and why it runs nothing; lift hold: its consumers run its jobs again, at most its cap at once, shown as running/cap; a snoozed job shows its snoozes and its key; hold, cap and per-key cap from the page",
    () =>
      Effect.gen(function*() {
        const dashboard = yield* Dashboard.Dashboard
        const gate = yield* Deferred.make<void>()
        yield* JobQueue.consume({
          queues: ["sms"],
          concurrency: 4,
          handlers: [Task.handle(Sms, (to) => to === "later" ? JobQueue.snooze("1 hour") : Effect.as(Deferred.await(gate), `sent to ${to}`))]
        })
        yield* JobQueue.setConcurrency("sms", 2)
        yield* JobQueue.setRetention("sms", { succeeded: { age: "1 hour", count: 500 } })
        yield* JobQueue.holdQueue("sms", "1 hour")
        // first in line: it snoozes and frees its slot, which two of the others then hold
        const later = yield* JobQueue.enqueue(Sms, "later", { queue: "sms", dedupKey: "digest-42", group: "acct-7" })
        const jobs = yield* Effect.forEach(["ann", "bob", "cat"], (to) => JobQueue.enqueue(Sms, to, { queue: "sms" }))
        yield* dashboard.addQueue("sms")

        const browser: Browser = yield* Effect.acquireRelease(Effect.promise(launch), (browser) => Effect.promise(browser.close))
        const page = yield* Effect.promise(() => browser.open(dashboard.url, { width: 1280, height: 1100 }))
        const card = `[data-source="queue:sms"]`
        const text = (count: string) => `(document.querySelector('${card} [data-count="${count}"]')?.textContent ?? "")`
        yield* Effect.promise(() =>
          page.waitFor(
            "the queue shows its hold, its cap with none running, and its retention",
            `() => /^held until .*no consumer claims its jobs before/.test(${text("held")}) && ${countIn("queue:sms", "concurrency")} === "0/2" && ${text("retention")}.includes("succeeded: 1h, newest 500")`
          )
        )
        assert.strictEqual((yield* later.status).state, "queued")

        // lift it: the jobs run again, two at a time (the cap), one snoozes
        yield* Effect.promise(() => page.evaluate(`document.querySelector('${card} h2 button[data-action="hold"][data-body]').click()`))
        yield* Effect.promise(() =>
          page.waitFor(
            "the lift is confirmed, the hold is gone and two jobs run at the cap",
            `() => document.getElementById("message").textContent === "hold sms: done" && !document.querySelector('${card} [data-count="held"]') && ${countIn("queue:sms", "concurrency")} === "2/2" && document.querySelector('${card} [data-count="concurrency"]').getAttribute("data-full") === "true"`
          )
        )
        assert.isUndefined((yield* JobQueue.stats("sms")).heldUntil)
        yield* Effect.promise(() =>
          page.waitFor(
            "the snoozed job is delayed, with its snooze, its dedup key and its group's key",
            `() => /delayed, snoozed 1\u00d7/.test(document.querySelector('${card} [data-list="queued"] tr[data-job="${later.id}"]')?.textContent ?? "") && document.querySelector('${card} [data-list="queued"] tr[data-job="${later.id}"] [data-dedup]').textContent === "key digest-42" && document.querySelector('${card} [data-list="queued"] tr[data-job="${later.id}"] [data-group]').textContent === "group acct-7"`
          )
        )
        yield* Deferred.succeed(gate, undefined)
        assert.deepStrictEqual(yield* Effect.forEach(jobs, (job) => job.await), ["sent to ann", "sent to bob", "sent to cat"])

        // the page's own prompts: a cap of 5, then a hold of 15 minutes
        yield* Effect.promise(() => page.evaluate(`window.prompt = () => "5"; document.querySelector('${card} h2 button[data-action="concurrency"]').click()`))
        yield* Effect.promise(() =>
          page.waitFor("the cap of 5 is confirmed and shown", `() => document.getElementById("message").textContent === "concurrency sms: done" && /^\\d\\/5$/.test(${countIn("queue:sms", "concurrency")} ?? "")`)
        )
        assert.strictEqual((yield* JobQueue.stats("sms")).concurrency?.limit, 5)
        yield* Effect.promise(() => page.evaluate(`window.prompt = () => "15 minutes"; document.querySelector('${card} h2 button[data-action="hold"][data-ask]').click()`))
        yield* Effect.promise(() =>
          page.waitFor("the hold is confirmed and shown", `() => document.getElementById("message").textContent === "hold sms: done" && !!document.querySelector('${card} [data-count="held"]')`)
        )
        const held = (yield* JobQueue.stats("sms")).heldUntil
        assert.isDefined(held)
        assert.isAbove(held!.getTime(), Date.now() + 10 * 60_000)
        // a bad answer: the server's reason on the page, nothing changed
        yield* Effect.promise(() => page.evaluate(`window.prompt = () => "-3"; document.querySelector('${card} h2 button[data-action="concurrency"]').click()`))
        yield* Effect.promise(() =>
          page.waitFor("the refusal is shown", `() => /^concurrency sms: invalid limit/.test(document.getElementById("message").textContent)`)
        )
        assert.strictEqual((yield* JobQueue.stats("sms")).concurrency?.limit, 5)

        // the per-key cap: set, refused, removed (an empty answer); a button pressed stays disabled
        // until the next sample draws the card again after a change (at once), not after a refusal
        const perKeyButton = `${card} h2 button[data-action="group-concurrency"]`
        const perKey = (answer: string) =>
          Effect.promise(async () => {
            await page.waitFor("the per-key cap button, enabled", `() => document.querySelector('${perKeyButton}')?.disabled === false`)
            await page.evaluate(`window.prompt = () => ${JSON.stringify(answer)}; document.querySelector('${perKeyButton}').click()`)
          })
        yield* perKey("2")
        yield* Effect.promise(() =>
          page.waitFor("the per-key cap of 2 is confirmed and shown", `() => document.getElementById("message").textContent === "group-concurrency sms: done" && ${countIn("queue:sms", "groupConcurrency")} === "per key \u2264 2"`)
        )
        assert.strictEqual((yield* JobQueue.stats("sms")).groupConcurrency, 2)
        yield* perKey("1.5")
        yield* Effect.promise(() =>
          page.waitFor("the refusal is shown", `() => /^group-concurrency sms: invalid limit 1.5/.test(document.getElementById("message").textContent)`)
        )
        assert.strictEqual((yield* JobQueue.stats("sms")).groupConcurrency, 2)
        yield* perKey("")
        yield* Effect.promise(() =>
          page.waitFor("the per-key cap is gone", `() => document.getElementById("message").textContent === "group-concurrency sms: done" && !document.querySelector('${card} [data-count="groupConcurrency"]')`)
        )
        assert.isUndefined((yield* JobQueue.stats("sms")).groupConcurrency)
      }).pipe(
        Effect.scoped,
        Effect.provide(Layer.merge(Dashboard.layer({ interval: "250 millis" }), JobStore.memory()))
      ),
    120_000
  )
})

describe("Dashboard in headless Chromium: a refused action", () => {
  // BUG (fixed): a refused (4xx) or failed action left its button disabled until the next sample drew
  // the card again: with a slow interval, the operator could not correct the answer for that long
  it.live.skipIf(!existsSync(CHROMIUM) && process.env.CI !== "true")(
    "a refused cap: the server's reason shown and the button enabled at once, not at the next sample (an hour away)",
    () =>
      Effect.gen(function*() {
        const dashboard = yield* Dashboard.Dashboard
        yield* JobQueue.setConcurrency("sms", 5)
        yield* dashboard.addQueue("sms")
        const browser: Browser = yield* Effect.acquireRelease(Effect.promise(launch), (browser) => Effect.promise(browser.close))
        const page = yield* Effect.promise(() => browser.open(dashboard.url, { width: 1280, height: 800 }))
        const button = `[data-source="queue:sms"] h2 button[data-action="concurrency"]`
        yield* Effect.promise(() => page.waitFor("the queue's cap and its button", `() => ${countIn("queue:sms", "concurrency")} === "0/5" && !!document.querySelector('${button}')`))
        // the same element throughout: no sample draws the card again within the hour
        yield* Effect.promise(() => page.evaluate(`window.pressed = document.querySelector('${button}'); window.prompt = () => "-3"; window.pressed.click()`))
        yield* Effect.promise(() =>
          page.waitFor(
            "the refusal is shown and the button pressed is enabled again",
            `() => /^concurrency sms: invalid limit -3/.test(document.getElementById("message").textContent) && window.pressed.disabled === false && window.pressed === document.querySelector('${button}')`
          )
        )
        assert.strictEqual((yield* JobQueue.stats("sms")).concurrency?.limit, 5)
        // pressed again with another answer: taken
        yield* Effect.promise(() => page.evaluate(`window.prompt = () => "7"; window.pressed.click()`))
        yield* Effect.promise(() => page.waitFor("the cap of 7 is shown", `() => ${countIn("queue:sms", "concurrency")} === "0/7"`))
        assert.strictEqual((yield* JobQueue.stats("sms")).concurrency?.limit, 7)
      }).pipe(
        Effect.scoped,
        Effect.provide(Layer.merge(Dashboard.layer({ interval: "1 hour" }), JobStore.memory()))
      ),
    120_000
  )
})

describe("Dashboard in headless Chromium: read-only", () => {
  const Sms = Task.make("Sms", { payload: Schema.String, success: Schema.String })
  it.live.skipIf(!existsSync(CHROMIUM) && process.env.CI !== "true")(
    "readOnly: the page shows a queue's hold, cap, per-key cap and jobs, and not one button",
    () =>
      Effect.gen(function*() {
        const dashboard = yield* Dashboard.Dashboard
        yield* JobQueue.setConcurrency("sms", 5)
        yield* JobQueue.setGroupConcurrency("sms", 3)
        yield* JobQueue.holdQueue("sms", "1 hour")
        const job = yield* JobQueue.enqueue(Sms, "ann", { queue: "sms" })
        yield* dashboard.addQueue("sms")
        const pool = yield* WorkPool.make({ concurrency: 1, name: "images", shutdownTimeout: 0 })
        yield* pool.submit(Effect.never)
        yield* dashboard.add(pool)
        const browser: Browser = yield* Effect.acquireRelease(Effect.promise(launch), (browser) => Effect.promise(browser.close))
        const page = yield* Effect.promise(() => browser.open(dashboard.url, { width: 1280, height: 800 }))
        const card = `[data-source="queue:sms"]`
        const buttons = yield* Effect.promise(() =>
          page.waitFor<string>(
            "the page shows the hold, the cap, the per-key cap, the queued job and the running one",
            `() => !!document.querySelector('${card} [data-count="held"]') && ${countIn("queue:sms", "concurrency")} === "0/5" && ${countIn("queue:sms", "groupConcurrency")} === "per key \u2264 3" && !!document.querySelector('${card} [data-list="queued"] tr[data-job="${job.id}"]') && !!document.querySelector('[data-source="pool:images"] [data-list="running"] tr[data-job]') && String(document.querySelectorAll("button[data-action]").length)`
          )
        )
        assert.strictEqual(buttons, "0")
      }).pipe(
        Effect.scoped,
        Effect.provide(Layer.merge(Dashboard.layer({ interval: "250 millis", readOnly: true }), JobStore.memory()))
      ),
    120_000
  )
})

describe("Dashboard in headless Chromium: release with a page open", () => {
  // BUG (fixed): with a tab showing the page, releasing the layer (a process's shutdown) never
  // ended: the closing server stopped answering, and waited for the browser's kept-alive connection
  it.live.skipIf(!existsSync(CHROMIUM) && process.env.CI !== "true")(
    "releasing the layer while a tab shows the page ends at once, and the page says it lost the server",
    () =>
      Effect.gen(function*() {
        const browser: Browser = yield* Effect.acquireRelease(Effect.promise(launch), (browser) => Effect.promise(browser.close))
        const scope = yield* Scope.make()
        const dashboard = Context.get(yield* Layer.buildWithScope(Dashboard.layer({ interval: "250 millis" }), scope), Dashboard.Dashboard)
        const page = yield* Effect.promise(() => browser.open(dashboard.url, { width: 800, height: 600 }))
        yield* Effect.promise(() => page.waitFor("the page is live", `() => document.getElementById("status").textContent === "live"`))
        // apart: a release is uninterruptible, so a timeout around it would wait for it as well
        const closing = yield* Effect.forkDetach(Scope.close(scope, Exit.void))
        const closed = yield* Fiber.await(closing).pipe(Effect.timeout("20 seconds"), Effect.option)
        assert.isTrue(Option.isSome(closed), "the layer was released within 20 s")
        yield* Effect.promise(() =>
          page.waitFor("the page says it lost the server", `() => document.getElementById("status").getAttribute("data-state") === "error"`)
        )
      }).pipe(Effect.scoped),
    120_000
  )
})

describe("Dashboard in headless Chromium: 2,000 queues", () => {
  const Noop = Task.make("Noop", { payload: Schema.Number, success: Schema.Number })
  const tenants = Array.from({ length: 2000 }, (_, i) => `tenant-${i}`)
  const rows = `[...document.querySelectorAll("#rows tr")].map((tr) => tr.firstChild.firstChild.textContent)`
  /** How long a wait in the page took, in ms. */
  const timed = <A>(wait: () => Promise<A>) =>
    Effect.promise(async () => {
      const started = performance.now()
      const value = await wait()
      return { value, ms: performance.now() - started }
    })

  // before: a card per queue with three charts and three lists: 2,000 cards, each interval's
  // message 1.5 MB, a first message after 4-6 s. Bounds are for 2 busy cores, not a quiet machine
  // (quiet: first rows 1 s, a filter or a sort 40 ms, a selection 0.7 s; busy: 2-3 s each)
  it.live.skipIf(!existsSync(CHROMIUM) && process.env.CI !== "true")(
    "an overview table answers a filter, a sort and a selection, the page holds a bounded number of rows and charts, and a selected queue shows its chart and jobs",
    () =>
      Effect.gen(function*() {
        const dashboard = yield* Dashboard.Dashboard
        // one job each, 40 in tenant-1234 and 20 in tenant-77: the top of the backlogs
        yield* JobQueue.enqueueAll(Noop, [...tenants, ...Array(39).fill("tenant-1234"), ...Array(19).fill("tenant-77")]
          .map((queue: string, n) => ({ payload: n, options: { queue } })))
        for (const queue of tenants) yield* dashboard.addQueue(queue)
        yield* JobQueue.setGroupConcurrency("tenant-1235", 2)
        const browser: Browser = yield* Effect.acquireRelease(Effect.promise(launch), (browser) => Effect.promise(browser.close))
        const page = yield* Effect.promise(() => browser.open(dashboard.url, { width: 1280, height: 1100 }))

        const first = yield* timed(() =>
          page.waitFor("the overview's first rows", `() => document.getElementById("status").textContent === "live" && document.querySelectorAll("#rows tr").length > 0`)
        )
        assert.isBelow(first.ms, 20_000, "the first paint")
        // the queues' counts are read a sweep at a time: the table's first row is the largest backlog once they are
        yield* Effect.promise(() =>
          page.waitFor("tenant-1234 heads the table, and has its card", `() => ${rows}[0] === "tenant-1234" && ${rows}[1] === "tenant-77" && !!document.querySelector('[data-source="queue:tenant-1234"] [data-chart="depth"]')`)
        )
        const dom = yield* Effect.promise(() =>
          page.evaluate<{ rows: number; cards: number; charts: number; elements: number; matched: string }>(`({
            rows: document.querySelectorAll("#rows tr").length,
            cards: document.querySelectorAll("section.card").length,
            charts: document.querySelectorAll("svg").length,
            elements: document.getElementsByTagName("*").length,
            matched: document.getElementById("matched").textContent
          })`)
        )
        assert.strictEqual(dom.rows, 50)
        assert.isAtMost(dom.cards, 5, "the top 5 by backlog")
        assert.isAtMost(dom.charts, 15)
        assert.isBelow(dom.elements, 3000, JSON.stringify(dom))
        assert.strictEqual(dom.matched, "1-50 of 2000")

        // a filter, then a sort by name: answered within a bound
        yield* Effect.promise(() => page.evaluate(`(() => { const f = document.getElementById("filter"); f.value = "tenant-123"; f.dispatchEvent(new Event("input")) })()`))
        const filtered = yield* timed(() =>
          page.waitFor<Array<string>>("the filter's 11 rows, tenant-1234 first", `() => { const r = ${rows}; return r.length === 11 && r[0] === "tenant-1234" && r }`)
        )
        assert.isBelow(filtered.ms, 10_000, "the filter")
        assert.sameMembers(filtered.value, ["tenant-123", ...Array.from({ length: 10 }, (_, i) => `tenant-123${i}`)])
        yield* Effect.promise(() =>
          page.waitFor("tenant-1235's row shows its per-key cap, and no other row one", `() => document.querySelector('#rows tr[data-row="queue:tenant-1235"] [data-group-cap]')?.textContent === " per key \u2264 2" && document.querySelectorAll("#rows [data-group-cap]").length === 1`)
        )
        yield* Effect.promise(() => page.evaluate(`(() => { const o = document.getElementById("order"); o.value = "name"; o.dispatchEvent(new Event("change")) })()`))
        const sorted = yield* timed(() =>
          page.waitFor("the rows by name", `() => { const r = ${rows}; return r.length === 11 && r[0] === "tenant-123" && r[1] === "tenant-1230" }`)
        )
        assert.isBelow(sorted.ms, 10_000, "the sort")

        // select tenant-1235: its card comes with its chart (two intervals' points) and its queued job
        const card = `[data-source="queue:tenant-1235"]`
        yield* Effect.promise(() => page.evaluate(`document.querySelector('#rows tr[data-row="queue:tenant-1235"] button[data-show]').click()`))
        const selected = yield* timed(() =>
          page.waitFor("tenant-1235's card with its chart and its job", `() => document.querySelector('${card} [data-chart="depth"] path')?.getAttribute("d").includes("L") && document.querySelectorAll('${card} [data-list="queued"] tr[data-job]').length === 1`)
        )
        assert.isBelow(selected.ms, 15_000, "the selection")
        assert.strictEqual(
          yield* Effect.promise(() => page.evaluate<string>(`document.querySelector("section.card").getAttribute("data-source")`)),
          "queue:tenant-1235",
          "a selected source's card comes first"
        )
        yield* Effect.promise(() =>
          page.waitFor("the row says it is shown", `() => document.querySelector('#rows tr[data-row="queue:tenant-1235"]').getAttribute("data-selected") === "true"`)
        )
        // the overview with a selected queue's card, a CI artifact
        const png = yield* Effect.promise(() => page.screenshot())
        mkdirSync(join(root, ".ci/out"), { recursive: true })
        writeFileSync(join(root, ".ci/out/dashboard-many.png"), png)
        // hidden again from its card
        yield* Effect.promise(() => page.evaluate(`document.querySelector('${card} h2 button[data-show]').click()`))
        yield* Effect.promise(() => page.waitFor("tenant-1235's card is gone", `() => !document.querySelector('${card}') && document.getElementById("status").textContent === "live"`))

        // paging over every queue
        yield* Effect.promise(() => page.evaluate(`(() => { const f = document.getElementById("filter"); f.value = ""; f.dispatchEvent(new Event("input")) })()`))
        yield* Effect.promise(() => page.waitFor("every queue again", `() => document.getElementById("matched").textContent === "1-50 of 2000"`))
        yield* Effect.promise(() => page.evaluate(`document.querySelector('button[data-page="1"]').click()`))
        yield* Effect.promise(() => page.waitFor("the second page", `() => document.getElementById("matched").textContent === "51-100 of 2000" && document.querySelectorAll("#rows tr").length === 50`))
        yield* Effect.log(`2,000 queues: first rows ${first.ms.toFixed(0)} ms, filter ${filtered.ms.toFixed(0)} ms, sort ${sorted.ms.toFixed(0)} ms, selection ${selected.ms.toFixed(0)} ms; ${JSON.stringify(dom)}`)
      }).pipe(
        Effect.scoped,
        Effect.provide(Layer.unwrap(Effect.acquireRelease(
          Effect.sync(() => mkdtempSync(join(tmpdir(), "wp-dashboard-many-"))),
          (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
        ).pipe(Effect.map((dir) => Layer.merge(Dashboard.layer({ interval: "250 millis" }), JobStore.sqlite({ filename: join(dir, "many.db") })))))),
        Effect.scoped
      ),
    180_000
  )
})

// the harness itself: `open` navigated without waiting for the load, so a `waitFor` that started
// while the tab was still about:blank (or the document loading) could be lost with that document
describe("the Chromium harness", () => {
  it.live.skipIf(!existsSync(CHROMIUM) && process.env.CI !== "true")(
    "open resolves once the page has loaded: not while a script it loads is held back",
    () =>
      Effect.gen(function*() {
        const { createServer } = yield* Effect.promise(() => import("node:http"))
        let release = () => {}
        const asked = yield* Deferred.make<void>()
        const server = createServer((request, response) => {
          if (request.url === "/slow.js") {
            Effect.runSync(Deferred.succeed(asked, undefined))
            release = () => response.end("window.slow = true")
          } else {
            response.setHeader("content-type", "text/html")
            response.end(`<!doctype html><title>t</title><script src="/slow.js"></script><p>loaded</p>`)
          }
        })
        yield* Effect.acquireRelease(
          Effect.promise(() => new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()))),
          () => Effect.promise(() => new Promise<void>((resolve) => server.close(() => resolve())))
        )
        const port = (server.address() as { port: number }).port
        const browser: Browser = yield* Effect.acquireRelease(Effect.promise(launch), (browser) => Effect.promise(browser.close))
        let opened = false
        const opening = browser.open(`http://127.0.0.1:${port}/`).then((page) => {
          opened = true
          return page
        })
        yield* Deferred.await(asked)
        // the navigation's reply (sent at its commit, before the script is asked for) has had its turn
        yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
        const early = opened
        release()
        const page = yield* Effect.promise(() => opening)
        assert.isFalse(early, "open resolved while the page was loading")
        assert.deepStrictEqual(yield* Effect.promise(() => page.evaluate(`[document.readyState, window.slow === true]`)), ["complete", true])
      }).pipe(Effect.scoped),
    60_000
  )
})
