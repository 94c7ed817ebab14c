/**
 * Where each task ran: its start and end (ms since the epoch, µs precision) and its thread, written
 * by the probe's workers into buffers shared with the main thread (see threads.ts).
 */
import { threadId } from "node:worker_threads"
import { cpu, noop } from "../workers/cpu.ts"

export interface Marks {
  readonly times: Float64Array // [start, end] per job
  readonly threads: Int32Array
}

export const makeMarks = (jobs: number): { marks: Marks; shared: { times: SharedArrayBuffer; threads: SharedArrayBuffer } } => {
  const times = new SharedArrayBuffer(16 * jobs)
  const threads = new SharedArrayBuffer(4 * jobs)
  return { marks: { times: new Float64Array(times), threads: new Int32Array(threads) }, shared: { times, threads } }
}

export const openMarks = (shared: { times: SharedArrayBuffer; threads: SharedArrayBuffer }): Marks => ({
  times: new Float64Array(shared.times),
  threads: new Int32Array(shared.threads)
})

const origin = performance.timeOrigin
export const now = (): number => origin + performance.now()

/** Runs job `i` (index `slot` in the marks) and records it. */
export const marked = (marks: Marks | undefined, kind: "cpu" | "noop", i: number): number => {
  const start = now()
  const result = kind === "cpu" ? cpu(i) : noop(i)
  if (marks !== undefined && i >= 0 && i < marks.threads.length) {
    marks.times[2 * i] = start
    marks.times[2 * i + 1] = now()
    marks.threads[i] = threadId
  }
  return result
}
