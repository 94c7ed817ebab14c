/**
 * Job dependencies on every store (test/durable/dependencies.ts), under TestClock: kept by the
 * memory store; SQLite, Postgres and Redis (when their servers are set: WORKPOOL_PG_URL,
 * WORKPOOL_REDIS_URL) refuse them with a typed error until they keep them.
 */
import { describe } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"
import * as JobStore from "../src/JobStore.ts"
import { dependenciesConformance, unsupportedDependencies } from "./durable/dependencies.ts"
import * as Pg from "./durable/postgres.ts"
import * as Redis from "./durable/redis.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wp-deps-"))
let n = 0
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

dependenciesConformance("the memory store", () => JobStore.memory())

unsupportedDependencies("SQLite", () => JobStore.sqlite({ filename: path.join(dir, `jobs-${++n}.db`) }))

if (!Pg.enabled) describe.skip("job dependencies on Postgres (WORKPOOL_PG_URL is not set)", () => {})
else unsupportedDependencies("Postgres", () => Pg.testLayer())

if (!Redis.enabled) describe.skip("job dependencies on Redis (WORKPOOL_REDIS_URL is not set)", () => {})
else unsupportedDependencies("Redis", () => Redis.testLayer())
