/**
 * What a thread pool keeps besides its jobs: thread tasks that start on a fiber (traced ones: their
 * `workpool.job` span is made in it), what the thread records of a task's spans when tracing is
 * off, and how many threads it wants after a resize that did not get them.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Tracer } from "effect"
import * as ThreadPool from "../src/ThreadPool.ts"
import * as Scheduler from "../src/internal/scheduler.ts"
import type { ThreadExecutor } from "../src/internal/threadExecutor.ts"
import { Traced } from "./fixtures/observe-tasks.ts"
import { Hold, Peers } from "./fixtures/tasks.ts"
import { addsUp, encodeHookedPeers, makeReleasingPool as makePool } from "./fixtures/pool.ts"
import { recordingTracer, waitFor } from "./helpers.ts"

const executorOf = (pool: ThreadPool.ThreadPool) => Scheduler.schedulerOf(pool).executor as ThreadExecutor

describe("ThreadPool: what it keeps", () => {
  it.live("a traced task whose start cancels its own job leaves nothing behind in the pool", () =>
    Effect.gen(function*() {
      const { spans, tracer } = recordingTracer()
      const { counters, pool } = yield* makePool({ threads: 1 })
      // the thread's Peers, whose payload runs the caller's code as it is encoded: as its job starts
      const { once, task: Hooked } = encodeHookedPeers()
      const first = yield* pool.submit(Hold, { mark: 0, release: 1 })
      yield* waitFor(Effect.sync(() => Atomics.load(counters, 0) === 1), "the first task started")
      const hooked = yield* pool.submit(Hooked, 60_000).pipe(Effect.withSpan("request"), Effect.withTracer(tracer))
      once(() => Effect.runFork(hooked.interrupt))
      Atomics.store(counters, 1, 1)
      assert.strictEqual(yield* first.await, 0)
      assert.isTrue(Exit.hasInterrupts(yield* Effect.exit(hooked.await)))
      assert.isTrue(spans.some((s) => s.name === "workpool.job"), "it started on a traced fiber")
      assert.strictEqual(yield* pool.run(Peers, 0), 1, "the cancelled task is not running in the thread")
      const s = yield* pool.stats
      assert.deepStrictEqual([s.succeeded, s.interrupted, s.running], [2, 1, 0])
      assert.isTrue(addsUp(s))
      assert.strictEqual(executorOf(pool).stoppedEarly.size, 0, "no job is kept as stopped before its start")
    }))

  it.live("with tracing off, a thread records no span for the caller's tracer, even under a sampled parent", () =>
    Effect.scoped(Effect.gen(function*() {
      const { spans, tracer } = recordingTracer()
      const pool = yield* ThreadPool.make({ worker: new URL("./fixtures/observe-worker.ts", import.meta.url), threads: 1 })
      const parent = Tracer.externalSpan({ traceId: "a".repeat(32), spanId: "b".repeat(16), sampled: true })
      const seen = yield* pool.run(Traced, 1).pipe(
        Effect.withParentSpan(parent),
        Effect.withTracer(tracer),
        Effect.withTracerEnabled(false)
      )
      // what the main thread makes with tracing off (no span at all), the thread's spans do not undo
      assert.deepStrictEqual(spans.map((s) => s.name), [])
      assert.isFalse(seen.recording, "the thread does not record its spans for the main thread")
      // the caller's trace still reaches the thread, for its logs
      assert.strictEqual(seen.traceId, parent.traceId)
    })))

  it.live("a resize that is interrupted before its threads have started wants the threads the pool kept", () =>
    Effect.scoped(Effect.gen(function*() {
      // its first thread serves; later ones never report ready, so the resize waits for them
      const started = new SharedArrayBuffer(4)
      const pool = yield* ThreadPool.make({
        worker: new URL("./fixtures/ready-once-worker.ts", import.meta.url),
        threads: 1,
        tasksPerThread: 2,
        workerData: { started }
      })
      const resize = yield* Effect.forkChild(pool.resize(3))
      yield* waitFor(Effect.map(pool.threads, (n) => n === 3), "the new threads are starting")
      yield* Fiber.interrupt(resize)
      assert.strictEqual((yield* pool.stats).concurrency, 2, "the pool keeps its slots")
      assert.strictEqual(executorOf(pool).threads.target, 1, "and wants the one thread they are on")
    })))

  it.live("a resize of a pool that is shutting down changes nothing, not even the threads wanted", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 1, tasksPerThread: 2 })
      const held = yield* pool.submit(Hold, { mark: 0, release: 1 })
      yield* waitFor(Effect.sync(() => Atomics.load(counters, 0) === 1), "the task started")
      // a graceful shutdown waits for the task: the pool is draining meanwhile
      const shutdown = yield* Effect.forkChild(pool.shutdown)
      yield* waitFor(Effect.map(pool.stats, (s) => s.state === "draining"), "the pool drains")
      yield* pool.resize(3)
      assert.strictEqual((yield* pool.stats).concurrency, 2)
      assert.strictEqual(executorOf(pool).threads.target, 1)
      Atomics.store(counters, 1, 1)
      assert.strictEqual(yield* held.await, 0)
      yield* Fiber.join(shutdown)
    }))
})
