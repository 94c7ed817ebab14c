/**
 * The Redis server the tests use: `WORKPOOL_REDIS_URL` (`.ci/run` starts one on loopback and sets
 * it). Without it the Redis tests are skipped with a message, except under `CI=true`, where a
 * missing server is a failure. Each test gets its own key prefix, whose keys are deleted when its
 * file ends (the server may be shared: never FLUSHALL).
 */
import { assert } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import * as Redis from "effect/persistence/Redis"
import { createHash } from "node:crypto"
import { createClient } from "redis"
import { afterAll } from "vitest"
import { waitFor } from "../helpers.ts"
import { Echo, newJob } from "./conformance.ts"
import * as redisServer from "./redisserver.ts"

type Client = ReturnType<typeof createClient<{}, {}, {}, 2, {}>>
import * as JobQueue from "../../src/JobQueue.ts"
import * as JobStore from "../../src/JobStore.ts"
import * as Task from "../../src/Task.ts"
import * as RedisStore from "../../src/internal/store/redis.ts"
import * as ServerTime from "../../src/internal/store/serverTime.ts"
import * as RedisScripts from "../../src/internal/store/redisScripts.ts"
import { FINAL_STATES } from "../../src/internal/store/model.ts"

export const url = process.env.WORKPOOL_REDIS_URL
if (url === undefined || url === "") {
  if (process.env.CI === "true") throw new Error("WORKPOOL_REDIS_URL is not set: under CI=true the Redis tests must run")
  console.warn("WORKPOOL_REDIS_URL is not set: the Redis store's tests are skipped (.ci/run shows how to start a server)")
}
export const enabled = url !== undefined && url !== ""

const prefixes: Array<string> = []
let n = 0
/** A key prefix of its own, whose keys are deleted after the file's tests. */
export const freshPrefix = () => {
  const prefix = `wp-test-${process.pid}-${Date.now().toString(36)}-${++n}`
  prefixes.push(prefix)
  return prefix
}

/** Runs commands on the test server outside any store (setup, cleanup, inspection). */
export const admin = async <A>(f: (client: Client) => Promise<A>, on = url!): Promise<A> => {
  const client: Client = createClient({ url: on, RESP: 2 })
  client.on("error", () => {})
  await client.connect()
  try {
    return await f(client)
  } finally {
    client.destroy()
  }
}

/**
 * Until `count` connections of this prefix's store (or of the client named `name`) are blocked in
 * BZPOPMIN (CLIENT LIST says so), on the test server or, summed, on the servers `on` (a Cluster's nodes).
 */
export const blocked = (prefix: string, count = 1, name = `effect-workpool:${prefix}`, on: ReadonlyArray<string> = [url!]) =>
  (async () => {
    const clients = await Promise.all(on.map(async (server) => {
      const client: Client = createClient({ url: server, RESP: 2 })
      client.on("error", () => {})
      await client.connect()
      return client
    }))
    try {
      const deadline = Date.now() + 20_000
      while (Date.now() < deadline) {
        let found = 0
        for (const client of clients) {
          found += (await client.clientList()).filter((c) => c.name === name && c.cmd === "bzpopmin").length
        }
        if (found >= count) return
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      throw new Error(`fewer than ${count} connections of ${name} are blocked in BZPOPMIN`)
    } finally {
      for (const client of clients) client.destroy()
    }
  })()

/** Every key of a prefix: its queues' (`{prefix:queue}:...`, `{prefix%escaped}:...`) and its own (`{prefix}:...`). */
export const keysOf = (client: Client, prefix: string) =>
  client.keys(`{${prefix}[:}%]*`)

if (enabled) {
  afterAll(() =>
    admin(async (client) => {
      for (const prefix of prefixes) {
        const keys = await keysOf(client, prefix)
        for (let i = 0; i < keys.length; i += 500) await client.del(keys.slice(i, i + 500))
      }
    })
  )
}

/**
 * The store on its own prefix (on the server `on`, the test server unless told), its time from the
 * Effect Clock (so that `TestClock` drives leases and delays, as on the other stores); the public
 * layer uses the server's `TIME`.
 */
export const testLayer = (prefix = freshPrefix(), on = url!): Layer.Layer<JobStore.JobStore, any> =>
  Layer.effect(
    JobStore.JobStore,
    Effect.flatMap(RedisStore.options({ url: on, prefix }), (cfg) => RedisStore.open({ ...cfg, clock: "effect" }))
  )

/** The store on a Redis Cluster (one node's URL), its time from the Effect Clock. */
export const clusterLayer = (clusterUrl: () => string, prefix = freshPrefix()): Layer.Layer<JobStore.JobStore, any> =>
  Layer.effect(
    JobStore.JobStore,
    Effect.suspend(() =>
      Effect.flatMap(RedisStore.options({ url: clusterUrl(), prefix, cluster: true }), (cfg) => RedisStore.open({ ...cfg, clock: "effect" }))
    )
  )

/**
 * How many `AbortSignal.timeout` signals 10 jobs (enqueued, consumed, awaited) and a stats read make
 * on the store of `prefix` (`layer`), once connected: node-redis makes one per command unless its
 * command timeout is off, and each fires (building an exception and an event) 5 s after its reply.
 * Connecting makes some that no option reaches: a Cluster client's discovery (`CLUSTER SLOTS`, on a
 * client of its own with node-redis's default timeout), also for each watch connection (a duplicate
 * of the cluster client, opened at its consumer's first idle wait).
 */
export const timeoutSignalsOfJobs = (layer: Layer.Layer<JobStore.JobStore, any>, prefix: string, servers: ReadonlyArray<string> = [url!]) =>
  Effect.gen(function*() {
    yield* JobQueue.consume({ handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))], concurrency: 1 })
    const job = (n: number) => Effect.flatMap(JobQueue.enqueue(Echo, { n }), (job) => JobQueue.await(Echo, job.id))
    yield* job(0)
    // connected, the consumer's watch connection too (its consumer idle, blocked in BZPOPMIN): from
    // here on, only commands. Job 0's await can return before its consumer's next claim, which finds
    // nothing and opens the watch: under load, that connection's discovery came after this point
    yield* Effect.promise(() => blocked(prefix, 1, `effect-workpool:${prefix}`, servers))
    const original = AbortSignal.timeout
    let made = 0
    AbortSignal.timeout = (ms: number) => {
      made++
      return original.call(AbortSignal, ms)
    }
    yield* Effect.gen(function*() {
      for (let n = 1; n <= 10; n++) yield* job(n)
      yield* JobQueue.stats("default")
    }).pipe(Effect.ensuring(Effect.sync(() => {
      AbortSignal.timeout = original
    })))
    return made
  }).pipe(Effect.scoped, Effect.provide(layer), Effect.timeout("30 seconds"))

/** The store's scripts by the SHA1 of their source, as EVALSHA names them. */
const scriptsBySha = new Map(
  Object.values(RedisScripts).filter((lua): lua is string => typeof lua === "string").map((lua) => [createHash("sha1").update(lua).digest("hex"), lua])
)

/**
 * `plain` with `seen` told of each script the store sends through it as it is sent: its source
 * (found by its SHA1 for an EVALSHA, whole in an EVAL), how it was sent, and its keys and
 * arguments; what `seen` returns runs when the script has answered.
 */
export const watchScripts = (
  plain: Redis.Redis["Service"],
  seen: (lua: string, command: "EVALSHA" | "EVAL", params: ReadonlyArray<string>) => void | (() => void)
) =>
  Redis.Redis.of({
    ...plain,
    send: <A>(command: string, ...args: ReadonlyArray<string>) =>
      Effect.suspend(() => {
        const lua = command === "EVALSHA" ? scriptsBySha.get(args[0]!) : command === "EVAL" ? args[0] : undefined
        const answered = lua === undefined ? undefined : seen(lua, command as "EVALSHA" | "EVAL", args.slice(2))
        const sending = plain.send<A>(command, ...args)
        return answered === undefined ? sending : Effect.tap(sending, () => Effect.sync(answered))
      })
  })

/** A private redis-server (from WORKPOOL_REDIS_BIN), stopped with the test's scope. */
export const ownServer = (args: ReadonlyArray<string> = []) => {
  const binary = redisServer.binary()
  if (binary === undefined) return Effect.die(new Error("no redis-server binary (WORKPOOL_REDIS_BIN)"))
  return Effect.acquireRelease(
    Effect.promise(() => redisServer.startServer(binary, [...args])),
    (server) => Effect.promise(server.destroy)
  )
}

/** `effect`'s exit (a timeout past 20 s) and how long it took, in ms. */
export const timed = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const started = Date.now()
    const exit = yield* Effect.exit(Effect.timeout(effect, "20 seconds"))
    return { exit, took: Date.now() - started }
  })

/**
 * Reads a store's time `times` times, each a refresh's time (`NOW_REFRESH`) after the last, so each
 * asks the server's TIME in the background: each answers at once, near this machine's clock, whether
 * TIME does (on a frozen server, or a Cluster's frozen node) or not.
 */
export const timeAnswersAtOnce = (now: Effect.Effect<number>, times: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < times; i++) {
      yield* Effect.sleep(ServerTime.NOW_REFRESH + 50)
      const read = yield* timed(now)
      assert.isTrue(read.exit._tag === "Success" && Math.abs(read.exit.value - Date.now()) < 5_000, String(read.exit))
      assert.isBelow(read.took, 500, "the store's time does not wait on a frozen server")
    }
  })

/** Looks until `done` holds of what `look` finds (`waitFor`), and returns that. */
export const until = <A>(look: Effect.Effect<A>, done: (a: A) => boolean, what: string) => waitFor(look, what, { until: done })

/**
 * Purges that drop emptied queues while enqueues to them run, `rounds` times, on two store
 * instances of one prefix (two processes): at each round every queue holds one finished job, and
 * one instance purges every queue while the other, which has listed those queues before (its memory
 * says they are listed), enqueues a job to each (by `enqueue` or `enqueueAll`) after a random pause
 * of up to 2 ms, so that the enqueue lands before, between and after the purge's steps (its script,
 * the list's removal, the look at the seq). Every job enqueued must be listed (in a listing of every queue, which walks the
 * list of queues) and claimed once. The last purge, with nothing racing it, leaves no key of the
 * queues and none listed.
 */
export const purgeRacingEnqueues = (layer: (prefix: string) => Layer.Layer<JobStore.JobStore, any>, rounds = 60, queueCount = 4) =>
  Effect.gen(function*() {
    const prefix = freshPrefix()
    const producer = Context.get(yield* Layer.build(layer(prefix)), JobStore.JobStore)
    const purger = Context.get(yield* Layer.build(layer(prefix)), JobStore.JobStore)
    const queues = Array.from({ length: queueCount }, (_, i) => `racing-${i}`)
    const claimAll = Effect.gen(function*() {
      const { claims } = yield* purger.claim({ queues, tasks: ["Echo"], limit: 1000, lease: 60_000 })
      for (const claim of claims) assert.isTrue(yield* purger.settle(claim.token, { _tag: "Final", state: "succeeded", exit: "{}" }))
      return claims.map((claim) => claim.job.id)
    })
    yield* Effect.forEach(queues, (queue) => producer.enqueue(newJob(queue)))
    yield* claimAll
    for (let round = 0; round < rounds; round++) {
      const [, enqueued] = yield* Effect.all([
        purger.purge(Date.now() + 60_000, FINAL_STATES),
        // one job by `enqueue` or, every other round, by `enqueueAll` (its own script)
        Effect.forEach(queues, (queue) =>
          Effect.andThen(
            Effect.sleep(Math.random() * 2),
            round % 2 === 0 ? producer.enqueue(newJob(queue)) : Effect.map(producer.enqueueAll([newJob(queue)]), ([job]) => job!)
          ), { concurrency: "unbounded" })
      ], { concurrency: "unbounded" })
      const ids = enqueued.map((job) => job.id).sort()
      const listed = (yield* purger.list({ limit: 1000, queue: undefined, states: undefined })).map((row) => row.id)
      assert.deepStrictEqual(ids.filter((id) => !listed.includes(id)), [], `round ${round}: jobs enqueued while a purge ran, not listed`)
      assert.deepStrictEqual((yield* claimAll).sort(), ids, `round ${round}: the jobs claimed`)
    }
    yield* purger.purge(Date.now() + 60_000, FINAL_STATES)
    assert.deepStrictEqual(yield* purger.list({ limit: 1000, queue: undefined, states: undefined }), [])
    return prefix
  })
