/**
 * A durable handler's snooze (`JobQueue.snooze`): a defect the consumer recognises, so that the
 * task's typed failure stays what its Schema says. An `Error` whose name and message say it all: a
 * `ThreadPool` consumer's thread sends a defect back as its name and message only, and the
 * consumer reads the snooze from them as it reads one made on a fiber.
 *
 * @internal
 */

export interface Snooze {
  /** Milliseconds until the job is visible again. */
  readonly delay: number
  /** Whether its queue is held as long (`JobQueue.snooze(..., { holdQueue: true })`). */
  readonly holdQueue: boolean
}

const NAME = "JobSnoozed"
const MESSAGE = /^a durable job snoozed for (\d+) ms( and held its queue)?$/

export class JobSnoozed extends Error implements Snooze {
  readonly delay: number
  readonly holdQueue: boolean
  constructor(delay: number, holdQueue: boolean) {
    super(`a durable job snoozed for ${delay} ms${holdQueue ? " and held its queue" : ""}`)
    this.name = NAME
    this.delay = delay
    this.holdQueue = holdQueue
  }
}

/**
 * The snooze a handler's defect asks for, made on a fiber or sent back by a thread; undefined for any
 * other defect, including one that throws when looked at (a revoked Proxy: `instanceof` itself
 * throws), which must reach the consumer's own handling of such outcomes, not escape from here.
 */
export const snoozeOf = (defect: unknown): Snooze | undefined => {
  try {
    if (defect instanceof JobSnoozed) return defect
    if (!(defect instanceof Error) || defect.name !== NAME) return undefined
    const match = MESSAGE.exec(defect.message)
    return match === null ? undefined : { delay: Number(match[1]), holdQueue: match[2] !== undefined }
  } catch {
    return undefined
  }
}

/** Whether an attempt's success is a snooze (see `Snoozed`); false for a value that throws when looked at. */
export const isSnoozed = (value: unknown): value is Snoozed => {
  try {
    return value instanceof Snoozed
  } catch {
    return false
  }
}

/**
 * An attempt that snoozed, as its pool sees it: a success, so that the pool's stats, metrics, logs
 * and the attempt's span do not count or report a snooze as a defect (it is not a failure).
 */
export class Snoozed {
  readonly snooze: Snooze
  constructor(snooze: Snooze) {
    this.snooze = snooze
  }
}
