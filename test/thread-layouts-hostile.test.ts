/**
 * A pool's worker file in a user's project, not this repository's: where it is (a relative path
 * and the process's current directory, a file deleted or changed between two pools) and how the
 * process runs (preloads the process took out of its NODE_OPTIONS). Each must start as a plain
 * `new Worker(file)` would, or fail `make` with a clear `InvalidPoolConfig`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import { onTestFinished } from "vitest"
import { execFile } from "node:child_process"
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { PoolError } from "../src/index.ts"
import * as ThreadPool from "../src/ThreadPool.ts"
import { Imported } from "./fixtures/thread-main-tasks.ts"
import { writePnpm } from "./fixtures/thread-start/pnpm.ts"

const ours = (path: string): string => JSON.stringify(new URL(path, import.meta.url).href)

/** A worker file answering `Imported` with `answer` (JavaScript evaluated in its task) and whether the thread has a compile cache. */
const workerFile = (answer: string): string => `import * as Effect from ${JSON.stringify(import.meta.resolve("effect/Effect"))}
import { getCompileCacheDir } from "node:module"
import * as Task from ${ours("../src/Task.ts")}
import * as ThreadWorker from ${ours("../src/ThreadWorker.ts")}
import { Imported } from ${ours("./fixtures/thread-main-tasks.ts")}
ThreadWorker.serve([Task.handle(Imported, () => Effect.promise(async () => {
  // the thread writes what it compiled right after it reports ready
  await new Promise((resolve) => setImmediate(resolve))
  return [${answer}, String(getCompileCacheDir() !== undefined)]
}))])
`

/** A directory for one test, removed after it (its real path: the temporary directory may be a symlink). */
const temporary = (): string => {
  const root = realpathSync(mkdtempSync(join(tmpdir(), "workpool layouts ü#% ")))
  onTestFinished(() => rmSync(root, { recursive: true, force: true }))
  return root
}

describe("the worker file a pool's threads run is the one make checked", () => {
  it.live("is the file of the directory current when make ran: threads started after process.chdir run it", () =>
    Effect.gen(function*() {
      const root = temporary()
      writeFileSync(join(root, "worker.mjs"), workerFile("process.argv[1]"))
      mkdirSync(join(root, "elsewhere"))
      const cwd = process.cwd()
      onTestFinished(() => process.chdir(cwd))
      process.chdir(root)
      const pool = yield* ThreadPool.make({ worker: "./worker.mjs", threads: 1, startSchedule: Schedule.recurs(0) })
      // an application that changes its directory later: the threads it starts next (a resize, a
      // replacement, one started again after its idle timeout) ran ./elsewhere/worker.mjs, which
      // does not exist
      process.chdir(join(root, "elsewhere"))
      yield* pool.resize(3)
      const answers = yield* Effect.forEach([0, 1, 2, 3, 4, 5], () => pool.run(Imported, 0), { concurrency: "unbounded" })
      assert.deepStrictEqual(new Set(answers.map(([argv1]) => argv1)), new Set([join(root, "worker.mjs")]))
    }))

  it.live("a URL object changed after make (a file: or a data: URL): threads started later run the URL make was given", () =>
    Effect.gen(function*() {
      const root = temporary()
      writeFileSync(join(root, "worker.mjs"), workerFile(`"file"`))
      const file = pathToFileURL(join(root, "worker.mjs"))
      const data = new URL(`data:text/javascript,${encodeURIComponent(workerFile(`"data"`))}`)
      for (const [worker, answer] of [[file, "file"], [data, "data"]] as const) {
        const pool = yield* ThreadPool.make({ worker, threads: 1, startSchedule: Schedule.recurs(0) })
        // a URL object is mutable: the pool kept it, and each thread it started later ran what it then said
        worker.href = pathToFileURL(join(root, "nowhere.mjs")).href
        yield* pool.resize(3)
        const answers = yield* Effect.forEach([0, 1, 2, 3, 4, 5], () => pool.run(Imported, 0), { concurrency: "unbounded" })
        assert.deepStrictEqual(new Set(answers.map(([first]) => first)), new Set([answer]))
        yield* pool.shutdown
      }
    }))
})

describe("worker files of each module format, run as their thread's main module", () => {
  /** A CommonJS worker file (JavaScript or TypeScript): its task answers how it was started. */
  const commonJs = (typed: boolean) => `const Effect = require(${JSON.stringify(fileURLToPath(import.meta.resolve("effect/Effect")))})
const Task = require(${JSON.stringify(fileURLToPath(new URL("../src/Task.ts", import.meta.url)))})
const ThreadWorker = require(${JSON.stringify(fileURLToPath(new URL("../src/ThreadWorker.ts", import.meta.url)))})
const { Imported } = require(${JSON.stringify(fileURLToPath(new URL("./fixtures/thread-main-tasks.ts", import.meta.url)))})
const main${typed ? ": boolean" : ""} = require.main === module
ThreadWorker.serve([Task.handle(Imported, () => Effect.succeed([process.argv[1], String(main), __dirname]))])
`
  const files: Record<string, string> = {
    "package.json": JSON.stringify({ type: "module" }),
    "plain.cjs": commonJs(false),
    "typed.cts": commonJs(true),
    "commonjs/package.json": JSON.stringify({ type: "commonjs" }),
    "commonjs/worker.js": commonJs(false),
    // top-level await before serve, in TypeScript, in a "type": "module" package
    "awaits.mts": workerFile(`process.argv[1], String(import.meta.main), import.meta.dirname`).replace(
      "ThreadWorker.serve(",
      "const dirname: string = await Promise.resolve(import.meta.dirname)\nThreadWorker.serve("
    )
  }

  it.live(".cjs, .cts, .js in a \"type\": \"commonjs\" package, and .mts with top-level await", () =>
    Effect.gen(function*() {
      const root = temporary()
      for (const [path, text] of Object.entries(files)) {
        mkdirSync(dirname(join(root, path)), { recursive: true })
        writeFileSync(join(root, path), text)
      }
      for (const path of ["plain.cjs", "typed.cts", "commonjs/worker.js", "awaits.mts"]) {
        const file = join(root, path)
        const answer = yield* Effect.scoped(Effect.andThen(
          ThreadPool.make({ worker: file, threads: 1, startSchedule: Schedule.recurs(0) }),
          (pool) => pool.run(Imported, 0)
        ))
        assert.deepStrictEqual(answer.slice(0, 3), [file, "true", dirname(file)], path)
      }
    }))
})

describe("a worker file between two pools of one process", () => {
  it.live("deleted since the first pool: the second's make fails with InvalidPoolConfig, not every start", () =>
    Effect.gen(function*() {
      const root = temporary()
      const file = join(root, "worker.mjs")
      writeFileSync(file, workerFile(`"here"`))
      for (const worker of [file, "./worker.mjs"]) {
        const cwd = process.cwd()
        process.chdir(root)
        const first = yield* Effect.scoped(Effect.andThen(
          ThreadPool.make({ worker, threads: 1, startSchedule: Schedule.recurs(0) }),
          (pool) => pool.run(Imported, 0)
        )).pipe(Effect.ensuring(Effect.sync(() => process.chdir(cwd))))
        assert.strictEqual(first[0], "here")
        rmSync(file)
        process.chdir(root)
        // require's cache of resolved paths still gave the file, and every start then failed
        const error = yield* Effect.flip(Effect.scoped(ThreadPool.make({ worker, threads: 1, startSchedule: Schedule.recurs(0) })))
          .pipe(Effect.ensuring(Effect.sync(() => process.chdir(cwd))))
        assert.instanceOf(error, PoolError.InvalidPoolConfig, worker)
        assert.include(error.message, `${file} does not exist`)
        writeFileSync(file, workerFile(`"here"`))
      }
    }))

  it.live("changed on disk (same length, same place): the second pool's thread runs the new text, not the compile cache's", () =>
    Effect.gen(function*() {
      const root = temporary()
      // the cache keeps V8's code for JavaScript, and the stripped text for TypeScript
      for (const [name, value] of [["worker.mjs", ""], ["worker.mts", " as string"]] as const) {
        const file = join(root, name)
        writeFileSync(file, workerFile(`"version A"${value}`))
        const run = Effect.scoped(Effect.andThen(
          ThreadPool.make({ worker: file, threads: 1, startSchedule: Schedule.recurs(0) }),
          (pool) => pool.run(Imported, 0)
        ))
        const first = yield* run
        writeFileSync(file, readFileSync(file, "utf8").replace(`"version A"`, `"version B"`))
        const second = yield* run
        assert.deepStrictEqual([first, second], [["version A", "true"], ["version B", "true"]], name)
      }
    }))
})

describe("a process that took its NODE_OPTIONS out of process.env (its threads' env is a copy of it)", () => {
  // test/fixtures/thread-start: register.cjs registers hooks.mjs, which answers "./dep.mjs" from b.mjs
  // with dep-b.mjs. The preload runs in every thread whatever process.env says; the start's resolve
  // cache, in front of such hooks, must stay off (it would give b.mjs the answer a.mjs got)
  // an --import preload registers its hook while the thread starts, through module.register, which
  // removes the cache whatever the flags say
  it.each(["--require ./register.cjs", "--import ./register.mjs"])("%s: the thread's resolve cache stays out of the way, each importer gets the hook's answer, as in a plain Worker", async (options) => {
    const dir = fileURLToPath(new URL("./fixtures/thread-start/", import.meta.url))
    const printed = await new Promise<string>((resolve, reject) =>
      execFile(
        process.execPath,
        ["unset-options.mjs", "./worker.mjs"],
        { cwd: dir, env: { ...process.env, NODE_OPTIONS: options } },
        (error, stdout, stderr) => error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout)
      )
    )
    assert.deepStrictEqual(JSON.parse(printed), ["dep", "dep-b"])
  }, 60_000)

  // KNOWN BUG: a --loader (or --experimental-loader) given in NODE_OPTIONS and then taken out of
  // process.env still answers in every thread (a plain Worker gets dep-b), but the bootstrap finds
  // loaders in the flags only, and nothing of a loader shows in the thread (it runs on Node's hooks
  // thread): the resolve cache stays on and gives b.mjs the dep.mjs a.mjs got. --loader is
  // deprecated for --import with module.register, which the cache sees (threadMain.ts).
  it.fails("a --loader: each importer gets the hook's answer, as in a plain Worker", async () => {
    const dir = fileURLToPath(new URL("./fixtures/thread-start/", import.meta.url))
    const printed = await new Promise<string>((resolve, reject) =>
      execFile(
        process.execPath,
        ["unset-options.mjs", "./worker.mjs"],
        { cwd: dir, env: { ...process.env, NODE_OPTIONS: "--no-warnings --experimental-loader ./hooks.mjs" } },
        (error, stdout, stderr) => error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout)
      )
    )
    assert.deepStrictEqual(JSON.parse(printed), ["dep", "dep-b"])
  }, 60_000)
})

describe("a pnpm project's worker file, with the start's resolve cache and without", () => {
  // in processes of their own: vitest has a --require preload, which turns the cache off;
  // preload.cjs does the same for the run without it
  const main = fileURLToPath(new URL("./fixtures/thread-start/main.mjs", import.meta.url))
  const run = (worker: URL, flags: ReadonlyArray<string>) =>
    new Promise<ReadonlyArray<string>>((resolve, reject) =>
      execFile(process.execPath, [...flags, main, worker.href], { cwd: dirname(main) }, (error, stdout, stderr) =>
        error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(JSON.parse(stdout)))
    )

  it("each package gets its own version of a dependency, conditional exports and self-references resolve as Node resolves them", async () => {
    const { root, worker } = writePnpm()
    onTestFinished(() => rmSync(root, { recursive: true, force: true }))
    const url = pathToFileURL(root).href
    const store = `${url}/node_modules/.pnpm`
    for (const conditions of [[], ["--conditions=development"]]) {
      const cached = await run(worker, conditions)
      assert.deepStrictEqual(cached, await run(worker, [...conditions, "--require", "./preload.cjs"]), conditions.join())
      assert.deepStrictEqual(cached, [
        "self import",
        conditions.length === 0 ? "lib" : "lib development",
        "dep 1 import",
        "dep 2 import",
        "dep 2 require",
        "self require",
        "dep 1 require",
        "dep 1 import",
        `${store}/dep@1.0.0/node_modules/dep/index.mjs`,
        `${store}/other@1.0.0/node_modules/other/index.js`,
        `${url}/${conditions.length === 0 ? "lib.js" : "lib-dev.js"}`
      ], conditions.join())
    }
  }, 120_000)
})
