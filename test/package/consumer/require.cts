// A CommonJS TypeScript consumer (.cts: its imports compile to require()), typechecked against the
// installed package: TypeScript allows require() of an ES module under module nodenext (5.8+).
import { Effect, Schema } from "effect"
import { JobQueue, Task, WorkPool } from "effect-workpool"
import * as JobStore from "effect-workpool/JobStore"
import * as ThreadPool from "effect-workpool/ThreadPool"

const Resize = Task.make("Resize", { payload: Schema.String, success: Schema.Number })

export const fiber: Effect.Effect<number, never> = Effect.scoped(
  Effect.flatMap(WorkPool.make({ concurrency: 1 }), (pool) => pool.run(Effect.succeed(1)))
).pipe(Effect.orDie)

export const durable = Effect.scoped(Effect.gen(function*() {
  const threadPool = yield* ThreadPool.make({ worker: `${__dirname}/worker.mjs`, threads: 1 })
  yield* JobQueue.consume({ queues: ["images"], threadPool, tasks: [Resize] })
  const job = yield* JobQueue.enqueue(Resize, "cat.png", { queue: "images" })
  const length: number = yield* job.await
  return length
})).pipe(Effect.provide(JobStore.memory()))
