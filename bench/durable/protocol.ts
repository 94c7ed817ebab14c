/**
 * What a durable contestant's driver (the bench child) and its consumer processes say to each other
 * over IPC, and the consumer's side of it. Every library's consumer is the same small script around
 * `serve`: connect, say `ready`, start consuming on `go`, report the jobs it ran, stop on `stop`.
 *
 * Latency is measured across processes on one machine with `performance.timeOrigin + now()`: the
 * producer writes the time into the job's payload just before enqueueing it, the consumer reads the
 * time when its handler starts.
 */

/** The payload of every benchmark job: its number (negative for a latency probe) and, for a probe, when it was sent. */
export interface BenchJob {
  readonly n: number
  readonly t: number
}

export type ToConsumer = { readonly go: true } | { readonly stop: true }
export type FromConsumer =
  | { readonly ready: true }
  /** Numbers of throughput jobs run since the last report. */
  | { readonly ran: ReadonlyArray<number> }
  /** A probe's enqueue-to-start time, ms. */
  | { readonly latency: number }

/** A wall-clock time comparable across the processes of one machine, ms with a fraction. */
export const wallClock = (): number => performance.timeOrigin + performance.now()

/** What one library's consumer does: connect (before `ready`), consume on `go`, stop gracefully. */
export interface Library {
  readonly connect: () => Promise<void>
  readonly consume: (run: (job: BenchJob) => void) => Promise<void>
  readonly stop: () => Promise<void>
}

/** The config the driver passes to every consumer process, as JSON in argv[2]. */
export interface ConsumerConfig {
  readonly url: string
  readonly schema: string
  readonly queue: string
  readonly concurrency: number
}

export const consumerConfig = (): ConsumerConfig => JSON.parse(process.argv[2]!) as ConsumerConfig

const send = (message: FromConsumer) => process.send!(message)

/** Runs one consumer process of a durable contestant. */
export const serve = async (library: Library): Promise<void> => {
  let ran: Array<number> = []
  let flushing = false
  // throughput jobs are reported in batches (a message per job would cost more than the job)
  const flush = () => {
    flushing = false
    if (ran.length > 0) send({ ran })
    ran = []
  }
  const run = (job: BenchJob) => {
    if (job.n < 0) return send({ latency: wallClock() - job.t })
    ran.push(job.n)
    if (!flushing) {
      flushing = true
      setTimeout(flush, 5)
    }
  }
  process.on("message", (message: ToConsumer) => {
    if ("go" in message) {
      library.consume(run).catch(die)
    } else {
      library.stop().then(() => {
        flush()
        process.exit(0)
      }, die)
    }
  })
  // the driver gone (crashed, killed): nobody to report to
  process.on("disconnect", () => process.exit(1))
  await library.connect()
  send({ ready: true })
}

const die = (error: unknown) => {
  console.error(error)
  process.exit(1)
}
