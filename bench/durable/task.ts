import { Schema } from "effect"
import * as Task from "../../src/Task.ts"

export const Noop = Task.make("Noop", { payload: Schema.Number, success: Schema.Void })
