/**
 * What a job is: an `Effect`, or a function `(resource, jobId) => Effect` called when it starts.
 * The two are told apart by `Effect.isEffect` first, never by `typeof === "function"` alone: in
 * Effect 4 a `Context.Service` key (a class) and a `Context.Reference` are functions that are also
 * Effects, and must run as the Effects they are.
 *
 * @internal
 */
import { Effect, Exit } from "effect"
import { InvalidJob } from "../PoolError.ts"
import type * as Task from "../Task.ts"
import { type Invalid, isClass, type OptionError, show } from "./config.ts"
import { ARGS, EXITS, IDENTIFIER, SYNC } from "./effectShapes.ts"

/**
 * Whether a job is an `Effect.sync`: its prototype, one comparison. Asked first, because asking any
 * value whether it is an Effect (`Effect.isEffect`, a property lookup on objects of every shape) is
 * a megamorphic access that cost a trivial job a few percent.
 */
const isSync = (job: unknown): boolean => SYNC !== undefined && typeof job === "object" && job !== null &&
  Object.getPrototypeOf(job) === SYNC

/**
 * The function of an `Effect.sync` job, if the job is one. Such a job runs to its end as soon as it
 * starts, on the starting stack, whether in a fiber or not, and it cannot read its fiber's services
 * (only an Effect can), so the fiber executor runs it without a fiber: a fiber and its context cost
 * a trivial job about half of its time. Anything else gets a fiber.
 */
export const syncThunk = (effect: Effect.Effect<any, any, any>): (() => unknown) | undefined => {
  if (!isSync(effect)) return undefined
  const thunk = (effect as unknown as Record<string, unknown>)[ARGS]
  return typeof thunk === "function" ? thunk as () => unknown : undefined
}

/**
 * The job itself if it is an Exit (`Effect.succeed`, `Effect.fail`, ...), which is already its own
 * result. By its prototype, as `isSync`: `Exit.isExit` on Effects of every shape is megamorphic. A
 * value it does not recognize runs in a fiber, with the same result.
 */
export const asExit = (effect: Effect.Effect<any, any, any>): Exit.Exit<any, any> | undefined => {
  const proto = Object.getPrototypeOf(effect)
  // its tag read here, where a Proxy's trap that throws is the job's defect (fiberExecutor's start),
  // not in the scheduler as it counts the job's ending
  return (proto === EXITS[0] || proto === EXITS[1]) && (effect as Exit.Exit<any, any>)._tag !== undefined
    ? effect as Exit.Exit<any, any>
    : undefined
}

/**
 * A callback primitive (`Effect.promise`, `Effect.tryPromise`, `Effect.callback`): the function it
 * registers, and whether that function takes an `AbortSignal` (Effect 4.1's own fields).
 */
export interface Callback {
  readonly register: (
    this: unknown,
    resume: (effect: Effect.Effect<any, any, any>) => void,
    signal?: AbortSignal
  ) => void | Effect.Effect<void, never, any>
  readonly withSignal: boolean
}

/** The prototype every callback primitive shares, if it is the one `asCallback` expects. */
const CALLBACK: object | undefined = (() => {
  const effect = Effect.callback<void>(() => {}) as unknown as Record<string, unknown>
  const proto = Object.getPrototypeOf(effect) as Record<string, unknown>
  return proto[IDENTIFIER] === "Async" && typeof effect.register === "function" && typeof effect.withSignal === "boolean"
    ? proto
    : undefined
})()

const registerOf = (effect: unknown): unknown => (effect as { readonly register?: unknown }).register

/** `Effect.never`'s register (it does nothing). */
const NEVER = registerOf(Effect.never)

/**
 * The source text of the registers of `Effect.promise` and `Effect.tryPromise`, which call the job's
 * function and resume with its outcome, and read nothing of their fiber. Other callback primitives
 * may: `Effect.request`'s register reads the current fiber's services (outside a fiber it dies with
 * a TypeError), and so may a user's `Effect.callback`. Each `Effect.promise` has a register of its own
 * (a closure), but all share this text (test/callback-jobs.test.ts pins it: an Effect upgrade that
 * changes it fails there, to be reviewed).
 */
const FIBERLESS: ReadonlyArray<string> = [Effect.promise(() => Promise.resolve()), Effect.tryPromise(() => Promise.resolve())]
  .map(registerOf)
  .filter((register) => typeof register === "function")
  .map((register) => Function.prototype.toString.call(register))

const isFiberless = (register: unknown): boolean =>
  register === NEVER ||
  (typeof register === "function" && FIBERLESS.includes(Function.prototype.toString.call(register)))

/**
 * The job itself if it is a callback primitive that needs no fiber to register (`Effect.promise`,
 * `Effect.tryPromise`, `Effect.never`), by its prototype as `isSync`, then its register's source
 * text. Such a job's first step only registers its callback (an `Effect.promise` calls its
 * function), which needs no fiber; a fiber is needed only if what it resumes with is more than an
 * Exit. Any other callback primitive (`Effect.callback`, `Effect.request`) gets a fiber.
 */
export const asCallback = (effect: Effect.Effect<any, any, any>): Callback | undefined =>
  CALLBACK !== undefined && Object.getPrototypeOf(effect) === CALLBACK && isFiberless(registerOf(effect))
    ? effect as unknown as Callback
    : undefined

export type JobFunction = (resource: any, jobId: number) => Effect.Effect<any, any, any>

/**
 * The Effect a job runs: the job itself, or what its function returns. For `runAll`'s jobs of
 * different types, typed as the union of their successes, errors and services.
 */
type Runs<J> = J extends Effect.Effect<any, any, any> ? J : J extends (...args: ReadonlyArray<any>) => infer F ? F : never
// each over a union of Effects member by member (a naked type parameter distributes)
type SuccessOf<F> = F extends Effect.Effect<infer A, infer _E, infer _R> ? A : never
type FailureOf<F> = F extends Effect.Effect<infer _A, infer E, infer _R> ? E : never
type ServicesOf<F> = F extends Effect.Effect<infer _A, infer _E, infer R> ? R : never
/** What a job succeeds with. */
export type Success<J> = SuccessOf<Runs<J>>
/** What a job fails with. */
export type Failure<J> = FailureOf<Runs<J>>
/** The services a job needs. */
export type Services<J> = ServicesOf<Runs<J>>

/** Whether a (valid) job is the function form. */
export const isFunction = (job: Effect.Effect<any, any, any> | JobFunction): job is JobFunction =>
  typeof job === "function" && !Effect.isEffect(job)

const EXPECTED = "expected an Effect or a function (resource, jobId) => Effect"

/**
 * Whether a value submitted as a job is one of the two forms. A class that is not an Effect is not
 * the function form: it would die with "Class constructor cannot be invoked without 'new'" when the
 * job starts. Never throws: asking a revoked Proxy, or one whose traps throw, is answered no (it
 * threw out of `run`, `submit` and `runAll` as a defect).
 */
export const isJob = (job: unknown): boolean => {
  try {
    return isSync(job) || Effect.isEffect(job) || (typeof job === "function" && !isClass(job))
  } catch {
    return false
  }
}

/** Why a value submitted as a job (`field`) is none: what `InvalidJob` says of it. */
export const notAJob = (job: unknown, field: string): Invalid => ({ field, value: show(job), reason: EXPECTED })

/** The error for a value submitted as a job that is neither form, or undefined if it is a job. */
export const check = (job: unknown, field: string): InvalidJob | undefined =>
  isJob(job) ? undefined : new InvalidJob(notAJob(job, field))

/** A batch's `OptionError` (`runAll`'s jobs or payloads that could not be read) as the pools' `InvalidJob`. */
export const refusedBatch = (error: OptionError): InvalidJob => new InvalidJob(error.invalid)

/** The error for a function argument (`mapStream`'s `f`) that is not one: calling it would throw per element. */
export const checkFunction = (value: unknown, field: string, what: string): InvalidJob | undefined =>
  typeof value === "function" ? undefined : new InvalidJob({ field, value: show(value), reason: `expected ${what}` })

/** The defect of a function job whose function returned something else than an Effect. */
export const notAnEffect = (jobId: number, returned: unknown): Error =>
  new Error(`job ${jobId}: its function returned ${show(returned)}, not an Effect`)

/**
 * A task handler's Effect for a payload. A handler that returned something else (written `async`, as
 * other queues' handlers are) dies naming its task, rather than with the run loop's "Not a valid
 * effect" once the pool runs it.
 */
export const runHandler = <R>(handler: Task.Handler<R>, payload: unknown): Effect.Effect<unknown, unknown, R> => {
  const effect = handler.run(payload)
  return Effect.isEffect(effect)
    ? effect
    : Exit.die(new TypeError(`the handler of task ${handler.task.name} returned ${show(effect)}, not an Effect`))
}
