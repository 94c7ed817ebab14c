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

/**
 * A reader of `clock`'s monotonic time: milliseconds since the reader was made.
 *
 * On Effect's live clock it reads `performance.now()`, floored to whole milliseconds (as `Date.now`
 * reads them): the same monotonic time as the Clock's own reading, which makes a BigInt per read
 * (slower, and a 16-byte allocation on a job's hot path), and a whole number stays a small
 * integer V8 does not box. Any other clock (a `TestClock`, a test's own) is read through its
 * `monotonicTimeNanosUnsafe`, exactly: its nanoseconds are subtracted as BigInts before they become
 * a number, since a `TestClock` set to a real date (1.8e18 ns) is past a double's exact integers.
 */
export const millis = (clock: Clock.Clock): () => number => {
  if (clock.monotonicTimeNanosUnsafe === liveMonotonic && typeof performance !== "undefined") {
    const origin = performance.now()
    return () => Math.floor(performance.now() - origin)
  }
  const origin = clock.monotonicTimeNanosUnsafe()
  return () => Number(clock.monotonicTimeNanosUnsafe() - origin) / 1e6
}
