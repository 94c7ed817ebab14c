/**
 * OpenTelemetry: the pools' metrics and the jobs' spans pushed to a collector over OTLP/HTTP.
 *
 * Effect exports OTLP itself (`effect/observability`'s `Otlp`): no OpenTelemetry SDK. One layer
 * installs a tracer and a metrics reader that post to `<baseUrl>/v1/traces` and `/v1/metrics`
 * (JSON, or protobuf with `format: "protobuf"`: `Otlp.layerProtobuf`) every interval and once more when the layer is
 * released. Each job runs in a span `workpool.job`, child of the span that submitted it, so a
 * request's trace shows its jobs, their wait in the queue (`workpool.job.wait_ms`) and how they ended.
 *
 * Run:  an OpenTelemetry collector (or Jaeger, Grafana Alloy, ...) listening for OTLP/HTTP, then
 *       OTLP_URL=http://127.0.0.1:4318 node examples/otlp.ts
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Config, type Duration, Effect, Layer } from "effect"
import { FetchHttpClient } from "effect/http"
import { Otlp } from "effect/observability"
import { WorkPool } from "../src/index.ts"

/**
 * The exporter as a layer: traces and metrics over HTTP, flushed every `interval`, as JSON or as
 * protobuf (smaller; what most collectors expect by default).
 */
export const otlp = (options: {
  readonly baseUrl: string
  readonly interval?: Duration.Input | undefined
  readonly format?: "json" | "protobuf" | undefined
}) =>
  (options.format === "protobuf" ? Otlp.layerProtobuf : Otlp.layerJson)({
    baseUrl: options.baseUrl,
    resource: { serviceName: "effect-workpool-example" },
    metricsExportInterval: options.interval ?? "10 seconds",
    tracerExportInterval: options.interval ?? "5 seconds"
  }).pipe(Layer.provide(FetchHttpClient.layer))

/** A request handled in a span of its own, whose two jobs run in the pool: their spans are its children. */
export const handleRequest = (pool: WorkPool.WorkPool, id: number) =>
  Effect.gen(function*() {
    const thumb = yield* pool.run(Effect.sleep("30 millis").pipe(Effect.as(`thumb-${id}`), Effect.withSpan("resize")))
    yield* pool.run(Effect.log(`stored ${thumb}`))
    return thumb
  }).pipe(Effect.withSpan("handle-request", { attributes: { "request.id": id } }))

if (import.meta.main) {
  const main = Effect.gen(function*() {
    const pool = yield* WorkPool.make({ concurrency: 4, name: "images" })
    yield* Effect.forEach([1, 2, 3, 4, 5, 6], (id) => handleRequest(pool, id), { concurrency: 3 })
    yield* Effect.log("done; the exporter flushes as its layer is released")
  }).pipe(Effect.scoped)
  NodeRuntime.runMain(Effect.flatMap(
    Config.String("OTLP_URL").pipe(Config.withDefault("http://127.0.0.1:4318")),
    (baseUrl) => Effect.provide(main, otlp({ baseUrl, interval: "1 second" }))
  ))
}
