/**
 * Scenario 5 needs worker threads (src/ThreadPool.ts). Until it is written it
 * is listed as "not yet measured". To add it, replace `pending` with contestants: ours on threads,
 * and piscina, tinypool, poolifier and workerpool as anchors (install them then, pinned exact).
 */
import type { Scenario } from "../common.ts"

export const scenario: Scenario = {
  id: "5",
  title: "Worker threads (scenario 5 of the issue)",
  description: "One of the two thread scenarios of the issue (its exact jobs are defined there), with piscina, tinypool, poolifier and workerpool as anchors.",
  sizes: { full: { jobs: 0 }, quick: { jobs: 0 }, warmup: { jobs: 0 } },
  metrics: ["jobsPerSec"],
  contestants: [],
  targets: [],
  pending: "not yet measured: the thread scenarios are added once the worker-thread pool (src/ThreadPool.ts) and the thread-pool anchors are wired into the bench"
}
