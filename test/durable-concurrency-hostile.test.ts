/**
 * Hostile tests of a queue's fleet-wide concurrency cap (`JobQueue.setConcurrency`) on every store
 * that has several instances (SQLite, Postgres, Redis: each instance another process as far as the
 * store can tell), live: a cap set while jobs of the queue already run, a cap raised or lifted under
 * held-back consumers, the consumers' `rateLimited` while a capped queue has nothing to hold back.
 * Consumers poll once an hour: only the store's own wake-ups (file watch, NOTIFY, marker) may start
 * a job, and each wait is for an event under an overall deadline.
 */
import { assert, describe, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Context, Deferred, Effect, Layer } from "effect"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import type { Claim, Settlement, Store } from "../src/internal/store/model.ts"
import * as PgJobStore from "../src/PgJobStore.ts"
import * as RedisJobStore from "../src/RedisJobStore.ts"
import * as Task from "../src/Task.ts"
import { afterAll } from "vitest"
import { Echo } from "./durable/conformance.ts"
import * as Pg from "./durable/postgres.ts"
import * as Rd from "./durable/redis.ts"
import { waitFor } from "./helpers.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wp-concurrency-hostile-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))
let files = 0

const HOUR = 3_600_000
const EXIT = JSON.stringify({ _tag: "Success", value: 0 })

/** Each store that several instances share: a place (file, schema, prefix), and an instance of it per call. */
const shared: Array<[string, () => () => Layer.Layer<JobStore.JobStore, any>]> = [
  ["SQLite", () => {
    const filename = path.join(dir, `jobs-${++files}.db`)
    return () => JobStore.sqlite({ filename })
  }]
]
if (Pg.enabled) {
  shared.push(["Postgres", () => {
    const schema = Pg.freshSchema()
    return () => PgJobStore.layer({ url: Pg.url!, schema, maxConnections: 2 })
  }])
}
if (Rd.enabled) {
  shared.push(["Redis", () => {
    const prefix = Rd.freshPrefix()
    return () => RedisJobStore.layer({ url: Rd.url!, prefix })
  }])
}

/**
 * A store instance and a consumer polling once an hour on another, whose jobs end at once; `held`
 * waits until the consumer has claimed and found nothing (held back) and waits in its store.
 */
const setup = (instanceLayer: () => Layer.Layer<JobStore.JobStore, any>) =>
  Effect.gen(function*() {
    const instance = Effect.map(Layer.build(instanceLayer()), (context) => Context.get(context, JobStore.JobStore))
    const admin = yield* instance
    const elsewhere = <A, E>(effect: Effect.Effect<A, E, JobStore.JobStore>) => Effect.provideService(effect, JobStore.JobStore, admin)
    const consumerStore = yield* instance
    let empty = 0
    let waiting = 0
    const telling: Store = {
      ...consumerStore,
      wait: (...args) =>
        Effect.andThen(Effect.sync(() => waiting++), consumerStore.wait(...args)).pipe(Effect.ensuring(Effect.sync(() => waiting--))),
      claim: (request) => Effect.tap(consumerStore.claim(request), (claimed) => Effect.sync(() => claimed.claims.length === 0 && empty++))
    }
    const consume = (queue: string, concurrency = 4) =>
      Effect.provideService(
        JobQueue.consume({ queues: [queue], handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))], concurrency, poll: HOUR }),
        JobStore.JobStore,
        telling
      )
    // a few empty claims: the first (the Postgres LISTEN's own wake-up may cost one more) and the
    // wait after them, from then on only a wake-up the store hears claims again
    const held = (atLeast: number) => waitFor(Effect.sync(() => empty >= atLeast && waiting > 0), "the consumer is held back and waits")
    return { admin, elsewhere, consume, held, emptyClaims: () => empty }
  })

const inTime = <A, E, R>(effect: Effect.Effect<A, E, R>, what: string) =>
  Effect.timeout(effect, "30 seconds").pipe(Effect.catchTag("TimeoutError", () => Effect.die(new Error(`${what}: not within 30 s`))))

describe.each(shared)("a queue's concurrency cap across store instances (%s, live)", (_name, place) => {
  // the slot of a job claimed before its queue had a cap is freed all the same: Postgres NOTIFYed
  // only the settles of jobs its own instance had claimed under a cap (its `capTokens`), so a cap set
  // at 3 a.m. over running jobs left every consumer it held back in other processes to its poll
  for (const [way, settlement, cancelFirst] of [
    ["a final settle", { _tag: "Final", state: "succeeded", exit: EXIT }, false],
    ["a retry", { _tag: "Retry", delay: HOUR, exit: EXIT }, false],
    ["a release", { _tag: "Release" }, false],
    ["a snooze", { _tag: "Release", delay: HOUR }, false],
    // asked to stop while it ran, it ends cancelled at its retry's settle: no job to claim, but a slot
    ["a cancelled retry", { _tag: "Retry", delay: HOUR, exit: EXIT }, true]
  ] as const satisfies ReadonlyArray<readonly [string, Settlement, boolean]>) {
    it.live(`${way} of a job claimed before the cap was set frees its slot: the next job starts at once on a held-back consumer of another instance`, () =>
      Effect.gen(function*() {
        const { admin, consume, elsewhere, held } = yield* setup(place())
        const queue = "late-cap"
        const [first, second] = yield* elsewhere(Effect.forEach([0, 1], (n) => JobQueue.enqueue(Echo, { n }, { queue })))
        // running elsewhere, claimed while the queue had no cap
        const [claim] = (yield* admin.claim({ queues: [queue], tasks: ["Echo"], limit: 1, lease: HOUR })).claims
        assert.strictEqual(claim?.job.id, first!.id)
        yield* elsewhere(JobQueue.setConcurrency(queue, 1))
        yield* consume(queue)
        yield* held(2)
        assert.strictEqual((yield* elsewhere(JobQueue.status(second!.id))).state, "queued", "held back by the cap")
        if (cancelFirst) assert.strictEqual(yield* elsewhere(JobQueue.cancel(first!.id)), "requested")
        assert.strictEqual(yield* admin.settle((claim as Claim).token, settlement), cancelFirst ? "cancelled" : true)
        assert.strictEqual(yield* inTime(elsewhere(JobQueue.await(Echo, second!.id)), `${way} elsewhere started the next job`), 1)
        if (cancelFirst) assert.strictEqual((yield* elsewhere(JobQueue.status(first!.id))).state, "cancelled")
      }).pipe(Effect.scoped), { timeout: 60_000 })
  }

  it.live("a cap lowered below the jobs running elsewhere: each settle wakes the held-back consumer, which starts nothing until fewer than the cap run", () =>
    Effect.gen(function*() {
      const { admin, consume, elsewhere, emptyClaims, held } = yield* setup(place())
      const queue = "lowered"
      yield* elsewhere(JobQueue.setConcurrency(queue, 3))
      const jobs = yield* elsewhere(Effect.forEach([0, 1, 2, 3], (n) => JobQueue.enqueue(Echo, { n }, { queue })))
      const claims = (yield* admin.claim({ queues: [queue], tasks: ["Echo"], limit: 4, lease: HOUR })).claims
      assert.strictEqual(claims.length, 3)
      yield* elsewhere(JobQueue.setConcurrency(queue, 1))
      yield* consume(queue)
      yield* held(2)
      for (const claim of claims.slice(0, 2)) {
        const before = emptyClaims()
        assert.isTrue(yield* admin.settle(claim.token, { _tag: "Final", state: "succeeded", exit: EXIT }))
        // woken by the freed slot, it claims and finds the queue still at its lowered cap
        yield* held(before + 1)
        assert.strictEqual((yield* elsewhere(JobQueue.status(jobs[3]!.id))).state, "queued", "still at or over the cap")
      }
      assert.isTrue(yield* admin.settle(claims[2]!.token, { _tag: "Final", state: "succeeded", exit: EXIT }))
      assert.strictEqual(yield* inTime(elsewhere(JobQueue.await(Echo, jobs[3]!.id)), "under the cap: the next job started"), 3)
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("a cap raised, then lifted, through another instance starts the held-back jobs at once", () =>
    Effect.gen(function*() {
      const { admin, consume, elsewhere, held } = yield* setup(place())
      const queue = "raised"
      yield* elsewhere(JobQueue.setConcurrency(queue, 1))
      const jobs = yield* elsewhere(Effect.forEach([0, 1, 2], (n) => JobQueue.enqueue(Echo, { n }, { queue })))
      const [claim] = (yield* admin.claim({ queues: [queue], tasks: ["Echo"], limit: 1, lease: HOUR })).claims
      assert.strictEqual(claim?.job.id, jobs[0]!.id)
      yield* consume(queue, 1)
      yield* held(1)
      yield* elsewhere(JobQueue.setConcurrency(queue, 2))
      assert.strictEqual(yield* inTime(elsewhere(JobQueue.await(Echo, jobs[1]!.id)), "a raised cap started the next job"), 1)
      assert.strictEqual(yield* inTime(elsewhere(JobQueue.await(Echo, jobs[2]!.id)), "the slot job 1 freed started job 2"), 2)
      yield* elsewhere(JobQueue.setConcurrency(queue, 1))
      const more = yield* elsewhere(Effect.forEach([3, 4], (n) => JobQueue.enqueue(Echo, { n }, { queue })))
      const before = yield* elsewhere(JobQueue.status(more[0]!.id))
      assert.strictEqual(before.state, "queued", "job 0 still holds the one slot")
      yield* elsewhere(JobQueue.setConcurrency(queue, undefined))
      assert.deepStrictEqual(
        yield* inTime(elsewhere(Effect.forEach(more, (job) => JobQueue.await(Echo, job.id))), "a lifted cap started the rest"),
        [3, 4]
      )
    }).pipe(Effect.scoped), { timeout: 60_000 })
})

const stores: Array<[string, () => Layer.Layer<JobStore.JobStore, any>]> = [
  ["memory", () => JobStore.memory()],
  ...shared.map(([name, place]): [string, () => Layer.Layer<JobStore.JobStore, any>] => [name, () => place()()])
]

describe.each(stores)("a capped queue's held-back consumer, as its stats show it (%s, live)", (_name, layer) => {
  // SQLite and Postgres said `capped` whenever a capped queue was at its cap, whether or not a job
  // waited for a slot (memory and Redis only when one did): their consumer then counted its free
  // slots as held back by a limit (`rateLimited`) while the queue had nothing to run
  it.live("a queue at its cap with nothing ready holds no slot back: rateLimited 0; a job waiting for the slot: the free slots; that job cancelled: 0 again", () =>
    Effect.gen(function*() {
      const store = yield* JobStore.JobStore
      let empty = 0
      let waiting = 0
      const telling: Store = {
        ...store,
        wait: (...args) => Effect.andThen(Effect.sync(() => waiting++), store.wait(...args)).pipe(Effect.ensuring(Effect.sync(() => waiting--))),
        claim: (request) =>
          Effect.tap(store.claim(request), (claimed) =>
            Effect.sync(() => {
              if (claimed.claims.length === 0) empty++
            }))
      }
      const gate = yield* Deferred.make<void>()
      const started = yield* Deferred.make<void>()
      yield* JobQueue.setConcurrency("capped", 1)
      const first = yield* JobQueue.enqueue(Echo, { n: 0 }, { queue: "capped" })
      const consumer = yield* Effect.provideService(
        JobQueue.consume({
          queues: ["capped"],
          handlers: [Task.handle(Echo, ({ n }) => Effect.andThen(Deferred.succeed(started, undefined), Effect.as(Deferred.await(gate), n)))],
          concurrency: 4,
          poll: HOUR
        }),
        JobStore.JobStore,
        telling
      )
      yield* inTime(Deferred.await(started), "job 0 started")
      // its first claim took job 0: an empty one came after it
      yield* waitFor(Effect.sync(() => empty > 0 && waiting > 0), "the consumer claimed again, found nothing and waits")
      assert.strictEqual((yield* consumer.stats).rateLimited, 0, "nothing waits for the slot: no slot is held back")
      const second = yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "capped" })
      yield* waitFor(Effect.map(consumer.stats, (stats) => stats.rateLimited === 3), "job 1 waits for the slot: the 3 free slots are held back")
      assert.strictEqual(yield* JobQueue.cancel(second.id), "cancelled")
      yield* waitFor(Effect.map(consumer.stats, (stats) => stats.rateLimited === 0), "job 1 cancelled (its claim woken by the change): nothing held back")
      yield* Deferred.succeed(gate, undefined)
      assert.strictEqual(yield* inTime(JobQueue.await(Echo, first.id), "job 0 ended"), 0)
    }).pipe(Effect.scoped, Effect.provide(layer())), { timeout: 60_000 })
})

describe.each(stores)("a fair consumer of a capped and an uncapped queue (%s, live)", (_name, layer) => {
  it.live("the capped queue's jobs wait for its one slot while the uncapped queue's run through the consumer's other slots", () =>
    Effect.gen(function*() {
      yield* JobQueue.setConcurrency("capped", 1)
      const gate = yield* Deferred.make<void>()
      let cappedRunning = 0
      let cappedMost = 0
      const capped = yield* Effect.forEach([0, 1, 2], (n) => JobQueue.enqueue(Echo, { n }, { queue: "capped" }))
      const free = yield* JobQueue.enqueueAll(Echo, Array.from({ length: 8 }, (_, n) => ({ payload: { n: 100 + n } })), { queue: "free" })
      yield* JobQueue.consume({
        queues: ["capped", "free"],
        dispatch: "fair",
        concurrency: 3,
        poll: HOUR,
        handlers: [Task.handle(Echo, ({ n }) =>
          n >= 100 ? Effect.succeed(n) : Effect.acquireUseRelease(
            Effect.sync(() => {
              cappedMost = Math.max(cappedMost, ++cappedRunning)
            }),
            () => Effect.as(Deferred.await(gate), n),
            () => Effect.sync(() => cappedRunning--)
          ))]
      })
      // every uncapped job done while the capped queue's first job holds its one slot
      assert.deepStrictEqual(
        yield* inTime(Effect.forEach(free, (job) => JobQueue.await(Echo, job.id)), "the uncapped queue's jobs ran"),
        free.map((_, n) => 100 + n)
      )
      assert.deepStrictEqual((yield* JobQueue.stats("capped")).concurrency, { limit: 1, running: 1 })
      yield* Deferred.succeed(gate, undefined)
      assert.deepStrictEqual(yield* inTime(Effect.forEach(capped, (job) => JobQueue.await(Echo, job.id)), "the capped queue's jobs ran"), [0, 1, 2])
      assert.strictEqual(cappedMost, 1)
    }).pipe(Effect.scoped, Effect.provide(layer())), { timeout: 60_000 })
})
