/**
 * A queue's per-key cap (`JobQueue.setGroupConcurrency(queue, 1)`: serial per key) shared by
 * consumer processes (fixtures/durable-consumer.ts), on SQLite, Postgres and Redis: three processes
 * that could run 7 jobs at once between them never run two jobs of one key at once, counted from the
 * start and end times each child printed; a process killed (SIGKILL) while it runs a job of key k0
 * holds k0 until the job is reaped (its lease over), and meanwhile the other keys' jobs run (one key
 * held does not hold the others). Every wait is for an event (a line from a child, a state in the
 * store) under an overall deadline.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, type Layer, ManagedRuntime } from "effect"
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
const dir = mkdtempSync(join(tmpdir(), "wp-group-processes-"))
afterAll(async () => {
  await Promise.all(runtimes.map((runtime) => runtime.dispose()))
  rmSync(dir, { recursive: true, force: true })
})

const KEYS = 5
const PER_KEY = 6
const JOBS = KEYS * PER_KEY
const JOB_MILLIS = 100
const LEASE = 2000
/** The store stamps the reap with its clock, the children print theirs: one machine, a few ms apart at most. */
const CLOCKS = 20

/** Job n's key: job 0 (the victim's) and every fifth of k0. */
const keyOf = (n: number) => `k${n % KEYS}`

const run = async (layer: Layer.Layer<JobStore.JobStore, never>, consumer: (concurrency: number, env?: Record<string, string>) => Consumer) => {
  const runtime = ManagedRuntime.make(layer)
  runtimes.push(runtime)
  const stats = () => runtime.runPromise(JobQueue.stats("default"))
  await runtime.runPromise(JobQueue.setGroupConcurrency("default", 1))
  // the victim first, alone: its first job (of k0, one attempt: the reap ends it dead) never ends,
  // so that it surely holds k0 when it is killed
  const victim = consumer(1, { WORKPOOL_TEST_HOLD_FROM: "1" })
  const consumers = [victim]
  try {
    await waitUntil(consumers, () => victim.lines.includes("ready"), "the victim is ready")
    const held = await runtime.runPromise(JobQueue.enqueue(Work, { n: 0 }, { maxAttempts: 1, group: keyOf(0) }))
    await waitUntil(consumers, () => victim.started.includes(0), "the victim holds job 0 (key k0)")
    // 2 processes × 3 slots more: without the cap, 3 jobs of one key could run at once in each
    consumers.push(consumer(3), consumer(3))
    await waitUntil(consumers, () => consumers.every((c) => c.lines.includes("ready")), "every consumer is ready")
    const ids = await runtime.runPromise(JobQueue.enqueueAll(
      Work,
      Array.from({ length: JOBS }, (_, i) => ({ payload: { n: i + 1 }, options: { group: keyOf(i + 1) } }))
    ))
    await waitUntil(consumers, () => consumers[1]!.started.length + consumers[2]!.started.length >= 3, "the others have started 3 jobs")
    const killedAt = Date.now()
    victim.child.kill("SIGKILL")
    await victim.exited
    // k0 is held until the reap (a lease after its last beat at most, a reaper's period more)
    const reaped = await untilRead(() => runtime.runPromise(JobQueue.status(held.id)), (job) => job.state !== "running", "job 0 is reaped")
    assert.strictEqual(reaped.state, "dead", "its one attempt spent at the reap")
    const reapedAt = reaped.finishedAt!.getTime()
    const final = await untilFinal(stats, JOBS + 1)
    assert.deepStrictEqual([final.succeeded, final.dead], [JOBS, 1])
    assert.deepStrictEqual(await runtime.runPromise(Effect.forEach(ids, (job) => job.await)), ids.map((_, i) => i + 1))
    await waitUntil(consumers, () => consumers.reduce((n, c) => n + c.started.length, 0) >= JOBS + 1, "every start was printed")
    await waitUntil(consumers, () => runsOf(consumers).every((r) => r.n === 0 || r.end < Infinity), "every end was printed")
    const runs = runsOf(consumers)
    const killed = runs.find((r) => r.n === 0)!
    assert.strictEqual(killed.end, Infinity, "job 0 never ended in the victim")
    // its key, as the store held it: until the reap
    killed.end = reapedAt - CLOCKS
    assert.isAtLeast(reapedAt, killedAt, "not reaped before the kill")
    for (let k = 0; k < KEYS; k++) {
      const ofKey = runs.filter((r) => keyOf(r.n) === `k${k}`)
      assert.strictEqual(mostAtOnce(ofKey), 1, `key k${k}: one job at a time across processes`)
    }
    // k0's other jobs waited for the reap; the other keys' did not
    const k0 = runs.filter((r) => r.n !== 0 && keyOf(r.n) === "k0")
    assert.isTrue(k0.every((r) => r.start >= reapedAt - CLOCKS), "no job of k0 started before job 0 was reaped")
    const others = runs.filter((r) => keyOf(r.n) !== "k0" && r.start < reapedAt - CLOCKS)
    assert.isAtLeast(others.length, 1, "the other keys' jobs ran while k0 was held")
  } finally {
    for (const c of consumers) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill("SIGTERM")
    await Promise.all(consumers.map((c) => c.exited))
  }
}

const consumerOf = (store: string, env: Record<string, string>) => (concurrency: number, extra: Record<string, string> = {}) =>
  startConsumer(store, { concurrency, lease: LEASE, jobMillis: JOB_MILLIS, env: { WORKPOOL_TEST_STAMP: "1", ...env, ...extra } })

describe("a queue's per-key cap shared by consumer processes", () => {
  it(
    "SQLite: 3 processes never run two jobs of a key at once; one killed holding a job of k0 keeps k0 until the reap, the other keys run meanwhile",
    { timeout: 120_000 },
    async () => {
      const file = join(dir, "groups.db")
      await run(JobStore.sqlite({ filename: file }) as Layer.Layer<JobStore.JobStore, never>, consumerOf(file, {}))
    }
  )

  it.skipIf(!pg.enabled)(
    "Postgres: 3 processes never run two jobs of a key at once; one killed holding a job of k0 keeps k0 until the reap, the other keys run meanwhile",
    { timeout: 120_000 },
    async () => {
      const schema = pg.freshSchema()
      await run(
        PgJobStore.layer({ url: pg.url!, schema, maxConnections: 2 }) as Layer.Layer<JobStore.JobStore, never>,
        consumerOf(pg.url!, { WORKPOOL_PG_SCHEMA: schema })
      )
    }
  )

  it.skipIf(!redis.enabled)(
    "Redis: 3 processes never run two jobs of a key at once; one killed holding a job of k0 keeps k0 until the reap, the other keys run meanwhile",
    { timeout: 120_000 },
    async () => {
      const prefix = redis.freshPrefix()
      await run(
        RedisJobStore.layer({ url: redis.url!, prefix }) as Layer.Layer<JobStore.JobStore, never>,
        consumerOf(redis.url!, { WORKPOOL_REDIS_PREFIX: prefix })
      )
    }
  )
})
