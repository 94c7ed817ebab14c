/**
 * effect's `Redis` service on a Redis Cluster (node-redis's `createCluster`): `NodeRedis` has a
 * client for one server only. Each command goes to the node that holds its first key (a script's
 * first key: every key of a store's script shares it slot); commands without a key go to any node.
 *
 * Scripts: the store sends `EVALSHA` itself, and `EVAL` (routed by its key too) where the key's node
 * lacks the script (not effect's `Redis.eval`, whose `SCRIPT LOAD` would go to some node, not the
 * key's: nothing here makes that work). Blocking commands (`Redis.reserve`) get a cluster client of
 * their own, so a `BZPOPMIN` holds up nobody else's commands.
 *
 * @internal
 */
import { Deferred, type Duration, Effect, Exit } from "effect"
import * as Redis from "effect/persistence/Redis"
import type * as Scope from "effect/Scope"
import { createClient, createCluster } from "redis"

/** What this module uses of a cluster client. */
interface Cluster {
  readonly sendCommand: (firstKey: string | undefined, isReadonly: boolean | undefined, args: Array<string>) => Promise<unknown>
}

/**
 * `client`'s connect, failed past `millis` (the client destroyed): a connect timeout bounds the TCP
 * connect only, which a frozen server's kernel accepts, and a cluster client's connect waits for
 * every master's answer. Unbounded, a store built while one master was frozen never ended, and a
 * watch's reserved connection opened then hung in the pool's acquire (uninterruptible): the store's
 * close waited for it for ever.
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
          reject(new Error(`no answer within ${millis} ms of connecting (a node frozen?)`))
        }, millis)
      })
    ])
  } finally {
    clearTimeout(timer)
  }
}

/** The key a command is routed by, if it has one. */
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

export const make = (
  options: {
    readonly url: string
    readonly name: string
    readonly connectTimeout: number
    readonly reconnect: (retries: number, cause: Error) => number | Error
    /** node-redis's options of every command (see `NO_COMMAND_TIMEOUT` in redis.ts). */
    readonly commandOptions: { readonly timeout: number }
    /** How many reserved clients (`Redis.reserve`) at most (see `WATCH_CONNECTIONS` in redis.ts). */
    readonly maxReserved: number
    /** How long a reserved connection no one holds stays open. */
    readonly idleTimeout?: Duration.Input | undefined
  }
): Effect.Effect<Redis.Redis["Service"], Redis.RedisError, Scope.Scope> =>
  Effect.gen(function*() {
    const open = (reconnect: typeof options.reconnect | false) =>
      Effect.acquireRelease(
        Effect.tryPromise({
          try: async () => {
            const cluster = createCluster({
              RESP: 2,
              rootNodes: [{ url: options.url }],
              commandOptions: options.commandOptions,
              defaults: {
                name: options.name,
                disableOfflineQueue: true,
                socket: { connectTimeout: options.connectTimeout, reconnectStrategy: reconnect }
              }
            })
            // unlistened, node-redis rethrows an error event: a socket failure would crash the process
            cluster.on("error", () => {})
            await connectWithin(cluster, options.connectTimeout)
            return cluster
          },
          catch: (cause) => new Redis.RedisError({ cause })
        }),
        (cluster) => Effect.sync(() => cluster.destroy())
      )
    const sendWith = (cluster: Cluster) =>
    <A = unknown>(command: string, ...args: ReadonlyArray<string>): Effect.Effect<A, Redis.RedisError> =>
      Effect.tryPromise({
        try: () => cluster.sendCommand(firstKey(command, args), false, [command, ...args]) as Promise<A>,
        catch: (cause) => new Redis.RedisError({ cause })
      })

    const connected = { value: false }
    const cluster = yield* open((retries, cause) => connected.value ? options.reconnect(retries, cause) : cause)
    connected.value = true
    /** The url's node and every master known now, as URLs (the url's scheme and credentials kept). */
    const nodeUrls = () =>
      [...new Set([options.url, ...cluster.masters.map(({ host, port }) => {
        const url = new URL(options.url)
        url.hostname = host.includes(":") ? `[${host}]` : host
        url.port = String(port)
        return url.toString()
      })])]
    return yield* Redis.make({
      send: sendWith(cluster as unknown as Cluster),
      pool: { maxConnections: options.maxReserved, idleTimeout: options.idleTimeout },
      connect: Effect.tryPromise({
        try: async () => {
          // discovered from every master known now, the url's node too: from the url's alone, a watch
          // dropped while that node is down was never made again (its queue's idle consumers fell back
          // to a claim a second), whatever node its queue is on. The url's other parts (its scheme,
          // credentials) stay
          const rootNodes = nodeUrls().map((url) => ({ url }))
          const own = cluster.duplicate({
            rootNodes,
            defaults: { name: options.name, disableOfflineQueue: true, socket: { reconnectStrategy: false } }
          })
          own.on("error", () => {})
          await connectWithin(own, options.connectTimeout)
          return own
        },
        catch: (cause) => new Redis.RedisError({ cause })
      }).pipe(Effect.map((own) => ({ send: sendWith(own as unknown as Cluster), close: Effect.sync(() => own.destroy()) }))),
      // a client of one node of its own, not the cluster client's subscription: that one resubscribed
      // on its node only, so while that node was down no cancel was heard (a PUBLISH reaches every
      // node of a Cluster: any node will do). This one fails when its connection ends; the caller
      // subscribes again, through the next node that answers
      subscribe: (channel, onMessage) =>
        Effect.gen(function*() {
          const ended = yield* Deferred.make<void, Redis.RedisError>()
          const candidates = nodeUrls()
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
                    await connectWithin(client, options.connectTimeout)
                    await client.subscribe(channel, (message, channel) => onMessage({ channel, message }))
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
