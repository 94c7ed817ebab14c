/**
 * The Host header check, a guard against DNS rebinding: a site the operator visits makes its own
 * name resolve to this server's address, after which its page is the same origin as the
 * dashboard's, may send any header, and would pass a check that trusts a header, or trusts
 * loopback. Its requests still carry its own name in `Host`, so only names this server is known by
 * are answered: an IP address, `localhost` (and `*.localhost`, which resolves to loopback only),
 * the `host` it listens on, and the names the user allows (`allowedHosts`).
 *
 * @internal
 */
import { isIP } from "node:net"

/** What a request's `Host` header names, lowercased, without its port or a trailing dot. */
const hostname = (header: string): string => {
  const value = header.trim().toLowerCase()
  if (value.startsWith("[")) {
    const end = value.indexOf("]")
    return end < 0 ? value : value.slice(1, end)
  }
  const colon = value.lastIndexOf(":")
  const name = colon < 0 ? value : value.slice(0, colon)
  return name.endsWith(".") ? name.slice(0, -1) : name
}

/** An entry of `allowedHosts`: a name, or (with a leading dot) a name and its subdomains. */
const matches = (name: string, entry: string): boolean =>
  entry.startsWith(".") ? name === entry.slice(1) || name.endsWith(entry) : name === entry

/**
 * Whether a request's `Host` header is one this server answers to. A request without one
 * (HTTP/1.0) passes: no browser sends that.
 */
export const hostCheck = (allowed: ReadonlyArray<string> | "any") => {
  if (allowed === "any") return (_header: string | undefined) => true
  const entries = allowed.map((entry) => entry.toLowerCase().replace(/\.$/, ""))
  return (header: string | undefined): boolean => {
    if (header === undefined) return true
    const name = hostname(header)
    return isIP(name) !== 0 || name === "localhost" || name.endsWith(".localhost") ||
      entries.some((entry) => matches(name, entry))
  }
}

/** An `allowedHosts` entry: a host name without port, scheme or spaces (a leading dot allowed). */
export const validEntry = (entry: unknown): entry is string =>
  typeof entry === "string" && /^\.?[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$/i.test(entry)
