import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Schedule } from "effect"
import { TestClock } from "effect/testing"
import { PoolError, WorkPool } from "../src/index.ts"
import { prng } from "./helpers.ts"

type Seen = "succeeded" | "failed" | "defects" | "timedOut" | "interrupted" | "rejected"

const classify = (exit: Exit.Exit<unknown, unknown>): Seen => {
  if (Exit.isSuccess(exit)) return "succeeded"
  const error = Cause.findErrorOption(exit.cause)
  if (error._tag === "Some") {
    const e = error.value
    if (e instanceof PoolError.JobTimeout) return "timedOut"
    if (e instanceof PoolError.PoolShutdown) return e.phase === "admission" ? "rejected" : "interrupted"
    return "failed"
  }
  if (Cause.hasDies(exit.cause)) return "defects"
  return "interrupted"
}

describe("accounting under chaos", () => {
  it.effect("10,000 random jobs, some of them retried, each end exactly once and the counts add up", () =>
    Effect.gen(function*() {
      const random = prng(20261122)
      const pool = yield* WorkPool.make({
        concurrency: 12,
        capacity: 200,
        timeout: "50 millis",
        shutdownTimeout: "200 millis"
      })
      // one fiber per job, whose exit is what its awaiter saw
      const awaiters: Array<Fiber.Fiber<Exit.Exit<unknown, unknown>, unknown>> = []
      const callerInterrupts: Array<Fiber.Fiber<unknown, unknown>> = []
      const handleInterrupts: Array<WorkPool.JobHandle<unknown, unknown>> = []
      const total = 10_000
      let submitted = 0
      for (let step = 0; submitted < total; step++) {
        // steady load, then a last burst so that the shutdown meets a backlog
        const burst = submitted >= total - 1000 ? 200 : 6
        for (let k = 0; k < burst && submitted < total; k++, submitted++) {
          const r = random()
          const priority = Math.floor(random() * 5)
          const work = Effect.sleep(`${Math.floor(random() * 30)} millis`)
          if (r < 0.35) {
            awaiters.push(yield* Effect.forkChild(Effect.exit(pool.run(Effect.as(work, "ok"), { priority }))))
          } else if (r < 0.5) {
            awaiters.push(yield* Effect.forkChild(Effect.exit(pool.run(Effect.andThen(work, Effect.fail("no")), { priority }))))
          } else if (r < 0.6) {
            awaiters.push(yield* Effect.forkChild(Effect.exit(pool.run(Effect.andThen(work, Effect.die("bug")), { priority }))))
          } else if (r < 0.7) {
            awaiters.push(yield* Effect.forkChild(Effect.exit(pool.run(Effect.sleep("100 millis"), { priority }))))
          } else if (r < 0.8) {
            const caller = yield* Effect.forkChild(Effect.exit(pool.run(work, { priority })))
            awaiters.push(caller)
            callerInterrupts.push(caller)
          } else if (r < 0.9) {
            const submitter = yield* Effect.forkChild(
              pool.submit(Effect.sleep("40 millis"), { priority }).pipe(
                Effect.tap((handle) => Effect.sync(() => void handleInterrupts.push(handle))),
                Effect.flatMap((handle) => handle.await),
                Effect.exit
              )
            )
            awaiters.push(submitter)
          } else if (r < 0.95) {
            awaiters.push(yield* Effect.forkChild(Effect.exit(pool.run(Effect.succeed("sync"), { priority }))))
          } else {
            // fails its first 0 to 3 attempts (a defect or its error), of 3 at most
            const failures = Math.floor(random() * 4)
            let attempts = 0
            const flaky = Effect.andThen(
              work,
              Effect.suspend(() => ++attempts > failures ? Effect.succeed("ok") : attempts % 2 ? Effect.fail("no") : Effect.die("bug"))
            )
            const retry = { schedule: Schedule.spaced(`${Math.floor(random() * 40)} millis`), times: 2 }
            awaiters.push(yield* Effect.forkChild(Effect.exit(pool.run(flaky, { priority, retry }))))
          }
        }
        yield* Effect.yieldNow
        // chaos: interrupt some callers and handles, resize now and then
        while (callerInterrupts.length > 0 && random() < 0.8) {
          yield* Fiber.interrupt(callerInterrupts.splice(Math.floor(random() * callerInterrupts.length), 1)[0]!)
        }
        while (handleInterrupts.length > 0 && random() < 0.8) {
          yield* handleInterrupts.splice(Math.floor(random() * handleInterrupts.length), 1)[0]!.interrupt
        }
        if (step % 7 === 0) yield* pool.resize(4 + Math.floor(random() * 16))
        yield* TestClock.adjust("10 millis")
        const s = yield* pool.stats
        assert.strictEqual(
          s.submitted,
          s.waiting + s.queued + s.retrying + s.running + s.succeeded + s.failed + s.defects + s.timedOut +
            s.interrupted + s.dropped
        )
      }
      for (const caller of callerInterrupts) yield* Fiber.interrupt(caller)
      // shut down while work is still queued and running
      const closing = yield* Effect.forkChild(pool.shutdown)
      for (let i = 0; i < 30; i++) yield* TestClock.adjust("10 millis")
      yield* Fiber.join(closing)

      const seen: Record<Seen, number> = {
        succeeded: 0,
        failed: 0,
        defects: 0,
        timedOut: 0,
        interrupted: 0,
        rejected: 0
      }
      for (const awaiter of awaiters) {
        const exit = awaiter.pollUnsafe()
        assert.isDefined(exit, "no awaiter hangs")
        // an awaiter fiber that was itself interrupted saw its job cancelled
        const outcome = Exit.isFailure(exit!) ? "interrupted" : classify(exit!.value)
        seen[outcome]++
      }
      const stats = yield* pool.stats
      if (process.env.DEBUG_ACCOUNTING) console.log(seen, stats)
      assert.strictEqual(stats.state, "stopped")
      assert.deepStrictEqual([stats.running, stats.queued, stats.waiting, stats.retrying, stats.workers], [0, 0, 0, 0, 0])
      assert.isAbove(stats.retried, 0)
      // what the awaiters saw is what the pool counted: no job ended twice or not at all
      assert.deepStrictEqual(
        {
          succeeded: stats.succeeded,
          failed: stats.failed,
          defects: stats.defects,
          timedOut: stats.timedOut,
          interrupted: stats.interrupted,
          rejected: stats.rejected
        },
        seen
      )
      assert.strictEqual(stats.dropped, 0)
      assert.strictEqual(stats.submitted + stats.rejected, total)
      // every kind of ending happened
      for (const [kind, count] of Object.entries(seen)) assert.isAbove(count, 0, kind)
    }), { timeout: 120_000 })
})
