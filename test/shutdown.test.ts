import { assert, describe, it } from "@effect/vitest"
import { Cause, Context, Deferred, Effect, Exit, Fiber, Scope } from "effect"
import { TestClock } from "effect/testing"
import { PoolError, WorkPool } from "../src/index.ts"
import * as ThreadPool from "../src/ThreadPool.ts"
import { settle, waitFor } from "./helpers.ts"

class Greeting extends Context.Service<Greeting, { readonly word: string }>()("test/shutdown/Greeting") {}

/** A pool in a scope of its own, so the test can close it. */
const scopedPool = (options: WorkPool.Options) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const pool = yield* WorkPool.make(options).pipe(Scope.provide(scope))
    return { pool, close: Scope.close(scope, Exit.void) }
  })

describe("shutdown", () => {
  it.effect("closing the scope is graceful: queued and running jobs finish, new ones are refused", () =>
    Effect.gen(function*() {
      const { close, pool } = yield* scopedPool({ concurrency: 1 })
      const running = yield* pool.submit(Effect.as(Effect.sleep("1 second"), "running"))
      const queued = yield* pool.submit(Effect.as(Effect.sleep("1 second"), "queued"))
      const closing = yield* Effect.forkChild(close)
      yield* settle
      assert.strictEqual((yield* pool.stats).state, "draining")
      const refused = yield* Effect.flip(pool.run(Effect.succeed("late")))
      assert.deepStrictEqual(refused, new PoolError.PoolShutdown({ phase: "admission" }))
      yield* TestClock.adjust("1 second")
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)
      assert.deepStrictEqual([yield* running.await, yield* queued.await], ["running", "queued"])
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.state, stats.succeeded, stats.rejected, stats.workers], ["stopped", 2, 1, 0])
    }))

  it.effect("after the shutdown deadline, the rest is interrupted and awaiters get PoolShutdown", () =>
    Effect.gen(function*() {
      const { close, pool } = yield* scopedPool({ concurrency: 1, shutdownTimeout: "10 seconds" })
      const finalized = yield* Deferred.make<void>()
      const running = yield* pool.submit(Effect.never.pipe(Effect.ensuring(Deferred.succeed(finalized, undefined))))
      const queued = yield* pool.submit(Effect.succeed("never started"))
      const closing = yield* Effect.forkChild(close)
      yield* TestClock.adjust("9999 millis")
      assert.strictEqual(yield* running.status, "running")
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(closing)
      assert.isTrue(yield* Deferred.isDone(finalized))
      assert.deepStrictEqual(yield* Effect.flip(running.await), new PoolError.PoolShutdown({ phase: "running" }))
      assert.deepStrictEqual(yield* Effect.flip(queued.await), new PoolError.PoolShutdown({ phase: "queued" }))
      assert.strictEqual((yield* pool.stats).interrupted, 2)
    }))

  it.effect("shutdownNow interrupts running jobs and returns the never-started ones", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2 })
      const finalized: Array<number> = []
      const job = (i: number) => Effect.never.pipe(Effect.ensuring(Effect.sync(() => void finalized.push(i))))
      const handles = yield* Effect.forEach([0, 1, 2, 3, 4], (i) => pool.submit(job(i), { priority: i === 4 ? 1 : 0 }))
      const unstarted = yield* pool.shutdownNow
      // job 4 had the higher priority, so it came out of the queue first
      assert.deepStrictEqual(unstarted.map((j) => j.id), [handles[4]!.id, handles[2]!.id, handles[3]!.id])
      assert.deepStrictEqual(finalized.sort(), [0, 1])
      for (const handle of handles) {
        const error = yield* Effect.flip(handle.await)
        assert.strictEqual(error._tag, "PoolShutdown")
      }
      assert.deepStrictEqual(yield* pool.shutdownNow, [], "idempotent")
      yield* pool.shutdown // also idempotent, returns at once
      // an unstarted job can be run elsewhere, with its submitter's services
      const paused = yield* WorkPool.make({ concurrency: 1, paused: true })
      const greeting = yield* paused.submit(Effect.map(Greeting, (g) => g.word)).pipe(
        Effect.provideService(Greeting, { word: "hello from the submitter" })
      )
      const [handedOver] = yield* paused.shutdownNow
      assert.strictEqual(handedOver!.id, greeting.id)
      const other = yield* WorkPool.make({ concurrency: 1 })
      assert.strictEqual(yield* other.run(handedOver!.effect), "hello from the submitter")
    }))

  // a job carries its submitter's services, its Scope among them. Handed over after that scope has
  // closed (the submitter, told PoolShutdown, left its Effect.scoped), a finalizer the job added to
  // it ran at once (Effect's rule for a closed scope): a resource it acquired was released before
  // it used it
  it.effect("a job handed over after its submitter's scope closed acquires a resource in a scope of its own: released when the job ends, not before its use", () =>
    Effect.gen(function*() {
      const events: Array<string> = []
      const job = Effect.gen(function*() {
        const conn = yield* Effect.acquireRelease(
          Effect.sync(() => ({ open: true })),
          (conn) => Effect.sync(() => { conn.open = false; events.push("released") })
        )
        events.push(conn.open ? "used open" : "used closed")
      })
      const paused = yield* WorkPool.make({ concurrency: 1, paused: true })
      yield* Effect.scoped(Effect.asVoid(paused.submit(job)))
      yield* Effect.scoped(Effect.asVoid(paused.submit(job)))
      const [first, second] = yield* paused.shutdownNow
      const other = yield* WorkPool.make({ concurrency: 1 })
      // as an Effect with its services, and as the job resubmitted with them filled in (by a
      // resubmitter with no Scope of its own: the test's would win)
      yield* other.run(first!.effect)
      yield* Effect.updateContext(other.run(second!.job), (context: Context.Context<never>) => Context.omit(Scope.Scope)(context))
      assert.deepStrictEqual(events, ["used open", "released", "used open", "released"])
      // a resubmitter's open Scope still wins, as its other services do: released when it closes
      const again = yield* WorkPool.make({ concurrency: 1, paused: true })
      yield* Effect.scoped(Effect.asVoid(again.submit(job)))
      const [third] = yield* again.shutdownNow
      events.length = 0
      yield* Effect.scoped(Effect.gen(function*() {
        yield* other.run(third!.job)
        assert.deepStrictEqual(events, ["used open"])
      }))
      assert.deepStrictEqual(events, ["used open", "released"])
    }))

  it.effect("shutdown waits; a second shutdown waits for the same end; awaitTermination too", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      yield* pool.submit(Effect.sleep("1 second"))
      const first = yield* Effect.forkChild(pool.shutdown)
      const second = yield* Effect.forkChild(pool.shutdown)
      const watcher = yield* Effect.forkChild(pool.awaitTermination)
      yield* settle
      assert.isUndefined(first.pollUnsafe())
      assert.isUndefined(watcher.pollUnsafe())
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(first)
      yield* Fiber.join(second)
      yield* Fiber.join(watcher)
      assert.strictEqual((yield* pool.stats).succeeded, 1)
    }))

  it.effect("shutdownNow during a graceful drain escalates it", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const running = yield* pool.submit(Effect.never)
      const queued = yield* pool.submit(Effect.never)
      const draining = yield* Effect.forkChild(pool.shutdown)
      yield* settle
      const unstarted = yield* pool.shutdownNow
      assert.deepStrictEqual(unstarted.map((j) => j.id), [queued.id])
      yield* Fiber.join(draining)
      assert.strictEqual(yield* running.status, "interrupted")
    }))

  it.effect("submitters suspended by backpressure get PoolShutdown", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, capacity: 0, shutdownTimeout: 0 })
      yield* pool.submit(Effect.never)
      const runner = yield* Effect.forkChild(Effect.flip(pool.run(Effect.void)))
      const submitter = yield* Effect.forkChild(Effect.flip(pool.submit(Effect.void)))
      yield* settle
      assert.strictEqual((yield* pool.stats).waiting, 2)
      yield* pool.shutdown
      assert.deepStrictEqual(yield* Fiber.join(runner), new PoolError.PoolShutdown({ phase: "admission" }))
      assert.deepStrictEqual(yield* Fiber.join(submitter), new PoolError.PoolShutdown({ phase: "admission" }))
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.rejected, stats.waiting], [2, 0])
    }))

  it.effect("awaitIdle waits for queued and running jobs", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      yield* pool.awaitIdle // idle at once
      yield* pool.submit(Effect.sleep("1 second"))
      yield* pool.submit(Effect.sleep("1 second"))
      const idle = yield* Effect.forkChild(pool.awaitIdle)
      yield* TestClock.adjust("1 second")
      assert.isUndefined(idle.pollUnsafe())
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(idle)
      assert.strictEqual((yield* pool.stats).succeeded, 2)
    }))

  it.effect("a graceful shutdown runs paused jobs rather than stranding them", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, paused: true })
      const handle = yield* pool.submit(Effect.succeed("ran"))
      yield* pool.shutdown
      assert.strictEqual(yield* handle.await, "ran")
    }))
})

describe("no leaks", () => {
  // Every job records itself while alive; every awaiter is a fiber the test holds.
  const leakScenario = (mode: "graceful" | "immediate" | "deadline") =>
    Effect.gen(function*() {
      const { close, pool } = yield* scopedPool({
        concurrency: 3,
        capacity: 4,
        timeout: "30 seconds",
        shutdownTimeout: mode === "deadline" ? "1 second" : "1 minute"
      })
      let alive = 0
      const job = (i: number) =>
        Effect.acquireUseRelease(
          Effect.sync(() => alive++),
          () => (i % 3 === 0 ? Effect.never : Effect.sleep(`${(i % 5) + 1} seconds`)),
          () => Effect.sync(() => alive--)
        )
      const awaiters: Array<Fiber.Fiber<unknown, unknown>> = []
      // running, queued, waiting for room, and being submitted while the pool shuts down
      for (let i = 0; i < 12; i++) awaiters.push(yield* Effect.forkChild(Effect.exit(pool.run(job(i)))))
      for (let i = 0; i < 3; i++) awaiters.push(yield* Effect.forkChild(pool.submit(job(100 + i)).pipe(Effect.exit)))
      yield* settle
      const closing = yield* Effect.forkChild(mode === "immediate" ? Effect.andThen(pool.shutdownNow, close) : close)
      for (let i = 0; i < 3; i++) awaiters.push(yield* Effect.forkChild(Effect.exit(pool.run(job(200 + i)))))
      for (let t = 0; t < 70; t++) yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)
      yield* settle
      assert.strictEqual(alive, 0, "no job fiber is alive")
      for (const awaiter of awaiters) assert.isDefined(awaiter.pollUnsafe(), "no awaiter is left pending")
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.state, stats.running, stats.queued, stats.waiting, stats.workers], [
        "stopped",
        0,
        0,
        0,
        0
      ])
      const ended = stats.succeeded + stats.failed + stats.defects + stats.timedOut + stats.interrupted + stats.dropped
      assert.strictEqual(stats.submitted, ended)
      return stats
    })

  it.effect("graceful: every job ends, nothing is left alive", () =>
    Effect.map(leakScenario("graceful"), (stats) => assert.isAbove(stats.timedOut, 0)))
  it.effect("graceful past the deadline: the rest is interrupted", () =>
    Effect.map(leakScenario("deadline"), (stats) => assert.isAbove(stats.interrupted, 0)))
  it.effect("immediate: running jobs are interrupted, queued ones returned", () =>
    Effect.map(leakScenario("immediate"), (stats) => assert.isAbove(stats.interrupted, 0)))

  it.effect("a pool's upkeep fibers are gone after its scope closes", () =>
    Effect.gen(function*() {
      const { close, pool } = yield* scopedPool({ concurrency: 2, timeout: "1 minute", queueTimeout: "1 minute" })
      yield* pool.submit(Effect.sleep("1 second"))
      yield* pool.resize(1)
      const closing = yield* Effect.forkChild(close)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)
      // a deadline timer would keep the test clock busy: advancing far must not wake anything of the pool
      yield* TestClock.adjust("1 hour")
      assert.strictEqual((yield* pool.stats).state, "stopped")
      const exit = yield* Effect.exit(pool.run(Effect.void))
      assert.isTrue(Exit.isFailure(exit) && Cause.hasFails(exit.cause))
    }))
})

describe("shutdown during a ThreadPool resize", () => {
  it.live("stops the thread starts of the resize instead of waiting for them; the resize is done", () =>
    Effect.gen(function*() {
      const started = new Int32Array(new SharedArrayBuffer(4))
      const scope = yield* Scope.make()
      const pool = yield* ThreadPool.make({
        worker: new URL("./fixtures/ready-once-worker.ts", import.meta.url),
        threads: 1,
        // without the fix, the close would wait this long for the second thread to report ready
        startTimeout: "10 minutes",
        workerData: { started: started.buffer }
      }).pipe(Scope.provide(scope))
      const resizing = yield* Effect.forkChild(Effect.exit(pool.resize(2)))
      yield* waitFor(Effect.sync(() => Atomics.load(started, 0)), "the second thread is starting", { until: (n) => n === 2 })
      // a close is uninterruptible: wait for it from outside
      const closing = yield* Effect.forkDetach(Scope.close(scope, Exit.void))
      const closed = yield* Effect.timeoutOption(Fiber.await(closing), "20 seconds")
      assert.isTrue(closed._tag === "Some", "the close returned without waiting for the thread start")
      assert.deepStrictEqual(yield* Fiber.join(resizing), Exit.void)
      assert.strictEqual(yield* pool.threads, 0)
    }))
})
