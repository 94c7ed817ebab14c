/**
 * The thumbnail example's tasks, imported by both sides: `main.ts` sends them, `worker.ts` serves
 * them. A task is a name and the Schemas of its payload, success and failure; the pool checks both
 * directions against them.
 */
import * as Schema from "effect/Schema"
import * as Task from "../../src/Task.ts"

/** A file that jpeg-js could not decode. A typed failure: it comes back as this class. */
export class NotAJpeg extends Schema.TaggedError<NotAJpeg>()("NotAJpeg", {
  name: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `${this.name} is not a JPEG this example can read: ${this.reason}`
  }
}

const Pixels = Schema.Int.check(Schema.isGreaterThan(0))

/** Draws a sample photo (a landscape of sky, sun, hills and grain) and encodes it as a JPEG. */
export const MakePhoto = Task.make("MakePhoto", {
  payload: Schema.Struct({ width: Pixels, height: Pixels, seed: Schema.Int }),
  success: Schema.Uint8Array
})

/**
 * Decodes a JPEG, shrinks it to fit in `maxSide` × `maxSide` (keeping its aspect ratio) and encodes
 * the thumbnail. `jpeg` is an `ArrayBuffer` so that the caller can transfer it to the thread
 * (`{ transfer: [jpeg] }`) instead of copying it.
 */
export const Thumbnail = Task.make("Thumbnail", {
  payload: Schema.Struct({
    name: Schema.String,
    jpeg: Schema.instanceOf(ArrayBuffer),
    maxSide: Pixels,
    quality: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 100 }))
  }),
  success: Schema.Struct({
    sourceWidth: Schema.Number,
    sourceHeight: Schema.Number,
    width: Schema.Number,
    height: Schema.Number,
    jpeg: Schema.Uint8Array,
    /** Time spent in the thread: decode, resize, encode. */
    millis: Schema.Number,
    thread: Schema.Number
  }),
  failure: NotAJpeg
})
