/**
 * effect-workpool at a glance (this is what `npm start` runs).
 *
 * One pool takes a mixed workload for a few seconds:
 *   - five kinds of job, each with its own result and error type and its own priority;
 *   - some jobs fail, a few have bugs (defects), some reports run past the pool's timeout, and
 *     interactive API calls give up if they wait in the queue too long;
 *   - an autoscaler watches `pool.changes` and resizes the pool when the backlog grows or drains.
 *
 * In a terminal a single status line is redrawn in place; when the output is not a terminal (a
 * pipe, CI), plain status lines are printed once a second instead. A summary follows at the end.
 * While it runs, the live dashboard (effect-workpool/Dashboard) shows the pool at the URL printed
 * first: counts, charts, running jobs with their progress, failed ones with their errors.
 *
 * Run: npm start   (or: node examples/demo.ts; JOBS=100 for a shorter run; JOBS=5000 to have time
 *      to watch the dashboard; DASHBOARD_PORT=9400 for a fixed port; --no-dashboard to skip it)
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Config, Context, Effect, Exit, Fiber, Layer, Schedule, Schema, Stream } from "effect"
import * as Dashboard from "../src/Dashboard.ts"
import { WorkPool } from "../src/index.ts"

// --- the workload ----------------------------------------------------------------------------------

class ImageCorrupt extends Schema.TaggedError<ImageCorrupt>()("ImageCorrupt", { id: Schema.Number }) {}
class SmtpRejected extends Schema.TaggedError<SmtpRejected>()("SmtpRejected", { to: Schema.String }) {}
class UpstreamError extends Schema.TaggedError<UpstreamError>()("UpstreamError", { status: Schema.Number }) {}

// A seeded generator, so that every run has the same mix of jobs, durations and failures.
const random = (() => {
  let seed = 0x2f6b3a1
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
})()
const between = (min: number, max: number) => Math.round(min + random() * (max - min))

type Kind = "api" | "email" | "thumbnail" | "index" | "report"

interface Planned {
  readonly kind: Kind
  readonly priority: number
  readonly job: Effect.Effect<unknown, unknown>
  readonly options?: WorkPool.JobOptions
}

// Each kind of job keeps its own types; they only meet as `unknown` here, in the demo's bookkeeping.
const plan = (id: number): Planned => {
  const roll = random()
  if (roll < 0.25) {
    // Interactive API calls: short, urgent, and useless if they wait too long in the queue.
    const ms = between(10, 40)
    const fails = random() < 0.05
    return {
      kind: "api",
      priority: 10,
      options: { priority: 10, queueTimeout: "400 millis" },
      job: Effect.sleep(ms).pipe(Effect.andThen(fails ? Effect.fail(new UpstreamError({ status: 502 })) : Effect.succeed({ id, ms })))
    }
  }
  if (roll < 0.45) {
    const fails = random() < 0.08
    return {
      kind: "email",
      priority: 5,
      options: { priority: 5 },
      job: Effect.sleep(between(20, 80)).pipe(Effect.andThen(fails ? Effect.fail(new SmtpRejected({ to: `user${id}@example.com` })) : Effect.succeed(`sent ${id}`)))
    }
  }
  if (roll < 0.8) {
    const fails = random() < 0.06
    // in four steps, each reported as progress (the dashboard draws it as a bar)
    const step = between(10, 40)
    return {
      kind: "thumbnail",
      priority: 0,
      job: Effect.gen(function*() {
        const { progress } = yield* WorkPool.JobContext
        for (let done = 1; done <= 4; done++) {
          yield* Effect.sleep(step)
          yield* progress({ done, of: 4 })
        }
        return fails ? yield* new ImageCorrupt({ id }) : new Uint8Array(16)
      })
    }
  }
  if (roll < 0.9) {
    // The search indexer has a bug: now and then it throws. That is a defect, not a typed error,
    // and the pool keeps it apart (and keeps the worker alive).
    const buggy = random() < 0.1
    return {
      kind: "index",
      priority: 0,
      job: Effect.sleep(between(30, 90)).pipe(Effect.andThen(Effect.sync(() => {
        if (buggy) throw new Error(`index ${id}: unexpected token`)
        return id
      })))
    }
  }
  // Reports: low priority and slow; about one in six runs past the pool's one-second timeout.
  return {
    kind: "report",
    priority: -5,
    options: { priority: -5 },
    job: Effect.sleep(random() < 0.16 ? between(1100, 1600) : between(200, 700)).pipe(Effect.as({ report: id }))
  }
}

type Outcome = "succeeded" | "failed" | "defect" | "timed out" | "interrupted"

const classify = (exit: Exit.Exit<unknown, unknown>): Outcome => {
  if (Exit.isSuccess(exit)) return "succeeded"
  if (Exit.hasDies(exit)) return "defect"
  const error = Cause.findErrorOption(exit.cause)
  if (error._tag === "None") return "interrupted"
  return (error.value as { _tag?: string })._tag === "JobTimeout" ? "timed out" : "failed"
}

// --- the display ---------------------------------------------------------------------------------

const tty = process.stdout.isTTY === true
const started = Date.now()
const elapsed = () => ((Date.now() - started) / 1000).toFixed(1).padStart(4)

const finished = (s: WorkPool.PoolStats) => s.succeeded + s.failed + s.defects + s.timedOut + s.interrupted + s.dropped

const pad = (n: number, width: number) => String(n).padStart(width)
const statusLine = (s: WorkPool.PoolStats, rate: number) =>
  `${elapsed()}s  workers ${pad(s.workers, 2)}  queued ${pad(s.queued, 3)}  running ${pad(s.running, 2)}  ` +
  `done ${pad(finished(s), 4)}  failed ${pad(s.failed + s.defects, 3)}  timed out ${pad(s.timedOut, 2)}  ` +
  `${pad(Math.round(rate), 3)} jobs/s`

// In a terminal the status line is redrawn in place (\r, then "erase line"); an event line first
// erases it, prints itself, and the next tick draws the status again below it.
let lastStatus = ""
const event = (message: string) =>
  Effect.sync(() => {
    if (tty) process.stdout.write(`\r\x1b[2K${elapsed()}s   ${message}\n${lastStatus}`)
    else console.log(`${elapsed()}s   ${message}`)
  })

const showStatus = (line: string) =>
  Effect.sync(() => {
    // Cut to the terminal's width: a wrapped line could not be redrawn in place.
    lastStatus = tty ? line.slice(0, (process.stdout.columns || 80) - 1) : line
    if (tty) process.stdout.write(`\r\x1b[2K${lastStatus}`)
    else console.log(line)
  })

/** Ends the redrawn line, so that what follows (the summary, or a Ctrl-C) starts on a new line. */
const endStatusLine = Effect.sync(() => {
  if (tty && lastStatus !== "") process.stdout.write("\n")
  lastStatus = ""
})

/** Samples `stats` periodically; jobs/s is measured over the last sampling period. */
const reporter = (pool: WorkPool.WorkPool) => {
  let previousDone = 0
  let previousAt = Date.now()
  return Effect.gen(function*() {
    const s = yield* pool.stats
    const now = Date.now()
    const rate = ((finished(s) - previousDone) * 1000) / Math.max(1, now - previousAt)
    previousDone = finished(s)
    previousAt = now
    yield* showStatus(statusLine(s, rate))
  }).pipe(Effect.repeat(Schedule.spaced(tty ? "100 millis" : "1 second")))
}

/**
 * An autoscaler driven by `pool.changes`: it reacts to every (coalesced) change of the pool's state,
 * without polling. More workers when the backlog is deep, fewer when it is gone.
 */
const autoscaler = (pool: WorkPool.WorkPool, producing: () => boolean) =>
  pool.changes.pipe(
    Stream.runForEach((s) => {
      if (s.queued > 40 && s.concurrency < 12) {
        return Effect.andThen(event(`backlog of ${s.queued} jobs: resize ${s.concurrency} -> 12 workers`), pool.resize(12))
      }
      if (!producing() && s.queued === 0 && s.concurrency > 4) {
        return Effect.andThen(event(`backlog drained: resize ${s.concurrency} -> 4 workers`), pool.resize(4))
      }
      return Effect.void
    })
  )

// --- main ----------------------------------------------------------------------------------------

const program = Effect.gen(function*() {
  const total = yield* Config.Int("JOBS").pipe(Config.withDefault(600))
  const pool = yield* WorkPool.make({
    name: "demo",
    concurrency: 4,
    capacity: 200, // a producer faster than that waits for room (backpressure)
    timeout: "1 second", // no job may run longer
    aging: "250 millis", // low-priority reports still get their turn under load
    shutdownTimeout: "5 seconds",
    retention: { count: 1000, age: "10 minutes" } // ended jobs the dashboard can list (its failures)
  })

  // The dashboard: on loopback, behind a random token that its URL carries; it closes with the scope.
  if (!process.argv.includes("--no-dashboard")) {
    const port = yield* Config.Int("DASHBOARD_PORT").pipe(Config.withDefault(0))
    const dashboard = Context.get(yield* Layer.build(Dashboard.layer({ port })), Dashboard.Dashboard)
    yield* dashboard.add(pool)
    yield* event(`dashboard: ${dashboard.url} (open it while the demo runs)`)
  }
  yield* event(`pool up: 4 workers, capacity 200, timeout 1 s; submitting ${total} jobs (5 kinds, priorities -5..10)`)
  const reporting = yield* Effect.forkChild(reporter(pool))
  let producing = true
  const scaling = yield* Effect.forkChild(autoscaler(pool, () => producing))

  // The producer: ~120 jobs/s in bursts of 12, faster than 4 workers can go, so a backlog builds.
  // Each job notes when it started, so that the summary can show how long each kind waited.
  const awaited: Array<Effect.Effect<{ readonly kind: Kind; readonly outcome: Outcome; readonly waited?: number }>> = []
  for (let id = 1; id <= total; id++) {
    const planned = plan(id)
    const submittedAt = Date.now()
    let startedAt: number | undefined
    const job = Effect.suspend(() => {
      startedAt = Date.now()
      return planned.job
    })
    const handle = yield* pool.submit(job, planned.options)
    awaited.push(Effect.map(Effect.exit(handle.await), (exit) => ({
      kind: planned.kind,
      outcome: classify(exit),
      ...(startedAt === undefined ? {} : { waited: startedAt - submittedAt })
    })))
    if (id % 12 === 0) yield* Effect.sleep("100 millis")
  }
  producing = false
  yield* event(`all ${total} jobs submitted; draining`)

  const outcomes = yield* Effect.all(awaited, { concurrency: "unbounded" })
  yield* pool.awaitIdle
  const stats = yield* pool.stats
  yield* Fiber.interrupt(reporting)
  yield* Fiber.interrupt(scaling)
  yield* showStatus(statusLine(stats, (finished(stats) * 1000) / (Date.now() - started)))
  yield* endStatusLine

  // --- summary -------------------------------------------------------------------------------------
  const columns: ReadonlyArray<Outcome> = ["succeeded", "failed", "defect", "timed out", "interrupted"]
  const kinds: ReadonlyArray<Kind> = ["api", "email", "thumbnail", "index", "report"]
  const row = (label: string, cells: ReadonlyArray<string | number>) =>
    console.log(label.padEnd(10) + cells.map((c) => String(c).padStart(12)).join(""))
  const cells = (some: typeof outcomes) => {
    const waits = some.flatMap((o) => o.waited === undefined ? [] : [o.waited])
    const meanWait = waits.length === 0 ? 0 : waits.reduce((a, b) => a + b, 0) / waits.length
    return [some.length, ...columns.map((c) => some.filter((o) => o.outcome === c).length), `${meanWait.toFixed(0)} ms`]
  }
  console.log("\nsummary (priority: api 10, email 5, thumbnail and index 0, report -5)")
  row("kind", ["jobs", ...columns, "mean wait"])
  for (const kind of kinds) row(kind, cells(outcomes.filter((o) => o.kind === kind)))
  row("total", cells(outcomes))
  console.log(
    `\nutilization ${(stats.utilization * 100).toFixed(0)}% | mean wait ${stats.meanWaitMillis.toFixed(0)} ms | ` +
      `mean run ${stats.meanRunMillis.toFixed(0)} ms | ${((Date.now() - started) / 1000).toFixed(1)} s | ` +
      `pool accounting: ${stats.submitted} submitted = ${finished(stats)} finished`
  )
})

// Closing the scope shuts the pool down; afterwards no worker fiber or timer is left, so the process
// exits by itself.
NodeRuntime.runMain(Effect.scoped(program).pipe(Effect.ensuring(endStatusLine)))
