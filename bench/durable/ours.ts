/**
 * A consumer process of our durable queue: on SQLite (`url` is a file) with a 10 ms poll (kept
 * from before its store watched the file, for runs comparable with older ones); on Postgres (NOTIFY wakes it) and Redis
 * (it blocks on the queue's marker) with the default poll.
 */
import { Effect, Exit, type Layer, ManagedRuntime, Scope } from "effect"
import * as JobQueue from "../../src/JobQueue.ts"
import * as JobStore from "../../src/JobStore.ts"
import * as PgJobStore from "../../src/PgJobStore.ts"
import * as RedisJobStore from "../../src/RedisJobStore.ts"
import * as Task from "../../src/Task.ts"
import { type BenchJob, consumerConfig, serve } from "./protocol.ts"
import { BenchTask } from "./task.ts"

/** The store of a run: an SQLite file, a Postgres schema or a Redis key prefix of its own. */
export const storeOf = (url: string, schema: string) =>
  (url.startsWith("postgres://")
    ? PgJobStore.layer({ url, schema })
    : url.startsWith("redis://")
    ? RedisJobStore.layer({ url, prefix: schema })
    : JobStore.sqlite({ filename: url })) as Layer.Layer<JobStore.JobStore, never>

/** SQLite keeps the 10 ms poll of the runs before its file watch. */
export const isFile = (url: string) => !url.startsWith("postgres://") && !url.startsWith("redis://")

if (process.send !== undefined) {
  const config = consumerConfig()
  const runtime = ManagedRuntime.make(storeOf(config.url, config.schema))
  const scope = Scope.makeUnsafe()
  let report: (job: BenchJob) => void = () => {}
  let consumer: JobQueue.Consumer | undefined
  await serve({
    // as BullMQ's Worker (made with `autorun: false` and connected before `go`): the consumer is
    // made and paused before `go`, which resumes it (the queue is empty until every consumer is ready)
    connect: async () => {
      consumer = await runtime.runPromise(
        JobQueue.consume({
          queues: [config.queue],
          handlers: [Task.handle(BenchTask, (job) => Effect.sync(() => report(job)))],
          concurrency: config.concurrency,
          ...(isFile(config.url) ? { poll: 10 } : {})
        }).pipe(Effect.tap((consumer) => consumer.pause), Scope.provide(scope))
      )
    },
    consume: async (run) => {
      report = run
      await runtime.runPromise(consumer!.resume)
    },
    stop: async () => {
      // graceful: the consumer's scope closes, its pool drains
      await runtime.runPromise(Scope.close(scope, Exit.void))
      await runtime.dispose()
    }
  })
}
