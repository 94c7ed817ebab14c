/**
 * What one look of a progress reader costs (`JobQueue.progressChanges` looks at every change its
 * process hears of, and every 250 ms): the whole row (`Store.get`, as it read before) against the
 * state and progress alone (`Store.progressOf`), on one running job whose payload is `bytes` long,
 * in the same process, in alternating blocks. Prints the medians of the blocks, µs per look.
 *
 *   node bench/durable/progress-read.ts <postgres://… | file.db> [bytes=100000] [looks=200] [blocks=10]
 */
import { Effect, ManagedRuntime } from "effect"
import { rmSync } from "node:fs"
import * as JobStore from "../../src/JobStore.ts"
import * as PgJobStore from "../../src/PgJobStore.ts"

const [url = "", bytesArg = "100000", looksArg = "200", blocksArg = "10"] = process.argv.slice(2)
const bytes = Number(bytesArg)
const looks = Number(looksArg)
const blocks = Number(blocksArg)
const isPg = url.startsWith("postgres://")
const schema = `progress_${process.pid}`
const runtime = ManagedRuntime.make(
  (isPg ? PgJobStore.layer({ url, schema }) : JobStore.sqlite({ filename: url })) as ReturnType<typeof JobStore.memory>
)

const store = await runtime.runPromise(Effect.gen(function*() {
  return yield* JobStore.JobStore
}))
const { id } = await runtime.runPromise(store.enqueue({
  queue: "q",
  task: "T",
  payload: JSON.stringify("x".repeat(bytes)),
  priority: 0,
  dedupKey: null,
  maxAttempts: 1,
  timeout: 60_000,
  delay: 0,
  runAt: undefined
}))
const claimed = await runtime.runPromise(store.claim({ queues: ["q"], tasks: ["T"], limit: 1, lease: 60_000 }))
await runtime.runPromise(store.progress(claimed.claims[0]!.token, JSON.stringify({ done: 1, of: 2 })))

const time = async (look: Effect.Effect<unknown, unknown>) => {
  const t = performance.now()
  for (let i = 0; i < looks; i++) await runtime.runPromise(look)
  return ((performance.now() - t) / looks) * 1000
}
const median = (values: Array<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!
const row: Array<number> = []
const only: Array<number> = []
await time(store.get(id))
await time(store.progressOf(id))
for (let b = 0; b < blocks; b++) {
  if (b % 2 === 0) {
    row.push(await time(store.get(id)))
    only.push(await time(store.progressOf(id)))
  } else {
    only.push(await time(store.progressOf(id)))
    row.push(await time(store.get(id)))
  }
}
console.log(JSON.stringify({
  store: isPg ? "postgres" : "sqlite",
  bytes,
  rowUs: Math.round(median(row)),
  progressOfUs: Math.round(median(only)),
  ratio: +(median(only) / median(row)).toFixed(2),
  spreadRow: [Math.round(Math.min(...row)), Math.round(Math.max(...row))],
  spreadOnly: [Math.round(Math.min(...only)), Math.round(Math.max(...only))]
}))
await runtime.dispose()
if (isPg) {
  const pg = (await import("pg")).default
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
  await client.end()
} else {
  for (const suffix of ["", "-wal", "-shm"]) rmSync(url + suffix, { force: true })
}
