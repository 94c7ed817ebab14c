import { describe } from "@effect/vitest"
import { conformance } from "./durable/conformance.ts"
import { enabled, testLayer } from "./durable/postgres.ts"

if (enabled) conformance("Postgres", () => testLayer())
else describe.skip("durable jobs on Postgres (WORKPOOL_PG_URL is not set)", () => {})
