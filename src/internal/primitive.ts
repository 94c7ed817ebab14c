/**
 * The pool's own Effect objects (`submit`, `run`, a live job's `await`): one small object each,
 * evaluated by the fiber that runs it (`Effectable.Prototype`, Effect's public way to make one),
 * and cheaper than Effect's own in two ways a trivial job notices:
 * - `yield*` on one allocates one 40-byte iterator, where Effect's (`SingleShotGen`) allocates
 *   itself and a result object, 80 bytes;
 * - one that succeeds at once hands its value to the fiber's next step, as `Effect.sync` does,
 *   rather than returning an Exit for the fiber to unwrap: no Exit, one step fewer.
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

/**
 * What an `evaluate` returns to succeed with `value`: the fiber's next step already given the value
 * (Effect 4.1's `succeedWith`, the step `Effect.sync` takes), or an Exit where a fiber has no such
 * method.
 */
export const succeed = (fiber: Fiber.Fiber<any, any>, value: unknown): Effect.Effect<any> => {
  const succeedWith = (fiber as unknown as { readonly succeedWith?: (value: unknown) => Effect.Effect<any> }).succeedWith
  return typeof succeedWith === "function" ? succeedWith.call(fiber, value) : Exit.succeed(value)
}
