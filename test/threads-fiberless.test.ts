/**
 * A thread pool's task starts on its thread with no fiber on the main thread
 * (src/internal/threadExecutor.ts): the scheduler sends it and its decoded answer stops the
 * attempt. What the fiber gave it stays: a timeout, a cancel and a shutdown ask the thread to
 * cancel the task, the attempt stops only once the thread has (or has been terminated after
 * `cancelGrace`), and a traced task still runs in a fiber under its `workpool.job` span.
 *
 * The job function a `ThreadPool` job carries is what its fiber would run: a task started without
 * a fiber never calls it, which is how these tests tell the two paths apart.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import { Echo, Hold, Mark, Peers, Sleep, Spin, ThreadId } from "./fixtures/tasks.ts"
import { addsUp, encodeHookedPeers, blockUntil, makeReleasingPool as makePool } from "./fixtures/pool.ts"
import { recordingTracer, settle, waitFor } from "./helpers.ts"

/**
 * Counts the calls of a queued job's function (the handle is the scheduler's job record), keeping
 * what marks it as a `ThreadPool` task.
 */
const countCalls = (handle: unknown): { readonly calls: number } => {
  type Marked = ((...args: Array<unknown>) => unknown) & { readonly task: unknown; readonly payload: unknown; readonly transfer: unknown }
  const job = handle as { effect: Marked }
  const original = job.effect
  const counted = { calls: 0 }
  job.effect = Object.assign((...args: Array<unknown>) => {
    counted.calls++
    return original(...args)
  }, { task: original.task, payload: original.payload, transfer: original.transfer })
  return counted
}

describe("ThreadPool: tasks started without a main-thread fiber", () => {
  it.live("a task starts on its thread with no fiber here (its job function is not called); a traced one in a fiber", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 1 })
      const hold = yield* pool.submit(Hold, { mark: 0, release: 1 })
      yield* waitFor(Effect.sync(() => Atomics.load(counters, 0)), "the first task started", { until: (n) => n === 1 })
      // queued behind the held task (offered to its thread, or not): started when the first one ends
      const plain = yield* pool.submit(Echo, "plain")
      const plainCalls = countCalls(plain)
      const { tracer } = recordingTracer()
      const traced = yield* pool.submit(Echo, "traced").pipe(Effect.withTracer(tracer))
      const tracedCalls = countCalls(traced)
      Atomics.store(counters, 1, 1)
      assert.strictEqual(yield* hold.await, 0)
      assert.strictEqual(yield* plain.await, "echo plain")
      assert.strictEqual(yield* traced.await, "echo traced")
      assert.strictEqual(plainCalls.calls, 0, "the untraced task started without its fiber")
      assert.strictEqual(tracedCalls.calls, 1, "the traced task ran in its fiber, under its span")
    }))

  it.live("a timeout: the thread cancels the task (its finalizer runs there), and keeps serving", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 1 })
      const before = yield* pool.run(ThreadId, 0)
      const error = yield* Effect.flip(pool.run(Sleep, { millis: 60_000, mark: 4 }, { timeout: "200 millis" }))
      assert.strictEqual(error._tag, "JobTimeout")
      yield* pool.awaitIdle
      // the attempt stopped only once the thread had interrupted the task
      assert.strictEqual(Atomics.load(counters, 4), 1, "the task's finalizer ran in its thread")
      assert.strictEqual(yield* pool.run(ThreadId, 0), before, "the thread confirmed the cancel: not terminated")
      const s = yield* pool.stats
      assert.deepStrictEqual([s.timedOut, s.running, s.succeeded], [1, 0, 2])
      assert.isTrue(addsUp(s))
    }))

  it.live("a stuck task's timeout: its thread is terminated after cancelGrace and replaced; its slot waits until then", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1, cancelGrace: "300 millis" })
      const before = yield* pool.run(ThreadId, 0)
      const stuck = yield* pool.submit(Spin, 1, { timeout: "100 millis" })
      const next = yield* pool.submit(ThreadId, 0)
      const error = yield* Effect.flip(stuck.await)
      assert.strictEqual(error._tag, "JobTimeout")
      // timed out, not stopped: the slot is still the stuck task's until its thread is gone
      const s = yield* pool.stats
      assert.deepStrictEqual([s.timedOut, s.running, s.queued], [1, 0, 1])
      const after = yield* next.await
      assert.notStrictEqual(after, before, "the next task ran on the replacement thread")
      assert.strictEqual(yield* pool.threads, 1)
    }))

  it.live("a cancel: the awaiter's interrupt returns once the thread has interrupted the task", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 1 })
      const before = yield* pool.run(ThreadId, 0)
      const sleeping = yield* pool.submit(Sleep, { millis: 60_000, mark: 5 })
      yield* settle
      yield* sleeping.interrupt
      assert.strictEqual(Atomics.load(counters, 5), 1, "the task's finalizer ran in its thread before the interrupt returned")
      assert.isTrue(Exit.hasInterrupts(yield* Effect.exit(sleeping.await)))
      assert.strictEqual(yield* pool.run(ThreadId, 0), before, "the thread confirmed the cancel: not terminated")
      const s = yield* pool.stats
      assert.deepStrictEqual([s.interrupted, s.running, s.succeeded], [1, 0, 2])
      assert.isTrue(addsUp(s))
    }))

  it.live("a cancel of a stuck task returns once its thread is terminated, and the pool goes on", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1, cancelGrace: "200 millis" })
      const before = yield* pool.run(ThreadId, 0)
      const stuck = yield* pool.submit(Spin, 2)
      yield* settle
      const started = Date.now()
      yield* stuck.interrupt
      assert.isAtLeast(Date.now() - started, 150, "it waited for the grace period")
      assert.isTrue(Exit.hasInterrupts(yield* Effect.exit(stuck.await)))
      assert.notStrictEqual(yield* pool.run(ThreadId, 0), before, "the stuck thread was replaced")
      const s = yield* pool.stats
      assert.deepStrictEqual([s.interrupted, s.running], [1, 0])
      assert.isTrue(addsUp(s))
    }))

  it.live("a cancel of a task its thread started before the main thread knew returns once the task has stopped", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 1 })
      const first = yield* pool.submit(Hold, { mark: 0, release: 1 })
      const offered = yield* pool.submit(Mark, { mark: 2, millis: 60_000 })
      yield* waitFor(Effect.sync(() => Atomics.load(counters, 0)), "the first task started", { until: (n) => n === 1 })
      yield* settle
      const cancel = yield* Effect.sync(() => {
        Atomics.store(counters, 1, 1)
        // the first task's answer is not read yet: the cancel finds the offer claimed, and waits
        // for its hand-over, where it is stopped as it starts
        assert.isTrue(blockUntil(counters, 2, 5000), "the thread started the offered task")
        return Effect.runFork(offered.interrupt)
      })
      yield* Fiber.join(cancel)
      // it returned 'running' here: the cancel came back as the task was being started on a fiber
      assert.strictEqual(yield* offered.status, "interrupted", "stopped when its cancel returned")
      assert.strictEqual((yield* pool.stats).running, 0)
      assert.strictEqual(yield* first.await, 0)
      const s = yield* pool.stats
      assert.deepStrictEqual([s.succeeded, s.interrupted, s.running, s.queued], [1, 1, 0, 0])
      assert.isTrue(addsUp(s))
    }))

  it.live("a task whose payload's encoding cancels its own job does not run on in its thread with no slot", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 1 })
      // the thread's Peers, whose payload runs the caller's code as it is encoded
      const { once, task: Hooked } = encodeHookedPeers()
      const first = yield* pool.submit(Hold, { mark: 0, release: 1 })
      yield* waitFor(Effect.sync(() => Atomics.load(counters, 0)), "the first task started", { until: (n) => n === 1 })
      // a transfer list: not offered to the busy thread, so it is encoded only as it starts
      const hooked = yield* pool.submit(Hooked, 60_000, { transfer: [new ArrayBuffer(8)] })
      once(() => Effect.runFork(hooked.interrupt))
      Atomics.store(counters, 1, 1)
      assert.strictEqual(yield* first.await, 0)
      assert.isTrue(Exit.hasInterrupts(yield* Effect.exit(hooked.await)))
      // sent after its job had stopped, it slept on in its thread, uncancelled, beside this one
      assert.strictEqual(yield* pool.run(Peers, 0), 1, "the cancelled task is not running in the thread")
      const s = yield* pool.stats
      assert.deepStrictEqual([s.succeeded, s.interrupted, s.running], [2, 1, 0])
      assert.isTrue(addsUp(s))
    }))
})
