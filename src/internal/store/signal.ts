/**
 * A wake-up for waiters in this process: `notify` wakes everyone waiting; `wait(millis)` returns
 * at the next `notify` or after `millis` (on the waiting fiber's Clock), whichever comes first.
 * Stores use it so that a change made in this process wakes its consumers and awaiters at once;
 * changes made by other processes are seen when the wait times out (the poll), or when the store
 * hears of them (Postgres: LISTEN).
 *
 * `version` counts the notifications. A waiter that read it before looking at the store passes it
 * to `wait`, which then returns at once if a change came in between: with a store that answers
 * asynchronously (Postgres), a change can land while the look is in flight, and its wake-up would
 * otherwise be missed until the next poll.
 *
 * @internal
 */
import { Effect } from "effect"

export interface Signal {
  readonly notify: () => void
  /** True while a fiber waits. */
  readonly waiting: () => boolean
  readonly version: Effect.Effect<number>
  readonly wait: (millis: number, since?: number) => Effect.Effect<void>
}

/** `onWait` runs when a fiber starts waiting (SQLite starts watching the file for it). */
export const makeSignal = (onWait?: () => void): Signal => {
  let waiters: Array<() => void> = []
  let version = 0
  const notify = () => {
    version++
    if (waiters.length === 0) return
    const woken = waiters
    waiters = []
    for (const wake of woken) wake()
  }
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
  const wait = (millis: number, since?: number) =>
    Effect.suspend(() => Effect.raceFirst(next(since ?? version), Effect.sleep(millis)))
  return { notify, waiting: () => waiters.length > 0, version: Effect.sync(() => version), wait }
}
