/**
 * The probes' thread pool from a given tree (this one, or another checkout for an A/B in one
 * process): its ThreadPool module and bench tasks loaded from there, a pool of 2 threads on the bench
 * worker, in a scope the probe closes.
 */
import { Effect, Scope } from "effect"
import * as path from "node:path"
import { pathToFileURL } from "node:url"

export const treePool = async (tree: string) => {
  const ThreadPool: typeof import("../../src/ThreadPool.ts") = await import(pathToFileURL(path.join(tree, "src/ThreadPool.ts")).href)
  const tasks: typeof import("../workers/ours-tasks.ts") = await import(pathToFileURL(path.join(tree, "bench/workers/ours-tasks.ts")).href)
  const scope = Effect.runSync(Scope.make())
  const pool: import("../../src/ThreadPool.ts").ThreadPool = await Effect.runPromise(
    ThreadPool.make({ worker: pathToFileURL(path.join(tree, "bench/workers/ours-worker.ts")), threads: 2, capacity: Infinity })
      .pipe(Scope.provide(scope))
  )
  return { tasks, scope, pool }
}
