import { assert, describe, it } from "@effect/vitest"
import { vi } from "vitest"
import { Cause, Deferred, Effect, Exit, Fiber, Option, Schedule, Stream } from "effect"
import { TestClock } from "effect/testing"
import { PoolError, WorkPool } from "../src/index.ts"
import { PriorityQueue } from "../src/internal/priorityQueue.ts"
import { Job, schedulerOf } from "../src/internal/scheduler.ts"
import { fullGc, maxInWindow, prng, settle } from "./helpers.ts"

/** The README's identity, true at every instant. */
const balanced = (s: WorkPool.PoolStats) =>
  s.submitted ===
    s.waiting + s.queued + s.retrying + s.running + s.succeeded + s.failed + s.defects + s.timedOut +
      s.interrupted + s.dropped

describe("aging with backpressure and retries", () => {
  it.effect("a suspended submitter's job, admitted behind a retried one, keeps its place by aging", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, capacity: 3, aging: "1 second", shutdownTimeout: 0 })
      const ran: Array<string> = []
      const gate = yield* Deferred.make<void>()
      let first = true
      // r fails its first attempt at 0 and goes back to the queue at 10 (as if just submitted)
      yield* pool.submit(
        Effect.suspend(() => {
          if (first) {
            first = false
            return Effect.fail("once")
          }
          ran.push("r")
          return Effect.void
        }),
        { retry: { schedule: Schedule.spaced("10 millis"), times: 1 } }
      )
      yield* pool.submit(Deferred.await(gate))
      const fillers = yield* Effect.forEach([1, 2, 3], () => pool.submit(Effect.void))
      // w is submitted at 0 and waits for room
      const w = yield* Effect.forkChild(pool.submit(Effect.sync(() => ran.push("w"))))
      yield* settle
      assert.strictEqual((yield* pool.stats).waiting, 1)
      yield* TestClock.adjust("10 millis")
      assert.strictEqual((yield* pool.stats).queued, 4)
      // room: w is admitted at 900, behind r
      yield* TestClock.adjust("890 millis")
      yield* Effect.forEach(fillers, (h) => h.interrupt)
      yield* Fiber.join(w)
      // x (priority 1) arrives at 1500: 1500 after w's submission, 600 after its admission
      yield* TestClock.adjust("600 millis")
      yield* pool.submit(Effect.sync(() => ran.push("x")), { priority: 1 })
      yield* Deferred.succeed(gate, undefined)
      yield* pool.awaitIdle
      // a job's age counts from its submission (its score, its queue timeout and its wait time do):
      // w (0) before r (back at 10), and x (1500, priority 1) after both. Counted from w's
      // admission it would be r, x, w; the lane's push order gave r, w, x, which neither rule does
      assert.deepStrictEqual(ran, ["w", "r", "x"])
    }))
})

/** Watches a pool's `changes` and keeps every snapshot that breaks the identity (and the last one). */
const watch = (pool: WorkPool.WorkPool) =>
  Effect.gen(function*() {
    const bad: Array<WorkPool.PoolStats> = []
    let seen = 0
    const fiber = yield* Effect.forkChild(Stream.runForEach(pool.changes, (s) =>
      Effect.sync(() => {
        seen++
        if (!balanced(s) || s.running < 0 || s.queued < 0 || s.rateLimited < 0 || s.rateLimited > s.queued) bad.push(s)
      })
    ))
    return { bad, seen: () => seen, fiber }
  })

const attemptOnce = (failures: number, log: Array<string>, name: string, clock: () => number) => {
  let n = 0
  return Effect.suspend(() => {
    log.push(`${name}@${clock()}`)
    return n++ < failures ? Effect.fail(`${name} failed`) : Effect.succeed(name)
  })
}

describe("rate limit, retries and priorities together", () => {
  it.effect("every attempt counts against the sliding window; a later high priority overtakes", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({
        concurrency: 4,
        rateLimit: { limit: 2, interval: "100 millis" },
        retry: { schedule: Schedule.spaced("30 millis"), times: 2 },
        shutdownTimeout: 0
      })
      const watcher = yield* watch(pool)
      const starts: Array<number> = []
      const log: Array<string> = []
      let now = 0
      const clock = () => now
      const job = (name: string, failures: number) => {
        const attempt = attemptOnce(failures, log, name, clock)
        return Effect.flatMap(Effect.clockWith((c) => Effect.sync(() => c.currentTimeMillisUnsafe())), (t) => {
          starts.push(t)
          now = t
          return attempt
        })
      }
      const handles = yield* Effect.forEach(
        Array.from({ length: 6 }, (_, i) => i),
        (i) => pool.submit(job(`low${i}`, i % 3), { priority: 0 })
      )
      yield* TestClock.adjust("50 millis")
      const high = yield* pool.submit(job("high", 1), { priority: 5 })
      for (let i = 0; i < 40; i++) yield* TestClock.adjust("25 millis")
      yield* pool.awaitIdle
      const results = yield* Effect.forEach([...handles, high], (h) => Effect.exit(h.await))
      assert.isTrue(results.every(Exit.isSuccess), String(results))
      // 6 + 1 jobs, attempts: low i fails i % 3 times, high once
      assert.strictEqual(starts.length, 7 + (0 + 1 + 2 + 0 + 1 + 2) + 1)
      assert.strictEqual(maxInWindow(starts, 100), 2, String(starts))
      // high came at 50, when low2..low5 were waiting: it starts at the next free start, before them
      const highAt = log.indexOf("high@100")
      assert.isAtLeast(highAt, 0, log.join())
      const s = yield* pool.stats
      assert.isTrue(balanced(s))
      assert.strictEqual(s.retried, 7)
      assert.strictEqual(s.succeeded, 7)
      yield* settle
      assert.deepStrictEqual(watcher.bad, [])
      yield* Fiber.interrupt(watcher.fiber)
    }))
})

describe("jobs between attempts", () => {
  it.effect("cancelled by id during its retry's wait: counted once, its awaiter answered, never run again", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, retry: { schedule: Schedule.spaced("1 second") }, shutdownTimeout: 0 })
      const watcher = yield* watch(pool)
      let attempts = 0
      const handle = yield* pool.submit(Effect.suspend(() => {
        attempts++
        return Effect.fail("nope")
      }))
      const awaiting = yield* Effect.forkChild(Effect.exit(handle.await))
      yield* settle
      assert.strictEqual(yield* handle.status, "retrying")
      assert.strictEqual(yield* handle.attempt, 2)
      const listed = yield* pool.jobs({ status: "retrying" })
      assert.deepStrictEqual(listed.map((j) => j.id), [handle.id])
      assert.isTrue(yield* pool.cancel(handle.id))
      assert.isFalse(yield* pool.cancel(handle.id))
      const exit = yield* Fiber.join(awaiting)
      assert.isTrue(Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause))
      yield* TestClock.adjust("5 seconds")
      assert.strictEqual(attempts, 1)
      const s = yield* pool.stats
      assert.deepStrictEqual([s.submitted, s.interrupted, s.failed, s.retrying, s.retried], [1, 1, 0, 0, 1])
      assert.isTrue(balanced(s))
      yield* settle
      assert.deepStrictEqual(watcher.bad, [])
      yield* Fiber.interrupt(watcher.fiber)
    }))

  it.effect("graceful shutdown during a retry's wait: the one due in time runs, the other ends PoolShutdown retrying", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2, shutdownTimeout: "1 second" })
      const watcher = yield* watch(pool)
      const runs: Array<string> = []
      const failingOnce = (name: string) => {
        let n = 0
        return Effect.suspend(() => {
          runs.push(name)
          return n++ === 0 ? Effect.fail("once") : Effect.succeed(name)
        })
      }
      const soon = yield* pool.submit(failingOnce("soon"), { retry: { schedule: Schedule.spaced("500 millis") } })
      const late = yield* pool.submit(failingOnce("late"), { retry: { schedule: Schedule.spaced("5 seconds") } })
      yield* settle
      const closing = yield* Effect.forkChild(pool.shutdown)
      yield* settle
      assert.strictEqual((yield* pool.stats).retrying, 2)
      yield* TestClock.adjust("500 millis")
      assert.strictEqual(yield* soon.await, "soon")
      yield* TestClock.adjust("500 millis")
      yield* Fiber.join(closing)
      const exit = yield* Effect.exit(late.await)
      assert.deepStrictEqual(exit, Exit.fail(new PoolError.PoolShutdown({ phase: "retrying" })) as any)
      assert.deepStrictEqual(runs, ["soon", "late", "soon"])
      const s = yield* pool.stats
      assert.isTrue(balanced(s))
      assert.deepStrictEqual([s.succeeded, s.interrupted, s.retrying, s.state], [1, 1, 0, "stopped"])
      yield* Fiber.join(watcher.fiber)
      assert.deepStrictEqual(watcher.bad, [])
    }))

  it.effect("a fiberless Effect.promise job with a timeout and retries: each attempt times out, one JobTimeout at the end", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, timeout: "100 millis", retry: { times: 2 }, shutdownTimeout: 0 })
      const watcher = yield* watch(pool)
      let attempts = 0
      const aborted: Array<boolean> = []
      const handle = yield* pool.submit(Effect.promise((signal) => {
        attempts++
        return new Promise<void>(() => {
          signal.addEventListener("abort", () => aborted.push(true))
        })
      }))
      const sync = yield* pool.submit(Effect.sync(() => "sync"))
      for (let i = 0; i < 3; i++) yield* TestClock.adjust("100 millis")
      const exit = yield* Effect.exit(handle.await)
      assert.isTrue(Exit.isFailure(exit) && Cause.squash(exit.cause) instanceof Error && (Cause.squash(exit.cause) as any)._tag === "JobTimeout", String(exit))
      assert.strictEqual(attempts, 3)
      assert.strictEqual(aborted.length, 3)
      assert.strictEqual(yield* sync.await, "sync")
      const s = yield* pool.stats
      assert.deepStrictEqual([s.timedOut, s.retried, s.succeeded, s.running, s.stopping], [1, 2, 1, 0, 0])
      assert.isTrue(balanced(s))
      yield* settle
      assert.deepStrictEqual(watcher.bad, [])
      yield* Fiber.interrupt(watcher.fiber)
    }))
})

describe("overflow with a backlog the rate limit holds", () => {
  it.effect("dropOldest and dropNewest answer the dropped job's handle; a queue overfilled by a retry comes back to capacity under dropOldest", () =>
    Effect.gen(function*() {
      for (const overflow of ["dropOldest", "dropNewest"] as const) {
        const pool = yield* WorkPool.make({
          concurrency: 2,
          capacity: 2,
          overflow,
          rateLimit: { limit: 1, interval: "1 second" },
          shutdownTimeout: 0
        })
        const watcher = yield* watch(pool)
        let n = 0
        // starts at 0 (the window's one start), fails, back in the queue at 10
        const retried = yield* pool.submit(Effect.suspend(() => n++ === 0 ? Effect.fail("once") : Effect.succeed("r")), {
          retry: { schedule: Schedule.spaced("10 millis"), times: 1 }
        })
        const a = yield* pool.submit(Effect.succeed("a"))
        const b = yield* pool.submit(Effect.succeed("b"))
        yield* TestClock.adjust("10 millis")
        let s = yield* pool.stats
        assert.strictEqual(s.queued, 3, overflow)
        assert.strictEqual(s.rateLimited, 2, overflow)
        const c = yield* pool.submit(Effect.succeed("c"))
        const dropped = overflow === "dropOldest" ? a : c
        const exit = yield* Effect.exit(dropped.await)
        assert.deepStrictEqual(exit, Exit.fail(new PoolError.JobDropped({ jobId: dropped.id, policy: overflow })) as any)
        s = yield* pool.stats
        assert.isTrue(balanced(s), overflow)
        // dropOldest: a, then b, for the queue (a, b, r back for its retry, c) to hold 2 again
        assert.strictEqual(s.dropped, overflow === "dropOldest" ? 2 : 1)
        assert.strictEqual(s.queued, overflow === "dropOldest" ? 2 : 3)
        for (let i = 0; i < 4; i++) yield* TestClock.adjust("1 second")
        yield* pool.awaitIdle
        assert.strictEqual(yield* retried.await, "r")
        if (overflow === "dropOldest") assert.strictEqual(yield* c.await, "c")
        else assert.strictEqual(yield* b.await, "b")
        s = yield* pool.stats
        assert.deepStrictEqual(
          [s.succeeded, s.dropped, s.retried, s.submitted],
          overflow === "dropOldest" ? [2, 2, 1, 4] : [3, 1, 1, 4],
          overflow
        )
        yield* settle
        assert.deepStrictEqual(watcher.bad, [], overflow)
        yield* pool.shutdown
      }
    }))

  it.effect("capacity bounds the jobs the rate limit holds back, however many workers are free", () =>
    Effect.gen(function*() {
      for (const overflow of ["suspend", "fail", "dropNewest"] as const) {
        const pool = yield* WorkPool.make({
          concurrency: 4,
          capacity: 2,
          overflow,
          rateLimit: { limit: 1, interval: "1 minute" },
          shutdownTimeout: 0
        })
        // the window's one start
        yield* pool.submit(Effect.void)
        // two held back by the limit: the queue is full
        yield* Effect.forEach([1, 2], () => pool.submit(Effect.void))
        const third = yield* Effect.forkChild(Effect.exit(pool.submit(Effect.void)))
        yield* settle
        const s = yield* pool.stats
        assert.isAtMost(s.queued, 2, `${overflow}: ${s.queued} queued with capacity 2`)
        if (overflow === "suspend") assert.strictEqual(s.waiting, 1, overflow)
        if (overflow === "fail") assert.deepStrictEqual(yield* Fiber.join(third), Exit.fail(new PoolError.QueueFull({ capacity: 2 })) as any)
        if (overflow === "dropNewest") assert.strictEqual(s.dropped, 1, overflow)
        yield* pool.shutdownNow
      }
    }))

  it.effect("capacity 0 under a rate limit: submitters wait for a start the window allows, and each comes in when it does", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2, capacity: 0, rateLimit: { limit: 1, interval: "1 second" }, shutdownTimeout: 0 })
      const watcher = yield* watch(pool)
      const starts: Array<number> = []
      const job = Effect.clockWith((c) => Effect.sync(() => starts.push(c.currentTimeMillisUnsafe())))
      const fibers = yield* Effect.forEach([1, 2, 3, 4], () => Effect.forkChild(pool.run(job)))
      yield* settle
      let s = yield* pool.stats
      assert.deepStrictEqual([s.queued, s.waiting, s.succeeded], [0, 3, 1])
      for (let i = 0; i < 3; i++) yield* TestClock.adjust("1 second")
      yield* Effect.forEach(fibers, Fiber.join)
      assert.deepStrictEqual(starts, [0, 1000, 2000, 3000])
      s = yield* pool.stats
      assert.deepStrictEqual([s.queued, s.waiting, s.succeeded], [0, 0, 4])
      yield* settle
      assert.deepStrictEqual(watcher.bad, [])
      yield* Fiber.interrupt(watcher.fiber)
    }))

  it.effect("a submitter suspended behind a rate-held backlog is released at shutdown with PoolShutdown; held jobs end PoolShutdown", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({
        concurrency: 1,
        capacity: 2,
        rateLimit: { limit: 1, interval: "1 minute" },
        shutdownTimeout: "1 second"
      })
      const watcher = yield* watch(pool)
      yield* pool.submit(Effect.void)
      const held = yield* Effect.forEach([1, 2], () => pool.submit(Effect.void))
      const submitter = yield* Effect.forkChild(Effect.exit(pool.submit(Effect.void)))
      const runner = yield* Effect.forkChild(Effect.exit(pool.run(Effect.void)))
      yield* settle
      assert.deepStrictEqual([(yield* pool.stats).waiting, (yield* pool.stats).rateLimited], [2, 1])
      const closing = yield* Effect.forkChild(pool.shutdown)
      yield* settle
      const refused = Exit.fail(new PoolError.PoolShutdown({ phase: "admission" }))
      assert.deepStrictEqual(yield* Fiber.join(submitter), refused as any)
      assert.deepStrictEqual(yield* Fiber.join(runner), refused as any)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)
      for (const h of held) {
        assert.deepStrictEqual(yield* Effect.exit(h.await), Exit.fail(new PoolError.PoolShutdown({ phase: "queued" })) as any)
      }
      const s = yield* pool.stats
      assert.deepStrictEqual([s.submitted, s.succeeded, s.interrupted, s.rejected, s.waiting, s.queued], [3, 1, 2, 2, 0, 0])
      yield* Fiber.join(watcher.fiber)
      assert.deepStrictEqual(watcher.bad, [])
    }))
})

describe("reentrancy, streams and progress", () => {
  it.effect("a running job that submits to its own full pool (concurrency 1, suspend) waits for good; a graceful shutdown refuses its submission at once", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, capacity: 1, shutdownTimeout: "1 minute" })
      const inner: Array<Exit.Exit<unknown, unknown>> = []
      const gate = yield* Deferred.make<void>()
      const outer = yield* pool.submit(Effect.gen(function*() {
        yield* Deferred.await(gate)
        const exit = yield* Effect.exit(pool.submit(Effect.succeed(1)))
        inner.push(exit)
        return "outer done"
      }))
      // fills the queue: the outer job's submission waits for room that only the outer job can free
      const queued = yield* pool.submit(Effect.succeed("queued"))
      yield* Deferred.succeed(gate, undefined)
      yield* settle
      yield* TestClock.adjust("10 minutes")
      assert.deepStrictEqual([yield* outer.status, yield* queued.status], ["running", "queued"])
      assert.strictEqual((yield* pool.stats).waiting, 1)
      const closing = yield* Effect.forkChild(pool.shutdown)
      yield* settle
      // refused at once, not at the shutdown's deadline: the outer job ends, the queued one runs
      assert.deepStrictEqual(inner, [Exit.fail(new PoolError.PoolShutdown({ phase: "admission" }))] as any)
      assert.strictEqual(yield* outer.await, "outer done")
      assert.strictEqual(yield* queued.await, "queued")
      yield* Fiber.join(closing)
      const s = yield* pool.stats
      assert.isTrue(balanced(s))
      assert.deepStrictEqual([s.state, s.succeeded, s.rejected], ["stopped", 2, 1])
    }))

  it.effect("mapStream under a rate limit, consumer stops early: the rest are cancelled, the counts balance", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2, rateLimit: { limit: 2, interval: "100 millis" }, shutdownTimeout: 0 })
      const started: Array<number> = []
      const fiber = yield* Effect.forkChild(
        Stream.range(1, 20).pipe(
          WorkPool.mapStream(pool, (i) => Effect.sync(() => started.push(i)).pipe(Effect.andThen(Effect.sleep("10 millis")), Effect.as(i)), {
            buffer: 6
          }),
          Stream.take(3),
          Stream.runCollect
        )
      )
      for (let i = 0; i < 10; i++) yield* TestClock.adjust("50 millis")
      const got = yield* Fiber.join(fiber)
      assert.deepStrictEqual(Array.from(got), [1, 2, 3])
      yield* settle
      const s = yield* pool.stats
      assert.isTrue(balanced(s))
      assert.deepStrictEqual([s.running, s.queued, s.rateLimited], [0, 0, 0])
      assert.strictEqual(s.succeeded + s.interrupted, s.submitted)
      assert.isAtMost(started.length, 6)
    }))

  it.effect("progress from a fiber that outlives its job, and across a retry", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, retry: { schedule: Schedule.spaced("1 second"), times: 1 }, shutdownTimeout: 0 })
      let n = 0
      const handle = yield* pool.submit(Effect.gen(function*() {
        const { attempt, progress } = yield* WorkPool.JobContext
        yield* progress(`attempt ${attempt}`)
        yield* Effect.forkDetach(Effect.sleep("5 seconds").pipe(Effect.andThen(progress("late"))))
        if (n++ === 0) return yield* Effect.fail("once")
        return attempt
      }))
      const seen = yield* Effect.forkChild(Stream.runCollect(handle.progressChanges))
      yield* settle
      assert.strictEqual(yield* handle.status, "retrying")
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* handle.await, 2)
      const all = Array.from(yield* Fiber.join(seen))
      assert.strictEqual(all.at(-1), "attempt 2")
      yield* TestClock.adjust("10 seconds")
      assert.deepStrictEqual(yield* handle.progress, Option.some("attempt 2"))
    }))
})

describe("a retry policy that fails", () => {
  it.effect("a `while` that throws is reported the same for an attempt that timed out as for one that failed", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2, shutdownTimeout: 0 })
      const broken = { while: (): boolean => { throw new Error("bug in while") } }
      const timedOut = yield* pool.submit(Effect.never, { timeout: "1 second", retry: broken })
      const failed = yield* pool.submit(Effect.fail("x"), { retry: broken })
      yield* TestClock.adjust("1 second")
      const [t, f] = [yield* Effect.exit(timedOut.await), yield* Effect.exit(failed.await)]
      // the failed one: its own failure, and the policy's as a defect
      assert.isTrue(Exit.isFailure(f) && Cause.hasFails(f.cause) && Cause.hasDies(f.cause))
      // the timed-out one: JobTimeout, and the policy's failure too, not dropped
      assert.isTrue(Exit.isFailure(t) && Cause.hasFails(t.cause), String(t))
      assert.isTrue(Exit.isFailure(t) && Cause.hasDies(t.cause), "the policy's failure is lost on a timeout")
      const s = yield* pool.stats
      assert.deepStrictEqual([s.timedOut, s.defects, s.retried], [1, 1, 0])
    }))
})

describe("every feature at once, at random", () => {
  for (const [seed, overflow] of [[1, "suspend"], [2, "dropOldest"], [3, "dropNewest"], [4, "fail"], [5, "suspend"]] as const) {
    it.effect(`seed ${seed}, overflow ${overflow}: counts balance at every step, the window holds, every awaiter is answered`, () =>
      Effect.gen(function*() {
        const random = prng(seed * 7919)
        const limit = 3
        const interval = 100
        const pool = yield* WorkPool.make({
          concurrency: 3,
          capacity: 6,
          overflow,
          shutdownTimeout: 0,
          aging: "50 millis",
          rateLimit: { limit, interval: `${interval} millis` },
          retry: { schedule: Schedule.spaced("30 millis"), times: 2 },
          timeout: "80 millis"
        })
        const starts: Array<number> = []
        const stamp = Effect.clockWith((c) => Effect.sync(() => void starts.push(c.currentTimeMillisUnsafe())))
        const awaiters: Array<Fiber.Fiber<Exit.Exit<unknown, unknown>, unknown>> = []
        const handles: Array<WorkPool.JobHandle<unknown, unknown>> = []
        const problems: Array<string> = []
        const check = (where: string) =>
          Effect.map(Effect.all([pool.stats, pool.jobs({ status: "queued" })]), ([s, queued]) => {
            // capacity bounds the queued jobs but those back for a retry (which are not refused)
            const fresh = queued.filter((j) => j.attempt === 1).length
            if (fresh > 6) problems.push(`${where}: ${fresh} queued on their first attempt, capacity 6`)
            if (!balanced(s)) problems.push(`${where}: unbalanced ${JSON.stringify(s)}`)
            if (s.rateLimited > s.queued || s.rateLimited < 0) problems.push(`${where}: rateLimited ${s.rateLimited} of ${s.queued}`)
            if (s.running + s.stopping > s.workers) problems.push(`${where}: ${s.running}+${s.stopping} on ${s.workers} workers`)
          })
        for (let step = 0; step < 300; step++) {
          const r = random()
          const priority = Math.floor(random() * 4)
          const failures = Math.floor(random() * 4)
          let attempts = 0
          const body = Effect.andThen(
            stamp,
            Effect.suspend(() => {
              attempts++
              const sleep = Effect.sleep(`${Math.floor(random() * 120)} millis`)
              return attempts <= failures ? Effect.andThen(sleep, Effect.fail("flaky")) : Effect.as(sleep, "ok")
            })
          )
          const options = { priority, ...(random() < 0.3 ? { queueTimeout: "150 millis" as const } : {}) }
          if (r < 0.45) {
            awaiters.push(yield* Effect.forkChild(Effect.exit(pool.run(body, options))))
          } else if (r < 0.7) {
            awaiters.push(yield* Effect.forkChild(Effect.exit(Effect.flatMap(
              Effect.tap(pool.submit(body, options), (h) => Effect.sync(() => void handles.push(h))),
              (h) => h.await
            ))))
          } else if (r < 0.75) {
            awaiters.push(yield* Effect.forkChild(Effect.exit(pool.run(Effect.andThen(stamp, Effect.sync(() => "sync")), options))))
          } else if (r < 0.8) {
            // fiberless: a promise that is settled already, or one that never settles (it times out)
            const never = random() < 0.5
            awaiters.push(yield* Effect.forkChild(Effect.exit(pool.run(
              Effect.promise(() => never ? new Promise<string>(() => {}) : Promise.resolve("p")),
              options
            ))))
          } else if (r < 0.87 && handles.length > 0) {
            const victim = handles[Math.floor(random() * handles.length)]!
            yield* Effect.forkChild(random() < 0.5 ? victim.interrupt : pool.cancel(victim.id))
          } else if (r < 0.9 && awaiters.length > 0) {
            yield* Fiber.interrupt(awaiters[Math.floor(random() * awaiters.length)]!).pipe(Effect.forkChild)
          } else if (r < 0.93) {
            yield* random() < 0.5 ? pool.pause : pool.resume
          } else if (r < 0.96) {
            yield* Effect.forkChild(pool.resize(1 + Math.floor(random() * 4)))
          } else {
            yield* TestClock.adjust(`${Math.floor(random() * 60)} millis`)
          }
          yield* Effect.yieldNow
          yield* check(`step ${step}`)
          if (step % 4 === 0) yield* TestClock.adjust("10 millis")
        }
        yield* pool.resume
        yield* pool.resize(3)
        const idle = yield* Effect.forkChild(pool.awaitIdle)
        for (let i = 0; i < 3000 && idle.pollUnsafe() === undefined; i++) {
          yield* TestClock.adjust("10 millis")
          yield* check(`drain ${i}`)
        }
        yield* settle
        if (idle.pollUnsafe() === undefined) {
          assert.fail(`not idle after the drain: ${JSON.stringify(yield* pool.stats)}; ${problems.slice(0, 3).join("; ")}`)
        }
        const closing = yield* Effect.forkChild(pool.shutdown)
        yield* TestClock.adjust("2 seconds")
        yield* Fiber.join(closing)
        for (const fiber of awaiters) yield* Fiber.await(fiber)
        yield* check("end")
        const s = yield* pool.stats
        assert.deepStrictEqual([s.queued, s.running, s.waiting, s.retrying, s.stopping], [0, 0, 0, 0, 0])
        assert.deepStrictEqual(problems.slice(0, 3).map((p) => p.slice(0, 300)), [])
        assert.isAtMost(maxInWindow(starts, interval), limit)
        assert.strictEqual(s.submitted, s.succeeded + s.failed + s.defects + s.timedOut + s.interrupted + s.dropped)
      }))
  }
})

describe("a job that changes its pool's rate limit", () => {
  it.effect("a limit set by a job as it runs (a synchronous job, in the middle of a backlog) holds for the jobs after it", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, paused: true, shutdownTimeout: 0 })
      const ran: Array<number> = []
      const handles = yield* Effect.forEach(Array.from({ length: 6 }, (_, i) => i), (i) =>
        pool.submit(Effect.gen(function*() {
          ran.push(i)
          // the service answered 429: from now on, one call a second
          if (i === 0) yield* pool.setRateLimit({ limit: 1, interval: "1 second" })
        })))
      yield* pool.resume
      yield* settle
      // job 0 started before the limit; the limit lets one more start in its first second
      assert.deepStrictEqual(ran, [0, 1])
      assert.strictEqual((yield* pool.stats).queued, 4)
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(ran, [0, 1, 2])
      yield* pool.shutdownNow
      assert.strictEqual(handles.length, 6)
    }))
})

describe("submitters that give up while waiting for room", () => {
  it.live("a stalled pool (paused, queue full) keeps nothing of the submitters that gave up waiting", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, capacity: 1, paused: true, shutdownTimeout: 0 })
      yield* pool.submit(Effect.void)
      const refs: Array<WeakRef<object>> = []
      // made outside this generator, whose frame would hold the last one
      const giveUp = (i: number) => {
        const big = { payload: new Array(1000).fill(i) }
        refs.push(new WeakRef(big))
        return Effect.gen(function*() {
          const fiber = yield* Effect.forkChild(pool.run(Effect.sync(() => big.payload[0])))
          yield* Effect.yieldNow
          yield* Fiber.interrupt(fiber)
        })
      }
      // three stay in line, among them, and keep their order
      const order: Array<string> = []
      const stay = (name: string) => Effect.forkChild(pool.run(Effect.sync(() => void order.push(name))))
      const stayers = [yield* stay("first")]
      for (let i = 0; i < 100; i++) yield* giveUp(i)
      stayers.push(yield* stay("second"))
      for (let i = 100; i < 200; i++) yield* giveUp(i)
      stayers.push(yield* stay("third"))
      yield* Effect.yieldNow
      const s = yield* pool.stats
      assert.deepStrictEqual([s.waiting, s.interrupted, s.queued], [3, 200, 1])
      yield* fullGc
      const kept = refs.flatMap((ref, i) => ref.deref() === undefined ? [] : [i])
      // the line is swept once ended entries are most of it and more than 32: at most that many stay
      assert.isAtMost(kept.length, 33, `kept ${kept.length} of 200 jobs that ended waiting`)
      yield* pool.resume
      yield* Effect.forEach(stayers, Fiber.join)
      assert.deepStrictEqual(order, ["first", "second", "third"])
      yield* pool.shutdownNow
    }))
})

describe("the sliding window on the live clock", () => {
  it.live("two starts less than `interval` apart in real time are never both allowed, whatever the milliseconds' fractions", () =>
    Effect.gen(function*() {
      let at = 1000
      const spy = vi.spyOn(performance, "now").mockImplementation(() => at)
      try {
        const pool = yield* WorkPool.make({ concurrency: 2, rateLimit: { limit: 1, interval: "10 millis" }, shutdownTimeout: 0 })
        const started: Array<number> = []
        // starts 0.95 ms after the pool was made
        at = 1000.95
        yield* pool.submit(Effect.sync(() => void started.push(at)))
        // 9.1 ms later: within the window
        at = 1010.05
        yield* pool.submit(Effect.sync(() => void started.push(at)))
        assert.deepStrictEqual(started, [1000.95], "a second start 9.1 ms after the first, with a limit of 1 per 10 ms")
        yield* pool.shutdownNow
      } finally {
        spy.mockRestore()
      }
    }))
})

describe("the counts as seen by an awaiter as it resumes", () => {
  it.effect("shutdownNow: every awaiter of a queued or retrying job, reading stats as it resumes, sees them add up", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, shutdownTimeout: 0, retry: { schedule: Schedule.spaced("1 second") } })
      const seen: Array<string> = []
      const look = (what: string) => Effect.andThen(pool.stats, (s) => Effect.sync(() => void seen.push(balanced(s) ? `${what} ok` : `${what}: ${JSON.stringify(s)}`)))
      const retrying = yield* pool.submit(Effect.fail("x"))
      yield* settle
      yield* pool.pause
      const fibers = yield* Effect.forEach([1, 2, 3], (i) => Effect.forkChild(Effect.andThen(Effect.exit(pool.run(Effect.void)), look(`queued ${i}`))))
      fibers.push(yield* Effect.forkChild(Effect.andThen(Effect.exit(retrying.await), look("retrying"))))
      yield* settle
      assert.deepStrictEqual([(yield* pool.stats).queued, (yield* pool.stats).retrying], [3, 1])
      const unstarted = yield* pool.shutdownNow
      assert.strictEqual(unstarted.length, 4)
      yield* Effect.forEach(fibers, Fiber.join)
      assert.deepStrictEqual(seen.sort(), ["queued 1 ok", "queued 2 ok", "queued 3 ok", "retrying ok"])
    }))
})

describe("dropOldest under overload, with retries", () => {
  it.effect("retries back in a full queue do not raise its bound for good: new jobs bring it back to capacity", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 5, capacity: 2, overflow: "dropOldest", shutdownTimeout: 0 })
      const gate = yield* Deferred.make<void>()
      // five jobs fail at once and come back at 10 ms; meanwhile five others hold the workers
      const retried = yield* Effect.forEach([1, 2, 3, 4, 5], () =>
        pool.submit(Effect.fail("once"), { retry: { schedule: Schedule.spaced("10 millis"), times: 1 } }))
      yield* Effect.forEach([1, 2, 3, 4, 5], () => pool.submit(Deferred.await(gate)))
      yield* Effect.forEach([1, 2], () => pool.submit(Effect.void))
      yield* TestClock.adjust("10 millis")
      // back for a retry, not refused for a full queue
      assert.strictEqual((yield* pool.stats).queued, 7)
      // overload: every new job drops the oldest; the queue comes back to its capacity
      const fresh = yield* Effect.forEach(Array.from({ length: 10 }, (_, i) => i), () => pool.submit(Effect.void))
      const s = yield* pool.stats
      assert.strictEqual(s.queued, 2, `${s.queued} queued with capacity 2, under dropOldest`)
      assert.isTrue(balanced(s))
      for (const h of retried) assert.strictEqual(yield* h.status, "dropped")
      assert.deepStrictEqual(yield* Effect.forEach(fresh.slice(-2), (h) => h.status), ["queued", "queued"])
      yield* Deferred.succeed(gate, undefined)
      yield* pool.awaitIdle
    }))
})

describe("resize and setRateLimit on a rate-held backlog", () => {
  it.effect("growing starts no more than the window allows; a looser limit starts held jobs at once; shrinking caps what runs", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, rateLimit: { limit: 2, interval: "100 millis" }, shutdownTimeout: 0 })
      const starts: Array<number> = []
      let peak = 0
      let running = 0
      const job = Effect.clockWith((c) => Effect.sync(() => {
        starts.push(c.currentTimeMillisUnsafe())
        peak = Math.max(peak, ++running)
      })).pipe(Effect.andThen(Effect.sleep("30 millis")), Effect.ensuring(Effect.sync(() => void running--)))
      const handles = yield* Effect.forEach(Array.from({ length: 12 }, (_, i) => i), () => pool.submit(job))
      yield* settle
      yield* pool.resize(5)
      let s = yield* pool.stats
      // two starts in the window: one on the first worker, one on a new one
      assert.deepStrictEqual([s.running, s.queued, s.rateLimited], [2, 10, 3])
      yield* pool.setRateLimit({ limit: 4, interval: "100 millis" })
      s = yield* pool.stats
      assert.deepStrictEqual([s.running, s.queued], [4, 8])
      yield* pool.resize(1)
      yield* TestClock.adjust("30 millis")
      s = yield* pool.stats
      assert.isAtMost(s.running, 1)
      for (let i = 0; i < 40; i++) yield* TestClock.adjust("30 millis")
      yield* Effect.forEach(handles, (h) => h.await)
      assert.isAtMost(peak, 4)
      assert.isAtMost(maxInWindow(starts.slice(4), 100), 4)
      assert.strictEqual(maxInWindow(starts.slice(0, 2), 100), 2)
      s = yield* pool.stats
      assert.isTrue(balanced(s))
      assert.deepStrictEqual([s.succeeded, s.workers], [12, 1])
    }))
})

describe("hostile31: waiters admitted into a long lane, with aging", () => {
  it.effect("each waiter admitted walks past the younger retries in its lane: O(retries) comparisons per admission (quadratic)", () =>
    Effect.gen(function*() {
      const C = 1000
      const pool = yield* WorkPool.make({ concurrency: C, capacity: C, aging: "1 second", shutdownTimeout: 0 })
      const ran: Array<string> = []
      const job = (name: string) => Effect.andThen(Effect.yieldNow, Effect.sync(() => void ran.push(name)))
      // C jobs fail at once and come back at 1 s, younger than everyone below
      let failures = 0
      for (let i = 0; i < C; i++) {
        yield* pool.submit(Effect.suspend(() => failures++ < C ? Effect.fail("once") : job("retry")), {
          retry: { schedule: Schedule.spaced("1 second"), times: 1 }
        })
      }
      yield* pool.pause
      yield* pool.resize(1)
      // the queue full of old jobs, and C submitters waiting for room, all at 0
      for (let i = 0; i < C; i++) yield* pool.submit(job("filler"))
      const waiters: Array<Fiber.Fiber<unknown, unknown>> = []
      for (let i = 0; i < C; i++) waiters.push(yield* Effect.forkChild(pool.run(job(`w${i}`))))
      yield* settle
      yield* TestClock.adjust("1 second")
      let s = yield* pool.stats
      assert.deepStrictEqual([s.queued, s.waiting, s.retrying], [2 * C, C, 0])
      // count the scores the queue compares from here on
      const score = Object.getOwnPropertyDescriptor(Job.prototype, "score")!
      let reads = 0
      Object.defineProperty(Job.prototype, "score", {
        configurable: true,
        get(this: Job) {
          reads++
          return score.get!.call(this)
        }
      })
      try {
        yield* pool.resume
        yield* Effect.forEach(waiters, Fiber.join)
        yield* pool.awaitIdle
      } finally {
        Object.defineProperty(Job.prototype, "score", score)
      }
      // the fillers, one retry (the queue then has room), then each waiter as it is admitted
      // (submitted at 0: before the retries, back at 1 s), then the other retries
      const expected = [
        ...Array.from({ length: C }, () => "filler"),
        "retry",
        ...Array.from({ length: C }, (_, i) => `w${i}`),
        ...Array.from({ length: C - 1 }, () => "retry")
      ]
      assert.deepStrictEqual(ran, expected)
      s = yield* pool.stats
      assert.isTrue(balanced(s))
      // each waiter is admitted into a lane of C - 1 younger retries: a walk from the tail compares
      // it with all of them (2 million score reads); a search, with log2(C) of them
      assert.isAtMost(reads, 50 * C, `${reads} scores read to admit ${C} waiters`)
    }), 60_000)
})

describe("hostile31: the waiting line swept while it is admitted from", () => {
  it.effect("a submitter resumed as it is admitted gives up for the 50 behind it (the line is swept then, inside that pass): the rest come in, in order, once each", () =>
    Effect.gen(function*() {
      // capacity 0: room is a free worker, so growing the pool admits many waiters in one pass
      const pool = yield* WorkPool.make({ concurrency: 1, capacity: 0, shutdownTimeout: 0 })
      const gate = yield* Deferred.make<void>()
      const started: Array<number> = []
      const admitted: Array<number> = []
      const unbalanced: Array<string> = []
      yield* pool.submit(Deferred.await(gate))
      const look = (label: string) =>
        Effect.flatMap(pool.stats, (s) => Effect.sync(() => void (balanced(s) || unbalanced.push(label))))
      const fibers: Array<Fiber.Fiber<unknown, unknown>> = []
      for (let i = 0; i < 100; i++) {
        fibers.push(yield* Effect.forkChild(Effect.gen(function*() {
          const handle = yield* pool.submit(Effect.andThen(Effect.sync(() => void started.push(i)), Deferred.await(gate)))
          // resumed as it is admitted, inside the pass that admits the others
          admitted.push(i)
          yield* look(`admitted ${i}`)
          if (i === 0) {
            // at the 50th, ended entries are most of the line: it is swept, 0 already out of it
            for (let j = 1; j <= 50; j++) fibers[j]!.interruptUnsafe()
            yield* look("after the sweep")
          }
          return yield* handle.await
        })))
      }
      yield* settle
      assert.strictEqual((yield* pool.stats).waiting, 100)
      yield* pool.resize(31)
      // 30 free workers: 0, then 51 to 79 (1 to 50 gave up as 0 came in)
      const expected = [0, ...Array.from({ length: 29 }, (_, i) => 51 + i)]
      assert.deepStrictEqual(admitted, expected)
      assert.deepStrictEqual(started, expected)
      let s = yield* pool.stats
      assert.deepStrictEqual([s.waiting, s.running, s.interrupted], [20, 31, 50])
      yield* Deferred.succeed(gate, undefined)
      yield* Effect.forEach(fibers, Fiber.await)
      assert.deepStrictEqual(admitted, [...expected, ...Array.from({ length: 20 }, (_, i) => 80 + i)])
      assert.deepStrictEqual(started, admitted)
      s = yield* pool.stats
      assert.deepStrictEqual([s.waiting, s.queued, s.running, s.succeeded, s.interrupted], [0, 0, 0, 51, 50])
      assert.deepStrictEqual(unbalanced, [])
    }))
})

describe("hostile31: dropOldest's loop and awaiters that submit again as they are told", () => {
  it.effect("every dropped job's caller submits again at once, inside the loop: the queue ends at its capacity, the counts balance at every resume", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 5, capacity: 2, overflow: "dropOldest", shutdownTimeout: 0 })
      const gate = yield* Deferred.make<void>()
      const seen: Array<string> = []
      const ran: Array<string> = []
      const look = (label: string) =>
        Effect.flatMap(pool.stats, (s) => Effect.sync(() => void seen.push(`${label}: ${balanced(s) ? "ok" : "unbalanced"} ${s.queued}`)))
      // five callers whose job fails at once and comes back at 10 ms; dropped, each submits again (once)
      const callers = yield* Effect.forEach([1, 2, 3, 4, 5], (i) => {
        let attempts = 0
        return Effect.forkChild(Effect.gen(function*() {
          const first = yield* Effect.exit(pool.run(
            Effect.suspend(() => attempts++ === 0 ? Effect.fail("once") : Effect.sync(() => void ran.push(`r${i}`))),
            { retry: { schedule: Schedule.spaced("10 millis"), times: 1 } }
          ))
          if (Exit.isSuccess(first)) return "ran"
          yield* look(`r${i} dropped`)
          const again = yield* Effect.exit(pool.run(Effect.sync(() => void ran.push(`again${i}`))))
          yield* look(`again${i} ${Exit.isSuccess(again) ? "ran" : "dropped"}`)
          return Exit.isSuccess(again) ? "again ran" : "again dropped"
        }))
      })
      yield* settle
      yield* Effect.forEach([1, 2, 3, 4, 5], () => pool.submit(Deferred.await(gate)))
      yield* TestClock.adjust("10 millis")
      assert.strictEqual((yield* pool.stats).queued, 5)
      const arriving = yield* Effect.forkChild(Effect.exit(pool.run(Effect.sync(() => void ran.push("new")))))
      yield* settle
      const s = yield* pool.stats
      assert.isTrue(balanced(s))
      assert.strictEqual(s.queued, 2, `${s.queued} queued with capacity 2`)
      yield* Deferred.succeed(gate, undefined)
      const answers = yield* Effect.forEach(callers, Fiber.join)
      // the arriving job took r1's place, then newer ones (the callers' second jobs) took its own
      const exit = yield* Fiber.join(arriving)
      assert.isTrue(Exit.isFailure(exit) && Cause.squash(exit.cause) instanceof PoolError.JobDropped)
      yield* pool.awaitIdle
      // each caller told once, reading balanced counts even mid-loop (the queue over its capacity there)
      assert.strictEqual(seen.length, 10)
      assert.deepStrictEqual(seen.filter((line) => !line.includes(": ok")), [])
      // two ran, once each: the queue's capacity. The five retries came back at one instant: they
      // are dropped oldest first, ties to the one submitted first (r1 ... r5), so their callers
      // submit again in that order and the last two stay (their order in the queue was once the
      // order their timers happened to expire in, which let again2 and again3 run)
      assert.deepStrictEqual(ran.sort(), ["again4", "again5"])
      assert.deepStrictEqual(answers.filter((a) => a === "again ran").length, 2)
      const end = yield* pool.stats
      assert.deepStrictEqual([end.dropped, end.succeeded, end.queued], [9, 7, 0])
    }))
})

describe("hostile31: the queue's order with aging, at random", () => {
  /** A queued job as the queue sees it: with aging, `score = priority × aging − time`. */
  class Entry {
    inQueue = true
    readonly priority: number
    readonly seq: number
    readonly time: number
    constructor(priority: number, seq: number, time: number) {
      this.priority = priority
      this.seq = seq
      this.time = time
    }
    get score() {
      return this.priority * 10 - this.time
    }
  }

  it("pushed (now), inserted (a waiter, older), removed, popped and put back (an offer taken back): each pop is the best live entry", () => {
    for (let seed = 1; seed <= 500; seed++) {
      const random = prng(seed)
      const queue = new PriorityQueue<Entry>()
      const live: Array<Entry> = []
      const offered: Array<Entry> = []
      let now = 100
      let seq = 0
      const steps = 50 + Math.floor(random() * 400)
      for (let step = 0; step < steps; step++) {
        const x = random()
        // distinct times: no ties, so the best is the highest score
        now += random() + 0.001
        const priority = Math.floor(random() * 3)
        if (x < 0.3) {
          const entry = new Entry(priority, ++seq, now)
          queue.push(entry)
          live.push(entry)
        } else if (x < 0.45) {
          const entry = new Entry(priority, ++seq, now - random() * 30)
          queue.insert(entry)
          live.push(entry)
        } else if (x < 0.7 && live.length > 0) {
          const entry = live.splice(Math.floor(random() * live.length), 1)[0]!
          entry.inQueue = false
          queue.remove(entry)
        } else if (x < 0.8 && offered.length > 0) {
          const entry = offered.splice(Math.floor(random() * offered.length), 1)[0]!
          entry.inQueue = true
          queue.putBack(entry)
          live.push(entry)
        } else {
          let best: Entry | undefined
          for (const entry of live) if (best === undefined || entry.score > best.score) best = entry
          const popped = queue.pop()
          assert.strictEqual(popped, best, `seed ${seed}, step ${step}`)
          if (popped !== undefined) {
            popped.inQueue = false
            live.splice(live.indexOf(popped), 1)
            if (random() < 0.5) offered.push(popped)
          }
        }
      }
    }
  })
})

describe("hostile31: a waiting line that never empties", () => {
  it.effect("producers that always outnumber the room: the line keeps a slot for every submitter it ever admitted", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, capacity: 1, shutdownTimeout: 0 })
      const line = (schedulerOf(pool) as unknown as { waiting: Array<unknown> }).waiting
      let done = 0
      // ten producers, each running its jobs one after the other: eight always wait for room
      const producers = yield* Effect.forEach(Array.from({ length: 10 }, (_, i) => i), () =>
        Effect.forkChild(Effect.repeat(
          Effect.andThen(pool.run(Effect.yieldNow), Effect.sync(() => void done++)),
          { times: 1999 }
        )))
      let longest = 0
      while (done < 19_000) {
        yield* Effect.yieldNow
        longest = Math.max(longest, line.length)
      }
      yield* Effect.forEach(producers, Fiber.join)
      assert.strictEqual(done, 20_000)
      // the line holds at most 9 submitters at once
      assert.isAtMost(longest, 2048, `a line of ${longest} slots for at most 9 submitters`)
    }), 60_000)
})

describe("hostile31: capacity 0 under a rate limit, submitters waiting while the pool changes", () => {
  it.effect("a wake-up due while paused, a tighter limit, a resize and a lifted limit: each waiter comes in when a start is allowed, none is stranded", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2, capacity: 0, rateLimit: { limit: 1, interval: "1 second" }, shutdownTimeout: 0 })
      const gate = yield* Deferred.make<void>()
      const starts: Array<string> = []
      const job = (name: string) =>
        Effect.clockWith((clock) => Effect.sync(() => void starts.push(`${name}@${clock.currentTimeMillisUnsafe()}`))).pipe(
          Effect.andThen(Deferred.await(gate))
        )
      const fibers: Array<Fiber.Fiber<unknown, unknown>> = []
      for (let i = 0; i < 6; i++) fibers.push(yield* Effect.forkChild(pool.run(job(`j${i}`))))
      yield* settle
      const counts = Effect.map(pool.stats, (s) => [s.queued, s.waiting, s.running])
      assert.deepStrictEqual(yield* counts, [0, 5, 1])
      // the window allows the next start at 1000, while the pool is paused: it comes in on resume
      yield* TestClock.adjust("500 millis")
      yield* pool.pause
      yield* TestClock.adjust("700 millis")
      assert.deepStrictEqual(yield* counts, [0, 5, 1])
      yield* pool.resume
      assert.deepStrictEqual(yield* counts, [0, 4, 2])
      // both workers busy; two more, but a limit of 1 per 10 s allows none before 11,200
      yield* pool.setRateLimit({ limit: 1, interval: "10 seconds" })
      yield* pool.resize(4)
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* counts, [0, 4, 2])
      // lifted: the two free workers take two waiters at once
      yield* pool.setRateLimit(undefined)
      assert.deepStrictEqual(yield* counts, [0, 2, 4])
      yield* Deferred.succeed(gate, undefined)
      yield* Effect.forEach(fibers, Fiber.join)
      assert.deepStrictEqual(starts, ["j0@0", "j1@1200", "j2@2200", "j3@2200", "j4@2200", "j5@2200"])
      const s = yield* pool.stats
      assert.isTrue(balanced(s))
      assert.deepStrictEqual([s.succeeded, s.waiting, s.queued], [6, 0, 0])
    }))
})

describe("dropOldest drops the job that has waited longest in the queue, whatever their priorities", () => {
  it.effect("a retry back in the queue has waited since its return: an older job of another priority is dropped first", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, capacity: 2, overflow: "dropOldest", shutdownTimeout: 0 })
      let n = 0
      // r (priority 0, the first submitted) fails at 0 and comes back to the queue at 100
      const r = yield* pool.submit(Effect.suspend(() => n++ === 0 ? Effect.fail("once") : Effect.succeed("r")), {
        retry: { schedule: Schedule.spaced("100 millis"), times: 1 }
      })
      yield* settle
      const gate = yield* Deferred.make<void>()
      yield* pool.submit(Deferred.await(gate))
      yield* TestClock.adjust("10 millis")
      // b (priority 5) queued at 10
      const b = yield* pool.submit(Effect.succeed("b"), { priority: 5 })
      yield* TestClock.adjust("90 millis")
      assert.strictEqual((yield* pool.stats).queued, 2, "b, and r back at 100")
      const c = yield* pool.submit(Effect.succeed("c"))
      assert.deepStrictEqual([yield* b.status, yield* r.status], ["dropped", "queued"])
      assert.deepStrictEqual(
        yield* Effect.exit(b.await),
        Exit.fail(new PoolError.JobDropped({ jobId: b.id, policy: "dropOldest" })) as any
      )
      yield* Deferred.succeed(gate, undefined)
      assert.deepStrictEqual([yield* r.await, yield* c.await], ["r", "c"])
    }))
})
