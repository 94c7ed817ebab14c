/**
 * Hostile tests of a durable job's outcome on its way to the store (exit.ts's encodeExit, through
 * the one JSON helper): values that a Schema lets through but that are no JSON, or that break
 * whoever looks at them (a Schema whose encode throws, a Proxy whose traps throw, a revoked Proxy),
 * as a success, a failure or a defect, on every store. Whatever the value, the job ends settled
 * (never left running with its lease renewed, never reaped and run again), its awaiter gets a typed
 * error, and the consumer goes on with other jobs. Each job's lease is a minute: a job whose settle
 * failed is still running when its awaiter gives up (15 s), so no test waits for a guessed time.
 */
import { assert, describe, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Cause, Deferred, Effect, Exit, Layer, Logger, Option, Schedule, Schema, SchemaGetter } from "effect"
import { afterAll } from "vitest"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import { TaskCodecError } from "../src/PoolError.ts"
import * as Task from "../src/Task.ts"
import * as WorkPool from "../src/WorkPool.ts"
import * as ThreadPool from "../src/ThreadPool.ts"
import { Odd } from "./fixtures/durable-thread-tasks.ts"
import { warnings } from "./helpers.ts"
import { storeLayers } from "./durable/stores.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wp-json-hostile-"))
let files = 0
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const stores = storeLayers(() => path.join(dir, `f${files++}.db`))

/** A number whose encode throws (a transformation with a bug in its encode direction). */
const EncodeThrows = Schema.Number.pipe(Schema.encodeTo(Schema.Number, {
  decode: SchemaGetter.transform((n: number) => n),
  encode: SchemaGetter.transform((): number => {
    throw new Error("the encode has a bug")
  })
}))
const Throwy = Task.make("Throwy", { payload: Schema.Number, success: EncodeThrows, failure: EncodeThrows })
const Loose = Task.make("LooseJson", { payload: Schema.Number, success: Schema.Any, failure: Schema.Any })

const revoked = () => {
  const { proxy, revoke } = Proxy.revocable({}, {})
  revoke()
  return proxy
}
/** A Proxy every trap of which throws: instanceof, a property read, JSON.stringify all throw. */
const trapped = () => {
  const fail = () => {
    throw new Error("trap")
  }
  return new Proxy({}, { get: fail, getPrototypeOf: fail, ownKeys: fail, has: fail, getOwnPropertyDescriptor: fail })
}

const options = {
  concurrency: 2,
  lease: "1 minute",
  poll: 20,
  retry: Schedule.spaced(10) as Schedule.Schedule<unknown, unknown>
} as const

/** What the awaiter got: a TaskCodecError's part, a defect's message, a success, or "hung" (still running at 15 s). */
const outcome = (exit: Exit.Exit<unknown, unknown> | undefined): string => {
  if (exit === undefined) return "hung"
  if (Exit.isSuccess(exit)) return `success ${String(exit.value)}`
  const error = Cause.findErrorOption(exit.cause)
  if (error._tag === "Some") return error.value instanceof TaskCodecError ? `TaskCodecError ${error.value.part}` : `error ${String(error.value)}`
  return Cause.hasDies(exit.cause) ? "defect" : "other"
}

/** The awaiter's Exit, or undefined if the job had not ended 15 s on. */
const awaited = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.exit, Effect.timeoutOption("15 seconds"), Effect.map(Option.getOrUndefined))

describe.each(stores)("a durable job's outcome that breaks its encoding, on the %s store", (_name, makeStore) => {
  it.live("a Schema whose encode throws, for a success or a failure: the job ends dead with TaskCodecError (a success at once, a failure after its retries), not a settle that fails and leaves it running for its lease to be reaped and run again", () => {
    const log = warnings()
    return Effect.gen(function*() {
      yield* JobQueue.consume({
        ...options,
        handlers: [Task.handle(Throwy, (n) => n === 0 ? Effect.succeed(1) : Effect.fail(1))]
      })
      const jobs = yield* Effect.forEach([0, 1], (n) => JobQueue.enqueue(Throwy, n, { maxAttempts: 2 }))
      const exits = yield* Effect.forEach(jobs, (job) =>
        awaited(JobQueue.await(Throwy, job.id)), { concurrency: "unbounded" })
      const infos = yield* Effect.forEach(jobs, (job) => JobQueue.status(job.id))
      assert.deepStrictEqual(
        { outcomes: exits.map((exit) => outcome(exit)), ends: infos.map((info) => [info.state, info.attempts]) },
        { outcomes: ["TaskCodecError success", "TaskCodecError failure"], ends: [["dead", 1], ["dead", 2]] }
      )
      assert.deepStrictEqual(log.logged.filter((line) => line.includes("settle failed")), [])
    }).pipe(Effect.scoped, Effect.provide(Layer.merge(makeStore(), Logger.layer([log.collector]))))
  }, 60_000)

  it.live("a success, a failure or a defect that is a revoked Proxy or a Proxy whose traps throw: the job ends dead with a typed error for its awaiter (not left running with its lease renewed for ever), and the consumer goes on with the next job", () => {
    const log = warnings()
    return Effect.gen(function*() {
      const values = [revoked, trapped]
      const cases = values.flatMap((value) => [
        () => Effect.succeed(value()),
        () => Effect.fail(value()),
        () => Effect.die(value())
      ])
      yield* JobQueue.consume({
        ...options,
        handlers: [Task.handle(Loose, (n) => n < cases.length ? cases[n]!() : Effect.succeed(n))]
      })
      const jobs = yield* Effect.forEach(cases, (_, n) => JobQueue.enqueue(Loose, n, { maxAttempts: 2 }))
      const after = yield* JobQueue.enqueue(Loose, 100)
      const exits = yield* Effect.forEach([...jobs, after], (job) =>
        awaited(JobQueue.await(Loose, job.id)), { concurrency: "unbounded" })
      const infos = yield* Effect.forEach([...jobs, after], (job) => JobQueue.status(job.id))
      const expected = ["TaskCodecError success", "TaskCodecError failure", "defect"]
      assert.deepStrictEqual(
        { outcomes: exits.map((exit) => outcome(exit)), ends: infos.map((info) => [info.state, info.attempts]) },
        {
          outcomes: [...expected, ...expected, "success 100"],
          ends: [["dead", 1], ["dead", 2], ["dead", 2], ["dead", 1], ["dead", 2], ["dead", 2], ["succeeded", 1]]
        }
      )
      assert.deepStrictEqual(log.logged.filter((line) => line.includes("settle failed")), [])
    }).pipe(Effect.scoped, Effect.provide(Layer.merge(makeStore(), Logger.layer([log.collector]))))
  }, 60_000)
})

describe("a durable job's outcome that breaks its encoding on a ThreadPool consumer (the thread encodes)", () => {
  it.live("as on a fiber: a success whose Schema's encode throws is dead at once with TaskCodecError (part success); a failure with no JSON (a symbol, a function, a BigInt) is retried as the failure it is and ends dead with TaskCodecError (part failure) after its attempts", () =>
    Effect.gen(function*() {
      const pool = yield* ThreadPool.make({
        worker: new URL("./fixtures/durable-thread-worker.ts", import.meta.url),
        threads: 1,
        workerData: { counters: new SharedArrayBuffer(16 * 4) }
      })
      yield* JobQueue.consume({ threadPool: pool, tasks: [Odd], poll: 10, lease: "1 minute", retry: Schedule.spaced(10) as Schedule.Schedule<unknown, unknown> })
      const jobs = yield* Effect.forEach([0, 1, 2, 3], (n) => JobQueue.enqueue(Odd, n, { maxAttempts: 2 }))
      const exits = yield* Effect.forEach(jobs, (job) => awaited(JobQueue.await(Odd, job.id)), { concurrency: "unbounded" })
      const infos = yield* Effect.forEach(jobs, (job) => JobQueue.status(job.id))
      assert.deepStrictEqual(
        { outcomes: exits.map((exit) => outcome(exit)), ends: infos.map((info) => [info.state, info.attempts]) },
        {
          outcomes: ["TaskCodecError success", "TaskCodecError failure", "TaskCodecError failure", "TaskCodecError failure"],
          ends: [["dead", 1], ["dead", 2], ["dead", 2], ["dead", 2]]
        }
      )
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory())), 60_000)
})

describe("a durable job's payload that breaks its encoding", () => {
  const ThrowyPayload = Task.make("ThrowyPayload", { payload: EncodeThrows, success: Schema.Number })
  const AnyPayload = Task.make("AnyPayload", { payload: Schema.Any, success: Schema.Number })
  it.effect("enqueue fails typed with TaskCodecError (part payload) and stores nothing: a Schema whose encode throws (a defect of enqueue, before), a revoked Proxy, a Proxy whose traps throw", () =>
    Effect.gen(function*() {
      const errors = yield* Effect.forEach([
        JobQueue.enqueue(ThrowyPayload, 1),
        JobQueue.enqueue(AnyPayload, revoked()),
        JobQueue.enqueue(AnyPayload, trapped())
      ], (enqueue) => Effect.map(Effect.exit(enqueue), (exit) => outcome(exit)))
      assert.deepStrictEqual(errors, ["TaskCodecError payload", "TaskCodecError payload", "TaskCodecError payload"])
      assert.deepStrictEqual((yield* JobQueue.list({ limit: 10 })).length, 0)
    }).pipe(Effect.provide(JobStore.memory())))
})

describe.each(stores)("a composite or odd outcome, on the %s store", (_name, makeStore) => {
  it.live("a cause of a failure with no JSON and a Proxy defect, an interrupt with a Proxy defect, a handler that interrupts itself, a value nested past the stack, a toJSON that gives undefined: each job ends dead with a typed error or a defect (a success at once, a failure after its retries), never left running", () => {
    const log = warnings()
    return Effect.gen(function*() {
      let deep: unknown = 1
      for (let i = 0; i < 200_000; i++) deep = [deep]
      const cases: ReadonlyArray<() => Effect.Effect<unknown, unknown>> = [
        () => Effect.failCause(Cause.combine(Cause.fail(10n), Cause.die(revoked()))),
        () => Effect.failCause(Cause.combine(Cause.interrupt(1), Cause.die(trapped()))),
        () => Effect.interrupt,
        () => Effect.succeed(deep),
        () => Effect.fail(deep),
        () => Effect.succeed({ toJSON: () => undefined })
      ]
      yield* JobQueue.consume({ ...options, handlers: [Task.handle(Loose, (n) => cases[n]!())] })
      const jobs = yield* Effect.forEach(cases, (_, n) => JobQueue.enqueue(Loose, n, { maxAttempts: 2 }))
      const exits = yield* Effect.forEach(jobs, (job) => awaited(JobQueue.await(Loose, job.id)), { concurrency: "unbounded" })
      const infos = yield* Effect.forEach(jobs, (job) => JobQueue.status(job.id))
      assert.deepStrictEqual(
        { outcomes: exits.map((exit) => outcome(exit)), ends: infos.map((info) => [info.state, info.attempts]) },
        {
          // a cause with a defect is stored as its defect; an attempt that interrupts itself is not retried
          outcomes: ["defect", "defect", "defect", "TaskCodecError success", "TaskCodecError failure", "TaskCodecError success"],
          ends: [["dead", 2], ["dead", 2], ["dead", 1], ["dead", 1], ["dead", 2], ["dead", 1]]
        }
      )
      assert.deepStrictEqual(log.logged.filter((line) => line.includes("settle failed")), [])
    }).pipe(Effect.scoped, Effect.provide(Layer.merge(makeStore(), Logger.layer([log.collector]))))
  }, 60_000)
})

describe.each(stores)("strings that are hard on a store, on the %s store", (_name, makeStore) => {
  it.live("a NUL, lone surrogates and a line separator in a payload (the handler echoes it), a success, a failure, a defect's message and progress come back as they were (the stored text is JSON, escaped; Postgres's batched settle wraps it in jsonb)", () =>
    Effect.gen(function*() {
      const odd = "a\u0000b\ud800c\udc00d\u2028e\uffff"
      const Strings = Task.make("Strings", { payload: Schema.String, success: Schema.String, failure: Schema.String })
      const reported = yield* Deferred.make<void>()
      yield* JobQueue.consume({
        ...options,
        concurrency: 3,
        handlers: [Task.handle(Strings, (text) =>
          Effect.gen(function*() {
            const job = yield* WorkPool.JobContext
            yield* job.progress(text)
            yield* Deferred.await(reported)
            if (text.startsWith("f")) return yield* Effect.fail(text)
            if (text.startsWith("d")) return yield* Effect.die(new Error(text))
            return text
          }))]
      })
      const jobs = yield* Effect.forEach(["s", "f", "d"], (kind) => JobQueue.enqueue(Strings, kind + odd, { maxAttempts: 1 }))
      for (const job of jobs) while ((yield* JobQueue.status(job.id)).progress === undefined) yield* Effect.sleep(5)
      yield* Deferred.succeed(reported, undefined)
      const exits = yield* Effect.forEach(jobs, (job) => awaited(JobQueue.await(Strings, job.id)))
      const infos = yield* Effect.forEach(jobs, (job) => JobQueue.status(job.id))
      const got = exits.map((exit) => {
        if (exit === undefined) return "hung"
        if (Exit.isSuccess(exit)) return exit.value
        const error = Cause.findErrorOption(exit.cause)
        return error._tag === "Some" ? error.value : (Cause.squash(exit.cause) as Error).message
      })
      assert.deepStrictEqual(got, ["s" + odd, "f" + odd, "d" + odd])
      assert.deepStrictEqual(infos.map((info) => [info.state, info.progress]), [["succeeded", "s" + odd], ["dead", "f" + odd], ["dead", "d" + odd]])
    }).pipe(Effect.scoped, Effect.provide(makeStore())), 60_000)
})

/** A number whose decode throws (a bug in its decode direction); its encode is fine. */
const DecodeThrows = Schema.Number.pipe(Schema.encodeTo(Schema.Number, {
  decode: SchemaGetter.transform((): number => {
    throw new Error("the decode has a bug")
  }),
  encode: SchemaGetter.transform((n: number) => n)
}))

describe("a durable job whose Schema's decode throws", () => {
  const BadPayload = Task.make("BadPayload", { payload: DecodeThrows, success: Schema.Number })
  const BadSuccess = Task.make("BadSuccess", { payload: Schema.Number, success: DecodeThrows })
  it.live("a payload whose decode throws is dead at its first attempt with TaskCodecError (part payload), as a payload that does not decode (not a defect retried to its last attempt); a stored success whose decode throws is TaskCodecError (part success) for its awaiter, not a defect", () =>
    Effect.gen(function*() {
      yield* JobQueue.consume({
        ...options,
        handlers: [Task.handle(BadPayload, () => Effect.succeed(1)), Task.handle(BadSuccess, (n) => Effect.succeed(n))]
      })
      const payload = yield* JobQueue.enqueue(BadPayload, 1, { maxAttempts: 3 })
      const success = yield* JobQueue.enqueue(BadSuccess, 1, { maxAttempts: 3 })
      const exits = [yield* awaited(JobQueue.await(BadPayload, payload.id)), yield* awaited(JobQueue.await(BadSuccess, success.id))]
      const infos = yield* Effect.forEach([payload, success], (job) => JobQueue.status(job.id))
      assert.deepStrictEqual(
        { outcomes: exits.map((exit) => outcome(exit)), ends: infos.map((info) => [info.state, info.attempts]) },
        { outcomes: ["TaskCodecError payload", "TaskCodecError success"], ends: [["dead", 1], ["succeeded", 1]] }
      )
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory())), 60_000)
})

describe("a Schema.Any outcome that holds what JSON leaves out", () => {
  it.live("is stored as JSON writes it (docs/durable.md): a function or a symbol inside is left out of an object and null in an array, NaN null, a Map {}; the job succeeded", () =>
    Effect.gen(function*() {
      yield* JobQueue.consume({
        ...options,
        handlers: [Task.handle(Loose, () => Effect.succeed({ f: () => 1, s: Symbol("s"), list: [() => 1, Symbol("t")], n: NaN, m: new Map([[1, 2]]) }))]
      })
      const job = yield* JobQueue.enqueue(Loose, 0)
      assert.deepStrictEqual(yield* JobQueue.await(Loose, job.id), { list: [null, null], n: null, m: {} })
      assert.strictEqual((yield* JobQueue.status(job.id)).state, "succeeded")
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory())), 60_000)
})

describe("progress that breaks its encoding", () => {
  it.live("a progress report that is a revoked Proxy, a Proxy whose traps throw, a BigInt or has a throwing toJSON is not stored (the last JSON one stays), said once; the job ends as its handler does and the next job runs", () => {
    const log = warnings()
    return Effect.gen(function*() {
      const stored = yield* Deferred.make<void>()
      yield* JobQueue.consume({
        ...options,
        handlers: [Task.handle(Loose, (n) =>
          Effect.gen(function*() {
            if (n === 1) return 1
            const job = yield* WorkPool.JobContext
            yield* job.progress({ step: 1 })
            yield* Deferred.await(stored)
            for (const value of [revoked(), trapped(), 10n, { toJSON: () => { throw revoked() } }]) {
              yield* job.progress(value)
              yield* Effect.sleep(5)
            }
            return 0
          }))]
      })
      const job = yield* JobQueue.enqueue(Loose, 0, { maxAttempts: 1 })
      const next = yield* JobQueue.enqueue(Loose, 1)
      while ((yield* JobQueue.status(job.id)).progress === undefined) yield* Effect.sleep(5)
      yield* Deferred.succeed(stored, undefined)
      const exits = yield* Effect.forEach([job, next], (job) => awaited(JobQueue.await(Loose, job.id)))
      assert.deepStrictEqual(exits.map((exit) => outcome(exit)), ["success 0", "success 1"])
      assert.deepStrictEqual((yield* JobQueue.status(job.id)).progress, { step: 1 })
      assert.strictEqual(log.logged.filter((line) => line.includes("progress is not JSON")).length, 1)
      assert.deepStrictEqual(log.logged.filter((line) => line.includes("settle failed")), [])
    }).pipe(Effect.scoped, Effect.provide(Layer.merge(JobStore.memory(), Logger.layer([log.collector]))))
  }, 60_000)
})
