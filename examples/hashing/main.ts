/**
 * CPU-bound work on worker threads: one thread against N.
 *
 * The articles' classic program hashes random words with a pool of workers. In Go the workers are
 * goroutines spread over every core; in Node a fiber pool (`WorkPool`) runs on the one main
 * thread, so it speeds up waiting (I/O) but not computing. Here the hashing is real CPU work (many
 * rounds of sha256 per word, in plain JavaScript: see sha256.ts for why not node:crypto), and it
 * runs three times over the same words:
 *
 *   1. on the main thread, a plain loop, for reference;
 *   2. on a `ThreadPool` of 1 thread;
 *   3. on a `ThreadPool` of N threads (N = available parallelism, at least 2).
 *
 * It prints the wall time of each, the longest time the main thread's event loop could not run
 * (what a server in this process would have made its callers wait), the speedup of N threads over
 * 1, and a checksum of all the digests, which must be the same for the three runs (and, for the same settings, on every run:
 * the words come from a seeded generator). Starting the threads is not timed: a pool is made first
 * and then given the work.
 *
 * Run:
 *   node examples/hashing/main.ts
 *   JOBS=16 ROUNDS=2000 node examples/hashing/main.ts   # a quick run
 *   THREADS=8 node examples/hashing/main.ts             # N (default: available parallelism, at least 2)
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Config, Console, Duration, Effect } from "effect"
import { createHash } from "node:crypto"
import { availableParallelism } from "node:os"
import { monitorEventLoopDelay } from "node:perf_hooks"
import * as ThreadPool from "../../src/ThreadPool.ts"
import { HashWord, hashWord } from "./tasks.ts"

const settings = Config.all({
  jobs: Config.Int("JOBS").pipe(Config.withDefault(48)),
  rounds: Config.Int("ROUNDS").pipe(Config.withDefault(50_000)),
  threads: Config.Int("THREADS").pipe(Config.withDefault(Math.max(2, availableParallelism()))),
  seed: Config.Int("SEED").pipe(Config.withDefault(1))
})

// A small seeded generator (mulberry32), so that the same settings give the same words every run.
const randomWords = (count: number, seed: number): Array<string> => {
  let state = seed >>> 0
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
  return Array.from({ length: count }, () => {
    let word = ""
    for (let i = 0; i < 8; i++) word += letters[Math.floor(next() * letters.length)]
    return word
  })
}

/** The same chain with node:crypto, to check sha256.ts against. */
const hashWordWithNodeCrypto = (word: string, rounds: number): string => {
  let digest = createHash("sha256").update(word).digest()
  for (let i = 1; i < rounds; i++) digest = createHash("sha256").update(digest).digest()
  return digest.toString("hex")
}

const checksum = (digests: ReadonlyArray<string>): string =>
  createHash("sha256").update(digests.join("\n")).digest("hex").slice(0, 16)

interface Run {
  readonly label: string
  readonly seconds: number
  /** The longest the main thread's event loop went without a turn, in ms. */
  readonly stall: number
  readonly checksum: string
}

/** Times the hashing of every word, and watches the main thread's event loop meanwhile. */
const measure = (label: string, hashAll: Effect.Effect<ReadonlyArray<string>, unknown>) =>
  Effect.gen(function*() {
    const loop = monitorEventLoopDelay({ resolution: 10 })
    loop.enable()
    yield* Effect.sleep("30 millis") // the monitor's first tick sets its baseline
    const [elapsed, digests] = yield* Effect.timed(hashAll)
    yield* Effect.sleep("30 millis") // let the loop turn, so a stall that just ended is recorded
    loop.disable()
    return {
      label,
      seconds: Duration.toMillis(elapsed) / 1000,
      stall: loop.max / 1e6,
      checksum: checksum(digests)
    } satisfies Run
  })

const report = (run: Run) =>
  Console.log(
    `${run.label.padEnd(12)} ${run.seconds.toFixed(2).padStart(6)} s   checksum ${run.checksum}` +
      `   longest event-loop stall ${Math.round(run.stall)} ms`
  )

const worker = new URL("./worker.ts", import.meta.url)

/** Makes a pool of `threads` threads (not timed), then times `runAll` over every word. */
const onThreads = (threads: number, payloads: ReadonlyArray<typeof HashWord.payload.Type>) =>
  Effect.scoped(Effect.gen(function*() {
    // make waits until every thread has loaded worker.ts and said it is ready
    const pool = yield* ThreadPool.make({ worker, threads })
    return yield* measure(threads === 1 ? "1 thread" : `${threads} threads`, pool.runAll(HashWord, payloads))
  })) // closing the scope shuts the pool down and terminates its threads

const program = Effect.gen(function*() {
  const { jobs, rounds, seed, threads } = yield* settings
  const payloads = randomWords(jobs, seed).map((word) => ({ word, rounds }))
  yield* Console.log(
    `hashing ${jobs} random words, ${rounds} rounds of sha256 each, on a machine with ${availableParallelism()} cores`
  )

  for (const word of ["", "abc", payloads[0]?.word ?? "x"]) {
    if (hashWord(word, 3) !== hashWordWithNodeCrypto(word, 3)) {
      return yield* Effect.die(new Error(`sha256.ts disagrees with node:crypto on ${JSON.stringify(word)}`))
    }
  }
  yield* Console.log("sha256.ts agrees with node:crypto")

  // a plain loop: while it runs, nothing else in this process does (no timer, no request)
  const main = yield* measure("main thread", Effect.sync(() => payloads.map((p) => hashWord(p.word, p.rounds))))
  yield* report(main)
  const one = yield* onThreads(1, payloads)
  yield* report(one)
  const many = yield* onThreads(threads, payloads)
  yield* report(many)

  yield* Console.log(`speedup of ${many.label} over 1 thread: ${(one.seconds / many.seconds).toFixed(2)}x`)
  if (one.checksum !== main.checksum || many.checksum !== main.checksum) {
    return yield* Effect.die(new Error(`checksums differ: ${main.checksum}, ${one.checksum}, ${many.checksum}`))
  }
  yield* Console.log(`checksums match: ${main.checksum}`)
})

NodeRuntime.runMain(program)
