/**
 * Where durable jobs are kept, as layers of the `JobStore` service that `JobQueue` uses:
 *
 * - `sqlite({ filename })`: an embedded SQLite file (`node:sqlite`: Node 22.13+, or 22.5 to 22.12
 *   with `--experimental-sqlite`; on an older Node the layer fails with `StoreError`), shared by the
 *   processes of one machine. The default for a single machine: nothing to set up.
 * - `memory()`: in this process only, on the Effect `Clock`, for deterministic tests (`TestClock`
 *   drives delays, leases and retries).
 *
 * Node-only (SQLite): import it as `effect-workpool/JobStore`; it is not in the package root. The
 * Postgres and Redis stores are layers of this `JobStore` service too, in their own entries:
 * `effect-workpool/PgJobStore` and `effect-workpool/RedisJobStore`.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { JobQueue, Task } from "effect-workpool"
 * import * as JobStore from "effect-workpool/JobStore"
 *
 * const Ping = Task.make("Ping", { payload: Schema.String, success: Schema.String })
 * const program = JobQueue.enqueue(Ping, "hello").pipe(Effect.provide(JobStore.sqlite({ filename: "jobs.db" })))
 * ```
 *
 * @since 0.2.0
 */
import { Effect, Layer } from "effect"
import type { StoreError } from "./DurableError.ts"
import * as Memory from "./internal/store/memory.ts"
import * as Model from "./internal/store/model.ts"
import * as Sqlite from "./internal/store/sqlite.ts"

/**
 * The store service: what `JobQueue.enqueue`, `JobQueue.consume` and the other `JobQueue`
 * functions need. Provide one of this module's layers, `PgJobStore.layer` or `RedisJobStore.layer`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as JobStore from "effect-workpool/JobStore"
 *
 * const now = JobStore.JobStore.use((store) => store.now)
 * ```
 * @since 0.2.0
 * @category services
 */
export const JobStore = Model.JobStore

/**
 * The type of the `JobStore` service key.
 *
 * @example
 * ```ts
 * import type * as JobStore from "effect-workpool/JobStore"
 *
 * type Needs = JobStore.JobStore
 * ```
 * @since 0.2.0
 * @category services
 */
export type JobStore = Model.JobStore

/**
 * A store in this process's memory, on the Effect `Clock`: for tests, with `TestClock`. Its jobs
 * live as long as the layer: once it is released, every operation fails with `StoreError`.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { JobQueue, Task } from "effect-workpool"
 * import * as JobStore from "effect-workpool/JobStore"
 *
 * const Ping = Task.make("Ping", { payload: Schema.String, success: Schema.String })
 * const test = JobQueue.enqueue(Ping, "hi").pipe(Effect.provide(JobStore.memory()))
 * ```
 * @since 0.2.0
 * @category layers
 */
export const memory = (): Layer.Layer<JobStore> => Layer.effect(JobStore, Memory.make)

/**
 * Options of the SQLite store.
 *
 * @example
 * ```ts
 * import type * as JobStore from "effect-workpool/JobStore"
 *
 * const options: JobStore.SqliteOptions = { filename: "/var/lib/app/jobs.db", busyTimeout: "5 seconds" }
 * ```
 * @since 0.2.0
 * @category models
 */
export interface SqliteOptions {
  /** The database file, a path (not an SQLite `file:` URI); created with its tables if missing. */
  readonly filename: string
  /**
   * How long an operation waits for another process's write lock, then fails with `StoreError`;
   * default 5 seconds. The wait is timers, not SQLite's own (synchronous) busy wait: the process
   * goes on meanwhile.
   */
  readonly busyTimeout?: import("effect").Duration.Input | undefined
}

/**
 * A store in an SQLite file, shared by every process of the machine that opens the same file (WAL
 * mode, a busy timeout, `BEGIN IMMEDIATE` transactions). The tables are created, or migrated to
 * this version, when the layer is built; a file from a newer version fails with `StoreError`.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { JobQueue, Task } from "effect-workpool"
 * import * as JobStore from "effect-workpool/JobStore"
 *
 * const Ping = Task.make("Ping", { payload: Schema.String, success: Schema.String })
 * const program = JobQueue.enqueue(Ping, "hi").pipe(Effect.provide(JobStore.sqlite({ filename: "jobs.db" })))
 * ```
 * @since 0.2.0
 * @category layers
 */
export const sqlite = (options: SqliteOptions): Layer.Layer<JobStore, StoreError> =>
  Layer.effect(JobStore, Effect.flatMap(Sqlite.options(options), Sqlite.make))
