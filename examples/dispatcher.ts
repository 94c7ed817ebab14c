/**
 * One pool, many kinds of job, every type kept.
 *
 * The Go version of this scenario defines a `Job` interface with a `process() error` method, so that
 * one dispatcher can run `BatchJob`s and `SingleJob`s side by side. The price is that a job can only
 * say "ok" or "error": its result has to be smuggled out through shared state, and the caller can't
 * tell one job's error from another's.
 *
 * Here a job is just an `Effect<A, E>`. The pool doesn't care what `A` and `E` are, and
 * `pool.run(job)` hands back exactly `Effect<A, E | JobError>`: a batch job still returns a batch
 * summary and fails with `EmptyBatch`, a lookup still returns a `User` and fails with `UserNotFound`.
 *
 * Run: node examples/dispatcher.ts
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Data, Effect, Schema } from "effect"
import { WorkPool } from "../src/index.ts"

// --- three unrelated job types, each with its own result and error ------------------------------

class EmptyBatch extends Schema.TaggedError<EmptyBatch>()("EmptyBatch", { batchId: Schema.Number }) {}
class UserNotFound extends Data.TaggedError("UserNotFound")<{ readonly id: number }> {}

interface BatchSummary {
  readonly batchId: number
  readonly rows: number
  readonly total: number
}
interface User {
  readonly id: number
  readonly name: string
}

// A "batch" job: sums a slice of a big data set. Sleeps stand in for real I/O.
const processBatch = (batchId: number, rows: ReadonlyArray<number>) =>
  Effect.gen(function*() {
    if (rows.length === 0) return yield* new EmptyBatch({ batchId })
    yield* Effect.sleep("20 millis")
    return { batchId, rows: rows.length, total: rows.reduce((a, b) => a + b, 0) } satisfies BatchSummary
  })

// A "single" job: looks up one record.
const users = new Map<number, string>([[1, "ada"], [2, "grace"], [3, "edsger"]])
const findUser = (id: number) =>
  Effect.gen(function*() {
    yield* Effect.sleep("10 millis")
    const name = users.get(id)
    if (name === undefined) return yield* new UserNotFound({ id })
    return { id, name } satisfies User
  })

// A job that cannot fail at all (its error type is `never`).
const renderReport = (title: string) => Effect.succeed(`# ${title}\n(generated)`).pipe(Effect.delay("5 millis"))

const program = Effect.gen(function*() {
  // Four workers, like `NewDispatcher(4)`. The pool is tied to the enclosing scope: when `program`
  // ends, the pool shuts down and no worker fiber outlives it. No WaitGroup, no quit channel.
  const pool = yield* WorkPool.make({ concurrency: 4 })

  // Each `pool.run` keeps its job's types. Hover over these in an editor:
  //   batch:  Effect<BatchSummary, EmptyBatch | JobError>
  //   user:   Effect<User, UserNotFound | JobError>
  //   report: Effect<string, JobError>
  const batch = pool.run(processBatch(1, [1, 2, 3, 4]))
  const user = pool.run(findUser(2))
  const report = pool.run(renderReport("nightly"))

  // Run the three concurrently (the pool bounds the concurrency); the tuple keeps each type.
  const [summary, found, text] = yield* Effect.all([batch, user, report], { concurrency: "unbounded" })
  yield* Console.log(`batch ${summary.batchId}: ${summary.rows} rows, total ${summary.total}`)
  yield* Console.log(`user ${found.id}: ${found.name}`)
  yield* Console.log(`report: ${text.split("\n")[0]}`)

  // Errors are typed per job, so each can be handled by its tag, right where it is awaited.
  const missing = yield* pool.run(findUser(42)).pipe(
    Effect.catchTag("UserNotFound", (e) => Effect.succeed(`no user ${e.id}`))
  )
  const empty = yield* pool.run(processBatch(7, [])).pipe(
    Effect.catchTag("EmptyBatch", (e) => Effect.succeed(`batch ${e.batchId} was empty`))
  )
  yield* Console.log(missing)
  yield* Console.log(empty)

  // Many jobs of one type at once: `runAll` returns the results in input order, bounded by the
  // pool's 4 workers, like feeding `JobQueue` in a loop and waiting on the WaitGroup.
  const data = Array.from({ length: 40 }, (_, i) => i + 1)
  const batches = Array.from({ length: 8 }, (_, b) => processBatch(b, data.slice(b * 5, b * 5 + 5)))
  const summaries = yield* pool.runAll(batches)
  const grandTotal = summaries.reduce((sum, s) => sum + s.total, 0)
  yield* Console.log(`${summaries.length} batches, grand total ${grandTotal}`) // 820 = 1 + ... + 40

  const stats = yield* pool.stats
  yield* Console.log(`pool: ${stats.succeeded} succeeded, ${stats.failed} failed (the two handled above)`)
})

// `Effect.scoped` gives the pool its lifetime; runMain reports failures and sets the exit code.
NodeRuntime.runMain(Effect.scoped(program))
