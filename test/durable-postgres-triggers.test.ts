/**
 * The Postgres trigger functions' text is pinned to `TRIGGERS_REVISION`: an open replaces a schema's
 * functions whose text differs from this build's unless a newer revision wrote them, so a text edited
 * without a bump would be put back and forth at every open by two builds (review43 L1). Pure: reads
 * the migrations' text, no server.
 */
import { createHash } from "node:crypto"
import { assert, describe, it } from "vitest"
import { TRIGGER_FUNCTIONS, TRIGGERS_REVISION, triggerFunction } from "../src/internal/store/postgres.ts"

/** Each revision's hashes (sha256 of the function's statement, schema "S", first 16 hex digits). */
const PINNED: Record<number, Record<string, string>> = {
  2: {
    wp_dependents_ended: "f42da874cde81384",
    wp_dependent_deleted: "c04d33c6b708d259"
  },
  3: {
    wp_dependents_ended: "cfcbc7f413553036",
    wp_dependent_deleted: "c04d33c6b708d259"
  }
}

const hashOf = (name: string) => createHash("sha256").update(triggerFunction(`"S"`, name)).digest("hex").slice(0, 16)

describe("Postgres trigger functions", () => {
  it("their text is the one pinned to TRIGGERS_REVISION", () => {
    const actual = Object.fromEntries(TRIGGER_FUNCTIONS.map((name) => [name, hashOf(name)]))
    assert.deepStrictEqual(
      actual,
      PINNED[TRIGGERS_REVISION],
      `a trigger function's text changed: bump TRIGGERS_REVISION and update the hash (PINNED[${TRIGGERS_REVISION}] in this file)`
    )
  })
})
