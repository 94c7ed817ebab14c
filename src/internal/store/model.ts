/**
 * The job store's interface: what every store (memory, SQLite, later Postgres and Redis) must do.
 * Each operation is one atomic step on the store, chosen so that a Postgres store can write it as
 * one statement (a CTE with `FOR UPDATE SKIP LOCKED` for `claim`, an `UPDATE ... WHERE
 * lease_token = $1` for the fenced ones) and a Redis store as one Lua script. Time is the store's
 * own (`now` is never passed in): a delayed job is visible at the store's time, not the producer's.
 *
 * Everything else (Schemas, retries, timeouts, the consumer's scheduling) is above this line, in
 * `src/internal/durable/`, written once for every store.
 *
 * @internal
 */
import { Context, Effect } from "effect"
import type { JobNotFound } from "../../DurableError.ts"
import type { InvalidJobOptions } from "../../PoolError.ts"
import { StoreError } from "../../DurableError.ts"

/**
 * Where a job is. `queued` includes delayed jobs (`visibleAt` in the future); `blocked` waits for
 * its dependencies (`NewJob.after`), and no claim sees it.
 */
export type State = "blocked" | "queued" | "running" | "succeeded" | "dead" | "cancelled"

export const FINAL_STATES: ReadonlyArray<State> = ["succeeded", "dead", "cancelled"]
export const STATES: ReadonlyArray<State> = ["blocked", "queued", "running", "succeeded", "dead", "cancelled"]

/** The most dependencies one job may have (`NewJob.after`). */
export const MAX_AFTER = 1000

/** A dependency that ended otherwise than succeeded, which ended its dependent cancelled (`JobRow.failedDependency`). */
export interface FailedDependency {
  readonly id: string
  readonly state: "dead" | "cancelled"
}

export interface JobRow {
  readonly id: string
  readonly queue: string
  readonly task: string
  /** The payload encoded by the task's Schema, as JSON text. */
  readonly payload: string
  readonly priority: number
  readonly dedupKey: string | null
  readonly state: State
  /** Attempts started (a claim counts one; a claim given back by a shutdown does not). */
  readonly attempts: number
  readonly maxAttempts: number
  /** Milliseconds per attempt; 0 means the consumer's default, `NO_TIMEOUT` none. */
  readonly timeout: number
  readonly createdAt: number
  /** When it may be claimed (store time, ms). */
  readonly visibleAt: number
  readonly startedAt: number | null
  readonly finishedAt: number | null
  readonly cancelRequested: boolean
  /**
   * The encoded `Exit` (JSON text): the result once final, the last failure while it is retried.
   * Null for a job cancelled (its result is `JobCancelled`) or dead by an expired lease
   * (`LeaseExpired`): the store writes those without knowing the encoding.
   */
  readonly exit: string | null
  /** The latest progress its handler reported (JSON text), kept after it ends. */
  readonly progress: string | null
  /** The producer's span when it was enqueued (see `encodeTrace`); null or absent if none. */
  readonly trace?: string | null | undefined
  /** The job's own retry policy (see durable/backoff.ts), as JSON text; null or absent: the consumer's. */
  readonly retry?: string | null | undefined
  /** How many times its handlers snoozed it (`Release` with a delay); absent: none (or not read). */
  readonly snoozes?: number | undefined
  /**
   * Its key under its queue's per-key cap (`EnqueueOptions.group`); null or absent: none. The SQL
   * stores keep `''` for an ungrouped job of a queue with a per-key cap (see `NewJob.group`): read as none.
   */
  readonly group?: string | null | undefined
  /**
   * When it expires if no attempt has started by then (store time, ms; `NewJob.expireIn`). A claim
   * clears it (a started job never expires), and an expired job keeps it: see `expiredAt`. Null or
   * absent: none.
   */
  readonly expireAt?: number | null | undefined
  /** How many of its dependencies (`NewJob.after`) have not succeeded yet; absent: 0. */
  readonly waitingFor?: number | undefined
  /**
   * The dependency whose end (dead or cancelled) ended this job cancelled (`afterFailure: "cancel"`):
   * its awaiters fail with `DependencyFailed` naming it. Null or absent: none.
   */
  readonly failedDependency?: FailedDependency | null | undefined
}

/**
 * When a job expired (`EnqueueOptions.expireIn`): its `expireAt`, if it ended cancelled at or
 * after it without having started (a claim clears `expireAt`). A job cancelled before its expiry
 * was cancelled, not expired; one cancelled past it, before a claim or reap had ended it, had
 * expired all the same.
 */
export const expiredAt = (job: JobRow): number | undefined =>
  job.state === "cancelled" && job.expireAt != null && job.finishedAt !== null && job.finishedAt >= job.expireAt
    ? job.expireAt
    : undefined

/** Whether a job waits unstarted past its expiry at `now`: a claim, a reap or an enqueue that meets it ends it. */
export const pastExpiry = (job: JobRow, now: number): boolean =>
  (job.state === "queued" || job.state === "blocked") && job.expireAt != null && job.expireAt <= now

/**
 * The most expired jobs one reap ends (see `Store.reap`): a backlog of them (a queue paused for a
 * day) ends over several reaps, each a bounded write; a claim ends those of its queues as it meets
 * them, and never hands one out whatever is left.
 */
export const EXPIRE_BATCH = 1000

/**
 * A job's stored `timeout` when its producer gave it none (`timeout: Infinity`), whatever the
 * consumer's default (0 stands for that default). Negative, so that a consumer of an older version,
 * which takes only a timeout above 0 as the job's own, runs it with its default.
 */
export const NO_TIMEOUT = -1

export interface NewJob {
  /**
   * A repeatable job's tick (the same in every process); none for a new job: the store names it
   * (a fresh UUID; on Redis one that names its queue too, so that its lookups need no index).
   */
  readonly id?: string | undefined
  readonly queue: string
  readonly task: string
  readonly payload: string
  readonly priority: number
  readonly dedupKey: string | null
  /**
   * `"queued"`: the dedup key is released when the job first starts (a store moves it out of the
   * column its unique index reads), so an enqueue during the run creates a follow-up job; its
   * retries do not take the key back. Absent: held until the job finishes (`EnqueueOptions.dedupWhile`).
   */
  readonly dedupWhile?: "queued" | undefined
  /**
   * Milliseconds after the enqueue (store time) during which the dedup key stays held whatever the
   * job's state, finished included: a throttle window (`EnqueueOptions.dedupFor`). Absent: none.
   */
  readonly dedupFor?: number | undefined
  /**
   * When the key's holder is waiting (queued or delayed, not running nor finished) and of the same
   * task: `"payload"` replaces its payload with this one's; `"debounce"` its run time too (this
   * job's `delay` or `runAt`, from now). Its id is returned (`created: false`) as ever.
   */
  readonly dedupReplace?: "payload" | "debounce" | undefined
  readonly maxAttempts: number
  readonly timeout: number
  /** Milliseconds from now (store time) until it may be claimed. */
  readonly delay: number
  /** An absolute time (ms since the epoch) instead of `delay`. */
  readonly runAt: number | undefined
  /** The producer's span (see `encodeTrace`), so that the job's span is its child in the consumer. */
  readonly trace?: string | null | undefined
  /**
   * The job's key under its queue's per-key cap (`JobQueue.setGroupConcurrency`): at most that many
   * jobs of one key of the queue run at once. 1 to 256 characters; absent: none (an ungrouped job is
   * never capped, and served in turn with the keys as if of a key of its own).
   */
  readonly group?: string | undefined
  /** The job's own retry policy (see durable/backoff.ts), as JSON text. */
  readonly retry?: string | null | undefined
  /**
   * Milliseconds after the enqueue (store time) by which its first attempt must start: past it, it
   * never starts and ends cancelled (see `JobRow.expireAt`). Absent: no expiry.
   */
  readonly expireIn?: number | undefined
  /**
   * The last moment (store time, ms since the epoch) at which it may be created: an enqueue that
   * reaches the store later creates nothing and answers `late` (a repeat's tick past its deadline,
   * whose job another process may have stored, run and purged meanwhile). A job that holds its id
   * or dedup key is returned as ever (one another transaction has not committed by then is not:
   * the enqueue answers `late` at its deadline). None for other jobs.
   */
  readonly notAfter?: number | undefined
  /**
   * The ids of the jobs it runs after (any queue, any task; at most `MAX_AFTER`, no duplicates): it
   * is stored `blocked` and becomes `queued` (delayed, if its `delay` or `runAt` is still ahead) in
   * the step that settles the last of them succeeded. A dependency already succeeded counts as done;
   * one not in the store fails the enqueue with `JobNotFound` naming it, nothing stored (the whole
   * batch, for `enqueueAll`). Only a store with `dependencies` takes it. Absent or empty: none.
   */
  readonly after?: ReadonlyArray<string> | undefined
  /**
   * `"run"`: a dependency that ends dead or cancelled counts as done (the job runs once every one
   * has ended). Absent: it ends the job cancelled at once (`failedDependency`), and its own
   * dependents after it, in the same step.
   */
  readonly afterFailure?: "run" | undefined
}

/**
 * A new job of `enqueueAll`: the store names it (a repeatable job's tick is enqueued alone).
 * `afterItems`: the jobs of the same call it runs after, by their place in it (each before its own,
 * so a call's jobs make no cycle), as `after` names stored ones: a whole DAG in one atomic call.
 */
export type FreshJob = Omit<NewJob, "id" | "notAfter"> & { readonly afterItems?: ReadonlyArray<number> | undefined }

/**
 * `job` with its `afterItems` named in `after`: the ids the call's earlier items got (`made`, in
 * order; a dedup hit's is its holder), each dependency once.
 */
export const withItemsNamed = <J extends FreshJob>(job: J, made: ReadonlyArray<{ readonly id: string }>): J =>
  job.afterItems === undefined
    ? job
    : { ...job, after: Array.from(new Set([...job.after ?? [], ...job.afterItems.map((i) => made[i]!.id)])) }

/** What `Store.enqueue` did: `late`, nothing stored (past the job's `notAfter`), `created` false. */
export interface Enqueued {
  readonly id: string
  readonly created: boolean
  readonly late?: true | undefined
}

/** The job with its id: the caller's, or a fresh UUID. */
export const withId = (job: NewJob): NewJob & { readonly id: string } =>
  job.id === undefined ? { ...job, id: crypto.randomUUID() } : job as NewJob & { readonly id: string }

/** See `Store.progressOf`. */
export interface ProgressOf {
  readonly state: State
  readonly progress: string | null
}

/** A claimed job: the row as claimed, and the token that fences every later step of this attempt. */
export interface Claim {
  readonly job: JobRow
  readonly token: string
}

export interface ClaimRequest {
  readonly queues: ReadonlyArray<string>
  /** Only jobs of these tasks (the consumer's handlers). */
  readonly tasks: ReadonlyArray<string>
  readonly limit: number
  readonly lease: number
  /**
   * Fair dispatch (`consume({ dispatch: "fair" })`): the claim takes one job of each queue that has
   * one it may start, in the order of `queues` (the consumer rotates them), round after round until
   * `limit`; priority and aging order the jobs within a queue only. Absent: the best jobs across
   * all the queues (rank, then the oldest).
   */
  readonly fair?: boolean | undefined
}

/** `candidates` by `keyOf`, each key's in their order, the keys in the order first seen. */
const groupedBy = <T>(candidates: ReadonlyArray<T>, keyOf: (candidate: T) => string): Map<string, Array<T>> => {
  const grouped = new Map<string, Array<T>>()
  for (const candidate of candidates) {
    const list = grouped.get(keyOf(candidate))
    if (list === undefined) grouped.set(keyOf(candidate), [candidate])
    else list.push(candidate)
  }
  return grouped
}

/**
 * A fair claim's jobs (see `ClaimRequest.fair`), from candidates best first within each queue: one
 * of each queue per round, the queues in the order of `queues`, rounds until `limit` or none is
 * left. A queue's candidates past what it may give (its rate limit's window) are left out by the
 * caller, before or after: skipping a queue's later candidates in this order leaves the others' as
 * they are.
 */
export const roundRobin = <T>(
  queues: ReadonlyArray<string>,
  candidates: ReadonlyArray<T>,
  queueOf: (candidate: T) => string,
  limit: number = Infinity
): Array<T> => {
  const byQueue = groupedBy(candidates, queueOf)
  // a queue named twice takes its one turn
  let lists = Array.from(new Set(queues), (queue) => byQueue.get(queue)).filter((list) => list !== undefined)
  const picked: Array<T> = []
  for (let round = 0; lists.length > 0 && picked.length < limit; round++) {
    for (const list of lists) {
      if (picked.length >= limit) break
      picked.push(list[round]!)
    }
    lists = lists.filter((list) => list.length > round + 1)
  }
  return picked
}

/** A UTF-16 code unit's place in code point order: surrogates (U+D800-U+DFFF) after U+E000-U+FFFF. */
const codePointRank = (unit: number): number => unit < 0xD800 ? unit : unit < 0xE000 ? unit + 0x2000 : unit - 0x800

/**
 * Compares two strings in code point order, which is UTF-8's byte order (Redis' `ZRANGEBYLEX`,
 * SQLite's `BINARY`): JavaScript's `<` compares UTF-16 code units, which put a character past U+FFFF
 * (its surrogates) before one of U+E000-U+FFFF, and memory's keys took turns in another order.
 *
 * @example
 * ```ts
 * ["😀", "\uFF01"].sort(byCodePoints) // ["\uFF01", "😀"]: U+FF01 < U+1F600
 * ```
 */
export const byCodePoints = (a: string, b: string): number => {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    if (x !== y) return codePointRank(x) - codePointRank(y)
  }
  return a.length - b.length
}

/**
 * A queue's jobs under a per-key cap (`JobQueue.setGroupConcurrency`) in the order a claim takes
 * them: the keys in turn from the one after `cursor` (the key served last; null: from the first),
 * wrapping, one job of each key per round, best first within a key; a key gives at most what
 * `free` says it may start (`''`, the ungrouped jobs, is never capped). `candidates` come best first.
 * `full`: a key had more candidates than free slots.
 */
export const byKeys = <T>(
  candidates: ReadonlyArray<T>,
  keyOf: (candidate: T) => string,
  free: (key: string) => number,
  cursor: string | null
): { readonly ordered: Array<T>; readonly full: boolean } => {
  const byKey = groupedBy(candidates, keyOf)
  const keys = Array.from(byKey.keys()).sort(byCodePoints)
  const at = cursor === null ? 0 : keys.findIndex((key) => byCodePoints(key, cursor) > 0)
  const turn = at <= 0 ? keys : keys.slice(at).concat(keys.slice(0, at))
  let full = false
  const lists = new Map<string, Array<T>>()
  for (const key of turn) {
    const left = free(key)
    const list = byKey.get(key)!
    // passed over, or cut short: its slots, not its jobs, ran out
    if (list.length > left) full = true
    if (left > 0) lists.set(key, list.slice(0, left))
  }
  return { ordered: roundRobin(Array.from(lists.keys()), Array.from(lists.values()).flat(), keyOf), full }
}

/**
 * `ordered` with the candidates of each queue of `turns` in the places its candidates had, in the
 * order `turns` gives (a per-key cap's turn, see `byKeys`), those past it dropped: a claim's order
 * across queues (by rank, or fair) kept, and the keys' turn within a queue.
 */
export const keepTurns = <T>(
  ordered: ReadonlyArray<T>,
  queueOf: (candidate: T) => string,
  turns: ReadonlyMap<string, ReadonlyArray<T>>
): Array<T> => {
  if (turns.size === 0) return ordered.slice()
  const next = new Map<string, number>()
  return ordered.flatMap((candidate) => {
    const turn = turns.get(queueOf(candidate))
    if (turn === undefined) return [candidate]
    const at = next.get(queueOf(candidate)) ?? 0
    next.set(queueOf(candidate), at + 1)
    return at < turn.length ? [turn[at]!] : []
  })
}

/**
 * The keys a claim of a queue with a per-key cap visits past `limit` and the queue's running keys
 * (a key at its cap gives nothing): a claim's walk never reads more keys than that, however many
 * keys have only delayed jobs, or jobs of tasks the consumer does not run. 3,000 such keys made an
 * empty claim cost 40 ms (SQLite, in its write lock) to 128 ms (Postgres, holding the queue's row).
 */
export const GROUP_VISITS = 64

/** The most keys a grouped claim of `limit` visits, with `runningKeys` keys running (see `GROUP_VISITS`). */
export const groupBudget = (limit: number, runningKeys: number): number => limit + runningKeys + GROUP_VISITS

/**
 * One stretch of a grouped claim's walk of a queue's keys, in key order: from the key after `from`
 * (or `from` itself, `inclusive`) up to `stop` (included; null: the last). `index`: its place in the
 * round from the cursor (0: after it; 1: from the first key to it).
 */
export interface GroupPhase {
  readonly index: number
  readonly from: string
  readonly inclusive: boolean
  readonly stop: string | null
}

/** What a grouped claim's walk of a queue did: `cut` short by its budget, after `last`; `offered` jobs. */
export interface GroupWalked {
  /** The cursor its round began at (and ends at): the stored one, read by the round's first claim. */
  readonly cursor: string | null
  /** When its round began: its first claim's time (see `groupRounds`). */
  readonly since: number
  /** The store's change count when its round began (see `groupRounds`). */
  readonly version: number
  /** Whether it went on from an earlier claim's stop: its round spans several claims. */
  readonly resumed: boolean
  readonly cut: boolean
  readonly last: { readonly phase: number; readonly key: string } | undefined
  readonly offered: number
}

/**
 * A store's rounds of its queues' keys under a per-key cap: a claim walks at most its budget of keys
 * (`groupBudget`) and one cut short returns `dueIn: 0` (claim again at once), so a round of many keys
 * may take several claims. A claim that took jobs stores its cursor (past the keys it saw when it
 * took all it offered). An empty one stores nothing: on SQLite a write's commit wakes every consumer
 * of the file, and a capped queue with many delayed-only keys was claimed about once a millisecond.
 * It is remembered here instead, per queue and claim's tasks, with the stored cursor its round began
 * at; the round ends at that cursor, so empty claims stop and the consumer waits. It does so even if
 * the stored cursor moved since: another consumer of the queue taking jobs moves it at every claim,
 * and a round begun afresh each time walked only the budget's keys after it, never a key further on. Per tasks: a
 * key one consumer's walk passed gave nothing to its tasks, not to another consumer's (sharing the
 * stop, a consumer went on past keys with its jobs that it never saw, and waited). A round spans its
 * claims' times: a delayed job due between them in a key walked before is neither taken nor still
 * delayed at the round's end, so that claim counts the delayed jobs due `since` the round began.
 *
 * Likewise a job enqueued into a key the round walked before (the enqueue's own wake-up is one of
 * the round's claims), or a key at its cap then freed by a settle: the round's last claim would say
 * "nothing until the poll". So a round remembers the store's change count (its `Signal`'s version:
 * the store's own writes, and what it hears of other instances': SQLite's file watch, Postgres'
 * NOTIFY of the queue) when it began, and the claim that ends a round of several claims answers
 * `dueIn: 0` if the queue changed since (`again`): the next claim starts one fresh round from the
 * stored cursor. No spin: a round without changes ends the consumer's claims, and a burst of
 * changes during a round costs one more round; only writes that keep coming cost back-to-back
 * rounds. A change the store hears of as a change of everything (SQLite's watch of other processes)
 * counts for every queue: unrelated writes of another process cost at most one round more per round,
 * as each already wakes an idle consumer for a round of its own.
 *
 * At most `maxStops` stops are kept, the oldest dropped: nothing else forgets the queues whose
 * consumers stopped or were purged (per-tenant queues, task sets), and a dropped stop costs only a
 * round begun afresh.
 *
 * @example
 * ```ts
 * const rounds = groupRounds(() => false)
 * const { phases, ...round } = rounds.round("default", ["Echo"], null, 0, 0) // [{ index: 0, from: "", inclusive: true, stop: null }]
 * const walked = { ...round, cut: false, last: undefined, offered: 0 }
 * const again = rounds.again("default", walked) // false: a round of one claim
 * const cursor = rounds.settled("default", ["Echo"], walked, 0, undefined)
 * ```
 */
export const groupRounds = (changedSince: (version: number, queue: string) => boolean, maxStops = 1024) => {
  const stops = new Map<
    string,
    { readonly cursor: string | null; readonly phase: number; readonly key: string; readonly since: number; readonly version: number }
  >()
  const roundOf = (queue: string, tasks: ReadonlyArray<string>) => JSON.stringify([queue, ...tasks])
  /** A round from `cursor`: the keys after it, then from the first up to it. */
  const phasesFrom = (cursor: string | null): ReadonlyArray<GroupPhase> =>
    cursor === null
      ? [{ index: 0, from: "", inclusive: true, stop: null }]
      : [{ index: 0, from: cursor, inclusive: false, stop: null }, { index: 1, from: "", inclusive: true, stop: cursor }]
  return {
    /**
     * The stretches a claim of `queue` for `tasks` at `now` walks, the cursor their round began at,
     * when it began, and its change count then: an empty claim's stop's if it goes on from one (from
     * the stop's cursor, not `cursor`, the one stored now). `version`: the store's change count read before the claim looked at the store.
     */
    round: (
      queue: string,
      tasks: ReadonlyArray<string>,
      cursor: string | null,
      now: number,
      version: number
    ): {
      readonly phases: ReadonlyArray<GroupPhase>
      readonly cursor: string | null
      readonly since: number
      readonly version: number
      readonly resumed: boolean
    } => {
      const stop = stops.get(roundOf(queue, tasks))
      if (stop === undefined) return { phases: phasesFrom(cursor), cursor, since: now, version, resumed: false }
      // on to the cursor the round began at, though the stored one may have moved since (see above)
      return {
        phases: phasesFrom(stop.cursor).slice(stop.phase).map((phase, i) =>
          i === 0 ? { ...phase, from: stop.key, inclusive: false } : phase
        ),
        cursor: stop.cursor,
        since: Math.min(stop.since, now),
        version: stop.version,
        resumed: true
      }
    },
    /**
     * Whether the walk ended a round of several claims during which `queue` changed: its keys
     * walked before may have a job now, claim again at once (a fresh round, `settled` forgets the stop).
     */
    again: (queue: string, walked: GroupWalked): boolean =>
      !walked.cut && walked.resumed && changedSince(walked.version, queue),
    /**
     * After the claim, which took `taken` of the walk's jobs (`lastTaken`: the key of the last in
     * its turn): the cursor to store, if any.
     */
    settled: (
      queue: string,
      tasks: ReadonlyArray<string>,
      walked: GroupWalked,
      taken: number,
      lastTaken: string | undefined
    ): string | undefined => {
      const round = roundOf(queue, tasks)
      if (taken > 0) {
        stops.delete(round)
        // all it offered taken: the keys it saw gave what they had, the next claim goes on after them
        return walked.cut && taken === walked.offered && walked.last !== undefined ? walked.last.key : lastTaken
      }
      if (walked.cut && walked.offered === 0 && walked.last !== undefined) {
        // last in the map's order: the oldest stop is first, dropped past the bound
        stops.delete(round)
        stops.set(round, { cursor: walked.cursor, since: walked.since, version: walked.version, ...walked.last })
        if (stops.size > maxStops) stops.delete(stops.keys().next().value!)
      }
      else if (!walked.cut) stops.delete(round)
      return undefined
    }
  }
}

/** What a claim took, and whether a queue's shared rate limit held it back. */
export interface Claimed {
  readonly claims: ReadonlyArray<Claim>
  /**
   * Milliseconds until a rate-limited queue of the request may start another job, when its limit
   * held this claim back (its window was full); 0 when no limit did.
   */
  readonly limitedFor: number
  /**
   * A queue's concurrency cap (`setConcurrency`), or its per-key cap (`setGroupConcurrency`), held this claim back: the queue gave all its free
   * slots allowed and the claim came up short. No time frees a slot (a settle does): the consumer
   * waits for a change, after the same floor as for a window, so that each enqueue to a full queue
   * does not cost it a claim. Absent: none did.
   */
  readonly capped?: boolean | undefined
  /**
   * Milliseconds (store time, from the claim's own moment) until the soonest delayed job of the
   * request's unpaused queues, of any task, becomes visible: how long an idle consumer may sleep.
   * Undefined when none is delayed, and may be when the claim took `limit` jobs (the consumer then
   * claims again at once, and the store need not look). 0: a claim of a queue with a per-key cap
   * stopped at its budget of keys (`groupBudget`) before it had seen them all: claim again at once.
   */
  readonly dueIn?: number | undefined
}

/** A queue's shared rate limit: at most `limit` claims in any window of `interval` ms. */
export interface QueueRateLimit {
  readonly limit: number
  readonly interval: number
}

/** How an attempt ends, written only if the claim's token still holds the job. */
export type Settlement =
  /** Final: succeeded, dead (out of attempts, or not retryable) or cancelled. */
  | { readonly _tag: "Final"; readonly state: "succeeded" | "dead" | "cancelled"; readonly exit: string | null }
  /** Failed, to be retried after `delay` ms; `exit` is the failure, kept as the job's last error. */
  | { readonly _tag: "Retry"; readonly delay: number; readonly exit: string }
  /**
   * Given back unstarted-as-it-were: a shutdown interrupted it, or (with `delay`) its handler
   * snoozed it (`JobQueue.snooze`): visible again after `delay` ms, ranked from then. The attempt
   * does not count.
   */
  | { readonly _tag: "Release"; readonly delay?: number | undefined }

/**
 * What a settle wrote (`Store.settle`): `true`, the settlement asked for; `"cancelled"`, the job
 * ended cancelled instead (a cancel asked for while the attempt ran, before its consumer heard of
 * it, wins over a `Retry` or `Release`); `false`, nothing (the token no longer held the job). Truthy
 * exactly when something was written, so a caller that only asks whether it wrote reads it as before.
 */
export type Settled = boolean | "cancelled"

/** A job a reap took back (`Store.reap`): its attempt that expired, and what became of it. */
export interface ReapedJob {
  readonly id: string
  readonly queue: string
  readonly task: string
  readonly attempt: number
  readonly outcome: "retried" | "dead" | "cancelled"
  /** Retried: when it is visible again (the store's time, ms). */
  readonly runAt: number | undefined
}

/** A reaped job as an SQL store's reap returns it (`RETURNING id, queue, task, attempts, state, visible_at`). */
export interface ReapedRow {
  readonly id: string
  readonly queue: string
  readonly task: string
  readonly attempts: number | string | bigint
  readonly state: string
  readonly visible_at: number | string | bigint | null
}

export const reapedOf = (row: ReapedRow): ReapedJob => {
  const outcome = row.state === "queued" ? "retried" : row.state === "cancelled" ? "cancelled" : "dead"
  return {
    id: row.id,
    queue: row.queue,
    task: row.task,
    attempt: Number(row.attempts),
    outcome,
    runAt: outcome === "retried" && row.visible_at !== null ? Number(row.visible_at) : undefined
  }
}

export interface Heartbeat {
  /** Tokens whose job is no longer this claim's (reaped, settled elsewhere, purged). */
  readonly lost: ReadonlyArray<string>
  /** Tokens whose job was asked to stop by `cancel`. */
  readonly cancelled: ReadonlyArray<string>
  /**
   * Tokens whose lease this beat could not renew, and why: a store that renews each queue apart
   * (Redis, one node per queue on a Cluster) renews the others' when one queue's node fails or does
   * not answer. Their last renewal stands; a beat that renewed none fails instead.
   */
  readonly unrenewed?: { readonly tokens: ReadonlyArray<string>; readonly error: StoreError } | undefined
}

export interface QueueCounts {
  readonly queue: string
  readonly paused: boolean
  /** Waiting for the jobs they run after (`after`); absent on a store without `dependencies` (it has none). */
  readonly blocked?: number | undefined
  /** The queue's aging in milliseconds (`JobQueue.setAging`, or a consumer's `aging`); 0 for none. */
  readonly aging: number
  /** Visible now, waiting for a consumer. */
  readonly waiting: number
  /** Queued with a `visibleAt` in the future (delayed, or waiting for a retry). */
  readonly delayed: number
  readonly running: number
  readonly succeeded: number
  readonly dead: number
  readonly cancelled: number
  /** Waiting and delayed jobs per priority, highest first. */
  readonly queuedByPriority: ReadonlyArray<{ readonly priority: number; readonly count: number }>
  /** The queue's shared rate limit, with how many claims its window allows now; undefined if none. */
  readonly rateLimit: (QueueRateLimit & { readonly available: number }) | undefined
  /** When its hold ends (`JobQueue.holdQueue`, `snooze`'s `holdQueue`), while it is held; absent otherwise. */
  readonly heldUntil?: Date | undefined
  /**
   * The queue's cap on running jobs (`JobQueue.setConcurrency`) and how many run now; undefined if
   * none, or on a store without caps.
   */
  readonly concurrency?: { readonly limit: number; readonly running: number } | undefined
  /** The queue's cap on running jobs per `group` key (`JobQueue.setGroupConcurrency`); absent if none. */
  readonly groupConcurrency?: number | undefined
  /** How long and how many of the queue's finished jobs are kept (`JobQueue.setRetention`); undefined if not set. */
  readonly retention?: Retention | undefined
}

/**
 * How many of a queue's finished jobs of one state are kept: those that ended less than `age` ms
 * ago, and at most the newest `count` of them (by end time). A field left out does not limit.
 */
export interface Keep {
  readonly age?: number | undefined
  readonly count?: number | undefined
}

/** A queue's retention by final state (`JobQueue.setRetention`); a state left out is kept for good. */
export interface Retention {
  readonly succeeded?: Keep | undefined
  readonly dead?: Keep | undefined
  readonly cancelled?: Keep | undefined
}

/** The final states a retention names, in the order the stores apply them. */
export const RETAINED: ReadonlyArray<"succeeded" | "dead" | "cancelled"> = ["succeeded", "dead", "cancelled"]

/** A retention as the stores keep it (JSON text): only its known fields, numbers only. */
export const encodeRetention = (retention: Retention): string => JSON.stringify(retentionOf(retention) ?? {})

/**
 * A stored retention, read: only finite, non-negative numbers of known fields count, so that a row
 * written by hand (or by a later version with more fields) never makes a store delete more than
 * it says; undefined for none, or one that limits nothing.
 */
export const decodeRetention = (text: string | null | undefined): Retention | undefined => {
  if (typeof text !== "string" || text === "") return undefined
  try {
    return retentionOf(JSON.parse(text))
  } catch {
    return undefined
  }
}

const retentionOf = (value: unknown): Retention | undefined => {
  if (typeof value !== "object" || value === null) return undefined
  const out: Record<string, Keep> = {}
  for (const state of RETAINED) {
    const keep = (value as Record<string, unknown>)[state]
    if (typeof keep !== "object" || keep === null) continue
    const age = (keep as Record<string, unknown>).age
    const count = (keep as Record<string, unknown>).count
    const rule: { age?: number; count?: number } = {}
    if (typeof age === "number" && Number.isFinite(age) && age >= 0) rule.age = age
    if (typeof count === "number" && Number.isInteger(count) && count >= 0) rule.count = count
    if (rule.age !== undefined || rule.count !== undefined) out[state] = rule
  }
  return Object.keys(out).length === 0 ? undefined : out
}

/** A queue's counts' `retention` field: none when it has none (its counts as they were before retention). */
export const retentionField = (retention: Retention | undefined): { readonly retention?: Retention } =>
  retention === undefined ? {} : { retention }

/**
 * The most queues one `Store.retain` call visits. A consumer's retention call is cut off after its
 * maintenance bound (max(5 s, lease)): when every call walked all the queues with a retention, in
 * the same order each time, thousands of them (a queue per tenant) never got past the cut, and the
 * queues after it were never cleaned. Bounded, and resuming where the last call stopped, every
 * queue is visited within a bounded number of calls.
 */
export const RETAIN_QUEUES = 100

/**
 * Where a store's pass over its queues with a retention stands (see `Store.retain`), and how it
 * reads the next ones: `take` gives at most `limit` queues for this call, `visited` moves past one
 * once its rules are done (a call cut off midway keeps what it got through), `left` says, after the
 * call, whether queues are left in the pass. Per store instance: each process resumes its own pass.
 */
export interface RetainPlace<Q, E, R> {
  readonly take: (limit: number) => Effect.Effect<ReadonlyArray<Q>, E, R>
  readonly visited: (queue: Q) => void
  readonly left: () => boolean
}

/**
 * A pass by name (memory, SQLite, Postgres): `list(after, n)` reads up to `n` queues with a retention
 * whose names come after `after` (all: undefined), by name. It asks one more than it visits, to know
 * whether any are left; the pass starts again from the first once a call reaches the end.
 */
export const retainCursor = <Q extends { readonly name: string }, E, R>(
  list: (after: string | undefined, n: number) => Effect.Effect<ReadonlyArray<Q>, E, R>
): RetainPlace<Q, E, R> => {
  let after: string | undefined
  let found = 0
  let asked = 0
  return {
    take: (limit) =>
      Effect.map(list(after, limit + 1), (queues) => {
        found = queues.length
        asked = limit
        return queues.slice(0, limit)
      }),
    visited: (queue) => void (after = queue.name),
    left: () => {
      if (found > asked) return true
      after = undefined
      return false
    }
  }
}

/** What one `Store.retain` deleted, and whether a rule stopped at its batch (more may be due). */
export interface Retained {
  readonly deleted: number
  readonly more: boolean
}

/**
 * One `Store.retain` call, the shape every store shares: the next queues of its pass (at most
 * `limit`), each visited (`concurrency` at once), their deletions summed, and `more` when a rule
 * stopped at its batch or queues are left in the pass. The store gives only its statements.
 */
export const retainPass = <Q, E, R>(
  place: RetainPlace<Q, E, R>,
  limit: number,
  visit: (queue: Q) => Effect.Effect<Retained, E, R>,
  concurrency = 1
): Effect.Effect<Retained, E, R> =>
  Effect.gen(function*() {
    let deleted = 0
    let more = false
    const failed: Array<E> = []
    yield* Effect.forEach(yield* place.take(limit), (queue) =>
      // a queue whose statement fails is passed over too (until the next pass), so that one failing
      // every time (a corrupt row, a statement timeout) does not stop the pass at it for good; and
      // the others taken are still visited (not interrupted: their statements may have run, and a
      // call would go to doing them again), the call failing after with the first error
      Effect.match(visit(queue), {
        onFailure: (error) => {
          place.visited(queue)
          failed.push(error)
        },
        onSuccess: (retained) => {
          place.visited(queue)
          deleted += retained.deleted
          if (retained.more) more = true
        }
      }), { concurrency, discard: true })
    if (failed.length > 0) return yield* Effect.fail(failed[0]!)
    if (place.left()) more = true
    return { deleted, more }
  })

/** Rounds of deletions of at most `batch` each, one after another: their sum, and `more` if one filled its batch. */
export const retainRounds = <E, R>(
  batch: number,
  rounds: Iterable<Effect.Effect<number, E, R>>
): Effect.Effect<Retained, E, R> =>
  Effect.gen(function*() {
    let deleted = 0
    let more = false
    for (const round of rounds) {
      const n = yield* round
      deleted += n
      if (n >= batch) more = true
    }
    return { deleted, more }
  })

/**
 * A queue's retention as the SQL stores apply it: per state (`RETAINED`), its age rule's round, then
 * its count's, each a statement of the store's.
 */
export const retainRules = <E, R>(
  retention: Retention | undefined,
  batch: number,
  rules: {
    readonly age: (state: State, age: number) => Effect.Effect<number, E, R>
    readonly count: (state: State, count: number) => Effect.Effect<number, E, R>
  }
): Effect.Effect<Retained, E, R> =>
  retainRounds(
    batch,
    RETAINED.flatMap((state) => {
      const keep = retention?.[state]
      return [
        ...(keep?.age === undefined ? [] : [rules.age(state, keep.age)]),
        ...(keep?.count === undefined ? [] : [rules.count(state, keep.count)])
      ]
    })
  )

/** A queue's hold for its counts (`QueueCounts.heldUntil`): shown while it lasts, absent otherwise (every store alike). */
export const holdShown = (heldUntil: number | undefined, now: number): { readonly heldUntil?: Date } =>
  heldUntil !== undefined && heldUntil > now ? { heldUntil: new Date(heldUntil) } : {}

export interface ListFilter {
  readonly queue: string | undefined
  readonly states: ReadonlyArray<State> | undefined
  readonly limit: number
  /**
   * Of the `queued` jobs, only those visible at the store's now (`ready`) or later (`delayed`);
   * none: both. The store filters before the limit: told apart after it, a list of delayed jobs
   * missed every one past the oldest queued ones it read.
   */
  readonly waiting?: "ready" | "delayed" | undefined
  /**
   * Of the `cancelled` jobs, only those that expired unstarted (see `expiredAt`); false or none:
   * every one. The store filters before the limit: picked out after it, an expired job behind a
   * page of cancelled ones was never listed (the dashboard's dead and expired list missed it).
   */
  readonly expired?: boolean | undefined
}

/**
 * Whether a job is of the half of the queued ones `waiting` asks for at `now` (see
 * `ListFilter.waiting`), as the SQL stores' lists say it: a job visible at or before its creation
 * was never delayed (it only looks so to a now read before it was created).
 */
export const waitingAs = (job: JobRow, waiting: ListFilter["waiting"], now: number): boolean =>
  waiting === undefined || job.state !== "queued" ||
  (waiting === "delayed" ? job.visibleAt > now && job.visibleAt > job.createdAt : job.visibleAt <= now)

/** Whether a job is of the cancelled ones `expired` asks for (see `ListFilter.expired`). */
export const expiredAs = (job: JobRow, expired: ListFilter["expired"]): boolean =>
  expired !== true || job.state !== "cancelled" || expiredAt(job) !== undefined

/** How long the last attempt of a job that ended waited and ran (ms of store time). */
export interface Latency {
  /** From when it became visible (enqueued, its delay or retry backoff over) to its start. */
  readonly wait: number
  /** From its start to its end. */
  readonly run: number
}

/**
 * Where a chain of `Store.latencies` reads stands: the `until` of the read before, the next one's
 * `since`. Opaque, and only meaningful to the store that made it: the store's time on the memory,
 * SQLite and Redis stores, a snapshot of the transactions that had committed on Postgres.
 */
export type LatencyCursor = string

/**
 * The time in a latency cursor of a store whose cursors are its times (memory, SQLite, Redis):
 * undefined for none; a `StoreError` for a cursor it cannot have made.
 */
export const cursorTime = (since: LatencyCursor | undefined): Effect.Effect<number | undefined, StoreError> =>
  since === undefined ? Effect.undefined : /^\d{1,16}$/.test(since) ? Effect.succeed(Number(since)) : Effect.fail(badCursor(since))

/** The error of a latencies read given a cursor its store cannot have made. */
export const badCursor = (since: string) =>
  new StoreError({
    operation: "latencies",
    reason: `since: ${JSON.stringify(since)} is not a cursor of this store (expected the until of a read before)`
  })

/** The latencies of the jobs that ended between two reads of a chain. */
export interface Latencies {
  /** Where this read stood: the next read's `since`. */
  readonly until: LatencyCursor
  /** At most `limit` of them, the newest first. */
  readonly jobs: ReadonlyArray<Latency>
}

/** What `Store.configure` changes of a queue (an absent field stays as it is). */
export interface QueueSettings {
  readonly paused?: boolean | undefined
  readonly aging?: number | undefined
  readonly rateLimit?: QueueRateLimit | null | undefined
  /**
   * Holds the queue for this many ms from the store's now (`JobQueue.holdQueue`): no consumer, in
   * any process, claims its jobs before then. Replaces the hold before it (0 lifts it).
   */
  readonly holdFor?: number | undefined
  /**
   * Holds the queue at least this many ms from the store's now (a snooze's `holdQueue`): the hold
   * ends at the later of its end before and now + this, in the one statement or script that
   * writes it, so one job's short snooze does not cut another's longer hold.
   */
  readonly holdAtLeast?: number | undefined
  /** At most this many of the queue's jobs running at once, fleet-wide; null removes the cap. */
  readonly concurrency?: number | null | undefined
  /** At most this many jobs of one `group` of the queue running at once, fleet-wide; null removes the cap. */
  readonly groupConcurrency?: number | null | undefined
  /** The queue's retention, replacing the one before; null removes it. */
  readonly retention?: Retention | null | undefined
}

/**
 * Every operation returns promptly when interrupted (a consumer bounds its beats and reaps, and its
 * stop interrupts them; a Postgres write waits up to 500 ms for its cancel to be confirmed, so that
 * on a live server it does not commit after its caller left; but for a job's final settle, which
 * is batched and written by the store's own writer: one given up is better written than its job
 * run again; on Redis a command once sent runs when the server gets to it): what it leaves to
 * finish in the background (a Postgres statement's drain) ends before the store's close does,
 * which cuts the operations still awaited (no store operation outlives its store).
 */
export interface Store {
  /**
   * Adds a job; or, with `created: false`, returns the job that already has its id (whatever its
   * state: how repeatable jobs enqueue a tick once across processes), or the job of the same queue
   * holding the same dedup key (unfinished and not a started `dedupWhile: "queued"` one, or inside
   * its `dedupFor` window), first replacing its payload (and run time) if the new job's
   * `dedupReplace` asks and it waits; or, with `late`, nothing: none of those, and the store's
   * time is past the job's `notAfter`. A dependency (`after`) not in the store is `JobNotFound`; one
   * the store cannot keep for this job is `InvalidJobOptions` (a Redis Cluster: another queue's, in
   * another slot); either way nothing is stored.
   */
  readonly enqueue: (job: NewJob) => Effect.Effect<Enqueued, StoreError | JobNotFound | InvalidJobOptions>
  /**
   * Adds new jobs (the store names each) as `enqueue` would one after another, in their order (FIFO
   * within a priority), with a dedup key matching an unfinished job, or a job before it in the same
   * call, giving that job with `created: false`. One result per job, in order. Atomic where the store
   * can be: one transaction on SQLite and Postgres (multi-row INSERTs of 5,000 rows, each one JSON
   * parameter: see `insertAll`), one script per queue on Redis (a failure part way through a call of several
   * queues may leave some queues' jobs stored), but one script for the whole call on one Redis when
   * a job has dependencies (a graph across queues is stored whole or not at all). Idle consumers are woken once per call and queue.
   */
  readonly enqueueAll: (
    jobs: ReadonlyArray<FreshJob>
  ) => Effect.Effect<ReadonlyArray<{ readonly id: string; readonly created: boolean }>, StoreError | JobNotFound | InvalidJobOptions>
  readonly get: (id: string) => Effect.Effect<JobRow | undefined, StoreError>
  /**
   * A job's state and latest progress, without the rest of its row: what a progress reader looks
   * at on every change it hears of (its payload and result may be large, and are not read).
   */
  readonly progressOf: (id: string) => Effect.Effect<ProgressOf | undefined, StoreError>
  /** Oldest first. */
  readonly list: (filter: ListFilter) => Effect.Effect<ReadonlyArray<JobRow>, StoreError>
  /**
   * A queued or blocked job becomes cancelled at once (its dependents as `NewJob.after` says); a
   * running one is marked, and its consumer's next heartbeat stops it. A marked job's `Retry` or `Release` settle ends it
   * cancelled (no exit) instead of queueing it again, as a reap does.
   */
  readonly cancel: (id: string) => Effect.Effect<"cancelled" | "requested" | "finished" | "missing", StoreError>
  /**
   * A dead or expired job (see `expiredAt`) goes back to the queue with its attempts reset (an
   * expired one without its expiry: it runs whenever a consumer takes it), and a job its dependency
   * cancelled (`failedDependency`) back to blocked (queued if its dependencies have all succeeded
   * since); false if it is none of these, if an unfinished job of its queue holds its dedup key, or
   * if a dependency it still waits for is no longer in the store.
   */
  readonly redrive: (id: string) => Effect.Effect<boolean, StoreError>
  /** Deletes jobs in `states` (final ones) that finished before `before`; returns how many. */
  readonly purge: (before: number, states: ReadonlyArray<State>) => Effect.Effect<number, StoreError>
  /**
   * A queue's settings. `rateLimit` (null removes it) bounds the claims of the queue by all
   * consumers together: at most `limit` in any window of `interval` ms of store time. The store keeps
   * the times of the last `limit` claims (a sliding-window log, as the in-process pools do) and
   * updates it in the claim's own transaction; a new limit keeps the latest of them.
   */
  readonly configure: (queue: string, settings: QueueSettings) => Effect.Effect<void, StoreError>
  /**
   * Applies every queue's retention (`QueueSettings.retention`) once: for each queue and final
   * state it names, deletes at most `batch` of the jobs past it (those that ended more than `age`
   * ago, or are not among the newest `count`), oldest first, as `purge` deletes them. Bounded and
   * idempotent: what several consumers run at once deletes each job once, and a queue's rule that
   * deleted a full batch says `more`. Only queues with a retention are looked at, at most `queues`
   * of them per call (`RETAIN_QUEUES` unless told), each call resuming after the last queue the
   * store's previous call visited (by name; after the last, from the first again), and `more` says
   * that queues are left in the pass. The consumers' reaper runs it (no consumer running, nothing
   * is deleted).
   */
  readonly retain: (batch: number, queues?: number) => Effect.Effect<Retained, StoreError>
  readonly counts: (queue: string) => Effect.Effect<QueueCounts, StoreError>
  /**
   * The wait and run times of the last attempts of a queue's jobs that succeeded or went dead after
   * the read that returned `since` (undefined: none yet; the read only says where it stands): the
   * newest `limit`, so a busy queue costs a bounded read (an index range). In a chain of reads
   * (each `since` the `until` of the one before) every such end counts once, in the first read
   * that can see it: an end stamped before a read but committed after it is in the next one, not
   * lost between them. Cancelled jobs are left out: one cancelled while it waited for a retry has
   * no attempt of its own to show. The dashboard's latency chart reads it each interval.
   */
  readonly latencies: (
    queue: string,
    since: LatencyCursor | undefined,
    limit: number
  ) => Effect.Effect<Latencies, StoreError>
  /**
   * Claims up to `limit` visible jobs of unpaused queues, best first (rank, then FIFO): each
   * becomes running with a fresh token, its attempts + 1 and a lease of `lease` ms. A queue with a
   * rate limit gives at most what its window allows, atomically with the claim. A job past its
   * `expireAt` is never handed out: the claim ends those it meets (cancelled), in its own step,
   * and clears the `expireAt` of those it takes.
   */
  readonly claim: (request: ClaimRequest) => Effect.Effect<Claimed, StoreError>
  /** Extends the leases of these claims by `lease` ms from now; says which are lost or cancelled. */
  readonly heartbeat: (tokens: ReadonlyArray<string>, lease: number) => Effect.Effect<Heartbeat, StoreError>
  /** Records a running attempt's progress (JSON text); false if the token no longer holds the job. */
  readonly progress: (token: string, progress: string) => Effect.Effect<boolean, StoreError>
  /**
   * Ends an attempt; false (nothing written) if the token no longer holds the job, `"cancelled"` if
   * a `Retry` or `Release` ended it cancelled instead (see `Settled`, and `cancel`).
   */
  readonly settle: (token: string, settlement: Settlement) => Effect.Effect<Settled, StoreError>
  /**
   * Takes back running jobs whose lease expired: dead (exit null: its lease expired) when no attempt
   * is left, cancelled if it was being cancelled, else back to the queue after the job's own delay
   * for its attempt count: its backoff's (`{ exponential, factor, max }`: `exponential ×
   * factor^(attempts − 1)` at most `max`; `{ fixed }`), computed by the store as `Backoff.delay` does
   * (rounded half up to a millisecond, at most `Backoff.MAX_DELAY`); for a job naming a policy,
   * `policies[name][attempts - 1]`; else (no retry of its own, or a name not in `policies`)
   * `backoff[attempts - 1]`. The last entry of a list serves later attempts. Returns how many.
   * `reaped`, if given, is told of each job taken back, from what the reap's own statements return
   * (no other round trip): a consumer's lifecycle events (`onEvent`).
   *
   * It also ends up to `EXPIRE_BATCH` queued jobs of any queue (paused, unconsumed) past their
   * `expireAt`, soonest first: cancelled at its time, so that their awaiters hear. They are not
   * counted, nor told to `reaped` (no consumer saw them).
   */
  readonly reap: (
    backoff: ReadonlyArray<number>,
    policies?: Readonly<Record<string, ReadonlyArray<number>>>,
    reaped?: (job: ReapedJob) => void
  ) => Effect.Effect<number, StoreError>
  /**
   * Waits until this store instance sees a change made through it (in this process), or `millis`
   * pass: other processes' changes are seen by polling (or sooner, when the store hears of them).
   * With `since` (a `version` read before looking at the store), a change seen since then ends
   * the wait at once: an asynchronous store's change can land while that look is in flight.
   * `idleOn`: the wait is a consumer's whose claim of these queues found nothing (an awaiter's
   * passes none): a store told of other processes' jobs per queue (Redis' markers) listens for a
   * queue only while a consumer of it waits, and leaves the wake-up to the others otherwise.
   * `tasks`: the waiting consumer's tasks (none: any task). A store that looks for ready jobs on
   * its own (Redis' idle watch, for jobs whose wake-up was lost) wakes it only for jobs of these:
   * jobs of other tasks, or held back, would make it claim nothing at every look.
   */
  readonly wait: (
    millis: number,
    since?: number,
    idleOn?: ReadonlyArray<string>,
    tasks?: ReadonlyArray<string>
  ) => Effect.Effect<void>
  /** How many changes this store instance has seen; see `wait`. */
  readonly version: Effect.Effect<number>
  /**
   * Waits until a cancel of a running job is requested through this store instance, or heard of
   * from another process (Postgres: NOTIFY), or `millis` pass: a consumer's heartbeat waits on it,
   * so that a cancel reaches the job at once rather than at the next heartbeat. `since` is a
   * `cancelVersion` read before the last heartbeat, as for `wait`.
   */
  readonly waitCancel: (millis: number, since?: number) => Effect.Effect<void>
  /** How many cancel requests this store instance has seen; see `waitCancel`. */
  readonly cancelVersion: Effect.Effect<number>
  /** The store's time. */
  readonly now: Effect.Effect<number>
  /**
   * True once the store's scope has closed (its layer released): its operations fail from then on,
   * and its waiters wake. A consumer that outlives its store stops at this, instead of retrying
   * (and logging) until its own scope closes.
   */
  readonly closed: Effect.Effect<boolean>
  /**
   * Whether it keeps job dependencies (`NewJob.after`): a store without them is never given a job
   * with `after` (`JobQueue.enqueue` refuses it with `InvalidJobOptions` naming the store).
   */
  readonly dependencies?: true | undefined
  /** The store's name in errors ("SQLite", "Postgres", "Redis", "memory"); absent: "this store". */
  readonly kind?: string | undefined
}

/**
 * The store service. Its layers are in `src/JobStore.ts`.
 */
export class JobStore extends Context.Service<JobStore, Store>()("effect-workpool/JobStore") {}

/**
 * A latency from a row's times. Never negative: a Postgres claim stamps the statement's clock, a
 * settle its transaction's, and a moment between them must not read as time running backwards.
 */
export const latencyOf = (visibleAt: number, startedAt: number, finishedAt: number): Latency => ({
  wait: Math.max(0, startedAt - visibleAt),
  run: Math.max(0, finishedAt - startedAt)
})

/**
 * The static sort key of a job, the same order as the in-process scheduler's: higher first, FIFO
 * within equal keys. With aging, a job gains one priority level per `aging` ms since it became
 * visible, which is `priority × aging − visibleAt`: the key never changes while it waits. A job
 * enqueued with a `runAt` already past is visible from its enqueue, not from then: ranked from
 * its `runAt`, an hour-old one passed 3,600 levels of a 1-second aging at once.
 */
export const rank = (priority: number, aging: number, visibleAt: number): number =>
  aging > 0 ? priority * aging - visibleAt : priority

/**
 * A queue's sliding window, as the stores keep it: the times of its last claims (at most `limit`,
 * `size` of them), of which `oldest` are the first few, oldest first. Returns how many of `wanted`
 * claims the window allows at `now` (the slots never used, then the oldest times at least
 * `interval` old) and, when it allows fewer, when the next slot frees once they are taken.
 */
export const windowAllows = (
  oldest: ReadonlyArray<number>,
  size: number,
  rate: QueueRateLimit,
  now: number,
  wanted: number
): { readonly allowed: number; readonly nextAt: number } => {
  let allowed = Math.max(0, rate.limit - size)
  let i = 0
  while (allowed < wanted && i < oldest.length && now - oldest[i]! >= rate.interval) {
    allowed++
    i++
  }
  if (allowed >= wanted) return { allowed: wanted, nextAt: now }
  // the slot after those taken: an older claim's, or else one of the claims made now
  return { allowed, nextAt: i < oldest.length ? oldest[i]! + rate.interval : now + rate.interval }
}

/** A rate-limited queue as a claim reads it, its `wp_queue` row: its limit, and how many claims its window holds. */
export interface LimitedQueue {
  readonly name: string
  readonly rate_limit: number
  readonly rate_interval_ms: number
  readonly rate_count: number
}

/**
 * A rate-limited queue's window at a claim (of the SQL stores, which keep it in rows): its `count`
 * claims, the `oldest` of them (id and time, oldest first: those that may drop out), and what it
 * allows of the claim (see `windowAllows`).
 */
export interface ClaimWindow<Id> {
  readonly name: string
  readonly rate: QueueRateLimit
  readonly count: number
  readonly oldest: ReadonlyArray<{ readonly id: Id; readonly at: number }>
  readonly allowed: number
  readonly nextAt: number
}

/** The window of `queue` for a claim of `limit` jobs at `now`, its oldest claims read. */
export const claimWindow = <Id>(
  queue: LimitedQueue,
  oldest: ReadonlyArray<{ readonly id: Id; readonly at: number }>,
  now: number,
  limit: number
): ClaimWindow<Id> => {
  const rate = { limit: queue.rate_limit, interval: queue.rate_interval_ms }
  const { allowed, nextAt } = windowAllows(oldest.map((c) => c.at), queue.rate_count, rate, now, limit)
  return { name: queue.name, rate, count: queue.rate_count, oldest, allowed, nextAt }
}

/**
 * What a claim of `limit` jobs that picked `picked` writes to the windows it took from: each one's
 * claims taken, the oldest claims that drop out (a window keeps the last `rate.limit`) and its count
 * after; and how long it was held back (`limitedFor`, 0 when not): when it came up short, the
 * soonest that a window which gave all it had frees its next slot.
 */
export const takeFromWindows = <Id>(
  windows: ReadonlyArray<ClaimWindow<Id>>,
  picked: ReadonlyArray<{ readonly queue: string }>,
  limit: number,
  now: number
): {
  readonly taken: ReadonlyArray<{ readonly name: string; readonly taken: number; readonly dropped: ReadonlyArray<Id>; readonly count: number }>
  readonly limitedFor: number
} => {
  const taken: Array<{ name: string; taken: number; dropped: ReadonlyArray<Id>; count: number }> = []
  let limitedFor = 0
  for (const window of windows) {
    const n = picked.filter((job) => job.queue === window.name).length
    if (n > 0) {
      const drop = Math.max(0, window.count + n - window.rate.limit)
      taken.push({ name: window.name, taken: n, dropped: window.oldest.slice(0, drop).map((c) => c.id), count: window.count + n - drop })
    }
    // held back: its window gave all it had, and the queue may have more
    const held = n === window.allowed && window.allowed < limit && picked.length < limit
    const wait = window.nextAt - now
    if (held && wait > 0 && (limitedFor === 0 || wait < limitedFor)) limitedFor = wait
  }
  return { taken, limitedFor }
}

/**
 * The capped queues that may have held a claim of `limit` that picked `picked` back: it came up
 * short, and each of them (`free`: its free slots at the claim) gave all its slots allowed. Held
 * back only if one of them has a job left ready for the claim's tasks (the store looks: a queue at
 * its cap with nothing waiting holds nothing back, and its consumer's free slots are not
 * `rateLimited`); the claim's answer then says `capped`.
 */
export const fullQueues = (
  free: ReadonlyMap<string, number>,
  picked: ReadonlyArray<{ readonly queue: string }>,
  limit: number
): Array<string> => {
  if (free.size === 0 || picked.length >= limit) return []
  return [...free].filter(([queue, slots]) => picked.filter((job) => job.queue === queue).length >= slots).map(([queue]) => queue)
}

/** A span as stored with a job: its trace and span ids, and whether it was sampled. */
export interface TraceContext {
  readonly traceId: string
  readonly spanId: string
  readonly sampled: boolean
}

/** The stored form of a `TraceContext` (JSON text: ids of any tracer, whatever characters they use). */
export const encodeTrace = (trace: TraceContext): string =>
  JSON.stringify([trace.traceId, trace.spanId, trace.sampled])

/** Reads a stored trace; anything else (a row from an older version, a hand-written one) is no trace. */
export const decodeTrace = (text: string | null | undefined): TraceContext | undefined => {
  if (typeof text !== "string") return undefined
  try {
    const value: unknown = JSON.parse(text)
    if (
      Array.isArray(value) && typeof value[0] === "string" && typeof value[1] === "string" && typeof value[2] === "boolean"
    ) return { traceId: value[0], spanId: value[1], sampled: value[2] }
  } catch {
    // not JSON
  }
  return undefined
}
