/**
 * Hostile cases for parked threads (src/internal/park.ts): user code on the thread that the park's
 * check cannot see must still run, and whatever the pool sends must still reach the thread.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as ThreadPool from "../src/ThreadPool.ts"
import { Broadcast, Bytes, Daemon, ExitLater, ReadFile, Ticks, WaitAsync } from "./fixtures/park-hostile-tasks.ts"
import { Parked } from "./fixtures/park-tasks.ts"
import { waitFor } from "./helpers.ts"

const makePool = (options: Partial<ThreadPool.Options> = {}) =>
  Effect.gen(function*() {
    const shared = new SharedArrayBuffer(4 * 8)
    const pool = yield* ThreadPool.make({
      worker: new URL("./fixtures/park-hostile-worker.ts", import.meta.url),
      threads: 1,
      workerData: { cells: shared },
      ...options
    })
    return { pool, cells: new Int32Array(shared) }
  })

const sleep = (ms: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, ms)))

/** Runs `Parked` tasks (20 ms apart) until one is taken parked; fails after 100. */
const parksAgain = (pool: ThreadPool.ThreadPool) =>
  Effect.gen(function*() {
    for (let i = 0; i < 100; i++) {
      yield* sleep(20)
      if ((yield* pool.run(Parked, i)) === 1) return
    }
    assert.fail("the thread never parked again")
  })

const cell = (cells: Int32Array, i: number) => Effect.sync(() => Atomics.load(cells, i))

describe("ThreadPool: parked threads against user code", () => {
  it.live("an Atomics.waitAsync of user code resolves while the thread parks", () =>
    Effect.gen(function*() {
      const { cells, pool } = yield* makePool()
      yield* parksAgain(pool)
      yield* pool.run(WaitAsync, 0)
      yield* parksAgain(pool)
      Atomics.store(cells, 0, 1)
      Atomics.notify(cells, 0)
      yield* waitFor(Effect.map(cell(cells, 1), (v) => v === 1), "the waitAsync resolved")
    }))

  it.live("a BroadcastChannel of user code gets its messages", () =>
    Effect.gen(function*() {
      const { cells, pool } = yield* makePool()
      yield* parksAgain(pool)
      yield* pool.run(Broadcast, 0)
      const channel = new BroadcastChannel("park-hostile")
      try {
        for (let i = 1; i <= 5; i++) {
          channel.postMessage(i)
          yield* waitFor(Effect.map(cell(cells, 2), (v) => v === i), `broadcast ${i} arrived`)
          yield* sleep(30)
        }
      } finally {
        channel.close()
      }
    }))

  it.live("a daemon fiber a task forks runs its timer", () =>
    Effect.gen(function*() {
      const { cells, pool } = yield* makePool()
      yield* parksAgain(pool)
      yield* pool.run(Daemon, 50)
      yield* waitFor(Effect.map(cell(cells, 3), (v) => v === 1), "the daemon fiber woke")
      yield* parksAgain(pool)
    }))

  it.live("a process.nextTick chain a task leaves runs", () =>
    Effect.gen(function*() {
      const { cells, pool } = yield* makePool()
      yield* parksAgain(pool)
      yield* pool.run(Ticks, 10_000)
      yield* waitFor(Effect.map(cell(cells, 4), (v) => v === 1), "the tick chain ended")
    }))

  it.live("an unref'd top-level interval of the worker file keeps ticking while the thread parks", () =>
    Effect.gen(function*() {
      const { cells, pool } = yield* makePool()
      yield* parksAgain(pool)
      const from = Atomics.load(cells, 5)
      yield* waitFor(Effect.map(cell(cells, 5), (v) => v - from >= 50), "50 ticks of the interval")
      yield* parksAgain(pool)
    }))

  it.live("a file read a synchronous task leaves behind ends", () =>
    Effect.gen(function*() {
      const { cells, pool } = yield* makePool()
      yield* parksAgain(pool)
      const path = new URL("./fixtures/park-hostile-worker.ts", import.meta.url).pathname
      yield* pool.run(ReadFile, path)
      yield* waitFor(Effect.map(cell(cells, 6), (v) => v > 0), "the read ended")
      yield* parksAgain(pool)
    }))

  it.live("a parked thread takes transferred and shared buffers; shutdownNow ends parked threads", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 2 })
      yield* parksAgain(pool)
      const shared = new Int32Array(new SharedArrayBuffer(4))
      for (let i = 1; i <= 5; i++) {
        const bytes = new Uint8Array(1000 * i)
        yield* sleep(20)
        const n = yield* pool.run(Bytes, { bytes, shared }, { transfer: [bytes.buffer] })
        assert.strictEqual(n, 1000 * i + i)
        assert.strictEqual(bytes.byteLength, 0, "the buffer was transferred")
      }
      assert.strictEqual(Atomics.load(shared, 0), 5)
      yield* parksAgain(pool)
      const unstarted = yield* pool.shutdownNow.pipe(Effect.timeout("30 seconds"))
      assert.strictEqual(unstarted.length, 0)
      yield* waitFor(Effect.map(pool.threads, (n) => n === 0), "no thread left")
    }))

  it.live("a thread that exits between parks (an unref'd timer of user code) is replaced; no task is lost", () =>
    Effect.gen(function*() {
      const { cells, pool } = yield* makePool()
      yield* parksAgain(pool)
      yield* pool.run(ExitLater, 50)
      yield* waitFor(Effect.map(cell(cells, 7), (v) => v === 1), "the thread's timer fired")
      // a task sent as the thread exits may reach it (WorkerCrashed, parked or not): at most one
      const first = yield* Effect.exit(pool.run(Parked, 0))
      if (first._tag === "Failure") {
        assert.match(String(first.cause), /WorkerCrashed/)
      }
      const results = yield* Effect.all(Array.from({ length: 20 }, (_, i) => pool.run(Parked, i)), { concurrency: 2 })
      assert.strictEqual(results.length, 20)
      yield* parksAgain(pool)
      const stats = yield* pool.stats
      const crashed = first._tag === "Failure" ? 1 : 0
      assert.strictEqual(stats.succeeded + crashed, stats.submitted, JSON.stringify(stats))
      assert.strictEqual(stats.running + stats.queued, 0, JSON.stringify(stats))
    }))

  it.live("many pools in one process: every task ends once, each pool's threads park on their own", () =>
    Effect.gen(function*() {
      const pools = yield* Effect.all(Array.from({ length: 4 }, () => makePool({ threads: 2 })))
      for (const { pool } of pools) yield* parksAgain(pool)
      const results = yield* Effect.all(
        pools.map(({ pool }) =>
          Effect.all(Array.from({ length: 200 }, (_, i) => pool.run(Parked, i).pipe(Effect.as(1))), { concurrency: 3 })
        ),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(results.map((r) => r.length), [200, 200, 200, 200])
      for (const { pool } of pools) {
        const stats = yield* pool.stats
        assert.isAtLeast(stats.submitted, 200)
        assert.strictEqual(stats.succeeded, stats.submitted, JSON.stringify(stats))
        assert.strictEqual(stats.running + stats.queued, 0, JSON.stringify(stats))
        yield* parksAgain(pool)
      }
    }))
})
