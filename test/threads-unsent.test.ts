/**
 * Messages that cannot be cloned, on the paths where one function per thread (the main thread's
 * `Thread.unsent`) or per worker (ThreadWorker's `unsent`) answers for every message rather than a
 * closure per task: an offered task's payload, and a task's failure.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import type { PoolError } from "../src/index.ts"
import { Echo, Passthrough, Sleep, UncloneableFailure } from "./fixtures/tasks.ts"
import { makePool } from "./fixtures/pool.ts"

describe("ThreadPool: messages that cannot be cloned", () => {
  it.live("an offered task whose payload cannot be cloned fails with TaskCodecError; the thread and its other offers go on", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1, timeout: "5 seconds" })
      // the thread is busy, so the tasks behind are offered to it ahead (see prefetch.ts)
      const busy = yield* pool.submit(Sleep, { millis: 300, mark: 0 })
      const before = yield* pool.submit(Echo, "before")
      const bad = yield* pool.submit(Passthrough, { value: () => 1, ok: true })
      const after = yield* pool.submit(Echo, "after")
      assert.strictEqual(yield* busy.await, 300)
      assert.strictEqual(yield* before.await, "echo before")
      const error = yield* Effect.flip(bad.await)
      assert.strictEqual(error._tag, "TaskCodecError")
      assert.strictEqual((error as PoolError.TaskCodecError).part, "payload")
      assert.strictEqual(yield* after.await, "echo after")
      const stats = yield* pool.stats
      assert.strictEqual(stats.failed, 1)
      assert.strictEqual(stats.succeeded, 3)
    }))

  it.live("a failure that cannot be cloned fails its task with TaskCodecError (part failure), offered or not", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1, timeout: "5 seconds" })
      const first = (yield* Effect.flip(pool.run(UncloneableFailure, 1))) as PoolError.TaskCodecError
      assert.strictEqual(first._tag, "TaskCodecError")
      assert.strictEqual(first.part, "failure")
      // several at once: all but the first wait as offers, and their answers travel together
      const handles = yield* Effect.forEach([1, 2, 3, 4], (i) => pool.submit(UncloneableFailure, i))
      for (const handle of handles) {
        const error = (yield* Effect.flip(handle.await)) as PoolError.TaskCodecError
        assert.strictEqual(error._tag, "TaskCodecError")
        assert.strictEqual(error.part, "failure")
      }
      assert.strictEqual(yield* pool.run(Echo, "after"), "echo after")
    }))
})
