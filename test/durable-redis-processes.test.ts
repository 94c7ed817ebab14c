/**
 * Durable jobs across real processes on Redis (the scenarios are in durable/processes.ts, shared
 * with Postgres): kill -9, killed between success and ack, a zombie, and a private server killed
 * with SIGKILL (a crash) and started again mid-run, with `appendonly yes` and `appendfsync always`:
 * every write acknowledged before the crash is in the append-only file, so no job is lost.
 */
import * as RedisJobStore from "../src/RedisJobStore.ts"
import { processProofs, restartProof, setup, threadProofs } from "./durable/processes.ts"
import * as redis from "./durable/redis.ts"
import * as redisServer from "./durable/redisserver.ts"

const onServer = (url: string, prefix: string) =>
  setup(RedisJobStore.layer({ url, prefix }), url, { WORKPOOL_REDIS_PREFIX: prefix })

processProofs("Redis", redis.enabled, () => onServer(redis.url!, redis.freshPrefix()))
threadProofs("Redis", redis.enabled, () => onServer(redis.url!, redis.freshPrefix()))

const binary = redisServer.binary()
if (binary === undefined && process.env.CI === "true") {
  throw new Error("no redis-server (apt-get install redis-server, or set WORKPOOL_REDIS_BIN): under CI=true the restart test must run")
}

restartProof(
  "Redis",
  binary === undefined ? undefined : {
    how: "is killed (SIGKILL) and started again",
    start: async () => {
      const server = await redisServer.startServer(binary)
      return { url: server.url, down: server.kill, up: server.start, destroy: server.destroy }
    }
  },
  (url) => onServer(url, "workpool")
)
