/**
 * Running a job's code on no fiber, as both the pool's fiber executor (main thread) and a thread's
 * run loop do for an `Effect.sync`: Effect keeps the running fiber in a global, and code run
 * outside any fiber must not see another one there (the submitter's, or another task's).
 *
 * Imports `effect/Exit` by subpath: threads load this file (see ThreadWorker.ts).
 *
 * @internal
 */
import * as Exit from "effect/Exit"

/** Where Effect 4.1 keeps the running fiber (`Fiber.getCurrent`). */
const CURRENT_FIBER = "~effect/Fiber/currentFiber"

/**
 * Leaves the current fiber: `Fiber.getCurrent()` is undefined until `restoreFiber`, so that a job's
 * function that runs without a fiber of its own never sees the submitter's (in the job's own fiber
 * it would see that fiber: a function that reads it needs one, see job.ts `asCallback`). Two calls
 * around the function rather than a function that takes it: a closure per job cost a trivial job
 * 100 of its 700 allocated bytes.
 */
export const leaveFiber = (): unknown => {
  const current = (globalThis as Record<string, unknown>)[CURRENT_FIBER]
  if (current !== undefined) (globalThis as Record<string, unknown>)[CURRENT_FIBER] = undefined
  return current
}

/** Makes `fiber` (what `leaveFiber` returned) the current one again. */
export const restoreFiber = (fiber: unknown): void => {
  if (fiber !== undefined) (globalThis as Record<string, unknown>)[CURRENT_FIBER] = fiber
}

/** Runs an `Effect.sync` function as its fiber would, outside any fiber: its value, or the defect it threw. */
export const runThunk = (thunk: () => unknown): Exit.Exit<unknown> => {
  const current = leaveFiber()
  try {
    return Exit.succeed(thunk())
  } catch (defect) {
    return Exit.die(defect)
  } finally {
    restoreFiber(current)
  }
}
