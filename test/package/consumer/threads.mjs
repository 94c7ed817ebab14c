// A consumer's thread pool with its own worker file, in plain JavaScript. Prints one line:
// "threads ok {...}" or "threads FAILED ...".
import { Effect } from "effect"
import * as ThreadPool from "effect-workpool/ThreadPool"
import { Negative, Square } from "./tasks.mjs"

const program = Effect.gen(function*() {
  const pool = yield* ThreadPool.make({ worker: new URL("./worker.mjs", import.meta.url), threads: 2 })
  const squares = yield* Effect.forEach([1, 2, 3], (n) => pool.run(Square, { n }), { concurrency: "unbounded" })
  const failure = yield* Effect.flip(pool.run(Square, { n: -1 }))
  // the package's internals are not part of its interface
  const internals = yield* Effect.promise(() =>
    import("effect-workpool/internal/scheduler.js").then(() => "exported", (error) => error.code)
  )
  return { squares, failure: failure instanceof Negative ? `Negative ${failure.n}` : String(failure), internals }
})

Effect.runPromise(Effect.scoped(program)).then(
  (result) => console.log(`threads ok ${JSON.stringify(result)}`),
  (error) => console.log(`threads FAILED ${error?.stack ?? error}`)
)
