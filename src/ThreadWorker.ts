/**
 * The worker-thread side of a `ThreadPool`: the worker entry file calls `serve` with the handlers
 * of its tasks. Each task runs as a fiber of its own, so a cancel from the main thread interrupts
 * it (its finalizers run); a task stuck in synchronous code cannot see the cancel, and the pool
 * terminates and replaces its thread after the grace period.
 *
 * @since 0.1.0
 */
import { Cause, Context, Effect, Exit, type Fiber, Layer, Schema, Scope } from "effect"
import { parentPort } from "node:worker_threads"
import { type Batch, type FromThread, type Outcome, Outbox, type ToThread, unbatch } from "./internal/protocol.ts"
import type * as Task from "./Task.ts"

const issueOf = (error: unknown): string => (Schema.isSchemaError(error) ? error.message : String(error))

const defectOf = (cause: Cause.Cause<unknown>): Outcome => {
  const defect = Cause.squash(cause)
  if (defect instanceof Error) {
    return { _: "defect", name: defect.name, message: defect.message, stack: defect.stack }
  }
  return { _: "defect", name: "Error", message: String(defect), stack: undefined }
}

/**
 * Serves tasks on this worker thread until the pool closes it. `layer` provides the services the
 * handlers need, built once per thread (a per-thread resource, such as a connection or a loaded
 * model). If the layer fails to build, the thread reports it and exits, and the pool's start
 * schedule decides whether to try again.
 *
 * @example
 * ```ts
 * // worker.ts, loaded by ThreadPool.make({ worker: new URL("./worker.ts", import.meta.url) })
 * import { Effect } from "effect"
 * import { createHash } from "node:crypto"
 * import { Task, ThreadWorker } from "effect-workpool"
 * import { Hash } from "./tasks.ts"
 *
 * ThreadWorker.serve([
 *   Task.handle(Hash, ({ input }) => Effect.sync(() => createHash("sha256").update(input).digest("hex")))
 * ])
 * ```
 * @since 0.1.0
 * @category running
 */
export const serve = <R = never, E = never>(
  handlers: ReadonlyArray<Task.Handler<R>>,
  layer?: Layer.Layer<R, E>
): void => {
  const port = parentPort
  if (port === null) throw new Error("ThreadWorker.serve must run in a worker thread started by a ThreadPool")
  const outbox = new Outbox<FromThread>((message, transfer) => port.postMessage(message, transfer))
  const post = (message: FromThread) => outbox.send(message)
  // codecs built once per task: a task's payload and outcome go through them on every call
  const byName = new Map(handlers.map((handler) => [handler.task.name, {
    run: handler.run,
    decodePayload: Schema.decodeUnknownExit(handler.task.payload),
    encodeSuccess: Schema.encodeUnknownExit(handler.task.success),
    encodeFailure: Schema.encodeUnknownExit(handler.task.failure)
  }]))
  const running = new Map<number, Fiber.Fiber<unknown, unknown>>()

  /** Sends a task's outcome; one that cannot be cloned (a function, say) fails the task instead. */
  const reply = (id: number, outcome: Outcome) =>
    outbox.send({ _: "done", id, outcome }, [], (issue) =>
      post({ _: "done", id, outcome: { _: "codec", part: outcome._ === "failure" ? "failure" : "success", issue } }))

  const runTask = (context: Context.Context<R>, id: number, name: string, payload: unknown) => {
    const served = byName.get(name)
    if (served === undefined) {
      return post({ _: "done", id, outcome: { _: "codec", part: "handler", issue: `no handler for task ${name} on this thread` } })
    }
    const decoded = served.decodePayload(payload)
    if (Exit.isFailure(decoded)) {
      return post({ _: "done", id, outcome: { _: "codec", part: "payload", issue: issueOf(Cause.squash(decoded.cause)) } })
    }
    const outcomeOf = (exit: Exit.Exit<unknown, unknown>): Outcome => {
      if (Exit.isSuccess(exit)) {
        const encoded = served.encodeSuccess(exit.value)
        return Exit.isSuccess(encoded)
          ? { _: "success", value: encoded.value }
          : { _: "codec", part: "success", issue: issueOf(Cause.squash(encoded.cause)) }
      }
      if (Cause.hasInterruptsOnly(exit.cause)) return { _: "interrupted" }
      if (Cause.hasDies(exit.cause)) return defectOf(exit.cause)
      const error = Cause.findErrorOption(exit.cause)
      if (error._tag === "None") return defectOf(exit.cause)
      const encoded = served.encodeFailure(error.value)
      return Exit.isSuccess(encoded)
        ? { _: "failure", error: encoded.value }
        : { _: "codec", part: "failure", issue: issueOf(Cause.squash(encoded.cause)) }
    }
    let effect: Effect.Effect<unknown, unknown, R>
    try {
      effect = served.run(decoded.value)
    } catch (defect) {
      effect = Effect.die(defect)
    }
    const fiber = Effect.runForkWith(context)(effect)
    const exit = fiber.pollUnsafe()
    if (exit !== undefined) return reply(id, outcomeOf(exit))
    running.set(id, fiber)
    fiber.addObserver((exit) => {
      running.delete(id)
      reply(id, outcomeOf(exit))
    })
  }

  const start = (context: Context.Context<R>) => {
    port.on("message", (batch: Batch<ToThread>) =>
      unbatch(batch, (message) => {
        if (message._ === "run") runTask(context, message.id, message.task, message.payload)
        else running.get(message.id)?.interruptUnsafe()
      }))
    post({ _: "ready" })
  }

  if (layer === undefined) return start(Context.empty() as Context.Context<R>)
  const scope = Scope.makeUnsafe()
  Effect.runPromiseExit(Layer.buildWithScope(layer, scope)).then((exit) => {
    if (Exit.isSuccess(exit)) return start(exit.value)
    // sent at once, not batched: the thread exits right after
    port.postMessage({ _: "fatal", message: Cause.pretty(exit.cause) } satisfies FromThread)
    process.exit(1)
  })
}
