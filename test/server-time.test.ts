/**
 * A store's time (src/internal/store/serverTime.ts): this machine's clock plus the offset last seen,
 * refreshed in the background.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import * as ServerTime from "../src/internal/store/serverTime.ts"

describe("ServerTime", () => {
  it.effect("an ask the server never answers (a dead connection) does not stop later refreshes: it is given up after ASK_BOUND", () =>
    Effect.gen(function*() {
      const clock = yield* Clock.Clock
      let asks = 0
      // the first ask hangs for ever, each later one answers the server's time: this machine's + 500
      const ask = Effect.suspend(() =>
        ++asks === 1 ? Effect.never : Effect.sync(() => clock.currentTimeMillisUnsafe() + 500)
      )
      const time = ServerTime.make(clock, ask)
      yield* TestClock.adjust(ServerTime.NOW_REFRESH)
      yield* time.now
      yield* Effect.yieldNow
      assert.strictEqual(asks, 1)
      // still asking: no second ask while the first is unanswered
      yield* TestClock.adjust(ServerTime.NOW_REFRESH)
      yield* time.now
      assert.strictEqual(asks, 1)
      yield* TestClock.adjust(ServerTime.ASK_BOUND)
      yield* time.now
      yield* Effect.yieldNow
      assert.strictEqual(asks, 2, "a refresh after the unanswered one was given up")
      const now = yield* time.now
      assert.isAtLeast(now - clock.currentTimeMillisUnsafe(), 500, "the offset of the answer")
    }))
})

/**
 * The stores' time (`serverTime.ts`, Redis's and Postgres's): this machine's clock plus the offset
 * last seen. This machine's clock can be stepped (NTP, a VM resumed, an operator's `date -s`).
 */
describe("the stores' server time, hostile", () => {
  // its monotonic clock moves with it: a step of it is not seen so (what these tests guard)
  const ticking = (local: { value: number }) =>
    ({ currentTimeMillisUnsafe: () => local.value, monotonicTimeNanosUnsafe: () => BigInt(local.value) * 1_000_000n }) as unknown as Clock.Clock
  /** Three refreshes' worth of both clocks going on (`tick` moves the server's, returning it): the store's time is then the server's. */
  const followsWithinRefreshes = (time: ServerTime.ServerTime, local: { value: number }, tick: () => number) =>
    Effect.gen(function*() {
      let server = 0
      for (let i = 0; i < 3; i++) {
        local.value += ServerTime.NOW_REFRESH + 1
        server = tick()
        yield* time.now
        for (let y = 0; y < 5; y++) yield* Effect.yieldNow
      }
      const now = yield* time.now
      assert.isBelow(Math.abs(now - server), 10, `the store's time ${now}, the server's ${server}`)
    })

  it.effect("a read of the store's time interrupted as it starts a refresh (a heartbeat stopped, a caller's timeout) does not stop every later refresh", () =>
    Effect.gen(function*() {
      const local = { value: 10_000_000 }
      let server = 10_000_000
      let onRead: (() => void) | undefined
      const clock = {
        currentTimeMillisUnsafe: () => (onRead?.(), local.value),
        monotonicTimeNanosUnsafe: () => BigInt(local.value) * 1_000_000n
      } as unknown as Clock.Clock
      const time = ServerTime.make(clock, Effect.sync(() => server))
      yield* time.refresh
      local.value += ServerTime.NOW_REFRESH + 1
      server += ServerTime.NOW_REFRESH + 1
      // the reader is interrupted while it reads the clock, just before it would start the refresh
      const reader = yield* Effect.forkChild(Effect.andThen(Effect.yieldNow, time.now), { startImmediately: false })
      onRead = () => {
        onRead = undefined
        reader.interruptUnsafe()
      }
      yield* Fiber.await(reader)
      // the server's clock jumps an hour on; later reads must follow within a refresh or two
      server += 3_600_000
      yield* followsWithinRefreshes(time, local, () => (server += ServerTime.NOW_REFRESH + 1))
    }))

  it.effect("this machine's clock stepped back an hour: the store's time is the server's again within a refresh, not an hour behind for an hour (a delayed job's wake-up, a lease's loss read on it)", () =>
    Effect.gen(function*() {
      const local = { value: 10_000_000 }
      let server = 10_000_000
      const time = ServerTime.make(ticking(local), Effect.sync(() => server))
      yield* time.refresh
      // the local clock is stepped back an hour; the server's goes on
      local.value -= 3_600_000
      yield* followsWithinRefreshes(time, local, () => (server += ServerTime.NOW_REFRESH + 1))
    }))
})

/**
 * The offset from the server's answers: the server read its clock between a question and its answer,
 * so each answer bounds the offset; the store's time takes the highest the last answers allow together
 * (it never lags the server's). From the last answer alone it ran ahead by that question's way there:
 * a question that waits its turn (a busy event loop before its write, a busy server) put the store's
 * time ahead by that wait for a refresh.
 */
describe("the stores' server time, from several answers", () => {
  const OFFSET = 5000
  /**
   * This machine's clock, and the server's OFFSET ahead of it (plus `step`); an ask takes `there` ms
   * to reach the server, which reads its clock then, and `back` ms to come back.
   */
  const machine = () => {
    const state = { local: 10_000_000, step: 0, there: 1, back: 1 }
    const clock = { currentTimeMillisUnsafe: () => state.local, monotonicTimeNanosUnsafe: () => BigInt(state.local) * 1_000_000n } as unknown as Clock.Clock
    const ask = Effect.sync(() => {
      state.local += state.there
      const server = state.local + OFFSET + state.step
      state.local += state.back
      return server
    })
    /** The store's time less the server's now. */
    const error = (time: ServerTime.ServerTime) => time.nowUnsafe() - (state.local + OFFSET + state.step)
    /** A refresh's time on, then a read of the store's time, which asks in the background. */
    const refreshed = (time: ServerTime.ServerTime) =>
      Effect.gen(function*() {
        state.local += ServerTime.NOW_REFRESH + 1
        yield* time.now
        for (let y = 0; y < 5; y++) yield* Effect.yieldNow
      })
    return { state, clock, ask, error, refreshed }
  }

  it.effect("a question that reached the server 300 ms late (a busy loop before its write, a busy server): the store's time stays within the quickest recent answer's bound, not 300 ms ahead for a refresh", () =>
    Effect.gen(function*() {
      const { ask, clock, error, refreshed, state } = machine()
      const time = ServerTime.make(clock, ask)
      yield* time.refresh
      yield* refreshed(time)
      assert.isAtLeast(error(time), 0, "never behind the server")
      assert.isAtMost(error(time), 2)
      state.there = 300
      yield* refreshed(time)
      assert.isAtLeast(error(time), 0, "never behind the server")
      assert.isAtMost(error(time), 2, `the store's time ${error(time)} ms ahead of the server's`)
      // every question slow: still the quick ones' bound, while they are recent
      for (let i = 0; i < ServerTime.FILTER_SIZE - 3; i++) yield* refreshed(time)
      assert.isAtMost(error(time), 2, `the store's time ${error(time)} ms ahead of the server's`)
      // past them, the slow answers' own bound: ahead (by a question's way there), never behind
      for (let i = 0; i < ServerTime.FILTER_SIZE; i++) yield* refreshed(time)
      assert.isAtLeast(error(time), 0, "never behind the server")
      assert.isAtMost(error(time), 301)
    }))

  it.effect("the server's clock stepped a second on, then two back: each step is followed at the next refresh (the answers before it, of another offset, are dropped), the store's time never behind the server's", () =>
    Effect.gen(function*() {
      const { clock, ask, error, refreshed, state } = machine()
      const time = ServerTime.make(clock, ask)
      yield* time.refresh
      for (let i = 0; i < 3; i++) yield* refreshed(time)
      for (const step of [1000, -1000, 0]) {
        state.step = step
        yield* refreshed(time)
        assert.isAtLeast(error(time), 0, `stepped to ${step}: never behind the server`)
        assert.isAtMost(error(time), 2, `stepped to ${step}: the store's time ${error(time)} ms ahead`)
      }
    }))

  it.effect("a server clock slewed 6 ms while the store's time was not read for a minute: the answers from before do not hold it behind the server's", () =>
    Effect.gen(function*() {
      const { clock, ask, error, refreshed, state } = machine()
      const time = ServerTime.make(clock, ask)
      // answers that allowed up to OFFSET + 5 ms
      state.there = 4
      state.back = 10
      yield* time.refresh
      state.local += 60_000
      state.step = 6
      state.there = 1
      yield* refreshed(time)
      assert.isAtLeast(error(time), 0, "never behind the server")
    }))
})

/**
 * This machine's clock stepped by less than a slow answer's range (NTP steps past 128 ms; a busy
 * event loop reads the answer late): the older, tighter answers still overlap the new one, and held
 * the store's time behind the server's by the step, for as long as they were kept (8 s).
 */
describe("the stores' server time, this machine's clock stepped a little", () => {
  it.effect("this machine's clock stepped 50 ms back while answers are read 60 ms late: the store's time is never behind the server's", () =>
    Effect.gen(function*() {
      const OFFSET = 5000
      // the wall clock (stepped) and the monotonic one (never stepped)
      const state = { local: 10_000_000, mono: 1_000, there: 1, back: 1 }
      const advance = (ms: number) => {
        state.local += ms
        state.mono += ms
      }
      const clock = {
        currentTimeMillisUnsafe: () => state.local,
        monotonicTimeNanosUnsafe: () => BigInt(state.mono) * 1_000_000n
      } as unknown as Clock.Clock
      // the server's clock: the wall clock's before any step, plus OFFSET
      let stepped = 0
      const serverNow = () => state.local + stepped + OFFSET
      const ask = Effect.sync(() => {
        advance(state.there)
        const server = serverNow()
        advance(state.back)
        return server
      })
      const time = ServerTime.make(clock, ask)
      yield* time.refresh
      for (let i = 0; i < 3; i++) {
        advance(ServerTime.NOW_REFRESH + 1)
        yield* time.now
        for (let y = 0; y < 5; y++) yield* Effect.yieldNow
      }
      assert.isAtLeast(time.nowUnsafe() - serverNow(), 0)
      // stepped back 50 ms; from now on each answer is read 60 ms after the server read its clock
      state.local -= 50
      stepped += 50
      state.back = 60
      for (let i = 0; i < 3; i++) {
        // a refresh's time on by this machine's clock too
        advance(ServerTime.NOW_REFRESH + 51)
        yield* time.now
        for (let y = 0; y < 5; y++) yield* Effect.yieldNow
        assert.isAtLeast(time.nowUnsafe() - serverNow(), 0, `refresh ${i} after the step: the store's time behind the server's`)
      }
    }))
})
