/**
 * A private Postgres server for the tests that stop and start it (others share WORKPOOL_PG_URL's
 * server, which must stay up): initdb in a temporary directory, on a free loopback port, `fsync=off`.
 * Run as the `postgres` user when the tests run as root (initdb refuses root).
 */
import { execFile } from "node:child_process"
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
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

const freePort = () =>
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
  readonly stop: () => Promise<void>
  readonly start: () => Promise<void>
  readonly destroy: () => Promise<void>
  /** The server's processes (the postmaster and its children), to freeze (SIGSTOP) and thaw. */
  readonly pids: () => Promise<Array<number>>
}

const readLog = (file: string) => {
  try {
    return readFileSync(file, "utf8")
  } catch {
    return ""
  }
}

export const startServer = async (bin: string): Promise<Server> => {
  const root = mkdtempSync(join(tmpdir(), "wp-pg-"))
  const asRoot = process.getuid?.() === 0
  if (asRoot) {
    const { stdout } = await exec("id", ["-u", "postgres"])
    const { stdout: gid } = await exec("id", ["-g", "postgres"])
    chownSync(root, Number(stdout.trim()), Number(gid.trim()))
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
      `-c listen_addresses=127.0.0.1 -p ${port} -k ${root} -c fsync=off`,
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
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    start,
    stop,
    pids: async () => {
      const postmaster = Number(readFileSync(join(data, "postmaster.pid"), "utf8").split("\n")[0])
      const { stdout } = await exec("ps", ["-o", "pid=", "--ppid", String(postmaster)])
      return [postmaster, ...stdout.split("\n").map((line) => Number(line.trim())).filter((pid) => pid > 0)]
    },
    destroy: async () => {
      if (stopped) return
      stopped = true
      await stop().catch(() => undefined)
      rmSync(root, { recursive: true, force: true })
    }
  }
}
