/**
 * The hand-written floor's worker: the simplest protocol there is. The main thread posts a job
 * number; the thread posts back the task's result, a number (a negative number asks for a probe).
 * The task (`"cpu"` or `"noop"`) is fixed per thread by `workerData`. Replies come in the order of
 * the requests, so the main thread needs no ids: it keeps a FIFO of job numbers per thread.
 */
import { parentPort, workerData } from "node:worker_threads"
import { cpu, noop, probe } from "./cpu.ts"

const port = parentPort!
const task = (workerData as { task: "cpu" | "noop" }).task === "cpu" ? cpu : noop
port.on("message", (i: number) => {
  port.postMessage(i < 0 ? probe() : task(i))
})
