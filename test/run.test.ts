import { assert, describe, it } from "@effect/vitest"
import { Cause, Context, Deferred, Effect, Exit, Fiber, Option, Schema, Tracer } from "effect"
import { TestClock } from "effect/testing"
import { type PoolError, WorkPool } from "../src/index.ts"
import { recordingTracer, settle } from "./helpers.ts"

class NotFound extends Schema.TaggedError<NotFound>()("NotFound", { id: Schema.Number }) {}
class Greeting extends Context.Service<Greeting, { readonly word: string }>()("test/Greeting") {}

describe("run", () => {
  it.effect("returns the job's success, and its own error unchanged", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2 })
      assert.strictEqual(yield* pool.run(Effect.succeed(42)), 42)
      const error = yield* Effect.flip(pool.run(Effect.fail(new NotFound({ id: 7 }))))
      assert.instanceOf(error, NotFound)
      assert.deepStrictEqual(error, new NotFound({ id: 7 }))
    }))

  it.effect("keeps a defect as a defect, and the worker survives it", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const boom = new Error("boom")
      const exit = yield* Effect.exit(pool.run(Effect.die(boom)))
      assert.isTrue(Exit.isFailure(exit) && Cause.hasDies(exit.cause))
      assert.strictEqual(Exit.isFailure(exit) && Cause.squash(exit.cause), boom)
      const thrown = yield* Effect.exit(pool.run(Effect.sync(() => {
        throw new Error("thrown")
      })))
      assert.isTrue(Exit.isFailure(thrown) && Cause.hasDies(thrown.cause))
      const fromFunction = yield* Effect.exit(pool.run((): Effect.Effect<void> => {
        throw new Error("thrown while making the job")
      }))
      assert.isTrue(Exit.isFailure(fromFunction) && Cause.hasDies(fromFunction.cause))
      assert.strictEqual(yield* pool.run(Effect.succeed("still works")), "still works")
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.defects, stats.succeeded, stats.workers], [3, 1, 1])
    }))

  it.effect("a job that interrupts itself is reported as interrupted, not as a failure", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const exit = yield* Effect.exit(pool.run(Effect.interrupt))
      assert.isTrue(Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause))
      assert.strictEqual((yield* pool.stats).interrupted, 1)
    }))

  it.effect("runs the job with the caller's services and span as parent", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2 })
      const job = Effect.gen(function*() {
        const greeting = yield* Greeting
        const span = yield* Effect.currentParentSpan
        return [greeting.word, span._tag === "Span" ? span.name : "none"] as const
      })
      const result = yield* pool.run(job).pipe(
        Effect.withSpan("caller"),
        Effect.provideService(Greeting, { word: "hello" })
      )
      assert.deepStrictEqual(result, ["hello", "caller"])
      const { spans, tracer } = recordingTracer()
      yield* pool.run(Effect.void.pipe(Effect.withSpan("job"))).pipe(Effect.withSpan("request"), Effect.withTracer(tracer))
      // the pool's own span for the job sits between the caller's and the job's
      const [request, poolSpan, jobSpan] = spans
      assert.deepStrictEqual(spans.map((s) => s.name), ["request", "workpool.job", "job"])
      assert.strictEqual(Option.getOrThrow(poolSpan!.parent).spanId, request!.spanId)
      assert.strictEqual(Option.getOrThrow(jobSpan!.parent).spanId, poolSpan!.spanId)
    }))

  it.effect("interrupting the caller removes a queued job", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const gate = yield* Deferred.make<void>()
      yield* pool.submit(Deferred.await(gate))
      let ran = false
      const caller = yield* Effect.forkChild(pool.run(Effect.sync(() => (ran = true))))
      yield* settle
      assert.strictEqual((yield* pool.stats).queued, 1)
      yield* Fiber.interrupt(caller)
      assert.strictEqual((yield* pool.stats).queued, 0)
      yield* Deferred.succeed(gate, undefined)
      yield* pool.awaitIdle
      assert.isFalse(ran)
      assert.strictEqual((yield* pool.stats).interrupted, 1)
    }))

  it.effect("interrupting the caller interrupts a running job, runs its finalizers and frees the slot", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const finalized = yield* Deferred.make<void>()
      const caller = yield* Effect.forkChild(
        pool.run(Effect.never.pipe(Effect.ensuring(Deferred.succeed(finalized, undefined))))
      )
      yield* settle
      assert.strictEqual((yield* pool.stats).running, 1)
      yield* Fiber.interrupt(caller)
      // Fiber.interrupt returned: the job's finalizer has already run
      assert.isTrue(yield* Deferred.isDone(finalized))
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.running, stats.interrupted], [0, 1])
      assert.strictEqual(yield* pool.run(Effect.succeed("next")), "next")
    }))

  it.effect("jobs of different types share one pool and keep their types", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2 })
      const n: number = yield* pool.run(Effect.succeed(1))
      const s: string = yield* pool.run(Effect.succeed("a"))
      const e: NotFound | PoolError.JobError = yield* Effect.flip(pool.run(Effect.fail(new NotFound({ id: 1 }))))
      assert.deepStrictEqual([n, s, e._tag], [1, "a", "NotFound"])
    }))

  it.effect("a sequential loop of many jobs does not grow the stack", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      let sum = 0
      for (let i = 0; i < 20_000; i++) sum += yield* pool.run(Effect.succeed(1))
      assert.strictEqual(sum, 20_000)
      const results = yield* pool.runAll(Array.from({ length: 50_000 }, (_, i) => Effect.succeed(i)))
      assert.strictEqual(results[49_999], 49_999)
      const async = yield* Effect.forkChild(pool.runAll(Array.from({ length: 5_000 }, () => Effect.sleep(1))))
      yield* TestClock.adjust(5_000)
      assert.strictEqual((yield* Fiber.join(async)).length, 5_000)
    }))
})
