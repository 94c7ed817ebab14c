import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Stream } from "effect"
import { TestClock } from "effect/testing"
import { WorkPool } from "../src/index.ts"
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
