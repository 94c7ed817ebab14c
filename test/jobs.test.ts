import { assert, describe, it } from "@effect/vitest"
import { Cause, Context, Effect, Exit, Stream } from "effect"
import * as PoolError from "../src/PoolError.ts"
import * as WorkPool from "../src/WorkPool.ts"

class Greeting extends Context.Service<Greeting, string>()("test/Greeting") {}
const Level = Context.Reference<number>("test/Level", { defaultValue: () => 3 })

describe("what a job is", () => {
  // in Effect 4 a service key and a reference are Effects that are also functions: they must run as
  // Effects, not be called as `(resource, jobId) => Effect`
  it.effect("a Context.Service key used as a job runs as the Effect it is", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2 })
      assert.strictEqual(yield* pool.run(Greeting), "hello")
      const handle = yield* pool.submit(Greeting)
      assert.strictEqual(yield* handle.await, "hello")
      assert.deepStrictEqual(yield* pool.runAll([Greeting, Greeting]), ["hello", "hello"])
      const streamed = yield* Stream.runCollect(Stream.make(1, 2).pipe(WorkPool.mapStream(pool, () => Greeting)))
      assert.deepStrictEqual(Array.from(streamed), ["hello", "hello"])
    }).pipe(Effect.provideService(Greeting, "hello")))

  it.effect("a Context.Reference used as a job runs as the Effect it is", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2 })
      assert.strictEqual(yield* pool.run(Level), 3)
      assert.strictEqual(yield* pool.run(Level).pipe(Effect.provideService(Level, 7)), 7)
      assert.deepStrictEqual(yield* pool.runAll([Level, Level]), [3, 3])
    }))

  it.effect("a service key is still an Effect when handed back by shutdownNow", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, paused: true })
      yield* pool.submit(Greeting)
      const [unstarted] = yield* pool.shutdownNow
      assert.strictEqual(yield* unstarted!.effect, "hello")
    }).pipe(Effect.provideService(Greeting, "hello")))

  it.effect("a function job that returns something other than an Effect dies saying so", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const exit = yield* Effect.exit(pool.run((() => 42) as unknown as WorkPool.Job<number, never, never>))
      assert.isTrue(Exit.isFailure(exit) && Cause.hasDies(exit.cause))
      const defect = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
      assert.match(String(defect), /returned 42, not an Effect/)
      assert.strictEqual((yield* pool.stats).defects, 1)
    }))
})

describe("a job that is not an Effect (from JavaScript)", () => {
  it.effect("runAll with jobs that are not iterable fails with InvalidJob naming them (it died in Array.from)", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      for (const jobs of [undefined, null, 42, { length: 1 }]) {
        const error = yield* Effect.flip(pool.runAll(jobs as unknown as Iterable<Effect.Effect<number>>))
        assert.instanceOf(error, PoolError.InvalidJob, String(error))
        assert.strictEqual((error as PoolError.InvalidJob).field, "jobs")
      }
      assert.deepStrictEqual(yield* pool.runAll(new Set([Effect.succeed(1)])), [1])
      assert.strictEqual((yield* pool.stats).submitted, 1)
    }))

  const notJobs: ReadonlyArray<[string, unknown]> = [
    ["a Promise", Promise.resolve(1)],
    ["a number", 42],
    ["null", null],
    ["undefined", undefined],
    ["a plain object", { _tag: "Success", value: 1 }],
    // a function that cannot be called: it died with "Class constructor cannot be invoked without 'new'"
    ["a class that is not an Effect", class NotAJob {}]
  ]

  it.effect("a class is shown by its name, not its source", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      class NotAJob {
        method() {
          return "a long body the message should not carry"
        }
      }
      const error = yield* Effect.flip(pool.run(NotAJob as unknown as Effect.Effect<number>))
      assert.instanceOf(error, PoolError.InvalidJob)
      assert.strictEqual((error as PoolError.InvalidJob).value, "class NotAJob")
    }))

  for (const [what, value] of notJobs) {
    it.effect(`${what} fails run, submit, runAll and mapStream with InvalidJob, and is not counted`, () =>
      Effect.gen(function*() {
        const pool = yield* WorkPool.make({ concurrency: 1 })
        const job = value as Effect.Effect<number>
        const check = (error: unknown, field: string) => {
          assert.isTrue(PoolError.isPoolError(error))
          assert.instanceOf(error, PoolError.InvalidJob)
          const e = error as PoolError.InvalidJob
          assert.strictEqual(e.field, field)
          assert.match(e.message, /expected an Effect or a function \(resource, jobId\) => Effect/)
        }
        check(yield* Effect.flip(pool.run(job)), "job")
        check(yield* Effect.flip(pool.submit(job)), "job")
        // nothing of the batch runs: the whole batch is checked before the first job is submitted
        let ran = 0
        const counted = Effect.sync(() => ran++)
        check(yield* Effect.flip(pool.runAll([counted, job, counted])), "jobs[1]")
        assert.strictEqual(ran, 0)
        check(yield* Effect.flip(Stream.runCollect(Stream.make(1).pipe(WorkPool.mapStream(pool, () => job)))), "job")
        const stats = yield* pool.stats
        assert.strictEqual(stats.submitted, 0)
        assert.strictEqual(stats.defects, 0)
      }))
  }
})
