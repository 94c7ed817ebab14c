/**
 * What schema version 8's index `wp_job_counted (queue, state) WHERE state IN ('running', 'dead',
 * 'cancelled')` (the queue counts' index) costs the claims and settles that write to it: two stores
 * of this code on schemas of their own, the index dropped from one after its open (version 7's
 * layout), the same jobs enqueued in each, then claimed `batch` at a time and each settled
 * succeeded, the two alternating round by round (A B B A ...); the finished jobs stay, so the table
 * grows as a churning one does. Prints the µs per job (claim + settle) of each round and the ratio
 * with/without of each pair, then their medians.
 *
 *   node bench/durable/pgcounted.ts <postgres://…> [rounds=12] [jobs per round=2000] [batch=8]
 */
import { Context, Effect, Layer } from "effect"
import pg from "pg"

const [url = "", roundsArg = "12", perArg = "2000", batchArg = "8"] = process.argv.slice(2)
const rounds = Number(roundsArg)
const per = Number(perArg)
const batch = Number(batchArg)
const { JobStore } = await import("../../src/internal/store/model.ts")
const PgJobStore = await import("../../src/PgJobStore.ts")

const tag = `pgcounted_${process.pid}`
const schemas = { without: `${tag}_without`, with: `${tag}_with` } as const
const admin = new pg.Client({ connectionString: url })
await admin.connect()

const exit = "{\"_tag\":\"Success\",\"value\":0}"
const job = (round: number, i: number) => ({
  queue: "default", task: "Noop", payload: `${round}-${i}`, priority: 0, dedupKey: null, maxAttempts: 1,
  timeout: 60_000, delay: 0, runAt: undefined
})

const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

const program = Effect.gen(function*() {
  const stores = {
    without: Context.get(yield* Layer.build(PgJobStore.layer({ url, schema: schemas.without, maxConnections: 2 })), JobStore),
    with: Context.get(yield* Layer.build(PgJobStore.layer({ url, schema: schemas.with, maxConnections: 2 })), JobStore)
  }
  yield* Effect.promise(() => admin.query(`DROP INDEX "${schemas.without}".wp_job_counted`))
  const round = (which: keyof typeof stores, n: number) =>
    Effect.gen(function*() {
      const store = stores[which]
      yield* store.enqueueAll(Array.from({ length: per }, (_, i) => job(n, i)))
      const started = performance.now()
      let done = 0
      while (done < per) {
        const { claims } = yield* store.claim({ queues: ["default"], tasks: ["Noop"], limit: batch, lease: 60_000 })
        if (claims.length === 0) return yield* Effect.die(new Error(`claimed ${done} of ${per}`))
        yield* Effect.forEach(claims, (claim) => store.settle(claim.token, { _tag: "Final", state: "succeeded", exit }), { concurrency: 2 })
        done += claims.length
      }
      return ((performance.now() - started) * 1000) / per
    })
  const withouts: Array<number> = []
  const withs: Array<number> = []
  const ratios: Array<number> = []
  for (let n = 0; n < rounds; n++) {
    const order = n % 2 === 0 ? (["without", "with"] as const) : (["with", "without"] as const)
    const took: Record<string, number> = {}
    for (const which of order) took[which] = yield* round(which, n)
    withouts.push(took.without!)
    withs.push(took.with!)
    ratios.push(took.with! / took.without!)
    console.log(JSON.stringify({ round: n, order: order.join(" "), withoutUs: +took.without!.toFixed(1), withUs: +took.with!.toFixed(1), ratio: +(took.with! / took.without!).toFixed(3) }))
  }
  console.log(JSON.stringify({
    medianWithoutUs: +median(withouts).toFixed(1),
    medianWithUs: +median(withs).toFixed(1),
    medianRatio: +median(ratios).toFixed(3),
    minRatio: +Math.min(...ratios).toFixed(3),
    maxRatio: +Math.max(...ratios).toFixed(3)
  }))
})

try {
  await Effect.runPromise(Effect.scoped(program))
} finally {
  for (const schema of Object.values(schemas)) await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
  await admin.end()
}
