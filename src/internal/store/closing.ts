/**
 * A store's end: its scope closing (its layer released) marks it closed and wakes its waiters, so
 * that a consumer or an awaiter outliving it (a scope order that releases the store first) finds out
 * at once instead of at its next poll, and stops (the consumer) or fails (an awaiter's next look).
 *
 * @internal
 */
import { Effect } from "effect"
import type * as Scope from "effect/Scope"
import { StoreError } from "../../DurableError.ts"
import type { Store } from "./model.ts"
import type { Signal } from "./signal.ts"

export interface Closing {
  readonly closed: Effect.Effect<boolean>
  readonly isClosed: () => boolean
  /**
   * Marks the store closed now, and wakes its waiters (once): for a finalizer of the store that runs
   * before this one's and fails its users' operations (the settle writer's), so that they see the
   * store closed, not a failure to retry on their clock.
   */
  readonly close: () => void
}

/**
 * The closed flag of a store whose waiters wait on `signals`. Its finalizer is added where this is
 * called: a store calls it after acquiring its client, so that the flag is set before the client
 * goes (finalizers run in reverse).
 */
export const make = (signals: ReadonlyArray<Signal>): Effect.Effect<Closing, never, Scope.Scope> =>
  Effect.gen(function*() {
    let closed = false
    const close = () => {
      if (closed) return
      closed = true
      for (const signal of signals) signal.notify()
    }
    yield* Effect.addFinalizer(() => Effect.sync(close))
    return { closed: Effect.sync(() => closed), isClosed: () => closed, close }
  })

/** The reason of a closed store's errors. */
export const CLOSED = "the store is closed (its layer was released)"

/** The error of operation `operation` on a closed store. */
export const closedError = (operation: string): StoreError => new StoreError({ operation, reason: CLOSED })

/**
 * The error of operation `operation` cut in flight by the store's close (its caller still waiting):
 * unlike a refused one, a write may have committed.
 */
export const cutError = (operation: string): StoreError =>
  new StoreError({ operation, reason: "the store's close cut it in flight (its layer was released; a write may have committed)" })

/** A store's operations that a closed store does not refuse: they read or wait on what it holds itself. */
type Unguarded = "wait" | "version" | "waitCancel" | "cancelVersion" | "now" | "closed" | "dependencies" | "kind"

/**
 * Every other operation, by the name its error gives. A mapped type: an operation added to `Store`
 * does not compile until it is named here (`progressOf`, added later by hand, was left out, and a
 * `progressChanges` reader of a closed memory store polled for ever).
 */
const GUARDED: { readonly [K in Exclude<keyof Store, Unguarded>]: string } = {
  enqueue: "enqueue",
  enqueueAll: "enqueue",
  get: "get",
  progressOf: "get",
  list: "list",
  cancel: "cancel",
  redrive: "redrive",
  purge: "purge",
  configure: "configure",
  retain: "retain",
  counts: "stats",
  latencies: "latencies",
  claim: "claim",
  heartbeat: "heartbeat",
  progress: "progress",
  settle: "settle",
  reap: "reap"
}

/**
 * `store` whose operations fail with `StoreError` once it is closed: a store with nothing of its
 * own to close (memory) would otherwise go on taking jobs that nobody will ever see, and one whose
 * client outlives the mark (Redis, in its close's grace) answered the readers its close woke.
 */
export const guard = (store: Store, isClosed: () => boolean): Store => {
  const guarded: Record<string, unknown> = { ...store }
  for (const [key, operation] of Object.entries(GUARDED)) {
    const run = store[key as keyof typeof GUARDED] as (...args: ReadonlyArray<unknown>) => Effect.Effect<unknown, StoreError>
    guarded[key] = (...args: ReadonlyArray<unknown>) =>
      Effect.suspend(() => isClosed() ? Effect.fail(closedError(operation)) : run(...args))
  }
  return guarded as unknown as Store
}
