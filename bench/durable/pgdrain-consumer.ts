/**
 * bench/durable/ours.ts's consumer with its store's calls timed, for bench/durable/pgdrain.ts: each
 * claim (when it started, how long it took, how many jobs it asked for and got) and each settle
 * (how long until it was written), written as JSON to the file named by argv[3] when it stops.
 */
import { Effect, Exit, Layer, ManagedRuntime, Scope } from "effect"
import { writeFileSync } from "node:fs"
import * as JobQueue from "../../src/JobQueue.ts"
import * as JobStore from "../../src/JobStore.ts"
// its store from PgJobStore, not ./ours.ts: that module, imported by a consumer process, runs a consumer of its own
import * as PgJobStore from "../../src/PgJobStore.ts"
import * as Task from "../../src/Task.ts"
import { type BenchJob, consumerConfig, serve } from "./protocol.ts"
import { BenchTask } from "./task.ts"

const config = consumerConfig()
const claims: Array<readonly [at: number, ms: number, asked: number, got: number]> = []
const settles: Array<number> = []
let heartbeats = 0
let reaps = 0
let handled = 0
const timed = Layer.effect(
  JobStore.JobStore,
  Effect.map(Effect.gen(function*() {
    return yield* JobStore.JobStore
  }), (store) => ({
    ...store,
    claim: (request: Parameters<typeof store.claim>[0]) =>
      Effect.suspend(() => {
        const t = performance.now()
        return Effect.tap(store.claim(request), (claimed) =>
          Effect.sync(() => void claims.push([t, performance.now() - t, request.limit, claimed.claims.length])))
      }),
    settle: (token: string, settlement: Parameters<typeof store.settle>[1]) =>
      Effect.suspend(() => {
        const t = performance.now()
        return Effect.tap(store.settle(token, settlement), () => Effect.sync(() => void settles.push(performance.now() - t)))
      }),
    heartbeat: (tokens: ReadonlyArray<string>, lease: number) => Effect.suspend(() => (heartbeats++, store.heartbeat(tokens, lease))),
    reap: (...args: Parameters<typeof store.reap>) => Effect.suspend(() => (reaps++, store.reap(...args)))
  }))
).pipe(Layer.provide(PgJobStore.layer({ url: config.url, schema: config.schema }).pipe(Layer.orDie)))

const runtime = ManagedRuntime.make(timed)
const scope = Scope.makeUnsafe()
let report: (job: BenchJob) => void = () => {}
let consumer: JobQueue.Consumer | undefined
await serve({
  connect: async () => {
    consumer = await runtime.runPromise(
      JobQueue.consume({
        queues: [config.queue],
        handlers: [Task.handle(BenchTask, (job) => Effect.sync(() => (handled++, report(job))))],
        concurrency: config.concurrency
      }).pipe(Effect.tap((consumer) => consumer.pause), Scope.provide(scope))
    )
  },
  consume: async (run) => {
    report = run
    await runtime.runPromise(consumer!.resume)
  },
  stop: async () => {
    await runtime.runPromise(Scope.close(scope, Exit.void))
    await runtime.dispose()
  }
})
// written as the process exits (serve exits it once stopped)
process.on("exit", () => writeFileSync(process.argv[3]!, JSON.stringify({ claims, settles, heartbeats, reaps, handled })))
