/**
 * Validation of pool and job options. Every check names the field, shows the value and says what
 * was expected, so a bad option never turns into a hang or a silent default.
 *
 * @internal
 */
import { Duration, Effect, Option } from "effect"
import { StoreError } from "../DurableError.ts"
import { InvalidJobOptions, InvalidPoolConfig } from "../PoolError.ts"

export interface Invalid {
  readonly field: string
  readonly value: string
  readonly reason: string
}

/** How every error of a check shows the value it refused: briefly, and never by throwing. */
export const show = (value: unknown): string => {
  let text: string
  try {
    text = describe(value)
  } catch {
    // a Proxy or a getter that throws: the error must still be made
    text = `a value that cannot be read (${typeof value})`
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text
}

/**
 * Whether a function is a class (only a class's own source starts with `class`). Asked of every
 * function submitted as a job: one without an own `prototype` (an arrow function, a method, an async
 * function) is no class, and is answered without building its source text.
 */
export const isClass = (f: Function): boolean => {
  try {
    return Object.hasOwn(f, "prototype") && /^class\b/.test(Function.prototype.toString.call(f))
  } catch {
    return false // a Proxy of a function
  }
}

/** `nested`: an item of an array, whose own arrays are written as JSON (a cyclic one cannot loop). */
const describe = (value: unknown, nested = false): string => {
  if (typeof value === "string") return JSON.stringify(value)
  if (typeof value === "number" || typeof value === "boolean" || value === undefined || value === null) {
    return String(value)
  }
  if (typeof value === "bigint") return `${value}n`
  if (typeof value === "symbol") return value.toString()
  if (typeof value === "function") return `${isClass(value) ? "class" : "a function"} ${value.name || "(anonymous)"}`
  // JSON would show a Promise or a class instance as "{}", in an array too
  if (Array.isArray(value) && !nested) {
    const items = value.slice(0, 10).map((item) => describe(item, true))
    return `[${items.join(", ")}${value.length > 10 ? ", ..." : ""}]`
  }
  const name = Array.isArray(value) ? undefined : (value as object).constructor?.name
  // a generator's constructor has no name: its tag says "Generator"
  const kind = typeof name === "string" && name !== "" ? name : (value as { [Symbol.toStringTag]?: unknown })[Symbol.toStringTag]
  if (typeof kind === "string" && kind !== "" && kind !== "Object") return `${/^[aeio]/i.test(kind) ? "an" : "a"} ${kind}`
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    // cyclic, or a BigInt inside
    return Array.isArray(value) ? "an array" : "an object"
  }
}

export class OptionError {
  readonly invalid: Invalid
  constructor(invalid: Invalid) {
    this.invalid = invalid
  }
}

/** Whether a thrown value is an `OptionError`, never throwing (instanceof runs a Proxy's getPrototypeOf trap). */
export const isOptionError = (error: unknown): error is OptionError => {
  try {
    return error instanceof OptionError
  } catch {
    return false
  }
}

export const fail = (field: string, value: unknown, reason: string): never => {
  throw new OptionError({ field, value: show(value), reason })
}

/** What a caller's code threw, in words, never by throwing in turn (its `message` may be a getter that throws). */
export const thrown = (error: unknown): string => {
  try {
    if (error instanceof Error) return `${error.name}: ${String(error.message)}`
  } catch {
    // a Proxy, or an Error's getter that throws: described below
  }
  return show(error)
}

/**
 * Runs `check` of a caller's `value`, where reading the value runs the caller's code (a getter, a
 * Proxy's trap): what that throws is an `OptionError` naming `field`, not a defect.
 */
export const reading = <A>(field: string, value: unknown, check: () => A): A => {
  try {
    return check()
  } catch (error) {
    if (isOptionError(error)) throw error
    return fail(field, value, `reading it threw ${thrown(error)}`)
  }
}

/**
 * Upper bounds on counts, so that a typo such as `2 ** 53` fails at once instead of blocking the
 * event loop for many seconds and dying. Each worker is an object, and with a `resource` a fiber
 * and a scope: growing to 100,000 workers took 20–60 ms, or 0.4–0.7 s with a resource, on a
 * 2-core machine under heavy load; 1,000,000 took ten times that (3 s and 600 MB with a resource).
 * A thread is an isolate of 35–40 MB (docs/threads.md): 1024 of them is past any machine already.
 * `capacity` needs none: the queue allocates per queued job, not per slot.
 */
export const MAX_CONCURRENCY = 100_000
export const MAX_THREADS = 1024
/** The largest cap of a durable queue's running jobs, or of one key's (`JobQueue.setConcurrency`, `setGroupConcurrency`). */
export const MAX_QUEUE_CAP = 1_000_000
export const MAX_TASKS_PER_THREAD = 1024

/** An object: not null, not an array, not a function. */
export const object = (field: string, value: unknown): void => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) fail(field, value, "expected an object")
}

/**
 * An object of options with only `keys`: another key is a typo, or another API's name for one
 * (`state` and `status`), which would be ignored silently (a filter then keeps everything). The
 * error names the key as `prefix` + key; `hints` says which key a known wrong one stands for. It
 * shows the kind of the key's value, not the value: a key the options do not have may hold anything,
 * a credential among them (node-postgres' `connectionString`, a `password`), and the error is logged.
 */
export const onlyKeys = (
  prefix: string,
  value: object,
  keys: ReadonlyArray<string>,
  hints: Readonly<Record<string, string>> = {}
): void => {
  for (const key of Object.keys(value)) {
    if (keys.includes(key)) continue
    const hint = Object.hasOwn(hints, key) ? ` (use ${hints[key]})` : ""
    fail(`${prefix}${key}`, kindOf(value, key), `expected only ${keys.join(", ")}${hint}`)
  }
}

/**
 * A value named by its kind only, such as "a string" or "a Promise": for errors that must not show
 * the value (a key's value may be a secret, a check's answer a user's record).
 */
export const kindOfValue = (value: unknown): string => {
  if (value === null || value === undefined) return String(value)
  const kind = Array.isArray(value) ? "array" : value instanceof Promise ? "Promise" : typeof value
  return /^[aeiou]/.test(kind) ? `an ${kind}` : `a ${kind}`
}

/** What an error shows of a key's value: its kind, such as `<a string>`. */
const kindOf = (owner: object, key: string): string => {
  try {
    return `<${kindOfValue((owner as Record<string, unknown>)[key])}>`
  } catch {
    return "<a value that cannot be read>" // a getter that throws
  }
}

/**
 * The keys of `WorkPool.Options`: another one is refused, not ignored (a misspelt `timeout` ran
 * jobs with none). `ThreadPool.Options` has these but `concurrency` and `resource`, and its own.
 */
export const POOL_KEYS: ReadonlyArray<string> = [
  "concurrency", "name", "metrics", "capacity", "overflow", "timeout", "queueTimeout", "aging", "retry",
  "shutdownTimeout", "paused", "rateLimit", "retention", "resource"
]

/** A whole number from 1 to `max`; `why` says where a bound below the plain one comes from. */
export const positiveInteger = (field: string, value: unknown, max: number, why?: string): number => {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > max) {
    const expected = max === Infinity ? "a whole number of at least 1" : `a whole number from 1 to ${max}`
    fail(field, value, why === undefined ? `expected ${expected}` : `expected ${expected} (${why})`)
  }
  return value as number
}

/** A thread count: at most MAX_THREADS, and at most MAX_CONCURRENCY tasks in all. */
export const threads = (value: unknown, tasksPerThread: number): number => {
  const max = maxThreads(tasksPerThread)
  return max < MAX_THREADS
    ? positiveInteger("threads", value, max, `threads × tasksPerThread is at most ${MAX_CONCURRENCY}`)
    : positiveInteger("threads", value, max)
}

export const maxThreads = (tasksPerThread: number): number =>
  Math.min(MAX_THREADS, Math.floor(MAX_CONCURRENCY / tasksPerThread))

/** A whole number from 0 to `max`. */
export const count = (field: string, value: unknown, max: number): number => {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > max) {
    fail(field, value, `expected a whole number from 0 to ${max}`)
  }
  return value as number
}

/** Ended jobs a pool may retain for lookup: each holds its result and its submitter's context. */
export const MAX_RETAINED = 1_000_000

/** A whole number ≥ 0, or Infinity. */
export const capacity = (field: string, value: unknown): number => {
  if (typeof value !== "number" || !(value === Infinity || (Number.isInteger(value) && value >= 0))) {
    fail(field, value, "expected a whole number of at least 0, or Infinity")
  }
  return value as number
}

export const finiteNumber = (field: string, value: unknown): number => {
  if (typeof value !== "number" || !Number.isFinite(value)) fail(field, value, "expected a finite number")
  return value as number
}

export const oneOf = <const T extends string>(field: string, value: unknown, choices: ReadonlyArray<T>): T => {
  if (!choices.includes(value as T)) fail(field, value, `expected one of ${choices.map(show).join(", ")}`)
  return value as T
}

export const boolean = (field: string, value: unknown): boolean => {
  if (typeof value !== "boolean") fail(field, value, "expected true or false")
  return value as boolean
}

/** A non-empty string, such as a pool's name. */
export const name = (field: string, value: unknown): string => {
  if (typeof value !== "string" || value.length === 0) fail(field, value, "expected a non-empty string")
  return value as string
}

/**
 * A name a durable job store keeps in an index (a queue, a dedup key, a repeat's name in its ticks' ids), in
 * UTF-8 bytes: a Postgres index row holds at most 2,704 bytes (a queue and a dedup key share one;
 * 3,000 bytes of Chinese, 1,000 characters, failed with "index row size exceeds btree maximum"), and
 * Postgres sends a job's queue in a notification, whose payload is at most 8,000 bytes.
 */
export const MAX_NAME_BYTES = 1000

const encoder = new TextEncoder()

/** A lone surrogate: half of a UTF-16 pair, which UTF-8 has no bytes for. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

/** Whether a string is Unicode text: no lone surrogate (`String.prototype.isWellFormed`, ES2024). */
export const wellFormed = (text: string): boolean => !LONE_SURROGATE.test(text)

/**
 * Whether a string can be stored as it is: no NUL (a Postgres text cannot hold one), no lone
 * surrogate (the SQLite, Postgres and Redis stores keep UTF-8, where each becomes U+FFFD: names that
 * differ in one were one queue, one dedup key).
 */
export const unstorable = (text: string): string | undefined =>
  text.includes("\u0000")
    ? "expected no NUL character (a Postgres text cannot hold one)"
    : !wellFormed(text)
    ? "expected well-formed Unicode, no lone surrogate (a store keeps UTF-8, where it becomes U+FFFD)"
    : undefined

/** A non-empty string a store can keep and index (see `unstorable`), at most `MAX_NAME_BYTES`. */
export const storedName = (field: string, value: unknown): string => {
  const text = name(field, value)
  const why = unstorable(text)
  if (why !== undefined) fail(field, value, why)
  // a UTF-16 code unit is at most 3 bytes in UTF-8: most names need no encoding to be measured
  if (text.length * 3 > MAX_NAME_BYTES && encoder.encode(text).length > MAX_NAME_BYTES) {
    fail(field, value, `expected at most ${MAX_NAME_BYTES} bytes in UTF-8`)
  }
  return text
}

const DURATION_UNITS = new Set(["weeks", "days", "hours", "minutes", "seconds", "milliseconds", "microseconds", "nanoseconds"])

const isDurationNumber = (n: unknown): n is number => typeof n === "number" && !Number.isNaN(n)

/**
 * Whether `value` is one of the forms of `Duration.Input`. `Duration.fromInput` alone is not
 * enough: it reads any other object as a `DurationObject` and adds up the units it knows, so `{}`,
 * `{ millis: 5000 }` or a `Date` would be 0 ms, `{ seconds: "5" }` would be coerced, and a tuple
 * holding NaN would be 0.
 */
const isDurationInput = (value: unknown): boolean => {
  switch (typeof value) {
    case "number":
      return !Number.isNaN(value)
    case "bigint":
    case "string":
      return true // a string is parsed by Duration.fromInput
    case "object": {
      if (value === null) return false
      if (Duration.isDuration(value)) return true
      if (Array.isArray(value)) return value.length === 2 && value.every(isDurationNumber)
      const proto = Object.getPrototypeOf(value)
      if (proto !== Object.prototype && proto !== null) return false
      let units = 0
      for (const [unit, amount] of Object.entries(value)) {
        if (!DURATION_UNITS.has(unit)) return false
        if (amount === undefined) continue
        if (!isDurationNumber(amount)) return false
        units++
      }
      return units > 0
    }
    default:
      return false
  }
}

const NOT_A_DURATION = "expected a duration: milliseconds, a string such as \"5 seconds\", a Duration, " +
  "[seconds, nanos], bigint nanoseconds or units such as { seconds: 5 }"

/** A duration in milliseconds, any value of the type (negative, 0, Infinity). */
const durationMillis = (field: string, value: unknown): number => {
  const duration = isDurationInput(value) ? Option.getOrUndefined(Duration.fromInput(value as Duration.Input)) : undefined
  if (duration === undefined) fail(field, value, NOT_A_DURATION)
  return Duration.toMillis(duration!)
}

/**
 * What each kind of duration takes, as its error says. Each names only values the kind takes (a
 * negative `positive` one said "at least 0", and the 0 then tried was refused; a lease of 0 was
 * told to use Infinity, then refused as not finite): the reason is what a user tries next.
 */
const EXPECTED = {
  positive: "expected a duration above 0 (use Infinity for none)",
  nonNegative: "expected a duration of at least 0",
  nonNegativeFinite: "expected a finite duration of at least 0",
  finite: "expected a finite duration above 0"
} as const

/**
 * A duration in milliseconds. A `positive` one (a deadline, aging, idleness) would mean "at once" at
 * 0, so 0 is refused and Infinity stands for "none", returned as 0 (the default of every such
 * option); a `nonNegative` one (the shutdown deadline) may be 0 or Infinity as it is; a
 * `nonNegativeFinite` one (a thread's cancelGrace, after which it is terminated) may not be Infinity.
 */
export const millis = (field: string, value: unknown, kind: "positive" | "nonNegative" | "nonNegativeFinite"): number => {
  const ms = durationMillis(field, value)
  // !(ms >= 0) refuses NaN too
  if (!(ms >= 0) || (kind === "positive" && ms === 0) || (kind === "nonNegativeFinite" && ms === Infinity)) {
    fail(field, value, EXPECTED[kind])
  }
  return kind === "positive" && ms === Infinity ? 0 : ms
}

/**
 * A finite duration above 0, in milliseconds (a lease, a poll interval): "none" makes no sense.
 * With `least`, at least that many: one reason names the whole range, so that a value it suggests
 * is not refused in turn.
 */
export const finiteMillis = (field: string, value: unknown, least?: number): number => {
  const ms = durationMillis(field, value)
  if (least === undefined ? !(ms > 0 && ms < Infinity) : !(ms >= least && ms < Infinity)) {
    fail(field, value, least === undefined ? EXPECTED.finite : `expected a finite duration of at least ${least} milliseconds`)
  }
  return ms
}

/** The longest a Node timer waits (ms): one set longer fires after 1 ms (a `TimeoutOverflowWarning`). */
export const MAX_TIMER = 2 ** 31 - 1

/** A finite duration above 0 (ms) that a Node timer (`setTimeout`) waits for: at most `MAX_TIMER`. */
export const timerMillis = (field: string, value: unknown): number => {
  const ms = finiteMillis(field, value)
  if (ms > MAX_TIMER) fail(field, value, `expected at most ${MAX_TIMER} ms (about 24.8 days, a Node timer's longest)`)
  return ms
}

export const invalidPoolConfig = (field: string, value: unknown, reason: string): InvalidPoolConfig =>
  new InvalidPoolConfig({ field, value: show(value), reason })

/** Runs pool option checks; a failed check becomes `InvalidPoolConfig`. */
export const checkPoolOptions = <A>(check: () => A): Effect.Effect<A, InvalidPoolConfig> =>
  Effect.try({
    try: check,
    catch: (error) => {
      if (error instanceof OptionError) return new InvalidPoolConfig(error.invalid)
      throw error
    }
  })

/**
 * Runs job option checks; a failed check is returned as `InvalidJobOptions`. Not an Effect: `run`
 * and `submit` check options on their fast path.
 */
export const checkJobOptions = <A>(check: () => A): A | InvalidJobOptions => {
  try {
    return check()
  } catch (error) {
    if (error instanceof OptionError) return new InvalidJobOptions(error.invalid)
    throw error
  }
}

/** A store layer's option check, failed: the store's own error, naming the option as a pool's would. */
export const storeOptionError = (error: InvalidPoolConfig): StoreError =>
  new StoreError({ operation: "open", reason: `invalid store option ${error.field}: ${error.reason}, got ${error.value}` })
