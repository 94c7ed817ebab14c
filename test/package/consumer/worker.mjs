// The consumer's own worker file, loaded by its ThreadPool.
import { Effect } from "effect"
import { Task } from "effect-workpool"
import * as ThreadWorker from "effect-workpool/ThreadWorker"
import { Negative, Square } from "./tasks.mjs"

ThreadWorker.serve([
  Task.handle(Square, ({ n }) => n < 0 ? Effect.fail(new Negative({ n })) : Effect.succeed(n * n))
])
