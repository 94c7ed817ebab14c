/**
 * Reading a batch a caller gives as any iterable, from any caller (JavaScript, a cast):
 * `JobQueue.enqueueAll`'s items, `WorkPool.runAll`'s jobs and `ThreadPool.runAll`'s payloads. It is
 * read by hand, not by `Array.from`, so that a call can stop at a bound, give way between chunks and
 * stop on an interruption, closing the iterator as `for...of` closes it, and so that whatever the
 * iterable throws is an `OptionError` naming the batch (the caller's typed error) instead of a defect.
 *
 * @internal
 */
import { Effect, Exit, Stream } from "effect"
import * as config from "./config.ts"

/** What a caller calls its batch, what it holds, how many it takes, and what to use instead of a lazy source. */
export interface Batch {
  /** The field errors name, and what the batch counts: `items`, `jobs`, `payloads`; an item is `jobs[3]`. */
  readonly field: string
  /** What the batch holds, in `expected an iterable of ...`: `jobs`, `{ payload, options? }`. */
  readonly of: string
  /** The most items one call takes. */
  readonly max: number
  /** What to do with more than `max`, said in the error. */
  readonly more: string
  /** What to do with a `Stream` or an async iterable instead, said in the error. */
  readonly lazy: string
  /** What to do with an `Effect` instead, said in the error. */
  readonly effect: string
}

/**
 * The most items one `enqueueAll` takes. An endless iterable was read until the process ran out of
 * memory; past this the call fails instead, having read one item more. A call is one transaction
 * (one script per queue on Redis, during which the server runs nothing else: 10,000 jobs held it
 * for 0.3-0.5 s), so a batch past this is better split anyway.
 */
export const MAX_ITEMS = 100_000

/**
 * The most jobs (or payloads) one `runAll` takes. `runAll` holds every job and every result of its
 * batch until it returns, where `mapStream` holds only its `buffer`: an endless iterable was read
 * until the process ran out of memory. A million `Effect.succeed` take some 80 MB read from a
 * generator (0.5 s), and a million jobs ran in 1.2 s; a batch past this is a stream.
 */
export const MAX_JOBS = 1_000_000

/** The items read between two yields: other fibers run, an interruption lands. */
export const CHUNK = 1_000

/** What `Items.next` gives once the iterator is done. */
export const END: unique symbol = Symbol("items end")

const expected = (batch: Batch): string => `expected an iterable of ${batch.of}`

const tooMany = (batch: Batch): string => `expected at most ${batch.max.toLocaleString("en-US")} ${batch.field} in one call (${batch.more})`

/** Why `items` is not a batch, for the things one passes by mistake. */
const mistaken = (items: unknown, batch: Batch): string | undefined => {
  const EXPECTED = expected(batch)
  if (typeof items === "string") return `${EXPECTED}, not a string`
  if (typeof items !== "object" || items === null) return typeof (items as any)?.[Symbol.iterator] === "function" ? undefined : EXPECTED
  // an Effect is iterable (for yield*): of itself
  if (Effect.isEffect(items)) return `${EXPECTED}, not an Effect (${batch.effect})`
  if (Stream.isStream(items)) return `${EXPECTED}, not a Stream (${batch.lazy})`
  if (typeof (items as any)[Symbol.iterator] === "function") return undefined
  if (typeof (items as any).then === "function") return `${EXPECTED}, not a Promise (await it first)`
  if (typeof (items as any)[Symbol.asyncIterator] === "function") return `${EXPECTED}, not an async iterable (${batch.lazy})`
  return EXPECTED
}

/**
 * Whether an iterator has a `return`. for...of asks only to close it, so what asking throws refuses
 * nothing: it may have one, and is read as if it had (`close` asks again, dropping what it throws).
 */
const closable = (iterator: Iterator<unknown>): boolean => {
  try {
    return typeof iterator.return === "function"
  } catch {
    return true
  }
}

/**
 * The items of one call, read one at a time. Each step may throw an `OptionError` naming the batch:
 * it is not an iterable, its iterator threw or gave something that is not an iterator result, or it
 * has more than `batch.max` items.
 */
export class Items {
  /** How many items were read. */
  read = 0
  /** Whether the iterator is done with: it ended, threw, or was closed. */
  done = false
  /** Whether the iterator has a `return` to close it with (a generator; not a `Set`'s or a `Map`'s). */
  readonly closable: boolean
  private readonly items: unknown
  private readonly batch: Batch
  private readonly iterator: Iterator<unknown>
  private readonly step: () => unknown

  constructor(items: unknown, batch: Batch) {
    this.items = items
    this.batch = batch
    let iterator: unknown
    let step: unknown
    config.reading(batch.field, items, () => {
      const why = mistaken(items, batch)
      if (why !== undefined) config.fail(batch.field, items, why)
      // an array is told from its length: new Array(2 ** 32 - 1) is 4 billion holes to read
      if (Array.isArray(items) && items.length > batch.max) config.fail(batch.field, items, `${tooMany(batch)}; it has ${items.length}`)
      iterator = (items as Iterable<unknown>)[Symbol.iterator]()
      if (typeof iterator !== "object" || iterator === null) {
        config.fail(batch.field, items, `${expected(batch)}: its [Symbol.iterator]() gave ${config.show(iterator)}, not an iterator`)
      }
      // read once, as for...of reads it
      step = (iterator as Iterator<unknown>).next
      if (typeof step !== "function") config.fail(batch.field, items, `${expected(batch)}: its iterator has no next method`)
    })
    this.closable = closable(iterator as Iterator<unknown>)
    this.iterator = iterator as Iterator<unknown>
    this.step = step as () => unknown
  }

  /** The next item, or `END`. */
  next(): unknown {
    if (this.done) return END
    let value: unknown
    try {
      const result = this.step.call(this.iterator)
      if (typeof result !== "object" || result === null) {
        this.done = true
        this.fail(`its iterator gave ${config.show(result)} for ${this.at()}, not an iterator result`)
      }
      if ((result as IteratorResult<unknown>).done) {
        this.done = true
        return END
      }
      value = (result as IteratorResult<unknown>).value
    } catch (error) {
      this.done = true // an iterator that threw is not closed (for...of does not close it either)
      if (config.isOptionError(error)) throw error
      this.fail(`its iterator threw at ${this.at()}: ${config.thrown(error)}`)
    }
    if (this.read === this.batch.max) {
      this.close()
      this.fail(tooMany(this.batch))
    }
    this.read++
    return value
  }

  /**
   * Closes the iterator (its `return`: a generator's `finally` runs) unless it is done with. What
   * `return` throws is dropped: the call is failing, or interrupted, for a reason of its own, which
   * is what it reports (for...of keeps the first error too).
   */
  close(): void {
    if (this.done) return
    this.done = true
    try {
      const close = this.iterator.return
      if (typeof close === "function") close.call(this.iterator)
    } catch {
      // see above
    }
  }

  /** The item being read, as errors name it; made only for an error (a string per item cost the read). */
  private at(): string {
    return `${this.batch.field}[${this.read}]`
  }

  private fail(reason: string): never {
    return config.fail(this.batch.field, this.items, reason)
  }
}

const ARRAY_ITERATOR = Array.prototype[Symbol.iterator]

/**
 * A whole batch, then `then` of it: each item is passed to `each` (with its index) as it is read,
 * which may refuse it by throwing an `OptionError`, and `refused` makes the caller's typed error of
 * an `OptionError`. An array (with the array's own iterator) is read at once, by index up to its
 * length at the call: its items are in memory already, and this is the hot path. Any other iterable
 * is read `CHUNK` at a time with a yield between, and its iterator is closed if the read stops before
 * its end (an item refused, too many, an interruption). A batch read in one go (an array, or up to
 * `CHUNK` items of an iterator that cannot be closed, as a `Set`'s) runs `then` at once: a small batch
 * pays for no Effect of its own. An iterator that can be closed (a generator) is read from its first
 * item under the guard that closes it: read here, an interruption landing as this returns (its fiber
 * yielding for its budget of operations) would leave it open. Either way the call takes at most
 * `batch.max` items.
 */
export const collect = <A, E, B, E2, R>(
  items: unknown,
  batch: Batch,
  each: (item: unknown, index: number) => A,
  refused: (error: config.OptionError) => E,
  then: (items: Array<A>) => Effect.Effect<B, E2, R>
): Effect.Effect<B, E | E2, R> => {
  let read: Array<A> | undefined
  let reader: Items | undefined
  try {
    read = readArray(items, batch, each)
    if (read === undefined) {
      reader = new Items(items, batch)
      if (reader.closable) return readRest(reader, [], each, refused, then, false)
      read = []
      readChunk(reader, read, each)
    }
  } catch (error) {
    reader?.close()
    if (config.isOptionError(error)) return Exit.fail(refused(error))
    throw error
  }
  return reader === undefined || reader.done ? then(read) : readRest(reader, read, each, refused, then, true)
}

/** An array's items, mapped by `each`; undefined if `items` is not an array read by its own iterator. */
const readArray = <A>(items: unknown, batch: Batch, each: (item: unknown, index: number) => A): Array<A> | undefined => {
  let i = -1
  try {
    // a revoked Proxy throws in isArray, an array Proxy's traps in the reads
    if (!Array.isArray(items) || items[Symbol.iterator] !== ARRAY_ITERATOR) return undefined
    // a Proxy's length may be anything: a real array's is at most 2 ** 32 - 1
    const length: unknown = items.length
    if (typeof length !== "number" || !Number.isInteger(length) || length < 0) {
      return config.fail(batch.field, items, `${expected(batch)}: its length is ${config.show(length)}`)
    }
    if (length > batch.max) config.fail(batch.field, items, `${tooMany(batch)}; it has ${length}`)
    const out = new Array<A>(length)
    for (i = 0; i < length; i++) out[i] = each(items[i], i)
    return out
  } catch (error) {
    if (config.isOptionError(error)) throw error
    const where = i < 0 ? "reading it" : `reading ${batch.field}[${i}]`
    return config.fail(batch.field, items, `${where} threw ${config.thrown(error)}`)
  }
}

/** Up to `CHUNK` more items into `out`, mapped by `each`. */
const readChunk = <A>(items: Items, out: Array<A>, each: (item: unknown, index: number) => A): void => {
  for (let n = 0; n < CHUNK; n++) {
    const item = items.next()
    if (item === END) return
    out.push(each(item, out.length))
  }
}

/**
 * The rest of an iterable's items (after its first chunk, read at once, if `yieldFirst`), a chunk after
 * each yield, then `then` of them; the iterator closed if the read stops early. The guard is one
 * `onExitPrimitive` (closing a reader that is done does nothing): a small generator's batch is read
 * under it in full.
 */
const readRest = <A, E, B, E2, R>(
  items: Items,
  out: Array<A>,
  each: (item: unknown, index: number) => A,
  refused: (error: config.OptionError) => E,
  then: (items: Array<A>) => Effect.Effect<B, E2, R>,
  yieldFirst: boolean
): Effect.Effect<B, E | E2, R> => {
  const loop = (): Effect.Effect<B, E | E2, R> => {
    try {
      readChunk(items, out, each)
    } catch (error) {
      items.close()
      if (config.isOptionError(error)) return Exit.fail(refused(error))
      throw error
    }
    return items.done ? then(out) : Effect.flatMap(Effect.yieldNow, loop)
  }
  return Effect.onExitPrimitive(yieldFirst ? Effect.flatMap(Effect.yieldNow, loop) : Effect.suspend(loop), () => {
    items.close()
    return undefined
  })
}
