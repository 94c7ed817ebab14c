/**
 * Headless Chromium driven through the DevTools protocol, with Node's own `WebSocket`: enough to
 * open a page, wait for a condition in it, click, and take a screenshot. Debian's `chromium` is the
 * browser (`.ci/run` installs it); no browser download, no driver package.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

export const CHROMIUM = "/usr/bin/chromium"

// as root, without a sandbox; the background-networking flags keep it off this machine's closed network
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--remote-debugging-port=0"
]

interface Pending {
  readonly resolve: (result: any) => void
  readonly reject: (error: Error) => void
  readonly method: string
}

export interface Page {
  /** Evaluates an expression in the page (a Promise is awaited) and returns its JSON value. */
  readonly evaluate: <A = unknown>(expression: string) => Promise<A>
  /**
   * Waits until `predicate` (the source of a function of no arguments, run in the page) returns a
   * truthy value, and returns it; fails after `timeout` ms with `what` and the page's text.
   */
  readonly waitFor: <A = unknown>(what: string, predicate: string, timeout?: number) => Promise<A>
  readonly screenshot: () => Promise<Buffer>
}

export interface Browser {
  readonly open: (url: string, size?: { readonly width: number; readonly height: number }) => Promise<Page>
  readonly close: () => Promise<void>
}

export const launch = async (): Promise<Browser> => {
  const profile = mkdtempSync(join(tmpdir(), "workpool-chromium-"))
  const child: ChildProcess = spawn(CHROMIUM, [...FLAGS, `--user-data-dir=${profile}`, "about:blank"], {
    stdio: ["ignore", "ignore", "pipe"]
  })
  let log = ""
  const endpoint = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`chromium did not start within 60 s:\n${log}`)), 60_000)
    child.on("error", (error) => {
      clearTimeout(timer)
      reject(new Error(`cannot start ${CHROMIUM}: ${error.message}`))
    })
    child.on("exit", (code) => {
      clearTimeout(timer)
      reject(new Error(`chromium exited (${code}) before it listened:\n${log}`))
    })
    child.stderr!.on("data", (chunk: Buffer) => {
      log += chunk.toString()
      const found = /DevTools listening on (ws:\/\/\S+)/.exec(log)
      if (found !== null) {
        clearTimeout(timer)
        resolve(found[1]!)
      }
    })
  })
  const socket = new WebSocket(endpoint)
  await new Promise<void>((resolve, reject) => {
    socket.addEventListener("open", () => resolve(), { once: true })
    socket.addEventListener("error", () => reject(new Error(`cannot connect to ${endpoint}`)), { once: true })
  })
  let nextId = 0
  const pending = new Map<number, Pending>()
  // events awaited (`once`), by session and method
  const awaited = new Map<string, () => void>()
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(String(event.data)) as {
      id?: number
      result?: unknown
      error?: { message: string }
      method?: string
      sessionId?: string
    }
    if (message.id === undefined) {
      const key = `${message.sessionId}/${message.method}`
      const resolve = awaited.get(key)
      awaited.delete(key)
      resolve?.()
      return
    }
    const waiting = pending.get(message.id)
    if (waiting === undefined) return
    pending.delete(message.id)
    if (message.error !== undefined) waiting.reject(new Error(`${waiting.method}: ${message.error.message}`))
    else waiting.resolve(message.result)
  })
  socket.addEventListener("close", () => {
    for (const waiting of pending.values()) waiting.reject(new Error(`${waiting.method}: the browser closed`))
    pending.clear()
  })
  // the next event `method` of the session; fails after `timeout` ms naming `what`
  const once = (sessionId: string, method: string, what: string, timeout = 60_000): Promise<void> =>
    new Promise((resolve, reject) => {
      const key = `${sessionId}/${method}`
      const timer = setTimeout(() => {
        awaited.delete(key)
        reject(new Error(`timed out waiting ${timeout} ms for ${what}`))
      }, timeout)
      awaited.set(key, () => {
        clearTimeout(timer)
        resolve()
      })
    })
  const send = (method: string, params: object = {}, sessionId?: string): Promise<any> =>
    new Promise((resolve, reject) => {
      const id = ++nextId
      pending.set(id, { resolve, reject, method })
      socket.send(JSON.stringify({ id, method, params, ...(sessionId === undefined ? {} : { sessionId }) }))
    })

  const open = async (url: string, size = { width: 1280, height: 900 }): Promise<Page> => {
    const { targetId } = await send("Target.createTarget", { url: "about:blank" })
    const { sessionId } = await send("Target.attachToTarget", { targetId, flatten: true })
    await send("Emulation.setDeviceMetricsOverride", { ...size, deviceScaleFactor: 1, mobile: false }, sessionId)
    await send("Page.enable", {}, sessionId)
    // the page's load awaited: a waitFor evaluated while the tab was still about:blank could be lost
    // with the document it ran in (a hang seen once); the event listened for before the navigation
    const loaded = once(sessionId, "Page.loadEventFired", `${url} to load`)
    const navigated = await send("Page.navigate", { url }, sessionId)
    if (navigated.errorText !== undefined) throw new Error(`cannot open ${url}: ${navigated.errorText}`)
    await loaded
    const evaluate = async <A>(expression: string): Promise<A> => {
      const reply = await send("Runtime.evaluate", { expression, awaitPromise: true, returnByValue: true }, sessionId)
      if (reply.exceptionDetails !== undefined) {
        const details = reply.exceptionDetails
        throw new Error(details.exception?.description ?? details.text ?? "an exception in the page")
      }
      return reply.result.value as A
    }
    const waitFor = <A>(what: string, predicate: string, timeout = 30_000) =>
      evaluate<A>(`new Promise((resolve, reject) => {
        const started = Date.now()
        const poll = () => {
          let value
          try { value = (${predicate})() } catch (e) { value = undefined }
          if (value) return resolve(value)
          if (Date.now() - started > ${timeout}) {
            return reject(new Error(${JSON.stringify(`timed out waiting until ${what}`)} + "; the page says:\\n" + (document.body ? document.body.innerText.slice(0, 3000) : "(no body)")))
          }
          setTimeout(poll, 25)
        }
        poll()
      })`)
    const screenshot = async () => Buffer.from((await send("Page.captureScreenshot", { format: "png" }, sessionId)).data, "base64")
    return { evaluate, waitFor, screenshot }
  }

  const close = async () => {
    socket.close()
    if (child.exitCode === null) {
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
      child.kill("SIGKILL")
      await exited
    }
    // the browser's helper processes (renderer, crash handler) outlive it for a moment and may still
    // write in the profile: removing it then failed with ENOTEMPTY (seen once under load). Node tries
    // again, 50 ms longer each time
    rmSync(profile, { recursive: true, force: true, maxRetries: 20, retryDelay: 50 })
  }
  return { open, close }
}
