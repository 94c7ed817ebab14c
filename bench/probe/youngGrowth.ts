/**
 * `node bench/probe/youngGrowth.ts <scenario file> <contestant>`: runs the bench child (full size)
 * under `--trace-gc-nvp` and prints each collection with the count V8 grows its young generation by:
 * the bytes that survived collections (promoted + copied within the young generation) since its last
 * growth; the young generation doubles at the scavenge where that count passes its capacity.
 * The timed run's collections are the scavenges after the last pair of full ("mc") collections.
 */
import { spawnSync } from "node:child_process"
import * as path from "node:path"

const [file, name] = process.argv.slice(2)
if (file === undefined || name === undefined) throw new Error("usage: youngGrowth.ts <scenario file> <contestant>")
const child = path.join(import.meta.dirname, "..", "child.ts")
const out = spawnSync(process.execPath, ["--expose-gc", "--trace-gc-nvp", child, file, name, "full"], {
  encoding: "utf8",
  maxBuffer: 64 * 2 ** 20
}).stdout

const mb = (bytes: number) => (bytes / 1e6).toFixed(2).padStart(6)
let sinceGrowth = 0
let capacity = 0
console.log("  ms gc   allocated promoted   copied  counted capacity")
for (const line of out.split("\n")) {
  if (line.startsWith("{")) console.log(line)
  if (!line.includes(" gc=")) continue
  const field = (key: string) => line.match(new RegExp(`\\b${key}=(\\S+)`))?.[1] ?? ""
  const promoted = Number(field("promoted"))
  const copied = Number(field("new_space_survived"))
  const newCapacity = Number(field("new_space_capacity"))
  sinceGrowth += promoted + copied
  // "allocated" wraps around below zero when a full collection follows another one at once
  const allocated = Number(field("allocated")) > 2 ** 50 ? 0 : Number(field("allocated"))
  const ms = line.match(/(\d+) ms:/)?.[1] ?? ""
  console.log(
    `${ms.padStart(4)} ${field("gc").padEnd(3)} ${mb(allocated)}    ${mb(promoted)}   ${mb(copied)}   ${mb(sinceGrowth)}` +
      `   ${mb(newCapacity)}${newCapacity > capacity && capacity > 0 ? "  grown" : ""}`
  )
  if (newCapacity > capacity) {
    if (capacity > 0) sinceGrowth = 0
    capacity = newCapacity
  }
}
