/**
 * A durable consumer: the in-process pool (`WorkPool`, capacity 0) fed by a claim loop that claims
 * only when a slot is free, so it never holds a lease on a job it has not started. Around it:
 *
 * - a heartbeat that renews the leases of the running claims every `lease / 3`, and interrupts a
 *   job whose claim is lost (reaped, so another consumer may run it) or whose cancel was asked for;
 * - settles fenced by the claim's token: a stale consumer's settle writes nothing;
 * - a reaper that takes back jobs whose consumer stopped renewing (killed, frozen);
 * - retries replayed from the stored attempt count, so every consumer computes the same delay.
 *
 * Timeouts, concurrency, stats, pause, resize and shutdown are the pool's own.
 *
 * @internal
 */
import { Cause, Clock, Context, Deferred, Effect, Exit, Fiber, Option, Result, Schedule, Semaphore, Stream, Tracer } from "effect"
import type * as Scope from "effect/Scope"
import { AttemptTimeout, type StoreError } from "../../DurableError.ts"
import { type InvalidPoolConfig, JobTimeout, PoolShutdown, TaskCodecError } from "../../PoolError.ts"
import type * as Task from "../../Task.ts"
import * as WorkPool from "../../WorkPool.ts"
import type { Claim, Settled, Settlement, Store } from "../store/model.ts"
import { decodeTrace, JobStore, NO_TIMEOUT } from "../store/model.ts"
import * as ServerTime from "../store/serverTime.ts"
import { makeSignal } from "../store/signal.ts"
import { endedSilently, onFirstReport } from "../progress.ts"
import { asExit, runHandler, syncThunk } from "../job.ts"
import { DONE, schedulerOf } from "../scheduler.ts"
import { decodeExit, decodePayload, encodeExit, isInstance } from "./exit.ts"
import { checkPoolOptions } from "../config.ts"
import { isTraced, withAttempt } from "../jobContext.ts"
import { CurrentJob, currentJobOf } from "../jobInfo.ts"
import { jsonText } from "../jsonText.ts"
import * as Monotonic from "../monotonic.ts"
import * as RateLimits from "../rateLimit.ts"
import * as Retry from "../retry.ts"
import * as Backoff from "./backoff.ts"
import { failureStreak } from "../failureStreak.ts"
import * as Events from "./events.ts"
import * as OnThread from "./onThread.ts"
import { isSnoozed, type Snooze, Snoozed, snoozeOf } from "./snooze.ts"
import type * as ThreadJson from "../threadJson.ts"

/** The snooze a handler's attempt ended with (its only defect, or the first), if any. */
const snoozeIn = (cause: Cause.Cause<unknown>): Snooze | undefined => {
  const defect = Cause.findDefect(cause)
  return Result.isSuccess(defect) ? snoozeOf(defect.success) : undefined
}

/** A handler's attempt whose snooze (a defect) ends it as a success, `Snoozed`: see `Snoozed`. */
const snoozing = <A, E, R>(run: Effect.Effect<A, E, R>): Effect.Effect<A | Snoozed, E, R> =>
  Effect.catchCause(run, (cause) => {
    const snooze = snoozeIn(cause)
    return snooze === undefined ? Effect.failCause(cause) : Effect.succeed(new Snoozed(snooze))
  })

export interface ConsumerConfig<R> {
  readonly queues: ReadonlyArray<string>
  readonly handlers: ReadonlyArray<Task.Handler<R>>
  /** Tasks run on a thread pool (`consume({ threadPool, tasks })`): its way in, and the tasks. */
  readonly threads: { readonly pool: ThreadJson.Entry; readonly tasks: ReadonlyArray<Task.Any> } | undefined
  /** undefined (only with `threads`): the thread pool's slots, followed as it is resized. */
  readonly concurrency: number | undefined
  /** Per attempt, ms; 0 for none (a job's own timeout wins). */
  readonly timeout: number
  /** The consumer's retry policy, replayed from each job's stored attempt count. */
  readonly retry: Retry.Policy
  /** Policies a job names as its own retry (`enqueue({ retry: "name" })`). */
  readonly retryPolicies: ReadonlyMap<string, Retry.Policy>
  readonly shutdownTimeout: number
  readonly lease: number
  readonly poll: number
  /** This consumer's own rate limit (the queue's shared one is the store's). */
  readonly rateLimit: RateLimits.Limit | undefined
  /** The pool's name (checked); undefined for the default, derived from `queues`. */
  readonly name: string | undefined
  /** "fair": its claims serve its queues in turn (`ClaimRequest.fair`); "priority": the best jobs across them. */
  readonly dispatch: "priority" | "fair"
  /** `ConsumeOptions.onEvent`: undefined, no events are made. */
  readonly onEvent: Events.Handler<R> | undefined
}

export interface Consumer {
  readonly stats: Effect.Effect<WorkPool.PoolStats>
  readonly changes: WorkPool.WorkPool["changes"]
  readonly pause: Effect.Effect<void>
  readonly resume: Effect.Effect<void>
  readonly resize: WorkPool.WorkPool["resize"]
  readonly setRateLimit: WorkPool.WorkPool["setRateLimit"]
  readonly shutdown: Effect.Effect<void>
  readonly shutdownNow: Effect.Effect<void>
  readonly awaitTermination: Effect.Effect<void>
}

/**
 * The most jobs one claim asks for; a consumer with more free slots claims again at once. A claim
 * of a whole large concurrency made Redis' claim a call of one argument per job (past ~50,000 it
 * overflowed the stack, at every poll), and an idle consumer paid for all of them at each poll.
 */
export const MAX_CLAIM = 1000

/** A running job's progress is written to the store at most once per this many ms (and at its end). */
export const PROGRESS_EVERY = 250

/**
 * A fair consumer's turn over its queues: each claim asks for them from the cursor on, and the
 * cursor then moves past the last queue the claim served, so that the next claim starts with the
 * queue after it. A claim serves one job per queue per round (`ClaimRequest.fair`): the last queue
 * served is the furthest of those that gave the most jobs. A queue passed over (empty, paused,
 * held by its rate limit) is asked first again once the cursor comes round, so none loses its turn
 * for good; a claim that took nothing leaves the cursor where it was.
 */
export const makeTurns = (queues: ReadonlyArray<string>) => {
  const index = new Map<string, number>()
  queues.forEach((queue, i) => index.has(queue) || index.set(queue, i))
  const n = queues.length
  let cursor = 0
  return {
    queues: (): ReadonlyArray<string> => cursor === 0 ? queues : [...queues.slice(cursor), ...queues.slice(0, cursor)],
    served: (claims: ReadonlyArray<Claim>): void => {
      const counts = new Map<string, number>()
      for (const { job } of claims) counts.set(job.queue, (counts.get(job.queue) ?? 0) + 1)
      let most = 0
      let last = -1
      for (const [queue, count] of counts) {
        const at = index.get(queue)
        if (at === undefined) continue
        // its place in this claim's order, which started at the cursor
        const place = (at - cursor + n) % n
        if (count > most || (count === most && place > last)) {
          most = count
          last = place
        }
      }
      if (last >= 0) cursor = (cursor + last + 1) % n
    }
  }
}

/**
 * A consumer, as the stops asked of it see one another: for each consumer, how many fibers inside
 * this one (its jobs, its onEvent handler) are waiting for that consumer's stop (or termination).
 */
interface Node {
  readonly waitsOn: Map<Node, number>
}

/** Whether `from`'s stop waits, through the stops its fibers wait for, for `to`'s fibers. */
const reaches = (from: Node, to: Node): boolean => {
  const seen = new Set<Node>()
  const visit = (node: Node): boolean => {
    if (node === to) return true
    if (seen.has(node)) return false
    seen.add(node)
    for (const next of node.waitsOn.keys()) if (visit(next)) return true
    return false
  }
  return visit(from)
}

/**
 * The consumer a fiber runs inside: one of its jobs (the job's claim token) or its onEvent handler
 * (no token). A Reference, so that every fiber a job or a handler forks (a child it joins, a
 * detached one) is inside too: compared as the fiber itself, a handler's stop run on a child it
 * joined was not seen as inside, and waited for the handler that waited for it.
 */
interface Place {
  readonly node: Node
  readonly token: string | undefined
}
const Inside = Context.Reference<Place | undefined>("effect-workpool/durable/Inside", { defaultValue: () => undefined })

interface Running {
  readonly claim: Claim
  readonly task: Task.Any
  handle: WorkPool.JobHandle<unknown, unknown> | undefined
  /** Why this consumer interrupted it, if it did. */
  reason: "cancel" | "lost" | undefined
  /**
   * The store's time its lease runs from, as this consumer knows: its claim's, then each beat's
   * that renewed it (read before the beat was sent). Its lease ends a lease after.
   */
  since: number
}

/** A claim's jobs that may start, the store's time they were looked at, and whether they were renewed then. */
interface Current {
  readonly claims: ReadonlyArray<Claim>
  readonly now: number
  readonly renewed: boolean
  /** Claims to give back unstarted: the renewal found them cancelled, or could not renew them. */
  readonly back: ReadonlyArray<Claim>
}

/**
 * The most finished jobs of one queue and state a consumer's retention batch deletes (one statement
 * or script): a backlog (a retention set on a queue of millions) is deleted a batch at a time,
 * never in one delete that holds the store.
 */
export const RETAIN_BATCH = 1000

/**
 * The delays before retries 1..32 of a job taken back from a dead consumer, for the store's reaper
 * (which cannot run a Schedule): the policy's schedule, without its `while` (the failure is the
 * lease's, not the job's) and without its `times` (`maxAttempts` bounds them in the store). A job
 * with its own backoff gets it from the store (the same formula as `Backoff.delay`); one that names
 * a policy, that policy's list.
 */
const reaperBackoff = (policy: Retry.Policy, context: import("effect").Context.Context<never>): Array<number> => {
  const schedule = { schedule: policy.schedule, times: Infinity, while: undefined }
  const delays: Array<number> = []
  for (let attempt = 1; attempt <= 32; attempt++) {
    const delay = Retry.delayOf(schedule, attempt, Cause.die("lease expired"), context)
    if (delay === undefined) break
    delays.push(Backoff.wholeMillis(delay))
  }
  return delays.length === 0 ? [0] : delays
}

/**
 * The wait before the next claim after `failures` failed ones in a row: the poll interval (at most
 * 1 s), doubling per failure up to 5 s, so that a store that is down is not asked (and the failure
 * not logged) hundreds of times a second by a fast-polling consumer. Not the poll itself, nor a cap
 * of it: a consumer polling once an hour whose claim a server restart cut off slept that hour while
 * jobs waited (a long poll is only the fallback for missed wake-ups, not a retry's pace).
 */
export const claimBackoff = (poll: number, failures: number): number =>
  Math.min(Math.min(Math.max(1, poll), 1000) * 2 ** Math.min(failures - 1, 30), 5000)

/**
 * After a failed claim, the least time before a change the store hears (a NOTIFY, its listener
 * back after a restart, an enqueue here) may end the backoff: a claim that keeps failing while jobs
 * keep coming is tried at most ten times a second, not once per job.
 */
export const CLAIM_RETRY_FLOOR = 100

/**
 * How long a stopping consumer waits for its claim in flight, and for its settles after its drain,
 * before it goes on without them (the settles interrupted, their jobs left to the reaper). A store
 * whose server is down may never answer: a command to a frozen server; a Postgres statement that
 * needs a new connection while the store's own scope closes (a consumer made in that scope), which
 * effect's Pool opens in a fiber forked into that scope, one that never starts once the scope is
 * marked closed.
 */
export const STOP_SETTLE_GRACE = 2000

/**
 * The least time between two heartbeats a cancel request woke: every cancel of a running job, in any
 * process, wakes every consumer's heartbeat (whichever runs the job), and each beat
 * renews all of a consumer's running leases. Without it, 1,000 cancels a second across a fleet cost
 * each busy consumer 1,000 beats a second; with it, ten at most, and a cancel reaches its job within
 * this (plus the beat's round trip) during a storm, at once otherwise. A beat that is due (a third of
 * a lease, a lease's end) is never held back by it.
 */
export const CANCEL_BEAT_FLOOR = 100

/** How many times a failed settle is tried again, `lease / 10` apart: for a lease (see `persist`). */
export const SETTLE_RETRIES = 10

/** The spacing of a settle's retries once its consumer stops (its wait for them is bounded: `STOP_SETTLE_GRACE`). */
export const STOP_RETRY_SPACING = 200

/**
 * Tries a store step for a lease: a settle that never lands is taken back by a reaper later, and
 * its job runs again. A lease, as a heartbeat: the job's lease holds that long after its last
 * renewal (and is renewed meanwhile if beats get through), and a store refusing both for less
 * (a Redis Cluster slot moving, a restart) must not leave a job that has ended to run again when
 * one still running comes through (6 tries, half a lease, did). The retry is set up only after a
 * first failure: on the way every job takes, it cost a schedule and its driver per settle. A
 * closed store is not asked again: it only fails. Tries come `lease / 10` apart, and
 * `STOP_RETRY_SPACING` apart once `stopped` is done: a stopping consumer waits `STOP_SETTLE_GRACE`
 * at most for its settles, so a slow retry would only be cut short, while a quick one still saves
 * a job from a rerun after a passing failure.
 */
const persist = <A, E>(
  effect: Effect.Effect<A, E>,
  lease: number,
  closed: Effect.Effect<boolean>,
  stopped: Effect.Effect<void>
): Effect.Effect<A, E> => {
  const spacing = Math.max(1, Math.floor(lease / 10))
  const pause = Effect.raceFirst(Effect.sleep(spacing), Effect.andThen(stopped, Effect.sleep(STOP_RETRY_SPACING)))
  const retry = (left: number, error: E): Effect.Effect<A, E> =>
    Effect.flatMap(closed, (closed) =>
      closed || left === 0
        ? Effect.fail(error)
        : Effect.andThen(pause, Effect.catch(effect, (error) => retry(left - 1, error))))
  return Effect.catch(effect, (error) => retry(SETTLE_RETRIES, error))
}

/**
 * The default name of a consumer's pool: its queues', so that its metric series keep their name
 * across restarts and whatever the order consumers start in (a counter, `workpool-<n>`, did not).
 */
const defaultName = (queues: ReadonlyArray<string>): string =>
  `consumer:${queues.length <= 3 ? queues.join(",") : `${queues.slice(0, 3).join(",")},+${queues.length - 3}`}`

/**
 * The consumer's pool. A name given is the caller's, and taken (a live pool has it) fails the start;
 * the default is the next free one of `consumer:<queues>`, `#2`, `#3`...: two consumers of one queue
 * in a process are allowed, and their series must not overwrite each other's.
 */
const makePool = (config: ConsumerConfig<any>, concurrency: number) => {
  const attempt = (name: string) =>
    WorkPool.make({ concurrency, capacity: 0, overflow: "fail", shutdownTimeout: config.shutdownTimeout, name })
  if (config.name !== undefined) return attempt(config.name)
  const base = defaultName(config.queues)
  const from = (n: number): ReturnType<typeof attempt> =>
    Effect.catchIf(
      attempt(n === 1 ? base : `${base}#${n}`),
      // taken: a live pool has it (there are finitely many, so a free one comes)
      (error) => error.field === "name",
      () => from(n + 1)
    )
  return from(1)
}

// uninterruptible (nothing in it waits): interrupted between forking its loops and adding the
// finalizer that stops them, it left a claim loop running for good, claiming and giving back jobs
// in a hot loop once its pool had closed with the scope
export const make = <R>(config: ConsumerConfig<R>): Effect.Effect<Consumer, InvalidPoolConfig, JobStore | Scope.Scope | R> =>
  Effect.uninterruptible(Effect.gen(function*() {
    const store = yield* JobStore
    const context = yield* Effect.context<R>()
    const handlers = new Map(config.handlers.map((handler) => [handler.task.name, handler]))
    const onThreads = new Map(config.threads?.tasks.map((task) => [task.name, task]))
    const tasks = [...handlers.keys(), ...onThreads.keys()]
    // without a concurrency of its own, the consumer claims for the thread pool's slots, and follows
    // them (until `resize` gives it one): a claimed job does not wait for a thread
    let following = config.concurrency === undefined
    // at least 1: a pool that shut down since `consume` checked it has none, and this consumer
    // stops at its first job (`threadPoolGone`)
    let target = config.concurrency ?? Math.max(1, config.threads!.pool.slots())
    const pool = yield* makePool(config, target)
    const running = new Map<string, Running>()
    const settlers = new Set<Fiber.Fiber<void>>()
    /** Jobs of `running` whose handler has ended, being settled: their slots are free (their leases are held until written). */
    let settling = 0
    const wake = makeSignal()
    const terminated = yield* Deferred.make<void>()
    /** Done when the consumer starts to stop: a settle's retries (`persist`) come quicker. */
    const stopRequested = yield* Deferred.make<void>()
    const halted = Deferred.await(stopRequested)
    let paused = false
    let claiming = true
    let stopping: Effect.Effect<void> | undefined
    const backoff = reaperBackoff(config.retry, context as never)
    // no prototype: a policy named __proto__ is a key like any other (assigned on `{}`, it set the prototype)
    const reapPolicies: Record<string, ReadonlyArray<number>> = Object.create(null)
    for (const [name, policy] of config.retryPolicies) reapPolicies[name] = reaperBackoff(policy, context as never)
    const clock = yield* Clock.Clock
    /** The Clock's monotonic time, for this consumer's own rate limit: to the fraction of a millisecond, the window is exact. */
    const monotonic = Monotonic.exactMillis(clock)
    let limiter = config.rateLimit === undefined ? undefined : new RateLimits.RateLimiter(config.rateLimit)
    /** Free slots that a rate limit (this consumer's, or the queue's) keeps from claiming, as last seen. */
    let held = 0
    // one queue: nothing to take turns over
    const turns = config.dispatch === "fair" && config.queues.length > 1 ? makeTurns(config.queues) : undefined

    const fork = <A>(effect: Effect.Effect<A, never, R>): Fiber.Fiber<A> =>
      Effect.runForkWith(context)(effect)
    const node: Node = { waitsOn: new Map() }
    const handlerPlace: Place = { node, token: undefined }
    const events = Events.make(
      config.onEvent,
      () => clock.currentTimeMillisUnsafe(),
      (effect) => fork(Effect.provideService(effect, Inside, handlerPlace))
    )

    // --- an attempt

    // its logs and its span name the durable job (an id valid in every process, the stored attempt),
    // not only the pool slot's job that runs it
    const traced = isTraced(context as Context.Context<never>)
    /** Made when the job starts (the pool calls it): a handler's Effect is built where it always was. */
    const attempt = (entry: Running) => (): Effect.Effect<unknown, unknown, R> => {
      const handler = handlers.get(entry.task.name)
      const job = entry.claim.job
      let run: Effect.Effect<unknown, unknown, R>
      if (handler === undefined) run = OnThread.attempt(config.threads!.pool.run, entry.task, job, threadPoolGone)
      else {
        const payload = decodePayload(entry.task, job.payload)
        // decoded already (the usual case): the handler's own Effect is the job's, so that an
        // `Effect.sync` handler runs without a fiber
        run = !Exit.isExit(payload)
          ? Effect.flatMap(payload, (payload) => runHandler(handler, payload))
          : Exit.isSuccess(payload)
          ? runHandler(handler, payload.value)
          : payload
      }
      // an `Effect.sync` function or an Exit logs nothing: it needs no annotations (nor a fiber)
      if (!traced && (syncThunk(run) !== undefined || asExit(run) !== undefined)) return run
      // each attempt is a new job of this pool (its attempt 1): the handler's JobContext counts the
      // durable job's attempts, as the store does; its CurrentJob is the durable job (a thread's
      // task gets both on its thread: OnThread)
      if (handler !== undefined) {
        // and a Scope of its own, closed as the attempt ends: the consumer's (which its start needs,
        // and so met a handler's `R`) kept every attempt's resources until the consumer stopped
        run = Effect.scoped(Effect.updateContext(run, (services: Context.Context<R>) =>
          Context.add(
            Context.add(
              Context.add(services, WorkPool.JobContext, withAttempt(Context.get(services, WorkPool.JobContext), job.attempts)),
              CurrentJob,
              currentJobOf(job)
            ),
            Inside,
            { node, token: entry.claim.token }
          )))
      }
      run = Effect.annotateLogs(snoozing(run), { jobId: job.id, queue: job.queue })
      return traced
        ? Effect.andThen(
          Effect.annotateCurrentSpan({
            "workpool.queue": job.queue,
            "workpool.task": job.task,
            "workpool.durable.id": job.id,
            "workpool.durable.attempt": job.attempts
          }),
          run
        )
        : run
    }

    /**
     * The store closed under this consumer (its layer released before the consumer's scope): nothing
     * can be claimed or settled any more, so it stops, saying so once, instead of retrying (and
     * logging) until its own scope closes. Its running jobs are interrupted: their results could
     * not be stored, and their leases end, so another consumer of the store runs them again. A
     * graceful shutdown under way is cut short the same way: its drain would wait (up to
     * `shutdownTimeout`) for jobs whose results cannot be stored, which no failed heartbeat ends now.
     */
    let storeGone = false
    const storeClosed = () => {
      if (storeGone) return
      storeGone = true
      claiming = false
      fork(Effect.andThen(
        Effect.logWarning(
          `effect-workpool: a durable consumer's store closed before the consumer (release the store's layer after its consumers); ` +
            `the consumer stops${running.size > 0 ? `, interrupting ${running.size} running job${running.size === 1 ? "" : "s"} (their leases will expire)` : ""}`
        ),
        Effect.suspend(() => stop(true))
      ))
    }

    /** The thread pool shut down under this consumer: nothing can run, so it stops (giving back its claims). */
    const threadPoolGone = () => {
      if (!claiming) return
      claiming = false
      fork(Effect.andThen(
        Effect.logWarning("effect-workpool: a durable consumer's thread pool shut down; the consumer stops"),
        Effect.suspend(() => stop(false))
      ))
    }

    /**
     * The delay before retry `attempts` of `job` (undefined: no retry), by the job's own retry if it
     * has one (its producer chose it), else this consumer's. A policy name this consumer does not
     * know falls back to its own policy, with a warning: the job is not lost.
     */
    const retryDelay = (job: Claim["job"], cause: Cause.Cause<unknown>): Effect.Effect<number | undefined> => {
      const stored = Backoff.decode(job.retry)
      if (stored === undefined) return Effect.succeed(delayOf(config.retry, job.attempts, cause))
      if (!("policy" in stored)) return Effect.succeed(Backoff.delay(stored, job.attempts))
      const named = config.retryPolicies.get(stored.policy)
      return named !== undefined ? Effect.succeed(delayOf(named, job.attempts, cause)) : Effect.as(
        Effect.logWarning(
          `effect-workpool: job ${job.id} names the retry policy "${stored.policy}", which this consumer does not register (retryPolicies); it retries with the consumer's retry`
        ),
        delayOf(config.retry, job.attempts, cause)
      )
    }

    // the same delay in every consumer: the policy replayed to this attempt (1 for the first retry)
    const delayOf = (policy: Retry.Policy, attempts: number, cause: Cause.Cause<unknown>): number | undefined => {
      const delay = Retry.delayOf(policy, attempts, cause, context as never)
      return delay === undefined ? undefined : Backoff.wholeMillis(delay)
    }

    /** An attempt's failure as stored: its pool's timeout is the durable job's `AttemptTimeout`. */
    const attemptCause = (entry: Running, cause: Cause.Cause<unknown>): Cause.Cause<unknown> => {
      const error = Cause.findErrorOption(cause)
      if (error._tag === "None" || !isInstance(error.value, JobTimeout) || error.value.jobId !== entry.handle?.id) return cause
      const job = entry.claim.job
      return Cause.fail(new AttemptTimeout({ id: job.id, attempt: job.attempts, millis: error.value.millis }))
    }
    const failureOf = (entry: Running, exit: Exit.Exit<unknown, unknown>) =>
      Exit.isSuccess(exit) ? undefined : attemptCause(entry, exit.cause)

    /**
     * Tells the events of an attempt's settlement. A success its task could not encode is dead with
     * the `TaskCodecError` stored for it (what its awaiter gets), decoded back from what was written.
     */
    const tell = (events: Events.Events, entry: Running, exit: Exit.Exit<unknown, unknown>, settlement: Settlement, written: Settled) => {
      if (!Exit.isSuccess(exit) || settlement._tag !== "Final" || settlement.state !== "dead") {
        return Effect.sync(() => events.settled(entry.claim, failureOf(entry, exit), settlement, written))
      }
      return Effect.map(
        decodeExit(entry.task, { ...entry.claim.job, state: "dead", exit: settlement.exit }),
        (stored) => events.settled(entry.claim, Exit.isFailure(stored) ? stored.cause : undefined, settlement, written)
      )
    }

    const settlementOf = (entry: Running, exit: Exit.Exit<unknown, unknown>): Effect.Effect<Settlement | undefined> => {
      const job = entry.claim.job
      // a lost claim is another consumer's now: nothing to write (the store would refuse it anyway)
      if (entry.reason === "lost") return Effect.succeed(undefined)
      if (Exit.isSuccess(exit)) {
        if (isSnoozed(exit.value)) return snoozeJob(job, exit.value.snooze)
        // it finished before a cancel reached it: its result stands
        const encoded = encodeExit(entry.task, exit)
        const final = ({ ok, text }: { readonly ok: boolean; readonly text: string }): Settlement => ({
          _tag: "Final",
          state: ok ? "succeeded" : "dead",
          exit: text
        })
        return Exit.isExit(encoded) && Exit.isSuccess(encoded)
          ? Exit.succeed(final(encoded.value as { readonly ok: boolean; readonly text: string }))
          : Effect.map(encoded, final)
      }
      let cause = exit.cause
      if (entry.reason === "cancel" && Cause.hasInterrupts(cause)) {
        return Effect.succeed({ _tag: "Final", state: "cancelled", exit: null })
      }
      const error = Cause.findErrorOption(cause)
      // interrupted by this consumer's shutdown: given back, the attempt does not count. Only then:
      // a handler that interrupts itself, or fails with another pool's PoolShutdown, fails its
      // attempt (else it would be given back and claimed again forever)
      if (
        !claiming &&
        (error._tag === "Some" ? isInstance(error.value, PoolShutdown) : !Cause.hasDies(cause))
      ) return Effect.succeed({ _tag: "Release" })
      cause = attemptCause(entry, cause)
      const final = error._tag === "Some" && isInstance(error.value, TaskCodecError)
      const failed = cause
      return Effect.flatMap(encodeExit(entry.task, Exit.failCause(cause)), ({ text }) =>
        final || job.attempts >= job.maxAttempts
          ? Effect.succeed<Settlement>({ _tag: "Final", state: "dead", exit: text })
          : Effect.map(retryDelay(job, failed), (delay): Settlement =>
            delay === undefined ? { _tag: "Final", state: "dead", exit: text } : { _tag: "Retry", delay, exit: text }))
    }

    /**
     * A snooze (`JobQueue.snooze`): its job given back for `delay`, its attempt not counted; with
     * `holdQueue`, its queue held at least as long first, in the store, for every consumer: a hold
     * ending later (another job's longer snooze, `holdQueue`) stays, or two 429s with different
     * Retry-Afters would let the shorter cut the longer. A hold that fails is logged, and the job
     * snoozed all the same. A snooze of 0 holds nothing (no write to the store for it).
     */
    const snoozeJob = (job: Claim["job"], snooze: Snooze): Effect.Effect<Settlement> => {
      const settlement: Settlement = { _tag: "Release", delay: snooze.delay }
      if (!snooze.holdQueue || snooze.delay === 0) return Effect.succeed(settlement)
      return persist(store.configure(job.queue, { holdAtLeast: snooze.delay }), config.lease, store.closed, halted).pipe(
        Effect.catchCause((cause) =>
          Effect.logWarning("effect-workpool: a snoozed job's queue hold failed; the job is snoozed, its queue not held", cause)
            .pipe(Effect.annotateLogs({ jobId: job.id, queue: job.queue }))
        ),
        Effect.as(settlement)
      )
    }

    const settle = (entry: Running, exit: Exit.Exit<unknown, unknown>) =>
      Effect.suspend(() => {
        // its slot is free: the claim for it goes out now, with this settle (a store may write both
        // in one round trip), not after it
        settling++
        wake.notify()
        return settleJob(entry, exit)
      })

    // settlementOf in a suspend: whatever it throws (a retry policy's own code), the catch and the
    // cleanup below run, or the job would stay in `running`, its lease renewed for ever
    const settleJob = (entry: Running, exit: Exit.Exit<unknown, unknown>) =>
      Effect.suspend(() => settlementOf(entry, exit)).pipe(
        Effect.flatMap((settlement) => {
          if (settlement === undefined) return Effect.sync(() => events?.settled(entry.claim, failureOf(entry, exit), settlement, undefined))
          const written = persist(store.settle(entry.claim.token, settlement), config.lease, store.closed, halted)
          return events === undefined
            ? Effect.asVoid(written)
            : Effect.flatMap(written, (written) => tell(events, entry, exit, settlement, written))
        }),
        Effect.catchCause((cause) =>
          Effect.flatMap(store.closed, (closed) => {
            // nothing of the attempt written: its lease will expire, and it runs again
            events?.settled(entry.claim, undefined, undefined, undefined)
            // a closed store: the consumer said so once (`storeClosed`), not once per job
            return closed ? Effect.void : Effect.logWarning("effect-workpool: a durable job's settle failed; its lease will expire", cause).pipe(
              Effect.annotateLogs({ jobId: entry.claim.job.id, queue: entry.claim.job.queue })
            )
          })
        ),
        Effect.ensuring(Effect.sync(() => {
          running.delete(entry.claim.token)
          settling--
          events?.over(entry.claim)
        }))
      )

    /**
     * Gives back a claim that did not start, and tells it: the store's answer, as a cancel asked for
     * since the claim ends the job (told `Cancelled`), which never runs again.
     */
    const giveBack = (claim: Claim) =>
      Effect.flatMap(
        Effect.option(persist(store.settle(claim.token, { _tag: "Release" }), config.lease, store.closed, halted)),
        (written) => Effect.sync(() => events?.givenBack(claim, Option.getOrUndefined(written)))
      )

    /** Starts a claimed job on a free slot, its lease running from `since`; gives it back if the pool cannot take it. */
    const start = (claim: Claim, since: number) =>
      Effect.gen(function*() {
        const entry: Running = {
          claim,
          task: handlers.get(claim.job.task)?.task ?? onThreads.get(claim.job.task)!,
          handle: undefined,
          reason: undefined,
          since
        }
        running.set(claim.token, entry)
        // the job's own (NO_TIMEOUT: none), else the consumer's
        const timeout = claim.job.timeout > 0
          ? claim.job.timeout
          : claim.job.timeout === NO_TIMEOUT || config.timeout === 0
          ? Infinity
          : config.timeout
        // the producer's span, stored with the job, is the parent of its `workpool.job` span here
        const trace = decodeTrace(claim.job.trace)
        const submit = pool.submit(attempt(entry), { timeout })
        const submitted = yield* Effect.exit(trace === undefined ? submit : Effect.withParentSpan(submit, Tracer.externalSpan(trace)))
        if (Exit.isFailure(submitted)) {
          yield* giveBack(claim)
          running.delete(claim.token)
          return
        }
        const handle = submitted.value
        entry.handle = handle
        events?.started(claim)
        // it ran to its end as it started (an Effect.sync handler, a payload that does not decode):
        // no fiber to wait for, no progress to write, only its outcome
        const ended = endedSilently(handle, DONE)
        if (ended !== undefined) {
          events?.ended(claim)
          return track(fork(settle(entry, ended)))
        }
        // the handler's progress reports (WorkPool.JobContext) to the store, fenced: the latest
        // value, at most one write per PROGRESS_EVERY, so a handler reporting in a loop costs the
        // store a write per interval rather than one per report
        let written: string | undefined
        let warned = false
        const write = (value: unknown) => {
          const text = jsonText(value)
          if (typeof text !== "string") {
            // not JSON (a cycle, a BigInt, a function): not stored, said once per attempt
            if (warned) return Effect.void
            warned = true
            return Effect.logWarning(
              "effect-workpool: a durable job's progress is not JSON; it is not stored (its previous value stays)",
              text.reason
            ).pipe(Effect.annotateLogs({ jobId: claim.job.id, queue: claim.job.queue }))
          }
          return text === written
            ? Effect.void
            : Effect.ignore(Effect.tap(store.progress(claim.token, text), () => Effect.sync(() => void (written = text))))
        }
        // started at the job's first report: most jobs never report, and a fiber and a stream per
        // job were ~10% of a no-op job's CPU in a drain
        let reporting: Fiber.Fiber<void> | undefined
        onFirstReport(handle, DONE, () => {
          reporting = fork(
            Stream.runForEach(handle.progressChanges, (value) => Effect.andThen(write(value), Effect.sleep(PROGRESS_EVERY)))
          )
        })
        // a heartbeat that ran while it was being submitted (lost, or cancelled) could not stop it
        if (entry.reason !== undefined) fork(Effect.asVoid(handle.interrupt))
        const settler = fork(
          Effect.exit(handle.await).pipe(
            // a timed-out attempt ends for its awaiter before its fiber has stopped: the handle's
            // interrupt of an ended job waits for that (its finalizers) and interrupts nothing.
            // Its duration ends with its handler: not with its last progress write, nor its settle
            Effect.tap(() => {
              events?.ended(claim)
              return handle.interrupt
            }),
            // its last progress report is written before the outcome (after it, the fence refuses
            // it), without waiting for the throttle's interval (no reporter: it never reported)
            Effect.tap(() =>
              reporting === undefined ? Effect.void : Effect.andThen(
                Fiber.interrupt(reporting),
                Effect.flatMap(handle.progress, (latest) => Option.isSome(latest) ? write(latest.value) : Effect.void)
              )
            ),
            Effect.flatMap((exit) => settle(entry, exit))
          )
        )
        track(settler)
      })

    const beatSpacing = Math.max(1, Math.floor(config.lease / 3))

    /**
     * The claims whose leases hold, with the store's time each runs from. A claim answered late (a
     * server slow to answer, this process paused: a third of a lease or more after the store took
     * its jobs) is renewed before its jobs start: past its lease a reaper may have taken a job back
     * and another consumer run it, and started here too it ran twice until this consumer's next
     * beat; nearly past it, the next beat came too late to hold it. A job the renewal finds lost is
     * another consumer's (nothing to write); one it could not renew, or whose cancel was asked for,
     * is given back (fenced: written only if the token still holds the job; a cancelled one ends so).
     */
    const current = (claims: ReadonlyArray<Claim>): Effect.Effect<Current> =>
      claims.length === 0 ? Effect.succeed({ claims, now: 0, renewed: false, back: [] }) : Effect.flatMap(store.now, (now) => {
        let oldest = now
        for (const claim of claims) oldest = Math.min(oldest, claim.job.startedAt ?? now)
        if (now - oldest < beatSpacing) return Effect.succeed<Current>({ claims, now, renewed: false, back: [] })
        const left = oldest + config.lease - now
        return Effect.map(
          Effect.exit(Effect.timeout(
            Effect.interruptible(store.heartbeat(claims.map((claim) => claim.token), config.lease)),
            left > 0 ? left : beatSpacing
          )),
          (beat): Current => {
            const lost = new Set(Exit.isSuccess(beat) ? beat.value.lost : [])
            const back = new Set(Exit.isSuccess(beat) ? [...beat.value.cancelled, ...beat.value.unrenewed?.tokens ?? []] : [])
            const fresh: Array<Claim> = []
            const given: Array<Claim> = []
            for (const claim of claims) {
              if (lost.has(claim.token)) continue
              if (Exit.isFailure(beat) || back.has(claim.token)) given.push(claim)
              else fresh.push(claim)
            }
            return { claims: fresh, now, renewed: true, back: given }
          }
        )
      })

    const track = (settler: Fiber.Fiber<void>) => {
      settlers.add(settler)
      settler.addObserver(() => settlers.delete(settler))
    }

    // --- the loops

    /**
     * Sleeps `millis` (at most a poll), or until a slot frees or the consumer changes: since `woken`
     * (read before the claim), so that a job that ended while the claim was in flight is not missed.
     */
    const nap = (millis: number, woken: number) =>
      Effect.raceFirst(Effect.sleep(Math.min(millis, config.poll)), wake.wait(config.poll, woken))

    const claimLoop = Effect.gen(function*() {
      // claims failed in a row (the store unreachable): the loop backs off. Not named `claiming`,
      // the stop flag its `while` reads (shadowed, the loop claimed on once its consumer stopped)
      const claimFailures = failureStreak("claiming durable jobs")
      while (claiming) {
        const woken = yield* wake.version
        const free = paused ? 0 : target - running.size + settling
        if (free <= 0) {
          held = 0
          yield* wake.wait(config.poll, woken)
          continue
        }
        // this consumer's own limit: claim only what may start now (a claim holds a lease)
        const now = monotonic()
        const allowed = limiter === undefined ? free : limiter.available(now, free)
        if (allowed <= 0) {
          held = free
          yield* nap(limiter!.nextAt() - now, woken)
          continue
        }
        const since = yield* store.version
        // claimed and registered as one step: an interruption between the two would strand claims
        const claimed = yield* Effect.uninterruptible(
          store.claim(
            turns === undefined
              ? { queues: config.queues, tasks, limit: Math.min(allowed, MAX_CLAIM), lease: config.lease }
              : { queues: turns.queues(), tasks, limit: Math.min(allowed, MAX_CLAIM), lease: config.lease, fair: true }
          ).pipe(
            Effect.tap(({ claims }) => {
              turns?.served(claims)
              // counted as they start, after the claim's round trip: counted at `now`, before it, a
              // slow claim's jobs left the window early and the next claim's could start within it
              const startedAt = limiter === undefined || claims.length === 0 ? now : monotonic()
              // the claims given back go after the others have started (not held up by their settle),
              // and before the next claim: given back on a fiber of their own, a job the next claim
              // took again was told Started, even Succeeded, before its GivenBack
              return Effect.flatMap(current(claims), ({ back, claims, now, renewed }) =>
                Effect.andThen(
                  Effect.forEach(claims, (claim) => {
                    limiter?.take(startedAt)
                    return start(claim, renewed ? now : Math.min(now, claim.job.startedAt ?? now))
                  }, { discard: true }),
                  Effect.forEach(back, giveBack, { concurrency: "unbounded", discard: true })
                ))
            })
          )
        ).pipe(Effect.catchCause((cause) =>
          Effect.flatMap(store.closed, (closed) => {
            // a closed store: not a failure to retry, the loop stops below
            if (closed) return Effect.succeed(undefined)
            return Effect.as(
              claimFailures.failed(cause, (failures) => {
                const delay = claimBackoff(config.poll, failures)
                // past the floor the backoff is the store's wait, which a change it hears ends early
                return delay <= CLAIM_RETRY_FLOOR ? `next try in ${delay} ms` : `next try within ${delay} ms, sooner if the store hears a change`
              }),
              undefined
            )
          })
        ))
        if (claimed === undefined) {
          held = 0
          // its store closed (every store's operations fail from then on, and its close wakes an
          // idle consumer): looked at only here, off the way of a claim that works
          if (yield* store.closed) return storeClosed()
          const delay = claimBackoff(config.poll, claimFailures.count())
          if (delay <= CLAIM_RETRY_FLOOR) yield* Effect.sleep(delay)
          else {
            // the store's wait, not a sleep: it ends at a change the store hears, so the store
            // coming back (the Postgres listener's reconnect says so to every waiter) or a job
            // enqueued here retries the claim then. Since the version read before the claim: a
            // change heard while the failing claim was in flight ends it too (read after the
            // failure, it was missed for a whole backoff). An awaiter's wait, naming no queues: a
            // consumer whose claim failed is not idle on them (`wait`'s idleOn: one whose claim
            // found nothing). Named, a Redis store's watch took the queues' wake-ups (markers) for
            // it from idle consumers elsewhere, whose jobs then waited for their orphan look (5 s)
            yield* Effect.sleep(CLAIM_RETRY_FLOOR)
            yield* store.wait(delay - CLAIM_RETRY_FLOOR, since)
          }
          continue
        }
        yield* claimFailures.worked
        const count = claimed.claims.length
        // held back by its queue's window, or its cap (`capped`: no time frees a slot, a settle does)
        const heldBack = claimed.limitedFor > 0 || claimed.capped === true
        held = heldBack ? free - count : count === Math.min(allowed, MAX_CLAIM) ? free - allowed : 0
        // a delayed job of its queues (a retry's backoff, a `delay`) becomes visible then: the
        // consumer sleeps until that time at most, not a whole poll past it. 0: a claim of a queue
        // with a per-key cap stopped at its budget of keys, the rest of their round is looked at now
        const due = claimed.dueIn === undefined ? config.poll : Math.min(config.poll, Math.max(1, claimed.dueIn))
        // the queue's shared limit (or its cap) held the claim back: nothing to claim before its window frees (a slot frees),
        // unless the limit changes (`setRateLimit` here or in another process: the store wakes its
        // waiters of the queue as for a new job) or another of its queues gets a job. The store's
        // wait, since the version read before the claim: a claim that took some jobs changed the
        // store itself, so it looks once more, and then waits (a change costs at most one claim).
        // Held back, it first naps CLAIM_RETRY_FLOOR: every enqueue to the queue is a change, and a
        // queue is limited because its jobs come faster than they may start, so without the floor
        // each held-back consumer claimed (and on Postgres locked the queue's row) once per enqueue;
        // with it, ten times a second at most, and a lift still reaches it within the floor
        if (heldBack) {
          const until = claimed.limitedFor > 0 ? Math.min(claimed.limitedFor, due) : due
          if (until <= CLAIM_RETRY_FLOOR) yield* nap(until, woken)
          else {
            yield* nap(CLAIM_RETRY_FLOOR, woken)
            if ((yield* wake.version) === woken) {
              yield* Effect.raceFirst(store.wait(until - CLAIM_RETRY_FLOOR, since, config.queues, tasks), wake.wait(config.poll, woken))
            }
          }
        } else if (count === 0) yield* Effect.raceFirst(store.wait(due, since, config.queues, tasks), wake.wait(config.poll, woken))
      }
    })

    const interrupt = (entry: Running, reason: "cancel" | "lost") => {
      entry.reason ??= reason
      const handle = entry.handle
      if (handle !== undefined) fork(Effect.asVoid(handle.interrupt))
    }

    const heartbeatLoop = Effect.gen(function*() {
      // tokens the last beat did not renew though others' were (their queue's node down, on a Redis
      // Cluster): each is lost a lease after its own last renewal, alone. A whole failed beat
      // dropped every job, the renewed queues' too, which then ran twice
      let stale = new Set<string>()
      let staleCause: unknown
      /** The last beat's failure, if it failed (none since a beat that was answered). */
      let beatFailure: Cause.Cause<unknown> | undefined
      /**
       * Interrupts, as lost, the running jobs whose lease (from its last renewal here, or its claim)
       * has ended by `now`: another consumer may be running them. Says why: the last beat left them
       * unrenewed or failed (its cause; a lease often ends at the look before the next beat, not at
       * the failed one), a beat that renewed other queues' leases is not a failure and this is its
       * only word; or no beat went in time (this process paused, its event loop blocked past a
       * lease), which nothing else would say while the job ran again elsewhere.
       */
      const expired = (now: number) =>
        Effect.suspend(() => {
          let unrenewed = 0
          let late = 0
          for (const [token, entry] of running) {
            if (entry.reason !== undefined || now - entry.since < config.lease) continue
            interrupt(entry, "lost")
            if (beatFailure !== undefined || stale.has(token)) unrenewed++
            else late++
          }
          const jobs = (n: number) => `${n} durable job${n === 1 ? "'s lease" : "s' leases"}`
          return Effect.andThen(
            unrenewed === 0 ? Effect.void : Effect.logWarning(
              `effect-workpool: ${jobs(unrenewed)} could not be renewed for a lease (their queue's store unreachable?); ` +
                `given up as lost, to run again elsewhere`,
              beatFailure ?? staleCause
            ),
            late === 0 ? Effect.void : Effect.logWarning(
              `effect-workpool: ${jobs(late)} ended before this consumer renewed them (this process paused past a lease: ` +
                `its event loop blocked by synchronous work?); given up as lost, to run again elsewhere`
            )
          )
        })
      /**
       * How long from `now` until the soonest lease of the jobs still running as this consumer's ends
       * (Infinity: none); 0 or less: one has ended, which `expired` gives up. The next beat goes then
       * at the latest (a beat woken early, by a cancel, and failing put the next a whole spacing
       * after it, past the leases' ends), and a beat that gets no answer fails then. Each job's own
       * lease: one claimed while a beat was in flight, or answered late, runs from its claim. A job
       * given up already (its finalizers still running) does not count: its lease long ended, it
       * gave a beat that got no answer a third of a lease, past the others' leases' ends.
       */
      const soonestEnd = (now: number) => {
        let end = Infinity
        for (const entry of running.values()) {
          if (entry.reason === undefined) end = Math.min(end, entry.since + config.lease - now)
        }
        return end
      }
      let cancels = yield* store.cancelVersion
      /**
       * When the last beat went out (this machine's clock): the next goes a third of a lease after
       * it, or at its answer if that came later. Counted from the answer, a store whose beats took
       * more than a third of a lease (healthy, slow) saw each beat sent too late for its answer to
       * come within the lease the consumer could count on: it timed out, and the consumer gave its
       * jobs up as lost. An idle loop's look counts as one here.
       */
      let beatAt = clock.currentTimeMillisUnsafe()
      /** When the last beat really went out (this machine's clock), for CANCEL_BEAT_FLOOR: not an idle look. */
      let sentAt = -Infinity
      while (true) {
        // a cancel requested since the last beat (here, or heard of from another process) beats at
        // once, or CANCEL_BEAT_FLOOR after the last beat if that was sooner (a storm of cancels), but
        // never later than the beat was due
        const due = running.size === 0
          ? beatSpacing
          : Math.min(soonestEnd(yield* store.now), beatAt + beatSpacing - clock.currentTimeMillisUnsafe())
        if (due > 0) {
          const waitFrom = clock.currentTimeMillisUnsafe()
          yield* store.waitCancel(due, cancels)
          const rest = Math.min(sentAt + CANCEL_BEAT_FLOOR, waitFrom + due) - clock.currentTimeMillisUnsafe()
          if (rest > 0) yield* Effect.sleep(rest)
        }
        cancels = yield* store.cancelVersion
        // a job whose lease has ended is given up now, not beaten for: one the last beats could not
        // renew (their store, or their queue's node, down), and one this process did not beat for
        // in time (paused: the event loop blocked past a lease). Another consumer's reaper may have
        // taken it back; beaten for, it ran on for the beat's round trip, and on for good if the
        // store had not reaped it yet, past the lease its consumer counted on. Nor are jobs given
        // up beaten for: the store has them as lost, or will once their leases are reaped
        const now = yield* store.now
        yield* expired(now)
        const tokens: Array<string> = []
        for (const [token, entry] of running) if (entry.reason !== "lost") tokens.push(token)
        if (tokens.length === 0) {
          // nothing to renew (none running, or only jobs given up): a job claimed from now on is
          // beaten for a third of a lease after this
          beatAt = clock.currentTimeMillisUnsafe()
          continue
        }
        // a heartbeat that gets no answer (a partition that drops packets, a frozen server) fails
        // when the leases it renews would end, as one that fails does; past that (only cancelled
        // jobs, still finishing), it gets a beat's time
        const left = soonestEnd(now)
        sentAt = beatAt = clock.currentTimeMillisUnsafe()
        // an exit, not a result: a beat interrupted under this loop (a Postgres store's query, when
        // its pool closes) is a failed beat; as a result it stopped the loop, silently
        const beat = yield* Effect.exit(
          Effect.timeout(store.heartbeat(tokens, config.lease), left < Infinity ? left : beatSpacing)
        )
        if (Exit.isSuccess(beat)) {
          beatFailure = undefined
          const unrenewed = beat.value.unrenewed
          stale = new Set(unrenewed?.tokens)
          staleCause = unrenewed?.error
          // renewed from `now`, read before the beat was sent: the store's renewal came after it
          for (const token of tokens) {
            const entry = running.get(token)
            if (entry !== undefined && !stale.has(token) && entry.since < now) entry.since = now
          }
          if (stale.size > 0) yield* expired(yield* store.now)
          for (const token of beat.value.lost) {
            const entry = running.get(token)
            if (entry !== undefined) interrupt(entry, "lost")
          }
          for (const token of beat.value.cancelled) {
            const entry = running.get(token)
            if (entry !== undefined) interrupt(entry, "cancel")
          }
        } else if (yield* store.closed) {
          // a busy consumer (no claim to fail) hears of its store's close here: its close wakes the beat
          return storeClosed()
        } else {
          beatFailure = beat.cause
          yield* expired(yield* store.now)
        }
      }
    })

    // a lease, and never below a read's bound: the bound is only against a reap with no answer (a
    // frozen server, a partition that drops packets), which kept the reaper silent for ever, the
    // jobs of dead consumers held. A reap that is merely slow (a backlog of expired jobs on a
    // loaded machine) must fit: cut at a short lease (100 ms), each reap took back a few hundred
    // rows and a backlog of 100,000 stayed held. Cut short, a reap takes back what its store's
    // statements or scripts per queue did, whole, or nothing of a queue; a retention batch deletes
    // what its statements or scripts did
    const maintenanceBound = Math.max(ServerTime.ASK_BOUND, config.lease)
    /** A maintenance step (a reap, a retention batch), bounded: one with no answer fails, and its loop goes on. */
    const bounded = <A>(what: string, effect: Effect.Effect<A, StoreError>) =>
      Effect.exit(Effect.timeoutOrElse(effect, {
        duration: maintenanceBound,
        orElse: () => Effect.fail(new Cause.TimeoutError(`${what} had no answer within ${maintenanceBound} ms`))
      }))
    const halfLease = Math.max(1, Math.floor(config.lease / 2))

    const reaperLoop = Effect.gen(function*() {
      // the jobs of a dead consumer stay held while reaps fail: an operator must hear of it
      const reaping = failureStreak("taking back expired durable jobs")
      while (true) {
        const reaped = yield* bounded("a reap", store.reap(backoff, reapPolicies, events?.reaped))
        if (Exit.isSuccess(reaped)) yield* reaping.worked
        else if (!(yield* store.closed)) {
          yield* reaping.failed(reaped.cause, () => "the jobs of a consumer that died stay held until a reap works")
        }
        yield* Effect.sleep(halfLease)
      }
    })

    // the queues' retention (JobQueue.setRetention), applied beside the reaper at the same pace: a
    // bounded batch at a time, the next at once while a batch came back full (a backlog, or a busy
    // queue ending more than a batch a round), so that it keeps up without one huge delete and
    // without holding the reaps back
    const retainLoop = Effect.gen(function*() {
      const retaining = failureStreak("deleting finished durable jobs past their queue's retention")
      while (true) {
        const retained = yield* bounded("a retention batch", store.retain(RETAIN_BATCH))
        if (Exit.isSuccess(retained)) {
          yield* retaining.worked
          if (retained.value.more) {
            yield* Effect.yieldNow
            continue
          }
        } else if (!(yield* store.closed)) {
          yield* retaining.failed(retained.cause, () => "finished jobs past their queue's retention stay until it works")
        }
        yield* Effect.sleep(halfLease)
      }
    })

    // a loop that stopped for any reason but the consumer's own shutdown would leave it silently
    // idle (no claims, or leases left to expire): say so loudly
    const loop = (name: string, effect: Effect.Effect<void, unknown, R>) =>
      fork(Effect.catchCause(effect, (cause) =>
        Cause.hasInterruptsOnly(cause)
          ? Effect.void
          : Effect.logError(`effect-workpool: a durable consumer's ${name} stopped`, cause)))
    const claimer = loop("claim loop", claimLoop)
    const heart = loop("heartbeat", heartbeatLoop)
    const reaper = loop("reaper", reaperLoop)
    const retainer = loop("retention", retainLoop)

    /**
     * Interrupts the running jobs but `exempt`, the job whose `shutdownNow` this is: it ends as its
     * handler ends. Interrupted with the others, it succeeded or was given back as its own fiber and
     * the stop's raced; given back, a job that stops its consumer ran again on the next consumer,
     * stopping that one too. The others are given back as `pool.shutdownNow` gives them back.
     */
    const interruptAllBut = (exempt: string) =>
      Effect.forEach(
        [...running.values()],
        (entry) => entry.claim.token === exempt || entry.handle === undefined ? Effect.void : Effect.asVoid(entry.handle.interrupt),
        { concurrency: "unbounded", discard: true }
      )

    /** `now`: the stop interrupts the running jobs, `exempt` (a job's claim token, see `interruptAllBut`) excepted. */
    const stop = (now: boolean, exempt?: string): Effect.Effect<void> => {
      // once: a second call waits for the first; a shutdownNow cuts a graceful one's drain short, at
      // once on a fiber of its own (as the first's): asked for from inside (\`stopAsked\`), the caller
      // is answered without waiting, and the cut was dropped with the wait. Its job's, past the
      // claim in flight (which the first stop ends): one of its jobs, starting, is not left running
      if (stopping !== undefined) {
        if (now) {
          fork(exempt === undefined ? Effect.asVoid(pool.shutdownNow) : Effect.andThen(
            Effect.timeoutOption(Fiber.await(claimer), STOP_SETTLE_GRACE),
            interruptAllBut(exempt)
          ))
        }
        return stopping
      }
      // on a fiber of its own: run on its first caller's, a stop asked for by an onEvent handler (or
      // a job's handler) ran on the fiber delivering the events (the job's), which the stop waits
      // for and then interrupts: it interrupted itself, and the consumer never terminated
      const stopper = fork(Effect.gen(function*() {
        claiming = false
        yield* Deferred.done(stopRequested, Exit.void)
        wake.notify()
        // a claim in flight is uninterruptible (claimed and registered as one step): one to a server
        // that never answers (frozen) held the close for ever. Past the grace the stop goes on; if
        // the claim ever returns, its jobs meet the closed pool and are given back (`start`)
        const claimed = yield* Effect.timeoutOption(Fiber.interrupt(claimer), STOP_SETTLE_GRACE)
        if (claimed._tag === "None") {
          yield* Effect.logWarning(
            `effect-workpool: a stopping durable consumer's claim did not end within ${STOP_SETTLE_GRACE} ms (its store unreachable?); the consumer stops without it`
          )
        }
        if (now && exempt === undefined) yield* pool.shutdownNow
        else {
          if (now) yield* interruptAllBut(exempt!)
          yield* pool.shutdown
        }
        if (settlers.size > 0) {
          const settled = yield* Effect.timeoutOption(
            Effect.gen(function*() {
              while (settlers.size > 0) yield* Fiber.await(settlers.values().next().value!)
            }),
            STOP_SETTLE_GRACE
          )
          if (settled._tag === "None") {
            const left = [...settlers]
            yield* Effect.logWarning(
              `effect-workpool: a stopping durable consumer's settles did not end within ${STOP_SETTLE_GRACE} ms (its store unreachable?); ` +
                `${left.length} job${left.length === 1 ? " is left to the reaper (its lease will expire)" : "s are left to the reaper (their leases will expire)"}`
            )
            // a store operation returns at once when interrupted (`Store`): a stop waits for none
            yield* Fiber.interruptAll(left)
          }
        }
        yield* Fiber.interruptAll([reaper, retainer, heart])
        // the events of its last jobs reach the handler, within the grace: a hung one stops no stop
        if (events !== undefined) yield* events.close(STOP_SETTLE_GRACE)
        yield* Deferred.done(terminated, Exit.void)
      }))
      return stopping = Fiber.join(stopper)
    }

    yield* Effect.addFinalizer(() => Effect.suspend(() => stop(false)))

    /** `effect`, counted meanwhile as a wait of `from`'s fibers for this consumer's stop. */
    const waitedBy = <A>(from: Node, effect: Effect.Effect<A>) =>
      Effect.acquireUseRelease(
        Effect.sync(() => void from.waitsOn.set(node, (from.waitsOn.get(node) ?? 0) + 1)),
        () => effect,
        () =>
          Effect.sync(() => {
            const count = from.waitsOn.get(node)! - 1
            if (count === 0) from.waitsOn.delete(node)
            else from.waitsOn.set(node, count)
          })
      )

    /**
     * A stop asked for by the user (`shutdown`, `shutdownNow`). Asked for from inside this consumer
     * (one of its own jobs, or its onEvent handler, or a fiber either forked), it starts the stop and
     * returns: the stop waits for that job (its drain) or that handler (its events), which waited
     * for the stop. The job then waited out `shutdownTimeout` and was given back, though it had
     * finished; the handler its grace, and was interrupted with the events after it. The same from
     * inside another consumer whose stop this one's waits for, through the stops their fibers wait
     * for (two consumers whose jobs stop each other): each waited out its `shutdownTimeout`.
     * A job's `shutdownNow` leaves that job running (`interruptAllBut`).
     */
    const stopAsked = (now: boolean) =>
      Effect.withFiber((fiber) => {
        const place = fiber.getRef(Inside)
        const job = ownJob(place)
        const stopped = stop(now, job)
        if (place === undefined) return stopped
        if (place.node === node) return job !== undefined || place.token === undefined ? Effect.void : stopped
        return reaches(node, place.node) ? Effect.void : waitedBy(place.node, stopped)
      })

    /**
     * The claim token of the running job of this consumer that `place` is inside, if any. A fiber a
     * job forked detached and left running past its end is not inside any more: the stop does not
     * wait for it.
     */
    const ownJob = (place: Place | undefined) =>
      place?.node === node && place.token !== undefined && running.has(place.token) ? place.token : undefined

    /**
     * The consumer's termination. Awaited by one of its own jobs, it waits for itself: once the
     * stop starts, the job (still running) is interrupted, and given back as the stop's other jobs
     * are (it waited out `shutdownTimeout`). From inside another consumer, a wait the stops asked
     * there see.
     */
    const awaitTermination = Effect.withFiber((fiber) => {
      // ended: answered in the step it is asked in, as a Deferred's await is
      if (Deferred.isDoneUnsafe(terminated)) return Exit.void
      const place = fiber.getRef(Inside)
      const job = ownJob(place)
      // asked by a fiber the job forked detached, which the stop does not wait for once the job has ended
      if (job !== undefined) return Effect.andThen(halted, Effect.suspend(() => running.has(job) ? Effect.interrupt : Deferred.await(terminated)))
      return place === undefined || place.node === node ? Deferred.await(terminated) : waitedBy(place.node, Deferred.await(terminated))
    })

    const setTarget = (concurrency: number) =>
      Effect.tap(pool.resize(concurrency), () =>
        Effect.sync(() => {
          target = concurrency
          wake.notify()
        }))
    // the user's resize and a reaction to the thread pool's take turns: a reaction under way when
    // the user's number arrives would otherwise overwrite it once `following` had been read
    const resizing = yield* Semaphore.make(1)
    if (following) {
      const slots = config.threads!.pool.slots
      const unfollow = config.threads!.pool.onResize(() => {
        if (following) fork(Effect.ignore(resizing.withPermit(Effect.suspend(() => following ? setTarget(slots()) : Effect.void))))
      })
      yield* Effect.addFinalizer(() => Effect.sync(unfollow))
    }

    // the slots a limit keeps idle are the pool's `rateLimited`: in its stats and its gauge alike
    schedulerOf(pool).heldOutside = () => held

    return {
      stats: pool.stats,
      changes: pool.changes,
      setRateLimit: (rateLimit) =>
        Effect.flatMap(
          checkPoolOptions(() => rateLimit === undefined ? undefined : RateLimits.check("rateLimit", rateLimit)),
          (limit) =>
            Effect.sync(() => {
              if (limit === undefined) limiter = undefined
              else if (limiter === undefined) limiter = new RateLimits.RateLimiter(limit)
              else limiter.set(limit)
              wake.notify()
            })
        ),
      pause: Effect.andThen(Effect.sync(() => {
        paused = true
        // out of the store's wait, into its own for the resume: a store stops listening for a queue
        // nobody waits on (Postgres UNLISTENs it), so a paused consumer costs nothing per enqueue
        wake.notify()
      }), pool.pause),
      resume: Effect.andThen(pool.resume, Effect.sync(() => {
        paused = false
        wake.notify()
      })),
      // the consumer's own number from now on: the thread pool, the user's, keeps its size. A
      // refused number changes nothing (the consumer goes on following)
      resize: (concurrency) =>
        resizing.withPermit(Effect.uninterruptible(Effect.tap(setTarget(concurrency), () =>
          Effect.sync(() => {
            following = false
          })))),
      shutdown: stopAsked(false),
      shutdownNow: stopAsked(true),
      awaitTermination
    } satisfies Consumer
  }))
