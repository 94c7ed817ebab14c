/**
 * Background processing behind a web server.
 *
 * The usual shape: a request should not wait for slow work (sending mail, rendering a report), so
 * the handler puts a job on a queue, answers `202 Accepted` with a job id at once, and the client
 * asks for the job's status later. The Go version needs a job queue, a dispatcher goroutine, a
 * ready-pool of worker channels and a `Stop` that waits on two WaitGroups.
 *
 * Here:
 *   POST /jobs      {"task": "report", "millis": 500, "fail"?: true, "priority"?: 10}
 *                   -> 202 {"id": 1, "status": "queued", "location": "/jobs/1"}
 *                   -> 503 while shutting down, 429 when the queue is full, 400 for a bad body,
 *                      413 for a body over 64 KiB
 *   GET  /jobs/:id  -> 200 {"id": 1, "status": "running" | "succeeded" | ..., "result"?: ...}
 *
 * Shutdown is graceful by construction. `NodeRuntime.runMain` turns SIGTERM/SIGINT into an
 * interruption of `main`, which releases the app's layers in reverse order. The first one released
 * asks the pool to shut down: the queued and running jobs finish (within `shutdownTimeout`) while
 * the HTTP server still answers, `503` (with `Connection: close`) to new jobs and `200` to status
 * requests. Then the server stops, and the process exits with code 0.
 *
 * Run:  node examples/web-server.ts              (PORT=3000 by default, listens on 127.0.0.1)
 * Try:  curl -s -XPOST localhost:3000/jobs -d '{"task":"report","millis":3000}'
 *       curl -s localhost:3000/jobs/1
 *       then Ctrl-C (or kill -TERM) while the job runs: the server waits for it, then exits.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { ByteSize, Cause, Config, Context, Duration, Effect, Exit, Layer, Option, Runtime, Schema } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { createServer } from "node:http"
import { type PoolError, WorkPool } from "../src/index.ts"

// --- the pool and the jobs ----------------------------------------------------------------------

/** The background pool: two jobs at a time, 100 waiting at most, 10 s to drain on shutdown. */
export class Background extends WorkPool.Service<Background>()("app/Background", {
  concurrency: 2,
  capacity: 100,
  overflow: "fail", // a full queue answers 429 at once instead of holding the request open
  timeout: "1 minute",
  shutdownTimeout: "10 seconds"
}) {}

/** The body of POST /jobs, checked by a schema: a bad request never reaches the pool. */
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

/** The work itself; a stand-in for rendering a report or sending a batch of mail. */
const perform = (request: JobRequest) =>
  Effect.gen(function*() {
    yield* Effect.sleep(Duration.millis(request.millis))
    if (request.fail === true) return yield* new TaskFailed({ task: request.task })
    return { task: request.task, tookMillis: request.millis }
  })

export interface JobView {
  readonly id: number
  readonly status: WorkPool.JobStatus
  readonly result?: unknown
  readonly error?: string
}

/**
 * The registry of submitted jobs, so that GET /jobs/:id can find them. (A real service would expire
 * old entries, or keep them in a database; this one keeps them for the life of the process.)
 */
export class Jobs extends Context.Service<Jobs, {
  readonly submit: (
    request: JobRequest
  ) => Effect.Effect<number, PoolError.AdmissionError>
  readonly view: (id: number) => Effect.Effect<Option.Option<JobView>>
}>()("app/Jobs") {
  static readonly layer = Layer.effect(Jobs, Effect.gen(function*() {
    const pool = yield* Background
    // The handles keep their job's types: JobHandle<{ task, tookMillis }, TaskFailed>.
    const handles = new Map<number, WorkPool.JobHandle<Effect.Success<ReturnType<typeof perform>>, TaskFailed>>()

    return Jobs.of({
      // `submit` returns as soon as the job is queued. The job runs under the pool's scope, so it
      // goes on after this request has been answered (and is not cut short when it is).
      submit: (request) =>
        Effect.map(pool.submit(perform(request), { priority: request.priority ?? 0 }), (handle) => {
          handles.set(handle.id, handle)
          return handle.id
        }),
      view: (id) =>
        Effect.gen(function*() {
          const handle = handles.get(id)
          if (handle === undefined) return Option.none()
          const status = yield* handle.status
          if (status === "waiting" || status === "queued" || status === "running") return Option.some({ id, status })
          // The job has ended, so awaiting it returns at once, with its result or its error: a typed
          // one (TaskFailed, JobTimeout, PoolShutdown...) or, for a defect, the first line of its cause.
          const exit = yield* Effect.exit(handle.await)
          if (Exit.isSuccess(exit)) return Option.some({ id, status, result: exit.value })
          const error = Option.match(Cause.findErrorOption(exit.cause), {
            onSome: (e) => e.message,
            onNone: () => Cause.pretty(exit.cause).split("\n")[0] ?? "unknown"
          })
          return Option.some({ id, status, error })
        })
    })
  }))
}

/**
 * Drains the pool when the app stops. The app builds this layer last, so it is released first, while
 * the HTTP server still runs: during the drain, new jobs are refused by the pool (`PoolShutdown`,
 * answered 503) and clients can still follow the accepted ones. (The pool's own layer would shut it
 * down too, but only after the server had gone, and without these logs.)
 */
const drainOnShutdown = Layer.effectDiscard(Effect.gen(function*() {
  const pool = yield* Background
  yield* Effect.addFinalizer(() =>
    Effect.gen(function*() {
      const before = yield* pool.stats
      yield* Effect.log(`shutting down: draining ${before.running} running and ${before.queued} queued jobs`)
      yield* pool.shutdown
      const after = yield* pool.stats
      yield* Effect.log(`drained: ${after.succeeded} succeeded, ${after.failed} failed, ${after.interrupted} interrupted`)
      // jobs still at work when shutdownTimeout passed were interrupted: accepted work was lost
      const cut = after.interrupted - before.interrupted
      if (cut > 0) {
        yield* Effect.logWarning(`drain incomplete: ${cut} job${cut === 1 ? " was" : "s were"} interrupted at the shutdown deadline`)
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
    QueueFull: (e) => Effect.succeed(HttpServerResponse.jsonUnsafe({ error: e.message }, { status: 429 })),
    // The server is draining and stops once the accepted jobs are done (10 s at most): the client
    // should retry elsewhere or later, on a new connection, since this one is about to close.
    PoolShutdown: () =>
      Effect.succeed(HttpServerResponse.jsonUnsafe({ error: "shutting down" }, {
        status: 503,
        headers: { connection: "close", "retry-after": "10" }
      }))
  })
))

const getJob = HttpRouter.route("GET", "/jobs/:id", Effect.gen(function*() {
  const { id } = yield* HttpRouter.params
  const view = yield* (yield* Jobs).view(Number(id))
  return Option.match(view, {
    onNone: () => HttpServerResponse.jsonUnsafe({ error: `no job ${id}` }, { status: 404 }),
    onSome: (job) => HttpServerResponse.jsonUnsafe(job)
  })
}))

export interface ServerOptions {
  readonly port: number
  /** Loopback by default: this example is not meant to be reachable from other machines. */
  readonly host?: string | undefined
  readonly logRequests?: boolean | undefined
}

/**
 * The whole app as one layer: pool, job registry, HTTP server, drain; built in that order and
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
    Layer.provideMerge(Background.layer)
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
    Effect.flatMap(Config.Int("PORT").pipe(Config.withDefault(3000)), (port) => Layer.launch(makeApp({ port }))),
    { teardown }
  )
}
