import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import { TestClock } from "effect/testing"
import * as WorkPool from "../src/WorkPool.ts"
import { settle } from "./helpers.ts"

/**
 * The README's rule: with aging, a job of priority p is passed by a job of priority q > p only if
 * that job arrived less than (q − p) × aging after it. Checked at the exact boundary and one
 * millisecond either side, where a floating-point score (priority − time / aging) rounds.
 */
const order = (low: { priority: number; at: number }, high: { priority: number; at: number }, aging: WorkPool.Options["aging"]) =>
  Effect.gen(function*() {
    const pool = yield* WorkPool.make({ concurrency: 1, capacity: Infinity, aging, shutdownTimeout: 0 })
    const gate = yield* Deferred.make<void>()
    yield* pool.submit(Deferred.await(gate))
    const ran: Array<string> = []
    yield* TestClock.adjust(low.at)
    yield* pool.submit(Effect.sync(() => ran.push("low")), { priority: low.priority })
    yield* TestClock.adjust(high.at - low.at)
    yield* pool.submit(Effect.sync(() => ran.push("high")), { priority: high.priority })
    yield* Deferred.succeed(gate, undefined)
    yield* pool.awaitIdle
    yield* settle
    return ran
  })

describe("aging at the boundary", () => {
  it.effect("a job arriving exactly (q − p) × aging later does not pass (3 − 2.3 > 1 − 0.3 in floating point)", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* order({ priority: 1, at: 300 }, { priority: 3, at: 2_300 }, "1 second"), ["low", "high"])
    }))

  it.effect("one millisecond earlier it passes, one millisecond later it does not", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* order({ priority: 1, at: 300 }, { priority: 3, at: 2_299 }, "1 second"), ["high", "low"])
      assert.deepStrictEqual(yield* order({ priority: 1, at: 300 }, { priority: 3, at: 2_301 }, "1 second"), ["low", "high"])
    }))

  it.effect("holds for other boundaries that round: aging of 3 ms, 100 ms and 7 s, and negative priorities", () =>
    Effect.gen(function*() {
      const cases: Array<[number, number, number, number]> = [
        // [aging ms, p, q, arrival of the low job]
        [3, 0, 1, 1],
        [100, 1, 7, 700],
        [7_000, -5, 2, 1_300],
        [1_000, 0.5, 2.5, 100]
      ]
      for (const [aging, p, q, at] of cases) {
        const boundary = at + (q - p) * aging
        const aged = `${aging} millis` as const
        assert.deepStrictEqual(yield* order({ priority: p, at }, { priority: q, at: boundary }, aged), ["low", "high"], `aging ${aging}: at the boundary`)
        assert.deepStrictEqual(yield* order({ priority: p, at }, { priority: q, at: boundary - 1 }, aged), ["high", "low"], `aging ${aging}: 1 ms before`)
        assert.deepStrictEqual(yield* order({ priority: p, at }, { priority: q, at: boundary + 1 }, aged), ["low", "high"], `aging ${aging}: 1 ms after`)
      }
    }))
})
