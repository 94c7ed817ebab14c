/**
 * A store's time on its server's clock that never waits on the server: this machine's clock plus
 * an offset, the highest that the server's last answers (Redis's `TIME`, Postgres's `now()`) allow
 * together, asked in the background at most once a `NOW_REFRESH` and one at a time.
 *
 * Awaited, the server's time had no bound: on a frozen server (SIGSTOP, a partition that drops
 * packets; on a Cluster, any one frozen node) it held the consumer's heartbeat loop, which asks the
 * time before each beat, and with it its lease-loss interrupts, for ever: the consumer's jobs ran on
 * past their leases. Bounded (2 s), the wait spaced a 3 s lease's renewals 4 s apart.
 *
 * @internal
 */
import { type Clock, Effect } from "effect"
import * as Monotonic from "../monotonic.ts"

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

/**
 * How many of the server's last answers, and of how long ago at most (ms), narrow the offset: the
 * tightest bound they agree on (NTP keeps its last eight too). Older, a clock's drift would show
 * (up to about 0.1 ms a second, more while NTP slews it).
 */
export const FILTER_SIZE = 8
export const FILTER_SPAN = FILTER_SIZE * NOW_REFRESH

/** The offsets one answer allows (ms): the server read its clock between the question and the answer. */
interface Answer {
  readonly low: number
  readonly high: number
  /** When it came (this machine's clock). */
  readonly at: number
  /** This machine's clock less its monotonic one then (ms): changed, this machine's clock was stepped. */
  readonly skew: number
}

/**
 * How far (ms) two answers' `skew` may differ for the same clock: both clocks read to the ms. NTP's
 * slewing changes both clocks' rate alike; only a step of this machine's clock moves one.
 */
const SKEW_TOLERANCE = 2

/**
 * How fast at most NTP slews a clock (500 ppm): where only the wall clock is slewed (the monotonic
 * clock is on Linux too, not on every system), the two drift apart by up to this much a ms.
 */
const MAX_SLEW = 0.0005

/**
 * This machine's time since boot (ms), a suspend counted: Linux's `/proc/uptime` (CLOCK_BOOTTIME),
 * read to 10 ms, which a step of the wall clock does not move. A suspend (a VM paused, a laptop
 * asleep) stops the monotonic clock while the wall clock and the server's go on: against the
 * monotonic clock alone it is a step forward. Read from the file, not `os.uptime()`, which falls back
 * to whole seconds where the file cannot be read (and is the wall clock less the boot's date on
 * macOS, which a step moves too). NaN if the read fails: then a step is taken as one.
 */
const readSinceBoot = (fs: typeof import("node:fs")) => (): number => {
  try {
    return Number.parseFloat(fs.readFileSync("/proc/uptime", "latin1")) * 1000
  } catch {
    return Number.NaN
  }
}
/**
 * `readSinceBoot` where it reads (Linux), looked at once, at the first store's make (not at import).
 * `node:fs` by `process.getBuiltinModule`, not imported: the package builds for the browser, which
 * has no such module (nor `process`).
 */
let bootClock: (() => number) | undefined | null = null
const liveSinceBoot = (): (() => number) | undefined => {
  if (bootClock !== null) return bootClock
  const node = (globalThis as { readonly process?: typeof process }).process
  const fs = node?.platform === "linux" && typeof node.getBuiltinModule === "function"
    ? node.getBuiltinModule("node:fs") as typeof import("node:fs") | undefined
    : undefined
  const read = fs === undefined ? undefined : readSinceBoot(fs)
  return bootClock = read !== undefined && !Number.isNaN(read()) ? read : undefined
}

/** How far (ms) the time since boot may run from the monotonic clock with no suspend: two 10-ms readings. */
const BOOT_TOLERANCE = 20

/**
 * `fresh` and the older answers (newest first) that agree with it and every one between: the range
 * of offsets they allow together. An older answer whose range misses theirs is of another offset
 * (a clock stepped since, either machine's): it and those before it are dropped, so a step is
 * followed at once. So is one from before a step of this machine's clock that its range still
 * overlaps (a step smaller than a slow answer's range: NTP steps past 128 ms, a busy event loop
 * reads an answer tens of ms late): kept, it held the store's time behind the server's by the step
 * for as long as it was kept. A step of the server's clock that small is not told from a slow answer.
 * `back`: an older answer of the same clock of this machine asked a higher offset than the newer
 * ones allow, by more than the clocks' drift since: the server's clock went back between them.
 */
const narrow = (
  fresh: Answer,
  older: ReadonlyArray<Answer>
): { readonly kept: Array<Answer>; readonly high: number; readonly back: boolean } => {
  const kept = [fresh]
  let { high, low } = fresh
  for (const answer of older) {
    if (kept.length >= FILTER_SIZE || answer.at > fresh.at || fresh.at - answer.at > FILTER_SPAN) break
    if (Math.abs(answer.skew - fresh.skew) > SKEW_TOLERANCE) break
    const l = Math.max(low, answer.low)
    const h = Math.min(high, answer.high)
    if (l > h) return { kept, high, back: answer.low - high > SKEW_TOLERANCE + (fresh.at - answer.at) * MAX_SLEW }
    low = l
    high = h
    kept.push(answer)
  }
  return { kept, high, back: false }
}

/**
 * How far back (ms) at most the store's time is held still rather than followed, where no answer
 * shows the server's clock went back (`narrow`'s `back`: it cannot where this machine's clock was
 * stepped or suspended between the two answers, whose offsets are then of different clocks).
 *
 * A quick answer after slower ones lowers the offset by the slower ones' excess way (tens of ms
 * under a busy event loop): read as it is, the store's time went back by it between two reads with
 * no clock stepped, and a lease read across it looked longer, a tick's deadline early. Held still
 * instead until this machine's clock catches up, the store's time is never behind the server's
 * (the lowered offset is still the highest the answers allow) and never goes back: a hold is NTP's
 * slew at its fastest, for a few ms. A server's clock itself goes back only by a step: Postgres's
 * `now()` and Redis's `TIME` read the wall clock (`gettimeofday`), which NTP slews (at most 0.5 ms
 * a second, never back) below its step threshold (ntpd 128 ms, timesyncd 400 ms, chrony's
 * `makestep` 1 s or none) and steps above it. A step is followed at the first answer after it
 * (`back`); where the answers cannot show it, only past this bound: held for the whole step, the
 * store's time stood still for as long (a step back of an hour, an hour); held up to a second, it
 * is ahead of the server's by at most that, never behind. A lowering past it (an answer more than
 * a second late, then a quick one) goes back, as any did before.
 */
export const HOLD_BOUND = NOW_REFRESH

export interface ServerTime {
  /** The server's time (ms), at once. */
  readonly now: Effect.Effect<number>
  /** The same, outside an Effect. */
  readonly nowUnsafe: () => number
  /** Asks the server's time and waits for its answer (a store's open sets the offset so). */
  readonly refresh: Effect.Effect<number, unknown>
}

/**
 * The time of the server `ask` reads the time of. `sinceBoot`: this machine's time since boot (ms),
 * a suspend counted; by default Linux's on the live clock, none on another (a test's machine).
 */
export const make = (
  clock: Clock.Clock,
  ask: Effect.Effect<number, unknown>,
  options?: { readonly sinceBoot?: (() => number) | undefined }
): ServerTime => {
  const monotonic = Monotonic.millis(clock)
  const sinceBoot = options?.sinceBoot ?? (Monotonic.isLive(clock) ? liveSinceBoot() : undefined)
  let offset = 0
  /** The newest answer's `skew`, and when it came (monotonic): undefined before the first. */
  let skew: number | undefined
  let skewAt = 0
  /** The newest answer's time less this machine's time since boot then. */
  let bootSkew = 0
  /** The last step `step` read the time since boot for (NaN: none since the newest answer), and its step. */
  let seen = NaN
  let seenStep = 0
  /** The answers that narrow the offset, newest first. */
  let answers: ReadonlyArray<Answer> = []
  /** The last time read (the server's): the next read is held at it, unless `HOLD_BOUND` behind. */
  let last = -Infinity
  /** When the server was last asked (this machine's clock), and whether it is unanswered. */
  let asked = 0
  let asking = false
  const refresh = Effect.suspend(() => {
    asked = clock.currentTimeMillisUnsafe()
    const sentAt = monotonic()
    const bootSent = sinceBoot?.()
    return Effect.map(ask, (server) => {
      const received = clock.currentTimeMillisUnsafe()
      skewAt = monotonic()
      skew = received - skewAt
      // the question's way there and back, on clocks a step of this machine's does not move: taken
      // from this machine's clock, a step while it was in flight (forward) put the offset of the
      // clock before the step in the answer's range, kept with the skew after it, and the store's
      // time was off by the step until the next answer
      let way = skewAt - sentAt
      if (sinceBoot !== undefined) {
        const boot = sinceBoot()
        bootSkew = received - boot
        seen = NaN
        // suspended meanwhile: the server's clock went on through it, the monotonic one did not
        if (boot - bootSent! - way > BOOT_TOLERANCE) way = boot - bootSent! + BOOT_TOLERANCE
      }
      // the server read its clock between the question and the answer: the true offset is between
      // these two (1 ms more each way for the two clocks' rounding to ms)
      const { back, high, kept } = narrow({ low: server - received - 1, high: server - received + way + 1, at: received, skew }, answers)
      answers = kept
      // the highest the answers allow, not their midpoint (NTP's): the store's time never lags the
      // server's (a job the server has just made visible, or enqueued with no delay, read as delayed).
      // From the last answer alone it ran ahead by that question's way there, which a busy event loop
      // (the write waits its turn) or server makes tens of ms; the tightest of the last ones is a few.
      // A midpoint lags by half the way back's excess: measured on one machine (true offset 0) under
      // a busy loop, -48 to +55 ms, against +2 to +26 for this and +2 to +123 for the last answer's
      offset = high
      // the server's clock went back: followed at once, not held
      if (back) last = -Infinity
      return server
    })
  })
  // detached, not in the store's scope: it ends with the server's answer, its client's close or
  // ASK_BOUND (an interrupted Postgres statement waits up to 5 s for its connection's drain, which
  // the close would)
  const inBackground = refresh.pipe(Effect.timeout(ASK_BOUND), Effect.ignore, Effect.ensuring(Effect.sync(() => void (asking = false))), Effect.forkDetach)
  /**
   * The server's time at `local` (this machine's clock): corrected by a step of this machine's clock
   * since the newest answer, which the next answer's offset will hold. Without it the reads until
   * that answer were off by the step: a repeat asleep until its tick across a step back of an hour
   * read it as an hour ahead, slept an hour more, then skipped the hour's ticks.
   */
  const at = (local: number): number => {
    if (skew === undefined) return local + offset
    const mono = monotonic()
    const slack = SKEW_TOLERANCE + (mono - skewAt) * MAX_SLEW
    const stepped = local - mono - skew
    return Math.abs(stepped) > slack ? local - step(local, stepped, slack) + offset : local + offset
  }
  /** `at(local)`, never before the last read but by more than `HOLD_BOUND`. */
  const read = (local: number): number => {
    const time = at(local)
    if (time >= last || last - time > HOLD_BOUND) last = time
    return last
  }
  /**
   * How far this machine's clock was stepped, of `stepped` that it moved against the monotonic
   * clock: less any time the machine was suspended meanwhile, which the server's clock went on
   * through too. Counted as a step, the store's time was held at the suspend's start until an
   * answer came: a repeat woken across an hour's suspend read its tick as now and slept an hour more.
   */
  const step = (local: number, stepped: number, slack: number): number => {
    if (sinceBoot === undefined) return stepped
    // the time since boot is a file read (50 µs on a busy 2-core VM): once a step until the next
    // answer, not at every read while the server is out of reach
    if (Math.abs(stepped - seen) <= SKEW_TOLERANCE) return seenStep
    const booted = local - sinceBoot() - bootSkew
    seen = stepped
    // suspended meanwhile (NaN, the time since boot unread: not)
    seenStep = stepped - booted > BOOT_TOLERANCE ? Math.abs(booted) > BOOT_TOLERANCE + slack ? booted : 0 : stepped
    return seenStep
  }
  const nowUnsafe = () => read(clock.currentTimeMillisUnsafe())
  // uninterruptible: interrupted between the flag and the fork (a runloop yield lets another fiber in),
  // the store was left asking for ever, its time never refreshed again
  const now = Effect.uninterruptible(Effect.suspend(() => {
    const local = clock.currentTimeMillisUnsafe()
    // and at once if this machine's clock went back past the last question (stepped: NTP, a VM
    // resumed): waiting for it to reach the last question again held the store's time behind the
    // server's by the step for as long as the step (a delayed job's wake-up late by it)
    if (asking || (local >= asked && local - asked < NOW_REFRESH)) return Effect.succeed(read(local))
    asking = true
    return Effect.as(inBackground, read(local))
  }))
  return { now, nowUnsafe, refresh }
}
