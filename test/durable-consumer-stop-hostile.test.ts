/**
 * Hostile tests of a consumer stopped from inside itself (`shutdown` / `shutdownNow` called by one of
 * its own jobs or its onEvent handler): the stop starts and the call returns at once (consumer.ts
 * `stopAsked`). Here the calls a careless user makes in a row, and stops asked for while one is under
 * way. Under TestClock on every store of `storeLayers`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Scope } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"
import * as JobQueue from "../src/JobQueue.ts"
import type * as JobStore from "../src/JobStore.ts"
import * as Task from "../src/Task.ts"
import { Echo, options, tick, tracked } from "./durable/conformance.ts"
import { recorder, until } from "./durable/events.ts"
import { storeLayers } from "./durable/stores.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wp-consumer-stop-hostile-"))
let files = 0
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

for (const [name, makeStore] of storeLayers(() => path.join(dir, `jobs-${++files}.db`))) {
  describe(`a consumer stopped from inside, hostile, on ${name}`, () => {
    const provide = <A, E>(effect: Effect.Effect<A, E, JobStore.JobStore | Scope.Scope>) =>
      Effect.provide(Effect.scoped(effect), tracked(makeStore()))

    // the graceful stop a job began waits for the consumer's other jobs up to shutdownTimeout; the
    // shutdownNow the same job asks for next cuts that short. Inside, it was answered "started" and
    // dropped: the hour-long job ran on and the consumer stopped only at shutdownTimeout
    it.effect("a job that calls shutdown, then shutdownNow: the other running job is interrupted and given back at once, the consumer terminates", () =>
      provide(Effect.gen(function*() {
        const events = recorder()
        const holder = yield* Deferred.make<JobQueue.Consumer>()
        let returned = 0
        const consumer = yield* JobQueue.consume({
          ...options,
          shutdownTimeout: "1 hour",
          onEvent: events.onEvent,
          handlers: [Task.handle(Echo, ({ n }) =>
            n === 1
              ? Effect.as(Effect.sleep("1 hour"), n)
              : Effect.flatMap(Deferred.await(holder), (consumer) =>
                Effect.as(
                  Effect.andThen(consumer.shutdown, Effect.andThen(consumer.shutdownNow, Effect.sync(() => void returned++))),
                  n
                )))]
        })
        yield* Deferred.succeed(holder, consumer)
        const long = yield* JobQueue.enqueue(Echo, { n: 1 })
        yield* until(() => events.of(long.id).length === 1)
        const asking = yield* JobQueue.enqueue(Echo, { n: 2 })
        const terminated = yield* Effect.forkChild(consumer.awaitTermination)
        // well within shutdownTimeout (an hour): nothing waits for the hour-long job
        yield* until(() => terminated.pollUnsafe() !== undefined, 30)
        assert.strictEqual((yield* JobQueue.status(long.id)).state, "queued", "the interrupted job was given back")
        assert.notStrictEqual((yield* JobQueue.status(asking.id)).state, "running")
      })))

    // the same, asked for by an onEvent handler while a graceful stop from outside is under way
    it.effect("an onEvent handler's shutdownNow during a graceful stop from outside cuts the drain short", () =>
      provide(Effect.gen(function*() {
        const holder = yield* Deferred.make<JobQueue.Consumer>()
        const events = recorder()
        let stopping = false
        const consumer = yield* JobQueue.consume({
          ...options,
          shutdownTimeout: "1 hour",
          onEvent: (event) =>
            Effect.andThen(
              events.onEvent(event),
              stopping && event._tag === "Succeeded" ? Effect.flatMap(Deferred.await(holder), (c) => c.shutdownNow) : Effect.void
            ),
          handlers: [Task.handle(Echo, ({ n }) => Effect.as(Effect.sleep(n === 1 ? "1 hour" : "2 seconds"), n))]
        })
        yield* Deferred.succeed(holder, consumer)
        const long = yield* JobQueue.enqueue(Echo, { n: 1 })
        const short = yield* JobQueue.enqueue(Echo, { n: 2 })
        yield* until(() => events.of(long.id).length === 1 && events.of(short.id).length === 1)
        stopping = true
        const stopped = yield* Effect.forkChild(consumer.shutdown)
        yield* until(() => stopped.pollUnsafe() !== undefined, 30)
        assert.strictEqual((yield* JobQueue.status(short.id)).state, "succeeded")
        assert.strictEqual((yield* JobQueue.status(long.id)).state, "queued", "the interrupted job was given back")
        yield* tick(1000)
      })))
  })
}
