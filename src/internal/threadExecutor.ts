/**
 * A thread pool's executor: a task starts on its thread with no fiber on the main thread. The
 * fiber executor would run each task's attempt as a fiber that sends the task, waits for its answer
 * and decodes it; here the scheduler's start sends it, and the answer, decoded, is the attempt's
 * stop. A fiber and its context cost the main thread several µs per task, which a one-at-a-time
 * caller pays in latency and a busy pool in the CPU its threads share.
 *
 * Everything the fiber gave a task is kept: its answer decoded the same way (`decodeReply`), its
 * `JobContext` on the thread (id, attempt, progress: as an offer's, see prefetch.ts), its caller's
 * span as parent; a timeout, a cancel or a shutdown asks the thread to cancel it and terminates the
 * thread after `cancelGrace` (`Threads.cancel`), and the attempt stops only then, as its fiber did.
 *
 * Tasks this cannot start go to the fiber executor, as before: a traced job (its `workpool.job`
 * span is made in its fiber), a task whose thread is not running yet (the fiber waits for its start),
 * and jobs that are not `ThreadPool` tasks (a durable consumer's).
 *
 * @internal
 */
import { type Context, Effect, Exit } from "effect"
import { TaskCodecError } from "../PoolError.ts"
import * as JobContexts from "./jobContext.ts"
import { IntMap } from "./intMap.ts"
import { markOf, type ThreadPrefetch } from "./prefetch.ts"
import { type Executor, type Job, RUNNING, type Scheduler, type Worker } from "./scheduler.ts"
import { codecsOf, decodeReply, issueOf } from "./taskCodecs.ts"
import type { Reply, TaskJob, Thread, Threads } from "./threads.ts"
import type * as Task from "../Task.ts"

/** A task started here, until its attempt has stopped. */
class Started {
  readonly job: Job
  readonly worker: Worker<any>
  readonly task: Task.Any
  /** Where it runs, once sent. */
  thread: Thread | undefined = undefined
  id = -1
  /** Asked to stop (a timeout, a cancel, a shutdown): its thread is asked to cancel it. */
  stopping = false
  /** Waiting until it has stopped (`awaitStopped`). */
  waiters: Array<() => void> | undefined = undefined
  constructor(job: Job, worker: Worker<any>, task: Task.Any) {
    this.job = job
    this.worker = worker
    this.task = task
  }
}

/** The attempt's Exit for a task's answer: what its fiber ended with (`decodeReply`). */
const exitOf = (task: Parameters<typeof decodeReply>[0], reply: Reply, jobId: number): Exit.Exit<unknown, unknown> => {
  if (reply._ === "interrupted") return Exit.interrupt()
  // every answer but "interrupted" decodes to an Exit (Effect.fail and Effect.die make one)
  const decoded = decodeReply(task, reply, jobId)
  return Exit.isExit(decoded) ? decoded : Exit.die(new Error(`effect-workpool: the answer of task ${task.name} is not an Exit`))
}

/** The executor, with its threads and what it keeps of jobs asked to stop before their start (read by tests). */
export interface ThreadExecutor extends Executor {
  readonly threads: Threads
  readonly stoppedEarly: ReadonlySet<number>
}

export const threadExecutor = (
  scheduler: Scheduler<any>,
  fibers: Executor,
  threads: Threads,
  prefetch: ThreadPrefetch,
  taskJobOf: (job: Job) => TaskJob
): ThreadExecutor => {
  /** By job id, as the fiber executor keeps its fibers (see intMap.ts). */
  const started = new IntMap<Started>()
  /**
   * Jobs asked to stop as they were being started (the scheduler tells who waits for the state
   * change first, and a waiter may cancel the job), by id: they start on a fiber, which the fiber
   * executor stops at once.
   */
  const stoppedEarly = new Set<number>()
  // most jobs come from a few submitters: whether their context is traced is looked up once each
  let lastContext: Context.Context<never> | undefined
  let lastTraced = false
  const isTraced = (context: Context.Context<never>): boolean => {
    if (context !== lastContext) {
      lastContext = context
      lastTraced = JobContexts.isTraced(context)
    }
    return lastTraced
  }

  const stopped = (run: Started, exit: Exit.Exit<unknown, unknown>): void => {
    if (started.get(run.job.seq) !== run) return
    started.delete(run.job.seq)
    scheduler.jobStopped(run.job, run.worker, exit)
    if (run.waiters !== undefined) for (const waiter of run.waiters) waiter()
  }

  /**
   * Asks the task's thread to cancel it; its attempt stops once the thread confirms or has been
   * terminated. It stops interrupted, unless an immediate shutdown asked and the task had ended on
   * its thread before the thread read the cancel (an offer the thread ran before the main thread
   * knew, say): then as it ended, as a job that ended before the shutdown. A caller's cancel keeps
   * its interruption: it decided about its job (a failure would be retried).
   */
  const cancel = (run: Started): void => {
    if (run.stopping) return
    run.stopping = true
    // who asked is known now, not when the answer comes: a shutdown that follows a caller's cancel
    // does not undo the caller's decision
    const byShutdown = scheduler.stoppingPool
    const fiber = Effect.runForkWith(scheduler.context)(threads.cancel(run.thread!, run.id, run.task.name))
    fiber.addObserver((exit) => {
      const reply = Exit.isSuccess(exit) ? exit.value : undefined
      const ended = byShutdown && reply !== undefined && reply._ !== "interrupted" && reply._ !== "crashed"
      stopped(run, ended ? exitOf(run.task, reply, run.job.id) : Exit.interrupt())
    })
  }

  const awaitStopped = (job: Job): Effect.Effect<void> =>
    Effect.suspend(() => {
      const run = started.get(job.seq)
      if (run !== undefined) {
        return Effect.callback<void>((resume) => {
          ;(run.waiters ??= []).push(() => resume(Effect.void))
        })
      }
      // asked to stop before its start (a cancel of an offer its thread had claimed, which waited
      // for its hand-over): it stops once started, on a fiber, and only then is it stopped
      if (stoppedEarly.has(job.seq) && job.state === RUNNING && !fibers.isStopping(job)) {
        return Effect.andThen(
          scheduler.waitUntil(() => !stoppedEarly.has(job.seq) || job.state !== RUNNING),
          Effect.suspend(() => awaitStopped(job))
        )
      }
      return fibers.awaitStopped(job)
    })

  /** Starts a job on a fiber. */
  const onFiber = (job: Job, worker: Worker<any>, waitMillis: number): void => {
    fibers.start(job, worker, waitMillis)
    // asked to stop by its own start code (a payload's encoding), before its fiber was known: the
    // fiber executor has stopped it, and no later start of this attempt comes to look here
    if (stoppedEarly.size > 0) stoppedEarly.delete(job.seq)
  }

  return {
    threads,
    stoppedEarly,
    start(job: Job, worker: Worker<any>, waitMillis: number): void {
      // looked at first: a job that goes to the fiber executor anyway must not stay in it
      if (stoppedEarly.size > 0 && stoppedEarly.delete(job.seq)) return onFiber(job, worker, waitMillis)
      const mark = markOf(job)
      if (mark === undefined || isTraced(job.context)) return onFiber(job, worker, waitMillis)
      const task = mark.task
      const offer = prefetch.take(job.seq)
      const thread = offer !== undefined ? offer.thread : threads.takeNow()
      if (thread === undefined) return onFiber(job, worker, waitMillis)
      const run = new Started(job, worker, task)
      const reply = (reply: Reply) => stopped(run, exitOf(task, reply, job.id))
      started.set(job.seq, run)
      run.thread = thread
      if (offer !== undefined) {
        prefetch.ran(job.seq, thread)
        run.id = offer.id
        threads.listen(offer, reply)
        return
      }
      const encoded = codecsOf(task).encodePayload(mark.payload)
      // its Schema's code may have cancelled its job (it stopped, unsent): sent now, it would run
      // on its thread with no slot, and never be cancelled
      if (run.stopping) return
      if (Exit.isFailure(encoded)) {
        return stopped(run, Exit.fail(new TaskCodecError({ task: task.name, part: "payload", issue: issueOf(encoded) })))
      }
      // from here its thread's offer starts in its slot when it stops (not when it could not be sent)
      prefetch.ran(job.seq, thread)
      // a task with a transfer list waits for the end of the tick as before: posted, it moves its
      // buffers, which its submitter may still read in this tick (docs/threads.md: the move happens
      // when the task starts, not when it is submitted), and which a task sent later in the tick may
      // send too (in the same message it shares the moved buffer; in a later one it cannot be cloned)
      const atOnce = thread.inflight.size === 0 && mark.transfer.length === 0
      const id = threads.send(thread, task.name, encoded.value, mark.transfer, taskJobOf(job), reply)
      if (id === undefined) return
      run.id = id
      // an idle thread's first task goes now, not at the end of the tick: a submitter that queues a
      // batch in one synchronous run (a loop of submits) would hold it back for the whole batch
      // while the thread waits; and one at a time, the thread starts while this tick goes on. The
      // messages that follow in this tick (tasks sent ahead) still go together
      if (atOnce) thread.outbox.flush()
    },
    interrupt(job: Job): void {
      const run = started.get(job.seq)
      if (run !== undefined) return cancel(run)
      if (!fibers.isStopping(job)) stoppedEarly.add(job.seq)
      fibers.interrupt(job)
    },
    awaitStopped,
    isStopping(job: Job): boolean {
      return started.has(job.seq) || fibers.isStopping(job)
    }
  }
}
