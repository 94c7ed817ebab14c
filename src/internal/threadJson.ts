/**
 * A `ThreadPool`'s way in for a durable consumer (`JobQueue.consume({ threadPool, tasks })`): a
 * task whose payload is the JSON text the store keeps (the task's JSON form), parsed and decoded
 * on the thread, which answers a success as JSON text in that form (see protocol.Run): the
 * consumer's main thread only stores it. The task runs as any of the pool's tasks (its queue,
 * priority, timeout, cancellation, spans); its progress goes to the caller as well as to the
 * pool's job. Also the pool's slots (`threads × tasksPerThread`), and word of each `resize`, which
 * a consumer without a concurrency of its own follows. Kept off the public `ThreadPool` interface:
 * each pool registers itself here when it is made.
 *
 * @internal
 */
import type * as Effect from "effect/Effect"
import type { JobError, WorkerStartFailed } from "../PoolError.ts"
import type * as Task from "../Task.ts"
import type * as WorkPool from "../WorkPool.ts"
import type { CurrentJobWire } from "./jobInfo.ts"
import type { Reply } from "./threads.ts"

export type RunJson = (
  task: Task.Any,
  payload: unknown,
  options: WorkPool.JobOptions,
  progress: (value: unknown) => void,
  /** The durable job the task runs for: its `JobQueue.CurrentJob` on the thread. */
  durable: CurrentJobWire
) => Effect.Effect<Reply, JobError | WorkerStartFailed>

/** A pool's way in, as a consumer sees it. */
export interface Entry {
  readonly run: RunJson
  /** How many tasks may run at once now: the pool's concurrency. */
  readonly slots: () => number
  /** Calls `f` after each resize of the pool (once its new threads started); returns the way to stop. */
  readonly onResize: (f: () => void) => () => void
}

const registry = new WeakMap<object, Entry & { readonly listeners: Set<() => void> }>()

/** Registers a pool's function and slots; returns the pool. */
export const register = <P extends object>(pool: P, run: RunJson, slots: () => number): P => {
  const listeners = new Set<() => void>()
  registry.set(pool, {
    run,
    slots,
    listeners,
    onResize: (f) => {
      listeners.add(f)
      return () => listeners.delete(f)
    }
  })
  return pool
}

/** Tells the pool's consumers that it was resized. */
export const resized = (pool: object): void => {
  const entry = registry.get(pool)
  if (entry !== undefined) for (const f of entry.listeners) f()
}

/** The way in of a pool made by `ThreadPool.make` (undefined for anything else). */
export const of = (pool: object): Entry | undefined => registry.get(pool)
