import { type HeapItem, IndexedHeap } from "./indexedHeap.ts"

/**
 * What the queue needs of an entry. `score` orders entries (higher first), `seq` breaks ties
 * (lower first, so FIFO within a score). With aging the scheduler sets
 * `score = priority × agingMillis - enqueuedAt` (in milliseconds, exact at boundaries: see
 * `Job.score`): a waiting job gains one priority level per `agingMillis`, and since every queued
 * job ages at the same rate the order between two jobs never changes while they wait. So aging
 * needs no re-sorting and every operation stays O(log lanes).
 *
 * @internal
 */
export interface QueueEntry {
  readonly priority: number
  readonly seq: number
  readonly score: number
  /** When it was submitted, or came back to the queue (a retry, a hold's end), for `oldest`. */
  readonly time: number
  /** Owned by the caller: false once the entry is taken out (set before calling `remove`). */
  readonly inQueue: boolean
}

/**
 * All entries of one priority, in FIFO order. Within a lane a later entry never outranks an earlier
 * one, so the lane's head is its best entry and the lanes' heap only has to compare heads.
 * Removed entries are left in place (their `inQueue` is false) and skipped or swept later.
 */
class Lane<T extends QueueEntry> implements HeapItem {
  heapIndex = -1
  items: Array<T | undefined> = []
  head = 0
  live = 0
  dead = 0
  /** Set again when the lane is reused for another priority (see `spare`). */
  priority: number
  constructor(priority: number) {
    this.priority = priority
  }

  first(): T {
    return this.items[this.head]!
  }

  /** Drops the head and any removed entries behind it. */
  advance(): void {
    const items = this.items
    items[this.head++] = undefined
    while (this.head < items.length && !items[this.head]!.inQueue) {
      items[this.head++] = undefined
      this.dead--
    }
    if (this.head >= 1024 && this.head * 2 >= items.length) {
      items.splice(0, this.head)
      this.head = 0
    }
  }

  sweep(): void {
    const kept: Array<T | undefined> = []
    for (let i = this.head; i < this.items.length; i++) {
      const entry = this.items[i]!
      if (entry.inQueue) kept.push(entry)
    }
    this.items = kept
    this.head = 0
    this.dead = 0
  }
}

/**
 * The lane last emptied, by any queue, kept for the next lane any queue makes. A queue makes a lane
 * when a priority comes to it and drops it once empty: an empty queue at every push (its pop drops
 * it), and all of a pool's lanes die with the pool. Kept, one lane spares those allocations, and
 * keeps the lanes' hidden class alive from one pool to the next: V8 drops a class once no object
 * has it, clears the inline caches that name it, and the scheduler's `pump` (which inlines `pop`)
 * was deoptimized and compiled again in every new pool (`--trace-deopt`: 8 deopts of `pump` in 8
 * pools, 2 with the lane kept).
 */
let spare: Lane<QueueEntry> | undefined

const laneFor = <T extends QueueEntry>(priority: number): Lane<T> => {
  const lane = spare as Lane<T> | undefined
  if (lane === undefined) return new Lane<T>(priority)
  spare = undefined
  lane.priority = priority
  return lane
}

/** Keeps an emptied lane (every entry taken, so `head` is at its end) as the `spare`. */
const recycle = (lane: Lane<QueueEntry>): void => {
  lane.items.length = 0
  lane.head = 0
  lane.dead = 0
  spare = lane
}

/**
 * Whether entry `x` comes before entry `y`: a higher score, or the same score and came to the queue
 * first (`time`: its submission, or its return after a retry's delay), then submitted first. By
 * `time`, not by submission alone: a retry back in the queue is as if just submitted, and the aging
 * rule (`Options.aging`) lets the one that came first go first at a tie.
 */
export const outranks = (x: QueueEntry, y: QueueEntry): boolean =>
  x.score > y.score || (x.score === y.score && (x.time < y.time || (x.time === y.time && x.seq < y.seq)))

const laneBefore = <T extends QueueEntry>(a: Lane<T>, b: Lane<T>): boolean => outranks(a.first(), b.first())

/**
 * A priority queue: highest score first, FIFO within a score. push and pop cost O(1) when the
 * entry's lane already exists and O(log lanes) otherwise; remove costs O(log lanes) amortised.
 *
 * @internal
 */
export class PriorityQueue<T extends QueueEntry> {
  private readonly lanes = new Map<number, Lane<T>>()
  private readonly heap = new IndexedHeap<Lane<T>>(laneBefore)
  size = 0

  push(entry: T): void {
    let lane = this.lanes.get(entry.priority)
    if (lane === undefined) {
      lane = laneFor<T>(entry.priority)
      this.lanes.set(entry.priority, lane)
    }
    lane.items.push(entry)
    this.size++
    if (++lane.live === 1) this.heap.push(lane)
  }

  /**
   * Pushes an entry that may outrank entries already in its lane: placed before every entry at the
   * lane's tail that it outranks, so that the lane's head stays its best entry. For a job admitted
   * after waiting for room (overflow "suspend"): its age counts from its submission, and a retried
   * job of its priority that went back to the queue meanwhile is younger.
   *
   * A lane is in order of score, highest first, removed entries included (they keep their place
   * and their score; `insert` and `putBack` place an entry by score among them too): the entries of
   * a lower score are found by a binary search, and only those of its own score are walked past.
   * O(log entries), where a walk from the tail made admitting n waiters past n younger retries
   * quadratic; O(1) when it outranks none (as `push`).
   */
  insert(entry: T): void {
    const lane = this.lanes.get(entry.priority)
    if (lane === undefined) return this.push(entry)
    const items = lane.items
    const score = entry.score
    let i = items.length
    if (i > lane.head && items[i - 1]!.score < score) {
      // the first entry of a lower score: every one from there on is
      let low = lane.head
      let high = i - 1
      while (low < high) {
        const middle = (low + high) >>> 1
        if (items[middle]!.score < score) high = middle
        else low = middle + 1
      }
      i = low
    }
    // its own score: before the removed ones, and the live ones it outranks (submitted after it)
    while (i > lane.head) {
      const before = items[i - 1]!
      if (before.score !== score || (before.inQueue && !outranks(entry, before))) break
      i--
    }
    this.placeAt(lane, i, entry)
  }

  peek(): T | undefined {
    return this.heap.peek()?.first()
  }

  pop(): T | undefined {
    const lane = this.heap.peek()
    if (lane === undefined) return undefined
    const entry = lane.first()
    this.take(lane, entry)
    return entry
  }

  /**
   * Puts back an entry taken out with `pop` (an offer taken back: see scheduler.ts), in its place:
   * before every entry of its lane it outranks, so that the lane's head stays its best entry.
   * O(entries ahead of it): it was at the head when it was taken out.
   */
  putBack(entry: T): void {
    const lane = this.lanes.get(entry.priority)
    if (lane === undefined) return this.push(entry)
    const items = lane.items
    const score = entry.score
    let i = lane.head
    // before the first entry of a lower score (removed or not: the lane stays in order of score,
    // see `insert`), or of its score that it outranks
    while (i < items.length) {
      const after = items[i]!
      const afterScore = after.score
      if (afterScore < score || (afterScore === score && after.inQueue && outranks(entry, after))) break
      i++
    }
    this.placeAt(lane, i, entry)
  }

  /** Removes an entry that is in the queue; the caller has already made its `inQueue` false. */
  remove(entry: T): void {
    const lane = this.lanes.get(entry.priority)!
    if (lane.first() === entry) return this.take(lane, entry)
    this.size--
    lane.live--
    if (++lane.dead > 64 && lane.dead > lane.live) lane.sweep()
  }

  /**
   * The entry that has waited longest (lowest `time`, then `seq`) of the lanes' heads, scanning one
   * head per distinct priority: a lane's head is its longest-waiting entry but for one admitted
   * after waiting for room without aging, which keeps its submission's time behind younger ones.
   */
  oldest(): T | undefined {
    let oldest: T | undefined
    for (const lane of this.heap.items) {
      const head = lane.first()
      if (oldest === undefined || waitedLonger(head, oldest)) oldest = head
    }
    return oldest
  }

  /** Every queued entry, lane by lane (FIFO within a lane). */
  *entries(): Generator<T> {
    for (const lane of this.lanes.values()) {
      for (let i = lane.head; i < lane.items.length; i++) {
        const entry = lane.items[i]!
        if (entry.inQueue) yield entry
      }
    }
  }

  /** Queued jobs of one priority. */
  countOf(priority: number): number {
    return this.lanes.get(priority)?.live ?? 0
  }

  /** Live entries per priority, highest priority first. */
  countByPriority(): Array<{ readonly priority: number; readonly count: number }> {
    const counts: Array<{ priority: number; count: number }> = []
    for (const lane of this.lanes.values()) counts.push({ priority: lane.priority, count: lane.live })
    return counts.sort((a, b) => b.priority - a.priority)
  }

  /** Puts `entry` at index `i` of `lane` (a lane that has live entries: it is in the heap). */
  private placeAt(lane: Lane<T>, i: number, entry: T): void {
    const items = lane.items
    if (i === items.length) items.push(entry)
    else if (i === lane.head && lane.head > 0) items[--lane.head] = entry
    else items.splice(i, 0, entry)
    this.size++
    lane.live++
    this.heap.update(lane)
  }

  private take(lane: Lane<T>, _entry: T): void {
    this.size--
    lane.advance()
    if (--lane.live === 0) {
      this.heap.remove(lane)
      this.lanes.delete(lane.priority)
      recycle(lane as unknown as Lane<QueueEntry>)
    } else {
      this.heap.update(lane)
    }
  }
}

/** `a` has waited in the queue longer than `b` (ties: the one submitted first). */
export const waitedLonger = (a: QueueEntry, b: QueueEntry): boolean => a.time < b.time || (a.time === b.time && a.seq < b.seq)
