/**
 * Hostile tests of how `runAll` reads its batch (`WorkPool`'s jobs, `ThreadPool`'s payloads): an
 * iterable that throws, an endless or huge one, a Proxy or a getter, and what is passed by mistake
 * fail with `InvalidJob` naming the batch, never a defect or a hang; a long read gives way to other
 * fibers and stops on an interruption, closing the iterator. `Array.from` read them: what the
 * iterable threw was a defect, and an endless one blocked the process until it ran out of memory.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Scheduler, Scope, Stream } from "effect"
import { TestClock } from "effect/testing"
import { PoolError, WorkPool } from "../src/index.ts"
import { makePool } from "./fixtures/pool.ts"
import { Echo } from "./fixtures/tasks.ts"

const job = (n: number) => Effect.succeed(n)

/** A generator of jobs that counts what it gave and says whether it was closed; bounded, so that a regression fails instead of hanging. */
const counted = (bound: number, at: (n: number) => unknown = job) => {
  const state = { read: 0, closed: false }
  function* jobs() {
    try {
      while (state.read < bound) yield at(state.read++)
    } finally {
      state.closed = true
    }
  }
  return { state, jobs: jobs() as Iterable<Effect.Effect<number>> }
}

/** `runAll`'s error for `jobs`, which must be `InvalidJob` (a defect fails the test), having submitted nothing. */
const refused = (pool: WorkPool.WorkPool, jobs: unknown) =>
  Effect.gen(function*() {
    const error = yield* Effect.flip(pool.runAll(jobs as Iterable<Effect.Effect<number>>).pipe(
      Effect.flatMap((results) => Effect.die(`it ran ${results.length} jobs`))
    ))
    assert.instanceOf(error, PoolError.InvalidJob, String(error))
    assert.strictEqual((yield* pool.stats).submitted, 0, "nothing submitted")
    return error as PoolError.InvalidJob
  })

describe("WorkPool.runAll reading its jobs", () => {
  it.effect("an iterable whose iterator throws fails with InvalidJob naming jobs and where it threw, not a defect; so does one whose iterator is no iterator", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2 })
      function* throwing() {
        yield job(0)
        yield job(1)
        throw new Error("disk gone")
      }
      const thrown = yield* refused(pool, throwing())
      assert.strictEqual(thrown.field, "jobs")
      assert.match(thrown.reason, /jobs\[2\]/)
      assert.match(thrown.reason, /disk gone/)
      const broken: ReadonlyArray<[string, unknown, RegExp]> = [
        ["[Symbol.iterator] throws", { [Symbol.iterator]: () => { throw new TypeError("no") } }, /no/],
        ["[Symbol.iterator] returns a number", { [Symbol.iterator]: () => 42 }, /iterator/],
        ["next is not a function", { [Symbol.iterator]: () => ({ next: 1 }) }, /next/],
        ["next returns a number", { [Symbol.iterator]: () => ({ next: () => 7 }) }, /jobs\[0\]/],
        ["a getter of [Symbol.iterator] throws", { get [Symbol.iterator]() { throw new Error("trap") } }, /trap/],
        ["done is a getter that throws", { [Symbol.iterator]: () => ({ next: () => ({ get done() { throw new Error("done?") } }) }) }, /done\?/],
        ["what it throws cannot be read", { [Symbol.iterator]: () => ({ next: () => { throw new Proxy({}, { get: () => { throw new Error("x") }, getPrototypeOf: () => { throw new Error("x") } }) } }) }, /jobs\[0\]/]
      ]
      for (const [name, jobs, reason] of broken) {
        const error = yield* refused(pool, jobs)
        assert.strictEqual(error.field, "jobs", name)
        assert.match(error.reason, reason, name)
      }
      assert.deepStrictEqual(yield* pool.runAll([job(1), job(2)]), [1, 2], "the pool goes on")
    }))

  it.effect("an endless iterable fails past 1,000,000 jobs with InvalidJob naming jobs (it read forever, blocking the process until out of memory), having read one past the limit and closed the iterator; a longer array, or 4 billion holes, at once", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2 })
      const { jobs, state } = counted(3_000_000)
      const error = yield* refused(pool, jobs)
      assert.strictEqual(error.field, "jobs")
      assert.match(error.reason, /at most 1,000,000 jobs in one call \(run more with WorkPool\.mapStream\)/)
      assert.strictEqual(state.read, 1_000_001)
      assert.isTrue(state.closed, "the iterator was closed")
      const started = Date.now()
      assert.match((yield* refused(pool, new Array(1_000_001).fill(job(0)))).reason, /at most 1,000,000 jobs.*it has 1000001/)
      assert.match((yield* refused(pool, new Array(2 ** 32 - 1))).reason, /at most 1,000,000 jobs/)
      assert.isBelow(Date.now() - started, 10_000)
      // exactly the limit is a batch
      const limit = counted(1_000_000, () => Effect.void)
      assert.strictEqual((yield* pool.runAll(limit.jobs)).length, 1_000_000)
      assert.isTrue(limit.state.closed)
    }), 180_000)

  it.effect("a long read lets other fibers run and stops on an interruption, closing the iterator and submitting nothing (it read every job in one uninterruptible loop)", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2 })
      const { jobs, state } = counted(900_000)
      const fiber = yield* Effect.forkChild(pool.runAll(jobs))
      // this fiber runs again only once the reading one gives way
      while (state.read === 0) yield* Effect.yieldNow
      assert.isBelow(state.read, 900_000, "it gave way while reading")
      yield* Fiber.interrupt(fiber)
      assert.isBelow(state.read, 900_000, "it stopped reading")
      assert.isTrue(state.closed, "the iterator was closed")
      assert.strictEqual((yield* pool.stats).submitted, 0)
    }), 60_000)

  it.effect("an interruption that lands as the first chunk has been read (the fiber yielding for its budget of operations before the rest of the read began) closes the iterator (it was left open: its finally never ran)", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2 })
      // a scheduler whose fiber yields at the next operation once told to, its resumption held
      const held: Array<() => void> = []
      const control = { yieldNext: false, hold: false }
      const scheduler = new (class extends Scheduler.MixedScheduler {
        override shouldYield(fiber: Fiber.Fiber<unknown, unknown>) {
          if (!control.yieldNext) return super.shouldYield(fiber)
          control.yieldNext = false
          return true
        }
      })("async", (task) => {
        if (control.hold) held.push(task)
        else setImmediate(task)
        return () => {}
      })
      const { jobs, state } = counted(5_000, (n) => {
        // the first chunk's last job: the reading fiber yields as soon as this read returns
        if (n === 999) control.yieldNext = control.hold = true
        return job(n)
      })
      const fiber = yield* Effect.forkChild(pool.runAll(jobs).pipe(Effect.provideService(Scheduler.Scheduler, scheduler)))
      while (state.read < 1_000) yield* Effect.yieldNow
      yield* Fiber.interrupt(fiber)
      control.hold = false
      held.splice(0).forEach((task) => task())
      assert.strictEqual(state.read, 1_000)
      assert.isTrue(state.closed, "the iterator was closed")
      assert.strictEqual((yield* pool.stats).submitted, 0)
      // whether an iterator can be closed is asked as for...of asks it, only to close it: a `return`
      // getter that throws does not refuse a batch read to its end
      const jobs2 = [job(0), job(1)]
      const unaskable = {
        [Symbol.iterator]: () => {
          let n = 0
          return {
            next: () => n < jobs2.length ? { done: false, value: jobs2[n++]! } : { done: true, value: undefined },
            get return(): never {
              throw new Error("do not ask")
            }
          }
        }
      }
      assert.deepStrictEqual(yield* pool.runAll(unaskable as Iterable<Effect.Effect<number>>), [0, 1])
    }))

  it.effect("a job that is none, read from an endless iterable, fails naming its index at once and closes the iterator (the whole iterable was read first)", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2 })
      const { jobs, state } = counted(3_000_000, (n) => n === 5 ? Promise.resolve(n) : job(n))
      const error = yield* refused(pool, jobs)
      assert.strictEqual(error.field, "jobs[5]")
      assert.match(error.reason, /expected an Effect/)
      assert.strictEqual(state.read, 6)
      assert.isTrue(state.closed, "the iterator was closed")
    }))

  it.effect("an array's getter or a Proxy that throws, a revoked Proxy, and a Proxy claiming an impossible length fail with InvalidJob naming jobs, at once; a well-behaved Proxy of an array is a batch", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2 })
      const boom = () => {
        throw new Error("trap")
      }
      const getter = [job(0), job(1)]
      Object.defineProperty(getter, 1, { get: boom })
      const byGetter = yield* refused(pool, getter)
      assert.strictEqual(byGetter.field, "jobs")
      assert.match(byGetter.reason, /reading jobs\[1\] threw Error: trap/)
      assert.strictEqual((yield* refused(pool, new Proxy([job(0)], { get: boom }))).field, "jobs")
      const { proxy, revoke } = Proxy.revocable([job(0)], {})
      revoke()
      assert.strictEqual((yield* refused(pool, proxy)).field, "jobs")
      // every index a job, up to the length it claims: read one by one, the call would never end
      const claiming = (length: unknown) =>
        new Proxy([] as Array<unknown>, { get: (target, key) => key === "length" ? length : typeof key === "string" ? job(0) : Reflect.get(target, key) })
      const started = Date.now()
      for (const length of [2 ** 32 - 1, 2 ** 53, Infinity, Number.NaN, -1, 1.5, "3"]) {
        const error = yield* refused(pool, claiming(length))
        assert.strictEqual(error.field, "jobs", String(length))
        assert.match(error.reason, /at most 1,000,000 jobs|its length is/, String(length))
      }
      assert.isBelow(Date.now() - started, 10_000)
      assert.deepStrictEqual(yield* pool.runAll(new Proxy([job(1), job(2)], {})), [1, 2])
    }))

  it.effect("something else by mistake (an async iterable, a Promise, an Effect, a Stream, a string) fails with InvalidJob naming jobs and saying what it is", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2 })
      async function* lazy() {
        yield job(0)
      }
      const mistakes: ReadonlyArray<[unknown, RegExp]> = [
        [lazy(), /not an async iterable \(use WorkPool\.mapStream\)/],
        [Promise.resolve([job(0)]), /not a Promise/],
        [job(0), /not an Effect/],
        [Stream.make(job(0)), /not a Stream \(use WorkPool\.mapStream\)/],
        ["jobs", /not a string/]
      ]
      for (const [jobs, reason] of mistakes) {
        const error = yield* refused(pool, jobs)
        assert.strictEqual(error.field, "jobs")
        assert.match(error.reason, reason)
      }
    }))

  it.effect("an array is read once, up to its length at the call, each job once; its own iterator, a Set and a generator are read as for...of reads them", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2 })
      let asked = 0
      const growing: Array<Effect.Effect<number>> = [job(0), job(1)]
      Object.defineProperty(growing, 0, {
        get() {
          asked++
          growing.push(job(99))
          return job(0)
        }
      })
      assert.deepStrictEqual(yield* pool.runAll(growing), [0, 1])
      assert.strictEqual(asked, 1)
      const own = [job(0)]
      Object.defineProperty(own, Symbol.iterator, { value: function*() { yield job(7) } })
      assert.deepStrictEqual(yield* pool.runAll(own), [7])
      assert.deepStrictEqual(yield* pool.runAll(new Set([job(1), job(2)])), [1, 2])
      assert.deepStrictEqual(yield* pool.runAll(counted(2_500).jobs), Array.from({ length: 2_500 }, (_, n) => n))
      assert.deepStrictEqual(yield* pool.runAll([] as Array<Effect.Effect<number>>), [])
    }))
})

describe("WorkPool.runAll and run given a job that cannot be read", () => {
  it.effect("a job that is a revoked Proxy or a Proxy whose traps throw fails runAll with InvalidJob naming jobs[i], read from a Set, a generator or an array, and run or submit with InvalidJob naming job (asking whether it is a job threw: a defect)", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2 })
      const boom = () => {
        throw new Error("trap")
      }
      const unreadable = (): ReadonlyArray<[string, unknown]> => {
        const { proxy, revoke } = Proxy.revocable({}, {})
        revoke()
        return [["a revoked Proxy", proxy], ["a Proxy whose traps throw", new Proxy({}, { getPrototypeOf: boom, get: boom, has: boom })]]
      }
      for (const [name, bad] of unreadable()) {
        function* generated() {
          yield job(0)
          yield bad
        }
        const sources: ReadonlyArray<[string, unknown]> = [["Set", new Set([job(0), bad])], ["generator", generated()], ["array", [job(0), bad]]]
        for (const [source, jobs] of sources) {
          const error = yield* refused(pool, jobs)
          assert.strictEqual(error.field, "jobs[1]", `${name} in a ${source}`)
          assert.match(error.reason, /expected an Effect/, `${name} in a ${source}`)
        }
        for (const submitted of [pool.run(bad as Effect.Effect<number>), Effect.flatMap(pool.submit(bad as Effect.Effect<number>), (handle) => handle.await)]) {
          const error = yield* Effect.flip(submitted)
          assert.instanceOf(error, PoolError.InvalidJob, `${name}: ${String(error)}`)
          assert.strictEqual((error as PoolError.InvalidJob).field, "job")
        }
      }
      assert.strictEqual((yield* pool.stats).submitted, 0, "nothing submitted")
      assert.deepStrictEqual(yield* pool.runAll(new Set([job(1), job(2)])), [1, 2], "the pool goes on")
    }))
})

describe("WorkPool given a Proxy of an Effect whose traps throw", () => {
  it.effect("a Proxy of Effect.succeed or Effect.sync whose get trap throws ends as a defect, once, by run and runAll; the pool frees its worker and shuts down (the job was admitted and never ended: no count, a worker held for ever, the scope's close hung)", () =>
    Effect.gen(function*() {
      const boom = () => {
        throw new Error("trap")
      }
      const proxies: ReadonlyArray<[string, () => Effect.Effect<number>]> = [
        ["of Effect.succeed", () => new Proxy(Effect.succeed(1), { get: boom })],
        ["of Effect.sync", () => new Proxy(Effect.sync(() => 1), { get: boom })]
      ]
      for (const [name, proxy] of proxies) {
        const scope = yield* Scope.make()
        const pool = yield* WorkPool.make({ concurrency: 1 }).pipe(Scope.provide(scope))
        const exits: ReadonlyArray<Exit.Exit<unknown, unknown>> = [yield* Effect.exit(pool.run(proxy())), yield* Effect.exit(pool.runAll([proxy(), job(2)]))]
        for (const exit of exits) {
          assert.isTrue(Exit.isFailure(exit) && Cause.hasDies(exit.cause), `${name}: ${String(exit)}`)
        }
        const stats = yield* pool.stats
        assert.strictEqual(stats.defects, 2, name)
        assert.strictEqual(stats.running, 0, name)
        assert.deepStrictEqual(yield* pool.run(job(3)), 3, `${name}: the pool goes on`)
        const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
        yield* TestClock.adjust("1 hour")
        assert.isDefined(closing.pollUnsafe(), `${name}: the pool shut down`)
      }
    }))
})

describe("ThreadPool.runAll reading its payloads", () => {
  it.live("an iterable that throws, an endless one and one passed by mistake fail with InvalidJob naming payloads, not a defect or a hang; a long read can be interrupted, closing the iterator", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1 })
      const payloadsRefused = (payloads: unknown) =>
        Effect.gen(function*() {
          const error = yield* Effect.flip(Effect.suspend(() => pool.runAll(Echo, payloads as Iterable<string>)))
          assert.instanceOf(error, PoolError.InvalidJob, String(error))
          assert.strictEqual((error as PoolError.InvalidJob).field, "payloads")
          return error as PoolError.InvalidJob
        })
      function* throwing() {
        yield "a"
        throw new Error("disk gone")
      }
      assert.match((yield* payloadsRefused(throwing())).reason, /payloads\[1\].*disk gone/)
      const endless = counted(3_000_000, (n) => `p${n}`)
      assert.match((yield* payloadsRefused(endless.jobs)).reason, /at most 1,000,000 payloads in one call \(run more with ThreadPool\.mapStream\)/)
      assert.strictEqual(endless.state.read, 1_000_001)
      assert.isTrue(endless.state.closed)
      assert.match((yield* payloadsRefused(Stream.make("a"))).reason, /use ThreadPool\.mapStream/)
      assert.match((yield* payloadsRefused("abc")).reason, /not a string/)
      const long = counted(900_000, (n) => `p${n}`)
      const fiber = yield* Effect.forkChild(pool.runAll(Echo, long.jobs as Iterable<any>))
      while (long.state.read === 0) yield* Effect.yieldNow
      yield* Fiber.interrupt(fiber)
      assert.isBelow(long.state.read, 900_000)
      assert.isTrue(long.state.closed)
      assert.strictEqual((yield* pool.stats).submitted, 0)
      assert.deepStrictEqual(yield* pool.runAll(Echo, new Set(["a", "b"])), ["echo a", "echo b"])
    }), 120_000)
})
