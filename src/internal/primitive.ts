/**
 * The pool's own Effect objects (`submit`, `run`, a live job's `await`): one small object each,
 * evaluated by the fiber that runs it (`Effectable.Prototype`, Effect's public way to make one),
 * and cheaper than Effect's own in two ways a trivial job notices:
 * - `yield*` on one allocates one 40-byte iterator, where Effect's (`SingleShotGen`) allocates
 *   itself and a result object, 80 bytes;
 * - one that succeeds at once hands its value to the fiber's next step, as `Effect.sync` does,
 *   rather than returning an Exit for the fiber to unwrap: no Exit, one step fewer.
 *
 * The success Exit of a job run on no fiber (an `Effect.sync`) is one too (`succeedExit`): Effect's
 * own success Exit in all but its iterator, which is the same 40-byte `Yielding`.
 *
 * @internal
 */
import { type Effect, Effectable, Exit, type Fiber } from "effect"

/**
 * The iterator `yield*` drives: the Effect on the first `next` (the fiber runs it), then its
 * result. It is its own result object, as Effect's is on the second `next`: a generator reads
 * `done` and `value` as soon as `next` returns, before it could call `next` again.
 */
class Yielding {
  value: unknown
  /**
   * Undefined before the first `next`, false after it (the Effect is out), true after the second
   * (its result is in). Undefined and false both read as "not done".
   */
  done: boolean | undefined = undefined
  constructor(effect: unknown) {
    this.value = effect
  }
  next(result: unknown): this {
    if (this.done === undefined) this.done = false
    else {
      this.done = true
      this.value = result
    }
    return this
  }
  [Symbol.iterator](): this {
    return this
  }
}

/**
 * A prototype for Effect objects of our own: Effect calls `evaluate` with the fiber that runs the
 * object (the object is `this`), and runs the Effect it returns.
 */
export const prototype = <A extends Effect.Effect<any, any, any>>(
  label: string,
  evaluate: (this: A, fiber: Fiber.Fiber<any, any>) => Effect.Effect<any, any, any>
): object => {
  const proto = Effectable.Prototype<A>({ label, evaluate })
  Object.defineProperty(proto, Symbol.iterator, {
    value(this: unknown) {
      return new Yielding(this)
    }
  })
  return proto
}

/** Effect 4.1's own key of a primitive's argument: a success Exit's value (see effect/internal/core). */
const ARGS = "~effect/Effect/args"

/**
 * A success Exit of the pool's own: its prototype inherits from the one `Exit.succeed` makes, so
 * it is Effect's Exit in every respect (`Exit.isExit`, `_tag`, `value`, `Equal`, `Hash`, JSON,
 * inspect, what a fiber does with it: test/job-results-as-values.test.ts), but `yield*` on it takes
 * one `Yielding` (40 bytes), where Effect's takes its iterator and a result object (80). A
 * submitter that awaits every handle (submit all, then await all) pays that once per job. Each
 * `yield*` gets an iterator of its own, as with Effect's: no state is shared between two.
 */
class Success {
  /**
   * One for the process's life: it keeps the class's hidden class, whose field it made first, for
   * any value. V8 lets go of a hidden class no object has, and one made again by a number has a
   * double field: it boxes every value (small integers too) in 16 bytes of its own.
   */
  static readonly kept: Success = new Success(undefined)
  constructor(value: unknown) {
    ;(this as unknown as Record<string, unknown>)[ARGS] = value
  }
}
Object.setPrototypeOf(Success.prototype, Object.getPrototypeOf(Exit.void))
Object.defineProperty(Success.prototype, Symbol.iterator, {
  value(this: unknown) {
    return new Yielding(this)
  }
})

// a field made by undefined, then given a small integer, holds any value as it is (see `kept`)
new Success(0)

/** Whether Effect's success Exit reads its value where `Success` keeps it (else: `Exit.succeed`). */
const SHAPED = (() => {
  const probe = {}
  const exit = new Success(probe) as unknown as Exit.Exit<unknown>
  return Exit.isExit(exit) && Exit.isSuccess(exit) && exit.value === probe
})()

/** The prototype of `succeedExit`'s Exits (job.ts's `asExit` knows it). */
export const successPrototype: object = Success.prototype

/**
 * A job's success Exit of `value` (see `Success`): `Exit.void` itself for `undefined`, as an
 * `Effect.void` job ends (an Exit is immutable: one for all).
 */
export const succeedExit = (value: unknown): Exit.Exit<unknown> =>
  value === undefined ? Exit.void : SHAPED ? new Success(value) as unknown as Exit.Exit<unknown> : Exit.succeed(value)

/**
 * What an `evaluate` returns to succeed with `value`: the fiber's next step already given the value
 * (Effect 4.1's `succeedWith`, the step `Effect.sync` takes), or an Exit where a fiber has no such
 * method.
 */
export const succeed = (fiber: Fiber.Fiber<any, any>, value: unknown): Effect.Effect<any> => {
  const succeedWith = (fiber as unknown as { readonly succeedWith?: (value: unknown) => Effect.Effect<any> }).succeedWith
  return typeof succeedWith === "function" ? succeedWith.call(fiber, value) : Exit.succeed(value)
}
