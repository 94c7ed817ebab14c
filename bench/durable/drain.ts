/**
 * Scenario 8's drain alone, with the CPU it costs: `consumers` consumer processes × 8 (the
 * scenario's own scripts, cold as in the scenario) drain `jobs` no-op jobs; it prints the drain's
 * jobs/s, the consumers' CPU per job (user + system, from /proc, from `go` until the last job) and,
 * on Redis, the server's (`INFO cpu`: the whole server's, so run it on a server of its own), and the
 * producer's (this process, which enqueued the jobs just before): during the drain, and per enqueue.
 *
 *   node bench/durable/drain.ts <redis://…> [ours|bullmq] [jobs=20000] [consumers=4]
 *
 * Linux only (/proc). Compare two versions side by side, at the same moment.
 */
import { type ChildProcess, fork } from "node:child_process"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { CONCURRENCY } from "./driver.ts"
import type { BenchJob, ConsumerConfig, FromConsumer, ToConsumer } from "./protocol.ts"

const [url = "", library = "ours", jobsArg = "20000", consumersArg = "4"] = process.argv.slice(2)
const jobs = Number(jobsArg)
const consumers = Number(consumersArg)
const config: ConsumerConfig = { url, schema: `drain_${process.pid}`, queue: `drain_${process.pid}`, concurrency: CONCURRENCY }

const { createClient } = await import("redis")
const client = createClient({ url })
await client.connect()
const serverCpu = async () => {
  const info = await client.info("cpu")
  const field = (name: string) => Number(new RegExp(`${name}:([0-9.]+)`).exec(info)![1])
  return (field("used_cpu_user") + field("used_cpu_sys")) * 1e6
}
const TICK_US = 1e6 / 100
const processCpu = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
  return (Number(fields[11]) + Number(fields[12])) * TICK_US
}

let enqueue: (job: BenchJob) => Promise<unknown>
let close: () => Promise<void>
if (library === "bullmq") {
  const { Queue } = await import("bullmq")
  const { connection } = await import("./bullmq.ts")
  const queue = new Queue(config.queue, { connection: connection(url), prefix: config.schema })
  await queue.waitUntilReady()
  enqueue = (job) => queue.add("job", job)
  close = async () => {
    await queue.obliterate({ force: true })
    await queue.close()
  }
} else {
  const { Effect, ManagedRuntime } = await import("effect")
  const JobQueue = await import("../../src/JobQueue.ts")
  const { storeOf } = await import("./ours.ts")
  const { BenchTask } = await import("./task.ts")
  const runtime = ManagedRuntime.make(storeOf(url, config.schema))
  enqueue = (job) => runtime.runPromise(JobQueue.enqueue(BenchTask, job, { queue: config.queue }))
  close = async () => {
    await runtime.dispose()
    for await (const keys of client.scanIterator({ MATCH: `{${config.schema}*`, COUNT: 1000 })) {
      if (keys.length > 0) await client.del(keys)
    }
  }
}

let reported = 0
let onEvent = () => {}
const children: Array<ChildProcess> = []
await Promise.all(Array.from({ length: consumers }, () =>
  new Promise<void>((resolve) => {
    const child = fork(fileURLToPath(new URL(library === "bullmq" ? "./bullmq.ts" : "./ours.ts", import.meta.url)), [JSON.stringify(config)], {
      stdio: ["ignore", "inherit", "inherit", "ipc"]
    })
    children.push(child)
    child.on("message", (message: FromConsumer) => {
      if ("ready" in message) resolve()
      else if ("ran" in message) reported += message.ran.length
      onEvent()
    })
  })))
const enqueueing = process.cpuUsage()
for (let n = 0; n < jobs; n++) await enqueue({ n, t: 0 })
const enqueueCpu = process.cpuUsage(enqueueing)
const before = children.map((child) => processCpu(child.pid!))
const server = await serverCpu()
const producer = process.cpuUsage()
const t = performance.now()
for (const child of children) child.send({ go: true } satisfies ToConsumer)
await new Promise<void>((resolve) => {
  onEvent = () => reported >= jobs && resolve()
})
const ms = performance.now() - t
const producerCpu = process.cpuUsage(producer)
const consumerUs = children.reduce((sum, child, i) => sum + processCpu(child.pid!) - before[i]!, 0)
const serverUs = await serverCpu() - server
console.log(JSON.stringify({
  library,
  jobs,
  jobsPerSec: Math.round(jobs / (ms / 1000)),
  consumerUsPerJob: Math.round(consumerUs / jobs),
  serverUsPerJob: Math.round(serverUs / jobs),
  // the enqueueing process, idle but for the consumers' reports: what it spends meanwhile is its client's
  producerUsPerJob: Math.round((producerCpu.user + producerCpu.system) / jobs),
  // the enqueues before the drain, one after another: the producer's CPU per enqueue
  enqueueUsPerJob: Math.round((enqueueCpu.user + enqueueCpu.system) / jobs)
}))
await Promise.all(children.map((child) =>
  new Promise<void>((resolve) => {
    child.on("exit", () => resolve())
    child.send({ stop: true } satisfies ToConsumer)
  })
))
await close()
await client.quit()
