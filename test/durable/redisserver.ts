/**
 * A private Redis server for the tests that kill and restart it (others share WORKPOOL_REDIS_URL's
 * server, which must stay up): `redis-server` on a free loopback port, its files in a temporary
 * directory, append-only persistence with `appendfsync always` (every write on disk before its
 * reply), no RDB snapshots.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { createConnection, createServer } from "node:net"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"

/** The server binary: WORKPOOL_REDIS_BIN, or redis-server on the PATH (Debian's package). */
export const binary = (): string | undefined => {
  if (process.env.WORKPOOL_REDIS_BIN) return process.env.WORKPOOL_REDIS_BIN
  for (const candidate of ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]) if (existsSync(candidate)) return candidate
  try {
    return execFileSync("sh", ["-c", "command -v redis-server"]).toString().trim() || undefined
  } catch {
    return undefined
  }
}

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0))
    })
  })

/**
 * Resolves once the port takes connections (the server loaded its append-only file); rejects with
 * `Exited` at once if the server exits first (its port, or a cluster's bus port, was taken).
 */
const accepting = (port: number, child: ChildProcess, millis = 60_000) =>
  new Promise<void>((resolve, reject) => {
    const deadline = Date.now() + millis
    let exited = false
    const onExit = () => {
      exited = true
      reject(new Exited(port))
    }
    if (child.exitCode !== null || child.signalCode !== null) return onExit()
    child.once("exit", onExit)
    const done = () => child.off("exit", onExit)
    const attempt = () => {
      if (exited) return
      const socket = createConnection({ port, host: "127.0.0.1" })
      socket.once("connect", () => {
        socket.write("PING\r\n")
        socket.once("data", (data) => {
          socket.destroy()
          // a server still loading its file answers -LOADING
          if (data.toString().startsWith("+PONG")) {
            done()
            resolve()
          } else retry()
        })
      })
      socket.once("error", () => {
        socket.destroy()
        retry()
      })
    }
    const retry = () => {
      if (exited) return
      if (Date.now() <= deadline) return void setTimeout(attempt, 50)
      done()
      reject(new Error(`redis on ${port} did not start`))
    }
    attempt()
  })

class Exited extends Error {
  constructor(port: number) {
    super(`redis on ${port} exited before it took connections`)
  }
}

export interface Server {
  readonly url: string
  /** SIGKILL: a crash, nothing flushed at exit. */
  readonly kill: () => Promise<void>
  readonly start: () => Promise<void>
  /** Sends `signal` (e.g. SIGSTOP, SIGCONT: a frozen server) to the running server. */
  readonly signal: (signal: NodeJS.Signals) => void
  readonly destroy: () => Promise<void>
}

/**
 * `args`: more server options, e.g. `["--maxmemory-policy", "allkeys-lru"]`. `maxPort`: a cluster
 * node also listens on its port + 10000, so its port must be at most 55535.
 */
export const startServer = async (bin: string, args: ReadonlyArray<string> = [], maxPort = 65535): Promise<Server> => {
  const dir = mkdtempSync(join(tmpdir(), "wp-redis-"))
  let port = 0
  let child: ChildProcess | undefined
  const start = async () => {
    child = spawn(bin, [
      "--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "",
      "--appendonly", "yes", "--appendfsync", "always", "--logfile", join(dir, "redis.log"), ...args
    ], { stdio: "ignore" })
    await accepting(port, child)
  }
  // a free port can be taken between the check and the server's bind (by another test's server or a
  // client's ephemeral port): the server then exits, and the first start tries another port
  for (let attempt = 1;; attempt++) {
    do port = await freePort()
    while (port > maxPort)
    try {
      await start()
      break
    } catch (error) {
      if (!(error instanceof Exited) || attempt >= 10) {
        rmSync(dir, { recursive: true, force: true })
        throw error
      }
    }
  }
  // the destroy's rmSync once failed with ENOTEMPTY after the read-only replica test: a file created
  // in `dir` after the server's exit. A server's forked children (a BGSAVE, an AOF rewrite, a
  // replica's sync) end with it, but not at its exit: each ends when its own kill is delivered, and
  // a system call in progress (a file being created) completes first. The server is stopped first
  // (it forks no more), its children listed and killed with it, and each waited for
  const kill = async () => {
    const running = child
    if (running === undefined || running.exitCode !== null || running.signalCode !== null) return
    const exited = new Promise((resolve) => running.once("exit", resolve))
    running.kill("SIGSTOP")
    const forked = childrenOf(running.pid!)
    for (const pid of forked) send(pid, "SIGKILL")
    running.kill("SIGKILL")
    await exited
    await gone(forked)
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    kill,
    start,
    signal: (signal) => void child?.kill(signal),
    destroy: async () => {
      // a frozen server takes SIGKILL all the same
      await kill()
      rmSync(dir, { recursive: true, force: true, maxRetries: 5 })
    }
  }
}

/** The pids of `pid`'s children (Linux's /proc; none where it lacks the list). */
const childrenOf = (pid: number): Array<number> => {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").split(" ").map(Number).filter((child) => child > 0)
  } catch {
    return []
  }
}

const send = (pid: number, name: NodeJS.Signals) => {
  try {
    process.kill(pid, name)
  } catch {
    // it has exited already
  }
}

/** Whether `pid` has ended: no process, or a zombie its new parent has not reaped yet. */
const ended = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /s, "").startsWith("Z")
  } catch {
    return true
  }
}

/** Waits (5 s at most: a kill of a process not ours failed) for every one of `pids` to end. */
const gone = async (pids: ReadonlyArray<number>) => {
  const deadline = Date.now() + 5000
  while (pids.some((pid) => !ended(pid)) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5))
}

export interface Cluster {
  /** One node's URL: the client finds the others. */
  readonly url: string
  readonly nodes: ReadonlyArray<Server>
  readonly destroy: () => Promise<void>
}

/**
 * A Redis Cluster of `size` masters (no replicas) on free loopback ports, each a private server;
 * `args`: more options of every node (e.g. `["--cluster-node-timeout", "60000"]`).
 */
export const startCluster = async (bin: string, size = 3, args: ReadonlyArray<string> = []): Promise<Cluster> => {
  const nodes: Array<Server> = []
  const destroy = () => Promise.all(nodes.map((node) => node.destroy())).then(() => undefined)
  try {
    for (let i = 0; i < size; i++) {
      nodes.push(await startServer(bin, ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", ...args], 55535))
    }
    const cli = join(dirname(bin), "redis-cli")
    const addresses = nodes.map((node) => node.url.replace("redis://", ""))
    execFileSync(cli, ["--cluster", "create", ...addresses, "--cluster-replicas", "0", "--cluster-yes"], { stdio: "ignore" })
    // every node agrees that every slot is served
    const deadline = Date.now() + 60_000
    for (const address of addresses) {
      const [host, port] = address.split(":")
      while (!execFileSync(cli, ["-h", host!, "-p", port!, "cluster", "info"]).toString().includes("cluster_state:ok")) {
        if (Date.now() > deadline) throw new Error(`the cluster did not come up on ${address}`)
        execFileSync("sleep", ["0.1"])
      }
    }
    return { url: nodes[0]!.url, nodes, destroy }
  } catch (error) {
    await destroy()
    throw error
  }
}

export interface SentinelGroup {
  /** The name the sentinels monitor the primary under. */
  readonly name: string
  /** The data nodes: `nodes[0]` is the first primary, `nodes[1]` its replica. */
  readonly nodes: ReadonlyArray<Server>
  /** The sentinels' URLs. */
  readonly sentinels: ReadonlyArray<string>
  /** The sentinel processes (SIGKILL one to test a sentinel down). */
  readonly sentinelServers: ReadonlyArray<Server>
  readonly destroy: () => Promise<void>
}

/** A sentinel on a free loopback port watching `primaryPort` (`redis-server <conf> --sentinel`, its conf file its own: sentinel rewrites it). */
const startSentinel = async (bin: string, name: string, primaryPort: number, quorum: number, downAfter: number): Promise<Server> => {
  const dir = mkdtempSync(join(tmpdir(), "wp-sentinel-"))
  for (let attempt = 1;; attempt++) {
    const port = await freePort()
    const conf = join(dir, "sentinel.conf")
    writeFileSync(conf, [
      `port ${port}`,
      "bind 127.0.0.1",
      `dir ${dir}`,
      `logfile ${join(dir, "sentinel.log")}`,
      `sentinel monitor ${name} 127.0.0.1 ${primaryPort} ${quorum}`,
      // a primary silent for `downAfter` ms is down; a failover may start again 2 × 3 s after the last
      `sentinel down-after-milliseconds ${name} ${downAfter}`,
      `sentinel failover-timeout ${name} 3000`,
      ""
    ].join("\n"))
    const child = spawn(bin, [conf, "--sentinel"], { stdio: "ignore" })
    try {
      await accepting(port, child)
    } catch (error) {
      child.kill("SIGKILL")
      if (!(error instanceof Exited) || attempt >= 10) {
        rmSync(dir, { recursive: true, force: true })
        throw error
      }
      continue
    }
    const kill = async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = new Promise((resolve) => child.once("exit", resolve))
      child.kill("SIGKILL")
      await exited
    }
    return {
      url: `redis://127.0.0.1:${port}`,
      kill,
      start: () => Promise.reject(new Error("a sentinel here is not restarted")),
      signal: (signal) => void child.kill(signal),
      destroy: async () => {
        await kill()
        rmSync(dir, { recursive: true, force: true, maxRetries: 5 })
      }
    }
  }
}

/**
 * A primary, its replica (both private servers) and `sentinels` sentinels watching them (quorum: a
 * majority), on free loopback ports. Resolves once the sentinels see the replica (a failover needs
 * one) and, with several, each other. `downAfter`: how long the primary may be silent before the
 * sentinels fail over (ms; a second for the failover tests; a group that must not fail over on a
 * busy machine's pause, longer).
 */
export const startSentinelGroup = async (
  bin: string,
  sentinels = 1,
  args: ReadonlyArray<string> = [],
  downAfter = 1000
): Promise<SentinelGroup> => {
  const name = "wpmaster"
  const nodes: Array<Server> = []
  const sentinelServers: Array<Server> = []
  const destroy = async () => {
    await Promise.all(sentinelServers.map((sentinel) => sentinel.destroy()))
    await Promise.all(nodes.map((node) => node.destroy()))
  }
  try {
    nodes.push(await startServer(bin, args))
    const primaryPort = Number(nodes[0]!.url.split(":").at(-1))
    nodes.push(await startServer(bin, ["--replicaof", "127.0.0.1", String(primaryPort), ...args]))
    for (let i = 0; i < sentinels; i++) sentinelServers.push(await startSentinel(bin, name, primaryPort, Math.floor(sentinels / 2) + 1, downAfter))
    const cli = join(dirname(bin), "redis-cli")
    const ask = (url: string, ...command: Array<string>) => {
      const [host, port] = url.replace("redis://", "").split(":")
      return execFileSync(cli, ["-h", host!, "-p", port!, ...command]).toString()
    }
    const deadline = Date.now() + 60_000
    // each sentinel sees the replica, in sync (a failover needs one), and the other sentinels
    const ready = (sentinel: Server) => {
      const replicas = ask(sentinel.url, "sentinel", "replicas", name)
      const others = Number(/num-other-sentinels\n(\d+)/.exec(ask(sentinel.url, "sentinel", "master", name))?.[1] ?? -1)
      return /flags\nslave\n/.test(replicas) && /master-link-status\nok\n/.test(replicas) && others >= sentinels - 1
    }
    for (const sentinel of sentinelServers) {
      while (!ready(sentinel)) {
        if (Date.now() > deadline) throw new Error(`the sentinel on ${sentinel.url} did not see the replica and the other sentinels`)
        execFileSync("sleep", ["0.1"])
      }
    }
    return { name, nodes, sentinels: sentinelServers.map((sentinel) => sentinel.url), sentinelServers, destroy }
  } catch (error) {
    await destroy()
    throw error
  }
}
