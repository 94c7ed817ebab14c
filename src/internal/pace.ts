/**
 * How a thread measures its pace (see protocol.PACE): a moving average of the shorter of each two
 * tasks in a row, so that a thread the machine did not schedule for a while during one short task (a
 * loaded machine does that for milliseconds) does not count as running long tasks. It follows a
 * fall faster than a rise (over about 2 tasks, not 8): a thread's first tasks run code not yet
 * compiled, and take far longer than the same tasks soon after. (A rise to tasks of 128 ms or more
 * still cuts the thread's offers to the least at the second of them: an eighth of one is more than
 * the window, threads.ts `WINDOW`.)
 *
 * Its own module, loaded by threads, so that the arithmetic is tested on its own: a thread's real
 * task times depend on how busy the machine is.
 *
 * @internal
 */
export class PaceMeter {
  /** The moving average, in µs; 0 before the first task. */
  private pace = 0
  /** The time of the task before, in µs. */
  private last = 0

  /** Counts a task that took `took` µs; returns the pace to publish: whole µs, at least 1. */
  add(took: number): number {
    const sample = this.last === 0 ? took : Math.min(took, this.last)
    this.last = took
    const pace = this.pace
    this.pace = pace === 0 ? sample : pace + (sample - pace) / (sample < pace ? 2 : 8)
    return Math.max(1, Math.min(Math.round(this.pace), 0x7fffffff))
  }
}
