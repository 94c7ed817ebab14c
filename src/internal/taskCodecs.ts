/**
 * A task's codecs on the main thread: checking that what is given as a task is one, encoding its
 * payload, and turning a thread's reply back into the task's own success, failure or defect. The
 * codecs are built once per task and kept beside it: every call goes through them. (The thread's
 * side, decoding payloads and encoding outcomes, is in ThreadWorker.)
 *
 * @internal
 */
import { Cause, Effect, Exit, Schema } from "effect"
import { InvalidJob, TaskCodecError, WorkerCrashed } from "../PoolError.ts"
import type * as Task from "../Task.ts"
import * as config from "./config.ts"
import { decoder, encoder } from "./plainCodec.ts"
import type { Reply } from "./threads.ts"

const rebuildDefect = (reply: Extract<Reply, { _: "defect" }>): Error => {
  const error = new Error(reply.message)
  error.name = reply.name
  if (reply.stack !== undefined) error.stack = reply.stack
  return error
}

/** A task's codecs, built once per task: every call goes through them. */
interface Codecs {
  readonly encodePayload: (input: unknown) => Exit.Exit<unknown, Schema.SchemaError>
  readonly decodeSuccess: (input: unknown) => Exit.Exit<unknown, Schema.SchemaError>
  readonly decodeFailure: (input: unknown) => Exit.Exit<unknown, Schema.SchemaError>
}

const codecsByTask = new WeakMap<Task.Any, Codecs>()

const NOT_A_TASK = "expected a Task made with Task.make (a name, and payload, success and failure Schemas)"

/**
 * What is given as a task, checked before anything is submitted: from JavaScript it can be anything,
 * and would otherwise fail only when its codecs are built, as a defect.
 */
export const checkTask = (task: unknown): InvalidJob | undefined => {
  if (typeof task !== "object" || task === null) {
    return new InvalidJob({ field: "task", value: config.show(task), reason: NOT_A_TASK })
  }
  const { name } = task as Partial<Task.Any>
  if (typeof name !== "string") {
    return new InvalidJob({ field: "task", value: config.show(task), reason: `${NOT_A_TASK}: its name is not a string` })
  }
  if (codecsByTask.has(task as Task.Any)) return undefined
  for (const part of ["payload", "success", "failure"] as const) {
    if (!Schema.isSchema((task as Partial<Task.Any>)[part])) {
      return new InvalidJob({ field: "task", value: `task ${JSON.stringify(name)}`, reason: `${NOT_A_TASK}: its ${part} is not a Schema` })
    }
  }
  return undefined
}

export const codecsOf = (task: Task.Any): Codecs => {
  let codecs = codecsByTask.get(task)
  if (codecs === undefined) {
    codecs = {
      encodePayload: encoder(task.payload),
      decodeSuccess: decoder(task.success),
      decodeFailure: decoder(task.failure)
    }
    codecsByTask.set(task, codecs)
  }
  return codecs
}

/**
 * What went wrong, in words. Besides a SchemaError, a Schema's code may have thrown anything (an
 * object without prototype, a revoked Proxy), which `String` throws on: describing it must not throw,
 * since this runs in the pool's dispatch and in a thread's answer handler. (Not `node:util`'s
 * `inspect`: JobQueue loads this module, and the package bundles for the browser.)
 */
export const issueOf = (exit: Exit.Failure<unknown, Schema.SchemaError>): string => {
  const error = Cause.squash(exit.cause)
  try {
    return Schema.isSchemaError(error) ? error.message : String(error)
  } catch {
    return config.thrown(error)
  }
}

export const decodeReply = <T extends Task.Any>(
  task: T,
  reply: Reply,
  jobId: number
): Effect.Effect<Task.Success<T>, Task.Failure<T> | WorkerCrashed | TaskCodecError> => {
  switch (reply._) {
    case "success": {
      const decoded = codecsOf(task).decodeSuccess(reply.value)
      return Exit.isSuccess(decoded)
        ? decoded as Exit.Exit<Task.Success<T>>
        : Effect.fail(new TaskCodecError({ task: task.name, part: "success", issue: issueOf(decoded) }))
    }
    case "failure": {
      const decoded = codecsOf(task).decodeFailure(reply.error)
      return Exit.isSuccess(decoded)
        ? Effect.fail(decoded.value as Task.Failure<T>)
        : Effect.fail(new TaskCodecError({ task: task.name, part: "failure", issue: issueOf(decoded) }))
    }
    case "defect":
      return Effect.die(rebuildDefect(reply))
    case "interrupted":
      return Effect.interrupt
    case "codec":
      return Effect.fail(new TaskCodecError({ task: task.name, part: reply.part, issue: reply.issue }))
    case "crashed":
      return Effect.fail(new WorkerCrashed({ jobId, reason: reply.reason }))
  }
}

