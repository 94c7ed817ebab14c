/**
 * A private Postgres server for the tests that stop and start it (others share WORKPOOL_PG_URL's
 * server, which must stay up): initdb in a temporary directory, on a free loopback port, `fsync=off`.
 * Run as the `postgres` user when the tests run as root (initdb refuses root).
 */
import { execFile } from "node:child_process"
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"

const exec = promisify(execFile)

/** The server binaries: WORKPOOL_PG_BIN, or Debian's newest /usr/lib/postgresql/<version>/bin. */
export const binaries = (): string | undefined => {
  if (process.env.WORKPOOL_PG_BIN) return process.env.WORKPOOL_PG_BIN
  const root = "/usr/lib/postgresql"
  if (!existsSync(root)) return undefined
  const versions = readdirSync(root).filter((v) => existsSync(join(root, v, "bin", "pg_ctl"))).sort((a, b) => Number(b) - Number(a))
  return versions.length === 0 ? undefined : join(root, versions[0]!, "bin")
}

/** A free loopback port (for a moment: another process may take it before its user binds it). */
export const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0))
    })
  })

export interface Server {
  readonly url: string
  readonly port: number
  /** The directory of its Unix socket (`.s.PGSQL.<port>`). */
  readonly socketDir: string
  readonly stop: () => Promise<void>
  readonly start: () => Promise<void>
  readonly destroy: () => Promise<void>
  /** The server's processes (the postmaster and its children), to freeze (SIGSTOP) and thaw. */
  readonly pids: () => Promise<Array<number>>
  /**
   * Freezes every process of the server (SIGSTOP) and returns their pids, to thaw (SIGCONT). A freeze
   * of `pids()` missed a backend forked while its list was read (a pool opening a connection then):
   * that session was answered, a frozen-server test's statements on it worked, and the test waited
   * for failures that never came. Here the postmaster is stopped first (it forks no more), then its
   * children are listed and stopped again until a listing finds no new one.
   */
  readonly freeze: () => Promise<Array<number>>
}

const childrenOf = async (pid: number): Promise<Array<number>> => {
  const { stdout } = await exec("ps", ["-o", "pid=", "--ppid", String(pid)]).catch(() => ({ stdout: "" }))
  return stdout.split("\n").map((line) => Number(line.trim())).filter((child) => child > 0)
}

const readLog = (file: string) => {
  try {
    return readFileSync(file, "utf8")
  } catch {
    return ""
  }
}

/**
 * `ssl`: TLS on (a self-signed certificate for `localhost`; plain connections still accepted);
 * `ipv6`: it listens on `::1` too.
 */
export const startServer = async (bin: string, options: { readonly ssl?: boolean; readonly ipv6?: boolean } = {}): Promise<Server> => {
  const root = mkdtempSync(join(tmpdir(), "wp-pg-"))
  const asRoot = process.getuid?.() === 0
  let owner: [number, number] | undefined
  if (asRoot) {
    const { stdout } = await exec("id", ["-u", "postgres"])
    const { stdout: gid } = await exec("id", ["-g", "postgres"])
    owner = [Number(stdout.trim()), Number(gid.trim())]
    chownSync(root, owner[0], owner[1])
  }
  let extra = ""
  if (options.ssl) {
    const cert = join(root, "server.crt")
    const key = join(root, "server.key")
    await exec("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost"])
    chmodSync(key, 0o600)
    if (owner !== undefined) {
      chownSync(cert, owner[0], owner[1])
      chownSync(key, owner[0], owner[1])
    }
    extra += ` -c ssl=on -c ssl_cert_file=${cert} -c ssl_key_file=${key}`
  }
  const run = (tool: string, args: Array<string>) =>
    asRoot ? exec("runuser", ["-u", "postgres", "--", join(bin, tool), ...args]) : exec(join(bin, tool), args)
  let port = 0
  const data = join(root, "data")
  await run("initdb", ["-D", data, "--auth=trust", "--username=postgres", "-E", "UTF8", "--no-instructions"])
  const start = async () => {
    await run("pg_ctl", [
      "-D",
      data,
      "-l",
      join(root, "server.log"),
      "-w",
      "-t",
      "120",
      "-o",
      `-c listen_addresses=${options.ipv6 ? "127.0.0.1,::1" : "127.0.0.1"} -p ${port} -k ${root} -c fsync=off${extra}`,
      "start"
    ])
  }
  const stop = async () => {
    await run("pg_ctl", ["-D", data, "-m", "fast", "-w", "-t", "120", "stop"])
  }
  // a free port can be taken between the check and the server's bind (another test's server, a
  // client's ephemeral port): the first start tries another port
  for (let attempt = 1;; attempt++) {
    port = await freePort()
    try {
      await start()
      break
    } catch (error) {
      if (attempt >= 5 || !/already in use|could not create any TCP\/IP sockets/i.test(readLog(join(root, "server.log")))) {
        rmSync(root, { recursive: true, force: true })
        throw error
      }
    }
  }
  let stopped = false
  const postmasterPid = () => Number(readFileSync(join(data, "postmaster.pid"), "utf8").split("\n")[0])
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    socketDir: root,
    start,
    stop,
    pids: async () => {
      const postmaster = postmasterPid()
      return [postmaster, ...await childrenOf(postmaster)]
    },
    freeze: async () => {
      const postmaster = postmasterPid()
      process.kill(postmaster, "SIGSTOP")
      const frozen = new Set([postmaster])
      while (true) {
        const fresh = (await childrenOf(postmaster)).filter((pid) => !frozen.has(pid))
        if (fresh.length === 0) return Array.from(frozen)
        for (const pid of fresh) {
          frozen.add(pid)
          try {
            process.kill(pid, "SIGSTOP")
          } catch {
            // ended since it was listed
            frozen.delete(pid)
          }
        }
      }
    },
    destroy: async () => {
      if (stopped) return
      stopped = true
      await stop().catch(() => undefined)
      rmSync(root, { recursive: true, force: true })
    }
  }
}
