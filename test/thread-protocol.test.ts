/**
 * A pool and its worker file on different copies of effect-workpool (a monorepo, a duplicate
 * install): the thread protocol's version (protocol.ts's PROTOCOL) is checked by each side, so that
 * copies that do not speak the same protocol fail the start with a reason naming both versions,
 * never a hang or a task run between them; two copies of the same version work together.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Schedule, Schema } from "effect"
import { cpSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { PoolError } from "../src/index.ts"
import { PROTOCOL } from "../src/internal/protocol.ts"
import * as Task from "../src/Task.ts"
import * as ThreadPool from "../src/ThreadPool.ts"

const otherCopy = new URL("./fixtures/protocol/other-copy-worker.ts", import.meta.url)
const oldPool = new URL("./fixtures/protocol/old-pool-worker.ts", import.meta.url)

/** Why `make` failed, as `WorkerStartFailed`. */
const startFailure = <A, E>(make: Effect.Effect<A, E, any>) =>
  Effect.map(Effect.flip(make), (error) => {
    assert.instanceOf(error, PoolError.WorkerStartFailed)
    return error as PoolError.WorkerStartFailed
  })

const ADVICE = "`npm ls effect-workpool`"

describe("ThreadPool: a worker file on another copy of effect-workpool", () => {
  it.live("a thread of a copy from before versions (its ready carries none) is refused at once, and sent no task", () =>
    Effect.gen(function*() {
      const counters = new Int32Array(new SharedArrayBuffer(8))
      const error = yield* startFailure(ThreadPool.make({
        worker: otherCopy,
        threads: 1,
        workerData: { speak: "old", counters: counters.buffer }
      }))
      assert.strictEqual(error.attempts, 1, "not tried again: the same file would say the same")
      assert.include(error.reason, `the pool's: version ${PROTOCOL}; the thread's: none, a copy from before versions`)
      assert.include(error.reason, ADVICE)
      assert.strictEqual(Atomics.load(counters, 0), 0, "no message reached the thread")
    }))

  // 0.1 (released) talked to its threads over parentPort, in envelopes under the same key: its ready
  // was taken for a user's message, and the start waited startTimeout, then tried again, with no word
  // of the copies
  it.live("a thread of effect-workpool 0.1 (its ready on parentPort) is refused at once, naming 0.1", () =>
    Effect.gen(function*() {
      const counters = new Int32Array(new SharedArrayBuffer(8))
      const error = yield* startFailure(ThreadPool.make({
        worker: otherCopy,
        threads: 1,
        startTimeout: "20 seconds",
        workerData: { speak: "0.1", counters: counters.buffer }
      }))
      assert.strictEqual(error.attempts, 1)
      assert.include(error.reason, `the pool's: version ${PROTOCOL}; the thread's: effect-workpool 0.1`)
      assert.include(error.reason, ADVICE)
      assert.strictEqual(Atomics.load(counters, 0), 0)
    }))

  it.live("a thread of a newer copy that reports ready with its own version is refused, naming both", () =>
    Effect.gen(function*() {
      const counters = new Int32Array(new SharedArrayBuffer(8))
      const error = yield* startFailure(ThreadPool.make({
        worker: otherCopy,
        threads: 2,
        workerData: { speak: "newerReady", counters: counters.buffer }
      }))
      assert.strictEqual(error.attempts, 1)
      assert.include(error.reason, `the pool's: version ${PROTOCOL}; the thread's: version 1000`)
      assert.strictEqual(Atomics.load(counters, 0), 0)
    }))

  it.live("a thread of a newer copy that finds the mismatch itself (its fatal carries its version) is refused at once", () =>
    Effect.gen(function*() {
      const counters = new Int32Array(new SharedArrayBuffer(8))
      const error = yield* startFailure(ThreadPool.make({
        worker: otherCopy,
        threads: 1,
        workerData: { speak: "newer", counters: counters.buffer }
      }))
      assert.strictEqual(error.attempts, 1)
      assert.include(error.reason, `the pool's: version ${PROTOCOL}; the thread's: version 1000`)
      assert.include(error.reason, ADVICE)
    }))

  it.live("a thread that speaks garbage on the pool's port before it is ready is refused, showing what it sent", () =>
    Effect.gen(function*() {
      const counters = new Int32Array(new SharedArrayBuffer(8))
      const error = yield* startFailure(ThreadPool.make({
        worker: otherCopy,
        threads: 1,
        // without the check the start would wait for a ready that never comes
        startTimeout: "10 minutes",
        workerData: { speak: "garbage", counters: counters.buffer }
      }))
      assert.strictEqual(error.attempts, 1)
      assert.include(error.reason, `the pool's: version ${PROTOCOL}; the thread's: unknown, as it sent 'HELO effect-workpool/9'`)
      assert.strictEqual(Atomics.load(counters, 0), 0)
    }))

  it.live("a mismatch found by a later thread start (a resize) fails that start the same way", () =>
    Effect.gen(function*() {
      const counters = new Int32Array(new SharedArrayBuffer(8))
      const pool = yield* ThreadPool.make({
        worker: otherCopy,
        threads: 1,
        workerData: { speak: "old", counters: counters.buffer, serveFirst: true }
      })
      const error = yield* startFailure(pool.resize(2))
      assert.include(error.reason, "the thread's: none, a copy from before versions")
      assert.strictEqual(Atomics.load(counters, 0), 0)
      assert.strictEqual(yield* pool.threads, 1)
    }))

  for (const [given, pool] of [[undefined, "none, a copy from before versions"], [PROTOCOL + 1, `version ${PROTOCOL + 1}`]] as const) {
    it.live(`this copy's thread refuses a pool whose start data has protocol ${pool}, running no handler`, () =>
      Effect.gen(function*() {
        const counters = new Int32Array(new SharedArrayBuffer(8))
        const error = yield* startFailure(ThreadPool.make({
          worker: oldPool,
          threads: 1,
          startSchedule: Schedule.recurs(0),
          workerData: { counters: counters.buffer, protocol: given }
        }))
        // the pool of another copy hears this in the thread's fatal: its message is all it reads
        assert.include(error.reason, `the pool's: ${pool}; the thread's: version ${PROTOCOL}`)
        assert.include(error.reason, ADVICE)
        assert.strictEqual(Atomics.load(counters, 0), 0)
        assert.strictEqual(Atomics.load(counters, 1), 1, "the worker file read its own workerData")
      }))
  }
})

/** A folder with a copy of effect-workpool's source in `src` (a second install of this version), removed with the scope. */
const copyOfSource = Effect.gen(function*() {
  const dir = mkdtempSync(join(tmpdir(), "workpool-copy-"))
  yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
  cpSync(fileURLToPath(new URL("../src", import.meta.url)), join(dir, "src"), { recursive: true })
  symlinkSync(fileURLToPath(new URL("../node_modules", import.meta.url)), join(dir, "node_modules"), "dir")
  writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }))
  return dir
})

describe("ThreadPool: a worker file on a second copy of the same version", () => {
  it.live("works with the pool as one copy does (a duplicate install)", () =>
    Effect.gen(function*() {
      const dir = yield* copyOfSource
      writeFileSync(
        join(dir, "worker.ts"),
        `import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Task from "./src/Task.ts"
import * as ThreadWorker from "./src/ThreadWorker.ts"
const Where = Task.make("Where", { payload: Schema.String, success: Schema.String })
ThreadWorker.serve([Task.handle(Where, (name) => Effect.succeed(name + " " + import.meta.resolve("./src/ThreadWorker.ts")))])
`
      )
      const Where = Task.make("Where", { payload: Schema.String, success: Schema.String })
      const pool = yield* ThreadPool.make({ worker: pathToFileURL(join(dir, "worker.ts")), threads: 2 })
      const answers = yield* Effect.forEach(["a", "b", "c", "d"], (name) => pool.run(Where, name), { concurrency: 4 })
      const copy = pathToFileURL(join(dir, "src", "ThreadWorker.ts")).href
      assert.deepStrictEqual(answers, ["a", "b", "c", "d"].map((name) => `${name} ${copy}`))
    }))
})

describe("ThreadPool: two copies of effect-workpool loaded in one thread", () => {
  // a dependency of the worker file imports one copy's ThreadWorker, which takes the pool's port as it
  // loads; the worker file serves with another copy (two installs), which finds no pool's data left.
  // Its serve said it must run in a pool's thread, which it does
  it.live("the second copy's serve says two copies are loaded, naming both and how to list them", () =>
    Effect.gen(function*() {
      const dir = yield* copyOfSource
      const first = new URL("../src/ThreadWorker.ts", import.meta.url).href
      writeFileSync(join(dir, "dependency.ts"), `import * as ThreadWorker from ${JSON.stringify(first)}\nexport const loaded = typeof ThreadWorker.serve\n`)
      writeFileSync(
        join(dir, "worker.ts"),
        `import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import "./dependency.ts"
import * as Task from "./src/Task.ts"
import * as ThreadWorker from "./src/ThreadWorker.ts"
const Where = Task.make("Where", { payload: Schema.String, success: Schema.String })
ThreadWorker.serve([Task.handle(Where, (name) => Effect.succeed(name))])
`
      )
      const error = yield* startFailure(ThreadPool.make({
        worker: pathToFileURL(join(dir, "worker.ts")),
        threads: 1,
        startSchedule: Schedule.recurs(0)
      }))
      assert.include(error.reason, "two copies of effect-workpool")
      assert.include(error.reason, first)
      assert.include(error.reason, pathToFileURL(join(dir, "src", "ThreadWorker.ts")).href)
      assert.include(error.reason, ADVICE)
      assert.notInclude(error.reason, "must run in a worker thread started by a ThreadPool")
    }))
})
