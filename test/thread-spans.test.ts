/**
 * The recording of a thread's spans and their replay on the main thread's tracer (the parts of
 * src/internal/threadSpans.ts that a real thread does not reach easily: the limit per tick, a
 * child replayed before its parent ended, a tracer whose spans keep their own ids). The round trip
 * through a real thread is in observability.test.ts and examples/exporters.test.ts.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Option, Tracer } from "effect"
import { MAX_SPANS_PER_TICK, type SpanRecord, SpanRecorder, SpanReplay } from "../src/internal/threadSpans.ts"
import { recordingTracer } from "./helpers.ts"

/** What a recorder sends, collected. */
const collect = () => {
  const batches: Array<{ spans: ReadonlyArray<SpanRecord>; dropped: number }> = []
  const recorder = new SpanRecorder((spans, dropped) => batches.push({ spans, dropped }))
  return { batches, recorder }
}

const caller = Tracer.externalSpan({ traceId: "a".repeat(32), spanId: "b".repeat(16), sampled: true })

describe("thread spans", () => {
  it.effect("at most MAX_SPANS_PER_TICK spans are sent per tick; the others are counted as dropped", () =>
    Effect.gen(function*() {
      const { batches, recorder } = collect()
      // a task in a synchronous loop making spans: all in one tick
      const tracer = recorder.tracer(1)
      for (let i = 0; i < MAX_SPANS_PER_TICK + 10; i++) {
        tracer.span({
          name: `s${i}`,
          parent: Option.some(caller),
          annotations: Context.empty(),
          links: [],
          startTime: 1n,
          kind: "internal",
          root: false,
          sampled: true
        }).end(2n, Exit.void)
      }
      recorder.flush()
      assert.strictEqual(batches.length, 1)
      assert.strictEqual(batches[0]!.spans.length, MAX_SPANS_PER_TICK)
      assert.strictEqual(batches[0]!.dropped, 10)
    }))

  it.effect("a child that outlives its parent is replayed under it; one whose parent never ended, under its recorded parent id", () =>
    Effect.gen(function*() {
      const { batches, recorder } = collect()
      const records: Array<SpanRecord> = []
      // made by hand: a parent "p" that ended after its child "c", and a child "o" of a span that never ended
      const program = Effect.gen(function*() {
        const parent = yield* Effect.makeSpan("p")
        const child = yield* Effect.makeSpan("c", { parent })
        const orphanParent = yield* Effect.makeSpan("never-ends")
        const orphan = yield* Effect.makeSpan("o", { parent: orphanParent })
        child.end(2n, Exit.void)
        orphan.end(3n, Exit.void)
        parent.end(4n, Exit.void)
        return { parent, child, orphanParent, orphan }
      })
      const made = yield* program.pipe(Effect.provideService(Tracer.ParentSpan, caller), Effect.withTracer(recorder.tracer(7)))
      recorder.flush()
      for (const batch of batches) records.push(...batch.spans)
      assert.deepStrictEqual(records.map((r) => r.name), ["c", "o", "p"])

      const { spans, tracer } = recordingTracer()
      const replay = new SpanReplay(tracer, caller)
      for (const record of records) replay.add(record)
      // "c" waited for "p"; "o" still waits
      assert.deepStrictEqual(spans.map((s) => s.name), ["p", "c"])
      replay.finish()
      assert.deepStrictEqual(spans.map((s) => s.name), ["p", "c", "o"])
      const [p, c, o] = spans
      assert.strictEqual(Option.getOrThrow(p!.parent), caller)
      assert.strictEqual(Option.getOrThrow(c!.parent), p)
      assert.strictEqual(Option.getOrThrow(o!.parent).spanId, made.orphanParent.spanId)
      assert.deepStrictEqual([p!.spanId, c!.spanId, o!.spanId], [made.parent.spanId, made.child.spanId, made.orphan.spanId])
    }))

  it.effect("a tracer whose spans make their own ids keeps them; the tree holds", () =>
    Effect.gen(function*() {
      const { batches, recorder } = collect()
      yield* Effect.withSpan(Effect.withSpan(Effect.void, "inner"), "outer").pipe(
        Effect.provideService(Tracer.ParentSpan, caller),
        Effect.withTracer(recorder.tracer(1))
      )
      recorder.flush()
      const made: Array<Tracer.Span> = []
      let n = 0
      const own = Tracer.make({
        span: (options) => {
          const native = Tracer.nativeTracer.span(options)
          const id = `own-${n++}`
          // a span with fixed ids of its own (no lazily set fields)
          const span: Tracer.Span = Object.create(native)
          Object.defineProperty(span, "spanId", { value: id })
          made.push(span)
          return span
        }
      })
      const replay = new SpanReplay(own, caller)
      for (const record of batches.flatMap((b) => b.spans)) replay.add(record)
      replay.finish()
      assert.deepStrictEqual(made.map((s) => [s.name, s.spanId]), [["outer", "own-0"], ["inner", "own-1"]])
      assert.strictEqual(Option.getOrThrow(made[1]!.parent), made[0])
    }))
})
