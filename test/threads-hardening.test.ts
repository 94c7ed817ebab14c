/**
 * Faults in user code, bad options and shutdown races on a thread pool: none may crash the
 * process, hang a caller or leave a thread (or a thread's resource) behind.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Duration, Effect, Exit, Fiber, Logger, References, Schedule, Scope } from "effect"
import { TestClock } from "effect/testing"
import { mkdtempSync, readdirSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { PoolError } from "../src/index.ts"
import * as ThreadPool from "../src/ThreadPool.ts"
import { makePool, worker } from "./fixtures/pool.ts"
import { Crash, Echo, NotAnEffect, Sleep, Spin, Stray, Throw, WorkerDataKeys } from "./fixtures/tasks.ts"
import { settle, waitFor } from "./helpers.ts"

/** The worker threads of this process that are alive, as the OS sees them (Linux names them). */
const osThreads = (): number =>
  readdirSync("/proc/self/task").filter((task) => {
    try {
      return readFileSync(`/proc/self/task/${task}/comm`, "utf8").trim() === "WorkerThread"
    } catch {
      return false // the thread exited while we looked
    }
  }).length

const invalidField = <A, E>(effect: Effect.Effect<A, E, any>) =>
  Effect.map(Effect.flip(effect), (error) => {
    const e = error as { _tag?: string; field?: string }
    return e._tag === "InvalidPoolConfig" || e._tag === "InvalidJobOptions" ? `${e._tag} ${e.field}` : String(error)
  })

describe("ThreadPool: user code in the thread", () => {
  // "wellFormed" posts replies the pool would read for every task id: they must not end the task in
  // flight; after "unlisten" (parentPort.removeAllListeners("message")) or "close" the thread must
  // still answer
  for (
    const kind of ["null", "undefined", "string", "forged", "batch", "envelopeOfNull", "envelopeOfJunk", "malformed", "wellFormed", "tuples", "unlisten", "close"] as const
  ) {
    it.live(`a message user code posts on parentPort (${kind}) is ignored`, () =>
      Effect.gen(function*() {
        const { pool } = yield* makePool({ threads: 1 })
        assert.strictEqual(yield* pool.run(Stray, kind, { timeout: "10 seconds" }), 1)
        const after = yield* Effect.exit(pool.run(Echo, "after", { timeout: "10 seconds" }))
        assert.deepStrictEqual(after, Exit.succeed("echo after"))
        assert.strictEqual(yield* pool.threads, 1)
      }))
  }

  it.live("user code in the thread reads its own workerData: the pool's port is not in it", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1 })
      assert.deepStrictEqual(yield* pool.run(WorkerDataKeys, 0), ["counters"])
    }))

  it.live("a stray message is logged at debug level, with what it was", () =>
    Effect.gen(function*() {
      const logged: Array<string> = []
      const collector = Logger.make((options) => {
        logged.push(`${options.logLevel} ${String(options.message)}`)
      })
      const { pool } = yield* makePool({ threads: 1 }).pipe(
        Effect.provide(Logger.layer([collector])),
        Effect.provideService(References.MinimumLogLevel, "Debug")
      )
      assert.strictEqual(yield* pool.run(Stray, "string"), 1)
      yield* waitFor(Effect.sync(() => logged), "the stray message is logged", { until: (lines) => lines.length > 0 })
      assert.match(logged[0]!, /^Debug .*not the pool's.*hello from user code/)
    }))

  for (const kind of ["nullProto", "badMessage", "badName", "proxy", "revoked", "symbol"] as const) {
    it.live(`an odd thrown value (${kind}) comes back as a defect; the thread survives`, () =>
      Effect.gen(function*() {
        const { pool } = yield* makePool({ threads: 1 })
        const exit = yield* Effect.exit(pool.run(Throw, kind, { timeout: "20 seconds" }))
        assert.isTrue(Exit.isFailure(exit) && Cause.hasDies(exit.cause), String(exit))
        const defect = Exit.isFailure(exit) ? Cause.squash(exit.cause) as Error : undefined
        assert.instanceOf(defect, Error)
        assert.isNotEmpty(defect!.message)
        if (kind === "nullProto") assert.include(defect!.message, "no prototype")
        if (kind === "badMessage") assert.include(defect!.message, "the message getter throws")
        if (kind === "badName") assert.strictEqual(defect!.message, "a message")
        if (kind === "symbol") assert.include(defect!.message, "Symbol(thrown)")
        if (kind === "revoked") assert.include(defect!.message, "Revoked Proxy")
        assert.strictEqual(yield* pool.run(Echo, "after"), "echo after")
        assert.strictEqual(yield* pool.threads, 1)
      }))
  }

  // The thread reports why its layer failed; the reason must say what the value was, whatever it is.
  for (
    const [kind, die, shown] of [
      ["error", false, "Error: no database"],
      ["symbol", false, "Symbol(no database)"],
      ["symbol", true, "Symbol(no database)"],
      ["nullProto", true, "no database"],
      ["revoked", false, "Revoked Proxy"],
      ["badMessage", true, "the message getter throws"]
    ] as const
  ) {
    it.live(`a layer that ${die ? "dies" : "fails"} with an odd value (${kind}): WorkerStartFailed says what it was`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(ThreadPool.make({
          worker: new URL("./fixtures/failing-layer-worker.ts", import.meta.url),
          threads: 1,
          workerData: { kind, die },
          startSchedule: Schedule.recurs(0)
        }))
        assert.instanceOf(error, PoolError.WorkerStartFailed)
        assert.include((error as PoolError.WorkerStartFailed).reason, shown)
      }))
  }

  // The pool replaces a thread that exits on its own, even with no task on it: an operator must
  // be able to see that this happens (a thread that keeps exiting is a crash loop).
  it.live("a thread that exits while idle is replaced, and its exit is logged at warning level", () =>
    Effect.gen(function*() {
      const logged: Array<string> = []
      const collector = Logger.make((options) => void logged.push(`${options.logLevel} ${String(options.message)}`))
      const started = new SharedArrayBuffer(4)
      const pool = yield* ThreadPool.make({
        worker: new URL("./fixtures/exits-once-worker.ts", import.meta.url),
        threads: 1,
        workerData: { started }
      }).pipe(Effect.provide(Logger.layer([collector])))
      yield* waitFor(Effect.sync(() => Atomics.load(new Int32Array(started), 0)), "the thread is replaced", { until: (n) => n === 2 })
      assert.strictEqual(yield* pool.run(Echo, "after"), "echo after")
      const warnings = logged.filter((line) => line.startsWith("Warn"))
      assert.strictEqual(warnings.length, 1, logged.join("\n"))
      assert.match(warnings[0]!, /thread 0 exited .*code 1/)
    }))

  // A thread that keeps exiting soon after it started was replaced at once, forever (an idle pool
  // started a thread every 300 ms). Its replacements follow startSchedule, on the pool's clock;
  // once the schedule is done, it is started again only when a task needs it.
  //
  // Every step waits for an event (a log line, a thread's start): each wait is bounded in real
  // time, well below the test's own limit, and says what it waited for and what it saw, so that a
  // wait that never ends fails as such rather than as a bare test timeout. The conditions are "at
  // least", then checked exactly: one event too many fails an assertion instead of a wait.
  it.effect("a thread that keeps dying soon after it started is replaced per startSchedule, then only on demand", () =>
    Effect.gen(function*() {
      const logged: Array<string> = []
      const collector = Logger.make((options) => void logged.push(`${options.logLevel} ${String(options.message)}`))
      const started = new SharedArrayBuffer(4)
      const starts = () => Atomics.load(new Int32Array(started), 0)
      const deaths = () => logged.filter((line) => line.includes("exited with no task on it")).length
      const seen = () => `${starts()} starts; logged:\n${logged.join("\n")}`
      const within = <A, E, R>(what: string, effect: Effect.Effect<A, E, R>) =>
        Effect.raceFirst(
          effect,
          TestClock.withLive(Effect.sleep("20 seconds")).pipe(
            Effect.andThen(Effect.sync(() => assert.fail(`${what}: not within 20 s; ${seen()}`)))
          )
        )
      const until = (what: string, check: () => boolean) => within(what, waitFor(Effect.sync(check), what))
      // the first three threads die 200 ms after they start; the fourth, started for a task, lives
      // (dying first, it would fail the task: a race this test has no use for)
      const lifetimes = new SharedArrayBuffer(4 * 4)
      new Int32Array(lifetimes).set([200, 200, 200, 0])
      const pool = yield* within(
        "the pool starts its thread",
        ThreadPool.make({
          worker: new URL("./fixtures/dies-soon-worker.ts", import.meta.url),
          threads: 1,
          workerData: { started, lifetimes },
          startSchedule: Schedule.spaced("1 minute").pipe(Schedule.upTo({ times: 2 }))
        }).pipe(Effect.provide(Logger.layer([collector])))
      )
      for (const n of [1, 2]) {
        yield* until(`thread ${n} dies`, () => deaths() >= n)
        yield* settle
        assert.strictEqual(deaths(), n, seen())
        assert.strictEqual(yield* pool.threads, 0, `no replacement before the schedule's delay (death ${n})`)
        assert.strictEqual(starts(), n)
        yield* TestClock.adjust("1 minute")
        yield* until(`thread ${n + 1} starts`, () => starts() >= n + 1)
        assert.strictEqual(starts(), n + 1)
      }
      yield* until("the schedule is done", () => logged.some((line) => line.includes("3 times in a row")))
      assert.match(logged.find((line) => line.includes("3 times in a row"))!, /^Warn .*thread 0 exited 3 times in a row/)
      yield* TestClock.adjust("1 hour")
      yield* settle
      assert.strictEqual(yield* pool.threads, 0, "not replaced once the schedule is done")
      assert.strictEqual(starts(), 3)
      // a task needs it: it is started again
      assert.strictEqual(yield* within("the task runs", pool.run(Echo, "again")), "echo again")
      assert.strictEqual(starts(), 4)
    }), 60_000)

  it.effect("a thread that completed a task is replaced at once when it dies: the count of early deaths starts over", () =>
    Effect.gen(function*() {
      const logged: Array<string> = []
      const collector = Logger.make((options) => void logged.push(String(options.message)))
      const started = new SharedArrayBuffer(4)
      const starts = () => Atomics.load(new Int32Array(started), 0)
      // the first thread dies at once; the second lives until it is killed by a task
      const lifetimes = new SharedArrayBuffer(4 * 4)
      new Int32Array(lifetimes).set([1, 0, 0, 0])
      const pool = yield* ThreadPool.make({
        worker: new URL("./fixtures/dies-soon-worker.ts", import.meta.url),
        threads: 1,
        workerData: { started, lifetimes },
        startSchedule: Schedule.spaced("1 hour")
      }).pipe(Effect.provide(Logger.layer([collector])))
      yield* waitFor(Effect.sync(() => logged), "the thread dies", { until: (lines) => lines.some((line) => line.includes("exited with no task on it")) })
      yield* settle
      assert.strictEqual(yield* pool.threads, 0, "an early death: the replacement waits the schedule's delay")
      yield* TestClock.adjust("1 hour")
      assert.strictEqual(yield* pool.run(Echo, "x"), "echo x")
      assert.strictEqual(starts(), 2)
      // it completed a task: dying now (with a task on it) is not an early death
      const crashed = yield* Effect.flip(pool.run(Crash, "exit"))
      assert.instanceOf(crashed, PoolError.WorkerCrashed)
      yield* waitFor(Effect.sync(() => starts()), "the thread is replaced at once, with no clock adjusted", { until: (n) => n === 3 })
      assert.strictEqual(yield* pool.run(Echo, "y"), "echo y")
    }))

  it.effect("a pool shut down while a dying thread's replacement waits its delay closes at once", () =>
    Effect.gen(function*() {
      const logged: Array<string> = []
      const collector = Logger.make((options) => void logged.push(String(options.message)))
      const started = new SharedArrayBuffer(4)
      const scope = yield* Scope.make()
      const pool = yield* ThreadPool.make({
        worker: new URL("./fixtures/dies-soon-worker.ts", import.meta.url),
        threads: 1,
        workerData: { started },
        startSchedule: Schedule.spaced("1 hour")
      }).pipe(Effect.provide(Logger.layer([collector])), Scope.provide(scope))
      yield* waitFor(Effect.sync(() => logged), "the thread dies", { until: (lines) => lines.some((line) => line.includes("exited with no task on it")) })
      yield* settle
      // the replacement sleeps an hour on the TestClock: the close must interrupt it, not wait
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(yield* pool.threads, 0)
      assert.strictEqual(Atomics.load(new Int32Array(started), 0), 1)
    }))

  // serve runs when the worker file is loaded: a wrong call (from JavaScript) fails the thread's
  // start, and WorkerStartFailed must say what was wrong, not an internal TypeError.
  for (
    const [mode, shown] of [
      ["duplicate", "two handlers for task Echo (handlers[0] and handlers[1])"],
      ["notArray", "expected an array of handlers made with Task.handle, got null"],
      ["notHandler", "handlers[1]: expected a handler made with Task.handle"],
      ["runNotFunction", "handlers[0]: expected a handler made with Task.handle"],
      ["notLayer", "expected a Layer for the handlers' services, got 42"],
      // two servers on one port would both answer every task
      ["twice", "called twice in one thread"]
    ] as const
  ) {
    it.live(`ThreadWorker.serve called wrongly (${mode}) fails the start with a reason that says so`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(ThreadPool.make({
          worker: new URL("./fixtures/bad-serve-worker.ts", import.meta.url),
          threads: 1,
          workerData: { mode },
          startSchedule: Schedule.recurs(0)
        }))
        assert.instanceOf(error, PoolError.WorkerStartFailed)
        assert.include((error as PoolError.WorkerStartFailed).reason, shown)
      }))
  }

  it.live("ThreadWorker.serve with a Layer serves", () =>
    Effect.gen(function*() {
      const pool = yield* ThreadPool.make({
        worker: new URL("./fixtures/bad-serve-worker.ts", import.meta.url),
        threads: 1,
        workerData: { mode: "fine" }
      })
      assert.strictEqual(yield* pool.run(Echo, "a"), "echo a")
    }))

  it.live("a handler that returns something other than an Effect fails its task with a defect naming the problem", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1 })
      const exit = yield* Effect.exit(pool.run(NotAnEffect, 1))
      const defect = Exit.isFailure(exit) ? Cause.squash(exit.cause) as Error : undefined
      assert.instanceOf(defect, Error)
      assert.include(defect!.message, "the handler of task NotAnEffect returned Promise")
      assert.include(defect!.message, "not an Effect")
      assert.strictEqual(yield* pool.run(Echo, "after"), "echo after")
    }))

  it.live("a typed failure its Schema rejects, even a Proxy, fails the task with TaskCodecError; the thread survives", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1 })
      const error = yield* Effect.flip(pool.run(Throw, "failProxy"))
      assert.deepStrictEqual([error._tag, (error as PoolError.TaskCodecError).part], ["TaskCodecError", "failure"])
      assert.strictEqual(yield* pool.run(Echo, "after"), "echo after")
    }))
})

describe("ThreadPool options", () => {
  // Building an Effect runs nothing: user code that throws (a getter, a Proxy trap) must throw
  // when the Effect runs, as a defect, and not out of the call that builds it (as WorkPool does).
  it.live("run and submit read their options when they run: a getter that throws is a defect, not a throw at the call", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1 })
      const options = {
        get transfer(): Array<ArrayBuffer> {
          throw new Error("the transfer getter throws")
        }
      }
      const built = Effect.try(() => [pool.run(Echo, "a", options), pool.submit(Echo, "a", options)] as const)
      const [run, submit] = yield* Effect.orDie(built)
      for (const effect of [run, submit] as const) {
        const exit = yield* Effect.exit(effect as Effect.Effect<unknown, unknown>)
        assert.isTrue(Exit.isFailure(exit) && Cause.hasDies(exit.cause), String(exit))
        assert.include(String(Exit.isFailure(exit) ? Cause.squash(exit.cause) : ""), "the transfer getter throws")
      }
      assert.strictEqual(yield* pool.run(Echo, "after"), "echo after")
    }))

  it.live("resourceLimits Node cannot honour fail with InvalidPoolConfig instead of aborting the process", () =>
    Effect.gen(function*() {
      for (const [resourceLimits, field] of [
        [{ maxOldGenerationSizeMb: 1 }, "resourceLimits.maxOldGenerationSizeMb"],
        [{ maxOldGenerationSizeMb: -1 }, "resourceLimits.maxOldGenerationSizeMb"],
        [{ maxOldGenerationSizeMb: 2 }, "resourceLimits.maxOldGenerationSizeMb"],
        [{ maxOldGenerationSizeMb: Number.NaN }, "resourceLimits.maxOldGenerationSizeMb"],
        [{ maxYoungGenerationSizeMb: -1 }, "resourceLimits.maxYoungGenerationSizeMb"],
        [{ codeRangeSizeMb: "8" }, "resourceLimits.codeRangeSizeMb"],
        [{ stackSizeMb: -1 }, "resourceLimits.stackSizeMb"],
        [{ stackSizeMb: 0.1 }, "resourceLimits.stackSizeMb"],
        [{ maxOldGenSizeMb: 64 }, "resourceLimits.maxOldGenSizeMb"],
        [64, "resourceLimits"],
        ["64 MB", "resourceLimits"],
        [null, "resourceLimits"]
      ] as const) {
        const got = yield* invalidField(ThreadPool.make({ worker, threads: 1, resourceLimits: resourceLimits as any }))
        assert.strictEqual(got, `InvalidPoolConfig ${field}`, JSON.stringify(resourceLimits))
      }
      // the smallest accepted heap starts (and the thread, too small for effect, fails alone)
      const small = yield* Effect.exit(ThreadPool.make({
        worker,
        threads: 1,
        startSchedule: Schedule.recurs(0),
        resourceLimits: { maxOldGenerationSizeMb: 4, stackSizeMb: 0.5 }
      }))
      assert.isTrue(Exit.isFailure(small))
      assert.strictEqual(Exit.isFailure(small) && Cause.squash(small.cause) instanceof PoolError.WorkerStartFailed, true)
    }), 60_000)

  // An infinite grace would never terminate a thread stuck in a synchronous loop: its pool's
  // shutdown (even shutdownNow, even under Effect.timeout, since closing a scope is not
  // interruptible) would wait forever.
  it.live("an infinite cancelGrace fails with InvalidPoolConfig", () =>
    Effect.gen(function*() {
      for (const cancelGrace of [Infinity, "Infinity", Duration.infinity] as Array<Duration.Input>) {
        const got = yield* invalidField(ThreadPool.make({ worker, threads: 1, cancelGrace }))
        assert.strictEqual(got, "InvalidPoolConfig cancelGrace", String(cancelGrace))
      }
    }))

  it.live("a worker path that is a directory is reported as a directory, not as missing", () =>
    Effect.gen(function*() {
      const dir = mkdtempSync(join(tmpdir(), "workpool-dir-"))
      for (const worker of [dir, new URL(`file://${dir}/`)]) {
        const error = yield* Effect.flip(ThreadPool.make({ worker, threads: 1 }))
        assert.instanceOf(error, PoolError.InvalidPoolConfig)
        assert.include(error.message, "is a directory")
        assert.notInclude(error.message, "does not exist")
      }
    }))

  it.live("a startSchedule that is not a Schedule fails with InvalidPoolConfig", () =>
    Effect.gen(function*() {
      for (const startSchedule of ["8", {}, 1.5, () => 1, null]) {
        const got = yield* invalidField(ThreadPool.make({ worker, threads: 1, startSchedule: startSchedule as any }))
        assert.strictEqual(got, "InvalidPoolConfig startSchedule", String(startSchedule))
      }
    }))

  it.live("options that are not an object, and workerData that cannot be cloned, fail with InvalidPoolConfig", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* invalidField(ThreadPool.make(undefined as any)), "InvalidPoolConfig options")
      assert.strictEqual(yield* invalidField(ThreadPool.make(null as any)), "InvalidPoolConfig options")
      const counters = new SharedArrayBuffer(16)
      const got = yield* invalidField(ThreadPool.make({
        worker: new URL("./fixtures/never-ready-worker.ts", import.meta.url),
        threads: 1,
        workerData: { counters, callback: () => 1 }
      }))
      assert.strictEqual(got, "InvalidPoolConfig workerData")
      assert.strictEqual(Atomics.load(new Int32Array(counters), 0), 0, "no thread was started")
    }))

  it.live("a transfer list that is not a list of transferable objects fails with InvalidJobOptions naming it", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1 })
      const buffer = new ArrayBuffer(8)
      for (const [transfer, field] of [
        ["", "transfer"],
        [null, "transfer"],
        [5, "transfer"],
        [[42], "transfer[0]"],
        [[buffer, null], "transfer[1]"],
        [[new Uint8Array(buffer)], "transfer[0]"],
        [[buffer, buffer], "transfer[1]"]
      ] as const) {
        const got = yield* invalidField(pool.run(Echo, "x", { transfer: transfer as any }))
        assert.strictEqual(got, `InvalidJobOptions ${field}`, String(transfer))
        const submitted = yield* invalidField(pool.submit(Echo, "x", { transfer: transfer as any }))
        assert.strictEqual(submitted, `InvalidJobOptions ${field}`, String(transfer))
      }
      const view = yield* Effect.flip(pool.run(Echo, "x", { transfer: [new Uint8Array(buffer)] as any }))
      assert.include(view.message, "its .buffer")
      assert.strictEqual(buffer.byteLength, 8, "nothing was moved")
      assert.strictEqual(yield* pool.run(Echo, "after"), "echo after")
    }))

  it.live("a buffer moved by an earlier task fails the next one with a message about the transfer list", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1, paused: true })
      const buffer = new ArrayBuffer(8)
      // both are accepted while queued; the first moves the buffer, so the second cannot
      const first = yield* pool.submit(Echo, "a", { transfer: [buffer] })
      const second = yield* pool.submit(Echo, "b", { transfer: [buffer] })
      yield* pool.resume
      assert.strictEqual(yield* first.await, "echo a")
      const error = yield* Effect.flip(second.await)
      assert.strictEqual(error._tag, "TaskCodecError")
      assert.match(error.message, /transfer\[0\].*detached/)
      // and right away: a detached buffer is refused at submission
      const refused = yield* Effect.flip(pool.run(Echo, "c", { transfer: [buffer] }))
      assert.strictEqual((refused as PoolError.InvalidJobOptions).field, "transfer[0]")
      assert.include(refused.message, "detached")
    }))
})

describe("ThreadPool start and shutdown", () => {
  it.live.runIf(process.platform === "linux")(
    "make under a timeout stops starting threads at once and leaves none behind",
    () =>
      Effect.gen(function*() {
        const before = osThreads()
        const started = Date.now()
        // the threads are spawned as make starts; they never report ready, so make is still
        // waiting for them when the timeout strikes
        const exit = yield* Effect.exit(Effect.scoped(
          ThreadPool.make({ worker: new URL("./fixtures/never-ready-worker.ts", import.meta.url), threads: 2 }).pipe(
            Effect.timeout("500 millis")
          )
        ))
        // the default startTimeout is 30 s, and three attempts: the timeout must cut that short
        assert.isBelow(Date.now() - started, 10_000)
        assert.isTrue(Exit.isFailure(exit) && Cause.squash(exit.cause)?.constructor.name === "TimeoutError", String(exit))
        // a terminated worker's OS thread may still be exiting as terminate() resolves; a left one never goes
        yield* waitFor(Effect.sync(() => osThreads()), "no thread is left", { until: (n) => n === before })
      }),
    30_000
  )

  it.live.runIf(process.platform === "linux")(
    "make under a timeout leaves no thread behind even when its scope stays open",
    () =>
      Effect.gen(function*() {
        const before = osThreads()
        const timedOut = yield* Effect.flip(
          ThreadPool.make({ worker: new URL("./fixtures/never-ready-worker.ts", import.meta.url), threads: 2 }).pipe(
            Effect.timeout("500 millis")
          )
        )
        assert.strictEqual(timedOut.constructor.name, "TimeoutError")
        // a terminated worker's OS thread may still be exiting as terminate() resolves; a left one never goes
        yield* waitFor(Effect.sync(() => osThreads()), "no thread is left", { until: (n) => n === before })
      }),
    30_000
  )

  for (const how of ["shutdown", "shutdownNow"] as const) {
    it.live(`a resize in flight when the pool shuts down (${how}) ends as done, not interrupted`, () =>
      Effect.gen(function*() {
        const { pool } = yield* makePool({ threads: 1 })
        const resize = yield* Effect.forkChild(pool.resize(3))
        yield* waitFor(pool.threads, "the new threads are starting", { until: (n) => n > 1 })
        yield* pool[how]
        const exit = yield* Fiber.await(resize)
        assert.isTrue(Exit.isSuccess(exit), String(exit))
        assert.strictEqual(yield* pool.threads, 0)
      }))
  }
})

describe("ThreadPool: a thread's own layer is released", () => {
  const logOf = () => {
    const log = join(mkdtempSync(join(tmpdir(), "workpool-layer-")), "log")
    const lines = () => {
      try {
        return readFileSync(log, "utf8").split("\n").filter((line) => line !== "")
      } catch {
        return []
      }
    }
    const count = (what: string) => lines().filter((line) => line.split(" ")[0] === what).length
    return { log, count, lines }
  }
  const layerWorker = new URL("./fixtures/layer-worker.ts", import.meta.url)

  it.live("at graceful shutdown every thread closes its layer before it exits", () =>
    Effect.gen(function*() {
      const { count, log } = logOf()
      const pool = yield* ThreadPool.make({ worker: layerWorker, threads: 2, cancelGrace: "10 seconds", workerData: { log } })
      assert.deepStrictEqual(yield* pool.runAll(Echo, ["a", "b"]), ["echo a", "echo b"])
      yield* pool.shutdown
      assert.strictEqual(yield* pool.threads, 0)
      assert.deepStrictEqual([count("open"), count("close")], [2, 2])
    }))

  it.live("a layer whose release dies in the thread is logged on the main thread at error level", () =>
    Effect.gen(function*() {
      const { count, log } = logOf()
      const logged: Array<string> = []
      const collector = Logger.make((options) => {
        logged.push(`${options.logLevel} ${String(options.message)}`)
      })
      yield* Effect.scoped(Effect.gen(function*() {
        const pool = yield* ThreadPool.make({
          worker: layerWorker,
          threads: 1,
          cancelGrace: "10 seconds",
          workerData: { log, releaseDies: true }
        })
        yield* pool.run(Echo, "a")
      })).pipe(Effect.provide(Logger.layer([collector])))
      assert.strictEqual(count("close"), 1)
      const errors = logged.filter((line) => line.startsWith("Error"))
      assert.strictEqual(errors.length, 1, logged.join("\n"))
      assert.include(errors[0], "the connection would not close")
    }))

  it.live("when the scope closes, every thread closes its layer", () =>
    Effect.gen(function*() {
      const { count, log } = logOf()
      yield* Effect.scoped(Effect.gen(function*() {
        const pool = yield* ThreadPool.make({ worker: layerWorker, threads: 2, cancelGrace: "10 seconds", workerData: { log } })
        yield* pool.run(Echo, "a")
      }))
      assert.deepStrictEqual([count("open"), count("close")], [2, 2])
    }))

  it.live("shutdownNow interrupts the running tasks, then every thread closes its layer", () =>
    Effect.gen(function*() {
      const { count, log } = logOf()
      const pool = yield* ThreadPool.make({ worker: layerWorker, threads: 2, cancelGrace: "10 seconds", workerData: { log } })
      const running = yield* pool.submit(Sleep, { millis: 60_000, mark: 0 })
      yield* waitFor(pool.stats, "the task runs", { until: (s) => s.running === 1 })
      yield* pool.shutdownNow
      assert.strictEqual((yield* Effect.flip(running.await))._tag, "PoolShutdown")
      assert.strictEqual(yield* pool.threads, 0)
      assert.deepStrictEqual([count("open"), count("close")], [2, 2])
    }))

  // closing is asked, not awaited forever: a thread stuck in a loop is terminated after cancelGrace
  it.live("a thread that does not stop within cancelGrace is terminated (its layer is not released)", () =>
    Effect.gen(function*() {
      const { count, lines, log } = logOf()
      const pool = yield* ThreadPool.make({ worker: layerWorker, threads: 1, cancelGrace: "200 millis", workerData: { log } })
      yield* pool.submit(Spin, 1)
      yield* waitFor(Effect.sync(() => count("spin")), "the task spins", { until: (n) => n === 1 })
      yield* pool.shutdownNow
      assert.strictEqual(yield* pool.threads, 0)
      const spinning = lines().find((line) => line.startsWith("spin "))!.split(" ")[1]
      assert.notInclude(lines(), `close ${spinning}`, "the spinning thread was terminated")
      assert.strictEqual(count("open"), 1)
    }))

  it.live("a thread whose layer release hangs is terminated after cancelGrace", () =>
    Effect.gen(function*() {
      const { count, log } = logOf()
      // long enough for a loaded machine to start the release, which then hangs
      const pool = yield* ThreadPool.make({ worker: layerWorker, threads: 1, cancelGrace: "3 seconds", workerData: { log, hang: true } })
      yield* pool.run(Echo, "a")
      yield* pool.shutdown
      assert.strictEqual(yield* pool.threads, 0)
      assert.deepStrictEqual([count("closing"), count("close")], [1, 0])
    }))

  it.live("a thread retired by a shrink closes its layer", () =>
    Effect.gen(function*() {
      const { count, log } = logOf()
      const pool = yield* ThreadPool.make({ worker: layerWorker, threads: 3, cancelGrace: "10 seconds", workerData: { log } })
      yield* pool.resize(2)
      yield* waitFor(pool.threads, "the pool shrinks to 2 threads", { until: (n) => n === 2 })
      assert.deepStrictEqual([count("open"), count("close")], [3, 1])
    }))

  it.live("a thread retired for idleness closes its layer", () =>
    Effect.gen(function*() {
      const { count, log } = logOf()
      const pool = yield* ThreadPool.make({ worker: layerWorker, threads: 2, idleTimeout: "200 millis", cancelGrace: "10 seconds", workerData: { log } })
      yield* waitFor(pool.threads, "idle threads retire", { until: (n) => n === 0 })
      assert.deepStrictEqual([count("open"), count("close")], [2, 2])
    }))
})
