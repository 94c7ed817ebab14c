/**
 * A durable job's outcome as the store keeps it: an `Exit` encoded to JSON text with the task's
 * Schemas, so that any process with the task's definition decodes it back, failures as instances
 * of their own classes. Defects keep their name, message and stack (an arbitrary thrown value
 * cannot cross a process boundary), and the errors the durable machinery itself adds
 * (`TaskCodecError`, `AttemptTimeout`) are stored by their own Schemas.
 *
 * @internal
 */
import { Cause, Effect, Exit, Result, Schema } from "effect"
import { AttemptTimeout, JobCancelled, LeaseExpired } from "../../DurableError.ts"
import { TaskCodecError } from "../../PoolError.ts"
import type * as Task from "../../Task.ts"
import type { JobRow } from "../store/model.ts"

/** The errors stored by the machinery rather than by the task's failure Schema. */
const MachineError = Schema.toCodecJson(Schema.Union([TaskCodecError, AttemptTimeout]))

type Stored =
  | { readonly _tag: "Success"; readonly value: unknown }
  | { readonly _tag: "Failure"; readonly error: unknown }
  | { readonly _tag: "Error"; readonly error: unknown }
  | { readonly _tag: "Die"; readonly defect: { readonly name: string; readonly message: string; readonly stack?: string } }

const codecs = new WeakMap<Task.Any, { payload: Schema.Codec<any, any>; success: Schema.Codec<any, any>; failure: Schema.Codec<any, any> }>()

/** The task's Schemas as JSON codecs, derived once per task. */
export const codecsOf = (task: Task.Any) => {
  let found = codecs.get(task)
  if (found === undefined) {
    found = {
      payload: Schema.toCodecJson(task.payload) as Schema.Codec<any, any>,
      success: Schema.toCodecJson(task.success) as Schema.Codec<any, any>,
      failure: Schema.toCodecJson(task.failure) as Schema.Codec<any, any>
    }
    codecs.set(task, found)
  }
  return found
}

const issue = (error: unknown) => error instanceof Error ? error.message : String(error)

export const codecError = (task: Task.Any, part: TaskCodecError["part"], error: unknown) =>
  new TaskCodecError({ task: task.name, part, issue: issue(error) })

/**
 * Encodes a payload for the store, or fails with `TaskCodecError` (part "payload"). A Schema that
 * lets any value through (`Schema.Any`) may encode to what is no JSON: `undefined`, a function (no
 * text: the Redis store's client refused it as a StoreError, and Redis.eval had stored "undefined"),
 * a BigInt or a cycle (JSON.stringify throws: a defect).
 */
export const encodePayload = (task: Task.Any, payload: unknown): Effect.Effect<string, TaskCodecError> =>
  Schema.encodeUnknownEffect(codecsOf(task).payload)(payload).pipe(
    Effect.mapError((error) => codecError(task, "payload", error)),
    Effect.flatMap((json) => {
      let text: string | undefined
      try {
        text = JSON.stringify(json)
      } catch (error) {
        return Effect.fail(codecError(task, "payload", error))
      }
      return text === undefined
        ? Effect.fail(codecError(task, "payload", `not JSON: ${typeof json}`))
        : Effect.succeed(text)
    })
  ) as Effect.Effect<string, TaskCodecError>

/**
 * Decodes a stored payload. A task whose payload Schema runs no Effect (most do) is decoded here and
 * now, to an `Exit`: a job whose handler returns an `Effect.sync` then needs no fiber at all (see
 * fiberExecutor.ts).
 */
export const decodePayload = (task: Task.Any, payload: string): Effect.Effect<unknown, TaskCodecError> => {
  let json: unknown
  try {
    json = JSON.parse(payload)
  } catch (error) {
    return Exit.fail(codecError(task, "payload", error))
  }
  const decoded = Schema.decodeUnknownEffect(codecsOf(task).payload)(json) as Effect.Effect<unknown, unknown>
  const toCodecError = (error: unknown) => codecError(task, "payload", error)
  return Exit.isExit(decoded) ? Exit.mapError(decoded, toCodecError) : Effect.mapError(decoded, toCodecError)
}

const defectOf = (defect: unknown): Extract<Stored, { _tag: "Die" }>["defect"] => {
  if (defect instanceof Error) {
    return defect.stack === undefined
      ? { name: defect.name, message: defect.message }
      : { name: defect.name, message: defect.message, stack: defect.stack }
  }
  let message: string
  try {
    message = typeof defect === "string" ? defect : JSON.stringify(defect) ?? String(defect)
  } catch {
    message = String(defect)
  }
  return { name: "Defect", message }
}

/**
 * A success a thread already encoded (see onThread.ts): the JSON text of `{ value }`, the value in
 * the task's JSON form, which `encodeExit` stores as it is.
 */
export class EncodedSuccess {
  readonly text: string
  constructor(text: string) {
    this.text = text
  }
}

/** `{ _tag: "Success", value }` as JSON text, from the JSON text of `{ value }` (or `{}`). */
const successText = (text: string): string => text === "{}" ? `{"_tag":"Success"}` : `{"_tag":"Success",${text.slice(1)}`

/**
 * Encodes an attempt's Exit. A failure is the task's own error unless it is one of the machine's;
 * one that its Schema cannot encode is stored as a `TaskCodecError` (part "failure"), as is a
 * success its Schema cannot encode (part "success": `ok` is then false).
 */
export const encodeExit = (
  task: Task.Any,
  exit: Exit.Exit<unknown, unknown>
): Effect.Effect<{ readonly text: string; readonly ok: boolean }> => {
  if (Exit.isSuccess(exit) && exit.value instanceof EncodedSuccess) {
    return Effect.succeed({ text: successText(exit.value.text), ok: true })
  }
  if (Exit.isSuccess(exit)) {
    // a Schema that runs no Effect encodes here and now (the usual case): an Exit, no steps to run
    const encoded = Schema.encodeUnknownEffect(codecsOf(task).success)(exit.value)
    if (Exit.isExit(encoded) && Exit.isSuccess(encoded)) {
      return Exit.succeed({ text: JSON.stringify({ _tag: "Success", value: encoded.value } satisfies Stored), ok: true })
    }
  }
  const stored: Effect.Effect<Stored> = Exit.isSuccess(exit)
    ? Schema.encodeUnknownEffect(codecsOf(task).success)(exit.value).pipe(
      Effect.map((value): Stored => ({ _tag: "Success", value })),
      Effect.catch((error) => machine(codecError(task, "success", error)))
    )
    : Result.match(Cause.findError(exit.cause), {
      onSuccess: (error) =>
        error instanceof TaskCodecError || error instanceof AttemptTimeout
          ? machine(error)
          : Schema.encodeUnknownEffect(codecsOf(task).failure)(error).pipe(
            Effect.map((encoded): Stored => ({ _tag: "Failure", error: encoded })),
            Effect.catch((codec) => machine(codecError(task, "failure", codec)))
          ),
      onFailure: (cause) =>
        Effect.succeed<Stored>({
          _tag: "Die",
          defect: defectOf(Result.getOrElse(Cause.findDefect(cause), () => new Error("interrupted")))
        })
    })
  return Effect.map(stored, (value) => ({ text: JSON.stringify(value), ok: value._tag === "Success" }))
}

const machine = (error: TaskCodecError | AttemptTimeout): Effect.Effect<Stored> =>
  Schema.encodeUnknownEffect(MachineError)(error).pipe(
    Effect.map((encoded): Stored => ({ _tag: "Error", error: encoded })),
    Effect.orDie
  )

/** What `JobQueue.await` can fail with, besides the task's own error. */
export type DurableFailure = TaskCodecError | AttemptTimeout | LeaseExpired | JobCancelled

/** The Exit of a finished job (succeeded, dead or cancelled), decoded with its task's Schemas. */
export const decodeExit = <S, F>(task: Task.Any, job: JobRow): Effect.Effect<Exit.Exit<S, F | DurableFailure>> => {
  if (job.state === "cancelled") return Effect.succeed(Exit.fail(new JobCancelled({ id: job.id })))
  if (job.exit === null) {
    return Effect.succeed(Exit.fail(new LeaseExpired({ id: job.id, attempt: job.attempts })))
  }
  let stored: Stored
  try {
    stored = JSON.parse(job.exit) as Stored
  } catch (error) {
    return Effect.succeed(Exit.fail(codecError(task, "success", error)))
  }
  const decode = (codec: Schema.Codec<any, any>, value: unknown, part: TaskCodecError["part"]) =>
    (Schema.decodeUnknownEffect(codec)(value) as Effect.Effect<any, unknown>).pipe(
      Effect.mapError((error) => codecError(task, part, error))
    )
  switch (stored._tag) {
    case "Success":
      return Effect.exit(decode(codecsOf(task).success, stored.value, "success"))
    case "Failure":
      return Effect.exit(Effect.flatMap(decode(codecsOf(task).failure, stored.error, "failure"), Effect.fail))
    case "Error":
      return Effect.exit(Effect.flatMap(decode(MachineError, stored.error, "failure"), Effect.fail))
    case "Die": {
      const defect = new Error(stored.defect.message)
      defect.name = stored.defect.name
      if (stored.defect.stack !== undefined) defect.stack = stored.defect.stack
      return Effect.succeed(Exit.die(defect))
    }
  }
}
