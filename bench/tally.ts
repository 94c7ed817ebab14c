/**
 * The checksums every contestant's run is checked with. This file imports nothing, so that a child
 * process whose contestant does not use Effect never loads it (child.ts and the thread scenarios
 * import from here).
 */

/** A cheap integer hash, so that a job's result depends on which job it was. */
export const work = (i: number): number => Math.imul(i ^ 0x5bd1e995, 0x27d4eb2d) >>> 0

/**
 * The checksum. Every job calls `job(i)` exactly once: it counts the run of job `i` and returns
 * `work(i)`. `verify` then checks that each job ran once (none lost, none duplicated) and that the
 * results the contestant handed back add up to the expected sum (no result lost or mixed up).
 * Given the jobs' priorities it also keeps the start order and checks it: non-increasing priority,
 * FIFO (increasing job number) within a priority.
 */
export class Tally {
  readonly n: number
  readonly ran: Uint8Array
  readonly priorities: ArrayLike<number> | undefined
  readonly order: Int32Array | undefined
  private started = 0
  constructor(n: number, priorities?: ArrayLike<number>) {
    this.n = n
    this.ran = new Uint8Array(n)
    this.priorities = priorities
    this.order = priorities === undefined ? undefined : new Int32Array(n)
  }

  readonly job = (i: number): number => {
    this.ran[i]!++
    if (this.order !== undefined) this.order[this.started] = i
    this.started++
    return work(i)
  }

  verify(observed: number): { ok: boolean; why?: string } {
    if (this.started !== this.n) return { ok: false, why: `${this.started} job runs for ${this.n} jobs` }
    let expected = 0
    for (let i = 0; i < this.n; i++) {
      if (this.ran[i] !== 1) return { ok: false, why: `job ${i} ran ${this.ran[i]} times` }
      expected += work(i)
    }
    if (observed !== expected) return { ok: false, why: `result sum ${observed}, expected ${expected}` }
    const { order, priorities } = this
    if (order !== undefined && priorities !== undefined) {
      for (let k = 1; k < this.n; k++) {
        const a = order[k - 1]!
        const b = order[k]!
        const pa = priorities[a]!
        const pb = priorities[b]!
        if (pb > pa || (pb === pa && b < a)) {
          return { ok: false, why: `start ${k}: job ${b} (priority ${pb}) after job ${a} (priority ${pa})` }
        }
      }
    }
    return { ok: true }
  }
}

/**
 * The checksum of the thread scenarios, where a job runs on another thread and cannot count itself
 * in this thread's `Tally`. The contestant calls `done(i, result)` on the main thread for each
 * result it gets back: that counts job `i` (each must come back exactly once) and keeps its
 * result, which `verify` checks against `expected(i)` one by one (a result handed to the wrong job
 * is caught too), and the observed sum against the sum of the expected results.
 */
export class ResultTally extends Tally {
  readonly results: Float64Array
  readonly expected: (i: number) => number
  constructor(n: number, expected: (i: number) => number) {
    super(n)
    this.results = new Float64Array(n)
    this.expected = expected
  }

  readonly done = (i: number, result: number): number => {
    this.job(i)
    this.results[i] = result
    return result
  }

  override verify(observed: number): { ok: boolean; why?: string } {
    let sum = 0
    for (let i = 0; i < this.n; i++) {
      if (this.ran[i] !== 1) return { ok: false, why: `job ${i} came back ${this.ran[i]} times` }
      const expected = this.expected(i)
      if (this.results[i] !== expected) return { ok: false, why: `job ${i} returned ${this.results[i]}, expected ${expected}` }
      sum += expected
    }
    if (observed !== sum) return { ok: false, why: `result sum ${observed}, expected ${sum}` }
    return { ok: true }
  }
}
