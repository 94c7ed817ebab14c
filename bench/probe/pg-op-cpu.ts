/**
 * This process's CPU per Postgres store operation, one after another (no consumer): `enqueue` (a
 * write) and `status` (a read, the store's `get`), `rounds` rounds of `ops` each after a warm-up
 * round. For an interleaved A/B of two trees (old, new, old, new, ...): run this file of each tree
 * in turn, each in a process of its own, and compare the medians.
 *
 *   node bench/probe/pg-op-cpu.ts <postgres://…> [ops=2000] [rounds=3]
 */
import { Effect, ManagedRuntime } from "effect"
import pg from "pg"
import * as JobQueue from "../../src/JobQueue.ts"
import * as PgJobStore from "../../src/PgJobStore.ts"
import { BenchTask } from "../durable/task.ts"

const [url = "", opsArg = "2000", roundsArg = "3"] = process.argv.slice(2)
const ops = Number(opsArg)
const rounds = Number(roundsArg)
const schema = `opcpu_${process.pid}`
const runtime = ManagedRuntime.make(PgJobStore.layer({ url, schema }))

const cpuPerOp = async (effect: (n: number) => Effect.Effect<unknown, unknown, any>) => {
  const before = process.cpuUsage()
  await runtime.runPromise(Effect.gen(function*() {
    for (let n = 0; n < ops; n++) yield* effect(n)
  }))
  const cpu = process.cpuUsage(before)
  return (cpu.user + cpu.system) / ops
}

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

try {
  const job = await runtime.runPromise(JobQueue.enqueue(BenchTask, { n: 0, t: 0 }))
  const enqueue: Array<number> = []
  const status: Array<number> = []
  for (let r = 0; r <= rounds; r++) {
    const e = await cpuPerOp((n) => JobQueue.enqueue(BenchTask, { n, t: 0 }))
    const s = await cpuPerOp(() => JobQueue.status(job.id))
    if (r > 0) {
      enqueue.push(e)
      status.push(s)
    }
  }
  console.log(JSON.stringify({
    enqueueUs: enqueue.map(Math.round),
    statusUs: status.map(Math.round),
    enqueueMedian: Math.round(median(enqueue)),
    statusMedian: Math.round(median(status))
  }))
} finally {
  await runtime.dispose()
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
  await client.end()
}
