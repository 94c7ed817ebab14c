/**
 * A live web dashboard for pools and durable queues: one page that shows, for each pool and queue
 * added to it, its counts, charts of throughput, latency (wait and run p50/p99) and depth, the
 * running jobs with their progress, the queued ones, and the failed (or dead) ones with their
 * errors, with buttons to cancel a job, to redrive a dead durable job, and to pause or resume a
 * pool (its dispatch) or a durable queue (claims by every consumer of its store; running jobs go
 * on either way). A durable queue shows its cap with its running jobs, its per-key cap, its hold and
 * when it ends, its retention, and its jobs' snoozes and keys (`group`), with buttons to lift or set
 * its hold and set its cap and its per-key cap
 * (`readOnly` turns every button off). It updates itself every `interval` by server-sent events. Past 20 pools and
 * queues (a queue per tenant) the page shows an overview instead: a table of every source's counts,
 * filtered, sorted and paged by the server, with cards only for the 5 largest backlogs and the
 * sources selected in it; only those are read in full each interval.
 *
 * `layer` serves it on `effect/http` with Node's HTTP server (`@effect/platform-node`), on the
 * loopback interface unless told otherwise, behind a token (a random one unless given) or a check
 * of your own. Its `url` opens the page with the token in the URL's fragment, which a browser never
 * sends to a server.
 *
 * Retry: a dead durable job is data in the store, so "redrive" puts it back in its queue and its
 * awaiters (by id, in any process) see the new outcome. A failed in-process job is not retried from
 * the page: its outcome was already delivered to its awaiter, so running it again would run it
 * with no one to see the result, and keeping every failed job's `Effect` to allow it would hold
 * whatever that Effect captured. Give it a `retry` policy instead (see `WorkPool.Retry`).
 *
 * Node-only: import it as `effect-workpool/Dashboard`; it needs the optional peer dependency
 * `@effect/platform-node`.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { WorkPool } from "effect-workpool"
 * import * as Dashboard from "effect-workpool/Dashboard"
 *
 * class Mail extends WorkPool.Service<Mail>()("app/Mail", {
 *   concurrency: 4,
 *   name: "mail",
 *   retention: { count: 1000, age: "1 hour" } // so that the page can list failed jobs
 * }) {}
 *
 * const program = Effect.gen(function* () {
 *   const dashboard = yield* Dashboard.Dashboard
 *   yield* dashboard.add(yield* Mail)
 *   yield* Effect.log(`dashboard at ${dashboard.url}`)
 *   return yield* Effect.never
 * }).pipe(Effect.scoped, Effect.provide(Layer.merge(Dashboard.layer({ port: 9400 }), Mail.layer)))
 * ```
 *
 * @since 0.2.0
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Context, type Duration, Effect, Layer, PubSub, Redacted, Schedule, Schema, Semaphore } from "effect"
import type * as Scope from "effect/Scope"
import { HttpRouter, HttpServer, HttpServerError, type HttpServerRequest } from "effect/http"
import { createServer, type Server } from "node:http"
import * as config from "./internal/config.ts"
import * as Api from "./internal/dashboard/api.ts"
import * as Host from "./internal/dashboard/host.ts"
import * as Sampler from "./internal/dashboard/sampler.ts"
import { layerOutsideTransactions } from "./internal/sqlTransaction.ts"
import { JobStore } from "./internal/store/model.ts"
import type * as WorkPool from "./WorkPool.ts"

/**
 * A dashboard option, or what was added to a dashboard, is invalid: `field` names it, `value` shows
 * what was given and `reason` says what was expected.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Dashboard from "effect-workpool/Dashboard"
 *
 * const explain = (e: Dashboard.InvalidDashboardOptions) => Effect.logError(e.message) // "invalid dashboard option port: ..."
 * ```
 * @since 0.2.0
 * @category errors
 */
export class InvalidDashboardOptions extends Schema.TaggedError<InvalidDashboardOptions>()("InvalidDashboardOptions", {
  field: Schema.String,
  value: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `invalid dashboard option ${this.field}: ${this.reason}, got ${this.value}`
  }
}

/**
 * Options of `layer`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type * as Dashboard from "effect-workpool/Dashboard"
 *
 * const options: Dashboard.Options = {
 *   port: 9400,            // default 0: a free port (see Dashboard.url)
 *   host: "127.0.0.1",     // the default: loopback only
 *   token: process.env.DASHBOARD_TOKEN,   // at least 16 printable ASCII characters; unset: 32 random hex digits
 *   interval: "1 second",  // how often the page is updated
 *   history: 300,          // points per chart (5 minutes at 1 s)
 *   readOnly: false        // true: the page shows, its buttons are off (every POST is a 403)
 * }
 * // or a check of your own instead of a token (a POST still needs the dashboard's own header):
 * const behindProxy: Dashboard.Options = {
 *   authorize: (request) => Effect.succeed(request.headers["x-forwarded-user"] === "ops")
 * }
 * ```
 * @since 0.2.0
 * @category models
 */
export interface Options {
  /** The TCP port; 0 (the default) picks a free one. */
  readonly port?: number | undefined
  /** The interface to listen on; default `127.0.0.1`. Anything else exposes the buttons to the network. */
  readonly host?: string | undefined
  /**
   * The secret an API request must carry (`Authorization: Bearer <token>`). Default: 32 random hex
   * digits, made when the layer is built and put in `url`. At least 16 printable ASCII characters.
   */
  readonly token?: string | Redacted.Redacted<string> | undefined
  /**
   * Instead of a token: your own check of each API request (a session cookie, a proxy's header).
   * Only `true` lets a request in; an answer that is not a boolean is refused with a 500.
   */
  readonly authorize?: ((request: HttpServerRequest.HttpServerRequest) => Effect.Effect<boolean>) | undefined
  /** How often sources are sampled and the page updated; default 1 second, at least 50 ms. */
  readonly interval?: Duration.Input | undefined
  /** Points kept per source for the charts; default 300, at most 100,000. */
  readonly history?: number | undefined
  /** Jobs shown per list (running, queued, failed); default 50, at most 1,000. */
  readonly jobs?: number | undefined
  /**
   * More names the server may be reached by (the `Host` header): by default only IP addresses,
   * `localhost` and `host`, so that a site that makes its own name resolve to this server (DNS
   * rebinding) is refused (403). A leading dot allows a name and its subdomains
   * (`".ops.example.com"`); `"any"` turns the check off. Behind a proxy that forwards the client's
   * `Host`, list the proxy's public name.
   */
  readonly allowedHosts?: ReadonlyArray<string> | "any" | undefined
  /**
   * Shows, never changes: every button's request (a `POST`: cancel, redrive, pause, resume, a
   * queue's hold, cap or per-key cap) is refused with a 403, and the page shows no buttons. Default `false`.
   */
  readonly readOnly?: boolean | undefined
}

/**
 * The dashboard service, provided by `layer`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { JobQueue, WorkPool } from "effect-workpool"
 * import * as Dashboard from "effect-workpool/Dashboard"
 *
 * const watch = (pool: WorkPool.WorkPool) =>
 *   Effect.gen(function* () {
 *     const dashboard = yield* Dashboard.Dashboard
 *     yield* dashboard.add(pool)           // until this scope closes
 *     yield* dashboard.addQueue("mail")    // a durable queue, from the JobStore in context
 *     return dashboard.url
 *   })
 * ```
 * @since 0.2.0
 * @category services
 */
export class Dashboard extends Context.Service<Dashboard, {
  /** The page's address with the token in its fragment (`#token=`): open it in a browser. */
  readonly url: string
  /** The page's address without the token. */
  readonly address: string
  /**
   * Shows a pool (a `WorkPool`, a `ThreadPool`, a pool service) until the current scope closes.
   * Pool names are the keys: a second pool of the same name is refused, as is a name `.` or `..`
   * (the page puts names in URL paths, where a browser resolves those away). Failed jobs are listed only
   * if the pool keeps ended jobs (its `retention`).
   */
  readonly add: (pool: Pool) => Effect.Effect<void, InvalidDashboardOptions, Scope.Scope>
  /** Shows a durable queue of the `JobStore` in context until the current scope closes (not one named `.` or `..`). */
  readonly addQueue: (queue: string) => Effect.Effect<void, InvalidDashboardOptions, Scope.Scope | JobStore>
}>()("effect-workpool/Dashboard") {}

/**
 * What a dashboard needs of a pool: `WorkPool` and `ThreadPool` both have it.
 *
 * @example
 * ```ts
 * import { WorkPool } from "effect-workpool"
 * import type * as Dashboard from "effect-workpool/Dashboard"
 *
 * const asSource = (pool: WorkPool.WorkPool): Dashboard.Pool => pool
 * ```
 * @since 0.2.0
 * @category models
 */
export type Pool = Pick<WorkPool.WorkPool<any, any>, "name" | "stats" | "jobs" | "cancel" | "pause" | "resume">

const check = <A>(f: () => A): Effect.Effect<A, InvalidDashboardOptions> =>
  Effect.try({
    try: f,
    catch: (error) => {
      if (error instanceof config.OptionError) return new InvalidDashboardOptions(error.invalid)
      throw error
    }
  })

const randomToken = () => {
  const bytes = new Uint8Array(16)
  crypto.getRandomValues(bytes)
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")
}

const validate = (options: Options) =>
  check(() => {
    config.object("options", options)
    // a misspelt key would be ignored, and its default used silently
    config.onlyKeys("", options, ["port", "host", "token", "authorize", "interval", "history", "jobs", "allowedHosts", "readOnly"], {
      allowedHost: "allowedHosts"
    })
    if (options.token !== undefined && options.authorize !== undefined) {
      config.fail("authorize", options.authorize, "expected either token or authorize, not both")
    }
    const port = options.port ?? 0
    if (typeof port !== "number" || !Number.isInteger(port) || port < 0 || port > 65535) {
      config.fail("port", port, "expected a whole number from 0 to 65535")
    }
    const host = options.host === undefined ? "127.0.0.1" : config.name("host", options.host)
    // a NUL made dns.lookup throw (a defect), a space failed the listen with a ServeError saying nothing
    if (/[\s\x00-\x1f\x7f]/.test(host)) config.fail("host", host, "expected a host name or an IP address, without spaces or control characters")
    const token = options.token === undefined
      ? randomToken()
      : Redacted.isRedacted(options.token)
      ? Redacted.value(options.token as Redacted.Redacted<string>)
      : options.token
    // printable ASCII only: a browser refuses to send anything else in a header, and Node reads
    // header bytes as Latin-1, so such a token could never match
    if (options.authorize === undefined && (typeof token !== "string" || token.length < 16 || !/^[\x21-\x7e]+$/.test(token))) {
      // never show a token, even a bad one
      config.fail("token", "(hidden)", "expected a string of at least 16 printable ASCII characters, without spaces")
    }
    if (options.authorize !== undefined && typeof options.authorize !== "function") {
      config.fail("authorize", options.authorize, "expected a function (request) => Effect<boolean>")
    }
    const allowedHosts = options.allowedHosts ?? []
    if (allowedHosts !== "any" && !(Array.isArray(allowedHosts) && allowedHosts.every(Host.validEntry))) {
      config.fail("allowedHosts", allowedHosts, `expected "any" or an array of host names without port or scheme (".example.com": it and its subdomains)`)
    }
    const interval = options.interval === undefined ? 1000 : config.finiteMillis("interval", options.interval, 50)
    // a truthy string ("false" from an environment variable) must not turn the buttons on or off by surprise
    if (options.readOnly !== undefined && typeof options.readOnly !== "boolean") config.fail("readOnly", options.readOnly, "expected a boolean")
    return {
      port,
      host,
      token: options.authorize === undefined ? token as string : undefined,
      authorize: options.authorize,
      // the name it listens on is one of its own
      allowedHosts: allowedHosts === "any" ? allowedHosts : [...allowedHosts, ...(Host.validEntry(host) ? [host] : [])],
      interval,
      history: options.history === undefined ? 300 : config.positiveInteger("history", options.history, 100_000),
      jobs: options.jobs === undefined ? 50 : config.positiveInteger("jobs", options.jobs, 1000),
      readOnly: options.readOnly === true
    }
  })

const isPool = (u: unknown): u is Pool =>
  typeof u === "object" && u !== null && typeof (u as Pool).name === "string" && Effect.isEffect((u as Pool).stats) &&
  typeof (u as Pool).jobs === "function" && typeof (u as Pool).cancel === "function" &&
  Effect.isEffect((u as Pool).pause) && Effect.isEffect((u as Pool).resume)

/**
 * A name the page can put in a URL's path as one segment. "." and ".." are dot segments, which a
 * browser resolves away however they are escaped (%2e too): the buttons of a pool named ".." posted
 * to "api/pause", and could never reach it.
 */
const inPath = (field: string, name: string): string =>
  name === "." || name === ".."
    ? config.fail(field, name, "expected a name other than . or .. (the page puts it in a URL's path, where a browser resolves it away)")
    : name

type Checked = Effect.Success<ReturnType<typeof validate>>

/**
 * Ends the server's connections as the dashboard is released: the closing server waited for a
 * browser's open connection for ever (most likely the page asking again, on its kept-alive
 * connection, once its stream ended), so a release, and the process's shutdown, hung while a tab
 * had the page open. Closed first, so that no new connection comes in meanwhile.
 */
const closeConnections = (server: () => Server | undefined) =>
  Effect.addFinalizer(() =>
    Effect.sync(() => {
      const open = server()
      if (open === undefined) return
      open.close()
      open.closeAllConnections()
    })
  )

const make = (options: Checked, server: () => Server | undefined) =>
  Effect.gen(function*() {
    yield* closeConnections(server)
    const sampler = yield* Sampler.make({ interval: options.interval, history: options.history, listed: options.jobs, readOnly: options.readOnly })
    yield* Effect.addFinalizer(() => PubSub.shutdown(sampler.hub))
    const api: Api.Api = {
      sampler,
      authorize: options.token === undefined ? options.authorize! : Api.tokenCheck(options.token),
      usesToken: options.token !== undefined,
      lock: yield* Semaphore.make(1),
      allowedHost: Host.hostCheck(options.allowedHosts),
      readOnly: options.readOnly
    }
    yield* Api.register(yield* HttpRouter.HttpRouter, api)
    yield* Effect.forkScoped(Effect.repeat(api.lock.withPermits(1)(sampler.sample(true)), Schedule.spaced(options.interval)))

    const address = HttpServer.formatAddress((yield* HttpServer.HttpServer).address) + "/"
    // encoded: a token may hold % & # +, which the page would otherwise misread
    const url = options.token === undefined ? address : `${address}#token=${encodeURIComponent(options.token)}`

    const register = (kind: "pool" | "queue", name: string, source: Omit<Sampler.Source, "history" | "previous" | "counts" | "detail">) =>
      Effect.gen(function*() {
        const id = Sampler.key(kind, name)
        if (sampler.sources.has(id)) {
          return yield* check(() => config.fail(kind === "pool" ? "pool.name" : "queue", name, `expected a ${kind} not already on this dashboard`))
        }
        sampler.sources.set(id, { ...source, history: [], previous: undefined, counts: undefined, detail: null })
        yield* Effect.addFinalizer(() => Effect.sync(() => sampler.sources.delete(id)))
      })

    return Dashboard.of({
      url,
      address,
      add: (pool) =>
        Effect.flatMap(
          check(() => {
            if (!isPool(pool)) return config.fail("pool", pool, "expected a WorkPool or a ThreadPool")
            // the page names a pool in its buttons' URLs with encodeURIComponent, which throws on one
            if (!config.wellFormed(pool.name)) {
              config.fail("pool.name", pool.name, "expected well-formed Unicode, no lone surrogate (the page puts the name in URLs)")
            }
            inPath("pool.name", pool.name)
            return pool
          }),
          (pool) => register("pool", pool.name, { kind: "pool", name: pool.name, pool, store: undefined })
        ),
      addQueue: (queue) =>
        Effect.gen(function*() {
          // as JobQueue takes it: a name no store keeps as it is would be sampled every interval
          const name = yield* check(() => inPath("queue", config.storedName("queue", queue)))
          const store = yield* JobStore
          yield* register("queue", name, { kind: "queue", name, pool: undefined, store })
        })
    })
  })

/**
 * Serves the dashboard (Node's HTTP server, on `host:port`) and provides the `Dashboard` service;
 * releasing the layer closes the server and ends every open page's stream. Fails with
 * `InvalidDashboardOptions` for a bad option and with `ServeError` when it cannot listen (the
 * port is taken).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Dashboard from "effect-workpool/Dashboard"
 *
 * const main = Effect.gen(function* () {
 *   const { url } = yield* Dashboard.Dashboard
 *   yield* Effect.log(`open ${url}`)
 * }).pipe(Effect.provide(Dashboard.layer({ port: 9400 })))
 * ```
 * @since 0.2.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Dashboard, InvalidDashboardOptions | HttpServerError.ServeError> =>
  // never part of a caller's SQL transaction (see sqlTransaction.ts): built in one, its sampler read
  // the transaction's snapshot, then failed every reading once it had ended
  layerOutsideTransactions(Layer.unwrap(Effect.map(validate(options), (checked) => {
    let server: Server | undefined
    const create = () => (server = createServer())
    return HttpRouter.serve(Layer.effect(Dashboard, make(checked, () => server)), { disableLogger: true, disableListenLog: true }).pipe(
      // No graceful wait for open requests at release: a page's event stream never ends by itself,
      // so the server would wait its whole grace period (20 s) for it. Streams and requests are
      // interrupted at once instead, then the server closes.
      Layer.provide(NodeHttpServer.layer(create, { port: checked.port, host: checked.host, disablePreemptiveShutdown: true })),
      Layer.catchTag("ServeError", (error) => Layer.effect(Dashboard, Effect.fail(listenError(checked, error))))
    )
  })))

/**
 * The server's `ServeError` has no message of its own (only Node's error, as its cause): printed,
 * it read "ServeError: " over a stack. The same error, saying where it could not listen and why.
 */
const listenError = (options: Checked, error: HttpServerError.ServeError): HttpServerError.ServeError => {
  const cause = error.cause as { readonly code?: unknown; readonly message?: unknown } | undefined
  const where = `${options.host.includes(":") ? `[${options.host}]` : options.host}:${options.port}`
  const why = cause?.code === "EADDRINUSE"
    ? "the port is in use (another process, or a dashboard of this one): choose another, or port 0 for any free one"
    : typeof cause?.message === "string" ? cause.message : String(cause)
  // ServeError's declared fields are only `cause`; Effect's errors take a message from their arguments
  const args: { readonly cause: unknown; readonly message: string } = { cause: error.cause, message: `dashboard: cannot listen on ${where}: ${why}` }
  return new HttpServerError.ServeError(args)
}
