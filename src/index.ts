/**
 * effect-workpool: a worker pool and job queue for Effect.
 *
 * The root entry is platform-neutral (no Node.js module is loaded through it):
 * - `WorkPool`: worker fibers, for I/O-bound jobs (any `Effect`).
 * - `Task`: the schema-described tasks a `ThreadPool` runs.
 * - `PoolError`: the tagged errors both pools add to a job's own error type.
 * - `JobQueue`: durable jobs, kept in a store shared by processes (enqueue, await by id, consume).
 * - `DurableError`: the errors durable jobs add.
 *
 * The worker-thread pool needs Node.js and has its own entries:
 * `effect-workpool/ThreadPool` (the pool, on the main thread) and `effect-workpool/ThreadWorker`
 * (the worker entry file's side). So do the durable job stores (`effect-workpool/JobStore`: an SQLite
 * file, or memory; `effect-workpool/PgJobStore`; `effect-workpool/RedisJobStore`) and the live web
 * page of pools and queues (`effect-workpool/Dashboard`).
 *
 * @since 0.1.0
 */
export * as DurableError from "./DurableError.ts"
export * as JobQueue from "./JobQueue.ts"
export * as PoolError from "./PoolError.ts"
export * as Task from "./Task.ts"
export * as WorkPool from "./WorkPool.ts"
