/**
 * A scraper: many URLs, bounded concurrency, flat memory.
 *
 * "Consider a web scraper processing 100,000 URLs": starting one request per URL at once exhausts
 * sockets and memory, so the work goes through a fixed number of workers. But bounding the workers
 * is only half of it. If the program first builds 100,000 jobs (or collects 100,000 results) in an
 * array, memory still grows with the input. Here nothing grows with the input:
 *
 *  - the URLs come from a lazy `Stream` (a range of page numbers), never an array;
 *  - `WorkPool.mapStream` feeds them to the pool, with at most `buffer` pages in flight;
 *  - the results are folded into a running summary as they arrive, never collected.
 *
 * The pages come from a small HTTP server that this program starts itself on 127.0.0.1 (port 0,
 * any free port), so it needs no network and no outside site sees the load.
 *
 * Run: node examples/scraper.ts   (PAGES=20000 by default, WORKERS=50)
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Config, Console, Effect, Result, Schema, Stream } from "effect"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import { WorkPool } from "../src/index.ts"

// --- the site to scrape: a local server, started and stopped with the program --------------------

/** Every page links to nothing and says its number; every 100th page is a server error. */
const localSite = Effect.acquireRelease(
  Effect.callback<{ readonly origin: string; readonly close: () => void }>((resume) => {
    const server = createServer((request, response) => {
      const page = Number(request.url?.split("/").pop())
      if (page % 100 === 99) {
        response.writeHead(500).end("oops")
        return
      }
      // A little latency, as a real site would have, so that concurrency matters.
      setTimeout(() => {
        response.writeHead(200, { "content-type": "text/html" })
        response.end(`<html><head><title>Page ${page}</title></head><body>${"lorem ipsum ".repeat(50)}</body></html>`)
      }, 2)
    })
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      resume(Effect.succeed({
        origin: `http://127.0.0.1:${port}`,
        close: () => {
          server.closeAllConnections() // keep-alive sockets from the client would hold close() open
          server.close()
        }
      }))
    })
  }),
  (site) => Effect.sync(site.close)
)

// --- the scraper -------------------------------------------------------------------------------

class FetchFailed extends Schema.TaggedError<FetchFailed>()("FetchFailed", {
  url: Schema.String,
  reason: Schema.String
}) {}

/**
 * Fetches a page and extracts its title. `tryPromise` hands us an AbortSignal: if the job is
 * interrupted (a timeout, a cancelled run), the request itself is aborted, not left running.
 */
const scrape = (url: string) =>
  Effect.tryPromise({
    try: async (signal) => {
      const response = await fetch(url, { signal })
      const html = await response.text()
      if (!response.ok) throw new Error(`HTTP ${response.status}`)
      return { url, bytes: html.length, title: /<title>(.*?)<\/title>/.exec(html)?.[1] ?? "" }
    },
    catch: (error) => new FetchFailed({ url, reason: error instanceof Error ? error.message : String(error) })
  })

/**
 * Live heap: `heapUsed` right after a full garbage collection. Plain `heapUsed` is a sawtooth (it
 * climbs with garbage until the collector runs), which hides whether live memory grows. `gc` is
 * normally only there with `node --expose-gc`; this enables it from inside the program instead.
 */
setFlagsFromString("--expose-gc")
const collectGarbage = runInNewContext("gc") as () => void
const liveHeap = () => {
  collectGarbage()
  return process.memoryUsage().heapUsed
}

const megabytes = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1).padStart(5)} MB`

const program = Effect.gen(function*() {
  const pages = yield* Config.Int("PAGES").pipe(Config.withDefault(20_000))
  const workers = yield* Config.Int("WORKERS").pipe(Config.withDefault(50))
  const site = yield* localSite
  // 50 requests at a time, each with a deadline. `capacity` bounds the pool's own queue as well.
  const pool = yield* WorkPool.make({ concurrency: workers, capacity: workers * 2, timeout: "10 seconds" })
  yield* Console.log(`scraping ${pages} pages from ${site.origin} with ${workers} workers`)

  const every = Math.max(1, Math.floor(pages / 10))
  const heap = { min: Infinity, max: 0 }
  const started = Date.now()

  const summary = yield* Stream.range(1, pages).pipe(
    // At most `buffer` pages in the pool at once (default: twice the workers). A failed page is
    // kept as a value (Effect.result) so that one bad page does not stop the crawl.
    WorkPool.mapStream(pool, (page) => Effect.result(scrape(`${site.origin}/page/${page}`)), { unordered: true }),
    Stream.runFold(
      () => ({ done: 0, failed: 0, bytes: 0 }),
      (acc, result) => {
        acc.done++
        if (Result.isFailure(result)) acc.failed++
        else acc.bytes += result.success.bytes
        if (acc.done % every === 0) {
          const heapUsed = liveHeap()
          heap.min = Math.min(heap.min, heapUsed)
          heap.max = Math.max(heap.max, heapUsed)
          const rate = Math.round(acc.done / ((Date.now() - started) / 1000))
          console.log(`${String(acc.done).padStart(7)} pages  heapUsed after GC ${megabytes(heapUsed)}  ${rate} pages/s`)
        }
        return acc
      }
    )
  )

  yield* Console.log(
    `done: ${summary.done} pages, ${summary.failed} failed, ${megabytes(summary.bytes).trim()} of HTML downloaded`
  )
  yield* Console.log(`live heap stayed between ${megabytes(heap.min).trim()} and ${megabytes(heap.max).trim()}`)
  const stats = yield* pool.stats
  yield* Console.log(`pool: ${stats.succeeded} jobs, mean run ${stats.meanRunMillis.toFixed(1)} ms`)
})

NodeRuntime.runMain(Effect.scoped(program))
