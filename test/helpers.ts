import { Effect, Ref, Tracer } from "effect"

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

/** mulberry32: a small seeded PRNG, so that a failing random test can be replayed. */
export const prng = (seed: number) => () => {
  seed = (seed + 0x6D2B79F5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

/**
 * Waits, in real time, until a condition holds. Thread exits and restarts are real events, so
 * thread tests poll for their effect rather than sleep a guessed time.
 */
export const waitFor = (check: Effect.Effect<boolean>, what: string) =>
  Effect.gen(function*() {
    for (let i = 0; i < 3000; i++) {
      if (yield* check) return
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 10)))
    }
    throw new Error(`timed out waiting until ${what}`)
  })

/** A tracer that keeps every span it makes. */
export const recordingTracer = () => {
  const spans: Array<Tracer.Span> = []
  const tracer = Tracer.make({
    span: (options) => {
      const span = Tracer.nativeTracer.span(options)
      spans.push(span)
      return span
    }
  })
  return { spans, tracer }
}

/** The most of `times` in any half-open window of `interval`. */
export const maxInWindow = (times: ReadonlyArray<number>, interval: number) => {
  const sorted = [...times].sort((a, b) => a - b)
  let most = 0
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (sorted[i]! - sorted[j]! >= interval) j++
    most = Math.max(most, i - j + 1)
  }
  return most
}
