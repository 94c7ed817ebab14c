/**
 * Synchronous thread tasks (`Effect.sync`, no fiber in the thread) with many offers out per thread
 * (a short pace: up to 64): a thread that exits, a stuck task's timeout, cancels, resizes,
 * `shutdownNow`, a task's timeout while it waits as an offer, and odd answers among the batch. `Count`
 * adds 1 to its own slot of the shared counters, so a task that ran twice, or succeeded without
 * running, shows.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber } from "effect"
import { Count, Crash, Die, Echo, Hold, Meet, OnFiber, Spin, Throw, Uncloneable } from "./fixtures/tasks.ts"
import { addsUp, makePool } from "./fixtures/pool.ts"
import { settle, waitFor } from "./helpers.ts"

const N = 3000
/** Pool options whose shared counters have a slot per task; and those counters. */
const big = () => {
  const buffer = new SharedArrayBuffer(4 * (N + 64))
  return { options: { workerData: { counters: buffer } }, counters: new Int32Array(buffer) }
}

/** Short tasks first: the threads' pace is short, so each is offered many tasks ahead. */
const warm = (pool: Effect.Success<ReturnType<typeof makePool>>["pool"]) =>
  Effect.forEach(Array.from({ length: 500 }, (_, i) => String(i)), (s) => pool.run(Echo, s), { concurrency: 64, discard: true })

const tagOf = (exit: Exit.Exit<unknown, unknown>): string => {
  if (Exit.isSuccess(exit)) return "success"
  const e = Cause.findErrorOption(exit.cause)
  if (e._tag === "Some") return (e.value as { _tag?: string })._tag ?? "failure"
  return Cause.hasInterruptsOnly(exit.cause) ? "interrupted" : "defect"
}

describe("thread offers of synchronous tasks, attacked", () => {
  it.live("threads that exit with many sync offers out: every task ends once and runs at most once", () =>
    Effect.gen(function*() {
      const { counters, options } = big()
      const { pool } = yield* makePool({ threads: 2, ...options })
      // warm: short tasks make the threads' pace short, so they are offered many ahead
      yield* warm(pool)
      const crashes = new Set([700, 1400, 2100])
      const handles = []
      for (let i = 1; i <= N; i++) {
        handles.push(crashes.has(i) ? yield* pool.submit(Crash, "exit") : yield* pool.submit(Count, i))
      }
      const exits = yield* Effect.forEach(handles, (h) => Effect.exit(h.await as Effect.Effect<unknown, unknown>))
      const tally: Record<string, number> = {}
      const twice: Array<number> = []
      const lost: Array<number> = []
      exits.forEach((exit, k) => {
        const i = k + 1
        if (crashes.has(i)) return
        const tag = tagOf(exit)
        tally[tag] = (tally[tag] ?? 0) + 1
        const ran = Atomics.load(counters, i)
        if (ran > 1) twice.push(i)
        if (tag === "success" && (ran !== 1 || (exit as Exit.Success<unknown>).value !== i)) lost.push(i)
      })
      assert.deepStrictEqual(twice, [], "ran twice")
      assert.deepStrictEqual(lost, [], "succeeded without running")
      const s = yield* pool.stats
      assert.isTrue(addsUp(s), JSON.stringify(s))
      assert.strictEqual(s.running + s.queued, 0)
      // a crash fails the task that crashed it; any other task a thread took is answered or counted crashed
      assert.isAtMost(tally["WorkerCrashed"] ?? 0, 3 * 64, JSON.stringify(tally))
    }), 120_000)

  it.live("a stuck sync task behind deep offers times out; the offers behind it each run once", () =>
    Effect.gen(function*() {
      const { counters, options } = big()
      const { pool } = yield* makePool({ threads: 1, cancelGrace: "100 millis", ...options })
      yield* warm(pool)
      const stuck = yield* pool.submit(Spin, 1, { timeout: "300 millis" })
      const after = yield* Effect.forEach(Array.from({ length: 200 }, (_, i) => i + 1), (i) => pool.submit(Count, i))
      const e = yield* Effect.exit(stuck.await)
      assert.strictEqual(tagOf(e), "JobTimeout")
      const results = yield* Effect.forEach(after, (h) => h.await)
      assert.deepStrictEqual(results, Array.from({ length: 200 }, (_, i) => i + 1))
      const counts = Array.from({ length: 200 }, (_, i) => Atomics.load(counters, i + 1))
      assert.isTrue(counts.every((c) => c === 1), JSON.stringify(counts))
    }), 60_000)

  it.live("cancelling half of a deep set of offers: the cancelled never run, the rest run once", () =>
    Effect.gen(function*() {
      const { counters, options } = big()
      const { pool } = yield* makePool({ threads: 1, ...options })
      yield* warm(pool)
      // slot N+1 marks the hold started, N+2 releases it
      const hold = yield* pool.submit(Hold, { mark: N + 1, release: N + 2 })
      const handles = yield* Effect.forEach(Array.from({ length: 100 }, (_, i) => i + 1), (i) => pool.submit(Count, i))
      yield* waitFor(Effect.sync(() => Atomics.load(counters, N + 1)), "the hold started", { until: (n) => n === 1 })
      yield* settle
      yield* Effect.forEach(handles.filter((_, k) => k % 2 === 0), (h) => h.interrupt, { discard: true })
      Atomics.store(counters, N + 2, 1)
      yield* hold.await
      const exits = yield* Effect.forEach(handles, (h) => Effect.exit(h.await))
      const wrong: Array<string> = []
      exits.forEach((exit, k) => {
        const ran = Atomics.load(counters, k + 1)
        if (k % 2 === 0 ? ran !== 0 || Exit.isSuccess(exit) : ran !== 1 || !Exit.isSuccess(exit)) {
          wrong.push(`${k + 1}: ran ${ran}, ${tagOf(exit)}`)
        }
      })
      assert.deepStrictEqual(wrong, [])
      assert.isTrue(addsUp(yield* pool.stats))
    }), 60_000)

  it.live("resizing down and up while deep offers are out: each task runs once", () =>
    Effect.gen(function*() {
      const { counters, options } = big()
      const { pool } = yield* makePool({ threads: 3, ...options })
      yield* warm(pool)
      const handles = yield* Effect.forEach(Array.from({ length: N }, (_, i) => i + 1), (i) => pool.submit(Count, i))
      const resizer = yield* Effect.forkChild(Effect.gen(function*() {
        for (let k = 0; k < 4; k++) {
          yield* pool.resize(k % 2 === 0 ? 1 : 4)
          yield* Effect.sleep(2)
        }
      }))
      const results = yield* Effect.forEach(handles, (h) => h.await)
      yield* Fiber.join(resizer)
      assert.deepStrictEqual(results, Array.from({ length: N }, (_, i) => i + 1))
      const bad = Array.from({ length: N }, (_, i) => Atomics.load(counters, i + 1)).map((c, i) => [i + 1, c]).filter(([, c]) => c !== 1)
      assert.deepStrictEqual(bad, [])
    }), 120_000)

  it.live("an offered task's timeout counts from its start, not from its offer (1 and 2 slots per thread)", () =>
    Effect.gen(function*() {
      for (const tasksPerThread of [1, 2]) {
        const { counters, options } = big()
        const { pool } = yield* makePool({ threads: 1, tasksPerThread, ...options })
        yield* warm(pool)
        const holds = yield* Effect.forEach(Array.from({ length: tasksPerThread }), () => pool.submit(Hold, { mark: N + 1, release: N + 2 }))
        const handles = yield* Effect.forEach(Array.from({ length: 50 }, (_, i) => i + 1), (i) => pool.submit(Count, i, { timeout: "150 millis" }))
        yield* waitFor(Effect.sync(() => Atomics.load(counters, N + 1)), "the holds started", { until: (n) => n === tasksPerThread })
        // longer than the offers' timeout: they have not started
        yield* Effect.sleep(400)
        Atomics.store(counters, N + 2, 1)
        yield* Effect.forEach(holds, (h) => h.await, { discard: true })
        const exits = yield* Effect.forEach(handles, (h) => Effect.exit(h.await))
        assert.deepStrictEqual(exits.map(tagOf).filter((t) => t !== "success"), [], `tasksPerThread ${tasksPerThread}`)
      }
    }), 60_000)

  it.live("shutdownNow with deep offers out: the unstarted are returned and never run; the others ran once", () =>
    Effect.gen(function*() {
      const { counters, options } = big()
      const { pool } = yield* makePool({ threads: 2, ...options })
      yield* warm(pool)
      const handles = yield* Effect.forEach(Array.from({ length: N }, (_, i) => i + 1), (i) => pool.submit(Count, i))
      yield* Effect.sleep(1)
      const unstarted = yield* pool.shutdownNow
      const returned = new Set(unstarted.map((u) => u.payload as number))
      const exits = yield* Effect.forEach(handles, (h) => Effect.exit(h.await))
      const wrong: Array<string> = []
      exits.forEach((exit, k) => {
        const i = k + 1
        const ran = Atomics.load(counters, i)
        if (returned.has(i) ? ran !== 0 : ran > 1 || (Exit.isSuccess(exit) && ran !== 1)) wrong.push(`${i}: ran ${ran} ${tagOf(exit)} returned ${returned.has(i)}`)
      })
      // after the pool stopped, nothing more runs
      yield* Effect.sleep(50)
      const later = Array.from({ length: N }, (_, i) => Atomics.load(counters, i + 1)).filter((c, i) => returned.has(i + 1) && c !== 0)
      const others: Record<string, number> = {}
      exits.forEach((exit, k) => {
        if (Exit.isSuccess(exit) || returned.has(k + 1)) return
        const key = `${tagOf(exit)} ran ${Atomics.load(counters, k + 1)}`
        others[key] = (others[key] ?? 0) + 1
      })
      assert.deepStrictEqual(Object.keys(others).filter((k) => k.endsWith("ran 0")), [], "ended unstarted, not returned")
      assert.deepStrictEqual(wrong.slice(0, 10), [])
      assert.deepStrictEqual(later, [])
    }), 60_000)

  it.live("answers that cannot be cloned, throws of odd values and defects among deep sync offers: each task gets its own outcome", () =>
    Effect.gen(function*() {
      const { options } = big()
      const { pool } = yield* makePool({ threads: 1, ...options })
      yield* warm(pool)
      const kinds = ["count", "uncloneable", "symbol", "proxy", "die", "nullProto"] as const
      const handles = yield* Effect.forEach(Array.from({ length: 600 }, (_, i) => i + 1), (i) => {
        const kind = kinds[i % kinds.length]!
        const h = kind === "count" ? pool.submit(Count, i)
          : kind === "uncloneable" ? pool.submit(Uncloneable, i)
          : kind === "die" ? pool.submit(Die, "boom")
          : pool.submit(Throw, kind)
        return Effect.map(h as Effect.Effect<{ readonly await: Effect.Effect<unknown, unknown> }, unknown>, (h) => [kind, h] as const)
      })
      const got = yield* Effect.forEach(handles, ([kind, h]) => Effect.map(Effect.exit(h.await), (e) => [kind, tagOf(e)] as const))
      const byKind: Record<string, Record<string, number>> = {}
      for (const [kind, tag] of got) {
        byKind[kind] ??= {}
        byKind[kind][tag] = (byKind[kind][tag] ?? 0) + 1
      }
      assert.deepStrictEqual(byKind, {
        count: { success: 100 },
        uncloneable: { TaskCodecError: 100 },
        symbol: { defect: 100 },
        proxy: { defect: 100 },
        die: { defect: 100 },
        nullProto: { defect: 100 }
      })
      assert.isTrue(addsUp(yield* pool.stats))
    }), 60_000)

  // an offer starts as the task before it on its slot ends: here that task's fiber ends inside
  // another task's (which resumed it), and the offer, a synchronous task, must not run as if in it
  it.live("a synchronous offer started as another task's fiber ends runs on no fiber, whatever fiber ended it", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1, tasksPerThread: 2 })
      for (let round = 0; round < 3; round++) {
        const waiting = yield* pool.submit(Meet, "wait")
        const opening = yield* pool.submit(Meet, "open")
        const offered = yield* Effect.forEach([1, 2, 3, 4], () => pool.submit(OnFiber, "sync"))
        assert.deepStrictEqual(yield* Effect.forEach([waiting, opening], (h) => h.await), [0, 0])
        assert.deepStrictEqual(yield* Effect.forEach(offered, (h) => h.await), [0, 0, 0, 0], `round ${round}: 1 is a task that saw a fiber`)
      }
    }), 60_000)
})
