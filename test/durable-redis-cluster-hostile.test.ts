/**
 * The Redis store on a Redis Cluster under what a Cluster adds: a master killed (SIGKILL) and
 * restarted from its append-only file while a consumer of queues on every node runs, a master
 * frozen (SIGSTOP), slots moved. Each test starts a Cluster of its own (private servers).
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Context, Deferred, Effect, Layer, Logger, Queue, Ref, Schedule } from "effect"
import { TestClock } from "effect/testing"
import type { Store } from "../src/internal/store/model.ts"
import { StoreError } from "../src/DurableError.ts"
import * as JobStore from "../src/JobStore.ts"
import * as JobQueue from "../src/JobQueue.ts"
import * as RedisJobStore from "../src/RedisJobStore.ts"
import * as Task from "../src/Task.ts"
import { Echo, newJob } from "./durable/conformance.ts"
import { admin, blocked, clusterLayer, freshPrefix, timeAnswersAtOnce, until } from "./durable/redis.ts"
import { waitFor } from "./helpers.ts"
import * as redisServer from "./durable/redisserver.ts"
import * as RedisStore from "../src/internal/store/redis.ts"
import * as RedisClient from "../src/internal/store/redisClient.ts"

const binary = redisServer.binary()

/** A Cluster of its own, destroyed with the test's scope. */
const ownCluster = (args: ReadonlyArray<string> = []) =>
  Effect.acquireRelease(
    Effect.promise(() => redisServer.startCluster(binary!, 3, args)),
    (cluster) => Effect.promise(cluster.destroy)
  )

/** For each node (by index), a queue of `prefix` whose slot it serves. */
const queuePerNode = (cluster: redisServer.Cluster, prefix: string) =>
  Effect.promise(async () => {
    const ports = cluster.nodes.map((node) => Number(node.url.split(":").at(-1)))
    const slots = await admin((client) => client.sendCommand(["CLUSTER", "SLOTS"]) as Promise<Array<[number, number, [string, number]]>>, cluster.url)
    const nodeOf = (slot: number) => {
      const range = slots.find(([from, to]) => from <= slot && slot <= to)!
      return ports.indexOf(Number(range[2][1]))
    }
    const found: Array<string | undefined> = cluster.nodes.map(() => undefined)
    for (let n = 0; found.some((q) => q === undefined); n++) {
      const queue = `q${n}`
      const slot = Number(await admin((client) => client.sendCommand(["CLUSTER", "KEYSLOT", `{${prefix}:${queue}}:meta`]), cluster.url))
      const node = nodeOf(slot)
      if (found[node] === undefined) found[node] = queue
    }
    return found as Array<string>
  })

/** The node (by index) serving `{<prefix>}:queues`, the list of queues a reap reads. */
const listNode = (cluster: redisServer.Cluster, prefix: string) =>
  Effect.promise(async () => {
    const ports = cluster.nodes.map((node) => Number(node.url.split(":").at(-1)))
    const slots = await admin((client) => client.sendCommand(["CLUSTER", "SLOTS"]) as Promise<Array<[number, number, [string, number]]>>, cluster.url)
    const slot = Number(await admin((client) => client.sendCommand(["CLUSTER", "KEYSLOT", `{${prefix}}:queues`]), cluster.url))
    const range = slots.find(([from, to]) => from <= slot && slot <= to)!
    return ports.indexOf(Number(range[2][1]))
  })

const job = (queue: string, n: number, maxAttempts = 3) => newJob(queue, { payload: JSON.stringify({ n }), maxAttempts })

/** A store (the JobStore service) on `cluster`, for this scope. */
const storeOn = (cluster: redisServer.Cluster, prefix: string) =>
  Effect.map(Layer.build(clusterLayer(() => cluster.url, prefix)), (context) => Context.get(context, JobStore.JobStore))

/**
 * A Cluster of its own, a queue per node, a job enqueued in each (`first`), and the nodes (by
 * index) of two of them in the order a reap goes in (the list of queues'): `victim`, the first whose
 * node does not hold the list (which then stays readable with it down), and `healthy`, the queue
 * after it (on another node).
 */
const reapOrder = Effect.gen(function*() {
  const cluster = yield* ownCluster(["--cluster-node-timeout", "120000"])
  const prefix = freshPrefix()
  const queues = yield* queuePerNode(cluster, prefix)
  const store = yield* storeOn(cluster, prefix)
  const first = yield* Effect.forEach(queues, (queue, n) => store.enqueue(job(queue, n)))
  const list = yield* listNode(cluster, prefix)
  const order = yield* Effect.promise(() =>
    admin((client) => client.sendCommand(["SMEMBERS", `{${prefix}}:queues`]) as Promise<Array<string>>, cluster.nodes[list]!.url)
  )
  const nodes = order.map((queue) => queues.indexOf(queue))
  const v = nodes.findIndex((node) => node !== list)
  return { cluster, prefix, queues, store, first, victim: nodes[v]!, healthy: nodes[v + 1]! }
})

/**
 * A move of the slot of `queue`'s keys from the node that serves it to the next one, as
 * `redis-cli --cluster reshard` makes it: `begin` marks it MIGRATING and IMPORTING (no key moved
 * yet); `finish` moves every key (MIGRATE) and gives the slot to the target on every node.
 */
const slotMove = (cluster: redisServer.Cluster, prefix: string, queue: string) =>
  Effect.promise(async () => {
    const nodes = cluster.nodes.map((node) => node.url)
    const ids = await Promise.all(nodes.map((on) => admin((client) => client.sendCommand(["CLUSTER", "MYID"]) as Promise<string>, on)))
    const slot = String(await admin((client) => client.sendCommand(["CLUSTER", "KEYSLOT", `${RedisStore.queueBase(prefix, queue)}:meta`]), nodes[0]!))
    const slots = await admin((client) => client.sendCommand(["CLUSTER", "SLOTS"]) as Promise<Array<[number, number, [string, number]]>>, nodes[0]!)
    const port = Number(slots.find(([from, to]) => from <= Number(slot) && Number(slot) <= to)![2][1])
    const source = nodes.findIndex((url) => url.endsWith(`:${port}`))
    const target = (source + 1) % nodes.length
    const [host, targetPort] = nodes[target]!.replace("redis://", "").split(":")
    return {
      begin: async () => {
        await admin((client) => client.sendCommand(["CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source]!]), nodes[target]!)
        await admin((client) => client.sendCommand(["CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target]!]), nodes[source]!)
      },
      finish: async () => {
        const keys = await admin((client) => client.sendCommand(["CLUSTER", "GETKEYSINSLOT", slot, "10000"]) as Promise<Array<string>>, nodes[source]!)
        if (keys.length > 0) {
          await admin((client) => client.sendCommand(["MIGRATE", host!, targetPort!, "", "0", "5000", "KEYS", ...keys]), nodes[source]!)
        }
        for (const on of [target, source, ...nodes.keys()].filter((n, i, all) => all.indexOf(n) === i)) {
          await admin((client) => client.sendCommand(["CLUSTER", "SETSLOT", slot, "NODE", ids[target]!]), nodes[on]!)
        }
      }
    }
  })

if (binary === undefined) describe.skip("the Redis store on a hostile Cluster (no redis-server binary)", () => {})
else {
  describe("the Redis store on a hostile Cluster", () => {
    it.live("a claim of two queues whose second one's master is down: the first queue's jobs it took are not left running under tokens nobody holds (a claim that fails took nothing; one that took jobs returns them)", () =>
      Effect.gen(function*() {
        const cluster = yield* ownCluster(["--cluster-node-timeout", "120000"])
        const prefix = freshPrefix()
        const [healthy, victim] = yield* queuePerNode(cluster, prefix)
        const store = yield* storeOn(cluster, prefix)
        const first = yield* store.enqueue(job(healthy!, 1, 1))
        yield* store.enqueue(job(victim!, 2, 1))
        yield* Effect.promise(() => cluster.nodes[1]!.kill())
        const claimed = yield* store.claim({ queues: [healthy!, victim!], tasks: ["Echo"], limit: 10, lease: 60_000 }).pipe(
          Effect.map((value) => ({ ok: true as const, value })),
          Effect.catch((error) => Effect.succeed({ ok: false as const, error }))
        )
        const counts = yield* store.counts(healthy!)
        if (claimed.ok) {
          // what it took, it returns: the healthy queue's job, under a token that settles it
          assert.deepStrictEqual(claimed.value.claims.map((claim) => claim.job.id), [first.id])
          assert.isTrue(yield* store.settle(claimed.value.claims[0]!.token, { _tag: "Final", state: "succeeded", exit: "{}" }))
        } else {
          // failed: it took nothing (the job is still queued for a claim that works)
          assert.instanceOf(claimed.error, StoreError)
          assert.deepStrictEqual([counts.waiting, counts.running], [1, 0], "the healthy queue's job is not left running")
        }
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("a reap while one queue's master is down takes back the expired jobs of the queues on the other nodes (it goes on past the queue that fails, then fails)", () =>
      Effect.gen(function*() {
        const { cluster, queues, store, first, victim, healthy } = yield* reapOrder
        const expiring = first[healthy]!
        const { claims } = yield* store.claim({ queues: [queues[healthy]!], tasks: ["Echo"], limit: 1, lease: 1 })
        assert.deepStrictEqual(claims.map((claim) => claim.job.id), [expiring.id])
        yield* Effect.promise(() => cluster.nodes[victim]!.kill())
        yield* Effect.sleep("20 millis")
        const reaped = yield* Effect.exit(store.reap([0]))
        // typed, whatever it answers
        if (reaped._tag === "Failure") assert.strictEqual(reaped.cause.reasons.length, 1)
        const counts = yield* store.counts(queues[healthy]!)
        assert.deepStrictEqual([counts.waiting, counts.running], [1, 0], "the healthy queue's expired job is taken back")
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("a heartbeat of jobs of two queues, one's master down: the leases of the healthy queue's jobs are renewed", () =>
      Effect.gen(function*() {
        const cluster = yield* ownCluster(["--cluster-node-timeout", "120000"])
        const prefix = freshPrefix()
        const queues = yield* queuePerNode(cluster, prefix)
        const [healthy, victim] = [queues[0]!, queues[1]!]
        const store = yield* storeOn(cluster, prefix)
        const a = yield* store.enqueue(job(victim, 1))
        const b = yield* store.enqueue(job(healthy, 2))
        const one = yield* store.claim({ queues: [victim], tasks: ["Echo"], limit: 1, lease: 5_000 })
        const two = yield* store.claim({ queues: [healthy], tasks: ["Echo"], limit: 1, lease: 5_000 })
        assert.deepStrictEqual([one.claims[0]?.job.id, two.claims[0]?.job.id], [a.id, b.id])
        yield* Effect.promise(() => cluster.nodes[1]!.kill())
        const before = Date.now()
        yield* Effect.exit(store.heartbeat([one.claims[0]!.token, two.claims[0]!.token], 600_000))
        const expiry = yield* Effect.promise(() =>
          admin((client) => client.sendCommand(["ZSCORE", `{${prefix}:${healthy}}:running`, b.id]) as Promise<string>, cluster.nodes[0]!.url)
        )
        assert.isAbove(Number(expiry), before + 60_000, "the healthy queue's lease is renewed")
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("one queue's master frozen (SIGSTOP), first in a heartbeat's and a reap's order: each goes on past it within its bound (the other queue's lease renewed, its expired job taken back), the beat answering with the frozen queue's token unrenewed, the reap failing; the next skips it at once while its script is unanswered; the store's time answers at once; once it resumes both work again", () =>
      Effect.gen(function*() {
        // the victim first in the reap's order, and in the beat's (the tokens')
        const { cluster, prefix, queues, store, first, victim, healthy } = yield* reapOrder
        const expiring = yield* store.enqueue(job(queues[healthy]!, 10))
        const claimOf = (node: number, lease: number) =>
          Effect.map(store.claim({ queues: [queues[node]!], tasks: ["Echo"], limit: 1, lease }), ({ claims }) => claims[0]!)
        const frozen = yield* claimOf(victim, 60_000)
        const beating = yield* claimOf(healthy, 60_000)
        const expired = yield* claimOf(healthy, 1)
        assert.deepStrictEqual([frozen.job.id, beating.job.id, expired.job.id], [first[victim]!.id, first[healthy]!.id, expiring.id])
        // a store on the server's clock (the others here are on the Effect Clock): its `now` asks TIME
        const served = yield* Effect.flatMap(RedisStore.options({ url: cluster.url, prefix, cluster: true }), RedisStore.open)
        yield* Effect.addFinalizer(() => Effect.sync(() => cluster.nodes[victim]!.signal("SIGCONT")))
        cluster.nodes[victim]!.signal("SIGSTOP")
        const timed = <A, E>(effect: Effect.Effect<A, E>) =>
          Effect.gen(function*() {
            const started = Date.now()
            const exit = yield* Effect.exit(Effect.timeout(effect, "20 seconds"))
            return { exit, took: Date.now() - started }
          })
        const beat = () => store.heartbeat([frozen.token, beating.token], 600_000)
        const before = Date.now()
        const one = yield* timed(beat())
        // renewed the other queue's lease: not a failed beat, the frozen queue's token said unrenewed
        const unrenewed = (exit: typeof one.exit) => {
          assert.isTrue(exit._tag === "Success", String(exit))
          const value = exit._tag === "Success" ? exit.value.unrenewed : undefined
          assert.instanceOf(value?.error, StoreError)
          return value?.tokens
        }
        assert.deepStrictEqual(unrenewed(one.exit), [frozen.token])
        assert.isBelow(one.took, RedisStore.CLAIM_BOUND + 1500, "the beat goes on past the frozen queue at its bound")
        const expiry = yield* Effect.promise(() =>
          admin((client) => client.sendCommand(["ZSCORE", `{${prefix}:${queues[healthy]}}:running`, beating.job.id]) as Promise<string>, cluster.nodes[healthy]!.url)
        )
        assert.isAbove(Number(expiry), before + 300_000, "the healthy queue's lease is renewed")
        const two = yield* timed(beat())
        assert.deepStrictEqual(unrenewed(two.exit), [frozen.token], "a queue whose beat is late is not counted as renewed")
        assert.isBelow(two.took, 1000, "the frozen queue, its beat still unanswered, is skipped")
        // TIME has no key: it goes to each node in turn, so one of three refreshes asks the frozen
        // one; the store's time does not wait for it (a consumer's beats wait on its time)
        yield* timeAnswersAtOnce(served.now, 4)
        const reaped = yield* timed(store.reap([0]))
        assert.strictEqual(reaped.exit._tag, "Failure")
        assert.isBelow(reaped.took, RedisStore.CLAIM_BOUND + 1500, "the reap goes on past the frozen queue at its bound")
        const counts = yield* store.counts(queues[healthy]!)
        assert.deepStrictEqual([counts.waiting, counts.running], [1, 1], "the healthy queue's expired job is taken back, its beaten one not")
        cluster.nodes[victim]!.signal("SIGCONT")
        yield* until(Effect.exit(beat()), (exit) => exit._tag === "Success" && exit.value.unrenewed === undefined, "a beat renews both once the node resumes")
        yield* until(Effect.exit(store.reap([0])), (exit) => exit._tag === "Success", "a reap works once the node resumes")
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("a consumer whose lease (1 s) is below the reap's bound per queue (2 s), one queue's master frozen (SIGSTOP) first in the reap's order: a dead consumer's expired job on a queue after it is taken back (each reap cut short at the lease while it waits on the frozen queue must still leave that queue skipped, so that the next goes past it)", () =>
      Effect.gen(function*() {
        const { cluster, prefix, queues, store, first, victim, healthy } = yield* reapOrder
        yield* Effect.addFinalizer(() => Effect.sync(() => cluster.nodes[victim]!.signal("SIGCONT")))
        yield* Effect.gen(function*() {
          // a consumer of the healthy queue only: its claims and beats never meet the frozen node; its
          // reaper's reap goes over every queue of the store, the frozen one first
          yield* JobQueue.consume({
            queues: [queues[healthy]!],
            handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))],
            concurrency: 1,
            lease: "1 second"
          })
          // running (its reaper too) and idle, its queue's watch made, before the freeze
          assert.strictEqual(yield* JobQueue.await(Echo, first[healthy]!.id), healthy)
          // resumed before the store's layer is released (a Cluster store's close with a master frozen is not under test here)
          yield* Effect.addFinalizer(() => Effect.sync(() => cluster.nodes[victim]!.signal("SIGCONT")))
          cluster.nodes[victim]!.signal("SIGSTOP")
          // a dead consumer's job on the healthy queue (a task this consumer does not run): its lease
          // (1 ms) ends at once, and only a reap gives it back
          const dead = yield* store.enqueue({ ...job(queues[healthy]!, 9), task: "Other" })
          const { claims } = yield* store.claim({ queues: [queues[healthy]!], tasks: ["Other"], limit: 1, lease: 1 })
          assert.deepStrictEqual(claims.map((claim) => claim.job.id), [dead.id])
          const row = yield* until(
            Effect.orDie(store.get(dead.id)),
            (row) => row?.state !== "running",
            "the dead consumer's job is taken back"
          ).pipe(Effect.timeout("15 seconds"))
          assert.deepStrictEqual([row?.state, row?.attempts], ["queued", 1])
        }).pipe(Effect.scoped, Effect.provide(RedisJobStore.layer({ url: cluster.url, prefix, cluster: true })), Effect.timeout("40 seconds"))
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("a store built on a Cluster while one master (not the url's) is frozen (SIGSTOP): the build ends within its connect timeout and a few seconds (a store, or a typed failure), not waiting for the frozen node for ever", () =>
      Effect.gen(function*() {
        const cluster = yield* ownCluster(["--cluster-node-timeout", "120000"])
        const prefix = freshPrefix()
        yield* Effect.addFinalizer(() => Effect.sync(() => cluster.nodes[1]!.signal("SIGCONT")))
        cluster.nodes[1]!.signal("SIGSTOP")
        // detached: a build that never ends cannot be interrupted (its connect is an acquire)
        const built = yield* Deferred.make<string>()
        yield* Effect.forkDetach(
          Effect.scoped(Layer.build(RedisJobStore.layer({ url: cluster.url, prefix, cluster: true, connectTimeout: "1 second" }))).pipe(
            Effect.exit,
            Effect.flatMap((exit) => Deferred.succeed(built, exit._tag === "Success" ? "built" : String(exit.cause)))
          )
        )
        const ended = yield* Deferred.await(built).pipe(Effect.timeoutOption("8 seconds"))
        assert.isTrue(ended._tag === "Some", "the build (and close) ended")
        if (ended._tag === "Some" && ended.value !== "built") assert.include(ended.value, "StoreError")
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("a consumer of queues on every node, one master killed (SIGKILL): the other nodes' queues keep running (each job once, maxAttempts 1), and once it is back from its AOF its queue runs again without restarting the consumer", () =>
      Effect.gen(function*() {
        // a node down is noticed by the others after the node timeout: longer than the test, so
        // the other slots stay served (cluster_state ok) while it is down
        const cluster = yield* ownCluster(["--cluster-node-timeout", "120000"])
        const prefix = freshPrefix()
        const queues = yield* queuePerNode(cluster, prefix)
        const list = yield* listNode(cluster, prefix)
        // the victim: a node without the list of queues, last in the consumer's queues
        const victim = (list + 1) % 3
        const order = [...queues.filter((_, i) => i !== victim), queues[victim]!]
        const runs = yield* Ref.make(new Map<number, number>())
        yield* Effect.gen(function*() {
          yield* JobQueue.consume({
            queues: order,
            handlers: [Task.handle(Echo, ({ n }) => Effect.as(Ref.update(runs, (m) => new Map(m).set(n, (m.get(n) ?? 0) + 1)), n))],
            // more slots than jobs: every claim goes on to the victim's queue
            concurrency: 10,
            lease: "20 seconds"
          })
          const warm = yield* Effect.forEach(order, (queue, n) => JobQueue.enqueue(Echo, { n: 100 + n }, { queue }))
          yield* Effect.forEach(warm, (job) => JobQueue.await(Echo, job.id))
          yield* Effect.promise(() => cluster.nodes[victim]!.kill())
          const others = yield* Effect.forEach(order.slice(0, 2).flatMap((queue, i) => [10 + i * 10, 11 + i * 10].map((n) => ({ queue, n }))), ({ queue, n }) =>
            JobQueue.enqueue(Echo, { n }, { queue, maxAttempts: 1 }))
          const done = yield* Effect.forEach(others, (job) => JobQueue.await(Echo, job.id)).pipe(Effect.timeout("20 seconds"))
          assert.deepStrictEqual(done, [10, 11, 20, 21])
          yield* Effect.promise(() => cluster.nodes[victim]!.start())
          // back: new jobs of its queue run (the enqueue may fail while the client reconnects)
          const after = yield* Effect.forEach([2, 3], (n) =>
            JobQueue.enqueue(Echo, { n }, { queue: queues[victim]! }).pipe(Effect.retry({ times: 100, schedule: Schedule.spaced("100 millis") })))
          const results = yield* Effect.forEach(after, (job) => JobQueue.await(Echo, job.id)).pipe(Effect.timeout("30 seconds"))
          assert.deepStrictEqual(results, [2, 3])
        }).pipe(Effect.scoped, Effect.provide(RedisJobStore.layer({ url: cluster.url, prefix, cluster: true })), Effect.timeout("50 seconds"))
        const counted = yield* Ref.get(runs)
        assert.deepStrictEqual([...counted.entries()].sort(([a], [b]) => a - b), [[2, 1], [3, 1], [10, 1], [11, 1], [20, 1], [21, 1], [100, 1], [101, 1], [102, 1]])
      }).pipe(Effect.scoped), { timeout: 90_000 })

    it.live("a consumer of queues on every node, one master frozen (SIGSTOP) past the lease: the other nodes' queues keep running, each job once; its close does not wait for the frozen node; once it resumes its queue runs", () =>
      Effect.gen(function*() {
        const cluster = yield* ownCluster(["--cluster-node-timeout", "120000"])
        const prefix = freshPrefix()
        const queues = yield* queuePerNode(cluster, prefix)
        const list = yield* listNode(cluster, prefix)
        const victim = (list + 1) % 3
        const order = [...queues.filter((_, i) => i !== victim), queues[victim]!]
        const runs = yield* Ref.make(new Map<number, number>())
        const handlers = [Task.handle(Echo, ({ n }) => Effect.as(Ref.update(runs, (m) => new Map(m).set(n, (m.get(n) ?? 0) + 1)), n))]
        const layer = RedisJobStore.layer({ url: cluster.url, prefix, cluster: true })
        yield* Effect.addFinalizer(() => Effect.sync(() => cluster.nodes[victim]!.signal("SIGCONT")))
        yield* Effect.gen(function*() {
          yield* JobQueue.consume({ queues: order, handlers, concurrency: 10, lease: "2 seconds" })
          const warm = yield* Effect.forEach(order, (queue, n) => JobQueue.enqueue(Echo, { n: 100 + n }, { queue }))
          yield* Effect.forEach(warm, (job) => JobQueue.await(Echo, job.id))
          cluster.nodes[victim]!.signal("SIGSTOP")
          const others = yield* Effect.forEach(order.slice(0, 2).flatMap((queue, i) => [10 + i * 10, 11 + i * 10].map((n) => ({ queue, n }))), ({ queue, n }) =>
            JobQueue.enqueue(Echo, { n }, { queue }))
          const done = yield* Effect.forEach(others, (job) => JobQueue.await(Echo, job.id)).pipe(Effect.timeout("15 seconds"))
          assert.deepStrictEqual(done, [10, 11, 20, 21])
        }).pipe(Effect.scoped, Effect.provide(layer), Effect.timeout("30 seconds"))
        // closed while the node was frozen; now it resumes: a new consumer runs its queue
        cluster.nodes[victim]!.signal("SIGCONT")
        yield* Effect.gen(function*() {
          yield* JobQueue.consume({ queues: order, handlers, concurrency: 10, lease: "2 seconds" })
          const job = yield* JobQueue.enqueue(Echo, { n: 2 }, { queue: queues[victim]! })
          assert.strictEqual(yield* JobQueue.await(Echo, job.id), 2)
        }).pipe(Effect.scoped, Effect.provide(layer), Effect.timeout("20 seconds"))
        const counted = yield* Ref.get(runs)
        assert.deepStrictEqual([...counted.entries()].sort(([a], [b]) => a - b), [[2, 1], [10, 1], [11, 1], [20, 1], [21, 1], [100, 1], [101, 1], [102, 1]])
      }).pipe(Effect.scoped), { timeout: 90_000 })

    it.live("a consumer running a job on each of two queues, one's master frozen (SIGSTOP) past the lease: only that queue's job is given up as lost; the other's lease is renewed all along, and its job ends once, its attempt the first", () =>
      Effect.gen(function*() {
        const cluster = yield* ownCluster(["--cluster-node-timeout", "120000"])
        const prefix = freshPrefix()
        const queues = yield* queuePerNode(cluster, prefix)
        const list = yield* listNode(cluster, prefix)
        const [victim, healthy] = [(list + 1) % 3, (list + 2) % 3]
        const layer = RedisJobStore.layer({ url: cluster.url, prefix, cluster: true })
        yield* Effect.addFinalizer(() => Effect.sync(() => cluster.nodes[victim]!.signal("SIGCONT")))
        const release = yield* Deferred.make<void>()
        const started = yield* Queue.unbounded<number>()
        const interrupted = yield* Queue.unbounded<number>()
        let runs = 0
        const handlers = [Task.handle(Echo, ({ n }) =>
          Effect.gen(function*() {
            runs++
            yield* Queue.offer(started, n)
            if (n === 1) yield* Effect.never
            yield* Deferred.await(release)
            return n
          }).pipe(Effect.onInterrupt(() => Queue.offer(interrupted, n))))]
        yield* Effect.gen(function*() {
          yield* JobQueue.consume({ queues: [queues[victim]!, queues[healthy]!], handlers, concurrency: 2, lease: "3 seconds", poll: "1 hour" })
          yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: queues[victim]! })
          yield* Queue.take(started)
          const job = yield* JobQueue.enqueue(Echo, { n: 2 }, { queue: queues[healthy]! })
          yield* Queue.take(started)
          cluster.nodes[victim]!.signal("SIGSTOP")
          // a lease after its last renewal, the frozen queue's job is given up; the other's is not
          assert.strictEqual(yield* Queue.take(interrupted).pipe(Effect.timeout("20 seconds")), 1)
          yield* Deferred.succeed(release, undefined)
          assert.strictEqual(yield* JobQueue.await(Echo, job.id).pipe(Effect.timeout("10 seconds")), 2)
          assert.strictEqual((yield* JobQueue.status(job.id)).attempts, 1)
          assert.deepStrictEqual([runs, yield* Queue.size(interrupted)], [2, 0])
        }).pipe(Effect.scoped, Effect.provide(layer), Effect.timeout("40 seconds"))
      }).pipe(Effect.scoped), { timeout: 90_000 })

    it.live("a consumer of two queues, one's master killed (SIGKILL), the other empty: its claims still answer (no backoff, no \"claiming durable jobs failed\"); a job another process enqueues on the healthy queue starts within a second (poll 1 hour), and the dead queue has a warning streak of its own, then a line once it answers again", () =>
      Effect.gen(function*() {
        const cluster = yield* ownCluster(["--cluster-node-timeout", "120000"])
        const prefix = freshPrefix()
        const queues = yield* queuePerNode(cluster, prefix)
        const list = yield* listNode(cluster, prefix)
        const victim = (list + 1) % 3
        const healthy = queues[(victim + 1) % 3]!
        const producer = yield* storeOn(cluster, prefix)
        const logged: Array<string> = []
        const collector = Logger.make((options) => {
          logged.push(String(Array.isArray(options.message) ? options.message[0] : options.message))
        })
        const started = new Map<number, number>()
        yield* Effect.gen(function*() {
          yield* JobQueue.consume({
            queues: [healthy, queues[victim]!],
            handlers: [Task.handle(Echo, ({ n }) => Effect.sync(() => started.set(n, Date.now())).pipe(Effect.as(n)))],
            concurrency: 2,
            poll: "1 hour"
          })
          const warm = yield* producer.enqueue(job(healthy, 1))
          yield* until(Effect.orDie(Effect.map(producer.get(warm.id), (row) => row?.state)), (state) => state === "succeeded", "the first job runs")
          yield* Effect.promise(() => cluster.nodes[victim]!.kill())
          // past the failed claims' backoff reaching its 5 s cap (1 + 2 + 4 s), had they failed
          yield* Effect.sleep("8 seconds")
          const enqueued = Date.now()
          const late = yield* producer.enqueue(job(healthy, 2))
          yield* until(Effect.orDie(Effect.map(producer.get(late.id), (row) => row?.state)), (state) => state === "succeeded", "the healthy queue's job runs")
          assert.isBelow(started.get(2)! - enqueued, 1000, "started within a second, not after a backoff")
          assert.deepStrictEqual(logged.filter((line) => line.startsWith("effect-workpool: claiming durable jobs failed")), [])
          const streak = logged.filter((line) => line.includes(`queue ${JSON.stringify(queues[victim]!)}`) && line.includes("failed"))
          assert.isAbove(streak.length, 0, "the dead queue's failures are logged")
          assert.strictEqual(streak[0]!.slice(streak[0]!.indexOf("(")), "(1 time in a row; its other queues are claimed from)")
          yield* Effect.promise(() => cluster.nodes[victim]!.start())
          const back = yield* producer.enqueue(job(queues[victim]!, 3)).pipe(Effect.retry({ times: 100, schedule: Schedule.spaced("100 millis") }))
          yield* until(Effect.orDie(Effect.map(producer.get(back.id), (row) => row?.state)), (state) => state === "succeeded", "the queue back runs")
          assert.isTrue(logged.some((line) => line.startsWith(`effect-workpool: claiming durable jobs of queue ${JSON.stringify(queues[victim]!)} works again, after`)))
        }).pipe(
          Effect.scoped,
          Effect.provide(Layer.merge(RedisJobStore.layer({ url: cluster.url, prefix, cluster: true }), Logger.layer([collector]))),
          Effect.timeout("50 seconds")
        )
      }).pipe(Effect.scoped), { timeout: 90_000 })

    // the claim's look (PEEK, each queue's sent together) is its first script on the frozen node: the
    // queue's claim, sent after it down the same connection, would wait behind it (a second bound)
    it.live("a claim of two queues, one's master frozen (SIGSTOP): it returns the other queue's job within one bound (its look's: the frozen queue's claim is not sent behind it); the frozen queue is skipped while its look is unanswered, and once the node resumes its job is claimed, its attempt the first", () =>
      Effect.gen(function*() {
        const cluster = yield* ownCluster(["--cluster-node-timeout", "120000"])
        const prefix = freshPrefix()
        const [healthy, victim] = yield* queuePerNode(cluster, prefix)
        const store = yield* storeOn(cluster, prefix)
        yield* Effect.addFinalizer(() => Effect.sync(() => cluster.nodes[1]!.signal("SIGCONT")))
        const ready = yield* store.enqueue(job(healthy!, 1, 1))
        const frozen = yield* store.enqueue(job(victim!, 2, 1))
        const next = yield* store.enqueue(job(healthy!, 3, 1))
        cluster.nodes[1]!.signal("SIGSTOP")
        const request = { queues: [victim!, healthy!], tasks: ["Echo"], limit: 1, lease: 60_000 }
        const first = Date.now()
        const one = yield* store.claim(request)
        assert.deepStrictEqual(one.claims.map((claim) => claim.job.id), [ready.id])
        assert.isBelow(Date.now() - first, RedisStore.CLAIM_BOUND * 1.75, "one bound, not the look's and the frozen queue's claim's")
        // the frozen queue's look is still unanswered: nothing sent there, the healthy queue answers at once
        const started = Date.now()
        const two = yield* store.claim(request)
        assert.deepStrictEqual(two.claims.map((claim) => claim.job.id), [next.id])
        assert.isBelow(Date.now() - started, 1000)
        cluster.nodes[1]!.signal("SIGCONT")
        yield* until(Effect.orDie(store.counts(victim!)), (counts) => counts.waiting === 1 && counts.running === 0, "the frozen queue's job waits")
        const again = yield* until(Effect.orDie(store.claim({ ...request, queues: [victim!] })), (c) => c.claims.length === 1, "the job is claimed again")
        assert.strictEqual(again.claims[0]!.job.id, frozen.id)
        assert.strictEqual(again.claims[0]!.job.attempts, 1)
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("the node of the store's url down (SIGKILL), a consumer's marker watch of a queue on another node dropped: a job enqueued there by another process wakes the consumer (poll 1 hour) while the url's node is still down", () =>
      Effect.gen(function*() {
        const cluster = yield* ownCluster(["--cluster-node-timeout", "120000"])
        const prefix = freshPrefix()
        const queues = yield* queuePerNode(cluster, prefix)
        const list = yield* listNode(cluster, prefix)
        // the url's node (to be killed) is not the list's; the queue is on the third node
        const root = (list + 1) % 3
        const on = 3 - list - root
        const queue = queues[on]!
        const layer = RedisJobStore.layer({ url: cluster.nodes[root]!.url, prefix, cluster: true })
        const producer = yield* storeOn(cluster, prefix)
        const consumerStore = yield* Layer.build(layer)
        yield* Effect.gen(function*() {
          yield* JobQueue.consume({ queues: [queue], handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))], concurrency: 2, poll: "1 hour" })
          const warm = yield* producer.enqueue(job(queue, 1))
          yield* until(Effect.orDie(Effect.map(producer.get(warm.id), (row) => row?.state)), (state) => state === "succeeded", "the first job runs")
          yield* Effect.promise(() => cluster.nodes[root]!.kill())
          // the consumer's watch (BZPOPMIN) on the queue's node is dropped: it makes a new one. The
          // watch is looked for until it blocks: woken by the first job's marker, it may be between
          // two BZPOPMINs (seen under load: none at the first look)
          const watches = yield* until(
            Effect.promise(() =>
              admin(async (client) => {
                const clients = String(await client.sendCommand(["CLIENT", "LIST"]))
                return clients.split("\n").filter((line) => line.includes("cmd=bzpopmin")).map((line) => /id=(\d+)/.exec(line)![1]!)
              }, cluster.nodes[on]!.url)
            ),
            (ids) => ids.length > 0,
            "the consumer's watch blocks on the queue's node"
          )
          yield* Effect.promise(() =>
            admin(async (client) => {
              for (const id of watches) await client.sendCommand(["CLIENT", "KILL", "ID", id])
            }, cluster.nodes[on]!.url)
          )
          const woken = yield* producer.enqueue(job(queue, 2))
          yield* until(Effect.orDie(Effect.map(producer.get(woken.id), (row) => row?.state)), (state) => state === "succeeded", "the job enqueued by the other process runs")
          // and a watch blocks there again (not a retry every second standing in for it)
          yield* until(
            Effect.promise(() => admin(async (client) => String(await client.sendCommand(["CLIENT", "LIST"])).includes("cmd=bzpopmin"), cluster.nodes[on]!.url)),
            (blocked) => blocked,
            "a watch blocks on the queue's node again"
          )
        }).pipe(Effect.provide(consumerStore), Effect.scoped, Effect.timeout("30 seconds"))
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("the node a consumer's cancel subscription is on killed (SIGKILL), not back: a cancel of its running job on another node still reaches it at once (not at its next heartbeat, 20 s)", () =>
      Effect.gen(function*() {
        const cluster = yield* ownCluster(["--cluster-node-timeout", "120000"])
        const prefix = freshPrefix()
        const queues = yield* queuePerNode(cluster, prefix)
        const producer = yield* storeOn(cluster, prefix)
        const consumerStore = yield* Layer.build(RedisJobStore.layer({ url: cluster.url, prefix, cluster: true }))
        const started = yield* Deferred.make<void>()
        const interrupted = yield* Deferred.make<void>()
        yield* Effect.gen(function*() {
          // the node of the subscription (PUBSUB NUMSUB counts a node's own subscribers)
          const subscribed = yield* until(
            Effect.promise(() =>
              Promise.all(cluster.nodes.map((node) =>
                admin(async (client) => Number((await client.sendCommand(["PUBSUB", "NUMSUB", `${prefix}:cancel`]) as Array<unknown>)[1]), node.url)
              ))
            ),
            (counts) => counts.some((n) => n > 0),
            "the store subscribes to cancels"
          )
          const victim = subscribed.findIndex((n) => n > 0)
          const queue = queues[(victim + 1) % 3]!
          yield* JobQueue.consume({
            queues: [queue],
            handlers: [Task.handle(Echo, () => Effect.andThen(Deferred.succeed(started, undefined), Effect.never).pipe(Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined))))],
            concurrency: 1,
            lease: "60 seconds"
          })
          const running = yield* producer.enqueue(job(queue, 1))
          yield* Deferred.await(started)
          yield* Effect.promise(() => cluster.nodes[victim]!.kill())
          // it subscribes again through another node, then the cancel comes (not one it could find by
          // a look at once after the subscription's loss)
          yield* until(
            Effect.promise(() =>
              Promise.all(cluster.nodes.filter((_, n) => n !== victim).map((node) =>
                admin(async (client) => Number((await client.sendCommand(["PUBSUB", "NUMSUB", `${prefix}:cancel`]) as Array<unknown>)[1]), node.url)
              ))
            ),
            (counts) => counts.some((n) => n > 0),
            "the store subscribes to cancels on another node"
          )
          // past the look at cancels its resubscription makes (1 s after the loss): only the new
          // subscription can tell of this cancel before the next heartbeat (a pause, not a wait for an event)
          yield* Effect.sleep("1500 millis")
          assert.strictEqual(yield* producer.cancel(running.id), "requested")
          yield* Deferred.await(interrupted).pipe(Effect.timeout("8 seconds"))
        }).pipe(Effect.provide(consumerStore), Effect.scoped, Effect.timeout("40 seconds"))
      }).pipe(Effect.scoped), { timeout: 60_000 })

    // A queue's slot moved while the store writes to it split the queue's keys between two nodes.
    // Every script declared one key (`KEYS[1]`, the queue's meta hash, which only a `configure`
    // writes) and built the others itself, so Redis's guard for keys of a migrating slot (ASK for a
    // missing key, TRYAGAIN for a command whose keys are split) saw only that one: with it missing
    // on the source (as for most queues), every script went by ASK to the target and ran on whatever
    // part of the queue was there. The enqueue wrote a second `seq`, `all`, `tasks`, `prio` and
    // marker on the target (the reshard's MIGRATE then fails with BUSYKEY, or with REPLACE drops one
    // side); the claim popped both jobs from the (moved) ready set, found the first's hash missing
    // (still on the source) and failed mid-script: both jobs in no set, never claimed. Each script
    // now also declares `B:guard`, a key never written: missing on both nodes, it makes Redis answer
    // TRYAGAIN (typed, a StoreError) to every script of the queue until the slot is settled
    it.live("a queue's slot half migrated (MIGRATING/IMPORTING, its ready set moved, the rest not): an enqueue and a claim fail typed (TRYAGAIN); no key ends on both nodes, the queued job stays in its ready set, and once the slot is settled both work on the new node", () =>
      Effect.gen(function*() {
        const cluster = yield* ownCluster(["--cluster-node-timeout", "120000"])
        const prefix = freshPrefix()
        const [queue] = yield* queuePerNode(cluster, prefix)
        const store = yield* storeOn(cluster, prefix)
        const first = yield* store.enqueue(job(queue!, 1))
        const meta = `{${prefix}:${queue}}:meta`
        const nodes = cluster.nodes.map((node) => node.url)
        const ids = yield* Effect.promise(() => Promise.all(nodes.map((on) => admin((client) => client.sendCommand(["CLUSTER", "MYID"]) as Promise<string>, on))))
        const slot = String(yield* Effect.promise(() => admin((client) => client.sendCommand(["CLUSTER", "KEYSLOT", meta]), nodes[0]!)))
        const [host, port] = nodes[1]!.replace("redis://", "").split(":")
        const keysIn = (on: string) =>
          Effect.promise(() => admin((client) => client.sendCommand(["CLUSTER", "GETKEYSINSLOT", slot, "1000"]) as Promise<Array<string>>, on))
        const migrate = (keys: ReadonlyArray<string>) =>
          admin((client) => client.sendCommand(["MIGRATE", host!, port!, "", "0", "5000", "KEYS", ...keys]), nodes[0]!)
        const ready = (yield* keysIn(nodes[0]!)).filter((key) => key.includes(":ready:"))
        assert.strictEqual(ready.length, 1)
        // the slot moving from node 0 to node 1, its ready set moved first
        yield* Effect.promise(async () => {
          await admin((client) => client.sendCommand(["CLUSTER", "SETSLOT", slot, "IMPORTING", ids[0]!]), nodes[1]!)
          await admin((client) => client.sendCommand(["CLUSTER", "SETSLOT", slot, "MIGRATING", ids[1]!]), nodes[0]!)
          await migrate(ready)
        })
        const enqueued = yield* Effect.exit(store.enqueue(job(queue!, 2)))
        const claimed = yield* Effect.exit(store.claim({ queues: [queue!], tasks: ["Echo"], limit: 10, lease: 60_000 }))
        for (const [what, exit] of [["enqueue", enqueued], ["claim", claimed]] as const) {
          assert.strictEqual(exit._tag, "Failure", `the ${what} ran on part of the queue`)
          const error = exit._tag === "Failure" ? Cause.squash(exit.cause) : undefined
          assert.instanceOf(error, StoreError)
          assert.match((error as StoreError).message, /TRYAGAIN/)
        }
        const onSource = yield* keysIn(nodes[0]!)
        const onTarget = yield* keysIn(nodes[1]!)
        assert.deepStrictEqual(onSource.filter((key) => onTarget.includes(key)), [], "no key on both nodes")
        assert.deepStrictEqual(onTarget, ready, "nothing written on the target")
        // (the target answers for a slot it imports only after ASKING)
        const queued = yield* Effect.promise(() =>
          admin(async (client) => {
            await client.sendCommand(["ASKING"])
            return Number(await client.sendCommand(["ZCARD", ready[0]!]))
          }, nodes[1]!)
        )
        assert.strictEqual(queued, 1, "the queued job is in its ready set")
        // the move ends (as redis-cli --cluster reshard ends it): the queue, whole, on node 1
        yield* Effect.promise(async () => {
          await migrate(onSource)
          for (const on of [nodes[1]!, nodes[0]!, nodes[2]!]) await admin((client) => client.sendCommand(["CLUSTER", "SETSLOT", slot, "NODE", ids[1]!]), on)
        })
        const second = yield* store.enqueue(job(queue!, 2))
        const taken = yield* store.claim({ queues: [queue!], tasks: ["Echo"], limit: 10, lease: 60_000 })
        assert.deepStrictEqual(taken.claims.map((claim) => claim.job.id), [first.id, second.id])
        assert.deepStrictEqual((yield* keysIn(nodes[0]!)), [])
      }).pipe(Effect.scoped), { timeout: 60_000 })

    // A settle refused while its queue's slot moves (TRYAGAIN) was tried 6 times in all, lease / 10
    // apart: for half a lease. A heartbeat refused the same way gives its jobs up only after a whole
    // lease, and docs/durable.md has a move shorter than the lease be safe. So a move longer than
    // half a lease (shorter than the lease) left a job that had ended to its lease (one still running
    // came through): taken back after the move, it ran again
    it.effect("a job that ends while its queue's slot moves, the move (6 s) shorter than the lease (10 s) but longer than half of it: its settle lands once the slot is settled, the job ran once and succeeded (not left to its lease, taken back and run again)", () =>
      Effect.gen(function*() {
        const cluster = yield* ownCluster(["--cluster-node-timeout", "120000"])
        const prefix = freshPrefix()
        const [queue] = yield* queuePerNode(cluster, prefix)
        const move = yield* slotMove(cluster, prefix, queue!)
        let answered = 0
        const counting = Layer.effect(
          JobStore.JobStore,
          Effect.map(JobStore.JobStore, (inner): Store => ({
            ...inner,
            settle: (token, settlement) => Effect.ensuring(inner.settle(token, settlement), Effect.sync(() => void answered++))
          }))
        ).pipe(Layer.provide(clusterLayer(() => cluster.url, prefix)))
        const warnings: Array<string> = []
        const collector = Logger.make((options) => {
          const message = Array.isArray(options.message) ? options.message[0] : options.message
          warnings.push(String(message))
        })
        const gaveUp = () => warnings.some((line) => line.includes("settle failed"))
        let runs = 0
        const started = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        yield* Effect.gen(function*() {
          yield* JobQueue.consume({
            queues: [queue!],
            handlers: [Task.handle(Echo, ({ n }) =>
              Effect.sync(() => runs++).pipe(Effect.andThen(Deferred.succeed(started, undefined)), Effect.andThen(Deferred.await(release)), Effect.as(n)))],
            concurrency: 1,
            lease: "10 seconds"
          })
          const job = yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: queue! })
          yield* Deferred.await(started)
          yield* Effect.promise(move.begin)
          yield* Deferred.succeed(release, undefined)
          // each try of its settle, a second apart, refused (TRYAGAIN), for 6 s of the move
          const tried = (after: number) =>
            waitFor(Effect.sync(() => answered > after || gaveUp()), `a try of the settle after the ${after}th, or the consumer giving it up`)
          yield* tried(0)
          for (let t = 0; t < 6; t++) {
            const before = answered
            yield* TestClock.adjust(1000)
            yield* tried(before)
          }
          yield* Effect.promise(move.finish)
          if (!gaveUp()) {
            const before = answered
            yield* TestClock.adjust(1000)
            yield* tried(before)
          }
          const state = Effect.map(Effect.orDie(JobQueue.status(job.id)), (info) => info.state).pipe(
            Effect.provideService(JobStore.JobStore, yield* JobStore.JobStore)
          )
          // on until it has ended or run again (the reaper takes back a job left to its lease)
          yield* waitFor(Effect.andThen(TestClock.adjust(100), state), "the job ends or runs again", { until: (s) => s === "succeeded" || runs > 1 })
          assert.strictEqual(runs, 1, "the job ran once")
          const info = yield* Effect.orDie(JobQueue.status(job.id))
          assert.deepStrictEqual([info.state, info.attempts], ["succeeded", 1])
          assert.isFalse(gaveUp(), "its settle was not given up")
        }).pipe(Effect.scoped, Effect.provide(Layer.merge(counting, Logger.layer([collector]))))
      }).pipe(Effect.scoped), { timeout: 90_000 })

    // The cancel subscription tries the known nodes in turn from a random one (2df18d3), each client with
    // its "error" listener (which ends the subscription) set before its connect: a node down tried
    // first fired it (a refused connect emits "error"), so the subscription made on the next node
    // ended at once, and was made again a second later, from a random node again
    it.live("the cancel subscription tried first on a node that is down: it is made on the next node and stays (it hears a PUBLISH), not ended at once by the failed connect", () =>
      Effect.gen(function*() {
        const cluster = yield* ownCluster(["--cluster-node-timeout", "120000"])
        const redis = yield* RedisClient.make({
          cluster: true,
          url: cluster.url,
          name: "effect-workpool:h44",
          connectTimeout: 2000,
          reconnect: () => 500,
          commandOptions: { timeout: 0 },
          maxReserved: 4
        })
        // the url's node: the first candidate, and the one tried first (random() = 0)
        assert.strictEqual(cluster.nodes[0]!.url, cluster.url)
        yield* Effect.promise(() => cluster.nodes[0]!.kill())
        const random = Math.random
        Math.random = () => 0
        const messages = yield* redis.subscribe("h44").pipe(Effect.ensuring(Effect.sync(() => {
          Math.random = random
        })))
        yield* Effect.promise(() => admin((client) => client.sendCommand(["PUBLISH", "h44", "hello"]), cluster.nodes[1]!.url))
        const heard = yield* Effect.exit(Queue.take(messages).pipe(Effect.timeout("10 seconds")))
        assert.strictEqual(heard._tag, "Success", `the subscription ended: ${JSON.stringify(heard)}`)
      }).pipe(Effect.scoped), { timeout: 60_000 })

    // A queue's keys were `{<prefix>:<queue>}:<suffix>`, and a task's ready set's suffix is
    // `ready:<task>`: a '}' in a queue's name let one queue's key be another queue's. Queue "a", task
    // "x}:meta": its ready set is `{p:a}:ready:x}:meta`, the meta hash of queue "a}:ready:x" (same hash
    // tag, so the same slot: no CROSSSLOT either). Each broke the other with WRONGTYPE (the enqueue on
    // queue "a" failed: its ready set was a hash), and a script that fails partway keeps what it wrote
    // before (Lua rolls nothing back). A name holding '}' now has keys `{<prefix>%<escaped>}:...`, in
    // a slot of its own hash tag (not the slot of the name before its '}')
    it.live("a task name with '}' cannot make one queue's key another queue's: queue \"a\" with task \"x}:meta\", and queue \"a}:ready:x\" configured, both work", () =>
      Effect.gen(function*() {
        const cluster = yield* ownCluster()
        const prefix = freshPrefix()
        const store = yield* storeOn(cluster, prefix)
        yield* store.configure("a}:ready:x", { paused: true })
        const made = yield* Effect.exit(store.enqueue({ ...job("a", 1), task: "x}:meta" }))
        assert.strictEqual(made._tag, "Success", "the enqueue on queue a works")
        const other = yield* store.enqueue({ ...job("a}:ready:x", 2), task: "Echo" })
        const counts = yield* store.counts("a}:ready:x")
        assert.deepStrictEqual([counts.paused, counts.waiting], [true, 1])
        assert.deepStrictEqual([(yield* store.counts("a")).paused, (yield* store.counts("a")).waiting], [false, 1])
        const claimed = yield* store.claim({ queues: ["a"], tasks: ["x}:meta"], limit: 10, lease: 60_000 })
        assert.deepStrictEqual(claimed.claims.map((claim) => [claim.job.queue, claim.job.task, claim.job.payload]), [["a", "x}:meta", JSON.stringify({ n: 1 })]])
        yield* store.configure("a}:ready:x", { paused: false })
        const second = yield* store.claim({ queues: ["a}:ready:x"], tasks: ["Echo"], limit: 10, lease: 60_000 })
        assert.deepStrictEqual(second.claims.map((claim) => claim.job.id), [other.id])
      }).pipe(Effect.scoped), { timeout: 60_000 })

    // 130fb2a: a watch's BZPOPMIN goes to its queue's node only, on a cluster client of its own that
    // connects where it is sent: the slot moved (resharded) while it blocks, the job must still wake
    // its consumer, not wait for its poll
    it.live("a consumer idle on a queue (poll 1 hour) whose slot moves to another node while its watch blocks: a job enqueued there by another process after the move wakes it", () =>
      Effect.gen(function*() {
        const cluster = yield* ownCluster()
        const prefix = freshPrefix()
        const [queue] = yield* queuePerNode(cluster, prefix)
        const name = `effect-workpool:${prefix}`
        yield* Effect.gen(function*() {
          yield* JobQueue.consume({ queues: [queue!], handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))], concurrency: 1, poll: "1 hour" })
          yield* Effect.promise(() => blocked(prefix, 1, name, cluster.nodes.map((node) => node.url)))
          const move = yield* slotMove(cluster, prefix, queue!)
          yield* Effect.promise(move.begin)
          yield* Effect.promise(move.finish)
          const producer = yield* storeOn(cluster, prefix)
          const { id } = yield* producer.enqueue(job(queue!, 1))
          yield* until(Effect.orDie(Effect.map(producer.get(id), (row) => row?.state)), (state) => state === "succeeded", "the job runs (poll 1 hour)")
        }).pipe(Effect.scoped, Effect.provide(RedisJobStore.layer({ url: cluster.url, prefix, cluster: true })))
      }).pipe(Effect.scoped), { timeout: 90_000 })

    // a watch's cluster client blocks in BZPOPMIN on its queue's master: that master failed over to its
    // replica (CLUSTER FAILOVER TAKEOVER: it turns replica, and unblocks its blocked clients), the
    // watch must follow the slot to the new master, or the consumer waits for its poll
    it.live("a consumer idle on a queue (poll 1 hour) whose master fails over to its replica while its watch blocks: a job enqueued there by another process after the failover wakes it", () =>
      Effect.gen(function*() {
        const cluster = yield* ownCluster()
        const prefix = freshPrefix()
        const [queue] = yield* queuePerNode(cluster, prefix)
        const master = cluster.nodes[0]!.url
        const replica = yield* Effect.acquireRelease(
          Effect.promise(() => redisServer.startServer(binary!, ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"], 55535)),
          (server) => Effect.promise(server.destroy)
        )
        const [host, port] = master.replace("redis://", "").split(":")
        const masterId = yield* Effect.promise(() => admin((client) => client.sendCommand(["CLUSTER", "MYID"]) as Promise<string>, master))
        yield* Effect.promise(() => admin((client) => client.sendCommand(["CLUSTER", "MEET", host!, port!]), replica.url))
        const onReplica = (command: ReadonlyArray<string>) => Effect.promise(() => admin((client) => client.sendCommand([...command]) as Promise<string>, replica.url))
        yield* waitFor(Effect.map(onReplica(["CLUSTER", "NODES"]), (nodes) => nodes.includes(masterId)), "the new node knows the master", { within: "30 seconds" })
        yield* until(Effect.exit(onReplica(["CLUSTER", "REPLICATE", masterId])), (exit) => exit._tag === "Success", "the new node replicates the master")
        yield* waitFor(Effect.map(onReplica(["INFO", "replication"]), (info) => info.includes("master_link_status:up")), "the replica is in sync", { within: "30 seconds" })
        const name = `effect-workpool:${prefix}`
        yield* Effect.gen(function*() {
          yield* JobQueue.consume({ queues: [queue!], handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))], concurrency: 1, poll: "1 hour" })
          yield* Effect.promise(() => blocked(prefix, 1, name, cluster.nodes.map((node) => node.url)))
          yield* onReplica(["CLUSTER", "FAILOVER", "TAKEOVER"])
          yield* waitFor(Effect.map(onReplica(["INFO", "replication"]), (info) => info.includes("role:master")), "the replica is the master", { within: "30 seconds" })
          const producer = yield* storeOn(cluster, prefix)
          const { id } = yield* Effect.retry(producer.enqueue(job(queue!, 1)), { schedule: Schedule.spaced("100 millis"), times: 100 })
          yield* until(Effect.orDie(Effect.map(producer.get(id), (row) => row?.state)), (state) => state === "succeeded", "the job runs (poll 1 hour)")
        }).pipe(Effect.scoped, Effect.provide(RedisJobStore.layer({ url: cluster.url, prefix, cluster: true })))
      }).pipe(Effect.scoped), { timeout: 120_000 })

    // a watch's reserved connection is a cluster client of its own (a slot that moves is followed):
    // each connected to every master, of which its BZPOPMIN uses one, so a store waiting on q queues
    // of an m-master Cluster held m + 1 + q × m sockets (3 masters, 12 queues: 40, where 16 serve)
    // a tick's id index is written before its job, in another slot: a failure in between (the
    // queue's node down as the script is sent), or a removal after a late answer that fails, leaves
    // an entry naming a queue that does not hold the id. Another queue's tick of that id was answered
    // "stored" (created: false) while no job held it: lost without a word
    it.live("an orphan entry of the id index (a tick's enqueue failing after the index's write): the id reads as missing (get, cancel, redrive), counts and purge are as without it, the tick is stored on its queue when tried again; another queue's tick of that id is not answered as stored while no job holds it (a typed failure, which the repeat retries)", () =>
      Effect.gen(function*() {
        const cluster = yield* ownCluster(["--cluster-node-timeout", "120000"])
        const prefix = freshPrefix()
        const queues = yield* queuePerNode(cluster, prefix)
        const ids = `{${prefix}}:ids`
        // the node of the index, and a queue on another
        const indexNode = yield* Effect.promise(async () => {
          const ports = cluster.nodes.map((node) => Number(node.url.split(":").at(-1)))
          const slots = await admin((client) => client.sendCommand(["CLUSTER", "SLOTS"]) as Promise<Array<[number, number, [string, number]]>>, cluster.url)
          const slot = Number(await admin((client) => client.sendCommand(["CLUSTER", "KEYSLOT", ids]), cluster.url))
          return ports.indexOf(Number(slots.find(([from, to]) => from <= slot && slot <= to)![2][1]))
        })
        const victim = (indexNode + 1) % 3
        const queue = queues[victim]!
        const other = queues[(indexNode + 2) % 3]!
        const owner = (id: string) =>
          Effect.promise(() => admin((client) => client.sendCommand(["HGET", ids, id]) as Promise<string | null>, cluster.nodes[indexNode]!.url))
        const store = yield* storeOn(cluster, prefix)
        const tick = (id: string, on: string) => newJob(on, { id, runAt: Date.now(), notAfter: Date.now() + 3_600_000 })
        // a job of its own on the queue, for counts and purge
        const kept = yield* store.enqueue(job(queue, 1))
        // the queue's node down: the enqueue fails after the index's write
        yield* Effect.promise(() => cluster.nodes[victim]!.kill())
        const failed = yield* Effect.exit(store.enqueue(tick("repeat:r:1", queue)))
        assert.isTrue(failed._tag === "Failure", String(failed))
        assert.strictEqual(yield* owner("repeat:r:1"), queue, "the orphan entry")
        yield* Effect.promise(() => cluster.nodes[victim]!.start())
        // what a user sees of the id: a missing job (the client reconnects first)
        assert.isUndefined(yield* store.get("repeat:r:1").pipe(Effect.retry({ times: 100, schedule: Schedule.spaced("100 millis") })))
        assert.strictEqual(yield* store.cancel("repeat:r:1"), "missing")
        assert.isFalse(yield* store.redrive("repeat:r:1"))
        const counts = yield* store.counts(queue)
        assert.deepStrictEqual([counts.waiting, counts.running, counts.succeeded], [1, 0, 0])
        // purge: the queue's own jobs only (the entry stays: it names no job)
        const { claims } = yield* store.claim({ queues: [queue], tasks: ["Echo"], limit: 1, lease: 60_000 })
        assert.deepStrictEqual(claims.map((claim) => claim.job.id), [kept.id])
        assert.isTrue(yield* store.settle(claims[0]!.token, { _tag: "Final", state: "succeeded", exit: "{}" }))
        assert.strictEqual(yield* store.purge(Date.now() + 60_000, ["succeeded"]), 1)
        // another queue's tick of that id: not "stored" while no job holds it
        const elsewhere = yield* Effect.exit(store.enqueue(tick("repeat:r:1", other)))
        assert.isTrue(elsewhere._tag === "Failure" && Cause.squash(elsewhere.cause) instanceof StoreError, `another queue's tick: ${String(elsewhere)}`)
        assert.isUndefined(yield* store.get("repeat:r:1"))
        // the tick tried again on its queue: stored, the entry now true
        assert.deepStrictEqual(yield* store.enqueue(tick("repeat:r:1", queue)), { id: "repeat:r:1", created: true })
        assert.strictEqual((yield* store.get("repeat:r:1"))?.state, "queued")
        // and now another queue's tick of it is answered with that job, as before
        assert.deepStrictEqual(yield* store.enqueue(tick("repeat:r:1", other)), { id: "repeat:r:1", created: false })
      }).pipe(Effect.scoped), { timeout: 90_000 })

    // node-redis sends a command without a key to each node in turn: the store's time (its TIME)
    // followed each node's clock in turn, once a second, so with clocks apart its lease countdown,
    // purge's cut-off and a repeat's ticks jumped back and forth by their difference
    it.live("the store's time on a Cluster is one node's clock: every TIME it asks goes to the same node", () =>
      Effect.gen(function*() {
        const cluster = yield* ownCluster()
        const prefix = freshPrefix()
        const store = Context.get(yield* Layer.build(RedisJobStore.layer({ url: cluster.url, prefix, cluster: true })), JobStore.JobStore)
        // the TIME commands each node ran, sent alone or by a script
        const timeCalls = Effect.promise(() =>
          Promise.all(cluster.nodes.map((node) =>
            admin(async (client) => Number(/cmdstat_time:calls=(\d+)/.exec(await client.sendCommand(["INFO", "commandstats"]) as string)?.[1] ?? 0), node.url)
          ))
        )
        // the store asks in the background, at most once a second, when its time is read
        const calls = yield* waitFor(Effect.andThen(store.now, timeCalls), "the store's time asked of the server 5 times", {
          until: (calls) => calls.reduce((a, b) => a + b, 0) >= 5,
          within: "30 seconds"
        })
        assert.strictEqual(calls.filter((n) => n > 0).length, 1, `TIME calls per node: ${calls}`)
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("a store on a Cluster of three masters, its consumer idle on two queues of each node: its connections are one per master, its cancel subscription's, and one per watched queue on that queue's node, not one to every master per watch", () =>
      Effect.gen(function*() {
        const cluster = yield* ownCluster()
        const prefix = freshPrefix()
        const ports = cluster.nodes.map((node) => Number(node.url.split(":").at(-1)))
        // two queues on each node
        const watched = yield* Effect.promise(async () => {
          const slots = await admin((client) => client.sendCommand(["CLUSTER", "SLOTS"]) as Promise<Array<[number, number, [string, number]]>>, cluster.url)
          const found: Array<Array<string>> = cluster.nodes.map(() => [])
          for (let n = 0; found.some((queues) => queues.length < 2); n++) {
            const queue = `q${n}`
            const slot = Number(await admin((client) => client.sendCommand(["CLUSTER", "KEYSLOT", `{${prefix}:${queue}}:meta`]), cluster.url))
            const node = ports.indexOf(Number(slots.find(([from, to]) => from <= slot && slot <= to)![2][1]))
            if (found[node]!.length < 2) found[node]!.push(queue)
          }
          return found.flat()
        })
        const name = `effect-workpool:${prefix}`
        const connections = Effect.promise(() =>
          Promise.all(cluster.nodes.map((node) => admin(async (client) => (await client.clientList()).filter((c) => c.name === name).length, node.url)))
        )
        yield* Effect.gen(function*() {
          yield* JobQueue.consume({ queues: watched, handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))], concurrency: 1, poll: "1 hour" })
          yield* Effect.promise(() => blocked(prefix, watched.length, name, cluster.nodes.map((node) => node.url)))
          // each node: its master connection and its two watches, and one of them the subscription's
          const counts = yield* waitFor(connections, "the store's connections settle (a discovery's closed)", {
            until: (counts) => counts.reduce((a, b) => a + b, 0) === 3 + 1 + watched.length,
            within: "10 seconds"
          })
          assert.deepStrictEqual([...counts].sort(), [3, 3, 4], `connections per node: ${counts}`)
          // the watches still wake their consumer: a job on each queue runs
          const producer = yield* storeOn(cluster, prefix)
          const jobs = yield* Effect.forEach(watched, (queue, n) => producer.enqueue(job(queue, n)))
          for (const { id } of jobs) {
            yield* until(Effect.orDie(Effect.map(producer.get(id), (row) => row?.state)), (state) => state === "succeeded", "a job of each watched queue runs (poll 1 hour)")
          }
        }).pipe(Effect.scoped, Effect.provide(RedisJobStore.layer({ url: cluster.url, prefix, cluster: true })))
      }).pipe(Effect.scoped), { timeout: 90_000 })
  })
}
