import * as JobStore from "../src/JobStore.ts"
import { conformance } from "./durable/conformance.ts"

conformance("the memory store", () => JobStore.memory())
