/**
 * Scenario 1's "ours: Effect.sync job" with `EXTRA_BYTES` (an environment variable) more bytes
 * allocated per submit, outside the pool (24-byte objects, garbage at once): for
 * `bench/probe/peakSawtooth.ts --real`, which runs it through the bench child to see how the peak
 * heap moves with what each job allocates; and the same program with no pool, beside it.
 */
import { Effect } from "effect"
import { makePool, type Scenario } from "../common.ts"
import { scenario as overhead } from "../scenarios/01-overhead.ts"

const EXTRA = Number(process.env.EXTRA_BYTES ?? 0)

class Garbage {}
let sink: unknown

export const scenario: Scenario = {
  ...overhead,
  contestants: [{
    name: "ours: Effect.sync job, extra bytes",
    library: "effect-workpool",
    setup: async ({ jobs }, tally) => {
      const { pool, teardown } = await makePool({ concurrency: 8, capacity: Infinity })
      const program = Effect.gen(function*() {
        const handles = new Array<Effect.Effect<number, unknown>>(jobs)
        for (let i = 0; i < jobs; i++) {
          for (let k = 0; k < EXTRA; k += 24) sink = new Garbage()
          handles[i] = (yield* pool.submit(Effect.sync(() => tally.job(i)))).await
        }
        let s = 0
        for (const h of handles) s += yield* h
        return s
      })
      return { run: async () => ({ observed: await Effect.runPromise(program) }), teardown: () => (void sink, teardown()) }
    }
  }, {
    // the same program with no pool: each job run by `Effect.exit` in the submitting loop, its Exit kept
    name: "no pool: Effect.exit per job, kept",
    library: "effect",
    setup: async ({ jobs }, tally) => {
      const program = Effect.gen(function*() {
        const exits = new Array<Effect.Effect<number>>(jobs)
        for (let i = 0; i < jobs; i++) {
          for (let k = 0; k < EXTRA; k += 24) sink = new Garbage()
          exits[i] = yield* Effect.exit(Effect.sync(() => tally.job(i)))
        }
        let s = 0
        for (const exit of exits) s += yield* exit
        return s
      })
      return { run: async () => ({ observed: await Effect.runPromise(program) }) }
    }
  }]
}
