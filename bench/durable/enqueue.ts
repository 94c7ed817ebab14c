/**
 * Enqueue alone on Redis, contestants side by side in one process, interleaved in batches of 100
 * (a loaded machine drifts: each batch times every contestant back to back, in a rotating order):
 * one call per job, one after another, as scenario 8's producer does. No consumer runs; the keys
 * are removed after.
 *
 * - ours: the public layer (one round trip per enqueue, as on a Redis Cluster: a new job's id names
 *   its queue; before, a Cluster wrote an id index first, by its own command);
 * - BullMQ: `Queue.add`.
 *
 * `WORKPOOL_REDIS_URL=redis://... node bench/durable/enqueue.ts [batches=50]`: prints, for each
 * contestant, the median of its batches' jobs/s and its jobs/s over all its batches.
 */
import { Effect, type Layer, ManagedRuntime } from "effect"
import { createClient } from "redis"
import * as JobQueue from "../../src/JobQueue.ts"
import * as JobStore from "../../src/JobStore.ts"
import * as RedisJobStore from "../../src/RedisJobStore.ts"
import { producer } from "./bullmq.ts"
import type { Producer } from "./driver.ts"
import { BenchTask } from "./task.ts"

const url = process.env.WORKPOOL_REDIS_URL
if (url === undefined || url === "") throw new Error("WORKPOOL_REDIS_URL is not set")
const batches = Number(process.argv[2] ?? 50)


const ours = (layer: Layer.Layer<JobStore.JobStore, unknown>) => async (): Promise<Producer> => {
  const runtime = ManagedRuntime.make(layer)
  await runtime.runPromise(Effect.void)
  return {
    enqueue: (job) => runtime.runPromise(JobQueue.enqueue(BenchTask, job, { queue: "bench" })),
    close: () => runtime.dispose()
  }
}

const bullmq = (prefix: string) => (): Promise<Producer> => producer(url, "bench", prefix)

const contestants: ReadonlyArray<readonly [string, (prefix: string) => () => Promise<Producer>]> = [
  ["ours", (prefix) => ours(RedisJobStore.layer({ url, prefix }) as Layer.Layer<JobStore.JobStore, unknown>)],
  ["BullMQ", bullmq]
]

const admin = createClient({ url })
await admin.connect()
const removeKeys = async (prefix: string) => {
  for await (const keys of admin.scanIterator({ MATCH: `*${prefix}*`, COUNT: 1000 })) {
    if (keys.length > 0) await admin.del(keys)
  }
}

const prefixes = contestants.map(([name]) => `bench-enqueue-${process.pid}-${name.replace(/\W+/g, "")}`)
const producers = await Promise.all(contestants.map(([, make], i) => make(prefixes[i]!)()))
// warm: the scripts loaded, the queue known to the store
for (const producer of producers) for (let n = 0; n < 50; n++) await producer.enqueue({ n: -1, t: 0 })
const BATCH = 100
const rates: Array<Array<number>> = contestants.map(() => [])
const totals = contestants.map(() => 0)
for (let batch = 0; batch < batches; batch++) {
  // rotated, so that no contestant always follows the same one
  for (let k = 0; k < contestants.length; k++) {
    const i = (batch + k) % contestants.length
    const start = performance.now()
    for (let n = 0; n < BATCH; n++) await producers[i]!.enqueue({ n, t: 0 })
    const ms = performance.now() - start
    totals[i]! += ms
    rates[i]!.push(BATCH / (ms / 1000))
  }
}
for (const producer of producers) await producer.close()
for (const prefix of prefixes) await removeKeys(prefix)
await admin.quit()
const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const result = Object.fromEntries(contestants.map(([name], i) => [name, {
  medianBatchJobsPerSec: Math.round(median(rates[i]!)),
  overallJobsPerSec: Math.round((batches * BATCH) / (totals[i]! / 1000))
}]))
console.log(JSON.stringify({ jobsEach: batches * BATCH, batch: BATCH, result }, null, 1))
