// A TypeScript consumer of the Node-only entries (the stores, the dashboard), typechecked (never
// run) against the installed package with its optional peers installed, under strict flags and
// skipLibCheck: false: their declarations must compile and give the documented types.
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted, Schema } from "effect"
import { DurableError, JobQueue, Task, WorkPool } from "effect-workpool"
import * as Dashboard from "effect-workpool/Dashboard"
import * as JobStore from "effect-workpool/JobStore"
import * as PgJobStore from "effect-workpool/PgJobStore"
import * as RedisJobStore from "effect-workpool/RedisJobStore"

const Resize = Task.make("Resize", { payload: Schema.String, success: Schema.Number })

class Images extends WorkPool.Service<Images>()("consumer/Images", { concurrency: 2, name: "images", retention: { count: 100 } }) {}

const program = Effect.gen(function*() {
  const dashboard = yield* Dashboard.Dashboard
  yield* dashboard.add(yield* Images)
  yield* dashboard.addQueue("images")
  yield* JobQueue.consume({ queues: ["images"], handlers: [Task.handle(Resize, (file) => Effect.succeed(file.length))], concurrency: 2 })
  const job = yield* JobQueue.enqueue(Resize, "cat.png", { queue: "images", maxAttempts: 3 })
  const length: number = yield* job.await
  return `${dashboard.url} ${length}`
}).pipe(Effect.scoped)

const stores: ReadonlyArray<Layer.Layer<JobStore.JobStore, DurableError.StoreError>> = [
  JobStore.memory(),
  JobStore.sqlite({ filename: "jobs.db" }),
  PgJobStore.layer({ url: Redacted.make("postgres://localhost/app"), schema: "jobs", maxConnections: 4 }),
  PgJobStore.layerClient({ schema: "jobs" }).pipe(Layer.provide(PgClient.layer({ url: Redacted.make("postgres://localhost/app") })))
    .pipe(Layer.orDie),
  RedisJobStore.layer({ url: "redis://localhost:6379", prefix: "app", cluster: false })
]

export const main = (store: Layer.Layer<JobStore.JobStore, DurableError.StoreError>) =>
  program.pipe(Effect.provide(Layer.mergeAll(Dashboard.layer({ port: 0 }), Images.layer, store)))

export const all = stores.map(main)
