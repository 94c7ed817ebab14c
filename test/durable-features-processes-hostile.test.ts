/**
 * Durable features under process chaos, on an SQLite file, Postgres and Redis: producers killed
 * (SIGKILL) in the middle of `enqueue` with dedup keys and of `enqueueAll`, then retried by another
 * process; consumers killed while they hold jobs of a rate-limited queue, one of those jobs then
 * cancelled from this process. At the end the store is read for the invariants: every job final,
 * none running, one job per dedup key, attempts = the starts the consumers printed (a claim the
 * victim took and never started aside), the rate limit held. On Postgres, a consumer and a producer
 * frozen (SIGSTOP) inside the store's transactions, whose locks every other process waits for: the
 * server ends their sessions (`IDLE_IN_TRANSACTION`) and the others go on. Every wait is for an event (a child's
 * line, its exit, a state in the store) under a deadline; the kill points are seeded
 * (WORKPOOL_CHAOS_SEED replays the choices, not their timing).
 */
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import * as Net from "node:net"
import { join } from "node:path"
import * as PgClient from "@effect/sql-pg/PgClient"
import { Effect, Exit, Layer, ManagedRuntime, Redacted, Tracer } from "effect"
import { afterAll, assert, describe, it } from "vitest"
import * as JobQueue from "../src/JobQueue.ts"
import * as PgJobStore from "../src/PgJobStore.ts"
import * as JobStore from "../src/JobStore.ts"
import {
  type Consumer,
  followConsumer,
  killMidRun,
  type ProcessStore,
  processStoresOf,
  sqliteWritable,
  startConsumer,
  untilFinal,
  untilRead,
  waitUntil
} from "./durable/children.ts"
import * as Pg from "./durable/postgres.ts"
import { Work } from "./fixtures/durable-tasks.ts"
import { maxInWindow, prng, recordingTracer } from "./helpers.ts"

const node = existsSync("node_modules/.bin/node") ? "node_modules/.bin/node" : process.execPath
const producerFixture = new URL("./fixtures/durable-producer-child.ts", import.meta.url).pathname
const dir = mkdtempSync(join(tmpdir(), "wp-features-processes-"))
let files = 0
const children: Array<ChildProcess> = []
const runtimes: Array<ManagedRuntime.ManagedRuntime<JobStore.JobStore, unknown>> = []
afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
  await Promise.all(runtimes.map((runtime) => runtime.dispose()))
  rmSync(dir, { recursive: true, force: true })
})

const seed = Number(process.env.WORKPOOL_CHAOS_SEED ?? Date.now() % 1_000_000)
console.log(`durable-features-processes-hostile seed ${seed}`)
const random = prng(seed)

const open = (layer: Layer.Layer<JobStore.JobStore, unknown>) => {
  const runtime = ManagedRuntime.make(layer)
  runtimes.push(runtime)
  return runtime
}

const producer = (target: string, env: Record<string, string>, mode: "one" | "all", jobs: number, queues: number): Consumer => {
  const child = spawn(node, [producerFixture, target, mode, String(jobs), String(queues)], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env }
  })
  children.push(child)
  return followConsumer(child)
}

/** The `created|existing <n> <id>` lines of a producer, by n. */
const told = (p: Consumer) => {
  const byN = new Map<number, { created: boolean; id: string }>()
  for (const line of p.lines) {
    const [what, n, id] = line.split(" ")
    if (what === "created" || what === "existing") byN.set(Number(n), { created: what === "created", id: id! })
  }
  return byN
}

const killed = async (p: Consumer) => {
  p.child.kill("SIGKILL")
  await p.exited
}

const finished = async (p: Consumer) => {
  await p.exited
  assert.strictEqual(p.child.exitCode, 0, `${p.stderr}\n${p.lines.slice(-10).join("\n")}`)
}

type Runtime = ReturnType<typeof open>

/** Every job of the store, in every queue. */
const everyJob = (runtime: Runtime) => runtime.runPromise(JobQueue.list({ limit: 100_000 }))

/** One job per dedup key `key-0..`, in its queue, each id the one every producer that heard back was told. */
const assertOneJobPerKey = async (runtime: Runtime, jobs: number, queues: number, producers: ReadonlyArray<Consumer>) => {
  const all = await everyJob(runtime)
  const byKey = new Map<string, Array<string>>()
  for (const job of all) byKey.set(job.dedupKey!, [...(byKey.get(job.dedupKey!) ?? []), job.id])
  assert.strictEqual(all.length, jobs, `one job per key: ${[...byKey].filter(([, ids]) => ids.length > 1).map(([k]) => k).join()}`)
  for (const job of all) {
    const n = Number(job.dedupKey!.slice("key-".length))
    assert.strictEqual(job.queue, `q${n % queues}`)
    for (const p of producers) {
      const heard = told(p).get(n)
      if (heard !== undefined) assert.strictEqual(heard.id, job.id, `key-${n}: a producer was told another job`)
    }
  }
  return all
}

/** Drains the jobs with one consumer per queue set: each succeeds with its n, at its first attempt (none was ever claimed before). */
const drain = async (runtime: Runtime, store: { target: string; env: Record<string, string> }, all: ReadonlyArray<JobQueue.JobInfo>, queues: number) => {
  const consumers = Array.from({ length: queues }, (_, q) =>
    startConsumer(store.target, { concurrency: 4, lease: 3000, jobMillis: 0, env: { ...store.env, WORKPOOL_TEST_QUEUES: `q${q}` } }))
  try {
    for (const job of all) {
      const n = Number(job.dedupKey!.slice("key-".length))
      assert.strictEqual(await runtime.runPromise(JobQueue.await(Work, job.id)), n)
    }
    for (const job of all) assert.strictEqual((await runtime.runPromise(JobQueue.status(job.id))).attempts, 1)
  } finally {
    for (const c of consumers) c.child.kill("SIGTERM")
    await Promise.all(consumers.map((c) => c.exited))
  }
}

/**
 * Whether the producer is inside its `enqueueAll`'s transaction: on SQLite while another process
 * holds the file's write lock, on Postgres while a session of the store's schema has written rows it
 * has not committed (a transaction id); on Redis (a script per queue, nothing to see between them)
 * after a seeded wait of 0 to 400 ms.
 */
const insideCall = async (store: ProcessStore): Promise<boolean> => {
  if (store.target.startsWith("redis://")) {
    await new Promise((resolve) => setTimeout(resolve, Math.floor(random() * 400)))
    return true
  }
  if (store.target.startsWith("postgres://")) {
    const rows = await Pg.admin((sql) =>
      sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE backend_xid IS NOT NULL AND query LIKE ${`%${store.env.WORKPOOL_PG_SCHEMA}%`} AND pid <> pg_backend_pid()`
    )
    return rows[0]!.n > 0
  }
  return !sqliteWritable(store.target)()
}

const stores = processStoresOf(() => join(dir, `f${files++}.db`))

describe.each(stores)("producers killed -9 mid-call and retried by another process on %s", (_name, makeStore) => {
  it("enqueue with dedup keys, killed at a random call: the retry creates exactly the jobs the first did not, one per key", { timeout: 120_000 }, async () => {
    const JOBS = 60
    const QUEUES = 3
    const store = makeStore()
    const runtime = open(store.layer)
    const first = producer(store.target, store.env, "one", JOBS, QUEUES)
    const at = 5 + Math.floor(random() * (JOBS - 10))
    await waitUntil([first], () => first.lines.includes(`sent ${at}`), `the first producer sent enqueue ${at}`)
    await killed(first)
    const before = new Set((await everyJob(runtime)).map((job) => job.dedupKey!))
    const second = producer(store.target, store.env, "one", JOBS, QUEUES)
    await finished(second)
    for (const [n, { created }] of told(second)) {
      assert.strictEqual(created, !before.has(`key-${n}`), `key-${n}: created ${created}, stored before the retry ${before.has(`key-${n}`)}`)
    }
    for (const [n, { created }] of told(first)) assert.isTrue(created, `key-${n} existed before the first producer`)
    await drain(runtime, store, await assertOneJobPerKey(runtime, JOBS, QUEUES, [first, second]), QUEUES)
  })

  it("enqueueAll over 3 queues, killed mid-call: each queue's part (the whole call on SQLite and Postgres) stored all or none; the retry completes it, one job per key", {
    timeout: 120_000
  }, async () => {
    const JOBS = 3000
    const QUEUES = 3
    const store = makeStore()
    const runtime = open(store.layer)
    const first = producer(store.target, store.env, "all", JOBS, QUEUES)
    await waitUntil([first], () => first.lines.includes("sent"), "the first producer sent its enqueueAll")
    // killed inside its transaction where that can be seen (SQLite: it holds the file's write lock;
    // Postgres: its session has written rows it has not committed), else at a seeded point of the call
    let inside = false
    for (const deadline = Date.now() + 60_000; !first.lines.includes("done") && !inside; inside = await insideCall(store)) {
      assert.isBelow(Date.now(), deadline, "the call neither went inside its transaction nor ended")
      await new Promise((resolve) => setTimeout(resolve, 1))
    }
    await killed(first)
    const stored = await everyJob(runtime)
    const perQueue = Array.from({ length: QUEUES }, (_, q) => stored.filter((job) => job.queue === `q${q}`).length)
    const whole = JOBS / QUEUES
    for (const count of perQueue) assert.include([0, whole], count, `a queue's part stored in part: ${perQueue.join()}`)
    if (!store.target.startsWith("redis://")) assert.include([0, JOBS], stored.length, `the call stored in part: ${perQueue.join()}`)
    if (first.lines.includes("done")) assert.strictEqual(stored.length, JOBS, "a call that answered stored every job")
    const second = producer(store.target, store.env, "all", JOBS, QUEUES)
    await finished(second)
    const before = new Set(stored.map((job) => job.dedupKey!))
    for (const [n, { created }] of told(second)) assert.strictEqual(created, !before.has(`key-${n}`), `key-${n}`)
    const all = await assertOneJobPerKey(runtime, JOBS, QUEUES, [first, second])
    // FIFO within a queue, as one by one: the retry's jobs after the first call's
    if (process.env.DURABLE_DEBUG) console.log({ inside, perQueue, told: told(first).size })
    await drain(runtime, store, all.filter((_, i) => i % 50 === 0), QUEUES)
  })
})

describe.each(stores)("a rate-limited queue whose consumer is killed -9 holding jobs, one of them then cancelled, on %s", (_name, makeStore) => {
  it("the survivors run the rest within the limit, the cancelled job never runs again, every job final, attempts = real starts", { timeout: 180_000 }, async () => {
    const JOBS = 40
    const LIMIT = 5
    const INTERVAL = 500
    const LEASE = 1500
    const store = makeStore()
    const runtime = open(store.layer)
    await runtime.runPromise(JobQueue.setRateLimit("default", { limit: LIMIT, interval: INTERVAL }))
    const consumer = (env: Record<string, string> = {}) =>
      startConsumer(store.target, { concurrency: 3, lease: LEASE, jobMillis: 30, env: { ...store.env, ...env } })
    const victim = consumer({ WORKPOOL_TEST_HOLD_FROM: "2" })
    const survivors = [consumer(), consumer()]
    const consumers = [victim, ...survivors]
    await waitUntil(consumers, () => consumers.every((c) => c.lines.includes("ready")), "every consumer is ready")
    const ids = await runtime.runPromise(Effect.forEach(Array.from({ length: JOBS }, (_, n) => n), (n) =>
      Effect.map(JobQueue.enqueue(Work, { n }, { maxAttempts: 3, priority: n % 3 }), (job) => job.id)))
    const byId = new Map(ids.map((id, n) => [id, n]))
    const running = () => runtime.runPromise(JobQueue.list({ state: "running", limit: JOBS })).then((jobs) => jobs.map((job) => byId.get(job.id)!))
    const held = [...await killMidRun(victim, consumers, 2, running, true)]
    assert.isAbove(held.length, 0, "the victim held a job when it died")
    const cancelled = held[0]!
    assert.strictEqual(await runtime.runPromise(JobQueue.cancel(ids[cancelled]!)), "requested")
    const stats = await untilFinal(() => runtime.runPromise(JobQueue.stats("default")), JOBS)
    assert.deepStrictEqual([stats.succeeded, stats.cancelled, stats.dead], [JOBS - 1, 1, 0], JSON.stringify(stats))
    const exit = await runtime.runPromise(Effect.exit(JobQueue.await(Work, ids[cancelled]!)))
    assert.isTrue(Exit.isFailure(exit) && JSON.stringify(exit.cause).includes("JobCancelled"), JSON.stringify(exit))
    // every start printed by now: each succeeded job printed its end
    await waitUntil(consumers, () => survivors.reduce((sum, c) => sum + c.lines.filter((l) => l.startsWith("done ")).length, 0) + victim.lines.filter((l) => l.startsWith("done ")).length >= JOBS - 1, "every success printed")
    const starts = new Map<number, number>()
    for (const c of consumers) for (const n of c.started) starts.set(n, (starts.get(n) ?? 0) + 1)
    assert.isFalse(survivors.some((c) => c.started.includes(cancelled)), "the cancelled job started again")
    const jobs = await runtime.runPromise(JobQueue.list({ limit: JOBS }))
    assert.strictEqual(jobs.length, JOBS)
    let unstarted = 0
    for (const job of jobs) {
      const n = byId.get(job.id)!
      const printed = starts.get(n) ?? 0
      // a claim the victim took and died before its handler printed counts an attempt no line shows
      assert.include([printed, printed + 1], job.attempts, `job ${n}: ${job.attempts} attempts, ${printed} starts printed`)
      if (job.attempts > printed) unstarted++
      if (n !== cancelled) assert.strictEqual(job.state, "succeeded")
    }
    assert.isAtMost(unstarted, 3, "claims the victim never started: at most its slots")
    const startedAt = jobs.filter((job) => job.state === "succeeded").map((job) => job.startedAt!.getTime())
    assert.isAtMost(maxInWindow(startedAt, INTERVAL), LIMIT, "the total start rate holds in every window")
    assert.deepStrictEqual(await running(), [], "none left running")
    await untilRead(() => runtime.runPromise(JobQueue.status(ids[cancelled]!)), (info) => !info.cancelRequested, "the cancel is no longer requested")
    for (const c of survivors) c.child.kill("SIGTERM")
    await Promise.all(survivors.map((c) => c.exited))
  })
})

/** Whether a session of `schema`, idle inside a transaction, holds a row lock on the queues' table (a `FOR UPDATE` of `wp_queue`). */
const queueRowLockedIdle = async (schema: string) => {
  const rows = await Pg.admin((sql) =>
    sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE a.state = 'idle in transaction' AND l.mode = 'RowShareLock'
        AND l.relation = to_regclass(${`"${schema}".wp_queue`})`
  )
  return rows[0]!.n > 0
}

/** Whether the process is stopped (state T: a SIGSTOP has landed, not just been sent). */
const isStopped = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
  return stat.slice(stat.lastIndexOf(")") + 2).startsWith("T")
}

describe.skipIf(!Pg.enabled).each([
  ["its own connections", {}],
  ["the application's multiplexed client (layerClient)", { WORKPOOL_TEST_MULTIPLEX: "1" }]
])("Postgres, the store on %s: a consumer frozen (SIGSTOP) inside the claim transaction of a rate-limited queue", (_name, clientEnv) => {
  it("another consumer of the queue still starts its jobs, within seconds (the frozen session's lock on the queue's row is let go by the server), and every job ends once the first resumes", {
    timeout: 180_000
  }, async () => {
    const JOBS = 200
    const schema = Pg.freshSchema()
    const store: ProcessStore = {
      target: Pg.url!,
      env: { WORKPOOL_PG_SCHEMA: schema },
      layer: PgJobStore.layer({ url: Pg.url!, schema, maxConnections: 2 })
    }
    const runtime = open(store.layer)
    // a limit the consumers never reach: every claim of the queue is the limited claim's transaction
    await runtime.runPromise(JobQueue.setRateLimit("default", { limit: 100_000, interval: 1000 }))
    const ids = await runtime.runPromise(Effect.forEach(Array.from({ length: JOBS }, (_, n) => n), (n) =>
      Effect.map(JobQueue.enqueue(Work, { n }), (job) => job.id)))
    const frozen = startConsumer(store.target, { concurrency: 1, lease: 3000, jobMillis: 5, env: { ...store.env, ...clientEnv } })
    await waitUntil([frozen], () => frozen.started.length > 0, "the first consumer started a job")
    // frozen until caught between two statements of its claim's transaction, the queue's row locked
    const pid = frozen.child.pid!
    for (let tries = 0; ; tries++) {
      assert.isBelow(tries, 500, "never caught inside its claim's transaction")
      frozen.child.kill("SIGSTOP")
      while (!isStopped(pid)) await new Promise((resolve) => setTimeout(resolve, 1))
      if (await queueRowLockedIdle(schema)) break
      frozen.child.kill("SIGCONT")
      await new Promise((resolve) => setTimeout(resolve, 1 + (tries % 7)))
    }
    const done = frozen.lines.filter((line) => line.startsWith("done ")).length
    const other = startConsumer(store.target, { concurrency: 1, lease: 3000, jobMillis: 0, env: store.env })
    // it waited for the frozen process's lock for as long as that process lived (no lock_timeout,
    // no bound on a transaction left idle): the whole queue stalled on every machine
    await waitUntil([other], () => other.lines.some((line) => line.startsWith("done ")), "the other consumer ran a job", 45_000)
    frozen.child.kill("SIGCONT")
    const stats = await untilFinal(() => runtime.runPromise(JobQueue.stats("default")), JOBS)
    assert.strictEqual(stats.succeeded, JOBS, JSON.stringify(stats))
    assert.deepStrictEqual(await runtime.runPromise(Effect.forEach(ids, (id) => JobQueue.await(Work, id))), ids.map((_, n) => n))
    if (process.env.DURABLE_DEBUG) console.log({ done, frozenAfter: frozen.lines.filter((line) => line.startsWith("done ")).length - done, warnings: frozen.warnings })
    for (const c of [frozen, other]) c.child.kill("SIGTERM")
    await Promise.all([frozen, other].map((c) => c.exited))
    for (const c of [frozen, other]) assert.strictEqual(c.child.exitCode, 130, `${c.stderr}\n${c.lines.slice(-20).join("\n")}`)
  })
})

describe.skipIf(!Pg.enabled)("Postgres: a producer frozen (SIGSTOP) inside its enqueueAll's transaction with dedup keys", () => {
  it("another producer's batch of the same queues ends within seconds (the frozen session is ended by the server, its batch rolled back), one job per key; resumed, the frozen one's call fails", {
    timeout: 180_000
  }, async () => {
    const JOBS = 3000
    const QUEUES = 3
    const [, makeStore] = stores.find(([name]) => name === "Postgres")!
    const store = makeStore()
    const runtime = open(store.layer)
    const frozen = producer(store.target, store.env, "all", JOBS, QUEUES)
    await waitUntil([frozen], () => frozen.lines.includes("sent"), "the first producer sent its enqueueAll")
    const pid = frozen.child.pid!
    for (let tries = 0; ; tries++) {
      assert.isBelow(tries, 5000, "never caught inside its transaction")
      assert.notInclude(frozen.lines, "done", "its call ended before it was caught inside its transaction")
      frozen.child.kill("SIGSTOP")
      while (!isStopped(pid)) await new Promise((resolve) => setTimeout(resolve, 1))
      if (await insideCall(store)) break
      frozen.child.kill("SIGCONT")
      await new Promise((resolve) => setTimeout(resolve, 1))
    }
    // the other's batch waited for the frozen one's dedup locks (one a queue) as long as it lived
    const other = producer(store.target, store.env, "all", JOBS, QUEUES)
    await waitUntil([other], () => other.lines.includes("done"), "the other producer's batch ended", 45_000)
    await finished(other)
    assert.strictEqual([...told(other).values()].filter((handle) => handle.created).length, JOBS, "the frozen batch stored nothing")
    frozen.child.kill("SIGCONT")
    await frozen.exited
    assert.strictEqual(frozen.child.exitCode, 1, "its call failed: its session was ended")
    assert.notInclude(frozen.lines, "done")
    await assertOneJobPerKey(runtime, JOBS, QUEUES, [frozen, other])
  })
})

describe.skipIf(!Pg.enabled)("Postgres: the store's operations inside the application's transaction (layerClient)", () => {
  // on a multiplexed client the store pins each write in a transaction of its own (bounded when it
  // holds several statements; a one-write pin is not, see docs/durable.md): inside
  // the application's, that pin is the application's savepoint and must not be taken for the store's
  it.each([false, true])("leave the transaction's idle bound as the application set it: the store bounds only transactions of its own (multiplex: %s)", { timeout: 60_000 }, async (multiplex) => {
    const Database = PgClient.layer({ url: Redacted.make(Pg.url!), maxConnections: 2, multiplex })
    const Jobs = PgJobStore.layerClient({ schema: Pg.freshSchema() }).pipe(Layer.provide(Database))
    const shown = await Effect.runPromise(Effect.gen(function*() {
      const sql = yield* PgClient.PgClient
      return yield* sql.withTransaction(Effect.gen(function*() {
        yield* JobQueue.enqueueAll(Work, [0, 1].map((n) => ({ payload: { n }, options: { dedupKey: `key-${n}` } })), { queue: "q" })
        yield* JobQueue.setRateLimit("q", { limit: 5, interval: 1000 })
        return (yield* sql<{ idle_in_transaction_session_timeout: string }>`SHOW idle_in_transaction_session_timeout`)[0]!
          .idle_in_transaction_session_timeout
      }))
    }).pipe(Effect.scoped, Effect.provide(Layer.merge(Jobs, Database))))
    assert.strictEqual(shown, "0")
  })
})

/**
 * A stand-in for a pooler in front of the server (PgBouncer knows a few startup parameters only):
 * a connection whose startup packet sets idle_in_transaction_session_timeout is refused with
 * PgBouncer's FATAL, or passed on without it; everything else is piped to the server as it is.
 */
const fakePooler = (mode: "refuses" | "drops") =>
  new Promise<{ port: number; seen: () => number; close: () => void }>((resolve) => {
    const upstream = new URL(Pg.url!)
    const sockets = new Set<Net.Socket>()
    let seen = 0
    const server = Net.createServer((client) => {
      sockets.add(client)
      let buffered = Buffer.alloc(0)
      const onData = (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk])
        if (buffered.length < 4 || buffered.length < buffered.readInt32BE(0)) return
        client.off("data", onData)
        const length = buffered.readInt32BE(0)
        let packet = buffered.subarray(0, length)
        const rest = buffered.subarray(length)
        if (packet.readInt32BE(4) === 196608) {
          const fields = packet.subarray(8, length - 1).toString("utf8").split("\0").slice(0, -1)
          const at = fields.indexOf("idle_in_transaction_session_timeout")
          if (at >= 0 && at % 2 === 0) {
            seen++
            if (mode === "refuses") {
              const body = Buffer.from("SFATAL\0VFATAL\0C08P01\0Munsupported startup parameter: idle_in_transaction_session_timeout\0\0")
              const head = Buffer.alloc(5)
              head.write("E")
              head.writeInt32BE(body.length + 4, 1)
              client.end(Buffer.concat([head, body]))
              return
            }
            fields.splice(at, 2)
            const text = Buffer.from(fields.map((field) => field + "\0").join("") + "\0")
            packet = Buffer.alloc(8 + text.length)
            packet.writeInt32BE(8 + text.length, 0)
            packet.writeInt32BE(196608, 4)
            text.copy(packet, 8)
          }
        }
        const server = Net.connect({ host: upstream.hostname, port: Number(upstream.port || 5432) })
        sockets.add(server)
        server.write(Buffer.concat([packet, rest]))
        client.pipe(server).pipe(client)
        const end = () => {
          client.destroy()
          server.destroy()
        }
        client.on("close", end).on("error", end)
        server.on("close", end).on("error", end)
      }
      client.on("data", onData).on("error", () => client.destroy())
    })
    server.listen(0, "127.0.0.1", () =>
      resolve({
        port: (server.address() as Net.AddressInfo).port,
        seen: () => seen,
        close: () => {
          server.close()
          for (const socket of sockets) socket.destroy()
        }
      }))
  })

describe.skipIf(!Pg.enabled)("Postgres: the idle bound of the store's transactions on its own connections (PgJobStore.layer)", () => {
  // the statements of a setRateLimit, an enqueueAll with dedup keys and a claim of the rate-limited
  // queue (each the store's transaction), as the driver's spans name them
  const statementsOf = (layer: Layer.Layer<JobStore.JobStore, unknown>) => {
    const { spans, tracer } = recordingTracer()
    return Effect.runPromise(Effect.gen(function*() {
      const store = yield* JobStore.JobStore
      yield* JobQueue.setRateLimit("default", { limit: 100_000, interval: 1000 })
      yield* JobQueue.enqueueAll(Work, [0, 1].map((n) => ({ payload: { n }, options: { dedupKey: `key-${n}` } })))
      const { claims } = yield* store.claim({ queues: ["default"], tasks: ["Work"], limit: 2, lease: 30_000 })
      assert.strictEqual(claims.length, 2)
      return spans.map((span) => String(span.attributes.get("db.query.text") ?? ""))
    }).pipe(Effect.provide(Layer.merge(layer, Layer.succeed(Tracer.Tracer, tracer)))))
  }

  it("is each session's default, sent as it connects: its transactions run no set_config, their statement more (the application's client's still do)", { timeout: 60_000 }, async () => {
    const own = await statementsOf(PgJobStore.layer({ url: Pg.url!, schema: Pg.freshSchema(), maxConnections: 2 }))
    assert.isTrue(own.some((text) => text.includes("wp_queue")), own.join("\n"))
    assert.isFalse(own.some((text) => text.includes("set_config")), own.join("\n"))
    // the spans show the statements: on the application's client the store still sets the bound
    const client = await statementsOf(PgJobStore.layerClient({ schema: Pg.freshSchema() }).pipe(
      Layer.provide(PgClient.layer({ url: Redacted.make(Pg.url!), maxConnections: 2 }))
    ))
    assert.isTrue(client.some((text) => text.includes("idle_in_transaction_session_timeout")), client.join("\n"))
  })

  it.each(["refuses", "drops"] as const)("a pooler between that %s the startup parameter (PgBouncer's default, its ignore_startup_parameters): the store opens, and its transactions set the bound themselves", { timeout: 60_000 }, async (mode) => {
    const pooler = await fakePooler(mode)
    try {
      const url = new URL(Pg.url!)
      url.host = `127.0.0.1:${pooler.port}`
      const texts = await statementsOf(PgJobStore.layer({ url: url.toString(), schema: Pg.freshSchema(), maxConnections: 2 }))
      assert.isTrue(texts.some((text) => text.includes("idle_in_transaction_session_timeout', ")), texts.join("\n"))
      assert.isAbove(pooler.seen(), 0, "it saw the parameter")
    } finally {
      pooler.close()
    }
  })

  it("the URL's own startup options still apply (read-only sessions: the migrations fail, saying so)", { timeout: 60_000 }, async () => {
    const url = new URL(Pg.url!)
    url.searchParams.set("options", "-c default_transaction_read_only=on")
    const exit = await Effect.runPromiseExit(
      Effect.provide(JobQueue.stats("default"), PgJobStore.layer({ url: url.toString(), schema: Pg.freshSchema(), maxConnections: 1 }))
    )
    assert.isTrue(Exit.isFailure(exit) && JSON.stringify(exit.cause).includes("read-only transaction"), JSON.stringify(exit))
  })
})

const repeatFixture = new URL("./fixtures/durable-repeat-child.ts", import.meta.url).pathname

/** The ticks (ms) of the repeat `r`'s jobs in the store, in order. */
const ticksOf = (runtime: Runtime) =>
  runtime.runPromise(JobQueue.list({ queue: "ticks", limit: 100_000 })).then((jobs) =>
    jobs.map((job) => Number(job.id.slice("repeat:r:".length))).sort((a, b) => a - b))

describe.each(stores)("the only process repeating a per-second schedule (catchUp 10 s) killed -9 just after a tick and started again, its ticks run by a consumer process, on %s", (_name, makeStore) => {
  it("each tick enqueued once and run once; none of the ticks that passed while no process ran it (not caught up, as documented); contiguous before and after", { timeout: 120_000 }, async () => {
    const store = makeStore()
    const runtime = open(store.layer)
    const owner = () => {
      const child = spawn(node, [repeatFixture, store.target, "r", "* * * * * *", "0", "ticks"], {
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, ...store.env, WORKPOOL_CATCH_UP: "10000" }
      })
      children.push(child)
      return followConsumer(child)
    }
    const consumer = startConsumer(store.target, { concurrency: 2, lease: 3000, jobMillis: 0, env: { ...store.env, WORKPOOL_TEST_QUEUES: "ticks" } })
    const first = owner()
    await waitUntil([first], () => first.lines.includes("ready"), "the schedule runs")
    const seen = (await untilRead(() => ticksOf(runtime), (t) => t.length >= 3, "3 ticks")).length
    await untilRead(() => ticksOf(runtime), (t) => t.length > seen, "a tick")
    await killed(first)
    const before = await ticksOf(runtime)
    const killedAt = Date.now()
    // two ticks pass with no process running the schedule
    await untilRead(async () => Date.now(), (now) => now >= killedAt + 2500, "2.5 s after the kill")
    const restartedAt = Date.now()
    const second = owner()
    await waitUntil([second], () => second.lines.includes("ready"), "the schedule runs again")
    const all = await untilRead(() => ticksOf(runtime), (t) => t.filter((at) => at > restartedAt).length >= 3, "3 ticks after the restart")
    second.child.kill("SIGTERM")
    await second.exited
    const ticks = await ticksOf(runtime)
    assert.strictEqual(new Set(ticks).size, ticks.length, "a tick enqueued twice")
    // before the kill, one a second; after it, none until the restart; then one a second again
    const after = ticks.filter((at) => at > before.at(-1)!)
    assert.isAtLeast(all.length, before.length + 3)
    for (const part of [before, after]) {
      for (let i = 1; i < part.length; i++) assert.strictEqual(part[i]! - part[i - 1]!, 1000, `a tick skipped: ${ticks.join()}`)
    }
    assert.isAbove(after[0]!, restartedAt - 1000, `a tick that passed while no process ran the schedule was enqueued: ${after[0]} (restarted at ${restartedAt})`)
    // every tick's job ran once, at its first attempt
    const stats = await untilFinal(() => runtime.runPromise(JobQueue.stats("ticks")), ticks.length)
    assert.strictEqual(stats.succeeded, ticks.length, JSON.stringify(stats))
    await waitUntil([consumer], () => consumer.lines.filter((line) => line.startsWith("done ")).length >= ticks.length, "every tick's end printed")
    assert.strictEqual(consumer.started.length, ticks.length, "each tick's job started once")
    for (const job of await runtime.runPromise(JobQueue.list({ queue: "ticks", limit: 1000 }))) assert.strictEqual(job.attempts, 1)
    consumer.child.kill("SIGTERM")
    await consumer.exited
  })
})
