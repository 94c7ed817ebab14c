/**
 * A consumer's lifecycle events (`ConsumeOptions.onEvent`): what its jobs did, told in order to the
 * user's handler through a bounded buffer on a fiber of their own. The consumer calls `emit` where an
 * outcome is already decided; the events never touch its loops: a handler that is slow, fails, dies
 * or hangs costs at most the buffer, then events are dropped (counted, `Dropped`).
 *
 * Without a handler there is no `Events` at all (`make` returns undefined): the consumer's calls are
 * `events?.x(...)`, so a job allocates nothing for them.
 *
 * @internal
 */
import { Cause, Data, Effect, Fiber, Queue } from "effect"
import type * as JobQueue from "../../JobQueue.ts"
import type { Claim, ReapedJob, Settled, Settlement } from "../store/model.ts"

export type JobEvent = JobQueue.JobEvent
export const JobEvent = Data.taggedEnum<JobEvent>()

/** How many events wait for a slow handler before the next ones are dropped (counted). */
export const EVENT_BUFFER = 1024

/** How many events `event` stands for: a Dropped, those it counts. */
const weightOf = (event: JobEvent): number => event._tag === "Dropped" ? event.count : 1

export type Handler<R> = (event: JobEvent) => Effect.Effect<unknown, unknown, R>

const refOf = (claim: Claim): JobQueue.JobEventRef => {
  const job = claim.job
  return { id: job.id, queue: job.queue, task: job.task, attempt: job.attempts }
}

export interface Events {
  readonly started: (claim: Claim) => void
  /** The attempt's handler ended: its duration ends here, not once its outcome is written (a slow or retried settle). */
  readonly ended: (claim: Claim) => void
  /**
   * An attempt's end: its settlement, and what the store wrote of it (false: fenced, the lease was
   * someone else's by then; "cancelled": a cancel asked for while it ran, not heard yet, ended it
   * instead of its retry or release; undefined: nothing was written, its lease lost already, or its
   * settlement undefined too: a settle that failed for good).
   */
  readonly settled: (
    claim: Claim,
    failure: Cause.Cause<unknown> | undefined,
    settlement: Settlement | undefined,
    written: Settled | undefined
  ) => void
  /**
   * A claim given back unstarted or stopped (the consumer's stop, a pool that refused it), and what
   * the store wrote of it: "cancelled", a cancel asked for meanwhile ended it so (told `Cancelled`,
   * not `GivenBack`: it never runs again).
   */
  readonly givenBack: (claim: Claim, written?: Settled) => void
  /**
   * The attempt's settle is over. Not told yet (its settle interrupted by a stop past its grace):
   * LeaseLost, as nothing of it was written and it runs again once reaped; a Started without an
   * end left a handler counting jobs in flight wrong for good.
   */
  readonly over: (claim: Claim) => void
  readonly reaped: (job: ReapedJob) => void
  /** Delivers what is buffered (within `grace` ms), then stops. */
  readonly close: (grace: number) => Effect.Effect<void>
}

/**
 * What a handler returned, as the Effect it should have been: a handler typed loosely (a plain
 * `console.log`, an async function) returned undefined or a Promise, which the fiber delivering the
 * events died of, silently, every later event lost.
 */
const effectOf = (value: unknown): Effect.Effect<unknown, unknown, any> =>
  Effect.isEffect(value)
    ? value
    : Effect.die(new TypeError(`onEvent returned ${value === null ? "null" : typeof value}, not an Effect: the event is skipped`))

/**
 * The events of one consumer, delivered by `fork` (the consumer's, with its services) to `handler`.
 * `now`: this consumer's clock, for durations and the times of retries and snoozes.
 */
export const make = <R>(
  handler: Handler<R> | undefined,
  now: () => number,
  fork: (effect: Effect.Effect<void, never, R>) => Fiber.Fiber<void>
): Events | undefined => {
  if (handler === undefined) return undefined
  const queue = Effect.runSync(Queue.make<JobEvent, Cause.Done>({ capacity: EVENT_BUFFER, strategy: "dropping" }))
  /** Each running attempt's start, and its end once its handler ended (its settle under way). */
  const attempts = new Map<string, { readonly startedAt: number; endedAt: number | undefined }>()
  let dropped = 0
  let warned = false
  /** Set once the stop has interrupted the handler: no event reaches it any more, each is counted in a log line. */
  let closed = false
  /** Events made after `closed`, not said yet (a claim that came back after the stop gave its jobs back). */
  let late = 0
  const emit = (event: JobEvent) => {
    if (closed) return lateEvent()
    // the count goes where the lost events were: before the next one that fits, with it or not at
    // all. Alone in a freed slot, the event after it found none: a handler that had fallen behind got
    // nothing but counts (each slot it freed taken by one) for as long as the jobs outpaced it
    // Nor is it reset unless it went in: a buffer ended by the stop takes none, and the count of the
    // events before it is the stop's to say (`close`)
    if (dropped > 0) {
      if (Queue.sizeUnsafe(queue) > EVENT_BUFFER - 2 || !Queue.offerUnsafe(queue, JobEvent.Dropped({ count: dropped }))) {
        return void dropped++
      }
      dropped = 0
    }
    if (!Queue.offerUnsafe(queue, event)) dropped++
  }
  const lost = (count: number, why: string) =>
    Effect.logWarning(`effect-workpool: a stopped durable consumer's onEvent handler was not told ${count} event${count === 1 ? "" : "s"}: ${why}`)
  // one line for a burst of them (a claim's jobs given back together), not one per event
  const lateEvent = () => {
    if (late++ > 0) return
    fork(Effect.andThen(Effect.yieldNow, Effect.suspend(() => {
      const count = late
      late = 0
      return lost(count, "made after its stop")
    })))
  }
  const deliver = (event: JobEvent) =>
    Effect.catchCause(Effect.suspend(() => effectOf(handler(event))), (cause) => {
      if (warned || Cause.hasInterruptsOnly(cause)) return Effect.void
      warned = true
      return Effect.logWarning(
        "effect-workpool: a durable consumer's onEvent handler failed; the event is skipped (said once per consumer)",
        cause
      )
    })
  /** The events the delivery under way stands for (a Dropped its count): lost too if the stop interrupts it. */
  let delivering = 0
  const delivered = Effect.sync(() => void (delivering = 0))
  // the handler caught up: the events lost since the last one it got are told now (else only once
  // a later event came, which a consumer gone idle never makes)
  const caughtUp = Effect.suspend(() => {
    if (dropped === 0 || Queue.sizeUnsafe(queue) > 0) return Effect.void
    const count = dropped
    dropped = 0
    delivering = count
    return Effect.andThen(deliver(JobEvent.Dropped({ count })), delivered)
  })
  const drainer = fork(Effect.catchCause(
    Effect.forever(Effect.flatMap(Queue.take(queue), (event) => {
      delivering = weightOf(event)
      return Effect.andThen(deliver(event), Effect.andThen(delivered, caughtUp))
    })),
    () => Effect.void
  ))
  const durationOf = (claim: Claim) => {
    const times = attempts.get(claim.token)
    attempts.delete(claim.token)
    return times === undefined ? 0 : Math.max(0, (times.endedAt ?? now()) - times.startedAt)
  }
  return {
    started: (claim) => {
      attempts.set(claim.token, { startedAt: now(), endedAt: undefined })
      emit(JobEvent.Started(refOf(claim)))
    },
    ended: (claim) => {
      const times = attempts.get(claim.token)
      if (times !== undefined) times.endedAt ??= now()
    },
    settled: (claim, failure, settlement, written) => {
      const ref = refOf(claim)
      const duration = durationOf(claim)
      if (settlement === undefined || written === false) return emit(JobEvent.LeaseLost(ref))
      // the store's end, not the one asked for: a Failed with a retry, or a Snoozed, that never comes
      if (written === "cancelled") return emit(JobEvent.Cancelled(ref))
      switch (settlement._tag) {
        case "Release":
          return emit(
            settlement.delay === undefined
              ? JobEvent.GivenBack(ref)
              : JobEvent.Snoozed({ ...ref, runAt: new Date(now() + settlement.delay) })
          )
        case "Retry":
          return emit(JobEvent.Failed({
            ...ref,
            error: failure ?? Cause.empty,
            duration,
            willRetry: true,
            runAt: new Date(now() + settlement.delay)
          }))
        case "Final":
          if (settlement.state === "succeeded") return emit(JobEvent.Succeeded({ ...ref, duration }))
          if (settlement.state === "cancelled") return emit(JobEvent.Cancelled(ref))
          {
            const error = failure ?? Cause.die("its result could not be encoded")
            emit(JobEvent.Failed({ ...ref, error, duration, willRetry: false, runAt: undefined }))
            return emit(JobEvent.Dead({ ...ref, error }))
          }
      }
    },
    over: (claim) => {
      if (attempts.delete(claim.token)) emit(JobEvent.LeaseLost(refOf(claim)))
    },
    givenBack: (claim, written) => {
      attempts.delete(claim.token)
      emit(written === "cancelled" ? JobEvent.Cancelled(refOf(claim)) : JobEvent.GivenBack(refOf(claim)))
    },
    reaped: (job) =>
      emit(JobEvent.Reaped({
        id: job.id,
        queue: job.queue,
        task: job.task,
        attempt: job.attempt,
        outcome: job.outcome,
        runAt: job.runAt === undefined ? undefined : new Date(job.runAt)
      })),
    // interrupted without waiting for it: a handler that hangs uninterruptibly held the stop for good.
    // What it was not told (still buffered, or dropped since its last Dropped) is counted in a log
    // line, as it can get no Dropped event any more: lost without a word, a slow handler's counts
    // (jobs ended, deaths) were wrong with nothing to say so
    close: (grace) =>
      Effect.andThen(
        Queue.end(queue),
        Effect.andThen(
          Effect.timeoutOption(Fiber.await(drainer), grace),
          Effect.suspend(() => {
            closed = true
            // read before the interrupt: the drainer, interrupted, may yet end its delivery's step
            const untold = dropped + delivering
            dropped = delivering = 0
            drainer.interruptUnsafe()
            return Effect.flatMap(Effect.orElseSucceed(Queue.clear(queue), () => []), (left) => {
              const count = left.reduce((n, event) => n + weightOf(event), untold)
              return count === 0
                ? Effect.void
                : lost(count, `it did not take them within the stop's grace (${grace} ms), or was interrupted taking one`)
            })
          })
        )
      )
  }
}
