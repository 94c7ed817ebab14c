/**
 * Hostile tests of the Postgres store's detached operations (store/detached.ts): each runs on a
 * fiber of its own with its caller's context, and a caller that leaves returns at once while the
 * statement drains in the background.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Scope, type Tracer } from "effect"
import { StoreError } from "../src/DurableError.ts"
import * as JobStore from "../src/JobStore.ts"
import * as JobQueue from "../src/JobQueue.ts"
import * as Postgres from "../src/internal/store/postgres.ts"
import { Echo } from "./durable/conformance.ts"
import { appClient, enabled, freeze, freshSchema, ownServer } from "./durable/postgres.ts"
import * as pgServer from "./durable/pgserver.ts"
import { closeWithin, recordingTracer } from "./helpers.ts"


if (!enabled || pgServer.binaries() === undefined) describe.skip("the Postgres store's detached operations, hostile (WORKPOOL_PG_URL or the server binaries missing)", () => {})
else {
  describe("the Postgres store's detached operations on the caller's client (layerClient), hostile", () => {
    // the close waited only for the operations whose callers had left: one whose caller still
    // waited (an unbounded write, a read within its bound) went on, on the application's client,
    // past the store's close: a write to a frozen server for as long as it stayed frozen, its
    // caller waiting that long for a store that was gone
    it.live("the store closed while a write waits on a frozen server, its caller still waiting: the close ends it within the driver's drain bound (none runs past the close), and its caller fails with StoreError", () =>
      Effect.gen(function*() {
        const server = yield* ownServer()
        const sql = yield* appClient(server.url, 4)
        const scope = yield* Scope.make()
        const store = yield* Postgres.makeWith(sql, yield* Postgres.clientOptions({ schema: freshSchema() })).pipe(Scope.provide(scope))
        yield* JobQueue.enqueue(Echo, { n: 1 }).pipe(Effect.provideService(JobStore.JobStore, store))
        yield* freeze(server)
        const { spans, tracer } = recordingTracer()
        const write = yield* Effect.forkDetach(Effect.withTracer(JobQueue.enqueue(Echo, { n: 2 }), tracer).pipe(
          Effect.provideService(JobStore.JobStore, store)
        ))
        // on the wire
        yield* Effect.sleep(500)
        const running = () => spans.filter((span) => (span as Tracer.NativeSpan).status._tag === "Started").map((span) => span.name)
        assert.isAbove(running().length, 0, "the write is in flight")
        const took = yield* closeWithin(scope, "30 seconds")
        assert.deepStrictEqual(running(), [], "statements of the store still running after its close")
        // the driver's drain bound (5 s); a busy machine is given 3 s more
        assert.isBelow(took, 8000)
        const exit = yield* Fiber.await(write).pipe(Effect.timeoutOption("1 second"))
        assert.isTrue(exit._tag === "Some", "the write's caller still waits after the store's close")
        const error = exit._tag === "Some" && Exit.isFailure(exit.value) ? Cause.squash(exit.value.cause) : undefined
        assert.instanceOf(error, StoreError)
        assert.match((error as StoreError).message, /close cut it in flight/)
      }).pipe(Effect.scoped), { timeout: 90_000 })
  })
}
