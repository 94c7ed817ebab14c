/**
 * Hostile checks of a job's one-Context context (its annotations a second layer of the Context that
 * holds its JobContext), its worker's observer and its deadline on the prototype.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Exit, Fiber, Layer, Logger, Option, References, Schedule, Tracer } from "effect"
import { TestClock } from "effect/testing"
import { WorkPool } from "../src/index.ts"
import { Echo, Progress } from "./fixtures/tasks.ts"
import { addsUp, makeReleasingPool } from "./fixtures/pool.ts"
import { fullGc, recordingTracer } from "./helpers.ts"
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

/** Services overridden and added at random by the submitters below. */
const Keys = Array.from({ length: 5 }, (_, i) => Context.Service<string>(`test/job-context-hostile/K${i}`))
const JOB_KEYS = new Set([WorkPool.JobContext.key, References.CurrentLogAnnotations.key])

/** A deterministic generator of small integers (a linear congruential one), seeded per case. */
const seeded = (seed: number) => {
  let s = seed >>> 0
  return (n: number) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return (s >>> 8) % n
  }
}

/** `layers` random layers around `effect`: services new and overridden, annotations, spans and the fiber-cached log levels. */
const layered = <A, E, R>(effect: Effect.Effect<A, E, R>, next: (n: number) => number, layers: number, tag: string) => {
  let wrapped: Effect.Effect<A, E, any> = effect
  for (let i = 0; i < layers; i++) {
    const value = `${tag}.${i}`
    switch (next(6)) {
      case 0:
      case 1:
        wrapped = Effect.provideService(wrapped, Keys[next(Keys.length)]!, value)
        break
      case 2:
        wrapped = Effect.annotateLogs(wrapped, { [`a${next(3)}`]: value })
        break
      case 3:
        wrapped = Effect.withSpan(wrapped, `span ${value}`)
        break
      case 4:
        wrapped = Effect.provideService(wrapped, References.MinimumLogLevel, next(2) === 0 ? "Debug" : "Warn")
        break
      default:
        wrapped = Effect.provideService(wrapped, References.CurrentLogLevel, next(2) === 0 ? "Error" : "Debug")
    }
  }
  return wrapped as Effect.Effect<A, E, R>
}

/** A context's services as a plain Map, without the two a job adds. */
const servicesOf = (context: Context.Context<never>) => {
  const map = new Map(context.mapUnsafe)
  for (const key of JOB_KEYS) map.delete(key)
  return map
}

/** What a job saw of its own context and its fiber's cache, beside what it should have. */
interface Seen {
  readonly id: number
  readonly services: Map<string, unknown>
  readonly annotations: Record<string, unknown>
  readonly cacheRight: boolean
  readonly inner: ReadonlyArray<{ readonly submitter: Context.Context<never>; readonly seen: Seen; readonly handleId: number }>
}

/** Whether a fiber's cached span, tracer and log levels are those of its context (what Effect computes from its cacheRoot). */
const cacheMatches = (fiber: Fiber.Fiber<unknown, unknown>): boolean => {
  const context = fiber.context
  const cache = (fiber as unknown as { readonly cache: Record<string, unknown> }).cache
  return cache.span === Context.getOrUndefined(context, Tracer.ParentSpan) &&
    cache.minimumLogLevel === Context.get(context, References.MinimumLogLevel) &&
    cache.logLevel === Context.get(context, References.CurrentLogLevel) &&
    cache.tracerEnabled === Context.get(context, References.TracerEnabled)
}

describe("a job's context from a deep submitter (withRoom), attacked", () => {
  it.effect("random submitters 0 to 12 layers deep (some of a maxDepth of 0 to 3), jobs of one submitter context side by side and jobs submitted from inside them: each sees exactly its submitter's services, its own JobContext and jobId, and a fiber cache of its own context", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 8, name: "outer" })
      const inner = yield* WorkPool.make({ concurrency: 4, name: "inner" })
      const targets = [pool, inner]
      let checked = 0
      const check = (submitter: Context.Context<never>, seen: Seen, handleId: number, label: string) => {
        checked++
        assert.strictEqual(seen.id, handleId, `${label}: its own JobContext`)
        assert.deepStrictEqual(seen.annotations, { ...Context.get(submitter, References.CurrentLogAnnotations), jobId: handleId }, label)
        const expected = servicesOf(submitter)
        assert.deepStrictEqual([...seen.services.keys()].sort(), [...expected.keys()].sort(), `${label}: its keys`)
        for (const [key, value] of expected) assert.strictEqual(seen.services.get(key), value, `${label}: ${key}`)
        assert.isTrue(seen.cacheRight, `${label}: its fiber cache`)
      }
      for (let seed = 1; seed <= 60; seed++) {
        const next = seeded(seed)
        const depth = next(13)
        const jobs = 1 + next(3)
        // what a job reads of itself; some submit jobs of their own from a deeper context
        const job = (nested: boolean): Effect.Effect<Seen, unknown> =>
          Effect.withFiber((fiber) =>
            Effect.gen(function*() {
              const own = fiber.context
              const info = yield* WorkPool.JobContext
              const result = {
                id: info.id,
                services: servicesOf(own),
                annotations: { ...Context.get(own, References.CurrentLogAnnotations) },
                cacheRight: cacheMatches(fiber)
              }
              const innerSeen: Array<Seen["inner"][number]> = []
              if (nested) {
                const target = targets[next(2)]!
                const submitted = yield* layered(
                  Effect.withFiber((f) => Effect.map(target.submit(job(false)), (handle) => [f.context, handle] as const)),
                  next,
                  next(10),
                  `s${seed}.${info.id}`
                )
                const [submitter, handle] = submitted
                innerSeen.push({ submitter, seen: yield* handle.await, handleId: handle.id })
                // the job's own context again, after its inner layers closed
                assert.strictEqual((yield* WorkPool.JobContext).id, info.id)
              }
              return { ...result, inner: innerSeen }
            })
          )
        // some from a context of a maxDepth of its own (0 to 3: every add, or every other, flattens)
        const maxDepth = seed % 4 === 0 ? next(4) : undefined
        const [submitter, handles] = yield* layered(
          Effect.withFiber((fiber) =>
            Effect.map(
              Effect.forEach(Array.from({ length: jobs }, () => next(2) === 0), (nested) => pool.submit(job(nested))),
              (handles) => [fiber.context, handles] as const
            )
          ),
          next,
          depth,
          `s${seed}`
        ).pipe((submit) =>
          maxDepth === undefined ? submit : Effect.updateContext(submit, (context: Context.Context<never>) =>
            Context.makeUnsafe(new Map(context.mapUnsafe), { maxDepth }))
        )
        const before = servicesOf(submitter)
        const results = yield* Effect.forEach(handles, (handle) => handle.await)
        assert.strictEqual(new Set(results.map((r) => r.id)).size, jobs)
        for (let i = 0; i < jobs; i++) {
          const label = `seed ${seed}, depth ${depth}, maxDepth ${maxDepth}, job ${i}`
          check(submitter, results[i]!, handles[i]!.id, label)
          for (const nested of results[i]!.inner) check(nested.submitter, nested.seen, nested.handleId, `${label}, nested`)
        }
        // the submitter's own context still means what it did
        assert.deepStrictEqual(servicesOf(submitter), before)
      }
      assert.isAbove(checked, 100)
    }))
})

describe("jobs of one deep submitter context, attacked", () => {
  const deep = Array.from({ length: 9 }, (_, i) => Context.Service<number>(`test/job-context-hostile/Deep${i}`))
  /** `effect` from a context `depth` layers deeper than its fiber's: one provideService per layer. */
  const deeper = <A, E, R>(effect: Effect.Effect<A, E, R>, depth: number): Effect.Effect<A, E, Exclude<R, number>> => {
    let wrapped: Effect.Effect<A, E, any> = effect
    for (let i = 0; i < depth; i++) wrapped = Effect.provideService(wrapped, deep[i]!, i)
    return wrapped as Effect.Effect<A, E, Exclude<R, number>>
  }

  for (const depth of [6, 7, 8, 9]) {
    it.effect(`depth ${depth}: jobs sharing one submitter context keep their own timeout, interruption, progress, attempts and the submitter's TestClock`, () =>
      Effect.gen(function*() {
        const pool = yield* WorkPool.make({ concurrency: 4 })
        const started = yield* Deferred.make<void>()
        const [timed, interrupted, reporting, retried] = yield* deeper(
          Effect.gen(function*() {
            const timed = yield* pool.submit(Effect.as(Effect.sleep("1 hour"), "timed"), { timeout: "50 millis" })
            const interrupted = yield* pool.submit(Effect.as(Effect.sleep("1 hour"), "interrupted"))
            const reporting = yield* pool.submit(Effect.gen(function*() {
              const info = yield* WorkPool.JobContext
              yield* info.progress(`from ${info.id}`)
              yield* Deferred.succeed(started, void 0)
              yield* Effect.sleep("100 millis")
              return [info.id, info.attempt, yield* deep[depth - 1]!] as const
            }))
            const retried = yield* pool.submit(
              Effect.gen(function*() {
                const info = yield* WorkPool.JobContext
                if (info.attempt === 1) return yield* Effect.fail("first")
                return [info.id, info.attempt] as const
              }),
              { retry: { times: 2, schedule: Schedule.spaced("10 millis") } }
            )
            return [timed, interrupted, reporting, retried] as const
          }),
          depth
        )
        yield* Deferred.await(started)
        yield* interrupted.interrupt
        // the jobs' sleeps are on the test's clock: without it in their context none would end
        yield* TestClock.adjust("50 millis")
        const timeout = yield* Effect.flip(timed.await)
        if (typeof timeout === "string" || timeout._tag !== "JobTimeout") return assert.fail(`not a JobTimeout: ${String(timeout)}`)
        assert.strictEqual(timeout.phase, "running")
        yield* TestClock.adjust("50 millis")
        assert.deepStrictEqual(yield* reporting.await, [reporting.id, 1, depth - 1])
        assert.deepStrictEqual(yield* retried.await, [retried.id, 2])
        assert.isTrue(Exit.hasInterrupts(yield* Effect.exit(interrupted.await)))
        assert.deepStrictEqual(yield* reporting.progress, Option.some(`from ${reporting.id}`))
        for (const other of [timed, interrupted, retried]) assert.deepStrictEqual(yield* other.progress, Option.none())
        const stats = yield* pool.stats
        assert.deepStrictEqual([stats.succeeded, stats.timedOut, stats.interrupted], [2, 1, 1])
      }))
  }
})

describe("what a pool keeps of its deep submitters' contexts", () => {
  const collect = fullGc
  const Big = Context.Service<{ readonly payload: Array<number> }>("test/job-context-hostile/Big")
  const deep = Array.from({ length: 9 }, (_, i) => Context.Service<number>(`test/job-context-hostile/Kept${i}`))

  it.live("jobs from 50 distinct submitter contexts 7 to 9 layers deep, each holding a service of its own: once a job from another context has run, none of them is kept (the flattened copy is kept for one submitter context at most)", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2, retention: { count: 100 } })
      const refs: Array<WeakRef<object>> = []
      // made outside this generator, whose frame would hold the last one
      const submitFrom = (i: number) => {
        const big = { payload: new Array(1000).fill(i) }
        refs.push(new WeakRef(big))
        let effect: Effect.Effect<number, unknown, any> = pool.run(Effect.map(Big, (b) => b.payload[0]!))
        for (let d = 0; d < 7 + (i % 3); d++) effect = Effect.provideService(effect, deep[d]!, d)
        return Effect.provideService(effect, Big, big) as Effect.Effect<number, unknown>
      }
      for (let i = 0; i < 50; i++) assert.strictEqual(yield* submitFrom(i), i)
      // the last submitter context is the pool's until a job from another one starts on a fiber
      yield* pool.run(Effect.yieldNow)
      yield* collect
      assert.deepStrictEqual(refs.flatMap((ref, i) => ref.deref() === undefined ? [] : [i]), [])
      assert.strictEqual((yield* pool.jobs()).length, 51)
    }))
})

describe("a thread pool's jobs from a deep submitter context, attacked", () => {
  const deep = Array.from({ length: 9 }, (_, i) => Context.Service<number>(`test/job-context-hostile/Thread${i}`))

  it.live("traced (on fibers, their context built by withRoom) and untraced jobs from one submitter context 6 to 9 layers deep: each reports progress to its own handle, each traced one under its own span, child of the submitter's", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeReleasingPool({ threads: 1, tasksPerThread: 2 })
      for (const depth of [6, 7, 8, 9]) {
        for (const traced of [true, false]) {
          const { spans, tracer } = recordingTracer()
          let submitter: Effect.Effect<ReadonlyArray<WorkPool.JobHandle<number, unknown>>, unknown> = Effect.forEach(
            Array.from({ length: 6 }, (_, i) => depth * 100 + i),
            (n) => pool.submit(Progress, n)
          )
          submitter = Effect.withSpan(submitter, `submitter ${depth}`)
          for (let i = 0; i < depth - 1; i++) submitter = Effect.provideService(submitter, deep[i]!, i)
          const handles = yield* (traced ? Effect.withTracer(submitter, tracer) : submitter)
          for (let i = 0; i < handles.length; i++) {
            const n = depth * 100 + i
            assert.strictEqual(yield* handles[i]!.await, n)
            assert.deepStrictEqual(yield* handles[i]!.progress, Option.some(n), `depth ${depth}, traced ${traced}, job ${i}`)
          }
          if (!traced) continue
          const parent = spans.find((s) => s.name === `submitter ${depth}`)!
          const jobSpans = spans.filter((s) => s.name === "workpool.job")
          assert.deepStrictEqual(jobSpans.map((s) => s.attributes.get("workpool.job.id")), handles.map((h) => h.id))
          for (const span of jobSpans) assert.strictEqual(Option.getOrThrow(span.parent).spanId, parent.spanId)
        }
      }
    }))
})
