/**
 * Our tasks for the thread scenarios, imported by both sides: the main thread (ThreadPool) and
 * ours-worker.ts (ThreadWorker.serve). See cpu.ts for what each does.
 */
import * as Schema from "effect/Schema"
import * as Task from "../../src/Task.ts"

export const Cpu = Task.make("Cpu", { payload: Schema.Number, success: Schema.Number })
export const Noop = Task.make("Noop", { payload: Schema.Number, success: Schema.Number })
export const Probe = Task.make("Probe", { payload: Schema.Number, success: Schema.Number })
export const Barrier = Task.make("Barrier", { payload: Schema.instanceOf(Int32Array), success: Schema.Number })
