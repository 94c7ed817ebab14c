/**
 * Does a thread parked in `Atomics.wait` wake faster than one waiting in its event loop for a
 * message? One process, 2 threads per contestant, no-op tasks one at a time (post one, await its
 * answer, post the next to the other thread), the contestants in turns within each rep (the order
 * rotates), so the machine's load falls on all alike. Prints µs per round trip and the main
 * thread's CPU per task for each rep, then the medians and the load.
 *
 * Contestants (bench/probe/park-worker.ts): the raw floor (postMessage, the thread in its event
 * loop), the same on a MessagePort of its own, parked (Atomics.wait + receiveMessageOnPort, woken
 * by Atomics.notify after the post), parked with a bound (back to the event loop after 20 ms idle),
 * Atomics.waitAsync, piscina with its defaults, and ours (ThreadPool.run).
 *
 * node bench/probe/park.ts [--jobs=N] [--reps=N] [--only=floor,park,...]
 */
import { Effect, Exit, Scope } from "effect"
import { loadavg } from "node:os"
import { MessageChannel, type MessagePort, Worker } from "node:worker_threads"

const arg = (name: string, otherwise: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? otherwise
const jobs = Number(arg("jobs", "20000"))
const reps = Number(arg("reps", "12"))
const THREADS = 2

interface Contestant {
  /** Runs n tasks one at a time; resolves when the last has answered. */
  readonly run: (n: number) => Promise<void>
  readonly close: () => Promise<unknown>
}

type How = "loop" | "loop-port" | "park" | "park-bounded" | "waitasync"

const raw = (how: How): Contestant => {
  const threads = Array.from({ length: THREADS }, () => {
    const { port1, port2 } = new MessageChannel()
    const signal = new SharedArrayBuffer(4)
    const worker = new Worker(new URL("./park-worker.ts", import.meta.url), {
      workerData: { how, port: port2, signal, boundMs: 20 },
      transferList: [port2]
    })
    return { worker, port: port1, counter: new Int32Array(signal) }
  })
  const viaParent = how === "loop"
  const wakes = how !== "loop" && how !== "loop-port"
  let onAnswer: () => void = () => {}
  for (const t of threads) (viaParent ? t.worker : t.port).on("message", () => onAnswer())
  const send = (w: number, i: number) => {
    const t = threads[w]!
    if (viaParent) t.worker.postMessage(i)
    else t.port.postMessage(i)
    if (wakes) {
      Atomics.add(t.counter, 0, 1)
      Atomics.notify(t.counter, 0, 1)
    }
  }
  return {
    run: (n) =>
      new Promise((resolve) => {
        let i = 0
        onAnswer = () => {
          if (++i === n) return resolve()
          send(i % THREADS, i)
        }
        send(0, 0)
      }),
    close: async () => {
      if (wakes) threads.forEach((_, w) => send(w, -1))
      await Promise.all(threads.map((t) => t.worker.terminate()))
      threads.forEach((t) => t.port.close())
    }
  }
}

const piscina = async (): Promise<Contestant> => {
  const { Piscina } = await import("piscina")
  const pool = new Piscina<number, number>({
    filename: new URL("../workers/piscina-worker.ts", import.meta.url).href,
    minThreads: THREADS,
    maxThreads: THREADS
  })
  const task = { name: "noop" }
  return {
    run: async (n) => {
      for (let i = 0; i < n; i++) await pool.run(i, task)
    },
    close: () => pool.destroy()
  }
}

const ours = async (): Promise<Contestant> => {
  const ThreadPool = await import("../../src/ThreadPool.ts")
  const { Noop } = await import("../workers/ours-tasks.ts")
  const scope = Effect.runSync(Scope.make())
  const pool = await Effect.runPromise(
    ThreadPool.make({ worker: new URL("../workers/ours-worker.ts", import.meta.url), threads: THREADS, capacity: Infinity })
      .pipe(Scope.provide(scope))
  )
  return {
    run: (n) =>
      Effect.runPromise(Effect.gen(function*() {
        for (let i = 0; i < n; i++) yield* pool.run(Noop, i)
      })),
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

const makers: Record<string, () => Contestant | Promise<Contestant>> = {
  floor: () => raw("loop"),
  "floor-port": () => raw("loop-port"),
  park: () => raw("park"),
  "park-20ms": () => raw("park-bounded"),
  waitasync: () => raw("waitasync"),
  piscina,
  ours
}
const names = arg("only", Object.keys(makers).join(",")).split(",")
const contestants: Array<[string, Contestant]> = []
for (const name of names) {
  const c = await makers[name]!()
  await c.run(2000) // warm: threads started, code compiled
  contestants.push([name, c])
}

const median = (xs: Array<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}
const results = new Map<string, { us: Array<number>; cpu: Array<number> }>(names.map((n) => [n, { us: [], cpu: [] }]))
const loads: Array<number> = []
for (let rep = 0; rep < reps; rep++) {
  loads.push(loadavg()[0]!)
  const line: Array<string> = []
  for (let k = 0; k < contestants.length; k++) {
    const [name, c] = contestants[(k + rep) % contestants.length]!
    const c0 = process.threadCpuUsage()
    const t0 = performance.now()
    await c.run(jobs)
    const us = (performance.now() - t0) * 1000 / jobs
    const c1 = process.threadCpuUsage()
    const cpu = (c1.user + c1.system - c0.user - c0.system) / jobs
    results.get(name)!.us.push(us)
    results.get(name)!.cpu.push(cpu)
    line.push(`${name} ${us.toFixed(1)}`)
  }
  console.log(`rep ${rep}: ${line.join(", ")} (us/task)`)
}
const base = median(results.get(names[0]!)!.us)
console.log(`one at a time, no-op, ${THREADS} threads, ${jobs} tasks, ${reps} reps, load ${Math.min(...loads).toFixed(1)}-${Math.max(...loads).toFixed(1)}; medians:`)
for (const [name, r] of results) {
  console.log(`  ${name.padEnd(11)} ${median(r.us).toFixed(1).padStart(6)} us/task (${(median(r.us) / base).toFixed(2)}x ${names[0]}), main cpu ${median(r.cpu).toFixed(1)} us/task`)
}
for (const [, c] of contestants) await c.close()
