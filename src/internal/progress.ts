/**
 * A job's progress: the latest value it reported and the readers waiting for the next one. Made
 * when a job first reports or is first watched, so a job that does neither costs nothing.
 *
 * Readers are coalescing, like a pool's `changes`: a job reporting in a hot loop sets a field; a
 * reader sees the value that is latest when it reads, never a backlog.
 *
 * @internal
 */
import { Effect, type Exit, Option, Stream } from "effect"

/** What `onFirstReport` needs of a job: a pool's handle is its job record. */
interface Watched {
  progressState: Progress | undefined
  readonly state: number
}

export class Progress {
  value: unknown = undefined
  /** Bumped on every report; 0 while nothing was reported. */
  version = 0
  ended = false
  private waiters: Array<() => void> = []
  /** Called once, at the first report: see `onFirstReport`. */
  private first: (() => void) | undefined = undefined

  report(value: unknown): void {
    if (this.ended) return
    this.value = value
    this.version++
    this.wake()
    if (this.first !== undefined) {
      const first = this.first
      this.first = undefined
      first()
    }
  }

  /** The job ended: readers stop after the last value. */
  end(): void {
    if (this.ended) return
    this.ended = true
    this.wake()
  }

  private wake(): void {
    if (this.waiters.length === 0) return
    const waiters = this.waiters
    this.waiters = []
    for (const waiter of waiters) waiter()
  }

  latest(): Option.Option<unknown> {
    return this.version === 0 ? Option.none() : Option.some(this.value)
  }

  /** Waits for a report after `seen`, or for the end. */
  private next(seen: number): Effect.Effect<void> {
    return Effect.callback<void>((resume) => {
      if (this.version !== seen || this.ended) return resume(Effect.void)
      const waiter = () => resume(Effect.void)
      this.waiters.push(waiter)
      return Effect.sync(() => {
        const index = this.waiters.indexOf(waiter)
        if (index >= 0) this.waiters.splice(index, 1)
      })
    })
  }

  /** The latest value (if any), then every newer one, coalesced; ends when the job has ended. */
  changes(): Stream.Stream<unknown> {
    return Stream.paginate(0, (seen: number) =>
      // woken by a report, it lets the job go on before it reads: a job reporting in a loop is
      // read at its latest value
      Effect.map(Effect.andThen(this.next(seen), Effect.yieldNow), () => {
        const version = this.version
        const emit = version === seen ? [] : [this.value]
        return [emit, this.ended ? Option.none<number>() : Option.some(version)] as const
      }))
  }
}

/**
 * The Exit of the job behind `handle` if it has ended without ever reporting progress (`done` is
 * the scheduler's first ended state), else undefined: a job that ran to its end as it started
 * (an `Effect.sync`, an Exit) has nothing left to watch.
 */
export const endedSilently = (handle: unknown, done: number): Exit.Exit<unknown, unknown> | undefined => {
  const job = handle as Watched & { readonly result: unknown }
  return job.state >= done && (job.progressState === undefined || job.progressState.version === 0)
    ? job.result as Exit.Exit<unknown, unknown>
    : undefined
}

/**
 * Calls `f` once, when the job behind `handle` (a pool's `JobHandle` is its job record) first
 * reports progress, or at once if it already has: a watcher that starts its stream only then costs
 * a job that never reports no fiber and no stream (a durable consumer watches every job it runs).
 * `done` is the scheduler's first ended state.
 */
export const onFirstReport = (handle: unknown, done: number, f: () => void): void => {
  const job = handle as Watched
  let progress = job.progressState
  if (progress === undefined) {
    progress = job.progressState = new Progress()
    // as the job's own watchProgress does: an ended job's readers stop at once
    if (job.state >= done) progress.end()
  }
  if (progress.version > 0) f()
  else if (!progress.ended) progress["first"] = f
}
