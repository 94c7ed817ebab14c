/**
 * `run`, `submit` and `handle.await` are small Effect objects the calling fiber evaluates
 * (`Effectable.Prototype`), and `Effect.sync`/`Effect.promise` jobs run on no fiber of their own:
 * each test here uses them as a caller might in an odd way (the same value run twice, `runSync`,
 * re-entrant calls from inside a job, an interrupted or many awaiters, values thrown that are not
 * Errors) and checks the pool's accounting and the caller's fiber and context.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Context, Deferred, Effect, Exit, Fiber, Tracer } from "effect"
import { TestClock } from "effect/testing"
import { WorkPool } from "../src/index.ts"
import { recordingTracer, settle } from "./helpers.ts"

const counts = (s: WorkPool.PoolStats) => ({
  submitted: s.submitted,
  succeeded: s.succeeded,
  failed: s.failed,
  defects: s.defects,
  interrupted: s.interrupted,
  timedOut: s.timedOut,
  dropped: s.dropped,
  running: s.running,
  queued: s.queued,
  waiting: s.waiting
})

class Tag extends Context.Service<Tag, string>()("test/Tag") {}

describe("WorkPool run, submit and await as Effect values, used oddly", () => {
  it.effect("the same submit and run values yielded twice make two jobs", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2 })
      let n = 0
      const sub = pool.submit(Effect.sync(() => ++n))
      const h1 = yield* sub
      const h2 = yield* sub
      assert.notStrictEqual(h1.id, h2.id)
      assert.deepStrictEqual([yield* h1.await, yield* h2.await], [1, 2])
      const run = pool.run(Effect.sync(() => ++n))
      assert.deepStrictEqual(yield* Effect.all([run, run, run], { concurrency: "unbounded" }), [3, 4, 5])
      assert.strictEqual((yield* pool.stats).submitted, 5)
      // one value, run by fibers with different services: each job gets its own caller's
      const tagged = pool.run(Effect.map(Tag, (tag) => tag))
      assert.deepStrictEqual(
        yield* Effect.all([Effect.provideService(tagged, Tag, "one"), Effect.provideService(tagged, Tag, "two")], {
          concurrency: "unbounded"
        }),
        ["one", "two"]
      )
    }))

  it.effect("runSync of run/submit, and run from inside an Effect.sync job", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2 })
      assert.strictEqual(Effect.runSync(pool.run(Effect.sync(() => 5))), 5)
      const h = Effect.runSync(pool.submit(Effect.sync(() => 6)))
      assert.strictEqual(Effect.runSync(h.await), 6)
      // re-entrant: the inner runs inline on the second worker
      const nested = yield* pool.run(Effect.sync(() => Effect.runSync(pool.run(Effect.sync(() => 7))) + 1))
      assert.strictEqual(nested, 8)
      const fiber = Fiber.getCurrent()
      assert.isDefined(fiber)
      // no worker free for the inner: runSync throws (the outer job's defect) and leaves the inner
      // queued (Effect's runSync does not interrupt what it could not finish): it runs next
      const pool1 = yield* WorkPool.make({ concurrency: 1 })
      const exit = yield* Effect.exit(pool1.run(Effect.sync(() => Effect.runSync(pool1.run(Effect.sync(() => 7))))))
      assert.isTrue(Exit.isFailure(exit) && Cause.hasDies(exit.cause))
      assert.strictEqual(Fiber.getCurrent(), fiber)
      yield* settle
      const s = yield* pool1.stats
      assert.deepStrictEqual(counts(s), {
        submitted: 2, succeeded: 1, failed: 0, defects: 1, interrupted: 0, timedOut: 0, dropped: 0, running: 0, queued: 0, waiting: 0
      })
    }))

  it.effect("an Effect.sync job that shuts the pool down at once / gracefully", () =>
    Effect.gen(function*() {
      for (const how of ["now", "graceful"] as const) {
        const pool = yield* WorkPool.make({ concurrency: 2, shutdownTimeout: 0 })
        const gate = yield* Deferred.make<void>()
        const blocked = yield* pool.submit(Deferred.await(gate))
        const queued = yield* pool.submit(Effect.sync(() => "queued"))
        const r = yield* Effect.exit(pool.run(Effect.sync(() => {
          if (how === "now") Effect.runFork(pool.shutdownNow)
          else Effect.runFork(pool.shutdown)
          return "self"
        })))
        yield* settle
        yield* Deferred.succeed(gate, undefined)
        yield* settle
        yield* TestClock.adjust("1 second")
        const s = yield* pool.stats
        const ended = s.succeeded + s.failed + s.defects + s.interrupted + s.timedOut + s.dropped + s.rejected
        assert.strictEqual(ended, s.submitted, `${how}: ${JSON.stringify(counts(s))} ${String(r)}`)
        assert.strictEqual(s.state, "stopped", how)
        yield* Effect.exit(blocked.await)
        yield* Effect.exit(queued.await)
      }
    }))

  it.effect("the job sees the submitter's services and span", () =>
    Effect.gen(function*() {
      const { spans, tracer } = recordingTracer()
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const seen = yield* pool.run(Effect.gen(function*() {
        const tag = yield* Tag
        const span = yield* Effect.currentSpan
        return [tag, span.parent._tag === "Some" ? (span.parent.value as Tracer.Span).name : "none"]
      })).pipe(Effect.withSpan("outer"), Effect.provideService(Tag, "mine"), Effect.withTracer(tracer))
      assert.deepStrictEqual(seen, ["mine", "outer"])
      const job = spans.find((s) => s.name === "workpool.job")!
      assert.strictEqual(job.parent._tag === "Some" ? (job.parent.value as Tracer.Span).name : "none", "outer")
      // submit from one span, await from another: the job's parent is the submitter's
      const h = yield* pool.submit(Effect.currentSpan).pipe(Effect.withSpan("submitter"), Effect.withTracer(tracer))
      const inner = yield* Effect.withSpan(h.await, "awaiter").pipe(Effect.withTracer(tracer))
      assert.strictEqual(inner.name, "workpool.job")
      const js = spans.filter((s) => s.name === "workpool.job")[1]!
      assert.strictEqual(js.parent._tag === "Some" ? (js.parent.value as Tracer.Span).name : "none", "submitter")
    }))

  it.effect("an awaited handle from 50 fibers, 25 interrupted; after the end and after shutdown", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, shutdownTimeout: 0 })
      const gate = yield* Deferred.make<void>()
      const h = yield* pool.submit(Effect.as(Deferred.await(gate), 42))
      const aw = h.await
      const fibers = yield* Effect.forEach(Array.from({ length: 50 }), () => Effect.forkChild(aw))
      yield* settle
      yield* Effect.forEach(fibers.filter((_, i) => i % 2 === 0), Fiber.interrupt)
      yield* Deferred.succeed(gate, undefined)
      const results = yield* Effect.forEach(fibers.filter((_, i) => i % 2 === 1), Fiber.join)
      assert.isTrue(results.every((r) => r === 42))
      assert.strictEqual(yield* aw, 42)
      const queued1 = yield* pool.submit(Effect.never)
      const queued2 = yield* pool.submit(Effect.succeed(1))
      const w = yield* Effect.forkChild(queued2.await)
      yield* settle
      const unstarted = yield* pool.shutdownNow
      assert.strictEqual(unstarted.length, 1)
      const e2 = yield* Fiber.await(w)
      assert.isTrue(Exit.isFailure(e2))
      const e1 = yield* Effect.exit(queued1.await)
      assert.isTrue(Exit.isFailure(e1))
      // after shutdown: run and submit fail, not hang
      const after = yield* Effect.exit(pool.run(Effect.sync(() => 1)))
      assert.isTrue(Exit.isFailure(after), String(after))
      const afterSubmit = yield* Effect.exit(pool.submit(Effect.sync(() => 1)))
      assert.isTrue(Exit.isFailure(afterSubmit), String(afterSubmit))
    }))

  it.effect("the submitter interrupted by its own inline job: accounting holds, the caller ends", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const submitter = yield* Effect.forkChild(Effect.gen(function*() {
        const me = Fiber.getCurrent()!
        const r = yield* pool.run(Effect.sync(() => {
          me.interruptUnsafe()
          return 1
        }))
        const h = yield* pool.submit(Effect.sync(() => 2))
        return [r, h.id]
      }))
      const exit = yield* Fiber.await(submitter)
      const s = yield* pool.stats
      assert.deepStrictEqual(
        [s.submitted, s.succeeded + s.interrupted, s.running, s.queued],
        [s.submitted, s.submitted, 0, 0],
        `${String(exit)} ${JSON.stringify(counts(s))}`
      )
      // same for a promise job
      const submitter2 = yield* Effect.forkChild(Effect.gen(function*() {
        const me = Fiber.getCurrent()!
        return yield* pool.run(Effect.promise(() => {
          me.interruptUnsafe()
          return Promise.resolve(1)
        }))
      }))
      const exit2 = yield* Fiber.await(submitter2)
      yield* settle
      const s2 = yield* pool.stats
      assert.isTrue(Exit.isFailure(exit2) || Exit.isSuccess(exit2))
      assert.strictEqual(s2.running + s2.queued, 0, `${String(exit2)} ${JSON.stringify(counts(s2))}`)
    }))

  it.effect("a job that throws a non-Error, undefined, and one whose promise rejects with null", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const me = Fiber.getCurrent()
      for (const thrown of [undefined, null, "str", 0, { a: 1 }]) {
        const e = yield* Effect.exit(pool.run(Effect.sync(() => {
          throw thrown
        })))
        assert.isTrue(Exit.isFailure(e) && Cause.hasDies(e.cause))
        if (Exit.isFailure(e)) {
          const d = e.cause.reasons.find(Cause.isDieReason)
          assert.strictEqual(d?.defect, thrown)
        }
        assert.strictEqual(Fiber.getCurrent(), me)
        const p = yield* Effect.exit(pool.run(Effect.promise(() => Promise.reject(thrown))))
        assert.isTrue(Exit.isFailure(p) && Cause.hasDies(p.cause))
        assert.strictEqual(Fiber.getCurrent(), me)
      }
      assert.strictEqual((yield* pool.stats).defects, 10)
    }))

  it.effect("a backlog of synchronous jobs drains in turns: other fibers run between them", () =>
    Effect.gen(function*() {
      const n = 10_000
      const pool = yield* WorkPool.make({ concurrency: 1, capacity: n })
      const gate = yield* Deferred.make<void>()
      yield* pool.submit(Deferred.await(gate))
      let ran = 0
      const handles: Array<WorkPool.JobHandle<void, never>> = []
      for (let i = 0; i < n; i++) handles.push(yield* pool.submit(Effect.sync(() => void ran++)))
      // another fiber, looking between its turns at how many have run
      const seen: Array<number> = []
      const watcher = yield* Effect.forkChild(Effect.gen(function*() {
        while (ran < n) {
          seen.push(ran)
          yield* Effect.yieldNow
        }
      }))
      yield* settle
      // the blocker ends: the backlog starts, each job ending as it starts
      yield* Deferred.succeed(gate, undefined)
      yield* Effect.forEach(handles, (h) => h.await, { discard: true })
      yield* Fiber.join(watcher)
      const during = seen.filter((r) => r > 0 && r < n)
      assert.isAbove(during.length, 0, "the watcher saw the backlog only before and after it ran: all of it in one go")
      const s = yield* pool.stats
      assert.deepStrictEqual([s.succeeded, s.queued, s.running], [n + 1, 0, 0])
    }))
})
