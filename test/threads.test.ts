import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Schedule } from "effect"
import { TestClock } from "effect/testing"
import { PoolError } from "../src/index.ts"
import * as ThreadPool from "../src/ThreadPool.ts"
import { BadResult, Bytes, Crash, Die, Echo, Fail, HashFailed, OnFiber, Sleep, Spin, ThreadId, Unserved } from "./fixtures/tasks.ts"
import { makePool, worker } from "./fixtures/pool.ts"
import { MessagePort } from "node:worker_threads"
import { waitFor } from "./helpers.ts"


describe("ThreadPool", () => {
  it.live("runs tasks on threads with typed outcomes across the boundary", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool()
      assert.strictEqual(yield* pool.threads, 2)
      assert.strictEqual(yield* pool.run(Echo, "hi"), "echo hi")
      // the failure is decoded back into its class, with its fields
      const failure = yield* Effect.flip(pool.run(Fail, "abc"))
      assert.instanceOf(failure, HashFailed)
      assert.deepStrictEqual(failure, new HashFailed({ input: "abc", code: 42 }))
      // a defect stays a defect, with its name, message and stack
      const exit = yield* Effect.exit(pool.run(Die, "out of range"))
      assert.isTrue(Exit.isFailure(exit) && Cause.hasDies(exit.cause))
      const defect = Exit.isFailure(exit) ? Cause.squash(exit.cause) as Error : undefined
      assert.strictEqual(defect?.name, "RangeError")
      assert.strictEqual(defect?.message, "out of range")
      assert.include(defect?.stack, "worker.ts")
      // results come back in order and the work is spread over both threads
      const ids = yield* pool.runAll(ThreadId, Array.from({ length: 20 }, (_, i) => i))
      assert.strictEqual(ids.length, 20)
      assert.strictEqual(yield* pool.threads, 2)
    }))

  it.live("cancelling the caller interrupts the task's fiber in the thread (its finalizer runs)", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool()
      const caller = yield* Effect.forkChild(pool.run(Sleep, { millis: 60_000, mark: 1 }))
      yield* waitFor(pool.stats, "the task runs", { until: (s) => s.running === 1 })
      yield* Fiber.interrupt(caller)
      assert.strictEqual(Atomics.load(counters, 1), 1)
      // the thread survived
      assert.strictEqual(yield* pool.threads, 2)
      assert.strictEqual(yield* pool.run(Echo, "still"), "echo still")
    }))

  it.live("a hard timeout stops `while (true) {}` by replacing its thread; other threads are untouched", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ cancelGrace: "200 millis" })
      const bystander = yield* pool.submit(Sleep, { millis: 1500, mark: 2 })
      const error = yield* Effect.flip(pool.run(Spin, 1, { timeout: "300 millis" }))
      assert.instanceOf(error, PoolError.JobTimeout)
      assert.strictEqual((error as PoolError.JobTimeout).phase, "running")
      // the other thread's task finishes normally
      assert.strictEqual(yield* bystander.await, 1500)
      // the pool is back to its full set of threads
      yield* waitFor(pool.threads, "the thread is replaced", { until: (n) => n === 2 })
      assert.deepStrictEqual(yield* pool.runAll(Echo, ["a", "b", "c"]), ["echo a", "echo b", "echo c"])
    }))

  for (const how of ["throw", "exit", "oom"] as const) {
    it.live(`a thread that crashes (${how}) fails only its task with WorkerCrashed and is replaced`, () =>
      Effect.gen(function*() {
        const { pool } = yield* makePool({ resourceLimits: { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 8 } })
        const bystander = yield* pool.submit(Sleep, { millis: 1000, mark: 3 })
        const error = yield* Effect.flip(pool.run(Crash, how))
        assert.instanceOf(error, PoolError.WorkerCrashed)
        const reason = (error as PoolError.WorkerCrashed).reason
        if (how === "exit") assert.include(reason, "code 3")
        if (how === "throw") assert.include(reason, "uncaught in the thread")
        if (how === "oom") assert.match(reason, /memory/i)
        assert.strictEqual(yield* bystander.await, 1000)
        yield* waitFor(pool.threads, "the thread is replaced", { until: (n) => n === 2 })
        assert.strictEqual(yield* pool.run(Echo, "after"), "echo after")
      }), 60_000)
  }

  it.live("a worker that cannot start fails the pool with WorkerStartFailed after the start schedule", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        ThreadPool.make({ worker: new URL("./fixtures/broken-worker.ts", import.meta.url), threads: 1 })
      )
      assert.instanceOf(error, PoolError.WorkerStartFailed)
      assert.strictEqual((error as PoolError.WorkerStartFailed).attempts, 3)
      assert.include((error as PoolError.WorkerStartFailed).reason, "this worker cannot start")
    }))

  it.live("a worker that never reports ready fails the start after startTimeout, per attempt", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        ThreadPool.make({
          worker: new URL("./fixtures/never-ready-worker.ts", import.meta.url),
          threads: 1,
          startTimeout: "300 millis",
          startSchedule: Schedule.recurs(1)
        })
      )
      assert.instanceOf(error, PoolError.WorkerStartFailed)
      assert.strictEqual((error as PoolError.WorkerStartFailed).attempts, 2)
      assert.include((error as PoolError.WorkerStartFailed).reason, "did not report ready within 300 ms")
    }))

  it.live("a payload or result that does not match its schema fails that task; the thread survives", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1 })
      const badPayload = yield* Effect.flip(pool.run(Echo, 42 as unknown as string))
      assert.instanceOf(badPayload, PoolError.TaskCodecError)
      assert.deepStrictEqual([(badPayload as PoolError.TaskCodecError).task, (badPayload as PoolError.TaskCodecError).part], [
        "Echo",
        "payload"
      ])
      const badResult = yield* Effect.flip(pool.run(BadResult, 1))
      assert.deepStrictEqual([(badResult as PoolError.TaskCodecError).part, badResult._tag], ["success", "TaskCodecError"])
      const unserved = yield* Effect.flip(pool.run(Unserved, 1))
      assert.deepStrictEqual([(unserved as PoolError.TaskCodecError).part], ["handler"])
      assert.strictEqual(yield* pool.run(Echo, "fine"), "echo fine")
      assert.strictEqual(yield* pool.threads, 1)
    }))

  it.live("an ArrayBuffer can be moved to the thread without copying", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1 })
      const buffer = new ArrayBuffer(1024)
      assert.strictEqual(yield* pool.run(Bytes, { buffer }, { transfer: [buffer] }), 1024)
      assert.strictEqual(buffer.byteLength, 0, "the buffer was detached: moved, not copied")
      const copied = new ArrayBuffer(8)
      assert.strictEqual(yield* pool.run(Bytes, { buffer: copied }), 8)
      assert.strictEqual(copied.byteLength, 8)
    }))

  it.live("tasks dispatched together reach a thread in one message", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1, tasksPerThread: 8 })
      // the pool's messages to its threads, counted where they are posted: on its private port
      const post = MessagePort.prototype.postMessage
      let posts = 0
      MessagePort.prototype.postMessage = function(this: MessagePort, ...args: Parameters<typeof post>) {
        posts++
        return post.apply(this, args)
      }
      const results = yield* pool.runAll(Echo, ["a", "b", "c", "d", "e", "f", "g", "h"]).pipe(
        Effect.ensuring(Effect.sync(() => {
          MessagePort.prototype.postMessage = post
        }))
      )
      assert.deepStrictEqual(results, ["echo a", "echo b", "echo c", "echo d", "echo e", "echo f", "echo g", "echo h"])
      assert.isAbove(posts, 0)
      assert.isAtMost(posts, 2, "8 tasks in at most 2 messages")
    }))

  it.live("priority and the bounded queue work as in the fiber pool", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1, capacity: 1, overflow: "fail" })
      const running = yield* pool.submit(Sleep, { millis: 300, mark: 5 })
      const queued = yield* pool.submit(Echo, "queued")
      const refused = yield* Effect.flip(pool.run(Echo, "refused"))
      assert.strictEqual(refused._tag, "QueueFull")
      assert.strictEqual(yield* queued.await, "echo queued")
      assert.strictEqual(yield* running.await, 300)
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.succeeded, stats.rejected], [2, 1])
    }))

  it.live("shutdown: graceful finishes running tasks; afterwards no thread is alive", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool()
      const handle = yield* pool.submit(Sleep, { millis: 300, mark: 6 })
      yield* pool.shutdown
      assert.strictEqual(yield* handle.await, 300)
      assert.strictEqual(yield* pool.threads, 0)
    }))

  it.live("shutdownNow interrupts running tasks and returns the queued ones", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1 })
      const running = yield* pool.submit(Spin, 1)
      const queued = yield* pool.submit(Echo, "never")
      const unstarted = yield* pool.shutdownNow
      assert.deepStrictEqual(unstarted.map((j) => j.id), [queued.id])
      assert.strictEqual((yield* Effect.flip(running.await))._tag, "PoolShutdown")
      assert.strictEqual(yield* pool.threads, 0)
    }))

  // the idle timer runs on the pool's clock: TestClock decides when threads are idle long enough
  it.effect("idle threads are retired after idleTimeout and started again on demand", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 2, idleTimeout: "1 minute" })
      assert.strictEqual(yield* pool.threads, 2)
      yield* TestClock.adjust("59 seconds")
      assert.strictEqual(yield* pool.threads, 2)
      yield* TestClock.adjust("1 second")
      yield* waitFor(pool.threads, "idle threads exit", { until: (n) => n === 0 })
      assert.strictEqual(yield* pool.run(Echo, "again"), "echo again")
      assert.strictEqual(yield* pool.threads, 1)
      assert.strictEqual((yield* pool.stats).workers, 2, "the pool keeps its slots")
    }))

  it.live("resize changes the number of threads", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1 })
      yield* pool.resize(3)
      assert.strictEqual(yield* pool.threads, 3)
      yield* pool.resize(1)
      yield* waitFor(pool.threads, "two threads stop", { until: (n) => n === 1 })
      const bad = yield* Effect.flip(pool.resize(0))
      assert.strictEqual(bad._tag, "InvalidPoolConfig")
    }))

  it.live("bad thread options fail with InvalidPoolConfig", () =>
    Effect.gen(function*() {
      for (const [options, field] of [
        [{ threads: 0 }, "threads"],
        [{ tasksPerThread: 1.5 }, "tasksPerThread"],
        [{ cancelGrace: -1 }, "cancelGrace"],
        [{ idleTimeout: 0 }, "idleTimeout"],
        [{ startTimeout: Number.NaN }, "startTimeout"]
      ] as const) {
        const error = yield* Effect.flip(ThreadPool.make({ worker, ...options }))
        assert.strictEqual(error._tag === "InvalidPoolConfig" && error.field, field)
      }
    }))
})

describe("ThreadPool dispatch", () => {
  it.live("a task queued behind a crash runs on the replacement thread", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1 })
      const crashing = yield* pool.submit(Crash, "exit")
      const queued = yield* pool.submit(Echo, "queued behind the crash")
      const crash = yield* Effect.flip(crashing.await)
      assert.strictEqual(crash._tag, "WorkerCrashed")
      assert.strictEqual(yield* queued.await, "echo queued behind the crash")
    }))

  it.live("with several tasks per thread, tasks spread over the threads first", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 2, tasksPerThread: 2 })
      for (let round = 0; round < 5; round++) {
        const [a, b] = yield* Effect.all([
          pool.run(Sleep, { millis: 100, mark: 7 }).pipe(Effect.andThen(pool.run(ThreadId, 0))),
          pool.run(ThreadId, 0),
          pool.run(ThreadId, 0)
        ], { concurrency: "unbounded" }).pipe(Effect.map(([, x, y]) => [x, y] as const))
        assert.notStrictEqual(a, b, "two tasks at once go to two threads")
      }
    }))

  it.live("shutdownNow returns the unstarted tasks with their payloads, to run elsewhere", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1 })
      yield* pool.submit(Spin, 1)
      yield* pool.submit(Echo, "later", { priority: 3 })
      const unstarted = yield* pool.shutdownNow
      assert.deepStrictEqual(unstarted.map((t) => [t.task.name, t.payload, t.priority]), [["Echo", "later", 3]])
      const { pool: other } = yield* makePool({ threads: 1 })
      const [first] = unstarted
      assert.strictEqual(yield* other.run(first!.task, first!.payload), "echo later")
    }))

  it.live("a synchronous task (Effect.sync, Effect.succeed, Effect.fail) runs in its thread without a fiber; others in one", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1 })
      assert.strictEqual(yield* pool.run(OnFiber, "sync"), 0)
      assert.strictEqual(yield* pool.run(OnFiber, "gen"), 1)
      // with the same outcomes as in a fiber (see the first test for a defect)
      assert.strictEqual(yield* pool.run(Echo, "x"), "echo x")
      assert.deepStrictEqual(yield* Effect.flip(pool.run(Fail, "y")), new HashFailed({ input: "y", code: 42 }))
    }))
})
