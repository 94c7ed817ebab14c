/**
 * Durable jobs across real processes on one SQLite file: consumers are node children (see
 * fixtures/durable-consumer.ts), one is killed with SIGKILL mid-run. Every wait is for an event (a
 * line from a child, a child's exit, a state in the store), under one overall deadline.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Layer, ManagedRuntime } from "effect"
import { afterAll, assert, describe, it } from "vitest"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import { assertEveryJobOnce, type Consumer, killMidRun, sqliteWritable, startConsumer as start, untilFinal, waitUntil } from "./durable/children.ts"
import { delayedWakeProof, setup, threadProofs, zombieProof } from "./durable/processes.ts"
import { Work } from "./fixtures/durable-tasks.ts"

const startConsumer = (file: string, concurrency: number, lease: number, jobMillis: number, mode = "") =>
  start(file, { concurrency, lease, jobMillis, mode })

const dir = mkdtempSync(join(tmpdir(), "wp-durable-processes-"))
afterAll(() => {
  rmSync(dir, { recursive: true, force: true })
})

describe("durable jobs across processes (SQLite)", () => {
  it("kill -9 of two of 4 consumers × 4 mid-run on 2,000 jobs: every job finishes, 0 lost, duplicates only of the killed ones' jobs in flight", {
    timeout: 180_000
  }, async () => {
    const file = join(dir, "kill.db")
    const JOBS = 2000
    const LEASE = 3000
    const runtime = ManagedRuntime.make(JobStore.sqlite({ filename: file }) as Layer.Layer<JobStore.JobStore, never>)
    try {
      const ids = await runtime.runPromise(
        Effect.forEach(Array.from({ length: JOBS }, (_, n) => n), (n) =>
          Effect.map(JobQueue.enqueue(Work, { n }, { maxAttempts: 10 }), (job) => job.id))
      )
      const byId = new Map(ids.map((id, n) => [id, n]))
      const running = () =>
        runtime.runPromise(JobQueue.list({ state: "running", limit: JOBS })).then((jobs) => jobs.map((job) => byId.get(job.id)!))
      const consumers = [0, 1, 2, 3].map(() => startConsumer(file, 4, LEASE, 20))
      const [first, second, ...survivors] = consumers as [Consumer, Consumer, ...Array<Consumer>]
      // one killed early, the other later, each with jobs in flight
      const inFlight = new Set([
        ...await killMidRun(first, consumers, 40, running),
        ...await killMidRun(second, consumers, 120, running)
      ])
      assert.isAbove(inFlight.size, 0, "the killed ones had jobs in flight")
      // every job reaches a final state; duplicates only of the killed ones' jobs in flight
      const duplicates = await assertEveryJobOnce(runtime, consumers, ids, inFlight, 150_000)
      if (process.env.DURABLE_DEBUG) console.log({ inFlight: inFlight.size, duplicates })
      // the survivors shut down gracefully on SIGTERM (runMain's exit code for an interrupted main: 130)
      for (const c of survivors) c.child.kill("SIGTERM")
      await Promise.all(survivors.map((c) => c.exited))
      for (const c of survivors) assert.deepStrictEqual([c.child.exitCode, c.stderr], [130, ""])
    } finally {
      await runtime.dispose()
    }
  })

  it("killed between a job's success and its acknowledgement: the job runs exactly once more, elsewhere, and its result is stored", {
    timeout: 120_000
  }, async () => {
    const file = join(dir, "ack.db")
    const LEASE = 1500
    const runtime = ManagedRuntime.make(JobStore.sqlite({ filename: file }) as Layer.Layer<JobStore.JobStore, never>)
    try {
      const job = await runtime.runPromise(JobQueue.enqueue(Work, { n: 3 }, { maxAttempts: 5 }))
      const dying = startConsumer(file, 1, LEASE, 10, "die-at-settle")
      await dying.exited
      assert.deepStrictEqual([dying.child.signalCode, dying.lines.filter((l) => l !== "ready")], ["SIGKILL", ["start 3", "done 3"]])
      assert.strictEqual((await runtime.runPromise(JobQueue.status(job.id))).state, "running")
      const other = startConsumer(file, 1, LEASE, 10)
      assert.strictEqual(await runtime.runPromise(JobQueue.await(Work, job.id)), 3)
      const info = await runtime.runPromise(JobQueue.status(job.id))
      assert.deepStrictEqual([info.state, info.attempts], ["succeeded", 2])
      assert.deepStrictEqual(other.started, [3])
      other.child.kill("SIGTERM")
      await other.exited
      assert.deepStrictEqual([other.child.exitCode, other.stderr], [130, ""])
    } finally {
      await runtime.dispose()
    }
  })

  it("cancel from another process: the consumer process interrupts the running job within a heartbeat", {
    timeout: 120_000
  }, async () => {
    const file = join(dir, "cancel.db")
    const runtime = ManagedRuntime.make(JobStore.sqlite({ filename: file }) as Layer.Layer<JobStore.JobStore, never>)
    try {
      const job = await runtime.runPromise(JobQueue.enqueue(Work, { n: 5 }))
      const consumer = startConsumer(file, 1, 1500, 60_000)
      await waitUntil([consumer], () => consumer.started.length === 1, "the consumer started the job")
      assert.strictEqual(await runtime.runPromise(JobQueue.cancel(job.id)), "requested")
      await waitUntil([consumer], () => consumer.lines.includes("interrupted 5"), "the consumer interrupted the job")
      const error = await runtime.runPromise(Effect.flip(JobQueue.await(Work, job.id)))
      assert.strictEqual(error._tag, "JobCancelled")
      assert.strictEqual((await runtime.runPromise(JobQueue.status(job.id))).state, "cancelled")
      consumer.child.kill("SIGTERM")
      await consumer.exited
      assert.deepStrictEqual([consumer.child.exitCode, consumer.stderr], [130, ""])
    } finally {
      await runtime.dispose()
    }
  })

  it("a job enqueued by another process reaches an idle consumer process through the file, not its 60 s poll", {
    timeout: 120_000
  }, async () => {
    const file = join(dir, "wake.db")
    // the poll far beyond the waits below
    const LONG = 60_000
    const runtime = ManagedRuntime.make(JobStore.sqlite({ filename: file }) as Layer.Layer<JobStore.JobStore, never>)
    try {
      const consumer = start(file, { concurrency: 1, lease: LONG, jobMillis: 0, env: { WORKPOOL_TEST_POLL: String(LONG) } })
      // a first job, enqueued before the consumer started, is claimed by its first look; once it has
      // succeeded, the consumer has looked again (its own settle woke it) and waits for its poll
      const first = await runtime.runPromise(JobQueue.enqueue(Work, { n: 1 }))
      assert.strictEqual(await runtime.runPromise(JobQueue.await(Work, first.id)), 1)
      const second = await runtime.runPromise(JobQueue.enqueue(Work, { n: 2 }))
      await waitUntil([consumer], () => consumer.lines.includes("done 2"), "the idle consumer ran the new job", 20_000)
      assert.strictEqual(await runtime.runPromise(JobQueue.await(Work, second.id)), 2)
      consumer.child.kill("SIGTERM")
      await consumer.exited
      assert.deepStrictEqual([consumer.child.exitCode, consumer.stderr], [130, ""])
    } finally {
      await runtime.dispose()
    }
  })

  it("a delayed job enqueued by another process starts at its time on an idle consumer process, not at its 60 s poll", {
    timeout: 120_000
  }, async () => {
    const file = join(dir, "delayed.db")
    const consumer = await delayedWakeProof(setup(JobStore.sqlite({ filename: file }), file, {}, sqliteWritable(file)))
    consumer.child.kill("SIGTERM")
    await consumer.exited
    assert.deepStrictEqual([consumer.child.exitCode, consumer.stderr], [130, ""])
  })

  it("a consumer frozen (SIGSTOP) past its lease: another consumer runs the job; resumed (SIGCONT), the zombie is interrupted and its settle changes nothing", {
    timeout: 120_000
  }, async () => {
    const file = join(dir, "zombie.db")
    const runtime = ManagedRuntime.make(JobStore.sqlite({ filename: file }) as Layer.Layer<JobStore.JobStore, never>)
    try {
      const consumer = (concurrency: number, lease: number, jobMillis: number) => startConsumer(file, concurrency, lease, jobMillis)
      const [zombie, other] = await zombieProof({ runtime, consumer, writable: sqliteWritable(file) })
      for (const c of [zombie, other]) c.child.kill("SIGTERM")
      await Promise.all([zombie.exited, other.exited])
      for (const c of [zombie, other]) assert.deepStrictEqual([c.child.exitCode, c.stderr], [130, ""])
    } finally {
      await runtime.dispose()
    }
  })
})

let files = 0
threadProofs("SQLite", true, () => {
  const file = join(dir, `threads-${files++}.db`)
  return setup(JobStore.sqlite({ filename: file }), file, {}, sqliteWritable(file))
})
