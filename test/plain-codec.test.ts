/**
 * A task's codec for a plain Schema (`Schema.Number`, `Schema.String`, `Schema.Boolean` as effect
 * exports them): the value itself once its `typeof` matches, without Effect's parser, and Effect's
 * own answer for anything else. Both sides of a ThreadPool use it (taskCodecs.ts, ThreadWorker.ts).
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Schema } from "effect"
import { PoolError } from "../src/index.ts"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import type * as Task from "../src/Task.ts"
import { codec, decoder, encoder } from "../src/internal/plainCodec.ts"
import { makePool } from "./fixtures/pool.ts"
import {
  OddBoolean,
  type OddKind,
  OddNumber,
  OddString,
  OddUnknown,
  oddValues,
  SameBoolean,
  SameNumber,
  SamePair,
  SameString
} from "./fixtures/tasks.ts"

/** Effect's codec of `schema`, counting how often it is built and called. */
const counted = () => {
  const counts = { built: 0, called: 0 }
  const make = (schema: Schema.Codec<unknown, unknown>) => {
    counts.built++
    const full = Schema.decodeUnknownExit(schema)
    return (input: unknown) => {
      counts.called++
      return full(input)
    }
  }
  return { counts, make }
}

const issue = (exit: Exit.Exit<unknown, unknown>): string => {
  assert.isTrue(Exit.isFailure(exit))
  return String((Cause.squash((exit as Exit.Failure<unknown, unknown>).cause) as Error).message)
}

describe("plainCodec", () => {
  it("a plain Schema's value of its type is itself, and Effect's codec is never built for it", () => {
    for (const [schema, values] of [
      [Schema.Number, [0, -0, 1.5, NaN, Infinity, -Infinity]],
      [Schema.String, ["", "x"]],
      [Schema.Boolean, [true, false]]
    ] as const) {
      const { counts, make } = counted()
      const decode = codec(schema, make)
      for (const value of values) {
        const exit = decode(value)
        assert.isTrue(Exit.isSuccess(exit))
        assert.isTrue(Object.is((exit as Exit.Success<unknown>).value, value))
        // Effect agrees
        assert.isTrue(Exit.isSuccess(Schema.decodeUnknownExit(schema as Schema.Codec<unknown>)(value)))
      }
      assert.deepStrictEqual(counts, { built: 0, called: 0 })
    }
  })

  it("a value of another type gets Effect's failure, its codec built once", () => {
    const { counts, make } = counted()
    const decode = codec(Schema.Number, make)
    for (const value of ["1", null, undefined, 1n, {}]) {
      assert.strictEqual(issue(decode(value)), issue(Schema.decodeUnknownExit(Schema.Number)(value)))
    }
    assert.deepStrictEqual(counts, { built: 1, called: 5 })
    assert.strictEqual(issue(decoder(Schema.String)(1)), issue(Schema.decodeUnknownExit(Schema.String)(1)))
    assert.strictEqual(issue(encoder(Schema.Boolean)(0)), issue(Schema.encodeUnknownExit(Schema.Boolean)(0)))
  })

  it("any other Schema, a checked or annotated Number too, is Effect's codec from the start", () => {
    for (const schema of [Schema.Int, Schema.Number.annotate({ title: "n" }), Schema.NumberFromString, Schema.Literal(1)]) {
      const { counts, make } = counted()
      codec(schema as Schema.Codec<unknown, unknown>, make)
      assert.strictEqual(counts.built, 1)
    }
    assert.isTrue(Exit.isFailure(decoder(Schema.Int)(1.5)))
    assert.deepStrictEqual(decoder(Schema.NumberFromString)("2"), Exit.succeed(2))
    assert.deepStrictEqual(encoder(Schema.NumberFromString)(2), Exit.succeed("2"))
  })
})

/** Effect's own answer for `value` under `schema`: its value, its issue's text, or what it threw. */
type Maker = (schema: Schema.Codec<unknown, unknown>) => (input: unknown) => Exit.Exit<unknown, Schema.SchemaError>
const effects = (make: Maker, schema: Schema.Codec<unknown, unknown>, value: unknown) => {
  try {
    const exit = make(schema)(value)
    return Exit.isSuccess(exit) ? { ok: exit.value } : { issue: issue(exit) }
  } catch (error) {
    return { threw: String(error) }
  }
}
const ours = (make: Maker, schema: Schema.Codec<unknown, unknown>, value: unknown) => {
  try {
    const exit = make(schema)(value)
    return Exit.isSuccess(exit) ? { ok: exit.value } : { issue: issue(exit) }
  } catch (error) {
    return { threw: String(error) }
  }
}
const plains = [Schema.Number, Schema.String, Schema.Boolean] as ReadonlyArray<Schema.Codec<unknown, unknown>>

describe("plainCodec: the same answer as Effect's codec at the edges", () => {
  it("every odd value, decoded and encoded under each plain Schema: the same value (Object.is) or the same issue text", () => {
    for (const schema of plains) {
      for (const [kind, make] of Object.entries(oddValues)) {
        for (const [mine, theirs] of [[decoder, Schema.decodeUnknownExit], [encoder, Schema.encodeUnknownExit]] as const) {
          const value = make()
          const got = ours(mine, schema, value)
          const want = effects(theirs, schema, value)
          const where = `${kind} under ${String(schema.ast._tag)} (${mine === decoder ? "decode" : "encode"})`
          assert.deepStrictEqual(Object.keys(got), Object.keys(want), where)
          if ("ok" in got) assert.isTrue(Object.is(got.ok, value) && Object.is(want.ok, value), where)
          else assert.deepStrictEqual(got, want, where)
        }
      }
    }
  })

  it("a Proxy whose every trap throws: Effect's answer (its failure or its throw), not a success", () => {
    const hostile = () => new Proxy({}, new Proxy({}, { get: () => () => { throw new Error("trap") } }))
    for (const schema of plains) {
      for (const [mine, theirs] of [[decoder, Schema.decodeUnknownExit], [encoder, Schema.encodeUnknownExit]] as const) {
        const got = ours(mine, schema, hostile())
        assert.notProperty(got, "ok")
        assert.deepStrictEqual(got, effects(theirs, schema, hostile()))
      }
    }
  })
})

/** What a thread's answer of `value` under `schema` must come back as on the main thread (before e345051's shortcut). */
const expectedAnswer = (schema: Schema.Codec<unknown, unknown>, value: unknown, fail: boolean) => {
  const part = fail ? "failure" : "success"
  let encoded: Exit.Exit<unknown, unknown>
  try {
    encoded = Schema.encodeUnknownExit(schema)(value)
  } catch {
    return { defect: true } as const
  }
  if (Exit.isFailure(encoded)) return { codec: part, issue: issue(encoded) } as const
  let cloned: unknown
  try {
    cloned = structuredClone(encoded.value)
  } catch {
    // cannot be posted: the task fails with its part (the issue is the clone's error)
    return { codec: part, issue: undefined } as const
  }
  const decoded = Schema.decodeUnknownExit(schema)(cloned)
  if (Exit.isFailure(decoded)) return { codec: part, issue: issue(decoded) } as const
  return fail ? { failure: decoded.value } as const : { success: decoded.value } as const
}

const check = (where: string, exit: Exit.Exit<unknown, unknown>, want: ReturnType<typeof expectedAnswer>) => {
  if ("success" in want) {
    assert.isTrue(Exit.isSuccess(exit), `${where}: ${String(exit)}`)
    const value = (exit as Exit.Success<unknown>).value
    if (typeof want.success === "object" && want.success !== null) assert.deepStrictEqual(value, want.success, where)
    else assert.isTrue(Object.is(value, want.success), `${where}: ${String(value)}`)
    return
  }
  assert.isTrue(Exit.isFailure(exit), where)
  const cause = (exit as Exit.Failure<unknown, unknown>).cause
  if ("defect" in want) {
    assert.isTrue(Cause.hasDies(cause), `${where}: ${String(cause)}`)
    return
  }
  const error = Cause.findErrorOption(cause)
  assert.strictEqual(error._tag, "Some", `${where}: ${String(cause)}`)
  const found = (error as { readonly value: unknown }).value
  if ("failure" in want) {
    if (typeof want.failure === "object" && want.failure !== null) assert.deepStrictEqual(found, want.failure, where)
    else assert.isTrue(Object.is(found, want.failure), `${where}: ${String(found)}`)
    return
  }
  assert.instanceOf(found, PoolError.TaskCodecError, where)
  const codecError = found as PoolError.TaskCodecError
  assert.strictEqual(codecError.part, want.codec, where)
  if (want.issue !== undefined) assert.strictEqual(codecError.issue, want.issue, where)
}

describe("plainCodec on a ThreadPool: the thread's encode and the main thread's decode agree with Effect's codec", () => {
  it.live("odd successes and failures under Number, String, Boolean and Unknown, all at once (batches mix successes, failures, codec errors and defects)", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 2 })
      const cases = [OddNumber, OddString, OddBoolean, OddUnknown].flatMap((task) =>
        (Object.keys(oddValues) as Array<OddKind>).flatMap((kind) =>
          [false, true].flatMap((fail) => [false, true].map((async) => ({ task, kind, fail, async })))
        )
      )
      // twice: the first round builds Effect's codec of each plain Schema on demand, the second reuses it
      for (let round = 0; round < 2; round++) {
        const exits = yield* Effect.forEach(
          cases,
          ({ async, fail, kind, task }) => Effect.exit(pool.run(task as typeof OddUnknown, { kind, fail, async })),
          { concurrency: "unbounded" }
        )
        cases.forEach(({ async, fail, kind, task }, i) => {
          const where = `round ${round}: ${task.name} ${kind} ${fail ? "failing" : "succeeding"}${async ? " async" : ""}`
          check(where, exits[i]!, expectedAnswer(task.success as Schema.Codec<unknown, unknown>, oddValues[kind](), fail))
        })
      }
    }), 60_000)

  it.live("odd payloads on submit: the same TaskCodecError (part payload, Effect's issue) or the same value back", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1 })
      for (const task of [SameNumber, SameString, SameBoolean]) {
        for (const [kind, make] of Object.entries(oddValues)) {
          const where = `${task.name} ${kind}`
          const exit = yield* Effect.exit(pool.run(task as typeof SameNumber, make() as number))
          const encoded = Schema.encodeUnknownExit(task.payload as Schema.Codec<unknown, unknown>)(make())
          if (Exit.isFailure(encoded)) {
            assert.isTrue(Exit.isFailure(exit), where)
            const error = Cause.squash((exit as Exit.Failure<unknown, unknown>).cause)
            assert.instanceOf(error, PoolError.TaskCodecError, where)
            assert.deepStrictEqual(
              [(error as PoolError.TaskCodecError).part, (error as PoolError.TaskCodecError).issue],
              ["payload", issue(encoded)],
              where
            )
          } else {
            assert.isTrue(Exit.isSuccess(exit), where)
            assert.isTrue(Object.is((exit as Exit.Success<unknown>).value, make()), where)
          }
        }
      }
      // a pair under a Tuple Schema: its success message `[id, [1, 2]]` is not taken for a batch
      assert.deepStrictEqual(yield* pool.run(SamePair, [1, 2]), [1, 2])
      assert.deepStrictEqual(
        yield* Effect.forEach([[1, 2], [3, 4], [NaN, -0]] as const, (pair) => pool.run(SamePair, pair), { concurrency: "unbounded" }),
        [[1, 2], [3, 4], [NaN, -0]]
      )
    }), 60_000)
})

describe("plainCodec and durable jobs on threads: they keep Effect's JSON codec, and agree with a direct run", () => {
  it.live("plain-Schema jobs (NaN, -0, ±Infinity, lone surrogates, odd successes and failures) end as the same run on the pool directly ends", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 2 })
      yield* JobQueue.consume({
        threadPool: pool,
        tasks: [SameNumber, SameString, SameBoolean, OddNumber, OddString, OddBoolean],
        poll: 10
      })
      const runs: Array<readonly [string, Task.Any, unknown]> = [
        ...[1.5, NaN, -0, Infinity, -Infinity].map((n) => [`SameNumber ${n}`, SameNumber, n] as const),
        ["SameString lone surrogates", SameString, "a\ud800b\udc00"],
        ["SameString tag", SameString, "done"],
        ["SameBoolean false", SameBoolean, false],
        ...[OddNumber, OddString, OddBoolean].flatMap((task) =>
          (["number", "nan", "negZero", "string", "loneSurrogate", "true", "null", "undefined", "pair", "doneShape"] as const)
            .flatMap((kind) => [false, true].map((fail) => [`${task.name} ${kind}${fail ? " failing" : ""}`, task, { kind, fail, async: fail }] as const))
        )
      ]
      const jobs = yield* Effect.forEach(runs, ([, task, payload]) => JobQueue.enqueue(task, payload as never, { maxAttempts: 1 }))
      const durable = yield* Effect.forEach(jobs, (job) => Effect.exit(job.await), { concurrency: "unbounded" })
      const direct = yield* Effect.forEach(runs, ([, task, payload]) => Effect.exit(pool.run(task as typeof SameNumber, payload as number)), { concurrency: "unbounded" })
      runs.forEach(([where], i) => {
        const [a, b] = [durable[i]!, direct[i]!]
        assert.strictEqual(a._tag, b._tag, where)
        if (Exit.isSuccess(a)) {
          // JSON has no -0: a durable job's -0 comes back 0 (the store's JSON form, before e345051 too)
          const value = (b as Exit.Success<unknown>).value
          assert.isTrue(Object.is(a.value, value) || (a.value === 0 && value === 0), `${where}: ${String(a.value)}`)
          return
        }
        const [x, y] = [Cause.squash(a.cause), Cause.squash((b as Exit.Failure<unknown, unknown>).cause)]
        if (x instanceof PoolError.TaskCodecError) {
          assert.instanceOf(y, PoolError.TaskCodecError, where)
          assert.strictEqual(x.part, (y as PoolError.TaskCodecError).part, where)
        } else assert.isTrue(Object.is(x, y) || (x === 0 && y === 0), `${where}: ${String(x)} vs ${String(y)}`)
      })
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory())), 60_000)
})
