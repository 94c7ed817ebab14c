/**
 * Reentrancy and races: listeners and awaiters run synchronously inside the scheduler, so each
 * test here makes a callback act on the pool at an awkward moment (during admission, while a job
 * starts, while a shutdown is under way) and checks that the guarantees of DESIGN.md still hold.
 * The pools use `shutdownTimeout: 0` where a stuck job would otherwise make the test's scope wait
 * for the TestClock.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Exit, Fiber, Schedule, Scope } from "effect"
import { TestClock } from "effect/testing"
import { WorkPool } from "../src/index.ts"
import * as ThreadPool from "../src/ThreadPool.ts"
import { Sleep } from "./fixtures/tasks.ts"
import { settle, waitFor } from "./helpers.ts"

/** The TestClock, counting the sleeps under way: the pool's timers and upkeep sleeps. */
const countingClock = Effect.gen(function*() {
  const base = yield* Clock.Clock
  const state = { sleeping: 0 }
  const clock: Clock.Clock = {
    currentTimeMillisUnsafe: () => base.currentTimeMillisUnsafe(),
    currentTimeMillis: base.currentTimeMillis,
    currentTimeNanosUnsafe: () => base.currentTimeNanosUnsafe(),
    currentTimeNanos: base.currentTimeNanos,
    monotonicTimeNanosUnsafe: () => base.monotonicTimeNanosUnsafe(),
    monotonicTimeNanos: base.monotonicTimeNanos,
    sleep: (duration) =>
      Effect.suspend(() => {
        state.sleeping++
        return base.sleep(duration).pipe(Effect.ensuring(Effect.sync(() => state.sleeping--)))
      })
  }
  return { clock, state }
})

/** A job that signals `started`, then runs until it is interrupted; `onStop` runs as it stops. */
const signalsThenHangs = (started: Deferred.Deferred<void>, onStop: () => void) =>
  Deferred.succeed(started, undefined).pipe(Effect.andThen(Effect.never), Effect.ensuring(Effect.sync(onStop)))

describe("reentrancy and races: admission and the queue", () => {
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
      const pool = yield* WorkPool.make({ concurrency: 1, capacity: 1, overflow: "dropOldest", shutdownTimeout: 0 })
      const gate = yield* Deferred.make<void>()
      yield* pool.submit(Deferred.await(gate))
      // a caller that submits again when its job is dropped
      yield* Effect.forkChild(
        pool.run(Effect.succeed("a")).pipe(Effect.catchTag("JobDropped", () => pool.submit(Effect.succeed("retry"))))
      )
      yield* settle
      assert.strictEqual((yield* pool.stats).queued, 1)
      yield* pool.submit(Effect.succeed("b")) // drops "a"
      assert.isAtMost((yield* pool.stats).queued, 1, "capacity 1 exceeded")
    }))
})

describe("reentrancy and races: cancellation", () => {
  it.effect("interrupting the caller of a job that is starting interrupts the job", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, shutdownTimeout: 0 })
      const gate = yield* Deferred.make<void>()
      yield* pool.submit(Deferred.await(gate))
      const started = yield* Deferred.make<void>()
      let finalized = false
      // queued now; started by the pump when the blocker ends
      const caller = yield* Effect.forkChild(
        pool.run(signalsThenHangs(started, () => (finalized = true)))
      )
      yield* settle
      // interrupts the caller as soon as the job has signalled that it started
      const interrupter = yield* Effect.forkChild(Effect.andThen(Deferred.await(started), Fiber.interrupt(caller)))
      yield* settle
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(interrupter)
      yield* settle
      assert.isTrue(finalized, "the caller is gone, its job still runs")
      assert.strictEqual((yield* pool.stats).running, 0)
    }))

  it.effect("runAll: a failure caused by a job as it starts still interrupts that job", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2, shutdownTimeout: 0 })
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
      const pool = yield* WorkPool.make({ concurrency: 1, shutdownTimeout: 0 })
      const started = yield* Deferred.make<void>()
      let finalized = false
      const caller = yield* Effect.forkChild(
        pool.run(signalsThenHangs(started, () => (finalized = true)))
      )
      // resumed while the caller is still inside `run`, admitting its job
      yield* Deferred.await(started)
      yield* Fiber.interrupt(caller)
      yield* settle
      assert.isTrue(finalized, "the caller is gone, its job still runs")
      assert.strictEqual((yield* pool.stats).running, 0)
    }))
})

describe("reentrancy and races: timeouts", () => {
  it.effect("at the deadline the awaiter is answered at once; the slot is freed when the job has stopped", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, timeout: "1 second", shutdownTimeout: 0 })
      // a job whose cleanup takes a while (closing a connection, say)
      const slow = yield* pool.submit(Effect.never.pipe(Effect.ensuring(Effect.sleep("10 seconds"))))
      const next = yield* pool.submit(Effect.succeed("next"))
      yield* TestClock.adjust("1 second")
      yield* settle
      // never more than `concurrency` jobs at work: the next one waits for the cleanup
      assert.deepStrictEqual([yield* slow.status, yield* next.status], ["timedOut", "queued"])
      assert.deepStrictEqual([(yield* pool.stats).running, (yield* pool.stats).stopping], [0, 1])
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(yield* next.await, "next")
      assert.strictEqual((yield* pool.stats).stopping, 0)
    }))

  it.effect("stats: submitted = waiting + queued + retrying + running + endings, also while a timed-out job stops", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2, timeout: "1 second", shutdownTimeout: 0 })
      yield* pool.submit(Effect.never.pipe(Effect.ensuring(Effect.sleep("10 seconds"))))
      yield* pool.submit(Effect.fail("busy"), { retry: Schedule.spaced("1 minute") })
      yield* TestClock.adjust("1 second")
      const s = yield* pool.stats
      yield* TestClock.adjust("10 seconds") // let the cleanup end, so that the pool can close
      assert.deepStrictEqual([s.stopping, s.retrying], [1, 1])
      const total = s.waiting + s.queued + s.retrying + s.running + s.succeeded + s.failed + s.defects + s.timedOut +
        s.interrupted + s.dropped
      assert.strictEqual(total, s.submitted)
    }))
})

describe("reentrancy and races: shutdown", () => {
  it.effect("shutdownNow returns every never-started job, including those of a runAll", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, paused: true, shutdownTimeout: 0 })
      yield* Effect.forkChild(Effect.exit(pool.runAll([Effect.succeed(1), Effect.succeed(2), Effect.succeed(3)])))
      yield* settle
      assert.strictEqual((yield* pool.stats).queued, 3)
      const unstarted = yield* pool.shutdownNow
      assert.strictEqual(unstarted.length, 3)
    }))

  it.effect("graceful shutdown with waiting submitters, one of them a runAll, completes", () =>
    Effect.gen(function*() {
      // in a scope of its own, left open: closing it would wait for a pool that never stops
      const pool = yield* WorkPool.make({ concurrency: 1, capacity: 1, shutdownTimeout: "1 second" }).pipe(
        Scope.provide(yield* Scope.make())
      )
      const gate = yield* Deferred.make<void>()
      yield* pool.submit(Deferred.await(gate))
      // "a" queued, "b" waits for room; then two more submitters wait
      const all = yield* Effect.forkChild(Effect.exit(pool.runAll([Effect.succeed("a"), Effect.succeed("b")])))
      yield* settle
      const s1 = yield* Effect.forkChild(Effect.exit(pool.run(Effect.succeed("s1"))))
      const s2 = yield* Effect.forkChild(Effect.exit(pool.run(Effect.succeed("s2"))))
      yield* settle
      assert.deepStrictEqual([(yield* pool.stats).queued, (yield* pool.stats).waiting], [1, 3])
      const closing = yield* Effect.forkChild(pool.shutdown)
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

  it.effect("no timer of the pool is alive once it has stopped", () =>
    Effect.gen(function*() {
      const { clock, state } = yield* countingClock
      const pool = yield* WorkPool.make({ concurrency: 1, capacity: 0, timeout: "1 second" }).pipe(
        Effect.provideService(Clock.Clock, clock)
      )
      yield* pool.submit(Effect.never)
      // waits for room, with a queue deadline 10 s away; the shutdown refuses it
      yield* Effect.forkChild(Effect.exit(pool.run(Effect.void, { queueTimeout: "10 seconds" })))
      yield* settle
      const closing = yield* Effect.forkChild(pool.shutdown)
      yield* settle
      // the running job times out, and the drain ends
      yield* TestClock.adjust("1 second")
      yield* settle
      assert.isDefined(closing.pollUnsafe())
      assert.strictEqual((yield* pool.stats).state, "stopped")
      assert.strictEqual(state.sleeping, 0, "a timer of the stopped pool is still sleeping")
    }))
})

describe("reentrancy and races: threads", () => {
  it.live("shrinking a thread pool lets a running task finish", () =>
    Effect.gen(function*() {
      const pool = yield* ThreadPool.make({ worker: new URL("./fixtures/worker.ts", import.meta.url), threads: 1 })
      // slot 0 on thread 0; the new slot 1 on a new thread 1, and last in the free list
      yield* pool.resize(2)
      yield* waitFor(pool.threads, "two threads", { until: (n) => n === 2 })
      // the task takes slot 1, but runs on the least loaded thread: thread 0
      const task = yield* pool.submit(Sleep, { millis: 500, mark: 0 })
      yield* waitFor(pool.stats, "the task runs", { until: (s) => s.running === 1 })
      // the idle slot 0 retires, and with it thread 0
      yield* pool.resize(1)
      const exit = yield* Effect.exit(task.await)
      assert.isTrue(Exit.isSuccess(exit), `the running task was killed: ${String(exit)}`)
    }), 30_000)
})

describe("a job that shuts its own pool down (README, Lifetime)", () => {
  it.effect("pool.shutdown inside a job waits for that job: it ends when shutdownTimeout interrupts it", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, shutdownTimeout: "5 seconds" })
      const job = yield* Effect.forkChild(Effect.exit(pool.run(Effect.as(pool.shutdown, "after shutdown"))))
      yield* settle
      yield* TestClock.adjust("4999 millis")
      assert.isUndefined(job.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      const exit = yield* Fiber.join(job)
      assert.isTrue(Exit.isFailure(exit) && String(exit).includes("PoolShutdown"), String(exit))
    }))

  it.effect("a job that forks the shutdown returns, and the pool drains and stops", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2, shutdownTimeout: "5 seconds" })
      const other = yield* pool.submit(Effect.as(Effect.sleep("1 second"), "other"))
      assert.strictEqual(yield* pool.run(Effect.as(Effect.forkDetach(pool.shutdown), "pill")), "pill")
      yield* TestClock.adjust("1 second")
      yield* pool.awaitTermination
      assert.strictEqual(yield* other.await, "other")
      assert.strictEqual((yield* pool.stats).state, "stopped")
    }))
})
