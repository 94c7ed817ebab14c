/**
 * Hostile tests of callback jobs (Effect.promise, Effect.tryPromise, Effect.callback, Effect.never)
 * that the fiber executor may run without a fiber of their own: whatever runs a job, its outcome is
 * the one the job's own fiber would give.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Request, RequestResolver } from "effect"
import { WorkPool } from "../src/index.ts"

class Double extends Request.Class<{ readonly n: number }, number> {}
const doubler = RequestResolver.make<Double>((entries) =>
  Effect.sync(() => {
    for (const entry of entries) entry.completeUnsafe(Exit.succeed(entry.request.n * 2))
  })
)

describe("callback jobs whose register needs their fiber", () => {
  it.effect("Effect.request (a callback primitive whose register reads the current fiber) runs as in a fiber", () =>
    Effect.gen(function*() {
      const direct = yield* Effect.request(new Double({ n: 21 }), doubler)
      const pool = yield* WorkPool.make({ concurrency: 2 })
      const pooled = yield* Effect.exit(pool.run(Effect.request(new Double({ n: 21 }), doubler)))
      assert.deepStrictEqual(pooled, Exit.succeed(direct))
      // a user's callback that reads its fiber, as Effect's own do
      const inFiber = yield* pool.run(Effect.callback<boolean>((resume) => {
        resume(Effect.succeed(Fiber.getCurrent() !== undefined))
      }))
      assert.isTrue(inFiber)
      assert.strictEqual((yield* pool.stats).defects, 0)
    }))
})
