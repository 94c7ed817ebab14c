// A TypeScript consumer of the platform-neutral entries, typechecked (never run) against the
// installed package under strict flags and skipLibCheck: false, with nodenext and with bundler
// resolution, and once for a browser (no Node types at all).
import { Effect, Schema } from "effect"
import { PoolError, Task, WorkPool } from "effect-workpool"
import type { InvalidPoolConfig, JobError } from "effect-workpool/PoolError"
import * as PoolErrorEntry from "effect-workpool/PoolError"
import type * as TaskEntry from "effect-workpool/Task"
import * as WorkPoolEntry from "effect-workpool/WorkPool"
// @ts-expect-error the package's internals are not exported
import type * as _Scheduler from "effect-workpool/internal/scheduler"

class Lookups extends WorkPool.Service<Lookups>()("consumer/Lookups", { concurrency: 4, capacity: 16 }) {}

class NotFound extends Schema.TaggedError<NotFound>()("NotFound", { key: Schema.String }) {}

const lookup = (key: string): Effect.Effect<number, NotFound> =>
  key === "" ? Effect.fail(new NotFound({ key })) : Effect.succeed(key.length)

// a job keeps its own error type next to the pool's
export const one: Effect.Effect<number, NotFound | JobError, Lookups> = Effect.gen(function*() {
  const pool = yield* Lookups
  return yield* pool.run(lookup("a"), { priority: 1 })
})

export const all: Effect.Effect<ReadonlyArray<number>, NotFound | PoolError.JobError | InvalidPoolConfig> = Effect.gen(function*() {
  const pool = yield* WorkPoolEntry.make({ concurrency: 2, overflow: "fail" })
  return yield* pool.runAll(["a", "bb"].map(lookup))
}).pipe(Effect.scoped)

export const recovered: Effect.Effect<number, NotFound | JobError | InvalidPoolConfig> = all.pipe(
  Effect.map((lengths) => lengths[0] ?? 0),
  Effect.catchTag("QueueFull", (error: PoolErrorEntry.QueueFull) => Effect.succeed(error.capacity))
)

export const provided: Effect.Effect<number, NotFound | JobError | InvalidPoolConfig> = one.pipe(Effect.provide(Lookups.layer))

export const Echo = Task.make("Echo", { payload: Schema.String, success: Schema.String })
export const payload: TaskEntry.Payload<typeof Echo> = "hello"
