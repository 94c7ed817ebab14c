/**
 * A durable consumer's heartbeat after this process paused past a lease: real time, on the memory
 * store (the consumer's own loop; the lease tests that hold on every store are the conformance
 * suite's, test/durable/conformance.ts).
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Layer, Logger, Schema } from "effect"
import type { Store } from "../src/internal/store/model.ts"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as Task from "../src/Task.ts"
import { warnings } from "./helpers.ts"

const Hold = Task.make("Hold", { payload: Schema.Number, success: Schema.Number })

describe("a durable consumer's heartbeat after this process paused past a lease", () => {
  // real time: a pause is the event loop blocked (a synchronous loop in some fiber, Atomics.wait),
  // every timer late at once, which the TestClock (firing each sleep at its time) cannot show
  it.live("the event loop blocked for two leases, then resumed: the job whose lease ended meanwhile is given up at once, not beaten for, with a warning saying so, and the heartbeat loop does not spin", () =>
    Effect.gen(function*() {
      const lease = 300
      const tokens: Array<string> = []
      const beats: Array<{ readonly at: number; readonly tokens: ReadonlyArray<string> }> = []
      const beaten = yield* Deferred.make<void>()
      /** Ends the job's finalizer: until then, a job given up stays in the consumer's running set. */
      const finished = yield* Deferred.make<void>()
      /** The heartbeat loop's turns (it reads the store's cancel version once a turn). */
      let turns = 0
      const { logged, collector } = warnings()
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
          cancelVersion: Effect.andThen(Effect.sync(() => void turns++), inner.cancelVersion)
        }))
      ).pipe(Layer.provide(JobStore.memory()))
      yield* Effect.gen(function*() {
        const started = yield* Deferred.make<void>()
        const interrupted = yield* Deferred.make<number>()
        // its finalizer runs until the test has counted the loop's turns: a job given up, still there
        const handler = Task.handle(Hold, () =>
          Effect.andThen(
            Deferred.succeed(started, undefined),
            Effect.never.pipe(Effect.onInterrupt(() =>
              Effect.andThen(Deferred.succeed(interrupted, performance.now()), Deferred.await(finished))
            ))
          ))
        yield* JobQueue.consume({ queues: ["q"], handlers: [handler], concurrency: 1, lease, shutdownTimeout: 0 })
        yield* JobQueue.enqueue(Hold, 1, { queue: "q" })
        yield* Deferred.await(started)
        // a beat has renewed it: the heartbeat loop waits for the next one
        yield* Deferred.await(beaten)
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2 * lease)
        const resumed = performance.now()
        const at = yield* Effect.timeoutOrElse(Deferred.await(interrupted), {
          duration: 10_000,
          orElse: () => Effect.die("the job whose lease ended during the pause was never given up")
        })
        // old: the loop beat for it (a beat with no time left for it, bound by a third of a lease), and kept it if the store had not reaped it yet
        assert.deepStrictEqual(beats.filter((beat) => beat.at >= resumed && beat.at <= at).map((beat) => beat.tokens), [])
        assert.deepStrictEqual(beats.filter((beat) => beat.at >= resumed && beat.tokens.includes(tokens[0]!)).length, 0)
        // a few turns of the loop in a lease (a beat's spacing each), not one after another
        const turned = turns
        yield* Effect.sleep(lease)
        assert.isAtMost(turns - turned, 10)
        // said, once: nothing else tells an operator why the job ran again elsewhere
        assert.deepStrictEqual(logged.filter((message) => message.includes("paused")).length, 1, logged.join("\n"))
      }).pipe(Effect.ensuring(Deferred.succeed(finished, undefined)), Effect.scoped, Effect.provide(layer), Effect.provide(Logger.layer([collector])))
    }))
})
