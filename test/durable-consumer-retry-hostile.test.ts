/**
 * Hostile tests of a consumer's retry after a failed claim (`claimBackoff`, `CLAIM_RETRY_FLOOR`):
 * the backoff is the store's wait, ended by a change the store hears after a 100 ms floor. On the
 * memory store under the TestClock, with a store whose claims fail on demand.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Context, Deferred, Effect, Exit, Fiber, Layer, Logger, Schedule, Schema, Scope } from "effect"
import { TestClock } from "effect/testing"
import { StoreError } from "../src/DurableError.ts"
import type { Store } from "../src/internal/store/model.ts"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as Task from "../src/Task.ts"
import * as RedisStore from "../src/internal/store/redis.ts"
import * as Rd from "./durable/redis.ts"
import * as RedisServer from "./durable/redisserver.ts"
import { closeWithin, settle } from "./helpers.ts"

const Double = Task.make("Double", { payload: Schema.Number, success: Schema.Number })
const handlers = [Task.handle(Double, (n: number) => Effect.succeed(n * 2))]

/**
 * The memory store with claims that fail while `failing` > 0 (each failure counts it down, unless
 * `forever`), after `takes` ms (a claim in flight when the server stopped); `claimedAt`: each claim's time.
 */
const flaky = () => {
  const state = { failing: 0, forever: false, takes: 0, claimedAt: [] as Array<number> }
  const layer = Layer.effect(
    JobStore.JobStore,
    Effect.map(JobStore.JobStore, (inner): Store => ({
      ...inner,
      claim: (request) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          state.claimedAt.push(now)
          if (state.failing === 0) return inner.claim(request)
          if (!state.forever) state.failing--
          const failure = Effect.fail(new StoreError({ operation: "claim", reason: "Connection closed" }))
          return state.takes > 0 ? Effect.andThen(Effect.sleep(state.takes), failure) : failure
        })
    }))
  ).pipe(Layer.provide(JobStore.memory()))
  return { state, layer }
}

const advance = (millis: number, step = 10) =>
  Effect.gen(function*() {
    for (let t = 0; t < millis; t += step) yield* TestClock.adjust(step)
  })

const collect = () => {
  const logged: Array<string> = []
  const collector = Logger.make((options) => {
    logged.push(String(Array.isArray(options.message) ? options.message[0] : options.message))
  })
  return { logged, layer: Logger.layer([collector]) }
}

/** Handlers of Double whose job 0 waits for `release` and job 2 never ends; `started`: how many jobs started. */
const holding = Effect.gen(function*() {
  const release = yield* Deferred.make<void>()
  let count = 0
  const handlers = [Task.handle(Double, (n: number) =>
    Effect.gen(function*() {
      count++
      if (n === 0) yield* Deferred.await(release)
      if (n === 2) yield* Effect.never
      return n * 2
    }))]
  return { handlers, release, started: () => count }
})

describe("a consumer's retry after a failed claim", () => {
  it.effect("a change the store hears while the failing claim is in flight ends the backoff after the floor, as one during the backoff does", () =>
    Effect.gen(function*() {
      const { layer, state } = flaky()
      const log = collect()
      yield* Effect.gen(function*() {
        yield* JobQueue.consume({ handlers, concurrency: 1, poll: "1 hour" })
        yield* settle
        // the first claim found nothing: the consumer is idle. Now the server stops: the next claim
        // hangs 500 ms, then fails; a job enqueued 250 ms into it (its NOTIFY, or the listener
        // back) is a change the store heard before the claim's failure was known
        state.failing = 1
        state.takes = 500
        const from = state.claimedAt.length
        const first = yield* JobQueue.enqueue(Double, 1)
        yield* advance(250)
        const second = yield* JobQueue.enqueue(Double, 2)
        yield* advance(1500)
        const at = state.claimedAt.slice(from, from + 2).map((t) => t - state.claimedAt[from]!)
        // retried 100 ms after the failure (600), not a whole backoff (1 s) after it (1500)
        assert.deepStrictEqual(at, [0, 600])
        // its warning says so: not "next try in 1000 ms", 900 ms late
        const failed = log.logged.filter((line) => line.startsWith("effect-workpool: claiming durable jobs failed"))
        assert.deepStrictEqual(failed.map((line) => line.slice(line.indexOf("("))), [
          "(1 time in a row; next try within 1000 ms, sooner if the store hears a change)"
        ])
        assert.deepStrictEqual([yield* first.await, yield* second.await], [2, 4])
      }).pipe(Effect.scoped, Effect.provide(Layer.merge(layer, log.layer)))
    }))

  it.effect("claims that fail at once while jobs keep coming (one every 10 ms): at most ~10 claims a second, warnings at 1, 2, 4, 8, ... failures; it recovers", () =>
    Effect.gen(function*() {
      const { layer, state } = flaky()
      const log = collect()
      yield* Effect.gen(function*() {
        state.failing = 1
        state.forever = true
        yield* JobQueue.consume({ handlers, concurrency: 2, poll: 5 })
        const jobs = []
        for (let t = 0; t < 10_000; t += 10) {
          jobs.push(yield* JobQueue.enqueue(Double, t))
          yield* TestClock.adjust(10)
        }
        const claims = state.claimedAt.length
        assert.isAtMost(claims, 10 * 10 + 5)
        // the backoff still grows without changes: a change only shortens it to the floor
        assert.isAtLeast(claims, 80)
        const failed = log.logged.filter((line) => line.startsWith("effect-workpool: claiming durable jobs failed"))
        assert.strictEqual(failed.length, Math.floor(Math.log2(claims)) + 1)
        state.forever = false
        state.failing = 0
        yield* advance(6000, 50)
        assert.isTrue(log.logged.some((line) => /claiming durable jobs works again, after \d+ failures/.test(line)))
        assert.strictEqual((yield* jobs[jobs.length - 1]!.await), 9990 * 2)
      }).pipe(Effect.scoped, Effect.provide(Layer.merge(layer, log.layer)))
    }))

  it.effect("poll 1 ms or 50 ms with claims that always fail: no busy loop (a few claims a second), each a sleep, not a store wait", () =>
    Effect.gen(function*() {
      for (const poll of [1, 50]) {
        const { layer, state } = flaky()
        state.failing = 1
        state.forever = true
        yield* Effect.gen(function*() {
          yield* JobQueue.consume({ handlers, concurrency: 1, poll })
          yield* advance(20_000, 1)
        }).pipe(Effect.scoped, Effect.provide(layer), Effect.provide(collect().layer))
        // 1+2+4+...+4096 ms (or 50 doubling) to 5 s, then every 5 s: under 20 claims in 20 s
        assert.isAtMost(state.claimedAt.length, 20, `poll ${poll}`)
        assert.isAtLeast(state.claimedAt.length, 5, `poll ${poll}`)
      }
    }))

  it.effect("the failure count starts over after a claim that works: the next failure waits min(poll, 1 s) again, not 5 s", () =>
    Effect.gen(function*() {
      const { layer, state } = flaky()
      yield* Effect.gen(function*() {
        state.failing = 6
        yield* JobQueue.consume({ handlers, concurrency: 1, poll: 2000 })
        // 0, 1000, 3000, 7000, 12000, 17000, then the claim that works at 22000
        yield* advance(22_100, 50)
        assert.deepStrictEqual(state.claimedAt.slice(0, 7), [0, 1000, 3000, 7000, 12000, 17000, 22000])
        // idle now (a 2 s poll): the claims at 24000, 26000 work; the one at 28000 fails
        yield* advance(5_000, 50)
        const from = state.claimedAt.length
        state.failing = 2
        yield* advance(5_000, 50)
        const at = state.claimedAt.slice(from, from + 3).map((t) => t - state.claimedAt[from]!)
        assert.deepStrictEqual(at, [0, 1000, 3000])
      }).pipe(Effect.scoped, Effect.provide(layer), Effect.provide(collect().layer))
    }))

  it.effect("shutdown during a 5 s backoff ends at once (the scope's close does not wait out the backoff)", () =>
    Effect.gen(function*() {
      const { layer, state } = flaky()
      const consumerScope = yield* Scope.make()
      yield* Effect.gen(function*() {
        state.failing = 1
        state.forever = true
        const context = yield* Layer.build(layer)
        yield* JobQueue.consume({ handlers, concurrency: 1, poll: 1000 }).pipe(
          Scope.provide(consumerScope),
          Effect.provide(context)
        )
        yield* advance(8000, 50)
        // the 4th failure at 7000: now in its 5 s backoff, past its floor (in the store's wait)
        yield* TestClock.adjust(150)
        const claims = state.claimedAt.length
        const closing = yield* Effect.forkChild(Scope.close(consumerScope, Exit.void))
        yield* settle
        // no time passed: the close ended anyway
        assert.isDefined(closing.pollUnsafe())
        yield* advance(10_000, 100)
        assert.strictEqual(state.claimedAt.length, claims)
      }).pipe(Effect.scoped, Effect.provide(collect().layer))
    }))

  it.effect("the store closed during the backoff (in its floor or its wait): the consumer stops as for a closed store at once, not a backoff later", () =>
    Effect.gen(function*() {
      for (const into of [50, 500]) {
        const { layer, state } = flaky()
        const log = collect()
        yield* Effect.gen(function*() {
          state.failing = 1
          state.forever = true
          const storeScope = yield* Scope.make()
          const context = yield* Layer.buildWithScope(layer, storeScope)
          const consumer = yield* JobQueue.consume({ handlers, concurrency: 1, poll: 1000 }).pipe(Effect.provide(context))
          // failures at 0, 1000, 3000, 7000: the backoff from 7000 is 5 s
          yield* advance(7000 + into, 50)
          const claims = state.claimedAt.length
          yield* Scope.close(storeScope, Exit.void)
          // at most the floor's rest (a sleep), not the backoff's 5 s
          yield* advance(100, 10)
          const ended = yield* Effect.forkChild(consumer.awaitTermination)
          yield* settle
          assert.isDefined(ended.pollUnsafe(), `${into} ms into the backoff`)
          assert.isAtMost(state.claimedAt.length, claims + 1)
          assert.isTrue(log.logged.some((line) => line.includes("store closed before the consumer")))
        }).pipe(Effect.scoped, Effect.provide(log.layer))
      }
    }))

  it.effect("paused during the backoff: a change that ends it claims nothing (the paused consumer waits for its resume)", () =>
    Effect.gen(function*() {
      const { layer, state } = flaky()
      yield* Effect.gen(function*() {
        state.failing = 3
        const consumer = yield* JobQueue.consume({ handlers, concurrency: 1, poll: 1000 })
        // failures at 0, 1000, 3000: the third's backoff (4 s) runs to 7000
        yield* advance(3500, 50)
        const claims = state.claimedAt.length
        yield* consumer.pause
        const job = yield* JobQueue.enqueue(Double, 5)
        yield* advance(10_000, 50)
        assert.strictEqual(state.claimedAt.length, claims)
        yield* consumer.resume
        yield* advance(100, 10)
        assert.strictEqual(yield* job.await, 10)
      }).pipe(Effect.scoped, Effect.provide(layer), Effect.provide(collect().layer))
    }))
})

describe.runIf(Rd.enabled)("a Redis consumer's retry after a failed claim, next to a working consumer in another process", () => {
  it.live("its backoff does not take the working consumer's wake-ups (the queue's markers): each job enqueued starts at once, not at the other's next orphan look (5 s)", () => {
    const prefix = Rd.freshPrefix()
    return Effect.gen(function*() {
      // three processes on one Redis: A's claims come to fail (a claim connection of its own
      // broken, say), B's work; C enqueues. Both consumers poll once an hour: a job starts by its wake-up only
      const a = Context.get(yield* Layer.build(Rd.testLayer(prefix)), JobStore.JobStore)
      const b = Context.get(yield* Layer.build(Rd.testLayer(prefix)), JobStore.JobStore)
      const c = Context.get(yield* Layer.build(Rd.testLayer(prefix)), JobStore.JobStore)
      let failed = 0
      let failing = false
      const broken: Store = {
        ...a,
        claim: (request) =>
          Effect.suspend(() => {
            if (!failing) return a.claim(request)
            failed++
            return Effect.fail(new StoreError({ operation: "claim", reason: "Connection closed" }))
          })
      }
      const started: Array<number> = []
      const handler = [Task.handle(Double, (n: number) => Effect.sync(() => void started.push(Date.now())).pipe(Effect.as(n * 2)))]
      yield* JobQueue.consume({ handlers: handler, concurrency: 1, poll: "1 hour" }).pipe(Effect.provideService(JobStore.JobStore, broken))
      yield* JobQueue.consume({ handlers: handler, concurrency: 1, poll: "1 hour" }).pipe(Effect.provideService(JobStore.JobStore, b))
      // both idle (their claims found nothing), each blocked in BZPOPMIN; then A's claims fail
      yield* Effect.promise(() => Rd.blocked(prefix, 2))
      failing = true
      const run = (i: number) =>
        Effect.gen(function*() {
          const from = Date.now()
          const job = yield* JobQueue.enqueue(Double, i).pipe(Effect.provideService(JobStore.JobStore, c))
          assert.strictEqual(yield* job.await.pipe(Effect.provideService(JobStore.JobStore, c)), i * 2)
          return started.at(-1)! - from
        })
      // until A has taken a wake-up as an idle consumer and failed to claim it (that job waits
      // for B's orphan look, as it did before): A is in its backoff from then on
      for (let i = 0; failed === 0; i++) {
        assert.isBelow(i, 20)
        yield* run(100 + i)
      }
      yield* Effect.sleep(1500)
      const waits: Array<number> = []
      for (let i = 0; i < 4; i++) {
        waits.push(yield* run(i))
        // A back in its backoff's wait (its floor over), and B's watch blocked again
        yield* Effect.sleep(300)
      }
      assert.isTrue(waits.every((wait) => wait < 2000), `waits ${waits.join(", ")} ms`)
    }).pipe(Effect.scoped, Effect.provide(collect().layer))
  }, 60_000)
})

describe.runIf(Rd.enabled && RedisServer.binary() !== undefined)("a Redis consumer's retry while its server is down", () => {
  it.live("four consumers of four queues whose jobs end while their server is down (6 s): their claims back off (a few each); once it is back they claim within 4 s (not at the end of a 5 s backoff)", () =>
    Effect.gen(function*() {
      const binary = RedisServer.binary()!
      const server = yield* Effect.acquireRelease(Effect.promise(() => RedisServer.startServer(binary)), (s) => Effect.promise(s.destroy))
      const cfg = yield* RedisStore.options({ url: server.url, prefix: Rd.freshPrefix() })
      const inner = yield* RedisStore.open({ ...cfg, clock: "effect" })
      const claims = new Map<string, number>()
      const store: Store = {
        ...inner,
        claim: (request) =>
          Effect.suspend(() => {
            claims.set(request.queues[0]!, (claims.get(request.queues[0]!) ?? 0) + 1)
            return inner.claim(request)
          })
      }
      const { handlers: held, release, started } = yield* holding
      const queues = ["q1", "q2", "q3", "q4"]
      const provide = Effect.provideService(JobStore.JobStore, store)
      const consumers = yield* Scope.make()
      for (const queue of queues) {
        yield* JobQueue.consume({ handlers: held, concurrency: 1, poll: "1 hour", queues: [queue] }).pipe(provide, Scope.provide(consumers))
      }
      // each consumer has been idle once (its queue's watch is open), then runs a job
      yield* Effect.promise(() => Rd.blocked(cfg.prefix, 4, undefined, [server.url]))
      for (const queue of queues) yield* JobQueue.enqueue(Double, 0, { queue }).pipe(provide)
      while (started() < 4) yield* Effect.sleep(20)
      yield* Effect.promise(server.kill)
      // the jobs end: their settles fail, and each consumer's claim for its free slot
      const before = new Map(claims)
      yield* Deferred.succeed(release, undefined)
      yield* Effect.sleep(6000)
      const during = queues.map((queue) => (claims.get(queue) ?? 0) - (before.get(queue) ?? 0))
      // 0, 1, 3 (then 7) s: 3 each; the watches' reconnects (one a second each) woke every
      // consumer in its backoff, ~10 claims each
      assert.isTrue(during.every((n) => n >= 1 && n <= 4), `claims while down: ${during.join(", ")}`)
      yield* Effect.promise(server.start)
      const back = Date.now()
      const jobs = []
      for (const queue of queues) {
        jobs.push(yield* JobQueue.enqueue(Double, 1, { queue }).pipe(provide, Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 50 })))
      }
      for (const job of jobs) assert.strictEqual(yield* job.await.pipe(provide), 2)
      // the watches' reconnect (within their 1 s pause) ended the backoffs (4 s by then; with the
      // backoff a plain sleep this took 5.97 s). Measured before the close, which a busy machine
      // slows: with the close inside, 3 s was missed by 6-55 ms under load
      assert.isBelow(Date.now() - back, 4000)
      // the consumers before their store and server (closed with the test's scope, they hung it: see
      // "closing a scope that holds Redis consumers and their store" below)
      yield* Scope.close(consumers, Exit.void)
    }).pipe(Effect.scoped, Effect.provide(collect().layer)), 60_000)
})

describe.runIf(Rd.enabled && RedisServer.binary() !== undefined)("closing a scope that holds Redis consumers and their store, the consumers not closed first", () => {
  for (const down of [false, true]) {
    it.live(`its server ${down ? "down (killed) at the close: the close ends within 4.5 s (not after the settles' retries a lease / 10 apart: 15 s), its in-flight jobs left for the reaper" : "up at the close: the close ends at once"}, after jobs whose settles failed while it was down`, () =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const binary = RedisServer.binary()!
        const server = yield* Effect.acquireRelease(Effect.promise(() => RedisServer.startServer(binary)), (s) => Effect.promise(s.destroy)).pipe(
          Scope.provide(scope)
        )
        const cfg = yield* RedisStore.options({ url: server.url, prefix: Rd.freshPrefix() })
        // the store and its consumers in one scope, as in an application that closes it once
        const store = yield* RedisStore.open({ ...cfg, clock: "effect" }).pipe(Scope.provide(scope))
        const provide = Effect.provideService(JobStore.JobStore, store)
        const { handlers: held, release, started } = yield* holding
        const queues = ["q1", "q2"]
        for (const queue of queues) {
          yield* JobQueue.consume({ handlers: held, concurrency: 1, poll: "1 hour", queues: [queue], shutdownTimeout: 200 }).pipe(
            provide,
            Scope.provide(scope)
          )
        }
        yield* Effect.promise(() => Rd.blocked(cfg.prefix, 2, undefined, [server.url]))
        for (const queue of queues) yield* JobQueue.enqueue(Double, 0, { queue }).pipe(provide)
        while (started() < 2) yield* Effect.sleep(20)
        // the jobs end while the server is down: their settles fail, and are retried (lease / 10 apart)
        yield* Effect.promise(server.kill)
        yield* Deferred.succeed(release, undefined)
        yield* Effect.sleep(1000)
        yield* Effect.promise(server.start)
        const retry = Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 50 })
        // q1 runs a job to its end once the server is back; q2's job never ends (the close interrupts it)
        const done = yield* JobQueue.enqueue(Double, 1, { queue: "q1" }).pipe(provide, retry)
        assert.strictEqual(yield* done.await.pipe(provide, retry), 2)
        yield* JobQueue.enqueue(Double, 2, { queue: "q2" }).pipe(provide, retry)
        while (started() < 4) yield* Effect.sleep(20)
        if (down) yield* Effect.promise(server.kill)
        const took = yield* closeWithin(scope, "20 seconds")
        // the drain's 200 ms and the settles' tries 200 ms apart within their 2 s grace, not 3 s apart
        assert.isBelow(took, down ? 4500 : 1500)
      }).pipe(Effect.provide(collect().layer)), 60_000)
  }

  it.live("its server frozen (SIGSTOP) at the close, a claim and a settle in flight that never get a reply: the close ends within 8 s (2 s for the claim, the drain, 2 s for the settles, 1 s for the client's close), not for ever", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const server = yield* Effect.acquireRelease(Effect.promise(() => RedisServer.startServer(RedisServer.binary()!)), (s) => Effect.promise(s.destroy))
      const pid = yield* Effect.promise(() => Rd.admin((client) => client.info("server"), server.url)).pipe(
        Effect.map((info) => Number(/process_id:(\d+)/.exec(info)![1]))
      )
      // thawed before the server is destroyed (a stopped process takes SIGKILL, but not its port's clients)
      yield* Effect.addFinalizer(() => Effect.sync(() => process.kill(pid, "SIGCONT")))
      const cfg = yield* RedisStore.options({ url: server.url, prefix: Rd.freshPrefix() })
      const store = yield* RedisStore.open({ ...cfg, clock: "effect" }).pipe(Scope.provide(scope))
      const provide = Effect.provideService(JobStore.JobStore, store)
      const { handlers: held, release, started } = yield* holding
      yield* JobQueue.consume({ handlers: held, concurrency: 2, poll: "1 hour", shutdownTimeout: 200 }).pipe(provide, Scope.provide(scope))
      yield* JobQueue.enqueue(Double, 0).pipe(provide)
      yield* JobQueue.enqueue(Double, 2).pipe(provide)
      while (started() < 2) yield* Effect.sleep(20)
      process.kill(pid, "SIGSTOP")
      // job 0 ends: its settle, and the claim for its slot, get no reply
      yield* Deferred.succeed(release, undefined)
      yield* Effect.sleep(300)
      assert.isBelow(yield* closeWithin(scope, "30 seconds"), 8000)
    }).pipe(Effect.scoped, Effect.provide(collect().layer)), 60_000)
})

/** A memory store whose claims take `state.takes` ms (on the test's clock) while it is above 0. */
const slowClaims = () => {
  const state = { takes: 0 }
  const layer = Layer.effect(
    JobStore.JobStore,
    Effect.map(JobStore.JobStore, (inner): Store => ({
      ...inner,
      claim: (request) => state.takes > 0 ? Effect.andThen(Effect.sleep(state.takes), inner.claim(request)) : inner.claim(request)
    }))
  ).pipe(Layer.provide(JobStore.memory()))
  return { state, layer }
}

describe("a stopping consumer whose claim in flight returns after STOP_SETTLE_GRACE", () => {
  for (const now of [false, true]) {
    it.effect(`${now ? "shutdownNow" : "shutdown"}: the stop ends at the grace; the claim's job, claimed after it, is given back (no attempt counted, not run here) and another consumer runs it once`, () =>
      Effect.gen(function*() {
        const { state, layer } = slowClaims()
        const log = collect()
        yield* Effect.gen(function*() {
          const runs: Array<string> = []
          const counting = (who: string) => [Task.handle(Double, (n: number) => Effect.sync(() => (runs.push(who), n * 2)))]
          const scope = yield* Scope.make()
          const first = yield* JobQueue.consume({ handlers: counting("first"), concurrency: 1, poll: "1 second" }).pipe(Scope.provide(scope))
          yield* settle
          state.takes = 3000
          const job = yield* JobQueue.enqueue(Double, 21)
          yield* advance(10)
          const stopping = yield* Effect.forkChild(now ? first.shutdownNow : first.shutdown)
          yield* advance(1990)
          assert.isUndefined(stopping.pollUnsafe(), "the stop waits for its claim for a while")
          yield* advance(20)
          assert.isDefined(stopping.pollUnsafe(), "the stop goes on after STOP_SETTLE_GRACE")
          assert.isTrue(log.logged.some((line) => /claim did not end within 2000 ms/.test(line)), JSON.stringify(log.logged))
          // the claim returns with the job: the pool is closed, the job is given back
          yield* advance(1000)
          const status = yield* JobQueue.status(job.id)
          assert.strictEqual(status.state, "queued", JSON.stringify(status))
          assert.strictEqual(status.attempts, 0)
          state.takes = 0
          yield* JobQueue.consume({ handlers: counting("second"), concurrency: 1, poll: "1 second" })
          yield* advance(1000)
          assert.strictEqual(yield* job.await, 42)
          assert.deepStrictEqual(runs, ["second"])
          yield* Scope.close(scope, Exit.void)
        }).pipe(Effect.scoped, Effect.provide(Layer.merge(layer, log.layer)))
      }))
  }
})

describe("a consumer's shutdown, then its shutdownNow while the shutdown waits for its claim in flight", () => {
  it.effect("both end at the claim's grace; the running job is interrupted and given back (no attempt counted), not left to the reaper", () =>
    Effect.gen(function*() {
      const { state, layer } = slowClaims()
      const log = collect()
      yield* Effect.gen(function*() {
        let started = 0
        const scope = yield* Scope.make()
        const consumer = yield* JobQueue.consume({
          handlers: [Task.handle(Double, () => Effect.andThen(Effect.sync(() => started++), Effect.never))],
          concurrency: 2,
          poll: "1 second",
          shutdownTimeout: "1 hour"
        }).pipe(Scope.provide(scope))
        const job = yield* JobQueue.enqueue(Double, 1)
        yield* advance(20)
        assert.strictEqual(started, 1)
        // the claim for the free slot now takes 3 s
        state.takes = 3000
        yield* advance(1000)
        const graceful = yield* Effect.forkChild(consumer.shutdown)
        yield* advance(500)
        const now = yield* Effect.forkChild(consumer.shutdownNow)
        yield* advance(1490)
        assert.isUndefined(graceful.pollUnsafe())
        yield* advance(30)
        assert.isDefined(now.pollUnsafe(), "shutdownNow ends with the stop")
        assert.isDefined(graceful.pollUnsafe(), "the shutdown ends at the claim's grace (its drain cut short)")
        const status = yield* JobQueue.status(job.id)
        assert.strictEqual(status.state, "queued", JSON.stringify(status))
        assert.strictEqual(status.attempts, 0)
        yield* Scope.close(scope, Exit.void)
      }).pipe(Effect.scoped, Effect.provide(Layer.merge(layer, log.layer)))
    }))
})

describe("a consumer's stop ends its claim loop (claiming = false), not only its interrupt", () => {
  /** The memory store whose claims find nothing while `hide` (its jobs invisible); `claims`: claims made, `after`: made once the stop began. */
  const hiding = () => {
    const state = { hide: true, stopping: false, claims: 0, after: 0 }
    const layer = Layer.effect(
      JobStore.JobStore,
      Effect.map(JobStore.JobStore, (inner): Store => ({
        ...inner,
        claim: (request) =>
          Effect.suspend(() => {
            state.claims++
            if (state.stopping) state.after++
            return state.hide ? Effect.succeed({ claims: [], limitedFor: 0 }) : inner.claim(request)
          })
      }))
    ).pipe(Layer.provide(JobStore.memory()))
    return { state, layer }
  }

  for (const now of [false, true]) {
    it.effect(`${now ? "shutdownNow" : "shutdown"} of an idle consumer claims nothing more and runs no job (its claim loop, woken by the stop, sees it stopping)`, () =>
      Effect.gen(function*() {
        const { state, layer } = hiding()
        yield* Effect.gen(function*() {
          let started = 0
          const scope = yield* Scope.make()
          const consumer = yield* JobQueue.consume({
            handlers: [Task.handle(Double, (n: number) => Effect.sync(() => (started++, n * 2)))],
            concurrency: 2,
            poll: "1 hour",
            shutdownTimeout: "1 hour"
          }).pipe(Scope.provide(scope))
          const job = yield* JobQueue.enqueue(Double, 1)
          yield* advance(50)
          // the consumer looked (its enqueue woke it), found nothing, and waits for a change
          assert.isAtLeast(state.claims, 1)
          assert.strictEqual(started, 0)
          state.hide = false
          state.stopping = true
          yield* now ? consumer.shutdownNow : consumer.shutdown
          const after = state.after
          assert.strictEqual(started, 0, "no job started by a stopping consumer")
          assert.strictEqual(after, 0, "no claim once the stop began")
          const status = yield* JobQueue.status(job.id)
          assert.strictEqual(status.state, "queued", JSON.stringify(status))
          yield* Scope.close(scope, Exit.void)
        }).pipe(Effect.scoped, Effect.provide(layer))
      }))
  }
})

describe("a consumer's reaps failing exactly once", () => {
  it.effect("one warning for the failure, and the recovery line says 'after 1 failure' (not '1 failures')", () =>
    Effect.gen(function*() {
      const log = collect()
      let failing = 1
      const layer = Layer.effect(
        JobStore.JobStore,
        Effect.map(JobStore.JobStore, (inner): Store => ({
          ...inner,
          reap: (backoff, policies) =>
            Effect.suspend(() =>
              failing > 0 && failing-- > 0 ? Effect.fail(new StoreError({ operation: "reap", reason: "refused" })) : inner.reap(backoff, policies)
            )
        }))
      ).pipe(Layer.provide(JobStore.memory()))
      yield* Effect.gen(function*() {
        yield* JobQueue.consume({ handlers, concurrency: 1, lease: 1_000 })
        yield* advance(2_000, 100)
        const reaps = log.logged.filter((line) => line.includes("taking back expired durable jobs"))
        assert.deepStrictEqual(reaps, [
          "effect-workpool: taking back expired durable jobs failed (1 time in a row; the jobs of a consumer that died stay held until a reap works)",
          "effect-workpool: taking back expired durable jobs works again, after 1 failure"
        ])
      }).pipe(Effect.scoped, Effect.provide(Layer.merge(layer, log.layer)))
    }))
})
