/**
 * Hostile tests of per-key caps (`group`, `setGroupConcurrency`) on the memory store and Redis (one
 * server; the Cluster's keys share the queue's hash tag, see durable-redis-cluster): the same seeded
 * random operations (enqueue, enqueueAll with mixed keys, claims of 1-4, every settle, cancel of
 * waiting and running jobs, debounce to another key, redrive, reap after lease expiry, pause, the
 * queue's own cap, the per-key cap set / changed / removed / set again while jobs run) run on each
 * store under TestClock, checked at every claim: no key gets a job while it runs its cap or more;
 * every answer the same on both stores; then drained: every job final, and on Redis no `B:gq:`,
 * `B:groups`, `B:grun:` or `B:gstop` key left.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import * as JobQueue from "../src/JobQueue.ts"
import * as RedisJobStore from "../src/RedisJobStore.ts"
import { queueBase } from "../src/internal/store/redis.ts"
import * as RedisScripts from "../src/internal/store/redisScripts.ts"
import * as Task from "../src/Task.ts"
import * as JobStore from "../src/JobStore.ts"
import { cappedBeside, claimOne as claimOf, Echo, enqueuedDuringRound, freedDuringRound, untilRoundEnds } from "./durable/conformance.ts"
import type { Store } from "../src/internal/store/model.ts"
import { newJob } from "./durable/conformance.ts"
import * as Pg from "./durable/postgres.ts"
import * as Rd from "./durable/redis.ts"
import { prng } from "./helpers.ts"
import * as redisServer from "./durable/redisserver.ts"
import { afterAll, beforeAll } from "vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const LEASE = 3000
const Q = "g"
// a name of pieces of the key layout: its keys' hash tag is escaped (see redis.ts queueBase)
const H = "h}{:gq:"
const QUEUES = [Q, H]
const TASKS = ["Echo", "Other"]
const KEYS = ["a", "b", "c", "é", "{x}", ":gq:a", "😀", "\uFF01", "a".repeat(256), undefined] as const

interface Running {
  readonly token: string
  readonly n: number
  readonly group: string | undefined
}

/** One run of `steps` operations from `seed` on `store`: its trace (each answer), checked as it goes. */
const run = (store: Store, seed: number, steps: number, rich = false) =>
  Effect.gen(function*() {
    const random = prng(seed)
    const pick = <A>(xs: ReadonlyArray<A>): A => xs[Math.floor(random() * xs.length)]!
    const trace: Array<string> = []
    const ids = new Map<number, string>()
    let running: Array<Running> = []
    const caps = new Map<string, number | null>(QUEUES.map((q) => [q, null]))
    // under a rate limit a claim short by its window may or may not say capped when a key it did not
    // reach is at its cap (memory looks at every key; Redis stops at the keys the window lets it take)
    const rated = new Set<string>()
    let next = 0
    const payload = (n: number) => JSON.stringify({ n })
    const nOf = (p: string) => (JSON.parse(p) as { n: number }).n
    const jobOf = (group: string | undefined, more: Partial<Parameters<typeof newJob>[1]> = {}, queue = pick(QUEUES)) => {
      const n = next++
      return {
        n,
        job: newJob(queue, { task: rich ? pick(TASKS) : "Echo", payload: payload(n), priority: pick([0, 0, 5]), delay: pick([0, 0, 0, 1000]), maxAttempts: 2, ...(group === undefined ? {} : { group }), ...more })
      }
    }
    // the jobs running now, read from the store (a reap or a cancel moves them without telling us)
    const runningNow = Effect.gen(function*() {
      const rows = yield* store.list({ queue: undefined, states: ["running"], limit: 10_000 })
      // '': an ungrouped job of a queue with a per-key cap, as the SQL stores keep it
      return rows.map((row) => ({ n: nOf(row.payload), key: row.group == null || row.group === "" ? undefined : `${row.queue}/${row.group}` }))
    })
    for (let step = 0; step < steps; step++) {
      const op = random()
      const at = `step ${step} (seed ${seed})`
      if (op < 0.22) {
        const { job, n } = jobOf(pick(KEYS))
        const enqueued = yield* store.enqueue(job)
        ids.set(n, enqueued.id)
        trace.push(`${at} enqueue ${n} ${job.task} ${job.queue}/${job.group ?? "-"} p${job.priority} +${job.delay} ${enqueued.created}`)
      } else if (op < 0.28) {
        // one queue: jobs of the same rank created at the same instant in two queues come in either
        // order (Redis' queues share no sequence), as each op's own ms below keeps apart
        const queue = pick(QUEUES)
        const jobs = Array.from({ length: 1 + Math.floor(random() * 4) }, () => jobOf(pick(KEYS), {}, queue))
        const done = yield* store.enqueueAll(jobs.map((j) => j.job))
        done.forEach((d, i) => ids.set(jobs[i]!.n, d.id))
        trace.push(`${at} enqueueAll ${jobs.map((j) => `${j.n}:${j.job.task}:${j.job.queue}/${j.job.group ?? "-"}/p${j.job.priority}/+${j.job.delay}`).join(",")}`)
      } else if (op < 0.31) {
        // a debounce of a waiting keyed job by a job of another key
        const { job, n } = jobOf(pick(KEYS), { dedupKey: "d", dedupReplace: "debounce" })
        const enqueued = yield* store.enqueue(job)
        if (enqueued.created) ids.set(n, enqueued.id)
        const holder = [...ids].find(([, id]) => id === enqueued.id)![0]
        trace.push(`${at} debounce ${n} ${job.queue}/${job.group ?? "-"} -> ${holder} ${enqueued.created}`)
      } else if (op < 0.55) {
        const limit = 1 + Math.floor(random() * 4)
        const before = yield* runningNow
        if (process.env.GROUP_DUMP === `${seed}:${step}`) {
          for (const row of yield* store.list({ queue: undefined, states: ["queued", "running"], limit: 1000 })) {
            console.log("DUMP", row.queue, nOf(row.payload), row.task, row.group, row.state, row.visibleAt, row.priority)
          }
        }
        const queues = pick([[Q], [Q, H], [H, Q]])
        // several queues: fair (a claim by rank across queues places a queue's keyed jobs at the
        // ranks of its best jobs on memory, of the jobs it takes on Redis: either is the docs')
        const fair = queues.length > 1
        const claimed = yield* store.claim({ queues, tasks: rich ? TASKS : ["Echo"], limit, lease: LEASE, fair })
        const perKey = new Map<string, number>()
        for (const r of before) if (r.key !== undefined) perKey.set(r.key, (perKey.get(r.key) ?? 0) + 1)
        const inOrder = claimed.claims.slice().sort((x, y) => nOf(x.job.payload) - nOf(y.job.payload))
        for (const claim of inOrder) {
          const group = claim.job.group == null || claim.job.group === "" ? undefined : claim.job.group
          const cap = caps.get(claim.job.queue)!
          if (group !== undefined && cap !== null) {
            const key = `${claim.job.queue}/${group}`
            const now = perKey.get(key) ?? 0
            assert.isBelow(now, cap, `${at}: key ${key} got job ${nOf(claim.job.payload)} while it ran ${now} (cap ${cap})`)
            perKey.set(key, now + 1)
          }
          running.push({ token: claim.token, n: nOf(claim.job.payload), group })
        }
        trace.push(`${at} claim ${queues.join("+")}${fair ? " fair" : ""} ${limit}: ${claimed.claims.map((c) => nOf(c.job.payload)).sort((a, b) => a - b).join(",")}${claimed.capped === true && !queues.some((q) => rated.has(q)) ? " capped" : ""}`)
      } else if (op < 0.7) {
        if (running.length === 0) continue
        const r = pick(running)
        running = running.filter((x) => x !== r)
        const settlement = pick([
          { _tag: "Final", state: "succeeded", exit: null },
          { _tag: "Final", state: "dead", exit: null },
          { _tag: "Retry", delay: 0, exit: "{}" },
          { _tag: "Retry", delay: 1000, exit: "{}" },
          { _tag: "Release" },
          { _tag: "Release", delay: 1000 }
        ] as const)
        const ok = yield* store.settle(r.token, settlement)
        trace.push(`${at} settle ${r.n} ${settlement._tag} ${ok}`)
      } else if (op < 0.75) {
        if (ids.size === 0) continue
        const n = pick([...ids.keys()])
        trace.push(`${at} cancel ${n} ${yield* store.cancel(ids.get(n)!)}`)
      } else if (op < 0.82) {
        const queue = pick(QUEUES)
        const cap = pick([1, 1, 2, null])
        caps.set(queue, cap)
        yield* store.configure(queue, { groupConcurrency: cap })
        trace.push(`${at} cap ${queue} ${cap}`)
      } else if (op < 0.85) {
        const limit = pick([2, null])
        const queue = pick(QUEUES)
        yield* store.configure(queue, { concurrency: limit })
        trace.push(`${at} queue cap ${queue} ${limit}`)
      } else if (op < 0.87) {
        const paused = random() < 0.5
        const queue = pick(QUEUES)
        const other = rich ? random() : 0
        if (other < 0.4) {
          yield* store.configure(queue, { paused })
          trace.push(`${at} paused ${queue} ${paused}`)
        } else if (other < 0.7) {
          const rateLimit = paused ? null : { limit: 2, interval: 1000 }
          yield* store.configure(queue, { rateLimit })
          if (rateLimit === null) rated.delete(queue)
          else rated.add(queue)
          trace.push(`${at} rate ${queue} ${rateLimit?.limit ?? "-"}`)
        } else {
          yield* store.configure(queue, { holdFor: paused ? 0 : 700 })
          trace.push(`${at} hold ${queue} ${paused ? 0 : 700}`)
        }
      } else if (op < 0.95) {
        const ms = pick([500, 1500, LEASE + 1])
        yield* TestClock.adjust(ms)
        const reaped = yield* store.reap([0])
        trace.push(`${at} +${ms} reaped ${reaped}`)
      } else {
        const dead = yield* store.list({ queue: undefined, states: ["dead"], limit: 10_000 })
        if (dead.length === 0) continue
        const row = pick(dead.slice().sort((a, b) => nOf(a.payload) - nOf(b.payload)))
        trace.push(`${at} redrive ${nOf(row.payload)} ${yield* store.redrive(row.id)}`)
      }
      yield* TestClock.adjust(1)
      for (const queue of QUEUES) {
        const counts = yield* store.counts(queue)
        const ready = yield* store.list({ queue, states: ["queued"], limit: 1000, waiting: "ready" })
        const delayed = yield* store.list({ queue, states: ["queued"], limit: 1000, waiting: "delayed" })
        trace.push(`  ${queue} ready ${ready.map((row) => nOf(row.payload)).join(",")} delayed ${delayed.map((row) => nOf(row.payload)).join(",")}`)
        trace.push(`  ${queue} w${counts.waiting} d${counts.delayed} r${counts.running} s${counts.succeeded} x${counts.dead} c${counts.cancelled} g${counts.groupConcurrency ?? "-"}`)
      }
    }
    // drain: unpaused, no caps, time past every delay and lease; every job reaches a final state
    for (const queue of QUEUES) yield* store.configure(queue, { paused: false, concurrency: null, rateLimit: null, holdFor: 0 })
    for (let round = 0; round < 200; round++) {
      yield* TestClock.adjust(LEASE + 1)
      yield* store.reap([0])
      const claimed = yield* store.claim({ queues: QUEUES, tasks: TASKS, limit: 50, lease: LEASE })
      for (const claim of claimed.claims) yield* store.settle(claim.token, { _tag: "Final", state: "succeeded", exit: null })
      const left = yield* store.list({ queue: undefined, states: ["queued", "running"], limit: 1 })
      if (left.length === 0) break
    }
    for (const queue of QUEUES) {
      const counts = yield* store.counts(queue)
      assert.deepStrictEqual([counts.waiting, counts.delayed, counts.running], [0, 0, 0], `seed ${seed}: ${queue} drained`)
    }
    return trace
  })

const SEEDS = Number(process.env.GROUP_SEEDS ?? 12)
const STEPS = Number(process.env.GROUP_STEPS ?? 120)
const FIRST = Number(process.env.GROUP_SEED ?? 1)

/** The Redis keys of per-key caps left under `prefix` on the server `on` (a Cluster's nodes: each of them). */
const groupKeysOf = (prefix: string, on: ReadonlyArray<string> = [Rd.url!]) =>
  Effect.promise(async () => {
    const keys = await Promise.all(on.map((server) => Rd.admin((client) => Rd.keysOf(client, prefix), server)))
    return keys.flat().filter((key) => /^:(gq:|groups$|grun:|gstop$)/.test(key.replace(/^\{[^}]*\}/, "")))
  })

/**
 * Seeds `first` .. `first + seeds - 1` on memory and on the Redis store `layer` of a fresh prefix:
 * the same answers, and no per-key set left (`left`) once drained.
 */
const sameAsMemory = (
  first: number,
  seeds: number,
  layer: (prefix: string) => Layer.Layer<JobStore.JobStore, any>,
  left: (prefix: string) => Effect.Effect<ReadonlyArray<string>>,
  rich = false
) =>
  Effect.gen(function*() {
    for (let seed = first; seed < first + seeds; seed++) {
      const expected = yield* withStore(JobStore.memory(), (store) => run(store, seed, STEPS, rich))
      const prefix = Rd.freshPrefix()
      const actual = yield* withStore(layer(prefix), (store) => run(store, seed, STEPS, rich))
      for (let i = 0; i < expected.length; i++) {
        if (actual[i] !== expected[i]) {
          assert.fail(`seed ${seed}: first difference at line ${i}\n${expected.slice(Math.max(0, i - Number(process.env.GROUP_CONTEXT ?? 12)), i).join("\n")}\nmemory: ${expected[i]}\nredis:  ${actual[i]}`)
        }
      }
      assert.deepStrictEqual(yield* left(prefix), [], `seed ${seed}: drained, no per-key set is left`)
    }
  })

const withStore = <A, E>(layer: Layer.Layer<JobStore.JobStore, any>, f: (store: Store) => Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const store = yield* JobStore.JobStore
    return yield* f(store)
  }).pipe(Effect.provide(layer))

const stores: Array<[string, () => Layer.Layer<JobStore.JobStore, any>]> = [["memory", () => JobStore.memory()]]
if (Rd.enabled) stores.push(["Redis", () => Rd.testLayer()])

/** A claim that finds only a delayed job of a key over its lowered cap: nothing taken, not `capped`. */
const delayedOverLoweredCap = (store: Store) =>
  Effect.gen(function*() {
    yield* store.configure(Q, { groupConcurrency: 2 })
    for (const delay of [0, 0, 60_000]) yield* store.enqueue(newJob(Q, { group: "a", delay }))
    assert.strictEqual((yield* store.claim({ queues: [Q], tasks: ["Echo"], limit: 2, lease: LEASE })).claims.length, 2)
    // lowered below what runs
    yield* store.configure(Q, { groupConcurrency: 1 })
    const claimed = yield* store.claim({ queues: [Q], tasks: ["Echo"], limit: 1, lease: LEASE })
    assert.strictEqual(claimed.claims.length, 0)
    assert.notStrictEqual(claimed.capped, true, "nothing ready is held back: a's next job is delayed")
  })

const claimOne = (store: Store) =>
  Effect.gen(function*() {
    const { claims } = yield* store.claim({ queues: [Q], tasks: ["Echo"], limit: 1, lease: LEASE })
    assert.strictEqual(claims.length, 1)
    assert.isTrue(yield* store.settle(claims[0]!.token, { _tag: "Final", state: "succeeded", exit: null }))
    return claims[0]!.job.group
  })

/**
 * As `freedDuringRound` (conformance.ts), the key's slot freed by raising the cap to 2 instead of a
 * settle: the key passed at its cap is served before the round ends.
 */
const raisedDuringRound = (beside: Parameters<typeof freedDuringRound>[0]) =>
  Effect.gen(function*() {
    const { provide, store } = yield* beside
    yield* provide(JobQueue.enqueue(Echo, { n: 1 }, { group: "k005a" }))
    assert.strictEqual((yield* claimOf(store)).claims.length, 1, "k005a's first job runs: the cursor is k005a")
    const next = yield* provide(JobQueue.enqueue(Echo, { n: 2 }, { group: "k005a" }))
    const a = yield* provide(JobQueue.enqueue(Echo, { n: 3 }, { group: "a" }))
    assert.isTrue((yield* untilRoundEnds(claimOf(store), a.id)).taken)
    // the round from "a": passes k005a at its cap, cut short
    const passed = yield* claimOf(store)
    assert.deepStrictEqual([passed.claims.length, passed.dueIn, passed.capped], [0, 0, true])
    yield* provide(JobQueue.setGroupConcurrency("default", 2))
    const { seen, taken } = yield* untilRoundEnds(claimOf(store), next.id)
    assert.isTrue(taken, `claims (taken/dueIn): ${seen.join(", ")}`)
  }).pipe(Effect.scoped)

describe("per-key caps, hostile", () => {
  for (const [name, layer] of stores) {
    // Redis: the queue's claim filled the share its look allotted it, and said nothing of the key it
    // passed over; the consumer, told nothing held it back, claimed again at each enqueue
    it.effect(`${name}: a fair claim over two queues, short because a key of one is at its cap, says capped`, () =>
      withStore(layer(), (store) =>
        Effect.gen(function*() {
          yield* store.configure(H, { groupConcurrency: 1 })
          yield* store.enqueue(newJob(Q, { group: "a", delay: 60_000 }))
          for (const group of ["a", "a", "b"]) yield* store.enqueue(newJob(H, { group }))
          const claimed = yield* store.claim({ queues: [Q, H], tasks: ["Echo"], limit: 3, lease: LEASE, fair: true })
          assert.deepStrictEqual(claimed.claims.map((claim) => claim.job.group).sort(), ["a", "b"])
          assert.isTrue(claimed.capped, "a's second job is held back by a's cap")
        })))
  }

  for (const [name, layer] of stores) {
    // Redis counted only the keys with a free slot as held back by the queue's cap: with every key at
    // its cap too, its claim said nothing held it back
    it.effect(`${name}: a claim held back by the queue's cap and every key's cap says capped`, () =>
      withStore(layer(), (store) =>
        Effect.gen(function*() {
          yield* store.configure(Q, { groupConcurrency: 1 })
          for (const group of ["a", "a", "b", "b"]) yield* store.enqueue(newJob(Q, { group }))
          assert.strictEqual((yield* store.claim({ queues: [Q], tasks: ["Echo"], limit: 4, lease: LEASE })).claims.length, 2)
          yield* store.configure(Q, { concurrency: 1 })
          const claimed = yield* store.claim({ queues: [Q], tasks: ["Echo"], limit: 1, lease: LEASE })
          assert.strictEqual(claimed.claims.length, 0)
          assert.isTrue(claimed.capped, "a's and b's second jobs wait, held by both caps")
        })))
  }

  // memory sorted the keys by UTF-16 code units: a key past U+FFFF ('😀', surrogates D83D DE00) came
  // before one of U+E000-U+FFFF ('\uFF01'), where Redis (ZRANGEBYLEX, UTF-8 bytes) and SQLite (BINARY)
  // take code point order: the stores' turns parted on such keys
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wp-group-hostile-"))
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))
  let files = 0
  const ordered: Array<[string, () => Layer.Layer<JobStore.JobStore, any>]> = [
    ...stores,
    ["SQLite", () => JobStore.sqlite({ filename: path.join(dir, `${++files}.db`) })]
  ]
  for (const [name, layer] of ordered) {
    it.effect(`${name}: the keys take turns in code point order ('\uFF01' before '😀', as UTF-8 bytes sort)`, () =>
      withStore(layer(), (store) =>
        Effect.gen(function*() {
          yield* store.configure(Q, { groupConcurrency: 1 })
          for (const group of ["😀", "\uFF01", "z", "😀", "\uFF01", "z"]) yield* store.enqueue(newJob(Q, { group }))
          const turn: Array<string | null | undefined> = []
          for (let i = 0; i < 6; i++) turn.push(yield* claimOne(store))
          assert.deepStrictEqual(turn, ["z", "\uFF01", "😀", "z", "\uFF01", "😀"])
        })))
  }

  for (const [name, layer] of stores) {
    it.effect(`${name}: a claim that finds only a delayed job of a key over its lowered cap does not say capped`, () =>
      withStore(layer(), delayedOverLoweredCap))
  }

  it.effect("bad keys and bad caps fail typed, naming the option, and store nothing", () =>
    Effect.gen(function*() {
      const badKeys: ReadonlyArray<unknown> = ["", "a".repeat(257), "a\u0000b", "\uD800", 42, null, { id: "x" }, ["a"]]
      for (const group of badKeys) {
        const one = yield* Effect.flip(JobQueue.enqueue(Echo, { n: 0 }, { group: group as string }))
        assert.strictEqual(one._tag, "InvalidJobOptions", `enqueue, group ${JSON.stringify(group)}`)
        assert.include(String(one.message), "group")
        const all = yield* Effect.flip(JobQueue.enqueueAll(Echo, [{ payload: { n: 1 } }, { payload: { n: 2 }, options: { group: group as string } }]))
        assert.strictEqual(all._tag, "InvalidJobOptions", `enqueueAll item, group ${JSON.stringify(group)}`)
      }
      // 256 UTF-16 code units, unicode and the key layout's pieces are keys like any other
      for (const group of ["a".repeat(256), "😀".repeat(128), "{x}:gq:", " "]) {
        assert.strictEqual((yield* JobQueue.status((yield* JobQueue.enqueue(Echo, { n: 0 }, { group })).id)).group, group)
      }
      for (const cap of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 1_000_001, "2", null]) {
        const failed = yield* Effect.flip(JobQueue.setGroupConcurrency("default", cap as number))
        assert.strictEqual(failed._tag, "InvalidJobOptions", `cap ${String(cap)}`)
      }
      const stats = yield* JobQueue.stats("default")
      assert.strictEqual(stats.waiting, 4, "only the good keys' jobs")
      assert.strictEqual(stats.groupConcurrency, undefined)
      yield* JobQueue.setGroupConcurrency("default", 1_000_000)
      assert.strictEqual((yield* JobQueue.stats("default")).groupConcurrency, 1_000_000)
    }).pipe(Effect.provide(JobStore.memory())))

  if (Rd.enabled) {
    it.effect("Redis: a queue purged empty under a per-key cap leaves no key once the cap is removed (its turn goes with it)", () =>
      Effect.gen(function*() {
        const prefix = Rd.freshPrefix()
        yield* withStore(Rd.testLayer(prefix), (store) =>
          Effect.gen(function*() {
            yield* store.configure(Q, { groupConcurrency: 1 })
            yield* store.enqueue(newJob(Q, { group: "a" }))
            yield* claimOne(store)
            assert.strictEqual(yield* store.purge((yield* store.now) + 1, ["succeeded"]), 1)
            yield* store.configure(Q, { groupConcurrency: null })
          }))
        const left = yield* Effect.promise(() => Rd.admin((client) => Rd.keysOf(client, prefix)))
        assert.deepStrictEqual(left.filter((key) => key.startsWith(`{${prefix}:${Q}}`)), [])
      }))
  }

  for (const [name, layer] of stores) {
    // Redis deleted its cursor with the cap: the turn began again at the first key, as memory,
    // SQLite and Postgres (which keep it) do not
    it.effect(`${name}: the keys' turn goes on where it was across the cap removed and set again`, () =>
      withStore(layer(), (store) =>
        Effect.gen(function*() {
          yield* store.configure(Q, { groupConcurrency: 1 })
          for (const group of ["a", "b", "c"]) {
            for (let n = 0; n < 2; n++) yield* store.enqueue(newJob(Q, { group }))
          }
          assert.deepStrictEqual([yield* claimOne(store), yield* claimOne(store)], ["a", "b"])
          yield* store.configure(Q, { groupConcurrency: null })
          yield* store.configure(Q, { groupConcurrency: 1 })
          assert.deepStrictEqual([yield* claimOne(store), yield* claimOne(store), yield* claimOne(store)], ["c", "a", "b"])
        })))
  }

  it.effect("memory: seeded random operations never start a key's job over its cap, and drain", () =>
    Effect.gen(function*() {
      for (let seed = FIRST; seed < FIRST + SEEDS; seed++) {
        yield* withStore(JobStore.memory(), (store) => run(store, seed, STEPS))
      }
    }), { timeout: 120_000 })

  if (Rd.enabled) {
    /** The calls of `command` the private server `url` has run so far (INFO commandstats). */
    const callsOf = (url: string, command: string) =>
      Effect.promise(() =>
        Rd.admin(async (client) => {
          const stats = await client.info("commandstats")
          return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(stats)?.[1] ?? 0)
        }, url)
      )

    // review30's finding 3 held on Redis too: a claim read each key's running set (SMEMBERS, and a
    // ZSCORE per running job, to drop stale entries), 123 ms per empty claim with 10,000 keys at
    // their cap (load 5). A key at its cap now costs one SCARD: every way a job stops running takes
    // it out of the set. Counted, not timed: the script's calls on a private server
    it.live("Redis: an empty claim of a queue whose 2,000 keys are all at their cap reads no key's members, one SCARD a key", () =>
      Effect.gen(function*() {
        const server = yield* Rd.ownServer()
        yield* withStore(Rd.testLayer(Rd.freshPrefix(), server.url), (store) =>
          Effect.gen(function*() {
            yield* store.configure(Q, { groupConcurrency: 1 })
            const keys = Array.from({ length: 2000 }, (_, i) => `k${i}`)
            yield* store.enqueueAll(keys.flatMap((group) => [newJob(Q, { group }), newJob(Q, { group })]))
            let taken = 0
            for (let claimed = -1; claimed !== 0;) {
              claimed = (yield* store.claim({ queues: [Q], tasks: ["Echo"], limit: 500, lease: 600_000 })).claims.length
              taken += claimed
            }
            assert.strictEqual(taken, 2000, "one job of each key runs")
            const before = [yield* callsOf(server.url, "smembers"), yield* callsOf(server.url, "scard")]
            const empty = yield* store.claim({ queues: [Q], tasks: ["Echo"], limit: 1, lease: 600_000 })
            assert.deepStrictEqual([empty.claims.length, empty.capped], [0, true])
            // the running jobs widen the budget (as on SQLite and Postgres): every key is passed, at O(1)
            assert.strictEqual((yield* callsOf(server.url, "smembers")) - before[0]!, 0, "no key's members read")
            assert.isAtMost((yield* callsOf(server.url, "scard")) - before[1]!, 2000, "one SCARD a key")
          }))
      }).pipe(Effect.scoped), { timeout: 120_000 })

    // a claim walked every key of the queue: 2,000 keys of jobs of a task the consumer does not run
    // cost 2,000 ZRANGE (and an HGET each) per claim. Now a budget of keys (limit + running jobs +
    // GROUP_VISITS), as on SQLite and Postgres: cut short, the claim answers dueIn 0 and the next goes on
    // where it stopped, without taking or moving anything
    // (a claim of several queues looks at each first, PEEK: a look cut short with nothing found stops
    // its round there as the claim does, else the claim of several queues claimed the first keys again)
    it.live("Redis: claims of 1 beside 2,000 keys of another task's jobs each visit at most 1 + 64 keys, go on where the last stopped, and take the key after them in the round (one queue, and two)", () =>
      Effect.gen(function*() {
        const server = yield* Rd.ownServer()
        for (const queues of [[Q], [Q, "empty"]]) {
          yield* withStore(Rd.testLayer(Rd.freshPrefix(), server.url), (store) =>
            Effect.gen(function*() {
              yield* store.configure(Q, { groupConcurrency: 1 })
              const keys = Array.from({ length: 2000 }, (_, i) => `k${String(i).padStart(4, "0")}`)
              yield* store.enqueueAll(keys.map((group) => newJob(Q, { group, task: "Other" })))
              const job = yield* store.enqueue(newJob(Q, { group: "z" }))
              const seen: Array<string> = []
              let most = 0
              for (let n = 0; n < 100; n++) {
                const before = yield* callsOf(server.url, "zrange")
                const claimed = yield* store.claim({ queues, tasks: ["Echo"], limit: 1, lease: 600_000 })
                // a key's ZRANGE each, the ungrouped jobs' one, the soonest delayed job's one
                most = Math.max(most, (yield* callsOf(server.url, "zrange")) - before - 2)
                seen.push(`${claimed.claims.length}/${claimed.dueIn}`)
                if (claimed.claims.length > 0) {
                  assert.strictEqual(claimed.claims[0]!.job.id, job.id)
                  break
                }
                assert.strictEqual(claimed.dueIn, 0, "cut short: claim again at once")
              }
              // (two queues: the look's walk and the claim's, and the other queue's look)
              if (queues.length === 1) assert.isAtMost(most, 1 + 64, "keys visited by one claim")
              // 2,001 keys, 65 a claim: the 31st claim reaches z
              assert.strictEqual(seen.length, 31, `${queues}: ${seen.join(", ")}`)
              // the round over, the next claim (every Other key still there) walks its budget and stops
              const after = yield* store.claim({ queues, tasks: ["Echo"], limit: 1, lease: 600_000 })
              assert.deepStrictEqual([after.claims.length, after.dueIn], [0, 0])
            }))
        }
      }).pipe(Effect.scoped), { timeout: 120_000 })

    // Were bugs (review33, as on SQL before groupwake32): a job made ready, or a slot freed, in a key
    // a round of cut claims had walked added the queue's marker, but the consumer's 1 ms wait between
    // the round's claims took it: the round's last claim said "nothing", and the job waited for the
    // store's blocking wait to time out (5 s). The scripts now count such changes while a round is
    // under way, and its last claim says "again" (dueIn 0). Redis walks only keys with ready jobs:
    // the keys are of ready Other jobs
    it.live("Redis: a job enqueued into a key already walked in a round of cut claims is claimed before the round ends", () =>
      enqueuedDuringRound(cappedBeside(() => Rd.testLayer(), 300, true)), { timeout: 60_000 })
    it.live("Redis: a key freed by a settle during a round of cut claims that had passed it at its cap is served before the round ends", () =>
      freedDuringRound(cappedBeside(() => Rd.testLayer(), 300, true)), { timeout: 60_000 })
    // Was a bug (hostile40): raising the per-key cap frees a slot in every key at its cap as a settle
    // does, but only added the marker (which the consumer's wait between a round's claims takes): the
    // round's last claim said "nothing", and the key passed at its cap waited for the blocking wait
    it.live("Redis: a key passed at its cap by a round of cut claims is served before the round ends when the cap is raised meanwhile", () =>
      raisedDuringRound(cappedBeside(() => Rd.testLayer(), 300, true)), { timeout: 60_000 })

    // Was a bug (review33): the ungrouped jobs' turn was not remembered as the last visited, so a
    // claim whose budget ran out on the keys after the cursor, cut on the first key after the
    // ungrouped jobs' turn, stored the key before it: the next claim visited the ungrouped jobs again,
    // and gave them a second turn in the round before the keys after them had one
    it.live("Redis: the ungrouped jobs have one turn in a round of cut claims: a key after them in the round is served before their second", () =>
      withStore(Rd.testLayer(), (store) =>
        Effect.gen(function*() {
          const claim = store.claim({ queues: [Q], tasks: ["Echo"], limit: 1, lease: 60_000 })
          yield* store.configure(Q, { groupConcurrency: 1 })
          // the cursor at g0: the round is the keys after it, the ungrouped jobs, then the keys up to it
          yield* store.enqueue(newJob(Q, { group: "g0" }))
          const g0 = yield* claim
          yield* store.settle(g0.claims[0]!.token, { _tag: "Final", state: "succeeded", exit: null })
          // after g0 exactly the budget's keys (1 + 0 + 64), of Other jobs; before it, a's Echo job
          yield* store.enqueueAll(Array.from({ length: 65 }, (_, n) => newJob(Q, { group: `h${String(n).padStart(3, "0")}`, task: "Other" })))
          const a = yield* store.enqueue(newJob(Q, { group: "a" }))
          const cut = yield* claim
          assert.deepStrictEqual([cut.claims.length, cut.dueIn], [0, 0], "the budget spent on h000-h064, cut at a")
          const ungrouped = yield* store.enqueue(newJob(Q))
          const next = yield* claim
          assert.deepStrictEqual(next.claims.map((c) => c.job.id), [a.id], "a's turn, not the ungrouped jobs' second")
          assert.deepStrictEqual((yield* claim).claims.map((c) => c.job.id), [ungrouped.id])
        })), { timeout: 60_000 })

    // Was a bug (review32 F3): an idle watch's look for lost markers (ORPHANS) counted every key with
    // jobs, whatever their task and whether at their cap: an idle consumer was woken every 5 s to
    // claim nothing beside keys of other tasks or at their cap
    it.live("Redis: an idle watch's look for lost markers counts keyed jobs of its tasks in keys with a free slot only", () =>
      Effect.gen(function*() {
        const prefix = Rd.freshPrefix()
        const base = queueBase(prefix, Q)
        const orphans = (...tasks: ReadonlyArray<string>) =>
          Effect.promise(() =>
            Rd.admin(async (client) => {
              // a marker lost (popped by a process then killed): the look is what finds the jobs
              await client.zRem(`${base}:marker`, "0")
              return client.eval(RedisScripts.ORPHANS, { keys: [`${base}:meta`], arguments: ["", "5000", "0", ...tasks] })
            })
          )
        yield* withStore(Rd.testLayer(prefix), (store) =>
          Effect.gen(function*() {
            yield* store.configure(Q, { groupConcurrency: 1 })
            yield* store.enqueueAll([newJob(Q, { group: "a", task: "Other" }), newJob(Q, { group: "b" }), newJob(Q, { group: "b" })])
            const running = yield* store.claim({ queues: [Q], tasks: ["Echo"], limit: 5, lease: 60_000 })
            assert.strictEqual(running.claims.length, 1, "b's first job runs: b at its cap")
            assert.deepStrictEqual([yield* orphans("Echo"), yield* orphans("Other")], [0, 1], "a's job is Other's; b's next waits for b's slot")
            // more keys than a claim's budget (64): the look reads up to ORPHAN_LOOKS jobs
            yield* store.enqueueAll(Array.from({ length: 200 }, (_, n) => newJob(Q, { group: `o${String(n).padStart(3, "0")}`, task: "Other" })))
            assert.strictEqual(yield* orphans("Echo"), 0, "200 keys of Other jobs")
            yield* store.settle(running.claims[0]!.token, { _tag: "Final", state: "succeeded", exit: null })
            assert.strictEqual(yield* orphans("Echo"), 1, "b's slot is free")
          }))
      }), { timeout: 60_000 })

    // Was a bug (review33): a stop stayed in B:gstop until the round ended or the cap was removed, so
    // the stops of task lists that came and went (a consumer stopped mid-round, a deploy that changed
    // the tasks) piled up, one a list. A round's first claim now drops the stops older than STOP_AGE
    it.effect("Redis: B:gstop does not grow with task lists that come and go", () =>
      Effect.gen(function*() {
        const prefix = Rd.freshPrefix()
        const stops = Effect.promise(() => Rd.admin((client) => client.hLen(`${queueBase(prefix, Q)}:gstop`)))
        yield* withStore(Rd.testLayer(prefix), (store) =>
          Effect.gen(function*() {
            yield* store.configure(Q, { groupConcurrency: 1 })
            yield* store.enqueueAll(Array.from({ length: 100 }, (_, n) => newJob(Q, { group: `k${String(n).padStart(3, "0")}`, task: "Other" })))
            for (let list = 0; list < 10; list++) {
              // a consumer of its own task list claims once, cut short mid-round, and is gone
              const cut = yield* store.claim({ queues: [Q], tasks: [`Gone${list}`], limit: 1, lease: 60_000 })
              assert.deepStrictEqual([cut.claims.length, cut.dueIn], [0, 0])
              yield* TestClock.adjust(RedisScripts.STOP_AGE + 1)
            }
            assert.isAtMost(yield* stops, 1, "the last list's stop, the others dropped")
            // a live round's stop stays while its claims go on
            yield* store.claim({ queues: [Q], tasks: ["Live"], limit: 1, lease: 60_000 })
            yield* TestClock.adjust(RedisScripts.STOP_AGE - 1)
            yield* store.claim({ queues: [Q], tasks: ["Fresh"], limit: 1, lease: 60_000 })
            const live = yield* store.claim({ queues: [Q], tasks: ["Live"], limit: 1, lease: 60_000 })
            assert.deepStrictEqual([live.claims.length, live.dueIn], [0, undefined], "Live's round went on from its stop and ended: 100 keys in two claims")
          }))
      }))

    // Was a bug (hostile40, low): a stop was dropped only by a round that begins (a cut claim of
    // another task list, STOP_AGE later). A consumer that stopped mid-round beside a queue that then
    // drained left its stop for ever (until the cap was removed): B:gstop stayed, and while it did
    // every enqueue and settle of the queue counted groupChanges (106 here). The hash now expires
    // STOP_AGE after the last stop written (server time: the TTL is what can be checked here)
    it.effect("Redis: a stopped consumer's stop beside a queue that drains expires (B:gstop's TTL at most STOP_AGE)", () =>
      Effect.gen(function*() {
        const prefix = Rd.freshPrefix()
        const base = queueBase(prefix, Q)
        yield* withStore(Rd.testLayer(prefix), (store) =>
          Effect.gen(function*() {
            yield* store.configure(Q, { groupConcurrency: 1 })
            yield* store.enqueueAll(Array.from({ length: 100 }, (_, n) => newJob(Q, { group: `k${String(n).padStart(3, "0")}`, task: "Other" })))
            // a consumer of its own task list claims once, cut short mid-round, and is gone
            const cut = yield* store.claim({ queues: [Q], tasks: ["Gone"], limit: 1, lease: 60_000 })
            assert.deepStrictEqual([cut.claims.length, cut.dueIn], [0, 0])
            // the live consumer drains the queue, and goes on claiming a keyed job now and then
            const all = yield* store.claim({ queues: [Q], tasks: ["Other"], limit: 1000, lease: 60_000 })
            assert.strictEqual(all.claims.length, 100)
            for (const claim of all.claims) yield* store.settle(claim.token, { _tag: "Final", state: "succeeded", exit: null })
            yield* TestClock.adjust(RedisScripts.STOP_AGE + 1)
            for (let i = 0; i < 3; i++) {
              yield* store.enqueue(newJob(Q, { group: "k000", task: "Other" }))
              const one = yield* store.claim({ queues: [Q], tasks: ["Other"], limit: 10, lease: 60_000 })
              for (const claim of one.claims) yield* store.settle(claim.token, { _tag: "Final", state: "succeeded", exit: null })
            }
            const ttl = yield* Effect.promise(() => Rd.admin((client) => client.pTTL(`${base}:gstop`)))
            assert.isTrue(ttl > 0 && ttl <= RedisScripts.STOP_AGE, `B:gstop's TTL: ${ttl} (-1: none)`)
          }))
      }))

    // the stored stop (B:gstop) was used only while the queue's cursor was the one it read: a busy
    // consumer whose claims moved the cursor between two hot keys threw the other consumer's stop away
    // at each claim, and its claims (cut short by their budget) only ever saw the keys after the
    // cursor: a job past them never ran (as on SQLite and Postgres before 1973f66). A stop now keeps
    // its round's cursor. (Third's ready jobs fill the keys: delayed jobs are not in B:groups on Redis)
    it.live("Redis: a job past the key budget is claimed while a busy consumer's claims move the cursor between two hot keys", () =>
      withStore(Rd.testLayer(), (store) =>
        Effect.gen(function*() {
          yield* store.configure(Q, { groupConcurrency: 1 })
          const keys = Array.from({ length: 200 }, (_, n) => `k${String(n).padStart(3, "0")}`)
          yield* store.enqueueAll(keys.map((group) => newJob(Q, { group, task: "Third" })))
          for (const group of ["k000", "k100"]) yield* store.enqueueAll(Array.from({ length: 50 }, () => newJob(Q, { group })))
          const job = yield* store.enqueue(newJob(Q, { group: "k080", task: "Other" }))
          const running: Array<string> = []
          const seen: Array<string> = []
          for (let claims = 1; claims <= 20; claims++) {
            // the busy consumer takes the free hot key's job and keeps one running: the cursor goes to it
            const busy = yield* store.claim({ queues: [Q], tasks: ["Echo"], limit: 200, lease: 60_000 })
            running.push(...busy.claims.map((c) => c.token))
            while (running.length > 1) yield* store.settle(running.shift()!, { _tag: "Final", state: "succeeded", exit: null })
            const mine = yield* store.claim({ queues: [Q], tasks: ["Other"], limit: 1, lease: 60_000 })
            seen.push(`${busy.claims.map((c) => c.job.group).join("+")} ${mine.claims.length}/${mine.dueIn}`)
            if (mine.claims.some((c) => c.job.id === job.id)) return
          }
          assert.fail(`k080 never served; busy keys, Other claims (taken/dueIn): ${seen.join(", ")}`)
        })), { timeout: 60_000 })

    it.effect("Redis: the same operations give the same answers as memory, and leave no B:gq / B:groups / B:grun key", () =>
      sameAsMemory(FIRST, SEEDS, (prefix) => Rd.testLayer(prefix), groupKeysOf), { timeout: 300_000 })

    it.live("Redis: three store instances' consumers (poll an hour: woken only by the stores) run 40 keys x 5 jobs once each, one per key at a time, each key in order; the cap raised mid-run; nothing left", () =>
      Effect.gen(function*() {
        const prefix = Rd.freshPrefix()
        const instance = Effect.map(Layer.build(RedisJobStore.layer({ url: Rd.url!, prefix })), (context) => Context.get(context, JobStore.JobStore))
        const admin = yield* instance
        const elsewhere = <A, E>(effect: Effect.Effect<A, E, JobStore.JobStore>) => Effect.provideService(effect, JobStore.JobStore, admin)
        yield* elsewhere(JobQueue.setGroupConcurrency(Q, 1))
        const runs = new Map<number, number>()
        const running = new Map<string, number>()
        const order = new Map<string, Array<number>>()
        let cap = 1
        let over = ""
        let done = 0
        const half = yield* Deferred.make<void>()
        // a key's jobs side by side: without the cap a claim starts them together
        const keyOf = (n: number) => `k${Math.floor(n / 5)}`
        for (let i = 0; i < 3; i++) {
          yield* Effect.provideService(
            JobQueue.consume({
              queues: [Q],
              concurrency: 6,
              poll: "1 hour",
              handlers: [Task.handle(Echo, ({ n }) =>
                Effect.gen(function*() {
                  const key = keyOf(n)
                  const now = (running.get(key) ?? 0) + 1
                  running.set(key, now)
                  if (now > cap && over === "") over = `${key} ran ${now} at once (cap ${cap}), job ${n}`
                  runs.set(n, (runs.get(n) ?? 0) + 1)
                  order.set(key, [...(order.get(key) ?? []), n])
                  // a while, so that jobs of other keys (and of this one, were the cap not kept) overlap
                  yield* Effect.sleep("5 millis")
                  running.set(key, running.get(key)! - 1)
                  if (++done === 100) yield* Deferred.succeed(half, undefined)
                  return n
                }))]
            }),
            JobStore.JobStore,
            yield* instance
          )
        }
        const jobs = yield* elsewhere(JobQueue.enqueueAll(Echo, Array.from({ length: 200 }, (_, n) => ({ payload: { n }, options: { group: keyOf(n) } })), { queue: Q }))
        yield* Effect.timeout(Deferred.await(half), "60 seconds")
        // raised: no job starts beside more than 3 of its key (cap read before the change lands: 1 or 3)
        cap = 3
        yield* elsewhere(JobQueue.setGroupConcurrency(Q, 3))
        yield* Effect.timeout(elsewhere(Effect.forEach(jobs, (job) => JobQueue.await(Echo, job.id), { concurrency: 20 })), "60 seconds")
        assert.strictEqual(over, "")
        assert.deepStrictEqual([...runs.values()].filter((count) => count !== 1), [], "each job once")
        assert.strictEqual(runs.size, 200)
        const stats = yield* elsewhere(JobQueue.stats(Q))
        assert.deepStrictEqual([stats.waiting, stats.running, stats.succeeded], [0, 0, 200])
        assert.deepStrictEqual(yield* groupKeysOf(prefix), [], "no per-key set left")
        // one at a time per key until the raise: each key's first jobs in order
        for (const [key, ns] of order) {
          const first = ns.slice(0, 2)
          assert.deepStrictEqual(first, first.slice().sort((a, b) => a - b), `${key} in order`)
        }
      }).pipe(Effect.scoped), { timeout: 150_000 })

    it.effect("Redis: 10,000 keys of one job and a key of 5,000, the cap set over the backlog: each claim of 1,000 takes one job per key, the big key's in order, and drains clean", () =>
      Effect.gen(function*() {
        const prefix = Rd.freshPrefix()
        yield* withStore(Rd.testLayer(prefix), (store) =>
          Effect.gen(function*() {
            for (let i = 0; i < 10_000; i += 2500) {
              yield* store.enqueueAll(Array.from({ length: 2500 }, (_, j) => newJob(Q, { group: `k${i + j}`, payload: JSON.stringify({ n: i + j }) })))
            }
            yield* store.enqueueAll(Array.from({ length: 5000 }, (_, j) => newJob(Q, { group: "big", payload: JSON.stringify({ n: 100_000 + j }) })))
            yield* store.configure(Q, { groupConcurrency: 1 })
            let big = 100_000
            let claims = 0
            for (;;) {
              const claimed = yield* store.claim({ queues: [Q], tasks: ["Echo"], limit: 1000, lease: LEASE })
              if (claimed.claims.length === 0) break
              claims++
              const keys = claimed.claims.map((claim) => claim.job.group!)
              assert.strictEqual(new Set(keys).size, keys.length, "one job per key per claim")
              for (const claim of claimed.claims) {
                if (claim.job.group === "big") assert.strictEqual(JSON.parse(claim.job.payload).n, big++, "the big key in order")
              }
              yield* Effect.forEach(claimed.claims, (claim) => store.settle(claim.token, { _tag: "Final", state: "succeeded", exit: null }), { discard: true })
            }
            assert.strictEqual(big, 105_000, "the big key's 5,000 all ran")
            assert.isAtMost(claims, 5000 + 10, "the big key one a claim, the small keys beside it")
            const counts = yield* store.counts(Q)
            assert.deepStrictEqual([counts.waiting, counts.running, counts.succeeded], [0, 0, 15_000])
          }))
        assert.deepStrictEqual(yield* groupKeysOf(prefix), [])
      }), { timeout: 240_000 })

    it.effect("Redis: with two tasks (claimed together), rate limits and holds too, the same answers as memory", () =>
      sameAsMemory(FIRST, SEEDS, (prefix) => Rd.testLayer(prefix), groupKeysOf, true), { timeout: 300_000 })
  }
})

// the SQL stores' claims are another helper's this session: run here to compare, not changed
describe("per-key caps on SQLite, hostile", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wp-group-sqlite-"))
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))
  let files = 0
  // SQLite counted a key over its cap (lowered below what runs) whose queued jobs are all delayed as
  // holding ready jobs back (on 978a360; low: the consumer napped CLAIM_RETRY_FLOOR more); since the
  // walk probes a key for a visible job before reading its heads (migration 14), it no longer does
  it.effect("SQLite: a claim that finds only a delayed job of a key over its lowered cap does not say capped (memory and Redis do not)", () =>
    withStore(JobStore.sqlite({ filename: path.join(dir, "delayed.db") }), delayedOverLoweredCap))

  it.effect("SQLite: a key passed at its cap by a round of cut claims is served before the round ends when the cap is raised meanwhile", () =>
    raisedDuringRound(cappedBeside(() => JobStore.sqlite({ filename: path.join(dir, "raised.db") }), 300)), { timeout: 60_000 })

  // seeds 17 and 48 parted (on 978a360) on the capped answer the test above shows
  it.effect("SQLite: the same operations give the same answers as memory", () =>
    sameAsMemory(FIRST, SEEDS, () => JobStore.sqlite({ filename: path.join(dir, `${++files}.db`) }), () => Effect.succeed([]), true), { timeout: 300_000 })
})

if (Pg.enabled) {
  describe("per-key caps on Postgres, hostile", () => {
    it.effect("Postgres: the same operations give the same answers as memory", () =>
      sameAsMemory(FIRST, Math.max(1, Math.floor(SEEDS / 4)), () => Pg.testLayer(), () => Effect.succeed([]), true), { timeout: 300_000 })
  })
}

const binary = redisServer.binary()
if (binary !== undefined) {
  describe("per-key caps on a Redis Cluster, hostile", () => {
    let cluster: redisServer.Cluster | undefined
    beforeAll(async () => {
      cluster = await redisServer.startCluster(binary)
    }, 120_000)
    afterAll(() => cluster?.destroy())

    it.effect("the same operations give the same answers as memory (two queues in their slots, keys with '{' '}' ':'), and leave no per-key set on any node", () =>
      sameAsMemory(FIRST, Math.max(1, Math.floor(SEEDS / 3)), (prefix) => Rd.clusterLayer(() => cluster!.url, prefix), (prefix) => groupKeysOf(prefix, cluster!.nodes.map((node) => node.url))), { timeout: 300_000 })
  })
}
