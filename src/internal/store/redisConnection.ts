/**
 * What the Redis clients share (one server's, a Cluster's, the primary's through its sentinels,
 * see redisClient.ts and redisSentinel.ts): the interface the store's `Redis` service is made on,
 * the options, node-redis's client of one server and the bound on a connect.
 *
 * @internal
 */
import type { Duration } from "effect"
import { createClient } from "redis"
import type { SentinelTarget } from "./redisSentinel.ts"

/** What the store's `Redis` service uses of a client: one server's, a Cluster's, or the primary's its sentinels name. */
export interface Client {
  /** Sends a command (on a Cluster, to the node of its first key). */
  readonly send: (command: string, args: ReadonlyArray<string>) => Promise<unknown>
  /** A client of its own to the same server (or Cluster) that does not reconnect, not yet connected. */
  readonly own: () => Client
  /** Where a subscription may be made: the url's node, on a Cluster every master known now, through sentinels the primary they name. */
  readonly subscribeUrls: () => Promise<ReadonlyArray<string>>
  /**
   * Closes `connection` (a subscription's) when the primary changes, until the returned function is
   * called; `undefined` (nothing tracked) when it changed since `since` (a `generation()`): the
   * connection is to a primary found before the last switch.
   */
  readonly track: (connection: { readonly destroy: () => void }, since: number) => (() => void) | undefined
  /** Counts the primaries the sentinels announced (0 without sentinels). */
  readonly generation: () => number
  readonly connect: () => Promise<unknown>
  readonly close: () => Promise<unknown>
  readonly destroy: () => void
}

/**
 * `client`'s connect, failed past `millis` (the client destroyed): a connect timeout bounds the TCP
 * connect only, which a frozen server's kernel accepts, and a cluster client's connect waits for
 * every master's answer. Unbounded, a store built while its server (or one master) was frozen never
 * ended, and a watch's reserved connection opened then hung in the pool's acquire (uninterruptible):
 * the store's close waited for it for ever.
 */
export const connectWithin = async (client: { connect(): Promise<unknown>; destroy(): void }, millis: number): Promise<void> => {
  const connecting = client.connect()
  // its rejection once destroyed is not unhandled
  connecting.catch(() => {})
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    await Promise.race([
      connecting,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          client.destroy()
          reject(new Error(`no answer within ${millis} ms of connecting (the server frozen?)`))
        }, millis)
      })
    ])
  } finally {
    clearTimeout(timer)
  }
}

export interface Options {
  readonly url: string
  /** `url` is one node of a Redis Cluster; the client finds the others. */
  readonly cluster: boolean
  /** The primary is the one these sentinels name (`url` unused). */
  readonly sentinel?: SentinelTarget | undefined
  readonly name: string
  readonly connectTimeout: number
  /** The backoff of the client's reconnects once it has connected (before, a failure fails the open). */
  readonly reconnect: (retries: number, cause: Error) => number | Error
  /** node-redis's options of every command (see `NO_COMMAND_TIMEOUT` in redis.ts). */
  readonly commandOptions: { readonly timeout: number }
  /** How many reserved clients (`Redis.reserve`) at most (see `WATCH_CONNECTIONS` in redis.ts). */
  readonly maxReserved: number
  /** How long a reserved connection no one holds stays open. */
  readonly idleTimeout?: Duration.Input | undefined
}

/** node-redis's client of the server at `url`, its error events listened to. */
export const nodeClient = (options: Options, url: string, reconnect: Options["reconnect"] | false) => {
  const client = createClient({
    url,
    name: options.name,
    disableOfflineQueue: true,
    commandOptions: options.commandOptions,
    socket: { connectTimeout: options.connectTimeout, reconnectStrategy: reconnect }
  })
  // unlistened, node-redis rethrows an error event: a socket failure would crash the process
  client.on("error", () => {})
  return client
}

/** `url` (a redis:// URL) at `host`:`port`, its scheme, credentials and database kept. */
export const at = (url: string, host: string, port: number): string => {
  const moved = new URL(url)
  moved.hostname = host.includes(":") ? `[${host}]` : host
  moved.port = String(port)
  return moved.toString()
}
