/**
 * A client of the primary that a Redis Sentinel deployment's sentinels name (`sentinel`), and what
 * it is made of: asking the sentinels (`primaryFinder`), connecting to the primary they name only if
 * its `ROLE` says it is one (`connectPrimary`), one lookup shared by the connections that need the
 * primary at once (`deployment`), and listening for their `+switch-master` (`listenForSwitches`).
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

/**
 * A connection to the sentinel at `url`, never reconnected, its error events listened to (unlistened,
 * node-redis rethrows them: a socket failure would crash the process).
 */
const sentinelClient = (options: Pick<Options, "connectTimeout" | "commandOptions">, url: string) => {
  const client = createClient({
    url,
    RESP: 2,
    disableOfflineQueue: true,
    commandOptions: options.commandOptions,
    socket: { connectTimeout: options.connectTimeout, reconnectStrategy: false }
  })
  client.on("error", () => {})
  return client
}

/** What one sentinel answers `SENTINEL GET-MASTER-ADDR-BY-NAME`: the primary's address, or why not. */
const askSentinel = async (options: Options, target: SentinelTarget, sentinel: string): Promise<{ host: string; port: number }> => {
  const client = sentinelClient(options, sentinel)
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

/** How many sentinels a client listens on at once for `+switch-master` (each a connection held open). */
export const SWITCH_LISTENERS = 3

/** How long a primary found is shared by the connections made after it (ms; each checks its ROLE). */
export const SHARED_FOR = 5000

/**
 * What a sentinel client and its own clients share: the connections to the primary, how many new
 * primaries were announced, and the last lookup of the primary.
 */
interface Deployment {
  /** A connection to the primary the sentinels name, its `ROLE` checked (see `deployment`). */
  readonly connect: () => Promise<ReturnType<typeof nodeClient>>
  /** The URL of the primary the sentinels name now, asked afresh: for a store's one subscription. */
  readonly named: () => Promise<string>
  /** Every connection to the primary open now (the client's, its own clients', subscriptions'): all closed when the sentinels announce a new one. */
  readonly open: Set<{ readonly destroy: () => void }>
  /** Counts the new primaries announced: a connection made to one found before the last is not used. */
  generation: number
}

/**
 * The deployment of `target`, where connections share one lookup of the primary: at a switch every
 * connection ends and each queue's watch attaches again, and each asked the sentinels on a
 * connection of its own (a store watching 100 queues: ~100 sentinel connections and ROLE checks at
 * a failover). Now the first asks (`primaryFinder`, the ROLE of the one named checked) and the
 * others await its answer, reused for `SHARED_FOR` while no new primary is announced (longer, a
 * switch none of the listeners heard would keep new connections on the old primary). A lookup that
 * failed fails those that awaited it, and the next connection asks again. Each connection still
 * checks the ROLE of the primary shared; one that finds it wrong (a replica now, down) does not
 * trust it: the answer is dropped and that connection asks the sentinels itself. The cancel
 * subscription (one per store) asks on its own, as before: it re-reads the generation around its
 * lookup (see `track`), which a shared answer found before a switch would defeat.
 */
const deployment = (options: Options, target: SentinelTarget): Deployment => {
  const find = primaryFinder(options, target)
  let shared: { readonly generation: number; readonly url: Promise<string>; settled?: number } | undefined
  const current = () =>
    shared !== undefined && shared.generation === self.generation && (shared.settled === undefined || Date.now() - shared.settled < SHARED_FOR)
      ? shared
      : undefined
  const lookup = () => {
    const found = find(async (url) => ({ url, client: await connectPrimary(options, url) }))
    const entry: NonNullable<typeof shared> = { generation: self.generation, url: found.then(({ url }) => url) }
    entry.url.then(() => void (entry.settled = Date.now()), () => {
      if (shared === entry) shared = undefined
    })
    shared = entry
    return found
  }
  const self: Deployment = {
    open: new Set(),
    generation: 0,
    connect: async () => {
      const entry = current()
      if (entry === undefined) return (await lookup()).client
      const url = await entry.url
      try {
        return await connectPrimary(options, url)
      } catch {
        if (shared === entry) shared = undefined
        return find((url) => connectPrimary(options, url))
      }
    },
    named: () => find(async (url) => url)
  }
  return self
}

/**
 * Listens on up to `SWITCH_LISTENERS` sentinels at once for `+switch-master` of `target`, calling
 * `onSwitch` with its `host:port` once per switch announced (each sentinel announces it: heard
 * twice, the connections were closed twice). A primary gone without a word (its machine off, partitioned away,
 * frozen) never ends its connections: their commands waited for it for ever (minutes of TCP
 * retransmits), a frozen one's until it resumed. Listening on one sentinel, the one cut off from its
 * quorum (or frozen) announced nothing and the store heard no switch. A listener whose connection
 * ends listens again a second later, on a sentinel none listens on if there is one. Returns its stop.
 */
export const listenForSwitches = (
  options: Pick<Options, "connectTimeout" | "commandOptions">,
  target: Pick<SentinelTarget, "name" | "sentinels">,
  onSwitch: (address: string) => void
): () => void => {
  let stopped = false
  let announced: string | undefined
  const listening = new Map<number, { readonly destroy: () => void }>()
  const timers = new Set<ReturnType<typeof setTimeout>>()
  let next = 0
  const count = target.sentinels.length
  /** A sentinel no listener is on, from the one after the last taken. */
  const free = () => {
    for (let i = 0; i < count; i++) {
      const index = (next + i) % count
      if (!listening.has(index)) {
        next = index + 1
        return index
      }
    }
    return undefined
  }
  const heard = (message: string) => {
    // "<name> <old ip> <old port> <new ip> <new port>"
    const [name, , , host, port] = message.split(" ")
    if (name !== target.name) return
    // the same switch (old and new primary) as the last one heard: another sentinel's echo of it. Not
    // the new address alone: a switch to the primary of the last one heard, from another (a switch
    // between, all listeners' connections down, unheard), left the store on that other for ever
    if (message === announced) return
    announced = message
    onSwitch(`${host}:${port}`)
  }
  const listen = () => {
    const index = stopped ? undefined : free()
    if (index === undefined) return
    const client = sentinelClient(options, target.sentinels[index]!)
    listening.set(index, client)
    let ended = false
    const end = () => {
      if (ended) return
      ended = true
      client.destroy()
      if (listening.get(index) !== client || stopped) return
      listening.delete(index)
      const timer = setTimeout(() => {
        timers.delete(timer)
        listen()
      }, 1000)
      timers.add(timer)
    }
    connectWithin({
      connect: () => client.connect().then(() => client.subscribe("+switch-master", heard)),
      destroy: () => client.destroy()
    }, options.connectTimeout).then(() => {
      client.on("error", end)
      client.on("end", end)
      if (!client.isOpen) end()
    }, end)
  }
  for (let i = 0; i < Math.min(SWITCH_LISTENERS, count); i++) listen()
  return () => {
    stopped = true
    for (const timer of timers) clearTimeout(timer)
    for (const client of listening.values()) client.destroy()
  }
}

/**
 * A client of the primary that `target`'s sentinels name. Not node-redis's `createSentinel`: its
 * commands wait through a failover (up to 16 rediscoveries a second apart) where the store's must
 * fail at once with `StoreError`, its blocking commands share a small pool of leases where every
 * queue's watch needs a connection of its own, and its master clients reconnect to the old address.
 * Here a connection that ends (the sentinels close a demoted primary's clients; a crashed one's end),
 * answers `READONLY`, or whose primary the sentinels replace (`+switch-master`, listened for by the
 * client while it is open) is dropped, and the next command asks the sentinels again (a lookup its
 * own clients share, see `deployment`; at most once
 * per `reconnect` backoff but right after a switch: in between, commands fail at once with the last
 * reason); one of its own (`own`: a reserved connection) never connects again.
 */
export const sentinel = (
  options: Options,
  target: SentinelTarget,
  own: boolean,
  shared: Deployment = deployment(options, target)
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
    const generation = shared.generation
    connecting = shared.connect().then((client) => {
      connecting = undefined
      if (closed || generation !== shared.generation) {
        client.destroy()
        throw new Error(closed ? "the client is closed" : "the sentinels named a new primary while it connected")
      }
      failures = 0
      current = client
      const tracked = { destroy: () => drop(client) }
      shared.open.add(tracked)
      const ended = () => {
        shared.open.delete(tracked)
        drop(client)
      }
      client.on("error", ended)
      client.on("end", ended)
      if (!own && stopListening === undefined) {
        stopListening = listenForSwitches(options, target, () => {
          shared.generation++
          // the new primary at once, not after a backoff of failures against the old one
          retryAt = 0
          for (const connection of [...shared.open]) connection.destroy()
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
    own: () => sentinel(options, target, true, shared),
    subscribeUrls: () => shared.named().then((url) => [url]),
    track: (connection, since) => {
      if (since !== shared.generation) return undefined
      shared.open.add(connection)
      return () => void shared.open.delete(connection)
    },
    generation: () => shared.generation,
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
