/**
 * Hostile checks of a job's one-Context context (its annotations a second layer of the Context that
 * holds its JobContext), its worker's observer and its deadline on the prototype.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Exit, Fiber, Layer, Logger, Option, References, Schedule } from "effect"
import { TestClock } from "effect/testing"
import { WorkPool } from "../src/index.ts"
import { Echo } from "./fixtures/tasks.ts"
import { addsUp, makeReleasingPool } from "./fixtures/pool.ts"
import { recordingTracer } from "./helpers.ts"
import { addLayer } from "../src/internal/jobContext.ts"

const Greeting = Context.Service<string>("test/job-context-hostile/Greeting")
const Level = Context.Reference<number>("test/job-context-hostile/Level", { defaultValue: () => 0 })

/** A logger that keeps each message with its annotations exactly as the fiber had them. */
const collecting = () => {
  const logged: Array<{ readonly message: unknown; readonly annotations: Record<string, unknown> }> = []
  const logger = Logger.make((options) =>
    void logged.push({
      message: options.message,
      annotations: { ...options.fiber.getRef(References.CurrentLogAnnotations) }
    })
  )
  return { logged, layer: Logger.layer([logger]) }
}

/** A Context's own fields, its overlays as [key, value] lists: what two Contexts made alike share. */
const shapeOf = (context: Context.Context<never>) => {
  const fields: Record<string, unknown> = {}
  for (const key of Object.keys(context)) {
    const value = (context as unknown as Record<string, unknown>)[key]
    if (key === "overlay") {
      const layers: Array<readonly [string, unknown]> = []
      for (let o = value as { key: string; value: unknown; parent: unknown } | undefined; o; o = o.parent as typeof o) {
        layers.push([o.key, o.value])
      }
      fields[key] = layers
    } else if (key === "cacheRoot") fields[key] = value === context ? "itself" : value
    else fields[key] = value
  }
  return fields
}

describe("a job's context, attacked", () => {
  it("a job's one Context is, field for field, what two Context.add calls make, at every depth (an Effect whose Context keeps more per add fails here)", () => {
    const services = Array.from({ length: 10 }, (_, i) => Context.Service<number>(`test/job-context-hostile/F${i}`))
    const info = { id: 1 } as unknown as WorkPool.JobContext
    for (let depth = 0; depth <= 10; depth++) {
      let submitter: Context.Context<any> = Context.add(Context.empty(), References.CurrentLogAnnotations, { a: 1 }) as Context.Context<any>
      for (let i = 0; i < depth; i++) submitter = Context.add(submitter, services[i]!, i)
      const annotations = { a: 1, jobId: 1 }
      const expected = Context.add(Context.add(submitter, WorkPool.JobContext, info), References.CurrentLogAnnotations, annotations)
      const made = addLayer(Context.add(submitter, WorkPool.JobContext, info), annotations)
      assert.deepStrictEqual(shapeOf(made), shapeOf(expected), `depth ${depth}`)
    }
  })

  it.effect("services, layers, annotations and References made inside a job stay in it; two jobs of one submitter never see each other's", () => {
    const { layer, logged } = collecting()
    return Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2 })
      const job = (tag: string) =>
        Effect.gen(function*() {
          const { id } = yield* WorkPool.JobContext
          const gate = yield* Deferred.make<void>()
          // a daemon fiber made before anything else: it keeps the job's context as it was
          const daemon = yield* Effect.forkDetach(
            Effect.andThen(Deferred.await(gate), Effect.all([References.CurrentLogAnnotations, WorkPool.JobContext]))
          )
          yield* Effect.log(`plain ${tag}`)
          const inner = yield* Effect.gen(function*() {
            yield* Effect.log(`inner ${tag}`)
            return [yield* Greeting, yield* Level, (yield* WorkPool.JobContext).id] as const
          }).pipe(
            Effect.annotateLogs({ inner: tag }),
            Effect.provideService(Level, 7),
            Effect.provide(Layer.succeed(Greeting, `hi ${tag}`)),
            Effect.withSpan(`span ${tag}`)
          )
          const updated = yield* Effect.updateContext(
            Effect.all([References.CurrentLogAnnotations, Level]),
            (context: Context.Context<never>) => Context.add(context, Level, 9)
          )
          yield* Deferred.succeed(gate, void 0)
          const [daemonAnnotations, daemonInfo] = yield* Fiber.join(daemon)
          // after the inner scopes closed: the job's own again
          return {
            id,
            inner,
            updated,
            daemon: [daemonAnnotations, daemonInfo.id] as const,
            after: [yield* References.CurrentLogAnnotations, yield* Level] as const
          }
        })
      const { spans, tracer } = recordingTracer()
      const [[a, b], submitter] = yield* Effect.gen(function*() {
        // submitted from this fiber's own context: the one a layer written in the wrong place would change
        const ha = yield* pool.submit(job("a"))
        const hb = yield* pool.submit(job("b"))
        const results = [yield* ha.await, yield* hb.await] as const
        yield* Effect.log("submitter")
        return [results, yield* Effect.all([References.CurrentLogAnnotations, WorkPool.JobContext, Level])] as const
      }).pipe(
        Effect.annotateLogs({ request: "r1" }),
        Effect.provideService(Level, 3),
        Effect.withTracer(tracer)
      )
      assert.deepStrictEqual([submitter[0], submitter[1].id, submitter[2]], [{ request: "r1" }, 0, 3])
      assert.deepStrictEqual(logged.find((l) => String(l.message) === "submitter")?.annotations, { request: "r1" })
      for (const [result, tag] of [[a, "a"], [b, "b"]] as const) {
        assert.deepStrictEqual(result.inner, [`hi ${tag}`, 7, result.id])
        assert.deepStrictEqual(result.updated, [{ request: "r1", jobId: result.id }, 9])
        assert.deepStrictEqual(result.daemon, [{ request: "r1", jobId: result.id }, result.id])
        assert.deepStrictEqual(result.after, [{ request: "r1", jobId: result.id }, 3])
        const mine = logged.filter((l) => String(l.message).endsWith(` ${tag}`))
        assert.deepStrictEqual(mine.map((l) => l.annotations), [
          { request: "r1", jobId: result.id },
          { request: "r1", jobId: result.id, inner: tag }
        ])
      }
      assert.notStrictEqual(a.id, b.id)
      const jobSpans = spans.filter((s) => s.name === "workpool.job")
      assert.strictEqual(jobSpans.length, 2)
      for (const tag of ["a", "b"]) {
        const [inner] = spans.filter((s) => s.name === `span ${tag}`)
        const parent = jobSpans.find((s) => s.spanId === Option.getOrThrow(inner!.parent).spanId)!
        const id = tag === "a" ? a.id : b.id
        assert.strictEqual(parent.attributes.get("workpool.job.id"), id)
      }
      // the submitter: none of the jobs' services or annotations
      const outside = yield* Effect.all([References.CurrentLogAnnotations, WorkPool.JobContext, Level]).pipe(
        Effect.annotateLogs({ request: "r1" }),
        Effect.provideService(Level, 3)
      )
      assert.deepStrictEqual([outside[0], outside[1].id, outside[2]], [{ request: "r1" }, 0, 3])
    }).pipe(Effect.provide(layer))
  })

  it.effect("one submitter context, many jobs at each depth around the flattening point: no job's layer reaches another", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 3 })
      const services = Array.from({ length: 10 }, (_, i) => Context.Service<number>(`test/job-context-hostile/D${i}`))
      for (let depth = 5; depth <= 10; depth++) {
        const job = Effect.all([WorkPool.JobContext, References.CurrentLogAnnotations]).pipe(
          Effect.map(([info, annotations]) => [info.id, annotations] as const)
        )
        // the same submitter context for every job: Effect.all over the same fiber
        const results = yield* Effect.all(Array.from({ length: 6 }, () => pool.run(job)), { concurrency: 6 }).pipe(
          Effect.updateContext((context: Context.Context<never>) => {
            let deeper: Context.Context<any> = context as Context.Context<any>
            for (let i = 0; i < depth; i++) deeper = Context.add(deeper, services[i]!, i)
            return deeper
          }),
          Effect.annotateLogs({ depth })
        )
        for (const [id, annotations] of results) assert.deepStrictEqual(annotations, { depth, jobId: id })
        assert.strictEqual(new Set(results.map(([id]) => id)).size, 6)
      }
    }))

  it.effect("a retried job's attempts each see their own attempt number, and progress reported by any attempt reaches its handle", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const seen: Array<readonly [number, number, Record<string, unknown>]> = []
      const flaky = Effect.gen(function*() {
        const info = yield* WorkPool.JobContext
        seen.push([info.id, info.attempt, yield* References.CurrentLogAnnotations])
        // the first report of each attempt: the reporter is made lazily per attempt
        yield* info.progress(`attempt ${info.attempt}`)
        if (info.attempt < 3) return yield* Effect.fail("again")
        // the same function twice
        const { progress } = info
        assert.strictEqual(progress, info.progress)
        yield* progress("done")
        return info.attempt
      })
      const handle = yield* pool.submit(flaky, { retry: { times: 5, schedule: Schedule.spaced("10 millis") } }).pipe(
        Effect.annotateLogs({ user: "u" })
      )
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* handle.await, 3)
      assert.deepStrictEqual(yield* handle.progress, Option.some("done"))
      assert.deepStrictEqual(seen.map(([, attempt]) => attempt), [1, 2, 3])
      for (const [id, , annotations] of seen) assert.deepStrictEqual(annotations, { user: "u", jobId: id })
      assert.strictEqual(new Set(seen.map(([id]) => id)).size, 1)
    }))
})

describe("a worker's observer, attacked", () => {
  it.effect("an uninterruptible job that outlives its timeout and is retried, beside a resize down and jobs that take its worker's turns", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 3 })
      const starts: Array<number> = []
      const stubborn = Effect.gen(function*() {
        const { attempt } = yield* WorkPool.JobContext
        starts.push(attempt)
        yield* Effect.uninterruptible(Effect.sleep("50 millis"))
        if (attempt < 2) return yield* Effect.fail("again")
        return "stubborn"
      })
      const s = yield* pool.submit(stubborn, { timeout: "20 millis", retry: { times: 3 } })
      const handles = []
      for (let i = 0; i < 30; i++) handles.push(yield* pool.submit(Effect.as(Effect.sleep(`${i % 5 + 1} millis`), i)))
      yield* TestClock.adjust("3 millis")
      // down to one worker while three jobs run: two retire as their jobs stop
      const resizing = yield* Effect.forkChild(pool.resize(1))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(resizing)
      const results = []
      for (const handle of handles) results.push(yield* handle.await)
      assert.deepStrictEqual(results, Array.from({ length: 30 }, (_, i) => i))
      const exit = yield* Effect.exit(s.await)
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.running, stats.queued, stats.workers], [0, 0, 1])
      assert.strictEqual(stats.succeeded + stats.failed + stats.timedOut, 31, JSON.stringify({ exit, stats, starts }))
    }))

  it.effect("shutdownNow while jobs of every kind run: each ends once, its worker's observer reports the right one", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 4 })
      const finalized: Array<number> = []
      const handles = []
      for (let i = 0; i < 4; i++) {
        const job = i === 0
          ? Effect.uninterruptible(Effect.as(Effect.sleep("30 millis"), i))
          : Effect.onExit(Effect.as(Effect.sleep("1 hour"), i), () => Effect.sync(() => void finalized.push(i)))
        handles.push(yield* pool.submit(job))
      }
      for (let i = 4; i < 8; i++) handles.push(yield* pool.submit(Effect.succeed(i)))
      yield* Effect.yieldNow
      const stopping = yield* Effect.forkChild(pool.shutdownNow)
      yield* TestClock.adjust("1 second")
      const unstarted = yield* Fiber.join(stopping)
      assert.strictEqual(unstarted.length, 4)
      assert.deepStrictEqual(finalized.sort(), [1, 2, 3])
      // the uninterruptible one ends when its region does, interrupted (Effect's rule), so PoolShutdown too
      for (const handle of handles.slice(0, 4)) {
        const exit = yield* Effect.exit(handle.await)
        assert.isTrue(Exit.isFailure(exit) && exit.cause.reasons[0]?._tag === "Fail", String(exit))
      }
      const stats = yield* pool.stats
      // the four never started are counted as interrupted too
      assert.deepStrictEqual([stats.running, stats.interrupted + stats.failed, stats.submitted], [0, 8, 8])
      assert.isTrue(addsUp(stats))
    }))

  it.live("a thread pool's traced jobs (on fibers here) and untraced ones (on no fiber) share slots with offers: each ends with its own result, under its own span", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeReleasingPool({ threads: 1, tasksPerThread: 2 })
      const { spans, tracer } = recordingTracer()
      const handles = []
      for (let i = 0; i < 40; i++) {
        const submit = pool.submit(Echo, `m${i}`)
        handles.push(yield* (i % 3 === 0 ? Effect.withTracer(submit, tracer) : submit))
      }
      for (let i = 0; i < 40; i++) assert.strictEqual(yield* handles[i]!.await, `echo m${i}`)
      const jobSpans = spans.filter((s) => s.name === "workpool.job")
      assert.deepStrictEqual(
        jobSpans.map((s) => s.attributes.get("workpool.job.id")).sort((a, b) => Number(a) - Number(b)),
        handles.filter((_, i) => i % 3 === 0).map((h) => h.id)
      )
      for (const span of jobSpans) assert.strictEqual(span.attributes.get("workpool.job.ending"), "succeeded")
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.succeeded, stats.running], [40, 0])
    }))
})

describe("a job's deadline on the prototype, attacked", () => {
  it.effect("a job given its deadlines later (a retry's hold, then its queue timeout while a rate limit set after it started holds it) ends with the right timeout; jobs without one are untouched", () =>
    Effect.gen(function*() {
      // a loose limit from the start, so that the tighter one set later counts the starts made
      const pool = yield* WorkPool.make({ concurrency: 2, rateLimit: { limit: 100, interval: "1 hour" } })
      const attempts: Array<number> = []
      const flaky = Effect.gen(function*() {
        const { attempt } = yield* WorkPool.JobContext
        attempts.push(attempt)
        return yield* Effect.fail(`failed ${attempt}`)
      })
      // starts at once (a running deadline of 100 ms, cleared as it stops), fails, is held 10 ms,
      // then queued with a queue deadline of 30 ms
      const job = yield* pool.submit(flaky, {
        timeout: "100 millis",
        queueTimeout: "30 millis",
        retry: { times: 3, schedule: Schedule.spaced("10 millis") }
      })
      const plain = yield* pool.submit(Effect.as(Effect.sleep("5 millis"), "plain"))
      assert.isFalse(Object.hasOwn(plain, "deadline"))
      // two starts made already: a limit of 2 an hour holds the retry in the queue from 10 ms
      yield* pool.setRateLimit({ limit: 2, interval: "1 hour" })
      yield* TestClock.adjust("39 millis")
      assert.strictEqual(yield* job.status, "queued")
      yield* TestClock.adjust("1 millis")
      const error = yield* Effect.flip(job.await)
      assert.deepStrictEqual(attempts, [1])
      if (typeof error === "string" || error._tag !== "JobTimeout") return assert.fail(`not a JobTimeout: ${String(error)}`)
      assert.deepStrictEqual([error.phase, error.millis], ["queued", 30])
      assert.strictEqual(yield* plain.await, "plain")
      // a job with no deadline held by the limit: never times out, starts once the limit goes
      const held = yield* pool.submit(Effect.succeed("held"))
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(yield* held.status, "queued")
      assert.strictEqual((held as unknown as { deadline: unknown }).deadline, undefined)
      yield* pool.setRateLimit(undefined)
      assert.strictEqual(yield* held.await, "held")
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.succeeded, stats.timedOut, stats.running, stats.queued], [2, 1, 0, 0])
      assert.isTrue(addsUp(stats))
    }))
})
