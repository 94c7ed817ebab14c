import { type Cause, Effect } from "effect"

/**
 * The failures in a row of one thing done again and again (`what`: "claiming durable jobs"),
 * logged at the 1st, 2nd, 4th, 8th, ... rather than at every try, and once it works again: an
 * operator hears of a store that keeps failing without a line per poll.
 */
export const failureStreak = (what: string) => {
  let failures = 0
  return {
    count: () => failures,
    /** One more failure; `next` says what follows it, given the count. */
    failed: (cause: Cause.Cause<unknown>, next: (failures: number) => string): Effect.Effect<void> => {
      failures++
      return (failures & (failures - 1)) === 0
        ? Effect.logWarning(`effect-workpool: ${what} failed (${failures} time${failures === 1 ? "" : "s"} in a row; ${next(failures)})`, cause)
        : Effect.void
    },
    worked: Effect.suspend(() => {
      if (failures === 0) return Effect.void
      const after = failures
      failures = 0
      return Effect.logInfo(`effect-workpool: ${what} works again, after ${after} failure${after === 1 ? "" : "s"}`)
    })
  }
}
