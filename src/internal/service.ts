/**
 * What makes a pool an Effect service, written once for every kind of pool: a layer from options or
 * from an Effect of options (say, read from `Config`), a service class that carries its layer, and
 * a stream combinator that runs each element through the pool.
 *
 * @internal
 */
import { Context, Effect, Layer, Stream } from "effect"
import type * as Scope from "effect/Scope"
import { InvalidJobOptions } from "../PoolError.ts"
import * as config from "./config.ts"

/** Makes the pool for `tag` from options given as they are or as an Effect run when the layer is built. */
export const layer = <I, P, O, E, R, EO, RO>(
  tag: Context.Key<I, P>,
  options: O | Effect.Effect<O, EO, RO>,
  make: (options: O) => Effect.Effect<P, E, R>
): Layer.Layer<I, E | EO, Exclude<R, Scope.Scope> | RO> =>
  // suspended: reading the options (a Proxy's trap may throw) waits until the layer is built
  Layer.effect(tag, Effect.suspend(() => Effect.isEffect(options) ? Effect.flatMap(options, make) : make(options as O)))

/** A `Context.Service` key for a pool, with the pool's layer as its `layer`. */
export const service = <Self, P, O, E, R, EO, RO>(
  id: string,
  options: O | Effect.Effect<O, EO, RO>,
  make: (options: O) => Effect.Effect<P, E, R>
) => {
  const Key = Context.Service<Self, P>()(id)
  return Object.assign(Key, { layer: layer(Key as Context.Key<Self, P>, options, make) })
}

interface StreamOptions {
  readonly unordered?: boolean | undefined
  readonly buffer?: number | undefined
}

/**
 * The options of `mapStream` that are its own. The job options in them are checked by `run` for
 * each element; their shape is checked here too, so that an empty stream refuses them as well.
 */
const checkStreamOptions = (
  options: StreamOptions | undefined
): { readonly unordered: boolean; readonly buffer: number | undefined } | InvalidJobOptions => {
  if (options === undefined) return { unordered: false, buffer: undefined }
  return config.checkJobOptions(() => {
    config.object("options", options)
    return {
      unordered: options.unordered === undefined ? false : config.boolean("unordered", options.unordered),
      // Stream.mapEffect allocates nothing per unit of buffer: no upper bound needed
      buffer: options.buffer === undefined ? undefined : config.positiveInteger("buffer", options.buffer, Infinity)
    }
  })
}

/**
 * Runs each element of a stream through `run`, at most `buffer` at once (default: twice the pool's
 * concurrency when the stream runs), in input order unless `unordered`.
 */
export const mapStream = <In, E, R, A, E2, R2>(
  self: Stream.Stream<In, E, R>,
  stats: Effect.Effect<{ readonly concurrency: number }>,
  run: (input: In) => Effect.Effect<A, E2, R2>,
  options: StreamOptions | undefined
): Stream.Stream<A, E | E2 | InvalidJobOptions, R | R2> =>
  Stream.unwrap(Effect.map(stats, (stats): Stream.Stream<A, E | E2 | InvalidJobOptions, R | R2> => {
    const checked = checkStreamOptions(options)
    if (checked instanceof InvalidJobOptions) return Stream.fail(checked)
    return Stream.mapEffect(self, run, {
      concurrency: checked.buffer ?? Math.max(2, stats.concurrency * 2),
      unordered: checked.unordered
    })
  }))
