/**
 * Fair dispatch's two pure parts: the stores' round-robin order of a claim's candidates
 * (`roundRobin`) and a consumer's turn over its queues (`makeTurns`). The stores' claims and a
 * consumer's start order are tested on every store by the conformance suite ("5. fair dispatch").
 */
import { assert, describe, it } from "@effect/vitest"
import { makeTurns } from "../src/internal/durable/consumer.ts"
import { type Claim, type JobRow, roundRobin } from "../src/internal/store/model.ts"

const job = (queue: string, n: number) => ({ queue, n })
const claimOf = (queue: string): Claim => ({ job: { queue } as JobRow, token: queue })

describe("roundRobin", () => {
  it("takes one of each queue per round, the queues in the given order, each queue's candidates in theirs, up to the limit", () => {
    const candidates = [job("a", 1), job("a", 2), job("a", 3), job("b", 1), job("c", 1), job("c", 2)]
    assert.deepStrictEqual(roundRobin(["c", "b", "a"], candidates, (c) => c.queue).map((c) => `${c.queue}${c.n}`), [
      "c1", "b1", "a1", "c2", "a2", "a3"
    ])
    assert.deepStrictEqual(roundRobin(["a", "b", "c"], candidates, (c) => c.queue, 4).map((c) => `${c.queue}${c.n}`), ["a1", "b1", "c1", "a2"])
  })

  it("leaves out the candidates of a queue not asked for, and gives a queue named twice one turn per round", () => {
    const candidates = [job("a", 1), job("a", 2), job("x", 1), job("b", 1)]
    assert.deepStrictEqual(roundRobin(["a", "b", "a"], candidates, (c) => c.queue).map((c) => `${c.queue}${c.n}`), ["a1", "b1", "a2"])
    assert.deepStrictEqual(roundRobin(["a"], [], (c: { queue: string }) => c.queue), [])
  })
})

describe("a fair consumer's turn (makeTurns)", () => {
  it("starts at the first queue; the next claim starts after the last queue served", () => {
    const turns = makeTurns(["a", "b", "c", "d"])
    assert.deepStrictEqual(turns.queues(), ["a", "b", "c", "d"])
    turns.served([claimOf("b"), claimOf("c")])
    assert.deepStrictEqual(turns.queues(), ["d", "a", "b", "c"])
    // round one d, a, b; round two d, a: the last served is a (b gave one job fewer)
    turns.served([claimOf("d"), claimOf("a"), claimOf("b"), claimOf("d"), claimOf("a")])
    assert.deepStrictEqual(turns.queues(), ["b", "c", "d", "a"])
  })

  it("a claim that took nothing leaves the turn where it was; a queue passed over comes first once the turn comes round", () => {
    const turns = makeTurns(["a", "b", "c"])
    turns.served([])
    assert.deepStrictEqual(turns.queues(), ["a", "b", "c"])
    // a held back (paused, rate limited): b served, then c, then a is first again
    turns.served([claimOf("b")])
    turns.served([claimOf("c")])
    assert.deepStrictEqual(turns.queues(), ["a", "b", "c"])
    // a queue it does not consume (a store's answer it cannot place) moves nothing
    turns.served([claimOf("elsewhere")])
    assert.deepStrictEqual(turns.queues(), ["a", "b", "c"])
  })
})
