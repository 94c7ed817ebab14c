/**
 * Checks a task's transfer list before it is handed to `postMessage`, whose own errors do not say
 * which item is wrong, or come out of the batch as "transfers[i] is not iterable".
 *
 * @internal
 */
import * as workerThreads from "node:worker_threads"

// Node 21 and later: Node marks its Buffer pool so, and postMessage refuses to move it
const isMarkedAsUntransferable: ((object: object) => boolean) | undefined =
  (workerThreads as { readonly isMarkedAsUntransferable?: (object: object) => boolean }).isMarkedAsUntransferable

export interface TransferIssue {
  readonly field: string
  /** The list, or the item in it, that is wrong. */
  readonly value: unknown
  readonly reason: string
}

const EXPECTED = "expected an array of ArrayBuffers, MessagePorts or other transferable objects"

/** What is wrong with a transfer list, or undefined if nothing is. */
export const transferIssue = (transfer: unknown): TransferIssue | undefined => {
  if (!Array.isArray(transfer)) return { field: "transfer", value: transfer, reason: EXPECTED }
  if (transfer.length === 0) return undefined
  const seen = new Set<unknown>()
  for (let i = 0; i < transfer.length; i++) {
    const item: unknown = transfer[i]
    const field = `transfer[${i}]`
    if (typeof item !== "object" || item === null) {
      return { field, value: item, reason: "expected a transferable object (an ArrayBuffer, a MessagePort...)" }
    }
    if (ArrayBuffer.isView(item)) {
      return { field, value: item, reason: `a ${item.constructor.name} is a view, not a transferable object: transfer its .buffer` }
    }
    // the usual mistakes, which postMessage refuses without saying which item: a SharedArrayBuffer is
    // shared, never moved (the payload's copy shares its memory already), and a plain object or an
    // array is copied, never moved. (Other objects that cannot be moved fail the task as it is sent.)
    if (item instanceof SharedArrayBuffer) {
      return { field, value: item, reason: "a SharedArrayBuffer is shared, not moved: leave it out of transfer (the payload's copy shares its memory)" }
    }
    const proto: unknown = Object.getPrototypeOf(item)
    if (proto === null || proto === Object.prototype || Array.isArray(item)) {
      return { field, value: item, reason: "a plain object or array is copied, not moved: expected a transferable object (an ArrayBuffer, a MessagePort...)" }
    }
    if (isMarkedAsUntransferable?.(item) === true) {
      return {
        field,
        value: item,
        reason: "the ArrayBuffer is marked untransferable (a small Buffer's .buffer is Node's pool, shared with other " +
          "Buffers): copy it (leave it out of transfer), or move a Buffer of its own (Buffer.alloc)"
      }
    }
    if (seen.has(item)) return { field, value: item, reason: "the same object appears twice in the transfer list" }
    seen.add(item)
    // `detached` is ES2024, newer than the lib this compiles against
    if (item instanceof ArrayBuffer && (item as { readonly detached?: boolean }).detached === true) {
      return { field, value: item, reason: "the ArrayBuffer is detached: it was already transferred (by an earlier task?)" }
    }
  }
  return undefined
}
