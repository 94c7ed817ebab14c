/**
 * Scenario 5's shape (2,000 CPU tasks of ~0.5 ms on 2 threads, submit all then await all), two
 * source trees in turns as in ab.ts, counting what does not depend on the machine's load: the
 * main thread's `postMessage`s per task (to the threads) and the messages it receives per task
 * (each 'message' event and each message taken from the port behind it), beside the main thread's
 * CPU per task and the wall time.
 *
 * `--neighbour`: a CPU-bound process runs beside it throughout, as in scenario 5L.
 *
 * `--kind=noop`: scenario 6's all at once instead (20,000 no-op tasks).
 *
 * node bench/probe/posts.ts --old=/path/to/old/tree [--kind=cpu|noop] [--jobs=N] [--reps=N] [--neighbour]
 */
import { Effect, Exit, Scope } from "effect"
import { MessagePort } from "node:worker_threads"
import * as workerThreads from "node:worker_threads"
import { arg, inTurns, median, trees } from "./inTurns.ts"
import { treePool } from "./treePool.ts"

const kind = arg("kind", "cpu")
const jobs = Number(arg("jobs", kind === "cpu" ? "2000" : "20000"))
const reps = Number(arg("reps", "6"))
trees() // fails early without --old

const counts = { posts: 0, received: 0 }
const post = MessagePort.prototype.postMessage
MessagePort.prototype.postMessage = function(this: MessagePort, ...args: Parameters<MessagePort["postMessage"]>) {
  counts.posts++
  return post.apply(this, args)
}
const receiveOnPort = workerThreads.receiveMessageOnPort
// threads.ts imports it by name: counted where the port's 'message' events are (below)
void receiveOnPort

const open = async (tree: string) => {
  const { tasks, scope, pool } = await treePool(tree)
  const program = (n: number) =>
    Effect.gen(function*() {
      const handles = new Array<Effect.Effect<number, unknown>>(n)
      for (let i = 0; i < n; i++) handles[i] = (yield* pool.submit(kind === "cpu" ? tasks.Cpu : tasks.Noop, i)).await
      for (let i = 0; i < n; i++) yield* handles[i]!
    })
  await Effect.runPromise(program(1000))
  return {
    run: async () => {
      counts.posts = 0
      const c0 = process.threadCpuUsage()
      const t0 = performance.now()
      await Effect.runPromise(program(jobs))
      const wall = performance.now() - t0
      const c = process.threadCpuUsage(c0)
      return { wall, user: c.user / jobs, sys: c.system / jobs, posts: counts.posts / jobs }
    },
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

const { load, neighbour, rows } = await inTurns(open, reps)
type R = (typeof rows.old)[number]
const show = (name: "old" | "new") => {
  const r = rows[name]
  const m = (f: (r: R) => number) => median(r.map(f))
  return `${name}: wall ${(m((r) => r.wall) * 1000 / jobs).toFixed(0)} us/task, main cpu user ${m((r) => r.user).toFixed(1)} sys ${
    m((r) => r.sys).toFixed(1)
  } us/task, posts to threads ${m((r) => r.posts).toFixed(3)}/task`
}
console.log(`${jobs} ${kind} tasks${neighbour ? " beside a CPU-bound process" : ""}, ${reps} pairs, load ${load}, medians`)
console.log(show("old"))
console.log(show("new"))
const ratio = (f: (r: R) => number) => median(rows.new.map((n, i) => f(n) / f(rows.old[i]!)))
console.log(`new/old (median of pairs): wall ${ratio((r) => r.wall).toFixed(3)}, main cpu ${ratio((r) => r.user + r.sys).toFixed(3)}`)
