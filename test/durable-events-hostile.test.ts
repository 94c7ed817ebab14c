/**
 * Hostile tests of a consumer's lifecycle events (`consume({ onEvent })`, `JobQueue.JobEvent`): the
 * outcome paths the conformance suite (test/durable/events.ts) does not walk, a handler that calls
 * back into the queue or interrupts itself, a store that is slow or fails for a while, a clock that
 * steps past a lease, a cancel that meets an attempt ending otherwise. Each job must get exactly the
 * documented events, in order, once each, with the fields its store agrees with. Under TestClock
 * on every store of `storeLayers` (memory and SQLite always; Postgres and Redis when set).
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Clock, Deferred, Effect, Exit, Fiber, Layer, Logger, Schedule, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"
import * as DurableError from "../src/DurableError.ts"
import * as Events from "../src/internal/durable/events.ts"
import { JobStore as Store, type Settlement } from "../src/internal/store/model.ts"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import { InvalidPoolConfig } from "../src/PoolError.ts"
import * as Task from "../src/Task.ts"
import * as ThreadPool from "../src/ThreadPool.ts"
import { Boom, Echo, newJob, options, tick, tracked } from "./durable/conformance.ts"
import { storeLayers } from "./durable/stores.ts"
import { recorder, until } from "./durable/events.ts"
import { Crash, Nap, Refused, Snoozy, Stamp } from "./fixtures/durable-thread-tasks.ts"
import { waitFor, warnings } from "./helpers.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wp-events-hostile-"))
let files = 0
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

/** `layer`'s store with its `settle` and `heartbeat` wrapped by `wrap`'s (given the store's own). */
const wrapped = (
  layer: Layer.Layer<JobStore.JobStore, any>,
  wrap: (store: Store["Service"]) => Partial<Store["Service"]>
) =>
  Layer.effect(Store, Effect.map(Store, (store) => ({ ...store, ...wrap(store) }))).pipe(Layer.provideMerge(layer))

for (const [name, makeStore] of storeLayers(() => path.join(dir, `jobs-${++files}.db`))) {
  describe(`lifecycle events, hostile, on ${name}`, () => {
    /** `effect` on a fresh store, tracked (see conformance.ts), its operations wrapped by `wrap`'s: outside the tracking, whose clock waits for what it tracks */
    const provide = <A, E>(
      effect: Effect.Effect<A, E, JobStore.JobStore | Scope.Scope>,
      wrap?: (store: Store["Service"]) => Partial<Store["Service"]>
    ) => Effect.provide(Effect.scoped(effect), wrap === undefined ? tracked(makeStore()) : wrapped(tracked(makeStore()), wrap))

    it.effect("a settle that the store answers slowly: Succeeded's duration is the attempt's, not the write's", () =>
      provide(
        Effect.gen(function*() {
          const events = recorder()
          yield* JobQueue.consume({
            ...options,
            onEvent: events.onEvent,
            handlers: [Task.handle(Echo, ({ n }) => Effect.as(Effect.sleep(700), n))]
          })
          const job = yield* JobQueue.enqueue(Echo, { n: 1 })
          yield* until(() => events.of(job.id).length === 2)
          assert.deepStrictEqual(events.tags(job.id), ["Started:1", "Succeeded:1"])
          const succeeded = events.of(job.id)[1]!
          assert.strictEqual(succeeded._tag === "Succeeded" && succeeded.duration, 700)
        }),
        (store) => ({
          settle: (token: string, settlement: Settlement) => Effect.andThen(Effect.sleep(3000), store.settle(token, settlement))
        })
      ))

    it.effect("a settle that fails twice, then lands: one Failed (willRetry, its runAt), no LeaseLost; duration the attempt's", () =>
      provide(
        Effect.gen(function*() {
          const events = recorder()
          yield* JobQueue.consume({
            ...options,
            onEvent: events.onEvent,
            handlers: [Task.handle(Echo, ({ n }) => Effect.andThen(Effect.sleep(500), Effect.fail(new Boom({ n }))))]
          })
          const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { maxAttempts: 2, retry: { fixed: "10 seconds" } })
          yield* until(() => events.of(job.id).length === 2)
          assert.deepStrictEqual(events.tags(job.id), ["Started:1", "Failed:1"])
          const failed = events.of(job.id)[1]!
          if (failed._tag !== "Failed") return assert.fail(failed._tag)
          assert.strictEqual(failed.duration, 500)
          assert.isTrue(failed.willRetry)
          const info = yield* JobQueue.status(job.id)
          assert.strictEqual(info.state, "delayed")
          // the store's time of the retry is the event's (both on the TestClock here)
          assert.strictEqual(failed.runAt?.getTime(), info.visibleAt?.getTime())
        }).pipe(Effect.provide(Logger.layer([]))),
        (store) => {
          let failures = 2
          return {
            settle: (token: string, settlement: Settlement) =>
              Effect.suspend(() =>
                failures-- > 0
                  ? Effect.fail(new DurableError.StoreError({ operation: "settle", reason: "a blip" }))
                  : store.settle(token, settlement)
              )
          }
        }
      ))

    /**
     * A cancel asked for while the attempt runs, which then fails with attempts left: the store ends
     * the job cancelled (docs/durable.md, "Cancel from any process"), so its event is `Cancelled`, not
     * `Failed` with a retry that never comes. `heard`: the consumer's heartbeat heard of the cancel,
     * its handler uninterruptible (ending as it would); else the heartbeat never reports it (one
     * that has not beaten since the cancel).
     */
    const cancelMeetsFailure = (heard: boolean, end: "fail" | "snooze") =>
      provide(
        Effect.gen(function*() {
          const events = recorder()
          const go = yield* Deferred.make<void>()
          yield* JobQueue.consume({
            ...options,
            onEvent: events.onEvent,
            handlers: [Task.handle(Echo, ({ n }) =>
              Effect.uninterruptible(Effect.andThen(
                Deferred.await(go),
                end === "fail" ? Effect.fail(new Boom({ n })) : JobQueue.snooze("5 seconds")
              )))]
          })
          const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { maxAttempts: 3 })
          yield* until(() => events.of(job.id).length === 1)
          assert.strictEqual(yield* JobQueue.cancel(job.id), "requested")
          yield* tick(1000)
          yield* Deferred.succeed(go, undefined)
          yield* until(() => events.of(job.id).length === 2)
          yield* tick(10_000)
          assert.strictEqual((yield* JobQueue.status(job.id)).state, "cancelled")
          assert.deepStrictEqual(events.tags(job.id), ["Started:1", "Cancelled:1"])
        }),
        heard ? undefined : deaf
      )

    /** A heartbeat that never reports a cancel: one that has not beaten since it was asked for. */
    const deaf = (store: Store["Service"]): Partial<Store["Service"]> => ({
      heartbeat: (tokens: ReadonlyArray<string>, lease: number) =>
        Effect.map(store.heartbeat(tokens, lease), (beat) => ({ ...beat, cancelled: [] }))
    })

    it.effect("a cancel heard while the attempt runs, which then fails anyway (attempts left): Cancelled, as the store ends it", () =>
      cancelMeetsFailure(true, "fail"))

    it.effect("a cancel heard while the attempt runs, which then snoozes: Cancelled, as the store ends it", () =>
      cancelMeetsFailure(true, "snooze"))

    // the store ends the job cancelled (its settle sees the cancel request) and says so (`Settled`):
    // told `Failed` with willRetry and a runAt that never came before
    it.effect("a cancel not heard yet when the attempt fails (attempts left): Cancelled, as the store ends it", () =>
      cancelMeetsFailure(false, "fail"))

    // the same: a snooze the store ends cancelled was told Snoozed
    it.effect("a cancel not heard yet when the attempt snoozes: Cancelled, as the store ends it", () =>
      cancelMeetsFailure(false, "snooze"))

    // the same at a stop: the running job is interrupted and given back (a release), which the store
    // ends cancelled: told GivenBack before, a job that would run again
    it.effect("a cancel not heard yet when the consumer stops and gives the job back: Cancelled, as the store ends it", () =>
      provide(
        Effect.gen(function*() {
          const events = recorder()
          const scope = yield* Scope.make()
          yield* Scope.provide(
            JobQueue.consume({ ...options, onEvent: events.onEvent, handlers: [Task.handle(Echo, () => Effect.never)] }),
            scope
          )
          const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { maxAttempts: 3 })
          yield* until(() => events.of(job.id).length === 1)
          assert.strictEqual(yield* JobQueue.cancel(job.id), "requested")
          yield* tick(1000)
          const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
          yield* until(() => closing.pollUnsafe() !== undefined)
          yield* Fiber.join(closing)
          const info = yield* JobQueue.status(job.id)
          assert.deepStrictEqual([info.state, info.attempts], ["cancelled", 0])
          assert.deepStrictEqual(events.tags(job.id), ["Started:1", "Cancelled:1"])
        }),
        deaf
      ))

    it.effect("a handler that interrupts itself loses that event only: the later events still come", () =>
      provide(Effect.gen(function*() {
        const seen: Array<string> = []
        let calls = 0
        yield* JobQueue.consume({
          ...options,
          onEvent: (event) => calls++ === 0 ? Effect.interrupt : Effect.sync(() => void seen.push(event._tag)),
          handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))]
        })
        for (let n = 0; n < 3; n++) assert.strictEqual(yield* (yield* JobQueue.enqueue(Echo, { n })).await, n)
        yield* until(() => calls === 6)
        assert.deepStrictEqual(seen, ["Succeeded", "Started", "Succeeded", "Started", "Succeeded"])
      })))

    it.effect("a handler that is not an Effect's (returns undefined, a Promise): the jobs run, one warning, the consumer stops", () =>
      provide(Effect.gen(function*() {
        const { logged, collector } = warnings()
        let calls = 0
        const scope = yield* Scope.make()
        yield* Scope.provide(
          JobQueue.consume({
            ...options,
            onEvent: ((_: JobQueue.JobEvent) => calls++ % 2 === 0 ? undefined : Promise.resolve()) as never,
            handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))]
          }),
          scope
        ).pipe(Effect.provide(Logger.layer([collector])))
        for (let n = 0; n < 3; n++) assert.strictEqual(yield* (yield* JobQueue.enqueue(Echo, { n })).await, n)
        yield* until(() => calls === 6)
        const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
        yield* tick(100)
        yield* Fiber.join(closing)
        assert.strictEqual(logged.filter((m) => m.includes("onEvent")).length, 1, logged.join("\n"))
      })))

    it.effect("a handler that enqueues a job for each death and cancels another job: no job lost, duplicated or blocked; each event once", () =>
      provide(Effect.gen(function*() {
        const events = recorder()
        const victim = yield* JobQueue.enqueue(Echo, { n: -1 }, { delay: "1 hour" })
        const followUps: Array<string> = []
        yield* JobQueue.consume({
          ...options,
          onEvent: (event) =>
            Effect.andThen(events.onEvent(event), () => {
              if (event._tag === "Dead") {
                return Effect.flatMap(
                  JobQueue.enqueue(Echo, { n: 1000 + (event.attempt) }, { queue: "followups" }),
                  (job) => Effect.andThen(Effect.sync(() => void followUps.push(job.id)), JobQueue.cancel(victim.id))
                )
              }
              return Effect.void
            }),
          handlers: [Task.handle(Echo, ({ n }) => n % 2 === 0 ? Effect.fail(new Boom({ n })) : Effect.succeed(n))]
        })
        const jobs = yield* Effect.forEach([0, 1, 2, 3, 4, 5], (n) => JobQueue.enqueue(Echo, { n }, { maxAttempts: 1 }))
        yield* until(() => jobs.every((job) => events.of(job.id).length >= 2) && followUps.length === 3)
        for (const [n, job] of jobs.entries()) {
          assert.deepStrictEqual(events.tags(job.id), n % 2 === 0 ? ["Started:1", "Failed:1", "Dead:1"] : ["Started:1", "Succeeded:1"])
        }
        assert.strictEqual((yield* JobQueue.status(victim.id)).state, "cancelled")
        assert.deepStrictEqual(events.tags(victim.id), [], "a waiting job's cancel is not this consumer's event")
        for (const id of followUps) assert.deepStrictEqual((yield* JobQueue.status(id)).state, "queued")
      })))

    it.effect("a cancel of a dead consumer's job, then its reap: Reaped 'cancelled', no runAt, never Started", () =>
      provide(Effect.gen(function*() {
        const events = recorder()
        const store = yield* Store
        const job = yield* JobQueue.enqueue(Echo, { n: 5 }, { maxAttempts: 3 })
        const dead = yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 1, lease: 1000 })
        assert.strictEqual(dead.claims.length, 1)
        assert.strictEqual(yield* JobQueue.cancel(job.id), "requested")
        yield* JobQueue.consume({ ...options, onEvent: events.onEvent, handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))] })
        yield* until(() => events.of(job.id).length > 0)
        yield* tick(5000)
        assert.deepStrictEqual(events.tags(job.id), ["Reaped:1"])
        assert.deepInclude(events.of(job.id)[0], { outcome: "cancelled", runAt: undefined })
        assert.strictEqual((yield* JobQueue.status(job.id)).state, "cancelled")
      })))

    it.effect("a lease lost under a running job, which this consumer's own reaper then takes back: LeaseLost, Reaped, Started again, each once, in order", () => {
      // set: the next beat says the jobs it renews are lost (as if reaped elsewhere); their leases end in the store
      let lose = false
      return provide(
        Effect.gen(function*() {
          const events = recorder()
          let runs = 0
          yield* JobQueue.consume({
            ...options,
            onEvent: events.onEvent,
            handlers: [Task.handle(Echo, ({ n }) => runs++ === 0 ? Effect.as(Effect.never, n) : Effect.succeed(n))]
          })
          const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { maxAttempts: 3 })
          yield* until(() => events.of(job.id).length === 1)
          lose = true
          yield* until(() => events.of(job.id).some((e) => e._tag === "Succeeded"))
          yield* tick(5000)
          assert.deepStrictEqual(events.tags(job.id), ["Started:1", "LeaseLost:1", "Reaped:1", "Started:2", "Succeeded:2"])
          assert.strictEqual(runs, 2)
        }),
        (store) => ({
          heartbeat: (tokens: ReadonlyArray<string>, lease: number) =>
            Effect.map(store.heartbeat(tokens, lease), (beat) => {
              if (!lose) return beat
              lose = false
              return { ...beat, lost: tokens }
            })
        })
      )
    })

    it.effect("a result its task cannot encode: Failed (no retry) and Dead with the stored error (TaskCodecError), as its awaiter gets", () =>
      provide(Effect.gen(function*() {
        const events = recorder()
        yield* JobQueue.consume({
          ...options,
          onEvent: events.onEvent,
          handlers: [Task.handle(Echo, () => Effect.succeed("not a number" as never))]
        })
        const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { maxAttempts: 3 })
        const awaited = yield* Effect.flip(job.await)
        yield* until(() => events.of(job.id).length === 3)
        assert.deepStrictEqual(events.tags(job.id), ["Started:1", "Failed:1", "Dead:1"])
        const dead = events.of(job.id)[2]!
        if (dead._tag !== "Dead") return assert.fail(dead._tag)
        assert.deepStrictEqual(Cause.squash(dead.error), awaited)
        const failed = events.of(job.id)[1]!
        assert.deepStrictEqual(failed._tag === "Failed" && [Cause.squash(failed.error), failed.willRetry], [awaited, false])
      })))

    it.effect("a payload its task cannot decode: Started, Failed (no retry) with TaskCodecError, Dead", () =>
      provide(Effect.gen(function*() {
        const events = recorder()
        const store = yield* Store
        yield* JobQueue.consume({ ...options, onEvent: events.onEvent, handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))] })
        const job = yield* store.enqueue(newJob("default", { task: "Echo", payload: JSON.stringify({ n: "x" }), maxAttempts: 3 }))
        yield* until(() => events.of(job.id).length === 3)
        assert.deepStrictEqual(events.tags(job.id), ["Started:1", "Failed:1", "Dead:1"])
        const failed = events.of(job.id)[1]!
        if (failed._tag !== "Failed") return assert.fail(failed._tag)
        assert.isFalse(failed.willRetry)
        assert.strictEqual((Cause.squash(failed.error) as { _tag?: string })._tag, "TaskCodecError")
      })))

    it.effect("a retry policy that gives up before maxAttempts: its last Failed says willRetry false, no runAt, then Dead", () =>
      provide(Effect.gen(function*() {
        const events = recorder()
        yield* JobQueue.consume({
          ...options,
          retry: Schedule.max([Schedule.spaced("2 seconds"), Schedule.recurs(1)]),
          onEvent: events.onEvent,
          handlers: [Task.handle(Echo, ({ n }) => Effect.fail(new Boom({ n })))]
        })
        const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { maxAttempts: 10 })
        yield* until(() => events.of(job.id).some((e) => e._tag === "Dead"))
        assert.deepStrictEqual(events.tags(job.id), ["Started:1", "Failed:1", "Started:2", "Failed:2", "Dead:2"])
        const [, first, , last] = events.of(job.id)
        if (first?._tag !== "Failed" || last?._tag !== "Failed") return assert.fail("kinds")
        assert.deepStrictEqual([first.willRetry, first.runAt!.getTime() - events.at.get(first)!], [true, 2000])
        assert.deepStrictEqual([last.willRetry, last.runAt], [false, undefined])
        assert.strictEqual((yield* JobQueue.status(job.id)).state, "dead")
      })))

    it.effect("an attempt that times out with attempts left: Failed (AttemptTimeout, willRetry, duration the timeout), then Started again", () =>
      provide(Effect.gen(function*() {
        const events = recorder()
        let runs = 0
        yield* JobQueue.consume({
          ...options,
          onEvent: events.onEvent,
          handlers: [Task.handle(Echo, ({ n }) => runs++ === 0 ? Effect.never : Effect.succeed(n))]
        })
        const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { maxAttempts: 2, timeout: "1500 millis" })
        yield* until(() => events.of(job.id).length === 4)
        assert.deepStrictEqual(events.tags(job.id), ["Started:1", "Failed:1", "Started:2", "Succeeded:2"])
        const failed = events.of(job.id)[1]!
        if (failed._tag !== "Failed") return assert.fail(failed._tag)
        assert.instanceOf(Cause.squash(failed.error), DurableError.AttemptTimeout)
        assert.deepStrictEqual([failed.willRetry, failed.duration], [true, 1500])
      })))

    it.effect("a drain of many running jobs: each Started gets exactly one end (GivenBack), all told before the stop ends; none left open", () =>
      provide(Effect.gen(function*() {
        const events = recorder()
        const scope = yield* Scope.make()
        yield* Scope.provide(
          JobQueue.consume({
            ...options,
            concurrency: 20,
            shutdownTimeout: "1 second",
            onEvent: events.onEvent,
            handlers: [Task.handle(Echo, ({ n }) => n % 2 === 0 ? Effect.never : Effect.as(Effect.sleep("2 seconds"), n))]
          }),
          scope
        )
        const jobs = yield* JobQueue.enqueueAll(Echo, Array.from({ length: 40 }, (_, n) => ({ payload: { n } })))
        yield* until(() => events.all.filter((e) => e._tag === "Started").length === 20)
        const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
        yield* tick(3000)
        yield* Fiber.join(closing)
        const told = events.all.length
        for (const job of jobs) {
          const tags = events.tags(job.id)
          const state = (yield* JobQueue.status(job.id)).state
          if (tags.length === 0) {
            assert.strictEqual(state, "queued")
            continue
          }
          assert.strictEqual(tags.length, 2, `${job.id}: ${tags}`)
          assert.strictEqual(tags[0], "Started:1")
          assert.include(["GivenBack:1", "Succeeded:1"], tags[1])
          assert.strictEqual(state, tags[1] === "GivenBack:1" ? "queued" : "succeeded")
        }
        yield* tick(5000)
        assert.strictEqual(events.all.length, told, "nothing told after the stop")
      })))

    it.effect("a handler slower than the jobs, overflowing again and again: every event told or counted, once (told + Σ Dropped = made), no two Dropped in a row, events still told once behind", () =>
      provide(Effect.gen(function*() {
        const seen: Array<JobQueue.JobEvent> = []
        yield* JobQueue.consume({
          ...options,
          concurrency: 50,
          onEvent: (event) => Effect.andThen(Effect.sleep(10), Effect.sync(() => void seen.push(event))),
          handlers: [Task.handle(Echo, ({ n }) => Effect.as(Effect.sleep(5), n))]
        })
        const jobs = yield* JobQueue.enqueueAll(Echo, Array.from({ length: 2000 }, (_, n) => ({ payload: { n } })))
        const accounted = () => seen.reduce((sum, e) => sum + (e._tag === "Dropped" ? e.count : 1), 0)
        yield* until(() => accounted() === 2 * jobs.length, 120)
        yield* tick(1000)
        assert.strictEqual(accounted(), 2 * jobs.length)
        const drops = seen.filter((e) => e._tag === "Dropped")
        assert.isAbove(drops.length, 1, "it overflowed more than once")
        seen.forEach((e, i) => assert.isFalse(e._tag === "Dropped" && seen[i + 1]?._tag === "Dropped", `two Dropped at ${i}`))
        // once behind, the handler still gets events, not counts alone: a count and the event after it share the slots freed
        const behind = seen.slice(seen.indexOf(drops[0]!))
        assert.isAtLeast(behind.filter((e) => e._tag !== "Dropped").length, behind.length / 3, "events, not counts only")
        // each job's own events in order, whatever was dropped between them
        const byJob = new Map<string, Array<string>>()
        for (const e of seen) if (e._tag !== "Dropped") byJob.set(e.id, [...byJob.get(e.id) ?? [], e._tag])
        for (const tags of byJob.values()) assert.include([["Started", "Succeeded"], ["Started"], ["Succeeded"]].map(String), String(tags))
      })))

    it.effect("a claim that returns after its consumer stopped (the store slow past the stop's grace): its jobs given back, unrun, never told Started; the GivenBack made after the stop counted in a warning", () => {
      let slow = false
      const { logged, collector } = warnings()
      return provide(
        Effect.gen(function*() {
          const events = recorder()
          const scope = yield* Scope.make()
          let runs = 0
          yield* Scope.provide(
            JobQueue.consume({
              ...options,
              onEvent: events.onEvent,
              handlers: [Task.handle(Echo, ({ n }) => Effect.sync(() => (runs++, n)))]
            }),
            scope
          )
          yield* tick(100)
          slow = true
          const job = yield* JobQueue.enqueue(Echo, { n: 1 })
          yield* tick(100)
          const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
          yield* tick(10_000)
          yield* Fiber.join(closing)
          const info = yield* JobQueue.status(job.id)
          assert.deepStrictEqual([info.state, info.attempts, runs], ["queued", 0, 0])
          assert.notInclude(events.tags(job.id), "Started:1")
          yield* until(() => logged.some((line) => line.includes("not told 1 event: made after its stop")))
        }).pipe(Effect.provide(Logger.layer([collector]))),
        (store) => ({
          claim: (request: Parameters<Store["Service"]["claim"]>[0]) =>
            Effect.suspend(() => slow ? Effect.andThen(Effect.sleep(3000), store.claim(request)) : store.claim(request))
        })
      )
    })

    // a claim its pool refuses to start (resized down while the claim was in flight) is given back;
    // a cancel asked for meanwhile makes the store end it cancelled: told GivenBack, a job that
    // would run again, before the give-back read the store's answer
    it.effect("a claim its pool refuses (resized down meanwhile) whose cancel came first: Cancelled, as the store ends it, never Started", () => {
      const gate = Effect.runSync(Deferred.make<void>())
      let claimed: ReadonlyArray<{ readonly job: { readonly id: string } }> = []
      return provide(
        Effect.gen(function*() {
          const events = recorder()
          // the first job holds the one slot left
          const release = yield* Deferred.make<void>()
          yield* JobQueue.enqueueAll(Echo, [{ payload: { n: 1 } }, { payload: { n: 2 } }])
          const consumer = yield* JobQueue.consume({
            ...options,
            onEvent: events.onEvent,
            handlers: [Task.handle(Echo, ({ n }) => Effect.as(Deferred.await(release), n))]
          })
          yield* until(() => claimed.length === 2)
          const [first, second] = claimed.map((claim) => claim.job.id)
          assert.strictEqual(yield* JobQueue.cancel(second!), "requested")
          yield* consumer.resize(1)
          yield* Deferred.succeed(gate, void 0)
          yield* until(() => events.of(second!).length === 1)
          yield* Deferred.succeed(release, void 0)
          yield* until(() => events.of(first!).length === 2)
          yield* tick(1000)
          assert.deepStrictEqual(events.tags(first!), ["Started:1", "Succeeded:1"])
          assert.deepStrictEqual(events.tags(second!), ["Cancelled:1"])
          assert.strictEqual((yield* JobQueue.status(second!)).state, "cancelled")
        }),
        (store) => ({
          claim: (request: Parameters<Store["Service"]["claim"]>[0]) =>
            Effect.tap(store.claim(request), (result) =>
              claimed.length > 0 || result.claims.length === 0 ? Effect.void : Effect.andThen(
                Effect.sync(() => void (claimed = result.claims)),
                Deferred.await(gate)
              ))
        })
      )
    })

    it.effect("two consumers with onEvent and a dead consumer's jobs: each job Reaped once across both, then run once, each event once", () =>
      provide(Effect.gen(function*() {
        const store = yield* Store
        const jobs = yield* JobQueue.enqueueAll(Echo, Array.from({ length: 12 }, (_, n) => ({ payload: { n }, options: { maxAttempts: 3 } })))
        const dead = yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 12, lease: 1000 })
        assert.strictEqual(dead.claims.length, 12)
        const a = recorder()
        const b = recorder()
        for (const events of [a, b]) {
          yield* JobQueue.consume({ ...options, onEvent: events.onEvent, handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))] })
        }
        const tags = (id: string) => [...a.tags(id), ...b.tags(id)].sort()
        yield* until(() => jobs.every((job) => tags(job.id).includes("Succeeded:2")))
        yield* tick(5000)
        for (const job of jobs) assert.deepStrictEqual(tags(job.id), ["Reaped:1", "Started:2", "Succeeded:2"], job.id)
      })))

    it.effect("a handler that cancels its own job: Started, Cancelled, nothing else", () =>
      provide(Effect.gen(function*() {
        const events = recorder()
        yield* JobQueue.consume({
          ...options,
          onEvent: events.onEvent,
          handlers: [Task.handle(Echo, () =>
            Effect.flatMap(JobQueue.CurrentJob, (job) =>
              job._tag === "Some" ? Effect.andThen(Effect.orDie(JobQueue.cancel(job.value.id)), Effect.never) : Effect.die("no CurrentJob")))]
        })
        const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { maxAttempts: 3 })
        yield* until(() => events.of(job.id).length === 2)
        yield* tick(5000)
        assert.deepStrictEqual(events.tags(job.id), ["Started:1", "Cancelled:1"])
        assert.strictEqual((yield* JobQueue.status(job.id)).state, "cancelled")
      })))

    it.effect("a repeat's jobs: each tick's job Started and Succeeded once", () =>
      provide(Effect.gen(function*() {
        const events = recorder()
        yield* JobQueue.consume({ ...options, onEvent: events.onEvent, handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))] })
        yield* JobQueue.repeat("every-2s", Echo, { n: 1 }, { cron: "*/2 * * * * *" })
        yield* tick(10_000)
        const ids = [...new Set(events.all.flatMap((e) => e._tag === "Dropped" ? [] : [e.id]))]
        assert.isAtLeast(ids.length, 4)
        for (const id of ids) {
          const tags = events.tags(id)
          // the last tick's may be running still
          assert.include([["Started:1", "Succeeded:1"], ["Started:1"]].map(String), String(tags), id)
        }
      })))

    it.effect("a handler that shuts its own consumer down (on a job's success): its call returns, the stop ends without waiting out the events' grace, awaitTermination with it", () =>
      provide(Effect.gen(function*() {
        const events = recorder()
        const holder = yield* Deferred.make<JobQueue.Consumer>()
        let shutdown: Exit.Exit<void> | undefined
        const consumer = yield* JobQueue.consume({
          ...options,
          onEvent: (event) =>
            Effect.andThen(
              events.onEvent(event),
              event._tag !== "Succeeded" ? Effect.void : Effect.flatMap(Deferred.await(holder), (consumer) =>
                Effect.onExit(consumer.shutdown, (exit) => Effect.sync(() => void (shutdown = exit))))
            ),
          handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))]
        })
        yield* Deferred.succeed(holder, consumer)
        const job = yield* JobQueue.enqueue(Echo, { n: 1 })
        assert.strictEqual(yield* job.await, 1)
        const terminated = yield* Effect.forkChild(consumer.awaitTermination)
        // within the events' 2 s grace: the stop does not wait for the handler that asked for it
        yield* until(() => terminated.pollUnsafe() !== undefined, 1)
        assert.deepStrictEqual(events.tags(job.id), ["Started:1", "Succeeded:1"])
        // returned at once, not interrupted with the handler past the grace
        assert.isTrue(shutdown !== undefined && Exit.isSuccess(shutdown), "the handler's shutdown returned")
        // stopped: a job enqueued now waits
        const later = yield* JobQueue.enqueue(Echo, { n: 2 })
        yield* tick(3000)
        assert.strictEqual((yield* JobQueue.status(later.id)).state, "queued")
      })))

    // the stop waits for its running jobs (its drain), and the job waited for the stop: it waited out
    // shutdownTimeout, then was interrupted and given back though it had finished its work
    it.effect("a job whose handler shuts its own consumer down: its call returns, the job Succeeded (not given back past shutdownTimeout), the consumer terminates", () =>
      provide(Effect.gen(function*() {
        const events = recorder()
        const holder = yield* Deferred.make<JobQueue.Consumer>()
        let returned = false
        const consumer = yield* JobQueue.consume({
          ...options,
          shutdownTimeout: "1 minute",
          onEvent: events.onEvent,
          handlers: [Task.handle(Echo, ({ n }) =>
            Effect.as(
              Effect.andThen(Effect.flatMap(Deferred.await(holder), (consumer) => consumer.shutdown), Effect.sync(() => void (returned = true))),
              n
            ))]
        })
        yield* Deferred.succeed(holder, consumer)
        const job = yield* JobQueue.enqueue(Echo, { n: 1 })
        const terminated = yield* Effect.forkChild(consumer.awaitTermination)
        // well within shutdownTimeout: the stop waits for nothing but its own settle
        yield* until(() => terminated.pollUnsafe() !== undefined, 10)
        assert.isTrue(returned, "the handler's shutdown returned")
        assert.deepStrictEqual(events.tags(job.id), ["Started:1", "Succeeded:1"])
        assert.strictEqual((yield* JobQueue.status(job.id)).state, "succeeded")
        // stopped: a job enqueued now waits
        const later = yield* JobQueue.enqueue(Echo, { n: 2 })
        yield* tick(3000)
        assert.strictEqual((yield* JobQueue.status(later.id)).state, "queued")
      })))

    it.effect("a heartbeat the store answers too late (past the lease): LeaseLost once, then Reaped, Started again, Succeeded, each once, in order", () => {
      let slow = false
      return provide(
        Effect.gen(function*() {
          const events = recorder()
          let runs = 0
          yield* JobQueue.consume({
            ...options,
            onEvent: events.onEvent,
            handlers: [Task.handle(Echo, ({ n }) => runs++ === 0 ? Effect.as(Effect.never, n) : Effect.succeed(n))]
          })
          const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { maxAttempts: 3 })
          yield* until(() => events.of(job.id).length === 1)
          slow = true
          yield* until(() => events.of(job.id).length === 2)
          slow = false
          yield* until(() => events.of(job.id).some((e) => e._tag === "Succeeded"))
          yield* tick(5000)
          assert.deepStrictEqual(events.tags(job.id), ["Started:1", "LeaseLost:1", "Reaped:1", "Started:2", "Succeeded:2"])
        }).pipe(Effect.provide(Logger.layer([]))),
        (store) => ({
          heartbeat: (tokens: ReadonlyArray<string>, lease: number) =>
            Effect.suspend(() => slow ? Effect.andThen(Effect.sleep(options.lease * 2), store.heartbeat(tokens, lease)) : store.heartbeat(tokens, lease))
        })
      )
    })

    it.effect("a debounced job whose waiting holder is replaced again and again: one job, Started and Succeeded once, with the last payload", () =>
      provide(Effect.gen(function*() {
        const events = recorder()
        const ran: Array<number> = []
        yield* JobQueue.consume({
          ...options,
          onEvent: events.onEvent,
          handlers: [Task.handle(Echo, ({ n }) => Effect.sync(() => (ran.push(n), n)))]
        })
        const ids = new Set<string>()
        for (let n = 0; n < 5; n++) {
          const job = yield* JobQueue.enqueue(Echo, { n }, { dedupKey: "k", dedupReplace: "debounce", delay: "2 seconds" })
          ids.add(job.id)
          yield* tick(1000)
        }
        assert.strictEqual(ids.size, 1)
        const [id] = ids
        yield* until(() => events.of(id!).length === 2)
        yield* tick(5000)
        assert.deepStrictEqual(events.tags(id!), ["Started:1", "Succeeded:1"])
        assert.deepStrictEqual(ran, [4])
      })))

    it.effect("a stop whose settles the store never answers (cut at the stop's grace): each started job told LeaseLost, none left without an end", () => {
      let stuck = false
      return provide(
        Effect.gen(function*() {
          const events = recorder()
          const scope = yield* Scope.make()
          yield* Scope.provide(
            JobQueue.consume({
              ...options,
              concurrency: 3,
              shutdownTimeout: "1 second",
              onEvent: events.onEvent,
              handlers: [Task.handle(Echo, () => Effect.never)]
            }),
            scope
          )
          const jobs = yield* JobQueue.enqueueAll(Echo, Array.from({ length: 3 }, (_, n) => ({ payload: { n } })))
          yield* until(() => events.all.length === 3)
          stuck = true
          const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
          yield* tick(6000)
          yield* Fiber.join(closing)
          for (const job of jobs) assert.deepStrictEqual(events.tags(job.id), ["Started:1", "LeaseLost:1"], job.id)
        }).pipe(Effect.provide(Logger.layer([]))),
        (store) => ({
          settle: (token: string, settlement: Settlement) => Effect.suspend(() => stuck ? Effect.never : store.settle(token, settlement))
        })
      )
    })

    it.effect("onEvent that is null, a number, an object or an Effect: InvalidPoolConfig naming onEvent, nothing started", () =>
      provide(Effect.gen(function*() {
        for (const bad of [null, 42, {}, Effect.void, "log"]) {
          const error = yield* Effect.flip(JobQueue.consume({ ...options, onEvent: bad as never, handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))] }))
          assert.instanceOf(error, InvalidPoolConfig, String(bad))
          assert.strictEqual((error as InvalidPoolConfig).field, "onEvent")
        }
        const job = yield* JobQueue.enqueue(Echo, { n: 1 })
        yield* tick(3000)
        assert.strictEqual((yield* JobQueue.status(job.id)).state, "queued", "no consumer was left running")
      })))

    it.effect("a dead consumer's job Reaped 'retried': its runAt is when the store will show it again, and it starts then, not before", () =>
      provide(Effect.gen(function*() {
        const events = recorder()
        const store = yield* Store
        const job = yield* JobQueue.enqueue(Echo, { n: 5 }, { maxAttempts: 3, retry: { fixed: "20 seconds" } })
        const dead = yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 1, lease: 1000 })
        assert.strictEqual(dead.claims.length, 1)
        yield* JobQueue.consume({ ...options, onEvent: events.onEvent, handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))] })
        yield* until(() => events.of(job.id).length === 1)
        const reaped = events.of(job.id)[0]!
        if (reaped._tag !== "Reaped" || reaped.runAt === undefined) return assert.fail(events.tags(job.id).join())
        assert.strictEqual(reaped.outcome, "retried")
        assert.strictEqual(reaped.runAt.getTime(), (yield* JobQueue.status(job.id)).visibleAt.getTime())
        yield* until(() => events.of(job.id).length === 3)
        assert.deepStrictEqual(events.tags(job.id), ["Reaped:1", "Started:2", "Succeeded:2"])
        const started = events.at.get(events.of(job.id)[1]!)!
        assert.isAtLeast(started, reaped.runAt.getTime())
        assert.isAtMost(started, reaped.runAt.getTime() + 1000)
      })))
  })
}

// --- a consumer whose jobs run on a ThreadPool's threads (`consume({ threadPool, tasks })`)

const threadWorker = new URL("./fixtures/durable-thread-worker.ts", import.meta.url)

describe("lifecycle events at a stop (the buffer itself)", () => {
  // the buffer is ended as the grace starts: an event made then (a late claim's give-back) found no
  // room for the count before it, which was reset all the same, and the events it counted were lost
  it.effect("events made during the stop's grace, after some were dropped: every event the handler did not finish is counted", () => {
    const { logged, collector } = warnings()
    return Effect.gen(function*() {
      const context = yield* Effect.context<never>()
      const go = yield* Deferred.make<void>()
      let finished = 0
      // the first waits for `go`, ten more go through, then it hangs: the buffer has room, and a count
      const handler = () =>
        finished === 0 ? Effect.andThen(Deferred.await(go), Effect.sync(() => void finished++))
        : finished < 11 ? Effect.sync(() => void finished++)
        : Effect.never
      const events = Events.make(handler, () => 0, (effect) => Effect.runForkWith(context)(effect))!
      let made = 0
      const reap = () => events.reaped({ id: `${++made}`, queue: "q", task: "T", attempt: 1, outcome: "dead", runAt: undefined })
      reap()
      yield* Effect.yieldNow
      for (let i = 0; i < Events.EVENT_BUFFER + 5; i++) reap()
      yield* Deferred.succeed(go, void 0)
      for (let i = 0; i < 20 && finished < 11; i++) yield* Effect.yieldNow
      assert.strictEqual(finished, 11)
      const closing = yield* Effect.forkChild(events.close(2000))
      yield* Effect.yieldNow
      for (let i = 0; i < 3; i++) reap()
      yield* TestClock.adjust(2000)
      yield* Fiber.join(closing)
      const counts = logged.flatMap((line) => /not told (\d+) event/.exec(line)?.slice(1).map(Number) ?? [])
      assert.deepStrictEqual(counts, [made - finished], logged.join("\n"))
    }).pipe(Effect.provide(Logger.layer([collector])))
  })
})

describe("lifecycle events of a consumer on a ThreadPool", () => {
  it.live("a success, a typed failure, a crashed thread retried then dead, a snooze: the same events as on fibers, each once, in order", () =>
    Effect.gen(function*() {
      const counters = new SharedArrayBuffer(16 * 4)
      const threads = yield* ThreadPool.make({ worker: threadWorker, threads: 2, workerData: { counters } })
      const events = recorder()
      yield* JobQueue.consume({
        threadPool: threads,
        tasks: [Stamp, Crash, Snoozy],
        retry: Schedule.spaced("10 millis"),
        poll: 10,
        onEvent: events.onEvent
      })
      const at = new Date("2026-01-02T03:04:05.000Z")
      const ok = yield* JobQueue.enqueue(Stamp, { label: "a", at })
      const refused = yield* JobQueue.enqueue(Stamp, { label: "refuse", at }, { maxAttempts: 1 })
      const crash = yield* JobQueue.enqueue(Crash, 1, { maxAttempts: 2 })
      const snoozy = yield* JobQueue.enqueue(Snoozy, { millis: 20, mark: 3, hold: false })
      const ended = (id: string, tag: string) => events.of(id).some((e) => e._tag === tag)
      yield* waitFor(
        Effect.sync(() => ended(ok.id, "Succeeded") && ended(refused.id, "Dead") && ended(crash.id, "Dead") && ended(snoozy.id, "Succeeded")),
        "every job's last event",
        { until: (done) => done }
      )
      assert.deepStrictEqual(events.tags(ok.id), ["Started:1", "Succeeded:1"])
      assert.deepStrictEqual(events.tags(refused.id), ["Started:1", "Failed:1", "Dead:1"])
      const failed = events.of(refused.id)[1]!
      assert.instanceOf(failed._tag === "Failed" ? Cause.squash(failed.error) : undefined, Refused)
      assert.deepStrictEqual(events.tags(crash.id), ["Started:1", "Failed:1", "Started:2", "Failed:2", "Dead:2"])
      const crashed = events.of(crash.id)[1]!
      assert.isTrue(crashed._tag === "Failed" && crashed.willRetry && Cause.hasDies(crashed.error))
      assert.deepStrictEqual(events.tags(snoozy.id), ["Started:1", "Snoozed:1", "Started:1", "Succeeded:1"])
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory())), { timeout: 60_000 })

  it.live("the thread pool shut down under its consumer (past its shutdownTimeout): the running job GivenBack once, the consumer terminates", () =>
    Effect.gen(function*() {
      const counters = new SharedArrayBuffer(16 * 4)
      const threads = yield* ThreadPool.make({ worker: threadWorker, threads: 2, shutdownTimeout: "100 millis", workerData: { counters } })
      const events = recorder()
      const consumer = yield* JobQueue.consume({ threadPool: threads, tasks: [Nap], poll: 10, onEvent: events.onEvent })
      const job = yield* JobQueue.enqueue(Nap, { millis: 60_000, mark: 4 })
      yield* waitFor(Effect.sync(() => events.of(job.id).length === 1), "the job started")
      yield* threads.shutdown
      yield* consumer.awaitTermination
      const info = yield* JobQueue.status(job.id)
      assert.deepStrictEqual([info.state, info.attempts], ["queued", 0])
      assert.deepStrictEqual(events.tags(job.id), ["Started:1", "GivenBack:1"])
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory())), { timeout: 60_000 })
})
