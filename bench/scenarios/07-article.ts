/**
 * Scenario 7, the articles' own benchmark: slow jobs (a sleep each) through 5 workers versus one
 * after the other. Sleeping jobs cost no CPU, so the speedup is bounded by the number of workers.
 */
import { Effect } from "effect"
import { makePool, type Scenario, type Tally } from "../common.ts"

const WORKERS = 5
const slowJob = (tally: Tally, ms: number, i: number) => Effect.sleep(ms).pipe(Effect.map(() => tally.job(i)))

const sum = (results: ReadonlyArray<number>) => {
  let s = 0
  for (const r of results) s += r
  return s
}

export const scenario: Scenario = {
  id: "7",
  title: "The articles' benchmark: slow jobs, 5 workers vs one after the other",
  description: `Each job sleeps 10 ms (\`Effect.sleep\`, real clock). Our pool with ${WORKERS} workers (\`pool.runAll\`) ` +
    "against the same jobs run one after the other (`Effect.forEach` without concurrency).",
  sizes: {
    full: { jobs: 100, sleepMs: 10 },
    quick: { jobs: 20, sleepMs: 10 },
    warmup: { jobs: 10, sleepMs: 10 }
  },
  metrics: ["ms"],
  contestants: [
    {
      name: "one after the other",
      library: "effect",
      anchor: true,
      setup: async ({ jobs, sleepMs = 10 }, tally) => {
        const ids = Array.from({ length: jobs }, (_, i) => i)
        const program = Effect.forEach(ids, (i) => slowJob(tally, sleepMs, i))
        return { run: async () => ({ observed: sum(await Effect.runPromise(program)) }) }
      }
    },
    {
      name: `ours: ${WORKERS} workers`,
      library: "effect-workpool",
      setup: async ({ jobs, sleepMs = 10 }, tally) => {
        const { pool, teardown } = await makePool({ concurrency: WORKERS })
        const program = Effect.suspend(() => pool.runAll(Array.from({ length: jobs }, (_, i) => slowJob(tally, sleepMs, i))))
        return { run: async () => ({ observed: sum(await Effect.runPromise(program)) }), teardown }
      }
    }
  ],
  targets: [],
  summary: (median) => {
    const speedup = median("one after the other", "ms") / median(`ours: ${WORKERS} workers`, "ms")
    return [
      `Speedup with ${WORKERS} workers: **${speedup.toFixed(2)}×** (median over median; the ideal is ${WORKERS}×).`,
      "The article (\"Write a Go Worker Pool in 15 minutes\") says its pool made a service about 20× faster. Jobs that only wait cannot finish faster " +
        `than the workers running them at once allow, so ${WORKERS} workers can give at most ${WORKERS}×, never 20×. ` +
        "Its own benchmark output (20.0 s one after the other, 3.0 s with 5 workers: 6.7×) is above 5× too: " +
        "20 one-second jobs through 5 workers take at least 4 s, so the two runs cannot have done the same work."
    ]
  }
}
