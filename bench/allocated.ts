/**
 * What running `run` in this process costs: its wall and CPU time (ms), the bytes it allocated
 * (what the garbage collections during it freed, plus the heap's growth) and the scavenges that
 * ran. Collect garbage (`gc()`, under --expose-gc) before calling it, for a steady heap to start
 * from. Shared by the in-process probes (trace-overhead.ts, trace-rounds.ts, ab-fiber.ts).
 */
import * as v8 from "node:v8"

export interface Allocated {
  readonly wall: number
  readonly cpu: number
  readonly bytes: number
  readonly scavenges: number
}

export const allocatedBy = async (run: () => Promise<unknown>): Promise<Allocated> => {
  const heapBefore = process.memoryUsage().heapUsed
  const profiler = new v8.GCProfiler()
  profiler.start()
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  await run()
  const wall = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  const heapAfter = process.memoryUsage().heapUsed
  let freed = 0
  let scavenges = 0
  for (const { afterGC, beforeGC, gcType } of profiler.stop()?.statistics ?? []) {
    freed += beforeGC.heapStatistics.usedHeapSize - afterGC.heapStatistics.usedHeapSize
    if (gcType === "Scavenge") scavenges++
  }
  return { wall, cpu: (cpu.user + cpu.system) / 1000, bytes: freed + heapAfter - heapBefore, scavenges }
}
