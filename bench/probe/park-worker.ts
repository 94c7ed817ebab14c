/**
 * park.ts's thread: answers no-op tasks (a job number in, the same number out) in one of four ways,
 * fixed by `workerData.how`:
 * - "loop": waits in its event loop for a 'message' on parentPort (the raw floor);
 * - "loop-port": the same on a MessagePort of its own (so the transport matches the parked ways);
 * - "park": blocks in `Atomics.wait` on a shared counter the main thread bumps after each post,
 *   then takes the tasks with `receiveMessageOnPort` (piscina's 'sync' mode);
 * - "park-bounded": the same, but gives its event loop a turn after `boundMs` without a task;
 * - "waitasync": `Atomics.waitAsync` on the counter (piscina's 'async' mode).
 * A negative job number stops a parked thread.
 */
import { type MessagePort, parentPort, receiveMessageOnPort, workerData } from "node:worker_threads"

const { how, port, signal, boundMs } = workerData as {
  how: "loop" | "loop-port" | "park" | "park-bounded" | "waitasync"
  port: MessagePort
  signal: SharedArrayBuffer
  boundMs: number
}
const counter = new Int32Array(signal)
let seen = 0

/** Takes every task posted so far; false once told to stop. */
const drain = (): boolean => {
  seen = Atomics.load(counter, 0) // before reading: a post after this bumps it again
  for (let entry = receiveMessageOnPort(port); entry !== undefined; entry = receiveMessageOnPort(port)) {
    const i = entry.message as number
    if (i < 0) return false
    port.postMessage(i)
  }
  return true
}

if (how === "loop") parentPort!.on("message", (i: number) => parentPort!.postMessage(i))
else if (how === "loop-port") port.on("message", (i: number) => port.postMessage(i))
else if (how === "park") {
  while (drain()) Atomics.wait(counter, 0, seen)
  port.close()
} else if (how === "park-bounded") {
  const turn = (): void => {
    for (;;) {
      if (!drain()) return port.close()
      if (Atomics.wait(counter, 0, seen, boundMs) === "timed-out") return void setImmediate(turn)
    }
  }
  turn()
} else {
  // a pending waitAsync does not keep the event loop alive (piscina's port listener does it there)
  const alive = setInterval(() => {}, 1 << 30)
  const turn = (): void => {
    if (!drain()) return (clearInterval(alive), port.close())
    // (in Node since 16; not in the project's TypeScript lib)
    const r = (Atomics as unknown as {
      waitAsync: (a: Int32Array, i: number, v: number) => { async: boolean; value: Promise<unknown> }
    }).waitAsync(counter, 0, seen)
    if (r.async) r.value.then(turn)
    else turn()
  }
  turn()
}
