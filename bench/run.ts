/**
 * `npm run bench [-- --quick] [-- --only=1,3] [-- --reps=N]`, or `-- --render` to re-render the docs
 * from bench/results/latest.json.
 *
 * Runs every contestant of every scenario in bench/scenarios/ (one file per scenario, found by
 * listing the folder), each measurement in a fresh child process so that one library's garbage and
 * JIT state never touch another's. Repetitions are interleaved (repetition 1 of everything, then
 * repetition 2, ...) and the contestant order rotates each repetition, so slow drift of a noisy
 * machine spreads over all contestants instead of landing on one.
 *
 * A full, unfiltered run writes bench/results/latest.json, docs/benchmarks.md and docs/charts/*.svg.
 * --quick (the CI smoke test: smaller sizes, 3 repetitions, fewer for the thread scenarios) and --only write
 * bench/results/quick.json or partial.json and leave the docs alone. The exit code is 1 if any
 * checksum was wrong or any child crashed; timings are never asserted.
 */
import { execFileSync, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import type { ChildResult } from "./child.ts"
import type { Scenario } from "./common.ts"
import { type Measurement, renderChart, renderMarkdown, renderTables, type Report, summarize } from "./report.ts"

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.dirname(here)

const args = process.argv.slice(2)
const resultsDir = path.join(here, "results")

/** Writes docs/benchmarks.md and docs/charts/ from a full run's report. */
const writeDocs = (report: Report) => {
  const docs = path.join(root, "docs")
  fs.mkdirSync(path.join(docs, "charts"), { recursive: true })
  for (const s of report.scenarios) {
    const svg = renderChart(s)
    if (svg !== undefined) fs.writeFileSync(path.join(docs, "charts", `scenario-${s.id}.svg`), svg)
  }
  fs.writeFileSync(path.join(docs, "benchmarks.md"), renderMarkdown(report))
  console.error("wrote docs/benchmarks.md and docs/charts/")
}

// --render: only re-render the docs from bench/results/latest.json (after changing the report's layout)
if (args.includes("--render")) {
  writeDocs(JSON.parse(fs.readFileSync(path.join(resultsDir, "latest.json"), "utf8")) as Report)
  process.exit(0)
}
const quick = args.includes("--quick")
const only = args.find((a) => a.startsWith("--only="))?.slice("--only=".length).split(",")
const repsArg = args.find((a) => a.startsWith("--reps="))
const reps = repsArg === undefined ? (quick ? 3 : 5) : Number(repsArg.slice("--reps=".length))
const mode = quick ? "quick" : "full"
// A child that hangs has lost a job: stop it and count it as a crash.
const childTimeoutMs = (scenario: Scenario) => scenario.childTimeoutMs?.[mode] ?? (quick ? 30_000 : 180_000)

const scenarioDir = path.join(here, "scenarios")
const files = fs.readdirSync(scenarioDir).filter((f) => f.endsWith(".ts")).sort()
const scenarios: Array<{ file: string; scenario: Scenario }> = []
for (const f of files) {
  const file = path.join(scenarioDir, f)
  const { scenario } = (await import(pathToFileURL(file).href)) as { scenario: Scenario }
  if (only === undefined || only.includes(scenario.id)) scenarios.push({ file, scenario })
}
const runnable = scenarios.filter((s) => s.scenario.pending === undefined)

const version = (pkg: string): string => {
  try {
    return (JSON.parse(fs.readFileSync(path.join(root, "node_modules", pkg, "package.json"), "utf8")) as { version: string }).version
  } catch {
    return "?"
  }
}
const git = (...gitArgs: Array<string>): string => {
  try {
    return execFileSync("git", gitArgs, { cwd: root, encoding: "utf8" }).trim()
  } catch {
    return "?"
  }
}
const ours = (JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as { version: string }).version
const dirty = git("status", "--porcelain", "--", "src") === "" ? "" : ", src modified"
const libraries = new Set(scenarios.flatMap((s) => s.scenario.contestants.map((c) => c.library)))
const versions: Record<string, string> = { node: process.version }
for (const lib of libraries) {
  if (lib === "effect-workpool") versions[lib] = `${ours} (commit ${git("rev-parse", "--short", "HEAD")}${dirty})`
  else if (lib !== "node") versions[lib] = version(lib)
}

const cpus = os.cpus()
const machine = {
  cpu: cpus[0]?.model ?? "?",
  cores: cpus.length,
  memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
  node: process.version,
  os: `${os.type()} ${os.release()} ${os.arch()}`,
  loadAverageAtStart: os.loadavg().map((l) => Math.round(l * 100) / 100)
}

const childPath = path.join(here, "child.ts")
const compileCache = path.join(os.tmpdir(), "effect-workpool-bench-compile-cache")
const measurements: Array<Measurement> = []
/** Repetitions of a scenario: a scenario may take fewer (the thread scenarios in --quick, the durable one). */
const repsOf = (scenario: Scenario) => Math.min(reps, (quick ? scenario.quick?.reps : scenario.full?.reps) ?? reps)
const total = runnable.reduce((n, s) => n + repsOf(s.scenario) * s.scenario.contestants.length, 0)
const started = Date.now()
console.error(`bench: ${mode}, ${reps} repetitions, ${total} measurements, each in its own process`)

const runChild = (file: string, scenario: Scenario, contestant: string, rep: number): Measurement => {
  const child = spawnSync(
    process.execPath,
    ["--expose-gc", ...(scenario.nodeFlags ?? []), childPath, file, contestant, mode],
    // The compile cache saves each child re-parsing and type-stripping the same sources (a third of a
    // quick run). It only touches loading, which is timed only in scenario 9 (thread start), where
    // every contestant's threads inherit it alike.
    { cwd: root, encoding: "utf8", timeout: childTimeoutMs(scenario), maxBuffer: 16 * 2 ** 20, env: { ...process.env, NODE_COMPILE_CACHE: compileCache } }
  )
  const line = child.stdout?.split("\n").filter((l) => l.startsWith("{")).at(-1)
  const result = line === undefined ? undefined : (JSON.parse(line) as ChildResult & { error?: string })
  if (child.status !== 0 || result === undefined || result.error !== undefined) {
    const why = result?.error?.split("\n")[0] ?? child.error?.message ??
      `exit ${child.status ?? child.signal}: ${(child.stderr ?? "").trim().split("\n").slice(-3).join(" / ")}`
    return { scenario: scenario.id, contestant, rep, error: why }
  }
  return { ...result, rep }
}

for (let rep = 0; rep < reps; rep++) {
  for (const { file, scenario } of runnable) {
    if (rep >= repsOf(scenario)) continue
    const n = scenario.contestants.length
    for (let k = 0; k < n; k++) {
      const contestant = scenario.contestants[(k + rep) % n]!
      const m = runChild(file, scenario, contestant.name, rep)
      measurements.push(m)
      const status = m.error !== undefined ? `CRASH ${m.error}` : m.checksumOk ? "ok" : `CHECKSUM WRONG: ${m.why}`
      const heap = m.heapBytesPerJob === undefined ? "" : `, ${m.heapBytesPerJob.toFixed(0)} B/job`
      console.error(
        `[${measurements.length}/${total}] rep ${rep + 1} scenario ${scenario.id} ${contestant.name}: ` +
          `${m.ms === undefined ? "-" : m.ms.toFixed(1) + " ms"}${heap} ${status}`
      )
    }
  }
}

const report: Report = {
  date: new Date().toISOString(),
  mode,
  reps,
  seconds: Math.round((Date.now() - started) / 1000),
  machine,
  versions,
  scenarios: scenarios.map(({ scenario }) => summarize(scenario, measurements.filter((m) => m.scenario === scenario.id))),
  measurements
}

console.log(renderTables(report))
const failures = measurements.filter((m) => m.error !== undefined || m.checksumOk !== true)

fs.mkdirSync(resultsDir, { recursive: true })
const fullRun = !quick && only === undefined
const jsonFile = path.join(resultsDir, fullRun ? "latest.json" : quick && only === undefined ? "quick.json" : "partial.json")
fs.writeFileSync(jsonFile, JSON.stringify(report, null, 2) + "\n")
console.error(`wrote ${path.relative(root, jsonFile)}`)
if (fullRun) writeDocs(report)

console.error(`bench: ${report.seconds} s, ${failures.length === 0 ? "every checksum right" : `${failures.length} FAILED measurements`}`)
process.exitCode = failures.length === 0 ? 0 : 1
