/**
 * A queue's rate limit shared by consumer processes (fixtures/durable-consumer.ts), on one SQLite
 * file, on Postgres and on Redis: three processes that could start 24 jobs at once start at most `limit` in
 * any window of `interval` between them, counted from the start times the store recorded. Every
 * wait is for an event (a line from a child, a state in the store) under an overall deadline.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Layer, ManagedRuntime } from "effect"
import { afterAll, assert, describe, it } from "vitest"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as PgJobStore from "../src/PgJobStore.ts"
import * as RedisJobStore from "../src/RedisJobStore.ts"
import { type Consumer, startConsumer, untilFinal, waitUntil } from "./durable/children.ts"
import * as pg from "./durable/postgres.ts"
import * as redis from "./durable/redis.ts"
import { Work } from "./fixtures/durable-tasks.ts"
import { maxInWindow } from "./helpers.ts"

const dir = mkdtempSync(join(tmpdir(), "wp-ratelimit-processes-"))
const runtimes: Array<ManagedRuntime.ManagedRuntime<JobStore.JobStore, never>> = []
afterAll(async () => {
  await Promise.all(runtimes.map((runtime) => runtime.dispose()))
  rmSync(dir, { recursive: true, force: true })
})

const JOBS = 90
const LIMIT = 10
const INTERVAL = 500

const run = async (
  layer: Layer.Layer<JobStore.JobStore, never>,
  consumer: () => Consumer
) => {
  const runtime = ManagedRuntime.make(layer)
  runtimes.push(runtime)
  await runtime.runPromise(JobQueue.setRateLimit("default", { limit: LIMIT, interval: INTERVAL }))
  // 3 processes × 8 slots: unlimited, they would start 24 jobs at once
  const consumers = [consumer(), consumer(), consumer()]
  try {
    // every process consumes before the jobs are there: on a busy machine one that took seconds
    // longer to start found the others had taken all of them, and "every process took part" failed
    await waitUntil(consumers, () => consumers.every((c) => c.lines.includes("ready")), "every consumer is ready")
    await runtime.runPromise(Effect.forEach(Array.from({ length: JOBS }, (_, n) => n), (n) => JobQueue.enqueue(Work, { n })))
    const stats = await untilFinal(() => runtime.runPromise(JobQueue.stats("default")), JOBS)
    assert.strictEqual(stats.succeeded, JOBS)
    await waitUntil(consumers, () => consumers.reduce((n, c) => n + c.started.length, 0) >= JOBS, "every start was printed")
  } finally {
    for (const c of consumers) c.child.kill("SIGTERM")
    await Promise.all(consumers.map((c) => c.exited))
  }
  const jobs = await runtime.runPromise(JobQueue.list({ limit: JOBS }))
  const starts = jobs.map((job) => job.startedAt!.getTime())
  assert.strictEqual(starts.length, JOBS)
  assert.isAtMost(maxInWindow(starts, INTERVAL), LIMIT, "the total start rate across processes holds in every window")
  // it is the limit, not a lack of slots, that spread them: the window was full most of the time
  assert.strictEqual(maxInWindow(starts, INTERVAL), LIMIT)
  const span = Math.max(...starts) - Math.min(...starts)
  assert.isAtLeast(span, (JOBS / LIMIT - 1) * INTERVAL)
  // shared: every process took part
  for (const c of consumers) assert.isAbove(c.started.length, 0, c.lines.slice(-10).join("\n"))
}

describe("a queue's rate limit shared by consumer processes", () => {
  it("SQLite: 3 processes × 8 slots start at most 10 jobs in any 500 ms between them", { timeout: 120_000 }, async () => {
    const file = join(dir, "limit.db")
    await run(
      JobStore.sqlite({ filename: file }) as Layer.Layer<JobStore.JobStore, never>,
      () => startConsumer(file, { concurrency: 8, lease: 5000, jobMillis: 20 })
    )
  })

  it.skipIf(!pg.enabled)("Postgres: 3 processes × 8 slots start at most 10 jobs in any 500 ms between them", { timeout: 120_000 }, async () => {
    const schema = pg.freshSchema()
    await run(
      PgJobStore.layer({ url: pg.url!, schema, maxConnections: 2 }) as Layer.Layer<JobStore.JobStore, never>,
      () => startConsumer(pg.url!, { concurrency: 8, lease: 5000, jobMillis: 20, env: { WORKPOOL_PG_SCHEMA: schema } })
    )
  })

  it.skipIf(!redis.enabled)("Redis: 3 processes × 8 slots start at most 10 jobs in any 500 ms between them", { timeout: 120_000 }, async () => {
    const prefix = redis.freshPrefix()
    await run(
      RedisJobStore.layer({ url: redis.url!, prefix }) as Layer.Layer<JobStore.JobStore, never>,
      () => startConsumer(redis.url!, { concurrency: 8, lease: 5000, jobMillis: 20, env: { WORKPOOL_REDIS_PREFIX: prefix } })
    )
  })
})
