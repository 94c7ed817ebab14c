// A CommonJS consumer: require() of every entry (Node's require of an ES module, 20.19+ and
// 22.12+), a fiber pool job and a thread pool task. Prints "require ok {...}" or "require FAILED ...".
const path = require("node:path")
const { Effect } = require("effect")
const entries = ["", "/WorkPool", "/ThreadPool", "/ThreadWorker", "/Task", "/PoolError", "/JobQueue", "/JobStore",
  "/PgJobStore", "/RedisJobStore", "/DurableError", "/Dashboard"]
const loaded = entries.map((entry) => Object.keys(require(`effect-workpool${entry}`)).length > 0)
const { WorkPool } = require("effect-workpool")
const ThreadPool = require("effect-workpool/ThreadPool")

const program = Effect.gen(function*() {
  const pool = yield* WorkPool.make({ concurrency: 2 })
  const fiber = yield* pool.run(Effect.succeed(42))
  const { Square } = yield* Effect.promise(() => import("./tasks.mjs"))
  const threads = yield* ThreadPool.make({ worker: path.join(__dirname, "worker.mjs"), threads: 1 })
  const thread = yield* threads.run(Square, { n: 5 })
  return { entries: loaded.every(Boolean), fiber, thread }
})

Effect.runPromise(Effect.scoped(program)).then(
  (result) => console.log(`require ok ${JSON.stringify(result)}`),
  (error) => console.log(`require FAILED ${error?.stack ?? error}`)
)
