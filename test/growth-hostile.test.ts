/**
 * Hostile tests of what grows without bound in a long-lived process or store: what a store keeps
 * after its jobs are finished and purged, and what a process keeps per queue, job or key it ever
 * saw. Each asserts on counts (rows, keys, map entries) or on bytes per item with a generous bound,
 * never on wall time.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Fiber, Schema } from "effect"
import { TestClock } from "effect/testing"
import { getHeapSpaceStatistics, setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import { makeSignal } from "../src/internal/store/signal.ts"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as RedisJobStore from "../src/RedisJobStore.ts"
import * as Task from "../src/Task.ts"
import * as Rd from "./durable/redis.ts"

setFlagsFromString("--expose-gc")
const gc: () => void = runInNewContext("gc")
/**
 * The heap's objects after full collections, without V8's compiled code and bytecode (its code and
 * trusted spaces): V8 goes on compiling the code under test as it warms up, by a background compiler
 * whose finishing time a busy CPU moves, and those 100-300 KB (65 B a queue once at 5,000) are no
 * entry of any item.
 */
const heap = () => {
  for (let i = 0; i < 4; i++) gc()
  return getHeapSpaceStatistics().reduce((sum, space) => /code|trusted/.test(space.space_name) ? sum : sum + space.space_used_size, 0)
}

const Echo = Task.make("Echo", { payload: Schema.Struct({ n: Schema.Number }), success: Schema.Number })
const echo = Task.handle(Echo, ({ n }) => Effect.succeed(n))

describe.runIf(Rd.enabled)("purge at scale on Redis", () => {
  // BUG: the purge script takes at most 10,000 finished jobs of a queue per state and call, and
  // purge returned after one call: a nightly purge of a queue that finishes more than 10,000 jobs a
  // day deletes 10,000 of them and falls further behind every day (Redis fills with finished jobs)
  it.live("purge deletes every finished job of a queue, not the first 10,000", () =>
    Effect.gen(function*() {
      const total = 10_050
      const queue = "bulk"
      yield* Effect.gen(function*() {
        yield* JobQueue.consume({ queues: [queue], handlers: [echo], concurrency: 64 })
        const items = Array.from({ length: total }, (_, n) => ({ payload: { n } }))
        for (let i = 0; i < total; i += 1000) yield* JobQueue.enqueueAll(Echo, items.slice(i, i + 1000), { queue })
        while ((yield* JobQueue.stats(queue)).succeeded < total) yield* Effect.sleep(100)
      }).pipe(Effect.scoped)
      yield* Effect.sleep(5)
      const purged = yield* JobQueue.purge({ olderThan: 0 })
      const left = (yield* JobQueue.stats(queue)).succeeded
      assert.deepStrictEqual({ purged, left }, { purged: total, left: 0 })
    }).pipe(Effect.provide(RedisJobStore.layer({ url: Rd.url!, prefix: Rd.freshPrefix() }))), { timeout: 120_000 })
})

describe("a store's wake-up signal in a process that sees many queues", () => {
  // BUG: the signal the stores share in a process (Postgres and Redis key its changes by queue: an
  // enqueue, a settle, a delayed job's time) kept the last change of every key it ever saw, and the
  // time of every delayed change no waiter of its key was here to take: a producer enqueuing to a
  // queue per tenant, or a consumer's process seeing them, kept an entry per queue ever used
  it.effect("100,000 queues changed once each (now and later): the heap keeps no entry per queue, and a waiter still wakes for its own", () =>
    Effect.gen(function*() {
      const signal = makeSignal({ clock: yield* Clock.Clock })
      const keys = 100_000
      const churn = (round: number) =>
        Effect.gen(function*() {
          for (let i = 0; i < keys; i++) {
            signal.notify(`tenant-${round}-${i}`)
            signal.notifyIn(1000, `tenant-${round}-${i}`)
          }
          yield* TestClock.adjust(1000)
        })
      yield* churn(0)
      // a change of a consumer's queue before 100,000 others, while it looked (from version `early`)
      const early = yield* signal.version
      signal.notify("mine")
      const before = heap()
      yield* churn(1)
      const after = heap()
      assert.isBelow((after - before) / keys, 8, `bytes per queue (${before} -> ${after})`)
      const missed = yield* Effect.forkChild(signal.wait(3_600_000, early, ["mine"]))
      yield* Effect.yieldNow
      assert.isDefined(missed.pollUnsafe(), "a wait from before a change of its queue returns at once")
      // a consumer's wait on its queue: woken by its change, at once by a change it missed, and at a delayed one's time
      const since = yield* signal.version
      const mine = yield* Effect.forkChild(signal.wait(3_600_000, undefined, ["mine"]))
      yield* Effect.yieldNow
      signal.notify("other")
      yield* Effect.yieldNow
      assert.isUndefined(mine.pollUnsafe())
      signal.notify("mine")
      yield* Fiber.join(mine)
      yield* signal.wait(3_600_000, since, ["mine"])
      const later = yield* Effect.forkChild(signal.wait(3_600_000, undefined, ["mine"]))
      yield* Effect.yieldNow
      signal.notifyIn(500, "mine")
      yield* TestClock.adjust(499)
      assert.isUndefined(later.pollUnsafe())
      yield* TestClock.adjust(1)
      yield* Fiber.join(later)
    }), { timeout: 60_000 })
})

describe.runIf(Rd.enabled)("a Redis producer enqueuing to a queue per tenant", () => {
  // BUG: the store remembered every queue it had added to its list of queues (to save a round trip
  // per enqueue), for its life: a producer enqueuing to a queue per tenant kept each name
  it.live("10,000 queues, a job each: the producer's heap keeps no entry per queue", () =>
    Effect.gen(function*() {
      const round = (from: number, count: number) =>
        Effect.gen(function*() {
          for (let i = from; i < from + count; i++) yield* JobQueue.enqueue(Echo, { n: i }, { queue: `tenant-${i}` })
        })
      yield* round(0, 2000)
      const before = heap()
      yield* round(2000, 10_000)
      const after = heap()
      assert.isBelow((after - before) / 10_000, 16, `bytes per queue (${before} -> ${after})`)
    }).pipe(Effect.provide(RedisJobStore.layer({ url: Rd.url!, prefix: Rd.freshPrefix() }))), { timeout: 120_000 })
})

describe.runIf(Rd.enabled)("a Redis queue whose jobs have many priorities", () => {
  // BUG: the queue's count of queued jobs per priority (B:prio) kept a field at 0 for every priority
  // a job ever had: priorities are any numbers (a deadline, a score), so a queue that ran jobs of
  // distinct priorities for months grew by a field per job, and each stats read it all
  it.live("2,000 jobs of distinct priorities, run or cancelled: the queue's priority counts keep no field, stats none", () =>
    Effect.gen(function*() {
      const prefix = Rd.freshPrefix()
      const queue = "scored"
      yield* Effect.gen(function*() {
        const items = Array.from({ length: 2000 }, (_, n) => ({ payload: { n }, options: { priority: n + 0.5 } }))
        const jobs = yield* JobQueue.enqueueAll(Echo, items, { queue })
        // some leave the queue by a cancel, the others by a claim
        for (const job of jobs.slice(0, 100)) yield* JobQueue.cancel(job.id)
        yield* Effect.gen(function*() {
          yield* JobQueue.consume({ queues: [queue], handlers: [echo], concurrency: 16 })
          while ((yield* JobQueue.stats(queue)).succeeded < 1900) yield* Effect.sleep(50)
        }).pipe(Effect.scoped)
        assert.deepStrictEqual((yield* JobQueue.stats(queue)).queuedByPriority, [])
      }).pipe(Effect.provide(RedisJobStore.layer({ url: Rd.url!, prefix })))
      const fields = yield* Effect.promise(() => Rd.admin((client) => client.hLen(`{${prefix}:${queue}}:prio`)))
      assert.strictEqual(fields, 0)
    }), { timeout: 120_000 })
})

describe("the memory store with a queue per tenant", () => {
  // BUG: the store made a queue's settings (paused, aging, rate limit) the first time anything named
  // the queue (an enqueue, a claim, stats) and kept them for its life, though only a configure sets
  // them: a queue per tenant was an entry per tenant once its jobs were purged
  it.effect("5,000 queues, a job each, run and purged: the heap keeps no entry per queue", () =>
    Effect.gen(function*() {
      const round = (from: number, count: number) =>
        Effect.gen(function*() {
          for (let i = from; i < from + count; i++) {
            const queue = `tenant-${i}`
            yield* Effect.scoped(Effect.gen(function*() {
              yield* JobQueue.consume({ queues: [queue], handlers: [echo], concurrency: 1 })
              const job = yield* JobQueue.enqueue(Echo, { n: i }, { queue })
              assert.strictEqual(yield* job.await, i)
            }))
            yield* JobQueue.stats(queue)
          }
          yield* TestClock.adjust(1)
          yield* JobQueue.purge({ olderThan: 0 })
        })
      // the first round as large: V8's tables for the jobs and names live at once grow to their size
      yield* round(0, 5000)
      const before = heap()
      yield* round(5000, 5000)
      const after = heap()
      assert.isBelow((after - before) / 5000, 64, `bytes per queue (${before} -> ${after})`)
    }).pipe(Effect.provide(JobStore.memory())), { timeout: 120_000 })
})

describe.runIf(Rd.enabled)("a Redis store with a queue per tenant, its jobs purged", () => {
  // BUG: a queue stayed in the store's list of queues ({prefix}:queues) and kept its seq, tasks and
  // marker keys after its last job was purged. Besides 3 keys and a member per tenant ever served,
  // every consumer's reaper ran one script per listed queue at each reap, and purge and the listing
  // of every queue walked them all: the work of an idle store grew with every tenant it ever had
  it.live("50 queues, a job each, run and purged: no key of theirs is left, nor their names in the list of queues", () =>
    Effect.gen(function*() {
      const prefix = Rd.freshPrefix()
      yield* Effect.gen(function*() {
        for (let i = 0; i < 50; i++) {
          const queue = `tenant-${i}`
          yield* Effect.scoped(Effect.gen(function*() {
            yield* JobQueue.consume({ queues: [queue], handlers: [echo], concurrency: 1 })
            const job = yield* JobQueue.enqueue(Echo, { n: i }, { queue })
            assert.strictEqual(yield* job.await, i)
          }))
        }
        yield* Effect.sleep(5)
        assert.strictEqual(yield* JobQueue.purge({ olderThan: 0 }), 50)
      }).pipe(Effect.provide(RedisJobStore.layer({ url: Rd.url!, prefix })))
      const left = yield* Effect.promise(() =>
        Rd.admin(async (client) => ({
          keys: (await client.keys(`{${prefix}:tenant-*`)).length,
          listed: await client.sCard(`{${prefix}}:queues`)
        }))
      )
      assert.deepStrictEqual(left, { keys: 0, listed: 0 })
    }), { timeout: 60_000 })
})
