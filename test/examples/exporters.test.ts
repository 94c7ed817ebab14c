/**
 * The exporter recipes (examples/prometheus.ts, examples/otlp.ts), run against receivers on the
 * loopback interface: a scrape of `/metrics` parsed as the Prometheus text format, and a small
 * OTLP/HTTP collector in the test that decodes what it is sent (JSON, or protobuf with the decoder
 * in otlp-protobuf.ts: every OTLP test runs with both). Every wait is for an event (a response, a
 * request received) and bounded; nothing sleeps a guessed time.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { HttpServer } from "effect/http"
import { createServer, type IncomingMessage, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { handleRequest, otlp } from "../../examples/otlp.ts"
import { metricsServer } from "../../examples/prometheus.ts"
import { WorkPool } from "../../src/index.ts"
import * as ThreadPool from "../../src/ThreadPool.ts"
import { Inspect, Traced } from "../fixtures/observe-tasks.ts"
import * as Protobuf from "./otlp-protobuf.ts"

interface Sample {
  readonly name: string
  readonly labels: Record<string, string>
  readonly value: number
}

/** The Prometheus text format (0.0.4): `# TYPE name kind` lines and `name{k="v",...} value` samples. */
const parsePrometheus = (text: string) => {
  const types = new Map<string, string>()
  const samples: Array<Sample> = []
  for (const line of text.split("\n")) {
    if (line === "") continue
    const type = /^# TYPE (\S+) (\S+)$/.exec(line)
    if (type !== null) {
      types.set(type[1]!, type[2]!)
      continue
    }
    if (line.startsWith("#")) continue
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    assert.isNotNull(sample, `a sample line: ${line}`)
    const labels: Record<string, string> = {}
    for (const [, key, value] of sample![2]?.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g) ?? []) {
      labels[key!] = value!
    }
    samples.push({ name: sample![1]!, labels, value: Number(sample![3]) })
  }
  return { types, samples }
}

const valueOf = (samples: ReadonlyArray<Sample>, name: string, labels: Record<string, string>) => {
  const found = samples.filter((s) =>
    s.name === name && Object.entries(labels).every(([key, value]) => s.labels[key] === value)
  )
  assert.strictEqual(found.length, 1, `one sample ${name} ${JSON.stringify(labels)}`)
  return found[0]!.value
}

describe("Prometheus recipe", () => {
  it.live("GET /metrics serves the pool's series in the text format, labelled with its name", () =>
    Effect.gen(function*() {
      const server = yield* Layer.build(metricsServer({ port: 0 }))
      const base = HttpServer.formatAddress(Context.get(server, HttpServer.HttpServer).address)
      const pool = yield* WorkPool.make({ concurrency: 2, name: "prom-test" })
      yield* Effect.forEach([1, 2, 3], (i) => pool.run(Effect.succeed(i)))
      yield* Effect.exit(pool.run(Effect.fail("no")))

      const response = yield* Effect.promise(() => fetch(`${base}/metrics`, { signal: AbortSignal.timeout(20_000) }))
      assert.strictEqual(response.status, 200)
      assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/)
      const { samples, types } = parsePrometheus(yield* Effect.promise(() => response.text()))

      assert.strictEqual(types.get("workpool_jobs_ended"), "counter")
      assert.strictEqual(types.get("workpool_jobs_queued"), "gauge")
      assert.strictEqual(types.get("workpool_job_run_ms"), "histogram")
      const pool_ = { pool: "prom-test" }
      assert.strictEqual(valueOf(samples, "workpool_jobs_submitted", pool_), 4)
      assert.strictEqual(valueOf(samples, "workpool_jobs_ended", { ...pool_, ending: "succeeded" }), 3)
      assert.strictEqual(valueOf(samples, "workpool_jobs_ended", { ...pool_, ending: "failed" }), 1)
      assert.strictEqual(valueOf(samples, "workpool_workers", pool_), 2)
      assert.strictEqual(valueOf(samples, "workpool_jobs_running", pool_), 0)
      assert.strictEqual(valueOf(samples, "workpool_job_run_ms_count", pool_), 4)
      assert.strictEqual(valueOf(samples, "workpool_job_wait_ms_bucket", { ...pool_, le: "+Inf" }), 4)
    }))
})

// --- a small OTLP/HTTP collector ------------------------------------------------------------------

interface Received {
  readonly path: string
  readonly contentType: string
  readonly body: any
}

const readBody = (request: IncomingMessage) =>
  new Promise<Buffer>((resolve, reject) => {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => resolve(Buffer.concat(chunks)))
    request.on("error", reject)
  })

/** A request's body in the OTLP/JSON shape, whichever encoding it came in. */
const decodeBody = (path: string, contentType: string, body: Buffer): unknown =>
  contentType.startsWith("application/x-protobuf") ? Protobuf.decodeRequest(path, body) : JSON.parse(body.toString("utf8"))

interface Collector {
  readonly baseUrl: string
  readonly received: Array<Received>
  /** Called after each request received. */
  readonly changed: Set<() => void>
  readonly server: Server
}

/** Listens on 127.0.0.1 (a free port), answers 200 to every POST and keeps what it was sent. */
const collector = Effect.acquireRelease(
  Effect.callback<Collector>(
    (resume) => {
      const received: Array<Received> = []
      const changed = new Set<() => void>()
      const server = createServer((request, response) => {
        readBody(request).then((raw) => {
          const path = request.url ?? ""
          const contentType = request.headers["content-type"] ?? ""
          received.push({ path, contentType, body: decodeBody(path, contentType, raw) })
          response.writeHead(200, { "content-type": "application/json" }).end("{}")
          for (const notify of changed) notify()
        }, () => response.writeHead(400).end())
      })
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as AddressInfo
        resume(Effect.succeed({ baseUrl: `http://127.0.0.1:${port}`, received, changed, server }))
      })
    }
  ),
  (c) => Effect.promise(() => new Promise<void>((resolve) => c.server.close(() => resolve())))
)

/** Waits (bounded) until `found` returns something for what the collector has received. */
const waitForRequest = <A>(
  c: Collector,
  what: string,
  found: (received: ReadonlyArray<Received>) => A | undefined
) =>
  Effect.callback<A>((resume) => {
    const check = () => {
      const result = found(c.received)
      if (result === undefined) return
      c.changed.delete(check)
      resume(Effect.succeed(result))
    }
    c.changed.add(check)
    check()
    return Effect.sync(() => c.changed.delete(check))
  }).pipe(
    Effect.timeoutOrElse({
      duration: "30 seconds",
      orElse: () => Effect.die(new Error(`no ${what} after 30 s; received: ${c.received.map((r) => r.path)}`))
    })
  )

const attribute = (attributes: ReadonlyArray<any> | undefined, key: string) => {
  const value = attributes?.find((a) => a.key === key)?.value
  return value === undefined ? undefined : value.stringValue ?? value.intValue ?? value.doubleValue ?? value.boolValue
}

const spansOf = (received: ReadonlyArray<Received>) =>
  received.filter((r) => r.path === "/v1/traces").flatMap((r) =>
    r.body.resourceSpans.flatMap((rs: any) => rs.scopeSpans.flatMap((ss: any) => ss.spans))
  )

const metricsOf = (received: ReadonlyArray<Received>) =>
  received.filter((r) => r.path === "/v1/metrics").flatMap((r) =>
    r.body.resourceMetrics.flatMap((rm: any) => rm.scopeMetrics.flatMap((sm: any) => sm.metrics))
  )

for (const format of ["json", "protobuf"] as const) {
  describe(`OTLP recipe (${format})`, () => {
    it.live("posts the pool's metrics and the jobs' spans, children of the submitter's span, to a collector", () =>
      Effect.gen(function*() {
        const c = yield* collector
        const exported = Effect.gen(function*() {
          const pool = yield* WorkPool.make({ concurrency: 2, name: "otlp-test" })
          assert.strictEqual(yield* handleRequest(pool, 7), "thumb-7")

          const spans = yield* waitForRequest(c, "spans of the request and its jobs", (received) => {
            const spans = spansOf(received)
            const request = spans.find((s: any) => s.name === "handle-request")
            const jobs = spans.filter((s: any) => s.name === "workpool.job")
            return request !== undefined && jobs.length === 2 && spans.some((s: any) => s.name === "resize")
              ? { request, jobs, resize: spans.find((s: any) => s.name === "resize") }
              : undefined
          })
          // both jobs are children of the span that submitted them, in its trace
          for (const job of spans.jobs) {
            assert.strictEqual(job.traceId, spans.request.traceId)
            assert.strictEqual(job.parentSpanId, spans.request.spanId)
            assert.strictEqual(attribute(job.attributes, "workpool.pool"), "otlp-test")
            assert.strictEqual(attribute(job.attributes, "workpool.job.ending"), "succeeded")
          }
          // and the job's own span is the parent of what it does
          assert.include(spans.jobs.map((job: any) => job.spanId), spans.resize.parentSpanId)

          const ended = yield* waitForRequest(c, "the pool's metrics", (received) => {
            const points = metricsOf(received).filter((m: any) => m.name === "workpool_jobs_ended")
              .flatMap((m: any) => m.sum.dataPoints)
              .filter((p: any) =>
                attribute(p.attributes, "pool") === "otlp-test" && attribute(p.attributes, "ending") === "succeeded"
              )
            const last = points.at(-1)
            return last !== undefined && Number(last.asInt ?? last.asDouble) === 2 ? last : undefined
          })
          assert.isDefined(ended)
          const runMs = metricsOf(c.received).find((m: any) =>
            m.name === "workpool_job_run_ms" &&
            m.histogram.dataPoints.some((p: any) => attribute(p.attributes, "pool") === "otlp-test")
          )
          assert.isDefined(runMs, "the run-time histogram")
          // its last point counts both jobs, spread over its buckets, which are bounded by 1 ms to 65 s
          const point = runMs.histogram.dataPoints.filter((p: any) => attribute(p.attributes, "pool") === "otlp-test").at(-1)
          assert.strictEqual(Number(point.count), 2)
          assert.strictEqual(point.bucketCounts.reduce((sum: number, n: string | number) => sum + Number(n), 0), 2)
          assert.strictEqual(point.bucketCounts.length, point.explicitBounds.length + 1)
          assert.strictEqual(point.explicitBounds[0], 1)
          assert.isAbove(point.sum, 0)
        }).pipe(Effect.scoped)
        yield* Effect.provide(exported, otlp({ baseUrl: c.baseUrl, interval: "100 millis", format }))
        const contentType = format === "json" ? "application/json" : "application/x-protobuf"
        assert.isTrue(c.received.length > 0 && c.received.every((r) => r.contentType.startsWith(contentType)))
      }))

    it.live("a thread task's workpool.job span reaches the collector as a child of its submitter, and the thread runs under it", () =>
      Effect.gen(function*() {
        const c = yield* collector
        const exported = Effect.gen(function*() {
          const pool = yield* ThreadPool.make({
            worker: new URL("../fixtures/observe-worker.ts", import.meta.url),
            threads: 1,
            name: "otlp-threads"
          })
          const seen = yield* pool.run(Inspect, 1).pipe(Effect.withSpan("thread-request"))
          const spans = yield* waitForRequest(c, "the thread task's spans", (received) => {
            const spans = spansOf(received)
            const request = spans.find((s: any) => s.name === "thread-request")
            const job = spans.find((s: any) => s.name === "workpool.job")
            return request !== undefined && job !== undefined ? { request, job } : undefined
          })
          assert.strictEqual(spans.job.parentSpanId, spans.request.spanId)
          assert.strictEqual(spans.job.traceId, spans.request.traceId)
          assert.strictEqual(attribute(spans.job.attributes, "workpool.task"), "Inspect")
          // the task ran in its thread under the very span the collector received
          assert.strictEqual(seen.parentSpanId, spans.job.spanId)
          assert.strictEqual(seen.parentTraceId, spans.job.traceId)
          assert.strictEqual(seen.childTraceId, spans.job.traceId)
        }).pipe(Effect.scoped)
        yield* Effect.provide(exported, otlp({ baseUrl: c.baseUrl, interval: "100 millis", format }))
      }))

    it.live("the spans a task makes in its thread reach the collector, under its job's span, with the thread's ids", () =>
      Effect.gen(function*() {
        const c = yield* collector
        const exported = Effect.gen(function*() {
          const pool = yield* ThreadPool.make({
            worker: new URL("../fixtures/observe-worker.ts", import.meta.url),
            threads: 1,
            name: "otlp-thread-spans"
          })
          const seen = yield* pool.run(Traced, 3).pipe(Effect.withSpan("thread-request"))
          assert.isTrue(seen.recording)
          const names = ["thread-request", "workpool.job", "thread.outer", "thread.inner", "thread.failing"]
          const spans = yield* waitForRequest(c, "the spans made in the thread", (received) => {
            const all = spansOf(received)
            const found = names.map((name) => all.find((s: any) => s.name === name))
            return found.every((s) => s !== undefined) ? found : undefined
          })
          const [request, job, outer, inner, failing] = spans
          assert.strictEqual(job.parentSpanId, request.spanId)
          // parent and child across the thread boundary, with the ids the thread gave them
          assert.deepStrictEqual(
            [outer.parentSpanId, inner.parentSpanId, failing.parentSpanId],
            [job.spanId, outer.spanId, outer.spanId]
          )
          assert.deepStrictEqual(
            [outer.spanId, inner.spanId, failing.spanId],
            [seen.outerSpanId, seen.innerSpanId, seen.failingSpanId]
          )
          for (const span of [outer, inner, failing]) assert.strictEqual(span.traceId, request.traceId)
          assert.strictEqual(Number(attribute(outer.attributes, "outer.n")), 3)
          assert.strictEqual(outer.events[0]?.name, "halfway")
          assert.strictEqual(inner.kind, 3) // client
          // the failed span's status and exception, as the thread saw them
          assert.strictEqual(failing.status.code, 2)
          assert.include(failing.status.message, "boom")
          assert.strictEqual(outer.status.code, 1)
          // and its log line carries the span the collector received
          assert.strictEqual(seen.logged[0]?.spanId, inner.spanId)
        }).pipe(Effect.scoped)
        yield* Effect.provide(exported, otlp({ baseUrl: c.baseUrl, interval: "100 millis", format }))
      }))
  })
}
