/**
 * A job's progress: the latest value it reported and the readers waiting for the next one. Made
 * when a job first reports or is first watched, so a job that does neither costs nothing.
 *
 * Readers are coalescing, like a pool's `changes`: a job reporting in a hot loop sets a field; a
 * reader sees the value that is latest when it reads, never a backlog.
 *
 * @internal
 */
import { Effect, Option, Stream } from "effect"

export class Progress {
  value: unknown = undefined
  /** Bumped on every report; 0 while nothing was reported. */
  version = 0
  ended = false
  private waiters: Array<() => void> = []

  report(value: unknown): void {
    if (this.ended) return
    this.value = value
    this.version++
    this.wake()
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
