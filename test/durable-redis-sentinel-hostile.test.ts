/**
 * The Redis store through Redis Sentinel: a primary, its replica and sentinels, each a private
 * server started here (never the shared one), and what a failover does to the store's jobs: a
 * `SENTINEL FAILOVER` and a kill -9 of the primary under idle consumers (blocked in BZPOPMIN),
 * running jobs and producers, and the writes asynchronous replication loses. Every wait is for an
 * event (the sentinel's `+switch-master`, a `ROLE` answer, a job's state), never a fixed sleep.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber, Layer, Queue, Redacted, Schedule, Schema, Scope } from "effect"
import { createServer, type Socket } from "node:net"
import { createClient } from "redis"
import { afterAll, beforeAll } from "vitest"
import { StoreError } from "../src/DurableError.ts"
import * as RedisStore from "../src/internal/store/redis.ts"
import * as RedisClient from "../src/internal/store/redisClient.ts"
import * as RedisSentinel from "../src/internal/store/redisSentinel.ts"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as RedisJobStore from "../src/RedisJobStore.ts"
import * as Task from "../src/Task.ts"
import { conformance, Echo } from "./durable/conformance.ts"
import { admin, blocked, freshPrefix, ownServer, until } from "./durable/redis.ts"
import * as redisServer from "./durable/redisserver.ts"
import { waitFor } from "./helpers.ts"

const binary = redisServer.binary()
if (binary === undefined && process.env.CI === "true") {
  throw new Error("no redis-server (apt-get install redis-server, or set WORKPOOL_REDIS_BIN): under CI=true the Sentinel tests must run")
}

/** A group of its own (a primary, a replica, `sentinels` sentinels), destroyed with the test's scope. */
const ownGroup = (sentinels = 1, args: ReadonlyArray<string> = []) =>
  Effect.acquireRelease(
    Effect.promise(() => redisServer.startSentinelGroup(binary!, sentinels, args)),
    (group) => Effect.promise(group.destroy)
  )

const sentinelOptions = (group: redisServer.SentinelGroup): RedisJobStore.RedisSentinelOptions => ({
  name: group.name,
  sentinels: group.sentinels
})

/** The store through `group`'s sentinels, its time from the Effect Clock (as the conformance suite wants). */
const testLayer = (group: () => redisServer.SentinelGroup, prefix = freshPrefix()): Layer.Layer<JobStore.JobStore, any> =>
  Layer.effect(
    JobStore.JobStore,
    Effect.suspend(() =>
      Effect.flatMap(RedisStore.options({ sentinel: sentinelOptions(group()), prefix }), (cfg) => RedisStore.open({ ...cfg, clock: "effect" }))
    )
  )

/** What `ROLE` says the server at `url` is: "master", "slave", or the error of a server down. */
const roleOf = (url: string) =>
  Effect.promise(() =>
    admin((client) => client.sendCommand(["ROLE"]) as Promise<Array<unknown>>, url).then((role) => String(role[0]), (error) => `down: ${error}`)
  )

/**
 * Listens on `sentinel` for `+switch-master` (subscribed before it returns): `switched` resolves
 * with the new primary's URL once the sentinel announces it.
 */
const switchMaster = (sentinel: string) =>
  Effect.gen(function*() {
    const announced = yield* Deferred.make<string>()
    const client = createClient({ url: sentinel, RESP: 2 })
    client.on("error", () => {})
    yield* Effect.acquireRelease(
      Effect.promise(async () => {
        await client.connect()
        // "<name> <old ip> <old port> <new ip> <new port>"
        await client.subscribe("+switch-master", (message) => {
          const [, , , host, port] = message.split(" ")
          Deferred.doneUnsafe(announced, Exit.succeed(`redis://${host}:${port}`))
        })
        return client
      }),
      (client) => Effect.sync(() => client.destroy())
    )
    return { switched: Deferred.await(announced) }
  })

/** Sends `command` to the sentinel at `url`. */
const askSentinel = (url: string, ...command: Array<string>) => Effect.promise(() => admin((client) => client.sendCommand(command), url))

/** The sentinel at `url`'s CLIENT LIST. */
const sentinelClients = (url: string) => Effect.map(askSentinel(url, "CLIENT", "LIST"), String)

/** `effect` again while it fails with StoreError (a failover under way), up to 40 times 250 ms apart: how many failed. */
const throughFailover = <A, E>(effect: Effect.Effect<A, E, JobStore.JobStore>) =>
  Effect.gen(function*() {
    let failed = 0
    const value = yield* effect.pipe(
      Effect.tapError((error) => Effect.sync(() => void (error instanceof StoreError && failed++))),
      Effect.retry({ while: (error) => error instanceof StoreError, schedule: Schedule.spaced("250 millis"), times: 40 })
    )
    return { value, failed }
  })


/**
 * A stand-in sentinel on a free loopback port: it answers `SENTINEL GET-MASTER-ADDR-BY-NAME` with
 * whatever `names()` says, once it says it (a server a real sentinel would not name: a replica, a
 * demoted primary; or a late answer),
 * subscribes to `SUBSCRIBE` (`announce` sends each subscriber a `+switch-master` message, as a
 * sentinel does after a failover), and `+OK` to anything else (the client's handshake). Closed with
 * the test's scope.
 */
const fakeSentinel = (names: () => string | Promise<string>) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      new Promise<{ url: string; close: () => void; subscribers: () => number; announce: (message: string) => void }>((resolve) => {
        const subscribers = new Set<Socket>()
        const bulk = (word: string) => `$${Buffer.byteLength(word)}\r\n${word}\r\n`
        const server = createServer((socket) => {
          socket.on("close", () => subscribers.delete(socket))
          // replies in the order of the commands, a late answer's too
          let replied = Promise.resolve()
          const reply = (text: () => string | Promise<string>) => {
            replied = replied.then(async () => void socket.write(await text()))
          }
          let buffered = ""
          socket.on("error", () => {})
          socket.on("data", (data) => {
            buffered += data.toString()
            // whole commands only: *<n>\r\n then n × $<len>\r\n<word>\r\n
            while (true) {
              const words: Array<string> = []
              const head = /^\*(\d+)\r\n/.exec(buffered)
              if (head === null) return
              let at = head[0].length
              for (let i = 0; i < Number(head[1]); i++) {
                const size = /^\$(\d+)\r\n/.exec(buffered.slice(at))
                if (size === null || buffered.length < at + size[0].length + Number(size[1]) + 2) return
                at += size[0].length
                words.push(buffered.slice(at, at + Number(size[1])))
                at += Number(size[1]) + 2
              }
              buffered = buffered.slice(at)
              if (words[0]?.toUpperCase() === "SENTINEL") {
                const named = names()
                reply(async () => {
                  const [host, port] = (await named).replace("redis://", "").split(":") as [string, string]
                  return `*2\r\n${bulk(host)}${bulk(port)}`
                })
              } else if (words[0]?.toUpperCase() === "SUBSCRIBE") {
                subscribers.add(socket)
                reply(() => `*3\r\n${bulk("subscribe")}${bulk(words[1] ?? "")}:1\r\n`)
              } else reply(() => "+OK\r\n")
            }
          })
        })
        server.listen(0, "127.0.0.1", () => {
          const address = server.address() as { port: number }
          resolve({
            url: `redis://127.0.0.1:${address.port}`,
            close: () => {
              for (const socket of subscribers) socket.destroy()
              server.close()
            },
            subscribers: () => subscribers.size,
            announce: (message) => {
              for (const socket of subscribers) socket.write(`*3\r\n${bulk("message")}${bulk("+switch-master")}${bulk(message)}`)
            }
          })
        })
      })
    ),
    (fake) => Effect.sync(fake.close)
  )

/** A job that runs until it is released (or cancelled): each start counted by its payload. */
const Hold = Task.make("Hold", { payload: Schema.String, success: Schema.String })

const holding = () => {
  const starts = new Map<string, number>()
  const interrupted = new Set<string>()
  const releases = new Map<string, Deferred.Deferred<void>>()
  const gate = (name: string) => {
    let gate = releases.get(name)
    if (gate === undefined) releases.set(name, gate = Deferred.makeUnsafe<void>())
    return gate
  }
  const handler = Task.handle(Hold, (name) =>
    Effect.gen(function*() {
      starts.set(name, (starts.get(name) ?? 0) + 1)
      yield* Deferred.await(gate(name))
      return name
    }).pipe(Effect.onInterrupt(() => Effect.sync(() => interrupted.add(name)))))
  return { starts, interrupted, handler, release: (name: string) => Deferred.succeed(gate(name), undefined) }
}

if (binary === undefined) describe.skip("the Redis store through Sentinel (no redis-server binary)", () => {})
else {
  describe("the Redis store's sentinel option", () => {
    const openError = (options: Record<string, unknown>) =>
      Effect.flip(Effect.flatMap(RedisStore.options(options as never), RedisStore.open)).pipe(Effect.scoped)
    const rejects: ReadonlyArray<[string, Record<string, unknown>, RegExp]> = [
      ["url and sentinel", { url: "redis://h:6379", sentinel: { name: "m", sentinels: ["redis://s:26379"] } }, /url or sentinel, not both/],
      ["cluster and sentinel", { cluster: true, sentinel: { name: "m", sentinels: ["redis://s:26379"] } }, /no cluster with sentinel/],
      ["neither url nor sentinel", {}, /or sentinel: \{ name, sentinels \}/],
      ["no sentinels", { sentinel: { name: "m", sentinels: [] } }, /1 to 100 sentinel URLs/],
      ["sentinels not a list", { sentinel: { name: "m", sentinels: "redis://s:26379" } }, /1 to 100 sentinel URLs/],
      ["a sentinel not a URL", { sentinel: { name: "m", sentinels: ["redis://s:26379", "s:26379"] } }, /sentinel\.sentinels\[1\].*redis:\/\/ or rediss:\/\//],
      ["a database in a sentinel's URL", { sentinel: { name: "m", sentinels: ["redis://s:26379/2"] } }, /no database after a sentinel's host/],
      ["mixed schemes", { sentinel: { name: "m", sentinels: ["redis://a:26379", "rediss://b:26379"] } }, /one scheme/],
      ["no name", { sentinel: { sentinels: ["redis://s:26379"] } }, /sentinel\.name.*monitor/],
      ["a name with a space", { sentinel: { name: "my master", sentinels: ["redis://s:26379"] } }, /without spaces/],
      ["an empty password", { sentinel: { name: "m", sentinels: ["redis://s:26379"], password: Redacted.make("") } }, /sentinel\.password/],
      ["a negative database", { sentinel: { name: "m", sentinels: ["redis://s:26379"], database: -1 } }, /sentinel\.database/],
      ["ioredis' sentinel key", { sentinel: { name: "m", sentinelRootNodes: [] } }, /sentinel\.sentinelRootNodes.*use sentinels/],
      ["ioredis' top-level sentinels", { sentinels: [{ host: "s", port: 26379 }], name: "m" }, /sentinels.*use sentinel/]
    ]
    for (const [what, options, reason] of rejects) {
      it.effect(`${what}: StoreError naming the field`, () =>
        Effect.gen(function*() {
          const error = yield* openError(options)
          assert.instanceOf(error, StoreError)
          assert.match(error.reason, reason)
        }))
    }

    it.effect("a sentinel's password is never in an error", () =>
      Effect.gen(function*() {
        const error = yield* openError({ sentinel: { name: "m", sentinels: ["redis://:hunter2@s:26379", "redis://:hunter2@s:99999"] } })
        assert.notInclude(error.reason, "hunter2")
        const down = yield* openError({ sentinel: { name: "m", sentinels: ["redis://:hunter2@127.0.0.1:1"], password: "hunter3" }, connectTimeout: "2 seconds" })
        assert.match(down.reason, /no sentinel named the primary "m" \(sentinel 127\.0\.0\.1:1:/)
        assert.notInclude(down.reason, "hunter")
      }))
  })

  let shared: redisServer.SentinelGroup | undefined
  beforeAll(async () => {
    // no failover here (the conformance suite's): a pause of the busy machine must not start one
    shared = await redisServer.startSentinelGroup(binary, 1, [], 60_000)
  }, 120_000)
  afterAll(() => shared?.destroy())

  conformance("Redis through Sentinel", () => testLayer(() => shared!))

  describe("the Redis store through Sentinel", () => {
    it.live("opens through the first sentinel that answers (one down before it), runs jobs; a name no sentinel monitors fails the open with StoreError at once", () =>
      Effect.gen(function*() {
        const group = shared!
        const layer = RedisJobStore.layer({ sentinel: { name: group.name, sentinels: ["redis://127.0.0.1:1", ...group.sentinels] }, prefix: freshPrefix() })
        const result = yield* Effect.gen(function*() {
          yield* JobQueue.consume({ handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n * 2))], concurrency: 2 }).pipe(Effect.forkScoped)
          const handle = yield* JobQueue.enqueue(Echo, { n: 21 })
          return yield* handle.await
        }).pipe(Effect.scoped, Effect.provide(layer))
        assert.strictEqual(result, 42)
        const started = Date.now()
        const unknown = yield* Effect.flip(Layer.build(RedisJobStore.layer({ sentinel: { name: "nobody", sentinels: group.sentinels } })))
        assert.instanceOf(unknown, StoreError)
        assert.match(unknown.reason, /monitors no primary named "nobody"/)
        assert.isBelow(Date.now() - started, 5_000)
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("a server the sentinels name that is not a primary (ROLE says slave: a failover under way) is not written to: the open fails with StoreError saying so", () =>
      Effect.gen(function*() {
        const primary = yield* ownServer()
        const replica = yield* ownServer(["--replicaof", "127.0.0.1", primary.url.split(":").at(-1)!])
        const fake = yield* fakeSentinel(() => replica.url)
        const error = yield* Effect.flip(Layer.build(RedisJobStore.layer({ sentinel: { name: "m", sentinels: [fake.url] }, prefix: freshPrefix() })))
        assert.instanceOf(error, StoreError)
        assert.match(error.reason, /says it is a slave \(a failover under way\)/)
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("a sentinel that names a replica (lost its quorum: a stale primary) or answers garbage, listed before the good ones: the store opens through the next sentinel; every sentinel wrong fails the open with each one's reason", () =>
      Effect.gen(function*() {
        const group = shared!
        const stale = yield* fakeSentinel(() => group.nodes[1]!.url)
        const garbage = yield* fakeSentinel(() => "127.0.0.1:notaport")
        const result = yield* Effect.gen(function*() {
          yield* JobQueue.consume({ handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n * 2))], concurrency: 1 }).pipe(Effect.forkScoped)
          return yield* (yield* JobQueue.enqueue(Echo, { n: 4 })).await
        }).pipe(
          Effect.scoped,
          Effect.provide(RedisJobStore.layer({ sentinel: { name: group.name, sentinels: [stale.url, garbage.url, ...group.sentinels] }, prefix: freshPrefix() }))
        )
        assert.strictEqual(result, 8)
        const error = yield* Effect.flip(Layer.build(RedisJobStore.layer({ sentinel: { name: group.name, sentinels: [stale.url, garbage.url] } })))
        assert.instanceOf(error, StoreError)
        assert.match(error.reason, /says it is a slave/)
        assert.match(error.reason, /answered no address: "127\.0\.0\.1" "notaport"/)
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("no primary at all (primary and replica killed): a consumer's store closes within seconds, its watch, cancel subscription and sentinel listener ended", () =>
      Effect.gen(function*() {
        const group = yield* ownGroup()
        const closed = yield* Effect.gen(function*() {
          const scope = yield* Scope.make()
          const store = yield* Layer.buildWithScope(RedisJobStore.layer({ sentinel: sentinelOptions(group), prefix: freshPrefix(), connectTimeout: "2 seconds" }), scope)
          yield* Effect.gen(function*() {
            yield* JobQueue.consume({ handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))], concurrency: 2 }).pipe(Effect.forkIn(scope))
            assert.strictEqual(yield* (yield* JobQueue.enqueue(Echo, { n: 1 })).await, 1)
          }).pipe(Effect.provide(store))
          const listening = yield* sentinelClients(group.sentinels[0]!)
          assert.match(listening, /cmd=subscribe/, "the store listens on the sentinel")
          yield* Effect.promise(() => Promise.all(group.nodes.map((node) => node.kill())))
          const started = Date.now()
          yield* Effect.timeout(Scope.close(scope, Exit.void), "60 seconds")
          return Date.now() - started
        })
        assert.isBelow(closed, 15_000, "the close is bounded")
        const clients = yield* sentinelClients(group.sentinels[0]!)
        assert.notMatch(clients, /cmd=subscribe/, "no sentinel listener left")
      }).pipe(Effect.scoped), { timeout: 120_000 })

    it.live("failovers back and forth (A->B->A) under three stores with idle consumers: each store works after them, and their connections on the primary and listeners on the sentinel are as many as before (none leaked)", () =>
      Effect.gen(function*() {
        const group = yield* ownGroup()
        const prefix = freshPrefix()
        const [a, b] = group.nodes.map((node) => node.url) as [string, string]
        const stores = yield* Effect.forEach([0, 1, 2], () => Layer.build(RedisJobStore.layer({ sentinel: sentinelOptions(group), prefix, connectTimeout: "3 seconds" })))
        const connections = (url: string) =>
          Effect.promise(() => admin((client) => client.sendCommand(["CLIENT", "LIST"]) as Promise<string>, url)).pipe(
            Effect.map((list) => list.split("\n").filter((line) => line.includes(`name=effect-workpool:${prefix} `)).length)
          )
        const listeners = (sentinelClients(group.sentinels[0]!)).pipe(
          Effect.map((list) => list.split("\n").filter((line) => line.includes("cmd=subscribe")).length)
        )
        /** Each store runs a job enqueued through it (its consumer woken by its watch). */
        const roundTrip = (n: number) =>
          Effect.forEach(stores, (store, i) =>
            throughFailover(Effect.flatMap(JobQueue.enqueue(Echo, { n: n + i }, { queue: `q${i}` }), (handle) => handle.await)).pipe(
              Effect.map(({ value }) => assert.strictEqual(value, n + i)),
              Effect.provide(store)
            ))
        yield* Effect.forEach(stores, (store, i) =>
          JobQueue.consume({ handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))], concurrency: 2, queues: [`q${i}`] }).pipe(Effect.forkScoped, Effect.provide(store)))
        yield* roundTrip(0)
        // the watches are made again after a failover: wait for them, not for a count at an instant
        const steady = (url: string, want: number) => until(connections(url), (count) => count === want, `${want} connections on ${url}`)
        const before = yield* connections(a)
        assert.isAbove(before, 3)
        assert.strictEqual(yield* listeners, 3)
        const failover = (to: string) =>
          Effect.gen(function*() {
            const { switched } = yield* switchMaster(group.sentinels[0]!)
            // the demoted primary may not be in sync yet (NOGOODSLAVE): asked again until the sentinel starts one
            yield* until(
              Effect.promise(() => admin((client) => client.sendCommand(["SENTINEL", "FAILOVER", group.name]), group.sentinels[0]!).then(() => true, () => false)),
              (started) => started,
              "the sentinel starts a failover"
            )
            assert.strictEqual(yield* switched, to)
            yield* until(roleOf(to), (role) => role === "master", `${to} is the primary`)
          }).pipe(Effect.scoped)
        yield* failover(b)
        yield* roundTrip(10)
        yield* failover(a)
        yield* roundTrip(20)
        yield* steady(a, before)
        assert.strictEqual(yield* connections(b), 0)
        assert.strictEqual(yield* listeners, 3)
      }).pipe(Effect.scoped), { timeout: 120_000 })

    it.live("the data node's password wrong or missing (requirepass): the open fails with StoreError saying WRONGPASS/NOAUTH, never the password; the right one opens", () =>
      Effect.gen(function*() {
        // set once started: the harness's readiness check has no password
        const node = yield* ownServer()
        yield* Effect.promise(() => admin((client) => client.sendCommand(["CONFIG", "SET", "requirepass", "s3cret-node"]), node.url))
        const fake = yield* fakeSentinel(() => node.url)
        const open = (password?: string) =>
          Layer.build(RedisJobStore.layer({ sentinel: { name: "m", sentinels: [fake.url], ...(password === undefined ? {} : { password: Redacted.make(password) }) }, prefix: freshPrefix() }))
        const wrong = yield* Effect.flip(open("hunter9-wrong"))
        assert.instanceOf(wrong, StoreError)
        assert.match(wrong.reason, /WRONGPASS/)
        assert.notInclude(`${wrong.reason} ${String(wrong.cause)}`, "hunter9")
        const missing = yield* Effect.flip(open())
        assert.match(missing.reason, /NOAUTH/)
        const store = yield* open("s3cret-node")
        yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "nobody" }).pipe(Effect.provide(store))
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("a primary with min-replicas-to-write and no replica in sync refuses the enqueue: StoreError saying NOREPLICAS, nothing stored; once it accepts writes again the enqueue goes through", () =>
      Effect.gen(function*() {
        const node = yield* ownServer()
        const fake = yield* fakeSentinel(() => node.url)
        const store = yield* Layer.build(RedisJobStore.layer({ sentinel: { name: "m", sentinels: [fake.url] }, prefix: freshPrefix() }))
        yield* Effect.gen(function*() {
          yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "nobody" })
          yield* Effect.promise(() => admin((client) => client.sendCommand(["CONFIG", "SET", "min-replicas-to-write", "1"]), node.url))
          const refused = yield* Effect.flip(JobQueue.enqueue(Echo, { n: 2 }, { queue: "nobody", dedupKey: "two" }))
          assert.instanceOf(refused, StoreError)
          assert.match((refused as StoreError).reason, /NOREPLICAS/)
          yield* Effect.promise(() => admin((client) => client.sendCommand(["CONFIG", "SET", "min-replicas-to-write", "0"]), node.url))
          const accepted = yield* JobQueue.enqueue(Echo, { n: 2 }, { queue: "nobody", dedupKey: "two" })
          assert.strictEqual((yield* JobQueue.status(accepted.id)).state, "queued")
        }).pipe(Effect.scoped, Effect.provide(store))
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("a primary made a replica whose clients are not closed (READONLY): the write fails with StoreError, and the next one asks the sentinels again and goes to the new primary", () =>
      Effect.gen(function*() {
        const [a, b] = [yield* ownServer(), yield* ownServer()]
        let named = a.url
        const fake = yield* fakeSentinel(() => named)
        const store = yield* Layer.build(RedisJobStore.layer({ sentinel: { name: "m", sentinels: [fake.url] }, prefix: freshPrefix() }))
        yield* Effect.gen(function*() {
          yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "nobody" })
          // a's clients stay connected (only a sentinel's failover closes them)
          const [host, port] = b.url.replace("redis://", "").split(":") as [string, string]
          yield* Effect.promise(() => admin((client) => client.sendCommand(["REPLICAOF", host, port]), a.url))
          named = b.url
          const refused = yield* Effect.flip(JobQueue.enqueue(Echo, { n: 2 }, { queue: "nobody" }))
          assert.instanceOf(refused, StoreError)
          assert.match((refused as StoreError).reason, /READONLY/)
          const moved = yield* JobQueue.enqueue(Echo, { n: 3 }, { queue: "nobody" })
          const onB = yield* Effect.promise(() => admin((client) => client.sendCommand(["KEYS", "*"]) as Promise<Array<string>>, b.url))
          assert.isTrue(onB.some((key) => key.includes(":nobody}")), "the job is on the new primary")
          assert.strictEqual((yield* JobQueue.status(moved.id)).state, "queued")
        }).pipe(Effect.scoped, Effect.provide(store))
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("a +switch-master that comes while the cancel subscription is made (the primary it found, the old one): the subscription is made again on the new primary, where a PUBLISH reaches it", () =>
      Effect.gen(function*() {
        const [a, b] = [yield* ownServer(), yield* ownServer()]
        const name = `effect-workpool:${freshPrefix()}`
        const answer = yield* Deferred.make<void>()
        let asks = 0
        // the client's connect asks first and the subscription second: that answer, a, comes once the
        // client has heard of the switch to b; later ones name b
        const fake = yield* fakeSentinel(() => {
          asks++
          return asks === 2 ? Effect.runPromise(Deferred.await(answer)).then(() => a.url) : asks < 2 ? a.url : b.url
        })
        const redis = yield* RedisClient.make({
          url: "redis://unused:6379",
          cluster: false,
          sentinel: { name: "m", sentinels: [fake.url], node: "redis://primary:6379" },
          name,
          connectTimeout: 10_000,
          reconnect: () => 100,
          commandOptions: RedisStore.NO_COMMAND_TIMEOUT,
          maxReserved: 10
        })
        yield* until(Effect.sync(() => fake.subscribers()), (n) => n === 1, "the client listens for +switch-master")
        const subscribing = yield* Effect.forkChild(redis.subscribe("cancels"))
        yield* until(Effect.sync(() => asks), (n) => n === 2, "the subscription asks the sentinels")
        const [, oldPort] = a.url.replace("redis://", "").split(":")
        const [, newPort] = b.url.replace("redis://", "").split(":")
        fake.announce(`m 127.0.0.1 ${oldPort} 127.0.0.1 ${newPort}`)
        // heard: the client's connection to a is closed (as every connection to the old primary)
        const clientsOnA = Effect.promise(() => admin((client) => client.sendCommand(["CLIENT", "LIST"]), a.url)).pipe(Effect.map((list) => String(list).split(`name=${name} `).length - 1))
        yield* until(clientsOnA, (n) => n === 0, "the client drops its connection to the old primary")
        yield* Deferred.succeed(answer, undefined)
        const messages = yield* Fiber.join(subscribing)
        assert.strictEqual(asks, 3, "the subscription asked the sentinels again after the switch")
        assert.strictEqual(yield* clientsOnA, 0, "no subscription left on the old primary")
        yield* Effect.promise(() => admin((client) => client.sendCommand(["PUBLISH", "cancels", "hello"]), b.url))
        const heard = yield* Queue.take(messages).pipe(Effect.timeout("20 seconds"), Effect.exit)
        assert.isTrue(Exit.isSuccess(heard) && heard.value.message === "hello", "the subscription is on the new primary")
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("the failover listener: on three sentinels at once (on a fourth when one's connection ends), each switch heard once however many announce it, a switch to the last one's primary from another heard too, every subscription closed at its stop", () =>
      Effect.gen(function*() {
        const fakes = yield* Effect.forEach([0, 1, 2, 3], () => fakeSentinel(() => "127.0.0.1:1"))
        const heard: Array<string> = []
        const stop = yield* Effect.acquireRelease(
          Effect.sync(() =>
            RedisSentinel.listenForSwitches(
              { connectTimeout: 5000, commandOptions: RedisStore.NO_COMMAND_TIMEOUT },
              { name: "m", sentinels: fakes.map((fake) => fake.url) },
              (address) => heard.push(address)
            )
          ),
          (stop) => Effect.sync(stop)
        )
        const subscribers = Effect.sync(() => fakes.map((fake) => fake.subscribers()).join(","))
        yield* until(subscribers, (n) => n === "1,1,1,0", "listening on the first three sentinels")
        const last = (address: string) => until(Effect.sync(() => heard.at(-1)), (heard) => heard === address, `${address} heard`)
        fakes[0]!.announce("m 127.0.0.1 1 127.0.0.1 2")
        yield* last("127.0.0.1:2")
        // each duplicate is followed on its sentinel's connection by a new switch, heard after it
        fakes[1]!.announce("m 127.0.0.1 1 127.0.0.1 2")
        fakes[1]!.announce("other 127.0.0.1 1 127.0.0.1 9")
        fakes[1]!.announce("m 127.0.0.1 2 127.0.0.1 3")
        yield* last("127.0.0.1:3")
        fakes[2]!.announce("m 127.0.0.1 2 127.0.0.1 3")
        fakes[2]!.announce("m 127.0.0.1 3 127.0.0.1 4")
        yield* last("127.0.0.1:4")
        // back to 4 from a primary no listener heard of (a switch 4 -> 5 announced while all were cut
        // off): a switch all the same (deduplicated on the new address alone, it was not heard)
        fakes[2]!.announce("m 127.0.0.1 5 127.0.0.1 4")
        fakes[2]!.announce("m 127.0.0.1 4 127.0.0.1 6")
        yield* last("127.0.0.1:6")
        assert.deepStrictEqual(heard, ["127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4", "127.0.0.1:4", "127.0.0.1:6"], "each switch heard once")
        fakes[0]!.close()
        yield* until(subscribers, (n) => n === "0,1,1,1", "the listener of the sentinel gone listens on the fourth")
        stop()
        yield* until(subscribers, (n) => n === "0,0,0,0", "no subscription left")
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("a failover under a store watching 50 queues: the watches made again on the new primary share one lookup of the sentinels (each asked on a connection of its own: 50)", () =>
      Effect.gen(function*() {
        const [a, b] = [yield* ownServer(), yield* ownServer()]
        let named = a.url
        let asks = 0
        const fake = yield* fakeSentinel(() => (asks++, named))
        const prefix = freshPrefix()
        const name = `effect-workpool:${prefix}`
        const queues = Array.from({ length: 50 }, (_, i) => `q${i}`)
        const store = yield* Layer.build(RedisJobStore.layer({ sentinel: { name: "m", sentinels: [fake.url] }, prefix }))
        yield* Effect.gen(function*() {
          yield* JobQueue.consume({ handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))], concurrency: 1, queues, poll: "5 minutes" }).pipe(Effect.forkScoped)
          yield* Effect.promise(() => blocked(prefix, 50, name, [a.url]))
          yield* until(Effect.sync(fake.subscribers), (n) => n === 1, "the store listens for +switch-master")
          const before = asks
          named = b.url
          const port = (url: string) => url.split(":").at(-1)
          fake.announce(`m 127.0.0.1 ${port(a.url)} 127.0.0.1 ${port(b.url)}`)
          yield* Effect.promise(() => blocked(prefix, 50, name, [b.url]))
          yield* until(
            Effect.promise(() => admin((client) => client.sendCommand(["PUBSUB", "NUMSUB", `${prefix}:cancel`]) as Promise<[string, number]>, b.url)),
            (answer) => Number(answer[1]) >= 1,
            "the store subscribed on the new primary"
          )
          const lookups = asks - before
          console.log(`a failover under 50 watches: the sentinels asked ${lookups} times`)
          assert.isAtMost(lookups, 5, `the sentinels asked ${lookups} times for 50 watches and a subscription`)
          assert.strictEqual((yield* (yield* JobQueue.enqueue(Echo, { n: 5 }, { queue: "q49" })).await), 5)
        }).pipe(Effect.scoped, Effect.provide(store))
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("a replica promoted by hand (REPLICAOF NO ONE) that the sentinels do not name is ignored: the store's connections ended, it connects again to the primary the sentinels name and writes there", () =>
      Effect.gen(function*() {
        const a = yield* ownServer()
        const b = yield* ownServer(["--replicaof", "127.0.0.1", a.url.split(":").at(-1)!])
        const fake = yield* fakeSentinel(() => a.url)
        const prefix = freshPrefix()
        const store = yield* Layer.build(RedisJobStore.layer({ sentinel: { name: "m", sentinels: [fake.url] }, prefix }))
        yield* Effect.gen(function*() {
          yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "nobody" })
          yield* Effect.promise(() => admin((client) => client.sendCommand(["REPLICAOF", "NO", "ONE"]), b.url))
          yield* until(roleOf(b.url), (role) => role === "master", "b says it is a primary")
          yield* Effect.promise(() => admin((client) => client.sendCommand(["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"]), a.url))
          const moved = yield* throughFailover(JobQueue.enqueue(Echo, { n: 2 }, { queue: "nobody" }))
          const job = (url: string) => Effect.promise(() => admin((client) => client.sendCommand(["KEYS", `*:job:${moved.value.id}`]) as Promise<Array<string>>, url))
          assert.strictEqual((yield* job(a.url)).length, 1, "the job is on the primary the sentinels name")
          assert.deepStrictEqual(yield* job(b.url), [], "not on the server promoted by hand")
          assert.strictEqual((yield* JobQueue.status(moved.value.id)).state, "queued")
        }).pipe(Effect.scoped, Effect.provide(store))
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("three sentinels, the one the store listened on frozen (SIGSTOP: cut off from its quorum), then the primary frozen: the failover by the other two is heard, the command waiting on the old primary fails with StoreError, the next go to the new one; the store's close ends every listener", () =>
      Effect.gen(function*() {
        const group = yield* ownGroup(3)
        const [, replica] = group.nodes.map((node) => node.url) as [string, string]
        const [frozen, ...others] = group.sentinels as [string, string, string]
        const subscriptions = (sentinel: string) => Effect.map(sentinelClients(sentinel), (list) => list.split("\n").filter((line) => line.includes("cmd=subscribe")).length)
        yield* Effect.gen(function*() {
          const store = yield* Layer.build(RedisJobStore.layer({ sentinel: sentinelOptions(group), prefix: freshPrefix(), connectTimeout: "2 seconds" }))
          yield* Effect.gen(function*() {
            yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "nobody" })
            // the first sentinel is the one a store listening on one listened on
            yield* until(subscriptions(frozen), (n) => n === 1, "the store listens on the first sentinel")
            const { switched } = yield* switchMaster(others[1]!)
            yield* Effect.addFinalizer(() => Effect.sync(() => (group.sentinelServers[0]!.signal("SIGCONT"), group.nodes[0]!.signal("SIGCONT"))))
            group.sentinelServers[0]!.signal("SIGSTOP")
            group.nodes[0]!.signal("SIGSTOP")
            const stuck = yield* Effect.forkScoped(Effect.timeout(Effect.exit(JobQueue.enqueue(Echo, { n: 2 }, { queue: "nobody" })), "40 seconds"))
            assert.strictEqual(yield* switched, replica)
            const ended = yield* Fiber.join(stuck)
            assert.isTrue(Exit.isFailure(ended) && Cause.squash(ended.cause) instanceof StoreError, `the enqueue sent to the frozen primary fails: ${ended}`)
            const next = yield* throughFailover(JobQueue.enqueue(Echo, { n: 3 }, { queue: "nobody" }))
            assert.strictEqual((yield* throughFailover(JobQueue.status(next.value.id))).value.state, "queued")
          }).pipe(Effect.scoped, Effect.provide(store))
        }).pipe(Effect.scoped)
        for (const sentinel of others) yield* until(subscriptions(sentinel), (n) => n === 0, `no listener left on ${sentinel}`)
      }).pipe(Effect.scoped), { timeout: 120_000 })

    it.live("SENTINEL FAILOVER: an idle consumer wakes for a job enqueued after it, a job running across it keeps its lease and settles once, a cancel after it reaches a running job (the subscription made again on the new primary), the old primary is a replica", () =>
      Effect.gen(function*() {
        const group = yield* ownGroup()
        const prefix = freshPrefix()
        const [primary, replica] = group.nodes.map((node) => node.url) as [string, string]
        const store = yield* Layer.build(RedisJobStore.layer({ sentinel: sentinelOptions(group), prefix }))
        const jobs = holding()
        yield* Effect.gen(function*() {
          // a poll far past the test's waits: a job is found by the watch, not the poll
          yield* JobQueue.consume({ handlers: [jobs.handler, Task.handle(Echo, ({ n }) => Effect.succeed(n))], concurrency: 4, poll: "5 minutes", lease: "20 seconds" }).pipe(
            Effect.forkScoped
          )
          const kept = yield* JobQueue.enqueue(Hold, "kept")
          const cancelled = yield* JobQueue.enqueue(Hold, "cancelled")
          yield* waitFor(Effect.sync(() => jobs.starts.get("kept") === 1 && jobs.starts.get("cancelled") === 1), "both held jobs run")
          yield* Effect.promise(() => blocked(prefix, 1, `effect-workpool:${prefix}`, [primary]))
          const { switched } = yield* switchMaster(group.sentinels[0]!)
          yield* askSentinel(group.sentinels[0]!, "SENTINEL", "FAILOVER", group.name)
          assert.strictEqual(yield* switched, replica)
          yield* until(roleOf(primary), (role) => role === "slave", "the old primary is a replica")
          // the idle consumer's watch is made again on the new primary
          yield* Effect.promise(() => blocked(prefix, 1, `effect-workpool:${prefix}`, [replica]))
          const started = Date.now()
          const echo = yield* throughFailover(JobQueue.enqueue(Echo, { n: 7 }))
          assert.strictEqual((yield* throughFailover(echo.value.await)).value, 7)
          assert.isBelow(Date.now() - started, 30_000, "woken by its watch, not the 5 minute poll")
          // the cancel subscription is on the new primary: a cancel reaches the running job at once
          yield* until(
            Effect.promise(() => admin((client) => client.sendCommand(["PUBSUB", "NUMSUB", `${prefix}:cancel`]) as Promise<[string, number]>, replica)),
            (answer) => Number(answer[1]) >= 1,
            "the store subscribed on the new primary"
          )
          yield* throughFailover(cancelled.cancel)
          yield* waitFor(Effect.sync(() => jobs.interrupted.has("cancelled")), "the cancelled job's handler is interrupted")
          yield* jobs.release("kept")
          assert.strictEqual((yield* throughFailover(kept.await)).value, "kept")
          assert.deepStrictEqual([jobs.starts.get("kept"), jobs.starts.get("cancelled")], [1, 1], "each held job ran once")
          assert.strictEqual((yield* throughFailover(cancelled.status)).value.state, "cancelled")
        }).pipe(Effect.scoped, Effect.provide(store))
      }).pipe(Effect.scoped), { timeout: 120_000 })

    it.live("kill -9 of the primary under producers and consumers: StoreError (never a hang) while no primary exists, then both go on against the new one without a restart; every job acknowledged after the switch runs; the old primary restarted comes back as a replica", () =>
      Effect.gen(function*() {
        const group = yield* ownGroup()
        const prefix = freshPrefix()
        const [primary, replica] = group.nodes.map((node) => node.url) as [string, string]
        const store = yield* Layer.build(RedisJobStore.layer({ sentinel: sentinelOptions(group), prefix, connectTimeout: "3 seconds" }))
        const runs = new Map<number, number>()
        yield* Effect.gen(function*() {
          yield* JobQueue.consume({
            handlers: [Task.handle(Echo, ({ n }) => Effect.sync(() => (runs.set(n, (runs.get(n) ?? 0) + 1), n)))],
            concurrency: 4,
            lease: "5 seconds"
          }).pipe(Effect.forkScoped)
          const acked: Array<{ n: number; id: string; at: number }> = []
          const failures: Array<{ took: number; error: unknown }> = []
          const producer = yield* Effect.gen(function*() {
            for (let n = 0;; n++) {
              const started = Date.now()
              const exit = yield* Effect.exit(Effect.timeout(JobQueue.enqueue(Echo, { n }), "20 seconds"))
              if (Exit.isSuccess(exit)) acked.push({ n, id: exit.value.id, at: Date.now() })
              else failures.push({ took: Date.now() - started, error: Cause.squash(exit.cause) })
              yield* Effect.sleep("20 millis")
            }
          }).pipe(Effect.forkScoped)
          yield* waitFor(Effect.sync(() => acked.length >= 30), "30 jobs enqueued")
          const { switched } = yield* switchMaster(group.sentinels[0]!)
          yield* Effect.promise(() => group.nodes[0]!.kill())
          const killedAt = Date.now()
          assert.strictEqual(yield* switched, replica)
          const switchedAt = Date.now()
          const before = acked.length
          yield* waitFor(Effect.sync(() => acked.length >= before + 30), "30 more jobs enqueued after the switch")
          yield* Fiber.interrupt(producer)
          // while no primary existed: typed failures, each within the connect timeout
          assert.isAbove(failures.length, 0, "an enqueue while no primary exists fails")
          for (const failure of failures) {
            assert.instanceOf(failure.error, StoreError, String(failure.error))
            assert.isBelow(failure.took, 10_000, "no enqueue hangs")
          }
          // every job acknowledged after the kill is kept and runs; one acknowledged before it may be
          // lost with the replication the kill cut off (JobNotFound), never one after the switch
          const lost: Array<number> = []
          for (const job of acked) {
            const exit = yield* Effect.exit(throughFailover(JobQueue.handleOf(Echo, job.id).await))
            if (Exit.isSuccess(exit)) assert.strictEqual(exit.value.value, job.n)
            else {
              assert.strictEqual((Cause.squash(exit.cause) as { _tag?: string })._tag, "JobNotFound")
              assert.isBelow(job.at, killedAt + 1, `job ${job.n}, acknowledged after the kill, is lost`)
              lost.push(job.n)
            }
          }
          assert.isTrue(acked.filter((job) => job.at > switchedAt).every((job) => (runs.get(job.n) ?? 0) >= 1))
          // at least once: a job runs again only where its settle was lost with the old primary
          const twice = [...runs].filter(([, count]) => count > 1).map(([n]) => n)
          assert.isTrue(twice.every((n) => acked.find((job) => job.n === n)!.at < killedAt), `run twice: ${twice}`)
          // the old primary restarted: the sentinel makes it a replica of the new one, and jobs go on
          yield* Effect.promise(() => group.nodes[0]!.start())
          yield* until(roleOf(primary), (role) => role === "slave", "the old primary comes back as a replica")
          const last = yield* throughFailover(JobQueue.enqueue(Echo, { n: 100_000 }))
          assert.strictEqual((yield* throughFailover(last.value.await)).value, 100_000)
          console.log(`kill -9 failover: ${failures.length} enqueues failed (StoreError) over ${switchedAt - killedAt} ms; ${lost.length} acknowledged lost; ${twice.length} run twice`)
        }).pipe(Effect.scoped, Effect.provide(store))
      }).pipe(Effect.scoped), { timeout: 150_000 })

    it.live("a primary frozen (SIGSTOP: as a machine gone without closing its connections): once the sentinels announce the new one, the command waiting on the old one fails with StoreError, producers and an idle consumer go on against the new one, and the cancel subscription moves, the old one still frozen", () =>
      Effect.gen(function*() {
        const group = yield* ownGroup()
        const prefix = freshPrefix()
        const [primary, replica] = group.nodes.map((node) => node.url) as [string, string]
        const store = yield* Layer.build(RedisJobStore.layer({ sentinel: sentinelOptions(group), prefix }))
        yield* Effect.gen(function*() {
          yield* JobQueue.consume({ handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))], concurrency: 2, poll: "5 minutes" }).pipe(Effect.forkScoped)
          assert.strictEqual(yield* (yield* JobQueue.enqueue(Echo, { n: 1 })).await, 1)
          yield* Effect.promise(() => blocked(prefix, 1, `effect-workpool:${prefix}`, [primary]))
          const { switched } = yield* switchMaster(group.sentinels[0]!)
          yield* Effect.addFinalizer(() => Effect.sync(() => group.nodes[0]!.signal("SIGCONT")))
          group.nodes[0]!.signal("SIGSTOP")
          // sent to the frozen primary: it waited for its answer for ever
          const stuck = yield* Effect.forkScoped(Effect.timeout(Effect.exit(JobQueue.enqueue(Echo, { n: 2 })), "60 seconds"))
          assert.strictEqual(yield* switched, replica)
          const ended = yield* Fiber.join(stuck)
          assert.isTrue(Exit.isFailure(ended) && Cause.squash(ended.cause) instanceof StoreError, `the enqueue sent to the frozen primary fails: ${ended}`)
          const started = Date.now()
          const next = yield* throughFailover(JobQueue.enqueue(Echo, { n: 3 }))
          assert.strictEqual((yield* throughFailover(next.value.await)).value, 3)
          assert.isBelow(Date.now() - started, 30_000, "the idle consumer's watch moved, not its 5 minute poll")
          yield* until(
            Effect.promise(() => admin((client) => client.sendCommand(["PUBSUB", "NUMSUB", `${prefix}:cancel`]) as Promise<[string, number]>, replica)),
            (answer) => Number(answer[1]) >= 1,
            "the store subscribed on the new primary"
          )
        }).pipe(Effect.scoped, Effect.provide(store))
      }).pipe(Effect.scoped), { timeout: 120_000 })

    it.live("asynchronous replication (measured): an enqueue and a settle the primary acknowledged but its replica never got are lost in the failover: the enqueue's await fails with JobNotFound, the settled job runs again", () =>
      Effect.gen(function*() {
        const group = yield* ownGroup()
        const prefix = freshPrefix()
        const [, replica] = group.nodes.map((node) => node.url) as [string, string]
        const store = yield* Layer.build(RedisJobStore.layer({ sentinel: sentinelOptions(group), prefix }))
        const jobs = holding()
        yield* Effect.gen(function*() {
          yield* JobQueue.consume({ handlers: [jobs.handler], concurrency: 2, lease: "3 seconds" }).pipe(Effect.forkScoped)
          const settled = yield* JobQueue.enqueue(Hold, "settled")
          yield* waitFor(Effect.sync(() => jobs.starts.get("settled") === 1), "the job runs")
          // its claim is on the replica: WAIT answers once the replica has every write so far
          yield* Effect.promise(() => admin((client) => client.sendCommand(["WAIT", "1", "10000"]), group.nodes[0]!.url))
          // the replica stopped and its link cut: what the primary acknowledges now never reaches it
          // (stopped only, it read the writes from its socket's buffer once resumed)
          group.nodes[1]!.signal("SIGSTOP")
          yield* Effect.addFinalizer(() => Effect.sync(() => group.nodes[1]!.signal("SIGCONT")))
          yield* Effect.promise(() => admin((client) => client.sendCommand(["CLIENT", "KILL", "TYPE", "replica"]), group.nodes[0]!.url))
          yield* jobs.release("settled")
          assert.strictEqual(yield* settled.await, "settled", "the settle is acknowledged")
          // on a queue no consumer takes: it stays queued where it is kept
          const lost = yield* JobQueue.enqueue(Hold, "lost", { queue: "nobody" })
          const { switched } = yield* switchMaster(group.sentinels[0]!)
          yield* Effect.promise(() => group.nodes[0]!.kill())
          group.nodes[1]!.signal("SIGCONT")
          assert.strictEqual(yield* switched, replica)
          // the acknowledged enqueue is gone
          const gone = yield* Effect.flip(throughFailover(lost.status).pipe(Effect.map(({ value }) => value)))
          assert.strictEqual(gone._tag, "JobNotFound")
          // the acknowledged settle is gone: the job is running again under its old lease, then reaped and run again
          yield* waitFor(Effect.sync(() => jobs.starts.get("settled") === 2), "the settled job runs again")
          yield* jobs.release("settled")
          yield* until(throughFailover(settled.status).pipe(Effect.map(({ value }) => value.state), Effect.orDie, Effect.provide(store)), (state) => state === "succeeded", "it succeeds again")
        }).pipe(Effect.scoped, Effect.provide(store))
      }).pipe(Effect.scoped), { timeout: 120_000 })
  })
}
