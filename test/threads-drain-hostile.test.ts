/**
 * Hostile tests of the main thread taking a thread's queued messages in one 'message' callback
 * (threads.ts, `DRAIN`) and of a thread's wake signal (park.ts: notified only while parked): answers
 * queued behind each other and then the thread's exit, an unreadable reply among them, many threads
 * answering at once while callers cancel. Nothing may be lost, answered twice, or reordered.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Option } from "effect"
import { PoolError } from "../src/index.ts"
import * as ThreadPool from "../src/ThreadPool.ts"
import { Parked } from "./fixtures/park-tasks.ts"
import { Count as Steps } from "./fixtures/observe-tasks.ts"
import { addsUp, blockUntil, makePool } from "./fixtures/pool.ts"
import { Count, Crash, Deep, Echo, Sleep } from "./fixtures/tasks.ts"

// as threads-edges.test.ts: the thread can send an array nested this deep, the main thread cannot read it
const bigStack = { resourceLimits: { stackSizeMb: 64 } } as const
const DEEP = 100_000

describe("ThreadPool: a thread's queued messages taken in one callback", () => {
  it.live("answers queued behind each other, then the thread exits: each answered task keeps its answer", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 1 })
      yield* pool.run(Echo, "warm")
      // one message: Count 2 starts, Count 3 and the crash are offered; the thread answers each Count in
      // a message of its own, then exits (code 3) as it starts the crash
      const two = yield* pool.submit(Count, 2)
      const three = yield* pool.submit(Count, 3)
      const crash = yield* pool.submit(Crash, "exit")
      yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
      // the main thread reads nothing until Count 3 has run: both answers wait on the port, and the
      // thread's exit comes while they do
      assert.isTrue(blockUntil(counters, 3, 20_000), "Count 3 ran")
      assert.strictEqual(yield* two.await, 2)
      assert.strictEqual(yield* three.await, 3)
      const error = yield* Effect.flip(crash.await)
      assert.instanceOf(error, PoolError.WorkerCrashed)
      assert.include((error as PoolError.WorkerCrashed).reason, "code 3")
      assert.strictEqual(yield* pool.run(Echo, "after"), "echo after")
    }))

  it.live("an unreadable reply queued between answers, then the thread exits: only its task fails", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 1, ...bigStack })
      yield* pool.run(Echo, "warm")
      // one message: Count 2 starts, Deep, Count 3 and the crash are offered; the thread answers
      // Count 2, Deep (a reply the main thread cannot read) and Count 3 in messages of their own,
      // then exits as it starts the crash
      const two = yield* pool.submit(Count, 2)
      const deep = yield* pool.submit(Deep, DEEP)
      const three = yield* pool.submit(Count, 3)
      const crash = yield* pool.submit(Crash, "exit")
      yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
      assert.isTrue(blockUntil(counters, 3, 20_000), "Count 3 ran")
      // and a while longer, for the thread to exit too (it does as it starts the crash): the worker's
      // 'exit' then comes with its replies unread, and the exit listener reads them
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300)
      assert.strictEqual(yield* two.await, 2)
      assert.isTrue(Exit.isFailure(yield* Effect.exit(deep.await.pipe(Effect.timeout("20 seconds")))), "Deep fails")
      assert.strictEqual(yield* three.await, 3)
      assert.instanceOf(yield* Effect.flip(crash.await), PoolError.WorkerCrashed)
    }))

  it.live("4 threads answering 4,000 tasks at once, half of them interrupted as they go: every answer is its task's", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 4, tasksPerThread: 2 })
      const n = 4000
      const handles = yield* Effect.all(Array.from({ length: n }, (_, i) => pool.submit(Echo, String(i))))
      // interrupt every other one while the threads answer the rest
      const interrupter = yield* Effect.forkChild(Effect.forEach(
        handles.filter((_, i) => i % 2 === 1),
        (handle) => Effect.andThen(Effect.yieldNow, handle.interrupt),
        { discard: true }
      ))
      for (let i = 0; i < n; i += 2) assert.strictEqual(yield* handles[i]!.await, `echo ${i}`)
      yield* Fiber.join(interrupter)
      for (let i = 1; i < n; i += 2) {
        const exit = yield* Effect.exit(handles[i]!.await)
        // answered before its interrupt, or interrupted: never someone else's answer
        if (Exit.isSuccess(exit)) assert.strictEqual(exit.value, `echo ${i}`)
      }
      const stats = yield* pool.stats
      assert.strictEqual(stats.succeeded + stats.interrupted, n + 0, JSON.stringify(stats))
      assert.strictEqual(yield* pool.run(Sleep, { millis: 1, mark: 9 }), 1)
    }), 120_000)

  it.live("progress and answers of many jobs taken together: each job ends with its last progress", () =>
    Effect.gen(function*() {
      const pool = yield* ThreadPool.make({
        worker: new URL("./fixtures/observe-worker.ts", import.meta.url),
        threads: 3,
        tasksPerThread: 4
      })
      // every job reports 1..n (yielding between reports), its last report goes just before its answer
      const handles = yield* Effect.all(Array.from({ length: 300 }, (_, i) => pool.submit(Steps, 1 + (i % 7))))
      for (let i = 0; i < handles.length; i++) {
        const n = 1 + (i % 7)
        assert.strictEqual(yield* handles[i]!.await, n)
        assert.deepStrictEqual(yield* handles[i]!.progress, Option.some(n), `job ${i}`)
      }
    }), 60_000)

  it.live("bursts that fill every offer cell, the thread parked between them: every task answered once", () =>
    Effect.gen(function*() {
      // one slot: all but one task of a burst wait as offers, up to MAX_OFFERS cells (behind the wake
      // signal's cells in the thread's shared buffer); between bursts the thread parks on its signal
      const pool = yield* ThreadPool.make({
        worker: new URL("./fixtures/park-worker.ts", import.meta.url),
        threads: 1,
        tasksPerThread: 1,
        workerData: { counters: new SharedArrayBuffer(16) }
      })
      let parked = 0
      for (let round = 0; round < 12; round++) {
        const burst = yield* Effect.all(Array.from({ length: 150 }, (_, i) => pool.submit(Parked, i)))
        for (const handle of burst) assert.include([0, 1], yield* handle.await)
        // idle: the thread parks (within PARK_MS of its last answer); the next single task wakes it
        yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5)))
        parked += yield* pool.run(Parked, -1)
      }
      const stats = yield* pool.stats
      assert.strictEqual(stats.succeeded, 12 * 151, JSON.stringify(stats))
      assert.isAtMost(parked, 12)
    }), 60_000)

  it.live("shutdownNow while 3 threads stream answers: every job ends once, with its own answer or unstarted", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 3, tasksPerThread: 2 })
      const n = 3000
      const handles = yield* Effect.all(Array.from({ length: n }, (_, i) => pool.submit(Echo, String(i))))
      // once a few hundred have answered (the rest streaming, queued on the ports), stop at once
      for (let i = 0; i < 300; i++) assert.strictEqual(yield* handles[i]!.await, `echo ${i}`)
      const unstarted = yield* pool.shutdownNow
      let answered = 0
      for (let i = 0; i < n; i++) {
        const exit = yield* Effect.exit(handles[i]!.await.pipe(Effect.timeout("30 seconds")))
        if (Exit.isSuccess(exit)) {
          assert.strictEqual(exit.value, `echo ${i}`)
          answered++
        }
      }
      const stats = yield* pool.stats
      assert.isTrue(addsUp(stats), JSON.stringify(stats))
      assert.strictEqual(stats.succeeded, answered, JSON.stringify(stats))
      assert.isAtMost(unstarted.length + answered, n)
      // no unstarted task was also answered
      const unstartedPayloads = new Set(unstarted.map((task) => task.payload))
      for (let i = 0; i < n; i++) {
        if (unstartedPayloads.has(String(i))) {
          assert.isTrue(Exit.isFailure(yield* Effect.exit(handles[i]!.await)), `task ${i} unstarted and answered`)
        }
      }
    }), 60_000)
})
