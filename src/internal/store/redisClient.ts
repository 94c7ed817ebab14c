/**
 * effect's `Redis` service on node-redis, on one server (`createClient`), a Redis Cluster
 * (`createCluster`) or the primary its Redis Sentinels name (`sentinel`, in redisSentinel.ts), every
 * connect bounded (`connectWithin`): the client's, a reserved connection's and a subscription's.
 * `connectTimeout` bounds only the TCP connect, which a frozen server's kernel accepts; the handshake
 * after it waited for the server's answer for ever (a store built then never ended).
 * `@effect/platform-node`'s `NodeRedis` connects without a bound, so the store does not use it.
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
import { Deferred, Effect, Exit } from "effect"
import * as Redis from "effect/persistence/Redis"
import type * as Scope from "effect/Scope"
import { createClient, createCluster } from "redis"
import { at, type Client, connectWithin, nodeClient, type Options } from "./redisConnection.ts"
import { sentinel } from "./redisSentinel.ts"

/** How many subscriptions in a row are made again when the primary changed while each connected, before the subscribe fails. */
const SUBSCRIBE_ROUNDS = 3

/** How long the client's close may wait for the replies of the commands in flight before it is destroyed. */
export const CLOSE_GRACE = 1000

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

/** A client of one server: `reconnect` false for one of its own (a reserved connection). */
const server = (options: Options, reconnect: Options["reconnect"] | false): Client => {
  const client = nodeClient(options, options.url, reconnect)
  return {
    send: (command, args) => client.sendCommand([command, ...args]),
    own: () => server(options, false),
    subscribeUrls: () => Promise.resolve([options.url]),
    track: () => () => {},
    generation: () => 0,
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
  const nodeUrls = () => [...new Set([options.url, ...client.masters.map(({ host, port }) => at(options.url, host, port))])]
  return {
    send: (command, args) => client.sendCommand(firstKey(command, args), false, [command, ...args]),
    // found from every master known now, the url's node too: from the url's alone, a watch dropped
    // while that node is down was never made again (its queue's idle consumers fell back to a claim
    // a second), whatever node its queue is on
    own: () => cluster(options, false, nodeUrls()),
    subscribeUrls: () => Promise.resolve(nodeUrls()),
    track: () => () => {},
    generation: () => 0,
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
      connect(
        options.sentinel !== undefined
          ? sentinel(options, options.sentinel, false)
          : options.cluster
          ? cluster(options, reconnect, [options.url])
          : server(options, reconnect)
      ),
      (client) => Effect.promise(() => closeWithin(client))
    )
    connected.value = true
    const sendWith = (client: Client) =>
    <A = unknown>(command: string, ...args: ReadonlyArray<string>): Effect.Effect<A, Redis.RedisError> =>
      Effect.tryPromise({
        try: () => client.send(command, args) as Promise<A>,
        catch: (cause) => new Redis.RedisError({ cause })
      })
    /**
     * A subscription to `channel` on one node of `candidates` (from a random one on), or the last
     * node's error: a client of its own, its end not listened for yet.
     */
    const subscribeOn = async (
      candidates: ReadonlyArray<string>,
      channel: string,
      onMessage: (message: Redis.RedisMessage) => void
    ) => {
      const start = Math.floor(Math.random() * candidates.length)
      let last: unknown
      for (let i = 0; i < candidates.length; i++) {
        const subscriber = createClient({
          url: candidates[(start + i) % candidates.length]!,
          RESP: 2,
          name: options.name,
          disableOfflineQueue: true,
          commandOptions: options.commandOptions,
          socket: { connectTimeout: options.connectTimeout, reconnectStrategy: false }
        })
        // while it connects, an error is this node's only (a refused connect emits one): the
        // subscription's end is listened for once it is made (before, a node down tried first
        // ended the subscription made on the next one at once)
        subscriber.on("error", () => {})
        try {
          // the SUBSCRIBE's answer within the bound too: a server frozen just after the handshake
          await connectWithin({
            connect: () => subscriber.connect().then(() => subscriber.subscribe(channel, (message, channel) => onMessage({ channel, message }))),
            destroy: () => subscriber.destroy()
          }, options.connectTimeout)
        } catch (cause) {
          last = cause
          subscriber.destroy()
          continue
        }
        return subscriber
      }
      throw last
    }
    /**
     * A subscription, through sentinels ended when they name a new primary (an old one gone silent
     * would keep it, deaf, for ever). One made to a primary found before a `+switch-master` that came
     * while it connected is made again: kept, it stayed on the old primary, no cancel heard.
     */
    const subscribeOnce = async (
      channel: string,
      onMessage: (message: Redis.RedisMessage) => void,
      fail: (cause: unknown) => void
    ) => {
      for (let round = 1;; round++) {
        const since = client.generation()
        const subscriber = await subscribeOn(await client.subscribeUrls(), channel, onMessage)
        const untrack = client.track({
          destroy: () => {
            fail(new Error("the sentinels named a new primary"))
            subscriber.destroy()
          }
        }, since)
        if (untrack === undefined) {
          subscriber.destroy()
          if (round === SUBSCRIBE_ROUNDS) throw new Error(`the sentinels named a new primary while each of ${SUBSCRIBE_ROUNDS} subscriptions was made`)
          continue
        }
        subscriber.on("error", fail)
        subscriber.on("end", () => fail(new Error("the connection of the subscription ended")))
        // its connection ended before the listeners were set
        if (!subscriber.isOpen) fail(new Error("the connection of the subscription ended"))
        return { client: subscriber, untrack }
      }
    }
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
          yield* Effect.acquireRelease(
            Effect.tryPromise({
              try: () => subscribeOnce(channel, onMessage, (cause) => Deferred.doneUnsafe(ended, Exit.fail(new Redis.RedisError({ cause })))),
              catch: (cause) => new Redis.RedisError({ cause })
            }),
            ({ client, untrack }) =>
              Effect.sync(() => {
                untrack()
                client.removeAllListeners("end")
                client.destroy()
              })
          )
          return Deferred.await(ended)
        })
    })
  })
