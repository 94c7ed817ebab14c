import { assert, describe, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { Config, ConfigProvider, Context, Effect, Layer, Schema, Stream } from "effect"
import * as PoolError from "../src/PoolError.ts"
import * as ThreadPool from "../src/ThreadPool.ts"
import * as WorkPool from "../src/WorkPool.ts"
import { makePool, worker } from "./fixtures/pool.ts"
import { Die, Echo, Sleep } from "./fixtures/tasks.ts"

/** Compiles only when X and Y are the same type: `npm test` typechecks this file. */
type Equals<X, Y> = (<T>() => T extends X ? 1 : 2) extends (<T>() => T extends Y ? 1 : 2) ? true : false
const sameType = <X, Y>(_: Equals<X, Y>) => {}

describe("type guards", () => {
  it.effect("isWorkPool tells a WorkPool from anything else", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      assert.isTrue(WorkPool.isWorkPool(pool))
      for (const other of [null, undefined, 1, "pool", {}, { run: pool.run, submit: pool.submit }]) {
        assert.isFalse(WorkPool.isWorkPool(other))
        assert.isFalse(ThreadPool.isThreadPool(other))
      }
      assert.isFalse(ThreadPool.isThreadPool(pool))
    }))

  it.live("isThreadPool tells a ThreadPool from a WorkPool", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1 })
      assert.isTrue(ThreadPool.isThreadPool(pool))
      assert.isFalse(WorkPool.isWorkPool(pool))
    }))

  it("isPoolError and isJobError recognize an error made by a second copy of the package", async () => {
    // a real second module instance: the same source at another path, as two installed versions are
    const scratch = fileURLToPath(new URL("../.scratch/", import.meta.url))
    fs.mkdirSync(scratch, { recursive: true })
    const dir = fs.mkdtempSync(path.join(scratch, "copy-"))
    try {
      fs.copyFileSync(fileURLToPath(new URL("../src/PoolError.ts", import.meta.url)), path.join(dir, "PoolError.ts"))
      const copy: typeof PoolError = await import(pathToFileURL(path.join(dir, "PoolError.ts")).href)
      assert.notStrictEqual(copy.QueueFull, PoolError.QueueFull)
      const full = new copy.QueueFull({ capacity: 1 })
      assert.isFalse(full instanceof PoolError.QueueFull)
      assert.isTrue(PoolError.isPoolError(full))
      assert.isTrue(PoolError.isJobError(full))
      assert.isTrue(PoolError.isPoolError(new copy.WorkerCrashed({ jobId: 1, reason: "x" })))
      assert.isFalse(PoolError.isJobError(new copy.WorkerCrashed({ jobId: 1, reason: "x" })))
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it("isPoolError and isJobError recognize the library's errors by type id, not by tag", () => {
    const jobErrors = [
      new PoolError.QueueFull({ capacity: 1 }),
      new PoolError.JobDropped({ jobId: 1, policy: "dropOldest" }),
      new PoolError.JobTimeout({ jobId: 1, millis: 1, phase: "running" }),
      new PoolError.PoolShutdown({ phase: "queued" }),
      new PoolError.InvalidJobOptions({ field: "priority", value: "NaN", reason: "expected a finite number" }),
      new PoolError.InvalidJob({ field: "job", value: "42", reason: "expected an Effect" })
    ]
    const others = [
      new PoolError.WorkerCrashed({ jobId: 1, reason: "exit code 1" }),
      new PoolError.WorkerStartFailed({ attempts: 3, reason: "SyntaxError" }),
      new PoolError.TaskCodecError({ task: "T", part: "payload", issue: "Expected number" }),
      new PoolError.InvalidPoolConfig({ field: "concurrency", value: "0", reason: "expected at least 1" })
    ]
    for (const error of jobErrors) {
      assert.isTrue(PoolError.isPoolError(error), error._tag)
      assert.isTrue(PoolError.isJobError(error), error._tag)
    }
    for (const error of others) {
      assert.isTrue(PoolError.isPoolError(error), error._tag)
      assert.isFalse(PoolError.isJobError(error), error._tag)
    }
    class QueueFull extends Schema.TaggedError<QueueFull>()("QueueFull", { capacity: Schema.Number }) {}
    for (const other of [new QueueFull({ capacity: 1 }), { _tag: "QueueFull", capacity: 1 }, new Error("x"), null, "QueueFull"]) {
      assert.isFalse(PoolError.isPoolError(other))
      assert.isFalse(PoolError.isJobError(other))
    }
  })
})

describe("precise types", () => {
  it.effect("handle.await carries only the errors that can happen after admission", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const handle = yield* pool.submit(Effect.succeed(1))
      sameType<typeof handle.await, Effect.Effect<number, PoolError.AdmittedJobError>>(true)
      sameType<PoolError.AdmittedJobError, PoolError.JobDropped | PoolError.JobTimeout | PoolError.PoolShutdown>(true)
      sameType<PoolError.JobError, PoolError.AdmissionError | PoolError.AdmittedJobError>(true)
      assert.strictEqual(yield* handle.await, 1)
    }))

  it.effect("WorkPool.shutdownNow hands back jobs typed by the pool's resource, and they run on another such pool", () =>
    Effect.gen(function*() {
      const resource = (id: number) => Effect.succeed({ name: `conn ${id}` })
      const from = yield* WorkPool.make({ concurrency: 1, paused: true, resource })
      const to = yield* WorkPool.make({ concurrency: 1, resource })
      yield* from.submit((conn) => Effect.succeed(conn.name))
      const unstarted = yield* from.shutdownNow
      sameType<typeof unstarted, ReadonlyArray<WorkPool.UnstartedJob<{ name: string }>>>(true)
      const handle = yield* to.submit(unstarted[0]!.job)
      assert.strictEqual(yield* handle.await, "conn 0")
    }))

  it.live("ThreadPool.shutdownNow keeps each task with its payload type, as a union over the pool's tasks", () =>
    Effect.gen(function*() {
      const pool = yield* ThreadPool.make<typeof Echo | typeof Sleep>({ worker, threads: 1, paused: true })
      yield* pool.submit(Echo, "a")
      yield* pool.submit(Sleep, { millis: 1, mark: 0 }, { priority: -1 })
      const unstarted = yield* pool.shutdownNow
      type Expected =
        | { readonly id: number; readonly priority: number; readonly task: typeof Echo; readonly payload: string }
        | {
          readonly id: number
          readonly priority: number
          readonly task: typeof Sleep
          readonly payload: { readonly millis: number; readonly mark: number }
        }
      sameType<typeof unstarted[number], Expected>(true)
      // a task outside the pool's union does not typecheck (never run: the check is tsc's)
      const _other = () =>
        // @ts-expect-error: Die is not one of this pool's tasks
        pool.run(Die, "x")
      assert.deepStrictEqual(unstarted.map((t) => [t.task.name, t.payload]), [["Echo", "a"], ["Sleep", { millis: 1, mark: 0 }]])
    }))
})

describe("ThreadPool as a service", () => {
  class Echoer extends ThreadPool.Service<Echoer, typeof Echo>()("test/Echoer", { worker, threads: 1 }) {}

  it.live("Service declares the pool with its layer; releasing the layer stops the threads", () =>
    Effect.gen(function*() {
      const stats = yield* Effect.gen(function*() {
        const pool = yield* Echoer
        assert.strictEqual(yield* pool.run(Echo, "hi"), "echo hi")
        return pool
      }).pipe(Effect.provide(Echoer.layer))
      assert.strictEqual(yield* stats.threads, 0)
      assert.strictEqual((yield* stats.stats).state, "stopped")
    }))

  it.live("layer reads its options from an Effect (Config) and reports bad options as InvalidPoolConfig", () =>
    Effect.gen(function*() {
      class Pool extends Context.Service<Pool, ThreadPool.ThreadPool>()("test/ThreadPool") {}
      const fromConfig = ThreadPool.layer(Pool, Effect.map(Config.Int("THREADS"), (threads) => ({ worker, threads })))
      const threads = yield* Effect.flatMap(Pool, (pool) => pool.threads).pipe(
        Effect.provide(fromConfig.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ THREADS: 2 })))))
      )
      assert.strictEqual(threads, 2)
      const error = yield* Effect.flip(
        Effect.asVoid(Pool).pipe(Effect.provide(ThreadPool.layer(Pool, { worker, threads: 0 })))
      )
      assert.strictEqual(error._tag, "InvalidPoolConfig")
    }))

  it.live("mapStream runs each payload on a thread, in input order or unordered", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool()
      const ordered = yield* Stream.make("a", "b", "c").pipe(ThreadPool.mapStream(pool, Echo), Stream.runCollect)
      assert.deepStrictEqual(Array.from(ordered), ["echo a", "echo b", "echo c"])
      const unordered = yield* Stream.runCollect(
        ThreadPool.mapStream(Stream.make("x", "y"), pool, Echo, { unordered: true, buffer: 1 })
      )
      assert.deepStrictEqual(Array.from(unordered).sort(), ["echo x", "echo y"])
    }))
})

describe("public types", () => {
  /**
   * The public modules' `export type X = Y.Z`, where `Y` is a namespace imported from src/internal:
   * such a type shows in the docs and in editors as an internal name the user cannot import.
   */
  const internalAliases = (): Array<string> => {
    const src = fileURLToPath(new URL("../src/", import.meta.url))
    const found: Array<string> = []
    for (const file of fs.readdirSync(src).filter((name) => name.endsWith(".ts"))) {
      const text = fs.readFileSync(path.join(src, file), "utf8")
      const internal = new Set(
        Array.from(text.matchAll(/^import (?:type )?\* as (\w+) from "\.\/internal\//gm), (match) => match[1]!)
      )
      for (const match of text.matchAll(/^export type (\w+)(?:<[^=]*>)? = (\w+)\.\w+/gm)) {
        if (internal.has(match[2]!)) found.push(`${file}: ${match[1]}`)
      }
    }
    return found
  }

  it("no public type is a bare alias of an internal one", () => {
    // JobStore.JobStore (the store interface, src/internal/store/model.ts) is the stores' to move
    assert.deepStrictEqual(internalAliases().filter((alias) => alias !== "JobStore.ts: JobStore"), [])
  })
})
