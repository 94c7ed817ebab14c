/**
 * A pg-boss consumer process: one worker fetching batches of `concurrency` jobs (run at once),
 * fetching again at once while batches come back full (`burstWhenBatchFull`), woken by NOTIFY
 * (`useListenNotify` and the queue's `notify`), polling every 0.5 s (pg-boss's minimum) otherwise.
 * With `batchSize: 1` and `localConcurrency: 8` instead, each worker waits a poll interval after
 * every job: pg-boss's batch mode is its fast one.
 */
import { PgBoss } from "pg-boss"
import { type BenchJob, consumerConfig, serve } from "./protocol.ts"

export const options = (url: string, schema: string) => ({
  connectionString: url,
  schema,
  useListenNotify: true,
  // no cron scheduling and maintenance in the benchmark's processes
  schedule: false,
  supervise: false
})

if (process.send !== undefined) {
  const config = consumerConfig()
  const boss = new PgBoss(options(config.url, config.schema))
  boss.on("error", (error) => console.error("pg-boss:", error))
  await serve({
    connect: async () => {
      await boss.start()
    },
    consume: async (run) => {
      await boss.work<BenchJob>(
        config.queue,
        { batchSize: config.concurrency, burstWhenBatchFull: true, pollingIntervalSeconds: 0.5 },
        async (jobs) => {
          for (const job of jobs) run(job.data)
        }
      )
    },
    stop: () => boss.stop({ graceful: true })
  })
}
