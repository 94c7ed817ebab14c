/**
 * A durable job's own retry policy, chosen by its producer: a `Schedule` is code and cannot travel
 * to a consumer in another process, so the job carries data instead, stored with it as JSON text:
 * a backoff (`{ exponential, factor?, max? }` or `{ fixed }`), or the name of a policy that the
 * consumers register (`consume({ retryPolicies })`). Either is replayed from the stored attempt
 * count like the consumer's own, so every consumer computes the same delay.
 *
 * No jitter: a random delay could not be the same in every consumer.
 *
 * @internal
 */
import { Schedule } from "effect"
import * as config from "../config.ts"

/** The stored form: durations in milliseconds. */
export type Stored =
  | { readonly exponential: number; readonly factor: number; readonly max: number | undefined }
  | { readonly fixed: number }
  | { readonly policy: string }

const EXPECTED = "expected { exponential, factor?, max? }, { fixed } or the name of a policy the consumers register " +
  "(a Schedule is code: it cannot be stored with a job)"

/**
 * Why a string cannot name a retry policy: empty, or not storable as it is (see `config.unstorable`):
 * the Postgres reaper reads a job's stored policy and a consumer's policy names as jsonb, which
 * refuses a NUL's and a lone surrogate's escapes: every reap of the store failed.
 */
export const policyName = (name: string): string | undefined =>
  name.length === 0 ? "expected a non-empty policy name" : config.unstorable(name)

/** Checks an enqueue's `retry` option (`field` names it in the error); returns its stored text. */
export const encode = (field: string, value: unknown): string => {
  if (typeof value === "string") {
    const why = policyName(value)
    if (why !== undefined) config.fail(field, value, why)
    return JSON.stringify({ policy: value })
  }
  if (typeof value !== "object" || value === null || Array.isArray(value) || Schedule.isSchedule(value)) {
    return config.fail(field, value, EXPECTED)
  }
  const options = value as Record<string, unknown>
  if ("exponential" in options) {
    config.onlyKeys(`${field}.`, options, ["exponential", "factor", "max"])
    const base = config.finiteMillis(`${field}.exponential`, options.exponential)
    const factor = options.factor === undefined ? 2 : config.finiteNumber(`${field}.factor`, options.factor)
    if (factor < 1) config.fail(`${field}.factor`, options.factor, "expected a number of at least 1")
    const max = options.max === undefined ? undefined : config.finiteMillis(`${field}.max`, options.max)
    return JSON.stringify(max === undefined ? { exponential: base, factor } : { exponential: base, factor, max })
  }
  if ("fixed" in options) {
    config.onlyKeys(`${field}.`, options, ["fixed"])
    return JSON.stringify({ fixed: config.millis(`${field}.fixed`, options.fixed, "nonNegativeFinite") })
  }
  return config.fail(field, value, EXPECTED)
}

/** Reads a stored policy; anything else (a row from an older version, a hand-written one) is none. */
export const decode = (text: string | null | undefined): Stored | undefined => {
  if (text === null || text === undefined || text === "") return undefined
  let value: any
  try {
    value = JSON.parse(text)
  } catch {
    return undefined
  }
  if (typeof value !== "object" || value === null) return undefined
  if (typeof value.policy === "string") return { policy: value.policy }
  if (typeof value.fixed === "number" && value.fixed >= 0) return { fixed: value.fixed }
  if (typeof value.exponential === "number" && typeof value.factor === "number") {
    return { exponential: value.exponential, factor: value.factor, max: typeof value.max === "number" ? value.max : undefined }
  }
  return undefined
}

/**
 * The longest delay a retry waits (about 31,700 years): an exponential backoff without `max` grows
 * past what the stores' integer columns hold; a delay this long means "not in this life".
 */
export const MAX_DELAY = 1e15

/**
 * A delay in whole milliseconds: rounded half up, at most `MAX_DELAY`. Every retry's delay is one,
 * so that each store keeps it exactly (Postgres' visible_at is a bigint) and the reaper's delay,
 * which each store computes by the same rule (SQL, Lua), is the consumer's to the millisecond.
 */
export const wholeMillis = (millis: number): number => Math.min(Math.floor(millis + 0.5), MAX_DELAY)

/**
 * The delay before retry `attempt` (1 for the first) of a stored backoff: `exponential ×
 * factor^(attempt − 1)`, at most `max`, or `fixed`. A formula, not a `Schedule`, so that every
 * store's reaper computes the same one for a job taken back from a dead consumer (postgres.ts,
 * redisScripts.ts and sqlite.ts write it in SQL and Lua: keep them in step).
 */
export const delay = (stored: Exclude<Stored, { readonly policy: string }>, attempt: number): number =>
  "fixed" in stored
    ? wholeMillis(stored.fixed)
    : wholeMillis(Math.min(stored.exponential * Math.pow(stored.factor, attempt - 1), stored.max ?? Infinity))
