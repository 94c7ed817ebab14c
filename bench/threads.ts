/**
 * What the two thread scenarios (5 and 6) share on the main thread: every pool under test opened
 * the same way (untimed), its threads waited for, and one way to send a task to it.
 *
 * Each library gets its own worker file in bench/workers/, all running the same functions from
 * bench/workers/cpu.ts. Libraries are imported only by the contestant that uses them, so a child
 * loads one pool library, not four, and Effect only for ours.
 */
import { setTimeout as sleep } from "node:timers/promises"
import { Worker } from "node:worker_threads"
import type * as ThreadPool from "../src/ThreadPool.ts"

/** Threads per pool, for every contestant. */
export const THREADS = 2

/** The function a task runs (bench/workers/cpu.ts). */
export type Kind = "cpu" | "noop"

const workerFile = (name: string): URL => new URL(`./workers/${name}`, import.meta.url)

/**
 * Waits until every thread has started and loaded its worker file: sends `THREADS` probes at once
 * (each keeps its thread busy for 5 ms and answers with the thread's id), again and again, until
 * every thread has answered one. Libraries start their threads in the background, or on demand:
 * this keeps thread start-up out of the timed part for all of them alike.
 */
export const awaitThreads = async (probe: () => Promise<number>): Promise<void> => {
  const seen = new Set<number>()
  for (let round = 0; seen.size < THREADS; round++) {
    if (round > 500) throw new Error(`only ${seen.size} of ${THREADS} threads answered`)
    const ids = await Promise.all(Array.from({ length: THREADS }, probe))
    for (const id of ids) seen.add(id)
    if (seen.size < THREADS) await sleep(10)
  }
}

/** A Promise-based pool under test: one task function and a way to close the pool. */
export interface PromisePool {
  /** Runs task `kind` on job `i`; resolves with its result. */
  readonly run: (i: number) => Promise<number>
  readonly close: () => Promise<void>
}

/** Opens the library's pool with `THREADS` threads, all started and ready. */
export type OpenPool = (kind: Kind) => Promise<PromisePool>

export const piscina: OpenPool = async (kind) => {
  const { Piscina } = await import("piscina")
  const pool = new Piscina<number, number>({
    filename: workerFile("piscina-worker.ts").href,
    minThreads: THREADS,
    maxThreads: THREADS
  })
  const task = { name: kind }
  const probe = { name: "probe" }
  await awaitThreads(() => pool.run(0, probe))
  return { run: (i) => pool.run(i, task), close: () => pool.destroy() }
}

export const tinypool: OpenPool = async (kind) => {
  const { Tinypool } = await import("tinypool")
  const pool = new Tinypool({
    filename: workerFile("tinypool-worker.ts").href,
    minThreads: THREADS,
    maxThreads: THREADS
  })
  const task = { name: kind }
  const probe = { name: "probe" }
  await awaitThreads(() => pool.run(0, probe) as Promise<number>)
  return { run: (i) => pool.run(i, task) as Promise<number>, close: () => pool.destroy() }
}

export const workerpool: OpenPool = async (kind) => {
  const { default: workerpool } = await import("workerpool")
  const pool = workerpool.pool(workerFile("workerpool-worker.ts").pathname, {
    minWorkers: THREADS,
    maxWorkers: THREADS,
    workerType: "thread"
  })
  await awaitThreads(() => pool.exec("probe", [0]) as Promise<number>)
  return {
    run: (i) => pool.exec(kind, [i]) as Promise<number>,
    close: async () => {
      await pool.terminate()
    }
  }
}

export const poolifier: OpenPool = async (kind) => {
  const { FixedThreadPool } = await import("poolifier")
  const pool = new FixedThreadPool<number, number>(THREADS, workerFile("poolifier-worker.ts").pathname)
  await awaitThreads(() => pool.execute(0, "probe"))
  return {
    run: (i) => pool.execute(i, kind),
    // poolifier 5.3.2's destroy() now and then never settles, after every thread has exited (seen
    // here about one time in three after a few thousand tasks): wait for it or for no thread left
    close: () =>
      Promise.race([
        pool.destroy(),
        (async () => {
          for (let waited = 0; pool.info.workerNodes > 0 || waited < 100; waited += 10) {
            if (waited > 10_000) throw new Error("poolifier: threads still alive 10 s after destroy()")
            await sleep(10)
          }
        })()
      ])
  }
}

/**
 * The hand-written floor: `THREADS` raw `Worker`s (bench/workers/floor-worker.ts). A job number
 * goes out, a number comes back, in order, so each thread needs only a FIFO of its job numbers;
 * `onResult` is called with each result. No promise per task, no ids, no queue of its own: the
 * scenarios drive it (one at a time, all at once round-robin, or one more each time a thread
 * answers).
 */
export class Floor {
  readonly workers: ReadonlyArray<Worker>
  private readonly sent: Array<Array<number>>
  onResult: (i: number, result: number, w: number) => void = () => {}
  private constructor(kind: Kind) {
    this.workers = Array.from({ length: THREADS }, () => new Worker(workerFile("floor-worker.ts"), { workerData: { task: kind } }))
    this.sent = this.workers.map(() => [])
    this.workers.forEach((worker, w) => {
      const fifo = this.sent[w]!
      worker.on("message", (result: number) => this.onResult(fifo.shift()!, result, w))
    })
  }

  /** Starts the threads and waits until each has answered a probe. */
  static async open(kind: Kind): Promise<Floor> {
    const floor = new Floor(kind)
    const answered = new Set<number>()
    await new Promise<void>((resolve) => {
      floor.onResult = (_i, _result, w) => {
        answered.add(w)
        if (answered.size === THREADS) resolve()
      }
      for (let w = 0; w < THREADS; w++) floor.send(w, -1)
    })
    return floor
  }

  /** Sends job `i` to thread `w`. */
  send(w: number, i: number): void {
    this.sent[w]!.push(i)
    this.workers[w]!.postMessage(i)
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()))
  }
}

/** Our pool, made in a scope of its own (untimed); `close` closes the scope (graceful shutdown). */
export const ours = async (
  options: Partial<ThreadPool.Options> = {}
): Promise<{ pool: ThreadPool.ThreadPool; close: () => Promise<void> }> => {
  const { Effect, Exit, Scope } = await import("effect")
  const ThreadPool = await import("../src/ThreadPool.ts")
  const scope = Effect.runSync(Scope.make())
  // make returns once every thread has started and said it is ready
  const pool = await Effect.runPromise(
    ThreadPool.make({ worker: workerFile("ours-worker.ts"), threads: THREADS, capacity: Infinity, ...options }).pipe(
      Scope.provide(scope)
    )
  )
  return { pool, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}
