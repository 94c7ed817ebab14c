/**
 * How the pool tells Effect's simplest primitives apart without running them, by prototype: an
 * `Effect.sync` and an Exit, which a job or a thread's task runs without a fiber (internal/job.ts
 * for the in-process pool, ThreadWorker.ts for a thread). A module of its own, importing only
 * effect's subpaths (not its barrel): a thread loads only the modules it needs.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"

/**
 * Effect 4.1's own keys of a primitive: which one it is, and its argument (see effect/internal/core).
 *
 * @example
 * ```ts
 * (effect as Record<string, unknown>)[ARGS] // an Effect.sync's function
 * ```
 */
export const IDENTIFIER = "~effect/Effect/identifier"
export const ARGS = "~effect/Effect/args"

/**
 * The prototype every `Effect.sync` shares, if it is the primitive expected (a later Effect whose
 * primitives look different: undefined, and every job gets a fiber).
 *
 * @example
 * ```ts
 * const isSync = (effect: object) => SYNC !== undefined && Object.getPrototypeOf(effect) === SYNC
 * ```
 */
export const SYNC: object | undefined = (() => {
  const proto = Object.getPrototypeOf(Effect.sync(() => undefined)) as Record<string, unknown>
  return proto[IDENTIFIER] === "Sync" ? proto : undefined
})()

/**
 * The prototypes of Effect's two kinds of Exit (a success, a failure).
 *
 * @example
 * ```ts
 * const isExit = (effect: object) => Object.getPrototypeOf(effect) === EXITS[0] || Object.getPrototypeOf(effect) === EXITS[1]
 * ```
 */
export const EXITS: ReadonlyArray<object> = [Object.getPrototypeOf(Exit.void), Object.getPrototypeOf(Exit.fail(undefined))]
