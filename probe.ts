// quick throughput probe (not committed): enqueue N, drain with one in-process consumer
import { Effect, Schema } from "effect"
import * as JobQueue from "/work/wt/redis/src/JobQueue.ts"
import * as RedisJobStore from "/work/wt/redis/src/RedisJobStore.ts"
import * as Task from "/work/wt/redis/src/Task.ts"
const Work = Task.make("Work", { payload: Schema.Struct({ n: Schema.Number }), success: Schema.Number })
const N = Number(process.argv[2] ?? 3000)
const prefix = `wp-probe:${Date.now()}`
const prog = Effect.gen(function*() {
  const t0 = Date.now()
  yield* Effect.forEach(Array.from({ length: N }, (_, n) => n), (n) => JobQueue.enqueue(Work, { n }), { concurrency: 16 })
  const t1 = Date.now()
  console.log(`enqueue ${N}: ${Math.round(N / ((t1 - t0) / 1000))}/s`)
  yield* Effect.scoped(Effect.gen(function*() {
    yield* JobQueue.consume({ handlers: [Task.handle(Work, ({ n }) => Effect.succeed(n))], concurrency: 32 })
    while ((yield* JobQueue.stats("default")).succeeded < N) yield* Effect.sleep(20)
  }))
  const t2 = Date.now()
  console.log(`drain ${N} (1 consumer × 32): ${Math.round(N / ((t2 - t1) / 1000))}/s`)
})
Effect.runPromise(prog.pipe(Effect.provide(RedisJobStore.layer({ url: "redis://127.0.0.1:6390", prefix })))).then(() => process.exit(0), (e) => { console.error(e); process.exit(1) })
