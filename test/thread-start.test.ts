/**
 * How a pool's thread starts (src/internal/threadMain.ts): a bootstrap installs a resolve cache for
 * the start, then runs the worker file as Node runs a worker's main module. The cache is tested on
 * the very source the thread runs; the threads show that the worker file cannot tell the bootstrap
 * was there.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import { onTestFinished } from "vitest"
import { execFile } from "node:child_process"
import { rmSync } from "node:fs"
import { dirname } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { Worker } from "node:worker_threads"
import { PoolError } from "../src/index.ts"
import { resolveCacheSource } from "../src/internal/threadMain.ts"
import * as ThreadPool from "../src/ThreadPool.ts"
import { HowStarted } from "./fixtures/thread-main-tasks.ts"
import { writeGraph } from "./fixtures/thread-start/graph.ts"

interface Answer {
  readonly url: string
  readonly format?: string | undefined
  readonly shortCircuit?: boolean | undefined
}
interface Context {
  readonly parentURL: string | undefined
  readonly conditions: ReadonlyArray<string>
  readonly importAttributes: Record<string, string>
}
type Resolve = (specifier: string, context: Context, next: (specifier: string, context: Context) => Answer) => Answer

/** A fresh cache, made from the same text the thread's bootstrap runs. */
const makeCache = (): Resolve => (new Function(`return (${resolveCacheSource})`)() as () => Resolve)()

const IMPORT = ["node", "import", "module-sync", "node-addons"]
const REQUIRE = ["node", "require", "module-sync", "node-addons"]
const from = (parentURL: string | undefined, conditions = IMPORT, importAttributes: Record<string, string> = {}): Context => ({
  parentURL,
  conditions,
  importAttributes
})

/** Node's resolution, counted: each answer carries its call's number, so that a cached one shows. */
const counted = () => {
  const calls: Array<string> = []
  const next = (specifier: string, context: Context): Answer => {
    calls.push(`${context.parentURL} ${specifier}`)
    return { url: `file:///resolved/${calls.length}/${specifier.replace(/^\.\//, "")}`, format: "module" }
  }
  return { calls, next }
}

describe("the resolve cache of a thread's start", () => {
  it("answers a specifier from a directory once, for every module of that directory", () => {
    const cache = makeCache()
    const { calls, next } = counted()
    const first = cache("./core.js", from("file:///app/node_modules/effect/dist/Effect.js"), next)
    const second = cache("./core.js", from("file:///app/node_modules/effect/dist/Schema.js"), next)
    assert.deepStrictEqual(calls, ["file:///app/node_modules/effect/dist/Effect.js ./core.js"])
    assert.deepStrictEqual(first, { url: "file:///resolved/1/core.js", format: "module", shortCircuit: true })
    assert.deepStrictEqual(second, first)
    // each answer is a copy: the loader may keep or change what it gets
    assert.notStrictEqual(second, first)
  })

  it("answers a relative specifier once per file it names, from any directory", () => {
    const cache = makeCache()
    const { calls, next } = counted()
    const first = cache("./Duration.js", from("file:///app/dist/Effect.js"), next)
    assert.deepStrictEqual(cache("../Duration.js", from("file:///app/dist/internal/core.js"), next), first)
    assert.deepStrictEqual(cache("/app/dist/Duration.js", from("file:///app/dist/schema/AST.js"), next), first)
    assert.strictEqual(calls.length, 1)
  })

  it("answers a bare specifier once per importing directory", () => {
    const cache = makeCache()
    const { calls, next } = counted()
    cache("effect/Schema", from("file:///app/src/a.ts"), next)
    cache("effect/Schema", from("file:///app/src/b.ts"), next)
    cache("effect/Schema", from("file:///app/src/lib/c.ts"), next)
    assert.strictEqual(calls.length, 2)
  })

  it("asks Node again from another directory, for another specifier or other conditions", () => {
    const cache = makeCache()
    const { calls, next } = counted()
    cache("./core.js", from("file:///app/dist/Effect.js"), next)
    const deeper = cache("./core.js", from("file:///app/dist/internal/effect.js"), next)
    cache("./effect.js", from("file:///app/dist/Effect.js"), next)
    cache("./core.js", from("file:///app/dist/Effect.js", ["node", "import", "development"]), next)
    assert.strictEqual(calls.length, 4)
    assert.strictEqual(deeper.url, "file:///resolved/2/core.js")
  })

  it("leaves require, importers with a query or hash, imports with attributes and non-file importers to Node", () => {
    const cache = makeCache()
    const { calls, next } = counted()
    const twice = (context: Context) => {
      cache("./dep.js", context, next)
      return cache("./dep.js", context, next)
    }
    // require tries extensions and directories: its answer is not import's
    assert.strictEqual(twice(from("file:///app/a.cjs", REQUIRE)).shortCircuit, undefined)
    // module mocking hooks answer per importing module, which they tell apart by a query
    twice(from("file:///app/a.js?mock=1"))
    twice(from("file:///app/a.js#x"))
    twice(from("file:///app/a.js", IMPORT, { type: "json" }))
    twice(from("data:text/javascript,export{}"))
    twice(from(undefined))
    assert.strictEqual(calls.length, 12)
  })

  it("does not keep a failure: the next import of the same specifier asks Node again", () => {
    const cache = makeCache()
    let calls = 0
    const next = (): Answer => {
      calls++
      if (calls === 1) throw new Error("Cannot find module")
      return { url: "file:///app/later.js", format: "module" }
    }
    assert.throws(() => cache("./later.js", from("file:///app/a.js"), next), "Cannot find module")
    assert.strictEqual(cache("./later.js", from("file:///app/b.js"), next).url, "file:///app/later.js")
    assert.strictEqual(calls, 2)
  })
})

describe("a pool's thread runs its worker file as its main module", () => {
  const esm = new URL("./fixtures/thread-main-worker.ts", import.meta.url)

  it.live("ESM: process.argv[1] is the worker file and import.meta.main is true, for a URL or a relative path", () =>
    Effect.gen(function*() {
      for (const worker of [esm, "./test/fixtures/thread-main-worker.ts"]) {
        const pool = yield* ThreadPool.make({ worker, threads: 1 })
        assert.deepStrictEqual(yield* pool.run(HowStarted, 0), { argv1: fileURLToPath(esm), main: true }, String(worker))
      }
    }))

  it.live("a data: URL starts as it is (it can import only absolute URLs: there is little to resolve)", () =>
    Effect.gen(function*() {
      const url = (path: string) => JSON.stringify(new URL(path, import.meta.url).href)
      const code = `
        import * as Effect from ${JSON.stringify(import.meta.resolve("effect/Effect"))}
        import * as Task from ${url("../src/Task.ts")}
        import * as ThreadWorker from ${url("../src/ThreadWorker.ts")}
        import { HowStarted } from ${url("./fixtures/thread-main-tasks.ts")}
        ThreadWorker.serve([Task.handle(HowStarted, () => Effect.succeed({ argv1: "data", main: import.meta.main === true }))])
      `
      const pool = yield* ThreadPool.make({ worker: new URL(`data:text/javascript,${encodeURIComponent(code)}`), threads: 1 })
      assert.deepStrictEqual(yield* pool.run(HowStarted, 0), { argv1: "data", main: true })
    }))

  it.live("CommonJS: require.main is the worker file's module", () =>
    Effect.gen(function*() {
      const cjs = new URL("./fixtures/thread-main-worker.cjs", import.meta.url)
      const pool = yield* ThreadPool.make({ worker: cjs, threads: 1, startTimeout: 60_000 })
      assert.deepStrictEqual(yield* pool.run(HowStarted, 0), { argv1: fileURLToPath(cjs), main: true })
    }))

  it("in a process run with --input-type=module, a thread fails as a plain Worker does, not in its bootstrap", async () => {
    // the threads inherit the flag, so Node parses the bootstrap (eval code) as a module, where
    // there is no `require`; Node itself then refuses to run a worker file under that flag
    const script = `
      import { Effect } from "effect"
      import { Worker } from "node:worker_threads"
      import * as ThreadPool from ${JSON.stringify(new URL("../src/ThreadPool.ts", import.meta.url).href)}
      const worker = new URL(${JSON.stringify(esm.href)})
      const plain = await new Promise((resolve) => new Worker(worker).once("error", (error) => resolve(error.message)))
      const error = await Effect.runPromise(Effect.scoped(Effect.flip(ThreadPool.make({ worker, threads: 1, startSchedule: undefined }))))
      process.stdout.write(JSON.stringify({ plain, pool: error.reason }))
    `
    const printed = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ["--input-type=module", "-e", script], { cwd: fileURLToPath(new URL("..", import.meta.url)) }, (error, stdout, stderr) =>
        error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout))
    )
    const { plain, pool } = JSON.parse(printed) as { plain: string; pool: string }
    assert.include(plain, "--input-type")
    assert.include(pool, plain)
  }, 60_000)

  it.live("a worker file that throws while it loads fails the start with what it threw", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(ThreadPool.make({
        worker: new URL("./fixtures/throws-at-load-worker.ts", import.meta.url),
        threads: 1,
        startSchedule: Schedule.recurs(0)
      }))
      assert.instanceOf(error, PoolError.WorkerStartFailed)
      assert.include((error as PoolError.WorkerStartFailed).reason, "RangeError: thrown while the worker file loads")
    }))
  it.live("a worker file that cannot be parsed or imports a missing file fails the start as a plain Worker does", () =>
    Effect.gen(function*() {
      for (const name of ["syntax-error.mjs", "missing-import.mjs"]) {
        const worker = new URL(`./fixtures/thread-start/${name}`, import.meta.url)
        const plain = yield* Effect.promise(() =>
          new Promise<string>((resolve) => new Worker(worker).once("error", (error) => resolve(`${error.name}: ${error.message}`)))
        )
        const error = yield* Effect.flip(ThreadPool.make({ worker, threads: 1, startSchedule: Schedule.recurs(0) }))
        assert.instanceOf(error, PoolError.WorkerStartFailed)
        assert.strictEqual((error as PoolError.WorkerStartFailed).reason, plain, name)
      }
    }))
})

describe("a pool's thread under the process's own resolve hooks", () => {
  // test/fixtures/thread-start: a.mjs and b.mjs both import "./dep.mjs"; hooks.mjs, an async hook
  // (module.register), answers it per importer, dep-b.mjs for b.mjs. The start's cache sits in
  // front of such hooks (synchronous hooks run first), so it must not serve b.mjs the answer the
  // hook gave a.mjs.
  const dir = fileURLToPath(new URL("./fixtures/thread-start/", import.meta.url))
  const imported = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
    new Promise<ReadonlyArray<string>>((resolve, reject) =>
      execFile(process.execPath, args, { cwd: dir, env: { ...process.env, ...env } }, (error, stdout, stderr) =>
        error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(JSON.parse(stdout)))
    )

  it("without hooks, both import dep.mjs", async () => {
    assert.deepStrictEqual(await imported(["main.mjs", "./worker.mjs"]), ["dep", "dep"])
  }, 60_000)

  it.each([
    ["--import", ["--import", "./register.mjs"], {}],
    ["--require", ["--require", "./register.cjs"], {}],
    ["--experimental-loader", ["--no-warnings", "--experimental-loader", "./hooks.mjs"], {}],
    ["NODE_OPTIONS=--import", [], { NODE_OPTIONS: `--import=${JSON.stringify(`${dir}register.mjs`)}` }]
  ] as const)("a hook registered by %s answers each importer", async (_, flags, env) => {
    assert.deepStrictEqual(await imported([...flags, "main.mjs", "./worker.mjs"], env), ["dep", "dep-b"])
  }, 60_000)

  it("a hook the worker file registers while it loads answers the modules it imports after", async () => {
    assert.deepStrictEqual(await imported(["main.mjs", "./registers-worker.mjs"]), ["dep", "dep-b"])
  }, 60_000)
})

describe("the start's resolve cache in a thread", () => {
  it("holds its answers while the worker file loads and lets them go once the thread is ready", async () => {
    // in a process of its own: vitest runs the tests with a --require preload, where the cache is off
    const printed = await new Promise<string>((resolve, reject) =>
      execFile(
        process.execPath,
        ["main.mjs", "./cache-worker.mjs"],
        { cwd: fileURLToPath(new URL("./fixtures/thread-start/", import.meta.url)) },
        (error, stdout, stderr) => error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout)
      )
    )
    assert.deepStrictEqual(JSON.parse(printed), ["true", "0"])
  }, 60_000)
})

describe("a module graph that resolution can get wrong, with the start's cache and without", () => {
  // test/fixtures/thread-start/graph.ts. In processes of their own: vitest has a --require
  // preload, which turns the cache off; preload.cjs does the same for the run without it.
  const main = fileURLToPath(new URL("./fixtures/thread-start/main.mjs", import.meta.url))
  const run = (worker: URL, flags: ReadonlyArray<string>) =>
    new Promise<ReadonlyArray<string>>((resolve, reject) =>
      execFile(process.execPath, [...flags, main, worker.href], { cwd: dirname(main) }, (error, stdout, stderr) =>
        error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(JSON.parse(stdout)))
    )

  it("every import gives what Node gives without the cache, for the worker file and a symlink to it, and with --preserve-symlinks", async () => {
    const { root, symlinked, worker } = writeGraph()
    const url = pathToFileURL(root).href
    const shown = (answers: ReadonlyArray<string>) => answers.map((answer) => answer.replaceAll(url, "<root>").replaceAll(root, "<root>"))
    onTestFinished(() => rmSync(root, { recursive: true, force: true }))
    for (const entry of [worker, symlinked]) {
      const cached = await run(entry, [])
      assert.deepStrictEqual(cached, await run(entry, ["--require", "./preload.cjs"]), entry.href)
      assert.deepStrictEqual(shown(cached), [
        "dup 1",
        "dup 2 import",
        "dup 1",
        "internal",
        "42",
        "dup 2 require",
        "internal",
        "mts",
        "cts",
        "true",
        "<root>/real/index.js",
        "<root>/real/index.js",
        "<root>/app/sub/dup.js",
        "<root>/app/worker.js",
        entry === worker ? "<root>/app/worker.js" : "<root>/app/linked-worker.js"
      ], entry.href)
    }
    // where a symlink's path is the module's identity, the cache keeps it so
    const preserve = ["--preserve-symlinks", "--preserve-symlinks-main"]
    const preserved = await run(symlinked, preserve)
    assert.deepStrictEqual(preserved, await run(symlinked, [...preserve, "--require", "./preload.cjs"]))
    assert.deepStrictEqual(shown(preserved).slice(9, 11), ["false", "<root>/app/node_modules/linked/index.js"])
  }, 120_000)
})

describe("threads started with the resolve cache over a pool's life", () => {
  it("pools made and closed in a loop, grown after their start, with a thread crashed and replaced, run their tasks", async () => {
    const dir = fileURLToPath(new URL("./fixtures/thread-start/", import.meta.url))
    const printed = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ["lifecycle.mjs"], { cwd: dir }, (error, stdout, stderr) =>
        error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout))
    )
    const echoed = Array.from({ length: 16 }, (_, i) => `echo ${i}`).join()
    assert.deepStrictEqual(JSON.parse(printed), Array.from({ length: 3 }, () => ({ crashed: "WorkerCrashed", echoed })))
  }, 120_000)
})
