/**
 * Time for durations and deadlines: the Clock's monotonic time, never its wall time. A wall clock
 * steps when NTP corrects it or a VM resumes; a deadline kept in wall time moves with every step
 * (a step forward expires queued jobs early, a step back delays them), while the timers that wait
 * for it (`setTimeout`, the Clock's `sleep`) count monotonic time. Times reported as dates stay
 * wall time; they are read where they are reported.
 *
 * @internal
 */
import { Clock } from "effect"

/** Effect's own monotonic reading (`process.hrtime.bigint()` on Node), on the prototype of its live Clock. */
const liveMonotonic = Object.getPrototypeOf(Clock.Clock.defaultValue()).monotonicTimeNanosUnsafe

/** Read once: Node's global `performance` is a getter (`now()` through it costs 49 ns, 42 through this). */
const livePerformance = typeof performance === "undefined" ? undefined : performance

/** Whether `clock` counts real time: Effect's live Clock (a `TestClock` or a test's own does not). */
export const isLive = (clock: Clock.Clock): boolean => clock.monotonicTimeNanosUnsafe === liveMonotonic

/**
 * A reader of `clock`'s monotonic time: milliseconds since the reader was made.
 *
 * On Effect's live clock it reads `performance.now()`, floored to whole milliseconds (as `Date.now`
 * reads them): the same monotonic time as the Clock's own reading, which makes a BigInt per read
 * (57 ns a read against 42 on a 2-core VM, where `Date.now` takes 47; and 16 bytes allocated on a
 * job's hot path), and a whole number stays a small integer V8 does not box. Any other clock (a
 * `TestClock`, a test's own) is read through its `monotonicTimeNanosUnsafe`, exactly: its
 * nanoseconds are subtracted as BigInts before they become a number, since a `TestClock` set to a
 * real date (1.8e18 ns) is past a double's exact integers.
 */
export const millis = (clock: Clock.Clock): () => number => {
  const live = isLive(clock) ? livePerformance : undefined
  if (live !== undefined) {
    const origin = live.now()
    return () => Math.floor(live.now() - origin)
  }
  const origin = clock.monotonicTimeNanosUnsafe()
  return () => Number(clock.monotonicTimeNanosUnsafe() - origin) / 1e6
}

/**
 * As `millis`, but on the live clock with the fractions of a millisecond kept: for a bound that
 * whole milliseconds would break. A rate limit compares two readings, and two floored ones 10 ms
 * apart may be 9.1 ms apart in fact (0.95 and 10.05), which lets one start in early.
 */
export const exactMillis = (clock: Clock.Clock): () => number => {
  const live = isLive(clock) ? livePerformance : undefined
  if (live !== undefined) {
    const origin = live.now()
    return () => live.now() - origin
  }
  return millis(clock)
}
