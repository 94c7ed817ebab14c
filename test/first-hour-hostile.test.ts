/**
 * Hostile tests of a new user's first hour: the mistakes a newcomer makes with the package (a
 * handler written `async`, a worker file that is not one, a pool made of its own file, a dashboard
 * port already taken), each of which must end in an error that names the problem, never a crash
 * of the process or a message of Effect's internals.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Context, Effect, Exit, Layer, Schedule, Schema, SchemaGetter, Stream } from "effect"
import { createServer, type Server } from "node:net"
import * as Dashboard from "../src/Dashboard.ts"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as Task from "../src/Task.ts"
import * as ThreadPool from "../src/ThreadPool.ts"
import * as WorkPool from "../src/WorkPool.ts"

const Double = Task.make("Double", { payload: Schema.Number, success: Schema.Number })

/** The message of the defect a failed exit died with. */
const defectMessage = (exit: Exit.Exit<unknown, unknown>): string => {
  assert.isTrue(Exit.isFailure(exit), "expected a failure")
  const squashed = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
  return squashed instanceof Error ? squashed.message : String(squashed)
}

describe("a durable handler that returns a Promise (written async, as for other queues)", () => {
  it.effect("its job dies with a defect naming the task and the Promise, not Effect's 'Not a valid effect'", () =>
    Effect.gen(function*() {
      const handler = (async (n: number) => n * 2) as unknown as (n: number) => Effect.Effect<number>
      yield* JobQueue.consume({ handlers: [Task.handle(Double, handler)], concurrency: 1 })
      const job = yield* JobQueue.enqueue(Double, 21, { maxAttempts: 1 })
      const message = defectMessage(yield* Effect.exit(job.await))
      assert.include(message, "the handler of task Double returned a Promise, not an Effect")
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory())))

  it.effect("the same when the payload's Schema decodes asynchronously", () =>
    Effect.gen(function*() {
      const Later = Task.make("Later", {
        payload: Schema.Number.pipe(Schema.decodeTo(Schema.Number, {
          decode: SchemaGetter.transformEffect((n: number) => Effect.as(Effect.yieldNow, n)),
          encode: SchemaGetter.transform((n: number) => n)
        })),
        success: Schema.Number
      })
      const handler = (async (n: number) => n) as unknown as (n: number) => Effect.Effect<number>
      yield* JobQueue.consume({ handlers: [Task.handle(Later, handler)], concurrency: 1 })
      const job = yield* JobQueue.enqueue(Later, 1, { maxAttempts: 1 })
      assert.include(defectMessage(yield* Effect.exit(job.await)), "the handler of task Later returned a Promise, not an Effect")
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory())))
})

describe("Task.make called wrongly (from JavaScript)", () => {
  it("without its name, it throws a TypeError saying what it takes, not 'Cannot read properties of undefined'", () => {
    const make = Task.make as (...args: ReadonlyArray<unknown>) => unknown
    assert.throws(() => make({ payload: Schema.String, success: Schema.Number }), TypeError, /Task\.make: expected a name \(a string\)/)
    assert.throws(() => make("Parse"), TypeError, /Task\.make: expected \{ payload, success, failure\? \} Schemas for task Parse/)
  })
})

describe("WorkPool.mapStream given something else than a function (from JavaScript)", () => {
  it.effect("the stream fails with InvalidJob naming f, not a TypeError defect 'f is not a function'", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2 })
      const notAFunction = Effect.succeed(1) as unknown as (n: number) => Effect.Effect<number>
      const error = yield* Effect.flip(Stream.runCollect(Stream.make(1, 2).pipe(WorkPool.mapStream(pool, notAFunction))))
      assert.strictEqual(error._tag, "InvalidJob")
      assert.strictEqual((error as { field: string }).field, "mapStream f")
      assert.include(error.message, "expected a function (element) => job")
    }).pipe(Effect.scoped))
})

describe("ThreadPool: worker files that are not worker files", () => {
  it.live("a worker file that never calls ThreadWorker.serve fails WorkerStartFailed saying so, not only 'exited with code 0'", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(ThreadPool.make({
        worker: new URL("./fixtures/serveless-worker.ts", import.meta.url),
        threads: 1,
        startSchedule: Schedule.recurs(0)
      }))
      assert.strictEqual(error._tag, "WorkerStartFailed")
      assert.include(error.message, "exited with code 0 before it was ready")
      assert.include(error.message, "ThreadWorker.serve")
    }).pipe(Effect.scoped), 60_000)

  // A user who runs `node src/main.mjs` from the project's root and writes the worker's path as seen
  // from main.mjs: the path is resolved from the current directory, which the message did not say.
  it.effect("a relative worker path that does not exist says it was resolved from the current directory, and how to name a file beside the module", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(ThreadPool.make({ worker: "./fixtures/worker.ts", threads: 1 }))
      assert.strictEqual(error._tag, "InvalidPoolConfig")
      assert.include(error.message, `resolved from the current directory, ${process.cwd()}`)
      assert.include(error.message, "new URL(\"./fixtures/worker.ts\", import.meta.url)")
    }).pipe(Effect.scoped))

  // Each thread made a pool of the same file, whose thread made another: threads without end, until
  // V8 aborted the whole process ("Fatal process out of memory", 5 deep under a 4 GB ulimit). The
  // fixture stops itself at depth 3; with the check the first thread's own make is refused.
  it.live("a worker file that makes a pool of itself in its thread is refused there with InvalidPoolConfig, not recursed into", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(ThreadPool.make({
        worker: new URL("./fixtures/self-pool-worker.ts", import.meta.url),
        threads: 1,
        startSchedule: Schedule.recurs(0)
      }))
      assert.strictEqual(error._tag, "WorkerStartFailed")
      assert.include(error.message, "self-pool: make at depth 1 ended with InvalidPoolConfig")
    }).pipe(Effect.scoped), 60_000)
})

describe("Dashboard: its port already in use", () => {
  const listening = Effect.acquireRelease(
    Effect.callback<Server>((resume) => {
      const server = createServer()
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) => Effect.callback<void>((resume) => void server.close(() => resume(Effect.void)))
  )

  it.live("fails with ServeError whose message names the address and that it is in use (it was empty)", () =>
    Effect.gen(function*() {
      const server = yield* listening
      const port = (server.address() as { port: number }).port
      const error = yield* Effect.flip(Effect.map(Layer.build(Dashboard.layer({ port })), Context.get(Dashboard.Dashboard)))
      assert.strictEqual(error._tag, "ServeError")
      assert.include(error.message, `127.0.0.1:${port}`)
      assert.include(error.message, "in use")
    }).pipe(Effect.scoped))
})
