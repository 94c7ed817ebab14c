/**
 * Scenario 6, thread round trip: tasks that do nothing on a pool of 2 threads, so the time is what
 * the pool costs per task: sending the task to a thread, running it there, sending the result back
 * and handing it to the caller. Two ways: one at a time (await each before sending the next: the
 * latency of one round trip) and all at once (submit all, then await all: the cost per task when
 * the pool has a backlog).
 *
 * Setup (untimed) starts the pool, waits until every thread has answered (see `awaitThreads` in
 * bench/threads.ts) and runs a thousand tasks through it the same way, so the timed part has warm
 * threads.
 */
import type { Effect } from "effect"
import type { Contestant, Scenario } from "../common.ts"
import { ResultTally, type Tally } from "../tally.ts"
import { Floor, type OpenPool, ours, piscina, poolifier, type PromisePool, THREADS, tinypool, workerpool } from "../threads.ts"
import { noop } from "../workers/cpu.ts"

/** Tasks run through a new pool before the timed part, the same way as the timed ones (fewer if the run is smaller). */
const PRIME = 1_000
const prime = (jobs: number) => Math.min(PRIME, jobs)

type Mode = "one at a time" | "all at once"
const MODES: ReadonlyArray<Mode> = ["one at a time", "all at once"]
const name = (who: string, mode: Mode) => `${who}: ${mode}`

const OURS = "ours: ThreadPool"
const PISCINA = "piscina"

const results = (tally: Tally): ResultTally => {
  if (!(tally instanceof ResultTally)) throw new Error("scenario 6 needs a ResultTally")
  return tally
}

/** Runs jobs 0..n-1 through a Promise-based pool; `done` gets each result, returns what to add up. */
const promiseWays: Record<Mode, (pool: PromisePool, n: number, done: (i: number, r: number) => number) => Promise<number>> = {
  "one at a time": async (pool, n, done) => {
    let observed = 0
    for (let i = 0; i < n; i++) observed += done(i, await pool.run(i))
    return observed
  },
  "all at once": async (pool, n, done) => {
    const pending = new Array<Promise<number>>(n)
    for (let i = 0; i < n; i++) pending[i] = pool.run(i)
    const values = await Promise.all(pending)
    let observed = 0
    for (let i = 0; i < n; i++) observed += done(i, values[i]!)
    return observed
  }
}

const library = (who: string, lib: string, open: OpenPool, mode: Mode): Contestant => ({
  name: name(who, mode),
  library: lib,
  ...(lib === "piscina" ? { anchor: true } : {}),
  setup: async ({ jobs }, tally) => {
    const t = results(tally)
    const pool = await open("noop")
    const way = promiseWays[mode]
    await way(pool, prime(jobs), (_i, r) => r)
    return { run: async () => ({ observed: await way(pool, jobs, t.done) }), teardown: () => pool.close() }
  }
})

/**
 * The floor's two ways, driven from its result callback: one at a time sends the next job when a
 * result comes back (to the threads in turn); all at once sends every job round-robin up front.
 */
const floorWays: Record<Mode, (floor: Floor, n: number, done: (i: number, r: number) => number) => Promise<number>> = {
  "one at a time": (floor, n, done) =>
    new Promise((resolve) => {
      let observed = 0
      let next = 0
      floor.onResult = (i, result) => {
        observed += done(i, result)
        if (next < n) floor.send(next % THREADS, next++)
        else resolve(observed)
      }
      floor.send(0, next++)
    }),
  "all at once": (floor, n, done) =>
    new Promise((resolve) => {
      let observed = 0
      let finished = 0
      floor.onResult = (i, result) => {
        observed += done(i, result)
        if (++finished === n) resolve(observed)
      }
      for (let i = 0; i < n; i++) floor.send(i % THREADS, i)
    })
}

const floor = (mode: Mode): Contestant => ({
  name: name("floor: raw worker_threads", mode),
  library: "node",
  setup: async ({ jobs }, tally) => {
    const t = results(tally)
    const f = await Floor.open("noop")
    const way = floorWays[mode]
    await way(f, prime(jobs), (_i, r) => r)
    return { run: async () => ({ observed: await way(f, jobs, t.done) }), teardown: () => f.close() }
  }
})

const oursIn = (mode: Mode): Contestant => ({
  name: name(OURS, mode),
  library: "effect-workpool",
  setup: async ({ jobs }, tally) => {
    const t = results(tally)
    // imported here, so that the other contestants' children do not load Effect
    const { Effect } = await import("effect")
    const { Noop } = await import("../workers/ours-tasks.ts")
    const { close, pool } = await ours()
    const way = (n: number, done: (i: number, r: number) => number) =>
      mode === "one at a time"
        ? Effect.gen(function*() {
          let observed = 0
          for (let i = 0; i < n; i++) observed += done(i, yield* pool.run(Noop, i))
          return observed
        })
        : Effect.gen(function*() {
          const handles = new Array<Effect.Effect<number, unknown>>(n)
          for (let i = 0; i < n; i++) handles[i] = (yield* pool.submit(Noop, i)).await
          let observed = 0
          for (let i = 0; i < n; i++) observed += done(i, yield* handles[i]!)
          return observed
        })
    await Effect.runPromise(way(prime(jobs), (_i, r) => r))
    const program = way(jobs, t.done)
    return { run: async () => ({ observed: await Effect.runPromise(program) }), teardown: close }
  }
})

export const scenario: Scenario = {
  id: "6",
  title: "Thread round trip: no-op tasks",
  description: `Tasks that return their number at once, on a pool of ${THREADS} threads. One at a time: each task is awaited ` +
    "before the next is sent (the latency of a round trip). All at once: every task is submitted, then all are awaited " +
    "(the cost per task with a backlog). The floor is hand-written on `worker_threads` (a job number out, a number back).",
  sizes: { full: { jobs: 20_000 }, quick: { jobs: 500 }, warmup: { jobs: 2_000 } },
  metrics: ["usPerJob"],
  tally: ({ jobs }) => new ResultTally(jobs, noop),
  // every run starts its own threads and warms them: the smoke test does one repetition, no warm-up run
  quick: { reps: 1, warmups: 0 },
  contestants: MODES.flatMap((mode) => [
    floor(mode),
    library(PISCINA, "piscina", piscina, mode),
    library("tinypool", "tinypool", tinypool, mode),
    library("workerpool", "workerpool", workerpool, mode),
    library("poolifier (FixedThreadPool)", "poolifier", poolifier, mode),
    oursIn(mode)
  ]),
  targets: [
    {
      label: "ours one at a time: latency ≤ piscina's",
      metric: "usPerJob",
      contestant: name(OURS, "one at a time"),
      anchor: name(PISCINA, "one at a time"),
      atMost: 1
    },
    {
      label: "ours all at once: cost per task ≤ 0.5× piscina's",
      metric: "usPerJob",
      contestant: name(OURS, "all at once"),
      anchor: name(PISCINA, "all at once"),
      atMost: 0.5
    }
  ],
  summary: (median) =>
    MODES.map((mode) => {
      const floorUs = median(name("floor: raw worker_threads", mode), "usPerJob")
      const oursUs = median(name(OURS, mode), "usPerJob")
      return `${mode[0]!.toUpperCase()}${mode.slice(1)}: ours ${oursUs.toFixed(1)} µs per task, the raw \`worker_threads\` floor ` +
        `${floorUs.toFixed(1)} µs (ours ÷ floor: ${(oursUs / floorUs).toFixed(2)}×).`
    }),
  notes: [
    "Only piscina's two rows are anchors (the targets are set against piscina); a ratio to the other way's anchor compares " +
      "two different things and is there only because the table gives every row a ratio to every anchor.",
    "Every pool keeps its default options but the thread count (ours: `capacity: Infinity`, so that every submit is admitted " +
      "at once). By default an idle piscina thread, and an idle thread of ours while its event loop has nothing else to wait " +
      "for (docs/threads.md), blocks in `Atomics.wait` and reads its next task with `receiveMessageOnPort`, woken by " +
      "`Atomics.notify`; the floor and the others wait for the message in the thread's event loop. " +
      "On this machine (a virtual machine with 2 cores) waking a thread that way costs far more than the work of a no-op task, " +
      "so a parked pool can beat the hand-written floor one at a time: the floor is the least code, not the fastest wake-up.",
    "The floor sends job numbers to the threads in turn and reads the results in order per thread: no ids, no queue, no promise per task.",
    "One at a time is the noisiest number here: most of a round trip is the time the machine takes to wake a sleeping thread, " +
      "which on this shared virtual machine changes with the load of its neighbours. In one full run the same contestant's runs " +
      "differed by 3–10×, and a busy process elsewhere on the machine cut the floor's round trip from about 300 µs to 30 µs. " +
      "Read the min–max column before the verdict; all at once keeps the threads busier and varies less.",
    `Setup, untimed, starts the pool, waits until each thread has answered a probe, and runs ${PRIME.toLocaleString("en-US")} tasks ` +
      "through it the same way as the timed run."
  ]
}
