/**
 * Wake-ups from other processes on an SQLite file. A commit in WAL mode appends to the `-wal` file,
 * so a file watch on it (inotify on Linux) hears every process's writes at once, where a consumer
 * would otherwise see them only at its next poll. The WAL file exists as long as any connection is
 * open (ours is), and a checkpoint rewrites it in place, so one watch lasts the store's life.
 *
 * The watch hears our own writes too, and a write before its commit is visible: each event only
 * makes the store look (`PRAGMA data_version` changes when, and only when, another connection has
 * committed), and the store wakes its waiters for what it finds. A commit's last WAL write comes just before
 * the other process publishes it (in the shared index, which no event tells of), and that process may
 * be preempted in between for tens of ms on a loaded machine: a look that finds nothing looks again,
 * 2 ms later, then at doubling intervals for about half a second (`RECHECKS`), and stops.
 *
 * Events cost every watching process a wake-up per commit, so the watch is open only while a fiber
 * of this process waits for a change (an idle consumer, an awaiter): it opens when one starts waiting
 * and closes at the first event that finds nobody waiting.
 *
 * Best effort: where watching is impossible (no inotify watches left, a platform or file system
 * without it) or the watch fails later, the store polls as before (logged at debug level). A missed
 * event only delays a wake-up to the next poll. The watch never keeps the process alive.
 *
 * @internal
 */
import { Effect } from "effect"
import type * as Scope from "effect/Scope"
import * as fs from "node:fs"

/** How long after an event that found no new commit to look once more, in milliseconds (then doubling). */
const RECHECK = 2
/** How many times to look again after an event that found no new commit: 2 to 256 ms, 510 ms in all. */
export const RECHECKS = 8

export interface Watch {
  /** Starts watching, if not already (a fiber waits for a change): looks once at once. */
  readonly arm: () => void
}

export const watchOtherProcesses = (options: {
  /** The database file; its WAL is `${filename}-wal`. */
  readonly filename: string
  /** Looks for other connections' commits since the last look, wakes their waiters, says if any. */
  readonly look: () => boolean
  /** True while a fiber waits for a change. */
  readonly waiting: () => boolean
}): Effect.Effect<Watch, never, Scope.Scope> =>
  Effect.gen(function*() {
    const context = yield* Effect.context<never>()
    const debug = (message: string) =>
      Effect.runForkWith(context)(Effect.logDebug(`JobStore.sqlite: ${message}; other processes' jobs are seen at the next poll`))
    const wal = `${options.filename}-wal`
    let closed = false
    let failed = false
    let watcher: fs.FSWatcher | undefined
    let soon: ReturnType<typeof setImmediate> | undefined
    let timer: ReturnType<typeof setTimeout> | undefined
    const cancel = () => {
      if (soon !== undefined) clearImmediate(soon)
      if (timer !== undefined) clearTimeout(timer)
      soon = timer = undefined
    }
    /** Looks; `recheck`: the looks after an event so far (0: the event's own). */
    const look = (recheck: number) => {
      cancel()
      if (closed) return
      let found: boolean
      try {
        found = options.look()
      } catch {
        return
      }
      // even with nobody waiting now: a fiber that waits again while the watch is open (no event
      // closed it) does not look on its own
      if (!found && recheck < RECHECKS) {
        timer = setTimeout(look, RECHECK * 2 ** recheck, recheck + 1).unref()
      }
    }
    // events come in bursts (several writes per commit, several commits per turn): one look each,
    // its rechecks starting over
    const schedule = () => {
      if (closed || soon !== undefined) return
      cancel()
      soon = setImmediate(look, 0).unref()
    }
    const unwatch = () => {
      watcher?.close()
      watcher = undefined
    }
    // every commit of every process is an event: with no one waiting, the watch is closed (at its
    // next event), so that busy or producing processes do not pay for events nobody needs
    const onEvent = () => {
      if (options.waiting()) schedule()
      else unwatch()
    }
    const arm = () => {
      if (watcher !== undefined || closed || failed) return
      try {
        watcher = fs.watch(wal, { persistent: false }, onEvent)
      } catch (error) {
        failed = true
        debug(`cannot watch ${wal} (${(error as Error).message})`)
        return
      }
      watcher.on("error", (error) => {
        failed = true
        debug(`the watch of ${wal} failed (${error.message})`)
        unwatch()
      })
      // commits while nobody watched: the waiter looked at the store before it waited, this look
      // catches what came in between
      schedule()
    }
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closed = true
        cancel()
        unwatch()
      })
    )
    return { arm }
  })
