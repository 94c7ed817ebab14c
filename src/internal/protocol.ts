/**
 * Messages between the main thread and a worker thread. Plain objects, sent by structured clone.
 *
 * @internal
 */
import { inspect } from "node:util"
import { MessagePort, type TransferListItem } from "node:worker_threads"
import type { CurrentJobWire } from "./jobInfo.ts"
import type { SpanRecord } from "./threadSpans.ts"

/**
 * The two messages of every task travel as arrays, every other message as an object with its kind
 * in `_`: a structured clone writes each key of an object, and for a small task the keys are most
 * of the message (on Node 24, posting and receiving this message as an object took 4.3 µs, as an
 * array 1.3 µs).
 *
 * Run a task: its id on this thread, its name and encoded payload, the job's id in the pool and its
 * attempt (for the thread's `JobContext`), and the span it runs under on the thread (trace id, span
 * id, sampled, and whether the thread records the task's spans for the main thread's tracer: see
 * threadSpans.ts).
 */
export type Run = readonly [
  id: number,
  task: string,
  payload: unknown,
  job: number,
  attempt: number,
  trace: readonly [string, string, boolean, boolean] | undefined,
  /**
   * Present for a durable job's task (`JobQueue.consume`'s `threadPool`): the durable job, for the
   * task's `JobQueue.CurrentJob` (and its `JobContext`'s attempt, the store's count). Its payload is
   * the JSON text of the task's JSON form, as the store keeps it, and its success is sent back as
   * the JSON text of `{ value }` in that form (a failure in that form, not as text), so that the
   * main thread stores it without parsing, decoding, encoding or serializing it.
   */
  durable?: CurrentJobWire | undefined,
  /**
   * Present for an offer (see `Offer` below): the index of its cell. The thread starts it only once
   * it has room and has claimed it in that cell; a withdrawn offer is dropped unanswered.
   */
  offer?: number,
  /**
   * Present for an offer whose job has a queue deadline: when it passes (`performance.timeOrigin +
   * performance.now()`, the same clock in every thread of a process). Past it, the thread does not
   * claim the offer but withdraws it itself (`WITHDRAWN`), so that no job starts past its queue
   * deadline, even while the main thread is too busy to take the offer back in time; the main
   * thread then ends the job (`JobTimeout`), or starts it after all if its own clock says so.
   */
  expires?: number
]

/** A task succeeded: its id and encoded value (any other ending is a `done` object). */
export type Succeeded = readonly [id: number, value: unknown]

export type ToThread =
  | Run
  | { readonly _: "cancel"; readonly id: number }
  /** Stop: interrupt what still runs, release the thread's layer, then exit. */
  | { readonly _: "close" }
  /** Which tasks do you still run? (A message between the threads was lost: see `synced`.) */
  | { readonly _: "sync"; readonly n: number }

/**
 * The version of the messages between a pool and its threads: this file's messages and `ThreadData`,
 * and the bootstrap's part of it (threadMain.ts). Two copies of effect-workpool (a monorepo, a
 * duplicate install) can give a pool one copy and its worker file another: the pool sends its
 * version in `ThreadData.protocol`, the thread its own in its ready message, and each refuses the
 * other's if it differs (`protocolMismatch`), so that no task runs between copies that read each
 * other's messages wrong. Bump it with any change an older copy on the other side would misread or
 * not send: a message, a field, a tuple's layout, the shared cells' meaning. Not for a change only
 * one side sees.
 *
 * What a copy of any version reads to tell that the other differs never changes: the `PORT` key and
 * `workerData` in `ThreadData`, the envelope, and the `ready` and `fatal` messages' `_` and
 * `message` (a pool from before versions fails its start with a `fatal`'s message).
 */
export const PROTOCOL = 2

/**
 * Why a pool and its thread cannot work together, with what to do about it: the same words on each
 * side (a thread that finds the mismatch tells the pool in a `fatal`). `thread` is the thread's
 * version, none for a thread of an older copy, or a description of what it sent instead.
 */
export const protocolMismatch = (pool: number | undefined, thread: number | string | undefined): string =>
  `the pool and its thread run different copies of effect-workpool that do not speak the same thread protocol ` +
  `(the pool's: ${versionText(pool)}; the thread's: ${versionText(thread)}): the worker file must import ` +
  "effect-workpool from the same copy as the code that makes the pool " +
  "(`npm ls effect-workpool` lists the copies installed)"

const versionText = (version: number | string | undefined): string =>
  typeof version === "number" ? `version ${version}` : version ?? "none, a copy from before versions"

/**
 * The pool's channel to a thread: a `MessagePort` of its own, created by the main thread and handed
 * to the thread at its start inside `workerData`, under this key, next to the user's own
 * `workerData` (which `ThreadWorker` puts back in its place before user code reads it). The
 * thread's `parentPort` belongs to user code: nothing posted on it, and no listener removed from it,
 * can reach or break the pool's traffic.
 */
export const PORT = "effect-workpool"

export interface ThreadData {
  readonly [PORT]: MessagePort
  /** The pool's `PROTOCOL`. */
  readonly protocol: number
  /** The pool's name, for the `JobContext` of every task on the thread. */
  readonly pool: string
  /** Tasks the thread runs at once (`tasksPerThread`): it starts an offer only below this. */
  readonly slots: number
  /** The thread's offer cells (see `Offer`), shared with the main thread. */
  readonly offer: Int32Array
  /** One cell, shared: how long the thread's tasks take (see `PACE`). */
  readonly pace: Int32Array
  /** The thread's wake signal, shared: its counter, parked flag and backlog (see park.ts's `COUNTER`). */
  readonly wake: Int32Array
  readonly workerData: unknown
  /** The worker file's path, which the thread's bootstrap runs (see threadMain.ts); none for a `data:` URL. */
  readonly main?: string | undefined
  /** Set in the thread by the bootstrap: removes its resolve cache, once the thread is ready. */
  started?: () => void
}

/**
 * The pool's start data in a thread's `workerData`: none if the thread was not started by a pool; a
 * `port`, the user's `workerData` and the reason alone (`protocolMismatch`) if by a pool of another
 * copy of effect-workpool whose protocol differs, to which the thread must answer only with that
 * reason, in a `fatal`.
 */
export const threadData = (
  data: unknown
): ThreadData | { readonly port: MessagePort; readonly mismatch: string; readonly workerData: unknown } | undefined => {
  if (typeof data !== "object" || data === null) return undefined
  const given = data as Partial<ThreadData>
  if (!(given[PORT] instanceof MessagePort)) return undefined
  if (given.protocol !== PROTOCOL) {
    const theirs = typeof given.protocol === "number" ? given.protocol : undefined
    return { port: given[PORT], mismatch: protocolMismatch(theirs, PROTOCOL), workerData: given.workerData }
  }
  return typeof given.pool === "string" && typeof given.slots === "number" && given.offer instanceof Int32Array &&
      given.pace instanceof Int32Array && given.wake instanceof Int32Array
    ? data as ThreadData
    : undefined
}

/**
 * An offer: the next task for a thread that is busy, sent before it has room so that it starts the
 * moment a task of its own ends, with no round trip to the main thread. Until the thread starts it,
 * the task is still queued on the main thread, which may take it back. Who decides is whoever first
 * changes the offer's cell (an `Int32` in a `SharedArrayBuffer` the two threads share) by
 * compare-and-swap: the thread from `OFFERED` to `CLAIMED` when it starts the task (or to
 * `WITHDRAWN` when it finds the offer past its queue deadline: see `Run`'s `expires`), the main thread
 * from `OFFERED` to `WITHDRAWN` (take it back) or `CONFIRMED` (start it, in a slot the main thread
 * has just seen freed). No message is needed to decide, and neither side waits.
 *
 * A cell holds its offer's task id with the state, so that a withdrawn offer's message, read late,
 * cannot claim a later offer in the same cell. A thread has a few cells: a confirmed offer keeps
 * its cell until the thread has read it (and marked it `CLAIMED`), while the next offer takes
 * another; an offer needs a cell that is `CLAIMED` or `WITHDRAWN`.
 */
export const OFFERED = 0
export const CLAIMED = 1
export const CONFIRMED = 2
export const WITHDRAWN = 3

/** The cell's value for the offer of task `id` in `state`: a positive int32. */
export const offerCell = (id: number, state: number): number => ((id & 0xfffffff) << 2) | state

/**
 * How long a thread's tasks take, in microseconds (at least 1; 0 until its first task ends): a moving
 * average of each task's time on the thread, from the moment it starts to its answer, written by the
 * thread in a shared cell after each task. The main thread reads it to decide how many tasks to offer
 * the thread ahead (threads.ts), and the thread to decide whether to hold its answers while it runs
 * its next offer (ThreadWorker.ts). No message carries it.
 */
export const PACE = 0

/**
 * What goes over the port: one message, or the messages of one tick together in an array (a
 * `postMessage` costs far more than its payload for small tasks). A message that is itself an
 * array starts with a number (see `Run`); an array of messages starts with a message.
 */
export type Envelope<M> = M | ReadonlyArray<M>

export const envelope = <M>(messages: ReadonlyArray<M>): Envelope<M> => messages.length === 1 ? messages[0]! : messages

/**
 * Hands each message in `data` to `handle`; false when `data` is not a message or a batch of
 * them. Only the pool's code posts on its port; this is defence in depth: whatever arrives, a
 * handler that reads `message._` must not be given something that is not an object.
 */
export const open = <M>(data: unknown, handle: (message: M) => void): boolean => {
  if (typeof data !== "object" || data === null) return false
  if (Array.isArray(data) && typeof data[0] !== "number") {
    // by index, not `for of`: an iterator per batch and a call per message in code still cold
    for (let i = 0; i < data.length; i++) {
      const message: unknown = data[i]
      if (typeof message === "object" && message !== null) handle(message as M)
    }
  } else handle(data as M)
  return true
}

/** Whether a message is one of the two that travel as arrays (`Run`, `Succeeded`). */
export const isTuple = (message: object): message is ReadonlyArray<unknown> => Array.isArray(message)

/** Queues messages and posts them together at the end of the current tick. */
export class Outbox<M> {
  private messages: Array<M> = []
  private transfers: Array<ReadonlyArray<TransferListItem>> = []
  private failures: Array<((issue: string, message: M) => M | void) | undefined> = []
  /** Whether a queued message has a transfer list: most have none, and their flush builds no list. */
  private transferring = false
  private scheduled = false
  // the lists of the last flush, emptied, for the next one: a flush per task on a busy thread would
  // otherwise leave three arrays of garbage behind each time
  private spareMessages: Array<M> = []
  private spareTransfers: Array<ReadonlyArray<TransferListItem>> = []
  private spareFailures: Array<((issue: string, message: M) => M | void) | undefined> = []
  private readonly post: (message: Envelope<M>, transfer: Array<TransferListItem>) => void
  constructor(post: (message: Envelope<M>, transfer: Array<TransferListItem>) => void) {
    this.post = post
  }

  /**
   * `onFailure` hears why this message could not be sent (say, a payload that cannot be cloned), and
   * may return a message to send in its place, in its order (the pool's sync relies on the order).
   * It is given the message too, so that one function can serve every message of a kind (no
   * closure per message on a hot path).
   */
  send(
    message: M,
    transfer: ReadonlyArray<TransferListItem> = NO_TRANSFER,
    onFailure?: (issue: string, message: M) => M | void
  ): void {
    this.messages.push(message)
    this.transfers.push(transfer)
    this.failures.push(onFailure)
    if (transfer.length > 0) this.transferring = true
    if (this.scheduled) return
    this.scheduled = true
    queueMicrotask(this.flushLater)
  }

  /**
   * The end of the tick's flush. A flush before it (a thread flushes before each task it starts)
   * leaves it queued: it sends what comes after, so a busy thread queues one microtask a tick, not
   * one per task.
   */
  private readonly flushLater = (): void => {
    this.scheduled = false
    this.flush()
  }

  flush(): void {
    const { failures, messages, transfers } = this
    if (messages.length === 0) return
    const transferring = this.transferring
    // the spare lists take what is sent while these are posted (an `onFailure` may send)
    this.messages = this.spareMessages
    this.transfers = this.spareTransfers
    this.failures = this.spareFailures
    this.transferring = false
    try {
      this.post(envelope(messages), transferring ? transfers.flat() : NO_TRANSFER_LIST)
      // posted, so cloned (or moved) already: the lists can take the next flush's messages
      messages.length = 0
      transfers.length = 0
      failures.length = 0
      this.spareMessages = messages
      this.spareTransfers = transfers
      this.spareFailures = failures
    } catch {
      // these lists are read below, and the spares are in use: the next flush gets new ones
      this.spareMessages = []
      this.spareTransfers = []
      this.spareFailures = []
      // find the message that cannot be sent, and send the others
      for (let i = 0; i < messages.length; i++) {
        try {
          this.post(envelope([messages[i]!]), [...transfers[i]!])
        } catch (error) {
          const instead = failures[i]?.(why(error), messages[i]!)
          if (instead !== undefined) this.post(envelope([instead]), [])
        }
      }
    }
  }
}

/**
 * Why a message could not be posted, in one line. The clone runs the message's getters, which may
 * throw anything (an object without prototype, an Error whose `message` getter throws): describing
 * it must not throw, or the flush would throw out of its microtask and crash the thread (or, on the
 * main thread, the process) instead of failing one task.
 */
const why = (error: unknown): string => {
  try {
    return error instanceof Error ? `${error.name}: ${error.message}` : String(error)
  } catch {
    try {
      return inspect(error, { depth: 1 })
    } catch {
      return "a value that could not be described was thrown"
    }
  }
}

const NO_TRANSFER: ReadonlyArray<TransferListItem> = []
/** An empty transfer list for `post`, which takes no copy of it. */
const NO_TRANSFER_LIST: Array<TransferListItem> = []

export type Outcome =
  | { readonly _: "success"; readonly value: unknown }
  | { readonly _: "failure"; readonly error: unknown }
  | { readonly _: "defect"; readonly name: string; readonly message: string; readonly stack: string | undefined }
  | { readonly _: "interrupted" }
  | { readonly _: "codec"; readonly part: "payload" | "success" | "failure" | "handler" | "reply"; readonly issue: string }

export type FromThread =
  | Succeeded
  /** The thread serves; `protocol` is its `PROTOCOL` (none from a copy before versions: the pool checks). */
  | { readonly _: "ready"; readonly protocol: number }
  /**
   * The layer failed to build (the thread exits), or, from a ready thread, to be released at close;
   * or the pool's protocol is not the thread's (`protocol` then is the thread's: see `threadData`).
   */
  | { readonly _: "fatal"; readonly message: string; readonly protocol?: number }
  | { readonly _: "done"; readonly id: number; readonly outcome: Outcome }
  /** The latest progress a task reported (coalesced on the thread: see ThreadWorker). */
  | { readonly _: "progress"; readonly id: number; readonly value: unknown }
  /** The ids of the tasks running on the thread when it read sync `n`. */
  | { readonly _: "synced"; readonly n: number; readonly running: ReadonlyArray<number> }
  /** The thread could not deserialize a message from the main thread (its `messageerror`). */
  | { readonly _: "unreadable"; readonly issue: string }
  /** Spans of traced tasks that ended, for the main thread's tracer (see threadSpans.ts); `dropped` over the limit. */
  | { readonly _: "spans"; readonly spans: ReadonlyArray<SpanRecord>; readonly dropped: number }

const CODEC_PARTS: ReadonlySet<unknown> = new Set(["payload", "success", "failure", "handler", "reply"])

const isOutcome = (o: unknown): o is Outcome => {
  if (typeof o !== "object" || o === null) return false
  const outcome = o as Record<string, unknown>
  switch (outcome._) {
    case "success":
      return "value" in outcome
    case "failure":
      return "error" in outcome
    case "defect":
      return typeof outcome.name === "string" && typeof outcome.message === "string" &&
        (outcome.stack === undefined || typeof outcome.stack === "string")
    case "interrupted":
      return true
    case "codec":
      return CODEC_PARTS.has(outcome.part) && typeof outcome.issue === "string"
    default:
      return false
  }
}

/**
 * Whether a message from a thread has the fields the main thread reads: whatever reaches the main
 * thread must not crash it (a `running` that is not an array) or end a task with an outcome the pool
 * cannot read.
 */
export const isFromThread = (m: unknown): m is FromThread => {
  if (typeof m !== "object" || m === null) return false
  if (Array.isArray(m)) return m.length === 2 && typeof m[0] === "number"
  const message = m as Record<string, unknown>
  switch (message._) {
    case "ready":
      return true
    case "fatal":
      return typeof message.message === "string"
    case "done":
      return typeof message.id === "number" && isOutcome(message.outcome)
    case "progress":
      return typeof message.id === "number" && "value" in message
    case "synced":
      return typeof message.n === "number" && Array.isArray(message.running) &&
        message.running.every((id) => typeof id === "number")
    case "unreadable":
      return typeof message.issue === "string"
    case "spans":
      return Array.isArray(message.spans) && typeof message.dropped === "number"
    default:
      return false
  }
}
