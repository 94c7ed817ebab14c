// Stands for the reader's own image code (decoding, shrinking, encoding JPEGs), which the docs'
// worker files import as `./images.ts` without showing it.
export interface Pixels {
  readonly width: number
  readonly height: number
  readonly data: Uint8Array
}
export declare const decodeJpeg: (jpeg: ArrayBuffer) => Pixels
export declare const shrink: (image: Pixels, maxSide: number) => Pixels
export declare const encodeJpeg: (image: Pixels) => Uint8Array
