/**
 * Scenario 8, durable queues: our JobQueue on SQLite, on Postgres and on Redis, pg-boss and
 * graphile-worker on the same Postgres (WORKPOOL_PG_URL), BullMQ on the same Redis (WORKPOOL_REDIS_URL). Each contestant's
 * consumers are processes of their own (bench/durable/driver.ts says what is timed); each run has
 * a schema (or key prefix, or file) of its own, removed after.
 */
import { Effect, ManagedRuntime } from "effect"
import { rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import pg from "pg"
import type { Contestant, Scenario } from "../common.ts"
import { CONCURRENCY, CONSUMERS, contestant, type DurableContestant } from "../durable/driver.ts"
import type { ConsumerConfig } from "../durable/protocol.ts"
import * as JobQueue from "../../src/JobQueue.ts"

const pgUrl = process.env.WORKPOOL_PG_URL
const redisUrl = process.env.WORKPOOL_REDIS_URL

const dropSchema = async (config: ConsumerConfig) => {
  const client = new pg.Client({ connectionString: config.url })
  await client.connect()
  await client.query(`DROP SCHEMA IF EXISTS "${config.schema}" CASCADE`)
  await client.end()
}

/** Our queue: the producer is a ManagedRuntime over the store layer, one `runPromise` per enqueue. */
const ours = (name: string, url: () => string, cleanup: DurableContestant["cleanup"]): Contestant =>
  contestant({
    name,
    library: "effect-workpool",
    consumer: "./ours.ts",
    url,
    open: async (config) => {
      const { storeOf } = await import("../durable/ours.ts")
      const { BenchTask } = await import("../durable/task.ts")
      const runtime = ManagedRuntime.make(storeOf(config.url, config.schema))
      await runtime.runPromise(Effect.void)
      return {
        enqueue: (job) => runtime.runPromise(JobQueue.enqueue(BenchTask, job, { queue: config.queue })),
        close: () => runtime.dispose()
      }
    },
    cleanup
  })

const sqliteFiles = join(tmpdir(), `bench-durable-${process.pid}`)
let sqliteRuns = 0

const contestants: Array<Contestant> = [
  ours("ours, SQLite", () => `${sqliteFiles}-${sqliteRuns++}.db`, async (config) => {
    for (const suffix of ["", "-wal", "-shm"]) rmSync(config.url + suffix, { force: true })
  })
]

if (pgUrl !== undefined) {
  contestants.push(
    ours("ours, Postgres", () => pgUrl, dropSchema),
    contestant({
      name: "pg-boss",
      library: "pg-boss",
      anchor: true,
      consumer: "./pg-boss.ts",
      url: () => pgUrl,
      open: async (config) => {
        const { PgBoss } = await import("pg-boss")
        const { options } = await import("../durable/pg-boss.ts")
        const boss = new PgBoss(options(config.url, config.schema))
        boss.on("error", (error) => console.error("pg-boss:", error))
        await boss.start()
        await boss.createQueue(config.queue, { notify: true })
        return {
          enqueue: (job) => boss.send(config.queue, job),
          close: () => boss.stop({ graceful: false })
        }
      },
      cleanup: dropSchema
    }),
    contestant({
      name: "graphile-worker",
      library: "graphile-worker",
      anchor: true,
      consumer: "./graphile-worker.ts",
      url: () => pgUrl,
      open: async (config) => {
        const { makeWorkerUtils } = await import("graphile-worker")
        const utils = await makeWorkerUtils({ connectionString: config.url, schema: config.schema })
        await utils.migrate()
        return {
          enqueue: (job) => utils.addJob(config.queue, job),
          close: async () => {
            await utils.release()
          }
        }
      },
      cleanup: dropSchema
    })
  )
}

/** Deletes a run's keys (its prefix) from Redis. */
const dropPrefix = async (config: ConsumerConfig) => {
  const { createClient } = await import("redis")
  const client = createClient({ url: config.url })
  await client.connect()
  for await (const keys of client.scanIterator({ MATCH: `{${config.schema}*`, COUNT: 1000 })) {
    if (keys.length > 0) await client.del(keys)
  }
  await client.quit()
}

if (redisUrl !== undefined) {
  contestants.push(
    ours("ours, Redis", () => redisUrl, dropPrefix),
    contestant({
      name: "BullMQ",
      library: "bullmq",
      anchor: true,
      consumer: "./bullmq.ts",
      url: () => redisUrl,
      open: async (config) => {
        const { producer } = await import("../durable/bullmq.ts")
        return producer(config.url, config.queue, config.schema)
      },
      cleanup: async () => {}
    })
  )
}

const missing = [
  ...(pgUrl === undefined ? ["ours on Postgres, pg-boss and graphile-worker (set WORKPOOL_PG_URL)"] : []),
  ...(redisUrl === undefined ? ["ours on Redis and BullMQ (set WORKPOOL_REDIS_URL)"] : [])
]

export const scenario: Scenario = {
  id: "8",
  title: "Durable queues: throughput and enqueue → start latency",
  description: `No-op jobs. Enqueue: one call per job, one after another, from one process. Drain: ${CONSUMERS} consumer ` +
    `processes × ${CONCURRENCY} jobs at once, connected before the clock starts, told to start together; timed until every job ` +
    "has run. Latency: the consumers but one stop; probes are enqueued one at a time on the idle one, from just before the " +
    "enqueue call to the start of the handler (one machine, one clock). Each library with its defaults but the consumers' " +
    "concurrency, except: SQLite polls every 10 ms (and an idle consumer is woken by its watch of the file); pg-boss fetches batches of 8 " +
    "(fetching again at once while they are full) with LISTEN/NOTIFY on; graphile-worker and BullMQ as they come.",
  sizes: {
    full: { jobs: 20_000, samples: 200 },
    quick: { jobs: 1_000, samples: 20 },
    warmup: { jobs: 500, samples: 5 }
  },
  metrics: ["drainJobsPerSec", "enqueueJobsPerSec", "p50Ms", "p99Ms"],
  contestants,
  targets: [
    ...(pgUrl === undefined ? [] : [
      { label: "drain on Postgres vs pg-boss", metric: "drainJobsPerSec", contestant: "ours, Postgres", anchor: "pg-boss", atLeast: 1 },
      { label: "drain on Postgres vs graphile-worker", metric: "drainJobsPerSec", contestant: "ours, Postgres", anchor: "graphile-worker", atLeast: 1 }
    ] as const),
    ...(redisUrl === undefined ? [] : [
      { label: "drain on Redis vs BullMQ", metric: "drainJobsPerSec", contestant: "ours, Redis", anchor: "BullMQ", atLeast: 1 }
    ] as const)
  ],
  notes: [
    ...(missing.length === 0 ? [] : [`Not measured in this run: ${missing.join("; ")}.`]),
    "How ours drains: a consumer claims only for free slots (a slot is free once its job's handler stops), and the claim takes the settles of the jobs that freed them along in its own statement (Postgres) or script (Redis), each fenced by its token: one round trip per batch of jobs, about 0.33 statements per job on Postgres. pg-boss fetches and completes batches of 8; graphile-worker claims and completes one job per statement; BullMQ moves a finished job and fetches the next one in one script. With no-op jobs, the cost per job is CPU (our consumers' Effect pipeline, their cold start within the timed drain) and round trips. SQLite's consumers take turns at one write lock and poll every 10 ms across processes."
  ],
  quick: { reps: 1, warmups: 0 },
  full: { reps: 3, warmups: 0 },
  childTimeoutMs: { quick: 90_000, full: 300_000 }
}
