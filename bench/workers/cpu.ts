/**
 * The work every thread contestant runs, the same function for all of them (and for the main
 * thread alone in scenario 5), imported by each library's worker file.
 *
 * `cpu(i)`: about half a millisecond of CPU (on the bench machine: 290,000 steps of xorshift32,
 * ~1.7 ns each), seeded by the job number. xorshift is linear over bits, so the end value has a
 * closed form: `expectedCpu(i)` applies the 290,000-step map as one 32×32 bit matrix, which lets
 * the checksum check every result without running the loop again.
 *
 * Why xorshift: it is only 32-bit integer operations, so V8 compiles it the same way at every tier.
 * A multiply-add chain (an LCG) was measured here at 0.5 ms, then 1–3 ms per job for hundreds of
 * jobs while V8 moved between tiers (on-stack replacement, then a deoptimization, then Maglev code
 * inlined into the caller), then 0.2–0.5 ms: the cost of a job depended on how many jobs its thread
 * had run, which made threads look slower than the main thread. xorshift32 costs the same from the
 * second call on.
 *
 * `noop(i)`: scenario 6's task, returns its job number.
 *
 * `probe()`: busy for 5 ms, then returns the thread's id. Setup sends probes two at a time until
 * both threads have answered, so that every thread has started and loaded its worker file before
 * the timed part (libraries start threads lazily or in the background).
 */
import { threadId } from "node:worker_threads"

export const STEPS = 290_000

/** The seed of job `i`: spread out and odd (never 0, which xorshift keeps at 0). */
const seed = (i: number): number => Math.imul(i ^ 0x5bd1e995, 0x27d4eb2d) | 1

export const cpu = (i: number): number => {
  let x = seed(i)
  for (let k = 0; k < STEPS; k++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
  }
  return x >>> 0
}

/** A linear map on 32 bits, as the images of the 32 unit vectors. */
type BitMatrix = ReadonlyArray<number>

const apply = (m: BitMatrix, x: number): number => {
  let y = 0
  for (let j = 0; j < 32; j++) if ((x >>> j) & 1) y ^= m[j]!
  return y
}

/** `a ∘ b`: first b, then a. */
const compose = (a: BitMatrix, b: BitMatrix): BitMatrix => b.map((column) => apply(a, column))

/** xorshift32's step to the power STEPS, by squaring. */
const stepPower: BitMatrix = (() => {
  const step = (x: number) => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return x
  }
  let result: BitMatrix = Array.from({ length: 32 }, (_, j) => (1 << j) | 0)
  let square: BitMatrix = Array.from({ length: 32 }, (_, j) => step(1 << j))
  for (let n = STEPS; n > 0; n >>>= 1) {
    if (n & 1) result = compose(square, result)
    square = compose(square, square)
  }
  return result
})()

export const expectedCpu = (i: number): number => apply(stepPower, seed(i)) >>> 0

export const noop = (i: number): number => i

/**
 * Scenario 9's task: `cells[0]` counts the tasks that have come in, `cells[1]` is how many must be
 * in at once. Each waits (blocking its thread) until all are in, then returns its thread's id: so
 * `cells[1]` tasks sent at once to a pool of as many threads finish only once every thread is
 * running one of them.
 */
export const barrier = (cells: Int32Array): number => {
  Atomics.add(cells, 0, 1)
  Atomics.notify(cells, 0)
  const until = performance.now() + 60_000
  for (let seen = Atomics.load(cells, 0); seen < cells[1]!; seen = Atomics.load(cells, 0)) {
    if (performance.now() > until) throw new Error(`barrier: ${seen} of ${cells[1]} tasks in after 60 s`)
    Atomics.wait(cells, 0, seen, 1_000)
  }
  return threadId
}

export const probe = (): number => {
  const until = performance.now() + 5
  while (performance.now() < until) {
    // busy: keeps this thread taken, so the next probe goes to another one
  }
  return threadId
}
