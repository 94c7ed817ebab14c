/**
 * The pool's own Effect objects (`submit`, `run`, a live job's `await`: src/internal/primitive.ts):
 * `yield*` drives each through an iterator of its own, and one that succeeds at once hands its value
 * to the fiber's next step. Whatever drives them, they behave as any Effect.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { WorkPool } from "../src/index.ts"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import { settle } from "./helpers.ts"

describe("the pool's Effect objects", () => {
  it("Effect 4.1's fiber has the step (`succeedWith`) that hands a value to its next step, as Effect.sync's does", () => {
    // without it the pool's Effects still work, through an Exit each: an Effect upgrade that
    // removes it fails here, to be reviewed
    const kind = Effect.runSync(Effect.withFiber((fiber) => Effect.succeed(typeof (fiber as any).succeedWith)))
    assert.strictEqual(kind, "function")
  })

  it.effect("the iterator yield* drives gives the Effect, then its result, and nothing is shared between two", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const submission = pool.submit(Effect.succeed(1))
      const one = submission[Symbol.iterator]()
      const two = submission[Symbol.iterator]()
      assert.notStrictEqual(one, two)
      const first = one.next()
      assert.deepStrictEqual([first.done, first.value === submission], [false, true])
      assert.deepStrictEqual([two.next().done, two.next("b" as any).value], [false, "b"])
      const last = one.next("a" as any)
      assert.deepStrictEqual([last.done, last.value], [true, "a"])
      // nothing ran: only a fiber runs an Effect
      assert.strictEqual((yield* pool.stats).submitted, 0)
    }))

  it.effect("one submit, run and await value yielded again and again, and by several fibers at once, runs each time", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 4 })
      let ran = 0
      const submit = pool.submit(Effect.sync(() => ++ran))
      const handles = [yield* submit, yield* submit, yield* submit]
      assert.deepStrictEqual(handles.map((h) => h.id), [1, 2, 3])
      assert.strictEqual(ran, 3)
      const gate = yield* Deferred.make<void>()
      const run = pool.run(Effect.as(Deferred.await(gate), "done"))
      const fibers = yield* Effect.forEach([1, 2, 3], () =>
        Effect.forkChild(Effect.gen(function*() {
          return yield* run
        })))
      yield* settle
      assert.strictEqual((yield* pool.stats).running, 3)
      const live = yield* pool.submit(Effect.as(Effect.sleep("1 second"), "slept"))
      const awaiting = live.await
      const waiters = yield* Effect.forEach([1, 2], () =>
        Effect.forkChild(Effect.gen(function*() {
          return (yield* awaiting) + (yield* awaiting)
        })))
      yield* Deferred.succeed(gate, undefined)
      assert.deepStrictEqual(yield* Effect.forEach(fibers, Fiber.join), ["done", "done", "done"])
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* Effect.forEach(waiters, Fiber.join), ["sleptslept", "sleptslept"])
    }))

  it.effect("a refused submit fails the generator that yields it, which can catch it", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, capacity: 0, overflow: "fail" })
      yield* pool.submit(Effect.sleep("1 second"))
      const refused = yield* Effect.exit(Effect.gen(function*() {
        return yield* pool.submit(Effect.void)
      }))
      assert.isTrue(Exit.isFailure(refused))
      assert.strictEqual(Exit.isFailure(refused) && (refused.cause.reasons[0] as any).error._tag, "QueueFull")
      yield* TestClock.adjust("1 second")
    }))

  it.effect("a submitter that submits many synchronous jobs in a row still lets other fibers run (it counts as Effect steps)", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      let other = 0
      const beside = yield* Effect.forkChild(Effect.forever(Effect.andThen(Effect.yieldNow, Effect.sync(() => other++))))
      let seenBeside = 0
      for (let i = 0; i < 20_000; i++) {
        yield* pool.submit(Effect.void)
        seenBeside = Math.max(seenBeside, other)
      }
      yield* Fiber.interrupt(beside)
      assert.isAbove(seenBeside, 0)
    }))

  it.effect("a kept success Exit of a small integer is one small object: its value is not boxed on its own", () =>
    Effect.gen(function*() {
      // V8 gives up a hidden class no object has: made again by a number first, the Exit's field
      // would box every number (small integers too) in 16 bytes of its own (Effect's Exit
      // keeps its class alive through Exit.void)
      setFlagsFromString("--expose-gc")
      const gc: () => void = runInNewContext("gc")
      const pool = yield* WorkPool.make({ concurrency: 1, capacity: Infinity })
      const n = 100_000
      const heap = () => {
        for (let i = 0; i < 3; i++) gc()
        return process.memoryUsage().heapUsed
      }
      const kept = new Array<unknown>(n)
      const before = heap()
      // a number that is no small integer first: what would make that field a double field
      kept[0] = (yield* pool.submit(Effect.sync(() => 2 ** 40))).await
      for (let i = 1; i < n; i++) kept[i] = (yield* pool.submit(Effect.sync(() => i))).await
      const perExit = (heap() - before) / n
      // an Exit is 32 bytes on 64-bit V8 (24 with pointer compression), plus 8 (or 4) in the array;
      // boxed values add 16 (or 12) more
      assert.isBelow(perExit, 44, `${perExit.toFixed(1)} bytes per kept Exit`)
      assert.strictEqual(kept.length, n)
    }))
})
