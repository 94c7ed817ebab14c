/**
 * The prefetched next task per thread: while a thread runs a task, the pool offers it the next
 * queued one, which the thread starts the moment it has room, with no round trip to the main
 * thread. An offer is still queued for every purpose until the thread starts it: stats, cancel,
 * queue timeout, pause, shutdownNow, priority, resize and a crash of its thread see a queued job.
 *
 * `Hold` runs until the test sets its release slot; `Mark` counts its starts. Blocking the main
 * thread (`Atomics.wait`) shows what a thread does with no help from it.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import { MessagePort } from "node:worker_threads"
import { Crash, Echo, Flaky, Hold, Mark, Spin } from "./fixtures/tasks.ts"
import { addsUp, blockUntil, makePool as makeThreadPool, makeReleasingPool as makePool } from "./fixtures/pool.ts"
import { depth, MAX_OFFERS, MIN_OFFERS } from "../src/internal/threads.ts"
import { settle, waitFor } from "./helpers.ts"

/**
 * Blocks the main thread until `done()` or `millis` pass; whether it got there. Every `Mark` task
 * bumps slot 15 (its start order), which wakes the wait.
 */
const blockUntilTrue = (counters: Int32Array, done: () => boolean, millis: number): boolean => {
  const deadline = Date.now() + millis
  while (!done()) {
    const left = deadline - Date.now()
    if (left <= 0) return false
    Atomics.wait(counters, 15, Atomics.load(counters, 15), Math.min(left, 50))
  }
  return true
}

/** Runs `n` tasks of `millis` one after the other on a fresh pool, so that its thread's pace is known (slot 12). */
const setPace = (pool: Effect.Success<ReturnType<typeof makeThreadPool>>["pool"], millis: number, n: number) =>
  Effect.forEach(Array.from({ length: n }), () => pool.run(Mark, { mark: 12, millis }), { discard: true })

describe("ThreadPool prefetch", () => {
  // the main thread starts an offer's clock (its timeout) and lets a cancel reach it only when the
  // answer before it arrives: a thread that held the answers of short tasks while it ran its next
  // offer hid a stuck task from its timeout, and the short task's answer with it (found in review)
  it.live("a short task's answer goes out before its thread starts the next offer: a stuck task after it still times out", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 1, cancelGrace: "100 millis" })
      // short tasks make the thread's pace short, where answers used to be held
      yield* Effect.forEach(Array.from({ length: 2000 }, (_, i) => String(i)), (s) => pool.run(Echo, s), {
        concurrency: 50,
        discard: true
      })
      const hold = yield* pool.submit(Hold, { mark: 0, release: 1 })
      const short = yield* pool.submit(Echo, "short")
      const stuck = yield* pool.submit(Spin, 1, { timeout: "300 millis" })
      yield* waitFor(Effect.sync(() => Atomics.load(counters, 0)), "the first task started", { until: (n) => n === 1 })
      yield* settle
      yield* Effect.sync(() => Atomics.store(counters, 1, 1))
      assert.strictEqual(yield* hold.await, 0)
      assert.strictEqual(yield* Effect.timeout(short.await, "10 seconds"), "echo short")
      const error = yield* Effect.flip(Effect.timeout(stuck.await, "10 seconds"))
      assert.strictEqual(error._tag, "JobTimeout")
    }), { timeout: 60_000 })

  it.live("a thread starts its next task while the main thread is blocked (no round trip)", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 1 })
      const a = yield* pool.submit(Hold, { mark: 0, release: 1 })
      const b = yield* pool.submit(Mark, { mark: 2, millis: 0 })
      yield* waitFor(Effect.sync(() => Atomics.load(counters, 0)), "the first task started", { until: (n) => n === 1 })
      yield* settle
      // the main thread does nothing from here until the second task has started
      const started = yield* Effect.sync(() => {
        Atomics.store(counters, 1, 1)
        return blockUntil(counters, 2, 5000)
      })
      assert.isTrue(started, "the thread started the offered task on its own")
      assert.strictEqual(yield* a.await, 0)
      assert.strictEqual(yield* b.await, 2)
      assert.strictEqual(Atomics.load(counters, 2), 1, "it ran once")
    }))

  it.live("a backlog of 3,000 short tasks on 2 threads: every task runs exactly once", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 2, capacity: Infinity })
      const handles = yield* Effect.forEach(
        Array.from({ length: 3000 }, (_, i) => i),
        (i) => pool.submit(Mark, { mark: 2, millis: i % 7 === 0 ? 1 : 0 })
      )
      yield* Effect.forEach(handles, (h) => h.await, { discard: true })
      assert.strictEqual(Atomics.load(counters, 2), 3000, "runs in all")
      const s = yield* pool.stats
      assert.deepStrictEqual([s.succeeded, s.queued, s.running], [3000, 0, 0])
    }))

  it.live("an offered task is queued in stats and status until its thread starts it", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 1 })
      yield* pool.submit(Hold, { mark: 0, release: 1 })
      const b = yield* pool.submit(Mark, { mark: 2, millis: 0 })
      yield* waitFor(Effect.sync(() => Atomics.load(counters, 0)), "the first task started", { until: (n) => n === 1 })
      yield* settle
      const s = yield* pool.stats
      assert.deepStrictEqual([s.running, s.queued], [1, 1])
      assert.deepStrictEqual(s.queuedByPriority, [{ priority: 0, count: 1 }])
      assert.strictEqual(yield* b.status, "queued")
      assert.isTrue(addsUp(s))
      Atomics.store(counters, 1, 1)
      yield* b.await
      const after = yield* pool.stats
      assert.deepStrictEqual([after.running, after.queued, after.succeeded], [0, 0, 2])
    }))

  it.live("a cancelled offer never runs", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 1 })
      const a = yield* pool.submit(Hold, { mark: 0, release: 1 })
      const b = yield* pool.submit(Mark, { mark: 2, millis: 0 })
      yield* waitFor(Effect.sync(() => Atomics.load(counters, 0)), "the first task started", { until: (n) => n === 1 })
      yield* settle
      yield* b.interrupt
      assert.strictEqual(yield* b.status, "interrupted")
      Atomics.store(counters, 1, 1)
      yield* a.await
      // the thread has read the withdrawn offer by the time it answers a task sent after it
      assert.strictEqual(yield* pool.run(Mark, { mark: 4, millis: 0 }), 4)
      assert.strictEqual(Atomics.load(counters, 2), 0, "the withdrawn offer did not run")
      const s = yield* pool.stats
      assert.deepStrictEqual([s.succeeded, s.interrupted], [2, 1])
      assert.isTrue(addsUp(s))
    }))

  it.live("cancelling a task its thread has started before the main thread knew interrupts it", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 1 })
      const a = yield* pool.submit(Hold, { mark: 0, release: 1 })
      const b = yield* pool.submit(Mark, { mark: 2, millis: 60_000 })
      yield* waitFor(Effect.sync(() => Atomics.load(counters, 0)), "the first task started", { until: (n) => n === 1 })
      yield* settle
      const { cancel, status } = yield* Effect.sync(() => {
        Atomics.store(counters, 1, 1)
        assert.isTrue(blockUntil(counters, 2, 5000), "the thread started the offered task")
        // the first task's answer has not been read: the main thread still sees the second queued
        const status = Effect.runSync(b.status)
        return { status, cancel: Effect.runFork(b.interrupt) }
      })
      assert.strictEqual(status, "queued")
      yield* Fiber.join(cancel)
      assert.strictEqual(yield* a.await, 0)
      assert.isTrue(Exit.hasInterrupts(yield* Effect.exit(b.await)))
      const s = yield* pool.stats
      assert.deepStrictEqual([s.succeeded, s.interrupted, s.running, s.queued], [1, 1, 0, 0])
      assert.isTrue(addsUp(s))
    }))

  it.live("an offer's queue timeout ends it unstarted", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 1 })
      const a = yield* pool.submit(Hold, { mark: 0, release: 1 })
      const b = yield* pool.submit(Mark, { mark: 2, millis: 0 }, { queueTimeout: "300 millis" })
      yield* waitFor(Effect.sync(() => Atomics.load(counters, 0)), "the first task started", { until: (n) => n === 1 })
      const error = yield* Effect.flip(b.await)
      assert.strictEqual(error._tag, "JobTimeout")
      assert.strictEqual((error as { readonly phase: string }).phase, "queued")
      Atomics.store(counters, 1, 1)
      yield* a.await
      assert.strictEqual(yield* pool.run(Mark, { mark: 4, millis: 0 }), 4)
      assert.strictEqual(Atomics.load(counters, 2), 0, "the timed-out offer did not run")
      const s = yield* pool.stats
      assert.deepStrictEqual([s.succeeded, s.timedOut], [2, 1])
    }))

  it.live("a paused pool starts no offered task; resumed, it runs it once", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 1 })
      const a = yield* pool.submit(Hold, { mark: 0, release: 1 })
      const b = yield* pool.submit(Mark, { mark: 2, millis: 0 })
      yield* waitFor(Effect.sync(() => Atomics.load(counters, 0)), "the first task started", { until: (n) => n === 1 })
      yield* settle
      yield* pool.pause
      Atomics.store(counters, 1, 1)
      yield* a.await
      yield* settle
      const s = yield* pool.stats
      assert.deepStrictEqual([s.state, s.running, s.queued], ["paused", 0, 1])
      assert.strictEqual(yield* b.status, "queued")
      assert.strictEqual(Atomics.load(counters, 2), 0, "paused: the offer was withdrawn before the thread could start it")
      yield* pool.resume
      assert.strictEqual(yield* b.await, 2)
      assert.strictEqual(Atomics.load(counters, 2), 1, "it ran once")
    }))

  it.live("shutdownNow returns the offered tasks among the unstarted, and they never run", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 2 })
      yield* pool.submit(Hold, { mark: 0, release: 1 })
      yield* pool.submit(Hold, { mark: 0, release: 1 })
      const offered = yield* Effect.forEach([2, 4, 6], (mark) => pool.submit(Mark, { mark, millis: 0 }))
      yield* waitFor(Effect.sync(() => Atomics.load(counters, 0)), "both threads run a task", { until: (n) => n === 2 })
      yield* settle
      const unstarted = yield* pool.shutdownNow
      assert.deepStrictEqual(unstarted.map((u) => u.id).sort(), offered.map((h) => h.id).sort())
      assert.deepStrictEqual(unstarted.map((u) => (u.payload as { readonly mark: number }).mark).sort(), [2, 4, 6])
      yield* pool.awaitTermination
      assert.deepStrictEqual([2, 4, 6].map((mark) => Atomics.load(counters, mark)), [0, 0, 0])
      const s = yield* pool.stats
      assert.deepStrictEqual([s.running, s.queued, s.interrupted], [0, 0, 5])
      assert.isTrue(addsUp(s))
    }))

  it.live("a thread that crashes with offers: they run elsewhere, once each, as their first attempt", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1 })
      // throws outside its fiber 10 ms after it starts: the thread dies with its offers unstarted
      const crash = yield* pool.submit(Crash, "throw")
      const offered = yield* Effect.forEach(["b", "c"], (key) => pool.submit(Flaky, { key, failures: 0 }))
      const error = yield* Effect.flip(crash.await)
      assert.strictEqual(error._tag, "WorkerCrashed")
      // Flaky counts its attempts per key on its thread: 1 is its first run anywhere on the new thread
      assert.deepStrictEqual(yield* Effect.forEach(offered, (h) => h.await), [1, 1], "each once, on the new thread")
      assert.deepStrictEqual(yield* Effect.forEach(offered, (h) => h.attempt), [1, 1])
      const s = yield* pool.stats
      assert.deepStrictEqual([s.succeeded, s.failed, s.retried], [2, 1, 0])
      assert.isTrue(addsUp(s))
    }))

  it.live("resize down with offers outstanding: each offered task runs once", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 2 })
      const held = yield* Effect.forEach([0, 0], () => pool.submit(Hold, { mark: 0, release: 1 }))
      const offered = yield* Effect.forEach([2, 4, 6, 8], (mark) => pool.submit(Mark, { mark, millis: 0 }))
      yield* waitFor(Effect.sync(() => Atomics.load(counters, 0)), "both threads run a task", { until: (n) => n === 2 })
      yield* settle
      yield* pool.resize(1)
      Atomics.store(counters, 1, 1)
      yield* Effect.forEach(held, (h) => h.await)
      assert.deepStrictEqual(yield* Effect.forEach(offered, (h) => h.await), [2, 4, 6, 8])
      assert.deepStrictEqual([2, 4, 6, 8].map((mark) => Atomics.load(counters, mark)), [1, 1, 1, 1])
      yield* waitFor(pool.threads, "one thread is left", { until: (n) => n === 1 })
      const s = yield* pool.stats
      assert.deepStrictEqual([s.succeeded, s.workers], [6, 1])
    }))

  it.live("a higher-priority task submitted after an offer runs before it", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 1 })
      const a = yield* pool.submit(Hold, { mark: 0, release: 1 })
      const low = yield* pool.submit(Mark, { mark: 2, millis: 0 })
      yield* waitFor(Effect.sync(() => Atomics.load(counters, 0)), "the first task started", { until: (n) => n === 1 })
      yield* settle
      const high = yield* pool.submit(Mark, { mark: 4, millis: 0 }, { priority: 10 })
      yield* settle
      Atomics.store(counters, 1, 1)
      yield* a.await
      yield* Effect.all([low.await, high.await])
      assert.deepStrictEqual([Atomics.load(counters, 2), Atomics.load(counters, 4)], [1, 1], "each ran once")
      assert.isBelow(Atomics.load(counters, 5), Atomics.load(counters, 3), "the higher priority started first")
    }))

  it("offers per thread: as many as cover the window at the thread's pace, within the bounds", () => {
    assert.strictEqual(depth(0), MIN_OFFERS, "pace unknown")
    assert.strictEqual(depth(1), MAX_OFFERS, "very short tasks")
    assert.strictEqual(depth(500_000), MIN_OFFERS, "long tasks")
    assert.isAbove(depth(100), MIN_OFFERS)
    assert.isBelow(depth(100), MAX_OFFERS)
    assert.isAtLeast(depth(50), depth(100), "shorter tasks, more offers")
  })

  it.live("short tasks: a busy thread is offered many ahead, and runs them all while the main thread is blocked", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 1, capacity: Infinity })
      yield* setPace(pool, 0, 20)
      const a = yield* pool.submit(Hold, { mark: 0, release: 1 })
      yield* waitFor(Effect.sync(() => Atomics.load(counters, 0)), "the first task started", { until: (n) => n === 1 })
      const handles = yield* Effect.forEach(Array.from({ length: 8 }), () => pool.submit(Mark, { mark: 2, millis: 0 }))
      yield* settle
      const ranAll = yield* Effect.sync(() => {
        Atomics.store(counters, 1, 1)
        return blockUntilTrue(counters, () => Atomics.load(counters, 2) === 8, 5000)
      })
      assert.isTrue(ranAll, `the thread ran all 8 on its own (it ran ${Atomics.load(counters, 2)})`)
      yield* a.await
      yield* Effect.forEach(handles, (h) => h.await, { discard: true })
      const s = yield* pool.stats
      assert.deepStrictEqual([s.queued, s.running, s.succeeded], [0, 0, 29])
    }))

  it.live("one slow task among short ones (a thread not scheduled for a while) does not make them look long", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 1, capacity: Infinity })
      yield* setPace(pool, 0, 20)
      yield* pool.run(Mark, { mark: 12, millis: 50 })
      yield* setPace(pool, 0, 1)
      const a = yield* pool.submit(Hold, { mark: 0, release: 1 })
      yield* waitFor(Effect.sync(() => Atomics.load(counters, 0)), "the first task started", { until: (n) => n === 1 })
      const handles = yield* Effect.forEach(Array.from({ length: 8 }), () => pool.submit(Mark, { mark: 2, millis: 0 }))
      yield* settle
      const ranAll = yield* Effect.sync(() => {
        Atomics.store(counters, 1, 1)
        return blockUntilTrue(counters, () => Atomics.load(counters, 2) === 8, 5000)
      })
      assert.isTrue(ranAll, `the thread ran all 8 on its own (it ran ${Atomics.load(counters, 2)})`)
      yield* a.await
      yield* Effect.forEach(handles, (h) => h.await, { discard: true })
    }))

  it.live("long tasks: a busy thread is offered no more than the least", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 1, capacity: Infinity })
      yield* setPace(pool, 20, 8)
      const a = yield* pool.submit(Hold, { mark: 0, release: 1 })
      yield* waitFor(Effect.sync(() => Atomics.load(counters, 0)), "the first task started", { until: (n) => n === 1 })
      const handles = yield* Effect.forEach(Array.from({ length: 5 }), () => pool.submit(Mark, { mark: 2, millis: 0 }))
      yield* settle
      const ran = yield* Effect.sync(() => {
        Atomics.store(counters, 1, 1)
        // the offers run; no other task can start without the main thread, blocked for 300 ms more
        blockUntilTrue(counters, () => Atomics.load(counters, 2) === MIN_OFFERS, 5000)
        blockUntilTrue(counters, () => false, 300)
        return Atomics.load(counters, 2)
      })
      assert.strictEqual(ran, MIN_OFFERS, "the thread held only its offers")
      yield* a.await
      yield* Effect.forEach(handles, (h) => h.await, { discard: true })
      assert.strictEqual(Atomics.load(counters, 2), 5)
    }))

  it.live("deep offers: a cancelled one never runs, and a better task takes the place of the last one", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 1, capacity: Infinity })
      yield* setPace(pool, 0, 20)
      const a = yield* pool.submit(Hold, { mark: 0, release: 1 })
      yield* waitFor(Effect.sync(() => Atomics.load(counters, 0)), "the first task started", { until: (n) => n === 1 })
      // offered in this order: six of mark 2, with one of mark 8 among them, and the last of mark 6
      const lows = yield* Effect.forEach([2, 2, 2, 8, 2, 2, 2, 6], (mark) => pool.submit(Mark, { mark, millis: 0 }))
      yield* settle
      yield* lows[3]!.interrupt
      const high = yield* pool.submit(Mark, { mark: 4, millis: 0 }, { priority: 10 })
      yield* settle
      const ranAll = yield* Effect.sync(() => {
        Atomics.store(counters, 1, 1)
        return blockUntilTrue(
          counters,
          () => Atomics.load(counters, 2) === 6 && Atomics.load(counters, 4) === 1 && Atomics.load(counters, 6) === 1,
          5000
        )
      })
      assert.isTrue(ranAll, "the thread ran the offers on its own")
      yield* a.await
      yield* Effect.all([high.await, ...lows.filter((_, i) => i !== 3).map((h) => h.await)])
      assert.strictEqual(Atomics.load(counters, 8), 0, "the cancelled offer did not run")
      assert.isBelow(Atomics.load(counters, 5), Atomics.load(counters, 7), "the better task started before the last one")
      const s = yield* pool.stats
      assert.deepStrictEqual([s.succeeded, s.interrupted], [29, 1])
      assert.isTrue(addsUp(s))
    }))

  it.live("a backlog of short tasks goes to the threads many to a message", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 2, capacity: Infinity })
      yield* setPace(pool, 0, 20)
      // the tasks the main thread posts, and in how many messages (a task is an array starting with its id)
      let messages = 0
      let tasks = 0
      const post = MessagePort.prototype.postMessage
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          MessagePort.prototype.postMessage = function(this: MessagePort, message: unknown, transfer?: any) {
            const batch = Array.isArray(message) && typeof message[0] !== "number" ? message : [message]
            const runs = batch.filter((m) => Array.isArray(m) && typeof m[0] === "number").length
            if (runs > 0) {
              messages++
              tasks += runs
            }
            return post.call(this, message, transfer)
          }
        }),
        () => Effect.sync(() => (MessagePort.prototype.postMessage = post))
      )
      const handles = yield* Effect.forEach(Array.from({ length: 3000 }), () => pool.submit(Mark, { mark: 2, millis: 0 }))
      yield* Effect.forEach(handles, (h) => h.await, { discard: true })
      assert.strictEqual(Atomics.load(counters, 2), 3000)
      // (a task taken back from one thread for another that is free is posted again)
      assert.isAtLeast(tasks, 3000, "every task was posted")
      assert.isAtMost(messages, tasks / 8, `${tasks} tasks in ${messages} messages`)
    }))
})
