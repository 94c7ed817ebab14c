/**
 * Durable jobs on an SQLite file: jobs outlive the process that enqueued them, and any number of
 * consumer processes on the machine share the work.
 *
 * Two terminals (the same file):
 *   DB=jobs.db node examples/durable.ts consume          # as many of these as you like
 *   DB=jobs.db node examples/durable.ts produce 20       # enqueues 20 jobs and waits for their results
 *
 * The same on Postgres, with one environment variable instead (consumers on any machine that
 * reaches the server; the tables go in the schema "workpool", or SCHEMA's):
 *   DATABASE_URL=postgres://user:password@host:5432/db node examples/durable.ts consume
 *   DATABASE_URL=postgres://user:password@host:5432/db node examples/durable.ts produce 20
 *
 * With no argument it does both in one process, on a fresh temporary file: two consumers (each with
 * its own connection, as two processes would have) and a producer, then prints the queue's stats.
 * Stop a consumer with Ctrl-C (or kill -TERM) and it drains: it claims no more jobs, lets its running
 * ones finish (30 s at most; then it interrupts them and gives them back to the file, the attempt not
 * counted) and exits 0. Kill it with kill -9 while jobs run: its jobs come back after its lease (5 s)
 * and another consumer finishes them.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Console, Effect, Exit, Layer, Redacted, Runtime, Schedule, Schema } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { JobQueue, Task } from "../src/index.ts"
import * as JobStore from "../src/JobStore.ts"
import * as PgJobStore from "../src/PgJobStore.ts"

// --- the task: shared by producers and consumers (in an app, its own module) ---------------------

class Bounced extends Schema.TaggedError<Bounced>()("Bounced", { to: Schema.String }) {}

const SendEmail = Task.make("SendEmail", {
  payload: Schema.Struct({ to: Schema.String, subject: Schema.String }),
  success: Schema.Struct({ messageId: Schema.String }),
  failure: Bounced
})

// --- the consumer side --------------------------------------------------------------------------

const attempts = new Map<string, number>()

/** Sends an email: flaky addresses fail their first attempt, `nobody@` always bounces. */
const send = ({ subject, to }: { readonly to: string; readonly subject: string }) =>
  Effect.gen(function*() {
    const attempt = (attempts.get(to) ?? 0) + 1
    attempts.set(to, attempt)
    yield* Effect.sleep("50 millis")
    if (to.startsWith("nobody@") || (to.startsWith("flaky") && attempt === 1)) return yield* Effect.fail(new Bounced({ to }))
    return { messageId: `<${subject.length}.${to}>` }
  })

const consumer = (name: string) =>
  JobQueue.consume({
    queues: ["mail"],
    handlers: [Task.handle(SendEmail, send)],
    concurrency: 4,
    retry: Schedule.exponential("200 millis"),
    lease: "5 seconds",
    poll: "200 millis"
  }).pipe(Effect.tap(() => Console.log(`${name}: consuming queue "mail"`)))

// --- the producer side --------------------------------------------------------------------------

const produce = (count: number) =>
  Effect.gen(function*() {
    const jobs = yield* Effect.forEach(Array.from({ length: count }, (_, i) => i), (i) => {
      const to = i === 3 ? "nobody@example.org" : i % 4 === 1 ? `flaky${i}@example.org` : `user${i}@example.org`
      return JobQueue.enqueue(SendEmail, { to, subject: `hello ${i}` }, {
        queue: "mail",
        priority: i % 5 === 0 ? 10 : 0,
        maxAttempts: 3,
        dedupKey: `hello:${to}`
      })
    })
    // a reminder for tomorrow, asked for twice (a retried request, a second click): while a job with
    // its dedup key is unfinished, enqueue returns that job and stores nothing. (Once a job has
    // finished its key is free again, which is why this is shown on a job that waits for its time.)
    const remind = JobQueue.enqueue(SendEmail, { to: "user0@example.org", subject: "see you tomorrow" }, {
      queue: "mail",
      delay: "1 day",
      dedupKey: "reminder:user0@example.org"
    })
    const reminder = yield* remind
    const again = yield* remind
    yield* Console.log(`enqueued ${count} jobs; enqueuing the reminder again gave the same job: ${again.id === reminder.id}`)
    yield* JobQueue.cancel(reminder.id) // changed our mind: a job that has not started never runs
    const outcomes = yield* Effect.forEach(jobs, (job) =>
      job.await.pipe(
        Effect.map(() => "sent"),
        Effect.catchTag("Bounced", () => Effect.succeed("bounced"))
      ), { concurrency: "unbounded" })
    const sent = outcomes.filter((o) => o === "sent").length
    yield* Console.log(`${sent} sent, ${count - sent} bounced (dead letters: ${(yield* JobQueue.list({ queue: "mail", state: "dead" })).length})`)
    const stats = yield* JobQueue.stats("mail")
    yield* Console.log(`queue "mail": ${stats.succeeded} succeeded, ${stats.dead} dead, ${stats.waiting + stats.delayed} waiting`)
  })

// --- main ----------------------------------------------------------------------------------------

const [role = "both", countArg = "12"] = process.argv.slice(2)
const databaseUrl = process.env.DATABASE_URL
const store = databaseUrl !== undefined && databaseUrl !== ""
  ? PgJobStore.layer({ url: Redacted.make(databaseUrl), schema: process.env.SCHEMA })
  : JobStore.sqlite({ filename: process.env.DB ?? join(mkdtempSync(join(tmpdir(), "durable-example-")), "jobs.db") })

const main = role === "consume"
  ? Effect.scoped(Effect.andThen(consumer(`consumer ${process.pid}`), Effect.never)).pipe(
    // closing the scope (SIGTERM, SIGINT) shut the consumer down: its claims are back in the file
    Effect.onExit((exit) =>
      Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)
        ? Console.log(`consumer ${process.pid}: consumer stopped; unfinished jobs are back in the queue`)
        : Effect.void
    ),
    Effect.provide(store)
  )
  : role === "produce"
  ? produce(Number(countArg)).pipe(Effect.provide(store))
  : Effect.scoped(Effect.gen(function*() {
    // two consumers with a connection each, as two processes would have; each connection is
    // built in this scope, so that it stays open as long as its consumer runs
    for (const name of ["consumer A", "consumer B"]) {
      const connection = yield* Layer.build(Layer.fresh(store))
      yield* Effect.provide(consumer(name), connection)
    }
    yield* Effect.provide(produce(Number(countArg)), store)
  }))

/**
 * The exit code. A main that ends in interruptions only is runMain answering SIGTERM/SIGINT after
 * the scopes have closed, so after the consumers' graceful shutdown: the stop that was asked for,
 * exit 0 (runMain's default says 130, "killed by a signal"), as examples/web-server.ts does. A failure
 * keeps the default code.
 */
const teardown: Runtime.Teardown = (exit, onExit) =>
  Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : Runtime.defaultTeardown(exit, onExit)

NodeRuntime.runMain(main, { teardown })
