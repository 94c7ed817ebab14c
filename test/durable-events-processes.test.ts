/**
 * `Reaped` after a real consumer process dies: a child consumer (fixtures/durable-consumer.ts) is
 * killed with SIGKILL while it holds a job, and this process's consumer, with `onEvent`, takes the
 * job back when its lease ends and runs it. On an SQLite file, Postgres and Redis when their servers
 * are set (`processStoresOf`). Every wait is for an event (a child's line, its exit, an event told), under a deadline.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Deferred, Effect, type Layer, ManagedRuntime } from "effect"
import { afterAll, assert, describe, it } from "vitest"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as Task from "../src/Task.ts"
import { processStoresOf, startConsumer, waitUntil } from "./durable/children.ts"
import { Work } from "./fixtures/durable-tasks.ts"

const dir = mkdtempSync(join(tmpdir(), "wp-events-processes-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const LEASE = 2000

const reapedAfterKill = async (layer: Layer.Layer<JobStore.JobStore, unknown>, target: string, env: Record<string, string>) => {
  const runtime = ManagedRuntime.make(layer as Layer.Layer<JobStore.JobStore, never>)
  try {
    // its first job never ends (WORKPOOL_TEST_HOLD_FROM=1): killed while it holds it
    const victim = startConsumer(target, { concurrency: 1, lease: LEASE, jobMillis: 10, env: { ...env, WORKPOOL_TEST_HOLD_FROM: "1" } })
    await waitUntil([victim], () => victim.lines.includes("ready"), "the victim is ready")
    const job = await runtime.runPromise(JobQueue.enqueue(Work, { n: 1 }, { maxAttempts: 3 }))
    await waitUntil([victim], () => victim.started.includes(1), "the victim runs the job")
    victim.child.kill("SIGKILL")
    await victim.exited
    const events = await runtime.runPromise(Effect.scoped(Effect.gen(function*() {
      const seen: Array<JobQueue.JobEvent> = []
      const done = yield* Deferred.make<void>()
      yield* JobQueue.consume({
        concurrency: 1,
        lease: LEASE,
        poll: "100 millis",
        retry: { times: 5 },
        handlers: [Task.handle(Work, ({ n }) => Effect.succeed(n))],
        onEvent: (event) =>
          Effect.andThen(
            Effect.sync(() => void seen.push(event)),
            event._tag === "Succeeded" ? Deferred.succeed(done, undefined) : Effect.void
          )
      })
      yield* Deferred.await(done).pipe(Effect.timeout("60 seconds"))
      return seen
    })))
    const mine = events.filter((e) => e._tag !== "Dropped" && e.id === job.id)
    assert.deepStrictEqual(mine.map((e) => e._tag), ["Reaped", "Started", "Succeeded"])
    assert.deepInclude(mine[0], { task: "Work", attempt: 1, outcome: "retried" })
    assert.deepInclude(mine[1], { attempt: 2 })
  } finally {
    await runtime.dispose()
  }
}

describe("Reaped after a consumer process is killed (kill -9)", () => {
  for (const [name, store] of processStoresOf(() => join(dir, `reaped-${Math.random().toString(36).slice(2)}.db`))) {
    it(name, { timeout: 120_000 }, async () => {
      const { env, layer, target } = store()
      await reapedAfterKill(layer, target, env)
    })
  }
})
