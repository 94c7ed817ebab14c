// A TypeScript consumer of the Node-only entries, typechecked (never run) with nodenext and with
// bundler resolution under the same strict flags as workpool.ts.
import { Effect, Schema } from "effect"
// @ts-expect-error since 0.2.0 the root entry has no ThreadPool: it is "effect-workpool/ThreadPool"
import { ThreadPool as _ThreadPool } from "effect-workpool"
import { type PoolError, Task } from "effect-workpool"
import * as ThreadPool from "effect-workpool/ThreadPool"
import * as ThreadWorker from "effect-workpool/ThreadWorker"

class Negative extends Schema.TaggedError<Negative>()("Negative", { n: Schema.Number }) {}

const Square = Task.make("Square", {
  payload: Schema.Struct({ n: Schema.Number }),
  success: Schema.Number,
  failure: Negative
})

// the worker file's side
export const serveSquares = () =>
  ThreadWorker.serve([
    Task.handle(Square, ({ n }) => n < 0 ? Effect.fail(new Negative({ n })) : Effect.succeed(n * n))
  ])

// the main thread's side: a task's result keeps the task's failure next to the pool's errors
export const squares: Effect.Effect<
  ReadonlyArray<number>,
  Negative | ThreadPool.TaskError | PoolError.InvalidPoolConfig
> = Effect.gen(function*() {
  const pool = yield* ThreadPool.make({ worker: new URL("./worker.js", import.meta.url), threads: 2 })
  return yield* Effect.forEach([1, 2, 3], (n) => pool.run(Square, { n }, { priority: n }))
}).pipe(Effect.scoped)
