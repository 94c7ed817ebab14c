/**
 * Edges of a thread pool found after its hardening: a reply the main thread cannot deserialize,
 * something that is not a task given where a task is expected, and a worker that can never be
 * constructed. None may hang a caller, crash the process or be retried for nothing.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Schedule, Schema, Stream } from "effect"
import { Worker } from "node:worker_threads"
import { PoolError } from "../src/index.ts"
import * as ThreadPool from "../src/ThreadPool.ts"
import { unrecoverable } from "../src/internal/threads.ts"
import { blockUntil, makePool, worker } from "./fixtures/pool.ts"
import { Count, Deep, Echo, Passthrough, Sleep, Stray, ThreadId } from "./fixtures/tasks.ts"
import { waitFor } from "./helpers.ts"

// The thread gets a stack large enough to send an array nested 100,000 deep; the main thread (1 MB,
// or 4 MB if vitest runs the file in a thread) cannot read it back: the Worker emits `messageerror`.
const bigStack = { resourceLimits: { stackSizeMb: 64 } } as const
const DEEP = 100_000

describe("ThreadPool: a message the main thread cannot deserialize", () => {
  it.live("fails its task promptly with TaskCodecError (part reply); the same thread goes on", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1, ...bigStack })
      const thread = yield* pool.run(ThreadId, 0)
      // before: the task waited forever (no timeout is set); the test's own limit turns that into a failure
      const error = yield* Effect.flip(pool.run(Deep, DEEP).pipe(Effect.timeout("20 seconds")))
      assert.instanceOf(error, PoolError.TaskCodecError, String(error))
      const codec = error as PoolError.TaskCodecError
      assert.deepStrictEqual([codec.task, codec.part], ["Deep", "reply"])
      assert.match(codec.message, /task Deep: its reply could not be deserialized on the main thread: RangeError/)
      assert.strictEqual(yield* pool.run(ThreadId, 0), thread, "the thread was not replaced")
      assert.strictEqual(yield* pool.run(Echo, "after"), "echo after")
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.running, stats.failed], [0, 1])
    }))

  it.live("fails only the task whose reply was lost, not another task running on the same thread", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1, tasksPerThread: 2, ...bigStack })
      // it sleeps until interrupted, so it is surely running when the reply of Deep is lost
      const sleeping = yield* pool.submit(Sleep, { millis: 600_000, mark: 0 })
      yield* waitFor(pool.stats, "the sleep runs", { until: (s) => s.running === 1 })
      const error = yield* Effect.flip(pool.run(Deep, DEEP).pipe(Effect.timeout("20 seconds")))
      assert.strictEqual((error as PoolError.TaskCodecError).part, "reply", String(error))
      assert.strictEqual(yield* sleeping.status, "running")
      assert.deepStrictEqual([(yield* pool.stats).running, (yield* pool.stats).failed], [1, 1])
      yield* sleeping.interrupt
    }))

  it.live("a reply queued behind another one (taken in the same callback) fails only its task", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 1, ...bigStack })
      yield* pool.run(Echo, "warm")
      // one message: Echo starts, Deep and Count are offered; the thread answers Echo, then Deep, each
      // in a message of its own, before it starts Count
      const echo = yield* pool.submit(Echo, "first")
      const deep = yield* pool.submit(Deep, DEEP)
      const count = yield* pool.submit(Count, 5)
      // the main thread reads none of them until Count has started: the two replies wait on the port,
      // and the main thread takes Deep's while it handles Echo's
      yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
      assert.isTrue(blockUntil(counters, 5, 20_000), "Count started")
      assert.strictEqual(yield* echo.await, "echo first")
      const error = yield* Effect.flip(deep.await.pipe(Effect.timeout("20 seconds")))
      assert.instanceOf(error, PoolError.TaskCodecError, String(error))
      assert.strictEqual((error as PoolError.TaskCodecError).part, "reply")
      assert.strictEqual(yield* count.await, 5)
      assert.strictEqual((yield* pool.stats).failed, 1)
    }))

  it.live("a message of user code the main thread cannot deserialize fails no task", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1, tasksPerThread: 2, ...bigStack })
      const sleeping = yield* pool.submit(Sleep, { millis: 600_000, mark: 0 })
      yield* waitFor(pool.stats, "the sleep runs", { until: (s) => s.running === 1 })
      assert.strictEqual(yield* pool.run(Stray, "deep").pipe(Effect.timeout("20 seconds")), 1)
      // the thread answered the pool's question, and no task was taken for the lost message's
      assert.strictEqual(yield* pool.run(Echo, "after"), "echo after")
      assert.strictEqual(yield* sleeping.status, "running")
      assert.strictEqual((yield* pool.stats).failed, 0)
      yield* sleeping.interrupt
    }))
})

describe("ThreadPool: a message the thread cannot deserialize", () => {
  it.live("fails its task promptly with TaskCodecError (part payload); the same thread goes on", () =>
    Effect.gen(function*() {
      // the main thread (1 MB of stack, or 4 MB) sends an array nested 2,500 deep; a thread with half
      // a megabyte cannot read it
      const { pool } = yield* makePool({ threads: 1, tasksPerThread: 2, resourceLimits: { stackSizeMb: 0.5 } })
      const sleeping = yield* pool.submit(Sleep, { millis: 600_000, mark: 0 })
      // a round trip after it: the sleep has reached the thread (messages sent in one tick travel
      // together, and would be lost together)
      const thread = yield* pool.run(ThreadId, 0)
      let value: unknown = 0
      for (let i = 0; i < 2500; i++) value = [value]
      const error = yield* Effect.flip(pool.run(Passthrough, { value, ok: true }).pipe(Effect.timeout("20 seconds")))
      assert.instanceOf(error, PoolError.TaskCodecError, String(error))
      const codec = error as PoolError.TaskCodecError
      assert.deepStrictEqual([codec.task, codec.part], ["Passthrough", "payload"])
      assert.match(codec.issue, /the thread could not deserialize the message carrying it: RangeError/)
      assert.strictEqual(yield* sleeping.status, "running")
      yield* sleeping.interrupt
      assert.strictEqual(yield* pool.run(ThreadId, 0), thread, "the thread was not replaced")
    }))
})

describe("ThreadPool: something that is not a task", () => {
  const notTasks: ReadonlyArray<readonly [unknown, string, string]> = [
    [undefined, "undefined", "Task.make"],
    [null, "null", "Task.make"],
    ["Echo", "\"Echo\"", "Task.make"],
    [42, "42", "Task.make"],
    [{}, "{}", "its name is not a string"],
    [{ name: "Echo" }, "task \"Echo\"", "its payload is not a Schema"],
    [{ name: "Echo", payload: Schema.String, success: Schema.String, failure: "never" }, "task \"Echo\"", "its failure is not a Schema"]
  ]

  it.live("run, submit, runAll and mapStream fail with InvalidJob naming the task, and nothing is submitted", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1 })
      for (const [task, shown, reason] of notTasks) {
        const bad = task as typeof Echo
        const errors = [
          yield* Effect.flip(pool.run(bad, "x")),
          yield* Effect.flip(pool.submit(bad, "x")),
          yield* Effect.flip(pool.runAll(bad, ["x", "y"])),
          yield* Effect.flip(Stream.runCollect(ThreadPool.mapStream(Stream.make("x"), pool, bad)))
        ]
        for (const error of errors) {
          assert.instanceOf(error, PoolError.InvalidJob, `${shown}: ${String(error)}`)
          const invalid = error as PoolError.InvalidJob
          assert.strictEqual(invalid.field, "task")
          assert.include(invalid.value, shown)
          assert.include(invalid.reason, "expected a Task made with Task.make")
          assert.include(invalid.reason, reason)
        }
      }
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.submitted, stats.failed, stats.running], [0, 0, 0])
      assert.strictEqual(yield* pool.run(Echo, "after"), "echo after")
    }))

  it.live("runAll with payloads that are not iterable fails with InvalidJob naming them (it threw at the call)", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1 })
      for (const payloads of [undefined, null, 42, { length: 1 }]) {
        const error = yield* Effect.flip(Effect.suspend(() => pool.runAll(Echo, payloads as unknown as Iterable<string>)))
        assert.instanceOf(error, PoolError.InvalidJob, String(error))
        assert.strictEqual((error as PoolError.InvalidJob).field, "payloads")
      }
      assert.deepStrictEqual(yield* pool.runAll(Echo, new Set(["a"])), ["echo a"])
      assert.strictEqual((yield* pool.stats).submitted, 1)
    }))
})

describe("ThreadPool: a worker that can never be constructed", () => {
  const invalidWorker = (options: ThreadPool.Options) =>
    Effect.map(Effect.flip(ThreadPool.make(options)), (error) => {
      const e = error as { _tag?: string; field?: string }
      return `${e._tag} ${e.field}`
    })

  it.live("a file that does not exist, a bare or non-file path fail make with InvalidPoolConfig naming worker", () =>
    Effect.gen(function*() {
      const counters = new SharedArrayBuffer(16)
      for (const entry of [
        new URL("./fixtures/no-such-worker.ts", import.meta.url),
        "./test/fixtures/no-such-worker.ts",
        "/no/such/dir/worker.ts",
        "test/fixtures/worker.ts",
        new URL("https://example.com/worker.js"),
        new URL("./fixtures/", import.meta.url),
        42 as unknown as string
      ]) {
        const got = yield* invalidWorker({ worker: entry, threads: 1, workerData: { counters } })
        assert.strictEqual(got, "InvalidPoolConfig worker", String(entry))
      }
      const error = yield* Effect.flip(ThreadPool.make({ worker: "./test/fixtures/no-such-worker.ts", threads: 1 }))
      assert.include(error.message, "no-such-worker.ts")
      assert.include(error.message, "does not exist")
      // an existing file, given as a relative path or without its extension, is accepted
      const pool = yield* ThreadPool.make({ worker: "./test/fixtures/worker.ts", threads: 1 })
      assert.strictEqual(yield* pool.run(Echo, "x"), "echo x")
    }))

  it.live("resourceLimits so large that Node cannot create the thread (or crashes) fail with InvalidPoolConfig", () =>
    Effect.gen(function*() {
      for (const [resourceLimits, field] of [
        [{ stackSizeMb: 1e15 }, "resourceLimits.stackSizeMb"], // SIGSEGV of the whole process
        [{ stackSizeMb: 1e6 }, "resourceLimits.stackSizeMb"], // new Worker throws ERR_WORKER_INIT_FAILED
        [{ stackSizeMb: 2048 }, "resourceLimits.stackSizeMb"],
        [{ codeRangeSizeMb: 2 ** 28 }, "resourceLimits.codeRangeSizeMb"], // V8 aborts the process
        [{ codeRangeSizeMb: 2048 }, "resourceLimits.codeRangeSizeMb"]
      ] as const) {
        const got = yield* invalidWorker({ worker, threads: 1, resourceLimits })
        assert.strictEqual(got, `InvalidPoolConfig ${field}`, JSON.stringify(resourceLimits))
      }
      // the largest accepted values start
      const pool = yield* ThreadPool.make({ worker, threads: 1, resourceLimits: { stackSizeMb: 1024, codeRangeSizeMb: 1024 } })
      assert.strictEqual(yield* pool.run(Echo, "x"), "echo x")
    }), 60_000)

  it.live("a Worker constructor that throws because of its arguments is not retried", () =>
    Effect.gen(function*() {
      // workerData that clones when make checks it, and not when the Worker is constructed: the only
      // way past make's checks to a DataCloneError thrown by Node's own constructor
      let reads = 0
      const workerData = {
        get value() {
          return ++reads === 1 ? 1 : () => 1
        }
      }
      const error = yield* Effect.flip(ThreadPool.make({ worker, threads: 1, workerData, startSchedule: Schedule.recurs(5) }))
      assert.instanceOf(error, PoolError.WorkerStartFailed, String(error))
      const failed = error as PoolError.WorkerStartFailed
      assert.strictEqual(failed.attempts, 1, "not retried per startSchedule")
      assert.include(failed.reason, "DataCloneError")
      assert.strictEqual(reads, 2, "the constructor ran once")
    }))

  it("a validation error thrown by the Worker constructor is unrecoverable; a failure to create a thread is not", () => {
    const thrown = (make: () => unknown): unknown => {
      try {
        const worker = make() as Worker
        void worker.terminate()
        return undefined
      } catch (error) {
        return error
      }
    }
    assert.isTrue(unrecoverable(thrown(() => new Worker(42 as unknown as string))), "ERR_INVALID_ARG_TYPE")
    assert.isTrue(unrecoverable(thrown(() => new Worker("worker.ts"))), "ERR_WORKER_PATH")
    assert.isTrue(unrecoverable(thrown(() => new Worker(new URL("https://example.com/w.js")))), "ERR_INVALID_URL_SCHEME")
    assert.isTrue(unrecoverable(thrown(() => new Worker(worker, { env: 42 as unknown as NodeJS.Dict<string> }))), "ERR_INVALID_ARG_TYPE")
    assert.isTrue(unrecoverable(thrown(() => new Worker(worker, { workerData: () => 1 }))), "DataCloneError")
    const outOfRange = Object.assign(new RangeError("too big"), { code: "ERR_OUT_OF_RANGE" })
    assert.isTrue(unrecoverable(outOfRange))
    // EAGAIN: the OS refused a thread now (too many threads, no memory): it may work later
    const initFailed = Object.assign(new Error("EAGAIN"), { code: "ERR_WORKER_INIT_FAILED" })
    assert.isFalse(unrecoverable(initFailed))
    assert.isFalse(unrecoverable(new Error("anything else")))
    assert.isFalse(unrecoverable("a string"))
  })

})
