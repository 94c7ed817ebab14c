/**
 * Node's module compile cache for a pool's threads. Each thread is a new V8 isolate: it reads,
 * parses and compiles its worker file and everything that file imports (for a worker serving
 * Schema-typed tasks, about 150 modules of effect), and a worker file in TypeScript is stripped of
 * its types first. With the cache, a thread reads the compiled code (and the stripped source) that
 * an earlier thread wrote to disk. A thread learns the directory only from its environment at
 * start (`module.enableCompileCache` in the main thread does not reach threads), so the pool
 * passes `NODE_COMPILE_CACHE` to the threads it starts, and `ThreadWorker` takes it out of the
 * thread's `process.env` again as its module loads (modules the worker file imports before
 * `ThreadWorker` are evaluated first and see it: only a bootstrap entry could hide it from them;
 * `--import` in `execArgv` would, but an explicit `execArgv` rejects V8 flags the process was
 * started with). A process started from the thread after that does not inherit it.
 *
 * @internal
 */
import { lstatSync } from "node:fs"
import * as module from "node:module"
import { tmpdir } from "node:os"
import { join } from "node:path"

const VARIABLE = "NODE_COMPILE_CACHE"

/**
 * The directory the pool hands its threads, or undefined when it hands none: the user turned the
 * cache off (`NODE_DISABLE_COMPILE_CACHE`), or chose a directory already (`NODE_COMPILE_CACHE`,
 * which threads inherit with the rest of the environment). The main thread's own cache directory
 * if it enabled one (as Node's documentation advises for threads), else the one
 * `module.enableCompileCache()` picks by default, if no other user can write to it.
 */
export const directory = (
  env: NodeJS.ProcessEnv,
  fallback: string = join(tmpdir(), "node-compile-cache")
): string | undefined => {
  if (env.NODE_DISABLE_COMPILE_CACHE !== undefined || env[VARIABLE] !== undefined) return undefined
  // Node before 22.8 has no compile cache: the variable would only be noise in the thread
  if (typeof module.getCompileCacheDir !== "function") return undefined
  const own = module.getCompileCacheDir()
  if (own !== undefined) return own
  return private_(fallback) ? fallback : undefined
}

/**
 * Whether only this user (or root) can change what is in `path`, or it does not exist yet (Node
 * makes it, this user's). The default lives in the shared temporary directory, and the cache holds
 * compiled code (and stripped TypeScript) that threads run without compiling it: a directory
 * another user made first, or may write to, would let them choose that code. The user opted into
 * none of this (the pool turns the cache on by default), so such a directory means no cache.
 */
const private_ = (path: string): boolean => {
  let stat
  try {
    // not followed: whoever owns a link can point it elsewhere after this look
    stat = lstatSync(path)
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ENOENT"
  }
  const uid = process.getuid?.()
  // Windows has no uid (nor these mode bits): its temporary directory is the user's own
  if (uid === undefined) return stat.isDirectory()
  return stat.isDirectory() && (stat.uid === uid || stat.uid === 0) && (stat.mode & 0o022) === 0
}

/**
 * The environment of a new thread: a copy of the main thread's, as `Worker` makes by default, with
 * the cache directory added.
 */
export const threadEnv = (directory: string): NodeJS.ProcessEnv => ({ ...process.env, [VARIABLE]: directory })

/** In a thread, as ThreadWorker loads: takes the variable the pool added out of its environment. */
export const forget = (): void => {
  delete process.env[VARIABLE]
}

/**
 * In a thread that reported ready: writes what it compiled to the cache now. Node writes it when
 * the thread exits, which a terminated thread never does.
 */
export const flush = (): void => {
  module.flushCompileCache?.()
}
