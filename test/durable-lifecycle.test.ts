/**
 * A durable consumer's lifecycle used the wrong way round: shutdowns one over the other, calls
 * after it stopped, its scope closed with calls under way. Each ends, and says what it did.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Exit, Fiber, Layer, Schema, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as Task from "../src/Task.ts"
import { Stepper } from "./fixtures/stepper.ts"
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

/** A consumer running one job that never ends, built and driven under the Stepper. */
const steppedSleeper = (stepper: Stepper) => {
  const scope = stepper.run(Scope.make())
  // the store outlives the consumer's scope (read after its close): a closed store fails every operation
  const store = stepper.run(Layer.buildWithScope(JobStore.memory(), stepper.run(Scope.make())))
  const provided = <A, E>(effect: Effect.Effect<A, E, JobStore.JobStore | Scope.Scope>) =>
    effect.pipe(Scope.provide(scope), Effect.provide(store))
  const consumer = stepper.run(provided(JobQueue.consume({
    handlers: [Task.handle(Sleep, () => Effect.never)],
    concurrency: 1,
    poll: "1 hour",
    shutdownTimeout: "1 hour"
  })))
  const job = stepper.run(provided(JobQueue.enqueue(Sleep, 1)))
  stepper.drain()
  assert.strictEqual(stepper.run(consumer.stats).running, 1, "the job runs")
  return {
    consumer,
    stateOf: () => stepper.run(provided(stateOf(job.id))),
    close: () => stepper.fork(Scope.close(scope, Exit.void))
  }
}

describe("durable consumer lifecycle, at every interleaving (Stepper)", () => {
  it("a graceful shutdown (or the scope's close), then shutdownNow at any step of it: both end at once, the job given back", () => {
    for (const graceful of ["shutdown", "close"] as const) {
      let points = 0
      for (let k = 0;; k++) {
        const stepper = new Stepper()
        const { close, consumer, stateOf } = steppedSleeper(stepper)
        const first = graceful === "shutdown" ? stepper.fork(consumer.shutdown) : close()
        for (let i = 0; i < k; i++) stepper.step()
        const idle = stepper.idle
        const now = stepper.fork(consumer.shutdownNow)
        stepper.drain()
        const at = `shutdownNow ${k} steps into the ${graceful}`
        assert.deepStrictEqual([first.pollUnsafe(), now.pollUnsafe()], [Exit.void, Exit.void], at)
        assert.deepStrictEqual(stateOf(), ["queued", 0], at)
        points++
        if (idle) break
      }
      assert.isAbove(points, 3)
    }
  })

  it("shutdown and shutdownNow twice each in any order, with the scope's close among them: each ends, once the consumer has", () => {
    const calls = ["shutdown", "shutdownNow"] as const
    for (const a of calls) {
      for (const b of calls) {
        const stepper = new Stepper()
        const { close, consumer, stateOf } = steppedSleeper(stepper)
        const fibers = [stepper.fork(consumer[a]), close(), stepper.fork(consumer[b]), stepper.fork(consumer[a])]
        stepper.drain()
        // graceful ones alone wait for the job (an hour): the test's shutdownNow ends it
        if (a === "shutdown" && b === "shutdown") {
          assert.isTrue(fibers.every((fiber) => fiber.pollUnsafe() === undefined), "waiting for the job")
          fibers.push(stepper.fork(consumer.shutdownNow))
          stepper.drain()
        }
        for (const fiber of fibers) assert.deepStrictEqual(fiber.pollUnsafe(), Exit.void, `${a}, ${b}`)
        assert.isDefined(stepper.fork(consumer.awaitTermination).pollUnsafe())
        assert.deepStrictEqual(stateOf(), ["queued", 0], `${a}, ${b}`)
      }
    }
  })
})

describe("consume interrupted while it starts", () => {
  it("at any step: once its scope closes, nothing of the consumer runs on (no claim loop left behind)", () => {
    let points = 0
    for (let k = 0;; k++) {
      const stepper = new Stepper()
      const storeScope = stepper.run(Scope.make())
      const store = stepper.run(Layer.buildWithScope(JobStore.memory(), storeScope))
      const scope = stepper.run(Scope.make())
      const starting = stepper.fork(
        JobQueue.consume({ handlers: [Task.handle(Sleep, Effect.succeed)], concurrency: 1, poll: "1 hour" }).pipe(
          Scope.provide(scope),
          Effect.provide(store)
        )
      )
      for (let i = 0; i < k; i++) stepper.step()
      const started = starting.pollUnsafe() !== undefined
      stepper.fork(Fiber.interrupt(starting))
      stepper.drain()
      stepper.run(Scope.close(scope, Exit.void))
      // a job enqueued now must stay queued: no consumer is left to claim it
      const job = stepper.run(Effect.provide(JobQueue.enqueue(Sleep, 1), store))
      stepper.drain()
      const info = stepper.run(Effect.provide(JobQueue.status(job.id), store))
      assert.deepStrictEqual([info.state, info.attempts], ["queued", 0], `consume interrupted ${k} steps in`)
      stepper.run(Scope.close(storeScope, Exit.void))
      points++
      if (started) break
    }
    assert.isAbove(points, 3)
  })
})
