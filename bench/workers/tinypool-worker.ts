/** tinypool's worker file: one exported function per task, picked with `run(payload, { name })`. */
export { cpu, noop, probe } from "./cpu.ts"
