/**
 * A pool's resize and start raced by its own callers: resizes of a pool whose workers hold a
 * resource (a `WorkPool` with `resource`; a `ThreadPool`'s slots are such workers) at once with
 * each other, with a shutdown, or interrupted; and `make` interrupted at any step. The outcome each
 * caller is told is what the pool does, and nothing is left behind. Acquisitions are held by the
 * test and let through or failed one by one; interleavings are tried at every step (Stepper).
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Scope } from "effect"
import { WorkPool } from "../src/index.ts"
import { Stepper } from "./fixtures/stepper.ts"
import { settle } from "./helpers.ts"

/** Worker 0's resource at once; every other worker's when the test opens or fails its gate. */
const gated = Effect.gen(function*() {
  const gates = new Map<number, Deferred.Deferred<void, string>>()
  const gate = (id: number) => {
    let gate = gates.get(id)
    if (gate === undefined) gates.set(id, gate = Deferred.makeUnsafe<void, string>())
    return gate
  }
  const pool = yield* WorkPool.make({
    concurrency: 1,
    resource: (id: number) => id === 0 ? Effect.succeed(id) : Effect.as(Deferred.await(gate(id)), id)
  })
  return {
    pool,
    open: (id: number) => Deferred.succeed(gate(id), undefined),
    fail: (id: number) => Deferred.fail(gate(id), `worker ${id} cannot connect`),
    size: Effect.map(pool.stats, (s) => [s.concurrency, s.workers])
  }
})

describe("resizes at once", () => {
  it.effect("an earlier resize's failure does not undo a later one to the same size: its workers are kept", () =>
    Effect.gen(function*() {
      const { fail, open, pool, size } = yield* gated
      const first = yield* Effect.forkChild(Effect.exit(pool.resize(3))) // workers 1 and 2
      yield* settle
      const second = yield* Effect.forkChild(Effect.exit(pool.resize(3))) // workers 3 and 4
      yield* settle
      yield* fail(1)
      assert.isTrue(Exit.isFailure(yield* Fiber.join(first)))
      yield* open(3)
      yield* open(4)
      assert.deepStrictEqual(yield* Fiber.join(second), Exit.void)
      yield* settle
      assert.deepStrictEqual(yield* size, [3, 3], "the second resize succeeded: the pool has its size")
    }))

  it.effect("the latest resize's failure leaves the pool at the size it has, whatever an earlier one started", () =>
    Effect.gen(function*() {
      const { fail, open, pool, size } = yield* gated
      const first = yield* Effect.forkChild(Effect.exit(pool.resize(2))) // worker 1
      yield* settle
      const second = yield* Effect.forkChild(Effect.exit(pool.resize(3))) // workers 2 and 3
      yield* settle
      yield* open(1)
      assert.deepStrictEqual(yield* Fiber.join(first), Exit.void)
      yield* fail(2)
      assert.isTrue(Exit.isFailure(yield* Fiber.join(second)))
      yield* settle
      assert.deepStrictEqual(yield* size, [2, 2])
    }))
})

describe("an interrupted resize", () => {
  it.effect("leaves the pool at the size it has: the workers it could not start are not counted on", () =>
    Effect.gen(function*() {
      const { open, pool, size } = yield* gated
      const resizing = yield* Effect.forkChild(pool.resize(3))
      yield* settle
      yield* Fiber.interrupt(resizing)
      assert.deepStrictEqual(yield* size, [1, 1])
      // the connections it asked for do not join later
      yield* open(1)
      yield* open(2)
      yield* settle
      assert.deepStrictEqual(yield* size, [1, 1])
    }))
})

describe("a resize and a shutdown at once, at every interleaving", () => {
  /**
   * A pool of 1 whose other workers' connections open when the test says; `interruptible`: the
   * wait can be abandoned (else a shutdown must wait for it, then close what it opened).
   */
  const connections = (stepper: Stepper, interruptible: boolean) => {
    const log: Array<string> = []
    const gates = new Map<number, Deferred.Deferred<void>>()
    const gate = (id: number) => {
      let gate = gates.get(id)
      if (gate === undefined) gates.set(id, gate = Deferred.makeUnsafe<void>())
      return gate
    }
    const opening = (id: number) =>
      Effect.acquireRelease(
        Effect.sync(() => void log.push(`open ${id}`)),
        () => Effect.sync(() => void log.push(`close ${id}`))
      )
    const resource = (id: number) =>
      id === 0
        ? opening(id)
        : interruptible
        ? Effect.andThen(Deferred.await(gate(id)), opening(id))
        : Effect.uninterruptible(Effect.andThen(Deferred.await(gate(id)), opening(id)))
    const scope = stepper.run(Scope.make())
    const pool = stepper.run(Scope.provide(WorkPool.make({ concurrency: 1, resource }), scope))
    return {
      pool,
      close: () => stepper.run(Scope.close(scope, Exit.void)),
      openAll: () => {
        for (let id = 1; id <= 8; id++) Deferred.doneUnsafe(gate(id), Exit.void)
      },
      /** Every connection opened has been closed. */
      allClosed: (at: string) => {
        const opened = log.filter((l) => l.startsWith("open")).map((l) => l.slice(5)).sort()
        const closed = log.filter((l) => l.startsWith("close")).map((l) => l.slice(6)).sort()
        assert.deepStrictEqual(closed, opened, `${at}; log: ${log.join(", ")}`)
      }
    }
  }

  for (const interruptible of [true, false]) {
    for (const how of ["shutdown", "shutdownNow"] as const) {
      it(`${how} at any step of a growing resize leaves no connection open, and both callers get an answer (${
        interruptible ? "interruptible" : "uninterruptible"
      } connect)`, () => {
        let points = 0
        for (let k = 0;; k++) {
          const stepper = new Stepper()
          const { allClosed, close, openAll, pool } = connections(stepper, interruptible)
          const resizing = stepper.fork(pool.resize(4))
          for (let i = 0; i < k; i++) stepper.step()
          const before = stepper.idle
          const stopping = stepper.fork(pool[how])
          stepper.drain()
          // the connects under way finish (an uninterruptible one must be waited for)
          openAll()
          stepper.drain()
          const at = `${how} ${k} steps into the resize`
          assert.isDefined(stopping.pollUnsafe(), `the ${how} returned (${at})`)
          assert.deepStrictEqual(resizing.pollUnsafe(), Exit.void, `the resize returned (${at})`)
          assert.strictEqual(stepper.run(pool.stats).workers, 0, at)
          allClosed(at)
          close()
          points++
          if (before) break
        }
        assert.isAbove(points, 3)
      })
    }
  }
})

describe("WorkPool.make interrupted while it starts", () => {
  it("at any step: once its scope closes, nothing of it is left (its name is free again, its connections closed)", () => {
    let points = 0
    for (let k = 0;; k++) {
      const stepper = new Stepper()
      const log: Array<string> = []
      const resource = (id: number) =>
        Effect.acquireRelease(Effect.sync(() => void log.push(`open ${id}`)), () => Effect.sync(() => void log.push(`close ${id}`)))
      const scope = stepper.run(Scope.make())
      const options = { name: "interrupted-start", concurrency: 2, resource, rateLimit: { limit: 5, interval: 1000 } }
      const starting = stepper.fork(Scope.provide(WorkPool.make(options), scope))
      for (let i = 0; i < k; i++) stepper.step()
      const started = starting.pollUnsafe() !== undefined
      stepper.fork(Fiber.interrupt(starting))
      stepper.drain()
      stepper.run(Scope.close(scope, Exit.void))
      const at = `make interrupted ${k} steps in`
      const opened = log.filter((l) => l.startsWith("open")).length
      assert.strictEqual(log.filter((l) => l.startsWith("close")).length, opened, `${at}: ${log.join(", ")}`)
      // the name is free: a second pool of the same name starts
      const again = stepper.run(Scope.make())
      stepper.run(Effect.orDie(Scope.provide(WorkPool.make(options), again)))
      stepper.run(Scope.close(again, Exit.void))
      points++
      if (started) break
    }
    assert.isAbove(points, 3)
  })
})
