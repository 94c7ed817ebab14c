/**
 * Retry delays of durable jobs, replayed from the stored attempt count: a fresh schedule is stepped
 * `attempt` times, the time each step sees being the sum of the delays before it (as Effect's
 * `PersistedQueue` does), so every process computes the same delay for the same attempt.
 *
 * The retry engineer's `src/internal/retry.ts` (retries for in-process pools) has the same replay
 * as `delayOf`; this module is the durable side's until the two are merged.
 *
 * @internal
 */
import { Cause, Duration, Effect, Pull, Schedule } from "effect"

type Step = (now: number, input: unknown) => Pull.Pull<[unknown, Duration.Duration], unknown, unknown>

/**
 * The delay in ms before retry number `attempt` (1 for the first) after a failure with `error`,
 * or `undefined` when the schedule has given up by then (or fails, or is not synchronous).
 */
export const delayOf = (schedule: Schedule.Schedule<unknown, unknown>, attempt: number, error: unknown): number | undefined => {
  const made = Effect.runSyncExit(Schedule.toStep(schedule) as Effect.Effect<Step>)
  if (made._tag === "Failure") return undefined
  const step = made.value
  let now = 0
  let delay: number | undefined = undefined
  for (let i = 1; i <= attempt; i++) {
    const exit = Effect.runSyncExit(step(now, error))
    if (exit._tag === "Failure") return undefined
    const millis = Duration.toMillis(exit.value[1])
    if (!(millis < Infinity)) return undefined
    delay = Math.max(0, millis)
    now += delay
  }
  return delay
}

/** The delays before retries 1..count, for a store's reaper (which cannot run a Schedule). */
export const delays = (schedule: Schedule.Schedule<unknown, unknown>, count: number, error: unknown): Array<number> => {
  const out: Array<number> = []
  for (let attempt = 1; attempt <= count; attempt++) {
    const delay = delayOf(schedule, attempt, error)
    if (delay === undefined) break
    out.push(delay)
  }
  return out.length === 0 ? [0] : out
}

/** Whether a failed attempt's cause may be retried at all: interruptions never are. */
export const retryable = (cause: Cause.Cause<unknown>): boolean => !Cause.hasInterrupts(cause)
