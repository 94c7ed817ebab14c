/**
 * Builds dist/, what the package ships: the JavaScript, declarations and source maps of src/
 * (tsconfig.build.json), with relative imports pointing at `.js` files.
 *
 * TypeScript rewrites `./x.ts` to `./x.js` in the JavaScript it emits but not in declarations
 * (microsoft/TypeScript#61037). TypeScript itself reads those, other readers of a `.d.ts` (editors,
 * declaration bundlers, a `paths` mapping onto dist) look for a file that is not there, so the
 * declarations are rewritten here. `.ts` and `.js` have the same length: the declaration maps stay exact.
 * The build fails if any relative `.ts` import is left in dist/.
 */
import { execFileSync } from "node:child_process"
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("..", import.meta.url))
const dist = join(root, "dist")

/** A relative module specifier ending in `.ts`, after `from`, `import` or `import(`. */
const relativeTs = /((?:\bfrom|\bimport)\s*\(?\s*)(["'])(\.\.?\/[^"']*)\.ts\2/g

/** Comment lines (JSDoc examples import the reader's own `./tasks.ts`) are left as they are. */
const isComment = (line: string) => /^\s*(\*|\/\*|\/\/)/.test(line)

const codeLines = (text: string) => text.split("\n").filter((line) => !isComment(line))

const filesUnder = (dir: string): Array<string> =>
  readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name))

rmSync(dist, { recursive: true, force: true })
execFileSync(join(root, "node_modules", ".bin", "tsc"), ["-p", join(root, "tsconfig.build.json")], {
  stdio: "inherit"
})

const leftovers: Array<string> = []
for (const file of filesUnder(dist)) {
  if (!/\.d\.ts$|\.js$/.test(file)) continue
  const text = readFileSync(file, "utf8")
  const rewritten = file.endsWith(".d.ts")
    ? text.split("\n").map((line) => (isComment(line) ? line : line.replace(relativeTs, "$1$2$3.js$2"))).join("\n")
    : text
  if (rewritten !== text) writeFileSync(file, rewritten)
  for (const line of codeLines(rewritten)) {
    if (line.match(relativeTs) !== null) leftovers.push(`${file}: ${line.trim()}`)
  }
}
if (leftovers.length > 0) {
  console.error(`build: relative .ts imports left in dist/:\n${leftovers.join("\n")}`)
  process.exit(1)
}
