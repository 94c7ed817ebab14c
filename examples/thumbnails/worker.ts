/**
 * The thumbnail example's worker entry file: each thread of the pool loads it and serves the two
 * tasks. The image work is synchronous (jpeg-js is plain JavaScript), so it runs in `Effect.sync` /
 * `Effect.try`, and the thread is busy while the main thread is not.
 */
import * as Effect from "effect/Effect"
import { decode, encode } from "jpeg-js"
import { threadId } from "node:worker_threads"
import * as Task from "../../src/Task.ts"
import * as ThreadWorker from "../../src/ThreadWorker.ts"
import { MakePhoto, NotAJpeg, Thumbnail } from "./tasks.ts"

/** RGBA pixels, 4 bytes each, row by row: what jpeg-js decodes to and encodes from. */
interface Image {
  readonly width: number
  readonly height: number
  readonly data: Uint8Array
}

/** A seeded generator (mulberry32): the same seed draws the same photo. */
const generator = (seed: number) => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const clamp = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : v)

/** A landscape: a sky gradient, a sun with a halo, three ranges of hills, and film grain. */
const drawPhoto = (width: number, height: number, seed: number): Image => {
  const random = generator(seed)
  const data = new Uint8Array(width * height * 4)
  const warm = random() // 0: a blue noon sky, 1: an orange evening
  const top = [40 + 80 * warm, 90 + 20 * warm, 200 - 120 * warm]
  const horizon = [200 + 55 * warm, 210 - 40 * warm, 230 - 130 * warm]
  const sun = { x: width * (0.15 + 0.7 * random()), y: height * (0.15 + 0.3 * random()), r: height * (0.05 + 0.05 * random()) }
  const hills = [0, 1, 2].map((i) => ({
    base: height * (0.55 + 0.13 * i),
    amplitude: height * (0.04 + 0.05 * random()),
    frequency: (2 + 4 * random()) * Math.PI / width,
    phase: random() * 2 * Math.PI,
    color: [60 - 15 * i + 40 * warm, 130 - 30 * i, 60 - 15 * i]
  }))
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const t = y / height
      let r = top[0]! + (horizon[0]! - top[0]!) * t
      let g = top[1]! + (horizon[1]! - top[1]!) * t
      let b = top[2]! + (horizon[2]! - top[2]!) * t
      const d = Math.hypot(x - sun.x, y - sun.y)
      if (d < sun.r) {
        r = 255, g = 240, b = 180
      } else if (d < sun.r * 3) {
        const glow = (1 - (d - sun.r) / (sun.r * 2)) ** 2
        r += (255 - r) * glow, g += (220 - g) * glow, b += (150 - b) * glow
      }
      for (const hill of hills) {
        if (y > hill.base + hill.amplitude * Math.sin(x * hill.frequency + hill.phase)) {
          const shade = 1 - 0.3 * ((y - hill.base) / height)
          r = hill.color[0]! * shade, g = hill.color[1]! * shade, b = hill.color[2]! * shade
        }
      }
      const grain = (random() - 0.5) * 24
      const i = (y * width + x) * 4
      data[i] = clamp(r + grain)
      data[i + 1] = clamp(g + grain)
      data[i + 2] = clamp(b + grain)
      data[i + 3] = 255
    }
  }
  return { width, height, data }
}

/**
 * Shrinks an image with a box filter: each thumbnail pixel is the average of the block of source
 * pixels it covers. Good for large reductions such as 1000 → 200 (a bilinear sample would skip most
 * source pixels and alias).
 */
const downscale = (source: Image, width: number, height: number): Image => {
  const data = new Uint8Array(width * height * 4)
  const sx = source.width / width
  const sy = source.height / height
  for (let y = 0; y < height; y++) {
    const y0 = Math.floor(y * sy)
    const y1 = Math.max(y0 + 1, Math.min(source.height, Math.floor((y + 1) * sy)))
    for (let x = 0; x < width; x++) {
      const x0 = Math.floor(x * sx)
      const x1 = Math.max(x0 + 1, Math.min(source.width, Math.floor((x + 1) * sx)))
      let r = 0, g = 0, b = 0
      for (let yy = y0; yy < y1; yy++) {
        let i = (yy * source.width + x0) * 4
        for (let xx = x0; xx < x1; xx++, i += 4) {
          r += source.data[i]!
          g += source.data[i + 1]!
          b += source.data[i + 2]!
        }
      }
      const n = (y1 - y0) * (x1 - x0)
      const o = (y * width + x) * 4
      data[o] = Math.round(r / n)
      data[o + 1] = Math.round(g / n)
      data[o + 2] = Math.round(b / n)
      data[o + 3] = 255
    }
  }
  return { width, height, data }
}

ThreadWorker.serve([
  Task.handle(MakePhoto, ({ height, seed, width }) => Effect.sync(() => encode(drawPhoto(width, height, seed), 85).data)),
  Task.handle(Thumbnail, ({ jpeg, maxSide, name, quality }) =>
    Effect.gen(function*() {
      const start = performance.now()
      const source = yield* Effect.try({
        // the limits keep a hostile file from asking for gigabytes
        try: () => decode(new Uint8Array(jpeg), { useTArray: true, maxResolutionInMP: 40, maxMemoryUsageInMB: 256 }),
        catch: (error) => new NotAJpeg({ name, reason: error instanceof Error ? error.message : String(error) })
      })
      const scale = Math.min(1, maxSide / Math.max(source.width, source.height))
      const width = Math.max(1, Math.round(source.width * scale))
      const height = Math.max(1, Math.round(source.height * scale))
      const thumbnail = encode(downscale(source, width, height), quality)
      return {
        sourceWidth: source.width,
        sourceHeight: source.height,
        width,
        height,
        jpeg: thumbnail.data,
        millis: performance.now() - start,
        thread: threadId
      }
    }))
])
