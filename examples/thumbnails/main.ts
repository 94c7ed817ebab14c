/**
 * An image-thumbnail pipeline on worker threads.
 *
 * The articles' image example: a pile of photos, a pool of workers, a thumbnail for each, a line
 * per image (✓ or ✗) and a total. In Go every worker is a goroutine on any core. In Node, decoding
 * and resizing images is CPU work that a fiber pool would run one at a time on the main thread, so
 * here it runs on a `ThreadPool`: each thread decodes a JPEG, shrinks it with a box filter and
 * encodes the thumbnail, with jpeg-js (a pure-JavaScript codec: no native addon to build).
 *
 * What it does:
 *   1. makes IMAGES sample photos (PHOTO×(0.8 PHOTO) landscapes, every fourth one a portrait; PHOTO
 *      is 1000 by default), drawn and encoded on the pool too, and writes them to OUT/photos, with one file that is not a JPEG at all;
 *   2. reads each file and sends its bytes to a thread as a transferred `ArrayBuffer` (moved, not
 *      copied: the main thread's buffer is detached), gets the thumbnail back and writes it to
 *      OUT/thumbs; the broken file fails with its own typed error, `NotAJpeg`, and the rest go on.
 *
 * The main thread does the file I/O, the threads do the pixels.
 *
 * Run:
 *   node examples/thumbnails/main.ts
 *   IMAGES=40 THREADS=4 node examples/thumbnails/main.ts
 *   OUT=/tmp/thumbs SIZE=320 node examples/thumbnails/main.ts   # output folder, thumbnail size
 *   PHOTO=2000 node examples/thumbnails/main.ts                  # longest side of the sample photos
 * (OUT defaults to a new folder in the system's temp directory; the program prints it.)
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Config, Console, Duration, Effect, FileSystem, Option, Result } from "effect"
import { availableParallelism } from "node:os"
import { join } from "node:path"
import * as ThreadPool from "../../src/ThreadPool.ts"
import { MakePhoto, Thumbnail } from "./tasks.ts"

const settings = Config.all({
  images: Config.Int("IMAGES").pipe(Config.withDefault(12)),
  threads: Config.Int("THREADS").pipe(Config.withDefault(availableParallelism())),
  maxSide: Config.Int("SIZE").pipe(Config.withDefault(200)),
  photoSide: Config.Int("PHOTO").pipe(Config.withDefault(1000)),
  out: Config.option(Config.String("OUT"))
})

const kb = (bytes: number) => `${Math.round(bytes / 1024)} KB`
const seconds = (duration: Duration.Duration) => `${(Duration.toMillis(duration) / 1000).toFixed(2)} s`

/**
 * The `ArrayBuffer` behind a file's bytes, to transfer. Node's `readFile` gives a Buffer that owns
 * its whole ArrayBuffer; a view into a larger (or shared) buffer is copied first, because
 * transferring it would move, or refuse to move, bytes that are not ours.
 */
const ownBuffer = (bytes: Uint8Array): ArrayBuffer =>
  bytes.buffer instanceof ArrayBuffer && bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
    ? bytes.buffer
    : bytes.slice().buffer

const program = Effect.gen(function*() {
  const { images, maxSide, out: outOption, photoSide, threads } = yield* settings
  const fs = yield* FileSystem.FileSystem
  const out = Option.isSome(outOption)
    ? outOption.value
    : yield* fs.makeTempDirectory({ prefix: "effect-workpool-thumbnails-" })
  const photos = join(out, "photos")
  const thumbs = join(out, "thumbs")
  yield* fs.makeDirectory(photos, { recursive: true })
  yield* fs.makeDirectory(thumbs, { recursive: true })

  // The pool lives as long as this program's scope; `make` returns once every thread is ready.
  const pool = yield* ThreadPool.make({
    worker: new URL("./worker.ts", import.meta.url),
    threads,
    timeout: "30 seconds", // per task, from its start: a stuck decode cannot hold a thread forever
    resourceLimits: { maxOldGenerationSizeMb: 256 } // a thread that blows this crashes alone
  })
  yield* Console.log(`${yield* pool.threads} threads ready`)

  // 1. Sample photos, drawn and encoded on the threads; runAll keeps the input order.
  const specs = Array.from({ length: images }, (_, i) => {
    const portrait = i % 4 === 3
    const shortSide = Math.round(photoSide * 0.8)
    return {
      name: `photo-${String(i + 1).padStart(2, "0")}.jpg`,
      payload: { width: portrait ? shortSide : photoSide, height: portrait ? photoSide : shortSide, seed: i + 1 }
    }
  })
  const [madeIn, jpegs] = yield* Effect.timed(pool.runAll(MakePhoto, specs.map((spec) => spec.payload)))
  yield* Effect.forEach(specs, (spec, i) => fs.writeFile(join(photos, spec.name), jpegs[i]!), { discard: true })
  yield* fs.writeFileString(join(photos, "corrupt.jpg"), "this file is not a JPEG\n")
  const total = jpegs.reduce((sum, jpeg) => sum + jpeg.byteLength, 0)
  yield* Console.log(`made ${images} sample photos (${kb(total)}) and corrupt.jpg in ${photos} in ${seconds(madeIn)}`)

  // 2. Thumbnails: one task per file. All are submitted at once; the pool runs `threads` at a time
  // and queues the rest. Each line is printed as its image finishes.
  const names = (yield* fs.readDirectory(photos)).filter((name) => name.endsWith(".jpg")).sort()
  const thumbnail = (name: string) =>
    Effect.gen(function*() {
      const jpeg = ownBuffer(yield* fs.readFile(join(photos, name)))
      const size = jpeg.byteLength
      // `transfer` moves the buffer to the thread when the task starts; from then on it is empty here
      const result = yield* Effect.result(
        pool.run(Thumbnail, { name, jpeg, maxSide, quality: 80 }, { transfer: [jpeg] })
      )
      const moved = jpeg.byteLength === 0
      if (Result.isFailure(result)) {
        const error = result.failure
        yield* Console.log(`✗ ${name}  ${error._tag}: ${error._tag === "NotAJpeg" ? error.reason : error.message}`)
        return { ok: false, moved, millis: 0 }
      }
      const t = result.success
      yield* fs.writeFile(join(thumbs, name), t.jpeg)
      yield* Console.log(
        `✓ ${name}  ${t.sourceWidth}×${t.sourceHeight} (${kb(size)}) → ${t.width}×${t.height} (${kb(t.jpeg.byteLength)})` +
          `  ${Math.round(t.millis)} ms on thread ${t.thread}`
      )
      return { ok: true, moved, millis: t.millis }
    })
  const [elapsed, results] = yield* Effect.timed(Effect.forEach(names, thumbnail, { concurrency: "unbounded" }))

  const written = results.filter((r) => r.ok).length
  const busy = results.reduce((sum, r) => sum + r.millis, 0)
  yield* Console.log(
    `${written} thumbnails written to ${thumbs}, ${names.length - written} failed, in ${seconds(elapsed)} ` +
      `on ${threads} threads (${(busy / 1000).toFixed(2)} s of decode, resize and encode in the threads)`
  )
  yield* Console.log(
    `transfer: ${results.filter((r) => r.moved).length} of ${names.length} source buffers were moved to the threads, not copied`
  )
})

// Effect.scoped: closing the scope shuts the pool down and terminates its threads.
NodeRuntime.runMain(program.pipe(Effect.scoped, Effect.provide(NodeFileSystem.layer)))
