/**
 * What a TypeScript user sees: the public types must not let bad code through (it compiles, then
 * fails or dies at run time) nor refuse correct code. `npm run check` typechecks this file: a
 * `@ts-expect-error` line that no longer errors, or a `sameType` that no longer holds, fails it.
 * The functions named `_compileOnly` are never called: what they check is tsc's.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Schema, Stream } from "effect"
import type * as Scope from "effect/Scope"
import { TestClock } from "effect/testing"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import type { AdmittedJobError, JobError } from "../src/PoolError.ts"
import * as Task from "../src/Task.ts"
import * as ThreadWorker from "../src/ThreadWorker.ts"
import * as WorkPool from "../src/WorkPool.ts"

/** Compiles only when X and Y are the same type. */
type Equals<X, Y> = (<T>() => T extends X ? 1 : 2) extends (<T>() => T extends Y ? 1 : 2) ? true : false
const sameType = <X, Y>(_: Equals<X, Y>) => {}

class Db extends Context.Service<Db, { readonly query: Effect.Effect<string> }>()("test/types-hostile/Db") {}

const Square = Task.make("TypesSquare", { payload: Schema.Number, success: Schema.Number })

describe("ThreadWorker.serve", () => {
  it("a handler that needs a service does not compile without a layer that provides it", () => {
    const needsDb = Task.handle(Square, (n) => Effect.as(Db.use((db) => db.query), n * n))
    const _compileOnly = () => {
      // it compiled, and every task of the thread died at run time: "Service not found"
      // @ts-expect-error: the handler needs Db, and no layer provides it
      ThreadWorker.serve([needsDb])
      // what the thread does need
      ThreadWorker.serve([needsDb], Layer.succeed(Db, { query: Effect.succeed("row") }))
      // a layer that provides more than the handlers need, and one for handlers that need nothing
      class Cache extends Context.Service<Cache, number>()("test/types-hostile/Cache") {}
      const both = Layer.merge(Layer.succeed(Db, { query: Effect.succeed("row") }), Layer.succeed(Cache, 1))
      ThreadWorker.serve([needsDb], both)
      ThreadWorker.serve([Task.handle(Square, (n) => Effect.succeed(n))], both)
      // @ts-expect-error: this layer provides Cache, not the Db the handler needs
      ThreadWorker.serve([needsDb], Layer.succeed(Cache, 1))
    }
    assert.strictEqual(needsDb.task, Square)
  })
})

describe("JobQueue.JobRetry", () => {
  it.effect("a backoff that mixes exponential and fixed keys does not compile (it is refused at run time)", () =>
    Effect.gen(function*() {
      const _compileOnly = () => [
        // @ts-expect-error: exponential or fixed, not both
        JobQueue.enqueue(Square, 1, { retry: { exponential: "1 second", fixed: "1 second" } }),
        // @ts-expect-error: factor is the exponential backoff's
        JobQueue.enqueue(Square, 1, { retry: { fixed: "1 second", factor: 3 } }),
        // @ts-expect-error: max is the exponential backoff's
        JobQueue.enqueue(Square, 1, { retry: { fixed: "1 second", max: "1 minute" } }),
        JobQueue.enqueue(Square, 1, { retry: { exponential: "1 second", factor: 3, max: "1 minute" } }),
        JobQueue.enqueue(Square, 1, { retry: { exponential: "1 second", factor: undefined, max: undefined } }),
        JobQueue.enqueue(Square, 1, { retry: { fixed: "1 second" } }),
        JobQueue.enqueue(Square, 1, { retry: "named" })
      ]
      // what the run time says of the mixed one, which the type now refuses
      const mixed = { exponential: "1 second", fixed: "1 second" } as unknown as JobQueue.JobRetry
      const exit = yield* Effect.exit(JobQueue.enqueue(Square, 1, { retry: mixed }).pipe(Effect.provide(JobStore.memory())))
      assert.isTrue(Exit.isFailure(exit))
      assert.match(String(Exit.isFailure(exit) ? exit.cause : ""), /InvalidJobOptions[\s\S]*retry\.fixed/)
    }))
})

describe("WorkPool.runAll", () => {
  it.effect("jobs of different success types compile, and their results come back typed as the union", () =>
    Effect.scoped(Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2 })
      const results = yield* pool.runAll([Effect.succeed(1), Effect.succeed("a")])
      sameType<typeof results, Array<number | string>>(true)
      assert.deepStrictEqual(results, [1, "a"])
      // and their errors and services, as a union too
      const _compileOnly = () => {
        const mixed = pool.runAll([Effect.succeed(1), Effect.fail("bad" as const), Effect.as(Db.use((db) => db.query), true)])
        sameType<typeof mixed, Effect.Effect<Array<number | boolean>, "bad" | JobError, Db>>(true)
      }
    })))

  it.effect("with a worker resource, functions of it and Effects mix, the resource typed", () =>
    Effect.scoped(Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, resource: (workerId) => Effect.succeed({ workerId }) })
      const results = yield* pool.runAll([(conn) => Effect.succeed(conn.workerId), Effect.succeed("a")])
      sameType<typeof results, Array<number | string>>(true)
      assert.deepStrictEqual(results, [0, "a"])
    })))

  it.effect("a generic helper over one job type still infers it", () =>
    Effect.scoped(Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const all = <A, E>(jobs: ReadonlyArray<Effect.Effect<A, E>>): Effect.Effect<Array<A>, E | JobError> => pool.runAll(jobs)
      assert.deepStrictEqual(yield* all([Effect.succeed(1), Effect.succeed(2)]), [1, 2])
    })))
})

describe("WorkPool.UnstartedJob", () => {
  const DbLive = Layer.succeed(Db, { query: Effect.succeed("row") })
  const needsDb = Effect.flatMap(Db.use((db) => db.query), (row) => Effect.map(WorkPool.JobContext, (job) => `${row} on ${job.pool}`))

  it.effect("a job handed over to another pool keeps its submitter's services: it needs none there, and runs", () =>
    Effect.scoped(Effect.gen(function*() {
      const from = yield* WorkPool.make({ concurrency: 1, paused: true, name: "types-hostile-from" })
      const to = yield* WorkPool.make({ concurrency: 1, name: "types-hostile-to" })
      yield* Effect.provide(from.submit(needsDb), DbLive)
      yield* Effect.provide(from.submit((_, jobId) => Effect.map(Db.use((db) => db.query), (row) => `${row} ${jobId}`)), DbLive)
      const unstarted = yield* from.shutdownNow
      // R was `any`: a program that handed a job over could not be run (Effect.runPromise wants never),
      // however much it provided, and a job whose services were missing compiled
      const handover = Effect.forEach(unstarted, (job) => to.run(job.job))
      sameType<Effect.Services<typeof handover>, never>(true)
      // where no Db is provided: the services are the submitter's; the JobContext is the new pool's
      assert.deepStrictEqual(yield* handover, ["row on types-hostile-to", "row 2"])
    })))
})

describe("JobQueue.consume", () => {
  class Cache extends Context.Service<Cache, { readonly hits: number }>()("test/types-hostile/Cache") {}
  const Lookup = Task.make("TypesLookup", { payload: Schema.Number, success: Schema.String })
  const Count = Task.make("TypesCount", { payload: Schema.Number, success: Schema.Number })
  const lookup = Task.handle(Lookup, (n) => Effect.map(Db.use((db) => db.query), (row) => `${row} ${n}`))
  const count = Task.handle(Count, (n) => Cache.use((cache) => Effect.succeed(cache.hits + n)))

  it.effect("handlers that need different services compile, and the consumer needs all of them", () =>
    Effect.gen(function*() {
      // "No overload matches this call": one R inferred from the first handler refused the second
      const consumer = JobQueue.consume({ handlers: [lookup, count], concurrency: 2 })
      sameType<Effect.Services<typeof consumer>, Db | Cache | JobStore.JobStore | Scope.Scope>(true)
      const withAging = JobQueue.consume({ handlers: [lookup, count], concurrency: 2, aging: "1 minute" })
      sameType<Effect.Services<typeof withAging>, Db | Cache | JobStore.JobStore | Scope.Scope>(true)
      const results = yield* Effect.gen(function*() {
        yield* consumer
        const a = yield* JobQueue.enqueue(Lookup, 1)
        const b = yield* JobQueue.enqueue(Count, 2)
        yield* TestClock.adjust("1 second")
        return [yield* a.await, yield* b.await]
      }).pipe(
        Effect.scoped,
        Effect.provide(Layer.mergeAll(JobStore.memory(), Layer.succeed(Db, { query: Effect.succeed("row") }), Layer.succeed(Cache, { hits: 40 })))
      )
      assert.deepStrictEqual(results, ["row 1", 42])
      const _compileOnly = () => {
        // still refused: a handler of the wrong type, a typo
        // @ts-expect-error: not a handler
        JobQueue.consume({ handlers: [lookup, Lookup], concurrency: 1 })
        // @ts-expect-error: concurency
        JobQueue.consume({ handlers: [lookup], concurency: 1 })
        // and an options value typed with its services, as before
        const options: JobQueue.ConsumeOptions<Db> = { handlers: [lookup], concurrency: 1 }
        const typed = JobQueue.consume(options)
        sameType<Effect.Services<typeof typed>, Db | JobStore.JobStore | Scope.Scope>(true)
      }
    }))
})

describe("JobQueue.await of an outcome the store holds in a form no version wrote", () => {
  // a row edited by hand, restored from a damaged backup, or written by a tool of its own: its
  // awaiter is typed to get the task's success, its failure or an AwaitError, never a defect
  const request = { queues: ["default"], tasks: [Square.name], limit: 1, lease: 60_000 }
  for (const exit of ["null", "{}", `{"_tag":"Nope"}`, `"text"`, "[]", "7", `{"_tag":"Die"}`, `{"_tag":"Die","defect":null}`]) {
    it.effect(`an exit stored as ${exit} fails the awaiter with TaskCodecError, not a defect`, () =>
      Effect.gen(function*() {
        const job = yield* JobQueue.enqueue(Square, 3)
        const store = yield* JobStore.JobStore
        const [claim] = (yield* store.claim(request)).claims
        assert.isTrue(yield* store.settle(claim!.token, { _tag: "Final", state: "succeeded", exit }))
        const outcome = yield* Effect.exit(job.await)
        assert.isTrue(Exit.isFailure(outcome) && Exit.findErrorOption(outcome)._tag === "Some", String(outcome))
        const error = Exit.isFailure(outcome) ? Exit.findErrorOption(outcome) : undefined
        assert.strictEqual(error?._tag === "Some" ? (error.value as { _tag: string })._tag : undefined, "TaskCodecError")
      }).pipe(Effect.provide(JobStore.memory())))
  }
})

describe("JobQueue.status of a progress the store holds in a form no version wrote", () => {
  const request = { queues: ["default"], tasks: [Square.name], limit: 1, lease: 60_000 }
  it.effect("status and list read it as no progress, and progressChanges skips it, not a defect", () =>
    Effect.gen(function*() {
      const job = yield* JobQueue.enqueue(Square, 3)
      const store = yield* JobStore.JobStore
      const [claim] = (yield* store.claim(request)).claims
      assert.isTrue(yield* store.progress(claim!.token, "{not json"))
      assert.strictEqual((yield* JobQueue.status(job.id)).progress, undefined)
      assert.deepStrictEqual((yield* JobQueue.list()).map((info) => info.progress), [undefined])
      assert.isTrue(yield* store.progress(claim!.token, "{not json either"))
      assert.isTrue(yield* store.settle(claim!.token, { _tag: "Final", state: "succeeded", exit: `{"_tag":"Success","value":9}` }))
      assert.deepStrictEqual(Array.from(yield* Stream.runCollect(job.progressChanges)), [])
      assert.strictEqual(yield* job.await, 9)
    }).pipe(Effect.provide(JobStore.memory())))
})

describe("what held (a guard: each of these compiled, or was refused, as it should)", () => {
  it("error and service channels, typos and explicit undefined, at compile time", () => {
    const _compileOnly = () =>
      Effect.gen(function*() {
        const pool = yield* WorkPool.make({ concurrency: 1, name: undefined, capacity: undefined, retry: undefined })
        sameType<typeof pool.run<number, "e", Db>, (job: WorkPool.Job<number, "e", Db>, options?: WorkPool.JobOptions) => Effect.Effect<number, "e" | JobError, Db>>(true)
        const handle = yield* pool.submit(Effect.fail("e" as const))
        sameType<typeof handle.await, Effect.Effect<never, "e" | AdmittedJobError>>(true)
        // @ts-expect-error: concurency
        yield* WorkPool.make({ concurency: 1 })
        // @ts-expect-error: priorty
        yield* pool.run(Effect.void, { priorty: 1 })
        // @ts-expect-error: a payload of the wrong type
        yield* JobQueue.enqueue(Square, "3")
        // @ts-expect-error: dedupeKey
        yield* JobQueue.enqueue(Square, 3, { dedupeKey: "x" })
        const awaited = JobQueue.await(Square, "id")
        sameType<typeof awaited, Effect.Effect<number, JobQueue.AwaitError, JobStore.JobStore>>(true)
        // @ts-expect-error: the handler must return the task's success type
        Task.handle(Square, (n) => Effect.succeed(String(n)))
        // @ts-expect-error: nor fail with an error the task does not declare
        Task.handle(Square, () => Effect.fail("nope"))
      })
    assert.isFunction(_compileOnly)
  })
})
