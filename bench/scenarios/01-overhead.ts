/**
 * Scenario 1, overhead: many trivial jobs, so that the time is the queue's own cost per job.
 * Every contestant submits all jobs, then awaits all results.
 */
import { Effect } from "effect"
import fastq from "fastq"
import pLimit from "p-limit"
import PQueue from "p-queue"
import { type Contestant, makePool, type Scenario, type Size, type Tally } from "../common.ts"

const CONCURRENCY = 8

/** The Promise-returning job every Promise-based contestant gets. */
const promiseJob = (tally: Tally, i: number) => async () => tally.job(i)

const sum = (results: ReadonlyArray<number>) => {
  let s = 0
  for (const r of results) s += r
  return s
}

/** Ours, submit all then await all: a handle per job, awaited in order. */
const ours = (
  name: string,
  job: (tally: Tally, i: number) => Effect.Effect<number>,
  options: { readonly metrics?: boolean } = {}
): Contestant => ({
  name,
  library: "effect-workpool",
  setup: async ({ jobs }: Size, tally) => {
    const { pool, teardown } = await makePool({ concurrency: CONCURRENCY, capacity: Infinity, ...options })
    const program = Effect.gen(function*() {
      const handles = new Array<Effect.Effect<number, unknown>>(jobs)
      for (let i = 0; i < jobs; i++) handles[i] = (yield* pool.submit(job(tally, i))).await
      let s = 0
      for (const h of handles) s += yield* h
      return s
    })
    return { run: async () => ({ observed: await Effect.runPromise(program) }), teardown }
  }
})

export const scenario: Scenario = {
  id: "1",
  title: "Overhead: trivial jobs",
  description: `Trivial jobs (a counter and an integer hash), concurrency ${CONCURRENCY}: submit all, then await all. ` +
    "The anchors get a Promise-returning job (`async () => job(i)`).",
  sizes: { full: { jobs: 200_000 }, quick: { jobs: 20_000 }, warmup: { jobs: 20_000 } },
  metrics: ["jobsPerSec", "peakHeapMB", "cpuUsPerJob"],
  contestants: [
    {
      name: "p-queue",
      library: "p-queue",
      anchor: true,
      setup: async ({ jobs }, tally) => {
        const queue = new PQueue({ concurrency: CONCURRENCY })
        return {
          run: async () => {
            const results = new Array<Promise<number>>(jobs)
            for (let i = 0; i < jobs; i++) results[i] = queue.add(promiseJob(tally, i))
            return { observed: sum(await Promise.all(results)) }
          }
        }
      }
    },
    {
      name: "fastq (promise API)",
      library: "fastq",
      anchor: true,
      setup: async ({ jobs }, tally) => {
        const queue = fastq.promise(async (i: number) => tally.job(i), CONCURRENCY)
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
      anchor: true,
      setup: async ({ jobs }, tally) => {
        const limit = pLimit(CONCURRENCY)
        return {
          run: async () => {
            const results = new Array<Promise<number>>(jobs)
            for (let i = 0; i < jobs; i++) results[i] = limit(promiseJob(tally, i))
            return { observed: sum(await Promise.all(results)) }
          }
        }
      }
    },
    {
      name: "Effect.forEach",
      library: "effect",
      anchor: true,
      setup: async ({ jobs }, tally) => {
        const ids = Array.from({ length: jobs }, (_, i) => i)
        const program = Effect.forEach(ids, (i) => Effect.sync(() => tally.job(i)), { concurrency: CONCURRENCY })
        return { run: async () => ({ observed: sum(await Effect.runPromise(program)) }) }
      }
    },
    ours("ours: Effect.sync job", (tally, i) => Effect.sync(() => tally.job(i))),
    ours("ours: Effect.sync job, metrics: false", (tally, i) => Effect.sync(() => tally.job(i)), { metrics: false }),
    ours("ours: Effect.promise job", (tally, i) => Effect.promise(promiseJob(tally, i))),
    {
      name: "ours: pool.runAll (Effect.sync)",
      library: "effect-workpool",
      setup: async ({ jobs }, tally) => {
        const { pool, teardown } = await makePool({ concurrency: CONCURRENCY, capacity: Infinity })
        const program = Effect.suspend(() =>
          pool.runAll(Array.from({ length: jobs }, (_, i) => Effect.sync(() => tally.job(i))))
        )
        return { run: async () => ({ observed: sum(await Effect.runPromise(program)) }), teardown }
      }
    }
  ],
  targets: [
    { label: "ours (native job) ≥ 3× fastq", metric: "jobsPerSec", contestant: "ours: Effect.sync job", anchor: "fastq (promise API)", atLeast: 3 },
    { label: "ours (native job) ≥ 0.5× Effect.forEach", metric: "jobsPerSec", contestant: "ours: Effect.sync job", anchor: "Effect.forEach", atLeast: 0.5 },
    { label: "ours (Promise job) ≥ 2× p-queue", metric: "jobsPerSec", contestant: "ours: Effect.promise job", anchor: "p-queue", atLeast: 2 },
    { label: "ours (native job) peak heap ≤ 2× Effect.forEach's", metric: "peakHeapMB", contestant: "ours: Effect.sync job", anchor: "Effect.forEach", atMost: 2 },
    {
      label: "metrics cost ≤ 5%: ours with metrics ≥ 0.95× ours with metrics: false",
      metric: "jobsPerSec",
      contestant: "ours: Effect.sync job",
      anchor: "ours: Effect.sync job, metrics: false",
      atLeast: 0.95
    }
  ],
  notes: [
    "Our pool runs with `capacity: Infinity`, so every submit is admitted at once and the run really is \"submit all, then await all\".",
    "`pool.runAll` is the bulk form of the same work: it is shown for information and has no target.",
    "`metrics: false` shows what the pool's Effect metrics cost a trivial job (they are on by default; the budget is 5% " +
      "of throughput). CPU µs per job is the process's user + system time during the timed run (every thread, GC " +
      "included) over the jobs: beside another CPU-bound process (1L) wall time also measures the share of a core the " +
      "OS gave each run, so compare the two rows' CPU there too.",
    "Peak heap: the most heap in use during the timed run (the largest used heap any garbage collection found, or the " +
      "heap at the end), over the heap after a full collection just before it. It includes what the contestant keeps " +
      "for its results: a promise or a handle per job, or `Effect.forEach`'s array.",
    "An `Effect.sync` job on a free worker runs without a fiber of its own, and an `Effect.promise` job waits for its " +
      "promise without one (see the README's Performance section).",
    "fastq is measured through its promise API (`fastq.promise`), the form that hands back a result per job like the others. " +
      "Its callback API with a synchronous worker never queues anything (each job completes inside `push`), so it measures no queue.",
    "Why ours stays behind `Effect.forEach` (profiled with perf on the 2-core VM, main thread): the run keeps one Effect per " +
      "job (`handle.await`, the job's Exit, 16 bytes, plus its boxed number), while `Effect.forEach` keeps its results unboxed " +
      "in one array. A plain `Effect.gen` loop that keeps an Exit per job, and has no pool, already takes 1.2–1.6× " +
      "`Effect.forEach`'s CPU time. The largest part of the pool's own share is its two clock reads per job (a job's start " +
      "and its stop, for its wait and run times in `stats` and the metrics, and its deadlines; `Date.now` costs 40–50 ns in " +
      "this VM): 12% of the whole run's CPU profile. A start that follows a stop takes the stop's reading when nothing " +
      "else has run since, but here each job starts as it is submitted, after the submitter's own code.",
    "`bench/trace-overhead.ts` runs this work in one process beside that loop with no pool (an `Effect.exit` per " +
      "job): the loop alone allocates 432 bytes per job and takes 0.56× `Effect.forEach`'s CPU time, so the pool " +
      "has almost nothing of either target's budget left. Ours allocates 551 bytes per job (a job record, the " +
      "submit, its iterator, the job's Exit and two clock readings, which V8 boxes).",
    "Why our peak heap is about twice `Effect.forEach`'s: those kept Exits survive young-generation collections, and once " +
      "16 MB have survived V8 doubles its young generation (16 to 32 MB) near the end of the run. Run with " +
      "`--max-semi-space-size=16` (no doubling) our peak is 26.4 MB, 1.32× `Effect.forEach`'s 20.1 MB, which the flag does not change.",
    "What a finished job leaves behind is its Exit and nothing else: with 200,000 finished jobs' `handle.await` kept, the " +
      "heap after a full collection grows by 32 bytes per job, one Exit (an ended job's `await` is its Exit; its record, " +
      "Effect and services are garbage), and by 42 with this scenario's results: half of its 32-bit hashes are past " +
      "V8's small integers and boxed in 16 bytes of their own. A kept handle instead of its `await` costs 120 bytes " +
      "with a small integer result (its record and the Exit). So no field of the record is left to shrink for this scenario. In the child's " +
      "`--trace-gc-nvp` trace V8 grows the young generation at the run's 7th scavenge, near its end, when 18.5 MB have survived " +
      "since its last growth (it grows once that passes its 16 MiB): 4.7 MB promoted by the full collections before the " +
      "run, the kept-handles array (1.6 MB), then per scavenge about 1.4 MB copied and as much promoted (0.86 MB each when first measured, before later changes), the same kept Exits " +
      "counted twice. Allocating less per job changes how many scavenges there are, not what survives them: 12% fewer " +
      "bytes per job (`submit` without `Effect.withFiber`) left the peak at 40.6 MB.",
    "Where the 4.7–5.3 MB counted before the run come from, and what could avoid the growth (`bench/probe/youngGrowth.ts`, " +
      "which prints the child's collections with V8's count; it grows the young generation at exactly the scavenge where " +
      "the bytes promoted or copied since its last growth pass its capacity, in every growth of both children): module " +
      "loading, the same in `Effect.forEach`'s child. 1.2–2.1 MB are promoted by a full collection V8 starts itself while " +
      "the modules load, 3.2–3.4 MB by the first `gc()` of the first warm-up (after a full collection, loading `effect` alone keeps " +
      "14 MB, our `src` 1.4 MB, the rest 0.3 MB); the warm-ups leave nothing (the later full collections promote 60, 10 " +
      "and 30 KB, and the heap after them stays within 0.3 MB), so no pool of theirs is kept. `Effect.forEach`'s child " +
      "counts 4.5–5.7 MB there plus its 1.6 MB of ids, and its run adds 1.6 MB (its results array, doubles unboxed), " +
      "so it never reaches 16 MiB. Nothing per job survives that need not: ours keeps 40.4–40.7 bytes per job past a " +
      "scavenge, and a loop keeping one `Exit.succeed` per job and no pool 40.2–40.5 (`bench/probe/survivors.ts`). " +
      "Counted twice (copied, then promoted), 200,000 kept Exits alone come to about 16 MB, so the run's own survivors " +
      "(with the handles array, about 18 MB) would pass 16 MiB near its end even with nothing before it. Ours grows at " +
      "its 5th scavenge (count 15.8–16.4 MB after the 4th, 18.6–19.2 after the 5th), after about 180,000 jobs; the " +
      "rest of the submits (358 bytes a job) and the await loop (137 bytes a job, `yield*` of an Exit in `Effect.gen`) " +
      "then allocate 34 MB in a 32 MB young generation, and the peak is about the run's 9 MB of promoted Exits plus those " +
      "32 MB. With about 2 MB fewer counted before the 5th scavenge the growth would come at the 6th, in the await " +
      "loop with some 22 MB left to allocate (by the same sum a peak near 31 MB, 1.55×; estimated, not run). That " +
      "is not the pool's to cut: its modules are 1.4 MB of the loading, its per-job survivors the Exit's floor.",
    "The fastq ratio depends on timing the first full-size run: with the child's warm-ups followed by five full-size " +
      "runs, a fresh queue or pool each (`bench/probe/firstRun.ts`; CPU of every thread per run; 5 processes for fastq " +
      "and ours, 3 for `Effect.forEach`; load 5), fastq's first run took 499–542 ms of CPU and its later ones 251–299 " +
      "(the first grows the heap for its 190 MB of promises), ours 164–195 and 142–181, `Effect.forEach`'s 55–59 and " +
      "46–72. So in a warm process ours takes about 0.6× fastq's CPU (1.6× its speed, not 3×), and 3.2× " +
      "`Effect.forEach`'s.",
    "What is left of the pool's own share per job (measured at load 6–10 from other work, so only large effects " +
      "show): the wait and run histograms now hear only times above 0 ms (their 0 ms count is the pool's own " +
      "counts less those), so `metrics: false` saves a trivial job nothing: in one process (`bench/trace-overhead.ts`, " +
      "9 runs) 0.898 µs per job with metrics against 0.899 without, where it was 0.978 against 0.882. The inline " +
      "caches of the pool's hot path are monomorphic (`--log-ic`: the polymorphic and megamorphic sites on it are " +
      "Effect's own, the run loop's `evaluate`, `getCont`, `effectIsExit`). Tried and not kept, for no CPU that could " +
      "be told from the noise: `submit` and `run` as their own iterator (no `yield*` iterator per job: 443 → 421 bytes " +
      "per job, CPU 1.02× in `bench/ab-fiber.ts`, 24 pairs; main thread 0.98–1.03× in fresh processes timed as the " +
      "child times, 16 pairs; peak heap 41.1 MB against 40.8), and one inert record, submit and iterator kept for the " +
      "process's life so that their hidden classes and the code compiled against them outlive the warm-ups' pools " +
      "(V8's other threads 67.5 → 59.5 ms in the timed run, the main thread 127 → 129.5, total 1.00×, 20 pairs). " +
      "What remains is two clock reads per job (`performance.now()`, 40 ns each here, 7–8% of the run's CPU profile), " +
      "the record, the submit and its iterator, Effect's run-loop step for the submit, and the collections: the kept " +
      "Exits are copied and then promoted by each of the run's 4–5 scavenges, 50–80 ms of pauses in a 120–135 ms " +
      "main thread at that load, mostly waiting for V8's helper threads, which a CPU-bound neighbour (1L) competes with.",
    "Why the peak heap stays near 2× `Effect.forEach`'s whatever the pool allocates (`bench/probe/peakSawtooth.ts`, " +
      "load 10–14 from other work): the same program with no pool (each job run by `Effect.exit` in the submitting " +
      "loop, its Exit kept, then each `yield*`ed as ours' handles are) peaks at 40.4–43.2 MB (median 40.8, 6 runs; " +
      "`Effect.forEach` 20.1 in the same minutes), 2.0×, so the target sits on the floor of keeping an Effect per job. " +
      "That peak is the promoted Exits (8 MB, with the boxed half of the hashes) plus what the run allocates once V8 " +
      "has doubled its young generation, which the Exits' survival forces before the submits end; after it the await " +
      "loop alone allocates 131 bytes a job (`yield*` of an Exit in `Effect.gen`, 26 MB), so the grown young generation" +
      " (32 MB) fills almost whatever the submits allocate. In a model with no pool and no run loop (an `Exit.succeed` " +
      "kept per job, S bytes of garbage per job, then 136 per read), the peak is 39.9–41.2 MB for every S from 144 to " +
      "600 bytes (steps of 24; 35 MB at 48 and 120); with 56 bytes per read instead it is a sawtooth in S between 20 " +
      "and 41 MB. Scenario 1's run with 24 to 192 more bytes per submit (allocated outside the pool) peaks at 41.1–45.5" +
      " MB (two passes; one outlier at 57.0), as with none (44.0 and 45.4). So taking bytes from the submit (about 370 " +
      "a job in all; the pool's own lines in `bench/probe/allocByFunction.ts` 186: the record 88, the submit 48, the " +
      "start 48 with the job's Exit) moves nothing here, and what survives is at its floor: the Exit (32 bytes, three " +
      "header words and its value) is the smallest Effect a handle's `await` can be. Weighed and dropped: clock " +
      "readings as small integers (they are already: whole milliseconds since the pool's origin, " +
      "`internal/monotonic.ts`); a smaller record (8 fields, none a boxed double on the live clock, and garbage by the " +
      "first scavenge); the kept Exits made in the old generation at once (V8's pretenuring): V8 tracks the allocation " +
      "sites of literals only, and an object literal kept per job stays \"maybe tenure\" at a survival ratio of 1.0 " +
      "through every scavenge of a 200,000-object run (`--trace-pretenuring-statistics`), since V8 tenures only once " +
      "its young generation is at its maximum; Effect's Exit is made by `new`, which has no site."
  ]
}
