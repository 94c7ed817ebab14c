import { Schema } from "effect"
import * as Task from "../../src/Task.ts"

/** The benchmark's job on our queue: its payload is a `BenchJob`. */
export const BenchTask = Task.make("BenchJob", {
  payload: Schema.Struct({ n: Schema.Number, t: Schema.Number }),
  success: Schema.Void
})
