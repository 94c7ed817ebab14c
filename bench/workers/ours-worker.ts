/** Our worker entry file: serves the four tasks, each the plain function of cpu.ts. */
import * as Effect from "effect/Effect"
import * as Task from "../../src/Task.ts"
import * as ThreadWorker from "../../src/ThreadWorker.ts"
import { barrier, cpu, noop, probe } from "./cpu.ts"
import { Barrier, Cpu, Noop, Probe } from "./ours-tasks.ts"

ThreadWorker.serve([
  Task.handle(Cpu, (i) => Effect.sync(() => cpu(i))),
  Task.handle(Noop, (i) => Effect.succeed(noop(i))),
  Task.handle(Probe, () => Effect.sync(probe)),
  Task.handle(Barrier, (cells) => Effect.sync(() => barrier(cells)))
])
