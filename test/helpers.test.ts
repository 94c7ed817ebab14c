import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { DatabaseSync } from "node:sqlite"
import { sqliteLockHolder, waitFor } from "./helpers.ts"

/** The message of the defect a failed wait ends with. */
const failure = <A>(exit: Exit.Exit<A>): string => {
  assert.isTrue(Exit.isFailure(exit), "the wait should have failed")
  return String((Cause.squash((exit as Exit.Failure<A, never>).cause) as Error).message)
}

describe("waitFor", () => {
  it.effect("returns the value that ended the wait", () =>
    Effect.gen(function*() {
      let n = 0
      const seen = yield* waitFor(Effect.sync(() => ({ n: ++n })), "n reaches 3", { until: (s) => s.n === 3 })
      assert.deepStrictEqual(seen, { n: 3 })
    }))

  // the test's limit is 4 s: the wait gives up 3 s before it, with its own message (a wait bounded
  // only by a count of looks outlived the limit, and the test failed with a bare TestTimeoutError)
  it.effect("a wait that does not end fails before the test's time limit, saying what it awaited and saw last", () =>
    Effect.gen(function*() {
      const start = performance.now()
      const exit = yield* Effect.exit(
        waitFor(Effect.succeed({ running: 0, queued: 2 }), "the task runs", { until: (s) => s.running === 1 })
      )
      const message = failure(exit)
      assert.match(message, /^timed out waiting until the task runs: \d+\.\d s, \d+ looks; last seen: \{ running: 0, queued: 2 \}$/)
      assert.isBelow(performance.now() - start, 3_500)
    }), 4_000)

  it.effect("within bounds a wait; a bare boolean check shows its last answer", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(waitFor(Effect.succeed(false), "never", { within: "50 millis" }))
      assert.match(failure(exit), /^timed out waiting until never: 0\.\d s, \d+ looks; last seen: false$/)
    }))
})

describe("sqliteLockHolder", () => {
  // BUG (fixed, CI at load 10): the holder began with node:sqlite's busy timeout of 0, so a store
  // writing as it began (a consumer's claim or settle) made its BEGIN IMMEDIATE fail at once; it
  // ended without saying "locked", and the test waited for that for ever (a 150 s test timeout)
  it.live("takes the lock once a write in progress ends, rather than dying and leaving its caller waiting", () =>
    Effect.gen(function*() {
      const filename = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "wp-lock-holder-")), "jobs.db")
      const writer = new DatabaseSync(filename)
      writer.exec("CREATE TABLE t (x)")
      writer.exec("BEGIN IMMEDIATE")
      // long enough for the holder's process to start and try (with the fix it waits whatever the time)
      const ended = setTimeout(() => writer.exec("COMMIT"), 2_000)
      const holder = yield* Effect.timeoutOption(sqliteLockHolder(filename), "10 seconds")
      clearTimeout(ended)
      assert.isTrue(holder._tag === "Some", "the holder took the lock after the write")
      assert.throws(() => writer.exec("BEGIN IMMEDIATE"), /database is locked/, "the holder has it")
      yield* holder._tag === "Some" ? holder.value.release : Effect.void
      writer.exec("BEGIN IMMEDIATE")
      writer.exec("COMMIT")
      writer.close()
    }).pipe(Effect.scoped), 30_000)
})
