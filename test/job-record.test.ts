/**
 * A job's record (src/internal/scheduler.ts `Job`, which is also its handle) is what a queued job
 * costs (scenario 3's bytes per queued job): it holds as own fields only what every job needs, and
 * what only some jobs have (a deadline, a hook, progress, a timeout of their own) stays on the
 * prototype until a job has it.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import { WorkPool } from "../src/index.ts"

const EVERY_JOB = ["scheduler", "seq", "effect", "context", "priority", "state", "time", "result"]

describe("a job's record", () => {
  it.effect("a queued job without a deadline has only the fields every job needs; one with a deadline gains it, and keeps working", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, paused: true })
      const plain = yield* pool.submit(Effect.succeed("plain"))
      assert.deepStrictEqual(Object.keys(plain), EVERY_JOB)
      const bounded = yield* pool.submit(Effect.succeed("bounded"), { queueTimeout: "1 second" })
      assert.deepStrictEqual(Object.keys(bounded), [...EVERY_JOB, "deadline"])
      const expiring = yield* pool.submit(Effect.succeed("expiring"), { queueTimeout: "10 millis" })
      yield* TestClock.adjust("10 millis")
      assert.strictEqual(yield* expiring.status, "timedOut")
      yield* pool.resume
      assert.deepStrictEqual([yield* plain.await, yield* bounded.await], ["plain", "bounded"])
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.succeeded, stats.timedOut], [2, 1])
    }))
})
