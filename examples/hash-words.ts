/**
 * Hashing random words with N workers.
 *
 * The classic first worker-pool program: make a pile of random strings, hash each one in a job that
 * also "works" for a while (a sleep standing in for I/O), and watch N workers get through them about
 * N times faster than one would.
 *
 * Each worker here gets a tiny per-worker resource, its own id, so that a job can say which worker
 * ran it (`resource` is meant for things like a connection per worker; an id is the simplest case).
 *
 * Run:
 *   node examples/hash-words.ts            # 5 workers
 *   node examples/hash-words.ts 10         # 10 workers (or WORKERS=10)
 *   DEBUG=true node examples/hash-words.ts # one line per job, like the article's DEBUG flag
 *   JOBS=200 WORK_MS=50 node examples/hash-words.ts
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Config, Console, Effect, Random } from "effect"
import { WorkPool } from "../src/index.ts"

// Settings come from the environment through `Config`, so a bad value (WORKERS=abc) is reported as
// a configuration error instead of silently becoming NaN.
const settings = Config.all({
  workers: Config.Int("WORKERS").pipe(Config.withDefault(5)),
  jobs: Config.Int("JOBS").pipe(Config.withDefault(20)),
  workMillis: Config.Int("WORK_MS").pipe(Config.withDefault(200)),
  debug: Config.Boolean("DEBUG").pipe(Config.withDefault(false))
})

// 32-bit FNV-1a: small, fast, and what Go's `hash/fnv` gives the original program.
const fnv1a = (text: string): number => {
  let hash = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193) >>> 0
  }
  return hash
}

const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
// `Random` is a service, so a test could make these words deterministic with a seeded Random.
const randomWord = Effect.gen(function*() {
  let word = ""
  for (let i = 0; i < 8; i++) word += letters[yield* Random.nextIntBetween(0, letters.length - 1)] // inclusive bounds
  return word
})

const program = Effect.gen(function*() {
  const config = yield* settings
  // A positional argument wins over the environment: `node examples/hash-words.ts 10`.
  const workers = process.argv[2] === undefined ? config.workers : Number(process.argv[2])

  // An invalid count (0, -1, 2.5, NaN) fails here with InvalidPoolConfig naming "concurrency".
  const pool = yield* WorkPool.make({
    concurrency: workers,
    resource: (workerId) => Effect.succeed(workerId + 1) // worker numbers 1..N, for the log lines
  })
  yield* Console.log(`hashing ${config.jobs} words with ${workers} workers (${config.workMillis} ms each)`)

  // A job written as a function receives the resource of the worker that runs it.
  const hashJob = (word: string) => (worker: number) =>
    Effect.gen(function*() {
      const hash = fnv1a(word)
      yield* Effect.sleep(config.workMillis)
      if (config.debug) yield* Console.log(`worker [${worker}] - created hash [${hash}] from word [${word}]`)
      return hash
    })

  const words = yield* Effect.all(Array.from({ length: config.jobs }, () => randomWord))
  const start = Date.now()
  const hashes = yield* pool.runAll(words.map(hashJob))
  const seconds = (Date.now() - start) / 1000

  // runAll keeps input order, so words[i] pairs with hashes[i] however the workers interleaved.
  yield* Console.log(`first: ${words[0]} -> ${hashes[0]}`)
  yield* Console.log(`hashed ${hashes.length} words in ${seconds.toFixed(2)} s`)
  yield* Console.log(`one worker would need about ${(config.jobs * config.workMillis / 1000).toFixed(2)} s`)
})

NodeRuntime.runMain(Effect.scoped(program))
