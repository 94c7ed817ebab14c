// A consumer's program on the fiber pool, in plain JavaScript and with nothing of Node's: the
// consumer test runs it on Node 24 and Node 20, and bundles it with esbuild for node and for the
// browser. It prints one line: "workpool ok {...}" or "workpool FAILED ...".
import { Effect, Schema } from "effect"
import { PoolError, Task, WorkPool } from "effect-workpool"
import * as PoolErrorEntry from "effect-workpool/PoolError"
import * as TaskEntry from "effect-workpool/Task"
import * as WorkPoolEntry from "effect-workpool/WorkPool"

const program = Effect.gen(function*() {
  // paused, so the three jobs wait in the queue and then run by priority
  const pool = yield* WorkPool.make({ concurrency: 1, capacity: 3, overflow: "fail", paused: true })
  const order = []
  const job = (name) => Effect.sync(() => (order.push(name), name.toUpperCase()))
  const handles = []
  for (const [name, priority] of [["low", 0], ["high", 2], ["mid", 1]]) {
    handles.push(yield* pool.submit(job(name), { priority }))
  }
  const overflow = yield* pool.submit(job("extra")).pipe(
    Effect.map(() => "admitted"),
    Effect.catchTag("QueueFull", (error) => Effect.succeed(`${error._tag} ${error instanceof PoolError.QueueFull}`))
  )
  yield* pool.resume
  const results = yield* Effect.forEach(handles, (handle) => handle.await)
  const Echo = Task.make("Echo", { payload: Schema.String, success: Schema.String })
  return {
    order,
    results,
    overflow,
    // the root's namespaces are the subpaths' modules, not copies
    sameModules: WorkPool.make === WorkPoolEntry.make && PoolError.QueueFull === PoolErrorEntry.QueueFull &&
      Task.make === TaskEntry.make,
    task: Echo.name
  }
})

Effect.runPromise(Effect.scoped(program)).then(
  (result) => console.log(`workpool ok ${JSON.stringify(result)}`),
  (error) => console.log(`workpool FAILED ${error?.stack ?? error}`)
)
