/**
 * A `ThreadPool`'s way in for a durable consumer (`JobQueue.consume({ threadPool, tasks })`): a
 * task whose payload is the JSON text the store keeps (the task's JSON form), parsed and decoded
 * on the thread, which answers a success as JSON text in that form (see protocol.Run): the
 * consumer's main thread only stores it. The task runs as any of the pool's tasks (its queue,
 * priority, timeout, cancellation, spans); its progress goes to the caller as well as to the
 * pool's job. Kept off the public `ThreadPool` interface: each pool registers its function here
 * when it is made.
 *
 * @internal
 */
import type * as Effect from "effect/Effect"
import type { JobError, WorkerStartFailed } from "../PoolError.ts"
import type * as Task from "../Task.ts"
import type * as WorkPool from "../WorkPool.ts"
import type { Reply } from "./threads.ts"

export type RunJson = (
  task: Task.Any,
  payload: unknown,
  options: WorkPool.JobOptions,
  progress: (value: unknown) => void
) => Effect.Effect<Reply, JobError | WorkerStartFailed>

const registry = new WeakMap<object, RunJson>()

/** Registers a pool's function; returns the pool. */
export const register = <P extends object>(pool: P, run: RunJson): P => {
  registry.set(pool, run)
  return pool
}

/** The function of a pool made by `ThreadPool.make` (undefined for anything else). */
export const of = (pool: object): RunJson | undefined => registry.get(pool)
