/**
 * effect's `Redis` service on node-redis, on one server (`createClient`) or a Redis Cluster
 * (`createCluster`), every connect bounded (`connectWithin`): the client's, a reserved connection's
 * and a subscription's. `connectTimeout` bounds only the TCP connect, which a frozen server's kernel
 * accepts; the handshake after it waited for the server's answer for ever (a store built then never
 * ended). `@effect/platform-node`'s `NodeRedis` connects without a bound, so the store does not use it.
 *
 * On a Cluster each command goes to the node that holds its first key (a script's first key: every
 * key of a store's script shares its slot); commands without a key go to any node. Scripts: the
 * store sends `EVALSHA` itself, and `EVAL` (routed by its key too) where the key's node lacks the
 * script (not effect's `Redis.eval`, whose `SCRIPT LOAD` would go to some node, not the key's).
 * Blocking commands (`Redis.reserve`) get a client of their own, so a `BZPOPMIN` holds up nobody
 * else's commands.
 *
 * @internal
 */
import { Deferred, type Duration, Effect, Exit } from "effect"
import * as Redis from "effect/persistence/Redis"
import type * as Scope from "effect/Scope"
import { createClient, createCluster } from "redis"

/** What this module uses of a node-redis client, one server's or a Cluster's. */
interface Client {
  /** Sends a command (on a Cluster, to the node of its first key). */
  readonly send: (command: string, args: ReadonlyArray<string>) => Promise<unknown>
  /** A client of its own to the same server (or Cluster) that does not reconnect, not yet connected. */
  readonly own: () => Client
  /** Where a subscription may be made: the url's node, and on a Cluster every master known now. */
  readonly nodeUrls: () => ReadonlyArray<string>
  readonly connect: () => Promise<unknown>
  readonly close: () => Promise<unknown>
  readonly destroy: () => void
}

/** How long the client's close may wait for the replies of the commands in flight before it is destroyed. */
export const CLOSE_GRACE = 1000

/**
 * `client`'s connect, failed past `millis` (the client destroyed): a connect timeout bounds the TCP
 * connect only, which a frozen server's kernel accepts, and a cluster client's connect waits for
 * every master's answer. Unbounded, a store built while its server (or one master) was frozen never
 * ended, and a watch's reserved connection opened then hung in the pool's acquire (uninterruptible):
 * the store's close waited for it for ever.
 */
const connectWithin = async (client: { connect(): Promise<unknown>; destroy(): void }, millis: number): Promise<void> => {
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

/**
 * `client`'s close, which waits for the replies of the commands in flight: a frozen server's never
 * come, so past `CLOSE_GRACE` the client is destroyed (failing those commands) and the close ends.
 */
const closeWithin = (client: Client): Promise<void> =>
  new Promise((resolve) => {
    const timer = setTimeout(() => {
      client.destroy()
      resolve()
    }, CLOSE_GRACE)
    client.close().catch(() => {}).finally(() => {
      clearTimeout(timer)
      resolve()
    })
  })

/** The key a command is routed by on a Cluster, if it has one. */
const firstKey = (command: string, args: ReadonlyArray<string>): string | undefined => {
  switch (command.toUpperCase()) {
    case "EVALSHA":
    case "EVAL":
      return Number(args[1]) > 0 ? args[2] : undefined
    case "SCRIPT":
    case "TIME":
    case "PING":
    case "CONFIG":
    case "CLIENT":
    case "PUBLISH":
      return undefined
    default:
      return args[0]
  }
}

interface Options {
  readonly url: string
  /** `url` is one node of a Redis Cluster; the client finds the others. */
  readonly cluster: boolean
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

/** A client of one server: `reconnect` false for one of its own (a reserved connection). */
const server = (options: Options, reconnect: Options["reconnect"] | false): Client => {
  const client = createClient({
    url: options.url,
    name: options.name,
    disableOfflineQueue: true,
    commandOptions: options.commandOptions,
    socket: { connectTimeout: options.connectTimeout, reconnectStrategy: reconnect }
  })
  // unlistened, node-redis rethrows an error event: a socket failure would crash the process
  client.on("error", () => {})
  return {
    send: (command, args) => client.sendCommand([command, ...args]),
    own: () => server(options, false),
    nodeUrls: () => [options.url],
    connect: () => client.connect(),
    close: () => client.close(),
    destroy: () => client.destroy()
  }
}

/**
 * A client of a Cluster, found from `rootNodes`. One of its own (`reconnect` false: a reserved
 * connection) connects to a node at its first command there: a watch's `BZPOPMIN` goes to its
 * queue's node only, and connected to every master, each watch held a socket on every node (a
 * store waiting on q queues of m masters, q × m where q serve).
 */
const cluster = (options: Options, reconnect: Options["reconnect"] | false, rootNodes: ReadonlyArray<string>): Client => {
  const client = createCluster({
    RESP: 2,
    rootNodes: rootNodes.map((url) => ({ url })),
    minimizeConnections: reconnect === false,
    commandOptions: options.commandOptions,
    defaults: {
      name: options.name,
      disableOfflineQueue: true,
      socket: { connectTimeout: options.connectTimeout, reconnectStrategy: reconnect }
    }
  })
  client.on("error", () => {})
  /** The url's node and every master known now, as URLs (the url's scheme and credentials kept). */
  const nodeUrls = () =>
    [...new Set([options.url, ...client.masters.map(({ host, port }) => {
      const url = new URL(options.url)
      url.hostname = host.includes(":") ? `[${host}]` : host
      url.port = String(port)
      return url.toString()
    })])]
  return {
    send: (command, args) => client.sendCommand(firstKey(command, args), false, [command, ...args]),
    // found from every master known now, the url's node too: from the url's alone, a watch dropped
    // while that node is down was never made again (its queue's idle consumers fell back to a claim
    // a second), whatever node its queue is on
    own: () => cluster(options, false, nodeUrls()),
    nodeUrls,
    connect: () => client.connect(),
    close: () => client.close(),
    destroy: () => client.destroy()
  }
}

export const make = (options: Options): Effect.Effect<Redis.Redis["Service"], Redis.RedisError, Scope.Scope> =>
  Effect.gen(function*() {
    // a server that cannot be reached at first is an error; once connected, the client reconnects
    const connected = { value: false }
    const reconnect = (retries: number, cause: Error) => connected.value ? options.reconnect(retries, cause) : cause
    const connect = (client: Client) =>
      Effect.tryPromise({
        try: () => connectWithin(client, options.connectTimeout).then(() => client),
        catch: (cause) => new Redis.RedisError({ cause })
      })
    const client = yield* Effect.acquireRelease(
      connect(options.cluster ? cluster(options, reconnect, [options.url]) : server(options, reconnect)),
      (client) => Effect.promise(() => closeWithin(client))
    )
    connected.value = true
    const sendWith = (client: Client) =>
    <A = unknown>(command: string, ...args: ReadonlyArray<string>): Effect.Effect<A, Redis.RedisError> =>
      Effect.tryPromise({
        try: () => client.send(command, args) as Promise<A>,
        catch: (cause) => new Redis.RedisError({ cause })
      })
    return yield* Redis.make({
      send: sendWith(client),
      pool: { maxConnections: options.maxReserved, idleTimeout: options.idleTimeout },
      // a reserved connection does not reconnect: a dropped one fails its command and leaves the pool
      connect: Effect.suspend(() => connect(client.own())).pipe(
        Effect.map((own) => ({ send: sendWith(own), close: Effect.sync(() => own.destroy()) }))
      ),
      // a client of one node of its own, which fails when its connection ends; the caller subscribes
      // again, on a Cluster through the next node that answers. Not the cluster client's
      // subscription: that one resubscribed on its node only, so while that node was down no cancel
      // was heard (a PUBLISH reaches every node of a Cluster: any node will do)
      subscribe: (channel, onMessage) =>
        Effect.gen(function*() {
          const ended = yield* Deferred.make<void, Redis.RedisError>()
          const candidates = client.nodeUrls()
          const start = Math.floor(Math.random() * candidates.length)
          yield* Effect.acquireRelease(
            Effect.tryPromise({
              try: async () => {
                let last: unknown
                for (let i = 0; i < candidates.length; i++) {
                  const client = createClient({
                    url: candidates[(start + i) % candidates.length]!,
                    RESP: 2,
                    name: options.name,
                    disableOfflineQueue: true,
                    commandOptions: options.commandOptions,
                    socket: { connectTimeout: options.connectTimeout, reconnectStrategy: false }
                  })
                  const fail = (cause: unknown) => Deferred.doneUnsafe(ended, Exit.fail(new Redis.RedisError({ cause })))
                  // while it connects, an error is this node's only (a refused connect emits one): the
                  // subscription's end is listened for once it is made (before, a node down tried first
                  // ended the subscription made on the next one at once)
                  client.on("error", () => {})
                  try {
                    // the SUBSCRIBE's answer within the bound too: a server frozen just after the handshake
                    await connectWithin({
                      connect: () => client.connect().then(() => client.subscribe(channel, (message, channel) => onMessage({ channel, message }))),
                      destroy: () => client.destroy()
                    }, options.connectTimeout)
                  } catch (cause) {
                    last = cause
                    client.destroy()
                    continue
                  }
                  client.on("error", fail)
                  client.on("end", () => fail(new Error("the connection of the subscription ended")))
                  // its connection ended before the listeners were set
                  if (!client.isOpen) fail(new Error("the connection of the subscription ended"))
                  return client
                }
                throw last
              },
              catch: (cause) => new Redis.RedisError({ cause })
            }),
            (client) =>
              Effect.sync(() => {
                client.removeAllListeners("end")
                client.destroy()
              })
          )
          return Deferred.await(ended)
        })
    })
  })
