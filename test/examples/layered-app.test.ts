/**
 * Tests for examples/layered-app.ts: the app's real `Gallery` and `Thumbnails` layers, with the
 * image store replaced by an in-memory one. Time is virtual (`it.effect` runs on `TestClock`), so
 * a 40-megapixel resize "takes" two seconds without the test waiting for it.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Layer, Scope } from "effect"
import { TestClock } from "effect/testing"
import { Gallery, ImageStore, Thumbnails } from "../../examples/layered-app.ts"

// 50 ms of resizing per megapixel: 100 ms each for these, 2 s for the panorama.
const images = [
  { name: "a.jpg", megapixels: 2 },
  { name: "b.jpg", megapixels: 2 },
  { name: "c.jpg", megapixels: 2 },
  { name: "d.jpg", megapixels: 2 },
  { name: "panorama.tiff", megapixels: 40 }
]

// Built per test by `Effect.provide`, so every test gets a fresh pool.
const TestApp = Gallery.layer.pipe(
  Layer.provideMerge(Thumbnails.layer),
  Layer.provide(ImageStore.fromImages(images))
)

describe("layered-app", () => {
  it.effect("publishes an album through the pool, two resizes at a time", () =>
    Effect.gen(function*() {
      const gallery = yield* Gallery
      const pool = yield* Thumbnails
      const publishing = yield* Effect.forkChild(gallery.publish(["a.jpg", "b.jpg", "c.jpg", "d.jpg"]))
      yield* Effect.yieldNow

      let stats = yield* pool.stats
      assert.strictEqual(stats.running, 2) // concurrency 2
      assert.strictEqual(stats.queued, 2)

      yield* TestClock.adjust("100 millis")
      stats = yield* pool.stats
      assert.strictEqual(stats.succeeded, 2)
      assert.strictEqual(stats.running, 2)

      yield* TestClock.adjust("100 millis")
      const album = yield* Fiber.join(publishing)
      assert.deepStrictEqual(album.map((t) => t.image), ["a.jpg", "b.jpg", "c.jpg", "d.jpg"])
      assert.deepStrictEqual(album.map((t) => t.bytes), [2000, 2000, 2000, 2000])
    }).pipe(Effect.provide(TestApp)))

  it.effect("a preview jumps ahead of queued batch work", () =>
    Effect.gen(function*() {
      const gallery = yield* Gallery
      const pool = yield* Thumbnails
      const publishing = yield* Effect.forkChild(gallery.publish(["a.jpg", "b.jpg", "c.jpg", "d.jpg"]))
      yield* Effect.yieldNow
      const preview = yield* Effect.forkChild(gallery.preview("c.jpg"))
      yield* Effect.yieldNow
      assert.strictEqual((yield* pool.stats).queued, 3)

      // When a and b end, the preview (priority 10) takes a slot ahead of c and d, so it is done
      // 100 ms later, while d, the last batch job, has only just started.
      yield* TestClock.adjust("100 millis")
      yield* TestClock.adjust("100 millis")
      assert.strictEqual((yield* Fiber.join(preview)).image, "c.jpg")
      assert.isUndefined(publishing.pollUnsafe()) // one batch job is still running
      yield* TestClock.adjust("100 millis")
      assert.strictEqual((yield* Fiber.join(publishing)).length, 4)
    }).pipe(Effect.provide(TestApp)))

  it.effect("a resize past the pool's timeout fails with JobTimeout, and the worker is free again", () =>
    Effect.gen(function*() {
      const gallery = yield* Gallery
      const pool = yield* Thumbnails
      const big = yield* Effect.forkChild(Effect.flip(gallery.preview("panorama.tiff")))
      yield* TestClock.adjust("1 second")
      const error = yield* Fiber.join(big)
      assert.strictEqual(error._tag, "JobTimeout")
      if (error._tag === "JobTimeout") {
        assert.strictEqual(error.millis, 1000)
        assert.strictEqual(error.phase, "running")
      }
      const stats = yield* pool.stats
      assert.strictEqual(stats.timedOut, 1)
      assert.strictEqual(stats.running, 0)

      const small = yield* Effect.forkChild(gallery.preview("a.jpg"))
      yield* TestClock.adjust("100 millis")
      assert.strictEqual((yield* Fiber.join(small)).image, "a.jpg")
    }).pipe(Effect.provide(TestApp)))

  it.effect("an error of the store reaches the caller typed, through the pool", () =>
    Effect.gen(function*() {
      const gallery = yield* Gallery
      const error = yield* Effect.flip(gallery.publish(["a.jpg", "missing.png"]))
      assert.strictEqual(error._tag, "ImageMissing")
      if (error._tag === "ImageMissing") assert.strictEqual(error.name, "missing.png")
    }).pipe(Effect.provide(TestApp)))

  it.effect("releasing the app's layers shuts the pool down, letting running work finish", () =>
    Effect.gen(function*() {
      // Build the app in a scope of our own, start a batch, then close the scope while it runs.
      const scope = yield* Scope.make()
      const app = yield* Layer.buildWithScope(TestApp, scope)
      const gallery = Context.get(app, Gallery)
      const pool = Context.get(app, Thumbnails)
      const publishing = yield* Effect.forkChild(gallery.publish(["a.jpg", "b.jpg"]))
      yield* Effect.yieldNow
      assert.strictEqual((yield* pool.stats).running, 2)

      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      yield* Effect.yieldNow
      assert.strictEqual((yield* pool.stats).state, "draining")
      const refused = yield* Effect.flip(gallery.preview("c.jpg")) // no new work while draining
      assert.strictEqual(refused._tag, "PoolShutdown")

      yield* TestClock.adjust("100 millis")
      yield* Fiber.join(closing)
      assert.strictEqual((yield* Fiber.join(publishing)).length, 2) // the running batch finished
      assert.strictEqual((yield* pool.stats).state, "stopped")
    }))
})
