/**
 * What a job is: an `Effect`, or a function `(resource, jobId) => Effect` called when it starts.
 * The two are told apart by `Effect.isEffect` first, never by `typeof === "function"` alone: in
 * Effect 4 a `Context.Service` key (a class) and a `Context.Reference` are functions that are also
 * Effects, and must run as the Effects they are.
 *
 * @internal
 */
import { Effect } from "effect"
import { InvalidJob } from "../PoolError.ts"
import { isClass, show } from "./config.ts"

export type JobFunction = (resource: any, jobId: number) => Effect.Effect<any, any, any>

/** Whether a (valid) job is the function form. */
export const isFunction = (job: Effect.Effect<any, any, any> | JobFunction): job is JobFunction =>
  typeof job === "function" && !Effect.isEffect(job)

const EXPECTED = "expected an Effect or a function (resource, jobId) => Effect"

/**
 * The error for a value submitted as a job that is neither form, or undefined if it is a job. A
 * class that is not an Effect is not the function form: it would die with "Class constructor cannot
 * be invoked without 'new'" when the job starts.
 */
export const check = (job: unknown, field: string): InvalidJob | undefined =>
  Effect.isEffect(job) || (typeof job === "function" && !isClass(job))
    ? undefined
    : new InvalidJob({ field, value: show(job), reason: EXPECTED })

/** The error for a batch (`runAll`'s jobs or payloads) that is not iterable: `Array.from` would throw. */
export const checkIterable = (value: unknown, field: string, what: string): InvalidJob | undefined =>
  typeof (value as { readonly [Symbol.iterator]?: unknown } | null | undefined)?.[Symbol.iterator] === "function"
    ? undefined
    : new InvalidJob({ field, value: show(value), reason: `expected an iterable of ${what} (an array, say)` })

/** The defect of a function job whose function returned something else than an Effect. */
export const notAnEffect = (jobId: number, returned: unknown): Error =>
  new Error(`job ${jobId}: its function returned ${show(returned)}, not an Effect`)
