/**
 * Hostile tests of the retention of finished jobs (`JobQueue.setRetention`, `Store.retain`), on
 * every store (memory and SQLite always, Postgres and Redis when their servers are set), under
 * TestClock: odd values a caller may pass, a queue's statement failing among others, jobs deleted
 * under an awaiter.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Duration, Effect, Fiber, Layer, Result, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"
import * as DurableError from "../src/DurableError.ts"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import { type RetainPlace, retainPass } from "../src/internal/store/model.ts"
import * as RetainCount from "../src/internal/store/retainCount.ts"
import { Echo, newJob } from "./durable/conformance.ts"
import * as Rd from "./durable/redis.ts"
import { storeLayers } from "./durable/stores.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wp-retention-hostile-"))
let n = 0
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

/** Enqueues a job on `queue`, claims it and settles it succeeded: its id. */
const finish = (queue: string) =>
  Effect.gen(function*() {
    const store = yield* JobStore.JobStore
    const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { queue })
    const [claim] = (yield* store.claim({ queues: [queue], tasks: ["Echo"], limit: 1, lease: 60_000 })).claims
    yield* TestClock.adjust(10)
    assert.isTrue(yield* store.settle(claim!.token, { _tag: "Final", state: "succeeded", exit: JSON.stringify({ _tag: "Success", value: 1 }) }))
    return job.id
  })

for (const [name, layer] of storeLayers(() => path.join(dir, `s${n++}.db`))) {
  describe(`retention, hostile (${name})`, () => {
    const provide = <A, E>(effect: Effect.Effect<A, E, JobStore.JobStore>) => Effect.provide(effect, Layer.fresh(layer()))

    it.effect("an age of a fraction of a millisecond (a Duration of micros, a number like 1.5) is applied, not a statement that fails every pass", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        yield* JobQueue.setRetention("frac", { succeeded: { age: 1.5 } })
        yield* JobQueue.setRetention("micro", { succeeded: { age: Duration.micros(2500n) } })
        const a = yield* finish("frac")
        const b = yield* finish("micro")
        yield* TestClock.adjust(10)
        const retained = yield* store.retain(100)
        assert.strictEqual(retained.deleted, 2)
        assert.instanceOf(yield* Effect.flip(JobQueue.status(a)), DurableError.JobNotFound)
        assert.instanceOf(yield* Effect.flip(JobQueue.status(b)), DurableError.JobNotFound)
      })))

    it.effect("an age of half a millisecond deletes a job that ended 1 ms ago, whatever the parity of the store's time (no rounding of the cut)", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        yield* TestClock.adjust(60_000)
        yield* JobQueue.setRetention("half", { succeeded: { age: 0.5 } })
        for (let i = 0; i < 2; i++) {
          const id = yield* finish("half")
          yield* TestClock.adjust(1)
          const at = yield* Clock.currentTimeMillis
          assert.deepStrictEqual(yield* store.retain(100), { deleted: 1, more: false }, `the cut at ${at} - 0.5`)
          assert.instanceOf(yield* Effect.flip(JobQueue.status(id)), DurableError.JobNotFound)
        }
      })))

    it.effect("a purge olderThan half a millisecond (the cut a retention's age shares) deletes a job that ended 1 ms ago, whatever the parity of the store's time", () =>
      provide(Effect.gen(function*() {
        yield* TestClock.adjust(60_000)
        for (let i = 0; i < 2; i++) {
          const id = yield* finish("half")
          yield* TestClock.adjust(1)
          assert.strictEqual(yield* JobQueue.purge({ olderThan: 0.5 }), 1, `at ${yield* Clock.currentTimeMillis}`)
          assert.instanceOf(yield* Effect.flip(JobQueue.status(id)), DurableError.JobNotFound)
        }
      })))

    it.effect("a backlog past a count goes oldest first, a batch at a time (as documented and as an age goes): the jobs left between batches are the newest", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const ids: Array<string> = []
        for (let i = 0; i < 7; i++) ids.push(yield* finish("backlog"))
        yield* JobQueue.setRetention("backlog", { succeeded: { count: 2 } })
        const left = () => Effect.map(JobQueue.list({ queue: "backlog" }), (jobs) => jobs.map((job) => ids.indexOf(job.id)).sort())
        assert.deepStrictEqual(yield* store.retain(2), { deleted: 2, more: true })
        assert.deepStrictEqual(yield* left(), [2, 3, 4, 5, 6], "the two that ended first went")
        assert.deepStrictEqual(yield* store.retain(2), { deleted: 2, more: true })
        assert.deepStrictEqual(yield* left(), [4, 5, 6])
        assert.deepStrictEqual(yield* store.retain(2), { deleted: 1, more: false })
        assert.deepStrictEqual(yield* left(), [5, 6])
      })))

    it.effect("a count's remembered cut after jobs end out of order (a clock stepped back, a job redriven after it was counted): never one too few kept, and the excess gone within LOOKS_PER_COUNT passes", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        yield* TestClock.adjust(60_000)
        yield* JobQueue.setRetention("order", { succeeded: { count: 3 }, dead: { count: 1 } })
        const ids = [yield* finish("order"), yield* finish("order"), yield* finish("order")]
        assert.deepStrictEqual(yield* store.retain(100), { deleted: 0, more: false })
        // the clock steps back: a job ends before the newest one counted
        const now = yield* Clock.currentTimeMillis
        yield* TestClock.setTime(now - 5_000)
        const early = yield* finish("order")
        yield* TestClock.setTime(now + 10)
        let passes = 0
        while ((yield* JobQueue.stats("order")).succeeded > 3 && passes <= RetainCount.LOOKS_PER_COUNT + 1) {
          yield* store.retain(100)
          passes++
        }
        assert.isAtMost(passes, RetainCount.LOOKS_PER_COUNT + 1)
        // the one that ended first (by its stamp) went: the three newest are kept
        assert.deepStrictEqual((yield* JobQueue.list({ queue: "order", state: "succeeded" })).map((job) => job.id).sort(), ids.slice().sort())
        assert.instanceOf(yield* Effect.flip(JobQueue.status(early)), DurableError.JobNotFound)
        // a dead job counted, redriven, dead again: still one kept, the newest
        const deadOne = yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "order" })
        const dies = (token: string) => store.settle(token, { _tag: "Final", state: "dead", exit: null })
        const claimIt = Effect.map(store.claim({ queues: ["order"], tasks: ["Echo"], limit: 1, lease: 60_000 }), (c) => c.claims[0]!.token)
        yield* TestClock.adjust(10)
        assert.isTrue(yield* dies(yield* claimIt))
        assert.deepStrictEqual(yield* store.retain(100), { deleted: 0, more: false })
        assert.isTrue(yield* JobQueue.redrive(deadOne.id))
        yield* TestClock.adjust(10)
        assert.isTrue(yield* dies(yield* claimIt))
        assert.deepStrictEqual(yield* store.retain(100), { deleted: 0, more: false })
        assert.strictEqual((yield* JobQueue.status(deadOne.id)).state, "dead")
        const other = yield* JobQueue.enqueue(Echo, { n: 2 }, { queue: "order" })
        yield* TestClock.adjust(10)
        assert.isTrue(yield* dies(yield* claimIt))
        assert.deepStrictEqual(yield* store.retain(100), { deleted: 1, more: false })
        assert.deepStrictEqual((yield* JobQueue.list({ queue: "order", state: "dead" })).map((job) => job.id), [other.id])
      })))

    it.effect("a count kept exactly through random rounds (jobs ending out of creation order, redrives, purges, the count changed), ends 1 ms apart: after each pass the newest `count` of each state, no more, no fewer", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        yield* TestClock.adjust(60_000)
        let seed = 7
        const random = (n: number) => {
          seed = (seed * 1103515245 + 12345) % 2147483648
          return seed % n
        }
        // what should be left: every finished job by its end, per queue and state
        const ended = new Map<string, { queue: string; state: "succeeded" | "dead"; at: number }>()
        const keep: Record<string, { succeeded: number; dead: number }> = { a: { succeeded: 3, dead: 2 }, b: { succeeded: 0, dead: 5 } }
        for (const queue of ["a", "b"]) yield* JobQueue.setRetention(queue, { succeeded: { count: keep[queue]!.succeeded }, dead: { count: keep[queue]!.dead } })
        for (let round = 0; round < 25; round++) {
          const queue = random(2) === 0 ? "a" : "b"
          const created = random(4) + 1
          for (let i = 0; i < created; i++) yield* JobQueue.enqueue(Echo, { n: i }, { queue })
          const claims = (yield* store.claim({ queues: [queue], tasks: ["Echo"], limit: 10, lease: 60_000 })).claims.slice()
          while (claims.length > 0) {
            const [claim] = claims.splice(random(claims.length), 1)
            const state = random(2) === 0 ? "succeeded" as const : "dead" as const
            yield* TestClock.adjust(1)
            assert.isTrue(yield* store.settle(claim!.token, { _tag: "Final", state, exit: state === "dead" ? null : JSON.stringify({ _tag: "Success", value: 1 }) }))
            ended.set(claim!.job.id, { queue, state, at: yield* Clock.currentTimeMillis })
          }
          const dead = Array.from(ended).filter(([, job]) => job.state === "dead")
          if (dead.length > 0 && random(3) === 0) {
            const [id] = dead[random(dead.length)]!
            assert.isTrue(yield* JobQueue.redrive(id))
            ended.delete(id)
          }
          if (random(6) === 0) {
            const q = random(2) === 0 ? "a" : "b"
            keep[q] = { succeeded: random(5), dead: random(5) }
            yield* JobQueue.setRetention(q, { succeeded: { count: keep[q]!.succeeded }, dead: { count: keep[q]!.dead } })
          }
          if (random(8) === 0) {
            yield* TestClock.adjust(1)
            yield* JobQueue.purge({ olderThan: "3 millis" })
            const now = yield* Clock.currentTimeMillis
            for (const [id, job] of ended) if (job.at < now - 3) ended.delete(id)
          }
          yield* store.retain(1000)
          // the model: the newest `count` of each queue and state
          for (const q of ["a", "b"]) {
            for (const state of ["succeeded", "dead"] as const) {
              const expected = Array.from(ended).filter(([, job]) => job.queue === q && job.state === state).sort(([, x], [, y]) => y.at - x.at)
                .slice(0, keep[q]![state]).map(([id]) => id).sort()
              const left = (yield* JobQueue.list({ queue: q, state, limit: 1000 })).map((job) => job.id).sort()
              assert.deepStrictEqual(left, expected, `round ${round}, ${q} ${state} (keep ${keep[q]![state]})`)
              for (const [id, job] of ended) if (job.queue === q && job.state === state && !expected.includes(id)) ended.delete(id)
            }
          }
        }
      })))

    it.effect("queues whose names hold a store's separators or escapes (`}`, `%`, `:`, a NUL-free unicode name) are retained like any other", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const names = ["we}ird", "100%", "a:b:final:succeeded", "naïve ✓"]
        const ids: Array<string> = []
        for (const name of names) {
          yield* JobQueue.setRetention(name, { succeeded: { count: 0 } })
          ids.push(yield* finish(name))
        }
        assert.deepStrictEqual(yield* store.retain(100), { deleted: names.length, more: false })
        for (const id of ids) assert.instanceOf(yield* Effect.flip(JobQueue.status(id)), DurableError.JobNotFound)
      })))

    it.effect("a pass over queues whose names sort differently by bytes and by a locale (case, punctuation, accents) reaches each once, a few per call", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const names = ["b", "B", "a-2", "a_1", "A1", "é", "e", "Z", "_", "-", "a b", "ab"]
        const ids = new Map<string, string>()
        for (const name of names) {
          yield* JobQueue.setRetention(name, { succeeded: { count: 0 } })
          ids.set(name, yield* finish(name))
        }
        let deleted = 0
        let calls = 0
        while (calls < names.length) {
          const retained = yield* store.retain(100, 3)
          deleted += retained.deleted
          calls++
          if (!retained.more) break
        }
        assert.strictEqual(deleted, names.length, `${calls} calls`)
        // by name, a call takes 3; Redis's SSCAN pages (COUNT a hint) may give fewer
        assert.isAtMost(calls, name === "Redis" ? names.length : Math.ceil(names.length / 3) + 1)
      })))

    it.effect("odd values are refused as InvalidJobOptions naming the field, and nothing is set", () =>
      provide(Effect.gen(function*() {
        const bad: ReadonlyArray<readonly [unknown, string]> = [
          [{ succeeded: { count: NaN } }, "retention.succeeded.count"],
          [{ succeeded: { count: Infinity } }, "retention.succeeded.count"],
          [{ succeeded: { count: "5" } }, "retention.succeeded.count"],
          [{ succeeded: { count: 0.5 } }, "retention.succeeded.count"],
          [{ dead: { age: NaN } }, "retention.dead.age"],
          [{ dead: { age: -Infinity } }, "retention.dead.age"],
          [{ dead: { age: Duration.days(1e12) } }, "retention.dead.age"],
          [{ cancelled: null }, "retention.cancelled"],
          [{ succeeded: { count: 1 }, running: { count: 1 } }, "retention.running"]
        ]
        for (const [retention, field] of bad) {
          const error = yield* Effect.flip(JobQueue.setRetention("odd", retention as never))
          assert.strictEqual(error._tag, "InvalidJobOptions", JSON.stringify(retention))
          assert.strictEqual((error as { field: string }).field, field, String(field))
        }
        assert.strictEqual((yield* JobQueue.stats("odd")).retention, undefined)
        // -0 and 0 are the same "none kept past the next pass"
        yield* JobQueue.setRetention("odd", { succeeded: { age: -0, count: 0 } })
        assert.deepStrictEqual((yield* JobQueue.stats("odd")).retention, { succeeded: { age: 0, count: 0 } })
      })))

    it.effect("a job deleted by retention: its redrive, cancel, status, await and progressChanges fail with JobNotFound, and an await begun while it ran ends (its result or JobNotFound), never waits on", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        yield* JobQueue.setRetention("gone", { succeeded: { count: 0 }, dead: { count: 0 } })
        const job = yield* JobQueue.enqueue(Echo, { n: 7 }, { queue: "gone" })
        const [claim] = (yield* store.claim({ queues: ["gone"], tasks: ["Echo"], limit: 1, lease: 60_000 })).claims
        const awaiting = yield* Effect.forkChild(Effect.result(job.await))
        const progress = yield* Effect.forkChild(Effect.result(Stream.runCollect(job.progressChanges)))
        yield* Effect.yieldNow
        yield* TestClock.adjust(10)
        assert.isTrue(yield* store.settle(claim!.token, { _tag: "Final", state: "succeeded", exit: JSON.stringify({ _tag: "Success", value: 7 }) }))
        assert.strictEqual((yield* store.retain(100)).deleted, 1)
        for (let i = 0; i < 20; i++) yield* TestClock.adjust(1000)
        const awaited = yield* Fiber.join(awaiting)
        if (Result.isFailure(awaited)) assert.strictEqual((awaited.failure as { _tag: string })._tag, "JobNotFound")
        else assert.strictEqual(awaited.success, 7)
        const streamed = yield* Fiber.join(progress)
        if (Result.isFailure(streamed)) assert.strictEqual(streamed.failure._tag, "JobNotFound")
        for (const op of [JobQueue.redrive(job.id), JobQueue.cancel(job.id), JobQueue.status(job.id), job.await, Stream.runCollect(job.progressChanges)]) {
          assert.strictEqual(((yield* Effect.flip(op as Effect.Effect<unknown, { _tag: string }, JobStore.JobStore>)))._tag, "JobNotFound")
        }
      })))

    it.effect("a call visits `limit` queues of the pass (what one reply of Redis's SSCAN left over is topped up): 45 queues, 10 a call, cleaned in 5 calls", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        for (let i = 0; i < 45; i++) {
          yield* JobQueue.setRetention(`p${i}`, { succeeded: { count: 0 } })
          yield* finish(`p${i}`)
        }
        const deleted: Array<number> = []
        for (let i = 0; i < 5; i++) deleted.push((yield* store.retain(100, 10)).deleted)
        assert.deepStrictEqual(deleted, [10, 10, 10, 10, 5])
      })))
  })
}

describe("retention's pass (retainPass)", () => {
  it.effect("a queue whose visit fails does not cut the others taken with it short: each is visited, the call fails after with its error, and the next call takes the next queues", () =>
    Effect.gen(function*() {
      const queues = ["a", "b", "bad", "c", "d", "e"]
      let at = 0
      const visited: Array<string> = []
      const place: RetainPlace<string, string, never> = {
        take: (limit) => Effect.sync(() => queues.slice(at, at + limit)),
        visited: (queue) => void (at = Math.max(at, queues.indexOf(queue) + 1)),
        left: () => at < queues.length
      }
      // the others yield first: a failure interrupting them would find them in flight
      const visit = (queue: string) =>
        queue === "bad" ? Effect.fail("bad failed") : Effect.andThen(Effect.yieldNow, Effect.sync(() => (visited.push(queue), { deleted: 1, more: false })))
      assert.strictEqual(yield* Effect.flip(retainPass(place, 4, visit, 4)), "bad failed")
      assert.deepStrictEqual(visited.sort(), ["a", "b", "c"])
      assert.deepStrictEqual(yield* retainPass(place, 4, visit, 4), { deleted: 2, more: false })
      assert.deepStrictEqual(visited.sort(), ["a", "b", "c", "d", "e"])
    }))
})

describe.skipIf(!Rd.enabled)("retention, hostile (Redis only)", () => {
  it.effect("a queue whose script fails every time (a wrong-type key under its base) does not keep the others from being cleaned: each is reached within a few calls", () =>
    Effect.gen(function*() {
      const prefix = Rd.freshPrefix()
      yield* Effect.provide(
        Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          const names = Array.from({ length: 40 }, (_, i) => `t${String(i).padStart(2, "0")}`)
          for (const name of names) {
            yield* JobQueue.setRetention(name, { succeeded: { count: 0 } })
            yield* finish(name)
          }
          yield* JobQueue.setRetention("bad", { succeeded: { count: 0 } })
          yield* finish("bad")
          yield* Effect.promise(() => Rd.admin((c) => c.sendCommand(["DEL", `{${prefix}:bad}:final:succeeded`]).then(() => c.sendCommand(["SET", `{${prefix}:bad}:final:succeeded`, "x"]))))
          const outcomes: Array<string> = []
          for (let i = 0; i < 6; i++) {
            const result = yield* Effect.result(store.retain(100, 10))
            outcomes.push(Result.isSuccess(result) ? `ok ${result.success.deleted}` : result.failure._tag)
          }
          assert.include(outcomes, "StoreError", "the bad queue's script fails")
          for (const name of names) assert.strictEqual((yield* JobQueue.stats(name)).succeeded, 0, `${name} cleaned (${outcomes.join(", ")})`)
        }),
        Layer.fresh(Rd.testLayer(prefix))
      )
    }))

  it.effect("a stored retention the store does not read as one (written by hand or another version: a count that is no whole number) limits nothing, as the SQL stores and stats read it, and does not fail the queue's script at every pass", () =>
    Effect.gen(function*() {
      const prefix = Rd.freshPrefix()
      yield* Effect.provide(
        Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          yield* JobQueue.setRetention("hand", { succeeded: { count: 0 } })
          const kept = yield* finish("hand")
          yield* Effect.promise(() => Rd.admin((c) => c.sendCommand(["HSET", `{${prefix}:hand}:meta`, "retention", JSON.stringify({ succeeded: { count: 0.5 } })])))
          assert.strictEqual((yield* JobQueue.stats("hand")).retention, undefined, "stats reads no retention")
          assert.deepStrictEqual(yield* store.retain(100), { deleted: 0, more: false })
          assert.strictEqual((yield* JobQueue.status(kept)).state, "succeeded")
        }),
        Layer.fresh(Rd.testLayer(prefix))
      )
    }))

  it.effect("a repeat's tick deleted by retention leaves no entry in the id index (`{prefix}:ids`), and the same tick can be stored again", () =>
    Effect.gen(function*() {
      const prefix = Rd.freshPrefix()
      yield* Effect.provide(
        Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          yield* JobQueue.setRetention("ticks", { succeeded: { count: 0 } })
          const id = "repeat:every:60000"
          yield* store.enqueue(newJob("ticks", { id }))
          const [claim] = (yield* store.claim({ queues: ["ticks"], tasks: ["Echo"], limit: 1, lease: 60_000 })).claims
          yield* TestClock.adjust(10)
          assert.isTrue(yield* store.settle(claim!.token, { _tag: "Final", state: "succeeded", exit: JSON.stringify({ _tag: "Success", value: 1 }) }))
          assert.strictEqual((yield* store.retain(100)).deleted, 1)
          assert.strictEqual(Number(yield* Effect.promise(() => Rd.admin((c) => c.sendCommand(["HEXISTS", `{${prefix}}:ids`, id])))), 0)
          assert.instanceOf(yield* Effect.flip(JobQueue.status(id)), DurableError.JobNotFound)
          yield* store.enqueue(newJob("ticks", { id }))
          assert.strictEqual((yield* JobQueue.status(id)).state, "queued")
        }),
        Layer.fresh(Rd.testLayer(prefix))
      )
    }))

  it.effect("a queue emptied by its retention (its keys dropped, out of the list) keeps its retention: jobs enqueued after are retained too, and one whose retention was removed and set again is visited again", () =>
    Effect.provide(
      Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        yield* JobQueue.setRetention("q", { succeeded: { count: 0 } })
        yield* finish("q")
        assert.strictEqual((yield* store.retain(100)).deleted, 1)
        yield* finish("q")
        assert.strictEqual((yield* store.retain(100)).deleted, 1)
        yield* JobQueue.setRetention("q", undefined)
        const kept = yield* finish("q")
        assert.strictEqual((yield* store.retain(100)).deleted, 0)
        assert.strictEqual((yield* JobQueue.status(kept)).state, "succeeded")
        yield* JobQueue.setRetention("q", { succeeded: { age: 0 } })
        yield* TestClock.adjust(1)
        assert.strictEqual((yield* store.retain(100)).deleted, 1)
        assert.deepStrictEqual((yield* JobQueue.stats("q")).retention, { succeeded: { age: 0 } })
      }),
      Layer.fresh(Rd.testLayer())
    ))
})
