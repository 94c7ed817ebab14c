/**
 * A private Redis server for the tests that kill and restart it (others share WORKPOOL_REDIS_URL's
 * server, which must stay up): `redis-server` on a free loopback port, its files in a temporary
 * directory, append-only persistence with `appendfsync always` (every write on disk before its
 * reply), no RDB snapshots.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { createConnection, createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"

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

/** Resolves once the port takes connections (the server loaded its append-only file). */
const accepting = (port: number, millis = 60_000) =>
  new Promise<void>((resolve, reject) => {
    const deadline = Date.now() + millis
    const attempt = () => {
      const socket = createConnection({ port, host: "127.0.0.1" })
      socket.once("connect", () => {
        socket.write("PING\r\n")
        socket.once("data", (data) => {
          socket.destroy()
          // a server still loading its file answers -LOADING
          if (data.toString().startsWith("+PONG")) resolve()
          else retry()
        })
      })
      socket.once("error", () => {
        socket.destroy()
        retry()
      })
    }
    const retry = () => Date.now() > deadline ? reject(new Error(`redis on ${port} did not start`)) : setTimeout(attempt, 50)
    attempt()
  })

export interface Server {
  readonly url: string
  /** SIGKILL: a crash, nothing flushed at exit. */
  readonly kill: () => Promise<void>
  readonly start: () => Promise<void>
  readonly destroy: () => Promise<void>
}

/** `args`: more server options, e.g. `["--maxmemory-policy", "allkeys-lru"]`. */
export const startServer = async (bin: string, args: ReadonlyArray<string> = []): Promise<Server> => {
  const dir = mkdtempSync(join(tmpdir(), "wp-redis-"))
  const port = await freePort()
  let child: ChildProcess | undefined
  const start = async () => {
    child = spawn(bin, [
      "--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "",
      "--appendonly", "yes", "--appendfsync", "always", "--logfile", join(dir, "redis.log"), ...args
    ], { stdio: "ignore" })
    await accepting(port)
  }
  const kill = async () => {
    const running = child
    if (running === undefined || running.exitCode !== null || running.signalCode !== null) return
    const exited = new Promise((resolve) => running.once("exit", resolve))
    running.kill("SIGKILL")
    await exited
  }
  await start()
  return {
    url: `redis://127.0.0.1:${port}`,
    kill,
    start,
    destroy: async () => {
      await kill()
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
