/**
 * A task that runs on a worker thread (`ThreadPool`) or as a durable job (`JobQueue`): a name and the
 * Schemas of its payload, its success and its failure. The same definition is imported by both
 * sides: the main thread (or producer) encodes the payload and decodes the outcome, the worker
 * thread (or consumer) decodes the payload and encodes the outcome. So a failure
 * comes back as an instance of its own class, with its fields, and `instanceof` works.
 *
 * @since 0.1.0
 */
// by subpath: worker threads load this module (see internal/jobInfo.ts)
import type * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"

/**
 * A task: its name (unique among the tasks a worker file serves) and the Schemas of its payload,
 * success and failure, with their decoded and encoded types. Made with `make`.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Task } from "effect-workpool"
 *
 * const Parse: Task.Task<"Parse", string, string, number, number, never, never> = Task.make("Parse", {
 *   payload: Schema.String,
 *   success: Schema.Number
 * })
 * ```
 * @since 0.1.0
 * @category models
 */
export interface Task<Name extends string, P, PE, S, SE, F, FE> {
  readonly name: Name
  readonly payload: Schema.Codec<P, PE>
  readonly success: Schema.Codec<S, SE>
  readonly failure: Schema.Codec<F, FE>
}

/**
 * Any task, for APIs that accept every task.
 *
 * @example
 * ```ts
 * import type { Task } from "effect-workpool"
 *
 * const names = (tasks: ReadonlyArray<Task.Any>) => tasks.map((task) => task.name)
 * ```
 * @since 0.1.0
 * @category models
 */
export type Any = Task<any, any, any, any, any, any, any>

/**
 * The payload type of a task, as the caller passes it.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Task } from "effect-workpool"
 *
 * const Square = Task.make("Square", { payload: Schema.Number, success: Schema.Number })
 * const input: Task.Payload<typeof Square> = 7
 * ```
 * @since 0.1.0
 * @category type-level
 */
export type Payload<T extends Any> = T extends Task<any, infer P, any, any, any, any, any> ? P : never
/**
 * The success type of a task, as its caller receives it.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Task } from "effect-workpool"
 *
 * const Square = Task.make("Square", { payload: Schema.Number, success: Schema.Number })
 * const output: Task.Success<typeof Square> = 49
 * ```
 * @since 0.1.0
 * @category type-level
 */
export type Success<T extends Any> = T extends Task<any, any, any, infer S, any, any, any> ? S : never
/**
 * The failure type of a task, decoded back into its class.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Task } from "effect-workpool"
 *
 * class Negative extends Schema.TaggedError<Negative>()("Negative", {}) {}
 * const Root = Task.make("Root", { payload: Schema.Number, success: Schema.Number, failure: Negative })
 * const failure: Task.Failure<typeof Root> = new Negative()
 * ```
 * @since 0.1.0
 * @category type-level
 */
export type Failure<T extends Any> = T extends Task<any, any, any, any, any, infer F, any> ? F : never

/**
 * Defines a task. `failure` defaults to `Schema.Never` (the task cannot fail, only die). A module of
 * tasks is loaded by every thread that serves them: import by subpath there, as below (`"effect"`
 * loads all of effect in each thread).
 *
 * @example
 * ```ts
 * import * as Schema from "effect/Schema"
 * import * as Task from "effect-workpool/Task"
 *
 * export class EmptyInput extends Schema.TaggedError<EmptyInput>()("EmptyInput", {}) {}
 *
 * export const Hash = Task.make("Hash", {
 *   payload: Schema.Struct({ input: Schema.String, rounds: Schema.Number }),
 *   success: Schema.String,
 *   failure: EmptyInput
 * })
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const make = <const Name extends string, P, PE, S, SE, F = never, FE = never>(
  name: Name,
  schemas: {
    readonly payload: Schema.Codec<P, PE>
    readonly success: Schema.Codec<S, SE>
    readonly failure?: Schema.Codec<F, FE> | undefined
  }
): Task<Name, P, PE, S, SE, F, FE> => {
  // a definition runs as its module loads, where a throw is the only answer: one that says what
  // `make` takes (the Schemas themselves are checked where the task is used, with typed errors)
  if (typeof name !== "string") throw new TypeError("Task.make: expected a name (a string) first, then { payload, success, failure? } Schemas")
  if (typeof schemas !== "object" || schemas === null) {
    throw new TypeError(`Task.make: expected { payload, success, failure? } Schemas for task ${name}`)
  }
  return {
    name,
    payload: schemas.payload,
    success: schemas.success,
    failure: (schemas.failure ?? Schema.Never) as Schema.Codec<F, FE>
  }
}

/**
 * A task's implementation on the worker thread, made with `handle`.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Task } from "effect-workpool"
 *
 * const Square = Task.make("Square", { payload: Schema.Number, success: Schema.Number })
 * const handlers: ReadonlyArray<Task.Handler<never>> = [Task.handle(Square, (n) => Effect.succeed(n * n))]
 * ```
 * @since 0.1.0
 * @category models
 */
export interface Handler<R> {
  readonly task: Any
  readonly run: (payload: unknown) => Effect.Effect<unknown, unknown, R>
}

/**
 * Implements a task, for `ThreadWorker.serve` in the worker entry file.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Task } from "effect-workpool"
 *
 * const Square = Task.make("Square", { payload: Schema.Number, success: Schema.Number })
 * const squareHandler = Task.handle(Square, (n) => Effect.succeed(n * n))
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const handle = <T extends Any, R = never>(
  task: T,
  run: (payload: Payload<T>) => Effect.Effect<Success<T>, Failure<T>, R>
): Handler<R> => ({ task, run: run as Handler<R>["run"] })

