import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"
import * as JobStore from "../src/JobStore.ts"
import * as Backoff from "../src/internal/durable/backoff.ts"
import type { JobRow, QueueCounts, Settlement, State, Store } from "../src/internal/store/model.ts"
import { storeLayers } from "./durable/stores.ts"
import { prng } from "./helpers.ts"

/**
 * A model-based random test of the durable stores: a small reference model (plain TypeScript) of
 * what the store interface promises (src/internal/store/model.ts, docs/durable.md, DESIGN.md),
 * driven with the same seeded random operations as a real store (memory, SQLite, Postgres, Redis,
 * each on the test clock) and compared at every step: each operation's answer, then every job's
 * row (per-queue lists, oldest first) and each queue's counts.
 *
 * The model's rules:
 * - enqueue: a job is queued, visible at `runAt`, or now + `delay`; a dedup key held by an
 *   unfinished (queued or running) job of its queue returns that job (`created: false`); an id
 *   (a repeat's tick) already stored returns that job whatever its state. `enqueueAll`: one after
 *   another, a key taken by an item before it counts.
 * - claim: the visible queued jobs of the request's unpaused queues and tasks, best first: rank
 *   (priority, or with the queue's aging `priority × aging − visibleAt`, fixed when the job enters the
 *   queue, a `runAt` already past counted as now), then FIFO (enqueue order); each running, attempts + 1, startedAt now, a lease of
 *   `lease` ms. A claim that took fewer than `limit` says when the soonest delayed job of its
 *   unpaused queues (any task) is due. A claim of limit 0 takes nothing; several queues' in any order.
 *   A fair claim (`ClaimRequest.fair`) takes one candidate of each queue per round instead, the
 *   queues in the request's order, each queue's best first, rounds until `limit` (a queue's window
 *   counted as above); the jobs it takes are exactly those, in any order.
 * - every settle, heartbeat and progress is fenced by the claim's token: a token that no longer
 *   holds its job (settled, reaped, its job purged) writes nothing and is `lost` to a heartbeat.
 * - settle: Final ends the job (its exit, finishedAt now); Retry queues it after `delay` (its exit
 *   kept as the last error, rank recomputed); Release queues it where it was, the attempt not
 *   counted. A job being cancelled ends cancelled (exit null) at a Retry or Release.
 * - cancel: queued → cancelled at once (exit null); running → marked (`requested`), its heartbeat
 *   says so; ended → `finished`; unknown → `missing`.
 * - reap: running jobs whose lease has passed (leaseUntil < now): cancelled if marked, dead (exit
 *   null) after the last attempt, else queued after the job's own backoff, its named policy's list,
 *   or the reap's list, for its attempt count.
 * - redrive: a dead job is queued again, attempts 0, visible now; not if an unfinished job holds
 *   its key. purge: final jobs of the states that finished before `before`.
 *
 * - rate limits: at most `limit` claims of a queue in any window of `interval` (the last `limit`
 *   kept); `limitedFor` when a window held the claim back. latencies: a chain of reads per queue
 *   reports each run that ended succeeded or dead once.
 * - two claims, or two settles of one token, at the same instant: different jobs, one write.
 *
 * Where the docs leave a choice open the model takes either answer: jobs of the same rank created at
 * the same instant in different queues come in either order (Redis' queues share no sequence), and
 * a window that gave all it had with no job of its queue left waiting may or may not have "held the
 * claim back" (the server stores say so without looking, memory does not).
 *
 * One store per test, the runs one after another on it (each ends by settling, cancelling and
 * purging what it made). A mismatch names its seed and step and prints the operations before it;
 * MODEL_SEED=<seed> MODEL_SEEDS=1 replays it. Env: MODEL_SEED (first seed), MODEL_SEEDS (runs per
 * store), MODEL_STEPS (operations per run, 30), MODEL_DEBUG (print each operation and claim).
 */

// ---------------------------------------------------------------------------------------------
// operations

const QUEUES = ["qa", "qb"] as const
const TASKS = ["T1", "T2"] as const
const FINAL: ReadonlyArray<State> = ["succeeded", "dead", "cancelled"]

interface JobSpec {
  readonly queue: string
  readonly task: string
  readonly payload: string
  readonly priority: number
  readonly dedupKey: string | null
  readonly maxAttempts: number
  readonly delay: number
  /** ms from now, or undefined */
  readonly runAt: number | undefined
  readonly retry: string | null
  /** a repeat's tick id, or undefined */
  readonly id: string | undefined
}

type Op =
  | { readonly _tag: "enqueue"; readonly job: JobSpec }
  | { readonly _tag: "enqueueAll"; readonly jobs: ReadonlyArray<JobSpec> }
  | {
    readonly _tag: "claim"
    readonly queues: ReadonlyArray<string>
    readonly tasks: ReadonlyArray<string>
    readonly limit: number
    readonly lease: number
    readonly fair: boolean
  }
  | {
    readonly _tag: "claimTogether"
    readonly queue: string
    readonly tasks: ReadonlyArray<string>
    readonly limits: readonly [number, number]
    readonly lease: number
  }
  | { readonly _tag: "heartbeat"; readonly claims: ReadonlyArray<number>; readonly lease: number }
  | { readonly _tag: "progress"; readonly claim: number; readonly value: string }
  | { readonly _tag: "settle"; readonly claim: number; readonly settlement: Settlement }
  | { readonly _tag: "settleTogether"; readonly claim: number; readonly settlements: readonly [Settlement, Settlement] }
  | { readonly _tag: "cancel"; readonly k: number }
  | { readonly _tag: "redrive"; readonly k: number }
  | { readonly _tag: "reap"; readonly backoff: ReadonlyArray<number>; readonly policies: Record<string, ReadonlyArray<number>> }
  | {
    readonly _tag: "configure"
    readonly queue: string
    readonly paused?: boolean
    readonly aging?: number
    readonly rateLimit?: { readonly limit: number; readonly interval: number } | null
  }
  | { readonly _tag: "purge"; readonly ago: number; readonly states: ReadonlyArray<State> }
  | { readonly _tag: "advance"; readonly millis: number }
  | { readonly _tag: "get"; readonly k: number }
  | { readonly _tag: "latencies"; readonly queue: string }
  | { readonly _tag: "listStates"; readonly queue: string | undefined; readonly states: ReadonlyArray<State>; readonly limit: number }

// ---------------------------------------------------------------------------------------------
// the model

interface MJob {
  readonly k: number
  readonly seq: number
  readonly spec: JobSpec
  readonly createdAt: number
  state: State
  attempts: number
  visibleAt: number
  startedAt: number | null
  finishedAt: number | null
  cancelRequested: boolean
  exit: string | null
  progress: string | null
  rank: number
  /** the claim number holding it while it runs */
  claim: number | null
  leaseUntil: number
  purged: boolean
}

interface MQueue {
  paused: boolean
  aging: number
  rate: { readonly limit: number; readonly interval: number } | undefined
  /** the times of its last `rate.limit` claims, oldest first */
  times: Array<number>
}

/**
 * How many of `wanted` claims a queue's window allows at `now`: at most `limit` in any window of
 * `interval` (a claim at t counts until t + interval), the window remembering the last `limit`.
 */
const allowed = (queue: MQueue, now: number, wanted: number) => {
  if (queue.rate === undefined) return wanted
  let free = Math.max(0, queue.rate.limit - queue.times.length)
  for (const t of queue.times) {
    if (now - t < queue.rate.interval) break
    free++
  }
  return Math.min(free, wanted)
}

/** What the model expects a row to be, in the fields compared. */
const rowOf = (job: MJob) => ({
  queue: job.spec.queue,
  task: job.spec.task,
  payload: job.spec.payload,
  priority: job.spec.priority,
  dedupKey: job.spec.dedupKey,
  state: job.state,
  attempts: job.attempts,
  maxAttempts: job.spec.maxAttempts,
  timeout: 0,
  createdAt: job.createdAt,
  visibleAt: job.visibleAt,
  startedAt: job.startedAt,
  finishedAt: job.finishedAt,
  cancelRequested: job.cancelRequested,
  exit: job.exit,
  progress: job.progress,
  retry: job.spec.retry
})

const storeRowOf = (row: JobRow) => ({
  queue: row.queue,
  task: row.task,
  payload: row.payload,
  priority: row.priority,
  dedupKey: row.dedupKey,
  state: row.state,
  attempts: row.attempts,
  maxAttempts: row.maxAttempts,
  timeout: row.timeout,
  createdAt: row.createdAt,
  visibleAt: row.visibleAt,
  startedAt: row.startedAt,
  finishedAt: row.finishedAt,
  cancelRequested: row.cancelRequested,
  exit: row.exit,
  progress: row.progress,
  retry: row.retry ?? null
})

/** A job's run that ended succeeded or dead, for `latencies`: `optional` once its row lost it (purged, redriven). */
interface End {
  readonly k: number
  readonly queue: string
  readonly finishedAt: number
  readonly wait: number
  readonly run: number
  optional: boolean
}

class Model {
  readonly jobs: Array<MJob> = []
  /** ends not yet reported by a read of `latencies` */
  ends: Array<End> = []
  readonly queues = new Map<string, MQueue>()
  /** claim number → job */
  readonly claims: Array<number> = []
  seq = 0
  now: number
  constructor(now: number) {
    this.now = now
  }

  queue(name: string): MQueue {
    let queue = this.queues.get(name)
    if (queue === undefined) this.queues.set(name, queue = { paused: false, aging: 0, rate: undefined, times: [] })
    return queue
  }
  rank(priority: number, queue: string, visibleAt: number) {
    const aging = this.queue(queue).aging
    return aging > 0 ? priority * aging - visibleAt : priority
  }
  live(): Array<MJob> {
    return this.jobs.filter((job) => !job.purged)
  }
  holding(claim: number): MJob | undefined {
    const job = this.jobs[this.claims[claim] ?? -1]
    return job !== undefined && !job.purged && job.claim === claim ? job : undefined
  }

  /** → the job's k, and whether it was created */
  enqueue(spec: JobSpec): { k: number; created: boolean } {
    if (spec.id !== undefined) {
      const same = this.jobs.find((job) => !job.purged && job.spec.id === spec.id)
      if (same !== undefined) return { k: same.k, created: false }
    }
    if (spec.dedupKey !== null) {
      const holder = this.jobs.find((job) =>
        !job.purged && job.spec.queue === spec.queue && job.spec.dedupKey === spec.dedupKey &&
        (job.state === "queued" || job.state === "running")
      )
      if (holder !== undefined) return { k: holder.k, created: false }
    }
    const visibleAt = spec.runAt !== undefined ? this.now + spec.runAt : this.now + spec.delay
    const job: MJob = {
      k: this.jobs.length,
      seq: ++this.seq,
      spec,
      createdAt: this.now,
      state: "queued",
      attempts: 0,
      visibleAt,
      startedAt: null,
      finishedAt: null,
      cancelRequested: false,
      exit: null,
      progress: null,
      rank: this.rank(spec.priority, spec.queue, Math.max(visibleAt, this.now)),
      claim: null,
      leaseUntil: 0,
      purged: false
    }
    this.jobs.push(job)
    return { k: job.k, created: true }
  }

  /**
   * The claim's jobs: the best `limit` candidates (rank, then FIFO). Jobs of different queues
   * enqueued at the same instant with the same rank may come in either order (the Redis store
   * orders a claim of several queues by rank, then creation time: its queues have no common
   * sequence), so `chosen` (the store's answer, as job numbers) is checked against that order and,
   * if it keeps it, is what the model claims.
   */
  /**
   * A fair claim's order of `candidates` (best first): rounds of one candidate per queue, the
   * queues in `queues`' order (a queue named twice has one turn), while its window (`left`) allows;
   * then the candidates past the windows (the claim holds them back).
   */
  turns(queues: ReadonlyArray<string>, candidates: ReadonlyArray<MJob>, left: ReadonlyMap<string, number>): Array<MJob> {
    const lists = [...new Set(queues)].map((name) => candidates.filter((job) => job.spec.queue === name))
    const ordered: Array<MJob> = []
    const beyond: Array<MJob> = []
    for (let round = 0; lists.some((list) => list.length > round); round++) {
      for (const list of lists) {
        const job = list[round]
        if (job === undefined) continue
        if (round < left.get(job.spec.queue)!) ordered.push(job)
        else beyond.push(job)
      }
    }
    return [...ordered, ...beyond]
  }

  claim(
    queues: ReadonlyArray<string>,
    tasks: ReadonlyArray<string>,
    limit: number,
    lease: number,
    chosen: ReadonlyArray<number>,
    fair = false
  ): {
    picked: Array<MJob>
    dueIn: number | undefined
    limitedFor: number
    orLimitedFor: number
    wrong: string | undefined
    held: Array<string>
  } {
    const ready = (job: MJob) =>
      !job.purged && job.state === "queued" && queues.includes(job.spec.queue) && !this.queue(job.spec.queue).paused
    const candidates = this.jobs.filter((job) => ready(job) && job.visibleAt <= this.now && tasks.includes(job.spec.task))
      .sort((a, b) => b.rank - a.rank || a.seq - b.seq)
    // the rate limits: a queue whose window is full is held back
    const left = new Map(queues.map((name) => [name, allowed(this.queue(name), this.now, limit)]))
    const held = new Set<string>()
    const best: Array<MJob> = []
    for (const job of fair ? this.turns(queues, candidates, left) : candidates) {
      if (best.length >= limit) break
      const n = left.get(job.spec.queue)!
      if (n === 0) {
        held.add(job.spec.queue)
        continue
      }
      left.set(job.spec.queue, n - 1)
      best.push(job)
    }
    // a before b: 1, after: -1, tied (the same rank and instant): 0
    const order = (a: MJob, b: MJob) => Math.sign(a.rank - b.rank || b.createdAt - a.createdAt)
    // the store's answer, if it is the model's best up to ties of that kind
    const answer = chosen.map((k) => this.jobs[k]!)
    let wrong: string | undefined
    const last = best[best.length - 1]
    if (fair) {
      if (answer.length !== best.length || answer.some((job) => !best.includes(job))) wrong = "not one of each queue per round"
    } else if (answer.length !== best.length || answer.some((job) => !candidates.includes(job))) wrong = "not the best"
    else if (queues.some((name) => answer.filter((job) => job.spec.queue === name).length > allowed(this.queue(name), this.now, limit))) {
      wrong = "more than a window allows"
    }
    else if (last !== undefined) {
      answer.forEach((job, i) => {
        if (i > 0 && order(answer[i - 1]!, job) < 0) wrong ??= `job ${job.k} after a worse one`
        if (order(job, last) < 0) wrong ??= `job ${job.k} is worse than the best ${limit}`
        // FIFO within a queue
        const sameQueue = (other: MJob) => other.spec.queue === job.spec.queue && other.rank === job.rank
        if (answer.slice(0, i).some((other) => sameQueue(other) && other.seq > job.seq)) wrong ??= `job ${job.k} after a newer job of its queue`
        if (candidates.some((other) => sameQueue(other) && other.seq < job.seq && !answer.includes(other))) {
          wrong ??= `job ${job.k} before an older job of its queue`
        }
      })
      for (const job of best) if (order(job, last) > 0 && !answer.includes(job)) wrong ??= `job ${job.k} left out`
    }
    const picked = wrong === undefined ? answer : best
    for (const job of picked) {
      job.state = "running"
      job.attempts++
      job.startedAt = this.now
      job.leaseUntil = this.now + lease
      job.claim = this.claims.length
      this.claims.push(job.k)
      const queue = this.queue(job.spec.queue)
      if (queue.rate !== undefined) {
        queue.times.push(this.now)
        if (queue.times.length > queue.rate.limit) queue.times.shift()
      }
    }
    // how long until a window that held jobs back frees, when the claim came up short. The docs
    // leave open whether a window that gave all it had, with no job of its queue left waiting,
    // held the claim back: the SQLite, Postgres and Redis stores say so (the queue may have more;
    // they do not look), the memory store does not. Either is taken (`orLimitedFor`)
    const waitOf = (names: Iterable<string>) => {
      let wait = 0
      for (const name of names) {
        const queue = this.queue(name)
        const w = queue.times[0]! + queue.rate!.interval - this.now
        if (w > 0 && (wait === 0 || w < wait)) wait = w
      }
      return wait
    }
    const short = picked.length < limit
    const spent = queues.filter((name) => {
      const queue = this.queue(name)
      return queue.rate !== undefined && left.get(name) === 0 && allowed(queue, this.now, limit) === 0 && short
    })
    const limitedFor = short ? waitOf(held) : 0
    const orLimitedFor = short ? waitOf(new Set([...held, ...spent])) : 0
    let dueIn: number | undefined
    if (picked.length < limit) {
      for (const job of this.jobs) {
        if (ready(job) && job.visibleAt > this.now && (dueIn === undefined || job.visibleAt - this.now < dueIn)) {
          dueIn = job.visibleAt - this.now
        }
      }
    }
    return { picked, dueIn, limitedFor, orLimitedFor, wrong, held: [...held] }
  }

  heartbeat(claims: ReadonlyArray<number>, lease: number) {
    const lost: Array<number> = []
    const cancelled: Array<number> = []
    for (const claim of claims) {
      const job = this.holding(claim)
      if (job === undefined) lost.push(claim)
      else {
        job.leaseUntil = this.now + lease
        if (job.cancelRequested) cancelled.push(claim)
      }
    }
    return { lost, cancelled }
  }

  progress(claim: number, value: string) {
    const job = this.holding(claim)
    if (job === undefined) return false
    job.progress = value
    return true
  }

  private endAs(job: MJob, state: State, exit: string | null) {
    job.state = state
    job.exit = exit
    job.finishedAt = this.now
    job.cancelRequested = false
    if (state !== "cancelled") this.ended(job)
  }
  private ended(job: MJob) {
    this.ends.push({
      k: job.k,
      queue: job.spec.queue,
      finishedAt: this.now,
      wait: Math.max(0, job.startedAt! - job.visibleAt),
      run: Math.max(0, this.now - job.startedAt!),
      optional: false
    })
  }
  private lost(job: MJob) {
    for (const end of this.ends) if (end.k === job.k) end.optional = true
  }

  settle(claim: number, settlement: Settlement) {
    const job = this.holding(claim)
    if (job === undefined) return false
    job.claim = null
    if (settlement._tag !== "Final" && job.cancelRequested) {
      if (settlement._tag === "Release") job.attempts--
      this.endAs(job, "cancelled", null)
      // written, and ended otherwise than asked: the consumer tells Cancelled
      return "cancelled" as const
    }
    switch (settlement._tag) {
      case "Final":
        this.endAs(job, settlement.state, settlement.exit)
        break
      case "Retry":
        job.state = "queued"
        job.exit = settlement.exit
        job.visibleAt = this.now + settlement.delay
        job.rank = this.rank(job.spec.priority, job.spec.queue, job.visibleAt)
        break
      case "Release":
        job.state = "queued"
        job.attempts--
        break
    }
    return true
  }

  cancel(k: number): "cancelled" | "requested" | "finished" | "missing" {
    const job = this.jobs[k]
    if (job === undefined || job.purged) return "missing"
    switch (job.state) {
      case "queued":
        this.endAs(job, "cancelled", null)
        return "cancelled"
      case "running":
        job.cancelRequested = true
        return "requested"
      default:
        return "finished"
    }
  }

  redrive(k: number) {
    const job = this.jobs[k]
    if (job === undefined || job.purged || job.state !== "dead") return false
    const key = job.spec.dedupKey
    if (
      key !== null && this.jobs.some((other) =>
        !other.purged && other.spec.queue === job.spec.queue && other.spec.dedupKey === key &&
        (other.state === "queued" || other.state === "running")
      )
    ) return false
    this.lost(job)
    job.state = "queued"
    job.attempts = 0
    job.visibleAt = this.now
    job.startedAt = null
    job.finishedAt = null
    job.cancelRequested = false
    job.progress = null
    job.rank = this.rank(job.spec.priority, job.spec.queue, this.now)
    return true
  }

  reap(backoff: ReadonlyArray<number>, policies: Readonly<Record<string, ReadonlyArray<number>>>) {
    let count = 0
    for (const job of this.jobs) {
      if (job.purged || job.state !== "running" || job.leaseUntil >= this.now) continue
      count++
      job.claim = null
      if (job.cancelRequested) this.endAs(job, "cancelled", null)
      else if (job.attempts >= job.spec.maxAttempts) {
        job.state = "dead"
        job.exit = null
        job.finishedAt = this.now
        this.ended(job)
      } else {
        job.state = "queued"
        job.exit = null
        job.visibleAt = this.now + reapDelay(job, backoff, policies)
        job.rank = this.rank(job.spec.priority, job.spec.queue, job.visibleAt)
      }
    }
    return count
  }

  purge(before: number, states: ReadonlyArray<State>) {
    let count = 0
    for (const job of this.jobs) {
      if (!job.purged && FINAL.includes(job.state) && states.includes(job.state) && job.finishedAt! < before) {
        job.purged = true
        this.lost(job)
        count++
      }
    }
    return count
  }

  counts(name: string) {
    const tally = { waiting: 0, delayed: 0, running: 0, succeeded: 0, dead: 0, cancelled: 0 }
    const byPriority = new Map<number, number>()
    for (const job of this.live()) {
      if (job.spec.queue !== name) continue
      if (job.state === "queued") {
        if (job.visibleAt <= this.now) tally.waiting++
        else tally.delayed++
        byPriority.set(job.spec.priority, (byPriority.get(job.spec.priority) ?? 0) + 1)
      } else tally[job.state as keyof typeof tally]++
    }
    const queue = this.queue(name)
    return {
      paused: queue.paused,
      aging: queue.aging,
      rateLimit: queue.rate === undefined ? undefined : { ...queue.rate, available: allowed(queue, this.now, queue.rate.limit) },
      ...tally,
      queuedByPriority: Array.from(byPriority, ([priority, count]) => ({ priority, count })).sort((a, b) => b.priority - a.priority)
    }
  }
}

/** The reap's delay for a job, from the docs of `Store.reap`. */
const reapDelay = (
  job: MJob,
  backoff: ReadonlyArray<number>,
  policies: Readonly<Record<string, ReadonlyArray<number>>>
): number => {
  const stored = Backoff.decode(job.spec.retry)
  if (stored !== undefined && !("policy" in stored)) return Backoff.delay(stored, job.attempts)
  const list = stored !== undefined && Object.hasOwn(policies, stored.policy) ? policies[stored.policy]! : backoff
  return list[Math.min(job.attempts, list.length) - 1] ?? 0
}

const countsOf = (counts: QueueCounts) => ({
  paused: counts.paused,
  aging: counts.aging,
  rateLimit: counts.rateLimit === undefined ? undefined : {
    limit: counts.rateLimit.limit,
    interval: counts.rateLimit.interval,
    available: counts.rateLimit.available
  },
  waiting: counts.waiting,
  delayed: counts.delayed,
  running: counts.running,
  succeeded: counts.succeeded,
  dead: counts.dead,
  cancelled: counts.cancelled,
  queuedByPriority: counts.queuedByPriority.map(({ count, priority }) => ({ priority, count }))
})

// ---------------------------------------------------------------------------------------------
// random operations, chosen from the model's state

const generate = (rnd: () => number, model: Model, seed: number, step: number, multiQueue: boolean): Op => {
  const pick = <A>(xs: ReadonlyArray<A>): A => xs[Math.floor(rnd() * xs.length)]!
  const chance = (p: number) => rnd() < p
  const anyJob = () => model.jobs.length === 0 || chance(0.05) ? model.jobs.length + 7 : Math.floor(rnd() * model.jobs.length)
  const anyClaim = () => {
    const live = model.claims.map((_, c) => c).filter((c) => model.holding(c) !== undefined)
    if (live.length > 0 && chance(0.75)) return pick(live)
    return model.claims.length === 0 || chance(0.1) ? 1_000_000 : Math.floor(rnd() * model.claims.length)
  }
  const spec = (n: number): JobSpec => ({
    queue: pick(QUEUES),
    task: chance(0.8) ? "T1" : "T2",
    payload: JSON.stringify({ seed, step, n }),
    priority: pick([0, 0, 0, 1, 5, -2]),
    dedupKey: chance(0.3) ? pick(["k1", "k2", "k3"]) : null,
    maxAttempts: pick([1, 2, 3]),
    delay: chance(0.7) ? 0 : pick([1, 50, 100, 300]),
    runAt: chance(0.1) ? pick([-100, 0, 60, 200]) : undefined,
    retry: chance(0.15) ? pick(['{"fixed":30}', '{"exponential":10,"factor":3,"max":70}', '{"policy":"p"}', '{"policy":"unknown"}']) : null,
    id: chance(0.05) ? `repeat:model:${seed}:${pick([1, 2])}` : undefined
  })
  const r = rnd()
  if (r < 0.15) return { _tag: "enqueue", job: spec(0) }
  if (r < 0.2) {
    const n = 1 + Math.floor(rnd() * 4)
    return { _tag: "enqueueAll", jobs: Array.from({ length: n }, (_, i) => ({ ...spec(i), id: undefined })) }
  }
  if (r < 0.36) {
    // several queues in either order (Redis' look allots the slots across them whatever the order)
    const queues = multiQueue && chance(0.3) ? (chance(0.5) ? [...QUEUES] : [...QUEUES].reverse()) : [pick(QUEUES)]
    const tasks = chance(0.75) ? [...TASKS] : [pick(TASKS)]
    return { _tag: "claim", queues, tasks, limit: pick([0, 1, 1, 2, 3]), lease: pick([100, 250]), fair: queues.length > 1 && chance(0.5) }
  }
  if (r < 0.38) {
    const tasks = chance(0.75) ? [...TASKS] : [pick(TASKS)]
    return { _tag: "claimTogether", queue: pick(QUEUES), tasks, limits: [pick([1, 2]), pick([1, 2])], lease: pick([100, 250]) }
  }
  if (r < 0.42) {
    const claims = Array.from({ length: 1 + Math.floor(rnd() * 3) }, anyClaim)
    return { _tag: "heartbeat", claims: [...new Set(claims)], lease: pick([100, 250]) }
  }
  if (r < 0.45) return { _tag: "progress", claim: anyClaim(), value: JSON.stringify({ step }) }
  if (r < 0.58) {
    const exit = JSON.stringify({ step })
    const settlements: ReadonlyArray<Settlement> = [
      { _tag: "Final", state: "succeeded", exit },
      { _tag: "Final", state: "dead", exit },
      { _tag: "Retry", delay: 20, exit },
      { _tag: "Release" }
    ]
    if (chance(0.15)) return { _tag: "settleTogether", claim: anyClaim(), settlements: [pick(settlements), pick(settlements)] }
    const settlement: Settlement = pick<Settlement>([
      { _tag: "Final", state: "succeeded", exit },
      { _tag: "Final", state: "dead", exit },
      { _tag: "Final", state: "cancelled", exit: null },
      { _tag: "Retry", delay: pick([0, 20, 100]), exit },
      { _tag: "Retry", delay: 0, exit },
      { _tag: "Release" }
    ])
    return { _tag: "settle", claim: anyClaim(), settlement }
  }
  if (r < 0.63) return { _tag: "cancel", k: anyJob() }
  if (r < 0.66) return { _tag: "redrive", k: anyJob() }
  if (r < 0.71) return { _tag: "reap", backoff: pick([[0], [10], [10, 40]]), policies: pick([{}, { p: [5, 15] }]) }
  if (r < 0.75) {
    const which = rnd()
    return which < 0.5
      ? { _tag: "configure", queue: pick(QUEUES), paused: chance(0.5) }
      : which < 0.7
      ? { _tag: "configure", queue: pick(QUEUES), aging: pick([0, 10, 100]) }
      : { _tag: "configure", queue: pick(QUEUES), rateLimit: pick([{ limit: 1, interval: 100 }, { limit: 2, interval: 50 }, { limit: 3, interval: 250 }, null]) }
  }
  if (r < 0.77) return { _tag: "purge", ago: pick([0, 50, 1000]), states: chance(0.5) ? FINAL : [pick(FINAL)] }
  if (r < 0.8) return { _tag: "get", k: anyJob() }
  if (r < 0.82) return { _tag: "latencies", queue: pick(QUEUES) }
  if (r < 0.85) {
    const states: Array<State> = ["queued", "running", "succeeded", "dead", "cancelled"].filter(() => chance(0.5)) as Array<State>
    return { _tag: "listStates", queue: chance(0.7) ? pick(QUEUES) : undefined, states, limit: pick([1, 2, 100]) }
  }
  return { _tag: "advance", millis: pick([0, 1, 20, 50, 99, 100, 101, 250, 1000]) }
}

// ---------------------------------------------------------------------------------------------
// the driver: one store, its ids and tokens, against the model

class Mismatch extends Error {}

const show = (value: unknown) => JSON.stringify(value)

const diff = (expected: Record<string, unknown>, actual: Record<string, unknown>) =>
  Object.keys(expected).filter((key) => show(expected[key]) !== show(actual[key]))
    .map((key) => `${key}: expected ${show(expected[key])}, got ${show(actual[key])}`).join("; ")

const runSeed = (store: Store, seed: number, steps: number, debug: boolean, multiQueue = true) =>
  Effect.gen(function*() {
    const rnd = prng(seed)
    const model = new Model(yield* store.now)
    const ids: Array<string> = []
    const kOf = new Map<string, number>()
    const tokens: Array<string> = []
    const cursors = new Map<string, string>()
    const log: Array<string> = []
    let step = 0
    const fail = (what: string): never => {
      throw new Mismatch(`seed ${seed} step ${step}: ${what}\noperations:\n${log.slice(-25).join("\n")}`)
    }
    const check = (what: string, expected: unknown, actual: unknown) => {
      if (show(expected) !== show(actual)) fail(`${what}: expected ${show(expected)}, got ${show(actual)}`)
    }
    const idOf = (k: number) => ids[k] ?? `00000000-0000-4000-8000-${String(k).padStart(12, "0")}`
    const tokenOf = (claim: number) => tokens[claim] ?? `no-such-token-${claim}`
    const kOfId = (id: string) => kOf.get(id) ?? fail(`an id the model never saw: ${id}`)
    const checkRow = (what: string, job: MJob, row: JobRow | undefined) => {
      if (row === undefined) return fail(`${what}: job ${job.k} missing`)
      const d = diff(rowOf(job), storeRowOf(row))
      if (d !== "") fail(`${what}: job ${job.k}: ${d}`)
    }
    const created = (k: number, id: string) => {
      ids[k] = id
      kOf.set(id, k)
    }
    const enqueued = (spec: JobSpec, answer: { id: string; created: boolean }) => {
      const expected = model.enqueue(spec)
      check("enqueue: created", expected.created, answer.created)
      if (expected.created) {
        const old = kOf.get(answer.id)
        if (old !== undefined && !model.jobs[old]!.purged) fail(`enqueue: a new job with the id of job ${old}`)
        created(expected.k, answer.id)
      } else check("enqueue: the job found", expected.k, kOfId(answer.id))
    }
    const jobOf = (spec: JobSpec) => ({
      queue: spec.queue,
      task: spec.task,
      payload: spec.payload,
      priority: spec.priority,
      dedupKey: spec.dedupKey,
      maxAttempts: spec.maxAttempts,
      timeout: 0,
      delay: spec.delay,
      runAt: spec.runAt === undefined ? undefined : model.now + spec.runAt,
      retry: spec.retry
    })

    // the store starts empty of this run's queues
    for (const queue of QUEUES) yield* store.configure(queue, { paused: false, aging: 0, rateLimit: null })
    const left = yield* store.list({ queue: undefined, states: undefined, limit: 10 })
    if (left.length > 0) fail(`the store holds jobs of an earlier run: ${show(left.map((row) => [row.queue, row.state]))}`)

    for (step = 1; step <= steps; step++) {
      const op = generate(rnd, model, seed, step, multiQueue)
      log.push(`${step}: ${show(op)}`)
      if (debug) console.log(`seed ${seed} ${log[log.length - 1]}`)
      switch (op._tag) {
        case "enqueue": {
          const job = jobOf(op.job)
          enqueued(op.job, yield* store.enqueue(op.job.id === undefined ? job : { ...job, id: op.job.id }))
          break
        }
        case "enqueueAll": {
          const answers = yield* store.enqueueAll(op.jobs.map(jobOf))
          check("enqueueAll: answers", op.jobs.length, answers.length)
          op.jobs.forEach((spec, i) => enqueued(spec, answers[i]!))
          break
        }
        case "claim": {
          const claimed = yield* store.claim({ queues: op.queues, tasks: op.tasks, limit: op.limit, lease: op.lease, fair: op.fair })
          const chosen = claimed.claims.map((c) => kOfId(c.job.id))
          const expected = model.claim(op.queues, op.tasks, op.limit, op.lease, chosen, op.fair)
          if (debug) console.log(`  claimed ${show(chosen)}, limitedFor ${claimed.limitedFor}, dueIn ${claimed.dueIn}; model ${show(expected)}`)
          if (expected.wrong !== undefined) {
            fail(`claim: the jobs, best first: expected ${show(expected.picked.map((job) => job.k))}, got ${show(chosen)} (${expected.wrong})`)
          }
          expected.picked.forEach((job, i) => {
            const claim = claimed.claims[i]!
            tokens[job.claim!] = claim.token
            checkRow("claim: the row as claimed", job, claim.job)
          })
          if (claimed.limitedFor !== expected.orLimitedFor) check("claim: limitedFor", expected.limitedFor, claimed.limitedFor)
          if (expected.picked.length < op.limit) check("claim: dueIn", expected.dueIn, claimed.dueIn)
          break
        }
        case "claimTogether": {
          // two claims at the same instant: they take different jobs, together the best the model's one would
          const request = (limit: number) => ({ queues: [op.queue], tasks: op.tasks, limit, lease: op.lease })
          const [one, two] = yield* Effect.all([store.claim(request(op.limits[0])), store.claim(request(op.limits[1]))], {
            concurrency: 2
          })
          const claims = [...one.claims, ...two.claims]
          const ks = claims.map((c) => kOfId(c.job.id))
          if (new Set(ks).size !== ks.length) fail(`claims together: one job claimed twice: ${show(ks)}`)
          const byModel = (a: number, b: number) => model.jobs[b]!.rank - model.jobs[a]!.rank || model.jobs[a]!.seq - model.jobs[b]!.seq
          const chosen = [...ks].sort(byModel)
          const expected = model.claim([op.queue], op.tasks, op.limits[0] + op.limits[1], op.lease, chosen)
          if (expected.wrong !== undefined) {
            fail(`claims together: expected ${show(expected.picked.map((job) => job.k))}, got ${show(ks)} (${expected.wrong})`)
          }
          for (const job of expected.picked) {
            const claim = claims.find((c) => kOfId(c.job.id) === job.k)!
            tokens[job.claim!] = claim.token
            checkRow("claims together: the row as claimed", job, claim.job)
          }
          break
        }
        case "heartbeat": {
          const beat = yield* store.heartbeat(op.claims.map(tokenOf), op.lease)
          const expected = model.heartbeat(op.claims, op.lease)
          check("heartbeat: lost", expected.lost.map(tokenOf).sort(), [...beat.lost].sort())
          check("heartbeat: cancelled", expected.cancelled.map(tokenOf).sort(), [...beat.cancelled].sort())
          check("heartbeat: unrenewed", undefined, beat.unrenewed)
          break
        }
        case "progress":
          check("progress", model.progress(op.claim, op.value), yield* store.progress(tokenOf(op.claim), op.value))
          break
        case "settle":
          check("settle", model.settle(op.claim, op.settlement), yield* store.settle(tokenOf(op.claim), op.settlement))
          break
        case "settleTogether": {
          // one token settled twice at the same instant: at most one is written (the fence)
          const [a, b] = yield* Effect.all(op.settlements.map((settlement) => store.settle(tokenOf(op.claim), settlement)), {
            concurrency: 2
          })
          const held = model.holding(op.claim) !== undefined
          if (a && b) fail("settles together: both written")
          if (held !== Boolean(a || b)) fail(`settles together: ${held ? "neither" : "one"} written (${a}, ${b})`)
          if (held) model.settle(op.claim, op.settlements[a ? 0 : 1])
          break
        }
        case "cancel":
          check("cancel", model.cancel(op.k), yield* store.cancel(idOf(op.k)))
          break
        case "redrive":
          check("redrive", model.redrive(op.k), yield* store.redrive(idOf(op.k)))
          break
        case "reap":
          check("reap", model.reap(op.backoff, op.policies), yield* store.reap(op.backoff, op.policies))
          break
        case "configure": {
          const settings = op.paused !== undefined
            ? { paused: op.paused }
            : op.aging !== undefined
            ? { aging: op.aging }
            : { rateLimit: op.rateLimit ?? null }
          yield* store.configure(op.queue, settings)
          const queue = model.queue(op.queue)
          if (op.paused !== undefined) queue.paused = op.paused
          if (op.aging !== undefined) queue.aging = op.aging
          if (op.rateLimit === null) {
            queue.rate = undefined
            queue.times = []
          } else if (op.rateLimit !== undefined) {
            queue.rate = op.rateLimit
            queue.times = queue.times.slice(-op.rateLimit.limit)
          }
          break
        }
        case "purge":
          check("purge", model.purge(model.now - op.ago, op.states), yield* store.purge(model.now - op.ago, op.states))
          break
        case "advance":
          yield* TestClock.adjust(op.millis)
          model.now += op.millis
          check("now", model.now, yield* store.now)
          break
        case "get": {
          const job = model.jobs[op.k]
          const row = yield* store.get(idOf(op.k))
          const progress = yield* store.progressOf(idOf(op.k))
          if (job === undefined || job.purged) {
            check("get of a job not there", undefined, row)
            check("progressOf of a job not there", undefined, progress)
          } else {
            checkRow("get", job, row)
            check("progressOf", { state: job.state, progress: job.progress }, progress)
          }
          break
        }
        case "latencies": {
          const read = yield* store.latencies(op.queue, cursors.get(op.queue), 1000)
          if (!cursors.has(op.queue)) {
            check("latencies: a first read lists none", [], read.jobs)
            // ends before it are not in the chain; one at its instant may be (the read says where it stands)
            model.ends = model.ends.filter((end) => end.queue !== op.queue || end.finishedAt >= model.now)
            for (const end of model.ends) if (end.queue === op.queue) end.optional = true
          } else {
            for (const latency of read.jobs) {
              const match = (end: End) => end.queue === op.queue && end.wait === latency.wait && end.run === latency.run
              const required = model.ends.findIndex((end) => match(end) && !end.optional)
              const i = required >= 0 ? required : model.ends.findIndex(match)
              if (i < 0) fail(`latencies: ${show(latency)} is no end the model has not reported yet: ${show(model.ends)}`)
              model.ends.splice(i, 1)
            }
            // an end before the read's instant is in it (or in a read before); one at its instant may come next
            const missed = model.ends.find((end) => end.queue === op.queue && !end.optional && end.finishedAt < model.now)
            if (missed !== undefined) fail(`latencies: the end of job ${missed.k} (${show(missed)}) is not reported`)
          }
          cursors.set(op.queue, read.until)
          break
        }
        case "listStates": {
          const rows = yield* store.list({ queue: op.queue, states: op.states, limit: op.limit })
          const expected = model.live()
            .filter((job) => (op.queue === undefined || job.spec.queue === op.queue) && op.states.includes(job.state))
          if (op.queue !== undefined) {
            check("list with states: the jobs, oldest first", expected.slice(0, op.limit).map((job) => job.k), rows.map((row) => kOfId(row.id)))
          } else {
            check("list with states: how many", Math.min(op.limit, expected.length), rows.length)
            for (const row of rows) {
              const k = kOfId(row.id)
              if (!expected.some((job) => job.k === k)) fail(`list with states: job ${k} (${row.state}) should not be listed`)
            }
          }
          break
        }
      }
      // every job's row, each queue's counts
      for (const queue of QUEUES) {
        const rows = yield* store.list({ queue, states: undefined, limit: 1000 })
        const expected = model.live().filter((job) => job.spec.queue === queue)
        check(`list ${queue}: the jobs, oldest first`, expected.map((job) => job.k), rows.map((row) => kOfId(row.id)))
        expected.forEach((job, i) => checkRow(`list ${queue}`, job, rows[i]))
        check(`counts ${queue}`, model.counts(queue), countsOf(yield* store.counts(queue)))
      }
    }

    // leave the store empty for the next run: running jobs end, queued ones are cancelled, all purged
    for (const job of model.live()) {
      if (job.state === "running") {
        const written = yield* store.settle(tokenOf(job.claim!), { _tag: "Final", state: "succeeded", exit: null })
        if (!written) fail(`cleanup: job ${job.k}'s token did not hold it`)
      } else if (job.state === "queued") {
        check(`cleanup: cancel of job ${job.k}`, "cancelled", yield* store.cancel(idOf(job.k)))
      }
    }
    yield* store.purge(model.now + 1, FINAL)
  })

// ---------------------------------------------------------------------------------------------

const SEEDS = process.env.MODEL_SEEDS === undefined ? undefined : Number(process.env.MODEL_SEEDS)
const FIRST = Number(process.env.MODEL_SEED ?? 1)
const STEPS = Number(process.env.MODEL_STEPS ?? 30)
const DEBUG = process.env.MODEL_DEBUG !== undefined

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wp-model-"))
let files = 0
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

/** Seeds per store by default: the server stores cost a round trip per operation and read. */
const DEFAULT_SEEDS: Record<string, number> = { memory: 400, SQLite: 300, Postgres: 100, Redis: 150 }

describe("the durable stores against a reference model", () => {
  for (const [name, layer] of storeLayers(() => path.join(dir, `model-${++files}.db`))) {
    const seeds = SEEDS ?? DEFAULT_SEEDS[name] ?? 100
    it.effect(`${name}: ${seeds} seeded runs of ${STEPS} random operations agree with the model at every step`, () =>
      Effect.gen(function*() {
        const store = Context.get(yield* Layer.build(layer()), JobStore.JobStore)
        for (let seed = FIRST; seed < FIRST + seeds; seed++) yield* runSeed(store, seed, STEPS, DEBUG, process.env.MODEL_SINGLE === undefined)
      }).pipe(Effect.scoped), { timeout: Math.max(120_000, seeds * STEPS * 25) })
  }
})

describe("what the model found", () => {
  const job = (queue: string, priority: number, n: number) => ({
    queue,
    task: "T1",
    payload: JSON.stringify({ n }),
    priority,
    dedupKey: null,
    maxAttempts: 3,
    timeout: 0,
    delay: 0,
    runAt: undefined
  })
  for (const [name, layer] of storeLayers(() => path.join(dir, `found-${++files}.db`))) {
    // seed 13 step 15: Redis read an empty list of states as every state (its script's "no filter")
    it.effect(`${name}: a list of no states lists no job`, () =>
      Effect.gen(function*() {
        const store = Context.get(yield* Layer.build(layer()), JobStore.JobStore)
        yield* store.enqueue(job("qa", 0, 1))
        assert.deepStrictEqual(yield* store.list({ queue: "qa", states: [], limit: 10 }), [])
        assert.deepStrictEqual(yield* store.list({ queue: undefined, states: [], limit: 10 }), [])
        assert.strictEqual((yield* store.list({ queue: "qa", states: ["queued"], limit: 10 })).length, 1)
      }).pipe(Effect.scoped))

    // seed 27 step 16: Postgres wrote two final settles of one token sent together in one statement,
    // which updated the job once (with either's values) and returned its token once: each settle
    // read that as its own, both callers told they were written
    it.effect(`${name}: two final settles of one token at the same instant: one is written, and the job ends as that one says`, () =>
      Effect.gen(function*() {
        const store = Context.get(yield* Layer.build(layer()), JobStore.JobStore)
        yield* store.enqueue(job("qa", 0, 1))
        const { claims } = yield* store.claim({ queues: ["qa"], tasks: ["T1"], limit: 1, lease: 1000 })
        const token = claims[0]!.token
        const written = yield* Effect.all([
          store.settle(token, { _tag: "Final", state: "succeeded", exit: "1" }),
          store.settle(token, { _tag: "Final", state: "dead", exit: "2" })
        ], { concurrency: 2 })
        assert.strictEqual(written.filter(Boolean).length, 1, `written: ${written}`)
        const row = yield* store.get(claims[0]!.job.id)
        assert.deepStrictEqual([row?.state, row?.exit], written[0] ? ["succeeded", "1"] : ["dead", "2"])
      }).pipe(Effect.scoped))

    // seed 1 step 18: Redis claimed from its queues in turn, each up to the claim's limit, so the
    // first queue's jobs filled the slots whatever their priority: the second queue's jobs of a
    // higher priority waited, for ever while the first queue had as many jobs as free slots
    it.effect(`${name}: a claim of several queues takes the best jobs across them, not the first queue's first`, () =>
      Effect.gen(function*() {
        const store = Context.get(yield* Layer.build(layer()), JobStore.JobStore)
        const low = yield* store.enqueueAll([job("qa", 0, 1), job("qa", 0, 2), job("qa", 0, 3)])
        yield* TestClock.adjust(1)
        const high = yield* store.enqueue(job("qb", 5, 4))
        const claim = (limit: number) =>
          Effect.map(store.claim({ queues: ["qa", "qb"], tasks: ["T1"], limit, lease: 1000 }), (claimed) => claimed.claims.map((c) => c.job.id))
        assert.deepStrictEqual(yield* claim(1), [high.id], "the higher priority first")
        const later = yield* store.enqueue(job("qb", 0, 5))
        assert.deepStrictEqual(yield* claim(3), [low[0]!.id, low[1]!.id, low[2]!.id], "FIFO within a priority, across queues")
        assert.deepStrictEqual(yield* claim(3), [later.id])
      }).pipe(Effect.scoped))
  }
})
