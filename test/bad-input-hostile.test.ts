/**
 * Hostile tests of bad input across the public API, as an untyped caller passes it: each bad value
 * fails with a typed error naming the option and the value, at the call that takes it, the same on
 * every store, and nothing is stored.
 */
import { assert, describe, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Clock, Context, Effect, Layer, Schedule, Schema, Stream } from "effect"
import { TestClock } from "effect/testing"
import { afterAll } from "vitest"
import * as Dashboard from "../src/Dashboard.ts"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import * as PgJobStore from "../src/PgJobStore.ts"
import * as RedisJobStore from "../src/RedisJobStore.ts"
import * as Task from "../src/Task.ts"
import * as WorkPool from "../src/WorkPool.ts"
import * as ThreadPool from "../src/ThreadPool.ts"
import * as PostgresStore from "../src/internal/store/postgres.ts"
import * as RedisStore from "../src/internal/store/redis.ts"
import * as SqliteStore from "../src/internal/store/sqlite.ts"
import * as Pg from "./durable/postgres.ts"
import { storeLayers } from "./durable/stores.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wp-bad-input-hostile-"))
let files = 0
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const stores = storeLayers(() => path.join(dir, `f${files++}.db`))

const Echo = Task.make("Echo", { payload: Schema.Number, success: Schema.Number })

/** The field an effect was refused for with InvalidJobOptions. */
const refusedField = (effect: Effect.Effect<unknown, unknown, any>) =>
  Effect.map(Effect.flip(effect), (error) => {
    assert.strictEqual((error as { _tag: string })._tag, "InvalidJobOptions", JSON.stringify(error))
    return (error as { field: string }).field
  })

/** A high surrogate alone, and a low one alone: not Unicode text; UTF-8 has no bytes for either. */
const LONE = ["\ud800", "\udbff", "\udc00"]

describe("names a store keeps", () => {
  for (const [store, layer] of stores) {
    it.effect(`${store}: a queue, a dedup key or a repeat's name with a lone surrogate is refused, naming it; nothing is stored (the UTF-8 stores kept each as U+FFFD: dedup keys k\\ud800 and k\\udbff were one key, and the second job was dropped as its duplicate)`, () =>
      Effect.gen(function*() {
        for (const lone of LONE) {
          assert.strictEqual(yield* refusedField(JobQueue.enqueue(Echo, 1, { dedupKey: `k${lone}` })), "dedupKey")
          assert.strictEqual(yield* refusedField(JobQueue.enqueue(Echo, 1, { queue: `q${lone}` })), "queue")
          assert.strictEqual(yield* refusedField(JobQueue.stats(`q${lone}`)), "queue")
          assert.strictEqual(yield* refusedField(JobQueue.pause(`q${lone}`)), "queue")
          assert.strictEqual(yield* refusedField(Effect.scoped(JobQueue.repeat(`r${lone}`, Echo, 1, { cron: "* * * * *" }))), "name")
        }
        // a surrogate pair is one character, and is kept
        const pair = yield* JobQueue.enqueue(Echo, 1, { queue: "q\ud83d\ude42", dedupKey: "k\ud83d\ude42" })
        assert.strictEqual((yield* pair.status).queue, "q\ud83d\ude42")
        assert.strictEqual((yield* pair.status).dedupKey, "k\ud83d\ude42")
        assert.strictEqual((yield* JobQueue.list()).length, 1)
      }).pipe(Effect.provide(layer())))

    it.effect(`${store}: a task whose name is empty, holds a NUL or a lone surrogate is refused by enqueue and repeat (field task); nothing is stored (Postgres failed with StoreError 'invalid byte sequence'; the others stored a job whose awaiter got TaskMismatch, its task "odd\\ufffd" not "odd\\ud800")`, () =>
      Effect.gen(function*() {
        for (const name of ["", "a\u0000b", ...LONE.map((lone) => `odd${lone}`)]) {
          const Bad = Task.make(name, { payload: Schema.Number, success: Schema.Number })
          assert.strictEqual(yield* refusedField(JobQueue.enqueue(Bad, 1)), "task", JSON.stringify(name))
          assert.strictEqual(yield* refusedField(Effect.scoped(JobQueue.repeat("r", Bad, 1, { cron: "* * * * *" }))), "task")
        }
        assert.deepStrictEqual(yield* JobQueue.list(), [])
      }).pipe(Effect.provide(layer())))

    it.effect(`${store}: an id with a NUL or a lone surrogate is no job's: JobNotFound from status, cancel, redrive, await and progressChanges (Postgres failed with StoreError 'invalid byte sequence for encoding "UTF8": 0x00', a store failure for a caller's bad id)`, () =>
      Effect.gen(function*() {
        const job = yield* JobQueue.enqueue(Echo, 1)
        for (const id of ["a\u0000b", `${job.id}\u0000`, `${job.id}\ud800`, ...LONE]) {
          const tags = [
            (yield* Effect.flip(JobQueue.status(id)))._tag,
            (yield* Effect.flip(JobQueue.cancel(id)))._tag,
            (yield* Effect.flip(JobQueue.redrive(id)))._tag,
            (yield* Effect.flip(JobQueue.handleOf(Echo, id).await))._tag,
            (yield* Effect.flip(Stream.runDrain(JobQueue.progressChanges(id))))._tag
          ]
          assert.deepStrictEqual(tags, Array(5).fill("JobNotFound"), JSON.stringify(id))
        }
        assert.strictEqual((yield* job.status).state, "queued")
      }).pipe(Effect.provide(layer())))
  }

  it.effect("consume refuses a handler whose task's name no enqueue takes (empty, a NUL, a lone surrogate), naming it", () =>
    Effect.gen(function*() {
      for (const name of ["", "a\u0000b", "odd\ud800"]) {
        const Bad = Task.make(name, { payload: Schema.Number, success: Schema.Number })
        const error = yield* Effect.flip(Effect.scoped(JobQueue.consume({ handlers: [Task.handle(Bad, Effect.succeed)], concurrency: 1 })))
        assert.strictEqual(error._tag, "InvalidPoolConfig", JSON.stringify(error))
        assert.strictEqual((error as { field: string }).field, "handlers[0].task")
      }
    }).pipe(Effect.provide(JobStore.memory())))
})

describe("Dashboard: queue names and job ids", () => {
  const TOKEN = "0123456789abcdef-test-token"
  const start = Effect.map(Layer.build(Dashboard.layer({ token: TOKEN })), (context) => Context.get(context, Dashboard.Dashboard))
  const post = (dashboard: Dashboard.Dashboard["Service"], path: string) =>
    Effect.promise(async () => {
      const response = await fetch(dashboard.address + path, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "x-workpool-dashboard": "1" }
      })
      return { status: response.status, body: await response.text() }
    })

  it.effect("addQueue refuses a name no store keeps as it is (a NUL, a lone surrogate, over 1,000 bytes), as JobQueue does: it was added, and sampled every second (Postgres failed each sample; a lone surrogate showed the queue whose name has U+FFFD there)", () =>
    Effect.gen(function*() {
      const dashboard = yield* start
      for (const name of ["a\u0000b", "q\ud800", "x".repeat(1001)]) {
        const error = yield* Effect.flip(dashboard.addQueue(name))
        assert.strictEqual(error._tag, "InvalidDashboardOptions", JSON.stringify(error))
        assert.strictEqual(error.field, "queue")
      }
    }).pipe(Effect.provide(JobStore.memory())))

  it.effect("add refuses a pool whose name has a lone surrogate, naming pool.name: the page addresses a pool's buttons by encodeURIComponent(name), which throws URIError on one (its pause, resume and cancel did nothing), and no request can name it", () =>
    Effect.gen(function*() {
      const dashboard = yield* start
      const pool = yield* WorkPool.make({ concurrency: 1, name: "work\ud800" })
      assert.throws(() => encodeURIComponent(pool.name), URIError)
      const error = yield* Effect.flip(dashboard.add(pool))
      assert.strictEqual(error._tag, "InvalidDashboardOptions", JSON.stringify(error))
      assert.strictEqual(error.field, "pool.name")
      // a pair is one character, and is shown
      yield* dashboard.add(yield* WorkPool.make({ concurrency: 1, name: "work \ud83d\ude42" }))
    }).pipe(Effect.scoped))

  it.effect("a key the options do not have fails the layer with InvalidDashboardOptions naming it (allowedHost, intervall were ignored)", () =>
    Effect.gen(function*() {
      for (const [key, hint] of [["allowedHost", "allowedHosts"], ["intervall", undefined]] as const) {
        const exit = yield* Effect.exit(Effect.scoped(Layer.build(Dashboard.layer({ [key]: ["example.com"] } as never))))
        const error = exit._tag === "Failure" && exit.cause.reasons[0]?._tag === "Fail" ? (exit.cause.reasons[0] as any).error : undefined
        assert.strictEqual(error?._tag, "InvalidDashboardOptions", String(exit))
        assert.strictEqual(error.field, key)
        if (hint !== undefined) assert.include(error.reason, hint)
      }
    }))

  it.effect("a host with a NUL, a space or a control character fails the layer with InvalidDashboardOptions naming host (a NUL was a defect, dns.lookup's TypeError; a space a ServeError with no message)", () =>
    Effect.gen(function*() {
      for (const host of ["127.0.0.1\u0000", " ", "local host", "127.0.0.1\n"]) {
        const exit = yield* Effect.exit(Effect.scoped(Layer.build(Dashboard.layer({ host }))))
        assert.isTrue(exit._tag === "Failure" && exit.cause.reasons.length === 1 && exit.cause.reasons[0]!._tag === "Fail", `${JSON.stringify(host)}: ${String(exit)}`)
        const error = (exit as any).cause.reasons[0].error
        assert.strictEqual(error._tag, "InvalidDashboardOptions")
        assert.strictEqual(error.field, "host")
      }
    }))

  for (const [store, layer] of stores) {
    it.live(`${store}: a job id with a NUL (%00 in the path) is no job of the queue: 404, not a store failure (Postgres: 500 'invalid byte sequence')`, () =>
      Effect.gen(function*() {
        const dashboard = yield* start
        yield* dashboard.addQueue("mail")
        for (const action of ["cancel", "redrive"]) {
          const reply = yield* post(dashboard, `api/queues/mail/jobs/a%00b/${action}`)
          assert.strictEqual(reply.status, 404, `${action}: ${reply.body}`)
        }
      }).pipe(Effect.scoped, Effect.provide(layer())))
  }
})

describe("ThreadPool: a worker given as a URL string", () => {
  it.effect("fails make with InvalidPoolConfig naming worker and saying to pass a URL object (the reason said 'expected ... or a URL' of a string that is one)", () =>
    Effect.gen(function*() {
      for (const worker of [new URL("./fixtures/worker.ts", import.meta.url).href, "data:text/javascript,void 0"]) {
        const error = yield* Effect.flip(ThreadPool.make({ worker, threads: 1 }))
        assert.strictEqual(error._tag, "InvalidPoolConfig")
        assert.strictEqual((error as { field: string }).field, "worker")
        assert.include((error as { reason: string }).reason, "new URL(")
      }
    }).pipe(Effect.scoped))
})

describe("ThreadPool: a task its worker does not serve", () => {
  const Unserved = Task.make("Unserved", { payload: Schema.Number, success: Schema.Number })

  it.live("fails with TaskCodecError part handler whose message says the worker has no handler for it (it said 'its handler does not match its schema', which no Schema was asked)", () =>
    Effect.gen(function*() {
      const pool = yield* ThreadPool.make({ worker: new URL("./fixtures/worker.ts", import.meta.url), threads: 1 })
      const error = yield* Effect.flip(pool.run(Unserved, 1))
      assert.strictEqual(error._tag, "TaskCodecError")
      assert.strictEqual((error as { part: string }).part, "handler")
      assert.strictEqual(error.message, "task Unserved: no handler for task Unserved on this thread (its worker does not serve it)")
    }).pipe(Effect.scoped))
})

describe("RedisJobStore: a URL the client cannot read", () => {
  it.effect("a database that is not a number, a malformed %-escape in the user or password: StoreError naming url, without its text (they were defects: TypeError 'Invalid pathname', URIError 'URI malformed', thrown by the client)", () =>
    Effect.gen(function*() {
      for (const url of ["redis://127.0.0.1:6390/abc", "redis://127.0.0.1:6390/1/2", "redis://:%zz@127.0.0.1:6390", "redis://%zz:secret@127.0.0.1:6390"]) {
        const exit = yield* Effect.exit(Effect.scoped(Layer.build(RedisJobStore.layer({ url, prefix: "bad-input" }))))
        assert.isTrue(exit._tag === "Failure" && exit.cause.reasons.length === 1 && exit.cause.reasons[0]!._tag === "Fail", `${url}: ${String(exit)}`)
        const error = (exit as any).cause.reasons[0].error
        assert.strictEqual(error._tag, "StoreError")
        assert.include(error.reason, "invalid store option url")
        assert.notInclude(error.reason, "secret")
      }
    }))
})

describe("RedisJobStore: a URL whose query or fragment the client ignores", () => {
  it.effect("redis://host:port?db=3 (ioredis' and other clients' form), a #fragment: StoreError naming url, not a store silently in database 0", () =>
    Effect.gen(function*() {
      for (const url of ["redis://127.0.0.1:6390?db=3", "redis://:secret@127.0.0.1:6390/?db=3", "redis://127.0.0.1:6390/2#x"]) {
        const exit = yield* Effect.exit(Effect.scoped(Layer.build(RedisJobStore.layer({ url, prefix: "bad-input" }))))
        assert.isTrue(exit._tag === "Failure" && exit.cause.reasons.length === 1 && exit.cause.reasons[0]!._tag === "Fail", `${url}: ${String(exit)}`)
        const error = (exit as any).cause.reasons[0].error
        assert.strictEqual(error._tag, "StoreError")
        assert.include(error.reason, "invalid store option url")
        assert.notInclude(error.reason, "secret")
      }
    }))
})

describe("a filter or a retention with a key it does not have (a typo, or the other API's name)", () => {
  it.effect("WorkPool.jobs({ state }) (JobQueue.list's name; jobs takes status) fails with InvalidJobOptions naming state, instead of listing every job unfiltered", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, retention: { count: 10 } })
      yield* pool.run(Effect.void)
      const error = yield* Effect.flip(pool.jobs({ state: "failed" } as never))
      assert.strictEqual(error._tag, "InvalidJobOptions")
      assert.strictEqual(error.field, "state")
      assert.include(error.reason, "status")
    }).pipe(Effect.scoped))

  it.effect("JobQueue.list({ status }) (WorkPool.jobs' name; list takes state) fails with InvalidJobOptions naming status, instead of listing every job unfiltered", () =>
    Effect.gen(function*() {
      yield* JobQueue.enqueue(Echo, 1)
      const error = yield* Effect.flip(JobQueue.list({ status: "dead" } as never))
      assert.strictEqual(error._tag, "InvalidJobOptions")
      assert.strictEqual((error as { field: string }).field, "status")
      assert.include((error as { reason: string }).reason, "state")
      assert.strictEqual(yield* refusedField(JobQueue.purge({ olderThan: 0, state: ["dead"] } as never)), "state")
    }).pipe(Effect.provide(JobStore.memory())))

  it.effect("WorkPool.make({ retention: { max } }) fails with InvalidPoolConfig naming retention.max, instead of keeping no ended job", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(WorkPool.make({ concurrency: 1, retention: { max: 100 } as never }))
      assert.strictEqual(error._tag, "InvalidPoolConfig")
      assert.strictEqual(error.field, "retention.max")
    }).pipe(Effect.scoped))
})

describe("enqueue and repeat options with a key they do not have", () => {
  it.effect("are refused naming it (dedupeKey, BullMQ's jobId and attempts were ignored: two enqueues with one intended key made two jobs), and nothing is stored", () =>
    Effect.gen(function*() {
      for (const [options, field, hint] of [
        [{ dedupeKey: "k" }, "dedupeKey", "dedupKey"],
        [{ jobId: "k" }, "jobId", "dedupKey"],
        [{ attempts: 5 }, "attempts", "maxAttempts"],
        [{ startAfter: new Date() }, "startAfter", "runAt"]
      ] as const) {
        const error = yield* Effect.flip(JobQueue.enqueue(Echo, 1, options as never))
        assert.strictEqual(error._tag, "InvalidJobOptions")
        assert.strictEqual((error as { field: string }).field, field)
        assert.include((error as { reason: string }).reason, hint)
      }
      assert.strictEqual(yield* refusedField(Effect.scoped(JobQueue.repeat("r", Echo, 1, { cron: "* * * * *", dedupKey: "k" } as never))), "dedupKey")
      assert.strictEqual(yield* refusedField(Effect.scoped(JobQueue.repeat("r", Echo, 1, { cron: "* * * * *", delay: 5 } as never))), "delay")
      assert.deepStrictEqual(yield* JobQueue.list(), [])
    }).pipe(Effect.provide(JobStore.memory())))
})

describe("consume options with a key they do not have", () => {
  it.effect("are refused with InvalidPoolConfig naming it (leaseDuration, pollInterval were ignored: the defaults ran instead), before anything is claimed", () =>
    Effect.gen(function*() {
      const job = yield* JobQueue.enqueue(Echo, 1)
      for (const [key, hint] of [["leaseDuration", "lease"], ["pollInterval", "poll"], ["queue", "queues"]] as const) {
        const error = yield* Effect.flip(Effect.scoped(JobQueue.consume({ handlers: [Task.handle(Echo, Effect.succeed)], concurrency: 1, [key]: 1 } as never)))
        assert.strictEqual(error._tag, "InvalidPoolConfig")
        assert.strictEqual((error as { field: string }).field, key)
        assert.include((error as { reason: string }).reason, hint)
      }
      assert.strictEqual((yield* job.status).state, "queued")
    }).pipe(Effect.provide(JobStore.memory())))
})

describe("pool options with a key they do not have", () => {
  it.effect("WorkPool.make refuses one with InvalidPoolConfig naming it (timout was ignored: no timeout), with the key meant for other pools' names", () =>
    Effect.gen(function*() {
      for (const [options, field, hint] of [
        [{ concurrency: 1, timout: "1 second" }, "timout", undefined],
        [{ concurrency: 1, maxQueue: 10 }, "maxQueue", "capacity"]
      ] as const) {
        const error = yield* Effect.flip(WorkPool.make(options as never))
        assert.strictEqual(error._tag, "InvalidPoolConfig")
        assert.strictEqual(error.field, field)
        if (hint !== undefined) assert.include(error.reason, hint)
      }
    }).pipe(Effect.scoped))

  it.effect("ThreadPool.make refuses one before any thread starts, with piscina's, workerpool's and poolifier's names mapped (maxThreads, maxWorkers, numberOfThreads, concurrency and a missing s: threads; filename: worker)", () =>
    Effect.gen(function*() {
      const worker = new URL("./fixtures/worker.ts", import.meta.url)
      for (const [options, field, hint] of [
        [{ worker, threads: 1, maxThreads: 4 }, "maxThreads", "threads"],
        [{ worker, filename: "x" }, "filename", "worker"],
        [{ worker, concurrency: 4 }, "concurrency", "threads"],
        [{ worker, thread: 2 }, "thread", "threads"],
        [{ worker, maxWorkers: 2 }, "maxWorkers", "threads"],
        [{ worker, numberOfThreads: 2 }, "numberOfThreads", "threads"],
        [{ worker, threads: 1, idleTimout: "1 second" }, "idleTimout", undefined]
      ] as const) {
        const error = yield* Effect.flip(ThreadPool.make(options as never))
        assert.strictEqual(error._tag, "InvalidPoolConfig")
        assert.strictEqual((error as { field: string }).field, field)
        // "threads" is among the keys the reason lists: the hint is the "(use ...)" part
        if (hint !== undefined) assert.include((error as { reason: string }).reason, `(use ${hint})`)
      }
    }).pipe(Effect.scoped))
})

describe("store options with a key they do not have", () => {
  it.effect("fail the layer with StoreError naming it, before any connection (ioredis' keyPrefix was ignored: the queues shared the default prefix with every other app's)", () =>
    Effect.gen(function*() {
      const layers: ReadonlyArray<[Layer.Layer<JobStore.JobStore, unknown>, string, string]> = [
        [RedisJobStore.layer({ url: "redis://127.0.0.1:1", keyPrefix: "myapp" } as never), "keyPrefix", "prefix"],
        [PgJobStore.layer({ url: "postgres://u@127.0.0.1:1/db", max: 20 } as never), "max", "maxConnections"],
        [PgJobStore.layerClient({ schemaName: "x" } as never) as never, "schemaName", "schema"],
        [JobStore.sqlite({ filename: path.join(dir, "k.db"), timeout: 100 } as never), "timeout", "busyTimeout"]
      ]
      for (const [layer, key, hint] of layers) {
        const exit = yield* Effect.exit(Effect.scoped(Layer.build(layer)))
        const error = exit._tag === "Failure" && exit.cause.reasons[0]?._tag === "Fail" ? (exit.cause.reasons[0] as any).error : undefined
        assert.strictEqual(error?._tag, "StoreError", String(exit))
        assert.include(error.reason, `option ${key}`)
        assert.include(error.reason, hint)
      }
      assert.isFalse(fs.existsSync(path.join(dir, "k.db")))
    }))
})

describe("retry policy names a store keeps", () => {
  const BAD_POLICY_NAMES = ["p\u0000", ...LONE.map((lone) => `p${lone}`)]

  for (const [store, layer] of stores) {
    it.effect(`${store}: an enqueue's or a repeat's retry naming a policy with a NUL or a lone surrogate is refused (field retry), as a queue's or a dedup key's name is; nothing is stored (Postgres stored it, and its reaper casts each expired job's retry to jsonb, which refuses \\u0000 and a lone surrogate's escape: every reap failed with StoreError, so no job whose lease expired, of any queue, was ever taken back)`, () =>
      Effect.gen(function*() {
        const jobs = yield* JobStore.JobStore
        for (const name of BAD_POLICY_NAMES) {
          const exit = yield* Effect.exit(JobQueue.enqueue(Echo, 1, { retry: name, maxAttempts: 3 }))
          if (exit._tag === "Success") {
            // what it did: a bystander, claimed by a consumer that dies with it, is never reaped
            yield* JobQueue.enqueue(Echo, 2)
            yield* jobs.claim({ queues: ["default"], tasks: ["Echo"], limit: 10, lease: 1000 })
            yield* TestClock.adjust(2000)
            const reaped = yield* Effect.exit(jobs.reap([0]))
            assert.fail(`${JSON.stringify(name)} was stored; then the reap of 2 expired jobs: ${String(reaped)}`)
          }
          assert.strictEqual(yield* refusedField(Effect.flip(Effect.flip(exit))), "retry", JSON.stringify(name))
          assert.strictEqual(yield* refusedField(Effect.scoped(JobQueue.repeat("r", Echo, 1, { cron: "* * * * *", retry: name }))), "retry")
        }
        assert.deepStrictEqual(yield* JobQueue.list(), [])
        // a surrogate pair is one character: kept, and read back equal
        const pair = yield* JobQueue.enqueue(Echo, 1, { retry: "p\ud83d\ude42" })
        assert.strictEqual((yield* pair.status).retry, "p\ud83d\ude42")
      }).pipe(Effect.provide(layer())))
  }

  it.effect("consume refuses a retryPolicies name with a NUL or a lone surrogate (no job can name it; the Postgres reaper sends the names as jsonb, which refuses both: every reap of that consumer failed with StoreError, on any store's jobs), naming retryPolicies", () =>
    Effect.gen(function*() {
      for (const name of BAD_POLICY_NAMES) {
        const error = yield* Effect.flip(Effect.scoped(JobQueue.consume({
          handlers: [Task.handle(Echo, Effect.succeed)],
          concurrency: 1,
          retryPolicies: { [name]: Schedule.spaced("1 second") }
        })))
        assert.strictEqual((error as { _tag?: string })._tag, "InvalidPoolConfig", JSON.stringify(name))
        assert.strictEqual((error as { field: string }).field, "retryPolicies", JSON.stringify(name))
      }
    }).pipe(Effect.provide(JobStore.memory())))

  if (Pg.enabled) {
    it.effect("Postgres: the reaper given such a policy name fails every reap with StoreError (why consume refuses them); a surrogate pair is fine", () =>
      Effect.gen(function*() {
        const jobs = yield* JobStore.JobStore
        for (const name of BAD_POLICY_NAMES) {
          const error = yield* Effect.flip(jobs.reap([0], { [name]: [0] }))
          assert.strictEqual(error._tag, "StoreError", JSON.stringify(name))
        }
        assert.strictEqual(yield* jobs.reap([0], { "p\ud83d\ude42": [0] }), 0)
      }).pipe(Effect.provide(Pg.testLayer())))
  }
})

describe("names a user can have, on every store", () => {
  // each kept as it is and read back equal: astral characters (surrogate pairs), a ZWJ sequence,
  // combining marks, right-to-left text, noncharacters, the line separators, a Redis hash tag's braces,
  // and names at the 1,000-byte bound in 4-byte and in 3-byte characters
  const NAMES = [
    "mail-\ud83d\udce7", "\ud83d\udc68\u200d\ud83d\udc69\u200d\ud83d\udc67", "e\u0301\u0302\u0303", "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627",
    "\ufffe\uffff\ufdd0", "a\u2028b\u2029c", "{x}:y}", "\ud83d\ude00".repeat(250), "\u4e2d".repeat(333)
  ]

  for (const [store, layer] of stores) {
    it.effect(`${store}: a queue, a dedup key, a repeat's name and a retry policy's name of astral, combining, right-to-left or 1,000-byte text are taken and read back equal; the dedup key still dedups`, () =>
      Effect.gen(function*() {
        for (const name of NAMES) {
          const first = yield* JobQueue.enqueue(Echo, 1, { queue: name, dedupKey: name, retry: name })
          const again = yield* JobQueue.enqueue(Echo, 2, { queue: name, dedupKey: name })
          assert.isTrue(first.created, JSON.stringify(name))
          assert.isFalse(again.created, JSON.stringify(name))
          assert.strictEqual(again.id, first.id)
          const info = yield* first.status
          assert.strictEqual(info.queue, name)
          assert.strictEqual(info.dedupKey, name)
          assert.strictEqual(info.retry, name)
          assert.deepStrictEqual((yield* JobQueue.list({ queue: name })).map((job) => job.id), [first.id])
          assert.strictEqual((yield* JobQueue.stats(name)).waiting, 1)
        }
        // a repeat's ticks: their ids hold the name, in the same queue
        const long = NAMES[7]!
        yield* Effect.scoped(Effect.gen(function*() {
          yield* JobQueue.repeat(long, Echo, 3, { cron: "* * * * *", queue: long, retry: long })
          yield* TestClock.adjust("61 seconds")
          const ticks = (yield* JobQueue.list({ queue: long })).filter((job) => job.id.startsWith(`repeat:${long}:`))
          assert.strictEqual(ticks.length, 1)
          assert.strictEqual(ticks[0]!.retry, long)
          assert.strictEqual((yield* JobQueue.status(ticks[0]!.id)).queue, long)
        }))
        // a name one byte over the bound is refused
        assert.strictEqual(yield* refusedField(JobQueue.enqueue(Echo, 1, { queue: "\ud83d\ude00".repeat(250) + "a" })), "queue")
        assert.strictEqual((yield* JobQueue.list()).length, NAMES.length + 1)
      }).pipe(Effect.provide(layer())))
  }
})

describe("a retry policy of a name a user can have, in every store's reaper", () => {
  // the reaper matches a job's stored policy name against the consumer's: in JS, SQLite's json_each,
  // Postgres' jsonb, Redis' cjson (Lua)
  const NAMES = ["p\ud83d\ude42", "\u05e9\u05dc\u05d5\u05dd e\u0301", "a\u2028\"b\\", "\ud83d\ude00".repeat(250), "__proto__", "constructor"]
  for (const [store, layer] of stores) {
    it.effect(`${store}: a job whose retry names a policy in astral, combining or right-to-left text, quotes or backslashes, reaped, waits that policy's delay, not the consumer's; so does one named __proto__ or constructor`, () =>
      Effect.gen(function*() {
        const jobs = yield* JobStore.JobStore
        const policies: Record<string, ReadonlyArray<number>> = Object.create(null)
        NAMES.forEach((name, i) => policies[name] = [60_000 * (i + 1)])
        const ids: Array<string> = []
        for (const name of NAMES) ids.push((yield* JobQueue.enqueue(Echo, 1, { retry: name })).id)
        const claimed = yield* jobs.claim({ queues: ["default"], tasks: ["Echo"], limit: 10, lease: 1000 })
        assert.strictEqual(claimed.claims.length, NAMES.length)
        yield* TestClock.adjust(2000)
        assert.strictEqual(yield* jobs.reap([1], policies), NAMES.length)
        for (const [i, id] of ids.entries()) {
          const info = yield* JobQueue.status(id)
          assert.strictEqual(info.state, "delayed", NAMES[i])
          assert.strictEqual(info.visibleAt.getTime() - (yield* Clock.currentTimeMillis), 60_000 * (i + 1), JSON.stringify(NAMES[i]))
        }
      }).pipe(Effect.provide(layer())))
  }
})

describe("a task of a name a user can have, end to end", () => {
  const Odd = Task.make("T\ud83d\ude00e\u0301 \u05e9\u05dc\u05d5\u05dd \u2028{x}", { payload: Schema.Number, success: Schema.Number })
  const queue = "q\ud83d\udc68\u200d\ud83d\udc69 \u0645\u0631\u062d\u0628\u0627"
  for (const [store, layer] of stores) {
    it.live(`${store}: consume takes a handler of a task named in astral, combining, right-to-left text, claims its job from a queue so named and settles it; the awaiter gets its result`, () =>
      Effect.gen(function*() {
        yield* JobQueue.consume({ queues: [queue], handlers: [Task.handle(Odd, (n) => Effect.succeed(n * 2))], concurrency: 1, poll: "20 millis" })
        const job = yield* JobQueue.enqueue(Odd, 21, { queue, dedupKey: queue })
        assert.strictEqual(yield* job.await, 42)
        const info = yield* job.status
        assert.deepStrictEqual([info.task, info.queue, info.state], [Odd.name, queue, "succeeded"])
      }).pipe(Effect.scoped, Effect.provide(layer()), Effect.timeout("20 seconds")))
  }
})

describe("a key the options do not have, holding a secret", () => {
  it.effect("a store's layer and the Dashboard's name the key but not its value: node-postgres' connectionString (the key the hint is for) or a password was shown in the StoreError's reason, password and all, as a layer's error is logged; the url's own errors name its shape only", () =>
    Effect.gen(function*() {
      const SECRET = "hunter2"
      const layers: ReadonlyArray<[Layer.Layer<any, unknown>, string]> = [
        [PgJobStore.layer({ connectionString: `postgres://app:${SECRET}@127.0.0.1:1/app` } as never), "connectionString"],
        [PgJobStore.layer({ url: "postgres://app@127.0.0.1:1/app", password: SECRET } as never), "password"],
        [PgJobStore.layer({ url: "postgres://app@127.0.0.1:1/app", ssl: { key: SECRET } } as never), "ssl"],
        [PgJobStore.layerClient({ password: SECRET } as never) as never, "password"],
        [RedisJobStore.layer({ url: "redis://127.0.0.1:1", password: SECRET } as never), "password"],
        [RedisJobStore.layer({ url: "redis://127.0.0.1:1", redisOptions: { password: SECRET } } as never), "redisOptions"],
        [JobStore.sqlite({ filename: path.join(dir, "s.db"), key: SECRET } as never), "key"],
        [Dashboard.layer({ authToken: SECRET } as never) as never, "authToken"]
      ]
      for (const [layer, key] of layers) {
        const exit = yield* Effect.exit(Effect.scoped(Layer.build(layer)))
        const error = exit._tag === "Failure" && exit.cause.reasons[0]?._tag === "Fail" ? (exit.cause.reasons[0] as any).error : undefined
        assert.include(["StoreError", "InvalidDashboardOptions"], error?._tag, String(exit))
        assert.include(error.message, key)
        assert.notInclude(error.message, SECRET, key)
        assert.notInclude(JSON.stringify(error), SECRET, key)
      }
    }))
})

describe("every key an options type has is taken, each one undefined", () => {
  // `Every<T>`: every key of T, each undefined. Typed so that a key added to an options type fails
  // this file's typecheck until it is listed here, and then this test until its check lists it too
  type Every<T> = { readonly [K in keyof Required<T>]: undefined }
  const Echoing = Task.handle(Echo, Effect.succeed)

  it.effect("WorkPool.make, ThreadPool.make (up to its worker), a retention, WorkPool.jobs; an options object made by a class, with no prototype, frozen, or with symbol and non-enumerable keys", () =>
    Effect.gen(function*() {
      const pool: Every<WorkPool.Options> = {
        concurrency: undefined, name: undefined, metrics: undefined, capacity: undefined, overflow: undefined, timeout: undefined,
        queueTimeout: undefined, aging: undefined, retry: undefined, shutdownTimeout: undefined, paused: undefined,
        rateLimit: undefined, retention: undefined, resource: undefined
      }
      const made = yield* WorkPool.make({ ...pool, concurrency: 1 })
      // a retention's count is required (without one it would keep nothing)
      const retention = { ...({ count: undefined, age: undefined } satisfies Every<WorkPool.Retention>), count: 1 }
      yield* WorkPool.make({ concurrency: 1, retention })
      const filter: Every<WorkPool.JobFilter> = { status: undefined, limit: undefined, after: undefined }
      assert.deepStrictEqual(yield* made.jobs(filter), [])
      class Options {
        concurrency = 1
        get timeout(): WorkPool.Options["timeout"] {
          return "1 second"
        }
        describe() {
          return "a pool"
        }
      }
      yield* WorkPool.make(new Options())
      yield* WorkPool.make(Object.assign(Object.create(null), { concurrency: 1 }))
      yield* WorkPool.make(Object.freeze({ concurrency: 1 }))
      const extra = Object.defineProperty({ concurrency: 1, [Symbol("app")]: true }, "hidden", { value: 1, enumerable: false })
      yield* WorkPool.make(extra)
      const { concurrency: _c, resource: _r, ...shared } = pool
      const threads: Every<ThreadPool.Options> = {
        ...shared, worker: undefined, threads: undefined, tasksPerThread: undefined, cancelGrace: undefined,
        idleTimeout: undefined, startSchedule: undefined, startTimeout: undefined, resourceLimits: undefined, workerData: undefined
      }
      // checked up to the worker: a file that does not exist, named as such, not as a key
      const error = yield* Effect.flip(ThreadPool.make({ ...threads, worker: "./no-such-worker.ts" }))
      assert.strictEqual((error as { field: string }).field, "worker")
    }).pipe(Effect.scoped))

  it.effect("JobQueue.enqueue, repeat, list, purge, consume", () =>
    Effect.gen(function*() {
      const enqueue: Every<JobQueue.EnqueueOptions> = {
        queue: undefined, priority: undefined, delay: undefined, runAt: undefined, dedupKey: undefined, dedupWhile: undefined, dedupFor: undefined, dedupReplace: undefined, timeout: undefined,
        expireIn: undefined, maxAttempts: undefined, retry: undefined, group: undefined, after: undefined, afterFailure: undefined
      }
      yield* JobQueue.enqueue(Echo, 1, enqueue)
      const repeat: Every<JobQueue.RepeatOptions> = {
        cron: undefined, catchUp: undefined, queue: undefined, priority: undefined, timeout: undefined, expireIn: undefined,
        maxAttempts: undefined, retry: undefined
      }
      yield* Effect.scoped(JobQueue.repeat("r", Echo, 1, { ...repeat, cron: "0 0 1 1 *" }))
      const list: Every<NonNullable<Parameters<typeof JobQueue.list>[0]>> = { queue: undefined, state: undefined, limit: undefined, expired: undefined }
      assert.strictEqual((yield* JobQueue.list(list)).length, 1)
      const purge: Every<Parameters<typeof JobQueue.purge>[0]> = { olderThan: undefined, states: undefined }
      assert.strictEqual(yield* JobQueue.purge({ ...purge, olderThan: 0 }), 0)
      const consume: Every<JobQueue.ConsumeOptions<never>> = {
        queues: undefined, handlers: undefined, threadPool: undefined, tasks: undefined, concurrency: undefined, timeout: undefined,
        retry: undefined, retryPolicies: undefined, lease: undefined, poll: undefined, shutdownTimeout: undefined,
        rateLimit: undefined, aging: undefined, name: undefined, dispatch: undefined, onEvent: undefined
      }
      yield* Effect.scoped(JobQueue.consume({ ...consume, handlers: [Echoing], concurrency: 1 }))
    }).pipe(Effect.provide(JobStore.memory())))

  it.effect("the stores' options and the Dashboard's (checked, not opened)", () =>
    Effect.gen(function*() {
      const pg: Every<PgJobStore.PgJobStoreOptions> = { url: undefined, schema: undefined, maxConnections: undefined, connectTimeout: undefined }
      yield* PostgresStore.options({ ...pg, url: "postgres://u@127.0.0.1:1/db" })
      yield* PostgresStore.clientOptions({ schema: undefined } satisfies Every<NonNullable<Parameters<typeof PgJobStore.layerClient>[0]>>)
      const redis: Every<RedisJobStore.RedisJobStoreOptions> = { url: undefined, prefix: undefined, connectTimeout: undefined, cluster: undefined, sentinel: undefined }
      yield* RedisStore.options({ ...redis, url: "redis://127.0.0.1:1" })
      const sentinel: Every<RedisJobStore.RedisSentinelOptions> = { name: undefined, sentinels: undefined, username: undefined, password: undefined, database: undefined }
      yield* RedisStore.options({ ...redis, sentinel: { ...sentinel, name: "m", sentinels: ["redis://127.0.0.1:1"] } })
      const sqlite: Every<JobStore.SqliteOptions> = { filename: undefined, busyTimeout: undefined }
      yield* SqliteStore.options({ ...sqlite, filename: "x.db" })
      const dashboard: Every<Dashboard.Options> = {
        port: undefined, host: undefined, token: undefined, authorize: undefined, interval: undefined, history: undefined,
        jobs: undefined, allowedHosts: undefined, readOnly: undefined
      }
      yield* Effect.scoped(Layer.build(Dashboard.layer(dashboard)))
    }))
})

describe("a retry policy named __proto__", () => {
  // the stores whose steps finish within a few yields, so that the test waits on no real time
  for (const [store, layer] of stores.filter(([store]) => store === "memory" || store === "SQLite")) {
    it.effect(`${store}: a job taken back from a dead consumer by a live one's reaper waits its policy's delay (the reaper's policies were a plain object: assigning __proto__ set its prototype, so the policy was lost and the consumer's own retry applied)`, () =>
      Effect.gen(function*() {
        const jobs = yield* JobStore.JobStore
        const job = yield* JobQueue.enqueue(Echo, 1, { retry: "__proto__", maxAttempts: 3 })
        // a consumer that dies holding it
        assert.strictEqual((yield* jobs.claim({ queues: ["default"], tasks: ["Echo"], limit: 1, lease: 1000 })).claims.length, 1)
        yield* JobQueue.consume({
          handlers: [Task.handle(Echo, Effect.succeed)],
          concurrency: 1,
          lease: "10 seconds",
          retry: Schedule.spaced("1 second"),
          retryPolicies: { ["__proto__"]: Schedule.spaced("1 hour") }
        })
        // the live consumer's reaper runs every 5 seconds: the second run takes the job back
        yield* TestClock.adjust("5 seconds")
        let info = yield* job.status
        for (let i = 0; i < 1000 && info.state === "running"; i++) {
          yield* Effect.yieldNow
          info = yield* job.status
        }
        assert.strictEqual(info.state, "delayed")
        assert.strictEqual(info.visibleAt.getTime() - (yield* Clock.currentTimeMillis), 3_600_000)
      }).pipe(Effect.scoped, Effect.provide(layer())))
  }
})

describe("ThreadPool: resourceLimits with a key Object.prototype has", () => {
  it.live("constructor, toString or hasOwnProperty is refused naming it, before any thread starts, as another key is (the limits' table was a plain object: its inherited keys passed the check, with no bounds)", () =>
    Effect.gen(function*() {
      const worker = new URL("./fixtures/worker.ts", import.meta.url)
      for (const key of ["constructor", "toString", "hasOwnProperty"]) {
        const exit = yield* Effect.exit(Effect.scoped(ThreadPool.make({ worker, threads: 1, resourceLimits: { [key]: 256 } as never })))
        const error = exit._tag === "Failure" && exit.cause.reasons[0]?._tag === "Fail" ? (exit.cause.reasons[0] as any).error : undefined
        assert.strictEqual(error?._tag, "InvalidPoolConfig", `${key}: ${String(exit)}`)
        assert.strictEqual(error.field, `resourceLimits.${key}`)
      }
    }).pipe(Effect.timeout("30 seconds")))
})
