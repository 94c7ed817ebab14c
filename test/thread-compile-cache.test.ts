/**
 * Node's module compile cache in a pool's threads: each thread is a new isolate that compiles its
 * worker file and effect for itself, unless the code compiled by an earlier thread is on disk.
 * The pool hands its threads the cache directory and takes the variable out of their environment
 * before user code runs; the user can turn it off.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { PoolError } from "../src/index.ts"
import * as CompileCache from "../src/internal/compileCache.ts"
import * as ThreadPool from "../src/ThreadPool.ts"
import { makePool, worker } from "./fixtures/pool.ts"
import { CompileCacheSeen } from "./fixtures/tasks.ts"

// the directory Node names inside the one it is given: `v<node>-<arch>-<hash>-<uid>`
const inside = (directory: string | null, parent: string) =>
  directory !== null && directory.startsWith(join(parent, "v"))

describe("ThreadPool: the module compile cache of its threads", () => {
  it.live("is on in every thread by default, with no NODE_COMPILE_CACHE left in the thread's environment", () =>
    Effect.gen(function*() {
      const expected = CompileCache.directory(process.env)
      assert.isDefined(expected, "this process sets neither NODE_COMPILE_CACHE nor NODE_DISABLE_COMPILE_CACHE")
      const { pool } = yield* makePool({ threads: 2 })
      const seen = yield* Effect.all([pool.run(CompileCacheSeen, 0), pool.run(CompileCacheSeen, 1)], {
        concurrency: 2
      })
      for (const { directory, variable } of seen) {
        assert.isTrue(inside(directory, expected!), `cache directory ${directory}, expected one in ${expected}`)
        assert.isNull(variable, "user code in the thread does not see the pool's variable")
      }
    }))

  it.live("is off with compileCache: false", () =>
    Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1, compileCache: false })
      assert.deepStrictEqual(yield* pool.run(CompileCacheSeen, 0), { directory: null, variable: null })
    }))

  it.live("compileCache that is not a boolean fails make with InvalidPoolConfig naming it", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(ThreadPool.make({ worker, compileCache: "yes" as unknown as boolean }))
      assert.instanceOf(error, PoolError.InvalidPoolConfig)
      assert.strictEqual((error as PoolError.InvalidPoolConfig).field, "compileCache")
      assert.match(error.message, /compileCache: expected true or false, got "yes"/)
    }))

  it("the directory: the user's choice first, then the main thread's cache, then Node's default", () => {
    assert.isUndefined(CompileCache.directory({ NODE_DISABLE_COMPILE_CACHE: "1" }), "turned off by the user")
    // threads inherit the variable with the rest of the environment: the pool adds nothing
    assert.isUndefined(CompileCache.directory({ NODE_COMPILE_CACHE: "/somewhere" }))
    assert.strictEqual(CompileCache.directory({}), join(tmpdir(), "node-compile-cache"))
  })

  it("the default directory is not used when another user could write to it: the threads would run the code compiled there", () => {
    const parent = mkdtempSync(join(tmpdir(), "wp-compile-cache-"))
    try {
      const fresh = join(parent, "fresh")
      assert.strictEqual(CompileCache.directory({}, fresh), fresh, "not there yet: Node makes it, this user's")
      const own = join(parent, "own")
      mkdirSync(own, { mode: 0o755 })
      chmodSync(own, 0o755)
      assert.strictEqual(CompileCache.directory({}, own), own)
      // made by someone else first, open to all (as a shared temporary directory is)
      const open = join(parent, "open")
      mkdirSync(open)
      chmodSync(open, 0o1777)
      assert.isUndefined(CompileCache.directory({}, open), "anyone may write in it")
      chmodSync(open, 0o775)
      assert.isUndefined(CompileCache.directory({}, open), "its group may write in it")
      if (process.getuid?.() === 0) {
        // root can make a directory another user owns: that user could replace what is in it
        const theirs = join(parent, "theirs")
        mkdirSync(theirs, { mode: 0o755 })
        chownSync(theirs, 65534, 65534)
        assert.isUndefined(CompileCache.directory({}, theirs), "another user's")
      }
      symlinkSync(own, join(parent, "link"))
      assert.isUndefined(CompileCache.directory({}, join(parent, "link")), "a link, which its owner may point elsewhere later")
      writeFileSync(join(parent, "file"), "")
      assert.isUndefined(CompileCache.directory({}, join(parent, "file")), "not a directory")
    } finally {
      rmSync(parent, { recursive: true, force: true })
    }
  })
})
