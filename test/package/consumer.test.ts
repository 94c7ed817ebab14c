/**
 * The package as a consumer gets it: `npm pack` (its prepack builds dist/), the tarball installed
 * next to `effect` in a scratch project outside the repository, then the consumer's own files from
 * test/package/consumer/ are run, typechecked and bundled there. Nothing here imports src/: what is
 * tested is what npm would publish.
 *
 * Each check is a test of its own, so a failure names the runtime, the resolution mode or the
 * bundle that broke, with the program's output. Child processes are awaited, never timed. The
 * browser bundle runs in a node:vm context without Node's globals and in headless Chromium
 * (installed by .ci/run; outside CI that one check is skipped where Chromium is missing).
 */
import * as esbuild from "esbuild"
import { execFile } from "node:child_process"
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import * as vm from "node:vm"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const repo = fileURLToPath(new URL("../..", import.meta.url))
const bin = (name: string) => join(repo, "node_modules", ".bin", name)
const node24 = bin("node")
const node20 = "/usr/bin/node" // the machine's own Node, 20 on this project's machines
const versionOf = (name: string) =>
  (JSON.parse(readFileSync(join(repo, "node_modules", name, "package.json"), "utf8")) as { version: string }).version

// What the consumer's programs print when all is as it should be (see consumer/*.mjs).
const WORKPOOL_OK = `workpool ok {"order":["high","mid","low"],"results":["LOW","HIGH","MID"],` +
  `"overflow":"QueueFull true","sameModules":true,"task":"Echo"}`
const THREADS_OK = `threads ok {"squares":[1,4,9],"failure":"Negative -1","internals":"ERR_PACKAGE_PATH_NOT_EXPORTED"}`
const REQUIRE_OK = `require ok {"entries":true,"fiber":42,"thread":25}`
const DASHBOARD_OK = `dashboard ok {"page":200,"snapshot":200,"noToken":401}`
const storeOk = (store: string) => `store ${store} ok {"result":7,"succeeded":1}`

// the servers the stores' tests use (.ci/run sets both); without them those checks are skipped
const PG_URL = process.env.WORKPOOL_PG_URL ?? ""
const REDIS_URL = process.env.WORKPOOL_REDIS_URL ?? ""

// npm's scripts export npm_config_local_prefix and friends: an npm started with them would
// install into this repository instead of the scratch project.
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("npm_")))

const INSTALL_TIMEOUT = 600_000 // npm pack and npm install are I/O: generous, never tight
const CHECK_TIMEOUT = 180_000
const TEST_TIMEOUT = CHECK_TIMEOUT + 30_000

/**
 * Runs a command to its end; resolves with its exit code (or signal) and everything it printed. The
 * deadline only keeps a hung child (a browser, say) from outliving its test.
 */
const run = (file: string, args: ReadonlyArray<string>, cwd: string, timeout: number) =>
  new Promise<{ code: number | string; output: string }>((resolve) => {
    const options = { cwd, env: cleanEnv, maxBuffer: 64 * 1024 * 1024, timeout, killSignal: "SIGKILL" as const }
    execFile(file, args, options, (error, stdout, stderr) => {
      const code = error === null ? 0 : (error.code ?? error.signal ?? "failed to start")
      resolve({ code, output: `${stdout}${stderr}${error !== null && error.code === "ENOENT" ? error.message : ""}` })
    })
  })

/** Runs a command that must succeed, and returns its output; otherwise fails with what it printed. */
const succeed = async (
  what: string,
  file: string,
  args: ReadonlyArray<string>,
  cwd: string,
  timeout = CHECK_TIMEOUT
) => {
  const { code, output } = await run(file, args, cwd, timeout)
  if (code !== 0) throw new Error(`${what} exited with ${code}:\n${output}`)
  return output
}

// TypeScript 7 is the project's own; consumers still on 5.x get the same declarations
const TYPESCRIPT_5 = "5.9.3"

const CHROMIUM = "/usr/bin/chromium"
// as root, without a sandbox; the background-networking flags keep it off this machine's closed network
const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync"
]
// the page shows what the program prints, and a script error as a failure
const BROWSER_PAGE = `<!doctype html>
<html><body><pre id="out"></pre>
<script>
  const out = document.getElementById("out")
  console.log = (...args) => { out.textContent += args.join(" ") + "\\n" }
  addEventListener("error", (event) => console.log("workpool FAILED " + event.message))
</script>
<script src="bundle-browser.js"></script>
</body></html>
`

describe("the packed package in a consumer's project", () => {
  let project = ""
  let tarball = ""

  beforeAll(async () => {
    project = mkdtempSync(join(tmpdir(), "effect-workpool-consumer-"))
    const pack = ["pack", "--pack-destination", project]
    await succeed("npm pack (prepack builds dist/)", "npm", pack, repo, INSTALL_TIMEOUT)
    tarball = readdirSync(project).find((file) => file.endsWith(".tgz")) ?? ""
    if (tarball === "") throw new Error(`npm pack left no tarball in ${project}`)
    writeFileSync(join(project, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }))
    cpSync(fileURLToPath(new URL("consumer", import.meta.url)), project, { recursive: true })
    await succeed("npm install of the tarball", "npm", [
      "install",
      "--prefer-offline",
      "--no-audit",
      "--no-fund",
      "--loglevel=error",
      `./${tarball}`,
      `effect@${versionOf("effect")}`,
      // the optional peers of PgJobStore, RedisJobStore and Dashboard
      `@effect/sql-pg@${versionOf("@effect/sql-pg")}`,
      `@effect/platform-node@${versionOf("@effect/platform-node")}`,
      `redis@${versionOf("redis")}`,
      `@types/node@${versionOf("@types/node")}`,
      `typescript@${TYPESCRIPT_5}`
    ], project, INSTALL_TIMEOUT)
  }, 2 * INSTALL_TIMEOUT + 30_000)

  afterAll(() => {
    if (project !== "") rmSync(project, { recursive: true, force: true })
  })

  describe("plain JavaScript (.mjs)", () => {
    it("WorkPool on Node 24", { timeout: TEST_TIMEOUT }, async () => {
      expect(await succeed("node --version", node24, ["--version"], project)).toMatch(/^v24\./)
      expect(await succeed("workpool.mjs on Node 24", node24, ["workpool.mjs"], project)).toContain(WORKPOOL_OK)
    })

    it("WorkPool on the machine's Node 20", { timeout: TEST_TIMEOUT }, async () => {
      expect(await succeed(`${node20} --version`, node20, ["--version"], project)).toMatch(/^v20\./)
      expect(await succeed("workpool.mjs on Node 20", node20, ["workpool.mjs"], project)).toContain(WORKPOOL_OK)
    })

    it("JobStore.sqlite: opens on Node 24; on Node 20 (no node:sqlite) the package loads and the store fails typed", { timeout: TEST_TIMEOUT }, async () => {
      expect(await succeed("sqlite.mjs on Node 24", node24, ["sqlite.mjs"], project)).toContain("sqlite opened 0")
      expect(await succeed("sqlite.mjs on Node 20", node20, ["sqlite.mjs"], project)).toContain("sqlite StoreError true")
    })

    it("ThreadPool with the consumer's own worker file, on Node 24", { timeout: TEST_TIMEOUT }, async () => {
      expect(await succeed("threads.mjs on Node 24", node24, ["threads.mjs"], project)).toContain(THREADS_OK)
    })

    it("ThreadPool with the consumer's own worker file, on Node 20", { timeout: TEST_TIMEOUT }, async () => {
      expect(await succeed("threads.mjs on Node 20", node20, ["threads.mjs"], project)).toContain(THREADS_OK)
    })
  })

  describe("the tarball", () => {
    it("ships dist, src, docs, README, LICENSE and CHANGELOG, and nothing of the repository's own", { timeout: TEST_TIMEOUT }, async () => {
      const files = (await succeed("tar", "tar", ["-tzf", tarball], project)).split("\n").filter((line) => line !== "")
      const top = new Set(files.map((file) => file.replace(/^package\//, "").split("/")[0]))
      expect([...top].sort()).toEqual(["CHANGELOG.md", "LICENSE", "README.md", "dist", "docs", "package.json", "src"])
      expect(files.filter((file) => /\.test\.|\.tsbuildinfo$|\.env|\.tgz$/.test(file))).toEqual([])
    })

    // A user who found the package on npm reads its README there or in node_modules: its links to the
    // guides (docs/durable.md, docs/threads.md, ...) and theirs to one another and to their images
    // led nowhere, as docs/ was not shipped. Links into examples/, test/ and bench/ are the
    // repository's (the README's Quick start says "from a clone").
    it("every link of the shipped README and docs into docs/ resolves in the installed package", () => {
      const installed = join(project, "node_modules", "effect-workpool")
      const pages = ["README.md", ...(existsSync(join(installed, "docs")) ? readdirSync(join(installed, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`) : [])]
      const dead = pages.flatMap((page) =>
        [...readFileSync(join(installed, page), "utf8").matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)]
          .map((match) => match[1]!)
          .filter((target) => !/^[a-z]+:/.test(target))
          .map((target) => ({ page, target, path: join(installed, page, "..", target) }))
          .filter(({ path }) => path.startsWith(join(installed, "docs")))
          .filter(({ path }) => !existsSync(path))
          .map(({ page, target }) => `${page}: ${target}`)
      )
      expect(dead).toEqual([])
      expect(pages.length).toBeGreaterThan(1)
    })

    // a const initialised with a template literal of constants gets its whole text as its declared type
    it("no declaration carries a script's text as a literal type", () => {
      const dist = join(project, "node_modules", "effect-workpool", "dist")
      const long = readdirSync(dist, { recursive: true, encoding: "utf8" })
        .filter((file) => file.endsWith(".d.ts"))
        .flatMap((file) =>
          readFileSync(join(dist, file), "utf8").split("\n").filter((line) => line.length > 500)
            .map((line) => `${file}: ${line.slice(0, 80)}... (${line.length} characters)`)
        )
      expect(long).toEqual([])
    })

    it("every exports target is in the installed package", () => {
      const installed = join(project, "node_modules", "effect-workpool")
      const manifest = JSON.parse(readFileSync(join(installed, "package.json"), "utf8")) as {
        exports: Record<string, string | Record<string, string>>
      }
      const targets = Object.values(manifest.exports).flatMap((target) => typeof target === "string" ? [target] : Object.values(target))
      expect(targets.length).toBeGreaterThan(20)
      expect(targets.filter((target) => !existsSync(join(installed, target)))).toEqual([])
    })

    it("every source map (of the JavaScript and of the declarations) points at shipped files", () => {
      const dist = join(project, "node_modules", "effect-workpool", "dist")
      const maps = readdirSync(dist, { recursive: true, encoding: "utf8" }).filter((file) => file.endsWith(".map"))
      expect(maps.length).toBeGreaterThan(100)
      const missing = maps.flatMap((file) => {
        const map = JSON.parse(readFileSync(join(dist, file), "utf8")) as { sources: ReadonlyArray<string> }
        const generated = join(dist, file.replace(/\.map$/, ""))
        const linked = /sourceMappingURL=(\S+)/.exec(readFileSync(generated, "utf8"))?.[1]
        return [
          ...(linked === undefined || !existsSync(join(generated, "..", linked)) ? [`${file}: its file does not link it`] : []),
          ...map.sources.filter((source) => !existsSync(join(dist, file, "..", source))).map((source) => `${file}: ${source}`)
        ]
      })
      expect(missing).toEqual([])
    })
  })

  // Node's require of an ES module (20.19+, 22.12+): every entry, and a fiber and a thread job
  describe("CommonJS (.cjs)", () => {
    it("require() on Node 24", { timeout: TEST_TIMEOUT }, async () => {
      expect(await succeed("require.cjs on Node 24", node24, ["require.cjs"], project)).toContain(REQUIRE_OK)
    })

    it("require() on the machine's Node 20", { timeout: TEST_TIMEOUT }, async () => {
      expect(await succeed("require.cjs on Node 20", node20, ["require.cjs"], project)).toContain(REQUIRE_OK)
    })
  })

  describe("the durable stores and the dashboard, with their optional peers", () => {
    for (const [name, node] of [["Node 24", node24], ["Node 20", node20]] as const) {
      it(`memory store on ${name}`, { timeout: TEST_TIMEOUT }, async () => {
        expect(await succeed(`stores.mjs memory on ${name}`, node, ["stores.mjs", "memory"], project)).toContain(storeOk("memory"))
      })

      it.skipIf(PG_URL === "" && process.env.CI !== "true")(`Postgres store on ${name}`, { timeout: TEST_TIMEOUT }, async () => {
        expect(await succeed(`stores.mjs pg on ${name}`, node, ["stores.mjs", "pg"], project)).toContain(storeOk("pg"))
      })

      it.skipIf(REDIS_URL === "" && process.env.CI !== "true")(`Redis store on ${name}`, { timeout: TEST_TIMEOUT }, async () => {
        expect(await succeed(`stores.mjs redis on ${name}`, node, ["stores.mjs", "redis"], project)).toContain(storeOk("redis"))
      })

      it(`Dashboard serves its page and its API on ${name}`, { timeout: TEST_TIMEOUT }, async () => {
        expect(await succeed(`dashboard.mjs on ${name}`, node, ["dashboard.mjs"], project)).toContain(DASHBOARD_OK)
      })
    }

    it("SQLite store on Node 24", { timeout: TEST_TIMEOUT }, async () => {
      expect(await succeed("stores.mjs sqlite on Node 24", node24, ["stores.mjs", "sqlite"], project)).toContain(storeOk("sqlite"))
    })
  })

  // consumer/tsconfig.strict.json: strict, noImplicitReturns, exactOptionalPropertyTypes,
  // noUncheckedIndexedAccess, noUnusedLocals and more, with skipLibCheck off
  describe("TypeScript, strict flags, skipLibCheck off", () => {
    for (const config of ["nodenext", "bundler", "browser"]) {
      it(`typechecks with TypeScript 7 and tsconfig.${config}.json`, { timeout: TEST_TIMEOUT }, async () => {
        await succeed(`tsc 7 -p tsconfig.${config}.json`, bin("tsc"), ["-p", `tsconfig.${config}.json`], project)
      })
    }

    it("typechecks a CommonJS consumer (.cts) with TypeScript 7 and tsconfig.cjs.json", { timeout: TEST_TIMEOUT }, async () => {
      await succeed("tsc 7 -p tsconfig.cjs.json", bin("tsc"), ["-p", "tsconfig.cjs.json"], project)
    })

    it(`typechecks a CommonJS consumer (.cts) with TypeScript ${TYPESCRIPT_5} and tsconfig.cjs.json`, { timeout: TEST_TIMEOUT }, async () => {
      const tsc5 = join(project, "node_modules", ".bin", "tsc")
      await succeed(`tsc ${TYPESCRIPT_5} -p tsconfig.cjs.json`, tsc5, ["-p", "tsconfig.cjs.json"], project)
    })

    it(`typechecks with TypeScript ${TYPESCRIPT_5} and tsconfig.nodenext.json`, { timeout: TEST_TIMEOUT }, async () => {
      const tsc5 = join(project, "node_modules", ".bin", "tsc")
      expect(await succeed("tsc --version", tsc5, ["--version"], project)).toContain(`Version ${TYPESCRIPT_5}`)
      await succeed(`tsc ${TYPESCRIPT_5} -p tsconfig.nodenext.json`, tsc5, ["-p", "tsconfig.nodenext.json"], project)
    })
  })

  describe("esbuild bundles", () => {
    const bundle = (entry: string, platform: "node" | "browser") =>
      esbuild.build({
        absWorkingDir: project,
        entryPoints: [entry],
        bundle: true,
        platform,
        format: platform === "node" ? "esm" : "iife",
        write: false,
        logLevel: "silent"
      }).then((result) => result.outputFiles[0]!.text)

    it("for node: builds and runs", { timeout: TEST_TIMEOUT }, async () => {
      writeFileSync(join(project, "bundle-node.mjs"), await bundle("workpool.mjs", "node"))
      expect(await succeed("the node bundle", node24, ["bundle-node.mjs"], project)).toContain(WORKPOOL_OK)
    })

    // esbuild's own default for --platform=node is CommonJS, where import.meta is an empty object
    it("for node as CommonJS: every entry, a fiber and a thread job, builds and runs", { timeout: TEST_TIMEOUT }, async () => {
      const result = await esbuild.build({
        absWorkingDir: project,
        entryPoints: ["require.cjs"],
        bundle: true,
        platform: "node",
        format: "cjs",
        write: false,
        logLevel: "silent"
      })
      writeFileSync(join(project, "bundle-node.cjs"), result.outputFiles[0]!.text)
      expect(await succeed("the CommonJS node bundle", node24, ["bundle-node.cjs"], project)).toContain(REQUIRE_OK)
    })

    let browserBundle: Promise<string> | undefined
    const bundleForBrowser = () => (browserBundle ??= bundle("workpool.mjs", "browser"))

    it("for the browser: builds without Node's modules", { timeout: TEST_TIMEOUT }, async () => {
      // the check can fail: the thread pool needs node:os and node:worker_threads
      await expect(bundle("threads.mjs", "browser")).rejects.toThrow(/Could not resolve "node:/)
      expect(await bundleForBrowser()).toContain("WorkPool")
    })

    it("for the browser: runs in a node:vm context without Node's globals", { timeout: TEST_TIMEOUT }, async () => {
      const code = await bundleForBrowser()
      // A context with a browser's timers, TextEncoder/TextDecoder and console, and nothing of Node's.
      const printed = new Promise<string>((resolve) => {
        const print = (...args: ReadonlyArray<unknown>) => {
          const line = args.map(String).join(" ")
          if (line.startsWith("workpool ")) resolve(line)
        }
        const context = vm.createContext({
          // a browser's setTimeout returns a number, not Node's Timeout object
          setTimeout: (handler: () => void, ms?: number) => Number(setTimeout(handler, ms)),
          clearTimeout,
          queueMicrotask,
          TextEncoder,
          TextDecoder,
          console: { log: print, info: print, warn: print, error: print, debug: print }
        })
        expect(vm.runInContext(
          "[typeof process, typeof require, typeof Buffer, typeof global, typeof setImmediate].join()",
          context
        )).toBe("undefined,undefined,undefined,undefined,undefined")
        vm.runInContext(code, context, { filename: "bundle-browser.js" })
      })
      expect(await printed).toBe(WORKPOOL_OK)
    })

    // .ci/run installs Debian's chromium, so CI always runs this; elsewhere it runs where chromium is
    it.skipIf(!existsSync(CHROMIUM) && process.env.CI !== "true")(
      `for the browser: runs in headless Chromium (${CHROMIUM})`,
      { timeout: TEST_TIMEOUT },
      async () => {
        writeFileSync(join(project, "bundle-browser.js"), await bundleForBrowser())
        writeFileSync(join(project, "index.html"), BROWSER_PAGE)
        // virtual time: the page's timers run as soon as it is idle, and Chromium prints the DOM then
        const dom = await succeed("chromium", CHROMIUM, [
          ...CHROMIUM_FLAGS,
          `--user-data-dir=${join(project, "chromium-profile")}`,
          "--virtual-time-budget=60000",
          "--dump-dom",
          pathToFileURL(join(project, "index.html")).href
        ], project)
        expect(/<pre id="out">([^<]*)<\/pre>/.exec(dom)?.[1]?.trim(), dom).toBe(WORKPOOL_OK)
      }
    )
  })
})
