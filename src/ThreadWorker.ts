/**
 * The worker-thread side of a `ThreadPool`: the worker entry file calls `serve` with the handlers
 * of its tasks. Each task runs as a fiber of its own, so a cancel from the main thread interrupts
 * it (its finalizers run); a task stuck in synchronous code cannot see the cancel, and the pool
 * terminates and replaces its thread after the grace period. A task whose handler returns an
 * `Effect.sync`, `Effect.succeed` or `Effect.fail` (and whose caller has no span) runs without a
 * fiber, with the same outcome: nothing in it could read one.
 *
 * @since 0.1.0
 */
// effect by subpath: a thread loads what it imports, and the `effect` barrel is all of effect
// (see jobInfo.ts)
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as References from "effect/References"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Tracer from "effect/Tracer"
import { syncBuiltinESMExports } from "node:module"
import { inspect } from "node:util"
import workerThreads, { type MessagePort } from "node:worker_threads"
import { runThunk } from "./internal/fiberless.ts"
import { CurrentJob, currentJobOfWire, JobContext } from "./internal/jobInfo.ts"
import { jsonText } from "./internal/jsonText.ts"
import { PaceMeter } from "./internal/pace.ts"
import { type Codec, decoder, encoder } from "./internal/plainCodec.ts"
import { ARGS, EXITS, SYNC } from "./internal/effectShapes.ts"
import { makeParker, type Parker } from "./internal/park.ts"
import {
  CLAIMED,
  CONFIRMED,
  envelope,
  type FromThread,
  isTuple,
  OFFERED,
  offerCell,
  open,
  type Outcome,
  Outbox,
  PACE,
  PORT,
  PROTOCOL,
  type Run,
  threadData,
  type ToThread,
  WITHDRAWN
} from "./internal/protocol.ts"
import { SpanRecorder } from "./internal/threadSpans.ts"
import type * as Task from "./Task.ts"

/**
 * Reads part of a thrown value. User code can throw anything (an object without prototype, an
 * `Error` whose getters throw, a Proxy whose every trap throws): reading it must not throw in turn,
 * or the thread would die instead of failing the task.
 */
const attempt = <A>(read: () => A, otherwise: A): A => {
  try {
    return read()
  } catch {
    return otherwise
  }
}

/** The best text available for any value. */
const describe = (value: unknown): string =>
  typeof value === "string"
    ? value
    : attempt(() => inspect(value, { depth: 2, showProxy: true }), attempt(() => String(value), typeof value))

/**
 * Where the copy of this module that took a pool's port (below) was loaded from, kept under a key
 * every copy reads (`Symbol.for`): a second copy of effect-workpool loaded in the same thread (two
 * installs) finds no port left, and its `serve` says so rather than that the thread is no pool's.
 */
const PORT_TAKEN = Symbol.for("effect-workpool/threadPortTakenBy")

/** This copy's module URL; none in a CommonJS bundle, where a bundler empties `import.meta`. */
const thisCopy: string = typeof import.meta.url === "string" && import.meta.url !== "" ? import.meta.url : "a bundle"

/**
 * The pool's private port (see protocol.ts), taken out of `workerData` as soon as this module is
 * loaded, which is before the body of the worker file that imports it runs: user code then reads
 * its own `workerData` (`import { workerData }` is a live binding, updated by
 * `syncBuiltinESMExports`; `require` reads the property) and never sees the port.
 */
const pool:
  | {
    readonly port: MessagePort
    readonly name: string
    readonly slots: number
    readonly offer: Int32Array
    readonly started: (() => void) | undefined
    readonly pace: Int32Array
    readonly wake: Int32Array
  }
  | { readonly port: MessagePort; readonly mismatch: string }
  | undefined = (() => {
    const data = threadData(workerThreads.workerData)
    if (data === undefined) return undefined
    // user code reads its own workerData even on a pool of another copy: it gets as far as `serve`,
    // which tells the pool why this thread cannot serve it
    ;(workerThreads as { workerData: unknown }).workerData = data.workerData
    syncBuiltinESMExports()
    Object.defineProperty(globalThis, PORT_TAKEN, { value: thisCopy })
    if ("mismatch" in data) return { port: data.port, mismatch: data.mismatch }
    return {
      port: data[PORT],
      name: data.pool,
      slots: data.slots,
      offer: data.offer,
      started: data.started,
      pace: data.pace,
      wake: data.wake
    }
  })()

// Effects a task runs without a fiber: an `Effect.sync` runs to its end as it starts, and an Exit
// (`Effect.succeed`, `Effect.fail`) is already its own result. Neither can read a fiber's services,
// be interrupted part way or make a span, so a fiber adds nothing but its cost, which for a small
// task is most of the thread's work. Told apart by prototype, as internal/job.ts does for the
// in-process pool (internal/effectShapes.ts serves both).

/**
 * What `effect` ends with, if it can be had without a fiber: an Exit as it is, an `Effect.sync`'s
 * value or the defect its function threw. Undefined for anything else (it needs a fiber).
 */
const runWithoutFiber = (effect: unknown): Exit.Exit<unknown, unknown> | undefined => {
  if (typeof effect !== "object" || effect === null) return undefined
  let thunk: unknown
  try {
    const proto = Object.getPrototypeOf(effect)
    if (proto === EXITS[0] || proto === EXITS[1]) return effect as Exit.Exit<unknown, unknown>
    if (SYNC === undefined || proto !== SYNC) return undefined
    thunk = (effect as Record<string, unknown>)[ARGS]
  } catch {
    // a Proxy whose trap throws (its prototype's read, or its thunk's): to a fiber, which makes a
    // defect of what it throws; thrown here, it crashed the thread with every task on it
    return undefined
  }
  if (typeof thunk !== "function") return undefined
  // outside any fiber, as its own fiber would not be another task's: an offer starts as the task
  // before it ends, and that task's fiber may end inside another task's fiber (one that resumed it)
  return runThunk(thunk as () => unknown)
}

/** `Effect.isEffect`, false where asking throws (a revoked Proxy): not an Effect either. No closure per task. */
const isEffect = (value: unknown): boolean => {
  try {
    return Effect.isEffect(value)
  } catch {
    return false
  }
}

const twoCopies = (taken: string): string =>
  `ThreadWorker.serve: two copies of effect-workpool are loaded in this thread: the copy at ${taken}, loaded ` +
  `first (by the worker file or a module it imports), took the pool's port, so this copy, at ${thisCopy}, cannot ` +
  "serve it; make the worker file and its dependencies import one copy (`npm ls effect-workpool` lists the copies installed)"

/** Whether `serve` was called in this thread. */
let served = false

/**
 * The arguments of `serve`, checked: from JavaScript they may be anything, and the thread's start
 * fails with this message (in `WorkerStartFailed`) rather than with a TypeError from inside.
 */
const checkServe = (handlers: unknown, layer: unknown): void => {
  const fail = (problem: string): never => {
    throw new TypeError(`ThreadWorker.serve: ${problem}`)
  }
  if (!Array.isArray(handlers)) fail(`expected an array of handlers made with Task.handle, got ${describe(handlers)}`)
  const seen = new Map<string, number>()
  ;(handlers as Array<unknown>).forEach((handler, i) => {
    const { run, task } = (typeof handler === "object" && handler !== null ? handler : {}) as Partial<Task.Handler<never>>
    if (typeof run !== "function" || typeof task?.name !== "string") {
      fail(`handlers[${i}]: expected a handler made with Task.handle(task, (payload) => Effect), got ${describe(handler)}`)
    }
    const before = seen.get(task!.name)
    if (before !== undefined) fail(`two handlers for task ${task!.name} (handlers[${before}] and handlers[${i}])`)
    seen.set(task!.name, i)
  })
  if (layer !== undefined && !Layer.isLayer(layer)) fail(`expected a Layer for the handlers' services, got ${describe(layer)}`)
}

/**
 * Why a layer failed, for the main thread. Not `Cause.pretty`: it throws on a revoked Proxy or an
 * unreadable message and shows a Symbol as "Error: null". Each value is read as a defect is.
 */
const layerFailure = (cause: Cause.Cause<unknown>): string =>
  cause.reasons.map((reason) => {
    if (Cause.isInterruptReason(reason)) return "interrupted"
    const outcome = defectOf(Cause.isFailReason(reason) ? reason.error : reason.defect)
    return outcome._ === "defect" ? outcome.stack ?? `${outcome.name}: ${outcome.message}` : "the layer failed to build"
  }).join("\n") || "the layer failed to build"

/** An error thrown while reading a value, in one line. */
const brief = (error: unknown): string =>
  attempt(() => (error instanceof Error ? `${error.name}: ${error.message}` : describe(error)), "an unreadable value")

const issueOf = (error: unknown): string =>
  attempt(() => (Schema.isSchemaError(error) ? error.message : describe(error)), "the value could not be described")

const defectOf = (defect: unknown): Outcome => {
  if (!attempt(() => defect instanceof Error, false)) {
    return { _: "defect", name: "Error", message: describe(defect), stack: undefined }
  }
  const error = defect as Error
  let message: string
  try {
    const read: unknown = error.message
    message = typeof read === "string" ? read : describe(read)
  } catch (thrown) {
    message = `(its message could not be read: ${brief(thrown)})`
  }
  const name = attempt(() => error.name, undefined)
  const stack = attempt(() => error.stack, undefined)
  return {
    _: "defect",
    name: typeof name === "string" ? name : "Error",
    message,
    stack: typeof stack === "string" ? stack : undefined
  }
}

/** How a task is served: its handler and codecs (of its own form, or of its JSON form for a durable job). */
interface Served {
  readonly run: Task.Handler<any>["run"]
  readonly decodePayload: Codec
  readonly encodeSuccess: (value: unknown) => Exit.Exit<unknown, unknown>
  readonly encodeFailure: Codec
}

/** Milliseconds between two progress messages of a thread. */
const PROGRESS_INTERVAL = 50

/**
 * Serves tasks on this worker thread until the pool closes it. `layer` provides the services the
 * handlers need, built once per thread (a per-thread resource, such as a connection or a loaded
 * model), and released when the pool closes the thread (at shutdown, on a shrink, when idle). If
 * the layer fails to build, the thread reports it and exits, and the pool's start schedule decides
 * whether to try again. A handler may throw any value: the task fails with a defect, and the thread
 * goes on. The pool talks to the thread over a port of its own: `parentPort` is yours, and what
 * you post on it (or do to its listeners) does not reach the pool (the main thread ignores it).
 *
 * @example
 * ```ts
 * // worker.ts, loaded by ThreadPool.make({ worker: new URL("./worker.ts", import.meta.url) });
 * // by subpath: each thread loads what its file imports, and "effect" is all of effect
 * import * as Effect from "effect/Effect"
 * import { createHash } from "node:crypto"
 * import * as Task from "effect-workpool/Task"
 * import * as ThreadWorker from "effect-workpool/ThreadWorker"
 * import { Hash } from "./tasks.ts"
 *
 * ThreadWorker.serve([
 *   Task.handle(Hash, ({ input }) => Effect.sync(() => createHash("sha256").update(input).digest("hex")))
 * ])
 * ```
 * @since 0.1.0
 * @category running
 */
export const serve: {
  (handlers: ReadonlyArray<Task.Handler<never>>): void
  // the layer is required once a handler needs a service: without it the handler died at run time
  <R, E>(handlers: ReadonlyArray<Task.Handler<R>>, layer: Layer.Layer<R, E>): void
} = <R, E>(handlers: ReadonlyArray<Task.Handler<R>>, layer?: Layer.Layer<R, E>): void => {
  if (pool === undefined) {
    const taken = (globalThis as { readonly [PORT_TAKEN]?: unknown })[PORT_TAKEN]
    if (typeof taken === "string") throw new Error(twoCopies(taken))
    throw new Error(
      "ThreadWorker.serve must run in a worker thread started by a ThreadPool (of this copy's version: a pool of " +
        "effect-workpool 0.1 starts threads this copy cannot serve; `npm ls effect-workpool` lists the copies installed)"
    )
  }
  if ("mismatch" in pool) {
    // no task may run: the pool's messages do not mean here what they mean there. Sent at once,
    // as the one message every copy's pool reads (see protocol.ts's PROTOCOL)
    pool.port.postMessage(envelope<FromThread>([{ _: "fatal", message: pool.mismatch, protocol: PROTOCOL }]))
    process.exit(1)
  }
  const port = pool.port
  if (served) {
    // a second server on the same port would answer every task too. The first one's "ready" is
    // already on its way: exit before it is sent, so that the start fails with this reason
    const message = "ThreadWorker.serve: called twice in one thread: serve every task with one call"
    port.postMessage(envelope<FromThread>([{ _: "fatal", message }]))
    process.exit(1)
  }
  checkServe(handlers, layer)
  served = true
  const outbox = new Outbox<FromThread>((message, transfer) => port.postMessage(message, transfer))
  const scope = Scope.makeUnsafe()
  const post = (message: FromThread) => outbox.send(message)
  // codecs built once per task: a task's payload and outcome go through them on every call
  const codecsOf = (task: Task.Any) => ({
    decodePayload: decoder(task.payload),
    encodeSuccess: encoder(task.success),
    encodeFailure: encoder(task.failure)
  })
  const byName = new Map(handlers.map((handler) => {
    let json:
      | { readonly run: typeof handler.run } & Omit<ReturnType<typeof codecsOf>, "encodeSuccess"> & {
        readonly encodeSuccess: (value: unknown) => Exit.Exit<string, unknown>
      }
      | undefined
    return [handler.task.name, {
      run: handler.run,
      ...codecsOf(handler.task),
      // for durable jobs (see protocol.Run): the payload as JSON text, the success answered as JSON
      // text, both in the task's JSON form; built on the first such task
      get json() {
        if (json !== undefined) return json
        const codecs = codecsOf({
          ...handler.task,
          payload: Schema.toCodecJson(handler.task.payload),
          success: Schema.toCodecJson(handler.task.success),
          failure: Schema.toCodecJson(handler.task.failure)
        })
        return json = {
          run: handler.run,
          ...codecs,
          decodePayload: (text: unknown) => {
            let parsed: unknown
            try {
              parsed = JSON.parse(text as string)
            } catch (error) {
              return Exit.die(error)
            }
            return codecs.decodePayload(parsed)
          },
          // in an object, so that an undefined value is left out as the store leaves it out; one
          // without JSON text is the task's TaskCodecError (part "success"), as on a fiber (exit.ts)
          encodeSuccess: (value: unknown): Exit.Exit<string, unknown> => {
            const encoded = codecs.encodeSuccess(value)
            if (Exit.isFailure(encoded)) return encoded
            if (encoded.value === undefined) return Exit.succeed("{}")
            const text = jsonText(encoded.value)
            return typeof text === "string" ? Exit.succeed(`{"value":${text}}`) : Exit.fail(text.reason)
          }
        }
      }
    }]
  }))
  const running = new Map<number, Fiber.Fiber<unknown, unknown>>()

  // How long tasks take here (see protocol.PACE and pace.ts), published after each task
  const meter = new PaceMeter()
  const paced = (startedAt: number): void => {
    Atomics.store(pool.pace, PACE, meter.add((performance.now() - startedAt) * 1000))
  }

  // Progress: the latest value per task, sent at most once per PROGRESS_INTERVAL for all tasks
  // together, so that a task reporting in a hot loop costs the main thread one message per interval.
  const pendingProgress = new Map<number, unknown>()
  let progressTimer: ReturnType<typeof setTimeout> | undefined
  // on the monotonic clock: a wall clock stepped back would hold every report back by the step
  let progressSentAt = -Infinity
  const sendProgress = (id: number, value: unknown) =>
    // a value that cannot be cloned is not forwarded; the task goes on
    outbox.send({ _: "progress", id, value }, [], () => {})
  const flushProgress = () => {
    progressTimer = undefined
    parker?.schedule()
    progressSentAt = performance.now()
    for (const [id, value] of pendingProgress) sendProgress(id, value)
    pendingProgress.clear()
  }
  const reportProgress = (id: number, value: unknown) => {
    // (a report after the task's reply, from a fiber it left behind, is ignored by the pool)
    pendingProgress.set(id, value)
    progressTimer ??= setTimeout(flushProgress, Math.max(0, progressSentAt + PROGRESS_INTERVAL - performance.now()))
  }

  // Spans of traced tasks, sent to the main thread's tracer once ended (a batch per tick)
  const spans = new SpanRecorder((records, dropped) =>
    // a batch that cannot be cloned is lost; the tasks go on
    outbox.send({ _: "spans", spans: records, dropped }, [], () => {})
  )
  /** Whether the handlers' layer provides a tracer of its own: then the thread's spans are its. */
  let ownTracer = false

  /**
   * The task's context: its JobContext, its job id (a durable job's id and queue) among the log
   * annotations, its caller's span as parent and, when that span is sampled, a tracer that sends the
   * task's spans to the main thread.
   */
  const taskContext = (context: Context.Context<R>, [id, , , job, attempt, trace, durable]: Run): Context.Context<R> => {
    let taskContext = Context.add(context, JobContext, {
      pool: pool.name,
      id: job,
      // a durable job's: the store's count, as its handler on a fiber sees
      attempt: durable === undefined ? attempt : durable[3],
      progress: (value: unknown) => Effect.sync(() => reportProgress(id, value))
    })
    if (durable !== undefined) taskContext = Context.add(taskContext, CurrentJob, Option.some(currentJobOfWire(durable)))
    const annotations = Context.get(taskContext, References.CurrentLogAnnotations)
    taskContext = Context.add(
      taskContext,
      References.CurrentLogAnnotations,
      // a durable job's id and queue, as its handler on a fiber logs them (the pool's number said nothing of the job)
      durable === undefined ? { ...annotations, jobId: job } : { ...annotations, jobId: durable[0], queue: durable[1] }
    )
    if (trace === undefined) return taskContext
    const [traceId, spanId, sampled, record] = trace
    taskContext = Context.add(taskContext, Tracer.ParentSpan, Tracer.externalSpan({ traceId, spanId, sampled }))
    return record && !ownTracer ? Context.add(taskContext, Tracer.Tracer, spans.tracer(id)) : taskContext
  }

  /** Sends a task's answer; one that cannot be cloned (a function, say) fails the task instead. */
  const reply = (id: number, message: FromThread) => {
    // its spans and last progress go first
    spans.flush()
    if (pendingProgress.has(id)) {
      sendProgress(id, pendingProgress.get(id))
      pendingProgress.delete(id)
    }
    outbox.send(message, undefined, unsent)
  }
  /** An exit's outcome other than a success (whose encoded value is sent as it is). */
  const failureOutcome = (served: Served, cause: Cause.Cause<unknown>): Outcome => {
    if (Cause.hasInterruptsOnly(cause)) return { _: "interrupted" }
    if (Cause.hasDies(cause)) return defectOf(Cause.squash(cause))
    const error = Cause.findErrorOption(cause)
    if (error._tag === "None") return defectOf(Cause.squash(cause))
    const encoded = served.encodeFailure(error.value)
    return Exit.isSuccess(encoded)
      ? { _: "failure", error: encoded.value }
      : { _: "codec", part: "failure", issue: issueOf(Cause.squash(encoded.cause)) }
  }
  /**
   * Answers a task with its exit, encoded. One function for every task, and a success goes out as
   * its `[id, value]` message without an outcome object: a small task's answer is most of what its
   * thread allocates for it.
   */
  const answer = (id: number, served: Served, exit: Exit.Exit<unknown, unknown>): void => {
    let message: FromThread
    // encoding an odd value (a Proxy, say) may throw: that is the task's defect, not the thread's
    try {
      if (Exit.isSuccess(exit)) {
        const encoded = served.encodeSuccess(exit.value)
        message = Exit.isSuccess(encoded)
          ? [id, encoded.value]
          : { _: "done", id, outcome: { _: "codec", part: "success", issue: issueOf(Cause.squash(encoded.cause)) } }
      } else message = { _: "done", id, outcome: failureOutcome(served, exit.cause) }
    } catch (defect) {
      message = { _: "done", id, outcome: defectOf(defect) }
    }
    reply(id, message)
  }
  /** An answer that could not be cloned: its task fails instead (one function for every answer). */
  const unsent = (issue: string, message: FromThread): FromThread => {
    const failure = !isTuple(message) && message._ === "done" && message.outcome._ === "failure"
    const id = isTuple(message) ? message[0] : (message as { readonly id: number }).id
    return { _: "done", id, outcome: { _: "codec", part: failure ? "failure" : "success", issue } }
  }

  const runTask = (run: Run) => {
    const startedAt = performance.now()
    // by index: destructuring runs the array's iterator until V8 optimizes this, as a new thread has not
    const id = run[0], name = run[1], payload = run[2]
    const handler = byName.get(name)
    if (handler === undefined) {
      return post({ _: "done", id, outcome: { _: "codec", part: "handler", issue: `no handler for task ${name} on this thread` } })
    }
    const served = run[6] !== undefined ? handler.json : handler
    const decoded = served.decodePayload(payload)
    if (Exit.isFailure(decoded)) {
      return post({ _: "done", id, outcome: { _: "codec", part: "payload", issue: issueOf(Cause.squash(decoded.cause)) } })
    }
    let effect: Effect.Effect<unknown, unknown, R>
    try {
      effect = served.run(decoded.value)
    } catch (defect) {
      effect = Effect.die(defect)
    }
    if (!isEffect(effect)) {
      effect = Effect.die(new TypeError(`the handler of task ${name} returned ${describe(effect)}, not an Effect`))
    }
    // a traced task runs in a fiber with its span as parent, whatever its effect (see threadSpans.ts)
    const done = run[5] === undefined ? runWithoutFiber(effect) : undefined
    if (done !== undefined) {
      answer(id, served, done)
      return paced(startedAt)
    }
    const fiber = Effect.runForkWith(taskContext(handlersContext!, run))(effect)
    const exit = fiber.pollUnsafe()
    if (exit !== undefined) {
      answer(id, served, exit)
      return paced(startedAt)
    }
    running.set(id, fiber)
    fiber.addObserver((exit) => {
      running.delete(id)
      answer(id, served, exit)
      paced(startedAt)
      if (offers.length > 0) startOffers()
      if (running.size === 0) parker?.schedule()
    })
  }

  // Offers (see protocol.ts): tasks sent ahead, started here once there is room and the claim wins
  const offers: Array<Run> = []
  const cells = pool.offer
  /**
   * Whether this thread may start an offer: its claim won, or the main thread confirmed it. One past
   * its queue deadline is withdrawn instead (see protocol.Run): the pool starts no job late.
   */
  const claim = (run: Run): boolean => {
    const id = run[0]
    const cell = run[7]!
    const offered = offerCell(id, OFFERED)
    const late = run[8] !== undefined && performance.timeOrigin + performance.now() >= run[8]
    const found = Atomics.compareExchange(cells, cell, offered, offerCell(id, late ? WITHDRAWN : CLAIMED))
    if (found === offered) return !late
    if (found !== offerCell(id, CONFIRMED)) return false
    // read: the main thread may use the cell for another offer (it does not touch a confirmed one)
    Atomics.store(cells, cell, offerCell(id, CLAIMED))
    return true
  }
  let handlersContext: Context.Context<R> | undefined
  const startOffers = () => {
    while (offers.length > 0 && running.size < pool.slots && !closing) {
      const run = offers.shift()!
      if (!claim(run)) continue
      // the answers before it go first: the main thread counts an offer as started (its timeout
      // runs, a cancel reaches it) only once the answer before it on its slot has come, and a
      // synchronous task holds back whatever is still in the outbox for as long as it runs
      outbox.flush()
      runTask(run)
    }
  }
  /**
   * A cancel of an offer the pool confirmed (its attempt started there) that this thread holds
   * without room to start it yet: answered at once, and its cell marked read.
   */
  const cancelOffer = (id: number): boolean => {
    const index = offers.findIndex((run) => run[0] === id)
    if (index < 0) return false
    const [run] = offers.splice(index, 1)
    if (claim(run!)) post({ _: "done", id, outcome: { _: "interrupted" } })
    return true
  }
  /** Offers taken back while this thread had no room: dropped now, rather than when it has room. */
  const dropWithdrawn = () => {
    for (let i = offers.length - 1; i >= 0; i--) {
      const run = offers[i]!
      const state = Atomics.load(cells, run[7]!)
      if (state !== offerCell(run[0], OFFERED) && state !== offerCell(run[0], CONFIRMED)) offers.splice(i, 1)
    }
  }

  let closing = false
  /** Parks this thread while it is idle (see park.ts); set once the thread is ready. */
  let parker: Parker | undefined
  /**
   * Asked by the pool (at shutdown, on a shrink, after idleTimeout): interrupts what still runs,
   * releases the layer, then exits. The pool terminates the thread if this takes longer than its
   * grace period.
   */
  const close = () => {
    if (closing) return
    closing = true
    Effect.runPromiseExit(
      Effect.andThen(Fiber.interruptAll(Array.from(running.values())), Scope.close(scope, Exit.void))
    ).then((closed) => {
      // nobody in this thread can hear that the release failed: the pool logs it
      if (Exit.isFailure(closed)) outbox.send({ _: "fatal", message: layerFailure(closed.cause) })
      flushProgress()
      spans.flush()
      outbox.flush()
      process.exit(0)
    })
  }

  const start = (context: Context.Context<R>) => {
    ownTracer = context.mapUnsafe.has(Tracer.TracerKey)
    handlersContext = context
    const handle = (message: ToThread) => {
      if (isTuple(message)) {
        if (message[7] === undefined) runTask(message)
        else {
          if (offers.length > 0) dropWithdrawn()
          offers.push(message)
          startOffers()
        }
      } else if (message._ === "cancel") {
        if (!cancelOffer(message.id)) running.get(message.id)?.interruptUnsafe()
      } // after the replies already sent: the pool tells from this which of them it lost
      else if (message._ === "sync") {
        post({ _: "synced", n: message.n, running: [...running.keys(), ...offers.map((run) => run[0])] })
      } else close()
    }
    // true for a batch of messages (a backlog: see park.ts)
    const receive = (data: unknown): boolean => {
      open(data, handle)
      return Array.isArray(data) && typeof data[0] !== "number"
    }
    // a message from the pool this thread cannot deserialize (a payload nested deeper than this
    // thread's stack): the pool finds out which tasks it carried and fails them
    const unreadable = (error: unknown) => post({ _: "unreadable", issue: brief(error) })
    parker = makeParker({
      port,
      signal: pool.wake,
      idle: () => running.size === 0 && offers.length === 0 && !closing && progressTimer === undefined,
      receive,
      unreadable,
      flush: () => outbox.flush()
    })
    port.on("message", (data: unknown) => {
      if (!receive(data)) parker!.schedule()
    })
    port.on("messageerror", unreadable)
    // the start's resolve cache (threadMain.ts) is done: later imports resolve as Node resolves them
    pool.started?.()
    post({ _: "ready", protocol: PROTOCOL })
    parker.schedule()
  }

  if (layer === undefined) return start(Context.empty() as Context.Context<R>)
  Effect.runPromiseExit(Layer.buildWithScope(layer, scope)).then((exit) => {
    if (Exit.isSuccess(exit)) return start(exit.value)
    // sent at once, not batched: the thread exits right after
    const message = layerFailure(exit.cause)
    port.postMessage(envelope<FromThread>([{ _: "fatal", message }]))
    process.exit(1)
  })
}
