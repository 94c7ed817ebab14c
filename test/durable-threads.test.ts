/**
 * CPU-bound durable jobs: a consumer whose handlers hand each job to a ThreadPool running the same
 * task (the pattern docs/durable.md shows): the result, the task's typed failure, and a crashed
 * thread (a defect of the attempt, retried).
 */
import { assert, it } from "@effect/vitest"
import { Effect } from "effect"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as Task from "../src/Task.ts"
import { makePool } from "./fixtures/pool.ts"
import { Crash, Echo, Fail, HashFailed } from "./fixtures/tasks.ts"

it.live("durable jobs handed to a ThreadPool: results, typed failures, and a crashed thread's attempt retried", () =>
  Effect.gen(function*() {
    const { pool: threads } = yield* makePool()
    let crashes = 0
    yield* JobQueue.consume({
      handlers: [
        Task.handle(Echo, (s) => threads.run(Echo, s).pipe(Effect.orDie)),
        Task.handle(Fail, (s) =>
          threads.run(Fail, s).pipe(Effect.catch((error) => error instanceof HashFailed ? Effect.fail(error) : Effect.die(error)))),
        // the first attempt crashes its thread; the retry, on the thread that replaced it, succeeds
        Task.handle(Crash, (how) => (crashes++ === 0 ? threads.run(Crash, how) : Effect.succeed("recovered")).pipe(Effect.orDie))
      ],
      concurrency: 2,
      retry: { times: 3 },
      poll: 10
    })
    const echo = yield* JobQueue.enqueue(Echo, "hello")
    const fail = yield* JobQueue.enqueue(Fail, "x", { maxAttempts: 1 })
    const crash = yield* JobQueue.enqueue(Crash, "exit", { maxAttempts: 3 })
    assert.strictEqual(yield* echo.await, "echo hello")
    assert.instanceOf(yield* Effect.flip(fail.await), HashFailed)
    assert.strictEqual(yield* crash.await, "recovered")
    assert.strictEqual((yield* JobQueue.status(crash.id)).attempts, 2)
  }).pipe(Effect.scoped, Effect.provide(JobStore.memory())), { timeout: 60_000 })
