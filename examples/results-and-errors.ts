/**
 * Jobs with results and errors: count the successes and the failures.
 *
 * In Go each worker sends a `Result{Value, Error}` struct down a results channel and the main
 * goroutine tallies them, after a WaitGroup says every worker is done and the channel is closed.
 *
 * Here `pool.runAll(jobs)` already returns the results in input order. By default it is
 * "all or nothing": the first failure interrupts the other jobs and becomes the error of the whole
 * call. To keep every outcome instead, wrap each job with `Effect.result` (success or typed error)
 * or `Effect.exit` (also tells defects and interruptions apart) before handing it to the pool.
 *
 * Run: node examples/results-and-errors.ts   (JOBS=50 for more jobs)
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Config, Console, Effect, Exit, Option, Result, Schema } from "effect"
import { WorkPool } from "../src/index.ts"

class TaskFailed extends Schema.TaggedError<TaskFailed>()("TaskFailed", { taskId: Schema.Number }) {
  override get message() {
    return `task ${this.taskId} failed`
  }
}

// Every 7th task fails with a typed error, as in the article.
const task = (taskId: number) =>
  Effect.gen(function*() {
    yield* Effect.sleep("10 millis")
    if (taskId % 7 === 0) return yield* new TaskFailed({ taskId })
    return `processed task-${taskId}`
  })

// The same task with a bug in task 13: it throws, which Effect records as a defect (an unexpected
// error, with its stack), not as a `TaskFailed`. The worker that ran it is not harmed.
const buggyTask = (taskId: number) =>
  taskId === 13 ? Effect.sync((): string => { throw new Error(`bug in task ${taskId}`) }) : task(taskId)

const program = Effect.gen(function*() {
  const count = yield* Config.Int("JOBS").pipe(Config.withDefault(20))
  const ids = Array.from({ length: count }, (_, i) => i + 1)
  const pool = yield* WorkPool.make({ concurrency: 4 })

  // 1. Keep every outcome with Effect.result: each element is Result<string, TaskFailed | JobError>.
  const results = yield* pool.runAll(ids.map((id) => Effect.result(task(id))))
  const ok = results.filter(Result.isSuccess).length
  yield* Console.log(`with Effect.result: ${ok} ok, ${results.length - ok} typed errors`)
  for (const result of results) {
    if (Result.isFailure(result)) {
      const error = result.failure
      // The error is a typed union (TaskFailed or a pool error); narrowing on _tag gives its fields.
      yield* Console.log(`  error: ${error._tag === "TaskFailed" ? `task ${error.taskId} failed` : error.message}`)
    }
  }

  // 2. Effect.exit keeps the whole story: success, typed failure, defect (or interruption).
  const exits = yield* pool.runAll(ids.map((id) => Effect.exit(buggyTask(id))))
  let succeeded = 0
  let failed = 0
  let defects = 0
  for (const exit of exits) {
    if (Exit.isSuccess(exit)) succeeded++
    else if (Exit.hasDies(exit)) defects++
    else if (Option.isSome(Cause.findErrorOption(exit.cause))) failed++
  }
  yield* Console.log(`with Effect.exit: ${succeeded} successful, ${failed} errors, ${defects} defects`)

  // 3. Without a wrapper runAll fails fast: the first failure stops the batch, and the remaining
  //    jobs are interrupted or never started, so nothing keeps running in the background.
  const all = yield* Effect.exit(pool.runAll(ids.map(task)))
  yield* Console.log(
    Exit.isSuccess(all)
      ? `fail fast: no task failed, ${all.value.length} results`
      : `fail fast: runAll failed with ${Cause.pretty(all.cause).split("\n")[0]}`
  )

  // The pool's own accounting agrees. Wrapped jobs (rounds 1 and 2) count as succeeded for the pool,
  // since they returned a Result or an Exit value; only round 3 adds a failure and interruptions.
  const stats = yield* pool.stats
  yield* Console.log(
    `pool stats: submitted ${stats.submitted}, succeeded ${stats.succeeded}, failed ${stats.failed}, ` +
      `interrupted ${stats.interrupted}`
  )
  yield* Console.log(`Completed: ${succeeded} successful, ${failed + defects} errors`)
})

NodeRuntime.runMain(Effect.scoped(program))
