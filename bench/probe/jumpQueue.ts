/**
 * What a thread's offers cost a task that should jump the queue: with scenario 5's tasks (~0.5 ms
 * of CPU) queued well past what 2 threads hold, one task of a higher priority is submitted, and its
 * time from submit to answer is taken. Were it sent behind the tasks its thread already holds, it
 * would wait up to the offers' window (threads.ts `WINDOW`); the scheduler takes those back for it
 * instead (scheduler.ts `offerQueued`). Two source trees in turns (inTurns.ts).
 *
 * node bench/probe/jumpQueue.ts --old=/path/to/old/tree [--reps=N] [--neighbour]
 */
import { Effect, Exit, Scope } from "effect"
import { setTimeout as sleep } from "node:timers/promises"
import { arg, inTurns, median } from "./inTurns.ts"
import { treePool } from "./treePool.ts"

const reps = Number(arg("reps", "10"))
const BACKLOG = 600

const open = async (tree: string) => {
  const { tasks, scope, pool } = await treePool(tree)
  const backlog = (n: number) =>
    Effect.forEach(Array.from({ length: n }, (_, i) => i), (i) => pool.submit(tasks.Cpu, i))
  // warm: the threads' pace is measured, as in a long run
  await Effect.runPromise(Effect.flatMap(backlog(1000), (hs) => Effect.forEach(hs, (h) => h.await, { discard: true })))
  return {
    run: async () => {
      const handles = await Effect.runPromise(backlog(BACKLOG))
      // the threads are busy and hold their offers by now
      await sleep(30)
      const t0 = performance.now()
      await Effect.runPromise(Effect.flatMap(pool.submit(tasks.Cpu, 1, { priority: 10 }), (h) => h.await))
      const waited = performance.now() - t0
      await Effect.runPromise(Effect.forEach(handles, (h) => h.await, { discard: true }))
      return waited
    },
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

const { load, neighbour, rows } = await inTurns(open, reps)
const show = (name: "old" | "new") =>
  `${name}: submit to answer median ${median(rows[name]).toFixed(2)} ms, min ${Math.min(...rows[name]).toFixed(2)}, max ${
    Math.max(...rows[name]).toFixed(2)
  }`
console.log(`a priority task behind ${BACKLOG} queued${neighbour ? ", beside a CPU-bound process" : ""}, ${reps} pairs, load ${load}`)
console.log(show("old"))
console.log(show("new"))
