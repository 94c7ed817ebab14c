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
import { prng } from "./helpers.ts"

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

describe("the process-wide spare queue lane, two pools at once", () => {
  it.effect("two paused pools in turns, cancels and partial drains: each lists and runs only its own jobs, best first", () =>
    Effect.gen(function*() {
      for (let seed = 1; seed <= 20; seed++) {
        const random = prng(seed)
        const pools = [
          yield* WorkPool.make({ concurrency: 1, capacity: Infinity, paused: true }),
          yield* WorkPool.make({ concurrency: 1, capacity: Infinity, paused: true })
        ]
        const ran: Array<Array<string>> = [[], []]
        const queued: Array<Map<number, { priority: number; tag: string }>> = [new Map(), new Map()]
        let tags = 0
        for (let step = 0; step < 60; step++) {
          const p = random() < 0.5 ? 0 : 1
          const pool = pools[p]!
          const x = random()
          if (x < 0.6) {
            // few priorities: lanes empty and are made again often, by either pool
            const priority = Math.floor(random() * 3)
            const tag = `${p}:${++tags}`
            const handle = yield* pool.submit(Effect.sync(() => void ran[p]!.push(tag)), { priority })
            queued[p]!.set(handle.id, { priority, tag })
          } else if (x < 0.8 && queued[p]!.size > 0) {
            const ids = Array.from(queued[p]!.keys())
            const id = ids[Math.floor(random() * ids.length)]!
            assert.isTrue(yield* pool.cancel(id))
            queued[p]!.delete(id)
          } else {
            // run this pool's queue out (its lanes go to the spare), then pause it again
            const expected = Array.from(queued[p]!.values())
              .map((e, i) => ({ ...e, i }))
              .sort((a, b) => b.priority - a.priority || a.i - b.i)
              .map((e) => e.tag)
            ran[p]!.length = 0
            yield* pool.resume
            while (ran[p]!.length < expected.length) yield* Effect.yieldNow
            yield* pool.pause
            assert.deepStrictEqual(ran[p], expected, `seed ${seed} step ${step}`)
            queued[p]!.clear()
          }
          for (const q of [0, 1]) {
            const listed = (yield* pools[q]!.jobs({ status: "queued" })).map((j) => j.id)
            assert.deepStrictEqual(listed, Array.from(queued[q]!.keys()).sort((a, b) => a - b), `seed ${seed} step ${step}`)
          }
        }
        for (const pool of pools) yield* pool.shutdown
      }
    }))
})
