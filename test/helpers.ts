import { Effect, Ref } from "effect"

/** Counts jobs that are running right now and the most that ever ran at once. */
export const makeGauge = Effect.gen(function*() {
  const state = yield* Ref.make({ now: 0, peak: 0 })
  const enter = Ref.update(state, ({ now, peak }) => ({ now: now + 1, peak: Math.max(peak, now + 1) }))
  const exit = Ref.update(state, ({ now, peak }) => ({ now: now - 1, peak }))
  const track = <A, E, R>(job: Effect.Effect<A, E, R>) => Effect.acquireUseRelease(enter, () => job, () => exit)
  return { track, get: Ref.get(state) }
})

/** Lets every fiber that can run, run. */
export const settle = Effect.gen(function*() {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow
})
