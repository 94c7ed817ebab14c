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
  const ticking = (local: { value: number }) => ({ currentTimeMillisUnsafe: () => local.value }) as unknown as Clock.Clock
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
      const clock = { currentTimeMillisUnsafe: () => (onRead?.(), local.value) } as unknown as Clock.Clock
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
