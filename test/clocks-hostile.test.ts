/**
 * Hostile tests of what a clock decides: a job's time (`runAt`, `delay`) against its queue's order,
 * and the timers a store's own options set. On every store where the store matters (memory, an
 * SQLite file, Postgres, Redis), on the live clock: nothing here waits for time to pass.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, type Layer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import { Echo } from "./durable/conformance.ts"
import * as Pg from "./durable/postgres.ts"
import * as Rd from "./durable/redis.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wp-clocks-hostile-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))
let files = 0

const stores: ReadonlyArray<readonly [string, boolean, () => Layer.Layer<JobStore.JobStore, unknown>]> = [
  ["memory", true, () => JobStore.memory()],
  ["sqlite", true, () => JobStore.sqlite({ filename: path.join(dir, `f${files++}.db`) })],
  ["postgres", Pg.enabled, () => Pg.testLayer()],
  ["redis", Rd.enabled, () => Rd.testLayer()]
]

describe.each(stores)("a runAt in the past, on a queue with aging (%s)", (_name, enabled, layer) => {
  // aging counts a job's waiting in its queue (WorkPool's rule: from its submission, a delayed one
  // from when it is due). A runAt an hour ago made the job's key an hour old as it was enqueued: it
  // passed 3,600 priority levels at once (`new Date(0)`, "at once", passed every priority there is)
  it.live.skipIf(!enabled)("ranks as a job entering the queue now: it passes no higher priority it did not wait for", () =>
    Effect.gen(function*() {
      const store = yield* JobStore.JobStore
      yield* JobQueue.setAging("aged", "1 second")
      const urgent = yield* JobQueue.enqueue(Echo, { n: 1 }, { queue: "aged", priority: 5 })
      const overdue = yield* JobQueue.enqueue(Echo, { n: 2 }, { queue: "aged", runAt: new Date(Date.now() - 3_600_000) })
      const epoch = yield* JobQueue.enqueue(Echo, { n: 3 }, { queue: "aged", runAt: new Date(0) })
      const { claims } = yield* store.claim({ queues: ["aged"], tasks: ["Echo"], limit: 3, lease: 30_000 })
      assert.deepStrictEqual(claims.map((claim) => claim.job.id), [urgent.id, overdue.id, epoch.id])
      // and it is still due as asked: claimed at once, its time kept
      assert.strictEqual((yield* JobQueue.status(epoch.id)).visibleAt.getTime(), 0)
    }).pipe(Effect.provide(layer())), 60_000)
})
