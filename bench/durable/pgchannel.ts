/**
 * What an idle Postgres consumer pays for other queues' jobs: one consumer process of queue `a`
 * (idle: nothing is ever enqueued on `a` but the last probe), while this process enqueues no-op
 * jobs on queue `b` of the same schema (no one consumes them). For each phase it prints the
 * consumer's CPU (user + system, /proc), its claims (its store's `claim` calls, counted) and the
 * enqueues on `b` (each sends one NOTIFY): idle (none), a burst (16 at a time, as fast as they
 * go), a steady rate. Then one job on `a`: how long until its handler starts (its wake-up still
 * works). Not a scored contestant.
 *
 *   node bench/durable/pgchannel.ts <postgres://…> [burst=5000] [rate=200] [seconds=5]
 *
 * Linux only (/proc).
 */
import { fork } from "node:child_process"
import { readFileSync } from "node:fs"
import { loadavg } from "node:os"
import { fileURLToPath } from "node:url"
import { Effect, Exit, Layer, ManagedRuntime, Scope } from "effect"
import pg from "pg"
import * as JobQueue from "../../src/JobQueue.ts"
import * as JobStore from "../../src/JobStore.ts"
import * as PgJobStore from "../../src/PgJobStore.ts"
import * as Task from "../../src/Task.ts"
import { type BenchJob, wallClock } from "./protocol.ts"
import { BenchTask } from "./task.ts"

type ToChild = { readonly claims: true } | { readonly stop: true }
type FromChild = { readonly ready: true } | { readonly claims: number } | { readonly latency: number }

if (process.argv[2] === "--consumer") {
  const [, , , url = "", schema = ""] = process.argv
  let claims = 0
  const counted = Layer.effect(
    JobStore.JobStore,
    Effect.map(Effect.gen(function*() {
      return yield* JobStore.JobStore
    }), (store) => ({
      ...store,
      claim: (request: Parameters<typeof store.claim>[0]) => Effect.suspend(() => (claims++, store.claim(request)))
    }))
  ).pipe(Layer.provide(PgJobStore.layer({ url, schema }).pipe(Layer.orDie)))
  const runtime = ManagedRuntime.make(counted)
  const scope = Scope.makeUnsafe()
  const send = (message: FromChild) => process.send!(message)
  await runtime.runPromise(
    JobQueue.consume({
      queues: ["a"],
      handlers: [Task.handle(BenchTask, (job: BenchJob) => Effect.sync(() => send({ latency: wallClock() - job.t })))],
      concurrency: 8
    }).pipe(Scope.provide(scope))
  )
  process.on("message", async (message: ToChild) => {
    if ("claims" in message) send({ claims })
    else {
      await runtime.runPromise(Scope.close(scope, Exit.void))
      await runtime.dispose()
      process.exit(0)
    }
  })
  send({ ready: true })
} else {
  const [, , url = "", burstArg = "5000", rateArg = "200", secondsArg = "5"] = process.argv
  const schema = `pgchannel_${process.pid}`
  const runtime = ManagedRuntime.make(PgJobStore.layer({ url, schema }).pipe(Layer.orDie))
  await runtime.runPromise(Effect.void)
  const child = fork(fileURLToPath(import.meta.url), ["--consumer", url, schema], { stdio: ["ignore", "inherit", "inherit", "ipc"] })
  let onMessage: (message: FromChild) => void = () => {}
  child.on("message", (message: FromChild) => onMessage(message))
  const next = <A>(pick: (message: FromChild) => A | undefined) =>
    new Promise<A>((resolve) => {
      onMessage = (message) => {
        const value = pick(message)
        if (value !== undefined) resolve(value)
      }
    })
  await next((m) => ("ready" in m ? true : undefined))
  const claims = async () => {
    const answer = next((m) => ("claims" in m ? m.claims : undefined))
    child.send({ claims: true } satisfies ToChild)
    return answer
  }
  const cpu = () => {
    const fields = readFileSync(`/proc/${child.pid}/stat`, "utf8").split(") ")[1]!.split(" ")
    return (Number(fields[11]) + Number(fields[12])) * 10
  }
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
  const enqueue = (n: number) => runtime.runPromise(JobQueue.enqueue(BenchTask, { n, t: 0 } satisfies BenchJob, { queue: "b" }))
  // the child's start (its first claims, JIT) is not a phase's
  await sleep(1500)
  const phase = async (name: string, run: () => Promise<number>) => {
    const c0 = await claims()
    const t0 = cpu()
    const start = performance.now()
    const enqueued = await run()
    // the last NOTIFYs reach the child after the last commit
    await sleep(300)
    const cpuMs = cpu() - t0
    const claimed = (await claims()) - c0 - 0
    return {
      phase: name,
      enqueued,
      ms: Math.round(performance.now() - start),
      childCpuMs: cpuMs,
      cpuPerEnqueueUs: enqueued === 0 ? null : +((cpuMs * 1000) / enqueued).toFixed(1),
      // the two `claims` questions are IPC, not store calls
      claims: claimed
    }
  }
  const burst = Number(burstArg)
  const rate = Number(rateArg)
  const seconds = Number(secondsArg)
  const results = []
  results.push(await phase("idle", async () => (await sleep(seconds * 1000), 0)))
  results.push(
    await phase("burst", async () => {
      let n = 0
      await Promise.all(Array.from({ length: 16 }, async () => {
        while (n < burst) await enqueue(n++)
      }))
      return burst
    })
  )
  results.push(
    await phase(`steady ${rate}/s`, async () => {
      const total = rate * seconds
      const start = performance.now()
      for (let n = 0; n < total; n++) {
        const due = start + (n * 1000) / rate
        const wait = due - performance.now()
        if (wait > 0) await sleep(wait)
        await enqueue(n)
      }
      return total
    })
  )
  // its own queue's job still wakes it at once
  const latencies: Array<number> = []
  for (let i = 0; i < 5; i++) {
    const answer = next((m) => ("latency" in m ? m.latency : undefined))
    await runtime.runPromise(JobQueue.enqueue(BenchTask, { n: -1, t: wallClock() } satisfies BenchJob, { queue: "a" }))
    latencies.push(+(await answer).toFixed(1))
    await sleep(200)
  }
  console.log(JSON.stringify({ load: loadavg()[0]!.toFixed(1), results, ownQueueLatencyMs: latencies }))
  child.send({ stop: true } satisfies ToChild)
  await new Promise((resolve) => child.on("exit", resolve))
  await runtime.dispose()
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
  await client.end()
}
