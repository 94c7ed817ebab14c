import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Metric, Schedule } from "effect"
import { TestClock } from "effect/testing"
import { PoolError, WorkPool } from "../src/index.ts"
import { recordingTracer, settle } from "./helpers.ts"

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
