/**
 * A thread's offer cells (protocol.ts's `Offer`) when an offer's message never reaches the thread:
 * its payload cannot be cloned (postMessage throws DataCloneError). The thread never reads such an
 * offer, so no cell of it may wait for the thread's read; and its job, which has failed with
 * TaskCodecError already, ends once. `Hold` keeps a thread busy so that the tasks behind it are
 * offered; a spy on `Threads.offer` counts the offers each thread gets.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Option } from "effect"
import type { PoolError } from "../src/index.ts"
import type * as ThreadPool from "../src/ThreadPool.ts"
import { IntMap } from "../src/internal/intMap.ts"
import { MAX_OFFERS, type Thread, Threads } from "../src/internal/threads.ts"
import { Count, Echo, Hold, Passthrough, Progress } from "./fixtures/tasks.ts"
import { schedulerOf } from "../src/internal/scheduler.ts"
import { addsUp, makeReleasingPool as makePool } from "./fixtures/pool.ts"
import { settle, waitFor } from "./helpers.ts"

/** Offers made per thread, and of which task, while the test runs (`Threads.offer`). */
const watchOffers = Effect.acquireRelease(
  Effect.sync(() => {
    const { offer } = Threads.prototype
    const watched = { offers: [] as Array<{ readonly thread: Thread; readonly task: string }>, offer }
    Threads.prototype.offer = function(this: Threads, thread: Thread, task: string, ...rest) {
      watched.offers.push({ thread, task })
      return offer.call(this, thread, task, ...rest)
    }
    return watched
  }),
  (watched) => Effect.sync(() => void (Threads.prototype.offer = watched.offer))
)

type Pool = Effect.Success<ReturnType<typeof makePool>>["pool"]

/** A payload that encodes (its Schema is `Unknown`) but cannot be cloned: a function. */
const uncloneable = { value: () => 1, ok: true } as const

/** One `Hold` per thread (slot 0 counts them started, slot 1 lets them go): every thread busy. */
const holdEach = (pool: Pool, counters: Int32Array, threads: number) =>
  Effect.gen(function*() {
    Atomics.store(counters, 0, 0)
    Atomics.store(counters, 1, 0)
    const holds = yield* Effect.forEach(Array.from({ length: threads }), () => pool.submit(Hold, { mark: 0, release: 1 }))
    yield* waitFor(Effect.sync(() => Atomics.load(counters, 0)), "every thread holds a task", { until: (n) => n === threads })
    return holds
  })

describe("ThreadPool: offers whose message cannot be sent", () => {
  /**
   * Rounds of a `Hold` per thread with bad tasks behind, each round offering each thread at least
   * MIN_OFFERS (2) of them: more in all than a thread has cells (tasksPerThread + MAX_OFFERS). Then a
   * burst of short tasks behind busy threads: each thread must take offers still. Without the fix,
   * a thread is offered nothing once each of its cells has held a bad offer the pool confirmed.
   */
  const spendCells = (options: Partial<ThreadPool.Options>, payload: unknown) =>
    Effect.gen(function*() {
      const watched = yield* watchOffers
      const threads = 2
      const { counters, pool } = yield* makePool({ threads, timeout: "30 seconds", ...options })
      let bad = 0
      for (let round = 0; round < MAX_OFFERS; round++) {
        const holds = yield* holdEach(pool, counters, threads)
        const handles = yield* Effect.forEach(Array.from({ length: 4 * threads }), () => pool.submit(Passthrough, { value: payload, ok: true }))
        yield* settle
        Atomics.store(counters, 1, 1)
        yield* Effect.forEach(holds, (h) => h.await, { discard: true })
        for (const handle of handles) {
          const error = (yield* Effect.flip(handle.await)) as PoolError.TaskCodecError
          assert.strictEqual(error._tag, "TaskCodecError")
          assert.strictEqual(error.part, "payload")
          bad++
        }
      }
      const offeredBad = new Map<Thread, number>()
      for (const { task, thread } of watched.offers) {
        if (task === Passthrough.name) offeredBad.set(thread, (offeredBad.get(thread) ?? 0) + 1)
      }
      assert.strictEqual(offeredBad.size, threads, "both threads were offered bad tasks")
      for (const [thread, n] of offeredBad) {
        assert.isAbove(n, thread.cells.length, `thread ${thread.index} was offered more bad tasks than it has cells`)
      }
      const before = watched.offers.length
      const holds = yield* holdEach(pool, counters, threads)
      const echoes = yield* Effect.forEach(Array.from({ length: 8 * threads }, (_, i) => String(i)), (s) => pool.submit(Echo, s))
      yield* settle
      const offeredTo = new Set(watched.offers.slice(before).map((o) => o.thread))
      Atomics.store(counters, 1, 1)
      yield* Effect.forEach(holds, (h) => h.await, { discard: true })
      assert.deepStrictEqual(yield* Effect.forEach(echoes, (h) => h.await), Array.from({ length: 8 * threads }, (_, i) => `echo ${i}`))
      assert.strictEqual(offeredTo.size, threads, "every thread took offers of the burst")
      const stats = yield* pool.stats
      assert.strictEqual(stats.failed, bad, "each bad task failed once")
      assert.isTrue(addsUp(stats), JSON.stringify(stats))
    })

  it.live("more uncloneable offers than a thread has cells: each fails once with TaskCodecError, and every thread still takes offers", () =>
    spendCells({}, uncloneable.value), 120_000)

  // the thread's sync finds them lost (ThreadPool's `lost`/`synced`): a main thread with 1 or 4 MB of
  // stack sends an array nested 2,500 deep, which a thread with half a megabyte cannot read
  it.live("more offers the thread cannot deserialize than it has cells: each fails once, and every thread still takes offers", () => {
    let deep: unknown = 0
    for (let i = 0; i < 2500; i++) deep = [deep]
    return spendCells({ resourceLimits: { stackSizeMb: 0.5 } }, deep)
  }, 120_000)

  it.live("shutdownNow with an uncloneable offer listed: it fails once with TaskCodecError, and is not among the unstarted", () =>
    Effect.gen(function*() {
      const watched = yield* watchOffers
      const { counters, pool } = yield* makePool({ threads: 1, timeout: "30 seconds" })
      const [hold] = yield* holdEach(pool, counters, 1)
      const bad = yield* pool.submit(Passthrough, uncloneable)
      const good = yield* pool.submit(Echo, "unstarted")
      yield* settle
      assert.deepStrictEqual(watched.offers.map((o) => o.task), [Passthrough.name, Echo.name], "both offered")
      const unstarted = yield* pool.shutdownNow
      assert.deepStrictEqual(unstarted.map((u) => u.id), [good.id], "the good offer comes back unstarted; the bad one failed")
      const error = (yield* Effect.flip(bad.await)) as PoolError.TaskCodecError
      assert.strictEqual(error._tag, "TaskCodecError")
      assert.strictEqual(error.part, "payload")
      assert.isTrue(Exit.isFailure(yield* Effect.exit(hold!.await)))
      const stats = yield* pool.stats
      assert.strictEqual(stats.failed, 1, JSON.stringify(stats))
      assert.isTrue(addsUp(stats), JSON.stringify(stats))
    }), 60_000)
})

/**
 * Ids near the bounds of what the pool keys by: a thread's task ids (its `inflight`, its progress
 * IntMap, an offer cell's 28 bits of id) and the pool's job ids (prefetch's IntMaps by job id) past
 * 2^28, 2^31 and 2^32, as a pool running for long reaches them. Offers go out (the threads are
 * busy), and each task's answer and progress report reach its own job.
 */
describe("ThreadPool: task and job ids near their bounds", () => {
  for (const bound of [2 ** 28, 2 ** 31, 2 ** 32]) {
    it.live(`thread task ids and job ids across ${bound}: every offered task answers its own job, progress included`, () =>
      Effect.gen(function*() {
        const watched = yield* watchOffers
        const threads = 2
        const { counters, pool } = yield* makePool({ threads, timeout: "30 seconds" })
        // the pool's job counter, and each thread's task counter when it first gets a task
        // a thread gets at least its Hold of each round: its ids cross the bound however the others spread
        ;(schedulerOf(pool) as unknown as { nextSeq: number }).nextSeq = bound - 40
        const { takeNow } = Threads.prototype
        const seen = new Set<Thread>()
        yield* Effect.acquireRelease(
          Effect.sync(() => {
            Threads.prototype.takeNow = function(this: Threads) {
              const thread = takeNow.call(this)
              if (thread !== undefined && !seen.has(thread)) {
                seen.add(thread)
                thread.nextId = bound - 2
              }
              return thread
            }
          }),
          () => Effect.sync(() => void (Threads.prototype.takeNow = takeNow))
        )
        for (let round = 0; round < 3; round++) {
          const holds = yield* holdEach(pool, counters, threads)
          const n = 120
          const handles = yield* Effect.forEach(Array.from({ length: n }, (_, i) => round * 1000 + i), (i) => pool.submit(Progress, i))
          yield* settle
          Atomics.store(counters, 1, 1)
          yield* Effect.forEach(holds, (h) => h.await, { discard: true })
          const results = yield* Effect.forEach(handles, (h) => h.await)
          assert.deepStrictEqual(results, Array.from({ length: n }, (_, i) => round * 1000 + i))
          for (const [i, h] of handles.entries()) {
            assert.deepStrictEqual(yield* h.progress, Option.some(round * 1000 + i), `progress of task ${i}`)
          }
        }
        assert.isAbove(watched.offers.filter((o) => o.task === Progress.name).length, 0, "tasks were offered")
        assert.strictEqual(seen.size, threads)
        for (const thread of seen) assert.isAbove(thread.nextId, bound + 1, "the thread's task ids crossed the bound")
        assert.isAbove((schedulerOf(pool) as unknown as { nextSeq: number }).nextSeq, bound + 1, "job ids crossed the bound")
        const stats = yield* pool.stats
        assert.strictEqual(stats.succeeded, 3 * 120 + 3 * threads)
        assert.isTrue(addsUp(stats), JSON.stringify(stats))
      }), 60_000)
  }
})

describe("IntMap with ids past 2^31 and 2^32", () => {
  it("keeps ids apart that share their low 32 bits or sit at the int32 bounds, through growth and deletions", () => {
    const map = new IntMap<number>()
    const model = new Map<number, number>()
    const ids: Array<number> = []
    for (const base of [0, 2 ** 31 - 8, 2 ** 31, 2 ** 32 - 8, 2 ** 32, 2 ** 33 + 3, 2 ** 53 - 64]) {
      for (let k = 0; k < 16; k++) ids.push(base + k)
    }
    // the same low bits as small ids: they hash to the same slots
    for (let k = 0; k < 16; k++) ids.push(2 ** 32 * 3 + k)
    let step = 0
    for (const id of ids) {
      map.set(id, ++step)
      model.set(id, step)
    }
    const check = () => {
      assert.strictEqual(map.size, model.size)
      for (const id of ids) {
        assert.strictEqual(map.get(id), model.get(id), `get ${id}`)
        assert.strictEqual(map.has(id), model.has(id), `has ${id}`)
      }
    }
    check()
    for (const [i, id] of ids.entries()) {
      if (i % 3 === 0) {
        assert.strictEqual(map.delete(id), true)
        model.delete(id)
      }
    }
    check()
    // reused: set again after deletion, and overwritten
    for (const [i, id] of ids.entries()) {
      if (i % 2 === 0) {
        map.set(id, -i)
        model.set(id, -i)
      }
    }
    check()
    for (const id of ids) {
      assert.strictEqual(map.delete(id), model.delete(id))
    }
    check()
    assert.strictEqual(map.size, 0)
  })
})

/**
 * Uncloneable offers (claimed as unread, see threads.ts's `unread`) listed among good ones on both
 * threads, then one thread exits, or the pool shrinks, or shuts down now: each bad task fails once
 * with TaskCodecError, each good one (`Count n` adds 1 to slot n) runs at most once and ends once,
 * and what shutdownNow returns never ran.
 */
describe("ThreadPool: unread offers beside good ones, as threads go", () => {
  for (const how of ["a thread exits", "resize to 1", "shutdownNow"] as const) {
    it.live(`${how}: each task ends once, the bad ones failed, the good ones run at most once`, () =>
      Effect.gen(function*() {
        const watched = yield* watchOffers
        const threads = 2
        const { counters, pool } = yield* makePool({ threads, timeout: "30 seconds" })
        const holds = yield* holdEach(pool, counters, threads)
        // offered in turn to the least loaded thread: [bad, Count 3] to one, [Count 2, bad] to the other
        const order = ["bad", 2, 3, "bad", 4, 5, "bad", 6, 7] as const
        const handles = []
        for (const item of order) {
          handles.push(item === "bad" ? yield* pool.submit(Passthrough, uncloneable) : yield* pool.submit(Count, item))
        }
        yield* settle
        const offered = new Set(watched.offers.map((o) => o.thread))
        assert.strictEqual(offered.size, threads, "both threads hold offers")
        let unstartedIds: Array<number> = []
        if (how === "a thread exits") {
          const [first] = offered
          yield* Effect.promise(() => first!.worker.terminate())
        } else if (how === "resize to 1") {
          yield* pool.resize(1)
        } else {
          unstartedIds = (yield* pool.shutdownNow).map((u) => u.id)
        }
        Atomics.store(counters, 1, 1)
        yield* Effect.forEach(holds, (h) => Effect.exit(h.await), { discard: true })
        for (const [k, item] of order.entries()) {
          const handle = handles[k]!
          const exit = yield* Effect.exit(handle.await as Effect.Effect<unknown, unknown>)
          if (item === "bad") {
            const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail")?.error : undefined
            const failed = (error as PoolError.TaskCodecError | undefined)?._tag === "TaskCodecError"
            // the first two were offered (their message failed); the last one may still be queued
            if (k < 6) assert.isFalse(unstartedIds.includes(handle.id), `offered bad task ${k} is not returned unstarted`)
            assert.isTrue(failed !== unstartedIds.includes(handle.id), `bad task ${k} failed with TaskCodecError or came back unstarted, not both: ${String(exit)}`)
          } else {
            const ran = Atomics.load(counters, item)
            assert.isAtMost(ran, 1, `Count ${item} ran at most once`)
            if (unstartedIds.includes(handle.id)) assert.strictEqual(ran, 0, `Count ${item}, returned unstarted, never ran`)
            if (Exit.isSuccess(exit)) assert.strictEqual(ran, 1, `Count ${item} succeeded having run`)
            if (how !== "shutdownNow") assert.deepStrictEqual(exit, Exit.succeed(item), `Count ${item}`)
          }
        }
        const stats = yield* pool.stats
        assert.isTrue(addsUp(stats), JSON.stringify(stats))
        assert.strictEqual(stats.running + stats.queued, 0, JSON.stringify(stats))
      }), 60_000)
  }
})
