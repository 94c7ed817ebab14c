import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { ThreadPool, WorkPool } from "../src/index.ts"
import { Echo } from "./fixtures/tasks.ts"
import { settle, waitFor } from "./helpers.ts"

describe("review", () => {
  it.effect("capacity 0: a submitter that loops on run does not starve a suspended submitter", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, capacity: 0, shutdownTimeout: 0 })
      // a plain loop: each run is submitted as soon as the previous job's result arrives
      yield* Effect.forkChild(Effect.gen(function*() {
        while (true) yield* pool.run(Effect.sleep("1 second"))
      }))
      yield* settle
      const waiter = yield* Effect.forkChild(pool.run(Effect.succeed("my turn")))
      yield* settle
      assert.strictEqual((yield* pool.stats).waiting, 1)
      // it waited first: it must get the worker when the running job ends
      for (let i = 0; i < 5; i++) yield* TestClock.adjust("1 second")
      assert.isDefined(waiter.pollUnsafe(), "the suspended submitter was never admitted")
    }))

  it.effect("dropOldest: the queue never holds more than `capacity` jobs", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, capacity: 1, overflow: "dropOldest" })
      const gate = yield* Deferred.make<void>()
      yield* pool.submit(Deferred.await(gate))
      // a caller that resubmits when its job is dropped
      yield* Effect.forkChild(
        pool.run(Effect.succeed("a")).pipe(Effect.catchTag("JobDropped", () => pool.submit(Effect.succeed("retry"))))
      )
      yield* settle
      assert.strictEqual((yield* pool.stats).queued, 1)
      yield* pool.submit(Effect.succeed("b")) // drops "a"
      assert.isAtMost((yield* pool.stats).queued, 1, "capacity 1 exceeded")
    }))

  it.effect("shutdownNow returns every never-started job, including those of a runAll", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, paused: true })
      yield* Effect.forkChild(Effect.exit(pool.runAll([Effect.succeed(1), Effect.succeed(2), Effect.succeed(3)])))
      yield* settle
      assert.strictEqual((yield* pool.stats).queued, 3)
      const unstarted = yield* pool.shutdownNow
      assert.strictEqual(unstarted.length, 3)
    }))

  it.effect("interrupting the caller of a job that is starting interrupts the job", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const gate = yield* Deferred.make<void>()
      yield* pool.submit(Deferred.await(gate))
      const started = yield* Deferred.make<void>()
      let finalized = false
      // queued now; started by the pump when the blocker ends
      const caller = yield* Effect.forkChild(
        pool.run(Deferred.succeed(started, undefined).pipe(
          Effect.andThen(Effect.never),
          Effect.ensuring(Effect.sync(() => (finalized = true)))
        ))
      )
      yield* settle
      const interrupter = yield* Effect.forkChild(
        Effect.andThen(Deferred.await(started), Fiber.interrupt(caller))
      )
      yield* settle
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(interrupter)
      yield* settle
      assert.isTrue(finalized, "the job was not interrupted")
      assert.strictEqual((yield* pool.stats).running, 0)
    }))

  it.effect("runAll: a failure caused by a job as it starts still interrupts that job", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2 })
      const signal = yield* Deferred.make<void, string>()
      const all = yield* Effect.forkChild(Effect.exit(pool.runAll([
        Deferred.await(signal),
        Deferred.fail(signal, "boom").pipe(Effect.andThen(Effect.never))
      ])))
      yield* settle
      yield* TestClock.adjust("1 hour")
      assert.isDefined(all.pollUnsafe(), "runAll hangs: the job that failed the other one was never interrupted")
    }))

  it.effect("interrupting a run caller while its job is being admitted interrupts the job", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const started = yield* Deferred.make<void>()
      let finalized = false
      const caller = yield* Effect.forkChild(
        pool.run(Deferred.succeed(started, undefined).pipe(
          Effect.andThen(Effect.never),
          Effect.ensuring(Effect.sync(() => (finalized = true)))
        ))
      )
      yield* Deferred.await(started)
      yield* Fiber.interrupt(caller)
      yield* settle
      assert.isTrue(finalized, "the caller is gone, its job still runs")
      assert.strictEqual((yield* pool.stats).running, 0)
    }))

  it.effect("graceful shutdown with waiting submitters, one of them a runAll, completes", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, capacity: 1, shutdownTimeout: "1 second" })
      const gate = yield* Deferred.make<void>()
      yield* pool.submit(Deferred.await(gate))
      // "a" queued, "b" waits for room
      const all = yield* Effect.forkChild(Effect.exit(pool.runAll([Effect.succeed("a"), Effect.succeed("b")])))
      yield* settle
      const s1 = yield* Effect.forkChild(Effect.exit(pool.run(Effect.succeed("s1"))))
      const s2 = yield* Effect.forkChild(Effect.exit(pool.run(Effect.succeed("s2"))))
      yield* settle
      assert.deepStrictEqual([(yield* pool.stats).queued, (yield* pool.stats).waiting], [1, 3])
      const closing = yield* Effect.forkChild(Effect.exit(pool.shutdown))
      yield* settle
      yield* Deferred.succeed(gate, undefined)
      yield* TestClock.adjust("1 second")
      yield* settle
      const exit = closing.pollUnsafe()
      assert.isDefined(exit)
      assert.isTrue(Exit.isSuccess(exit!), `shutdown failed: ${String(exit)}`)
      for (const f of [all, s1, s2]) assert.isDefined(f.pollUnsafe(), "an awaiter hangs")
      assert.strictEqual((yield* pool.stats).state, "stopped")
    }))

  it.effect("at the deadline the slot is freed at once: a queued job starts", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, timeout: "1 second" })
      // a job whose cleanup takes a while (closing a connection, say)
      const slow = yield* pool.submit(Effect.never.pipe(Effect.ensuring(Effect.sleep("10 seconds"))))
      const next = yield* pool.submit(Effect.succeed("next"))
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* slow.status, "timedOut")
      yield* settle
      assert.strictEqual(yield* next.status, "succeeded")
    }))

  it.effect("stats: submitted = waiting + queued + running + endings, also while a timed-out job stops", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, timeout: "1 second" })
      yield* pool.submit(Effect.never.pipe(Effect.ensuring(Effect.sleep("10 seconds"))))
      yield* TestClock.adjust("1 second")
      const s = yield* pool.stats
      const total = s.waiting + s.queued + s.running + s.succeeded + s.failed + s.defects + s.timedOut +
        s.interrupted + s.dropped
      assert.strictEqual(total, s.submitted)
    }))

  it.live("threads: shrinking then growing again does not hand a task to the thread being stopped", () =>
    Effect.gen(function*() {
      const pool = yield* ThreadPool.make({ worker: new URL("./fixtures/worker.ts", import.meta.url), threads: 2 })
      yield* waitFor(Effect.map(pool.threads, (n) => n === 2), "two threads")
      yield* pool.resize(1)
      yield* pool.resize(2)
      const exits = yield* Effect.forEach(["a", "b", "c", "d"], (s) => Effect.exit(pool.run(Echo, s)), {
        concurrency: "unbounded"
      })
      assert.deepStrictEqual(exits.map((e) => Exit.isSuccess(e) ? e.value : String(e)), [
        "echo a",
        "echo b",
        "echo c",
        "echo d"
      ])
    }), 30_000)
})
