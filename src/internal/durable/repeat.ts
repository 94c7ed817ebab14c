/**
 * A repeat's ticks: which one it enqueues next, and which it skips. One rule for every way a tick
 * is reached late (the store failing, the store hanging, a store slower than the ticks, the process
 * frozen or its timers late): a tick is enqueued until its deadline, the next tick's time or
 * `catchUp` after its own, whichever is later (`Infinity`: none skipped). One reached after it is
 * skipped with every later tick whose deadline passed too, counted (`workpool_repeat_ticks_skipped`)
 * and logged, and the schedule goes on from the first still on time (`onTime`). Without a
 * deadline every tick that passed during a stall was enqueued when the store answered, each due
 * already: an hour's stall of a per-second schedule made 3,600 jobs at once, while a store that
 * failed instead had its ticks skipped.
 *
 * Ticks are enqueued in order, one at a time, so a store slower than the ticks skips what it
 * cannot keep up with instead of lagging behind without end. A tick's enqueue carries its deadline
 * (`notAfter`), which the store checks on its own clock as the insert reaches it: one held past it
 * (a lock on the table, another transaction's uncommitted insert of it, a partition) stores nothing
 * and the tick counts as skipped, where it was stored when the store answered, after other
 * processes had enqueued, run and purged it. So a store whose inserts are reached later than a
 * period after their tick stores nothing (`catchUp` gives them longer).
 *
 * @internal
 */
import { Cron, Effect, Metric, Result } from "effect"
import type { NewJob, Store } from "../store/model.ts"

/** A failed enqueue of a tick is tried again after 100 ms, doubling up to 5 s, until its deadline. */
const RETRY_FIRST = 100
const RETRY_MAX = 5000

/**
 * A run of skipped ticks is counted one tick at a time (a cron's ticks are irregular), up to this
 * many (a few hundred ms of `Cron.next`); a longer run counts this many.
 */
const COUNT_LIMIT = 10_000

/** Ticks a process skipped, by repeat name (attribute `repeat`). */
const skippedTicks = Metric.counter("workpool_repeat_ticks_skipped", {
  description: "ticks of a JobQueue.repeat that this process reached after their deadline and did not enqueue",
  incremental: true
})

export interface Options {
  readonly name: string
  readonly cron: Cron.Cron
  /** Milliseconds, 0 for none. */
  readonly catchUp: number
  readonly store: Store
  readonly job: (at: number) => NewJob
}

const iso = (millis: number) => new Date(millis).toISOString()

/** How many ticks from `at` (included) to `until` (excluded), at most `COUNT_LIMIT`. */
const ticksBetween = (cron: Cron.Cron, at: number, until: number) =>
  Effect.gen(function*() {
    let count = 0
    for (let t = at; t < until && count < COUNT_LIMIT; t = Cron.next(cron, t).getTime()) {
      // a long run is counted in slices: the other fibers run between them
      if (++count % 1000 === 0) yield* Effect.yieldNow
    }
    return count
  })

/**
 * The first tick still on time at `now`, after a stall past a tick's deadline: the first within
 * `catchUp` of now, or else the latest due (its deadline, the next tick, is still ahead), or one due
 * at `now` itself. Those before it passed their deadlines: a process that was stalled enqueued them
 * late, when others may have enqueued, run and purged them meanwhile.
 */
const onTime = (cron: Cron.Cron, now: number, catchUp: number): number => {
  // the first tick within catchUp (without it, the first at now or after)
  const first = Cron.next(cron, now - Math.max(catchUp, 1)).getTime()
  if (first <= now) return first
  // the tick before it is due and on time, as long as Cron.prev finds the tick that Cron.next
  // steps from to `first` (the ids of every process's ticks come from Cron.next)
  const latest = Cron.prev(cron, first).getTime()
  return Cron.next(cron, latest).getTime() === first ? latest : first
}

/** Enqueues a repeat's ticks for as long as it runs (forked into the repeat's scope). */
export const run = (options: Options): Effect.Effect<never> => {
  const { catchUp, cron, name, store } = options
  const skipped = Metric.withAttributes(skippedTicks, { repeat: name })

  // the ticks given up in a row (the store failing for longer than a period), and those skipped
  // between them (each failure slower than a period: a connect timeout): logged when the run starts
  // and when a tick is stored again, not twice a tick (a per-second schedule logged 172,800 warnings
  // in a day's outage), each counted as it goes
  let givenUp: { readonly first: number; count: number } | undefined

  const skip = (at: number, until: number, now: number) =>
    Effect.gen(function*() {
      const count = yield* ticksBetween(cron, at, until)
      yield* Metric.update(skipped, count)
      if (givenUp !== undefined) {
        givenUp.count += count
        return
      }
      yield* Effect.logWarning(
        `effect-workpool: repeat ${name}: ${count === COUNT_LIMIT ? `${COUNT_LIMIT} or more ticks` : count === 1 ? "1 tick" : `${count} ticks`} ` +
          `due from ${iso(at)} to before ${iso(until)} skipped: reached ${now - at} ms after the first, past their deadline ` +
          `(the next tick${catchUp > 0 ? `, or catchUp ${catchUp} ms` : ""}); the store answered late or this process was stalled`
      )
    })

  // a tick not stored by its deadline: counted; logged if it starts a run of them
  const giveUp = (at: number, message: string, cause?: unknown) =>
    Effect.gen(function*() {
      yield* Metric.update(skipped, 1)
      if (givenUp !== undefined) {
        givenUp.count++
        return
      }
      givenUp = { first: at, count: 1 }
      yield* cause === undefined
        ? Effect.logWarning(`effect-workpool: repeat ${name}: ${message}`)
        : Effect.logWarning(`effect-workpool: repeat ${name}: ${message}`, cause)
    })

  // a tick whose enqueue fails (the store unreachable or locked for a moment) is tried again until
  // it is stored or its deadline passes: a schedule run by one process lost a daily job to one
  // failed statement
  const enqueueTick = (at: number, deadline: number) =>
    Effect.gen(function*() {
      // the store refuses it past its deadline, by its own clock when the insert reaches it: an
      // enqueue held longer (a lock, a partition) stored a tick that others had run and purged
      const job: NewJob = deadline === Infinity ? options.job(at) : { ...options.job(at), notAfter: deadline - 1 }
      for (let wait = RETRY_FIRST, failures = 0;; wait = Math.min(wait * 2, RETRY_MAX)) {
        const result = yield* Effect.result(store.enqueue(job))
        if (Result.isSuccess(result) && result.success.late === true) {
          return yield* giveUp(
            at,
            `the enqueue of the tick of ${iso(at)} reached the store past its deadline (the store answered late, or held it): ` +
              `not stored, skipped (and the next ones so, logged once a tick is stored)`
          )
        }
        if (Result.isSuccess(result)) {
          if (givenUp === undefined) return
          const { count, first } = givenUp
          givenUp = undefined
          return yield* Effect.logWarning(
            `effect-workpool: repeat ${name}: ${count === 1 ? "1 tick" : `${count} ticks`} due from ${iso(first)} to before ${iso(at)} ` +
              `skipped: their enqueues failed until their deadlines or reached the store past them, or were not tried meanwhile; the tick of ${iso(at)} is stored`
          )
        }
        const now = yield* store.now
        if (now + wait >= deadline) {
          return yield* giveUp(
            at,
            `enqueuing the tick of ${iso(at)} failed ${failures + 1} times; ` +
              `its deadline is near, this one is skipped (and the next ones that fail so, logged once a tick is stored)`,
            result.failure
          )
        }
        if (failures++ === 0 && givenUp === undefined) {
          yield* Effect.logWarning(
            `effect-workpool: repeat ${name}: enqueuing a tick failed; trying again until its deadline`,
            result.failure
          )
        }
        yield* Effect.sleep(wait)
      }
    })

  // from the tick last enqueued (not from the time after its enqueue: a store slower than the
  // ticks lost every other one), each tick in order; one reached past its deadline is skipped,
  // however it came late: a process frozen past its tick that enqueued it on waking could store
  // a tick whose job other processes had run and purged meanwhile, and it ran twice
  return Effect.gen(function*() {
    // not from catchUp before: a schedule started for the first time would enqueue all of it
    let at = Cron.next(cron, yield* store.now).getTime()
    while (true) {
      let now = yield* store.now
      if (at > now) {
        yield* Effect.sleep(at - now)
        now = Math.max(at, yield* store.now)
      }
      // until the next tick is due, or catchUp after this one
      const following = Cron.next(cron, at).getTime()
      const deadline = Math.max(following, at + catchUp)
      if (now >= deadline) {
        const resume = onTime(cron, now, catchUp)
        yield* skip(at, resume, now)
        // the tick itself, not the next from a moment before it: Cron.next from a moment before a
        // tick moved out of a DST gap (02:30 at 03:30) passes it, and it was neither enqueued nor counted
        at = resume
        continue
      }
      yield* enqueueTick(at, deadline)
      at = following
    }
  })
}
