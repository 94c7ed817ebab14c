/**
 * Hostile tests of what a clock decides: a job's time (`runAt`, `delay`) against its queue's order,
 * and the timers a store's own options set. On every store where the store matters (memory, an
 * SQLite file, Postgres, Redis), on the live clock: nothing here waits for time to pass.
 */
import { assert, describe, it } from "@effect/vitest"
import { type Clock, Cron, Effect, Exit, Layer } from "effect"
import { TestClock } from "effect/testing"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as RedisJobStore from "../src/RedisJobStore.ts"
import * as ServerTime from "../src/internal/store/serverTime.ts"
import { Echo } from "./durable/conformance.ts"
import * as Pg from "./durable/postgres.ts"
import * as Rd from "./durable/redis.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wp-clocks-hostile-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))
let files = 0

const stores: ReadonlyArray<readonly [string, boolean, () => Layer.Layer<JobStore.JobStore, unknown>]> = [
  ["memory", true, () => JobStore.memory()],
  ["sqlite", true, () => JobStore.sqlite({ filename: path.join(dir, `f${files++}.db`) })],
  ["postgres", Pg.enabled, () => Pg.testLayer()],
  ["redis", Rd.enabled, () => Rd.testLayer()]
]

describe.each(stores)("a runAt in the past, on a queue with aging (%s)", (_name, enabled, layer) => {
  // aging counts a job's waiting in its queue (WorkPool's rule: from its submission, a delayed one
  // from when it is due). A runAt an hour ago made the job's key an hour old as it was enqueued: it
  // passed 3,600 priority levels at once (`new Date(0)`, "at once", passed every priority there is)
  it.live.skipIf(!enabled)("ranks as a job entering the queue now: it passes no higher priority it did not wait for", () =>
    Effect.gen(function*() {
      const store = yield* JobStore.JobStore
      yield* JobQueue.setAging("aged", "1 second")
      const urgent = yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "aged", priority: 5 })
      const overdue = yield* JobQueue.enqueue(Echo, { n: 2 }, { queue: "aged", runAt: new Date(Date.now() - 3_600_000) })
      const epoch = yield* JobQueue.enqueue(Echo, { n: 3 }, { queue: "aged", runAt: new Date(0) })
      // enqueueAll's statements rank as enqueue's
      const [batched] = yield* JobQueue.enqueueAll(Echo, [{ payload: { n: 4 }, options: { queue: "aged", runAt: new Date(0) } }])
      const { claims } = yield* store.claim({ queues: ["aged"], tasks: ["Echo"], limit: 4, lease: 30_000 })
      assert.deepStrictEqual(claims.map((claim) => claim.job.id), [urgent.id, overdue.id, epoch.id, batched!.id])
      // and it is still due as asked: claimed at once, its time kept
      assert.strictEqual((yield* JobQueue.status(epoch.id)).visibleAt.getTime(), 0)
    }).pipe(Effect.provide(layer())), 60_000)
})

describe("a store's connectTimeout past a Node timer's longest (2^31 - 1 ms, about 24.8 days)", () => {
  // Node fires a timer longer than that after 1 ms (a TimeoutOverflowWarning): the store's open
  // failed at once, "no answer within 2592000000 ms of connecting (the server frozen?)", on a live server
  it.live.skipIf(!Rd.enabled)("Redis: refused as an option naming it, not a failed connection (30 days)", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Effect.scoped(Layer.build(
        RedisJobStore.layer({ url: Rd.url!, prefix: Rd.freshPrefix(), connectTimeout: "30 days" })
      )))
      assert(Exit.isFailure(exit))
      const error = Exit.findErrorOption(exit)
      assert(error._tag === "Some")
      assert.match(error.value.message, /invalid store option connectTimeout: expected at most 2147483647 ms/)
      // the longest a timer keeps opens as any other
      yield* Effect.scoped(Layer.build(RedisJobStore.layer({ url: Rd.url!, prefix: Rd.freshPrefix(), connectTimeout: 2 ** 31 - 1 })))
    }), 60_000)
})

describe("the stores' server time (Postgres, Redis) when this machine's clock is stepped", () => {
  /** This machine's wall clock and its monotonic one (ms), apart: a step moves only the wall clock. */
  const machine = () => {
    const state = { wall: 10_000_000, mono: 0 }
    const clock = {
      currentTimeMillisUnsafe: () => state.wall,
      monotonicTimeNanosUnsafe: () => BigInt(state.mono) * 1_000_000n
    } as unknown as Clock.Clock
    return { clock, state }
  }

  // the store's time was this machine's clock plus the offset of the last answers, so the first
  // reads after a step (until a background ask came back) were off by the step: a repeat that
  // slept until its tick across NTP's step back of an hour read its tick as an hour ahead, slept an
  // hour more and then skipped the hour's ticks; across a step forward it skipped the step's ticks
  // at once (and, alone, never enqueued them)
  for (const step of [-3_600_000, 3_600_000, -5000]) {
    it.effect(`stepped ${step} ms while a reader slept: its first read is the server's time, not off by the step`, () =>
      Effect.gen(function*() {
        const { clock, state } = machine()
        let server = 10_000_000
        const time = ServerTime.make(clock, Effect.sync(() => server))
        yield* time.refresh
        // a minute passes (the reader asleep until its tick), the clock stepped meanwhile
        state.wall += 60_000 + step
        state.mono += 60_000
        server += 60_000
        const now = yield* time.now
        assert(now >= server && now <= server + 2, `the store's time ${now - server} ms off the server's`)
        assert.strictEqual(time.nowUnsafe(), now)
        // and after the answer, still the server's
        yield* Effect.yieldNow
        state.wall += 10
        state.mono += 10
        server += 10
        const later = yield* time.now
        assert(later >= server && later <= server + 2, `the store's time ${later - server} ms off the server's`)
      }))
  }

  /**
   * This machine's three clocks (ms): wall, monotonic (CLOCK_MONOTONIC: stopped while the machine is
   * suspended) and since boot (CLOCK_BOOTTIME, /proc/uptime: counting a suspend, read to 10 ms).
   */
  const suspendable = () => {
    const { clock, state } = machine()
    const boot = { ms: 50_000 }
    return { clock, state, boot, sinceBoot: () => Math.floor(boot.ms / 10) * 10 }
  }
  /** `make` with this machine's time since boot: a 2-argument `make` ignores it. */
  const makeBooted: (
    clock: Clock.Clock,
    ask: Effect.Effect<number>,
    options: { readonly sinceBoot: () => number }
  ) => ServerTime.ServerTime = ServerTime.make

  // a VM paused or a laptop asleep: the monotonic clock stops, the wall clock and the server's go on.
  // Read against the monotonic clock alone that is a step forward, and the store's time was held at
  // the time of the suspend until an answer came (a connection dead after a night asleep: 5 s, or
  // for as long as the server is out of reach): a repeat woken across an hour's suspend read its
  // tick as now, enqueued it and slept an hour more before the hour's ticks
  for (const suspended of [3_600_000, 60_000]) {
    it.effect(`suspended ${suspended} ms (monotonic clock stopped): the first read after it is the server's time`, () =>
      Effect.gen(function*() {
        const { boot, clock, sinceBoot, state } = suspendable()
        let server = 10_000_000
        const time = makeBooted(clock, Effect.sync(() => server), { sinceBoot })
        yield* time.refresh
        state.wall += 5_000 + suspended
        state.mono += 5_000
        boot.ms += 5_000 + suspended
        server += 5_000 + suspended
        const now = time.nowUnsafe()
        assert(now >= server && now <= server + 2, `the store's time ${now - server} ms off the server's`)
        // and a step back meanwhile is still seen (against the time since boot, read to 10 ms; one
        // that cancels the suspend to the ms is not: the monotonic clock alone shows nothing then)
        state.wall -= 25_000
        const stepped = time.nowUnsafe()
        assert(stepped >= server && stepped <= server + 12, `stepped back too: ${stepped - server} ms off the server's`)
      }))
  }

  // the time since boot is a file read (/proc/uptime: 50 µs on a busy VM): read at every read of the
  // store's time after a suspend, for as long as no answer came (the server out of reach)
  it.effect("after a suspend, the time since boot is read once until the next answer, not at every read", () =>
    Effect.gen(function*() {
      const { boot, clock, sinceBoot, state } = suspendable()
      let reads = 0
      const answered = makeBooted(clock, Effect.sync(() => state.wall), { sinceBoot: () => (reads++, sinceBoot()) })
      yield* answered.refresh
      reads = 0
      state.wall += 60_000
      boot.ms += 60_000
      for (let i = 0; i < 100; i++) {
        state.wall += 1
        state.mono += 1
        boot.ms += 1
        const off = answered.nowUnsafe() - state.wall
        assert(off >= 0 && off <= 2, `the store's time ${off} ms off the server's`)
      }
      assert.strictEqual(reads, 1)
    }))

  // /proc/uptime unreadable (a sandbox): NaN, which every comparison with it calls false; read as
  // "suspended", a step back of an hour was no longer seen
  it.effect("the time since boot unread (NaN): a step is still seen as one", () =>
    Effect.gen(function*() {
      const { clock, state } = suspendable()
      let server = 10_000_000
      const time = makeBooted(clock, Effect.sync(() => server), { sinceBoot: () => Number.NaN })
      yield* time.refresh
      state.wall += 60_000 - 3_600_000
      state.mono += 60_000
      server += 60_000
      const now = time.nowUnsafe()
      assert(now >= server && now <= server + 2, `the store's time ${now - server} ms off the server's`)
    }))

  // a quick answer after a slow one narrows the offset at once: the store's time stepped back by the
  // slow answer's excess way (tens of ms under a busy event loop), and two reads a moment apart,
  // with no clock stepped, went back in time (a lease read across it looked longer, a tick early)
  it.effect("two reads with no clock stepped never go back, across an answer that narrows the offset: held still, then the server's again", () =>
    Effect.gen(function*() {
      const { clock, state } = machine()
      let server = 10_000_000
      let way = 40
      const time = ServerTime.make(clock, Effect.sync(() => {
        // the server reads its clock halfway
        const read = server + way / 2
        state.wall += way
        state.mono += way
        server += way
        return read
      }))
      yield* time.refresh
      state.wall += 1_000
      state.mono += 1_000
      server += 1_000
      way = 0
      const before = time.nowUnsafe()
      assert(before > server + 2, `the slow answer's offset is ahead: ${before - server} ms`)
      yield* time.refresh
      let previous = before
      for (let i = 0; i < 30; i++) {
        const now = time.nowUnsafe()
        assert(now >= previous, `the store's time went back ${previous - now} ms`)
        assert(now >= server, `the store's time ${server - now} ms behind the server's`)
        previous = now
        state.wall += 1
        state.mono += 1
        server += 1
      }
      // caught up: the narrowed offset's time, going on with the server's
      const now = time.nowUnsafe()
      assert(now >= server && now <= server + 1, `the store's time ${now - server} ms off the server's`)
    }))

  // held still instead, a step back of the server's own clock (NTP's, past its 128 ms) held the
  // store's time for as long as the step: followed at the first answer that shows it
  for (const step of [200, 3_600_000]) {
    it.effect(`the server's clock stepped ${step} ms back: followed at the next answer, not held`, () =>
      Effect.gen(function*() {
        const { clock, state } = machine()
        let server = 10_000_000
        const time = ServerTime.make(clock, Effect.sync(() => server))
        yield* time.refresh
        state.wall += 1_000
        state.mono += 1_000
        server += 1_000
        // the offset's highest: 1 ms ahead for the clocks' rounding
        assert.strictEqual(time.nowUnsafe(), server + 1)
        server -= step
        yield* time.refresh
        const now = time.nowUnsafe()
        assert(now >= server && now <= server + 1, `the store's time ${now - server} ms off the server's`)
      }))
  }

  // ... where no answer shows it (this machine's clock stepped too between the two answers: their
  // offsets are of different clocks), held at most ServerTime.HOLD_BOUND: never behind the server's
  it.effect("the server's clock stepped back while this machine's was stepped: held within HOLD_BOUND (a second), followed past it", () =>
    Effect.gen(function*() {
      for (const step of [500, 3_600_000]) {
        const { clock, state } = machine()
        let server = 10_000_000
        const time = ServerTime.make(clock, Effect.sync(() => server))
        yield* time.refresh
        state.wall += 1_000 + 60_000
        state.mono += 1_000
        server += 1_000
        const before = time.nowUnsafe()
        assert.strictEqual(before, server + 1)
        server -= step
        yield* time.refresh
        const now = time.nowUnsafe()
        // within the bound: held where it was (ahead by the step, never behind); past it, followed
        assert.strictEqual(now - server, step < ServerTime.NOW_REFRESH ? step + 1 : 1)
      }
    }))

  // the question was sent before a step of this machine's clock and answered after it: the answer's
  // offset (the server's time less the question's, on the clock before the step) was kept with the
  // skew after it, so the reads until the next answer (a second at least) were off by the step: an
  // hour ahead across NTP's step forward of an hour (every lease read as long expired, a repeat's
  // ticks of the hour skipped)
  for (const step of [3_600_000, -3_600_000, 5_000]) {
    it.effect(`stepped ${step} ms while a question was in flight: the reads after its answer are the server's time`, () =>
      Effect.gen(function*() {
        const { clock, state } = machine()
        let server = 10_000_000
        let during = () => {}
        const time = ServerTime.make(clock, Effect.sync(() => {
          during()
          return server
        }))
        yield* time.refresh
        // the next question goes out after a second; the clock is stepped before its answer
        state.wall += 1_000
        state.mono += 1_000
        server += 1_000
        during = () => {
          state.wall += 3 + step
          state.mono += 3
          server += 3
        }
        yield* time.now
        yield* Effect.yieldNow
        during = () => {}
        const after = time.nowUnsafe()
        assert(after >= server && after <= server + 4, `the store's time ${after - server} ms off the server's`)
      }))
  }

  // and the way there and back is not taken from the monotonic clock alone: suspended while the
  // question was in flight, the server's clock went on through the suspend
  it.effect("suspended an hour while a question was in flight: the reads after its answer are the server's time", () =>
    Effect.gen(function*() {
      const { boot, clock, sinceBoot, state } = suspendable()
      let server = 10_000_000
      let during = () => server
      const time = makeBooted(clock, Effect.sync(() => during()), { sinceBoot })
      yield* time.refresh
      state.wall += 1_000
      state.mono += 1_000
      boot.ms += 1_000
      server += 1_000
      during = () => {
        // the server reads its clock 1 ms after the question, the machine then sleeps an hour
        const read = server + 1
        state.wall += 3 + 3_600_000
        state.mono += 3
        boot.ms += 3 + 3_600_000
        server += 3 + 3_600_000
        return read
      }
      yield* time.now
      yield* Effect.yieldNow
      during = () => server
      const after = time.nowUnsafe()
      assert(after >= server && after <= server + 25, `the store's time ${after - server} ms off the server's`)
    }))
})

const ticksOf = (name: string) =>
  Effect.map(JobQueue.list({ queue: "ticks", limit: 100_000 }), (jobs) =>
    jobs.filter((job) => job.id.startsWith(`repeat:${name}:`)).map((job) => Number(job.id.slice(`repeat:${name}:`.length))).sort((a, b) => a - b))

describe("a repeat's cron", () => {
  // cron-parser (BullMQ's, pg-boss') and Vixie cron read @daily, @hourly, ...; Effect's Cron does
  // not, and its error ("Invalid number of segments") did not say why a schedule that works there failed
  it.effect("a macro (@daily, @yearly, @reboot) is refused naming it and what to write instead", () =>
    Effect.gen(function*() {
      for (const [macro, instead] of [["@daily", "0 0 * * *"], ["@yearly", "0 0 1 1 *"], ["@annually", "0 0 1 1 *"], ["@hourly", "0 * * * *"]]) {
        const error = yield* Effect.flip(JobQueue.repeat("m", Echo, { n: 1 }, { cron: macro! }))
        assert(error._tag === "InvalidJobOptions")
        assert.strictEqual(error.field, "cron")
        assert.include(error.reason, `macros such as @daily are not read: write "${instead}"`)
      }
      const reboot = yield* Effect.flip(JobQueue.repeat("m", Echo, { n: 1 }, { cron: "@reboot" }))
      assert(reboot._tag === "InvalidJobOptions")
      assert.include(reboot.reason, "macros such as @daily are not read")
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory())))

  // BullMQ's repeat options (every, pattern, tz), pg-boss' (tz), read as any unknown key: "expected
  // only cron, catchUp, ..." said neither that a repeat is a cron schedule nor how to give it a zone
  it.effect("another queue's repeat option (every, pattern, tz) is refused naming what to write instead", () =>
    Effect.gen(function*() {
      for (const [key, value, instead] of [
        ["every", 30_000, `cron: a schedule of times, such as "*/30 * * * * *"`],
        ["pattern", "0 0 * * *", "cron"],
        ["tz", "Europe/Paris", `cron: a Cron read in its zone, Cron.parseUnsafe("0 3 * * *", "Europe/Paris")`]
      ] as const) {
        const error = yield* Effect.flip(JobQueue.repeat("o", Echo, { n: 1 }, { cron: "* * * * *", [key]: value } as JobQueue.RepeatOptions))
        assert(error._tag === "InvalidJobOptions")
        assert.strictEqual(error.field, key)
        assert.include(error.reason, `(use ${instead})`)
      }
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory())))

  // a tick's enqueue carries its deadline, catchUp after it, which Postgres keeps as a bigint: past
  // 2^63 ms every enqueue failed ("bigint out of range") and was retried until that deadline, so the
  // schedule never stored a job, only warnings
  it.effect("a catchUp too large for a store (1e19 ms) is refused naming it; Infinity (none skipped) and 1e15 are taken", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(JobQueue.repeat("c", Echo, { n: 1 }, { cron: "* * * * *", catchUp: 1e19 }))
      assert(error._tag === "InvalidJobOptions")
      assert.strictEqual(error.field, "catchUp")
      assert.include(error.reason, "at most 1000000000000000 milliseconds")
      yield* JobQueue.repeat("c", Echo, { n: 1 }, { cron: "* * * * *", catchUp: Infinity })
      yield* JobQueue.repeat("d", Echo, { n: 1 }, { cron: "* * * * *", catchUp: 1e15 })
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory())))

  // what docs/durable.md says of the spring-forward hour (America/New_York, 2026-03-08: 02:00 to
  // 03:00 does not exist): a tick in it comes once, at the first time after it
  it.effect("across the spring-forward gap a daily 02:30 runs once, at 03:30; an every-30-minutes one goes 01:30, 03:00 without a duplicate", () =>
    Effect.gen(function*() {
      const across = (cron: Cron.Cron) =>
        Effect.gen(function*() {
          yield* TestClock.setTime(Date.parse("2026-03-08T05:10:00Z"))
          yield* JobQueue.repeat("gap", Echo, { n: 1 }, { cron, queue: "ticks" })
          for (let t = 0; t < 4 * 60; t++) {
            yield* TestClock.adjust(60_000)
            for (let i = 0; i < 20; i++) yield* Effect.yieldNow
          }
          return (yield* ticksOf("gap")).map((at) => new Date(at).toISOString().slice(11, 16))
        }).pipe(Effect.scoped, Effect.provide(JobStore.memory()))
      assert.deepStrictEqual(yield* across(Cron.parseUnsafe("30 2 * * *", "America/New_York")), ["07:30"])
      assert.deepStrictEqual(yield* across(Cron.parseUnsafe("*/30 * * * *", "America/New_York")), ["05:30", "06:00", "06:30", "07:00", "07:30", "08:00", "08:30", "09:00"])
    }))
})
