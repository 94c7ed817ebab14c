/**
 * Hostile tests of job dependencies, written once for SQLite and Redis (the Postgres pass is
 * durable-dependencies-hostile.test.ts): bad graphs from untyped callers, and real processes
 * (fixtures/durable-consumer.ts) killed with SIGKILL while they hold a dependency, and a private
 * Redis killed and started again between the enqueue of a graph and its dependency's settle. Every
 * wait is for an event (a line from a child, a state in the store), never a fixed sleep.
 */
import { Effect, Schedule } from "effect"
import { assert } from "vitest"
import { JobNotFound } from "../../src/DurableError.ts"
import * as JobQueue from "../../src/JobQueue.ts"
import * as JobStore from "../../src/JobStore.ts"
import { InvalidJobOptions } from "../../src/PoolError.ts"
import { Echo } from "./conformance.ts"
import { Work } from "../fixtures/durable-tasks.ts"
import { type Consumer, untilFinal, waitUntil } from "./children.ts"
import type { Setup } from "./processes.ts"

/** The fan-out's width: jobs 1..FAN after job 0, job FAN + 1 after all of them. */
const FAN = 30
/** Jobs enqueued after job 0 by the producer while it is held, and while its settle may be on: FAN + 2.. */
const LATE = 10

/** The graph: job 0, its fan-out 1..FAN, their fan-in FAN + 1, in one enqueueAll. Their ids by number. */
const enqueueGraph = (setup: Setup) =>
  setup.runtime.runPromise(Effect.gen(function*() {
    const head = yield* JobQueue.enqueue(Work, { n: 0 }, { maxAttempts: 10 })
    const fan = Array.from({ length: FAN }, (_, i) => ({ payload: { n: i + 1 }, options: { after: [head] } }))
    const fanIn = { payload: { n: FAN + 1 }, options: { after: fan.map((_, item) => ({ item })) } }
    const rest = yield* JobQueue.enqueueAll(Work, [...fan, fanIn])
    return [head.id, ...rest.map((job) => job.id)]
  }))

/** `count` more jobs after `head`, numbered from `from`, each its own enqueue. */
const enqueueAfter = (setup: Setup, head: string, from: number, count: number) =>
  setup.runtime.runPromise(Effect.forEach(Array.from({ length: count }, (_, i) => from + i), (n) =>
    Effect.map(JobQueue.enqueue(Work, { n }, { after: [head] }), (job) => job.id)))

/**
 * Every job of `ids` (job n's payload is n) succeeded with its result; each ran once in `workers`
 * but job 0 (`victim` started it first and died with it); none ran before job 0 was done, and the
 * fan-in after every job of its fan-out was done.
 */
const assertRanAfter = async (setup: Setup, ids: ReadonlyArray<string>, workers: ReadonlyArray<Consumer>, victim?: Consumer) => {
  const stats = await untilFinal(() => setup.runtime.runPromise(JobQueue.stats("default")), ids.length)
  assert.strictEqual(stats.succeeded, ids.length, `every job succeeded: ${JSON.stringify(stats)}`)
  const results = await setup.runtime.runPromise(Effect.forEach(ids, (id) => JobQueue.await(Work, id)))
  assert.deepStrictEqual(results, ids.map((_, n) => n))
  const starts = workers.flatMap((c) => c.started)
  assert.deepStrictEqual([...starts].sort((a, b) => a - b), ids.map((_, n) => n), "each job started once by the workers")
  if (victim !== undefined) assert.deepStrictEqual(victim.started, [0], "the victim started job 0 alone")
  // one worker's own output is in order: what it started after a done it printed came after it
  for (const worker of workers) {
    const at = (line: string) => worker.lines.indexOf(line)
    for (const n of worker.started) {
      if (n === 0) continue
      const headDone = workers.some((w) => w.lines.includes("done 0"))
      assert.isTrue(headDone, `job ${n} ran, but job 0 never printed its end`)
      if (worker.lines.includes("done 0")) assert.isAbove(at(`start ${n}`), at("done 0"), `job ${n} started before job 0 ended`)
    }
    if (worker.started.includes(FAN + 1)) {
      for (let n = 1; n <= FAN; n++) {
        if (worker.lines.includes(`done ${n}`)) assert.isAbove(at(`start ${FAN + 1}`), at(`done ${n}`), `the fan-in started before job ${n} ended`)
      }
    }
  }
}

const ready = (consumers: ReadonlyArray<Consumer>) =>
  waitUntil(consumers, () => consumers.every((c) => c.lines.includes("ready")), "every consumer is ready")

const stop = async (consumers: ReadonlyArray<Consumer>) => {
  for (const c of consumers) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill("SIGTERM")
  await Promise.all(consumers.map((c) => c.exited))
}

/**
 * A consumer process killed (SIGKILL) while it runs the head of a fan-out: its lease ends, a
 * worker process reaps it and runs it again, and its dependents (those enqueued before, while it
 * was held, and while the workers run) each run once, after it; their fan-in once, after them all.
 */
export const killedHolderProof = async (setup: Setup) => {
  const ids = await enqueueGraph(setup)
  // its first job never ends (WORKPOOL_TEST_HOLD_FROM): it surely holds job 0 when killed
  const victim = setup.consumer(1, 1000, 20, undefined, { WORKPOOL_TEST_HOLD_FROM: "1" })
  await waitUntil([victim], () => victim.started.includes(0), "the victim runs job 0")
  // while job 0 is held: these wait for it, blocked
  ids.push(...await enqueueAfter(setup, ids[0]!, FAN + 2, LATE / 2))
  victim.child.kill("SIGKILL")
  await victim.exited
  // their own leases longer than the victim's: a worker stalled past its lease by a loaded machine
  // would have its job run twice, which this test does not look for
  const workers = [setup.consumer(4, 5000, 20), setup.consumer(4, 5000, 20)]
  try {
    await ready(workers)
    // while the workers reap job 0, run it and release its dependents: each of these is blocked, or
    // queued at once (job 0 done), never lost between the two
    ids.push(...await enqueueAfter(setup, ids[0]!, FAN + 2 + LATE / 2, LATE / 2))
    await assertRanAfter(setup, ids, workers, victim)
  } finally {
    await stop(workers)
  }
}

/**
 * A private Redis killed (SIGKILL, `appendfsync always`) and started again between the enqueue of
 * a graph and its head's settle, and once more while the head runs: every edge and blocked job is
 * in the append-only file, so the dependents run once each, after it; the fan-in after them all.
 */
export const serverRestartProof = async (setup: Setup, server: { readonly down: () => Promise<void>; readonly up: () => Promise<void> }) => {
  const ids = await enqueueGraph(setup)
  await server.down()
  await server.up()
  // job 0 runs long enough (2 s) for the server to go down under it; its attempt may be lost with the
  // connection, then run again (maxAttempts 10): each of its dependents still runs once, after it
  const worker = setup.consumer(4, 3000, 2000)
  try {
    await waitUntil([worker], () => worker.started.includes(0), "the worker runs job 0")
    await server.down()
    await server.up()
    // the producer's client reconnects too: its reads are asked again while it is offline
    const retried = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.retry(effect, { while: (error) => (error as { _tag?: string })._tag === "StoreError", schedule: Schedule.spaced(100), times: 300 })
    const stats = await untilFinal(() => setup.runtime.runPromise(retried(JobQueue.stats("default"))), ids.length, 180_000)
    assert.strictEqual(stats.succeeded, ids.length, `every job succeeded: ${JSON.stringify(stats)}`)
    const results = await setup.runtime.runPromise(retried(Effect.forEach(ids, (id) => JobQueue.await(Work, id))))
    assert.deepStrictEqual(results, ids.map((_, n) => n))
    const counts = new Map<number, number>()
    for (const n of worker.started) counts.set(n, (counts.get(n) ?? 0) + 1)
    for (let n = 1; n < ids.length; n++) assert.strictEqual(counts.get(n), 1, `job ${n} started once`)
    const at = (line: string) => worker.lines.indexOf(line)
    for (let n = 1; n < ids.length; n++) assert.isAbove(at(`start ${n}`), at("done 0"), `job ${n} started before job 0 ended`)
    for (let n = 1; n <= FAN; n++) assert.isAbove(at(`start ${FAN + 1}`), at(`done ${n}`), `the fan-in started before job ${n} ended`)
  } finally {
    await stop([worker])
  }
}

/** An `enqueueAll` of Echo jobs from an untyped caller: its items as given. */
const enqueueAllRaw = (items: ReadonlyArray<unknown>) =>
  Effect.flip(JobQueue.enqueueAll(Echo, items as ReadonlyArray<JobQueue.EnqueueItem<{ readonly n: number }>>))

/**
 * Bad graphs: every one refused typed, naming the item and what is wrong, and nothing stored of the
 * call (a graph across three queues, its last item the bad one); 1,000 dependencies are kept.
 */
export const badGraphsProof = Effect.gen(function*() {
  const stored = Effect.map(JobQueue.list({ limit: 10_000 }), (jobs) => jobs.length)
  const head = yield* JobQueue.enqueue(Echo, { n: 0 }, { queue: "q0" })
  const across = (last: unknown) => [
    { payload: { n: 1 }, options: { queue: "q1" } },
    { payload: { n: 2 }, options: { queue: "q2", after: [{ item: 0 }, head] } },
    { payload: { n: 3 }, options: { queue: "q3", ...(last as object) } }
  ]
  const missing = yield* enqueueAllRaw(across({ after: [{ item: 1 }, "no-such-job"] }))
  assert.instanceOf(missing, JobNotFound)
  assert.strictEqual((missing as JobNotFound).id, "no-such-job")
  assert.strictEqual(yield* stored, 1, "nothing of the graph is stored")
  const refused: Array<[unknown, string, RegExp]> = [
    [{ after: [{ item: -1 }] }, "items[2].options.after[0].item", /./],
    [{ after: [{ item: 1.5 }] }, "items[2].options.after[0].item", /./],
    [{ after: [{ item: Number.NaN }] }, "items[2].options.after[0].item", /./],
    [{ after: [{ item: "0" }] }, "items[2].options.after[0].item", /./],
    [{ after: [{ item: null }] }, "items[2].options.after[0].item", /./],
    [{ after: [{ item: 2 }] }, "items[2].options.after", /earlier item/],
    [{ after: [{ item: 3 }] }, "items[2].options.after", /earlier item/],
    [{ after: [{ item: 100_000 }] }, "items[2].options.after[0].item", /99999/],
    [{ after: [{ item: 0 }, { item: 0 }] }, "items[2].options.after[1]", /once/],
    [{ after: [head.id, { id: head.id }] }, "items[2].options.after[1]", /once/],
    [{ after: [{ id: 7 }] }, "items[2].options.after[0]", /./],
    [{ after: [null] }, "items[2].options.after[0]", /./],
    [{ after: { item: 0 } }, "items[2].options.after", /array/],
    [{ after: [{ item: 0 }], afterFailure: "bogus" }, "items[2].options.afterFailure", /./],
    [{ after: [{ item: 0 }], afterFailure: true }, "items[2].options.afterFailure", /./],
    [{ after: Array.from({ length: 1001 }, (_, item) => ({ item })) }, "items[2].options.after", /at most 1000/]
  ]
  for (const [options, field, reason] of refused) {
    const error = yield* enqueueAllRaw(across(options))
    assert.instanceOf(error, InvalidJobOptions, JSON.stringify(options).slice(0, 100))
    assert.strictEqual((error as InvalidJobOptions).field, field, JSON.stringify(options).slice(0, 100))
    assert.match((error as InvalidJobOptions).reason, reason, JSON.stringify(options).slice(0, 100))
    assert.strictEqual(yield* stored, 1, `nothing stored for ${JSON.stringify(options).slice(0, 100)}`)
  }
  // 1,000 dependencies, the most: kept, each counted; one of them cancelled cancels the job, naming it
  const deps = yield* JobQueue.enqueueAll(Echo, Array.from({ length: 1000 }, (_, n) => ({ payload: { n } })), { queue: "wide" })
  const wide = yield* JobQueue.enqueue(Echo, { n: -1 }, { queue: "q1", after: deps })
  assert.strictEqual((yield* JobQueue.status(wide.id)).waitingFor, 1000)
  assert.strictEqual(yield* JobQueue.cancel(deps[999]!.id), "cancelled")
  const status = yield* JobQueue.status(wide.id)
  assert.strictEqual(status.state, "cancelled")
  assert.deepStrictEqual(status.failedDependency, { id: deps[999]!.id, state: "cancelled" })
})

/**
 * A consumer process idle on its queue with a poll of 10 minutes (only a wake-up from the store can
 * start a job in time) while this process settles a dependency of two of its jobs: one released
 * queued, one released with its own delay still ahead (1.5 s from its enqueue). The process starts
 * each once it is due, woken by the settle's commit and then by the delayed one's time.
 */
export const releasedWakeProof = async (setup: Setup) => {
  const consumer = setup.consumer(2, 5000, 10, undefined, { WORKPOOL_TEST_POLL: "600000" })
  await ready([consumer])
  const [head, now, later] = await setup.runtime.runPromise(Effect.gen(function*() {
    const head = yield* JobQueue.enqueue(Work, { n: 0 }, { queue: "heads" })
    const now = yield* JobQueue.enqueue(Work, { n: 1 }, { after: [head] })
    const later = yield* JobQueue.enqueue(Work, { n: 2 }, { after: [head], delay: "1500 millis" })
    return [head.id, now.id, later.id]
  }))
  try {
    // blocked, they were nothing for the consumer's claims: once it has looked, only a wake-up
    // (the settle's commit, the delayed one's time) starts them before its poll
    await setup.runtime.runPromise(Effect.gen(function*() {
      const store = yield* JobStore.JobStore
      const claimed = yield* store.claim({ queues: ["heads"], tasks: ["Work"], limit: 1, lease: 60_000 })
      assert.strictEqual(claimed.claims[0]?.job.id, head)
      assert.isTrue(yield* store.settle(claimed.claims[0]!.token, { _tag: "Final", state: "succeeded", exit: "0" }))
    }))
    await waitUntil([consumer], () => consumer.lines.includes("done 1") && consumer.lines.includes("done 2"), "the idle consumer runs both released jobs", 60_000)
    assert.deepStrictEqual(await setup.runtime.runPromise(Effect.forEach([now, later], (id) => JobQueue.await(Work, id))), [1, 2])
  } finally {
    await stop([consumer])
  }
}
