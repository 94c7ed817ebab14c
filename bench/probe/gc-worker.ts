/**
 * Probe worker (bench/probe/firstGc.ts): ours-worker.ts, with each major GC of the thread appended
 * to the file named by GC_LOG as `threadId epochMs pauseMs`, and `threadId epochMs ready` once the worker
 * file has loaded (it posts its ready message as it loads).
 */
import { appendFileSync } from "node:fs"
import { constants, PerformanceObserver } from "node:perf_hooks"
import { threadId } from "node:worker_threads"

const file = process.env.GC_LOG
if (file !== undefined) {
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = (entry as unknown as { detail: { kind: number } }).detail.kind
      if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
        appendFileSync(file, `${threadId} ${performance.timeOrigin + entry.startTime} ${entry.duration}\n`)
      }
    }
  }).observe({ entryTypes: ["gc"] })
}
await import("../workers/ours-worker.ts")
if (file !== undefined) appendFileSync(file, `${threadId} ${performance.timeOrigin + performance.now()} ready\n`)
