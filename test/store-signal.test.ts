/**
 * The stores' in-process wake-up (`signal.ts`) with keys: a change of one queue wakes the waiters
 * of that queue and those of every key (awaiters), not the consumers of other queues; `since` and
 * delayed changes are per key too. Under TestClock: a wait that should not end is seen still
 * running after time has passed.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { makeSignal, UNKEYED } from "../src/internal/store/signal.ts"

const HOUR = 3_600_000

/** Forks the waits, lets them start, runs `act`, and says which of them ended. */
const ended = (waits: ReadonlyArray<Effect.Effect<void>>, act: Effect.Effect<void>) =>
  Effect.gen(function*() {
    const fibers = yield* Effect.forEach(waits, (wait) => Effect.forkChild(wait))
    yield* Effect.yieldNow
    yield* act
    yield* Effect.yieldNow
    yield* Effect.yieldNow
    return fibers.map((fiber) => fiber.pollUnsafe() !== undefined)
  })

describe("the stores' wake-up signal, by key", () => {
  it.effect("a change of a queue wakes its waiters and the keyless ones, not another queue's; a change of everything wakes all", () =>
    Effect.gen(function*() {
      const signal = makeSignal({ clock: yield* Clock.Clock })
      const waits = () => [signal.wait(HOUR, undefined, ["a"]), signal.wait(HOUR, undefined, ["b", "c"]), signal.wait(HOUR)]
      assert.deepStrictEqual(yield* ended(waits(), Effect.sync(() => signal.notify("a"))), [true, false, true])
      assert.deepStrictEqual(yield* ended(waits(), Effect.sync(() => signal.notify("c"))), [false, true, true])
      assert.deepStrictEqual(yield* ended(waits(), Effect.sync(() => signal.notify(UNKEYED))), [false, false, true])
      assert.deepStrictEqual(yield* ended(waits(), Effect.sync(() => signal.notify())), [true, true, true])
    }))

  it.effect("since: a wait returns at once for a change of its keys made after it read the version, not for another queue's", () =>
    Effect.gen(function*() {
      const signal = makeSignal({ clock: yield* Clock.Clock })
      const since = yield* signal.version
      signal.notify("b")
      const [ofA, ofB, keyless] = yield* ended([
        signal.wait(HOUR, since, ["a"]),
        signal.wait(HOUR, since, ["b"]),
        signal.wait(HOUR, since)
      ], Effect.void)
      assert.deepStrictEqual([ofA, ofB, keyless], [false, true, true])
    }))

  it.effect("a delayed change of a queue wakes its waiters at its time, and not another queue's", () =>
    Effect.gen(function*() {
      const signal = makeSignal({ clock: yield* Clock.Clock })
      const a = yield* Effect.forkChild(signal.wait(HOUR, undefined, ["a"]))
      const b = yield* Effect.forkChild(signal.wait(HOUR, undefined, ["b"]))
      yield* Effect.yieldNow
      signal.notifyIn(1000, "a")
      yield* TestClock.adjust(999)
      assert.isUndefined(a.pollUnsafe())
      yield* TestClock.adjust(1)
      yield* Fiber.join(a)
      assert.isUndefined(b.pollUnsafe())
      yield* TestClock.adjust(HOUR)
      yield* Fiber.join(b)
    }))
})
