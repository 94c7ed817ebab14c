/**
 * Runs every example that ends by itself as a child process, with a small workload, and checks
 * that it exits with 0 and prints what it should. A broken example fails CI here.
 *
 * Only lines that do not depend on timing are checked (no "B started in time"), so a loaded
 * machine makes this slower, not flaky. It makes it a lot slower: on a busy machine a process gets
 * a small share of a core, so each run's wall time is its CPU time times the contention. Hence the
 * workloads are the smallest that still show each example's point (a few hundred pages, small
 * photos), at most one example per core runs at a time (`maxConcurrency` in vitest.config.ts: with
 * more, a test's time would include its neighbours' CPU), and the limits below are generous.
 * The web server has its own test (web-server.test.ts), and so do the exporter recipes
 * (prometheus.ts, otlp.ts: exporters.test.ts, against receivers on loopback).
 */
import { describe, expect, it } from "@effect/vitest"
import { decode } from "jpeg-js"
import { execFile } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

// Node 24 runs the .ts files directly; vitest itself may run on an older node.
const node = existsSync("node_modules/.bin/node") ? "node_modules/.bin/node" : process.execPath

// An example that is still running after this is killed, and its test fails showing its output so
// far; the test's own limit is longer, so that this, not a bare "timed out", is what is reported.
const killAfterMillis = 80_000
const testTimeout = 90_000

const run = (example: string, env: Record<string, string> = {}, args: ReadonlyArray<string> = []) =>
  new Promise<{ code: number | string; output: string }>((resolve) => {
    const script = fileURLToPath(new URL(`../../examples/${example}.ts`, import.meta.url))
    const { DEBUG: _debug, ...inherited } = process.env // DEBUG changes hash-words' output
    const options = { env: { ...inherited, ...env }, timeout: killAfterMillis }
    execFile(node, [script, ...args], options, (error, stdout, stderr) => {
      const code = error === null
        ? 0
        : error.killed
        ? `killed after ${killAfterMillis} ms`
        : typeof error.code === "number"
        ? error.code
        : -1
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

describe.concurrent("examples run and exit 0", { timeout: testTimeout }, () => {
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
      "C       timed out while queued (limit 200 ms)",
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
    expectRun("scraper", ["scraping 400 pages from http://127.0.0.1:", "done: 400 pages, 4 failed", "live heap stayed between"], {
      PAGES: "400",
      WORKERS: "20"
    }))

  it("thumbnails: 4 photos and a broken file on 2 threads", async () => {
    const out = mkdtempSync(join(tmpdir(), "effect-workpool-thumbnails-test-"))
    try {
      const output = await expectRun("thumbnails/main", [
        "2 threads ready",
        "made 4 sample photos",
        "✗ corrupt.jpg  NotAJpeg: SOI not found",
        `4 thumbnails written to ${join(out, "thumbs")}, 1 failed, in `,
        "transfer: 5 of 5 source buffers were moved to the threads, not copied"
      ], { IMAGES: "4", THREADS: "2", PHOTO: "500", OUT: out })
      expect(output.match(/^✓ photo-0\d\.jpg {2}\d+×\d+ \(\d+ KB\) → \d+×\d+/gm)).toHaveLength(4)
      // the files on disk are real JPEGs of the promised size: every fourth photo is a portrait
      const sizes = ["photo-01.jpg", "photo-02.jpg", "photo-03.jpg", "photo-04.jpg"].map((name) => {
        const image = decode(readFileSync(join(out, "thumbs", name)), { useTArray: true })
        return [image.width, image.height]
      })
      expect(sizes).toEqual([[200, 160], [200, 160], [200, 160], [160, 200]])
      expect(decode(readFileSync(join(out, "photos", "photo-04.jpg")), { useTArray: true }).width).toBe(400)
    } finally {
      rmSync(out, { recursive: true, force: true })
    }
  })

  it("hashing: main thread, 1 thread and 2 threads agree", async () => {
    const output = await expectRun("hashing/main", [
      "hashing 8 random words, 2000 rounds of sha256 each",
      "sha256.ts agrees with node:crypto",
      // seeded words: the same settings give the same checksum on every run and every machine
      "checksums match: a5d66329ef32cddf"
    ], { JOBS: "8", ROUNDS: "2000", THREADS: "2" })
    expect(output).toMatch(/^main thread +\d+\.\d\d s {3}checksum a5d66329ef32cddf {3}longest event-loop stall \d+ ms$/m)
    expect(output).toMatch(/^1 thread +\d+\.\d\d s {3}checksum a5d66329ef32cddf {3}longest event-loop stall \d+ ms$/m)
    expect(output).toMatch(/^2 threads +\d+\.\d\d s {3}checksum a5d66329ef32cddf {3}longest event-loop stall \d+ ms$/m)
    expect(output).toMatch(/^speedup of 2 threads over 1 thread: \d+\.\d\dx$/m)
  })

  it("demo, with its dashboard", async () => {
    const output = await expectRun("demo", ["pool up: 4 workers", "summary", "pool accounting: 60 submitted = 60 finished"], {
      JOBS: "60"
    })
    expect(output).toMatch(/dashboard: http:\/\/127\.0\.0\.1:\d+\/#token=[0-9a-f]{32} \(open it while the demo runs\)/)
  })

  it("demo --no-dashboard", async () => {
    const output = await expectRun("demo", ["pool up: 4 workers", "pool accounting: 60 submitted = 60 finished"], {
      JOBS: "60"
    }, ["--no-dashboard"])
    expect(output).not.toContain("dashboard:")
  })
})
