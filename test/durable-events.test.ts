/**
 * A consumer's lifecycle events (test/durable/events.ts) on every store, under TestClock; the
 * Postgres and Redis stores when their servers are set (WORKPOOL_PG_URL, WORKPOOL_REDIS_URL), a
 * Redis Cluster of its own when a redis-server binary is there.
 */
import { describe } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll } from "vitest"
import * as JobStore from "../src/JobStore.ts"
import { eventsConformance } from "./durable/events.ts"
import * as Pg from "./durable/postgres.ts"
import * as Redis from "./durable/redis.ts"
import * as redisServer from "./durable/redisserver.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wp-events-"))
let n = 0
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

eventsConformance("the memory store", () => JobStore.memory())
eventsConformance("SQLite", () => JobStore.sqlite({ filename: path.join(dir, `jobs-${++n}.db`) }))

if (!Pg.enabled) describe.skip("lifecycle events on Postgres (WORKPOOL_PG_URL is not set)", () => {})
else eventsConformance("Postgres", () => Pg.testLayer())

if (!Redis.enabled) describe.skip("lifecycle events on Redis (WORKPOOL_REDIS_URL is not set)", () => {})
else eventsConformance("Redis", () => Redis.testLayer())

// a reap on a Cluster runs one queue's script at a time (a script runs in one slot): `REAP_TOLD`'s single form
const binary = redisServer.binary()
if (binary === undefined) describe.skip("lifecycle events on a Redis Cluster (no redis-server binary)", () => {})
else {
  let cluster: redisServer.Cluster | undefined
  beforeAll(async () => {
    cluster = await redisServer.startCluster(binary)
  }, 120_000)
  afterAll(() => cluster?.destroy())
  eventsConformance("a Redis Cluster", () => Redis.clusterLayer(() => cluster!.url))
}
