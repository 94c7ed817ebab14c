// Hostile tests of what a task's code and Schemas can do to a ThreadPool: Schemas that throw on
// either side (not a SchemaError: a `Schema.suspend` whose thunk throws, as a recursive Schema does
// whose other half is not initialized yet, or a thrown value `String` cannot describe), and what a
// worker file does to its thread (see fixtures/faults-worker.ts).
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, type Exit, Schema, SchemaGetter } from "effect"
import type { PoolError } from "../src/index.ts"
import * as Task from "../src/Task.ts"
import * as ThreadPool from "../src/ThreadPool.ts"
import { Any, Block, Nap, OddGetter, PayloadSchemaThrows, ReturnsProxy, Same, ThenThrow } from "./fixtures/faults-tasks.ts"
import { addsUp, makePool } from "./fixtures/pool.ts"
import { waitFor } from "./helpers.ts"

const faultsWorker = new URL("./fixtures/faults-worker.ts", import.meta.url)

/** How a Schema throws: through Effect's parser (a suspend's thunk), or a value with no prototype, from a transformation. */
type How = "suspend" | "nullProto"

/** Any value as it is (`Schema.Unknown`), but its decoding or encoding throws as `how` says. */
const throwing = (how: How, side: "decode" | "encode"): Schema.Codec<unknown, unknown> => {
  const same = SchemaGetter.transform((value: unknown) => value)
  if (how === "suspend") {
    const boom = Schema.suspend((): typeof Schema.Unknown => {
      throw new ReferenceError("Cannot access 'Node' before initialization")
    })
    // the other side goes through it too, but only `side` is used
    return side === "decode" ? Schema.Unknown.pipe(Schema.decodeTo(boom, { decode: same, encode: same })) : boom
  }
  const fail = SchemaGetter.transform((): unknown => {
    throw Object.assign(Object.create(null), { reason: "no prototype" })
  })
  return Schema.Unknown.pipe(Schema.decodeTo(Schema.Unknown, side === "decode" ? { decode: fail, encode: same } : { decode: same, encode: fail }))
}

const codecError = (error: unknown, part: string) => {
  assert.strictEqual((error as { _tag?: unknown })._tag, "TaskCodecError", String(error))
  assert.strictEqual((error as PoolError.TaskCodecError).part, part)
}

describe("ThreadPool: a task's Schema that throws, hostile", () => {
  for (const how of ["suspend", "nullProto"] as const) {
    it.live(`on the main thread (${how}): the task fails with TaskCodecError; the process and the pool go on, and the counts add up`, () =>
      Effect.gen(function*() {
        // the fixture worker's Echo and Fail, with Schemas of the main thread's own
        const BadPayload = Task.make("Echo", { payload: throwing(how, "encode"), success: Schema.String })
        const BadSuccess = Task.make("Echo", { payload: Schema.String, success: throwing(how, "decode") })
        const BadFailure = Task.make("Fail", {
          payload: Schema.String,
          success: Schema.String,
          failure: throwing(how, "decode")
        })
        const Echo = Task.make("Echo", { payload: Schema.String, success: Schema.String })
        const { pool } = yield* makePool({ threads: 1 })
        // an idle thread's task, started at its submit
        codecError(yield* Effect.flip(pool.run(BadPayload, "x", { timeout: "5 seconds" })), "payload")
        codecError(yield* Effect.flip(pool.run(BadSuccess, "x", { timeout: "5 seconds" })), "success")
        codecError(yield* Effect.flip(pool.run(BadFailure, "x", { timeout: "5 seconds" })), "failure")
        // queued behind a busy thread (sent ahead to it, or started when its slot frees)
        const busy = yield* pool.submit(Echo, "busy")
        const queued = yield* Effect.all([
          pool.submit(BadPayload, "y", { timeout: "5 seconds" }),
          pool.submit(BadSuccess, "y", { timeout: "5 seconds" }),
          pool.submit(Echo, "z")
        ])
        assert.strictEqual(yield* busy.await, "echo busy")
        codecError(yield* Effect.flip(queued[0].await), "payload")
        codecError(yield* Effect.flip(queued[1].await), "success")
        assert.strictEqual(yield* queued[2].await, "echo z")
        assert.strictEqual(yield* pool.run(Echo, "after"), "echo after")
        const stats = yield* waitFor(pool.stats, "every task has ended", { until: (s) => s.running === 0 && s.stopping === 0 })
        assert.isTrue(addsUp(stats), JSON.stringify(stats))
        assert.strictEqual(stats.failed, 5)
      }))
  }

  it.live("in the thread (a payload Schema that throws as it decodes): the task fails with TaskCodecError; the thread and its other tasks go on", () =>
    Effect.gen(function*() {
      const pool = yield* ThreadPool.make({ worker: faultsWorker, threads: 1, tasksPerThread: 2 })
      const bystander = yield* pool.submit(Nap, 300)
      const error = yield* Effect.flip(pool.run(PayloadSchemaThrows, 1, { timeout: "5 seconds" }))
      codecError(error, "payload")
      assert.include((error as PoolError.TaskCodecError).issue, "Cannot access 'Node' before initialization")
      assert.strictEqual(yield* bystander.await, 300, "the thread was not lost")
      assert.strictEqual(yield* pool.run(Same, 7), 7)
    }))
})

describe("ThreadPool: a transfer list of objects that cannot be moved, hostile", () => {
  // docs/threads.md: "The list itself is checked when the task is submitted: it must be an array of
  // transferable objects [...] or run/submit fail with InvalidJobOptions naming transfer or
  // transfer[i]". A SharedArrayBuffer (shared by the payload's copy already) or a plain object got
  // through, and the task failed only as it was sent, with a TaskCodecError saying its payload
  // "does not match its schema"
  it.live("a SharedArrayBuffer or a plain object in it fails run and submit with InvalidJobOptions naming it; nothing is submitted", () =>
    Effect.gen(function*() {
      const pool = yield* ThreadPool.make({ worker: faultsWorker, threads: 1 })
      const buffer = new ArrayBuffer(8)
      for (const [name, item] of [
        ["a SharedArrayBuffer", new SharedArrayBuffer(8)],
        ["a plain object", {}],
        ["an array", [buffer]],
        ["an object without prototype", Object.create(null)]
      ] as const) {
        const transfer = [buffer, item as unknown as ArrayBuffer]
        for (const refused of [Effect.flip(pool.run(Same, 1, { transfer })), Effect.flip(pool.submit(Same, 1, { transfer }))]) {
          const error = yield* refused
          assert.strictEqual(error._tag, "InvalidJobOptions", `${name}: ${error.message}`)
          assert.strictEqual((error as PoolError.InvalidJobOptions).field, "transfer[1]", name)
        }
      }
      assert.strictEqual(buffer.byteLength, 8, "nothing was moved")
      assert.strictEqual((yield* pool.stats).submitted, 0)
      assert.strictEqual(yield* pool.run(Same, 2), 2)
    }))
})

describe("ThreadPool: a transfer list naming a Buffer's shared pool, hostile", () => {
  // docs/threads.md says to transfer a view's .buffer; a small Buffer's (Buffer.from) is Node's
  // shared pool, marked untransferable: the task was accepted and failed as it was sent, with
  // "DataCloneError: Cannot transfer object of unsupported type"
  it.live("fails run and submit with InvalidJobOptions naming transfer[0] and saying why; the Buffer is untouched", () =>
    Effect.gen(function*() {
      const pool = yield* ThreadPool.make({ worker: faultsWorker, threads: 1 })
      const bytes = Buffer.from("hello")
      for (const refused of [
        Effect.flip(pool.run(Any, bytes, { transfer: [bytes.buffer] })),
        Effect.flip(pool.submit(Any, bytes, { transfer: [bytes.buffer] }))
      ]) {
        const error = yield* refused
        assert.strictEqual(error._tag, "InvalidJobOptions", error.message)
        assert.strictEqual((error as PoolError.InvalidJobOptions).field, "transfer[0]")
        assert.include(error.message, "untransferable")
      }
      assert.strictEqual(bytes.toString(), "hello")
      assert.strictEqual((yield* pool.stats).submitted, 0)
    }))
})

describe("ThreadPool: a message whose clone throws something odd, hostile", () => {
  // the clone runs a value's getters; one that throws an object without prototype made the outbox's
  // description of the failure (`String(error)`) throw in turn, out of its flush
  const odd = () => ({
    get boom(): unknown {
      throw Object.assign(Object.create(null), { reason: "no prototype" })
    }
  })

  it.live("a payload: the task fails with TaskCodecError (part payload); the process and the pool go on, and the counts add up", () =>
    Effect.gen(function*() {
      const pool = yield* ThreadPool.make({ worker: faultsWorker, threads: 1, tasksPerThread: 2 })
      // an idle thread's first task, posted at once
      codecError(yield* Effect.flip(pool.run(Any, odd(), { timeout: "5 seconds" })), "payload")
      // beside a running one, posted at the end of the tick; and one sent ahead to a busy thread
      const nap = yield* pool.submit(Nap, 200)
      const late = yield* pool.submit(Any, odd(), { timeout: "5 seconds" })
      const nap2 = yield* pool.submit(Nap, 200)
      const ahead = yield* pool.submit(Any, odd(), { timeout: "5 seconds" })
      codecError(yield* Effect.flip(late.await), "payload")
      codecError(yield* Effect.flip(ahead.await), "payload")
      assert.deepStrictEqual([yield* nap.await, yield* nap2.await], [200, 200])
      assert.strictEqual(yield* pool.run(Same, 3), 3)
      const stats = yield* waitFor(pool.stats, "every task has ended", { until: (s) => s.running === 0 && s.stopping === 0 })
      assert.isTrue(addsUp(stats), JSON.stringify(stats))
      assert.strictEqual(stats.failed, 3)
    }))

  it.live("an answer or a progress report in the thread: the task fails with TaskCodecError, or goes on; the thread and its other tasks go on", () =>
    Effect.gen(function*() {
      const pool = yield* ThreadPool.make({ worker: faultsWorker, threads: 1, tasksPerThread: 2 })
      const bystander = yield* pool.submit(Nap, 400)
      codecError(yield* Effect.flip(pool.run(OddGetter, "success", { timeout: "5 seconds" })), "success")
      codecError(yield* Effect.flip(pool.run(OddGetter, "failure", { timeout: "5 seconds" })), "failure")
      // a report that cannot be sent is not forwarded; the task goes on
      assert.strictEqual(yield* pool.run(OddGetter, "progress", { timeout: "5 seconds" }), 1)
      assert.strictEqual(yield* bystander.await, 400, "the thread was not lost")
    }))
})

describe("ThreadPool: workerData whose clone throws something odd, hostile", () => {
  // threadOptions.workerData described the clone's error with String(error), which throws for an
  // object without prototype: make died with a TypeError instead of failing with InvalidPoolConfig
  it.live("make fails with InvalidPoolConfig naming workerData, not with a defect", () =>
    Effect.gen(function*() {
      const workerData = {
        get boom(): unknown {
          throw Object.assign(Object.create(null), { reason: "no prototype" })
        }
      }
      const exit = yield* Effect.exit(ThreadPool.make({ worker: faultsWorker, threads: 1, workerData }))
      assert.isTrue(exit._tag === "Failure" && exit.cause.reasons.length === 1 && Cause.isFailReason(exit.cause.reasons[0]!), String(exit))
      const error = Cause.squash((exit as Exit.Failure<unknown, PoolError.InvalidPoolConfig>).cause) as PoolError.InvalidPoolConfig
      assert.strictEqual(error._tag, "InvalidPoolConfig")
      assert.strictEqual(error.field, "workerData")
      assert.include(error.reason, "no prototype")
    }))
})

describe("ThreadPool: a worker that fails after answering, or blocks, hostile (these held)", () => {
  for (const how of ["timer", "rejection"] as const) {
    it.live(`a throw from a ${how} after the task answered: it keeps its success; the thread's other task gets WorkerCrashed once; the thread is replaced`, () =>
      Effect.gen(function*() {
        const pool = yield* ThreadPool.make({ worker: faultsWorker, threads: 1, tasksPerThread: 2 })
        const bystander = yield* pool.submit(Nap, 10_000)
        assert.strictEqual(yield* pool.run(ThenThrow, how), 1)
        const error = yield* Effect.flip(bystander.await)
        assert.strictEqual(error._tag, "WorkerCrashed")
        assert.include((error as PoolError.WorkerCrashed).reason, "after the task answered")
        assert.strictEqual(yield* pool.run(Same, 5), 5)
        const stats = yield* pool.stats
        assert.deepStrictEqual([stats.succeeded, stats.failed, stats.running], [2, 1, 0])
      }))
  }

  it.live("a task blocked in Atomics.wait times out, and shutdownNow ends another: their threads are terminated, none is left", () =>
    Effect.gen(function*() {
      const pool = yield* ThreadPool.make({ worker: faultsWorker, threads: 2, cancelGrace: "100 millis" })
      assert.strictEqual((yield* Effect.flip(pool.run(Block, 1, { timeout: "100 millis" })))._tag, "JobTimeout")
      yield* waitFor(pool.stats, "the blocked task's thread is terminated", { until: (s) => s.stopping === 0 })
      const blocked = yield* pool.submit(Block, 2)
      yield* waitFor(pool.stats, "the task blocks", { until: (s) => s.running === 1 })
      assert.deepStrictEqual(yield* pool.shutdownNow, [])
      assert.strictEqual((yield* Effect.flip(blocked.await))._tag, "PoolShutdown")
      assert.strictEqual(yield* pool.threads, 0)
    }))
})

describe("ThreadPool: a handler that returns a Proxy, hostile", () => {
  // docs/threads.md: "A handler that returns something other than an Effect [...] fails its task with
  // a defect that says so". Asking whether a revoked Proxy is an Effect throws (and reading the
  // prototype of a Proxy that says it is one): that crashed the thread, with every task on it
  for (const kind of ["revoked", "liar", "sync", "exit"] as const) {
    it.live(`a ${kind} Proxy: the task fails with a defect; the thread and its other tasks go on`, () =>
      Effect.gen(function*() {
        const pool = yield* ThreadPool.make({ worker: faultsWorker, threads: 1, tasksPerThread: 2 })
        const bystander = yield* pool.submit(Nap, 300)
        const exit = yield* Effect.exit(pool.run(ReturnsProxy, kind, { timeout: "5 seconds" }))
        assert.isTrue(exit._tag === "Failure" && Cause.hasDies(exit.cause), String(exit))
        assert.strictEqual(yield* bystander.await, 300, "the thread was not lost")
        assert.strictEqual(yield* pool.run(Same, 4), 4)
      }))
  }
})
