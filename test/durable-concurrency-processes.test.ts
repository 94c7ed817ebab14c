/**
 * A queue's concurrency cap (`JobQueue.setConcurrency`) shared by consumer processes
 * (fixtures/durable-consumer.ts), on SQLite, on Postgres and on Redis: three processes that could run 5 jobs
 * at once between them never run more than the cap (2), counted from the start and end times each
 * child printed; a process killed (SIGKILL) while it runs a job holds that slot until the job is
 * reaped (its lease over), then the others run two at once again. Every wait is for an event (a
 * line from a child, a state in the store) under an overall deadline.
 */
import { Effect, type Layer, ManagedRuntime } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, assert, describe, it } from "vitest"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as PgJobStore from "../src/PgJobStore.ts"
import * as RedisJobStore from "../src/RedisJobStore.ts"
import { type Consumer, mostAtOnce, runsOf, startConsumer, untilFinal, untilRead, waitUntil } from "./durable/children.ts"
import * as pg from "./durable/postgres.ts"
import * as redis from "./durable/redis.ts"
import { Work } from "./fixtures/durable-tasks.ts"

const runtimes: Array<ManagedRuntime.ManagedRuntime<JobStore.JobStore, never>> = []
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wp-concurrency-processes-"))
afterAll(async () => {
  await Promise.all(runtimes.map((runtime) => runtime.dispose()))
  fs.rmSync(dir, { recursive: true, force: true })
})

const CAP = 2
const JOBS = 40
const JOB_MILLIS = 150
const LEASE = 2000
/** The store stamps the reap with its server's clock, the children print theirs: one machine, a few ms apart at most. */
const CLOCKS = 20

const run = async (layer: Layer.Layer<JobStore.JobStore, never>, consumer: (concurrency: number, env?: Record<string, string>) => Consumer) => {
  const runtime = ManagedRuntime.make(layer)
  runtimes.push(runtime)
  const stats = () => runtime.runPromise(JobQueue.stats("default"))
  await runtime.runPromise(JobQueue.setConcurrency("default", CAP))
  // the victim first, alone: its first job (one attempt: the reap ends it dead, at the reap's time)
  // never ends, so that it surely holds a slot when it is killed
  const victim = consumer(1, { WORKPOOL_TEST_HOLD_FROM: "1" })
  const consumers = [victim]
  try {
    await waitUntil(consumers, () => victim.lines.includes("ready"), "the victim is ready")
    const held = await runtime.runPromise(JobQueue.enqueue(Work, { n: 0 }, { maxAttempts: 1 }))
    await waitUntil(consumers, () => victim.started.includes(0), "the victim holds job 0")
    // 2 processes × 2 slots more: uncapped, 5 jobs would run at once
    consumers.push(consumer(2), consumer(2))
    await waitUntil(consumers, () => consumers.every((c) => c.lines.includes("ready")), "every consumer is ready")
    const ids = await runtime.runPromise(
      Effect.forEach(Array.from({ length: JOBS - 1 }, (_, n) => n + 1), (n) => JobQueue.enqueue(Work, { n }))
    )
    await waitUntil(consumers, () => consumers[1]!.started.length + consumers[2]!.started.length >= 3, "the others have started 3 jobs")
    const killedAt = Date.now()
    victim.child.kill("SIGKILL")
    await victim.exited
    // its slot is held until the reap (a lease after its last beat at most, a reaper's period more)
    const reaped = await untilRead(() => runtime.runPromise(JobQueue.status(held.id)), (job) => job.state !== "running", "job 0 is reaped")
    assert.strictEqual(reaped.state, "dead", "its one attempt spent at the reap")
    const reapedAt = reaped.finishedAt!.getTime()
    const final = await untilFinal(stats, JOBS)
    assert.deepStrictEqual([final.succeeded, final.dead], [JOBS - 1, 1])
    assert.deepStrictEqual(await runtime.runPromise(Effect.forEach(ids, (job) => job.await)), ids.map((_, i) => i + 1))
    await waitUntil(consumers, () => consumers.reduce((n, c) => n + c.started.length, 0) >= JOBS, "every start was printed")
    await waitUntil(consumers, () => runsOf(consumers).every((r) => r.n === 0 || r.end < Infinity), "every end was printed")
    const runs = runsOf(consumers)
    const killed = runs.find((r) => r.n === 0)!
    assert.strictEqual(killed.end, Infinity, "job 0 never ended in the victim")
    // its slot, as the store held it: until the reap
    killed.end = reapedAt - CLOCKS
    assert.isAtLeast(reapedAt, killedAt, "not reaped before the kill")
    assert.strictEqual(mostAtOnce(runs), CAP, "never more than the cap across processes, the killed job's slot held until its reap")
    // the others ran one at a time while job 0 held its slot, and two at once after the reap (when
    // enough were left: the reap comes up to a lease and a half after the kill)
    const others = runs.filter((r) => r.n !== 0)
    assert.strictEqual(mostAtOnce(others.filter((r) => r.start < reapedAt - CLOCKS)), 1, "one slot left while the killed job held the other")
    const after = others.filter((r) => r.start > reapedAt)
    if (after.length >= 4) assert.strictEqual(mostAtOnce(after), CAP, "both slots used after the reap")
    // not asserted: that both other processes started jobs. On a busy machine one of them can take
    // every freed slot first (nothing promises a share across processes; CI saw it once). The cap
    // across processes is shown without it: the victim's process held a slot, and the others ran one
    // at a time until its reap (uncapped, one of them alone would have run two)
  } finally {
    for (const c of consumers) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill("SIGTERM")
    await Promise.all(consumers.map((c) => c.exited))
  }
}

describe("a queue's concurrency cap shared by consumer processes", () => {
  // SQLite: the running count is the claim's own, in its BEGIN IMMEDIATE; a freed slot reaches the
  // other processes by the file watch, the killed one's at the reap of whichever process runs it
  it(
    "SQLite: 3 processes never run more than 2 jobs of a queue capped at 2; one killed holding a job keeps its slot until the reap, then the others run 2 at once",
    { timeout: 120_000 },
    async () => {
      const filename = path.join(dir, "capped.db")
      await run(
        JobStore.sqlite({ filename }) as Layer.Layer<JobStore.JobStore, never>,
        (concurrency, env = {}) =>
          startConsumer(filename, { concurrency, lease: LEASE, jobMillis: JOB_MILLIS, env: { WORKPOOL_TEST_STAMP: "1", ...env } })
      )
    }
  )

  it.skipIf(!pg.enabled)(
    "Postgres: 3 processes never run more than 2 jobs of a queue capped at 2; one killed holding a job keeps its slot until the reap, then the others run 2 at once",
    { timeout: 120_000 },
    async () => {
      const schema = pg.freshSchema()
      await run(
        PgJobStore.layer({ url: pg.url!, schema, maxConnections: 2 }) as Layer.Layer<JobStore.JobStore, never>,
        (concurrency, env = {}) =>
          startConsumer(pg.url!, {
            concurrency,
            lease: LEASE,
            jobMillis: JOB_MILLIS,
            env: { WORKPOOL_PG_SCHEMA: schema, WORKPOOL_TEST_STAMP: "1", ...env }
          })
      )
    }
  )

  it.skipIf(!redis.enabled)(
    "Redis: 3 processes never run more than 2 jobs of a queue capped at 2; one killed holding a job keeps its slot until the reap, then the others run 2 at once",
    { timeout: 120_000 },
    async () => {
      const prefix = redis.freshPrefix()
      await run(
        RedisJobStore.layer({ url: redis.url!, prefix }) as Layer.Layer<JobStore.JobStore, never>,
        (concurrency, env = {}) =>
          startConsumer(redis.url!, {
            concurrency,
            lease: LEASE,
            jobMillis: JOB_MILLIS,
            env: { WORKPOOL_REDIS_PREFIX: prefix, WORKPOOL_TEST_STAMP: "1", ...env }
          })
      )
    }
  )
})
