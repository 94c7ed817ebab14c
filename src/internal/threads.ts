/**
 * The worker threads behind a `ThreadPool`: starting them (with a retry schedule), sending tasks,
 * cancelling them, terminating a thread that does not stop, noticing a thread that died, and
 * replacing it.
 *
 * This uses `node:worker_threads` directly rather than `effect/workers`: the pool must terminate one
 * chosen thread at once (a task in a synchronous loop never reads its cancel message), read its exit
 * code and `resourceLimits` errors, and send transfer lists, none of which Effect's worker layer
 * exposes.
 *
 * @internal
 */
import { Cause, Clock, Context, Duration, Effect, Exit, Fiber, Option, Pull, Schedule, type Tracer } from "effect"
import { inspect } from "node:util"
import {
  MessageChannel,
  type MessagePort,
  type ResourceLimits,
  type TransferListItem,
  Worker as NodeWorker
} from "node:worker_threads"
import { PoolShutdown, WorkerStartFailed } from "../PoolError.ts"
import type { CurrentJobWire } from "./jobInfo.ts"
import { IntMap } from "./intMap.ts"
import * as Monotonic from "./monotonic.ts"
import {
  CLAIMED,
  CONFIRMED,
  type FromThread,
  isFromThread,
  isTuple,
  OFFERED,
  offerCell,
  open,
  type Outcome,
  Outbox,
  PACE,
  PORT,
  PROTOCOL,
  protocolMismatch,
  type Run,
  type ThreadData,
  type ToThread,
  WITHDRAWN
} from "./protocol.ts"
import { SIGNAL_CELLS, takeQueued, wake } from "./park.ts"
import { isSpanRecord, type SpanRecord, SpanReplay } from "./threadSpans.ts"
import { threadMain } from "./threadMain.ts"
import { transferIssue } from "./transfer.ts"

export type Reply = Outcome | { readonly _: "crashed"; readonly reason: string }

/** Effect's live Clock, whatever Clock the pool or the caller runs on: see `withinGrace`. */
const liveClock = Clock.Clock.defaultValue()

/**
 * `effect`'s value, or None once `millis` of real time have passed: the wait of `cancelGrace` for a
 * thread to confirm a cancel or to exit when asked to close. A thread answers in real time, which
 * no test clock moves. Waited on a `TestClock`, one adjust past a task's timeout and the grace
 * ended the grace within that adjust, before the thread could answer: the thread of a task that
 * stops in a millisecond was terminated, failing every other task on it with `WorkerCrashed`; and
 * a thread that never answers (a task in a loop) held the close of a test's scope for ever, waiting
 * for a clock nobody moves any more, even with `shutdownTimeout: 0` or `shutdownNow`.
 */
const withinGrace = <A>(effect: Effect.Effect<A>, millis: number): Effect.Effect<Option.Option<A>> =>
  Effect.raceFirst(Effect.asSome(effect), Effect.as(liveClock.sleep(Duration.millis(millis)), Option.none()))

export interface ThreadsConfig {
  /** The pool's name, handed to each thread once (for its tasks' `JobContext`). */
  readonly pool: string
  readonly entry: URL | string
  readonly tasksPerThread: number
  readonly cancelGrace: number
  /** 0: threads are never retired for being idle. */
  readonly idleTimeout: number
  readonly startSchedule: Schedule.Schedule<unknown, unknown>
  /** Milliseconds a thread may take to report ready; 0 means no limit. */
  readonly startTimeout: number
  readonly resourceLimits: ResourceLimits | undefined
  readonly workerData: unknown
}

/** A lost message: the tasks sent before it that the thread no longer runs, unanswered, were in it. */
interface Sync {
  readonly n: number
  readonly before: number
  readonly part: "reply" | "payload"
  readonly issue: string
}

/**
 * A task sent to a busy thread ahead of time (see protocol.ts): started by the thread once it has
 * room, or taken back. Its answer, if it comes before the pool hands it a slot, waits here.
 */
export class Offer {
  readonly thread: Thread
  readonly id: number
  /** Its cell among the thread's (see protocol.ts). */
  readonly cell: number
  /** The pool's job it was made for. */
  readonly job: unknown
  reply: Reply | undefined = undefined
  /** The attempt that took it over, waiting for its answer. */
  listener: ((reply: Reply) => void) | undefined = undefined
  constructor(thread: Thread, id: number, cell: number, job: unknown) {
    this.thread = thread
    this.id = id
    this.cell = cell
    this.job = job
  }

  /** Its answer: to the attempt that took it over, or kept for the one that will. */
  answer(reply: Reply): void {
    if (this.listener !== undefined) this.listener(reply)
    else this.reply = reply
  }
}

/**
 * Who hears how a task on a thread ended: a function, or the task's offer (see `Offer.answer`),
 * which is its own listener, so that an offer costs no closure.
 */
type Waiter = ((reply: Reply) => void) | Offer

const deliver = (waiter: Waiter, reply: Reply): void => {
  if (typeof waiter === "function") waiter(reply)
  else waiter.answer(reply)
}

export class Thread {
  readonly worker: NodeWorker
  /** The pool's private channel to the thread (its `parentPort` is user code's). */
  readonly port: MessagePort
  readonly index: number
  readonly inflight = new Map<number, Waiter>()
  /** Where each task's progress reports go. */
  readonly progress = new IntMap<ProgressSink>()
  /** Where each traced task's spans are replayed (tasks whose caller has a sampled span). */
  readonly spans = new Map<number, SpanReplay>()
  nextId = 0
  /** Set when the pool stops the thread on purpose; the reason its tasks are given. */
  stopping: string | undefined = undefined
  /** The last error the thread reported before it exited. */
  error: string | undefined = undefined
  exited = false
  /** It reported ready: it can be asked to close, rather than terminated. */
  ready = false
  /** When it reported ready, on the pool's monotonic clock (`Threads.monotonic`). */
  readyAt = 0
  /** It answered a task: it works, whenever it dies. */
  completed = false
  /** Its slots were given back while it still had work: it stops once idle. */
  retiring = false
  readonly exitWaiters: Array<() => void> = []
  idleTimer: Fiber.Fiber<void> | undefined = undefined
  /** Tasks cancelled and not yet confirmed: the thread may be terminated soon. */
  cancelling = 0
  /** Messages that could not be deserialized, each waiting for the thread to say what it still runs. */
  readonly syncs: Array<Sync> = []
  syncCount = 0
  readonly outbox: Outbox<ToThread>
  /** The offer cells shared with the thread (see protocol.ts). */
  readonly cells: Int32Array
  /** Which cells an offer among `offers` holds (see `freeCell`). */
  readonly held: Uint8Array
  /** Where `freeCell` looks first. */
  nextCell = 0
  /** The thread's pace cell (see protocol.PACE). */
  readonly pace: Int32Array
  /** The tasks offered to it and not yet started or taken back, in the order sent (see `depth`). */
  readonly offers: Array<Offer> = []
  /** It takes offers until it holds its `depth` of them (see `offerTarget`). */
  filling = true
  /**
   * A task's message (a `Run` with no transfer list) could not be sent: the task fails. One function
   * per thread, set when the thread is spawned, so that a task costs no closure for it.
   */
  unsent: (issue: string, message: ToThread) => void = () => {}
  constructor(worker: NodeWorker, port: MessagePort, index: number, cells: Int32Array, pace: Int32Array, signal: Int32Array) {
    this.worker = worker
    this.port = port
    this.index = index
    this.cells = cells
    this.held = new Uint8Array(cells.length)
    this.pace = pace
    this.outbox = new Outbox((message, transfer) => {
      if (this.exited) return
      port.postMessage(message, transfer)
      wake(signal)
    })
  }
}

/**
 * How many tasks a busy thread may hold besides its running ones (see `depth`): at least
 * `MIN_OFFERS`, at most `MAX_OFFERS`, enough for its tasks to keep it busy for `WINDOW` µs at its
 * pace. More keep a thread busy while the main thread is late (a loaded machine does not schedule it
 * for a while, and a round trip takes tens of µs on an idle one) and carry more tasks per message;
 * but each is a queued task parked on one thread until it starts or is taken back, which another
 * thread that frees up sooner cannot take: so long tasks get few.
 *
 * 16 ms rather than 2: beside another CPU-bound process the main thread is off its core for whole
 * scheduler slices (several ms), and a 2 ms window ran dry within one (scenario 5L, see CHANGELOG
 * 0.3.0). The price: at the end of a batch one thread may wait while the other runs what it still
 * holds, until the main thread takes that back (docs/threads.md).
 */
export const MIN_OFFERS = 2
export const MAX_OFFERS = 64
export const WINDOW = 16_000

/**
 * A thread's memory shared with the main thread, one buffer: its pace cell (protocol.PACE), its wake
 * signal (park.ts), and its offer cells, a cell per slot and per offer (one per offer confirmed and
 * not yet read, at most), each apart from the others. An overlap would not show as a failure: the
 * offers' compare-and-swap would take the corruption for a thread's claim or a withdrawal.
 */
export const sharedCells = (slots: number): { readonly pace: Int32Array; readonly signal: Int32Array; readonly cells: Int32Array } => {
  const shared = new SharedArrayBuffer(4 * (1 + SIGNAL_CELLS + slots + MAX_OFFERS))
  const cells = new Int32Array(shared, 4 * (1 + SIGNAL_CELLS))
  cells.fill(offerCell(0, WITHDRAWN))
  return { pace: new Int32Array(shared, 0, 1), signal: new Int32Array(shared, 4, SIGNAL_CELLS), cells }
}

/** How many offers `thread` may hold now, from its pace (see protocol.PACE; unknown: `MIN_OFFERS`). */
export const depth = (pace: number): number =>
  pace <= 0 ? MIN_OFFERS : Math.max(MIN_OFFERS, Math.min(MAX_OFFERS, Math.ceil(WINDOW / pace)))

/** Messages from a thread the main thread handles in one 'message' callback, at most (see `spawn`). */
const DRAIN = 64

/**
 * A cell of the thread's that a new offer may take (see protocol.ts): one whose offer was taken
 * back, or was claimed by the thread and handed over to its job since (an offer the thread has
 * claimed stays among `offers` until then, and its cell is its proof); -1 if none. It looks from
 * where the last one was found, so that with many offers out it does not scan the taken ones each
 * time.
 */
const freeCell = (thread: Thread): number => {
  const cells = thread.cells
  const n = cells.length
  for (let k = 0, i = thread.nextCell; k < n; k++, i = i + 1 === n ? 0 : i + 1) {
    if (thread.held[i] === 1) continue
    const state = Atomics.load(cells, i) & 3
    if (state === CLAIMED || state === WITHDRAWN) {
      thread.nextCell = i
      return i
    }
  }
  return -1
}

/** The offer is no longer among its thread's: its cell is the thread's or free again. */
const removeOffer = (offer: Offer): void => {
  const offers = offer.thread.offers
  // most often the first: shift, as splice allocates the array of what it removed
  if (offers[0] === offer) offers.shift()
  else offers.splice(offers.indexOf(offer), 1)
  offer.thread.held[offer.cell] = 0
}

/**
 * An offer the thread never read (its message could not be sent, or was lost on the way) has
 * ended unstarted with its codec failure: its cell is marked `CLAIMED`, as if the thread had run
 * it, since the thread never will. Left `OFFERED` or `CONFIRMED`, the cell would be spent for good
 * (`freeCell` takes neither), and after one per cell the thread would get no more offers. Claimed,
 * the offer cannot be taken back: its job takes its answer in the slot its thread frees next, and
 * ends once, failed, rather than come back unstarted (a `shutdownNow`) and fail as well.
 */
const unread = (thread: Thread, id: number, cell: number): void => {
  const cells = thread.cells
  const claimed = offerCell(id, CLAIMED)
  if (Atomics.compareExchange(cells, cell, offerCell(id, OFFERED), claimed) !== offerCell(id, OFFERED)) {
    Atomics.compareExchange(cells, cell, offerCell(id, CONFIRMED), claimed)
  }
}

/**
 * Whether the `Worker` constructor threw because of its arguments, or because the process may not
 * start threads (ERR_ACCESS_DENIED: Node's permission model without --allow-worker, fixed for the
 * process's life): trying again fails the same way, so the start schedule is not consulted. A
 * failure to create the thread itself (ERR_WORKER_INIT_FAILED, EAGAIN when the OS has no thread or
 * memory to give now) may pass, and is retried.
 */
export const unrecoverable = (error: unknown): boolean => {
  if (typeof error !== "object" || error === null) return false
  if ((error as { readonly name?: unknown }).name === "DataCloneError") return true
  const code = (error as { readonly code?: unknown }).code
  return typeof code === "string" &&
    (code.startsWith("ERR_INVALID_ARG_") || code === "ERR_OUT_OF_RANGE" || code === "ERR_WORKER_PATH" || code === "ERR_ACCESS_DENIED" ||
      code === "ERR_INVALID_URL_SCHEME" || code.startsWith("ERR_INVALID_FILE_URL_"))
}

/** A start attempt that failed for a reason trying again cannot change. */
class Unrecoverable {
  readonly reason: string
  constructor(reason: string) {
    this.reason = reason
  }
}

/** Whether `data`, on a thread's parentPort, is effect-workpool 0.1's ready or fatal (in its envelope). */
const fromVersion01 = (data: unknown): boolean => {
  const content = typeof data === "object" && data !== null ? (data as { readonly "effect-workpool"?: unknown })["effect-workpool"] : undefined
  const first: unknown = Array.isArray(content) ? content[0] : content
  const kind = typeof first === "object" && first !== null ? (first as { readonly _?: unknown })._ : undefined
  return kind === "ready" || kind === "fatal"
}

/** What a thread sent on the pool's port before its "ready" that is not a message of this protocol, in short. */
const strange = (data: unknown): string =>
  `unknown, as it sent ${inspect(data, { depth: 1, maxStringLength: 80, maxArrayLength: 5, breakLength: Infinity })}`

/** An error of a thread in one line; whatever the thread threw, describing it must not throw here. */
const describe = (error: unknown): string => {
  try {
    return error instanceof Error ? `${error.name}: ${error.message}` : String(error)
  } catch {
    return inspect(error, { depth: 1 })
  }
}

/**
 * How long a thread must have lived, if it completed no task, for its death not to count as an early
 * one: a thread that keeps dying sooner is replaced per `startSchedule` (see `Threads.backoff`).
 */
const HEALTHY_AFTER = 10_000

/** The consecutive early deaths of the threads at one index. */
interface Deaths {
  count: number
  /** The last one's. */
  reason: string
  /** `startSchedule`, stepped once per early death (it sleeps its delay). */
  step: ((input: unknown) => Pull.Pull<unknown, never, unknown>) | undefined
}

/**
 * Where a task's progress reports go: an object with a method rather than a function, so that an
 * offered task's sink is its job itself (the scheduler's `Job` is one), with no closure per task.
 */
export interface ProgressSink {
  readonly reportProgress: (value: unknown) => void
}

/** The job a task runs for: its id, attempt, span and where its progress goes. */
export interface TaskJob {
  readonly id: number
  readonly attempt: number
  readonly trace: readonly [traceId: string, spanId: string, sampled: boolean, record: boolean] | undefined
  /** The caller's span and tracer: the task's spans in the thread are replayed there, under it. */
  readonly span: Tracer.AnySpan | undefined
  readonly tracer: Tracer.Tracer
  readonly progress: ProgressSink
  /** A durable job's task: the durable job; payload and outcome in the task's JSON form (see protocol.Run). */
  readonly durable?: CurrentJobWire | undefined
}

export class Threads {
  private readonly config: ThreadsConfig
  private readonly context: Context.Context<never>
  /** Live (or starting) thread per index. */
  private readonly threads: Array<Thread | undefined> = []
  /** Slots of the pool assigned to each index. */
  private readonly slots: Array<number> = []
  /** A start under way per index, shared by every caller that needs that thread. */
  private readonly starting: Array<Fiber.Fiber<Thread, WorkerStartFailed | PoolShutdown> | undefined> = []
  /** Tasks waiting for the thread at each index to start. */
  private readonly waiting: Array<number> = []
  /** Threads at each index that died soon after they started, one after the other. */
  private readonly deaths: Array<Deaths | undefined> = []
  private readonly upkeep = new Set<Fiber.Fiber<unknown, unknown>>()
  /** Every thread spawned and not yet exited, ready or not. */
  private readonly alive = new Set<Thread>()
  private closed = false
  /** How many threads the pool wants; slots are spread over them evenly. */
  target = 0

  get live(): number {
    return this.alive.size
  }

  /** The pool's Clock's monotonic time (monotonic.ts): a thread's lifetime is a duration. */
  private readonly monotonic: () => number

  constructor(config: ThreadsConfig, context: Context.Context<never>) {
    this.config = config
    this.context = context
    this.monotonic = Monotonic.millis(Context.get(context, Clock.Clock))
  }

  /**
   * Assigns a pool slot to a thread (at once: the caller registers its release), without waiting
   * for the thread; `ready` waits for it.
   */
  assign(): Effect.Effect<number> {
    return Effect.sync(() => {
      // the least loaded of the wanted threads, so that tasks spread over threads before doubling up
      let index = -1
      for (let i = 0; i < Math.max(this.target, 1); i++) {
        if (index < 0 || (this.slots[i] ?? 0) < this.slots[index]!) index = i
        this.slots[i] ??= 0
      }
      if (this.slots[index]! >= this.config.tasksPerThread) {
        index = this.slots.findIndex((n) => n < this.config.tasksPerThread)
        if (index < 0) index = this.slots.push(0) - 1
      }
      this.slots[index]!++
      const thread = this.threads[index]
      if (thread !== undefined) thread.retiring = false
      return index
    })
  }

  /**
   * Waits until the thread for a slot has started. Interruptible: a caller that gives up (`make`
   * under a timeout) stops waiting at once. A start cut short by the pool's shutdown is not an
   * error of the caller (a `resize` under way): the slot is simply never used.
   */
  ready(index: number): Effect.Effect<number, WorkerStartFailed> {
    return this.get(index).pipe(
      Effect.as(index),
      Effect.catchIf((error) => error instanceof PoolShutdown, () => Effect.succeed(index))
    )
  }

  /**
   * The thread for the next task: the one with the fewest tasks in flight, a running thread before
   * one that must be started. The pool never runs more tasks than threads × tasksPerThread, so the
   * least loaded thread always has room.
   */
  pick(): number {
    let best = -1
    let bestLoad = Infinity
    for (let i = 0; i < this.slots.length; i++) {
      if (this.slots[i] === 0) continue
      const thread = this.threads[i]
      // a thread being started counts the tasks waiting for it; one with an unconfirmed cancel may
      // be terminated soon, so it is taken only when nothing else is left
      const load = thread === undefined || thread.stopping !== undefined
        ? 0.5 + (this.waiting[i] ?? 0)
        : thread.cancelling > 0
        ? 1e9 + thread.inflight.size
        : thread.inflight.size
      if (load < bestLoad) {
        best = i
        bestLoad = load
      }
    }
    return best
  }

  /** The thread for a task that starts now, started first if need be. */
  take(): Effect.Effect<Thread, WorkerStartFailed | PoolShutdown> {
    return Effect.suspend(() => {
      const index = this.pick()
      const thread = this.threads[index]
      if (thread !== undefined && !thread.exited && thread.stopping === undefined) return Effect.succeed(thread)
      this.waiting[index] = (this.waiting[index] ?? 0) + 1
      return Effect.ensuring(
        this.get(index),
        Effect.sync(() => {
          this.waiting[index]!--
        })
      )
    })
  }

  /** Gives a slot back; a thread with no slot left is stopped. */
  release(_index: number): Effect.Effect<void> {
    return Effect.suspend(() => {
      // slots are not bound to threads (see pick): take it from the thread with the fewest, so
      // that threads empty one by one
      let index = -1
      for (let i = 0; i < this.slots.length; i++) {
        if (this.slots[i]! > 0 && (index < 0 || this.slots[i]! <= this.slots[index]!)) index = i
      }
      if (--this.slots[index]! > 0) return Effect.void
      const thread = this.threads[index]
      // a start under way finishes (a task may be waiting for it); that thread retires once idle
      if (thread === undefined) return Effect.void
      // shrinking lets running tasks finish
      if (thread.inflight.size > 0) {
        thread.retiring = true
        return Effect.void
      }
      return this.stop(thread, "the pool shrank", "ask")
    })
  }

  /** The thread at `index`, started again if it retired or died. */
  get(index: number): Effect.Effect<Thread, WorkerStartFailed | PoolShutdown> {
    return Effect.suspend(() => {
      const thread = this.threads[index]
      if (thread !== undefined && !thread.exited && thread.stopping === undefined) return Effect.succeed(thread)
      if (thread !== undefined) this.threads[index] = undefined
      if (this.closed) return Effect.fail(new PoolShutdown({ phase: "running" }))
      let starting = this.starting[index]
      if (starting === undefined) {
        starting = Effect.runForkWith(this.context)(this.start(index))
        this.starting[index] = starting
        starting.addObserver(() => {
          if (this.starting[index] === starting) this.starting[index] = undefined
        })
      }
      // the start is shared, and interrupted only by the pool's shutdown
      return Effect.flatMap(Fiber.await(starting), (exit) =>
        Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)
          ? Effect.fail(new PoolShutdown({ phase: "running" }))
          : exit)
    })
  }

  private start(index: number): Effect.Effect<Thread, WorkerStartFailed | PoolShutdown> {
    let attempts = 0
    const spawn = Effect.suspend(() => {
      attempts++
      const timeout = this.config.startTimeout
      // a thread that never reports ready (its layer build hangs, say) counts as a failed start.
      // Real time, as `withinGrace`: a thread loads in real time; on a TestClock, a worker that
      // never reports ready held `make` for ever in a test that does not move its clock
      return timeout === 0 ? this.spawn(index) : Effect.raceFirst(
        this.spawn(index),
        Effect.andThen(liveClock.sleep(Duration.millis(timeout)), Effect.fail(`the thread did not report ready within ${timeout} ms`))
      )
    })
    const started = spawn.pipe(
      Effect.retry({ schedule: this.config.startSchedule, while: (failure) => !(failure instanceof Unrecoverable) }),
      Effect.mapError((failure) =>
        new WorkerStartFailed({ attempts, reason: failure instanceof Unrecoverable ? failure.reason : failure })
      )
    )
    return Effect.andThen(this.backoff(index), started).pipe(
      Effect.flatMap((thread) =>
        Effect.suspend((): Effect.Effect<Thread, WorkerStartFailed | PoolShutdown> => {
          // it died between its "ready" and now, before `died` could replace it (it was not in
          // `threads` yet): its death is counted, so this start goes on per the backoff
          if (thread.exited && !this.closed) return this.start(index)
          if (this.closed) {
            return Effect.andThen(
              // it built its layer: let it release it
              this.stop(thread, "the pool shut down", "ask"),
              Effect.fail(new PoolShutdown({ phase: "running" }))
            )
          }
          this.threads[index] = thread
          if (this.slots[index] === 0) {
            // not wanted any more: it serves the tasks that waited for it, then stops
            thread.retiring = true
            queueMicrotask(() => this.retireIfIdle(thread))
          } else {
            this.armIdle(thread)
          }
          return Effect.succeed(thread)
        })
      )
    )
  }

  /**
   * Before replacing a thread that died soon after it started (see `died`): waits `startSchedule`'s
   * next delay, on the pool's clock; once the schedule is done, the start fails with
   * `WorkerStartFailed` (the tasks waiting for this thread get it) and the count starts over, so
   * that the thread is started again only when a task needs it. A thread that keeps dying is then
   * started as often as the schedule allows, rather than in a loop.
   */
  private backoff(index: number): Effect.Effect<void, WorkerStartFailed> {
    return Effect.suspend(() => {
      const deaths = this.deaths[index]
      if (deaths === undefined) return Effect.void
      const step = deaths.step !== undefined
        ? Effect.succeed(deaths.step)
        : Effect.map(Schedule.toStepWithSleep(this.config.startSchedule), (step) => (deaths.step = step))
      return step.pipe(
        Effect.flatMap((step) => step(deaths.reason)),
        Effect.asVoid,
        Pull.catchDone(() => {
          if (this.deaths[index] === deaths) this.deaths[index] = undefined
          const what = `exited ${deaths.count} times in a row within ${HEALTHY_AFTER} ms of starting, ` +
            `with no task completed (the last time: ${deaths.reason})`
          return Effect.andThen(
            Effect.logWarning(`ThreadPool: thread ${index} ${what}; it is started again when a task needs it`),
            Effect.fail(new WorkerStartFailed({ attempts: deaths.count, reason: `the thread ${what}` }))
          )
        })
      )
    })
  }

  /** Whether a thread's death counts as an early one (see `backoff`); a healthy one resets the count. */
  private countDeath(thread: Thread, reason: string): void {
    const now = this.monotonic()
    if (thread.completed || now - thread.readyAt >= HEALTHY_AFTER) {
      this.deaths[thread.index] = undefined
      return
    }
    const deaths = this.deaths[thread.index] ??= { count: 0, reason, step: undefined }
    deaths.count++
    deaths.reason = reason
  }

  /** Starts one thread and waits for its "ready"; fails with the reason it did not get there. */
  private spawn(index: number): Effect.Effect<Thread, string | Unrecoverable> {
    return Effect.callback<Thread, string | Unrecoverable>((resume) => {
      // the pool's own channel, handed to the thread with its workerData (ThreadWorker takes it out)
      const { port1: port, port2 } = new MessageChannel()
      const { cells, pace, signal } = sharedCells(this.config.tasksPerThread)
      const main = threadMain(this.config.entry)
      const workerData: ThreadData = {
        [PORT]: port2,
        protocol: PROTOCOL,
        pool: this.config.pool,
        slots: this.config.tasksPerThread,
        offer: cells,
        pace,
        wake: signal,
        workerData: this.config.workerData,
        main: main.main
      }
      let worker: NodeWorker
      try {
        worker = new NodeWorker(main.file, {
          eval: main.eval,
          workerData,
          transferList: [port2],
          ...(this.config.resourceLimits ? { resourceLimits: this.config.resourceLimits } : {})
        })
      } catch (error) {
        port.close()
        return resume(Effect.fail(unrecoverable(error) ? new Unrecoverable(describe(error)) : describe(error)))
      }
      const thread = new Thread(worker, port, index, cells, pace, signal)
      thread.unsent = (issue, message) => {
        if (!isTuple(message)) return
        const run = message as Run
        if (run[7] !== undefined) unread(thread, run[0], run[7])
        this.settle(thread, run[0], { _: "codec", part: "payload", issue })
      }
      this.alive.add(thread)
      let ready = false
      const done = (id: number, outcome: Outcome) => {
        if (!thread.completed) {
          thread.completed = true
          if (this.threads[thread.index] === thread) this.deaths[thread.index] = undefined
        }
        this.settle(thread, id, outcome)
      }
      /**
       * Why the thread is refused: its copy of effect-workpool is not the pool's, or not one that
       * speaks its protocol. No task may go to it; trying again would start the same file, so the
       * start fails as soon as the thread has exited (no thread is left behind).
       */
      let refused: string | undefined
      const refuse = (reason: string) => {
        if (refused !== undefined) return
        refused = reason
        void worker.terminate()
      }
      // before it is ready, a thread of this copy posts only "ready" or "fatal" on this port
      const strayed = (data: unknown) =>
        ready ? this.stray(thread, data) : refuse(protocolMismatch(PROTOCOL, strange(data)))
      const handle = (message: FromThread) => {
        if (!isFromThread(message)) return strayed(message)
        if (isTuple(message)) return ready ? done(message[0], { _: "success", value: message[1] }) : strayed(message)
        switch (message._) {
          case "ready": {
            const theirs: unknown = message.protocol
            if (theirs !== PROTOCOL) {
              return refuse(protocolMismatch(PROTOCOL, typeof theirs === "number" ? theirs : undefined))
            }
            ready = true
            thread.ready = true
            thread.readyAt = this.monotonic()
            return resume(Effect.succeed(thread))
          }
          case "fatal": {
            const theirs: unknown = message.protocol
            if (!ready && typeof theirs === "number" && theirs !== PROTOCOL) {
              return refuse(protocolMismatch(PROTOCOL, theirs))
            }
            thread.error = message.message
            // from a ready thread, it is its layer's release that failed as it closed
            if (ready) {
              Effect.runForkWith(this.context)(
                Effect.logError(`ThreadPool: thread ${thread.index} could not release its layer: ${message.message}`)
              )
            }
            return
          }
          case "done": {
            return done(message.id, message.outcome)
          }
          case "progress": {
            return thread.progress.get(message.id)?.reportProgress(message.value)
          }
          case "synced": {
            return this.synced(thread, message.n, message.running)
          }
          case "unreadable": {
            return this.lost(thread, "payload", `the thread could not deserialize the message carrying it: ${message.issue}`)
          }
          case "spans": {
            return this.replay(thread, message.spans, message.dropped)
          }
        }
      }
      const receive = (data: unknown) => {
        if (!open(data, handle)) strayed(data)
      }
      const unreadable = (error: unknown) => {
        const issue = describe(error)
        Effect.runForkWith(this.context)(
          Effect.logDebug(`ThreadPool: a message from thread ${thread.index} could not be deserialized: ${issue}`)
        )
        this.lost(thread, "reply", issue)
      }
      port.on("message", (data: unknown) => {
        receive(data)
        // the messages queued behind it are taken in this callback (a thread answers each task in a
        // message of its own): each 'message' event costs the main thread a dispatch and a microtask
        // checkpoint. At most DRAIN of them, so that a thread answering faster than they are handled
        // cannot hold the main thread; Node dispatches the rest as events
        takeQueued(port, DRAIN, receive, unreadable)
      })
      port.on("messageerror", unreadable)
      // the thread's parentPort is user code's: nothing on it is the pool's, but for a thread of
      // effect-workpool 0.1, whose pool talked over it, under the same envelope key
      worker.on("message", (data: unknown) => ready || !fromVersion01(data) ? this.stray(thread, data) : refuse(protocolMismatch(PROTOCOL, "effect-workpool 0.1")))
      worker.on("messageerror", (error) => this.stray(thread, `(a message that could not be deserialized: ${describe(error)})`))
      worker.on("error", (error) => {
        thread.error = describe(error)
      })
      worker.on("exit", (code) => {
        // what the thread posted before it exited (a reply, why its layer failed) comes first: Node
        // does this for parentPort, not for other ports
        // one that cannot be deserialized is taken off the port all the same: those behind it are read.
        // It is not asked about (the thread is gone): a task it answered ends as the thread's others do
        takeQueued(port, Infinity, receive, (error) =>
          Effect.runForkWith(this.context)(Effect.logDebug(
            `ThreadPool: a message from thread ${thread.index}, read as it exited, could not be deserialized: ${describe(error)}`
          )))
        port.close()
        this.alive.delete(thread)
        thread.exited = true
        const reason = thread.stopping ?? refused ?? thread.error ?? (ready ? `the thread exited with code ${code}` : notReady(code))
        if (!ready) resume(Effect.fail(refused !== undefined ? new Unrecoverable(refused) : reason))
        else this.died(thread, reason)
        for (const waiter of thread.exitWaiters.splice(0)) waiter()
      })
      return Effect.promise(() => worker.terminate())
    })
  }

  /**
   * User code in the thread posted on its `parentPort`: not the pool's channel, so not a reply to
   * anything. Ignored (logged at debug level): it must neither crash the pool nor end a task.
   */
  private stray(thread: Thread, data: unknown): void {
    Effect.runForkWith(this.context)(Effect.logDebug(
      `ThreadPool: ignored a message from thread ${thread.index} that is not the pool's: ${
        inspect(data, { depth: 1, maxStringLength: 200, maxArrayLength: 10 })
      }`
    ))
  }

  /**
   * A message between the threads could not be deserialized (a `messageerror`: a value nested
   * deeper than the receiving thread's stack, say), here (`"reply"`) or in the thread
   * (`"payload"`). What it said is lost with it, even whether it was the pool's. So the thread is
   * asked which tasks it still runs: a task sent to it before now that it no longer runs, and that
   * has had no answer by the time it replies (messages keep their order), was in the lost message.
   * The thread itself is fine, and goes on.
   */
  private lost(thread: Thread, part: Sync["part"], issue: string): void {
    // before ready, no task is on the thread (a lost "ready" ends as a start timeout)
    if (!thread.ready || thread.exited) return
    const n = thread.syncCount++
    thread.syncs.push({ n, before: thread.nextId, part, issue })
    thread.outbox.send({ _: "sync", n })
  }

  /**
   * The thread's answer to sync `n`: the tasks it still runs. It answers for earlier syncs too,
   * whose question or answer may have been lost in turn.
   */
  private synced(thread: Thread, n: number, running: ReadonlyArray<number>): void {
    const still = new Set(running)
    while (thread.syncs.length > 0 && thread.syncs[0]!.n <= n) {
      const sync = thread.syncs.shift()!
      for (const id of Array.from(thread.inflight.keys())) {
        if (id >= sync.before || still.has(id)) continue
        // an offer lost with the message never reached the thread (one it ran is claimed already)
        const waiter = thread.inflight.get(id)
        if (waiter instanceof Offer) unread(thread, id, waiter.cell)
        this.settle(thread, id, { _: "codec", part: sync.part, issue: sync.issue })
      }
    }
  }

  /**
   * Spans a thread's tasks made, replayed on their callers' tracers. A tracer that throws loses its
   * span, not the main thread.
   */
  private replay(thread: Thread, records: ReadonlyArray<SpanRecord>, dropped: number): void {
    for (const record of records) {
      if (!isSpanRecord(record)) continue
      this.guarded(thread, () => thread.spans.get(record.task)?.add(record))
    }
    if (dropped > 0) {
      Effect.runForkWith(this.context)(Effect.logWarning(
        `ThreadPool: thread ${thread.index} dropped ${dropped} spans made within one tick (at most 1024 are sent per tick)`
      ))
    }
  }

  private guarded(thread: Thread, replay: () => void): void {
    try {
      replay()
    } catch (error) {
      Effect.runForkWith(this.context)(
        Effect.logWarning(`ThreadPool: a span from thread ${thread.index} could not be replayed: ${describe(error)}`)
      )
    }
  }

  /** A traced task has ended: its spans still waiting for a parent are replayed. */
  private finishSpans(thread: Thread, id: number): void {
    const replay = thread.spans.get(id)
    if (replay === undefined) return
    thread.spans.delete(id)
    this.guarded(thread, () => replay.finish())
  }

  /** A task on a thread has ended: whoever waits for it hears how; an idle thread may retire. */
  private settle(thread: Thread, id: number, outcome: Outcome): void {
    const waiter = thread.inflight.get(id)
    if (waiter === undefined) return
    thread.inflight.delete(id)
    thread.progress.delete(id)
    this.finishSpans(thread, id)
    deliver(waiter, outcome)
    if (thread.inflight.size === 0) {
      if (thread.retiring) this.retireIfIdle(thread)
      else this.armIdle(thread)
    }
  }

  /** A ready thread is gone: its tasks fail with its reason, and it is replaced if still needed. */
  private died(thread: Thread, reason: string): void {
    thread.idleTimer?.interruptUnsafe()
    if (thread.stopping === undefined) this.countDeath(thread, reason)
    if (thread.stopping === undefined && thread.inflight.size === 0) {
      // no task hears of it, and a thread that keeps exiting would be replaced over and over unseen
      Effect.runForkWith(this.context)(
        Effect.logWarning(`ThreadPool: thread ${thread.index} exited with no task on it (${reason}); it is replaced`)
      )
    }
    // take it out before telling its tasks: their slots are reused at once, and must not get it
    // (a thread retired for being idle was already taken out, and is started again on demand)
    if (this.threads[thread.index] === thread) {
      this.threads[thread.index] = undefined
      if (!this.closed && this.slots[thread.index]! > 0) {
        // keep the pool at full strength: replace it now rather than on the next task
        const fiber = Effect.runForkWith(this.context)(Effect.ignore(this.get(thread.index)))
        this.upkeep.add(fiber)
        fiber.addObserver(() => this.upkeep.delete(fiber))
      }
    }
    const replies = Array.from(thread.inflight.values())
    thread.inflight.clear()
    for (const id of Array.from(thread.spans.keys())) this.finishSpans(thread, id)
    for (const waiter of replies) deliver(waiter, { _: "crashed", reason })
  }

  /**
   * Stops a thread on purpose and waits until it has exited. `"ask"` lets a ready thread close on
   * its own (its running tasks are interrupted and its layer is released) within `cancelGrace`,
   * and terminates it after that; `"terminate"` terminates it at once.
   */
  stop(thread: Thread, reason: string, how: "ask" | "terminate"): Effect.Effect<void> {
    const grace = this.config.cancelGrace
    const ask = how === "ask" && thread.ready && grace > 0
    const exited = Effect.callback<void>((resume) => {
      if (thread.exited) return resume(Effect.void)
      thread.stopping ??= reason
      thread.exitWaiters.push(() => resume(Effect.void))
      if (ask) thread.outbox.send({ _: "close" })
      else void thread.worker.terminate()
    })
    if (!ask) return exited
    return Effect.flatMap(
      withinGrace(exited, grace),
      (done) => done._tag === "Some" ? Effect.void : this.stop(thread, reason, "terminate")
    )
  }

  /** Stops a thread in the background, for a caller that cannot wait (a timer, a reply). */
  private retire(thread: Thread, reason: string): void {
    thread.stopping ??= reason
    const fiber = Effect.runForkWith(this.context)(this.stop(thread, reason, "ask"))
    this.upkeep.add(fiber)
    fiber.addObserver(() => this.upkeep.delete(fiber))
  }

  private retireIfIdle(thread: Thread): void {
    if (!thread.retiring || thread.inflight.size > 0 || thread.exited) return
    this.retire(thread, "the pool shrank")
  }

  private armIdle(thread: Thread): void {
    const idle = this.config.idleTimeout
    if (idle === 0 || thread.exited) return
    thread.idleTimer?.interruptUnsafe()
    const timer = Effect.runForkWith(this.context)(Effect.sleep(idle))
    thread.idleTimer = timer
    timer.addObserver((exit) => {
      if (thread.idleTimer !== timer) return
      thread.idleTimer = undefined
      if (Exit.isSuccess(exit) && thread.inflight.size === 0 && this.threads[thread.index] === thread) {
        this.threads[thread.index] = undefined
        this.retire(thread, `idle for ${idle} ms`)
      }
    })
  }

  /**
   * Runs one task on a thread. If the caller is interrupted, the thread is asked to cancel the task;
   * a thread that has not confirmed within the grace period is terminated (and replaced).
   */
  call(
    thread: Thread,
    task: string,
    payload: unknown,
    transfer: ReadonlyArray<TransferListItem>,
    job: TaskJob
  ): Effect.Effect<Reply> {
    return Effect.callback<Reply>((resume) => {
      const id = this.send(thread, task, payload, transfer, job, (reply) => resume(Effect.succeed(reply)))
      return id === undefined ? undefined : this.cancel(thread, id, task)
    })
  }

  /**
   * Sends one task to a thread; `reply` hears how it ended, once. Returns the task's id on the
   * thread, or undefined if it ended at once (`reply` was called: the thread is gone, or a buffer
   * of its transfer list was moved since it was submitted). `cancel` stops it.
   */
  send(
    thread: Thread,
    task: string,
    payload: unknown,
    transfer: ReadonlyArray<TransferListItem>,
    job: TaskJob,
    reply: (reply: Reply) => void
  ): number | undefined {
    if (thread.exited) {
      reply({ _: "crashed", reason: thread.stopping ?? thread.error ?? "the thread exited" })
      return undefined
    }
    // a buffer may have been moved by another task since this one was submitted
    const badTransfer = transfer.length === 0 ? undefined : transferIssue(transfer)
    if (badTransfer !== undefined) {
      reply({ _: "codec", part: "payload", issue: `${badTransfer.field}: ${badTransfer.reason}` })
      return undefined
    }
    const id = thread.nextId++
    thread.idleTimer?.interruptUnsafe()
    thread.idleTimer = undefined
    thread.inflight.set(id, reply)
    thread.progress.set(id, job.progress)
    if (job.trace?.[3] === true && job.span !== undefined) thread.spans.set(id, new SpanReplay(job.tracer, job.span))
    const run: Run = job.durable !== undefined
      ? [id, task, payload, job.id, job.attempt, job.trace, job.durable]
      : [id, task, payload, job.id, job.attempt, job.trace]
    thread.outbox.send(
      run,
      transfer,
      transfer.length === 0 ? thread.unsent : (issue) =>
        this.settle(thread, id, {
          _: "codec",
          part: "payload",
          issue: `the payload or its transfer list could not be sent: ${issue}`
        })
    )
    return id
  }

  /**
   * The caller gave up on task `id`: the thread is asked to cancel it; a thread that has not
   * confirmed within the grace period is terminated (and replaced). Done at once if the task has
   * ended. Gives the answer that came in its place: `interrupted`, or how the task ended if it had
   * ended before the thread read the cancel (undefined: no answer came).
   */
  cancel(thread: Thread, id: number, task: string): Effect.Effect<Reply | undefined> {
    return Effect.suspend(() => {
      if (!thread.inflight.has(id)) return Effect.undefined
      const confirmed = Effect.callback<Reply>((stopped) => {
        thread.cancelling++
        thread.inflight.set(id, (reply) => {
          thread.cancelling--
          stopped(Effect.succeed(reply))
        })
        thread.outbox.send({ _: "cancel", id })
      })
      const grace = this.config.cancelGrace
      return withinGrace(confirmed, grace).pipe(
        Effect.flatMap((done) =>
          done._tag === "Some"
            ? Effect.succeed(done.value)
            : Effect.as(this.stop(
              thread,
              `task ${task} did not stop within ${grace} ms of being cancelled; its thread was terminated`,
              "terminate"
            ), undefined)
        )
      )
    })
  }

  /**
   * The thread to offer the next task to, if any: a ready one that is busy (so that one of its
   * tasks ends later and hands the offer its slot), holds fewer offers than its `depth`, and is not
   * being stopped or about to be terminated. The least loaded one.
   */
  offerTarget(): Thread | undefined {
    let best: Thread | undefined
    for (const thread of this.threads) {
      if (
        thread === undefined || !thread.ready || thread.exited || !this.wantsOffers(thread) ||
        thread.stopping !== undefined || thread.retiring || thread.cancelling > 0 || thread.inflight.size === 0
      ) continue
      if ((best === undefined || thread.inflight.size < best.inflight.size) && freeCell(thread) >= 0) best = thread
    }
    return best
  }

  /**
   * Whether a thread takes more offers: it is filled up to its `depth`, then not again until half of
   * them have started, so that offers go out several to a message (each message costs the main
   * thread a `postMessage` and wakes the thread) rather than one each time a task ends.
   */
  private wantsOffers(thread: Thread): boolean {
    const held = thread.offers.length
    const full = depth(Atomics.load(thread.pace, PACE))
    if (held >= full) {
      thread.filling = false
      return false
    }
    if (!thread.filling && held > full >> 1) return false
    thread.filling = true
    return true
  }

  /**
   * Offers a task to a thread `offerTarget` chose; its answer waits in the offer until an attempt
   * takes it. `expires`: its queue deadline, if any, as protocol.Run's `expires`.
   */
  offer(thread: Thread, task: string, payload: unknown, job: TaskJob, owner: unknown, expires?: number): Offer {
    const id = thread.nextId++
    const cell = freeCell(thread)
    const offer = new Offer(thread, id, cell, owner)
    thread.offers.push(offer)
    thread.held[cell] = 1
    Atomics.store(thread.cells, cell, offerCell(id, OFFERED))
    thread.inflight.set(id, offer)
    thread.progress.set(id, job.progress)
    if (job.trace?.[3] === true && job.span !== undefined) thread.spans.set(id, new SpanReplay(job.tracer, job.span))
    const run: Run = expires === undefined
      ? [id, task, payload, job.id, job.attempt, job.trace, undefined, cell]
      : [id, task, payload, job.id, job.attempt, job.trace, undefined, cell, expires]
    thread.outbox.send(run, undefined, thread.unsent)
    return offer
  }

  /**
   * Takes an offer back: true if done (or the thread gave it back, past its deadline). False if
   * the thread has claimed it (started it): it stays among the thread's offers until `handOver`.
   */
  withdraw(offer: Offer): boolean {
    const offered = offerCell(offer.id, OFFERED)
    const withdrawn = offerCell(offer.id, WITHDRAWN)
    const found = Atomics.compareExchange(offer.thread.cells, offer.cell, offered, withdrawn)
    if (found !== offered && found !== withdrawn) return false
    this.dropOffer(offer)
    return true
  }

  /** Whether an offer of the thread may start in a slot it freed (see `handOver`). */
  usable(thread: Thread): boolean {
    return !thread.exited && thread.stopping === undefined && !thread.retiring
  }

  /**
   * A task of the offer's thread has ended: the offer is confirmed (`start`: the pool has a slot
   * for it) or taken back. True if it runs: confirmed, or claimed by its thread already, which the
   * pool cannot take back. An offer on a thread that is gone or going is taken back unless claimed;
   * one the thread gave back (past its deadline) does not run.
   */
  handOver(offer: Offer, start: boolean): boolean {
    const thread = offer.thread
    const usable = start && this.usable(thread)
    const offered = offerCell(offer.id, OFFERED)
    const found = Atomics.compareExchange(
      thread.cells,
      offer.cell,
      offered,
      offerCell(offer.id, usable ? CONFIRMED : WITHDRAWN)
    )
    // the thread's claim is final: a claimed offer runs whatever the pool wanted
    if (found === offered ? usable : found === offerCell(offer.id, CLAIMED)) {
      removeOffer(offer)
      return true
    }
    this.dropOffer(offer)
    return false
  }

  /** An offer taken back: the thread drops it unanswered, and may be idle now. */
  private dropOffer(offer: Offer): void {
    const thread = offer.thread
    removeOffer(offer)
    thread.inflight.delete(offer.id)
    thread.progress.delete(offer.id)
    this.finishSpans(thread, offer.id)
    if (thread.inflight.size === 0 && !thread.exited) {
      if (thread.retiring) this.retireIfIdle(thread)
      else this.armIdle(thread)
    }
  }

  /** The answer of an offer that runs (see `resolve`), for the attempt that takes it over. */
  attach(offer: Offer, task: string): Effect.Effect<Reply> {
    return Effect.callback<Reply>((resume) => {
      if (this.listen(offer, (reply) => resume(Effect.succeed(reply)))) return
      return this.cancel(offer.thread, offer.id, task)
    })
  }

  /**
   * Where the answer of an offer that runs goes: to `reply`, now (true: it had come) or once it
   * comes (false: `cancel` with its id stops it).
   */
  listen(offer: Offer, reply: (reply: Reply) => void): boolean {
    if (offer.reply !== undefined) {
      reply(offer.reply)
      return true
    }
    offer.listener = reply
    return false
  }

  /**
   * The thread a task can start on now, without waiting: the one `pick` chooses, if it is running;
   * undefined if that one must be started first (`take` waits for it).
   */
  takeNow(): Thread | undefined {
    const thread = this.threads[this.pick()]
    return thread !== undefined && !thread.exited && thread.stopping === undefined ? thread : undefined
  }

  /** From now on, a thread that dies is not replaced. */
  closing(): void {
    this.closed = true
  }

  /**
   * Stops every thread, started or starting, and waits until each has exited: a ready thread is
   * asked to close (releasing its layer) and terminated if it has not within `cancelGrace`.
   */
  close(): Effect.Effect<void> {
    return Effect.suspend(() => {
      this.closed = true
      const upkeep = Array.from(this.upkeep, (fiber) => Fiber.interrupt(fiber))
      const starting = this.starting.filter((f) => f !== undefined).map((fiber) => Fiber.interrupt(fiber))
      return Effect.all([...upkeep, ...starting], { discard: true, concurrency: "unbounded" }).pipe(
        Effect.andThen(Effect.suspend(() =>
          Effect.all(Array.from(this.alive, (thread) => this.stop(thread, "the pool shut down", "ask")), {
            discard: true,
            concurrency: "unbounded"
          })
        ))
      )
    })
  }
}

/**
 * Why a thread that exited before its "ready" did not start, by its exit code: two codes mean a
 * worker file that can never serve, and say so (Node's own word for them is on stderr, if anywhere).
 */
const notReady = (code: number): string =>
  code === 0
    // a file with nothing to do ends its thread without a word: the tasks module, say
    ? "the thread exited with code 0 before it was ready: a worker file must call ThreadWorker.serve (is `worker` the file that does?)"
    : code === 13
    // Node's code for a top-level await left pending when nothing else can run: it never settles
    ? "the thread exited with code 13 before it was ready: its worker file (or a module it imports) waits in a top-level await for a promise that nothing will settle"
    : `the thread exited with code ${code}`
