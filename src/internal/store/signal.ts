/**
 * A wake-up for waiters in this process: `notify` wakes everyone waiting; `wait(millis)` returns
 * at the next `notify` or after `millis` (on the waiting fiber's Clock), whichever comes first.
 * Stores use it so that a change made in this process wakes its consumers and awaiters at once;
 * changes made by other processes are seen when the wait times out (the poll), or when the store
 * hears of them (Postgres: LISTEN).
 *
 * A change may name its key (Redis: the queue it changed), and a waiter the keys it waits for (a
 * consumer: its queues): `notify(key)` wakes the waiters of that key and those of every key (no
 * keys: an awaiter), not the consumers of other queues, which would each claim for nothing. A
 * `notify()` without a key wakes everyone.
 *
 * `notifyIn(millis)` is a change that takes effect later: a delayed job becomes visible then. The
 * waiters wake at that time, as at a `notify` then, not at once (an idle consumer woken now would
 * only look, find nothing and sleep again). Only the soonest such time per key is kept: a consumer
 * woken at it claims, and its claim says when its next delayed job is due. A keyed one is seen by
 * the waiters of its key (waiters of every key need not wake for a job becoming visible).
 *
 * `version` counts the notifications. A waiter that read it before looking at the store passes it
 * to `wait`, which then returns at once if a change (of its keys) came in between: with a store
 * that answers asynchronously (Postgres), a change can land while the look is in flight, and its
 * wake-up would otherwise be missed until the next poll.
 *
 * A process may see a queue per tenant for months: what is kept per key is bounded. Past `MAX_KEYS`
 * keys the last changes are forgotten, and a wait from a version before that returns at once (as
 * for a change: its waiter looks once more); the delayed changes already due that no waiter took
 * are then taken as changes.
 *
 * @internal
 */
import { type Clock, Effect } from "effect"
import * as Monotonic from "../monotonic.ts"

export interface Signal {
  /** A change of `key`, or (none) of everything. */
  readonly notify: (key?: string) => void
  /** A change of `key` (or of everything) in `millis` (a delayed job's time): waiters wake then (needs `clock`). */
  readonly notifyIn: (millis: number, key?: string) => void
  /** True while a fiber waits. */
  readonly waiting: () => boolean
  readonly version: Effect.Effect<number>
  /** `version`, read at once (a store's synchronous code: a round of keys' start, see `groupRounds`). */
  readonly current: () => number
  /** Whether a change a waiter of `keys` (none: of anything) wakes for came after version `since`. */
  readonly changedSince: (since: number, keys?: ReadonlyArray<string>) => boolean
  /** `keys`: wake only for changes of these keys (and of everything); none: for any change. */
  readonly wait: (millis: number, since?: number, keys?: ReadonlyArray<string>) => Effect.Effect<void>
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

interface Waiter {
  /** undefined: wakes for every change. */
  readonly keys: ReadonlyArray<string> | undefined
  readonly wake: () => void
}

/** The key of changes of everything (no key given). */
const ALL = "\u0000all"

/** A key no waiter names: its change wakes only the waiters of every key (a job ended: its awaiters look). */
export const UNKEYED = "\u0000unkeyed"

/** The most keys whose last change is kept (see `changedSince`), and the delayed changes kept before their first sweep (`dueLimit`). */
const MAX_KEYS = 1024

export const makeSignal = (options: SignalOptions = {}): Signal => {
  const { clock, onWait } = options
  /** `clock`'s monotonic time, in which `notifyIn`'s times are kept. */
  const now = clock === undefined ? undefined : Monotonic.millis(clock)
  let waiters: Array<Waiter> = []
  let version = 0
  /** The version of the last change of each key (ALL: of everything). */
  const changedAt = new Map<string, number>()
  /** The changes up to this version are forgotten (`changedAt` cleared past `MAX_KEYS`). */
  let forgotten = 0
  /** When the soonest `notifyIn` of each key is due (monotonic ms of `clock`). */
  const dueAt = new Map<string, number>()
  /** `dueAt`'s size at which its due entries are taken; twice what is left after, so that a sweep is paid for. */
  let dueLimit = MAX_KEYS
  /** A change of `key` ends the wait of `waiter`; a new time for it (`timed`) only the waits of its own key. */
  const concerns = (waiter: Waiter, key: string, timed = false) =>
    key === ALL || (waiter.keys === undefined ? !timed : waiter.keys.includes(key))
  const wake = (key: string, timed = false) => {
    if (waiters.length === 0) return
    const woken = waiters.filter((waiter) => concerns(waiter, key, timed))
    if (woken.length === 0) return
    waiters = woken.length === waiters.length ? [] : waiters.filter((waiter) => !concerns(waiter, key, timed))
    for (const waiter of woken) waiter.wake()
  }
  const notify = (key: string = ALL) => {
    version++
    if (changedAt.size >= MAX_KEYS && !changedAt.has(key)) {
      changedAt.clear()
      forgotten = version - 1
    }
    changedAt.set(key, version)
    wake(key)
  }
  const notifyIn = (millis: number, key: string = ALL) => {
    if (clock === undefined || !(millis > 0)) return notify(key)
    const time = now!()
    const at = time + millis
    if (at >= (dueAt.get(key) ?? Infinity)) return
    if (dueAt.size >= dueLimit) {
      // due, with no waiter of its key here to take it (a queue this process does not consume):
      // a change now, as its waiter would have made it
      for (const [due, dueTime] of dueAt) {
        if (dueTime <= time) {
          dueAt.delete(due)
          notify(due)
        }
      }
      dueLimit = Math.max(MAX_KEYS, dueAt.size * 2)
    }
    dueAt.set(key, at)
    // the waiters sleep again, to the new time (no change yet: the version stays)
    wake(key, true)
  }
  /** Whether a change a waiter of `keys` wakes for came after version `since`. */
  const changedSince = (since: number, keys: ReadonlyArray<string> | undefined) => {
    if (keys === undefined) return version !== since
    if (since < forgotten) return true
    if ((changedAt.get(ALL) ?? 0) > since) return true
    for (const key of keys) if ((changedAt.get(key) ?? 0) > since) return true
    return false
  }
  /** The soonest delayed change a waiter of `keys` wakes for, and its key. */
  const soonest = (keys: ReadonlyArray<string> | undefined): readonly [string, number] => {
    let best: readonly [string, number] = [ALL, dueAt.get(ALL) ?? Infinity]
    if (keys === undefined) return best
    for (const key of keys) {
      const at = dueAt.get(key)
      if (at !== undefined && at < best[1]) best = [key, at]
    }
    return best
  }
  /** Returns at a notify, or when `notifyIn` has a new time (the waiter then sleeps again). */
  const next = (since: number, keys: ReadonlyArray<string> | undefined) =>
    Effect.callback<void>((resume) => {
      if (changedSince(since, keys)) return resume(Effect.void)
      const waiter: Waiter = { keys, wake: () => resume(Effect.void) }
      waiters.push(waiter)
      onWait?.()
      return Effect.sync(() => {
        const index = waiters.indexOf(waiter)
        if (index >= 0) waiters.splice(index, 1)
      })
    })
  const keysOf = (keys: ReadonlyArray<string> | undefined) => keys === undefined || keys.length === 0 ? undefined : keys
  const plain = (millis: number, since?: number, keys?: ReadonlyArray<string>) =>
    Effect.suspend(() => Effect.raceFirst(next(since ?? version, keysOf(keys)), Effect.sleep(millis)))
  // with delayed changes: a loop that wakes at whichever comes first, the end of `millis`, a
  // notify, or the soonest delayed change (which it turns into a notify, for every waiter of it)
  const timed = (millis: number, since?: number, waitKeys?: ReadonlyArray<string>) =>
    Effect.suspend(() => {
      const from = since ?? version
      const keys = keysOf(waitKeys)
      const end = now!() + millis
      const loop: Effect.Effect<void> = Effect.suspend(() => {
        if (changedSince(from, keys)) return Effect.void
        const time = now!()
        const [key, at] = soonest(keys)
        if (at <= time) {
          dueAt.delete(key)
          notify(key)
          return Effect.void
        }
        if (time >= end) return Effect.void
        return Effect.andThen(Effect.raceFirst(next(from, keys), Effect.sleep(Math.min(end, at) - time)), loop)
      })
      return loop
    })
  return {
    notify,
    notifyIn,
    waiting: () => waiters.length > 0,
    version: Effect.sync(() => version),
    current: () => version,
    changedSince: (since, keys) => changedSince(since, keysOf(keys)),
    wait: clock === undefined ? plain : timed
  }
}
