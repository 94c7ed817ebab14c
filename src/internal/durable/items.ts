/**
 * Reading `JobQueue.enqueueAll`'s items: any iterable, from any caller (JavaScript, a cast). It is
 * read by hand, not by `Array.from`, so that a call can stop at a bound, give way between chunks and
 * stop on an interruption, closing the iterator as `for...of` closes it, and so that whatever the
 * iterable throws is `InvalidJobOptions` naming `items` instead of a defect.
 *
 * @internal
 */
import { Effect, Stream } from "effect"
import * as config from "../config.ts"

/**
 * The most items one call takes. An endless iterable was read until the process ran out of memory;
 * past this the call fails instead, having read one item more. A call is one transaction (one
 * script per queue on Redis, during which the server runs nothing else: 10,000 jobs held it for
 * 0.3-0.5 s), so a batch past this is better split anyway.
 */
export const MAX_ITEMS = 100_000

/** The items read (each checked and encoded) between two yields: other fibers run, an interruption lands. */
export const CHUNK = 1_000

/** What `Items.next` gives once the iterator is done. */
export const END: unique symbol = Symbol("items end")

const TOO_MANY = `expected at most ${MAX_ITEMS.toLocaleString("en-US")} items in one call (split the batch)`
const EXPECTED = "expected an iterable of { payload, options? }"

/** Why `items` is not what `enqueueAll` takes, for the things one passes by mistake. */
const mistaken = (items: unknown): string | undefined => {
  if (typeof items === "string") return `${EXPECTED}, not a string`
  if (typeof items !== "object" || items === null) return typeof (items as any)?.[Symbol.iterator] === "function" ? undefined : EXPECTED
  // an Effect is iterable (for yield*): of itself
  if (Effect.isEffect(items)) return `${EXPECTED}, not an Effect (yield* it for its items first)`
  if (Stream.isStream(items)) return `${EXPECTED}, not a Stream (collect it first, or enqueue its chunks)`
  if (typeof (items as any)[Symbol.iterator] === "function") return undefined
  if (typeof (items as any).then === "function") return `${EXPECTED}, not a Promise (await it first)`
  if (typeof (items as any)[Symbol.asyncIterator] === "function") {
    return `${EXPECTED}, not an async iterable (collect it first, or enqueue its chunks as they come)`
  }
  return EXPECTED
}

/**
 * The items of one call, read one at a time. Each step may throw an `OptionError` naming `items`:
 * the iterable is not one, its iterator threw or gave something that is not an iterator result, or
 * it has more than `MAX_ITEMS`.
 */
export class Items {
  /** How many items were read. */
  read = 0
  /** Whether the iterator is done with: it ended, threw, or was closed. */
  done = false
  private readonly items: unknown
  private readonly iterator: Iterator<unknown>
  private readonly step: () => unknown

  constructor(items: unknown) {
    this.items = items
    let iterator: unknown
    let step: unknown
    config.reading("items", items, () => {
      const why = mistaken(items)
      if (why !== undefined) config.fail("items", items, why)
      // an array is told from its length: new Array(2 ** 32 - 1) is 4 billion holes to read
      if (Array.isArray(items) && items.length > MAX_ITEMS) config.fail("items", items, `${TOO_MANY}; it has ${items.length}`)
      iterator = (items as Iterable<unknown>)[Symbol.iterator]()
      if (typeof iterator !== "object" || iterator === null) {
        config.fail("items", items, `${EXPECTED}: its [Symbol.iterator]() gave ${config.show(iterator)}, not an iterator`)
      }
      // read once, as for...of reads it
      step = (iterator as Iterator<unknown>).next
      if (typeof step !== "function") config.fail("items", items, `${EXPECTED}: its iterator has no next method`)
    })
    this.iterator = iterator as Iterator<unknown>
    this.step = step as () => unknown
  }

  /** The next item, or `END`. */
  next(): unknown {
    if (this.done) return END
    const at = `items[${this.read}]`
    let value: unknown
    try {
      const result = this.step.call(this.iterator)
      if (typeof result !== "object" || result === null) {
        this.done = true
        config.fail("items", this.items, `its iterator gave ${config.show(result)} for ${at}, not an iterator result`)
      }
      if ((result as IteratorResult<unknown>).done) {
        this.done = true
        return END
      }
      value = (result as IteratorResult<unknown>).value
    } catch (error) {
      this.done = true // an iterator that threw is not closed (for...of does not close it either)
      if (config.isOptionError(error)) throw error
      config.fail("items", this.items, `its iterator threw at ${at}: ${config.thrown(error)}`)
    }
    if (this.read === MAX_ITEMS) {
      this.close()
      config.fail("items", this.items, TOO_MANY)
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
}
