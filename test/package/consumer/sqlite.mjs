// The SQLite store where Node has no node:sqlite (Node 20): the package loads, and opening the store
// fails with a typed StoreError that says which Node it needs. On a Node with it, the store opens.
import { Effect } from "effect"
import { JobQueue } from "effect-workpool"
import * as JobStore from "effect-workpool/JobStore"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const filename = join(mkdtempSync(join(tmpdir(), "consumer-sqlite-")), "jobs.db")
const result = await Effect.runPromise(Effect.result(Effect.provide(JobQueue.stats("default"), JobStore.sqlite({ filename }))))
console.log(
  result._tag === "Success"
    ? `sqlite opened ${result.success.waiting}`
    : `sqlite ${result.failure._tag} ${/needs node:sqlite: Node 22\.13/.test(result.failure.message)}`
)
