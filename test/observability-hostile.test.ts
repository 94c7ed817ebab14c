import { assert, describe, it } from "@effect/vitest"
import { existsSync } from "node:fs"
import { Cause, Clock, Context, Deferred, Effect, Exit, Fiber, Layer, Metric, Schedule, Schema, Scope } from "effect"
import { MaxOpsBeforeYield } from "effect/Scheduler"
import { TestClock } from "effect/testing"
import * as Dashboard from "../src/Dashboard.ts"
import { JobQueue, PoolError, Task, WorkPool } from "../src/index.ts"
import * as JobStore from "../src/JobStore.ts"
import { type Browser, CHROMIUM, launch } from "./browser/chromium.ts"
import { prng, recordingTracer, settle, waitFor } from "./helpers.ts"
import * as Metrics from "../src/internal/metrics.ts"
import * as ThreadPool from "../src/ThreadPool.ts"
import { Crash, Die, Echo, Fail, Flaky, Sleep, Spin } from "./fixtures/tasks.ts"
import { type Job, Scheduler as SchedulerClass, schedulerOf } from "../src/internal/scheduler.ts"

/** Runs `effect` with a registry of its own, so that pools of other tests do not show. */
const withRegistry = <A, E, R>(effect: (registry: Metric.MetricRegistry) => Effect.Effect<A, E, R>) => {
  const registry: Metric.MetricRegistry = new Map()
  return Effect.provideService(effect(registry), Metric.MetricRegistry, registry)
}

const seriesOf = (id: string) =>
  Effect.map(Metric.snapshot, (snapshots) =>
    snapshots.filter((s) => s.id === id).map((s) => ({ attributes: s.attributes, state: s.state as any })))

describe("metrics: the pool's own attributes", () => {
  it.effect("a `pool` or `ending` among the caller's metric attributes does not merge two pools' series, nor the endings'", () =>
    withRegistry(() =>
      Effect.gen(function*() {
        const a = yield* WorkPool.make({ concurrency: 1, name: "a" })
        const b = yield* WorkPool.make({ concurrency: 1, name: "b" })
        yield* a.run(Effect.void)
        yield* a.run(Effect.void)
        yield* Effect.ignore(b.run(Effect.fail("no")))
        const submitted = yield* seriesOf("workpool_jobs_submitted")
        // one series per pool, labelled with its name, with its own count (the caller's other labels kept)
        assert.deepStrictEqual(
          submitted.map((s) => [s.attributes?.pool, s.state.count]).sort(),
          [["a", 2], ["b", 1]]
        )
        for (const s of submitted) assert.strictEqual(s.attributes?.region, "eu")
        // six ending series per pool, each with its own ending
        const ended = yield* seriesOf("workpool_jobs_ended")
        assert.strictEqual(ended.length, 12)
        const of = (pool: string, ending: string) =>
          ended.filter((s) => s.attributes?.pool === pool && s.attributes?.ending === ending).map((s) => s.state.count)
        assert.deepStrictEqual([of("a", "succeeded"), of("a", "failed"), of("b", "failed"), of("b", "succeeded")], [[2], [0], [1], [0]])
      }).pipe(Effect.provideService(Metric.CurrentMetricAttributes, { pool: "db", ending: "x", region: "eu" }))
    ))
})

describe("spans", () => {
  it.effect("an attempt that timed out and is retried ends its span timedOut, as one that is not retried does", () =>
    Effect.gen(function*() {
      const { spans, tracer } = recordingTracer()
      const pool = yield* WorkPool.make({ concurrency: 1 })
      let attempts = 0
      const job = Effect.suspend(() => ++attempts < 3 ? Effect.never : Effect.succeed(attempts))
      const fiber = yield* Effect.forkChild(
        Effect.withTracer(pool.run(job, { timeout: "1 second", retry: { times: 1 } }), tracer)
      )
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* settle
      yield* Effect.flip(Fiber.join(fiber))
      assert.deepStrictEqual(
        spans.map((s) => [s.attributes.get("workpool.job.attempt"), s.attributes.get("workpool.job.ending")]),
        [[1, "timedOut"], [2, "timedOut"]]
      )
      assert.deepStrictEqual(spans.map((s) => s.status._tag), ["Ended", "Ended"])
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.timedOut, stats.retried, stats.interrupted], [1, 1, 0])
    }))
})

describe("accounting: a retry's return meets another deadline due at the same instant", () => {
  // At t = 100 the timer expires two deadlines: b's hold (its retry goes back to the queue) and a's
  // queue timeout. Putting b back sets its queue deadline, which re-armed the timer for a's deadline,
  // due already: under TestClock that sleep(0) ends at once, so a expired inside b's return, while b
  // was neither held nor queued. a's JobTimeout fails the batch, which cancels b (ended interrupted),
  // and then b was queued all the same: it ran a second time after it had ended, and its second
  // ending called its Exit as a listener (TypeError thrown out of the scheduler).
  it.effect("a batch cancelled by a queue timeout at the instant its retried job returns: that job ends once and never runs again", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      let runsOfB = 0
      const b = Effect.suspend(() => ++runsOfB === 1 ? Effect.fail("once") : Effect.succeed("b"))
      const x = Effect.as(Effect.sleep("1 second"), "x")
      const a = Effect.succeed("a")
      // b fails at once and waits 100 ms for its retry; x takes the worker; a waits, 100 ms at most
      const batch = yield* Effect.forkChild(Effect.exit(pool.runAll([b, x, a], {
        retry: { schedule: Schedule.spaced("100 millis"), times: 1 },
        queueTimeout: "100 millis"
      })))
      yield* settle
      assert.deepStrictEqual([(yield* pool.stats).retrying, (yield* pool.stats).queued], [1, 1])
      yield* TestClock.adjust("100 millis")
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* settle
      const exit = yield* Fiber.join(batch)
      assert.isTrue(Exit.isFailure(exit))
      const error = Cause.findErrorOption((exit as Exit.Failure<unknown, unknown>).cause)
      assert.instanceOf(error._tag === "Some" ? error.value : undefined, PoolError.JobTimeout)
      assert.strictEqual(runsOfB, 1)
      const stats = yield* pool.stats
      assert.deepStrictEqual(
        [stats.submitted, stats.timedOut, stats.interrupted, stats.succeeded, stats.queued, stats.running, stats.retrying],
        [3, 1, 2, 0, 0, 0, 0]
      )
    }))
})

/**
 * Random load on a small pool (queue timeouts, per-job timeouts, retries with backoff, slow
 * finalizers, cancellations of callers and handles, pause, resume, resize, a rate limit on odd
 * seeds), then a shutdown or a shutdownNow. After every step the counts add up, and every Effect
 * metric agrees with `stats` (`workpool_jobs_submitted` counts admitted jobs: `submitted - waiting`;
 * `workpool_jobs_running` counts stopping ones too): counters, gauges, and the histograms' counts and sums with `started`,
 * `meanWaitMillis` and the attempts that stopped. At the end every gauge is back to 0.
 */
const chaos = (overflow: "suspend" | "fail" | "dropNewest" | "dropOldest", seed: number) =>
  withRegistry(() =>
    Effect.gen(function*() {
      const random = prng(seed)
      const pool = yield* WorkPool.make({
        concurrency: 3,
        capacity: 5,
        overflow,
        name: "chaos",
        queueTimeout: "45 millis",
        shutdownTimeout: "100 millis",
        ...(seed % 2 === 1 ? { rateLimit: { limit: 5, interval: "20 millis" } } : {})
      })
      const fibers: Array<Fiber.Fiber<unknown, unknown>> = []
      const handles: Array<WorkPool.JobHandle<unknown, unknown>> = []
      const metric = (snapshots: ReadonlyArray<Metric.Metric.Snapshot>, id: string, ending?: string) => {
        const found = snapshots.filter((s) => s.id === id && s.attributes?.pool === "chaos" && (ending === undefined || s.attributes?.ending === ending))
        assert.strictEqual(found.length, 1, id)
        return found[0]!.state as any
      }
      const counters = new Map<string, number>()
      const agree = Effect.gen(function*() {
        const s = yield* pool.stats
        assert.strictEqual(
          s.submitted,
          s.waiting + s.queued + s.retrying + s.running + s.succeeded + s.failed + s.defects + s.timedOut + s.interrupted + s.dropped
        )
        const m = yield* Metric.snapshot
        assert.deepStrictEqual(
          [
            metric(m, "workpool_jobs_submitted").count,
            metric(m, "workpool_jobs_rejected").count,
            metric(m, "workpool_jobs_retried").count,
            metric(m, "workpool_jobs_ended", "succeeded").count,
            metric(m, "workpool_jobs_ended", "failed").count,
            metric(m, "workpool_jobs_ended", "defect").count,
            metric(m, "workpool_jobs_ended", "timedOut").count,
            metric(m, "workpool_jobs_ended", "interrupted").count,
            metric(m, "workpool_jobs_ended", "dropped").count,
            metric(m, "workpool_jobs_queued").value,
            metric(m, "workpool_jobs_waiting").value,
            metric(m, "workpool_jobs_running").value,
            metric(m, "workpool_jobs_retrying").value,
            metric(m, "workpool_jobs_rate_limited").value,
            metric(m, "workpool_workers").value,
            metric(m, "workpool_utilization").value
          ],
          [
            s.submitted - s.waiting, s.rejected, s.retried, s.succeeded, s.failed, s.defects, s.timedOut, s.interrupted, s.dropped,
            s.queued, s.waiting, s.running + s.stopping, s.retrying, s.rateLimited, s.workers, s.utilization
          ]
        )
        // every counter only goes up
        for (const snapshot of m) {
          if (snapshot.type !== "Counter" || snapshot.attributes?.pool !== "chaos") continue
          const key = `${snapshot.id} ${snapshot.attributes?.ending ?? ""}`
          const count = (snapshot.state as any).count as number
          assert.isAtLeast(count, counters.get(key) ?? 0, key)
          counters.set(key, count)
        }
        const started = metric(m, "workpool_jobs_started").count
        const wait: Metric.HistogramState = metric(m, "workpool_job_wait_ms")
        const run: Metric.HistogramState = metric(m, "workpool_job_run_ms")
        assert.strictEqual(wait.count, started)
        assert.strictEqual(run.count, started - s.running - s.stopping)
        assert.closeTo(wait.sum, s.meanWaitMillis * started, 1e-6)
        assert.closeTo(run.sum, s.meanRunMillis * run.count, 1e-6)
        assert.isTrue(s.utilization >= 0 && s.utilization <= 1, `utilization ${s.utilization}`)
        assert.strictEqual(s.queuedByPriority.reduce((sum, { count }) => sum + count, 0), s.queued)
        return s
      })
      for (let step = 0; step < 300; step++) {
        for (let k = Math.floor(random() * 4); k > 0; k--) {
          const r = random()
          const millis = Math.floor(random() * 30)
          let attempts = 0
          const job = r < 0.3
            ? Effect.sleep(`${millis} millis`)
            : r < 0.5
            ? Effect.andThen(Effect.sleep(`${millis} millis`), Effect.fail("no"))
            : r < 0.6
            ? Effect.die("bug")
            : r < 0.7
            ? Effect.onInterrupt(Effect.never, () => Effect.sleep("15 millis"))
            : r < 0.8
            ? Effect.void
            : Effect.suspend(() => ++attempts % 2 === 1 ? Effect.andThen(Effect.sleep(`${millis} millis`), Effect.fail("again")) : Effect.void)
          const options: WorkPool.JobOptions = {
            priority: Math.floor(random() * 3),
            ...(random() < 0.3 ? { timeout: "20 millis" } : {}),
            ...(random() < 0.3 ? { retry: { schedule: Schedule.spaced(`${millis} millis`), times: 2 } } : {})
          }
          if (random() < 0.5) fibers.push(yield* Effect.forkChild(Effect.exit(pool.run(job, options))))
          else {
            fibers.push(yield* Effect.forkChild(Effect.exit(Effect.tap(pool.submit(job, options), (handle) => Effect.sync(() => handles.push(handle))))))
          }
        }
        yield* Effect.yieldNow
        // forked: a cancellation waits for the job's finalizers, which wait for the clock
        if (random() < 0.2 && fibers.length > 0) yield* Effect.forkChild(Fiber.interrupt(fibers[Math.floor(random() * fibers.length)]!))
        if (random() < 0.2 && handles.length > 0) yield* Effect.forkChild(handles[Math.floor(random() * handles.length)]!.interrupt)
        if (random() < 0.05) yield* pool.pause
        if (random() < 0.1) yield* pool.resume
        if (random() < 0.05) yield* pool.resize(1 + Math.floor(random() * 4))
        yield* TestClock.adjust(`${1 + Math.floor(random() * 8)} millis`)
        yield* agree
      }
      yield* pool.resume
      const closing = yield* Effect.forkChild(random() < 0.5 ? pool.shutdown : Effect.asVoid(pool.shutdownNow))
      for (let i = 0; i < 40; i++) yield* TestClock.adjust("10 millis")
      yield* Fiber.join(closing)
      for (const fiber of fibers) assert.isDefined(fiber.pollUnsafe(), "no caller hangs")
      const s = yield* agree
      if (process.env.DEBUG_CHAOS) console.log(overflow, seed, JSON.stringify(s))
      assert.deepStrictEqual([s.state, s.running, s.stopping, s.queued, s.waiting, s.retrying, s.rateLimited, s.workers], ["stopped", 0, 0, 0, 0, 0, 0, 0])
    })
  )

describe("the counts and the metrics agree under load", () => {
  for (const overflow of ["suspend", "fail", "dropNewest", "dropOldest"] as const) {
    for (const seed of [1, 2]) {
      it.effect(`overflow ${overflow}, seed ${seed}`, () => chaos(overflow, seed), 60_000)
    }
  }
})

describe("the dashboard's latency is the pool's own", () => {
  // The sampler looked the histograms up in its own registry by the `pool` label alone: another
  // pool of the same name (other metric attributes, allowed) answered for the one on the page.
  it.effect("another live pool of the same name under other metric attributes does not lend it its histograms", () =>
    Effect.gen(function*() {
      const dashboard = yield* Effect.map(
        Layer.build(Dashboard.layer({ token: "0123456789abcdef-test-token" })),
        (context) => Context.get(context, Dashboard.Dashboard)
      )
      const tick = Effect.andThen(TestClock.adjust("1 second"), settle)
      const inRegion = (region: string) =>
        Effect.provideService(WorkPool.make({ concurrency: 1, name: "latency" }), Metric.CurrentMetricAttributes, { region })
      const eu = yield* inRegion("eu")
      const us = yield* inRegion("us")
      yield* dashboard.add(us)
      yield* tick
      // eu's job runs 300 ms, us's 0 ms
      const slow = yield* eu.submit(Effect.sleep("300 millis"))
      yield* us.run(Effect.void)
      yield* TestClock.adjust("300 millis")
      yield* slow.await
      yield* tick
      const response = yield* Effect.promise(() =>
        fetch(dashboard.address + "api/snapshot", { headers: { authorization: "Bearer 0123456789abcdef-test-token" } })
          .then((r) => r.json())
      )
      const source = (response as any).sources.find((s: any) => s.name === "latency")
      // us's one attempt took 0 ms: in the first bucket (up to 1 ms), interpolated
      assert.deepInclude(source.points.at(-1), { runP50: 0.5, waitP50: 0.5 })
    }))
})

describe("a make that fails keeps nothing", () => {
  // The pool's metric series and its shutdown went into the caller's scope before its workers'
  // resources were acquired: a make that failed there left a pool that never was publishing 19
  // series, holding its name (a make retried in the same scope failed with InvalidPoolConfig
  // instead of trying again), and holding the resources its other workers had acquired, all until
  // the caller's scope closed.
  it.effect("a resource that cannot be acquired: its series go, its name is free, the other workers' resources are released", () =>
    withRegistry((registry) =>
      Effect.gen(function*() {
        let attempts = 0
        let held = 0
        const make = WorkPool.make({
          concurrency: 3,
          name: "db",
          resource: (id) =>
            Effect.acquireRelease(
              Effect.suspend(() => attempts === 0 && id === 2 ? Effect.fail("down" as const) : Effect.sync(() => ++held)),
              () => Effect.sync(() => --held)
            )
        })
        const failed = yield* Effect.flip(make)
        attempts++
        assert.strictEqual(failed, "down")
        assert.strictEqual(registry.size, 0, "no series of a pool that was never made")
        assert.strictEqual(held, 0, "the resources acquired for it are released")
        // tried again in the same scope: made
        const pool = yield* make
        assert.strictEqual(yield* pool.run(Effect.succeed(1)), 1)
        assert.strictEqual(held, 3)
        assert.strictEqual(
          (yield* seriesOf("workpool_workers")).map((s) => [s.attributes?.pool, s.state.value]).join(),
          "db,3"
        )
      }).pipe(Effect.scoped)
    ))
})

describe("counters only go up", () => {
  // `workpool_jobs_submitted` read `stats.submitted`, which counts the submitters waiting for room
  // and drops them when a shutdown refuses them: the counter went down (7 to 2 here), which
  // Prometheus reads as a reset (a `rate` spike of everything counted so far).
  for (const shutdown of ["shutdown", "shutdownNow"] as const) {
    it.effect(`submitters waiting for room, refused by a ${shutdown}: workpool_jobs_submitted does not go down`, () =>
      withRegistry(() =>
        Effect.gen(function*() {
          const pool = yield* WorkPool.make({ concurrency: 1, capacity: 1, overflow: "suspend", name: "waiting", shutdownTimeout: "1 second" })
          const submitted = Effect.map(seriesOf("workpool_jobs_submitted"), (s) => s[0]!.state.count as number)
          // one runs, one is queued, five wait for room
          yield* pool.submit(Effect.never)
          yield* pool.submit(Effect.never)
          const waiters = yield* Effect.forEach([1, 2, 3, 4, 5], () => Effect.forkChild(Effect.exit(pool.submit(Effect.void))))
          yield* settle
          assert.strictEqual((yield* pool.stats).waiting, 5)
          const before = yield* submitted
          const closing = yield* Effect.forkChild(shutdown === "shutdown" ? pool.shutdown : Effect.asVoid(pool.shutdownNow))
          yield* settle
          const refused = yield* pool.stats
          // stopped before any check below can fail: a failing test must not leave the pool draining on the TestClock
          if (shutdown === "shutdown") yield* Effect.asVoid(pool.shutdownNow)
          yield* Fiber.join(closing)
          assert.strictEqual(refused.rejected, 5)
          for (const waiter of waiters) assert.isTrue(Exit.isFailure(yield* Fiber.join(waiter)))
          assert.isAtLeast(yield* submitted, before, "a counter never goes down")
          // admitted: the two that ran or were queued; the five refused never were
          assert.strictEqual(yield* submitted, 2)
        })
      ))
  }
})

describe("a make interrupted keeps nothing", () => {
  it.effect("a make cut short by a timeout while a worker's resource is acquired: its series go and its name is free at once", () =>
    withRegistry((registry) =>
      Effect.gen(function*() {
        let slow = true
        const make = WorkPool.make({
          concurrency: 2,
          name: "slow",
          resource: () => Effect.suspend(() => slow ? Effect.never : Effect.void)
        })
        const timedOut = yield* Effect.forkChild(Effect.exit(Effect.timeout(make, "1 second")))
        yield* settle
        yield* TestClock.adjust("1 second")
        assert.isTrue(Exit.isFailure(yield* Fiber.join(timedOut)))
        assert.strictEqual(registry.size, 0, "no series of a pool that was never made")
        slow = false
        const pool = yield* make
        assert.strictEqual((yield* pool.stats).workers, 2)
      }).pipe(Effect.scoped)
    ))
})

describe("the counts add up where a worker's resource is released", () => {
  // A worker retired by a shrink when its job stopped released its resource (running its
  // finalizers then and there) before the job was counted as ended: a release that read the
  // pool's stats saw 2 submitted, 1 running and none ended.
  it.effect("a shrink retires a busy worker when its job stops: the release reads stats that add up", () =>
    Effect.gen(function*() {
      let pool: WorkPool.WorkPool<number> | undefined
      const seen: Array<WorkPool.PoolStats> = []
      pool = yield* WorkPool.make({
        concurrency: 2,
        resource: (id) =>
          Effect.acquireRelease(Effect.succeed(id), () => pool === undefined ? Effect.void : Effect.map(pool.stats, (s) => void seen.push(s)))
      })
      const first = yield* pool.submit(Effect.sleep("10 millis"))
      const second = yield* pool.submit(Effect.sleep("20 millis"))
      // both workers busy: the first to stop retires
      yield* pool.resize(1)
      yield* settle
      yield* TestClock.adjust("10 millis")
      yield* first.await
      yield* TestClock.adjust("10 millis")
      yield* second.await
      assert.strictEqual(seen.length, 1)
      const s = seen[0]!
      assert.deepStrictEqual([s.submitted, s.running, s.succeeded, s.workers], [2, 1, 1, 1])
    }))
})

describe("wait and run times under TestClock, exact", () => {
  it.effect("a retry's wait counts from its return to the queue; a waiting submitter's from its submission; spans, stats and histograms agree", () =>
    withRegistry(() =>
      Effect.gen(function*() {
        const { spans, tracer } = recordingTracer()
        const pool = yield* WorkPool.make({ concurrency: 1, capacity: 1, overflow: "suspend", name: "times" })
        let attempts = 0
        // t=0..30: runs and fails; held 50 ms; back at t=80 behind the blocker (t=30..130); runs t=130..140
        const flaky = Effect.suspend(() => ++attempts === 1 ? Effect.andThen(Effect.sleep("30 millis"), Effect.fail("once")) : Effect.sleep("10 millis"))
        const first = yield* Effect.forkChild(Effect.withTracer(pool.run(flaky, { retry: { schedule: Schedule.spaced("50 millis"), times: 1 } }), tracer))
        yield* settle
        // queued at t=0 (the queue has room for one): waits for the worker until t=30
        const blocker = yield* pool.submit(Effect.sleep("100 millis"))
        // no room: waits for it from t=0, queued at t=30; below the retry's priority, starts at t=140
        const late = yield* Effect.forkChild(Effect.withTracer(pool.run(Effect.sleep("5 millis"), { priority: -1 }), tracer))
        yield* settle
        for (let t = 0; t < 150; t += 5) {
          yield* TestClock.adjust("5 millis")
          yield* settle
        }
        yield* Fiber.join(first)
        yield* blocker.await
        yield* Fiber.join(late)
        const attrs = spans.map((s) => [s.attributes.get("workpool.job.id"), s.attributes.get("workpool.job.attempt"), s.attributes.get("workpool.job.wait_ms"), s.attributes.get("workpool.job.ending")])
        assert.deepStrictEqual(attrs, [[1, 1, 0, "failed"], [1, 2, 50, "succeeded"], [3, 1, 140, "succeeded"]])
        const stats = yield* pool.stats
        // attempts: 1 (wait 0, run 30), blocker (wait 30, run 100), 1 again (wait 50, run 10), 3 (wait 140, run 5)
        assert.deepStrictEqual([stats.meanWaitMillis, stats.meanRunMillis], [(0 + 30 + 50 + 140) / 4, (30 + 100 + 10 + 5) / 4])
        const wait = (yield* seriesOf("workpool_job_wait_ms"))[0]!.state as Metric.HistogramState
        const run = (yield* seriesOf("workpool_job_run_ms"))[0]!.state as Metric.HistogramState
        assert.deepStrictEqual([wait.count, wait.min, wait.max, wait.sum], [4, 0, 140, 220])
        assert.deepStrictEqual([run.count, run.min, run.max, run.sum], [4, 5, 100, 145])
      })
    ))
})

describe("the dashboard's counts are the pool's", () => {
  // The pool card showed queued, running, retrying and six endings but not `waiting` (submitters
  // held back by a full queue: the depth chart counts them, the count beside it did not), nor
  // `dropped` (an overflow policy's endings showed nowhere on the page), nor `stopping` or `rejected`.
  it.live.skipIf(!existsSync(CHROMIUM) && process.env.CI !== "true")(
    "a pool's submitters waiting for room and its dropped jobs are shown",
    () =>
      Effect.gen(function*() {
        const dashboard = yield* Dashboard.Dashboard
        const drops = yield* WorkPool.make({ concurrency: 1, capacity: 1, overflow: "dropNewest", name: "drops", shutdownTimeout: "10 millis" })
        const waits = yield* WorkPool.make({ concurrency: 1, capacity: 1, overflow: "suspend", name: "waits", shutdownTimeout: "10 millis" })
        yield* dashboard.add(drops)
        yield* dashboard.add(waits)
        for (let i = 0; i < 4; i++) yield* drops.submit(Effect.never)
        yield* waits.submit(Effect.never)
        yield* waits.submit(Effect.never)
        yield* Effect.forkScoped(waits.submit(Effect.never))
        yield* waitFor(waits.stats, "a submitter waits for room", { until: (s) => s.waiting === 1 })
        assert.strictEqual((yield* drops.stats).dropped, 2)
        const browser: Browser = yield* Effect.acquireRelease(Effect.promise(launch), (browser) => Effect.promise(browser.close))
        const page = yield* Effect.promise(() => browser.open(dashboard.url))
        const count = (source: string, name: string) =>
          `document.querySelector('[data-source="pool:${source}"] [data-count="${name}"] b')?.textContent`
        yield* Effect.promise(() => page.waitFor("the pools' cards", `() => ${count("drops", "queued")} === "1" && ${count("waits", "queued")} === "1"`))
        assert.deepStrictEqual(
          yield* Effect.promise(() => page.evaluate<Array<string | null>>(`[${count("drops", "dropped")} ?? null, ${count("waits", "waiting")} ?? null]`)),
          ["2", "1"]
        )
      }).pipe(Effect.scoped, Effect.provide(Dashboard.layer({ interval: "250 millis" }))),
    120_000
  )
})

describe("a durable consumer's gauges are its stats", () => {
  // The consumer counts the free slots a rate limit keeps idle in its `stats.rateLimited`, but its
  // pool's gauge `workpool_jobs_rate_limited` read the pool's own limit (none): 0 beside 8.
  it.effect("a consumer held back by its own rate limit: workpool_jobs_rate_limited shows what stats.rateLimited does", () =>
    withRegistry(() =>
      Effect.gen(function*() {
        const Slow = Task.make("SlowForGauge", { payload: Schema.Number, success: Schema.Number })
        const consumer = yield* JobQueue.consume({
          concurrency: 10,
          lease: 3000,
          poll: "1 second",
          rateLimit: { limit: 2, interval: "1 second" },
          handlers: [Task.handle(Slow, (n) => Effect.as(Effect.sleep("5 seconds"), n))]
        })
        for (let n = 0; n < 5; n++) yield* JobQueue.enqueue(Slow, n)
        for (let i = 0; i < 5; i++) {
          yield* settle
          yield* TestClock.adjust(20)
        }
        yield* settle
        const stats = yield* consumer.stats
        const gauges = yield* seriesOf("workpool_jobs_rate_limited")
        // stopped before any check can fail: a failing test must not leave it draining on the TestClock
        yield* consumer.shutdownNow
        assert.deepStrictEqual([stats.running, stats.rateLimited], [2, 8])
        assert.strictEqual(gauges.length, 1)
        assert.strictEqual(gauges[0]!.state.value, stats.rateLimited)
      }).pipe(Effect.scoped, Effect.provide(JobStore.memory()))
    ))
})

describe("hostile40: a resize told of a job's end while its worker retires", () => {
  // A worker retired by a shrink as its job stops is now retired after the job is settled; an
  // awaiter resumed there (synchronously, by the settle) that resizes back up read the retiring
  // worker among `workers`, grew by none, and the retirement then left the pool one short.
  it.effect("an awaiter that grows the pool back as its job ends gets the size it asked for", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2 })
      // `run` resumes its caller as the job is settled, synchronously
      const grower = yield* Effect.forkChild(Effect.andThen(pool.run(Effect.sleep("10 millis")), pool.resize(2)))
      yield* settle
      const second = yield* pool.submit(Effect.sleep("20 millis"))
      // both workers busy: the first to stop retires
      yield* pool.resize(1)
      yield* settle
      yield* TestClock.adjust("10 millis")
      yield* Fiber.join(grower)
      yield* TestClock.adjust("10 millis")
      yield* second.await
      const stats = yield* pool.stats
      assert.strictEqual(stats.workers, 2)
      // two jobs run at once again
      const a = yield* pool.submit(Effect.sleep("10 millis"))
      const b = yield* pool.submit(Effect.sleep("10 millis"))
      yield* settle
      assert.strictEqual((yield* pool.stats).running, 2)
      yield* TestClock.adjust("10 millis")
      yield* a.await
      yield* b.await
    }))
})

describe("hostile40: a job stopped while another's worker retires", () => {
  // The same window: a caller of run, resumed as its job is settled (its worker retiring after a
  // shrink), that interrupts the other running job stops it at once; that job's worker read the
  // retiring one among `workers`, retired too, and the pool was left with none at all.
  it.effect("a shrink to 1 keeps 1 worker when the run caller interrupts the other job as it resumes", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2 })
      let second: WorkPool.JobHandle<void, never> | undefined
      const stopper = yield* Effect.forkChild(
        Effect.andThen(pool.run(Effect.sleep("10 millis")), Effect.suspend(() => second!.interrupt))
      )
      yield* settle
      second = yield* pool.submit(Effect.sleep("20 millis"))
      // both workers busy: the first to stop retires
      yield* pool.resize(1)
      yield* settle
      yield* TestClock.adjust("10 millis")
      yield* Fiber.join(stopper)
      assert.strictEqual((yield* pool.stats).workers, 1)
      const after = yield* pool.submit(Effect.succeed(1))
      yield* settle
      assert.strictEqual(yield* after.await, 1)
    }))
})

describe("hostile40: the pool's own scope among the caller's finalizers", () => {
  it.effect("closing the caller's scope: what was acquired after make goes first, then the pool (its job done, its workers' resources), then what was acquired before", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const scope = yield* Scope.make()
      yield* Scope.provide(
        Effect.gen(function*() {
          yield* Effect.acquireRelease(Effect.void, () => Effect.sync(() => log.push("before released")))
          const pool = yield* WorkPool.make({
            concurrency: 2,
            resource: (id) => Effect.acquireRelease(Effect.succeed(id), () => Effect.sync(() => log.push(`worker ${id} released`)))
          })
          yield* Effect.acquireRelease(Effect.void, () => Effect.sync(() => log.push("after released")))
          yield* pool.submit(Effect.ensuring(Effect.sleep("10 millis"), Effect.sync(() => log.push("job done"))))
        }),
        scope
      )
      yield* settle
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      yield* settle
      assert.deepStrictEqual(log, ["after released"], "the pool waits for its job")
      yield* TestClock.adjust("10 millis")
      yield* Fiber.join(closing)
      assert.deepStrictEqual(log.slice(0, 2), ["after released", "job done"])
      assert.deepStrictEqual(log.slice(2, 4).sort(), ["worker 0 released", "worker 1 released"])
      assert.deepStrictEqual(log.slice(4), ["before released"])
    }))

  it.effect("a make whose timeout ends just before, or as, its last worker's resource is acquired: every resource is released once, at the make's end if it failed", () =>
    Effect.gen(function*() {
      for (const [limit, made] of [["9 millis", false], ["10 millis", true], ["11 millis", true]] as const) {
        let acquired = 0
        let released = 0
        const make = WorkPool.make({
          concurrency: 3,
          resource: (id) =>
            Effect.acquireRelease(
              Effect.as(Effect.sleep(`${id * 5} millis`), id).pipe(Effect.tap(() => Effect.sync(() => acquired++))),
              () => Effect.sync(() => released++)
            )
        })
        const scope = yield* Scope.make()
        const fiber = yield* Effect.forkChild(Effect.exit(Effect.timeout(Scope.provide(make, scope), limit)))
        yield* settle
        yield* TestClock.adjust(limit)
        if (!made) {
          // an acquireRelease's acquisition is uninterruptible: the make waits for it, then releases all three
          assert.deepStrictEqual([acquired, released, fiber.pollUnsafe()], [2, 0, undefined], limit)
          yield* TestClock.adjust("1 millis")
        }
        const exit = yield* Fiber.join(fiber)
        assert.strictEqual(Exit.isSuccess(exit), made, limit)
        assert.deepStrictEqual([acquired, released], made ? [3, 0] : [3, 3], limit)
        yield* Scope.close(scope, Exit.void)
        assert.deepStrictEqual([acquired, released], [3, 3], limit)
      }
    }))
})

describe("hostile40: a make interrupted as it returns", () => {
  // make closes its pool's scope when `start` fails or is interrupted, but the steps after it (the
  // mask's end, makePool, the return) are interruptible too: a fiber that yields there (its budget
  // of operations spent) and is interrupted meanwhile fails with the interruption, its pool made and
  // kept (the workers' resources held, its 19 series and its name taken) until the caller's scope
  // closes, though make said an interrupted make keeps nothing (here: ops 3 at 54 and 55 turns, ops
  // 7 at 10). Not fixable inside make: the interruption is delivered as an uninterruptible region
  // ends (the mask's, or an outermost onExit's tried instead: ops 3 at 53 to 55, ops 7 at 9), after
  // the last code of make that could close the scope. make's doc now says so; it.fails keeps it seen
  it.effect.fails("interrupted after any number of scheduler turns: a make that fails keeps no resource and no series", () =>
    Effect.gen(function*() {
      const leaks: Array<string> = []
      for (const ops of [3, 7]) {
        for (let turns = 0; turns < 120; turns++) {
          const registry: Metric.MetricRegistry = new Map()
          let acquired = 0
          let released = 0
          const scope = yield* Scope.make()
          const make = WorkPool.make({
            concurrency: 2,
            name: "p",
            resource: (id) => Effect.acquireRelease(Effect.sync(() => (acquired++, id)), () => Effect.sync(() => released++))
          })
          // the fiber runs make alone (the services are its parent's): nothing of its own after make returns
          const fiber = yield* Effect.forkChild(make).pipe(
            Scope.provide(scope),
            Effect.provideService(Metric.MetricRegistry, registry),
            Effect.provideService(MaxOpsBeforeYield, ops)
          )
          const interrupter = yield* Effect.forkChild(Effect.gen(function*() {
            for (let i = 0; i < turns; i++) yield* Effect.yieldNow
            yield* Fiber.interrupt(fiber)
          }))
          const exit = yield* Fiber.await(fiber)
          yield* Fiber.join(interrupter)
          if (Exit.isFailure(exit) && (registry.size > 0 || acquired !== released)) {
            leaks.push(`ops ${ops}, ${turns} turns: ${acquired} acquired, ${released} released, ${registry.size} series`)
          }
          yield* Scope.close(scope, Exit.void)
        }
      }
      assert.deepStrictEqual(leaks, [])
    }))
})

describe("hostile40: deadlines set while the deadlines expire", () => {
  // A deadline set during the expiry loop arms no timer (the loop arms one when done, for the
  // earliest). Set there by callers resumed inside the loop (run's caller, told of its job's
  // timeout), earlier than any other and at the same instants: each ends exactly when due.
  it.effect("queue timeouts set by run callers resumed inside the expiry end at their exact instants", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2 })
      const ends: Array<string> = []
      const now = Effect.map(Clock.currentTimeMillis, Number)
      const outcome = (exit: Exit.Exit<unknown, unknown>) =>
        Exit.isSuccess(exit) ? "ok" : Cause.squash(exit.cause) instanceof PoolError.JobTimeout ? "timeout" : "other"
      const track = (name: string, effect: Effect.Effect<unknown, unknown>) =>
        Effect.flatMap(Effect.exit(effect), (exit) => Effect.map(now, (t) => void ends.push(`${name} ${outcome(exit)} @${t}`)))
      // two runs time out at 10; each caller, resumed inside that expiry, pauses the pool (what it
      // submits stays queued) and submits jobs whose queue deadlines (15, 12, 11, 11) come after
      // none armed (far's, 100, is ended before)
      const fibers: Array<Fiber.Fiber<unknown, unknown>> = []
      for (const [name, first] of [["a", 5], ["b", 2]] as const) {
        fibers.push(yield* Effect.forkChild(Effect.onExit(pool.run(Effect.never, { timeout: "10 millis" }), (exit) =>
          Effect.gen(function*() {
            ends.push(`${name} ${outcome(exit)} @${yield* now}`)
            yield* pool.pause
            const h1 = yield* pool.submit(Effect.void, { queueTimeout: first })
            const h2 = yield* pool.submit(Effect.void, { queueTimeout: 1 })
            yield* Effect.all([track(`${name}1`, h1.await), track(`${name}2`, h2.await)], { concurrency: "unbounded" })
          }))))
      }
      yield* settle
      fibers.push(yield* Effect.forkChild(track("far", pool.run(Effect.void, { queueTimeout: "100 millis" }))))
      yield* settle
      for (let t = 1; t <= 20; t++) {
        yield* TestClock.adjust("1 millis")
        yield* settle
      }
      // far starts on a's worker as a stops, before a's caller pauses the pool
      assert.deepStrictEqual(ends, [
        "far ok @10", "a timeout @10", "b timeout @10", "a2 timeout @11", "b2 timeout @11", "b1 timeout @12", "a1 timeout @15"
      ])
      for (const fiber of fibers) yield* Fiber.await(fiber)
    }))
})

describe("hostile40: a shutdown told of a job's end while its worker retires", () => {
  it.effect("the caller of run shuts the pool down as it resumes (its worker retiring): once shut down, every resource is released", () =>
    Effect.gen(function*() {
      let released = 0
      const pool = yield* WorkPool.make({
        concurrency: 2,
        resource: (id) => Effect.acquireRelease(Effect.succeed(id), () => Effect.sync(() => void released++))
      })
      const stopper = yield* Effect.forkChild(
        Effect.andThen(pool.run(Effect.sleep("10 millis")), Effect.andThen(pool.shutdownNow, Effect.sync(() => released)))
      )
      yield* settle
      yield* pool.submit(Effect.sleep("20 millis"))
      // both workers busy: the first to stop retires
      yield* pool.resize(1)
      yield* settle
      yield* TestClock.adjust("10 millis")
      assert.strictEqual(yield* Fiber.join(stopper), 2)
      assert.strictEqual((yield* pool.stats).workers, 0)
    }))
})

// ---------------------------------------------------------------------------------------------
// hostile52: since bd74a26 the wait and run histograms hear only times above 0 ms, and their 0 ms
// count is read from the scheduler's `started` (wait) and `started - busy` (run). Every time is
// recorded here as before that change (each start's wait and each stop's run, 0 ms counted apart),
// by wrapping the scheduler's own start and stop, and the pool's histograms must equal that record
// at every read: from the test, and from inside jobs that read them as they run (mid start/stop).

/** A histogram as before bd74a26: every time recorded, 0 ms counted apart. */
class EveryTime {
  zeros = 0
  readonly counts = new Float64Array(Metrics.BOUNDARIES.length)
  others = 0
  sum = 0
  min = Number.MAX_VALUE
  max = -Number.MAX_VALUE
  record(millis: number): void {
    if (millis === 0) {
      this.zeros++
      return
    }
    const last = Metrics.BOUNDARIES.length - 1
    const bucket = millis <= 1 ? 0 : millis > Metrics.BOUNDARIES[last - 1]! ? last : 32 - Math.clz32(Math.ceil(millis) - 1)
    this.counts[bucket]!++
    this.others++
    this.sum += millis
    if (millis < this.min) this.min = millis
    if (millis > this.max) this.max = millis
  }
  state(): Metric.HistogramState {
    const buckets: Array<[number, number]> = []
    let cumulated = this.zeros
    for (let i = 0; i < Metrics.BOUNDARIES.length; i++) {
      cumulated += this.counts[i]!
      buckets.push([Metrics.BOUNDARIES[i]!, cumulated])
    }
    const zeros = this.zeros > 0
    return {
      buckets,
      count: this.zeros + this.others,
      min: zeros ? Math.min(0, this.min) : this.min,
      max: zeros ? Math.max(0, this.max) : this.max,
      sum: this.sum
    }
  }
}

interface Recorded {
  readonly wait: EveryTime
  readonly run: EveryTime
  starts: number
  stops: number
  /** The states last read, to see that nothing goes down. */
  last?: { readonly wait: Metric.HistogramState; readonly run: Metric.HistogramState }
}

/**
 * Wraps every scheduler's `start` (its wait: the reading it is given less the job's time) and
 * `jobStopped` (its run: the stop's first clock reading less the job's start), for the scope.
 */
const everyTime = Effect.acquireRelease(
  Effect.sync(() => {
    const proto = SchedulerClass.prototype as any
    const start = proto.start
    const jobStopped = proto.jobStopped
    const now = proto.now
    const recorded = new Map<SchedulerClass<any>, Recorded>()
    const of = (scheduler: SchedulerClass<any>): Recorded => {
      let r = recorded.get(scheduler)
      if (r === undefined) recorded.set(scheduler, r = { wait: new EveryTime(), run: new EveryTime(), starts: 0, stops: 0 })
      return r
    }
    let stopping: { job: Job } | undefined
    proto.start = function(this: SchedulerClass<any>, job: Job, worker: unknown, at: number, handedOver?: boolean) {
      const r = of(this)
      r.starts++
      r.wait.record(at - job.time)
      return start.call(this, job, worker, at, handedOver)
    }
    proto.jobStopped = function(this: SchedulerClass<any>, job: Job, worker: unknown, exit: unknown) {
      stopping = { job }
      return jobStopped.call(this, job, worker, exit)
    }
    proto.now = function(this: SchedulerClass<any>) {
      const t = now.call(this)
      if (stopping !== undefined) {
        // jobStopped's first reading: its run time
        const { job } = stopping
        stopping = undefined
        const r = of(this)
        r.stops++
        r.run.record(t - job.time)
      }
      return t
    }
    return {
      recorded,
      restore: () => {
        proto.start = start
        proto.jobStopped = jobStopped
        proto.now = now
      }
    }
  }),
  ({ restore }) => Effect.sync(restore)
)

/** The pool's histograms are the record of every time; cumulative, whole, never going down. */
const agrees = (scheduler: SchedulerClass<any>, recorded: Map<SchedulerClass<any>, Recorded>, where: string) => {
  const r = recorded.get(scheduler) ?? { wait: new EveryTime(), run: new EveryTime(), starts: 0, stops: 0 }
  const own = Metrics.histogramsOf(scheduler)!
  assert.deepStrictEqual(own.wait, r.wait.state(), `${where}: wait`)
  assert.deepStrictEqual(own.run, r.run.state(), `${where}: run`)
  assert.deepStrictEqual([own.wait.count, own.run.count], [r.starts, r.stops], `${where}: counts`)
  assert.deepStrictEqual([own.wait.count, own.run.count], [scheduler.started, scheduler.started - scheduler.busy], where)
  for (const field of ["wait", "run"] as const) {
    const state = own[field]
    let previous = 0
    for (const [, cumulated] of state.buckets) {
      assert.isAtLeast(cumulated, previous, `${where}: ${field} cumulative`)
      previous = cumulated
    }
    assert.strictEqual(state.buckets.at(-1)![1], state.count, `${where}: ${field} last bucket`)
    const last = (recorded.get(scheduler) as Recorded | undefined)?.last?.[field]
    if (last !== undefined) {
      state.buckets.forEach(([, n], i) => assert.isAtLeast(n, last.buckets[i]![1], `${where}: ${field} bucket ${i} went down`))
    }
  }
  if (recorded.has(scheduler)) recorded.get(scheduler)!.last = own
}

describe("hostile52: the histograms hold every time, as when each was recorded", () => {
  for (const seed of [1, 2, 3, 4]) {
    it.effect(`a random WorkPool load (seed ${seed}): inline, callback and fiber jobs, read between steps and from inside jobs`, () =>
      withRegistry(() =>
        Effect.gen(function*() {
          const { recorded } = yield* everyTime
          const random = prng(seed)
          const pool = yield* WorkPool.make({
            concurrency: 3,
            capacity: 6,
            overflow: seed % 2 === 0 ? "suspend" : "dropOldest",
            name: "every",
            queueTimeout: "40 millis",
            shutdownTimeout: "50 millis",
            ...(seed >= 3 ? { rateLimit: { limit: 4, interval: "10 millis" } } : {})
          })
          const scheduler = schedulerOf(pool)
          // what disagreed: kept, not thrown, so that the pool still shuts down on the TestClock
          // (a job that throws only dies) and the test fails at its end rather than hang
          const failures: Array<unknown> = []
          const check = (where: string) => {
            try {
              agrees(scheduler, recorded, where)
            } catch (e) {
              failures.push(e)
            }
          }
          let inside = 0
          // read as the job runs: inside the scheduler's start (an inline job), or in its fiber
          const reads = Effect.sync(() => {
            inside++
            check("inside a job")
          })
          const fibers: Array<Fiber.Fiber<unknown, unknown>> = []
          const handles: Array<WorkPool.JobHandle<unknown, unknown>> = []
          for (let step = 0; step < 250; step++) {
            for (let k = Math.floor(random() * 5); k > 0; k--) {
              const r = random()
              const millis = Math.floor(random() * 12)
              let attempts = 0
              const job: Effect.Effect<unknown, unknown> = r < 0.15
                ? Effect.void
                : r < 0.3
                ? reads
                : r < 0.4
                ? Effect.promise(() => Promise.resolve(1))
                : r < 0.55
                ? Effect.andThen(reads, Effect.sleep(`${millis} millis`))
                : r < 0.65
                ? Effect.andThen(Effect.sleep(`${millis} millis`), Effect.fail("no"))
                : r < 0.7
                ? Effect.die("bug")
                : r < 0.78
                ? Effect.onInterrupt(Effect.never, () => Effect.sleep(`${millis} millis`))
                : r < 0.85
                ? Effect.fail("sync")
                : Effect.suspend(() => ++attempts % 2 === 1 ? Effect.andThen(Effect.sleep(`${millis} millis`), Effect.fail("again")) : reads)
              const options: WorkPool.JobOptions = {
                priority: Math.floor(random() * 3),
                ...(random() < 0.3 ? { timeout: `${1 + Math.floor(random() * 15)} millis` } : {}),
                ...(random() < 0.4 ? { retry: { schedule: Schedule.spaced(`${Math.floor(random() * 3)} millis`), times: 2 } } : {})
              }
              if (random() < 0.5) fibers.push(yield* Effect.forkChild(Effect.exit(pool.run(job, options))))
              else {
                fibers.push(yield* Effect.forkChild(Effect.exit(Effect.tap(pool.submit(job, options), (h) => Effect.sync(() => handles.push(h))))))
              }
            }
            yield* Effect.yieldNow
            if (random() < 0.2 && fibers.length > 0) yield* Effect.forkChild(Fiber.interrupt(fibers[Math.floor(random() * fibers.length)]!))
            if (random() < 0.2 && handles.length > 0) yield* Effect.forkChild(handles[Math.floor(random() * handles.length)]!.interrupt)
            if (random() < 0.05) yield* pool.pause
            if (random() < 0.1) yield* pool.resume
            if (random() < 0.08) yield* Effect.forkChild(pool.resize(1 + Math.floor(random() * 4)))
            check(`step ${step}`)
            // 0 ms steps too: a run of only 0 ms times
            const advance = Math.floor(random() * 4)
            if (advance > 0) yield* TestClock.adjust(`${advance} millis`)
            else yield* settle
            check(`step ${step}, after the clock`)
            const series = (yield* seriesOf("workpool_job_wait_ms"))[0]!.state as Metric.HistogramState
            if (failures.length === 0) assert.deepStrictEqual(series, Metrics.histogramsOf(scheduler)!.wait)
          }
          yield* pool.resume
          const closing = yield* Effect.forkChild(seed % 2 === 0 ? pool.shutdown : Effect.asVoid(pool.shutdownNow))
          for (let i = 0; i < 20; i++) {
            yield* TestClock.adjust("5 millis")
            check(`closing ${i}`)
          }
          yield* Fiber.join(closing)
          check("shut down")
          assert.deepStrictEqual(failures.slice(0, 1), [])
          const s = yield* pool.stats
          assert.deepStrictEqual([s.state, s.running, s.stopping], ["stopped", 0, 0])
          const own = Metrics.histogramsOf(scheduler)!
          assert.strictEqual(own.run.count, own.wait.count)
          // the load had both kinds of times, and reads from inside jobs
          assert.isAbove(own.wait.buckets[0]![1], 0)
          assert.isAbove(own.wait.count, own.wait.buckets[0]![1])
          assert.isAbove(own.run.count, own.run.buckets[0]![1])
          assert.isAbove(inside, 10)
        })
      ), 60_000)
  }
})

describe("hostile52: a thread pool's and a durable consumer's histograms hold every time", () => {
  // offers a thread starts before the main thread knows (a start in the slot its stopped task
  // leaves: `busy` unchanged), cancels of offers and of running tasks, a thread crash, timeouts,
  // retries, a resize down while busy, then shutdownNow handing back what had not started
  it.live("a ThreadPool under mixed load, with offers, crashes, cancels and a resize, then shutdownNow", () =>
    withRegistry(() =>
      Effect.gen(function*() {
        const { recorded } = yield* everyTime
        const random = prng(52)
        const pool = yield* ThreadPool.make({
          worker: new URL("./fixtures/worker.ts", import.meta.url),
          threads: 2,
          capacity: Infinity,
          timeout: "2 seconds",
          cancelGrace: "100 millis",
          name: "threads52",
          workerData: { counters: new SharedArrayBuffer(64) }
        })
        const scheduler = schedulerOf(pool)
        const fibers: Array<Fiber.Fiber<unknown, unknown>> = []
        for (let i = 0; i < 400; i++) {
          const r = random()
          const run: Effect.Effect<unknown, unknown> = r < 0.45
            ? pool.run(Echo, `${i}`)
            : r < 0.55
            ? pool.run(Flaky, { key: `${i}`, failures: i % 3 }, { retry: { times: 1 } })
            : r < 0.65
            ? pool.run(Fail, `${i}`)
            : r < 0.7
            ? pool.run(Die, `${i}`)
            : r < 0.72
            ? pool.run(Spin, i, { timeout: "30 millis" })
            : r < 0.73
            ? pool.run(Crash, "exit")
            : pool.run(Sleep, { millis: Math.floor(random() * 4), mark: 0 })
          fibers.push(yield* Effect.forkChild(Effect.exit(run)))
          if (i % 25 === 0) {
            yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 1)))
            agrees(scheduler, recorded, `task ${i}`)
          }
        }
        for (let i = 0; i < 40; i++) {
          yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 1)))
          yield* Effect.forkChild(Fiber.interrupt(fibers[Math.floor(random() * fibers.length)]!))
          if (i === 20) yield* Effect.forkChild(pool.resize(1))
          agrees(scheduler, recorded, `cancel ${i}`)
        }
        // half of them done, then the rest handed back
        yield* waitFor(Effect.sync(() => fibers.filter((f) => f.pollUnsafe() !== undefined).length >= 200), "half done")
        agrees(scheduler, recorded, "half done")
        yield* pool.shutdownNow
        yield* Effect.forEach(fibers, Fiber.await, { discard: true })
        agrees(scheduler, recorded, "shut down")
        const own = Metrics.histogramsOf(scheduler)!
        assert.strictEqual(own.run.count, own.wait.count)
        assert.isAbove(own.wait.count, 100)
      })
    ), 60_000)

  it.effect("a durable consumer: retries, timeouts, jobs still running at its shutdown", () =>
    withRegistry(() =>
      Effect.gen(function*() {
        const { recorded } = yield* everyTime
        const before = new Set(recorded.keys())
        const Work = Task.make("Work52", { payload: Schema.Number, success: Schema.Number, failure: Schema.String })
        let calls = 0
        const consumer = yield* JobQueue.consume({
          concurrency: 3,
          lease: 200,
          poll: "5 millis",
          handlers: [Task.handle(Work, (n) => {
            calls++
            const kind = n % 5
            return kind === 0
              ? Effect.succeed(n)
              : kind === 1
              ? Effect.as(Effect.sleep(`${n % 7} millis`), n)
              : kind === 2
              ? (calls % 2 === 0 ? Effect.fail("again") : Effect.succeed(n))
              : kind === 3
              ? Effect.as(Effect.sleep("300 millis"), n)
              : Effect.never
          })]
        })
        for (let n = 0; n < 40; n++) yield* JobQueue.enqueue(Work, n, { maxAttempts: 2, retry: { fixed: "3 millis" }, timeout: "50 millis" })
        const scheduler = () => Array.from(recorded.keys()).find((s) => !before.has(s))
        // kept, not thrown: the consumer still shuts down on the TestClock (see the WorkPool load's)
        const failures: Array<unknown> = []
        const check = (s: SchedulerClass<any>, where: string) => {
          try {
            agrees(s, recorded, where)
          } catch (e) {
            failures.push(e)
          }
        }
        for (let i = 0; i < 200; i++) {
          yield* settle
          yield* TestClock.adjust(`${i % 3} millis`)
          const s = scheduler()
          if (s !== undefined) check(s, `tick ${i}`)
        }
        yield* Effect.forkChild(consumer.shutdown)
        for (let i = 0; i < 100; i++) {
          yield* TestClock.adjust("10 millis")
          check(scheduler()!, `closing ${i}`)
        }
        assert.deepStrictEqual(failures.slice(0, 1), [])
        const s = scheduler()!
        const own = Metrics.histogramsOf(s)!
        assert.isAbove(own.wait.count, 20)
        assert.isAbove(own.run.count, own.run.buckets[0]![1])
        assert.strictEqual(s.busy, 0)
      }).pipe(Effect.scoped, Effect.provide(JobStore.memory()))
    ), 60_000)
})

describe("hostile52: times of a clock with fractions of a millisecond, at the buckets' bounds", () => {
  // A clock of the caller's (not Effect's live one) is read to the nanosecond: times are fractional,
  // so only an exact 0 goes untold. Each job moves the clock as it runs, by the run it should have.
  it.effect("0, 0.25, 1, 1.000001, 2, 2.5, 65,536, 65,536.5 and -3 ms runs; a 0.5 ms wait: buckets, count, sum, min and max by hand", () =>
    withRegistry(() =>
      Effect.gen(function*() {
        const base = yield* Clock.Clock
        let nanos = 1_000_000_000n
        const clock: Clock.Clock = {
          currentTimeMillisUnsafe: () => Number(nanos / 1_000_000n),
          currentTimeMillis: Effect.sync(() => Number(nanos / 1_000_000n)),
          currentTimeNanosUnsafe: () => nanos,
          currentTimeNanos: Effect.sync(() => nanos),
          monotonicTimeNanosUnsafe: () => nanos,
          monotonicTimeNanos: Effect.sync(() => nanos),
          sleep: (duration) => base.sleep(duration)
        }
        const pool = yield* WorkPool.make({ concurrency: 1, name: "fractions" }).pipe(Effect.provideService(Clock.Clock, clock))
        const runs = [0, 0.25, 1, 1.000001, 2, 2.5, 65_536, 65_536.5, -3]
        for (const run of runs) yield* pool.run(Effect.sync(() => void (nanos += BigInt(Math.round(run * 1e6)))))
        // queued behind a job that runs 0.5 ms: waits 0.5 ms (and runs 0)
        const gate = yield* Deferred.make<void>()
        const first = yield* pool.submit(Effect.andThen(Deferred.await(gate), Effect.sync(() => void (nanos += 500_000n))))
        const second = yield* pool.submit(Effect.void)
        yield* Deferred.succeed(gate, undefined)
        yield* first.await
        yield* second.await
        const wait = (yield* seriesOf("workpool_job_wait_ms"))[0]!.state as Metric.HistogramState
        const run = (yield* seriesOf("workpool_job_run_ms"))[0]!.state as Metric.HistogramState
        const bucket = (state: Metric.HistogramState, le: number) => state.buckets.find(([b]) => b === le)![1]
        // waits: 10 of 0 ms, one of 0.5
        assert.deepStrictEqual(
          [wait.count, bucket(wait, 1), bucket(wait, Infinity), wait.min, wait.max, wait.sum],
          [11, 11, 11, 0, 0.5, 0.5]
        )
        // runs: 0 (twice: the first above and the second queued job), 0.25, 1, -3 and 0.5 in ≤ 1;
        // 1.000001 and 2 in ≤ 2; 2.5 in ≤ 4; 65,536 in ≤ 65,536; 65,536.5 past the last bound
        assert.deepStrictEqual(
          [run.count, bucket(run, 1), bucket(run, 2), bucket(run, 4), bucket(run, 32_768), bucket(run, 65_536), bucket(run, Infinity), run.min],
          [11, 6, 8, 9, 9, 10, 11, -3]
        )
        // a difference of two fractional readings (the clock's milliseconds since the pool was made)
        assert.closeTo(run.max, 65_536.5, 1e-6)
        assert.closeTo(run.sum, 0.25 + 1 + 1.000001 + 2 + 2.5 + 65_536 + 65_536.5 - 3 + 0.5, 1e-6)
      })
    ))
})

describe("hostile52: a backlog of inline jobs started over several turns", () => {
  // a pump starts at most a fiber's budget of jobs per turn; the metrics are read between its turns,
  // and by the jobs themselves (every 100th), with a few that take time among 0 ms ones
  it.effect("5,000 queued jobs released by a resume: the histograms equal every time at each read", () =>
    withRegistry(() =>
      Effect.gen(function*() {
        const { recorded } = yield* everyTime
        const pool = yield* WorkPool.make({ concurrency: 2, capacity: Infinity, name: "backlog" })
        const scheduler = schedulerOf(pool)
        const failures: Array<unknown> = []
        let reads = 0
        const check = (where: string) => {
          reads++
          try {
            agrees(scheduler, recorded, where)
          } catch (e) {
            failures.push(e)
          }
        }
        yield* pool.pause
        const handles: Array<WorkPool.JobHandle<unknown, unknown>> = []
        for (let i = 0; i < 5_000; i++) {
          const job = i % 100 === 0
            ? Effect.sync(() => check(`job ${i}`))
            : i % 997 === 0
            ? Effect.sleep("3 millis")
            : Effect.void
          handles.push(yield* pool.submit(job))
          if (i === 2_500) yield* TestClock.adjust("2 millis")
        }
        yield* TestClock.adjust("1 millis")
        yield* pool.resume
        for (let i = 0; i < 200 && (yield* pool.stats).succeeded < 5_000; i++) {
          check("between turns")
          yield* Effect.yieldNow
          if (i % 4 === 3) yield* TestClock.adjust("1 millis")
        }
        check("done")
        assert.deepStrictEqual(failures.slice(0, 1), [])
        const own = Metrics.histogramsOf(scheduler)!
        assert.deepStrictEqual([own.wait.count, own.run.count], [5_000, 5_000])
        assert.isAbove(reads, 55)
      })
    ))
})
