/**
 * Hostile tests of a consumer stopped from inside itself (`shutdown` / `shutdownNow` called by one of
 * its own jobs or its onEvent handler): the stop starts and the call returns at once (consumer.ts
 * `stopAsked`). Here the calls a careless user makes in a row, and stops asked for while one is under
 * way. Under TestClock on every store of `storeLayers`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Logger, Scope } from "effect"
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

    /**
     * A consumer running an hour-long job, then a job that calls `ask` with its consumer and returns:
     * its events and the two jobs, once the consumer has terminated (well within its shutdownTimeout,
     * an hour: nothing waited for the hour-long job).
     */
    const askingJob = (ask: (consumer: JobQueue.Consumer) => Effect.Effect<void>) =>
      Effect.gen(function*() {
        const events = recorder()
        const holder = yield* Deferred.make<JobQueue.Consumer>()
        const consumer = yield* JobQueue.consume({
          ...options,
          shutdownTimeout: "1 hour",
          onEvent: events.onEvent,
          handlers: [Task.handle(Echo, ({ n }) =>
            n === 1 ? Effect.as(Effect.sleep("1 hour"), n) : Effect.as(Effect.flatMap(Deferred.await(holder), ask), n))]
        })
        yield* Deferred.succeed(holder, consumer)
        const long = yield* JobQueue.enqueue(Echo, { n: 1 })
        yield* until(() => events.of(long.id).length === 1)
        const asking = yield* JobQueue.enqueue(Echo, { n: 2 })
        const terminated = yield* Effect.forkChild(consumer.awaitTermination)
        yield* until(() => terminated.pollUnsafe() !== undefined, 30)
        return { events, long, asking }
      })

    // the graceful stop a job began waits for the consumer's other jobs up to shutdownTimeout; the
    // shutdownNow the same job asks for next cuts that short. Inside, it was answered "started" and
    // dropped: the hour-long job ran on and the consumer stopped only at shutdownTimeout
    it.effect("a job that calls shutdown, then shutdownNow: the other running job is interrupted and given back at once, the consumer terminates", () =>
      provide(Effect.gen(function*() {
        const { asking, long } = yield* askingJob((consumer) => Effect.andThen(consumer.shutdown, consumer.shutdownNow))
        assert.strictEqual((yield* JobQueue.status(long.id)).state, "queued", "the interrupted job was given back")
        assert.strictEqual((yield* JobQueue.status(asking.id)).state, "succeeded", "the asking job ended as its handler did")
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

    // a stop asked for on a fiber forked inside the consumer (a child joined, a detached one joined,
    // a wrapper that forks): the fiber inherits where it runs. Compared as the fiber itself, a handler's
    // child was not seen as inside: its call never returned (the stop waited out the events' grace
    // for the handler that waited for it, then interrupted it), and the events after it were lost
    for (const where of ["onEvent handler", "job"] as const) {
      for (const fork of ["child", "detached"] as const) {
        it.effect(`a${where === "job" ? "" : "n"} ${where} whose shutdown runs on a ${fork} fiber it joins: the call returns, the consumer terminates, the job Succeeded`, () =>
          provide(Effect.gen(function*() {
            const holder = yield* Deferred.make<JobQueue.Consumer>()
            let returned = false
            const stop = Effect.flatMap(Deferred.await(holder), (consumer) =>
              Effect.andThen(
                Effect.flatMap(fork === "child" ? Effect.forkChild(consumer.shutdown) : Effect.forkDetach(consumer.shutdown), Fiber.join),
                Effect.sync(() => void (returned = true))
              ))
            const consumer = yield* JobQueue.consume({
              ...options,
              shutdownTimeout: "1 hour",
              onEvent: (event) => where === "onEvent handler" && event._tag === "Succeeded" ? stop : Effect.void,
              handlers: [Task.handle(Echo, ({ n }) => where === "job" ? Effect.as(stop, n) : Effect.succeed(n))]
            })
            yield* Deferred.succeed(holder, consumer)
            const job = yield* JobQueue.enqueue(Echo, { n: 1 })
            yield* until(() => returned, 1)
            const terminated = yield* Effect.forkChild(consumer.awaitTermination)
            // well within the events' grace (2 s): nothing waited for it
            yield* until(() => terminated.pollUnsafe() !== undefined, 1)
            assert.strictEqual((yield* JobQueue.status(job.id)).state, "succeeded")
          })))
      }
    }

    // a job's awaitTermination waits for itself: it is interrupted as the stop starts (above). A
    // fiber the job left running detached, ended before the stop, is not the job: it waits, and is told
    it.effect("a fiber a job forked detached and left running: its awaitTermination returns once the consumer has stopped", () =>
      provide(Effect.gen(function*() {
        const holder = yield* Deferred.make<JobQueue.Consumer>()
        let asked = false
        let told = false
        const consumer = yield* JobQueue.consume({
          ...options,
          handlers: [Task.handle(Echo, ({ n }) =>
            Effect.as(
              // the fiber asks while the job runs (which then ends a second later, under the TestClock)
              Effect.flatMap(Deferred.await(holder), (consumer) =>
                Effect.andThen(
                  Effect.forkDetach(Effect.andThen(Effect.sync(() => void (asked = true)), Effect.andThen(consumer.awaitTermination, Effect.sync(() => void (told = true))))),
                  Effect.sleep("1 second")
                )),
              n
            ))]
        })
        yield* Deferred.succeed(holder, consumer)
        const job = yield* JobQueue.enqueue(Echo, { n: 1 })
        yield* until(() => asked, 1)
        assert.strictEqual((yield* JobQueue.status(job.id)).state, "running", "asked while the job ran")
        for (let i = 0; i < 100 && (yield* JobQueue.status(job.id)).state !== "succeeded"; i++) yield* tick(100)
        assert.strictEqual((yield* JobQueue.status(job.id)).state, "succeeded")
        const stopped = yield* Effect.forkChild(consumer.shutdown)
        yield* until(() => stopped.pollUnsafe() !== undefined && told, 10)
      })))

    // two consumers whose jobs each stop the other: each stop's drain waited for the other
    // consumer's job, which waited for the first stop. Neither inside the other, both waited out
    // shutdownTimeout and gave back jobs whose handlers were done but for that wait (run again, they
    // stopped the next consumers). The second stop asked sees that the stop it asks for waits, through
    // the first, for its asker, and returns at once. The same when the first waits for the other's
    // termination (its stop started on a detached fiber)
    for (const wait of ["shutdown", "awaitTermination"] as const) {
      it.effect(`two consumers whose jobs shut each other down (the first by ${wait}): both terminate at once, both jobs Succeeded`, () =>
        provide(Effect.gen(function*() {
          const holders = [yield* Deferred.make<JobQueue.Consumer>(), yield* Deferred.make<JobQueue.Consumer>()]
          const consumers: Array<JobQueue.Consumer> = []
          // the left job stops the right consumer once its job runs (stopped before, it never would
          // run, and nothing would stop the left one); the right job asks a second later, the left's waiting
          const rightStarted = yield* Deferred.make<void>()
          const stopOther = (i: number) =>
            Effect.flatMap(Effect.andThen(i === 0 ? Deferred.await(rightStarted) : Effect.void, Deferred.await(holders[1 - i]!)), (other) =>
              wait === "awaitTermination" && i === 0
                ? Effect.andThen(Effect.forkDetach(other.shutdown), other.awaitTermination)
                : other.shutdown)
          for (const [i, queue] of ["left", "right"].entries()) {
            consumers.push(yield* JobQueue.consume({
              ...options,
              queues: [queue],
              shutdownTimeout: "1 hour",
              handlers: [Task.handle(Echo, ({ n }) =>
                Effect.as(
                  i === 0 ? stopOther(i) : Effect.andThen(Deferred.succeed(rightStarted, undefined), Effect.andThen(Effect.sleep("1 second"), stopOther(i))),
                  n
                ))]
            }))
          }
          yield* Deferred.succeed(holders[0]!, consumers[0]!)
          yield* Deferred.succeed(holders[1]!, consumers[1]!)
          const jobs = [yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "left" }), yield* JobQueue.enqueue(Echo, { n: 2 }, { queue: "right" })]
          const terminated = yield* Effect.forkChild(Effect.andThen(consumers[0]!.awaitTermination, consumers[1]!.awaitTermination))
          yield* until(() => terminated.pollUnsafe() !== undefined, 10)
          for (const job of jobs) assert.strictEqual((yield* JobQueue.status(job.id)).state, "succeeded")
        })))
    }

    // a job's shutdownNow returns at once; the stop's interrupt then raced the job's own end: it
    // was Succeeded or GivenBack by timing (given back, a job that stops its consumer ran again on
    // the next one and stopped it too). The asking job ends as its handler ends; the others are
    // interrupted at once and given back
    it.effect("a job that calls shutdownNow, then works on: it ends Succeeded, run once; the other running job is given back at once", () =>
      provide(Effect.gen(function*() {
        let runs = 0
        const { asking, events, long } = yield* askingJob((consumer) =>
          Effect.andThen(consumer.shutdownNow, Effect.andThen(Effect.sleep("500 millis"), Effect.sync(() => void runs++)))
        )
        assert.strictEqual(runs, 1)
        assert.deepStrictEqual(events.tags(asking.id), ["Started:1", "Succeeded:1"])
        assert.strictEqual((yield* JobQueue.status(asking.id)).state, "succeeded")
        assert.deepStrictEqual(events.tags(long.id), ["Started:1", "GivenBack:1"])
        assert.strictEqual((yield* JobQueue.status(long.id)).state, "queued")
      })))
  })
}
