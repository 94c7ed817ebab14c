/**
 * Rate limits: at most `limit` job starts in any window of `interval` milliseconds. The window
 * slides: the limiter keeps the times of the last `limit` starts (a ring), and a start is allowed
 * when the oldest of them is at least `interval` old. So the bound holds for every window, not
 * only for windows aligned to some tick (a fixed window, as in BullMQ's limiter or p-queue's
 * `intervalCap`, lets `2 × limit` through around a boundary; a token bucket lets `limit + burst`
 * through), and after an idle spell a full `limit` may start at once. Starts spread evenly with a
 * smaller window: `{ limit: 1, interval: "10 millis" }` is 100 per second, one every 10 ms.
 *
 * Time is the Clock's monotonic time (monotonic.ts): a wall clock set back (NTP) neither stalls nor frees starts.
 *
 * `RateGate` plugs a limiter into the scheduler (its `StartGate`); the durable consumer uses a
 * `RateLimiter` directly in its claim loop, and the stores keep the same ring per queue.
 *
 * @internal
 */
import type { Clock, Context, Fiber } from "effect"
import { Effect } from "effect"
import * as config from "./config.ts"
import * as Monotonic from "./monotonic.ts"
import type { Scheduler, StartGate } from "./scheduler.ts"

/** A checked rate limit: `limit` starts per `interval` ms. */
export interface Limit {
  readonly limit: number
  readonly interval: number
}

/**
 * The largest `limit`: the ring holds one time per start (8 bytes each, 8 MB at the bound; a
 * durable queue keeps a row per claim in its window).
 */
export const MAX_LIMIT = 1_000_000

const KEYS = ["limit", "interval"]

/** Checks a `rateLimit` option (`field` names it in errors). */
export const check = (field: string, value: unknown): Limit => {
  config.object(field, value)
  config.onlyKeys(`${field}.`, value as object, KEYS)
  const { interval, limit } = value as { limit: unknown; interval: unknown }
  return {
    limit: config.positiveInteger(`${field}.limit`, limit, MAX_LIMIT),
    interval: config.finiteMillis(`${field}.interval`, interval)
  }
}

/** The sliding-window log. Times are milliseconds of one monotonic clock. */
export class RateLimiter {
  limit: number
  interval: number
  /** The last `size` starts, oldest at `head`. */
  private times: Float64Array
  private head = 0
  private size = 0
  constructor(limit: Limit) {
    this.limit = limit.limit
    this.interval = limit.interval
    this.times = new Float64Array(limit.limit)
  }

  /** Records a start at `now` if the window allows one. */
  take(now: number): boolean {
    const limit = this.limit
    if (this.size < limit) {
      let slot = this.head + this.size
      if (slot >= limit) slot -= limit
      this.times[slot] = now
      this.size++
      return true
    }
    if (now - this.times[this.head]! < this.interval) return false
    this.times[this.head] = now
    if (++this.head === limit) this.head = 0
    return true
  }

  /** When the next start is allowed: at once (-Infinity) if one is now. */
  nextAt(): number {
    return this.size < this.limit ? -Infinity : this.times[this.head]! + this.interval
  }

  /** How many starts the window allows at `now`, counting at most `atMost`. */
  available(now: number, atMost: number): number {
    let free = this.limit - this.size
    const limit = this.limit
    for (let i = 0; i < this.size && free < atMost; i++) {
      let slot = this.head + i
      if (slot >= limit) slot -= limit
      if (now - this.times[slot]! < this.interval) break
      free++
    }
    return Math.min(free, atMost)
  }

  /** A new limit; the latest starts stay counted, so that a change lets no extra burst through. */
  set(limit: Limit): void {
    const keep = Math.min(this.size, limit.limit)
    const times = new Float64Array(limit.limit)
    for (let i = 0; i < keep; i++) {
      let slot = this.head + this.size - keep + i
      if (slot >= this.limit) slot -= this.limit
      times[i] = this.times[slot]!
    }
    this.times = times
    this.head = 0
    this.size = keep
    this.limit = limit.limit
    this.interval = limit.interval
  }
}


/** What the gate needs of its scheduler. */
interface Pumped {
  readonly context: Context.Context<never>
  pump(): void
}

/**
 * A rate limit on a scheduler's starts. A refused start leaves the job in the queue, on no worker;
 * the gate's timer pumps the scheduler when the window allows the next start.
 */
export class RateGate implements StartGate {
  readonly limiter: RateLimiter
  /** The Clock's monotonic time (monotonic.ts), to the fraction of a millisecond: the window is exact. */
  readonly now: () => number
  private readonly scheduler: Pumped
  private timer: Fiber.Fiber<void> | undefined = undefined
  private timerAt = Infinity
  constructor(limit: Limit, scheduler: Pumped, clock: Clock.Clock) {
    this.limiter = new RateLimiter(limit)
    this.scheduler = scheduler
    this.now = Monotonic.exactMillis(clock)
  }

  tryStart(): boolean {
    const now = this.now()
    if (this.limiter.take(now)) return true
    this.wakeAt(this.limiter.nextAt(), now)
    return false
  }

  room(atMost: number): number {
    const now = this.now()
    const room = this.limiter.available(now, atMost)
    if (room === 0 && atMost > 0) this.wakeAt(this.limiter.nextAt(), now)
    return room
  }

  /** Queued jobs that free workers would start now but for the limit. */
  held(startable: number): number {
    return startable <= 0 ? 0 : startable - this.limiter.available(this.now(), startable)
  }

  /** A new limit (the caller pumps: a looser one may start queued jobs at once). */
  set(limit: Limit): void {
    this.limiter.set(limit)
    this.cancelTimer()
  }

  close(): void {
    this.cancelTimer()
  }

  private cancelTimer(): void {
    const timer = this.timer
    this.timer = undefined
    this.timerAt = Infinity
    timer?.interruptUnsafe()
  }

  private wakeAt(at: number, now: number): void {
    if (this.timer !== undefined && this.timerAt <= at) return
    this.cancelTimer()
    const timer = Effect.runForkWith(this.scheduler.context)(Effect.sleep(Math.max(0, at - now)))
    this.timer = timer
    this.timerAt = at
    timer.addObserver((exit) => {
      if (this.timer !== timer || exit._tag === "Failure") return
      this.timer = undefined
      this.timerAt = Infinity
      this.scheduler.pump()
    })
  }
}

/**
 * Queued jobs that free workers would start now but for the scheduler's rate limit: 0 without one,
 * or while paused (the pause holds them, not the limit). A durable consumer's pool has no limit of
 * its own: its consumer says how many free slots its limits keep idle (`heldOutside`).
 */
export const held = (scheduler: Scheduler<any>): number => {
  if (scheduler.heldOutside !== undefined) return scheduler.heldOutside()
  const gate = scheduler.gate
  if (!(gate instanceof RateGate) || scheduler.paused) return 0
  return gate.held(Math.min(scheduler.queue.size, scheduler.workers.size - scheduler.busy))
}
