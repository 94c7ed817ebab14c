import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"
import * as JobStore from "../src/JobStore.ts"
import { conformance } from "./durable/conformance.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wp-durable-"))
let n = 0
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

conformance("SQLite", () => JobStore.sqlite({ filename: path.join(dir, `jobs-${++n}.db`) }))
