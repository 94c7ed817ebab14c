/**
 * Hostile tests of the SQLite store's wait for another process's write lock (timers between tries,
 * SQLite's own busy wait capped at SPIN ms).
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber, Option, Scope } from "effect"
import { TestClock } from "effect/testing"
import { StoreError } from "../src/DurableError.ts"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { DatabaseSync } from "node:sqlite"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as Closing from "../src/internal/store/closing.ts"
import * as Sqlite from "../src/internal/store/sqlite.ts"
import { RECHECKS, watchOtherProcesses } from "../src/internal/store/sqliteWatch.ts"
import { type Consumer, followConsumer, waitUntil } from "./durable/children.ts"
import { Echo } from "./durable/conformance.ts"
import { closeWithin, lateness, sqliteLockHolder, waitFor } from "./helpers.ts"
import * as Task from "../src/Task.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wp-sqlite-hostile-"))
let n = 0
const fresh = () => path.join(dir, `jobs-${++n}.db`)

describe("the SQLite store's wait for another process's lock", () => {
  // BUG (fixed): each operation's tries may block the thread SPIN (5 ms) in SQLite's own busy wait,
  // and every waiting operation tried on its own timer: 40 operations waiting kept the event loop
  // 99.7% busy (a 100 ms timer 340 ms late), 200 of them made it 2.1 s late, 300 about 3 s: the
  // process stood still as before the lock wait, for as many operations as waited
  it.live("many operations waiting for the lock at once do not stall the process: timers stay on time, and all of them are written once it is free", () =>
    Effect.gen(function*() {
      const filename = fresh()
      const count = 300
      const result = yield* Effect.gen(function*() {
        yield* JobQueue.enqueue(Echo, { n: 0 })
        const holder = yield* sqliteLockHolder(filename)
        const waiting = yield* Effect.forkChild(
          Effect.forEach(Array.from({ length: count }, (_, i) => i + 1), (n) => JobQueue.enqueue(Echo, { n }), {
            concurrency: "unbounded"
          })
        )
        const late = yield* lateness(100, 1500)
        assert.isUndefined(waiting.pollUnsafe(), "the enqueues wait for the lock")
        yield* holder.release
        const handles = yield* Fiber.join(waiting)
        const stats = yield* JobQueue.stats("default")
        return { late, handles: handles.length, waiting: stats.waiting }
      }).pipe(Effect.scoped, Effect.provide(JobStore.sqlite({ filename })))
      // a loaded 2-core machine delays a timer by a few hundred ms (see durable-sqlite.test.ts)
      assert.isBelow(result.late, 1000, "the latest of 100 ms timers for 1.5 s while the lock was held")
      assert.strictEqual(result.handles, count)
      assert.strictEqual(result.waiting, count + 1, "every enqueue written once, none lost")
    }), { timeout: 60_000 })

  // BUG (fixed): a busyTimeout under SPIN that is not whole milliseconds ("2.5 millis", "500 micros") passed
  // the options' check and failed the open: node:sqlite's `timeout` takes only integers ("The
  // "options.timeout" argument must be an integer")
  it.live("a busyTimeout of a fraction of a millisecond opens the store, and bounds the wait for a held lock", () =>
    Effect.gen(function*() {
      for (const busyTimeout of ["2.5 millis", "500 micros"] as const) {
        const filename = fresh()
        const layer = JobStore.sqlite({ filename, busyTimeout })
        const stats = yield* Effect.provide(JobQueue.stats("default"), layer)
        assert.strictEqual(stats.waiting, 0, busyTimeout)
        const error = yield* Effect.gen(function*() {
          yield* sqliteLockHolder(filename)
          return yield* Effect.flip(Effect.provide(JobQueue.enqueue(Echo, { n: 1 }), layer))
        }).pipe(Effect.scoped)
        assert.strictEqual(error._tag, "StoreError", busyTimeout)
        assert.match(error.message, /database is locked/, busyTimeout)
      }
    }), { timeout: 60_000 })

  it.live("a process killed (SIGKILL) in the middle of a claim frees the lock at once: the claim that waited takes the job it half-claimed, once", () =>
    Effect.gen(function*() {
      const filename = fresh()
      // an hour: only the lock's release, not the deadline, ends the wait
      const store = yield* Sqlite.make({ filename, busyTimeout: 3_600_000 })
      const handle = yield* Effect.provideService(JobQueue.enqueue(Echo, { n: 1 }), JobStore.JobStore, store)
      const holder = spawn(process.execPath, [
        "-e",
        `const { DatabaseSync } = require("node:sqlite"); const db = new DatabaseSync(${JSON.stringify(filename)});
         db.exec("BEGIN IMMEDIATE");
         db.prepare("UPDATE wp_job SET state = 'running', attempts = attempts + 1, lease_token = 'dead', lease_until = 9e15").run();
         process.stdout.write("locked\\n"); setInterval(() => {}, 1000)`
      ], { stdio: ["ignore", "pipe", "inherit"] })
      yield* Effect.addFinalizer(() => Effect.sync(() => holder.kill("SIGKILL")))
      const exited = new Promise<void>((resolve) => holder.once("exit", () => resolve()))
      yield* Effect.promise(() => new Promise<void>((resolve) => holder.stdout!.once("data", () => resolve())))
      const request = { queues: ["default"], tasks: ["Echo"], limit: 10, lease: 60_000 }
      const claiming = yield* Effect.forkChild(store.claim(request))
      // a read does not wait for the write lock (WAL), and sees nothing of the holder's transaction
      assert.strictEqual((yield* store.get(handle.id))?.state, "queued")
      assert.isUndefined(claiming.pollUnsafe(), "the claim waits for the lock")
      holder.kill("SIGKILL")
      yield* Effect.promise(() => exited)
      const claimed = yield* Effect.timeoutOption(Fiber.join(claiming), "20 seconds")
      assert.isTrue(Option.isSome(claimed), "the claim ended once the dead process's lock was gone")
      const claims = Option.getOrThrow(claimed).claims
      assert.deepStrictEqual(claims.map((c) => [c.job.id, c.job.attempts]), [[handle.id, 1]])
      assert.notStrictEqual(claims[0]!.token, "dead")
      assert.strictEqual((yield* store.claim(request)).claims.length, 0, "claimed once")
      const row = yield* store.get(handle.id)
      assert.strictEqual(row?.state, "running")
      assert.strictEqual(row?.attempts, 1)
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("an operation interrupted while it waits for the lock writes nothing and leaves no transaction open; the others that waited are written once, in full", () =>
    Effect.gen(function*() {
      const filename = fresh()
      const store = yield* Sqlite.make({ filename, busyTimeout: 3_600_000 })
      const enqueue = (n: number) => Effect.provideService(JobQueue.enqueue(Echo, { n }), JobStore.JobStore, store)
      const holder = yield* sqliteLockHolder(filename)
      // the first to wait (the one whose tries wait in SQLite's busy wait) and later ones, each
      // interrupted at a different point of its wait (between tries, 1 ms doubling to 50 ms)
      const kept = yield* Effect.forkChild(Effect.forEach([1, 2, 3], enqueue, { concurrency: "unbounded" }))
      for (const millis of [0, 1, 3, 7, 20, 60, 130]) {
        const cut = yield* Effect.timeoutOption(enqueue(100 + millis), millis)
        assert.isTrue(Option.isNone(cut), `the enqueue cut at ${millis} ms waited`)
      }
      const stats = yield* Effect.exit(Effect.timeoutOption(store.counts("default"), "1 second"))
      assert.isTrue(Exit.isSuccess(stats), "a read does not wait for the write lock")
      yield* holder.release
      const handles = yield* Fiber.join(kept)
      assert.strictEqual(handles.length, 3)
      // the connection is in no transaction: a write and a read transaction begin
      yield* enqueue(4)
      const counts = yield* store.counts("default")
      assert.strictEqual(counts.waiting, 4, "the three that waited and the one after; none of the cut ones")
      const listed = yield* store.list({ queue: "default", states: undefined, limit: 100 })
      assert.deepStrictEqual(listed.map((row) => JSON.parse(row.payload).n).sort((a, b) => a - b), [1, 2, 3, 4])
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("a close under a held lock ends within shutdownTimeout + 6 s with a busyTimeout of a minute: a claim, ten settles and ten give-backs waiting for the lock", () =>
    Effect.gen(function*() {
      const filename = fresh()
      const scope = yield* Scope.make()
      const store = yield* Sqlite.make({ filename, busyTimeout: 60_000 }).pipe(Scope.provide(scope))
      const here = Effect.provideService(JobStore.JobStore, store)
      const release = yield* Deferred.make<void>()
      let started = 0
      yield* JobQueue.consume({
        handlers: [Task.handle(Echo, ({ n }) => Effect.andThen(Effect.sync(() => started++), n % 2 === 0 ? Effect.as(Deferred.await(release), n) : Effect.never))],
        concurrency: 21,
        poll: "50 millis",
        shutdownTimeout: 200
      }).pipe(here, Scope.provide(scope))
      yield* here(Effect.forEach(Array.from({ length: 20 }, (_, n) => n), (n) => JobQueue.enqueue(Echo, { n })))
      while (started < 20) yield* Effect.sleep(20)
      yield* sqliteLockHolder(filename)
      yield* Deferred.succeed(release, undefined)
      // the free slot's claims (every poll) wait for the lock, the ended jobs' settles too
      yield* Effect.sleep(300)
      const took = yield* closeWithin(scope, "120 seconds")
      // shutdownTimeout + 6 s, with slack for a loaded machine (as in durable-closing-hostile.test.ts)
      assert.isBelow(took, 7500)
    }).pipe(Effect.scoped), { timeout: 150_000 })

  it.live("a lock let go around busyTimeout's end: the enqueue that waited is written once or fails with \"database is locked\" having written nothing, never before busyTimeout", () =>
    Effect.gen(function*() {
      const filename = fresh()
      const busyTimeout = 300
      const store = yield* Sqlite.make({ filename, busyTimeout })
      const outcomes: Array<string> = []
      const rows = () => Effect.map(store.list({ queue: undefined, states: undefined, limit: 100 }), (rows) => rows.length)
      for (const after of [200, 280, 295, 300, 305, 320, 400]) {
        yield* Effect.scoped(Effect.gen(function*() {
          const before = yield* rows()
          const holder = yield* sqliteLockHolder(filename)
          const from = performance.now()
          const waiting = yield* Effect.forkChild(Effect.exit(
            Effect.provideService(JobQueue.enqueue(Echo, { n: after }), JobStore.JobStore, store)
          ))
          yield* Effect.sleep(after)
          yield* holder.release
          const exit = yield* Fiber.join(waiting)
          const took = performance.now() - from
          if (Exit.isSuccess(exit)) {
            assert.strictEqual((yield* store.get(exit.value.id))?.state, "queued", `${after}: written`)
            assert.strictEqual(yield* rows(), before + 1, `${after}: written once`)
            outcomes.push("written")
          } else {
            assert.match(String(exit.cause), /database is locked/, `${after}`)
            assert.strictEqual(yield* rows(), before, `${after}: a failed enqueue wrote nothing`)
            assert.isAtLeast(took, busyTimeout, `${after}: failed before busyTimeout`)
            outcomes.push("locked")
          }
        }))
      }
      assert.strictEqual(yield* rows(), outcomes.filter((o) => o === "written").length, outcomes.join(","))
    }).pipe(Effect.scoped), { timeout: 60_000 })

  // BUG (fixed): it failed with node:sqlite's "database is not open" (no operation straddled a close before the lock wait)
  it.live("an enqueue waiting for the lock when its store closes fails with the closed store's StoreError, having written nothing", () =>
    Effect.gen(function*() {
      const filename = fresh()
      const scope = yield* Scope.make()
      const store = yield* Sqlite.make({ filename, busyTimeout: 60_000 }).pipe(Scope.provide(scope))
      const holder = yield* sqliteLockHolder(filename)
      const waiting = yield* Effect.forkChild(Effect.exit(Effect.provideService(JobQueue.enqueue(Echo, { n: 1 }), JobStore.JobStore, store)))
      yield* Effect.sleep(100)
      assert.isUndefined(waiting.pollUnsafe(), "the enqueue waits for the lock")
      yield* Scope.close(scope, Exit.void)
      yield* holder.release
      const exit = yield* Effect.timeoutOption(Fiber.join(waiting), "10 seconds")
      assert.isTrue(Option.isSome(exit), "the enqueue ended at its next try")
      const ended = Option.getOrThrow(exit)
      assert.isTrue(Exit.isFailure(ended))
      const error = Exit.isFailure(ended) ? Cause.findErrorOption(ended.cause) : Option.none()
      assert.isTrue(Option.isSome(error), String(Exit.isFailure(ended) ? ended.cause : ""))
      const found = Option.getOrThrow(error)
      assert.strictEqual(found._tag, "StoreError")
      assert.include(found.message, Closing.CLOSED)
      const other = yield* Sqlite.make({ filename, busyTimeout: 1000 })
      assert.strictEqual((yield* other.list({ queue: undefined, states: undefined, limit: 10 })).length, 0)
    }).pipe(Effect.scoped), { timeout: 60_000 })

  /** A connection of this process holding `filename`'s write lock (`BEGIN IMMEDIATE`) until its COMMIT; closed with the scope. */
  const heldLock = (filename: string) =>
    Effect.gen(function*() {
      const { DatabaseSync } = yield* Effect.promise(() => import("node:sqlite"))
      const own = new DatabaseSync(filename)
      yield* Effect.addFinalizer(() => Effect.sync(() => own.close()))
      own.exec("BEGIN IMMEDIATE")
      return own
    })

  // SQLite's own busy wait blocked the thread: the transaction holding the lock, in this very
  // process, could not go on until the wait ended (busyTimeout, then "database is locked")
  it.live("a connection of this process holding the lock across an await: an enqueue waits for its commit, and is written after it", () =>
    Effect.gen(function*() {
      const filename = fresh()
      const store = yield* Sqlite.make({ filename, busyTimeout: 60_000 })
      const own = yield* heldLock(filename)
      own.exec("INSERT INTO wp_meta (key, value) VALUES ('own', '1')")
      const from = performance.now()
      const waiting = yield* Effect.forkChild(Effect.provideService(JobQueue.enqueue(Echo, { n: 1 }), JobStore.JobStore, store))
      // the app's transaction goes on: its next step after a timer
      yield* Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 200)))
      assert.isUndefined(waiting.pollUnsafe(), "the enqueue waits for the lock")
      own.exec("COMMIT")
      const handle = yield* Effect.timeoutOption(Fiber.join(waiting), "10 seconds")
      assert.isTrue(Option.isSome(handle), "written once the lock was let go")
      assert.isBelow(performance.now() - from, 10_000)
      assert.strictEqual((yield* store.get(Option.getOrThrow(handle).id))?.state, "queued")
    }).pipe(Effect.scoped), { timeout: 60_000 })

  // an interrupted write on a live store: when its caller returns it has committed, or never will
  // (each try that found the lock taken rolled back; the next is a timer the interruption stops)
  it.live("an enqueue waiting for another connection's write lock, interrupted: its caller returns at once, and it is not written once the lock is let go", () =>
    Effect.gen(function*() {
      const filename = fresh()
      const store = yield* Sqlite.make({ filename, busyTimeout: 60_000 })
      const own = yield* heldLock(filename)
      const waiting = yield* Effect.forkChild(Effect.provideService(JobQueue.enqueue(Echo, { n: 1 }), JobStore.JobStore, store))
      // a few of its tries
      yield* Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 100)))
      assert.isUndefined(waiting.pollUnsafe(), "the enqueue waits for the lock")
      const from = performance.now()
      yield* Fiber.interrupt(waiting)
      assert.isBelow(performance.now() - from, 1000)
      own.exec("COMMIT")
      yield* Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 200)))
      assert.strictEqual((yield* store.list({ queue: undefined, states: undefined, limit: 10 })).length, 0, "written after its caller returned")
    }).pipe(Effect.scoped), { timeout: 60_000 })
})

/**
 * Stands in for the node:sqlite of Node 22.13 to 22.15 (the store's documented floor is 22.13) until
 * the returned function is called: a database has no `isTransaction` (Node 22.16 and 24 added it),
 * and a statement with numbered parameters (`?1`) fails when run with "column index out of range",
 * as 22.13's does (seen by hand: `SELECT ?1 = ?1` with one argument). `failOnce`: the next statement
 * whose SQL matches it fails as well, once. `node24`: Node 24's instead (`isTransaction`, numbered
 * parameters), with the injected failure only. `rollbackFailsOnce`: the next ROLLBACK throws and
 * leaves the transaction open (an I/O error at the worst moment).
 */
const nodeSqlite2213 = (failOnce?: RegExp, options: { readonly node24?: boolean; readonly rollbackFailsOnce?: boolean } = {}) => {
  const original = process.getBuiltinModule
  const real = original("node:sqlite") as typeof import("node:sqlite")
  let armed = failOnce
  let rollbackFails = options.rollbackFailsOnce === true
  const refuse = (message: string) => () => {
    throw Object.assign(new Error(message), { code: "ERR_SQLITE_ERROR" })
  }
  class DatabaseSync {
    constructor(...args: ConstructorParameters<typeof real.DatabaseSync>) {
      const db = new real.DatabaseSync(...args)
      const prepare = (sql: string) => {
        if (armed?.test(sql)) {
          armed = undefined
          const fail = refuse("injected: disk I/O error")
          return { get: fail, all: fail, run: fail }
        }
        if (!options.node24 && /\?\d/.test(sql)) {
          const fail = refuse("column index out of range")
          return { get: fail, all: fail, run: fail }
        }
        return db.prepare(sql)
      }
      return new Proxy(db, {
        get: (target, key) => {
          if (key === "isTransaction" && !options.node24) return undefined
          if (key === "prepare") return prepare
          if (key === "exec" && rollbackFails) {
            return (sql: string) => {
              if (rollbackFails && /^\s*ROLLBACK/i.test(sql)) {
                rollbackFails = false
                refuse("injected: disk I/O error on rollback")()
              }
              return target.exec(sql)
            }
          }
          const value = Reflect.get(target, key, target)
          return typeof value === "function" ? value.bind(target) : value
        }
      })
    }
  }
  process.getBuiltinModule = ((id: string) => id === "node:sqlite" ? { ...real, DatabaseSync } : original(id)) as typeof original
  return () => {
    process.getBuiltinModule = original
  }
}

describe("the SQLite store on Node 22.13's node:sqlite", () => {
  // BUG: on Node 22.13 (and 22.12 with --experimental-sqlite) every claim failed "column index out
  // of range" (the delayed-job lookup it runs is written with ?1 and ?2), and since a failed write
  // rolled back only `if (db.isTransaction)`, which that Node lacks, its transaction stayed open:
  // every later write failed "cannot start a transaction within a transaction". A job enqueued
  // there never ran. Seen by hand on Node 22.13.0 with the packed package.
  it.live("a claim, a delayed job's due time and a reap work; a failed write is rolled back and the next one succeeds", () =>
    Effect.gen(function*() {
      const restore = nodeSqlite2213(/^\s*UPDATE wp_job SET state = 'running'/)
      yield* Effect.addFinalizer(() => Effect.sync(restore))
      yield* Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        yield* JobQueue.enqueue(Echo, { n: 1 })
        yield* JobQueue.enqueue(Echo, { n: 2 }, { delay: "1 hour" })
        const request = { queues: ["default"], tasks: ["Echo"], limit: 5, lease: 30_000 }
        const failed = yield* Effect.exit(store.claim(request))
        assert.isTrue(Exit.isFailure(failed), "the injected failure")
        assert.include(Cause.pretty((failed as Exit.Failure<unknown, unknown>).cause), "injected")
        const claimed = yield* store.claim(request)
        assert.strictEqual(claimed.claims.length, 1, "the visible job, once the failed claim was rolled back")
        assert.isDefined(claimed.dueIn, "the delayed job's due time")
        assert.isAbove(claimed.dueIn!, 3_500_000)
        assert.strictEqual(yield* store.reap([]), 0, "no lease has expired")
        const stats = yield* JobQueue.stats("default")
        assert.deepStrictEqual([stats.running, stats.delayed], [1, 1])
      }).pipe(Effect.provide(JobStore.sqlite({ filename: fresh() })))
    }).pipe(Effect.scoped), { timeout: 30_000 })
})

describe("the SQLite store after a rollback that failed", () => {
  // a rollback that throws (an I/O error) leaves the transaction open: every later write failed
  // "cannot start a transaction within a transaction", for the life of the store
  it.live("the next write rolls the leftover transaction back and succeeds", () =>
    Effect.gen(function*() {
      const restore = nodeSqlite2213(/^\s*UPDATE wp_job SET state = 'running'/, { node24: true, rollbackFailsOnce: true })
      yield* Effect.addFinalizer(() => Effect.sync(restore))
      yield* Effect.gen(function*() {
        const store = yield* JobStore.JobStore
        yield* JobQueue.enqueue(Echo, { n: 1 })
        const request = { queues: ["default"], tasks: ["Echo"], limit: 5, lease: 30_000 }
        const failed = yield* Effect.exit(store.claim(request))
        assert.isTrue(Exit.isFailure(failed), "the injected failure")
        const claimed = yield* store.claim(request)
        assert.strictEqual(claimed.claims.length, 1)
        yield* JobQueue.enqueue(Echo, { n: 2 })
        assert.strictEqual((yield* JobQueue.stats("default")).waiting, 1)
      }).pipe(Effect.provide(JobStore.sqlite({ filename: fresh() })))
    }).pipe(Effect.scoped), { timeout: 30_000 })
})

describe("the SQLite store's named parameters and its rollback, on Node 24's node:sqlite and on 22.13's", () => {
  for (const node of ["24", "22.13"] as const) {
    it.effect(`[${node}] delays of 0, 1 hour and the largest (1e15 ms) and a reap's delays (the consumer's backoff, a job's own, a named policy's) are bound as given; a negative delay is refused, typed`, () =>
      Effect.gen(function*() {
        if (node === "22.13") {
          const restore = nodeSqlite2213()
          yield* Effect.addFinalizer(() => Effect.sync(restore))
        }
        yield* Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          const refused = yield* Effect.exit(JobQueue.enqueue(Echo, { n: -1 }, { delay: -1 }))
          assert.isTrue(Exit.isFailure(refused) && Cause.squash(refused.cause) instanceof Error &&
            (Cause.squash(refused.cause) as { _tag?: string })._tag === "InvalidJobOptions", "a negative delay: InvalidJobOptions")
          yield* JobQueue.enqueue(Echo, { n: 0 }, { delay: 0 })
          yield* JobQueue.enqueue(Echo, { n: 1 }, { delay: "1 hour" })
          yield* JobQueue.enqueue(Echo, { n: 2 }, { delay: 1e15 })
          yield* JobQueue.enqueue(Echo, { n: 3 }, { retry: { fixed: "700 millis" } })
          yield* JobQueue.enqueue(Echo, { n: 4 }, { retry: "p" })
          const request = { queues: ["default"], tasks: ["Echo"], limit: 10, lease: 1_000 }
          const first = yield* store.claim(request)
          assert.strictEqual(first.claims.length, 3, "the jobs due now: delay 0, and the two with a retry of their own")
          assert.strictEqual(first.dueIn, 3_600_000, "the soonest delayed job: 1 hour")
          // every lease expires; the reap puts them back after their own delays
          yield* TestClock.adjust(2_000)
          assert.strictEqual(yield* store.reap([100], { p: [900] }), 3)
          const dues: Array<number | undefined> = []
          const claimed: Array<number> = []
          for (const step of [0, 100, 600, 200]) {
            yield* TestClock.adjust(step)
            const claim = yield* store.claim(request)
            claimed.push(claim.claims.length)
            dues.push(claim.dueIn)
          }
          // at 2,000: none; at 2,100 the one with the consumer's 100; at 2,700 the fixed 700; at 2,900 the policy's 900
          assert.deepStrictEqual(claimed, [0, 1, 1, 1])
          assert.deepStrictEqual(dues, [100, 600, 200, 3_600_000 - 2_900])
          const stats = yield* JobQueue.stats("default")
          assert.deepStrictEqual([stats.running, stats.delayed], [3, 2], "the 1-hour and the 1e15 ms jobs still wait")
        }).pipe(Effect.provide(JobStore.sqlite({ filename: fresh() })))
      }).pipe(Effect.scoped))

    it.effect(`[${node}] a write whose transaction SQLite itself rolled back (a trigger's RAISE(ROLLBACK)) fails with its own error, typed, not the rollback's "no transaction is active"; the next write succeeds`, () =>
      Effect.gen(function*() {
        if (node === "22.13") {
          const restore = nodeSqlite2213()
          yield* Effect.addFinalizer(() => Effect.sync(restore))
        }
        const filename = fresh()
        yield* Effect.gen(function*() {
          const store = yield* JobStore.JobStore
          yield* JobQueue.enqueue(Echo, { n: 1 })
          const { DatabaseSync } = process.getBuiltinModule("node:sqlite") as typeof import("node:sqlite")
          const side = new DatabaseSync(filename)
          yield* Effect.addFinalizer(() => Effect.sync(() => side.close()))
          side.exec(`CREATE TRIGGER injected BEFORE UPDATE OF state ON wp_job WHEN NEW.state = 'running'
            BEGIN SELECT RAISE(ROLLBACK, 'injected rollback'); END`)
          const request = { queues: ["default"], tasks: ["Echo"], limit: 5, lease: 30_000 }
          const failed = yield* Effect.exit(store.claim(request))
          assert.isTrue(Exit.isFailure(failed), "the claim failed")
          const error = Cause.squash((failed as Exit.Failure<unknown, unknown>).cause)
          assert.instanceOf(error, StoreError)
          assert.include((error as StoreError).reason, "injected rollback")
          side.exec("DROP TRIGGER injected")
          const claimed = yield* store.claim(request)
          assert.strictEqual(claimed.claims.length, 1, "the next write: no transaction was left open")
        }).pipe(Effect.provide(JobStore.sqlite({ filename })))
      }).pipe(Effect.scoped))
  }
})

/** Waits `millis` of real time (what the store's own looks at its files are timed by). */
const realSleep = (millis: number) => Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, millis)))

describe("the SQLite store's watch of other processes' commits", () => {
  // BUG: an event of the -wal file was looked at once, and once more 2 ms later: a commit its
  // process published later than that (preempted between its last write to the WAL and the update
  // of the shared index, as a loaded machine does for tens of ms) woke nobody. The idle consumer
  // saw the job at its next poll (60 s in the process tests), or at the next commit of the file.
  it.live("a commit published 150 ms after its last write to the WAL still wakes the waiter; with nothing published, the looks stop", () =>
    Effect.gen(function*() {
      const filename = fresh()
      fs.writeFileSync(`${filename}-wal`, "")
      let publishAt = Infinity
      let looks = 0
      let heard = 0
      const watch = yield* watchOtherProcesses({
        filename,
        waiting: () => true,
        look: () => {
          looks++
          if (performance.now() < publishAt) return false
          publishAt = Infinity
          heard++
          return true
        }
      })
      // arming looks (the commits while nobody watched), finds nothing: a few looks more, then none
      watch.arm()
      yield* waitFor(Effect.sync(() => looks === 1 + RECHECKS), "arming's look and its rechecks", { within: "10 seconds" })
      yield* realSleep(300)
      assert.strictEqual(looks, 1 + RECHECKS, "no looks without events: not a poll")
      // another process's commit: its last WAL write now, its publication 150 ms later
      publishAt = performance.now() + 150
      fs.appendFileSync(`${filename}-wal`, "frame")
      yield* waitFor(Effect.sync(() => heard === 1), "the late commit was heard", { within: "5 seconds" })
    }).pipe(Effect.scoped), { timeout: 60_000 })
})

describe("the SQLite store's file deleted or replaced under it", () => {
  // BUG: a store went on writing to the file it had opened after that file was deleted, or replaced
  // by a rename (a backup restored, a "reset" of the queue): its enqueues succeeded into a file no
  // other process could open again, lost when the process ended, and it never saw the jobs of the
  // processes on the new file. Nothing said so.
  it.live("its next operation fails with StoreError naming the file; a store opened on the path sees only the file there", () =>
    Effect.gen(function*() {
      for (const how of ["deleted", "replaced"] as const) {
        const filename = fresh()
        const store = yield* Sqlite.make({ filename, busyTimeout: 5000 })
        const enqueue = (n: number) => Effect.provideService(JobQueue.enqueue(Echo, { n }), JobStore.JobStore, store)
        yield* enqueue(1)
        // its -wal and -shm go with it (a new file beside the old ones would be read through them)
        for (const file of [`${filename}-wal`, `${filename}-shm`]) fs.rmSync(file)
        if (how === "deleted") fs.rmSync(filename)
        else {
          const replacement = fresh()
          yield* Effect.scoped(Effect.flatMap(
            Sqlite.make({ filename: replacement, busyTimeout: 5000 }),
            (other) => Effect.provideService(JobQueue.enqueue(Echo, { n: 2 }), JobStore.JobStore, other)
          ))
          fs.renameSync(replacement, filename)
        }
        // the store looks at its file's identity at most every FILE_CHECK ms
        yield* realSleep(Sqlite.FILE_CHECK + 50)
        const error = yield* Effect.flip(enqueue(3))
        assert.instanceOf(error, StoreError, how)
        assert.include(error.message, filename, how)
        assert.match(error.message, /deleted or replaced/, how)
        const read = yield* Effect.flip(store.counts("default"))
        assert.instanceOf(read, StoreError, `${how}: a read too`)
        // a store on the path sees what is there, never the failed enqueue
        const after = yield* Sqlite.make({ filename, busyTimeout: 5000 })
        assert.strictEqual((yield* after.counts("default")).waiting, how === "deleted" ? 0 : 1, how)
      }
    }).pipe(Effect.scoped), { timeout: 60_000 })
})

describe("the SQLite store's -wal file", () => {
  // BUG: the -wal file kept the size of the largest transaction ever written for as long as any
  // process had the file open: an enqueueAll of 50,000 jobs left 19 MB of it, reused but never
  // given back
  it.live("a large enqueueAll: once the next writes go through, the -wal file is back under WAL_LIMIT", () =>
    Effect.gen(function*() {
      const filename = fresh()
      const store = yield* Sqlite.make({ filename, busyTimeout: 5000 })
      const pad = "x".repeat(300)
      yield* store.enqueueAll(Array.from({ length: 30_000 }, (_, i) => ({
        queue: "default", task: "Echo", payload: JSON.stringify({ n: i, pad }), priority: 0, dedupKey: null,
        maxAttempts: 1, timeout: 0, delay: 0, runAt: undefined
      })))
      const big = fs.statSync(`${filename}-wal`).size
      assert.isAbove(big, 2 * Sqlite.WAL_LIMIT, "the transaction was larger than the limit")
      yield* Effect.provideService(JobQueue.enqueue(Echo, { n: 1 }), JobStore.JobStore, store)
      yield* Effect.provideService(JobQueue.enqueue(Echo, { n: 2 }), JobStore.JobStore, store)
      assert.isAtMost(fs.statSync(`${filename}-wal`).size, Sqlite.WAL_LIMIT, `the -wal file, after ${big} bytes`)
      assert.strictEqual((yield* store.counts("default")).waiting, 30_002)
    }).pipe(Effect.scoped), { timeout: 60_000 })
})

const node = fs.existsSync("node_modules/.bin/node") ? "node_modules/.bin/node" : process.execPath
const sqliteChild = new URL("./fixtures/sqlite-child.ts", import.meta.url).pathname
/** A process of fixtures/sqlite-child.ts on `filename`, followed by its lines, killed with the scope. */
const startSqliteChild = (filename: string, mode: "stats" | "open") =>
  Effect.acquireRelease(
    Effect.sync(() => followConsumer(spawn(node, [sqliteChild, filename, mode], { stdio: ["pipe", "pipe", "pipe"] }))),
    (child) => Effect.sync(() => child.child.kill("SIGKILL"))
  )
const lineOf = (child: Consumer, start: string, what: string) =>
  Effect.promise(() => waitUntil([child], () => child.lines.some((line) => line.startsWith(start)), what)).pipe(
    Effect.map(() => child.lines.find((line) => line.startsWith(start))!)
  )
/** The times (ms since the epoch) of every 100th read of a `stats` child so far. */
const readTimes = (child: Consumer) => child.lines.filter((line) => line.startsWith("reads ")).map((line) => Number(line.split(" ")[2]))

describe("the SQLite store's -wal file beside a process reading stats without a pause", () => {
  // BUG: the -wal file grew without bound while another process read all the time (a stats loop, a
  // dashboard): SQLite's checkpoint copies pages back only up to the oldest reader's snapshot, and
  // the file starts over only when a commit finds no reader on it; with one read transaction after
  // another, some snapshot was nearly always open (322 MB in 30 s, 47 MB in 6,000 enqueue-claim-settle rounds)
  /**
   * One run: 6,000 jobs enqueued, claimed and settled beside a reader process. Its largest -wal
   * file, the reader's longest read (ms) and how many of its reads fell during the writes.
   */
  const run = Effect.gen(function*() {
    const filename = fresh()
    const store = yield* Sqlite.make({ filename, busyTimeout: 5000 })
    const reader = yield* startSqliteChild(filename, "stats")
    yield* lineOf(reader, "ready", "the reader reads")
    const start = Date.now()
    const pad = "x".repeat(400)
    const wal = () => fs.statSync(`${filename}-wal`).size
    let largest = 0
    for (let round = 0; round < 120; round++) {
      yield* store.enqueueAll(Array.from({ length: 50 }, (_, i) => ({
        queue: "default", task: "Echo", payload: JSON.stringify({ n: round * 50 + i, pad }), priority: 0, dedupKey: null,
        maxAttempts: 1, timeout: 0, delay: 0, runAt: undefined
      })))
      const { claims } = yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 50, lease: 60_000 })
      for (const { token } of claims) yield* store.settle(token, { _tag: "Final", state: "succeeded", exit: "{}" })
      largest = Math.max(largest, wal())
    }
    const end = Date.now()
    // the reader's lines may come after the writes
    yield* Effect.promise(() => waitUntil([reader], () => readTimes(reader).some((at) => at > end), "the reader's lines came"))
    assert.strictEqual((yield* store.counts("default")).succeeded, 6000)
    return {
      largest,
      longestRead: Number(reader.lines.filter((line) => line.startsWith("reads ")).at(-1)?.split(" ")[3]),
      during: readTimes(reader).filter((at) => at >= start && at <= end).length,
      ms: end - start
    }
  }).pipe(Effect.scoped)

  // A read outlasting the store's wait for readers (its process not scheduled) keeps every
  // checkpoint from passing its snapshot, and the file grows until it ends: SQLite's nature, not the
  // store's. At load 6-8 a run whose longest read took 29 ms stayed at 16.6 MB, runs whose longest
  // took 245-277 ms reached 27-30 MB, the store's code unchanged; at load 10 even the bug's code
  // reached only 24 MB (its reader read less). So a run tells the bug only when the reader read all
  // along and never stalled: such a run must stay under the bound; a machine too busy for one in
  // three tries cannot tell, which the test says rather than fail or pass on a run that proves nothing.
  // Even a run whose reads were all short can pass the bound on a busy machine (CI at load 4-5: 20 MB,
  // longest read 12 ms: the checkpoint's own wait found a reader the scheduler had not yet let end,
  // and the next look was put off): the bug's runs never stayed under it (44-78 MB, 24 MB at load 10),
  // so one such run under the bound of up to three tells the fix, and all three over it fail
  const STALL = 100
  it.live("through the enqueues, claims and settles of 6,000 jobs it stays under 4 × WAL_LIMIT (it reached 44-78 MB)", () =>
    Effect.gen(function*() {
      const runs: Array<Effect.Success<typeof run>> = []
      for (let attempt = 0; attempt < 3; attempt++) {
        const result = yield* run
        runs.push(result)
        if (result.longestRead < STALL && result.during >= 5 && result.largest <= 4 * Sqlite.WAL_LIMIT) return
      }
      const told = runs.filter((result) => result.longestRead < STALL && result.during >= 5)
      if (told.length === 0) {
        console.warn(`the -wal bound was not checked: in each run the reader stalled or hardly read (a busy machine): ${JSON.stringify(runs)}`)
        return
      }
      assert.isAtMost(Math.min(...told.map((result) => result.largest)), 4 * Sqlite.WAL_LIMIT, `the largest -wal file, in bytes, of the runs whose reader read all along: ${JSON.stringify(told)}`)
    }), { timeout: 400_000 })
})

/**
 * A file as the store of schema version `version` left it, holding `jobs` jobs: of queue `other` one
 * in ten, the rest of `default`, in turn queued, queued with a delay, running, succeeded, dead and
 * cancelled, each kind of priorities 0, 1 and 2 in turn. Built in one statement. Returns the counts the store
 * must give for `default`.
 */
const oldFile = (filename: string, version: number, jobs: number) => {
  const db = new DatabaseSync(filename)
  db.exec("PRAGMA journal_mode = WAL")
  db.exec("CREATE TABLE wp_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
  for (const migration of Sqlite.MIGRATIONS.slice(0, version)) db.exec(migration)
  db.exec(`INSERT INTO wp_meta VALUES ('schema_version', '${version}')`)
  const kinds = ["queued", "delayed", "running", "succeeded", "dead", "cancelled"] as const
  db.exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${jobs})
    INSERT INTO wp_job (id, queue, task, payload, priority, rank, state, max_attempts, timeout_ms, created_at, visible_at,
      lease_token, lease_until, finished_at)
    SELECT 'job-' || i, CASE WHEN i % 10 = 0 THEN 'other' ELSE 'default' END, 'Echo', '{"n":' || i || ',"pad":"' || hex(randomblob(60)) || '"}',
      (i / 6) % 3, (i / 6) % 3, CASE i % 6 WHEN 0 THEN 'queued' WHEN 1 THEN 'queued' WHEN 2 THEN 'running' WHEN 3 THEN 'succeeded' WHEN 4 THEN 'dead' ELSE 'cancelled' END,
      3, 0, 0, CASE WHEN i % 6 = 1 THEN 4000000000000 ELSE 0 END,
      CASE WHEN i % 6 = 2 THEN 'lease-' || i END, CASE WHEN i % 6 = 2 THEN 4000000000000 END, CASE WHEN i % 6 >= 3 THEN i END
    FROM n`)
  db.close()
  const expected = { waiting: 0, delayed: 0, running: 0, succeeded: 0, dead: 0, cancelled: 0 }
  const byPriority = [0, 0, 0]
  for (let i = 1; i <= jobs; i++) {
    if (i % 10 === 0) continue
    const kind = kinds[i % 6]!
    expected[kind === "queued" ? "waiting" : kind]++
    if (i % 6 <= 1) byPriority[Math.floor(i / 6) % 3]!++
  }
  return { ...expected, queuedByPriority: [2, 1, 0].map((priority) => ({ priority, count: byPriority[priority]! })) }
}

describe("the SQLite store's counts of a queue of 150,000 jobs", () => {
  // BUG: a queue's counts (JobQueue.stats, the dashboard's every sample) scanned the whole job table,
  // synchronously: 450 ms at 200,000 jobs, the process's event loop (its consumers' heartbeats with
  // it) held as long. Version 7's indexes answer them alone
  it.live("a file of version 6 gets the index when opened; the counts read it alone, in a fraction of a scan's time, and are right", () =>
    Effect.gen(function*() {
      const filename = fresh()
      const expected = oldFile(filename, 6, 150_000)
      const store = yield* Sqlite.make({ filename, busyTimeout: 5000 })
      const counts = yield* store.counts("default")
      assert.deepStrictEqual(
        { ...counts, queuedByPriority: [...counts.queuedByPriority] },
        { queue: "default", paused: false, aging: 0, rateLimit: undefined, blocked: 0, ...expected }
      )
      // what the event loop is held for: the store's counts against the scan that version 6's
      // counts began with (its first statement, on the table, as it ran before the indexes; its
      // counts were that and more), each the best of 5, in turns, the scan on another connection.
      // (seen: 38 ms against 122 ms, load 8; version 6's counts took 290 ms against 90)
      const scanner = new DatabaseSync(filename)
      const scan = scanner.prepare(
        `SELECT state, (state = 'queued' AND visible_at > ?) AS delayed, COUNT(*) AS n FROM wp_job NOT INDEXED WHERE queue = ?
         GROUP BY state, delayed`
      )
      const best = { counts: Infinity, scan: Infinity }
      for (let i = 0; i < 5; i++) {
        let start = performance.now()
        yield* store.counts("default")
        best.counts = Math.min(best.counts, performance.now() - start)
        start = performance.now()
        scan.all(Date.now(), "default")
        best.scan = Math.min(best.scan, performance.now() - start)
      }
      scanner.close()
      assert.isBelow(best.counts, best.scan, `counts ${best.counts.toFixed(1)} ms, a scan ${best.scan.toFixed(1)} ms`)
      const check = new DatabaseSync(filename)
      const version = check.prepare("SELECT value FROM wp_meta WHERE key = 'schema_version'").get() as { value: string }
      assert.strictEqual(version.value, String(Sqlite.MIGRATIONS.length))
      const plan = (sql: string, params: Record<string, string | number>) =>
        (check.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(params) as Array<{ detail: string }>)
          .map((row) => row.detail).filter((detail) => /wp_job/.test(detail))
      const plans = { counts: plan(Sqlite.COUNTS, { queue: "default", now: 0 }), finished: plan(Sqlite.FINISHED, { queue: "default" }) }
      check.close()
      // the running jobs their index (the consumers' slots at most), the queued ones a range of
      // the claim's index, the finished ones the queue's range of the retention's index (version 12;
      // before it, every queue's along the purge's): never the table
      assert.deepStrictEqual(plans, {
        counts: [
          "SCAN wp_job USING COVERING INDEX wp_job_running",
          "SEARCH wp_job USING COVERING INDEX wp_job_blocked (queue=?)",
          "SEARCH wp_job USING COVERING INDEX wp_job_ready (queue=?)"
        ],
        finished: ["SEARCH wp_job USING COVERING INDEX wp_job_retained (queue=? AND state=? AND finished_at>?)"]
      })
    }).pipe(Effect.scoped), { timeout: 120_000 })

  it.live("two processes opening a version 6 file of 150,000 jobs at the same time: one migrates it, both open, the jobs are kept", () =>
    Effect.gen(function*() {
      const filename = fresh()
      const expected = oldFile(filename, 6, 150_000)
      const children = [yield* startSqliteChild(filename, "open"), yield* startSqliteChild(filename, "open")]
      for (const child of children) yield* lineOf(child, "loaded", "the child loaded")
      for (const child of children) child.child.stdin!.write("go\n")
      for (const child of children) {
        // a second migration (of version 6 again) would fail its open: the index exists
        assert.strictEqual(yield* lineOf(child, "opened", "the child opened the store"), `opened ${expected.waiting}`, child.stderr)
      }
      const db = new DatabaseSync(filename)
      const version = db.prepare("SELECT value FROM wp_meta WHERE key = 'schema_version'").get() as { value: string }
      const indexes = db.prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'wp_job' AND sql IS NOT NULL ORDER BY name").all() as Array<
        { name: string; sql: string }
      >
      const jobs = db.prepare("SELECT COUNT(*) AS n FROM wp_job").get() as { n: number }
      db.close()
      assert.strictEqual(version.value, String(Sqlite.MIGRATIONS.length))
      const sqlOf = (name: string) => indexes.find((index) => index.name === name)?.sql
      assert.match(sqlOf("wp_job_ready")!, /seq, priority, visible_at\)/)
      assert.match(sqlOf("wp_job_running")!, /lease_until, queue\)/)
      assert.match(sqlOf("wp_job_finished")!, /finished_at, queue, state\)/)
      // the dedup modes' index of throttle windows, empty until a job has one
      assert.match(sqlOf("wp_job_dedup_until")!, /WHERE dedup_until IS NOT NULL/)
      // a retention by count's index of a queue's finished jobs (version 12)
      assert.match(sqlOf("wp_job_retained")!, /\(queue, state, finished_at\) WHERE finished_at IS NOT NULL/)
      // the per-key caps' indexes (version 13), of keyed jobs only: empty, as no job had a key
      assert.match(sqlOf("wp_job_group_ready")!, /WHERE state = 'queued' AND group_key IS NOT NULL/)
      assert.match(sqlOf("wp_job_group_running")!, /WHERE state = 'running' AND group_key IS NOT NULL/)
      // a key's queued jobs by due time (version 14), for a claim's probe of a key
      assert.match(sqlOf("wp_job_group_due")!, /\(queue, group_key, visible_at\) WHERE state = 'queued' AND group_key IS NOT NULL/)
      // the waiting jobs with an expiry (version 15; blocked ones too since 16): empty, as no old job had one
      assert.match(sqlOf("wp_job_expiring")!, /\(expire_at, queue\) WHERE \(state = 'blocked' OR state = 'queued'\) AND expire_at IS NOT NULL/)
      // the blocked jobs (version 16), empty; the dedup index holds them too
      assert.match(sqlOf("wp_job_blocked")!, /\(queue\) WHERE state = 'blocked'/)
      assert.match(sqlOf("wp_job_dedup")!, /\(state = 'blocked' OR state IN \('queued', 'running'\)\)/)
      assert.strictEqual(indexes.length, 13, indexes.map((index) => index.name).join(", "))
      assert.strictEqual(jobs.n, 150_000)
    }).pipe(Effect.scoped), { timeout: 180_000 })
})
