/**
 * Percentiles of the attempts recorded in one interval, from two readings of a cumulative histogram
 * (`Metric.HistogramState`): the difference of the bucket counts is that interval's histogram.
 *
 * @internal
 */

/** A histogram's buckets as `Metric` reads them: [upper boundary, cumulative count]. */
export type Buckets = ReadonlyArray<readonly [number, number]>

/**
 * The `q` quantile (0 to 1) of what was recorded between `before` and `after` (same boundaries), or
 * undefined if nothing was. Linear within a bucket, as Prometheus's `histogram_quantile`: the
 * answer is as precise as the buckets (powers of two of a millisecond). A quantile in the last
 * (Infinity) bucket is its lower boundary.
 */
export const quantile = (before: Buckets | undefined, after: Buckets, q: number): number | undefined => {
  const count = (i: number) => after[i]![1] - (before?.[i]?.[1] ?? 0)
  const total = after.length === 0 ? 0 : count(after.length - 1)
  if (total <= 0) return undefined
  const rank = q * total
  let below = 0
  for (let i = 0; i < after.length; i++) {
    const upTo = count(i)
    if (upTo >= rank && upTo > below) {
      const lower = i === 0 ? 0 : after[i - 1]![0]
      const upper = after[i]![0]
      if (upper === Infinity) return lower
      return lower + (upper - lower) * (rank - below) / (upTo - below)
    }
    below = upTo
  }
  return after[after.length - 1]![0]
}

/**
 * The `q` quantile (0 to 1) of `sorted` (ascending, not empty), linear between the two nearest
 * values (as `quantile` is within a bucket): the exact times a store gives of an interval's jobs.
 */
export const quantileOf = (sorted: ReadonlyArray<number>, q: number): number => {
  const at = q * (sorted.length - 1)
  const below = Math.floor(at)
  const above = Math.min(below + 1, sorted.length - 1)
  return sorted[below]! + (sorted[above]! - sorted[below]!) * (at - below)
}
