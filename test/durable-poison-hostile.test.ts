/**
 * Poison jobs across real processes: a job whose handler ends its consumer process every time it
 * runs (process.exit, an uncaught exception from a timer, an unhandled rejection, process.abort,
 * kill -9 of itself, a heap run out), on SQLite, Postgres and Redis. Consumer processes
 * (fixtures/durable-poison-child.ts) are started again as they die, as a supervisor would. The
 * contract (docs/durable.md "Guarantees"): a claim counts an attempt, a job taken back from a dead
 * consumer is retried until `maxAttempts` and is then dead with `LeaseExpired`, and the other jobs
 * of the queue run. Every wait is for an event (a child's exit, a state in the store). Then version
 * skew in a rolling deploy (one task name, two versions of its Schemas), in this process, on every
 * store. Two findings left as `it.fails` (design decisions): a poison job's batch-mates, and a job
 * that makes its process shut down gracefully.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { it as effectIt } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, ManagedRuntime, type Layer, Result, Schema } from "effect"
import { afterAll, assert, describe, it } from "vitest"
import * as DurableError from "../src/DurableError.ts"
import * as JobQueue from "../src/JobQueue.ts"
import type * as JobStore from "../src/JobStore.ts"
import { TaskCodecError } from "../src/PoolError.ts"
import * as Task from "../src/Task.ts"
import { storeLayers } from "./durable/stores.ts"
import { type Consumer, followConsumer, processStoresOf, type ProcessStore, untilFinal, untilRead } from "./durable/children.ts"
import { Poison } from "./fixtures/durable-tasks.ts"

const node = existsSync("node_modules/.bin/node") ? join(process.cwd(), "node_modules/.bin/node") : process.execPath
const fixture = new URL("./fixtures/durable-poison-child.ts", import.meta.url).pathname
const dir = mkdtempSync(join(tmpdir(), "wp-durable-poison-"))
const all: Array<ChildProcess> = []
const runtimes: Array<ManagedRuntime.ManagedRuntime<JobStore.JobStore, never>> = []
afterAll(async () => {
  for (const child of all) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
  await Promise.all(runtimes.map((runtime) => runtime.dispose()))
  rmSync(dir, { recursive: true, force: true })
})

let files = 0
const fresh = (name: string) => join(dir, `${name}-${files++}`)

/**
 * A poison consumer process: its heap bounded (for `oom`), no core file (`abort` would write one
 * where core dumps are on), run in the test's directory (removed after).
 */
const spawnChild = (store: ProcessStore, concurrency: number, lease: number, log: string): Consumer => {
  const args = ["--max-old-space-size=96", fixture, store.target, String(concurrency), String(lease), log]
  const child = spawn("sh", ["-c", `ulimit -c 0; exec "$0" "$@"`, node, ...args], {
    cwd: dir,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...store.env }
  })
  all.push(child)
  return followConsumer(child)
}

/**
 * Keeps `slots` consumer processes running, starting a new one as one dies, until `done` says the
 * store has every job final; stops the survivors (SIGTERM) and returns every process it started.
 */
const supervise = async (
  store: ProcessStore,
  options: { slots: number; concurrency: number; lease: number; log: string },
  done: () => Promise<unknown>
): Promise<{ readonly started: Array<Consumer>; readonly died: Array<Consumer> }> => {
  const started: Array<Consumer> = []
  const died: Array<Consumer> = []
  let stopping = false
  const keep = () => {
    const consumer = spawnChild(store, options.concurrency, options.lease, options.log)
    started.push(consumer)
    void consumer.exited.then(() => {
      if (stopping) return
      died.push(consumer)
      keep()
    })
  }
  for (let i = 0; i < options.slots; i++) keep()
  try {
    await done()
  } finally {
    stopping = true
    const alive = started.filter((c) => c.child.exitCode === null && c.child.signalCode === null)
    for (const c of alive) c.child.kill("SIGTERM")
    await Promise.all(alive.map((c) => c.exited))
  }
  return { started, died }
}

/** `start` lines of the side-effect log, per job number: the pids that ran each attempt. */
const startsOf = (log: string): Map<number, Array<number>> => {
  const starts = new Map<number, Array<number>>()
  for (const line of readFileSync(log, "utf8").split("\n")) {
    const [event, k, pid] = line.split(" ")
    if (event !== "start") continue
    starts.set(Number(k), [...starts.get(Number(k)) ?? [], Number(pid)])
  }
  return starts
}

const producer = (store: ProcessStore) => {
  const runtime = ManagedRuntime.make(store.layer as Layer.Layer<JobStore.JobStore, never>)
  runtimes.push(runtime)
  return runtime
}

const MODES = ["exit", "throw-timer", "reject", "abort", "kill9", "oom"] as const
const LEASE = 1500
const MAX_ATTEMPTS = 2

describe("a poison job that ends its consumer process each time it runs", () => {
  for (const [name, make] of processStoresOf(() => fresh("poison.db"))) {
    // SQLite gets every way to die; the server stores one each (the way a process dies is not the
    // store's concern, its lease is), to keep the file's run time down
    const modes = name === "an SQLite file" ? MODES : name === "Postgres" ? (["exit"] as const) : (["kill9"] as const)
    it(`${name}: ${modes.join(", ")}: each is run ${MAX_ATTEMPTS} times (by one consumer at a time), then dead with LeaseExpired; the other jobs succeed (a stack overflow: a defect, retried, the process lives)`, {
      timeout: 150_000
    }, async () => {
      const store = make()
      const runtime = producer(store)
      const log = fresh("poison.log")
      writeFileSync(log, "")
      const GOOD = 12
      const jobs = [
        ...modes.map((how, k) => ({ k, how, ms: 0 })),
        ...Array.from({ length: GOOD }, (_, i) => ({ k: 100 + i, how: "ok", ms: 20 })),
        // a stack overflow is a RangeError the fiber catches: a defect, retried; the process lives
        { k: 200, how: "stack", ms: 0 }
      ]
      const ids = await runtime.runPromise(Effect.forEach(jobs, (payload) =>
        Effect.map(
          JobQueue.enqueue(Poison, payload, { maxAttempts: payload.how === "ok" ? 10 : MAX_ATTEMPTS }),
          (job) => job.id
        )))
      const { died } = await supervise(
        store,
        { slots: 2, concurrency: 1, lease: LEASE, log },
        () => untilFinal(() => runtime.runPromise(JobQueue.stats("default")), jobs.length, 130_000)
      )
      const exits = await runtime.runPromise(Effect.forEach(ids, (id) => Effect.exit(JobQueue.await(Poison, id))))
      const starts = startsOf(log)
      const report = () =>
        JSON.stringify({ starts: [...starts], died: died.map((c) => [c.child.pid, c.child.exitCode ?? c.child.signalCode, c.stderr.slice(0, 300)]) })
      for (const [k, how] of modes.entries()) {
        const exit = exits[k]!
        assert.isTrue(Exit.isFailure(exit), `${how}: ${report()}`)
        const error = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
        assert.isTrue(error?._tag === "Fail" && error.error instanceof DurableError.LeaseExpired, `${how}: ${String(error)}`)
        assert.strictEqual((error as { error: DurableError.LeaseExpired }).error.attempt, MAX_ATTEMPTS)
        // one consumer at a time: an attempt per claim, each in a process of its own (it died)
        const pids = starts.get(k) ?? []
        assert.strictEqual(pids.length, MAX_ATTEMPTS, `${how}: ${report()}`)
        assert.strictEqual(new Set(pids).size, MAX_ATTEMPTS)
        const info = await runtime.runPromise(JobQueue.status(ids[k]!))
        assert.deepStrictEqual([info.state, info.attempts], ["dead", MAX_ATTEMPTS])
      }
      for (let i = 0; i < GOOD; i++) assert.deepStrictEqual(exits[modes.length + i], Exit.succeed(100 + i), report())
      const overflow = exits[modes.length + GOOD]!
      const defect = Exit.isFailure(overflow) ? Cause.findDefect(overflow.cause) : undefined
      assert.strictEqual(defect !== undefined && Result.isSuccess(defect) ? (defect.success as Error).name : String(overflow), "RangeError")
      assert.strictEqual(starts.get(200)?.length, MAX_ATTEMPTS)
      // every death was a poison job's: MAX_ATTEMPTS per way to die
      assert.strictEqual(died.length, modes.length * MAX_ATTEMPTS, report())
    })
  }
})

/**
 * Not fixed (a design decision, not taken here): a consumer claims as many jobs
 * as it has free slots, each claim counting an attempt, and when a poison job ends the process the
 * reaper cannot tell it from the jobs claimed beside it: each loses its lease and an attempt. The
 * claim order is the same at every try (rank, then FIFO; no jitter), so the same batch is claimed
 * again by the next process, and after `maxAttempts` crashes every job of the batch is dead with
 * `LeaseExpired`. Here the poison job is first in its batch and its handler ends the process as it
 * starts (an Effect.sync handler runs as it is submitted), so its 3 batch-mates' handlers never ran
 * a line: they are dead with "the consumer of attempt 2 stopped renewing its lease". BullMQ
 * (maxStalledCount) and graphile-worker count a crashed worker's jobs the same way; a fix would
 * tell suspects (a job back from an expired lease) apart and run each alone once.
 */
describe("a poison job's batch-mates: the jobs its consumer claimed beside it each time", () => {
  for (const [name, make] of processStoresOf(() => fresh("mates.db")).slice(0, 1)) {
    it.fails(`${name}: a consumer of concurrency 4 claims the poison job and 3 others, whose handlers never run; they end dead with it instead of succeeding`, {
      timeout: 120_000
    }, async () => {
      const store = make()
      const runtime = producer(store)
      const log = fresh("mates.log")
      writeFileSync(log, "")
      const jobs = [{ k: 0, how: "exit", ms: 0 }, ...[1, 2, 3].map((k) => ({ k, how: "ok", ms: 100 }))]
      const ids = await runtime.runPromise(
        Effect.forEach(jobs, (payload) => Effect.map(JobQueue.enqueue(Poison, payload, { maxAttempts: MAX_ATTEMPTS }), (job) => job.id))
      )
      const { died } = await supervise(
        store,
        { slots: 1, concurrency: 4, lease: LEASE, log },
        () => untilFinal(() => runtime.runPromise(JobQueue.stats("default")), jobs.length, 100_000)
      )
      const exits = await runtime.runPromise(Effect.forEach(ids, (id) => Effect.exit(JobQueue.await(Poison, id))))
      const report = JSON.stringify({ starts: [...startsOf(log)], died: died.length })
      assert.strictEqual(died.length, MAX_ATTEMPTS, report)
      assert.deepStrictEqual(exits.slice(1), [Exit.succeed(1), Exit.succeed(2), Exit.succeed(3)], report)
    })
  }
})

/**
 * Not fixed (a design decision, not taken here): a consumer's graceful shutdown
 * gives its running jobs back without counting their attempts (docs/durable.md: so that a deploy
 * costs no job an attempt). A job that makes its own process shut down gracefully (SIGTERM: an
 * orchestrator evicting a pod whose memory the job took, a liveness probe it failed) is therefore
 * given back uncounted every time, and runs again on the next process, for ever: `maxAttempts` never
 * ends the loop, and its status says 0 attempts. Seen: 5 starts, state queued, attempts 0, of a job
 * of maxAttempts 2 (the test stops at 3). A bound would need the store to count give-backs (a
 * column, a hash field), or a shutdown past `shutdownTimeout` to count the attempt.
 */
describe("a poison job that makes its process shut down gracefully (SIGTERM) each time it runs", () => {
  for (const [name, make] of processStoresOf(() => fresh("term.db")).slice(0, 1)) {
    it.fails(`${name}: it is given back uncounted each time and runs for ever, instead of ending dead after maxAttempts`, { timeout: 120_000 }, async () => {
      const store = make()
      const runtime = producer(store)
      const log = fresh("term.log")
      writeFileSync(log, "")
      const id = await runtime.runPromise(Effect.map(JobQueue.enqueue(Poison, { k: 0, how: "term", ms: 0 }, { maxAttempts: MAX_ATTEMPTS }), (job) => job.id))
      const started = () => startsOf(log).get(0)?.length ?? 0
      await supervise(
        { ...store, env: { ...store.env, WORKPOOL_TEST_SHUTDOWN: "100" } },
        { slots: 1, concurrency: 1, lease: LEASE, log },
        () => untilRead(() => runtime.runPromise(JobQueue.status(id)), (info) => info.state === "dead" || started() > MAX_ATTEMPTS, "dead, or run past its attempts")
      )
      const info = await runtime.runPromise(JobQueue.status(id))
      assert.deepStrictEqual([info.state, started()], ["dead", MAX_ATTEMPTS], JSON.stringify(info))
    })
  }
})

// --- version skew between deployed processes (a rolling deploy): one task name, two versions

class Bounced extends Schema.TaggedError<Bounced>()("Bounced", { to: Schema.String }) {}
class Throttled extends Schema.TaggedError<Throttled>()("Throttled", { retryIn: Schema.Number }) {}
/** The app's version 1 of a task... */
const MailV1 = Task.make("Mail", {
  payload: Schema.Struct({ to: Schema.String, kind: Schema.Literals(["welcome", "reset"]) }),
  success: Schema.Number,
  failure: Bounced
})
/** ...and version 2: a new required field, a renamed kind, a richer success, a new failure. */
const MailV2 = Task.make("Mail", {
  payload: Schema.Struct({ to: Schema.String, kind: Schema.Literals(["welcome", "passwordReset"]), locale: Schema.String }),
  success: Schema.Struct({ messageId: Schema.Number }),
  failure: Schema.Union([Bounced, Throttled])
})
/** A task only version 2 has. */
const Digest = Task.make("Digest", { payload: Schema.String, success: Schema.String })

const partOf = (exit: Exit.Exit<unknown, unknown>) => {
  const error = Exit.isFailure(exit) ? Cause.findErrorOption(exit.cause) : undefined
  return error?._tag === "Some" && error.value instanceof TaskCodecError
    ? `TaskCodecError ${error.value.part}: ${error.value.issue.split("\n")[0]}`
    : Exit.isSuccess(exit) ? `success ${JSON.stringify(exit.value)}` : String(exit)
}

describe.each(storeLayers(() => fresh("skew.db")))("version skew in a rolling deploy, on the %s store", (_name, makeStore) => {
  effectIt.live("a version-1 consumer: a version-2 payload with a renamed kind is dead at its first attempt with TaskCodecError naming it (one with only a new field runs), its other jobs run, a task it does not know stays queued (not failed); version 2 runs that task, fails a version-1 payload (its new field missing) at once, and a redrive runs the renamed one to success", () =>
    Effect.gen(function*() {
      const newer = yield* JobQueue.enqueue(MailV2, { to: "a@x", kind: "welcome", locale: "fr" })
      const renamed = yield* JobQueue.enqueue(MailV2, { to: "b@x", kind: "passwordReset", locale: "fr" })
      const older = yield* JobQueue.enqueue(MailV1, { to: "c@x", kind: "reset" })
      const digest = yield* JobQueue.enqueue(Digest, "daily")
      const v1 = yield* Effect.forkScoped(Effect.scoped(Effect.andThen(
        JobQueue.consume({ handlers: [Task.handle(MailV1, ({ to }) => Effect.succeed(to.length))], concurrency: 2, poll: "20 millis" }),
        Effect.never
      )))
      assert.strictEqual(yield* JobQueue.await(MailV1, older.id), 3)
      // a version-2 payload decodes with version 1's Schema (an extra key is dropped) unless its value is new
      assert.strictEqual(yield* JobQueue.await(MailV1, newer.id), 3)
      const dead = yield* Effect.exit(JobQueue.await(MailV2, renamed.id))
      assert.match(partOf(dead), /^TaskCodecError payload: Expected "welcome" \| "reset"/)
      assert.deepStrictEqual([(yield* JobQueue.status(renamed.id)).state, (yield* JobQueue.status(renamed.id)).attempts], ["dead", 1])
      // not claimed (and so not failed) by a consumer that does not know its task
      assert.deepStrictEqual([(yield* JobQueue.status(digest.id)).state, (yield* JobQueue.status(digest.id)).attempts], ["queued", 0])
      yield* Fiber.interrupt(v1)
      const stale = yield* JobQueue.enqueue(MailV1, { to: "d@x", kind: "welcome" })
      yield* JobQueue.consume({
        handlers: [
          Task.handle(MailV2, ({ to }) => Effect.succeed({ messageId: to.length })),
          Task.handle(Digest, (s) => Effect.succeed(s.toUpperCase()))
        ],
        concurrency: 2,
        poll: "20 millis"
      })
      assert.strictEqual(yield* JobQueue.await(Digest, digest.id), "DAILY")
      assert.match(partOf(yield* Effect.exit(JobQueue.await(MailV2, stale.id))), /^TaskCodecError payload: Missing key/)
      assert.strictEqual((yield* JobQueue.status(stale.id)).attempts, 1)
      assert.isTrue(yield* JobQueue.redrive(renamed.id))
      assert.deepStrictEqual(yield* JobQueue.await(MailV2, renamed.id), { messageId: 3 })
    }).pipe(Effect.scoped, Effect.provide(makeStore())), 60_000)

  effectIt.live("a version-1 awaiter of a version-2 consumer's outcomes: a success and a failure (a tag it does not know) its Schemas cannot read are TaskCodecError (part success, failure) at once, not a defect or a hang; its status reads them", () =>
    Effect.gen(function*() {
      const ok = yield* JobQueue.enqueue(MailV2, { to: "a@x", kind: "welcome", locale: "fr" })
      const throttled = yield* JobQueue.enqueue(MailV2, { to: "b@x", kind: "welcome", locale: "fr" }, { maxAttempts: 1 })
      const bounced = yield* JobQueue.enqueue(MailV2, { to: "c@x", kind: "welcome", locale: "fr" }, { maxAttempts: 1 })
      yield* JobQueue.consume({
        handlers: [Task.handle(MailV2, ({ to }) =>
          to === "a@x" ? Effect.succeed({ messageId: 1 }) : to === "b@x" ? Effect.fail(new Throttled({ retryIn: 5 })) : Effect.fail(new Bounced({ to })))],
        concurrency: 3,
        poll: "20 millis"
      })
      const exits = yield* Effect.forEach([ok, throttled, bounced], (job) => Effect.exit(JobQueue.await(MailV1, job.id)))
      assert.deepStrictEqual(exits.slice(0, 2).map(partOf).map((s) => s.split(":")[0]), ["TaskCodecError success", "TaskCodecError failure"])
      // a failure both versions know is read as the awaiter's own class
      const error = Exit.isFailure(exits[2]!) ? Cause.findErrorOption(exits[2]!.cause) : undefined
      assert.isTrue(error?._tag === "Some" && error.value instanceof Bounced, String(exits[2]))
      const states = yield* Effect.forEach([ok, throttled], (job) => Effect.map(JobQueue.status(job.id), (info) => info.state))
      assert.deepStrictEqual(states, ["succeeded", "dead"])
    }).pipe(Effect.scoped, Effect.provide(makeStore())), 60_000)
})
