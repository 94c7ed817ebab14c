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
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"
import * as DurableError from "../src/DurableError.ts"
import { JobStore as Store, type Settlement } from "../src/internal/store/model.ts"
import * as JobQueue from "../src/JobQueue.ts"
import type * as JobStore from "../src/JobStore.ts"
import * as Task from "../src/Task.ts"
import { Boom, Echo, options, tick, tracked } from "./durable/conformance.ts"
import { storeLayers } from "./durable/stores.ts"
import { warnings } from "./helpers.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wp-events-hostile-"))
let files = 0
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

/** Collects the events told to `onEvent`, with when each came (the consumer's clock). */
const recorder = () => {
  const all: Array<JobQueue.JobEvent> = []
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

/** Ticks the clock until `done`, 100 ms at a time, at most `seconds`. */
const until = (done: () => boolean, seconds = 60) =>
  Effect.gen(function*() {
    for (let i = 0; i < seconds * 10 && !done(); i++) yield* tick(100)
    assert.isTrue(done(), "the awaited events came")
  })

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
  })
}
