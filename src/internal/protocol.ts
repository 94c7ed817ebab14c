/**
 * Messages between the main thread and a worker thread. Plain objects, sent by structured clone.
 *
 * @internal
 */

export type ToThread =
  | { readonly _: "run"; readonly id: number; readonly task: string; readonly payload: unknown }
  | { readonly _: "cancel"; readonly id: number }

export type Outcome =
  | { readonly _: "success"; readonly value: unknown }
  | { readonly _: "failure"; readonly error: unknown }
  | { readonly _: "defect"; readonly name: string; readonly message: string; readonly stack: string | undefined }
  | { readonly _: "interrupted" }
  | { readonly _: "codec"; readonly part: "payload" | "success" | "failure" | "handler"; readonly issue: string }

export type FromThread =
  | { readonly _: "ready" }
  | { readonly _: "fatal"; readonly message: string }
  | { readonly _: "done"; readonly id: number; readonly outcome: Outcome }
