/**
 * The durable semantics, written once and run on every store (memory, SQLite) under TestClock:
 * the stores take their time from the Effect Clock, so leases, delays, retries and timeouts are
 * driven by `TestClock.adjust` and nothing waits for real time.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Clock, Context, Deferred, Effect, Exit, Fiber, Latch, Layer, Logger, Option, Ref, References, Schedule, Schema, Scope, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as DurableError from "../../src/DurableError.ts"
import * as JobQueue from "../../src/JobQueue.ts"
import * as JobStore from "../../src/JobStore.ts"
import { type Claim, type Claimed, decodeTrace, type NewJob, type Settlement, type State, type Store } from "../../src/internal/store/model.ts"
import { InvalidJobOptions, type InvalidPoolConfig, PoolShutdown, TaskCodecError } from "../../src/PoolError.ts"
import * as Task from "../../src/Task.ts"
import * as WorkPool from "../../src/WorkPool.ts"
import { recordingTracer, settle, warnings } from "../helpers.ts"

export class Boom extends Schema.TaggedError<Boom>()("Boom", { n: Schema.Number }) {}
export const Echo = Task.make("Echo", { payload: Schema.Struct({ n: Schema.Number }), success: Schema.Number, failure: Boom })
/** An Echo handler that counts the runs of each job's `n`; job 100 opens `started` and waits for `go`. */
export const countingEcho = () => {
  const runs = new Map<number, number>()
  const started = Deferred.makeUnsafe<void>()
  const go = Deferred.makeUnsafe<void>()
  const handler = Task.handle(Echo, ({ n }) =>
    Effect.gen(function*() {
      runs.set(n, (runs.get(n) ?? 0) + 1)
      if (n === 100) {
        yield* Deferred.succeed(started, undefined)
        yield* Deferred.await(go)
      }
      return n * 2
    }))
  return { runs, handler, started, go }
}

/** An `Echo` job as a store's own `enqueue` takes it, for tests that call the store directly. */
export const newJob = (queue: string, fields: Partial<NewJob> = {}): NewJob => ({
  queue,
  task: "Echo",
  payload: "{}",
  priority: 0,
  dedupKey: null,
  maxAttempts: 3,
  timeout: 0,
  delay: 0,
  runAt: undefined,
  ...fields
})
/**
 * A server store's connections cut under a running consumer (`kill`, the server's doing): the
 * operations in flight fail typed, the next ones reconnect, the job finishes; an awaiter whose call
 * was cut sees a StoreError and asks again (at most `retries` times). Needs the store and a scope.
 */
export const connectionsKilled = (kill: Effect.Effect<void>, retries: number) =>
  Effect.gen(function*() {
    const gate = yield* Latch.make(false)
    yield* JobQueue.consume({
      handlers: [Task.handle(Echo, ({ n }) => Effect.as(gate.await, n))],
      concurrency: 1,
      lease: "5 seconds",
      poll: 50
    })
    const job = yield* JobQueue.enqueue(Echo, { n: 7 })
    while ((yield* JobQueue.status(job.id)).state !== "running") yield* Effect.sleep(10)
    yield* kill
    yield* gate.open
    const errors: Array<string> = []
    const value = yield* JobQueue.await(Echo, job.id).pipe(
      Effect.tapError((error) => Effect.sync(() => errors.push(error._tag))),
      Effect.retry({ while: (error) => error._tag === "StoreError", schedule: Schedule.spaced(20), times: retries })
    )
    assert.strictEqual(value, 7)
    assert.isTrue(errors.every((tag) => tag === "StoreError"), errors.join())
    return errors
  })

/**
 * For a store whose time is its server's (Postgres, Redis), run under a TestClock at 1970: a delay
 * counts from the server's now, and the server's now decides what is due (a job due "at 1970 + 1 s"
 * on the producer's clock is long due on the server's).
 */
export const delayOnServerClock = Effect.gen(function*() {
  const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { delay: "1 hour" })
  const info = yield* JobQueue.status(job.id)
  assert.strictEqual(info.state, "delayed")
  const expected = Date.now() + 3_600_000
  assert.isTrue(
    Math.abs(info.visibleAt.getTime() - expected) < 60_000,
    `visible at ${info.visibleAt.toISOString()}, expected about ${new Date(expected).toISOString()}`
  )
  const due = yield* JobQueue.enqueue(Echo, { n: 2 }, { runAt: new Date(1000) })
  assert.strictEqual((yield* JobQueue.status(due.id)).state, "queued")
})

/**
 * For a store whose time is its server's (Postgres, Redis), under a TestClock at 1970: a job's
 * `notAfter` (a repeat's tick's deadline) is checked on the server's clock as the insert reaches it.
 */
export const notAfterOnServerClock = Effect.gen(function*() {
  const store = yield* JobStore.JobStore
  const local = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
  // an hour after the producer's 1970: long past on the server's clock
  const late = yield* store.enqueue(newJob("ticks", { id: "tick:server-late", runAt: local, notAfter: local + 3_600_000 }))
  assert.deepStrictEqual(late, { id: "tick:server-late", created: false, late: true })
  assert.isUndefined(yield* store.get("tick:server-late"))
  const onTime = yield* store.enqueue(newJob("ticks", { id: "tick:server-on-time", runAt: local, notAfter: Date.now() + 3_600_000 }))
  assert.deepStrictEqual(onTime, { id: "tick:server-on-time", created: true })
})

/**
 * For a store whose time is its server's (Postgres, Redis), live: a job delayed by 1 s, enqueued
 * through another store instance (another process, as far as the consumer can tell) while the
 * consumer sleeps with a poll of an hour, starts at its time: the enqueue's notification wakes the
 * consumer then. The consumer's machine's wall clock is an hour ahead of the server's (clock skew):
 * the delay is the server's, the consumer only counts it down. `layer` makes a store instance.
 */
export const delayedWakeAcrossInstances = (layer: () => Layer.Layer<JobStore.JobStore, any>) =>
  Effect.gen(function*() {
    const real = yield* Clock.Clock
    const HOUR = 3_600_000
    const millis = () => real.currentTimeMillisUnsafe() + HOUR
    const nanos = () => real.currentTimeNanosUnsafe() + BigInt(HOUR) * 1_000_000n
    const ahead: Clock.Clock = {
      currentTimeMillisUnsafe: millis,
      currentTimeMillis: Effect.sync(millis),
      currentTimeNanosUnsafe: nanos,
      currentTimeNanos: Effect.sync(nanos),
      monotonicTimeNanosUnsafe: () => real.monotonicTimeNanosUnsafe(),
      monotonicTimeNanos: real.monotonicTimeNanos,
      sleep: (duration) => real.sleep(duration)
    }
    const idle = yield* Deferred.make<void>()
    const consumerStore = tellingIdle(idle, HOUR, layer())
    return yield* Effect.gen(function*() {
      let startedAt = 0
      yield* JobQueue.consume({
        handlers: [Task.handle(Echo, ({ n }) => Effect.sync(() => (startedAt = Date.now(), n)))],
        concurrency: 1,
        poll: HOUR
      })
      yield* Deferred.await(idle)
      const job = yield* Effect.provide(JobQueue.enqueue(Echo, { n: 5 }, { delay: "1 second" }), layer())
      assert.strictEqual(yield* JobQueue.await(Echo, job.id).pipe(Effect.timeout("30 seconds")), 5)
      const info = yield* JobQueue.status(job.id)
      // the store's visibleAt is the server's time; the handler's, this machine's real one
      assert.isAtLeast(startedAt, info.visibleAt.getTime() - 50, "started before its time")
      assert.isBelow(startedAt, info.visibleAt.getTime() + 10_000, "started long after its time")
    }).pipe(Effect.scoped, Effect.provide(consumerStore), Effect.provideService(Clock.Clock, ahead))
  })

/**
 * Live: a queue's limit raised, then lifted, through another store instance (another process, as
 * far as the consumer can tell) while the consumer waits for the window of an hour with a poll of an
 * hour: each change starts the jobs it allows at once, heard through the store's wake-up (file
 * watch, NOTIFY, marker). Every wait is for an event (a claim the window held back, a job's result).
 */
export const rateLimitChangeAcrossInstances = (layer: () => Layer.Layer<JobStore.JobStore, any>) =>
  Effect.gen(function*() {
    const HOUR = 3_600_000
    const queue = "limited"
    const admin = Context.get(yield* Layer.build(layer()), JobStore.JobStore)
    const elsewhere = <A, E>(effect: Effect.Effect<A, E, JobStore.JobStore>) => Effect.provideService(effect, JobStore.JobStore, admin)
    const mine = Context.get(yield* Layer.build(layer()), JobStore.JobStore)
    let held = yield* Deferred.make<void>()
    const telling: Store = {
      ...mine,
      claim: (request) => Effect.tap(mine.claim(request), (claimed) => claimed.limitedFor > 0 ? Deferred.succeed(held, undefined) : Effect.void)
    }
    yield* elsewhere(JobQueue.setRateLimit(queue, { limit: 1, interval: HOUR }))
    const jobs = yield* elsewhere(Effect.forEach([0, 1, 2], (n) => JobQueue.enqueue(Echo, { n }, { queue, priority: -n })))
    yield* Effect.provideService(
      JobQueue.consume({ queues: [queue], handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))], concurrency: 3, poll: HOUR }),
      JobStore.JobStore,
      telling
    )
    const result = (n: number) => elsewhere(JobQueue.await(Echo, jobs[n]!.id)).pipe(Effect.timeout("30 seconds"))
    assert.strictEqual(yield* result(0), 0)
    yield* Deferred.await(held)
    held = yield* Deferred.make<void>()
    yield* elsewhere(JobQueue.setRateLimit(queue, { limit: 2, interval: HOUR }))
    assert.strictEqual(yield* result(1), 1, "raised: one more starts now")
    yield* Deferred.await(held).pipe(Effect.timeout("30 seconds"))
    assert.strictEqual((yield* elsewhere(JobQueue.status(jobs[2]!.id))).state, "queued", "the raised window holds the third")
    yield* elsewhere(JobQueue.setRateLimit(queue, undefined))
    assert.strictEqual(yield* result(2), 2, "lifted: the last starts now")
  }).pipe(Effect.scoped)

/**
 * Live: a queue's retention applied by three store instances at once (three consumers' processes),
 * each passing batches of 100 until none comes back full: 1,200 finished jobs past it are deleted
 * once in all (the counts add up, nothing fails), the
 * newest 50 kept, and another state's jobs untouched.
 */
export const retentionAcrossInstances = (layer: () => Layer.Layer<JobStore.JobStore, any>) =>
  Effect.gen(function*() {
    const stores = [] as Array<Store>
    for (let i = 0; i < 3; i++) stores.push(Context.get(yield* Layer.build(layer()), JobStore.JobStore))
    const first = stores[0]!
    const ended = (state: "succeeded" | "dead", count: number) =>
      Effect.gen(function*() {
        yield* first.enqueueAll(Array.from({ length: count }, (_, n) => ({ ...newJob("kept"), task: state, payload: String(n) })))
        for (let left = count; left > 0;) {
          const { claims } = yield* first.claim({ queues: ["kept"], tasks: [state], limit: 500, lease: 60_000 })
          assert.isAbove(claims.length, 0)
          yield* Effect.forEach(claims, (claim) => first.settle(claim.token, { _tag: "Final", state, exit: null }), { concurrency: 50 })
          left -= claims.length
        }
      })
    yield* ended("succeeded", 1250)
    yield* ended("dead", 30)
    yield* Effect.provideService(JobQueue.setRetention("kept", { succeeded: { count: 50 } }), JobStore.JobStore, first)
    const passes = (store: Store) =>
      Effect.gen(function*() {
        let deleted = 0
        for (let round = 0; round < 1000; round++) {
          const retained = yield* store.retain(100)
          deleted += retained.deleted
          if (!retained.more) return deleted
        }
        return assert.fail("a retention that never ends")
      })
    const deleted = yield* Effect.all(stores.map(passes), { concurrency: "unbounded" }).pipe(Effect.timeout("60 seconds"))
    assert.strictEqual(deleted.reduce((a, b) => a + b, 0), 1200, `deleted per instance: ${deleted.join(", ")}`)
    const counts = yield* first.counts("kept")
    assert.deepStrictEqual([counts.succeeded, counts.dead], [50, 30])
    assert.deepStrictEqual(yield* first.retain(100), { deleted: 0, more: false })
  }).pipe(Effect.scoped)

/**
 * Live: two store instances (two processes) enqueue one dedup key at the same moment, in each mode,
 * alone and in batches that repeat it: one job, whose handle both get. Then, the job finished inside
 * its throttle window, both get it again.
 */
export const dedupRaceAcrossInstances = (layer: () => Layer.Layer<JobStore.JobStore, any>) =>
  Effect.gen(function*() {
    const stores = [
      Context.get(yield* Layer.build(layer()), JobStore.JobStore),
      Context.get(yield* Layer.build(layer()), JobStore.JobStore)
    ]
    const on = <A, E>(i: number, effect: Effect.Effect<A, E, JobStore.JobStore>) => Effect.provideService(effect, JobStore.JobStore, stores[i]!)
    const modes: ReadonlyArray<JobQueue.EnqueueOptions> = [{}, { dedupWhile: "queued" }, { dedupFor: "1 hour" }, { dedupWhile: "queued", dedupFor: "1 hour" }]
    for (let round = 0; round < 24; round++) {
      const options = { ...modes[round % modes.length], dedupKey: `race-${round}`, queue: "race" }
      const [a, b] = yield* Effect.all([
        on(0, JobQueue.enqueue(Echo, { n: 1 }, options)),
        round % 2 === 0
          ? on(1, JobQueue.enqueue(Echo, { n: 2 }, options))
          : on(1, Effect.map(JobQueue.enqueueAll(Echo, [{ payload: { n: 2 }, options }, { payload: { n: 3 }, options }]), (jobs) => {
            assert.strictEqual(jobs[1]!.id, jobs[0]!.id)
            return jobs[0]!
          }))
      ], { concurrency: "unbounded" })
      assert.strictEqual(a.id, b.id, `round ${round}`)
      assert.strictEqual([a.created, b.created].filter(Boolean).length, 1, `round ${round}`)
    }
    assert.strictEqual((yield* on(0, JobQueue.list({ queue: "race", limit: 100 }))).length, 24)
    // a finished job inside its window holds its key for both
    const claimed = yield* stores[0]!.claim({ queues: ["race"], tasks: ["Echo"], limit: 100, lease: 60_000 })
    for (const claim of claimed.claims) yield* stores[0]!.settle(claim.token, { _tag: "Final", state: "succeeded", exit: null })
    const windowed = claimed.claims.find((claim) => claim.job.dedupKey === "race-2")!
    const again = yield* Effect.all([0, 1].map((i) => on(i, JobQueue.enqueue(Echo, { n: 4 }, { dedupKey: "race-2", queue: "race" }))), { concurrency: "unbounded" })
    assert.deepStrictEqual(again.map((job) => [job.id, job.created]), [[windowed.job.id, false], [windowed.job.id, false]])
    // and a key held by no window is taken by one of them
    const fresh = yield* Effect.all([0, 1].map((i) => on(i, JobQueue.enqueue(Echo, { n: 5 }, { dedupKey: "race-0", queue: "race", dedupFor: "1 hour" }))), { concurrency: "unbounded" })
    assert.strictEqual(fresh[0]!.id, fresh[1]!.id)
    assert.strictEqual(fresh.filter((job) => job.created).length, 1)
  }).pipe(Effect.scoped)

/**
 * Live: two consumers, each of its own store instance (two processes), both held back by a queue's
 * window of an hour with a poll of an hour; the limit lifted through a third instance starts a job
 * on each at once: the wake-up reaches both (Redis: the one that pops the marker passes it on).
 */
export const rateLimitLiftTwoInstances = (layer: () => Layer.Layer<JobStore.JobStore, any>) =>
  Effect.gen(function*() {
    const HOUR = 3_600_000
    const queue = "limited"
    const instance = Effect.map(Layer.build(layer()), (context) => Context.get(context, JobStore.JobStore))
    const admin = yield* instance
    const elsewhere = <A, E>(effect: Effect.Effect<A, E, JobStore.JobStore>) => Effect.provideService(effect, JobStore.JobStore, admin)
    yield* elsewhere(JobQueue.setRateLimit(queue, { limit: 1, interval: HOUR }))
    const first = yield* elsewhere(JobQueue.enqueue(Echo, { n: 0 }, { queue, priority: 10 }))
    const held = [yield* Deferred.make<void>(), yield* Deferred.make<void>()]
    // a job after the first holds its consumer's one slot until both have one: the other must hear
    // the lift itself, not claim after the first is done
    const started = [yield* Deferred.make<void>(), yield* Deferred.make<void>()]
    const gate = yield* Latch.make(false)
    for (const consumer of [0, 1]) {
      const store = yield* instance
      const telling: Store = {
        ...store,
        claim: (request) =>
          Effect.tap(store.claim(request), (claimed) => claimed.limitedFor > 0 ? Deferred.succeed(held[consumer]!, undefined) : Effect.void)
      }
      yield* Effect.provideService(
        JobQueue.consume({
          queues: [queue],
          handlers: [Task.handle(Echo, ({ n }) =>
            n === 0 ? Effect.succeed(n) : Effect.andThen(Deferred.succeed(started[consumer]!, undefined), Effect.as(gate.await, n)))],
          concurrency: 1,
          poll: HOUR
        }),
        JobStore.JobStore,
        telling
      )
    }
    assert.strictEqual(yield* elsewhere(JobQueue.await(Echo, first.id)).pipe(Effect.timeout("30 seconds")), 0)
    // both held back: the first job's start filled the window
    const jobs = yield* elsewhere(Effect.forEach([1, 2, 3, 4], (n) => JobQueue.enqueue(Echo, { n }, { queue })))
    yield* Effect.forEach(held, Deferred.await).pipe(Effect.timeout("30 seconds"))
    assert.deepStrictEqual(yield* elsewhere(Effect.forEach(jobs, (job) => Effect.map(job.status, (info) => info.state))), ["queued", "queued", "queued", "queued"])
    yield* elsewhere(JobQueue.setRateLimit(queue, undefined))
    yield* Effect.forEach(started, Deferred.await).pipe(Effect.timeout("30 seconds"))
    yield* gate.open
    yield* elsewhere(Effect.forEach(jobs, (job) => JobQueue.await(Echo, job.id))).pipe(Effect.timeout("30 seconds"))
  }).pipe(Effect.scoped)

/** `count` keys (k000, k001, ...) of one job each, an hour away: keys that give a claim nothing. */
export const delayedKeys = (count: number) =>
  Array.from({ length: count }, (_, n) => ({ payload: { n }, options: { group: `k${String(n).padStart(3, "0")}`, delay: "1 hour" as const } }))

/** A task no consumer of the per-key cap tests runs: its jobs are visible to a walk and never taken. */
export const Other = Task.make("Other", { payload: Schema.Struct({ n: Schema.Number }), success: Schema.Number })

/**
 * A store of `layer` whose queue "default" has a per-key cap of 1 and `count` keys (k000, k001, ...)
 * that give an Echo claim nothing: of one delayed job each, or (`other`) of one ready job of `Other`
 * each (Redis walks only keys with ready jobs); `provide` runs on it.
 */
export const cappedBeside = (layer: () => Layer.Layer<JobStore.JobStore, any>, count: number, other = false) =>
  Effect.gen(function*() {
    const store = Context.get(yield* Layer.build(layer()), JobStore.JobStore)
    const provide = <A, E>(effect: Effect.Effect<A, E, JobStore.JobStore>) => Effect.provideService(effect, JobStore.JobStore, store)
    yield* provide(JobQueue.setGroupConcurrency("default", 1))
    const keys = delayedKeys(count)
    yield* provide(other ? JobQueue.enqueueAll(Other, keys.map(({ payload, options }) => ({ payload, options: { group: options.group } }))) : JobQueue.enqueueAll(Echo, keys))
    return { store, provide }
  })

/** An Echo claim of one job of "default" on `store`. */
export const claimOne = (store: Store, tasks: ReadonlyArray<string> = ["Echo"]) =>
  store.claim({ queues: ["default"], tasks, limit: 1, lease: 60_000 })

/** Runs `effect` with `store` as its JobStore (a test's own instance). */
export const on = (store: Store) => Effect.provideService(JobStore.JobStore, store)

/** Claims the one Echo job of `queue` (the test's own: nothing else is there), failing if there is none. */
export const claimOneOf = (store: Store, queue: string) =>
  Effect.map(store.claim({ queues: [queue], tasks: ["Echo"], limit: 1, lease: 600_000 }), (claimed) => {
    assert.strictEqual(claimed.claims.length, 1, `one job claimed from ${queue}`)
    return claimed.claims[0]!
  })

/** A settle's `Final` success, with no exit. */
export const succeeded = { _tag: "Final", state: "succeeded", exit: null } as const

/**
 * Claims until one takes `id` or the round ends (an empty claim not cut short: its consumer waits
 * for `dueIn` or a wake-up): whether `id` was claimed before the consumer would wait, and the claims.
 */
export const untilRoundEnds = <E>(claim: Effect.Effect<Claimed, E>, id: string) =>
  Effect.gen(function*() {
    const seen: Array<string> = []
    for (let claims = 1; claims <= 12; claims++) {
      const claimed = yield* claim
      seen.push(`${claimed.claims.length}/${claimed.dueIn}`)
      if (claimed.claims.some((c) => c.job.id === id)) return { taken: true, seen }
      if (claimed.claims.length === 0 && claimed.dueIn !== 0) return { taken: false, seen }
    }
    return { taken: false, seen }
  })

/**
 * A job enqueued into a key a round of cut claims had walked (k005a, between k005 and k006: walked
 * by its first claim, cut after k064) is claimed before the round ends: the round's last claim says
 * "again" (`dueIn: 0`) when the queue changed during the round (see `groupRounds`). `beside`: the
 * store of `cappedBeside` (300 keys).
 */
export const enqueuedDuringRound = (beside: Effect.Effect<{ readonly store: Store; readonly provide: <A, E>(effect: Effect.Effect<A, E, JobStore.JobStore>) => Effect.Effect<A, E> }, unknown, Scope.Scope>) =>
  Effect.gen(function*() {
    const { provide, store } = yield* beside
    const first = yield* claimOne(store)
    assert.deepStrictEqual([first.claims.length, first.dueIn], [0, 0], "cut short after k064")
    const job = yield* provide(JobQueue.enqueue(Echo, { n: 1000 }, { group: "k005a" }))
    const { seen, taken } = yield* untilRoundEnds(claimOne(store), job.id)
    assert.isTrue(taken, `claims (taken/dueIn): ${seen.join(", ")}`)
  }).pipe(Effect.scoped)

/**
 * A key at its cap when a round of cut claims passed it, whose running job settles before the
 * round's last claim, is served before the round ends (as `enqueuedDuringRound`: that claim was not
 * capped, it did not see the key, and said "nothing until the poll").
 */
export const freedDuringRound = (beside: Parameters<typeof enqueuedDuringRound>[0]) =>
  Effect.gen(function*() {
    const { provide, store } = yield* beside
    yield* provide(JobQueue.enqueue(Echo, { n: 1 }, { group: "k005a" }))
    const running = yield* claimOne(store)
    assert.strictEqual(running.claims.length, 1, "k005a's first job runs: the cursor is k005a")
    const next = yield* provide(JobQueue.enqueue(Echo, { n: 2 }, { group: "k005a" }))
    const a = yield* provide(JobQueue.enqueue(Echo, { n: 3 }, { group: "a" }))
    // the round from k005a: cut short until it wraps to "a" and takes its job (the cursor: "a")
    assert.isTrue((yield* untilRoundEnds(claimOne(store), a.id)).taken)
    // the round from "a": passes k005a at its cap, cut short
    const passed = yield* claimOne(store)
    assert.deepStrictEqual([passed.claims.length, passed.dueIn, passed.capped], [0, 0, true])
    yield* store.settle(running.claims[0]!.token, { _tag: "Final", state: "succeeded", exit: null })
    const { seen, taken } = yield* untilRoundEnds(claimOne(store), next.id)
    assert.isTrue(taken, `claims (taken/dueIn): ${seen.join(", ")}`)
  }).pipe(Effect.scoped)

/**
 * A SQL store's claim of a queue with a per-key cap visits at most its budget of keys (`groupBudget`:
 * here 1 + 0 + 64): beside 300 keys of delayed jobs only, a claim cut short there is empty and says
 * `dueIn: 0`, the next ones go on from where it stopped and find the key after them all, and the
 * round then ends in a claim that says when the delayed jobs are due (no claim-again-at-once forever).
 */
export const groupWalkBudget = (layer: () => Layer.Layer<JobStore.JobStore, any>) =>
  Effect.gen(function*() {
    const { provide, store } = yield* cappedBeside(layer, 300)
    const late = yield* provide(JobQueue.enqueue(Echo, { n: 1000 }, { group: "z" }))
    const claim = store.claim({ queues: ["default"], tasks: ["Echo"], limit: 1, lease: 60_000 })
    const first = yield* claim
    assert.deepStrictEqual([first.claims.length, first.dueIn], [0, 0], "cut short by its budget of keys: claim again at once")
    /** Claims until `done`, each one before it cut short: how many, and the last. */
    const until = Effect.fnUntraced(function*(what: string, done: (claimed: typeof first) => boolean) {
      for (let claims = 1; ; claims++) {
        const claimed = yield* claim
        if (done(claimed)) return { claims, claimed }
        assert.isBelow(claims, 10, what)
        assert.deepStrictEqual([claimed.claims.length, claimed.dueIn], [0, 0], `claim ${claims}: cut short`)
      }
    })
    // 300 keys at 65 a claim: the key after them in the fifth
    assert.isAtMost((yield* until("the key after all of them", (claimed) => claimed.claims[0]?.job.id === late.id)).claims, 5)
    // then a round from that key: cut short until it has seen them all, then the delayed jobs' time
    for (const round of ["a round", "the next round"]) {
      const { claimed, claims } = yield* until(`${round}'s end`, (claimed) => claimed.dueIn !== 0)
      assert.isAtMost(claims, 6, round)
      assert.strictEqual(claimed.claims.length, 0)
      assert.isAbove(claimed.dueIn ?? 0, 3_000_000, `${round} ends: due in an hour`)
    }
  }).pipe(Effect.scoped)

/**
 * A SQL store's claim cut short by its budget of keys that took every job it offered stores its
 * cursor at the last key it saw, not the last it served: the next claim goes on past the keys that
 * gave nothing. Key `a` (ready jobs), 220 keys of delayed jobs, key `z` (a ready job), claims of 2:
 * the first takes a's job and stops after k064 (budget 2 + 0 + 64); the next ones (budget 67, `a`
 * running) reach `z` in the fourth claim; from `a` they had walked k000-k064 again, `z` in the fifth.
 */
export const groupWalkPastTaken = (layer: () => Layer.Layer<JobStore.JobStore, any>) =>
  Effect.gen(function*() {
    const { provide, store } = yield* cappedBeside(layer, 220)
    const a = yield* provide(JobQueue.enqueueAll(Echo, [{ payload: { n: 1 } }, { payload: { n: 2 } }], { group: "a" }))
    const z = yield* provide(JobQueue.enqueue(Echo, { n: 1000 }, { group: "z" }))
    const claim = store.claim({ queues: ["default"], tasks: ["Echo"], limit: 2, lease: 60_000 })
    const first = yield* claim
    assert.deepStrictEqual([first.claims.map((c) => c.job.id), first.dueIn], [[a[0]!.id], 0], "a's first, then cut short")
    const ids: Array<Array<string>> = []
    for (let n = 2; n <= 4; n++) ids.push((yield* claim).claims.map((c) => c.job.id))
    assert.deepStrictEqual(ids, [[], [], [z.id]], "z in the fourth claim")
  }).pipe(Effect.scoped)

/**
 * Two SQLite connections' consumers of a queue with a per-key cap and 300 keys of delayed jobs only:
 * an empty claim cut short by its budget of keys writes nothing, so neither's claims wake the other
 * (a write's commit wakes every consumer of the file; written, each claimed about once a millisecond).
 */
export const groupWalkQuietAcrossInstances = (layer: () => Layer.Layer<JobStore.JobStore, any>) =>
  Effect.gen(function*() {
    const instance = Effect.map(Layer.build(layer()), (context) => Context.get(context, JobStore.JobStore))
    const admin = yield* instance
    const elsewhere = <A, E>(effect: Effect.Effect<A, E, JobStore.JobStore>) => Effect.provideService(effect, JobStore.JobStore, admin)
    yield* elsewhere(JobQueue.setGroupConcurrency("default", 1))
    yield* elsewhere(JobQueue.enqueueAll(Echo, delayedKeys(300)))
    const claims = [0, 0]
    for (const at of [0, 1]) {
      const store = yield* instance
      const counting: Store = { ...store, claim: (request) => Effect.andThen(Effect.sync(() => claims[at]!++), store.claim(request)) }
      yield* Effect.provideService(
        JobQueue.consume({ queues: ["default"], handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))], concurrency: 2, poll: "1 hour" }),
        JobStore.JobStore,
        counting
      )
    }
    // the consumers' claims while a job a second away waits, ran, and is read: each a few rounds
    const soon = yield* elsewhere(JobQueue.enqueue(Echo, { n: 1000 }, { group: "zz", delay: "1 second" }))
    assert.strictEqual(yield* Effect.timeout(elsewhere(JobQueue.await(Echo, soon.id)), "30 seconds"), 1000)
    assert.isAtMost(Math.max(...claims), 60, `claims of each consumer: ${claims.join(", ")}`)
  }).pipe(Effect.scoped)

/**
 * Live: two consumers, each of its own store instance (two processes), polling once an hour, on a
 * queue capped at 2; each job holds its slot until the test lets it go. Never more than 2 run
 * between them; each slot freed on one instance starts a job on whichever consumer hears it first
 * (the store's wake-up across instances: file watch, NOTIFY, marker), not at the poll.
 */
export const concurrencyCapTwoInstances = (layer: () => Layer.Layer<JobStore.JobStore, any>) =>
  Effect.gen(function*() {
    const HOUR = 3_600_000
    const queue = "capped"
    const instance = Effect.map(Layer.build(layer()), (context) => Context.get(context, JobStore.JobStore))
    const admin = yield* instance
    const elsewhere = <A, E>(effect: Effect.Effect<A, E, JobStore.JobStore>) => Effect.provideService(effect, JobStore.JobStore, admin)
    yield* elsewhere(JobQueue.setConcurrency(queue, 2))
    const jobs = yield* elsewhere(Effect.forEach(Array.from({ length: 6 }, (_, n) => n), (n) => JobQueue.enqueue(Echo, { n }, { queue })))
    let running = 0
    let most = 0
    const gates = yield* Effect.forEach(jobs, () => Deferred.make<void>())
    const started = yield* Effect.forEach(jobs, () => Deferred.make<void>())
    for (const _ of [0, 1]) {
      const store = yield* instance
      yield* Effect.provideService(
        JobQueue.consume({
          queues: [queue],
          handlers: [Task.handle(Echo, ({ n }) =>
            Effect.acquireUseRelease(
              Effect.andThen(Effect.sync(() => {
                most = Math.max(most, ++running)
              }), Deferred.succeed(started[n]!, undefined)),
              () => Effect.as(Deferred.await(gates[n]!), n),
              () => Effect.sync(() => running--)
            ))],
          concurrency: 4,
          poll: HOUR
        }),
        JobStore.JobStore,
        store
      )
    }
    const inTime = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.timeout(effect, "30 seconds")
    // FIFO: jobs 0 and 1 first; each one let go starts the next in order
    for (let n = 0; n < jobs.length; n++) {
      yield* inTime(Deferred.await(started[n]!))
      if (n >= 1) {
        assert.deepStrictEqual((yield* elsewhere(JobQueue.stats(queue))).concurrency, { limit: 2, running: 2 })
        yield* Deferred.succeed(gates[n - 1]!, undefined)
      }
    }
    yield* Deferred.succeed(gates[jobs.length - 1]!, undefined)
    yield* inTime(elsewhere(Effect.forEach(jobs, (job) => JobQueue.await(Echo, job.id))))
    assert.strictEqual(most, 2)
  }).pipe(Effect.scoped)

/**
 * Live: a queue capped at 1, its slot held by a claim of another store instance (another process);
 * a consumer polling once an hour is held back. The slot freed there (a final settle, a retry, a
 * release, a reap that ends the job dead: its lease of 1 ms over, its one attempt spent; then a
 * reap that takes it back to run again in an hour)
 * starts the next job on the consumer at once: the store's wake-up across instances, for each way
 * a job stops running. `listening`: until the consumer's instance hears the queue's wake-ups (its
 * LISTEN, its BZPOPMIN), given how many of its claims found nothing so far and whether it waits in
 * the store now: freed before that, the consumer may claim again for its own reasons (Postgres wakes
 * a queue's waiters once it listens, for a job that came between), which hid that a final settle
 * sent no NOTIFY.
 */
export const concurrencyCapFreedElsewhere = (
  layer: () => Layer.Layer<JobStore.JobStore, any>,
  listening: (queue: string, consumer: { readonly emptyClaims: () => number; readonly waiting: () => boolean }) => Effect.Effect<void> = () =>
    Effect.void
) =>
  Effect.gen(function*() {
    const HOUR = 3_600_000
    const instance = Effect.map(Layer.build(layer()), (context) => Context.get(context, JobStore.JobStore))
    const admin = yield* instance
    const elsewhere = <A, E>(effect: Effect.Effect<A, E, JobStore.JobStore>) => Effect.provideService(effect, JobStore.JobStore, admin)
    const exit = JSON.stringify({ _tag: "Success", value: 0 })
    const settled = (settlement: Settlement) => (claim: Claim) => Effect.map(admin.settle(claim.token, settlement), assert.isTrue)
    // its lease cut to 1 ms by a beat, then reaped once that is over on the store's clock (asked until
    // it is: no fixed sleep). The consumer's own reaper may take it first: then its own store wakes
    // it, and this instance's reap finds none, so the job leaving `running` ends the asking
    const reaped = (backoff: number) => (claim: Claim) =>
      Effect.gen(function*() {
        yield* admin.heartbeat([claim.token], 1)
        yield* admin.reap([backoff]).pipe(
          Effect.andThen(elsewhere(JobQueue.status(claim.job.id))),
          Effect.flatMap((job) => job.state === "running" ? Effect.fail("not yet") : Effect.void),
          Effect.retry(Schedule.spaced("20 millis")),
          Effect.timeout("30 seconds")
        )
      })
    const ways: ReadonlyArray<readonly [string, (claim: Claim) => Effect.Effect<void, unknown>]> = [
      ["Final", settled({ _tag: "Final", state: "succeeded", exit })],
      ["Retry", settled({ _tag: "Retry", delay: HOUR, exit })],
      ["Release", settled({ _tag: "Release" })],
      ["reap", reaped(0)],
      // taken back to run again in an hour: its slot is free now all the same
      ["reap-retried", reaped(HOUR)]
    ]
    for (const [way, free] of ways) {
      const queue = `capped-${way}`
      yield* elsewhere(JobQueue.setConcurrency(queue, 1))
      const [first, second] = yield* elsewhere(Effect.forEach([0, 1], (n) => JobQueue.enqueue(Echo, { n }, { queue, maxAttempts: way === "reap-retried" ? 2 : 1 })))
      // the slot taken elsewhere (another process)
      const [claim] = (yield* admin.claim({ queues: [queue], tasks: ["Echo"], limit: 1, lease: 60_000 })).claims
      assert.strictEqual(claim?.job.id, first!.id)
      const store = yield* instance
      const found = yield* Deferred.make<void>()
      let empty = 0
      let waiting = 0
      const telling: Store = {
        ...store,
        wait: (...args) => Effect.andThen(Effect.sync(() => waiting++), store.wait(...args)).pipe(Effect.ensuring(Effect.sync(() => waiting--))),
        claim: (request) =>
          Effect.tap(store.claim(request), (claimed) => claimed.claims.length === 0 ? Effect.andThen(Effect.sync(() => empty++), Deferred.succeed(found, undefined)) : Effect.void)
      }
      yield* Effect.provideService(
        JobQueue.consume({ queues: [queue], handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))], concurrency: 4, poll: HOUR }),
        JobStore.JobStore,
        telling
      )
      yield* Effect.timeout(Deferred.await(found), "30 seconds")
      assert.strictEqual((yield* elsewhere(JobQueue.status(second!.id))).state, "queued", "held back by the cap")
      yield* Effect.timeout(listening(queue, { emptyClaims: () => empty, waiting: () => waiting > 0 }), "30 seconds")
      yield* free(claim!)
      const done = yield* elsewhere(JobQueue.await(Echo, second!.id)).pipe(
        Effect.timeout("30 seconds"),
        Effect.catchTag("TimeoutError", () => Effect.die(new Error(`a ${way} elsewhere did not start the next job`)))
      )
      assert.strictEqual(done, 1)
    }
  }).pipe(Effect.scoped)

/** Any value in and out: what a Schema lets through need not be JSON. */
const Loose = Task.make("Loose", { payload: Schema.Number, success: Schema.Any, failure: Schema.Any })
const cyclic = () => {
  const value: { self?: unknown } = {}
  value.self = value
  return value
}

/** Same name as Echo, another payload: what an old producer might have stored. */
const EchoOld = Task.make("Echo", { payload: Schema.Struct({ n: Schema.String }), success: Schema.Number, failure: Boom })

const LEASE = 3000
export const options = {
  concurrency: 2,
  lease: LEASE,
  poll: "1 second",
  retry: Schedule.exponential("1 second") as Schedule.Schedule<unknown, unknown>
} as const

/**
 * Store operations in flight. A store that does I/O (Postgres) answers in real time, after
 * `settle`'s yields: the clock moves on only once every operation started so far has answered.
 */
const inflight = { count: 0, idle: [] as Array<() => void> }
const track = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
  Effect.suspend(() => {
    inflight.count++
    return Effect.ensuring(effect, Effect.sync(() => {
      if (--inflight.count > 0) return
      const woken = inflight.idle
      inflight.idle = []
      for (const wake of woken) wake()
    }))
  })
/**
 * A store's hook, for the tests that count a consumer's claims: waits until the store hears other
 * processes' wake-ups for `queues` (Postgres: its listener's LISTENs answered) and has sent the
 * wake-up it owes its waiters when it starts to (Postgres: one look, for the jobs that came before
 * the LISTEN). A store with nothing of the kind (memory, SQLite: its file watch wakes only for other
 * connections' commits) provides none; Redis' watch has no such moment it could name (see the test).
 */
export class Listening extends Context.Service<Listening, (queues: ReadonlyArray<string>) => Effect.Effect<void>>()(
  "test/durable/Listening"
) {}

/** Waits for the store's `Listening`, if it has one. */
const listening = (queues: ReadonlyArray<string>) =>
  Effect.flatMap(Effect.serviceOption(Listening), Option.match({ onNone: () => Effect.void, onSome: (heard) => heard(queues) }))

export const tracked = (layer: Layer.Layer<JobStore.JobStore, any>) =>
  Layer.effect(
    JobStore.JobStore,
    Effect.map(JobStore.JobStore, (store): Store => ({
      ...store,
      enqueue: (job) => track(store.enqueue(job)),
      enqueueAll: (jobs) => track(store.enqueueAll(jobs)),
      get: (id) => track(store.get(id)),
      progressOf: (id) => track(store.progressOf(id)),
      list: (filter) => track(store.list(filter)),
      cancel: (id) => track(store.cancel(id)),
      redrive: (id) => track(store.redrive(id)),
      purge: (before, states) => track(store.purge(before, states)),
      retain: (batch, queues) => track(store.retain(batch, queues)),
      configure: (queue, settings) => track(store.configure(queue, settings)),
      counts: (queue) => track(store.counts(queue)),
      claim: (request) => track(store.claim(request)),
      heartbeat: (tokens, lease) => track(store.heartbeat(tokens, lease)),
      progress: (token, value) => track(store.progress(token, value)),
      settle: (token, settlement) => track(store.settle(token, settlement)),
      reap: (backoff, policies, reaped) => track(store.reap(backoff, policies, reaped))
    }))
  ).pipe(Layer.provideMerge(layer)) // the store's `Listening` too
/** Lets every fiber run, until no store operation is in flight. */
const quiesce = Effect.gen(function*() {
  while (true) {
    yield* settle
    if (inflight.count === 0) return
    yield* Effect.callback<void>((resume) => {
      if (inflight.count === 0) resume(Effect.void)
      else inflight.idle.push(() => resume(Effect.void))
    })
  }
})

/**
 * `base`'s store, which says through `idle` when its consumer found nothing and sleeps for its
 * `poll` (a consumer that waits less is waiting for a delayed job's time).
 */
export const tellingIdle = <E>(idle: Deferred.Deferred<void>, poll: number, base: Layer.Layer<JobStore.JobStore, E>) =>
  Layer.effect(
    JobStore.JobStore,
    Effect.map(JobStore.JobStore, (store): Store => ({
      ...store,
      wait: (millis, since, idleOn, tasks) =>
        Effect.andThen(millis === poll ? Deferred.succeed(idle, undefined) : Effect.void, store.wait(millis, since, idleOn, tasks))
    }))
  ).pipe(Layer.provide(base))

/** Lets the clock run `millis`, in steps, so that every timer on the way fires in order. */
export const tick = (millis: number, step = 100) =>
  Effect.gen(function*() {
    yield* quiesce
    for (let t = 0; t < millis; t += step) {
      yield* TestClock.adjust(Math.min(step, millis - t))
      yield* quiesce
    }
    yield* quiesce
  })

/**
 * A store whose heartbeats can be frozen (a SIGSTOPped process), fail (the store unreachable from
 * this process), hang (a network partition that drops packets: no reply, no error), be slow, or
 * leave some tokens unrenewed (their queue's node down), and whose claims are recorded and can be
 * answered late. Its delays are the Effect Clock's, outside the tracked store operations (`tick`
 * lets them run out).
 */
const spy = (layer: Layer.Layer<JobStore.JobStore, any>) => {
  const frozen = { value: false }
  const failing = { value: false }
  const hanging = { value: false }
  /** The next claim that takes jobs answers this many ms after the store took them (once): a server slow to answer, this process paused. */
  const claimTakes = { value: 0 }
  /** Each heartbeat reaches the store `slow[0]` ms after it is sent, and its answer comes `slow[1]` ms after that (the pairs in turn). */
  const slow: Array<readonly [number, number]> = []
  /** Tokens whose queue's node is down (a Redis Cluster): each beat leaves them unrenewed, its answer `downTakes` ms late (the store's bound for that node). */
  const down = new Set<string>()
  const downTakes = { value: 0 }
  const tokens: Array<string> = []
  /** Each claimed token's queue. */
  const queueOf = new Map<string, string>()
  /** The claims that took jobs: when they were sent (the Effect Clock), their queues and tokens. */
  const claims: Array<{ readonly at: number; readonly queues: ReadonlyArray<string>; readonly tokens: ReadonlyArray<string> }> = []
  /** The heartbeats that reached the store, the time (the Effect Clock) of the last one, and each one's time and tokens renewed. */
  const beats = { count: 0, lastAt: 0, log: [] as Array<{ readonly at: number; readonly tokens: ReadonlyArray<string> }> }
  let sent = 0
  // a sleep of 0 under the TestClock waits for the next adjust: none
  const pause = (millis: number) => millis > 0 ? Effect.sleep(millis) : Effect.void
  const wrapped = Layer.effect(
    JobStore.JobStore,
    Effect.map(JobStore.JobStore, (store): Store => ({
      ...store,
      // `at`: when the claim was sent, when the store reads its time for the claim's leases. After its
      // answer, a test's ticks while a real store's query ran (10 ms each, under load several) made
      // it later than the leases' start, and the tests' bounds of a few ms missed
      claim: (request) =>
        Effect.flatMap(Clock.currentTimeMillis, (at) =>
          Effect.flatMap(store.claim(request), (claimed) => {
            if (claimed.claims.length === 0) return Effect.succeed(claimed)
            tokens.push(...claimed.claims.map((c) => c.token))
            for (const c of claimed.claims) queueOf.set(c.token, c.job.queue)
            claims.push({ at, queues: request.queues, tokens: claimed.claims.map((c) => c.token) })
            const takes = claimTakes.value
            claimTakes.value = 0
            return Effect.as(pause(takes), claimed)
          })),
      heartbeat: (ts, lease) => {
        if (hanging.value) return Effect.never
        if (failing.value) return Effect.fail(new DurableError.StoreError({ operation: "heartbeat", reason: "unreachable" }))
        if (frozen.value) return Effect.succeed({ lost: [], cancelled: [] })
        const unrenewed = ts.filter((token) => down.has(token))
        const renewed = unrenewed.length === 0 ? ts : ts.filter((token) => !down.has(token))
        const [there, back] = slow.length === 0 ? [0, 0] : slow[sent++ % slow.length]!
        return pause(there).pipe(
          Effect.andThen(Clock.currentTimeMillis),
          Effect.flatMap((now) =>
            Effect.sync(() => {
              beats.count++
              beats.lastAt = now
              beats.log.push({ at: now, tokens: renewed })
            })
          ),
          Effect.andThen(renewed.length === 0 ? Effect.succeed({ lost: [], cancelled: [] }) : store.heartbeat(renewed, lease)),
          Effect.flatMap((beat) =>
            unrenewed.length === 0 ? Effect.as(pause(back), beat) : Effect.as(pause(back + downTakes.value), {
              ...beat,
              unrenewed: { tokens: unrenewed, error: new DurableError.StoreError({ operation: "heartbeat", reason: "its node is down" }) }
            }))
        )
      }
    }))
  ).pipe(Layer.provide(layer))
  return { frozen, failing, hanging, claimTakes, slow, down, downTakes, tokens, queueOf, claims, beats, layer: wrapped }
}

/**
 * A consumer (of the conformance options) whose one job, enqueued here, runs until interrupted:
 * returns once it has started (the clock let run in ticks until then: on a loaded machine the claim
 * can come a tick or more after the enqueue), with the count of its interruptions.
 */
const runningUntilInterrupted = Effect.gen(function*() {
  const interrupted = yield* Ref.make(0)
  const started = yield* Deferred.make<void>()
  yield* JobQueue.consume({
    ...options,
    handlers: [Task.handle(Echo, () =>
      Effect.andThen(
        Deferred.succeed(started, undefined),
        Effect.never.pipe(Effect.onInterrupt(() => Ref.update(interrupted, (n) => n + 1)))
      ))]
  })
  const job = yield* JobQueue.enqueue(Echo, { n: 1 })
  for (let n = 0; !(yield* Deferred.isDone(started)); n++) {
    assert.isBelow(n, 100, "the job started")
    yield* tick(100)
  }
  return { interrupted, job }
})

/** A handler that counts its starts and records when each job (by its `n`) was interrupted; it never ends. */
const heldForever = Effect.gen(function*() {
  const started = yield* Ref.make(0)
  const interruptedAt = new Map<number, number>()
  const handler = Task.handle(Echo, ({ n }) =>
    Effect.andThen(
      Ref.update(started, (k) => k + 1),
      Effect.never.pipe(Effect.onInterrupt(() =>
        Effect.flatMap(Clock.currentTimeMillis, (at) => Effect.sync(() => void interruptedAt.set(n, at)))
      ))
    ))
  return { handler, started, interruptedAt }
})

/** Lets the clock run in ticks of `step` until `done` (at most `limit` ms: a loaded machine's store answers a tick or more late). */
const tickUntil = (done: Effect.Effect<boolean>, what: string, step = 100, limit = 10_000) =>
  Effect.gen(function*() {
    for (let t = 0; !(yield* done); t += step) {
      assert.isBelow(t, limit, what)
      yield* tick(step, step)
    }
  })

/** Lets the clock run to `at` (the Effect Clock's time), in steps of `step`. */
const tickTo = (at: number, step = 100) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => at > now ? tick(at - now, step) : Effect.void)

/** A handler that reports progress 1 of 2, waits for `gate`, reports 2 of 2 and returns its `n`. */
const twoSteps = (gate: Deferred.Deferred<void>) =>
  Task.handle(Echo, ({ n }) =>
    Effect.gen(function*() {
      const job = yield* WorkPool.JobContext
      yield* job.progress({ done: 1, of: 2 })
      yield* Deferred.await(gate)
      yield* job.progress({ done: 2, of: 2 })
      return n
    }))

/** A handler that reports its payload as its progress and returns its `n`. */
const reportThenEcho = Task.handle(Echo, ({ n }) =>
  Effect.gen(function*() {
    yield* (yield* WorkPool.JobContext).progress({ n })
    return n
  }))

const stateOf = (id: string) => Effect.map(JobQueue.status(id), (job) => job.state)

export const conformance = (name: string, makeStore: () => Layer.Layer<JobStore.JobStore, any>) =>
  describe(`durable jobs on ${name}`, () => {
    const makeLayer = () => tracked(makeStore())
    const provide = <A, E>(effect: Effect.Effect<A, E, JobStore.JobStore | import("effect/Scope").Scope>) =>
      Effect.provide(effect, makeLayer())

    it.effect("a job's typed result, failure and defect reach its awaiter, decoded from the store", () =>
      provide(Effect.gen(function*() {
        yield* JobQueue.consume({
          ...options,
          handlers: [Task.handle(Echo, ({ n }) =>
            n === 1 ? Effect.fail(new Boom({ n })) : n === 2 ? Effect.die(new RangeError("too far")) : Effect.succeed(n * 10))]
        })
        const ok = yield* JobQueue.enqueue(Echo, { n: 4 })
        const failed = yield* JobQueue.enqueue(Echo, { n: 1 }, { maxAttempts: 1 })
        const died = yield* JobQueue.enqueue(Echo, { n: 2 }, { maxAttempts: 1 })
        assert.strictEqual(yield* ok.await, 40)
        const failure = yield* Effect.flip(failed.await)
        assert.instanceOf(failure, Boom)
        assert.strictEqual((failure as Boom).n, 1)
        const defect = yield* Effect.exit(died.await)
        assert.isTrue(Exit.isFailure(defect) && Cause.hasDies(defect.cause))
        const error = Exit.isFailure(defect) ? Cause.squash(defect.cause) as Error : undefined
        assert.strictEqual(error?.name, "RangeError")
        assert.strictEqual(error?.message, "too far")
        assert.deepStrictEqual(
          [yield* stateOf(ok.id), yield* stateOf(failed.id), yield* stateOf(died.id)],
          ["succeeded", "dead", "dead"]
        )
        // any process can await by id, with the task's Schemas
        assert.strictEqual(yield* JobQueue.await(Echo, ok.id), 40)
      })))

    it.effect("a success whose encoded value looks like a stored error is still a success", () =>
      provide(Effect.gen(function*() {
        const Tagged = Task.make("Tagged", {
          payload: Schema.Number,
          success: Schema.Struct({ _tag: Schema.String, error: Schema.Number })
        })
        yield* JobQueue.consume({ ...options, handlers: [Task.handle(Tagged, (n) => Effect.succeed({ _tag: "Error", error: n }))] })
        const job = yield* JobQueue.enqueue(Tagged, 1)
        assert.deepStrictEqual(yield* job.await, { _tag: "Error", error: 1 })
        assert.strictEqual(yield* stateOf(job.id), "succeeded")
      })))

    it.effect("a handle or await with another task than the job's fails typed naming both (queued: at once, not when it ends; ended: not a defect); status and progressChanges still read the job", () =>
      provide(Effect.gen(function*() {
        const Thumbnail = Task.make("Thumbnail", { payload: Schema.String, success: Schema.String })
        // a fiber that is still waiting after a second of the clock is the hang this guards against
        const mismatch = (id: string, awaited: Effect.Effect<unknown, unknown, JobStore.JobStore>) =>
          Effect.gen(function*() {
            const fiber = yield* Effect.forkChild(awaited)
            yield* tick(1000)
            const exit = fiber.pollUnsafe()
            assert.isDefined(exit, "the await still waits")
            if (exit === undefined || Exit.isSuccess(exit)) return assert.fail("the await did not fail")
            assert.isFalse(Cause.hasDies(exit.cause), `a defect: ${Cause.pretty(exit.cause)}`)
            const error = Cause.findErrorOption(exit.cause)
            assert.isTrue(Option.isSome(error))
            assert.instanceOf(Option.getOrThrow(error), DurableError.TaskMismatch)
            const found = Option.getOrThrow(error) as DurableError.TaskMismatch
            assert.deepStrictEqual([found.id, found.task, found.expected], [id, "Echo", "Thumbnail"])
            assert.strictEqual(found.message, `job ${id}: its task "Echo" is not "Thumbnail"`)
          })
        const queued = yield* JobQueue.enqueue(Echo, { n: 5 })
        yield* mismatch(queued.id, JobQueue.handleOf(Thumbnail, queued.id).await)
        yield* mismatch(queued.id, JobQueue.await(Thumbnail, queued.id))
        // an untyped caller's task that is not a Task: the same error, saying what was given
        for (const given of [undefined, 42, { name: 7 }]) {
          const error = yield* Effect.flip(JobQueue.await(given as any, queued.id))
          assert.instanceOf(error, DurableError.TaskMismatch)
          assert.match((error as DurableError.TaskMismatch).expected, /not a Task made with Task\.make/)
        }
        assert.instanceOf(yield* Effect.flip(JobQueue.await(Thumbnail, "nope")), DurableError.JobNotFound)
        yield* JobQueue.consume({ ...options, handlers: [reportThenEcho] })
        assert.strictEqual(yield* queued.await, 5)
        yield* mismatch(queued.id, JobQueue.handleOf(Thumbnail, queued.id).await)
        const wrong = JobQueue.handleOf(Thumbnail, queued.id)
        assert.strictEqual((yield* wrong.status).task, "Echo")
        assert.deepStrictEqual(yield* Stream.runCollect(wrong.progressChanges), [{ n: 5 }])
      })))

    it.effect("1. a job whose consumer stops renewing its lease is reaped and run again; the zombie is interrupted and its settle changes nothing", () =>
      Effect.gen(function*() {
        const store = spy(makeLayer())
        yield* Effect.gen(function*() {
          const runs = yield* Ref.make<Array<string>>([])
          yield* JobQueue.consume({
            ...options,
            handlers: [Task.handle(Echo, ({ n }) =>
              Effect.gen(function*() {
                // counts starts only: the zombie's interruption may be recorded before the second start
                // (the reaper's claim and the thawed heartbeat's news race on a real server)
                const attempt = (yield* Ref.get(runs)).filter((run) => run.startsWith("start")).length + 1
                yield* Ref.update(runs, (r) => [...r, `start ${attempt}`])
                if (attempt === 1) {
                  return yield* Effect.never.pipe(Effect.onInterrupt(() => Ref.update(runs, (r) => [...r, "zombie interrupted"])))
                }
                return n + attempt
              }))]
          })
          const job = yield* JobQueue.enqueue(Echo, { n: 100 })
          yield* tick(100)
          assert.deepStrictEqual(yield* Ref.get(runs), ["start 1"])
          const zombieToken = store.tokens[0]!
          // the process freezes: no heartbeat; its lease expires and a reaper takes the job back
          store.frozen.value = true
          yield* tick(LEASE + LEASE / 2 + 1000)
          store.frozen.value = false
          yield* tick(LEASE)
          assert.strictEqual(yield* job.await, 102)
          const runsNow = yield* Ref.get(runs)
          assert.include(runsNow, "zombie interrupted")
          assert.include(runsNow, "start 2")
          const info = yield* JobQueue.status(job.id)
          assert.strictEqual(info.attempts, 2)
          // the zombie's token no longer holds the job: its settle writes nothing
          const raw = yield* JobStore.JobStore
          assert.isFalse(yield* raw.settle(zombieToken, { _tag: "Final", state: "dead", exit: null }))
          assert.strictEqual(yield* stateOf(job.id), "succeeded")
        }).pipe(Effect.provide(store.layer))
      }))

    it.effect("1. a consumer whose heartbeats fail for a whole lease interrupts its jobs: another consumer may run them by then", () =>
      Effect.gen(function*() {
        const store = spy(makeLayer())
        const { logged, collector } = warnings()
        yield* Effect.gen(function*() {
          // the lease counts from the claim: the beats must fail only once the job runs
          const { interrupted, job } = yield* runningUntilInterrupted
          store.failing.value = true
          yield* tick(LEASE - LEASE / 3 - 100)
          assert.strictEqual(yield* Ref.get(interrupted), 0)
          yield* tick(LEASE / 3 + 200)
          assert.strictEqual(yield* Ref.get(interrupted), 1)
          assert.strictEqual(yield* stateOf(job.id), "running") // its lease, not this consumer, decides now
          // said as the store's failure, not as this process paused: the lease ends at the look before
          // the next beat, after the failed one, which named the pause
          assert.isTrue(logged.some((message) => message.includes("could not be renewed")), logged.join("\n"))
          assert.isFalse(logged.some((message) => message.includes("paused")), logged.join("\n"))
        }).pipe(Effect.provide(store.layer), Effect.provide(Logger.layer([collector])))
      }))

    it.effect("1. a consumer woken early by a cancel request, its beat failing, still gives its jobs up when their lease ends, not a beat's spacing later", () =>
      Effect.gen(function*() {
        const store = spy(makeLayer())
        yield* Effect.gen(function*() {
          const { interrupted, job } = yield* runningUntilInterrupted
          // a beat renews the running job's lease: its lease ends a lease after it
          const before = store.beats.count
          for (let n = 0; store.beats.count === before; n++) {
            assert.isBelow(n, 100, "a beat came")
            yield* tick(100)
          }
          store.failing.value = true
          const ends = store.beats.lastAt + LEASE
          yield* tick(ends - 200 - (yield* Clock.currentTimeMillis))
          // the cancel wakes the beat at once; it fails, 200 ms before the lease's end
          assert.strictEqual(yield* JobQueue.cancel(job.id), "requested")
          yield* tick(100)
          assert.strictEqual(yield* Ref.get(interrupted), 0)
          // old: the next beat came a third of a lease after the early one, 800 ms past the end
          yield* tick(200)
          assert.strictEqual(yield* Ref.get(interrupted), 1, "given up at its lease's end")
        }).pipe(Effect.provide(store.layer))
      }))

    it.effect("1. a consumer whose heartbeat hangs (no reply, no error) interrupts its jobs when their lease would end", () =>
      Effect.gen(function*() {
        const store = spy(makeLayer())
        yield* Effect.gen(function*() {
          const interrupted = yield* Ref.make(0)
          yield* JobQueue.consume({
            ...options,
            // job 1 hangs on its first run only: taken back by the reaper later, it ends
            handlers: [Task.handle(Echo, ({ n }) =>
              Effect.flatMap(Ref.get(interrupted), (times) =>
                n === 1 && times === 0 ? Effect.never.pipe(Effect.onInterrupt(() => Ref.update(interrupted, (n) => n + 1))) : Effect.succeed(n)))]
          })
          yield* JobQueue.enqueue(Echo, { n: 1 })
          yield* tick(100)
          store.hanging.value = true
          yield* tick(LEASE - LEASE / 3 - 100)
          assert.strictEqual(yield* Ref.get(interrupted), 0)
          yield* tick(LEASE / 3 + 200)
          assert.strictEqual(yield* Ref.get(interrupted), 1, "its lease ran out while the heartbeat waited for an answer")
          // the heartbeat answers again: the consumer goes on
          store.hanging.value = false
          const next = yield* JobQueue.enqueue(Echo, { n: 2 })
          yield* tick(LEASE)
          assert.strictEqual(yield* next.await, 2)
        }).pipe(Effect.provide(store.layer))
      }))

    it.effect("1. a claim answered after its lease ended (a server that answered late, this process paused), its job meanwhile taken back and run by another consumer: not started a second time", () =>
      Effect.gen(function*() {
        const store = spy(makeLayer())
        yield* Effect.gen(function*() {
          const late = yield* heldForever
          const other = yield* heldForever
          const common = { ...options, shutdownTimeout: 0, retry: Schedule.spaced("10 millis") }
          yield* JobQueue.consume({ ...common, handlers: [late.handler] })
          yield* tick(100)
          // its claim takes the job now; its answer comes 8 s later, 5 s after the lease's end
          store.claimTakes.value = 8000
          const job = yield* JobQueue.enqueue(Echo, { n: 1 })
          yield* tickUntil(Effect.sync(() => store.claims.length === 1), "the job was claimed", 10)
          const claimedAt = store.claims[0]!.at
          yield* JobQueue.consume({ ...common, handlers: [other.handler] })
          // a reaper takes the job back past its lease (by 4.5 s); the other consumer claims and runs it
          yield* tickTo(claimedAt + 8000 - 100)
          assert.deepStrictEqual([yield* Ref.get(other.started), yield* Ref.get(late.started)], [1, 0])
          // the late answer: old, the job started here too, two runs at once until this consumer's next beat
          yield* tick(1000)
          assert.strictEqual(yield* Ref.get(late.started), 0, "started on a lease that had ended")
          assert.strictEqual(yield* stateOf(job.id), "running")
          assert.strictEqual(other.interruptedAt.size, 0)
        }).pipe(Effect.provide(store.layer))
      }))

    it.effect("1. a claim answered 700 ms late, then heartbeats failing: its job is given up when its lease (from the claim) ends, not a lease after a later look of the heartbeat", () =>
      Effect.gen(function*() {
        const store = spy(makeLayer())
        yield* Effect.gen(function*() {
          const held = yield* heldForever
          // the heartbeat loop, idle, looks every lease / 3 (1 s) from here
          const from = yield* Clock.currentTimeMillis
          yield* JobQueue.consume({ ...options, shutdownTimeout: 0, handlers: [held.handler] })
          yield* tick(400)
          // late by less than a third of a lease (which a renewal beat before its start would take),
          // with room for the ticks while a real store's query runs
          store.claimTakes.value = 700
          yield* JobQueue.enqueue(Echo, { n: 1 })
          yield* tickUntil(Effect.sync(() => store.claims.length === 1), "the job was claimed", 10)
          const claimedAt = store.claims[0]!.at
          // answered after the idle loop's look at 1000
          assert.isAbove(claimedAt + 700, from + 1000)
          yield* tickUntil(Effect.map(Ref.get(held.started), (n) => n === 1), "the job started", 10)
          store.failing.value = true
          // its lease ends a lease after its claim: given up then (old: a lease after the look at 1000)
          yield* tickTo(claimedAt + LEASE - 100)
          yield* tickTo(claimedAt + LEASE - 10, 10)
          assert.strictEqual(held.interruptedAt.size, 0)
          yield* tickTo(claimedAt + LEASE + 10, 10)
          const at = held.interruptedAt.get(1)
          assert.isDefined(at, "given up at its lease's end")
          assert.isAtLeast(at! - claimedAt, LEASE)
        }).pipe(Effect.provide(store.layer))
      }))

    it.effect("1. heartbeats that each take 1.4 s of a 3 s lease (0.3 or 0.7 s to reach the store, the rest back): the consumer keeps its job, renewed in time, never given up as lost", () =>
      Effect.gen(function*() {
        const store = spy(makeLayer())
        yield* Effect.gen(function*() {
          const held = yield* heldForever
          yield* JobQueue.consume({ ...options, shutdownTimeout: 0, handlers: [held.handler] })
          const job = yield* JobQueue.enqueue(Echo, { n: 1 })
          yield* tickUntil(Effect.map(Ref.get(held.started), (n) => n === 1), "the job started")
          store.slow.push([300, 1100], [700, 700])
          // old: the next beat went a third of a lease after the last one's answer, 2.4 s after it was
          // sent; its answer came 3.8 s after the last renewal the consumer could count on, so it
          // timed out at the lease's end and the job was given up as lost, the store healthy
          yield* tick(20_000)
          assert.strictEqual(held.interruptedAt.size, 0, "given up as lost")
          const renewals = store.beats.log.map((beat) => beat.at)
          const gaps = renewals.slice(1).map((at, n) => at - renewals[n]!)
          assert.isAtLeast(renewals.length, 10)
          assert.isAtMost(Math.max(...gaps), LEASE, `renewed at ${renewals.join(", ")}`)
          const info = yield* JobQueue.status(job.id)
          assert.deepStrictEqual([info.state, info.attempts], ["running", 1])
        }).pipe(Effect.provide(store.layer))
      }))

    it.effect("1. a job whose queue's node is down (each beat's part for it taking 800 ms to fail, the other queue's renewed): given up when its lease ends, not a beat's answer later; the other queue's job runs on", () =>
      Effect.gen(function*() {
        const store = spy(makeLayer())
        yield* Effect.gen(function*() {
          const held = yield* heldForever
          yield* JobQueue.consume({ ...options, shutdownTimeout: 0, queues: ["up", "down"], handlers: [held.handler] })
          yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "up" })
          yield* JobQueue.enqueue(Echo, { n: 2 }, { queue: "down" })
          yield* tickUntil(Effect.map(Ref.get(held.started), (n) => n === 2), "both jobs started")
          // a beat renews both; then the down queue's node goes
          const before = store.beats.count
          yield* tickUntil(Effect.sync(() => store.beats.count > before), "a beat came", 10)
          const renewed = store.beats.lastAt
          for (const [token, queue] of store.queueOf) if (queue === "down") store.down.add(token)
          assert.strictEqual(store.down.size, 1)
          store.downTakes.value = 800
          yield* tickTo(renewed + LEASE - 100)
          yield* tickTo(renewed + LEASE - 10, 10)
          assert.strictEqual(held.interruptedAt.size, 0)
          // old: the beat at its lease's end went out first, and its answer (800 ms) came before the job was given up
          yield* tickTo(renewed + LEASE + 10, 10)
          assert.deepStrictEqual([...held.interruptedAt.keys()], [2], "given up at its lease's end")
          assert.isAtLeast(held.interruptedAt.get(2)! - renewed, LEASE)
          yield* tick(5000)
          assert.deepStrictEqual([...held.interruptedAt.keys()], [2], "the up queue's job runs on")
        }).pipe(Effect.provide(store.layer))
      }))

    it.effect("1. a job given up as lost whose finalizer still runs does not stretch the next beat's bound: another job's heartbeat that gets no answer fails at that job's lease's end", () =>
      Effect.gen(function*() {
        const store = spy(makeLayer())
        const release = yield* Deferred.make<void>()
        yield* Effect.gen(function*() {
          const interruptedAt = new Map<number, number>()
          const handler = Task.handle(Echo, ({ n }) =>
            Effect.never.pipe(Effect.onInterrupt(() =>
              Effect.flatMap(Clock.currentTimeMillis, (at) => Effect.sync(() => void interruptedAt.set(n, at))).pipe(
                // the first job's finalizer takes its time (a flush, a thread's grace)
                Effect.andThen(n === 1 ? Deferred.await(release) : Effect.void)
              )
            )))
          yield* JobQueue.consume({ ...options, shutdownTimeout: 0, handlers: [handler] })
          yield* JobQueue.enqueue(Echo, { n: 1 })
          yield* tickUntil(Effect.sync(() => store.claims.length === 1), "the first job was claimed", 10)
          // its beats fail for a lease: given up as lost, its finalizer still running
          store.failing.value = true
          yield* tickUntil(Effect.sync(() => interruptedAt.has(1)), "the first job was given up")
          // a second job, claimed half a beat's spacing after that (the beats go on from the give-up),
          // so that one of its beats goes out in its lease's last third; then the beats get no answer
          yield* tick(500)
          yield* JobQueue.enqueue(Echo, { n: 2 })
          yield* tickUntil(Effect.sync(() => store.claims.length === 2), "the second job was claimed", 10)
          const claimedAt = store.claims[1]!.at
          store.failing.value = false
          store.hanging.value = true
          yield* tickTo(claimedAt + LEASE - 100)
          yield* tickTo(claimedAt + LEASE - 10, 10)
          assert.isFalse(interruptedAt.has(2))
          // old: the beat's bound was a third of a lease (the first job's lease had ended), not what was left of the second's
          yield* tickTo(claimedAt + LEASE + 10, 10)
          assert.isTrue(interruptedAt.has(2), "given up at its lease's end")
          assert.isAtLeast(interruptedAt.get(2)! - claimedAt, LEASE)
        }).pipe(Effect.ensuring(Deferred.succeed(release, undefined)), Effect.provide(store.layer))
      }))

    it.effect("1. a dead consumer's job is taken back by another consumer's reaper (the attempt counts)", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { maxAttempts: 2 })
        // a consumer claims it and dies (kill -9): nobody renews, nobody settles
        const [claim] = (yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 1, lease: LEASE })).claims
        assert.strictEqual(claim?.job.id, job.id)
        yield* JobQueue.consume({ ...options, handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))] })
        yield* tick(LEASE - 500)
        assert.strictEqual(yield* stateOf(job.id), "running")
        yield* tick(LEASE + 2000)
        assert.strictEqual(yield* job.await, 1)
        assert.strictEqual((yield* JobQueue.status(job.id)).attempts, 2)
      })))

    it.effect("1. settles and heartbeats are fenced by the claim's token: a stale claim writes nothing", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const job = yield* JobQueue.enqueue(Echo, { n: 1 })
        const claim = (limit = 1) =>
          Effect.map(store.claim({ queues: ["default"], tasks: ["Echo"], limit, lease: LEASE }), (claimed) => claimed.claims)
        const [stale] = yield* claim()
        yield* TestClock.adjust(LEASE + 1)
        assert.strictEqual(yield* store.reap([0]), 1)
        const [fresh] = yield* claim()
        assert.strictEqual(fresh?.job.attempts, 2)
        assert.notStrictEqual(fresh?.token, stale?.token)
        const exit = JSON.stringify({ _tag: "Success", value: 1 })
        assert.isFalse(yield* store.settle(stale!.token, { _tag: "Final", state: "succeeded", exit }))
        assert.isFalse(yield* store.settle(stale!.token, { _tag: "Release" }))
        assert.deepStrictEqual(yield* store.heartbeat([stale!.token, fresh!.token], LEASE), { lost: [stale!.token], cancelled: [] })
        assert.strictEqual(yield* stateOf(job.id), "running")
        assert.isTrue(yield* store.settle(fresh!.token, { _tag: "Final", state: "succeeded", exit: JSON.stringify({ _tag: "Success", value: 2 }) }))
        assert.isFalse(yield* store.settle(fresh!.token, { _tag: "Final", state: "dead", exit }))
        assert.strictEqual(yield* JobQueue.await(Echo, job.id), 2)
      })))

    it.effect("1. a settle says how it ended the job: a retry, release or snooze of a job whose cancel was asked for while it ran is \"cancelled\" (a consumer tells Cancelled), whether written alone or carried by a claim", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const exit = JSON.stringify({ _tag: "Failure", cause: [] })
        const settlements: ReadonlyArray<Settlement> = [
          { _tag: "Retry", delay: 60_000, exit },
          { _tag: "Release" },
          { _tag: "Release", delay: 60_000 },
          { _tag: "Final", state: "succeeded", exit: JSON.stringify({ _tag: "Success", value: 0 }) }
        ]
        // twice: the settles alone, then settled while a claim is made (a store may carry them in it)
        for (const carried of [false, true]) {
          const asked = yield* JobQueue.enqueueAll(Echo, settlements.map((_, n) => ({ payload: { n } })), { maxAttempts: 3 })
          const plain = yield* JobQueue.enqueueAll(Echo, settlements.map((_, n) => ({ payload: { n } })), { maxAttempts: 3 })
          const { claims } = yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 100, lease: LEASE })
          const tokenOf = new Map(claims.map((claim) => [claim.job.id, claim.token]))
          for (const job of asked) assert.strictEqual(yield* JobQueue.cancel(job.id), "requested")
          const settles = Effect.all(
            [...asked, ...plain].map((job, i) => store.settle(tokenOf.get(job.id)!, settlements[i % settlements.length]!)),
            { concurrency: "unbounded" }
          )
          const said = carried
            ? (yield* Effect.all([settles, store.claim({ queues: ["default"], tasks: ["Nobody"], limit: 1, lease: LEASE })], { concurrency: "unbounded" }))[0]
            : yield* settles
          // a final settle ends the job as asked, cancel or not: its result stands
          assert.deepStrictEqual(said, ["cancelled", "cancelled", "cancelled", true, true, true, true, true], `carried: ${carried}`)
          const states = yield* Effect.forEach([...asked, ...plain], (job) => stateOf(job.id))
          assert.deepStrictEqual(states, ["cancelled", "cancelled", "cancelled", "succeeded", "delayed", "queued", "delayed", "succeeded"])
          // a stale token: nothing written, whatever was asked
          for (const settlement of settlements) assert.isFalse(yield* store.settle(tokenOf.get(asked[0]!.id)!, settlement))
        }
      })))

    it.effect("1. out of attempts, a reaped job is dead with LeaseExpired", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { maxAttempts: 1 })
        yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 1, lease: LEASE })
        yield* TestClock.adjust(LEASE + 1)
        assert.strictEqual(yield* store.reap([0]), 1)
        const error = yield* Effect.flip(job.await)
        assert.instanceOf(error, DurableError.LeaseExpired)
        assert.deepStrictEqual((yield* JobQueue.list({ state: "dead" })).map((j) => j.id), [job.id])
      })))

    it.effect("1/2. a job taken back from a dead consumer waits its own retry's delay: its backoff (rounded to a millisecond), its named policy's, else the consumer's", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const jobs = {
          plain: yield* JobQueue.enqueue(Echo, { n: 1 }),
          fixed: yield* JobQueue.enqueue(Echo, { n: 2 }, { retry: { fixed: "40 seconds" } }),
          halfMilli: yield* JobQueue.enqueue(Echo, { n: 3 }, { retry: { exponential: "1000.5 millis" } }),
          capped: yield* JobQueue.enqueue(Echo, { n: 4 }, { retry: { exponential: "1 minute", max: "30 seconds" } }),
          named: yield* JobQueue.enqueue(Echo, { n: 5 }, { retry: "slow" }),
          unknown: yield* JobQueue.enqueue(Echo, { n: 6 }, { retry: "nobody-registers-this" })
        }
        // a consumer claims them all and dies
        assert.strictEqual((yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 10, lease: LEASE })).claims.length, 6)
        yield* TestClock.adjust(LEASE + 1)
        const reapedAt = yield* store.now
        assert.strictEqual(yield* store.reap([20_000, 25_000], { slow: [45_000, 50_000] }), 6)
        const waits: Record<string, number> = {}
        for (const [name, job] of Object.entries(jobs)) {
          const info = yield* JobQueue.status(job.id)
          assert.strictEqual(info.state, "delayed", name)
          waits[name] = info.visibleAt.getTime() - reapedAt
        }
        assert.deepStrictEqual(waits, { plain: 20_000, fixed: 40_000, halfMilli: 1001, capped: 30_000, named: 45_000, unknown: 20_000 })
      })))

    it.effect("1/2. a reaped job's backoff grows with its attempts by the same formula as a failed attempt's retry", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { maxAttempts: 5, retry: { exponential: "500 millis", factor: 1.5 } })
        const waits: Array<number> = []
        for (let attempt = 1; attempt <= 4; attempt++) {
          const [claim] = (yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 1, lease: LEASE })).claims
          assert.strictEqual(claim?.job.attempts, attempt)
          yield* TestClock.adjust(LEASE + 1)
          const reapedAt = yield* store.now
          assert.strictEqual(yield* store.reap([0]), 1)
          const visibleAt = (yield* JobQueue.status(job.id)).visibleAt.getTime()
          waits.push(visibleAt - reapedAt)
          yield* TestClock.adjust(visibleAt - reapedAt)
        }
        // 500 × 1.5^(attempts − 1), the last one rounded half up: 1687.5 ms is 1688
        assert.deepStrictEqual(waits, [500, 750, 1125, 1688])
      })))

    it.effect("1/2. a consumer's reaper gives a taken-back job its own retry: a backoff, or a policy of its retryPolicies", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const fixed = yield* JobQueue.enqueue(Echo, { n: 1 }, { retry: { fixed: "9 seconds" } })
        const named = yield* JobQueue.enqueue(Echo, { n: 2 }, { retry: "slow" })
        const plain = yield* JobQueue.enqueue(Echo, { n: 3 })
        const claimedAt = yield* store.now
        assert.strictEqual((yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 3, lease: LEASE })).claims.length, 3)
        // a consumer that runs none of them (another task), but reaps every queue's expired leases
        const Other = Task.make("Other", { payload: Schema.Number, success: Schema.Number })
        yield* JobQueue.consume({
          ...options,
          // a delay of a fraction of a millisecond: in the reaper's list as on a retry, rounded half up
          retry: Schedule.spaced("1000.5 millis"),
          retryPolicies: { slow: Schedule.spaced("7 seconds") },
          handlers: [Task.handle(Other, Effect.succeed)]
        })
        yield* tick(LEASE + LEASE / 2 + 200)
        const wait = (job: JobQueue.JobHandle<number, Boom>) => Effect.map(job.status, (info) => info.visibleAt.getTime() - claimedAt)
        // reaped between LEASE and LEASE × 1.5 after the claim (the reaper runs every lease / 2)
        const within = (actual: number, delay: number, label: string) =>
          assert.isTrue(actual > LEASE + delay && actual <= LEASE * 1.5 + 200 + delay, `${label}: visible ${actual} ms after the claim`)
        within(yield* wait(fixed), 9000, "its own backoff")
        within(yield* wait(named), 7000, "its named policy")
        within(yield* wait(plain), 1001, "the consumer's retry")
      })))

    it.effect("2. a failed attempt is retried after the schedule's delay for its stored attempt count", () =>
      provide(Effect.gen(function*() {
        const starts = yield* Ref.make<Array<number>>([])
        yield* JobQueue.consume({
          ...options,
          handlers: [Task.handle(Echo, ({ n }) =>
            Effect.gen(function*() {
              const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
              const count = (yield* Ref.updateAndGet(starts, (s) => [...s, now])).length
              return count < 3 ? yield* Effect.fail(new Boom({ n })) : n
            }))]
        })
        const job = yield* JobQueue.enqueue(Echo, { n: 7 }, { maxAttempts: 5 })
        yield* tick(500)
        assert.strictEqual(yield* stateOf(job.id), "delayed")
        assert.strictEqual((yield* JobQueue.status(job.id)).attempts, 1)
        yield* tick(5000)
        assert.strictEqual(yield* job.await, 7)
        const [a, b, c] = yield* Ref.get(starts)
        // exponential from 1 s: 1 s after attempt 1, 2 s after attempt 2 (claimed within a poll)
        assert.isTrue(b! - a! >= 1000 && b! - a! < 1000 + 1000 + 200, `first retry after ${b! - a!} ms`)
        assert.isTrue(c! - b! >= 2000 && c! - b! < 2000 + 1000 + 200, `second retry after ${c! - b!} ms`)
        assert.strictEqual((yield* JobQueue.status(job.id)).attempts, 3)
      })))

    it.effect("2. a retry delay that is not a whole number of milliseconds waits it rounded half up, on every store (the reaper computes the same)", () =>
      provide(Effect.gen(function*() {
        const starts = yield* Ref.make<Array<number>>([])
        yield* JobQueue.consume({
          ...options,
          retry: Schedule.spaced("1500.5 millis"),
          handlers: [Task.handle(Echo, ({ n }) =>
            Effect.gen(function*() {
              const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
              const count = (yield* Ref.updateAndGet(starts, (s) => [...s, now])).length
              return count < 2 ? yield* Effect.fail(new Boom({ n })) : n
            }))]
        })
        const job = yield* JobQueue.enqueue(Echo, { n: 7 })
        yield* tick(300)
        const failedAt = (yield* Ref.get(starts))[0]!
        const info = yield* JobQueue.status(job.id)
        assert.strictEqual(info.state, "delayed")
        assert.strictEqual(info.visibleAt.getTime() - failedAt, 1501)
        yield* tick(3000)
        assert.strictEqual(yield* job.await, 7)
      })))

    it.effect("2. the retry policy's times and while bound the retries, as for WorkPool", () =>
      provide(Effect.gen(function*() {
        const runs = yield* Ref.make(0)
        yield* JobQueue.consume({
          ...options,
          retry: { schedule: Schedule.spaced("1 second"), times: 1, while: (error) => !(error instanceof Boom && error.n === 0) },
          handlers: [Task.handle(Echo, ({ n }) => Effect.andThen(Ref.update(runs, (r) => r + 1), Effect.fail(new Boom({ n }))))]
        })
        const notRetried = yield* JobQueue.enqueue(Echo, { n: 0 }, { maxAttempts: 5 })
        const retriedOnce = yield* JobQueue.enqueue(Echo, { n: 1 }, { maxAttempts: 5 })
        yield* tick(5000)
        assert.deepStrictEqual(
          [(yield* JobQueue.status(notRetried.id)).attempts, (yield* JobQueue.status(retriedOnce.id)).attempts, yield* Ref.get(runs)],
          [1, 2, 3]
        )
        assert.deepStrictEqual([yield* stateOf(notRetried.id), yield* stateOf(retriedOnce.id)], ["dead", "dead"])
        const bad = yield* Effect.flip(JobQueue.consume({ ...options, retry: { times: -1 }, handlers: [Task.handle(Echo, () => Effect.succeed(1))] }))
        assert.strictEqual(bad.field, "retry.times")
      })))

    it.effect("2. a job's own retry (from its producer) wins over the consumer's: a backoff, or a policy the consumers register by name", () =>
      provide(Effect.gen(function*() {
        const starts = yield* Ref.make(new Map<number, Array<number>>())
        // two consumers, as in two processes: whichever retries, the delay is the job's
        for (let i = 0; i < 2; i++) {
          yield* JobQueue.consume({
            ...options,
            concurrency: 4,
            retryPolicies: { slow: Schedule.spaced("3 seconds") },
            handlers: [Task.handle(Echo, ({ n }) =>
              Effect.gen(function*() {
                const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
                const seen = yield* Ref.modify(starts, (m) => {
                  const list = [...(m.get(n) ?? []), now]
                  return [list.length, new Map(m).set(n, list)]
                })
                return seen < 3 ? yield* Effect.fail(new Boom({ n })) : n
              }))]
          })
        }
        const fixed = yield* JobQueue.enqueue(Echo, { n: 1 }, { retry: { fixed: "5 seconds" } })
        const exponential = yield* JobQueue.enqueue(Echo, { n: 2 }, { retry: { exponential: "2 seconds", factor: 3, max: "4 seconds" } })
        const named = yield* JobQueue.enqueue(Echo, { n: 3 }, { retry: "slow" })
        const unknown = yield* JobQueue.enqueue(Echo, { n: 4 }, { retry: "nobody-registers-this" })
        const plain = yield* JobQueue.enqueue(Echo, { n: 5 })
        assert.deepStrictEqual(
          yield* Effect.forEach([fixed, exponential, named, unknown, plain], (job) => Effect.map(job.status, (info) => info.retry)),
          [{ fixed: 5000 }, { exponential: 2000, factor: 3, max: 4000 }, "slow", "nobody-registers-this", undefined]
        )
        yield* tick(20_000)
        assert.deepStrictEqual(
          yield* Effect.forEach([fixed, exponential, named, unknown, plain], (job) => job.await),
          [1, 2, 3, 4, 5]
        )
        const gaps = (n: number) =>
          Effect.map(Ref.get(starts), (m) => {
            const [a, b, c] = m.get(n)!
            return [b! - a!, c! - b!]
          })
        // each retry is claimed within a poll (1 s) of its time
        const near = (actual: ReadonlyArray<number>, expected: ReadonlyArray<number>, label: string) =>
          actual.forEach((gap, i) => assert.isTrue(gap >= expected[i]! && gap < expected[i]! + 1000 + 200, `${label}: retry ${i + 1} after ${gap} ms`))
        near(yield* gaps(1), [5000, 5000], "fixed")
        near(yield* gaps(2), [2000, 4000], "exponential, capped at max")
        near(yield* gaps(3), [3000, 3000], "named policy")
        // a name no consumer registers: the consumer's own retry (exponential from 1 s), not lost
        near(yield* gaps(4), [1000, 2000], "unknown name")
        near(yield* gaps(5), [1000, 2000], "consumer's default")
      })))

    it.effect("2. a job's own retry is checked when it is enqueued: a typed error naming the field, nothing stored", () =>
      provide(Effect.gen(function*() {
        const bad = [
          [{ retry: "" }, "retry"],
          [{ retry: 5 }, "retry"],
          [{ retry: Schedule.spaced("1 second") }, "retry"],
          [{ retry: { exponential: "soon" } }, "retry.exponential"],
          [{ retry: { exponential: 0 } }, "retry.exponential"],
          [{ retry: { exponential: "1 second", factor: 0.5 } }, "retry.factor"],
          [{ retry: { exponential: "1 second", max: Infinity } }, "retry.max"],
          [{ retry: { exponential: "1 second", jitter: true } }, "retry.jitter"],
          [{ retry: { fixed: -1 } }, "retry.fixed"],
          [{ retry: { fixed: "1 second", max: "1 minute" } }, "retry.max"]
        ] as const
        for (const [opts, field] of bad) {
          const error = yield* Effect.flip(JobQueue.enqueue(Echo, { n: 1 }, opts as unknown as JobQueue.EnqueueOptions))
          assert.strictEqual(error._tag, "InvalidJobOptions")
          assert.strictEqual((error as { field: string }).field, field, JSON.stringify(opts))
        }
        assert.strictEqual((yield* JobQueue.list()).length, 0)
        const policies = yield* Effect.flip(JobQueue.consume({
          ...options,
          retryPolicies: { webhooks: "1 minute" as never },
          handlers: [Task.handle(Echo, () => Effect.succeed(1))]
        }))
        assert.strictEqual(policies.field, "retryPolicies.webhooks")
      })))

    it.effect("2/8. a graceful shutdown past its deadline gives the running job back without counting the attempt", () =>
      provide(Effect.gen(function*() {
        const finalized = yield* Ref.make(0)
        const job = yield* Effect.scoped(Effect.gen(function*() {
          const consumer = yield* JobQueue.consume({
            ...options,
            shutdownTimeout: "1 second",
            handlers: [Task.handle(Echo, () => Effect.never.pipe(Effect.ensuring(Ref.update(finalized, (n) => n + 1))))]
          })
          const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { maxAttempts: 1 })
          yield* tick(100)
          assert.strictEqual(yield* stateOf(job.id), "running")
          const stopping = yield* Effect.forkChild(consumer.shutdown)
          yield* tick(1500)
          yield* Fiber.join(stopping)
          return job
        }))
        assert.strictEqual(yield* Ref.get(finalized), 1)
        const info = yield* JobQueue.status(job.id)
        assert.deepStrictEqual([info.state, info.attempts], ["queued", 0])
        // another consumer finishes it, on its one and only counted attempt
        yield* JobQueue.consume({ ...options, handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n + 1))] })
        yield* tick(100)
        assert.strictEqual(yield* job.await, 2)
        assert.strictEqual((yield* JobQueue.status(job.id)).attempts, 1)
      })))

    it.effect("2. a handler that interrupts itself or fails with another pool's PoolShutdown fails its attempt (not given back forever)", () =>
      provide(Effect.gen(function*() {
        const runs = yield* Ref.make(0)
        yield* JobQueue.consume({
          ...options,
          handlers: [Task.handle(Echo, ({ n }) =>
            Effect.andThen(
              Ref.update(runs, (r) => r + 1),
              n === 0 ? Effect.interrupt : (Effect.fail(new PoolShutdown({ phase: "running" })) as unknown as Effect.Effect<never, Boom>)
            ))]
        })
        const selfInterrupted = yield* JobQueue.enqueue(Echo, { n: 0 }, { maxAttempts: 3 })
        const innerPool = yield* JobQueue.enqueue(Echo, { n: 1 }, { maxAttempts: 1 })
        yield* tick(5000)
        assert.deepStrictEqual([yield* stateOf(selfInterrupted.id), yield* stateOf(innerPool.id)], ["dead", "dead"])
        assert.strictEqual(yield* Ref.get(runs), 2)
      })))

    it.effect("8. a graceful shutdown lets running jobs finish and claims nothing more", () =>
      provide(Effect.gen(function*() {
        const [first, second] = yield* Effect.scoped(Effect.gen(function*() {
          const consumer = yield* JobQueue.consume({
            ...options,
            concurrency: 1,
            handlers: [Task.handle(Echo, ({ n }) => Effect.as(Effect.sleep("2 seconds"), n))]
          })
          const first = yield* JobQueue.enqueue(Echo, { n: 1 })
          const second = yield* JobQueue.enqueue(Echo, { n: 2 })
          yield* tick(100)
          const stopping = yield* Effect.forkChild(consumer.shutdown)
          yield* tick(2500)
          yield* Fiber.join(stopping)
          return [first, second] as const
        }))
        assert.deepStrictEqual([yield* stateOf(first.id), yield* stateOf(second.id)], ["succeeded", "queued"])
      })))

    it.effect("8. shutdownNow gives running jobs back at once", () =>
      provide(Effect.gen(function*() {
        const consumer = yield* JobQueue.consume({ ...options, handlers: [Task.handle(Echo, () => Effect.never)] })
        const job = yield* JobQueue.enqueue(Echo, { n: 1 })
        yield* tick(100)
        yield* consumer.shutdownNow
        const info = yield* JobQueue.status(job.id)
        assert.deepStrictEqual([info.state, info.attempts], ["queued", 0])
      })))

    it.effect("3. a delayed job becomes visible at its time on the store's clock", () =>
      provide(Effect.gen(function*() {
        yield* JobQueue.consume({ ...options, handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))] })
        const job = yield* JobQueue.enqueue(Echo, { n: 3 }, { delay: "1 minute" })
        yield* tick(59_000, 1000)
        assert.strictEqual(yield* stateOf(job.id), "delayed")
        assert.strictEqual((yield* JobQueue.stats("default")).delayed, 1)
        yield* tick(2000)
        assert.strictEqual(yield* job.await, 3)
      })))

    it.effect("3. the store tells delayed from queued jobs before its limit (after it, a delayed job past the limit's queued ones was never listed)", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const first = yield* JobQueue.enqueueAll(Echo, [1, 2, 3].map((n) => ({ payload: { n } })))
        const delayed = yield* JobQueue.enqueue(Echo, { n: 4 }, { delay: "1 minute" })
        const last = yield* JobQueue.enqueue(Echo, { n: 5 })
        const list = (waiting: "ready" | "delayed", limit: number, states: ReadonlyArray<State> = ["queued"]) =>
          Effect.map(store.list({ queue: "default", states, limit, waiting }), (rows) => rows.map((row) => row.id))
        assert.deepStrictEqual(yield* list("delayed", 1), [delayed.id])
        assert.deepStrictEqual(yield* list("ready", 4), [...first.map((job) => job.id), last.id])
        // with another state asked for, the filter is of the queued jobs alone
        assert.strictEqual(yield* JobQueue.cancel(first[0]!.id), "cancelled")
        assert.deepStrictEqual(yield* list("delayed", 2, ["queued", "cancelled"]), [first[0]!.id, delayed.id])
        assert.deepStrictEqual((yield* JobQueue.list({ state: ["delayed", "cancelled"], limit: 2 })).map((job) => job.id), [first[0]!.id, delayed.id])
        assert.deepStrictEqual((yield* JobQueue.list({ state: "queued", limit: 1 })).map((job) => job.id), [first[1]!.id])
        yield* tick(60_000, 1000)
        assert.deepStrictEqual(yield* list("delayed", 1), [])
        assert.deepStrictEqual((yield* JobQueue.list({ state: "queued", limit: 10 })).map((job) => job.id), [first[1]!.id, first[2]!.id, delayed.id, last.id])
      })))

    describe("3. an idle consumer wakes at a delayed job's time, not at its next poll", () => {
      // a poll far beyond every wait below: only the time the claim reported can wake the consumer
      const sleepy = { ...options, poll: "1 minute" } as const
      /** A handler that records its start times (store clock) and fails its first `failures` attempts. */
      const recording = (failures = 0) =>
        Effect.gen(function*() {
          const starts = yield* Ref.make<Array<{ readonly n: number; readonly at: number }>>([])
          const handler = Task.handle(Echo, ({ n }) =>
            Effect.gen(function*() {
              const at = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
              const count = (yield* Ref.updateAndGet(starts, (s) => [...s, { n, at }])).length
              return count <= failures ? yield* Effect.fail(new Boom({ n })) : n
            }))
          return { starts, handler }
        })
      const now = Effect.clockWith((clock) => clock.currentTimeMillis)

      it.effect("a retry's 200 ms backoff under a 1 minute poll starts at 200 ms", () =>
        provide(Effect.gen(function*() {
          const { handler, starts } = yield* recording(1)
          yield* JobQueue.consume({ ...sleepy, retry: Schedule.spaced("200 millis"), handlers: [handler] })
          const job = yield* JobQueue.enqueue(Echo, { n: 1 })
          yield* tick(1000, 20)
          assert.strictEqual(yield* stateOf(job.id), "succeeded")
          const [first, second] = yield* Ref.get(starts)
          const waited = second!.at - first!.at
          assert.isTrue(waited >= 200 && waited <= 240, `the retry started ${waited} ms after the failed attempt`)
        })))

      it.effect("a delayed job enqueued while its consumer sleeps starts at its time", () =>
        provide(Effect.gen(function*() {
          const { handler, starts } = yield* recording()
          yield* JobQueue.consume({ ...sleepy, handlers: [handler] })
          // the consumer has looked, found nothing and sleeps
          yield* tick(100, 20)
          const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { delay: "500 millis" })
          const due = (yield* JobQueue.status(job.id)).visibleAt.getTime()
          yield* tick(400, 20)
          assert.strictEqual(yield* stateOf(job.id), "delayed")
          yield* tick(200, 20)
          assert.strictEqual(yield* stateOf(job.id), "succeeded")
          const late = (yield* Ref.get(starts))[0]!.at - due
          assert.isTrue(late >= 0 && late <= 40, `started ${late} ms after its time`)
        })))

      it.effect("a consumer of several queues wakes at the soonest delayed job of any of them", () =>
        provide(Effect.gen(function*() {
          const { handler, starts } = yield* recording()
          yield* JobQueue.consume({ ...sleepy, queues: ["a", "b"], handlers: [handler] })
          yield* tick(100, 20)
          const t0 = yield* now
          yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "a", delay: "3 seconds" })
          yield* JobQueue.enqueue(Echo, { n: 2 }, { queue: "b", delay: "300 millis" })
          yield* tick(3500, 50)
          const times = (yield* Ref.get(starts)).map(({ at, n }) => [n, at - t0] as const)
          assert.deepStrictEqual(times.map(([n]) => n), [2, 1])
          assert.isTrue(times[0]![1] >= 300 && times[0]![1] <= 360, `queue b's job started at ${times[0]![1]} ms`)
          assert.isTrue(times[1]![1] >= 3000 && times[1]![1] <= 3060, `queue a's job started at ${times[1]![1]} ms`)
        })))

      it.effect("a cancelled delayed job: its consumer finds nothing at its time, and starts the next one at its own", () =>
        provide(Effect.gen(function*() {
          const { handler, starts } = yield* recording()
          yield* JobQueue.consume({ ...sleepy, handlers: [handler] })
          yield* tick(100, 20)
          const t0 = yield* now
          const cancelled = yield* JobQueue.enqueue(Echo, { n: 1 }, { delay: "300 millis" })
          const next = yield* JobQueue.enqueue(Echo, { n: 2 }, { delay: "700 millis" })
          yield* tick(100, 20)
          assert.strictEqual(yield* cancelled.cancel, "cancelled")
          yield* tick(900, 20)
          assert.strictEqual(yield* stateOf(next.id), "succeeded")
          const started = (yield* Ref.get(starts)).map(({ at, n }) => [n, at - t0] as const)
          assert.strictEqual(started.length, 1)
          assert.isTrue(started[0]![1] >= 700 && started[0]![1] <= 760, `the next job started at ${started[0]![1]} ms`)
          assert.strictEqual(yield* stateOf(cancelled.id), "cancelled")
        })))

      it.effect("a job taken back from a dead consumer starts at its backoff's time", () =>
        provide(Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { retry: { fixed: "200 millis" } })
          // a consumer claims it and dies
          assert.strictEqual((yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 1, lease: LEASE })).claims.length, 1)
          const { handler, starts } = yield* recording()
          yield* JobQueue.consume({ ...sleepy, handlers: [handler] })
          // the reaper (every lease / 2) takes it back once its lease has expired
          yield* tick(LEASE * 2, 50)
          assert.strictEqual(yield* stateOf(job.id), "succeeded")
          const info = yield* JobQueue.status(job.id)
          const late = (yield* Ref.get(starts))[0]!.at - info.visibleAt.getTime()
          assert.isTrue(late >= 0 && late <= 60, `started ${late} ms after its backoff ended`)
        })))

      it.effect("a claim says how long until its queues' soonest delayed job is visible (store time), leaving out paused queues", () =>
        provide(Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          const claim = (queues: ReadonlyArray<string>) => store.claim({ queues, tasks: ["Echo"], limit: 5, lease: LEASE })
          assert.isUndefined((yield* claim(["a", "b"])).dueIn, "nothing delayed")
          yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "a", delay: "2 seconds" })
          yield* JobQueue.enqueue(Echo, { n: 2 }, { queue: "b", delay: "300 millis" })
          yield* JobQueue.enqueue(Echo, { n: 3 }, { queue: "a" })
          yield* JobQueue.pause("b")
          const first = yield* claim(["a", "b"])
          assert.deepStrictEqual(first.claims.map((c) => c.job.queue), ["a"])
          assert.strictEqual(first.dueIn, 2000)
          yield* JobQueue.resume("b")
          yield* TestClock.adjust(100)
          assert.strictEqual((yield* claim(["a", "b"])).dueIn, 200)
          assert.strictEqual((yield* claim(["a"])).dueIn, 1900)
          yield* TestClock.adjust(200)
          const due = yield* claim(["a", "b"])
          assert.deepStrictEqual([due.claims.map((c) => c.job.queue), due.dueIn], [["b"], 1700])
        })))
    })

    it.effect("3. dead letters keep the last failure, are listed, and redrive runs them again", () =>
      provide(Effect.gen(function*() {
        const healthy = yield* Ref.make(false)
        yield* JobQueue.consume({
          ...options,
          handlers: [Task.handle(Echo, ({ n }) =>
            Effect.flatMap(Ref.get(healthy), (ok) => ok ? Effect.succeed(n) : Effect.fail(new Boom({ n }))))]
        })
        const job = yield* JobQueue.enqueue(Echo, { n: 9 }, { maxAttempts: 2 })
        yield* tick(3000)
        assert.strictEqual(yield* stateOf(job.id), "dead")
        assert.instanceOf(yield* Effect.flip(job.await), Boom)
        assert.deepStrictEqual((yield* JobQueue.list({ state: "dead" })).map((j) => j.id), [job.id])
        yield* Ref.set(healthy, true)
        assert.isTrue(yield* JobQueue.redrive(job.id))
        assert.isFalse(yield* JobQueue.redrive(job.id))
        yield* tick(100)
        assert.strictEqual(yield* job.await, 9)
      })))

    it.effect("3. a redriven job starts fresh: no progress and no start time from its dead run, in status and in progressChanges, until its new run reports", () => {
      // opened at the end whatever happens: a failed assertion must not leave the consumer's close waiting on it
      const gate = Deferred.makeUnsafe<void>()
      return provide(Effect.gen(function*() {
        let run = 0
        yield* JobQueue.consume({
          ...options,
          handlers: [Task.handle(Echo, ({ n }) =>
            Effect.gen(function*() {
              const job = yield* WorkPool.JobContext
              run++
              if (run === 1) {
                yield* job.progress({ run })
                return yield* Effect.fail(new Boom({ n }))
              }
              yield* Deferred.await(gate)
              yield* job.progress({ run })
              return n
            }))]
        })
        const job = yield* JobQueue.enqueue(Echo, { n: 9 }, { maxAttempts: 1 })
        yield* tick(100)
        const dead = yield* JobQueue.status(job.id)
        assert.deepStrictEqual([dead.state, dead.progress, dead.startedAt !== undefined], ["dead", { run: 1 }, true])
        // paused: the idle consumer, woken by the redrive, would claim it before it can be read queued
        yield* JobQueue.pause("default")
        assert.isTrue(yield* JobQueue.redrive(job.id))
        const redriven = yield* JobQueue.status(job.id)
        assert.deepStrictEqual(
          [redriven.state, redriven.attempts, redriven.progress, redriven.startedAt, redriven.finishedAt],
          ["queued", 0, undefined, undefined, undefined]
        )
        const seen: Array<unknown> = []
        const reader = yield* Effect.forkChild(Stream.runForEach(job.progressChanges, (value) => Effect.sync(() => seen.push(value))))
        yield* JobQueue.resume("default")
        yield* tick(300)
        const running = yield* JobQueue.status(job.id)
        assert.deepStrictEqual([running.state, running.progress], ["running", undefined])
        assert.deepStrictEqual(seen, [], "the dead run's progress, read as the new run's")
        yield* Deferred.succeed(gate, undefined)
        assert.strictEqual(yield* job.await, 9)
        yield* Fiber.join(reader)
        assert.deepStrictEqual(seen, [{ run: 2 }])
      }).pipe(Effect.ensuring(Deferred.succeed(gate, undefined))))
    })

    it.effect("3. an undecodable payload goes straight to the dead letters with TaskCodecError", () =>
      provide(Effect.gen(function*() {
        const ran = yield* Ref.make(0)
        yield* JobQueue.consume({ ...options, handlers: [Task.handle(Echo, ({ n }) => Effect.as(Ref.update(ran, (x) => x + 1), n))] })
        const job = yield* JobQueue.enqueue(EchoOld, { n: "not a number" }, { maxAttempts: 5 })
        yield* tick(100)
        const error = yield* Effect.flip(JobQueue.await(Echo, job.id))
        assert.instanceOf(error, TaskCodecError)
        assert.strictEqual((error as TaskCodecError).part, "payload")
        const info = yield* JobQueue.status(job.id)
        assert.deepStrictEqual([info.state, info.attempts, yield* Ref.get(ran)], ["dead", 1, 0])
      })))

    it.effect("3. a success or failure with no JSON (Schema.Any given a BigInt, a cycle, a function) ends its job dead with TaskCodecError (part success / failure), which its awaiter sees: not a consumer defect, not left running until its lease is reaped; a failure still gets its retries; undefined stays a success", () =>
      provide(Effect.gen(function*() {
        const cases: ReadonlyArray<readonly [() => Effect.Effect<unknown, unknown>, number]> = [
          [() => Effect.succeed(10n), 3],
          [() => Effect.succeed(cyclic()), 3],
          [() => Effect.succeed(() => 1), 3],
          [() => Effect.succeed(undefined), 3],
          [() => Effect.fail(10n), 2],
          [() => Effect.fail(cyclic()), 1],
          [() => Effect.fail(Symbol("no")), 1]
        ]
        yield* JobQueue.consume({ ...options, handlers: [Task.handle(Loose, (n) => cases[n]![0]())] })
        const jobs = yield* Effect.forEach(cases, ([, maxAttempts], n) => JobQueue.enqueue(Loose, n, { maxAttempts }))
        // past the failure's retry (1 s), short of a lease (3 s): a job whose settle failed is still running
        yield* tick(2000)
        const infos = yield* Effect.forEach(jobs, (job) => JobQueue.status(job.id))
        assert.deepStrictEqual(
          infos.map((info) => [info.state, info.attempts]),
          [["dead", 1], ["dead", 1], ["dead", 1], ["succeeded", 1], ["dead", 2], ["dead", 1], ["dead", 1]]
        )
        const exits = yield* Effect.forEach(jobs, (job) => Effect.exit(job.await))
        const parts = exits.map((exit) => {
          if (Exit.isSuccess(exit)) return ["success", exit.value]
          const error = Cause.squash(exit.cause)
          return error instanceof TaskCodecError ? [error.part, error.issue.length > 0] : ["other", String(error)]
        })
        assert.deepStrictEqual(parts, [
          ["success", true],
          ["success", true],
          ["success", true],
          ["success", undefined],
          ["failure", true],
          ["failure", true],
          ["failure", true]
        ])
        const bigint = Cause.squash((exits[0] as Exit.Failure<unknown, unknown>).cause) as TaskCodecError
        assert.match(bigint.issue, /BigInt/)
        assert.strictEqual(bigint.task, "Loose")
      })))

    it.effect("3. a defect whose value has no JSON and no String (a cycle without a prototype, an Error whose message is a BigInt) ends its job dead with a readable message, as any defect", () =>
      provide(Effect.gen(function*() {
        const bare = Object.create(null)
        bare.self = bare
        const odd = new Error("replaced")
        ;(odd as { message: unknown }).message = 10n
        const defects = [bare, odd, 10n]
        yield* JobQueue.consume({ ...options, handlers: [Task.handle(Loose, (n) => Effect.die(defects[n]))] })
        const jobs = yield* Effect.forEach(defects, (_, n) => JobQueue.enqueue(Loose, n, { maxAttempts: 1 }))
        yield* tick(100)
        assert.deepStrictEqual(yield* Effect.forEach(jobs, (job) => stateOf(job.id)), ["dead", "dead", "dead"])
        const messages = yield* Effect.forEach(jobs, (job) =>
          Effect.map(Effect.exit(job.await), (exit) => {
            assert.isTrue(Exit.isFailure(exit) && Cause.hasDies(exit.cause))
            return (Cause.squash((exit as Exit.Failure<unknown, unknown>).cause) as Error).message
          }))
        assert.match(messages[0]!, /object/)
        assert.match(messages[1]!, /10/)
        assert.match(messages[2]!, /10/)
      })))

    it.effect("4. a dedup key returns the unfinished job's handle; after it finished, a new job", () =>
      provide(Effect.gen(function*() {
        const first = yield* JobQueue.enqueue(Echo, { n: 1 }, { dedupKey: "k" })
        const again = yield* JobQueue.enqueue(Echo, { n: 2 }, { dedupKey: "k" })
        const otherQueue = yield* JobQueue.enqueue(Echo, { n: 3 }, { dedupKey: "k", queue: "other" })
        assert.deepStrictEqual([again.id, again.created, first.created], [first.id, false, true])
        assert.notStrictEqual(otherQueue.id, first.id)
        yield* JobQueue.consume({ ...options, handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))] })
        assert.strictEqual(yield* again.await, 1)
        const later = yield* JobQueue.enqueue(Echo, { n: 4 }, { dedupKey: "k" })
        assert.isTrue(later.created)
        assert.strictEqual(yield* later.await, 4)
      })))

    describe("dedup modes", () => {
      const claimOne = (queue = "default") =>
        Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          return (yield* store.claim({ queues: [queue], tasks: ["Echo"], limit: 1, lease: LEASE })).claims[0]!
        })
      const settle = (token: string, settlement: Parameters<Store["settle"]>[1]) =>
        Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          yield* store.settle(token, settlement)
        })

      it.effect("dedupWhile \"queued\": the key is held while the job waits and released as it starts, so an enqueue during the run makes one follow-up job; a retry does not take the key back", () =>
        provide(Effect.gen(function*() {
          const first = yield* JobQueue.enqueue(Echo, { n: 1 }, { dedupKey: "reindex", dedupWhile: "queued" })
          const waiting = yield* JobQueue.enqueue(Echo, { n: 2 }, { dedupKey: "reindex", dedupWhile: "queued" })
          assert.deepStrictEqual([waiting.id, waiting.created], [first.id, false])
          const claim = yield* claimOne()
          assert.strictEqual(claim.job.id, first.id)
          // running: the key is free, and the job still shows it
          assert.strictEqual((yield* JobQueue.status(first.id)).dedupKey, "reindex")
          const followUp = yield* JobQueue.enqueue(Echo, { n: 3 }, { dedupKey: "reindex", dedupWhile: "queued" })
          assert.isTrue(followUp.created)
          assert.notStrictEqual(followUp.id, first.id)
          // the follow-up holds it now: one follow-up, however many triggers
          const again = yield* JobQueue.enqueue(Echo, { n: 4 }, { dedupKey: "reindex" })
          assert.deepStrictEqual([again.id, again.created], [followUp.id, false])
          // the first one's retry waits without the key
          yield* settle(claim.token, { _tag: "Retry", delay: 0, exit: "{}" })
          assert.strictEqual(yield* stateOf(first.id), "queued")
          assert.strictEqual((yield* JobQueue.enqueue(Echo, { n: 5 }, { dedupKey: "reindex" })).id, followUp.id)
          yield* JobQueue.cancel(followUp.id)
          const afterCancel = yield* JobQueue.enqueue(Echo, { n: 6 }, { dedupKey: "reindex" })
          assert.isTrue(afterCancel.created)
          assert.notStrictEqual(afterCancel.id, first.id)
          // the default mode keeps its key through the run
          const held = yield* JobQueue.enqueue(Echo, { n: 7 }, { dedupKey: "held", queue: "q2" })
          yield* claimOne("q2")
          assert.strictEqual((yield* JobQueue.enqueue(Echo, { n: 8 }, { dedupKey: "held", queue: "q2" })).id, held.id)
        })))

      it.effect("dedupWhile \"queued\": a redriven job takes its key back until it starts again, unless another job holds it", () =>
        provide(Effect.gen(function*() {
          const dead = yield* JobQueue.enqueue(Echo, { n: 1 }, { dedupKey: "k", dedupWhile: "queued", maxAttempts: 1 })
          const claim = yield* claimOne()
          yield* settle(claim.token, { _tag: "Final", state: "dead", exit: null })
          const live = yield* JobQueue.enqueue(Echo, { n: 2 }, { dedupKey: "k" })
          assert.isTrue(live.created)
          assert.isFalse(yield* JobQueue.redrive(dead.id))
          yield* JobQueue.cancel(live.id)
          assert.isTrue(yield* JobQueue.redrive(dead.id))
          assert.strictEqual((yield* JobQueue.enqueue(Echo, { n: 3 }, { dedupKey: "k" })).id, dead.id)
          yield* claimOne()
          assert.isTrue((yield* JobQueue.enqueue(Echo, { n: 4 }, { dedupKey: "k" })).created)
        })))

      it.effect("dedupFor: the key stays held for the window after the enqueue, the job finished or not; then a new job", () =>
        provide(Effect.gen(function*() {
          const first = yield* JobQueue.enqueue(Echo, { n: 1 }, { dedupKey: "digest", dedupFor: "1 minute" })
          const claim = yield* claimOne()
          yield* settle(claim.token, { _tag: "Final", state: "succeeded", exit: null })
          assert.strictEqual(yield* stateOf(first.id), "succeeded")
          yield* TestClock.adjust(59_000)
          const within = yield* JobQueue.enqueue(Echo, { n: 2 }, { dedupKey: "digest", dedupFor: "1 minute" })
          assert.deepStrictEqual([within.id, within.created], [first.id, false])
          const batch = yield* JobQueue.enqueueAll(Echo, [{ payload: { n: 3 }, options: { dedupKey: "digest" } }])
          assert.deepStrictEqual(batch.map((job) => [job.id, job.created]), [[first.id, false]])
          // another queue's key is another key
          assert.isTrue((yield* JobQueue.enqueue(Echo, { n: 4 }, { dedupKey: "digest", queue: "q2" })).created)
          yield* TestClock.adjust(1_000)
          const next = yield* JobQueue.enqueue(Echo, { n: 5 }, { dedupKey: "digest", dedupFor: "1 minute" })
          assert.isTrue(next.created)
          // a batch: the first item takes the key, the next ones get its handle
          yield* TestClock.adjust(60_000)
          yield* JobQueue.cancel(next.id)
          const items = yield* JobQueue.enqueueAll(Echo, [
            { payload: { n: 6 }, options: { dedupKey: "digest", dedupFor: "1 minute" } },
            { payload: { n: 7 }, options: { dedupKey: "digest" } }
          ])
          assert.isTrue(items[0]!.created)
          assert.deepStrictEqual([items[1]!.id, items[1]!.created], [items[0]!.id, false])
          yield* JobQueue.cancel(items[0]!.id)
          const inWindow = yield* JobQueue.enqueueAll(Echo, [{ payload: { n: 8 }, options: { dedupKey: "digest" } }])
          assert.deepStrictEqual(inWindow.map((job) => [job.id, job.created]), [[items[0]!.id, false]])
        })))

      it.effect("dedupFor with dedupWhile \"queued\": the window holds the key through the run; past it, a running job holds it no more", () =>
        provide(Effect.gen(function*() {
          const first = yield* JobQueue.enqueue(Echo, { n: 1 }, { dedupKey: "t", dedupWhile: "queued", dedupFor: "10 seconds" })
          yield* claimOne()
          assert.strictEqual((yield* JobQueue.enqueue(Echo, { n: 2 }, { dedupKey: "t" })).id, first.id)
          yield* TestClock.adjust(10_000)
          assert.strictEqual(yield* stateOf(first.id), "running")
          assert.isTrue((yield* JobQueue.enqueue(Echo, { n: 3 }, { dedupKey: "t" })).created)
        })))

      const payloadOf = (id: string) =>
        Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          return JSON.parse((yield* store.get(id))!.payload).n as number
        })

      it.effect("dedupReplace \"payload\": a waiting holder takes the new payload and keeps its run time; a running or finished one is left as it is", () =>
        provide(Effect.gen(function*() {
          const first = yield* JobQueue.enqueue(Echo, { n: 1 }, { dedupKey: "p", delay: "1 minute", dedupFor: "1 hour" })
          const visibleAt = (yield* JobQueue.status(first.id)).visibleAt.getTime()
          yield* TestClock.adjust(1_000)
          const again = yield* JobQueue.enqueue(Echo, { n: 2 }, { dedupKey: "p", dedupReplace: "payload" })
          assert.deepStrictEqual([again.id, again.created], [first.id, false])
          assert.strictEqual(yield* payloadOf(first.id), 2)
          assert.strictEqual((yield* JobQueue.status(first.id)).visibleAt.getTime(), visibleAt)
          // a batch: each item in turn, the last one's payload stays
          const batch = yield* JobQueue.enqueueAll(Echo, [3, 4].map((n) => ({ payload: { n }, options: { dedupKey: "p", dedupReplace: "payload" as const } })))
          assert.deepStrictEqual(batch.map((job) => [job.id, job.created]), [[first.id, false], [first.id, false]])
          assert.strictEqual(yield* payloadOf(first.id), 4)
          yield* TestClock.adjust(60_000)
          const claim = yield* claimOne()
          assert.deepStrictEqual([claim.job.id, JSON.parse(claim.job.payload).n], [first.id, 4])
          yield* JobQueue.enqueue(Echo, { n: 5 }, { dedupKey: "p", dedupReplace: "payload" })
          assert.strictEqual(yield* payloadOf(first.id), 4, "running: not replaced")
          yield* settle(claim.token, { _tag: "Final", state: "succeeded", exit: null })
          const inWindow = yield* JobQueue.enqueue(Echo, { n: 6 }, { dedupKey: "p", dedupReplace: "payload" })
          assert.deepStrictEqual([inWindow.id, yield* payloadOf(first.id)], [first.id, 4], "finished in its window: not replaced")
        })))

      it.effect("dedupReplace \"debounce\": each enqueue moves the waiting holder's run time to its own delay from now, with its payload; with dedupWhile \"queued\", one during the run makes the next job", () =>
        provide(Effect.gen(function*() {
          const options = { dedupKey: "search", dedupWhile: "queued", dedupReplace: "debounce", delay: "10 seconds" } as const
          const first = yield* JobQueue.enqueue(Echo, { n: 1 }, options)
          yield* TestClock.adjust(6_000)
          const again = yield* JobQueue.enqueue(Echo, { n: 2 }, options)
          assert.deepStrictEqual([again.id, again.created], [first.id, false])
          const start = (yield* JobQueue.status(first.id)).createdAt.getTime()
          assert.strictEqual((yield* JobQueue.status(first.id)).visibleAt.getTime(), start + 16_000)
          yield* TestClock.adjust(9_000)
          const store = yield* JobStore.JobStore
          assert.strictEqual((yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 1, lease: LEASE })).claims.length, 0)
          yield* TestClock.adjust(1_000)
          const claim = yield* claimOne()
          assert.deepStrictEqual([claim.job.id, JSON.parse(claim.job.payload).n], [first.id, 2])
          const next = yield* JobQueue.enqueue(Echo, { n: 3 }, options)
          assert.isTrue(next.created)
          // a runAt moves it too, earlier as well as later
          const at = start + 20_000
          yield* JobQueue.enqueue(Echo, { n: 4 }, { ...options, delay: undefined, runAt: new Date(at) })
          assert.strictEqual((yield* JobQueue.status(next.id)).visibleAt.getTime(), at)
          assert.strictEqual(yield* payloadOf(next.id), 4)
          assert.strictEqual(yield* payloadOf(first.id), 2)
        })))

      it.effect("dedupFor longer than a delay: the window counts from the enqueue; a delayed job holds its key by its state", () =>
        provide(Effect.gen(function*() {
          const first = yield* JobQueue.enqueue(Echo, { n: 1 }, { dedupKey: "d", delay: "1 minute", dedupFor: "10 seconds", dedupWhile: "queued" })
          yield* TestClock.adjust(30_000)
          assert.strictEqual((yield* JobQueue.enqueue(Echo, { n: 2 }, { dedupKey: "d" })).id, first.id)
        })))
    })

    describe("enqueueAll", () => {
      const items = (ns: ReadonlyArray<number>, options?: JobQueue.EnqueueOptions) =>
        ns.map((n) => options === undefined ? { payload: { n } } : { payload: { n }, options })

      it.effect("adds the items' jobs in one call, handles in item order, FIFO as enqueued one by one; the call's options under each item's, and the producer's span, go with every job", () =>
        provide(Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          yield* JobQueue.pause("batch")
          const [span, jobs] = yield* Effect.all([
            Effect.currentSpan,
            JobQueue.enqueueAll(Echo, [
              ...items([0, 1]),
              { payload: { n: 2 }, options: { priority: 5, maxAttempts: 7 } },
              ...items([3]),
              { payload: { n: 4 }, options: { delay: "1 minute", retry: { fixed: "2 seconds" } } }
            ], { queue: "batch", maxAttempts: 2 })
          ]).pipe(Effect.withSpan("nightly import"))
          assert.strictEqual(jobs.length, 5)
          assert.isTrue(jobs.every((job) => job.created))
          assert.strictEqual(new Set(jobs.map((job) => job.id)).size, 5)
          const infos = yield* Effect.forEach(jobs, (job) => JobQueue.status(job.id))
          assert.deepStrictEqual(
            infos.map((info) => [info.queue, info.priority, info.maxAttempts, info.state]),
            [["batch", 0, 2, "queued"], ["batch", 0, 2, "queued"], ["batch", 5, 7, "queued"], ["batch", 0, 2, "queued"], ["batch", 0, 2, "delayed"]]
          )
          assert.deepStrictEqual(infos[4]!.retry, { fixed: 2000 })
          for (const job of jobs) {
            const trace = decodeTrace((yield* store.get(job.id))!.trace)
            assert.deepStrictEqual([trace?.traceId, trace?.spanId], [span.traceId, span.spanId])
          }
          const order = yield* Ref.make<Array<number>>([])
          yield* JobQueue.consume({
            ...options,
            queues: ["batch"],
            concurrency: 1,
            handlers: [Task.handle(Echo, ({ n }) => Effect.as(Ref.update(order, (o) => [...o, n]), n * 10))]
          })
          yield* JobQueue.resume("batch")
          yield* tick(61_000, 1000)
          assert.deepStrictEqual(yield* Ref.get(order), [2, 0, 1, 3, 4])
          // each handle is its item's job
          assert.deepStrictEqual(yield* Effect.forEach(jobs, (job) => job.await), [0, 10, 20, 30, 40])
        })))

      it.effect("an empty batch returns [] without touching the store; a batch of one queue wakes its idle consumers once", () =>
        provide(Effect.gen(function*() {
          const untouchable = new Proxy({}, { get: () => assert.fail("the store was touched") }) as Store
          assert.deepStrictEqual(yield* JobQueue.enqueueAll(Echo, []).pipe(Effect.provideService(JobStore.JobStore, untouchable)), [])
          assert.deepStrictEqual(yield* JobQueue.enqueueAll(Echo, new Set()).pipe(Effect.provideService(JobStore.JobStore, untouchable)), [])
          const store = yield* JobStore.JobStore
          const changes = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
            Effect.gen(function*() {
              const before = yield* store.version
              yield* effect
              return (yield* store.version) - before
            })
          // the least of two rounds: a store may count a change of its own in between (Postgres'
          // listener, once connected, has every waiter look)
          const rounds = <E, R>(effect: Effect.Effect<unknown, E, R>) =>
            Effect.map(Effect.all([changes(effect), changes(effect)]), (counts) => Math.min(...counts))
          assert.strictEqual(yield* rounds(JobQueue.enqueueAll(Echo, items([1, 2, 3]))), 1)
          assert.strictEqual(yield* rounds(Effect.forEach([1, 2, 3], (n) => JobQueue.enqueue(Echo, { n }))), 3)
        })))

      it.effect("one bad item anywhere fails the whole call naming its index, and nothing is stored", () =>
        provide(Effect.gen(function*() {
          const field = (items: ReadonlyArray<unknown>, options?: unknown) =>
            Effect.map(Effect.flip(JobQueue.enqueueAll(Echo, items as any, options as any)), (error) => {
              assert.instanceOf(error, InvalidJobOptions)
              return (error as InvalidJobOptions).field
            })
          const ok = items([1, 2])
          assert.strictEqual(yield* field([...ok, { payload: { n: 3 }, options: { priority: Number.NaN } }, ...ok]), "items[2].options.priority")
          assert.strictEqual(yield* field([...ok, { payload: { n: 3 }, options: { dedupeKey: "k" } }]), "items[2].options.dedupeKey")
          assert.strictEqual(yield* field([...ok, { payload: { n: 3 }, options: { delay: "1 second" } }], { runAt: new Date(0) }), "items[2].options.runAt")
          assert.strictEqual(yield* field([...ok, { payload: { n: 3 }, options: "fast" }]), "items[2].options")
          assert.strictEqual(yield* field([...ok, { n: 3 }]), "items[2].n")
          assert.strictEqual(yield* field([...ok, null]), "items[2]")
          assert.strictEqual(yield* field(ok, { queue: "" }), "queue")
          assert.strictEqual(yield* field(42 as any), "items")
          const codec = yield* Effect.flip(JobQueue.enqueueAll(Echo, [...ok, { payload: { n: "three" } as any }, ...ok]))
          assert.instanceOf(codec, TaskCodecError)
          assert.match((codec as TaskCodecError).issue, /^items\[2\]: /)
          assert.strictEqual((codec as TaskCodecError).part, "payload")
          assert.deepStrictEqual(yield* JobQueue.list({}), [])
        })))

      it.effect("a dedup key gives the unfinished job holding it: a stored one, or the first item of the batch with it", () =>
        provide(Effect.gen(function*() {
          const stored = yield* JobQueue.enqueue(Echo, { n: 0 }, { dedupKey: "a" })
          const jobs = yield* JobQueue.enqueueAll(Echo, [
            { payload: { n: 1 }, options: { dedupKey: "a" } },
            { payload: { n: 2 }, options: { dedupKey: "b" } },
            { payload: { n: 3 } },
            { payload: { n: 4 }, options: { dedupKey: "b" } },
            { payload: { n: 5 }, options: { dedupKey: "b", queue: "other" } }
          ])
          assert.deepStrictEqual(jobs.map((job) => job.created), [false, true, true, false, true])
          assert.strictEqual(jobs[0]!.id, stored.id)
          assert.strictEqual(jobs[3]!.id, jobs[1]!.id)
          assert.notStrictEqual(jobs[4]!.id, jobs[1]!.id)
          assert.strictEqual((yield* JobQueue.list({ limit: 100 })).length, 4)
          yield* JobQueue.consume({ ...options, queues: ["default", "other"], handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))] })
          assert.deepStrictEqual(yield* Effect.forEach(jobs, (job) => job.await), [0, 2, 3, 2, 5])
          // once they finished, the keys are free again
          const again = yield* JobQueue.enqueueAll(Echo, [{ payload: { n: 6 }, options: { dedupKey: "a" } }, { payload: { n: 7 }, options: { dedupKey: "a" } }])
          assert.deepStrictEqual(again.map((job) => job.created), [true, false])
          assert.strictEqual(again[1]!.id, again[0]!.id)
          assert.strictEqual(yield* again[1]!.await, 6)
        })))

      it.effect("10,000 items in one call (Postgres: more rows than one statement's bind parameters allow) are stored in item order", () =>
        provide(Effect.gen(function*() {
          const n = 10_000
          const jobs = yield* JobQueue.enqueueAll(Echo, Array.from({ length: n }, (_, i) => ({ payload: { n: i } })), { queue: "bulk" })
          assert.strictEqual(jobs.length, n)
          assert.isTrue(jobs.every((job) => job.created))
          assert.strictEqual((yield* JobQueue.stats("bulk")).waiting, n)
          const listed = yield* JobQueue.list({ queue: "bulk", limit: n })
          assert.deepStrictEqual(listed.map((info) => info.id), jobs.map((job) => job.id))
          const store = yield* JobStore.JobStore
          const claimed = yield* store.claim({ queues: ["bulk"], tasks: ["Echo"], limit: n, lease: LEASE })
          assert.deepStrictEqual(claimed.claims.map((claim) => JSON.parse(claim.job.payload).n), Array.from({ length: n }, (_, i) => i))
        })), 120_000)
    })

    it.effect("4. redrive does not make a second unfinished job with the same dedup key", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const dead = yield* JobQueue.enqueue(Echo, { n: 1 }, { dedupKey: "k", maxAttempts: 1 })
        const [claim] = (yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 1, lease: LEASE })).claims
        yield* store.settle(claim!.token, { _tag: "Final", state: "dead", exit: null })
        const live = yield* JobQueue.enqueue(Echo, { n: 2 }, { dedupKey: "k" })
        assert.isTrue(live.created)
        assert.isFalse(yield* JobQueue.redrive(dead.id))
        assert.strictEqual(yield* stateOf(dead.id), "dead")
        yield* JobQueue.cancel(live.id)
        assert.isTrue(yield* JobQueue.redrive(dead.id))
        assert.strictEqual(yield* stateOf(dead.id), "queued")
      })))

    // --- expiry of unstarted jobs (EnqueueOptions.expireIn)

    it.effect("expiry: a job not started within its expireIn never starts: a claim past it gets nothing, its await fails JobExpired (not JobCancelled), status says when it expired, stats count it cancelled", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { expireIn: "1 minute" })
        const waiting = yield* JobQueue.status(job.id)
        assert.strictEqual(waiting.expiresAt?.getTime(), waiting.createdAt.getTime() + 60_000)
        assert.isUndefined(waiting.expiredAt)
        yield* tick(61_000, 1000)
        const claimed = yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 10, lease: LEASE })
        assert.strictEqual(claimed.claims.length, 0)
        const info = yield* JobQueue.status(job.id)
        assert.strictEqual(info.state, "cancelled")
        assert.strictEqual(info.attempts, 0)
        assert.isUndefined(info.startedAt)
        assert.isUndefined(info.expiresAt)
        assert.strictEqual(info.expiredAt?.getTime(), waiting.createdAt.getTime() + 60_000)
        const error = yield* Effect.flip(job.await)
        assert.instanceOf(error, DurableError.JobExpired)
        assert.strictEqual((error as DurableError.JobExpired).id, job.id)
        assert.strictEqual((error as DurableError.JobExpired).expiredAt.getTime(), waiting.createdAt.getTime() + 60_000)
        const stats = yield* JobQueue.stats("default")
        assert.strictEqual(stats.cancelled, 1)
        assert.strictEqual(stats.waiting + stats.delayed + stats.running, 0)
      })))

    it.effect("expiry: a job claimed at 59 s of its minute runs to its end past it; one cancelled before its expiry is cancelled, not expired", () =>
      provide(Effect.gen(function*() {
        const gate = yield* Deferred.make<void>()
        const started = yield* Deferred.make<void>()
        yield* JobQueue.consume({
          ...options,
          handlers: [Task.handle(Echo, ({ n }) => Effect.andThen(Deferred.succeed(started, undefined), Effect.as(Deferred.await(gate), n)))]
        })
        const job = yield* JobQueue.enqueue(Echo, { n: 7 }, { expireIn: "1 minute", delay: "58 seconds" })
        const cancelled = yield* JobQueue.enqueue(Echo, { n: 8 }, { expireIn: "1 minute", delay: "30 seconds" })
        assert.strictEqual(yield* JobQueue.cancel(cancelled.id), "cancelled")
        yield* tick(57_000, 1000)
        yield* tickUntil(Deferred.isDone(started), "the job started")
        const running = yield* JobQueue.status(job.id)
        assert.strictEqual(running.state, "running")
        assert.isBelow(running.startedAt!.getTime(), running.createdAt.getTime() + 60_000)
        assert.isUndefined(running.expiresAt)
        yield* tick(5000)
        yield* Deferred.succeed(gate, undefined)
        assert.strictEqual(yield* job.await, 7)
        assert.isUndefined((yield* JobQueue.status(job.id)).expiredAt)
        assert.instanceOf(yield* Effect.flip(cancelled.await), DurableError.JobCancelled)
        assert.isUndefined((yield* JobQueue.status(cancelled.id)).expiredAt)
        assert.isFalse(yield* JobQueue.redrive(cancelled.id))
      })))

    it.effect("expiry: a job retried after a failed attempt runs its retry past its expiry (it had started)", () =>
      provide(Effect.gen(function*() {
        const runs = yield* Ref.make(0)
        yield* JobQueue.consume({
          ...options,
          handlers: [Task.handle(Echo, ({ n }) =>
            Effect.flatMap(Ref.updateAndGet(runs, (k) => k + 1), (k) => k === 1 ? Effect.fail(new Boom({ n })) : Effect.succeed(n)))]
        })
        // the retry comes a second after the failure, past the expiry's 500 ms
        const job = yield* JobQueue.enqueue(Echo, { n: 3 }, { expireIn: "500 millis" })
        yield* tick(3000)
        assert.strictEqual(yield* job.await, 3)
        assert.strictEqual(yield* Ref.get(runs), 2)
        assert.strictEqual((yield* JobQueue.status(job.id)).attempts, 2)
      })))

    it.effect("expiry: the jobs of a paused queue, and of a queue no consumer takes, expire through the consumers' reaper: their awaiters hear", () =>
      provide(Effect.gen(function*() {
        yield* JobQueue.consume({ ...options, handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))] })
        yield* JobQueue.pause("default")
        const paused = yield* JobQueue.enqueue(Echo, { n: 1 }, { expireIn: "1 minute" })
        const elsewhere = yield* JobQueue.enqueue(Echo, { n: 2 }, { queue: "nobody", expireIn: "1 minute" })
        const kept = yield* JobQueue.enqueue(Echo, { n: 3 })
        const awaits = yield* Effect.forkChild(Effect.all([Effect.flip(paused.await), Effect.flip(elsewhere.await)]))
        yield* tick(64_000, 1000)
        const [a, b] = yield* Fiber.join(awaits)
        assert.instanceOf(a, DurableError.JobExpired)
        assert.instanceOf(b, DurableError.JobExpired)
        assert.strictEqual(yield* stateOf(kept.id), "queued")
        assert.strictEqual((yield* JobQueue.stats("nobody")).cancelled, 1)
        yield* JobQueue.resume("default")
        yield* tick(200)
        assert.strictEqual(yield* kept.await, 3)
      })))

    it.effect("expiry: redrive runs an expired job again, with no expiry; its dedup key was free meanwhile", () =>
      provide(Effect.gen(function*() {
        const job = yield* JobQueue.enqueue(Echo, { n: 5 }, { expireIn: "1 minute", dedupKey: "code" })
        yield* tick(61_000, 1000)
        // the key's holder had expired (no claim or reap had met it yet): a new job takes the key
        const next = yield* JobQueue.enqueue(Echo, { n: 6 }, { dedupKey: "code" })
        assert.isTrue(next.created)
        assert.instanceOf(yield* Effect.flip(job.await), DurableError.JobExpired)
        // the new job holds the key: a redrive would make a second unfinished holder
        assert.isFalse(yield* JobQueue.redrive(job.id))
        yield* JobQueue.cancel(next.id)
        assert.isTrue(yield* JobQueue.redrive(job.id))
        const redriven = yield* JobQueue.status(job.id)
        assert.strictEqual(redriven.state, "queued")
        assert.isUndefined(redriven.expiresAt)
        assert.isUndefined(redriven.expiredAt)
        yield* tick(120_000, 10_000)
        yield* JobQueue.consume({ ...options, handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))] })
        yield* tick(200)
        assert.strictEqual(yield* job.await, 5)
      })))

    it.effect("expiry: a list of expired jobs is picked out of the cancelled ones before its limit (after it, an expired job behind a page of cancelled ones was never listed)", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const dead = yield* JobQueue.enqueue(Echo, { n: 1 }, { maxAttempts: 1 })
        const [claim] = (yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 1, lease: LEASE })).claims
        yield* store.settle(claim!.token, { _tag: "Final", state: "dead", exit: null })
        // a page of cancelled jobs older than the expired one, cancelled before their expiry (or with none)
        const cancelled = yield* JobQueue.enqueueAll(Echo, [2, 3, 4].map((n) => ({ payload: { n }, options: n === 2 ? {} : { expireIn: "1 minute" } })))
        for (const job of cancelled) assert.strictEqual(yield* JobQueue.cancel(job.id), "cancelled")
        const expired = yield* JobQueue.enqueue(Echo, { n: 5 }, { expireIn: "1 minute" })
        const queued = yield* JobQueue.enqueue(Echo, { n: 6 })
        yield* tick(61_000, 1000)
        yield* store.reap([])
        assert.isDefined((yield* JobQueue.status(expired.id)).expiredAt)
        const list = (states: ReadonlyArray<State> | undefined, limit: number, expired?: boolean) =>
          Effect.map(store.list({ queue: "default", states, limit, expired }), (rows) => rows.map((row) => row.id))
        const ids = (filter: Parameters<typeof JobQueue.list>[0]) =>
          Effect.map(JobQueue.list(filter), (jobs) => jobs.map((job) => job.id))
        assert.deepStrictEqual(yield* list(["cancelled"], 3), cancelled.map((job) => job.id))
        assert.deepStrictEqual(yield* list(["cancelled"], 3, true), [expired.id])
        // with another state asked for, the filter is of the cancelled jobs alone
        assert.deepStrictEqual(yield* list(["dead", "cancelled"], 2, true), [dead.id, expired.id])
        assert.deepStrictEqual(yield* list(undefined, 10, true), [dead.id, expired.id, queued.id])
        assert.deepStrictEqual(yield* list(["cancelled"], 10, false), cancelled.map((job) => job.id).concat(expired.id))
        // the public list: the expired jobs alone with no state, beside the dead ones with theirs
        assert.deepStrictEqual(yield* ids({ expired: true, limit: 1 }), [expired.id])
        assert.deepStrictEqual(yield* ids({ queue: "default", state: ["dead", "cancelled"], expired: true }), [dead.id, expired.id])
        for (const filter of [{ state: "dead", expired: true }, { expired: "yes" }] as const) {
          const error = yield* Effect.flip(JobQueue.list(filter as Parameters<typeof JobQueue.list>[0]))
          assert.instanceOf(error, InvalidJobOptions)
          assert.strictEqual((error as InvalidJobOptions).field, "state" in filter ? "state" : "expired")
        }
      })))

    it.effect("expiry: a queue's retention of cancelled jobs deletes an expired one as it deletes a cancelled one", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        yield* JobQueue.setRetention("default", { cancelled: { count: 0 } })
        const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { expireIn: "1 minute" })
        const kept = yield* JobQueue.enqueue(Echo, { n: 2 })
        yield* tick(61_000, 1000)
        yield* store.reap([])
        assert.isDefined((yield* JobQueue.status(job.id)).expiredAt)
        assert.strictEqual((yield* store.retain(100)).deleted, 1)
        assert.instanceOf(yield* Effect.flip(JobQueue.status(job.id)), DurableError.JobNotFound)
        assert.strictEqual(yield* stateOf(kept.id), "queued")
      })))

    it.effect("expiry: enqueueAll gives each item its expireIn (an item's own over the call's); a repeat's ticks expire too", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const [a, b, c] = yield* JobQueue.enqueueAll(Echo, [
          { payload: { n: 1 } },
          { payload: { n: 2 }, options: { expireIn: "2 minutes" } },
          { payload: { n: 3 }, options: { expireIn: undefined } }
        ], { expireIn: "1 minute" })
        yield* Effect.scoped(JobQueue.repeat("expiring", Echo, { n: 4 }, { cron: "* * * * * *", expireIn: "10 seconds" }).pipe(
          Effect.andThen(tick(1000))
        ))
        yield* tick(61_000, 1000)
        assert.strictEqual(yield* stateOf(a!.id), "queued")
        // the claim meets it: ended, never handed out
        const claimed = yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 10, lease: LEASE })
        assert.deepStrictEqual(claimed.claims.map((claim) => claim.job.id).sort(), [b!.id, c!.id].sort())
        assert.instanceOf(yield* Effect.flip(a!.await), DurableError.JobExpired)
        const ticks = (yield* JobQueue.list({ state: "cancelled" })).filter((job) => job.id !== a!.id)
        assert.isAbove(ticks.length, 0)
        for (const job of ticks) assert.isDefined(job.expiredAt)
      })))

    it.effect("expiry: a bad expireIn, or a delay or runAt at or past it, fails InvalidJobOptions naming the field; nothing is stored", () =>
      provide(Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const bad = [
          [{ expireIn: -1 }, "expireIn"],
          [{ expireIn: 0 }, "expireIn"],
          [{ expireIn: Infinity }, "expireIn"],
          [{ expireIn: Number.NaN }, "expireIn"],
          [{ expireIn: "soon" }, "expireIn"],
          [{ expireIn: 1e16 }, "expireIn"],
          [{ expireIn: "1 minute", delay: "1 minute" }, "delay"],
          [{ expireIn: "1 minute", delay: "2 minutes" }, "delay"],
          [{ expireIn: "1 minute", runAt: new Date(now + 90_000) }, "runAt"]
        ] as const
        for (const [opts, field] of bad) {
          const error = yield* Effect.flip(JobQueue.enqueue(Echo, { n: 1 }, opts as JobQueue.EnqueueOptions))
          assert.instanceOf(error, InvalidJobOptions)
          assert.strictEqual((error as InvalidJobOptions).field, field)
          if (field !== "expireIn") assert.include((error as InvalidJobOptions).reason, "expireIn")
          const batch = yield* Effect.flip(JobQueue.enqueueAll(Echo, [{ payload: { n: 1 }, options: opts as JobQueue.EnqueueOptions }]))
          assert.strictEqual((batch as InvalidJobOptions).field, `items[0].options.${field}`)
        }
        const repeat = yield* Effect.flip(Effect.scoped(JobQueue.repeat("r", Echo, { n: 1 }, { cron: "* * * * *", expireIn: 0 })))
        assert.strictEqual((repeat as InvalidJobOptions).field, "expireIn")
        const hinted = yield* Effect.flip(JobQueue.enqueue(Echo, { n: 1 }, { expires_in: 60 } as never))
        assert.include((hinted as InvalidJobOptions).reason, "expireIn")
        assert.strictEqual((yield* JobQueue.list()).length, 0)
        // a delay or runAt before it is fine
        yield* JobQueue.enqueue(Echo, { n: 1 }, { expireIn: "1 minute", delay: "59 seconds" })
        yield* JobQueue.enqueue(Echo, { n: 1 }, { expireIn: "1 minute", runAt: new Date(now + 30_000) })
      })))

    it.effect("9. a repeatable job is enqueued once per cron tick, however many processes run its schedule", () =>
      provide(Effect.gen(function*() {
        const runs = yield* Ref.make<Array<number>>([])
        yield* JobQueue.consume({
          ...options,
          handlers: [Task.handle(Echo, ({ n }) =>
            Effect.flatMap(Effect.clockWith((clock) => clock.currentTimeMillis), (now) => Effect.as(Ref.update(runs, (r) => [...r, now]), n)))]
        })
        // two schedulers with the same name, as two processes would run them
        yield* JobQueue.repeat("every-minute", Echo, { n: 1 }, { cron: "* * * * *" })
        yield* JobQueue.repeat("every-minute", Echo, { n: 1 }, { cron: "* * * * *" })
        yield* tick(3 * 60_000 + 500, 1000)
        const jobs = yield* JobQueue.list({ state: "succeeded" })
        assert.strictEqual(jobs.length, 3)
        assert.deepStrictEqual((yield* Ref.get(runs)).map((t) => Math.floor(t / 60_000)), [1, 2, 3])
        const error = yield* Effect.flip(JobQueue.repeat("bad", Echo, { n: 1 }, { cron: "every minute" }))
        assert.strictEqual((error as { field: string }).field, "cron")
        // a tick's job carries the schedule's own retry, stored as enqueue stores it
        yield* JobQueue.repeat("with-retry", Echo, { n: 2 }, { cron: "* * * * *", queue: "unconsumed", retry: { fixed: "5 seconds" } })
        yield* tick(60_000, 10_000)
        const [ticked] = yield* JobQueue.list({ queue: "unconsumed" })
        assert.deepStrictEqual(ticked?.retry, { fixed: 5000 })
        const badRetry = yield* Effect.flip(JobQueue.repeat("bad-retry", Echo, { n: 1 }, { cron: "* * * * *", retry: { fixed: -1 } }))
        assert.strictEqual((badRetry as { field: string }).field, "retry.fixed")
      })))

    it.effect("9b. an enqueue that reaches the store past its notAfter (a repeat's tick past its deadline) stores nothing and says so (late); one at or before it is stored; a job holding its id is returned, late or not", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const now = yield* store.now
        const late = yield* store.enqueue(newJob("ticks", { id: "tick:late", runAt: now, notAfter: now - 1 }))
        assert.deepStrictEqual(late, { id: "tick:late", created: false, late: true })
        assert.isUndefined(yield* store.get("tick:late"))
        assert.deepStrictEqual(yield* JobQueue.list({ queue: "ticks" }), [])
        assert.strictEqual((yield* JobQueue.stats("ticks")).waiting, 0)
        // notAfter is the last moment allowed, on every store alike (the repeat passes its deadline - 1)
        assert.deepStrictEqual(
          yield* store.enqueue(newJob("ticks", { id: "tick:edge", runAt: now, notAfter: now })),
          { id: "tick:edge", created: true }
        )
        // nothing left behind: the same id on time is created (on a Cluster, its id index was undone)
        const onTime = yield* store.enqueue(newJob("ticks", { id: "tick:late", runAt: now, notAfter: now + 60_000 }))
        assert.deepStrictEqual(onTime, { id: "tick:late", created: true })
        assert.deepStrictEqual(
          yield* store.enqueue(newJob("ticks", { id: "tick:late", runAt: now, notAfter: now - 1 })),
          { id: "tick:late", created: false },
          "a job holding its id is returned, not refused"
        )
        // the store's clock decides, as it moves: a minute on, a notAfter of 30 s from before is past
        yield* TestClock.adjust(60_000)
        const later = yield* store.enqueue(newJob("ticks", { id: "tick:later", runAt: now, notAfter: now + 30_000 }))
        assert.isTrue(later.late === true && !later.created, JSON.stringify(later))
        assert.isUndefined(yield* store.get("tick:later"))
      })))

    it.effect("5. priority order is the in-process scheduler's: higher first, FIFO within a priority", () =>
      provide(Effect.gen(function*() {
        const priorities = [1, 5, 3, 5, 0, 3]
        yield* JobQueue.pause("default")
        for (const [i, priority] of priorities.entries()) yield* JobQueue.enqueue(Echo, { n: i }, { priority })
        const order = yield* Ref.make<Array<number>>([])
        yield* JobQueue.consume({
          ...options,
          concurrency: 1,
          handlers: [Task.handle(Echo, ({ n }) => Effect.as(Ref.update(order, (o) => [...o, n]), n))]
        })
        yield* JobQueue.resume("default")
        yield* tick(1500)
        const inProcess = yield* inProcessOrder(priorities.map((priority) => ({ priority, at: 0 })), 0)
        assert.deepStrictEqual(yield* Ref.get(order), inProcess)
        assert.deepStrictEqual(inProcess, [1, 3, 2, 5, 0, 4])
      })))

    it.effect("5. a claim over several queues hands its jobs back best first across them and skips a paused queue", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const jobs: ReadonlyArray<readonly [string, number]> = [["a", 1], ["b", 5], ["a", 5], ["c", 9], ["b", 0], ["a", 5]]
        for (const [i, [queue, priority]] of jobs.entries()) yield* JobQueue.enqueue(Echo, { n: i }, { queue, priority })
        yield* JobQueue.pause("c")
        const claim = (limit: number) =>
          Effect.map(
            store.claim({ queues: ["a", "b", "c"], tasks: ["Echo"], limit, lease: LEASE }),
            ({ claims }) => claims.map((c) => (JSON.parse(c.job.payload) as { n: number }).n)
          )
        // every waiting job of the unpaused queues, highest priority first (which of equal ones comes
        // first across queues is the store's: Redis orders them by creation time, the others FIFO)
        const claimed = yield* claim(10)
        assert.deepStrictEqual(claimed.map((n) => jobs[n]![1]), [5, 5, 5, 1, 0])
        assert.deepStrictEqual([...claimed].sort(), [0, 1, 2, 4, 5])
        yield* JobQueue.resume("c")
        assert.deepStrictEqual(yield* claim(5), [3])
      })))

    describe("5. fair dispatch (consume({ dispatch: \"fair\" })): round-robin over the queues", () => {
      /** A consumer of one slot over `queues` (their jobs enqueued before it starts); the payloads' `n`s in the order their jobs started. */
      const startOrder = (dispatch: "priority" | "fair", queues: ReadonlyArray<string>, jobs: number) =>
        Effect.gen(function*() {
          const order: Array<number> = []
          yield* JobQueue.consume({
            ...options,
            queues,
            concurrency: 1,
            dispatch,
            handlers: [Task.handle(Echo, ({ n }) =>
              Effect.sync(() => {
                order.push(n)
                return n
              }))]
          })
          // bounded: a job never claimed fails the test below, not by a hang
          for (let i = 0; i < 100 && order.length < jobs; i++) yield* tick(100)
          return order
        })

      /**
       * A backlog of 12 jobs (n 0-11) in "big", enqueued first, then 3 (n 100-102) in "small". The
       * backlog's priority is 1, the others' 0: of equal ones, which queue's comes first by priority
       * is the store's (Redis orders them by creation time, which on a Cluster each node stamps).
       */
      const backlog = Effect.gen(function*() {
        for (let n = 0; n < 12; n++) yield* JobQueue.enqueue(Echo, { n }, { queue: "big", priority: 1 })
        for (let n = 100; n < 103; n++) yield* JobQueue.enqueue(Echo, { n }, { queue: "small" })
      })

      it.effect("fair: a small queue's jobs start within the first claims, alternating with a backlog enqueued before them (of a higher priority)", () =>
        provide(Effect.gen(function*() {
          yield* backlog
          assert.deepStrictEqual(yield* startOrder("fair", ["big", "small"], 15), [0, 100, 1, 101, 2, 102, 3, 4, 5, 6, 7, 8, 9, 10, 11])
        })))

      it.effect("priority (the default): the backlog runs whole before the small queue's jobs", () =>
        provide(Effect.gen(function*() {
          yield* backlog
          assert.deepStrictEqual(yield* startOrder("priority", ["big", "small"], 15), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 100, 101, 102])
        })))

      it.effect("fair: priority orders the jobs within a queue only; the turn starts from the first queue and goes round", () =>
        provide(Effect.gen(function*() {
          for (let n = 0; n < 3; n++) yield* JobQueue.enqueue(Echo, { n }, { queue: "a" })
          // b's urgent jobs wait for b's turn; b's last one, the most urgent, comes first in b
          for (let n = 10; n < 13; n++) yield* JobQueue.enqueue(Echo, { n }, { queue: "b", priority: n === 12 ? 9 : 5 })
          yield* JobQueue.enqueue(Echo, { n: 20 }, { queue: "c" })
          assert.deepStrictEqual(yield* startOrder("fair", ["a", "b", "c"], 7), [0, 12, 20, 1, 10, 2, 11])
        })))

      it.effect("a fair claim of several jobs takes one per queue per round, in the request's order, skipping paused, empty and held (rate limited) queues", () =>
        provide(Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          for (let n = 0; n < 6; n++) yield* JobQueue.enqueue(Echo, { n }, { queue: "big" })
          for (let n = 100; n < 103; n++) yield* JobQueue.enqueue(Echo, { n }, { queue: "small" })
          yield* JobQueue.enqueue(Echo, { n: 200 }, { queue: "paused" })
          yield* JobQueue.pause("paused")
          yield* JobQueue.enqueue(Echo, { n: 300 }, { queue: "limited" })
          yield* JobQueue.enqueue(Echo, { n: 301 }, { queue: "limited" })
          const claim = (queues: ReadonlyArray<string>, limit: number) =>
            Effect.map(
              store.claim({ queues, tasks: ["Echo"], limit, lease: LEASE, fair: true }),
              ({ claims, limitedFor }) => ({ ns: claims.map((c) => (JSON.parse(c.job.payload) as { n: number }).n).sort((a, b) => a - b), limitedFor })
            )
          // no queue limited: small, big, small
          assert.deepStrictEqual((yield* claim(["small", "big"], 3)).ns, [0, 100, 101])
          yield* JobQueue.setRateLimit("limited", { limit: 1, interval: "1 second" })
          // rounds: limited, big, small; big (limited's window is full, small empty); big; big
          assert.deepStrictEqual((yield* claim(["limited", "empty", "paused", "big", "small"], 6)).ns, [1, 2, 3, 4, 102, 300])
          // a short claim: big's last, limited held, and the claim says until when
          const short = yield* claim(["small", "limited", "big"], 3)
          assert.deepStrictEqual([short.ns, short.limitedFor], [[5], 1000])
          yield* TestClock.adjust(1000)
          assert.deepStrictEqual((yield* claim(["big", "limited", "small"], 3)).ns, [301])
        })))

      it.effect("fair: a rate-limited queue passed over while its window is full is served again as it frees, not left behind another queue's backlog", () =>
        provide(Effect.gen(function*() {
          yield* JobQueue.setRateLimit("limited", { limit: 1, interval: "1 second" })
          const limited = yield* Effect.forEach([0, 1, 2], (n) => JobQueue.enqueue(Echo, { n }, { queue: "limited" }))
          const backlog = yield* Effect.forEach(Array.from({ length: 30 }, (_, n) => 100 + n), (n) => JobQueue.enqueue(Echo, { n }, { queue: "backlog" }))
          yield* JobQueue.consume({
            ...options,
            queues: ["limited", "backlog"],
            concurrency: 1,
            dispatch: "fair",
            handlers: [Task.handle(Echo, ({ n }) => Effect.as(Effect.sleep("100 millis"), n))]
          })
          yield* tick(3500)
          const started = (jobs: ReadonlyArray<{ readonly id: string }>) =>
            Effect.forEach(jobs, (job) => Effect.map(JobQueue.status(job.id), (info) => info.startedAt?.getTime() ?? Infinity))
          const limits = yield* started(limited)
          const backlogs = (yield* started(backlog)).filter(Number.isFinite).sort((a, b) => a - b)
          // one a second (its window), each within a job's time of its window freeing
          assert.isBelow(limits[2]! - limits[0]!, 2000 + 300, JSON.stringify(limits))
          for (let i = 1; i < 3; i++) assert.isAtLeast(limits[i]! - limits[i - 1]!, 1000, JSON.stringify(limits))
          // the backlog's jobs ran meanwhile, and are not done: the limited queue did not wait for it
          assert.isAbove(backlogs.length, 15, JSON.stringify(backlogs))
          assert.isBelow(limits[2]!, backlogs[backlogs.length - 1]!)
        })))

      it.effect("a bad dispatch fails the consumer's start with InvalidPoolConfig naming it", () =>
        provide(Effect.gen(function*() {
          const error = yield* Effect.flip(JobQueue.consume({ ...options, handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))], dispatch: "round-robin" as "fair" }))
          assert.strictEqual(error._tag, "InvalidPoolConfig")
          assert.strictEqual((error as InvalidPoolConfig).field, "dispatch")
          assert.include((error as InvalidPoolConfig).reason, `"fair"`)
        })))
    })

    it.effect("5. aging in the store gives the in-process order, ties FIFO", () =>
      provide(Effect.gen(function*() {
        // (priority, enqueued at ms): with 1 s aging, the low one waited 3 s and the high ones
        // are 2 levels up: the one 2 s later ties (FIFO: after), the one 3 s later loses
        const jobs = [{ priority: 0, at: 0 }, { priority: 2, at: 2000 }, { priority: 2, at: 3000 }, { priority: 5, at: 3000 }]
        yield* JobQueue.setAging("default", "1 second")
        yield* JobQueue.pause("default")
        let now = 0
        for (const [i, job] of jobs.entries()) {
          yield* TestClock.adjust(job.at - now)
          now = job.at
          yield* JobQueue.enqueue(Echo, { n: i }, { priority: job.priority })
        }
        const order = yield* Ref.make<Array<number>>([])
        yield* JobQueue.consume({
          ...options,
          concurrency: 1,
          handlers: [Task.handle(Echo, ({ n }) => Effect.as(Ref.update(order, (o) => [...o, n]), n))]
        })
        yield* JobQueue.resume("default")
        yield* tick(1500)
        const inProcess = yield* inProcessOrder(jobs, 1000)
        assert.deepStrictEqual(yield* Ref.get(order), inProcess)
        assert.deepStrictEqual(inProcess, [3, 0, 1, 2])
      })))

    it.effect("5. a consumer's aging becomes its queue's when the queue has none; one that differs from the stored one fails its start", () =>
      provide(Effect.gen(function*() {
        const order = yield* Ref.make<Array<number>>([])
        const consumer = yield* JobQueue.consume({
          ...options,
          queues: ["aged"],
          concurrency: 1,
          aging: "1 second",
          handlers: [Task.handle(Echo, ({ n }) => Effect.as(Ref.update(order, (o) => [...o, n]), n))]
        })
        assert.strictEqual((yield* JobQueue.stats("aged")).aging, 1000)
        // the order of WorkPool's aging: the low one waited 3 s, the high one is 2 levels up
        yield* consumer.pause
        yield* JobQueue.enqueue(Echo, { n: 0 }, { queue: "aged", priority: 0 })
        yield* TestClock.adjust(3000)
        yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "aged", priority: 2 })
        yield* consumer.resume
        yield* tick(1500)
        assert.deepStrictEqual(yield* Ref.get(order), [0, 1])
        // the same aging, or none asked for: they start
        yield* JobQueue.consume({ ...options, queues: ["aged"], aging: "1 second", handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))] })
        yield* JobQueue.consume({ ...options, queues: ["aged"], handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))] })
        // another aging, or none: a typed error naming the field and the stored aging; the queue keeps its own
        for (const aging of ["2 seconds", Infinity] as const) {
          const error = yield* Effect.flip(
            JobQueue.consume({ ...options, queues: ["other", "aged"], aging, handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))] })
          )
          assert.strictEqual(error._tag, "InvalidPoolConfig")
          assert.strictEqual((error as InvalidPoolConfig).field, "aging")
          assert.include((error as InvalidPoolConfig).reason, `queue "aged" has an aging of 1000 ms`)
        }
        // a refused start changes nothing: "other" (listed first) did not take its aging
        assert.deepStrictEqual([(yield* JobQueue.stats("aged")).aging, (yield* JobQueue.stats("other")).aging], [1000, 0])
        // changed on purpose: then consumers with the new one start
        yield* JobQueue.setAging("aged", "2 seconds")
        yield* JobQueue.consume({ ...options, queues: ["aged"], aging: "2 seconds", handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))] })
        assert.deepStrictEqual([(yield* JobQueue.stats("aged")).aging, (yield* JobQueue.stats("default")).aging], [2000, 0])
      })))

    it.effect("6. an attempt that outlives its timeout is interrupted (finalizers run) and fails with AttemptTimeout", () =>
      provide(Effect.gen(function*() {
        const finalized = yield* Ref.make(0)
        yield* JobQueue.consume({
          ...options,
          handlers: [Task.handle(Echo, () => Effect.never.pipe(Effect.ensuring(Ref.update(finalized, (n) => n + 1))))]
        })
        const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { timeout: "5 seconds", maxAttempts: 1 })
        yield* tick(4900)
        assert.strictEqual(yield* stateOf(job.id), "running")
        yield* tick(300)
        const error = yield* Effect.flip(job.await)
        assert.instanceOf(error, DurableError.AttemptTimeout)
        assert.deepStrictEqual([(error as DurableError.AttemptTimeout).millis, yield* Ref.get(finalized)], [5000, 1])
      })))

    it.effect("6. a job enqueued with timeout: Infinity has none, whatever the consumer's default (Infinity was stored as that default)", () =>
      provide(Effect.gen(function*() {
        yield* JobQueue.consume({
          ...options,
          timeout: "1 second",
          handlers: [Task.handle(Echo, ({ n }) => Effect.as(Effect.sleep("3 seconds"), n))]
        })
        const unbounded = yield* JobQueue.enqueue(Echo, { n: 7 }, { timeout: Infinity, maxAttempts: 1 })
        const bounded = yield* JobQueue.enqueue(Echo, { n: 8 }, { maxAttempts: 1 })
        yield* tick(3500)
        assert.strictEqual(yield* unbounded.await, 7)
        assert.instanceOf(yield* Effect.flip(bounded.await), DurableError.AttemptTimeout)
      })))

    it.effect("6. a timed-out attempt is settled only once it has stopped: its retry never overlaps its finalizers", () =>
      provide(Effect.gen(function*() {
        const events = yield* Ref.make<Array<string>>([])
        const log = (event: string) => Ref.update(events, (e) => [...e, event])
        let attempt = 0
        yield* JobQueue.consume({
          ...options,
          retry: { times: 1 },
          handlers: [Task.handle(Echo, ({ n }) =>
            Effect.suspend(() => {
              const current = ++attempt
              return current === 1
                ? Effect.andThen(log("start 1"), Effect.never).pipe(
                  Effect.onInterrupt(() => Effect.andThen(Effect.sleep("2 seconds"), log("stopped 1")))
                )
                : Effect.as(log(`start ${current}`), n)
            }))]
        })
        const job = yield* JobQueue.enqueue(Echo, { n: 4 }, { timeout: "1 second", maxAttempts: 2 })
        yield* tick(5000)
        assert.strictEqual(yield* job.await, 4)
        assert.deepStrictEqual(yield* Ref.get(events), ["start 1", "stopped 1", "start 2"])
      })))

    it.effect("7. cancel: a queued job at once; a running one within a heartbeat, its finalizers run", () =>
      provide(Effect.gen(function*() {
        const finalized = yield* Ref.make(0)
        const queued = yield* JobQueue.enqueue(Echo, { n: 1 }, { delay: "1 hour" })
        assert.strictEqual(yield* JobQueue.cancel(queued.id), "cancelled")
        assert.instanceOf(yield* Effect.flip(queued.await), DurableError.JobCancelled)
        yield* JobQueue.consume({
          ...options,
          handlers: [Task.handle(Echo, () => Effect.never.pipe(Effect.ensuring(Ref.update(finalized, (n) => n + 1))))]
        })
        const running = yield* JobQueue.enqueue(Echo, { n: 2 })
        yield* tick(100)
        assert.strictEqual(yield* running.cancel, "requested")
        yield* tick(LEASE / 3 + 100)
        assert.instanceOf(yield* Effect.flip(running.await), DurableError.JobCancelled)
        assert.strictEqual(yield* Ref.get(finalized), 1)
        assert.strictEqual(yield* running.cancel, "finished")
        assert.instanceOf(yield* Effect.flip(JobQueue.cancel("nope")), DurableError.JobNotFound)
      })))

    it.effect("a durable job's logs carry its id and queue; its workpool.job span its id, queue, task and stored attempt", () =>
      provide(Effect.gen(function*() {
        const { spans, tracer } = recordingTracer()
        const seen: Array<Readonly<Record<string, unknown>>> = []
        let tries = 0
        yield* JobQueue.consume({
          ...options,
          handlers: [Task.handle(Echo, ({ n }) =>
            Effect.gen(function*() {
              seen.push(yield* References.CurrentLogAnnotations)
              if (++tries < 2) return yield* Effect.fail(new Boom({ n }))
              return n
            }))]
        }).pipe(Effect.withTracer(tracer))
        const job = yield* JobQueue.enqueue(Echo, { n: 1 })
        // its retry is a second later, and claimed at the latest a poll (1 s) after that: the test is
        // about what the attempts carry, not when they run (1.5 s timed out on a loaded Redis Cluster)
        yield* tick(3000)
        assert.strictEqual(yield* job.await, 1)
        assert.deepStrictEqual(seen.map((annotations) => [annotations.jobId, annotations.queue]), [[job.id, "default"], [job.id, "default"]])
        const attributes = ["workpool.durable.id", "workpool.durable.attempt", "workpool.queue", "workpool.task"]
        assert.deepStrictEqual(
          spans.filter((span) => span.name === "workpool.job").map((span) => attributes.map((key) => span.attributes.get(key))),
          [[job.id, 1, "default", "Echo"], [job.id, 2, "default", "Echo"]]
        )
      })))

    it.effect("JobQueue.CurrentJob in a handler: the durable job's id (as enqueue returned it), queue, task, maxAttempts, createdAt, dedupKey and priority; its attempt grows with each retry, as JobContext's; none outside a durable job", () =>
      provide(Effect.gen(function*() {
        const seen: Array<[Option.Option<JobQueue.CurrentJob>, number]> = []
        yield* JobQueue.consume({
          ...options,
          queues: ["tenant-a", "tenant-b"],
          handlers: [Task.handle(Echo, ({ n }) =>
            Effect.gen(function*() {
              const job = yield* JobQueue.CurrentJob
              seen.push([job, (yield* WorkPool.JobContext).attempt])
              // the first attempt of job 1 fails: its retry is attempt 2
              return n === 1 && seen.length === 1 ? yield* Effect.fail(new Boom({ n })) : n
            }))]
        })
        const retried = yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "tenant-b", priority: 5, dedupKey: "echo:1", maxAttempts: 4 })
        yield* tick(3000)
        assert.strictEqual(yield* retried.await, 1)
        const plain = yield* JobQueue.enqueue(Echo, { n: 2 }, { queue: "tenant-a" })
        yield* tick(1000)
        assert.strictEqual(yield* plain.await, 2)
        const expected = (id: string, attempt: number) =>
          Effect.map(JobQueue.status(id), (info): [Option.Option<JobQueue.CurrentJob>, number] => [
            Option.some({
              id,
              queue: info.queue,
              task: "Echo",
              attempt,
              maxAttempts: info.maxAttempts,
              createdAt: info.createdAt,
              dedupKey: info.dedupKey,
              priority: info.priority
            }),
            attempt
          ])
        assert.deepStrictEqual(seen, [yield* expected(retried.id, 1), yield* expected(retried.id, 2), yield* expected(plain.id, 1)])
        assert.deepStrictEqual(
          seen.map(([job]) => Option.map(job, ({ dedupKey, maxAttempts, priority, queue }) => [queue, priority, dedupKey, maxAttempts])),
          [Option.some(["tenant-b", 5, "echo:1", 4]), Option.some(["tenant-b", 5, "echo:1", 4]), Option.some(["tenant-a", 0, undefined, 3])]
        )
        // outside a consumer's handler: none, a value and not a defect (a pool's own job too)
        assert.isTrue(Option.isNone(yield* JobQueue.CurrentJob))
        const pool = yield* WorkPool.make({ concurrency: 1 })
        assert.isTrue(Option.isNone(yield* pool.run(JobQueue.CurrentJob)))
      })))

    it.effect("JobQueue.CurrentJob of a job taken back after its lease expired (its consumer died) and run by another consumer: its new attempt, the same id", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { maxAttempts: 3 })
        // a consumer claims it and dies (kill -9): nobody renews, nobody settles
        const [claim] = (yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 1, lease: LEASE })).claims
        assert.deepStrictEqual([claim?.job.id, claim?.job.attempts], [job.id, 1])
        const seen: Array<Option.Option<JobQueue.CurrentJob>> = []
        yield* JobQueue.consume({
          ...options,
          handlers: [Task.handle(Echo, ({ n }) => Effect.map(JobQueue.CurrentJob, (current) => (seen.push(current), n)))]
        })
        yield* tick(LEASE * 2 + 2000)
        assert.strictEqual(yield* job.await, 1)
        assert.deepStrictEqual(seen.map(Option.map(({ attempt, id }) => [id, attempt])), [Option.some([job.id, 2])])
      })))

    it.effect("progress reported by the handler is in the store, from any process, and kept after the job ends", () =>
      provide(Effect.gen(function*() {
        const gate = yield* Deferred.make<void>()
        const job = yield* JobQueue.enqueue(Echo, { n: 1 })
        // read before a consumer runs: with one running, its first report could land first
        assert.strictEqual((yield* JobQueue.status(job.id)).progress, undefined)
        yield* JobQueue.consume({
          ...options,
          handlers: [twoSteps(gate)]
        })
        yield* tick(100)
        assert.deepStrictEqual((yield* JobQueue.status(job.id)).progress, { done: 1, of: 2 })
        yield* Deferred.succeed(gate, undefined)
        assert.strictEqual(yield* job.await, 1)
        assert.deepStrictEqual((yield* JobQueue.status(job.id)).progress, { done: 2, of: 2 })
      })))

    it.effect("a handle's progressChanges: the stored progress, then each newer value, ending with the job (read from the store, as any process would)", () =>
      provide(Effect.gen(function*() {
        const gate = yield* Deferred.make<void>()
        yield* JobQueue.consume({
          ...options,
          handlers: [twoSteps(gate)]
        })
        const job = yield* JobQueue.enqueue(Echo, { n: 1 })
        const seen: Array<unknown> = []
        const reader = yield* Effect.forkChild(Stream.runForEach(job.progressChanges, (value) => Effect.sync(() => seen.push(value))))
        yield* tick(300)
        assert.deepStrictEqual(seen, [{ done: 1, of: 2 }])
        yield* Deferred.succeed(gate, undefined)
        assert.strictEqual(yield* job.await, 1)
        yield* Fiber.join(reader)
        assert.deepStrictEqual(seen, [{ done: 1, of: 2 }, { done: 2, of: 2 }])
        // a job that ended: its last value, and the stream ends; an unknown id fails
        assert.deepStrictEqual(yield* Stream.runCollect(JobQueue.handleOf(Echo, job.id).progressChanges), [{ done: 2, of: 2 }])
        assert.instanceOf(yield* Effect.flip(Stream.runCollect(JobQueue.progressChanges("nope"))), DurableError.JobNotFound)
      })))

    it.effect("progressChanges reads a job's state and progress, never its whole row (payload, result), however often it looks", () => {
      const reads = { get: 0, progressOf: 0 }
      const counting = Layer.effect(
        JobStore.JobStore,
        Effect.map(JobStore.JobStore, (store): Store => ({
          ...store,
          get: (id) => Effect.andThen(Effect.sync(() => reads.get++), store.get(id)),
          progressOf: (id) => Effect.andThen(Effect.sync(() => reads.progressOf++), store.progressOf(id))
        }))
      ).pipe(Layer.provide(makeLayer()))
      const gate = Deferred.makeUnsafe<void>()
      return Effect.gen(function*() {
        yield* JobQueue.consume({ ...options, handlers: [twoSteps(gate)] })
        const job = yield* JobQueue.enqueue(Echo, { n: 1 })
        const seen: Array<unknown> = []
        const reader = yield* Effect.forkChild(Stream.runForEach(job.progressChanges, (value) => Effect.sync(() => seen.push(value))))
        yield* tick(1000)
        assert.deepStrictEqual(seen, [{ done: 1, of: 2 }])
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(reader)
        assert.deepStrictEqual(seen, [{ done: 1, of: 2 }, { done: 2, of: 2 }])
        // it looked several times (the first look, each 250 ms, the end) and never read a row
        assert.isAtLeast(reads.progressOf, 4)
        assert.strictEqual(reads.get, 0)
        assert.isUndefined(yield* (yield* JobStore.JobStore).progressOf("nope"))
      }).pipe(
        Effect.ensuring(Effect.suspend(() => Deferred.succeed(gate, undefined))),
        Effect.provide(counting)
      )
    })

    it.effect("progress is written to the store throttled: a handler reporting in a loop costs one write per interval, and its last value is stored", () => {
      const writes = { count: 0 }
      const counting = Layer.effect(
        JobStore.JobStore,
        Effect.map(JobStore.JobStore, (store): Store => ({
          ...store,
          progress: (token, value) => Effect.andThen(Effect.sync(() => writes.count++), store.progress(token, value))
        }))
      ).pipe(Layer.provide(makeLayer()))
      const gate = Deferred.makeUnsafe<void>()
      return Effect.gen(function*() {
        yield* JobQueue.consume({
          ...options,
          handlers: [Task.handle(Echo, ({ n }) =>
            Effect.gen(function*() {
              const job = yield* WorkPool.JobContext
              for (let done = 1; done <= 100; done++) {
                yield* job.progress({ done, of: 200 })
                yield* Effect.yieldNow
              }
              yield* Deferred.await(gate)
              for (let done = 101; done <= 200; done++) {
                yield* job.progress({ done, of: 200 })
                yield* Effect.yieldNow
              }
              return n
            }))]
        })
        const job = yield* JobQueue.enqueue(Echo, { n: 1 })
        yield* tick(100)
        // 100 reports within one interval: one of the first is written, the rest wait for the interval
        assert.strictEqual(writes.count, 1)
        const early = (yield* JobQueue.status(job.id)).progress as { done: number }
        assert.isBelow(early.done, 100)
        yield* tick(200) // the interval (250 ms) is over: the latest value
        assert.strictEqual(writes.count, 2)
        assert.deepStrictEqual((yield* JobQueue.status(job.id)).progress, { done: 100, of: 200 })
        // 100 more, then it ends at once: its last value is written before its outcome, not an interval later
        yield* Deferred.succeed(gate, undefined)
        assert.strictEqual(yield* job.await, 1)
        assert.deepStrictEqual((yield* JobQueue.status(job.id)).progress, { done: 200, of: 200 })
        assert.isAtMost(writes.count, 4)
      }).pipe(
        // a failed assertion must not leave the handler holding the consumer's shutdown
        Effect.ensuring(Effect.suspend(() => Deferred.succeed(gate, undefined))),
        Effect.provide(counting)
      )
    })

    describe("durable progress at the edges", () => {
      const reportThen = (end: Effect.Effect<number, Boom>) =>
        Task.handle(Echo, () =>
          Effect.gen(function*() {
            const job = yield* WorkPool.JobContext
            yield* job.progress({ step: 1 })
            yield* Effect.yieldNow
            yield* job.progress({ step: 2 })
            return yield* end
          }))

      it.effect("the last value reported before a failure is stored with the dead job (not an interval later, when the fence refuses it)", () =>
        provide(Effect.gen(function*() {
          yield* JobQueue.consume({ ...options, handlers: [reportThen(Effect.fail(new Boom({ n: 1 })))] })
          const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { maxAttempts: 1 })
          yield* tick(100)
          const info = yield* JobQueue.status(job.id)
          assert.strictEqual(info.state, "dead")
          assert.deepStrictEqual(info.progress, { step: 2 })
        })))

      it.effect("the last value reported before an attempt times out is stored", () =>
        provide(Effect.gen(function*() {
          yield* JobQueue.consume({ ...options, handlers: [reportThen(Effect.never)] })
          const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { maxAttempts: 1, timeout: "1 second" })
          yield* tick(1500)
          const info = yield* JobQueue.status(job.id)
          assert.strictEqual(info.state, "dead")
          assert.deepStrictEqual(info.progress, { step: 2 })
        })))

      it.effect("the last value reported before the consumer shuts down is stored with the job given back", () =>
        provide(Effect.gen(function*() {
          const job = yield* JobQueue.enqueue(Echo, { n: 1 })
          const closing = yield* Effect.forkChild(Effect.scoped(Effect.gen(function*() {
            yield* JobQueue.consume({ ...options, shutdownTimeout: "1 second", handlers: [reportThen(Effect.never)] })
            yield* tick(100)
          })))
          yield* tick(2000)
          yield* Fiber.join(closing)
          const info = yield* JobQueue.status(job.id)
          assert.strictEqual(info.state, "queued")
          assert.deepStrictEqual(info.progress, { step: 2 })
        })))

      it.effect("progressChanges of a job cancelled while queued ends empty; an empty id is JobNotFound, and so is an id that is not a string (not a defect), for status, cancel and redrive too", () =>
        provide(Effect.gen(function*() {
          const queued = yield* JobQueue.enqueue(Echo, { n: 1 })
          yield* JobQueue.cancel(queued.id)
          assert.deepStrictEqual(yield* Stream.runCollect(queued.progressChanges), [])
          assert.instanceOf(yield* Effect.flip(Stream.runCollect(JobQueue.progressChanges(""))), DurableError.JobNotFound)
          // an untyped caller's id that is not a string: JobNotFound naming it, not a defect
          for (const run of [Stream.runCollect(JobQueue.progressChanges(42 as any)), JobQueue.status(42 as any), JobQueue.cancel(null as any), JobQueue.redrive({} as any)]) {
            const error = yield* Effect.flip(run as Effect.Effect<unknown, unknown>)
            assert.instanceOf(error, DurableError.JobNotFound)
          }
        })))

      it.effect("progress that is not JSON (BigInt, cycle, throwing toJSON) is not stored and says so once, with the job's id; the job succeeds", () =>
        provide(Effect.gen(function*() {
          const warned: Array<unknown> = []
          const collector = Logger.make((options) => {
            if (options.logLevel === "Warn") warned.push([options.message, options.fiber.getRef(References.CurrentLogAnnotations).jobId])
          })
          yield* JobQueue.consume({
            ...options,
            handlers: [Task.handle(Echo, ({ n }) =>
              Effect.gen(function*() {
                const job = yield* WorkPool.JobContext
                yield* job.progress({ step: 1 })
                yield* job.progress(10n)
                const cyc: any = {}
                cyc.self = cyc
                yield* job.progress(cyc)
                yield* job.progress({ toJSON() { throw new Error("no") } })
                return n
              }))]
          }).pipe(Effect.provide(Logger.layer([collector])))
          const job = yield* JobQueue.enqueue(Echo, { n: 1 })
          assert.strictEqual(yield* job.await, 1)
          assert.strictEqual(warned.length, 1, "once per attempt, not once per report")
          const [message, jobId] = warned[0] as [ReadonlyArray<unknown>, unknown]
          assert.match(String(message[0]), /progress is not JSON/)
          assert.strictEqual(jobId, job.id)
          assert.isUndefined((yield* JobQueue.status(job.id)).progress)
        })))

      it.effect("a progressChanges reader follows a job through its retry: the second attempt's values too, ending with the job", () =>
        provide(Effect.gen(function*() {
          let attempt = 0
          yield* JobQueue.consume({
            ...options,
            handlers: [Task.handle(Echo, ({ n }) =>
              Effect.gen(function*() {
                const job = yield* WorkPool.JobContext
                attempt++
                yield* job.progress({ attempt })
                if (attempt === 1) return yield* Effect.fail(new Boom({ n }))
                return n
              }))]
          })
          const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { maxAttempts: 2 })
          const seen: Array<unknown> = []
          const reader = yield* Effect.forkChild(Stream.runForEach(job.progressChanges, (v) => Effect.sync(() => seen.push(v))))
          yield* tick(3000)
          assert.strictEqual(yield* job.await, 1)
          yield* Fiber.join(reader)
          assert.deepStrictEqual(seen, [{ attempt: 1 }, { attempt: 2 }])
        })))
    })

    it.effect("7. a running job's cancel wakes its consumer's heartbeat at once: no wait for the next beat", () =>
      provide(Effect.gen(function*() {
        const finalized = yield* Ref.make(0)
        yield* JobQueue.consume({
          ...options,
          handlers: [Task.handle(Echo, () => Effect.never.pipe(Effect.ensuring(Ref.update(finalized, (n) => n + 1))))]
        })
        const job = yield* JobQueue.enqueue(Echo, { n: 1 })
        yield* tick(100)
        assert.strictEqual(yield* job.cancel, "requested")
        yield* tick(10) // far less than a heartbeat (lease / 3)
        assert.deepStrictEqual([yield* stateOf(job.id), yield* Ref.get(finalized)], ["cancelled", 1])
      })))

    it.effect("7. cancels of another consumer's jobs, one every 4 ms for 200 ms: a consumer beats a few times for them, not once per cancel; each cancel still reaches its job within 100 ms", () =>
      Effect.gen(function*() {
        const store = spy(makeLayer())
        yield* Effect.gen(function*() {
          const bystander = yield* heldForever
          const target = yield* heldForever
          yield* JobQueue.consume({ ...options, shutdownTimeout: 0, queues: ["quiet"], handlers: [bystander.handler], concurrency: 1 })
          yield* JobQueue.consume({ ...options, shutdownTimeout: 0, queues: ["busy"], handlers: [target.handler], concurrency: 50 })
          const quiet = yield* JobQueue.enqueue(Echo, { n: 0 }, { queue: "quiet" })
          const busy = yield* JobQueue.enqueueAll(Echo, Array.from({ length: 50 }, (_, n) => ({ payload: { n } })), { queue: "busy" })
          yield* tickUntil(
            Effect.map(Effect.all([Ref.get(bystander.started), Ref.get(target.started)]), ([quiet, busy]) => quiet === 1 && busy === 50),
            "every job started",
            10
          )
          const token = store.claims.find((claim) => claim.queues.includes("quiet"))!.tokens[0]!
          const beatsOfQuiet = () => store.beats.log.filter((beat) => beat.tokens.includes(token)).length
          const before = beatsOfQuiet()
          const from = yield* Clock.currentTimeMillis
          const cancelledAt: Array<number> = []
          for (const job of busy) {
            assert.strictEqual(yield* JobQueue.cancel(job.id), "requested")
            cancelledAt.push(yield* Clock.currentTimeMillis)
            yield* tick(4, 4)
          }
          const storm = (yield* Clock.currentTimeMillis) - from
          // old: one beat of every running token per cancel, 50 of the bystander's (its regular
          // beats: one every lease / 3, 1 s)
          const beats = beatsOfQuiet() - before
          assert.isAtMost(beats, Math.ceil(storm / 100) + 1, `${beats} beats in ${storm} ms`)
          // and the consumer that runs them hears of each within 100 ms (a beat at most 100 ms after the last)
          yield* tick(200, 4)
          assert.strictEqual(target.interruptedAt.size, 50)
          const late = busy.map((_, n) => target.interruptedAt.get(n)! - cancelledAt[n]!).filter((ms) => ms > 100)
          assert.deepStrictEqual(late, [])
          assert.strictEqual(bystander.interruptedAt.size, 0)
          assert.strictEqual(yield* stateOf(quiet.id), "running")
        }).pipe(Effect.provide(store.layer))
      }))

    it.effect("10. stats per queue from the store, and the consumer's own pool stats", () =>
      provide(Effect.gen(function*() {
        yield* JobQueue.enqueue(Echo, { n: 1 }, { priority: 2 })
        yield* JobQueue.enqueue(Echo, { n: 2 }, { priority: 2, delay: "1 hour" })
        yield* JobQueue.enqueue(Echo, { n: 3 }, { priority: 1, maxAttempts: 1 })
        yield* JobQueue.enqueue(Echo, { n: 4 }, { queue: "elsewhere" })
        let stats = yield* JobQueue.stats("default")
        assert.deepStrictEqual(
          [stats.waiting, stats.delayed, stats.running, stats.queuedByPriority],
          [2, 1, 0, [{ priority: 2, count: 2 }, { priority: 1, count: 1 }]]
        )
        const consumer = yield* JobQueue.consume({
          ...options,
          handlers: [Task.handle(Echo, ({ n }) => n === 3 ? Effect.fail(new Boom({ n })) : Effect.succeed(n))]
        })
        yield* tick(100)
        stats = yield* JobQueue.stats("default")
        assert.deepStrictEqual([stats.waiting, stats.delayed, stats.succeeded, stats.dead], [0, 1, 1, 1])
        const own = yield* consumer.stats
        assert.deepStrictEqual([own.succeeded, own.failed], [1, 1])
        assert.strictEqual((yield* JobQueue.purge({ olderThan: 0 })), 2)
        assert.strictEqual((yield* JobQueue.stats("default")).succeeded, 0)
      })))

    it.effect("10. latencies: wait and run of the last attempt of each job that succeeded or went dead after the read that gave `since`, newest first, at most `limit`; a chain of reads counts each once", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const claim = (queue: string, limit: number) =>
          Effect.map(store.claim({ queues: [queue], tasks: ["Echo"], limit, lease: 60_000 }), ({ claims }) => claims)
        const done = (claim: { token: string }, state: "succeeded" | "dead") =>
          store.settle(claim.token, { _tag: "Final", state, exit: JSON.stringify({ _tag: "Success", value: 0 }) })
        // the first read of a chain only says where the store stands
        const start = yield* store.latencies("default", undefined, 10)
        assert.deepStrictEqual(start.jobs, [])
        yield* JobQueue.enqueue(Echo, { n: 1 }) // visible at t0
        yield* JobQueue.enqueue(Echo, { n: 2 }, { delay: "1 second" }) // visible at t0 + 1000
        yield* JobQueue.enqueue(Echo, { n: 3 }) // retried, then cancelled while it waits: no latency
        yield* JobQueue.enqueue(Echo, { n: 4 }, { queue: "elsewhere" })
        const never = yield* JobQueue.enqueue(Echo, { n: 5 }, { queue: "elsewhere" }) // cancelled before it ran
        yield* TestClock.adjust(300)
        const [a, c] = yield* claim("default", 2)
        const [d] = yield* claim("elsewhere", 1)
        yield* TestClock.adjust(200) // t0 + 500
        yield* done(a!, "succeeded")
        yield* done(d!, "succeeded")
        yield* store.settle(c!.token, { _tag: "Retry", delay: 10_000, exit: JSON.stringify({ _tag: "Success", value: 0 }) })
        yield* JobQueue.cancel(c!.job.id)
        yield* JobQueue.cancel(never.id)
        yield* TestClock.adjust(1)
        const middle = yield* store.latencies("default", undefined, 0)
        yield* TestClock.adjust(699) // t0 + 1200: the delayed job has waited 200 ms since it became visible
        const [b] = yield* claim("default", 1)
        assert.strictEqual(JSON.parse(b!.job.payload).n, 2)
        yield* TestClock.adjust(300) // t0 + 1500
        yield* done(b!, "dead")
        yield* TestClock.adjust(1)
        const all = yield* store.latencies("default", start.until, 10)
        assert.deepStrictEqual(all.jobs, [{ wait: 200, run: 300 }, { wait: 300, run: 200 }])
        assert.deepStrictEqual((yield* store.latencies("default", start.until, 1)).jobs, [{ wait: 200, run: 300 }], "the newest")
        assert.deepStrictEqual((yield* store.latencies("default", middle.until, 10)).jobs, [{ wait: 200, run: 300 }])
        assert.deepStrictEqual((yield* store.latencies("elsewhere", start.until, 10)).jobs, [{ wait: 300, run: 200 }])
        // reads that follow each other (`since` = the last `until`) count a job once, in the first
        // that can see it, even when it ends at the very time the last one looked
        const first = yield* store.latencies("default", all.until, 10)
        assert.deepStrictEqual(first.jobs, [])
        yield* JobQueue.enqueue(Echo, { n: 6 })
        const [e] = yield* claim("default", 1)
        yield* done(e!, "succeeded")
        const second = yield* store.latencies("default", first.until, 10)
        yield* TestClock.adjust(1)
        const third = yield* store.latencies("default", second.until, 10)
        assert.deepStrictEqual([...second.jobs, ...third.jobs], [{ wait: 0, run: 0 }])
        assert.deepStrictEqual((yield* store.latencies("default", third.until, 10)).jobs, [])
      })))

    it.effect("latencies: a chain of reads, some at the very time jobs end, others between ends and the clock's steps, counts every end once", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        let cursor = (yield* store.latencies("chain", undefined, 100)).until
        let counted = 0
        const read = Effect.gen(function*() {
          const found = yield* store.latencies("chain", cursor, 100)
          counted += found.jobs.length
          cursor = found.until
        })
        for (let i = 0; i < 24; i++) {
          yield* JobQueue.enqueue(Echo, { n: i }, { queue: "chain" })
          const [claim] = (yield* store.claim({ queues: ["chain"], tasks: ["Echo"], limit: 1, lease: 60_000 })).claims
          if (i % 2 === 0) yield* read // before the end, at its time
          yield* store.settle(claim!.token, { _tag: "Final", state: i % 5 === 0 ? "dead" : "succeeded", exit: JSON.stringify({ _tag: "Success", value: i }) })
          if (i % 3 === 0) yield* read // at the end's time
          if (i % 4 === 1) yield* TestClock.adjust(1)
        }
        yield* TestClock.adjust(1)
        yield* read
        yield* read
        assert.strictEqual(counted, 24)
      })))

    it.effect("latencies: a cursor the store did not make fails with a StoreError naming it", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        for (const since of ["", "soon", "-1", "1.5", "1:2:x"]) {
          const error = yield* Effect.flip(store.latencies("default", since, 10))
          assert.instanceOf(error, DurableError.StoreError)
          assert.strictEqual(error.operation, "latencies")
          assert.include(error.reason, `since: ${JSON.stringify(since)} is not a cursor of this store`)
        }
      })))

    it.effect("latencies of a job reaped to dead (its lease expired, no attempt left) and of a dead job redriven: each end counts once, in its own interval, with that attempt's times", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const claim = () => Effect.map(store.claim({ queues: ["reaped"], tasks: ["Echo"], limit: 1, lease: 1000 }), ({ claims }) => claims[0]!)
        const start = yield* store.latencies("reaped", undefined, 10)
        const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "reaped", maxAttempts: 1 })
        yield* TestClock.adjust(100)
        yield* claim() // started at t0 + 100, its lease until t0 + 1100; its process is gone
        yield* TestClock.adjust(1500) // t0 + 1600
        assert.strictEqual(yield* store.reap([0]), 1)
        assert.strictEqual((yield* JobQueue.status(job.id)).state, "dead")
        yield* TestClock.adjust(1)
        const first = yield* store.latencies("reaped", start.until, 10)
        assert.deepStrictEqual(first.jobs, [{ wait: 100, run: 1500 }], "dead when reaped: it ran until then")
        // redriven: queued again at t0 + 1601, claimed 50 ms later, succeeds 20 ms after that
        assert.isTrue(yield* JobQueue.redrive(job.id))
        assert.deepStrictEqual((yield* store.latencies("reaped", first.until, 10)).jobs, [], "no longer dead: nothing new")
        yield* TestClock.adjust(50)
        const again = yield* claim()
        yield* TestClock.adjust(20)
        yield* store.settle(again.token, { _tag: "Final", state: "succeeded", exit: JSON.stringify({ _tag: "Success", value: 1 }) })
        yield* TestClock.adjust(1)
        assert.deepStrictEqual((yield* store.latencies("reaped", first.until, 10)).jobs, [{ wait: 50, run: 20 }])
        // over the whole time: the job once, as it is now (its dead end is not kept apart)
        assert.deepStrictEqual((yield* store.latencies("reaped", start.until, 10)).jobs, [{ wait: 50, run: 20 }])
      })))

    it.effect("a paused consumer claims nothing; resumed, it goes on", () =>
      provide(Effect.gen(function*() {
        const consumer = yield* JobQueue.consume({ ...options, handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))] })
        yield* consumer.pause
        const job = yield* JobQueue.enqueue(Echo, { n: 1 })
        yield* tick(3000)
        assert.strictEqual(yield* stateOf(job.id), "queued")
        yield* consumer.resume
        yield* tick(100)
        assert.strictEqual(yield* job.await, 1)
      })))

    it.effect("11. bad options fail with a typed error naming the field; nothing is stored", () =>
      provide(Effect.gen(function*() {
        const bad = [
          [{ priority: Number.NaN }, "priority"],
          [{ delay: "soon" }, "delay"],
          [{ maxAttempts: 0 }, "maxAttempts"],
          [{ queue: "" }, "queue"],
          [{ runAt: new Date(Number.NaN) }, "runAt"],
          [{ timeout: 0 }, "timeout"]
        ] as const
        for (const [opts, field] of bad) {
          const error = yield* Effect.flip(JobQueue.enqueue(Echo, { n: 1 }, opts as JobQueue.EnqueueOptions))
          assert.strictEqual(error._tag, "InvalidJobOptions")
          assert.strictEqual((error as { field: string }).field, field)
        }
        const codec = yield* Effect.flip(JobQueue.enqueue(Echo, { n: "x" } as never))
        assert.instanceOf(codec, TaskCodecError)
        assert.strictEqual((yield* JobQueue.list()).length, 0)
        const config = yield* Effect.flip(JobQueue.consume({ handlers: [], concurrency: 1 }))
        assert.strictEqual(config.field, "handlers")
        const lease = yield* Effect.flip(JobQueue.consume({ ...options, lease: 0, handlers: [Task.handle(Echo, () => Effect.succeed(1))] }))
        assert.strictEqual(lease.field, "lease")
      })))

    // --- rate limits shared by every consumer of a queue (issue 10, item 3)

    it.effect("rate limit: a queue's claims, by any claimer, are at most `limit` in any window; the claim says how long until the window frees", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        yield* JobQueue.setRateLimit("default", { limit: 3, interval: "1 second" })
        for (let n = 0; n < 10; n++) yield* JobQueue.enqueue(Echo, { n }, { priority: n % 2 })
        const claim = (limit: number) => store.claim({ queues: ["default"], tasks: ["Echo"], limit, lease: 60_000 })
        const first = yield* claim(2)
        assert.deepStrictEqual([first.claims.length, first.limitedFor], [2, 0], "within the limit: nothing held back")
        yield* TestClock.adjust(400)
        // another claimer (another process): the window has one slot left
        const second = yield* claim(10)
        assert.deepStrictEqual([second.claims.length, second.limitedFor], [1, 600])
        // best first, across claimers: the odd (priority 1) jobs, oldest first
        assert.deepStrictEqual([...first.claims, ...second.claims].map((c) => JSON.parse(c.job.payload).n), [1, 3, 5])
        const stats = yield* JobQueue.stats("default")
        assert.deepStrictEqual(stats.rateLimit, { limit: 3, interval: 1000, available: 0 })
        yield* TestClock.adjust(599)
        const early = yield* claim(10)
        assert.deepStrictEqual([early.claims.length, early.limitedFor], [0, 1])
        yield* TestClock.adjust(1)
        // the two claims of t=0 are a second old: two slots; the one of t=400 frees at 1400
        const third = yield* claim(10)
        assert.deepStrictEqual([third.claims.length, third.limitedFor], [2, 400])
        yield* TestClock.adjust(400)
        assert.strictEqual((yield* claim(1)).claims.length, 1)
        assert.deepStrictEqual((yield* JobQueue.stats("default")).rateLimit, { limit: 3, interval: 1000, available: 0 })
        // a queue without a limit says so
        assert.strictEqual((yield* JobQueue.stats("other")).rateLimit, undefined)
      })))

    it.effect("rate limit: a new limit keeps the latest claims counted; removing it lifts it; a claim over several queues limits only the limited one", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        yield* JobQueue.setRateLimit("default", { limit: 4, interval: "1 second" })
        for (let n = 0; n < 10; n++) yield* JobQueue.enqueue(Echo, { n })
        for (let n = 0; n < 3; n++) yield* JobQueue.enqueue(Echo, { n: 100 + n }, { queue: "free" })
        const claim = (queues: ReadonlyArray<string>, limit: number) => store.claim({ queues, tasks: ["Echo"], limit, lease: 60_000 })
        assert.strictEqual((yield* claim(["default"], 3)).claims.length, 3)
        // 3 claims in the window: a limit of 2 allows none until they are a second old
        yield* JobQueue.setRateLimit("default", { limit: 2, interval: "1 second" })
        const mixed = yield* claim(["default", "free"], 10)
        assert.deepStrictEqual(mixed.claims.map((c) => c.job.queue), ["free", "free", "free"])
        assert.strictEqual(mixed.limitedFor, 1000)
        yield* TestClock.adjust(1000)
        assert.strictEqual((yield* claim(["default"], 10)).claims.length, 2)
        yield* JobQueue.setRateLimit("default", undefined)
        assert.strictEqual((yield* JobQueue.stats("default")).rateLimit, undefined)
        const lifted = yield* claim(["default"], 10)
        assert.deepStrictEqual([lifted.claims.length, lifted.limitedFor], [5, 0])
      })))

    it.effect("rate limit: two consumers of a limited queue start at most `limit` jobs per window between them, in priority order", () =>
      provide(Effect.gen(function*() {
        yield* JobQueue.setRateLimit("default", { limit: 2, interval: "1500 millis" })
        const order: Array<number> = []
        const handlers = [Task.handle(Echo, ({ n }) => Effect.andThen(Effect.sync(() => order.push(n)), Effect.sleep("10 millis")).pipe(Effect.as(n)))]
        const jobs = yield* Effect.forEach(Array.from({ length: 8 }, (_, n) => n), (n) => JobQueue.enqueue(Echo, { n }, { priority: n }))
        yield* JobQueue.consume({ ...options, concurrency: 5, handlers })
        yield* JobQueue.consume({ ...options, concurrency: 5, handlers })
        yield* tick(6000)
        const infos = yield* Effect.forEach(jobs, (job) => JobQueue.status(job.id))
        assert.isTrue(infos.every((info) => info.state === "succeeded"), JSON.stringify(infos.map((i) => i.state)))
        const starts = infos.map((info) => info.startedAt!.getTime()).sort((a, b) => a - b)
        // the window slides from the first start: 2 jobs every 1.5 seconds
        for (let i = 2; i < starts.length; i++) assert.isAtLeast(starts[i]! - starts[i - 2]!, 1500, JSON.stringify(starts))
        // (polling once a second, they would start at 0, 2, 4 and 6 seconds)
        assert.isAtMost(starts[7]! - starts[0]!, 4500 + 200, "each consumer claims again once the window frees, not a poll later")
        assert.deepStrictEqual(order, [7, 6, 5, 4, 3, 2, 1, 0])
      })))

    it.effect("rate limit: a consumer's own limit claims only what may start now (no lease on a job it cannot start)", () =>
      provide(Effect.gen(function*() {
        const consumer = yield* JobQueue.consume({
          ...options,
          concurrency: 10,
          rateLimit: { limit: 2, interval: "1 second" },
          handlers: [Task.handle(Echo, ({ n }) => Effect.as(Effect.sleep("5 seconds"), n))]
        })
        for (let n = 0; n < 5; n++) yield* JobQueue.enqueue(Echo, { n })
        yield* tick(100)
        const stats = yield* JobQueue.stats("default")
        assert.deepStrictEqual([stats.running, stats.waiting], [2, 3], "claimed only what started")
        const own = yield* consumer.stats
        assert.deepStrictEqual([own.running, own.rateLimited], [2, 8])
        yield* tick(1000)
        assert.strictEqual((yield* JobQueue.stats("default")).running, 4)
        yield* consumer.setRateLimit(undefined)
        yield* tick(100)
        assert.strictEqual((yield* JobQueue.stats("default")).running, 5)
        const bad = yield* Effect.flip(consumer.setRateLimit({ limit: 0, interval: "1 second" }))
        assert.strictEqual(bad.field, "rateLimit.limit")
        yield* consumer.shutdownNow
      })))

    it.effect("rate limit: a consumer held back by its queue's limit shows the idle slots, and claims once the window frees", () =>
      provide(Effect.gen(function*() {
        yield* JobQueue.setRateLimit("default", { limit: 1, interval: "10 seconds" })
        for (let n = 0; n < 3; n++) yield* JobQueue.enqueue(Echo, { n })
        const consumer = yield* JobQueue.consume({ ...options, concurrency: 3, handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))] })
        yield* tick(100)
        assert.deepStrictEqual([(yield* JobQueue.stats("default")).succeeded, (yield* consumer.stats).rateLimited], [1, 3])
        yield* tick(10_000)
        assert.strictEqual((yield* JobQueue.stats("default")).succeeded, 2)
        yield* consumer.shutdownNow
      })))

    // a limit changed while a consumer waits for the window (issue: setRateLimit heard by the consumers)
    const heldBack = (concurrency: number) =>
      Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        // `waiting`: its waits on the store for its queue (not its naps on the clock) going on now
        const counter = { claims: 0, waiting: 0 }
        const started: Array<number> = []
        // a claim started by a timer inside a `tick` step (or woken by a real server's marker or
        // LISTEN in real time) is still in flight while TestClock.adjust runs on to the step's end (a
        // minute below): its answer comes a step after the look its `limitedFor` counts from, and the
        // consumer, which waits that long from the answer, woke up to a step past the window's end (a
        // jump no real clock makes in a round trip; it failed the last assertion under load). Counted
        // from the answer instead, it names the same instant the store did: the window's end
        const counting: Store = {
          ...store,
          claim: (request) =>
            Effect.gen(function*() {
              counter.claims++
              const asked = yield* Clock.currentTimeMillis
              const claimed = yield* store.claim(request)
              const moved = (yield* Clock.currentTimeMillis) - asked
              return moved > 0 && claimed.limitedFor > 0 ? { ...claimed, limitedFor: Math.max(1, claimed.limitedFor - moved) } : claimed
            }),
          wait: (millis, since, idleOn, tasks) =>
            idleOn === undefined ? store.wait(millis, since, idleOn, tasks) : Effect.acquireUseRelease(
              Effect.sync(() => counter.waiting++),
              () => store.wait(millis, since, idleOn, tasks),
              () => Effect.sync(() => counter.waiting--)
            )
        }
        yield* JobQueue.setRateLimit("default", { limit: 1, interval: "1 hour" })
        for (let n = 0; n < 4; n++) yield* JobQueue.enqueue(Echo, { n }, { priority: -n })
        // polling once an hour with a window of an hour: only the change itself can start a job within the test
        const consumer = yield* Effect.provideService(
          JobQueue.consume({
            ...options,
            concurrency,
            poll: "1 hour",
            lease: "1 hour",
            handlers: [Task.handle(Echo, ({ n }) => Effect.sync(() => (started.push(n), n)))]
          }),
          JobStore.JobStore,
          counting
        )
        // the claim of the wake-up its store owes it once it hears its queue (Postgres: after the
        // LISTEN, answered in real time) is before the count, not within a test's first change. The
        // store hears the queue while the consumer waits on it there: held back, it naps first, on the clock
        yield* tickUntil(Effect.sync(() => counter.waiting > 0), "the held-back consumer waits on its store")
        yield* listening(["default"])
        yield* quiesce
        assert.deepStrictEqual(started, [0], "the window let one start")
        return { counter, started, consumer }
      })

    it.effect("rate limit: a queue's limit lifted or raised reaches its held-back consumer at once, not at its poll", () =>
      provide(Effect.gen(function*() {
        const { started } = yield* heldBack(4)
        yield* JobQueue.setRateLimit("default", { limit: 2, interval: "1 hour" })
        yield* tick(100)
        assert.deepStrictEqual(started, [0, 1], "raised to 2: one more starts now")
        yield* JobQueue.setRateLimit("default", undefined)
        yield* tick(100)
        assert.deepStrictEqual(started, [0, 1, 2, 3], "lifted: the rest start now")
      })))

    it.effect("rate limit: a queue's limit re-set, lowered or changed on another queue costs a held-back consumer at most one claim per change, and lets nothing through", () =>
      provide(Effect.gen(function*() {
        const { counter, started } = yield* heldBack(4)
        const claimsAfter = (change: Effect.Effect<unknown, unknown, JobStore.JobStore>) =>
          Effect.gen(function*() {
            const before = counter.claims
            yield* change
            yield* tick(1000)
            return counter.claims - before
          })
        assert.isAtMost(yield* claimsAfter(JobQueue.setRateLimit("default", { limit: 1, interval: "1 hour" })), 1, "the same limit")
        assert.isAtMost(yield* claimsAfter(JobQueue.setRateLimit("default", { limit: 1, interval: "2 hours" })), 1, "a longer window")
        assert.isAtMost(yield* claimsAfter(JobQueue.setRateLimit("other", undefined)), 1, "another queue's")
        // 50 changes in a row that allow nothing more: at most a claim each, then quiet
        const many = yield* claimsAfter(Effect.forEach(
          Array.from({ length: 50 }, (_, n) => n),
          (n) => JobQueue.setRateLimit("default", { limit: 1, interval: n % 2 === 0 ? "1 hour" : "90 minutes" }),
          { discard: true }
        ))
        assert.isAtMost(many, 50)
        // a real server's wake-ups run on real time, not the test's clock (a late marker for the last
        // changes, the Redis idle watch's look every 5 s): a claim may come in a quiet second under a
        // loaded CI (it did, 2 runs in 3), but a loop claims at every 100 ms nap, ten in a second
        assert.isAtMost(yield* claimsAfter(Effect.void), 1, "at most a late claim for the last changes")
        assert.isAtMost(yield* claimsAfter(Effect.void), 1, "no loop: no claim at every nap without a change")
        assert.deepStrictEqual(started, [0], "no change let a job through the window")
        // the 50th change (90 minutes) is the one in force: the window frees at its time, not earlier
        yield* tick(60 * 60_000, 60_000)
        assert.deepStrictEqual(started, [0])
        yield* tick(30 * 60_000, 60_000)
        assert.deepStrictEqual(started, [0, 1])
      })))

    it.effect("rate limit: jobs enqueued to a limited queue 10 ms apart cost its held-back consumer a claim per 100 ms at most (the floor of its wait), not one per enqueue", () =>
      provide(Effect.gen(function*() {
        const { counter, started } = yield* heldBack(4)
        const before = counter.claims
        for (let n = 0; n < 100; n++) {
          yield* JobQueue.enqueue(Echo, { n: 10 + n })
          yield* tick(10, 10)
        }
        yield* tick(1000)
        // 1 s of enqueues: ~10 claims with the floor; one per enqueue (100) without it
        assert.isAtMost(counter.claims - before, 20)
        assert.deepStrictEqual(started, [0], "nothing through the window")
      })))

    it.effect("rate limit: a queue's limit lifted while its held-back consumer is paused starts nothing until the resume, then at once", () =>
      provide(Effect.gen(function*() {
        const { consumer, started } = yield* heldBack(4)
        yield* consumer.pause
        yield* JobQueue.setRateLimit("default", undefined)
        yield* tick(1000)
        assert.deepStrictEqual(started, [0])
        yield* consumer.resume
        yield* tick(100)
        assert.deepStrictEqual(started, [0, 1, 2, 3])
      })))

    it.effect("rate limit: a consumer's own limit lifted ends its wait for its window at once, polling once an hour", () =>
      provide(Effect.gen(function*() {
        const started: Array<number> = []
        const consumer = yield* JobQueue.consume({
          ...options,
          concurrency: 4,
          poll: "1 hour",
          lease: "1 hour",
          rateLimit: { limit: 1, interval: "1 hour" },
          handlers: [Task.handle(Echo, ({ n }) => Effect.sync(() => (started.push(n), n)))]
        })
        for (let n = 0; n < 3; n++) yield* JobQueue.enqueue(Echo, { n }, { priority: -n })
        yield* tick(100)
        assert.deepStrictEqual(started, [0])
        yield* consumer.setRateLimit({ limit: 2, interval: "1 hour" })
        yield* tick(100)
        assert.deepStrictEqual(started, [0, 1])
        yield* consumer.setRateLimit(undefined)
        yield* tick(100)
        assert.deepStrictEqual(started, [0, 1, 2])
      })))

    it.effect("rate limit: bad values are refused, naming the field", () =>
      provide(Effect.gen(function*() {
        const bad = [
          [{ limit: 0, interval: "1 second" }, "rateLimit.limit"],
          [{ limit: 5, interval: "never" }, "rateLimit.interval"],
          [{ limit: 5, interval: "1 second", per: "queue" }, "rateLimit.per"],
          ["10/s", "rateLimit"]
        ] as const
        for (const [rateLimit, field] of bad) {
          const error = yield* Effect.flip(JobQueue.setRateLimit("default", rateLimit as never))
          assert.strictEqual(error._tag, "InvalidJobOptions")
          assert.strictEqual((error as { field: string }).field, field)
          const config = yield* Effect.flip(
            JobQueue.consume({ ...options, rateLimit: rateLimit as never, handlers: [Task.handle(Echo, () => Effect.succeed(1))] })
          )
          assert.strictEqual(config.field, field)
        }
        assert.strictEqual((yield* Effect.flip(JobQueue.setRateLimit("", { limit: 1, interval: 1 })))._tag, "InvalidJobOptions")
      })))

    // --- a queue's cap on running jobs, shared by every consumer of the queue (setConcurrency)

    const SUCCESS = JSON.stringify({ _tag: "Success", value: 0 })

    it.effect("concurrency cap: claims by any claimer keep at most n running; each way a job stops running frees its slot, a cancel asked of a running one only once it settles", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        yield* JobQueue.setConcurrency("default", 2)
        const jobs = yield* Effect.forEach(Array.from({ length: 8 }, (_, n) => n), (n) => JobQueue.enqueue(Echo, { n }))
        const claim = (limit = 10) => Effect.map(store.claim({ queues: ["default"], tasks: ["Echo"], limit, lease: LEASE }), (c) => c.claims)
        const [a, b] = yield* claim()
        assert.deepStrictEqual([a, b].map((c) => JSON.parse(c!.job.payload).n), [0, 1], "the best two, in order")
        // another claimer (another process, as far as the store can tell): none free
        assert.strictEqual((yield* claim()).length, 0)
        assert.deepStrictEqual((yield* JobQueue.stats("default")).concurrency, { limit: 2, running: 2 })
        const next = (why: string) =>
          Effect.map(claim(), (claims) => {
            assert.strictEqual(claims.length, 1, why)
            return claims[0]!
          })
        assert.isTrue(yield* store.settle(a!.token, { _tag: "Final", state: "succeeded", exit: SUCCESS }))
        const c = yield* next("a final settle frees one slot")
        assert.isTrue(yield* store.settle(b!.token, { _tag: "Retry", delay: 60_000, exit: SUCCESS }))
        const d = yield* next("a retry frees one slot")
        assert.isTrue(yield* store.settle(c.token, { _tag: "Release" }))
        const e = yield* next("a release frees one slot")
        assert.strictEqual(yield* JobQueue.cancel(d.job.id), "requested")
        assert.strictEqual((yield* claim()).length, 0, "a running job asked to stop holds its slot until it stops")
        assert.isTrue(yield* store.settle(d.token, { _tag: "Final", state: "cancelled", exit: null }))
        const f = yield* next("its cancelled settle frees it")
        // a lease expired but not yet reaped still holds its slot (its process may still run it)
        yield* TestClock.adjust(LEASE + 1)
        assert.isTrue(yield* store.settle(e.token, { _tag: "Final", state: "succeeded", exit: SUCCESS }))
        const g = yield* next("e's settle frees one")
        assert.strictEqual((yield* claim()).length, 0, "f's lease expired, unreaped: still running")
        assert.strictEqual(yield* store.reap([0]), 1)
        const h = yield* next("the reap frees f's slot")
        assert.deepStrictEqual((yield* JobQueue.stats("default")).concurrency, { limit: 2, running: 2 })
        assert.deepStrictEqual([g, h].map((claim) => claim.job.queue), ["default", "default"])
        assert.strictEqual(yield* stateOf(jobs[1]!.id), "delayed", "retried, waiting for its delay")
      })))

    it.effect("concurrency cap: a claim over several queues caps only the capped one; a lowered cap holds claims until fewer run; 0 or undefined removes it", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        yield* JobQueue.setConcurrency("default", 3)
        for (let n = 0; n < 10; n++) yield* JobQueue.enqueue(Echo, { n }, { priority: 1 })
        for (let n = 0; n < 3; n++) yield* JobQueue.enqueue(Echo, { n: 100 + n }, { queue: "free" })
        const claim = (queues: ReadonlyArray<string>, limit = 10) =>
          Effect.map(store.claim({ queues, tasks: ["Echo"], limit, lease: 60_000 }), (c) => c.claims)
        const mixed = yield* claim(["default", "free"])
        assert.deepStrictEqual(mixed.map((c) => c.job.queue), ["default", "default", "default", "free", "free", "free"])
        yield* JobQueue.setConcurrency("default", 1)
        assert.deepStrictEqual((yield* JobQueue.stats("default")).concurrency, { limit: 1, running: 3 }, "lowering interrupts none")
        for (const claimed of mixed.slice(0, 2)) {
          assert.isTrue(yield* store.settle(claimed.token, { _tag: "Final", state: "succeeded", exit: SUCCESS }))
          assert.strictEqual((yield* claim(["default"])).length, 0, "still at or above the cap")
        }
        assert.isTrue(yield* store.settle(mixed[2]!.token, { _tag: "Final", state: "succeeded", exit: SUCCESS }))
        assert.strictEqual((yield* claim(["default"])).length, 1)
        yield* JobQueue.setConcurrency("default", 0)
        assert.strictEqual((yield* JobQueue.stats("default")).concurrency, undefined)
        assert.strictEqual((yield* claim(["default"], 3)).length, 3, "0 removes the cap")
        yield* JobQueue.setConcurrency("default", 4)
        assert.strictEqual((yield* claim(["default"])).length, 0, "4 running")
        yield* JobQueue.setConcurrency("default", undefined)
        assert.strictEqual((yield* claim(["default"])).length, 3, "undefined removes it: the rest")
        assert.strictEqual((yield* JobQueue.stats("free")).concurrency, undefined)
      })))

    it.effect("a fair claim respects a queue's cap: its rounds, the first's many jobs per queue and the later's one, stop at the queue's free slots, the other queues' taken", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        yield* JobQueue.setConcurrency("a", 2)
        for (let n = 0; n < 6; n++) yield* JobQueue.enqueue(Echo, { n }, { queue: "a" })
        for (let n = 100; n < 106; n++) yield* JobQueue.enqueue(Echo, { n }, { queue: "b" })
        const claim = (limit: number) =>
          Effect.map(store.claim({ queues: ["a", "b"], tasks: ["Echo"], limit, lease: 60_000, fair: true }), (c) => c.claims)
        // 5 slots per queue asked at once: a's cap gives 2
        const first = yield* claim(10)
        assert.deepStrictEqual(first.map((c) => c.job.queue).sort(), ["a", "a", "b", "b", "b", "b", "b", "b"])
        // one job per queue per round: a at its cap, b empty
        assert.strictEqual((yield* claim(1)).length, 0, "a at its cap")
        assert.strictEqual((yield* claim(3)).length, 0, "a at its cap")
        const settled = first.find((c) => c.job.queue === "a")!
        assert.isTrue(yield* store.settle(settled.token, { _tag: "Final", state: "succeeded", exit: SUCCESS }))
        assert.deepStrictEqual((yield* claim(3)).map((c) => c.job.queue), ["a"], "the one slot freed")
        assert.deepStrictEqual((yield* JobQueue.stats("a")).concurrency, { limit: 2, running: 2 })
      })))

    it.effect("a fair claim under caps and rate limits together: each queue takes the least of its window and its free slots, the others the rest", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        yield* JobQueue.setConcurrency("capped", 2)
        yield* JobQueue.setRateLimit("limited", { limit: 3, interval: "1 hour" })
        yield* JobQueue.setConcurrency("both", 3)
        yield* JobQueue.setRateLimit("both", { limit: 1, interval: "1 hour" })
        for (const queue of ["capped", "limited", "both", "free"]) {
          for (let n = 0; n < 5; n++) yield* JobQueue.enqueue(Echo, { n }, { queue })
        }
        const claim = (limit: number) =>
          Effect.map(
            store.claim({ queues: ["capped", "limited", "both", "free"], tasks: ["Echo"], limit, lease: 60_000, fair: true }),
            (c) => c.claims.map((claimed) => claimed.job.queue).sort()
          )
        assert.deepStrictEqual(yield* claim(20), ["both", "capped", "capped", "free", "free", "free", "free", "free", "limited", "limited", "limited"])
        assert.deepStrictEqual(yield* claim(20), [], "every queue at its cap, its window full or empty")
        yield* JobQueue.setConcurrency("both", 1)
        yield* JobQueue.setRateLimit("both", undefined)
        assert.deepStrictEqual(yield* claim(20), [], "both: its lowered cap reached")
        yield* JobQueue.setConcurrency("both", 2)
        assert.deepStrictEqual(yield* claim(20), ["both"], "both: one slot more")
      })))

    it.effect("a \"queued\"-mode dedup key held back by a cap: its key released as the job starts, not before; a fair claim too", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        yield* JobQueue.setConcurrency("default", 1)
        const options = { dedupKey: "k", dedupWhile: "queued" } as const
        const claim = () =>
          Effect.map(store.claim({ queues: ["default"], tasks: ["Echo"], limit: 2, lease: 60_000, fair: true }), (c) => c.claims)
        const first = yield* JobQueue.enqueue(Echo, { n: 1 }, options)
        const [running] = yield* claim()
        assert.strictEqual(running!.job.id, first.id)
        const second = yield* JobQueue.enqueue(Echo, { n: 2 }, options)
        assert.isTrue(second.created, "released as the first started")
        assert.strictEqual((yield* claim()).length, 0, "the cap holds the follow-up")
        const again = yield* JobQueue.enqueue(Echo, { n: 3 }, options)
        assert.strictEqual(again.id, second.id, "held while the follow-up waits for its slot")
        assert.isFalse(again.created)
        assert.isTrue(yield* store.settle(running!.token, { _tag: "Final", state: "succeeded", exit: SUCCESS }))
        const [next] = yield* claim()
        assert.strictEqual(next!.job.id, second.id)
        assert.isTrue((yield* JobQueue.enqueue(Echo, { n: 4 }, options)).created, "released as the follow-up started")
      })))


    // --- group concurrency: a cap per `group` key of a queue (setGroupConcurrency), keys served in turn

    const claimOf = (store: JobStore.JobStore["Service"], queues: ReadonlyArray<string>, limit: number, fair = false) =>
      store.claim({ queues, tasks: ["Echo"], limit, lease: LEASE, fair })
    const groupsOf = (claims: ReadonlyArray<{ readonly job: { readonly group?: string | null | undefined } }>) =>
      claims.map((claim) => claim.job.group == null || claim.job.group === "" ? "-" : claim.job.group).sort()
    const numbersOf = (claims: ReadonlyArray<{ readonly job: { readonly payload: string } }>) =>
      claims.map((claim) => (JSON.parse(claim.job.payload) as { n: number }).n)

    it.effect("group concurrency 1: a key's long backlog does not delay the other keys' jobs; one job per key runs; ungrouped jobs are not capped; priority orders a key's jobs", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        yield* JobQueue.setGroupConcurrency("default", 1)
        // a's backlog first and oldest, then one job of b and c, and two without a group
        yield* JobQueue.enqueueAll(Echo, Array.from({ length: 300 }, (_, n) => ({ payload: { n } })), { group: "a" })
        yield* JobQueue.enqueue(Echo, { n: 1000 }, { group: "b" })
        yield* JobQueue.enqueue(Echo, { n: 2000 }, { group: "c" })
        yield* JobQueue.enqueue(Echo, { n: 3000 })
        yield* JobQueue.enqueue(Echo, { n: 3001 })
        const first = yield* claimOf(store, ["default"], 10)
        assert.deepStrictEqual(groupsOf(first.claims), ["-", "-", "a", "b", "c"])
        assert.strictEqual(first.claims.find((c) => c.job.group === "a")!.job.payload, JSON.stringify({ n: 0 }), "a's oldest")
        assert.isTrue(first.capped, "short: a's one slot is taken")
        assert.strictEqual((yield* claimOf(store, ["default"], 10)).claims.length, 0, "a, b, c each running one")
        assert.deepStrictEqual((yield* JobQueue.stats("default")).groupConcurrency, 1)
        // a's next job by priority, then by age
        yield* JobQueue.enqueue(Echo, { n: 500 }, { group: "a", priority: 5 })
        const a = first.claims.find((c) => c.job.group === "a")!
        assert.isTrue(yield* store.settle(a.token, { _tag: "Final", state: "succeeded", exit: SUCCESS }))
        const next = yield* claimOf(store, ["default"], 10)
        assert.deepStrictEqual(numbersOf(next.claims), [500], "a's slot freed: its best job, one")
        const info = yield* JobQueue.status(next.claims[0]!.job.id)
        assert.strictEqual(info.group, "a")
        assert.strictEqual((yield* JobQueue.status(first.claims.find((c) => c.job.group == null || c.job.group === "")!.job.id)).group, undefined)
        // each way a job stops running frees its key: a retry, a release, a reap of an expired lease
        assert.isTrue(yield* store.settle(next.claims[0]!.token, { _tag: "Retry", delay: 60_000, exit: SUCCESS }))
        const afterRetry = yield* claimOf(store, ["default"], 10)
        assert.deepStrictEqual(numbersOf(afterRetry.claims), [1], "a's retried job waits: its next")
        assert.isTrue(yield* store.settle(afterRetry.claims[0]!.token, { _tag: "Release" }))
        const afterRelease = yield* claimOf(store, ["default"], 10)
        assert.deepStrictEqual(numbersOf(afterRelease.claims), [1], "released: the same job again")
        yield* TestClock.adjust(LEASE + 1)
        assert.strictEqual((yield* claimOf(store, ["default"], 10)).claims.length, 0, "expired, not reaped: a's slot still held")
        assert.isAtLeast(yield* store.reap([0]), 1)
        const afterReap = yield* claimOf(store, ["default"], 10)
        assert.includeMembers(groupsOf(afterReap.claims), ["a", "b", "c"], "the reap freed every key")
        assert.strictEqual(groupsOf(afterReap.claims).filter((g) => g === "a").length, 1)
      })))

    it.effect("group concurrency: the keys take turns, one job each per claim of one; a claim of many counts its own picks per key; lowered, removed", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        yield* JobQueue.setGroupConcurrency("default", 2)
        for (const group of ["a", "b", "c"]) {
          yield* JobQueue.enqueueAll(Echo, Array.from({ length: 4 }, (_, n) => ({ payload: { n } })), { group })
        }
        // one at a time, each settled at once: a, b, c, a, b, c
        const turns: Array<string> = []
        for (let i = 0; i < 6; i++) {
          const { claims } = yield* claimOf(store, ["default"], 1)
          assert.strictEqual(claims.length, 1)
          turns.push(claims[0]!.job.group!)
          assert.isTrue(yield* store.settle(claims[0]!.token, { _tag: "Final", state: "succeeded", exit: SUCCESS }))
        }
        assert.deepStrictEqual(turns.slice(3), turns.slice(0, 3), "the same turn again")
        assert.deepStrictEqual([...turns.slice(0, 3)].sort(), ["a", "b", "c"], "every key once per turn")
        // 2 left of each: a claim of 10 takes at most 2 per key, in rounds
        yield* JobQueue.enqueue(Echo, { n: 9 }, { group: "a" })
        const many = yield* claimOf(store, ["default"], 10)
        assert.deepStrictEqual(groupsOf(many.claims), ["a", "a", "b", "b", "c", "c"])
        assert.isTrue(many.capped)
        const [one] = many.claims
        assert.isTrue(yield* store.settle(one!.token, { _tag: "Final", state: "succeeded", exit: SUCCESS }))
        yield* JobQueue.setGroupConcurrency("default", 1)
        assert.strictEqual((yield* claimOf(store, ["default"], 10)).claims.length, 0, "lowered to 1: a runs one, b two, c two")
        yield* JobQueue.setGroupConcurrency("default", undefined)
        assert.strictEqual((yield* JobQueue.stats("default")).groupConcurrency, undefined)
        assert.deepStrictEqual(groupsOf((yield* claimOf(store, ["default"], 10)).claims), ["a"], "removed: the rest")
      })))

    it.effect("group concurrency with other queues, a fair claim, the queue's own cap, and jobs queued before the cap was set", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        // queued before the cap: grouped and ungrouped
        for (let n = 0; n < 3; n++) yield* JobQueue.enqueue(Echo, { n }, { queue: "g", group: "a" })
        yield* JobQueue.enqueue(Echo, { n: 10 }, { queue: "g", group: "b" })
        yield* JobQueue.enqueue(Echo, { n: 20 }, { queue: "g" })
        for (let n = 100; n < 103; n++) yield* JobQueue.enqueue(Echo, { n }, { queue: "free", group: "a" })
        yield* JobQueue.setGroupConcurrency("g", 1)
        yield* JobQueue.enqueue(Echo, { n: 21 }, { queue: "g" })
        const first = yield* claimOf(store, ["g", "free"], 20, true)
        const of = (queue: string) => first.claims.filter((c) => c.job.queue === queue)
        assert.deepStrictEqual(groupsOf(of("g")), ["-", "-", "a", "b"])
        assert.deepStrictEqual(groupsOf(of("free")), ["a", "a", "a"], "a queue without the cap ignores group")
        assert.strictEqual((yield* claimOf(store, ["g", "free"], 20)).claims.length, 0)
        // the queue's cap and the per-key cap hold together
        yield* JobQueue.enqueueAll(Echo, [
          { payload: { n: 30 }, options: { group: "c" } },
          { payload: { n: 40 }, options: { group: "d" } },
          { payload: { n: 50 }, options: { group: "e" } }
        ], { queue: "g" })
        yield* JobQueue.setConcurrency("g", 5)
        assert.strictEqual((yield* claimOf(store, ["g"], 20)).claims.length, 1, "4 running, the queue's cap 5")
        assert.strictEqual((yield* JobQueue.stats("g")).concurrency?.running, 5)
      })))

    it.effect("group concurrency under a rate limit: a claim short by the window is held by the window (limitedFor), not reported capped by the keys", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        yield* JobQueue.setGroupConcurrency("default", 1)
        yield* JobQueue.setRateLimit("default", { limit: 2, interval: "1 hour" })
        for (let n = 0; n < 5; n++) yield* JobQueue.enqueue(Echo, { n })
        for (let n = 10; n < 13; n++) yield* JobQueue.enqueue(Echo, { n }, { group: `k${n}` })
        const claimed = yield* claimOf(store, ["default"], 10)
        assert.strictEqual(claimed.claims.length, 2)
        assert.isAbove(claimed.limitedFor, 0, "the window holds it")
        assert.notStrictEqual(claimed.capped, true, "no key is at its cap")
      })))

    it.effect("group concurrency: a cap set while a key's jobs run counts them, and so does one removed and set again while they run", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        yield* JobQueue.enqueueAll(Echo, [0, 1].map((n) => ({ payload: { n } })), { group: "a" })
        const [first] = (yield* claimOf(store, ["default"], 1)).claims
        assert.deepStrictEqual(numbersOf([first!]), [0], "a's first job runs before any cap")
        yield* JobQueue.enqueue(Echo, { n: 10 }, { group: "b" })
        yield* JobQueue.setGroupConcurrency("default", 1)
        const next = yield* claimOf(store, ["default"], 10)
        assert.deepStrictEqual(numbersOf(next.claims), [10], "a's second job waits: its first runs")
        assert.isTrue(next.capped)
        yield* JobQueue.setGroupConcurrency("default", undefined)
        yield* JobQueue.setGroupConcurrency("default", 1)
        assert.strictEqual((yield* claimOf(store, ["default"], 10)).claims.length, 0, "a and b each still run one")
        assert.isTrue(yield* store.settle(first!.token, { _tag: "Final", state: "succeeded", exit: SUCCESS }))
        assert.deepStrictEqual(numbersOf((yield* claimOf(store, ["default"], 10)).claims), [1], "a's first settled: its second")
      })))

    it.effect("group concurrency: a job redriven into a queue with a per-key cap runs, with a key or without", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        // dead before the queue had a cap
        yield* JobQueue.enqueue(Echo, { n: 0 }, { maxAttempts: 1 })
        yield* JobQueue.enqueue(Echo, { n: 1 }, { maxAttempts: 1, group: "a" })
        const dead = (yield* claimOf(store, ["default"], 10)).claims
        assert.strictEqual(dead.length, 2)
        for (const claim of dead) assert.isTrue(yield* store.settle(claim.token, { _tag: "Final", state: "dead", exit: null }))
        yield* JobQueue.setGroupConcurrency("default", 1)
        for (const claim of dead) assert.isTrue(yield* JobQueue.redrive(claim.job.id))
        assert.strictEqual((yield* JobQueue.stats("default")).waiting, 2)
        assert.deepStrictEqual(numbersOf((yield* claimOf(store, ["default"], 10)).claims).sort(), [0, 1], "both redriven jobs start")
      })))

    it.effect("group concurrency under the queue's cap: a claim held back by the queue's cap with only keyed jobs left says capped", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        yield* JobQueue.setGroupConcurrency("default", 1)
        yield* JobQueue.setConcurrency("default", 1)
        for (const group of ["a", "b", "c"]) yield* JobQueue.enqueue(Echo, { n: 0 }, { group })
        assert.strictEqual((yield* JobQueue.stats("default")).waiting, 3, "the keyed jobs wait")
        const first = yield* claimOf(store, ["default"], 10)
        assert.deepStrictEqual(groupsOf(first.claims), ["a"])
        assert.isTrue(first.capped, "b and c wait for the queue's slot")
        const full = yield* claimOf(store, ["default"], 10)
        assert.strictEqual(full.claims.length, 0)
        assert.isTrue(full.capped, "the queue's one slot is taken")
        const many = yield* claimOf(store, ["default", "other"], 10)
        assert.strictEqual(many.claims.length, 0)
        assert.isTrue(many.capped, "in a claim over several queues too")
      })))

    it.effect("group concurrency: a consumer held back by a key's cap starts the key's next job when the one running settles, polling once an hour", () =>
      provide(Effect.gen(function*() {
        yield* JobQueue.setGroupConcurrency("default", 1)
        const runs: Array<number> = []
        let running = 0
        let most = 0
        yield* JobQueue.consume({
          ...options,
          concurrency: 4,
          poll: "1 hour",
          handlers: [Task.handle(Echo, ({ n }) =>
            Effect.gen(function*() {
              running++
              most = Math.max(most, running)
              runs.push(n)
              yield* Effect.sleep(500)
              running--
              return n
            }))]
        })
        const jobs = yield* JobQueue.enqueueAll(Echo, [0, 1, 2].map((n) => ({ payload: { n } })), { group: "k" })
        // in the clock's ticks, not to its poll an hour away: a server store answers in real time
        const store = yield* JobStore.JobStore
        const done = Effect.map(
          Effect.forEach(jobs, (job) => Effect.provideService(stateOf(job.id), JobStore.JobStore, store)),
          (states) => states.every((state) => state === "succeeded")
        )
        yield* tickUntil(Effect.orDie(done), "the key's three jobs ran, each once the one before settled", 100, 60_000)
        assert.deepStrictEqual(runs, [0, 1, 2])
        assert.strictEqual(most, 1, "one at a time")
      })))

    // Redis counted every key with jobs as held back by the queue's cap, whatever their task: its
    // claim said capped beside another task's keyed jobs, and its consumer napped instead of waiting
    it.effect("group concurrency and the queue's cap: a claim beside only another task's keyed jobs does not say capped; beside its own it does", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        yield* JobQueue.setGroupConcurrency("default", 1)
        yield* JobQueue.setConcurrency("default", 1)
        yield* JobQueue.enqueue(Echo, { n: 1 }, { group: "a" })
        for (const group of ["b", "c"]) yield* store.enqueue(newJob("default", { task: "Other", group }))
        const filled = yield* claimOf(store, ["default"], 2)
        assert.deepStrictEqual([groupsOf(filled.claims), filled.capped], [["a"], undefined], "the cap filled, no Echo job left")
        const full = yield* claimOf(store, ["default"], 1)
        assert.deepStrictEqual([full.claims.length, full.capped], [0, undefined], "nothing of its tasks waits")
        yield* JobQueue.enqueue(Echo, { n: 2 }, { group: "d" })
        const held = yield* claimOf(store, ["default"], 1)
        assert.deepStrictEqual([held.claims.length, held.capped], [0, true], "d's job waits for the queue's cap")
      })))

    it.effect("group concurrency: 300 keys of delayed jobs only cost a consumer a few claims a round, not a claim a millisecond; a key past them all runs", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        yield* JobQueue.setGroupConcurrency("default", 1)
        // more keys than a claim visits (groupBudget: 1 + 0 + 64), every job an hour away
        yield* JobQueue.enqueueAll(Echo, delayedKeys(300))
        let claims = 0
        const counting: Store = { ...store, claim: (request) => Effect.andThen(Effect.sync(() => claims++), store.claim(request)) }
        const ran: Array<number> = []
        yield* Effect.provideService(
          JobQueue.consume({ ...options, concurrency: 2, poll: "1 hour", handlers: [Task.handle(Echo, ({ n }) => Effect.sync(() => ran.push(n)).pipe(Effect.as(n)))] }),
          JobStore.JobStore,
          counting
        )
        // a key after them all, and one before: each found within a round of claims
        yield* JobQueue.enqueue(Echo, { n: 1000 }, { group: "z" })
        yield* JobQueue.enqueue(Echo, { n: 2000 }, { group: "a" })
        yield* tickUntil(Effect.sync(() => ran.length === 2), "both visible jobs ran", 10, 5_000)
        assert.sameMembers(ran, [1000, 2000])
        yield* tick(500, 10)
        const before = claims
        yield* tick(2_000, 10)
        // idle: waits for the delayed jobs (an hour), not a claim per tick (200) or per millisecond
        assert.isAtMost(claims - before, 10, "an idle consumer does not spin over the keys")
        assert.deepStrictEqual(ran.sort(), [1000, 2000], "nothing delayed ran early")
      })))

    it.effect("group and setGroupConcurrency: bad input fails typed, naming the field; other libraries' names get a hint", () =>
      provide(Effect.gen(function*() {
        for (const group of ["", "x".repeat(257), 42, "a\u0000b", { id: "tenant" }]) {
          const error = yield* Effect.flip(JobQueue.enqueue(Echo, { n: 1 }, { group: group as never }))
          assert.strictEqual(error._tag, "InvalidJobOptions")
          assert.strictEqual((error as InvalidJobOptions).field, "group")
        }
        const item = yield* Effect.flip(JobQueue.enqueueAll(Echo, [{ payload: { n: 1 } }, { payload: { n: 2 }, options: { group: "" } }]))
        assert.strictEqual((item as InvalidJobOptions).field, "items[1].options.group")
        assert.strictEqual((yield* JobQueue.enqueue(Echo, { n: 1 }, { group: "x".repeat(256) })).created, true)
        for (const key of ["groupId", "queueName"]) {
          const hint = yield* Effect.flip(JobQueue.enqueue(Echo, { n: 1 }, { [key]: "t" } as never))
          assert.include(String((hint as InvalidJobOptions).message), "group")
        }
        for (const n of [0, -1, 1.5, "2", Infinity, 1_000_001]) {
          const error = yield* Effect.flip(JobQueue.setGroupConcurrency("default", n as never))
          assert.strictEqual((error as InvalidJobOptions).field, "concurrency")
        }
        assert.strictEqual((yield* Effect.flip(JobQueue.setGroupConcurrency("", 1)))._tag, "InvalidJobOptions")
      })))

    // --- queue holds and snoozes (JobQueue.holdQueue, JobQueue.snooze) beside fair dispatch, caps,
    // dedup modes and retention: each claim path checks the hold, each settle path knows a snooze

    it.effect("a held queue is held in a fair claim: its rounds (one job per queue, or many) and a capped queue's pass it over until the hold ends", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        yield* JobQueue.setConcurrency("capped", 5)
        for (let n = 0; n < 3; n++) yield* JobQueue.enqueue(Echo, { n }, { queue: "held" })
        for (let n = 10; n < 13; n++) yield* JobQueue.enqueue(Echo, { n }, { queue: "capped" })
        for (let n = 100; n < 103; n++) yield* JobQueue.enqueue(Echo, { n }, { queue: "free" })
        yield* JobQueue.holdQueue("held", "1 hour")
        yield* JobQueue.holdQueue("capped", "1 hour")
        const claim = (queues: ReadonlyArray<string>, limit: number, fair = true) =>
          Effect.map(
            store.claim({ queues, tasks: ["Echo"], limit, lease: 60_000, fair }),
            (c) => c.claims.map((claimed) => (JSON.parse(claimed.job.payload) as { n: number }).n).sort((a, b) => a - b)
          )
        // one job per round, then many per queue at once: only the free queue's
        assert.deepStrictEqual(yield* claim(["held", "capped", "free"], 1), [100])
        assert.deepStrictEqual(yield* claim(["held", "capped", "free"], 12), [101, 102])
        assert.deepStrictEqual(yield* claim(["held", "capped", "free"], 3), [], "held, fair")
        assert.deepStrictEqual(yield* claim(["held"], 3), [], "held, fair, alone")
        assert.deepStrictEqual(yield* claim(["capped"], 3, false), [], "held, capped, by priority")
        assert.deepStrictEqual(yield* claim(["capped", "held"], 3, false), [], "held, by priority")
        yield* TestClock.adjust("1 hour")
        assert.deepStrictEqual(yield* claim(["held", "capped", "free"], 12), [0, 1, 2, 10, 11, 12], "the holds ended")
      })))

    it.effect("a snoozed job of a capped queue frees its slot at once: the next job starts, polling once an hour; the snoozed one runs after its snooze", () =>
      provide(Effect.gen(function*() {
        yield* JobQueue.setConcurrency("default", 1)
        const runs: Array<number> = []
        yield* JobQueue.consume({
          ...options,
          concurrency: 2,
          poll: "1 hour",
          handlers: [Task.handle(Echo, ({ n }) =>
            Effect.gen(function*() {
              const first = !runs.includes(n)
              runs.push(n)
              return n === 1 && first ? yield* JobQueue.snooze("1 minute") : n
            }))]
        })
        const snoozed = yield* JobQueue.enqueue(Echo, { n: 1 }, { priority: 1 })
        const next = yield* JobQueue.enqueue(Echo, { n: 2 })
        yield* tick(1000)
        assert.deepStrictEqual(runs, [1, 2], "the next job took the snoozed one's slot")
        assert.strictEqual(yield* next.await, 2)
        assert.strictEqual((yield* JobQueue.status(snoozed.id)).state, "delayed")
        yield* tick(60_000)
        assert.strictEqual(yield* snoozed.await, 1)
        assert.deepStrictEqual(runs, [1, 2, 1])
      })))

    it.effect("a snoozed \"queued\"-mode job's dedup key, released as it started, stays released; retention leaves the snoozed (delayed) job alone", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const dedup = { dedupKey: "k", dedupWhile: "queued" } as const
        const first = yield* JobQueue.enqueue(Echo, { n: 1 }, dedup)
        const [claimed] = (yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 1, lease: 60_000 })).claims
        assert.strictEqual(claimed!.job.id, first.id)
        assert.isTrue(yield* store.settle(claimed!.token, { _tag: "Release", delay: 60_000 }))
        const second = yield* JobQueue.enqueue(Echo, { n: 2 }, dedup)
        assert.isTrue(second.created, "the snoozed job holds no key")
        assert.notStrictEqual(second.id, first.id)
        // every finished job goes at once; the snoozed one is not finished
        yield* JobQueue.setRetention("default", { succeeded: { count: 0 }, dead: { count: 0 }, cancelled: { count: 0 } })
        yield* TestClock.adjust(1000)
        assert.deepStrictEqual(yield* store.retain(100), { deleted: 0, more: false })
        const info = yield* JobQueue.status(first.id)
        assert.deepStrictEqual([info.state, info.attempts, info.snoozes], ["delayed", 0, 1])
      })))

    it.effect("concurrency cap: two consumers never run more than n of the queue at once, and a freed slot starts the next job at once, polling once an hour", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        yield* JobQueue.setConcurrency("default", 3)
        let running = 0
        let most = 0
        const handlers = [Task.handle(Echo, ({ n }) =>
          Effect.acquireUseRelease(
            Effect.sync(() => {
              most = Math.max(most, ++running)
            }),
            () => Effect.as(Effect.sleep("1 second"), n),
            () => Effect.sync(() => running--)
          ))]
        const jobs = yield* Effect.forEach(Array.from({ length: 12 }, (_, n) => n), (n) => JobQueue.enqueue(Echo, { n }))
        yield* JobQueue.consume({ ...options, concurrency: 5, poll: "1 hour", handlers })
        yield* JobQueue.consume({ ...options, concurrency: 5, poll: "1 hour", handlers })
        // 12 jobs of a second, 3 at a time: 4 seconds (the hour's poll would leave them waiting)
        yield* tickUntil(
          Effect.map(Effect.forEach(jobs, (job) => stateOf(job.id)), (states) => states.every((state) => state === "succeeded")).pipe(
            Effect.orDie,
            Effect.provideService(JobStore.JobStore, store)
          ),
          "every job done within seconds",
          100,
          8_000
        )
        assert.strictEqual(most, 3)
      })))

    it.effect("concurrency cap: jobs enqueued to a full queue 10 ms apart cost its held-back consumer a claim per 100 ms at most, not one per enqueue", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        yield* JobQueue.setConcurrency("default", 1)
        let claims = 0
        const counting: Store = { ...store, claim: (request) => Effect.andThen(Effect.sync(() => claims++), store.claim(request)) }
        const started: Array<number> = []
        const never = yield* Deferred.make<void>()
        yield* JobQueue.enqueue(Echo, { n: 0 })
        yield* Effect.provideService(
          JobQueue.consume({
            ...options,
            concurrency: 4,
            poll: "1 hour",
            handlers: [Task.handle(Echo, ({ n }) => Effect.andThen(Effect.sync(() => started.push(n)), Effect.as(Deferred.await(never), n)))]
          }),
          JobStore.JobStore,
          counting
        )
        yield* tick(500)
        const before = claims
        for (let n = 0; n < 100; n++) {
          yield* JobQueue.enqueue(Echo, { n: 10 + n })
          yield* tick(10, 10)
        }
        yield* tick(1000)
        // 1 s of enqueues: ~10 claims with the floor; one per enqueue (100) without it
        assert.isAtMost(claims - before, 20)
        assert.deepStrictEqual(started, [0], "nothing past the cap")
      })))

    it.effect("concurrency cap: bad values are refused, naming the field", () =>
      provide(Effect.gen(function*() {
        for (const bad of [-1, 1.5, Number.NaN, Infinity, 1_000_001, "3", null]) {
          const error = yield* Effect.flip(JobQueue.setConcurrency("default", bad as never))
          assert.strictEqual(error._tag, "InvalidJobOptions")
          assert.strictEqual((error as InvalidJobOptions).field, "concurrency", String(bad))
        }
        assert.strictEqual((yield* Effect.flip(JobQueue.setConcurrency("", 1)))._tag, "InvalidJobOptions")
        assert.strictEqual((yield* JobQueue.stats("default")).concurrency, undefined, "nothing set")
      })))

    // --- retention of finished jobs, per queue, applied by the consumers' maintenance (task retain27)

    it.effect("retention by age: a running consumer's maintenance deletes the queue's finished jobs older than their state's age; other states and queues are untouched; a deleted job's await is JobNotFound and its dedup key free; removing the retention stops it", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        yield* JobQueue.setRetention("default", { succeeded: { age: "1 minute" }, cancelled: { age: "1 minute" } })
        assert.deepStrictEqual((yield* JobQueue.stats("default")).retention, { succeeded: { age: 60_000 }, cancelled: { age: 60_000 } })
        assert.strictEqual((yield* JobQueue.stats("other")).retention, undefined)
        const cancelled = yield* JobQueue.enqueue(Echo, { n: 9 }, { delay: "1 hour" })
        assert.strictEqual(yield* JobQueue.cancel(cancelled.id), "cancelled")
        yield* JobQueue.consume({
          ...options,
          queues: ["default", "other"],
          handlers: [Task.handle(Echo, ({ n }) => n === 3 ? Effect.fail(new Boom({ n })) : Effect.succeed(n))]
        })
        const ok = yield* JobQueue.enqueue(Echo, { n: 1 }, { dedupKey: "k" })
        const dead = yield* JobQueue.enqueue(Echo, { n: 3 }, { maxAttempts: 1 })
        const elsewhere = yield* JobQueue.enqueue(Echo, { n: 4 }, { queue: "other" })
        yield* tickUntil(
          Effect.map(
            Effect.orDie(Effect.provideService(Effect.forEach([ok, dead, elsewhere], (job) => stateOf(job.id)), JobStore.JobStore, store)),
            (states) => states.join() === "succeeded,dead,succeeded"
          ),
          "the jobs ended"
        )
        assert.strictEqual(yield* ok.await, 1)
        // within the age: kept, however many maintenance rounds pass
        yield* tick(50_000, 500)
        assert.deepStrictEqual((yield* JobQueue.list({ queue: "default" })).map((job) => job.id).sort(), [ok.id, dead.id, cancelled.id].sort())
        // past it (and a maintenance round, every half lease): the succeeded and cancelled jobs are gone
        yield* tick(15_000, 500)
        assert.deepStrictEqual((yield* JobQueue.list({ queue: "default" })).map((job) => job.id), [dead.id], "only the dead job of the queue is kept")
        assert.strictEqual(yield* stateOf(elsewhere.id), "succeeded", "another queue's job is kept")
        assert.instanceOf(yield* Effect.flip(JobQueue.await(Echo, ok.id)), DurableError.JobNotFound)
        assert.instanceOf(yield* Effect.flip(JobQueue.status(cancelled.id)), DurableError.JobNotFound)
        const stats = yield* JobQueue.stats("default")
        assert.deepStrictEqual([stats.succeeded, stats.dead, stats.cancelled], [0, 1, 0])
        // the dedup key of a deleted job holds nothing
        const again = yield* JobQueue.enqueue(Echo, { n: 5 }, { dedupKey: "k" })
        assert.notStrictEqual(again.id, ok.id)
        assert.strictEqual(yield* again.await, 5)
        // removed: nothing more is deleted
        yield* JobQueue.setRetention("default", undefined)
        assert.strictEqual((yield* JobQueue.stats("default")).retention, undefined)
        yield* tick(120_000, 1000)
        assert.strictEqual(yield* stateOf(again.id), "succeeded")
        assert.strictEqual((yield* JobQueue.stats("default")).succeeded, 1)
      })))

    it.effect("retention by count: the newest `count` of a state are kept (by end time); a store's pass deletes at most `batch` per queue and state, oldest first, and says when more is due", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        yield* JobQueue.setRetention("default", { succeeded: { count: 2 }, dead: { age: "1 hour", count: 10 } })
        const ids: Array<string> = []
        for (let n = 0; n < 7; n++) ids.push((yield* JobQueue.enqueue(Echo, { n })).id)
        const other = yield* JobQueue.enqueue(Echo, { n: 100 }, { queue: "other" })
        yield* JobQueue.setRetention("other", { dead: { count: 0 } })
        // each ends at its own time, in the reverse order of their creation
        const claims = (yield* store.claim({ queues: ["default", "other"], tasks: ["Echo"], limit: 10, lease: 60_000 })).claims
        assert.strictEqual(claims.length, 8)
        const byId = new Map(claims.map((claim) => [claim.job.id, claim.token]))
        for (const id of [other.id, ...ids.slice().reverse()]) {
          yield* TestClock.adjust(10)
          assert.isTrue(yield* store.settle(byId.get(id)!, { _tag: "Final", state: "succeeded", exit: JSON.stringify({ _tag: "Success", value: 0 }) }))
        }
        const passes: Array<readonly [number, boolean]> = []
        for (let i = 0; i < 3; i++) {
          const { deleted, more } = yield* store.retain(2)
          passes.push([deleted, more])
        }
        assert.deepStrictEqual(passes, [[2, true], [2, true], [1, false]])
        // the two that ended last: the first two created
        assert.deepStrictEqual((yield* JobQueue.list({ queue: "default" })).map((job) => job.id), ids.slice(0, 2))
        assert.strictEqual(yield* stateOf(other.id), "succeeded", "another state's retention keeps it")
        assert.deepStrictEqual(yield* store.retain(2), { deleted: 0, more: false })
        assert.deepStrictEqual((yield* JobQueue.stats("default")).retention, { succeeded: { count: 2 }, dead: { age: 3_600_000, count: 10 } })
      })))

    it.effect("retention by count, after a pass with nothing to delete: the jobs that end later are counted, those past `count` go at the next pass (oldest first), and a purge between passes deletes none too many", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const finish = Effect.gen(function*() {
          const job = yield* JobQueue.enqueue(Echo, { n: 1 })
          const [claim] = (yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 1, lease: 60_000 })).claims
          yield* TestClock.adjust(10)
          assert.isTrue(yield* store.settle(claim!.token, { _tag: "Final", state: "succeeded", exit: JSON.stringify({ _tag: "Success", value: 0 }) }))
          return job.id
        })
        yield* JobQueue.setRetention("default", { succeeded: { count: 3 } })
        const ids = [yield* finish, yield* finish]
        // within the count: nothing, however often it looks (a SQL store remembers the count from here)
        assert.deepStrictEqual(yield* store.retain(100), { deleted: 0, more: false })
        assert.deepStrictEqual(yield* store.retain(100), { deleted: 0, more: false })
        ids.push(yield* finish)
        assert.deepStrictEqual(yield* store.retain(100), { deleted: 0, more: false })
        ids.push(yield* finish, yield* finish)
        assert.deepStrictEqual(yield* store.retain(100), { deleted: 2, more: false })
        assert.deepStrictEqual((yield* JobQueue.list({ queue: "default" })).map((job) => job.id).sort(), ids.slice(2).sort())
        // a purge lowers the count it remembers: what it deletes after is still only what is past `count`
        yield* TestClock.adjust(10)
        assert.strictEqual(yield* JobQueue.purge({ olderThan: "0 millis" }), 3)
        ids.push(yield* finish, yield* finish, yield* finish)
        assert.deepStrictEqual(yield* store.retain(100), { deleted: 0, more: false })
        ids.push(yield* finish)
        assert.deepStrictEqual(yield* store.retain(100), { deleted: 1, more: false })
        assert.deepStrictEqual((yield* JobQueue.list({ queue: "default" })).map((job) => job.id).sort(), ids.slice(-3).sort())
      })))

    it.effect("retention over many queues: a call visits at most `queues` of those with a retention, each resuming after the last one visited, so every queue is cleaned within a bounded number of calls; a pass that reached the end starts again", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const names = Array.from({ length: 7 }, (_, i) => `tenant-${i}`)
        const finish = (queue: string) =>
          Effect.gen(function*() {
            yield* JobQueue.enqueue(Echo, { n: 1 }, { queue })
            const [claim] = (yield* store.claim({ queues: [queue], tasks: ["Echo"], limit: 1, lease: 60_000 })).claims
            assert.isTrue(yield* store.settle(claim!.token, { _tag: "Final", state: "succeeded", exit: JSON.stringify({ _tag: "Success", value: 0 }) }))
          })
        for (const name of names) {
          yield* JobQueue.setRetention(name, { succeeded: { count: 0 } })
          yield* finish(name)
        }
        // a pass: calls until one says nothing is left. By name on SQL and memory (3, 3, 1); on Redis
        // by SSCAN, whose replies split the set as its table does (never more than 3 a call, all 7)
        const pass = Effect.gen(function*() {
          const calls: Array<readonly [number, boolean]> = []
          for (let i = 0; i < 10; i++) {
            const { deleted, more } = yield* store.retain(100, 3)
            calls.push([deleted, more])
            if (!more) return calls
          }
          return assert.fail(`a pass that never ends: ${JSON.stringify(calls)}`)
        })
        const cleaned = (calls: ReadonlyArray<readonly [number, boolean]>, total: number) => {
          assert.isTrue(calls.every(([deleted]) => deleted <= 3), `at most a queue each of 3 a call: ${JSON.stringify(calls)}`)
          assert.strictEqual(calls.reduce((n, [deleted]) => n + deleted, 0), total, JSON.stringify(calls))
          assert.isAtLeast(calls.length, 3, JSON.stringify(calls))
        }
        // before: one call walked them all (cut off after its bound, the queues past the cut were never reached)
        cleaned(yield* pass, 7)
        for (const name of names) assert.strictEqual((yield* JobQueue.stats(name)).succeeded, 0, name)
        // the next pass starts from the first queue again, and reaches the last
        yield* finish(names[0]!)
        yield* finish(names[6]!)
        cleaned(yield* pass, 2)
        for (const name of names) assert.strictEqual((yield* JobQueue.stats(name)).succeeded, 0, name)
      })))

    it.effect("retention and dedupFor: a retention that deletes a finished job inside its throttle window ends the window with it, as a purge does (the next enqueue of the key makes a job); kept, it holds the key", () =>
      provide(Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const finish = (queue: string) =>
          Effect.gen(function*() {
            const [claim] = (yield* store.claim({ queues: [queue], tasks: ["Echo"], limit: 1, lease: 60_000 })).claims
            assert.isTrue(yield* store.settle(claim!.token, { _tag: "Final", state: "succeeded", exit: JSON.stringify({ _tag: "Success", value: 0 }) }))
            return claim!.job.id
          })
        const throttled = yield* JobQueue.enqueue(Echo, { n: 1 }, { dedupKey: "digest", dedupFor: "1 hour" })
        const kept = yield* JobQueue.enqueue(Echo, { n: 2 }, { dedupKey: "digest", dedupFor: "1 hour", queue: "q2" })
        assert.strictEqual(yield* finish("default"), throttled.id)
        assert.strictEqual(yield* finish("q2"), kept.id)
        yield* TestClock.adjust(60_000)
        // inside the window, finished: the key is held
        assert.strictEqual((yield* JobQueue.enqueue(Echo, { n: 3 }, { dedupKey: "digest" })).id, throttled.id)
        yield* JobQueue.setRetention("default", { succeeded: { age: "1 second" } })
        assert.deepStrictEqual(yield* store.retain(100), { deleted: 1, more: false })
        assert.instanceOf(yield* Effect.flip(JobQueue.status(throttled.id)), DurableError.JobNotFound)
        const next = yield* JobQueue.enqueue(Echo, { n: 4 }, { dedupKey: "digest", dedupFor: "1 hour" })
        assert.isTrue(next.created, "the deleted job's window went with it")
        assert.notStrictEqual(next.id, throttled.id)
        // a queue without a retention keeps its finished job, whose window still holds the key
        const hit = yield* JobQueue.enqueue(Echo, { n: 5 }, { dedupKey: "digest", queue: "q2" })
        assert.deepStrictEqual([hit.id, hit.created], [kept.id, false])
      })))

    it.effect("retention: bad values are refused as InvalidJobOptions naming the field", () =>
      provide(Effect.gen(function*() {
        const bad = [
          ["1 day", "retention"],
          [{ succeeded: {} }, "retention.succeeded"],
          [{ succeeded: "1 day" }, "retention.succeeded"],
          [{ succeeded: { age: -1 } }, "retention.succeeded.age"],
          [{ succeeded: { age: "soon" } }, "retention.succeeded.age"],
          [{ dead: { count: 1.5 } }, "retention.dead.count"],
          [{ dead: { count: -1 } }, "retention.dead.count"],
          [{ cancelled: { count: 2e9 } }, "retention.cancelled.count"],
          [{ cancelled: { age: 1, keep: 3 } }, "retention.cancelled.keep"],
          [{ completed: { age: 1 } }, "retention.completed"]
        ] as const
        for (const [retention, field] of bad) {
          const error = yield* Effect.flip(JobQueue.setRetention("default", retention as never))
          assert.strictEqual(error._tag, "InvalidJobOptions")
          assert.strictEqual((error as { field: string }).field, field, JSON.stringify(retention))
        }
        assert.strictEqual((yield* Effect.flip(JobQueue.setRetention("", { succeeded: { count: 1 } })))._tag, "InvalidJobOptions")
        assert.strictEqual((yield* JobQueue.stats("default")).retention, undefined, "nothing was set")
        // an age of Infinity alone limits nothing: no retention
        yield* JobQueue.setRetention("default", { succeeded: { age: Infinity } })
        assert.strictEqual((yield* JobQueue.stats("default")).retention, undefined)
      })))

    it.effect("a consumer whose store closes first (the store's layer released before the consumer's scope) stops, saying so once: no claim retried, no warning per poll; an idle one and a busy one", () =>
      Effect.forEach([2, 1], (concurrency) => Effect.gen(function*() {
        const { logged, collector } = warnings()
        const storeScope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(makeLayer(), storeScope)
        const store = Context.get(context, JobStore.JobStore)
        let claims = 0
        const counting: Store = { ...store, claim: (request) => Effect.andThen(Effect.sync(() => claims++), store.claim(request)) }
        const consumerScope = yield* Scope.make()
        const gate = yield* Deferred.make<void>()
        const consumer = yield* JobQueue.consume({ ...options, concurrency, handlers: [Task.handle(Echo, ({ n }) => Effect.as(Deferred.await(gate), n))] }).pipe(
          Scope.provide(consumerScope),
          Effect.provideService(JobStore.JobStore, counting),
          Effect.provide(Logger.layer([collector]))
        )
        // one job running; a slot idle (claims wait on the store), or none (only its heartbeat asks the store)
        yield* Effect.provideContext(JobQueue.enqueue(Echo, { n: 1 }), context)
        yield* tick(100)
        assert.strictEqual((yield* consumer.stats).running, 1)
        let terminated = false
        yield* Effect.forkChild(Effect.andThen(consumer.awaitTermination, Effect.sync(() => terminated = true)))
        yield* Scope.close(storeScope, Exit.void)
        const before = claims
        // at once (the close wakes its wait, or its heartbeat), not when its leases would end
        yield* tick(LEASE / 3)
        assert.isTrue(terminated, `concurrency ${concurrency}: the consumer stopped`)
        // a minute at a 1 s poll: it retried (and warned) dozens of times until its own scope closed
        yield* tick(60_000, 1000)
        assert.isAtMost(claims - before, 1, "it claimed again after its store closed")
        assert.strictEqual(logged.length, 1, `concurrency ${concurrency}: one warning, not one per poll or per job: ${JSON.stringify(logged)}`)
        assert.match(logged[0]!, /store closed before the consumer/)
        yield* Scope.close(consumerScope, Exit.void)
      }), { discard: true }))

    it.effect("readers outliving their store (its layer released under them): an await and a progressChanges in flight, and every read after, fail with StoreError, none waits forever", () =>
      Effect.gen(function*() {
        const storeScope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(makeLayer(), storeScope)
        const leaked = <A, E>(effect: Effect.Effect<A, E, JobStore.JobStore>) => Effect.provideContext(effect, context)
        const job = yield* leaked(JobQueue.enqueue(Echo, { n: 1 }))
        const awaiting = yield* Effect.forkChild(leaked(job.await))
        const following = yield* Effect.forkChild(leaked(Stream.runDrain(job.progressChanges)))
        yield* tick(1_000)
        yield* Scope.close(storeScope, Exit.void)
        // real time: a closed store's answer (an error) comes from its client, not from the TestClock
        const bounded = <A, E>(effect: Effect.Effect<A, E>) =>
          Effect.raceFirst(
            Effect.map(Effect.exit(effect), (exit) => Exit.isFailure(exit) ? Cause.squash(exit.cause) : "succeeded"),
            Effect.as(Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5_000))), "hung" as const)
          )
        const ends = [
          yield* bounded(Fiber.join(awaiting)),
          yield* bounded(Fiber.join(following)),
          yield* bounded(leaked(job.await)),
          yield* bounded(leaked(Stream.runDrain(job.progressChanges))),
          yield* bounded(leaked(job.status)),
          yield* bounded(leaked(JobQueue.list({ limit: 10 })))
        ]
        ends.forEach((end, i) => assert.instanceOf(end, DurableError.StoreError, `read ${i}: ${String(end)}`))
      }))

    it.effect("a settle on a store whose scope has closed ends (it fails, or answers), it does not wait forever", () =>
      Effect.gen(function*() {
        // a consumer outliving its store (the store's layer provided inside the consumer's scope)
        // settles its last jobs after the store closed: its shutdown waits for those settles
        const [store, token] = yield* Effect.scoped(Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          const job = yield* JobQueue.enqueue(Echo, { n: 1 })
          const queue = (yield* JobQueue.status(job.id)).queue
          const { claims } = yield* store.claim({ queues: [queue], tasks: ["Echo"], limit: 1, lease: LEASE })
          assert.strictEqual(claims.length, 1)
          return [store, claims[0]!.token] as const
        })).pipe(Effect.provide(makeStore()))
        // real time: a closed store's answer (an error) comes from its client, not from the TestClock
        const hung = Effect.as(Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5_000))), "hung" as const)
        const outcome = yield* Effect.raceFirst(
          Effect.as(Effect.exit(store.settle(token, { _tag: "Final", state: "succeeded", exit: null })), "ended" as const),
          hung
        )
        assert.strictEqual(outcome, "ended")
      }))
  })

/** A task no consumer of `claimsAmongOtherTasks` handles. */
const Elsewhere = Task.make("Elsewhere", { payload: Schema.Number, success: Schema.Number })

/**
 * How many claims an idle consumer of Echo (polling once an hour) makes over `minutes` of the
 * TestClock while its queue holds only ready jobs of a task it does not handle (another process's
 * consumers'), once it has claimed nothing and its store listens (`Listening`: the claims of that
 * start, one or two on Postgres, are not counted): a store that wakes it for those jobs makes it
 * claim nothing again and again. Then an Echo job still starts on it.
 */
export const claimsAmongOtherTasks = (layer: Layer.Layer<JobStore.JobStore, any>, minutes = 10) =>
  Effect.gen(function*() {
    for (let n = 0; n < 3; n++) yield* JobQueue.enqueue(Elsewhere, n)
    const store = yield* JobStore.JobStore
    let claims = 0
    const counting: Store = { ...store, claim: (request) => Effect.andThen(Effect.sync(() => claims++), store.claim(request)) }
    yield* Effect.provideService(
      JobQueue.consume({ ...options, lease: "1 minute", poll: "1 hour", handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))] }),
      JobStore.JobStore,
      counting
    )
    yield* tick(100)
    yield* listening(["default"])
    yield* quiesce
    const before = claims
    yield* tick(minutes * 60_000, 30_000)
    const idle = claims - before
    const job = yield* JobQueue.enqueue(Echo, { n: 7 })
    yield* tick(100)
    assert.strictEqual(yield* job.await, 7)
    return idle
  }).pipe(Effect.scoped, Effect.provide(tracked(layer)))

/** The order in which the in-process scheduler starts the same jobs (priority, submitted at ms). */
const inProcessOrder = (jobs: ReadonlyArray<{ priority: number; at: number }>, aging: number) =>
  Effect.scoped(Effect.gen(function*() {
    const pool = yield* WorkPool.make({ concurrency: 1, paused: true, ...(aging > 0 ? { aging } : {}) })
    const order: Array<number> = []
    let now = 0
    for (const [i, job] of jobs.entries()) {
      yield* TestClock.adjust(job.at - now)
      now = job.at
      yield* pool.submit(Effect.sync(() => order.push(i)), { priority: job.priority })
    }
    yield* pool.resume
    yield* pool.awaitIdle
    return order
  }))
