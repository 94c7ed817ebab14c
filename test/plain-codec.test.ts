/**
 * A task's codec for a plain Schema (`Schema.Number`, `Schema.String`, `Schema.Boolean` as effect
 * exports them): the value itself once its `typeof` matches, without Effect's parser, and Effect's
 * own answer for anything else. Both sides of a ThreadPool use it (taskCodecs.ts, ThreadWorker.ts).
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Exit, Schema } from "effect"
import { codec, decoder, encoder } from "../src/internal/protocol.ts"

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

describe("protocol: a plain Schema's codec", () => {
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
