/**
 * Scenario 2, latency-bound: every job waits on a timer, so a good pool is as fast as the timers
 * allow. The floor is the simplest code that can do it: `concurrency` async loops pulling job
 * numbers from a shared counter.
 */
import { Effect } from "effect"
import fastq from "fastq"
import pLimit from "p-limit"
import PQueue from "p-queue"
import { makePool, type Scenario, sleep, type Tally } from "../common.ts"

const CONCURRENCY = 100

const sum = (results: ReadonlyArray<number>) => {
  let s = 0
  for (const r of results) s += r
  return s
}

/** The Promise job: sleep on a real timer, then count and return the result. */
const promiseJob = (tally: Tally, ms: number, i: number) => async () => {
  await sleep(ms)
  return tally.job(i)
}

/** The Effect job: the same under Effect's real clock. */
const effectJob = (tally: Tally, ms: number, i: number) => Effect.sleep(ms).pipe(Effect.map(() => tally.job(i)))

export const scenario: Scenario = {
  id: "2",
  title: "Latency-bound: 1 ms timer jobs",
  description: `Each job waits 1 ms on a real timer (\`setTimeout\`, or \`Effect.sleep(1)\` for Effect jobs), concurrency ${CONCURRENCY}. ` +
    "The floor is a hand-written loop: 100 async loops pulling job numbers from a shared counter.",
  sizes: {
    full: { jobs: 10_000, sleepMs: 1 },
    quick: { jobs: 2_000, sleepMs: 1 },
    warmup: { jobs: 3_000, sleepMs: 1 }
  },
  metrics: ["ms"],
  contestants: [
    {
      name: "floor: hand-written loops",
      library: "node",
      anchor: true,
      setup: async ({ jobs, sleepMs = 1 }, tally) => ({
        run: async () => {
          let next = 0
          let observed = 0
          const loop = async () => {
            while (next < jobs) {
              // not `observed += await ...`: that reads `observed` before the await and loses updates
              const result = await promiseJob(tally, sleepMs, next++)()
              observed += result
            }
          }
          await Promise.all(Array.from({ length: CONCURRENCY }, loop))
          return { observed }
        }
      })
    },
    {
      name: "p-queue",
      library: "p-queue",
      anchor: true,
      setup: async ({ jobs, sleepMs = 1 }, tally) => {
        const queue = new PQueue({ concurrency: CONCURRENCY })
        return {
          run: async () => {
            const results = new Array<Promise<number>>(jobs)
            for (let i = 0; i < jobs; i++) results[i] = queue.add(promiseJob(tally, sleepMs, i))
            return { observed: sum(await Promise.all(results)) }
          }
        }
      }
    },
    {
      name: "fastq (promise API)",
      library: "fastq",
      setup: async ({ jobs, sleepMs = 1 }, tally) => {
        const queue = fastq.promise((i: number) => promiseJob(tally, sleepMs, i)(), CONCURRENCY)
        return {
          run: async () => {
            const results = new Array<Promise<number>>(jobs)
            for (let i = 0; i < jobs; i++) results[i] = queue.push(i)
            return { observed: sum(await Promise.all(results)) }
          }
        }
      }
    },
    {
      name: "p-limit",
      library: "p-limit",
      setup: async ({ jobs, sleepMs = 1 }, tally) => {
        const limit = pLimit(CONCURRENCY)
        return {
          run: async () => {
            const results = new Array<Promise<number>>(jobs)
            for (let i = 0; i < jobs; i++) results[i] = limit(promiseJob(tally, sleepMs, i))
            return { observed: sum(await Promise.all(results)) }
          }
        }
      }
    },
    {
      name: "Effect.forEach",
      library: "effect",
      setup: async ({ jobs, sleepMs = 1 }, tally) => {
        const ids = Array.from({ length: jobs }, (_, i) => i)
        const program = Effect.forEach(ids, (i) => effectJob(tally, sleepMs, i), { concurrency: CONCURRENCY })
        return { run: async () => ({ observed: sum(await Effect.runPromise(program)) }) }
      }
    },
    {
      name: "ours: Effect.sleep job",
      library: "effect-workpool",
      setup: async ({ jobs, sleepMs = 1 }, tally) => {
        const { pool, teardown } = await makePool({ concurrency: CONCURRENCY, capacity: Infinity })
        const program = Effect.gen(function*() {
          const handles = new Array<Effect.Effect<number, unknown>>(jobs)
          for (let i = 0; i < jobs; i++) handles[i] = (yield* pool.submit(effectJob(tally, sleepMs, i))).await
          let s = 0
          for (const h of handles) s += yield* h
          return s
        })
        return { run: async () => ({ observed: await Effect.runPromise(program) }), teardown }
      }
    },
    {
      name: "ours: pool.runAll (Effect.sleep jobs)",
      library: "effect-workpool",
      setup: async ({ jobs, sleepMs = 1 }, tally) => {
        const { pool, teardown } = await makePool({ concurrency: CONCURRENCY, capacity: Infinity })
        const program = Effect.suspend(() => pool.runAll(Array.from({ length: jobs }, (_, i) => effectJob(tally, sleepMs, i))))
        return { run: async () => ({ observed: sum(await Effect.runPromise(program)) }), teardown }
      }
    },
    {
      name: "ours: Effect.promise job",
      library: "effect-workpool",
      setup: async ({ jobs, sleepMs = 1 }, tally) => {
        const { pool, teardown } = await makePool({ concurrency: CONCURRENCY, capacity: Infinity })
        const program = Effect.gen(function*() {
          const handles = new Array<Effect.Effect<number, unknown>>(jobs)
          for (let i = 0; i < jobs; i++) {
            handles[i] = (yield* pool.submit(Effect.promise(promiseJob(tally, sleepMs, i)))).await
          }
          let s = 0
          for (const h of handles) s += yield* h
          return s
        })
        return { run: async () => ({ observed: await Effect.runPromise(program) }), teardown }
      }
    }
  ],
  targets: [
    { label: "ours (Effect.sleep job) within 10% of the floor", metric: "ms", contestant: "ours: Effect.sleep job", anchor: "floor: hand-written loops", atMost: 1.1 }
  ],
  notes: [
    "Node groups timers by their millisecond, so the floor is about jobs / concurrency rounds of a little over 1 ms each.",
    "Our pool's contestants submit every job first and then await them, like p-queue, fastq and p-limit; the floor and " +
      "`Effect.forEach` start a job only when a slot frees up. `pool.runAll` is shown for information and has no target."
  ]
}
