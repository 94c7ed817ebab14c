import { assert, describe, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber, Stream } from "effect"
import { TestClock } from "effect/testing"
import { WorkPool } from "../src/index.ts"
import { makeGauge, settle } from "./helpers.ts"

describe("submit", () => {
  it.effect("a handle reports status and awaits the result", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const first = yield* pool.submit(Effect.as(Effect.sleep("1 second"), "first"))
      const second = yield* pool.submit(Effect.succeed("second"))
      assert.notStrictEqual(first.id, second.id)
      assert.deepStrictEqual([yield* first.status, yield* second.status], ["running", "queued"])
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual([yield* first.await, yield* second.await], ["first", "second"])
      assert.deepStrictEqual([yield* first.status, yield* second.status], ["succeeded", "succeeded"])
      // awaiting twice, from two fibers, gives the same result
      assert.deepStrictEqual(yield* Effect.all([first.await, first.await], { concurrency: 2 }), ["first", "first"])
    }))

  it.effect("the await of a queued job is one Effect: run many times, from many fibers, before and after the job ends", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const gate = yield* Deferred.make<void>()
      yield* pool.submit(Deferred.await(gate))
      const handle = yield* pool.submit(Effect.succeed("queued"))
      // taken once, while the job is queued, then run by several fibers
      const awaiting = handle.await
      const first = yield* Effect.forkChild(awaiting)
      const second = yield* Effect.forkChild(awaiting)
      const interrupted = yield* Effect.forkChild(awaiting)
      yield* settle
      yield* Fiber.interrupt(interrupted)
      assert.strictEqual(yield* handle.status, "queued")
      yield* Deferred.succeed(gate, undefined)
      assert.deepStrictEqual([yield* Fiber.join(first), yield* Fiber.join(second)], ["queued", "queued"])
      // and again once the job has ended
      assert.strictEqual(yield* awaiting, "queued")
      assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(interrupted)))
    }))

  it.effect("the handles of every pool are of one class, whatever each job's timeout", () =>
    Effect.gen(function*() {
      // a class per pool (or per option) would give the scheduler's code a hidden class per pool:
      // polymorphic once a process has a few pools, and a trivial job about 15% slower
      const a = yield* WorkPool.make({ concurrency: 1 })
      const b = yield* WorkPool.make({ concurrency: 1, timeout: "1 second", shutdownTimeout: 0 })
      const handles = [
        yield* a.submit(Effect.void),
        yield* b.submit(Effect.void),
        yield* b.submit(Effect.never, { timeout: "1 minute" })
      ]
      assert.strictEqual(new Set(handles.map((h) => Object.getPrototypeOf(h))).size, 1)
      // the job with its own timeout keeps it, the others have their pool's
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* handles[2]!.status, "running")
      yield* TestClock.adjust("59 seconds")
      assert.strictEqual(yield* handles[2]!.status, "timedOut")
    }))

  it.effect("the job lives under the pool's scope, not the submitter's", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const submitter = yield* Effect.forkChild(pool.submit(Effect.as(Effect.sleep("1 second"), "outlived")))
      const handle = yield* Fiber.join(submitter)
      yield* Effect.scoped(Effect.void) // the submitter and any scope of it are gone
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* handle.await, "outlived")
    }))

  it.effect("interrupt stops a running job and its awaiters see an interruption", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const finalized = yield* Deferred.make<void>()
      const handle = yield* pool.submit(Effect.never.pipe(Effect.ensuring(Deferred.succeed(finalized, undefined))))
      const waiter = yield* Effect.forkChild(Effect.exit(handle.await))
      yield* settle
      yield* handle.interrupt
      assert.isTrue(yield* Deferred.isDone(finalized))
      assert.strictEqual(yield* handle.status, "interrupted")
      const exit = yield* Fiber.join(waiter)
      assert.isTrue(Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause))
      yield* handle.interrupt // idempotent
      assert.strictEqual((yield* pool.stats).interrupted, 1)
    }))

  it.effect("interrupting a queued handle removes it", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, paused: true })
      const handle = yield* pool.submit(Effect.succeed(1))
      yield* handle.interrupt
      assert.strictEqual(yield* handle.status, "interrupted")
      assert.strictEqual((yield* pool.stats).queued, 0)
    }))
})

describe("awaiting handles", () => {
  it.effect("an awaiter of handles in order, while a burst of jobs ends, is resumed once for the burst", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const gate = yield* Deferred.make<void>()
      const log: Array<string> = []
      const blocker = yield* pool.submit(Deferred.await(gate))
      const handles: Array<WorkPool.JobHandle<number, never>> = []
      for (let i = 0; i < 3; i++) handles.push(yield* pool.submit(Effect.sync(() => (log.push(`ran ${i}`), i))))
      const awaiter = yield* Effect.forkChild(Effect.gen(function*() {
        yield* blocker.await
        for (const handle of handles) log.push(`awaited ${yield* handle.await}`)
      }))
      yield* settle
      yield* Deferred.succeed(gate, void 0)
      yield* Fiber.join(awaiter)
      // resumed on its own scheduler once the blocker ended, not inside each job's ending: by then
      // the queued jobs have run (with a resume per ending it would be ran 0, awaited 0, ran 1, ...)
      assert.deepStrictEqual(log, ["ran 0", "ran 1", "ran 2", "awaited 0", "awaited 1", "awaited 2"])
      // the results are each job's own
      assert.deepStrictEqual(yield* Effect.forEach(handles, (handle) => handle.await), [0, 1, 2])
    }))

  it.effect("an awaiter interrupted after its job ended, before it was resumed, is interrupted", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const gate = yield* Deferred.make<void>()
      const handle = yield* pool.submit(Effect.as(Deferred.await(gate), "done"))
      const awaiter = yield* Effect.forkChild(handle.await)
      yield* settle
      // the job ends and the awaiter's resume is scheduled; the interruption comes first
      yield* Effect.sync(() => Effect.runFork(Deferred.succeed(gate, void 0)))
      assert.strictEqual(yield* handle.status, "succeeded")
      yield* Fiber.interrupt(awaiter)
      const exit = yield* Fiber.await(awaiter)
      // interrupted, and the resume scheduled for it is dropped (it does not end the fiber twice)
      assert.isTrue(Exit.hasInterrupts(exit))
      yield* Effect.yieldNow
      assert.strictEqual(yield* handle.await, "done")
    }))
})

describe("runAll", () => {
  it.effect("returns results in input order, bounded by the pool", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 3 })
      const gauge = yield* makeGauge
      // later jobs finish first
      const jobs = Array.from({ length: 10 }, (_, i) => gauge.track(Effect.as(Effect.sleep(`${10 - i} seconds`), i)))
      const fiber = yield* Effect.forkChild(pool.runAll(jobs))
      for (let i = 0; i < 40; i++) yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* Fiber.join(fiber), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
      assert.strictEqual((yield* gauge.get).peak, 3)
    }))

  it.effect("more jobs than the queue holds go through with backpressure", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2, capacity: 3 })
      const results = yield* pool.runAll(Array.from({ length: 100 }, (_, i) => Effect.succeed(i)))
      assert.deepStrictEqual(results, Array.from({ length: 100 }, (_, i) => i))
    }))

  it.effect("the first failure interrupts the other jobs and is returned once they stopped", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2, capacity: 2 })
      let finalized = 0
      let started = 0
      const slow = Effect.sleep("1 hour").pipe(
        Effect.ensuring(Effect.sync(() => finalized++)),
        Effect.tap(() => Effect.sync(() => started++))
      )
      const jobs = [slow, Effect.fail("boom" as const).pipe(Effect.delay("1 second")), slow, slow, slow, slow]
      const fiber = yield* Effect.forkChild(Effect.flip(pool.runAll(jobs)))
      yield* settle
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Fiber.join(fiber), "boom")
      // the running slow jobs were interrupted (finalizers ran), the others never started
      assert.strictEqual(started, 0)
      assert.strictEqual(finalized, 2)
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.running, stats.queued, stats.waiting], [0, 0, 0])
    }))

  it.effect("interrupting the caller stops every job it submitted", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2, capacity: 2 })
      let finalized = 0
      const jobs = Array.from({ length: 10 }, () => Effect.never.pipe(Effect.ensuring(Effect.sync(() => finalized++))))
      const fiber = yield* Effect.forkChild(pool.runAll(jobs))
      yield* settle
      assert.deepStrictEqual([(yield* pool.stats).running, (yield* pool.stats).queued], [2, 2])
      yield* Fiber.interrupt(fiber)
      assert.strictEqual(finalized, 2)
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.running, stats.queued, stats.waiting, stats.interrupted], [0, 0, 0, 5])
    }))

  it.effect("an empty list gives an empty array", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2 })
      assert.deepStrictEqual(yield* pool.runAll(new Array<Effect.Effect<number>>()), [])
    }))
})

describe("mapStream", () => {
  it.effect("runs each element as a job, in input order", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 3 })
      const gauge = yield* makeGauge
      const fiber = yield* Effect.forkChild(
        Stream.range(1, 12).pipe(
          WorkPool.mapStream(pool, (n) => gauge.track(Effect.as(Effect.sleep(`${13 - n} seconds`), n * n))),
          Stream.runCollect
        )
      )
      for (let i = 0; i < 60; i++) yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* Fiber.join(fiber), Array.from({ length: 12 }, (_, i) => (i + 1) * (i + 1)))
      assert.strictEqual((yield* gauge.get).peak, 3)
    }))

  it.effect("unordered emits in completion order", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 3 })
      const fiber = yield* Effect.forkChild(
        Stream.make(3, 1, 2).pipe(
          WorkPool.mapStream(pool, (n) => Effect.as(Effect.sleep(`${n} seconds`), n), { unordered: true }),
          Stream.runCollect
        )
      )
      for (let i = 0; i < 3; i++) yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* Fiber.join(fiber), [1, 2, 3])
    }))

  it.effect("data-first form", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2 })
      const out = yield* Stream.runCollect(WorkPool.mapStream(Stream.make(1, 2), pool, (n) => Effect.succeed(-n)))
      assert.deepStrictEqual(out, [-1, -2])
    }))
})
