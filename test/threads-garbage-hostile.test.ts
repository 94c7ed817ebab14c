// Hostile tests of the per-task garbage cuts (af9c50e, 51477d1, faaa355, 7ca19db): an Outbox that
// reuses its three lists and queues one end-of-tick microtask a tick, the submitter's tracing read
// once per context (a WeakMap), and an offered task's progress sent to its job itself.
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Option, Stream } from "effect"
import { MessageChannel, type MessagePort, receiveMessageOnPort, type TransferListItem } from "node:worker_threads"
import * as ThreadPool from "../src/ThreadPool.ts"
import { type Envelope, open, Outbox } from "../src/internal/protocol.ts"
import { Count, Inspect, Traced } from "./fixtures/observe-tasks.ts"
import { Echo, Passthrough, Progress, Uncloneable, UncloneableFailure } from "./fixtures/tasks.ts"
import { makePool } from "./fixtures/pool.ts"
import { recordingTracer } from "./helpers.ts"

const worker = new URL("./fixtures/observe-worker.ts", import.meta.url)

type Message = { readonly n: number; readonly value?: unknown }

/** An Outbox posting on a real port (structured clone, transfers) and what arrived on the other end. */
const outboxOnPort = (options: { readonly post?: (post: () => void) => void } = {}) => {
  const { port1, port2 } = new MessageChannel()
  let posts = 0
  const outbox = new Outbox<Message>((message: Envelope<Message>, transfer: Array<TransferListItem>) => {
    const post = () => {
      port1.postMessage(message, transfer)
      posts++
    }
    if (options.post === undefined) post()
    else options.post(post)
  })
  /** The messages arrived so far, one array per post. */
  const received = (): Array<Array<Message>> => batches(port2)
  const close = () => {
    port1.close()
    port2.close()
  }
  return { outbox, received, posts: () => posts, close }
}

const batches = (port: MessagePort): Array<Array<Message>> => {
  const out: Array<Array<Message>> = []
  for (let entry = receiveMessageOnPort(port); entry !== undefined; entry = receiveMessageOnPort(port)) {
    const batch: Array<Message> = []
    assert.isTrue(open<Message>(entry.message, (m) => batch.push(m)))
    out.push(batch)
  }
  return out
}

/** Every microtask queued so far, and the ones they queue, has run. */
const endOfTick = () => new Promise<void>((resolve) => setImmediate(resolve))

const ns = (batches: Array<Array<Message>>) => batches.map((batch) => batch.map((m) => m.n))

describe("Outbox: reused lists (51477d1) and one end-of-tick microtask (7ca19db)", () => {
  it("each post carries exactly the messages sent since the last one, whether flushed at once or at the end of the tick", async () => {
    const { close, outbox, posts, received } = outboxOnPort()
    outbox.send({ n: 1 })
    outbox.send({ n: 2 })
    outbox.flush()
    outbox.send({ n: 3 })
    await endOfTick()
    outbox.send({ n: 4 })
    outbox.send({ n: 5 })
    outbox.send({ n: 6 })
    outbox.flush()
    outbox.flush() // nothing queued: no post
    outbox.send({ n: 7 })
    await endOfTick()
    await endOfTick()
    assert.deepStrictEqual(ns(received()), [[1, 2], [3], [4, 5, 6], [7]])
    assert.strictEqual(posts(), 4)
    close()
  })

  it("messages sent after a flush in the same tick go at its end in one post, not stranded; a later tick queues its own", async () => {
    const { close, outbox, received } = outboxOnPort()
    for (let round = 0; round < 3; round++) {
      outbox.send({ n: round * 10 })
      // the flush leaves the tick's microtask queued: what follows it must still go
      outbox.flush()
      outbox.send({ n: round * 10 + 1 })
      outbox.send({ n: round * 10 + 2 })
      assert.deepStrictEqual(ns(received()), [[round * 10]])
      await endOfTick()
      assert.deepStrictEqual(ns(received()), [[round * 10 + 1, round * 10 + 2]], `round ${round}`)
      // a flush with nothing queued, then a send in a new tick: its microtask is its own
      outbox.flush()
      await endOfTick()
      assert.deepStrictEqual(received(), [])
    }
    // a send alone in a tick, never flushed by hand
    outbox.send({ n: 99 })
    await endOfTick()
    assert.deepStrictEqual(ns(received()), [[99]])
    close()
  })

  it("a message that cannot be cloned: the others arrive in order, its replacement in its place, and the next posts carry nothing stale", async () => {
    const { close, outbox, received } = outboxOnPort()
    const issues: Array<string> = []
    const replace = (issue: string, message: Message): Message => {
      issues.push(issue)
      return { n: -message.n }
    }
    outbox.send({ n: 1 })
    outbox.send({ n: 2, value: () => 0 }, undefined, replace)
    outbox.send({ n: 3 })
    outbox.flush()
    assert.deepStrictEqual(ns(received()), [[1], [-2], [3]])
    assert.strictEqual(issues.length, 1)
    assert.match(issues[0]!, /DataCloneError/)
    // the lists read by that failure are not the next post's
    for (let round = 0; round < 3; round++) {
      outbox.send({ n: 10 + round })
      outbox.send({ n: 20 + round })
      outbox.flush()
      assert.deepStrictEqual(ns(received()), [[10 + round, 20 + round]])
    }
    // a second failure after the lists were reused
    outbox.send({ n: 4, value: Symbol("no") }, undefined, replace)
    outbox.send({ n: 5 })
    await endOfTick()
    assert.deepStrictEqual(ns(received()), [[-4], [5]])
    outbox.send({ n: 6 })
    await endOfTick()
    assert.deepStrictEqual(ns(received()), [[6]])
    close()
  })

  it("an onFailure that sends: its message goes once, after the batch; none is lost or repeated", async () => {
    const { close, outbox, received } = outboxOnPort()
    outbox.send({ n: 1 })
    outbox.send({ n: 2, value: () => 0 }, undefined, () => outbox.send({ n: 100 }))
    outbox.send({ n: 3 })
    outbox.flush()
    assert.deepStrictEqual(ns(received()), [[1], [3]])
    // the send from inside the flush queued nothing new in this tick (its microtask is the tick's): it goes at its end
    await endOfTick()
    assert.deepStrictEqual(ns(received()), [[100]])
    outbox.send({ n: 4 })
    outbox.send({ n: 5 })
    outbox.flush()
    await endOfTick()
    assert.deepStrictEqual(ns(received()), [[4, 5]])
    close()
  })

  it("a message sent while its batch is being posted (a getter run by the clone) goes once, in the next post", async () => {
    const { close, outbox, received } = outboxOnPort()
    let sent = false
    const sneaky = {
      n: 2,
      get value() {
        if (!sent) {
          sent = true
          outbox.send({ n: 50 })
        }
        return "v"
      }
    }
    outbox.send({ n: 1 })
    outbox.send(sneaky)
    outbox.flush()
    assert.deepStrictEqual(ns(received()), [[1, 2]])
    await endOfTick()
    assert.deepStrictEqual(ns(received()), [[50]])
    outbox.send({ n: 3 })
    await endOfTick()
    assert.deepStrictEqual(ns(received()), [[3]])
    close()
  })

  it("a transferred buffer moves once: the later posts carry no stale transfer list (no DataCloneError, no misplaced transfer)", async () => {
    const { close, outbox, received } = outboxOnPort()
    const failures: Array<string> = []
    const failed = (issue: string) => {
      failures.push(issue)
    }
    const first = new ArrayBuffer(8)
    outbox.send({ n: 1, value: first }, [first], failed)
    outbox.flush()
    assert.strictEqual(first.byteLength, 0, "moved")
    const one = received()[0]?.[0]
    assert.strictEqual((one!.value as ArrayBuffer).byteLength, 8)
    // untransferring posts after it
    outbox.send({ n: 2 }, undefined, failed)
    outbox.flush()
    assert.deepStrictEqual(ns(received()), [[2]])
    // a transferring batch after it: only its own buffer is listed, each message with its own
    const second = new ArrayBuffer(16)
    const third = new ArrayBuffer(24)
    outbox.send({ n: 3 }, undefined, failed)
    outbox.send({ n: 4, value: second }, [second], failed)
    outbox.send({ n: 5, value: third }, [third], failed)
    await endOfTick()
    const got = received()
    assert.deepStrictEqual(ns(got), [[3, 4, 5]])
    assert.deepStrictEqual(got[0]!.slice(1).map((m) => (m.value as ArrayBuffer).byteLength), [16, 24])
    assert.deepStrictEqual([second.byteLength, third.byteLength], [0, 0])
    // a batch whose transfer cannot be made (a buffer already moved) after a reused one: sent one by one,
    // each with its own list
    const fourth = new ArrayBuffer(4)
    outbox.send({ n: 6, value: fourth }, [fourth], failed)
    outbox.send({ n: 7, value: second }, [second], failed)
    outbox.flush()
    const split = received()
    assert.deepStrictEqual(ns(split), [[6]])
    assert.strictEqual((split[0]![0]!.value as ArrayBuffer).byteLength, 4)
    assert.strictEqual(failures.length, 1)
    outbox.send({ n: 8 }, undefined, failed)
    outbox.flush()
    assert.deepStrictEqual(ns(received()), [[8]])
    assert.strictEqual(failures.length, 1)
    close()
  })
})

describe("tracing read once per submitter context (af9c50e)", () => {
  it.live("tasks from one fiber under different spans, nested and back, each run under their own submitter's span", () =>
    Effect.scoped(Effect.gen(function*() {
      const pool = yield* ThreadPool.make({ worker, threads: 1 })
      const runUnder = Effect.gen(function*() {
        const span = yield* Effect.orDie(Effect.currentSpan)
        // twice in the same context (the cached reading), then once in another
        const [first, second] = yield* Effect.all([pool.run(Inspect, 1), pool.run(Inspect, 2)], { concurrency: 2 })
        return { span: span.spanId, seen: [first.parentSpanId, second.parentSpanId] }
      })
      const outer = yield* Effect.gen(function*() {
        const before = yield* runUnder
        const nested = yield* runUnder.pipe(Effect.withSpan("b"))
        const after = yield* runUnder
        const again = yield* runUnder.pipe(Effect.withSpan("b"))
        return [before, nested, after, again]
      }).pipe(Effect.withSpan("a"))
      for (const { seen, span } of outer) assert.deepStrictEqual(seen, [span, span])
      assert.notStrictEqual(outer[0]!.span, outer[1]!.span)
      assert.strictEqual(outer[0]!.span, outer[2]!.span)
      assert.notStrictEqual(outer[1]!.span, outer[3]!.span)
    })))

  it.live("a submitter that turns tracing off and on, or changes tracer, under one span: each task records as its own context says", () =>
    Effect.scoped(Effect.gen(function*() {
      const first = recordingTracer()
      const second = recordingTracer()
      const pool = yield* ThreadPool.make({ worker, threads: 1 })
      const recorded = yield* Effect.gen(function*() {
        const on = yield* pool.run(Traced, 1)
        const off = yield* Effect.withTracerEnabled(pool.run(Traced, 2), false)
        const onAgain = yield* pool.run(Traced, 3)
        const offAgain = yield* Effect.withTracerEnabled(pool.run(Traced, 4), false)
        const other = yield* Effect.withTracer(pool.run(Traced, 5), second.tracer)
        return [on.recording, off.recording, onAgain.recording, offAgain.recording, other.recording]
      }).pipe(Effect.withSpan("request"), Effect.withTracer(first.tracer))
      assert.deepStrictEqual(recorded, [true, false, true, false, true])
      const outers = (spans: ReadonlyArray<{ readonly name: string; readonly attributes: ReadonlyMap<string, unknown> }>) =>
        spans.filter((s) => s.name === "thread.outer").map((s) => s.attributes.get("outer.n"))
      assert.deepStrictEqual(outers(first.spans), [1, 3])
      assert.deepStrictEqual(outers(second.spans), [5])
    })))

  // The cache pays only for a context seen again. A task that runs in its job's fiber (every traced
  // task: a tracer is installed, its job has a `workpool.job` span of its own; and every durable job
  // on threads) is read in that fiber's context, which is its job's own (its JobContext, its span):
  // never seen again, so each such task paid a WeakMap miss and an entry (a set, an ephemeron for
  // the GC) on top of the reads the cache was to save: the reading of a fresh context went from
  // ~110 to ~450 ns (node 20, 200 contexts alive at a time, 8 interleaved rounds), against the
  // "once per submitter rather than per task" of its comment
  it.live("a task run in its job's fiber (traced) keeps no cache entry: its context is its job's own, never seen again", () =>
    Effect.scoped(Effect.gen(function*() {
      const pool = yield* ThreadPool.make({ worker: new URL("./fixtures/worker.ts", import.meta.url), threads: 2 })
      const { tracer } = recordingTracer()
      const set = WeakMap.prototype.set
      let keyedByContext = 0
      WeakMap.prototype.set = function<K extends WeakKey, V>(this: WeakMap<K, V>, key: K, value: V) {
        if (Context.isContext(key)) keyedByContext++
        return set.call(this, key, value) as WeakMap<K, V>
      }
      const seen = yield* Effect.withTracer(
        Effect.forEach(Array.from({ length: 100 }, (_, i) => String(i)), (s) => pool.run(Echo, s), { concurrency: "unbounded" }),
        tracer
      ).pipe(Effect.ensuring(Effect.sync(() => {
        WeakMap.prototype.set = set
      })))
      assert.strictEqual(seen.length, 100)
      assert.isAtMost(keyedByContext, 2, "WeakMap entries keyed by a Context for 100 traced tasks")
    })))
})

describe("an offered task's progress goes to its job (faaa355)", () => {
  it.live("tasks from one submitter each report to their own job, to its last value; none to another's", () =>
    Effect.scoped(Effect.gen(function*() {
      const pool = yield* ThreadPool.make({ worker, threads: 1, tasksPerThread: 2 })
      const handles = yield* Effect.forEach([3, 5, 7, 9], (n) => pool.submit(Count, n))
      const results = yield* Effect.forEach(handles, (handle) => handle.await)
      assert.deepStrictEqual(results, [3, 5, 7, 9])
      const last = yield* Effect.forEach(handles, (handle) => handle.progress)
      assert.deepStrictEqual(last.map(Option.getOrUndefined), [3, 5, 7, 9])
      // an ended job's changes end at once with its last value
      const changes = yield* Stream.runCollect(handles[1]!.progressChanges)
      assert.deepStrictEqual(Array.from(changes), [5])
    })))
})

describe("a thread's outbox under answers that cannot be cloned (51477d1)", () => {
  // a thread answers a batch at a time (tasks sent ahead, each flushing the answers before it): an
  // answer that cannot be cloned fails its post, its batch goes one by one, and the lists that post
  // read are dropped while the reused ones carry on: no answer stale, lost, repeated or misplaced
  it.live("answers, failures that cannot be cloned and progress in the same batches: each task gets its own outcome", () =>
    Effect.scoped(Effect.gen(function*() {
      const { pool } = yield* makePool({ threads: 1, tasksPerThread: 4 })
      for (let round = 0; round < 3; round++) {
        type Handle = { readonly await: Effect.Effect<unknown, unknown>; readonly progress: Effect.Effect<Option.Option<unknown>> }
        const handles = yield* Effect.forEach(Array.from({ length: 40 }, (_, i) => i), (i): Effect.Effect<Handle, unknown> => {
          switch (i % 4) {
            case 0:
              return pool.submit(Echo, `${round}-${i}`)
            case 1:
              return pool.submit(Uncloneable, i)
            case 2:
              return pool.submit(Progress, 1000 * round + i)
            default:
              return pool.submit(UncloneableFailure, i)
          }
        })
        const exits = yield* Effect.forEach(handles, (handle) => Effect.exit(handle.await))
        for (let i = 0; i < 40; i++) {
          const exit = exits[i]!
          switch (i % 4) {
            case 0:
              assert.deepStrictEqual(exit, Exit.succeed(`echo ${round}-${i}`), `task ${i}`)
              break
            case 2:
              assert.deepStrictEqual(exit, Exit.succeed(1000 * round + i), `task ${i}`)
              assert.deepStrictEqual(yield* handles[i]!.progress, Option.some(1000 * round + i), `progress of task ${i}`)
              break
            default: {
              assert.isTrue(Exit.isFailure(exit), `task ${i}`)
              const error = Exit.isFailure(exit) ? Option.getOrUndefined(Exit.findErrorOption(exit)) : undefined
              assert.strictEqual((error as { readonly _tag?: string } | undefined)?._tag, "TaskCodecError", `task ${i}`)
              assert.strictEqual((error as { readonly part?: string }).part, i % 4 === 1 ? "success" : "failure", `task ${i}`)
            }
          }
        }
      }
      const stats = yield* pool.stats
      assert.deepStrictEqual([stats.running, stats.queued], [0, 0])
      assert.strictEqual(yield* pool.run(Echo, "after"), "echo after")
    })))
})

describe("the main thread's outbox under payloads that cannot be cloned (51477d1, 7ca19db)", () => {
  // a payload that encodes but cannot be cloned fails its batch's post; the batch goes one by one, the
  // task is settled from inside the flush (`unsent`), and the next tasks go to the same, now idle,
  // thread (at once: a flush before the tick's microtask) through the lists that flush left
  it.live("tasks whose payloads cannot be cloned among others, on one thread: each fails alone, the others run once each", () =>
    Effect.scoped(Effect.gen(function*() {
      for (const tasksPerThread of [1, 3]) {
        const { pool } = yield* makePool({ threads: 1, tasksPerThread })
        type Handle = { readonly await: Effect.Effect<unknown, unknown> }
        const handles = yield* Effect.forEach(Array.from({ length: 30 }, (_, i) => i), (i): Effect.Effect<Handle, unknown> =>
          i % 3 === 0
            ? pool.submit(Passthrough, { value: () => i, ok: true })
            : pool.submit(Echo, `${tasksPerThread}-${i}`))
        const exits = yield* Effect.forEach(handles, (handle) => Effect.exit(handle.await))
        for (let i = 0; i < 30; i++) {
          const exit = exits[i]!
          if (i % 3 !== 0) {
            assert.deepStrictEqual(exit, Exit.succeed(`echo ${tasksPerThread}-${i}`), `task ${i}`)
            continue
          }
          const error = Exit.isFailure(exit) ? Option.getOrUndefined(Exit.findErrorOption(exit)) : undefined
          assert.strictEqual((error as { readonly _tag?: string } | undefined)?._tag, "TaskCodecError", `task ${i}`)
          assert.strictEqual((error as { readonly part?: string }).part, "payload", `task ${i}`)
        }
        const stats = yield* pool.stats
        assert.deepStrictEqual([stats.running, stats.queued], [0, 0])
        assert.strictEqual(yield* pool.run(Echo, "after"), "echo after")
      }
    })))
})
