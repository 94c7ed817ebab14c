/**
 * examples/durable.ts: in one process (two consumers and a producer on one SQLite file), and as
 * two processes, the way its header says to run it in two terminals. Waits for output and exits,
 * never for time.
 */
import { execFile, spawn } from "node:child_process"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, describe, expect, it } from "vitest"
import * as pg from "../durable/postgres.ts"

const node = existsSync("node_modules/.bin/node") ? "node_modules/.bin/node" : process.execPath
const script = fileURLToPath(new URL("../../examples/durable.ts", import.meta.url))
const dir = mkdtempSync(join(tmpdir(), "durable-example-test-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const run = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  new Promise<{ code: number | string; output: string }>((resolve) => {
    execFile(node, [script, ...args], { env: { ...process.env, ...env }, timeout: 80_000 }, (error, stdout, stderr) =>
      resolve({ code: error === null ? 0 : (error.code ?? error.signal ?? -1) as number | string, output: stdout + stderr }))
  })

const summary = [
  "enqueued 12 jobs; enqueuing the reminder again gave the same job: true",
  "11 sent, 1 bounced (dead letters: 1)",
  "queue \"mail\": 11 succeeded, 1 dead, 0 waiting"
]

describe("examples/durable.ts", { timeout: 90_000 }, () => {
  it("in one process: two consumers and a producer share a file", async () => {
    const { code, output } = await run([])
    expect({ code, output }).toMatchObject({ code: 0 })
    for (const line of ["consumer A: consuming queue \"mail\"", "consumer B: consuming queue \"mail\"", ...summary]) {
      expect(output).toContain(line)
    }
  })

  const twoProcesses = async (env: Record<string, string>) => {
    const consumer = spawn(node, [script, "consume"], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] })
    let consumerOutput = ""
    const ready = new Promise<void>((resolve) =>
      consumer.stdout.on("data", (chunk: Buffer) => {
        consumerOutput += chunk.toString()
        if (consumerOutput.includes("consuming queue")) resolve()
      })
    )
    consumer.stderr.on("data", (chunk: Buffer) => (consumerOutput += chunk.toString()))
    const exited = new Promise<number | null>((resolve) => consumer.on("exit", (code) => resolve(code)))
    try {
      await ready
      const { code, output } = await run(["produce", "12"], env)
      expect({ code, output }).toMatchObject({ code: 0 })
      for (const line of summary) expect(output).toContain(line)
    } finally {
      consumer.kill("SIGTERM")
    }
    // SIGTERM is a stop asked for: after the consumer's graceful shutdown the exit is clean (0), not
    // runMain's "killed by a signal" (130)
    expect([await exited, consumerOutput]).toEqual([0, expect.stringContaining("consumer stopped")])
  }

  it("in two processes: a consumer process does the jobs of a producer process", () => twoProcesses({ DB: join(dir, "two.db") }))

  it.skipIf(!pg.enabled)("in two processes on Postgres: one environment variable, DATABASE_URL", () =>
    twoProcesses({ DATABASE_URL: pg.url!, SCHEMA: pg.freshSchema() }))
})
