/**
 * Validation of pool and job options. Every check names the field, shows the value and says what
 * was expected, so a bad option never turns into a hang or a silent default.
 *
 * @internal
 */
import { Duration, Effect, Option } from "effect"
import { InvalidPoolConfig } from "../PoolError.ts"

export interface Invalid {
  readonly field: string
  readonly value: string
  readonly reason: string
}

const show = (value: unknown): string => {
  if (typeof value === "string") return JSON.stringify(value)
  if (typeof value === "number" || typeof value === "boolean" || value === undefined || value === null) {
    return String(value)
  }
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

export class OptionError {
  readonly invalid: Invalid
  constructor(invalid: Invalid) {
    this.invalid = invalid
  }
}

export const fail = (field: string, value: unknown, reason: string): never => {
  throw new OptionError({ field, value: show(value), reason })
}

export const positiveInteger = (field: string, value: unknown): number => {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    fail(field, value, "expected a whole number of at least 1")
  }
  return value as number
}

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

/**
 * A duration in milliseconds. `positive` durations are deadlines, where 0 would mean "fail at once":
 * Infinity stands for "no deadline" and is returned as 0.
 */
export const millis = (
  field: string,
  value: unknown,
  kind: "deadline" | "nonNegative" | "positiveFinite"
): number => {
  const duration = isDurationInput(value) ? Option.getOrUndefined(Duration.fromInput(value as Duration.Input)) : undefined
  if (duration === undefined) fail(field, value, NOT_A_DURATION)
  const ms = Duration.toMillis(duration!)
  if (Number.isNaN(ms) || ms < 0) fail(field, value, "expected a duration of at least 0")
  switch (kind) {
    case "deadline":
      if (ms === 0) fail(field, value, "expected a duration above 0 (use Infinity for none)")
      return ms === Infinity ? 0 : ms
    case "positiveFinite":
      if (ms === 0 || ms === Infinity) fail(field, value, "expected a finite duration above 0")
      return ms
    case "nonNegative":
      return ms
  }
}

/** Runs pool option checks; a failed check becomes `InvalidPoolConfig`. */
export const checkPoolOptions = <A>(check: () => A): Effect.Effect<A, InvalidPoolConfig> =>
  Effect.try({
    try: check,
    catch: (error) => {
      if (error instanceof OptionError) return new InvalidPoolConfig(error.invalid)
      throw error
    }
  })
