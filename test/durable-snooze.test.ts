/**
 * Snoozes and queue holds on every store (test/durable/snooze.ts), under TestClock; the Postgres
 * and Redis stores when their servers are set (WORKPOOL_PG_URL, WORKPOOL_REDIS_URL).
 */
import { describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"
import * as JobStore from "../src/JobStore.ts"
import * as PgJobStore from "../src/PgJobStore.ts"
import * as RedisJobStore from "../src/RedisJobStore.ts"
import { holdOnServerClock, snoozeConformance } from "./durable/snooze.ts"
import * as Pg from "./durable/postgres.ts"
import * as Redis from "./durable/redis.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wp-snooze-"))
let n = 0
const fresh = () => path.join(dir, `jobs-${++n}.db`)
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

snoozeConformance("the memory store", () => JobStore.memory())

snoozeConformance("SQLite", () => JobStore.sqlite({ filename: fresh() }), () => {
  const filename = fresh()
  return () => JobStore.sqlite({ filename })
})
it.live("a queue hold on SQLite's public layer: held for its hour, lifted by 0", () =>
  Effect.provide(holdOnServerClock, JobStore.sqlite({ filename: fresh() })))

if (!Pg.enabled) describe.skip("snooze on Postgres (WORKPOOL_PG_URL is not set)", () => {})
else {
  snoozeConformance("Postgres", () => Pg.testLayer(), () => {
    const schema = Pg.freshSchema()
    return () => Pg.testLayer(schema)
  })
  it.live("a queue hold on the Postgres server's clock (the public layer): held for its hour, lifted by 0", () =>
    Effect.provide(holdOnServerClock, PgJobStore.layer({ url: Pg.url!, schema: Pg.freshSchema(), maxConnections: 2 })))
}

if (!Redis.enabled) describe.skip("snooze on Redis (WORKPOOL_REDIS_URL is not set)", () => {})
else {
  snoozeConformance("Redis", () => Redis.testLayer(), () => {
    const prefix = Redis.freshPrefix()
    return () => Redis.testLayer(prefix)
  })
  it.live("a queue hold on the Redis server's clock (the public layer): held for its hour, lifted by 0", () =>
    Effect.provide(holdOnServerClock, RedisJobStore.layer({ url: Redis.url!, prefix: Redis.freshPrefix() })))
}
