/**
 * Effect's SQL clients keep a transaction in the fiber's context, one service per client
 * (`SqlClient.TransactionConnection`, keyed `effect/sql/SqlClient/TransactionConnection/<client id>`):
 * every statement of that client under it, in forked fibers too, runs on the transaction's connection.
 * A consumer started inside an application's `withTransaction` inherited it: its claims saw the
 * transaction's uncommitted jobs and ran them before the commit (rolled back, they had run all the
 * same), and once the transaction ended every claim failed ("Pinned connection was released").
 *
 * @internal
 */
import { Context, Effect, Layer } from "effect"

/** The start of every SQL client's transaction key. */
const TRANSACTION_KEY = "effect/sql/SqlClient/TransactionConnection/"

const isTransaction = (key: string) => key.startsWith(TRANSACTION_KEY)

const withoutTransactions = <R>(context: Context.Context<R>): Context.Context<R> => {
  const kept = [...context.mapUnsafe].filter(([key]) => !isTransaction(key))
  return kept.length === context.mapUnsafe.size ? context : Context.makeUnsafe(new Map(kept))
}

/**
 * Whether `context` is inside a transaction of another SQL client than the one whose transaction
 * key is `own`, and not inside one of its own: that client's statements there commit on their own.
 */
export const inOtherTransaction = (context: Context.Context<never>, own: string): boolean => {
  let other = false
  for (const key of context.mapUnsafe.keys()) {
    if (key === own) return false
    other ||= isTransaction(key)
  }
  return other
}

/** `effect`, and every fiber it forks, outside the caller's SQL transactions (of any client). */
export const outsideTransactions = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.updateContext(effect, withoutTransactions<R>)

/**
 * `layer` built outside the caller's SQL transactions: its services' fibers (a Dashboard's sampler,
 * its server's request handlers) outlive the transaction it may be built in.
 */
export const layerOutsideTransactions = <A, E, R>(layer: Layer.Layer<A, E, R>): Layer.Layer<A, E, R> =>
  Layer.fromBuild((memoMap, scope) => outsideTransactions(Layer.buildWithMemoMap(layer, memoMap, scope)))
