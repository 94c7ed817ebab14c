/**
 * CPU per drained job in one warm consumer process: `rounds` times, enqueue `jobs` no-op jobs on a
 * fresh queue, then start a consumer (× `concurrency`) and measure this process's user + system CPU
 * from its start until the handler has run every job. The first round warms up and is not reported.
 * On Redis it also reports the server's CPU per job (`INFO cpu`: the whole server's, so run it on a
 * server of its own), and `bullmq` as the fifth argument measures a BullMQ `Worker` the same way.
 *
 *   node bench/durable/cpu.ts <postgres://… | redis://… | file.db> [jobs=2000] [rounds=6] [concurrency=8] [ours|bullmq]
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

const [url = "", jobsArg = "2000", roundsArg = "6", concurrencyArg = "8", library = "ours"] = process.argv.slice(2)
const jobs = Number(jobsArg)
const rounds = Number(roundsArg)
const concurrency = Number(concurrencyArg)
const schema = `cpu_${process.pid}`
const isRedis = url.startsWith("redis://")

const startProfile = async () => {
  const session = new Session()
  session.connect()
  await session.post("Profiler.enable")
  await session.post("Profiler.setSamplingInterval", { interval: 100 })
  await session.post("Profiler.start")
  return session
}

const stopProfile = async (session: Session) => {
  const { profile } = await session.post("Profiler.stop")
  writeFileSync(process.env.CPU_PROF!, JSON.stringify(profile))
  session.disconnect()
}

/** The Redis server's CPU so far, µs (undefined off Redis). */
const serverCpu: () => Promise<number | undefined> = await (async () => {
  if (!isRedis) return async () => undefined
  const { createClient } = await import("redis")
  const client = createClient({ url })
  await client.connect()
  process.on("beforeExit", () => void client.destroy())
  return async () => {
    const info = await client.info("cpu")
    const field = (name: string) => Number(new RegExp(`${name}:([0-9.]+)`).exec(info)![1])
    return (field("used_cpu_user") + field("used_cpu_sys")) * 1e6
  }
})()

interface Round {
  readonly us: number
  readonly ms: number
  readonly serverUs: number | undefined
}

/** Enqueues a round's jobs, then times `drain` (which resolves once every job has run). */
const measure = async (r: number, drain: () => Promise<void>): Promise<Round> => {
  const session = r === rounds && process.env.CPU_PROF !== undefined ? await startProfile() : undefined
  const server = await serverCpu()
  const before = process.cpuUsage()
  const t = performance.now()
  await drain()
  const cpu = process.cpuUsage(before)
  const ms = performance.now() - t
  const serverAfter = await serverCpu()
  if (session !== undefined) await stopProfile(session)
  return { us: (cpu.user + cpu.system) / jobs, ms, serverUs: server === undefined ? undefined : (serverAfter! - server) / jobs }
}

const ours = await (async () => {
  if (library !== "ours") return undefined
  const { ManagedRuntime } = await import("effect")
  const runtime = ManagedRuntime.make(storeOf(url, schema))
  return {
    round: async (r: number) => {
      const queue = `${schema}_${r}`
      await runtime.runPromise(Effect.forEach(
        Array.from({ length: jobs }, (_, n) => n),
        (n) => JobQueue.enqueue(BenchTask, { n, t: 0 }, { queue }),
        { concurrency: 16, discard: true }
      ))
      return measure(r, () =>
        runtime.runPromise(Effect.scoped(Effect.gen(function*() {
          let ran = 0
          const done = yield* Deferred.make<void>()
          yield* JobQueue.consume({
            queues: [queue],
            handlers: [Task.handle(BenchTask, (job) =>
              Effect.sync(() => {
                if (job.n >= 0 && ++ran === jobs) Deferred.doneUnsafe(done, Effect.void)
              }))],
            concurrency,
            ...(url.startsWith("postgres://") || isRedis ? {} : { poll: 10 })
          })
          yield* Deferred.await(done)
        }))))
    },
    close: () => runtime.dispose()
  }
})()

const bullmq = await (async () => {
  if (library !== "bullmq") return undefined
  const { Queue, Worker } = await import("bullmq")
  const { connection } = await import("./bullmq.ts")
  return {
    round: async (r: number) => {
      const name = `${schema}_${r}`
      const queue = new Queue(name, { connection: connection(url), prefix: schema })
      await queue.addBulk(Array.from({ length: jobs }, (_, n) => ({ name: "job", data: { n, t: 0 } })))
      const worker = new Worker(name, async () => {}, { connection: connection(url), prefix: schema, concurrency, autorun: false })
      await worker.waitUntilReady()
      const result = await measure(r, () =>
        new Promise<void>((resolve) => {
          let ran = 0
          worker.on("completed", () => {
            if (++ran === jobs) resolve()
          })
          void worker.run()
        }))
      await worker.close()
      await queue.obliterate({ force: true })
      await queue.close()
      return result
    },
    close: async () => {}
  }
})()

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

const program = async () => {
  const library = ours ?? bullmq
  if (library === undefined) throw new Error(`expected "ours" or "bullmq" as the library, got ${process.argv[6]}`)
  const results: Array<Round> = []
  for (let r = 0; r <= rounds; r++) {
    const result = await library.round(r)
    if (r > 0) results.push(result)
  }
  await library.close()
  const server = results.flatMap((x) => x.serverUs === undefined ? [] : [x.serverUs])
  console.log(JSON.stringify({
    url: url.replace(/\/\/[^@]*@/, "//"),
    library: ours !== undefined ? "ours" : "bullmq",
    jobs,
    concurrency,
    usPerJob: results.map((x) => Math.round(x.us)),
    median: Math.round(median(results.map((x) => x.us))),
    ...(server.length === 0 ? {} : { serverUsPerJob: server.map(Math.round), serverMedian: Math.round(median(server)) }),
    jobsPerSec: results.map((x) => Math.round(jobs / (x.ms / 1000)))
  }))
}

/** Removes the run's schema, keys or file (the servers are shared). */
const cleanup = async () => {
  if (url.startsWith("postgres://")) {
    const { default: pg } = await import("pg")
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    await client.end()
  } else if (isRedis) {
    const { createClient } = await import("redis")
    const client = createClient({ url })
    await client.connect()
    for (const pattern of [`{${schema}*`, `${schema}:*`]) {
      for await (const keys of client.scanIterator({ MATCH: pattern, COUNT: 1000 })) {
        if (keys.length > 0) await client.del(keys)
      }
    }
    await client.quit()
  } else {
    for (const suffix of ["", "-wal", "-shm"]) rmSync(url + suffix, { force: true })
  }
}

await program().then(cleanup, async (error) => {
  console.error(error)
  await cleanup()
  process.exit(1)
})
process.exit(0)
