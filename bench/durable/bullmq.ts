/**
 * A BullMQ consumer process: a `Worker` with `concurrency` jobs at once and its defaults otherwise
 * (an idle worker blocks on Redis for the next job instead of polling).
 */
import { Queue, Worker } from "bullmq"
import type { Producer } from "./driver.ts"
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

/** A BullMQ producer: `Queue.add` per job; `close` removes the queue's keys. */
export const producer = async (url: string, name: string, prefix: string): Promise<Producer> => {
  const queue = new Queue(name, { connection: connection(url), prefix })
  await queue.waitUntilReady()
  return {
    enqueue: (job) => queue.add("job", job),
    close: async () => {
      await queue.obliterate({ force: true })
      await queue.close()
    }
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
