/**
 * Hostile tests of callback jobs (Effect.promise, Effect.tryPromise, Effect.callback, Effect.never)
 * that the fiber executor may run without a fiber of their own: whatever runs a job, its outcome is
 * the one the job's own fiber would give.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Request, RequestResolver, Schedule, Scope } from "effect"
import { TestClock } from "effect/testing"
import { settle } from "./helpers.ts"
import { WorkPool } from "../src/index.ts"

class Double extends Request.Class<{ readonly n: number }, number> {}
const doubler = RequestResolver.make<Double>((entries) =>
  Effect.sync(() => {
    for (const entry of entries) entry.completeUnsafe(Exit.succeed(entry.request.n * 2))
  })
)

describe("callback jobs whose register needs their fiber", () => {
  it.effect("Effect.request (a callback primitive whose register reads the current fiber) runs as in a fiber", () =>
    Effect.gen(function*() {
      const direct = yield* Effect.request(new Double({ n: 21 }), doubler)
      const pool = yield* WorkPool.make({ concurrency: 2 })
      const pooled = yield* Effect.exit(pool.run(Effect.request(new Double({ n: 21 }), doubler)))
      assert.deepStrictEqual(pooled, Exit.succeed(direct))
      // a user's callback that reads its fiber, as Effect's own do
      const inFiber = yield* pool.run(Effect.callback<boolean>((resume) => {
        resume(Effect.succeed(Fiber.getCurrent() !== undefined))
      }))
      assert.isTrue(inFiber)
      assert.strictEqual((yield* pool.stats).defects, 0)
    }))
})

/** A promise the test resolves or rejects when it wants, and the signals its calls were given. */
const controlled = () => {
  const resolvers: Array<{ resolve: (n: number) => void; reject: (e: unknown) => void }> = []
  const signals: Array<AbortSignal> = []
  const f = (signal: AbortSignal) => {
    signals.push(signal)
    return new Promise<number>((resolve, reject) => resolvers.push({ resolve, reject }))
  }
  return { f, resolvers, signals }
}

/** The two ways a pool may run an `Effect.promise`: on no fiber (as is), in a fiber (behind a map). */
const kinds = {
  fiberless: (f: (signal: AbortSignal) => Promise<number>) => Effect.promise(f),
  inFiber: (f: (signal: AbortSignal) => Promise<number>) => Effect.map(Effect.promise(f), (n) => n)
}

/** Runs `scenario` with each kind of job and checks that both give the same observations. */
/** The same two ways for an `Effect.tryPromise` (its failure resumes with an Effect that is not an Exit). */
const tryKinds = {
  fiberless: (f: (signal: AbortSignal) => Promise<number>) => Effect.tryPromise({ try: f, catch: () => "caught" }),
  inFiber: (f: (signal: AbortSignal) => Promise<number>) =>
    Effect.map(Effect.tryPromise({ try: f, catch: () => "caught" }), (n) => n)
}

/** A way to run a promise's function as a job. */
type Kind = (f: (signal: AbortSignal) => Promise<number>) => Effect.Effect<number, unknown>
interface Ways {
  readonly fiberless: Kind
  readonly inFiber: Kind
}

const sameAsInFiber = <A>(scenario: (kind: Kind) => Effect.Effect<A, any, Scope.Scope>, ways: Ways = kinds) =>
  Effect.gen(function*() {
    const fiberless = yield* Effect.scoped(scenario(ways.fiberless))
    const inFiber = yield* Effect.scoped(scenario(ways.inFiber))
    assert.deepStrictEqual(fiberless, inFiber)
    return fiberless
  })

const statsOf = (pool: WorkPool.WorkPool) =>
  pool.stats

describe("callback jobs behave as their fiber would", () => {
  it.effect("accounting: stats, wait and run times under the TestClock", () =>
    Effect.gen(function*() {
      const observed = yield* sameAsInFiber((kind) =>
        Effect.gen(function*() {
          const pool = yield* WorkPool.make({ concurrency: 2, timeout: "10 seconds" })
          const { f, resolvers } = controlled()
          const handles = yield* Effect.forEach([0, 1, 2, 3], () => pool.submit(kind(f)))
          yield* TestClock.adjust("1 second")
          resolvers[0]!.resolve(1)
          resolvers[1]!.reject(new Error("boom"))
          yield* settle
          yield* TestClock.adjust("2 seconds")
          resolvers[2]!.resolve(3)
          yield* settle
          yield* TestClock.adjust("20 seconds")
          const statuses = yield* Effect.forEach(handles, (h) => h.status)
          return { statuses, stats: yield* statsOf(pool), calls: resolvers.length }
        })
      )
      assert.deepStrictEqual(observed.statuses, ["succeeded", "defect", "succeeded", "timedOut"])
    }))

  it.effect("shutdownNow: running ones end, their signals abort, late resolutions change nothing", () =>
    Effect.gen(function*() {
      const observed = yield* sameAsInFiber((kind) =>
        Effect.gen(function*() {
          const pool = yield* WorkPool.make({ concurrency: 2 })
          const { f, resolvers, signals } = controlled()
          const handles = yield* Effect.forEach([0, 1, 2], () => pool.submit(kind(f)))
          yield* settle
          const unstarted = yield* pool.shutdownNow
          const aborted = signals.map((s) => s.aborted)
          for (const r of resolvers) r.resolve(1)
          yield* settle
          const exits = yield* Effect.forEach(handles, (h) => Effect.exit(h.await))
          return {
            unstarted: unstarted.length,
            aborted,
            failures: exits.map((e) => Exit.isFailure(e) ? Cause.pretty(e.cause).split("\n")[0] : "success"),
            stats: yield* statsOf(pool)
          }
        })
      )
      assert.deepStrictEqual(observed.aborted, [true, true])
    }))

  it.effect("graceful shutdown past its deadline interrupts a pending promise job and aborts its signal", () =>
    Effect.gen(function*() {
      const observed = yield* sameAsInFiber((kind) =>
        Effect.gen(function*() {
          const pool = yield* WorkPool.make({ concurrency: 1, shutdownTimeout: "1 second" })
          const { f, resolvers, signals } = controlled()
          const handle = yield* pool.submit(kind(f))
          yield* settle
          const shutdown = yield* Effect.forkChild(pool.shutdown)
          yield* TestClock.adjust("1 second")
          yield* Fiber.join(shutdown)
          resolvers[0]!.resolve(1)
          yield* settle
          return { aborted: signals[0]!.aborted, status: yield* handle.status, stats: yield* statsOf(pool) }
        })
      )
      assert.isTrue(observed.aborted)
    }))

  it.effect("retried tryPromise: each attempt calls the function again with a fresh signal", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const signals: Array<AbortSignal> = []
      let calls = 0
      const result = yield* pool.run(
        Effect.tryPromise({
          try: (signal) => {
            signals.push(signal)
            return ++calls < 3 ? Promise.reject(new Error(`attempt ${calls}`)) : Promise.resolve(calls)
          },
          catch: (e) => (e as Error).message
        }),
        { retry: Schedule.recurs(5) }
      )
      assert.strictEqual(result, 3)
      assert.strictEqual(new Set(signals).size, 3)
      assert.isFalse(signals.some((s) => s.aborted))
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.succeeded, stats.failed, stats.running], [1, 0, 0])
    }))

  it.effect("a promise that settles after the pool's scope closed: the job ended interrupted, nothing runs late", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const pool = yield* Scope.provide(WorkPool.make({ concurrency: 1, shutdownTimeout: 0 }), scope)
      const { f, resolvers, signals } = controlled()
      const handle = yield* pool.submit(Effect.promise(f))
      yield* settle
      yield* Scope.close(scope, Exit.void)
      assert.isTrue(signals[0]!.aborted)
      resolvers[0]!.resolve(1)
      yield* settle
      assert.strictEqual(yield* handle.status, "interrupted")
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.succeeded, stats.interrupted, stats.running], [0, 1, 0])
    }))
})

describe("callback jobs whose function acts on the pool (reentrancy)", () => {
  const acting = (act: "cancel then throw" | "cancel then resolve" | "shutdownNow", ways: Ways = kinds) =>
    sameAsInFiber((kind) =>
      Effect.gen(function*() {
        const pool = yield* WorkPool.make({ concurrency: 2, shutdownTimeout: 0 })
        const context = yield* Effect.context<never>()
        const signals: Array<AbortSignal> = []
        const handle = yield* pool.submit((_, id) =>
          kind((signal) => {
            signals.push(signal)
            Effect.runForkWith(context)<unknown, never>(act === "shutdownNow" ? pool.shutdownNow : pool.cancel(id))
            if (act === "cancel then throw") throw new Error("thrown")
            return Promise.resolve(1)
          })
        )
        yield* settle
        const exit = yield* Effect.exit(handle.await)
        const stats = yield* pool.stats
        return {
          status: yield* handle.status,
          exit: Exit.isSuccess(exit) ? "success" : Cause.hasDies(exit.cause) ? "defect" : Cause.pretty(exit.cause).split("\n")[0],
          aborted: signals.map((s) => s.aborted),
          counts: [stats.succeeded, stats.failed, stats.defects, stats.interrupted, stats.running]
        }
      }), ways)

  it.effect("it cancels its own job, then throws", () => acting("cancel then throw"))
  it.effect("it cancels its own job, then returns a resolved promise", () => acting("cancel then resolve"))
  it.effect("it shuts the pool down at once", () => acting("shutdownNow"))
  // a tryPromise whose function throws resumes during its register, and with an Effect that is not
  // an Exit (its catch, run in a fiber): the cancel asked meanwhile finds the job ended as it
  // started, with its catch's failure, on no fiber as in one (a job's fiber that ends as it starts
  // ends before its cancel reaches it: fiberExecutor's startFiber)
  it.effect("tryPromise: it cancels its own job, then throws", () =>
    Effect.gen(function*() {
      const observed = yield* acting("cancel then throw", tryKinds)
      assert.deepStrictEqual([observed.status, observed.exit, observed.counts], ["failed", "Error: caught", [0, 1, 0, 0, 0]])
    }))
  it.effect("tryPromise: it cancels its own job, then returns a resolved promise", () => acting("cancel then resolve", tryKinds))
  it.effect("tryPromise: it shuts the pool down at once", () => acting("shutdownNow", tryKinds))

  it.effect("it cancels its own job, throws, and its catch goes on waiting: the cancel stops it", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, shutdownTimeout: 0 })
      const context = yield* Effect.context<never>()
      const handle = yield* pool.submit((_, id) =>
        Effect.tryPromise({
          try: () => {
            Effect.runForkWith(context)(pool.cancel(id))
            throw new Error("thrown")
          },
          catch: () => "caught"
        }).pipe(Effect.catch(() => Effect.never))
      )
      yield* settle
      assert.strictEqual(yield* handle.status, "interrupted")
      assert.isTrue(Exit.hasInterrupts(yield* Effect.exit(handle.await)))
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.interrupted, stats.failed, stats.running], [1, 0, 0])
    }))
})

describe("the callback primitives run on no fiber are the ones reviewed", () => {
  // On an Effect upgrade that changes these registers, this fails: check that the new ones still read
  // nothing of their fiber (job.ts, asCallback), then update the text. Until then they run on no fiber.
  it("Effect.promise's and Effect.tryPromise's registers are Effect 4.1.0's", () => {
    const sourceOf = (effect: unknown) => String((effect as { readonly register: unknown }).register)
    assert.strictEqual(
      sourceOf(Effect.promise(() => Promise.resolve())),
      "function (resume, signal) {\n  evaluate(signal).then(a => resume(succeed(a)), e => resume(die(e)));\n}"
    )
    assert.strictEqual(
      sourceOf(Effect.tryPromise(() => Promise.resolve())),
      "function (resume, signal) {\n    // Defer the catcher until the fiber restores its async context.\n    const failWithCatch = cause => suspend(() => {\n      try {\n        return fail(internalCall(() => catcher(cause)));\n      } catch (err) {\n        return die(err);\n      }\n    });\n    try {\n      f(signal).then(a => resume(succeed(a)), e => resume(failWithCatch(e)));\n    } catch (err) {\n      resume(failWithCatch(err));\n    }\n  }"
    )
  })
})
