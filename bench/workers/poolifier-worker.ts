/** poolifier's worker file: a ThreadWorker with named task functions, called with `pool.execute(payload, name)`. */
import { ThreadWorker } from "poolifier"
import { barrier, cpu, noop, probe } from "./cpu.ts"

// poolifier types a task's data as optional; every call here passes a job number
export default new ThreadWorker<number | Int32Array, number>({
  barrier: (cells) => barrier(cells as Int32Array),
  cpu: (i) => cpu(i as number),
  noop: (i) => noop(i as number),
  probe
})
