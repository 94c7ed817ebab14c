/**
 * Where a pool's threads keep compiled code: Node's module compile cache (Node 22.1+), which the
 * thread's bootstrap (threadMain.ts) turns on. Every thread compiles again each module its worker
 * file imports (about 150 for a worker file with Schema-typed tasks, nearly all of them effect's);
 * with the cache it reads the code V8 compiled in an earlier thread, or an earlier run, and a
 * TypeScript file's stripped text. Measured on Node 24.21 (one thread at a time, its own CPU until
 * its worker file had loaded): a JavaScript worker file importing effect/Effect and effect/Schema
 * 150–159 → 111–118 ms; a TypeScript one 134 → 83 ms, and 27 → 23 MB of heap, since the thread then
 * needs no TypeScript stripper (bench/scenarios/09-thread-start.ts's notes).
 *
 * Node's default folder, `node-compile-cache` in the temporary directory, is shared by every
 * account on the machine, and a cache entry is code the thread runs: whoever can write there can
 * run code in our threads. So the threads use the process's own cache when it has one (the
 * application chose it: `NODE_COMPILE_CACHE`, or `module.enableCompileCache` in the main thread,
 * which does not reach threads by itself), and otherwise a folder of this account's only, made with
 * mode 0700 in the temporary directory. A folder found there that is not a directory of ours that
 * only we can write to is not used: the threads then start without a cache, as they did before.
 * `NODE_DISABLE_COMPILE_CACHE=1`, Node's own switch, turns it off.
 *
 * @internal
 */
import { lstatSync, mkdirSync } from "node:fs"
import * as Module from "node:module"
import { tmpdir } from "node:os"
import { basename, dirname, join } from "node:path"

/** This account's folder in the temporary directory (on Windows, that directory is the account's own). */
const privateFolder = (): string => {
  const uid = process.getuid?.()
  return join(tmpdir(), uid === undefined ? "effect-workpool-compile-cache" : `effect-workpool-compile-cache-${uid}`)
}

/** The folder, made if need be, if it is a directory of this account's that nobody else can write to. */
const ownFolder = (folder: string): string | undefined => {
  try {
    mkdirSync(folder, { mode: 0o700 })
  } catch {
    // it exists (checked below), or cannot be made: no cache
  }
  try {
    const stat = lstatSync(folder)
    // no owner or mode bits to read on Windows, where the temporary directory is the account's own
    const uid = process.getuid?.()
    const ours = stat.isDirectory() && (uid === undefined || (stat.uid === uid && (stat.mode & 0o022) === 0))
    return ours ? folder : undefined
  } catch {
    return undefined
  }
}

/**
 * The folder the process's own cache was turned on with. Node answers `getCompileCacheDir` with a
 * folder of its own inside it, one per Node version (`v24.21.0-x64-…`), and a thread turned on with
 * that would make another inside that one: a second cache, not the process's.
 */
const processFolder = (): string | undefined => {
  if (process.env.NODE_COMPILE_CACHE) return process.env.NODE_COMPILE_CACHE
  const dir = typeof Module.getCompileCacheDir === "function" ? Module.getCompileCacheDir() : undefined
  return dir !== undefined && basename(dir).startsWith(`${process.version}-`) ? dirname(dir) : dir
}

/**
 * The compile cache folder for a pool's next thread, or undefined for none. Looked up at each
 * thread's start (two file-system calls): the folder may have been removed since the last.
 */
export const compileCacheFolder = (): string | undefined => {
  if (process.env.NODE_DISABLE_COMPILE_CACHE) return undefined
  if (typeof Module.enableCompileCache !== "function") return undefined
  return processFolder() ?? ownFolder(privateFolder())
}
