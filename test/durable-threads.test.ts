/**
 * CPU-bound durable jobs: a consumer whose handlers hand each job to a ThreadPool running the same
 * task (the pattern docs/durable.md shows): the result, the task's typed failure, and a crashed
 * thread (a defect of the attempt, retried).
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Layer, Schedule } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as DurableError from "../src/DurableError.ts"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import type * as PoolError from "../src/PoolError.ts"
import * as Task from "../src/Task.ts"
import * as ThreadPool from "../src/ThreadPool.ts"
import { Annotated, annotationsOf, Count, Crash as CrashThread, decodes, Loose, Nap, Nothing, Refused, Snoozy, Spin, Stamp, Trace, Unserved, Whoami } from "./fixtures/durable-thread-tasks.ts"
import { makePool } from "./fixtures/pool.ts"
import { Crash, Echo, Fail, HashFailed } from "./fixtures/tasks.ts"
import { storeLayers } from "./durable/stores.ts"
import { recordingTracer, waitFor } from "./helpers.ts"

it.live("durable jobs handed to a ThreadPool: results, typed failures, and a crashed thread's attempt retried", () =>
  Effect.gen(function*() {
    const { pool: threads } = yield* makePool()
    let crashes = 0
    yield* JobQueue.consume({
      handlers: [
        Task.handle(Echo, (s) => threads.run(Echo, s).pipe(Effect.orDie)),
        Task.handle(Fail, (s) =>
          threads.run(Fail, s).pipe(Effect.catch((error) => error instanceof HashFailed ? Effect.fail(error) : Effect.die(error)))),
        // the first attempt crashes its thread; the retry, on the thread that replaced it, succeeds
        Task.handle(Crash, (how) => (crashes++ === 0 ? threads.run(Crash, how) : Effect.succeed("recovered")).pipe(Effect.orDie))
      ],
      concurrency: 2,
      retry: { times: 3 },
      poll: 10
    })
    const echo = yield* JobQueue.enqueue(Echo, "hello")
    const fail = yield* JobQueue.enqueue(Fail, "x", { maxAttempts: 1 })
    const crash = yield* JobQueue.enqueue(Crash, "exit", { maxAttempts: 3 })
    assert.strictEqual(yield* echo.await, "echo hello")
    assert.instanceOf(yield* Effect.flip(fail.await), HashFailed)
    assert.strictEqual(yield* crash.await, "recovered")
    assert.strictEqual((yield* JobQueue.status(crash.id)).attempts, 2)
  }).pipe(Effect.scoped, Effect.provide(JobStore.memory())), { timeout: 60_000 })

// --- JobQueue.consume({ threadPool, tasks }): the consumer runs the tasks on the pool's threads

const threadWorker = new URL("./fixtures/durable-thread-worker.ts", import.meta.url)
const makeThreads = (options: Partial<ThreadPool.Options> = {}) =>
  Effect.gen(function*() {
    const counters = new SharedArrayBuffer(16 * 4)
    const pool = yield* ThreadPool.make({ worker: threadWorker, threads: 2, cancelGrace: "300 millis", workerData: { counters }, ...options })
    return { pool, counters: new Int32Array(counters) }
  })
const stateOf = (id: string) => Effect.map(JobQueue.status(id), (info) => info.state)
/** Waits until a check on the store holds (see helpers.waitFor). */
const until = <E>(check: Effect.Effect<boolean, E, JobStore.JobStore>, what: string) =>
  Effect.flatMap(Effect.context<JobStore.JobStore>(), (context) => waitFor(Effect.orDie(Effect.provide(check, context)), what))
const sqliteFile = () => join(mkdtempSync(join(tmpdir(), "wp-durable-threads-")), "jobs.db")

describe("JobQueue.consume with a threadPool", () => {
  it.live("runs the tasks on threads: the stored payload is decoded and the result encoded there, in the JSON form, not on this thread", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeThreads()
      const consumer = yield* JobQueue.consume({ threadPool: pool, tasks: [Stamp, Nothing], poll: 10 })
      // its slots are the pool's: 2 threads × 1 task each
      assert.strictEqual((yield* consumer.stats).concurrency, 2)
      const at = new Date("2026-01-02T03:04:05.000Z")
      const job = yield* JobQueue.enqueue(Stamp, { label: "a", at })
      const refused = yield* JobQueue.enqueue(Stamp, { label: "refuse", at }, { maxAttempts: 1 })
      const nothing = yield* JobQueue.enqueue(Nothing, 1)
      yield* until(Effect.map(stateOf(job.id), (state) => state === "succeeded"), "the job succeeded")
      yield* until(Effect.map(stateOf(refused.id), (state) => state === "dead"), "the refused job died")
      // the consumer's thread decoded neither the payloads nor the result (the producer encodes)
      assert.strictEqual(decodes.count, 0)
      const result = yield* job.await
      assert.deepStrictEqual([result.label, result.at.toISOString(), result.big], ["a!", "2026-01-02T03:04:06.000Z", 2n ** 70n])
      // a typed failure comes back as its own class, decoded from the JSON form
      const failure = yield* Effect.flip(refused.await)
      assert.instanceOf(failure, Refused)
      assert.strictEqual((failure as Refused).why, "asked to")
      // a success whose JSON form is no value at all
      assert.strictEqual(yield* nothing.await, undefined)
      assert.strictEqual((yield* JobQueue.status(nothing.id)).state, "succeeded")
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory())), { timeout: 60_000 })

  it.live("a success with no JSON (Schema.Any given a BigInt, a cycle, a function) ends its job dead at its first attempt with TaskCodecError (part success), as on a fiber: not a defect of the thread, retried; undefined stays a success", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeThreads()
      yield* JobQueue.consume({ threadPool: pool, tasks: [Loose], poll: 10, retry: { times: 3 } })
      const jobs = yield* Effect.forEach([0, 1, 2, 3], (n) => JobQueue.enqueue(Loose, n, { maxAttempts: 3 }))
      const ended = Effect.map(Effect.forEach(jobs, (job) => stateOf(job.id)), (states) => states.every((state) => state === "dead" || state === "succeeded"))
      yield* until(ended, "every job ended")
      const infos = yield* Effect.forEach(jobs, (job) => JobQueue.status(job.id))
      assert.deepStrictEqual(infos.map((info) => [info.state, info.attempts]), [["dead", 1], ["dead", 1], ["dead", 1], ["succeeded", 1]])
      const outcomes = yield* Effect.forEach(jobs, (job) =>
        Effect.map(Effect.exit(job.await), (exit) => {
          if (Exit.isSuccess(exit)) return ["success", exit.value]
          const error = Cause.squash(exit.cause) as PoolError.TaskCodecError
          return [error._tag, error.part]
        }))
      assert.deepStrictEqual(outcomes, [
        ["TaskCodecError", "success"],
        ["TaskCodecError", "success"],
        ["TaskCodecError", "success"],
        ["success", undefined]
      ])
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory())), { timeout: 60_000 })

  it.live("a crashed thread fails the attempt as a defect, retried by the consumer's policy; the pool's own retry does not apply", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeThreads({ retry: { times: 5 } })
      yield* JobQueue.consume({ threadPool: pool, tasks: [CrashThread, Unserved], retry: Schedule.spaced("10 millis"), poll: 10 })
      const job = yield* JobQueue.enqueue(CrashThread, 1, { maxAttempts: 2 })
      const exit = yield* Effect.exit(job.await)
      assert.isTrue(Exit.isFailure(exit) && Cause.hasDies(exit.cause))
      const defect = Exit.isFailure(exit) ? Cause.squash(exit.cause) as Error : undefined
      assert.strictEqual(defect?.name, "WorkerCrashed")
      assert.strictEqual((yield* JobQueue.status(job.id)).attempts, 2)
      // the thread was replaced: the pool goes on
      yield* waitFor(pool.threads, "the pool has 2 threads again", { until: (n) => n === 2 })
      // a task its worker does not serve: a defect saying so (retried like one), not a dead payload
      const unserved = yield* JobQueue.enqueue(Unserved, 1, { maxAttempts: 1 })
      const missing = yield* Effect.exit(unserved.await)
      assert.isTrue(Exit.isFailure(missing) && Cause.hasDies(missing.cause))
      assert.include(Exit.isFailure(missing) ? (Cause.squash(missing.cause) as Error).message : "", "no handler for task Unserved")
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory())), { timeout: 60_000 })

  it.live("the attempt's timeout interrupts the thread task (finalizers run), or terminates a thread that does not yield; AttemptTimeout", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makeThreads()
      yield* JobQueue.consume({ threadPool: pool, tasks: [Nap, Spin], poll: 10 })
      const nap = yield* JobQueue.enqueue(Nap, { millis: 60_000, mark: 0 }, { timeout: "300 millis", maxAttempts: 1 })
      const spin = yield* JobQueue.enqueue(Spin, 1, { timeout: "300 millis", maxAttempts: 1 })
      assert.instanceOf(yield* Effect.flip(nap.await), DurableError.AttemptTimeout)
      assert.strictEqual(Atomics.load(counters, 0), 1)
      assert.instanceOf(yield* Effect.flip(spin.await), DurableError.AttemptTimeout)
      // the spinning thread was terminated and replaced
      yield* waitFor(pool.stats, "no thread task runs", { until: (s) => s.running === 0 })
      assert.strictEqual(yield* pool.threads, 2)
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory())), { timeout: 60_000 })

  it.live("a cancel from another process interrupts the thread task within a heartbeat; the job ends cancelled", () =>
    Effect.gen(function*() {
      // two stores on one file: the producer's connection is another process's, as far as the consumer can tell
      const filename = sqliteFile()
      const producer = yield* Layer.build(JobStore.sqlite({ filename }))
      const { counters, pool } = yield* makeThreads()
      yield* JobQueue.consume({ threadPool: pool, tasks: [Nap], lease: "900 millis", poll: 10 }).pipe(
        Effect.provide(yield* Layer.build(JobStore.sqlite({ filename })))
      )
      yield* Effect.gen(function*() {
        const job = yield* JobQueue.enqueue(Nap, { millis: 60_000, mark: 1 })
        yield* until(Effect.map(stateOf(job.id), (state) => state === "running"), "the job runs")
        assert.strictEqual(yield* JobQueue.cancel(job.id), "requested")
        yield* until(Effect.map(stateOf(job.id), (state) => state === "cancelled"), "the job is cancelled")
      }).pipe(Effect.provide(producer))
      assert.strictEqual(Atomics.load(counters, 1), 1)
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("progress reported on the thread reaches the store; the trace goes from the producer's span to the thread", () => {
    const { spans, tracer } = recordingTracer()
    return Effect.gen(function*() {
      const { pool } = yield* makeThreads()
      yield* JobQueue.consume({ threadPool: pool, tasks: [Count, Trace], poll: 10 })
      const count = yield* JobQueue.enqueue(Count, 50)
      assert.strictEqual(yield* count.await, 50)
      assert.strictEqual((yield* JobQueue.status(count.id)).progress, 50)
      const producer = yield* Effect.withSpan(
        Effect.flatMap(Effect.orDie(Effect.currentSpan), (span) => Effect.map(JobQueue.enqueue(Trace, 1), (job) => ({ job, span }))),
        "http.request"
      )
      const seen = yield* producer.job.await
      // the thread runs under the thread pool's job span, a child of the durable job's, a child of the producer's
      const byId = new Map(spans.map((span) => [span.spanId, span]))
      const onPool = byId.get(seen.spanId)
      const durable = onPool?.parent._tag === "Some" ? byId.get(onPool.parent.value.spanId) : undefined
      assert.strictEqual(seen.traceId, producer.span.traceId)
      assert.deepStrictEqual(
        [onPool?.name, onPool?.attributes.get("workpool.task"), durable?.name, durable?.parent._tag === "Some" && durable.parent.value.spanId],
        ["workpool.job", "Trace", "workpool.job", producer.span.spanId]
      )
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory()), Effect.withTracer(tracer))
  }, { timeout: 60_000 })

  it.live("the consumer's concurrency bounds the thread tasks: a claimed job never waits in the pool's queue", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeThreads()
      const consumer = yield* JobQueue.consume({ threadPool: pool, tasks: [Nap], poll: 10 })
      const jobs = yield* Effect.forEach([1, 2, 3, 4, 5], () => JobQueue.enqueue(Nap, { millis: 200, mark: 2 }))
      let most = 0
      while (true) {
        const [mine, threads, queue] = [yield* consumer.stats, yield* pool.stats, yield* JobQueue.stats("default")]
        assert.isAtMost(threads.queued, 0)
        assert.isAtMost(queue.running, 2)
        most = Math.max(most, mine.running)
        if (queue.succeeded === 5) break
        yield* Effect.sleep(5)
      }
      assert.strictEqual(most, 2)
      assert.deepStrictEqual(yield* Effect.forEach(jobs, (job) => job.await), [200, 200, 200, 200, 200])
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory())), { timeout: 60_000 })

  it.live("resize: a consumer without its own concurrency follows the pool's resize; consumer.resize bounds its claims, leaves the pool alone and stops following it", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeThreads()
      const consumer = yield* JobQueue.consume({ threadPool: pool, tasks: [Nap], poll: 10 })
      const concurrency = Effect.map(consumer.stats, (s) => s.concurrency)
      /** The most jobs running at once while `jobs` jobs of `millis` run; no claimed job waits for a thread. */
      const most = (jobs: number, millis: number) =>
        Effect.gen(function*() {
          const handles = yield* Effect.forEach(Array.from({ length: jobs }), () => JobQueue.enqueue(Nap, { millis, mark: 5 }))
          let most = 0
          while (true) {
            const [threads, queue] = [yield* pool.stats, yield* JobQueue.stats("default")]
            assert.strictEqual(threads.queued, 0)
            most = Math.max(most, queue.running)
            if (queue.running === 0 && queue.waiting === 0 && queue.delayed === 0) break
            yield* Effect.sleep(5)
          }
          yield* Effect.forEach(handles, (job) => job.await)
          return most
        })
      // the pool grows: so do the consumer's claims, once the new threads have started
      yield* pool.resize(4)
      assert.strictEqual(yield* concurrency, 4)
      assert.strictEqual(yield* most(8, 300), 4)
      // and shrinks
      yield* pool.resize(1)
      assert.strictEqual(yield* concurrency, 1)
      // the consumer's own number bounds what it claims; the pool (the user's) keeps its size
      yield* consumer.resize(2)
      assert.deepStrictEqual([yield* concurrency, (yield* pool.stats).concurrency], [2, 1])
      yield* pool.resize(3)
      assert.strictEqual(yield* concurrency, 2, "a consumer given its own concurrency no longer follows the pool")
      assert.strictEqual(yield* most(6, 300), 2)
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory())), { timeout: 60_000 })

  it.live("a shutdown gives a running thread job back without counting the attempt; its thread task is interrupted", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makeThreads()
      const job = yield* Effect.scoped(Effect.gen(function*() {
        yield* JobQueue.consume({ threadPool: pool, tasks: [Nap], poll: 10, shutdownTimeout: 0 })
        const job = yield* JobQueue.enqueue(Nap, { millis: 60_000, mark: 3 })
        yield* until(Effect.map(stateOf(job.id), (state) => state === "running"), "the job runs")
        return job
      }))
      const info = yield* JobQueue.status(job.id)
      assert.deepStrictEqual([info.state, info.attempts], ["queued", 0])
      assert.strictEqual(Atomics.load(counters, 3), 1)
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory())), { timeout: 60_000 })

  it.live("the thread pool shut down under its consumer: the consumer stops and gives the job back, the attempt not counted", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeThreads()
      const consumer = yield* JobQueue.consume({ threadPool: pool, tasks: [Nap], poll: 10 })
      const job = yield* JobQueue.enqueue(Nap, { millis: 60_000, mark: 4 })
      yield* until(Effect.map(stateOf(job.id), (state) => state === "running"), "the job runs")
      yield* pool.shutdownNow
      yield* consumer.awaitTermination
      const info = yield* JobQueue.status(job.id)
      assert.deepStrictEqual([info.state, info.attempts], ["queued", 0])
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory())), { timeout: 60_000 })

  it.effect("bad options: a typed error naming the field", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeThreads({ threads: 1 })
      const fieldOf = (options: JobQueue.ConsumeOptions<never>) =>
        Effect.map(Effect.flip(JobQueue.consume(options)), (e) => (e as PoolError.InvalidPoolConfig).field)
      const handlers = [Task.handle(Echo, Effect.succeed)]
      assert.strictEqual(yield* fieldOf({ threadPool: {} as never, tasks: [Nap] }), "threadPool")
      assert.strictEqual(yield* fieldOf({ threadPool: pool }), "tasks")
      assert.strictEqual(yield* fieldOf({ threadPool: pool, tasks: [] }), "tasks")
      assert.strictEqual(yield* fieldOf({ threadPool: pool, tasks: [{ name: "Nap" } as never] }), "tasks[0]")
      assert.strictEqual(yield* fieldOf({ handlers, concurrency: 1, tasks: [Nap] }), "tasks")
      assert.strictEqual(yield* fieldOf({ handlers, threadPool: pool, tasks: [Echo] }), "tasks[0]")
      assert.strictEqual(yield* fieldOf({ handlers }), "concurrency")
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory())))

  it.effect("a thread pool that has shut down: a typed error naming threadPool (it died: concurrency 0, a number nobody gave)", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeThreads({ threads: 1 })
      yield* pool.shutdown
      for (const concurrency of [undefined, 2]) {
        const error = yield* Effect.flip(JobQueue.consume({ threadPool: pool, tasks: [Nap], concurrency }))
        assert.strictEqual(error._tag, "InvalidPoolConfig")
        assert.strictEqual((error as PoolError.InvalidPoolConfig).field, "threadPool")
        assert.include((error as PoolError.InvalidPoolConfig).reason, "shut down")
      }
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory())))
})

describe("JobQueue.CurrentJob on a ThreadPool consumer's thread", () => {
  it.live("a durable job's log annotations on a thread are its fiber's: jobId the durable id, and its queue (the thread's jobId was the pool's number); the pool's own task keeps its number", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeThreads()
      const own = yield* pool.run(Annotated, 1)
      assert.isNumber(own.jobId)
      assert.isNull(own.queue)
      yield* JobQueue.consume({ queues: ["on-thread"], threadPool: pool, tasks: [Annotated], poll: 10 })
      yield* JobQueue.consume({ queues: ["on-fiber"], handlers: [Task.handle(Annotated, () => annotationsOf)], concurrency: 1, poll: 10 })
      const [onThread, onFiber] = yield* Effect.forEach(["on-thread", "on-fiber"], (queue) => JobQueue.enqueue(Annotated, 1, { queue }))
      assert.deepStrictEqual(yield* onFiber!.await, { jobId: onFiber!.id, queue: "on-fiber" })
      assert.deepStrictEqual(yield* onThread!.await, { jobId: onThread!.id, queue: "on-thread" })
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory())), { timeout: 60_000 })

  for (const [name, makeStore] of storeLayers(sqliteFile)) {
    it.live(`${name}: the durable job's id, queue, task, attempt (growing with a retry, and after a lease expiry), maxAttempts, createdAt, dedupKey and priority, JobContext's attempt the same; none for the pool's own task`, () =>
      Effect.gen(function*() {
        const { pool } = yield* makeThreads()
        assert.isNull(yield* pool.run(Whoami, 1))
        const store = yield* JobStore.JobStore
        // a consumer claims this one and dies (kill -9): taken back after its lease, it runs as attempt 2
        const orphan = yield* JobQueue.enqueue(Whoami, 1, { queue: "tenant-b" })
        const [claim] = (yield* store.claim({ queues: ["tenant-b"], tasks: ["Whoami"], limit: 1, lease: 300 })).claims
        assert.strictEqual(claim?.job.id, orphan.id)
        yield* JobQueue.consume({
          queues: ["tenant-a", "tenant-b"],
          threadPool: pool,
          tasks: [Whoami],
          poll: 10,
          lease: "1 second",
          retry: Schedule.spaced("10 millis")
        })
        // its first attempt fails: its retry is attempt 2
        const retried = yield* JobQueue.enqueue(Whoami, 2, { queue: "tenant-a", priority: 5, dedupKey: "whoami:1", maxAttempts: 4 })
        const expected = (id: string, attempt: number) =>
          Effect.map(JobQueue.status(id), (info) => ({
              id,
              queue: info.queue,
              task: "Whoami",
              attempt,
              maxAttempts: info.maxAttempts,
              createdAt: info.createdAt,
              dedupKey: info.dedupKey,
              priority: info.priority,
              contextAttempt: attempt
            }))
        // the JSON form leaves an undefined dedupKey out
        const seen = (job: JobQueue.JobHandle<typeof Whoami.success.Type, unknown>) =>
          Effect.map(job.await, (seen) => seen === null ? null : { ...seen, dedupKey: seen.dedupKey })
        assert.deepStrictEqual(yield* seen(retried), yield* expected(retried.id, 2))
        assert.deepStrictEqual(yield* seen(orphan), yield* expected(orphan.id, 2))
        const [tenantA, tenantB] = [yield* JobQueue.status(retried.id), yield* JobQueue.status(orphan.id)]
        assert.deepStrictEqual(
          [[tenantA.queue, tenantA.priority, tenantA.dedupKey, tenantA.maxAttempts], [tenantB.queue, tenantB.priority, tenantB.dedupKey]],
          [["tenant-a", 5, "whoami:1", 4], ["tenant-b", 0, undefined]]
        )
      }).pipe(Effect.scoped, Effect.provide(makeStore())), { timeout: 60_000 })
  }
})

it.live("a handler on a ThreadPool consumer's thread snoozes its job as on a fiber: back after the snooze, its attempt not spent; with holdQueue its queue held as long", () =>
  Effect.gen(function*() {
    const { counters, pool } = yield* makeThreads()
    yield* JobQueue.consume({ threadPool: pool, tasks: [Snoozy], queues: ["api"], poll: 10 })
    const snoozed = yield* JobQueue.enqueue(Snoozy, { millis: 3000, mark: 4, hold: true }, { queue: "api", maxAttempts: 1 })
    yield* until(Effect.map(JobQueue.status(snoozed.id), (info) => info.state === "delayed"), "the job snoozed")
    const start = Date.now()
    assert.deepStrictEqual([Atomics.load(counters, 4), (yield* JobQueue.status(snoozed.id)).attempts], [1, 0])
    // enqueued once the queue is held: it waits for the hold's end too
    const held = yield* JobQueue.enqueue(Snoozy, { millis: 300, mark: 5, hold: false }, { queue: "api" })
    yield* Effect.sleep(100)
    assert.strictEqual(yield* stateOf(held.id), "queued", "held with its queue")
    assert.strictEqual(yield* snoozed.await, 1, "its first counted attempt")
    assert.isAtLeast(Date.now() - start, 2000)
    assert.deepStrictEqual([Atomics.load(counters, 4), (yield* JobQueue.status(snoozed.id)).attempts], [2, 1])
  }).pipe(Effect.scoped, Effect.provide(JobStore.memory())), { timeout: 60_000 })
