/**
 * Scenario 1L: the trivial jobs of scenario 1 while another CPU-bound process runs beside every
 * contestant (bench/load.ts), since that is where users run: on a shared machine our speed should
 * not fall further than the others'. Same contestants, sizes, checksums and targets.
 */
import { underLoad } from "../load.ts"
import { scenario as trivial } from "./01-overhead.ts"

export const scenario = underLoad(trivial, { id: "1L", title: "Overhead under load: trivial jobs beside a CPU-bound process" })
