/**
 * A thread pool's prefetch (the scheduler's `Prefetch`): while a thread runs a task, the next
 * queued task is offered to it, so that the thread starts it the moment it has room, with no round
 * trip to the main thread. How the thread and the main thread decide who has the offer, without a
 * message, is in protocol.ts (`Offer`); threads.ts keeps each thread's offer.
 *
 * An offer carries what the task's attempt would send: its encoded payload, its job's id and
 * attempt, and its caller's span. Tasks whose attempt would send something an offer cannot are
 * not offered, and start as before: a traced job (its `workpool.job` span is made when it starts),
 * a payload with a transfer list (a moved buffer cannot be taken back), a payload that does not
 * encode (it fails when it starts), and tasks that are not `ThreadPool` tasks (a durable consumer's).
 *
 * @internal
 */
import type { TransferListItem } from "node:worker_threads"
import { IntMap } from "./intMap.ts"
import * as JobContexts from "./jobContext.ts"
import * as Monotonic from "./monotonic.ts"
import { isFunction } from "./job.ts"
import type { Job, Prefetch } from "./scheduler.ts"
import { codecsOf } from "./taskCodecs.ts"
import type { Offer, TaskJob, Thread, Threads } from "./threads.ts"
import type * as Task from "../Task.ts"
import { Clock, Context, Exit } from "effect"

/** Whether a job's pool runs on the live Clock: only then does it read the time its threads read. */
const isLive = (job: Job): boolean => Monotonic.isLive(Context.get(job.scheduler.context, Clock.Clock))

/** What a `ThreadPool` job carries (ThreadPool.ts marks its job functions with it). */
export interface TaskMark {
  readonly task: Task.Any
  readonly payload: unknown
  readonly transfer: ReadonlyArray<TransferListItem>
}

export class ThreadPrefetch implements Prefetch {
  private readonly threads: Threads
  /** Where each running attempt runs, by job id: its thread's offer starts in its slot. */
  private readonly ranOn = new IntMap<Thread>()
  /** Offers not yet decided, by job id. */
  private readonly offers = new IntMap<Offer>()
  /** Offers that run, by job id, until the job's attempt takes its answer over (`take`). */
  private readonly started = new IntMap<Offer>()
  /**
   * Whether the pool's Clock is the live one, whose time a thread reads too (looked up at the first
   * offer): only then does an offer carry its deadline to the thread. On another clock (a TestClock)
   * a thread would judge the deadline on real time, not the pool's, and give back tasks whose
   * deadline has not passed for the pool, letting later ones overtake them; the main thread still
   * hands no freed slot to a task past it.
   */
  private liveClock: boolean | undefined = undefined
  // most jobs come from a few submitters: whether their context is traced is looked up once each
  private lastContext: Context.Context<never> | undefined = undefined
  private lastTraced = false
  private isTraced(context: Context.Context<never>): boolean {
    if (context !== this.lastContext) {
      this.lastContext = context
      this.lastTraced = JobContexts.isTraced(context)
    }
    return this.lastTraced
  }
  /** The thread-side description of a job's attempt, for its offer. */
  private readonly taskJobOf: (job: Job) => TaskJob
  constructor(threads: Threads, taskJobOf: (job: Job) => TaskJob) {
    this.threads = threads
    this.taskJobOf = taskJobOf
  }

  /** The attempt of job `jobId` runs on `thread`. */
  ran(jobId: number, thread: Thread): void {
    this.ranOn.set(jobId, thread)
  }

  /** The offer that runs for job `jobId`, if it has one: its attempt waits for the offer's answer. */
  take(jobId: number): Offer | undefined {
    const offer = this.started.get(jobId)
    if (offer !== undefined) this.started.delete(jobId)
    return offer
  }

  offer(job: Job): boolean {
    // most calls find every thread holding an offer already: asked first, it is the cheap answer
    const thread = this.threads.offerTarget()
    if (thread === undefined) return false
    const mark = markOf(job)
    if (mark === undefined || mark.transfer.length > 0 || this.isTraced(job.context)) return false
    // its queue deadline goes with it, on the clock the threads share: a thread that frees after it
    // gives the offer back rather than start it, however late the main thread is to take it back
    const left = job.deadline === undefined ? Infinity : job.deadlineIn(job.scheduler.now())
    if (left <= 0) return false
    const encoded = codecsOf(mark.task).encodePayload(mark.payload)
    if (Exit.isFailure(encoded)) return false
    const expires = left === Infinity || !(this.liveClock ??= isLive(job)) ? undefined : performance.timeOrigin + performance.now() + left
    this.offers.set(job.seq, this.threads.offer(thread, mark.task.name, encoded.value, this.taskJobOf(job), job, expires))
    return true
  }

  successor(stopped: Job, start: boolean, now: number, putBack: (job: Job) => void): Job | undefined {
    const thread = this.ranOn.get(stopped.seq)
    if (thread === undefined) return undefined
    this.ranOn.delete(stopped.seq)
    for (;;) {
      const first = thread.offers[0]
      if (first === undefined) return undefined
      const job = first.job as Job
      // past its queue deadline it must not start, unless its thread has started it already
      if (this.handOver(first, start && job.deadlineIn(now) > 0)) return job
      putBack(job)
      // it was late (or its thread found it late and gave it back): the next one may take the slot
      if (!start || !this.threads.usable(thread)) break
    }
    // the thread is going or the slot is not wanted: no later slot of the thread may come for the
    // others, so they come back too; one the thread started takes this slot (each started one
    // freed a slot of its own on the thread, whose task's stop hands it over in turn)
    let runs: Job | undefined
    for (const offer of thread.offers.slice()) {
      const job = offer.job as Job
      if (this.threads.withdraw(offer)) {
        this.offers.delete(job.seq)
        putBack(job)
      } else if (runs === undefined && this.handOver(offer, false)) runs = job
    }
    return runs
  }

  withdraw(job: Job): boolean {
    const offer = this.offers.get(job.seq)!
    if (!this.threads.withdraw(offer)) return false
    this.offers.delete(job.seq)
    return true
  }

  /** Confirms an offer (`start`) or takes it back: true if it runs (see `Threads.handOver`). */
  private handOver(offer: Offer, start: boolean): boolean {
    const seq = (offer.job as Job).seq
    this.offers.delete(seq)
    if (!this.threads.handOver(offer, start)) return false
    this.started.set(seq, offer)
    return true
  }
}

/** The task a `ThreadPool` job runs, if it is one (durable consumers' jobs are not). */
export const markOf = (job: Job): TaskMark | undefined => {
  const effect = job.effect
  if (!isFunction(effect)) return undefined
  const mark = effect as unknown as Partial<TaskMark>
  return mark.task !== undefined && mark.transfer !== undefined ? mark as TaskMark : undefined
}
