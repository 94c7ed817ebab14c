/**
 * A store's time on its server's clock that never waits on the server: this machine's clock plus
 * the offset last seen, which the server's time (Redis's `TIME`, Postgres's `now()`) refreshes in
 * the background, at most once a `NOW_REFRESH` and one at a time.
 *
 * Awaited, the server's time had no bound: on a frozen server (SIGSTOP, a partition that drops
 * packets; on a Cluster, any one frozen node) it held the consumer's heartbeat loop, which asks the
 * time before each beat, and with it its lease-loss interrupts, for ever: the consumer's jobs ran on
 * past their leases. Bounded (2 s), the wait spaced a 3 s lease's renewals 4 s apart.
 *
 * @internal
 */
import { type Clock, Effect } from "effect"

/**
 * How often at most the store's time asks the server's (in the background) for the offset of this
 * machine's clock: clocks drift by microseconds a second, a server's clock that jumps is followed
 * within this.
 */
export const NOW_REFRESH = 1000

/**
 * How long a background ask may go unanswered before it is given up. Only one is asked at a time,
 * so one with no answer (a connection dead without a reset, whose statement the driver waits on
 * until TCP gives up, a quarter of an hour later) stopped every later refresh until then: the
 * store's time followed neither drift nor a jump of the server's clock meanwhile.
 */
export const ASK_BOUND = 5000

export interface ServerTime {
  /** The server's time (ms), at once. */
  readonly now: Effect.Effect<number>
  /** The same, outside an Effect. */
  readonly nowUnsafe: () => number
  /** Asks the server's time and waits for its answer (a store's open sets the offset so). */
  readonly refresh: Effect.Effect<number, unknown>
}

/** The time of the server `ask` reads the time of. */
export const make = (clock: Clock.Clock, ask: Effect.Effect<number, unknown>): ServerTime => {
  let offset = 0
  /** When the server was last asked (this machine's clock), and whether it is unanswered. */
  let asked = 0
  let asking = false
  const refresh = Effect.suspend(() => {
    const sent = asked = clock.currentTimeMillisUnsafe()
    // from when the question was sent, not when its answer came: the server read its clock in between,
    // so the offset is never below the true one, and the store's time never lags the server's (a job
    // the server has just made visible was read as delayed, its answer's way back late under load);
    // it runs ahead by the question's way there at most. 1 ms more for the two clocks' rounding to ms
    return Effect.map(ask, (server) => {
      offset = server - sent + 1
      return server
    })
  })
  // detached, not in the store's scope: it ends with the server's answer, its client's close or
  // ASK_BOUND (an interrupted Postgres statement waits up to 5 s for its connection's drain, which
  // the close would)
  const inBackground = refresh.pipe(Effect.timeout(ASK_BOUND), Effect.ignore, Effect.ensuring(Effect.sync(() => void (asking = false))), Effect.forkDetach)
  const nowUnsafe = () => clock.currentTimeMillisUnsafe() + offset
  // uninterruptible: interrupted between the flag and the fork (a runloop yield lets another fiber in),
  // the store was left asking for ever, its time never refreshed again
  const now = Effect.uninterruptible(Effect.suspend(() => {
    const local = clock.currentTimeMillisUnsafe()
    // and at once if this machine's clock went back past the last question (stepped: NTP, a VM
    // resumed): waiting for it to reach the last question again held the store's time behind the
    // server's by the step for as long as the step (a delayed job's wake-up late by it)
    if (asking || (local >= asked && local - asked < NOW_REFRESH)) return Effect.succeed(local + offset)
    asking = true
    return Effect.as(inBackground, local + offset)
  }))
  return { now, nowUnsafe, refresh }
}
