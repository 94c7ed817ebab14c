/**
 * Hostile tests of what a long-lived process accumulates: durable consumers polling for weeks, stores
 * reconnecting after server restarts, pools and consumers made and closed per request. Each asserts on
 * counts (timers, sockets, server connections, metric series) or on bytes per operation with a
 * generous bound, never on an exact heap size.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Metric, Redacted, References, Schedule, Schema } from "effect"
import { TestClock } from "effect/testing"
import { PgClient } from "@effect/sql-pg"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import { createClient } from "redis"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as RedisJobStore from "../src/RedisJobStore.ts"
import * as PgJobStore from "../src/PgJobStore.ts"
import * as Sqlite from "../src/internal/store/sqlite.ts"
import type { Store } from "../src/internal/store/model.ts"
import * as Memory from "../src/internal/store/memory.ts"
import * as Task from "../src/Task.ts"
import * as WorkPool from "../src/WorkPool.ts"
import * as Rd from "./durable/redis.ts"
import * as RedisServer from "./durable/redisserver.ts"
import * as PgServer from "./durable/pgserver.ts"
import { settle } from "./helpers.ts"

setFlagsFromString("--expose-gc")
const gc: () => void = runInNewContext("gc")
/** The heap in use after full collections. */
const heap = () => {
  for (let i = 0; i < 4; i++) gc()
  return process.memoryUsage().heapUsed
}
/** The process's active handles and requests of each kind (timers, sockets, ...). */
const resources = () => {
  const counts: Record<string, number> = {}
  for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1
  return counts
}
/** Collects MaxListenersExceededWarning (and any other process warning) for the test's duration. */
const processWarnings = Effect.acquireRelease(
  Effect.sync(() => {
    const seen: Array<string> = []
    const onWarning = (warning: Error) => void seen.push(`${warning.name}: ${warning.message}`)
    process.on("warning", onWarning)
    return { seen, onWarning }
  }),
  ({ onWarning }) => Effect.sync(() => void process.off("warning", onWarning))
)

const Echo = Task.make("Echo", { payload: Schema.Struct({ n: Schema.Number }), success: Schema.Number })
const echo = Task.handle(Echo, ({ n }) => Effect.succeed(n))

/** The memory store, counting its claims. */
let claims = 0
const counting = (store: Store): Store => ({
  ...store,
  claim: (request) => Effect.suspend(() => (claims++, store.claim(request)))
})
const countingMemory = Layer.effect(JobStore.JobStore, Effect.map(Memory.make, counting))
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wp-leaks-hostile-"))
let files = 0
const sqliteFile = () => path.join(dir, `jobs-${++files}.db`)

/** The pool series in the metric registry (`workpool_*`). */
const poolSeries = Effect.map(Metric.snapshot, (all) => all.filter((m) => m.id.startsWith("workpool_")).length)

describe("pools and consumers made and closed per request", () => {
  it.effect("1,000 pools, each running a job, then closed: no metric series left, and the heap no larger by more than 1 KB a pool", () =>
    Effect.gen(function*() {
      const once = (i: number) =>
        Effect.gen(function*() {
          const pool = yield* WorkPool.make({ concurrency: 2, name: `request-${i}` })
          assert.strictEqual(yield* pool.run(Effect.succeed(i)), i)
          return yield* poolSeries
        }).pipe(Effect.scoped)
      for (let i = 0; i < 50; i++) yield* once(i)
      const before = heap()
      let open = 0
      for (let i = 0; i < 1000; i++) open = yield* once(i)
      const after = heap()
      assert.isAbove(open, 0, "a pool's series are in the registry while it is open")
      assert.strictEqual(yield* poolSeries, 0, "and go with it")
      assert.isBelow((after - before) / 1000, 1024, `bytes per pool (${before} -> ${after})`)
    }), { timeout: 60_000 })

  it.effect("1,000 consumers on one memory store, each running a job, then closed: the heap no larger by more than 1 KB a consumer, no timer left", () =>
    Effect.gen(function*() {
      const once = (n: number) =>
        Effect.gen(function*() {
          yield* JobQueue.consume({ handlers: [echo], concurrency: 2 })
          const job = yield* JobQueue.enqueue(Echo, { n })
          assert.strictEqual(yield* job.await, n)
        }).pipe(Effect.scoped)
      // the ended jobs (the store keeps them until purged): older than 0 once the TestClock moves
      const purge = Effect.andThen(TestClock.adjust(1), JobQueue.purge({ olderThan: 0 }))
      for (let i = 0; i < 50; i++) yield* once(i)
      yield* purge
      const before = heap()
      const timers = resources()["Timeout"] ?? 0
      for (let i = 0; i < 1000; i++) yield* once(i)
      yield* purge
      const after = heap()
      assert.isBelow((after - before) / 1000, 1024, `bytes per consumer (${before} -> ${after})`)
      assert.isAtMost(resources()["Timeout"] ?? 0, timers + 2, "no timer left per consumer")
    }).pipe(Effect.provide(JobStore.memory())), { timeout: 60_000 })
})

describe("an idle consumer polling for a long time", () => {
  it.effect("100,000 polls (a day at 1 s) under TestClock leave the heap and the timers where a few polls left them", () =>
    idlePolls(100_000).pipe(Effect.provide(countingMemory)), { timeout: 60_000 })

  // the SQLite store arms a watch of the WAL file while a consumer waits (fs.watch): one per poll
  // left open would be an inotify watch and a handle per poll
  it.effect("the SQLite store: 20,000 polls leave no file watch or timer behind, and cost the heap nothing per poll", () =>
    idlePolls(20_000).pipe(
      Effect.provide(Layer.effect(JobStore.JobStore, Effect.map(Sqlite.make({ filename: sqliteFile(), busyTimeout: 5000 }), counting)))
    ), { timeout: 60_000 })
})

const idlePolls = (polls: number) =>
    Effect.gen(function*() {
      yield* JobQueue.consume({ handlers: [echo], concurrency: 4, poll: "1 second" })
      yield* settle
      for (let i = 0; i < 100; i++) yield* TestClock.adjust(1000)
      const before = heap()
      const timers = resources()["Timeout"] ?? 0
      const watches = resources()["FSEventWrap"] ?? 0
      claims = 0
      for (let i = 0; i < polls; i++) {
        yield* TestClock.adjust(1000)
      }
      const after = heap()
      // a job still runs after a day of polls
      const job = yield* JobQueue.enqueue(Echo, { n: 5 })
      assert.strictEqual(yield* job.await, 5)
      assert.isAtLeast(claims, polls, "a claim per poll")
      assert.isBelow((after - before) / polls, 20, `bytes per poll (${before} -> ${after})`)
      assert.isAtMost(resources()["Timeout"] ?? 0, timers + 2, "no timer left per poll")
      assert.isAtMost(resources()["FSEventWrap"] ?? 0, Math.max(watches, 1), "no file watch left per poll")
    }).pipe(Effect.scoped)

/** The connections a Redis server has, but the one asking (CLIENT LIST). */
const redisClients = (url: string) =>
  Effect.promise(async () => {
    const client = createClient({ url, RESP: 2 })
    client.on("error", () => {})
    await client.connect()
    try {
      const list = (await client.sendCommand(["CLIENT", "LIST"])) as string
      return list.trim().split("\n").length - 1
    } finally {
      client.destroy()
    }
  })

describe.runIf(RedisServer.binary() !== undefined)("a Redis store through its server's restarts", () => {
  // each restart drops the store's connections (commands, the marker watch's blocking BZPOPMIN, the
  // cancel subscription): a client, a listener or a timer kept per reconnect would pile up here
  it.live("20 restarts (SIGKILL) of its own server: a job runs after each; the store's connections, the process's sockets and timers stay as many as before, no MaxListenersExceededWarning, none left after close", () =>
    Effect.gen(function*() {
      const server = yield* Effect.acquireRelease(
        Effect.promise(() => RedisServer.startServer(RedisServer.binary()!)),
        (s) => Effect.promise(s.destroy)
      )
      const warned = yield* processWarnings
      const layer = RedisJobStore.layer({ url: server.url, prefix: "leaks" })
      const counts = yield* Effect.gen(function*() {
        yield* JobQueue.consume({ handlers: [echo], concurrency: 4, poll: "100 millis", lease: "3 seconds" })
        const one = (n: number) =>
          Effect.gen(function*() {
            const job = yield* JobQueue.enqueue(Echo, { n })
            return yield* job.await
          }).pipe(Effect.retry({ schedule: Schedule.spaced(100), times: 300 }))
        assert.strictEqual(yield* one(0), 0)
        // the store's connections once settled: those of a running consumer, idle
        const settled = Effect.gen(function*() {
          yield* Effect.sleep(300)
          return { clients: yield* redisClients(server.url), sockets: resources()["TCPSocketWrap"] ?? 0, timers: resources()["Timeout"] ?? 0 }
        })
        const before = yield* settled
        for (let i = 1; i <= 20; i++) {
          yield* Effect.promise(() => server.kill())
          yield* Effect.promise(() => server.start())
          assert.strictEqual(yield* one(i), i)
        }
        const after = yield* settled
        return { before, after }
      }).pipe(Effect.scoped, Effect.provide(layer), Effect.provideService(References.MinimumLogLevel, "Error"))
      // one kept per restart would be 20
      assert.isAtMost(counts.after.clients, counts.before.clients + 1, JSON.stringify(counts))
      assert.isAtMost(counts.after.sockets, counts.before.sockets + 1, JSON.stringify(counts))
      assert.isAtMost(counts.after.timers, counts.before.timers + 4, JSON.stringify(counts))
      assert.deepStrictEqual(warned.seen.filter((w) => w.includes("MaxListeners")), [])
      assert.strictEqual(yield* redisClients(server.url), 0, "the store's connections closed with it")
    }).pipe(Effect.scoped), { timeout: 60_000 })
})

/** The client sessions a Postgres server has, but the one asking, and how many of them last ran a LISTEN. */
const pgSessions = (url: string) =>
  Effect.promise(() =>
    Effect.runPromise(
      Effect.scoped(Effect.flatMap(PgClient.make({ url: Redacted.make(url), maxConnections: 1 }), (sql) =>
        sql<{ n: number; listening: number }>`SELECT count(*)::int AS n,
          (count(*) FILTER (WHERE query LIKE 'LISTEN%'))::int AS listening FROM pg_stat_activity
          WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()`)).pipe(
        Effect.provideServiceEffect(Reactivity.Reactivity, Reactivity.make)
      )
    )
  ).pipe(Effect.map((rows) => rows[0]!))

describe.runIf(PgServer.binaries() !== undefined)("a Postgres store through its server's restarts", () => {
  // each restart ends the pool's connections and the listener's session (LISTEN): a session, a
  // socket or a timer kept per reconnect would pile up here
  it.live("20 restarts of its own server: a job runs after each; the server's sessions (one listener among them), the process's sockets and timers stay as many as before, no MaxListenersExceededWarning, none left after close", () =>
    Effect.gen(function*() {
      const server = yield* Effect.acquireRelease(
        Effect.promise(() => PgServer.startServer(PgServer.binaries()!)),
        (s) => Effect.promise(s.destroy)
      )
      const warned = yield* processWarnings
      const layer = PgJobStore.layer({ url: server.url, schema: "leaks" })
      const counts = yield* Effect.gen(function*() {
        yield* JobQueue.consume({ handlers: [echo], concurrency: 4, poll: "100 millis", lease: "3 seconds" })
        const one = (n: number) =>
          Effect.gen(function*() {
            const job = yield* JobQueue.enqueue(Echo, { n })
            return yield* job.await
          }).pipe(Effect.retry({ schedule: Schedule.spaced(100), times: 300 }))
        assert.strictEqual(yield* one(0), 0)
        // once the listener is back (it starts over 1 s after its session is lost), and a moment more
        const settled = Effect.gen(function*() {
          for (let i = 0; i < 100 && (yield* pgSessions(server.url)).listening === 0; i++) yield* Effect.sleep(100)
          yield* Effect.sleep(500)
          return { ...(yield* pgSessions(server.url)), sockets: resources()["TCPSocketWrap"] ?? 0, timers: resources()["Timeout"] ?? 0 }
        })
        const before = yield* settled
        for (let i = 1; i <= 20; i++) {
          yield* Effect.promise(() => server.stop())
          yield* Effect.promise(() => server.start())
          assert.strictEqual(yield* one(i), i)
        }
        const after = yield* settled
        return { before, after }
      }).pipe(Effect.scoped, Effect.provide(layer), Effect.provideService(References.MinimumLogLevel, "Error"))
      // a pool's idle sessions vary by a few; one kept per restart would be 20
      assert.isAtMost(counts.after.n, counts.before.n + 3, JSON.stringify(counts))
      assert.strictEqual(counts.after.listening, 1, JSON.stringify(counts))
      assert.isAtMost(counts.after.sockets, counts.before.sockets + 3, JSON.stringify(counts))
      assert.isAtMost(counts.after.timers, counts.before.timers + 4, JSON.stringify(counts))
      assert.deepStrictEqual(warned.seen.filter((w) => w.includes("MaxListeners")), [])
      assert.strictEqual((yield* pgSessions(server.url)).n, 0, "the store's sessions closed with it")
    }).pipe(Effect.scoped), { timeout: 60_000 })
})

/** The connections of a Redis store of `prefix` on the shared test server (its clients' name). */
const storeClients = (prefix: string) =>
  Effect.promise(() =>
    Rd.admin(async (client) => {
      const list = (await client.sendCommand(["CLIENT", "LIST"])) as string
      return list.split("\n").filter((line) => line.includes(`name=effect-workpool:${prefix} `)).length
    })
  )

describe.runIf(Rd.enabled)("a Redis store whose consumers come and go on queues of their own", () => {
  // BUG (fixed): each queue an idle consumer ever waited on kept its marker watch (a reserved
  // connection, blocked in BZPOPMIN, and a 60 s timer while idle) for the store's life, after its last
  // consumer had gone: a store serving a queue per tenant or per request held a server connection
  // per queue ever consumed (Redis refuses clients past maxclients, 10,000 by default), where the
  // Postgres store stops hearing a queue 1 s after its last consumer stops waiting
  it.live("40 consumers of 40 queues made and closed one after the other: the store's connections come back to as many as one consumer's", () =>
    Effect.gen(function*() {
      const prefix = Rd.freshPrefix()
      const counts = yield* Effect.gen(function*() {
        const round = (i: number) =>
          Effect.gen(function*() {
            const queue = `tenant-${i}`
            yield* JobQueue.consume({ queues: [queue], handlers: [echo], concurrency: 1 })
            const job = yield* JobQueue.enqueue(Echo, { n: i }, { queue })
            assert.strictEqual(yield* job.await, i)
            // until its consumer waits idle on the queue's marker (its watch's BZPOPMIN)
            yield* Effect.promise(() => Rd.blocked(prefix, 1))
          }).pipe(Effect.scoped)
        yield* round(0)
        const one = yield* storeClients(prefix)
        for (let i = 1; i < 40; i++) yield* round(i)
        const peak = yield* storeClients(prefix)
        // a watch ends within a BZPOPMIN (5 s) and a linger (5 s) after its queue's last consumer, its connection 1 s later
        let now = peak
        for (let i = 0; i < 250 && now > one; i++) {
          yield* Effect.sleep(100)
          now = yield* storeClients(prefix)
        }
        return { one, peak, now, sockets: resources()["TCPSocketWrap"] ?? 0, timers: resources()["Timeout"] ?? 0 }
      }).pipe(Effect.scoped, Effect.provide(RedisJobStore.layer({ url: Rd.url!, prefix })))
      assert.isAtMost(counts.now, counts.one, JSON.stringify(counts))
      assert.isBelow(counts.sockets, 20, JSON.stringify(counts))
      assert.isBelow(counts.timers, 20, JSON.stringify(counts))
    }), { timeout: 60_000 })
})
