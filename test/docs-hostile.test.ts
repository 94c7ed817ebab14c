/**
 * The docs against the code: what the README's API section names exists, and what the package
 * exports is named there; what the docs check itself would miss.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Layer, Schema } from "effect"
import { TestClock } from "effect/testing"
import { readFileSync } from "node:fs"
import * as JobQueue from "../src/JobQueue.ts"
import * as JobStore from "../src/JobStore.ts"
import type { InvalidPoolConfig } from "../src/PoolError.ts"
import * as ThreadPool from "../src/ThreadPool.ts"
import * as WorkPool from "../src/WorkPool.ts"
import * as Dashboard from "../src/Dashboard.ts"
import * as Task from "../src/Task.ts"
import { exportsWithoutExample } from "./docs/snippets.ts"

const read = (file: string) => readFileSync(new URL(`../${file}`, import.meta.url), "utf8")

/** The README's section from `## The whole API in a screenful` to the next `## ` heading. */
const apiSection = (): string => {
  const readme = read("README.md")
  const start = readme.indexOf("## The whole API in a screenful")
  assert.isAtLeast(start, 0, "the README has its API section")
  const end = readme.indexOf("\n## ", start + 3)
  return readme.slice(start, end === -1 ? undefined : end)
}

/** Every public entry of package.json's `exports`, by the namespace the docs call it. */
const ENTRIES = [
  "WorkPool", "Task", "PoolError", "JobQueue", "DurableError",
  "ThreadPool", "ThreadWorker", "JobStore", "PgJobStore", "RedisJobStore", "Dashboard"
] as const

/** The names a module exports, values and types, read from its source. */
const exportedNames = (entry: string): Set<string> => {
  const text = read(`src/${entry}.ts`)
  const names = new Set<string>()
  for (const match of text.matchAll(/^export (?:declare )?(?:abstract )?(?:const|let|class|interface|type|function) (\w+)/gm)) {
    names.add(match[1]!)
  }
  for (const match of text.matchAll(/^export \{([^}]*)\}/gm)) {
    for (const item of match[1]!.split(",")) names.add(item.trim().split(/\s+as\s+/).at(-1)!)
  }
  return names
}

describe("the README's API section", () => {
  it("names every value each public entry exports, as Namespace.name", async () => {
    const section = apiSection()
    const missing: Array<string> = []
    for (const entry of ENTRIES) {
      const module: Record<string, unknown> = await import(`../src/${entry}.ts`)
      for (const name of Object.keys(module)) {
        if (!new RegExp(`\\b${entry}\\.${name}\\b`).test(section)) missing.push(`${entry}.${name}`)
      }
    }
    assert.deepStrictEqual(missing, [])
  }, 60_000)

  it("names, in the README and docs/, no Namespace.name that the package does not export", () => {
    const pages = ["README.md", "docs/durable.md", "docs/operations.md", "docs/threads.md"]
    const unknown: Array<string> = []
    for (const page of pages) {
      const text = read(page)
      for (const entry of ENTRIES) {
        const names = exportedNames(entry)
        for (const match of text.matchAll(new RegExp(`(?<![\\w./-])${entry}\\.(\\w+)\\b(?!\\.ts)`, "g"))) {
          if (!names.has(match[1]!)) unknown.push(`${page}: ${entry}.${match[1]}`)
        }
      }
    }
    assert.deepStrictEqual(unknown, [])
  })

  it.effect("names only members a pool and a job handle have", () =>
    Effect.gen(function*() {
      const section = apiSection()
      const pool = yield* WorkPool.make({ concurrency: 1 })
      const handle = yield* pool.submit(Effect.void)
      yield* handle.await
      const unknown: Array<string> = []
      for (const [owner, value] of [["pool", pool], ["handle", handle]] as const) {
        for (const match of section.matchAll(new RegExp(`\\b${owner}\\.(\\w+)`, "g"))) {
          if (!(match[1]! in value)) unknown.push(`${owner}.${match[1]}`)
        }
      }
      assert.deepStrictEqual(unknown, [])
    }))
})

/** The section of a page from its heading `heading` to the next heading of the same level or above. */
const section = (page: string, heading: string): string => {
  const text = read(page)
  const start = text.indexOf(`\n${heading}\n`)
  assert.isAtLeast(start, 0, `${page} has ${heading}`)
  const level = heading.split(" ")[0]!
  const end = text.slice(start + heading.length + 2).search(new RegExp(`\\n#{1,${level.length}} `))
  return end === -1 ? text.slice(start) : text.slice(start, start + heading.length + 2 + end)
}

/** The keys a `make` accepts, as its `InvalidPoolConfig` for a key it does not have lists them. */
const acceptedKeys = (make: Effect.Effect<unknown, unknown, any>) =>
  Effect.map(Effect.flip(Effect.scoped(make)), (error) => {
    const reason = (error as InvalidPoolConfig | Dashboard.InvalidDashboardOptions).reason
    const keys = /^expected only (.*?)(?: \(use .*\))?$/.exec(reason)?.[1]
    assert.isDefined(keys, reason)
    return keys!.split(", ")
  })

/** The keys a text never names: as `key`, or as `key:` in a code span or block. */
const unnamed = (keys: ReadonlyArray<string>, text: string) =>
  keys.filter((key) => !new RegExp(`\`${key}[\`:]|^\\s+${key}:|[{,]\\s*${key}:`, "m").test(text))

describe("the options the docs list", () => {
  it.effect("docs/threads.md's Options, which make 'takes', are every key ThreadPool.make takes", () =>
    Effect.gen(function*() {
      const keys = yield* acceptedKeys(ThreadPool.make({ worker: "./worker.ts", notAnOption: 1 } as any))
      assert.deepStrictEqual(unnamed(keys, section("docs/threads.md", "## Options")), [])
    }))

  it.effect("the README names every key WorkPool.make takes", () =>
    Effect.gen(function*() {
      const keys = yield* acceptedKeys(WorkPool.make({ concurrency: 1, notAnOption: 1 } as any))
      assert.deepStrictEqual(unnamed(keys, read("README.md")), [])
    }))

  it.effect("docs/durable.md names every key JobQueue.consume takes", () =>
    Effect.gen(function*() {
      const keys = yield* acceptedKeys(JobQueue.consume({ notAnOption: 1 } as any).pipe(Effect.provide(JobStore.memory())))
      assert.deepStrictEqual(unnamed(keys, read("docs/durable.md")), [])
    }))

  it.effect("docs/durable.md names every key JobQueue.enqueue takes", () =>
    Effect.gen(function*() {
      const Ping = Task.make("Ping", { payload: Schema.String, success: Schema.Void })
      const keys = yield* acceptedKeys(JobQueue.enqueue(Ping, "hi", { notAnOption: 1 } as any).pipe(Effect.provide(JobStore.memory())))
      assert.deepStrictEqual(unnamed(keys, read("docs/durable.md")), [])
    }))

  it.effect("docs/operations.md's dashboard Options are every key Dashboard.layer takes", () =>
    Effect.gen(function*() {
      const keys = yield* acceptedKeys(Layer.build(Dashboard.layer({ notAnOption: 1 } as any)))
      assert.deepStrictEqual(unnamed(keys, section("docs/operations.md", "### Options")), [])
    }))
})

describe("the docs' examples run", () => {
  it.effect("every dashboard token the docs write (a literal, or a fallback for an unset variable) is one Dashboard.layer takes", () =>
    Effect.gen(function*() {
      const sources = ["README.md", "docs/operations.md", "src/Dashboard.ts", "examples/demo.ts"]
      const tokens = sources.flatMap((source) =>
        [...read(source).matchAll(/token:\s*(?:Redacted\.make\()?(?:[^"\n]*\?\?\s*)?"([^"]*)"/g)].map((match) => ({ source, token: match[1]! }))
      )
      assert.isAtLeast(tokens.length, 1)
      const refused: Array<string> = []
      for (const { source, token } of tokens) {
        const exit = yield* Effect.exit(Effect.scoped(Layer.build(Dashboard.layer({ token }))))
        if (exit._tag === "Failure") refused.push(`${source}: ${JSON.stringify(token)}`)
      }
      assert.deepStrictEqual(refused, [])
    }))
})

describe("what an error says to try is accepted", () => {
  /**
   * The reason of a refused duration, or undefined if `value` is accepted. The reason is read as
   * documentation: a user whose value was refused tries what it names next.
   */
  const refusal = (attempt: (value: unknown) => Effect.Effect<unknown, unknown, any>) => (value: unknown) =>
    Effect.map(Effect.exit(Effect.scoped(attempt(value))), (exit) =>
      exit._tag === "Success" ? undefined : String((Cause.squash(exit.cause) as { reason?: unknown }).reason))

  /** The hints a refused value's reason gives: "use Infinity" asks for Infinity, "at least 0" admits 0, "above 0" 1 ms. */
  const hinted = (reason: string): ReadonlyArray<number> => [
    ...(/use Infinity/.test(reason) ? [Infinity] : []),
    ...(/at least 0/.test(reason) ? [0] : []),
    ...(/above 0/.test(reason) ? [1] : [])
  ]

  const Ping = Task.make("Ping", { payload: Schema.String, success: Schema.Void })
  const durations: ReadonlyArray<readonly [string, (value: unknown) => Effect.Effect<unknown, unknown, any>]> = [
    ["WorkPool queueTimeout", (queueTimeout) => WorkPool.make({ concurrency: 1, queueTimeout } as any)],
    ["WorkPool shutdownTimeout", (shutdownTimeout) => WorkPool.make({ concurrency: 1, shutdownTimeout } as any)],
    ["WorkPool rateLimit.interval", (interval) => WorkPool.make({ concurrency: 1, rateLimit: { limit: 1, interval } } as any)],
    ["a job's timeout", (timeout) => Effect.flatMap(WorkPool.make({ concurrency: 1 }), (pool) => pool.run(Effect.void, { timeout } as any))],
    ["consume lease", (lease) =>
      JobQueue.consume({ handlers: [Task.handle(Ping, () => Effect.void)], concurrency: 1, lease, shutdownTimeout: 0 } as any).pipe(
        Effect.provide(JobStore.memory())
      )],
    ["consume poll", (poll) =>
      JobQueue.consume({ handlers: [Task.handle(Ping, () => Effect.void)], concurrency: 1, poll, shutdownTimeout: 0 } as any).pipe(
        Effect.provide(JobStore.memory())
      )],
    ["enqueue retry.exponential", (exponential) =>
      JobQueue.enqueue(Ping, "hi", { retry: { exponential } } as any).pipe(Effect.provide(JobStore.memory()))],
    ["Dashboard interval", (interval) => Layer.build(Dashboard.layer({ interval } as any))],
    ["WorkPool aging", (aging) => WorkPool.make({ concurrency: 1, aging } as any)],
    ["WorkPool retention.age", (age) => WorkPool.make({ concurrency: 1, retention: { count: 1, age } } as any)],
    ["enqueue timeout", (timeout) => JobQueue.enqueue(Ping, "hi", { timeout } as any).pipe(Effect.provide(JobStore.memory()))],
    ["enqueue delay", (delay) => JobQueue.enqueue(Ping, "hi", { delay } as any).pipe(Effect.provide(JobStore.memory()))],
    ["purge olderThan", (olderThan) => JobQueue.purge({ olderThan } as any).pipe(Effect.provide(JobStore.memory()))],
    ["setAging", (aging) => JobQueue.setAging("q", aging as any).pipe(Effect.provide(JobStore.memory()))]
  ]

  for (const [name, attempt] of durations) {
    it.effect(`${name}: a refused duration's reason names no value that is refused too`, () =>
      Effect.gen(function*() {
        const refused = refusal(attempt)
        const misleading: Array<string> = []
        for (const value of [-1, 0, Infinity]) {
          const reason = yield* refused(value)
          if (reason === undefined) continue
          for (const hint of hinted(reason)) {
            const again = yield* refused(hint)
            if (again !== undefined) misleading.push(`${value}: "${reason}", but ${hint}: "${again}"`)
          }
        }
        assert.deepStrictEqual(misleading, [])
      }))
  }
})

describe("what the JSDoc promises", () => {
  const Nap = Task.make("Nap", { payload: Schema.Number, success: Schema.String })

  // EnqueueOptions.timeout: "Per attempt; at most 1e15 ms, or `Infinity` for none (the default: the
  // consumer's)". Infinity was stored as 0, the consumer's default, so a producer could not give a
  // long job no timeout under a consumer that has one: it died with AttemptTimeout.
  it.effect("a durable job enqueued with timeout: Infinity has none, under a consumer whose default is 1 second", () =>
    Effect.gen(function*() {
      yield* JobQueue.consume({
        handlers: [Task.handle(Nap, (seconds) => Effect.as(Effect.sleep(`${seconds} seconds`), `slept ${seconds}`))],
        concurrency: 2,
        timeout: "1 second",
        lease: "1 minute"
      })
      const unbounded = yield* JobQueue.enqueue(Nap, 5, { timeout: Infinity, maxAttempts: 1 })
      const bounded = yield* JobQueue.enqueue(Nap, 5, { maxAttempts: 1 })
      const results = yield* Effect.forkChild(Effect.all([Effect.exit(unbounded.await), Effect.exit(bounded.await)]))
      for (let i = 0; i < 6; i++) yield* TestClock.adjust("1 second")
      const [withNone, withDefault] = yield* Fiber.join(results)
      assert.deepStrictEqual(withNone, Exit.succeed("slept 5"))
      assert.strictEqual(withDefault._tag === "Failure" && (Cause.squash(withDefault.cause) as { _tag?: string })._tag, "AttemptTimeout")
    }).pipe(Effect.scoped, Effect.provide(JobStore.memory())))
})

describe("the docs check", () => {
  it("asks for an @example on an export written as export { name as alias } too", () => {
    const text = [
      "const awaitJob = 1", // 1
      "", // 2
      "/** No example. */", // 3
      "export { awaitJob as await }" // 4
    ].join("\n")
    assert.deepStrictEqual(exportsWithoutExample("src/Alias.ts", text), [
      { at: "src/Alias.ts:4", message: "the export await has no JSDoc @example" }
    ])
  })
})
