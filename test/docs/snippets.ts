/**
 * Typechecks the code in the docs: every ```ts block of the Markdown pages and every `@example` in
 * the JSDoc of the public modules. Each block becomes one file in a scratch folder outside git; one
 * run of the project's `tsc` checks them all, with the project's own strict flags, and each error is
 * mapped back to the page or source file and line the reader sees.
 *
 * Conventions a block can rely on (see test/docs/context/):
 * - `effect-workpool` and its subpaths resolve as the `exports` of package.json say, to the source
 *   of each built file (`./dist/WorkPool.d.ts` is read as `src/WorkPool.ts`): a doc can import only
 *   what a user can.
 * - The blocks of one page share a folder, so a block whose first line is a `// name.ts` comment is
 *   saved as `name.ts` and the other blocks of that page can import it (`./tasks.ts`).
 * - `context/*.ts` stand for the reader's own modules (`./tasks.ts`, `./images.ts`) when a page does
 *   not define them, and `context/globals.d.ts` declares the reader's own values that fragments use
 *   (`resize`, `image`, ...). Everything else a block uses, it defines or imports itself.
 */
import { execFile } from "node:child_process"
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { isAbsolute, join, relative, resolve } from "node:path"

/** A block of code and, for each of its lines, where that line is in its source file. */
export interface Block {
  /** The file it comes from, relative to the project root (`README.md`, `src/WorkPool.ts`). */
  readonly source: string
  /** 1-based line of the block's first line of code in `source`. */
  readonly line: number
  readonly code: string
  /** Per line of `code`: its line in `source` and how many characters were cut before it. */
  readonly origins: ReadonlyArray<{ readonly line: number; readonly indent: number }>
}

/** A type error, located in the docs' source file when it is inside a block. */
export interface Problem {
  /** `README.md:42:7`, or the path tsc gave for an error outside any block. */
  readonly at: string
  readonly message: string
}

const FENCE_OPEN = /^(\s*)```(ts|typescript)\s*$/
const FENCE_ANY = /^\s*```/

/** The ```ts and ```typescript blocks of a Markdown page. */
export const markdownBlocks = (source: string, text: string): Array<Block> => {
  const lines = text.split("\n")
  const blocks: Array<Block> = []
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE_OPEN.exec(lines[i]!)
    if (open === null) continue
    const indent = open[1]!.length
    const origins: Array<{ line: number; indent: number }> = []
    const code: Array<string> = []
    let j = i + 1
    for (; j < lines.length && !FENCE_ANY.test(lines[j]!); j++) {
      const cut = Math.min(indent, lines[j]!.length - lines[j]!.trimStart().length)
      code.push(lines[j]!.slice(cut))
      origins.push({ line: j + 1, indent: cut })
    }
    if (j === lines.length) throw new Error(`${source}:${i + 1}: a \`\`\`ts block that is never closed`)
    blocks.push({ source, line: i + 2, code: code.join("\n"), origins })
    i = j
  }
  return blocks
}

const COMMENT_LINE = /^(\s*\*\s?)(.*)$/

/**
 * The `@example` blocks of the JSDoc comments of a TypeScript file. Every `@example` must be
 * followed by a ```ts fence: an example in any other form would be skipped silently, so it is an
 * error instead.
 */
export const jsdocExamples = (source: string, text: string): { blocks: Array<Block>; problems: Array<Problem> } => {
  const lines = text.split("\n")
  const blocks: Array<Block> = []
  const problems: Array<Problem> = []
  let inComment = false
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!
    if (!inComment) {
      if (/^\s*\/\*\*/.test(line) && !line.includes("*/")) inComment = true
      continue
    }
    if (line.includes("*/")) {
      inComment = false
      if (line.includes("@example")) problems.push({ at: `${source}:${i + 1}`, message: "@example on the comment's last line" })
      continue
    }
    if (!/@example\b/.test(line)) continue
    const fence = lines[i + 1] === undefined ? null : COMMENT_LINE.exec(lines[i + 1]!)
    if (fence === null || !/^```(ts|typescript)\s*$/.test(fence[2]!)) {
      problems.push({ at: `${source}:${i + 1}`, message: "an @example must start with a ```ts fence on the next line" })
      continue
    }
    const origins: Array<{ line: number; indent: number }> = []
    const code: Array<string> = []
    let j = i + 2
    for (; j < lines.length; j++) {
      const content = COMMENT_LINE.exec(lines[j]!)
      if (content === null || lines[j]!.includes("*/")) break
      if (/^```\s*$/.test(content[2]!)) break
      code.push(content[2]!)
      origins.push({ line: j + 1, indent: content[1]!.length })
    }
    const closed = COMMENT_LINE.exec(lines[j] ?? "")
    if (closed === null || !/^```\s*$/.test(closed[2]!)) {
      problems.push({ at: `${source}:${i + 2}`, message: "an @example's ```ts fence is never closed inside its comment" })
      continue
    }
    blocks.push({ source, line: i + 3, code: code.join("\n"), origins })
    i = j
  }
  return { blocks, problems }
}

const EXPORT = /^export (?:declare )?(?:abstract )?(?:const|let|class|interface|type|function) (\w+)/
/** `export { awaitJob as await }`: a name a keyword keeps from being declared (`await`, `void`). */
const EXPORT_LIST = /^export \{([^}]*)\}/

const exportedBy = (line: string): ReadonlyArray<string> => {
  const name = EXPORT.exec(line)?.[1]
  if (name !== undefined) return [name]
  const list = EXPORT_LIST.exec(line)?.[1]
  return list === undefined ? [] : list.split(",").map((item) => item.trim().split(/\s+as\s+/).at(-1)!).filter((item) => item !== "")
}

/**
 * The exports of a module whose JSDoc has no `@example` (or that have no JSDoc): the project asks
 * for one on every public export, and this check keeps it so.
 */
export const exportsWithoutExample = (source: string, text: string): Array<Problem> => {
  const lines = text.split("\n")
  const problems: Array<Problem> = []
  lines.forEach((line, i) => {
    const names = exportedBy(line)
    if (names.length === 0) return
    let end = i - 1
    while (end >= 0 && lines[end]!.trim() === "") end--
    let start = end
    if (end >= 0 && lines[end]!.trim().endsWith("*/")) {
      while (start >= 0 && !lines[start]!.includes("/**")) start--
    }
    const doc = start < 0 || end < 0 ? "" : lines.slice(start, end + 1).join("\n")
    if (!doc.includes("/**") || !/@example\b/.test(doc)) {
      for (const name of names) problems.push({ at: `${source}:${i + 1}`, message: `the export ${name} has no JSDoc @example` })
    }
  })
  return problems
}

/** `// tasks.ts: ...` on a block's first line names the file the block is saved as. */
const namedFile = (block: Block): string | undefined => /^\/\/\s*([\w.-]+\.ts)\b/.exec(block.code)?.[1]

const folderOf = (source: string) => source.replace(/[^\w.-]+/g, "_")

const ERROR_LINE = /^(.+?)\((\d+),(\d+)\): error (TS\d+): (.*)$/

export interface CheckOptions {
  /** The project root: its tsconfig.json, src/ and node_modules/. */
  readonly root: string
  /** The folder of files the blocks may assume (globals.d.ts, stand-ins for the reader's modules). */
  readonly context: string
}

/**
 * Typechecks the blocks in one run of tsc, and returns the problems found (none when they all
 * compile). Fails if given no blocks: a check of nothing must not pass.
 */
export const typecheck = async (blocks: ReadonlyArray<Block>, options: CheckOptions): Promise<Array<Problem>> => {
  if (blocks.length === 0) throw new Error("no code blocks to typecheck: the extraction found nothing")
  const problems: Array<Problem> = []
  const paths = exportedPaths(options.root)

  const scratch = mkdtempSync(join(tmpdir(), "effect-workpool-docs-"))
  try {
    // the scratch folder is outside the project, so it borrows the project's node_modules
    symlinkSync(join(options.root, "node_modules"), join(scratch, "node_modules"), "dir")
    writeFileSync(join(scratch, "package.json"), JSON.stringify({ type: "module", private: true }))
    const files = new Map<string, Block>()
    const copies = new Map<string, string>()
    const folders = new Map<string, Set<string>>()
    for (const block of blocks) {
      const folder = folderOf(block.source)
      const names = folders.get(folder) ?? new Set<string>()
      folders.set(folder, names)
      let name = namedFile(block) ?? `line-${block.line}.ts`
      if (names.has(name)) {
        problems.push({ at: `${block.source}:${block.line}`, message: `a second block named ${name} on this page` })
        name = `line-${block.line}.ts`
      }
      names.add(name)
      mkdirSync(join(scratch, folder), { recursive: true })
      writeFileSync(join(scratch, folder, name), block.code + "\n")
      files.set(resolve(scratch, folder, name), block)
    }
    // stand-ins for the reader's own modules, where a page does not write them itself
    const contextFiles = readdirSync(options.context)
    for (const [folder, names] of folders) {
      for (const file of contextFiles) {
        if (file.endsWith(".d.ts") || !file.endsWith(".ts") || names.has(file)) continue
        copyFileSync(join(options.context, file), join(scratch, folder, file))
        copies.set(resolve(scratch, folder, file), join(options.context, file))
      }
    }
    for (const file of contextFiles) {
      if (!file.endsWith(".d.ts")) continue
      copyFileSync(join(options.context, file), join(scratch, file))
      copies.set(resolve(scratch, file), join(options.context, file))
    }

    writeFileSync(
      join(scratch, "tsconfig.json"),
      JSON.stringify({
        // the project's own flags, strict ones included
        extends: join(options.root, "tsconfig.json"),
        compilerOptions: {
          noEmit: true,
          // blocks declare the same names (`program`, `pool`): each file is its own module
          moduleDetection: "force",
          paths
        },
        include: ["**/*.ts"],
        exclude: ["node_modules"]
      }, null, 2)
    )

    const tsc = join(options.root, "node_modules/typescript/bin/tsc")
    const output = await new Promise<string>((done) =>
      execFile(
        process.execPath,
        // --listFiles: a block that tsc did not read would otherwise pass for one that compiles
        [tsc, "-p", scratch, "--pretty", "false", "--listFiles"],
        { cwd: scratch, maxBuffer: 64 << 20 },
        (error, stdout, stderr) => {
          // exit code 0, or 1/2 with diagnostics; anything else is a crash worth seeing
          done(error !== null && !stdout.split("\n").some((line) => ERROR_LINE.test(line)) ? `tsc failed: ${error.message}\n${stdout}${stderr}` : stdout + stderr)
        }
      )
    )
    const read = new Set<string>()
    let last: { at: string; message: string } | undefined
    for (const line of output.split("\n")) {
      const match = ERROR_LINE.exec(line)
      if (match === null && files.has(resolve(scratch, line.trim()))) {
        read.add(resolve(scratch, line.trim()))
      } else if (match === null && isAbsolute(line) && existsSync(line)) {
        continue // a library file tsc read
      } else if (match !== null) {
        const [, file, row, column, code, message] = match
        last = { at: locate(files, copies, resolve(scratch, file!), Number(row), Number(column), options.root), message: `${code} ${message}` }
        problems.push(last)
      } else if (line.trim() !== "") {
        if (last !== undefined && /^\s/.test(line)) last.message += `\n${line}`
        else problems.push(last = { at: "tsc", message: line })
      }
    }
    for (const [file, block] of files) {
      if (!read.has(file)) problems.push({ at: `${block.source}:${block.line}`, message: "tsc did not read this block" })
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
  return problems.sort(byPlace)
}

/**
 * The package's entries, as `paths` from each import name to the source of the file it exports:
 * `effect-workpool/WorkPool` → `<root>/src/WorkPool.ts`. Built files are read as their sources, so
 * the docs are checked without a build.
 */
const exportedPaths = (root: string): Record<string, Array<string>> => {
  const manifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
    name: string
    exports: string | Record<string, string | { types?: string; default?: string }>
  }
  const entries = typeof manifest.exports === "string" ? { ".": manifest.exports } : manifest.exports
  const paths: Record<string, Array<string>> = {}
  for (const [key, target] of Object.entries(entries)) {
    const file = typeof target === "string" ? target : target.types ?? target.default
    if (file === undefined || !/\.(d\.ts|js|ts)$/.test(file)) continue // ./package.json
    const source = file.replace(/^\.\/dist\//, "./src/").replace(/(\.d\.ts|\.js)$/, ".ts")
    if (!existsSync(join(root, source))) throw new Error(`package.json exports ${key} as ${file}, but ${source} does not exist`)
    paths[key === "." ? manifest.name : `${manifest.name}/${key.slice(2)}`] = [join(root, source)]
  }
  return paths
}

/** In the order of the file, line and column they point at. */
const byPlace = (a: Problem, b: Problem): number => {
  const [fileA = "", ...restA] = a.at.split(":")
  const [fileB = "", ...restB] = b.at.split(":")
  if (fileA !== fileB) return fileA < fileB ? -1 : 1
  const numbers = (rest: Array<string>) => rest.map(Number)
  const [lineA = 0, columnA = 0] = numbers(restA)
  const [lineB = 0, columnB = 0] = numbers(restB)
  return lineA - lineB || columnA - columnB
}

const locate = (
  files: Map<string, Block>,
  copies: Map<string, string>,
  file: string,
  row: number,
  column: number,
  root: string
): string => {
  const block = files.get(file)
  if (block === undefined) return `${relative(root, copies.get(file) ?? file)}:${row}:${column}`
  const origin = block.origins[row - 1]
  return origin === undefined ? `${block.source}:${block.line}` : `${block.source}:${origin.line}:${column + origin.indent}`
}

/** Problems as the lines a failing test prints. */
export const format = (problems: ReadonlyArray<Problem>): string =>
  problems.map((problem) => `${problem.at}: ${problem.message}`).join("\n")
