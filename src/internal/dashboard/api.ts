/**
 * The dashboard's HTTP interface, on an `effect/http` router:
 *
 * - `GET /`: the page (static: no data, no secret in it);
 * - `GET /api/snapshot`: every source with its history, as JSON;
 * - `GET /api/events`: the same as a server-sent event `snapshot`, then a `sample` each interval;
 *   past `ALL_SHOWN` sources, only the shown ones: the `TOP` by backlog and those of its `show`
 *   parameters (`?show=queue:a&show=pool:b`, at most `MAX_SELECTED`, `MAX_SELECTED_ACROSS` across the open pages);
 * - `GET /api/overview?filter=&order=backlog&offset=0&limit=50`: a window of every source's counts,
 *   filtered by name and sorted (`backlog`, `failed`, `running`, largest first, or `name`);
 * - `POST /api/pools/:pool/jobs/:id/cancel`, `POST /api/queues/:queue/jobs/:id/cancel`,
 *   `POST /api/queues/:queue/jobs/:id/redrive`, `POST /api/pools/:pool/pause` (and `resume`),
 *   `POST /api/queues/:queue/pause` (and `resume`): the buttons;
 * - `POST /api/queues/:queue/hold` with the JSON body `{ "duration": 900000 }` (milliseconds, or a
 *   duration's text: `"15 minutes"`): holds a durable queue (`JobQueue.holdQueue`), `0` lifts its
 *   hold; answers `{ "heldUntil": "<ISO time>" | null }`;
 * - `POST /api/queues/:queue/concurrency` with `{ "limit": 5 }`: caps the queue's running jobs
 *   across every consumer (`JobQueue.setConcurrency`), `null` or `0` removes the cap; answers
 *   `{ "concurrency": 5 | null }`;
 * - `POST /api/queues/:queue/group-concurrency` with `{ "limit": 1 }`: caps the running jobs of each
 *   `group` key of the queue (`JobQueue.setGroupConcurrency`), `null` or `0` removes the cap;
 *   answers `{ "groupConcurrency": 1 | null }`.
 *
 * With the `readOnly` option every `POST` is refused (403), and the page shows no buttons.
 *
 * Every `/api` request is authorized: `Authorization: Bearer <token>`, or the user's check. A
 * `POST` must also carry the header `X-Workpool-Dashboard: 1`: a browser sends a custom header
 * across origins only after a CORS preflight, which this server never grants, so another site
 * cannot make an operator's browser press a button (CSRF), even when the user's check relies on a
 * cookie. The token travels in a header only, never in a URL, so it is in no log or `Referer`.
 *
 * Every request, the page's too, must name this server in its `Host` header (see `host.ts`: DNS
 * rebinding).
 *
 * Errors are JSON `{ "error": "..." }` with a status that says which: 400 (a bad id), 401 (no or a
 * wrong token), 403 (a POST without the header, any POST to a read-only dashboard, or a Host this server does not go by), 404 (an unknown pool or queue, a durable job unknown or of another queue), 409 (too
 * late: the job ended, or is not dead; a pool's id it does not know is one, as it cannot tell it from an ended job it did not retain), 500 (the store failed).
 * A body of a setting (`hold`, `concurrency`, `group-concurrency`) that is not JSON, larger than `MAX_BODY` bytes, or
 * whose value the setting refuses (negative, not a number, past its bound) is a 400 naming it.
 *
 * @internal
 */
import { ByteSize, Cause, Duration, Effect, Option, PubSub, Ref, Semaphore, Stream } from "effect"
import { HttpIncomingMessage, HttpRouter, type HttpServerRequest, HttpServerResponse } from "effect/http"
import { createHash } from "node:crypto"
import * as JobQueue from "../../JobQueue.ts"
import { InvalidJobOptions } from "../../PoolError.ts"
import * as config from "../config.ts"
import { JobStore } from "../store/model.ts"
import { page } from "./page.ts"
import {
  ANSWER_WITHIN,
  describe,
  key,
  MAX_SELECTED,
  MAX_SELECTED_ACROSS,
  type Order,
  ORDERS,
  type OverviewQuery,
  type Sampler,
  type Snapshot,
  type Source
} from "./sampler.ts"

export type Authorize = (request: HttpServerRequest.HttpServerRequest) => Effect.Effect<boolean>

/** Compares without an early exit, so the time taken does not tell how much of a guess was right. */
const sameSecret = (given: string, expected: string): boolean => {
  let diff = given.length ^ expected.length
  for (let i = 0; i < expected.length; i++) diff |= (given.charCodeAt(i) | 0) ^ expected.charCodeAt(i)
  return diff === 0
}

export const tokenCheck = (token: string): Authorize => (request) =>
  Effect.sync(() => {
    const header = request.headers["authorization"] ?? ""
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header)
    return match !== null && sameSecret(match[1]!, token)
  })

class ApiError {
  readonly status: number
  readonly message: string
  constructor(status: number, message: string) {
    this.status = status
    this.message = message
  }
}

const fail = (status: number, message: string) => Effect.fail(new ApiError(status, message))

const SECURITY_HEADERS = {
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer"
}

const json = (status: number, body: unknown) =>
  HttpServerResponse.jsonUnsafe(body, { status, headers: SECURITY_HEADERS })

/**
 * The page's one inline script, by its hash: were a value ever written into the page as HTML, a
 * script in it would still not run. Its style stays inline-allowed: the page sets style attributes.
 */
const scriptHash = createHash("sha256").update(/<script>([\s\S]*?)<\/script>/.exec(page)![1]!, "utf8").digest("base64")

const PAGE_HEADERS = {
  ...SECURITY_HEADERS,
  // it talks only to this server; no other site may frame it
  "content-security-policy":
    `default-src 'none'; script-src 'sha256-${scriptHash}'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'`,
  "x-frame-options": "DENY"
}

export interface Api {
  readonly sampler: Sampler
  readonly authorize: Authorize
  /** Whether `authorize` is a token check: its 401 then names the header to send. */
  readonly usesToken: boolean
  /** Serializes samples of every source: the loop's and those taken for a new client. */
  readonly lock: Semaphore.Semaphore
  /** Whether a request's Host header names this server (see `host.ts`: DNS rebinding). */
  readonly allowedHost: (header: string | undefined) => boolean
  /** The `readOnly` option: every POST is refused. */
  readonly readOnly: boolean
}

/** Refuses a request for a name this server does not go by, before anything else (see `host.ts`). */
const checkHost = (api: Api, request: HttpServerRequest.HttpServerRequest) => {
  const host = request.headers["host"]
  return api.allowedHost(host) ? Effect.void : fail(
    403,
    `this dashboard does not answer to the host ${JSON.stringify(host)}: add it to the dashboard's allowedHosts option if it is yours`
  )
}

/**
 * A Promise a check answered is refused, not awaited; one that rejects would then be an unhandled
 * rejection per request, which ends a Node process by default.
 */
const settled = (value: unknown): void => {
  if (value instanceof Promise) value.catch(() => {})
}

const sampleNow = (api: Api) => api.lock.withPermits(1)(api.sampler.sample(false))

/**
 * After a button: its own source read again, at once. Not a sample of every source: the button's
 * answer waited for the reading in progress and one of its own, and so for a hung store's queues.
 */
const refresh = (api: Api, source: Source) => api.sampler.sampleOne(source)

/** Runs an API handler: authorization first, then errors as JSON with their status. */
const guarded = (
  api: Api,
  method: "GET" | "POST",
  handler: (request: HttpServerRequest.HttpServerRequest) => Effect.Effect<HttpServerResponse.HttpServerResponse, ApiError, HttpRouter.RouteContext>
) =>
(request: HttpServerRequest.HttpServerRequest) =>
  Effect.gen(function*() {
    yield* checkHost(api, request)
    const answer: unknown = api.authorize(request)
    // an async function (a Promise) from JavaScript: refused as well, saying so, not "is not iterable"
    if (!Effect.isEffect(answer)) {
      settled(answer)
      return yield* fail(
        500,
        `the dashboard's authorize check returned ${config.kindOfValue(answer)}, not an Effect: the request is refused (an async check: (request) => Effect.promise(() => check(request)))`
      )
    }
    // a check that fails (its type says it cannot: a JavaScript caller, a cast) is the check's
    // defect, a 500: its failure was answered as a JSON body with no status, a 200 the page read as done
    const allowed: unknown = yield* Effect.orDie(answer as Effect.Effect<unknown, unknown>)
    // only true lets a request in: a Promise (an async lookup in Effect.succeed), an object or a
    // string was truthy, and let every request in
    if (allowed !== true && allowed !== false) {
      settled(allowed)
      return yield* fail(500, `the dashboard's authorize check answered ${config.kindOfValue(allowed)}, not a boolean: the request is refused`)
    }
    if (!allowed) {
      return yield* fail(
        401,
        api.usesToken ? "missing or wrong token: send the header Authorization: Bearer <token>" : "not authorized"
      )
    }
    if (method === "POST" && request.headers["x-workpool-dashboard"] !== "1") {
      return yield* fail(403, "a POST needs the header X-Workpool-Dashboard: 1 (a guard against cross-site requests)")
    }
    if (method === "POST" && api.readOnly) {
      return yield* fail(403, "this dashboard is read-only (its readOnly option): it changes nothing")
    }
    return yield* handler(request)
  }).pipe(
    Effect.catch((error: ApiError) => {
      const response = json(error.status, { error: error.message })
      return Effect.succeed(
        error.status === 401 && api.usesToken ? HttpServerResponse.setHeader(response, "www-authenticate", "Bearer") : response
      )
    }),
    Effect.catchDefect((defect) => Effect.succeed(json(500, { error: `the dashboard failed: ${describe(defect)}` })))
  )

const sourceOf = (api: Api, kind: "pool" | "queue", name: string | undefined): Effect.Effect<Source, ApiError> => {
  const source = name === undefined ? undefined : api.sampler.sources.get(key(kind, name))
  return source === undefined ? fail(404, `no ${kind} named ${JSON.stringify(name)} on this dashboard`) : Effect.succeed(source)
}

/**
 * A 500 for a store's failure. The answer names the error but carries no stack trace (it would show
 * the server's paths and dependencies to whoever holds the token); the whole cause goes to the log.
 */
const storeFailed = (cause: Cause.Cause<unknown>): Effect.Effect<never, ApiError> => {
  const error = Cause.squash(cause)
  return Effect.andThen(
    Effect.logError("dashboard: the store failed", cause),
    fail(500, `the store failed: ${error instanceof Error ? error.message : describe(error)}`)
  )
}

/**
 * A store's answer to a button, or a 500 for its failure, or a 504 past `ANSWER_WITHIN`: a hung
 * store (a partition, an exhausted pool of connections) held the request, and its connection, for
 * ever. A cancel or redrive cut off may still be applied: the answer says to look again.
 */
const storeCall = <A>(effect: Effect.Effect<A, unknown>, what: string): Effect.Effect<A, ApiError> =>
  Effect.catchCause(effect, storeFailed).pipe(
    Effect.timeoutOrElse({
      duration: ANSWER_WITHIN,
      orElse: () => fail(504, `the store did not answer the ${what} within ${ANSWER_WITHIN}; it may still be applied: look again`)
    })
  )

const cancelPoolJob = (api: Api) =>
  Effect.gen(function*() {
    const params = yield* HttpRouter.params
    const source = yield* sourceOf(api, "pool", params.pool)
    const id = Number(params.id)
    if (!Number.isSafeInteger(id) || id < 0 || params.id !== String(id)) {
      return yield* fail(400, `invalid job id ${JSON.stringify(params.id)}: expected a whole number`)
    }
    const cancelled = yield* source.pool!.cancel(id)
    if (!cancelled) return yield* fail(409, `job ${id} of pool ${source.name} is not live: it has ended, or is unknown`)
    yield* refresh(api, source)
    return json(200, { cancelled: true })
  })

/** A durable job of this queue, or 404: an id of another queue's job is not this queue's to touch. */
const queueJob = (source: Source, id: string) =>
  Effect.flatMap(
    storeCall(source.store!.get(id), "job's read"),
    (row) =>
      row === undefined || row.queue !== source.name
        ? fail(404, `no job ${JSON.stringify(id)} in queue ${source.name}`)
        : Effect.succeed(row)
  )

const cancelQueueJob = (api: Api) =>
  Effect.gen(function*() {
    const params = yield* HttpRouter.params
    const source = yield* sourceOf(api, "queue", params.queue)
    const row = yield* queueJob(source, params.id ?? "")
    const result = yield* storeCall(source.store!.cancel(row.id), "cancel")
    if (result === "missing") return yield* fail(404, `no job ${JSON.stringify(row.id)} in queue ${source.name}`)
    if (result === "finished") return yield* fail(409, `job ${row.id} has already ended`)
    yield* refresh(api, source)
    return json(200, { result })
  })

const redriveQueueJob = (api: Api) =>
  Effect.gen(function*() {
    const params = yield* HttpRouter.params
    const source = yield* sourceOf(api, "queue", params.queue)
    const row = yield* queueJob(source, params.id ?? "")
    const redriven = yield* storeCall(source.store!.redrive(row.id), "redrive")
    if (!redriven) {
      return yield* fail(409, `job ${row.id} was not redriven: it is not dead (it is ${row.state}) nor expired, or an unfinished job holds its dedup key`)
    }
    yield* refresh(api, source)
    return json(200, { redriven: true })
  })

/**
 * Pauses or resumes a pool's dispatch (its running jobs go on) or a durable queue's claims (for
 * every consumer of the store: the flag is the store's). Idempotent: pausing a paused one is a 200.
 */
const setPaused = (api: Api, kind: "pool" | "queue", paused: boolean) =>
  Effect.gen(function*() {
    const params = yield* HttpRouter.params
    const source = yield* sourceOf(api, kind, kind === "pool" ? params.pool : params.queue)
    if (source.pool !== undefined) yield* paused ? source.pool.pause : source.pool.resume
    else yield* storeCall(source.store!.configure(source.name, { paused }), paused ? "pause" : "resume")
    yield* refresh(api, source)
    return json(200, { paused })
  })

/** The largest body a setting's request may have: `{ "duration": "15 minutes" }` is 30 bytes. */
export const MAX_BODY = 1024

/** A setting's JSON body, one object, read up to `MAX_BODY` bytes: a 400 for anything else. */
const bodyOf = (request: HttpServerRequest.HttpServerRequest): Effect.Effect<Record<string, unknown>, ApiError> =>
  request.text.pipe(
    Effect.provideService(HttpIncomingMessage.MaxBodySize, ByteSize.bytes(MAX_BODY)),
    Effect.mapError(() => new ApiError(400, `the body could not be read: expected JSON of at most ${MAX_BODY} bytes`)),
    Effect.flatMap((text) => {
      let body: unknown
      try {
        body = JSON.parse(text)
      } catch {
        return fail(400, `the body is not JSON: expected an object such as { "duration": "15 minutes" }`)
      }
      return typeof body === "object" && body !== null && !Array.isArray(body)
        ? Effect.succeed(body as Record<string, unknown>)
        : fail(400, `the body is ${config.kindOfValue(body)}: expected a JSON object`)
    })
  )

/** One field of a setting's body, and no other: a misspelt field would otherwise be read as absent. */
const fieldOf = (body: Record<string, unknown>, field: string): Effect.Effect<unknown, ApiError> => {
  const other = Object.keys(body).find((k) => k !== field)
  if (other !== undefined) return fail(400, `unknown field ${JSON.stringify(other)} in the body: expected only ${JSON.stringify(field)}`)
  return field in body ? Effect.succeed(body[field]) : fail(400, `the body has no ${JSON.stringify(field)}`)
}

/**
 * A queue's setting, applied through `JobQueue` with the queue's own store: its checks are the
 * API's (`InvalidJobOptions` is a 400 with its message). The answer is read from the store after
 * it, not from the sampler's copy of the queue's counts, which a failed reading leaves without them.
 */
const setting = <A>(
  api: Api,
  what: string,
  field: string,
  apply: (queue: string, value: unknown) => Effect.Effect<void, unknown, JobStore>,
  answer: (stats: JobQueue.QueueStats) => A
) =>
(request: HttpServerRequest.HttpServerRequest) =>
  Effect.gen(function*() {
    const params = yield* HttpRouter.params
    const source = yield* sourceOf(api, "queue", params.queue)
    const value = yield* Effect.flatMap(bodyOf(request), (body) => fieldOf(body, field))
    // the input's errors are the caller's (a 400), kept apart from the store's (a 500)
    const outcome = yield* storeCall(
      apply(source.name, value).pipe(
        Effect.andThen(JobQueue.stats(source.name)),
        Effect.map(answer),
        Effect.provideService(JobStore, source.store!),
        Effect.catch((error) =>
          error instanceof ApiError ? Effect.succeed(error)
          : error instanceof InvalidJobOptions ? Effect.succeed(new ApiError(400, `invalid ${field} ${error.value}: ${error.reason}`))
          : Effect.fail(error)
        )
      ),
      what
    )
    if (outcome instanceof ApiError) return yield* Effect.fail(outcome)
    yield* refresh(api, source)
    return json(200, outcome)
  })

/**
 * A hold's duration as JSON carries one: milliseconds, or a duration's text ("15 minutes"). Text
 * that is no duration is refused here: `holdQueue`'s reason lists what TypeScript may pass (a
 * `Duration`, bigint nanoseconds), which no JSON body can.
 */
const holdFor = (queue: string, duration: unknown) =>
  typeof duration === "number" || (typeof duration === "string" && Option.isSome(Duration.fromInput(duration as Duration.Input)))
    ? JobQueue.holdQueue(queue, duration as Duration.Input)
    : Effect.fail(
      new ApiError(
        400,
        `invalid duration ${typeof duration === "string" ? JSON.stringify(duration) : config.kindOfValue(duration)}: ` +
          `expected milliseconds or a duration's text ("15 minutes"), 0 to lift the hold`
      )
    )

/**
 * A cap as JSON carries one, set with `set` (`JobQueue.setConcurrency`, `setGroupConcurrency`): a
 * whole number, or null or 0 (no cap; `setGroupConcurrency` takes no 0, and the API's buttons both do).
 * Checked here: `set`'s reason names `undefined` for no cap, which means nothing in JSON.
 */
const capWith = (set: typeof JobQueue.setConcurrency) => (queue: string, limit: unknown) =>
  limit === null || (typeof limit === "number" && Number.isInteger(limit) && limit >= 0 && limit <= config.MAX_QUEUE_CAP)
    ? set(queue, limit === null || limit === 0 ? undefined : limit)
    : Effect.fail(
      new ApiError(
        400,
        `invalid limit ${typeof limit === "number" ? limit : config.kindOfValue(limit)}: ` +
          `expected a whole number from 1 to ${config.MAX_QUEUE_CAP}, or null (or 0) for no cap`
      )
    )

const encoder = new TextEncoder()

const event = (name: string, snapshot: Snapshot) => encoder.encode(`event: ${name}\ndata: ${JSON.stringify(snapshot)}\n\n`)

/**
 * Each sample encoded once, however many pages are open: their streams share its bytes. Encoded
 * per page, a sample of long job lists (megabytes) was serialized once per page.
 */
const samples = new WeakMap<Snapshot, Uint8Array>()

const sampleEvent = (snapshot: Snapshot): Uint8Array => {
  let bytes = samples.get(snapshot)
  if (bytes === undefined) {
    bytes = event("sample", snapshot)
    samples.set(snapshot, bytes)
  }
  return bytes
}

/** A request's query parameters (its URL is a path with a query). */
const queryOf = (request: HttpServerRequest.HttpServerRequest) => new URL(request.url, "http://dashboard").searchParams

/** The sources a page selected (`show`, each `pool:name` or `queue:name`), at most `MAX_SELECTED`. */
const selectionOf = (request: HttpServerRequest.HttpServerRequest): Effect.Effect<ReadonlySet<string>, ApiError> => {
  const show = queryOf(request).getAll("show")
  const bad = show.find((k) => !/^(pool|queue):./s.test(k))
  if (bad !== undefined) return fail(400, `invalid show ${JSON.stringify(bad)}: expected pool:<name> or queue:<name>`)
  const selection = new Set(show)
  if (selection.size > MAX_SELECTED) return fail(400, `at most ${MAX_SELECTED} sources may be shown at once, got ${selection.size}`)
  return Effect.succeed(selection)
}

/** Why `selection` may not be added to the open pages' (past `MAX_SELECTED_ACROSS` sources together), if so. */
const overSelected = (api: Api, selection: ReadonlySet<string>): string | undefined => {
  const { selected } = api.sampler
  let added = 0
  for (const k of selection) if (!selected.has(k)) added++
  return selected.size + added <= MAX_SELECTED_ACROSS ? undefined :
    `at most ${MAX_SELECTED_ACROSS} sources may be shown across the open pages: ${selected.size} are, and this page would add ${added}`
}

/** A page's selection, refused (429) while the open pages' with it would pass `MAX_SELECTED_ACROSS`. */
const admitted = (api: Api, selection: ReadonlySet<string>): Effect.Effect<ReadonlySet<string>, ApiError> =>
  Effect.suspend(() => {
    const over = overSelected(api, selection)
    return over === undefined ? Effect.succeed(selection) : fail(429, over)
  })

/**
 * Adds a page's selection to the sources read in full, until its stream ends; false if it would pass
 * `MAX_SELECTED_ACROSS`, checked again as the stream starts: another page's may have come in since
 * its request was answered (its stream then ends at once, and the page's next request is refused
 * with the reason).
 */
const select = (api: Api, selection: ReadonlySet<string>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      if (overSelected(api, selection) !== undefined) return false
      selection.forEach((k) => api.sampler.selected.set(k, (api.sampler.selected.get(k) ?? 0) + 1))
      return true
    }),
    (added) =>
      Effect.sync(() => {
        if (!added) return
        selection.forEach((k) => {
          const n = (api.sampler.selected.get(k) ?? 1) - 1
          if (n === 0) api.sampler.selected.delete(k)
          else api.sampler.selected.set(k, n)
        })
      })
  )

/** The SSE stream of one client: while it is open, job lists are read (of the sources it shows). */
const events = (api: Api, selection: ReadonlySet<string>) =>
  Stream.unwrap(Effect.gen(function*() {
    const { sampler } = api
    yield* Effect.acquireRelease(Ref.update(sampler.watchers, (n) => n + 1), () => Ref.update(sampler.watchers, (n) => n - 1))
    if (!(yield* select(api, selection))) return Stream.empty
    const subscription = yield* PubSub.subscribe(sampler.hub)
    // a sample now, so that the new client's first message has the job lists too
    yield* sampleNow(api)
    const first = yield* sampler.fullFor(selection)
    return Stream.concat(
      Stream.succeed(event("snapshot", first)),
      Stream.fromSubscription(subscription).pipe(
        // the first message has them already: the sample above, and any taken before it
        Stream.filter((snapshot) => snapshot.t > first.t),
        // one encoding shared by every page while each shows every source; past that, each its own
        Stream.map((snapshot) => snapshot.overview ? event("sample", sampler.forPage(snapshot, selection)) : sampleEvent(snapshot))
      )
    )
  }))

/** The overview's window: `filter`, `order`, `offset` and `limit` (at most 200), each checked. */
const overviewQuery = (request: HttpServerRequest.HttpServerRequest): Effect.Effect<OverviewQuery, ApiError> => {
  const query = queryOf(request)
  const order = query.get("order") ?? "backlog"
  if (!(ORDERS as ReadonlyArray<string>).includes(order)) {
    return fail(400, `invalid order ${JSON.stringify(order)}: expected one of ${ORDERS.join(", ")}`)
  }
  const whole = (name: string, fallback: number, max: number) => {
    const text = query.get(name)
    const n = text === null ? fallback : Number(text)
    return Number.isSafeInteger(n) && n >= 0 && n <= max && (text === null || text === String(n)) ? n : undefined
  }
  const offset = whole("offset", 0, Number.MAX_SAFE_INTEGER)
  if (offset === undefined) return fail(400, `invalid offset ${JSON.stringify(query.get("offset"))}: expected a whole number from 0`)
  const limit = whole("limit", 50, 200)
  if (limit === undefined || limit === 0) return fail(400, `invalid limit ${JSON.stringify(query.get("limit"))}: expected a whole number from 1 to 200`)
  return Effect.succeed({ filter: query.get("filter") ?? "", order: order as Order, offset, limit })
}

export const register = (router: HttpRouter.HttpRouter, api: Api) =>
  Effect.gen(function*() {
    const pageResponse = HttpServerResponse.text(page, { contentType: "text/html; charset=utf-8", headers: PAGE_HEADERS })
    yield* router.add("GET", "/", (request) =>
      checkHost(api, request).pipe(
        Effect.as(pageResponse),
        Effect.catch((error: ApiError) => Effect.succeed(json(error.status, { error: error.message })))
      ))
    yield* router.add("GET", "/api/snapshot", guarded(api, "GET", () => Effect.map(api.sampler.full, (s) => json(200, s))))
    yield* router.add(
      "GET",
      "/api/events",
      guarded(api, "GET", (request) =>
        Effect.map(Effect.flatMap(selectionOf(request), (selection) => admitted(api, selection)), (selection) =>
          HttpServerResponse.stream(events(api, selection), {
          contentType: "text/event-stream",
            headers: { ...SECURITY_HEADERS, "x-accel-buffering": "no" }
          })))
    )
    yield* router.add(
      "GET",
      "/api/overview",
      guarded(api, "GET", (request) =>
        Effect.flatMap(overviewQuery(request), (query) => Effect.map(api.sampler.overview(query), (o) => json(200, o))))
    )
    yield* router.add("POST", "/api/pools/:pool/jobs/:id/cancel", guarded(api, "POST", () => cancelPoolJob(api)))
    yield* router.add("POST", "/api/queues/:queue/jobs/:id/cancel", guarded(api, "POST", () => cancelQueueJob(api)))
    yield* router.add("POST", "/api/queues/:queue/jobs/:id/redrive", guarded(api, "POST", () => redriveQueueJob(api)))
    for (const [action, paused] of [["pause", true], ["resume", false]] as const) {
      yield* router.add("POST", `/api/pools/:pool/${action}`, guarded(api, "POST", () => setPaused(api, "pool", paused)))
      yield* router.add("POST", `/api/queues/:queue/${action}`, guarded(api, "POST", () => setPaused(api, "queue", paused)))
    }
    yield* router.add(
      "POST",
      "/api/queues/:queue/hold",
      guarded(api, "POST", setting(api, "hold", "duration", holdFor, (stats) => ({ heldUntil: stats.heldUntil ?? null })))
    )
    yield* router.add(
      "POST",
      "/api/queues/:queue/concurrency",
      guarded(api, "POST", setting(api, "cap", "limit", capWith(JobQueue.setConcurrency), (stats) => ({ concurrency: stats.concurrency?.limit ?? null })))
    )
    yield* router.add(
      "POST",
      "/api/queues/:queue/group-concurrency",
      guarded(
        api,
        "POST",
        setting(api, "per-key cap", "limit", capWith(JobQueue.setGroupConcurrency), (stats) => ({ groupConcurrency: stats.groupConcurrency ?? null }))
      )
    )
    yield* router.add("*", "/api/*", guarded(api, "GET", (request) => fail(404, `no such endpoint: ${request.method} ${request.url}`)))
  })
