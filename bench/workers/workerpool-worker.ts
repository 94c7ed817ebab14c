/** workerpool's worker file: registers the functions, called with `pool.exec(name, [payload])`. */
import workerpool from "workerpool"
import { cpu, noop, probe } from "./cpu.ts"

workerpool.worker({ cpu, noop, probe })
