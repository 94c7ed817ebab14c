/**
 * The hashing example's worker entry file: each thread of the pool loads this file and serves the
 * task. `Effect.sync` runs the synchronous loop; the thread is busy until it returns, which is the
 * point: the main thread is not.
 */
import * as Effect from "effect/Effect"
import * as Task from "../../src/Task.ts"
import * as ThreadWorker from "../../src/ThreadWorker.ts"
import { HashWord, hashWord } from "./tasks.ts"

ThreadWorker.serve([
  Task.handle(HashWord, ({ rounds, word }) => Effect.sync(() => hashWord(word, rounds)))
])
