/**
 * Checks of the options only a thread pool has: what is handed to each `Worker`, and the start
 * schedule. A bad value here would otherwise surface far from its cause: `resourceLimits` too small
 * abort the whole process, an uncloneable `workerData` fails every start attempt, and a start
 * schedule that is not a `Schedule` retries forever.
 *
 * @internal
 */
import { Schedule } from "effect"
import type { ResourceLimits } from "node:worker_threads"
import * as config from "./config.ts"

/**
 * The smallest `maxOldGenerationSizeMb` accepted. Node 24 aborts the whole process (V8 "Fatal
 * JavaScript out of memory: GC during deserialization") when a worker's old generation is too small
 * to deserialize its start-up snapshot: measured on Node 24.21, 2.4 MB aborts and 2.5 MB starts (the
 * thread then runs out of memory on its own, which fails only that thread). 4 leaves a margin.
 */
export const MIN_OLD_GENERATION_MB = 4

/**
 * The smallest `stackSizeMb` accepted: measured on Node 24.21, 0.2 MB crashes the whole process
 * (SIGSEGV), 0.25 MB overflows while the thread starts, 0.3 MB runs.
 */
export const MIN_STACK_MB = 0.5

const LIMITS: Record<keyof ResourceLimits, { readonly min: number; readonly above: string }> = {
  maxOldGenerationSizeMb: { min: MIN_OLD_GENERATION_MB, above: `at least ${MIN_OLD_GENERATION_MB} (smaller heaps abort the process)` },
  maxYoungGenerationSizeMb: { min: 0, above: "at least 0" },
  codeRangeSizeMb: { min: 0, above: "at least 0" },
  stackSizeMb: { min: MIN_STACK_MB, above: `at least ${MIN_STACK_MB} (smaller stacks crash the process)` }
}

export const resourceLimits = (value: unknown): ResourceLimits => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    config.fail("resourceLimits", value, `expected an object with some of ${Object.keys(LIMITS).join(", ")}`)
  }
  for (const [key, limit] of Object.entries(value as Record<string, unknown>)) {
    const field = `resourceLimits.${key}`
    const bound = LIMITS[key as keyof ResourceLimits]
    if (bound === undefined) config.fail(field, limit, `expected one of ${Object.keys(LIMITS).join(", ")}`)
    if (limit === undefined) continue
    if (typeof limit !== "number" || !Number.isFinite(limit) || limit < bound.min) {
      config.fail(field, limit, `expected a number of megabytes, ${bound.above}`)
    }
  }
  return value as ResourceLimits
}

export const startSchedule = (value: unknown): Schedule.Schedule<unknown, unknown> => {
  if (!Schedule.isSchedule(value)) config.fail("startSchedule", value, "expected a Schedule, such as Schedule.recurs(2)")
  return value as Schedule.Schedule<unknown, unknown>
}

/** `workerData` is structured-cloned into every thread: a value that cannot be would fail every start. */
export const workerData = (value: unknown): unknown => {
  try {
    structuredClone(value)
  } catch (error) {
    config.fail("workerData", value, `expected a value that can be structured-cloned (${error instanceof Error ? error.message : String(error)})`)
  }
  return value
}
