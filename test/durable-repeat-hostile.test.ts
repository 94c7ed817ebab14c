/**
 * Hostile tests of `JobQueue.repeat` on the real stores (an SQLite file, Postgres, Redis) with
 * several producer processes (fixtures/durable-repeat-child.ts): processes frozen (SIGSTOP) across
 * ticks, killed (SIGKILL) at a tick, a Postgres server of its own stopped across a tick, a store that
 * stalls (a lock) across ticks, clocks skewed between processes, and two processes that disagree on
 * a schedule of one name. Every wait is for an event (a child's line, a state in the store, the wall
 * clock passing a tick) under a deadline, never a guessed sleep.
 */
import { assert, describe, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync } from "node:fs"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Cron, Effect, Exit, type Layer, ManagedRuntime, Schedule, Scope } from "effect"
import { TestClock } from "effect/testing"
import { processStoresOf, untilRead, waitUntil } from "./durable/children.ts"
import { Work } from "./fixtures/durable-tasks.ts"
import { afterAll } from "vitest"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as PgJobStore from "../src/PgJobStore.ts"
import * as RedisJobStore from "../src/RedisJobStore.ts"
import { Echo } from "./durable/conformance.ts"
import * as Pg from "./durable/postgres.ts"
import * as pgServer from "./durable/pgserver.ts"
import * as Rd from "./durable/redis.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wp-repeat-hostile-"))
let files = 0
const freshFile = () => path.join(dir, `f${files++}.db`)
const runtimes: Array<ManagedRuntime.ManagedRuntime<JobStore.JobStore, unknown>> = []
const node = existsSync("node_modules/.bin/node") ? "node_modules/.bin/node" : process.execPath
const fixture = new URL("./fixtures/durable-repeat-child.ts", import.meta.url).pathname
const children: Array<ChildProcess> = []
afterAll(async () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGCONT")
      child.kill("SIGKILL")
    }
  }
  await Promise.all(runtimes.map((runtime) => runtime.dispose()))
  fs.rmSync(dir, { recursive: true, force: true })
})

/** A child of fixtures/durable-repeat-child.ts, followed by its lines. */
interface Child {
  readonly child: ChildProcess
  readonly lines: Array<string>
  readonly exited: Promise<void>
  stderr: string
}
const spawnChild = (
  target: string,
  env: Record<string, string>,
  args: { name: string; cron: string; n?: number; queue?: string }
): Child => {
  const child = spawn(node, [fixture, target, args.name, args.cron, String(args.n ?? 0), args.queue ?? "ticks"], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env }
  })
  children.push(child)
  const result: Child = { child, lines: [], exited: new Promise((resolve) => child.on("close", () => resolve())), stderr: "" }
  let buffered = ""
  child.stdout!.on("data", (chunk: Buffer) => {
    buffered += chunk.toString()
    const lines = buffered.split("\n")
    buffered = lines.pop()!
    result.lines.push(...lines)
  })
  child.stderr!.on("data", (chunk: Buffer) => {
    result.stderr += chunk.toString()
  })
  return result
}
const kill = async (procs: ReadonlyArray<Child>) => {
  for (const p of procs) {
    if (p.child.exitCode === null && p.child.signalCode === null) {
      p.child.kill("SIGCONT")
      p.child.kill("SIGKILL")
    }
  }
  await Promise.all(procs.map((p) => p.exited))
}
/** Until the wall clock is at or past `at` (a tick passing is the event). */
const untilTime = (at: number) => untilRead(async () => Date.now(), (now) => now >= at, `the time ${new Date(at).toISOString()}`)

/** The ticks (ms) of a repeat's jobs in the store, in order. */
const ticksOf = (name: string, queue = "ticks") =>
  Effect.map(JobQueue.list({ queue, limit: 100_000 }), (jobs) =>
    jobs.filter((job) => job.id.startsWith(`repeat:${name}:`)).map((job) => Number(job.id.slice(`repeat:${name}:`.length))).sort((a, b) => a - b))

const processStores = processStoresOf(freshFile)

const open = (layer: Layer.Layer<JobStore.JobStore, unknown>) => {
  const runtime = ManagedRuntime.make(layer)
  runtimes.push(runtime)
  return runtime
}

/** Every tick once, a second apart with none skipped from the first to the last. */
const assertContiguous = (all: ReadonlyArray<number>, what = "") => {
  assert.strictEqual(new Set(all).size, all.length, `a tick enqueued twice ${what}: ${all.join()}`)
  for (const [i, at] of all.entries()) {
    assert.strictEqual(at % 1000, 0, `a tick on a second: ${at}`)
    if (i > 0) assert.strictEqual(at - all[i - 1]!, 1000, `a tick skipped between ${all[i - 1]} and ${at} ${what}: ${all.join()}`)
  }
}

describe.each(processStores)("two processes repeating one per-second schedule on %s", (_name, makeStore) => {
  it("one frozen (SIGSTOP) across 3 ticks and thawed, then the other killed (SIGKILL) just after a tick: each tick once, none skipped, counted once in stats", async () => {
    const { target, env, layer } = makeStore()
    const runtime = open(layer)
    const ticks = () => runtime.runPromise(ticksOf("r"))
    const [a, b] = [0, 1].map(() => spawnChild(target, env, { name: "r", cron: "* * * * * *" })) as [Child, Child]
    try {
      await waitUntil([a, b], () => a.lines.includes("ready") && b.lines.includes("ready"), "both run the schedule")
      const started = Date.now()
      await untilRead(ticks, (t) => t.filter((at) => at > started).length >= 2, "2 ticks with both")
      b.child.kill("SIGSTOP")
      const frozen = Date.now()
      await untilRead(ticks, (t) => t.filter((at) => at > frozen + 1000).length >= 3, "3 ticks while one is frozen")
      b.child.kill("SIGCONT")
      const thawed = Date.now()
      await untilRead(ticks, (t) => t.filter((at) => at > thawed + 1000).length >= 2, "2 ticks after the thaw")
      // just after a tick is stored: a is asleep until the next, or finishing its enqueue of this one
      const seen = (await ticks()).length
      await untilRead(ticks, (t) => t.length > seen, "a tick")
      a.child.kill("SIGKILL")
      const killed = Date.now()
      await untilRead(ticks, (t) => t.filter((at) => at > killed + 1000).length >= 3, "3 ticks after the kill")
    } finally {
      await kill([a, b])
    }
    const all = await ticks()
    assertContiguous(all)
    const jobs = await runtime.runPromise(JobQueue.list({ queue: "ticks", limit: 100_000 }))
    assert.strictEqual(jobs.length, all.length, "only the schedule's jobs")
    for (const job of jobs) assert.strictEqual(job.visibleAt.getTime(), Number(job.id.split(":")[2]), "due at its tick")
    const stats = await runtime.runPromise(JobQueue.stats("ticks"))
    assert.strictEqual(stats.waiting + stats.delayed + stats.running, all.length, `each tick's job counted once: ${JSON.stringify(stats)}`)
  }, 120_000)

  it("a process 2.5 s behind the others' clock (a skewed machine) and one 2.5 s ahead: each tick once, due at its tick", async () => {
    const { target, env, layer } = makeStore()
    const runtime = open(layer)
    const ticks = () => runtime.runPromise(ticksOf("skew"))
    const procs = ["0", "-2500", "2500"].map((skew) => spawnChild(target, { ...env, WORKPOOL_SKEW_MS: skew }, { name: "skew", cron: "* * * * * *" }))
    try {
      await waitUntil(procs, () => procs.every((p) => p.lines.includes("ready")), "all run the schedule")
      const started = Date.now()
      await untilRead(ticks, (t) => t.filter((at) => at > started + 3000).length >= 3, "3 ticks after every process is past its skew")
    } finally {
      await kill(procs)
    }
    const all = await ticks()
    assert.strictEqual(new Set(all).size, all.length)
    const jobs = await runtime.runPromise(JobQueue.list({ queue: "ticks", limit: 100_000 }))
    assert.strictEqual(jobs.length, all.length)
    for (const job of jobs) assert.strictEqual(job.visibleAt.getTime(), Number(job.id.split(":")[2]), "due at its tick")
  }, 120_000)

  it("a process frozen (SIGSTOP) past its tick while another enqueues it, the job finishes and is purged: thawed, it does not enqueue that tick again (it would run twice)", async () => {
    const { target, env, layer } = makeStore()
    const runtime = open(layer)
    const ticks = () => runtime.runPromise(ticksOf("p"))
    const [a, b] = [0, 1].map(() => spawnChild(target, env, { name: "p", cron: "* * * * * *" })) as [Child, Child]
    try {
      await waitUntil([a, b], () => a.lines.includes("ready") && b.lines.includes("ready"), "both run the schedule")
      const started = Date.now()
      await untilRead(ticks, (t) => t.filter((at) => at > started).length >= 1, "a tick with both")
      // half-way between two ticks: b sleeps (frozen mid-enqueue, it would be the stalled store
      // below: its tick stored late, once, thawed)
      await untilTime(Math.floor(Date.now() / 1000) * 1000 + 1500)
      b.child.kill("SIGSTOP")
      const frozen = Date.now()
      // the tick b sleeps for (the first after it froze), and two more, enqueued by a
      await untilRead(ticks, (t) => t.filter((at) => at > frozen + 1000).length >= 2, "ticks while b is frozen")
      a.child.kill("SIGKILL")
      await a.exited
      // every tick so far ends (cancelled: final) and is purged as soon as the docs allow: once older
      // than the period. (It purged with olderThan 0, which the docs never allowed: the latest tick,
      // purged before its deadline, is on time for b as it thaws, and b enqueues it, as it would
      // any on-time tick whose job was purged that young.)
      const done = await ticks()
      await runtime.runPromise(Effect.forEach(done, (at) => JobQueue.cancel(`repeat:p:${at}`), { discard: true }))
      let purged = 0
      await untilRead(async () => purged += await runtime.runPromise(JobQueue.purge({ olderThan: "1 second" })), (n) => n >= done.length, "every tick purged")
      assert.strictEqual(purged, done.length)
      b.child.kill("SIGCONT")
      const thawed = Date.now()
      // b's loop is sequential: a tick after the thaw stored means whatever it did on waking is done
      await untilRead(ticks, (t) => t.some((at) => at > thawed + 1000), "b enqueues a tick after the thaw")
      const again = (await ticks()).filter((at) => done.includes(at))
      assert.deepStrictEqual(again, [], "a tick enqueued (and run) a second time")
    } finally {
      await kill([a, b])
    }
  }, 120_000)

  it("two processes repeating one name with different payloads: one job per tick, whichever process stored it first; with different crons: each cron's ticks", async () => {
    const { target, env, layer } = makeStore()
    const runtime = open(layer)
    const procs = [
      spawnChild(target, env, { name: "same", cron: "* * * * * *", n: 1 }),
      spawnChild(target, env, { name: "same", cron: "* * * * * *", n: 2 }),
      spawnChild(target, env, { name: "crons", cron: "*/2 * * * * *", n: 1, queue: "crons" }),
      spawnChild(target, env, { name: "crons", cron: "*/3 * * * * *", n: 2, queue: "crons" })
    ]
    try {
      await waitUntil(procs, () => procs.every((p) => p.lines.includes("ready")), "all run their schedules")
      const started = Date.now()
      await untilTime(Math.ceil(started / 6000) * 6000 + 6500)
      await untilRead(() => runtime.runPromise(ticksOf("same")), (t) => t.filter((at) => at > started).length >= 4, "4 ticks")
    } finally {
      await kill(procs)
    }
    const same = await runtime.runPromise(JobQueue.list({ queue: "ticks", limit: 100_000 }))
    assertContiguous(same.map((job) => Number(job.id.split(":")[2])).sort((x, y) => x - y))
    const payloads = await runtime.runPromise(
      Effect.forEach(same, (job) => JobStore.JobStore.use((store) => Effect.map(store.get(job.id), (row) => row?.payload)))
    )
    for (const payload of payloads) assert.include([`{"n":1}`, `{"n":2}`], payload)
    const crons = await runtime.runPromise(JobQueue.list({ queue: "crons", limit: 100_000 }))
    const ats = crons.map((job) => Number(job.id.split(":")[2]))
    assert.strictEqual(new Set(ats).size, ats.length)
    assert.isTrue(ats.some((at) => at % 6000 === 2000 || at % 6000 === 4000), "the every-2-s ticks")
    assert.isTrue(ats.some((at) => at % 6000 === 3000), "the every-3-s ticks")
    assert.isTrue(ats.every((at) => at % 2000 === 0 || at % 3000 === 0))
  }, 120_000)
})

describe.skipIf(!Pg.enabled)("a per-second repeat whose Postgres store stalls (a lock on the job table held 5 s)", () => {
  // every tick that came during an enqueue that hung was enqueued late, one after another, when the
  // store answered (a stall of an hour on a per-second schedule: 3,600 jobs at once), where a store
  // that failed had its ticks skipped: now one rule for both, a tick reached past its deadline (the
  // next tick's time, or catchUp after its own) is skipped, and the schedule goes on from the next
  it("the ticks that passed during the stall are skipped, as for a store that fails, not enqueued in a burst when it answers; with catchUp, each is enqueued, in order, once", async () => {
    const schema = Pg.freshSchema()
    const runtime = open(PgJobStore.layer({ url: Pg.url!, schema, maxConnections: 2 }))
    const ticks = (name: string) => () => runtime.runPromise(ticksOf(name))
    const p = spawnChild(Pg.url!, { WORKPOOL_PG_SCHEMA: schema }, { name: "stall", cron: "* * * * * *" })
    const filler = spawnChild(Pg.url!, { WORKPOOL_PG_SCHEMA: schema, WORKPOOL_CATCH_UP: "60000" }, { name: "filled", cron: "* * * * * *" })
    const { Client } = await import("pg")
    const locker = new Client({ connectionString: Pg.url! })
    await locker.connect()
    try {
      await waitUntil([p, filler], () => p.lines.includes("ready") && filler.lines.includes("ready"), "the schedules run")
      const started = Date.now()
      await untilRead(ticks("stall"), (t) => t.filter((at) => at > started).length >= 2, "2 ticks")
      await untilRead(ticks("filled"), (t) => t.filter((at) => at > started).length >= 2, "2 ticks with catchUp")
      await locker.query("BEGIN")
      await locker.query(`LOCK TABLE "${schema}".wp_job IN EXCLUSIVE MODE`)
      const locked = Date.now()
      const holder = (await locker.query("SELECT pg_backend_pid() AS pid")).rows[0].pid as number
      // the next ticks' inserts wait for the lock
      await Effect.runPromise(Pg.blockedBy(holder))
      await untilTime(locked + 5000)
      await locker.query("COMMIT")
      const released = Date.now()
      await untilRead(ticks("stall"), (t) => t.some((at) => at > released + 1000), "a tick after the release")
      await untilRead(ticks("filled"), (t) => t.some((at) => at > released + 1000), "a tick after the release with catchUp")
      const all = await ticks("stall")()
      const late = all.filter((at) => at > locked && at <= released)
      // the tick whose insert waited; not the 4 or 5 after it
      assert.isAtMost(late.length, 1, `ticks of the stall: ${late.map((at) => at - locked).join()} (ms after the lock)`)
      assert.isTrue(p.lines.some((line) => line.includes("WARN") && line.includes("skipped")), `the skip is logged: ${p.lines.join("\n")}`)
      // catchUp 60 s: every tick of the stall, once, in order
      assertContiguous(await ticks("filled")(), "with catchUp")
    } finally {
      await locker.end()
      await kill([p, filler])
    }
  }, 120_000)
})

describe.skipIf(!Pg.enabled || pgServer.binaries() === undefined)("a per-second repeat whose Postgres server (its own) is stopped across ticks and started again", () => {
  it("the process survives, every tick before the stop and after the restart is enqueued once, and the schedule goes on", async () => {
    const server = await pgServer.startServer(pgServer.binaries()!)
    const schema = Pg.freshSchema()
    const p = spawnChild(server.url, { WORKPOOL_PG_SCHEMA: schema }, { name: "restart", cron: "* * * * * *" })
    let runtime: ManagedRuntime.ManagedRuntime<JobStore.JobStore, unknown> | undefined
    try {
      runtime = ManagedRuntime.make(PgJobStore.layer({ url: server.url, schema, maxConnections: 2 }))
      const ticks = () => runtime!.runPromise(ticksOf("restart"))
      await waitUntil([p], () => p.lines.includes("ready"), "the schedule runs")
      const started = Date.now()
      const before = await untilRead(ticks, (t) => t.filter((at) => at > started).length >= 2, "2 ticks")
      await runtime.dispose()
      await server.stop()
      const stopped = Date.now()
      await untilTime(stopped + 2500)
      await server.start()
      const restarted = Date.now()
      runtime = ManagedRuntime.make(PgJobStore.layer({ url: server.url, schema, maxConnections: 2 }))
      const after = await untilRead(ticks, (t) => t.filter((at) => at > restarted + 1000).length >= 3, "3 ticks after the restart")
      assert.isNull(p.child.exitCode, `the process died: ${p.stderr}`)
      assert.strictEqual(new Set(after).size, after.length)
      for (const at of before) assert.include(after, at)
      assertContiguous(after.filter((at) => at > restarted), "after the restart")
      assert.isTrue(p.lines.some((line) => line.includes("WARN") || line.includes("failed")) || p.stderr.includes("failed"), "the failed tick is logged")
    } finally {
      await kill([p])
      await runtime?.dispose()
      await server.destroy()
    }
  }, 180_000)
})

describe.skipIf(!Pg.enabled)("a repeat's scope closed while its tick's insert waits for a lock (Postgres)", () => {
  it.live("the close ends while the lock is still held, and no tick is stored once it is released", () =>
    Effect.gen(function*() {
      const schema = Pg.freshSchema()
      const store = PgJobStore.layer({ url: Pg.url!, schema, maxConnections: 2 })
      const locker = yield* Pg.lockSession
      yield* Effect.gen(function*() {
        yield* JobQueue.stats("ticks") // the schema exists before the lock
        const scope = yield* Scope.make()
        yield* Scope.provide(JobQueue.repeat("closing", Work, { n: 0 }, { cron: "* * * * * *", queue: "ticks" }), scope)
        yield* locker.open(`LOCK TABLE "${schema}".wp_job IN EXCLUSIVE MODE`)
        yield* Pg.blockedBy(locker.pid)
        // while the lock is held: the close does not wait for the insert
        yield* Scope.close(scope, Exit.void).pipe(Effect.timeout("20 seconds"))
        yield* locker.release
        // nothing of the store's left on the server that could still insert
        yield* Effect.promise(() =>
          Pg.admin((sql) =>
            sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_stat_activity
              WHERE state = 'active' AND query LIKE ${`%${schema}%wp_job%`} AND pid <> pg_backend_pid()`
          )
        ).pipe(Effect.repeat({ until: ([row]) => row!.n === 0, schedule: Schedule.spaced("20 millis") }))
        assert.deepStrictEqual(yield* Effect.scoped(ticksOf("closing")), [])
      }).pipe(Effect.provide(store))
    }).pipe(Effect.scoped), 60_000)
})

describe("a repeat in a time zone with DST, at the fall-back hour (America/New_York, 2026-11-01: 01:00 to 02:00 comes twice), under TestClock", () => {
  const ticksAcross = (cron: Cron.Cron) =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-11-01T04:10:00Z"))
      yield* JobQueue.repeat("dst", Echo, { n: 1 }, { cron, queue: "ticks" })
      for (let t = 0; t < 4 * 60; t++) {
        yield* TestClock.adjust(60_000)
        for (let i = 0; i < 20; i++) yield* Effect.yieldNow
      }
      return (yield* ticksOf("dst")).map((at) => new Date(at).toISOString().slice(11, 16))
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory()))

  it.effect("an every-30-minutes cron gets no tick for 90 minutes by default (Effect's Cron keeps the earlier of repeated local times); with onDstOverlap 'both' it gets every one", () =>
    Effect.gen(function*() {
      const byDefault = yield* ticksAcross(Cron.parseUnsafe("*/30 * * * *", "America/New_York"))
      assert.deepStrictEqual(byDefault, ["04:30", "05:00", "05:30", "07:00", "07:30", "08:00"])
      const both = yield* ticksAcross(Cron.parseUnsafe("*/30 * * * *", "America/New_York", { onDstOverlap: "both" }))
      assert.deepStrictEqual(both, ["04:30", "05:00", "05:30", "06:00", "06:30", "07:00", "07:30", "08:00"])
    }))
})
