/**
 * The durable job a handler runs for (`JobQueue.CurrentJob`), in a module of its own: a worker
 * thread running a durable job's task reads it too, and must not load JobQueue (the stores, the
 * consumer) for its key. Imports effect by subpath, as every module a thread loads does.
 *
 * @internal
 */
import * as Context from "effect/Context"
import * as Option from "effect/Option"
import type { JobRow } from "./store/model.ts"

/** See `JobQueue.CurrentJob`. */
export interface CurrentJob {
  /** The durable id, as `enqueue` returned it: the same in every process and every attempt. */
  readonly id: string
  readonly queue: string
  readonly task: string
  /** This attempt, as the store counts it: 1, then one more per retry or lease expiry. */
  readonly attempt: number
  readonly maxAttempts: number
  /** When it was enqueued (the store's clock). */
  readonly createdAt: Date
  readonly dedupKey: string | undefined
  readonly priority: number
}

export const CurrentJob: Context.Reference<Option.Option<CurrentJob>> = Context.Reference<Option.Option<CurrentJob>>(
  "effect-workpool/JobQueue/CurrentJob",
  { defaultValue: Option.none }
)

/**
 * A durable job as it goes to a thread (protocol.Run): plain values, in an array (a structured
 * clone writes each key of an object: see protocol.ts).
 */
export type Wire = readonly [
  id: string,
  queue: string,
  task: string,
  attempt: number,
  maxAttempts: number,
  createdAt: number,
  dedupKey: string | null,
  priority: number
]

export const toWire = (job: JobRow): Wire => [
  job.id,
  job.queue,
  job.task,
  job.attempts,
  job.maxAttempts,
  job.createdAt,
  job.dedupKey,
  job.priority
]

export const fromWire = (wire: Wire): CurrentJob => ({
  id: wire[0],
  queue: wire[1],
  task: wire[2],
  attempt: wire[3],
  maxAttempts: wire[4],
  createdAt: new Date(wire[5]),
  dedupKey: wire[6] ?? undefined,
  priority: wire[7]
})

/** The value a handler of `job` reads. */
export const of = (job: JobRow): Option.Option<CurrentJob> =>
  Option.some({
    id: job.id,
    queue: job.queue,
    task: job.task,
    attempt: job.attempts,
    maxAttempts: job.maxAttempts,
    createdAt: new Date(job.createdAt),
    dedupKey: job.dedupKey ?? undefined,
    priority: job.priority
  })
