/**
 * Durable jobs across real processes on Postgres (the scenarios are in durable/processes.ts, shared
 * with Redis): kill -9, killed between success and ack, a zombie, and the server stopped
 * (`pg_ctl stop -m fast`) and started mid-run.
 */
import * as PgJobStore from "../src/PgJobStore.ts"
import * as pg from "./durable/postgres.ts"
import * as pgServer from "./durable/pgserver.ts"
import { processProofs, restartProof, setup, threadProofs } from "./durable/processes.ts"

const onServer = (url: string, schema: string) =>
  setup(PgJobStore.layer({ url, schema, maxConnections: 2 }), url, { WORKPOOL_PG_SCHEMA: schema })

processProofs("Postgres", pg.enabled, () => onServer(pg.url!, pg.freshSchema()))
threadProofs("Postgres", pg.enabled, () => onServer(pg.url!, pg.freshSchema()))

const binaries = pgServer.binaries()
if (binaries === undefined && process.env.CI === "true") {
  throw new Error("no Postgres server binaries (apt-get install postgresql, or set WORKPOOL_PG_BIN): under CI=true the restart test must run")
}

restartProof(
  "Postgres",
  binaries === undefined ? undefined : {
    how: "stops and starts",
    start: async () => {
      const server = await pgServer.startServer(binaries)
      return { url: server.url, down: server.stop, up: server.start, destroy: server.destroy }
    }
  },
  (url) => onServer(url, "workpool")
)
