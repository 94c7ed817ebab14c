import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber } from "effect"
import { execFile } from "node:child_process"
import { PoolError } from "../src/index.ts"
import * as ThreadPool from "../src/ThreadPool.ts"
import { Crash, Die, Echo, Fail, Flaky, Sleep, Spin } from "./fixtures/tasks.ts"
import { prng, waitFor } from "./helpers.ts"

type Seen = "succeeded" | "failed" | "defects" | "timedOut" | "interrupted" | "crashed"

describe("ThreadPool under chaos", () => {
  it.live("2,000 mixed tasks each end exactly once; the pool keeps its threads and shuts down clean", () =>
    Effect.gen(function*() {
      const random = prng(7)
      const counters = new SharedArrayBuffer(64)
      const pool = yield* ThreadPool.make({
        worker: new URL("./fixtures/worker.ts", import.meta.url),
        threads: 2,
        capacity: Infinity,
        timeout: "2 seconds",
        cancelGrace: "100 millis",
        workerData: { counters }
      })
      const awaiters: Array<Fiber.Fiber<Exit.Exit<unknown, unknown>>> = []
      const toInterrupt: Array<Fiber.Fiber<Exit.Exit<unknown, unknown>>> = []
      for (let i = 0; i < 2000; i++) {
        const r = random()
        const run: Effect.Effect<unknown, unknown> = r < 0.55
          ? pool.run(Echo, `${i}`)
          : r < 0.6
          // a task retried once: whether it succeeds depends on which thread each attempt lands on
          ? pool.run(Flaky, { key: `${i}`, failures: i % 3 }, { retry: { times: 1 } })
          : r < 0.75
          ? pool.run(Fail, `${i}`)
          : r < 0.85
          ? pool.run(Die, `${i}`)
          : r < 0.855
          ? pool.run(Spin, i, { timeout: "150 millis" })
          : r < 0.86
          ? pool.run(Crash, "exit")
          : pool.run(Sleep, { millis: 20, mark: 0 })
        const fiber = yield* Effect.forkChild(Effect.exit(run))
        awaiters.push(fiber)
        if (r >= 0.86 && random() < 0.5) toInterrupt.push(fiber)
      }
      // interrupt callers while their tasks are queued or running on a thread
      for (const fiber of toInterrupt) {
        yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 1)))
        yield* Fiber.interrupt(fiber)
      }
      yield* Effect.forEach(awaiters, Fiber.await, { discard: true })

      const seen: Record<Seen, number> = { succeeded: 0, failed: 0, defects: 0, timedOut: 0, interrupted: 0, crashed: 0 }
      for (const fiber of awaiters) {
        const outer = fiber.pollUnsafe()!
        if (Exit.isFailure(outer)) {
          seen.interrupted++
          continue
        }
        const exit = outer.value
        if (Exit.isSuccess(exit)) seen.succeeded++
        else if (Cause.hasDies(exit.cause)) seen.defects++
        else if (Cause.hasInterruptsOnly(exit.cause)) seen.interrupted++
        else {
          const error = Cause.squash(exit.cause)
          if (error instanceof PoolError.JobTimeout) seen.timedOut++
          else if (error instanceof PoolError.WorkerCrashed) seen.crashed++
          else seen.failed++
        }
      }
      // a timed-out task's awaiter is answered at the deadline; its thread may still be stopping
      yield* pool.awaitIdle
      const stats = yield* pool.stats
      // a crashed task is a failure of that task: the pool counts it as failed
      assert.deepStrictEqual(
        [stats.succeeded, stats.failed, stats.defects, stats.timedOut, stats.interrupted],
        [seen.succeeded, seen.failed + seen.crashed, seen.defects, seen.timedOut, seen.interrupted]
      )
      assert.strictEqual(stats.submitted, 2000)
      assert.deepStrictEqual([stats.running, stats.queued, stats.retrying], [0, 0, 0])
      assert.isAbove(stats.retried, 0)
      for (const kind of ["succeeded", "failed", "defects", "timedOut", "interrupted", "crashed"] as const) {
        assert.isAbove(seen[kind], 0, kind)
      }
      yield* waitFor(pool.threads, "the pool is back to 2 threads", { until: (n) => n === 2 })
      yield* pool.shutdown
      assert.strictEqual(yield* pool.threads, 0)
    }), 180_000)

  it("a program using a thread pool exits on its own after its scope closes", async () => {
    const script = new URL("./fixtures/exits-on-its-own.ts", import.meta.url).pathname
    const { code, stdout } = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const child = execFile(process.execPath, [script], { timeout: 60_000 }, (error, stdout) =>
        resolve({ code: error ? (error as { code?: number }).code ?? 1 : 0, stdout }))
      child.stdin?.end()
    })
    assert.strictEqual(code, 0)
    assert.include(stdout, `"hung":"JobTimeout"`)
    assert.include(stdout, "scope closed")
  }, 90_000)
})
