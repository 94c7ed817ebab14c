/**
 * `rateLimit`: at most `limit` starts in any window of `interval`, under TestClock: the exact start
 * times, priority order while held, the job states and stats while held, and every pool operation
 * (cancel, timeouts, pause, resize, retries, shutdown, a runtime change) on held jobs.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Exit, Fiber, Metric } from "effect"
import { TestClock } from "effect/testing"
import { PoolError, WorkPool } from "../src/index.ts"
import { makePool } from "./fixtures/pool.ts"
import { Echo } from "./fixtures/tasks.ts"
import { maxInWindow, settle, waitFor } from "./helpers.ts"

/** A job that records when it started (TestClock time). */
const recorder = () => {
  const starts: Array<number> = []
  const job = (tag?: string, tags?: Array<string>) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.sync(() => {
        starts.push(now)
        if (tag !== undefined) tags!.push(tag)
      }))
  return { starts, job }
}

describe("rateLimit", () => {
  it.effect("starts at most `limit` jobs per interval, then the next ones as the window slides", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 10, capacity: Infinity, rateLimit: { limit: 3, interval: "1 second" } })
      const { job, starts } = recorder()
      const handles = yield* Effect.forEach(Array.from({ length: 10 }), () => pool.submit(job()))
      yield* settle
      assert.deepStrictEqual(starts, [0, 0, 0])
      const stats = yield* pool.stats
      assert.strictEqual(stats.queued, 7)
      assert.strictEqual(stats.rateLimited, 7, "10 workers, 3 of them busy at most: every queued job is held")
      assert.strictEqual(stats.running, 0)
      yield* TestClock.adjust("999 millis")
      assert.strictEqual(starts.length, 3, "not a millisecond early")
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(starts, [0, 0, 0, 1000, 1000, 1000])
      yield* TestClock.adjust("2 seconds")
      yield* Effect.forEach(handles, (h) => h.await)
      assert.deepStrictEqual(starts, [0, 0, 0, 1000, 1000, 1000, 2000, 2000, 2000, 3000])
      assert.strictEqual((yield* pool.stats).rateLimited, 0)
    }))

  it.effect("the window slides: each start frees its slot exactly `interval` later, for jobs arriving at any time", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 4, capacity: Infinity, rateLimit: { limit: 3, interval: "1 second" } })
      const { job, starts } = recorder()
      yield* pool.submit(job())
      yield* pool.submit(job())
      yield* TestClock.adjust("400 millis")
      // one slot is left until 1000: the first of these starts now, the next two at 1000, the last at 1400
      for (let i = 0; i < 4; i++) yield* pool.submit(job())
      yield* TestClock.adjust("3 seconds")
      yield* pool.awaitIdle
      assert.deepStrictEqual(starts, [0, 0, 400, 1000, 1000, 1400])
      assert.strictEqual(maxInWindow(starts, 1000), 3)
    }))

  it.effect("a long random run: never more than `limit` starts in any window", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 3, capacity: Infinity, rateLimit: { limit: 5, interval: "250 millis" } })
      const { job, starts } = recorder()
      let seed = 7
      const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648
      for (let i = 0; i < 300; i++) {
        const n = Math.floor(random() * 4)
        for (let k = 0; k < n; k++) yield* pool.submit(Effect.andThen(job(), Effect.sleep(`${Math.floor(random() * 80)} millis`)))
        yield* TestClock.adjust(`${Math.floor(random() * 40)} millis`)
      }
      yield* TestClock.adjust("1 minute")
      yield* pool.awaitIdle
      assert.isAbove(starts.length, 300)
      assert.strictEqual(maxInWindow(starts, 250), 5)
    }))

  it.effect("held jobs start in priority order (FIFO within a priority), aging included", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2, capacity: Infinity, rateLimit: { limit: 1, interval: "100 millis" } })
      const { job } = recorder()
      const order: Array<string> = []
      yield* pool.submit(job("first", order))
      for (const [tag, priority] of [["low-1", 0], ["high-1", 5], ["low-2", 0], ["mid", 2], ["high-2", 5]] as const) {
        yield* pool.submit(job(tag, order), { priority })
      }
      yield* TestClock.adjust("1 second")
      yield* pool.awaitIdle
      assert.deepStrictEqual(order, ["first", "high-1", "high-2", "mid", "low-1", "low-2"])
    }))

  it.effect("a held job is queued, on no worker: a free worker stays free for another job once the limit allows", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, capacity: Infinity, rateLimit: { limit: 1, interval: "1 second" } })
      const running = yield* pool.submit(Effect.sleep("10 seconds"))
      const held = yield* pool.submit(Effect.void)
      yield* settle
      assert.strictEqual(yield* held.status, "queued")
      // the worker is busy: the limit is not what holds the job
      assert.strictEqual((yield* pool.stats).rateLimited, 0)
      yield* running.interrupt
      assert.strictEqual((yield* pool.stats).rateLimited, 1)
      yield* TestClock.adjust("1 second")
      yield* held.await
    }))

  it.effect("cancelling a held job frees nothing of the window; its queue deadline applies while held", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 4, capacity: Infinity, rateLimit: { limit: 1, interval: "1 second" } })
      const { job, starts } = recorder()
      yield* pool.submit(job())
      const cancelled = yield* pool.submit(job())
      const expiring = yield* pool.submit(job(), { queueTimeout: "500 millis" })
      const last = yield* pool.submit(job())
      yield* cancelled.interrupt
      yield* TestClock.adjust("500 millis")
      const timedOut = yield* Effect.flip(expiring.await)
      assert.instanceOf(timedOut, PoolError.JobTimeout)
      assert.strictEqual((timedOut as PoolError.JobTimeout).phase, "queued")
      yield* TestClock.adjust("500 millis")
      yield* last.await
      assert.deepStrictEqual(starts, [0, 1000])
    }))

  it.effect("pause holds jobs (not counted as rate limited); resume starts them at the limit's pace", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 4, capacity: Infinity, paused: true, rateLimit: { limit: 2, interval: "1 second" } })
      const { job, starts } = recorder()
      for (let i = 0; i < 4; i++) yield* pool.submit(job())
      yield* TestClock.adjust("5 seconds")
      assert.deepStrictEqual(starts, [])
      assert.strictEqual((yield* pool.stats).rateLimited, 0)
      yield* pool.resume
      yield* settle
      assert.deepStrictEqual(starts, [5000, 5000])
      assert.strictEqual((yield* pool.stats).rateLimited, 2)
      yield* pool.pause
      yield* TestClock.adjust("2 seconds")
      assert.deepStrictEqual(starts, [5000, 5000], "the limit's timer does not start jobs of a paused pool")
      yield* pool.resume
      yield* pool.awaitIdle
      assert.deepStrictEqual(starts, [5000, 5000, 7000, 7000])
    }))

  it.effect("growing the pool does not raise the rate", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, capacity: Infinity, rateLimit: { limit: 2, interval: "1 second" } })
      const { job, starts } = recorder()
      for (let i = 0; i < 6; i++) yield* pool.submit(Effect.andThen(job(), Effect.sleep("100 millis")))
      yield* TestClock.adjust("100 millis")
      yield* pool.resize(8)
      yield* TestClock.adjust("5 seconds")
      yield* pool.awaitIdle
      assert.deepStrictEqual(starts, [0, 100, 1000, 1100, 2000, 2100])
    }))

  it.effect("every attempt counts: a retry waits for the window too", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2, capacity: Infinity, rateLimit: { limit: 1, interval: "1 second" } })
      const { job, starts } = recorder()
      const flaky = yield* pool.submit(Effect.andThen(job(), Effect.fail("once")), { retry: { times: 1 } })
      yield* TestClock.adjust("3 seconds")
      assert.strictEqual(yield* Effect.flip(flaky.await), "once")
      assert.deepStrictEqual(starts, [0, 1000])
    }))

  it.effect("graceful shutdown drains at the limit's pace within its deadline; the rest end with PoolShutdown", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({
        concurrency: 4,
        capacity: Infinity,
        shutdownTimeout: "1500 millis",
        rateLimit: { limit: 1, interval: "1 second" }
      })
      const { job, starts } = recorder()
      const handles = yield* Effect.forEach(Array.from({ length: 3 }), () => pool.submit(job()))
      const stopping = yield* Effect.forkChild(pool.shutdown)
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(stopping)
      assert.deepStrictEqual(starts, [0, 1000])
      const exit = yield* Effect.exit(handles[2]!.await)
      assert.isTrue(Exit.isFailure(exit))
      assert.instanceOf(yield* Effect.flip(handles[2]!.await), PoolError.PoolShutdown)
      assert.strictEqual((yield* pool.stats).state, "stopped")
    }))

  it.effect("shutdownNow returns the held jobs at once, and the pool terminates without waiting for the window", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 4, capacity: Infinity, rateLimit: { limit: 1, interval: "1 hour" } })
      yield* pool.submit(Effect.void)
      yield* Effect.forEach(Array.from({ length: 3 }), () => pool.submit(Effect.void))
      const unstarted = yield* pool.shutdownNow
      assert.strictEqual(unstarted.length, 3)
      // no clock adjustment: nothing of the pool (its limit's timer included) is left to wait for
      yield* pool.awaitTermination
    }))

  it.effect("closing the scope of a held pool ends it within its shutdown deadline", () =>
    Effect.gen(function*() {
      const { job, starts } = recorder()
      const closing = yield* Effect.forkChild(Effect.scoped(Effect.gen(function*() {
        const pool = yield* WorkPool.make({
          concurrency: 1,
          capacity: Infinity,
          shutdownTimeout: "10 seconds",
          rateLimit: { limit: 1, interval: "1 hour" }
        })
        yield* pool.submit(job())
        yield* pool.submit(job())
      })))
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(closing)
      assert.deepStrictEqual(starts, [0])
    }))

  it.effect("setRateLimit: a tighter limit counts the starts already made, a looser one starts held jobs at once, undefined removes it", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 10, capacity: Infinity, rateLimit: { limit: 4, interval: "1 second" } })
      const { job, starts } = recorder()
      for (let i = 0; i < 3; i++) yield* pool.submit(job())
      // 3 starts at 0: a limit of 2 per second allows none until 1000
      yield* pool.setRateLimit({ limit: 2, interval: "1 second" })
      for (let i = 0; i < 6; i++) yield* pool.submit(job())
      yield* TestClock.adjust("999 millis")
      assert.deepStrictEqual(starts, [0, 0, 0])
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(starts, [0, 0, 0, 1000, 1000])
      yield* pool.setRateLimit({ limit: 3, interval: "1 second" })
      yield* settle
      assert.deepStrictEqual(starts, [0, 0, 0, 1000, 1000, 1000])
      yield* pool.setRateLimit(undefined)
      yield* settle
      assert.strictEqual(starts.length, 9)
      // and set again on a pool without one
      yield* pool.setRateLimit({ limit: 1, interval: "1 second" })
      yield* pool.submit(job())
      yield* pool.submit(job())
      yield* settle
      assert.strictEqual(starts.length, 10)
      yield* TestClock.adjust("1 second")
      assert.strictEqual(starts.length, 11)
    }))

  it.effect("the wall clock set back neither stalls the limit nor lets a burst through (monotonic time)", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(3_600_000)
      const pool = yield* WorkPool.make({ concurrency: 4, capacity: Infinity, rateLimit: { limit: 1, interval: "1 second" } })
      const { job, starts } = recorder()
      yield* pool.submit(job())
      yield* TestClock.setTime(0) // an hour back
      yield* pool.submit(job())
      yield* pool.submit(job())
      yield* settle
      assert.strictEqual(starts.length, 1, "no burst")
      yield* TestClock.adjust("1 second")
      assert.strictEqual(starts.length, 2, "no hour-long stall")
      yield* TestClock.adjust("1 second")
      assert.strictEqual(starts.length, 3)
    }))

  it.effect("the gauge workpool_jobs_rate_limited shows the held jobs", () =>
    Effect.gen(function*() {
      const registry: Metric.MetricRegistry = new Map()
      yield* Effect.gen(function*() {
        const pool = yield* WorkPool.make({ name: "limited", concurrency: 4, capacity: Infinity, rateLimit: { limit: 1, interval: "1 second" } })
        for (let i = 0; i < 3; i++) yield* pool.submit(Effect.void)
        const gauge = (yield* Metric.snapshot).find((s) => s.id === "workpool_jobs_rate_limited" && s.attributes?.pool === "limited")
        assert.deepStrictEqual(gauge?.state, { value: 2 })
        yield* pool.shutdownNow
      }).pipe(Effect.provideService(Metric.MetricRegistry, registry))
    }))

  it.effect("bad values fail with InvalidPoolConfig naming the field", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<[unknown, string]> = [
        [5, "rateLimit"],
        [{ interval: "1 second" }, "rateLimit.limit"],
        [{ limit: 0, interval: "1 second" }, "rateLimit.limit"],
        [{ limit: 1.5, interval: "1 second" }, "rateLimit.limit"],
        [{ limit: 2_000_000, interval: "1 second" }, "rateLimit.limit"],
        [{ limit: 10 }, "rateLimit.interval"],
        [{ limit: 10, interval: 0 }, "rateLimit.interval"],
        [{ limit: 10, interval: "soon" }, "rateLimit.interval"],
        [{ limit: 10, interval: Infinity }, "rateLimit.interval"],
        [{ limit: 10, interval: "1 second", burst: 5 }, "rateLimit.burst"],
        [{ max: 10, duration: 1000 }, "rateLimit.max"]
      ]
      for (const [rateLimit, field] of cases) {
        const error = yield* Effect.flip(Effect.scoped(WorkPool.make({ concurrency: 1, rateLimit: rateLimit as any })))
        assert.instanceOf(error, PoolError.InvalidPoolConfig)
        assert.strictEqual((error as PoolError.InvalidPoolConfig).field, field, JSON.stringify(rateLimit))
      }
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const error = yield* Effect.flip(pool.setRateLimit({ limit: -1, interval: "1 second" }))
      assert.strictEqual(error.field, "rateLimit.limit")
      assert.include(error.reason, "whole number")
    }))

  it.live("a ThreadPool takes the same option: held tasks wait queued, setRateLimit releases them", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ rateLimit: { limit: 1, interval: "1 hour" } })
      assert.strictEqual(yield* pool.run(Echo, "a"), "echo a")
      const held = yield* Effect.forEach(["b", "c"], (s) => pool.submit(Echo, s))
      yield* waitFor(pool.stats, "both held", { until: (s) => s.queued === 2 && s.rateLimited === 2 && s.running === 0 })
      yield* pool.setRateLimit(undefined)
      assert.deepStrictEqual(yield* Effect.forEach(held, (h) => h.await), ["echo b", "echo c"])
    }))
})


