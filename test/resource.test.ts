import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Logger, Scope } from "effect"
import { TestClock } from "effect/testing"
import { PoolError, WorkPool } from "../src/index.ts"
import { settle } from "./helpers.ts"

/** A fake connection per worker, recording its lifecycle. */
const connections = () => {
  const log: Array<string> = []
  const resource = (workerId: number) =>
    Effect.acquireRelease(
      Effect.sync(() => {
        log.push(`open ${workerId}`)
        return { workerId, query: (sql: string) => Effect.succeed(`${sql} on connection ${workerId}`) }
      }),
      () => Effect.sync(() => void log.push(`close ${workerId}`))
    )
  return { log, resource }
}

describe("per-worker resource", () => {
  it.effect("is acquired when a worker starts, handed to its jobs, released when the pool stops", () =>
    Effect.gen(function*() {
      const { log, resource } = connections()
      const scope = yield* Scope.make()
      const pool = yield* WorkPool.make({ concurrency: 2, resource }).pipe(Scope.provide(scope))
      assert.deepStrictEqual(log, ["open 0", "open 1"])
      const results = yield* pool.runAll(
        Array.from({ length: 4 }, () => (conn: { query: (s: string) => Effect.Effect<string> }) => conn.query("select 1"))
      )
      assert.isTrue(results.every((r) => /^select 1 on connection [01]$/.test(r)))
      // two jobs at once hold different connections
      const held = yield* Effect.forkChild(pool.runAll([
        (c: { workerId: number }) => Effect.as(Effect.sleep("1 second"), c.workerId),
        (c: { workerId: number }) => Effect.as(Effect.sleep("1 second"), c.workerId)
      ]))
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual((yield* Fiber.join(held)).sort(), [0, 1])
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(log.slice(2).sort(), ["close 0", "close 1"])
    }))

  it.effect("resize acquires for new workers and releases retired ones once their job ends", () =>
    Effect.gen(function*() {
      const { log, resource } = connections()
      const pool = yield* WorkPool.make({ concurrency: 1, resource })
      yield* pool.resize(3)
      assert.deepStrictEqual(log, ["open 0", "open 1", "open 2"])
      const busy = yield* pool.submit(Effect.sleep("1 second"))
      yield* pool.resize(1)
      yield* settle
      // two idle workers retire at once; the busy one keeps its connection until its job ends
      assert.strictEqual(log.filter((l) => l.startsWith("close")).length, 2)
      yield* TestClock.adjust("1 second")
      yield* busy.await
      yield* settle
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.workers, log.filter((l) => l.startsWith("close")).length], [1, 2])
    }))

  it.effect("a resource that cannot be acquired fails make with its error", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        WorkPool.make({ concurrency: 2, resource: (id) => id === 1 ? Effect.fail("no connection" as const) : Effect.succeed(id) })
      )
      assert.strictEqual(error, "no connection")
    }))

  it.effect("the resource may use the services of the place where the pool is made", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({
        concurrency: 1,
        resource: () => Effect.map(Effect.clockWith((clock) => Effect.succeed(clock.currentTimeMillisUnsafe())), (t) => t)
      })
      assert.strictEqual(yield* pool.run((openedAt: number) => Effect.succeed(openedAt)), 0)
    }))
})

describe("per-worker resource failures", () => {
  it.effect("a resource function that does not return an Effect fails make and resize with InvalidPoolConfig", () =>
    Effect.gen(function*() {
      const notEffect = (() => 1) as unknown as (id: number) => Effect.Effect<number>
      const atMake = yield* Effect.flip(WorkPool.make({ concurrency: 2, resource: notEffect }))
      assert.instanceOf(atMake, PoolError.InvalidPoolConfig)
      assert.deepStrictEqual(
        [atMake.field, atMake.value, atMake.reason],
        ["resource", "1", "expected the function to return an Effect (of the worker's resource)"]
      )
      // only some workers' resources are bad: found when the pool grows
      const sometimes = ((id: number) => id < 1 ? Effect.succeed(id) : Promise.resolve(id)) as unknown as (
        id: number
      ) => Effect.Effect<number>
      const pool = yield* WorkPool.make({ concurrency: 1, resource: sometimes })
      const atResize = yield* Effect.flip(pool.resize(3))
      assert.instanceOf(atResize, PoolError.InvalidPoolConfig)
      assert.deepStrictEqual(
        [(atResize as PoolError.InvalidPoolConfig).field, (atResize as PoolError.InvalidPoolConfig).value],
        ["resource", "a Promise"]
      )
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.concurrency, stats.workers], [1, 1])
    }))

  it.effect("a resize whose resources cannot be acquired fails and leaves the pool at the size it has", () =>
    Effect.gen(function*() {
      let opened = 0
      const pool = yield* WorkPool.make({
        concurrency: 1,
        resource: (id) => (opened++ >= 2 ? Effect.fail(`no connection for worker ${id}` as const) : Effect.succeed(id))
      })
      const error = yield* Effect.flip(pool.resize(4))
      assert.include(error as string, "no connection")
      const stats = yield* pool.stats
      assert.strictEqual(stats.concurrency, stats.workers)
      assert.isAtMost(stats.workers, 2)
    }))
})

describe("resource acquisitions and shutdown", () => {
  /**
   * A connection that takes 100 ms to open. `interruptibleOpen`: the wait is interruptible (a
   * connect that can be abandoned); otherwise the whole acquisition is uninterruptible, so a
   * shutdown must wait for it and then release it.
   */
  const slowConnections = (interruptibleOpen: boolean) => {
    const log: Array<string> = []
    const open = (id: number) => Effect.sync(() => void log.push(`open ${id}`))
    const close = (id: number) => Effect.sync(() => void log.push(`close ${id}`))
    const resource = (id: number) =>
      interruptibleOpen
        ? Effect.andThen(Effect.sleep("100 millis"), Effect.acquireRelease(open(id), () => close(id)))
        : Effect.acquireRelease(Effect.andThen(Effect.sleep("100 millis"), open(id)), () => close(id))
    /** Every connection opened has been closed. */
    const allClosed = () => {
      const opened = log.filter((l) => l.startsWith("open")).map((l) => l.slice(5)).sort()
      const closed = log.filter((l) => l.startsWith("close")).map((l) => l.slice(6)).sort()
      return assert.deepStrictEqual(closed, opened, `log: ${log.join(", ")}`)
    }
    return { log, resource, allClosed }
  }

  for (const interruptibleOpen of [true, false]) {
    for (const how of ["shutdownNow", "shutdown"] as const) {
      it.effect(
        `${how} and scope close with a resize in flight leave no acquisition behind (${
          interruptibleOpen ? "interruptible" : "uninterruptible"
        } acquire)`,
        () =>
          Effect.gen(function*() {
            const { allClosed, log, resource } = slowConnections(interruptibleOpen)
            const scope = yield* Scope.make()
            const making = yield* Effect.forkChild(WorkPool.make({ concurrency: 1, resource }).pipe(Scope.provide(scope)))
            yield* TestClock.adjust("100 millis")
            const pool = yield* Fiber.join(making)
            const resizing = yield* Effect.forkChild(Effect.exit(pool.resize(8)))
            yield* TestClock.adjust("50 millis")
            assert.deepStrictEqual(log, ["open 0"])
            // the log as it is at the moment the close returns
            let atClose: Array<string> | undefined
            const closing = yield* Effect.forkChild(
              pool[how].pipe(Effect.andThen(Scope.close(scope, Exit.void)), Effect.andThen(Effect.sync(() => atClose = [...log])))
            )
            yield* TestClock.adjust("1 second")
            yield* settle
            yield* Fiber.join(closing)
            // every acquisition released or never completed, and nothing of the pool ran afterwards
            assert.deepStrictEqual(log, atClose)
            allClosed()
            // the resize caller got a defined outcome: done, not a bare interruption
            assert.deepStrictEqual(yield* Fiber.join(resizing), Exit.void)
            assert.strictEqual((yield* pool.stats).workers, 0)
          })
      )
    }
  }

  it.effect("interrupting a resize interrupts its acquisitions and releases what they opened", () =>
    Effect.gen(function*() {
      const { log, resource } = slowConnections(false)
      const making = yield* Effect.forkChild(WorkPool.make({ concurrency: 1, resource }))
      yield* TestClock.adjust("100 millis")
      const pool = yield* Fiber.join(making)
      const resizing = yield* Effect.forkChild(pool.resize(3))
      yield* TestClock.adjust("50 millis")
      const interrupting = yield* Effect.forkChild(Fiber.interrupt(resizing))
      yield* TestClock.adjust("50 millis")
      yield* Fiber.join(interrupting)
      // the two new connections opened (uninterruptibly) and were closed again; worker 0 is kept
      assert.deepStrictEqual(log.filter((l) => l !== "open 0").sort(), ["close 1", "close 2", "open 1", "open 2"])
      assert.deepStrictEqual((yield* pool.stats).workers, 1)
    }))
})

describe("a resource whose release fails", () => {
  /** Loggers see the pool's upkeep fibers: they run with the services of the place the pool is made. */
  const collectLogs = () => {
    const logged: Array<string> = []
    const logger = Logger.make((options) => {
      logged.push(`${options.logLevel} ${String(options.message)} ${Cause.pretty(options.cause)}`)
    })
    return { logged, layer: Logger.layer([logger]) }
  }
  const dying = (workerId: number) =>
    Effect.acquireRelease(Effect.succeed(workerId), (id) => Effect.die(new Error(`release of connection ${id} died`)))

  it.effect("on a shrink, the defect is logged at error level with the worker's id, and the pool goes on", () =>
    Effect.gen(function*() {
      const { layer, logged } = collectLogs()
      const pool = yield* WorkPool.make({ concurrency: 2, resource: dying }).pipe(Effect.provide(layer))
      yield* pool.resize(1)
      yield* settle
      assert.strictEqual(logged.length, 1, logged.join("\n"))
      assert.match(logged[0]!, /^Error .*worker 1.*release of connection 1 died/s)
      assert.strictEqual(yield* pool.run((id: number) => Effect.succeed(id)), 0)
    }))

  it.effect("at shutdown, each worker's defect is logged", () =>
    Effect.gen(function*() {
      const { layer, logged } = collectLogs()
      const scope = yield* Scope.make()
      yield* WorkPool.make({ concurrency: 2, resource: dying }).pipe(Effect.provide(layer), Scope.provide(scope))
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(
        logged.map((line) => /release of connection (\d) died/.exec(line)?.[1]).sort(),
        ["0", "1"],
        logged.join("\n")
      )
    }))
})
