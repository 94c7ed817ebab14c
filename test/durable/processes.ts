/**
 * Durable jobs across real processes, written once for every server store (Postgres, Redis):
 * consumer processes (fixtures/durable-consumer.ts) killed with SIGKILL, frozen with SIGSTOP,
 * killed between a job's success and its acknowledgement, and the server itself taken down and
 * brought back mid-run. Every wait is for an event (a line from a child, a child's exit, a state in
 * the store) under an overall deadline.
 */
import { Effect, type Layer, ManagedRuntime, Schedule } from "effect"
import { afterAll, assert, describe, it } from "vitest"
import * as JobQueue from "../../src/JobQueue.ts"
import type * as JobStore from "../../src/JobStore.ts"
import { Work } from "../fixtures/durable-tasks.ts"
import { assertEveryJobOnce, type Consumer, freeze, killMidRun, startConsumer, untilFinal, waitUntil } from "./children.ts"

const runtimes: Array<ManagedRuntime.ManagedRuntime<JobStore.JobStore, never>> = []
afterAll(() => Promise.all(runtimes.map((runtime) => runtime.dispose())))

/** A store's producer runtime and its consumer processes, on a place of their own (a schema, a key prefix). */
export interface Setup {
  readonly runtime: ManagedRuntime.ManagedRuntime<JobStore.JobStore, never>
  readonly consumer: (concurrency: number, lease: number, jobMillis: number, mode?: string, env?: Record<string, string>) => Consumer
  /** Whether another process could write to the store now (SQLite's one write lock); default always. */
  readonly writable?: () => boolean
}

/** The producer's layer and the consumers' argument and environment. */
export const setup = (
  layer: Layer.Layer<JobStore.JobStore, any>,
  store: string,
  env: Record<string, string>,
  writable?: () => boolean
): Setup => {
  const runtime = ManagedRuntime.make(layer as Layer.Layer<JobStore.JobStore, never>)
  runtimes.push(runtime)
  const consumer = (concurrency: number, lease: number, jobMillis: number, mode?: string, more: Record<string, string> = {}) =>
    startConsumer(store, { concurrency, lease, jobMillis, env: { ...env, ...more }, ...(mode ? { mode } : {}) })
  return writable === undefined ? { runtime, consumer } : { runtime, consumer, writable }
}

/** The environment of a victim whose `n`th job and later ones never end (see `killMidRun`'s `holding`). */
const holdFrom = (n: number) => ({ WORKPOOL_TEST_HOLD_FROM: String(n) })

const ready = (consumers: ReadonlyArray<Consumer>) =>
  waitUntil(consumers, () => consumers.every((c) => c.lines.includes("ready")), "every consumer is ready")

const stop = async (consumers: ReadonlyArray<Consumer>) => {
  for (const c of consumers) c.child.kill("SIGTERM")
  await Promise.all(consumers.map((c) => c.exited))
  // runMain's exit code for an interrupted main: 130
  for (const c of consumers) assert.strictEqual(c.child.exitCode, 130, `${c.stderr}\n${c.lines.slice(-20).join("\n")}`)
}

/** Enqueues `jobs` Work jobs numbered 0.. (at most 10 attempts each); `running` reads which numbers run now. */
const enqueueWork = async (runtime: Setup["runtime"], jobs: number) => {
  const ids = await runtime.runPromise(
    Effect.forEach(Array.from({ length: jobs }, (_, n) => n), (n) =>
      Effect.map(JobQueue.enqueue(Work, { n }, { maxAttempts: 10 }), (job) => job.id))
  )
  const byId = new Map(ids.map((id, n) => [id, n]))
  const running = () =>
    runtime.runPromise(JobQueue.list({ state: "running", limit: jobs })).then((found) => found.map((job) => byId.get(job.id)!))
  return { ids, running }
}

/**
 * A consumer frozen (SIGSTOP) past its lease while it runs job 7 (a minute long): another consumer
 * runs the job (50 ms); resumed (SIGCONT), the zombie interrupts its attempt (in "threads" mode its
 * thread prints it: the task itself was stopped, not only the attempt's fiber) and its settle
 * changes nothing. Returns the two consumers, still running.
 */
export const zombieProof = async ({ consumer, runtime, writable }: Setup, mode?: "threads") => {
  const LEASE = 1500
  const on = mode === "threads" ? "'s thread" : ""
  const job = await runtime.runPromise(JobQueue.enqueue(Work, { n: 7 }, { maxAttempts: 5 }))
  const zombie = consumer(1, LEASE, 60_000, mode)
  await waitUntil([zombie], () => zombie.started.length === 1, `the zombie${on} started the job`)
  await freeze(zombie, writable)
  const other = consumer(1, LEASE, 50, mode)
  await waitUntil([other], () => other.lines.includes("done 7"), `the other consumer${on} ran the job`)
  assert.strictEqual(await runtime.runPromise(JobQueue.await(Work, job.id)), 7)
  zombie.child.kill("SIGCONT")
  await waitUntil([zombie], () => zombie.lines.includes("interrupted 7"), `the zombie${on} interrupted its attempt`)
  assert.notInclude(zombie.lines, "done 7")
  const info = await runtime.runPromise(JobQueue.status(job.id))
  assert.deepStrictEqual([info.state, info.attempts], ["succeeded", 2])
  return [zombie, other] as const
}

/**
 * A job delayed by 1.5 s, enqueued by this process while a consumer process that polls once a
 * minute is idle, starts at its time: the store tells the consumer (Postgres' NOTIFY, Redis' marker,
 * SQLite's file and then the claim) and it wakes then, not a poll later. Returns the consumer.
 */
export const delayedWakeProof = async ({ consumer, runtime }: Setup) => {
  const LONG = 60_000
  const idle = consumer(1, LONG, 0, undefined, { WORKPOOL_TEST_POLL: String(LONG) })
  // a first job: once it has succeeded, the consumer has looked again and sleeps for its poll
  const first = await runtime.runPromise(JobQueue.enqueue(Work, { n: 1 }))
  assert.strictEqual(await runtime.runPromise(JobQueue.await(Work, first.id)), 1)
  const delayed = await runtime.runPromise(JobQueue.enqueue(Work, { n: 2 }, { delay: "1500 millis" }))
  await waitUntil([idle], () => idle.lines.includes("done 2"), "the idle consumer ran the delayed job", 30_000)
  const info = await runtime.runPromise(JobQueue.status(delayed.id))
  // both times on the store's clock
  const late = info.startedAt!.getTime() - info.visibleAt.getTime()
  assert.isTrue(late >= 0 && late < 10_000, `started ${late} ms after its time`)
  return idle
}

/** kill -9 mid-run, killed between success and ack, a zombie past its lease. */
export const processProofs = (name: string, enabled: boolean, fresh: () => Setup) =>
  describe.skipIf(!enabled)(`durable jobs across processes (${name})`, () => {
    it("kill -9 of two of 4 consumers × 4 mid-run on 2,000 jobs: every job finishes, 0 lost, duplicates only of the killed ones' jobs in flight", {
      timeout: 180_000
    }, async () => {
      const JOBS = 2000
      const LEASE = 3000
      const { consumer, runtime } = fresh()
      const { ids, running } = await enqueueWork(runtime, JOBS)
      // the first victim holds its 40th job and every later one until it is killed
      const consumers = [0, 1, 2, 3].map((i) => consumer(4, LEASE, 20, undefined, i === 0 ? holdFrom(40) : {}))
      const [first, second, ...survivors] = consumers as [Consumer, Consumer, ...Array<Consumer>]
      // one killed early, the other later, each with jobs in flight
      const inFlightFirst = await killMidRun(first, consumers, 40, running, true)
      const killedAt = Date.now()
      const inFlight = new Set([...inFlightFirst, ...await killMidRun(second, consumers, 120, running)])
      assert.isAbove(inFlightFirst.size, 0, "the first killed one had jobs in flight")
      // redelivered: each of the first one's starts again in another process (a survivor, or the
      // second before it died), unless the settle it had sent landed after all (the server finishes
      // a statement whose client was killed): then it ran once and is done
      const others = consumers.filter((c) => c !== first)
      const statusOf = (n: number) => runtime.runPromise(JobQueue.status(ids[n]!))
      const pending = new Set(inFlightFirst)
      const deadline = Date.now() + 90_000
      while (pending.size > 0) {
        for (const n of pending) {
          if (others.some((c) => c.started.includes(n))) pending.delete(n)
          else if (["succeeded", "dead", "cancelled"].includes((await statusOf(n)).state)) pending.delete(n)
        }
        if (pending.size === 0) break
        if (Date.now() > deadline) throw new Error(`the killed process's jobs ${[...pending]} neither started elsewhere nor finished`)
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      const redelivery = Date.now() - killedAt
      const duplicates = await assertEveryJobOnce(runtime, consumers, ids, inFlight)
      if (process.env.DURABLE_DEBUG) console.log({ inFlight: inFlight.size, duplicates, redelivery })
      await stop(survivors)
    })

    it("killed between a job's success and its acknowledgement: the job runs exactly once more, elsewhere, and its result is stored", {
      timeout: 120_000
    }, async () => {
      const LEASE = 1500
      const { consumer, runtime } = fresh()
      const job = await runtime.runPromise(JobQueue.enqueue(Work, { n: 3 }, { maxAttempts: 5 }))
      const dying = consumer(1, LEASE, 10, "die-at-settle")
      await dying.exited
      assert.deepStrictEqual([dying.child.signalCode, dying.lines.filter((l) => l !== "ready")], ["SIGKILL", ["start 3", "done 3"]])
      assert.strictEqual((await runtime.runPromise(JobQueue.status(job.id))).state, "running")
      const other = consumer(1, LEASE, 10)
      assert.strictEqual(await runtime.runPromise(JobQueue.await(Work, job.id)), 3)
      const info = await runtime.runPromise(JobQueue.status(job.id))
      assert.deepStrictEqual([info.state, info.attempts], ["succeeded", 2])
      assert.deepStrictEqual(other.started, [3])
      await stop([other])
    })

    it("a consumer frozen (SIGSTOP) past its lease: another runs the job; resumed (SIGCONT), the zombie is interrupted and its settle changes nothing", {
      timeout: 120_000
    }, async () => {
      await stop(await zombieProof(fresh()))
    })

    it("a delayed job enqueued by another process starts at its time on an idle consumer process, not at its 60 s poll", {
      timeout: 120_000
    }, async () => {
      await stop([await delayedWakeProof(fresh())])
    })
  })

/**
 * The kill -9 and zombie proofs with the jobs on a ThreadPool in each consumer process
 * (`consume({ threadPool, tasks })`, fixture mode `threads`: 2 threads × 2 tasks): a thread-run
 * job's claim is a claim like any (renewed by its process, taken back by a reaper when the process
 * dies with its threads), its settle is fenced, and a lost lease interrupts the task on its thread.
 * Smaller than the fiber proofs: each process starts its threads.
 */
export const threadProofs = (name: string, enabled: boolean, fresh: () => Setup) =>
  describe.skipIf(!enabled)(`durable jobs on threads across processes (${name})`, () => {
    it("kill -9 of two of 3 consumers × 2 threads × 2 tasks mid-run on 400 jobs: 0 lost, duplicates only of the killed ones' jobs in flight", {
      timeout: 180_000
    }, async () => {
      const JOBS = 400
      const LEASE = 3000
      const { consumer, runtime } = fresh()
      // every consumer's threads are up before the jobs come: a process slow to start its threads
      // would otherwise find the queue drained by the others before it started its 60 (seen at load 9)
      const consumers = [0, 1, 2].map((i) => consumer(2, LEASE, 20, "threads", i === 0 ? holdFrom(20) : {}))
      await ready(consumers)
      const { ids, running } = await enqueueWork(runtime, JOBS)
      const [first, second, survivor] = consumers as [Consumer, Consumer, Consumer]
      const inFlightFirst = await killMidRun(first, consumers, 20, running, true)
      const inFlight = new Set([...inFlightFirst, ...await killMidRun(second, consumers, 60, running)])
      assert.isAbove(inFlightFirst.size, 0, "the first killed one had jobs in flight on its threads")
      const duplicates = await assertEveryJobOnce(runtime, consumers, ids, inFlight)
      // the first one's jobs in flight ran again elsewhere, unless the settle it had sent landed
      for (const n of inFlightFirst) {
        const again = consumers.some((c) => c !== first && c.started.includes(n))
        assert.isTrue(again || first.lines.includes(`done ${n}`), `job ${n} of the killed process neither ran again nor finished`)
      }
      if (process.env.DURABLE_DEBUG) console.log({ inFlight: inFlight.size, duplicates })
      await stop([survivor])
    })

    it("a consumer frozen (SIGSTOP) past its lease: another runs the job; resumed (SIGCONT), the zombie's thread task is interrupted and its settle changes nothing", {
      timeout: 120_000
    }, async () => {
      await stop(await zombieProof(fresh(), "threads"))
    })
  })

/** A private server, taken down and brought back mid-run. */
export interface PrivateServer {
  readonly url: string
  readonly down: () => Promise<void>
  readonly up: () => Promise<void>
  readonly destroy: () => Promise<void>
}

export const restartProof = (
  name: string,
  server: { readonly how: string; readonly start: () => Promise<PrivateServer> } | undefined,
  onServer: (url: string) => Setup
) =>
  describe.skipIf(!server)(`durable jobs across a ${name} restart`, () => {
    it(`the server ${server?.how ?? "stops and starts"} mid-run under 3 consumer processes and a producer: both see typed errors, reconnect, 0 jobs lost`, {
      timeout: 240_000
    }, async () => {
      // a server of its own: the shared one serves other test files meanwhile
      const running = await server!.start()
      try {
        const JOBS = 600
        const { consumer, runtime } = onServer(running.url)
        await runtime.runPromise(JobQueue.stats("default")) // the tables, before the consumers start
        const consumers = [0, 1, 2].map(() => consumer(4, 3000, 20))
        await ready(consumers)
        // the producer: half the jobs, then (once the server is down) the other half, each enqueue
        // retried on StoreError; the dedup key makes a retry of an enqueue that did commit a no-op
        let serverDown = () => {}
        const down = new Promise<void>((resolve) => {
          serverDown = resolve
        })
        const producerErrors: Array<string> = []
        const ids = new Map<number, string>()
        const enqueue = (n: number) =>
          JobQueue.enqueue(Work, { n }, { dedupKey: `job-${n}`, maxAttempts: 100 }).pipe(
            Effect.tapError((error) => Effect.sync(() => producerErrors.push(error._tag))),
            Effect.retry({ while: (error) => error._tag === "StoreError", schedule: Schedule.spaced(100) }),
            Effect.map((job) => ids.set(n, job.id))
          )
        const producer = runtime.runPromise(Effect.gen(function*() {
          for (let n = 0; n < JOBS / 2; n++) yield* enqueue(n)
          yield* Effect.promise(() => down)
          for (let n = JOBS / 2; n < JOBS; n++) yield* enqueue(n)
        }))
        await waitUntil(consumers, () => consumers.reduce((sum, c) => sum + c.started.length, 0) >= 60, "60 jobs started")
        await running.down()
        serverDown()
        // both sides notice: the producer's enqueues fail with StoreError, the consumers log failed claims
        await waitUntil(
          consumers,
          () => producerErrors.length > 0 && consumers.some((c) => c.warnings > 0),
          "the producer and a consumer saw the server go"
        )
        await running.up()
        await producer
        assert.isTrue(producerErrors.every((tag) => tag === "StoreError"), producerErrors.join())
        await untilFinal(() => runtime.runPromise(JobQueue.stats("default")), JOBS)
        const all = await runtime.runPromise(JobQueue.list({ limit: 10 * JOBS }))
        // one job per dedup key; a second only where an enqueue that landed lost its reply to the
        // outage and its retry came after that job had finished (a key is unique among unfinished jobs)
        const byKey = new Map<string | undefined, Array<(typeof all)[number]>>()
        for (const job of all) byKey.set(job.dedupKey, [...(byKey.get(job.dedupKey) ?? []), job])
        assert.strictEqual(byKey.size, JOBS, "every enqueue has its job")
        for (const jobs of byKey.values()) {
          jobs.sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime())
          for (let i = 1; i < jobs.length; i++) {
            const before = jobs[i - 1]!.finishedAt
            assert.isTrue(before !== undefined && jobs[i]!.createdAt >= before, `${jobs[i]!.dedupKey}: two unfinished jobs`)
          }
        }
        assert.isAtMost(all.length - JOBS, producerErrors.length, "a second job only for an enqueue that failed")
        const stats = await untilFinal(() => runtime.runPromise(JobQueue.stats("default")), all.length)
        assert.strictEqual(stats.succeeded, all.length, "0 lost, none dead")
        const results = await runtime.runPromise(Effect.forEach(Array.from(ids), ([, id]) => JobQueue.await(Work, id)))
        assert.deepStrictEqual(results, Array.from(ids.keys()))
        // the consumers lived through it, and still shut down gracefully
        for (const c of consumers) assert.strictEqual(c.child.exitCode, null, `${c.stderr}\n${c.lines.slice(-20).join("\n")}`)
        if (process.env.DURABLE_DEBUG) {
          console.log({ producerErrors: producerErrors.length, warnings: consumers.map((c) => c.warnings) })
        }
        await stop(consumers)
      } finally {
        await running.destroy()
      }
    })
  })
