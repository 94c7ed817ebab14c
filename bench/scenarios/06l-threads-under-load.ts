/**
 * Scenario 6L: scenario 6 (thread round trip) while another CPU-bound process runs
 * (bench/load.ts): a sleeping thread is woken on a busy machine, where the wake-up competes with
 * the neighbour for a core.
 */
import { underLoad } from "../load.ts"
import { scenario as roundTrip } from "./06-threads.ts"

export const scenario = underLoad(roundTrip, { id: "6L", title: "Thread round trip, under load" })
