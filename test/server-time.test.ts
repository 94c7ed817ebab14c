/**
 * A store's time (src/internal/store/serverTime.ts): this machine's clock plus the offset last seen,
 * refreshed in the background.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect } from "effect"
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
