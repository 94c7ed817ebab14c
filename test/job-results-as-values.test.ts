/**
 * A job's result (its handle's `await`, an Exit once it ended) and a submit are Effect values: they
 * must behave as Effect's own wherever an Effect is treated as a value or an iterable. (Written
 * against an allocation-free `yield*` tried in this session, whose own iterators looped for-of
 * forever: a guard for any later attempt.)
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Equal, Exit, Fiber, Hash, Stream } from "effect"
import { inspect } from "node:util"
import { WorkPool } from "../src/index.ts"
import { Echo } from "./fixtures/tasks.ts"
import { makePool } from "./fixtures/pool.ts"

/** At most `limit` elements of an iteration by for-of: more means it would never end. */
const take = (iterable: Iterable<unknown>, limit: number): Array<unknown> => {
  const out: Array<unknown> = []
  for (const x of iterable) {
    out.push(x)
    if (out.length >= limit) break
  }
  return out
}

describe("an Effect.sync job's success Exit, attacked", () => {
  it.effect("for-of, spread, Array.from, destructuring and Effect.forEach over it give it once, as over Effect's", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const exit = (yield* pool.submit(Effect.sync(() => 42))).await as unknown as Iterable<unknown>
      const other = (yield* pool.submit(Effect.sync(() => 43))).await as unknown as Iterable<unknown>
      const ref = Exit.succeed(42) as unknown as Iterable<unknown>
      assert.deepStrictEqual(take(ref, 100), [ref])
      assert.deepStrictEqual(take(exit, 100), [exit])
      assert.deepStrictEqual([...exit], [exit])
      assert.deepStrictEqual(Array.from(exit), [exit])
      const [first, second] = exit
      assert.deepStrictEqual([first, second], [exit, undefined])
      assert.deepStrictEqual(yield* Effect.forEach(exit, (e) => e as Effect.Effect<number>), [42])
      assert.deepStrictEqual(yield* Effect.all(exit as unknown as Iterable<Effect.Effect<number>>), [42])
      const pairs: Array<unknown> = []
      for (const a of exit) for (const b of other) pairs.push([a, b])
      assert.deepStrictEqual(pairs, [[exit, other]])
      // a broken for-of: the next one starts afresh
      for (const _ of exit) break
      // and a yield* on it still gives its value, twice
      assert.strictEqual(yield* (exit as unknown as Effect.Effect<number>), 42)
      assert.strictEqual(yield* (exit as unknown as Effect.Effect<number>), 42)
    }))

  it.effect("is Effect's Exit to Equal, Hash, JSON, inspect, Exit.match/map, runSync, flatten, race", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const handle = yield* pool.submit(Effect.sync(() => ({ n: 1 })))
      const exit = handle.await as unknown as Exit.Exit<{ n: number }>
      const value = Exit.isSuccess(exit) ? exit.value : undefined
      const ref = Exit.succeed(value)
      assert.isTrue(Equal.equals(exit, ref))
      assert.isTrue(Equal.equals(ref, exit))
      assert.strictEqual(Hash.hash(exit), Hash.hash(ref))
      assert.strictEqual(Equal.equals(exit, Exit.succeed({ n: 1 })), Equal.equals(ref, Exit.succeed({ n: 1 })))
      assert.strictEqual(JSON.stringify(exit), JSON.stringify(ref))
      assert.strictEqual(inspect(exit), inspect(ref))
      assert.strictEqual(String(exit), String(ref))
      assert.deepStrictEqual(Object.keys(exit), Object.keys(ref))
      assert.strictEqual(Exit.match(exit, { onSuccess: (v) => v, onFailure: () => undefined }), value)
      assert.deepStrictEqual(Exit.map(exit, (v) => v.n + 1), Exit.succeed(2))
      assert.strictEqual(Effect.runSync(exit), value)
      assert.strictEqual(yield* Effect.promise(() => Effect.runPromise(exit)), value)
      assert.strictEqual(yield* Effect.flatten(Effect.succeed(exit)), value)
      assert.strictEqual(yield* Effect.race(exit, exit), value)
      assert.strictEqual(yield* Effect.andThen(Effect.void, exit), value)
      assert.strictEqual(yield* exit.pipe(Effect.map((v) => v)), value)
      assert.strictEqual(yield* Fiber.join(yield* Effect.forkChild(exit)), value)
      assert.deepStrictEqual(yield* Effect.forEach([exit, exit], (e) => e), [value, value])
      const streamed = yield* Stream.runCollect(Stream.mapEffect(Stream.fromIterable([exit, exit]), (e) => e))
      assert.deepStrictEqual(Array.from(streamed), [value, value])
    }))

  it.effect("values that look like Effects, Exits, iterables or falsy come back as themselves", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2, capacity: Infinity })
      const fn = () => 1
      const values: Array<unknown> = [
        null, 0, -0, false, "", NaN, Exit.succeed(1), Exit.fail("e"), Exit.void, Effect.succeed(2),
        Effect.fail("boom"), fn, [1, 2], new Set([1]), { done: false, value: 3 }, { done: true }, Symbol.iterator
      ]
      const handles: Array<WorkPool.JobHandle<unknown, never>> = []
      for (const v of values) handles.push(yield* pool.submit(Effect.sync(() => v)))
      for (let i = 0; i < values.length; i++) {
        assert.isTrue(Object.is(yield* handles[i]!.await, values[i]), `value ${i}`)
      }
      // nested generators, Effect.fn, and a generator delegating by hand
      const nested = Effect.fn("nested")(function*(i: number) {
        return yield* Effect.gen(function*() {
          return yield* handles[i]!.await
        })
      })
      assert.strictEqual(yield* nested(6), values[6])
      function* delegate(e: Effect.Effect<unknown, unknown>): Generator<any, unknown, any> {
        const a = yield* e
        const b = yield* e
        return [a, b]
      }
      assert.deepStrictEqual(yield* (Effect.gen(() => delegate(handles[9]!.await)) as Effect.Effect<unknown, unknown>), [values[9], values[9]])
    }))

  it.effect("a handle awaited many times, by many fibers, and after the pool is shut down", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const handle = yield* pool.submit(Effect.sync(() => "v"))
      const fibers = yield* Effect.forEach(Array.from({ length: 20 }, (_, i) => i), (i) =>
        Effect.forkChild(Effect.gen(function*() {
          let out = ""
          for (let k = 0; k < 5; k++) {
            out += yield* handle.await
            if ((i + k) % 2 === 0) yield* Effect.yieldNow
          }
          return out
        })))
      for (const r of yield* Fiber.joinAll(fibers)) assert.strictEqual(r, "vvvvv")
      yield* pool.shutdown
      assert.strictEqual(yield* handle.await, "v")
      assert.deepStrictEqual(yield* Effect.exit(handle.await), Exit.succeed("v"))
    }))
})

describe("a submit, attacked", () => {
  it.effect("for-of, spread, Array.from over it give it once, as over Effect's, and submit nothing", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const submit = pool.submit(Effect.sync(() => 1)) as unknown as Iterable<unknown>
      assert.deepStrictEqual(take(submit, 100), [submit])
      assert.deepStrictEqual([...submit], [submit])
      assert.deepStrictEqual(Array.from(submit), [submit])
      // a runner by hand, calling `next` first with no argument, as Effect's iterator allows
      const iterator = submit[Symbol.iterator]() as Iterator<unknown, unknown, unknown>
      const step = iterator.next()
      assert.deepStrictEqual([step.done, step.value], [false, submit])
      const end = iterator.next("result")
      assert.deepStrictEqual([end.done, end.value], [true, "result"])
      // iterating it submitted nothing; a yield* afterwards still submits once
      assert.strictEqual((yield* pool.stats).submitted, 0)
      const handle = yield* (submit as unknown as Effect.Effect<WorkPool.JobHandle<number, never>>)
      assert.strictEqual(yield* handle.await, 1)
      assert.strictEqual((yield* pool.stats).submitted, 1)
    }))

  it.effect("yield* twice submits twice; kept and yielded later; yielded inside another submit's job", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2, capacity: Infinity })
      let runs = 0
      const submit = pool.submit(Effect.sync(() => ++runs))
      const a = yield* submit
      const b = yield* submit
      assert.notStrictEqual(a, b)
      assert.deepStrictEqual([yield* a.await, yield* b.await].sort(), [1, 2])
      yield* Effect.yieldNow
      const c = yield* submit
      assert.strictEqual(yield* c.await, 3)
      const outer = yield* pool.submit(Effect.gen(function*() {
        const inner = yield* pool.submit(Effect.sync(() => "inner"))
        const again = yield* submit
        return [yield* inner.await, yield* again.await]
      }))
      assert.deepStrictEqual(yield* outer.await, ["inner", 4])
      // interleaved in two fibers
      const fibers = yield* Effect.forEach([0, 1], () =>
        Effect.forkChild(Effect.gen(function*() {
          const x = yield* submit
          yield* Effect.yieldNow
          const y = yield* submit
          return [x, y]
        })))
      const handles = (yield* Fiber.joinAll(fibers)).flat()
      assert.strictEqual(new Set(handles).size, 4)
      const results = yield* Effect.forEach(handles, (h) => h.await)
      assert.deepStrictEqual(results.sort(), [5, 6, 7, 8])
    }))
})

describe("a thread pool's results, next to them", () => {
  it.live("a thread task's handle, awaited in turn with a fiber job's Exit and by two fibers, gives each its value", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1 })
      const fibers = yield* WorkPool.make({ concurrency: 1 })
      const thread = yield* pool.submit(Echo, "a")
      const sync = (yield* fibers.submit(Effect.sync(() => "b"))).await
      const both = yield* Effect.forEach([0, 1], (shift) =>
        Effect.forkChild(Effect.gen(function*() {
          return shift === 0 ? [yield* thread.await, yield* sync] : [yield* sync, yield* thread.await]
        })))
      assert.deepStrictEqual(yield* Fiber.joinAll(both), [["echo a", "b"], ["b", "echo a"]])
      assert.deepStrictEqual(yield* Effect.exit(thread.await), Exit.succeed("echo a"))
      assert.deepStrictEqual([...(sync as unknown as Iterable<unknown>)], [sync])
    }))
})
