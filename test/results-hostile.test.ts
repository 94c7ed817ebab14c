/**
 * A job's result, attacked where users compare it: an Exit that reaches user code (a handle's
 * `await`, and any Exit a fiber ends with after running a job: `Effect.exit(pool.run(...))`,
 * `Fiber.await`, `Effect.runPromiseExit`) must be deep-equal to Effect's own, as test suites check
 * it (`expect(exit).toEqual(Exit.succeed(x))`, node's `assert.deepStrictEqual`), not just `Equal`.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import { isDeepStrictEqual } from "node:util"
import { WorkPool } from "../src/index.ts"

/** Equal to Effect's own Exit by every deep equality a test suite uses. */
const deepEqualsEffects = (exit: unknown, expected: Exit.Exit<unknown, unknown>, label: string): void => {
  assert.isTrue(isDeepStrictEqual(exit, expected), `${label}: node's deepStrictEqual`)
  expect(exit, `${label}: toEqual`).toEqual(expected)
  expect(exit, `${label}: toStrictEqual`).toStrictEqual(expected)
}

describe("an Effect.sync job's success Exit, compared", () => {
  it.effect("is deep-equal to Effect's own: the handle's await, Effect.exit of a run, Fiber.await, runPromiseExit", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const handle = yield* pool.submit(Effect.sync(() => 42))
      deepEqualsEffects(handle.await, Exit.succeed(42), "handle.await")
      deepEqualsEffects(yield* Effect.exit(handle.await), Exit.succeed(42), "Effect.exit(handle.await)")
      deepEqualsEffects(yield* Effect.exit(pool.run(Effect.sync(() => ({ n: 1 })))), Exit.succeed({ n: 1 }), "Effect.exit(run)")
      const fiber = yield* Effect.forkChild(pool.run(Effect.sync(() => "x")))
      deepEqualsEffects(yield* Fiber.await(fiber), Exit.succeed("x"), "Fiber.await")
      const promised = yield* Effect.promise(() => Effect.runPromiseExit(pool.run(Effect.sync(() => 7))))
      deepEqualsEffects(promised, Exit.succeed(7), "runPromiseExit")
      // and nested in a structure, as a list of results is compared
      const all = yield* Effect.forEach([1, 2], (i) => Effect.exit(pool.run(Effect.sync(() => i))))
      expect(all).toEqual([Exit.succeed(1), Exit.succeed(2)])
    }))
})
