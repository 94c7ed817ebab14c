/**
 * A durable job's attempt on a `ThreadPool` (`JobQueue.consume({ threadPool, tasks })`): the stored
 * payload goes to a thread as it is (JSON text of the task's JSON form, parsed and decoded there),
 * and a success comes back as JSON text and is stored as it is (see protocol.Run): the consumer's
 * thread neither parses nor runs a Schema for it. A failure is decoded, for the retry policy's `while`. The thread task runs inside
 * the attempt, as a job of the thread pool: the attempt's timeout, a cancel from another process
 * and a shutdown interrupt it (its thread is asked to stop, and terminated past `cancelGrace`), its
 * progress reaches the store through the attempt, and its spans are children of the attempt's.
 *
 * @internal
 */
import { Cause, Effect, Exit, Schema } from "effect"
import { PoolShutdown, TaskCodecError, WorkerCrashed } from "../../PoolError.ts"
import type * as Task from "../../Task.ts"
import * as WorkPool from "../../WorkPool.ts"
import { reporterOf } from "../jobContext.ts"
import { currentJobWire } from "../jobInfo.ts"
import type { JobRow } from "../store/model.ts"
import { decodeReply } from "../taskCodecs.ts"
import type { RunJson } from "../threadJson.ts"
import { codecError, codecsOf, EncodedSuccess, UnwrittenFailure } from "./exit.ts"

/**
 * Runs `job`'s attempt on a thread. The thread pool's own errors are not the task's: a crashed
 * thread, a thread that cannot start or a reply that cannot be read are defects of the attempt
 * (retried like any); a worker that does not serve the task too (say so in the job's failure
 * rather than kill it). The thread pool shut down under its consumer: `gone` is told (the consumer
 * stops), and the attempt fails with that `PoolShutdown`.
 */
export const attempt = (
  run: RunJson,
  task: Task.Any,
  job: JobRow,
  gone: () => void
): Effect.Effect<unknown, unknown> =>
  Effect.gen(function*() {
    const info = yield* WorkPool.JobContext
    const sink = reporterOf(info)
    // the durable job's retries and timeout are the consumer's: none of the thread pool's own
    const reply = yield* run(
      task,
      job.payload,
      { priority: job.priority, timeout: Infinity, retry: { times: 0 } },
      (value) => sink.reportProgress(value),
      currentJobWire(job)
    ).pipe(
      Effect.catch((error) => {
        if (error instanceof PoolShutdown) {
          gone()
          return Effect.fail(error)
        }
        return Effect.die(error)
      })
    )
    switch (reply._) {
      case "success":
        return new EncodedSuccess(reply.value as string)
      case "failure": {
        const decoded = Schema.decodeUnknownExit(codecsOf(task).failure)(reply.error)
        return yield* Exit.isSuccess(decoded) ? Effect.fail(decoded.value) : codecError(task, "failure", Cause.squash(decoded.cause))
      }
      case "codec":
        // a failure that could not be sent (no clone) or encoded: retried as that failure, as on a fiber
        if (reply.part === "failure") {
          return yield* Effect.fail(new UnwrittenFailure(new TaskCodecError({ task: task.name, part: reply.part, issue: reply.issue })))
        }
        // the payload or success does not fit the task's Schema: final, as on a fiber
        if (reply.part === "payload" || reply.part === "success") {
          return yield* new TaskCodecError({ task: task.name, part: reply.part, issue: reply.issue })
        }
        return yield* Effect.die(new TaskCodecError({ task: task.name, part: reply.part, issue: reply.issue }))
      case "crashed":
        return yield* Effect.die(new WorkerCrashed({ jobId: info.id, reason: reply.reason }))
      default:
        return yield* decodeReply(task, reply, info.id)
    }
  })
