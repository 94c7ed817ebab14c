/**
 * The Redis store with a queue per tenant (docs/operations.md, "Many queues"): `queues` queues of
 * `jobs` jobs each, then, timed one after another on one store instance: the `enqueueAll` of them
 * all, two reaps (nothing expired: the cost of looking), a claim of 16 over every queue, a drain of
 * 6 s by one consumer of them all (claims of 16 as slots free, each job settled), a claim that finds
 * one job, in the last queue, and one that finds none, and a heartbeat of 16 jobs in 16 queues.
 * Its keys (its own prefix) are deleted at the end:
 *
 *   WORKPOOL_REDIS_URL=redis://… node bench/durable/many-queues-redis.ts [queues=10000] [jobs=3] [dispatch=priority|fair]
 *
 * `fair`: the claims are fair ones (`consume({ dispatch: "fair" })`), the queues in the same order.
 */
import { Effect } from "effect"
import { createClient } from "redis"
import { echoJob as job } from "./task.ts"
import * as RedisStore from "../../src/internal/store/redis.ts"

const url = process.env.WORKPOOL_REDIS_URL
if (url === undefined || url === "") throw new Error("set WORKPOOL_REDIS_URL")
const [queuesArg = "10000", jobsArg = "3", dispatch = "priority"] = process.argv.slice(2)
if (dispatch !== "priority" && dispatch !== "fair") throw new Error(`dispatch: expected priority or fair, got ${dispatch}`)
const QUEUES = Number(queuesArg)
const JOBS = Number(jobsArg)
const prefix = `wp-many-queues-${process.pid}`

/** `effect` run and its time printed. */
const timed = <A, E>(label: string, effect: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const started = performance.now()
    const a = yield* effect
    console.log(`${label}: ${(performance.now() - started).toFixed(0)} ms`)
    return a
  })

const program = Effect.gen(function*() {
  const store = yield* RedisStore.open(yield* RedisStore.options({ url, prefix }))
  const queues = Array.from({ length: QUEUES }, (_, i) => `tenant-${i}`)
  yield* timed(`enqueueAll of ${QUEUES * JOBS} jobs in ${QUEUES} queues`, store.enqueueAll(Array.from({ length: JOBS }, () => queues).flat().map(job)))
  yield* timed("reap (nothing expired)", store.reap([]))
  yield* timed("reap again", store.reap([]))
  const request = { queues, tasks: ["Echo"], limit: 16, lease: 30_000, fair: dispatch === "fair" }
  yield* timed("claim of 16, every queue with jobs", store.claim(request))
  let done = 0
  const started = performance.now()
  while (performance.now() - started < 6000) {
    const { claims } = yield* store.claim(request)
    if (claims.length === 0) break
    yield* Effect.forEach(claims, (claim) => store.settle(claim.token, { _tag: "Final", state: "succeeded", exit: null }), { concurrency: "unbounded" })
    done += claims.length
  }
  console.log(`drain by one consumer: ${(done / ((performance.now() - started) / 1000)).toFixed(1)} jobs/s (${done} jobs)`)
  while ((yield* store.claim({ ...request, limit: 1000 })).claims.length > 0) {}
  yield* store.enqueue(job(queues[QUEUES - 1]!))
  yield* timed("claim of 16 that finds one job, in the last queue", store.claim(request))
  yield* timed("claim of 16 that finds none", store.claim(request))
  yield* store.enqueueAll(queues.slice(0, 16).map(job))
  const { claims } = yield* store.claim(request)
  yield* timed(`heartbeat of ${claims.length} jobs in as many queues`, store.heartbeat(claims.map((claim) => claim.token), 30_000))
}).pipe(Effect.scoped)

try {
  await Effect.runPromise(program)
} finally {
  const client = createClient({ url })
  await client.connect()
  let cursor = "0"
  do {
    const reply = await client.scan(cursor, { MATCH: `{${prefix}*`, COUNT: 10_000 })
    cursor = String(reply.cursor)
    if (reply.keys.length > 0) await client.unlink(reply.keys)
  } while (cursor !== "0")
  await client.quit()
}
