import { assert, describe, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber, Option, Schedule, Stream } from "effect"
import { TestClock } from "effect/testing"
import { Layer, Schema } from "effect"
import { StoreError } from "../src/DurableError.ts"
import type { Store } from "../src/internal/store/model.ts"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as Task from "../src/Task.ts"
import { PoolError, WorkPool } from "../src/index.ts"
import * as ThreadPool from "../src/ThreadPool.ts"
import { addsUp, blockPast, blockUntil, makePool } from "./fixtures/pool.ts"
import { Echo, Mark, MarkOrSpin, Sleep } from "./fixtures/tasks.ts"
import { schedulerOf } from "../src/internal/scheduler.ts"
import { fullGc, prng, settle, waitFor } from "./helpers.ts"

describe("runAll: memory of a long batch", () => {
  it.live("a job of a batch that has ended is not kept until the whole batch ends (its result is)", () =>
    Effect.gen(function*() {
      // no retention: the pool itself keeps no ended job; only the batch could
      const pool = yield* WorkPool.make({ concurrency: 2, shutdownTimeout: 0 })
      const scheduler = schedulerOf(pool)
      const refs: Array<WeakRef<object>> = []
      const gate = yield* Deferred.make<void>()
      // each job ends after a yield (not as it starts): it stays in the batch's list of jobs to cancel
      const job = (i: number) =>
        Effect.gen(function*() {
          for (const worker of scheduler.workers) {
            if (worker.job !== undefined && worker.job.seq === i + 1) refs.push(new WeakRef(worker.job))
          }
          yield* Effect.yieldNow
          return i
        })
      const count = 5_000
      const jobs = Array.from({ length: count }, (_, i) => job(i))
      jobs.push(Effect.as(Deferred.await(gate), count))
      const all = yield* Effect.forkChild(pool.runAll(jobs))
      // every job but the last has ended; the batch goes on
      while ((yield* pool.stats).succeeded < count) yield* Effect.sleep(1)
      assert.strictEqual(refs.length, count)
      yield* fullGc
      const kept = refs.filter((ref) => ref.deref() !== undefined).length
      // 5,000 ended job records (some 100 bytes each) were kept until the batch ended: 100 MB for 1e6 jobs
      assert.isAtMost(kept, count / 2, `kept ${kept} of ${count} ended jobs while the batch runs`)
      yield* Deferred.succeed(gate, void 0)
      const results = yield* Fiber.join(all)
      assert.strictEqual(results.length, count + 1)
      assert.deepStrictEqual([results[0], results[count - 1], results[count]], [0, count - 1, count])
    }))
})

/** The README's identity, true at every instant. */
const balanced = (s: WorkPool.PoolStats) =>
  s.submitted ===
    s.waiting + s.queued + s.retrying + s.running + s.succeeded + s.failed + s.defects + s.timedOut +
      s.interrupted + s.dropped

const failureOf = <A, E>(exit: Exit.Exit<A, E>) => Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined

/** The Exit of a fiber running `Effect.exit(...)`, if it has ended. */
const ended = <A, E>(fiber: Fiber.Fiber<Exit.Exit<A, E>>): Exit.Exit<A, E> | undefined => {
  const exit = fiber.pollUnsafe()
  return exit === undefined ? undefined : Exit.isSuccess(exit) ? exit.value : exit as never
}

describe("mapStream: memory of an endless upstream", () => {
  for (const unordered of [false, true]) {
    it.live(`${unordered ? "unordered" : "ordered"}: the jobs it has run are not kept while the stream goes on`, () =>
      Effect.gen(function*() {
        const pool = yield* WorkPool.make({ concurrency: 2, shutdownTimeout: 0 })
        const scheduler = schedulerOf(pool)
        const refs: Array<WeakRef<object>> = []
        const count = 5_000
        const gate = yield* Deferred.make<void>()
        const job = (i: number) =>
          Effect.gen(function*() {
            for (const worker of scheduler.workers) {
              if (worker.job !== undefined && worker.job.seq === i + 1) refs.push(new WeakRef(worker.job))
            }
            if (i === count) yield* Deferred.await(gate)
            yield* Effect.yieldNow
            return i
          })
        let taken = 0
        const fiber = yield* Effect.forkChild(
          Stream.iterate(0, (n) => n + 1).pipe(
            WorkPool.mapStream(pool, job, { unordered }),
            Stream.runForEach(() => Effect.sync(() => void taken++))
          )
        )
        while (taken < count) yield* Effect.sleep(1)
        yield* fullGc
        const kept = refs.slice(0, count).filter((ref) => ref.deref() !== undefined).length
        assert.isAtMost(kept, 100, `kept ${kept} of ${count} ended jobs while the stream goes on`)
        const s = yield* pool.stats
        // the one held at the gate, and at most the buffer's worth past it
        assert.isAtMost(s.submitted - s.succeeded, 4)
        yield* Fiber.interrupt(fiber)
      }))
  }
})

describe("mapStream: failures, interruption, backpressure", () => {
  for (const unordered of [false, true]) {
    const mode = unordered ? "unordered" : "ordered"

    it.effect(`${mode}: a job that fails fails the stream at once; the jobs still in the pool are stopped`, () =>
      Effect.gen(function*() {
        const pool = yield* WorkPool.make({ concurrency: 2, shutdownTimeout: 0 })
        let finalized = 0
        const fiber = yield* Effect.forkChild(Effect.exit(Stream.runCollect(
          Stream.range(1, 100).pipe(
            WorkPool.mapStream(pool, (i) =>
              i === 2
                ? Effect.andThen(Effect.sleep("1 second"), Effect.fail("boom" as const))
                : Effect.ensuring(Effect.as(Effect.sleep("1 hour"), i), Effect.sync(() => finalized++)), { unordered, buffer: 4 })
          )
        )))
        yield* settle
        assert.deepStrictEqual([(yield* pool.stats).running, (yield* pool.stats).queued], [2, 2])
        yield* TestClock.adjust("1 second")
        yield* settle
        const exit = ended(fiber)
        assert.isDefined(exit, "the stream waited for the other jobs (an hour) to fail")
        assert.strictEqual(failureOf(exit!), "boom")
        // element 1 was running (interrupted, its finalizer ran), 3 and 4 were queued (never started)
        assert.strictEqual(finalized, 1)
        const s = yield* pool.stats
        assert.deepStrictEqual([s.running, s.queued, s.failed, s.interrupted, s.submitted], [0, 0, 1, 3, 4])
        assert.isTrue(balanced(s))
      }))

    it.effect(`${mode}: interrupting the consumer stops every element in the pool, running or queued`, () =>
      Effect.gen(function*() {
        const pool = yield* WorkPool.make({ concurrency: 2, shutdownTimeout: 0 })
        let finalized = 0
        const fiber = yield* Effect.forkChild(Stream.runCollect(
          Stream.iterate(0, (n) => n + 1).pipe(
            WorkPool.mapStream(pool, () => Effect.ensuring(Effect.never, Effect.sync(() => finalized++)), { unordered })
          )
        ))
        yield* settle
        // the default buffer: twice the concurrency, not the infinite upstream
        assert.strictEqual((yield* pool.stats).submitted, 4)
        yield* Fiber.interrupt(fiber)
        assert.strictEqual(finalized, 2)
        const s = yield* pool.stats
        assert.deepStrictEqual([s.running, s.queued, s.waiting, s.interrupted], [0, 0, 0, 4])
        assert.isTrue(balanced(s))
      }))

    it.effect(`${mode}: a slow downstream holds the upstream back: at most \`buffer\` elements beyond those taken`, () =>
      Effect.gen(function*() {
        const pool = yield* WorkPool.make({ concurrency: 4 })
        let pulled = 0
        let taken = 0
        const excess: Array<number> = []
        const fiber = yield* Effect.forkChild(
          Stream.iterate(0, (n) => n + 1).pipe(
            Stream.tap(() => Effect.sync(() => void pulled++)),
            WorkPool.mapStream(pool, (i) => Effect.succeed(i), { unordered, buffer: 3 }),
            Stream.take(50),
            Stream.runForEach(() =>
              Effect.andThen(Effect.sync(() => void excess.push(pulled - ++taken)), Effect.sleep("1 second"))
            )
          )
        )
        for (let i = 0; i < 50; i++) {
          yield* settle
          yield* TestClock.adjust("1 second")
        }
        yield* Fiber.join(fiber)
        assert.strictEqual(taken, 50)
        // the elements in the pool or done and not yet taken, and the one the upstream is pulling
        assert.isAtMost(Math.max(...excess), 3 + 2, `pulled ahead of the consumer by ${Math.max(...excess)}`)
        assert.isAtMost(pulled, 50 + 3 + 2)
      }))

    it.effect(`${mode}: an upstream failure ends the stream once the elements already in the pool have ended (as Stream.mapEffect)`, () =>
      Effect.gen(function*() {
        const pool = yield* WorkPool.make({ concurrency: 2 })
        const fiber = yield* Effect.forkChild(Effect.exit(Stream.runCollect(
          Stream.concat(Stream.make(1, 2, 3), Stream.fail("upstream" as const)).pipe(
            WorkPool.mapStream(pool, (i) => Effect.as(Effect.sleep(`${i} seconds`), i * 10), { unordered })
          )
        )))
        yield* settle
        assert.strictEqual((yield* pool.stats).submitted, 3)
        yield* TestClock.adjust("2 seconds")
        yield* settle
        assert.isUndefined(fiber.pollUnsafe(), "the upstream's failure came before the jobs in the pool ended")
        yield* TestClock.adjust("2 seconds")
        yield* settle
        const exit = ended(fiber)
        assert.isDefined(exit, "the stream did not end once its jobs had")
        assert.strictEqual(failureOf(exit!), "upstream")
        const s = yield* pool.stats
        // none was interrupted: all three ran to their end
        assert.deepStrictEqual([s.succeeded, s.interrupted, s.running], [3, 0, 0])
      }))
  }

  for (const overflow of ["fail", "dropNewest", "dropOldest"] as const) {
    it.effect(`a full pool with overflow "${overflow}" fails the stream with its typed error, and nothing hangs`, () =>
      Effect.gen(function*() {
        const pool = yield* WorkPool.make({ concurrency: 1, capacity: 1, overflow, shutdownTimeout: 0 })
        const exit = yield* Effect.forkChild(Effect.exit(Stream.runCollect(
          Stream.range(1, 10).pipe(WorkPool.mapStream(pool, (i) => Effect.as(Effect.sleep("1 second"), i), { buffer: 3 }))
        )))
        yield* settle
        const failed = ended(exit)
        assert.isDefined(failed, "the stream hangs")
        const error = failureOf(failed!) as { _tag: string }
        assert.strictEqual(error._tag, overflow === "fail" ? "QueueFull" : "JobDropped")
        const s = yield* pool.stats
        assert.deepStrictEqual([s.running, s.queued, s.waiting], [0, 0, 0])
        assert.isTrue(balanced(s))
      }))
  }

  it.effect("the default buffer is twice the concurrency when the stream runs, not when it is built", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, shutdownTimeout: 0 })
      const stream = Stream.iterate(0, (n) => n + 1).pipe(WorkPool.mapStream(pool, () => Effect.never))
      yield* pool.resize(3)
      const fiber = yield* Effect.forkChild(Stream.runDrain(stream))
      yield* settle
      assert.strictEqual((yield* pool.stats).submitted, 6)
      yield* Fiber.interrupt(fiber)
      // run again: the same stream, the same bound, nothing left of the first run
      yield* pool.resize(2)
      const again = yield* Effect.forkChild(Stream.runDrain(stream))
      yield* settle
      const s = yield* pool.stats
      assert.deepStrictEqual([s.submitted, s.interrupted, s.running + s.queued], [10, 6, 4])
      yield* Fiber.interrupt(again)
    }))
})

describe("runAll: the iterable", () => {
  it.effect("is read in full before any job is submitted: one that throws midway fails with InvalidJob naming jobs and its error, and submits nothing", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2 })
      let ran = 0
      const jobs = function*() {
        yield Effect.sync(() => void ran++)
        yield Effect.sync(() => void ran++)
        throw new RangeError("the source broke")
      }
      const error = yield* Effect.flip(pool.runAll(jobs()))
      assert.instanceOf(error, PoolError.InvalidJob)
      assert.strictEqual((error as PoolError.InvalidJob).field, "jobs")
      assert.match((error as PoolError.InvalidJob).reason, /its iterator threw at jobs\[2\]: RangeError: the source broke/)
      assert.deepStrictEqual([ran, (yield* pool.stats).submitted], [0, 0])
      // a lazy source that is read as the jobs run is mapStream's
      const out = yield* Stream.runCollect(
        Stream.fromIterable([1, 2, 3]).pipe(WorkPool.mapStream(pool, (i) => Effect.succeed(i * 2)))
      )
      assert.deepStrictEqual(out, [2, 4, 6])
    }))
})

describe("ThreadPool.mapStream", () => {
  it.live("interrupting the consumer interrupts the tasks running in their threads and cancels the queued ones", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 2 })
      const fiber = yield* Effect.forkChild(Stream.runCollect(
        Stream.make(1, 2, 3, 4, 5, 6).pipe(
          Stream.map((mark) => ({ millis: 60_000, mark })),
          ThreadPool.mapStream(pool, Sleep, { buffer: 4 })
        )
      ))
      yield* waitFor(pool.stats, "two tasks run, two are queued", { until: (s) => s.running === 2 && s.queued === 2 })
      yield* Fiber.interrupt(fiber)
      // the two running tasks' fibers were interrupted in their threads (each marks its slot)
      assert.deepStrictEqual([1, 2, 3, 4].map((mark) => Atomics.load(counters, mark)), [1, 1, 0, 0])
      const s = yield* pool.stats
      assert.deepStrictEqual([s.running, s.queued, s.interrupted, s.submitted], [0, 0, 4, 4])
      // the threads are still there, and serve
      assert.strictEqual(yield* pool.threads, 2)
      assert.deepStrictEqual(yield* Stream.runCollect(Stream.make("a", "b").pipe(ThreadPool.mapStream(pool, Echo))), ["echo a", "echo b"])
    }))
})

describe("runAll: long mixed batches (its list of jobs to cancel is swept as they end)", () => {
  // seeds: successes with a small queue (1) and an unbounded one (5); failures late in the batch, after sweeps (15, 17, 18, 24)
  for (const seed of [1, 5, 15, 17, 18, 24]) {
    it.effect(`seed ${seed}: every result in its place, or the first failure with every other job stopped; the counts balance`, () =>
      Effect.gen(function*() {
        const rand = prng(seed)
        const pool = yield* WorkPool.make({
          concurrency: 1 + Math.floor(rand() * 4),
          capacity: rand() < 0.5 ? 1 + Math.floor(rand() * 8) : Infinity,
          retry: { schedule: Schedule.spaced("10 millis"), times: 1 },
          shutdownTimeout: 0
        })
        const count = 1500 + Math.floor(rand() * 1500)
        // one batch in two fails, at a random place
        const failAt = rand() < 0.5 ? Math.floor(rand() * count) : -1
        let running = 0
        const jobs = Array.from({ length: count }, (_, i): Effect.Effect<number, string> => {
          if (i === failAt) return Effect.andThen(Effect.sleep(5), Effect.fail(`boom ${i}`))
          const kind = rand()
          if (kind < 0.3) return Effect.succeed(i)
          if (kind < 0.6) return Effect.as(Effect.yieldNow, i)
          if (kind < 0.8) {
            return Effect.acquireUseRelease(
              Effect.sync(() => running++),
              () => Effect.as(Effect.sleep(Math.floor(rand() * 20)), i),
              () => Effect.sync(() => running--)
            )
          }
          // fails its first attempt, retried once
          let first = true
          return Effect.suspend(() => first ? (first = false, Effect.fail("once")) : Effect.succeed(i))
        })
        const fiber = yield* Effect.forkChild(Effect.exit(pool.runAll(jobs)))
        let exit: Exit.Exit<Array<number>, unknown> | undefined
        for (let step = 0; step < 100_000 && exit === undefined; step++) {
          yield* TestClock.adjust(1)
          exit = ended(fiber)
        }
        assert.isDefined(exit, "the batch never ended")
        if (failAt < 0) {
          assert.deepStrictEqual(Exit.isSuccess(exit!) ? exit.value : failureOf(exit!), Array.from({ length: count }, (_, i) => i))
        } else {
          assert.strictEqual(failureOf(exit!), `boom ${failAt}`)
        }
        assert.strictEqual(running, 0, "a job of the batch still runs")
        const s = yield* pool.stats
        assert.deepStrictEqual([s.running, s.queued, s.waiting, s.retrying], [0, 0, 0, 0])
        assert.isTrue(balanced(s))
      }), 60_000)
  }
})

describe("the first failure ends the batch or stream only once the others have stopped", () => {
  const slowToStop = (finalized: { count: number }) =>
    Effect.ensuring(Effect.never, Effect.andThen(Effect.sleep("10 seconds"), Effect.sync(() => void finalized.count++)))
  const boom = Effect.andThen(Effect.sleep("1 second"), Effect.fail("boom" as const))

  const cases = {
    runAll: (pool: WorkPool.WorkPool, finalized: { count: number }) => pool.runAll([slowToStop(finalized), boom]),
    "mapStream ordered": (pool: WorkPool.WorkPool, finalized: { count: number }) =>
      Stream.runCollect(Stream.make(1, 2).pipe(WorkPool.mapStream(pool, (i) => i === 1 ? slowToStop(finalized) : boom))),
    "mapStream unordered": (pool: WorkPool.WorkPool, finalized: { count: number }) =>
      Stream.runCollect(
        Stream.make(1, 2).pipe(WorkPool.mapStream(pool, (i) => i === 1 ? slowToStop(finalized) : boom, { unordered: true }))
      )
  }
  for (const [name, run] of Object.entries(cases)) {
    it.effect(`${name}: a job whose finalizer takes 10 seconds to stop holds the failure back until it has run`, () =>
      Effect.gen(function*() {
        const pool = yield* WorkPool.make({ concurrency: 2 })
        const finalized = { count: 0 }
        const fiber = yield* Effect.forkChild(Effect.exit(run(pool, finalized)))
        yield* settle
        yield* TestClock.adjust("1 second")
        yield* settle
        assert.isUndefined(ended(fiber), "it ended while a job of it was still stopping")
        assert.strictEqual((yield* pool.stats).running, 1)
        yield* TestClock.adjust("10 seconds")
        yield* settle
        const exit = ended(fiber)
        assert.isDefined(exit)
        assert.strictEqual(failureOf(exit!), "boom")
        assert.strictEqual(finalized.count, 1)
        assert.strictEqual((yield* pool.stats).running, 0)
      }))
  }
})

describe("JobQueue.progressChanges", () => {
  const Work = Task.make("StreamsHostileWork", { payload: Schema.Number, success: Schema.Number })

  it.effect("two readers of a job that reports, then fails for good: both see its values and end with it; a late reader sees its last value", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const job = yield* JobQueue.enqueue(Work, 1, { maxAttempts: 1 })
      const read = () => Effect.forkChild(Stream.runCollect(job.progressChanges))
      const [a, b] = [yield* read(), yield* read()]
      yield* JobQueue.consume({
        handlers: [Task.handle(Work, () =>
          Effect.gen(function*() {
            const context = yield* WorkPool.JobContext
            yield* context.progress({ step: 1 })
            yield* Deferred.await(gate)
            yield* context.progress({ step: 2 })
            return yield* Effect.die("broken")
          }))],
        concurrency: 1,
        poll: 10
      })
      for (let i = 0; i < 20; i++) yield* TestClock.adjust(100)
      yield* Deferred.succeed(gate, void 0)
      for (let i = 0; i < 20; i++) yield* TestClock.adjust(100)
      assert.strictEqual((yield* job.status).state, "dead")
      for (const reader of [a, b]) {
        const exit = reader.pollUnsafe()
        assert.isDefined(exit, "a reader did not end with its job")
        assert.deepStrictEqual(Exit.isSuccess(exit!) ? exit.value : exit, [{ step: 1 }, { step: 2 }])
      }
      assert.deepStrictEqual(yield* Stream.runCollect(job.progressChanges), [{ step: 2 }])
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory())))

  it.effect("a store that stops answering fails a reader with StoreError (typed), not a defect, and no hang", () =>
    Effect.gen(function*() {
      const down = { value: false }
      const store = Layer.effect(
        JobStore.JobStore,
        Effect.map(JobStore.JobStore, (inner): Store => ({
          ...inner,
          progressOf: (id) =>
            Effect.suspend(() => down.value ? Effect.fail(new StoreError({ operation: "progressOf", reason: "unreachable" })) : inner.progressOf(id))
        }))
      ).pipe(Layer.provide(JobStore.memory()))
      yield* Effect.gen(function*() {
        const job = yield* JobQueue.enqueue(Work, 1)
        const reader = yield* Effect.forkChild(Effect.exit(Stream.runCollect(job.progressChanges)))
        yield* TestClock.adjust(1000)
        assert.isUndefined(reader.pollUnsafe())
        down.value = true
        yield* TestClock.adjust(1000)
        const exit = ended(reader)
        assert.isDefined(exit, "the reader hangs on a store that fails")
        assert.isTrue(Exit.isFailure(exit!) && !Cause.hasDies(exit.cause))
        assert.instanceOf(failureOf(exit!), StoreError)
      }).pipe(Effect.provide(store))
    }))
})

describe("ThreadPool.runAll: the first failure stops a task its thread started from an offer", () => {
  it.live("a batch failing while its next task, offered to the busy thread, has started there: that task is interrupted, and the batch ends at once", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 1 })
      // A runs; B is offered to the thread (it starts there the moment A ends); C is queued
      const batch = yield* Effect.forkChild(Effect.exit(pool.runAll(Mark, [
        { mark: 1, millis: 300 },
        { mark: 3, millis: 20_000 },
        { mark: 5, millis: 0 }
      ])))
      yield* waitFor(pool.stats, "A runs", { until: (s) => s.running === 1 })
      const cancelled = yield* Effect.suspend(() => {
        // the thread ends A and starts B while this thread reads no message: B is the thread's now
        assert.isTrue(blockUntil(counters, 3, 20_000), "B started on its thread")
        // an operator cancels C: the batch's first failure, which stops A and B
        return pool.cancel(3)
      })
      assert.isTrue(cancelled)
      const exit = yield* Fiber.join(batch).pipe(Effect.timeoutOption("10 seconds"))
      // B, started from its offer, was never interrupted: the batch waited for its 20 seconds
      assert.isTrue(Option.isSome(exit), "the batch still waits for B, which was never stopped")
      assert.isTrue(Option.isSome(exit) && Exit.isFailure(exit.value))
      const s = yield* pool.stats
      assert.deepStrictEqual([s.running, s.queued, s.succeeded], [0, 0, 0])
      assert.strictEqual(Atomics.load(counters, 5), 0, "C never ran")
    }), 60_000)
})

describe("ThreadPool.runAll: the first failure stops every task its thread started from an offer, each at once", () => {
  it.live("two tasks started from their offers: the second is stopped at once, not once the first (slow to stop) has", () =>
    Effect.gen(function*() {
      // B1 spins: only its thread's termination, `cancelGrace` after it is cancelled, stops it
      const { counters, pool } = yield* makePool({ threads: 2, cancelGrace: "6 seconds" })
      // A1 and A2 run; B1 and B2 are offered to the busy threads (each starts the moment its A ends); C is queued
      const batch = yield* Effect.forkChild(Effect.exit(pool.runAll(MarkOrSpin, [
        { mark: 1, millis: 300, spin: false },
        { mark: 3, millis: 300, spin: false },
        { mark: 5, millis: 0, spin: true },
        { mark: 7, millis: 2_000, spin: false },
        { mark: 9, millis: 0, spin: false }
      ])))
      yield* waitFor(pool.stats, "A1 and A2 run", { until: (s) => s.running === 2 })
      const cancelled = yield* Effect.suspend(() => {
        // the threads end A1 and A2 and start B1 and B2 while this thread reads no message
        assert.isTrue(blockUntil(counters, 5, 20_000), "B1 started on its thread")
        assert.isTrue(blockUntil(counters, 7, 20_000), "B2 started on its thread")
        // an operator cancels C: the batch's first failure, which stops A1, A2, B1 and B2
        return pool.cancel(5)
      })
      assert.isTrue(cancelled)
      const exit = yield* Fiber.join(batch).pipe(Effect.timeoutOption("30 seconds"))
      assert.isTrue(Option.isSome(exit) && Exit.isFailure(exit.value), "the batch failed")
      const s = yield* pool.stats
      // B2 (2 seconds) was cancelled only once B1's thread had been terminated (6 seconds): it ran to its end
      assert.strictEqual(s.succeeded, 0, "B2 ran to its end: its cancel waited for B1 to stop")
      assert.deepStrictEqual([s.running, s.queued], [0, 0])
      assert.strictEqual(Atomics.load(counters, 9), 0, "C never ran")
    }), 60_000)
})

describe("runAll: the sweep of ended jobs never drops one that may still run", () => {
  // the batch sweeps its list of jobs to cancel once 512 jobs have ended and they may be half of it:
  // batches and failures either side of each sweep. Jobs 0 and 1 never succeed, so the failure at
  // `failAt` comes after `failAt - 2` successes: the first sweep is at the success of job 513, the
  // second at that of job 1025
  const cases: ReadonlyArray<readonly [count: number, failAt: number]> = [
    [511, 510],
    [512, 511],
    [513, 512],
    [514, 513],
    [515, 514],
    [516, 515],
    [1025, 1024],
    [1026, 1025],
    [1027, 1026],
    [1028, 1027],
    [2000, 1500]
  ]
  for (const [count, failAt] of cases) {
    it.effect(`${count} jobs, the one at ${failAt} fails: a job running since the start and one waiting for its retry are both stopped`, () =>
      Effect.gen(function*() {
        const pool = yield* WorkPool.make({ concurrency: 2, shutdownTimeout: 0 })
        let longStopped = false
        let attemptsOfHeld = 0
        let startedAfter = 0
        const jobs = Array.from({ length: count }, (_, i): Effect.Effect<number, string> => {
          // runs from the start until it is interrupted: kept through every sweep
          if (i === 0) return Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => void (longStopped = true))))
          // fails its first attempt and waits an hour (never, on the TestClock) for its retry
          if (i === 1) return Effect.suspend(() => ++attemptsOfHeld === 1 ? Effect.fail("retry-me") : Effect.succeed(i))
          return Effect.gen(function*() {
            if (i > failAt) startedAfter++
            // ends after a yield, not as it starts: it stays in the list until a sweep
            yield* Effect.yieldNow
            if (i === failAt) return yield* Effect.fail("boom")
            return i
          })
        })
        const exit = yield* Effect.exit(pool.runAll(jobs, {
          retry: { schedule: Schedule.spaced("1 hour"), while: (error) => error === "retry-me" }
        }))
        assert.isTrue(Exit.isFailure(exit) && Cause.hasFails(exit.cause), "the batch fails")
        assert.isTrue(Exit.isFailure(exit) && Cause.squash(exit.cause) === "boom", "with the first failure")
        assert.isTrue(longStopped, "the job running since the start was interrupted")
        const s = yield* pool.stats
        assert.deepStrictEqual([s.running, s.queued, s.retrying], [0, 0, 0], "nothing left running or held")
        // the job held for its retry never runs again
        yield* TestClock.adjust("2 hours")
        assert.strictEqual(attemptsOfHeld, 1)
        assert.strictEqual(startedAfter, 0, "no job after the failure started")
        assert.strictEqual(s.succeeded, failAt - 2)
      }), 10_000)
  }
})

describe("ThreadPool.runAll: a task started from its offer whose thread crashes after the batch failed", () => {
  it.live("the batch fails, the crash ends that task, the pool replaces its thread and runs the next batch, and closes", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 1 })
      // A runs; B is offered to the thread, starts there as A ends and exits the thread at once
      // (before the main thread, blocked, reads A's answer); C is queued
      const batch = yield* Effect.forkChild(Effect.exit(pool.runAll(MarkOrSpin, [
        { mark: 1, millis: 300, spin: false },
        { mark: 3, millis: 0, spin: "exit" },
        { mark: 5, millis: 0, spin: false }
      ])))
      yield* waitFor(pool.stats, "A runs", { until: (s) => s.running === 1 })
      const cancelled = yield* Effect.suspend(() => {
        assert.isTrue(blockUntil(counters, 3, 20_000), "B started on its thread")
        // its thread is gone by now (or going): the batch's first failure comes before the crash is read
        blockPast(performance.now() + 200)
        return pool.cancel(3)
      })
      assert.isTrue(cancelled)
      const exit = yield* Fiber.join(batch).pipe(Effect.timeoutOption("20 seconds"))
      assert.isTrue(Option.isSome(exit) && Exit.isFailure(exit.value), "the batch failed")
      const s = yield* pool.stats
      assert.deepStrictEqual([s.running, s.queued, s.succeeded], [0, 0, 0])
      assert.strictEqual(Atomics.load(counters, 5), 0, "C never ran")
      const next = yield* pool.runAll(MarkOrSpin, [{ mark: 7, millis: 0, spin: false }, { mark: 9, millis: 0, spin: false }])
        .pipe(Effect.timeoutOption("20 seconds"))
      assert.deepStrictEqual(next, Option.some([7, 9]))
    }), 60_000)
})

describe("runAll nested in a job of the same pool, across sweeps", () => {
  it.effect("the outer batch's failure interrupts the inner batch, which stops its job running since its start (kept through the sweeps)", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 4, shutdownTimeout: 0 })
      const innerCount = 3_000
      let innerSucceeded = 0
      let innerLongStopped = false
      let innerStartedAfter = 0
      const enough = yield* Deferred.make<void>()
      const inner = Array.from({ length: innerCount }, (_, i): Effect.Effect<number> =>
        i === 0
          ? Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => void (innerLongStopped = true))))
          : Effect.gen(function*() {
            if (Deferred.isDoneUnsafe(enough)) innerStartedAfter++
            yield* Effect.yieldNow
            // past two sweeps (512 and 1,024 ended jobs): the outer batch fails
            if (++innerSucceeded === 1_600) yield* Deferred.succeed(enough, void 0)
            return i
          }))
      const outer: Array<Effect.Effect<number, unknown>> = [
        Effect.map(pool.runAll(inner), (results) => results.length),
        Effect.andThen(Deferred.await(enough), Effect.fail("boom"))
      ]
      const exit = yield* Effect.exit(pool.runAll(outer)).pipe(Effect.timeoutOption("10 seconds"))
      assert.isTrue(Option.isSome(exit), "the outer batch ended")
      assert.isTrue(Option.isSome(exit) && Exit.isFailure(exit.value) && Cause.squash(exit.value.cause) === "boom")
      assert.isTrue(innerLongStopped, "the inner job running since its batch started was interrupted")
      assert.isAtMost(innerStartedAfter, 2, "the inner batch stopped feeding")
      const s = yield* pool.stats
      assert.deepStrictEqual([s.running, s.queued, s.waiting], [0, 0, 0])
    }), 30_000)
})

describe("ThreadPool.runAll: a failure's cancel and the caller's interruption of the same batch", () => {
  it.live("both wait for the task started from its offer: it is stopped once, counted once, and the interruption returns at once", () =>
    Effect.gen(function*() {
      const { counters, pool } = yield* makePool({ threads: 1 })
      const batch = yield* Effect.forkChild(pool.runAll(Mark, [
        { mark: 1, millis: 300 },
        { mark: 3, millis: 20_000 },
        { mark: 5, millis: 0 }
      ]))
      yield* waitFor(pool.stats, "A runs", { until: (s) => s.running === 1 })
      yield* Effect.suspend(() => {
        assert.isTrue(blockUntil(counters, 3, 20_000), "B started on its thread")
        // the batch's first failure (C cancelled) and, before B has its slot, the caller's interruption
        return pool.cancel(3)
      })
      const interrupted = yield* Fiber.interrupt(batch).pipe(Effect.timeoutOption("10 seconds"))
      assert.isTrue(Option.isSome(interrupted), "the interruption returned (B was stopped)")
      const s = yield* waitFor(pool.stats, "B counted", { until: (s) => s.running === 0 && s.stopping === 0 })
      assert.isTrue(addsUp(s), JSON.stringify(s))
      assert.deepStrictEqual([s.submitted, s.succeeded, s.queued], [3, 0, 0])
      assert.strictEqual(s.interrupted, 3, "A, B and C, each once")
      assert.strictEqual(Atomics.load(counters, 5), 0, "C never ran")
      const again = yield* pool.runAll(Mark, [{ mark: 7, millis: 0 }]).pipe(Effect.timeoutOption("10 seconds"))
      assert.deepStrictEqual(again, Option.some([7]))
    }), 60_000)
})
