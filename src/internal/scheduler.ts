/**
 * The one scheduler behind every pool: admission, the bounded priority queue, dispatch to worker
 * slots, deadlines, cancellation, shutdown and accounting. It is a synchronous state machine driven by
 * callbacks (a job's fiber ending, a timer firing, an awaiter being interrupted), so the path from
 * submit to result allocates one record per job and no Promise, no Deferred and no extra fiber.
 *
 * How a job runs is the executor's business (`Executor`): a fiber in this process, a worker thread,
 * a durable claim. The executor only starts a job on a worker and reports when it has stopped.
 *
 * @internal
 */
import { Cause, type Clock, Context, Effect, Exit, Fiber, Option, Scheduler as EffectScheduler, Scope, Stream } from "effect"
import { JobDropped, JobTimeout, PoolShutdown, QueueFull } from "../PoolError.ts"
import type { JobStatus } from "../WorkPool.ts"
import { type HeapItem, IndexedHeap } from "./indexedHeap.ts"
import * as Monotonic from "./monotonic.ts"
import * as Primitive from "./primitive.ts"
import { outranks, PriorityQueue, type QueueEntry, waitedLonger } from "./priorityQueue.ts"
import { Progress } from "./progress.ts"
import type * as Retry from "./retry.ts"

export type Overflow = "suspend" | "fail" | "dropNewest" | "dropOldest"

export interface SchedulerConfig<W> {
  /** The pool's name, for its metrics, spans and JobContext. */
  readonly name: string
  readonly jobDefaults: {
    readonly priority: number
    readonly timeout: number
    readonly queueTimeout: number
    readonly retry: Retry.Policy | undefined
  }
  readonly concurrency: number
  readonly capacity: number
  readonly overflow: Overflow
  /** Milliseconds from start; 0 means none. */
  readonly timeout: number
  /** Milliseconds from submission while queued; 0 means none. */
  readonly queueTimeout: number
  /** Milliseconds of waiting that raise a job by one priority level; 0 means no aging. */
  readonly aging: number
  readonly shutdownTimeout: number
  readonly paused: boolean
  /** How many ended jobs stay visible to lookup, and for how many milliseconds (0: no age limit). */
  readonly retention: { readonly count: number; readonly age: number }
  readonly acquireWorker: ((worker: Worker<W>) => Effect.Effect<W, unknown, Scope.Scope>) | undefined
}

/** A slot that runs one job at a time, with its optional per-worker resource. */
export class Worker<W> {
  resource: W = undefined as W
  scope: Scope.Closeable | undefined = undefined
  job: Job | undefined = undefined
  readonly id: number
  constructor(id: number) {
    this.id = id
  }
}

export interface Executor {
  /**
   * Starts `job` on `worker` and calls `scheduler.jobStopped(job, worker, exit)` once it has
   * stopped, possibly before `start` returns. `waitMillis`: how long this attempt waited.
   */
  start(job: Job, worker: Worker<any>, waitMillis: number): void
  /** Asks a running job to stop; `jobStopped` follows. */
  interrupt(job: Job): void
  /** Waits until a job asked to stop has stopped. */
  awaitStopped(job: Job): Effect.Effect<void>
  /** Whether a job that has ended (timed out) is still stopping on its worker. */
  isStopping(job: Job): boolean
}

/**
 * Hears every attempt start and stop that took time, with its wait and run time: how metrics plug
 * in (internal/metrics.ts) without the scheduler knowing about them. Times of 0 ms (on a
 * millisecond clock most short jobs wait and run 0 ms) are not told: how many there were is what
 * the scheduler counts less what was told (`started` attempts, `started - busy` stopped ones), so
 * a trivial job pays no call for them.
 */
export interface Observer {
  started(job: Job, waitMillis: number): void
  stopped(job: Job, runMillis: number): void
}

const unobserved: Observer = { started() {}, stopped() {} }

/**
 * What follows each attempt of a job that has one: how a feature such as retries (retry.ts) plugs
 * into a job without the scheduler knowing it. A job without a hook pays one field read where an
 * attempt ends. The hook acts through the scheduler's own operations (`settleStopped`, `settle`,
 * `hold`), so the accounting stays here.
 */
export interface AttemptHook {
  /** Which attempt the job is on: 1, then one more per `hold`. */
  readonly attempt: number
  /** Milliseconds a held job may wait in the queue each time it goes back to it; 0 means none. */
  readonly queueTimeout: number
  /**
   * The attempt stopped on its worker with `exit`, at `now` (the scheduler's time: milliseconds
   * since the pool was made): the hook ends the job or holds it.
   */
  stopped(job: Job, exit: Exit.Exit<any, any>, now: number): void
  /**
   * The running attempt passed its timeout (`exit`) at `now`: true if the hook takes the ending
   * over (the scheduler asks the attempt to stop, the job keeps its worker until it has, and
   * `stopped` follows); false ends the job timed out; an Exit ends it timed out with that Exit
   * instead (the hook could not decide: why, beside the timeout).
   */
  timedOut(job: Job, exit: Exit.Failure<never, JobTimeout>, now: number): boolean | Exit.Failure<never, unknown>
  /** The job's caller cancels its running attempt: whatever the hook decided for it is void. */
  cancelled(job: Job): void
  /**
   * Whether the running attempt passed its timeout and the hook took the ending over (`timedOut`
   * returned true): the attempt's span ends `timedOut`, not as the interruption that stops it.
   */
  readonly attemptTimedOut: boolean
}

/**
 * Decides whether a queued job may start now, besides a free worker: how a rate limit
 * (rateLimit.ts) plugs in. A job it refuses stays queued, on no worker; the gate calls `pump`
 * once a start may go ahead.
 */
export interface StartGate {
  /** Counts a start and returns true, or returns false: nothing starts now. */
  tryStart(): boolean
  /**
   * How many starts the gate would allow now, at most `atMost`, counting none. When none, the gate
   * pumps the scheduler once one is allowed (a submitter waiting for room may then come in).
   */
  room(atMost: number): number
  /** The pool has stopped: the gate lets go of its timer. */
  close(): void
}

/**
 * Hands queued jobs ahead of time to workers that are busy, so that a worker starts its next job
 * the moment its current one ends, with no round trip through the scheduler: how a thread pool
 * keeps its threads busy (prefetch.ts). An offered job is still queued (`OFFERED`): it counts as
 * queued, and a cancel, its queue timeout, a pause, `shutdownNow` or a better job take it back.
 * The scheduler starts it, in the slot of a job that stopped on its worker, as any job it starts.
 * Taking it back can fail: its worker may have started it already, and then it starts in the next
 * slot that worker frees.
 */
export interface Prefetch {
  /** Offers a queued job to a busy worker; false if no worker can take it (or the job cannot be offered). */
  offer(job: Job): boolean
  /**
   * A job stopped at `now`: the job that starts in its slot, if any. The worker it ran on starts the
   * first job offered to it, confirmed if `start`, or already started (which no one can take back).
   * One whose queue deadline has passed by `now` is not confirmed: it comes back through `putBack`
   * (the scheduler ends it), and the next takes its place. When none starts there (the worker is
   * going, or the slot is not wanted: not `start`), every offer of that worker it has not started
   * comes back through `putBack`, and one it has started, if any, takes the slot.
   */
  successor(stopped: Job, start: boolean, now: number, putBack: (job: Job) => void): Job | undefined
  /**
   * Takes an offer back: true if done. False if its worker has started it already: it stays that
   * worker's `successor`.
   */
  withdraw(job: Job): boolean
}

/** Made, not yet submitted. */
export const NEW = 0
/** Waiting for room in the queue (overflow "suspend"). */
export const WAITING = 1
export const QUEUED = 2
/**
 * Queued, and offered to a busy worker that will start it as soon as it has room (see `Prefetch`):
 * out of `queue`, in `offered`, and queued for every other purpose until it starts.
 */
export const OFFERED = 3
export const RUNNING = 4
/** Held by its hook between attempts (a retry's wait: retry.ts), on no worker and not queued. */
export const HELD = 5
/** Ended: `state = DONE + the index of its ending in ENDINGS`. */
export const DONE = 6

export const ENDINGS = ["succeeded", "failed", "defects", "timedOut", "interrupted", "dropped", "rejected"] as const
export type Ending = typeof ENDINGS[number]
/** How an admitted job ends (`rejected` is for submissions refused before admission). */
export type Outcome = Exclude<Ending, "rejected">


type Listener = (exit: Exit.Exit<any, any>) => void

/** What a deadline ends: a wait in the queue, an attempt, or a hold between attempts. */
type Phase = "queued" | "running" | "held"

class Deadline implements HeapItem {
  heapIndex = -1
  at: number
  phase: Phase
  readonly job: Job
  /** Its copy in the scheduler's `waitingDeadlines` while it is of a kind `waitingDeadlineDue` looks for. */
  waiting: Deadline | undefined = undefined
  constructor(at: number, phase: Phase, job: Job) {
    this.at = at
    this.phase = phase
    this.job = job
  }
}

const deadlineBefore = (a: Deadline, b: Deadline) => a.at < b.at

/**
 * One submitted job, kept small: it is what a queued job costs. The public `JobHandle` is this
 * object too (its members are getters on the prototype), so `submit` allocates nothing more.
 *
 * One class for every pool: records of a class (a prototype) per pool have a hidden class per
 * pool, and the scheduler's code, which reads them all, turns polymorphic once a process has made
 * a few pools (megamorphic past four), which cost a trivial job about 15%.
 */
export class Job implements QueueEntry {
  readonly scheduler: Scheduler<any>
  readonly seq: number
  /** The job and its submitter's services: let go once it has run and ended (see `jobStopped`). */
  effect: Effect.Effect<any, any, any> | ((resource: any, jobId: number) => Effect.Effect<any, any, any>)
  context: Context.Context<never>
  readonly priority: number
  state = NEW
  /**
   * When it was submitted while it waits, when it started while it runs: the scheduler's time (see
   * `Scheduler.now`).
   */
  time = 0
  /** Its deadline while it has one (undefined on the prototype, like `hook`: most jobs never have one). */
  declare deadline: Deadline | undefined
  /** Its awaiters until it ends, then its Exit: one field for both, to keep the record small. */
  result: Listener | Array<Listener> | Exit.Exit<any, any> | undefined = undefined
  /**
   * What follows its attempts (its retry policy, say). Undefined on the prototype, so that a job
   * without one costs nothing more.
   */
  declare hook: AttemptHook | undefined
  /** Its progress, once reported or watched (undefined on the prototype, like `hook`). */
  declare progressState: Progress | undefined
  /**
   * Its own timeout, when it is not its pool's (undefined on the prototype, like `hook`): a job
   * with its pool's timeout pays no field for it.
   */
  declare ownTimeout: number | undefined
  constructor(
    scheduler: Scheduler<any>,
    seq: number,
    effect: Effect.Effect<any, any, any> | ((resource: any, jobId: number) => Effect.Effect<any, any, any>),
    context: Context.Context<never>,
    priority: number
  ) {
    this.scheduler = scheduler
    this.seq = seq
    this.effect = effect
    this.context = context
    this.priority = priority
  }

  get id(): number {
    return this.seq
  }

  /** Milliseconds from start; 0 means none. */
  get timeout(): number {
    const own = this.ownTimeout
    return own === undefined ? this.scheduler.config.timeout : own
  }

  /** Which attempt the job is on: 1, then one more each time a failed attempt is retried. */
  get attempt(): Effect.Effect<number> {
    return Effect.sync(() => this.attemptNow())
  }

  attemptNow(): number {
    return this.hook === undefined ? 1 : this.hook.attempt
  }

  /** Milliseconds from `now` to its deadline (a queued job's: its queue timeout); Infinity if none. */
  deadlineIn(now: number): number {
    const deadline = this.deadline
    return deadline === undefined ? Infinity : deadline.at - now
  }

  /** The latest progress the job reported (see `JobContext`), if any. */
  get progress(): Effect.Effect<Option.Option<unknown>> {
    return Effect.sync(() => this.progressState === undefined ? Option.none() : this.progressState.latest())
  }

  /** The latest progress, then each newer report (coalesced), ending when the job ends. */
  get progressChanges(): Stream.Stream<unknown> {
    return Stream.unwrap(Effect.sync(() => this.watchProgress().changes()))
  }

  reportProgress(value: unknown): void {
    if (this.state < DONE) this.watchProgress().report(value)
  }

  private watchProgress(): Progress {
    if (this.progressState === undefined) {
      this.progressState = new Progress()
      if (this.state >= DONE) this.progressState.end()
    }
    return this.progressState
  }

  /** In `queue` proper: an offered job is queued too, but held apart (see `Prefetch`). */
  get inQueue(): boolean {
    return this.state === QUEUED
  }

  /**
   * With aging, a job gains one level per `aging` ms since its submission. The score is kept in
   * milliseconds (`priority × aging − submittedAt`) rather than levels (`priority − submittedAt /
   * aging`): clock times are whole milliseconds, so two scores are equal exactly when the later job
   * came exactly `(q − p) × aging` after the earlier one, and the tie goes to the earlier (FIFO), as
   * the rule in `Options.aging` says. A division would round there (3 − 2.3 > 1 − 0.3).
   */
  get score(): number {
    const aging = this.scheduler.config.aging
    return aging > 0 ? this.priority * aging - this.time : this.priority
  }

  get exit(): Exit.Exit<any, any> | undefined {
    return this.state >= DONE ? this.result as Exit.Exit<any, any> : undefined
  }

  get ending(): Ending | undefined {
    return this.state >= DONE ? ENDINGS[this.state - DONE] : undefined
  }

  // --- the JobHandle members

  /**
   * The job's result; once it has ended, its Exit itself (an Exit is an Effect). A fiber that waits
   * is resumed through its own dispatcher, as `Effect.yieldNow` resumes: resumed inside the job's
   * ending, a fiber awaiting handles in turn would suspend and resume (an async context each time)
   * once per job of a burst that ends together, instead of once for the burst.
   */
  get await(): Effect.Effect<any, any> {
    return this.exit ?? new Awaiting(this) as unknown as Effect.Effect<any, any>
  }

  /** What `await` runs in the fiber that awaits, while the job has not ended. */
  awaitIn(fiber: Fiber.Fiber<any, any>): Effect.Effect<any, any> {
    return this.exit ?? Effect.callback((resume) => {
      if (this.exit !== undefined) return resume(this.exit)
      const listener = (exit: Exit.Exit<any, any>) => fiber.currentDispatcher.scheduleTask(() => resume(exit), 0)
      this.addListener(listener)
      return Effect.sync(() => this.removeListener(listener))
    })
  }

  get interrupt(): Effect.Effect<void> {
    return Effect.suspend(() => this.scheduler.cancel(this))
  }

  get status(): Effect.Effect<JobStatus> {
    return Effect.sync(() => this.statusNow())
  }

  statusNow(): JobStatus {
    switch (this.state) {
      case NEW:
      case WAITING:
        return "waiting"
      case QUEUED:
      case OFFERED:
        return "queued"
      case RUNNING:
        return "running"
      case HELD:
        return "retrying"
      default: {
        const ending = ENDINGS[this.state - DONE]!
        return ending === "defects" ? "defect" : ending
      }
    }
  }

  /** Records how the job ended and returns the listeners to tell: the caller tells them last. */
  end(exit: Exit.Exit<any, any>, ending: Ending): Listener | Array<Listener> | undefined {
    const listeners = this.result as Listener | Array<Listener> | undefined
    // indexOf, not a lookup keyed by `ending`: a keyed access whose key varies is megamorphic
    this.state = DONE + ENDINGS.indexOf(ending)
    this.result = exit
    if (this.progressState !== undefined) this.progressState.end()
    return listeners
  }

  addListener(listener: Listener): void {
    const current = this.result as Listener | Array<Listener> | undefined
    if (current === undefined) this.result = listener
    else if (typeof current === "function") this.result = [current, listener]
    else current.push(listener)
  }

  removeListener(listener: Listener): void {
    if (this.state >= DONE) return
    const current = this.result as Listener | Array<Listener> | undefined
    if (current === listener) this.result = undefined
    else if (Array.isArray(current)) {
      const index = current.indexOf(listener)
      if (index >= 0) current.splice(index, 1)
    }
  }
}

/**
 * `JobHandle.await` of a job that has not ended: one small object, run by the fiber that awaits it
 * (Effect calls its `evaluate` with that fiber). `Effect.withFiber` costs a primitive and a closure
 * per handle, and a submitter that keeps every handle before awaiting any (submit all, then await
 * all) keeps them all through the young generation's collections.
 */
class Awaiting {
  readonly job: Job
  constructor(job: Job) {
    this.job = job
  }
}
Object.setPrototypeOf(
  Awaiting.prototype,
  Primitive.prototype("JobHandle.await", function(this: Effect.Effect<any, any>, fiber) {
    return (this as unknown as Awaiting).job.awaitIn(fiber)
  })
)

// writable: a job with a hook gets its own
Object.defineProperty(Job.prototype, "hook", { value: undefined, writable: true })
Object.defineProperty(Job.prototype, "deadline", { value: undefined, writable: true })
Object.defineProperty(Job.prototype, "progressState", { value: undefined, writable: true })
Object.defineProperty(Job.prototype, "ownTimeout", { value: undefined, writable: true })

export type PoolState = "running" | "draining" | "stopped"

interface StateWaiter {
  readonly ready: () => boolean
  readonly resume: () => void
}

export class Scheduler<W> {
  readonly queue = new PriorityQueue<Job>()
  private readonly deadlines = new IndexedHeap<Deadline>(deadlineBefore)
  /**
   * The deadlines that may put a job in the queue or take one out (see `waitingDeadlineDue`), a copy
   * of each in a heap of their own: inside the timer's loop every start asks whether one is due, and
   * a walk of `deadlines` passed every running job's timeout due at that instant (O(k²) for k
   * timeouts due together). A heap of their own, not a flag on the one heap: equal deadlines come
   * out of a heap in an order its shape sets, which the timer's loop must keep.
   */
  private readonly waitingDeadlines = new IndexedHeap<Deadline>(deadlineBefore)
  /** Submitters waiting for room (overflow "suspend"), FIFO; ended ones are skipped. */
  private readonly waiting: Array<Job | undefined> = []
  private waitingHead = 0
  waitingCount = 0
  /** Submitters to resume when their waiting job is admitted or ends. */
  private readonly onAdmitted = new Map<Job, () => void>()
  readonly workers = new Set<Worker<W>>()
  private readonly free: Array<Worker<W>> = []
  private nextWorkerId = 0
  target: number
  busy = 0
  /** Jobs that ended for their awaiter (a timeout) but are still stopping on their worker. */
  stoppingJobs = 0
  /** Jobs held between attempts (`hold`): on no worker, each with a deadline of phase "held". */
  readonly held = new Set<Job>()
  /** Failed attempts that were retried (counted by retry.ts). */
  retried = 0
  /**
   * The ended jobs kept for lookup: a ring of at most `retention.count`, the oldest at `endedHead`,
   * with when each ended (with an age limit). Live jobs need no index of their own: lookup finds
   * them where they are (workers, queue, waiting, held), so a job pays only its slot here.
   */
  private readonly endedJobs: Array<Job | undefined> = []
  private readonly endedTimes: Array<number> = []
  private endedHead = 0
  private endedSize = 0
  /** `config.retention`, read per ending: kept here, so that a pool that keeps none pays one field read. */
  private readonly retainCount: number
  private readonly retainAge: number
  paused: boolean
  state: PoolState = "running"
  private pumping = false
  private pumpAgain = false
  /**
   * The job whose attempt stopped last with nothing but the scheduler run since its clock reading
   * (`quietStopAt`): a start that follows at once may take that reading (see `pump`).
   */
  private quietStop = 0
  private quietStopAt = 0
  private nextSeq = 0
  /** Bumped on every change of state that `stats` shows. */
  version = 0
  private stateWaiters: Array<StateWaiter> = []
  /** Fibers of the pool's own upkeep (resource acquisition, worker retirement, the shutdown drain). */
  private readonly upkeep = new Set<Fiber.Fiber<any, any>>()
  /** Workers retired as their job stops whose resource's release is not yet forked (see `jobStopped`). */
  private leaving = 0
  /** The upkeep fibers acquiring a worker's resource. */
  private readonly acquiring = new Set<Fiber.Fiber<void, unknown>>()
  private timer: Fiber.Fiber<void> | undefined = undefined
  private timerAt = Infinity
  /**
   * Set while `expireDeadlines` runs: deadlines set meanwhile (a retry back in the queue, a job
   * started) arm no timer, the loop arms one when it is done. A timer armed inside it for a deadline
   * already due (one the loop has not reached) would sleep 0 ms, which a clock may end at once
   * (TestClock does): the loop would then run again inside the step that set the deadline, with
   * that step half done (a retry out of `held` and not yet queued).
   */
  private expiring = false
  /** A pump that stopped short while `expiring` (see `pump`): run again once every deadline due is handled. */
  private pumpAfterExpiry = false

  // accounting
  submitted = 0
  rejected = 0
  readonly ended: Record<Outcome, number> = {
    succeeded: 0,
    failed: 0,
    defects: 0,
    timedOut: 0,
    interrupted: 0,
    dropped: 0
  }
  started = 0
  totalWaitMillis = 0
  totalRunMillis = 0
  private busyArea = 0
  private capacityArea = 0
  private areaAt = 0

  executor!: Executor
  observer: Observer = unobserved
  gate: StartGate | undefined = undefined
  /**
   * Free workers a limit outside the pool keeps idle (a durable consumer claims only what its
   * limits let start: its pool has no gate): the pool's `rateLimited`, in its stats and its gauge.
   */
  heldOutside: (() => number) | undefined = undefined
  prefetch: Prefetch | undefined = undefined
  /** Jobs offered and not yet started (see `Prefetch`), queued for every other purpose. */
  readonly offered = new Set<Job>()
  /** Offered jobs the scheduler tried to take back after their worker had started them: they start in its next free slot. */
  private readonly claimed = new Set<Job>()

  readonly config: SchedulerConfig<W>
  /** The pool's own services: its Clock (a TestClock in tests), for upkeep fibers and timers. */
  readonly context: Context.Context<never>
  /** The pool's Clock: its wall time for what a date is wanted of (`wallTime`), never for a duration. */
  private readonly clock: Clock.Clock
  /** The Clock's monotonic time since the pool was made (see `now`). */
  private readonly monotonic: () => number
  /** `clock`: the pool's Clock (a TestClock in tests). */
  constructor(config: SchedulerConfig<W>, context: Context.Context<never>, clock: Clock.Clock) {
    this.config = config
    this.context = context
    this.clock = clock
    this.monotonic = Monotonic.millis(clock)
    this.target = config.concurrency
    this.paused = config.paused
    this.retainCount = config.retention.count
    this.retainAge = config.retention.age
  }

  /**
   * The scheduler's time: milliseconds of the Clock's monotonic time since the pool was made, so
   * that a step of the wall clock (NTP, a VM resume) moves no deadline, wait or run time (see
   * monotonic.ts). A 32-bit integer when it is one (a whole number of milliseconds, the pool's
   * first 24 days). Every time the scheduler keeps or passes around is one of these: V8 keeps
   * such a number in its record or register, where a larger or fractional one is a 16-byte number
   * of its own, allocated at every reading and at every call it is passed to (two or three per job).
   */
  now(): number {
    const since = this.monotonic()
    const int = since | 0
    return int === since ? int : since
  }

  /** The Clock's wall time, for what must see the date (a retry schedule: a cron one reads it). */
  wallTime(): number {
    return this.clock.currentTimeMillisUnsafe()
  }

  // ---------------------------------------------------------------------------
  // workers

  /**
   * Adds `count` workers, acquiring resources for them. Each acquisition runs in a fiber of the
   * pool's own, so that a shutdown can interrupt it and wait for it (nothing of the pool outlives
   * its shutdown); the caller waits for them, and its interruption interrupts them. An acquisition
   * stopped by a shutdown is not a failure: the caller is done, as with a resize after shutdown.
   */
  addWorkers(count: number): Effect.Effect<void, unknown> {
    const acquire = this.config.acquireWorker
    if (acquire === undefined) {
      return Effect.sync(() => {
        for (let i = 0; i < count; i++) this.workerReady(new Worker<W>(this.nextWorkerId++))
        this.pump()
      })
    }
    return Effect.forEach(
      Array.from({ length: count }, () => new Worker<W>(this.nextWorkerId++)),
      (worker) =>
        Effect.suspend(() => {
          if (this.state !== "running") return Effect.void
          const fiber = this.acquireWorker(acquire, worker)
          return Effect.onInterrupt(Fiber.await(fiber), () => Fiber.interrupt(fiber)).pipe(
            Effect.flatMap((exit) =>
              Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) && this.state !== "running" ? Effect.void : exit
            )
          )
        }),
      // resources such as worker threads take a while to start: start them together
      { discard: true, concurrency: "unbounded" }
    )
  }

  /** Forks the acquisition of a worker's resource; the worker joins the pool if it is still wanted. */
  private acquireWorker(
    acquire: (worker: Worker<W>) => Effect.Effect<W, unknown, Scope.Scope>,
    worker: Worker<W>
  ): Fiber.Fiber<void, unknown> {
    const fiber = this.upkeepFork(Effect.uninterruptibleMask((restore) =>
      Effect.gen({ self: this }, function*() {
        const scope = yield* Scope.make()
        const exit = yield* Effect.exit(restore(Scope.provide(acquire(worker), scope)))
        if (Exit.isFailure(exit)) {
          yield* Scope.close(scope, exit)
          return yield* Effect.failCause(exit.cause)
        }
        if (this.state !== "running" || this.workers.size >= this.target) return yield* Scope.close(scope, Exit.void)
        worker.scope = scope
        worker.resource = exit.value
        this.workerReady(worker)
        this.pump()
      })
    ))
    if (fiber.pollUnsafe() === undefined) {
      this.acquiring.add(fiber)
      fiber.addObserver(() => this.acquiring.delete(fiber))
    }
    return fiber
  }

  /** Stops every acquisition in flight: a stopping pool takes no new worker. */
  private interruptAcquisitions(): void {
    for (const fiber of this.acquiring) fiber.interruptUnsafe()
  }

  private workerReady(worker: Worker<W>): void {
    this.trackArea()
    this.workers.add(worker)
    this.free.push(worker)
    this.changed()
  }

  /** Retires idle workers above `target`; busy ones retire when their job stops. */
  retireIdle(): void {
    while (this.workers.size > this.target && this.free.length > 0) this.retire(this.free.pop()!)
  }

  private retire(worker: Worker<W>): void {
    this.trackArea()
    this.workers.delete(worker)
    this.release(worker)
  }

  /** Releases a retired worker's resource (it is out of `workers` already). */
  private release(worker: Worker<W>): void {
    const scope = worker.scope
    if (scope !== undefined) this.upkeepFork(release(worker.id, scope))
    this.changed()
  }

  private upkeepFork<A, E>(effect: Effect.Effect<A, E>): Fiber.Fiber<A, E> {
    const fiber = Effect.runForkWith(this.context)(effect)
    if (fiber.pollUnsafe() !== undefined) return fiber
    this.upkeep.add(fiber)
    fiber.addObserver(() => {
      this.upkeep.delete(fiber)
      this.changed()
    })
    return fiber
  }

  // ---------------------------------------------------------------------------
  // admission

  makeJob(
    effect: Job["effect"],
    context: Context.Context<never>,
    priority: number,
    timeout: number
  ): Job {
    const job = new Job(this, ++this.nextSeq, effect, context, priority)
    if (timeout !== this.config.timeout) job.ownTimeout = timeout
    return job
  }

  /**
   * Admits a job. Returns true if the job was admitted (running, queued, or already ended by a
   * drop), false if it waits for room (`onAdmitted` is called once it is in). A rejected job ends
   * at once with its error, delivered to its listeners.
   */
  admit(job: Job, queueTimeout: number, onAdmitted: (() => void) | undefined): boolean {
    this.submitted++
    const now = this.now()
    job.time = now
    if (this.state !== "running") {
      this.reject(job, new PoolShutdown({ phase: "admission" }))
      return true
    }
    if (queueTimeout > 0) this.setDeadline(job, now + queueTimeout, "queued")
    if (
      !this.pumping && !this.paused && this.free.length > 0 && this.queue.size === 0 && this.waitingCount === 0 &&
      (this.gate === undefined || this.gate.tryStart())
    ) {
      this.start(job, this.free.pop()!, now)
      return true
    }
    if (this.waitingCount === 0 && this.hasRoom()) {
      this.enqueue(job)
      this.pump()
      return true
    }
    switch (this.config.overflow) {
      case "suspend": {
        job.state = WAITING
        if (onAdmitted !== undefined) this.onAdmitted.set(job, onAdmitted)
        this.waiting.push(job)
        this.waitingCount++
        this.changed()
        return false
      }
      case "fail": {
        this.reject(job, new QueueFull({ capacity: this.config.capacity }))
        return true
      }
      case "dropNewest": {
        this.settle(job, Exit.fail(new JobDropped({ jobId: job.id, policy: "dropNewest" })), "dropped")
        return true
      }
      case "dropOldest": {
        const oldest = this.oldestQueued()
        if (oldest === undefined) {
          this.settle(job, Exit.fail(new JobDropped({ jobId: job.id, policy: "dropOldest" })), "dropped")
        } else {
          // the new job takes the place first: the dropped job's awaiter may submit again at once
          this.enqueue(job)
          this.settle(oldest, Exit.fail(new JobDropped({ jobId: oldest.id, policy: "dropOldest" })), "dropped")
          // a queue overfilled by retries (not refused for a full queue) comes back to its capacity
          // here, or every retry back in a full queue would raise its length for good
          while (this.queuedCount() > this.config.capacity && job.state === QUEUED) {
            const next = this.oldestQueued()
            if (next === undefined || next === job) break
            this.settle(next, Exit.fail(new JobDropped({ jobId: next.id, policy: "dropOldest" })), "dropped")
          }
          this.pump()
        }
        return true
      }
    }
  }

  /** The queued job that has waited longest, offered ones included (those their worker has not started). */
  private oldestQueued(): Job | undefined {
    let oldest = this.queue.oldest()
    for (const job of this.offered) {
      if (!this.claimed.has(job) && (oldest === undefined || waitedLonger(job, oldest))) oldest = job
    }
    if (oldest !== undefined && oldest.state === OFFERED && !this.takeBack(oldest)) return this.oldestQueued()
    return oldest
  }

  /**
   * Room in the queue, or (capacity 0) a free worker that will take the job at once: one the rate
   * limit lets start now, since a job it holds back waits in the queue as any other.
   */
  private hasRoom(): boolean {
    const queued = this.queue.size + this.offered.size
    if (queued < this.config.capacity) return true
    const free = this.free.length
    if (this.paused || queued >= free) return false
    return this.gate === undefined || queued < this.gate.room(free)
  }

  private reject(job: Job, error: PoolShutdown | QueueFull): void {
    notify(this.markRejected(job, error), job.result as Exit.Exit<never, unknown>)
    this.changed()
  }

  /** Ends a refused job without telling anyone yet; returns its listeners. */
  private markRejected(job: Job, error: PoolShutdown | QueueFull): Listener | Array<Listener> | undefined {
    this.submitted--
    this.rejected++
    const listeners = job.end(Exit.fail(error), "rejected")
    if (job.deadline !== undefined) this.clearDeadline(job)
    return listeners
  }

  private enqueue(job: Job): void {
    job.state = QUEUED
    this.queue.push(job)
    this.changed()
  }

  /**
   * Queues a job that waited for room: it may outrank jobs queued after its submission (a retried
   * job goes back to the queue as if just submitted), so it takes its place by age, not at the tail.
   * A retry back from its delay too: a job submitted at that same instant may be queued already.
   */
  private enqueueWaited(job: Job): void {
    job.state = QUEUED
    this.queue.insert(job)
    this.changed()
  }

  /** Moves waiting submitters into the queue while there is room. */
  private admitWaiting(): void {
    while (this.waitingCount > 0 && this.hasRoom()) {
      const job = this.waiting[this.waitingHead]
      if (job === undefined) throw new Error("effect-workpool: waiting submitters miscounted")
      this.waiting[this.waitingHead++] = undefined
      // an emptied line starts again; one that never empties (submitters always outnumber the room)
      // drops the slots of those it has admitted, as a lane of the queue does (amortised O(1))
      const head = this.waitingHead
      if (head === this.waiting.length || (head >= 1024 && head * 2 >= this.waiting.length)) this.compactWaiting()
      if (job.state !== WAITING) continue
      this.waitingCount--
      this.enqueueWaited(job)
      this.wakeSubmitter(job)
    }
  }

  /**
   * Drops the ended entries of the waiting line once they are most of it: a stalled pool whose
   * submitters give up waiting (interrupted, or past their queue timeout) keeps none of them.
   */
  private sweepWaiting(): void {
    const waiting = this.waiting
    const live = this.waitingCount
    const dead = waiting.length - this.waitingHead - live
    if (live > 0 && (dead <= 32 || dead <= live)) return
    this.compactWaiting()
  }

  /** Keeps only the line's submitters still waiting, in their order, from its start. */
  private compactWaiting(): void {
    const waiting = this.waiting
    let kept = 0
    for (let i = this.waitingHead; i < waiting.length; i++) {
      const job = waiting[i]
      if (job !== undefined && job.state === WAITING) waiting[kept++] = job
    }
    waiting.length = kept
    this.waitingHead = 0
  }

  /** Resumes a submitter once its waiting job is admitted or has ended. */
  whenAdmitted(job: Job, onAdmitted: () => void): void {
    this.onAdmitted.set(job, onAdmitted)
  }

  private wakeSubmitter(job: Job): void {
    const onAdmitted = this.onAdmitted.get(job)
    if (onAdmitted === undefined) return
    this.onAdmitted.delete(job)
    onAdmitted()
  }

  // ---------------------------------------------------------------------------
  // dispatch

  /** Starts queued jobs on free workers. `now`: a clock reading nothing outside the scheduler has run since. */
  pump(now?: number): void {
    if (this.pumping) {
      this.pumpAgain = true
      return
    }
    // most calls have nothing to start or admit (a job ended and nothing is queued, or every worker
    // is busy and none takes offers): they return before the loop
    if (
      (this.queue.size === 0 ? this.offered.size === 0 : this.free.length === 0 && this.prefetch === undefined) &&
      this.waitingCount === 0
    ) return
    this.pumping = true
    // jobs that end as they start (an Effect.sync) free their worker at once, so one call could run
    // a whole backlog with nothing else running meanwhile: past a fiber's budget of operations, the
    // rest waits for the Effect scheduler's next turn, as a fiber that ran that long would
    let starts = 0
    try {
      do {
        this.pumpAgain = false
        if (this.offered.size > this.claimed.size && this.free.length > 0 && !this.paused) this.takeBackFor(this.free.length)
        while (!this.paused && this.free.length > 0 && this.queue.size > 0) {
          if (++starts > this.startsPerTurn()) {
            this.pumpNextTurn()
            break
          }
          // a start runs the job's code (a synchronous job to its end), so the next start reads the
          // clock again: a reading from before it would start the next job early by as long as that
          // code ran, its timeout too. Unless that job stopped right there: its stop's reading is fresh.
          const at = now ?? this.now()
          // one test on the usual path: what a deadline due at this instant asks of a start is
          // `dueBeforeStart`'s, out of this loop, which every start runs, to keep it small
          if (at >= this.timerAt || this.expiring) {
            const next = this.dueBeforeStart(at)
            if (next === STOP) break
            if (next === AGAIN) {
              now = undefined
              continue
            }
          }
          // read at each start: a job that has just started may have set or removed the rate limit
          const gate = this.gate
          if (gate !== undefined && !gate.tryStart()) break
          now = this.start(this.queue.pop()!, this.free.pop()!, at)
          // the room this start made goes to a waiting submitter before the next free worker picks:
          // as it would had the workers freed one at a time (two ends at one instant, heard in one
          // pump or in two, start the same jobs)
          if (this.waitingCount > 0 && this.free.length > 0 && this.hasRoom()) {
            // resumes submitters: their code runs
            this.admitWaiting()
            now = undefined
          }
        }
        if (this.waitingCount > 0 && this.hasRoom()) {
          const next = this.admitDue(now)
          if (next === STOP) break
          now = undefined
          this.pumpAgain = true
          if (next === AGAIN) continue
        }
        if (this.prefetch !== undefined && this.queue.size > 0 && this.free.length === 0) this.offerQueued()
      } while (this.pumpAgain)
    } finally {
      this.pumping = false
    }
  }

  /**
   * What `pump` does before a start at `at` when the deadline timer is due or being handled: `GO`
   * (start), `AGAIN` (read the clock and look again) or `STOP` (leave the loop).
   */
  private dueBeforeStart(at: number): PumpStep {
    if (at >= this.timerAt) {
      // the deadline timer is due but has not fired: the event loop was busy (a synchronous
      // job, or a timer that woke first, the one that freed this worker). What is due ends
      // first, so that no job starts past its queue deadline. Its listeners ran: read again.
      this.expireLate(at)
      // room the expired jobs left goes to the submitters waiting for it first, as it would
      // have had the timer fired before this worker was freed: they take their place by rank
      if (this.waitingCount > 0 && this.hasRoom()) this.admitWaiting()
      return AGAIN
    }
    // a job stopped by a deadline the timer is handling (`expiring`) pumps before the loop has
    // reached the other deadlines of that instant: a queued job's queue deadline may be due
    // now (started, its deadline would go with its start), or a retry's return. Nothing starts
    // until the loop has handled them, then it pumps again (see `expireDeadlines`)
    if (this.waitingDeadlineDue(at)) {
      this.pumpAfterExpiry = true
      return STOP
    }
    return GO
  }

  /**
   * Admits waiting submitters at the end of a `pump` pass (`GO`: done), unless a deadline of this
   * instant comes first: `AGAIN` once it is handled, `STOP` while the timer's loop has yet to reach it.
   */
  private admitDue(now: number | undefined): PumpStep {
    // what is due ends (or comes back, a retry) first, as in the loop: a pump the rate
    // limit's timer woke may reach here before the deadline timer has fired at this instant
    const at = now ?? this.now()
    if (at >= this.timerAt) {
      this.expireLate(at)
      return AGAIN
    }
    // and inside the timer's loop, what is due at this instant and not yet handled (see `dueBeforeStart`)
    if (this.expiring && this.waitingDeadlineDue(at)) {
      this.pumpAfterExpiry = true
      return STOP
    }
    // resumes submitters: their code runs
    this.admitWaiting()
    return GO
  }

  /** How many jobs one `pump` starts before it lets others run: Effect's `MaxOpsBeforeYield`, read once. */
  private startsPerTurn(): number {
    return this.turn ??= Context.get(this.context, EffectScheduler.PreventSchedulerYield)
      ? Infinity
      : Context.get(this.context, EffectScheduler.MaxOpsBeforeYield)
  }
  private turn: number | undefined
  private nextTurn: EffectScheduler.SchedulerDispatcher | undefined
  private pumpScheduled = false

  /** Pumps again at the Effect scheduler's next turn (a macrotask: timers and I/O run first). */
  private pumpNextTurn(): void {
    if (this.pumpScheduled) return
    this.pumpScheduled = true
    this.nextTurn ??= Context.get(this.context, EffectScheduler.Scheduler).makeDispatcher()
    this.nextTurn.scheduleTask(() => {
      this.pumpScheduled = false
      this.pump()
    }, 0)
  }

  // ---------------------------------------------------------------------------
  // offers (see Prefetch)

  /**
   * Offers the queue's best jobs to busy workers while they take them. First, a queued job better
   * than an offered one takes its place, if that one's worker has not started it yet.
   */
  private offerQueued(): void {
    const prefetch = this.prefetch!
    if (this.paused || this.gate !== undefined || this.stoppingPool) return
    while (this.offered.size > this.claimed.size && this.queue.size > 0 && this.mayOutrankOffers(this.queue.peek()!)) {
      const worst = this.worstOffered()
      if (worst === undefined || !outranks(this.queue.peek()!, worst)) break
      this.takeBack(worst)
    }
    while (this.queue.size > 0) {
      const job = this.queue.peek()!
      if (!prefetch.offer(job)) return
      this.queue.pop()
      job.state = OFFERED
      if (this.offered.size === 0) {
        this.offeredLowest = job.score
        this.offeredLatest = job.time
        this.offeredLatestSeq = job.seq
      } else {
        if (job.score < this.offeredLowest) this.offeredLowest = job.score
        if (cameAfter(job.time, job.seq, this.offeredLatest, this.offeredLatestSeq)) {
          this.offeredLatest = job.time
          this.offeredLatestSeq = job.seq
        }
      }
      this.offered.add(job)
    }
  }

  /**
   * Bounds on the offered jobs (scores are fixed: see `Job.score`): none scores lower than
   * `offeredLowest` or came to the queue after `offeredLatest`. They let a pool with many offers out
   * tell at a glance that the queue's best job outranks none of them (the usual case: it came later,
   * at the same priority), rather than look at each offer on every dispatch. `offeredLatest` is a
   * time and `offeredLatestSeq` breaks its ties (see `outranks`).
   */
  private offeredLowest = 0
  private offeredLatest = 0
  private offeredLatestSeq = 0

  /** Whether `job` may run before an offered job (see `offeredLowest`). */
  private mayOutrankOffers(job: Job): boolean {
    const score = job.score
    return score > this.offeredLowest ||
      (score === this.offeredLowest && cameAfter(this.offeredLatest, this.offeredLatestSeq, job.time, job.seq))
  }

  /** The offered job that would run last, among those the scheduler may still take back; the bounds made exact. */
  private worstOffered(): Job | undefined {
    let worst: Job | undefined
    let lowest = Infinity
    let latest = -Infinity
    let latestSeq = -Infinity
    for (const job of this.offered) {
      const score = job.score
      if (score < lowest) lowest = score
      if (cameAfter(job.time, job.seq, latest, latestSeq)) {
        latest = job.time
        latestSeq = job.seq
      }
      if (!this.claimed.has(job) && (worst === undefined || outranks(worst, job))) worst = job
    }
    this.offeredLowest = lowest
    this.offeredLatest = latest
    this.offeredLatestSeq = latestSeq
    return worst
  }

  /** Free workers and offers waiting on busy ones: the best offers come back to the queue, for the free workers. */
  private takeBackFor(free: number): void {
    for (let i = 0; i < free; i++) {
      let best: Job | undefined
      for (const job of this.offered) {
        if (!this.claimed.has(job) && (best === undefined || outranks(job, best))) best = job
      }
      if (best === undefined) return
      this.takeBack(best)
    }
  }

  /**
   * Takes an offer back into the queue: true if it is queued again. False if its worker had
   * started it: it then starts in that worker's next free slot (see `jobStopped`).
   */
  private takeBack(job: Job): boolean {
    if (this.claimed.has(job)) return false
    if (!this.prefetch!.withdraw(job)) {
      this.claimed.add(job)
      return false
    }
    this.offered.delete(job)
    job.state = QUEUED
    this.queue.putBack(job)
    return true
  }

  /** Takes back every offer (a pause, an immediate shutdown): no worker starts a job it was offered from now on. */
  takeBackAll(): void {
    for (const job of Array.from(this.offered)) if (!this.claimed.has(job)) this.takeBack(job)
  }

  /**
   * A job stopped on `worker`: the job offered to that worker, if any, starts in its slot (unless
   * the slot goes, the pool is paused or stopping: then it is taken back if it still can be).
   */
  private successorOf(job: Job, now: number): Job | undefined {
    // a rate-limited pool offers nothing (a start must be counted); offers made before a rate
    // limit was set come back, unless started
    const wanted = !this.paused && !this.stoppingPool && this.state !== "stopped" && this.workers.size <= this.target &&
      this.gate === undefined
    const next = this.prefetch!.successor(job, wanted, now, this.putBackOffer)
    if (next === undefined) return undefined
    this.offered.delete(next)
    this.claimed.delete(next)
    return next
  }

  /** An offer that came back (see `Prefetch.successor`): queued again, in its place. */
  private readonly putBackOffer = (job: Job): void => {
    this.offered.delete(job)
    this.claimed.delete(job)
    job.state = QUEUED
    this.queue.putBack(job)
  }

  /** Queued jobs, offered ones included. */
  queuedCount(): number {
    return this.queue.size + this.offered.size
  }

  /** Queued jobs of one priority, offered ones included. */
  queuedOf(priority: number): number {
    let count = this.queue.countOf(priority)
    if (this.offered.size > 0) for (const job of this.offered) if (job.priority === priority) count++
    return count
  }

  /** Queued jobs per priority, offered ones included, highest priority first. */
  queuedByPriority(): Array<{ readonly priority: number; readonly count: number }> {
    const counts = this.queue.countByPriority()
    if (this.offered.size === 0) return counts
    const byPriority = new Map(counts.map(({ count, priority }) => [priority, count]))
    for (const job of this.offered) byPriority.set(job.priority, (byPriority.get(job.priority) ?? 0) + 1)
    return Array.from(byPriority, ([priority, count]) => ({ priority, count })).sort((a, b) => b.priority - a.priority)
  }

  /**
   * Sets or removes the start gate (a rate limit). A gated pool counts every start, and a worker
   * starts an offer without asking the gate: so it makes no offers, and a gate set takes back those
   * out. One a worker has started already started before the gate was set.
   */
  setGate(gate: StartGate | undefined): void {
    this.gate = gate
    if (gate !== undefined) this.takeBackAll()
  }

  /** Pauses or resumes the pool; a pause takes back every offer. */
  setPaused(paused: boolean): void {
    if (this.paused === paused) return
    this.paused = paused
    if (paused) this.takeBackAll()
    this.changed()
    if (!paused) this.pump()
  }

  /**
   * Starts `job` (`handedOver`: in the slot its worker's stopped job has just left, see `successorOf`);
   * returns the clock reading of its stop if it stopped at once with nothing else run since.
   */
  private start(job: Job, worker: Worker<W>, now: number, handedOver = false): number | undefined {
    this.trackArea(now)
    const wait = now - job.time
    this.totalWaitMillis += wait
    if (wait !== 0) this.observer.started(job, wait)
    job.state = RUNNING
    job.time = now
    worker.job = job
    if (!handedOver) this.busy++
    this.started++
    if (job.timeout > 0) this.setDeadline(job, now + job.timeout, "running")
    else if (job.deadline !== undefined) this.clearDeadline(job)
    this.changed()
    this.quietStop = 0
    this.executor.start(job, worker, wait)
    return this.quietStop === job.seq ? this.quietStopAt : undefined
  }

  /** Called by the executor once a job has stopped, however it ended. */
  jobStopped(job: Job, worker: Worker<W>, exit: Exit.Exit<any, any>): void {
    const now = this.now()
    const retiring = this.workers.size > this.target || this.state === "stopped"
    // whether this reading is still fresh when the next job starts: nothing outside the scheduler
    // runs until then unless the ending tells someone (listeners, progress watchers, state waiters,
    // submitters waiting for room), a hook decides what follows, or a retired worker's resource is released
    const quiet = job.result === undefined && job.hook === undefined && job.progressState === undefined &&
      this.stateWaiters.length === 0 && this.waitingCount === 0 && !retiring
    this.trackArea(now)
    worker.job = undefined
    // the job offered to its worker keeps the slot: `busy` never drops to 0 in between
    const next = this.prefetch === undefined ? undefined : this.successorOf(job, now)
    if (next === undefined) this.busy--
    const run = now - job.time
    this.totalRunMillis += run
    if (run !== 0) this.observer.stopped(job, run)
    if (next !== undefined) this.start(next, worker, now, true)
    else if (!retiring) this.free.push(worker)
    // a retiring worker leaves `workers` now (whoever its job's ending tells, a resize or another job
    // stopping, counts it gone), its resource is released once the job is counted (below); until
    // then `leaving` keeps the pool from being seen as terminated
    else {
      this.workers.delete(worker)
      this.leaving++
    }
    // an immediate shutdown stops it at once, as every job running when it began
    if (next !== undefined && this.stoppingPool && next.state === RUNNING) this.executor.interrupt(next)
    if (job.state >= DONE) this.stoppingJobs--
    else if (job.hook === undefined) this.settleStopped(job, exit, now)
    else job.hook.stopped(job, exit, now)
    // retired once the job is counted: its resource's release (run here, if it is synchronous) may read the stats
    if (next === undefined && retiring) {
      this.leaving--
      this.release(worker)
    }
    if (job.state >= DONE) {
      // it will not run again: a kept handle (or a retained job) need not keep its Effect, the
      // closures that made it, or its submitter's services alive
      job.effect = Exit.void
      job.context = ENDED_CONTEXT
    }
    this.changed()
    // a job handed this slot ran code of its own as it started: the reading is stale
    const fresh = quiet && next === undefined
    if (fresh) {
      // for the `pump` that started this job, if it stopped as it started
      this.quietStop = job.seq
      this.quietStopAt = now
    }
    this.pump(fresh ? now : undefined)
  }

  /** Ends a job whose attempt stopped with `exit`, as that exit says. */
  settleStopped(job: Job, exit: Exit.Exit<any, any>, now: number): void {
    const outcome = outcomeOf(exit)
    if (this.stoppingPool && outcome === "interrupted") {
      this.settle(job, Exit.fail(new PoolShutdown({ phase: "running" })), "interrupted", now)
    } else {
      this.settle(job, exit, outcome, now)
    }
  }

  /**
   * Holds a job whose attempt has stopped for `delay` milliseconds on no worker (a retry's wait),
   * then puts it back in the queue for another attempt. The hook that holds it counts why.
   */
  hold(job: Job, delay: number): void {
    job.state = HELD
    this.held.add(job)
    this.setDeadline(job, this.now() + delay, "held")
    this.changed()
  }

  /** A hold is over: the job goes back to the queue at its priority, aging from now. */
  private holdDone(job: Job): void {
    this.held.delete(job)
    const now = this.now()
    job.time = now
    const queueTimeout = job.hook!.queueTimeout
    // queued first, so that whatever the deadline's setting sets off sees it in the queue; in its
    // place by `outranks`: after the jobs of its score that came before it, and before a job
    // submitted after it that came at this same instant
    this.enqueueWaited(job)
    if (queueTimeout > 0 && job.state === QUEUED) this.setDeadline(job, now + queueTimeout, "queued")
  }

  /** Ends a job exactly once: accounting, then its listeners. `now`, when the caller has read the clock. */
  settle(job: Job, exit: Exit.Exit<any, any>, outcome: Outcome, now?: number): void {
    const state = job.state
    if (state >= DONE) return
    const listeners = this.end(job, exit, outcome, now)
    this.changed()
    notify(listeners, exit)
    if (state === WAITING) this.wakeSubmitter(job)
    if (this.waitingCount > 0) this.pump()
  }

  /** Ends a job and takes it out of wherever it was, telling nobody yet: returns whom to tell. */
  private end(job: Job, exit: Exit.Exit<any, any>, outcome: Outcome, now: number | undefined) {
    const state = job.state
    const listeners = job.end(exit, outcome)
    // the queue sees the job as gone (`inQueue` is false) before it removes it
    if (state === QUEUED) this.queue.remove(job)
    // a waiting job stays in `waiting`, skipped there until the line is swept
    else if (state === WAITING) {
      this.waitingCount--
      this.sweepWaiting()
    }
    else if (state === HELD) this.held.delete(job)
    // taken back by the caller first (see `takeBack`): not started, and no worker will start it
    else if (state === OFFERED) this.offered.delete(job)
    if (job.deadline !== undefined) this.clearDeadline(job)
    this.count(outcome)
    if (this.retainCount > 0) this.retain(job, now)
    return listeners
  }

  /**
   * Counts an ending in `ended`. A switch, not `ended[outcome]++`: a keyed access whose key varies
   * is megamorphic, and it cost a trivial job a few percent.
   */
  private count(outcome: Outcome): void {
    const ended = this.ended
    switch (outcome) {
      case "succeeded":
        ended.succeeded++
        break
      case "failed":
        ended.failed++
        break
      case "defects":
        ended.defects++
        break
      case "timedOut":
        ended.timedOut++
        break
      case "interrupted":
        ended.interrupted++
        break
      case "dropped":
        ended.dropped++
        break
    }
  }

  // ---------------------------------------------------------------------------
  // lookup and retention

  /** Keeps an ended job for lookup: in the ring's next slot, over the oldest one when it is full. */
  private retain(job: Job, now: number | undefined): void {
    const age = this.retainAge
    const count = this.retainCount
    if (age > 0) {
      now ??= this.now()
      this.evict(now)
    }
    let slot = this.endedHead + this.endedSize
    if (slot >= count) slot -= count
    this.endedJobs[slot] = job
    if (age > 0) this.endedTimes[slot] = now!
    if (this.endedSize < count) this.endedSize++
    else if (++this.endedHead === count) this.endedHead = 0
  }

  /** Drops the ended jobs older than the retention's age: at every ending and every lookup. */
  evict(now: number = this.now()): void {
    const age = this.retainAge
    const count = this.retainCount
    if (age === 0) return
    const oldest = now - age
    while (this.endedSize > 0 && this.endedTimes[this.endedHead]! <= oldest) {
      this.endedJobs[this.endedHead] = undefined
      if (++this.endedHead === count) this.endedHead = 0
      this.endedSize--
    }
  }

  /** The jobs the pool knows: live ones (in no particular order), then the retained ended ones, oldest first. */
  *knownJobs(): Generator<Job> {
    for (const worker of this.workers) if (worker.job !== undefined) yield worker.job
    for (let i = this.waitingHead; i < this.waiting.length; i++) {
      const job = this.waiting[i]
      if (job !== undefined && job.state === WAITING) yield job
    }
    yield* this.queue.entries()
    yield* this.offered
    yield* this.held
    const count = this.retainCount
    for (let i = 0; i < this.endedSize; i++) {
      const slot = this.endedHead + i
      yield this.endedJobs[slot >= count ? slot - count : slot]!
    }
  }

  /** A job the pool knows, by id: O(jobs known), for an operator's lookup, not for a hot path. */
  findJob(id: number): Job | undefined {
    for (const job of this.knownJobs()) if (job.seq === id) return job
    return undefined
  }

  // ---------------------------------------------------------------------------
  // cancellation

  /**
   * Stops a job for its caller: removed if waiting or queued, interrupted if running. The returned
   * effect waits until a running job has stopped (its finalizers have run).
   */
  cancel(job: Job): Effect.Effect<void> {
    switch (job.state) {
      case OFFERED: {
        // its worker started it before the offer could be taken back: stopped as a running job
        // once it has its slot
        if (!this.takeBack(job)) {
          return Effect.andThen(this.waitUntil(() => job.state !== OFFERED), Effect.suspend(() => this.cancel(job)))
        }
        this.settle(job, Exit.interrupt(), "interrupted")
        return Effect.void
      }
      case WAITING:
      case QUEUED:
      case HELD: {
        this.settle(job, Exit.interrupt(), "interrupted")
        return Effect.void
      }
      case RUNNING: {
        if (job.hook !== undefined) job.hook.cancelled(job)
        this.executor.interrupt(job)
        return this.executor.awaitStopped(job)
      }
      default: {
        // a job that timed out may still be stopping
        return this.executor.awaitStopped(job)
      }
    }
  }

  /**
   * Cancels many jobs: the ones not started first, so that a slot freed by an interrupted job is
   * not handed to another job of the same batch.
   */
  cancelAll(jobs: ReadonlyArray<Job>): Effect.Effect<void> {
    const stopping: Array<Effect.Effect<void>> = []
    let offered: Array<Effect.Effect<void>> | undefined
    for (const job of jobs) {
      if (job.state === WAITING || job.state === QUEUED || job.state === HELD) this.cancel(job)
      else if (job.state === OFFERED) {
        const cancelled = this.cancel(job)
        // started by its worker already: stopped once it has its slot
        if (job.state === OFFERED) (offered ??= []).push(cancelled)
      }
    }
    // those started from an offer wait side by side: each is stopped once it has its slot, whoever
    // else is still stopping (one after the other, one waited for every job before it to have
    // stopped: a slow one let the next run on). The others are stopping already: waited in turn
    if (offered !== undefined) stopping.push(offered.length === 1 ? offered[0]! : Effect.all(offered, { discard: true, concurrency: "unbounded" }))
    for (const job of jobs) if (job.state === RUNNING || this.executor.isStopping(job)) stopping.push(this.cancel(job))
    return stopping.length === 0 ? Effect.void : Effect.all(stopping, { discard: true })
  }

  /**
   * `cancelAll` for a caller that does not wait for the jobs to stop (a batch's first failure
   * stopping the rest, from a job's listener): what `cancelAll` does at once is done here, and what
   * is left (a job its worker had started from an offer is stopped only once it has its slot) runs
   * in a fiber of its own. Discarding `cancelAll`'s Effect would leave such a job running.
   */
  cancelAllNow(jobs: ReadonlyArray<Job>): void {
    const stopping = this.cancelAll(jobs)
    if (stopping !== Effect.void) Effect.runForkWith(this.context)(stopping)
  }

  // ---------------------------------------------------------------------------
  // deadlines

  private setDeadline(job: Job, at: number, phase: Phase): void {
    let deadline = job.deadline
    if (deadline === undefined) {
      deadline = job.deadline = new Deadline(at, phase, job)
      this.deadlines.push(deadline)
    } else {
      deadline.at = at
      deadline.phase = phase
      this.deadlines.update(deadline)
    }
    const waiting = deadline.waiting
    if (phase !== "running" || job.hook !== undefined) {
      if (waiting === undefined) this.waitingDeadlines.push(deadline.waiting = new Deadline(at, phase, job))
      else {
        waiting.at = at
        this.waitingDeadlines.update(waiting)
      }
    } else if (waiting !== undefined) {
      this.waitingDeadlines.remove(waiting)
      deadline.waiting = undefined
    }
    if (at < this.timerAt && !this.expiring) this.armTimer()
  }

  private clearDeadline(job: Job): void {
    const deadline = job.deadline!
    this.deadlines.remove(deadline)
    if (deadline.waiting !== undefined) {
      this.waitingDeadlines.remove(deadline.waiting)
      deadline.waiting = undefined
    }
    job.deadline = undefined
  }

  private armTimer(): void {
    if (this.state === "stopped") return
    const next = this.deadlines.peek()
    if (this.timer !== undefined) {
      if (next !== undefined && next.at >= this.timerAt) return
      const timer = this.timer
      this.timer = undefined
      timer.interruptUnsafe()
    }
    if (next === undefined) {
      this.timerAt = Infinity
      return
    }
    this.timerAt = next.at
    const timer = Effect.runForkWith(this.context)(Effect.sleep(Math.max(0, next.at - this.now())))
    this.timer = timer
    timer.addObserver((exit) => {
      if (this.timer !== timer || Exit.isFailure(exit)) return
      this.timer = undefined
      this.timerAt = Infinity
      this.expireDeadlines()
    })
  }

  /** Expires what is due by `now` before its timer fires (see `pump`); the next deadline gets a timer of its own. */
  private expireLate(now: number): void {
    const timer = this.timer
    this.timer = undefined
    this.timerAt = Infinity
    timer?.interruptUnsafe()
    this.expireDeadlines(now)
  }

  private expireDeadlines(now: number = this.now()): void {
    let retries = false
    this.expiring = true
    try {
      retries = this.expireDue(now)
    } finally {
      this.expiring = false
    }
    if (retries || this.pumpAfterExpiry) {
      this.pumpAfterExpiry = false
      this.pump()
    }
    this.armTimer()
  }

  /**
   * Whether a deadline that may put a job in the queue or take one out is due by `at`: a queue
   * timeout, a retry's return, or the timeout of a running job that may be retried (its retry, due
   * at once, comes back at this instant). The earliest of `waitingDeadlines`: O(1).
   */
  private waitingDeadlineDue(at: number): boolean {
    const first = this.waitingDeadlines.peek()
    return first !== undefined && first.at <= at
  }

  /** Ends (or, for holds, requeues) what is due by `now`; true if a retry went back to the queue. */
  private expireDue(now: number): boolean {
    let deadline: Deadline | undefined
    let retries = false
    while ((deadline = this.deadlines.peek()) !== undefined && deadline.at <= now) {
      const job = deadline.job
      const phase = deadline.phase
      this.clearDeadline(job)
      if (phase === "held") {
        this.holdDone(job)
        retries = true
        continue
      }
      // an offer its worker has started: it is no longer waiting, whatever the scheduler has heard
      if (job.state === OFFERED && !this.takeBack(job)) continue
      const millis = phase === "queued" ? deadline.at - job.time : job.timeout
      const timeout = Exit.fail(new JobTimeout({ jobId: job.id, millis, phase })) as Exit.Failure<never, JobTimeout>
      let exit: Exit.Failure<never, unknown> = timeout
      if (job.state === RUNNING) {
        if (job.hook !== undefined) {
          const taken = job.hook.timedOut(job, timeout, now)
          if (taken === true) {
            this.executor.interrupt(job)
            continue
          }
          if (taken !== false) exit = taken
        }
        // ended for its awaiter, counted as stopping and asked to stop before anyone is told: an
        // awaiter that reacts at once must see the pool as it is
        const listeners = job.end(exit, "timedOut")
        this.ended.timedOut++
        if (this.retainCount > 0) this.retain(job, now)
        this.stoppingJobs++
        this.executor.interrupt(job)
        this.changed()
        notify(listeners, exit)
      } else {
        this.settle(job, exit, "timedOut")
      }
    }
    return retries
  }

  // ---------------------------------------------------------------------------
  // state, waiting and shutdown

  isIdle(): boolean {
    return this.queue.size === 0 && this.busy === 0 && this.waitingCount === 0 && this.held.size === 0 &&
      this.offered.size === 0
  }

  changed(): void {
    this.version++
    if (this.stateWaiters.length === 0) return
    const waiters = this.stateWaiters
    this.stateWaiters = []
    for (const waiter of waiters) {
      if (waiter.ready()) waiter.resume()
      else this.stateWaiters.push(waiter)
    }
  }

  /** Waits until `ready()` holds, checked after every change. */
  waitUntil(ready: () => boolean): Effect.Effect<void> {
    return Effect.callback<void>((resume) => {
      if (ready()) return resume(Effect.void)
      const waiter: StateWaiter = { ready, resume: () => resume(Effect.void) }
      this.stateWaiters.push(waiter)
      return Effect.sync(() => {
        const index = this.stateWaiters.indexOf(waiter)
        if (index >= 0) this.stateWaiters.splice(index, 1)
      })
    })
  }

  /** Starts a graceful shutdown (once) and waits for it to end. */
  shutdown(): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.state === "running") {
        this.state = "draining"
        this.paused = false
        this.interruptAcquisitions()
        this.rejectWaiting()
        this.changed()
        this.pump()
        this.upkeepFork(
          Effect.timeoutOption(this.waitUntil(() => this.isIdle()), this.config.shutdownTimeout).pipe(
            Effect.andThen(Effect.sync(() => {
              this.stopNow()
            }))
          )
        )
      }
      return this.awaitTermination()
    })
  }

  awaitTermination(): Effect.Effect<void> {
    return this.waitUntil(() => this.state === "stopped" && this.upkeep.size === 0 && this.leaving === 0)
  }

  /**
   * Immediate shutdown: the never-started jobs end with `PoolShutdown` and are returned, running jobs
   * are interrupted; then the workers' resources are released.
   */
  shutdownNow(): Effect.Effect<Array<Job>> {
    return Effect.suspend(() => {
      const unstarted = this.state === "stopped" ? [] : this.stopNow()
      return Effect.as(this.awaitTermination(), unstarted)
    })
  }

  /**
   * Refuses every waiting submitter (they were never admitted: counted as rejected). All of them
   * are ended before anyone is told, since a listener may act on the pool at once.
   */
  private rejectWaiting(): void {
    const waiting = this.waiting.splice(this.waitingHead).filter((job): job is Job => job !== undefined && job.state === WAITING)
    this.waiting.length = 0
    this.waitingHead = 0
    this.waitingCount = 0
    const refused = new PoolShutdown({ phase: "admission" })
    const listeners = waiting.map((job) => this.markRejected(job, refused))
    this.changed()
    for (let i = 0; i < waiting.length; i++) {
      notify(listeners[i], waiting[i]!.result as Exit.Exit<never, unknown>)
      this.wakeSubmitter(waiting[i]!)
    }
  }

  /**
   * Set by an immediate shutdown: running jobs interrupted from then on end with PoolShutdown, and
   * hooks hold no job (nothing would run it).
   */
  stoppingPool = false

  private stopNow(): Array<Job> {
    if (this.stoppingPool) return []
    this.stoppingPool = true
    this.state = "draining"
    this.interruptAcquisitions()
    this.rejectWaiting()
    // offers come back to the queue; those already started run in their worker's next slot, and
    // are interrupted there
    this.takeBackAll()
    // take every queued job out before telling anyone: a listener may cancel other queued jobs
    const unstarted: Array<Job> = []
    let job: Job | undefined
    while ((job = this.queue.pop()) !== undefined) {
      job.state = NEW // out of the queue, not yet ended
      unstarted.push(job)
    }
    const queued = unstarted.length
    // jobs held between attempts (waiting for a retry) are not running either: returned with them
    for (const held of this.held) {
      held.state = NEW
      unstarted.push(held)
    }
    this.held.clear()
    // and end them all before telling anyone: a listener that reads the stats sees them add up
    const listeners = unstarted.map((job, i) =>
      this.end(job, Exit.fail(new PoolShutdown({ phase: i < queued ? "queued" : "retrying" })), "interrupted", undefined)
    )
    this.changed()
    for (let i = 0; i < unstarted.length; i++) notify(listeners[i], unstarted[i]!.result as Exit.Exit<never, unknown>)
    // jobStopped reports the running jobs interrupted from here on as PoolShutdown
    for (const worker of Array.from(this.workers)) {
      const running = worker.job
      if (running !== undefined) this.executor.interrupt(running)
    }
    this.upkeepFork(
      this.waitUntil(() => this.busy === 0).pipe(
        Effect.andThen(Effect.sync(() => {
          this.state = "stopped"
          this.target = 0
          this.retireIdle()
          this.timer?.interruptUnsafe()
          this.timer = undefined
          this.gate?.close()
          this.changed()
        }))
      )
    )
    return unstarted
  }

  // ---------------------------------------------------------------------------
  // stats

  trackArea(now: number = this.now()): void {
    const elapsed = now - this.areaAt
    if (elapsed > 0) {
      this.busyArea += this.busy * elapsed
      this.capacityArea += this.workers.size * elapsed
      this.areaAt = now
    }
  }

  utilization(): number {
    this.trackArea()
    return this.capacityArea === 0 ? (this.workers.size === 0 ? 0 : this.busy / this.workers.size) :
      this.busyArea / this.capacityArea
  }
}

/**
 * Releases a retired worker's resource. Nobody awaits a release (a shrink returns at once, and a
 * shutdown has no one to hand a defect to), so a release that fails or dies is logged, with its
 * cause, rather than lost with its upkeep fiber.
 */
const release = (workerId: number, scope: Scope.Closeable): Effect.Effect<void> =>
  Effect.catchCause(
    Scope.close(scope, Exit.void),
    (cause) => Effect.logError(`worker ${workerId}: releasing its resource failed`, cause)
  )

const ENDED_CONTEXT: Context.Context<never> = Context.empty()

/** Each pool's scheduler, for the modules that plug into it after `WorkPool.make` (a thread pool's prefetch). */
const schedulers = new WeakMap<object, Scheduler<any>>()

export const registerScheduler = (pool: object, scheduler: Scheduler<any>): void => {
  schedulers.set(pool, scheduler)
}

export const schedulerOf = (pool: object): Scheduler<any> => schedulers.get(pool)!

/** The scheduler of `pool` if it is a pool of this library (a `WorkPool` or a `ThreadPool`). */
export const findScheduler = (pool: object): Scheduler<any> | undefined => schedulers.get(pool)

const notify = (listeners: Listener | Array<Listener> | undefined, exit: Exit.Exit<any, any>): void => {
  if (listeners === undefined) return
  if (typeof listeners === "function") listeners(exit)
  else for (const listener of listeners) listener(exit)
}

/** What `pump` does after a look at the deadlines due (see `Scheduler.dueBeforeStart`). */
const GO = 0
const AGAIN = 1
const STOP = 2
type PumpStep = typeof GO | typeof AGAIN | typeof STOP

/** Whether a job that came to the queue at `time` (submitted `seq`th) came after one at `time2` (`seq2`th). */
const cameAfter = (time: number, seq: number, time2: number, seq2: number): boolean =>
  time > time2 || (time === time2 && seq > seq2)

export const outcomeOf = (exit: Exit.Exit<any, any>): Outcome => {
  if (Exit.isSuccess(exit)) return "succeeded"
  const cause = exit.cause
  if (Cause.hasDies(cause)) return "defects"
  if (Cause.hasFails(cause)) return "failed"
  return "interrupted"
}
