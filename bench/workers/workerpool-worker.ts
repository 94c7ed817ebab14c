/** workerpool's worker file: registers the functions, called with `pool.exec(name, [payload])`. */
import workerpool from "workerpool"
import { barrier, cpu, noop, probe } from "./cpu.ts"

workerpool.worker({ barrier, cpu, noop, probe })
