/**
 * A client of the primary that a Redis Sentinel deployment's sentinels name (`sentinel`), and what
 * it is made of: asking the sentinels (`primaryFinder`), connecting to the primary they name only if
 * its `ROLE` says it is one (`connectPrimary`), and listening for their `+switch-master`
 * (`listenForSwitches`).
 *
 * @internal
 */
import { createClient } from "redis"
import { at, type Client, connectWithin, nodeClient, type Options } from "./redisConnection.ts"

/** A primary found through its sentinels (see `sentinel`). */
export interface SentinelTarget {
  /** The name the sentinels monitor it under. */
  readonly name: string
  /** The sentinels' URLs, with their own credentials. */
  readonly sentinels: ReadonlyArray<string>
  /** The primary's URL with a stand-in host and port: the data nodes' credentials, TLS and database. */
  readonly node: string
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
export const sentinel = (
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
