/**
 * A BullMQ consumer process: a `Worker` with `concurrency` jobs at once and its defaults otherwise
 * (an idle worker blocks on Redis for the next job instead of polling).
 */
import { Worker } from "bullmq"
import { type BenchJob, consumerConfig, serve } from "./protocol.ts"

/** ioredis options from a redis:// URL; BullMQ's workers need `maxRetriesPerRequest: null`. */
export const connection = (url: string) => {
  const parsed = new URL(url)
  return {
    host: parsed.hostname,
    port: Number(parsed.port || 6379),
    ...(parsed.password === "" ? {} : { password: decodeURIComponent(parsed.password) }),
    maxRetriesPerRequest: null
  }
}

if (process.send !== undefined) {
  const config = consumerConfig()
  let run: (job: BenchJob) => void = () => {}
  const worker = new Worker<BenchJob>(config.queue, async (job) => run(job.data), {
    connection: connection(config.url),
    prefix: config.schema,
    concurrency: config.concurrency,
    autorun: false
  })
  worker.on("error", (error) => console.error("bullmq:", error))
  await serve({
    connect: () => worker.waitUntilReady().then(() => undefined),
    consume: async (handler) => {
      run = handler
      void worker.run()
    },
    stop: () => worker.close()
  })
}
