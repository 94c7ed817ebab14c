/**
 * Retries: what a job's retry policy decides when one of its attempts fails. A job with a policy
 * carries an `Attempts`, its `AttemptHook`: the scheduler asks it where an attempt ends and knows
 * nothing more of retries. The wait itself is the scheduler's `hold` (its own deadline machinery),
 * so a job waiting for its retry holds no worker slot and no fiber.
 *
 * A schedule is stepped synchronously, without a fiber: `Schedule.toStep` gives its step function,
 * run with the pool's services (its Clock and Random). `delayOf` replays a fresh schedule up to an
 * attempt count, for executors that keep only that count (durable jobs, in another process).
 *
 * @internal
 */
import { Cause, Context, Duration, Effect, Exit, Pull, Schedule } from "effect"
import type { JobTimeout } from "../PoolError.ts"
import * as config from "./config.ts"
import type { AttemptHook, Job } from "./scheduler.ts"

/** What decides whether a failed attempt is retried. */
export interface Policy {
  /** The delays; without one, a retry is due at once (as with `Effect.retry({ times })`). */
  readonly schedule: Schedule.Schedule<unknown, unknown> | undefined
  /** At most this many retries; Infinity when only the schedule and `while` bound them. */
  readonly times: number
  readonly while: ((error: unknown, cause: Cause.Cause<unknown>) => boolean) | undefined
}

type Step = (now: number, input: unknown) => Pull.Pull<[unknown, Duration.Duration], unknown, unknown>

/**
 * A job's retry state, made when the job is submitted with a policy: the retry module, plugged into
 * the job as its `AttemptHook`. Everything a retry changes in the scheduler goes through `hold`.
 */
export class Attempts implements AttemptHook {
  readonly policy: Policy
  /** Milliseconds a job may wait in the queue, each time it enters it; 0 means none. */
  readonly queueTimeout: number
  /** Failed attempts that were retried. */
  retries = 0
  /** The schedule's step, made at the first failure: it carries the schedule's state. */
  step: Step | undefined = undefined
  /**
   * A running attempt that timed out and will be retried once it has stopped: its failure, and the
   * delay decided at its deadline. Cleared when the job is cancelled meanwhile.
   */
  private timedOutWith: Exit.Failure<never, unknown> | undefined = undefined
  private delay = 0
  constructor(policy: Policy, queueTimeout: number) {
    this.policy = policy
    this.queueTimeout = queueTimeout
  }

  get attempt(): number {
    return this.retries + 1
  }

  /** An attempt stopped: the job waits for its retry, or ends as any job would. */
  stopped(job: Job, exit: Exit.Exit<any, any>, now: number): void {
    const scheduler = job.scheduler
    const timedOut = this.timedOutWith
    if (timedOut !== undefined) {
      // timed out at its deadline, where its retry was decided
      this.timedOutWith = undefined
      if (scheduler.stoppingPool) scheduler.settle(job, timedOut, "timedOut", now)
      else this.retryAfter(job, this.delay)
      return
    }
    // an immediate shutdown retries nothing: nothing would run it
    // a schedule sees the clock's wall time (a cron schedule reads it), not the scheduler's monotonic one
    const delay = scheduler.stoppingPool ? undefined : next(this, exit, scheduler.wallTime(), scheduler.context)
    if (typeof delay === "number") this.retryAfter(job, delay)
    else scheduler.settleStopped(job, delay ?? exit, now)
  }

  /** A timed-out attempt to be retried stops first, on its worker: `stopped` then retries it. */
  timedOut(job: Job, exit: Exit.Failure<never, JobTimeout>, now: number): boolean | Exit.Failure<never, unknown> {
    const scheduler = job.scheduler
    if (scheduler.stoppingPool) return false
    const delay = next(this, exit, scheduler.wallTime(), scheduler.context)
    // the policy failed: the job ends timed out, with why beside its timeout (as `stopped` does)
    if (typeof delay === "object") return delay
    if (typeof delay !== "number") return false
    this.timedOutWith = exit
    this.delay = delay
    return true
  }

  get attemptTimedOut(): boolean {
    return this.timedOutWith !== undefined
  }

  /** A timed-out attempt still stopping when its job is cancelled is not retried: it ends interrupted. */
  cancelled(): void {
    this.timedOutWith = undefined
  }

  private retryAfter(job: Job, delay: number): void {
    this.retries++
    job.scheduler.retried++
    job.scheduler.hold(job, delay)
  }
}

/**
 * What a failed attempt leads to: the delay in milliseconds before the job goes back to the queue,
 * `undefined` to end the job with `exit`, or the Exit to end it with instead when the policy itself
 * failed (its `while` threw, its schedule failed or did not step synchronously).
 *
 * Never retried: a success, and any interruption (cancellation, shutdown, the job's own).
 */
export const next = (
  attempts: Attempts,
  exit: Exit.Exit<unknown, unknown>,
  now: number,
  context: Context.Context<never>
): number | undefined | Exit.Failure<never, unknown> => {
  if (exit._tag === "Success") return undefined
  const cause = exit.cause
  if (Cause.hasInterrupts(cause)) return undefined
  const policy = attempts.policy
  if (attempts.retries >= policy.times) return undefined
  const error = Cause.squash(cause)
  try {
    if (policy.while !== undefined && !policy.while(error, cause)) return undefined
  } catch (defect) {
    return policyFailed(cause, Cause.die(defect))
  }
  if (policy.schedule === undefined) return 0
  if (attempts.step === undefined) {
    const made = makeStep(policy.schedule, context)
    if (made._tag === "Failure") return policyFailed(cause, made.cause)
    attempts.step = made.value
  }
  const delay = stepOnce(attempts.step, now, error, context)
  return typeof delay === "object" ? policyFailed(cause, delay) : delay
}

/**
 * The delay before retry number `attempt` (1 for the first) of a job that failed with `cause`,
 * replayed from a fresh schedule, or `undefined` if the policy gives up there. As in Effect's
 * `PersistedQueue`, the time a replayed step sees is the sum of the delays before it, so every
 * process computes the same delay from a stored attempt count.
 *
 * A policy that fails (a throwing `while`, a failing or asynchronous schedule) gives up.
 */
export const delayOf = (
  policy: Policy,
  attempt: number,
  cause: Cause.Cause<unknown>,
  context: Context.Context<never> = Context.empty()
): number | undefined => {
  const attempts = new Attempts(policy, 0)
  let now = 0
  let delay: number | undefined | Exit.Exit<never, unknown> = undefined
  for (let i = 1; i <= attempt; i++) {
    delay = next(attempts, Exit.failCause(cause), now, context)
    if (typeof delay !== "number") return undefined
    attempts.retries++
    now += delay
  }
  return delay as number | undefined
}

const makeStep = (schedule: Schedule.Schedule<unknown, unknown>, context: Context.Context<never>) =>
  Effect.runSyncExitWith(context)(Schedule.toStep(schedule) as Effect.Effect<Step>)

/** One step: its delay in milliseconds, `undefined` when the schedule is done, or why it failed. */
const stepOnce = (
  step: Step,
  now: number,
  input: unknown,
  context: Context.Context<never>
): number | undefined | Cause.Cause<unknown> => {
  const exit = Effect.runSyncExitWith(context)(step(now, input))
  if (exit._tag === "Failure") return Pull.isDoneCause(exit.cause) ? undefined : exit.cause
  const millis = Duration.toMillis(exit.value[1])
  // an infinite delay never comes: the schedule has given up
  return millis < Infinity ? Math.max(0, millis) : millis === Infinity ? undefined : 0
}

/** The job ends with its own failure and, as a defect, why its retry policy could not decide. */
const policyFailed = (cause: Cause.Cause<unknown>, policyCause: Cause.Cause<unknown>): Exit.Failure<never, unknown> =>
  Exit.failCause(Cause.combine(
    cause,
    Cause.die(new Error(`the job's retry policy failed: ${Cause.pretty(policyCause)}`))
  )) as Exit.Failure<never, unknown>

/**
 * Checks a `retry` option: a `Schedule`, or `{ schedule?, times?, while? }`. `field` names it in the
 * error (`retry`, `retry.times`, ...).
 */
export const policy = (field: string, value: unknown): Policy => {
  if (Schedule.isSchedule(value)) {
    return { schedule: value as Schedule.Schedule<unknown, unknown>, times: Infinity, while: undefined }
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return config.fail(field, value, "expected a Schedule or { schedule?, times?, while? }")
  }
  const options = value as { readonly schedule?: unknown; readonly times?: unknown; readonly while?: unknown }
  config.onlyKeys(`${field}.`, options, ["schedule", "times", "while"])
  const schedule = options.schedule
  if (schedule !== undefined && !Schedule.isSchedule(schedule)) {
    config.fail(`${field}.schedule`, schedule, "expected a Schedule, such as Schedule.exponential(\"1 second\")")
  }
  const times = options.times
  if (times !== undefined && (typeof times !== "number" || !(times === Infinity || (Number.isInteger(times) && times >= 0)))) {
    config.fail(`${field}.times`, times, "expected a whole number of at least 0, or Infinity")
  }
  const predicate = options.while
  if (predicate !== undefined && typeof predicate !== "function") {
    config.fail(`${field}.while`, predicate, "expected a function (error, cause) => boolean")
  }
  return {
    schedule: schedule as Schedule.Schedule<unknown, unknown> | undefined,
    times: (times as number | undefined) ?? Infinity,
    while: predicate as Policy["while"]
  }
}
