/**
 * Spans made inside a worker thread, brought to the main thread's tracer. A thread has no tracer of
 * the main thread's (an OTLP exporter, the app's own): a task runs there under its caller's span,
 * and what it records (child spans, their attributes, events, links and status) would end with the
 * thread. So the thread records each span it makes for a traced task and sends it once ended, with
 * the task's next messages (before its reply); the main thread replays it on the tracer the task
 * was submitted with, at the recorded times, under the replayed parent, and with the recorded ids
 * where the tracer's span lets them be set (Effect's native and OTLP spans do), so that the
 * thread's logs, which carry those ids, match the spans exported.
 *
 * Only tasks whose caller has a sampled span are recorded: the others cost nothing.
 *
 * @internal
 */
// effect by subpath: worker threads load this module (see ThreadWorker.ts)
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import { inspect } from "node:util"

/** A recorded span's exit: enough for a tracer to set its status and exception events. */
export type SpanExit =
  | { readonly _: "success" }
  | {
    readonly _: "failure"
    readonly reasons: ReadonlyArray<
      | { readonly _: "fail" | "die"; readonly name: string; readonly message: string; readonly stack: string | undefined }
      | { readonly _: "interrupt" }
    >
  }

/** A span link, by ids (the linked span may live in either thread). */
export interface LinkRecord {
  readonly traceId: string
  readonly spanId: string
  readonly sampled: boolean
  readonly attributes: Record<string, unknown>
}

/** An ended span of a task, as it crosses the thread boundary (structured clone). */
export interface SpanRecord {
  /** The task's id on its thread. */
  readonly task: number
  readonly name: string
  readonly traceId: string
  readonly spanId: string
  /** Its parent's id: the task's caller span, another recorded span, or any span (a link). */
  readonly parentSpanId: string | undefined
  readonly kind: Tracer.SpanKind
  readonly startTime: bigint
  readonly endTime: bigint
  readonly attributes: ReadonlyArray<readonly [string, unknown]>
  readonly events: ReadonlyArray<readonly [string, bigint, Record<string, unknown> | undefined]>
  readonly links: ReadonlyArray<LinkRecord>
  readonly exit: SpanExit
}

/** Spans recorded per tick beyond this are dropped (and counted): a task in a loop making spans cannot flood the main thread. */
export const MAX_SPANS_PER_TICK = 1024

// ---------------------------------------------------------------------------------------------
// thread side

/**
 * A value as it can cross: primitives and arrays of them as they are, anything else (an object, a
 * function, a Proxy) as its text, so that one odd attribute does not lose the whole batch.
 */
const portable = (value: unknown): unknown => {
  switch (typeof value) {
    case "string":
    case "number":
    case "boolean":
    case "bigint":
    case "undefined":
      return value
  }
  if (value === null) return value
  if (Array.isArray(value) && value.every((v) => v === null || (typeof v !== "object" && typeof v !== "function"))) {
    return value.slice()
  }
  try {
    return inspect(value, { depth: 2, breakLength: Infinity })
  } catch {
    return "(an unreadable value)"
  }
}

const portableRecord = (values: Record<string, unknown>): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(values)) out[key] = portable(values[key])
  return out
}

const errorOf = (value: unknown): { name: string; message: string; stack: string | undefined } => {
  try {
    if (value instanceof Error) {
      return { name: String(value.name), message: String(value.message), stack: typeof value.stack === "string" ? value.stack : undefined }
    }
    return { name: "Error", message: typeof value === "string" ? value : inspect(value, { depth: 2 }), stack: undefined }
  } catch {
    return { name: "Error", message: "(an unreadable value)", stack: undefined }
  }
}

const exitOf = (exit: Exit.Exit<unknown, unknown>): SpanExit => {
  if (Exit.isSuccess(exit)) return { _: "success" }
  return {
    _: "failure",
    reasons: exit.cause.reasons.map((reason) =>
      Cause.isInterruptReason(reason)
        ? { _: "interrupt" as const }
        : { _: Cause.isFailReason(reason) ? "fail" as const : "die" as const, ...errorOf(Cause.isFailReason(reason) ? reason.error : reason.defect) }
    )
  }
}

/**
 * The thread's side: a tracer per traced task whose spans, once ended, are handed to `send` in
 * batches, at the end of the tick or when `flush` is called (before a task's reply).
 */
export class SpanRecorder {
  private pending: Array<SpanRecord> = []
  private dropped = 0
  private scheduled = false
  private readonly send: (spans: ReadonlyArray<SpanRecord>, dropped: number) => void
  constructor(send: (spans: ReadonlyArray<SpanRecord>, dropped: number) => void) {
    this.send = send
  }

  /** The tracer for task `task`'s spans. */
  tracer(task: number): Tracer.Tracer {
    const recorder = this
    return Tracer.make({
      span(options) {
        return new RecordedSpan(options, task, recorder)
      }
    })
  }

  record(span: RecordedSpan, endTime: bigint, exit: Exit.Exit<unknown, unknown>): void {
    if (!span.sampled) return
    if (this.pending.length >= MAX_SPANS_PER_TICK) {
      this.dropped++
      return
    }
    const parent = Option.getOrUndefined(span.parent)
    this.pending.push({
      task: span.task,
      name: span.name,
      traceId: span.traceId,
      spanId: span.spanId,
      parentSpanId: parent?.spanId,
      kind: span.kind,
      startTime: span.startTime,
      endTime,
      attributes: span._attributes === undefined
        ? []
        : Array.from(span._attributes, ([key, value]) => [key, portable(value)] as const),
      events: span._events === undefined
        ? []
        : span._events.map(([name, time, attributes]) => [name, time, attributes && portableRecord(attributes)] as const),
      links: span.links.map((link) => ({
        traceId: link.span.traceId,
        spanId: link.span.spanId,
        sampled: link.span.sampled,
        attributes: portableRecord(link.attributes)
      })),
      exit: exitOf(exit)
    })
    if (this.scheduled) return
    this.scheduled = true
    queueMicrotask(() => this.flush())
  }

  flush(): void {
    this.scheduled = false
    if (this.pending.length === 0 && this.dropped === 0) return
    const spans = this.pending
    const dropped = this.dropped
    this.pending = []
    this.dropped = 0
    this.send(spans, dropped)
  }
}

class RecordedSpan extends Tracer.NativeSpan {
  readonly task: number
  private readonly recorder: SpanRecorder
  constructor(options: ConstructorParameters<typeof Tracer.NativeSpan>[0], task: number, recorder: SpanRecorder) {
    super(options)
    this.task = task
    this.recorder = recorder
  }
  override end(endTime: bigint, exit: Exit.Exit<unknown, unknown>): void {
    if (this.status._tag === "Ended") return
    super.end(endTime, exit)
    this.recorder.record(this, endTime, exit)
  }
}

// ---------------------------------------------------------------------------------------------
// main side

/** An error as recorded, rebuilt for the tracer (its name, message and stack as the thread saw them). */
const rebuild = (recorded: { readonly name: string; readonly message: string; readonly stack: string | undefined }): Error => {
  const error = new Error(recorded.message)
  error.name = recorded.name
  error.stack = recorded.stack ?? `${recorded.name}: ${recorded.message}`
  return error
}

const exitFrom = (exit: SpanExit): Exit.Exit<unknown, unknown> => {
  if (exit._ === "success") return Exit.void
  const reasons = exit.reasons.map((reason) =>
    reason._ === "interrupt"
      ? Cause.makeInterruptReason()
      : reason._ === "fail"
      ? Cause.makeFailReason(rebuild(reason))
      : Cause.makeDieReason(rebuild(reason))
  )
  return Exit.failCause(reasons.length === 0 ? Cause.die(new Error("the span failed")) : Cause.fromReasons(reasons))
}

/**
 * Gives a replayed span the id the thread recorded, if its tracer keeps its ids in the lazily set
 * fields Effect's own spans use and has not set them yet; otherwise it keeps its own.
 */
const adoptIds = (span: Tracer.Span, record: SpanRecord): void => {
  const fields = span as unknown as { _spanId?: unknown; _traceId?: unknown }
  if ("_spanId" in fields && fields._spanId === undefined) fields._spanId = record.spanId
  if ("_traceId" in fields && fields._traceId === undefined) fields._traceId = record.traceId
}

/** Replayed spans remembered per task, for children that end after their parent (a forked fiber's). */
const MAX_REMEMBERED = 1024
/** Records waiting for their parent to end, per task; beyond this they are replayed under its ids at once. */
const MAX_WAITING = 4096

/**
 * The main thread's side for one traced task: replays its records on `tracer`. A child ends before
 * its parent, so it waits for it, to be replayed under the parent's replayed span.
 */
export class SpanReplay {
  private readonly tracer: Tracer.Tracer
  private readonly parent: Tracer.AnySpan
  private readonly replayed = new Map<string, Tracer.Span>()
  private readonly waiting = new Map<string, Array<SpanRecord>>()
  private waitingCount = 0
  constructor(tracer: Tracer.Tracer, parent: Tracer.AnySpan) {
    this.tracer = tracer
    this.parent = parent
  }

  add(record: SpanRecord): void {
    const id = record.parentSpanId
    if (id === undefined) return this.play(record, undefined)
    if (id === this.parent.spanId) return this.play(record, this.parent)
    const parent = this.replayed.get(id)
    if (parent !== undefined) return this.play(record, parent)
    if (this.waitingCount >= MAX_WAITING) return this.play(record, this.external(record))
    const siblings = this.waiting.get(id)
    if (siblings === undefined) this.waiting.set(id, [record])
    else siblings.push(record)
    this.waitingCount++
  }

  /** The task has ended: what still waits for a parent that never ended is replayed under its ids. */
  finish(): void {
    for (const records of this.waiting.values()) {
      for (const record of records) this.play(record, this.external(record))
    }
    this.waiting.clear()
    this.waitingCount = 0
    this.replayed.clear()
  }

  private external(record: SpanRecord): Tracer.ExternalSpan {
    return Tracer.externalSpan({ traceId: record.traceId, spanId: record.parentSpanId!, sampled: true })
  }

  private play(record: SpanRecord, parent: Tracer.AnySpan | undefined): void {
    const span = this.tracer.span({
      name: record.name,
      parent: parent === undefined ? Option.none() : Option.some(parent),
      annotations: Context.empty(),
      links: record.links.map((link) => ({
        span: Tracer.externalSpan({ traceId: link.traceId, spanId: link.spanId, sampled: link.sampled }),
        attributes: link.attributes
      })),
      startTime: record.startTime,
      kind: record.kind,
      root: parent === undefined,
      sampled: true
    })
    adoptIds(span, record)
    for (const [key, value] of record.attributes) span.attribute(key, value)
    for (const [name, time, attributes] of record.events) span.event(name, time, attributes)
    span.end(record.endTime, exitFrom(record.exit))
    if (this.replayed.size >= MAX_REMEMBERED) this.replayed.delete(this.replayed.keys().next().value!)
    this.replayed.set(record.spanId, span)
    const children = this.waiting.get(record.spanId)
    if (children === undefined) return
    this.waiting.delete(record.spanId)
    this.waitingCount -= children.length
    for (const child of children) this.play(child, span)
  }
}

/** Whether a value from a thread has the fields `SpanReplay` reads (a malformed one is skipped). */
export const isSpanRecord = (value: unknown): value is SpanRecord => {
  if (typeof value !== "object" || value === null) return false
  const r = value as Record<string, unknown>
  return typeof r.task === "number" && typeof r.name === "string" && typeof r.traceId === "string" &&
    typeof r.spanId === "string" && (r.parentSpanId === undefined || typeof r.parentSpanId === "string") &&
    typeof r.kind === "string" && typeof r.startTime === "bigint" && typeof r.endTime === "bigint" &&
    Array.isArray(r.attributes) && Array.isArray(r.events) && Array.isArray(r.links) &&
    typeof r.exit === "object" && r.exit !== null
}
