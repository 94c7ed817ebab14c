import { assert, describe, it } from "@effect/vitest"
import { Cause, Clock, Duration, Effect, Exit, Fiber, Option, Schedule } from "effect"
import { TestClock } from "effect/testing"
import { PoolError, WorkPool } from "../src/index.ts"
import * as ThreadPool from "../src/ThreadPool.ts"
import { delayOf, policy } from "../src/internal/retry.ts"
import { Bytes, Crash, Flaky } from "./fixtures/tasks.ts"
import { worker } from "./fixtures/pool.ts"
import { settle } from "./helpers.ts"

/** Every admitted job is somewhere, or has ended once. */
const assertIdentity = (stats: WorkPool.PoolStats) =>
  assert.strictEqual(
    stats.submitted,
    stats.waiting + stats.queued + stats.retrying + stats.running + stats.succeeded + stats.failed +
      stats.defects + stats.timedOut + stats.interrupted + stats.dropped,
    JSON.stringify(stats)
  )

/** A job that fails its first `failures` attempts (with "busy"), then succeeds; it records when each attempt started. */
const flaky = (failures: number, starts: Array<number> = []) =>
  Effect.gen(function*() {
    starts.push(yield* Clock.currentTimeMillis)
    if (starts.length <= failures) return yield* Effect.fail(`busy ${starts.length}`)
    return `ok after ${starts.length}`
  })

describe("retries", () => {
  it.effect("an exponential schedule's delays are honoured exactly; the awaiter sees only the last outcome", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, retry: Schedule.exponential("100 millis") })
      const starts: Array<number> = []
      const handle = yield* pool.submit(flaky(3, starts))
      yield* settle
      assert.deepStrictEqual(starts, [0])
      assert.strictEqual(yield* handle.status, "retrying")
      assert.strictEqual(yield* handle.attempt, 2)
      const waiting = yield* pool.stats
      assert.deepStrictEqual([waiting.retrying, waiting.retried, waiting.running, waiting.failed], [1, 1, 0, 0])
      assertIdentity(waiting)
      yield* TestClock.adjust("99 millis")
      assert.deepStrictEqual(starts, [0])
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(starts, [0, 100])
      yield* TestClock.adjust("199 millis")
      assert.deepStrictEqual(starts, [0, 100])
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(starts, [0, 100, 300])
      yield* TestClock.adjust("400 millis")
      assert.deepStrictEqual(starts, [0, 100, 300, 700])
      assert.strictEqual(yield* handle.await, "ok after 4")
      assert.strictEqual(yield* handle.attempt, 4)
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.succeeded, stats.failed, stats.retried, stats.retrying], [1, 0, 3, 0])
      assertIdentity(stats)
      // the same delays as a durable executor replays from a stored attempt count
      const replayed = [1, 2, 3].map((attempt) => delayOf(policy("retry", Schedule.exponential("100 millis")), attempt, Cause.fail("busy")))
      assert.deepStrictEqual(replayed, [100, 200, 400])
    }))

  it.effect("a schedule steps at the clock's time, not at the time since the pool was made (a cron schedule reads it)", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(1_000_000)
      const pool = yield* WorkPool.make({ concurrency: 1 })
      yield* TestClock.adjust("250 millis")
      const seen: Array<number> = []
      const recording = Schedule.fromStep(Effect.succeed((now: number, _: unknown) => {
        seen.push(now)
        return Effect.succeed<[number, Duration.Duration]>([seen.length, Duration.millis(10)])
      }))
      const handle = yield* pool.submit(flaky(2), { retry: recording })
      yield* settle
      yield* TestClock.adjust("10 millis")
      yield* TestClock.adjust("10 millis")
      assert.strictEqual(yield* handle.await, "ok after 3")
      assert.deepStrictEqual(seen, [1_000_250, 1_000_260])
    }))

  it.effect("a job waiting for its retry holds no worker: another job runs meanwhile", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const starts: Array<number> = []
      const retried = yield* pool.submit(flaky(1, starts), { retry: Schedule.spaced("1 second") })
      yield* settle
      const other = yield* pool.submit(Effect.as(Effect.sleep("300 millis"), "other"))
      yield* settle
      const meanwhile = yield* pool.stats
      assert.deepStrictEqual([meanwhile.running, meanwhile.retrying, meanwhile.queued], [1, 1, 0])
      assertIdentity(meanwhile)
      yield* TestClock.adjust("300 millis")
      assert.strictEqual(yield* other.await, "other")
      assert.strictEqual(yield* retried.status, "retrying")
      yield* TestClock.adjust("700 millis")
      assert.strictEqual(yield* retried.await, "ok after 2")
      assert.deepStrictEqual(starts, [0, 1000])
    }))

  it.effect("times bounds the retries; the last failure reaches the awaiter", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2 })
      const starts: Array<number> = []
      const exit = yield* Effect.exit(pool.run(flaky(10, starts), { retry: { times: 2, schedule: Schedule.spaced("10 millis") } })).pipe(
        Effect.forkChild
      )
      yield* TestClock.adjust("100 millis")
      assert.deepStrictEqual(yield* Fiber.join(exit), Exit.fail("busy 3"))
      assert.deepStrictEqual(starts, [0, 10, 20])
      // without a schedule, retries are due at once
      const quick: Array<number> = []
      assert.deepStrictEqual(yield* Effect.exit(pool.run(flaky(10, quick), { retry: { times: 1 } })), Exit.fail("busy 2"))
      assert.deepStrictEqual(quick, [100, 100])
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.failed, stats.retried], [2, 3])
      assertIdentity(stats)
    }))

  it.effect("runAll: a job that fails and is retried is not the batch's first failure", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2, retry: Schedule.spaced("1 second") })
      const all = yield* Effect.forkChild(pool.runAll([flaky(2), Effect.as(Effect.sleep("1500 millis"), "slow")]))
      yield* TestClock.adjust("2 seconds")
      assert.deepStrictEqual(yield* Fiber.join(all), ["ok after 3", "slow"])
    }))

  it.effect("a job's retry overrides the pool's, and { times: 0 } turns it off", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, retry: { times: 5 } })
      const none: Array<number> = []
      assert.deepStrictEqual(yield* Effect.exit(pool.run(flaky(1, none), { retry: { times: 0 } })), Exit.fail("busy 1"))
      assert.strictEqual(none.length, 1)
      const pools: Array<number> = []
      assert.strictEqual(yield* pool.run(flaky(3, pools)), "ok after 4")
    }))

  it.effect("while decides from the error; a defect is retried unless while says otherwise", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      let attempts = 0
      const failing = Effect.suspend(() => Effect.fail(++attempts < 3 ? "transient" : "fatal"))
      const exit = yield* Effect.exit(pool.run(failing, { retry: { while: (error) => error === "transient" } }))
      assert.deepStrictEqual([exit, attempts], [Exit.fail("fatal"), 3])

      let defects = 0
      const dying = Effect.suspend(() => ++defects < 3 ? Effect.die("bug") : Effect.succeed("fixed"))
      assert.strictEqual(yield* pool.run(dying, { retry: { times: 5 } }), "fixed")
      assert.strictEqual(defects, 3)

      defects = 0
      const seen: Array<[unknown, boolean]> = []
      const typedOnly = {
        times: 5,
        while: (error: unknown, cause: Cause.Cause<unknown>) => {
          seen.push([error, Cause.hasDies(cause)])
          return !Cause.hasDies(cause)
        }
      }
      const died = yield* Effect.exit(pool.run(dying, { retry: typedOnly }))
      assert.isTrue(Exit.isFailure(died) && Cause.hasDies(died.cause))
      assert.deepStrictEqual([defects, seen], [1, [["bug", true]]])
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.failed, stats.succeeded, stats.defects, stats.retried], [1, 1, 1, 4])
    }))

  it.effect("a while that throws ends the job with its failure and the policy's defect", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const exit = yield* Effect.exit(pool.run(Effect.fail("busy"), {
        retry: {
          while: () => {
            throw new Error("predicate bug")
          }
        }
      }))
      assert.isTrue(Exit.isFailure(exit))
      const cause = (exit as Exit.Failure<unknown, unknown>).cause
      assert.strictEqual(Option.getOrUndefined(Cause.findErrorOption(cause)), "busy")
      assert.include(Cause.pretty(cause), "predicate bug")
      assert.strictEqual((yield* pool.stats).defects, 1)
    }))

  it.effect("a schedule that cannot step synchronously ends the job with its failure and a defect saying so", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      // its delay comes from an Effect that sleeps: not synchronous
      const slow = Schedule.spaced("1 second").pipe(Schedule.addDelay(() => Effect.as(Effect.sleep("1 millis"), "1 second")))
      const exit = yield* Effect.exit(pool.run(Effect.fail("busy"), { retry: slow }))
      assert.isTrue(Exit.isFailure(exit))
      const cause = (exit as Exit.Failure<unknown, unknown>).cause
      assert.strictEqual(Option.getOrUndefined(Cause.findErrorOption(cause)), "busy")
      assert.include(Cause.pretty(cause), "retry policy failed")
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.defects, stats.retried, stats.retrying], [1, 0, 0])
    }))

  it("delayOf replays a policy from an attempt count: the same delays in every process", () => {
    const cause = Cause.fail("busy")
    const exponential = policy("retry", { schedule: Schedule.exponential("1 second"), times: 3 })
    assert.deepStrictEqual([1, 2, 3, 4].map((n) => delayOf(exponential, n, cause)), [1000, 2000, 4000, undefined])
    // a schedule that ends gives up there; without one, a retry is due at once
    assert.deepStrictEqual([1, 2, 3].map((n) => delayOf(policy("retry", Schedule.recurs(2)), n, cause)), [0, 0, undefined])
    assert.deepStrictEqual(delayOf(policy("retry", { times: 1 }), 1, cause), 0)
    // while sees the error and the cause
    const typedOnly = policy("retry", { while: (_: unknown, c: Cause.Cause<unknown>) => !Cause.hasDies(c) })
    assert.deepStrictEqual([delayOf(typedOnly, 1, cause), delayOf(typedOnly, 1, Cause.die("bug"))], [0, undefined])
    // elapsed time is the sum of the delays before: a schedule bounded in time gives up at the same attempt
    const within = policy("retry", Schedule.spaced("1 second").pipe(Schedule.upTo({ duration: "2500 millis" })))
    assert.deepStrictEqual([1, 2, 3, 4].map((n) => delayOf(within, n, cause)), [1000, 1000, 1000, undefined])
  })

  it.effect("a timed-out attempt is retried once it has stopped; the last one ends at its deadline", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, timeout: "1 second" })
      const starts: Array<number> = []
      const slowThenFast = Effect.gen(function*() {
        starts.push(yield* Clock.currentTimeMillis)
        if (starts.length === 1) yield* Effect.sleep("1 hour")
        return "fast"
      })
      const handle = yield* pool.submit(slowThenFast, { retry: Schedule.spaced("500 millis") })
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* handle.status, "retrying")
      assert.strictEqual((yield* pool.stats).timedOut, 0)
      yield* TestClock.adjust("500 millis")
      assert.strictEqual(yield* handle.await, "fast")
      assert.deepStrictEqual(starts, [0, 1500])

      const never = yield* pool.submit(Effect.never, { retry: { times: 1 } })
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* never.status, "running")
      yield* TestClock.adjust("1 second")
      const error = yield* Effect.flip(never.await)
      assert.deepStrictEqual(error, new PoolError.JobTimeout({ jobId: never.id, millis: 1000, phase: "running" }))
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.timedOut, stats.retried, stats.succeeded], [1, 2, 1])
      assertIdentity(stats)
    }))

  it.effect("cancelling a job waiting for its retry ends it at once, interrupted", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const starts: Array<number> = []
      const handle = yield* pool.submit(flaky(5, starts), { retry: Schedule.spaced("1 minute") })
      yield* settle
      assert.strictEqual(yield* handle.status, "retrying")
      yield* handle.interrupt
      assert.strictEqual(yield* handle.status, "interrupted")
      const exit = yield* Effect.exit(handle.await)
      assert.isTrue(Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause))
      yield* TestClock.adjust("2 minutes")
      assert.strictEqual(starts.length, 1)
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.retrying, stats.interrupted, stats.retried], [0, 1, 1])
      assertIdentity(stats)
      // the same through its caller
      const caller = yield* Effect.forkChild(pool.run(flaky(5), { retry: Schedule.spaced("1 minute") }))
      yield* settle
      assert.strictEqual((yield* pool.stats).retrying, 1)
      yield* Fiber.interrupt(caller)
      assert.strictEqual((yield* pool.stats).retrying, 0)
      yield* pool.awaitIdle
      // and a running attempt, interrupted, is not retried
      let runs = 0
      const running = yield* pool.submit(Effect.sync(() => ++runs).pipe(Effect.andThen(Effect.never)), { retry: { times: 3 } })
      yield* settle
      yield* running.interrupt
      yield* TestClock.adjust("1 minute")
      assert.deepStrictEqual([runs, yield* running.status], [1, "interrupted"])
    }))

  it.effect("a cancelled job whose attempt timed out is not retried", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, timeout: "1 second" })
      let attempts = 0
      // takes 1 s to stop once interrupted
      const slowToStop = Effect.sync(() => ++attempts).pipe(
        Effect.andThen(Effect.never),
        Effect.onInterrupt(() => Effect.sleep("1 second"))
      )
      const handle = yield* pool.submit(slowToStop, { retry: { times: 3 } })
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* handle.status, "running")
      const cancelling = yield* Effect.forkChild(handle.interrupt)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(cancelling)
      assert.strictEqual(yield* handle.status, "interrupted")
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(attempts, 1)
    }))

  it.effect("an attempt that timed out and is still stopping when shutdownNow comes ends with its JobTimeout", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, timeout: "1 second" })
      let attempts = 0
      const slowToStop = Effect.sync(() => ++attempts).pipe(
        Effect.andThen(Effect.never),
        Effect.onInterrupt(() => Effect.sleep("1 second"))
      )
      const handle = yield* pool.submit(slowToStop, { retry: { times: 3 } })
      yield* TestClock.adjust("1 second")
      const stopping = yield* Effect.forkChild(pool.shutdownNow)
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* Fiber.join(stopping), [])
      assert.deepStrictEqual(
        yield* Effect.flip(handle.await),
        new PoolError.JobTimeout({ jobId: handle.id, millis: 1000, phase: "running" })
      )
      const stats = yield* pool.stats
      assert.deepStrictEqual([attempts, stats.timedOut, stats.retried, stats.retrying], [1, 1, 0, 0])
    }))

  it.effect("graceful shutdown drains retries: one due before the deadline runs, one due after ends with PoolShutdown", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2, shutdownTimeout: "5 seconds" })
      const soon = yield* pool.submit(flaky(1), { retry: Schedule.spaced("2 seconds") })
      const late = yield* pool.submit(flaky(1), { retry: Schedule.spaced("1 minute") })
      yield* settle
      assert.strictEqual((yield* pool.stats).retrying, 2)
      const closing = yield* Effect.forkChild(pool.shutdown)
      yield* settle
      assert.strictEqual((yield* pool.stats).state, "draining")
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual(yield* soon.await, "ok after 2")
      yield* TestClock.adjust("3 seconds")
      yield* Fiber.join(closing)
      assert.deepStrictEqual(yield* Effect.flip(late.await), new PoolError.PoolShutdown({ phase: "retrying" }))
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.state, stats.retrying, stats.succeeded, stats.interrupted], ["stopped", 0, 1, 1])
      assertIdentity(stats)
    }))

  it.effect("shutdownNow returns a job waiting for its retry among the unstarted ones", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const job = flaky(1)
      const handle = yield* pool.submit(job, { retry: Schedule.spaced("1 minute"), priority: 3 })
      yield* settle
      const unstarted = yield* pool.shutdownNow
      assert.deepStrictEqual(unstarted.map((u) => [u.id, u.priority]), [[handle.id, 3]])
      // the job as submitted (with its submitter's services): run again, it is on its second attempt
      assert.strictEqual(yield* (unstarted[0]!.job as Effect.Effect<unknown, unknown>), "ok after 2")
      assert.deepStrictEqual(yield* Effect.flip(handle.await), new PoolError.PoolShutdown({ phase: "retrying" }))
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.state, stats.retrying, stats.interrupted], ["stopped", 0, 1])
      assertIdentity(stats)
    }))

  it.effect("a retried job re-enters the queue at its priority, aging from its return", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, aging: "1 second" })
      const order: Array<string> = []
      // priority 0; fails at 0 ms, back in the queue at 1,000 ms
      const a = yield* pool.submit(
        Effect.suspend(() => (order.push("a"), order.length === 1 ? Effect.fail("busy") : Effect.void)),
        { retry: Schedule.spaced("1 second") }
      )
      yield* settle
      const blocker = yield* pool.submit(Effect.sleep("2 seconds"))
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* a.status, "queued")
      yield* TestClock.adjust("500 millis")
      // priority 1, 500 ms after a's return (less than one aging step): it passes a. Had a aged
      // from its submission (or its first start) at 0 ms, b would come 1,500 ms after it and not pass.
      const b = yield* pool.submit(Effect.sync(() => void order.push("b")), { priority: 1 })
      yield* TestClock.adjust("500 millis")
      yield* blocker.await
      yield* a.await
      yield* b.await
      assert.deepStrictEqual(order, ["a", "b", "a"])
    }))

  it.effect("a job back in the queue has its queueTimeout again, counted from its return", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, queueTimeout: "1 second", shutdownTimeout: 0 })
      const handle = yield* pool.submit(flaky(1), { retry: Schedule.spaced("5 seconds") })
      yield* settle
      yield* pool.submit(Effect.sleep("1 minute"))
      yield* TestClock.adjust("5999 millis")
      assert.strictEqual(yield* handle.status, "queued")
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(
        yield* Effect.flip(handle.await),
        new PoolError.JobTimeout({ jobId: handle.id, millis: 1000, phase: "queued" })
      )
    }))

  it.effect("bad retry options fail with the field, the value and what was expected", () =>
    Effect.gen(function*() {
      const invalid = (retry: unknown) => Effect.flip(WorkPool.make({ concurrency: 1, retry: retry as any }))
      const cases: Array<[unknown, string]> = [
        [5, "retry"],
        [null, "retry"],
        [{ times: -1 }, "retry.times"],
        [{ times: 1.5 }, "retry.times"],
        [{ schedule: "1 second" }, "retry.schedule"],
        [{ while: true }, "retry.while"],
        [{ tiems: 3 }, "retry.tiems"]
      ]
      for (const [retry, field] of cases) {
        const error = yield* invalid(retry)
        assert.instanceOf(error, PoolError.InvalidPoolConfig)
        assert.strictEqual((error as PoolError.InvalidPoolConfig).field, field)
      }
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const error = yield* Effect.flip(pool.submit(Effect.void, { retry: { times: "3" } as any }))
      assert.deepStrictEqual(
        error,
        new PoolError.InvalidJobOptions({ field: "retry.times", value: "\"3\"", reason: "expected a whole number of at least 0, or Infinity" })
      )
    }))

  it.effect("stats keep the identity through retries, timeouts, cancellations and a shutdown", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({
        concurrency: 3,
        timeout: "300 millis",
        retry: { schedule: Schedule.exponential("50 millis"), times: 3 },
        shutdownTimeout: "1 second"
      })
      const handles: Array<WorkPool.JobHandle<unknown, unknown>> = []
      for (let i = 0; i < 60; i++) {
        const work = i % 4 === 0 ? flaky(i % 3) : i % 4 === 1 ? Effect.die("bug") : i % 4 === 2 ? Effect.sleep("1 second") : flaky(5)
        handles.push(yield* pool.submit(work))
        if (i % 7 === 0) yield* handles[Math.floor(i / 2)]!.interrupt.pipe(Effect.forkChild)
        yield* TestClock.adjust("13 millis")
        assertIdentity(yield* pool.stats)
      }
      const closing = yield* Effect.forkChild(pool.shutdown)
      for (let i = 0; i < 20; i++) {
        yield* TestClock.adjust("60 millis")
        assertIdentity(yield* pool.stats)
      }
      yield* Fiber.join(closing)
      const stats = yield* pool.stats
      assert.strictEqual(stats.state, "stopped")
      assert.deepStrictEqual([stats.queued, stats.retrying, stats.running], [0, 0, 0])
      assert.isAbove(stats.retried, 0)
      assertIdentity(stats)
      for (const handle of handles) assert.isDefined((yield* Effect.exit(handle.await)))
    }))
})

describe("retries on threads", () => {
  it.live("a task that fails twice then succeeds is sent three times; the thread counts them", () =>
    Effect.scoped(Effect.gen(function*() {
      const pool = yield* ThreadPool.make({ worker, threads: 1, retry: { times: 5 } })
      const handle = yield* pool.submit(Flaky, { key: "a", failures: 2 })
      assert.strictEqual(yield* handle.await, 3)
      assert.strictEqual(yield* handle.attempt, 3)
      // the task's own failure, once the retries are used up
      const error = yield* Effect.flip(pool.run(Flaky, { key: "b", failures: 9 }, { retry: { times: 1 } }))
      assert.deepStrictEqual([error._tag, (error as { code?: number }).code], ["HashFailed", 2])
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.succeeded, stats.failed, stats.retried], [1, 1, 3])
      // a thread that crashes fails its task with WorkerCrashed: a failed attempt, retried on the new thread
      const crashed = yield* Effect.flip(pool.run(Crash, "exit", { retry: { times: 1 } }))
      assert.strictEqual(crashed._tag, "WorkerCrashed")
      assert.strictEqual((yield* pool.stats).retried, 4)
    })))

  it.live("a task that moves buffers (transfer) cannot be retried: refused before anything is moved", () =>
    Effect.scoped(Effect.gen(function*() {
      const pool = yield* ThreadPool.make({ worker, threads: 1, retry: { times: 2 } })
      const buffer = new ArrayBuffer(8)
      const refused = (options: ThreadPool.TaskOptions) => Effect.flip(pool.run(Bytes, { buffer }, options))
      for (const options of [{ transfer: [buffer] }, { transfer: [buffer], retry: Schedule.spaced("1 second") }]) {
        const error = yield* refused(options)
        assert.instanceOf(error, PoolError.InvalidJobOptions)
        assert.strictEqual((error as PoolError.InvalidJobOptions).field, "transfer")
        assert.include((error as PoolError.InvalidJobOptions).reason, "retr")
        assert.strictEqual(buffer.byteLength, 8, "nothing was moved")
      }
      assert.strictEqual(yield* pool.run(Bytes, { buffer }, { transfer: [buffer], retry: { times: 0 } }), 8)
      assert.strictEqual(buffer.byteLength, 0, "moved")
    })))
})
