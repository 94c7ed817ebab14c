/**
 * Rolling upgrades: processes of an older commit of this repository (its own `src`, extracted with
 * `git archive` into a temporary directory, run as child processes through
 * fixtures/durable-upgrade-side.ts) beside this version's store on the same Postgres schema or
 * SQLite file, while this version opens it and migrates it. Each old tree is the last commit of a
 * schema version: Postgres 1 (ac126d5^), 6 (e124dca^), 7 (71d9fd7), 8 (94d0ea6, before the dedup
 * modes) and 10 (973d62a, the last before the queues' caps, 11), SQLite 1 (979309b^), 5 (099cef9^),
 * 6 (5fc1163^), 7 (94d0ea6) and 9 (973d62a, the last before the caps, 10). Test names give the version this one migrates to (the length of its
 * migrations), so that a later migration does not leave them naming an old one. Every job has
 * maxAttempts 1 and must run exactly once, whichever side enqueued it and whichever claimed it, and
 * each side reads the other's results.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { copyFileSync, existsSync, mkdtempSync, realpathSync, rmSync, symlinkSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Exit, Fiber, Layer, ManagedRuntime, Schedule } from "effect"
import { afterAll, assert, describe, it } from "vitest"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as Postgres from "../src/internal/store/postgres.ts"
import * as Sqlite from "../src/internal/store/sqlite.ts"
import * as PgJobStore from "../src/PgJobStore.ts"
import * as RedisJobStore from "../src/RedisJobStore.ts"
import * as Task from "../src/Task.ts"
import { type Consumer, followConsumer, untilFinal, untilRead, waitUntil } from "./durable/children.ts"
import * as pg from "./durable/postgres.ts"
import * as rd from "./durable/redis.ts"
import { Work } from "./fixtures/durable-tasks.ts"
import { hasCommit } from "./helpers.ts"

const node = existsSync("node_modules/.bin/node") ? "node_modules/.bin/node" : process.execPath
const side = new URL("./fixtures/durable-upgrade-side.ts", import.meta.url).pathname

const COMMITS = {
  pg1: "ac126d5^",
  pg6: "e124dca^",
  pg7: "71d9fd7",
  pg8: "94d0ea6",
  pg10: "973d62a",
  // the last before queue holds and snoozes (version 12 on Postgres, 11 on SQLite, Redis' heldUntil)
  pg11: "3f804fb",
  sqlite1: "979309b^",
  sqlite5: "099cef9^",
  sqlite6: "5fc1163^",
  sqlite7: "94d0ea6",
  sqlite9: "973d62a",
  sqlite10: "3f804fb",
  // the last before job dependencies (version 16: wp_dep, the state blocked)
  sqlite15: "53ccf8c^",
  redisBareIds: "ae50b32^",
  // the last before the queues' caps (setConcurrency): the meta hash's new field, and the claim's
  redisBeforeCaps: "973d62a",
  redisBeforeHolds: "3f804fb",
  redisBeforeDependencies: "1a6aaff^"
}
/** The schema versions this version migrates to. */
const PG_LATEST = Postgres.MIGRATIONS.length
const SQLITE_LATEST = Sqlite.MIGRATIONS.length
const historic = Object.values(COMMITS).every(hasCommit)
if (!historic) console.warn("the clone lacks the old commits (shallow?): the rolling-upgrade tests are skipped")

const trees = new Map<string, string>()
const dirs: Array<string> = []
/** The old commit's tree, extracted once per file. */
const treeOf = (commit: string) => {
  let dir = trees.get(commit)
  if (dir === undefined) {
    dir = mkdtempSync(join(tmpdir(), "wp-old-"))
    dirs.push(dir)
    execFileSync("sh", ["-c", `git archive "${commit}" src test/fixtures package.json | tar -x -C "${dir}"`])
    symlinkSync(realpathSync("node_modules"), join(dir, "node_modules"))
    copyFileSync(side, join(dir, "test/fixtures/durable-upgrade-side.ts"))
    trees.set(commit, dir)
  }
  return dir
}

const children: Array<ChildProcess> = []
afterAll(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

interface Side extends Consumer {
  /** Sends a command and waits for the line that ends it. */
  readonly send: (command: string, until: (line: string) => boolean, what: string) => Promise<string>
}

/** An old version's process on `target`, consuming with `concurrency` slots (0: none). */
const oldSide = async (commit: string, target: string, concurrency: number, env: Record<string, string> = {}): Promise<Side> => {
  const child = spawn(node, [join(treeOf(commit), "test/fixtures/durable-upgrade-side.ts"), target, String(concurrency)], {
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, ...env }
  })
  children.push(child)
  const followed = followConsumer(child)
  const send = async (command: string, until: (line: string) => boolean, what: string) => {
    const from = followed.lines.length
    child.stdin!.write(`${command}\n`)
    let found = ""
    await waitUntil([followed], () => {
      const line = followed.lines.slice(from).find((l) => until(l) || l.startsWith("error "))
      if (line !== undefined) found = line
      return line !== undefined
    }, what)
    return found
  }
  await waitUntil([followed], () => followed.lines.some((l) => l === "ready" || l.startsWith("error ")), "the old side is ready")
  return Object.assign(followed, { send })
}

const idsOf = (s: Side) => new Map(s.lines.filter((l) => l.startsWith("enqueued ")).map((l) => [Number(l.split(" ")[1]), l.split(" ")[2]!]))

/** This version's side: a store on the target, a consumer recording the jobs it starts. */
const newSide = (layer: Layer.Layer<JobStore.JobStore, unknown>, lease = 5000) => {
  const started: Array<number> = []
  const interrupted: Array<number> = []
  const runtime = ManagedRuntime.make(layer as Layer.Layer<JobStore.JobStore>)
  const consume = JobQueue.consume({
    handlers: [Task.handle(Work, ({ n }) =>
      Effect.sync(() => started.push(n)).pipe(
        // as on the old side: a job from 1000 up runs until it is interrupted
        Effect.andThen(n >= 1000 ? Effect.never : Effect.sleep(5)),
        Effect.onInterrupt(() => Effect.sync(() => interrupted.push(n))),
        Effect.as(n)
      ))],
    concurrency: 2,
    lease,
    poll: 50,
    retry: Schedule.spaced(50)
  })
  return { started, interrupted, runtime, consume }
}

/** Waits (real time, every 20 ms) until `check` holds; fails after `millis`. */
const until = async (check: () => boolean, what: string, millis = 60_000) => {
  const deadline = Date.now() + millis
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/**
 * A cancel across versions: this version cancels a job running in an old process, and an old
 * process cancels a job running in this version's consumer. On Postgres and Redis a cancel is
 * heard at once (NOTIFY, PUBLISH): leases of a minute, so that one that reached the other side only
 * through its heartbeat (every lease / 3) would take 20 s, and each must arrive well before (10 s,
 * for a loaded machine). On SQLite a busy consumer hears it at its next heartbeat (docs/durable.md):
 * a lease of 6 s, and each must arrive within one.
 */
const crossCancel = async (
  commit: string,
  target: string,
  layer: () => Layer.Layer<JobStore.JobStore, unknown>,
  env: Record<string, string>,
  heard: "at once" | "at a beat" = "at once"
) => {
  const lease = heard === "at once" ? 60_000 : 6_000
  const bound = heard === "at once" ? 10_000 : lease
  const old = await oldSide(commit, target, 1, { ...env, WORKPOOL_TEST_LEASE: String(lease) })
  assert.include(old.lines, "ready", old.lines.join("\n"))
  // an old process that only enqueues and cancels, started before this version migrates
  const other = await oldSide(commit, target, 0, env)
  const current = newSide(layer(), lease)
  let consuming: Fiber.Fiber<unknown, unknown> | undefined
  try {
    const id = await current.runtime.runPromise(Effect.map(JobQueue.enqueue(Work, { n: 1000 }, { maxAttempts: 1 }), (h) => h.id))
    await waitUntil([old], () => old.started.includes(1000), "the old process starts job 1000")
    assert.strictEqual(await current.runtime.runPromise(JobQueue.cancel(id)), "requested")
    await waitUntil([old], () => old.lines.includes("interrupted 1000"), "the old process interrupts job 1000", bound)
    await untilRead(() => current.runtime.runPromise(JobQueue.status(id)), (info) => info.state === "cancelled", "job 1000 is cancelled")
    // the other way: the old process (no longer consuming) cancels a job of this version's consumer
    old.child.kill("SIGTERM")
    await old.exited
    consuming = current.runtime.runFork(current.consume.pipe(Effect.andThen(Effect.never), Effect.scoped))
    await other.send("enqueue 1001 1", (l) => l === "enqueued-all 1001", "the old process enqueues 1001")
    const id2 = idsOf(other).get(1001)!
    await until(() => current.started.includes(1001), "this version starts job 1001")
    assert.strictEqual(await other.send(`cancel ${id2}`, (l) => l.startsWith(`cancelled ${id2}`), "the old process cancels"), `cancelled ${id2} "requested"`)
    await until(() => current.interrupted.includes(1001), "this version interrupts job 1001", bound)
    await untilRead(() => current.runtime.runPromise(JobQueue.status(id2)), (info) => info.state === "cancelled", "job 1001 is cancelled")
  } finally {
    if (consuming !== undefined) await current.runtime.runPromise(Fiber.interrupt(consuming))
    await current.runtime.dispose()
    for (const side of [old, other]) side.child.kill("SIGTERM")
    await Promise.all([old.exited, other.exited])
  }
}

/**
 * Job dependencies beside an older process that knows none (`commit`, consuming the default queue):
 * it must never claim a blocked job nor lose one. Its settle of a dependency does not release the
 * dependents (documented: upgrade every process before using `after`), which wait, blocked and
 * counted, until this version's cancel ends them; its cancel of a blocked job answers "finished"
 * and leaves it. A head this version settles releases its dependents, and the old process runs
 * each once.
 */
const crossDependencies = async (commit: string, target: string, layer: Layer.Layer<JobStore.JobStore, unknown>, env: Record<string, string>) => {
  const old = await oldSide(commit, target, 2, env)
  assert.include(old.lines, "ready", old.lines.join("\n"))
  const current = newSide(layer)
  try {
    const store = await current.runtime.runPromise(JobStore.JobStore)
    // a head of a queue no process consumes, and its dependents on the default queue, which the old
    // process consumes: blocked, they are not its to claim
    const ids = await current.runtime.runPromise(Effect.gen(function*() {
      const head = yield* JobQueue.enqueue(Work, { n: 1 }, { queue: "heads", maxAttempts: 1 })
      const after = yield* JobQueue.enqueueAll(Work, [2, 3, 4].map((n) => ({ payload: { n } })), { after: [head], maxAttempts: 1 })
      const plain = yield* JobQueue.enqueue(Work, { n: 5 }, { maxAttempts: 1 })
      return { head: head.id, after: after.map((job) => job.id), plain: plain.id }
    }))
    await waitUntil([old], () => old.lines.includes("done 5"), "the old process runs the plain job")
    assert.deepStrictEqual(old.started, [5], "the old process claimed no blocked job")
    const answer = await old.send(`cancel ${ids.after[2]}`, (l) => l.startsWith(`cancelled ${ids.after[2]}`), "the old process cancels a blocked job")
    assert.strictEqual(answer, `cancelled ${ids.after[2]} "finished"`)
    // this version settles the head: its dependents are released, and the old process runs them once
    const claimed = await current.runtime.runPromise(store.claim({ queues: ["heads"], tasks: ["Work"], limit: 1, lease: 60_000 }))
    assert.isTrue(await current.runtime.runPromise(store.settle(claimed.claims[0]!.token, { _tag: "Final", state: "succeeded", exit: null })))
    await waitUntil([old], () => [2, 3, 4].every((n) => old.lines.includes(`done ${n}`)), "the old process runs the released dependents")
    assert.deepStrictEqual([...old.started].sort(), [2, 3, 4, 5])
    // the other way: the old process's settle of a dependency leaves its dependent blocked and counted
    const [dependency, dependent] = await current.runtime.runPromise(Effect.gen(function*() {
      const dependency = yield* JobQueue.enqueue(Work, { n: 6 }, { maxAttempts: 1 })
      const dependent = yield* JobQueue.enqueue(Work, { n: 7 }, { queue: "waits", after: [dependency], maxAttempts: 1 })
      return [dependency.id, dependent.id]
    }))
    await waitUntil([old], () => old.lines.includes("done 6"), "the old process runs the dependency")
    await untilRead(() => current.runtime.runPromise(JobQueue.status(dependency)), (info) => info.state === "succeeded", "the dependency succeeded")
    const stranded = await current.runtime.runPromise(JobQueue.status(dependent))
    assert.deepStrictEqual([stranded.state, stranded.waitingFor], ["blocked", 1])
    assert.strictEqual((await current.runtime.runPromise(JobQueue.stats("waits"))).blocked, 1)
    assert.strictEqual(await current.runtime.runPromise(JobQueue.cancel(dependent)), "cancelled")
  } finally {
    old.child.kill("SIGTERM")
    await old.exited
    await current.runtime.dispose()
  }
}

/**
 * The scenario: the old side makes the store (its version) and consumes; it enqueues 10 jobs; this
 * version opens the store (migrating it) and consumes beside it, and enqueues 10; the old side
 * enqueues 10 more (half of each side's 10 delayed 300 ms). Every job runs once, succeeds, and each side awaits a job of the other's.
 * `capped`: this version sets a cap on the queue first (one that never binds: an older process
 * does not know it, and claims past it, docs/durable.md), which the old side's claims, settles and
 * stats must read past.
 */
const rolling = async (
  commit: string,
  target: string,
  layer: () => Layer.Layer<JobStore.JobStore, unknown>,
  env: Record<string, string>,
  versioned = true,
  readsNewIds = true,
  capped = false
) => {
  const old = await oldSide(commit, target, 2, env)
  assert.include(old.lines, "ready", old.lines.join("\n"))
  assert.strictEqual(await old.send("enqueue 1 10", (l) => l === "enqueued-all 1", "old enqueues 1-10"), "enqueued-all 1")
  const current = newSide(layer())
  // this version's consumer, stopped before its store closes
  const consuming = current.runtime.runFork(current.consume.pipe(Effect.andThen(Effect.never), Effect.scoped))
  try {
    const ids = await current.runtime.runPromise(Effect.gen(function*() {
      if (capped) yield* JobQueue.setConcurrency("default", 100)
      const ids: Array<string> = []
      // half of each side's later jobs delayed: the other version's consumers wake for them
      for (let n = 11; n <= 20; n++) ids.push((yield* JobQueue.enqueue(Work, { n }, { maxAttempts: 1, delay: n > 15 ? 300 : 0 })).id)
      return ids
    }))
    assert.strictEqual(await old.send("enqueue 21 5", (l) => l === "enqueued-all 21", "old enqueues 21-25"), "enqueued-all 21")
    assert.strictEqual(await old.send("enqueue 26 5 300", (l) => l === "enqueued-all 26", "old enqueues 26-30, delayed"), "enqueued-all 26")
    const stats = await untilFinal(() => current.runtime.runPromise(JobQueue.stats("default")), 30)
    assert.deepStrictEqual([stats.succeeded, stats.dead, stats.cancelled], [30, 0, 0], JSON.stringify(stats))
    const runs = [...old.started, ...current.started].sort((a, b) => a - b)
    assert.deepStrictEqual(runs, Array.from({ length: 30 }, (_, i) => i + 1), "every job ran exactly once")
    // each side reads a result of the other's job
    const awaited = await old.send(`await ${ids[0]}`, (l) => l.startsWith(`result ${ids[0]}`) || l.startsWith("failed "), "old awaits")
    if (readsNewIds) assert.strictEqual(awaited, `result ${ids[0]} 11`)
    // a Redis process from before ids named their queue finds no job by a newer one's id: typed, at once
    else assert.match(awaited, new RegExp(`^failed ${ids[0]} .*JobNotFound`))
    const oldIds = idsOf(old)
    assert.strictEqual(await current.runtime.runPromise(JobQueue.handleOf(Work, oldIds.get(25)!).await), 25)
    assert.strictEqual(await current.runtime.runPromise(JobQueue.handleOf(Work, oldIds.get(1)!).await), 1)
    if (!versioned) return
    // an old process started after the migration (a restart mid-rollout) is refused, typed and loud
    const late = await oldSide(commit, target, 1, env)
    await late.exited
    const refused = late.lines.find((l) => l.startsWith("error "))
    assert.match(refused ?? late.lines.join("\n"), /StoreError.*this code knows versions up to \d+: upgrade effect-workpool/)
  } finally {
    await current.runtime.runPromise(Fiber.interrupt(consuming))
    await current.runtime.dispose()
    old.child.kill("SIGTERM")
    await old.exited
  }
}

/**
 * One schedule run by an old process and by this version at once (every second, for at least four
 * ticks after both run it): each tick's job is enqueued once (its id names the tick), so no second
 * has two jobs, whichever version reached it first.
 */
const crossRepeat = async (commit: string, target: string, layer: () => Layer.Layer<JobStore.JobStore, unknown>, env: Record<string, string>) => {
  const old = await oldSide(commit, target, 2, env)
  assert.include(old.lines, "ready", old.lines.join("\n"))
  const current = newSide(layer())
  const consuming = current.runtime.runFork(current.consume.pipe(Effect.andThen(Effect.never), Effect.scoped))
  const repeating = current.runtime.runFork(Effect.scoped(Effect.andThen(JobQueue.repeat("tick", Work, { n: 500 }, { cron: "* * * * * *" }), Effect.never)))
  try {
    await old.send("repeat tick", (l) => l === "repeating tick", "the old process runs the schedule")
    const since = Date.now()
    const jobs = await untilRead(
      () => current.runtime.runPromise(JobQueue.list({ queue: "default", limit: 1000 })),
      (list) => list.filter((job) => job.createdAt.getTime() > since + 1000).length >= 4,
      "four ticks after both run the schedule"
    )
    const ticks = jobs.map((job) => job.id).filter((id) => id.startsWith("repeat:tick:"))
    const seconds = ticks.map((id) => Math.floor(Number(id.split(":")[2]) / 1000))
    assert.strictEqual(new Set(seconds).size, seconds.length, `a tick enqueued twice: ${ticks.join(", ")}`)
  } finally {
    await current.runtime.runPromise(Fiber.interrupt(repeating))
    await current.runtime.runPromise(Fiber.interrupt(consuming))
    await current.runtime.dispose()
    old.child.kill("SIGTERM")
    await old.exited
  }
}

describe.skipIf(!historic || !pg.enabled)("rolling upgrade on Postgres", () => {
  it("a schedule run by a version-6 process and this version at once: each tick enqueued once", async () => {
    const schema = pg.freshSchema()
    await crossRepeat(COMMITS.pg6, url, onSchema(schema), { WORKPOOL_PG_SCHEMA: schema })
  }, 120_000)

  const url = pg.url!
  const onSchema = (schema: string) => () => PgJobStore.layer({ url, schema, maxConnections: 3 })

  it(`a version-6 process runs beside this version's migration to ${PG_LATEST}: every job of either side once, results read across`, async () => {
    const schema = pg.freshSchema()
    await rolling(COMMITS.pg6, url, onSchema(schema), { WORKPOOL_PG_SCHEMA: schema })
  }, 120_000)

  it("a cancel from either side reaches a job running on the other (a version-6 process)", async () => {
    const schema = pg.freshSchema()
    await crossCancel(COMMITS.pg6, url, onSchema(schema), { WORKPOOL_PG_SCHEMA: schema })
  }, 120_000)

  // version 8 adds the counts' index (built while the migration holds wp_job): a version-7
  // process's claims, settles and cancels go on beside it and write to it after
  it(`a version-7 process runs beside this version's migration to ${PG_LATEST}: every job of either side once, results read across`, async () => {
    const schema = pg.freshSchema()
    await rolling(COMMITS.pg7, url, onSchema(schema), { WORKPOOL_PG_SCHEMA: schema })
  }, 120_000)

  // versions 9 to 11 add the dedup modes' columns, retention and wp_queue.concurrency (a queue's
  // cap): a version-8 process's claims, settles and stats go on beside the new columns, a cap set
  it(`a version-8 process runs beside this version's migration to ${PG_LATEST}: every job of either side once, results read across`, async () => {
    const schema = pg.freshSchema()
    await rolling(COMMITS.pg8, url, onSchema(schema), { WORKPOOL_PG_SCHEMA: schema }, true, true, true)
  }, 120_000)

  // version 11 adds wp_queue.concurrency (a queue's cap): a version-10 process's claims (whose
  // `limited` read names its columns), settles, retention and stats go on beside the new column, set
  it(`a version-10 process runs beside this version's migration to ${PG_LATEST}: every job of either side once, results read across`, async () => {
    const schema = pg.freshSchema()
    await rolling(COMMITS.pg10, url, onSchema(schema), { WORKPOOL_PG_SCHEMA: schema }, true, true, true)
  }, 120_000)

  // version 12 adds wp_queue.held_until and wp_job.snoozes: a version-11 process's claims (fair
  // and capped ones name wp_queue's columns), settles and stats go on beside them
  it(`a version-11 process runs beside this version's migration to ${PG_LATEST}: every job of either side once, results read across`, async () => {
    const schema = pg.freshSchema()
    await rolling(COMMITS.pg11, url, onSchema(schema), { WORKPOOL_PG_SCHEMA: schema }, true, true, true)
  }, 120_000)

  it(`a version-1 process runs beside this version's migration to ${PG_LATEST}: every job of either side once, results read across`, async () => {
    const schema = pg.freshSchema()
    await rolling(COMMITS.pg1, url, onSchema(schema), { WORKPOOL_PG_SCHEMA: schema })
  }, 120_000)

  // the migration from version 1 or 2 alters wp_job, then wp_queue: a transaction that read
  // wp_queue (a version-1 process's stats reads it first; a report) and reads wp_job once the
  // migration holds it closes a cycle, and Postgres ends one of the two after deadlock_timeout:
  // the migration, which waited first. It failed the store's open, where a lock it waited too long
  // for (the same transaction, short of the cycle) makes it give way and try again
  it("a migration from version 1 deadlocked with a transaction that read wp_queue, then wp_job: it gives way and tries again, and the store opens", async () => {
    const schema = pg.freshSchema()
    const maker = await oldSide(COMMITS.pg1, url, 0, { WORKPOOL_PG_SCHEMA: schema })
    assert.include(maker.lines, "ready", maker.lines.join("\n"))
    maker.child.stdin!.end()
    await maker.exited
    const S = `"${schema}"`
    const exit = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const session = yield* pg.lockSession
      yield* session.query("BEGIN")
      yield* session.query(`SELECT count(*) FROM ${S}.wp_queue`)
      const opening = yield* Effect.forkChild(Effect.exit(Effect.scoped(Layer.build(onSchema(schema)()))))
      // the migration holds wp_job and waits for wp_queue
      yield* pg.blockedBy(session.pid)
      // the cycle: one of the two is ended with a deadlock error
      yield* Effect.exit(Effect.tryPromise(() => Effect.runPromise(session.query(`SELECT count(*) FROM ${S}.wp_job`))))
      yield* session.query("COMMIT")
      return yield* Fiber.join(opening)
    })))
    assert.isTrue(Exit.isSuccess(exit), String(exit))
    const version = await pg.admin((sql) => sql<{ value: string }>`SELECT value FROM ${sql.literal(S)}.wp_meta WHERE key = 'schema_version'`)
    assert.strictEqual(version[0]?.value, String(Postgres.MIGRATIONS.length))
  }, 120_000)
})

describe.skipIf(!historic)("rolling upgrade on SQLite", () => {
  const file = () => join(mkdtempSync(join(tmpdir(), "wp-upgrade-")), "jobs.db")
  const onFile = (filename: string) => () => JobStore.sqlite({ filename })

  it(`a version-5 process runs beside this version's migration to ${SQLITE_LATEST}: every job of either side once, results read across`, async () => {
    const filename = file()
    dirs.push(join(filename, ".."))
    await rolling(COMMITS.sqlite5, filename, onFile(filename), {})
  }, 120_000)

  it("a cancel from either side reaches a job running on the other (a version-5 process)", async () => {
    const filename = file()
    dirs.push(join(filename, ".."))
    await crossCancel(COMMITS.sqlite5, filename, onFile(filename), {}, "at a beat")
  }, 120_000)

  it("a schedule run by a version-5 process and this version at once: each tick enqueued once", async () => {
    const filename = file()
    dirs.push(join(filename, ".."))
    await crossRepeat(COMMITS.sqlite5, filename, onFile(filename), {})
  }, 120_000)

  it(`a version-1 process runs beside this version's migration to ${SQLITE_LATEST}: every job of either side once, results read across`, async () => {
    const filename = file()
    dirs.push(join(filename, ".."))
    await rolling(COMMITS.sqlite1, filename, onFile(filename), {})
  }, 120_000)

  // versions 8 to 10 add the dedup modes' columns, retention and wp_queue.concurrency (a queue's
  // cap): a version-7 process's statements, prepared before the ALTER TABLEs, run on the table with them
  it(`a version-7 process runs beside this version's migration to ${SQLITE_LATEST}: every job of either side once, results read across`, async () => {
    const filename = file()
    dirs.push(join(filename, ".."))
    await rolling(COMMITS.sqlite7, filename, onFile(filename), {}, true, true, true)
  }, 120_000)

  // version 10 adds wp_queue.concurrency (a queue's cap): a version-9 process's statements, prepared
  // before the ALTER TABLE, run on the table with it, the column set
  it(`a version-9 process runs beside this version's migration to ${SQLITE_LATEST}: every job of either side once, results read across`, async () => {
    const filename = file()
    dirs.push(join(filename, ".."))
    await rolling(COMMITS.sqlite9, filename, onFile(filename), {}, true, true, true)
  }, 120_000)

  // version 11 adds wp_queue.held_until and wp_job.snoozes (queue holds, snoozes)
  it(`a version-10 process runs beside this version's migration to ${SQLITE_LATEST}: every job of either side once, results read across`, async () => {
    const filename = file()
    dirs.push(join(filename, ".."))
    await rolling(COMMITS.sqlite10, filename, onFile(filename), {}, true, true, true)
  }, 120_000)

  // version 16 adds job dependencies (wp_dep, has_dependents, the state blocked)
  it("a version-15 process beside this version's dependencies: it never claims a blocked job, its settles strand dependents blocked (documented), nothing is lost or run twice", async () => {
    const filename = file()
    dirs.push(join(filename, ".."))
    await crossDependencies(COMMITS.sqlite15, filename, onFile(filename)(), {})
  }, 120_000)

  // version 7 widened the claim's, the reaper's and the purge's indexes (counts read them alone):
  // a version-6 process's statements run on the widened ones while this version migrates
  it(`a version-6 process runs beside this version's migration to ${SQLITE_LATEST}: every job of either side once, results read across`, async () => {
    const filename = file()
    dirs.push(join(filename, ".."))
    await rolling(COMMITS.sqlite6, filename, onFile(filename), {})
  }, 120_000)
})

/**
 * Redis keeps no layout version: old trees from before ids named their queue (db368dc: such a
 * process reads no newer job by id), and from after it, before the per-priority counts' cleanup
 * (b38a274), before the queues' caps (973d62a: with the dedup modes and retention), and before
 * queue holds (3f804fb: CONFIGURE's hold argument after the cap's, COUNTS' heldUntil last).
 */
const REDIS_COMMITS = ["e124dca^", "b38a274^", COMMITS.redisBeforeCaps, COMMITS.redisBeforeHolds]
describe.skipIf(!historic || !rd.enabled)("rolling upgrade on Redis", () => {
  it("a process from before ids named their queue runs beside this version: every job of either side once; it finds no newer job by id (JobNotFound)", async () => {
    const prefix = rd.freshPrefix()
    await rolling(COMMITS.redisBareIds, rd.url!, () => RedisJobStore.layer({ url: rd.url!, prefix }), { WORKPOOL_REDIS_PREFIX: prefix }, false, false)
  }, 120_000)

  it("a schedule run by a process of e124dca^ and this version at once: each tick enqueued once", async () => {
    const prefix = rd.freshPrefix()
    await crossRepeat("e124dca^", rd.url!, () => RedisJobStore.layer({ url: rd.url!, prefix }), { WORKPOOL_REDIS_PREFIX: prefix })
  }, 120_000)

  // the last layout before job dependencies (B:deps, B:waits, B:blocked): the same as SQLite's version 15
  it("a process from before job dependencies beside this version's: it never claims a blocked job, its settles strand dependents blocked (documented), nothing is lost or run twice", async () => {
    const prefix = rd.freshPrefix()
    await crossDependencies(COMMITS.redisBeforeDependencies, rd.url!, RedisJobStore.layer({ url: rd.url!, prefix }), { WORKPOOL_REDIS_PREFIX: prefix })
  }, 120_000)

  for (const commit of REDIS_COMMITS) {
    it(`a process of ${commit} runs beside this version: every job of either side once, results read across`, async () => {
      const prefix = rd.freshPrefix()
      await rolling(commit, rd.url!, () => RedisJobStore.layer({ url: rd.url!, prefix }), { WORKPOOL_REDIS_PREFIX: prefix }, false, true, commit !== REDIS_COMMITS[0] && commit !== REDIS_COMMITS[1])
    }, 120_000)

    it(`a cancel from either side reaches a job running on the other (a process of ${commit})`, async () => {
      const prefix = rd.freshPrefix()
      await crossCancel(commit, rd.url!, () => RedisJobStore.layer({ url: rd.url!, prefix }), { WORKPOOL_REDIS_PREFIX: prefix })
    }, 120_000)
  }
})
