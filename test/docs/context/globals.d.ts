// The reader's own code that the docs' snippets call without showing it: a snippet is about the
// pool, not about resizing images or fetching users. Everything else a snippet uses (effect,
// effect-workpool, its pools, its own error classes) it imports or defines itself.
//
// Keep these few and plain; a new snippet that needs another name adds it here.

type Fx<A, E = never> = import("effect").Effect.Effect<A, E>

interface Image { readonly width: number; readonly height: number; readonly pixels: Uint8Array }
interface Thumb { readonly width: number; readonly height: number; readonly jpeg: Uint8Array }
interface ResizeError { readonly _tag: "ResizeError"; readonly reason: string }
declare const image: Image
declare const images: ReadonlyArray<Image>
declare const resize: (image: Image) => Fx<Thumb, ResizeError>
declare const dir: string
declare const cleanup: (dir: string) => Fx<void>

interface User { readonly id: string; readonly name: string }
interface UserNotFound { readonly _tag: "UserNotFound"; readonly id: string }
declare const id: string
declare const anonymous: User
declare const fetchUser: (id: string) => Fx<User, UserNotFound>
interface DownloadError { readonly _tag: "DownloadError"; readonly url: string }
declare const urls: ReadonlyArray<string>
declare const download: (url: string) => Fx<Uint8Array, DownloadError>

declare const list: ReadonlyArray<string>
declare const sendNewsletter: (list: ReadonlyArray<string>) => Fx<void>
declare const respond: (status: number, body: unknown) => Fx<void>

interface Connection { readonly query: (sql: string) => Fx<ReadonlyArray<unknown>>; readonly close: Fx<void> }
declare const openConnection: Fx<Connection>

declare const hashRounds: (input: string, rounds: number) => string
declare const readPhoto: (name: string) => Fx<ArrayBuffer>
