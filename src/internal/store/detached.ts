/**
 * A store's operations, each on a fiber of its own that its caller awaits, so that the caller can
 * stop waiting at once: interrupted (a consumer's bound on a beat or a reap, its stop, a timeout of
 * the user's), or past a bound of the store's. An interrupted @effect/sql-pg statement waits for its
 * connection's drain (a cancel request, then up to 5 s for the server's ReadyForQuery), which a
 * frozen server (SIGSTOP, a partition that drops packets) never sends, and its caller waited that
 * long. Here the operation its caller left is interrupted and drains in the background, and the
 * store's close waits for those: none outlives the store.
 *
 * @internal
 */
import { Effect, Fiber } from "effect"
import type * as Scope from "effect/Scope"

export interface Detached {
  /**
   * `effect` on a fiber of its own, awaited. An interruption of the caller interrupts the fiber and
   * waits up to `settle` ms (real time) for its end, then returns, the fiber left to end in the
   * background; with a `bound` (ms of real time, 0 for none: a TestClock's hours must not expire a
   * statement), past it the caller fails with `late()`, the fiber interrupted so too.
   */
  readonly run: <A, E>(effect: Effect.Effect<A, E>, options: {
    readonly bound: number
    readonly late: () => E
    readonly settle: number
  }) => Effect.Effect<A, E>
}

/**
 * Its scope's close marks the store closed (`close`), interrupts every operation still running (its
 * caller gone or still waiting: one left running, on a client the store does not close, ran on past
 * it, a write to a frozen server for as long as it stayed frozen) and waits for their ends.
 */
export const make = (close: () => void): Effect.Effect<Detached, never, Scope.Scope> =>
  Effect.gen(function*() {
    const running = new Set<Fiber.Fiber<unknown, unknown>>()
    // until none is left: one started while the close waits is interrupted and waited for too
    const drained: Effect.Effect<void> = Effect.suspend(() => {
      if (running.size === 0) return Effect.void
      for (const fiber of running) fiber.interruptUnsafe()
      return Effect.andThen(Fiber.awaitAll([...running]), drained)
    })
    yield* Effect.addFinalizer(() => Effect.andThen(Effect.sync(close), drained))

    const run = <A, E>(effect: Effect.Effect<A, E>, { bound, late, settle }: {
      readonly bound: number
      readonly late: () => E
      readonly settle: number
    }): Effect.Effect<A, E> =>
      // the caller's context (its tracer and span, its logger): the statement's span is the caller's child
      Effect.withFiber((caller) =>
        Effect.callback<A, E>((resume) => {
          // forked here, within the callback: an interruption cannot come between the fork and the wait
          const fiber = Effect.runForkWith(caller.context)(effect)
          const ended = fiber.pollUnsafe()
          if (ended !== undefined) return resume(ended)
          running.add(fiber)
          let waiting = true
          let timer: ReturnType<typeof setTimeout> | undefined
          fiber.addObserver((exit) => {
            running.delete(fiber)
            if (!waiting) return
            waiting = false
            if (timer !== undefined) clearTimeout(timer)
            resume(exit)
          })
          const leave = () => {
            if (!waiting) return
            waiting = false
            if (timer !== undefined) clearTimeout(timer)
            fiber.interruptUnsafe()
          }
          if (bound > 0) {
            timer = setTimeout(() => {
              if (!waiting) return
              leave()
              resume(Effect.fail(late()))
            }, bound)
            timer.unref()
          }
          return Effect.callback<void>((done) => {
            leave()
            if (settle <= 0 || fiber.pollUnsafe() !== undefined) return done(Effect.void)
            const timer = setTimeout(() => {
              stopWaiting()
              done(Effect.void)
            }, settle)
            const stopWaiting = fiber.addObserver(() => {
              clearTimeout(timer)
              done(Effect.void)
            })
          })
        })
      )

    return { run }
  })
