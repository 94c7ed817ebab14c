/**
 * Scenario 5L: scenario 5 (CPU on threads) while another CPU-bound process runs (bench/load.ts).
 * With 2 cores, the pool's 2 threads, its main thread and the neighbour share them: the speedup
 * over the main thread alone falls for everyone; what matters is how much each pool keeps.
 */
import { underLoad } from "../load.ts"
import { scenario as cpuOnThreads } from "./05-threads.ts"

export const scenario = underLoad(cpuOnThreads, {
  id: "5L",
  title: "CPU on threads, under load",
  notes: [
    "The speedup over the main thread alone is not bounded by 2× here: the main thread alone shares the machine with the " +
      "spinning process too, and loses more of its one core to it than a pool spread over both does."
  ]
})
