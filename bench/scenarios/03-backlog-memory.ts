/**
 * Scenario 3, backlog memory: a million jobs queued behind one blocked job. What a queued job costs
 * on the heap decides how big a backlog a process can hold. The heap is measured after a full GC
 * just before queueing and just after; the difference counts everything the backlog keeps alive:
 * the job itself as the user writes it, the library's record of it, and the handle or promise the
 * submitter keeps to get the result (an array slot each, the same for all). Then the blocker is
 * released and the drain is timed.
 */
import { Effect, Fiber } from "effect"
import fastq from "fastq"
import PQueue from "p-queue"
import { performance } from "node:perf_hooks"
import { type Contestant, gate, makePool, type RunOutcome, type Scenario, settledHeap } from "../common.ts"

const sum = (results: ReadonlyArray<number>) => {
  let s = 0
  for (const r of results) s += r
  return s
}

/** Times the drain and packs the outcome. */
const drain = async (
  jobs: number,
  before: number,
  after: number,
  release: () => void,
  results: () => Promise<number>
): Promise<RunOutcome> => {
  const t0 = performance.now()
  release()
  const observed = await results()
  return { observed, ms: performance.now() - t0, heapBytesPerJob: (after - before) / jobs }
}

/**
 * Ours, a handle kept per job. `perJob`: a new `Effect.sync` per job, as users write it (the total a
 * backlog costs). `shared`: one `Effect.sync` for every job, each run taking the next job number
 * (FIFO at concurrency 1), so that the bytes are the pool's own share: its record and queue slot,
 * and the kept handle's array slot.
 */
const oursSubmit = (name: string, job: "perJob" | "shared"): Contestant => ({
  name,
  library: "effect-workpool",
  setup: async ({ jobs }, tally) => {
    const { pool, teardown } = await makePool({ concurrency: 1, capacity: Infinity })
    return {
      run: async () => {
        const blocker = gate()
        const blocked = await Effect.runPromise(pool.submit(Effect.promise(() => blocker.promise)))
        let next = 0
        const shared = Effect.sync(() => tally.job(next++))
        const before = settledHeap()
        const handles = await Effect.runPromise(Effect.gen(function*() {
          const handles = new Array<{ readonly await: Effect.Effect<number, unknown> }>(jobs)
          if (job === "shared") for (let i = 0; i < jobs; i++) handles[i] = yield* pool.submit(shared)
          else for (let i = 0; i < jobs; i++) handles[i] = yield* pool.submit(Effect.sync(() => tally.job(i)))
          return handles
        }))
        const after = settledHeap()
        return drain(jobs, before, after, blocker.open, () =>
          Effect.runPromise(Effect.gen(function*() {
            yield* blocked.await
            let s = 0
            for (const h of handles) s += yield* h.await
            return s
          })))
      },
      teardown
    }
  }
})

export const scenario: Scenario = {
  id: "3",
  title: "Backlog memory: jobs queued behind a blocked job",
  description: "Concurrency 1, unbounded queue. One job blocks on a gate; then every other job is submitted and kept " +
    "(handle or promise). Heap bytes per queued job = heapUsed after a full GC with the backlog queued, minus before, " +
    "over the number of jobs. Then the gate opens and the drain (all results awaited) is timed.",
  sizes: { full: { jobs: 1_000_000 }, quick: { jobs: 50_000 }, warmup: { jobs: 100_000 } },
  metrics: ["heapBytesPerJob", "drainJobsPerSec"],
  nodeFlags: ["--max-old-space-size=4096"],
  contestants: [
    {
      name: "p-queue",
      library: "p-queue",
      anchor: true,
      setup: async ({ jobs }, tally) => {
        const queue = new PQueue({ concurrency: 1 })
        return {
          run: async () => {
            const blocker = gate()
            const blocked = queue.add(() => blocker.promise)
            const before = settledHeap()
            const results = new Array<Promise<number>>(jobs)
            for (let i = 0; i < jobs; i++) results[i] = queue.add(async () => tally.job(i))
            const after = settledHeap()
            return drain(jobs, before, after, blocker.open, async () => {
              await blocked
              return sum(await Promise.all(results))
            })
          }
        }
      }
    },
    {
      name: "fastq (promise API)",
      library: "fastq",
      anchor: true,
      setup: async ({ jobs }, tally) => {
        const blocker = gate()
        // job -1 is the blocker; fastq hands each job its argument, so no closure per job
        const queue = fastq.promise(async (i: number) => (i < 0 ? blocker.promise.then(() => 0) : tally.job(i)), 1)
        return {
          run: async () => {
            const blocked = queue.push(-1)
            const before = settledHeap()
            const results = new Array<Promise<number>>(jobs)
            for (let i = 0; i < jobs; i++) results[i] = queue.push(i)
            const after = settledHeap()
            return drain(jobs, before, after, blocker.open, async () => {
              await blocked
              return sum(await Promise.all(results))
            })
          }
        }
      }
    },
    oursSubmit("ours: submit (Effect.sync job)", "perJob"),
    oursSubmit("ours: submit (one shared job Effect)", "shared"),
    {
      name: "ours: runAll (Effect.sync jobs)",
      library: "effect-workpool",
      setup: async ({ jobs }, tally) => {
        const { pool, teardown } = await makePool({ concurrency: 1, capacity: Infinity })
        return {
          run: async () => {
            const blocker = gate()
            const blocked = await Effect.runPromise(pool.submit(Effect.promise(() => blocker.promise)))
            const before = settledHeap()
            // runFork starts runAll at once: every job is queued when it returns
            const all = Effect.runFork(pool.runAll(Array.from({ length: jobs }, (_, i) => Effect.sync(() => tally.job(i)))))
            const after = settledHeap()
            return drain(jobs, before, after, blocker.open, () =>
              Effect.runPromise(Effect.gen(function*() {
                yield* blocked.await
                return sum(yield* Fiber.join(all))
              })))
          },
          teardown
        }
      }
    }
  ],
  targets: [
    { label: "ours (submit, the pool's own share: one shared job Effect) ≤ 120 heap bytes per queued job", metric: "heapBytesPerJob", contestant: "ours: submit (one shared job Effect)", atMost: 120 },
    { label: "ours (submit) drains at ≥ fastq's rate", metric: "drainJobsPerSec", contestant: "ours: submit (Effect.sync job)", anchor: "fastq (promise API)", atLeast: 1 }
  ],
  notes: [
    "Each contestant's bytes include the job as its users write it: a closure for p-queue, an `Effect.sync` for ours, " +
      "only the job's argument for fastq (its worker is shared), and an array slot for the kept promise or handle.",
    "`ours: submit (one shared job Effect)` submits the same `Effect.sync` a million times (each run takes the next job " +
      "number), so its bytes are the pool's own share per queued job (its record, its queue slot, the kept handle's " +
      "array slot); the 120-byte target is on that row. `ours: submit (Effect.sync job)` beside it is the total with a new " +
      "`Effect.sync` and closure per job, as users write it.",
    "`runAll` keeps no handle per job: it is shown for information and has no target."
  ]
}
