/**
 * Lost wake-ups: with a store that answers asynchronously (Postgres), a change can land while a
 * waiter's look at the store is in flight. The waiter read the store's `version` before looking,
 * so its `wait` returns at once instead of sleeping until the next poll. Simulated on the memory
 * store (whose looks are synchronous) by landing the change inside the look; under TestClock a
 * missed wake-up would wait for a poll that never comes.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Schedule } from "effect"
import { TestClock } from "effect/testing"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import type { Store } from "../src/internal/store/model.ts"
import * as Task from "../src/Task.ts"
import { Echo, newJob } from "./durable/conformance.ts"
import { settle } from "./helpers.ts"

/** The memory store, with `during` run inside the first call of `method`, after it has looked. */
const changeDuring = (method: "get" | "claim", during: (store: Store) => Effect.Effect<unknown, unknown>) =>
  Layer.effect(
    JobStore.JobStore,
    Effect.map(JobStore.JobStore, (store): Store => {
      let first = true
      const inFlight = <A, E>(look: Effect.Effect<A, E>) =>
        Effect.flatMap(look, (a) => {
          if (!first) return Effect.succeed(a)
          first = false
          return Effect.as(Effect.orDie(during(store)), a)
        })
      return method === "get"
        ? { ...store, get: (id) => inFlight(store.get(id)) }
        : { ...store, claim: (request) => inFlight(store.claim(request)) }
    })
  ).pipe(Layer.provide(JobStore.memory()))

describe("durable wake-ups", () => {
  it.effect("an awaiter whose look is in flight when its job finishes returns without waiting for a poll", () =>
    Effect.gen(function*() {
      const token = { value: "" }
      const layer = changeDuring("get", (store) =>
        store.settle(token.value, { _tag: "Final", state: "succeeded", exit: JSON.stringify({ _tag: "Success", value: 5 }) }))
      yield* Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const job = yield* JobQueue.enqueue(Echo, { n: 1 })
        const [claim] = (yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 1, lease: 60_000 })).claims
        token.value = claim!.token
        const awaiting = yield* Effect.forkChild(job.await)
        yield* settle
        const done = awaiting.pollUnsafe()
        assert.isDefined(done, "the awaiter is still waiting for its poll")
        assert.strictEqual(yield* Fiber.join(awaiting), 5)
      }).pipe(Effect.provide(layer))
    }))

  it.effect("an idle consumer whose claim is in flight when a job arrives claims it without waiting for a poll", () =>
    Effect.gen(function*() {
      const layer = changeDuring("claim", (store) =>
        store.enqueue(newJob("default", { id: "arrived", payload: JSON.stringify({ n: 5 }), maxAttempts: 1 })))
      yield* Effect.gen(function*() {
        yield* JobQueue.consume({
          handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n * 10))],
          concurrency: 1,
          poll: "1 hour",
          retry: Schedule.recurs(0)
        })
        const awaiting = yield* Effect.forkChild(JobQueue.await(Echo, "arrived"))
        yield* settle
        assert.isDefined(awaiting.pollUnsafe(), "the job waits for the consumer's next poll")
        assert.strictEqual(yield* Fiber.join(awaiting), 50)
      }).pipe(Effect.scoped, Effect.provide(layer))
    }))

  it.effect("a delayed job enqueued while a consumer sleeps wakes it at the job's time, not at once to look again", () =>
    Effect.gen(function*() {
      const claims: Array<number> = []
      const layer = Layer.effect(
        JobStore.JobStore,
        Effect.map(JobStore.JobStore, (store): Store => ({
          ...store,
          claim: (request) =>
            Effect.andThen(Effect.flatMap(store.now, (now) => Effect.sync(() => claims.push(now))), store.claim(request))
        }))
      ).pipe(Layer.provide(JobStore.memory()))
      yield* Effect.gen(function*() {
        yield* JobQueue.consume({
          handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))],
          concurrency: 1,
          poll: "1 hour",
          retry: Schedule.recurs(0)
        })
        yield* settle
        assert.deepStrictEqual(claims, [0], "one look at start")
        const job = yield* JobQueue.enqueue(Echo, { n: 3 }, { delay: "5 seconds" })
        for (let t = 0; t < 5000; t += 500) {
          yield* TestClock.adjust(500)
          yield* settle
        }
        assert.strictEqual(yield* job.await, 3)
        // at 5 s it claims the job, then looks again once its slot is free
        assert.deepStrictEqual(claims, [0, 5000, 5000])
      }).pipe(Effect.scoped, Effect.provide(layer))
    }))
})
