/**
 * The stores a test runs on in its own process: memory and SQLite always, Postgres and Redis when
 * their servers are set (WORKPOOL_PG_URL, WORKPOOL_REDIS_URL; .ci/run sets both). Each call of a
 * layer's thunk gives a fresh store: a new file, schema or key prefix.
 */
import type { Layer } from "effect"
import * as JobStore from "../../src/JobStore.ts"
import * as Pg from "./postgres.ts"
import * as Rd from "./redis.ts"

export const storeLayers = (freshFile: () => string): Array<[string, () => Layer.Layer<JobStore.JobStore, any>]> => {
  const stores: Array<[string, () => Layer.Layer<JobStore.JobStore, any>]> = [
    ["memory", () => JobStore.memory()],
    ["SQLite", () => JobStore.sqlite({ filename: freshFile() })]
  ]
  if (Pg.enabled) stores.push(["Postgres", () => Pg.testLayer()])
  if (Rd.enabled) stores.push(["Redis", () => Rd.testLayer()])
  return stores
}
