/**
 * `node --expose-gc bench/probe/firstRun.ts <scenario file> <contestant> [full runs]`: the bench
 * child's warm-ups, then several full-size runs (a fresh setup each) instead of one, printing each
 * run's wall ms, the main thread's CPU ms and the other threads' (V8's compiler and GC helpers), so
 * that the first full-size run (the one the bench times) can be told apart from warm ones.
 */
import { readdirSync, readFileSync } from "node:fs"
import { pathToFileURL } from "node:url"
import type { Scenario } from "../common.ts"
import { Tally } from "../tally.ts"

const [file, name, runsArg] = process.argv.slice(2)
const { scenario } = (await import(pathToFileURL(file!).href)) as { scenario: Scenario }
const contestant = scenario.contestants.find((c) => c.name === name)!
const runs = Number(runsArg ?? 4)

/** CPU ms of the main thread and of all others, from the kernel's per-thread accounting. */
const threadsCpu = () => {
  let main = 0
  let others = 0
  for (const t of readdirSync("/proc/self/task")) {
    const ns = Number(readFileSync(`/proc/self/task/${t}/schedstat`, "utf8").split(" ")[0]) / 1e6
    if (Number(t) === process.pid) main += ns
    else others += ns
  }
  return { main, others }
}

const once = async (size: typeof scenario.sizes.full) => {
  const tally = scenario.tally?.(size) ?? new Tally(size.jobs)
  const trial = await contestant.setup(size, tally)
  globalThis.gc!()
  // a marker between runs for --trace-opt / --trace-deopt, which print on the same stdout
  console.log("=== RUN START")
  const c0 = threadsCpu()
  const t0 = performance.now()
  const outcome = await trial.run()
  const ms = performance.now() - t0
  const c1 = threadsCpu()
  await trial.teardown?.()
  if (!tally.verify(outcome.observed).ok) throw new Error("checksum")
  return `wall ${ms.toFixed(1)} main ${(c1.main - c0.main).toFixed(1)} others ${(c1.others - c0.others).toFixed(1)}`
}
const warm = scenario.sizes.warmup
for (let i = 0; i < (scenario.full?.warmups ?? 2); i++) console.log(`warm-up ${i + 1}: ${await once(warm)}`)
for (let i = 0; i < runs; i++) console.log(`full ${i + 1}: ${await once(scenario.sizes.full)}`)
process.exit(0)
