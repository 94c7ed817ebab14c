/**
 * What the A/B probes that load two source trees in one process share (posts.ts, jumpQueue.ts):
 * the trees from `--old=`, an optional CPU-bound neighbour process (`--neighbour`, as in the
 * scenarios under load), and the runs of both in turns, each pair in the other order than the last,
 * so that a drift of the machine's speed lands on both.
 */
import { spawn } from "node:child_process"
import { loadavg } from "node:os"
import * as path from "node:path"

export const arg = (name: string, otherwise: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? otherwise

export const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

export const trees = () => {
  const old = arg("old", "")
  if (old === "") throw new Error("--old=<tree> is required")
  return { old, new: path.resolve(import.meta.dirname, "../..") }
}

interface Side<R> {
  readonly run: () => Promise<R>
  readonly close: () => Promise<void>
}

/** Opens both trees' sides and runs them `reps` times in turns; closes them. `load`: the load average's range over the pairs. */
export const inTurns = async <R>(open: (tree: string) => Promise<Side<R>>, reps: number) => {
  const { old: oldTree, new: newTree } = trees()
  const neighbour = process.argv.includes("--neighbour")
    ? spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" })
    : undefined
  const sides = { old: await open(oldTree), new: await open(newTree) }
  const rows = { old: new Array<R>(), new: new Array<R>() }
  const loads: Array<number> = []
  for (let rep = 0; rep < reps; rep++) {
    loads.push(loadavg()[0]!)
    for (const side of rep % 2 === 0 ? ["old", "new"] as const : ["new", "old"] as const) {
      rows[side].push(await sides[side].run())
    }
  }
  neighbour?.kill()
  await sides.old.close()
  await sides.new.close()
  const load = `${Math.min(...loads).toFixed(1)}-${Math.max(...loads).toFixed(1)}`
  return { rows, load, neighbour: neighbour !== undefined }
}
