/** poolifier's worker file: a ThreadWorker with named task functions, called with `pool.execute(payload, name)`. */
import { ThreadWorker } from "poolifier"
import { cpu, noop, probe } from "./cpu.ts"

// poolifier types a task's data as optional; every call here passes a job number
export default new ThreadWorker<number, number>({
  cpu: (i) => cpu(i!),
  noop: (i) => noop(i!),
  probe
})
