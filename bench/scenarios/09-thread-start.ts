/**
 * Scenario 9, thread start: how long a new pool takes until N threads are ready, and how much
 * memory each thread adds to the process. Timed from the pool's constructor until N tasks sent at
 * once have all been running at the same time: each task (`barrier` in bench/workers/cpu.ts) waits
 * until all N are in, so the pool has N threads started, its worker file loaded in each, and a task
 * on every one of them. Libraries that start threads lazily or in the background are measured the
 * same way as ours, whose `make` returns once every thread has said it is ready.
 *
 * Memory per thread: the process's resident set size (RSS, all threads together) once the N
 * threads are ready, minus before the pool was made (after a full collection), divided by N.
 */
import { Worker } from "node:worker_threads"
import type { Contestant, Scenario } from "../common.ts"
import { ResultTally, type Tally } from "../tally.ts"

const OURS = "ours: ThreadPool"
const PISCINA = "piscina"

const workerFile = (name: string): URL => new URL(`../workers/${name}`, import.meta.url)

const results = (tally: Tally): ResultTally => {
  if (!(tally instanceof ResultTally)) throw new Error("scenario 9 needs a ResultTally")
  return tally
}

/** Barrier cells for `n` tasks: the count in, and how many must be in. */
const cells = (n: number): Int32Array => {
  const c = new Int32Array(new SharedArrayBuffer(8))
  c[1] = n
  return c
}

/**
 * The checksum: task i's result is 1 when its thread id is no other task's (so N distinct threads
 * ran the N tasks), which the tally expects for every task.
 */
const distinct = (tally: ResultTally, ids: ReadonlyArray<number>): number => {
  const counts = new Map<number, number>()
  for (const id of ids) counts.set(id, (counts.get(id) ?? 0) + 1)
  let observed = 0
  ids.forEach((id, i) => (observed += tally.done(i, counts.get(id) === 1 ? 1 : 0)))
  return observed
}

const settledRss = (): number => {
  globalThis.gc?.()
  globalThis.gc?.()
  return process.memoryUsage().rss
}

/** What `load` gives: `start(n)` makes the pool and resolves with the thread ids of N barrier tasks sent at once. */
type Start = (n: number) => Promise<{ readonly ids: ReadonlyArray<number>; readonly close: () => Promise<void> }>

/** A contestant: `load` imports its library (untimed, in setup), `start` is timed. */
const contestant = (name: string, library: string, load: () => Promise<Start>, anchor = false): Contestant => ({
  name,
  library,
  ...(anchor ? { anchor } : {}),
  setup: async ({ jobs: n }, tally) => {
    const t = results(tally)
    const start = await load()
    let close: () => Promise<void> = async () => {}
    const before = settledRss()
    return {
      run: async () => {
        const started = await start(n)
        close = started.close
        const rssBytesPerThread = (process.memoryUsage().rss - before) / n
        return { observed: distinct(t, started.ids), rssBytesPerThread }
      },
      teardown: () => close()
    }
  }
})

export const scenario: Scenario = {
  id: "9",
  title: "Thread start",
  description: "A new pool of N threads (N is the run's job count below), timed from its constructor until N tasks " +
    "sent at once are all running at the same time (each waits for the others: every thread has started, loaded its " +
    "worker file and taken a task). Memory per thread: the process's resident set size once they are, minus before " +
    "the pool was made, divided by N. The floor is N raw `Worker`s on the floor's worker file, each answering one message.",
  sizes: { full: { jobs: 4 }, quick: { jobs: 2 }, warmup: { jobs: 2 } },
  metrics: ["ms", "rssBytesPerThread", "cpuMsPerThread"],
  tally: ({ jobs }) => new ResultTally(jobs, () => 1),
  // each run starts threads: the smoke test does one repetition, no warm-up run
  quick: { reps: 1, warmups: 0 },
  contestants: [
    contestant("floor: raw worker_threads", "node", async () => async (n) => {
      const workers = Array.from({ length: n }, () => new Worker(workerFile("floor-worker.ts"), { workerData: { task: "noop" } }))
      await Promise.all(workers.map((w) =>
        new Promise<void>((resolve, reject) => {
          w.once("message", () => resolve())
          w.once("error", reject)
          w.postMessage(0)
        })
      ))
      return {
        ids: workers.map((w) => w.threadId),
        close: async () => {
          await Promise.all(workers.map((w) => w.terminate()))
        }
      }
    }),
    contestant(PISCINA, "piscina", async () => {
      const { Piscina } = await import("piscina")
      return async (n) => {
        const pool = new Piscina<Int32Array, number>({ filename: workerFile("piscina-worker.ts").href, minThreads: n, maxThreads: n })
        const c = cells(n)
        const ids = await Promise.all(Array.from({ length: n }, () => pool.run(c, { name: "barrier" })))
        return { ids, close: () => pool.destroy() }
      }
    }, true),
    contestant("tinypool", "tinypool", async () => {
      const { Tinypool } = await import("tinypool")
      return async (n) => {
        const pool = new Tinypool({ filename: workerFile("tinypool-worker.ts").href, minThreads: n, maxThreads: n })
        const c = cells(n)
        const ids = await Promise.all(Array.from({ length: n }, () => pool.run(c, { name: "barrier" }) as Promise<number>))
        return { ids, close: () => pool.destroy() }
      }
    }),
    contestant("workerpool", "workerpool", async () => {
      const { default: workerpool } = await import("workerpool")
      return async (n) => {
        const pool = workerpool.pool(workerFile("workerpool-worker.ts").pathname, { minWorkers: n, maxWorkers: n, workerType: "thread" })
        const c = cells(n)
        const ids = await Promise.all(Array.from({ length: n }, () => pool.exec("barrier", [c]) as Promise<number>))
        return {
          ids,
          close: async () => {
            await pool.terminate()
          }
        }
      }
    }),
    contestant("poolifier (FixedThreadPool)", "poolifier", async () => {
      const { FixedThreadPool } = await import("poolifier")
      return async (n) => {
        const pool = new FixedThreadPool<Int32Array, number>(n, workerFile("poolifier-worker.ts").pathname)
        const c = cells(n)
        const ids = await Promise.all(Array.from({ length: n }, () => pool.execute(c, "barrier")))
        // see bench/threads.ts: poolifier's destroy() now and then never settles; its threads are gone by then
        return { ids, close: () => Promise.race([pool.destroy(), new Promise<void>((resolve) => setTimeout(resolve, 2_000))]) }
      }
    }),
    contestant(OURS, "effect-workpool", async () => {
      const { Effect, Exit, Scope } = await import("effect")
      const ThreadPool = await import("../../src/ThreadPool.ts")
      const { Barrier } = await import("../workers/ours-tasks.ts")
      return async (n) => {
        const scope = Effect.runSync(Scope.make())
        const c = cells(n)
        const ids = await Effect.runPromise(
          Effect.gen(function*() {
            const pool = yield* ThreadPool.make({ worker: workerFile("ours-worker.ts"), threads: n })
            // (the Schema's type says ArrayBuffer; structured clone shares a SharedArrayBuffer just the same)
            return yield* pool.runAll(Barrier, Array.from({ length: n }, () => c as Int32Array<ArrayBuffer>))
          }).pipe(Scope.provide(scope))
        )
        return { ids, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
      }
    })
  ],
  targets: [
    { label: "ours: time until N threads are ready ≤ 1.5× piscina's", metric: "ms", contestant: OURS, anchor: PISCINA, atMost: 1.5 },
    {
      label: "ours: memory per thread ≤ 1.5× piscina's",
      metric: "rssBytesPerThread",
      contestant: OURS,
      anchor: PISCINA,
      atMost: 1.5
    }
  ],
  notes: [
    "Each child imports its library before the clock starts (and in a full run starts and closes a pool of 2 threads " +
      "twice first), so the time is the threads' own start: a new isolate each, and the worker file with what it imports " +
      "(for ours: effect, which each thread loads and compiles for itself).",
    "RSS counts every thread's heap and code: it is what the operating system gives the process, the figure that limits how " +
      "many threads fit on a machine. It varies with the allocator between runs; read the min–max.",
    "Ours waits for `make`, which returns once every thread has reported ready, then runs the N barrier tasks like the others.",
    "CPU ms per thread: the process's CPU time (every thread of it, helper threads included) during the timed run, " +
      "divided by N. Unlike wall time it hardly moves with the machine's load: read it first on a busy machine.",
    "Where ours' time goes: each thread loads effect. Our worker file imports by subpath (effect/Effect, effect/Schema, " +
      "effect-workpool/Task, effect-workpool/ThreadWorker): 150 files, 143 of them effect's (effect/Effect and its imports, " +
      "then effect/Schema, which imports effect's crypto, http, net and SemVer modules), 3.1 MB of JavaScript, mostly " +
      "JSDoc. With the `effect` barrel and the package's root entry it was 273 files, and on this machine (4 threads, 7 " +
      "runs, load average ~12) 1.9 s and 58 MB per thread against 1.2 s and 39 MB by subpath.",
    "Measured on Node 24.21 with the compile cache (one thread at a time, its own CPU clock until its worker file has " +
      "loaded, medians of 9–15, load 5–7): a worker file that imports nothing (the floor's) 22 ms; importing " +
      "effect/Effect 42 ms; and effect/Schema 68 ms; and our Task and ThreadWorker 71–76 ms. Our own modules add about 3 ms: " +
      "the rest is effect. A CPU profile of a thread: Node's worker bootstrap ~20% (every contestant pays it), resolving " +
      "imports ~25%, GC ~13% (every thread runs one mark-compact once its old generation passes ~12 MB), compiling from " +
      "the compile cache ~12%, reading and decoding the files ~11%, evaluating effect's modules ~11%.",
    "Resolution: effect's modules import one another by relative specifier, so the 150 files take 887 resolutions, each " +
      "a stat, a realpath and a package.json lookup. A thread now resolves each file once (src/internal/threadMain.ts): " +
      "76 → 64 ms, and 114 → 104 ms without a compile cache. Answering all 887 from a map recorded by an earlier thread " +
      "would save about 11 ms more (measured), but only for threads started after the first, and a thread started hours " +
      "later (a replacement, a resize) would trust the file system as it was then: not done.",
    "The table's CPU per thread is about 1.6× the thread's own: the rest is V8's helper threads (parallel scavenges and " +
      "the concurrent marking of that mark-compact). The main thread spends about 1 ms per thread.",
    "Memory: after its start a thread's heap holds about 18 MB (24 MB of pages) against the floor's 7.6 MB (10 MB): " +
      "effect's source text (31 of its files have a non-ASCII character, all but two only in comments, so V8 keeps their " +
      "1.5 MB as two-byte strings: about 4.5 MB in all), a young generation that the load's allocations grew to 8.5 MB of pages (13 MB " +
      "before the resolve cache made less garbage), and about 1.3 MB of bytecode. Tried and dropped: a full collection " +
      "once the thread is ready (`vm.measureMemory` eager: 6–10 ms of the thread's CPU, and the young generation keeps its " +
      "pages); a default `resourceLimits.maxYoungGenerationSizeMb` of 4 (3.4 MB of pages less per thread, but every task " +
      "of the thread's life would then collect more often: a user's choice, not a default). What would close the rest " +
      "lies in effect: fewer modules behind effect/Schema, a dist without JSDoc or with ASCII-only text.",
    "Traced again (a load hook in the thread): a worker file with Schema-typed tasks loads 143 of effect's files through " +
      "effect/Schema alone (the Task definitions need it: the thread decodes payloads with it), and ThreadWorker, Task and " +
      "our internals add 5 files of ours and one of effect's, effect/Fiber (11 KB; test/thread-modules.test.ts holds it " +
      "so). Nothing of the thread side can load lazily to any effect: the user's own imports load the rest.",
    "Measured and dropped for memory (one thread at a time, V8's heap statistics once its file has loaded, medians of 9, " +
      "load 8–16): the young generation keeps the 8 MB of pages the load grew it to (V8 shrinks it only in a collection " +
      "that reduces memory, which an idle thread does not get within 30 s); `maxYoungGenerationSizeMb: 4` saves 2.9 MB " +
      "of the heap's 23 MB but made allocating tasks 20–27% slower (parsing JSON, short-lived arrays); a memory-reducing " +
      "collection once ready (`v8.queryObjects`, experimental) saves 8.8 MB but costs 95 ms of the thread's CPU; rewriting " +
      "effect's files as they load (JSDoc removed, one byte per character) saves 2.2 MB at no gain in CPU, and changes " +
      "the text of its functions and templates.",
    "Started all at once, two at a time or one at a time (4 threads, 11 runs each, load 12–16): 1.8 s, 1.8 s and 2.3 s " +
      "until all were ready, the same CPU per thread: the start is CPU-bound, so starting them together is right.",
    "The pool now gives its threads a compile cache when the process has none (src/internal/compileCache.ts). This " +
      "benchmark runs every contestant with NODE_COMPILE_CACHE already, so that changes nothing here; without it (as " +
      "users run) ours took 158–194 ms of CPU and 13.3–14.8 MB per thread where it took 220–267 ms and 19.4–19.8 MB, and " +
      "piscina, whose TypeScript worker file then needs Node's type stripper in each thread, 66–105 ms and 16.0–16.4 MB."
  ]
}
