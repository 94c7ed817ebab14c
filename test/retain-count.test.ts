import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Model from "../src/internal/store/model.ts"
import * as RetainCount from "../src/internal/store/retainCount.ts"

/** A queue's finished jobs of a state, as a SQL store's index holds them, with the work each step did. */
const fakeQueue = (jobs: number) => {
  const entries: Array<RetainCount.Newest> = Array.from({ length: jobs }, (_, i) => ({ finishedAt: i, seq: i }))
  const after = (a: RetainCount.Newest, b: RetainCount.Newest) => a.finishedAt > b.finishedAt || (a.finishedAt === b.finishedAt && a.seq > b.seq)
  const work = { read: 0, removes: 0 }
  const look = (from: RetainCount.Newest, bound: number) =>
    Effect.sync((): RetainCount.Look => {
      const n = Math.min(bound, entries.filter((e) => after(e, from)).length)
      work.read += n
      return { n, newest: entries.reduce<RetainCount.Newest | undefined>((m, e) => m === undefined || after(e, m) ? e : m, undefined) }
    })
  const remove = (keep: number, batch: number) =>
    Effect.sync(() => {
      work.removes++
      // the statement reads the kept ones to find its cut
      work.read += Math.min(keep, entries.length)
      entries.sort((a, b) => after(a, b) ? 1 : -1)
      const past = Math.min(batch, Math.max(0, entries.length - keep))
      entries.splice(0, past)
      return past
    })
  const end = (finishedAt: number, seq = finishedAt) => void entries.push({ finishedAt, seq })
  return { entries, work, look, remove, end }
}

describe("retention by count, remembered (retainCount.ts)", () => {
  it.effect("nothing to delete: after its first pass, a look reads only the jobs that ended since, never the kept ones, and runs no batch", () =>
    Effect.gen(function*() {
      const counted = RetainCount.make()
      const q = fakeQueue(100_000)
      const step = counted("q", "succeeded", 100_000, q.look, q.remove(100_000, 1000))
      assert.strictEqual(yield* step, 0)
      assert.strictEqual(q.work.removes, 1)
      const first = q.work.read
      for (let i = 0; i < 5; i++) assert.strictEqual(yield* step, 0)
      assert.deepStrictEqual([q.work.removes, q.work.read - first], [1, 0], "five looks: no batch, no job read")
      // one job more is past the count: the next look finds it, and the batch deletes the oldest
      q.end(200_000)
      assert.strictEqual(yield* step, 1)
      assert.strictEqual(q.work.removes, 2)
      assert.deepStrictEqual(q.entries[0], { finishedAt: 1, seq: 1 })
    }))

  it.effect("jobs that end between looks are added up: a batch runs only once their sum passes the count", () =>
    Effect.gen(function*() {
      const counted = RetainCount.make()
      const q = fakeQueue(5)
      const step = counted("q", "succeeded", 8, q.look, q.remove(8, 1000))
      assert.strictEqual(yield* step, 0)
      q.end(10)
      q.end(11)
      assert.strictEqual(yield* step, 0)
      const read = q.work.read
      assert.strictEqual(yield* step, 0)
      assert.strictEqual(q.work.read, read, "nothing new: nothing read")
      q.end(12)
      assert.strictEqual(yield* step, 0, "8 of 8")
      q.end(13)
      assert.strictEqual(yield* step, 1, "9 of 8")
      assert.strictEqual(q.entries.length, 8)
    }))

  it.effect("a job the looks cannot see (stamped before the newest one seen, committed after it) keeps one more only until the count is taken again, after LOOKS_PER_COUNT looks", () =>
    Effect.gen(function*() {
      const counted = RetainCount.make()
      const q = fakeQueue(3)
      const step = counted("q", "succeeded", 3, q.look, q.remove(3, 1000))
      assert.strictEqual(yield* step, 0)
      q.end(1, 100) // ends before the newest seen (2, 2)
      const deleted: Array<number> = []
      for (let i = 0; i <= RetainCount.LOOKS_PER_COUNT; i++) deleted.push(yield* step)
      assert.deepStrictEqual(deleted, [...Array.from({ length: RetainCount.LOOKS_PER_COUNT }, () => 0), 1])
      assert.strictEqual(q.entries.length, 3)
    }))
})

describe("a retention pass over queues (model.ts retainPass)", () => {
  it.effect("a queue whose statement fails every time is passed over: the queues after it are still visited", () =>
    Effect.gen(function*() {
      const names = ["a", "b", "c", "d"]
      const place = Model.retainCursor((after: string | undefined, n: number) =>
        Effect.succeed(names.filter((name) => after === undefined || name > after).slice(0, n).map((name) => ({ name }))))
      const visits: Array<string> = []
      const visit = ({ name }: { readonly name: string }) =>
        Effect.suspend(() => {
          visits.push(name)
          return name === "b" ? Effect.fail("corrupt" as const) : Effect.succeed({ deleted: 1, more: false })
        })
      const first = yield* Effect.result(Model.retainPass(place, 2, visit))
      assert.strictEqual(first._tag, "Failure")
      yield* Effect.result(Model.retainPass(place, 2, visit))
      // the first call fails at b; the next one goes on after it (not at b again, forever)
      assert.deepStrictEqual(visits, ["a", "b", "c", "d"])
    }))
})
