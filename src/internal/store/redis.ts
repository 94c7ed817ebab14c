/**
 * The Redis store, on effect's `Redis` service (`redisClient.ts` provides it on node-redis):
 * any number of processes on any number of machines share one Redis. Every change of state is one
 * Lua script (`redisScripts.ts`), run by `EVALSHA` (its SHA1 computed once; sent whole by `EVAL` to
 * a server that lacks it, after a restart or a `SCRIPT FLUSH`):
 *
 * - a queue's keys share one hash tag `{<prefix>:<queue>}` (escaped for a name holding '}': see
 *   `queueBase`), so they live in one Redis Cluster slot
 *   and each script touches one slot; what spans queues (a consumer of several queues, the reaper,
 *   purge, a listing of every queue) runs one script per queue, those of a reap, a heartbeat, a
 *   claim's look and an `enqueueAll` sent together (`eachQueue`); on one server (not a Cluster) a
 *   reap and a claim's look run one script per `MANY_QUEUES` queues (`Scripts.many`);
 * - the claim takes the best visible jobs (rank, then FIFO) from the consumer's tasks' sorted sets,
 *   after promoting delayed jobs whose time has come on the server's `TIME`;
 * - a lease is a token (made here, one per claimed job) whose job is in the `running` set until its
 *   expiry; settles, heartbeats and progress find their job through the token, so a stale token
 *   writes nothing;
 * - idle consumers block with `BZPOPMIN` on the queue's marker key on a dedicated connection (as
 *   BullMQ does) instead of polling: a job that becomes claimable adds the marker; the consumer
 *   that pops it claims, and passes the marker on if jobs are left; a delayed job adds a marker
 *   scored with its time, and the consumer that pops it wakes then;
 * - a running job's cancel is `PUBLISH`ed, so its consumer's heartbeat hears of it at once;
 * - time: every script reads its own node's `TIME`, so whatever decides a job's fate (due, lease,
 *   reap, rate window) is one clock, its queue's node's; the store's time (`now`, one node's on a
 *   Cluster) serves the consumer's lease countdown, a duration that an offset between nodes does not
 *   change, and what docs/durable.md ("Redis Cluster") lists: ticks, purge's cut-off, status
 *   (test/durable-redis-hostile.test.ts, 'the store's time ahead of the clock its scripts read').
 *
 * A new job's id names its queue (`<UUID>:<queue>`), so a lookup by id goes straight to the
 * queue's slot and an enqueue is one script there, on a Cluster too. Two lookups are outside a
 * queue's slot, in keys of their own: `{<prefix>}:queues` (the queues, added once per store
 * instance and queue, and again by an enqueue that makes a queue's seq; a purge that empties a queue
 * drops it: see `purge`) and `{<prefix>}:ids` (job id → queue) for the ids that do not name their
 * queue, a repeatable job's ticks (and jobs of older versions). On one Redis the enqueue script of
 * a tick writes the id index with the job (one round trip, atomic). On a Cluster the index is in
 * another slot than the job: it is written before it, so a job is never without it. So an entry
 * can name a queue that does not hold its id (an orphan): a crash or a failed script in between, a
 * removal after a late or dedup answer that fails, a purge's removal of its ids (a command after its
 * script) that fails; on one Redis a purge's script removes them itself, and an orphan is left only
 * by a store of an older version. An orphan reads as a missing job (get, cancel,
 * redrive); counts, listings and purge never read the index; the tick tried again on its queue is
 * stored over it. On one Redis a tick of its id on another queue (a late process's, or one name
 * repeated with two queues) removes it and takes the id: its script sees that the other queue does
 * not hold the id, and no enqueue of it can be on its way (the index and the job are written in one
 * script). On a Cluster such a tick fails, typed, and the repeat tries it again: an entry without
 * its job may be another enqueue on its way, which this one must not duplicate; there an orphan is
 * never removed but by its own queue's tick, one field of the hash for each such failure (tick ids
 * are not reused after their deadline).
 *
 * @internal
 */
import { Cause, Clock, Effect, Exit, Fiber, Queue, Redacted, Schedule } from "effect"
import { createHash } from "node:crypto"
import * as Redis from "effect/persistence/Redis"
import type * as Scope from "effect/Scope"
import { JobNotFound, StoreError } from "../../DurableError.ts"
import { InvalidJobOptions } from "../../PoolError.ts"
import * as config from "../config.ts"
import { failureStreak } from "../failureStreak.ts"
import type {
  Claim,
  ClaimRequest,
  FailedDependency,
  Heartbeat,
  JobRow,
  Latencies,
  ListFilter,
  FreshJob,
  NewJob,
  QueueCounts,
  QueueSettings,
  RetainPlace,
  ReapedJob,
  Settled,
  Settlement,
  State,
  Store
} from "./model.ts"
import {
  cursorTime,
  decodeRetention,
  encodeRetention,
  GROUP_VISITS,
  holdShown,
  type LatencyCursor,
  latencyOf,
  RETAIN_QUEUES,
  retainPass,
  retentionField,
  roundRobin
} from "./model.ts"
import * as RedisClient from "./redisClient.ts"
import * as Scripts from "./redisScripts.ts"
import * as ServerTime from "./serverTime.ts"
import * as Settles from "./settles.ts"
import { makeSignal, UNKEYED } from "./signal.ts"
import * as Closing from "./closing.ts"

/** A change that wakes this process's waiters of `queue` (undefined: every waiter), at once or in `in` ms. */
interface Wake {
  readonly queue: string | undefined
  readonly in?: number | undefined
}
type Wakes = Wake | ReadonlyArray<Wake> | undefined

/** Where the store connects: through the sentinels of a primary (see redisClient.ts `sentinel`). */
export interface SentinelConfig {
  /** The name the sentinels monitor the primary under. */
  readonly name: string
  /** The sentinels' URLs (their own credentials in them), in the order they are asked. */
  readonly sentinels: ReadonlyArray<Redacted.Redacted>
  /** The primary's URL with a stand-in host and port, `redis[s]://[user:password@]primary:6379/db`: the data nodes' credentials. */
  readonly node: Redacted.Redacted
}

export interface Config {
  /** One server's, or a Cluster node's; unused (`redis://`) through sentinels. */
  readonly url: Redacted.Redacted
  /** Every key starts with `{<prefix>:` or `{<prefix>%` (a queue's, see `queueBase`) or is `{<prefix>}:...`: one Redis, several stores (a prefix has no ':'). */
  readonly prefix: string
  readonly connectTimeout: number
  /** `url` is one node of a Redis Cluster; the client finds the others. */
  readonly cluster: boolean
  /** The primary is the one its sentinels name (`url` unused). */
  readonly sentinel?: SentinelConfig | undefined
  /** As in the Postgres store: the server's `TIME`, or (tests only) the Effect `Clock`. */
  readonly clock: "server" | "effect"
}

/** The URL of `value` (a string or a `Redacted` one) at `field`, checked as the client reads it. */
const redisUrl = (field: string, value: unknown, what: { readonly database: boolean }): URL => {
  const url = Redacted.isRedacted(value) ? Redacted.value(value as Redacted.Redacted<unknown>) : value
  if (typeof url !== "string" || !/^rediss?:\/\/[^\s]*$/.test(url)) {
    // the URL may hold a password: name its shape, not its text
    config.fail(field, typeof url === "string" ? "<a string>" : url, "expected a redis:// or rediss:// URL")
  }
  let parsed: URL | undefined
  try {
    parsed = new URL(url as string)
  } catch {
    config.fail(field, "<a string>", "expected a redis:// URL that parses (host, port, database)")
  }
  if (parsed!.hostname === "") config.fail(field, "<a string>", "expected a host in the redis:// URL")
  // what the client reads, and throws on (a defect, not a StoreError): the database number, and
  // the user and password, %-decoded
  if (!what.database && !/^\/?$/.test(parsed!.pathname)) {
    config.fail(field, "<a string>", "expected no database after a sentinel's host and port (the primary's is sentinel.database)")
  }
  if (!/^\/?(\d+)?$/.test(parsed!.pathname)) {
    config.fail(field, "<a string>", "expected a database number after the host, such as redis://host:6379/2, or none")
  }
  // ignored by the client: ?db=3 (ioredis' form) put the user's jobs in database 0, silently
  if (parsed!.search !== "" || parsed!.hash !== "") {
    config.fail(field, "<a string>", "expected no ?query or #fragment (the client ignores them): the database is the path, such as redis://host:6379/3")
  }
  for (const part of [parsed!.username, parsed!.password]) {
    try {
      decodeURIComponent(part)
    } catch {
      config.fail(field, "<a string>", "expected a user and password whose %-escapes are valid (%40 for @, %3A for :)")
    }
  }
  return parsed!
}

/** A settle's flag from the scripts (`settleMany`): 1 written as asked, 2 ended cancelled instead, 0 nothing. */
const settledOf = (flag: number | undefined): Settled => flag === 2 ? "cancelled" : flag === 1

/** The most sentinels one store may name (three or five is usual). */
export const MAX_SENTINELS = 100

/** A sentinel's port where its URL names none (not the client's 6379: that is a data node's). */
export const SENTINEL_PORT = 26379

const sentinelOptions = (value: unknown): SentinelConfig => {
  config.object("sentinel", value)
  config.onlyKeys("sentinel.", value as object, ["name", "sentinels", "username", "password", "database"], {
    sentinelRootNodes: "sentinels",
    masterName: "name",
    db: "database"
  })
  const options = value as Record<string, unknown>
  const name = options.name
  // the sentinels' SENTINEL GET-MASTER-ADDR-BY-NAME takes one argument: no spaces
  if (typeof name !== "string" || !/^[^\s]{1,200}$/.test(name)) {
    config.fail("sentinel.name", name, "expected the primary's name as the sentinels monitor it (sentinel monitor <name> ...), 1 to 200 characters without spaces")
  }
  const list = options.sentinels
  if (!Array.isArray(list) || list.length === 0 || list.length > MAX_SENTINELS) {
    config.fail("sentinel.sentinels", Array.isArray(list) ? `<${list.length} URLs>` : list, `expected 1 to ${MAX_SENTINELS} sentinel URLs, such as ["redis://sentinel-0:26379"]`)
  }
  const sentinels = (list as Array<unknown>).map((entry, i) => {
    const parsed = redisUrl(`sentinel.sentinels[${i}]`, entry, { database: false })
    if (parsed.port === "") parsed.port = String(SENTINEL_PORT)
    return parsed
  })
  // one TLS setting for the whole deployment: the data nodes are reached as the sentinels are
  const tls = sentinels[0]!.protocol
  if (sentinels.some((url) => url.protocol !== tls)) {
    config.fail("sentinel.sentinels", "<URLs>", "expected every sentinel URL with one scheme, redis:// or rediss:// (the primary is reached with it too)")
  }
  // the client puts the address the sentinels name in place of this host and port
  const node = new URL(`${tls}//primary:6379`)
  if (options.username !== undefined) {
    if (typeof options.username !== "string" || options.username === "") config.fail("sentinel.username", options.username, "expected a non-empty string")
    node.username = encodeURIComponent(options.username as string)
  }
  if (options.password !== undefined) {
    const password = Redacted.isRedacted(options.password) ? Redacted.value(options.password as Redacted.Redacted<unknown>) : options.password
    if (typeof password !== "string" || password === "") {
      config.fail("sentinel.password", typeof password === "string" ? "<a string>" : password, "expected a non-empty string or Redacted string")
    }
    node.password = encodeURIComponent(password as string)
  }
  const database = options.database === undefined ? 0 : config.count("sentinel.database", options.database, 1_000_000)
  return {
    name: name as string,
    sentinels: sentinels.map((url) => Redacted.make(url.toString())),
    node: Redacted.make(`${node.toString()}/${database}`)
  }
}

export const options = (options: {
  readonly url?: unknown
  readonly prefix?: unknown
  readonly connectTimeout?: unknown
  readonly cluster?: unknown
  readonly sentinel?: unknown
}): Effect.Effect<Config, StoreError> =>
  Effect.mapError(
    config.checkPoolOptions((): Config => {
      config.object("options", options)
      // ignored, ioredis' keyPrefix left the default prefix: one shared with every other app's queues
      config.onlyKeys("", options, ["url", "prefix", "connectTimeout", "cluster", "sentinel"], {
        keyPrefix: "prefix",
        connectionTimeout: "connectTimeout",
        sentinels: "sentinel"
      })
      const sentinel = options.sentinel === undefined ? undefined : sentinelOptions(options.sentinel)
      if (sentinel !== undefined && options.url !== undefined) {
        config.fail("url", "<a string>", "expected url or sentinel, not both: through sentinels the primary is the one they name")
      }
      if (sentinel !== undefined && options.cluster !== undefined && options.cluster !== false) {
        config.fail("cluster", options.cluster, "expected no cluster with sentinel: a Redis Cluster fails over by itself, without sentinels")
      }
      if (sentinel === undefined && options.url === undefined) {
        config.fail("url", undefined, "expected a redis:// or rediss:// URL, or sentinel: { name, sentinels }")
      }
      if (sentinel === undefined) redisUrl("url", options.url, { database: true })
      // as given: the client parses it itself
      const url = sentinel === undefined
        ? (Redacted.isRedacted(options.url) ? Redacted.value(options.url as Redacted.Redacted<string>) : options.url as string)
        : "redis://sentinel"
      const prefix = options.prefix ?? "workpool"
      // no ':': a queue's keys are {<prefix>:<queue>}, and queue names may hold ':', so prefixes p and
      // p:x would share p's queue x:q as p:x's queue q; no braces: the prefix is in the hash tag
      if (typeof prefix !== "string" || !/^[A-Za-z0-9_.-]{1,100}$/.test(prefix)) {
        config.fail("prefix", prefix, "expected 1 to 100 letters, digits or _ . - (no ':', which ends the prefix in a queue's keys; no braces: it is in the hash tag)")
      }
      return {
        url: Redacted.make(url),
        prefix: prefix as string,
        connectTimeout: options.connectTimeout === undefined
          ? 10_000
          // a timer of the client's waits for it (connectWithin)
          : config.timerMillis("connectTimeout", options.connectTimeout),
        cluster: options.cluster === undefined ? false : config.boolean("cluster", options.cluster),
        sentinel,
        clock: "server"
      }
    }),
    config.storeOptionError
  )

export const reasonOf = (cause: unknown): string => {
  const error = cause as { message?: unknown; cause?: { message?: unknown } }
  // RedisError wraps the client's error
  const deepest = error?.cause?.message ?? error?.message
  return typeof deepest === "string" ? deepest : String(cause)
}

/** A job's hash (HGETALL, as a flat array) as a row. */
const toRow = (queue: string, flat: ReadonlyArray<string> | Record<string, string>): JobRow & { readonly seq: number } => {
  // a script returns the flat array; the client may answer HGETALL itself with an object
  let f: Record<string, string> = {}
  if (Array.isArray(flat)) for (let i = 0; i + 1 < flat.length; i += 2) f[flat[i]!] = flat[i + 1]!
  else f = flat as Record<string, string>
  const orNull = (text: string | undefined) => text === undefined || text === "" ? null : Number(text)
  return {
    id: f.id!,
    queue,
    task: f.task!,
    payload: f.payload!,
    priority: Number(f.priority),
    dedupKey: f.hasDedup === "1" ? f.dedup! : null,
    state: f.state as State,
    attempts: Number(f.attempts),
    maxAttempts: Number(f.max),
    timeout: Number(f.timeout),
    createdAt: Number(f.created),
    visibleAt: Number(f.visible),
    startedAt: orNull(f.started),
    finishedAt: orNull(f.finished),
    cancelRequested: f.cancel === "1",
    exit: f.exit ?? null,
    progress: f.progress ?? null,
    trace: f.trace ?? null,
    retry: f.retry ?? null,
    snoozes: Number(f.snoozes ?? 0),
    group: f.group ?? null,
    ...(f.waitingFor === undefined ? {} : { waitingFor: Number(f.waitingFor) }),
    ...(f.failedDep === undefined ? {} : { failedDependency: { id: f.failedDep, state: f.failedDepState as FailedDependency["state"] } }),
    expireAt: orNull(f.expire),
    seq: Number(f.seq)
  }
}

const strip = ({ seq: _, ...row }: JobRow & { readonly seq: number }): JobRow => row

/** Where each of `CLAIMED_FIELDS` is in a claimed job's values. */
const CLAIMED = Object.fromEntries(Scripts.CLAIMED_FIELDS.map((field, i) => [field, i])) as Record<
  (typeof Scripts.CLAIMED_FIELDS)[number],
  number
>

/** A claimed job (the claim's HMGET of `CLAIMED_FIELDS`; a missing field is null) as a row, and its rank. */
const claimedRow = (queue: string, v: ReadonlyArray<string | null>): { readonly job: JobRow; readonly rank: number } => {
  const orNull = (text: string | null | undefined) => text == null || text === "" ? null : Number(text)
  return {
    job: {
      id: v[CLAIMED.id]!,
      queue,
      task: v[CLAIMED.task]!,
      payload: v[CLAIMED.payload]!,
      priority: Number(v[CLAIMED.priority]),
      dedupKey: v[CLAIMED.hasDedup] === "1" ? v[CLAIMED.dedup]! : null,
      state: v[CLAIMED.state] as State,
      attempts: Number(v[CLAIMED.attempts]),
      maxAttempts: Number(v[CLAIMED.max]),
      timeout: Number(v[CLAIMED.timeout]),
      createdAt: Number(v[CLAIMED.created]),
      visibleAt: Number(v[CLAIMED.visible]),
      startedAt: orNull(v[CLAIMED.started]),
      finishedAt: orNull(v[CLAIMED.finished]),
      cancelRequested: v[CLAIMED.cancel] === "1",
      exit: v[CLAIMED.exit] ?? null,
      progress: v[CLAIMED.progress] ?? null,
      trace: v[CLAIMED.trace] ?? null,
      retry: v[CLAIMED.retry] ?? null,
      group: v[CLAIMED.group] ?? null,
      expireAt: orNull(v[CLAIMED.expire])
    },
    rank: Number(v[CLAIMED.rank])
  }
}

/**
 * A script with its SHA1, computed once here: the store sends `EVALSHA` itself (`evalsha` in
 * `make`). effect's `Redis.eval` looked the SHA up in an Effect `Cache` at every call and copied
 * the arguments twice over: CPU that every claim, settle and enqueue paid.
 */
interface Lua<R> {
  readonly lua: string
  readonly sha: string
  /** How many of the arguments are keys (EVALSHA's `numkeys`). */
  readonly keys: string
  /** The script's reply (a phantom: never set). */
  readonly reply?: R
}
/** A reap's answer that names its jobs (`Scripts.REAP_TOLD`): its count, and id, task, attempts, outcome, visible (-1: none) of each. */
type Told = readonly [number, ReadonlyArray<string | number>]

/** A queue's script declares two keys: its meta hash and its guard (see `run`). */
const script = <R>(lua: string, keys = 2): Lua<R> => ({ lua, sha: createHash("sha1").update(lua).digest("hex"), keys: String(keys) })

const SCRIPTS = {
  enqueue: script<[string, number, string?, string?]>(Scripts.ENQUEUE),
  enqueueTick: script<[string, number, string?, string?]>(Scripts.ENQUEUE_TICK),
  enqueueIndexed: script<[string, number, string?, string?]>(Scripts.ENQUEUE_INDEXED, 2),
  enqueueAll: script<Array<string | number>>(Scripts.ENQUEUE_ALL),
  enqueueGraph: script<[Array<string> | "missing", ...Array<string | number>]>(Scripts.ENQUEUE_GRAPH),
  time: script<[string, string]>(Scripts.TIME, 1),
  claim: script<[Array<Array<string | null>>, string, Array<number>, string, string, ("0" | "1")?]>(Scripts.CLAIM),
  peek: script<Look>(Scripts.PEEK),
  peekMany: script<Array<Look>>(Scripts.PEEK_MANY),
  heartbeat: script<[Array<string>, Array<string>]>(Scripts.HEARTBEAT),
  progress: script<number>(Scripts.PROGRESS),
  settle: script<Array<number>>(Scripts.SETTLE),
  reap: script<number>(Scripts.REAP),
  reapMany: script<Array<number>>(Scripts.REAP_MANY),
  reapTold: script<Told>(Scripts.REAP_TOLD),
  reapToldMany: script<Array<Told>>(Scripts.REAP_TOLD_MANY),
  cancel: script<"cancelled" | "requested" | "finished" | "missing">(Scripts.CANCEL),
  redrive: script<number>(Scripts.REDRIVE),
  purge: script<[Array<string>, number]>(Scripts.PURGE),
  retain: script<[Array<string>, number, number]>(Scripts.RETAIN),
  configure: script<number>(Scripts.CONFIGURE),
  counts: script<
    [number, number, number, number, number, number, number, Array<string>, [string, string, string, string], string, string, string, string, string | undefined, number | undefined]
  >(Scripts.COUNTS),
  list: script<[Array<Array<string>>, string, Array<string | number>]>(Scripts.LIST),
  listJobs: script<Array<Array<string>>>(Scripts.LIST_JOBS),
  latencies: script<[number, Array<string>]>(Scripts.LATENCIES),
  markDue: script<number>(Scripts.MARK_DUE),
  orphans: script<number>(Scripts.ORPHANS)
}

/** A queue's part of a script over several queues (`Scripts.many`) that failed, the others' answered. */
class QueueScriptFailed extends Error {}

/** How many jobs a queue's reap took back, telling `reaped` of each when its script named them (`Told`). */
const reapedIn = (queue: string, answer: number | Told, reaped: ((job: ReapedJob) => void) | undefined): number => {
  if (typeof answer === "number") return answer
  const [count, told] = answer
  for (let i = 0; i + 4 < told.length; i += 5) {
    const outcome = told[i + 3] as ReapedJob["outcome"]
    reaped?.({
      id: String(told[i]),
      queue,
      task: String(told[i + 1]),
      attempt: Number(told[i + 2]),
      outcome,
      runAt: outcome === "retried" ? Number(told[i + 4]) : undefined
    })
  }
  return count
}

/** A queue's look (`Scripts.PEEK`): its best jobs' scores and creation times, its soonest delayed job's dueIn and dueAt, whether its rate limit or its cap holds claims back. */
type Look = [Array<string>, string, string, "0" | "1"]

/** The server has no script of that SHA (restarted, `SCRIPT FLUSH`, or a Cluster node that never ran it). */
const isNoScript = (error: Redis.RedisError) => {
  const message = (error.cause as { message?: unknown } | undefined)?.message
  return typeof message === "string" && message.startsWith("NOSCRIPT")
}

/**
 * Lease tokens: 36 characters unique to the claim (this store instance's random part, then a
 * 12-digit counter), then `:` and the queue, so that a token finds its queue's slot. A counter
 * rather than a UUID per claim: the random part makes it unique across processes, the counter
 * within one. A claim reserves `limit` numbers and sends only the first: the script makes the
 * tokens of the jobs it takes, the same way (a claim of a large consumer sent `limit` tokens of 45
 * bytes at every wake-up, however few jobs there were).
 */
const makeTokens = () => {
  const random = crypto.randomUUID().replaceAll("-", "").slice(0, 24)
  let counter = 0
  return {
    random,
    /** The first of `n` fresh numbers. */
    reserve: (n: number) => {
      const first = counter
      counter += n
      return first
    },
    /** The token the claim script makes for number `n` (`string.format("%012d", n)`). */
    of: (n: number, queue: string) => `${random}${String(n).padStart(12, "0")}:${queue}`
  }
}

/**
 * The queue a new job's id names: the store makes it `<a random UUID>:<queue>` (an enqueue on a
 * Cluster then needs no index in another slot, and a lookup no index read). A repeatable job's
 * tick (`repeat:...`) and an id of an older version (a bare UUID) are not of this shape: the index
 * has them.
 */
const namedQueue = (id: string): string | undefined => {
  const queue = tokenQueue(id)
  return queue !== undefined && UUID.test(id.slice(0, 36)) ? queue : undefined
}
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** The queue a claim's token names, after its 36 characters and a ':' (see `tokens.of`); a job id's the same way. */
const tokenQueue = (token: string): string | undefined => token.length > 37 && token[36] === ":" ? token.slice(37) : undefined

/**
 * How long one BZPOPMIN blocks before it is sent again (a lost connection shows within this); an
 * idle watch looks for markers lost with a killed process (`ORPHANS`) as often.
 */
const BLOCK_SECONDS = 5

/** The most jobs one list script looks at (see `Scripts.LIST`). */
export const LIST_BUDGET = 1000

/** How many queues' list scripts a list of every queue has in flight at once. */
const LIST_CONCURRENCY = 16

/**
 * How many queues one script of a reap or of a claim's look takes on one server (`Scripts.many`):
 * its run blocks the server for all of them (an empty queue's look or reap: a few µs).
 */
export const MANY_QUEUES = 100

/** How many scripts of an operation across queues (`eachQueue`) are in flight at once. */
export const IN_FLIGHT = 32

/** `queues` in groups of at most `size`, taken lazily (see `eachQueue`). */
function* groupsOf(queues: Iterable<string>, size: number): Generator<ReadonlyArray<string>> {
  let group: Array<string> = []
  for (const queue of queues) {
    group.push(queue)
    if (group.length >= size) {
      yield group
      group = []
    }
  }
  if (group.length > 0) yield group
}

/** A list's order across queues: the oldest first, then by seq (a queue's order). */
const oldestFirst = (a: { readonly createdAt: number; readonly seq: number }, b: { readonly createdAt: number; readonly seq: number }) =>
  a.createdAt - b.createdAt || a.seq - b.seq

/** The most tokens one heartbeat script renews (see `beatQueue`). */
const BEAT_BATCH = 5000

/**
 * How long after a held delayed marker's time its store may take to claim (which moves its entry
 * in `B:held` on) before the other stores take it for dead and put the marker back. Too short only
 * costs a wake-up elsewhere; a process killed while holding one delays its job by up to this and a
 * `BLOCK_SECONDS`, not a poll.
 */
const HOLD_GRACE = 5000

/** An idle consumer's wait that names no tasks (see `idleTasks`): it takes jobs of any task. */
const ANY_TASK = "\u0000any"

/** The queues a store remembers having added to its list of queues (see `knownQueue`). */
const KNOWN_QUEUES = 1024

/** How many queues' retention scripts a `retain` sends together. */
const RETAIN_IN_FLIGHT = 16

/**
 * A queue's keys' base, their hash tag: `{<prefix>:<queue>}`, which the queue's first '}' would end.
 * So a name holding '}' could make one queue's key another's (queue "a", task "x}:meta": its ready
 * set `{p:a}:ready:x}:meta` is queue "a}:ready:x"'s meta hash); such a name is written
 * `{<prefix>%<name>}`, its '%' and '}' escaped as `%25` and `%7D`. A name without '}' keeps the keys
 * it always had. No two queues share a base: the first character after the prefix (which is letters,
 * digits and `_.-`) is ':' for a plain name, '%' for an escaped one (`}` for the store's own keys),
 * and the base ends at the first '}', where each suffix (`:meta`, `:ready:<task>`, `:job:<id>`...)
 * starts; a task's name, after `:ready:`, then needs no escape.
 */
export const queueBase = (prefix: string, queue: string): string =>
  queue.includes("}") ? `{${prefix}%${queue.replace(/[%}]/g, (c) => c === "%" ? "%25" : "%7D")}}` : `{${prefix}:${queue}}`

export const make = (cfg: Config): Effect.Effect<Store, StoreError, Redis.Redis | Scope.Scope> =>
  Effect.gen(function*() {
    const redis = yield* Redis.Redis
    const clock = yield* Clock.Clock
    const fail = (operation: string) => (cause: unknown) => new StoreError({ operation, reason: reasonOf(cause) })
    const signal = makeSignal({ clock })
    const cancels = makeSignal()
    const closing = yield* Closing.make([signal, cancels])
    const tokens = makeTokens()
    const QUEUES = `{${cfg.prefix}}:queues`
    // the server's time (TIME), this machine's clock corrected by the offset its last answers give.
    // On a Cluster one node's, the list of queues' (a script routed by that key): TIME alone has no
    // key, and went to each node in turn, the store's time jumping between their clocks each second
    const askTime = cfg.cluster
      ? Effect.suspend(() => evalsha(SCRIPTS.time, [QUEUES]))
      : redis.send<[string, string]>("TIME")
    const time = ServerTime.make(clock, Effect.map(askTime, ([seconds, micros]) =>
      Number(seconds) * 1000 + Math.floor(Number(micros) / 1000)))
    const base = (queue: string) => queueBase(cfg.prefix, queue)
    const meta = (queue: string) => `${base(queue)}:meta`
    const IDS = `{${cfg.prefix}}:ids`
    /**
     * The queues that have had a retention (`Store.retain` visits only these): added before the
     * configure's script that sets one, so that no queue has a retention and is missing here (a
     * process dying in between leaves an entry whose queue has none, which costs a visit that
     * deletes nothing). Never removed: a removal racing another process's new retention could
     * leave that queue out for good; an entry is one member per queue that ever had one.
     */
    const RETAINED_QUEUES = `{${cfg.prefix}}:retained`
    const CANCEL_CHANNEL = `${cfg.prefix}:cancel`
    const NOW = () => cfg.clock === "effect" ? String(clock.currentTimeMillisUnsafe()) : ""

    /**
     * A change wakes this process's waiters of its queue (and its awaiters), not the consumers of
     * other queues, which would each claim for nothing: at once, or (`in`) when the job it delayed is
     * due. `queue` `UNKEYED` wakes only the awaiters; undefined, everyone.
     */
    const op = <A>(operation: string, effect: Effect.Effect<A, unknown>, changed: (a: A) => Wakes = () => undefined) =>
      effect.pipe(
        Effect.mapError(fail(operation)),
        Effect.tap((a) => {
          const wakes = changed(a)
          return wakes === undefined ? Effect.void : Effect.sync(() => {
            for (const wake of Array.isArray(wakes) ? wakes as ReadonlyArray<Wake> : [wakes as Wake]) {
              signal.notifyIn(wake.in ?? 0, wake.queue)
            }
          })
        })
      )
    /**
     * Runs a script by its SHA. A call that finds the server without it sends it whole, by `EVAL`,
     * which caches it there (calls in flight together each send it): one more round trip after a
     * restart or a `SCRIPT FLUSH`, and on a Cluster on the key's node (EVAL is routed by its key, as
     * EVALSHA; SCRIPT LOAD has no key). Sending it again is safe: a `NOSCRIPT` ran nothing.
     */
    const evalsha = <R>(script: Lua<R>, keysAndArgs: ReadonlyArray<string>, keys = script.keys): Effect.Effect<R, Redis.RedisError> =>
      redis.send<R>("EVALSHA", script.sha, keys, ...keysAndArgs).pipe(
        Effect.catchIf(isNoScript, () => redis.send<R>("EVAL", script.lua, keys, ...keysAndArgs))
      )
    /**
     * Runs a queue's script. It declares the queue's meta hash and `B:guard`, a key never written, so
     * that Redis refuses it while the queue's Cluster slot moves: a script builds its other keys,
     * which Redis's guard for a moving slot does not see, and ran on whichever part of the queue the
     * node held (a second `seq`, jobs popped from a ready set whose hashes were still on the other
     * node). With a key missing on both nodes, the source answers ASK or TRYAGAIN and the target
     * TRYAGAIN (a request of several keys, not all there) until the slot is settled; on a stable
     * slot Redis looks up no key.
     *
     * On one Redis (no slots, nothing to guard) the second key is the id index instead, which the
     * scripts may then read (a dependency of another queue whose id names none: a repeat's tick);
     * on a Cluster it is another slot, and a script that read it failed (CROSSSLOT).
     */
    const second = (queue: string) => cfg.cluster ? `${base(queue)}:guard` : IDS
    const run = <K extends keyof typeof SCRIPTS>(name: K, queue: string, ...args: ReadonlyArray<string>) =>
      evalsha(SCRIPTS[name] as Lua<(typeof SCRIPTS)[K] extends Lua<infer R> ? R : never>, [meta(queue), second(queue), ...args])
    /**
     * A queue's script over several queues at once (`Scripts.many`: one server only), each queue's
     * keys as `run` gives them: its answers, one per queue, in order. A script that stopped at its
     * budget of jobs moved (`MANY_BUDGET`) answered the first queues only: `eachQueue` sends the rest
     * in another script, bounded on its own.
     */
    const runMany = <R>(script: Lua<ReadonlyArray<R>>, queues: ReadonlyArray<string>, ...args: ReadonlyArray<string>) =>
      Effect.map(
        evalsha(script, [...queues.flatMap((queue) => [meta(queue), second(queue)]), ...args], String(2 * queues.length)),
        (reply) =>
          reply.map((answer, i) =>
            // a queue's part that failed says so in text (no answer of a queue's is one)
            typeof answer === "string" ? new QueueScriptFailed(`the script of queue ${JSON.stringify(queues[i])} failed: ${(answer as string).slice(8)}`) : answer
          )
      )
    /**
     * How many queues one script of an operation across queues takes (`eachQueue`'s `size`): on one
     * server `MANY_QUEUES` if it has a `Scripts.many` form, on a Cluster one (a script runs in one slot).
     */
    const manyQueues = cfg.cluster ? 1 : MANY_QUEUES
    const queues = redis.send<Array<string>>("SMEMBERS", QUEUES)
    /**
     * Adds a queue to the list of queues once per store instance: a round trip saved per enqueue.
     * At most `KNOWN_QUEUES` are remembered (a queue per tenant would be a name kept per tenant for
     * the store's life); past that they are forgotten, and their next enqueue adds them again.
     */
    const added = new Set<string>()
    const knownQueue = (queue: string) =>
      added.has(queue) ? Effect.void : Effect.tap(redis.send("SADD", QUEUES, queue), () =>
        Effect.sync(() => {
          if (added.size >= KNOWN_QUEUES) added.clear()
          added.add(queue)
        }))
    /**
     * After an enqueue's script: one that made its queue's seq (the queue's first job, or its first
     * since a purge dropped the queue) adds the queue to the list again, whatever `added` says (a
     * purge may have taken it out since), after the script: see `purge` for the order that keeps
     * it listed.
     */
    const relist = (queue: string, madeQueue: string | number | undefined) =>
      madeQueue === "1" ? Effect.catch(Effect.asVoid(redis.send("SADD", QUEUES, queue)), () => relistInBackground(queue)) : Effect.void
    /**
     * The re-add of a queue after an enqueue's script whose caller will not wait for it (interrupted
     * while the script waits: the script still runs when the server gets to it, a command sent is not
     * taken back) or whose own re-add failed: in the background, in the store's scope, by a look at
     * the queue's seq sent behind the script on its node's connection (so it runs after it), tried
     * again each second until done or the store closes. Without it the job was stored in a queue out
     * of the list (never reaped, purged or listed with every queue); and a failed re-add failed the
     * enqueue of a job that was stored, which its caller's retry stored twice.
     */
    const relistInBackground = (queue: string) =>
      Effect.asVoid(Effect.forkIn(relistIfMade(queue).pipe(Effect.retry(Schedule.spaced("1 second")), Effect.ignore), scope))
    /** Adds the queue to the list if its seq exists: an enqueue made it again after a drop. */
    const relistIfMade = (queue: string) =>
      Effect.flatMap(redis.send<number>("EXISTS", `${base(queue)}:seq`), (made) => made === 1 ? Effect.asVoid(redis.send("SADD", QUEUES, queue)) : Effect.void)
    /** The queue of a job id: named in it (a new job's), else in the id index (a repeatable job's tick). */
    const queueOfId = (id: string): Effect.Effect<string | null, Redis.RedisError> => {
      const named = namedQueue(id)
      return named !== undefined ? Effect.succeed(named) : redis.send<string | null>("HGET", IDS, id)
    }

    // --- wake-ups: BZPOPMIN on a queue's marker while a consumer of that queue waits here
    /**
     * The consumers of each queue waiting here after a claim that found nothing (`wait`'s `idleOn`).
     * A queue's watch pops its marker only while one of them waits: a process whose idle consumers
     * are all on other queues would take the wake-up from another process's idle consumer of it.
     */
    const idle = new Map<string, number>()
    const idleOn = (queue: string) => idle.get(queue) ?? 0
    /**
     * The tasks of those consumers, per queue (`ANY_TASK`: a wait that named none), with how many
     * wait for each: a watch's look wakes them for ready jobs of these only. Jobs of other tasks
     * (another process's consumers') made every idle consumer here claim nothing at each look.
     */
    const idleTasks = new Map<string, Map<string, number>>()
    /** The tasks a look at `queue` is for: undefined for any task. */
    const lookTasks = (queue: string): ReadonlyArray<string> | undefined => {
      const tasks = idleTasks.get(queue)
      return tasks === undefined || tasks.has(ANY_TASK) ? undefined : [...tasks.keys()]
    }
    const idleChanged = makeSignal()
    const watched = new Set<string>()
    /**
     * The delayed jobs' markers this store took for its idle consumers (queue → the soonest due
     * time, server ms): they wake then, and other processes' do not (they did not see them). So
     * this store answers for that queue's soonest delayed job until a claim of the queue no idle
     * consumer here backs up fills its consumer (which may be busy then): that hands it back.
     */
    const dueMarkers = new Map<string, number>()
    const serverNow = time.nowUnsafe
    /** Puts a marker back; `held`: it is the one this store held (its entry in `B:held` goes). */
    const markDue = (queue: string, at: string, member = "1", held = false) =>
      run("markDue", queue, at, member, held ? tokens.random : "")
    /**
     * A queue's watch, until no consumer here has waited on it for `WATCH_LINGER`: then it ends, its
     * connection back, and the next wait starts another (`startWatching`). Answers whether it ended so.
     */
    const watchOnce = (queue: string) =>
      Effect.gen(function*() {
        const connection = yield* redis.reserve
        // at its first wait, and after each BZPOPMIN that timed out: markers lost with a killed process
        let look = true
        while (true) {
          if (idleOn(queue) === 0) {
            const since = yield* Clock.currentTimeMillis
            while (idleOn(queue) === 0) {
              const left = WATCH_LINGER - ((yield* Clock.currentTimeMillis) - since)
              // checked and dropped at once: a wait from now on starts a new watch
              if (left <= 0) {
                watched.delete(queue)
                return true
              }
              yield* idleChanged.wait(left)
            }
          }
          // ready jobs no marker tells of (lost, or taken by a store that claims other tasks): this
          // store's idle consumers of the queue claim
          if (look) {
            const tasks = lookTasks(queue)
            const orphaned = yield* run("orphans", queue, NOW(), String(HOLD_GRACE), tasks === undefined ? "1" : "0", ...(tasks ?? []))
            if (orphaned === 1) signal.notify(queue)
          }
          const popped = yield* connection.send<unknown>("BZPOPMIN", `${base(queue)}:marker`, String(BLOCK_SECONDS))
          look = popped === null || (Array.isArray(popped) && popped.length === 0)
          if (look) continue
          // a delayed job's marker ("1", scored with its time on the server's clock): wake then (on a
          // Cluster, the queue's node's time on the store's node's clock: nodes apart, that far off)
          const [, member, score] = popped as [string, string, string | number]
          const at = Number(score)
          const dueIn = member === "1" ? at - serverNow() : 0
          // no consumer of this queue waits here (any more): pass it on to another process
          if (idleOn(queue) === 0) yield* markDue(queue, dueIn > 0 ? String(at) : "0", dueIn > 0 ? "1" : "0")
          else {
            signal.notifyIn(dueIn, queue)
            if (dueIn > 0 && !(at >= (dueMarkers.get(queue) ?? Infinity))) {
              dueMarkers.set(queue, at)
              // the others' watches leave it to this store while it lives (see ORPHANS)
              yield* redis.send("ZADD", `${base(queue)}:held`, String(at), tokens.random)
            }
          }
        }
      }).pipe(
        Effect.scoped,
        // a lost connection: a fresh one, after a pause; the poll covers the gap
        Effect.catch(() => Effect.sleep(1000).pipe(Effect.andThen(Effect.sync(() => (signal.notify(queue), false))))),
        Effect.provideService(Clock.Clock, Clock.Clock.defaultValue())
      )
    const watch = (queue: string) =>
      Effect.gen(function*() {
        while (!(yield* watchOnce(queue))) {}
        // the delayed job's marker it held goes back to the others' watches (as at the store's close)
        const at = dueMarkers.get(queue)
        if (at !== undefined && !watched.has(queue)) {
          dueMarkers.delete(queue)
          yield* markDue(queue, String(at), "1", true).pipe(Effect.timeout(1000), Effect.ignore)
        }
      }).pipe(Effect.provideService(Clock.Clock, Clock.Clock.defaultValue()))
    const scope = yield* Effect.scope
    // a store that stops (its process shuts down) hands back the markers it took, due or not: the
    // other processes' idle consumers wake at those times, not a poll later (runs after the watches,
    // forked later, are interrupted); a server that does not answer (commands have no timeout) does
    // not hold the shutdown past a second: those jobs are then left to the others' poll
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        const back = [...dueMarkers]
        dueMarkers.clear()
        return Effect.forEach(back, ([queue, at]) => markDue(queue, String(at), "1", true), { discard: true })
      }).pipe(Effect.timeout(1000), Effect.ignore, Effect.provideService(Clock.Clock, Clock.Clock.defaultValue()))
    )
    const startWatching = (names: ReadonlyArray<string>) =>
      Effect.forEach(names, (queue) => {
        if (watched.has(queue)) return Effect.void
        watched.add(queue)
        return Effect.asVoid(Effect.forkIn(watch(queue), scope))
      }, { discard: true })

    // --- cancels from any process: SUBSCRIBE, subscribed again whenever its connection ends
    yield* Effect.gen(function*() {
      const messages = yield* redis.subscribe(CANCEL_CHANNEL)
      while (true) {
        yield* Queue.take(messages)
        cancels.notify()
      }
    }).pipe(
      Effect.scoped,
      // subscribed again (on a Cluster, through another node if its node is down): a cancel published
      // in between was not heard, so the heartbeats look for cancels at once
      Effect.catch(() => Effect.sleep(1000).pipe(Effect.andThen(Effect.sync(() => cancels.notify())))),
      Effect.forever,
      Effect.provideService(Clock.Clock, Clock.Clock.defaultValue()),
      Effect.forkScoped
    )

    /** A job's fields as the scripts take them (see redisScripts.ts `addJob`), after `before`. */
    const jobFields = (job: FreshJob, id: string, before: Array<string> = []) => {
      before.push(
        id,
        job.task,
        job.payload,
        String(job.priority),
        job.dedupKey ?? "",
        job.dedupKey === null ? "0" : "1",
        String(job.maxAttempts),
        String(job.timeout),
        String(job.delay),
        job.runAt === undefined ? "" : String(job.runAt),
        job.trace ?? "",
        job.retry ?? "",
        job.dedupWhile === "queued" ? "1" : "",
        job.dedupFor === undefined ? "" : String(job.dedupFor),
        job.dedupReplace ?? "",
        job.group ?? "",
        job.expireIn === undefined ? "" : String(job.expireIn)
      )
      return before
    }
    const enqueueArgs = (job: NewJob, id: string) => jobFields(job, id, [NOW()])
    /**
     * A new job: its id names its queue (see `namedQueue`), so it needs no index, and no other
     * queue can hold it: one script in the queue's slot, on a Cluster too.
     */
    const enqueueNamed = (job: NewJob) => run("enqueue", job.queue, ...enqueueArgs(job, `${crypto.randomUUID()}:${job.queue}`))
    /** A tick's last argument: its notAfter, checked against the script's clock. */
    const notAfter = (job: NewJob) => job.notAfter === undefined ? "" : String(job.notAfter)
    /** An enqueue script's answer: id, created (1, 0, -1 late), ms until due, "1" if it made the queue's seq. */
    type Enqueued = [string, number, string?, string?]
    /**
     * A tick on a Cluster whose id the index gives another queue: that queue's job holds the id (the
     * answer); or no job there: an orphan entry (see the header) or another enqueue of it on its
     * way, which the index's slot and the other queue's cannot tell apart. Answered "taken", this
     * tick would be stored nowhere: a failure instead, which the repeat tries again.
     */
    const indexedElsewhere = (id: string, owner: string | null) =>
      Effect.flatMap(owner === null ? Effect.succeed(0) : redis.send<number>("EXISTS", `${base(owner)}:job:${id}`), (held) =>
        held === 1 ? Effect.succeed<Enqueued>([id, 0]) : Effect.fail(
          new Error(`the id index names queue ${JSON.stringify(owner)} for job ${JSON.stringify(id)}, which does not hold it (an enqueue of it on its way, or one that failed): try again`)
        ))
    /**
     * A repeatable job's tick on one Redis: the script checks and writes the id index too, and looks
     * at the queue the index gives the id, if another (one round trip, atomic: an entry whose queue
     * does not hold the id is an orphan, which the script removes).
     */
    const enqueueOne = (job: NewJob, id: string) =>
      evalsha(SCRIPTS.enqueueIndexed, [meta(job.queue), IDS, ...enqueueArgs(job, id), job.queue, notAfter(job)])
    /**
     * A repeatable job's tick on a Cluster: the id index is in another slot than the queue's, so it
     * is written first (a job is never without it) and the script runs after it (two round trips).
     */
    const enqueueCluster = (job: NewJob, id: string) =>
      Effect.gen(function*() {
        const fresh = yield* redis.send<number>("HSETNX", IDS, id, job.queue)
        const owner = fresh === 1 ? job.queue : yield* queueOfId(id)
        if (owner !== job.queue) return yield* indexedElsewhere(id, owner)
        const result: Enqueued = yield* run("enqueueTick", job.queue, ...enqueueArgs(job, id), notAfter(job))
        // a dedup key held by another job, or past its notAfter: this id was never stored
        if (fresh === 1 && (result[0] !== id || result[1] === -1)) yield* redis.send("HDEL", IDS, id)
        return result
      })
    /** An enqueue's script and its `relist`, which `relistInBackground` does if its caller is interrupted while they wait. */
    const relisting = <A, E>(queue: string, stored: Effect.Effect<A, E>) => Effect.onInterrupt(stored, () => relistInBackground(queue))
    const enqueue = (job: NewJob) =>
      job.after !== undefined && job.after.length > 0
        ? Effect.map(enqueueGraph([job], () => "after"), ([result]) => result!)
        : enqueueWithout(job)
    const enqueueWithout = (job: NewJob) =>
      op(
        "enqueue",
        Effect.gen(function*() {
          yield* knownQueue(job.queue)
          const [id, created, dueIn] = yield* relisting(
            job.queue,
            Effect.tap(
              job.id === undefined ? enqueueNamed(job) : cfg.cluster ? enqueueCluster(job, job.id) : enqueueOne(job, job.id),
              (result) => relist(job.queue, result[3])
            )
          )
          // a created job's time, or a debounced holder's ("" for another hit)
          return { id, created: created === 1, late: created === -1, dueIn: dueIn === undefined || dueIn === "" ? undefined : Number(dueIn) }
        }),
        // a delayed job: this process's waiters wake at its time
        (result) => result.created || result.dueIn !== undefined ? { queue: job.queue, in: result.dueIn ?? 0 } : undefined
      ).pipe(Effect.map(({ created, id, late }) => late ? { id, created, late: true as const } : { id, created }))

    /**
     * A queue's jobs as the one JSON argument of its script, or a failure saying the batch is too large:
     * past V8's longest string (2 ** 29 - 24) `JSON.stringify` throws a RangeError, and a script's
     * argument is at most 512 MB anyway (the server's proto-max-bulk-len). Split, it would not be atomic.
     */
    const scriptJson = (fields: Array<Array<string>>) =>
      Effect.try({
        try: () => JSON.stringify(fields),
        catch: (error) =>
          error instanceof RangeError
            ? new Error(`a queue's jobs in one call are too large for one script (${fields.length} jobs): split the batch`)
            : error
      })

    /**
     * One script per queue (atomic there, and in its Cluster slot), each queue's jobs in their order,
     * `IN_FLIGHT` queues' scripts at once (one after another, 30,000 jobs in 10,000 queues took
     * 7.5-8 s); a failure leaves the jobs of the queues whose scripts ran stored.
     */
    const enqueueAll = (jobs: ReadonlyArray<FreshJob>) =>
      jobs.some((job) => (job.after?.length ?? 0) + (job.afterItems?.length ?? 0) > 0)
        ? enqueueGraph(jobs, (i) => `items[${i}].options.after`)
        : enqueueAllWithout(jobs)

    /**
     * On a Cluster, a job's dependencies must be of its own queue (its slot: the script that ends one
     * releases its dependents in the same step) and there: `InvalidJobOptions` (`field` names the
     * job's option) or `JobNotFound` before anything is stored. On one Redis the script checks.
     */
    const clusterDependencies = (jobs: ReadonlyArray<FreshJob>, field: (i: number) => string) =>
      Effect.forEach(jobs, (job, i) =>
        Effect.gen(function*() {
          const other = (value: string, queue: string) =>
            new InvalidJobOptions({
              field: field(i),
              value,
              reason: `on a Redis Cluster a job's dependencies must be of its own queue (${JSON.stringify(job.queue)}, one slot, so that the script ending one releases its dependents at once), not of queue ${JSON.stringify(queue)}`
            })
          for (const k of job.afterItems ?? []) {
            if (jobs[k]!.queue !== job.queue) return yield* Effect.fail(other(`{ item: ${k} }`, jobs[k]!.queue))
          }
          for (const id of job.after ?? []) {
            const queue = yield* Effect.mapError(queueOfId(id), fail("enqueue"))
            if (queue === null) return yield* Effect.fail(new JobNotFound({ id }))
            if (queue !== job.queue) return yield* Effect.fail(other(id, queue))
            const there = yield* Effect.mapError(redis.send<number>("EXISTS", `${base(queue)}:job:${id}`), fail("enqueue"))
            if (there === 0) return yield* Effect.fail(new JobNotFound({ id }))
          }
        }), { discard: true })

    /**
     * Jobs with dependencies (`NewJob.after`, `FreshJob.afterItems`): on one Redis one script for the
     * whole call, whatever its queues (atomic: a graph across queues is stored whole or not at all);
     * on a Cluster one per queue (see `clusterDependencies`), each atomic in its slot.
     */
    const enqueueGraph = (jobs: ReadonlyArray<FreshJob & { readonly id?: string | undefined }>, field: (i: number) => string) =>
      Effect.gen(function*() {
        if (cfg.cluster) yield* clusterDependencies(jobs, field)
        const groups: Array<Array<number>> = [[...jobs.keys()]]
        if (cfg.cluster) {
          const byQueue = new Map<string, Array<number>>()
          jobs.forEach((job, i) => byQueue.set(job.queue, [...byQueue.get(job.queue) ?? [], i]))
          groups.splice(0, 1, ...byQueue.values())
        }
        const stored = yield* op(
          "enqueue",
          Effect.gen(function*() {
            const out = new Array<{ readonly id: string; readonly created: boolean }>(jobs.length)
            const wakes: Array<Wake> = []
            for (const indexes of groups) {
              const local = new Map(indexes.map((i, k) => [i, k]))
              for (const i of indexes) yield* knownQueue(jobs[i]!.queue)
              const fields = yield* scriptJson(indexes.map((i) => {
                const job = jobs[i]!
                const row: Array<unknown> = jobFields(job, job.id ?? `${crypto.randomUUID()}:${job.queue}`)
                row.push(job.queue, job.after ?? [], job.afterFailure ?? "", (job.afterItems ?? []).map((k) => local.get(k)!))
                return row as Array<string>
              }))
              const queue = jobs[indexes[0]!]!.queue
              const [made, ...reply] = yield* relisting(queue, run("enqueueGraph", queue, NOW(), fields))
              if (made === "missing") return { missing: reply[0] as string, out, wakes }
              for (const q of made) yield* relist(q, "1")
              indexes.forEach((i, k) => {
                out[i] = { id: reply[3 * k] as string, created: reply[3 * k + 1] === 1 }
                const due = reply[3 * k + 2]
                if (due !== "") wakes.push({ queue: jobs[i]!.queue, in: Number(due) })
              })
            }
            return { missing: undefined, out, wakes }
          }),
          (result) => result.wakes.length === 0 ? undefined : result.wakes
        )
        if (stored.missing !== undefined) return yield* Effect.fail(new JobNotFound({ id: stored.missing }))
        return stored.out
      })

    const enqueueAllWithout = (jobs: ReadonlyArray<FreshJob>) => {
      const byQueue = new Map<string, Array<number>>()
      jobs.forEach((job, i) => {
        const indexes = byQueue.get(job.queue)
        if (indexes === undefined) byQueue.set(job.queue, [i])
        else indexes.push(i)
      })
      return op(
        "enqueue",
        Effect.gen(function*() {
          const out = new Array<{ readonly id: string; readonly created: boolean }>(jobs.length)
          const wakes: Array<Wake> = []
          yield* Effect.forEach(byQueue, ([queue, indexes]) =>
            Effect.gen(function*() {
              yield* knownQueue(queue)
              const fields = yield* scriptJson(indexes.map((i) => jobFields(jobs[i]!, `${crypto.randomUUID()}:${queue}`)))
              const reply = yield* relisting(queue, Effect.tap(run("enqueueAll", queue, NOW(), fields), (reply) => relist(queue, reply[1])))
              indexes.forEach((i, k) => out[i] = { id: reply[2 + 2 * k] as string, created: reply[3 + 2 * k] === 1 })
              if (reply[0] !== "") wakes.push({ queue, in: Number(reply[0]) })
            }), { concurrency: IN_FLIGHT, discard: true })
          return { out, wakes }
        }),
        // each queue's consumers wake once, at its soonest job's time
        (result) => result.wakes.length === 0 ? undefined : result.wakes
      ).pipe(Effect.map(({ out }) => out))
    }

    const getRow = (id: string) =>
      Effect.gen(function*() {
        const queue = yield* queueOfId(id)
        if (queue === null) return undefined
        const flat = yield* redis.send<Array<string> | Record<string, string>>("HGETALL", `${base(queue)}:job:${id}`)
        return Object.keys(flat).length === 0 ? undefined : strip(toRow(queue, flat))
      })

    const progressOf = (id: string) =>
      Effect.gen(function*() {
        const queue = yield* queueOfId(id)
        if (queue === null) return undefined
        const [state, progress] = yield* redis.send<[string | null, string | null]>("HMGET", `${base(queue)}:job:${id}`, "state", "progress")
        return state === null || state === undefined ? undefined : { state: state as State, progress: progress ?? null }
      })

    /**
     * A queue's jobs of the filter's states (none: every state), oldest first, at most `limit`: a
     * script per `LIST_BUDGET` jobs looked at, by seq or in the sets of those states (see
     * `Scripts.LIST`); then, for the latter, the oldest `limit` of what they found.
     */
    const listQueue = (queue: string, filter: ListFilter) =>
      Effect.gen(function*() {
        const rows: Array<JobRow & { readonly seq: number }> = []
        const limit = filter.limit
        const waiting = filter.waiting ?? ""
        const expired = filter.expired === true ? "1" : ""
        const states = filter.states ?? []
        let found: Array<readonly [number, string]> = []
        // each script keeps its best `limit`; the best of them all, each once (a job that moved
        // between the sets walked may be met twice), cut when twice the limit: a sort per script
        // of 100,000 (a list of 100,000 of a big state) took seconds in all
        const best = () => {
          found = [...new Map(found.map((pair) => [pair[1], pair])).values()].sort((a, b) => a[0] - b[0]).slice(0, limit)
        }
        let cursor = ""
        do {
          const [flats, next, candidates] = yield* run("list", queue, String(limit - rows.length), String(LIST_BUDGET), NOW(), waiting, expired, cursor, ...states)
          for (const flat of flats) rows.push(toRow(queue, flat))
          for (let i = 0; i + 1 < candidates.length; i += 2) found.push([Number(candidates[i]), String(candidates[i + 1])])
          if (found.length >= 2 * limit) best()
          cursor = next
        } while (cursor !== "" && rows.length < limit)
        best()
        for (let i = 0; i < found.length; i += LIST_BUDGET) {
          const ids = found.slice(i, i + LIST_BUDGET).map((pair) => pair[1])
          const flats = yield* run("listJobs", queue, NOW(), waiting, expired, String(ids.length), ...ids, ...states)
          for (const flat of flats) rows.push(toRow(queue, flat))
        }
        return rows
      })

    /**
     * The oldest `limit` jobs of the filter across `names`: each queue's oldest first, read with a
     * growing limit (the first a fair share of `limit`, each next one twice the last), a queue read
     * again only while its unread jobs could still be among them. Each queue read up to `limit` (any
     * queue's could be the oldest) was `limit` × queues rows read and held for a list of `limit`:
     * 1,000 over 10,000 queues (a queue per tenant), 10 million.
     */
    const listAcross = (names: ReadonlyArray<string>, filter: ListFilter) =>
      Effect.gen(function*() {
        const limit = filter.limit
        const cursors = names.map((queue) => ({ queue, rows: [] as Array<JobRow & { readonly seq: number }>, more: true, size: 0 }))
        let reading = cursors
        const first = Math.max(1, Math.ceil(limit / Math.max(1, names.length)))
        for (;;) {
          // a queue read again from its start: a doubling limit reads at most twice its last
          yield* Effect.forEach(reading, (cursor) => {
            const size = cursor.size === 0 ? first : Math.min(limit, cursor.size * 2)
            return Effect.map(listQueue(cursor.queue, { ...filter, limit: size }), (rows) => {
              cursor.rows = rows.sort(oldestFirst)
              cursor.more = rows.length === size && size < limit
              cursor.size = size
            })
          }, { concurrency: LIST_CONCURRENCY, discard: true })
          const listed = cursors.flatMap((cursor) => cursor.rows).sort(oldestFirst).slice(0, limit)
          const end = listed.length < limit ? undefined : listed[limit - 1]!
          // a queue with more to read, whose last job read is before the list's end: its next may be in it
          reading = cursors.filter((cursor) => cursor.more && (end === undefined || oldestFirst(cursor.rows[cursor.rows.length - 1]!, end) < 0))
          if (reading.length === 0) return listed
        }
      })

    const list = (filter: ListFilter) =>
      op(
        "list",
        Effect.gen(function*() {
          // no state asked for: none listed (the script reads an empty list as every state)
          if (filter.states !== undefined && filter.states.length === 0) return []
          const rows = filter.queue === undefined
            ? yield* Effect.flatMap(queues, (names) => listAcross(names, filter))
            : yield* listQueue(filter.queue, filter)
          return rows.sort(oldestFirst).map(strip)
        })
      )

    /** Runs a script on the queue of a job id (and says which); `missing` if no queue holds it. */
    const byId = <A>(
      id: string,
      missing: A,
      f: (queue: string) => Effect.Effect<A, Redis.RedisError>
    ): Effect.Effect<readonly [string | undefined, A], Redis.RedisError> =>
      Effect.flatMap(
        queueOfId(id),
        (queue): Effect.Effect<readonly [string | undefined, A], Redis.RedisError> =>
          queue === null ? Effect.succeed([undefined, missing]) : Effect.map(f(queue), (a) => [queue, a])
      )

    const cancel = (id: string) =>
      op(
        "cancel",
        byId(id, "missing" as const, (queue) => run("cancel", queue, NOW(), id, CANCEL_CHANNEL)),
        ([, result]) => {
          if (result === "requested") cancels.notify()
          // its awaiters look: no job of its queue became claimable
          return result === "cancelled" || result === "requested" ? { queue: UNKEYED } : undefined
        }
      ).pipe(Effect.map(([, result]) => result))

    const redrive = (id: string) =>
      op(
        "redrive",
        byId(id, false, (queue) => Effect.map(run("redrive", queue, NOW(), id), (n) => n === 1)),
        ([queue, done]) => done ? { queue } : undefined
      ).pipe(Effect.map(([, done]) => done))

    /**
     * A queue the purge script dropped (no job left: its keys gone, its seq too) leaves the list of
     * queues; an enqueue since (a queue per tenant: its next job) put it back. The list is in another
     * slot than the queue on a Cluster, so the drop is ordered against a racing enqueue by the seq:
     * the enqueue's script makes it again and re-adds the queue after (`relist`); this removal comes
     * after the drop, and the look at the seq after the removal, which re-adds the queue if an
     * enqueue made it meanwhile. An enqueue's re-add before this removal is undone by it, then
     * redone by the look, which follows it; one after it stands. A process killed between the
     * removal and the look, while such an enqueue runs, or an enqueue's process killed between its
     * script and its re-add (one Redis too: two commands), leaves that queue out of the list until an
     * enqueue or configure of a store instance that has not added it yet (a process started since):
     * its jobs are still claimed, but not reaped, purged or listed with every queue meanwhile.
     */
    const unlist = (queue: string) =>
      Effect.gen(function*() {
        yield* redis.send("SREM", QUEUES, queue)
        added.delete(queue)
        // a look that fails (a connection lost) is tried again in the background: an enqueue's
        // re-add the removal undid is redone by it alone, and a purge tried again would not look,
        // the queue being out of the list
        yield* Effect.catch(relistIfMade(queue), () => relistInBackground(queue))
      })

    const purge = (before: number, states: ReadonlyArray<State>) =>
      op(
        "purge",
        Effect.gen(function*() {
          const finals = states.filter((state) => state === "succeeded" || state === "dead" || state === "cancelled")
          if (finals.length === 0) return 0
          let count = 0
          for (const queue of yield* queues) {
            // a script deletes a batch of each state; a full one may have left more
            while (true) {
              // on one Redis the script removes the ids from the index too
              const [gone, dropped] = yield* run("purge", queue, String(before), cfg.cluster ? "" : IDS, NOW(), ...finals)
              if (gone.length > 0 && cfg.cluster) yield* redis.send("HDEL", IDS, ...gone)
              count += gone.length
              if (dropped === 1) yield* unlist(queue)
              if (gone.length < Scripts.PURGE_BATCH) break
            }
          }
          return count
        }),
        // its awaiters look (a job they await may be gone)
        (n) => n > 0 ? { queue: UNKEYED } : undefined
      )

    // where this store's pass over the queues with a retention stands (see `Store.retain`): a set
    // has no order to resume by name, so an SSCAN cursor, and the names its last reply gave that no
    // call has visited yet (a small set's reply is all of it, whatever the COUNT). A queue goes from
    // `retainPending` once its visit is done (its script, the index, its unlisting): a call cut off
    // midway keeps what it got through. A call takes `limit` queues: a reply's COUNT is a hint (a
    // reply may hold 1 name or 12), so what one left over is topped up by the next reply, else a
    // call would visit the 1 left and a pass take more calls than queues / limit
    let retainScan = "0"
    const retainPending = new Set<string>()
    const retainAt: RetainPlace<string, unknown, never> = {
      take: (limit) =>
        Effect.gen(function*() {
          // nothing pending and cursor 0: the pass (re)starts
          let scan = retainPending.size < limit && (retainPending.size === 0 || retainScan !== "0")
          while (scan) {
            const [next, names] = yield* redis.send<[string, Array<string>]>("SSCAN", RETAINED_QUEUES, retainScan, "COUNT", String(limit))
            retainScan = next
            for (const name of names) retainPending.add(name)
            scan = retainPending.size < limit && retainScan !== "0"
          }
          return Array.from(retainPending).slice(0, limit)
        }),
      visited: (queue) => void retainPending.delete(queue),
      left: () => retainPending.size > 0 || retainScan !== "0"
    }
    /** Each queue's retention, once (see `Store.retain`): a script per queue that has had one, bounded by `batch`. */
    const retain = (batch: number, limit = RETAIN_QUEUES) =>
      op(
        "retain",
        // a script per queue, `RETAIN_IN_FLIGHT` sent together (a queue per tenant, each with a retention)
        retainPass(retainAt, limit, (queue) =>
          Effect.gen(function*() {
            // on one Redis the script removes the ids from the index too
            const [gone, dropped, past] = yield* run("retain", queue, NOW(), cfg.cluster ? "" : IDS, String(batch))
            if (gone.length > 0 && cfg.cluster) yield* redis.send("HDEL", IDS, ...gone)
            if (dropped === 1) yield* unlist(queue)
            return { deleted: gone.length, more: past === 1 }
          }), RETAIN_IN_FLIGHT),
        // its awaiters look (a job they await may be gone)
        (retained) => retained.deleted > 0 ? { queue: UNKEYED } : undefined
      )

    const configure = (
      queue: string,
      settings: QueueSettings
    ) =>
      op(
        "configure",
        Effect.andThen(
          Effect.andThen(
            knownQueue(queue),
            settings.retention == null ? Effect.void : Effect.asVoid(redis.send("SADD", RETAINED_QUEUES, queue))
          ),
          run(
            "configure",
            queue,
            settings.paused === undefined ? "" : settings.paused ? "1" : "0",
            settings.aging === undefined ? "" : String(settings.aging),
            settings.rateLimit === undefined ? "" : settings.rateLimit === null ? "0" : String(settings.rateLimit.limit),
            settings.rateLimit == null ? "" : String(settings.rateLimit.interval),
            NOW(),
            settings.retention === undefined ? "" : settings.retention === null ? "0" : encodeRetention(settings.retention),
            settings.concurrency === undefined ? "" : String(settings.concurrency ?? 0),
            settings.holdFor === undefined ? "" : String(settings.holdFor),
            settings.holdAtLeast === undefined ? "" : String(settings.holdAtLeast),
            settings.groupConcurrency === undefined ? "" : String(settings.groupConcurrency ?? 0)
          )
        ),
        // a new rate limit or cap that lets no claim through now wakes no one here either
        (woke) => woke === 1 ? { queue } : undefined
      )

    // A cursor is the store's time. A script reads the server's TIME and writes in one atomic step,
    // so a settle stamped before a read's `until` is already there when the read runs.
    const latencies = (queue: string, cursor: LatencyCursor | undefined, limit: number) =>
      Effect.flatMap(cursorTime(cursor), (since) =>
        op(
          "latencies",
          Effect.map(
            run("latencies", queue, NOW(), String(since ?? "+inf"), String(since === undefined ? 0 : Math.max(0, limit))),
            ([until, times]): Latencies => {
              const ended: Array<readonly [number, number, number]> = []
              for (let i = 0; i + 2 < times.length; i += 3) ended.push([Number(times[i]), Number(times[i + 1]), Number(times[i + 2])])
              // the newest `limit` of both states together
              ended.sort((a, b) => b[2] - a[2])
              return { until: String(until), jobs: ended.slice(0, limit).map(([v, s, f]) => latencyOf(v, s, f)) }
            }
          )
        ))

    const counts = (queue: string) =>
      op(
        "stats",
        Effect.map(run("counts", queue, NOW()), ([paused, waiting, delayed, running, succeeded, dead, cancelled, prio, rate, aging, retention, cap, heldUntil, groupCap, blocked]): QueueCounts => {
          const queuedByPriority: Array<{ priority: number; count: number }> = []
          for (let i = 0; i + 1 < prio.length; i += 2) {
            const count = Number(prio[i + 1])
            if (count > 0) queuedByPriority.push({ priority: Number(prio[i]), count })
          }
          return {
            queue,
            paused: paused === 1,
            aging: Number(aging ?? 0),
            blocked: blocked ?? 0,
            waiting,
            delayed,
            running,
            succeeded,
            dead,
            cancelled,
            queuedByPriority: queuedByPriority.sort((a, b) => b.priority - a.priority),
            ...retentionField(decodeRetention(retention)),
            rateLimit: rate[0] === "0" ? undefined : {
              limit: Number(rate[0]),
              interval: Number(rate[1]),
              available: Math.max(0, Number(rate[0]) - Number(rate[2]))
            },
            // only when set: a queue without a cap counts as before (a field of undefined is a field)
            ...(cap === undefined || cap === "0" ? {} : { concurrency: { limit: Number(cap), running } }),
            ...(groupCap === undefined || groupCap === "0" ? {} : { groupConcurrency: Number(groupCap) }),
            // held past the script's now: shown whatever the clock here says
            ...holdShown(Number(heldUntil), 0)
          }
        })
      )

    /**
     * What a claim of several queues takes from each, from a look at each queue's best (`PEEK`, on
     * one server `MANY_QUEUES` a script, all sent together): `allotted`, the best `limit` jobs across
     * them (rank, then creation time), counted per queue; `more`, the queues that may hold jobs past
     * those (a queue's look showed more than its share, or a full page of `limit`), are rate limited
     * (the claim says for how long) or whose delayed job's marker this store holds (the claim moves
     * its entry in `B:held`); `due`, each queue's soonest delayed job (`dueIn`, `dueAt`). A queue in
     * neither is not claimed from: it had nothing ready, and a job made ready since adds its marker,
     * which wakes its consumers again (claimed in turn, each of 10,000 queues mostly empty cost a
     * script, the claim seconds). Claimed in turn with no look, each queue up to what was left, the
     * first queue's jobs filled the slots whatever the others' priorities, and starved them while it
     * had as many jobs as free slots. Undefined (claim in turn, each queue up to what is left) when a
     * queue's look failed or had no answer within `CLAIM_BOUND` (a Cluster node down or frozen, or
     * the one server; the claim then skips the queues it would wait behind, see `unanswered`, and
     * later claims do not look until it has answered). A claim elsewhere between the look and the
     * claim may take an allotted job: this one then takes that queue's next, which another queue's
     * job could have outranked, or, that queue empty, the other queues' in turn (`allottedFirst`):
     * across queues, claims at the same instant are ordered only as well as their looks. A fair
     * claim (`ClaimRequest.fair`) allots round-robin instead, one job of each queue per round in the
     * request's order; with no look it is claimed in turn as any claim, each queue up to what is left.
     */
    const allotments = (request: ClaimRequest) =>
      Effect.gen(function*() {
        // a queue whose look or claim is still unanswered: no look (each would wait its bound)
        if (request.queues.some((queue) => unanswered(["peek", "claim"], queue) !== undefined)) return undefined
        const heads: Array<{ readonly score: number; readonly created: number; readonly queue: string }> = []
        const counts = new Map<string, number>()
        const more = new Set<string>()
        const due = new Map<string, { readonly dueIn: string; readonly dueAt: string }>()
        const args = [NOW(), String(request.limit), String(request.tasks.length), ...request.tasks, String(GROUP_VISITS)]
        // every queue's look sent at once (on one server `MANY_QUEUES` a script), each bounded
        const failed = yield* eachQueue(
          "peek",
          request.queues,
          CLAIM_BOUND,
          (group) => group.length === 1 ? Effect.map(run("peek", group[0]!, ...args), (look) => [look]) : runMany(SCRIPTS.peekMany, group, ...args),
          (queue, [flat, dueIn, dueAt, limited]) => {
            for (let j = 0; j < flat.length; j += 2) heads.push({ score: Number(flat[j]), created: Number(flat[j + 1]), queue })
            if (flat.length > 0) counts.set(queue, flat.length / 2)
            if (flat.length / 2 >= request.limit || limited === "1" || dueMarkers.has(queue)) more.add(queue)
            if (dueAt !== "" || dueIn !== "") due.set(queue, { dueIn, dueAt })
          },
          { size: manyQueues, inFlight: "unbounded" }
        )
        if (failed !== undefined) return undefined
        heads.sort((a, b) => a.score - b.score || a.created - b.created)
        const allotted = new Map<string, number>()
        // fair: one head of each queue per round, in the request's order (a look's heads are what
        // the queue may start: its rate limit's window counted)
        const chosen = request.fair === true ? roundRobin(request.queues, heads, (head) => head.queue, request.limit) : heads.slice(0, request.limit)
        for (const head of chosen) allotted.set(head.queue, (allotted.get(head.queue) ?? 0) + 1)
        for (const [queue, count] of counts) if (count > (allotted.get(queue) ?? 0)) more.add(queue)
        return { allotted, more, due }
      })

    /**
     * The queues a claim after a look takes from, in order: the allotted ones, each up to its share
     * (`sharing` says which shares hold); then, the claim still short (a claim elsewhere since the
     * look took allotted jobs), the queues that may hold `more` in turn for what is left, as without
     * a look, but those that had no answer. Only the allotted ones, the claim came back short, empty
     * even, while the others had ready jobs: its consumer then waited, their wake-up (the marker its
     * watch took) spent.
     */
    function* allottedFirst(
      queues: ReadonlyArray<string>,
      { allotted, more }: { readonly allotted: ReadonlyMap<string, number>; readonly more: ReadonlySet<string> },
      answered: ReadonlyMap<string, unknown>,
      sharing: (shares: ReadonlyMap<string, number> | undefined) => void
    ): Generator<string> {
      sharing(allotted)
      for (const queue of queues) if (allotted.has(queue)) yield queue
      sharing(undefined)
      for (const queue of queues) if (more.has(queue) && (!allotted.has(queue) || answered.has(queue))) yield queue
    }

    const claim = (request: ClaimRequest) =>
      op(
        "claim",
        Effect.gen(function*() {
          const look = request.queues.length > 1 ? yield* allotments(request) : undefined
          const claims: Array<Claim & { readonly rank: number }> = []
          // the queues claimed from, and when each one's soonest delayed job is due (server ms)
          const looked = new Map<string, number | undefined>()
          let limitedFor = 0
          // a queue's cap held ready jobs back (no time frees a slot: a settle or reap elsewhere wakes)
          let capped = false
          let dueIn: number | undefined
          // the queues whose script failed or is late (see `eachQueue`): the claim fails (with the
          // first failure) only if no queue answered. What it took from the queues before is held
          // under tokens only its answer carries (a failed claim left those jobs running for nobody
          // until their leases ended, each an attempt), and a queue that answered with nothing is an
          // idle wait for its consumer: failed, it backed off (up to 5 s) while jobs came to the
          // queues that answer, and logged the store down. If the claim does not fail, each is
          // logged in a streak of its own
          let first = 0
          let stopped = () => {}
          // each queue's share of the slots: the allotted queues' while they are claimed first
          let share: ReadonlyMap<string, number> | undefined
          const failedQueues = yield* eachQueue(
            "claim",
            look === undefined ? request.queues : allottedFirst(request.queues, look, looked, (shares) => share = shares),
            request.queues.length > 1 ? CLAIM_BOUND : 0,
            (group) => {
              const queue = group[0]!
              const left = request.limit - claims.length
              if (left <= 0) return undefined
              const limit = share === undefined ? left : Math.min(left, share.get(queue)!)
              first = tokens.reserve(limit)
              // the settles of this queue waiting to be written go in the claim's script (see settles.ts)
              return settles.carry((item) => item.queue === queue, (carried, stop) => {
                stopped = stop
                return Effect.map(
                  run(
                    "claim",
                    queue,
                    NOW(),
                    String(limit),
                    String(request.lease),
                    String(request.tasks.length),
                    ...request.tasks,
                    String(carried.length),
                    ...carried.flatMap((item) => item.args),
                    tokens.random,
                    String(first),
                    `:${queue}`,
                    dueMarkers.has(queue) ? tokens.random : "",
                    String(GROUP_VISITS)
                  ),
                  ([flats, held, settled, due, dueAt, cap]) => [[flats, held, due, dueAt, cap] as const, settled.map(settledOf)] as const
                )
              }).pipe(Effect.map((answer) => [answer]))
            },
            (queue, [flats, held, due, dueAt, cap]) => {
              if (cap === "1") capped = true
              flats.forEach((values, n) => {
                const { job, rank } = claimedRow(queue, values)
                claims.push({ job, token: tokens.of(first + n, queue), rank })
              })
              const wait = Number(held)
              if (wait > 0 && (limitedFor === 0 || wait < limitedFor)) limitedFor = wait
              if (due !== "" && (dueIn === undefined || Number(due) < dueIn)) dueIn = Number(due)
              looked.set(queue, dueAt === "" ? undefined : Number(dueAt))
            },
            {
              // its late answer gives the jobs it took back (a release: the attempt does not count)
              onLate: (group, answer) => {
                const at = first
                stopped()
                return Effect.flatMap(answer, (answers) =>
                  Effect.forEach(answers[0]![0], (_, n) => settle(tokens.of(at + n, group[0]!), { _tag: "Release" }), {
                    concurrency: "unbounded",
                    discard: true
                  }))
              },
              // a queue whose look is unanswered: its claim would wait behind it
              behind: ["claim", "peek"]
            }
          )
          if (failedQueues !== undefined && looked.size === 0) return yield* Effect.fail(failedQueues[0]![1])
          // the queues looked at and not claimed from: their soonest delayed jobs as the look saw them
          if (look !== undefined) {
            for (const [queue, { dueAt, dueIn: due }] of look.due) {
              if (looked.has(queue)) continue
              looked.set(queue, dueAt === "" ? undefined : Number(dueAt))
              if (due !== "" && (dueIn === undefined || Number(due) < dueIn)) dueIn = Number(due)
            }
          }
          if (queueFailures.size > 0 || failedQueues !== undefined) yield* queueStreaks(looked, failedQueues)
          // several queues: best first across them (each queue's claim took its best)
          if (request.queues.length > 1) claims.sort((a, b) => b.rank - a.rank || a.job.createdAt - b.job.createdAt)
          // not the claim's failure: a marker not handed back only leaves its job to the poll
          if (dueMarkers.size > 0) yield* Effect.ignore(handBack(looked, claims.length >= request.limit))
          return {
            claims: claims.map(({ job, token }): Claim => ({ job, token })),
            limitedFor: claims.length < request.limit ? limitedFor : 0,
            ...(capped && claims.length < request.limit ? { capped } : {}),
            dueIn: claims.length < request.limit ? dueIn : undefined
          }
        }),
        // its other consumers here claim what it left
        (claimed) => [...new Set(claimed.claims.map((claim) => claim.job.queue))].map((queue) => ({ queue }))
      )

    /**
     * The failures in a row of each queue that failed in claims of several queues that did not
     * fail (others answered): not the consumer's streak ("claiming durable jobs failed"), which
     * is for claims that failed, but one per queue, so a node down is heard of once in a while.
     */
    const queueFailures = new Map<string, ReturnType<typeof failureStreak>>()
    const queueStreaks = (answered: ReadonlyMap<string, unknown>, failures: ReadonlyArray<readonly [string, unknown]> = []) =>
      Effect.suspend(() => {
        const logs: Array<Effect.Effect<void>> = []
        for (const [queue, streak] of queueFailures) {
          if (!answered.has(queue)) continue
          queueFailures.delete(queue)
          logs.push(streak.worked)
        }
        for (const [queue, error] of failures) {
          let streak = queueFailures.get(queue)
          if (streak === undefined) queueFailures.set(queue, streak = failureStreak(`claiming durable jobs of queue ${JSON.stringify(queue)}`))
          logs.push(streak.failed(Cause.fail(error), () => "its other queues are claimed from"))
        }
        return Effect.all(logs, { discard: true })
      })
    /** Per operation, the queues whose script outlived its bound: skipped by that operation until it answers. */
    const late = { claim: new Set<string>(), heartbeat: new Set<string>(), reap: new Set<string>(), list: new Set<string>(), peek: new Set<string>() }
    /** The fibers waiting for late scripts' answers (`onLate`), by operation: the store's close waits a moment for a claim's (see below). */
    const lateAnswers = new Map<Fiber.Fiber<void>, keyof typeof late>()
    /**
     * The unanswered script of one of `operations` that a script of `queue` would wait behind, named,
     * if any: on a Cluster one of its queue's (its node's connection, as far as the store can tell);
     * on one server any queue's, since every command goes down one connection and waits behind it.
     * Waited for in turn, each queue's script there took its own bound: a claim of two queues on a
     * frozen server failed after 6 s (its look's bound, then each queue's), not 2 s.
     */
    const unanswered = (operations: ReadonlyArray<keyof typeof late>, queue: string): string | undefined => {
      for (const operation of operations) {
        const skipped = late[operation]
        if (skipped.size === 0) continue
        if (skipped.has(queue)) return `the ${operation} of queue ${JSON.stringify(queue)} sent before`
        if (!cfg.cluster) return `the ${operation} of queue ${JSON.stringify(skipped.values().next().value)} sent before on this server`
      }
      return undefined
    }
    /**
     * The scripts of a claim, its look, a heartbeat or a reap of several queues: a queue whose script
     * fails (on a Cluster, its node is down) does not hold up the other queues (the jobs a claim took
     * and their leases, the leases a beat renews, the expired jobs a reap takes back), nor, with a
     * `bound` (ms, 0 for none), one that has no answer within it (its node frozen, or a partition
     * that drops packets: no command times out). `onLate` gets a late script's answer (to wait for),
     * and until it has come the operation skips the queues whose script would wait behind it
     * (`unanswered`: on one server, every queue) rather than send another. `script` gives, for a
     * group of at most `size` queues, one script's answers (one per queue, in order: the first
     * queues' only, from a script stopped at its budget, and the rest go in another, bounded on its
     * own; none fails them, as a reply that could never end), or undefined to stop; `answered` takes each answer (never undefined); `behind`: the operations whose late
     * scripts it waits behind (a claim's, its look's too). `inFlight` scripts are sent at once (node-redis
     * writes those sent together in one go): sent one after another, a reap of 10,000 queues took
     * 10,000 round trips (1-1.4 s), each a fiber and a timer; 1 for a claim, which takes from each
     * queue what the last ones left. Gives the queues that failed or were skipped, or undefined if none.
     */
    const eachQueue = <A>(
      operation: keyof typeof late,
      queues: Iterable<string>,
      bound: number,
      script: (group: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<A>, unknown> | undefined,
      answered: (queue: string, answer: Exclude<A, QueueScriptFailed>) => void,
      options: {
        readonly onLate?: (group: ReadonlyArray<string>, answer: Effect.Effect<ReadonlyArray<A>, unknown>) => Effect.Effect<void, unknown>
        readonly behind?: ReadonlyArray<keyof typeof late>
        readonly size?: number
        readonly inFlight?: number | "unbounded"
      } = {}
    ): Effect.Effect<Array<readonly [string, unknown]> | undefined> =>
      Effect.gen(function*() {
        const { behind = [operation], inFlight = 1, onLate = (_, answer) => Effect.asVoid(answer), size = 1 } = options
        let failed: Array<readonly [string, unknown]> | undefined
        const failedOn = (queue: string, error: unknown) => void (failed ??= []).push([queue, error])
        let stopped = false
        const send = (group: ReadonlyArray<string>): Effect.Effect<void> =>
          Effect.gen(function*() {
            if (stopped) return
            const sent: Array<string> = []
            for (const queue of group) {
              const before = unanswered(behind, queue)
              if (before === undefined) sent.push(queue)
              else failedOn(queue, new Error(`the ${operation} of queue ${JSON.stringify(queue)} is not sent: ${before} has had no answer yet`))
            }
            if (sent.length === 0) return
            const effect = script(sent)
            if (effect === undefined) return void (stopped = true)
            const answers = yield* (bound > 0 ? bounded(operation, sent, bound, effect, onLate) : effect).pipe(
              Effect.catch((error: unknown) => Effect.sync(() => sent.forEach((queue) => failedOn(queue, error))))
            )
            if (answers === undefined) return
            if (answers.length === 0 || answers.length > sent.length) {
              const error = new Error(`a script of the ${operation} over ${sent.length} queues gave ${answers.length} answers`)
              return sent.forEach((queue) => failedOn(queue, error))
            }
            answers.forEach((answer, i) => {
              if (answer instanceof QueueScriptFailed) failedOn(sent[i]!, answer)
              else answered(sent[i]!, answer as Exclude<A, QueueScriptFailed>)
            })
            // a script that stopped at its budget answered the first queues: the rest in a script of
            // their own bound (under one bound, a reap whose group held 16,000 expired jobs, 16
            // scripts, was reported unanswered though each answered in time)
            if (answers.length < sent.length) yield* send(sent.slice(answers.length))
          })
        // taken lazily one after another: a claim's list of queues follows what it took (`allottedFirst`)
        if (inFlight === 1) for (const group of groupsOf(queues, size)) yield* send(group)
        else yield* Effect.forEach(groupsOf(queues, size), send, { concurrency: inFlight, discard: true })
        return failed
      })
    /** `effect`'s answer, or a failure past `bound`, its answer then handed to `onLate` (see `eachQueue`). */
    const bounded = <A>(
      operation: keyof typeof late,
      queues: ReadonlyArray<string>,
      bound: number,
      effect: Effect.Effect<A, unknown>,
      onLate: (queues: ReadonlyArray<string>, answer: Effect.Effect<A, unknown>) => Effect.Effect<void, unknown>
    ): Effect.Effect<A, unknown> =>
      Effect.gen(function*() {
        // detached, not forked into the store's scope: its close interrupts the newest fibers first, and
        // a claim in flight then ended as an interruption its caller (uninterruptible, in a consumer)
        // never asked for, and one forked once the close had begun never started; detached, it ends as
        // its client's commands do (with its answer, or a StoreError once the client is closed)
        const fiber = yield* Effect.forkDetach(effect)
        // skipped until its answer, which goes to `onLate`
        const lateAnswer = () => {
          const skipped = late[operation]
          for (const queue of queues) skipped.add(queue)
          // detached, not in the store's scope, whose close interrupted it at once: see `lateAnswers`
          return Effect.tap(
            Effect.forkDetach(
              onLate(queues, Fiber.join(fiber)).pipe(Effect.ignore, Effect.ensuring(Effect.sync(() => queues.forEach((queue) => skipped.delete(queue)))))
            ),
            (waiting) =>
              Effect.sync(() => {
                lateAnswers.set(waiting, operation)
                waiting.addObserver(() => lateAnswers.delete(waiting))
              })
          )
        }
        // its answer, or none past the bound: a timer and an observer, not a race of its join with a
        // sleep (two more fibers, per queue of every claim: ~9 µs over the script's own fiber-free
        // run, against ~4 µs here, on a 2-core machine). Interrupted while it waits (a consumer's own
        // bound on the whole operation: a reaper's, a lease, may be below this one), the script is
        // late all the same: without that, each operation so cut short waited on the same frozen
        // queue again and never reached the queues after it (their expired jobs held for ever)
        const answer = yield* Effect.callback<Exit.Exit<A, unknown> | undefined>((resume) => {
          let done = false
          const timer = setTimeout(() => {
            if (done) return
            done = true
            remove()
            resume(Effect.succeed(undefined))
          }, bound)
          const remove = fiber.addObserver((exit) => {
            if (done) return
            done = true
            clearTimeout(timer)
            resume(Effect.succeed(exit))
          })
          return Effect.sync(() => {
            done = true
            clearTimeout(timer)
            remove()
          })
        }).pipe(Effect.onInterrupt(() => Effect.asVoid(lateAnswer())))
        if (answer !== undefined) return yield* answer
        yield* lateAnswer()
        const named = queues.length === 1 ? `queue ${JSON.stringify(queues[0])}` : `${queues.length} queues (${JSON.stringify(queues[0])}...)`
        return yield* Effect.fail(new Error(`the ${operation} of ${named} had no answer within ${bound} ms`))
      })

    /**
     * After a claim: the markers held for the queues it looked at follow those queues' soonest
     * delayed jobs now (it promoted the due ones); a claim that filled its consumer hands back those
     * of queues no consumer here waits on, since nobody here may be free to claim them then.
     */
    const handBack = (looked: ReadonlyMap<string, number | undefined>, filled: boolean) =>
      Effect.suspend(() => {
        const now = serverNow()
        const back: Array<readonly [string, number]> = []
        for (const [queue, at] of dueMarkers) {
          const busy = filled && idleOn(queue) === 0
          const next = looked.has(queue) ? looked.get(queue) : at > now ? at : undefined
          // a queue not looked at whose time has come: its consumers here, woken then, claim it
          if (!looked.has(queue) && next === undefined) continue
          if (next === undefined || busy) dueMarkers.delete(queue)
          else dueMarkers.set(queue, next)
          if (next !== undefined && busy) back.push([queue, next])
        }
        return Effect.forEach(back, ([queue, at]) => markDue(queue, String(at), "1", true), { discard: true })
      })

    /** Tokens by their queue: one script per queue. */
    const byQueue = (tokens: ReadonlyArray<string>) => {
      const groups = new Map<string, Array<string>>()
      for (const token of tokens) {
        const queue = tokenQueue(token)
        if (queue === undefined) continue
        const group = groups.get(queue)
        if (group === undefined) groups.set(queue, [token])
        else group.push(token)
      }
      return groups
    }

    /**
     * A queue's beat: one script per `BEAT_BATCH` tokens, in turn, their answers joined. One script
     * for all took a token per argument of a JavaScript call: a consumer running 100,000 jobs of a
     * queue overflowed the stack (a defect) at every beat, and none of its jobs was ever renewed.
     */
    const beatQueue = (queue: string, tokens: ReadonlyArray<string>, lease: number) =>
      Effect.gen(function*() {
        const lost: Array<string> = []
        const cancelled: Array<string> = []
        for (let i = 0; i < tokens.length; i += BEAT_BATCH) {
          const [l, c] = yield* run("heartbeat", queue, NOW(), String(lease), ...tokens.slice(i, i + BEAT_BATCH))
          for (const token of l) lost.push(token)
          for (const token of c) cancelled.push(token)
        }
        return [lost, cancelled] as const
      })

    const heartbeat = (tokens: ReadonlyArray<string>, lease: number) =>
      op(
        "heartbeat",
        Effect.gen(function*() {
          const lost: Array<string> = tokens.filter((token) => tokenQueue(token) === undefined)
          const cancelled: Array<string> = []
          // a queue's beat that failed or is late is not counted as renewed: its tokens are
          // `unrenewed` (the beat fails if no queue answered). Bounded to a third of the lease, so
          // one frozen node leaves time for the others within a beat's own bound
          const groups = byQueue(tokens)
          let renewed = 0
          const failed = yield* eachQueue(
            "heartbeat",
            groups.keys(),
            groups.size > 1 ? Math.min(CLAIM_BOUND, Math.max(1, Math.floor(lease / 3))) : 0,
            ([queue]) => Effect.map(beatQueue(queue!, groups.get(queue!)!, lease), (answer) => [answer]),
            (_, [l, c]) => {
              renewed++
              for (const token of l) lost.push(token)
              for (const token of c) cancelled.push(token)
            },
            { inFlight: "unbounded" }
          )
          if (failed === undefined) return { lost, cancelled } satisfies Heartbeat
          if (renewed === 0) return yield* Effect.fail(failed[0]![1])
          const unrenewed = { tokens: failed.flatMap(([queue]) => groups.get(queue)!), error: fail("heartbeat")(failed[0]![1]) }
          return { lost, cancelled, unrenewed } satisfies Heartbeat
        })
      )

    const progress = (token: string, value: string) => {
      const queue = tokenQueue(token)
      return queue === undefined
        ? Effect.succeed(false)
        : op("progress", Effect.map(run("progress", queue, token, value), (n) => n === 1))
    }

    // settles are written together, one script per queue, or by this store's next claim of their queue
    const settles = Settles.make<{ readonly queue: string; readonly args: ReadonlyArray<string> }>(
      (batch) =>
        Effect.gen(function*() {
          const written: Array<Settled> = []
          const groups = new Map<string, Array<number>>()
          batch.forEach((item, i) => {
            const group = groups.get(item.queue)
            if (group === undefined) groups.set(item.queue, [i])
            else group.push(i)
          })
          yield* Effect.forEach(groups, ([queue, indices]) =>
            Effect.map(
              run("settle", queue, NOW(), ...indices.flatMap((i) => batch[i]!.args)),
              (flags) => indices.forEach((i, n) => written[i] = settledOf(flags[n]))
            ), { concurrency: "unbounded", discard: true })
          return written
        }),
      yield* Effect.scope,
      closing.close
    )
    // Before the settles close (finalizers run in reverse), the close waits up to its client's grace
    // for the answers of claims given up past their bound, which give back the jobs they took: the
    // server ran each once it could, and interrupted at the close's start, a claim answered in its
    // client's grace (which waits for the replies in flight) left its jobs running for nobody until
    // their leases ended, each an attempt (maxAttempts 1: dead, never run). The others' are interrupted.
    // The store is marked closed first: its users find out at once, not after this wait
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        closing.close()
        const claims = [...lateAnswers].flatMap(([fiber, operation]) => operation === "claim" ? [fiber] : [])
        return claims.length === 0 ? Effect.void : Fiber.awaitAll(claims).pipe(
          Effect.timeoutOption(RedisClient.CLOSE_GRACE),
          Effect.provideService(Clock.Clock, Clock.Clock.defaultValue())
        )
      }).pipe(Effect.andThen(Effect.suspend(() => Fiber.interruptAll([...lateAnswers.keys()]))))
    )

    const settle = (token: string, settlement: Settlement) => {
      const queue = tokenQueue(token)
      if (queue === undefined) return Effect.succeed(false)
      const args = settlement._tag === "Final"
        ? [token, "final", settlement.state, settlement.exit === null ? "0" : "1", settlement.exit ?? ""]
        : settlement._tag === "Retry"
        ? [token, "retry", String(settlement.delay), "1", settlement.exit]
        : [token, "release", settlement.delay === undefined ? "" : String(settlement.delay), "0", ""]
      // a retry's job is visible after its backoff: this process's consumers of its queue wake then,
      // and its awaiters at once; a job given back, at once; a job that ended (a retry or release
      // the script ended cancelled too) wakes only its awaiters (nothing to claim)
      return op(
        "settle",
        settles.add({ queue, args }),
        (done) =>
          !done
            ? undefined
            : done === "cancelled"
            ? { queue: UNKEYED }
            : settlement._tag === "Retry" || (settlement._tag === "Release" && settlement.delay !== undefined)
            ? [{ queue, in: settlement.delay! }, { queue: UNKEYED }]
            : settlement._tag === "Release"
            ? { queue }
            : { queue: UNKEYED }
      )
    }

    const reap = (
      backoff: ReadonlyArray<number>,
      policies: Readonly<Record<string, ReadonlyArray<number>>> = {},
      reaped?: (job: ReapedJob) => void
    ) =>
      op(
        "reap",
        Effect.gen(function*() {
          // the queues that had jobs taken back
          const taken: Array<string> = []
          let count = 0
          // an empty object, not "[]": cjson cannot tell them apart, and the script indexes it by name
          const named = JSON.stringify(policies)
          // a queue that failed or is late (see `eachQueue`) does not keep the others' expired jobs
          // held; the reap fails after, with the first failure. A late reap's jobs, once it answers,
          // wake this process's consumers of its queue
          // bounded as a queue's script, and not asked again while unanswered: on a frozen server
          // (standalone, every queue's) each reap sent one more behind the last, and failed only
          // at its consumer's bound, a lease
          const all = yield* (late.list.size > 0
            ? Effect.fail(new Error("the list of queues asked for before has had no answer yet"))
            : bounded("list", [""], CLAIM_BOUND, queues, (_, answer) => Effect.asVoid(answer)))
          // on one server a script reaps `MANY_QUEUES` queues
          const failed = yield* eachQueue(
            "reap",
            all,
            all.length > 1 ? CLAIM_BOUND : 0,
            (group): Effect.Effect<ReadonlyArray<number | Told | QueueScriptFailed>, unknown> =>
              reaped === undefined
                ? group.length === 1
                  ? Effect.map(run("reap", group[0]!, NOW(), named, ...backoff.map(String)), (n) => [n])
                  : runMany(SCRIPTS.reapMany, group, NOW(), named, ...backoff.map(String))
                : group.length === 1
                ? Effect.map(run("reapTold", group[0]!, NOW(), named, ...backoff.map(String)), (told) => [told])
                : runMany(SCRIPTS.reapToldMany, group, NOW(), named, ...backoff.map(String)),
            (queue, answer) => {
              const n = reapedIn(queue, answer, reaped)
              if (n > 0) taken.push(queue)
              count += n
            },
            {
              onLate: (group, answer) =>
                Effect.map(answer, (answers) =>
                  group.forEach((queue, i) => {
                    const one = answers[i]
                    if (one !== undefined && !(one instanceof QueueScriptFailed) && reapedIn(queue, one, reaped) > 0) {
                      signal.notifyIn(0, queue)
                    }
                  })),
              size: manyQueues,
              inFlight: "unbounded"
            }
          )
          if (failed !== undefined) return yield* Effect.fail(failed[0]![1])
          return { count, taken }
        }),
        ({ taken }) => taken.map((queue) => ({ queue }))
      ).pipe(Effect.map(({ count }) => count))

    /** An idle consumer's wait opens its queues' marker watches while it lasts; an awaiter's does not. */
    const wait = (millis: number, since?: number, queues?: ReadonlyArray<string>, tasks?: ReadonlyArray<string>) =>
      queues === undefined || queues.length === 0 ? signal.wait(millis, since) : Effect.acquireUseRelease(
        Effect.sync(() => {
          let opened = false
          for (const queue of queues) {
            const n = idleOn(queue)
            idle.set(queue, n + 1)
            opened ||= n === 0
            let counts = idleTasks.get(queue)
            if (counts === undefined) idleTasks.set(queue, counts = new Map())
            for (const task of tasks ?? [ANY_TASK]) counts.set(task, (counts.get(task) ?? 0) + 1)
          }
          if (opened) idleChanged.notify()
        }),
        // woken for changes of its queues only
        () => Effect.andThen(startWatching(queues), signal.wait(millis, since, queues)),
        () =>
          Effect.sync(() => {
            for (const queue of queues) {
              const n = idleOn(queue) - 1
              if (n > 0) idle.set(queue, n)
              else idle.delete(queue)
              const counts = idleTasks.get(queue)
              if (counts === undefined) continue
              for (const task of tasks ?? [ANY_TASK]) {
                const left = (counts.get(task) ?? 0) - 1
                if (left > 0) counts.set(task, left)
                else counts.delete(task)
              }
              if (counts.size === 0) idleTasks.delete(queue)
            }
          })
      )

    const now: Effect.Effect<number> = cfg.clock === "effect"
      ? Effect.sync(() => clock.currentTimeMillisUnsafe())
      : time.now
    // the open's commands, answered within the connect timeout together (real time): the connect
    // bounds the handshake only, and a server frozen just after it held the layer's build for ever
    let asking = "PING"
    yield* Effect.gen(function*() {
      yield* redis.send("PING").pipe(Effect.mapError(fail("open")))
      // an evicting server drops job keys when it is full: jobs lost without a trace (BullMQ warns too)
      asking = "CONFIG GET maxmemory-policy"
      const policy = yield* redis.send<Array<string> | Record<string, string>>("CONFIG", "GET", "maxmemory-policy").pipe(
        Effect.map((reply) => Array.isArray(reply) ? reply[1] : reply["maxmemory-policy"]),
        Effect.orElseSucceed(() => undefined) // CONFIG is disabled on some managed servers
      )
      if (policy !== undefined && policy !== "noeviction") {
        yield* Effect.logWarning(
          `effect-workpool: this Redis evicts keys when full (maxmemory-policy ${policy}): jobs can be lost; set maxmemory-policy noeviction`
        )
      }
      asking = "TIME"
      yield* Effect.ignore(time.refresh)
    }).pipe(
      Effect.timeoutOrElse({
        duration: cfg.connectTimeout,
        orElse: () =>
          Effect.fail(
            new StoreError({ operation: "open", reason: `no answer to ${asking} within ${cfg.connectTimeout} ms of connecting (the server frozen?)` })
          )
      }),
      Effect.provideService(Clock.Clock, Clock.Clock.defaultValue())
    )

    // closed, it refuses every operation at once, as the other stores do: a reader its close woke
    // (an awaiter, a progress reader) went back to the server during the close's grace, answered,
    // and waited for its next poll to find the client closed
    return Closing.guard({
      enqueue,
      enqueueAll,
      get: (id) => op("get", getRow(id)),
      progressOf: (id) => op("get", progressOf(id)),
      list,
      cancel,
      redrive,
      purge,
      configure,
      retain,
      counts,
      latencies,
      claim,
      heartbeat,
      progress,
      settle,
      reap,
      wait,
      version: signal.version,
      waitCancel: cancels.wait,
      cancelVersion: cancels.version,
      now,
      closed: closing.closed,
      kind: "Redis",
      dependencies: true
    } satisfies Store, closing.isClosed)
  })

/**
 * How long one queue's script in a claim, a heartbeat or a reap of several queues is waited for
 * before the operation goes on without it (`eachQueue`): far above a script's time on a live server
 * (a claim's is below a millisecond), far below a lease.
 */
export const CLAIM_BOUND = 2000

/** Backoff of the client's reconnects once it has been connected: 50 ms doubling up to 2 s. */
const reconnect = (retries: number): number => Math.min(2 ** retries * 50, 2000) + Math.floor(Math.random() * 200)

/**
 * node-redis gives every command a 5 s timeout by default, as an `AbortSignal.timeout`: a timer per
 * command that fires (building an exception and an event) 5 s later whether or not the reply came
 * (the benchmark's producer spent 10–20 µs per job enqueued on them, 5 s after the enqueues). It
 * only bounds the wait of a command not yet written to the socket, and without the offline queue a
 * command is written at once or fails at once: off.
 */
export const NO_COMMAND_TIMEOUT = { timeout: 0 } as const

/**
 * The reserved connections (`Redis.reserve`) are the marker watches: one per queue this store's
 * consumers wait on, each blocked in `BZPOPMIN` until `WATCH_LINGER` after their last wait. Effect's default
 * pool of 10 left the watch of an 11th queue waiting for a connection forever, and that queue's
 * idle consumers woke only at their poll.
 */
export const WATCH_CONNECTIONS = Number.MAX_SAFE_INTEGER

/**
 * How long a queue's marker watch outlives the last wait of this store's consumers on it (ms, real
 * time): then it ends and its connection goes back. Without an end, each queue ever waited on kept
 * a connection for the store's life (a queue per tenant or per request: a connection per queue ever
 * consumed). A busy consumer between waits keeps it: one claim rarely lasts this long.
 */
export const WATCH_LINGER = 5000

/** How long an ended watch's connection stays open for the next one (the reserved pool's idle time to live). */
export const WATCH_IDLE = "1 second"

/** The store on a client of its own (one server's, a Cluster's, or a primary's its sentinels name), connected to `cfg.url`. */
export const open = (cfg: Config) =>
  Effect.gen(function*() {
    // a server that cannot be reached at first (or does not answer within the connect timeout) is an
    // error; once connected, the client reconnects for as long as it takes, and commands sent
    // meanwhile fail at once (no offline queue) with StoreError instead of hanging their callers
    const redis = yield* RedisClient.make({
      url: Redacted.value(cfg.url),
      cluster: cfg.cluster,
      sentinel: cfg.sentinel === undefined ? undefined : {
        name: cfg.sentinel.name,
        sentinels: cfg.sentinel.sentinels.map((url) => Redacted.value(url)),
        node: Redacted.value(cfg.sentinel.node)
      },
      // CLIENT LIST shows whose connections these are
      name: `effect-workpool:${cfg.prefix}`,
      connectTimeout: cfg.connectTimeout,
      reconnect,
      commandOptions: NO_COMMAND_TIMEOUT,
      maxReserved: WATCH_CONNECTIONS,
      idleTimeout: WATCH_IDLE
    }).pipe(Effect.mapError((error) => new StoreError({ operation: "open", reason: reasonOf(error) })))
    return yield* Effect.provideService(make(cfg), Redis.Redis, redis)
  })
