/**
 * A pool as a service, composed with the other services of an app in Layers.
 *
 * A real application does not pass a pool around by hand. It declares the pool once, as a service
 * with its settings (`WorkPool.Service`), and whoever needs it asks for it. The layer that builds
 * the pool also owns its lifetime: when the app's layers are released (at the end of `main`, on
 * SIGTERM, at the end of a test), the pool shuts down gracefully and no worker fiber is left over.
 *
 * The app here: an `ImageStore` (where images come from), a `Thumbnails` pool (bounded resize
 * work), and a `Gallery` service that uses both. The tests in test/examples/layered-app.test.ts
 * swap the store for an in-memory one and drive time with `TestClock`, so they never sleep.
 *
 * Run: node examples/layered-app.ts
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Context, Duration, Effect, Layer, Schema } from "effect"
import { type PoolError, WorkPool } from "../src/index.ts"

// --- domain --------------------------------------------------------------------------------------

export interface Image {
  readonly name: string
  readonly megapixels: number
}
export interface Thumbnail {
  readonly image: string
  readonly bytes: number
}
export class ImageMissing extends Schema.TaggedError<ImageMissing>()("ImageMissing", { name: Schema.String }) {}

// --- services ------------------------------------------------------------------------------------

/** Where images come from: a bucket, a disk, a database. */
export class ImageStore extends Context.Service<ImageStore, {
  readonly load: (name: string) => Effect.Effect<Image, ImageMissing>
}>()("app/ImageStore") {
  /** An in-memory store; the "real" one below is the same with some latency. */
  static readonly fromImages = (images: ReadonlyArray<Image>, latency: Duration.Input = 0) =>
    Layer.succeed(ImageStore, ImageStore.of({
      load: (name) => {
        const image = images.find((i) => i.name === name)
        return image === undefined ? Effect.fail(new ImageMissing({ name })) : Effect.as(Effect.sleep(latency), image)
      }
    }))

  static readonly layer = ImageStore.fromImages([
    { name: "beach.jpg", megapixels: 2 },
    { name: "city.jpg", megapixels: 3 },
    { name: "forest.jpg", megapixels: 1 },
    { name: "portrait.jpg", megapixels: 2 },
    { name: "panorama.tiff", megapixels: 40 } // too big to resize within the pool's timeout
  ], "10 millis")
}

/**
 * The pool, declared like any other service. Two resizes at a time (they are heavy), room for 100
 * waiting jobs, and no resize may take longer than one second.
 */
export class Thumbnails extends WorkPool.Service<Thumbnails>()("app/Thumbnails", {
  concurrency: 2,
  capacity: 100,
  timeout: "1 second"
}) {}

/** Resizing costs 50 ms per megapixel. It needs an `ImageStore`: jobs run with their caller's services. */
export const resize = (name: string) =>
  Effect.gen(function*() {
    const store = yield* ImageStore
    const image = yield* store.load(name)
    yield* Effect.sleep(Duration.millis(image.megapixels * 50))
    return { image: name, bytes: image.megapixels * 1_000 } satisfies Thumbnail
  })

/** The feature the rest of the app sees. It does not know (or care) that a pool is involved. */
export class Gallery extends Context.Service<Gallery, {
  /** Thumbnails for a whole album, in order; batch work at normal priority. */
  readonly publish: (images: ReadonlyArray<string>) => Effect.Effect<Array<Thumbnail>, ImageMissing | PoolError.JobError>
  /** One thumbnail for a user who is waiting for it: ahead of batch work in the queue. */
  readonly preview: (image: string) => Effect.Effect<Thumbnail, ImageMissing | PoolError.JobError>
}>()("app/Gallery") {
  static readonly layer = Layer.effect(Gallery, Effect.gen(function*() {
    const pool = yield* Thumbnails
    // Capture the ImageStore once, so that the Gallery's methods require nothing more.
    const store = yield* ImageStore
    const withStore = Effect.provideService(ImageStore, store)
    return Gallery.of({
      publish: (images) => withStore(pool.runAll(images.map(resize))),
      preview: (image) => withStore(pool.run(resize(image), { priority: 10 }))
    })
  }))
}

/**
 * The whole app. `provideMerge` keeps `Thumbnails` in the output too, so `main` (and the tests) can
 * look at the pool's stats.
 */
export const AppLayer = Gallery.layer.pipe(
  Layer.provideMerge(Thumbnails.layer),
  Layer.provide(ImageStore.layer)
)

// --- main ----------------------------------------------------------------------------------------

const main = Effect.gen(function*() {
  const gallery = yield* Gallery
  const album = yield* gallery.publish(["beach.jpg", "city.jpg", "forest.jpg", "portrait.jpg"])
  yield* Console.log(`published ${album.length} thumbnails: ${album.map((t) => `${t.image} (${t.bytes} B)`).join(", ")}`)

  // Typed errors from the store and from the pool arrive through the same channel, each by its tag.
  const describe = Effect.map((t: Thumbnail) => `preview of ${t.image} ready`)
  yield* Console.log(yield* gallery.preview("cat.gif").pipe(
    describe,
    Effect.catchTag("ImageMissing", (e) => Effect.succeed(`no such image: ${e.name}`))
  ))
  yield* Console.log(yield* gallery.preview("panorama.tiff").pipe(
    describe,
    Effect.catchTag("JobTimeout", (e) => Effect.succeed(`gave up on panorama.tiff after ${e.millis} ms`))
  ))

  const stats = yield* (yield* Thumbnails).stats
  yield* Console.log(`pool: ${stats.succeeded} succeeded, ${stats.failed} failed, ${stats.timedOut} timed out`)
})

// Only when run as a program, so that the test can import the layers without starting anything.
if (import.meta.main) NodeRuntime.runMain(main.pipe(Effect.provide(AppLayer)))
