/**
 * The Redis store: the conformance suite (under TestClock, the store's time from the Effect Clock),
 * then what only Redis does, live on the public layer (the server's clock).
 */
import { describe } from "@effect/vitest"
import { conformance } from "./durable/conformance.ts"
import { enabled, testLayer } from "./durable/redis.ts"

if (!enabled) describe.skip("the Redis store (WORKPOOL_REDIS_URL is not set)", () => {})
else {
  conformance("Redis", () => testLayer())
}
