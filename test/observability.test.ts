import { assert, describe, it } from "@effect/vitest"
import { Cause, Clock, Deferred, Effect, Exit, Fiber, Metric, Option, References, Schedule, Scope, Stream, Tracer } from "effect"
import { TestClock } from "effect/testing"
import { PoolError, WorkPool } from "../src/index.ts"
import * as ThreadPool from "../src/ThreadPool.ts"
import { Count, Inspect, Traced } from "./fixtures/observe-tasks.ts"
import { recordingTracer, settle } from "./helpers.ts"
import { onFirstReport } from "../src/internal/progress.ts"
import { DONE, schedulerOf } from "../src/internal/scheduler.ts"

const worker = new URL("./fixtures/observe-worker.ts", import.meta.url)

/** Runs `effect` with a registry of its own, so that pools of other tests do not show. */
const withRegistry = <A, E, R>(effect: (registry: Metric.MetricRegistry) => Effect.Effect<A, E, R>) => {
  const registry: Metric.MetricRegistry = new Map()
  return Effect.provideService(effect(registry), Metric.MetricRegistry, registry)
}

/** The state of the series `id` of pool `pool` (and `ending`, for the endings counter). */
const series = (id: string, pool: string, attributes: Record<string, string> = {}) =>
  Effect.map(Metric.snapshot, (snapshots) => {
    const found = snapshots.filter((s) =>
      s.id === id && s.attributes?.pool === pool &&
      Object.entries(attributes).every(([key, value]) => s.attributes?.[key] === value)
    )
    assert.strictEqual(found.length, 1, `one series ${id} for ${pool} ${JSON.stringify(attributes)}`)
    return found[0]!.state as any
  })

describe("metrics", () => {
  it.effect("every pool publishes its counts, gauges and wait/run histograms, labelled with its name", () =>
    withRegistry(() =>
      Effect.gen(function*() {
        const pool = yield* WorkPool.make({ concurrency: 2, name: "mail" })
        assert.strictEqual(pool.name, "mail")
        const gate = yield* Deferred.make<void>()
        // two run for 100 ms, one waits for them (100 ms), then runs 300 ms
        const slow = Effect.andThen(Effect.sleep("100 millis"), Effect.void)
        yield* pool.submit(slow)
        yield* pool.submit(slow)
        const third = yield* pool.submit(Effect.andThen(Effect.sleep("300 millis"), Deferred.await(gate)))
        yield* pool.submit(Effect.fail("no"), { priority: 1 })
        yield* settle
        assert.strictEqual((yield* series("workpool_jobs_queued", "mail")).value, 2)
        assert.strictEqual((yield* series("workpool_jobs_running", "mail")).value, 2)
        assert.strictEqual((yield* series("workpool_workers", "mail")).value, 2)
        yield* TestClock.adjust("100 millis")
        yield* settle
        yield* TestClock.adjust("300 millis")
        yield* Deferred.succeed(gate, undefined)
        yield* third.await
        assert.strictEqual((yield* series("workpool_jobs_submitted", "mail")).count, 4)
        assert.strictEqual((yield* series("workpool_jobs_ended", "mail", { ending: "succeeded" })).count, 3)
        assert.strictEqual((yield* series("workpool_jobs_ended", "mail", { ending: "failed" })).count, 1)
        assert.strictEqual((yield* series("workpool_jobs_ended", "mail", { ending: "timedOut" })).count, 0)
        assert.strictEqual((yield* series("workpool_jobs_queued", "mail")).value, 0)
        const wait: Metric.HistogramState = yield* series("workpool_job_wait_ms", "mail")
        const run: Metric.HistogramState = yield* series("workpool_job_run_ms", "mail")
        assert.deepStrictEqual([wait.count, wait.min, wait.max, wait.sum], [4, 0, 100, 200])
        assert.deepStrictEqual([run.count, run.min, run.max, run.sum], [4, 0, 300, 500])
        // cumulative buckets: ≤ 1 ms, ..., ≤ 128 ms (the 100 ms runs), ..., ≤ 512 ms (the 300 ms one)
        const bucket = (state: Metric.HistogramState, le: number) => state.buckets.find(([b]) => b === le)![1]
        assert.deepStrictEqual([bucket(run, 1), bucket(run, 64), bucket(run, 128), bucket(run, 256), bucket(run, 512)], [1, 1, 3, 3, 4])
        assert.deepStrictEqual([bucket(wait, 1), bucket(wait, 128)], [2, 4])
        const utilization = (yield* series("workpool_utilization", "mail")).value
        assert.strictEqual(utilization, (yield* pool.stats).utilization)
        assert.isAbove(utilization, 0)
      })
    ))

  it.effect("waits and runs of 0 ms reach the histograms with no call per job: counted from the pool's own counts, a running job's run not yet", () =>
    withRegistry(() =>
      Effect.gen(function*() {
        const pool = yield* WorkPool.make({ concurrency: 1, name: "zeros" })
        const scheduler = schedulerOf(pool)
        const recorded = scheduler.observer
        let heard = 0
        scheduler.observer = {
          started: (job, wait) => (heard++, recorded.started(job, wait)),
          stopped: (job, run) => (heard++, recorded.stopped(job, run))
        }
        for (let i = 0; i < 1_000; i++) yield* pool.run(Effect.void)
        const gate = yield* Deferred.make<void>()
        yield* pool.submit(Deferred.await(gate))
        const bucket = (state: Metric.HistogramState, le: number) => state.buckets.find(([b]) => b === le)![1]
        const wait: Metric.HistogramState = yield* series("workpool_job_wait_ms", "zeros")
        const run: Metric.HistogramState = yield* series("workpool_job_run_ms", "zeros")
        assert.deepStrictEqual([heard, wait.count, wait.max, bucket(wait, 1), run.count, run.max, bucket(run, 1)], [0, 1_001, 0, 1_001, 1_000, 0, 1_000])
        // one that took time is heard, and counted once
        yield* TestClock.adjust("5 millis")
        yield* Deferred.succeed(gate, undefined)
        yield* settle
        const after: Metric.HistogramState = yield* series("workpool_job_run_ms", "zeros")
        assert.deepStrictEqual([heard, after.count, after.max, bucket(after, 1), bucket(after, 8)], [1, 1_001, 5, 1_000, 1_001])
      })
    ))

  it.effect("queued jobs per priority: a series per priority a read found queued, from the next read on", () =>
    withRegistry(() =>
      Effect.gen(function*() {
        const pool = yield* WorkPool.make({ concurrency: 1, name: "p", paused: true })
        const byPriority = (priority: string) =>
          Effect.map(Metric.snapshot, (all) =>
            all.filter((s) => s.id === "workpool_jobs_queued_by_priority" && s.attributes?.pool === "p" && s.attributes?.priority === priority)
              .map((s) => (s.state as Metric.GaugeState<number>).value))
        yield* pool.submit(Effect.void, { priority: 5 })
        yield* pool.submit(Effect.void, { priority: 5 })
        yield* pool.submit(Effect.void, { priority: -1 })
        assert.deepStrictEqual(yield* byPriority("5"), []) // the first read finds them
        assert.deepStrictEqual([yield* byPriority("5"), yield* byPriority("-1")], [[2], [1]])
        yield* pool.resume
        yield* pool.awaitIdle
        assert.deepStrictEqual([yield* byPriority("5"), yield* byPriority("-1")], [[0], [0]])
        // at most 32 series, whatever the priorities
        yield* pool.pause
        for (let i = 0; i < 100; i++) yield* pool.submit(Effect.void, { priority: i })
        yield* Metric.snapshot
        const series = (yield* Metric.snapshot).filter((s) => s.id === "workpool_jobs_queued_by_priority")
        assert.strictEqual(series.length, 32)
      })
    ))

  it.effect("retries, rejections and waiting or retrying jobs are counted", () =>
    withRegistry(() =>
      Effect.gen(function*() {
        const pool = yield* WorkPool.make({ concurrency: 1, capacity: 0, overflow: "fail", name: "r" })
        const handle = yield* pool.submit(Effect.fail("again"), { retry: { times: 1, schedule: Schedule.spaced("1 second") } })
        yield* settle
        assert.strictEqual((yield* series("workpool_jobs_retrying", "r")).value, 1)
        assert.strictEqual((yield* series("workpool_jobs_retried", "r")).count, 1)
        yield* pool.submit(Effect.never)
        yield* Effect.flip(pool.submit(Effect.void))
        assert.strictEqual((yield* series("workpool_jobs_rejected", "r")).count, 1)
        yield* TestClock.adjust("1 second")
        yield* pool.shutdownNow
        assert.isTrue(Exit.isFailure(yield* Effect.exit(handle.await)))
      })
    ))

  it.effect("the series go when the pool's scope closes; metrics: false publishes none", () =>
    withRegistry((registry) =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        yield* Scope.provide(WorkPool.make({ concurrency: 1, name: "short" }), scope)
        assert.isAbove(registry.size, 0)
        yield* Scope.close(scope, Exit.void)
        assert.strictEqual(registry.size, 0)
        yield* WorkPool.make({ concurrency: 1, metrics: false })
        assert.strictEqual(registry.size, 0)
      })
    ))

  it.effect("pools get distinct default names; a bad name or metrics option is InvalidPoolConfig", () =>
    Effect.gen(function*() {
      const a = yield* WorkPool.make({ concurrency: 1 })
      const b = yield* WorkPool.make({ concurrency: 1 })
      assert.match(a.name, /^workpool-\d+$/)
      assert.notStrictEqual(a.name, b.name)
      for (const [field, value] of [["name", ""], ["name", 7], ["metrics", "yes"]] as const) {
        const error = yield* Effect.flip(WorkPool.make({ concurrency: 1, [field]: value } as any))
        assert.instanceOf(error, PoolError.InvalidPoolConfig)
        assert.strictEqual((error as PoolError.InvalidPoolConfig).field, field)
      }
    }))

  it.effect("a second live pool of the same name is refused (its series would overwrite the first's); the name is free once that pool closes", () =>
    withRegistry(() =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const first = yield* Scope.provide(WorkPool.make({ concurrency: 1, name: "mail" }), scope)
        yield* first.run(Effect.void)
        const error = yield* Effect.flip(WorkPool.make({ concurrency: 3, name: "mail" }))
        assert.instanceOf(error, PoolError.InvalidPoolConfig)
        assert.strictEqual(error.field, "name")
        assert.strictEqual(error.value, `"mail"`)
        assert.include(error.message, "metric series")
        // a ThreadPool too, before any thread starts
        const thread = yield* Effect.flip(ThreadPool.make({ worker, threads: 1, name: "mail" }))
        assert.strictEqual((thread as PoolError.InvalidPoolConfig).field, "name")
        // the first pool's series are intact
        assert.strictEqual((yield* series("workpool_workers", "mail")).value, 1)
        assert.strictEqual((yield* series("workpool_jobs_ended", "mail", { ending: "succeeded" })).count, 1)
        // allowed: without metrics, with other metric attributes, in another registry
        yield* WorkPool.make({ concurrency: 1, name: "mail", metrics: false })
        yield* Effect.scoped(
          Effect.provideService(WorkPool.make({ concurrency: 1, name: "mail" }), Metric.CurrentMetricAttributes, { shard: "2" })
        )
        yield* withRegistry(() => WorkPool.make({ concurrency: 1, name: "mail" }))
        // once the first has closed
        yield* Scope.close(scope, Exit.void)
        const second = yield* WorkPool.make({ concurrency: 2, name: "mail" })
        yield* second.run(Effect.void)
        assert.strictEqual((yield* series("workpool_workers", "mail")).value, 2)
      })
    ))
})

describe("a span per job", () => {
  it.effect("a job runs under workpool.job, child of its submitter's span, with its attributes and ending", () =>
    Effect.gen(function*() {
      const { spans, tracer } = recordingTracer()
      const pool = yield* WorkPool.make({ concurrency: 1, name: "traced", timeout: "1 second" })
      const blocker = yield* pool.submit(Effect.sleep("50 millis"))
      const inner = pool.run(Effect.withSpan(Effect.succeed(1), "inner"), { priority: 3 }).pipe(
        Effect.withSpan("request"),
        Effect.withTracer(tracer),
        Effect.forkChild
      )
      const fiber = yield* inner
      const slow = yield* Effect.forkChild(
        Effect.withTracer(Effect.exit(pool.run(Effect.never)), tracer)
      )
      yield* settle
      yield* TestClock.adjust("50 millis")
      yield* blocker.await
      assert.strictEqual(yield* Fiber.join(fiber), 1)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(slow)
      const byName = (name: string) => spans.filter((s) => s.name === name)
      const [request] = byName("request")
      const [job, timedOut] = byName("workpool.job")
      const [innerSpan] = byName("inner")
      assert.strictEqual(Option.getOrThrow(job!.parent).spanId, request!.spanId)
      assert.strictEqual(job!.traceId, request!.traceId)
      assert.strictEqual(Option.getOrThrow(innerSpan!.parent).spanId, job!.spanId)
      assert.deepStrictEqual(Object.fromEntries(job!.attributes), {
        "workpool.pool": "traced",
        "workpool.job.id": 2,
        "workpool.job.priority": 3,
        "workpool.job.attempt": 1,
        "workpool.job.wait_ms": 50,
        "workpool.job.ending": "succeeded"
      })
      assert.strictEqual(job!.status._tag, "Ended")
      assert.strictEqual(timedOut!.attributes.get("workpool.job.ending"), "timedOut")
    }))

  it.effect("every attempt has its span; every job has its id among the log annotations", () =>
    Effect.gen(function*() {
      const { spans, tracer } = recordingTracer()
      const pool = yield* WorkPool.make({ concurrency: 1 })
      let tries = 0
      const flaky = Effect.suspend(() => ++tries < 2 ? Effect.fail("once") : Effect.succeed(tries))
      yield* Effect.withTracer(pool.run(flaky, { retry: { times: 2 } }), tracer)
      assert.deepStrictEqual(
        spans.map((s) => [s.attributes.get("workpool.job.attempt"), s.attributes.get("workpool.job.ending")]),
        [[1, "failed"], [2, "succeeded"]]
      )
      const annotations = yield* pool.run(References.CurrentLogAnnotations)
      const handle = yield* pool.submit(Effect.void)
      assert.strictEqual(annotations.jobId, handle.id - 1)
    }))
})

describe("JobContext and progress", () => {
  it.effect("a job knows its pool, id and attempt; outside a pool progress does nothing", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, name: "ctx" })
      let tries = 0
      const job = Effect.flatMap(WorkPool.JobContext, (ctx) =>
        ++tries < 2 ? Effect.fail("retry me") : Effect.succeed([ctx.pool, ctx.id, ctx.attempt] as const))
      const handle = yield* pool.submit(job, { retry: { times: 1 } })
      assert.deepStrictEqual(yield* handle.await, ["ctx", handle.id, 2])
      const outside = yield* WorkPool.JobContext
      assert.deepStrictEqual([outside.pool, outside.id, outside.attempt], ["", 0, 0])
      yield* outside.progress(1)
    }))

  it.effect("the handle shows the latest progress, and progressChanges ends when the job ends", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const job = Effect.gen(function*() {
        const { progress } = yield* WorkPool.JobContext
        yield* progress(0.25)
        yield* Effect.sleep("1 second")
        yield* progress(0.5)
        yield* progress(0.75) // read together with 0.5: the reader sees the latest
        yield* Effect.sleep("1 second")
        yield* progress(1)
        return "done"
      })
      const handle = yield* pool.submit(job)
      assert.deepStrictEqual(yield* handle.progress, Option.some(0.25))
      const seen = yield* Effect.forkChild(Stream.runCollect(handle.progressChanges))
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* settle
      assert.deepStrictEqual(yield* handle.progress, Option.some(0.75))
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* handle.await, "done")
      assert.deepStrictEqual(Array.from(yield* Fiber.join(seen)), [0.25, 0.75, 1])
      // after the end: the last value, and a stream that ends at once
      assert.deepStrictEqual(yield* handle.progress, Option.some(1))
      assert.deepStrictEqual(Array.from(yield* Stream.runCollect(handle.progressChanges)), [1])
      const quiet = yield* pool.submit(Effect.void)
      yield* quiet.await
      assert.deepStrictEqual(yield* quiet.progress, Option.none())
      assert.deepStrictEqual(Array.from(yield* Stream.runCollect(quiet.progressChanges)), [])
    }))

  it.effect("a reader sees the latest value, not a backlog: a job reporting in a loop is coalesced", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const gate = yield* Deferred.make<void>()
      const job = Effect.gen(function*() {
        const { progress } = yield* WorkPool.JobContext
        yield* Deferred.await(gate)
        for (let i = 1; i <= 10_000; i++) yield* progress(i)
      })
      const handle = yield* pool.submit(job)
      const seen = yield* Effect.forkChild(Stream.runCollect(handle.progressChanges))
      yield* settle
      yield* Deferred.succeed(gate, undefined)
      const values = Array.from(yield* Fiber.join(seen))
      assert.strictEqual(values.at(-1), 10_000)
      assert.isBelow(values.length, 100)
    }))

  it.effect("onFirstReport: once, at a job's first report (at once if it has reported), never for a quiet job, whose progressChanges still ends", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2 })
      const gate = yield* Deferred.make<void>()
      const reporting = yield* pool.submit(Effect.gen(function*() {
        const { progress } = yield* WorkPool.JobContext
        yield* Deferred.await(gate)
        yield* progress(1)
        yield* progress(2)
      }))
      const quiet = yield* pool.submit(Deferred.await(gate))
      let calls = 0
      onFirstReport(reporting, DONE, () => calls++)
      let quietCalls = 0
      onFirstReport(quiet, DONE, () => quietCalls++)
      yield* settle
      assert.strictEqual(calls, 0)
      yield* Deferred.succeed(gate, undefined)
      yield* reporting.await
      yield* quiet.await
      assert.strictEqual(calls, 1)
      assert.strictEqual(quietCalls, 0)
      // installed after the reports: at once
      onFirstReport(reporting, DONE, () => calls++)
      assert.strictEqual(calls, 2)
      assert.deepStrictEqual(Array.from(yield* Stream.runCollect(quiet.progressChanges)), [])
      // installed on a job that ended without reporting: never called, and its readers end
      const ended = yield* pool.submit(Effect.void)
      yield* ended.await
      onFirstReport(ended, DONE, () => quietCalls++)
      assert.strictEqual(quietCalls, 0)
      assert.deepStrictEqual(Array.from(yield* Stream.runCollect(ended.progressChanges)), [])
    }))
})

describe("threads: the trace and progress cross into the thread", () => {
  it.live("a task runs under its job's span, its own spans carry the trace, and it knows its job", () =>
    Effect.scoped(Effect.gen(function*() {
      const { spans, tracer } = recordingTracer()
      const pool = yield* ThreadPool.make({ worker, threads: 1, name: "cpu" })
      const seen = yield* pool.run(Inspect, 1).pipe(Effect.withSpan("request"), Effect.withTracer(tracer))
      const [request] = spans.filter((s) => s.name === "request")
      const [job] = spans.filter((s) => s.name === "workpool.job")
      assert.strictEqual(job!.attributes.get("workpool.task"), "Inspect")
      assert.strictEqual(Option.getOrThrow(job!.parent).spanId, request!.spanId)
      assert.deepStrictEqual(
        [seen.parentTraceId, seen.parentSpanId, seen.childTraceId, seen.childParentSpanId],
        [request!.traceId, job!.spanId, request!.traceId, job!.spanId]
      )
      assert.deepStrictEqual([seen.pool, seen.jobId, seen.attempt, seen.annotatedJobId], ["cpu", 1, 1, 1])
      // without a tracer, the task still runs under its submitter's span
      const plain = yield* Effect.withSpan(Effect.zip(pool.run(Inspect, 2), Effect.currentSpan), "plain")
      assert.deepStrictEqual([plain[0].parentSpanId, plain[0].parentTraceId], [plain[1].spanId, plain[1].traceId])
    })))

  it.live("the spans a task makes in its thread reach the caller's tracer, with their ids, times, attributes, events and status", () =>
    Effect.scoped(Effect.gen(function*() {
      const { spans, tracer } = recordingTracer()
      const pool = yield* ThreadPool.make({ worker, threads: 1, name: "traced-threads" })
      const before = yield* Clock.currentTimeNanos
      const seen = yield* pool.run(Traced, 7).pipe(Effect.withSpan("request"), Effect.withTracer(tracer))
      const after = yield* Clock.currentTimeNanos
      assert.isTrue(seen.recording)
      const named = (name: string) => {
        const found = spans.filter((s) => s.name === name)
        assert.strictEqual(found.length, 1, `one span ${name}: ${spans.map((s) => s.name)}`)
        return found[0]!
      }
      const [job, outer, inner, failing] = ["workpool.job", "thread.outer", "thread.inner", "thread.failing"].map(named)
      // the thread's spans hang under the job's span, in its trace, with the ids the thread gave them
      assert.strictEqual(Option.getOrThrow(outer!.parent), job)
      assert.strictEqual(Option.getOrThrow(inner!.parent), outer)
      assert.strictEqual(Option.getOrThrow(failing!.parent), outer)
      assert.deepStrictEqual(
        [outer!.spanId, inner!.spanId, failing!.spanId, outer!.traceId, inner!.traceId],
        [seen.outerSpanId, seen.innerSpanId, seen.failingSpanId, job!.traceId, job!.traceId]
      )
      assert.strictEqual(seen.traceId, job!.traceId)
      // what the thread recorded on them
      assert.strictEqual(outer!.attributes.get("outer.n"), 7)
      assert.strictEqual(inner!.attributes.get("inner.n"), 7)
      assert.strictEqual(inner!.kind, "client")
      const events = (outer as Tracer.NativeSpan).events
      assert.deepStrictEqual(events.map(([name, , attributes]) => [name, attributes]), [["halfway", { step: 1 }]])
      // at the times it recorded, within the call, each inside its parent
      for (const span of [outer!, inner!, failing!]) {
        assert.strictEqual(span.status._tag, "Ended")
        if (span.status._tag !== "Ended") continue
        assert.isTrue(before <= span.status.startTime && span.status.startTime <= span.status.endTime && span.status.endTime <= after)
      }
      const ended = (span: Tracer.Span) => span.status._tag === "Ended" ? span.status : assert.fail("not ended")
      assert.isTrue(ended(outer!).startTime <= ended(inner!).startTime && ended(inner!).endTime <= ended(outer!).endTime)
      assert.isTrue(Exit.isSuccess(ended(outer!).exit))
      const failure = ended(failing!).exit
      assert.isTrue(Exit.isFailure(failure))
      if (Exit.isFailure(failure)) assert.include(String(Cause.squash(failure.cause)), "boom")
      // the thread's logs carry the trace, the span they were written in, and the job's id
      assert.deepStrictEqual(seen.logged, [{ message: "in the inner span", traceId: job!.traceId, spanId: inner!.spanId, jobId: 1 }])
    })))

  it.live("a task records nothing in its thread under Effect's native tracer (which keeps nothing) or an unsampled span", () =>
    Effect.scoped(Effect.gen(function*() {
      const { spans, tracer } = recordingTracer()
      const pool = yield* ThreadPool.make({ worker, threads: 1 })
      const bare = yield* pool.run(Traced, 1).pipe(Effect.withSpan("native"))
      assert.isFalse(bare.recording)
      // with a tracer, a job without a submitter's span still has its own: its thread's spans go under it
      assert.isTrue((yield* Effect.withTracer(pool.run(Traced, 1), tracer)).recording)
      assert.strictEqual(spans.filter((s) => s.name === "thread.outer").length, 1)
      const unsampled = yield* pool.run(Traced, 2).pipe(Effect.withSpan("quiet", { sampled: false }), Effect.withTracer(tracer))
      assert.isFalse(unsampled.recording)
      assert.strictEqual(spans.filter((s) => s.name === "thread.outer").length, 1)
    })))

  it.live("a worker whose layer installs a tracer of its own keeps its spans: none is replayed on the main thread", () =>
    Effect.scoped(Effect.gen(function*() {
      const { spans, tracer } = recordingTracer()
      const pool = yield* ThreadPool.make({ worker: new URL("./fixtures/own-tracer-worker.ts", import.meta.url), threads: 1 })
      const seen = yield* pool.run(Traced, 1).pipe(Effect.withSpan("request"), Effect.withTracer(tracer))
      // the thread's spans are its tracer's (not Effect's native one, not the recorder), in the caller's trace
      assert.isTrue(seen.recording)
      assert.strictEqual(seen.traceId, spans.find((s) => s.name === "request")!.traceId)
      assert.deepStrictEqual(spans.map((s) => s.name).sort(), ["request", "workpool.job"])
    })))

  it.live("a task's progress reaches its handle, coalesced on the thread, its last value before its result", () =>
    Effect.scoped(Effect.gen(function*() {
      const pool = yield* ThreadPool.make({ worker, threads: 1 })
      assert.match(pool.name, /^threadpool-\d+$/)
      const started = Date.now()
      const handle = yield* pool.submit(Count, 20_000)
      const values = Array.from(yield* Stream.runCollect(handle.progressChanges)) as Array<number>
      assert.strictEqual(yield* handle.await, 20_000)
      const elapsed = Date.now() - started
      assert.deepStrictEqual(yield* handle.progress, Option.some(20_000))
      assert.strictEqual(values.at(-1), 20_000)
      // increasing, and at most one message per 50 ms (and the last value, sent with the result)
      assert.isTrue(values.every((v, i) => i === 0 || v > values[i - 1]!))
      assert.isAtMost(values.length, Math.floor(elapsed / 50) + 2, `${values.length} values in ${elapsed} ms`)
    })))
})

describe("Effect.sync jobs run without a fiber of their own", () => {
  it.effect("on a free worker the function runs outside any fiber; the job is counted, timed, retried and traced as any", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, timeout: "1 second", name: "inline" })
      // inside the function there is no fiber: not the submitter's (whose services are not the job's)
      let current: unknown = "not run"
      assert.strictEqual(yield* pool.run(Effect.sync(() => {
        current = Fiber.getCurrent()
        return 7
      })), 7)
      assert.strictEqual(current, undefined)
      // a throw is the job's defect; a retry runs the function again
      let calls = 0
      const flaky = Effect.sync(() => {
        if (++calls === 1) throw new Error("first call")
        return calls
      })
      const handle = yield* pool.submit(flaky, { retry: { times: 1 } })
      assert.strictEqual(yield* handle.await, 2)
      assert.strictEqual(yield* handle.attempt, 2)
      const died = yield* Effect.exit(pool.run(Effect.sync(() => {
        throw new Error("boom")
      })))
      assert.isTrue(Exit.isFailure(died) && Cause.hasDies(died.cause))
      const stats = yield* pool.stats
      assert.deepStrictEqual(
        [stats.submitted, stats.succeeded, stats.defects, stats.retried, stats.running, stats.queued],
        [3, 2, 1, 1, 0, 0]
      )
      // its timeout's deadline went with it: nothing is left to expire
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual((yield* pool.stats).timedOut, 0)
      // the submitter's fiber is the current one again once the function has run, or thrown
      const submitter = Fiber.getCurrent()
      assert.isDefined(submitter)
      yield* pool.submit(Effect.sync(() => 1))
      assert.strictEqual(Fiber.getCurrent(), submitter)
      yield* pool.submit(Effect.sync(() => {
        throw new Error("thrown")
      }))
      assert.strictEqual(Fiber.getCurrent(), submitter)
      // under a tracer it runs in a fiber, under its span
      const { spans, tracer } = recordingTracer()
      assert.strictEqual(yield* Effect.withTracer(pool.run(Effect.sync(() => Fiber.getCurrent() !== undefined)), tracer), true)
      assert.deepStrictEqual(spans.map((s) => [s.name, s.attributes.get("workpool.job.ending")]), [["workpool.job", "succeeded"]])
    }))
})

describe("callback jobs (Effect.promise, tryPromise) wait on no fiber of their own; an Effect.callback has one", () => {
  it.effect("the function runs outside any fiber; values, rejections and failures end the job as in a fiber", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2 })
      let current: unknown = "not run"
      assert.strictEqual(yield* pool.run(Effect.promise(async () => {
        current = Fiber.getCurrent()
        return 7
      })), 7)
      assert.strictEqual(current, undefined)
      // a rejection is the job's defect, a throw before the promise too
      const rejected = yield* Effect.exit(pool.run(Effect.promise(() => Promise.reject(new Error("rejected")))))
      assert.isTrue(Exit.isFailure(rejected) && Cause.hasDies(rejected.cause))
      const thrown = yield* Effect.exit(pool.run(Effect.promise((): Promise<number> => {
        throw new Error("thrown")
      })))
      assert.isTrue(Exit.isFailure(thrown) && Cause.hasDies(thrown.cause))
      // tryPromise's catch runs (in a fiber) and gives the typed failure
      const failed = yield* Effect.flip(pool.run(Effect.tryPromise({
        try: () => Promise.reject(new Error("nope")),
        catch: (e) => `caught ${(e as Error).message}`
      })))
      assert.strictEqual(failed, "caught nope")
      // a callback (in a fiber of its own) resumed with an Effect runs it with the job's services
      const jobId = yield* pool.run(Effect.callback<number>((resume) => {
        resume(Effect.map(WorkPool.JobContext, (job) => job.id))
      }))
      assert.strictEqual(jobId, 5)
      const stats = yield* pool.stats
      assert.deepStrictEqual(
        [stats.submitted, stats.succeeded, stats.defects, stats.failed, stats.running],
        [5, 2, 2, 1, 0]
      )
      // the submitter's fiber is the current one again once the function has been called, or thrown
      const submitter = Fiber.getCurrent()
      assert.isDefined(submitter)
      yield* pool.submit(Effect.promise(async () => 1))
      assert.strictEqual(Fiber.getCurrent(), submitter)
      yield* pool.submit(Effect.promise((): Promise<number> => {
        throw new Error("thrown")
      }))
      assert.strictEqual(Fiber.getCurrent(), submitter)
      // under a tracer it runs in a fiber, under its span
      const { spans, tracer } = recordingTracer()
      assert.isTrue(yield* Effect.withTracer(pool.run(Effect.promise(async () => Fiber.getCurrent() !== undefined)), tracer))
      assert.deepStrictEqual(spans.map((s) => s.name), ["workpool.job"])
    }))

  it.effect("interrupted or timed out: its signal aborts, its canceler runs, it ends interrupted or timed out, the worker is free", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const signals: Array<AbortSignal> = []
      const hanging = Effect.promise((signal) => {
        signals.push(signal)
        return new Promise<never>(() => {})
      })
      const first = yield* pool.submit(hanging)
      yield* first.interrupt
      assert.isTrue(signals[0]!.aborted)
      assert.strictEqual(yield* first.status, "interrupted")
      // its timeout ends it the same way
      const second = yield* pool.submit(hanging, { timeout: "1 second" })
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* second.status, "timedOut")
      assert.isTrue(signals[1]!.aborted)
      // a callback's canceler runs after the abort, before the job counts as stopped
      const order: Array<string> = []
      const third = yield* pool.submit(Effect.callback<never>((_resume, signal) => {
        signal.addEventListener("abort", () => order.push("aborted"))
        return Effect.sync(() => order.push("canceler"))
      }))
      yield* third.interrupt
      assert.deepStrictEqual(order, ["aborted", "canceler"])
      // a late resume of a stopped job changes nothing; the worker runs the next job
      assert.strictEqual(yield* pool.run(Effect.succeed("next")), "next")
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.interrupted, stats.timedOut, stats.succeeded, stats.running], [2, 1, 1, 0])
    }))

  it.effect("a job cancelled while its function runs stops once the function returns", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const context = yield* Effect.context<never>()
      let aborted = false
      const exit = yield* Effect.exit(pool.run((_, id) =>
        Effect.promise((signal) => {
          Effect.runForkWith(context)(pool.cancel(id))
          signal.addEventListener("abort", () => (aborted = true))
          return new Promise<never>(() => {})
        })
      ))
      assert.isTrue(Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause))
      assert.isTrue(aborted)
      assert.strictEqual((yield* pool.stats).running, 0)
    }))
})
