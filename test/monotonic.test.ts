import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Exit, Option, Schedule } from "effect"
import { TestClock } from "effect/testing"
import { PoolError, WorkPool } from "../src/index.ts"
import * as ThreadPool from "../src/ThreadPool.ts"
import { StepBack } from "./fixtures/clock-tasks.ts"
import { Crash } from "./fixtures/tasks.ts"
import { settle, waitFor } from "./helpers.ts"
import { shiftedClock } from "./fixtures/shiftedClock.ts"

/**
 * The test clock with a wall clock that can be stepped (`jump`), as NTP or a VM resume steps a
 * real one: its monotonic time and its sleeps are the test clock's, untouched by a jump.
 */
const jumpingClock = Effect.map(shiftedClock({ wallOnly: true }), ({ clock, shift }) => ({ clock, jump: shift }))

const HOUR = 3_600_000

describe("the scheduler's time is the clock's monotonic time", () => {
  it.effect("a wall clock stepped forward expires no queued job early", () =>
    Effect.gen(function*() {
      const { clock, jump } = yield* jumpingClock
      const pool = yield* WorkPool.make({ concurrency: 1, queueTimeout: "1 second" }).pipe(
        Effect.provideService(Clock.Clock, clock)
      )
      yield* pool.submit(Effect.sleep("500 millis"))
      const queued = yield* pool.submit(Effect.succeed("started in time"))
      const later = yield* pool.submit(Effect.as(Effect.sleep("100 millis"), "later"), { queueTimeout: "2 seconds" })
      yield* settle
      jump(HOUR)
      // the blocker ends 500 ms after the queued jobs were submitted: both are within their deadline
      yield* TestClock.adjust("500 millis")
      assert.strictEqual(yield* queued.await, "started in time")
      yield* TestClock.adjust("100 millis")
      assert.strictEqual(yield* later.await, "later")
      assert.strictEqual((yield* pool.stats).timedOut, 0)
    }))

  it.effect("a wall clock stepped back delays no deadline: queued and running jobs time out on time", () =>
    Effect.gen(function*() {
      const { clock, jump } = yield* jumpingClock
      const pool = yield* WorkPool.make({ concurrency: 1 }).pipe(Effect.provideService(Clock.Clock, clock))
      const running = yield* pool.submit(Effect.never, { timeout: "300 millis" })
      const queued = yield* pool.submit(Effect.void, { queueTimeout: "100 millis" })
      yield* settle
      jump(-HOUR)
      yield* TestClock.adjust("100 millis")
      assert.deepStrictEqual(
        yield* Effect.exit(queued.await),
        Exit.fail(new PoolError.JobTimeout({ jobId: queued.id, millis: 100, phase: "queued" }))
      )
      yield* TestClock.adjust("200 millis")
      assert.deepStrictEqual(
        yield* Effect.exit(running.await),
        Exit.fail(new PoolError.JobTimeout({ jobId: running.id, millis: 300, phase: "running" }))
      )
    }))

  it.effect("a retry's delay is not stretched by a wall clock stepped back", () =>
    Effect.gen(function*() {
      const { clock, jump } = yield* jumpingClock
      const pool = yield* WorkPool.make({ concurrency: 1 }).pipe(Effect.provideService(Clock.Clock, clock))
      let attempts = 0
      const flaky = Effect.suspend(() => ++attempts < 2 ? Effect.fail("busy") : Effect.succeed(`ok after ${attempts}`))
      const handle = yield* pool.submit(flaky, { retry: Schedule.spaced("1 second") })
      yield* settle
      assert.strictEqual(yield* handle.status, "retrying")
      jump(-HOUR)
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* handle.await, "ok after 2")
    }))

  it.effect("waits, runs and the lookup's age limit are durations: a wall-clock step changes none of them", () =>
    Effect.gen(function*() {
      const { clock, jump } = yield* jumpingClock
      const pool = yield* WorkPool.make({ concurrency: 1, retention: { count: 10, age: "5 seconds" } }).pipe(
        Effect.provideService(Clock.Clock, clock)
      )
      const first = yield* pool.submit(Effect.sleep("1 second"))
      const second = yield* pool.submit(Effect.sleep("1 second"))
      yield* settle
      jump(HOUR)
      yield* TestClock.adjust("1 second")
      jump(-2 * HOUR)
      yield* TestClock.adjust("1 second")
      yield* second.await
      const stats = yield* pool.stats
      assert.strictEqual(stats.meanWaitMillis, (0 + 1000) / 2)
      assert.strictEqual(stats.meanRunMillis, 1000)
      assert.closeTo(stats.utilization, 1, 1e-9)
      // the first ended 1 s ago: kept 5 s whatever the wall clock says
      jump(3 * HOUR)
      yield* TestClock.adjust("3999 millis")
      assert.isTrue(Option.isSome(yield* pool.job(first.id)))
      yield* TestClock.adjust("1 millis")
      assert.isTrue(Option.isNone(yield* pool.job(first.id)))
    }))
})

describe("a thread pool's durations are monotonic too", () => {
  it.effect("a thread that lived long enough is replaced at once when it dies, though the wall clock was stepped back", () =>
    Effect.gen(function*() {
      const { clock, jump } = yield* jumpingClock
      const started = new SharedArrayBuffer(4)
      const starts = () => Atomics.load(new Int32Array(started), 0)
      const lifetimes = new SharedArrayBuffer(4 * 4)
      const pool = yield* ThreadPool.make({
        worker: new URL("./fixtures/dies-soon-worker.ts", import.meta.url),
        threads: 1,
        workerData: { started, lifetimes },
        startSchedule: Schedule.spaced("1 hour")
      }).pipe(Effect.provideService(Clock.Clock, clock))
      // past the 10 s after which a thread's death is not an early one (a crash loop's)
      yield* TestClock.adjust("11 seconds")
      jump(-HOUR)
      assert.instanceOf(yield* Effect.flip(pool.run(Crash, "exit")), PoolError.WorkerCrashed)
      yield* waitFor(Effect.sync(starts), "the thread is replaced at once, with no clock adjusted", { until: (n) => n === 2 })
    }))

  it.live("progress is not held back by a wall clock stepped back in the thread", () =>
    Effect.gen(function*() {
      const counters = new Int32Array(new SharedArrayBuffer(4))
      const pool = yield* ThreadPool.make({
        worker: new URL("./fixtures/clock-worker.ts", import.meta.url),
        threads: 1,
        workerData: { counters: counters.buffer }
      })
      // released before the pool shuts down, even after a failure
      yield* Effect.addFinalizer(() => Effect.sync(() => Atomics.store(counters, 0, 1)))
      const handle = yield* pool.submit(StepBack, HOUR)
      yield* waitFor(handle.progress, "the report after the step arrives", {
        until: (progress) => Option.getOrUndefined(progress) === 2,
        within: "10 seconds"
      })
      Atomics.store(counters, 0, 1)
      assert.strictEqual(yield* handle.await, 2)
    }))
})
