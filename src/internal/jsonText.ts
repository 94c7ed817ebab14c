/**
 * A value's JSON text, or why it has none: what every store writes (a payload, a job's outcome, its
 * progress) is JSON text, and what a Schema lets through (`Schema.Any`) need not be JSON.
 *
 * @internal
 */

/** Why a value has no JSON text. */
export class NotJson {
  readonly reason: string
  constructor(reason: string) {
    this.reason = reason
  }
}

const reasonOf = (error: unknown): string => {
  try {
    return error instanceof Error ? error.message : String(error)
  } catch {
    // a toJSON that threw what cannot be read either
    return "its toJSON threw"
  }
}

/**
 * JSON.stringify throws on a BigInt, a cycle or a throwing toJSON, and gives no text at all
 * (undefined, not a string) for undefined, a function or a symbol: both are a `NotJson` here.
 */
export const jsonText = (value: unknown): string | NotJson => {
  let text: string | undefined
  try {
    text = JSON.stringify(value)
  } catch (error) {
    return new NotJson(reasonOf(error))
  }
  return text === undefined ? new NotJson(`not JSON: ${typeof value}`) : text
}
