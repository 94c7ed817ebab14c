/**
 * A consumer's lifecycle events (`ConsumeOptions.onEvent`), written once and run on every store
 * under TestClock (see conformance.ts): each kind of event where its outcome is decided, their
 * order, and a handler that is slow, fails or dies costing the consumer nothing.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Clock, Deferred, Effect, Exit, Fiber, Layer, Logger, Scope } from "effect"
import * as DurableError from "../../src/DurableError.ts"
import { JobStore as Store, type Settlement } from "../../src/internal/store/model.ts"
import * as JobQueue from "../../src/JobQueue.ts"
import type * as JobStore from "../../src/JobStore.ts"
import { InvalidPoolConfig } from "../../src/PoolError.ts"
import * as Task from "../../src/Task.ts"
import { warnings } from "../helpers.ts"
import { Boom, Echo, options, tick, tracked } from "./conformance.ts"

/** Collects the events told to `onEvent`, as `tag:attempt` strings and whole. */
export const recorder = () => {
  const all: Array<JobQueue.JobEvent> = []
  /** When each event reached the handler (the consumer's clock). */
  const at = new Map<JobQueue.JobEvent, number>()
  return {
    all,
    at,
    onEvent: (event: JobQueue.JobEvent) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        all.push(event)
        at.set(event, now)
      }),
    of: (id: string) => all.filter((e) => e._tag !== "Dropped" && e.id === id) as Array<JobQueue.JobEvent & JobQueue.JobEventRef>,
    tags: (id: string) =>
      all.filter((e) => e._tag !== "Dropped" && e.id === id).map((e) => `${e._tag}:${"attempt" in e ? e.attempt : ""}`)
  }
}

/** The counts of the warnings that a stopped consumer's onEvent handler was not told events. */
const untold = (logged: ReadonlyArray<string>) =>
  logged.flatMap((line) => {
    const match = /onEvent handler was not told (\d+) event/.exec(line)
    return match === null ? [] : [Number(match[1])]
  })

/** Ticks the clock until `done`, 100 ms at a time, at most `seconds`. */
export const until = (done: () => boolean, seconds = 60) =>
  Effect.gen(function*() {
    for (let i = 0; i < seconds * 10 && !done(); i++) yield* tick(100)
    assert.isTrue(done(), "the awaited events came")
  })

/**
 * `layer`'s store, whose heartbeats say every job lost once `lose` is set (another consumer reaped
 * them), whose settles are refused by the fence once `fence` is set (reaped between the last beat
 * and the settle), and fail once `fail` is set (the store unreachable).
 */
const losing = (layer: Layer.Layer<JobStore.JobStore, any>) => {
  const flag = { lose: false, fence: false, fail: false }
  const wrapped = Layer.effect(
    Store,
    Effect.map(Store, (store) => ({
      ...store,
      heartbeat: (tokens: ReadonlyArray<string>, lease: number) =>
        Effect.map(store.heartbeat(tokens, lease), (beat) => flag.lose ? { ...beat, lost: tokens } : beat),
      settle: (token: string, settlement: Settlement) =>
        flag.fail
          ? Effect.fail(new DurableError.StoreError({ operation: "settle", reason: "unreachable" }))
          : flag.fence
          ? Effect.succeed(false)
          : store.settle(token, settlement)
    }))
  ).pipe(Layer.provideMerge(layer))
  return { flag, layer: wrapped }
}

/**
 * `layer`'s store, whose next claim that takes jobs once `late` is set answers 1.5 s after the store
 * took them (a server slow to answer, this process paused: half a lease), and whose next beat once
 * `unrenewed` is set renews none of its tokens (their queue's node down). Its delay is the Effect
 * Clock's, outside the tracked store operations (`tick` lets it run out).
 */
const answeringLate = (layer: Layer.Layer<JobStore.JobStore, any>) => {
  const flag = { late: false, unrenewed: false }
  const wrapped = Layer.effect(
    Store,
    Effect.map(Store, (store) => ({
      ...store,
      claim: (request: Parameters<typeof store.claim>[0]) =>
        Effect.flatMap(store.claim(request), (claimed) => {
          if (!flag.late || claimed.claims.length === 0) return Effect.succeed(claimed)
          flag.late = false
          return Effect.as(Effect.sleep(1500), claimed)
        }),
      heartbeat: (tokens: ReadonlyArray<string>, lease: number) =>
        Effect.map(store.heartbeat(tokens, lease), (beat) => {
          if (!flag.unrenewed) return beat
          flag.unrenewed = false
          return { ...beat, unrenewed: { tokens, error: new DurableError.StoreError({ operation: "heartbeat", reason: "its node is down" }) } }
        })
    }))
  ).pipe(Layer.provideMerge(tracked(layer)))
  return { flag, layer: wrapped }
}

export const eventsConformance = (name: string, makeStore: () => Layer.Layer<JobStore.JobStore, any>) =>
  describe(`lifecycle events on ${name}`, () => {
    const provide = <A, E>(effect: Effect.Effect<A, E, JobStore.JobStore | Scope.Scope>) =>
      Effect.provide(Effect.scoped(effect), tracked(makeStore()))

    it.effect("Started, then Succeeded with the attempt's duration on the consumer's clock", () =>
      provide(Effect.gen(function*() {
        const events = recorder()
        yield* JobQueue.consume({
          ...options,
          onEvent: events.onEvent,
          handlers: [Task.handle(Echo, ({ n }) => Effect.as(Effect.sleep(700), n))]
        })
        const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "default" })
        yield* until(() => events.of(job.id).length === 2)
        assert.deepStrictEqual(events.tags(job.id), ["Started:1", "Succeeded:1"])
        const [started, succeeded] = events.of(job.id)
        assert.deepInclude(started, { id: job.id, queue: "default", task: "Echo", attempt: 1 })
        assert.strictEqual(succeeded?._tag === "Succeeded" && succeeded.duration, 700)
      })))

    it.effect("a failed attempt: Failed with willRetry and its runAt, then Started again; the last one Failed (no retry) and Dead, with the error", () =>
      provide(Effect.gen(function*() {
        const events = recorder()
        yield* JobQueue.consume({
          ...options,
          onEvent: events.onEvent,
          handlers: [Task.handle(Echo, ({ n }) => Effect.fail(new Boom({ n })))]
        })
        const job = yield* JobQueue.enqueue(Echo, { n: 7 }, { maxAttempts: 2 })
        yield* until(() => events.of(job.id).some((e) => e._tag === "Dead"))
        assert.deepStrictEqual(events.tags(job.id), ["Started:1", "Failed:1", "Started:2", "Failed:2", "Dead:2"])
        const [, first, , last, dead] = events.of(job.id)
        assert.isTrue(first?._tag === "Failed" && first.willRetry, "the first will retry")
        if (first?._tag !== "Failed" || last?._tag !== "Failed" || dead?._tag !== "Dead") return assert.fail("kinds")
        // the consumer's retry: exponential from 1 second, after the first attempt
        const started2 = events.of(job.id)[2]!
        assert.isDefined(first.runAt)
        assert.isFalse(last.willRetry)
        assert.isUndefined(last.runAt)
        assert.deepStrictEqual(Cause.squash(dead.error), new Boom({ n: 7 }))
        assert.deepStrictEqual(Cause.squash(first.error), new Boom({ n: 7 }))
        assert.strictEqual(started2._tag, "Started")
      })))

    it.effect("Failed's runAt is the retry's time: the job starts again then, not before", () =>
      provide(Effect.gen(function*() {
        const events = recorder()
        let failures = 1
        yield* JobQueue.consume({
          ...options,
          onEvent: events.onEvent,
          handlers: [Task.handle(Echo, ({ n }) => failures-- > 0 ? Effect.fail(new Boom({ n })) : Effect.succeed(n))]
        })
        const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { maxAttempts: 3, retry: { fixed: "5 seconds" } })
        yield* until(() => events.of(job.id).length === 2)
        const failed = events.of(job.id)[1]!
        if (failed._tag !== "Failed" || failed.runAt === undefined) return assert.fail(`not a retry: ${failed._tag}`)
        assert.strictEqual(failed.runAt.getTime() - events.at.get(failed)!, 5000, "runAt is 5 s on")
        yield* until(() => events.of(job.id).length === 4)
        assert.deepStrictEqual(events.tags(job.id), ["Started:1", "Failed:1", "Started:2", "Succeeded:2"])
        const started = events.at.get(events.of(job.id)[2]!)!
        assert.isAtLeast(started, failed.runAt.getTime(), "not started again before its runAt")
        assert.isAtMost(started, failed.runAt.getTime() + 1000, "started at its runAt (within a poll)")
      })))

    it.effect("an attempt that times out: Failed with AttemptTimeout (the durable job's, not its pool's JobTimeout)", () =>
      provide(Effect.gen(function*() {
        const events = recorder()
        yield* JobQueue.consume({
          ...options,
          onEvent: events.onEvent,
          handlers: [Task.handle(Echo, () => Effect.never)]
        })
        const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { maxAttempts: 1, timeout: "2 seconds" })
        yield* until(() => events.of(job.id).some((e) => e._tag === "Dead"))
        const failed = events.of(job.id)[1]!
        if (failed._tag !== "Failed") return assert.fail(failed._tag)
        assert.instanceOf(Cause.squash(failed.error), DurableError.AttemptTimeout)
        assert.strictEqual(failed.duration, 2000)
      })))

    it.effect("a cancel that stops a running job: Cancelled", () =>
      provide(Effect.gen(function*() {
        const events = recorder()
        yield* JobQueue.consume({ ...options, onEvent: events.onEvent, handlers: [Task.handle(Echo, () => Effect.never)] })
        const job = yield* JobQueue.enqueue(Echo, { n: 1 })
        yield* until(() => events.of(job.id).length === 1)
        yield* JobQueue.cancel(job.id)
        yield* until(() => events.of(job.id).length === 2)
        assert.deepStrictEqual(events.tags(job.id), ["Started:1", "Cancelled:1"])
      })))

    it.effect("a snooze: Snoozed with its runAt, then Started again (the attempt not counted)", () =>
      provide(Effect.gen(function*() {
        const events = recorder()
        let snoozes = 1
        yield* JobQueue.consume({
          ...options,
          onEvent: events.onEvent,
          handlers: [Task.handle(Echo, ({ n }) => snoozes-- > 0 ? JobQueue.snooze("3 seconds") : Effect.succeed(n))]
        })
        const job = yield* JobQueue.enqueue(Echo, { n: 1 })
        yield* until(() => events.of(job.id).length === 4)
        assert.deepStrictEqual(events.tags(job.id), ["Started:1", "Snoozed:1", "Started:1", "Succeeded:1"])
        const snoozed = events.of(job.id)[1]!
        assert.isTrue(snoozed._tag === "Snoozed" && snoozed.runAt instanceof Date)
      })))

    it.effect("a consumer that stops with a job running: GivenBack, told before its stop ends", () =>
      provide(Effect.gen(function*() {
        const events = recorder()
        const scope = yield* Scope.make()
        yield* Scope.provide(
          JobQueue.consume({ ...options, shutdownTimeout: "1 second", onEvent: events.onEvent, handlers: [Task.handle(Echo, () => Effect.never)] }),
          scope
        )
        const job = yield* JobQueue.enqueue(Echo, { n: 1 })
        yield* until(() => events.of(job.id).length === 1)
        const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
        yield* tick(2000)
        yield* Fiber.join(closing)
        assert.deepStrictEqual(events.tags(job.id), ["Started:1", "GivenBack:1"])
        assert.strictEqual((yield* JobQueue.status(job.id)).state, "queued")
      })))

    /**
     * A job started, then `trouble` set in its store, then its handler let end: LeaseLost, and
     * nothing else. Its handler ends only when told (`go`): a lost lease interrupts it before.
     */
    const leaseLost = (trouble: "lose" | "fence" | "fail") => {
      const { flag, layer } = losing(makeStore())
      return Effect.provide(
        Effect.scoped(Effect.gen(function*() {
          const events = recorder()
          const go = yield* Deferred.make<void>()
          yield* JobQueue.consume({ ...options, onEvent: events.onEvent, handlers: [Task.handle(Echo, ({ n }) => Effect.as(Deferred.await(go), n))] })
          const job = yield* JobQueue.enqueue(Echo, { n: 1 })
          yield* until(() => events.of(job.id).length === 1)
          flag[trouble] = true
          if (trouble !== "lose") yield* Deferred.succeed(go, undefined)
          yield* until(() => events.of(job.id).length === 2)
          assert.deepStrictEqual(events.tags(job.id), ["Started:1", "LeaseLost:1"])
        })).pipe(Effect.provide(Logger.layer([]))),
        tracked(layer)
      )
    }

    it.effect("a job whose lease is lost under it (another consumer took it back): LeaseLost, nothing written", () => leaseLost("lose"))

    it.effect("a settle the store's fence refuses (the job another consumer's by then): LeaseLost, not Succeeded", () => leaseLost("fence"))

    it.effect("a settle that fails for good (the store unreachable for a lease): LeaseLost, once, and nothing else", () => leaseLost("fail"))

    // a claim answered late is renewed before its jobs start; one the renewal finds cancelled or
    // cannot renew is given back unstarted. It was given back with no event: a handler counting
    // the jobs it was told of never heard of the cancel, nor of the claim
    for (const trouble of ["cancelled", "unrenewed"] as const) {
      it.effect(`a claim answered late whose renewal finds its job ${trouble}: ${trouble === "cancelled" ? "Cancelled, never started" : "GivenBack unstarted, then run"}`, () => {
        const { flag, layer } = answeringLate(makeStore())
        return Effect.provide(
          Effect.scoped(Effect.gen(function*() {
            const events = recorder()
            yield* JobQueue.consume({ ...options, onEvent: events.onEvent, handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))] })
            yield* tick(100)
            flag.late = true
            const job = yield* JobQueue.enqueue(Echo, { n: 1 })
            // claimed now, answered 1.5 s on: the cancel (or the node's outage) meanwhile
            yield* until(() => !flag.late, 5)
            if (trouble === "cancelled") yield* JobQueue.cancel(job.id)
            else flag.unrenewed = true
            yield* until(() => events.of(job.id).length === (trouble === "cancelled" ? 1 : 3), 10)
            if (trouble === "cancelled") {
              assert.deepStrictEqual(events.tags(job.id), ["Cancelled:1"])
              assert.strictEqual((yield* JobQueue.status(job.id)).state, "cancelled")
            } else {
              assert.deepStrictEqual(events.tags(job.id).map((tag) => tag.split(":")[0]), ["GivenBack", "Started", "Succeeded"])
              assert.strictEqual(yield* job.await, 1)
            }
          })).pipe(Effect.provide(Logger.layer([]))),
          layer
        )
      })
    }

    it.effect("a job of a consumer that died (claimed, never renewed): Reaped by a live consumer's reaper, retried, then run", () =>
      provide(Effect.gen(function*() {
        const events = recorder()
        const store = yield* Store
        const job = yield* JobQueue.enqueue(Echo, { n: 5 }, { maxAttempts: 2 })
        const dead = yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 1, lease: 1000 })
        assert.strictEqual(dead.claims.length, 1)
        const other = yield* JobQueue.enqueue(Echo, { n: 6 }, { maxAttempts: 1 })
        const victim = yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 1, lease: 1000 })
        assert.strictEqual(victim.claims[0]?.job.id, other.id)
        yield* JobQueue.consume({ ...options, onEvent: events.onEvent, handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))] })
        yield* until(() => events.of(job.id).some((e) => e._tag === "Succeeded") && events.of(other.id).length > 0)
        const reaped = events.of(job.id)[0]!
        if (reaped._tag !== "Reaped") return assert.fail(`not reaped: ${events.tags(job.id)}`)
        assert.deepInclude(reaped, { queue: "default", task: "Echo", attempt: 1, outcome: "retried" })
        assert.instanceOf(reaped.runAt, Date)
        assert.deepStrictEqual(events.tags(job.id), ["Reaped:1", "Started:2", "Succeeded:2"])
        // out of attempts: dead
        assert.deepStrictEqual(events.tags(other.id), ["Reaped:1"])
        assert.deepInclude(events.of(other.id)[0], { outcome: "dead", runAt: undefined })
      })))

    it.effect("events come in order, however slow the handler: each job's Started before its end, a death's Failed just before its Dead, the jobs started in the queue's order", () =>
      provide(Effect.gen(function*() {
        const events = recorder()
        yield* JobQueue.consume({
          ...options,
          concurrency: 1,
          // slower than the jobs: the buffer holds the events, in order
          onEvent: (event) => Effect.andThen(Effect.sleep(20), events.onEvent(event)),
          handlers: [Task.handle(Echo, ({ n }) => n % 3 === 0 ? Effect.fail(new Boom({ n })) : Effect.as(Effect.sleep(10), n))]
        })
        const jobs = yield* Effect.forEach(Array.from({ length: 30 }, (_, n) => n), (n) =>
          Effect.map(JobQueue.enqueue(Echo, { n }, { maxAttempts: 1 }), (job) => job.id))
        yield* until(() => events.all.filter((e) => e._tag === "Succeeded" || e._tag === "Dead").length === 30)
        const named = events.all as Array<JobQueue.JobEvent & { readonly id: string }>
        assert.isFalse(events.all.some((e) => e._tag === "Dropped"))
        const starts = named.filter((e) => e._tag === "Started").map((e) => jobs.indexOf(e.id))
        assert.deepStrictEqual(starts, jobs.map((_, n) => n), "started in the queue's order")
        jobs.forEach((id, n) => {
          // the next job may start while this one's outcome is being written: a job's own events are in order
          const mine = named.filter((e) => e.id === id).map((e) => e._tag)
          assert.deepStrictEqual(mine, n % 3 === 0 ? ["Started", "Failed", "Dead"] : ["Started", "Succeeded"], `job ${n}`)
          if (n % 3 === 0) {
            const failed = named.findIndex((e) => e.id === id && e._tag === "Failed")
            assert.strictEqual(named[failed + 1]?._tag, "Dead", "a death's Failed and Dead together")
          }
        })
        // delivered one at a time: each a slow handler's 20 ms after the last
        const times = events.all.map((e) => events.at.get(e)!)
        for (let i = 1; i < times.length; i++) assert.isAtLeast(times[i]! - times[i - 1]!, 20)
      })))

    /**
     * A consumer of `count` jobs whose events go to `onEvent`, stopped once they have ended: the
     * counts of its warnings that the handler was not told events (see `untold`).
     */
    const stoppedBehind = (count: number, onEvent: (event: JobQueue.JobEvent) => Effect.Effect<void>) =>
      Effect.gen(function*() {
        const { logged, collector } = warnings()
        const scope = yield* Scope.make()
        yield* Scope.provide(
          JobQueue.consume({ ...options, concurrency: 50, onEvent, handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))] })
            .pipe(Effect.provide(Logger.layer([collector]))),
          scope
        )
        const jobs = yield* JobQueue.enqueueAll(Echo, Array.from({ length: count }, (_, n) => ({ payload: { n } })))
        for (const job of jobs) assert.isTrue(typeof (yield* job.await) === "number")
        const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
        yield* tick(5000)
        yield* Fiber.join(closing)
        return untold(logged)
      })

    it.effect("a handler that never returns holds no job: the events past its buffer are dropped and counted, and the consumer stops within its grace, saying how many it was not told", () =>
      provide(Effect.gen(function*() {
        const seen: Array<JobQueue.JobEvent> = []
        const counted = yield* stoppedBehind(1000, (event) => Effect.andThen(Effect.sync(() => void seen.push(event)), Effect.never))
        assert.strictEqual(seen.length, 1, "the handler got its first event only")
        // the one it hangs in, the 1,024 buffered and the 975 dropped: it can get no Dropped event, the log says so
        assert.deepStrictEqual(counted, [2000])
      })))

    it.effect("a slow handler still behind when the stop's grace ends: what it was not told is counted in a warning (told + counted = made)", () =>
      provide(Effect.gen(function*() {
        const seen: Array<JobQueue.JobEvent> = []
        const counted = yield* stoppedBehind(300, (event) => Effect.andThen(Effect.sleep(10), Effect.sync(() => void seen.push(event))))
        const told = seen.reduce((n, e) => n + (e._tag === "Dropped" ? e.count : 1), 0)
        assert.isAbove(told, 0)
        assert.isBelow(told, 600, "the handler was still behind at the grace's end")
        assert.deepStrictEqual(counted, [600 - told])
      })))

    it.effect("a handler that hangs and cannot be interrupted does not hold the consumer's stop past its grace", () =>
      provide(Effect.gen(function*() {
        const events = recorder()
        const scope = yield* Scope.make()
        yield* Scope.provide(
          JobQueue.consume({
            ...options,
            onEvent: (event) => Effect.andThen(events.onEvent(event), Effect.uninterruptible(Effect.never)),
            handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))]
          }),
          scope
        )
        assert.strictEqual(yield* (yield* JobQueue.enqueue(Echo, { n: 1 })).await, 1)
        const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
        yield* tick(3000)
        assert.isDefined(closing.pollUnsafe(), "the stop ended within its grace")
        assert.deepStrictEqual(events.all.map((e) => e._tag), ["Started"])
      })))

    it.effect("a slow handler loses events once 1,024 wait; a Dropped event tells how many, where they were", () =>
      provide(Effect.gen(function*() {
        const seen: Array<JobQueue.JobEvent> = []
        const go = yield* Deferred.make<void>()
        yield* JobQueue.consume({
          ...options,
          concurrency: 50,
          onEvent: (event) => Effect.andThen(Deferred.await(go), Effect.sync(() => void seen.push(event))),
          handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))]
        })
        const jobs = yield* JobQueue.enqueueAll(Echo, Array.from({ length: 1000 }, (_, n) => ({ payload: { n } })))
        for (const job of jobs) yield* job.await
        yield* Deferred.succeed(go, undefined)
        yield* until(() => seen.some((e) => e._tag === "Dropped"))
        const dropped = seen.filter((e) => e._tag === "Dropped")
        assert.strictEqual(dropped.length, 1)
        // 2,000 events of the 1,000 jobs: the first went to the handler, 1,024 waited, the rest were dropped
        assert.strictEqual(dropped[0]?._tag === "Dropped" && dropped[0].count, 2000 - 1 - 1024)
        assert.strictEqual(seen.indexOf(dropped[0]!), 1025, "told where the events were lost, once the handler caught up")
        yield* JobQueue.enqueue(Echo, { n: -1 })
        yield* until(() => seen.length === 1028)
        assert.deepStrictEqual(seen.slice(1026).map((e) => e._tag), ["Started", "Succeeded"])
      })))

    it.effect("a handler that fails or dies loses only that event (logged once); the jobs and the later events go on", () =>
      provide(Effect.gen(function*() {
        const { logged, collector } = warnings()
        const seen: Array<string> = []
        let calls = 0
        yield* JobQueue.consume({
          ...options,
          onEvent: (event) =>
            Effect.suspend(() => {
              calls++
              if (calls % 3 === 1) return Effect.fail("refused")
              if (calls % 3 === 2) throw new Error("thrown")
              return Effect.sync(() => void seen.push(event._tag))
            }),
          handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))]
        }).pipe(Effect.provide(Logger.layer([collector])))
        for (let n = 0; n < 6; n++) assert.strictEqual(yield* (yield* JobQueue.enqueue(Echo, { n })).await, n)
        yield* until(() => calls === 12)
        assert.strictEqual(seen.length, 4)
        assert.strictEqual(logged.filter((m) => m.includes("onEvent")).length, 1, logged.join("\n"))
      })))

    it.effect("onEvent that is not a function: InvalidPoolConfig naming it", () =>
      provide(Effect.gen(function*() {
        const error = yield* Effect.flip(JobQueue.consume({ ...options, onEvent: "log" as never, handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))] }))
        assert.instanceOf(error, InvalidPoolConfig)
        assert.strictEqual((error as InvalidPoolConfig).field, "onEvent")
      })))
  })
