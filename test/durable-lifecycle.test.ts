/**
 * A durable consumer's lifecycle used the wrong way round: shutdowns one over the other, calls
 * after it stopped, its scope closed with calls under way. Each ends, and says what it did.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Fiber, Schema } from "effect"
import { TestClock } from "effect/testing"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as Task from "../src/Task.ts"
import { settle } from "./helpers.ts"

const Sleep = Task.make("Sleep", { payload: Schema.Number, success: Schema.Number })

/** A consumer whose jobs run until interrupted, with a long graceful deadline; `started` when the first runs. */
const sleeper = Effect.gen(function*() {
  const started = yield* Deferred.make<void>()
  const consumer = yield* JobQueue.consume({
    handlers: [Task.handle(Sleep, () => Effect.andThen(Deferred.succeed(started, undefined), Effect.never))],
    concurrency: 1,
    poll: "1 second",
    shutdownTimeout: "1 hour"
  })
  const job = yield* JobQueue.enqueue(Sleep, 1)
  // claimed at the next poll at the latest
  yield* TestClock.adjust("1 second")
  assert.isTrue(yield* Deferred.isDone(started), "the job started")
  return { consumer, job, startedAt: yield* Clock.currentTimeMillis }
})

/** Past every deadline once the test is done, so that a failed test's consumer stops (its scope's close ends). */
const unstuck = <A, E, R>(test: Effect.Effect<A, E, R>) => Effect.ensuring(test, TestClock.adjust("1 day"))

const stateOf = (id: string) => Effect.map(JobQueue.status(id), (info) => [info.state, info.attempts] as const)

describe("durable consumer lifecycle", () => {
  it.effect("shutdownNow during a graceful shutdown interrupts at once, rather than waiting for its deadline", () =>
    Effect.gen(function*() {
      const { consumer, job, startedAt } = yield* sleeper
      const graceful = yield* Effect.forkChild(consumer.shutdown)
      yield* settle
      assert.isUndefined(graceful.pollUnsafe(), "the graceful shutdown waits for the running job")
      const now = yield* Effect.forkChild(consumer.shutdownNow)
      yield* settle
      // no time has passed: the running job was interrupted and given back, both shutdowns are done
      assert.isDefined(now.pollUnsafe(), "shutdownNow returned without the clock moving")
      yield* Fiber.join(graceful)
      yield* consumer.awaitTermination
      assert.deepStrictEqual(yield* stateOf(job.id), ["queued", 0])
      assert.strictEqual(yield* Clock.currentTimeMillis, startedAt)
    }).pipe(unstuck, Effect.scoped, Effect.provide(JobStore.memory())))
})
