/**
 * A consumer process of our durable queue: on SQLite (`url` is a file) with a 10 ms poll, since
 * another process's job is seen only by polling the file; on Postgres with the default poll, since
 * NOTIFY wakes it.
 */
import { Effect, Fiber, type Layer, ManagedRuntime } from "effect"
import * as JobQueue from "../../src/JobQueue.ts"
import * as JobStore from "../../src/JobStore.ts"
import * as PgJobStore from "../../src/PgJobStore.ts"
import * as Task from "../../src/Task.ts"
import { consumerConfig, serve } from "./protocol.ts"
import { BenchTask } from "./task.ts"

/** The store of a run: an SQLite file, or a Postgres schema of its own. */
export const storeOf = (url: string, schema: string) =>
  (url.startsWith("postgres://")
    ? PgJobStore.layer({ url, schema })
    : JobStore.sqlite({ filename: url })) as Layer.Layer<JobStore.JobStore, never>

if (process.send !== undefined) {
  const config = consumerConfig()
  const runtime = ManagedRuntime.make(storeOf(config.url, config.schema))
  let consumer: Fiber.Fiber<unknown, unknown> | undefined
  await serve({
    connect: () => runtime.runPromise(Effect.void),
    consume: async (run) => {
      consumer = runtime.runFork(
        JobQueue.consume({
          queues: [config.queue],
          handlers: [Task.handle(BenchTask, (job) => Effect.sync(() => run(job)))],
          concurrency: config.concurrency,
          ...(config.url.startsWith("postgres://") ? {} : { poll: 10 })
        }).pipe(Effect.andThen(Effect.never), Effect.scoped)
      )
    },
    stop: async () => {
      // graceful: the consumer's scope closes, its pool drains
      if (consumer !== undefined) await runtime.runPromise(Fiber.interrupt(consumer))
      await runtime.dispose()
    }
  })
}
