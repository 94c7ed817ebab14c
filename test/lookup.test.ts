import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Option, Ref } from "effect"
import { TestClock } from "effect/testing"
import { PoolError, WorkPool } from "../src/index.ts"
import { Sleep } from "./fixtures/tasks.ts"
import { makePool } from "./fixtures/pool.ts"
import { fullGc, settle, waitFor } from "./helpers.ts"

const ids = (jobs: ReadonlyArray<WorkPool.JobSummary>) => jobs.map((job) => job.id)

describe("job lookup", () => {
  it.effect("lists jobs by status, looks one up by id and cancels by id", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, retention: { count: 10 } })
      const gate = yield* Deferred.make<void>()
      const released = yield* Ref.make(false)
      const blocker = yield* pool.submit(
        Effect.andThen(Deferred.await(gate), Effect.void).pipe(Effect.ensuring(Ref.set(released, true)))
      )
      const a = yield* pool.submit(Effect.succeed("a"), { priority: 2 })
      const b = yield* pool.submit(Effect.succeed("b"))
      yield* settle
      assert.deepStrictEqual(ids(yield* pool.jobs({ status: "running" })), [blocker.id])
      assert.deepStrictEqual(ids(yield* pool.jobs({ status: "queued" })), [a.id, b.id])
      assert.deepStrictEqual(ids(yield* pool.jobs()), [blocker.id, a.id, b.id])
      const [summary] = yield* pool.jobs({ status: ["queued"] })
      assert.deepStrictEqual(
        { ...summary!, progress: Option.isNone(summary!.progress), exit: Option.isNone(summary!.exit) },
        { id: a.id, status: "queued", priority: 2, attempt: 1, progress: true, exit: true }
      )

      // the handle found by id is the job's own
      const found = Option.getOrThrow(yield* pool.job(a.id))
      assert.strictEqual(found.id, a.id)
      assert.strictEqual(yield* found.status, "queued")
      assert.isTrue(Option.isNone(yield* pool.job(12345)))

      // cancel a queued job, then the running one (its finalizers have run when cancel returns)
      assert.isTrue(yield* pool.cancel(a.id))
      assert.strictEqual(yield* a.status, "interrupted")
      assert.isTrue(yield* pool.cancel(blocker.id))
      assert.isTrue(yield* Ref.get(released))
      assert.isTrue(Exit.hasInterrupts(yield* Effect.exit(blocker.await)))
      assert.strictEqual(yield* b.await, "b")
      // an ended job cannot be cancelled; an unknown id neither
      assert.isFalse(yield* pool.cancel(b.id))
      assert.isFalse(yield* pool.cancel(12345))
      const ended = yield* pool.jobs({ status: ["interrupted", "succeeded"] })
      assert.deepStrictEqual(ended.map((job) => [job.id, job.status]), [
        [blocker.id, "interrupted"],
        [a.id, "interrupted"],
        [b.id, "succeeded"]
      ])
      assert.deepStrictEqual(Option.getOrThrow(ended[2]!.exit), Exit.succeed("b"))
    }))

  it.effect("a job waiting for room, one waiting for a retry and a failed one show as such", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, capacity: 0, retention: { count: 10 } })
      const gate = yield* Deferred.make<void>()
      yield* pool.submit(Deferred.await(gate))
      const waiting = yield* Effect.forkChild(pool.run(Effect.void))
      yield* settle
      assert.deepStrictEqual((yield* pool.jobs({ status: "waiting" })).length, 1)
      yield* Deferred.succeed(gate, void 0)
      yield* settle
      yield* pool.awaitIdle
      yield* Effect.exit(pool.run(Effect.fail("no"), { retry: { times: 1 } }))
      const failed = yield* pool.jobs({ status: "failed" })
      assert.strictEqual(failed.length, 1)
      assert.strictEqual(failed[0]!.attempt, 2)
      assert.deepStrictEqual(Option.getOrThrow(failed[0]!.exit), Exit.fail("no"))
      yield* Fiber.join(waiting)
    }))

  it.effect("a job timed out while its finalizer runs is listed once, ended, and cannot be cancelled again", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, timeout: "100 millis", shutdownTimeout: 0, retention: { count: 10 } })
      const gate = yield* Deferred.make<void>()
      const slow = yield* pool.submit(Effect.never.pipe(Effect.onInterrupt(() => Deferred.await(gate))))
      yield* settle
      yield* TestClock.adjust("100 millis")
      yield* settle
      assert.strictEqual((yield* pool.stats).stopping, 1)
      assert.deepStrictEqual((yield* pool.jobs()).map((job) => [job.id, job.status]), [[slow.id, "timedOut"]])
      assert.isFalse(yield* pool.cancel(slow.id))
      yield* Deferred.succeed(gate, void 0)
      yield* pool.awaitIdle
      assert.deepStrictEqual((yield* pool.jobs()).map((job) => [job.id, job.status]), [[slow.id, "timedOut"]])
    }))

  it.effect("submissions refused before admission are not kept", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, capacity: 0, overflow: "fail", retention: { count: 10 } })
      const gate = yield* Deferred.make<void>()
      yield* pool.submit(Deferred.await(gate))
      const refused = yield* Effect.flip(pool.submit(Effect.void))
      assert.instanceOf(refused, PoolError.QueueFull)
      assert.strictEqual((yield* pool.jobs()).length, 1)
      yield* Deferred.succeed(gate, void 0)
    }))

  it.effect("memory stays flat: many jobs, and the ended ones kept stay at the count", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 4, capacity: Infinity, retention: { count: 100 } })
      const jobs = 5_000
      let last = 0
      for (let round = 0; round < 5; round++) {
        const handles = yield* Effect.forEach(
          Array.from({ length: jobs }, (_, i) => i),
          (i) => pool.submit(Effect.succeed(i))
        )
        last = handles[handles.length - 1]!.id
        yield* pool.awaitIdle
        const kept = yield* pool.jobs()
        assert.strictEqual(kept.length, 100)
        // the most recent ones
        assert.deepStrictEqual(ids(kept), Array.from({ length: 100 }, (_, i) => last - 99 + i))
        assert.isTrue(Option.isNone(yield* pool.job(handles[0]!.id)))
      }
      assert.strictEqual((yield* pool.stats).succeeded, 5 * jobs)
      // by default none is kept, and live jobs stay visible
      const none = yield* WorkPool.make({ concurrency: 1 })
      const gate = yield* Deferred.make<void>()
      const running = yield* none.submit(Deferred.await(gate))
      yield* none.run(Effect.void).pipe(Effect.forkChild)
      yield* settle
      assert.deepStrictEqual((yield* none.jobs()).map((job) => job.status), ["running", "queued"])
      yield* Deferred.succeed(gate, void 0)
      yield* running.await
      yield* none.awaitIdle
      assert.deepStrictEqual(yield* none.jobs(), [])
      assert.isTrue(Option.isNone(yield* none.job(running.id)))
    }))

  it.effect("ended jobs are evicted after the retention's age (TestClock)", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2, retention: { count: 100, age: "1 minute" }, shutdownTimeout: 0 })
      const first = yield* pool.runAll([1, 2, 3].map((i) => Effect.succeed(i)))
      assert.deepStrictEqual(first, [1, 2, 3])
      yield* TestClock.adjust("30 seconds")
      yield* pool.runAll([4, 5].map((i) => Effect.succeed(i)))
      assert.strictEqual((yield* pool.jobs()).length, 5)
      // a live job is never evicted, however long it runs
      const long = yield* pool.submit(Effect.sleep("10 minutes"))
      yield* TestClock.adjust("30 seconds")
      // the first three ended exactly a minute ago: gone
      assert.deepStrictEqual(ids(yield* pool.jobs()), [4, 5, long.id])
      assert.isTrue(Option.isNone(yield* pool.job(1)))
      assert.isTrue(Option.isSome(yield* pool.job(4)))
      yield* TestClock.adjust("30 seconds")
      assert.deepStrictEqual(ids(yield* pool.jobs()), [long.id])
      // it ends at 10 minutes 30 seconds, kept until exactly a minute later
      yield* TestClock.adjust("9 minutes")
      yield* long.await
      assert.deepStrictEqual(ids(yield* pool.jobs()), [long.id])
      yield* TestClock.adjust("59 seconds")
      assert.deepStrictEqual(ids(yield* pool.jobs()), [long.id])
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* pool.jobs(), [])
    }))

  it.effect("invalid retention options and filters are typed errors naming the field", () =>
    Effect.gen(function*() {
      const cases: Array<[unknown, string, string]> = [
        [5, "retention", "5"],
        [{ count: -1 }, "retention.count", "-1"],
        [{ count: 1.5 }, "retention.count", "1.5"],
        [{ count: "10" }, "retention.count", "\"10\""],
        [{ count: 2_000_000 }, "retention.count", "2000000"],
        [{ age: 0 }, "retention.age", "0"],
        [{ age: "soon" }, "retention.age", "\"soon\""],
        // without a count a retention keeps nothing: `{ age }` alone is a mistake, not a choice
        [{ age: "1 hour" }, "retention.count", "undefined"],
        [{}, "retention.count", "undefined"],
        // nor does one of 0, which was taken (the docs promise a retention that keeps none is refused)
        [{ count: 0 }, "retention.count", "0"],
        [{ count: 0, age: "1 hour" }, "retention.count", "0"]
      ]
      for (const [retention, field, value] of cases) {
        const error = yield* Effect.flip(WorkPool.make({ concurrency: 1, retention: retention as any }))
        assert.instanceOf(error, PoolError.InvalidPoolConfig)
        assert.deepStrictEqual([error.field, error.value], [field, value])
      }
      const none = yield* Effect.flip(WorkPool.make({ concurrency: 1, retention: { count: 0 } }))
      assert.include(none.reason, "leave retention out")
      // a ThreadPool's retention is its queue's: the same error, before any thread starts
      const threads = yield* Effect.flip(makePool({ threads: 1, retention: { count: 0 } }))
      assert.deepStrictEqual([threads._tag, "field" in threads && threads.field, threads.reason], [none._tag, none.field, none.reason])
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const bad = yield* Effect.flip(pool.jobs({ status: "done" as any }))
      assert.instanceOf(bad, PoolError.InvalidJobOptions)
      assert.deepStrictEqual([bad.field, bad.value], ["status", "\"done\""])
      const badItem = yield* Effect.flip(pool.jobs({ status: ["queued", 3 as any] }))
      assert.deepStrictEqual([badItem.field, badItem.value], ["status[1]", "3"])
      const notObject = yield* Effect.flip(pool.jobs("queued" as any))
      assert.strictEqual(notObject.field, "filter")
    }))
})

describe("what an ended job keeps", () => {
  const collect = fullGc

  it.live("a job that ran lets its Effect and its closures go, though its handle and the pool keep it", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, retention: { count: 10 } })
      const refs: Array<WeakRef<object>> = []
      // made outside this generator, whose frame would hold the last one
      const makeJob = (i: number) => {
        const big = { payload: new Array(1000).fill(i) }
        refs.push(new WeakRef(big))
        // an Effect.sync (no fiber) and fiber jobs
        return i === 0 ? Effect.sync(() => big.payload.length) : Effect.map(Effect.yieldNow, () => big.payload.length)
      }
      const handles: Array<WorkPool.JobHandle<number, never>> = []
      for (let i = 0; i < 3; i++) handles.push(yield* pool.submit(makeJob(i)))
      for (const handle of handles) assert.strictEqual(yield* handle.await, 1000)
      yield* collect
      assert.deepStrictEqual(refs.map((ref) => ref.deref() === undefined), [true, true, true])
      // still listed, with their results
      assert.deepStrictEqual((yield* pool.jobs()).map((job) => job.status), ["succeeded", "succeeded", "succeeded"])
      assert.strictEqual(yield* handles[2]!.await, 1000)
    }))
})

describe("job lookup: pages", () => {
  it.effect("limit and after page through the jobs in id order, with the status filter", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, capacity: 100, retention: { count: 100 } })
      const gate = yield* Deferred.make<void>()
      const blocker = yield* pool.submit(Deferred.await(gate))
      const done: Array<number> = []
      for (let i = 0; i < 3; i++) done.push((yield* pool.submit(Effect.void)).id)
      yield* Deferred.succeed(gate, void 0)
      yield* pool.awaitIdle
      const gate2 = yield* Deferred.make<void>()
      const blocker2 = yield* pool.submit(Deferred.await(gate2))
      const queued: Array<number> = []
      for (let i = 0; i < 5; i++) queued.push((yield* pool.submit(Effect.void)).id)
      yield* settle
      const all = [blocker.id, ...done, blocker2.id, ...queued]

      // every page, by the last id of the one before
      const pages: Array<Array<number>> = []
      let after: number | undefined = undefined
      for (let n = 0; n < 10; n++) {
        const page: ReadonlyArray<WorkPool.JobSummary> = yield* pool.jobs({ limit: 3, after })
        if (page.length === 0) break
        pages.push(ids(page))
        after = page[page.length - 1]!.id
      }
      assert.deepStrictEqual(pages, [all.slice(0, 3), all.slice(3, 6), all.slice(6, 9), all.slice(9)])
      // the filter applies before the limit: a page holds `limit` jobs of that status if there are
      assert.deepStrictEqual(ids(yield* pool.jobs({ status: "queued", limit: 2 })), queued.slice(0, 2))
      assert.deepStrictEqual(ids(yield* pool.jobs({ status: "queued", limit: 2, after: queued[1] })), queued.slice(2, 4))
      assert.deepStrictEqual(ids(yield* pool.jobs({ status: ["succeeded", "running"], after: done[1] })), [done[2], blocker2.id])
      // after the last job: an empty page; after 0: from the first
      assert.deepStrictEqual(ids(yield* pool.jobs({ after: all[all.length - 1] })), [])
      assert.deepStrictEqual(ids(yield* pool.jobs({ limit: 1, after: 0 })), [blocker.id])
      yield* Deferred.succeed(gate2, void 0)
    }))

  it.effect("a bad limit or after fails with InvalidJobOptions naming it", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const cases: Array<[WorkPool.JobFilter, string, string]> = [
        [{ limit: 0 }, "limit", "0"],
        [{ limit: 1.5 }, "limit", "1.5"],
        [{ limit: "10" as any }, "limit", "\"10\""],
        [{ after: -1 }, "after", "-1"],
        [{ after: Number.NaN }, "after", "NaN"],
        [{ after: "5" as any }, "after", "\"5\""]
      ]
      for (const [filter, field, value] of cases) {
        const error = yield* Effect.flip(pool.jobs(filter))
        assert.instanceOf(error, PoolError.InvalidJobOptions)
        assert.deepStrictEqual([error.field, error.value], [field, value])
      }
      // no limit: every job; Infinity says so too
      const forever = yield* pool.submit(Effect.never)
      assert.strictEqual((yield* pool.jobs({ limit: Infinity })).length, 1)
      yield* forever.interrupt
    }))
})

describe("job lookup: ThreadPool", () => {
  it.live("lists a running task and cancels it by id; the thread goes on", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1, retention: { count: 10 } })
      const sleeping = yield* pool.submit(Sleep, { millis: 600_000, mark: 0 })
      yield* waitFor(pool.stats, "the sleep runs", { until: (s) => s.running === 1 })
      assert.deepStrictEqual(ids(yield* pool.jobs({ status: "running" })), [sleeping.id])
      assert.isTrue(Option.isSome(yield* pool.job(sleeping.id)))
      assert.isTrue(yield* pool.cancel(sleeping.id).pipe(Effect.timeout("20 seconds")))
      assert.strictEqual(yield* sleeping.status, "interrupted")
      assert.deepStrictEqual((yield* pool.jobs()).map((job) => job.status), ["interrupted"])
    }))
})
