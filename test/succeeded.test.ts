/**
 * What an `Effect.sync` job that succeeded leaves its handle's `await` (src/internal/succeeded.ts):
 * Effect's own success Exit in every respect, except that `yield*` on it allocates no iterator
 * (submit all, then await all does that once per job). Its iterator keeps no state, so it can be
 * awaited again, by several fibers, and in turn with other such Exits.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Equal, Exit, Fiber } from "effect"
import { WorkPool } from "../src/index.ts"

describe("an Effect.sync job's success Exit", () => {
  it.effect("is an Exit like Effect's, and yield* on it makes no iterator", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2 })
      const handle = yield* pool.submit(Effect.sync(() => 42))
      const kept = handle.await
      assert.isTrue(Exit.isExit(kept))
      const exit = kept as unknown as Exit.Exit<number>
      assert.isTrue(Exit.isSuccess(exit))
      assert.strictEqual(Exit.isSuccess(exit) ? exit.value : undefined, 42)
      assert.isTrue(Equal.equals(exit, Exit.succeed(42)))
      assert.strictEqual(yield* handle.status, "succeeded")
      assert.deepStrictEqual(exit.toJSON(), Exit.succeed(42).toJSON())
      // its own iterator: Effect's Exit makes two objects per yield* (a SingleShotGen and a result)
      const iterable = kept as unknown as { [Symbol.iterator](): unknown }
      assert.strictEqual(iterable[Symbol.iterator](), kept)
      assert.strictEqual(yield* kept, 42)
      assert.strictEqual(yield* kept, 42)
      assert.deepStrictEqual(yield* Effect.exit(kept), Exit.succeed(42))
    }))

  it.effect("many, awaited in turn, interleaved, by several fibers, each give their own value", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 3, capacity: Infinity })
      const values = [1, "two", { three: 3 }, 2 ** 40 + 0.5, null, false, 0, ""]
      const kept: Array<Effect.Effect<unknown, unknown>> = []
      for (const value of values) kept.push((yield* pool.submit(Effect.sync(() => value))).await)
      const inTurn: Array<unknown> = []
      for (const k of kept) inTurn.push(yield* k)
      assert.deepStrictEqual(inTurn, values)
      // one generator's yield* on one Exit between another's two `next` calls on another
      const fibers = yield* Effect.forEach([0, 1, 2], (shift) =>
        Effect.forkChild(Effect.gen(function*() {
          const out: Array<unknown> = []
          for (let i = 0; i < kept.length; i++) {
            out.push(yield* kept[(i + shift) % kept.length]!)
            yield* Effect.yieldNow
          }
          return out
        })))
      const results = yield* Fiber.joinAll(fibers)
      for (let shift = 0; shift < 3; shift++) {
        assert.deepStrictEqual(results[shift], values.map((_, i) => values[(i + shift) % values.length]))
      }
      // in the eager runner too (it reads an Exit's value without running it)
      const eager = Effect.fnUntracedEager(function*() {
        return [yield* kept[0]!, yield* kept[1]!]
      })
      assert.deepStrictEqual(yield* eager(), [1, "two"])
      assert.deepStrictEqual(yield* Effect.all(kept), values)
    }))

  it.effect("an undefined value is Exit.void: no Exit of its own", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const a = yield* pool.submit(Effect.sync(() => undefined))
      const b = yield* pool.submit(Effect.sync(() => {}))
      assert.strictEqual<unknown>(a.await, Exit.void)
      assert.strictEqual<unknown>(b.await, Exit.void)
      assert.strictEqual(yield* a.await, undefined)
    }))

  it.effect("resubmitted as a job, it is its own result (no fiber), as Effect's Exit is", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const first = yield* pool.submit(Effect.sync(() => "again"))
      const again = yield* pool.submit(first.await)
      assert.strictEqual(again.await, first.await)
      assert.strictEqual(yield* again.await, "again")
      const stats = yield* pool.stats
      assert.strictEqual(stats.succeeded, 2)
    }))
})
