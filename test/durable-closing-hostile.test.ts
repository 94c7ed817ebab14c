/**
 * Hostile tests of a store that closes under its users (its layer released first), on every store,
 * and of the Redis idle watch's look, which names its idle consumers' tasks.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Context, Effect, Exit, Fiber, Layer, Scope } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import { Echo } from "./durable/conformance.ts"
import * as Pg from "./durable/postgres.ts"
import * as Rd from "./durable/redis.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wp-closing-"))
let files = 0

const stores: Array<[string, () => Layer.Layer<JobStore.JobStore, any>]> = [
  ["memory", () => JobStore.memory()],
  ["SQLite", () => JobStore.sqlite({ filename: path.join(dir, `s${files++}.db`) })]
]
if (Pg.enabled) stores.push(["Postgres", () => Pg.testLayer()])
if (Rd.enabled) stores.push(["Redis", () => Rd.testLayer()])

/** What an effect on a closed store ended with: a typed failure's tag, "interrupted", "defect", or "success". */
const outcome = (exit: Exit.Exit<unknown, unknown>): string => {
  if (Exit.isSuccess(exit)) return "success"
  const error = Cause.findErrorOption(exit.cause)
  if (error._tag === "Some") return (error.value as { _tag?: string })._tag ?? "untagged"
  return Cause.hasInterruptsOnly(exit.cause) ? "interrupted" : "defect"
}

describe.each(stores)("a closed %s store", (_name, makeLayer) => {
  it.live("an awaiter waiting when the store closes, and one that starts after, fail with StoreError (no hang, no interruption, no defect); so do enqueue and status", () =>
    Effect.gen(function*() {
      const storeScope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(makeLayer(), storeScope)
      const job = yield* Effect.provideContext(JobQueue.enqueue(Echo, { n: 1 }), context)
      const waiting = yield* Effect.forkChild(Effect.provideContext(JobQueue.await(Echo, job.id), context))
      yield* Effect.sleep(50)
      yield* Scope.close(storeScope, Exit.void)
      const during = yield* Fiber.await(waiting).pipe(Effect.timeout("10 seconds"))
      assert.strictEqual(outcome(during), "StoreError", `awaiter during the close: ${Cause.pretty(Exit.isFailure(during) ? during.cause : Cause.empty)}`)
      const after = yield* Effect.exit(Effect.provideContext(JobQueue.await(Echo, job.id), context)).pipe(Effect.timeout("10 seconds"))
      assert.strictEqual(outcome(after), "StoreError", "awaiter after the close")
      const enqueued = yield* Effect.exit(Effect.provideContext(JobQueue.enqueue(Echo, { n: 2 }), context)).pipe(Effect.timeout("10 seconds"))
      assert.strictEqual(outcome(enqueued), "StoreError", "enqueue after the close")
    }), { timeout: 60_000 })
})
