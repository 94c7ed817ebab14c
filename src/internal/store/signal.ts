/**
 * A wake-up for waiters in this process: `notify` wakes everyone waiting; `wait(millis)` returns
 * at the next `notify` or after `millis` (on the waiting fiber's Clock), whichever comes first.
 * Stores use it so that a change made in this process wakes its consumers and awaiters at once;
 * changes made by other processes are seen when the wait times out (the poll), or when the store
 * hears of them (Postgres: LISTEN).
 *
 * `notifyIn(millis)` is a change that takes effect later: a delayed job becomes visible then. The
 * waiters wake at that time, as at a `notify` then, not at once (an idle consumer woken now would
 * only look, find nothing and sleep again). Only the soonest such time is kept: a consumer woken
 * at it claims, and its claim says when its next delayed job is due.
 *
 * `version` counts the notifications. A waiter that read it before looking at the store passes it
 * to `wait`, which then returns at once if a change came in between: with a store that answers
 * asynchronously (Postgres), a change can land while the look is in flight, and its wake-up would
 * otherwise be missed until the next poll.
 *
 * @internal
 */
import { type Clock, Effect } from "effect"
import { monotonicMillis } from "../rateLimit.ts"

export interface Signal {
  readonly notify: () => void
  /** A change in `millis` (a delayed job's time): waiters wake then (needs `clock`). */
  readonly notifyIn: (millis: number) => void
  /** True while a fiber waits. */
  readonly waiting: () => boolean
  readonly version: Effect.Effect<number>
  readonly wait: (millis: number, since?: number) => Effect.Effect<void>
}

export interface SignalOptions {
  /** Runs when a fiber starts waiting (SQLite starts watching the file for it). */
  readonly onWait?: (() => void) | undefined
  /**
   * The clock of `notifyIn`'s times (monotonic: a wall clock set back does not move them): the
   * store's, which its waiters share. Without one, `notifyIn` is a `notify`.
   */
  readonly clock?: Clock.Clock | undefined
}

export const makeSignal = (options: SignalOptions = {}): Signal => {
  const { clock, onWait } = options
  let waiters: Array<() => void> = []
  let version = 0
  /** When the soonest `notifyIn` is due (monotonic ms of `clock`); Infinity for none. */
  let dueAt = Infinity
  const wakeAll = () => {
    if (waiters.length === 0) return
    const woken = waiters
    waiters = []
    for (const wake of woken) wake()
  }
  const notify = () => {
    version++
    wakeAll()
  }
  const notifyIn = (millis: number) => {
    if (clock === undefined || !(millis > 0)) return notify()
    const at = monotonicMillis(clock) + millis
    if (at >= dueAt) return
    dueAt = at
    // the waiters sleep again, to the new time (no change yet: the version stays)
    wakeAll()
  }
  /** Returns at a notify, or when `notifyIn` has a new time (the waiter then sleeps again). */
  const next = (since: number) =>
    Effect.callback<void>((resume) => {
      if (version !== since) return resume(Effect.void)
      const wake = () => resume(Effect.void)
      waiters.push(wake)
      onWait?.()
      return Effect.sync(() => {
        const index = waiters.indexOf(wake)
        if (index >= 0) waiters.splice(index, 1)
      })
    })
  const plain = (millis: number, since?: number) =>
    Effect.suspend(() => Effect.raceFirst(next(since ?? version), Effect.sleep(millis)))
  // with delayed changes: a loop that wakes at whichever comes first, the end of `millis`, a
  // notify, or the soonest delayed change (which it turns into a notify, for every waiter)
  const timed = (millis: number, since?: number) =>
    Effect.suspend(() => {
      const from = since ?? version
      const end = monotonicMillis(clock!) + millis
      const loop: Effect.Effect<void> = Effect.suspend(() => {
        if (version !== from) return Effect.void
        const now = monotonicMillis(clock!)
        if (dueAt <= now) {
          dueAt = Infinity
          notify()
          return Effect.void
        }
        if (now >= end) return Effect.void
        return Effect.andThen(Effect.raceFirst(next(from), Effect.sleep(Math.min(end, dueAt) - now)), loop)
      })
      return loop
    })
  return {
    notify,
    notifyIn,
    waiting: () => waiters.length > 0,
    version: Effect.sync(() => version),
    wait: clock === undefined ? plain : timed
  }
}
