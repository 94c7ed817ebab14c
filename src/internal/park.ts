/**
 * How an idle thread waits for its next message from the pool: parked in `Atomics.wait` on a
 * shared counter, which the main thread bumps after each post (and notifies, if the thread is
 * parked), then reading the messages with `receiveMessageOnPort`. A thread waiting in its event loop instead is woken through
 * the loop (an eventfd, epoll, then a 'message' event dispatched through JavaScript): on Node 24,
 * no-op tasks one at a time took 0.31× the round trip with the thread parked (bench/probe/park.ts).
 *
 * Parking blocks the thread's event loop, so a thread parks only while nothing else could need it:
 * - nothing of the pool's in flight (no task running or held, no progress or answer unsent: `idle`);
 * - its event loop has nothing but the pool's port (`process.getActiveResourcesInfo()`: a user's
 *   timer, socket, file read, immediate or parentPort listener keeps the thread in its loop), and
 *   nothing buffered on stdout or stderr;
 * - for at most `PARK_MS` at a time, then the event loop gets a turn (what the check cannot see, an
 *   unref'd timer say, is late by that much at most), and the thread parks again, until it has been
 *   idle for `IDLE_TURNS` of these: then it waits in its event loop until its next message, which
 *   the port delivers as before (a long idle thread costs no CPU; a parked one wakes every
 *   `PARK_MS`).
 *
 * Parking happens in a `setImmediate` callback, so every microtask (an answer in the outbox, a
 * promise of user code) has run first. Tasks a wake brings that end as they start (`Effect.sync`)
 * are answered at once and the thread stays parked, with the same checks; one that needs the event
 * loop (a fiber, a timer) sends the thread back to it, to park again from its next turn. Either way
 * the loop gets a turn at least every `PARK_MS`: a promise left behind by a task's synchronous code
 * runs by then. `Worker.terminate` ends a parked thread as any other.
 *
 * @internal
 */
import { type MessagePort, receiveMessageOnPort } from "node:worker_threads"

/** The longest a thread stays parked (taking tasks or not) before its event loop gets a turn. */
export const PARK_MS = 10

/** Parks in a row with no message, after which the thread waits in its event loop (about a second). */
export const IDLE_TURNS = 100

/**
 * The cells of a thread's wake signal, an `Int32Array` shared by the thread and the main thread:
 * `COUNTER`, bumped by the main thread after each post, on which a parked thread waits, and
 * `PARKED`, 1 while the thread is parked (set before it reads the counter, cleared before it goes
 * back to its event loop). The main thread notifies only a parked thread: a notify takes a lock
 * shared by every thread of the process whether or not anyone waits (0.3-0.7 µs a call with no
 * waiter on a loaded machine, the check 0.15), and a thread in its event loop, or running a task,
 * is reached by the post itself.
 *
 * Why no wake is lost: both sides use sequentially consistent atomics. The main thread bumps
 * `COUNTER`, then reads `PARKED`; the thread sets `PARKED`, then reads `COUNTER`, then reads the
 * port, then waits while `COUNTER` holds what it read. If the main thread reads 0, its bump came
 * before the thread's read of `COUNTER`, and its post before the thread's read of the port: the
 * thread finds the message.
 */
export const COUNTER = 0
export const PARKED = 1
/** How many cells a wake signal has. */
export const SIGNAL_CELLS = 2

/** Bumps the counter a thread parks on, and wakes the thread if it is parked: call after each post to it. */
export const wake = (signal: Int32Array): void => {
  Atomics.add(signal, COUNTER, 1)
  if (Atomics.load(signal, PARKED) !== 0) Atomics.notify(signal, COUNTER, 1)
}

/** The thread's event loop has nothing but the pool's port to wait for. */
const loopIdle = (): boolean => {
  const resources = process.getActiveResourcesInfo()
  return resources.length === 1 && process.stdout.writableLength === 0 && process.stderr.writableLength === 0
}

/**
 * Takes up to `limit` messages queued on a port and hands each to `receive`; whether it took any.
 * One that cannot be deserialized is taken off the port all the same, as a 'messageerror' would be,
 * and handed to `unreadable`; those behind it are read.
 */
export const takeQueued = (
  port: MessagePort,
  limit: number,
  receive: (message: unknown) => void,
  unreadable: (error: unknown) => void
): boolean => {
  let n = 0
  for (; n < limit; n++) {
    let entry: { message: unknown } | undefined
    try {
      entry = receiveMessageOnPort(port)
    } catch (error) {
      unreadable(error)
      continue
    }
    if (entry === undefined) break
    receive(entry.message)
  }
  return n > 0
}

export interface Parker {
  /**
   * Parks at the event loop's next turn, if idle then: call when the thread may have become idle
   * (after a message, when a task ends), which also restarts its count of idle turns.
   */
  readonly schedule: () => void
}

export const makeParker = (options: {
  readonly port: MessagePort
  /** The thread's wake signal (see `COUNTER`). */
  readonly signal: Int32Array
  /** Nothing of the pool's in flight on this thread. */
  readonly idle: () => boolean
  /**
   * A message from the pool, as the port's 'message' listener gets it (without scheduling a park);
   * true if it was a batch of several (see `streaming`).
   */
  readonly receive: (data: unknown) => boolean
  /** A message that could not be deserialized, as the port's 'messageerror' listener gets it. */
  readonly unreadable: (error: unknown) => void
  /** Sends the answers queued for the end of this tick now. */
  readonly flush: () => void
}): Parker => {
  const { flush, idle, port, receive, signal, unreadable } = options
  let scheduled = false
  /** Parks in a row that timed out with no message. */
  let idleTurns = 0
  /** Whether a wake brought a batch of messages: see `park`. */
  let streaming = false
  const take = (message: unknown) => {
    if (receive(message)) streaming = true
  }
  /** Takes every message on the port; whether there was one. */
  const drain = (): boolean => takeQueued(port, Infinity, take, unreadable)
  const park = () => {
    scheduled = false
    if (!idle() || !loopIdle()) return
    Atomics.store(signal, PARKED, 1)
    try {
      parked()
    } finally {
      Atomics.store(signal, PARKED, 0)
    }
  }
  /** Takes what comes while parked, until something needs the event loop or the deadline passes. */
  const parked = () => {
    const deadline = performance.now() + PARK_MS
    // read after PARKED is set and before the port: a post after this read changes the counter,
    // and the wait returns at once
    let seen = Atomics.load(signal, COUNTER)
    let received = false
    for (;;) {
      if (drain()) {
        received = true
        // a batch means the pool has a backlog for this thread: the next one is on its way, and
        // with 2 busy cores a wake per post cost more than the event loop's (6L all at once:
        // 0.57-0.88x piscina's cost per task parked, 0.34-0.48x not); the loop takes the stream
        if (streaming) {
          streaming = false
          return
        }
        // what they started (a fiber, a timer) needs the event loop: it takes over, and parks again after
        if (!idle() || !loopIdle()) return schedule()
        // they ended as they started (Effect.sync): their answers go now, and the thread stays parked.
        // A promise their code left behind runs at the loop's next turn, by the deadline
        flush()
      }
      const left = deadline - performance.now()
      if (left <= 0 || Atomics.wait(signal, COUNTER, seen, left) === "timed-out") {
        if (received) schedule()
        else if (++idleTurns < IDLE_TURNS) later()
        return
      }
      seen = Atomics.load(signal, COUNTER)
    }
  }
  const later = (): void => {
    if (scheduled) return
    scheduled = true
    setImmediate(park)
  }
  const schedule = (): void => {
    idleTurns = 0
    later()
  }
  return { schedule }
}
