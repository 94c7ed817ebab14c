/**
 * effect's `Redis` service on node-redis, on one server (`createClient`), a Redis Cluster
 * (`createCluster`) or the primary its Redis Sentinels name (`sentinel`), every connect bounded (`connectWithin`): the client's, a reserved connection's
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

/** How many subscriptions in a row are made again when the primary changed while each connected, before the subscribe fails. */
const SUBSCRIBE_ROUNDS = 3

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

/** A primary found through its sentinels (see `sentinel`). */
export interface SentinelTarget {
  /** The name the sentinels monitor it under. */
  readonly name: string
  /** The sentinels' URLs, with their own credentials. */
  readonly sentinels: ReadonlyArray<string>
  /** The primary's URL with a stand-in host and port: the data nodes' credentials, TLS and database. */
  readonly node: string
}

interface Options {
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
const nodeClient = (options: Options, url: string, reconnect: Options["reconnect"] | false) => {
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

/** What one sentinel answers `SENTINEL GET-MASTER-ADDR-BY-NAME`: the primary's address, or why not. */
const askSentinel = async (options: Options, target: SentinelTarget, sentinel: string): Promise<{ host: string; port: number }> => {
  const client = createClient({
    url: sentinel,
    RESP: 2,
    disableOfflineQueue: true,
    commandOptions: options.commandOptions,
    socket: { connectTimeout: options.connectTimeout, reconnectStrategy: false }
  })
  client.on("error", () => {})
  let answer: unknown
  try {
    await connectWithin({
      connect: () => client.connect().then(async () => {
        answer = await client.sendCommand(["SENTINEL", "GET-MASTER-ADDR-BY-NAME", target.name])
      }),
      destroy: () => client.destroy()
    }, options.connectTimeout)
  } finally {
    client.destroy()
  }
  if (!Array.isArray(answer) || answer.length < 2) throw new Error(`it monitors no primary named ${JSON.stringify(target.name)}`)
  const [host, port] = [String(answer[0]), Number(answer[1])]
  // URL's port setter ignores a port out of range: the client went to the stand-in host "primary"
  if (host === "" || /[\s/@]/.test(host) || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`it answered no address: ${JSON.stringify(String(answer[0]).slice(0, 100))} ${JSON.stringify(String(answer[1]).slice(0, 20))}`)
  }
  return { host, port }
}

/** `url` (a redis:// URL) at `host`:`port`, its scheme, credentials and database kept. */
const at = (url: string, host: string, port: number): string => {
  const moved = new URL(url)
  moved.hostname = host.includes(":") ? `[${host}]` : host
  moved.port = String(port)
  return moved.toString()
}

/**
 * The sentinels of `target` in turn, from the last that answered (as the Sentinel client spec asks):
 * `use` of the primary's URL that the first answers, or if `use` fails (the server named is down or
 * not a primary: a sentinel cut off from its quorum still names the old one), of the next one's.
 * Asking that sentinel first again after each failure kept the store on a stale answer while the
 * other sentinels named the new primary. An address already tried is not tried again within a round.
 * Errors name a sentinel by its host and port, never its URL (which may hold a password).
 */
const primaryFinder = (options: Options, target: SentinelTarget) => {
  let first = 0
  return async <A>(use: (url: string) => Promise<A>): Promise<A> => {
    const reasons: Array<string> = []
    const tried = new Set<string>()
    for (let i = 0; i < target.sentinels.length; i++) {
      const index = (first + i) % target.sentinels.length
      const sentinel = target.sentinels[index]!
      try {
        const { host, port } = await askSentinel(options, target, sentinel)
        const url = at(target.node, host, port)
        if (tried.has(url)) throw new Error(`it named ${host}:${port} too`)
        tried.add(url)
        const value = await use(url)
        first = index
        return value
      } catch (cause) {
        reasons.push(`sentinel ${new URL(sentinel).host}: ${cause instanceof Error ? cause.message : String(cause)}`)
      }
    }
    throw new Error(`no sentinel named the primary ${JSON.stringify(target.name)} (${reasons.join("; ")})`)
  }
}

/**
 * A client of the primary at `url`, connected after a `ROLE` that says it is one: right after a
 * failover a sentinel may still name the old primary, which, back from a crash, says it is a
 * primary until the sentinels make it a replica (writes there would be lost).
 */
const connectPrimary = async (options: Options, url: string): Promise<ReturnType<typeof nodeClient>> => {
  const client = nodeClient(options, url, false)
  try {
    await connectWithin({
      connect: () => client.connect().then(async () => {
        const role = await client.sendCommand(["ROLE"])
        if (!Array.isArray(role) || role[0] !== "master") {
          throw new Error(`the primary the sentinels named, ${new URL(url).host}, says it is a ${Array.isArray(role) ? String(role[0]) : "?"} (a failover under way)`)
        }
      }),
      destroy: () => client.destroy()
    }, options.connectTimeout)
    return client
  } catch (error) {
    client.destroy()
    throw error
  }
}

/** A write refused by a replica: the connection is to a primary made a replica since. */
const readOnly = (error: unknown) => error instanceof Error && error.message.includes("READONLY")

/** What a sentinel client and its own clients share. */
interface Deployment {
  readonly find: <A>(use: (url: string) => Promise<A>) => Promise<A>
  /** Every connection to the primary open now (the client's, its own clients', subscriptions'): all closed when the sentinels announce a new one. */
  readonly open: Set<{ readonly destroy: () => void }>
  /** Counts the new primaries announced: a connection made to one found before the last is not used. */
  generation: number
}

/**
 * Listens on a sentinel (the next one when its connection ends, a second later) for
 * `+switch-master` of `target`, calling `onSwitch` for each. A primary gone without a word (its
 * machine off, partitioned away, frozen) never ends its connections: their commands waited for it
 * for ever (minutes of TCP retransmits), a frozen one's until it resumed. Returns its stop.
 */
const listenForSwitches = (options: Options, target: SentinelTarget, onSwitch: () => void): () => void => {
  let stopped = false
  let current: { readonly destroy: () => void } | undefined
  let timer: ReturnType<typeof setTimeout> | undefined
  let next = 0
  const listen = () => {
    if (stopped) return
    const client = createClient({
      url: target.sentinels[next++ % target.sentinels.length]!,
      RESP: 2,
      disableOfflineQueue: true,
      commandOptions: options.commandOptions,
      socket: { connectTimeout: options.connectTimeout, reconnectStrategy: false }
    })
    current = client
    client.on("error", () => {})
    let ended = false
    const end = () => {
      if (ended) return
      ended = true
      client.destroy()
      if (current === client && !stopped) timer = setTimeout(listen, 1000)
    }
    connectWithin({
      connect: () =>
        client.connect().then(() =>
          client.subscribe("+switch-master", (message) => {
            // "<name> <old ip> <old port> <new ip> <new port>"
            if (message.split(" ")[0] === target.name) onSwitch()
          })
        ),
      destroy: () => client.destroy()
    }, options.connectTimeout).then(() => {
      client.on("error", end)
      client.on("end", end)
      if (!client.isOpen) end()
    }, end)
  }
  listen()
  return () => {
    stopped = true
    clearTimeout(timer)
    current?.destroy()
  }
}

/**
 * A client of the primary that `target`'s sentinels name. Not node-redis's `createSentinel`: its
 * commands wait through a failover (up to 16 rediscoveries a second apart) where the store's must
 * fail at once with `StoreError`, its blocking commands share a small pool of leases where every
 * queue's watch needs a connection of its own, and its master clients reconnect to the old address.
 * Here a connection that ends (the sentinels close a demoted primary's clients; a crashed one's end),
 * answers `READONLY`, or whose primary the sentinels replace (`+switch-master`, listened for by the
 * client while it is open) is dropped, and the next command asks the sentinels again (at most once
 * per `reconnect` backoff but right after a switch: in between, commands fail at once with the last
 * reason); one of its own (`own`: a reserved connection) never connects again.
 */
const sentinel = (
  options: Options,
  target: SentinelTarget,
  own: boolean,
  deployment: Deployment = { find: primaryFinder(options, target), open: new Set(), generation: 0 }
): Client => {
  let current: ReturnType<typeof nodeClient> | undefined
  let connecting: Promise<ReturnType<typeof nodeClient>> | undefined
  let attached = false
  let closed = false
  let failures = 0
  let retryAt = 0
  let last: unknown
  let stopListening: (() => void) | undefined
  const drop = (client: ReturnType<typeof nodeClient>) => {
    if (current !== client) return
    current = undefined
    client.destroy()
  }
  const attach = (): Promise<ReturnType<typeof nodeClient>> => {
    if (current !== undefined) return Promise.resolve(current)
    if (connecting !== undefined) return connecting
    if (closed) return Promise.reject(new Error("the client is closed"))
    if (own && attached) return Promise.reject(new Error("the connection ended"))
    if (Date.now() < retryAt) return Promise.reject(last)
    attached = true
    const generation = deployment.generation
    connecting = deployment.find((url) => connectPrimary(options, url)).then((client) => {
      connecting = undefined
      if (closed || generation !== deployment.generation) {
        client.destroy()
        throw new Error(closed ? "the client is closed" : "the sentinels named a new primary while it connected")
      }
      failures = 0
      current = client
      const tracked = { destroy: () => drop(client) }
      deployment.open.add(tracked)
      const ended = () => {
        deployment.open.delete(tracked)
        drop(client)
      }
      client.on("error", ended)
      client.on("end", ended)
      if (!own && stopListening === undefined) {
        stopListening = listenForSwitches(options, target, () => {
          deployment.generation++
          // the new primary at once, not after a backoff of failures against the old one
          retryAt = 0
          for (const connection of [...deployment.open]) connection.destroy()
        })
      }
      return client
    }, (error: unknown) => {
      connecting = undefined
      last = error
      const wait = options.reconnect(failures++, error instanceof Error ? error : new Error(String(error)))
      retryAt = Date.now() + (typeof wait === "number" ? wait : 0)
      throw error
    })
    return connecting
  }
  const stop = () => {
    closed = true
    stopListening?.()
  }
  return {
    send: async (command, args) => {
      const client = await attach()
      try {
        return await client.sendCommand([command, ...args])
      } catch (error) {
        if (readOnly(error)) drop(client)
        throw error
      }
    },
    own: () => sentinel(options, target, true, deployment),
    subscribeUrls: () => deployment.find(async (url) => [url]),
    track: (connection, since) => {
      if (since !== deployment.generation) return undefined
      deployment.open.add(connection)
      return () => void deployment.open.delete(connection)
    },
    generation: () => deployment.generation,
    connect: () => attach(),
    close: async () => {
      stop()
      await connecting?.catch(() => {})
      await current?.close()
    },
    destroy: () => {
      stop()
      current?.destroy()
      void connecting?.then((client) => client.destroy(), () => {})
    }
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
