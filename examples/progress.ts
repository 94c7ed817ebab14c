/**
 * A progress reporter built on `pool.changes`.
 *
 * The Go version shares an atomic counter between the workers and a reporter goroutine that
 * spins on it (or sleeps and polls), and it has to know by itself when to stop.
 *
 * Here the pool publishes its state: `pool.changes` is a `Stream` of `PoolStats` snapshots, the
 * current one first and then one after each change. Changes are coalesced, so a slow consumer
 * (a terminal, a websocket) always gets the latest state rather than a growing backlog, and the
 * stream ends by itself when the pool stops. A reporter is an ordinary stream pipeline.
 *
 * Run: node examples/progress.ts   (JOBS=1000 for a longer run)
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Config, Console, Deferred, Effect, Fiber, Random, Schema, Stream } from "effect"
import { WorkPool } from "../src/index.ts"

class ThumbnailFailed extends Schema.TaggedError<ThumbnailFailed>()("ThumbnailFailed", { image: Schema.Number }) {}

// A job of random length; every 17th fails, so the reporter has failures to show.
const makeThumbnail = (image: number) =>
  Effect.gen(function*() {
    yield* Effect.sleep(yield* Random.nextIntBetween(5, 30))
    if (image % 17 === 0) return yield* new ThumbnailFailed({ image })
    return `thumb-${image}.png`
  })

// Every way a job can end; their sum is the number of finished jobs.
const finished = (s: WorkPool.PoolStats) =>
  s.succeeded + s.failed + s.defects + s.timedOut + s.interrupted + s.dropped

const bar = (fraction: number, width = 20) => {
  const full = Math.round(fraction * width)
  return `[${"#".repeat(full)}${".".repeat(width - full)}]`
}

const program = Effect.gen(function*() {
  const total = yield* Config.Int("JOBS").pipe(Config.withDefault(200))
  const pool = yield* WorkPool.make({ concurrency: 8 })

  // Set by the reporter once it has printed its first line (see below).
  const watching = yield* Deferred.make<void>()

  // The reporter: one line per 10% step. `changesWith` drops snapshots that fall in the same step,
  // and `takeUntil` ends the stream at the snapshot where every job has finished.
  const reporter = pool.changes.pipe(
    Stream.takeUntil((s) => finished(s) >= total),
    Stream.changesWith((a, b) => Math.floor((finished(a) / total) * 10) === Math.floor((finished(b) / total) * 10)),
    Stream.runForEach((s) => {
      const done = finished(s)
      const percent = String(Math.floor((done / total) * 100)).padStart(3)
      return Console.log(
        `${bar(done / total)} ${percent}% ${done}/${total} done | ${s.running} running, ${s.queued} queued, ${s.failed} failed`
      ).pipe(Effect.andThen(Deferred.succeed(watching, undefined)))
    })
  )
  // A forked fiber starts "soon", not at once. Waiting until the reporter has printed the current
  // state (0 done) before submitting anything makes its first line 0% on every run.
  const reporting = yield* Effect.forkChild(reporter)
  yield* Deferred.await(watching)

  // Run every job through the pool. `Effect.result` is applied outside `pool.run`, so the pool sees
  // (and counts) the failures, and one failure does not stop the others.
  const results = yield* Effect.forEach(
    Array.from({ length: total }, (_, i) => i + 1),
    (image) => Effect.result(pool.run(makeThumbnail(image))),
    { concurrency: "unbounded" } // the pool bounds how many actually run: 8
  )
  yield* Fiber.join(reporting)

  const stats = yield* pool.stats
  yield* Console.log(
    `done: ${results.filter((r) => r._tag === "Success").length} thumbnails, ${stats.failed} failures, ` +
      `utilization ${(stats.utilization * 100).toFixed(0)}%, mean run ${stats.meanRunMillis.toFixed(1)} ms, ` +
      `mean wait ${stats.meanWaitMillis.toFixed(1)} ms`
  )
})

NodeRuntime.runMain(Effect.scoped(program))
