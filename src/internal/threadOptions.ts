/**
 * Checks of the options only a thread pool has: what is handed to each `Worker`, and the start
 * schedule. A bad value here would otherwise surface far from its cause: `resourceLimits` too small
 * or too large abort the whole process, an uncloneable `workerData` or a worker file that does not
 * exist fails every start attempt, and a start schedule that is not a `Schedule` retries forever.
 *
 * @internal
 */
import { Schedule } from "effect"
import { statSync } from "node:fs"
import { createRequire } from "node:module"
import { basename, isAbsolute, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import type { ResourceLimits } from "node:worker_threads"
import * as config from "./config.ts"
import { ownEntry } from "./threadMain.ts"

/**
 * The worker entry. Node resolves a path the way `require` resolves its main module (so
 * `./worker` finds `./worker.js`), and fails only once the thread runs, in every start attempt:
 * a file that cannot be found is reported here, before any thread starts. A `data:` URL has nothing
 * to check. What comes back is fixed when the pool is made: an absolute path (for a relative one or a
 * `file:` URL), or a copy of a `data:` URL (a URL object can be changed after).
 */
export const entry = (value: unknown): URL | string => {
  if (typeof value === "string") {
    if (!isAbsolute(value) && !/^\.\.?[\\/]/.test(value)) {
      // Node's Worker takes a URL as a URL object only: a string is a path
      config.fail("worker", value, /^[a-z][a-z0-9+.-]*:/i.test(value)
        ? "expected a URL object (new URL(...)), not a URL as a string, or a path"
        : "expected an absolute path, a relative path starting with ./ or ../, or a URL object (new URL(...))")
    }
    const path = resolve(value)
    found(path, value, isAbsolute(value) ? undefined : value)
    // resolved once: a thread started after the process changed its directory (a replacement, a
    // resize) runs the file checked here, as every thread before it
    return path
  }
  if (!(value instanceof URL)) return config.fail("worker", value, "expected a URL or a path")
  if (value.protocol === "data:") return new URL(value.href)
  if (value.protocol !== "file:") config.fail("worker", value.href, "expected a file: or data: URL")
  let path: string
  try {
    path = fileURLToPath(value)
  } catch (error) {
    return config.fail("worker", value.href, `expected a file: URL of this machine (${error instanceof Error ? error.message : String(error)})`)
  }
  found(path, value.href)
  return path
}

const found = (path: string, shown: string, relative?: string): void => {
  const file = resolved(path)
  if (file === undefined) {
    const what = unreadable(path)
      ? "cannot be read under Node's permission model (--permission): allow it with --allow-fs-read"
      : isDirectory(path)
      ? "is a directory with no entry Node can load"
      : "does not exist"
    // a path written as seen from the module that makes the pool is the usual mistake
    const from = relative === undefined
      ? ""
      : `; a relative path is resolved from the current directory, ${process.cwd()}: for a file beside your module, new URL(${JSON.stringify(relative)}, import.meta.url)`
    config.fail("worker", shown, `expected a worker file, but ${path} ${what} (resolved as Node resolves a worker's entry${from})${compiledBeside(path)}`)
  }
  // a worker file that makes a pool of itself (a single file with no isMainThread check, or a worker
  // that imports its tasks from the main module, which makes the pool as it loads): each of its
  // threads would start more, until V8 aborts the whole process for want of memory
  const own = ownEntry()
  if (own !== undefined && resolved(own) === file) {
    config.fail("worker", shown, "expected another file than the worker file of this thread: made in each of its threads (by the file, or by a module it imports, such as a main module it takes its tasks from), the pool would start threads without end; make the pool on the main thread only (if (isMainThread) ...), and keep the tasks in a module of their own")
  }
}

/**
 * A TypeScript worker file missing where its compiled JavaScript is: the source's
 * `new URL("./worker.ts", import.meta.url)`, which a build (tsc, a bundler) emits as written.
 */
const compiledBeside = (path: string): string => {
  const ts = /\.([mc]?)ts$/.exec(path)
  if (ts === null) return ""
  const js = `${path.slice(0, -ts[0].length)}.${ts[1]}js`
  return resolved(js) === undefined
    ? ""
    : `; ${basename(js)} is there: a build (tsc, a bundler) keeps the name written in the source, so name the file it emitted (new URL(${JSON.stringify(`./${basename(js)}`)}, import.meta.url))`
}

/**
 * Whether the process runs under Node's permission model and may not read `path`: every file
 * system call on it then throws ERR_ACCESS_DENIED, which is no sign that the file is missing.
 */
const unreadable = (path: string): boolean => {
  const permission = (process as { readonly permission?: { has(scope: string, reference?: string): boolean } }).permission
  return permission !== undefined && !permission.has("fs.read", path)
}

/** The file Node runs for a worker's entry, or none. */
const resolved = (path: string): string | undefined => {
  try {
    // resolved from the file itself: the path is absolute, so any base would do, and none taken
    // from `import.meta.url` (empty in a CommonJS bundle of this module, where createRequire throws)
    const file = createRequire(path).resolve(path)
    // require keeps its answers for the process: a worker file deleted since an earlier pool's
    // check would still be given (and every start of this pool fail)
    return statSync(file).isFile() ? file : undefined
  } catch {
    return undefined
  }
}

const isDirectory = (path: string): boolean => {
  try {
    return statSync(path).isDirectory()
  } catch {
    return false
  }
}

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

/**
 * The largest `stackSizeMb` and `codeRangeSizeMb` accepted. Both are reserved for every thread when
 * it is created. Measured on Node 24.21 (Linux x64, 24 GB): a stack of 64 GB makes `new Worker`
 * throw (ERR_WORKER_INIT_FAILED EAGAIN), one of 1e15 MB crashes the whole process (SIGSEGV), and a
 * code range of 2^28 MB aborts it (V8 "Failed to reserve virtual memory for CodeRange"). A
 * gigabyte is far above what a thread uses: a worker's default stack is 4 MB, and a code range of 0
 * (the default) lets V8 choose.
 */
export const MAX_RESERVED_MB = 1024

interface Bound {
  readonly min: number
  readonly max: number
  readonly expected: string
}

const LIMITS: Record<keyof ResourceLimits, Bound> = {
  maxOldGenerationSizeMb: {
    min: MIN_OLD_GENERATION_MB,
    max: Infinity,
    expected: `at least ${MIN_OLD_GENERATION_MB} (smaller heaps abort the process)`
  },
  maxYoungGenerationSizeMb: { min: 0, max: Infinity, expected: "at least 0" },
  codeRangeSizeMb: {
    min: 0,
    max: MAX_RESERVED_MB,
    expected: `from 0 to ${MAX_RESERVED_MB} (larger ones abort the process)`
  },
  stackSizeMb: {
    min: MIN_STACK_MB,
    max: MAX_RESERVED_MB,
    expected: `from ${MIN_STACK_MB} to ${MAX_RESERVED_MB} (smaller stacks crash the process, larger ones cannot be reserved)`
  }
}

export const resourceLimits = (value: unknown): ResourceLimits => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    config.fail("resourceLimits", value, `expected an object with some of ${Object.keys(LIMITS).join(", ")}`)
  }
  for (const [key, limit] of Object.entries(value as Record<string, unknown>)) {
    const field = `resourceLimits.${key}`
    // own keys only: constructor or toString, inherited by the table, passed with no bounds
    const bound = Object.hasOwn(LIMITS, key)
      ? LIMITS[key as keyof ResourceLimits]
      : config.fail(field, limit, `expected one of ${Object.keys(LIMITS).join(", ")}`)
    if (limit === undefined) continue
    if (typeof limit !== "number" || !Number.isFinite(limit) || limit < bound.min || limit > bound.max) {
      config.fail(field, limit, `expected a number of megabytes, ${bound.expected}`)
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
    config.fail("workerData", value, `expected a value that can be structured-cloned (${config.thrown(error)})`)
  }
  return value
}
