/**
 * A pool's threads keep compiled code in a compile cache (src/internal/compileCache.ts): the
 * process's own when it has one, else a folder only this account can write to, never one that
 * others can. Each test runs a process of its own, with its own temporary directory, so that the
 * folder it finds or makes is the test's.
 */
import { assert, describe, it } from "@effect/vitest"
import { onTestFinished } from "vitest"
import { execFile } from "node:child_process"
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const dir = fileURLToPath(new URL("./fixtures/thread-start/", import.meta.url))

/** A temporary directory for one test, removed after it. */
const temporary = (): string => {
  const root = mkdtempSync(join(tmpdir(), "workpool-compile-cache-"))
  onTestFinished(() => rmSync(root, { recursive: true, force: true }))
  return root
}

/** The folder the pool uses in `root` when the process has no cache of its own. */
const ownFolder = (root: string): string => join(root, `effect-workpool-compile-cache-${process.getuid?.() ?? ""}`).replace(/-$/, "")

/**
 * Runs compile-cache.mjs (a pool of one thread) with TMPDIR at `root` and no compile cache in its
 * environment but `env`'s: the thread's compile cache folder ("undefined" for none; Node's folder for
 * its version, inside the one it was turned on with) and the number of files in it once the thread
 * is ready.
 */
const threadCache = (root: string, env: Record<string, string> = {}, args: ReadonlyArray<string> = []) => {
  const base = { ...process.env }
  delete base.NODE_COMPILE_CACHE
  delete base.NODE_DISABLE_COMPILE_CACHE
  return new Promise<{ folder: string; files: number }>((resolve, reject) =>
    execFile(
      process.execPath,
      ["compile-cache.mjs", ...args],
      { cwd: dir, env: { ...base, TMPDIR: root, TMP: root, TEMP: root, ...env } },
      (error, stdout, stderr) => {
        if (error) return reject(new Error(`${error.message}\n${stderr}`))
        const [folder, files] = JSON.parse(stdout) as [string, string]
        resolve({ folder, files: Number(files) })
      }
    )
  )
}

describe("a pool's threads and the compile cache", () => {
  it("without one in the process, a thread uses a folder of this account's, made private, and writes to it once ready", async () => {
    const root = temporary()
    const { files, folder } = await threadCache(root)
    assert.strictEqual(dirname(folder), ownFolder(root))
    assert.strictEqual(statSync(ownFolder(root)).mode & 0o777, 0o700)
    // what the thread compiled (the worker file, effect's modules, ours) is there while it still runs
    assert.isAbove(files, 100)
    // and the next process's thread finds it (Node keys it by file, so it holds as many files)
    assert.deepStrictEqual(await threadCache(root), { folder, files })
  }, 120_000)

  it("NODE_DISABLE_COMPILE_CACHE=1 turns it off, and no folder is made", async () => {
    const root = temporary()
    assert.deepStrictEqual(await threadCache(root, { NODE_DISABLE_COMPILE_CACHE: "1" }), { folder: "undefined", files: 0 })
    assert.isFalse(existsSync(ownFolder(root)))
  }, 60_000)

  it("the process's own cache is the threads' cache: NODE_COMPILE_CACHE, or module.enableCompileCache in the main thread", async () => {
    const root = temporary()
    const fromEnvironment = join(root, "from-environment")
    assert.strictEqual(dirname((await threadCache(root, { NODE_COMPILE_CACHE: fromEnvironment })).folder), fromEnvironment)
    const fromMain = join(root, "from-main")
    const { files, folder } = await threadCache(root, {}, [fromMain])
    // the main thread's folder, not one inside it
    assert.strictEqual(dirname(folder), fromMain)
    assert.isAbove(files, 0)
    assert.isFalse(existsSync(ownFolder(root)))
  }, 120_000)

  it("a folder at that place that others can write to, or a symlink, is not used: the thread runs without a cache", async () => {
    const root = temporary()
    const folder = ownFolder(root)
    mkdirSync(folder)
    chmodSync(folder, 0o777)
    assert.deepStrictEqual(await threadCache(root), { folder: "undefined", files: 0 })
    rmSync(folder, { recursive: true })
    const elsewhere = join(root, "elsewhere")
    mkdirSync(elsewhere, { mode: 0o700 })
    symlinkSync(elsewhere, folder)
    assert.deepStrictEqual(await threadCache(root), { folder: "undefined", files: 0 })
  }, 120_000)
})
