/**
 * A private PgBouncer in front of a Postgres server, for the tests of the store behind a pooler: a
 * config and auth file in a temporary directory, a free loopback port, run in the foreground as a
 * child process (as the `postgres` user when the tests run as root: PgBouncer refuses root), killed
 * at the end. Clients log in with any password (`auth_type = trust`); PgBouncer logs in to the
 * server with the user and password of `serverUrl`.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process"
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { connect } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import { binaries, freePort } from "./pgserver.ts"

const exec = promisify(execFile)

/** The binary: WORKPOOL_PGBOUNCER_BIN, or Debian's /usr/sbin/pgbouncer; undefined when missing. */
export const pgbouncerBinary = (): string | undefined => {
  const bin = process.env.WORKPOOL_PGBOUNCER_BIN ?? "/usr/sbin/pgbouncer"
  return existsSync(bin) ? bin : undefined
}

const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect({ host: "127.0.0.1", port })
    socket.once("connect", () => {
      socket.destroy()
      resolve(true)
    })
    socket.once("error", () => resolve(false))
  })

export interface Bouncer {
  /** The URL clients use: the server's database, through the pooler. */
  readonly url: string
  readonly port: number
  /** Runs a command on the admin console (`RECONNECT`, `PAUSE`, `RESUME`, `KILL db`, `SHOW ...`). */
  readonly admin: (command: string) => Promise<string>
  /** SIGKILL, then (`restart`) a new process on the same port and config. */
  readonly kill9: () => Promise<void>
  readonly start: () => Promise<void>
  readonly log: () => string
  readonly destroy: () => Promise<void>
}

export interface BouncerOptions {
  readonly poolMode: "session" | "transaction" | "statement"
  /** Extra lines of the `[pgbouncer]` section. */
  readonly settings?: Record<string, string | number>
}

/** Starts PgBouncer in front of `serverUrl` (a `postgres://user:password@host:port/db` URL). */
export const startBouncer = async (serverUrl: string, options: BouncerOptions): Promise<Bouncer> => {
  const bin = pgbouncerBinary()
  if (bin === undefined) throw new Error("pgbouncer is not installed (apt-get install pgbouncer)")
  const server = new URL(serverUrl)
  const database = decodeURIComponent(server.pathname.slice(1)) || "postgres"
  const user = decodeURIComponent(server.username) || "postgres"
  const password = decodeURIComponent(server.password)
  const root = mkdtempSync(join(tmpdir(), "wp-bouncer-"))
  const asRoot = process.getuid?.() === 0
  const port = await freePort()
  const ini = join(root, "pgbouncer.ini")
  const logFile = join(root, "pgbouncer.log")
  const lines = [
    "[databases]",
    `${database} = host=${server.hostname} port=${server.port || 5432} dbname=${database} user=${user}${password === "" ? "" : ` password=${password}`}`,
    "[pgbouncer]",
    "listen_addr = 127.0.0.1",
    `listen_port = ${port}`,
    `unix_socket_dir = ${root}`,
    "auth_type = trust",
    `auth_file = ${join(root, "users.txt")}`,
    `admin_users = ${user}`,
    `pool_mode = ${options.poolMode}`,
    `logfile = ${logFile}`,
    `pidfile = ${join(root, "pgbouncer.pid")}`,
    "default_pool_size = 20",
    "max_client_conn = 200",
    ...Object.entries(options.settings ?? {}).map(([key, value]) => `${key} = ${value}`)
  ]
  writeFileSync(ini, lines.join("\n") + "\n")
  writeFileSync(join(root, "users.txt"), `"${user}" ""\n`)
  if (asRoot) {
    const uid = Number((await exec("id", ["-u", "postgres"])).stdout.trim())
    const gid = Number((await exec("id", ["-g", "postgres"])).stdout.trim())
    for (const file of [root, ini, join(root, "users.txt")]) chownSync(file, uid, gid)
  }
  let child: ChildProcess | undefined
  const start = async () => {
    const proc = asRoot ? spawn("runuser", ["-u", "postgres", "--", bin, ini], { stdio: "ignore" }) : spawn(bin, [ini], { stdio: "ignore" })
    child = proc
    const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()))
    let gone = false
    void exited.then(() => (gone = true))
    for (let i = 0; i < 400; i++) {
      if (gone) throw new Error(`pgbouncer exited at start:\n${log()}`)
      if (await accepts(port)) return
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
    throw new Error(`pgbouncer did not listen on ${port}:\n${log()}`)
  }
  const log = () => {
    try {
      return readFileSync(logFile, "utf8")
    } catch {
      return ""
    }
  }
  /** The pgbouncer process itself (under runuser, the child of the child). */
  const pid = () => Number(readFileSync(join(root, "pgbouncer.pid"), "utf8").trim())
  const stopChild = async (signal: NodeJS.Signals) => {
    const proc = child
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return
    const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()))
    try {
      process.kill(pid(), signal)
    } catch {
      proc.kill(signal)
    }
    await exited
    child = undefined
  }
  await start()
  // the admin console through psql, from the server's binaries (PgBouncer speaks the protocol, but
  // its console takes simple queries only)
  const psql = join(binaries() ?? "/usr/bin", "psql")
  return {
    url: `postgres://${encodeURIComponent(user)}@127.0.0.1:${port}/${encodeURIComponent(database)}`,
    port,
    admin: async (command) => (await exec(psql, ["-h", "127.0.0.1", "-p", String(port), "-U", user, "-d", "pgbouncer", "-At", "-c", command])).stdout,
    kill9: () => stopChild("SIGKILL"),
    start,
    log,
    destroy: async () => {
      await stopChild("SIGTERM")
      rmSync(root, { recursive: true, force: true })
    }
  }
}
