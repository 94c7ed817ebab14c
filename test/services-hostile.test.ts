/**
 * Hostile checks of the pools as services of real Effect applications: built by layers (shared,
 * fresh, failing), run from plain code through a `ManagedRuntime`, used past their scope, and jobs
 * that read their submitter's References or open scopes of their own.
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { Cause, Context, Deferred, Effect, Exit, Fiber, Layer, Logger, ManagedRuntime, References, Schema } from "effect"
import { TestClock } from "effect/testing"
import { JobQueue, PoolError, Task, WorkPool } from "../src/index.ts"
import * as JobStore from "../src/JobStore.ts"
import * as ThreadPool from "../src/ThreadPool.ts"
import { SeenReferences } from "./fixtures/observe-tasks.ts"

class Pool extends WorkPool.Service<Pool>()("test/services-hostile/Pool", { concurrency: 2, shutdownTimeout: "1 second" }) {}

describe("a pool in a ManagedRuntime called from plain code", () => {
  it.live("dispose while many callers wait: every call settles, dispose twice resolves, a call after it rejects", () =>
    Effect.promise(async () => {
      const runtime = ManagedRuntime.make(Pool.layer)
      const started = Deferred.makeUnsafe<void>()
      let starts = 0
      const job = Effect.suspend(() => {
        if (++starts === 2) Deferred.doneUnsafe(started, Exit.void)
        return Effect.never
      })
      const calls = Array.from({ length: 200 }, () => runtime.runPromiseExit(Effect.flatMap(Pool, (pool) => pool.run(job))))
      await runtime.runPromise(Deferred.await(started))
      await Promise.all([runtime.dispose(), runtime.dispose()])
      const exits = await Promise.all(calls)
      assert.isTrue(exits.every((exit) => Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)))
      const after = await runtime.runPromiseExit(Effect.flatMap(Pool, (pool) => pool.run(Effect.succeed(1))))
        .then((exit) => Exit.isFailure(exit), () => true)
      assert.isTrue(after)
      assert.strictEqual(starts, 2)
    }))
  it.live("a job that disposes its pool's runtime, forked as the README says: its caller is answered, the runtime disposed, the pool stopped", () =>
    Effect.promise(async () => {
      const runtime: ManagedRuntime.ManagedRuntime<Pool, PoolError.InvalidPoolConfig> = ManagedRuntime.make(Pool.layer)
      const pool = await runtime.runPromise(Pool)
      const answer = await runtime.runPromise(pool.run(Effect.as(Effect.forkDetach(runtime.disposeEffect), "bye")))
      assert.strictEqual(answer, "bye")
      await runtime.dispose()
      assert.strictEqual((await Effect.runPromise(pool.stats)).state, "stopped")
    }))
})

describe("pool layers", () => {
  it.effect("one pool layer used by two layers is one pool; Layer.fresh makes another, and each closes with its layer", () =>
    Effect.gen(function*() {
      const A = Context.Service<{ readonly pool: WorkPool.WorkPool }>("test/services-hostile/A")
      const B = Context.Service<{ readonly pool: WorkPool.WorkPool }>("test/services-hostile/B")
      const a = Layer.effect(A, Effect.map(Pool, (pool) => ({ pool })))
      const b = Layer.effect(B, Effect.map(Pool, (pool) => ({ pool })))
      const shared = yield* Effect.scoped(Effect.gen(function*() {
        const context = yield* Layer.build(Layer.mergeAll(a, b).pipe(Layer.provide(Pool.layer)))
        const [pa, pb] = [Context.get(context, A).pool, Context.get(context, B).pool]
        assert.strictEqual(pa, pb)
        return pa
      }))
      assert.strictEqual((yield* shared.stats).state, "stopped")
      const fresh = yield* Effect.scoped(Effect.gen(function*() {
        const context = yield* Layer.build(Layer.mergeAll(a.pipe(Layer.provide(Layer.fresh(Pool.layer))), b.pipe(Layer.provide(Layer.fresh(Pool.layer)))))
        const [pa, pb] = [Context.get(context, A).pool, Context.get(context, B).pool]
        assert.notStrictEqual(pa, pb)
        assert.notStrictEqual(pa.name, pb.name)
        return [pa, pb]
      }))
      for (const pool of fresh) assert.strictEqual((yield* pool.stats).state, "stopped")
    }))

  it.effect("a pool layer with a bad option fails a bigger app's build with InvalidPoolConfig naming it; what was built is released", () =>
    Effect.gen(function*() {
      class Bad extends WorkPool.Service<Bad>()("test/services-hostile/Bad", { concurrency: 2, capacity: -1 }) {}
      const Db = Context.Service<string>("test/services-hostile/Db")
      let released = false
      const db = Layer.effect(Db, Effect.acquireRelease(Effect.succeed("db"), () => Effect.sync(() => void (released = true))))
      const app = Layer.mergeAll(db, Bad.layer)
      const error = yield* Effect.flip(Effect.scoped(Layer.build(app)))
      assert.instanceOf(error, PoolError.InvalidPoolConfig)
      assert.strictEqual((error as PoolError.InvalidPoolConfig).field, "capacity")
      assert.isTrue(released)
    }))

  it.effect("a named pool's layer provided twice, nested: one pool (Effect shares the layer); Layer.fresh inside: InvalidPoolConfig naming `name`", () =>
    Effect.gen(function*() {
      class Named extends WorkPool.Service<Named>()("test/services-hostile/Named", { concurrency: 1, name: "services-hostile-named" }) {}
      const both = (inner: Layer.Layer<Named, PoolError.InvalidPoolConfig>) =>
        Effect.flatMap(Named, (outer) => Effect.map(Effect.provide(Named, inner), (pool) => pool === outer)).pipe(Effect.provide(Named.layer))
      assert.isTrue(yield* both(Named.layer))
      const error = yield* Effect.flip(both(Layer.fresh(Named.layer)))
      assert.instanceOf(error, PoolError.InvalidPoolConfig)
      assert.strictEqual(error.field, "name")
      // the outer pool was released with its layer: the name is free again
      assert.isTrue(yield* both(Named.layer))
    }))
})

layer(Pool.layer)("a pool layer built by it.layer, on its TestClock", (it) => {
  /** The pool the first test saw (unset when it was filtered out). */
  let first: WorkPool.WorkPool | undefined
  it.effect("a job's timeout fires when the test adjusts the clock", () =>
    Effect.gen(function*() {
      const pool = first = yield* Pool
      const fiber = yield* Effect.forkChild(pool.run(Effect.never, { timeout: "1 minute" }))
      yield* TestClock.adjust("1 minute")
      const error = yield* Effect.flip(Fiber.join(fiber))
      assert.instanceOf(error, PoolError.JobTimeout)
    }))
  it.effect("a second test sees the same pool, running and idle", () =>
    Effect.gen(function*() {
      const pool = yield* Pool
      if (first !== undefined) assert.strictEqual(pool, first)
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.state, stats.running, stats.queued], ["running", 0, 0])
    }))
})

describe("context in fiber jobs", () => {
  it.effect("a job logs under its submitter's minimum log level, log level and annotations; a span around run is its parent", () =>
    Effect.gen(function*() {
      const logged: Array<{ level: string; message: unknown; annotations: Record<string, unknown> }> = []
      const logger = Logger.make((options) => void logged.push({
        level: options.logLevel,
        message: options.message,
        annotations: { ...options.fiber.getRef(References.CurrentLogAnnotations) }
      }))
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const job = Effect.gen(function*() {
        yield* Effect.logDebug("debug")
        yield* Effect.logWarning("warn")
        yield* Effect.log("default")
        return (yield* Effect.currentParentSpan).spanId
      })
      const spanId = yield* pool.run(job).pipe(
        Effect.annotateLogs({ requestId: "r1" }),
        Effect.withSpan("outer"),
        Effect.provideService(References.MinimumLogLevel, "Warn"),
        Effect.provideService(References.CurrentLogLevel, "Error"),
        Effect.provide(Logger.layer([logger]))
      )
      assert.deepStrictEqual(logged.map((l) => [l.level, l.message]), [["Warn", ["warn"]], ["Error", ["default"]]])
      assert.strictEqual(logged[0]!.annotations.requestId, "r1")
      assert.isNumber(logged[0]!.annotations.jobId)
      assert.isString(spanId)
    }))

  it.effect("Effect.scoped inside a job closes at the job's end; addFinalizer in a job run under the caller's scope runs when that scope closes", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const order: Array<string> = []
      yield* pool.run(Effect.scoped(Effect.addFinalizer(() => Effect.sync(() => void order.push("job scope")))))
      order.push("after run")
      yield* Effect.scoped(Effect.gen(function*() {
        yield* pool.run(Effect.addFinalizer(() => Effect.sync(() => void order.push("caller scope"))))
        order.push("after second run")
      }))
      assert.deepStrictEqual(order, ["job scope", "after run", "after second run", "caller scope"])
    }))
  it.effect("a submitted job that needs a Scope gets its submitter's (README): released under it when that scope closes first; Effect.scoped gives it its own", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const log: Array<string> = []
      const uses = (name: string) =>
        Effect.acquireRelease(Effect.sync(() => void log.push(`${name} open`)), () => Effect.sync(() => void log.push(`${name} closed`))).pipe(
          Effect.andThen(Effect.sleep(10)),
          Effect.andThen(Effect.sync(() => void log.push(`${name} used`)))
        )
      const handles = yield* Effect.scoped(Effect.gen(function*() {
        return [yield* pool.submit(uses("shared")), yield* pool.submit(Effect.scoped(uses("own")))]
      }))
      yield* TestClock.adjust(10)
      yield* TestClock.adjust(10)
      yield* Effect.forEach(handles, (handle) => handle.await)
      assert.deepStrictEqual(log, ["shared open", "shared closed", "shared used", "own open", "own used", "own closed"])
    }))

  it.effect("a fiber a job forks is interrupted (its finalizers run) when the job ends; one it detaches is its own and outlives the pool", () =>
    Effect.gen(function*() {
      const ends: Array<string> = []
      const detached = yield* Effect.scoped(Effect.gen(function*() {
        const pool = yield* WorkPool.make({ concurrency: 1 })
        return yield* pool.run(Effect.gen(function*() {
          const started = yield* Deferred.make<void>()
          yield* Effect.forkChild(Deferred.succeed(started, undefined).pipe(
            Effect.andThen(Effect.never),
            Effect.onInterrupt(() => Effect.sync(() => void ends.push("child")))
          ))
          const detached = yield* Effect.forkDetach(Effect.never, { startImmediately: true })
          yield* Deferred.await(started)
          return detached
        }))
      }))
      yield* Effect.yieldNow
      assert.deepStrictEqual(ends, ["child"])
      assert.isUndefined(detached.pollUnsafe())
      yield* Fiber.interrupt(detached)
    }))
})

describe("context in thread jobs", () => {
  it.live("a task sees none of its submitter's References but its jobId annotation: its log levels are the thread's (docs/threads.md)", () =>
    Effect.gen(function*() {
      const pool = yield* ThreadPool.make({ worker: new URL("./fixtures/observe-worker.ts", import.meta.url), threads: 1 })
      const seen = yield* pool.run(SeenReferences, 1).pipe(
        Effect.annotateLogs({ requestId: "r1" }),
        Effect.provideService(References.MinimumLogLevel, "Debug"),
        Effect.provideService(References.CurrentLogLevel, "Warn")
      )
      assert.deepStrictEqual(seen, { minimumLogLevel: "Info", currentLogLevel: "Info", annotations: ["jobId"] })
    }))
})

describe("context in durable handlers", () => {
  const Greet = Task.make("test/services-hostile/Greet", { payload: Schema.String, success: Schema.String })
  const Tenant = Context.Service<string>("test/services-hostile/Tenant")
  /** Moves the TestClock (a poll at a time) until these jobs have ended: awaited before, they would wait on a clock nobody moves. */
  const untilEnded = (ids: ReadonlyArray<string>) =>
    Effect.gen(function*() {
      for (let i = 0; i < 1_000; i++) {
        const states = yield* Effect.forEach(ids, (id) => Effect.map(JobQueue.status(id), (info) => info.state))
        if (states.every((state) => state === "succeeded" || state === "dead" || state === "cancelled")) return
        yield* TestClock.adjust(10)
      }
      assert.fail("the jobs did not end")
    })

  it.effect("a handler runs with its consumer's services, log level, minimum log level and annotations, beside its durable job id and queue", () =>
    Effect.gen(function*() {
      const logged: Array<{ level: string; annotations: Record<string, unknown> }> = []
      const logger = Logger.make((options) => void logged.push({
        level: options.logLevel,
        annotations: { ...options.fiber.getRef(References.CurrentLogAnnotations) }
      }))
      const handler = Task.handle(Greet, (name) =>
        Effect.gen(function*() {
          yield* Effect.logDebug("debug")
          return `${yield* Tenant}:${name}`
        }))
      const job = yield* JobQueue.enqueue(Greet, "ann", { queue: "greet" })
      yield* JobQueue.consume({ queues: ["greet"], handlers: [handler], concurrency: 1, poll: 10 }).pipe(
        Effect.annotateLogs({ consumer: "c1" }),
        Effect.provideService(References.MinimumLogLevel, "Debug"),
        Effect.provideService(Tenant, "acme"),
        Effect.provide(Logger.layer([logger]))
      )
      yield* untilEnded([job.id])
      assert.strictEqual(yield* job.await, "acme:ann")
      const debug = logged.find((l) => l.level === "Debug")
      assert.isDefined(debug)
      assert.deepStrictEqual(
        [debug!.annotations.consumer, debug!.annotations.jobId, debug!.annotations.queue],
        ["c1", job.id, "greet"]
      )
    }).pipe(Effect.provide(JobStore.memory())))

  it.effect("a handler's scoped resources (Effect.acquireRelease, addFinalizer) are released as its attempt ends, not kept by the consumer until it stops", () =>
    Effect.gen(function*() {
      let open = 0
      const handler = Task.handle(Greet, (name) =>
        Effect.acquireRelease(Effect.sync(() => ++open), () => Effect.sync(() => void open--)).pipe(
          Effect.andThen(name === "fail" ? Effect.die("boom") : Effect.succeed(name))
        ))
      yield* JobQueue.consume({ queues: ["scoped"], handlers: [handler], concurrency: 2, poll: 10 })
      const jobs = yield* Effect.forEach(["a", "b", "c", "fail"], (name) => JobQueue.enqueue(Greet, name, { queue: "scoped", maxAttempts: 1 }))
      yield* untilEnded(jobs.map((job) => job.id))
      assert.deepStrictEqual(yield* Effect.forEach(jobs, (job) => Effect.exit(job.await)).pipe(Effect.map((exits) => exits.map(Exit.isSuccess))), [true, true, true, false])
      // one resource per job was kept open until the consumer's scope closed (a leak per job in a long-running consumer)
      assert.strictEqual(open, 0)
    }).pipe(Effect.provide(JobStore.memory())))
})

describe("interruption around run and submit", () => {
  it.effect("Effect.timeout around a submit waiting for room: the job is never admitted, the pool goes on", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, capacity: 1 })
      const gate = yield* Deferred.make<void>()
      yield* pool.submit(Deferred.await(gate))
      yield* pool.submit(Effect.void)
      const timedOut = yield* Effect.flip(Effect.timeout(pool.submit(Effect.succeed("late")), "1 second").pipe(Effect.forkChild, Effect.tap(() => TestClock.adjust("1 second")), Effect.flatMap(Fiber.join)))
      assert.isTrue(Cause.isTimeoutError(timedOut))
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.waiting, stats.queued, stats.running], [0, 1, 1])
      yield* Deferred.succeed(gate, undefined)
      yield* pool.awaitIdle
      assert.deepStrictEqual([(yield* pool.stats).succeeded, (yield* pool.stats).submitted], [2, 3])
    }))

  it.effect("Effect.raceAll of jobs in one pool: the winner's value; the running loser and the queued one end interrupted, the pool idle", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2 })
      const started = yield* Deferred.make<void>()
      let starts = 0
      const interrupted: Array<number> = []
      const job = (i: number, millis: number) =>
        Effect.suspend(() => ++starts === 2 ? Deferred.succeed(started, undefined) : Effect.void).pipe(
          Effect.andThen(Effect.sleep(millis)),
          Effect.as(i),
          Effect.onInterrupt(() => Effect.sync(() => void interrupted.push(i)))
        )
      const fiber = yield* Effect.forkChild(Effect.raceAll([pool.run(job(0, 3000)), pool.run(job(1, 1000)), pool.run(job(2, 500))]))
      yield* Deferred.await(started)
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Fiber.join(fiber), 1)
      // job 2 was queued behind the two running ones: cancelled there, or (once job 1's slot freed)
      // started and interrupted; either way it ends interrupted and never returns its value
      assert.includeMembers(interrupted, [0])
      yield* pool.awaitIdle
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.succeeded, stats.interrupted, stats.running, stats.queued, stats.submitted], [1, 2, 0, 0, 3])
    }))
})
