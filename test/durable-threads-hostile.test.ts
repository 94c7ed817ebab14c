/**
 * Hostile: durable jobs on a ThreadPool (`JobQueue.consume({ threadPool, tasks })`) where the thread
 * computes longer than a lease, never yields to a cancel or a shutdown, or its pool shuts down or
 * shrinks under the consumer: no job lost, none run twice, no attempt counted for a stop that was
 * not the job's.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Schema } from "effect"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import type * as PoolError from "../src/PoolError.ts"
import * as Task from "../src/Task.ts"
import * as ThreadPool from "../src/ThreadPool.ts"
import { Burn, Nap, Spin } from "./fixtures/durable-thread-tasks.ts"
import { waitFor } from "./helpers.ts"

const threadWorker = new URL("./fixtures/durable-thread-worker.ts", import.meta.url)
const makeThreads = (options: Partial<ThreadPool.Options> = {}) =>
  Effect.gen(function*() {
    const counters = new SharedArrayBuffer(16 * 4)
    const pool = yield* ThreadPool.make({ worker: threadWorker, threads: 2, cancelGrace: "300 millis", workerData: { counters }, ...options })
    return { pool, counters: new Int32Array(counters) }
  })
const stateOf = (id: string) => Effect.map(JobQueue.status(id), (info) => info.state)
const until = <E>(check: Effect.Effect<boolean, E, JobStore.JobStore>, what: string) =>
  Effect.flatMap(Effect.context<JobStore.JobStore>(), (context) => waitFor(Effect.orDie(Effect.provide(check, context)), what))

describe("durable jobs on threads, hostile", () => {
  it.live("a lease shorter than the job's CPU time: the heartbeat renews it while the thread computes", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeThreads()
      yield* JobQueue.consume({ threadPool: pool, tasks: [Burn], lease: "1500 millis", poll: 10 })
      const job = yield* JobQueue.enqueue(Burn, 3000, { maxAttempts: 1 })
      assert.strictEqual(yield* job.await, 3000)
      assert.strictEqual((yield* JobQueue.status(job.id)).attempts, 1)
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory())), { timeout: 60_000 })

  it.live("a cancel of a thread job that never yields: terminated past cancelGrace, ends cancelled, the thread replaced", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeThreads()
      yield* JobQueue.consume({ threadPool: pool, tasks: [Spin], lease: "900 millis", poll: 10 })
      const job = yield* JobQueue.enqueue(Spin, 1)
      yield* until(Effect.map(stateOf(job.id), (s) => s === "running"), "the job runs")
      assert.strictEqual(yield* JobQueue.cancel(job.id), "requested")
      yield* until(Effect.map(stateOf(job.id), (s) => s === "cancelled"), "the job is cancelled")
      yield* waitFor(pool.stats, "no thread task runs", { until: (s) => s.running === 0 })
      yield* waitFor(pool.threads, "2 threads", { until: (n) => n === 2 })
      const info = yield* JobQueue.status(job.id)
      assert.strictEqual(info.attempts, 1)
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory())), { timeout: 60_000 })

  it.live("the thread pool's graceful shutdown past its shutdownTimeout: the consumer gives the job back, not counted", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeThreads({ shutdownTimeout: "100 millis" })
      const consumer = yield* JobQueue.consume({ threadPool: pool, tasks: [Nap], poll: 10 })
      const job = yield* JobQueue.enqueue(Nap, { millis: 60_000, mark: 4 })
      yield* until(Effect.map(stateOf(job.id), (state) => state === "running"), "the job runs")
      yield* pool.shutdown
      yield* consumer.awaitTermination
      const info = yield* JobQueue.status(job.id)
      assert.deepStrictEqual([info.state, info.attempts], ["queued", 0])
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory())), { timeout: 60_000 })

  it.live("the thread pool's graceful shutdown past its shutdownTimeout with a job that never yields", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeThreads({ shutdownTimeout: "100 millis" })
      const consumer = yield* JobQueue.consume({ threadPool: pool, tasks: [Spin], poll: 10 })
      const job = yield* JobQueue.enqueue(Spin, 1)
      yield* until(Effect.map(stateOf(job.id), (state) => state === "running"), "the job runs")
      yield* pool.shutdown
      yield* consumer.awaitTermination
      const info = yield* JobQueue.status(job.id)
      assert.deepStrictEqual([info.state, info.attempts], ["queued", 0])
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory())), { timeout: 60_000 })

  it.live("the pool shrinks while its jobs run: none lost, none run twice", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makeThreads()
      yield* JobQueue.consume({ threadPool: pool, tasks: [Nap], poll: 10 })
      const jobs = yield* Effect.forEach([1, 2, 3, 4], () => JobQueue.enqueue(Nap, { millis: 400, mark: 6 }))
      yield* until(Effect.map(JobQueue.stats("default"), (s) => s.running === 2), "two run")
      yield* pool.resize(1)
      assert.deepStrictEqual(yield* Effect.forEach(jobs, (job) => job.await), [400, 400, 400, 400])
      const infos = yield* Effect.forEach(jobs, (job) => JobQueue.status(job.id))
      assert.deepStrictEqual(infos.map((i) => i.attempts), [1, 1, 1, 1])
      assert.strictEqual(Atomics.load(counters, 6), 0)
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory())), { timeout: 60_000 })

  it.live("a consumer shutdown with a thread job that never yields: given back, not counted, the close bounded", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeThreads()
      const job = yield* Effect.scoped(Effect.gen(function*() {
        yield* JobQueue.consume({ threadPool: pool, tasks: [Spin], poll: 10, shutdownTimeout: 0 })
        const job = yield* JobQueue.enqueue(Spin, 1)
        yield* until(Effect.map(stateOf(job.id), (state) => state === "running"), "the job runs")
        return job
      }))
      const info = yield* JobQueue.status(job.id)
      assert.deepStrictEqual([info.state, info.attempts], ["queued", 0])
      yield* waitFor(pool.stats, "no thread task runs", { until: (s) => s.running === 0 })
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory())), { timeout: 60_000 })

  it.live("a stored payload that the thread's Schema does not decode (an older producer's Nap): dead at its first attempt with TaskCodecError (part payload), not retried", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeThreads()
      yield* JobQueue.consume({ threadPool: pool, tasks: [Nap], retry: { times: 5 }, poll: 10 })
      const OldNap = Task.make("Nap", { payload: Schema.String, success: Schema.Number })
      const job = yield* JobQueue.enqueue(OldNap, "an old payload", { maxAttempts: 5 })
      const exit = yield* Effect.exit(JobQueue.await(Nap, job.id))
      const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) as PoolError.TaskCodecError : undefined
      assert.deepStrictEqual([error?._tag, error?.part], ["TaskCodecError", "payload"])
      const info = yield* JobQueue.status(job.id)
      assert.deepStrictEqual([info.state, info.attempts], ["dead", 1])
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory())), { timeout: 60_000 })
})
