// The live dashboard from the installed package (with @effect/platform-node): a pool and a durable
// queue added, its page and its API fetched. Prints "dashboard ok {...}" or "dashboard FAILED ...".
import { Effect, Layer } from "effect"
import { WorkPool } from "effect-workpool"
import * as Dashboard from "effect-workpool/Dashboard"
import * as JobStore from "effect-workpool/JobStore"

const get = (url, headers = {}) => Effect.promise(() => fetch(url, { headers }).then((response) => response.status))

const program = Effect.gen(function*() {
  const dashboard = yield* Dashboard.Dashboard
  yield* dashboard.add(yield* WorkPool.make({ concurrency: 2, name: "images" }))
  yield* dashboard.addQueue("mail")
  const url = new URL(dashboard.url)
  const token = new URLSearchParams(url.hash.slice(1)).get("token")
  return {
    page: yield* get(`${url.origin}/`),
    snapshot: yield* get(`${url.origin}/api/snapshot`, { authorization: `Bearer ${token}` }),
    noToken: yield* get(`${url.origin}/api/snapshot`)
  }
}).pipe(Effect.scoped, Effect.provide(Layer.mergeAll(Dashboard.layer({ port: 0 }), JobStore.memory())))

Effect.runPromise(program).then(
  (result) => console.log(`dashboard ok ${JSON.stringify(result)}`),
  (error) => console.log(`dashboard FAILED ${error?.stack ?? JSON.stringify(error)}`)
)
