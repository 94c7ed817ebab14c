/**
 * The memory store: one process, no persistence, time from the Effect `Clock` (so `TestClock`
 * drives delays, leases and retries). It exists to test the durable semantics deterministically;
 * every other store must behave the same (the conformance suite runs on each).
 *
 * @internal
 */
import { Clock, Effect } from "effect"
import type * as Scope from "effect/Scope"
import {
  type Claim,
  type Claimed,
  type ClaimRequest,
  EXPIRE_BATCH,
  expiredAs,
  expiredAt,
  type FailedDependency,
  FINAL_STATES,
  type Heartbeat,
  pastExpiry,
  type JobRow,
  type ListFilter,
  cursorTime,
  type Latencies,
  type Latency,
  type LatencyCursor,
  latencyOf,
  type FreshJob,
  withItemsNamed,
  type Keep,
  type NewJob,
  type QueueCounts,
  type QueueRateLimit,
  type QueueSettings,
  rank,
  type ReapedJob,
  RETAIN_QUEUES,
  RETAINED,
  retainCursor,
  retainPass,
  retainRounds,
  retentionField,
  type Retention,
  roundRobin,
  type Settled,
  type Settlement,
  type State,
  type Store,
  byKeys,
  keepTurns,
  waitingAs,
  windowAllows,
  withId,
  holdShown
} from "./model.ts"
import { JobNotFound } from "../../DurableError.ts"
import { makeSignal } from "./signal.ts"
import * as Closing from "./closing.ts"
import * as Backoff from "../durable/backoff.ts"

/** A reaped job's delay (see `Store.reap`): its own backoff, its named policy's list, or `backoff`. */
const reapDelay = (
  job: JobRow,
  backoff: ReadonlyArray<number>,
  policies: Readonly<Record<string, ReadonlyArray<number>>>
): number => {
  const stored = Backoff.decode(job.retry)
  if (stored !== undefined && !("policy" in stored)) return Backoff.delay(stored, job.attempts)
  const list = (stored !== undefined && Object.hasOwn(policies, stored.policy) ? policies[stored.policy] : undefined) ?? backoff
  return list[Math.min(job.attempts, list.length) - 1] ?? 0
}

interface Row {
  job: JobRow
  readonly seq: number
  rank: number
  token: string | null
  leaseUntil: number
  /** A `dedupWhile: "queued"` job's key, once it started: no longer held (see `holds`). */
  released: boolean
  readonly dedupQueued: boolean
  /** The end of its throttle window (`dedupFor`), store time; null none. */
  readonly dedupUntil: number | null
  /** The jobs that run after it (`NewJob.after`), by id; absent: none. Kept until the row goes. */
  dependents?: Array<string>
  /**
   * Its dependencies not yet succeeded, by id (absent: none): what it needs of them, so that a
   * finished one's row may be deleted (retention, purge) while it waits.
   */
  pending?: Set<string>
  /** `afterFailure: "run"`: a dependency ending dead or cancelled counts as done. */
  runOnFailure?: boolean
}

/** Whether a job holds its dedup key at `now`: by its state (see `NewJob.dedupWhile`) or its window. */
const holds = (row: Row, now: number): boolean =>
  row.job.dedupKey !== null && (
    (waits(row.job) && !row.released) ||
    (row.job.state === "running" && !row.dedupQueued) ||
    (row.dedupUntil !== null && now < row.dedupUntil)
  )

/** Whether a job has yet to start: queued (or delayed), or blocked by its dependencies. */
const waits = (job: JobRow): boolean => job.state === "queued" || job.state === "blocked"

/** Whether a job has yet to finish (blocked, queued, delayed or running). */
const unfinished = (job: JobRow): boolean => waits(job) || job.state === "running"

interface QueueState {
  paused: boolean
  /** No claims before this time (`JobQueue.holdQueue`); 0 for none. */
  heldUntil: number
  aging: number
  rate: QueueRateLimit | undefined
  /** The times of the last `rate.limit` claims, oldest first. */
  times: Array<number>
  /** At most this many of the queue's jobs running at once (`setConcurrency`); undefined: no cap. */
  concurrency: number | undefined
  /** At most this many jobs of one `group` running at once (`setGroupConcurrency`); undefined: no cap. */
  groupConcurrency?: number | undefined
  /** The key a claim of the queue served last, under a per-key cap: the next claim starts after it. */
  groupCursor?: string | null | undefined
  retention?: Retention | undefined
}

/** The key of a queue's group, in a claim's count of running jobs per key. */
const groupKey = (queue: string, group: string) => `${queue.length}:${queue}${group}`

/** The settings of a queue never configured: read only (a claim records times only under a rate limit, set by configure). */
const UNCONFIGURED: QueueState = Object.freeze({
  paused: false,
  heldUntil: 0,
  aging: 0,
  rate: undefined,
  times: Object.freeze([]) as unknown as Array<number>,
  concurrency: undefined
})

export const make: Effect.Effect<Store, never, Scope.Scope> = Effect.gen(function*() {
  const clock = yield* Clock.Clock
  const time = () => clock.currentTimeMillisUnsafe()
  const rows = new Map<string, Row>()
  const byToken = new Map<string, Row>()
  const queues = new Map<string, QueueState>()
  const signal = makeSignal({ clock })
  const cancels = makeSignal()
  const closing = yield* Closing.make([signal, cancels])
  let seq = 0

  /** A queue's settings: those of a queue never configured are the defaults, and kept nowhere. */
  const queueOf = (name: string): QueueState => queues.get(name) ?? UNCONFIGURED
  /** A queue's settings to change: kept from then on (a queue per tenant is no entry per tenant until configured). */
  const configured = (name: string) => {
    let queue = queues.get(name)
    if (queue === undefined) queues.set(name, queue = { paused: false, heldUntil: 0, aging: 0, rate: undefined, times: [], concurrency: undefined })
    return queue
  }
  const update = (row: Row, patch: Partial<JobRow>) => {
    row.job = { ...row.job, ...patch }
  }
  const endLease = (row: Row) => {
    if (row.token !== null) byToken.delete(row.token)
    row.token = null
  }
  /** Ends a job at `now` in the final state `patch` gives, and what waits for it as that end says (see `settled`). */
  const end = (row: Row, patch: Partial<JobRow> & { readonly state: "succeeded" | "dead" | "cancelled" }, now: number) => {
    update(row, { ...patch, finishedAt: now })
    settled(row, now, cancelledForGood(row.job))
  }
  /** Ends a waiting job past its expiry (see `expiredAt`): cancelled, at `now`, as its dependents see it too. */
  const expire = (row: Row, now: number) => end(row, { state: "cancelled", exit: null }, now)
  const changed = <A>(a: A): A => {
    signal.notify()
    return a
  }
  /** A job that becomes visible in `delay` ms: its waiters wake then (at once if it is due now). */
  const changedIn = <A>(delay: number, a: A): A => {
    signal.notifyIn(delay)
    return a
  }

  /** The first dependency of `jobs` not in the store: their enqueue stores nothing (see `NewJob.after`). */
  const missingDependency = (jobs: ReadonlyArray<NewJob>): JobNotFound | undefined => {
    for (const job of jobs) {
      for (const id of job.after ?? []) if (!rows.has(id)) return new JobNotFound({ id })
    }
    return undefined
  }

  /** Whether a blocked job may run: every dependency succeeded, or (`afterFailure: "run"`) ended. */
  const unblocked = (row: Row): boolean =>
    row.pending!.size === 0 ||
    row.runOnFailure === true && Array.from(row.pending!).every((id) => {
      // a dependency not succeeded whose row is gone ended (only finished jobs are deleted)
      const dependency = rows.get(id)?.job
      return dependency === undefined || FINAL_STATES.includes(dependency.state)
    })

  /** Cancelled neither by a dependency nor by its expiry: no redrive puts it back. */
  const cancelledForGood = (job: JobRow): boolean =>
    job.state === "cancelled" && job.failedDependency == null && expiredAt(job) === undefined

  /**
   * Whether what a job still waits for can all succeed yet, so that it is not redriven to stay blocked
   * for ever: with `afterFailure: "run"`, whatever their ends (a failure is done for it); otherwise
   * none gone (a finished job deleted) or cancelled for good, and each one dead, expired or
   * cancelled by a dependency of its own (which a redrive puts back to wait) only if what it waits
   * for can, up the chain. Each job is looked at once (a diamond is not walked twice).
   */
  const canAllSucceed = (row: Row): boolean => {
    if (cancelledForGood(row.job)) return false
    const seen = new Set<string>()
    const work = [row]
    for (let next = work.pop(); next !== undefined; next = work.pop()) {
      if (next.runOnFailure === true) continue
      for (const id of next.pending ?? []) {
        if (seen.has(id)) continue
        seen.add(id)
        const dependency = rows.get(id)
        if (dependency === undefined) return false
        if (cancelledForGood(dependency.job)) return false
        work.push(dependency)
      }
    }
    return true
  }

  /** A blocked job's dependencies done: queued, visible from its own run time or now, whichever is later. */
  const release = (row: Row, now: number) => {
    const visibleAt = Math.max(row.job.visibleAt, now)
    update(row, { state: "queued", visibleAt })
    row.rank = rank(row.job.priority, queueOf(row.job.queue).aging, visibleAt)
    signal.notifyIn(visibleAt - now)
  }

  /** Ends a blocked job cancelled by its dependency's end (`failedDependency`, read by its awaiters). */
  const cancelledBy = (row: Row, failed: FailedDependency, now: number) => {
    // cancelled by its dependency, not expired: its deadline goes (a redrive runs it with none)
    update(row, { state: "cancelled", exit: null, finishedAt: now, failedDependency: failed, expireAt: null })
    signal.notify()
  }

  /**
   * After `ended` reached a final state: each blocked dependent released if it may run now, or ended
   * cancelled by it (and then its own dependents, in the same step). A succeeded one is struck off
   * its dependents' pending ones whatever their state, so that a dependent redriven later waits for
   * what it still needs only. `doomed`: `ended` could succeed until now and never can from now on
   * (cancelled for good, or deleted: see `drop`).
   */
  const settled = (ended: Row, now: number, doomed = false) => {
    const work = [ended]
    // nor can what waits for it (ended, or cancelled here): each of those ended waiting for one is
    // walked too, once, for jobs redriven to wait for it. Only then: a job that could already never
    // succeed had its walk when it became so, and one walk per job over a graph's life keeps a
    // chain's retention linear
    const walked = new Set<string>()
    for (let row = work.pop(); row !== undefined; row = work.pop()) {
      if (row.dependents === undefined) continue
      const { id, state } = row.job
      for (const dependentId of row.dependents) {
        const dependent = rows.get(dependentId)
        if (dependent?.pending === undefined) continue
        if (state === "succeeded" && dependent.pending.delete(id)) update(dependent, { waitingFor: dependent.pending.size })
        if (
          doomed && dependent.job.state === "cancelled" && dependent.runOnFailure !== true &&
          dependent.pending.has(id) && !walked.has(dependentId)
        ) {
          walked.add(dependentId)
          work.push(dependent)
        }
        if (dependent.job.state !== "blocked") continue
        if (state !== "succeeded" && dependent.runOnFailure !== true) {
          // past its own expiry, which no claim or reap met yet: it expired first, and reads so (as
          // a cancel of it does)
          if (pastExpiry(dependent.job, now)) update(dependent, { state: "cancelled", finishedAt: now, exit: null })
          else cancelledBy(dependent, { id, state: state as FailedDependency["state"] }, now)
          work.push(dependent)
        } else if (unblocked(dependent)) release(dependent, now)
      }
    }
  }

  /**
   * Deletes a finished job (purge, retention). One that did not succeed first ends what still
   * waits for it as its end did: a dependent redriven back to blocked since would wait for ever
   * (cancelled by it, or released with `afterFailure: "run"`). So would a job redriven to wait for
   * one it cancelled (or that expired blocked waiting for it), which no redrive can put back now:
   * each such job is cancelled by its own dependency, transitively (unless it could already never
   * succeed: then that was done when it became so).
   */
  const drop = (row: Row, now: number) => {
    if (row.job.state !== "succeeded") settled(row, now, canAllSucceed(row))
    rows.delete(row.job.id)
  }

  /**
   * A new job's dependencies (`NewJob.after`, all in the store): it waits for those not yet
   * succeeded (blocked), or runs at once, or is cancelled at once by one already dead or cancelled.
   */
  const attach = (row: Row, after: ReadonlyArray<string>, now: number) => {
    const pending = new Set<string>()
    let failed: FailedDependency | undefined
    for (const id of after) {
      const dependency = rows.get(id)!
      ;(dependency.dependents ??= []).push(row.job.id)
      const state = dependency.job.state
      if (state === "succeeded") continue
      pending.add(id)
      if (failed === undefined && (state === "dead" || state === "cancelled")) failed = { id, state }
    }
    row.pending = pending
    if (failed !== undefined && row.runOnFailure !== true) {
      update(row, { state: "cancelled", finishedAt: now, failedDependency: failed, waitingFor: pending.size, expireAt: null })
    } else if (!unblocked(row)) update(row, { state: "blocked", waitingFor: pending.size })
    else update(row, { waitingFor: pending.size })
  }

  /** The key of a dedup key in its queue, in `holders`. */
  const holderKey = (queue: string, dedupKey: string) => `${queue.length}:${queue}${dedupKey}`
  /**
   * The jobs holding dedup keys (see `holds`), by `holderKey`: read once for a batch, not once per
   * job. The first holder of a key, as `add` finds it alone: an unfinished one before a finished
   * one's window (a redrive ignores windows, so a key may have both).
   */
  const holders = () => {
    const found = new Map<string, string>()
    const now = time()
    for (const row of rows.values()) {
      if (!holds(row, now)) continue
      const key = holderKey(row.job.queue, row.job.dedupKey!)
      const first = found.get(key)
      if (first === undefined || !unfinished(rows.get(first)!.job) && unfinished(row.job)) found.set(key, row.job.id)
    }
    return found
  }

  /**
   * A dedup hit: the holder's handle, its payload (and run time) replaced first if `job` asks for it
   * and the holder waits (see `NewJob.dedupReplace`); `visibleIn` when its run time moved.
   */
  const replaced = (row: Row, job: NewJob): { readonly id: string; readonly created: boolean; readonly visibleIn?: number } => {
    if (job.dedupReplace === undefined || !waits(row.job) || row.job.task !== job.task) return { id: row.job.id, created: false }
    if (job.dedupReplace === "payload") {
      update(row, { payload: job.payload })
      return { id: row.job.id, created: false }
    }
    const now = time()
    const visibleAt = job.runAt ?? now + job.delay
    update(row, { payload: job.payload, visibleAt })
    row.rank = rank(row.job.priority, queueOf(row.job.queue).aging, Math.max(visibleAt, now))
    return { id: row.job.id, created: false, visibleIn: visibleAt - now }
  }

  /**
   * Adds a job, waking no one: `visibleIn` says when a created one is due. `held`: a batch's
   * holders of dedup keys (see `holders`), kept up to date here; without it, read for this job.
   */
  const add = (
    input: NewJob,
    held?: Map<string, string>
  ): { readonly id: string; readonly created: boolean; readonly late?: true; readonly visibleIn?: number } => {
    const job = withId(input)
    if (rows.has(job.id)) return { id: job.id, created: false }
    if (job.dedupKey !== null) {
      const keys = held ?? holders()
      const holder = keys.get(holderKey(job.queue, job.dedupKey))
      if (holder !== undefined) {
        const row = rows.get(holder)!
        // a holder past its expiry is met here, as a claim would meet it: ended, the key free
        // (unless its `dedupFor` window still holds it)
        if (pastExpiry(row.job, time())) expire(row, time())
        if (holds(row, time())) return replaced(row, job)
      }
      keys.set(holderKey(job.queue, job.dedupKey), job.id)
    }
    const now = time()
    if (job.notAfter !== undefined && now > job.notAfter) return { id: job.id, created: false, late: true }
    const visibleAt = job.runAt ?? now + job.delay
    const row: Row = {
      job: {
        id: job.id,
        queue: job.queue,
        task: job.task,
        payload: job.payload,
        priority: job.priority,
        dedupKey: job.dedupKey,
        state: "queued",
        attempts: 0,
        maxAttempts: job.maxAttempts,
        timeout: job.timeout,
        createdAt: now,
        visibleAt,
        startedAt: null,
        finishedAt: null,
        cancelRequested: false,
        exit: null,
        progress: null,
        trace: job.trace ?? null,
        retry: job.retry ?? null,
        group: job.group ?? null,
        expireAt: job.expireIn === undefined ? null : now + job.expireIn
      },
      seq: ++seq,
      // a runAt in the past is waited for from now (see model.rank)
      rank: rank(job.priority, queueOf(job.queue).aging, Math.max(visibleAt, now)),
      token: null,
      leaseUntil: 0,
      released: false,
      dedupQueued: job.dedupWhile === "queued",
      dedupUntil: job.dedupFor === undefined ? null : now + job.dedupFor
    }
    rows.set(job.id, row)
    if (job.after !== undefined && job.after.length > 0) {
      if (job.afterFailure === "run") row.runOnFailure = true
      attach(row, job.after, now)
      // blocked or cancelled: no consumer has anything to look at
      if (row.job.state !== "queued") return { id: job.id, created: true }
    }
    return { id: job.id, created: true, visibleIn: visibleAt - now }
  }
  const enqueue = (input: NewJob) =>
    Effect.suspend(() => {
      const missing = input.after === undefined ? undefined : missingDependency([input])
      if (missing !== undefined) return Effect.fail(missing)
      const { id, created, late, visibleIn } = add(input)
      return Effect.succeed(
        visibleIn === undefined ? late ? { id, created, late } : { id, created } : changedIn(visibleIn, { id, created })
      )
    })
  const enqueueAll = (jobs: ReadonlyArray<FreshJob>) =>
    Effect.suspend(() => {
      const missing = missingDependency(jobs)
      return missing === undefined ? Effect.sync(() => addAll(jobs)) : Effect.fail(missing)
    })
  /** `enqueueAll`'s jobs added in order, once their dependencies are known to be there. */
  const addAll = (jobs: ReadonlyArray<FreshJob>) => {
    let soonest = Infinity
    const held = jobs.some((job) => job.dedupKey !== null) ? holders() : undefined
    const out: Array<{ readonly id: string; readonly created: boolean }> = []
    for (const job of jobs) {
      // the call's own jobs it runs after, named now (a dedup hit's: the holder)
      const { id, created, visibleIn } = add(withItemsNamed(job, out), held)
      if (visibleIn !== undefined && visibleIn < soonest) soonest = visibleIn
      out.push({ id, created })
    }
    return soonest === Infinity ? out : changedIn(soonest, out)
  }

  const list = (filter: ListFilter) =>
    Effect.sync(() => {
      const out: Array<JobRow> = []
      const now = time()
      for (const row of rows.values()) {
        if (out.length >= filter.limit) break
        if (filter.queue !== undefined && row.job.queue !== filter.queue) continue
        if (filter.states !== undefined && !filter.states.includes(row.job.state)) continue
        if (!waitingAs(row.job, filter.waiting, now)) continue
        if (!expiredAs(row.job, filter.expired)) continue
        out.push(row.job)
      }
      return out
    })

  const cancel = (id: string) =>
    Effect.sync(() => {
      const row = rows.get(id)
      if (row === undefined) return "missing" as const
      switch (row.job.state) {
        case "blocked":
        case "queued": {
          end(row, { state: "cancelled", exit: null }, time())
          return changed("cancelled" as const)
        }
        case "running": {
          update(row, { cancelRequested: true })
          cancels.notify()
          return changed("requested" as const)
        }
        default:
          return "finished" as const
      }
    })

  const redrive = (id: string) =>
    Effect.sync(() => {
      const row = rows.get(id)
      if (row === undefined) return false
      // a job its dependency cancelled may be redriven too: it waits for what it still needs
      const byDependency = row.job.state === "cancelled" && row.job.failedDependency != null
      if (row.job.state !== "dead" && !byDependency && expiredAt(row.job) === undefined) return false
      if (!canAllSucceed(row)) return false
      const key = row.job.dedupKey
      if (key !== null) {
        // as the SQL stores' unique index: a window (`dedupFor`) does not hold a redrive back
        for (const other of rows.values()) {
          const job = other.job
          if (
            job.queue === row.job.queue && job.dedupKey === key &&
            ((waits(job) && !other.released) || (job.state === "running" && !other.dedupQueued))
          ) return false
        }
      }
      // a redriven "queued"-mode job holds its key again until it starts
      row.released = false
      const now = time()
      // a new run from the start: its exit alone stays, which awaiters ignore until the new run ends
      update(row, {
        state: "queued",
        attempts: 0,
        visibleAt: now,
        startedAt: null,
        finishedAt: null,
        cancelRequested: false,
        progress: null,
        expireAt: null,
        failedDependency: null
      })
      row.rank = rank(row.job.priority, queueOf(row.job.queue).aging, now)
      if (row.pending !== undefined && !unblocked(row)) update(row, { state: "blocked" })
      return changed(true)
    })

  const purge = (before: number, states: ReadonlyArray<State>) =>
    Effect.sync(() => {
      let count = 0
      const now = time()
      for (const row of rows.values()) {
        const job = row.job
        if (FINAL_STATES.includes(job.state) && states.includes(job.state) && (job.finishedAt ?? 0) < before) {
          drop(row, now)
          count++
        }
      }
      return changed(count)
    })

  // the queues with a retention after `after`, by name
  const retainAt = retainCursor((after: string | undefined, n: number) =>
    Effect.sync(() =>
      Array.from(queues).filter(([name, queue]) => queue.retention !== undefined && (after === undefined || name > after))
        .sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0).slice(0, n).map(([name, queue]) => ({ name, queue }))
    )
  )
  /** A queue's finished jobs of a state past its count, or older than its age, oldest first: up to `batch` go. */
  const retainState = (name: string, state: State, keep: Keep, now: number, batch: number) =>
    Effect.sync(() => {
      // newest first (by end time, then by creation): past `count`, or older than `age`, goes
      const ended = Array.from(rows.values()).filter((row) => row.job.queue === name && row.job.state === state)
        .sort((a, b) => (b.job.finishedAt ?? 0) - (a.job.finishedAt ?? 0) || b.seq - a.seq)
      const past = ended.filter((row, i) =>
        (keep.count !== undefined && i >= keep.count) || (keep.age !== undefined && (row.job.finishedAt ?? 0) < now - keep.age)
      ).reverse().slice(0, batch)
      for (const row of past) drop(row, now)
      return past.length
    })
  const retain = (batch: number, limit = RETAIN_QUEUES) =>
    Effect.suspend(() => {
      const now = time()
      return retainPass(retainAt, limit, ({ name, queue }) =>
        retainRounds(
          batch,
          RETAINED.flatMap((state) => {
            const keep = queue.retention?.[state]
            return keep === undefined ? [] : [retainState(name, state, keep, now, batch)]
          })
        ))
    }).pipe(
      // its awaiters look (a job they await may be gone)
      Effect.map((retained) => retained.deleted > 0 ? changed(retained) : retained)
    )

  const configure = (
    name: string,
    settings: QueueSettings
  ) =>
    Effect.sync(() => {
      const queue = configured(name)
      if (settings.paused !== undefined) queue.paused = settings.paused
      if (settings.aging !== undefined) queue.aging = settings.aging
      if (settings.holdFor !== undefined) queue.heldUntil = time() + settings.holdFor
      if (settings.holdAtLeast !== undefined) queue.heldUntil = Math.max(queue.heldUntil, time() + settings.holdAtLeast)
      if (settings.rateLimit === null) {
        queue.rate = undefined
        queue.times = []
      } else if (settings.rateLimit !== undefined) {
        queue.rate = settings.rateLimit
        queue.times = queue.times.slice(-settings.rateLimit.limit)
      }
      if (settings.concurrency !== undefined) queue.concurrency = settings.concurrency ?? undefined
      if (settings.groupConcurrency !== undefined) queue.groupConcurrency = settings.groupConcurrency ?? undefined
      if (settings.retention !== undefined) queue.retention = settings.retention ?? undefined
      changed(undefined)
    })

  const counts = (name: string) =>
    Effect.sync((): QueueCounts => {
      const now = time()
      const tally = { blocked: 0, waiting: 0, delayed: 0, running: 0, succeeded: 0, dead: 0, cancelled: 0 }
      const byPriority = new Map<number, number>()
      for (const { job } of rows.values()) {
        if (job.queue !== name) continue
        if (job.state === "queued") {
          if (job.visibleAt <= now) tally.waiting++
          else tally.delayed++
          byPriority.set(job.priority, (byPriority.get(job.priority) ?? 0) + 1)
        } else tally[job.state]++
      }
      const queue = queueOf(name)
      return {
        queue: name,
        paused: queue.paused,
        aging: queue.aging,
        rateLimit: queue.rate === undefined ? undefined : {
          ...queue.rate,
          available: windowAllows(queue.times, queue.times.length, queue.rate, now, queue.rate.limit).allowed
        },
        // only when set: a queue without a cap counts as before (a field of undefined is a field)
        ...(queue.concurrency === undefined ? {} : { concurrency: { limit: queue.concurrency, running: tally.running } }),
        ...(queue.groupConcurrency === undefined ? {} : { groupConcurrency: queue.groupConcurrency }),
        ...retentionField(queue.retention),
        ...tally,
        queuedByPriority: Array.from(byPriority, ([priority, count]) => ({ priority, count }))
          .sort((a, b) => b.priority - a.priority),
        ...holdShown(queue.heldUntil, now)
      }
    })

  // a cursor is the store's time: a settle stamps and shows its end in one step, so a read sees
  // every end stamped before it
  const latencies = (name: string, cursor: LatencyCursor | undefined, limit: number) =>
    Effect.map(cursorTime(cursor), (since): Latencies => {
      const until = time()
      const ended: Array<JobRow> = []
      for (const { job } of since === undefined ? [] : rows.values()) {
        if (
          job.queue === name && (job.state === "succeeded" || job.state === "dead") && job.startedAt !== null &&
          job.finishedAt !== null && job.finishedAt >= since! && job.finishedAt < until
        ) ended.push(job)
      }
      const jobs: Array<Latency> = ended.sort((a, b) => b.finishedAt! - a.finishedAt!).slice(0, Math.max(0, limit))
        .map((job) => latencyOf(job.visibleAt, job.startedAt!, job.finishedAt!))
      return { until: String(until), jobs }
    })

  const claim = (request: ClaimRequest) =>
    Effect.sync((): Claimed => {
      const now = time()
      const candidates: Array<Row> = []
      // the soonest delayed job of the request's unpaused queues, of any task (as the other stores),
      // found in the same pass: a claim that comes up short reports it
      let dueAt = Infinity
      // sets: a search of the request's arrays per queued job made a claim of 10,000 queues with
      // 30,000 queued jobs take 0.5 s (a tenant per queue is ordinary)
      const ofQueues = new Set(request.queues)
      const ofTasks = new Set(request.tasks)
      // the running jobs of each capped queue of the request, counted in the same pass: a cap is
      // derived from the rows, never kept as a counter that a missed settle could leave wrong
      const running = new Map<string, number>()
      for (const name of request.queues) if (queueOf(name).concurrency !== undefined) running.set(name, 0)
      // and of each key of a queue of the request with a per-key cap (by `groupKey`)
      const grouped = request.queues.filter((name) => queueOf(name).groupConcurrency !== undefined)
      const runningOfKey = new Map<string, number>()
      let expired = 0
      for (const row of rows.values()) {
        const job = row.job
        if (job.state === "running") {
          const n = running.get(job.queue)
          if (n !== undefined) running.set(job.queue, n + 1)
          if (job.group != null && grouped.includes(job.queue)) {
            const key = groupKey(job.queue, job.group)
            runningOfKey.set(key, (runningOfKey.get(key) ?? 0) + 1)
          }
          continue
        }
        if ((job.state !== "queued" && job.state !== "blocked") || !ofQueues.has(job.queue)) continue
        // met by the claim: ended, whatever the queue's pause, never handed out; a blocked one too
        // (its dependents cancelled by it), as SQLite's and Redis's claims end it
        if (pastExpiry(job, now)) {
          expire(row, now)
          expired++
          continue
        }
        if (job.state === "blocked") continue
        if (queueOf(job.queue).paused) continue
        // a held queue's jobs are due when its hold ends, at the soonest
        const visibleAt = Math.max(job.visibleAt, queueOf(job.queue).heldUntil)
        if (visibleAt > now) {
          if (visibleAt < dueAt) dueAt = visibleAt
        } else if (ofTasks.has(job.task)) candidates.push(row)
      }
      candidates.sort((a, b) => b.rank - a.rank || a.seq - b.seq)
      // a rate-limited or capped queue's candidates past what it allows are skipped below, in this order too
      const byRank = request.fair === true ? roundRobin(request.queues, candidates, (row) => row.job.queue) : candidates
      // a queue with a per-key cap: its candidates in its keys' turn, in the places its candidates had
      let capped = false
      const turns = new Map(grouped.map((name) => {
        const cap = queueOf(name).groupConcurrency!
        const { ordered: inTurn, full } = byKeys(
          byRank.filter((row) => row.job.queue === name),
          (row) => row.job.group ?? "",
          (key) => key === "" ? Infinity : cap - (runningOfKey.get(groupKey(name, key)) ?? 0),
          queueOf(name).groupCursor ?? null
        )
        if (full) capped = true
        return [name, inTurn] as const
      }))
      const ordered = keepTurns(byRank, (row) => row.job.queue, turns)
      // what each rate-limited queue's window, and each capped queue's free slots, allow now
      const allowed = new Map<string, number>()
      const windowed = new Map<string, number>()
      for (const name of request.queues) {
        const queue = queueOf(name)
        if (queue.rate !== undefined) {
          windowed.set(name, windowAllows(queue.times, queue.times.length, queue.rate, now, request.limit).allowed)
          allowed.set(name, windowed.get(name)!)
        }
        if (queue.concurrency !== undefined) {
          allowed.set(name, Math.min(allowed.get(name) ?? Infinity, Math.max(0, queue.concurrency - running.get(name)!)))
        }
      }
      // held back by a full window (a time at which it frees), or by a cap (no such time: a settle wakes)
      const held = new Set<string>()
      const picked: Array<Row> = []
      for (const row of ordered) {
        if (picked.length >= request.limit) break
        const left = allowed.get(row.job.queue)
        if (left === 0) {
          if (windowed.get(row.job.queue) === 0) held.add(row.job.queue)
          else capped = true
          continue
        }
        const window = windowed.get(row.job.queue)
        if (window !== undefined) windowed.set(row.job.queue, window - 1)
        if (left !== undefined) allowed.set(row.job.queue, left - 1)
        picked.push(row)
      }
      const claims = picked.map((row): Claim => {
        const token = crypto.randomUUID()
        // started: never expires (see JobRow.expireAt)
        update(row, { state: "running", attempts: row.job.attempts + 1, startedAt: now, expireAt: null })
        if (row.dedupQueued) row.released = true
        row.token = token
        row.leaseUntil = now + request.lease
        byToken.set(token, row)
        const queue = queueOf(row.job.queue)
        // picked in its keys' turn: the last one picked is the key served last
        if (queue.groupConcurrency !== undefined) queue.groupCursor = row.job.group ?? ""
        if (queue.rate !== undefined) {
          queue.times.push(now)
          if (queue.times.length > queue.rate.limit) queue.times.shift()
        }
        return { job: row.job, token }
      })
      let limitedFor = 0
      const short = picked.length < request.limit
      if (short) {
        for (const name of held) {
          const queue = queueOf(name)
          const wait = windowAllows(queue.times, queue.times.length, queue.rate!, now, 1).nextAt - now
          if (wait > 0 && (limitedFor === 0 || wait < limitedFor)) limitedFor = wait
        }
      }
      // their awaiters look
      if (expired > 0) changed(undefined)
      return {
        claims: claims.length === 0 ? claims : changed(claims),
        limitedFor,
        ...(short && capped ? { capped } : {}),
        dueIn: !short || dueAt === Infinity ? undefined : dueAt - now
      }
    })

  const heartbeat = (tokens: ReadonlyArray<string>, lease: number) =>
    Effect.sync((): Heartbeat => {
      const now = time()
      const lost: Array<string> = []
      const cancelled: Array<string> = []
      for (const token of tokens) {
        const row = byToken.get(token)
        if (row === undefined) lost.push(token)
        else {
          row.leaseUntil = now + lease
          if (row.job.cancelRequested) cancelled.push(token)
        }
      }
      return { lost, cancelled }
    })

  const progress = (token: string, value: string) =>
    Effect.sync(() => {
      const row = byToken.get(token)
      if (row === undefined) return false
      update(row, { progress: value })
      return true
    })

  const settle = (token: string, settlement: Settlement) =>
    Effect.sync(() => {
      const row = byToken.get(token)
      if (row === undefined) return false
      endLease(row)
      const now = time()
      // a cancel asked for while the attempt ran, which failed or was given back before its heartbeat
      // heard of it: the job ends cancelled, not queued again (as the reaper ends it)
      if (settlement._tag !== "Final" && row.job.cancelRequested) {
        end(row, {
          state: "cancelled",
          exit: null,
          cancelRequested: false,
          attempts: settlement._tag === "Release" ? row.job.attempts - 1 : row.job.attempts
        }, now)
        return changed<Settled>("cancelled")
      }
      switch (settlement._tag) {
        case "Final": {
          end(row, { state: settlement.state, exit: settlement.exit, cancelRequested: false }, now)
          break
        }
        case "Retry": {
          const visibleAt = now + settlement.delay
          update(row, { state: "queued", exit: settlement.exit, visibleAt })
          row.rank = rank(row.job.priority, queueOf(row.job.queue).aging, visibleAt)
          return changedIn(settlement.delay, true)
        }
        case "Release": {
          // back where it was in the queue: its rank is kept; snoozed, ranked from when it is visible
          if (settlement.delay === undefined) {
            update(row, { state: "queued", attempts: row.job.attempts - 1 })
            break
          }
          const visibleAt = now + settlement.delay
          update(row, { state: "queued", attempts: row.job.attempts - 1, visibleAt, snoozes: (row.job.snoozes ?? 0) + 1 })
          row.rank = rank(row.job.priority, queueOf(row.job.queue).aging, visibleAt)
          return changedIn(settlement.delay, true)
        }
      }
      return changed(true)
    })

  /** Ends up to `EXPIRE_BATCH` queued jobs past their expiry, of any queue, soonest first (see `Store.reap`). */
  const expireDue = (now: number): number => {
    const due = Array.from(rows.values()).filter((row) => pastExpiry(row.job, now)).sort((a, b) => a.job.expireAt! - b.job.expireAt! || a.seq - b.seq).slice(0, EXPIRE_BATCH)
    for (const row of due) expire(row, now)
    return due.length
  }

  const reap = (
    backoff: ReadonlyArray<number>,
    policies: Readonly<Record<string, ReadonlyArray<number>>> = {},
    reaped?: (job: ReapedJob) => void
  ) =>
    Effect.sync(() => {
      const now = time()
      let count = 0
      for (const row of rows.values()) {
        if (row.job.state !== "running" || row.leaseUntil >= now) continue
        endLease(row)
        count++
        const job = row.job
        const outcome = job.cancelRequested ? "cancelled" : job.attempts >= job.maxAttempts ? "dead" : "retried"
        let runAt: number | undefined
        if (outcome === "retried") {
          runAt = now + reapDelay(job, backoff, policies)
          update(row, { state: "queued", exit: null, visibleAt: runAt })
          row.rank = rank(job.priority, queueOf(job.queue).aging, runAt)
        } else {
          end(row, { state: outcome, exit: null, cancelRequested: false }, now)
        }
        reaped?.({ id: job.id, queue: job.queue, task: job.task, attempt: job.attempts, outcome, runAt })
      }
      const expired = expireDue(now)
      return count === 0 && expired === 0 ? count : changed(count)
    })

  return Closing.guard({
    enqueue,
    enqueueAll,
    get: (id) => Effect.sync(() => rows.get(id)?.job),
    progressOf: (id) =>
      Effect.sync(() => {
        const job = rows.get(id)?.job
        return job === undefined ? undefined : { state: job.state, progress: job.progress }
      }),
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
    wait: signal.wait,
    version: signal.version,
    waitCancel: cancels.wait,
    cancelVersion: cancels.version,
    now: Effect.sync(time),
    closed: closing.closed,
    dependencies: true,
    kind: "memory"
  }, closing.isClosed)
})
