/**
 * The docs compile: every ```ts block of the Markdown pages (*.md, docs/*.md, examples/*.md), and every
 * `@example` in the JSDoc of the public modules (src/*.ts), typechecked with the project's strict
 * flags as a user would import them (`effect-workpool`, `effect-workpool/ThreadPool`, ...). A block
 * that does not compile fails here with the file and line of the block; so does a public export
 * without an `@example`.
 */
import { describe, expect, it } from "@effect/vitest"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { type Block, exportsWithoutExample, format, jsdocExamples, markdownBlocks, type Problem, typecheck } from "./docs/snippets.ts"

const root = fileURLToPath(new URL("..", import.meta.url))
const context = fileURLToPath(new URL("./docs/context", import.meta.url))
const read = (file: string) => readFileSync(join(root, file), "utf8")

const markdownIn = (folder: string) =>
  readdirSync(join(root, folder)).filter((file) => file.endsWith(".md")).map((file) => join(folder, file))
// README.md, CHANGELOG.md, ...; docs/; examples/README.md
const pages = [...markdownIn("."), ...markdownIn("docs"), ...markdownIn("examples")]
const modules = readdirSync(join(root, "src")).filter((file) => file.endsWith(".ts")).map((file) => `src/${file}`)

const collect = () => {
  const markdown = pages.flatMap((page) => markdownBlocks(page, read(page)))
  const problems: Array<Problem> = []
  const examples: Array<Block> = []
  for (const module of modules) {
    const text = read(module)
    const found = jsdocExamples(module, text)
    examples.push(...found.blocks)
    problems.push(...found.problems, ...exportsWithoutExample(module, text))
    // each @example and each ```ts fence is either checked or reported: none is skipped because
    // the parser missed it
    const tags = text.match(/@example\b/g)?.length ?? 0
    const fences = text.match(/```(ts|typescript)\b/g)?.length ?? 0
    if (found.blocks.length + found.problems.length !== tags || found.blocks.length !== fences) {
      problems.push({
        at: module,
        message: `${tags} @example tags and ${fences} \`\`\`ts fences, but ${found.blocks.length} examples found`
      })
    }
  }
  return { markdown, examples, problems }
}

describe("docs", () => {
  it("every TypeScript block and JSDoc @example compiles", async () => {
    const { examples, markdown, problems } = collect()
    problems.push(...await typecheck([...markdown, ...examples], { root, context }))
    expect(format(problems), `${problems.length} problems in the docs`).toBe("")
    // a change to the extraction that finds nothing, or much less, must not pass as "all compile"
    expect(examples.length).toBeGreaterThanOrEqual(41)
    expect(markdown.length).toBeGreaterThanOrEqual(14)
    for (const module of ["src/WorkPool.ts", "src/PoolError.ts", "src/ThreadPool.ts", "src/ThreadWorker.ts", "src/Task.ts"]) {
      expect(examples.some((block) => block.source === module), `examples in ${module}`).toBe(true)
    }
  }, 180_000)
})

describe("the docs check itself", () => {
  const page = [
    "# A page", // 1
    "", // 2
    "```ts", // 3
    "import { Effect } from \"effect\"", // 4
    "export const ok = Effect.succeed(1)", // 5
    "```", // 6
    "", // 7
    "```sh", // 8
    "npm test", // 9
    "```", // 10
    "", // 11
    "  ```typescript", // 12
    "  const n: number = \"not a number\"", // 13
    "  ```", // 14
    "", // 15
    "```ts", // 16
    "const xs: Array<number> = [1]", // 17
    "export const first: number = xs[0] // an error under the project's noUncheckedIndexedAccess", // 18
    "```" // 19
  ].join("\n")

  const module = [
    "/**", // 1
    " * Doubles.", // 2
    " *", // 3
    " * @example", // 4
    " * ```ts", // 5
    " * import { WorkPool } from \"effect-workpool\"", // 6
    " *", // 7
    " * const pool = WorkPool.make({ concurrency: \"four\" })", // 8
    " * ```", // 9
    " */", // 10
    "export const double = (n: number) => n * 2", // 11
    "/**", // 12
    " * @example", // 13
    " * const notFenced = 1", // 14
    " */" // 15
  ].join("\n")

  it("finds the ts blocks of a page and the line of their first line of code", () => {
    const blocks = markdownBlocks("page.md", page)
    expect(blocks.map((block) => [block.line, block.code])).toEqual([
      [4, "import { Effect } from \"effect\"\nexport const ok = Effect.succeed(1)"],
      [13, "const n: number = \"not a number\""],
      [17, "const xs: Array<number> = [1]\nexport const first: number = xs[0] // an error under the project's noUncheckedIndexedAccess"]
    ])
  })

  it("finds the @example blocks of a module, and reports an @example it cannot check", () => {
    const { blocks, problems } = jsdocExamples("src/Double.ts", module)
    expect(blocks.map((block) => [block.line, block.code])).toEqual([
      [6, "import { WorkPool } from \"effect-workpool\"\n\nconst pool = WorkPool.make({ concurrency: \"four\" })"]
    ])
    expect(problems).toEqual([{ at: "src/Double.ts:13", message: "an @example must start with a ```ts fence on the next line" }])
  })

  it("reports a public export without an @example", () => {
    const text = [
      ...module.split("\n"), // 1-15: double has an @example
      "", // 16
      "// not a JSDoc", // 17
      "export const triple = (n: number) => n * 3", // 18
      "", // 19
      "/** No example. */", // 20
      "export type N = number" // 21
    ]
    expect(exportsWithoutExample("src/Double.ts", text.join("\n"))).toEqual([
      { at: "src/Double.ts:18", message: "the export triple has no JSDoc @example" },
      { at: "src/Double.ts:21", message: "the export N has no JSDoc @example" }
    ])
  })

  it("reports a block that does not compile, under the project's strict flags, at its file, line and column", async () => {
    const blocks = [...markdownBlocks("page.md", page), ...jsdocExamples("src/Double.ts", module).blocks]
    const problems = await typecheck(blocks, { root, context })
    expect(problems.map((problem) => problem.at), format(problems)).toEqual(["page.md:13:9", "page.md:18:14", "src/Double.ts:8:33"])
    expect(problems[0]!.message).toContain("TS2322")
  }, 180_000)

  it("lets a doc import only what package.json exports", async () => {
    const page = [
      "```ts", // 1
      "import * as WorkPool from \"effect-workpool/WorkPool\"", // 2: the module's own entry
      "import * as ThreadPool from \"effect-workpool/ThreadPool\"", // 3
      "import { Scheduler } from \"effect-workpool/internal/scheduler\"", // 4: not exported
      "import { ThreadWorker } from \"effect-workpool\"", // 5: not in the platform-neutral root
      "```"
    ].join("\n")
    const problems = await typecheck(markdownBlocks("imports.md", page), { root, context })
    expect(problems.map((problem) => `${problem.at} ${problem.message.slice(0, 6)}`), format(problems)).toEqual([
      "imports.md:4:27 TS2307",
      "imports.md:5:10 TS2305"
    ])
  }, 180_000)

  it("refuses to check nothing", async () => {
    await expect(typecheck([], { root, context })).rejects.toThrow("no code blocks")
  })
})
