/**
 * Snoozes and queue holds on every store (test/durable/snooze.ts), under TestClock; the Postgres
 * and Redis stores when their servers are set (WORKPOOL_PG_URL, WORKPOOL_REDIS_URL).
 */
import { describe } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"
import * as JobStore from "../src/JobStore.ts"
import { snoozeConformance } from "./durable/snooze.ts"
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

if (!Pg.enabled) describe.skip("snooze on Postgres (WORKPOOL_PG_URL is not set)", () => {})
else {
  snoozeConformance("Postgres", () => Pg.testLayer(), () => {
    const schema = Pg.freshSchema()
    return () => Pg.testLayer(schema)
  })
}

if (!Redis.enabled) describe.skip("snooze on Redis (WORKPOOL_REDIS_URL is not set)", () => {})
else {
  snoozeConformance("Redis", () => Redis.testLayer(), () => {
    const prefix = Redis.freshPrefix()
    return () => Redis.testLayer(prefix)
  })
}
