/**
 * A durable contestant, driven from the bench child: its consumers are processes of their own
 * (`consumers` × `concurrency`), started and connected before anything is timed, then
 *
 * 1. enqueue: `jobs` jobs, one call each, one after another, from this process (timed);
 * 2. drain: every consumer is told `go` at once; timed until they have reported every job;
 * 3. latency: all consumers but one stop; `samples` probes, one at a time, each enqueued when the
 *    last one has started (the consumer is idle), from enqueue to the handler's start.
 *
 * The checksum: every job number reported exactly once (`Tally`).
 */
import { type ChildProcess, fork } from "node:child_process"
import { existsSync } from "node:fs"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import type { Contestant, Size } from "../common.ts"
import type { Tally } from "../tally.ts"
import { type BenchJob, type ConsumerConfig, type FromConsumer, type ToConsumer, wallClock } from "./protocol.ts"

/** The producer side of one library. */
export interface Producer {
  readonly enqueue: (job: BenchJob) => Promise<unknown>
  readonly close: () => Promise<void>
}

export interface DurableContestant {
  readonly name: string
  readonly library: string
  readonly anchor?: boolean
  /** The consumer script (a file in bench/durable/ that calls `serve`). */
  readonly consumer: string
  /** The server's URL (a file path for SQLite). */
  readonly url: () => string
  /** Creates what the consumers need (tables, queue) and opens the producer. */
  readonly open: (config: ConsumerConfig) => Promise<Producer>
  /** Removes the run's schema, keys or file. */
  readonly cleanup: (config: ConsumerConfig) => Promise<void>
}

/** Consumers per run and jobs each runs at once. */
export const CONSUMERS = 4
export const CONCURRENCY = 8

const node = existsSync("node_modules/.bin/node") ? "node_modules/.bin/node" : process.execPath

const percentile = (sorted: ReadonlyArray<number>, p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

let runs = 0

export const contestant = (options: DurableContestant): Contestant => ({
  name: options.name,
  library: options.library,
  ...(options.anchor === undefined ? {} : { anchor: options.anchor }),
  setup: async ({ jobs, samples = 50 }: Size, tally: Tally) => {
    const config: ConsumerConfig = {
      url: options.url(),
      schema: `bench_${process.pid}_${runs}`,
      queue: `bench_${process.pid}_${runs++}`,
      concurrency: CONCURRENCY
    }
    const producer = await options.open(config)

    // events from the consumers; a consumer that exits before it is told to stop fails the run
    let observed = 0
    let reported = 0
    const latencies: Array<number> = []
    let onEvent = () => {}
    let failure: Error | undefined
    const children: Array<ChildProcess> = []
    const stopping = new Set<ChildProcess>()
    const ready = Array.from({ length: CONSUMERS }, () =>
      new Promise<void>((resolve, reject) => {
        const child = fork(fileURLToPath(new URL(options.consumer, import.meta.url)), [JSON.stringify(config)], {
          execPath: node,
          stdio: ["ignore", "inherit", "inherit", "ipc"]
        })
        children.push(child)
        child.on("message", (message: FromConsumer) => {
          if ("ready" in message) resolve()
          else if ("ran" in message) {
            for (const n of message.ran) observed += tally.job(n)
            reported += message.ran.length
          } else latencies.push(message.latency)
          onEvent()
        })
        child.on("exit", (code, signal) => {
          if (stopping.has(child)) return
          failure ??= new Error(`a ${options.name} consumer exited (${code ?? signal}) before it was told to stop`)
          reject(failure)
          onEvent()
        })
      })
    )
    await Promise.all(ready)

    /** Waits until `done` holds, or fails if a consumer died or `ms` passed. */
    const until = (done: () => boolean, what: string, ms = 120_000) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${options.name}: timed out waiting for ${what}`)), ms)
        onEvent = () => {
          if (failure !== undefined) reject(failure)
          else if (done()) resolve()
          else return
          clearTimeout(timer)
          onEvent = () => {}
        }
        onEvent()
      })

    const stop = (some: ReadonlyArray<ChildProcess>) =>
      Promise.all(some.map((child) =>
        new Promise<void>((resolve) => {
          stopping.add(child)
          if (child.exitCode !== null || child.signalCode !== null) return resolve()
          child.on("exit", () => resolve())
          child.send({ stop: true } satisfies ToConsumer)
        })
      ))

    return {
      run: async () => {
        let t = performance.now()
        for (let n = 0; n < jobs; n++) await producer.enqueue({ n, t: 0 })
        const enqueueMs = performance.now() - t
        t = performance.now()
        for (const child of children) child.send({ go: true } satisfies ToConsumer)
        await until(() => reported >= jobs, `${jobs} jobs (${reported} reported)`)
        const drainMs = performance.now() - t
        // latency on one idle consumer: the others stop first
        await stop(children.slice(1))
        for (let k = 0; k < samples; k++) {
          const expected = latencies.length + 1
          await producer.enqueue({ n: -1, t: wallClock() })
          await until(() => latencies.length >= expected, `latency probe ${k}`, 30_000)
          // a breath between probes, so that the consumer is idle again when the next one comes
          await sleep(2)
        }
        const sorted = [...latencies].sort((a, b) => a - b)
        return {
          observed,
          ms: drainMs,
          extra: {
            enqueueJobsPerSec: jobs / (enqueueMs / 1000),
            p50Ms: percentile(sorted, 0.5),
            p99Ms: percentile(sorted, 0.99)
          }
        }
      },
      teardown: async () => {
        await stop(children)
        await producer.close()
        await options.cleanup(config)
      }
    }
  }
})
