/**
 * The Redis job store: durable jobs in a Redis (7 or later), a Redis Cluster or a primary behind
 * Redis Sentinel (`sentinel`: it follows failovers), shared by any
 * number of producer and consumer processes on any number of machines. Built on effect's `Redis`
 * service over the `redis` client, an optional peer dependency that only this module needs
 * (`npm install redis`): the SQLite and memory stores of `effect-workpool/JobStore` work without it.
 *
 * Every change of a job's state is one Lua script, atomic on the server; time is the server's
 * (`TIME`); idle consumers block on a marker key (`BZPOPMIN`) instead of polling. A queue's keys
 * share one hash tag, `{<prefix>:<queue>}`, so the store works on Redis Cluster. Keep jobs safe
 * with append-only persistence (`appendonly yes`, `appendfsync always` to lose nothing on a crash
 * of the server's machine): see docs/durable.md.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { JobQueue, Task } from "effect-workpool"
 * import * as RedisJobStore from "effect-workpool/RedisJobStore"
 *
 * const Ping = Task.make("Ping", { payload: Schema.String, success: Schema.String })
 * const program = JobQueue.enqueue(Ping, "hello").pipe(
 *   Effect.provide(RedisJobStore.layer({ url: "redis://redis.internal:6379" }))
 * )
 * ```
 *
 * @since 0.2.0
 */
import type { Duration, Redacted } from "effect"
import { Effect, Layer } from "effect"
import type { StoreError } from "./DurableError.ts"
import * as Model from "./internal/store/model.ts"
import * as RedisStore from "./internal/store/redis.ts"

/**
 * Options of the Redis store.
 *
 * @example
 * ```ts
 * import { Redacted } from "effect"
 * import type * as RedisJobStore from "effect-workpool/RedisJobStore"
 *
 * const options: RedisJobStore.RedisJobStoreOptions = {
 *   url: Redacted.make(process.env.REDIS_URL ?? "redis://localhost:6379"),
 *   prefix: "jobs"
 * }
 * ```
 * @since 0.2.0
 * @category models
 */
export interface RedisJobStoreOptions {
  /**
   * `redis://[user:password@]host:port[/db]` or `rediss://` (TLS); a `Redacted` keeps the password out
   * of logs. Required unless `sentinel` is given (not with it).
   */
  readonly url?: string | Redacted.Redacted<string> | undefined
  /**
   * What every key starts with (`{<prefix>:<queue>}:...`); default `workpool`. One prefix, one set of
   * queues. Letters, digits, `_`, `.`, `-`: no `:` (prefixes `p` and `p:x` would share queues).
   */
  readonly prefix?: string | undefined
  /**
   * How long to wait for a connection to open and its server to answer its handshake; default 10
   * seconds, at most 2^31 - 1 ms (about 24.8 days, a Node timer's longest).
   */
  readonly connectTimeout?: Duration.Input | undefined
  /**
   * `url` is one node of a Redis Cluster (the client finds the others); default false. A queue's
   * keys are in one slot, so each script runs on one node; queues spread over the nodes.
   */
  readonly cluster?: boolean | undefined
  /**
   * A primary watched by Redis Sentinel, instead of `url`: the store asks the sentinels where the
   * primary is, and again after a failover (see docs/durable.md, "Redis Sentinel").
   */
  readonly sentinel?: RedisSentinelOptions | undefined
}

/**
 * Where the primary is, through Redis Sentinel (high availability: a primary, its replicas, and
 * sentinels that promote a replica when the primary fails). The store asks the sentinels in turn
 * (from the last that answered) for the primary's address, checks with `ROLE` that it is one, and
 * asks again whenever its connection ends or a write meets `READONLY` (a primary made a replica).
 * The sentinels' own credentials go in their URLs; the primary's and replicas' are `username` and
 * `password`. `rediss://` sentinels: TLS to them and to the primary.
 *
 * @example
 * ```ts
 * import { Effect, Redacted, Schema } from "effect"
 * import { JobQueue, Task } from "effect-workpool"
 * import * as RedisJobStore from "effect-workpool/RedisJobStore"
 *
 * const Ping = Task.make("Ping", { payload: Schema.String, success: Schema.String })
 * const store = RedisJobStore.layer({
 *   sentinel: {
 *     name: "mymaster",
 *     sentinels: ["redis://sentinel-0:26379", "redis://sentinel-1:26379", "redis://sentinel-2:26379"],
 *     password: Redacted.make(process.env.REDIS_PASSWORD ?? "dev-password")
 *   }
 * })
 * const program = JobQueue.enqueue(Ping, "hello").pipe(Effect.provide(store))
 * ```
 * @since 0.3.0
 * @category models
 */
export interface RedisSentinelOptions {
  /** The name the sentinels monitor the primary under (`sentinel monitor <name> ...`; Bitnami's chart: `mymaster`). */
  readonly name: string
  /**
   * One or more sentinels (three or five usual): `redis://[user:password@]host[:port]`, port 26379
   * if none, or all `rediss://`; the credentials are the sentinels' own (their `requirepass` or ACL
   * user), apart from the data nodes'. A `Redacted` keeps a password out of logs.
   */
  readonly sentinels: ReadonlyArray<string | Redacted.Redacted<string>>
  /** The ACL user of the primary and its replicas (`default` if none). */
  readonly username?: string | undefined
  /** The password of the primary and its replicas (their `requirepass`, or the user's). */
  readonly password?: string | Redacted.Redacted<string> | undefined
  /** The database number on the primary; default 0. */
  readonly database?: number | undefined
}

/**
 * A store in a Redis. Building the layer connects (an unreachable server fails with `StoreError`)
 * and starts listening for cancels. A lost connection fails the operations in flight, and those
 * sent while it is down, with `StoreError`; the client reconnects, so consumers and producers go
 * on once the server is back.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { JobQueue, Task } from "effect-workpool"
 * import * as RedisJobStore from "effect-workpool/RedisJobStore"
 *
 * const Resize = Task.make("Resize", { payload: Schema.String, success: Schema.Number })
 *
 * const consumer = JobQueue.consume({
 *   handlers: [Task.handle(Resize, (path) => Effect.succeed(path.length))],
 *   concurrency: 8
 * }).pipe(Effect.andThen(Effect.never), Effect.scoped, Effect.provide(RedisJobStore.layer({ url: "redis://localhost:6379" })))
 * ```
 * @since 0.2.0
 * @category layers
 */
export const layer = (options: RedisJobStoreOptions): Layer.Layer<Model.JobStore, StoreError> =>
  Layer.effect(Model.JobStore, Effect.flatMap(RedisStore.options(options), RedisStore.open))
