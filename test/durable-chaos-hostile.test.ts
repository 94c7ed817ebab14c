/**
 * Chaos on every store: consumer processes (fixtures/durable-chaos-child.ts) on one store, a producer
 * (this process) enqueueing Chaos jobs with and without dedup keys, delays, priorities, retries and
 * failing attempts, and cancelling some, while seeded random steps kill -9 consumers, freeze them
 * (SIGSTOP) past their leases and resume them (SIGCONT), and start new ones; on a private Postgres or
 * Redis server, the server also goes down and comes back mid-run. Then the store and the handlers'
 * own side-effect log (`start|fail|done <k> <pid> [result]`) must agree: every job final once, none
 * lost or stuck, attempts counted (a killed attempt counts), a stored result one an attempt really
 * returned and never replaced, cancels and dedup keys kept, stats = list, SQLite's file intact.
 *
 * Steps wait for events (the children's lines, the store's state), never a fixed sleep. The seed is
 * printed; WORKPOOL_CHAOS_SEED=<seed> replays a run's choices (not its timing).
 */
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { Deferred, Effect, Exit, Fiber, type Layer, Layer as LayerM, ManagedRuntime, Schedule, Scope } from "effect"
import { afterAll, assert, describe, it } from "vitest"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as PgJobStore from "../src/PgJobStore.ts"
import * as RedisJobStore from "../src/RedisJobStore.ts"
import { type Consumer, followConsumer, freeze, type ProcessStore, processStoresOf, sqliteWritable } from "./durable/children.ts"
import * as pgServer from "./durable/pgserver.ts"
import * as redisServer from "./durable/redisserver.ts"
import { storeLayers } from "./durable/stores.ts"
import type { Store } from "../src/internal/store/model.ts"
import * as Task from "../src/Task.ts"
import { Chaos } from "./fixtures/durable-tasks.ts"
import { prng } from "./helpers.ts"

const node = existsSync("node_modules/.bin/node") ? "node_modules/.bin/node" : process.execPath
const fixture = new URL("./fixtures/durable-chaos-child.ts", import.meta.url).pathname
const dir = mkdtempSync(join(tmpdir(), "wp-durable-chaos-"))
const all: Array<ChildProcess> = []
afterAll(() => {
  for (const child of all) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGCONT")
      child.kill("SIGKILL")
    }
  }
  rmSync(dir, { recursive: true, force: true })
})

let files = 0
const fresh = (name: string) => join(dir, `${name}-${files++}`)

interface Child extends Consumer {
  frozen: boolean
  killed: boolean
}

/** Every line of every child goes through here: a waiter looks again on each. */
const listeners = new Set<() => void>()
const lineSeen = () => {
  for (const listener of listeners) listener()
}

/** Until `check` holds: looked at on each child's line and every 100 ms (a store's state), failing after `millis`. */
const until = (check: () => boolean | Promise<boolean>, what: string, millis = 60_000, detail = () => "") =>
  new Promise<void>((resolve, reject) => {
    let busy = false
    let done = false
    const look = () => {
      if (busy || done) return
      busy = true
      Promise.resolve().then(check).then((ok) => {
        busy = false
        if (ok && !done) finish()
      }, (error) => {
        busy = false
        if (!done) finish(error)
      })
    }
    const timer = setTimeout(() => finish(new Error(`timed out waiting until ${what}\n${detail()}`)), millis)
    const poll = setInterval(look, 100)
    const finish = (error?: unknown) => {
      done = true
      clearTimeout(timer)
      clearInterval(poll)
      listeners.delete(look)
      if (error === undefined) resolve()
      else reject(error)
    }
    listeners.add(look)
    look()
  })

const startChild = (store: ProcessStore, concurrency: number, lease: number, log: string): Child => {
  const child = spawn(node, [fixture, store.target, String(concurrency), String(lease), log], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...store.env }
  })
  all.push(child)
  const c: Child = Object.assign(followConsumer(child), { frozen: false, killed: false })
  child.stdout!.on("data", lineSeen)
  return c
}

interface Enqueued {
  readonly k: number
  readonly id: string
  readonly created: boolean
  readonly dedupKey: string | undefined
  readonly maxAttempts: number
  readonly fail: number
}

/** A private server taken down and brought back once, mid-run. */
interface Outage {
  readonly down: () => Promise<void>
  readonly up: () => Promise<void>
}

const FINAL = ["succeeded", "dead", "cancelled"]

const chaos = async (store: ProcessStore, options: {
  readonly jobs: number
  readonly steps: number
  readonly sqlite?: string
  readonly outage?: Outage
}) => {
  const seed = Number(process.env.WORKPOOL_CHAOS_SEED ?? Date.now() % 1_000_000)
  console.log(`durable chaos seed ${seed} (WORKPOOL_CHAOS_SEED=${seed} replays its choices)`)
  const random = prng(seed)
  const int = (n: number) => Math.floor(random() * n)
  const CONCURRENCY = 3
  const LEASE = 1000
  const log = fresh("log")
  writeFileSync(log, "")
  const runtime = ManagedRuntime.make(store.layer as Layer.Layer<JobStore.JobStore, never>)
  const children: Array<Child> = []
  const spawnOne = () => {
    const c = startChild(store, CONCURRENCY, LEASE, log)
    children.push(c)
    return c
  }
  const live = () => children.filter((c) => !c.killed)
  const awake = () => live().filter((c) => !c.frozen)
  const starts = () => children.reduce((sum, c) => sum + c.started.length, 0)
  const tail = () => children.map((c) => `${c.child.pid}${c.killed ? " killed" : c.frozen ? " frozen" : ""}: ${c.stderr.slice(-500)}${c.lines.slice(-5).join(" | ")}`).join("\n")
  try {
    // the store's tables before any consumer starts
    await runtime.runPromise(Effect.retry(JobQueue.stats("default"), { schedule: Schedule.spaced(100), times: 50 }))
    for (let i = 0; i < 3; i++) spawnOne()
    await until(() => children.every((c) => c.lines.includes("ready")), "every consumer is ready", 60_000, tail)

    // --- the producer: enqueues and cancels, each retried on StoreError (an outage)
    const enqueued: Array<Enqueued> = []
    const cancels: Array<{ readonly id: string; readonly result: JobQueue.CancelResult; readonly attempts: number; readonly logAt: number }> = []
    let producerErrors = 0
    const retrying = <A, E extends { readonly _tag: string }>(effect: Effect.Effect<A, E, JobStore.JobStore>) =>
      runtime.runPromise(effect.pipe(
        Effect.tapError(() => Effect.sync(() => producerErrors++)),
        Effect.retry({ while: (error) => error._tag === "StoreError", schedule: Schedule.spaced(100) })
      ))
    let produced = false
    // with an outage: half the jobs, then (once the server is down) the other half
    let halfway = false
    let serverDown = () => {}
    const down = new Promise<void>((resolve) => {
      serverDown = resolve
    })
    const producer = (async () => {
      for (let k = 0; k < options.jobs; k++) {
        if (options.outage !== undefined && k === options.jobs / 2) {
          halfway = true
          lineSeen()
          await down
        }
        const dedupKey = random() < 0.3 ? `key-${int(15)}` : undefined
        const maxAttempts = 2 + int(5)
        const fail = random() < 0.25 ? 1 + int(2) : 0
        const delay = random() < 0.2 ? int(400) : undefined
        const retry = random() < 0.5 ? { fixed: `${int(100)} millis` as const } : undefined
        // some attempts time out (the job sleeps up to 160 ms)
        const timeout = random() < 0.15 ? 40 + int(100) : undefined
        const handle = await retrying(JobQueue.enqueue(Chaos, { k, ms: 10 + int(150), fail }, {
          dedupKey,
          maxAttempts,
          priority: int(7) - 3,
          ...(delay === undefined ? {} : { delay: `${delay} millis` }),
          ...(retry === undefined ? {} : { retry }),
          ...(timeout === undefined ? {} : { timeout: `${timeout} millis` as const })
        }))
        enqueued.push({ k, id: handle.id, created: handle.created, dedupKey, maxAttempts, fail })
        if (random() < 0.06) {
          const victim = enqueued[int(enqueued.length)]!
          const result = await retrying(JobQueue.cancel(victim.id))
          // its attempts once the cancel has answered: no claim after it
          const attempts = (await retrying(JobQueue.status(victim.id))).attempts
          cancels.push({ id: victim.id, result, attempts, logAt: readFileSync(log, "utf8").split("\n").length - 1 })
        }
        // the consumers make progress meanwhile: a few jobs enqueued per start seen
        if (k % 10 === 9) await until(() => starts() >= k / 3 || awake().length === 0, "the consumers keep up", 60_000, tail)
      }
      produced = true
    })()

    // --- chaos: a step each few starts
    let kills = 0
    // stopped gracefully (SIGTERM): their attempts interrupted by the stop are given back, not counted
    const terminated = new Set<number>()
    const everFrozen = new Set<number>()
    let freezes = 0
    let outageDone = options.outage === undefined
    for (let step = 0; step < options.steps || !outageDone; step++) {
      const before = starts()
      const more = 3 + int(15)
      await until(() => starts() >= before + more || produced || (halfway && !outageDone), `${more} more starts (step ${step})`, 60_000, tail)
      if (!outageDone && halfway) {
        outageDone = true
        // a consumer whose layer is still being built when the server goes fails to start (StoreError,
        // as documented): every live one is up first
        await until(() => live().every((c) => c.frozen || c.lines.includes("ready")), "every live consumer is ready", 60_000, tail)
        const warned = children.map((c) => c.warnings)
        const errors = producerErrors
        await options.outage!.down()
        serverDown()
        // both sides notice (a consumer's failed claim, or the producer's failed enqueue)
        await until(() => producerErrors > errors || children.some((c, i) => c.warnings > (warned[i] ?? 0)), "the server's outage is seen", 60_000, tail)
        await options.outage!.up()
        continue
      }
      const frozen = live().filter((c) => c.frozen)
      const roll = random()
      if (frozen.length > 0 && roll < 0.4) {
        const c = frozen[int(frozen.length)]!
        c.frozen = false
        c.child.kill("SIGCONT")
      } else if (roll < 0.75) {
        if (awake().length < 2) spawnOne()
        const victims = awake()
        const c = victims[int(victims.length)]!
        c.killed = true
        kills++
        c.child.kill("SIGCONT")
        c.child.kill("SIGKILL")
        await c.exited
        spawnOne()
      } else if (roll < 0.85 && awake().some((c) => c.lines.includes("ready"))) {
        // a process that is not consuming yet has no SIGTERM handler (runMain's): only a ready one
        if (awake().length < 2) spawnOne()
        const victims = awake().filter((c) => c.lines.includes("ready"))
        const c = victims[int(victims.length)]!
        c.killed = true
        terminated.add(c.child.pid!)
        c.child.kill("SIGTERM")
        spawnOne()
        await c.exited
        assert.strictEqual(c.child.exitCode, 130, `${c.child.pid} stopped: ${c.stderr}\n${c.lines.slice(-20).join("\n")}`)
      } else if (frozen.length < 2) {
        if (awake().length < 2) spawnOne()
        const victims = awake()
        const c = victims[int(victims.length)]!
        c.frozen = true
        freezes++
        everFrozen.add(c.child.pid!)
        await freeze(c, options.sqlite === undefined ? undefined : sqliteWritable(options.sqlite))
      }
    }
    for (const c of live().filter((c) => c.frozen)) {
      c.frozen = false
      c.child.kill("SIGCONT")
    }
    if (!outageDone) throw new Error("the chaos ended before the outage")
    await producer

    // --- every job final, then the store and the log compared
    const ids = new Set(enqueued.map((e) => e.id))
    const lastStats = { value: undefined as unknown }
    await until(async () => {
      const stats = await runtime.runPromise(JobQueue.stats("default")).catch(() => undefined)
      lastStats.value = stats
      return stats !== undefined && stats.waiting + stats.delayed + stats.running === 0 &&
        stats.succeeded + stats.dead + stats.cancelled >= ids.size
    }, "every job is final", 90_000, () => `${JSON.stringify(lastStats.value)}\n${tail()}`)
    const infos = await runtime.runPromise(JobQueue.list({ limit: 100_000 }))
    const infoOf = new Map(infos.map((info) => [info.id, info]))
    const results = new Map<string, string>()
    for (const info of infos) {
      if (info.state === "succeeded") results.set(info.id, await runtime.runPromise(JobQueue.await(Chaos, info.id)))
    }
    // the surviving consumers stop gracefully: a zombie's late settle, if any, lands before the second read.
    // One spawned late may still be loading (slow on a busy machine), with no SIGTERM handler yet
    // (runMain's): each is ready first, or a SIGTERM would kill it by default (exit code null)
    await until(() => live().every((c) => c.lines.includes("ready") || c.child.exitCode !== null || c.child.signalCode !== null), "every surviving consumer is ready", 60_000, tail)
    for (const c of live()) c.child.kill("SIGTERM")
    await Promise.all(live().map((c) => c.exited))
    for (const c of live()) assert.strictEqual(c.child.exitCode, 130, `${c.child.pid}: ${c.stderr}\n${c.lines.slice(-20).join("\n")}`)

    const lines = readFileSync(log, "utf8").split("\n").filter((line) => line !== "").map((line) => line.split(" "))
    const startsOf = new Map<number, number>()
    const doneOf = new Map<number, Set<string>>()
    const givenBack = new Map<number, number>()
    for (const [event, k, pid, result] of lines) {
      if (event === "start") startsOf.set(Number(k), (startsOf.get(Number(k)) ?? 0) + 1)
      if (event === "interrupted" && terminated.has(Number(pid))) givenBack.set(Number(k), (givenBack.get(Number(k)) ?? 0) + 1)
      if (event === "done") doneOf.set(Number(k), new Set([...(doneOf.get(Number(k)) ?? []), result!]))
    }
    const cancelled = new Set(cancels.filter((c) => c.result !== "finished").map((c) => c.id))
    const creators = enqueued.filter((e) => e.created)
    // every job this producer enqueued is one it created (a dedup key's second enqueue returns its first job)
    for (const e of enqueued) {
      if (!e.created) {
        const first = creators.find((c) => c.id === e.id)
        assert.isDefined(first, `job ${e.k}: an existing job that was never created`)
        assert.strictEqual(first!.dedupKey, e.dedupKey, `job ${e.k}: returned a job of another key`)
      }
    }
    // a second job without a dedup key only for an enqueue retried after an outage
    assert.isAtMost(infos.length - creators.length, producerErrors, "jobs nobody enqueued")
    let unlogged = 0
    for (const e of creators) {
      const info = infoOf.get(e.id)
      assert.isDefined(info, `job ${e.k} lost`)
      const what = `job ${e.k} (${JSON.stringify({ ...e, info, starts: startsOf.get(e.k), done: [...doneOf.get(e.k) ?? []] })})`
      assert.include(FINAL, info!.state, `${what} not final`)
      const started = startsOf.get(e.k) ?? 0
      assert.isAtLeast(info!.attempts, started - (givenBack.get(e.k) ?? 0), `${what}: fewer attempts than starts`)
      assert.isAtMost(info!.attempts, e.maxAttempts, `${what}: more attempts than allowed`)
      unlogged += Math.max(0, info!.attempts - started)
      if (info!.state === "cancelled") assert.isTrue(cancelled.has(e.id), `${what}: cancelled, never asked`)
      if (info!.state === "dead") assert.strictEqual(info!.attempts, e.maxAttempts, `${what}: dead before its last attempt`)
      if (info!.state === "succeeded") {
        assert.isTrue(doneOf.get(e.k)?.has(results.get(e.id)!), `${what}: stored result ${results.get(e.id)} no attempt returned`)
        assert.isAbove(started, e.fail, `${what}: succeeded before its failing attempts`)
      }
      if (!cancelled.has(e.id) && info!.state !== "succeeded") {
        // dead only by attempts lost to kills and freezes
        assert.strictEqual(info!.state, "dead", what)
      }
    }
    for (const c of cancels) if (c.result === "cancelled") assert.strictEqual(infoOf.get(c.id)!.state, "cancelled", `cancelled ${c.id}`)
    // fencing, from the log's order (one file, appended to by every process): the stored result is
    // the last claim's. After the start of the attempt that returned it, no process that was never
    // frozen (so that it started each job it claimed at once) started the job again: such a start
    // would be a newer claim, the stored attempt's lease lost, and its settle had to be refused
    const kOf = new Map(creators.map((e) => [e.id, e.k]))
    for (const [id, result] of results) {
      const k = String(kOf.get(id))
      const doneAt = lines.findIndex(([event, n, , r]) => event === "done" && n === k && r === result)
      const pid = result.split(":")[0]!
      let startAt = doneAt
      while (startAt >= 0 && !(lines[startAt]![0] === "start" && lines[startAt]![1] === k && lines[startAt]![2] === pid)) startAt--
      assert.isAtLeast(startAt, 0, `job ${k}: its result's attempt has no start`)
      const newer = lines.slice(startAt + 1).filter(([event, n, p]) => event === "start" && n === k && p !== pid && !everFrozen.has(Number(p)))
      assert.deepStrictEqual(newer, [], `job ${k}: result ${result} stored, though a newer attempt started after it (${lines.filter(([, n]) => n === k).map((l) => l.join(" ")).join("; ")})`)
    }
    // a cancel that answered: no later claim (its attempts at most as they were just after the answer)
    for (const c of cancels) {
      if (c.result === "finished") continue
      const k = String(kOf.get(c.id))
      const info = infoOf.get(c.id)!
      // (one fewer if the attempt then running was given back by its consumer's stop)
      assert.isAtMost(info.attempts, c.attempts, `job ${k}: claimed again after its cancel answered ${c.result} (log line ${c.logAt}; ${JSON.stringify(info)}; ${lines.map((l, i) => [i, ...l]).filter(([, , n]) => n === k).map((l) => l.join(" ")).join("; ")})`)
    }
    // attempts with no start in the log: claims of killed or frozen processes (not yet started), or of cancelled jobs
    assert.isAtMost(unlogged, (kills + freezes) * CONCURRENCY + cancels.length, "attempts counted without a claim")
    // one unfinished job per dedup key at a time
    const byKey = new Map<string, Array<JobQueue.JobInfo>>()
    for (const e of creators) if (e.dedupKey !== undefined) byKey.set(e.dedupKey, [...(byKey.get(e.dedupKey) ?? []), infoOf.get(e.id)!])
    for (const [key, jobs] of byKey) {
      jobs.sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime())
      for (let i = 1; i < jobs.length; i++) {
        assert.isTrue(jobs[i]!.createdAt >= jobs[i - 1]!.finishedAt!, `${key}: two unfinished jobs`)
      }
    }
    // stats agree with the list; nothing changed once final (a second read, on a runtime of its own)
    const stats = await runtime.runPromise(JobQueue.stats("default"))
    const count = (state: string) => infos.filter((info) => info.state === state).length
    assert.deepStrictEqual(
      [stats.succeeded, stats.dead, stats.cancelled, stats.waiting, stats.delayed, stats.running],
      [count("succeeded"), count("dead"), count("cancelled"), 0, 0, 0]
    )
    const second = ManagedRuntime.make(store.layer as Layer.Layer<JobStore.JobStore, never>)
    try {
      const again = await second.runPromise(JobQueue.list({ limit: 100_000 }))
      assert.deepStrictEqual(
        again.map((info) => [info.id, info.state, info.attempts, info.finishedAt?.getTime()]),
        infos.map((info) => [info.id, info.state, info.attempts, info.finishedAt?.getTime()])
      )
      for (const [id, result] of results) assert.strictEqual(await second.runPromise(JobQueue.await(Chaos, id)), result)
    } finally {
      await second.dispose()
    }
    if (process.env.DURABLE_DEBUG) {
      console.log({ seed, jobs: infos.length, kills, freezes, terminated: terminated.size, cancels: cancels.length, unlogged, producerErrors, states: [count("succeeded"), count("dead"), count("cancelled")] })
    }
  } finally {
    await runtime.dispose()
    for (const c of children) {
      if (c.child.exitCode === null && c.child.signalCode === null) {
        c.child.kill("SIGCONT")
        c.child.kill("SIGKILL")
      }
    }
  }
  if (options.sqlite !== undefined) {
    const db = new DatabaseSync(options.sqlite)
    try {
      assert.deepStrictEqual(db.prepare("PRAGMA integrity_check").all().map((row) => Object.values(row)[0]), ["ok"])
    } finally {
      db.close()
    }
  }
}

describe("durable chaos across processes", () => {
  for (const [name, make] of processStoresOf(() => fresh("chaos.db"))) {
    it(`${name}: 300 jobs, consumers killed -9, frozen past their leases and resumed at random: every job final once, the log and the store agree`, {
      timeout: 180_000
    }, async () => {
      const store = make()
      await chaos(store, { jobs: 300, steps: 40, ...(store.env.WORKPOOL_PG_SCHEMA === undefined && !store.target.startsWith("redis://") ? { sqlite: store.target } : {}) })
    })
  }

  const pgBin = pgServer.binaries()
  it.skipIf(pgBin === undefined)("Postgres: the same chaos with the (private) server stopped and started mid-run", { timeout: 240_000 }, async () => {
    const server = await pgServer.startServer(pgBin!)
    try {
      const schema = `wp_chaos_${process.pid}`
      await chaos({
        target: server.url,
        env: { WORKPOOL_PG_SCHEMA: schema },
        layer: PgJobStore.layer({ url: server.url, schema, maxConnections: 2 })
      }, { jobs: 200, steps: 10, outage: { down: server.stop, up: server.start } })
    } finally {
      await server.destroy()
    }
  })

  const redisBin = redisServer.binary()
  it.skipIf(redisBin === undefined)("Redis: the same chaos with the (private) server killed -9 and started mid-run", { timeout: 240_000 }, async () => {
    const server = await redisServer.startServer(redisBin!)
    try {
      const prefix = `wp-chaos-${process.pid}`
      await chaos({
        target: server.url,
        env: { WORKPOOL_REDIS_PREFIX: prefix },
        layer: RedisJobStore.layer({ url: server.url, prefix })
      }, { jobs: 200, steps: 10, outage: { down: server.kill, up: server.start } })
    } finally {
      await server.destroy()
    }
  })
})

/**
 * Found by the chaos above (SQLite, seed 83808: "job 11: claimed again after its cancel answered
 * requested"): a job cancelled while it ran, whose attempt then failed before its consumer's
 * heartbeat heard of the cancel (a short job, a failure quicker than `lease / 3`), was retried, ran
 * twice more and succeeded: the cancel was lost. Its consumer settles the attempt `Retry` (it knows
 * of no cancel) and the store queued the job again with the request still on it; a consumer's
 * graceful stop (`Release`) did the same. The contract (docs/durable.md): a running job's cancel
 * ends it `cancelled`; only an attempt that finished first keeps its result.
 */
describe("a cancel asked for while an attempt runs, which then fails or is given back", () => {
  for (const [name, layer] of storeLayers(() => fresh("cancel.db"))) {
    for (const settlement of [{ _tag: "Retry", delay: 0, exit: "failed" }, { _tag: "Release" }] as const) {
      it(`${name}: ${settlement._tag}: the job ends cancelled, never claimed again`, { timeout: 60_000 }, async () => {
        await Effect.runPromise(Effect.gen(function*() {
          const job = yield* JobQueue.enqueue(Chaos, { k: 1, ms: 0, fail: 0 }, { maxAttempts: 5 })
          const store = yield* JobStore.JobStore
          const request = { queues: ["default"], tasks: ["Chaos"], limit: 1, lease: 60_000 }
          const [claim] = (yield* store.claim(request)).claims
          assert.strictEqual(claim?.job.id, job.id)
          assert.strictEqual(yield* JobQueue.cancel(job.id), "requested")
          // the attempt fails (or is given back) before its heartbeat heard of the cancel
          assert.strictEqual(yield* store.settle(claim!.token, settlement), "cancelled")
          const info = yield* JobQueue.status(job.id)
          assert.strictEqual(info.state, "cancelled", JSON.stringify(info))
          assert.deepStrictEqual((yield* store.claim(request)).claims, [])
          const error = yield* Effect.flip(JobQueue.await(Chaos, job.id))
          assert.strictEqual(typeof error === "string" ? error : error._tag, "JobCancelled")
          const stats = yield* JobQueue.stats("default")
          assert.deepStrictEqual([stats.waiting, stats.delayed, stats.running, stats.cancelled], [0, 0, 0, 1])
        }).pipe(Effect.scoped, Effect.provide(layer() as Layer.Layer<JobStore.JobStore>)))
      })
    }
  }
})

/**
 * Such a settle ends the job, as a final one does: an awaiter in the settling process is woken at
 * once ("at once when the job ends through this process's store", `JobQueue.progressChanges`), not
 * at its poll. A `Retry` with a backoff woke this process's waiters only at the retry's time, as for
 * a job that becomes visible then: on Postgres (`notifyIn(delay)`) and Redis (`{ queue, in: delay }`,
 * which wakes no awaiter at all) the awaiter of the cancelled job slept to its poll (here an hour).
 */
describe("a cancel asked for while an attempt runs, which then fails with a backoff", () => {
  for (const [name, layer] of storeLayers(() => fresh("cancel-wake.db"))) {
    it(`${name}: this process's awaiter is woken at once, not at its poll`, { timeout: 60_000 }, async () => {
      await Effect.runPromise(Effect.gen(function*() {
        const HOUR = 3_600_000
        const job = yield* JobQueue.enqueue(Chaos, { k: 1, ms: 0, fail: 0 }, { maxAttempts: 5 })
        const store = yield* JobStore.JobStore
        const [claim] = (yield* store.claim({ queues: ["default"], tasks: ["Chaos"], limit: 1, lease: 60_000 })).claims
        assert.strictEqual(claim?.job.id, job.id)
        assert.strictEqual(yield* JobQueue.cancel(job.id), "requested")
        // an awaiter that has looked (the job runs) and waits for a change, its poll an hour. A store
        // just opened may wake it once for nothing (Postgres' listener, once connected, wakes every
        // waiter to look; SQLite's file watch at the cancel's commit): then another one, until one
        // waits (those wakes only ever make this test pass, never fail)
        let awaiter = yield* Effect.forkChild(store.wait(HOUR, yield* store.version))
        for (let tries = 0; tries < 50; tries++) {
          yield* Effect.sleep(20)
          if (awaiter.pollUnsafe() === undefined) break
          awaiter = yield* Effect.forkChild(store.wait(HOUR, yield* store.version))
        }
        assert.isUndefined(awaiter.pollUnsafe(), "no awaiter stayed waiting")
        assert.strictEqual(yield* store.settle(claim!.token, { _tag: "Retry", delay: HOUR, exit: "failed" }), "cancelled")
        const woken = yield* Fiber.join(awaiter).pipe(Effect.timeout("10 seconds"), Effect.option)
        assert.strictEqual(woken._tag, "Some", "the awaiter of the cancelled job waits for its poll")
        assert.strictEqual((yield* JobQueue.status(job.id)).state, "cancelled")
      }).pipe(Effect.scoped, Effect.provide(layer() as Layer.Layer<JobStore.JobStore>)))
    })
  }
})

/**
 * The same through a consumer, whose heartbeat here never hears of the cancel (as one that has not
 * beaten since it was asked for): what the attempt's end makes of the job. A failure that would be
 * retried, or an attempt given back by the consumer's shutdown, ends it cancelled (its awaiter gets
 * `JobCancelled`, it is never claimed again); an attempt that ends the job keeps its outcome: a
 * success, or a failure on its last attempt (dead, with that failure: docs/durable.md, "Cancel from
 * any process").
 */
describe("a consumer whose heartbeat has not heard of a cancel asked for while its attempt runs", () => {
  const deaf = (layer: () => Layer.Layer<JobStore.JobStore, any>) =>
    LayerM.effect(
      JobStore.JobStore,
      Effect.map(JobStore.JobStore, (inner): Store => ({
        ...inner,
        heartbeat: (tokens, lease) => Effect.map(inner.heartbeat(tokens, lease), (beat) => ({ ...beat, cancelled: [] }))
      }))
    ).pipe(LayerM.provide(layer()))
  const cases = [
    { end: "fails, attempts left", maxAttempts: 3, state: "cancelled", attempts: 1, outcome: "JobCancelled" },
    { end: "fails on its last attempt", maxAttempts: 1, state: "dead", attempts: 1, outcome: "boom" },
    { end: "succeeds", maxAttempts: 3, state: "succeeded", attempts: 1, outcome: "ok" },
    { end: "is given back by a shutdown", maxAttempts: 3, state: "cancelled", attempts: 0, outcome: "JobCancelled" }
  ] as const
  for (const [name, layer] of storeLayers(() => fresh("cancel-consumer.db"))) {
    for (const c of cases) {
      it(`${name}: the attempt ${c.end}: ${c.state}`, { timeout: 60_000 }, async () => {
        await Effect.runPromise(Effect.gen(function*() {
          const started = yield* Deferred.make<void>()
          const gate = yield* Deferred.make<void>()
          let starts = 0
          const consumer = yield* Scope.make()
          yield* JobQueue.consume({
            handlers: [Task.handle(Chaos, () =>
              Effect.andThen(
                Effect.andThen(Effect.sync(() => starts++), Deferred.succeed(started, undefined)),
                Effect.andThen(Deferred.await(gate), c.end === "succeeds" ? Effect.succeed("ok") : Effect.fail("boom"))
              ))],
            concurrency: 1,
            poll: "1 hour",
            lease: "1 minute",
            shutdownTimeout: 0,
            retry: Schedule.spaced("1 hour")
          }).pipe(Scope.provide(consumer))
          const job = yield* JobQueue.enqueue(Chaos, { k: 1, ms: 0, fail: 0 }, { maxAttempts: c.maxAttempts })
          yield* Deferred.await(started)
          assert.strictEqual(yield* JobQueue.cancel(job.id), "requested")
          if (c.end === "is given back by a shutdown") yield* Scope.close(consumer, Exit.void)
          else yield* Deferred.succeed(gate, undefined)
          const outcome = yield* JobQueue.await(Chaos, job.id).pipe(
            Effect.map(String),
            Effect.catch((error) => Effect.succeed(typeof error === "string" ? error : error._tag)),
            Effect.timeout("20 seconds")
          )
          assert.strictEqual(outcome, c.outcome)
          const info = yield* JobQueue.status(job.id)
          assert.deepStrictEqual([info.state, info.attempts, info.cancelRequested, starts], [c.state, c.attempts, false, 1])
          yield* Scope.close(consumer, Exit.void)
        }).pipe(Effect.scoped, Effect.provide(deaf(layer))))
      })
    }
  }
})
