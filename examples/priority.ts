/**
 * High- and low-priority jobs, and aging so that low priority cannot starve.
 *
 * The Go recipe uses two channels and a nested `select`: take from `high` if anything is there,
 * otherwise take from whichever is ready. That is strict priority with two levels, and under a
 * steady stream of high-priority work the low channel is never read.
 *
 * Here a job has a numeric `priority` (higher first, first-in first-out within one priority), and
 * the pool's `aging` option lets a waiting job gain one priority level per `aging` of waiting: a
 * low job is still passed by high jobs that arrive shortly after it, but not forever.
 *
 * Run: node examples/priority.ts   (JOBS=30 for a shorter high-priority stream)
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Config, Console, Effect } from "effect"
import { WorkPool } from "../src/index.ts"

const HIGH = 10
const LOW = 0

// Records the order in which jobs start, then works for `millis`.
const recorder = () => {
  const order: Array<string> = []
  const job = (name: string, millis = 0) =>
    Effect.sync(() => order.push(name)).pipe(Effect.andThen(Effect.sleep(millis)))
  return { order, job }
}

// 1. Strict priority. The pool starts paused so that every job is queued before the first one is
//    dispatched; that makes the order below exact rather than a race with the first worker.
const strictOrder = Effect.gen(function*() {
  const pool = yield* WorkPool.make({ concurrency: 1, paused: true })
  const { order, job } = recorder()
  for (let i = 1; i <= 4; i++) {
    yield* pool.submit(job(`low-${i}`), { priority: LOW })
    yield* pool.submit(job(`high-${i}`), { priority: HIGH })
  }
  const stats = yield* pool.stats
  yield* Console.log(
    `1. queued by priority: ${stats.queuedByPriority.map((q) => `${q.count} at priority ${q.priority}`).join(", ")}`
  )
  yield* pool.resume
  yield* pool.awaitIdle
  yield* Console.log(`   run order: ${order.join(" ")}`)
})

// 2. Starvation, and aging as the cure. One worker, a producer that submits a high-priority job
//    every 5 ms while each job takes 10 ms (so high-priority work is always waiting), and a single
//    low-priority job submitted at the start. Where does the low job get its turn?
const lowJobPosition = (highJobs: number, aging: WorkPool.Options["aging"]) =>
  Effect.gen(function*() {
    const pool = yield* WorkPool.make({ concurrency: 1, aging })
    const { order, job } = recorder()
    yield* pool.submit(job("high-0", 10), { priority: HIGH }) // keeps the worker busy from the start
    yield* pool.submit(job("low", 10), { priority: LOW })
    for (let i = 1; i <= highJobs; i++) {
      yield* pool.submit(job(`high-${i}`, 10), { priority: HIGH })
      yield* Effect.sleep("5 millis")
    }
    yield* pool.awaitIdle
    return { position: order.indexOf("low") + 1, of: order.length }
  }).pipe(Effect.scoped)

const starvation = Effect.gen(function*() {
  const highJobs = yield* Config.Int("JOBS").pipe(Config.withDefault(60))
  const strict = yield* lowJobPosition(highJobs, undefined)
  yield* Console.log(`2. without aging, the low job ran as #${strict.position} of ${strict.of} (after every high job)`)
  // With aging 10 ms a job gains one level per 10 ms of waiting, so after 10 levels × 10 ms = 100 ms
  // the low job (priority 0) counts as much as a fresh high job (priority 10) and stops being passed.
  const aged = yield* lowJobPosition(highJobs, "10 millis")
  yield* Console.log(`   with aging 10 ms, the low job ran as #${aged.position} of ${aged.of}`)
})

NodeRuntime.runMain(Effect.scoped(Effect.andThen(strictOrder, starvation)))
