/**
 * An idle thread waits for its next task parked in `Atomics.wait` (src/internal/park.ts), woken by
 * the main thread after each post, rather than in its event loop. It parks only while nothing else
 * could need its loop, and everything the pool asks of a thread still reaches a parked one.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { afterEach, vi } from "vitest"
import { COUNTER, PARKED, SIGNAL_CELLS, wake } from "../src/internal/park.ts"
import * as PoolError from "../src/PoolError.ts"
import * as ThreadPool from "../src/ThreadPool.ts"
import { Anything, ClearTimer, LeavePromise, Nap, Parked, SetTimer } from "./fixtures/park-tasks.ts"
import { waitFor } from "./helpers.ts"

const makePool = (options: Partial<ThreadPool.Options> = {}) =>
  Effect.gen(function*() {
    const counters = new SharedArrayBuffer(4 * 4)
    const pool = yield* ThreadPool.make({
      worker: new URL("./fixtures/park-worker.ts", import.meta.url),
      threads: 1,
      workerData: { counters },
      ...options
    })
    return { pool, counters: new Int32Array(counters) }
  })

/**
 * How many of `n` `Parked` tasks, one at a time with `gap` ms between them, the thread took parked.
 * Not always all: a thread the machine does not run between its answer and its park (a loaded
 * machine does that) gets its next task through its event loop, as it would without parking.
 */
const parkedOf = (pool: ThreadPool.ThreadPool, n: number, gap: number) =>
  Effect.gen(function*() {
    let parked = 0
    for (let i = 0; i < n; i++) {
      if (gap > 0) yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, gap)))
      parked += yield* pool.run(Parked, i)
    }
    return parked
  })

/** Runs `Parked` tasks (20 ms apart) until one is taken parked; fails after 100. */
const parksAgain = (pool: ThreadPool.ThreadPool) =>
  Effect.gen(function*() {
    for (let i = 0; i < 100; i++) if ((yield* parkedOf(pool, 1, 20)) === 1) return
    assert.fail("the thread never parked again")
  })

describe("ThreadPool: an idle thread parks", () => {
  it.live("an idle thread takes its next task parked, not through its event loop", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool()
      // back to back, and after idle gaps longer than one park (the thread parks again after a turn)
      const parked = (yield* parkedOf(pool, 20, 0)) + (yield* parkedOf(pool, 20, 25))
      assert.isAtLeast(parked, 20, `${parked} of 40 tasks taken parked`)
    }))

  it.live("after a batch of tasks (a backlog) has run, a single task parks the thread again", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool()
      yield* parksAgain(pool)
      // submitted in one tick: the first task and those sent ahead of it travel in one message
      const handles = yield* Effect.all(Array.from({ length: 6 }, (_, i) => pool.submit(Parked, i)))
      for (const handle of handles) yield* handle.await
      // whether the next task comes through the event loop is a race (the thread parks again once
      // its batch has ended, and the next task may come before or after): only that it parks again
      // is certain
      yield* parksAgain(pool)
    }))

  it.live("a thread with a timer of user code pending stays in its event loop, and the timer fires on time", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool()
      yield* parksAgain(pool)
      // a long timer: while it is pending, the thread must not block its loop
      yield* pool.run(SetTimer, 60_000)
      assert.strictEqual(yield* parkedOf(pool, 10, 15), 0, "parked with a timer pending")
      yield* pool.run(ClearTimer, 0)
      // once nothing else is pending, it parks again
      yield* parksAgain(pool)
      // a short timer fires while the thread is idle: on time, not after a park
      const started = Date.now()
      yield* pool.run(SetTimer, 30)
      yield* waitFor(Effect.sync(() => Atomics.load(counters, 0) === 1), "the timer fired")
      assert.isBelow(Date.now() - started, 5_000)
    }))

  it.live("a promise left behind by a task that ran parked runs, though the thread stays idle", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool()
      // back to back: the task comes while the thread is parked, is answered, and the thread parks on
      yield* parksAgain(pool)
      yield* pool.run(LeavePromise, 0)
      yield* waitFor(Effect.sync(() => Atomics.load(counters, 2) === 1), "the promise ran")
    }))

  it.live("a task sent to a parked thread can be cancelled; it runs its finalizers", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool()
      yield* parksAgain(pool)
      const nap = yield* pool.submit(Nap, 600_000)
      yield* waitFor(Effect.map(nap.status, (s) => s === "running"), "the nap started")
      yield* nap.interrupt
      assert.strictEqual(Atomics.load(counters, 1), 1, "its finalizer ran on the thread")
      yield* parksAgain(pool)
    }))

  it.live("a message a parked thread cannot deserialize fails its task with TaskCodecError; the thread goes on", () =>
    Effect.gen(function*() {
      // as in threads-edges: an array nested 2,500 deep, which a thread with half a megabyte of stack cannot read
      const { pool } = yield* makePool({ resourceLimits: { stackSizeMb: 0.5 } })
      yield* parksAgain(pool)
      let value: unknown = 0
      for (let i = 0; i < 2500; i++) value = [value]
      const error = yield* Effect.flip(pool.run(Anything, value).pipe(Effect.timeout("20 seconds")))
      assert.instanceOf(error, PoolError.TaskCodecError, String(error))
      assert.match((error as PoolError.TaskCodecError).issue, /the thread could not deserialize the message carrying it: RangeError/)
      assert.strictEqual(yield* pool.run(Anything, 0), 1)
      yield* parksAgain(pool)
    }))

  it.live("parked threads close at shutdown, and a shrink closes a parked thread, without being terminated", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 2, cancelGrace: "60 seconds" })
      yield* Effect.all([pool.run(Parked, 0), pool.run(Parked, 1)], { concurrency: 2 })
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 20)))
      const started = Date.now()
      yield* pool.resize(1)
      yield* waitFor(Effect.map(pool.threads, (n) => n === 1), "one thread left")
      yield* parksAgain(pool)
      const shutdown = yield* Effect.forkChild(pool.shutdown)
      yield* Fiber.join(shutdown)
      // asked to close, a thread exits at once; terminated, it would have waited out cancelGrace
      assert.isBelow(Date.now() - started, 30_000)
    }))
})

describe("the wake signal of a thread", () => {
  afterEach(() => {
    vi.restoreAllMocks()
  })

  it("a post bumps the counter, and notifies only while the thread is parked", () => {
    const notify = vi.spyOn(Atomics, "notify")
    const signal = new Int32Array(new SharedArrayBuffer(4 * SIGNAL_CELLS))
    // in its event loop or running a task: the post itself reaches the thread
    wake(signal)
    wake(signal)
    assert.strictEqual(Atomics.load(signal, COUNTER), 2)
    assert.strictEqual(notify.mock.calls.length, 0)
    Atomics.store(signal, PARKED, 1)
    wake(signal)
    assert.strictEqual(Atomics.load(signal, COUNTER), 3)
    assert.strictEqual(notify.mock.calls.length, 1)
    const [array, index, count] = notify.mock.calls[0]!
    assert.strictEqual(array, signal as unknown)
    assert.deepStrictEqual([index, count], [COUNTER, 1])
  })
})
