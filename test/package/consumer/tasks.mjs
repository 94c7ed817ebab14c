// The consumer's task definitions, imported by both sides of its thread pool.
import { Schema } from "effect"
import { Task } from "effect-workpool"

export class Negative extends Schema.TaggedError()("Negative", { n: Schema.Number }) {}

export const Square = Task.make("Square", {
  payload: Schema.Struct({ n: Schema.Number }),
  success: Schema.Number,
  failure: Negative
})
