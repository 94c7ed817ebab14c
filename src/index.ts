/**
 * effect-workpool: a worker pool and job queue for Effect.
 *
 * @since 0.1.0
 */
export * as PoolError from "./PoolError.ts"
export * as WorkPool from "./WorkPool.ts"
