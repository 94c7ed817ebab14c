/**
 * CPU per drained job in one warm consumer process: `rounds` times, enqueue `jobs` no-op jobs on a
 * fresh queue, then start a consumer (× `concurrency`) and measure this process's user + system CPU
 * from its start until the handler has run every job. The first round warms up and is not reported.
 *
 *   node bench/durable/cpu.ts <postgres://… | redis://… | file.db> [jobs=2000] [rounds=6] [concurrency=8]
 *
 * Compare two versions side by side (both at the same moment, so both see the same load).
 */
import { Deferred, Effect } from "effect"
import { rmSync, writeFileSync } from "node:fs"
import { Session } from "node:inspector/promises"
import * as JobQueue from "../../src/JobQueue.ts"
import { storeOf } from "./ours.ts"
import * as Task from "../../src/Task.ts"
import { BenchTask } from "./task.ts"

const [url = "", jobsArg = "2000", roundsArg = "6", concurrencyArg = "8"] = process.argv.slice(2)
const jobs = Number(jobsArg)
const rounds = Number(roundsArg)
const concurrency = Number(concurrencyArg)
const schema = `cpu_${process.pid}`

const startProfile = Effect.promise(async () => {
  const session = new Session()
  session.connect()
  await session.post("Profiler.enable")
  await session.post("Profiler.setSamplingInterval", { interval: 100 })
  await session.post("Profiler.start")
  return session
})

const stopProfile = (session: Session) =>
  Effect.promise(async () => {
    const { profile } = await session.post("Profiler.stop")
    writeFileSync(process.env.CPU_PROF!, JSON.stringify(profile))
    session.disconnect()
  })

const round = (r: number) =>
  Effect.gen(function*() {
    const queue = `${schema}_${r}`
    yield* Effect.forEach(
      Array.from({ length: jobs }, (_, n) => n),
      (n) => JobQueue.enqueue(BenchTask, { n, t: 0 }, { queue }),
      { concurrency: 16, discard: true }
    )
    let ran = 0
    const done = yield* Deferred.make<void>()
    const profile = r === rounds && process.env.CPU_PROF !== undefined ? yield* startProfile : undefined
    const before = process.cpuUsage()
    const t = performance.now()
    return yield* Effect.scoped(Effect.gen(function*() {
      yield* JobQueue.consume({
        queues: [queue],
        handlers: [Task.handle(BenchTask, (job) => Effect.sync(() => {
          if (job.n >= 0 && ++ran === jobs) Deferred.doneUnsafe(done, Effect.void)
        }))],
        concurrency,
        ...(url.startsWith("postgres://") || url.startsWith("redis://") ? {} : { poll: 10 })
      })
      yield* Deferred.await(done)
      const cpu = process.cpuUsage(before)
      const ms = performance.now() - t
      if (profile !== undefined) yield* stopProfile(profile)
      return { us: (cpu.user + cpu.system) / jobs, ms }
    }))
  })

const program = Effect.gen(function*() {
  const results: Array<{ us: number; ms: number }> = []
  for (let r = 0; r <= rounds; r++) {
    const result = yield* round(r)
    if (r > 0) results.push(result)
  }
  const us = results.map((x) => x.us).sort((a, b) => a - b)
  const median = us[Math.floor(us.length / 2)]!
  console.log(JSON.stringify({
    url: url.replace(/\/\/[^@]*@/, "//"),
    jobs,
    concurrency,
    usPerJob: us.map((x) => Math.round(x)),
    median: Math.round(median),
    jobsPerSec: results.map((x) => Math.round(jobs / (x.ms / 1000)))
  }))
})

/** Removes the run's schema, keys or file (the servers are shared). */
const cleanup = async () => {
  if (url.startsWith("postgres://")) {
    const { default: pg } = await import("pg")
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    await client.end()
  } else if (url.startsWith("redis://")) {
    const { createClient } = await import("redis")
    const client = createClient({ url })
    await client.connect()
    for await (const keys of client.scanIterator({ MATCH: `{${schema}*`, COUNT: 1000 })) {
      if (keys.length > 0) await client.del(keys)
    }
    await client.quit()
  } else {
    for (const suffix of ["", "-wal", "-shm"]) rmSync(url + suffix, { force: true })
  }
}

await Effect.runPromise(program.pipe(Effect.provide(storeOf(url, schema)))).then(cleanup, async (error) => {
  console.error(error)
  await cleanup()
  process.exit(1)
})
