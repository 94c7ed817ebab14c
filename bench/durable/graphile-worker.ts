/**
 * A graphile-worker consumer process: `run` with `concurrency` jobs at once and its defaults
 * otherwise (LISTEN/NOTIFY wake-ups, a 2 s poll for future jobs).
 */
import { Logger, type Runner, run as runWorker } from "graphile-worker"
import { type BenchJob, consumerConfig, serve } from "./protocol.ts"
import pg from "pg"

const quiet = new Logger(() => () => {})

if (process.send !== undefined) {
  const config = consumerConfig()
  // connected before `ready`; the runner starts on `go`
  const pool = new pg.Pool({ connectionString: config.url, max: config.concurrency + 2 })
  let runner: Runner | undefined
  await serve({
    connect: async () => {
      const client = await pool.connect()
      client.release()
    },
    consume: async (run) => {
      runner = await runWorker({
        pgPool: pool,
        schema: config.schema,
        concurrency: config.concurrency,
        noHandleSignals: true,
        logger: quiet,
        taskList: { [config.queue]: async (payload) => run(payload as BenchJob) }
      })
    },
    stop: async () => {
      await runner?.stop()
      await pool.end()
    }
  })
}
