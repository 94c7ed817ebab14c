/**
 * Trace context across processes: the producer's span is stored with the job, and the consumer's
 * `workpool.job` span is its child, in the same trace. Producer and consumer here are two store
 * instances with two tracers (as two processes would be): the ids can only have come through the
 * store. On SQLite, Postgres and Redis.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Latch, type Layer, Option, Schema, Tracer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as PgJobStore from "../src/PgJobStore.ts"
import * as RedisJobStore from "../src/RedisJobStore.ts"
import * as Task from "../src/Task.ts"
import { enabled, freshSchema, url } from "./durable/postgres.ts"
import * as redis from "./durable/redis.ts"
import { recordingTracer } from "./helpers.ts"

const Traced = Task.make("Traced", { payload: Schema.Number, success: Schema.Number })

const parentOf = (span: Tracer.Span) => Option.getOrUndefined(span.parent)

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wp-trace-"))
let n = 0

const stores: ReadonlyArray<readonly [string, boolean, () => () => Layer.Layer<JobStore.JobStore, unknown>]> = [
  ["SQLite", true, () => {
    const filename = path.join(dir, `trace-${++n}.db`)
    return () => JobStore.sqlite({ filename })
  }],
  ["Postgres", enabled, () => {
    const schema = freshSchema()
    return () => PgJobStore.layer({ url: url!, schema })
  }],
  ["Redis", redis.enabled, () => {
    const prefix = redis.freshPrefix()
    return () => RedisJobStore.layer({ url: redis.url!, prefix })
  }]
]

describe("trace context stored with the job", () => {
  for (const [name, on, storeOf] of stores) {
    it.live.skipIf(!on)(`${name}: the consumer's workpool.job span is a child of the producer's span, in its trace`, () =>
      Effect.gen(function*() {
        const layer = storeOf()
        const producer = recordingTracer()
        const consumer = recordingTracer()
        // the producer: its own store instance and tracer, enqueueing within a span
        const [traced, untraced] = yield* Effect.gen(function*() {
          const job = yield* JobQueue.enqueue(Traced, 20).pipe(Effect.withSpan("http.request"))
          const plain = yield* JobQueue.enqueue(Traced, 1)
          return [job.id, plain.id] as const
        }).pipe(Effect.withTracer(producer.tracer), Effect.provide(layer()))
        const request = producer.spans.find((span) => span.name === "http.request")!

        // the consumer: another store instance, another tracer, its pool made inside a span of its own
        const done = yield* Latch.make(false)
        let ran = 0
        yield* Effect.gen(function*() {
          yield* JobQueue.consume({
            handlers: [Task.handle(Traced, (x) =>
              Effect.withSpan(Effect.sync(() => x * 2), "handler").pipe(
                Effect.ensuring(Effect.suspend(() => ++ran === 2 ? done.open : Effect.void))
              ))],
            concurrency: 1,
            poll: 10
          }).pipe(Effect.withSpan("consumer.start"))
          yield* done.await
          assert.strictEqual(yield* JobQueue.await(Traced, traced), 40)
        }).pipe(Effect.scoped, Effect.withTracer(consumer.tracer), Effect.provide(layer()), Effect.timeout("30 seconds"))

        const jobSpans = consumer.spans.filter((span) => span.name === "workpool.job")
        assert.strictEqual(jobSpans.length, 2)
        const [first, second] = jobSpans
        const fromRequest = [first!, second!].find((span) => parentOf(span)?.spanId === request.spanId)
        assert.isDefined(fromRequest, "one job span's parent is the producer's request span")
        assert.strictEqual(fromRequest!.traceId, request.traceId)
        assert.strictEqual(parentOf(fromRequest!)?.traceId, request.traceId)
        // the handler's own span is a child of that job span
        const handler = consumer.spans.find((span) => span.name === "handler" && parentOf(span)?.spanId === fromRequest!.spanId)
        assert.isDefined(handler)
        // a job enqueued outside any span: its span's parent is the consumer's own (as before)
        const other = first === fromRequest ? second! : first!
        const start = consumer.spans.find((span) => span.name === "consumer.start")!
        assert.strictEqual(parentOf(other)?.spanId, start.spanId)
        assert.notStrictEqual(other.traceId, request.traceId)
        void untraced
      }), { timeout: 60_000 })
  }
})
