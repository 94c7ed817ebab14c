/**
 * A failover of the test's own: a private primary (pgserver.ts), a streaming replica of it made by
 * `pg_basebackup -R`, and a TCP proxy (what DNS, a VIP, HAProxy or a cloud endpoint is to the
 * application) that the store's URL points at, switched from one server to the other. Waits are for
 * events (the replica's `pg_is_in_recovery()`, its replay position), never fixed sleeps.
 */
import { execFile } from "node:child_process"
import { chownSync, mkdtempSync, rmSync } from "node:fs"
import * as Net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import { freePort, type Server } from "./pgserver.ts"

const exec = promisify(execFile)

const asRoot = () => process.getuid?.() === 0

const run = (bin: string, tool: string, args: Array<string>) =>
  asRoot() ? exec("runuser", ["-u", "postgres", "--", join(bin, tool), ...args]) : exec(join(bin, tool), args)

/** One statement's first column of its first row, through `psql` (unaligned, no header). */
export const psql = async (bin: string, port: number, statement: string): Promise<string> => {
  const { stdout } = await exec(join(bin, "psql"), ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-d", "postgres", "-XAtqc", statement])
  return stdout.trim()
}

export interface Replica {
  readonly port: number
  readonly url: string
  /** `pg_ctl promote -w`: returns once the server accepts writes. */
  readonly promote: () => Promise<void>
  /** Resolves once the replica has replayed everything the primary had written when called. */
  readonly caughtUp: () => Promise<void>
  readonly destroy: () => Promise<void>
}

/** A hot standby streaming from `primary` (started, in recovery, caught up at its start). */
export const startReplica = async (bin: string, primary: Server): Promise<Replica> => {
  const root = mkdtempSync(join(tmpdir(), "wp-pg-replica-"))
  if (asRoot()) {
    const { stdout: uid } = await exec("id", ["-u", "postgres"])
    const { stdout: gid } = await exec("id", ["-g", "postgres"])
    chownSync(root, Number(uid.trim()), Number(gid.trim()))
  }
  const data = join(root, "data")
  await run(bin, "pg_basebackup", ["-h", "127.0.0.1", "-p", String(primary.port), "-U", "postgres", "-D", data, "-R", "-X", "stream", "-c", "fast"])
  let port = 0
  for (let attempt = 1;; attempt++) {
    port = await freePort()
    try {
      await run(bin, "pg_ctl", ["-D", data, "-l", join(root, "server.log"), "-w", "-t", "120", "-o", `-c listen_addresses=127.0.0.1 -p ${port} -k ${root} -c fsync=off -c hot_standby=on`, "start"])
      break
    } catch (error) {
      if (attempt >= 5) {
        rmSync(root, { recursive: true, force: true })
        throw error
      }
    }
  }
  const caughtUp = async () => {
    const target = await psql(bin, primary.port, "SELECT pg_current_wal_lsn()")
    for (;;) {
      const done = await psql(bin, port, `SELECT pg_last_wal_replay_lsn() >= '${target}'::pg_lsn`)
      if (done === "t") return
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }
  let destroyed = false
  return {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    caughtUp,
    promote: async () => {
      await run(bin, "pg_ctl", ["-D", data, "-w", "-t", "120", "promote"])
      // -w waits for the end of recovery; a session's first write after it needs a transaction id
      while ((await psql(bin, port, "SELECT pg_is_in_recovery()")) !== "f") await new Promise((resolve) => setTimeout(resolve, 20))
    },
    destroy: async () => {
      if (destroyed) return
      destroyed = true
      await run(bin, "pg_ctl", ["-D", data, "-m", "immediate", "-w", "-t", "120", "stop"]).catch(() => undefined)
      rmSync(root, { recursive: true, force: true })
    }
  }
}

export interface Proxy {
  readonly port: number
  readonly url: string
  /**
   * Sends new connections to `port`. The open ones: `cut`, ended (HAProxy's `on-marked-down
   * shutdown-sessions`); `keep`, left on the old server (a DNS change: the sockets already open stay
   * where they are); `vanish`, the old server's host gone with them: the client's end stays open,
   * nothing comes back on it, and the first bytes it sends are answered by a reset (a VIP moved to
   * another host, which knows nothing of the connection): a session that sends nothing never learns;
   * `blackhole`, the same but what it sends is never answered either (a partition).
   */
  readonly switchTo: (port: number, old: "cut" | "keep" | "vanish" | "blackhole") => void
  /** Holds back what the servers send on the connections open now, until the returned function lets it go. */
  readonly hold: () => () => void
  /** Everything the clients have sent so far, as text (statements show in it). */
  readonly sent: () => string
  readonly close: () => Promise<void>
}

/** A TCP proxy on a free loopback port, to `port` for now. */
export const startProxy = async (port: number): Promise<Proxy> => {
  let target = port
  const pairs = new Set<[Net.Socket, Net.Socket]>()
  const silent = new Set<Net.Socket>()
  let sent = ""
  const server = Net.createServer((client) => {
    client.on("data", (chunk: Buffer) => void (sent += chunk.toString("latin1")))
    const upstream = Net.connect({ host: "127.0.0.1", port: target })
    const pair: [Net.Socket, Net.Socket] = [client, upstream]
    pairs.add(pair)
    const end = () => {
      pairs.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    client.on("error", end).on("close", end)
    upstream.on("error", end).on("close", end)
    client.pipe(upstream)
    upstream.pipe(client)
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const address = server.address() as Net.AddressInfo
  const cutAll = () => {
    for (const [client, upstream] of pairs) {
      client.destroy()
      upstream.destroy()
    }
    pairs.clear()
  }
  const vanishAll = (reset: boolean) => {
    for (const [client, upstream] of pairs) {
      client.unpipe(upstream)
      upstream.unpipe(client)
      client.removeAllListeners("close")
      client.removeAllListeners("error")
      upstream.removeAllListeners("close")
      upstream.removeAllListeners("error")
      upstream.on("error", () => undefined)
      upstream.destroy()
      silent.add(client)
      client.on("error", () => undefined)
      client.on("close", () => silent.delete(client))
      client.on("data", () => reset && client.resetAndDestroy())
    }
    pairs.clear()
  }
  return {
    port: address.port,
    url: `postgres://postgres@127.0.0.1:${address.port}/postgres`,
    switchTo: (port, old) => {
      target = port
      if (old === "cut") cutAll()
      else if (old !== "keep") vanishAll(old === "vanish")
    },
    hold: () => {
      const held = [...pairs]
      for (const [client, upstream] of held) {
        upstream.unpipe(client)
        upstream.pause()
      }
      return () => {
        for (const [client, upstream] of held) upstream.pipe(client)
      }
    },
    sent: () => sent,
    close: () =>
      new Promise<void>((resolve) => {
        cutAll()
        for (const client of silent) client.destroy()
        server.close(() => resolve())
      })
  }
}
