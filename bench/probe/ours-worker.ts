/** The probe's worker for ours: the bench's tasks, each recording where and when it ran (marks.ts). */
import * as Effect from "effect/Effect"
import { workerData } from "node:worker_threads"
import * as Task from "../../src/Task.ts"
import * as ThreadWorker from "../../src/ThreadWorker.ts"
import { Cpu, Noop, Probe } from "../workers/ours-tasks.ts"
import { probe } from "../workers/cpu.ts"
import { marked, openMarks } from "./marks.ts"

const marks = workerData?.times ? openMarks(workerData) : undefined
ThreadWorker.serve([
  Task.handle(Cpu, (i) => Effect.sync(() => marked(marks, "cpu", i))),
  Task.handle(Noop, (i) => Effect.sync(() => marked(marks, "noop", i))),
  Task.handle(Probe, () => Effect.sync(probe))
])
