import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Exit, Fiber, Schedule } from "effect"
import { TestClock } from "effect/testing"
import * as WorkPool from "../src/WorkPool.ts"
import { prng } from "./helpers.ts"

/**
 * A model-based random test of the WorkPool scheduler: a small reference model (plain TypeScript, no
 * pool) of what the docs promise, driven with the same random operations as a real pool under the
 * TestClock, compared at every step (stats, each job's status) and at the end (which job started
 * when, each attempt; each job's outcome and the instant it ended).
 *
 * The model's rules, from the docs (README, WorkPool.ts JSDoc) and, where they are silent, the code:
 * - a job starts only when a worker is free, the pool is not paused, the rate limit lets it, and no
 *   queued job outranks it. Rank: with aging, `priority × aging − time` (time: its submission, or its
 *   return to the queue after a retry's delay), else the priority; ties: earlier `time`, then earlier
 *   submission (FIFO).
 * - a submission that finds a waiting line or no room waits (suspend: FIFO, admitted as room opens,
 *   after the starts that made it), is refused (fail), dropped (dropNewest), or drops the queued job
 *   that has waited longest (dropOldest).
 * - every deadline due at an instant (queue timeouts, timeouts of running attempts, the ends of
 *   retry delays) is handled before any job starts at that instant.
 * - a failed or timed-out attempt is retried while `times` allows, after its delay, holding no worker.
 * - at most `limit` starts in any window of `interval` (a start at s counts until s + interval);
 *   the window remembers the last `limit` starts (see `setRateLimit`).
 *
 * Where two events of one instant are heard in an order the docs leave open (their timers' order),
 * the model does not guess: each instant's starts are compared as a set, and a run that reaches a
 * shutdown deadline or a rate limit's window opening tied with another event stops being compared
 * there (about 1.6% of runs). Env: MODEL_SEED (first seed), MODEL_SEEDS (how many), MODEL_STEPS
 * (operations per run, 40), MODEL_DEBUG (print each run), MODEL_COUNT (how many runs stopped early).
 */

// ---------------------------------------------------------------------------------------------
// the plan: what each job does

interface Attempt {
  readonly millis: number
  readonly fail: boolean
}

interface Plan {
  readonly priority: number
  readonly timeout: number | undefined
  readonly queueTimeout: number | undefined
  readonly retry: { readonly times: number; readonly delay: number | undefined } | undefined
  readonly attempts: ReadonlyArray<Attempt>
}

interface PoolConfig {
  readonly concurrency: number
  readonly capacity: number
  readonly overflow: WorkPool.Overflow
  readonly aging: number | undefined
  readonly rateLimit: { readonly limit: number; readonly interval: number } | undefined
  readonly shutdownTimeout: number
  readonly paused: boolean
  /** The pool's defaults of the jobs' options. */
  readonly timeout: number | undefined
  readonly queueTimeout: number | undefined
  readonly retry: Plan["retry"]
  /** Ended jobs kept visible, each for this many milliseconds (at most 1000 of them: never reached here). */
  readonly retainFor: number | undefined
}

type Status = "waiting" | "queued" | "running" | "retrying" | "succeeded" | "failed" | "timedOut" | "interrupted" | "dropped" | "rejected"

const LIVE: ReadonlyArray<Status> = ["waiting", "queued", "running", "retrying"]

// ---------------------------------------------------------------------------------------------
// the model

interface MJob {
  readonly k: number
  readonly plan: Plan
  readonly seq: number
  status: Status
  /** submission, or return to the queue after a retry's delay */
  time: number
  retries: number
  queueDeadline: number | undefined
  runStart: number
  runEnd: number
  runDeadline: number | undefined
  holdUntil: number
  endedAt: number | undefined
  startIndex: number
}

class Model {
  now = 0
  readonly jobs: Array<MJob> = []
  readonly starts: Array<string> = []
  target: number
  paused: boolean
  state: "running" | "draining" | "stopped" = "running"
  shutdownAt: number | undefined = undefined
  /** Set when the run reaches an instant whose order the docs leave open (see `advance`). */
  ambiguous = false
  /** How many attempts had started when `shutdown` was called. */
  shutdownStarts = 0
  /** The last `limit` starts under the current limit (the pool's limiter remembers no more). */
  gateStarts: Array<number> = []
  rateLimit: { readonly limit: number; readonly interval: number } | undefined
  submitted = 0
  rejected = 0
  retried = 0
  readonly ended = { succeeded: 0, failed: 0, timedOut: 0, interrupted: 0, dropped: 0 }
  waitLine: Array<MJob> = []
  /** What the model did at each instant, for a failure's message. */
  readonly events: Array<string> = []
  readonly config: PoolConfig
  constructor(config: PoolConfig) {
    this.config = config
    this.target = config.concurrency
    this.paused = config.paused
    this.rateLimit = config.rateLimit
  }

  private get queued() {
    return this.jobs.filter((j) => j.status === "queued")
  }
  private get running() {
    return this.jobs.filter((j) => j.status === "running")
  }
  private get held() {
    return this.jobs.filter((j) => j.status === "retrying")
  }
  private get waitingCount() {
    return this.waitLine.length
  }
  private free() {
    return Math.max(0, this.target - this.running.length)
  }
  workers() {
    return this.state === "stopped" ? 0 : Math.max(this.target, this.running.length)
  }

  private score(j: MJob) {
    const aging = this.config.aging
    return aging !== undefined ? j.plan.priority * aging - j.time : j.plan.priority
  }
  private before(a: MJob, b: MJob) {
    const sa = this.score(a)
    const sb = this.score(b)
    if (sa !== sb) return sa > sb
    if (a.time !== b.time) return a.time < b.time
    return a.seq < b.seq
  }
  private best(): MJob | undefined {
    let best: MJob | undefined
    for (const j of this.queued) if (best === undefined || this.before(j, best)) best = j
    return best
  }
  private oldest(): MJob | undefined {
    let o: MJob | undefined
    for (const j of this.queued) if (o === undefined || j.time < o.time || (j.time === o.time && j.seq < o.seq)) o = j
    return o
  }

  // rate limit
  private inWindow() {
    const rl = this.rateLimit!
    return this.gateStarts.filter((s) => this.now - s < rl.interval).length
  }
  private gateAllows() {
    return this.rateLimit === undefined || this.inWindow() < this.rateLimit.limit
  }
  private gateRoom(atMost: number) {
    if (this.rateLimit === undefined) return atMost
    return Math.min(atMost, Math.max(0, this.rateLimit.limit - this.inWindow()))
  }
  private gateOpensAt(): number {
    const rl = this.rateLimit
    if (rl === undefined) return Infinity
    const inside = this.gateStarts.filter((s) => this.now - s < rl.interval)
    if (inside.length < rl.limit) return Infinity
    return inside[inside.length - rl.limit]! + rl.interval
  }

  private hasRoom() {
    const q = this.queued.length
    if (q < this.config.capacity) return true
    const free = this.free()
    if (this.paused || q >= free) return false
    return q < this.gateRoom(free)
  }

  private end(j: MJob, status: Status) {
    if ((j.status as string) === "new") j.status = "queued"
    if (j.status === "waiting") this.waitLine = this.waitLine.filter((x) => x !== j)
    j.status = status
    j.endedAt = this.now
    j.queueDeadline = undefined
    j.runDeadline = undefined
    if (status === "rejected") {
      this.submitted--
      this.rejected++
    } else this.ended[status as keyof Model["ended"]]++
  }

  private start(j: MJob) {
    if (this.rateLimit !== undefined) {
      this.gateStarts.push(this.now)
      if (this.gateStarts.length > this.rateLimit.limit) this.gateStarts.shift()
    }
    j.status = "running"
    j.queueDeadline = undefined
    j.runStart = this.now
    const attempt = j.plan.attempts[Math.min(j.retries, j.plan.attempts.length - 1)]!
    j.runEnd = this.now + attempt.millis
    const timeout = this.timeoutOf(j.plan)
    j.runDeadline = timeout === undefined ? undefined : this.now + timeout
    this.events.push(`${this.now}: start #${j.k} (queued ${this.queued.map((q) => q.k)}, waiting ${this.waitLine.map((w) => w.k)})`)
    j.startIndex = this.starts.length
    this.starts.push(`${this.now} #${j.k}.${j.retries + 1}`)
  }

  /** An attempt stopped: `failedWith` undefined for a success. */
  private stopped(j: MJob, outcome: "succeeded" | "failed" | "timedOut") {
    const retry = this.retryOf(j.plan)
    if (outcome !== "succeeded" && this.state !== "stopped" && this.shutdownAt !== -1 && retry !== undefined && j.retries < retry.times) {
      j.retries++
      this.retried++
      j.status = "retrying"
      j.runDeadline = undefined
      j.holdUntil = this.now + (retry.delay ?? 0)
      return
    }
    this.end(j, outcome)
  }

  submit(plan: Plan): MJob {
    const j: MJob = {
      k: this.jobs.length,
      plan,
      seq: this.jobs.length,
      status: "new" as Status,
      time: this.now,
      retries: 0,
      queueDeadline: undefined,
      runStart: 0,
      runEnd: 0,
      runDeadline: undefined,
      holdUntil: 0,
      endedAt: undefined,
      startIndex: 0
    }
    this.jobs.push(j)
    this.submitted++
    if (this.state !== "running") {
      this.end(j, "rejected")
      return j
    }
    const queueTimeout = this.queueTimeoutOf(plan)
    if (queueTimeout !== undefined) j.queueDeadline = this.now + queueTimeout
    if (this.waitingCount === 0 && this.hasRoom()) {
      j.status = "queued"
      this.pump()
      return j
    }
    switch (this.config.overflow) {
      case "suspend":
        j.status = "waiting"
        this.waitLine.push(j)
        return j
      case "fail":
        this.end(j, "rejected")
        return j
      case "dropNewest":
        this.end(j, "dropped")
        return j
      case "dropOldest": {
        const oldest = this.oldest()
        if (oldest === undefined) {
          this.end(j, "dropped")
          return j
        }
        j.status = "queued"
        this.end(oldest, "dropped")
        while (this.queued.length > this.config.capacity && j.status === "queued") {
          const next = this.oldest()
          if (next === undefined || next === j) break
          this.end(next, "dropped")
        }
        this.pump()
        return j
      }
    }
  }

  /** Handles every deadline due by now: queue timeouts, running timeouts, ends of retry delays. */
  private expire() {
    const due: Array<[number, MJob, "queued" | "running" | "held"]> = []
    for (const j of this.jobs) {
      if ((j.status === "queued" || j.status === "waiting") && j.queueDeadline !== undefined && j.queueDeadline <= this.now) due.push([j.queueDeadline, j, "queued"])
      if (j.status === "running" && j.runDeadline !== undefined && j.runDeadline <= this.now) due.push([j.runDeadline, j, "running"])
      if (j.status === "retrying" && j.holdUntil <= this.now) due.push([j.holdUntil, j, "held"])
    }
    due.sort((a, b) => a[0] - b[0] || a[1].seq - b[1].seq)
    for (const [, j, phase] of due) {
      if (phase === "queued") this.end(j, "timedOut")
      else if (phase === "running") this.stopped(j, "timedOut")
      else {
        j.status = "queued"
        j.time = this.now
        const queueTimeout = this.queueTimeoutOf(j.plan)
        j.queueDeadline = queueTimeout === undefined ? undefined : this.now + queueTimeout
      }
    }
    return due.length > 0
  }

  pump() {
    if (this.state === "stopped") return
    for (;;) {
      this.expire()
      let changed = false
      while (!this.paused && this.free() > 0) {
        const j = this.best()
        if (j === undefined || !this.gateAllows()) break
        this.start(j)
        changed = true
        // the room a start makes goes to a waiting submitter before the next free worker picks
        while (this.waitingCount > 0 && this.free() > 0 && this.hasRoom()) {
          const w = this.waitLine.shift()!
          w.status = "queued"
          this.events.push(`${this.now}: admit #${w.k}`)
        }
      }
      while (this.waitingCount > 0 && this.hasRoom()) {
        const j = this.waitLine.shift()!
        j.status = "queued"
        this.events.push(`${this.now}: admit #${j.k}`)
        changed = true
      }
      if (!changed) break
    }
    this.checkStopped()
  }

  private checkStopped() {
    if (this.state !== "draining") return
    if (this.queued.length === 0 && this.running.length === 0 && this.waitingCount === 0 && this.held.length === 0) {
      this.state = "stopped"
      this.target = 0
    }
  }

  /** How many things other than the shutdown's deadline are due at `t`. */
  private eventsAt(t: number): number {
    let n = 0
    for (const j of this.jobs) {
      if ((j.status === "queued" || j.status === "waiting") && j.queueDeadline === t) n++
      if (j.status === "running" && (j.runEnd === t || j.runDeadline === t)) n++
      if (j.status === "retrying" && j.holdUntil === t) n++
    }
    if (!this.paused && this.free() > 0 && (this.queued.length > 0 || this.waitingCount > 0) && this.gateOpensAt() === t) n++
    return n
  }

  /** The next instant something happens, if any. */
  private nextEvent(): number {
    let t = Infinity
    for (const j of this.jobs) {
      if ((j.status === "queued" || j.status === "waiting") && j.queueDeadline !== undefined) t = Math.min(t, j.queueDeadline)
      if (j.status === "running") {
        t = Math.min(t, j.runEnd)
        if (j.runDeadline !== undefined) t = Math.min(t, j.runDeadline)
      }
      if (j.status === "retrying") t = Math.min(t, j.holdUntil)
    }
    if (!this.paused && this.free() > 0 && (this.queued.length > 0 || this.waitingCount > 0)) t = Math.min(t, this.gateOpensAt())
    if (this.shutdownAt !== undefined && this.shutdownAt >= 0 && this.state === "draining") t = Math.min(t, this.shutdownAt)
    return t
  }

  advance(to: number) {
    for (;;) {
      const t = this.nextEvent()
      if (t > to) break
      // the shutdown's deadline at the instant something else is due: which comes first is the
      // order of their timers, which the docs leave open; the run stops being compared here
      if (this.state === "draining" && this.shutdownAt === t && this.eventsAt(t) > 0) {
        this.ambiguous = true
        return
      }
      // the rate limit's window opening as an attempt ends: which the pool hears of first (their
      // timers' order) decides whether the window's room goes to the queue as it is or to the job
      // the end frees a worker for, or retries: left open by the docs too
      if (
        this.rateLimit !== undefined && !this.paused && this.free() > 0 && (this.queued.length > 0 || this.waitingCount > 0) &&
        this.gateOpensAt() === t && this.running.some((j) => j.runEnd === t || j.runDeadline === t)
      ) {
        this.ambiguous = true
        return
      }
      this.now = t
      this.expire()
      this.pump()
      // attempts ending now, in the order they started
      const ending = this.running.filter((j) => j.runEnd === t).sort((a, b) => a.runStart - b.runStart || a.seq - b.seq)
      for (const j of ending) {
        // the shutdown's deadline at this same instant: its timer, set when `shutdown` was called,
        // wakes before the attempts started after the call (which are then interrupted)
        if (this.shutdownAt === t && this.state === "draining" && j.startIndex >= this.shutdownStarts) this.stopNow()
        if (j.status !== "running" || j.runEnd !== t) continue
        const attempt = j.plan.attempts[Math.min(j.retries, j.plan.attempts.length - 1)]!
        this.stopped(j, attempt.fail ? "failed" : "succeeded")
        this.pump()
      }
      if (this.shutdownAt !== undefined && this.shutdownAt >= 0 && this.shutdownAt <= t && this.state === "draining") this.stopNow()
      this.pump()
    }
    this.now = to
  }

  cancel(j: MJob) {
    if (!LIVE.includes(j.status)) return
    const running = j.status === "running"
    this.end(j, "interrupted")
    if (running || this.waitingCount > 0) this.pump()
    else this.checkStopped()
  }

  /** A job's own value, else the pool's (Infinity: none). */
  private timeoutOf(plan: Plan) {
    const t = plan.timeout ?? this.config.timeout
    return t === Infinity ? undefined : t
  }
  private queueTimeoutOf(plan: Plan) {
    const t = plan.queueTimeout ?? this.config.queueTimeout
    return t === Infinity ? undefined : t
  }
  private retryOf(plan: Plan) {
    return plan.retry ?? this.config.retry
  }

  setRateLimit(limit: { readonly limit: number; readonly interval: number } | undefined) {
    if (limit === undefined) this.gateStarts = []
    else if (this.rateLimit !== undefined) this.gateStarts = this.gateStarts.slice(-limit.limit)
    else if (this.state === "stopped") return
    else this.gateStarts = []
    this.rateLimit = limit
    this.pump()
  }

  pause() {
    this.paused = true
  }
  resume() {
    if (!this.paused) return
    this.paused = false
    this.pump()
  }
  resize(n: number) {
    if (this.state !== "running") return
    this.target = n
    this.pump()
  }

  private rejectWaiting() {
    for (const j of [...this.waitLine]) this.end(j, "rejected")
    this.waitLine = []
  }

  shutdown() {
    if (this.state !== "running") return
    this.state = "draining"
    this.paused = false
    this.rejectWaiting()
    this.shutdownAt = this.now + this.config.shutdownTimeout
    this.pump()
    // the jobs it starts set their timers before the shutdown's own (its fiber's first run)
    this.shutdownStarts = this.starts.length
    if (this.config.shutdownTimeout === 0 && this.state === "draining") this.stopNow()
  }

  /** Returns the ids handed back. */
  stopNow(): Array<number> {
    if (this.shutdownAt === -1) return []
    this.state = "draining"
    this.shutdownAt = -1
    this.rejectWaiting()
    const unstarted = this.jobs.filter((j) => j.status === "queued" || j.status === "retrying")
    for (const j of unstarted) this.end(j, "interrupted")
    for (const j of this.running) this.end(j, "interrupted")
    this.state = "stopped"
    this.target = 0
    return unstarted.map((j) => j.k)
  }

  /** Queued jobs free workers would start now but for the rate limit. */
  private rateLimited() {
    if (this.rateLimit === undefined || this.paused) return 0
    const startable = Math.min(this.queued.length, this.workers() - this.running.length)
    return startable <= 0 ? 0 : startable - this.gateRoom(startable)
  }

  stats() {
    const byPriority = new Map<number, number>()
    for (const j of this.queued) byPriority.set(j.plan.priority, (byPriority.get(j.plan.priority) ?? 0) + 1)
    return {
      state: this.state === "running" && this.paused ? "paused" : this.state,
      concurrency: this.target,
      workers: this.workers(),
      running: this.running.length,
      queued: this.queued.length,
      waiting: this.waitingCount,
      retrying: this.held.length,
      retried: this.retried,
      rateLimited: this.rateLimited(),
      submitted: this.submitted,
      rejected: this.rejected,
      ...this.ended,
      queuedByPriority: Array.from(byPriority, ([priority, count]) => ({ priority, count })).sort((a, b) => b.priority - a.priority)
    }
  }
}

// ---------------------------------------------------------------------------------------------
// the random run

const pick = <A>(rand: () => number, xs: ReadonlyArray<A>): A => xs[Math.floor(rand() * xs.length)]!
const int = (rand: () => number, lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1))

const randomConfig = (rand: () => number): PoolConfig => ({
  concurrency: int(rand, 1, 3),
  capacity: pick(rand, [0, 1, 2, 3, 5, Infinity]),
  overflow: pick(rand, ["suspend", "fail", "dropNewest", "dropOldest"] as const),
  aging: rand() < 0.4 ? pick(rand, [1, 10, 50, 200]) : undefined,
  rateLimit: rand() < 0.3 ? { limit: int(rand, 1, 2), interval: int(rand, 20, 150) } : undefined,
  shutdownTimeout: int(rand, 0, 300),
  paused: rand() < 0.1,
  retainFor: rand() < 0.3 ? int(rand, 1, 300) : undefined,
  // never one of an attempt's lengths (1 to 120, even): which of the two ends first is left open
  timeout: rand() < 0.2 ? 2 * int(rand, 3, 60) + 1 : undefined,
  queueTimeout: rand() < 0.2 ? int(rand, 1, 200) : undefined,
  retry: rand() < 0.2 ? { times: int(rand, 1, 2), delay: rand() < 0.3 ? undefined : int(rand, 0, 80) } : undefined
})

const randomPlan = (rand: () => number): Plan => {
  // undefined: the pool's; Infinity or `times: 0`: none, whatever the pool's
  const retry = rand() < 0.3 ? { times: int(rand, 0, 2), delay: rand() < 0.3 ? undefined : int(rand, 0, 80) } : undefined
  const attempts: Array<Attempt> = []
  let timeout = rand() < 0.25 ? int(rand, 5, 150) : rand() < 0.1 ? Infinity : undefined
  // attempts of even lengths, the last repeated (the pool's retry may allow more)
  for (let i = 0; i < 3; i++) attempts.push({ millis: 2 * int(rand, 1, 60), fail: rand() < 0.3 })
  // a timeout equal to an attempt's length: which ends first is not defined
  if (timeout !== undefined && attempts.some((a) => a.millis === timeout)) timeout = undefined
  return {
    priority: pick(rand, [0, 0, 1, 2, -1]),
    timeout,
    queueTimeout: rand() < 0.25 ? int(rand, 1, 200) : rand() < 0.1 ? Infinity : undefined,
    retry,
    attempts
  }
}

/** Starts ("<instant> #<job>.<attempt>") in order of instant, those of one instant sorted. */
const byInstant = (starts: ReadonlyArray<string>) =>
  [...starts].sort((a, b) => parseInt(a) - parseInt(b) || (a < b ? -1 : a > b ? 1 : 0))

interface Outcome {
  status: Status
  at: number
}

const statusOf = (exit: Exit.Exit<unknown, unknown>): Status => {
  if (Exit.isSuccess(exit)) return "succeeded"
  const error: any = exit.cause.reasons.find((r: any) => r._tag === "Fail")
  if (error === undefined) return "interrupted"
  const e = error.error
  if (e === "boom") return "failed"
  switch (e?._tag) {
    case "JobTimeout":
      return "timedOut"
    case "JobDropped":
      return "dropped"
    case "QueueFull":
      return "rejected"
    case "PoolShutdown":
      return e.phase === "admission" ? "rejected" : "interrupted"
  }
  return "failed"
}

let current: WorkPool.WorkPool | undefined
/** Runs that reached an instant whose order of events is left open (see `Model.advance`). */
let ambiguousRuns = 0

const runSeed = (seed: number, steps = 40) =>
  Effect.gen(function*() {
    const rand = prng(seed)
    const config = randomConfig(rand)
    const model = new Model(config)
    const t0 = yield* Clock.currentTimeMillis
    const now = Effect.map(Clock.currentTimeMillis, (t) => t - t0)
    const pool = yield* WorkPool.make({
      concurrency: config.concurrency,
      capacity: config.capacity,
      overflow: config.overflow,
      aging: config.aging,
      rateLimit: config.rateLimit,
      shutdownTimeout: config.shutdownTimeout,
      paused: config.paused,
      ...(config.timeout !== undefined ? { timeout: config.timeout } : {}),
      ...(config.queueTimeout !== undefined ? { queueTimeout: config.queueTimeout } : {}),
      ...(config.retry !== undefined ?
        { retry: { times: config.retry.times, ...(config.retry.delay !== undefined ? { schedule: Schedule.spaced(config.retry.delay) } : {}) } } :
        {}),
      ...(config.retainFor !== undefined ? { retention: { count: 1000, age: config.retainFor } } : {}),
      metrics: false
    })
    current = pool
    const started: Array<string> = []
    const attemptsStarted: Array<number> = []
    const outcomes: Array<Outcome | undefined> = []
    const handles: Array<WorkPool.JobHandle<unknown, unknown> | undefined> = []
    const trace: Array<string> = []
    const log = (line: string) => {
      trace.push(line)
      if (process.env.MODEL_DEBUG) console.error(line)
    }
    log(`seed ${seed}: ${JSON.stringify(config)}`)
    const fail = (what: string) => {
      const ends = model.jobs.map((j) => `#${j.k} ${j.status}@${j.endedAt} (pool: ${outcomes[j.k]?.status}@${outcomes[j.k]?.at})`)
      throw new Error(
        `seed ${seed}: ${what}\n${trace.join("\n")}\n  ${model.events.join("\n  ")}\n  starts, pool:  ${started.join(", ")}\n  starts, model: ${model.starts.join(", ")}\n  ${ends.join("\n  ")}`
      )
    }
    const settle = Effect.gen(function*() {
      for (let i = 0; i < 10; i++) yield* Effect.yieldNow
    })

    const compare = (where: string) =>
      Effect.gen(function*() {
        yield* settle
        const s = yield* pool.stats
        const m = model.stats()
        const actual = {
          state: s.state,
          concurrency: s.concurrency,
          workers: s.workers,
          running: s.running,
          queued: s.queued,
          waiting: s.waiting,
          retrying: s.retrying,
          retried: s.retried,
          rateLimited: s.rateLimited,
          submitted: s.submitted,
          rejected: s.rejected,
          succeeded: s.succeeded,
          failed: s.failed,
          timedOut: s.timedOut,
          interrupted: s.interrupted,
          dropped: s.dropped,
          queuedByPriority: s.queuedByPriority
        }
        if (JSON.stringify(actual) !== JSON.stringify(m)) {
          fail(`${where}: stats differ\n  pool:  ${JSON.stringify(actual)}\n  model: ${JSON.stringify(m)}`)
        }
        for (let k = 0; k < model.jobs.length; k++) {
          const h = handles[k]
          const mj = model.jobs[k]!
          if (h === undefined) continue
          const status = yield* h.status
          const expected = mj.status
          if (status !== expected) fail(`${where}: job #${k} is ${status}, model says ${expected}`)
          if (LIVE.includes(expected)) {
            const attempt = yield* h.attempt
            if (attempt !== mj.retries + 1) fail(`${where}: job #${k} on attempt ${attempt}, model says ${mj.retries + 1}`)
          }
        }
        // the order of starts within one instant follows the order the pool hears of that instant's
        // events (timers, ends), which the docs leave open: the set of each instant's starts is compared
        // jobs(): the live jobs and the ended ones the retention keeps (until `age` after their end)
        // job #k has the pool's id k + 1 (every submission takes one, a refused one too)
        const listed = (yield* pool.jobs()).map((j) => `${j.id - 1} ${j.status} ${j.attempt}`)
        const expectedListing = model.jobs.filter((j) =>
          (LIVE.includes(j.status) ||
            (j.status !== "rejected" && config.retainFor !== undefined && j.endedAt! + config.retainFor > model.now))
        ).map((j) => `${j.k} ${j.status} ${j.retries + 1}`)
        if (JSON.stringify(listed) !== JSON.stringify(expectedListing)) {
          fail(`${where}: jobs() differ\n  pool:  ${listed.join(", ")}\n  model: ${expectedListing.join(", ")}`)
        }
        if (JSON.stringify(byInstant(started)) !== JSON.stringify(byInstant(model.starts))) {
          fail(`${where}: starts differ\n  pool:  ${started.join(", ")}\n  model: ${model.starts.join(", ")}`)
        }
      })

    const submit = (plan: Plan) =>
      Effect.gen(function*() {
        const k = attemptsStarted.length
        attemptsStarted.push(0)
        outcomes.push(undefined)
        handles.push(undefined)
        const job = Effect.gen(function*() {
          const a = attemptsStarted[k]!++
          started.push(`${yield* now} #${k}.${a + 1}`)
          const attempt = plan.attempts[Math.min(a, plan.attempts.length - 1)]!
          yield* Effect.sleep(attempt.millis)
          if (attempt.fail) return yield* Effect.fail("boom")
          return k
        })
        const options: WorkPool.JobOptions = {
          priority: plan.priority,
          ...(plan.timeout !== undefined ? { timeout: plan.timeout } : {}),
          ...(plan.queueTimeout !== undefined ? { queueTimeout: plan.queueTimeout } : {}),
          ...(plan.retry !== undefined ?
            { retry: { times: plan.retry.times, ...(plan.retry.delay !== undefined ? { schedule: Schedule.spaced(plan.retry.delay) } : {}) } } :
            {})
        }
        yield* Effect.forkChild(
          Effect.gen(function*() {
            const submitted = yield* Effect.exit(pool.submit(job, options))
            if (Exit.isFailure(submitted)) {
              outcomes[k] = { status: statusOf(submitted), at: yield* now }
              return
            }
            handles[k] = submitted.value
            if (submitted.value.id !== k + 1) fail(`job #${k} has id ${submitted.value.id}`)
            const exit = yield* Effect.exit(submitted.value.await)
            outcomes[k] = { status: statusOf(exit), at: yield* now }
          }),
          { startImmediately: true }
        )
        model.submit(plan)
      })

    let ending: "idle" | "shutdown" | "shutdownNow" = "idle"
    for (let step = 0; step < steps; step++) {
      const r = rand()
      let op: string
      if (r < 0.4) {
        const plan = randomPlan(rand)
        op = `submit #${attemptsStarted.length} ${JSON.stringify(plan)}`
        log(`${model.now}: ${op}`)
        yield* submit(plan)
      } else if (r < 0.7) {
        const by = pick(rand, [0, 1, int(rand, 1, 30), int(rand, 1, 200)])
        op = `adjust ${by}`
        log(`${model.now}: ${op}`)
        yield* TestClock.adjust(by)
        model.advance(model.now + by)
        if (model.ambiguous) {
          ambiguousRuns++
          return
        }
      } else if (r < 0.77) {
        const live = model.jobs.filter((j) => LIVE.includes(j.status) && handles[j.k] !== undefined)
        if (live.length === 0) continue
        const j = pick(rand, live)
        op = `cancel #${j.k} (${j.status})`
        log(`${model.now}: ${op}`)
        const cancelled = yield* pool.cancel(handles[j.k]!.id)
        if (!cancelled) fail(`cancel #${j.k} returned false`)
        model.cancel(j)
      } else if (r < 0.83) {
        op = "pause"
        log(`${model.now}: ${op}`)
        yield* pool.pause
        model.pause()
      } else if (r < 0.9) {
        op = "resume"
        log(`${model.now}: ${op}`)
        yield* pool.resume
        model.resume()
      } else if (r < 0.93) {
        const limit = rand() < 0.3 ? undefined : { limit: int(rand, 1, 3), interval: int(rand, 10, 150) }
        op = `setRateLimit ${JSON.stringify(limit)}`
        log(`${model.now}: ${op}`)
        yield* pool.setRateLimit(limit)
        model.setRateLimit(limit)
      } else {
        const n = int(rand, 1, 4)
        op = `resize ${n}`
        log(`${model.now}: ${op}`)
        yield* pool.resize(n)
        model.resize(n)
      }
      yield* compare(`after step ${step} (${op})`)
    }
    const e = rand()
    ending = e < 0.4 ? "idle" : e < 0.75 ? "shutdown" : "shutdownNow"
    log(`${model.now}: end with ${ending}`)
    if (ending === "idle") {
      yield* pool.resume
      model.resume()
    } else if (ending === "shutdown") {
      yield* Effect.forkChild(pool.shutdown, { startImmediately: true })
      model.shutdown()
    } else {
      const fiber = yield* Effect.forkChild(pool.shutdownNow, { startImmediately: true })
      const expected = model.stopNow()
      yield* settle
      const returned = yield* Fiber.join(fiber)
      const ids = returned.map((u) => handles.findIndex((h) => h?.id === u.id)).sort((a, b) => a - b)
      if (JSON.stringify(ids) !== JSON.stringify(expected.sort((a, b) => a - b))) {
        fail(`shutdownNow returned ${JSON.stringify(ids)}, model says ${JSON.stringify(expected)}`)
      }
    }
    yield* compare(`after ${ending}`)
    for (let i = 0; i < 400 && model.jobs.some((j) => LIVE.includes(j.status)); i++) {
      yield* TestClock.adjust(50)
      model.advance(model.now + 50)
      if (model.ambiguous) {
        ambiguousRuns++
        return
      }
      yield* compare(`draining, ${model.now}`)
    }
    yield* settle
    for (const j of model.jobs) {
      const got = outcomes[j.k]
      const want = { status: j.status, at: j.endedAt }
      if (got === undefined || got.status !== want.status || got.at !== want.at) {
        fail(`job #${j.k} ended ${JSON.stringify(got)}, model says ${JSON.stringify(want)}`)
      }
    }
  }).pipe(
    // a failed run must not leave the pool draining under the TestClock: its scope's close would wait for ever
    Effect.ensuring(Effect.suspend(() => current === undefined ? Effect.void : Effect.asVoid(current.shutdownNow))),
    Effect.scoped
  )

const SEEDS = Number(process.env.MODEL_SEEDS ?? 1000)
const FIRST = Number(process.env.MODEL_SEED ?? 1)
const STEPS = Number(process.env.MODEL_STEPS ?? 40)

describe("the scheduler against a reference model", () => {
  // Found by seed 164. At 38 the deadline timer ends A (its timeout) and is due to end B (its queue
  // timeout). A's interruption stops it at once, inside the timer's expiry, and its stop pumped the
  // queue there, before B's deadline (at the same instant) was handled: B started at its queue
  // deadline, where a worker freed by a job that ended at 38 on its own leaves it timed out.
  // Found by seed 385. Within a priority the queue is FIFO, and a retried job goes back to it "as if
  // just submitted", at the tail. A job that waited for room (overflow "suspend") takes its place by
  // its age (`enqueueWaited`): but among jobs of one score the queue broke ties by submission number,
  // not by when each came to the queue, so B, submitted at 5 and admitted at 60, went behind A,
  // submitted at 0 and back in the queue at 50, and ran after it (with any aging B runs first).
  it.effect("FIFO within a priority: a job that waited for room since 5 runs before a retry back in the queue at 50", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, capacity: 2, overflow: "suspend", metrics: false })
      const ran: Array<string> = []
      let attempts = 0
      const a = Effect.gen(function*() {
        ran.push(`A${++attempts}`)
        yield* Effect.sleep(attempts === 1 ? 50 : 1)
        if (attempts === 1) return yield* Effect.fail("boom")
      })
      const job = (name: string, millis: number) => Effect.andThen(Effect.sync(() => ran.push(name)), Effect.sleep(millis))
      yield* pool.submit(a, { retry: { times: 1 } })
      yield* pool.submit(job("H", 10), { priority: 1 })
      yield* pool.submit(job("K", 10), { priority: 1 })
      yield* TestClock.adjust(5)
      // the queue is full: B waits for room
      const b = yield* Effect.forkChild(pool.submit(job("B", 1)), { startImmediately: true })
      yield* TestClock.adjust(100)
      yield* Fiber.join(b)
      yield* pool.awaitIdle
      assert.deepStrictEqual(ran, ["A1", "H", "K", "B", "A2"])
    }))

  // The aging rule (Options.aging): a job of priority p is passed by one of priority q > p only if
  // that one came less than (q − p) × aging after it; one that came exactly that much later runs
  // after it. A retry "comes" when it is back in the queue (aging counted from then): R, back at
  // 1000 with priority 1, came exactly 1 × 1000 after L (priority 0, submitted at 0), so L runs
  // first. Their scores tie, and the tie went to the lower submission number, R's.
  it.effect("aging at the boundary holds for a retry: one back exactly (q − p) × aging later does not pass", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2, aging: 1000, metrics: false })
      const ran: Array<string> = []
      let attempts = 0
      const r = Effect.gen(function*() {
        ran.push(`R${++attempts}`)
        yield* Effect.sleep(500)
        if (attempts === 1) return yield* Effect.fail("boom")
      })
      const job = (name: string, millis: number) => Effect.andThen(Effect.sync(() => ran.push(name)), Effect.sleep(millis))
      yield* pool.submit(job("W", 3000))
      yield* pool.submit(r, { priority: 1, retry: { times: 1, schedule: Schedule.spaced(500) } })
      yield* pool.submit(job("X", 1000), { priority: 5 })
      yield* pool.submit(job("L", 1))
      yield* TestClock.adjust(5000)
      yield* pool.awaitIdle
      assert.deepStrictEqual(ran, ["W", "R1", "X", "L", "R2"])
    }))

  // Found by seed 3506. At 20, R ends (its worker is free) and E's queue timeout ends E (its room
  // in the queue is free). Whichever of the two the pool handled first decided who ran: if E's
  // deadline came first, H was admitted into its room and then started (it outranks L); if R's end
  // came first, its pump handled E's deadline, then started L before admitting H into the room that
  // E had left. A waiting submitter is admitted as soon as there is room, before the next start.
  it.effect("room left by a queue timeout admits a waiting job before a worker freed at that instant picks the next", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, capacity: 2, overflow: "suspend", metrics: false })
      const ran: Array<string> = []
      const job = (name: string, millis: number) => Effect.andThen(Effect.sync(() => ran.push(name)), Effect.sleep(millis))
      yield* pool.submit(job("R", 20))
      yield* pool.submit(job("L", 1))
      yield* pool.submit(job("E", 1), { priority: -1, queueTimeout: 20 })
      const h = yield* Effect.forkChild(pool.submit(job("H", 1), { priority: 1 }), { startImmediately: true })
      yield* TestClock.adjust(100)
      yield* Fiber.join(h)
      yield* pool.awaitIdle
      assert.deepStrictEqual(ran, ["R", "H", "L"])
    }))

  // Found by seed 4422. At 20, R1 ends and R2 times out: two workers free, L1 and L2 queued (the
  // queue full), H waiting for room. Heard one at a time, the first start (L1) makes room, H is
  // admitted and outranks L2 for the second worker; heard in one pump (R1's end handled R2's
  // deadline, not yet fired), both workers took queued jobs before H was admitted. Which happened
  // was the order of two timers at one instant.
  it.effect("each start admits the submitter waiting for the room it made before the next worker picks", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 2, capacity: 2, overflow: "suspend", metrics: false })
      const ran: Array<string> = []
      const job = (name: string, millis: number) => Effect.andThen(Effect.sync(() => ran.push(name)), Effect.sleep(millis))
      yield* pool.submit(job("R1", 20))
      yield* pool.submit(job("R2", 50), { timeout: 20 })
      yield* pool.submit(job("L1", 5))
      yield* pool.submit(job("L2", 5))
      const h = yield* Effect.forkChild(pool.submit(job("H", 5), { priority: 1 }), { startImmediately: true })
      yield* TestClock.adjust(100)
      yield* Fiber.join(h)
      yield* pool.awaitIdle
      assert.deepStrictEqual(ran, ["R1", "R2", "L1", "H", "L2"])
    }))

  // Found by seed 5032 (80 steps). Capacity 0 under a rate limit: at 50 the window lets one more job
  // start, and A's retry is due back in the queue. When the gate's timer came first, its pump found
  // the queue empty, admitted B (waiting for room) and started it; A's due retry was handled after.
  // When the deadline timer came first, A was queued, left B no room and started. The deadlines due
  // at an instant are handled before the pump admits anyone.
  it.effect("a retry due at the instant the rate limit opens is queued before a waiting submitter is admitted", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({
        concurrency: 2,
        capacity: 0,
        overflow: "suspend",
        rateLimit: { limit: 1, interval: 50 },
        metrics: false
      })
      const ran: Array<string> = []
      let attempts = 0
      const a = Effect.gen(function*() {
        ran.push(`A${++attempts}@${yield* Clock.currentTimeMillis}`)
        yield* Effect.sleep(10)
        if (attempts === 1) return yield* Effect.fail("boom")
      })
      const t0 = yield* Clock.currentTimeMillis
      yield* pool.submit(a, { retry: { times: 1, schedule: Schedule.spaced(40) } })
      yield* TestClock.adjust(1)
      const b = yield* Effect.forkChild(
        pool.submit(Effect.flatMap(Clock.currentTimeMillis, (t) => Effect.sync(() => ran.push(`B@${t}`))), { priority: 1 }),
        { startImmediately: true }
      )
      yield* TestClock.adjust(200)
      yield* Fiber.join(b)
      yield* pool.awaitIdle
      assert.deepStrictEqual(ran, [`A1@${t0}`, `A2@${t0 + 50}`, `B@${t0 + 100}`])
    }))

  // setRateLimit's doc said "the starts already made stay counted, so a change lets no extra burst
  // through": true of a change of a limit, not of a limit set on a pool without one (or after one
  // was removed), which counts from then (JobQueue.setRateLimit says so of its own). Docs fixed; pinned.
  it.effect("setRateLimit: a changed limit keeps the starts made under the old one; a new one counts from when it is set", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 4, metrics: false })
      const t0 = yield* Clock.currentTimeMillis
      const at: Array<number> = []
      const job = Effect.flatMap(Clock.currentTimeMillis, (t) => Effect.sync(() => at.push(t - t0)))
      const runLater = Effect.gen(function*() {
        const h = yield* pool.submit(job)
        yield* TestClock.adjust(200)
        yield* h.await
      })
      yield* pool.run(job)
      yield* pool.run(job)
      // set on a pool without one: the two starts at 0 are not counted
      yield* pool.setRateLimit({ limit: 1, interval: 100 })
      yield* runLater
      // changed: the start at 200, made under the old limit, is counted by the new one (the next at 350)
      yield* pool.run(job)
      yield* pool.setRateLimit({ limit: 1, interval: 150 })
      yield* runLater
      // removed, then set again: counted from then
      yield* pool.setRateLimit(undefined)
      yield* pool.run(job)
      yield* pool.setRateLimit({ limit: 1, interval: 100 })
      yield* runLater
      assert.deepStrictEqual(at, [0, 0, 0, 200, 350, 400, 400])
    }))

  // The same doc's "a change lets no extra burst through" does not hold for a longer interval: the
  // limiter keeps the last `limit` (old) starts only. Docs say so now; pinned.
  it.effect("setRateLimit: a longer interval counts only the starts the old limit remembered", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 4, metrics: false, rateLimit: { limit: 1, interval: 10 } })
      const t0 = yield* Clock.currentTimeMillis
      const at: Array<number> = []
      const job = Effect.flatMap(Clock.currentTimeMillis, (t) => Effect.sync(() => at.push(t - t0)))
      const handles = []
      for (let i = 0; i < 3; i++) handles.push(yield* pool.submit(job))
      yield* TestClock.adjust(25)
      yield* pool.setRateLimit({ limit: 2, interval: 100 })
      handles.push(yield* pool.submit(job))
      handles.push(yield* pool.submit(job))
      yield* TestClock.adjust(300)
      for (const handle of handles) yield* handle.await
      // four starts in [0, 100) under a limit of 2 per 100 ms: only the start at 20 was remembered
      assert.deepStrictEqual(at, [0, 10, 20, 25, 120])
    }))

  // Found by MODEL_SEED=30255 MODEL_STEPS=80. At 10, X and Y time out; Y is retried at once. X's stop,
  // handled first inside the timer's loop, admitted W (waiting for room, capacity 0) into the last
  // start the rate limit allowed before Y's timeout at the same instant was handled: W took the
  // start. Handled the other way round, Y's retry is queued first and takes it. A running job's
  // timeout that may be retried is due work of the queue too.
  it.effect("a timeout retried at once at the instant another job's timeout frees a worker is queued before a waiting submitter is admitted", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({
        concurrency: 2,
        capacity: 0,
        overflow: "suspend",
        rateLimit: { limit: 3, interval: 1000 },
        metrics: false
      })
      const t0 = yield* Clock.currentTimeMillis
      const ran: Array<string> = []
      const job = (name: string) =>
        Effect.flatMap(Clock.currentTimeMillis, (t) => Effect.andThen(Effect.sync(() => ran.push(`${name}@${t - t0}`)), Effect.sleep(20)))
      yield* pool.submit(job("X"), { timeout: 10 })
      yield* pool.submit(job("Y"), { timeout: 10, retry: { times: 1 } })
      yield* TestClock.adjust(1)
      const w = yield* Effect.forkChild(pool.submit(job("W"), { priority: 1 }), { startImmediately: true })
      yield* TestClock.adjust(2000)
      yield* Fiber.join(w)
      yield* pool.awaitIdle
      assert.deepStrictEqual(ran, ["X@0", "Y@0", "Y@10", "W@1000"])
    }))

  it.effect("a worker freed by a timeout does not start a job whose queue deadline is due at that instant", () =>
    Effect.gen(function*() {
      const pool = yield* WorkPool.make({ concurrency: 1, metrics: false })
      const a = yield* pool.submit(Effect.sleep(47), { timeout: 38 })
      let started = false
      const b = yield* pool.submit(Effect.sync(() => {
        started = true
      }), { queueTimeout: 38 })
      yield* TestClock.adjust(38)
      const exitA = yield* Effect.exit(a.await)
      const exitB = yield* Effect.exit(b.await)
      assert.strictEqual(statusOf(exitA), "timedOut")
      assert.strictEqual(started, false)
      assert.strictEqual(statusOf(exitB), "timedOut")
    }))


  it.effect(`random operations, seeds ${FIRST} to ${FIRST + SEEDS - 1}`, () =>
    Effect.gen(function*() {
      for (let seed = FIRST; seed < FIRST + SEEDS; seed++) {
        if (process.env.MODEL_DEBUG) console.error(`seed ${seed}`)
        yield* runSeed(seed, STEPS)
      }
      if (process.env.MODEL_COUNT) console.error(`${ambiguousRuns} of ${SEEDS} runs stopped at an instant left open`)
      // few runs end at an instant the model leaves open: the rest were compared to their end
      assert.isBelow(ambiguousRuns, SEEDS / 10)
    }), 60_000)
})
