/**
 * Background processing behind a web server, with the jobs in a durable queue.
 *
 * The usual shape: a request should not wait for slow work (sending mail, rendering a report), so
 * the handler puts a job on a queue, answers `202 Accepted` with a job id at once, and the client
 * asks for the job's status later. The Go version needs a job queue, a dispatcher goroutine, a
 * ready-pool of worker channels and a `Stop` that waits on two WaitGroups; and a restart loses
 * every job it held.
 *
 * Here the queue is a `JobQueue` on an SQLite file: an accepted job is on disk before the client
 * gets its 202, so it survives a deploy, a crash or a `kill -9`; the next start of the server (or any
 * other process consuming the same file) runs it. `GET /jobs/:id` answers from the file.
 *
 *   POST /jobs      {"task": "report", "millis": 500, "fail"?: true, "priority"?: 10}
 *                   -> 202 {"id": "3f0c…", "status": "queued", "location": "/jobs/3f0c…"}
 *                   -> 503 while shutting down or when the file stays locked, 429 when 1,000 jobs
 *                      wait, 400 for a bad body,
 *                      413 for a body over 64 KiB
 *   GET  /jobs/:id  -> 200 {"id": "3f0c…", "status": "queued" | "delayed" | "running" | "succeeded" | "dead"
 *                           | "cancelled", "attempts": 1, "progress"?: 0.5, "result"?: ..., "error"?: "..."}
 *
 * A failing job is retried (3 attempts in all), then it is `dead` and keeps its last error.
 *
 * Shutdown is graceful by construction. `NodeRuntime.runMain` turns SIGTERM/SIGINT into an
 * interruption of `main`, which releases the app's layers in reverse order. The first one released
 * stops accepting jobs and shuts the consumer down: it claims no more jobs, and the running ones
 * finish (within `shutdownTimeout`) while the HTTP server still answers, `503` (with `Connection:
 * close`) to new jobs and `200` to status requests. A job still running at the deadline is
 * interrupted and given back to the store, its attempt not counted: the next start runs it again.
 * Jobs not yet started stay queued in the file. Then the server stops, and the process exits with
 * code 0. After a `kill -9` the running jobs' leases expire (5 s) and the next start runs them again.
 *
 * Run:  node examples/web-server.ts              (PORT=3000 by default, listens on 127.0.0.1;
 *                                                 JOBS_DB, the SQLite file, by default in the OS temp dir)
 * Try:  curl -s -XPOST localhost:3000/jobs -d '{"task":"report","millis":30000}'
 *       curl -s localhost:3000/jobs/<id>
 *       then kill -9 the server while the job runs, start it again: the job runs again and finishes.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { ByteSize, Cause, Config, Context, Duration, Effect, Exit, Layer, Option, Runtime, Schedule, Schema } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { createServer } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type DurableError, JobQueue, type PoolError, Task, WorkPool } from "../src/index.ts"
import * as JobStore from "../src/JobStore.ts"

// --- the task and its handler -------------------------------------------------------------------

/** The body of POST /jobs, checked by a schema: a bad request never reaches the queue. */
export const JobRequest = Schema.Struct({
  task: Schema.String,
  millis: Schema.Number.check(Schema.isBetween({ minimum: 0, maximum: 60_000 })),
  fail: Schema.optional(Schema.Boolean),
  priority: Schema.optional(Schema.Number.check(Schema.isFinite()))
})
export type JobRequest = typeof JobRequest.Type

export class TaskFailed extends Schema.TaggedError<TaskFailed>()("TaskFailed", { task: Schema.String }) {
  override get message() {
    return `task ${this.task} failed`
  }
}

/**
 * The job as the store keeps it: its payload, result and failure are encoded with these Schemas, so
 * that whichever process runs it, and whichever reads it, agree on the types.
 */
export const Report = Task.make("Report", {
  payload: JobRequest,
  success: Schema.Struct({ task: Schema.String, tookMillis: Schema.Number }),
  failure: TaskFailed
})

/**
 * The work itself; a stand-in for rendering a report or sending a batch of mail. It reports its
 * progress in quarters (the store keeps the latest, `GET /jobs/:id` shows it).
 */
const perform = (request: JobRequest) =>
  Effect.gen(function*() {
    const job = yield* WorkPool.JobContext
    yield* Effect.log(`working on ${request.task} (${request.millis} ms)`)
    for (let quarter = 1; quarter <= 4; quarter++) {
      yield* Effect.sleep(Duration.millis(request.millis / 4))
      yield* job.progress(quarter / 4)
    }
    if (request.fail === true) return yield* new TaskFailed({ task: request.task })
    return { task: request.task, tookMillis: request.millis }
  })

/** The queue this app's jobs go to, in the store. */
const queue = "web"

/**
 * The consumer in this process: two jobs at a time, 10 s to drain on shutdown. Any other process
 * that consumes `queue` from the same file with the same handler shares the work.
 */
export class Background extends Context.Service<Background, JobQueue.Consumer>()("app/Background") {
  static readonly layer = Layer.effect(
    Background,
    JobQueue.consume({
      queues: [queue],
      handlers: [Task.handle(Report, perform)],
      concurrency: 2,
      timeout: "1 minute",
      retry: Schedule.exponential("200 millis"),
      // a killed server's running jobs run again at most about 7.5 s later (lease + lease / 2)
      lease: "5 seconds",
      poll: "500 millis",
      shutdownTimeout: "10 seconds"
    })
  )
}

export interface JobView {
  readonly id: string
  readonly status: JobQueue.JobState
  /** Attempts started, the running one included; one given back by a shutdown does not count. */
  readonly attempts: number
  readonly progress?: unknown
  readonly result?: unknown
  readonly error?: string
}

/** A job refused because the server is shutting down (answered 503). */
export class ShuttingDown extends Schema.TaggedError<ShuttingDown>()("ShuttingDown", {}) {}

/** A job refused because too many wait already (answered 429): a queue on disk is still finite. */
export class Backlogged extends Schema.TaggedError<Backlogged>()("Backlogged", { waiting: Schema.Number }) {
  override get message() {
    return `${this.waiting} jobs are waiting; try again later`
  }
}

/** More waiting jobs than this and POST /jobs answers 429. */
export const maxWaiting = 1000

/** Submitting and viewing jobs, on the store: nothing about a job is kept in this process. */
export class Jobs extends Context.Service<Jobs, {
  readonly submit: (
    request: JobRequest
  ) => Effect.Effect<
    string,
    | ShuttingDown
    | Backlogged
    | PoolError.InvalidJobOptions
    | PoolError.TaskCodecError
    // a job it runs after (`after`) not in the store: none here
    | DurableError.JobNotFound
    | DurableError.StoreError
  >
  readonly view: (id: string) => Effect.Effect<Option.Option<JobView>, DurableError.StoreError>
  /** From now on `submit` fails with `ShuttingDown`. */
  readonly stopAccepting: Effect.Effect<void>
}>()("app/Jobs") {
  static readonly layer = Layer.effect(Jobs, Effect.gen(function*() {
    const store = yield* JobStore.JobStore
    let accepting = true
    const provide = Effect.provideService(JobStore.JobStore, store)

    return Jobs.of({
      // `submit` returns once the job is in the file; the consumer (here, or in another process)
      // runs it whenever a slot is free, whatever happens to this request or to this process.
      submit: (request) =>
        Effect.gen(function*() {
          if (!accepting) return yield* new ShuttingDown()
          const { delayed, waiting } = yield* JobQueue.stats(queue)
          if (waiting + delayed >= maxWaiting) return yield* new Backlogged({ waiting: waiting + delayed })
          const job = yield* JobQueue.enqueue(Report, request, { queue, priority: request.priority ?? 0, maxAttempts: 3 })
          return job.id
        }).pipe(provide),
      view: (id) =>
        Effect.gen(function*() {
          const found = yield* Effect.option(Effect.catchTag(JobQueue.status(id), "JobNotFound", () => Effect.fail(undefined)))
          if (Option.isNone(found)) return Option.none()
          const info = found.value
          const view: JobView = {
            id,
            status: info.state,
            attempts: info.attempts,
            ...(info.progress === undefined ? {} : { progress: info.progress })
          }
          if (info.state !== "succeeded" && info.state !== "dead" && info.state !== "cancelled") return Option.some(view)
          // The job has ended, so awaiting it returns at once, decoded from the store: its result, or
          // its error: a typed one (TaskFailed, AttemptTimeout, JobCancelled...) or, for a defect, the
          // first line of its cause.
          const exit = yield* Effect.exit(JobQueue.handleOf(Report, id).await)
          if (Exit.isSuccess(exit)) return Option.some({ ...view, result: exit.value })
          const error = Option.match(Cause.findErrorOption(exit.cause), {
            onSome: (e) => e.message,
            onNone: () => Cause.pretty(exit.cause).split("\n")[0] ?? "unknown"
          })
          return Option.some({ ...view, error })
        }).pipe(provide),
      stopAccepting: Effect.sync(() => {
        accepting = false
      })
    })
  }))
}

/**
 * Drains the consumer when the app stops. The app builds this layer last, so it is released first,
 * while the HTTP server still runs: during the drain, new jobs are refused (answered 503) and clients
 * can still follow the accepted ones. (The consumer's own layer would shut it down too, but only
 * after the server had gone, and without these logs.)
 */
const drainOnShutdown = Layer.effectDiscard(Effect.gen(function*() {
  const consumer = yield* Background
  const jobs = yield* Jobs
  yield* Effect.addFinalizer(() =>
    Effect.gen(function*() {
      yield* jobs.stopAccepting
      const before = yield* consumer.stats
      yield* Effect.log(`shutting down: draining ${before.running} running jobs; queued jobs stay in the store`)
      yield* consumer.shutdown
      const after = yield* consumer.stats
      const given = after.interrupted - before.interrupted
      yield* Effect.log(
        `drained: ${after.succeeded - before.succeeded} succeeded, ${after.failed - before.failed} failed, ${given} given back`
      )
      // jobs still at work when shutdownTimeout passed were interrupted and given back to the store:
      // not lost, but their work so far is, and they start over at the next start
      if (given > 0) {
        yield* Effect.logWarning(
          `drain incomplete: ${given} job${given === 1 ? " was" : "s were"} interrupted at the shutdown deadline ` +
            `and given back to the store, to run again from the start`
        )
      }
    })
  )
}))

// --- HTTP -------------------------------------------------------------------------------------------

/** The largest request body read: a job request is a few dozen bytes; 64 KiB is generous. */
export const maxBodyBytes = 64 * 1024

const postJob = HttpRouter.route("POST", "/jobs", Effect.gen(function*() {
  const request = yield* HttpServerRequest.schemaBodyJson(JobRequest)
  const id = yield* (yield* Jobs).submit(request)
  return HttpServerResponse.jsonUnsafe({ id, status: "queued", location: `/jobs/${id}` }, { status: 202 })
}).pipe(
  // Each way a submission can be refused becomes its own HTTP answer.
  Effect.catchTags({
    // The body reader stops at `maxBodyBytes` (see `makeApp`). `Connection: close` spares the
    // client the upload of the rest, and us reading it.
    HttpServerError: (e) =>
      e.reason._tag === "RequestParseError" && e.reason.reason === "BodyTooLarge"
        ? Effect.succeed(HttpServerResponse.jsonUnsafe({ error: `request body larger than ${maxBodyBytes} bytes` }, {
          status: 413,
          headers: { connection: "close" }
        }))
        : Effect.fail(e),
    SchemaError: (e) => Effect.succeed(HttpServerResponse.jsonUnsafe({ error: e.message }, { status: 400 })),
    InvalidJobOptions: (e) => Effect.succeed(HttpServerResponse.jsonUnsafe({ error: e.message }, { status: 400 })),
    Backlogged: (e) => Effect.succeed(HttpServerResponse.jsonUnsafe({ error: e.message }, { status: 429 })),
    // The file stayed locked by another process past the busy timeout (a long write, a backup):
    // nothing was stored, and a retry a moment later is likely to work.
    StoreError: (e) =>
      Effect.succeed(HttpServerResponse.jsonUnsafe({ error: e.message }, { status: 503, headers: { "retry-after": "1" } })),
    // The server is draining and stops once its running jobs are done (10 s at most): the client
    // should retry elsewhere or later, on a new connection, since this one is about to close.
    ShuttingDown: () =>
      Effect.succeed(HttpServerResponse.jsonUnsafe({ error: "shutting down" }, {
        status: 503,
        headers: { connection: "close", "retry-after": "10" }
      }))
  })
))

const getJob = HttpRouter.route("GET", "/jobs/:id", Effect.gen(function*() {
  const { id } = yield* HttpRouter.params
  const view = yield* (yield* Jobs).view(id ?? "")
  return Option.match(view, {
    onNone: () => HttpServerResponse.jsonUnsafe({ error: `no job ${id}` }, { status: 404 }),
    onSome: (job) => HttpServerResponse.jsonUnsafe(job)
  })
}))

export interface ServerOptions {
  readonly port: number
  /** Loopback by default: this example is not meant to be reachable from other machines. */
  readonly host?: string | undefined
  /** The SQLite file of the job queue; created if missing. */
  readonly database: string
  /** How long a request waits for another process's lock on the file before a 503; 5 s by default. */
  readonly busyTimeout?: Duration.Input | undefined
  readonly logRequests?: boolean | undefined
}

/** Where the jobs are kept unless `JOBS_DB` says otherwise: one fixed file, so that a restart finds it. */
export const defaultDatabase = join(tmpdir(), "effect-workpool-web-server.db")

/**
 * The whole app as one layer: store, consumer, jobs, HTTP server, drain; built in that order and
 * released in the reverse one. `provideMerge` keeps `Jobs` and `Background` in the output so that a
 * test can look at them, and the server (its address is in `HttpServer.HttpServer`; port 0 picks a
 * free port).
 */
export const makeApp = (options: ServerOptions) =>
  drainOnShutdown.pipe(
    Layer.provideMerge(HttpRouter.serve(HttpRouter.addAll([postJob, getJob]), {
      disableLogger: options.logRequests === false,
      disableListenLog: options.logRequests === false
    })),
    // Request bodies are read up to this size, then refused (413): a client cannot make the
    // server buffer (or keep, in a job) an upload of any size.
    Layer.provide(Layer.succeed(HttpServerRequest.MaxBodySize, ByteSize.bytes(maxBodyBytes))),
    // The server stops after the drain, when a request still in flight is a status read or a 503:
    // it gets a second, then its connection is closed. (The default, 20 s, lets one stalled upload
    // keep the process past an orchestrator's grace period, 30 s by default, after a 10 s drain.)
    Layer.provideMerge(NodeHttpServer.layer(createServer, {
      port: options.port,
      host: options.host ?? "127.0.0.1",
      gracefulShutdownTimeout: Duration.seconds(1)
    })),
    Layer.provideMerge(Jobs.layer),
    Layer.provideMerge(Background.layer),
    Layer.provide(JobStore.sqlite({ filename: options.database, busyTimeout: options.busyTimeout }))
  )

/**
 * The exit code. `Layer.launch` never ends by itself, so an exit made of interruptions only is
 * runMain answering SIGTERM/SIGINT, and it comes here after every layer has been released: the
 * drain is over (complete, or cut at `shutdownTimeout`, which the drain logs as a warning). That is
 * the stop an orchestrator asks for, so it exits 0; runMain's
 * default would say 130 ("killed by a signal"). A failure (the port is taken, a finalizer died)
 * keeps the default code.
 */
const teardown: Runtime.Teardown = (exit, onExit) =>
  Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : Runtime.defaultTeardown(exit, onExit)

// `Layer.launch` builds the app and waits forever; SIGTERM/SIGINT interrupts it and the layers are
// released as described at the top.
if (import.meta.main) {
  NodeRuntime.runMain(
    Effect.gen(function*() {
      const port = yield* Config.Int("PORT").pipe(Config.withDefault(3000))
      const database = yield* Config.String("JOBS_DB").pipe(Config.withDefault(defaultDatabase))
      yield* Effect.log(`jobs are kept in ${database}`)
      return yield* Layer.launch(makeApp({ port, database }))
    }),
    { teardown }
  )
}
