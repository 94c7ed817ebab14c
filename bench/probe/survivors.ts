/**
 * `node bench/probe/survivors.ts [jobs]`: the bytes per job that survive a young-generation
 * collection in scenario 1's "ours" run (submit all, keep each `handle.await`, then await all),
 * against a loop that keeps one `Exit.succeed` per job and no pool, the floor for a kept Effect per
 * job. Each runs in a process of its own under --trace-gc-nvp, after two warm-ups at 20,000 jobs
 * like the bench child's; the figure is what the timed run's scavenges copied within the young
 * generation (each kept object is copied once, then promoted by the next scavenge).
 */
import { spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import { Effect, Exit } from "effect"
import { makePool } from "../common.ts"
import { Tally } from "../tally.ts"

const [arg, child] = process.argv.slice(2)
const jobs = Number(arg ?? 200_000)
const MARK = "timed run"

const once = async (mode: string, n: number) => {
  const tally = new Tally(n)
  const { pool, teardown } = await makePool({ concurrency: 8, capacity: Infinity })
  const keep = mode === "exits"
    ? Effect.sync(() => {
      const handles = new Array<Effect.Effect<number>>(n)
      for (let i = 0; i < n; i++) handles[i] = Exit.succeed(tally.job(i))
      return handles
    })
    : Effect.gen(function*() {
      const handles = new Array<Effect.Effect<number, unknown>>(n)
      for (let i = 0; i < n; i++) handles[i] = (yield* pool.submit(Effect.sync(() => tally.job(i)))).await
      return handles
    })
  const program = Effect.gen(function*() {
    let s = 0
    for (const h of yield* keep) s += yield* h
    return s
  })
  const observed = await Effect.runPromise(program)
  await teardown()
  const check = tally.verify(observed)
  if (!check.ok) throw new Error(`checksum wrong: ${check.why}`)
}

if (child !== undefined) {
  for (let i = 0; i < 2; i++) await once(child, 20_000)
  globalThis.gc?.()
  console.log(MARK)
  await once(child, jobs)
} else {
  for (const mode of ["ours", "exits"]) {
    const out = spawnSync(
      process.execPath,
      ["--expose-gc", "--trace-gc-nvp", fileURLToPath(import.meta.url), String(jobs), mode],
      { encoding: "utf8", maxBuffer: 64 * 2 ** 20 }
    ).stdout
    let copied = 0
    let scavenges = 0
    for (const line of out.slice(out.indexOf(MARK)).split("\n")) {
      if (!line.includes(" gc=s ")) continue
      copied += Number(line.match(/\bnew_space_survived=(\d+)/)?.[1] ?? 0)
      scavenges++
    }
    console.log(`${mode}: ${(copied / jobs).toFixed(1)} bytes per job copied by ${scavenges} scavenges`)
  }
}
