// Stands for the reader's own tasks module, for the examples that import `./tasks.ts` without
// showing it (a page that shows its tasks.ts gets its own).
import { Schema } from "effect"
import { Task } from "effect-workpool"

export class EmptyInput extends Schema.TaggedError<EmptyInput>()("EmptyInput", {}) {}

export const Hash = Task.make("Hash", {
  payload: Schema.Struct({ input: Schema.String, rounds: Schema.Number }),
  success: Schema.String,
  failure: EmptyInput
})

export const Resize = Task.make("Resize", {
  payload: Schema.Struct({ image: Schema.Uint8Array, width: Schema.Number }),
  success: Schema.Uint8Array
})
