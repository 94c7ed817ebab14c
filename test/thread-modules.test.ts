/**
 * What a worker thread loads at its start: each thread loads and compiles every module its worker
 * file imports, so the thread side of the package keeps to the modules it uses (scenario 9 of the
 * benchmarks measures the start time and memory per thread this saves).
 */
import { assert, describe, it } from "@effect/vitest"
import { execFile } from "node:child_process"

const loadedByAThread = (...args: ReadonlyArray<string>): Promise<ReadonlyArray<string>> => {
  const script = new URL("./fixtures/thread-modules.ts", import.meta.url).pathname
  return new Promise((resolve, reject) =>
    execFile(process.execPath, [script, ...args], { timeout: 60_000 }, (error, stdout) =>
      error ? reject(error) : resolve(JSON.parse(stdout) as Array<string>))
  )
}

describe("the modules of a worker thread", () => {
  it("ThreadWorker and Task load neither the effect barrel nor the main thread's modules", async () => {
    const loaded = await loadedByAThread()
    const src = new URL("../src/", import.meta.url).href
    // the files of ours it loads: the thread side and nothing else
    const ours = loaded.filter((url) => url.startsWith(src)).map((url) => url.slice(src.length)).sort()
    assert.deepStrictEqual(ours, ["Task.ts", "ThreadWorker.ts", "internal/effectShapes.ts", "internal/fiberless.ts", "internal/jobInfo.ts", "internal/jsonText.ts", "internal/pace.ts", "internal/park.ts", "internal/plainCodec.ts", "internal/protocol.ts", "internal/threadSpans.ts"])
    // `effect`'s index.js imports every module of effect (about 250); a subpath import loads its own
    const barrel = loaded.filter((url) => /\/node_modules\/effect\/dist\/index\.js$/.test(url))
    assert.deepStrictEqual(barrel, [])
    assert.isTrue(loaded.some((url) => url.endsWith("/node_modules/effect/dist/Schema.js")), "loads Schema")
  }, 90_000)

  it("ThreadWorker and Task add one small module of effect's to what effect/Effect and effect/Schema load", async () => {
    // a worker file with Schema-typed tasks imports both itself, so the thread side costs about its own
    // files; a new import of, say, effect/Stream or effect/Metric in it would add dozens to every thread
    const effect = (urls: ReadonlyArray<string>) => urls.filter((url) => url.includes("/node_modules/effect/")).sort()
    const [ours, baseline] = await Promise.all([loadedByAThread(), loadedByAThread("effect")])
    const extra = effect(ours).filter((url) => !baseline.includes(url)).map((url) => url.replace(/.*\/effect\/dist\//, ""))
    // effect/Fiber (11 KB, no import of its own beyond effect/Effect's): ThreadWorker's close interrupts its fibers with it
    assert.deepStrictEqual(extra, ["Fiber.js"])
    assert.isAbove(effect(baseline).length, 100)
  }, 90_000)
})
