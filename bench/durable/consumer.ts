/**
 * A consumer process of bench/durable.ts: `node consumer.ts <db or postgres:// URL> <concurrency> <poll ms>`
 * (on Postgres, in the schema WORKPOOL_PG_SCHEMA); jobs do nothing.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect } from "effect"
import * as JobQueue from "../../src/JobQueue.ts"
import * as JobStore from "../../src/JobStore.ts"
import * as PgJobStore from "../../src/PgJobStore.ts"
import * as Task from "../../src/Task.ts"
import { Noop } from "./task.ts"

const [filename, concurrency, poll] = process.argv.slice(2)

NodeRuntime.runMain(
  Effect.gen(function*() {
    yield* JobQueue.consume({ handlers: [Task.handle(Noop, () => Effect.void)], concurrency: Number(concurrency), poll: Number(poll) })
    process.stdout.write("ready\n")
    return yield* Effect.never
  }).pipe(
    Effect.scoped,
    Effect.provide(
      filename!.startsWith("postgres://")
        ? PgJobStore.layer({ url: filename!, schema: process.env.WORKPOOL_PG_SCHEMA })
        : JobStore.sqlite({ filename: filename! })
    )
  )
)
