/**
 * An attacker's input and an attacker's browser: names that reach URLs, keys and SQL, and what the
 * dashboard's HTTP surface does with requests a page of another origin, or a client that never ends
 * its request, can send. Requests are real, on loopback.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer } from "effect"
import * as Dashboard from "../src/Dashboard.ts"
import { WorkPool } from "../src/index.ts"
import * as JobStore from "../src/JobStore.ts"

const TOKEN = "0123456789abcdef-test-token"

const start = (options: Dashboard.Options = { token: TOKEN }) =>
  Effect.map(Layer.build(Dashboard.layer(options)), (context) => Context.get(context, Dashboard.Dashboard))

/** A button's request as the page sends it: the URL the page builds, resolved as a browser does (WHATWG URL). */
const press = (dashboard: Dashboard.Dashboard["Service"], kind: "pool" | "queue", name: string, action: string) =>
  Effect.promise(async () => {
    const url = new URL("api/" + (kind === "pool" ? "pools/" : "queues/") + encodeURIComponent(name) + "/" + action, dashboard.address)
    const response = await fetch(url, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "x-workpool-dashboard": "1" },
      signal: AbortSignal.timeout(20_000)
    })
    return { status: response.status, body: await response.text() }
  })

describe("Dashboard: names the page puts in a URL's path", () => {
  // "." and ".." are dot segments: a browser resolves them away (and their %2e spellings too), so
  // the page's button for a pool or queue of that name reached another path ("api/pools/../pause"
  // is "api/pause", a 404) and could never act on it. Refused when added, as a name with a lone
  // surrogate is, instead of a page whose buttons fail.
  for (const name of [".", ".."]) {
    it.effect(`a pool or a queue named ${JSON.stringify(name)} is refused with InvalidDashboardOptions naming the field`, () =>
      Effect.gen(function*() {
        const dashboard = yield* start()
        const pool = yield* WorkPool.make({ concurrency: 1, name })
        const added = yield* Effect.exit(dashboard.add(pool))
        assert.isTrue(Exit.isFailure(added), "the pool was added, with buttons that cannot reach it")
        const error = yield* Effect.flip(dashboard.add(pool))
        assert.strictEqual(error._tag, "InvalidDashboardOptions")
        assert.strictEqual(error.field, "pool.name")
        assert.include(error.message, "path")
        const queue = yield* Effect.flip(Effect.provide(dashboard.addQueue(name), JobStore.memory()))
        assert.strictEqual(queue._tag, "InvalidDashboardOptions")
        assert.strictEqual(queue.field, "queue")
      }))
  }

  it.effect("names with / % ? # \\ * : and dots among other characters reach their own pool and queue from the page's URL", () =>
    Effect.gen(function*() {
      const dashboard = yield* start()
      const store = yield* Layer.build(JobStore.memory())
      const names = ["a/b", "x/jobs/1", "%", "a%2Fb", "?x", "#x", "\\", "*", ":pool", "...", ".a", "a..", "é ü"]
      for (const name of names) {
        yield* dashboard.add(yield* WorkPool.make({ concurrency: 1, name }))
        yield* Effect.provide(dashboard.addQueue(name), store)
      }
      for (const name of names) {
        for (const kind of ["pool", "queue"] as const) {
          const reply = yield* press(dashboard, kind, name, "pause")
          assert.deepStrictEqual([name, kind, reply.status, reply.body], [name, kind, 200, `{"paused":true}`])
        }
      }
    }))
})
