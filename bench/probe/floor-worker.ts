/** The probe's floor worker: bench/workers/floor-worker.ts, each job recording where and when it ran (marks.ts). */
import { parentPort, workerData } from "node:worker_threads"
import { probe } from "../workers/cpu.ts"
import { marked, openMarks } from "./marks.ts"

const marks = openMarks(workerData)
const kind = workerData.kind as "cpu" | "noop"
const port = parentPort!
port.on("message", (i: number) => {
  port.postMessage(i < 0 ? probe() : marked(marks, kind, i))
})
