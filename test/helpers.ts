import { Duration, Effect, Exit, Fiber, Logger, Ref, Scope, Tracer } from "effect"
import { TestClock } from "effect/testing"
import { execFileSync } from "node:child_process"
import { inspect } from "node:util"
import * as v8 from "node:v8"
import * as vm from "node:vm"
import { TestRunner } from "vitest"

/** Counts jobs that are running right now and the most that ever ran at once. */
export const makeGauge = Effect.gen(function*() {
  const state = yield* Ref.make({ now: 0, peak: 0 })
  const enter = Ref.update(state, ({ now, peak }) => ({ now: now + 1, peak: Math.max(peak, now + 1) }))
  const exit = Ref.update(state, ({ now, peak }) => ({ now: now - 1, peak }))
  const track = <A, E, R>(job: Effect.Effect<A, E, R>) => Effect.acquireUseRelease(enter, () => job, () => exit)
  return { track, get: Ref.get(state) }
})

/** A logger that keeps the first part of each warning or error message it is given (`logged`). */
export const warnings = () => {
  const logged: Array<string> = []
  const collector = Logger.make((options) => {
    if (options.logLevel === "Warn" || options.logLevel === "Error") {
      logged.push(String(Array.isArray(options.message) ? options.message[0] : options.message))
    }
  })
  return { logged, collector }
}

/** Lets every fiber that can run, run. */
export const settle = Effect.gen(function*() {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow
})

/** mulberry32: a small seeded PRNG, so that a failing random test can be replayed. */
export const prng = (seed: number) => () => {
  seed = (seed + 0x6D2B79F5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

/** Real milliseconds a wait leaves before its test's time limit, to fail first with its own message. */
const BEFORE_TEST_LIMIT = 3_000
/** The bound of a wait outside a test (a hook, a script). */
const OUTSIDE_A_TEST = 20_000

/**
 * Real milliseconds left before the running test's time limit, less `BEFORE_TEST_LIMIT`. (The
 * test's timer starts after its hooks, so this counts from a little earlier: it errs short.)
 */
const leftInTest = (): number => {
  const test = TestRunner.getCurrentTest()
  const started = test?.result?.startTime
  if (test === undefined || started === undefined || !(test.timeout > 0)) return OUTSIDE_A_TEST
  return test.timeout - (Date.now() - started) - BEFORE_TEST_LIMIT
}

const show = (value: unknown) => inspect(value, { depth: 4, breakLength: Infinity })

export interface WaitOptions<A> {
  /** What ends the wait; without it, the probe's value `true`. */
  readonly until?: ((value: A) => boolean) | undefined
  /** The longest wait, in real time; by default until 3 s before the running test's time limit. */
  readonly within?: Duration.Input | undefined
}

/**
 * Waits, in real time, until `probe`'s value satisfies `until` (or, without one, is `true`), and
 * returns that value. Thread exits and restarts are real events, so thread tests poll for their
 * effect rather than sleep a guessed time.
 *
 * A wait that does not end fails with its own message, naming what it awaited, how long it waited
 * and the value it saw last, and does so before the test's time limit: that limit would fail the
 * test with a bare TestTimeoutError. So probe for a value that explains a stall (`pool.stats`,
 * with `until: (s) => s.running === 1`) rather than for a bare boolean.
 */
export const waitFor: {
  (check: Effect.Effect<boolean>, what: string, options?: WaitOptions<boolean>): Effect.Effect<boolean>
  <A>(probe: Effect.Effect<A>, what: string, options: WaitOptions<A> & { readonly until: (value: A) => boolean }): Effect.Effect<A>
} = <A>(probe: Effect.Effect<A>, what: string, options?: WaitOptions<A>): Effect.Effect<A> =>
  Effect.gen(function*() {
    const until = options?.until ?? ((value: A) => value === true)
    const bound = options?.within === undefined ? leftInTest() : Duration.toMillis(Duration.fromInputUnsafe(options.within))
    const start = performance.now()
    let looks = 0
    for (;;) {
      const value = yield* probe
      looks++
      if (until(value)) return value
      const waited = performance.now() - start
      if (waited >= bound) {
        throw new Error(
          `timed out waiting until ${what}: ${(waited / 1000).toFixed(1)} s, ${looks} looks; last seen: ${show(value)}`
        )
      }
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 10)))
    }
  })

/** A tracer that keeps every span it makes. */
export const recordingTracer = () => {
  const spans: Array<Tracer.Span> = []
  const tracer = Tracer.make({
    span: (options) => {
      const span = Tracer.nativeTracer.span(options)
      spans.push(span)
      return span
    }
  })
  return { spans, tracer }
}

/** The most of `times` in any half-open window of `interval`. */
export const maxInWindow = (times: ReadonlyArray<number>, interval: number) => {
  const sorted = [...times].sort((a, b) => a - b)
  let most = 0
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (sorted[i]! - sorted[j]! >= interval) j++
    most = Math.max(most, i - j + 1)
  }
  return most
}

/**
 * Closes `scope` in a fiber of its own (a close is uninterruptible: a timeout around it could not end
 * one that hangs) and waits up to `within` real time: the milliseconds it took, or a defect saying
 * that it still runs.
 */
export const closeWithin = (scope: Scope.Closeable, within: Duration.Input): Effect.Effect<number> =>
  Effect.gen(function*() {
    const from = Date.now()
    const closing = yield* Effect.forkDetach(Scope.close(scope, Exit.void))
    const closed = yield* Effect.timeoutOption(Fiber.await(closing), within)
    if (closed._tag === "None") return yield* Effect.die(new Error(`the scope's close still waits after ${Date.now() - from} ms`))
    return Date.now() - from
  })

/**
 * A full collection, from a test: V8's gc exposed for this process. Collected across macrotasks: a
 * WeakRef's target is kept until the current job ends.
 */
export const fullGc = Effect.promise(async () => {
  v8.setFlagsFromString("--expose-gc")
  const gc = vm.runInNewContext("gc") as () => void
  for (let i = 0; i < 3; i++) {
    gc()
    await new Promise((resolve) => setTimeout(resolve, 0))
  }
})

/**
 * Another process that takes the write lock of the SQLite file `filename` and keeps it (a process
 * frozen in its transaction) until `release`, which rolls it back and ends the process. Killed
 * with the scope.
 */
export const sqliteLockHolder = (filename: string) =>
  Effect.gen(function*() {
    const { spawn } = yield* Effect.promise(() => import("node:child_process"))
    const holder = spawn(process.execPath, [
      "-e",
      // a busy timeout: the store may be in a write of its own as the holder begins (a consumer's
      // claim or settle), and node:sqlite's default (0) fails BEGIN IMMEDIATE at once
      `const { DatabaseSync } = require("node:sqlite"); const db = new DatabaseSync(${JSON.stringify(filename)}, { timeout: 60000 });
       db.exec("BEGIN IMMEDIATE"); process.stdout.write("locked\\n");
       process.stdin.once("data", () => { db.exec("ROLLBACK"); db.close(); process.exit(0) })`
    ], { stdio: ["pipe", "pipe", "inherit"] })
    yield* Effect.addFinalizer(() => Effect.sync(() => holder.kill("SIGKILL")))
    const exited = new Promise<void>((resolve) => holder.once("exit", () => resolve()))
    const locked = yield* Effect.promise(() =>
      Promise.race([
        new Promise<boolean>((resolve) => holder.stdout!.once("data", () => resolve(true))),
        exited.then(() => false)
      ])
    )
    if (!locked) return yield* Effect.die(new Error(`the lock holder of ${filename} ended before it took the lock (its error is above)`))
    return {
      release: Effect.promise(() => {
        holder.stdin!.write("go\n")
        return exited
      })
    }
  })

/** The latest of `every` ms timers over `span` ms: how late one came. */
export const lateness = (every: number, span: number) =>
  Effect.promise(() =>
    new Promise<number>((resolve) => {
      let latest = 0
      const start = performance.now()
      let at = start
      const timer = setInterval(() => {
        const now = performance.now()
        latest = Math.max(latest, now - at - every)
        at = now
        if (now - start >= span) {
          clearInterval(timer)
          resolve(latest)
        }
      }, every)
    })
  )

/**
 * Moves the TestClock a second at a time, at most `seconds` times, until `done` (looked at before
 * each step) is true, letting real I/O (a server's answer) in between: for real requests whose
 * answer waits on the test's time.
 */
export const tickUntil = <E, R>(done: Effect.Effect<boolean, E, R>, seconds: number): Effect.Effect<void, E, R> =>
  Effect.gen(function*() {
    for (let i = 0; i < seconds && !(yield* done); i++) {
      yield* TestClock.adjust("1 second")
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 10)))
    }
  })

/** A real request (a dashboard's button) awaited while `tickUntil` moves the clock: its answer, or undefined if none came. */
export const answeredWithin = <A>(request: () => Promise<A>, seconds: number): Effect.Effect<A | undefined> =>
  Effect.gen(function*() {
    const pending = yield* Effect.forkChild(Effect.promise(request))
    yield* tickUntil(Effect.sync(() => pending.pollUnsafe() !== undefined), seconds)
    return pending.pollUnsafe() === undefined ? undefined : yield* Fiber.join(pending)
  })

/** Whether the clone has the commit (a shallow clone has not: the tests that need it are skipped, saying so). */
export const hasCommit = (commit: string) => {
  try {
    execFileSync("git", ["rev-parse", "--verify", "--quiet", `${commit}^{commit}`], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
}
