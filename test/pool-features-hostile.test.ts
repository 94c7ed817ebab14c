import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Schedule } from "effect"
import { TestClock } from "effect/testing"
import { WorkPool } from "../src/index.ts"
import { settle } from "./helpers.ts"

/** The README's identity, true at every instant. */
const balanced = (s: WorkPool.PoolStats) =>
  s.submitted ===
    s.waiting + s.queued + s.retrying + s.running + s.stopping + s.succeeded + s.failed + s.defects + s.timedOut +
      s.interrupted + s.dropped

describe("aging with backpressure and retries", () => {
  it.effect("a suspended submitter's job, admitted behind a retried one, keeps its place by aging", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, capacity: 3, aging: "1 second", shutdownTimeout: 0 })
      const ran: Array<string> = []
      const gate = yield* Deferred.make<void>()
      let first = true
      // r fails its first attempt at 0 and goes back to the queue at 10 (as if just submitted)
      yield* pool.submit(
        Effect.suspend(() => {
          if (first) {
            first = false
            return Effect.fail("once")
          }
          ran.push("r")
          return Effect.void
        }),
        { retry: { schedule: Schedule.spaced("10 millis"), times: 1 } }
      )
      yield* pool.submit(Deferred.await(gate))
      const fillers = yield* Effect.forEach([1, 2, 3], () => pool.submit(Effect.void))
      // w is submitted at 0 and waits for room
      const w = yield* Effect.forkChild(pool.submit(Effect.sync(() => ran.push("w"))))
      yield* settle
      assert.strictEqual((yield* pool.stats).waiting, 1)
      yield* TestClock.adjust("10 millis")
      assert.strictEqual((yield* pool.stats).queued, 4)
      // room: w is admitted at 900, behind r
      yield* TestClock.adjust("890 millis")
      yield* Effect.forEach(fillers, (h) => h.interrupt)
      yield* Fiber.join(w)
      // x (priority 1) arrives at 1500: 1500 after w's submission, 600 after its admission
      yield* TestClock.adjust("600 millis")
      yield* pool.submit(Effect.sync(() => ran.push("x")), { priority: 1 })
      yield* Deferred.succeed(gate, undefined)
      yield* pool.awaitIdle
      // a job's age counts from its submission (its score, its queue timeout and its wait time do):
      // w (0) before r (back at 10), and x (1500, priority 1) after both. Counted from w's
      // admission it would be r, x, w; the lane's push order gave r, w, x, which neither rule does
      assert.deepStrictEqual(ran, ["w", "r", "x"])
    }))
})
