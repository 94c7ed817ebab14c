/**
 * A rate-limited claim's windows as the SQL stores (SQLite, Postgres) account them, in one place
 * (`claimWindow`, `takeFromWindows`): what a window allows, what a claim writes back to it, and how
 * long a claim that came up short was held back. The stores' conformance and model tests run it
 * through a store; these pin the cases they reach seldom (several windows holding one claim back).
 */
import { assert, describe, it } from "@effect/vitest"
import { claimWindow, takeFromWindows } from "../src/internal/store/model.ts"

const queue = (name: string, limit: number, count: number) => ({ name, rate_limit: limit, rate_interval_ms: 1000, rate_count: count })

describe("a rate-limited claim's windows (the SQL stores')", () => {
  it("a full window allows as many claims as its oldest claims are a whole interval old, and says when its next slot frees", () => {
    const window = claimWindow(queue("q", 3, 3), [{ id: 1, at: 0 }, { id: 2, at: 500 }, { id: 3, at: 900 }], 1200, 2)
    assert.deepStrictEqual([window.allowed, window.nextAt], [1, 1500])
  })

  it("a claim that took from a full window drops its oldest claims; from one with room, none", () => {
    const full = claimWindow(queue("full", 3, 3), [{ id: 1, at: 0 }, { id: 2, at: 100 }], 5000, 2)
    const roomy = claimWindow(queue("roomy", 3, 1), [{ id: 7, at: 4900 }], 5000, 2)
    const { taken } = takeFromWindows([full, roomy], [{ queue: "full" }, { queue: "full" }, { queue: "roomy" }], 3, 5000)
    assert.deepStrictEqual(taken, [
      { name: "full", taken: 2, dropped: [1, 2], count: 3 },
      { name: "roomy", taken: 1, dropped: [], count: 2 }
    ])
  })

  it("a claim that came up short is held back until the soonest of the windows that gave all they had frees a slot", () => {
    const now = 1000
    const later = claimWindow(queue("later", 2, 2), [{ id: 1, at: 0 }, { id: 2, at: 300 }], now, 4) // allows 1, next at 1300
    const sooner = claimWindow(queue("sooner", 1, 1), [{ id: 3, at: 100 }], now, 4) // allows none, next at 1100
    assert.deepStrictEqual([later.allowed, later.nextAt, sooner.allowed, sooner.nextAt], [1, 1300, 0, 1100])
    assert.strictEqual(takeFromWindows([later, sooner], [{ queue: "later" }], 4, now).limitedFor, 100)
    // a claim that took all it asked for was not held back
    assert.strictEqual(takeFromWindows([later, sooner], [{ queue: "later" }], 1, now).limitedFor, 0)
    // a window that gave less than it allowed (its queue had no more) held nothing back
    assert.strictEqual(takeFromWindows([later], [], 4, now).limitedFor, 0)
  })
})
