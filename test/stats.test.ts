import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Option, Stream } from "effect"
import { TestClock } from "effect/testing"
import { PoolError, WorkPool } from "../src/index.ts"
import { settle } from "./helpers.ts"

describe("stats", () => {
  it.effect("counts every ending, queued per priority, and the running jobs", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, capacity: 3, overflow: "dropNewest", timeout: "1 minute" })
      const gate = yield* Deferred.make<void>()
      yield* pool.submit(Deferred.await(gate))
      const queued = [
        yield* pool.submit(Effect.succeed(1), { priority: 2 }),
        yield* pool.submit(Effect.fail("no"), { priority: 2 }),
        yield* pool.submit(Effect.die("bug"), { priority: -1 })
      ]
      yield* pool.submit(Effect.void) // dropped
      let stats = yield* pool.stats
      assert.deepStrictEqual(stats.queuedByPriority, [{ priority: 2, count: 2 }, { priority: -1, count: 1 }])
      assert.deepStrictEqual([stats.running, stats.queued, stats.dropped, stats.submitted], [1, 3, 1, 5])
      yield* Deferred.succeed(gate, undefined)
      yield* pool.awaitIdle
      yield* Effect.forEach(queued, (h) => Effect.exit(h.await))
      const slow = yield* pool.submit(Effect.never)
      const interrupted = yield* pool.submit(Effect.never)
      yield* interrupted.interrupt
      yield* TestClock.adjust("1 minute")
      assert.strictEqual(yield* slow.status, "timedOut")
      stats = yield* pool.stats
      assert.deepStrictEqual(
        {
          submitted: stats.submitted,
          succeeded: stats.succeeded,
          failed: stats.failed,
          defects: stats.defects,
          timedOut: stats.timedOut,
          interrupted: stats.interrupted,
          dropped: stats.dropped,
          rejected: stats.rejected,
          queued: stats.queued,
          running: stats.running
        },
        {
          submitted: 7,
          succeeded: 2,
          failed: 1,
          defects: 1,
          timedOut: 1,
          interrupted: 1,
          dropped: 1,
          rejected: 0,
          queued: 0,
          running: 0
        }
      )
    }))

  it.effect("utilization, mean wait and mean run time come from the pool's clock", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2 })
      // one worker busy for 10 s, the other idle: 50% utilization
      const one = yield* pool.submit(Effect.sleep("10 seconds"))
      yield* TestClock.adjust("10 seconds")
      yield* one.await
      let stats = yield* pool.stats
      assert.closeTo(stats.utilization, 0.5, 1e-9)
      assert.strictEqual(stats.meanRunMillis, 10_000)
      assert.strictEqual(stats.meanWaitMillis, 0)
      // three jobs on two workers: the third waits 4 s
      const jobs = yield* Effect.forkChild(pool.runAll([Effect.sleep("4 seconds"), Effect.sleep("4 seconds"), Effect.sleep("4 seconds")]))
      yield* TestClock.adjust("4 seconds")
      yield* TestClock.adjust("4 seconds")
      yield* Fiber.join(jobs)
      stats = yield* pool.stats
      assert.strictEqual(stats.meanWaitMillis, 1_000) // (0 + 0 + 0 + 4000) / 4 started jobs
      assert.strictEqual(stats.meanRunMillis, (10_000 + 3 * 4_000) / 4)
      // busy: 10 + 12 worker-seconds over 2 workers × 18 s
      assert.closeTo(stats.utilization, 22 / 36, 1e-9)
    }))

  it.effect("times stay exact on a clock far from 0 (a real clock reads about 1.8e12 ms): waits, runs, deadlines, lookup's age limit", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(1_800_000_000_007)
      const pool = yield* WorkPool.make({ concurrency: 1, retention: { count: 10, age: "5 seconds" } })
      yield* TestClock.adjust("3 millis")
      const first = yield* pool.submit(Effect.sleep("1500 millis"))
      yield* TestClock.adjust("1 millis")
      const second = yield* pool.submit(Effect.sleep("1 second"), { timeout: "700 millis" })
      const third = yield* pool.submit(Effect.void, { queueTimeout: "1200 millis" })
      yield* TestClock.adjust("1200 millis")
      const queued = yield* Effect.exit(third.await)
      assert.deepStrictEqual(queued, Exit.fail(new PoolError.JobTimeout({ jobId: third.id, millis: 1200, phase: "queued" })))
      yield* TestClock.adjust("300 millis")
      yield* first.await
      // the second started 1499 ms after its submission; its timeout counts from its start
      yield* TestClock.adjust("698 millis")
      assert.strictEqual(yield* second.status, "running")
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(
        yield* Effect.exit(second.await),
        Exit.fail(new PoolError.JobTimeout({ jobId: second.id, millis: 700, phase: "running" }))
      )
      const stats = yield* pool.stats
      assert.strictEqual(stats.meanWaitMillis, (0 + 1499) / 2)
      assert.strictEqual(stats.meanRunMillis, (1500 + 700) / 2)
      // lookup keeps ended jobs 5 s: the first ended 1503 ms after the pool was made, 2203 ms ago
      yield* TestClock.adjust("4299 millis")
      assert.isTrue(Option.isSome(yield* pool.job(first.id)))
      yield* TestClock.adjust("1 millis")
      assert.isTrue(Option.isNone(yield* pool.job(first.id)))
    }))

  it.effect("changes emits the current stats, then coalesced updates, and ends when the pool stops", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const seen: Array<WorkPool.PoolStats> = []
      const watcher = yield* Effect.forkChild(Stream.runForEach(pool.changes, (s) => Effect.sync(() => void seen.push(s))))
      yield* settle
      assert.strictEqual(seen.length, 1)
      assert.strictEqual(seen[0]!.submitted, 0)
      const handle = yield* pool.submit(Effect.sleep("1 second"))
      yield* settle
      assert.strictEqual(seen.at(-1)!.running, 1)
      yield* TestClock.adjust("1 second")
      yield* handle.await
      yield* settle
      assert.strictEqual(seen.at(-1)!.succeeded, 1)
      // a burst of synchronous jobs gives far fewer snapshots than jobs
      const before = seen.length
      yield* pool.runAll(Array.from({ length: 1000 }, () => Effect.void))
      yield* settle
      assert.strictEqual(seen.at(-1)!.succeeded, 1001)
      assert.isBelow(seen.length - before, 50)
      yield* pool.shutdown
      yield* Fiber.join(watcher)
      assert.strictEqual(seen.at(-1)!.state, "stopped")
    }))
})
