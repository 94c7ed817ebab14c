/**
 * Scenario 4, priority under load: a backlog of jobs with random priorities. Everything is
 * submitted while the queue is paused, then the queue starts; the timed part is submission plus
 * drain, so it covers inserting into the priority queue and taking out of it. With concurrency 1
 * the start order must be non-increasing priority, FIFO within a priority: the checksum checks it.
 */
import { Effect } from "effect"
import PQueue from "p-queue"
import { makePool, prng, type Scenario, Tally } from "../common.ts"

/** Priorities 0..9, the same seeded sequence for every contestant and every run. */
const LEVELS = 10
const priorities = (n: number): Int8Array => {
  const random = prng(20240601)
  const out = new Int8Array(n)
  for (let i = 0; i < n; i++) out[i] = Math.floor(random() * LEVELS)
  return out
}

const sum = (results: ReadonlyArray<number>) => {
  let s = 0
  for (const r of results) s += r
  return s
}

export const scenario: Scenario = {
  id: "4",
  title: "Priority under load",
  description: `Jobs with random priorities 0–${LEVELS - 1} (seeded PRNG, same sequence for all), concurrency 1, all ` +
    "submitted while paused, then started; submission plus drain is timed. p-queue is the only anchor with priorities.",
  sizes: { full: { jobs: 100_000 }, quick: { jobs: 10_000 }, warmup: { jobs: 20_000 } },
  metrics: ["jobsPerSec"],
  tally: (size) => new Tally(size.jobs, priorities(size.jobs)),
  contestants: [
    {
      name: "p-queue",
      library: "p-queue",
      anchor: true,
      setup: async ({ jobs }, tally) => {
        const queue = new PQueue({ concurrency: 1, autoStart: false })
        const priority = tally.priorities!
        return {
          run: async () => {
            const results = new Array<Promise<number>>(jobs)
            for (let i = 0; i < jobs; i++) {
              results[i] = queue.add(async () => tally.job(i), { priority: priority[i]! })
            }
            queue.start()
            return { observed: sum(await Promise.all(results)) }
          }
        }
      }
    },
    {
      name: "ours: submit with priority",
      library: "effect-workpool",
      setup: async ({ jobs }, tally) => {
        const { pool, teardown } = await makePool({ concurrency: 1, capacity: Infinity, paused: true })
        const priority = tally.priorities!
        const program = Effect.gen(function*() {
          const handles = new Array<Effect.Effect<number, unknown>>(jobs)
          for (let i = 0; i < jobs; i++) {
            handles[i] = (yield* pool.submit(Effect.sync(() => tally.job(i)), { priority: priority[i]! })).await
          }
          yield* pool.resume
          let s = 0
          for (const h of handles) s += yield* h
          return s
        })
        return { run: async () => ({ observed: await Effect.runPromise(program) }), teardown }
      }
    }
  ],
  targets: [
    { label: "ours ≥ 3× p-queue", metric: "jobsPerSec", contestant: "ours: submit with priority", anchor: "p-queue", atLeast: 3 }
  ],
  notes: [
    "p-queue keeps its waiting tasks in one sorted array and inserts with a binary search and a splice, " +
      "so each submission of a higher priority than the last waiting task costs time in proportion to the backlog. " +
      "Ours keeps a FIFO lane per priority and a heap of lanes."
  ]
}
