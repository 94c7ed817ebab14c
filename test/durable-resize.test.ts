/**
 * `consumer.resize` against the thread-pool resize that a consumer without a concurrency of its own
 * follows (`JobQueue.consume({ threadPool, tasks })`): the user's number must win over a reaction
 * to the pool's resize, whatever the interleaving. Run under the Stepper, which tries every point.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, Scope } from "effect"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as ThreadJson from "../src/internal/threadJson.ts"
import { PoolShutdown } from "../src/PoolError.ts"
import { Nap } from "./fixtures/durable-thread-tasks.ts"
import { Stepper } from "./fixtures/stepper.ts"

/**
 * A consumer following a pool of `slots.n` slots. The pool is a registered way in rather than a
 * ThreadPool: a ThreadPool's resize waits for real threads to start, outside the Stepper's steps,
 * and its word to consumers is exactly this `ThreadJson.resized` after its slots changed.
 */
const following = (stepper: Stepper, slots: { n: number }) => {
  const scope = stepper.run(Scope.make())
  const store = stepper.run(Layer.buildWithScope(JobStore.memory(), scope))
  const pool = ThreadJson.register({}, () => Effect.die("no job is enqueued"), () => slots.n)
  const consumer = stepper.run(
    JobQueue.consume({ threadPool: pool as unknown as JobQueue.ThreadPoolLike, tasks: [Nap], poll: 60_000 }).pipe(
      Scope.provide(scope),
      Effect.provide(store)
    )
  )
  return {
    consumer,
    concurrency: () => stepper.run(consumer.stats).concurrency,
    /** The pool's slots change, and it says so (as ThreadPool.resize does once its threads started). */
    resizePool: (n: number) => {
      slots.n = n
      ThreadJson.resized(pool)
    },
    close: () => stepper.run(Scope.close(scope, Exit.void)),
    closing: () => stepper.fork(Scope.close(scope, Exit.void))
  }
}

/**
 * Starts `first` (consumer.resize(1), or the pool growing to 4 slots), runs `k` steps, starts the
 * other, and runs both to their end: the consumer must keep its own 1 and no longer follow the pool.
 * Returns whether `first` had ended before the other started (every later `k` is the same).
 */
const race = (first: "consumer" | "pool", k: number): boolean => {
  const stepper = new Stepper()
  const { close, concurrency, consumer, resizePool } = following(stepper, { n: 2 })
  assert.strictEqual(concurrency(), 2)
  let resize: ReturnType<typeof stepper.fork<void, unknown>> | undefined
  const start = (which: "consumer" | "pool") => {
    if (which === "consumer") resize = stepper.fork(consumer.resize(1))
    else resizePool(4)
  }
  start(first)
  for (let i = 0; i < k; i++) stepper.step()
  // the pool's reaction has ended once nothing is left to run
  const ended = first === "consumer" ? resize!.pollUnsafe() !== undefined : stepper.idle
  start(first === "consumer" ? "pool" : "consumer")
  stepper.drain()
  const at = `${first} first, the other ${k} steps later`
  assert.deepStrictEqual(resize!.pollUnsafe(), Exit.void, at)
  assert.strictEqual(concurrency(), 1, `the consumer's own number is overwritten (${at})`)
  resizePool(3)
  stepper.drain()
  assert.strictEqual(concurrency(), 1, `the consumer follows the pool again (${at})`)
  close()
  return ended
}

describe("consumer.resize and the thread pool's resize", () => {
  it("a pool resize at any point of consumer.resize does not overwrite the consumer's own number, nor make it follow again", () => {
    let points = 0
    while (!race("consumer", points)) points++
    // the race was tried inside the resize, not only before and after it
    assert.isAbove(points, 3)
  })

  it("nor does a reaction to the pool's resize that is under way when consumer.resize starts", () => {
    let points = 0
    while (!race("pool", points)) points++
    assert.isAbove(points, 3)
  })

  it("the scope closed at any step of consumer.resize and of a pool resize's reaction: all three end, the consumer stopped", () => {
    let points = 0
    for (let k = 0;; k++) {
      const stepper = new Stepper()
      const { closing, consumer, resizePool } = following(stepper, { n: 2 })
      const resize = stepper.fork(consumer.resize(1))
      resizePool(4)
      for (let i = 0; i < k; i++) stepper.step()
      const idle = stepper.idle
      const close = closing()
      stepper.drain()
      const at = `the scope closed ${k} steps in`
      assert.deepStrictEqual([resize.pollUnsafe(), close.pollUnsafe()], [Exit.void, Exit.void], at)
      assert.isDefined(stepper.fork(consumer.awaitTermination).pollUnsafe(), at)
      // after the close, a resize answers (the stopped pool has nothing to resize) and a pool resize is not followed
      assert.deepStrictEqual(stepper.run(Effect.exit(consumer.resize(3))), Exit.void, at)
      resizePool(5)
      stepper.drain()
      assert.strictEqual(stepper.run(consumer.stats).state, "stopped", at)
      points++
      if (idle) break
    }
    assert.isAbove(points, 3)
  })

  it("a pool that shuts down while consume starts: the consumer starts (no defect), then stops at its first job and gives it back", () => {
    const stepper = new Stepper()
    const scope = stepper.run(Scope.make())
    const store = stepper.run(Layer.buildWithScope(JobStore.memory(), scope))
    // running when consume checks it, shut down (no slots, and refusing its tasks) right after
    let checks = 0
    const pool = ThreadJson.register(
      {},
      () => Effect.fail(new PoolShutdown({ phase: "queued" })),
      () => checks++ === 0 ? 1 : 0
    )
    const provided = <A, E>(effect: Effect.Effect<A, E, JobStore.JobStore | Scope.Scope>) =>
      effect.pipe(Scope.provide(scope), Effect.provide(store))
    const consumer = stepper.run(provided(
      JobQueue.consume({ threadPool: pool as unknown as JobQueue.ThreadPoolLike, tasks: [Nap], poll: 60_000 })
    ))
    const job = stepper.run(provided(JobQueue.enqueue(Nap, { millis: 1, mark: 0 })))
    stepper.drain()
    assert.isDefined(stepper.fork(consumer.awaitTermination).pollUnsafe(), "the consumer stopped")
    const info = stepper.run(provided(JobQueue.status(job.id)))
    assert.deepStrictEqual([info.state, info.attempts], ["queued", 0])
    stepper.run(Scope.close(scope, Exit.void))
  })

  it("a refused consumer.resize changes nothing: the consumer goes on following the pool", () => {
    const stepper = new Stepper()
    const { close, concurrency, consumer, resizePool } = following(stepper, { n: 2 })
    for (const bad of [0, -1, 1.5, NaN, Infinity, 100_001, "3" as unknown as number]) {
      const refused = stepper.run(Effect.flip(consumer.resize(bad)))
      assert.strictEqual(refused._tag, "InvalidPoolConfig")
      assert.strictEqual(refused.field, "concurrency")
    }
    resizePool(5)
    stepper.drain()
    assert.strictEqual(concurrency(), 5)
    close()
  })
})
