import { assert, describe, it } from "@effect/vitest"
import { Cause, Clock, Deferred, Effect, Exit, Fiber, Layer, Logger, References, Schedule, Schema, Scope } from "effect"
import { TestClock } from "effect/testing"
import { StoreError } from "../src/DurableError.ts"
import { TaskCodecError } from "../src/PoolError.ts"
import type { Store } from "../src/internal/store/model.ts"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as Task from "../src/Task.ts"
import * as WorkPool from "../src/WorkPool.ts"
import { claimsAmongOtherTasks, conformance, newJob } from "./durable/conformance.ts"

const Double = Task.make("Double", { payload: Schema.Number, success: Schema.Number })

conformance("the memory store", () => JobStore.memory())

describe("the memory store's idle consumers", () => {
  it.effect("an idle consumer whose queue holds only jobs of tasks it does not handle claims once, not again at every poll or look", () =>
    Effect.map(claimsAmongOtherTasks(JobStore.memory()), (claims) => assert.strictEqual(claims, 0)))
})

describe("a consumer while its store is down", () => {
  it.effect("failed claims back off (poll doubling up to 5 s) and are logged at 1, 2, 4, 8, ... failures, not at every poll; it recovers", () =>
    Effect.gen(function*() {
      const logged: Array<string> = []
      const collector = Logger.make((options) => {
        const message = Array.isArray(options.message) ? options.message[0] : options.message
        logged.push(String(message))
      })
      const down = { value: true }
      let claims = 0
      const store = Layer.effect(
        JobStore.JobStore,
        Effect.map(JobStore.JobStore, (inner): Store => ({
          ...inner,
          claim: (request) =>
            Effect.suspend(() => {
              claims++
              return down.value ? Effect.fail(new StoreError({ operation: "claim", reason: "unreachable" })) : inner.claim(request)
            })
        }))
      ).pipe(Layer.provide(JobStore.memory()))
      const value = yield* Effect.gen(function*() {
        yield* JobQueue.consume({ handlers: [Task.handle(Double, (n) => Effect.succeed(n * 2))], concurrency: 2, poll: 10 })
        // a minute down: at a 10 ms poll that was 6,000 claims and as many warnings
        for (let t = 0; t < 60_000; t += 100) yield* TestClock.adjust(100)
        const failed = logged.filter((line) => line.startsWith("effect-workpool: claiming durable jobs failed"))
        assert.isAtMost(claims, 25)
        assert.isAtMost(failed.length, 6)
        // a backoff at the 100 ms floor or under is a plain sleep; a longer one is the store's wait
        // past the floor, which a change the store hears ends sooner
        assert.match(failed[0]!, /1 time in a row; next try in 10 ms\)$/)
        assert.match(failed.at(-1)!, /\d+ times in a row; next try within 5000 ms, sooner if the store hears a change\)$/)
        // back: a job enqueued now starts within the backoff (5 s)
        down.value = false
        const job = yield* JobQueue.enqueue(Double, 21)
        for (let t = 0; t < 5_100; t += 100) yield* TestClock.adjust(100)
        assert.isTrue(logged.some((line) => /claiming durable jobs works again, after \d+ failures/.test(line)))
        return yield* job.await
      }).pipe(Effect.scoped, Effect.provide(Layer.merge(store, Logger.layer([collector]))))
      assert.strictEqual(value, 42)
    }))

  it.effect("failed reaps are logged at 1, 2, 4, 8, ... failures in a row, not silently dropped; the recovery too", () =>
    Effect.gen(function*() {
      // a reap that fails (a store that refuses its query) leaves every job of a dead consumer held
      // for good: an operator must hear of it
      const logged: Array<string> = []
      const collector = Logger.make((options) => {
        const message = Array.isArray(options.message) ? options.message[0] : options.message
        logged.push(String(message))
      })
      const down = { value: true }
      let reaps = 0
      const store = Layer.effect(
        JobStore.JobStore,
        Effect.map(JobStore.JobStore, (inner): Store => ({
          ...inner,
          reap: (backoff, policies) =>
            Effect.suspend(() => {
              reaps++
              return down.value ? Effect.fail(new StoreError({ operation: "reap", reason: "refused" })) : inner.reap(backoff, policies)
            })
        }))
      ).pipe(Layer.provide(JobStore.memory()))
      yield* Effect.gen(function*() {
        yield* JobQueue.consume({ handlers: [Task.handle(Double, (n) => Effect.succeed(n * 2))], concurrency: 1, lease: 1_000 })
        for (let t = 0; t < 10_000; t += 100) yield* TestClock.adjust(100)
        const failed = logged.filter((line) => line.startsWith("effect-workpool: taking back expired durable jobs failed"))
        assert.isAtLeast(reaps, 16)
        assert.deepStrictEqual(failed.map((line) => line.match(/\((\d+) times? in a row/)![1]), ["1", "2", "4", "8", "16"].slice(0, failed.length))
        assert.isAtLeast(failed.length, 4)
        down.value = false
        for (let t = 0; t < 1_000; t += 100) yield* TestClock.adjust(100)
        assert.isTrue(logged.some((line) => /taking back expired durable jobs works again, after \d+ failures/.test(line)), logged.join("\n"))
      }).pipe(Effect.scoped, Effect.provide(Layer.merge(store, Logger.layer([collector]))))
    }))
})

describe("a consumer's retention maintenance (JobQueue.setRetention)", () => {
  it.effect("a backlog of more than a batch goes batch after batch (1,000 jobs each), at once, not one batch per half lease; then one look per half lease", () =>
    Effect.gen(function*() {
      const batches: Array<ReadonlyArray<number | boolean>> = []
      const store = Layer.effect(
        JobStore.JobStore,
        Effect.map(JobStore.JobStore, (inner): Store => ({
          ...inner,
          retain: (batch) =>
            Effect.tap(inner.retain(batch), (retained) =>
              Effect.sync(() => void batches.push([batch, retained.deleted, retained.more])))
        }))
      ).pipe(Layer.provide(JobStore.memory()))
      yield* Effect.gen(function*() {
        const inner = yield* JobStore.JobStore
        // 2,500 finished jobs, then a retention that keeps none of them
        yield* inner.enqueueAll(Array.from({ length: 2500 }, () => ({ ...newJob("default"), task: "Other" })))
        const claims = (yield* inner.claim({ queues: ["default"], tasks: ["Other"], limit: 2500, lease: 60_000 })).claims
        for (const claim of claims) yield* inner.settle(claim.token, { _tag: "Final", state: "succeeded", exit: null })
        yield* JobQueue.setRetention("default", { succeeded: { count: 0 } })
        yield* JobQueue.consume({ handlers: [Task.handle(Double, (n) => Effect.succeed(n * 2))], concurrency: 1, lease: 1_000 })
        yield* TestClock.adjust(1)
        // within the first millisecond: no half lease between the batches
        assert.deepStrictEqual(batches.slice(0, 3), [[1000, 1000, true], [1000, 1000, true], [1000, 500, false]])
        assert.strictEqual((yield* JobQueue.stats("default")).succeeded, 0)
        assert.isAtMost(batches.length, 4, "one look for another queue's retention since, at most")
        const before = batches.length
        for (let t = 0; t < 5_000; t += 100) yield* TestClock.adjust(100)
        // a look every half lease (500 ms): about 10 in 5 s
        assert.isAtLeast(batches.length - before, 9)
        assert.isAtMost(batches.length - before, 11)
      }).pipe(Effect.scoped, Effect.provide(store))
    }))

  it.effect("250 queues with a retention: a consumer's round goes through them all, 100 a call (RETAIN_QUEUES), one call after another at once", () =>
    Effect.gen(function*() {
      const calls: Array<ReadonlyArray<number | boolean>> = []
      const store = Layer.effect(
        JobStore.JobStore,
        Effect.map(JobStore.JobStore, (inner): Store => ({
          ...inner,
          retain: (batch, queues) =>
            Effect.tap(inner.retain(batch, queues), (retained) => Effect.sync(() => void calls.push([retained.deleted, retained.more])))
        }))
      ).pipe(Layer.provide(JobStore.memory()))
      yield* Effect.gen(function*() {
        const inner = yield* JobStore.JobStore
        const queues = Array.from({ length: 250 }, (_, i) => `tenant-${String(i).padStart(3, "0")}`)
        yield* inner.enqueueAll(queues.map((queue) => ({ ...newJob(queue), task: "Other" })))
        const claims = (yield* inner.claim({ queues, tasks: ["Other"], limit: 250, lease: 60_000 })).claims
        for (const claim of claims) yield* inner.settle(claim.token, { _tag: "Final", state: "succeeded", exit: null })
        for (const queue of queues) yield* JobQueue.setRetention(queue, { succeeded: { count: 0 } })
        yield* JobQueue.consume({ handlers: [Task.handle(Double, (n) => Effect.succeed(n * 2))], concurrency: 1, lease: 1_000 })
        yield* TestClock.adjust(1)
        // within the first millisecond: no half lease between the calls
        assert.deepStrictEqual(calls.slice(0, 3), [[100, true], [100, true], [50, false]])
        for (const queue of ["tenant-000", "tenant-149", "tenant-249"]) assert.strictEqual((yield* JobQueue.stats(queue)).succeeded, 0, queue)
      }).pipe(Effect.scoped, Effect.provide(store))
    }))

  it.effect("failed retention batches are logged at 1, 2, 4, ... failures in a row, and the recovery", () =>
    Effect.gen(function*() {
      const logged: Array<string> = []
      const collector = Logger.make((options) => {
        const message = Array.isArray(options.message) ? options.message[0] : options.message
        logged.push(String(message))
      })
      const down = { value: true }
      const store = Layer.effect(
        JobStore.JobStore,
        Effect.map(JobStore.JobStore, (inner): Store => ({
          ...inner,
          retain: (batch) =>
            Effect.suspend(() => down.value ? Effect.fail(new StoreError({ operation: "retain", reason: "refused" })) : inner.retain(batch))
        }))
      ).pipe(Layer.provide(JobStore.memory()))
      yield* Effect.gen(function*() {
        yield* JobQueue.consume({ handlers: [Task.handle(Double, (n) => Effect.succeed(n * 2))], concurrency: 1, lease: 1_000 })
        for (let t = 0; t < 5_000; t += 100) yield* TestClock.adjust(100)
        const failed = logged.filter((line) => line.startsWith("effect-workpool: deleting finished durable jobs past their queue's retention failed"))
        assert.isAtLeast(failed.length, 3, logged.join("\n"))
        down.value = false
        for (let t = 0; t < 1_000; t += 100) yield* TestClock.adjust(100)
        assert.isTrue(logged.some((line) => /retention works again, after \d+ failures/.test(line)), logged.join("\n"))
      }).pipe(Effect.scoped, Effect.provide(Layer.merge(store, Logger.layer([collector]))))
    }))
})

describe("a consumer whose reap never answers (a frozen store server)", () => {
  it.effect("the reap fails at its bound (5 s, the read's bound: above a lease of 1 s; logged as a failed reap), the next one runs, and a dead consumer's job is taken back and run", () =>
    Effect.gen(function*() {
      const logged: Array<string> = []
      const collector = Logger.make((options) => {
        logged.push(String(Array.isArray(options.message) ? options.message[0] : options.message))
      })
      const reapedAt: Array<number> = []
      const store = Layer.effect(
        JobStore.JobStore,
        Effect.map(JobStore.JobStore, (inner): Store => ({
          ...inner,
          reap: (backoff, policies) =>
            Effect.flatMap(Clock.currentTimeMillis, (now) => {
              reapedAt.push(now)
              return reapedAt.length === 1 ? Effect.never : inner.reap(backoff, policies)
            })
        }))
      ).pipe(Layer.provide(JobStore.memory()))
      yield* Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const job = yield* JobQueue.enqueue(Double, 21)
        // a consumer that took the job and died: its lease ends at 100 ms
        const dead = yield* store.claim({ queues: ["default"], tasks: ["Double"], limit: 1, lease: 100 })
        assert.strictEqual(dead.claims.length, 1)
        yield* JobQueue.consume({ handlers: [Task.handle(Double, (n) => Effect.succeed(n * 2))], concurrency: 1, lease: 1_000, poll: "100 millis" })
        for (let t = 0; t < 5_600; t += 50) yield* TestClock.adjust(50)
        assert.deepStrictEqual(reapedAt.slice(0, 2), [0, 5_500], "the first reap is given up at its bound, the next one runs a half lease later")
        assert.isTrue(logged.some((line) => /taking back expired durable jobs failed \(1 time in a row/.test(line)), logged.join("\n"))
        for (let t = 0; t < 1_000; t += 50) yield* TestClock.adjust(50)
        assert.strictEqual(yield* job.await, 42)
        assert.isTrue(logged.some((line) => /taking back expired durable jobs works again, after 1 failure/.test(line)), logged.join("\n"))
      }).pipe(Effect.scoped, Effect.provide(Layer.merge(store, Logger.layer([collector]))))
    }))
})

describe("a consumer whose reap is slower than its lease (a backlog of expired jobs on a loaded machine)", () => {
  // the reaper bounded a reap by its lease: each reap slower than that was cut, and a short lease's
  // consumer (100 ms) never took a backlog back on a loaded machine
  it.effect("the reap is not cut at the lease (100 ms): a dead consumer's job is taken back and run", () =>
    Effect.gen(function*() {
      const store = Layer.effect(
        JobStore.JobStore,
        Effect.map(JobStore.JobStore, (inner): Store => ({
          ...inner,
          reap: (backoff, policies) => Effect.delay(inner.reap(backoff, policies), "1 second")
        }))
      ).pipe(Layer.provide(JobStore.memory()))
      yield* Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        const job = yield* JobQueue.enqueue(Double, 21)
        const dead = yield* store.claim({ queues: ["default"], tasks: ["Double"], limit: 1, lease: 100 })
        assert.strictEqual(dead.claims.length, 1)
        yield* JobQueue.consume({ handlers: [Task.handle(Double, (n) => Effect.succeed(n * 2))], concurrency: 1, lease: "100 millis", poll: "100 millis" })
        for (let t = 0; t < 3_000; t += 50) yield* TestClock.adjust(50)
        assert.strictEqual((yield* JobQueue.status(job.id)).state, "succeeded")
        assert.strictEqual(yield* job.await, 42)
      }).pipe(Effect.scoped, Effect.provide(store))
    }))
})

describe("a consumer whose heartbeat renews some queues' leases and not another's (a Redis Cluster node down)", () => {
  it.effect("drops the jobs of the queue not renewed, each a lease after its last renewal, and not before; the renewed queue's job runs on to its end, once", () =>
    Effect.gen(function*() {
      const down = { value: false }
      const queueOf = new Map<string, string>()
      // the time the frozen queue's job was last renewed, by its token
      const renewed = new Map<string, number>()
      const store = Layer.effect(
        JobStore.JobStore,
        Effect.map(JobStore.JobStore, (inner): Store => ({
          ...inner,
          claim: (request) =>
            Effect.tap(
              inner.claim({ ...request, queues: request.queues.filter((queue) => !down.value || queue !== "frozen") }),
              ({ claims }) => Effect.sync(() => claims.forEach((claim) => queueOf.set(claim.token, claim.job.queue)))
            ),
          // as the Redis store's: the queues that answer are renewed, the others' tokens reported
          heartbeat: (tokens, lease) =>
            Effect.gen(function*() {
              const now = yield* Clock.currentTimeMillis
              const unrenewed = down.value ? tokens.filter((token) => queueOf.get(token) === "frozen") : []
              for (const token of tokens) if (!unrenewed.includes(token) && queueOf.get(token) === "frozen") renewed.set(token, now)
              if (unrenewed.length === tokens.length) return yield* Effect.fail(new StoreError({ operation: "heartbeat", reason: "node down" }))
              const beat = yield* inner.heartbeat(tokens.filter((token) => !unrenewed.includes(token)), lease)
              return unrenewed.length === 0 ? beat : { ...beat, unrenewed: { tokens: unrenewed, error: new StoreError({ operation: "heartbeat", reason: "node down" }) } }
            })
        }))
      ).pipe(Layer.provide(JobStore.memory()))
      const interrupted: Array<readonly [number, number]> = []
      const logged: Array<string> = []
      const collector = Logger.make((options) => {
        logged.push(String(Array.isArray(options.message) ? options.message[0] : options.message))
      })
      const release = yield* Deferred.make<void>()
      yield* Effect.gen(function*() {
        yield* JobQueue.consume({
          queues: ["frozen", "default"],
          handlers: [Task.handle(Double, (n) =>
            (n === 1 ? Effect.never : Effect.as(Deferred.await(release), n * 2)).pipe(
              Effect.onInterrupt(() => Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => void interrupted.push([n, now]))))
            ))],
          concurrency: 2,
          lease: 1_000,
          poll: "100 millis"
        })
        const frozen = yield* JobQueue.enqueue(Double, 1, { queue: "frozen" })
        const healthy = yield* JobQueue.enqueue(Double, 2)
        for (let t = 0; t < 500; t += 50) yield* TestClock.adjust(50)
        assert.strictEqual(queueOf.size, 2, "both jobs run")
        down.value = true
        const token = [...queueOf].find(([, queue]) => queue === "frozen")![0]
        const last = renewed.get(token)!
        for (let t = 0; t < 3_000 && interrupted.length === 0; t += 50) yield* TestClock.adjust(50)
        assert.deepStrictEqual(interrupted.map(([n]) => n), [1], "only the frozen queue's job is dropped")
        const at = interrupted[0]![1]
        assert.isAtLeast(at - last, 1_000, "not before a lease from its last renewal")
        assert.isBelow(at - last, 1_000 + 400, "at the first beat past it")
        assert.deepStrictEqual(logged.filter((line) => /could not be renewed/.test(line)), [
          "effect-workpool: 1 durable job's lease could not be renewed for a lease (their queue's store unreachable?); given up as lost, to run again elsewhere"
        ])
        // several leases on, the healthy queue's job still runs under its first lease's renewals
        for (let t = 0; t < 3_000; t += 50) yield* TestClock.adjust(50)
        assert.strictEqual(interrupted.length, 1)
        yield* Deferred.succeed(release, undefined)
        for (let t = 0; t < 200; t += 50) yield* TestClock.adjust(50)
        assert.strictEqual(yield* healthy.await, 4)
        assert.strictEqual((yield* JobQueue.status(healthy.id)).attempts, 1)
        // its lease ended unrenewed: the reaper took it back (not claimed again: its queue is down)
        assert.strictEqual((yield* JobQueue.status(frozen.id)).state, "queued")
      }).pipe(Effect.scoped, Effect.provide(Layer.merge(store, Logger.layer([collector]))))
    }))
})

describe("a consumer with a long poll whose claim failed", () => {
  it.effect("tries again within a second (doubling up to 5 s), not a poll (an hour) later; a change its store hears ends the backoff", () =>
    Effect.gen(function*() {
      let failing = 1
      const claimedAt: Array<number> = []
      // a claim cut off by a server restart: the store is back for the next one
      const store = Layer.effect(
        JobStore.JobStore,
        Effect.map(JobStore.JobStore, (inner): Store => ({
          ...inner,
          claim: (request) =>
            Effect.flatMap(Clock.currentTimeMillis, (now) => {
              claimedAt.push(now)
              if (failing === 0) return inner.claim(request)
              failing--
              return Effect.fail(new StoreError({ operation: "claim", reason: "Connection closed" }))
            })
        }))
      ).pipe(Layer.provide(JobStore.memory()))
      const advance = (millis: number) =>
        Effect.gen(function*() {
          for (let t = 0; t < millis; t += 50) yield* TestClock.adjust(50)
        })
      yield* Effect.gen(function*() {
        // enqueued before the consumer started: no change to hear, only a claim finds it
        const first = yield* JobQueue.enqueue(Double, 1)
        yield* JobQueue.consume({ handlers: [Task.handle(Double, (n) => Effect.succeed(n * 2))], concurrency: 2, poll: "1 hour" })
        yield* advance(2000)
        assert.deepStrictEqual(claimedAt.slice(0, 2), [0, 1000])
        assert.strictEqual(yield* first.await, 2)
        // three failures in a row (1 s, 2 s, then a 4 s backoff): a job enqueued 50 ms into the
        // last one ends it after the floor (100 ms), not 4 s later
        failing = 3
        const from = claimedAt.length
        const second = yield* JobQueue.enqueue(Double, 2)
        yield* advance(3050)
        const third = yield* JobQueue.enqueue(Double, 3)
        yield* advance(100)
        assert.deepStrictEqual(claimedAt.slice(from, from + 4).map((at) => at - claimedAt[from]!), [0, 1000, 3000, 3100])
        assert.deepStrictEqual([yield* second.await, yield* third.await], [4, 6])
      }).pipe(Effect.scoped, Effect.provide(store))
    }))
})

describe("a consumer whose settles are slow", () => {
  it.effect("claims for a slot as soon as its job has ended, while that job's settle is still being written", () =>
    Effect.gen(function*() {
      // every settle takes a second to be written
      const store = Layer.effect(
        JobStore.JobStore,
        Effect.map(JobStore.JobStore, (inner): Store => ({
          ...inner,
          settle: (token, settlement) => Effect.andThen(Effect.sleep(1000), inner.settle(token, settlement))
        }))
      ).pipe(Layer.provide(JobStore.memory()))
      const started: Array<number> = []
      const results = yield* Effect.gen(function*() {
        yield* JobQueue.consume({
          handlers: [Task.handle(Double, (n) => Effect.as(Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => started.push(now))), n * 2))],
          concurrency: 1
        })
        const jobs = [yield* JobQueue.enqueue(Double, 1), yield* JobQueue.enqueue(Double, 2)]
        for (let t = 0; t < 3_000; t += 100) yield* TestClock.adjust(100)
        return yield* Effect.forEach(jobs, (job) => job.await)
      }).pipe(Effect.scoped, Effect.provide(store))
      assert.deepStrictEqual(results, [2, 4])
      // the second job started before the first one's settle was written (a second later)
      assert.strictEqual(started.length, 2)
      assert.isBelow(started[1]! - started[0]!, 1000)
    }))
})

/** Every settle takes `ms` to be written; claims and given-back jobs are counted. */
const slowStore = (ms: number, log: { releases: number; claimed: number }) =>
  Layer.effect(
    JobStore.JobStore,
    Effect.map(JobStore.JobStore, (inner): Store => ({
      ...inner,
      claim: (request) => Effect.tap(inner.claim(request), (c) => Effect.sync(() => void (log.claimed += c.claims.length))),
      settle: (token, settlement) =>
        Effect.andThen(
          Effect.sync(() => {
            if (settlement._tag === "Release") log.releases++
          }),
          Effect.andThen(Effect.sleep(ms), inner.settle(token, settlement))
        )
    }))
  ).pipe(Layer.provide(JobStore.memory()))

describe("a consumer whose settles are slow (review)", () => {
  it.effect("with its jobs' slots freed before their settles are written, it runs at most `concurrency` handlers, keeps its rate limit, and claims no job it cannot start", () =>
    Effect.gen(function*() {
      const log = { releases: 0, claimed: 0 }
      let now = 0
      let max = 0
      const starts: Array<number> = []
      const results = yield* Effect.gen(function*() {
        yield* JobQueue.consume({
          handlers: [Task.handle(Double, (n) =>
            Effect.gen(function*() {
              now++
              max = Math.max(max, now)
              starts.push(yield* Clock.currentTimeMillis)
              yield* Effect.sleep(100)
              now--
              return n * 2
            }))],
          concurrency: 2,
          rateLimit: { limit: 3, interval: 1000 }
        })
        const jobs = yield* Effect.forEach(Array.from({ length: 20 }, (_, i) => i), (i) => JobQueue.enqueue(Double, i))
        for (let t = 0; t < 20_000; t += 50) yield* TestClock.adjust(50)
        return yield* Effect.forEach(jobs, (job) => job.await)
      }).pipe(Effect.scoped, Effect.provide(slowStore(1000, log)))
      assert.strictEqual(results.length, 20)
      assert.isAtMost(max, 2)
      for (let i = 3; i < starts.length; i++) assert.isAtLeast(starts[i]! - starts[i - 3]!, 1000, `starts ${starts}`)
      assert.strictEqual(log.releases, 0)
      assert.strictEqual(log.claimed, 20)
    }))

  it.effect("a job that reports progress only after a long time (its reporter starts then): the value is stored while it runs, and its last one before its outcome", () =>
    Effect.gen(function*() {
      const log = { releases: 0, claimed: 0 }
      yield* Effect.gen(function*() {
        yield* JobQueue.consume({
          handlers: [Task.handle(Double, (n) =>
            Effect.gen(function*() {
              const job = yield* WorkPool.JobContext
              yield* Effect.sleep(60_000)
              yield* job.progress({ late: 1 })
              yield* Effect.sleep(60_000)
              yield* job.progress({ late: 2 })
              return n * 2
            }))],
          concurrency: 1,
          lease: 5_000
        })
        const job = yield* JobQueue.enqueue(Double, 1)
        for (let t = 0; t < 61_000; t += 100) yield* TestClock.adjust(100)
        assert.deepStrictEqual((yield* JobQueue.status(job.id)).progress, { late: 1 })
        for (let t = 0; t < 61_000; t += 100) yield* TestClock.adjust(100)
        assert.strictEqual(yield* job.await, 2)
        assert.deepStrictEqual((yield* JobQueue.status(job.id)).progress, { late: 2 })
        assert.strictEqual((yield* JobQueue.status(job.id)).attempts, 1)
      }).pipe(Effect.scoped, Effect.provide(slowStore(0, log)))
    }))

})

describe("a consumer whose settle fails", () => {
  it.effect("tries it 11 times in all, lease / 10 apart (for a lease, as a heartbeat holds), then leaves the job to the reaper", () =>
    Effect.gen(function*() {
      const tries: Array<number> = []
      let failFirst = 10
      const store = Layer.effect(
        JobStore.JobStore,
        Effect.map(JobStore.JobStore, (inner): Store => ({
          ...inner,
          settle: (token, settlement) =>
            Effect.flatMap(Clock.currentTimeMillis, (now) => {
              tries.push(now)
              return tries.length <= failFirst
                ? Effect.fail(new StoreError({ operation: "settle", reason: "unreachable" }))
                : inner.settle(token, settlement)
            })
        }))
      ).pipe(Layer.provide(JobStore.memory()))
      const [first, second] = yield* Effect.gen(function*() {
        yield* JobQueue.consume({ handlers: [Task.handle(Double, (n) => Effect.succeed(n * 2))], concurrency: 1, lease: 1000 })
        const job = yield* JobQueue.enqueue(Double, 21)
        for (let t = 0; t < 1_100; t += 10) yield* TestClock.adjust(10)
        const first = { value: yield* job.await, tries: [...tries] }
        // a settle that fails every time: 11 tries, then the lease expires and the reaper retries the job
        tries.length = 0
        failFirst = 11
        const lost = yield* JobQueue.enqueue(Double, 1)
        for (let t = 0; t < 1_100; t += 10) yield* TestClock.adjust(10)
        const second = { tries: [...tries], state: (yield* JobQueue.status(lost.id)).state }
        return [first, second] as const
      }).pipe(Effect.scoped, Effect.provide(store))
      assert.strictEqual(first.value, 42)
      assert.strictEqual(first.tries.length, 11)
      assert.deepStrictEqual(first.tries.slice(1).map((t, i) => t - first.tries[i]!), Array(10).fill(100))
      assert.strictEqual(second.tries.length, 11)
      assert.notStrictEqual(second.state, "succeeded")
    }))
})

describe("a job's own retry policy, by a name the consumer does not register", () => {
  it.effect("is retried with the consumer's retry, not lost, and the consumer warns, naming the job and the policy", () =>
    Effect.gen(function*() {
      const logged: Array<string> = []
      const collector = Logger.make((options) => {
        const message = Array.isArray(options.message) ? options.message[0] : options.message
        logged.push(String(message))
      })
      let runs = 0
      const value = yield* Effect.gen(function*() {
        yield* JobQueue.consume({
          handlers: [Task.handle(Double, (n) => ++runs === 1 ? Effect.die("first attempt fails") : Effect.succeed(n * 2))],
          concurrency: 1,
          poll: 10,
          retry: Schedule.spaced("2 seconds"),
          retryPolicies: { known: Schedule.spaced("1 hour") }
        })
        const job = yield* JobQueue.enqueue(Double, 21, { retry: "unknown" })
        for (let t = 0; t < 1_900; t += 100) yield* TestClock.adjust(100)
        assert.strictEqual(runs, 1)
        for (let t = 0; t < 200; t += 100) yield* TestClock.adjust(100)
        return [yield* job.await, job.id] as const
      }).pipe(Effect.scoped, Effect.provide(Layer.merge(JobStore.memory(), Logger.layer([collector]))))
      assert.strictEqual(value[0], 42)
      assert.strictEqual(runs, 2)
      assert.isTrue(
        logged.some((line) => line.includes(`job ${value[1]} names the retry policy "unknown"`) && line.includes("consumer's retry")),
        logged.join("\n")
      )
    }))
})

describe("a consumer's warnings about one durable job", () => {
  it.effect("a settle that keeps failing is logged with the job's id and queue (the handler's own logs carry them too)", () =>
    Effect.gen(function*() {
      const warned: Array<[string, unknown, unknown]> = []
      const collector = Logger.make((options) => {
        if (options.logLevel !== "Warn") return
        const message = Array.isArray(options.message) ? options.message[0] : options.message
        const annotations = options.fiber.getRef(References.CurrentLogAnnotations)
        warned.push([String(message), annotations.jobId, annotations.queue])
      })
      const store = Layer.effect(
        JobStore.JobStore,
        Effect.map(JobStore.JobStore, (inner): Store => ({
          ...inner,
          settle: () => Effect.fail(new StoreError({ operation: "settle", reason: "unreachable" }))
        }))
      ).pipe(Layer.provide(JobStore.memory()))
      yield* Effect.gen(function*() {
        yield* JobQueue.consume({ handlers: [Task.handle(Double, (n) => Effect.succeed(n * 2))], concurrency: 1, poll: 10, lease: 1000 })
        const job = yield* JobQueue.enqueue(Double, 21, { queue: "default" })
        for (let t = 0; t < 1_000; t += 50) yield* TestClock.adjust(50)
        const settle = warned.filter(([message]) => message.includes("settle failed"))
        assert.deepStrictEqual(settle.map(([, jobId, queue]) => [jobId, queue]), [[job.id, "default"]])
      }).pipe(Effect.scoped, Effect.provide(Layer.merge(store, Logger.layer([collector]))))
    }))
})

describe("a durable job whose handler is an Effect.sync", () => {
  it.effect("runs without a fiber of its own (its payload decoded before it starts); a throw is its defect, a bad payload dead with TaskCodecError, and an Effect handler still logs with the job's id", () =>
    Effect.gen(function*() {
      let current: unknown = "not run"
      const seen: Array<unknown> = []
      const Logged = Task.make("Logged", { payload: Schema.Number, success: Schema.Number })
      const Thrower = Task.make("Thrower", { payload: Schema.Number, success: Schema.Number })
      const result = yield* Effect.gen(function*() {
        yield* JobQueue.consume({
          handlers: [
            Task.handle(Double, (n) =>
              Effect.sync(() => {
                current = Fiber.getCurrent()
                return n * 2
              })),
            Task.handle(Thrower, () =>
              Effect.sync(() => {
                throw new Error("thrown")
              })),
            Task.handle(Logged, (n) => Effect.map(References.CurrentLogAnnotations, (annotations) => (seen.push(annotations.jobId), n)))
          ],
          concurrency: 2,
          retry: Schedule.recurs(0)
        })
        const doubled = yield* JobQueue.enqueue(Double, 21)
        const thrown = yield* JobQueue.enqueue(Thrower, 1)
        const logged = yield* JobQueue.enqueue(Logged, 5)
        // a payload its Schema refuses (stored as it is, past the producer's encoding)
        const store = yield* JobStore.JobStore
        yield* store.enqueue(newJob("default", { id: "bad-payload", task: "Double", payload: `"not a number"` }))
        return {
          doubled: yield* doubled.await,
          thrown: yield* Effect.exit(thrown.await),
          logged: [yield* logged.await, logged.id],
          bad: yield* Effect.flip(JobQueue.await(Double, "bad-payload"))
        }
      }).pipe(Effect.scoped, Effect.provide(JobStore.memory()))
      assert.strictEqual(result.doubled, 42)
      assert.strictEqual(current, undefined)
      assert.isTrue(Exit.isFailure(result.thrown) && Cause.hasDies(result.thrown.cause))
      assert.deepStrictEqual(seen, [result.logged[1]])
      assert.instanceOf(result.bad, TaskCodecError)
      assert.strictEqual((result.bad as TaskCodecError).part, "payload")
    }))
})

describe("a stopping consumer's settles", () => {
  it.effect("a settle that fails while its consumer stops is tried again 200 ms apart (not lease / 10), so a passing failure does not leave a finished job to the reaper, and the close ends within the grace", () =>
    Effect.gen(function*() {
      const inner = yield* JobStore.JobStore
      let failures = 2
      const settles: Array<number> = []
      const store: Store = {
        ...inner,
        settle: (token, settlement) =>
          Effect.flatMap(Clock.currentTimeMillis, (now) => {
            settles.push(now)
            return failures-- > 0
              ? Effect.fail(new StoreError({ operation: "settle", reason: "connection reset" }))
              : inner.settle(token, settlement)
          })
      }
      const release = yield* Deferred.make<void>()
      const consumers = yield* Scope.make()
      yield* JobQueue.consume({
        handlers: [Task.handle(Double, (n) => Effect.as(Deferred.await(release), n * 2))],
        concurrency: 1,
        poll: 10,
        lease: 30_000
      }).pipe(Effect.provideService(JobStore.JobStore, store), Scope.provide(consumers))
      const job = yield* JobQueue.enqueue(Double, 21)
      while ((yield* JobQueue.status(job.id)).state !== "running") yield* TestClock.adjust(10)
      const start = yield* Clock.currentTimeMillis
      const closing = yield* Effect.forkChild(Scope.close(consumers, Exit.void))
      yield* TestClock.adjust(10)
      yield* Deferred.succeed(release, undefined)
      for (let t = 0; t < 2_000 && closing.pollUnsafe() === undefined; t += 50) yield* TestClock.adjust(50)
      assert.isDefined(closing.pollUnsafe(), "the close ends within the grace")
      assert.deepStrictEqual(settles.map((at) => at - start), [10, 210, 410])
      assert.strictEqual((yield* JobQueue.status(job.id)).state, "succeeded")
      assert.strictEqual(yield* job.await, 42)
    }).pipe(Effect.provide(JobStore.memory())))
})
