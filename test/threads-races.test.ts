/**
 * Thread corner cases: uncloneable results, cancels racing clone failures, idle retirement after a
 * failed send, bursts after retirement, shrinking with several tasks per thread, tasks arriving while
 * a thread is about to be terminated, and what an awaiter sees at a timeout.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import { PoolError } from "../src/index.ts"
import { Echo, Passthrough, Peers, Sleep, Spin, ThreadId, Uncloneable } from "./fixtures/tasks.ts"
import { makePool } from "./fixtures/pool.ts"
import { waitFor } from "./helpers.ts"


describe("ThreadPool races and corner cases", () => {
  // ThreadWorker posts "done" through an Outbox with no onFailure: a result that encodes but cannot
  // be structured-cloned is dropped, and the task never ends (here the timeout ends it instead)
  it.live("a result that cannot be cloned fails its task with TaskCodecError instead of never ending", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1 })
      const error = yield* Effect.flip(pool.run(Uncloneable, 1, { timeout: "3 seconds" }))
      assert.strictEqual(error._tag, "TaskCodecError")
      assert.strictEqual((error as PoolError.TaskCodecError).part, "success")
      assert.strictEqual(yield* pool.run(Echo, "after"), "echo after")
    }))

  // the cancel replaces the task's inflight entry; the payload's clone failure then deletes that
  // entry without calling it, so the cancel is never confirmed and the thread is terminated after
  // cancelGrace, taking an unrelated task with it
  it.live("a task cancelled before its uncloneable payload is sent does not get its thread terminated", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1, tasksPerThread: 3, cancelGrace: "200 millis" })
      const bystander = yield* pool.submit(Sleep, { millis: 1500, mark: 4 })
      // the second payload fails to encode at once, so runAll cancels the first in the same tick
      const error = yield* Effect.flip(pool.runAll(Passthrough, [
        { value: () => 1, ok: true },
        { value: 1, ok: false as unknown as true }
      ]))
      assert.strictEqual(error._tag, "TaskCodecError")
      assert.strictEqual(yield* bystander.await, 1500, "the bystander's thread was not terminated")
    }))

  // the idle timer is stopped when a task is sent and re-armed only by a "done" message
  it.effect("a thread whose last task had an uncloneable payload is still retired when idle", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1, idleTimeout: "1 minute" })
      const first = yield* pool.run(ThreadId, 0)
      const error = yield* Effect.flip(pool.run(Passthrough, { value: () => 1, ok: true }))
      assert.strictEqual(error._tag, "TaskCodecError")
      yield* TestClock.adjust("2 minutes")
      // an idle-retired thread is taken out at once: the next task gets a new thread
      assert.notStrictEqual(yield* pool.run(ThreadId, 0), first, "the idle thread was retired")
    }))

  // a thread not started yet counts as load 0.5 however many tasks already wait for it
  it.effect("after idle retirement, tasks at once go to separate threads (tasksPerThread 1 holds)", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 2, idleTimeout: "1 minute" })
      yield* TestClock.adjust("1 minute")
      yield* waitFor(pool.threads, "idle threads exit", { until: (n) => n === 0 })
      // each task reports how many tasks were in flight on its thread while it slept
      const peers = yield* pool.runAll(Peers, [300, 300])
      assert.deepStrictEqual(peers, [1, 1], "one task in flight per thread")
    }))

  // the scheduler retires whichever slots are on top of its free stack; each slot gives back its
  // own thread index, so slots of several threads can go and every thread keeps one
  it.live("resize down with tasksPerThread > 1 brings the threads down to the new count", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 2, tasksPerThread: 2 })
      // three tasks take the three slots on top of the free stack; stopping them in the order
      // first, third, second leaves slots of both threads on top
      const first = yield* pool.submit(Sleep, { millis: 60_000, mark: 8 })
      const second = yield* pool.submit(Sleep, { millis: 60_000, mark: 8 })
      const third = yield* pool.submit(Sleep, { millis: 60_000, mark: 8 })
      yield* first.interrupt
      yield* third.interrupt
      yield* second.interrupt
      yield* pool.resize(1)
      assert.strictEqual((yield* pool.stats).workers, 2)
      const ids = yield* pool.runAll(ThreadId, [0, 0])
      assert.strictEqual(ids[0], ids[1], "one thread left: both tasks ran on it")
      yield* waitFor(pool.threads, "one thread is left", { until: (n) => n === 1 })
    }))

  // README: "for threads it keeps new tasks off a thread that is about to be terminated"
  it.live("a new task is not sent to a thread whose timed-out task is about to get it terminated", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 2, tasksPerThread: 2, cancelGrace: "1 second" })
      const spin = yield* pool.submit(Spin, 1, { timeout: "200 millis" })
      const bystander = yield* pool.submit(Sleep, { millis: 3000, mark: 9 })
      assert.strictEqual((yield* Effect.flip(spin.await))._tag, "JobTimeout")
      yield* waitFor(pool.stats, "the timed-out task is being cancelled", { until: (s) => s.stopping === 1 })
      // thread 1 has room; thread 0 is stuck in a loop and will be terminated
      assert.strictEqual(yield* pool.run(Echo, "new"), "echo new")
      assert.strictEqual(yield* bystander.await, 3000)
    }))

  // Scheduler.expireDeadlines settles the job (notifying its awaiter, which resumes synchronously)
  // before it counts the job as stopping and interrupts it
  // a task that does not yield (Spin) holds its thread until cancelGrace ends: a Sleep stops at its
  // cancel, which a loaded machine could deliver before the awaiter reads the stats
  it.live("when a task times out, its awaiter sees it as stopping, and the stats add up", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1, cancelGrace: "2 seconds" })
      const spinner = yield* pool.submit(Spin, 1, { timeout: "200 millis" })
      assert.strictEqual((yield* Effect.flip(spinner.await))._tag, "JobTimeout")
      const s = yield* pool.stats
      assert.deepStrictEqual([s.running, s.stopping, s.timedOut], [0, 1, 1])
      assert.strictEqual(
        s.submitted,
        s.waiting + s.queued + s.running + s.succeeded + s.failed + s.defects + s.timedOut + s.interrupted + s.dropped
      )
    }))
})
