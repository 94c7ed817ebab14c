/**
 * The Postgres job store: durable jobs in a Postgres database (13 or later), shared by any number
 * of producer and consumer processes on any number of machines. Built on `@effect/sql-pg`, an
 * optional peer dependency that only this module needs (`npm install @effect/sql-pg`): the SQLite
 * and memory stores of `effect-workpool/JobStore` work without it.
 *
 * Claims are one statement (`FOR UPDATE SKIP LOCKED`, served by a partial index), time is the
 * server's (`now()`), and idle consumers are woken at once by `LISTEN/NOTIFY`. The tables are
 * created in their own schema (`workpool` by default), migrated on start under an advisory lock.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { JobQueue, Task } from "effect-workpool"
 * import * as PgJobStore from "effect-workpool/PgJobStore"
 *
 * const Ping = Task.make("Ping", { payload: Schema.String, success: Schema.String })
 * const program = JobQueue.enqueue(Ping, "hello").pipe(
 *   Effect.provide(PgJobStore.layer({ url: "postgres://app:secret@db.internal:5432/app" }))
 * )
 * ```
 *
 * @since 0.2.0
 */
import type { Duration, Redacted } from "effect"
import { Effect, Layer } from "effect"
import * as PgClient from "@effect/sql-pg/PgClient"
import type { StoreError } from "./DurableError.ts"
import * as Model from "./internal/store/model.ts"
import * as Postgres from "./internal/store/postgres.ts"

/**
 * Options of the Postgres store.
 *
 * @example
 * ```ts
 * import { Redacted } from "effect"
 * import type * as PgJobStore from "effect-workpool/PgJobStore"
 *
 * const options: PgJobStore.PgJobStoreOptions = {
 *   url: Redacted.make(process.env.DATABASE_URL ?? "postgres://localhost/app"),
 *   schema: "jobs",
 *   maxConnections: 4
 * }
 * ```
 * @since 0.2.0
 * @category models
 */
export interface PgJobStoreOptions {
  /** `postgres://user:password@host:port/database`; a `Redacted` keeps the password out of logs. */
  readonly url: string | Redacted.Redacted<string>
  /** The schema of the tables, created if missing; default `workpool`. One schema, one set of queues. */
  readonly schema?: string | undefined
  /** The pool's connections, besides the one that listens for wake-ups; default 10. */
  readonly maxConnections?: number | undefined
  /** How long to wait for a connection to open; default 10 seconds. */
  readonly connectTimeout?: Duration.Input | undefined
}

/**
 * A store in a Postgres database. Building the layer connects, creates or migrates the tables (a
 * schema from a newer version fails with `StoreError`) and starts listening for wake-ups. A lost
 * connection fails the operations in flight with `StoreError`; the next ones reconnect, so
 * consumers and producers go on once the server is back.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { JobQueue, Task } from "effect-workpool"
 * import * as PgJobStore from "effect-workpool/PgJobStore"
 *
 * const Resize = Task.make("Resize", { payload: Schema.String, success: Schema.Number })
 *
 * const consumer = JobQueue.consume({
 *   handlers: [Task.handle(Resize, (path) => Effect.succeed(path.length))],
 *   concurrency: 8
 * }).pipe(Effect.andThen(Effect.never), Effect.scoped, Effect.provide(PgJobStore.layer({ url: "postgres://localhost/app" })))
 * ```
 * @since 0.2.0
 * @category layers
 */
export const layer = (options: PgJobStoreOptions): Layer.Layer<Model.JobStore, StoreError> =>
  Layer.effect(Model.JobStore, Effect.flatMap(Postgres.options(options), Postgres.make))

/**
 * A store on the `PgClient` the application already has (from `@effect/sql-pg`'s `PgClient.layer`
 * or `PgClient.layerConfig`): its pool, its connection settings, its credentials. The tables are
 * created or migrated in `schema` (default `workpool`) when the layer is built, as with `layer`.
 * Wake-ups hold one more connection, opened with the client's settings, for `LISTEN`, so the
 * client must keep sessions: through PgBouncer in transaction or statement mode the layer fails at
 * once with a `StoreError` saying so (use session pooling, or the server's own URL).
 *
 * @example
 * ```ts
 * import { PgClient } from "@effect/sql-pg"
 * import { Effect, Layer, Redacted, Schema } from "effect"
 * import { JobQueue, Task } from "effect-workpool"
 * import * as PgJobStore from "effect-workpool/PgJobStore"
 *
 * const Ping = Task.make("Ping", { payload: Schema.String, success: Schema.String })
 *
 * // the application's own client, shared by its queries and its jobs
 * const Database = PgClient.layer({ url: Redacted.make("postgres://app:secret@db.internal:5432/app") })
 * const Jobs = PgJobStore.layerClient({ schema: "jobs" }).pipe(Layer.provide(Database))
 *
 * const program = JobQueue.enqueue(Ping, "hello").pipe(Effect.provide(Jobs))
 * ```
 * @since 0.2.0
 * @category layers
 */
export const layerClient = (
  options: { readonly schema?: string | undefined } = {}
): Layer.Layer<Model.JobStore, StoreError, PgClient.PgClient> =>
  Layer.effect(
    Model.JobStore,
    Effect.gen(function*() {
      const cfg = yield* Postgres.clientOptions(options)
      return yield* Postgres.makeWith(yield* PgClient.PgClient, cfg)
    })
  )
