/**
 * Hostile tests of per-key caps' key budget on the SQL stores (`groupBudget`, `groupRounds`): a
 * claim walks at most its budget of keys, an empty one cut short remembers in memory where it
 * stopped and the next goes on from there. Invariant checked: once a round of claims ends (a claim
 * empty and not cut short, so its consumer waits), no visible job of the claim's tasks in a key
 * with a free slot was left behind.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Schema } from "effect"
import { TestClock } from "effect/testing"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as Task from "../src/Task.ts"
import { type Claimed, groupRounds, type Store } from "../src/internal/store/model.ts"
import { cappedBeside, claimOne as claimOf, Echo, enqueuedDuringRound, freedDuringRound, Other, tick, untilRoundEnds } from "./durable/conformance.ts"
import { enabled, freshSchema, testLayer } from "./durable/postgres.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wp-group-sql-"))
let n = 0
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

type Instance = () => Layer.Layer<JobStore.JobStore, any>

/**
 * Each store: its name, a fresh database's store, and a fresh database whose instances (several
 * processes' stores) it gives; whether an instance hears another's writes to a queue it does not
 * consume (SQLite's watch hears every commit of the file; Postgres LISTENs to its consumers' queues).
 */
const stores: Array<readonly [string, Instance, () => Instance, boolean]> = [
  ["SQLite", () => JobStore.sqlite({ filename: path.join(dir, `jobs-${++n}.db`) }), () => {
    const filename = path.join(dir, `jobs-${++n}.db`)
    return () => JobStore.sqlite({ filename })
  }, true],
  ...(enabled
    ? [["Postgres", () => testLayer(freshSchema()), () => {
      const schema = freshSchema()
      return () => testLayer(schema)
    }, false] as const]
    : [])
]

for (const [name, layer, database, hearsAll] of stores) {
  describe(`per-key caps' key budget on ${name} (hostile)`, () => {
    // Was a bug (fixed): an empty claim cut short remembers where it stopped; a job enqueued
    // meanwhile into a key the round had already walked (between the cursor and that stop) was never
    // seen by the rest of the round, whose last claim answered "nothing due for an hour" (the
    // enqueue's own wake-up is such a claim). The round's last claim now says "again" (dueIn 0) if
    // the queue changed during the round, and the next starts a fresh round.
    it.live("a job enqueued into a key already walked in a round of cut claims is claimed before the round ends", () =>
      enqueuedDuringRound(cappedBeside(layer, 300)), { timeout: 60_000 })

    // Was a bug (same root as the enqueue above, fixed the same way): a key at its cap when a round
    // passed it, whose running job settled before the round's last claim, was not looked at again:
    // that claim was not capped (it did not see the key) and said "nothing for an hour".
    it.live("a key freed by a settle during a round of cut claims that had passed it at its cap is served before the round ends", () =>
      freedDuringRound(cappedBeside(layer, 300)), { timeout: 60_000 })

    // A change during a round of cut claims makes its last claim say "again" (see the two above):
    // writes of another instance to a queue its consumer does not run must not make it spin. On
    // Postgres it does not hear them (no claims); SQLite's watch hears every commit of the file, each
    // of which already wakes the idle consumer for a round: bounded, at most two rounds a write.
    it.live(`an idle consumer beside 300 delayed-only keys makes a bounded number of claims while another instance writes to another queue (${hearsAll ? "at most two rounds a write" : "none"})`, () =>
      Effect.gen(function*() {
        const instance = database()
        const { store } = yield* cappedBeside(instance, 300)
        const writer = Context.get(yield* Layer.build(instance()), JobStore.JobStore)
        const elsewhere = <A, E>(effect: Effect.Effect<A, E, JobStore.JobStore>) => Effect.provideService(effect, JobStore.JobStore, writer)
        const MINUTE = 60_000
        let claims = 0
        let idle = 0
        const counting: Store = {
          ...store,
          claim: (request) => Effect.andThen(Effect.sync(() => claims++), store.claim(request)),
          // a long wait (the poll, or the delayed jobs' time, an hour away): its round ended
          wait: (millis, since, idleOn, tasks) => Effect.andThen(Effect.sync(() => millis > MINUTE && idle++), store.wait(millis, since, idleOn, tasks))
        }
        yield* Effect.provideService(
          JobQueue.consume({ queues: ["default"], concurrency: 2, poll: "1 hour", handlers: [Task.handle(Echo, ({ n }) => Effect.succeed(n))] }),
          JobStore.JobStore,
          counting
        )
        /** Waits (for an event, at most 20 s) until `done`. */
        const until = (what: string, done: () => boolean) =>
          Effect.gen(function*() {
            for (let t = 0; !done(); t += 5) {
              assert.isBelow(t, 20_000, what)
              yield* Effect.sleep("5 millis")
            }
          })
        yield* until("the consumer's first round ends", () => idle > 0)
        const before = claims
        const writes = 8
        for (let write = 0; write < writes; write++) {
          const heard = yield* store.version
          const idleBefore = idle
          yield* elsewhere(JobQueue.enqueue(Echo, { n: write }, { queue: "other" }))
          if (!hearsAll) continue
          // heard (the watch), the consumer woke, claimed its rounds and sleeps again: no spin
          yield* until(`write ${write} heard`, () => Effect.runSync(store.version) > heard)
          yield* until(`the consumer's rounds after write ${write} end`, () => idle > idleBefore)
        }
        // 300 keys at 66 a claim of 2: a round of 5 claims; at most two rounds a write heard
        const perWrite = (claims - before) / writes
        assert.isAtMost(perWrite, hearsAll ? 10 : 0, `claims a write: ${perWrite}`)
        // still served at once: a job in a key after them all
        const job = yield* elsewhere(JobQueue.enqueue(Echo, { n: 1000 }, { group: "zz" }))
        assert.strictEqual(yield* Effect.timeout(elsewhere(JobQueue.await(Echo, job.id)), "30 seconds"), 1000)
      }).pipe(Effect.scoped), { timeout: 60_000 })

    // Was a bug (fixed): a delayed job whose time came between two claims of a round, in a key the
    // round walked, was neither claimed nor counted in the round's last dueIn (no longer delayed):
    // its consumer slept until the next poll. The round's last claim counts those due since it began.
    it.effect("a job of a walked key that becomes visible during a round of cut claims is claimed before the round ends", () =>
      Effect.gen(function*() {
        const { provide, store } = yield* cappedBeside(layer, 300)
        const job = yield* provide(JobQueue.enqueue(Echo, { n: 1000 }, { group: "k005a", delay: "10 seconds" }))
        const first = yield* claimOf(store)
        assert.deepStrictEqual([first.claims.length, first.dueIn], [0, 0], "cut short after k064")
        yield* TestClock.adjust("11 seconds")
        const { seen, taken } = yield* untilRoundEnds(claimOf(store), job.id)
        assert.isTrue(taken, `claims (taken/dueIn): ${seen.join(", ")}`)
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("two consumers of one store instance running different tasks: one's cut claims do not skip keys for the other", () =>
      Effect.gen(function*() {
        const { provide, store } = yield* cappedBeside(layer, 300)
        // a visible Echo job in k005a: walked by the Other consumer's first claim (it cannot take it)
        const job = yield* provide(JobQueue.enqueue(Echo, { n: 1000 }, { group: "k005a" }))
        const other = yield* claimOf(store, ["Other"])
        assert.deepStrictEqual([other.claims.length, other.dueIn], [0, 0], "the Other consumer's claim: cut short after k063")
        const { seen, taken } = yield* untilRoundEnds(claimOf(store), job.id)
        assert.isTrue(taken, `Echo claims (taken/dueIn): ${seen.join(", ")}`)
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("a consumer whose claims are cut short reaches a key past 300 delayed keys while another consumer's claims keep moving the cursor among a few keys before them", () =>
      Effect.gen(function*() {
        const { provide, store } = yield* cappedBeside(layer, 300)
        // keys a0-a9 of Other jobs before the delayed keys (k000-k299), an Echo job after them
        yield* provide(JobQueue.enqueueAll(Other, Array.from({ length: 200 }, (_, n) => ({ payload: { n }, options: { group: `a${n % 10}` } }))))
        const job = yield* provide(JobQueue.enqueue(Echo, { n: 1000 }, { group: "z" }))
        const seen: Array<string> = []
        for (let claims = 1; claims <= 20; claims++) {
          // the other consumer takes the next a-key's job and settles it: the cursor moves to that key
          const other = yield* claimOf(store, ["Other"])
          for (const { token } of other.claims) yield* store.settle(token, { _tag: "Final", state: "succeeded", exit: null })
          const mine = yield* claimOf(store)
          seen.push(`${mine.claims.length}/${mine.dueIn}`)
          if (mine.claims.some((c) => c.job.id === job.id)) return
        }
        assert.fail(`z never served; Echo claims (taken/dueIn): ${seen.join(", ")}`)
      }).pipe(Effect.scoped), { timeout: 60_000 })

    // Was a bug (fixed): an empty claim's stop was forgotten as soon as the stored cursor moved, so a
    // busy consumer whose cursor went between two hot keys at every claim made each of an idle
    // consumer's claims a fresh round of the budget's first keys after the cursor: a job of its task
    // further on was never claimed (30 of 30 claims). The round now goes on from its stop to the
    // cursor it began at.
    it.live("a job past the key budget is claimed while a busy consumer's claims move the cursor between two hot keys", () =>
      Effect.gen(function*() {
        const { provide, store } = yield* cappedBeside(layer, 200)
        for (const group of ["k000", "k100"]) {
          yield* provide(JobQueue.enqueueAll(Echo, Array.from({ length: 50 }, (_, n) => ({ payload: { n }, options: { group } }))))
        }
        const job = yield* provide(JobQueue.enqueue(Other, { n: 1000 }, { group: "k080" }))
        const running: Array<string> = []
        const seen: Array<string> = []
        for (let claims = 1; claims <= 20; claims++) {
          // the busy consumer takes the free hot key's job and keeps one running: the cursor goes to it
          const busy = yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 200, lease: 60_000 })
          running.push(...busy.claims.map((c) => c.token))
          while (running.length > 1) yield* store.settle(running.shift()!, { _tag: "Final", state: "succeeded", exit: null })
          const mine = yield* claimOf(store, ["Other"])
          seen.push(`${busy.claims.map((c) => c.job.group).join("+")} ${mine.claims.length}/${mine.dueIn}`)
          if (mine.claims.some((c) => c.job.id === job.id)) return
        }
        assert.fail(`k080 never served; busy keys, Other claims (taken/dueIn): ${seen.join(", ")}`)
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("fair claims over two capped queues take one job of each key of each in turn, and the next claim goes on with the keys after", () =>
      Effect.gen(function*() {
        const { provide, store } = yield* cappedBeside(layer, 0)
        yield* provide(JobQueue.setGroupConcurrency("other", 1))
        for (const queue of ["default", "other"]) {
          yield* provide(JobQueue.enqueueAll(Echo, Array.from({ length: 12 }, (_, n) => ({ payload: { n }, options: { queue, group: `${queue[0]}${n % 4}` } }))))
        }
        const claim = (limit: number) =>
          Effect.map(
            store.claim({ queues: ["default", "other"], tasks: ["Echo"], limit, lease: 60_000, fair: true }),
            (claimed) => claimed.claims.map((c) => `${c.job.queue}:${c.job.group}`).sort()
          )
        assert.deepStrictEqual(yield* claim(4), ["default:d0", "default:d1", "other:o0", "other:o1"])
        assert.deepStrictEqual(yield* claim(4), ["default:d2", "default:d3", "other:o2", "other:o3"])
        // every key at its cap
        assert.deepStrictEqual(yield* claim(4), [])
      }).pipe(Effect.scoped), { timeout: 60_000 })

    // a walk whose budget ran out on the queue's last key said it was cut short (it checked the budget
    // before looking for a next key), so a queue of exactly the budget's keys cost each round a second claim
    it.live("65 delayed keys, a claim of 1 (a budget of 65): the first claim sees them all and ends the round", () =>
      Effect.gen(function*() {
        const { store } = yield* cappedBeside(layer, 65)
        const claimed = yield* claimOf(store)
        assert.strictEqual(claimed.claims.length, 0)
        assert.isAbove(claimed.dueIn ?? 0, 3_000_000, "due in an hour, not 'claim again at once'")
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("keys that differ in case, accents, width or only past 255 characters are each their own key, each served once in a round of claims of 1", () =>
      Effect.gen(function*() {
        const { provide, store } = yield* cappedBeside(layer, 0)
        const keys = ["a", "A", "\u00e1", "a\u0301", "\uff41", "b", " b", "b ", "\u{1f600}", "x".repeat(255) + "1", "x".repeat(255) + "2"]
        for (const group of keys) yield* provide(JobQueue.enqueueAll(Echo, [{ payload: { n: 1 } }, { payload: { n: 2 } }], { group }))
        const served: Array<string> = []
        for (let n = 0; n < keys.length; n++) {
          const claimed = yield* claimOf(store)
          served.push(...claimed.claims.map((c) => c.job.group!))
        }
        assert.sameMembers(served, keys, "one job of each key, none twice")
        const held = yield* claimOf(store)
        assert.deepStrictEqual([held.claims.length, held.capped], [0, true], "every key at its cap")
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("the budget's edge: a key after 64 delayed keys is taken by the first claim of 1 (65 visits), after 65 by the second", () =>
      Effect.gen(function*() {
        for (const [count, expected] of [[64, ["1/undefined"]], [65, ["0/0", "1/undefined"]]] as Array<[number, Array<string>]>) {
          const { provide, store } = yield* cappedBeside(layer, count)
          const job = yield* provide(JobQueue.enqueue(Echo, { n: 1000 }, { group: "z" }))
          const { seen, taken } = yield* untilRoundEnds(claimOf(store), job.id)
          assert.isTrue(taken, `${count} keys: ${seen.join(", ")}`)
          assert.deepStrictEqual(seen, expected, `${count} keys`)
        }
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("100 keys at their cap beside 100 delayed keys: claims of 1 pass them in a round of two (running keys widen the budget), the last says capped, and a new key is served at once", () =>
      Effect.gen(function*() {
        const { provide, store } = yield* cappedBeside(layer, 100)
        yield* provide(JobQueue.enqueueAll(Echo, Array.from({ length: 200 }, (_, n) => ({ payload: { n }, options: { group: `r${String(n % 100).padStart(3, "0")}` } }))))
        const wide = yield* store.claim({ queues: ["default"], tasks: ["Echo"], limit: 150, lease: 60_000 })
        assert.strictEqual(wide.claims.length, 100, "one job of each of the 100 ready keys")
        assert.strictEqual(new Set(wide.claims.map((c) => c.job.group)).size, 100)
        // 200 keys, a budget of 1 + 100 + 64: a round of two claims, the last held back by the cap
        const first = yield* claimOf(store)
        assert.deepStrictEqual([first.claims.length, first.dueIn], [0, 0], "cut short after 165 keys")
        const full = yield* claimOf(store)
        assert.deepStrictEqual([full.claims.length, full.capped, full.dueIn === 0], [0, true, false], "every ready key at its cap: held back, the round ended")
        const job = yield* provide(JobQueue.enqueue(Echo, { n: 1000 }, { group: "s" }))
        const { seen, taken } = yield* untilRoundEnds(claimOf(store), job.id)
        assert.deepStrictEqual([taken, seen.length], [true, 1], seen.join(", "))
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.live("a per-key cap lowered below a key's running jobs holds the key, raised again gives it what is free, removed takes the rest", () =>
      Effect.gen(function*() {
        const { provide, store } = yield* cappedBeside(layer, 0)
        yield* provide(JobQueue.setGroupConcurrency("default", 3))
        yield* provide(JobQueue.enqueueAll(Echo, Array.from({ length: 8 }, (_, n) => ({ payload: { n }, options: { group: "a" } }))))
        const claim = store.claim({ queues: ["default"], tasks: ["Echo"], limit: 10, lease: 60_000 })
        assert.strictEqual((yield* claim).claims.length, 3)
        yield* provide(JobQueue.setGroupConcurrency("default", 1))
        const held = yield* claim
        assert.deepStrictEqual([held.claims.length, held.capped], [0, true])
        yield* provide(JobQueue.setGroupConcurrency("default", 5))
        assert.strictEqual((yield* claim).claims.length, 2, "5 - 3 running")
        yield* provide(JobQueue.setGroupConcurrency("default", undefined))
        assert.strictEqual((yield* claim).claims.length, 3, "no cap: the rest")
      }).pipe(Effect.scoped), { timeout: 60_000 })

    it.effect("an idle Echo consumer beside 300 keys of visible jobs of a task it does not run makes a few claims a round, not one a tick, and runs a key's job enqueued past them", () =>
      Effect.gen(function*() {
        const { provide, store } = yield* cappedBeside(layer, 0)
        yield* provide(JobQueue.enqueueAll(
          Other,
          Array.from({ length: 300 }, (_, n) => ({ payload: { n }, options: { group: `o${String(n).padStart(3, "0")}` } }))
        ))
        let claims = 0
        const counting: Store = { ...store, claim: (request) => Effect.andThen(Effect.sync(() => claims++), store.claim(request)) }
        const ran: Array<number> = []
        yield* Effect.provideService(
          JobQueue.consume({ queues: ["default"], concurrency: 2, poll: "1 hour", handlers: [Task.handle(Echo, ({ n }) => Effect.sync(() => ran.push(n)).pipe(Effect.as(n)))] }),
          JobStore.JobStore,
          counting
        )
        yield* tick(500, 10)
        const before = claims
        yield* tick(2_000, 10)
        assert.isAtMost(claims - before, 10, "idle: no spin over keys of another task")
        const job = yield* provide(JobQueue.enqueue(Echo, { n: 1000 }, { group: "zz" }))
        // its settle is written after the handler returns: wait for the state, not the run
        for (let t = 0; (yield* provide(JobQueue.status(job.id))).state !== "succeeded"; t += 10) {
          assert.isBelow(t, 5_000, "the Echo job ran")
          yield* tick(10, 10)
        }
        assert.deepStrictEqual(ran, [1000])
      }).pipe(Effect.scoped), { timeout: 60_000 })
  })
}

describe("groupRounds", () => {
  /** An empty claim of `queue` cut short at key "k": it leaves a stop. */
  const stopIn = (rounds: ReturnType<typeof groupRounds>, queue: string) => {
    const { phases: _, ...round } = rounds.round(queue, ["Echo"], null, 0, 0)
    rounds.settled(queue, ["Echo"], { ...round, cut: true, last: { phase: 0, key: "k" }, offered: 0 }, 0, undefined)
  }
  const resumed = (rounds: ReturnType<typeof groupRounds>, queue: string) => rounds.round(queue, ["Echo"], null, 0, 0).resumed

  // Was unbounded: a stop of a queue whose consumers stopped, or that was purged, stayed for the
  // process's life (per-tenant queues times task sets).
  it("keeps at most its bound of stops, the oldest stored dropped", () => {
    const rounds = groupRounds(() => false, 3)
    for (const queue of ["a", "b", "c"]) stopIn(rounds, queue)
    // a's stop stored again: now the newest
    stopIn(rounds, "a")
    stopIn(rounds, "d")
    assert.deepStrictEqual(["a", "b", "c", "d"].map((queue) => resumed(rounds, queue)), [true, false, true, true])
  })

  it("keeps 1,024 stops by default", () => {
    const rounds = groupRounds(() => false)
    for (let n = 0; n <= 1024; n++) stopIn(rounds, `q${n}`)
    assert.deepStrictEqual([resumed(rounds, "q0"), resumed(rounds, "q1"), resumed(rounds, "q1024")], [false, true, true])
  })
})
