/**
 * Scenarios under load: the same contestants while another CPU-bound process runs beside them,
 * since a pool is rarely alone on its machine. `underLoad(scenario, ...)` makes the loaded twin of
 * a scenario; each of its contestants starts the load before its own setup and stops it after its
 * teardown, so warm-up, setup and the timed part all share the machine with it.
 *
 * The load is a separate Node process spinning in a loop (no I/O, no allocation): one core's worth
 * of CPU taken away, as a busy neighbour would. It says it is running before `startLoad` resolves,
 * and it is killed when the contestant's child exits, whatever the way out.
 *
 * @example
 * // bench/scenarios/01l-overhead-under-load.ts
 * import { underLoad } from "../load.ts"
 * import { scenario as trivial } from "./01-overhead.ts"
 * export const scenario = underLoad(trivial, { id: "1L", title: "Overhead under load" })
 */
import { type ChildProcess, spawn } from "node:child_process"
import type { Contestant, Scenario, Target } from "./common.ts"

/** How many CPU-bound processes run beside a contestant under load (one: a busy neighbour). */
export const LOAD_PROCESSES = 1

// Prints once it is in the loop, then never returns: killed by its parent.
const SPIN = "process.stdout.write('spinning\\n'); let x = 1; for (;;) { x = (x * 1103515245 + 12345) | 0 }"

const running = new Set<ChildProcess>()
let exitHook = false

/** Starts `processes` CPU-bound processes; resolves once each of them is spinning. */
export const startLoad = async (processes = LOAD_PROCESSES): Promise<{ readonly stop: () => Promise<void> }> => {
  if (!exitHook) {
    exitHook = true
    // the bench child ends with process.exit: kill the spinners there too, or they would outlive it
    process.on("exit", () => {
      for (const p of running) p.kill("SIGKILL")
    })
  }
  const spinners = await Promise.all(Array.from({ length: processes }, spinOne))
  return {
    stop: () => Promise.all(spinners.map(stopOne)).then(() => undefined)
  }
}

const spinOne = (): Promise<ChildProcess> =>
  new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ["-e", SPIN], { stdio: ["ignore", "pipe", "inherit"] })
    running.add(p)
    p.once("error", reject)
    p.once("exit", (code, signal) => {
      running.delete(p)
      reject(new Error(`the load process ended before it was spinning (exit ${code ?? signal})`))
    })
    p.stdout!.once("data", () => resolve(p))
  })

const stopOne = (p: ChildProcess): Promise<void> =>
  new Promise((resolve) => {
    if (p.exitCode !== null || p.signalCode !== null) return resolve()
    p.removeAllListeners("exit")
    p.once("exit", () => {
      running.delete(p)
      resolve()
    })
    p.kill("SIGKILL")
  })

/** The same contestant with the load running from before its setup until after its teardown. */
export const withLoad = (contestant: Contestant, processes = LOAD_PROCESSES): Contestant => ({
  ...contestant,
  setup: async (size, tally) => {
    const load = await startLoad(processes)
    try {
      const trial = await contestant.setup(size, tally)
      return {
        run: trial.run,
        teardown: async () => {
          try {
            await trial.teardown?.()
          } finally {
            await load.stop()
          }
        }
      }
    } catch (error) {
      await load.stop()
      throw error
    }
  }
})

/**
 * The loaded twin of `scenario`: every contestant wrapped in `withLoad`, the same sizes, metrics
 * and checksum; `targets` replaces the scenario's own (default: the same targets).
 */
export const underLoad = (
  scenario: Scenario,
  twin: {
    readonly id: string
    readonly title: string
    readonly targets?: ReadonlyArray<Target>
    readonly processes?: number
    /** Notes of the loaded twin, before the scenario's own. */
    readonly notes?: ReadonlyArray<string>
  }
): Scenario => {
  const processes = twin.processes ?? LOAD_PROCESSES
  return {
    ...scenario,
    id: twin.id,
    title: twin.title,
    description: `${scenario.description} Under load: ${processes === 1 ? "another process" : `${processes} other processes`} ` +
      "spinning on the CPU (a Node loop, no I/O) from before each contestant's setup until after its teardown.",
    contestants: scenario.contestants.map((c) => withLoad(c, processes)),
    targets: twin.targets ?? scenario.targets,
    // the loaded run varies more: its summary lines still come from this run's medians
    notes: [
      `The same contestants as scenario ${scenario.id}, each beside ${processes === 1 ? "one CPU-bound process" : `${processes} CPU-bound processes`} ` +
        "started for it alone, so the machine's cores are shared as they are where users run.",
      ...(twin.notes ?? []),
      ...(scenario.notes ?? [])
    ]
  }
}
