/**
 * `node --expose-gc bench/trace-rounds.ts [runs]`: where scenario 2's time goes (its notes quote it).
 *
 * Runs scenario 2's work (10,000 jobs that each wait on a 1 ms timer, concurrency 100) for a few
 * contestants in one process, interleaved, and times every 1 ms timer's callback: when it fired and
 * how long it ran (the job's ending and the next job's start run inside it). Consecutive firings
 * with less than 0.25 ms between one callback's end and the next one's start make a round. Prints,
 * per contestant, the medians over the runs after two warm-ups of:
 * - wall ms and CPU ms of a run;
 * - rounds: how many bursts of timers the run took (about jobs / concurrency when none is lost);
 * - busy: ms per round from its first timer firing to its last callback's end;
 * - gap: ms from a round's end to the next round's first firing (the poll's wait, what ran in the
 *   other phases, collection pauses);
 * - allocated bytes per job: what every collection during the run freed, plus the heap's growth.
 *
 * The floor here sleeps on the global `setTimeout` (the scenario's uses `node:timers/promises`,
 * which shares Node's timer lists but not this hook). Not part of `npm run bench`.
 */
import { Effect, Exit, Scope } from "effect"
import { WorkPool } from "../src/index.ts"
import { allocatedBy } from "./allocated.ts"

const JOBS = 10_000
const CONCURRENCY = 100
const runs = Number(process.argv[2] ?? 7)
const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error("run with node --expose-gc")

// [fired, ended] of every 1 ms timer callback while a run is traced
let firings: Array<number> = []
const setTimeoutUntraced = globalThis.setTimeout
globalThis.setTimeout = ((callback: (...args: Array<unknown>) => void, ms?: number, ...args: Array<unknown>) =>
  ms !== 1 ? setTimeoutUntraced(callback, ms, ...args) : setTimeoutUntraced(() => {
    const fired = performance.now()
    callback(...args)
    firings.push(fired, performance.now())
  }, ms)) as typeof globalThis.setTimeout

let sink = 0
const job = (i: number) => Effect.sleep(1).pipe(Effect.map(() => (sink += i, i)))

/** Submits every job, keeps every handle's await, then awaits them in order: scenario 2's shape. */
const submitAll = Effect.fnUntraced(function*(pool: WorkPool.WorkPool) {
  const handles = new Array<Effect.Effect<number, unknown>>(JOBS)
  for (let i = 0; i < JOBS; i++) handles[i] = (yield* pool.submit(job(i))).await
  return handles
})

const awaitAll = Effect.fnUntraced(function*(handles: ReadonlyArray<Effect.Effect<number, unknown>>) {
  for (const handle of handles) yield* handle
})

/** The same, with the pool made and every job submitted paused and untimed: only the jobs' run is timed. */
const submittedPaused = async (): Promise<() => Promise<unknown>> => {
  const scope = Effect.runSync(Scope.make())
  const pool = await Effect.runPromise(
    WorkPool.make({ concurrency: CONCURRENCY, capacity: Infinity, paused: true }).pipe(Scope.provide(scope))
  )
  const handles = await Effect.runPromise(submitAll(pool))
  return () =>
    Effect.runPromise(Effect.andThen(pool.resume, awaitAll(handles)).pipe(Effect.ensuring(Scope.close(scope, Exit.void))))
}

/** Each contestant prepares untimed and returns its timed run. */
const contestants: Record<string, () => Promise<() => Promise<unknown>>> = {
  "floor: hand-written loops": async () => () => {
    let next = 0
    const loop = async () => {
      while (next < JOBS) {
        const i = next++
        await new Promise<void>((resolve) => setTimeout(resolve, 1))
        sink += i
      }
    }
    return Promise.all(Array.from({ length: CONCURRENCY }, loop))
  },
  "bare forked fibers": async () => () =>
    Effect.runPromise(Effect.callback<void>((resume) => {
      let next = 0
      let done = 0
      const fork = (): void => {
        Effect.runFork(job(next++)).addObserver(() => {
          if (++done === JOBS) resume(Effect.void)
          else if (next < JOBS) fork()
        })
      }
      for (let k = 0; k < CONCURRENCY; k++) fork()
    })),
  "Effect.forEach": async () => {
    const ids = Array.from({ length: JOBS }, (_, i) => i)
    return () => Effect.runPromise(Effect.forEach(ids, job, { concurrency: CONCURRENCY }))
  },
  "ours: submit all, await all": async () => () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: CONCURRENCY, capacity: Infinity })
      yield* awaitAll(yield* submitAll(pool))
    }))),
  "ours: the same, submitted paused (untimed)": submittedPaused,
  "ours: pool.runAll": async () => () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: CONCURRENCY, capacity: Infinity })
      yield* pool.runAll(Array.from({ length: JOBS }, (_, i) => job(i)))
    })))
}

interface Sample {
  readonly wall: number
  readonly cpu: number
  readonly rounds: number
  readonly busy: number
  readonly gap: number
  readonly bytesPerJob: number
}

const measure = async (prepare: () => Promise<() => Promise<unknown>>): Promise<Sample> => {
  const run = await prepare()
  gc()
  firings = []
  const { bytes, cpu, wall } = await allocatedBy(run)
  const rounds: Array<{ first: number; end: number }> = []
  for (let i = 0; i < firings.length; i += 2) {
    const last = rounds.at(-1)
    if (last === undefined || firings[i]! - last.end > 0.25) rounds.push({ first: firings[i]!, end: firings[i + 1]! })
    else last.end = firings[i + 1]!
  }
  let busy = 0
  let gap = 0
  for (let i = 0; i + 1 < rounds.length; i++) {
    busy += rounds[i]!.end - rounds[i]!.first
    gap += rounds[i + 1]!.first - rounds[i]!.end
  }
  const between = Math.max(1, rounds.length - 1)
  return {
    wall,
    cpu,
    rounds: rounds.length,
    busy: busy / between,
    gap: gap / between,
    bytesPerJob: bytes / JOBS
  }
}

const samples = new Map<string, Array<Sample>>()
for (let r = 0; r < runs + 2; r++) {
  for (const [name, prepare] of Object.entries(contestants)) {
    const sample = await measure(prepare)
    if (r >= 2) samples.set(name, [...(samples.get(name) ?? []), sample])
  }
}
const median = (values: Array<number>) => values.sort((a, b) => a - b)[values.length >> 1]!
const floor = median(samples.get("floor: hand-written loops")!.map((s) => s.wall))
console.log(`scenario 2's work, ${runs} runs each after 2 warm-ups, medians; load average ${process.getBuiltinModule("node:os").loadavg().map((l) => l.toFixed(1)).join(" ")}`)
for (const [name, list] of samples) {
  const m = (key: keyof Sample) => median(list.map((s) => s[key]))
  console.log(
    `${name.padEnd(44)} ${m("wall").toFixed(1).padStart(6)} ms (${(m("wall") / floor).toFixed(2)}× floor)  cpu ${m("cpu").toFixed(1).padStart(5)} ms  ` +
      `rounds ${String(m("rounds")).padStart(3)}  busy ${m("busy").toFixed(3)}  gap ${m("gap").toFixed(3)} ms/round  ` +
      `${m("bytesPerJob").toFixed(0).padStart(5)} B allocated/job`
  )
}
process.exit(0)
