import { assert, describe, it } from "@effect/vitest"
import { PriorityQueue } from "../src/internal/priorityQueue.ts"
import { prng } from "./helpers.ts"

/** A queued entry as the queue sees it, without aging: its score is its priority. */
class Entry {
  inQueue = true
  readonly priority: number
  readonly seq: number
  readonly time: number
  constructor(priority: number, seq: number, time: number) {
    this.priority = priority
    this.seq = seq
    this.time = time
  }
  get score() {
    return this.priority
  }
}

/** The queue's lanes by priority (private: read here to see which lane object a priority has). */
const lanesOf = (queue: PriorityQueue<Entry>): Map<number, object> =>
  (queue as unknown as { readonly lanes: Map<number, object> }).lanes

describe("the queue's lanes, emptied and made again", () => {
  it("a lane one queue empties is the next lane any queue makes, and starts empty", () => {
    const a = new PriorityQueue<Entry>()
    const b = new PriorityQueue<Entry>()
    a.push(new Entry(1, 1, 0))
    a.push(new Entry(1, 2, 0))
    const lane = lanesOf(a).get(1)!
    a.pop()
    a.pop()
    assert.strictEqual(lanesOf(a).size, 0)
    const entry = new Entry(5, 3, 0)
    b.push(entry)
    // kept, the lane (and its hidden class) outlives the queue that emptied it
    assert.strictEqual(lanesOf(b).get(5), lane)
    assert.deepStrictEqual(Array.from(b.entries()), [entry])
    assert.deepStrictEqual(b.countByPriority(), [{ priority: 5, count: 1 }])
    assert.strictEqual(b.pop(), entry)
    assert.strictEqual(b.pop(), undefined)
  })

  it("two queues in turns, entries removed before their lanes empty: each pop is its queue's best live entry", () => {
    for (let seed = 1; seed <= 150; seed++) {
      const random = prng(seed)
      const queues = [new PriorityQueue<Entry>(), new PriorityQueue<Entry>()]
      const live: Array<Array<Entry>> = [[], []]
      let seq = 0
      const steps = 50 + Math.floor(random() * 300)
      for (let step = 0; step < steps; step++) {
        const q = random() < 0.5 ? 0 : 1
        const queue = queues[q]!
        const entries = live[q]!
        const x = random()
        // few priorities and short lanes: lanes empty, and are made again, often
        const priority = Math.floor(random() * 3)
        if (x < 0.4) {
          const entry = new Entry(priority, ++seq, seq)
          queue.push(entry)
          entries.push(entry)
        } else if (x < 0.6 && entries.length > 0) {
          const entry = entries.splice(Math.floor(random() * entries.length), 1)[0]!
          entry.inQueue = false
          queue.remove(entry)
        } else {
          let best: Entry | undefined
          for (const entry of entries) {
            if (best === undefined || entry.score > best.score || (entry.score === best.score && entry.seq < best.seq)) {
              best = entry
            }
          }
          const popped = queue.pop()
          assert.strictEqual(popped, best, `seed ${seed}, step ${step}`)
          if (popped !== undefined) {
            popped.inQueue = false
            entries.splice(entries.indexOf(popped), 1)
          }
        }
        assert.strictEqual(queue.size, entries.length, `seed ${seed}, step ${step}`)
        assert.sameMembers(Array.from(queue.entries()), entries, `seed ${seed}, step ${step}`)
      }
    }
  })
})
