// A durable job through each store, from the installed package: `node stores.mjs memory|sqlite|pg|redis`
// (pg and redis on WORKPOOL_PG_URL and WORKPOOL_REDIS_URL). A producer enqueues, a consumer runs it,
// the producer awaits its typed result. Prints "store NAME ok {...}" or "store NAME FAILED ...".
import { Effect, Redacted, Schema } from "effect"
import { JobQueue, Task } from "effect-workpool"
import * as JobStore from "effect-workpool/JobStore"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const Resize = Task.make("Resize", { payload: Schema.String, success: Schema.Number })
const which = process.argv[2]
const unique = `consumer_${process.pid}_${Date.now().toString(36)}`

const store = async () => {
  switch (which) {
    case "memory":
      return { layer: JobStore.memory(), cleanup: async () => {} }
    case "sqlite":
      return { layer: JobStore.sqlite({ filename: join(mkdtempSync(join(tmpdir(), "consumer-")), "jobs.db") }), cleanup: async () => {} }
    case "pg": {
      const PgJobStore = await import("effect-workpool/PgJobStore")
      const { PgClient } = await import("@effect/sql-pg")
      const Reactivity = await import("effect/reactivity/Reactivity")
      const url = process.env.WORKPOOL_PG_URL
      // the schema the store made, dropped with the application's own client
      const drop = PgClient.make({ url: Redacted.make(url), maxConnections: 1 }).pipe(
        Effect.flatMap((sql) => sql.unsafe(`DROP SCHEMA IF EXISTS "${unique}" CASCADE`)),
        Effect.scoped,
        Effect.provideServiceEffect(Reactivity.Reactivity, Reactivity.make)
      )
      return { layer: PgJobStore.layer({ url, schema: unique }), cleanup: () => Effect.runPromise(drop) }
    }
    case "redis": {
      const RedisJobStore = await import("effect-workpool/RedisJobStore")
      const { createClient } = await import("redis")
      const url = process.env.WORKPOOL_REDIS_URL
      // the keys the store wrote: {PREFIX}:queues and {PREFIX:QUEUE}:...
      const cleanup = async () => {
        const client = await createClient({ url }).connect()
        const keys = await client.keys(`{${unique}[:}]*`)
        if (keys.length > 0) await client.del(keys)
        client.destroy()
      }
      return { layer: RedisJobStore.layer({ url, prefix: unique }), cleanup }
    }
  }
  throw new Error(`unknown store ${which}`)
}

const { cleanup, layer } = await store()
const program = Effect.scoped(Effect.gen(function*() {
  yield* JobQueue.consume({ queues: ["images"], handlers: [Task.handle(Resize, (file) => Effect.succeed(file.length))], concurrency: 2 })
  const job = yield* JobQueue.enqueue(Resize, "cat.png", { queue: "images", maxAttempts: 3 })
  const result = yield* job.await
  const stats = yield* JobQueue.stats("images")
  return { result, succeeded: stats.succeeded }
})).pipe(Effect.provide(layer))

const printed = await Effect.runPromise(program).then(
  (result) => `store ${which} ok ${JSON.stringify(result)}`,
  (error) => `store ${which} FAILED ${error?.stack ?? JSON.stringify(error)}`
)
await cleanup()
console.log(printed)
