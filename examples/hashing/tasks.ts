/**
 * The hashing example's task, imported by both sides: `main.ts` sends it, `worker.ts` serves it.
 *
 * The work itself, `hashWord`, lives here too, so that the main thread can run exactly the same
 * code for the reference timing.
 */
import * as Schema from "effect/Schema"
import * as Task from "../../src/Task.ts"
import { sha256 } from "./sha256.ts"

/** Hashes one word `rounds` times over and returns the last digest, in hex. */
export const HashWord = Task.make("HashWord", {
  payload: Schema.Struct({
    word: Schema.String,
    rounds: Schema.Int.check(Schema.isGreaterThan(0))
  }),
  success: Schema.String
})

const utf8 = new TextEncoder()

/**
 * sha256(word), then sha256 of that digest, `rounds` times in all: pure CPU work with no way to
 * skip ahead, and a result that depends only on its input.
 */
export const hashWord = (word: string, rounds: number): string => {
  const digest = new Uint8Array(32)
  sha256(utf8.encode(word), digest)
  for (let i = 1; i < rounds; i++) sha256(digest, digest)
  return Buffer.from(digest).toString("hex")
}
