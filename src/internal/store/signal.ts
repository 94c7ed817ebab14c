/**
 * A wake-up for waiters in this process: `notify` wakes everyone waiting; `wait(millis)` returns
 * at the next `notify` or after `millis` (on the waiting fiber's Clock), whichever comes first.
 * Stores use it so that a change made in this process wakes its consumers and awaiters at once;
 * changes made by other processes are seen when the wait times out (the poll).
 *
 * @internal
 */
import { Effect } from "effect"

export interface Signal {
  readonly notify: () => void
  readonly wait: (millis: number) => Effect.Effect<void>
}

export const makeSignal = (): Signal => {
  let waiters: Array<() => void> = []
  const notify = () => {
    if (waiters.length === 0) return
    const woken = waiters
    waiters = []
    for (const wake of woken) wake()
  }
  const next = Effect.callback<void>((resume) => {
    const wake = () => resume(Effect.void)
    waiters.push(wake)
    return Effect.sync(() => {
      const index = waiters.indexOf(wake)
      if (index >= 0) waiters.splice(index, 1)
    })
  })
  const wait = (millis: number) => Effect.raceFirst(next, Effect.sleep(millis))
  return { notify, wait }
}
