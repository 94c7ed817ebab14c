/**
 * Settles queued in one store instance, to be written together: a busy consumer ends its jobs
 * faster than one round trip each, so the settles that arrive while a write is in flight go in the
 * next one (a group commit), and a claim that starts while some wait takes them along in its own
 * statement or script (`carry`): the claim for the slots those jobs freed, and their settles, are
 * one round trip. While a claim is in flight the writer waits for one to end: the consumer's next
 * claim, which comes at once (the jobs' slots are free), carries what queued meanwhile.
 *
 * Every settle is still fenced by its token where it is written: carrying it changes when and in
 * which round trip, not what it writes.
 *
 * @internal
 */
import { Deferred, Effect, Exit, Fiber, Scope } from "effect"
import type { Settled } from "./model.ts"

export interface Settles<A> {
  /** Queues a settle; succeeds with what was written of it (false: its token no longer held the job). */
  readonly add: (item: A) => Effect.Effect<Settled, unknown>
  /**
   * Runs a claim carrying the queued settles that `which` picks: `claim` writes them with its own
   * work and returns, with its result, what was written of each (in their order); `undefined` for
   * one it left to the writer, which writes it after the claim (no claim carries it again).
   */
  readonly carry: <B, E, R>(
    which: (item: A) => boolean,
    /**
     * `late`: this claim's caller stopped waiting for it (its server does not answer); the writer
     * no longer waits for it to end before writing the other settles (its carried ones still end
     * with its answer).
     */
    claim: (items: ReadonlyArray<A>, late: () => void) => Effect.Effect<readonly [B, ReadonlyArray<Settled | undefined>], E, R>
  ) => Effect.Effect<B, E, R>
}

interface Pending<A> {
  readonly item: A
  readonly done: Deferred.Deferred<Settled, unknown>
  /** Left to the writer by a claim that carried it: no claim carries it again. */
  readonly alone?: boolean
}

const settle = <A>(batch: ReadonlyArray<Pending<A>>, exit: Exit.Exit<ReadonlyArray<Settled>, unknown>) => {
  batch.forEach((entry, i) =>
    Deferred.doneUnsafe(entry.done, Exit.isSuccess(exit) ? Exit.succeed(exit.value[i] ?? false) : Exit.failCause(exit.cause))
  )
}

/**
 * The most settles one write or claim carries; the writer writes the rest in further batches. A
 * consumer of a large concurrency may settle tens of thousands of jobs at once, and one batch of
 * them was one Redis script call with five arguments per settle: past the arguments a JavaScript
 * call holds, a defect ("Maximum call stack size exceeded") for every settle of the batch.
 */
export const MAX_BATCH = 1000

/**
 * `write` writes a batch in one round trip, saying for each what was written (`Settled`). `close` marks
 * the store closed (see `Closing.close`): called before the queued settles fail at the scope's
 * close, which comes before the store's own closed flag (finalizers run in reverse). Failed while
 * the store still said it was open, a consumer retried its settle on its clock, a TestClock's in a
 * test, and its close waited for ever.
 */
export const make = <A>(
  write: (batch: ReadonlyArray<A>) => Effect.Effect<ReadonlyArray<Settled>, unknown>,
  scope: Scope.Scope,
  close: () => void = () => {}
): Settles<A> => {
  let pending: Array<Pending<A>> = []
  let writing = false
  let batch: Array<Pending<A>> = []
  /** Claims in flight, and the end of the next one to end. */
  let claims = 0
  let claimEnded = Deferred.makeUnsafe<void>()
  /** The store's scope closed: a writer forked in it would never start, and its settles never end. */
  let closed = false
  const closedError = () => new Error("the store closed before this settle was written")
  /** The writer, started outside the scope (see `add`): interrupted with the store. */
  let detached: Fiber.Fiber<void> | undefined
  Effect.runSync(Scope.addFinalizer(
    scope,
    Effect.suspend(() => {
      close()
      // before the writer's interruption ends: a claim ending meanwhile fails the settles it left
      // (`carriedEnd`), and wakes no writer that nothing would interrupt
      closed = true
      return detached === undefined ? Effect.void : Fiber.interrupt(detached)
    }).pipe(Effect.andThen(Effect.sync(() => {
      // a writer interrupted before it started ran no `onExit`: its settles end here
      settle([...batch, ...pending], Exit.fail(closedError()))
      batch = []
      pending = []
    })))
  ))

  const writer: Effect.Effect<void> = Effect.gen(function*() {
    while (pending.length > 0) {
      // once, not until no claim is in flight: claims that never take these (another queue's, on
      // Redis) may follow each other without end
      if (claims > 0) {
        yield* Deferred.await(claimEnded)
        yield* Effect.yieldNow
      }
      if (pending.length === 0) break
      batch = pending.splice(0, MAX_BATCH)
      const exit = yield* Effect.exit(write(batch.map((entry) => entry.item)))
      settle(batch, exit)
      batch = []
    }
  }).pipe(Effect.onExit((exit) =>
    Effect.sync(() => {
      writing = false
      // the store's scope closed under it: these settles end as interrupted (they were not written)
      if (Exit.isFailure(exit)) {
        settle([...batch, ...pending], Exit.failCause(exit.cause))
        batch = []
        pending = []
      }
    })
  ))

  /** Starts the writer unless it runs. */
  const wake = () => {
    if (!writing) {
      writing = true
      // started on the next tick: a claim made in this one can carry it. Outside the store's
      // scope, interrupted by the store's own finalizer (`detached`). Forked into the scope: a
      // scope is marked closed when its close starts, before its finalizers run (effect then
      // forks an unstarted, interrupted fiber in it, whose `onExit` never runs), and a consumer
      // made in the store's own scope settles while its finalizer drains it, before the
      // store's: those settles waited forever for a writer that never started. And a writer
      // forked into the scope before its close was interrupted first in it (its fork's
      // finalizer, added after the consumer's): a settle in flight then was dropped, its
      // finished job left to the reaper to run again
      Effect.runFork(Effect.map(Effect.forkDetach(writer), (fiber) => {
        detached = fiber
        fiber.addObserver(() => {
          if (detached === fiber) detached = undefined
        })
      }))
    }
  }

  /** A claim's carried settles that it wrote end with what it said; those it left go to the writer. */
  const carriedEnd = (carried: ReadonlyArray<Pending<A>>, exit: Exit.Exit<ReadonlyArray<Settled | undefined>, unknown>) => {
    if (Exit.isFailure(exit) || !exit.value.includes(undefined)) return settle(carried, exit as Exit.Exit<ReadonlyArray<Settled>, unknown>)
    // a claim that said nothing of one did not write it (as `settle` reads it): false
    const said = carried.map((_, i) => i < exit.value.length ? exit.value[i] : false)
    const left = carried.filter((_, i) => said[i] === undefined)
    settle(carried.filter((_, i) => said[i] !== undefined), Exit.succeed(said.filter((written) => written !== undefined)))
    if (left.length === 0) return
    if (closed) return settle(left, Exit.fail(closedError()))
    pending.unshift(...left.map((entry) => ({ ...entry, alone: true })))
    wake()
  }

  return {
    add: (item) =>
      Effect.suspend(() => {
        if (closed) return Effect.fail(closedError())
        const done = Deferred.makeUnsafe<Settled, unknown>()
        pending.push({ item, done })
        wake()
        return Deferred.await(done)
      }),
    carry: (which, claim) =>
      Effect.suspend(() => {
        const carried: Array<Pending<A>> = []
        const left: Array<Pending<A>> = []
        for (const entry of pending) (carried.length < MAX_BATCH && entry.alone !== true && which(entry.item) ? carried : left).push(entry)
        if (carried.length > 0) pending = left
        claims++
        let counted = true
        const ended = () => {
          if (!counted) return
          counted = false
          claims--
          Deferred.doneUnsafe(claimEnded, Exit.void)
          claimEnded = Deferred.makeUnsafe<void>()
        }
        return claim(carried.map((entry) => entry.item), ended).pipe(
          Effect.onExit((exit) =>
            Effect.sync(() => {
              ended()
              carriedEnd(carried, Exit.map(exit, ([, written]) => written))
            })
          ),
          Effect.map(([result]) => result)
        )
      })
  }
}
