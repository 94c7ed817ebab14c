/**
 * Snoozes and queue holds (`JobQueue.snooze`, `JobQueue.holdQueue`), written once and run on every
 * store under TestClock (see conformance.ts: the stores take their time from the Effect Clock).
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Clock, Context, Effect, Exit, Layer, Ref } from "effect"
import { JobStore as Store } from "../../src/internal/store/model.ts"
import * as JobQueue from "../../src/JobQueue.ts"
import * as JobStore from "../../src/JobStore.ts"
import { InvalidJobOptions } from "../../src/PoolError.ts"
import * as Task from "../../src/Task.ts"
import { waitFor } from "../helpers.ts"
import { Echo, options, tick, tracked } from "./conformance.ts"

const statusOf = (id: string) => Effect.map(JobQueue.status(id), (job) => [job.state, job.attempts] as const)
const snoozesOf = (id: string) => Effect.map(JobQueue.status(id), (job) => job.snoozes)

/**
 * `instances`: a new store instance on the same storage at each call (another process, as far as a
 * consumer can tell); none for a store that has no shared storage (memory).
 */
export const snoozeConformance = (
  name: string,
  makeStore: () => Layer.Layer<JobStore.JobStore, any>,
  instances?: () => () => Layer.Layer<JobStore.JobStore, any>
) =>
  describe(`snooze and queue holds on ${name}`, () => {
    const provide = <A, E>(effect: Effect.Effect<A, E, JobStore.JobStore | import("effect/Scope").Scope>) =>
      Effect.provide(effect, tracked(makeStore()))

    it.effect("a snoozed job runs again after its snooze and not before, its attempt not spent (maxAttempts 1), its slot freed at once for the next job", () =>
      provide(Effect.gen(function*() {
        const runs = yield* Ref.make<Array<number>>([])
        const consumer = yield* JobQueue.consume({
          ...options,
          concurrency: 1,
          handlers: [Task.handle(Echo, ({ n }) =>
            Effect.gen(function*() {
              const before = (yield* Ref.getAndUpdate(runs, (r) => [...r, n])).filter((m) => m === n).length
              return n === 1 && before === 0 ? yield* JobQueue.snooze("5 seconds") : n
            }))]
        })
        const snoozed = yield* JobQueue.enqueue(Echo, { n: 1 }, { maxAttempts: 1, priority: 1 })
        const next = yield* JobQueue.enqueue(Echo, { n: 2 }, { maxAttempts: 1 })
        yield* tick(500)
        assert.strictEqual(yield* next.await, 2, "the next job ran in the snoozed one's slot")
        assert.deepStrictEqual(yield* statusOf(snoozed.id), ["delayed", 0], "back in the queue, its attempt not counted")
        assert.deepStrictEqual([yield* snoozesOf(snoozed.id), yield* snoozesOf(next.id)], [1, 0], "its snooze counted")
        // a snooze is not a failure: the consumer's pool counts no defect nor failure for it
        const stats = yield* consumer.stats
        assert.deepStrictEqual([stats.defects, stats.failed], [0, 0], "a snooze is no defect")
        yield* tick(4000)
        assert.deepStrictEqual(yield* Ref.get(runs), [1, 2], "not run again before its time")
        yield* tick(1500)
        assert.strictEqual(yield* snoozed.await, 1)
        assert.deepStrictEqual(yield* statusOf(snoozed.id), ["succeeded", 1])
        assert.strictEqual(yield* snoozesOf(snoozed.id), 1, "kept once it ended")
      })))

    it.effect("a snooze with holdQueue holds every job of its queue (not another queue's) until its end; the snoozed job runs after it", () =>
      provide(Effect.gen(function*() {
        const runs = yield* Ref.make<Array<number>>([])
        yield* JobQueue.consume({
          ...options,
          queues: ["api", "other"],
          handlers: [Task.handle(Echo, ({ n }) =>
            Effect.gen(function*() {
              const before = (yield* Ref.getAndUpdate(runs, (r) => [...r, n])).filter((m) => m === n).length
              return n === 1 && before === 0 ? yield* JobQueue.snooze("5 seconds", { holdQueue: true }) : n
            }))]
        })
        const snoozed = yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "api" })
        yield* tick(500)
        assert.deepStrictEqual(yield* statusOf(snoozed.id), ["delayed", 0])
        const held = yield* JobQueue.enqueue(Echo, { n: 2 }, { queue: "api" })
        const other = yield* JobQueue.enqueue(Echo, { n: 3 }, { queue: "other" })
        yield* tick(1500)
        assert.strictEqual(yield* other.await, 3, "another queue is not held")
        yield* tick(2500)
        assert.deepStrictEqual(yield* statusOf(held.id), ["queued", 0], "held with its queue")
        assert.deepStrictEqual((yield* Ref.get(runs)).filter((n) => n !== 3), [1])
        // the hold's end is heard at the next poll at the latest
        yield* tick(2000)
        assert.strictEqual(yield* held.await, 2)
        assert.strictEqual(yield* snoozed.await, 1)
        assert.deepStrictEqual(yield* statusOf(snoozed.id), ["succeeded", 1])
      })))

    it.effect("holdQueue holds a queue until its end; 0 lifts it; a bad duration is a typed error naming the option", () =>
      provide(Effect.gen(function*() {
        yield* JobQueue.consume({ ...options, handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))] })
        yield* JobQueue.holdQueue("default", "1 hour")
        const job = yield* JobQueue.enqueue(Echo, { n: 1 })
        yield* tick(5000)
        assert.deepStrictEqual(yield* statusOf(job.id), ["queued", 0])
        yield* JobQueue.holdQueue("default", 0)
        yield* tick(1500)
        assert.strictEqual(yield* job.await, 1)
        for (const bad of [-1, Infinity, Number.NaN, "soon"] as const) {
          const error = yield* Effect.flip(JobQueue.holdQueue("default", bad as never))
          assert.instanceOf(error, InvalidJobOptions)
          assert.strictEqual((error as InvalidJobOptions).field, "holdQueue")
        }
      })))

    it.effect("a snooze of a bad duration fails the attempt with the defect InvalidJobOptions (field snooze): a dead job at its last attempt, not a snooze", () =>
      provide(Effect.gen(function*() {
        yield* JobQueue.consume({ ...options, handlers: [Task.handle(Echo, () => JobQueue.snooze("-5 seconds"))] })
        const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { maxAttempts: 1 })
        yield* tick(500)
        const exit = yield* Effect.exit(job.await)
        assert.isTrue(Exit.isFailure(exit))
        const defect = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
        assert.include(String((defect as Error).message), "snooze", String(defect))
        assert.deepStrictEqual(yield* statusOf(job.id), ["dead", 1])
      })))

    it.effect("a consumer whose queue is held wakes when the hold ends, not at its next poll (an hour)", () =>
      provide(Effect.gen(function*() {
        yield* JobQueue.consume({ ...options, poll: "1 hour", handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))] })
        yield* tick(500)
        // 12 s: not a multiple of the Redis store's 5 s look for orphaned jobs, which would start it too
        yield* JobQueue.holdQueue("default", "12 seconds")
        const job = yield* JobQueue.enqueue(Echo, { n: 1 })
        yield* tick(11_500)
        assert.deepStrictEqual(yield* statusOf(job.id), ["queued", 0], "held")
        yield* tick(700)
        assert.strictEqual(yield* job.await, 1, "started at the hold's end")
      })))

    it.effect("a hold lifted with 0 wakes a consumer it held (poll an hour), as a resume does", () =>
      provide(Effect.gen(function*() {
        yield* JobQueue.consume({ ...options, poll: "1 hour", handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))] })
        yield* JobQueue.holdQueue("default", "1 hour")
        const job = yield* JobQueue.enqueue(Echo, { n: 1 })
        yield* tick(2000)
        assert.deepStrictEqual(yield* statusOf(job.id), ["queued", 0], "held")
        yield* JobQueue.holdQueue("default", 0)
        yield* tick(500)
        assert.strictEqual(yield* job.await, 1, "lifted: started at once")
      })))

    it.effect("JobQueue.stats shows a queue's hold while it lasts", () =>
      provide(Effect.gen(function*() {
        assert.strictEqual((yield* JobQueue.stats("default")).heldUntil, undefined, "never held")
        const start = yield* Clock.currentTimeMillis
        yield* JobQueue.holdQueue("default", "10 seconds")
        const held = (yield* JobQueue.stats("default")).heldUntil
        assert.isDefined(held)
        assert.strictEqual(held!.getTime(), start + 10_000)
        yield* tick(10_500)
        assert.strictEqual((yield* JobQueue.stats("default")).heldUntil, undefined, "ended")
      })))

    if (instances !== undefined) {
      it.effect("a hold set through one store instance holds a consumer of another (another process), until its end", () =>
        Effect.gen(function*() {
          const on = instances()
          const admin = Context.get(yield* Layer.build(tracked(on())), JobStore.JobStore)
          const elsewhere = <A, E>(effect: Effect.Effect<A, E, JobStore.JobStore>) => Effect.provideService(effect, JobStore.JobStore, admin)
          const mine = Context.get(yield* Layer.build(tracked(on())), JobStore.JobStore)
          yield* Effect.provideService(
            JobQueue.consume({ ...options, handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))] }),
            JobStore.JobStore,
            mine
          )
          yield* elsewhere(JobQueue.holdQueue("default", "10 seconds"))
          const job = yield* elsewhere(JobQueue.enqueue(Echo, { n: 4 }))
          yield* tick(9000)
          assert.deepStrictEqual(yield* elsewhere(statusOf(job.id)), ["queued", 0], "held for the other instance's consumer")
          yield* tick(2500)
          assert.strictEqual(yield* elsewhere(job.await), 4)
        }).pipe(Effect.scoped))

      it.effect("a hold lifted with 0 through another store instance (another process) wakes a consumer it held (poll an hour)", () =>
        Effect.gen(function*() {
          const on = instances()
          const admin = Context.get(yield* Layer.build(tracked(on())), JobStore.JobStore)
          const elsewhere = <A, E>(effect: Effect.Effect<A, E, JobStore.JobStore>) => Effect.provideService(effect, JobStore.JobStore, admin)
          const mine = Context.get(yield* Layer.build(tracked(on())), JobStore.JobStore)
          yield* Effect.provideService(
            JobQueue.consume({ ...options, poll: "1 hour", handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))] }),
            JobStore.JobStore,
            mine
          )
          yield* elsewhere(JobQueue.holdQueue("default", "1 hour"))
          const job = yield* elsewhere(JobQueue.enqueue(Echo, { n: 5 }))
          yield* tick(2000)
          assert.deepStrictEqual(yield* elsewhere(statusOf(job.id)), ["queued", 0], "held")
          yield* elsewhere(JobQueue.holdQueue("default", 0))
          yield* tick(1500)
          // the lift's wake (a NOTIFY, a marker) is a real message that a busy machine may deliver
          // after the ticks: wait for it in real time, the clock still (the poll is an hour away)
          yield* waitFor(Effect.orDie(elsewhere(statusOf(job.id))), "the job of the lifted queue ran", {
            until: ([state]) => state === "succeeded",
            within: "20 seconds"
          })
          assert.strictEqual(yield* elsewhere(job.await), 5, "lifted elsewhere: started")
        }).pipe(Effect.scoped))
    }
  })

/**
 * Live, on a store's public layer (the server's clock on Postgres and Redis): a hold set for an hour
 * keeps a claim from the queue's job, and one lifted (0) lets it through. No wait: the claims ask
 * the store directly.
 */
export const holdOnServerClock = Effect.gen(function*() {
  const store = yield* Store
  yield* JobQueue.holdQueue("held", "1 hour")
  const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "held" })
  const request = { queues: ["held"], tasks: ["Echo"], limit: 1, lease: 60_000 }
  assert.deepStrictEqual((yield* store.claim(request)).claims, [], "held")
  yield* JobQueue.holdQueue("held", 0)
  assert.deepStrictEqual((yield* store.claim(request)).claims.map((claim) => claim.job.id), [job.id], "lifted")
})
