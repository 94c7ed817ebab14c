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
import { AttemptTimeout, JobCancelled, JobExpired, LeaseExpired } from "../../DurableError.ts"
import { TaskCodecError } from "../../PoolError.ts"
import type * as Task from "../../Task.ts"
import { show } from "../config.ts"
import { jsonText } from "../jsonText.ts"
import { expiredAt, type JobRow } from "../store/model.ts"

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

/**
 * `value instanceof C`, false for a value that cannot be asked (a revoked Proxy, or one whose
 * getPrototypeOf trap throws): what a task returns, fails or dies with may be any value.
 */
export const isInstance = <C extends abstract new(...args: any) => any>(value: unknown, C: C): value is InstanceType<C> => {
  try {
    return value instanceof C
  } catch {
    return false
  }
}

const issue = (error: unknown): string => {
  try {
    const text: unknown = error instanceof Error ? error.message : String(error)
    return typeof text === "string" ? text : show(text)
  } catch {
    return show(error)
  }
}

export const codecError = (task: Task.Any, part: TaskCodecError["part"], error: unknown) =>
  new TaskCodecError({ task: task.name, part, issue: issue(error) })

/**
 * A value in its task's JSON form as JSON text for the store, or a `TaskCodecError` naming `part`
 * and why it has none. A Schema that lets any value through (`Schema.Any`) may encode to no JSON:
 * a BigInt, a cycle (JSON.stringify throws), undefined, a function, a symbol (no text at all).
 */
export const jsonOf = (task: Task.Any, part: TaskCodecError["part"], value: unknown): string | TaskCodecError => {
  const text = jsonText(value)
  return typeof text === "string" ? text : codecError(task, part, text.reason)
}

/**
 * Encodes a payload for the store, or fails with `TaskCodecError` (part "payload"): nothing is
 * stored (a payload without JSON text reached the Redis store's client as undefined, a StoreError).
 * A Schema whose encode throws is that error too, not a defect of enqueue.
 */
export const encodePayload = (task: Task.Any, payload: unknown): Effect.Effect<string, TaskCodecError> => {
  const now = encodePayloadNow(task, payload)
  return typeof now === "string" ? Effect.succeed(now) : now instanceof TaskCodecError ? Effect.fail(now) : now
}

/**
 * `encodePayload`, done here and now when the payload's Schema runs no Effect (most do not): its
 * text or its error, no Effect to run. `enqueueAll` encodes each item as it reads it, in a loop.
 */
export const encodePayloadNow = (
  task: Task.Any,
  payload: unknown
): string | TaskCodecError | Effect.Effect<string, TaskCodecError> => {
  const encoded = encodeWith(codecsOf(task).payload, payload)
  if (!Exit.isExit(encoded)) {
    return encoded.pipe(
      Effect.mapError((error) => codecError(task, "payload", error)),
      Effect.flatMap((json) => {
        const text = jsonOf(task, "payload", json)
        return typeof text === "string" ? Effect.succeed(text) : Effect.fail(text)
      })
    )
  }
  return Exit.isSuccess(encoded) ? jsonOf(task, "payload", encoded.value) : codecError(task, "payload", Cause.squash(encoded.cause))
}

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
  const decoded = decodeWith(codecsOf(task).payload, json)
  if (Exit.isExit(decoded) && Exit.isSuccess(decoded)) return decoded as Exit.Exit<unknown, never>
  const toCodecError = (error: unknown) => codecError(task, "payload", error)
  return Exit.isExit(decoded) ? Exit.mapError(decoded, toCodecError) : Effect.mapError(decoded, toCodecError)
}

/** Text for any value, never a throw: a string as it is, else its JSON, else a description. */
const readable = (value: unknown): string => {
  if (typeof value === "string") return value
  const text = jsonText(value)
  return typeof text === "string" ? text : show(value)
}

const defectOf = (defect: unknown): Extract<Stored, { _tag: "Die" }>["defect"] => {
  if (isInstance(defect, Error)) {
    try {
      // an Error's fields may have been given any value (a BigInt message): the stored text must be written
      const stack: unknown = defect.stack
      return typeof stack === "string"
        ? { name: readable(defect.name), message: readable(defect.message), stack }
        : { name: readable(defect.name), message: readable(defect.message) }
    } catch {
      return { name: "Error", message: "an Error whose fields cannot be read" }
    }
  }
  return { name: "Defect", message: readable(defect) }
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

/**
 * A task's failure that could not leave its thread (a symbol, a function: no structured clone, no
 * JSON), or that its Schema refused there: its attempt fails with it, so the consumer retries it as
 * it retries that failure on a fiber (a `TaskCodecError` itself is final), and `encodeExit` stores
 * its `TaskCodecError` (part "failure").
 */
export class UnwrittenFailure {
  readonly error: TaskCodecError
  constructor(error: TaskCodecError) {
    this.error = error
  }
}

/** `{ _tag: "Success", value }` as JSON text, from the JSON text of `{ value }` (or `{}`). */
const successText = (text: string): string => text === "{}" ? `{"_tag":"Success"}` : `{"_tag":"Success",${text.slice(1)}`

interface Written {
  readonly text: string
  readonly ok: boolean
}

/**
 * `{ _tag, value }` (a success) or `{ _tag, error }` (a failure) as stored text, the value in its
 * task's JSON form. One without JSON text is stored as the `TaskCodecError` (part "success" or
 * "failure") that says so: undefined is left out, as JSON leaves it out of an object (it decodes
 * back to undefined), but a function or a symbol would come back as undefined too.
 */
const written = (task: Task.Any, tag: "Success" | "Failure", value: unknown): Effect.Effect<Written> => {
  const ok = tag === "Success"
  if (value === undefined) return Exit.succeed({ text: ok ? `{"_tag":"Success"}` : `{"_tag":"Failure"}`, ok })
  const text = jsonOf(task, ok ? "success" : "failure", value)
  if (typeof text !== "string") return machine(text)
  return Exit.succeed({ text: ok ? `{"_tag":"Success","value":${text}}` : `{"_tag":"Failure","error":${text}}`, ok })
}

/**
 * Encodes an attempt's Exit. A failure is the task's own error unless it is one of the machine's;
 * one that its Schema cannot encode, or that has no JSON text, is stored as a `TaskCodecError`
 * (part "failure"), as is such a success (part "success": `ok` is then false). Either way the
 * awaiter sees a typed error and the job ends as the consumer decides for that outcome: a success
 * that cannot be written is dead at once (its handler ran: another attempt would run it again for
 * a result that cannot be written either); a failure that cannot be written is retried as the
 * failure it is (the retry policy sees the task's own error), and its last attempt's is kept.
 */
export const encodeExit = (task: Task.Any, exit: Exit.Exit<unknown, unknown>): Effect.Effect<Written> => {
  if (Exit.isSuccess(exit)) {
    if (isInstance(exit.value, EncodedSuccess)) return Exit.succeed({ text: successText(exit.value.text), ok: true })
    const encoded = encodeWith(codecsOf(task).success, exit.value)
    // a Schema that runs no Effect encodes here and now (the usual case): an Exit, no steps to run
    if (Exit.isExit(encoded) && Exit.isSuccess(encoded)) return written(task, "Success", encoded.value)
    return Effect.matchCauseEffect(encoded, {
      onFailure: (cause) => machine(codecError(task, "success", Cause.squash(cause))),
      onSuccess: (value) => written(task, "Success", value)
    })
  }
  return Result.match(Cause.findError(exit.cause), {
    onSuccess: (error) =>
      isInstance(error, TaskCodecError) || isInstance(error, AttemptTimeout)
        ? machine(error)
        : isInstance(error, UnwrittenFailure)
        ? machine(error.error)
        : Effect.matchCauseEffect(encodeWith(codecsOf(task).failure, error), {
          onFailure: (cause) => machine(codecError(task, "failure", Cause.squash(cause))),
          onSuccess: (encoded) => written(task, "Failure", encoded)
        }),
    onFailure: (cause) => {
      const stored: Stored = {
        _tag: "Die",
        defect: defectOf(Result.getOrElse(Cause.findDefect(cause), () => new Error("interrupted")))
      }
      return Exit.succeed({ text: JSON.stringify(stored), ok: false })
    }
  })
}

/**
 * A Schema's encode (or, with `decodeWith`, decode) of any value, never a throw nor a defect: a
 * transformation that throws dies (Schema does not catch it), and would fail the settle; it is a
 * failure here, which `encodeExit` stores (and an awaiter reads) as the `TaskCodecError` it is.
 */
const caught = (run: (codec: Schema.Codec<any, any>) => (value: unknown) => unknown) =>
(codec: Schema.Codec<any, any>, value: unknown): Effect.Effect<unknown, unknown> => {
  let result: Effect.Effect<unknown, unknown>
  try {
    result = run(codec)(value) as Effect.Effect<unknown, unknown>
  } catch (defect) {
    return Exit.fail(defect)
  }
  return failing(result)
}

const encodeWith = caught(Schema.encodeUnknownEffect)
const decodeWith = caught(Schema.decodeUnknownEffect)

const failing = (result: Effect.Effect<unknown, unknown>): Effect.Effect<unknown, unknown> => {
  return Exit.isExit(result)
    ? Exit.isSuccess(result) ? result : Exit.fail(Cause.squash(result.cause))
    : Effect.catchCause(result, (cause) => Effect.fail(Cause.squash(cause)))
}

// its fields are strings the machine wrote: JSON text, always
const machine = (error: TaskCodecError | AttemptTimeout): Effect.Effect<Written> =>
  Schema.encodeUnknownEffect(MachineError)(error).pipe(
    Effect.map((encoded): Written => ({ text: JSON.stringify({ _tag: "Error", error: encoded } satisfies Stored), ok: false })),
    Effect.orDie
  )

/** What `JobQueue.await` can fail with, besides the task's own error. */
export type DurableFailure = TaskCodecError | AttemptTimeout | LeaseExpired | JobCancelled | JobExpired

/** Why a parsed exit is none that `encodeExit` writes, if it is not. */
const unwritten = (stored: unknown): string | undefined => {
  const what = `a stored exit ${readable(stored).slice(0, 100)}`
  if (typeof stored !== "object" || stored === null || Array.isArray(stored)) return `${what}, not an object`
  const { _tag, defect } = stored as { readonly _tag?: unknown; readonly defect?: unknown }
  if (_tag === "Success" || _tag === "Failure" || _tag === "Error") return undefined
  if (_tag !== "Die") return `${what}, of no known kind (_tag)`
  const { message, name } = (typeof defect === "object" && defect !== null ? defect : {}) as Record<string, unknown>
  return typeof message === "string" && typeof name === "string" ? undefined : `${what}, a defect without its name and message`
}

/** The Exit of a finished job (succeeded, dead or cancelled), decoded with its task's Schemas. */
export const decodeExit = <S, F>(task: Task.Any, job: JobRow): Effect.Effect<Exit.Exit<S, F | DurableFailure>> => {
  if (job.state === "cancelled") {
    const expired = expiredAt(job)
    return Effect.succeed(Exit.fail(
      expired === undefined ? new JobCancelled({ id: job.id }) : new JobExpired({ id: job.id, expiredAt: new Date(expired) })
    ))
  }
  if (job.exit === null) {
    return Effect.succeed(Exit.fail(new LeaseExpired({ id: job.id, attempt: job.attempts })))
  }
  let stored: Stored
  try {
    stored = JSON.parse(job.exit) as Stored
  } catch (error) {
    return Effect.succeed(Exit.fail(codecError(task, "success", error)))
  }
  // a row no version wrote (edited by hand, a damaged backup): its awaiter's typed error, not a TypeError
  const unknown = unwritten(stored)
  if (unknown !== undefined) return Effect.succeed(Exit.fail(codecError(task, "success", unknown)))
  const decode = (codec: Schema.Codec<any, any>, value: unknown, part: TaskCodecError["part"]) =>
    (decodeWith(codec, value) as Effect.Effect<any, unknown>).pipe(
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
