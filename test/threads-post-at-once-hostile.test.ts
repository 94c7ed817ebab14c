/**
 * Hostile tests of 26f20de: an idle thread's first task is posted at once (inside the submit or the
 * start that sends it), not at the end of the tick; the later messages of the tick still go
 * together. So a message that cannot be sent now fails its task inside its start, and user code that
 * runs as a payload is cloned (a getter) runs there too.
 *
 * `Hold` runs until the test sets its release slot; `Mark` records its place in the order of starts.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { PoolError } from "../src/index.ts"
import { Bytes, Echo, Hold, Mark, Passthrough, Sleep, ThreadId } from "./fixtures/tasks.ts"
import { addsUp, blockUntil, makeReleasingPool as makePool } from "./fixtures/pool.ts"
import { prng, waitFor } from "./helpers.ts"

/** A payload that encodes (its Schema is `Unknown`) but cannot be cloned: a function. */
const uncloneable = { value: () => 1, ok: true } as const

describe("ThreadPool: an idle thread's first task posted at once, hostile", () => {
  it.live("the thread starts it while the submitter's synchronous run goes on", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 1 })
      yield* pool.run(Echo, "warm")
      const handle = yield* pool.submit(Mark, { mark: 2, millis: 0 })
      // no yield since the submit: before 26f20de the task waited in the outbox until this returned
      assert.isTrue(blockUntil(counters, 2, 15_000), "the thread started the task within the submitter's tick")
      assert.strictEqual(yield* handle.await, 2)
    }))

  it.live("an uncloneable payload as an idle thread's first task, and as a later one of the same tick: each fails alone, at once, and counts add up at every step", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1, tasksPerThread: 2 })
      const thread = yield* pool.run(ThreadId, 0)
      // the first fails inside its submit: its message is posted there
      const bad = yield* pool.submit(Passthrough, uncloneable)
      let s = yield* pool.stats
      assert.deepStrictEqual([s.submitted, s.running, s.failed, s.succeeded], [2, 0, 1, 1], "ended inside its submit")
      assert.isTrue(addsUp(s))
      // the thread is idle again: the next task is posted at once too; the uncloneable one after it
      // goes at the end of the tick, with the task offered behind it
      const good = yield* pool.submit(Echo, "a")
      const bad2 = yield* pool.submit(Passthrough, uncloneable)
      const good2 = yield* pool.submit(Echo, "b")
      s = yield* pool.stats
      assert.isTrue(addsUp(s))
      assert.strictEqual(s.submitted, 5)
      const error = yield* Effect.flip(bad.await)
      assert.instanceOf(error, PoolError.TaskCodecError)
      assert.strictEqual((error as PoolError.TaskCodecError).part, "payload")
      assert.match((error as PoolError.TaskCodecError).issue, /could not be cloned|DataCloneError/)
      assert.strictEqual(yield* good.await, "echo a")
      const error2 = yield* Effect.flip(bad2.await)
      assert.strictEqual((error2 as PoolError.TaskCodecError).part, "payload")
      assert.strictEqual(yield* good2.await, "echo b")
      s = yield* pool.stats
      assert.deepStrictEqual([s.submitted, s.running, s.queued, s.failed, s.succeeded], [5, 0, 0, 2, 3])
      assert.strictEqual(yield* pool.run(ThreadId, 0), thread, "the same thread goes on")
    }))

  it.live("a batch of uncloneable payloads on idle threads: each fails in its own start, none hangs, the threads stay", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 2 })
      const threads = new Set(yield* pool.runAll(ThreadId, [0, 0]))
      const handles: Array<{ readonly await: Effect.Effect<unknown, PoolError.PoolError> }> = []
      for (let i = 0; i < 200; i++) {
        handles.push(i % 3 === 0 ? yield* pool.submit(Passthrough, uncloneable) : yield* pool.submit(Echo, String(i)))
      }
      for (const [i, handle] of handles.entries()) {
        const exit = yield* Effect.exit(handle.await)
        if (i % 3 === 0) {
          assert.isTrue(Exit.isFailure(exit), `task ${i}`)
          assert.strictEqual((yield* Effect.flip(handle.await))._tag, "TaskCodecError")
        } else assert.deepStrictEqual(exit, Exit.succeed(`echo ${i}`), `task ${i}`)
      }
      const s = yield* pool.stats
      assert.deepStrictEqual([s.running, s.queued, s.failed, s.succeeded], [0, 0, 67, 2 + 133])
      assert.isTrue(addsUp(s))
      for (const id of yield* pool.runAll(ThreadId, [0, 0, 0, 0])) assert.isTrue(threads.has(id), "no thread replaced")
    }))

  it.live("a cancel in the tick of the post: the task ends interrupted, its thread is not terminated", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1, cancelGrace: "30 seconds" })
      const thread = yield* pool.run(ThreadId, 0)
      const held = yield* pool.submit(Hold, { mark: 0, release: 1 })
      const cancelled = yield* pool.cancel(held.id)
      assert.isTrue(cancelled)
      const exit = yield* Effect.exit(held.await)
      assert.isTrue(Exit.isFailure(exit) && exit.cause.reasons.some((r) => r._tag === "Interrupt"), String(exit))
      assert.strictEqual(yield* pool.run(ThreadId, 0), thread, "the thread confirmed the cancel")
      const s = yield* pool.stats
      assert.deepStrictEqual([s.running, s.stopping, s.interrupted], [0, 0, 1])
      assert.isTrue(addsUp(s))
    }))

  it.live("shutdownNow in the tick of the post: the task is running (not among the unstarted), ends with PoolShutdown, nothing hangs", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1, cancelGrace: "5 seconds" })
      yield* pool.run(Echo, "warm")
      const held = yield* pool.submit(Hold, { mark: 0, release: 1 })
      const queued = yield* pool.submit(Sleep, { millis: 1, mark: 3 })
      const unstarted = yield* pool.shutdownNow
      assert.deepStrictEqual(unstarted.map((job) => job.id), [queued.id])
      assert.strictEqual((yield* Effect.flip(held.await))._tag, "PoolShutdown")
      const s = yield* pool.stats
      assert.strictEqual(s.running, 0)
    }))

  it.live("priority in one tick: the idle thread's first task runs first; a higher one submitted later overtakes those sent ahead", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 1 })
      yield* pool.run(Echo, "warm")
      const handles = [
        yield* pool.submit(Mark, { mark: 0, millis: 20 }),
        yield* pool.submit(Mark, { mark: 2, millis: 0 }),
        yield* pool.submit(Mark, { mark: 4, millis: 0 }),
        yield* pool.submit(Mark, { mark: 6, millis: 0 }, { priority: 10 })
      ]
      for (const handle of handles) yield* handle.await
      const order = [0, 2, 4, 6].map((mark) => Atomics.load(counters, mark + 1))
      assert.deepStrictEqual(order, [1, 3, 4, 2], "first, then the higher one, then the others in order")
    }))

  it.live("a payload getter run by the clone (now inside the start) that cancels its own job: it ends once, the thread goes on", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1, cancelGrace: "30 seconds" })
      const thread = yield* pool.run(ThreadId, 0)
      const probe = yield* pool.submit(Echo, "probe")
      yield* probe.await
      const id = probe.id + 1
      let reads = 0
      const value = {
        get trap() {
          if (++reads === 1) Effect.runFork(pool.cancel(id))
          return 1
        }
      }
      const handle = yield* pool.submit(Passthrough, { value, ok: true })
      assert.strictEqual(handle.id, id)
      const exit = yield* Effect.exit(handle.await)
      assert.isTrue(reads >= 1, "the clone read the getter")
      // interrupted, or (were the cancel's fiber to run after the answer came) succeeded: once
      assert.isTrue(Exit.isFailure(exit) ? exit.cause.reasons.some((r) => r._tag === "Interrupt") : exit.value === 1, String(exit))
      yield* waitFor(pool.stats, "the job stopped", { until: (s) => s.running === 0 && s.stopping === 0 })
      const s = yield* pool.stats
      assert.strictEqual(s.interrupted + s.succeeded + s.failed, 3)
      assert.isTrue(addsUp(s))
      assert.strictEqual(yield* pool.run(ThreadId, 0), thread, "the thread was not terminated")
    }))

  it.live("a payload getter that throws (cancelling its job first) fails it with TaskCodecError or interrupts it, once; the thread goes on", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1, cancelGrace: "30 seconds" })
      const thread = yield* pool.run(ThreadId, 0)
      const probe = yield* pool.submit(Echo, "probe")
      yield* probe.await
      const id = probe.id + 1
      const value = {
        get trap() {
          Effect.runFork(pool.cancel(id))
          throw new Error("no reading")
        }
      }
      const handle = yield* pool.submit(Passthrough, { value, ok: true })
      const exit = yield* Effect.exit(handle.await)
      assert.isTrue(Exit.isFailure(exit), String(exit))
      yield* waitFor(pool.stats, "the job stopped", { until: (s) => s.running === 0 && s.stopping === 0 })
      assert.isTrue(addsUp(yield* pool.stats))
      assert.strictEqual(yield* pool.run(ThreadId, 0), thread, "the thread was not terminated")
      assert.strictEqual(yield* pool.run(Echo, "after"), "echo after")
    }))

  it.live("a resize down and a graceful shutdown in the tick of the posts: the posted tasks complete, nothing hangs", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 2 })
      yield* pool.runAll(Echo, ["a", "b"])
      const a = yield* pool.submit(Mark, { mark: 0, millis: 5 })
      const b = yield* pool.submit(Mark, { mark: 2, millis: 5 })
      yield* pool.resize(1)
      assert.deepStrictEqual([yield* a.await, yield* b.await], [0, 2])
      yield* waitFor(pool.threads, "one thread left", { until: (n) => n === 1 })
      const c = yield* pool.submit(Mark, { mark: 4, millis: 5 })
      yield* pool.shutdown
      assert.strictEqual(yield* c.await, 4)
      const s = yield* pool.stats
      assert.deepStrictEqual([s.running, s.succeeded], [0, 5])
    }))

  it.live("churn: rounds of submits, uncloneable payloads and cancels in one tick each; every task ends once as it should, counts add up", () =>
    Effect.gen(function*() {
      const random = prng(24)
      for (const tasksPerThread of [1, 2]) {
        const { pool } = yield* makePool({ threads: 2, tasksPerThread, cancelGrace: "30 seconds" })
        let expected = { succeeded: 0, failed: 0, interrupted: 0 }
        for (let round = 0; round < 40; round++) {
          const n = 1 + Math.floor(random() * 8)
          const round_: Array<{ readonly kind: "ok" | "bad" | "cancelled"; readonly handle: { readonly id: number; readonly await: Effect.Effect<unknown, PoolError.PoolError> } }> = []
          for (let i = 0; i < n; i++) {
            const roll = random()
            if (roll < 0.3) round_.push({ kind: "bad", handle: yield* pool.submit(Passthrough, uncloneable) })
            else {
              const handle = yield* pool.submit(Mark, { mark: 8, millis: Math.floor(random() * 3) })
              round_.push({ kind: roll < 0.45 ? "cancelled" : "ok", handle })
            }
          }
          // cancels in the same tick, after every post of the round
          for (const { handle, kind } of round_) if (kind === "cancelled") yield* pool.cancel(handle.id)
          for (const { handle, kind } of round_) {
            const exit = yield* Effect.exit(handle.await)
            if (kind === "ok") {
              assert.deepStrictEqual(exit, Exit.succeed(8), `round ${round}`)
              expected.succeeded++
            } else if (kind === "bad") {
              assert.strictEqual((yield* Effect.flip(handle.await))._tag, "TaskCodecError", `round ${round}`)
              expected.failed++
            } else {
              // cancelled: interrupted, unless it ended before the cancel reached it (a cancel of an
              // ended job does nothing)
              if (Exit.isSuccess(exit)) expected.succeeded++
              else {
                assert.isTrue(exit.cause.reasons.some((r) => r._tag === "Interrupt"), `round ${round}: ${String(exit)}`)
                expected.interrupted++
              }
            }
          }
          yield* waitFor(pool.stats, "nothing stopping", { until: (s) => s.running === 0 && s.stopping === 0 })
          const s = yield* pool.stats
          assert.isTrue(addsUp(s), `round ${round}`)
          assert.deepStrictEqual([s.succeeded, s.failed, s.interrupted], [expected.succeeded, expected.failed, expected.interrupted], `round ${round}`)
        }
        assert.isAtMost(yield* pool.threads, 2)
        yield* pool.shutdown
        expected = { succeeded: 0, failed: 0, interrupted: 0 }
      }
    }), 120_000)

  // docs/threads.md: "Messages sent in the same tick travel together ... The first task sent to an
  // idle thread goes at once, in a message of its own"
  it.live("a payload the thread cannot read as an idle thread's first task fails alone; one later in the tick takes the tasks sent with it", () =>
    Effect.gen(function*() {
      // the main thread sends an array nested 2,500 deep; a thread with half a megabyte of stack cannot read it
      const { pool } = yield* makePool({ threads: 1, tasksPerThread: 3, resourceLimits: { stackSizeMb: 0.5 } })
      const thread = yield* pool.run(ThreadId, 0)
      let value: unknown = 0
      for (let i = 0; i < 2500; i++) value = [value]
      const deep = { value, ok: true } as const
      // first: alone in its message
      const lost = yield* pool.submit(Passthrough, deep)
      const a = yield* pool.submit(Echo, "a")
      const b = yield* pool.submit(Echo, "b")
      const error = (yield* Effect.flip(lost.await)) as PoolError.TaskCodecError
      assert.deepStrictEqual([error._tag, error.part], ["TaskCodecError", "payload"])
      assert.deepStrictEqual([yield* a.await, yield* b.await], ["echo a", "echo b"], "not in the lost message")
      // later in the tick: it travels with the task sent after it, not with the first
      const c = yield* pool.submit(Echo, "c")
      const lost2 = yield* pool.submit(Passthrough, deep)
      const d = yield* pool.submit(Echo, "d")
      assert.strictEqual(yield* c.await, "echo c")
      assert.strictEqual(((yield* Effect.flip(lost2.await)) as PoolError.TaskCodecError).part, "payload")
      assert.strictEqual(((yield* Effect.flip(d.await)) as PoolError.TaskCodecError).part, "payload", "lost with it")
      assert.strictEqual(yield* pool.run(ThreadId, 0), thread, "the thread was not replaced")
      const s = yield* pool.stats
      assert.deepStrictEqual([s.running, s.succeeded, s.failed], [0, 5, 3])
      assert.isTrue(addsUp(s))
    }))

  // docs/threads.md: "The move happens when the task starts on a thread, not when it is submitted".
  // Posted at once, a task with a transfer list moved its buffer inside the submit: the submitter
  // found it detached before its synchronous run ended, and a task of the same tick that sends the
  // same buffer (copied, with no transfer list) failed with TaskCodecError, where before both went
  // in one message and shared the moved buffer
  it.live("a task with a transfer list started at its submit moves its buffer at the end of the tick, as before", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1, tasksPerThread: 2 })
      yield* pool.run(ThreadId, 0)
      const buffer = new ArrayBuffer(64)
      const moved = yield* pool.submit(Bytes, { buffer }, { transfer: [buffer], retry: { times: 0 } })
      assert.strictEqual(buffer.byteLength, 64, "still readable in the submitter's synchronous run")
      const shared = yield* pool.submit(Bytes, { buffer })
      assert.strictEqual(yield* moved.await, 64)
      assert.strictEqual(buffer.byteLength, 0, "moved")
      assert.deepStrictEqual(yield* Effect.exit(shared.await), Exit.succeed(64), "sent in the same message, with the moved buffer")
    }))
})
