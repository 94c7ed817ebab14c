/**
 * effect-workpool: a worker pool and job queue for Effect.
 *
 * - `WorkPool`: worker fibers, for I/O-bound jobs (any `Effect`).
 * - `ThreadPool`: worker threads, for CPU-bound tasks defined with `Task` and served by `ThreadWorker`.
 * - `PoolError`: the tagged errors both add to a job's own error type.
 *
 * @since 0.1.0
 */
export * as PoolError from "./PoolError.ts"
export * as Task from "./Task.ts"
export * as ThreadPool from "./ThreadPool.ts"
export * as ThreadWorker from "./ThreadWorker.ts"
export * as WorkPool from "./WorkPool.ts"
