/**
 * Turns measurements into summaries (median, min–max, ratio to each anchor of the same run, targets)
 * and renders them: markdown tables for the terminal and docs/benchmarks.md, and one SVG chart per
 * scenario (horizontal bars of the median with min–max whiskers).
 */
import type { ChildResult } from "./child.ts"
import { type Metric, metricInfo, type Scenario } from "./common.ts"

/** One child's result (`ok` when it ran and its checksum was right), or why it crashed. */
export type Measurement = Partial<ChildResult> & {
  readonly scenario: string
  readonly contestant: string
  readonly rep: number
  readonly error?: string
}

const isGood = (m: Measurement): m is Measurement & ChildResult => m.error === undefined && m.checksumOk === true

export interface Stats {
  readonly median: number
  readonly min: number
  readonly max: number
  readonly n: number
}

export interface Row {
  readonly contestant: string
  readonly library: string
  readonly anchor: boolean
  readonly ours: boolean
  /** Set when any run crashed or had a wrong checksum: the row then has no numbers. */
  readonly failed?: string
  readonly stats: Partial<Record<Metric, Stats>>
}

export interface TargetResult {
  readonly label: string
  /** The ratio (or the value, for a target without an anchor) on medians. */
  readonly measured?: number
  readonly bound: string
  readonly met?: boolean
}

export interface ScenarioSummary {
  readonly id: string
  readonly title: string
  readonly description: string
  readonly metrics: ReadonlyArray<Metric>
  readonly jobs?: number
  readonly rows: ReadonlyArray<Row>
  readonly targets: ReadonlyArray<TargetResult>
  readonly summary: ReadonlyArray<string>
  readonly notes: ReadonlyArray<string>
  readonly pending?: string
}

export interface Report {
  readonly date: string
  readonly mode: "full" | "quick"
  readonly reps: number
  readonly seconds: number
  readonly machine: {
    readonly cpu: string
    readonly cores: number
    readonly memoryGiB: number
    readonly node: string
    readonly os: string
    readonly loadAverageAtStart: ReadonlyArray<number>
  }
  readonly versions: Record<string, string>
  readonly scenarios: ReadonlyArray<ScenarioSummary>
  readonly measurements: ReadonlyArray<Measurement>
}

const valueOf = (m: ChildResult, metric: Metric): number | undefined => {
  switch (metric) {
    case "jobsPerSec":
    case "drainJobsPerSec":
      return m.jobs / (m.ms / 1000)
    case "ms":
      return m.ms
    case "heapBytesPerJob":
      return m.heapBytesPerJob
    case "rssBytesPerThread":
      return m.rssBytesPerThread
    case "usPerJob":
      return (m.ms * 1000) / m.jobs
    case "peakHeapMB":
      return m.peakHeapBytes === undefined ? undefined : m.peakHeapBytes / 1e6
    case "cpuUsPerJob":
      return m.cpuMs === undefined ? undefined : (m.cpuMs * 1000) / m.jobs
    case "cpuMsPerThread":
      return m.cpuMs === undefined ? undefined : m.cpuMs / m.jobs
    case "enqueueJobsPerSec":
    case "p50Ms":
    case "p99Ms":
      return m.extra?.[metric]
  }
}

const stats = (values: ReadonlyArray<number>): Stats => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
  return { median, min: sorted[0]!, max: sorted.at(-1)!, n: sorted.length }
}

export const summarize = (scenario: Scenario, measurements: ReadonlyArray<Measurement>): ScenarioSummary => {
  const rows: Array<Row> = scenario.contestants.map((c) => {
    const mine = measurements.filter((m) => m.contestant === c.name)
    const bad = mine.filter((m) => !isGood(m))
    const base = { contestant: c.name, library: c.library, anchor: c.anchor === true, ours: c.library === "effect-workpool" }
    if (bad.length > 0) {
      const first = bad[0]!
      const why = first.error !== undefined ? `crashed: ${first.error}` : `checksum wrong: ${first.why}`
      return { ...base, failed: `${bad.length} of ${mine.length} runs failed; ${why}`, stats: {} }
    }
    const ok = mine.filter(isGood)
    const s: Partial<Record<Metric, Stats>> = {}
    for (const metric of scenario.metrics) {
      const values = ok.map((m) => valueOf(m, metric)).filter((v): v is number => v !== undefined)
      if (values.length > 0) s[metric] = stats(values)
    }
    return { ...base, stats: s }
  })
  const median = (contestant: string, metric: Metric): number =>
    rows.find((r) => r.contestant === contestant)?.stats[metric]?.median ?? NaN
  const targets = scenario.targets.map((t): TargetResult => {
    const value = median(t.contestant, t.metric) / (t.anchor === undefined ? 1 : median(t.anchor, t.metric))
    const bound = t.atLeast !== undefined ? `≥ ${fmtBound(t.atLeast, t.anchor)}` : `≤ ${fmtBound(t.atMost!, t.anchor)}`
    const met = t.atLeast !== undefined ? value >= t.atLeast : value <= t.atMost!
    return Number.isFinite(value) ? { label: t.label, measured: value, bound, met } : { label: t.label, bound }
  })
  const measured = measurements.find(isGood)
  return {
    id: scenario.id,
    title: scenario.title,
    description: scenario.description,
    metrics: scenario.metrics,
    ...(measured === undefined ? {} : { jobs: measured.jobs }),
    rows,
    targets,
    summary: scenario.pending === undefined && scenario.summary !== undefined ? scenario.summary(median) : [],
    notes: scenario.notes ?? [],
    ...(scenario.pending === undefined ? {} : { pending: scenario.pending })
  }
}

const fmtBound = (bound: number, anchor: string | undefined) => anchor === undefined ? `${bound}` : `${bound}×`

const fmt = (value: number, metric: Metric): string =>
  value.toLocaleString("en-US", { maximumFractionDigits: metricInfo[metric].digits, minimumFractionDigits: metricInfo[metric].digits })

const fmtRatio = (r: number) => (Number.isFinite(r) ? `${r >= 10 ? r.toFixed(1) : r.toFixed(2)}×` : "–")

const fmtTarget = (t: TargetResult): string =>
  t.measured === undefined
    ? "not measured (a contestant failed)"
    : `${t.label.includes("bytes") ? t.measured.toFixed(0) : fmtRatio(t.measured)}`

/** One markdown table per metric: median, min–max, and the ratio to each anchor. */
const metricTable = (s: ScenarioSummary, metric: Metric): string => {
  const info = metricInfo[metric]
  const anchors = s.rows.filter((r) => r.anchor)
  const head = ["contestant", `median ${info.label}`, "min–max", ...anchors.map((a) => `÷ ${a.contestant}`)]
  const lines = [`| ${head.join(" | ")} |`, `| ${head.map((_, i) => (i === 0 ? "---" : "---:")).join(" | ")} |`]
  for (const r of s.rows) {
    const name = r.ours ? `**${r.contestant}**` : r.anchor ? `${r.contestant} (anchor)` : r.contestant
    const st = r.stats[metric]
    if (r.failed !== undefined || st === undefined) {
      const why = (r.failed ?? "no value").replace(/\|/g, "/")
      lines.push(`| ${name} | FAILED | ${why} |${anchors.map(() => " |").join("")}`)
      continue
    }
    const ratios = anchors.map((a) => fmtRatio(st.median / (a.stats[metric]?.median ?? NaN)))
    lines.push(`| ${name} | ${fmt(st.median, metric)} | ${fmt(st.min, metric)} – ${fmt(st.max, metric)} | ${ratios.join(" | ")} |`)
  }
  const direction = info.higherIsBetter ? "higher is better" : "lower is better"
  return `${lines.join("\n")}\n\n_${info.label}, ${direction}; a ratio is this row's median over the anchor's median in the same run._`
}

const targetTable = (rows: ReadonlyArray<{ scenario?: string; target: TargetResult }>): string => {
  const withScenario = rows.some((r) => r.scenario !== undefined)
  const head = [...(withScenario ? ["scenario"] : []), "target", "bound", "measured (medians)", "met / missed"]
  const lines = [`| ${head.join(" | ")} |`, `| ${head.map(() => "---").join(" | ")} |`]
  for (const { scenario, target } of rows) {
    const verdict = target.met === undefined ? "**not measured**" : target.met ? "met" : "**missed**"
    lines.push(`| ${withScenario ? `${scenario} | ` : ""}${target.label} | ${target.bound} | ${fmtTarget(target)} | ${verdict} |`)
  }
  return lines.join("\n")
}

const scenarioBody = (s: ScenarioSummary, withChart: boolean): string => {
  const parts = [`## ${s.id}. ${s.title}`, s.description + (s.jobs === undefined ? "" : ` Jobs per run: ${s.jobs.toLocaleString("en-US")}.`)]
  if (s.pending !== undefined) {
    parts.push(`**${s.pending}.**`)
    return parts.join("\n\n")
  }
  if (withChart) parts.push(`![scenario ${s.id}: ${metricInfo[s.metrics[0]!].label}](charts/scenario-${s.id}.svg)`)
  for (const metric of s.metrics) parts.push(metricTable(s, metric))
  if (s.targets.length > 0) parts.push(targetTable(s.targets.map((target) => ({ target }))))
  for (const line of s.summary) parts.push(line)
  for (const note of s.notes) parts.push(`- ${note}`)
  return parts.join("\n\n")
}

/** What the terminal shows at the end of a run. */
export const renderTables = (report: Report): string =>
  [
    ...report.scenarios.map((s) => scenarioBody(s, false)),
    "## Targets",
    targetTable(report.scenarios.flatMap((s) => s.targets.map((target) => ({ scenario: s.id, target }))))
  ].join("\n\n") + "\n"

export const renderMarkdown = (report: Report): string => {
  const m = report.machine
  const header = [
    "# Benchmarks",
    `Generated by \`npm run bench\` on ${report.date.slice(0, 10)} (${report.mode} run, ${report.reps} repetitions, ${report.seconds} s). ` +
      "Raw numbers: [bench/results/latest.json](../bench/results/latest.json).",
    "Absolute numbers drift from run to run and from machine to machine. Quote the ratios: they compare contestants " +
      "measured in the same run, on the same machine, interleaved.",
    "## How to run",
    `\`npm run bench\` (the full run that wrote this page; about ${Math.round(report.seconds / 60)} minutes on 2 cores), \`npm run bench -- --quick\` (one to two minutes), ` +
      "`npm run bench -- --only=1,4 --reps=3` (some scenarios; writes bench/results/partial.json only).",
    "## How it is measured",
    [
      "- Each measurement runs in a fresh child process (`node --expose-gc bench/child.ts`), so one library's garbage and JIT state never touch another's.",
      `- ${report.reps} repetitions per contestant, interleaved (repetition 1 of every contestant of every scenario, then repetition 2, ...), ` +
        "with the contestant order rotated each repetition.",
      "- Each child does two untimed warm-up runs at a smaller size, then one timed run. Creating and tearing down a pool or queue is not timed; " +
        "for the thread scenarios neither is starting the threads: setup waits until every thread has answered, then runs some tasks through them.",
      "- Every run, warm-ups included, checks a checksum: each job must run exactly once and the results handed back must add up to the expected sum " +
        "(scenario 4 also checks the start order; scenarios 5 and 6 check each task's result against its expected value). " +
        "A wrong checksum or a crash fails the whole run (exit code 1).",
      "- `npm run bench -- --quick` is the smoke test CI runs: smaller sizes, 3 repetitions (1, with no warm-up run, for the thread scenarios), " +
        "every checksum checked, no timing asserted. " +
        "It writes bench/results/quick.json and leaves this page alone.",
      "- A scenario is one file in bench/scenarios/; the runner picks up every file there."
    ].join("\n"),
    "## Machine",
    "| cpu | cores | memory | node | os | load average at start (1, 5, 15 min) |\n| --- | --- | --- | --- | --- | --- |\n" +
      `| ${m.cpu} | ${m.cores} | ${m.memoryGiB} GiB | ${m.node} | ${m.os} | ${m.loadAverageAtStart.join(", ")} |`,
    "The machine is shared: other work on it adds noise, which the min–max columns show.",
    "## Versions",
    "| contestant | version |\n| --- | --- |\n" +
      Object.entries(report.versions).map(([k, v]) => `| ${k} | ${v} |`).join("\n"),
    "## Targets",
    targetTable(report.scenarios.flatMap((s) => s.targets.map((target) => ({ scenario: s.id, target }))))
  ]
  return [...header, ...report.scenarios.map((s) => scenarioBody(s, true))].join("\n\n") + "\n"
}

const escapeXml = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")

/** Horizontal bars of the median, with a min–max whisker, for the scenario's headline metric. */
export const renderChart = (s: ScenarioSummary): string | undefined => {
  const metric = s.metrics[0]
  if (s.pending !== undefined || metric === undefined) return undefined
  const info = metricInfo[metric]
  const rows = s.rows
  // room for the longest label (bold at 13 px is about 7.6 px per character)
  const labelWidth = Math.max(160, Math.ceil(Math.max(...rows.map((r) => r.contestant.length)) * 7.6) + 16)
  const barWidth = 380
  const rowHeight = 26
  const top = 46
  const width = labelWidth + barWidth + 130
  const height = top + rows.length * rowHeight + 16
  const maxValue = Math.max(...rows.map((r) => r.stats[metric]?.max ?? 0), 1)
  const x = (v: number) => labelWidth + (v / maxValue) * barWidth
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="13">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="10" y="20" font-size="15" font-weight="bold">${escapeXml(`${s.id}. ${s.title}`)}</text>`,
    `<text x="10" y="38" fill="#555">${escapeXml(`median ${info.label} (${info.higherIsBetter ? "higher" : "lower"} is better), whiskers: min–max`)}</text>`
  ]
  rows.forEach((r, i) => {
    const y = top + i * rowHeight
    const mid = y + rowHeight / 2
    out.push(`<text x="${labelWidth - 8}" y="${mid + 4}" text-anchor="end"${r.ours ? ' font-weight="bold"' : ""}>${escapeXml(r.contestant)}</text>`)
    const st = r.stats[metric]
    if (r.failed !== undefined || st === undefined) {
      out.push(`<text x="${labelWidth + 4}" y="${mid + 4}" fill="#c00">FAILED</text>`)
      return
    }
    const fill = r.ours ? "#2f6fdf" : r.anchor ? "#8a929c" : "#c3c8ce"
    out.push(`<rect x="${labelWidth}" y="${y + 5}" width="${(x(st.median) - labelWidth).toFixed(1)}" height="${rowHeight - 10}" fill="${fill}"/>`)
    const x1 = x(st.min).toFixed(1)
    const x2 = x(st.max).toFixed(1)
    out.push(`<line x1="${x1}" x2="${x2}" y1="${mid}" y2="${mid}" stroke="#222" stroke-width="1.5"/>`)
    out.push(`<line x1="${x1}" x2="${x1}" y1="${mid - 5}" y2="${mid + 5}" stroke="#222" stroke-width="1.5"/>`)
    out.push(`<line x1="${x2}" x2="${x2}" y1="${mid - 5}" y2="${mid + 5}" stroke="#222" stroke-width="1.5"/>`)
    out.push(`<text x="${Number(x2) + 6}" y="${mid + 4}" fill="#333">${escapeXml(fmt(st.median, metric))}</text>`)
  })
  out.push("</svg>")
  return out.join("\n") + "\n"
}
