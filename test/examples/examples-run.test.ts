/**
 * Runs every example that ends by itself as a child process, with a small workload, and checks
 * that it exits with 0 and prints what it should. A broken example fails CI here.
 *
 * Only lines that do not depend on timing are checked (no "B started in time"), so a loaded
 * machine makes this slower, not flaky. The web server has its own test (web-server.test.ts).
 */
import { describe, expect, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import { existsSync } from "node:fs"
import { fileURLToPath } from "node:url"

// Node 24 runs the .ts files directly; vitest itself may run on an older node.
const node = existsSync("node_modules/.bin/node") ? "node_modules/.bin/node" : process.execPath

const run = (example: string, env: Record<string, string> = {}, args: ReadonlyArray<string> = []) =>
  new Promise<{ code: number; output: string }>((resolve) => {
    const script = fileURLToPath(new URL(`../../examples/${example}.ts`, import.meta.url))
    const { DEBUG: _debug, ...inherited } = process.env // DEBUG changes hash-words' output
    execFile(node, [script, ...args], { env: { ...inherited, ...env }, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1
      resolve({ code, output: stdout + stderr })
    })
  })

const expectRun = async (
  example: string,
  expected: ReadonlyArray<string>,
  env: Record<string, string> = {},
  args: ReadonlyArray<string> = []
) => {
  const { code, output } = await run(example, env, args)
  expect({ code, output }).toMatchObject({ code: 0 })
  for (const line of expected) expect(output).toContain(line)
  return output
}

describe.concurrent("examples run and exit 0", () => {
  it("dispatcher", () =>
    expectRun("dispatcher", ["user 2: grace", "no user 42", "batch 7 was empty", "8 batches, grand total 820"]))

  it("hash-words, with DEBUG and a worker count from argv", async () => {
    const output = await expectRun("hash-words", ["hashing 12 words with 3 workers", "hashed 12 words"], {
      JOBS: "12",
      WORK_MS: "5",
      DEBUG: "true"
    }, ["3"])
    expect(output.match(/^worker \[[1-3]\] - created hash \[\d+\] from word \[[a-zA-Z]{8}\]$/gm)).toHaveLength(12)
  })

  it("hash-words rejects an invalid worker count", async () => {
    const { code, output } = await run("hash-words", { JOBS: "1", WORK_MS: "1" }, ["0"])
    expect(code).toBe(1)
    expect(output).toContain("InvalidPoolConfig")
  })

  it("results-and-errors", () =>
    expectRun("results-and-errors", [
      "with Effect.result: 18 ok, 2 typed errors",
      "with Effect.exit: 17 successful, 2 errors, 1 defects",
      "fail fast: runAll failed with TaskFailed: task 7 failed"
    ], { JOBS: "20" }))

  it("cancellation", async () => {
    const output = await expectRun("cancellation", [
      "1. interrupted the caller of runAll",
      "still running: 0, still queued: 0",
      "2. shutdownNow returned",
      "x shutdown while running",
      "a new job is refused: PoolShutdown (admission)",
      "all cancelled work stopped"
    ], { JOBS: "12" })
    // Four workers: at most the four running jobs were interrupted; the queued ones never started.
    expect(output).toMatch(/interrupted while running: [0-4]\n/)
  })

  it("timeouts", () =>
    expectRun("timeouts", [
      "ping    timed out while running (limit 10 ms)",
      "report  finished after 300 ms",
      "pricing stale price from the cache",
      "C       timed out while queued (limit 150 ms)",
      "D       finished after 100 ms"
    ]))

  it("priority", () =>
    expectRun("priority", [
      "1. queued by priority: 4 at priority 10, 4 at priority 0",
      "run order: high-1 high-2 high-3 high-4 low-1 low-2 low-3 low-4",
      "2. without aging, the low job ran as #",
      "with aging 10 ms, the low job ran as #"
    ], { JOBS: "20" }))

  it("progress", () =>
    expectRun("progress", [
      "[....................]   0% 0/40 done",
      "[####################] 100% 40/40 done | 0 running, 0 queued, 2 failed",
      "done: 38 thumbnails, 2 failures"
    ], { JOBS: "40" }))

  it("layered-app", () =>
    expectRun("layered-app", [
      "published 4 thumbnails",
      "no such image: cat.gif",
      "gave up on panorama.tiff after 1000 ms"
    ]))

  it("scraper", () =>
    expectRun("scraper", ["scraping 2000 pages from http://127.0.0.1:", "done: 2000 pages, 2 failed", "live heap stayed between"], {
      PAGES: "2000",
      WORKERS: "20"
    }))

  it("demo", () =>
    expectRun("demo", ["pool up: 4 workers", "summary", "pool accounting: 60 submitted = 60 finished"], { JOBS: "60" }))
})
