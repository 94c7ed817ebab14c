/**
 * Hostile tests of a durable consumer's loops timed against its leases: the heartbeat under cancel
 * storms and late answers, the claim's answer that comes after its lease. On the memory store
 * under the TestClock, with a store that counts (and can delay) what the consumer asks of it.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Exit, Layer, Ref, Schedule, Schema } from "effect"
import { TestClock } from "effect/testing"
import { StoreError } from "../src/DurableError.ts"
import type { Store } from "../src/internal/store/model.ts"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as Task from "../src/Task.ts"
import { settle } from "./helpers.ts"

const Hold = Task.make("Hold", { payload: Schema.Number, success: Schema.Number })
const LEASE = 3000

/**
 * The memory store, recording each heartbeat (its time and tokens) and each claim's tokens; a
 * claim's answer comes `claimTakes` ms after the store took its jobs (a server that answers late,
 * a process paused with the answer in its socket).
 */
const counting = () => {
  const state = {
    beats: [] as Array<{ readonly at: number; readonly tokens: ReadonlyArray<string> }>,
    claimed: [] as Array<{ readonly at: number; readonly tokens: ReadonlyArray<string> }>,
    /** The next claim that takes jobs answers this many ms late (once). */
    claimTakes: 0,
    /** Heartbeats fail (the store unreachable for them). */
    failing: false,
    /** Each heartbeat reaches the store `slow[0]` ms after it is sent and its answer comes `slow[1]` ms after that (the first pair, then the next, round). */
    slow: [] as Array<readonly [number, number]>,
    /**
     * Tokens whose queue's node is down (a Redis Cluster): each beat leaves them unrenewed, and its
     * answer waits `downTakes` ms for that node's part, as a store bounds it.
     */
    down: new Set<string>(),
    downTakes: 0,
    /** Heartbeats get no answer (a partition that drops packets). */
    hanging: false
  }
  let beatCount = 0
  const layer = Layer.effect(
    JobStore.JobStore,
    Effect.map(JobStore.JobStore, (inner): Store => ({
      ...inner,
      heartbeat: (tokens, lease) => {
        if (state.hanging) return Effect.never
        if (state.failing) return Effect.fail(new StoreError({ operation: "heartbeat", reason: "unreachable" }))
        const unrenewed = tokens.filter((token) => state.down.has(token))
        if (unrenewed.length > 0) {
          return Effect.flatMap(inner.heartbeat(tokens.filter((token) => !state.down.has(token)), lease), (beat) =>
            Effect.as(Effect.sleep(state.downTakes), {
              ...beat,
              unrenewed: { tokens: unrenewed, error: new StoreError({ operation: "heartbeat", reason: "its node is down" }) }
            }))
        }
        const [there, back] = state.slow.length === 0 ? [0, 0] : state.slow[beatCount++ % state.slow.length]!
        return Effect.sleep(there).pipe(
          Effect.andThen(Clock.currentTimeMillis),
          Effect.flatMap((at) => Effect.sync(() => void state.beats.push({ at, tokens }))),
          Effect.andThen(inner.heartbeat(tokens, lease)),
          Effect.tap(() => Effect.sleep(back))
        )
      },
      claim: (request) =>
        Effect.flatMap(inner.claim(request), (claimed) =>
          Effect.flatMap(Clock.currentTimeMillis, (at) => {
            if (claimed.claims.length > 0) state.claimed.push({ at, tokens: claimed.claims.map((c) => c.token) })
            const takes = claimed.claims.length > 0 ? state.claimTakes : 0
            if (takes > 0) state.claimTakes = 0
            return takes > 0 ? Effect.as(Effect.sleep(takes), claimed) : Effect.succeed(claimed)
          }))
    }))
  ).pipe(Layer.provide(JobStore.memory()))
  return { state, layer }
}

const advance = (millis: number, step = 1) =>
  Effect.gen(function*() {
    for (let t = 0; t < millis; t += step) {
      yield* TestClock.adjust(step)
      yield* settle
    }
  })

/** A handler that counts its starts and records when each job (by its payload) was interrupted; it never ends. */
const forever = Effect.gen(function*() {
  const started = yield* Ref.make(0)
  const interruptedAt = new Map<number, number>()
  const handler = Task.handle(Hold, (n: number) =>
    Effect.andThen(
      Ref.update(started, (k) => k + 1),
      Effect.never.pipe(Effect.onInterrupt(() =>
        Effect.flatMap(Clock.currentTimeMillis, (at) => Effect.sync(() => void interruptedAt.set(n, at)))
      ))
    ))
  return { handler, started, interruptedAt }
})

describe("a durable consumer's heartbeat under a storm of cancels", () => {
  it.effect("cancels of other consumers' jobs, one a millisecond for 200 ms: a consumer beats a few times for them, not once per cancel; each cancel still reaches its job within 100 ms", () =>
    Effect.gen(function*() {
      const { layer, state } = counting()
      yield* Effect.gen(function*() {
        const bystander = yield* forever
        const target = yield* forever
        yield* JobQueue.consume({ queues: ["quiet"], handlers: [bystander.handler], concurrency: 1, lease: LEASE, shutdownTimeout: 0 })
        yield* JobQueue.consume({ queues: ["busy"], handlers: [target.handler], concurrency: 200, lease: LEASE, shutdownTimeout: 0 })
        const quiet = yield* JobQueue.enqueue(Hold, 0, { queue: "quiet" })
        const busy = yield* JobQueue.enqueueAll(Hold, Array.from({ length: 200 }, (_, n) => ({ payload: n })), { queue: "busy" })
        yield* advance(20)
        assert.strictEqual(yield* Ref.get(bystander.started), 1)
        assert.strictEqual(yield* Ref.get(target.started), 200)
        const token = state.claimed.find((claim) => claim.tokens.length === 1)!.tokens[0]!
        const beatsOfQuiet = () => state.beats.filter((beat) => beat.tokens.includes(token)).length
        const before = beatsOfQuiet()
        const from = yield* Clock.currentTimeMillis
        const cancelledAt: Array<number> = []
        for (const job of busy) {
          assert.strictEqual(yield* JobQueue.cancel(job.id), "requested")
          cancelledAt.push(yield* Clock.currentTimeMillis)
          yield* advance(1)
        }
        const storm = (yield* Clock.currentTimeMillis) - from
        // old: one beat of every running token per cancel, 200 of the bystander's in 200 ms
        // (its regular beats: one every lease / 3, 1 s)
        const beats = beatsOfQuiet() - before
        assert.isAtMost(beats, Math.ceil(storm / 100) + 1, `${beats} beats in ${storm} ms`)
        // and the consumer that runs them hears of each within 100 ms (a beat at most 100 ms after the last)
        yield* advance(150)
        assert.strictEqual(target.interruptedAt.size, 200)
        const late = busy.map((_, n) => target.interruptedAt.get(n)! - cancelledAt[n]!).filter((ms) => ms > 100)
        assert.deepStrictEqual(late, [])
        assert.strictEqual(bystander.interruptedAt.size, 0)
        assert.strictEqual((yield* JobQueue.status(quiet.id)).state, "running")
      }).pipe(Effect.scoped, Effect.provide(layer))
    }))
})

describe("a durable consumer's claim answered late", () => {
  it.effect("a claim whose answer comes after its lease ended (a server that answered late, this process paused), its job meanwhile taken back and run by another consumer: not started a second time", () =>
    Effect.gen(function*() {
      const { layer, state } = counting()
      yield* Effect.gen(function*() {
        const late = yield* forever
        const other = yield* forever
        const common = { queues: ["q"], concurrency: 1, lease: LEASE, shutdownTimeout: 0, retry: Schedule.spaced("10 millis") }
        yield* JobQueue.consume({ ...common, handlers: [late.handler] })
        yield* advance(10)
        // its claim takes the job now; its answer comes 5 s later, 2 s after the lease's end
        state.claimTakes = 5000
        const job = yield* JobQueue.enqueue(Hold, 1, { queue: "q" })
        yield* advance(10)
        assert.strictEqual(state.claimed.length, 1)
        yield* JobQueue.consume({ ...common, handlers: [other.handler] })
        // a reaper takes the job back past its lease; the other consumer claims and runs it
        yield* advance(4900, 10)
        assert.strictEqual(yield* Ref.get(other.started), 1)
        assert.strictEqual(yield* Ref.get(late.started), 0)
        // the late answer: old, the job started here too, two runs at once until this consumer's next beat
        yield* advance(200, 10)
        assert.strictEqual(yield* Ref.get(late.started), 0, "started on a lease that had ended")
        assert.strictEqual((yield* JobQueue.status(job.id)).state, "running")
        assert.strictEqual(other.interruptedAt.size, 0)
      }).pipe(Effect.scoped, Effect.provide(layer))
    }))

  it.effect("a claim answered 950 ms late, then beats failing: its job is given up when its lease (from the claim) ends, not a lease after a later beat", () =>
    Effect.gen(function*() {
      const { layer, state } = counting()
      yield* Effect.gen(function*() {
        const held = yield* forever
        yield* JobQueue.consume({ queues: ["q"], handlers: [held.handler], concurrency: 1, lease: LEASE, shutdownTimeout: 0 })
        // the heartbeat loop, idle, looks every lease / 3 (1 s) from here
        const from = yield* Clock.currentTimeMillis
        yield* advance(100)
        state.claimTakes = 950
        yield* JobQueue.enqueue(Hold, 1, { queue: "q" })
        yield* advance(10)
        const claimedAt = state.claimed[0]!.at
        // answered at 1060: after the idle loop's look at 1000
        yield* advance(from + 1100 - (yield* Clock.currentTimeMillis))
        assert.strictEqual(yield* Ref.get(held.started), 1)
        state.failing = true
        // its lease ends at claimedAt + 3000 (3100): given up then, not at 4000 (old: the look at 1000 counted as its renewal)
        yield* advance(claimedAt + LEASE - 1 - (yield* Clock.currentTimeMillis))
        assert.strictEqual(held.interruptedAt.size, 0)
        yield* advance(2)
        assert.deepStrictEqual([...held.interruptedAt.values()].map((at) => at - claimedAt), [LEASE])
      }).pipe(Effect.scoped, Effect.provide(layer))
    }))
})

describe("a durable consumer's heartbeat on a slow store", () => {
  it.effect("beats that each take 1.4 s of a 3 s lease (0.3 or 0.7 s to reach the store, the rest back): the consumer keeps its job, renewed in time, never given up as lost", () =>
    Effect.gen(function*() {
      const { layer, state } = counting()
      yield* Effect.gen(function*() {
        const held = yield* forever
        yield* JobQueue.consume({ queues: ["q"], handlers: [held.handler], concurrency: 1, lease: LEASE, shutdownTimeout: 0 })
        const job = yield* JobQueue.enqueue(Hold, 1, { queue: "q" })
        yield* advance(10)
        assert.strictEqual(yield* Ref.get(held.started), 1)
        state.slow = [[300, 1100], [700, 700]]
        // old: the next beat went a third of a lease after the last one's answer, 2.4 s after it was
        // sent; its answer came 3.8 s after the last renewal the consumer could count on (the last
        // beat's sending), so it timed out at the lease's end and the job was given up as lost,
        // the store healthy. Any beat slower than a third of a lease did it
        yield* advance(30_000, 10)
        const renewals = state.beats.map((beat) => beat.at)
        const gaps = renewals.slice(1).map((at, n) => at - renewals[n]!)
        assert.isAtMost(Math.max(...gaps), LEASE, `renewed at ${renewals.join(", ")}`)
        assert.strictEqual(held.interruptedAt.size, 0)
        const info = yield* JobQueue.status(job.id)
        assert.deepStrictEqual([info.state, info.attempts], ["running", 1])
      }).pipe(Effect.scoped, Effect.provide(layer))
    }))
})

describe("a durable consumer's heartbeat renewing some queues and not others", () => {
  it.effect("a job whose queue's node is down (each beat's part for it taking 800 ms to fail): given up when its lease ends, not a beat's answer later; the other queue's job runs on", () =>
    Effect.gen(function*() {
      const { layer, state } = counting()
      yield* Effect.gen(function*() {
        const held = yield* forever
        yield* JobQueue.consume({ queues: ["up", "down"], handlers: [held.handler], concurrency: 2, lease: LEASE, shutdownTimeout: 0 })
        yield* JobQueue.enqueue(Hold, 1, { queue: "up" })
        yield* JobQueue.enqueue(Hold, 2, { queue: "down" })
        yield* advance(10)
        assert.strictEqual(yield* Ref.get(held.started), 2)
        // a beat renews both; then the down queue's node goes
        const before = state.beats.length
        while (state.beats.length === before) yield* advance(10)
        const renewed = state.beats[state.beats.length - 1]!.at
        state.down = new Set(state.claimed.flatMap((claim) => claim.tokens).slice(1))
        assert.strictEqual(state.down.size, 1)
        state.downTakes = 800
        yield* advance(renewed + LEASE - 1 - (yield* Clock.currentTimeMillis), 1)
        assert.strictEqual(held.interruptedAt.size, 0)
        // old: the beat at its lease's end went out first, and its answer (800 ms) came before the job was given up
        yield* advance(2, 1)
        assert.deepStrictEqual([...held.interruptedAt.entries()].map(([n, at]) => [n, at - renewed]), [[2, LEASE]])
        yield* advance(5000, 10)
        assert.deepStrictEqual([...held.interruptedAt.keys()], [2], "the up queue's job runs on")
      }).pipe(Effect.scoped, Effect.provide(layer))
    }))
})

describe("a durable consumer's heartbeat with a job given up that has not stopped yet", () => {
  it.effect("a job given up as lost whose finalizer still runs does not stretch the next beat's bound: another job's beat that gets no answer fails at that job's lease's end", () =>
    Effect.gen(function*() {
      const { layer, state } = counting()
      const release = yield* Deferred.make<void>()
      yield* Effect.gen(function*() {
        const interruptedAt = new Map<number, number>()
        const handler = Task.handle(Hold, (n: number) =>
          Effect.never.pipe(Effect.onInterrupt(() =>
            Effect.flatMap(Clock.currentTimeMillis, (at) => Effect.sync(() => void interruptedAt.set(n, at))).pipe(
              // the first job's finalizer takes its time (a flush, a thread's grace)
              Effect.andThen(n === 1 ? Deferred.await(release) : Effect.void)
            )
          )))
        yield* JobQueue.consume({ queues: ["q"], handlers: [handler], concurrency: 2, lease: LEASE, shutdownTimeout: 0 })
        yield* JobQueue.enqueue(Hold, 1, { queue: "q" })
        yield* advance(10)
        // its beats fail for a lease: given up as lost, its finalizer still running
        state.failing = true
        yield* advance(LEASE, 10)
        assert.deepStrictEqual([...interruptedAt.keys()], [1])
        // a second job, claimed now; then the beats get no answer at all
        yield* JobQueue.enqueue(Hold, 2, { queue: "q" })
        yield* advance(10)
        const claimedAt = state.claimed[1]!.at
        state.failing = false
        state.hanging = true
        yield* advance(claimedAt + LEASE - 100 - (yield* Clock.currentTimeMillis), 10)
        yield* advance(claimedAt + LEASE - 1 - (yield* Clock.currentTimeMillis), 1)
        assert.isFalse(interruptedAt.has(2))
        // old: the beat's bound was a third of a lease (the first job's lease had ended), not what was left of the second's
        yield* advance(2, 1)
        assert.strictEqual(interruptedAt.get(2)! - claimedAt, LEASE)
      }).pipe(Effect.ensuring(Deferred.succeed(release, undefined)), Effect.scoped, Effect.provide(layer))
    }))
})

describe("a durable consumer's heartbeat after this process paused past a lease", () => {
  // real time: a pause is the event loop blocked (a synchronous loop in some fiber, Atomics.wait),
  // every timer late at once, which the TestClock (firing each sleep at its time) cannot show
  it.live("the event loop blocked for two leases, then resumed: the job whose lease ended meanwhile is given up at once, not beaten for, and the heartbeat loop does not spin", () =>
    Effect.gen(function*() {
      const lease = 300
      const tokens: Array<string> = []
      const beats: Array<{ readonly at: number; readonly tokens: ReadonlyArray<string> }> = []
      const beaten = yield* Deferred.make<void>()
      /** The heartbeat loop's waits: one per turn of it. */
      let looks = 0
      const layer = Layer.effect(
        JobStore.JobStore,
        Effect.map(JobStore.JobStore, (inner): Store => ({
          ...inner,
          claim: (request) =>
            Effect.tap(inner.claim(request), ({ claims }) => Effect.sync(() => void tokens.push(...claims.map((c) => c.token)))),
          heartbeat: (ts, lease) =>
            Effect.andThen(
              Effect.sync(() => {
                beats.push({ at: performance.now(), tokens: ts })
                if (ts.length > 0) Deferred.doneUnsafe(beaten, Exit.void)
              }),
              inner.heartbeat(ts, lease)
            ),
          waitCancel: (millis, since) => Effect.andThen(Effect.sync(() => void looks++), inner.waitCancel(millis, since))
        }))
      ).pipe(Layer.provide(JobStore.memory()))
      yield* Effect.gen(function*() {
        const started = yield* Deferred.make<void>()
        const interrupted = yield* Deferred.make<number>()
        const handler = Task.handle(Hold, () =>
          Effect.andThen(
            Deferred.succeed(started, undefined),
            Effect.never.pipe(Effect.onInterrupt(() => Deferred.succeed(interrupted, performance.now())))
          ))
        yield* JobQueue.consume({ queues: ["q"], handlers: [handler], concurrency: 1, lease, shutdownTimeout: 0 })
        yield* JobQueue.enqueue(Hold, 1, { queue: "q" })
        yield* Deferred.await(started)
        // a beat has renewed it: the heartbeat loop waits for the next one
        yield* Deferred.await(beaten)
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2 * lease)
        const resumed = performance.now()
        const lookedAt = looks
        const at = yield* Effect.timeoutOrElse(Deferred.await(interrupted), {
          duration: 10_000,
          orElse: () => Effect.die("the job whose lease ended during the pause was never given up")
        })
        // old: the loop beat for it (a beat with no time left for it, bound by a third of a lease), and kept it if the store had not reaped it yet
        assert.deepStrictEqual(beats.filter((beat) => beat.at >= resumed && beat.at <= at).map((beat) => beat.tokens), [])
        assert.deepStrictEqual(beats.filter((beat) => beat.at >= resumed && beat.tokens.includes(tokens[0]!)).length, 0)
        // a few turns of the loop in a lease (a beat's spacing each), not one per tick of the event loop
        yield* Effect.sleep(lease)
        assert.isAtMost(looks - lookedAt, 10)
      }).pipe(Effect.scoped, Effect.provide(layer))
    }))
})
