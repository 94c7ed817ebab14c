/** piscina's worker file: one exported function per task, picked with `run(payload, { name })`. */
export { barrier, cpu, noop, probe } from "./cpu.ts"
