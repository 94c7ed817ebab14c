import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber } from "effect"
import { PoolError, WorkPool } from "../src/index.ts"
import { settle } from "./helpers.ts"

/** A pool of one worker, blocked by a job that waits for `gate`. */
const blockedPool = (options: Omit<WorkPool.Options, "concurrency">) =>
  Effect.gen(function*() {
    const pool = yield* WorkPool.make({ concurrency: 1, ...options })
    const gate = yield* Deferred.make<void>()
    const blocker = yield* Effect.forkChild(pool.run(Deferred.await(gate)))
    yield* settle
    return { pool, open: Effect.andThen(Deferred.succeed(gate, undefined), Fiber.join(blocker)) }
  })

describe("overflow", () => {
  it.effect("suspend (default): the submitter waits for room, then its job runs", () =>
    Effect.gen(function*() {
      const { open, pool } = yield* blockedPool({ capacity: 2 })
      const queued = yield* Effect.forkChild(pool.runAll([Effect.succeed(1), Effect.succeed(2)]))
      yield* settle
      const third = yield* Effect.forkChild(pool.submit(Effect.succeed(3)))
      yield* settle
      assert.isUndefined(third.pollUnsafe(), "submit is suspended while the queue is full")
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.queued, stats.waiting], [2, 1])
      yield* open
      const handle = yield* Fiber.join(third)
      assert.strictEqual(yield* handle.await, 3)
      assert.deepStrictEqual(yield* Fiber.join(queued), [1, 2])
    }))

  it.effect("suspend: an interrupted waiting submitter leaves nothing behind", () =>
    Effect.gen(function*() {
      const { open, pool } = yield* blockedPool({ capacity: 1 })
      yield* Effect.forkChild(pool.run(Effect.succeed("queued")))
      yield* settle
      const waiting = yield* Effect.forkChild(pool.run(Effect.succeed("never")))
      yield* settle
      assert.strictEqual((yield* pool.stats).waiting, 1)
      yield* Fiber.interrupt(waiting)
      assert.strictEqual((yield* pool.stats).waiting, 0)
      yield* open
      yield* pool.awaitIdle
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.succeeded, stats.interrupted], [2, 1])
    }))

  it.effect("fail: a full queue fails the submission with QueueFull", () =>
    Effect.gen(function*() {
      const { open, pool } = yield* blockedPool({ capacity: 1, overflow: "fail" })
      const first = yield* pool.submit(Effect.succeed("first"))
      const error = yield* Effect.flip(pool.run(Effect.succeed("second")))
      assert.instanceOf(error, PoolError.QueueFull)
      assert.strictEqual((error as PoolError.QueueFull).capacity, 1)
      const submitError = yield* Effect.flip(pool.submit(Effect.succeed("third")))
      assert.strictEqual(submitError._tag, "QueueFull")
      assert.strictEqual((yield* pool.stats).rejected, 2)
      yield* open
      assert.strictEqual(yield* first.await, "first")
    }))

  it.effect("dropNewest: the new job is dropped and its awaiter gets JobDropped", () =>
    Effect.gen(function*() {
      const { open, pool } = yield* blockedPool({ capacity: 1, overflow: "dropNewest" })
      const kept = yield* pool.submit(Effect.succeed("kept"))
      const dropped = yield* pool.submit(Effect.succeed("dropped"))
      const error = yield* Effect.flip(dropped.await)
      assert.instanceOf(error, PoolError.JobDropped)
      assert.deepStrictEqual([(error as PoolError.JobDropped).jobId, (error as PoolError.JobDropped).policy], [
        dropped.id,
        "dropNewest"
      ])
      assert.strictEqual(yield* dropped.status, "dropped")
      yield* open
      assert.strictEqual(yield* kept.await, "kept")
      assert.strictEqual((yield* pool.stats).dropped, 1)
    }))

  it.effect("dropOldest: the longest-waiting job is dropped and the new one queued", () =>
    Effect.gen(function*() {
      const { open, pool } = yield* blockedPool({ capacity: 2, overflow: "dropOldest" })
      const a = yield* pool.submit(Effect.succeed("a"), { priority: 5 })
      const b = yield* pool.submit(Effect.succeed("b"))
      const c = yield* pool.submit(Effect.succeed("c"))
      const error = yield* Effect.flip(a.await)
      assert.deepStrictEqual([error._tag, (error as PoolError.JobDropped).policy], ["JobDropped", "dropOldest"])
      yield* open
      assert.deepStrictEqual([yield* b.await, yield* c.await], ["b", "c"])
    }))

  it.effect("capacity 0: a job runs only when a worker is free (a rendezvous)", () =>
    Effect.gen(function*() {
      const { open, pool } = yield* blockedPool({ capacity: 0, overflow: "fail" })
      const error = yield* Effect.flip(pool.run(Effect.succeed(1)))
      assert.strictEqual(error._tag, "QueueFull")
      yield* open
      assert.strictEqual(yield* pool.run(Effect.succeed(2)), 2)
    }))

  it.effect("capacity 0 with suspend: the submitter waits until a worker is free", () =>
    Effect.gen(function*() {
      const { open, pool } = yield* blockedPool({ capacity: 0 })
      const waiting = yield* Effect.forkChild(pool.run(Effect.succeed("handed over")))
      yield* settle
      assert.strictEqual((yield* pool.stats).waiting, 1)
      yield* open
      assert.strictEqual(yield* Fiber.join(waiting), "handed over")
    }))

  it.effect("a dropped or rejected job never runs", () =>
    Effect.gen(function*() {
      let ran = 0
      const { open, pool } = yield* blockedPool({ capacity: 1, overflow: "dropNewest" })
      yield* pool.submit(Effect.sync(() => ran++))
      const exits = yield* Effect.forEach([1, 2, 3], () => Effect.exit(pool.run(Effect.sync(() => ran++))))
      assert.isTrue(exits.every(Exit.isFailure))
      yield* open
      yield* pool.awaitIdle
      assert.strictEqual(ran, 1)
    }))
})
