/**
 * Retention by count, on the SQL stores: what a store remembers of a queue's finished jobs so that a
 * look where nothing is to go does not read the `count` it keeps.
 *
 * @internal
 */
import { Effect } from "effect"

/** A position in a queue's finished jobs of a state: the newest one's end time and seq (their order). */
export interface Newest {
  readonly finishedAt: number
  readonly seq: number
}

/** Before every job (the first look of a queue and state counts from here). */
export const BEFORE_ALL: Newest = { finishedAt: Number.MIN_SAFE_INTEGER, seq: Number.MIN_SAFE_INTEGER }

/** What a look read, in one snapshot: how many jobs came after `from` (at most `bound`), and the newest. */
export interface Look {
  readonly n: number
  readonly newest: Newest | undefined
}

/**
 * How many cheap looks a remembered count serves before it is counted again in full. The count
 * adds the jobs that ended after the newest it saw; a job stamped before that one but committed
 * after the look (a settle in flight), or stamped by a process whose clock lags, is never among
 * them: it keeps one job more than `count`, until the next full count.
 */
export const LOOKS_PER_COUNT = 20

interface Memo {
  readonly count: number
  readonly newest: Newest
  readonly looks: number
}

/**
 * A store's memory of its queues' counts of finished jobs (per queue and state), and the step that
 * uses it. A retention by count read the newest `count` jobs at every batch (Postgres: an `OFFSET`
 * over its index; SQLite: every queue's finished jobs, under the write lock) to find its cut, even
 * with nothing to delete: with `count` 100,000, a queue of 2 × 100,000 finished jobs cost each
 * consumer 85 ms (SQLite, the file locked) to 75-130 ms (Postgres) per half lease. Remembered, a
 * look counts only the jobs that ended since (`look(from, bound)`), and deletes only when the sum
 * passes `count`. The count is an upper bound (a purge, another consumer's retention only lower
 * the truth): at worst the full statement runs for nothing.
 */
export const make = () => {
  const memos = new Map<string, Memo>()
  return <E>(
    queue: string,
    state: string,
    keep: number,
    look: (from: Newest, bound: number) => Effect.Effect<Look, E>,
    remove: Effect.Effect<number, E>
  ): Effect.Effect<number, E> =>
    Effect.gen(function*() {
      const key = `${queue}\u0000${state}`
      const memo = memos.get(key)
      memos.delete(key)
      if (memo !== undefined && memo.looks < LOOKS_PER_COUNT && memo.count <= keep) {
        const fresh = yield* look(memo.newest, keep + 1 - memo.count)
        const count = memo.count + fresh.n
        if (count <= keep) {
          memos.set(key, { count, newest: fresh.newest ?? memo.newest, looks: memo.looks + 1 })
          return 0
        }
      }
      const deleted = yield* remove
      // nothing went: the queue is likely within its count, and the next looks can be cheap
      if (deleted === 0) {
        const all = yield* look(BEFORE_ALL, keep + 1)
        if (all.n <= keep) memos.set(key, { count: all.n, newest: all.newest ?? BEFORE_ALL, looks: 0 })
      }
      return deleted
    })
}

/** A look's row as the SQL stores return it (counts and times as numbers, bigints or strings; no newest: nulls). */
export const lookOf = (row: unknown): Look => {
  const r = row as { n: unknown; finishedAt: unknown; seq: unknown } | undefined
  return {
    n: Number(r?.n ?? 0),
    newest: r == null || r.finishedAt == null || r.seq == null ? undefined : { finishedAt: Number(r.finishedAt), seq: Number(r.seq) }
  }
}
