import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Stream } from "effect"
import { TestClock } from "effect/testing"
import { WorkPool } from "../src/index.ts"
import { schedulerOf } from "../src/internal/scheduler.ts"
import { fullGc, settle } from "./helpers.ts"

describe("runAll: memory of a long batch", () => {
  it.live("a job of a batch that has ended is not kept until the whole batch ends (its result is)", () =>
    Effect.gen(function*() {
      // retention 0: the pool itself keeps no ended job; only the batch could
      const pool = yield* WorkPool.make({ concurrency: 2, retention: { count: 0 }, shutdownTimeout: 0 })
      const scheduler = schedulerOf(pool)
      const refs: Array<WeakRef<object>> = []
      const gate = yield* Deferred.make<void>()
      // each job ends after a yield (not as it starts): it stays in the batch's list of jobs to cancel
      const job = (i: number) =>
        Effect.gen(function*() {
          for (const worker of scheduler.workers) {
            if (worker.job !== undefined && worker.job.seq === i + 1) refs.push(new WeakRef(worker.job))
          }
          yield* Effect.yieldNow
          return i
        })
      const count = 5_000
      const jobs = Array.from({ length: count }, (_, i) => job(i))
      jobs.push(Effect.as(Deferred.await(gate), count))
      const all = yield* Effect.forkChild(pool.runAll(jobs))
      // every job but the last has ended; the batch goes on
      while ((yield* pool.stats).succeeded < count) yield* Effect.sleep(1)
      assert.strictEqual(refs.length, count)
      yield* fullGc
      const kept = refs.filter((ref) => ref.deref() !== undefined).length
      // 5,000 ended job records (some 200 bytes each) were kept until the batch ended: 200 MB for 1e6 jobs
      assert.isAtMost(kept, count / 2, `kept ${kept} of ${count} ended jobs while the batch runs`)
      yield* Deferred.succeed(gate, void 0)
      const results = yield* Fiber.join(all)
      assert.strictEqual(results.length, count + 1)
      assert.deepStrictEqual([results[0], results[count - 1], results[count]], [0, count - 1, count])
    }))
})
