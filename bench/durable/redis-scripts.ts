/**
 * The Redis server's CPU per job of our store's scripts, without any client in the way: `jobs` jobs
 * enqueued by the ENQUEUE script, then drained by CLAIM scripts of 8 that each carry the previous
 * claim's 8 settles (as a busy consumer's claims do), all pipelined: the lease tokens are known in
 * advance (`<random><12-digit counter>:<queue>`, as the store makes them). CPU is the server main
 * thread's (`INFO cpu`), so the load of a busy machine inflates it less than wall time; the rest of
 * the server's clients count too, so run it when nothing else uses that server, or compare two
 * versions interleaved, as this does:
 *
 *   node bench/durable/redis-scripts.ts <redis://…> <old redisScripts.ts> [rounds=8] [jobs=4000]
 *
 * (e.g. `git show <rev>:src/internal/store/redisScripts.ts > /tmp/old.ts`; the file imports nothing).
 * Prints each round, then the medians and new/old.
 */
import { resolve } from "node:path"
import { pathToFileURL } from "node:url"
import { createClient } from "redis"
import * as current from "../../src/internal/store/redisScripts.ts"

const [url = "", oldPath = "", roundsArg = "8", jobsArg = "4000"] = process.argv.slice(2)
if (url === "" || oldPath === "") throw new Error("usage: redis-scripts.ts <redis://…> <old redisScripts.ts> [rounds] [jobs]")
const old = await import(pathToFileURL(resolve(oldPath)).href) as typeof current
const jobs = Number(jobsArg)
const BATCH = 8

const client = createClient({ url })
await client.connect()
const serverCpuUs = async () => {
  const info = await client.info("cpu")
  const field = (name: string) => Number(new RegExp(`${name}:([0-9.]+)`).exec(info)![1])
  return (field("used_cpu_user_main_thread") + field("used_cpu_sys_main_thread")) * 1e6
}

const round = async (scripts: typeof current, queue: string) => {
  const enqueueSha = await client.scriptLoad(scripts.ENQUEUE)
  const claimSha = await client.scriptLoad(scripts.CLAIM)
  const meta = `{bench-scripts:${queue}}:meta`
  let before = await serverCpuUs()
  const enqueues = client.multi()
  for (let n = 0; n < jobs; n++) {
    // now (server), id, task, payload, priority, dedup, hasDedup, maxAttempts, timeout, delay, runAt, trace, retry
    enqueues.addCommand(["EVALSHA", enqueueSha, "1", meta, "", `${crypto.randomUUID()}:${queue}`, "Job", `{"n":${n}}`, "0", "", "0", "3", "0", "0", "", "", ""])
  }
  await enqueues.execAsPipeline()
  const enqueueUs = (await serverCpuUs()) - before
  before = await serverCpuUs()
  const random = "0".repeat(24)
  const claims = client.multi()
  let counter = 0
  let previous: Array<string> = []
  for (let k = 0; k <= jobs / BATCH; k++) {
    const settles = previous.flatMap((token) => [token, "final", "succeeded", "1", `{"_tag":"Success","value":null}`])
    claims.addCommand([
      "EVALSHA", claimSha, "1", meta, "", String(BATCH), "30000", "1", "Job", String(previous.length), ...settles,
      random, String(counter), `:${queue}`, ""
    ])
    previous = Array.from({ length: BATCH }, (_, n) => `${random}${String(counter + n).padStart(12, "0")}:${queue}`)
    counter += BATCH
  }
  const replies = await claims.execAsPipeline() as unknown as Array<[unknown, unknown, Array<number>]>
  const claimUs = (await serverCpuUs()) - before
  const settled = replies.reduce((sum, reply) => sum + reply[2].filter((flag) => flag === 1).length, 0)
  if (settled !== jobs) throw new Error(`${settled} of ${jobs} jobs settled`)
  for await (const keys of client.scanIterator({ MATCH: `{bench-scripts:${queue}}*`, COUNT: 1000 })) {
    if (keys.length > 0) await client.del(keys)
  }
  return { enqueueUsPerJob: enqueueUs / jobs, claimSettleUsPerJob: claimUs / jobs }
}

const results = { old: [] as Array<Awaited<ReturnType<typeof round>>>, new: [] as Array<Awaited<ReturnType<typeof round>>> }
for (let r = 0; r < Number(roundsArg); r++) {
  // alternating order: old, new, new, old, ...
  const order = r % 2 === 0 ? (["old", "new"] as const) : (["new", "old"] as const)
  for (const which of order) {
    const result = await round(which === "old" ? old : current, `${process.pid}-${r}-${which}`)
    results[which].push(result)
    console.log(which, JSON.stringify(result, (_, v) => typeof v === "number" ? Math.round(v * 10) / 10 : v))
  }
}
const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
for (const key of ["enqueueUsPerJob", "claimSettleUsPerJob"] as const) {
  const o = median(results.old.map((r) => r[key]))
  const n = median(results.new.map((r) => r[key]))
  console.log(`${key}: old ${o.toFixed(1)} new ${n.toFixed(1)} new/old ${(n / o).toFixed(2)}`)
}
await client.quit()
