/**
 * A task's codec for one of its Schemas, used by both sides of a `ThreadPool` (taskCodecs.ts on
 * the main thread, ThreadWorker on the thread). For `Schema.Number`, `Schema.String` and
 * `Schema.Boolean` as they are (no annotation, check or transformation: the very objects effect
 * exports), decoding and encoding give back the value itself once its `typeof` matches: the codec
 * checks that and nothing else. Effect's parser would reach the same answer through a dozen
 * functions per call (the parser's closures, its `Exit`s, the AST's checks), which a new thread
 * runs cold for its first thousands of tasks and V8 compiles again in every thread. A value of
 * another type goes to Effect's codec, built then: its failure (and its issue's text) is Effect's.
 *
 * Imports effect by subpath: threads load this file (see ThreadWorker.ts).
 *
 * @internal
 */
import * as Exit from "effect/Exit"
import * as Schema from "effect/Schema"

// `any` as Effect's own codecs of a `Task.Any` give it
export type Codec = (input: unknown) => Exit.Exit<any, Schema.SchemaError>

type Make = (schema: Schema.Codec<unknown, unknown>) => Codec

/** Each plain Schema and the `typeof` of every value it decodes and encodes unchanged. */
const PLAIN: ReadonlyMap<unknown, string> = new Map<unknown, string>([
  [Schema.Number, "number"],
  [Schema.String, "string"],
  [Schema.Boolean, "boolean"]
])

/**
 * `make`'s codec of `schema`, whose throws are its defects. Effect's parser catches what a Schema's
 * transformations and checks throw, but not all: a `Schema.suspend` whose thunk throws (a recursive
 * Schema whose other half is not initialized yet) throws through it. Thrown, it would end up in the
 * pool's dispatch or in a thread's answer handler on the main thread (the process crashed), or in a
 * thread's message handler (the thread crashed, with every task on it), rather than fail its task.
 */
const guarded = (schema: Schema.Codec<any, any>, make: Make): Codec => {
  let codec: Codec
  try {
    codec = make(schema)
  } catch (error) {
    return () => Exit.die(error)
  }
  return (input) => {
    try {
      return codec(input)
    } catch (error) {
      return Exit.die(error)
    }
  }
}

/** `make`'s codec of `schema`, or for a plain Schema one that calls `make` only for a value of another type. */
export const codec = (schema: Schema.Codec<any, any>, make: Make): Codec => {
  const type = PLAIN.get(schema)
  if (type === undefined) return guarded(schema, make)
  let full: Codec | undefined
  return (input) => typeof input === type ? Exit.succeed(input) : (full ??= guarded(schema, make))(input)
}

export const decoder = (schema: Schema.Codec<any, any>): Codec => codec(schema, Schema.decodeUnknownExit)

export const encoder = (schema: Schema.Codec<any, any>): Codec => codec(schema, Schema.encodeUnknownExit)
