import { Schema } from "effect"
import type { FreshJob } from "../../src/internal/store/model.ts"
import * as Task from "../../src/Task.ts"

/** The benchmark's job on our queue: its payload is a `BenchJob`. */
export const BenchTask = Task.make("BenchJob", {
  payload: Schema.Struct({ n: Schema.Number, t: Schema.Number }),
  success: Schema.Void
})

/** A job of task "Echo" in `queue`, as a store's own `enqueue` takes it (the many-queues benches call the store directly). */
export const echoJob = (queue: string): FreshJob => ({
  queue,
  task: "Echo",
  payload: "{}",
  priority: 0,
  dedupKey: null,
  maxAttempts: 3,
  timeout: 0,
  delay: 0,
  runAt: undefined
})
