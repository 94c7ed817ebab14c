/**
 * A claim over a queue per tenant (docs/operations.md, "Many queues") on SQLite or Postgres, by
 * priority and fair (`consume({ dispatch })`): `queues` queues of `jobs` jobs each, then `claims`
 * claims of 16 of each kind, one after another on one store instance; prints each kind's median
 * and range. SQLite in a temporary file; Postgres in a schema of its own, dropped at the end:
 *
 *   node bench/durable/many-queues-claim.ts sqlite [queues=10000] [jobs=3] [claims=15]
 *   WORKPOOL_PG_URL=postgres://… node bench/durable/many-queues-claim.ts postgres [queues] [jobs] [claims]
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { ClaimRequest } from "../../src/internal/store/model.ts"
import * as PostgresStore from "../../src/internal/store/postgres.ts"
import * as SqliteStore from "../../src/internal/store/sqlite.ts"
import { echoJob as job } from "./task.ts"

const [store = "sqlite", queuesArg = "10000", jobsArg = "3", claimsArg = "15"] = process.argv.slice(2)
const QUEUES = Number(queuesArg)
const JOBS = Number(jobsArg)
const CLAIMS = Number(claimsArg)

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wp-many-queues-claim-"))
const schema = `wp_many_queues_claim_${process.pid}`
const open = store === "postgres"
  ? Effect.flatMap(
    PostgresStore.options({ url: process.env.WORKPOOL_PG_URL ?? "set WORKPOOL_PG_URL", schema }),
    PostgresStore.make
  )
  : Effect.flatMap(SqliteStore.options({ filename: path.join(dir, "jobs.db") }), SqliteStore.make)

const program = Effect.gen(function*() {
  const jobs = yield* open
  const queues = Array.from({ length: QUEUES }, (_, i) => `tenant-${i}`)
  yield* jobs.enqueueAll(Array.from({ length: JOBS }, () => queues).flat().map(job))
  for (const fair of [false, true, false, true]) {
    const request: ClaimRequest = { queues, tasks: ["Echo"], limit: 16, lease: 30_000, fair }
    const times: Array<number> = []
    for (let i = 0; i < CLAIMS; i++) {
      const started = performance.now()
      yield* jobs.claim(request)
      times.push(performance.now() - started)
    }
    times.sort((a, b) => a - b)
    console.log(
      `${store}, ${QUEUES} queues, claim of 16 ${fair ? "fair" : "by priority"}: median ${times[times.length >> 1]!.toFixed(1)} ms (${times[0]!.toFixed(1)}-${times[times.length - 1]!.toFixed(1)})`
    )
  }
}).pipe(Effect.scoped)

try {
  await Effect.runPromise(program)
} finally {
  fs.rmSync(dir, { recursive: true, force: true })
  if (store === "postgres") {
    const { execFileSync } = await import("node:child_process")
    execFileSync("psql", ["-h", "127.0.0.1", "-p", "55500", "-U", "postgres", "-d", "workpool", "-c", `DROP SCHEMA IF EXISTS ${schema} CASCADE`])
  }
}
