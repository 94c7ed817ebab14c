/**
 * How a pool's thread starts: not on the worker file itself but on a few lines of bootstrap (given
 * to `Worker` as `eval` code, so that it needs no file of its own next to a bundle) that install a
 * resolve cache, then run the worker file as Node runs a worker's main module (`Module.runMain`,
 * what Node's own worker bootstrap calls): `process.argv[1]`, `import.meta.main`, `require.main`,
 * CommonJS or ESM, and the errors of a file that fails to load are the same as without it.
 *
 * Why: a thread resolves every `import` of its module graph, once per importing module. effect's
 * modules import one another by relative specifier, so a worker file that imports effect/Effect and
 * effect/Schema resolves about 880 specifiers for 150 files, and each resolution looks at the file
 * system (a stat, a realpath, the package.json that gives the file's format). Measured on Node
 * 24.21 (bench/scenarios/09-thread-start.ts's notes): resolving was a quarter of the CPU time of a
 * thread's start. Node's answer for a relative specifier depends only on the file it names, and
 * for any other only on the directory of the module that imports it (node_modules lookups and
 * package scopes start there), so the cache gives the first answer again: 150 resolutions instead
 * of 880. It serves the start only: `ThreadWorker` removes it when the thread reports ready (see
 * `started`).
 *
 * @internal
 */
import { compileCacheFolder } from "./compileCache.ts"

/**
 * The source of a function that makes the resolve hook (`module.registerHooks`' `resolve`). Plain
 * JavaScript in a string: it runs in the thread as the bootstrap's own code, so it may not refer to
 * anything of this module (a bundler or minifier would rename or wrap such a reference). The tests
 * run this same text.
 *
 * Left to Node (not cached): `require` (it tries extensions and directories, answered differently
 * from `import`), an importer with a query or hash (module mocking hooks answer per importing
 * module), imports with attributes, and failures (each one fails as before).
 */
export const resolveCacheSource: string = `() => {
  const answers = new Map()
  return (specifier, context, nextResolve) => {
    const parent = context.parentURL
    const conditions = context.conditions
    if (
      typeof parent !== "string" || !parent.startsWith("file:") || parent.includes("?") || parent.includes("#") ||
      !Array.isArray(conditions) || !conditions.includes("import") ||
      (context.importAttributes !== undefined && Object.keys(context.importAttributes).length > 0)
    ) return nextResolve(specifier, context)
    // a relative specifier names one file whoever imports it; any other is looked up from the importer's directory
    const relative = specifier.startsWith("./") || specifier.startsWith("../") || specifier.startsWith("/")
    const where = relative ? URL.parse(specifier, parent)?.href : parent.slice(0, parent.lastIndexOf("/") + 1) + "\\u0000" + specifier
    if (where === undefined) return nextResolve(specifier, context)
    const key = conditions.join() + "\\u0000" + where
    let answer = answers.get(key)
    if (answer === undefined) {
      answer = { ...nextResolve(specifier, context), shortCircuit: true }
      answers.set(key, answer)
    }
    return { ...answer }
  }
}`

/** The key (`Symbol.for`) under which a pool's thread keeps the path of the worker file it runs. */
const OWN_ENTRY = "effect-workpool/threadEntry"

/** In a thread of a pool, the path of its worker file (none for a `data:` URL, or outside a pool's thread). */
export const ownEntry = (): string | undefined => {
  const entry = (globalThis as { readonly [key: symbol]: unknown })[Symbol.for(OWN_ENTRY)]
  return typeof entry === "string" ? entry : undefined
}

/**
 * The thread's first code, run by `Worker`'s `eval`: as a CommonJS script, or as a module when the
 * process runs with `--input-type=module` (the thread inherits it), so it takes Node's modules from
 * `process.getBuiltinModule` (Node 20.16+; `require` before that). `module.registerHooks` is Node
 * 22.15+ and 23.5+; on older Node the thread starts without the cache. A block, so that nothing of
 * it stays in the thread's global scope: once `started` ran, the cache's answers can be collected.
 *
 * The process's own asynchronous resolve hooks (`module.register`) run behind a synchronous one
 * such as the cache, and may answer per importing module (module mocking does), so the cache keeps
 * out of their way: a thread whose process has a `--require` preload or a `--loader` starts without
 * it (a preload runs before this code and may have registered hooks; a loader registers its own),
 * and a hook registered during the start, by an `--import` preload (those run after this code, when
 * the worker file is loaded) or by the worker file, first removes the cache.
 *
 * It also turns on the compile cache in `folder` (compileCache.ts; none when undefined). When it
 * was this code that turned it on (not the thread's environment, `NODE_COMPILE_CACHE`, whose cache
 * Node writes as the thread exits), the thread writes what it compiled once it is ready, after its
 * ready message: a pool's threads may live as long as the process, and a process that is killed
 * writes nothing. A thread that found everything in the cache has little to write (about 1 ms).
 */
const bootstrap = (folder: string | undefined): string => `"use strict"
{
  const builtin = typeof process.getBuiltinModule === "function" ? process.getBuiltinModule : require
  const Module = builtin("node:module")
  const data = builtin("node:worker_threads").workerData
  const later = setImmediate
  const folder = ${folder === undefined ? "undefined" : JSON.stringify(folder)}
  let cached = false
  try {
    cached = folder !== undefined && typeof Module.enableCompileCache === "function" &&
      Module.enableCompileCache(folder)?.status === Module.constants?.compileCacheStatus?.ENABLED
  } catch {}
  const flags = process.execArgv.join(" ") + " " + (process.env.NODE_OPTIONS ?? "")
  // a --require preload has run by now, so it is also in require's cache: the process may have
  // taken its NODE_OPTIONS out of process.env (this thread's env is a copy of it), and the preload
  // still runs in every thread
  const hooked = /(?:^|\\s)(?:-r|--require|--loader|--experimental-loader)(?:[=\\s]|$)/.test(flags) ||
    Object.keys(Module._cache ?? {}).length > 0
  let off = () => {}
  if (typeof Module.registerHooks === "function" && !hooked) {
    let cache = Module.registerHooks({ resolve: (${resolveCacheSource})() })
    const register = Module.register
    off = () => {
      if (cache === undefined) return
      cache.deregister()
      cache = undefined
      if (Module.register === registerAfterCache) Module.register = register
    }
    const registerAfterCache = function(...args) {
      off()
      return register.apply(this, args)
    }
    Module.register = registerAfterCache
  }
  data.started = () => {
    off()
    // an optimization: nothing it does may end the thread (Node's own calls of it do not throw)
    if (cached && typeof Module.flushCompileCache === "function") later(() => { try { Module.flushCompileCache() } catch {} })
  }
  process.argv[1] = data.main
  // for ThreadPool.make in this thread: a pool of this very file would start threads without end
  Object.defineProperty(globalThis, Symbol.for(${JSON.stringify(OWN_ENTRY)}), { value: data.main })
  Module.runMain(data.main)
}
`

/** What `new Worker` gets for an entry: the bootstrap and the worker file's path, or a `data:` URL as it is. */
export interface ThreadMain {
  readonly file: URL | string
  readonly eval: boolean
  /** The absolute path of the worker file, for the bootstrap (`ThreadData.main`). */
  readonly main: string | undefined
}

/**
 * The start of a thread on `entry`, as threadOptions.entry gives it: the worker file's absolute path,
 * or a `data:` URL, which starts as it is (it cannot import relative files: there is little to
 * resolve).
 */
export const threadMain = (entry: URL | string): ThreadMain =>
  entry instanceof URL
    ? { file: entry, eval: false, main: undefined }
    : { file: bootstrap(compileCacheFolder()), eval: true, main: entry }
