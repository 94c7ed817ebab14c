/**
 * Hostile tests of fair dispatch (`JobQueue.consume({ dispatch: "fair" })`) on every store: a
 * queue list a user wrote carelessly (a queue named twice), many queues and one slot, a claim of
 * more slots than queues. What must hold: every queue with a startable job is served within one
 * turn of the queues, and a claim fills every slot it has jobs for.
 */
import { assert, describe, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { createHash } from "node:crypto"
import { Context, Deferred, Effect, Layer, Schema } from "effect"
import * as Redis from "effect/persistence/Redis"
import * as NodeRedis from "@effect/platform-node/NodeRedis"
import { afterAll } from "vitest"
import { newJob } from "./durable/conformance.ts"
import * as Rd from "./durable/redis.ts"
import * as RedisStore from "../src/internal/store/redis.ts"
import * as Scripts from "../src/internal/store/redisScripts.ts"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as Task from "../src/Task.ts"
import { storeLayers } from "./durable/stores.ts"
import { waitFor } from "./helpers.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wp-fair-hostile-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const Tag = Task.make("Tag", { payload: Schema.String, success: Schema.String })
const Other = Task.make("Other", { payload: Schema.String, success: Schema.String })

/**
 * Enqueues `perQueue` jobs in each queue of `jobs` (each payload its queue's name), then starts a
 * consumer of `queues` with `concurrency` slots, whose jobs end at once; the queues of the jobs in
 * the order they started, once `count` have.
 */
const startOrder = (options: {
  readonly jobs: ReadonlyArray<string>
  readonly perQueue: number
  readonly queues: ReadonlyArray<string>
  readonly concurrency: number
  readonly count: number
}) =>
  Effect.gen(function*() {
    yield* JobQueue.enqueueAll(
      Tag,
      options.jobs.flatMap((queue) => Array.from({ length: options.perQueue }, () => ({ payload: queue, options: { queue } })))
    )
    const order: Array<string> = []
    yield* JobQueue.consume({
      queues: options.queues,
      concurrency: options.concurrency,
      dispatch: "fair",
      poll: 20,
      handlers: [Task.handle(Tag, (queue) => Effect.sync(() => (order.push(queue), queue)))]
    })
    yield* waitFor(Effect.sync(() => order.length), `${options.count} jobs started`, { until: (n) => n >= options.count, within: "40 seconds" })
    return order.slice(0, options.count)
  }).pipe(Effect.scoped)

let files = 0
for (const [name, layer] of storeLayers(() => path.join(dir, `store-${++files}.db`))) {
  describe(`${name}: fair dispatch, hostile`, () => {
    it.live("a queue named twice in the list does not starve the queues after it: each queue is served once per turn", () =>
      Effect.gen(function*() {
        const order = yield* startOrder({ jobs: ["a", "b", "c"], perQueue: 4, queues: ["a", "b", "a", "c"], concurrency: 1, count: 9 })
        // three turns of a, b, c: c was never served (the turn went a, b, a, b, ...)
        assert.deepStrictEqual(order, ["a", "b", "c", "a", "b", "c", "a", "b", "c"])
      }).pipe(Effect.provide(layer())), { timeout: 60_000 })

    it.live("one slot over 120 queues: the first 120 jobs started are one of each queue, in the list's order", () =>
      Effect.gen(function*() {
        const queues = Array.from({ length: 120 }, (_, i) => `t${i}`)
        const order = yield* startOrder({ jobs: queues, perQueue: 2, queues, concurrency: 1, count: 120 })
        assert.deepStrictEqual(order, queues)
      }).pipe(Effect.provide(layer())), { timeout: 60_000 })

    it.live("a claim of more slots than queues fills every slot, one job of each queue per round", () =>
      Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        yield* JobQueue.enqueueAll(Tag, [
          ...Array.from({ length: 20 }, () => ({ payload: "a", options: { queue: "a" } })),
          ...Array.from({ length: 3 }, () => ({ payload: "b", options: { queue: "b" } }))
        ])
        const claimed = yield* store.claim({ queues: ["b", "a"], tasks: ["Tag"], limit: 10, lease: 60_000, fair: true })
        const counts = { a: 0, b: 0 }
        for (const { job } of claimed.claims) counts[job.queue as "a" | "b"]++
        assert.deepStrictEqual(counts, { a: 7, b: 3 })
      }).pipe(Effect.provide(layer())), { timeout: 60_000 })

    it.live("a store's fair claim over a list naming a queue twice takes as many jobs as asked (Postgres took one job twice and came back short)", () =>
      Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        yield* JobQueue.enqueueAll(Tag, [
          ...Array.from({ length: 3 }, () => ({ payload: "a", options: { queue: "a" } })),
          { payload: "b", options: { queue: "b" } }
        ])
        for (const fair of [false, true]) {
          const claimed = yield* store.claim({ queues: ["a", "a", "b"], tasks: ["Tag"], limit: 2, lease: 60_000, fair })
          assert.strictEqual(claimed.claims.length, 2, `fair: ${fair}`)
          assert.strictEqual(new Set(claimed.claims.map((c) => c.token)).size, 2)
        }
      }).pipe(Effect.provide(layer())), { timeout: 60_000 })
    it.live("a queue paused while its turn passes is served first once resumed and its turn comes round, not after another turn", () =>
      Effect.gen(function*() {
        yield* JobQueue.enqueueAll(Tag, ["a", "b", "c"].flatMap((queue) => [1, 2, 3].map(() => ({ payload: queue, options: { queue } }))))
        yield* JobQueue.pause("b")
        const order: Array<string> = []
        yield* JobQueue.consume({
          queues: ["a", "b", "c"],
          concurrency: 1,
          dispatch: "fair",
          poll: 20,
          // b resumed by the third job, before the claim that follows it
          handlers: [Task.handle(Tag, (queue) => Effect.as(order.push(queue) === 3 ? JobQueue.resume("b").pipe(Effect.orDie) : Effect.void, queue))]
        })
        yield* waitFor(Effect.sync(() => order.length), "9 jobs started", { until: (n) => n >= 9, within: "40 seconds" })
        // b was passed over (a, c, a); its turn then comes next, and it loses none after
        assert.deepStrictEqual(order, ["a", "c", "a", "b", "c", "a", "b", "c", "b"])
      }).pipe(Effect.scoped, Effect.provide(layer())), { timeout: 60_000 })

    it.live("a queue whose best job is another task's gives its turn to its next job of the claim's tasks", () =>
      Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        yield* JobQueue.enqueue(Other, "a", { queue: "a", priority: 9 })
        yield* JobQueue.enqueue(Other, "b", { queue: "b", priority: 9 })
        yield* JobQueue.enqueueAll(Tag, ["a", "a", "b", "c", "c", "c"].map((queue) => ({ payload: queue, options: { queue } })))
        const claimed = yield* store.claim({ queues: ["a", "b", "c"], tasks: ["Tag"], limit: 5, lease: 60_000, fair: true })
        assert.deepStrictEqual(claimed.claims.map((c) => `${c.job.task}:${c.job.queue}`).sort(), ["Tag:a", "Tag:a", "Tag:b", "Tag:c", "Tag:c"])
      }).pipe(Effect.provide(layer())), { timeout: 60_000 })
    it.live("a claim of many slots over a few deep queues takes what rounds of one would, each queue's best jobs (and its rate limit) kept", () =>
      Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        // payload: queue and number; every third job of a queue is urgent
        const jobs = (queue: string, n: number) =>
          Array.from({ length: n }, (_, i) => ({ payload: `${queue}${i}`, options: { queue, priority: i % 3 === 0 ? 5 : 0 } }))
        yield* JobQueue.enqueueAll(Tag, [...jobs("a", 100), ...jobs("b", 3), ...jobs("c", 20), ...jobs("e", 100)])
        // another task's jobs, the best of their queues: not the claim's, they take no turn or slot
        yield* JobQueue.enqueueAll(Other, ["a", "b", "c", "e"].map((queue) => ({ payload: queue, options: { queue, priority: 9 } })))
        yield* JobQueue.setRateLimit("c", { limit: 7, interval: "1 hour" })
        const claim = (queues: ReadonlyArray<string>, limit: number) =>
          Effect.map(store.claim({ queues, tasks: ["Tag"], limit, lease: 60_000, fair: true }), ({ claims }) => {
            const by: Record<string, Array<number>> = {}
            for (const { job } of claims) (by[job.queue] ??= []).push(Number(JSON.parse(job.payload).slice(1)))
            for (const list of Object.values(by)) list.sort((x, y) => x - y)
            return by
          })
        // the best first: a queue's urgent jobs (0, 3, 6, ...), then the others in order
        const best = (n: number, k: number) =>
          [...Array.from({ length: n }, (_, i) => i).filter((i) => i % 3 === 0), ...Array.from({ length: n }, (_, i) => i).filter((i) => i % 3 !== 0)]
            .slice(0, k).sort((x, y) => x - y)
        // rounds of a, b, c (3), of a, c (4 more: c's window is 7), then a alone; d is empty
        assert.deepStrictEqual(yield* claim(["a", "b", "c", "d"], 40), { a: best(100, 30), b: [0, 1, 2], c: best(20, 7) })
        // 20 rounds of e, a, then e: the round the limit cuts goes in the list's order
        const next = yield* claim(["e", "a"], 41)
        assert.deepStrictEqual(next.e, best(100, 21))
        assert.deepStrictEqual(next.a, best(100, 50).filter((i) => !best(100, 30).includes(i)))
      }).pipe(Effect.provide(layer())), { timeout: 60_000 })
    it.live("a consumer of 8 slots over 3 queues fills all 8 at once, round-robin: 4, 3 and the one job of the third", () =>
      Effect.gen(function*() {
        yield* JobQueue.enqueueAll(Tag, [
          ...Array.from({ length: 10 }, () => ({ payload: "a", options: { queue: "a" } })),
          ...Array.from({ length: 10 }, () => ({ payload: "b", options: { queue: "b" } })),
          { payload: "c", options: { queue: "c" } }
        ])
        const running: Array<string> = []
        const gate = yield* Deferred.make<void>()
        yield* JobQueue.consume({
          queues: ["a", "b", "c"],
          concurrency: 8,
          dispatch: "fair",
          poll: 20,
          handlers: [Task.handle(Tag, (queue) => Effect.as(Effect.andThen(Effect.sync(() => running.push(queue)), Deferred.await(gate)), queue))]
        })
        yield* waitFor(Effect.sync(() => running.length), "8 jobs running", { until: (n) => n >= 8, within: "40 seconds" })
        assert.deepStrictEqual([...running].sort().join(""), "aaaabbbc")
        yield* Deferred.succeed(gate, undefined)
      }).pipe(Effect.scoped, Effect.provide(layer())), { timeout: 60_000 })
  })
}

describe.runIf(Rd.enabled)("Redis: a fair claim whose look fails", () => {
  const sha = (lua: string) => createHash("sha1").update(lua).digest("hex")
  const looks = new Set([sha(Scripts.PEEK), sha(Scripts.PEEK_MANY)])

  it.live("claims in turn without it, each queue up to what is left (as documented), and the next claim, its look answered, is round-robin again", () =>
    Effect.gen(function*() {
      const plain = yield* Effect.map(Layer.build(NodeRedis.layer({ url: Rd.url! })), (context) => Context.get(context, Redis.Redis))
      let failing = 1
      const hooked = Redis.Redis.of({
        ...plain,
        send: <A>(command: string, ...args: ReadonlyArray<string>) =>
          command === "EVALSHA" && looks.has(args[0]!) && failing > 0
            ? Effect.suspend(() => (failing--, Effect.fail(new Redis.RedisError({ cause: new Error("the connection was lost") }))))
            : plain.send<A>(command, ...args)
      })
      const cfg = yield* RedisStore.options({ url: Rd.url!, prefix: Rd.freshPrefix() })
      const store = yield* Effect.provideService(RedisStore.make({ ...cfg, clock: "effect" }), Redis.Redis, hooked)
      for (const queue of ["a", "b", "c"]) for (let i = 0; i < 5; i++) yield* store.enqueue(newJob(queue, { task: "Tag", payload: JSON.stringify(queue) }))
      const claim = Effect.map(store.claim({ queues: ["a", "b", "c"], tasks: ["Tag"], limit: 4, lease: 60_000, fair: true }), ({ claims }) =>
        claims.map((c) => c.job.queue).sort().join(""))
      assert.strictEqual(yield* claim, "aaaa")
      assert.strictEqual(failing, 0, "the look failed")
      assert.strictEqual(yield* claim, "abbc")
    }).pipe(Effect.scoped), { timeout: 60_000 })
})
