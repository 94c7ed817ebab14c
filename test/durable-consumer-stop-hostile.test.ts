/**
 * Hostile tests of a consumer stopped from inside itself (`shutdown` / `shutdownNow` called by one of
 * its own jobs or its onEvent handler): the stop starts and the call returns at once (consumer.ts
 * `stopAsked`). Here the calls a careless user makes in a row, and stops asked for while one is under
 * way. Under TestClock on every store of `storeLayers`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Logger, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"
import * as DurableError from "../src/DurableError.ts"
import { JobStore as Store } from "../src/internal/store/model.ts"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
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
    /** As `provide`, the store's claims, settles and heartbeats failing while `outage.down`. */
    const outage = { down: false }
    const failing = <A, E>(effect: Effect.Effect<A, E, JobStore.JobStore | Scope.Scope>) => {
      const down = <A, R>(operation: string, run: Effect.Effect<A, DurableError.StoreError, R>): Effect.Effect<A, DurableError.StoreError, R> =>
        Effect.suspend(() => outage.down ? Effect.fail(new DurableError.StoreError({ operation, reason: "the server is down" })) : run)
      const layer = Layer.effect(Store, Effect.map(Store, (store) => ({
        ...store,
        claim: (request: Parameters<typeof store.claim>[0]) => down("claim", store.claim(request)),
        settle: (...args: Parameters<typeof store.settle>) => down("settle", store.settle(...args)),
        heartbeat: (...args: Parameters<typeof store.heartbeat>) => down("heartbeat", store.heartbeat(...args))
      }))).pipe(Layer.provideMerge(tracked(makeStore())))
      outage.down = false
      return Effect.provide(Effect.scoped(effect), layer)
    }

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

    // shutdownNow interrupts the consumer's jobs, the one that asked too: its awaitTermination (which
    // would wait for itself) is interrupted with it, the job given back to run again, not lost
    it.effect("a job that calls shutdownNow, then awaitTermination: the consumer terminates, the job is given back and runs again elsewhere", () =>
      provide(Effect.gen(function*() {
        const holder = yield* Deferred.make<JobQueue.Consumer>()
        let runs = 0
        let after = false
        const consumer = yield* JobQueue.consume({
          ...options,
          shutdownTimeout: "1 hour",
          handlers: [Task.handle(Echo, ({ n }) =>
            runs++ > 0 ? Effect.succeed(n) : Effect.flatMap(Deferred.await(holder), (consumer) =>
              Effect.as(
                Effect.andThen(consumer.shutdownNow, Effect.andThen(consumer.awaitTermination, Effect.sync(() => void (after = true)))),
                n
              )))]
        })
        yield* Deferred.succeed(holder, consumer)
        const job = yield* JobQueue.enqueue(Echo, { n: 1 })
        const terminated = yield* Effect.forkChild(consumer.awaitTermination)
        yield* until(() => terminated.pollUnsafe() !== undefined, 30)
        assert.isFalse(after, "interrupted in its awaitTermination")
        assert.strictEqual((yield* JobQueue.status(job.id)).state, "queued", "given back")
        yield* JobQueue.consume({ ...options, handlers: [Task.handle(Echo, ({ n }) => Effect.sync(() => (runs++, n)))] })
        assert.strictEqual(yield* job.await, 1)
        assert.strictEqual(runs, 2)
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

    // a job that asks for its consumer's stop just as its store goes down: the stop's settle fails,
    // is left to the reaper past the grace, and the consumer still terminates; the job is not lost
    it.effect("a job that shuts its consumer down during a store outage: the consumer terminates, the job runs again once the store is back", () =>
      failing(Effect.gen(function*() {
        const holder = yield* Deferred.make<JobQueue.Consumer>()
        let runs = 0
        const consumer = yield* JobQueue.consume({
          ...options,
          shutdownTimeout: "1 hour",
          handlers: [Task.handle(Echo, ({ n }) =>
            Effect.as(
              Effect.suspend(() => {
                if (runs++ > 0) return Effect.void
                outage.down = true
                return Effect.flatMap(Deferred.await(holder), (consumer) => consumer.shutdown)
              }),
              n
            ))]
        })
        yield* Deferred.succeed(holder, consumer)
        const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { maxAttempts: 3 })
        const terminated = yield* Effect.forkChild(consumer.awaitTermination)
        yield* until(() => terminated.pollUnsafe() !== undefined, 30)
        assert.strictEqual(runs, 1)
        outage.down = false
        yield* JobQueue.consume({ ...options, handlers: [Task.handle(Echo, ({ n }) => Effect.sync(() => (runs++, n)))] })
        yield* until(() => runs === 2, 120)
        yield* tick(1000)
        assert.strictEqual((yield* JobQueue.status(job.id)).state, "succeeded")
      }).pipe(Effect.provide(Logger.layer([])))))

  })
}

// Left failing (hostile40, high: a consumer that never ends): an onEvent handler whose shutdown runs
// on a fiber it forked and joins (as Effect.forkChild + Fiber.join; a wrapper that forks would do
// the same) is not seen as inside (events.delivers compares the fiber itself), and the stop never
// ends: not at the events' 2 s grace, not in 10 s; the handler's call never returns. Under the
// conformance tick (tracked store) the clock itself cannot advance past it (a store operation stays
// in flight), so this runs on a bare memory store, the clock moved by hand. Not diagnosed further
it.effect.fails("memory: an onEvent handler whose shutdown runs on a child fiber it joins: the consumer terminates within 10 s", () =>
  Effect.gen(function*() {
    const holder = yield* Deferred.make<JobQueue.Consumer>()
    let returned = false
    const consumer = yield* JobQueue.consume({
      ...options,
      onEvent: (event) =>
        event._tag !== "Succeeded" ? Effect.void : Effect.flatMap(Deferred.await(holder), (consumer) =>
          Effect.andThen(Effect.flatMap(Effect.forkChild(consumer.shutdown), Fiber.join), Effect.sync(() => void (returned = true)))),
      handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))]
    })
    yield* Deferred.succeed(holder, consumer)
    const job = yield* JobQueue.enqueue(Echo, { n: 1 })
    const terminated = yield* Effect.forkChild(consumer.awaitTermination)
    for (let i = 0; i < 100 && terminated.pollUnsafe() === undefined; i++) {
      yield* TestClock.adjust(100)
      for (let j = 0; j < 50; j++) yield* Effect.yieldNow
    }
    assert.strictEqual((yield* JobQueue.status(job.id)).state, "succeeded")
    assert.isTrue(terminated.pollUnsafe() !== undefined, "terminated")
    assert.isTrue(returned, "the handler's shutdown returned")
  }).pipe(Effect.scoped, Effect.provide(JobStore.memory())))

  // Two consumers in one process whose jobs each stop the other: each stop's drain waits for the
  // other consumer's job, which waits for the first stop. Not "inside" either (a job of the other
  // consumer): both wait out shutdownTimeout, then are interrupted and given back though their
  // work is done. Left failing (hostile40, design: the stop cannot tell a job waiting for it from
  // one that is not); a user's job should fork another consumer's stop, not await it. On a bare
  // memory store: on the tracked stores the deadlocked scope's close took 60 s of real time on Postgres
  it.effect.fails("memory: two consumers whose jobs shut each other down: both terminate within 10 s, both jobs Succeeded", () =>
    Effect.gen(function*() {
      const holders = [yield* Deferred.make<JobQueue.Consumer>(), yield* Deferred.make<JobQueue.Consumer>()]
      const consumers: Array<JobQueue.Consumer> = []
      for (const [i, queue] of ["left", "right"].entries()) {
        consumers.push(yield* JobQueue.consume({
          ...options,
          queues: [queue],
          shutdownTimeout: "1 hour",
          handlers: [Task.handle(Echo, ({ n }) => Effect.as(Effect.flatMap(Deferred.await(holders[1 - i]!), (other) => other.shutdown), n))]
        }))
      }
      yield* Deferred.succeed(holders[0]!, consumers[0]!)
      yield* Deferred.succeed(holders[1]!, consumers[1]!)
      const jobs = [yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "left" }), yield* JobQueue.enqueue(Echo, { n: 2 }, { queue: "right" })]
      const terminated = yield* Effect.forkChild(Effect.andThen(consumers[0]!.awaitTermination, consumers[1]!.awaitTermination))
      for (let i = 0; i < 100 && terminated.pollUnsafe() === undefined; i++) {
        yield* TestClock.adjust(100)
        for (let j = 0; j < 50; j++) yield* Effect.yieldNow
      }
      assert.isTrue(terminated.pollUnsafe() !== undefined, "terminated")
      for (const job of jobs) assert.strictEqual((yield* JobQueue.status(job.id)).state, "succeeded")
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory())))
