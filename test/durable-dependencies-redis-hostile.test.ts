/**
 * Hostile tests of job dependencies on Redis (redisScripts.ts `DEPENDENCIES`: `B:deps:<id>`,
 * `B:waits:<id>`, `B:blocked`): bad graphs, a consumer process killed (SIGKILL) while it holds a
 * dependency, a private server killed and started again between a graph's enqueue and its head's
 * settle. The scenarios shared with SQLite are in durable/dependenciesHostile.ts.
 */
import { describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as RedisJobStore from "../src/RedisJobStore.ts"
import { badGraphsProof, killedHolderProof, releasedWakeProof, serverRestartProof } from "./durable/dependenciesHostile.ts"
import { setup } from "./durable/processes.ts"
import * as Rd from "./durable/redis.ts"
import * as redisServer from "./durable/redisserver.ts"

const onServer = (url: string, prefix: string) => setup(RedisJobStore.layer({ url, prefix }), url, { WORKPOOL_REDIS_PREFIX: prefix })
const binary = redisServer.binary()

describe.runIf(Rd.enabled)("job dependencies on Redis, hostile", () => {
  it.effect("bad graphs from an untyped caller are refused typed, naming the item, and nothing of the call is stored; 1,000 dependencies are kept", () =>
    badGraphsProof.pipe(Effect.scoped, Effect.provide(Rd.testLayer())), { timeout: 60_000 })

  it("a consumer process killed (SIGKILL) while it runs the head of a fan-out: another process reaps and runs it, and each dependent (enqueued before, while held, while reaped) runs once, after it", { timeout: 240_000 }, async () => {
    await killedHolderProof(onServer(Rd.url!, Rd.freshPrefix()))
  })

  it.runIf(binary !== undefined)("a private server killed (SIGKILL, appendfsync always) and started again after a graph's enqueue and while its head runs: each dependent runs once, after it", { timeout: 240_000 }, async () => {
    const server = await redisServer.startServer(binary!)
    try {
      await serverRestartProof(onServer(server.url, "workpool"), { down: server.kill, up: server.start })
    } finally {
      await server.destroy()
    }
  })

  it("a consumer process idle with a 10-minute poll runs the jobs another process's settle released: one at once, one when its own delay ends", { timeout: 120_000 }, async () => {
    await releasedWakeProof(onServer(Rd.url!, Rd.freshPrefix()))
  })
})
