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
  const byName = new Map(handlers.map((h) => [h.task.name, h]))
  const running = new Map<number, Fiber.Fiber<unknown, unknown>>()

  const runTask = (context: Context.Context<R>, id: number, name: string, payload: unknown) => {
    const handler = byName.get(name)
    if (handler === undefined) {
      return post({ _: "done", id, outcome: { _: "codec", part: "handler", issue: `no handler for task ${name} on this thread` } })
    }
    const task = handler.task
    const program: Effect.Effect<Outcome, never, R> = Schema.decodeUnknownEffect(task.payload)(payload).pipe(
      Effect.matchEffect({
        onFailure: (error) => Effect.succeed<Outcome>({ _: "codec", part: "payload", issue: issueOf(error) }),
        onSuccess: (decoded) =>
          handler.run(decoded).pipe(
            Effect.matchEffect({
              onSuccess: (value) =>
                Schema.encodeUnknownEffect(task.success)(value).pipe(
                  Effect.map((encoded): Outcome => ({ _: "success", value: encoded })),
                  Effect.catch((error) => Effect.succeed<Outcome>({ _: "codec", part: "success", issue: issueOf(error) }))
                ),
              onFailure: (error) =>
                Schema.encodeUnknownEffect(task.failure)(error).pipe(
                  Effect.map((encoded): Outcome => ({ _: "failure", error: encoded })),
                  Effect.catch((e) => Effect.succeed<Outcome>({ _: "codec", part: "failure", issue: issueOf(e) }))
                )
            })
          )
      })
    ) as Effect.Effect<Outcome, never, R>
    const fiber = Effect.runForkWith(context)(program)
    running.set(id, fiber)
    fiber.addObserver((exit) => {
      running.delete(id)
      const outcome: Outcome = Exit.isSuccess(exit)
        ? exit.value
        : Cause.hasInterruptsOnly(exit.cause)
        ? { _: "interrupted" }
        : defectOf(exit.cause)
      post({ _: "done", id, outcome })
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
