/**
 * Prometheus: the pools' metrics at `GET /metrics`, in the Prometheus text format.
 *
 * Every pool publishes its `workpool_*` series in Effect's metric registry, so nothing here is
 * specific to this library: `PrometheusMetrics.layerHttp` (from `effect/observability`) adds the
 * route to an `effect/http` router, which formats the whole registry on each scrape. Serve it on its
 * own port, bound to loopback or a private interface: metrics tell a lot about a system.
 *
 * Run:  node examples/prometheus.ts          (METRICS_PORT=9464 by default, on 127.0.0.1)
 * Try:  curl -s localhost:9464/metrics | grep workpool_
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Config, Effect, Layer, Random, Schedule } from "effect"
import { HttpRouter } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import { createServer } from "node:http"
import { WorkPool } from "../src/index.ts"

/**
 * The scrape endpoint as a layer: `GET /metrics` on `host:port` (port 0 picks a free port; the
 * address is in `HttpServer.HttpServer`).
 */
export const metricsServer = (options: { readonly port: number; readonly host?: string | undefined }) =>
  HttpRouter.serve(PrometheusMetrics.layerHttp({ path: "/metrics" }), { disableLogger: true }).pipe(
    Layer.provideMerge(NodeHttpServer.layer(createServer, { port: options.port, host: options.host ?? "127.0.0.1" }))
  )

/** Some work to watch: a pool named "mail" sending mail that takes 10-200 ms and fails 1 in 10. */
export class Mail extends WorkPool.Service<Mail>()("app/Mail", { concurrency: 4, name: "mail" }) {}

const send = (to: number) =>
  Effect.gen(function*() {
    yield* Effect.sleep(yield* Random.nextBetween(10, 200))
    if (to % 10 === 0) return yield* Effect.fail(`mailbox ${to} is full`)
    return to
  })

const traffic = Effect.gen(function*() {
  const mail = yield* Mail
  let next = 0
  yield* Effect.repeat(
    Effect.suspend(() => Effect.forkChild(Effect.ignore(mail.run(send(++next), { priority: next % 3 })))),
    Schedule.spaced("40 millis")
  )
})

if (import.meta.main) {
  const main = Effect.gen(function*() {
    const port = yield* Config.Int("METRICS_PORT").pipe(Config.withDefault(9464))
    yield* Effect.log(`metrics at http://127.0.0.1:${port}/metrics (Ctrl-C to stop)`)
    return yield* Layer.launch(Layer.merge(metricsServer({ port }), Layer.effectDiscard(Effect.forkScoped(traffic))).pipe(
      Layer.provide(Mail.layer)
    ))
  })
  NodeRuntime.runMain(main)
}
