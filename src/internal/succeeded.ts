/**
 * The Exit a job that succeeded on no fiber ends with (an `Effect.sync` job: fiberExecutor.ts), and
 * its handle's `await` from then on. It is Effect's own success Exit in every respect (its prototype
 * inherits from the one `Exit.succeed` makes: `Exit.isExit`, `_tag`, `value`, equality, what a fiber
 * does with it) except one: `yield*` on it allocates nothing, where `yield*` on Effect's allocates
 * an iterator and a result object, 80 bytes. Submit all, then await all pays that once per job: a
 * sixth of what a trivial job allocated.
 *
 * Its iterator is itself, and so is its last result (`done` is true on its prototype, and its
 * `value` is what it succeeded with); its first result (the Exit to run) is one shared object. So it
 * keeps no state of its own between the two `next` calls of a `yield*`, and can be awaited any
 * number of times, by any number of fibers at once. The first call is told apart from the second by
 * its argument: `yield*` passes `undefined` to the first, and the second gets what the Exit
 * succeeded with (Effect's generator runners read an Exit's `value` and pass it on without running
 * it). So a value of `undefined` is `Exit.void` itself: the one case the argument cannot tell, and
 * no per-job Exit at all.
 *
 * The shared first result is read as soon as `next` returns: a generator hands a delegate's result
 * on as its own, and Effect's runners (`Effect.gen`'s, and the eager one) read `done`, then `value`,
 * before anything else runs, for an Exit too (they do not run it: they read its value). The second
 * call lets go of it, so that it keeps no awaited Exit alive.
 *
 * @internal
 */
import { Exit } from "effect"

/** Effect 4.1's own key of a primitive's argument (the Exit's value): see effect/internal/core. */
const ARGS = "~effect/Effect/args"

const SUCCESS: object = Object.getPrototypeOf(Exit.succeed(0))

/** What the first `next` returns: the Exit itself to run (`value` is set at each call). */
const FIRST: { done: boolean; value: unknown } = { done: false, value: undefined }

/** Whether Effect's success Exit keeps its value where this file expects it (else: `Exit.succeed`). */
const SHAPED = (Exit.succeed(SUCCESS) as unknown as Record<string, unknown>)[ARGS] === SUCCESS

function Succeeded(this: Record<string, unknown>, value: unknown) {
  this[ARGS] = value
}
Succeeded.prototype = Object.create(SUCCESS, {
  [Symbol.iterator]: {
    value(this: unknown) {
      return this
    }
  },
  next: {
    value(this: unknown, result: unknown) {
      if (result === undefined) {
        FIRST.value = this
        return FIRST
      }
      FIRST.value = undefined
      return this
    }
  },
  // as the last result of its iterator (its `value` is the Exit's value)
  done: { value: true }
})

/** The prototype of the Exits `succeeded` makes (job.ts's `asExit` recognizes it). */
export const prototype: object = Succeeded.prototype

/** A success Exit of `value` that `yield*` allocates nothing for (see above). */
export const succeeded = <A>(value: A): Exit.Exit<A> =>
  value === undefined
    ? Exit.void as Exit.Exit<A>
    : SHAPED
    ? new (Succeeded as unknown as new(value: A) => Exit.Exit<A>)(value)
    : Exit.succeed(value)
