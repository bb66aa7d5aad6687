import { randomBytes } from 'node:crypto'
import { ChunkedDecoder, findHeadEnd } from '../proxy/h1/parse.ts'

/** One captured message body: the first bytes (up to the per-body cap) and the real size. */
export interface CapturedBody {
  bytes: Uint8Array
  size: number
  truncated: boolean
}

export interface CapturedRequest {
  method: string
  /** Request target as sent (path and query). */
  uri: string
  proto: string
  headers: [string, string][]
  body: CapturedBody
}

export interface CapturedResponse {
  status: number
  statusText: string
  proto: string
  headers: [string, string][]
  body: CapturedBody
}

/** One HTTP exchange as the inspector shows it. */
export interface Exchange {
  readonly id: string
  /** Endpoint name and URL it came through. */
  endpoint: { name: string; url: string }
  readonly clientAddr: string
  /** ms since epoch. */
  start: number
  /** ms from the request head to the end of the response (undefined while in flight). */
  durationMs: number | undefined
  readonly request: CapturedRequest
  readonly response: CapturedResponse | undefined
  /** Why no response was captured (connection closed, unparsable bytes). */
  error: string | undefined
  /** Set on replays: the exchange replayed. */
  replayOf: string | undefined
}

export interface CaptureLimits {
  /** Most exchanges kept. */
  maxEntries: number
  /** Most body bytes kept over all exchanges; the oldest go first. */
  maxBytes: number
  /** Most bytes kept of one body. */
  maxBodyBytes: number
}

export const DEFAULT_LIMITS: CaptureLimits = { maxEntries: 500, maxBytes: 32 * 1024 * 1024, maxBodyBytes: 256 * 1024 }

/** 128 random bits: a replay has to name its exchange, and time-based or counted ids could be guessed by whoever tries. */
function newId(): string {
  return `ex_${randomBytes(16).toString('hex')}`
}

/** An exchange's place in the store: its body bytes (for the byte bound), and whether it is still kept. */
interface Slot {
  exchange: Exchange
  bytes: number
  live: boolean
}

/**
 * The inspector's ring buffer: newest exchanges first, bounded by count and by captured body bytes
 * (the oldest are dropped). Exchanges are added when their request head is seen and updated in place
 * as the response arrives. Adding one is constant work: the ring is a fixed array, and a tapped
 * exchange keeps raw bytes that become a record only when something reads it.
 */
export class CaptureStore {
  readonly limits: CaptureLimits
  #ring: (Slot | undefined)[] = []
  /** Where the next slot goes. */
  #next = 0
  #count = 0
  #bytes = 0
  #listeners = new Set<(e: Exchange) => void>()

  constructor(limits: Partial<CaptureLimits> = {}) {
    this.limits = { ...DEFAULT_LIMITS, ...limits }
  }

  /** Newest first. */
  list(): Exchange[] {
    const out: Exchange[] = []
    const cap = this.limits.maxEntries
    for (let i = 1; i <= this.#count; i++) out.push(this.#ring[(this.#next - i + cap) % cap]!.exchange)
    return out
  }

  get(id: string): Exchange | undefined {
    return this.list().find((e) => e.id === id)
  }

  clear(): void {
    for (const slot of this.#ring) if (slot) slot.live = false
    this.#ring = []
    this.#next = 0
    this.#count = 0
    this.#bytes = 0
  }

  /** Called with every exchange added or completed. */
  subscribe(listener: (e: Exchange) => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  /** A finished exchange (a replay's). */
  add(init: Omit<Exchange, 'id'>): Exchange {
    const exchange: Exchange = { id: newId(), ...init }
    this.#insert(exchange, exchange.request.body.bytes.length + (exchange.response?.body.bytes.length ?? 0))
    return exchange
  }

  /** @internal a tapped exchange (request head seen). */
  open(exchange: Exchange): Slot {
    return this.#insert(exchange, 0)
  }

  /** @internal a tapped exchange kept `added` more body bytes. */
  grew(slot: Slot, added: number): void {
    if (!slot.live) return
    slot.bytes += added
    this.#bytes += added
    this.#trim()
  }

  /** @internal a tapped exchange completed. */
  finished(slot: Slot): void {
    if (slot.live) this.#emit(slot.exchange)
  }

  #insert(exchange: Exchange, bytes: number): Slot {
    const cap = this.limits.maxEntries
    if (this.#count === cap) this.#dropOldest()
    const slot: Slot = { exchange, bytes, live: true }
    this.#ring[this.#next] = slot
    this.#next = (this.#next + 1) % cap
    this.#count++
    this.#bytes += bytes
    this.#trim()
    this.#emit(exchange)
    return slot
  }

  #trim(): void {
    while (this.#bytes > this.limits.maxBytes && this.#count > 1) this.#dropOldest()
  }

  #dropOldest(): void {
    const cap = this.limits.maxEntries
    const at = (this.#next - this.#count + cap) % cap
    const old = this.#ring[at]!
    this.#ring[at] = undefined
    old.live = false
    this.#count--
    this.#bytes -= old.bytes
  }

  #emit(e: Exchange): void {
    if (this.#listeners.size === 0) return
    for (const l of this.#listeners) l(e)
  }
}

/**
 * A copy of buf[from, to). Captures are copied, not kept as views: a view of a read keeps the whole
 * read alive (up to 512 KiB for a socket's, a batch of frames for a tunnel's), and the ring holds
 * hundreds of exchanges. Up to a few hundred bytes (a head, a small body) a loop is cheapest: the
 * `subarray` that `set` needs costs ~0.5 µs on the agent's Buffers under load (its profile), the loop
 * ~0.1 µs for 150 bytes.
 */
function copyOf(buf: Uint8Array, from: number, to: number): Uint8Array {
  const n = to - from
  const out = new Uint8Array(n)
  if (n > 512) out.set(buf.subarray(from, to))
  else for (let i = 0; i < n; i++) out[i] = buf[from + i]!
  return out
}

/** The raw bytes of one message: its head and the first `max` bytes of its body, joined when read. */
class RawMessage {
  readonly head: Uint8Array
  #parts: Uint8Array[] = []
  #kept = 0
  size = 0
  truncated = false
  #body: CapturedBody | undefined

  constructor(buf: Uint8Array, from: number, to: number) {
    this.head = copyOf(buf, from, to)
  }

  /** Whether the first line starts with `word` (upper-case letters) in any case, then a space. */
  startsWith(word: string): boolean {
    const head = this.head
    for (let i = 0; i < word.length; i++) if ((head[i]! & 0xdf) !== word.charCodeAt(i)) return false
    return head[word.length] === 32
  }

  /** Takes buf[from, to) of the body; returns the bytes kept. */
  append(buf: Uint8Array, from: number, to: number, max: number): number {
    const n = to - from
    this.size += n
    const room = max - this.#kept
    if (room < n) this.truncated = true
    if (room <= 0 || n === 0) return 0
    const take = Math.min(room, n)
    this.#parts.push(copyOf(buf, from, from + take))
    this.#kept += take
    return take
  }

  body(): CapturedBody {
    if (this.#body && this.#body.size === this.size) return this.#body
    let bytes = this.#parts[0] ?? new Uint8Array(0)
    if (this.#parts.length > 1) {
      bytes = new Uint8Array(this.#kept)
      let at = 0
      for (const part of this.#parts) {
        bytes.set(part, at)
        at += part.length
      }
      // One joined part from now on; later chunks are added to it.
      this.#parts = [bytes]
    }
    return (this.#body = { bytes, size: this.size, truncated: this.truncated })
  }
}

interface Head {
  first: string
  headers: [string, string][]
}

/** A lenient head parser: the inspector observes, it never decides what is valid. */
function parseHead(bytes: Uint8Array): Head {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1')
  const lines = text.split(/\r?\n/)
  const headers: [string, string][] = []
  for (const line of lines.slice(1)) {
    if (line === '') continue
    const colon = line.indexOf(':')
    if (colon <= 0) continue
    headers.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()])
  }
  return { first: lines[0] ?? '', headers }
}

function header(headers: [string, string][], name: string): string | undefined {
  const found = headers.filter(([k]) => k.toLowerCase() === name)
  return found.length ? found.map(([, v]) => v).join(', ') : undefined
}

/** A request record from its raw message; made when the inspector or a listener first reads it. */
function requestOf(raw: RawMessage): CapturedRequest {
  const head = parseHead(raw.head)
  const [method = '', uri = '', proto = ''] = head.first.split(' ')
  return {
    method,
    uri,
    proto,
    headers: head.headers,
    get body() {
      return raw.body()
    },
  }
}

function responseOf(raw: RawMessage): CapturedResponse {
  const head = parseHead(raw.head)
  const [proto = '', statusText = '', ...reason] = head.first.split(' ')
  return {
    status: Number(statusText),
    statusText: reason.join(' '),
    proto,
    headers: head.headers,
    get body() {
      return raw.body()
    },
  }
}

/**
 * One exchange seen by a tap, kept as raw messages: its id, headers and bodies are made on first
 * read (by the inspector's API or a listener), so capturing costs no parsing while nobody looks.
 */
class TappedExchange implements Exchange {
  readonly endpoint: { name: string; url: string }
  readonly start = Date.now()
  durationMs: number | undefined = undefined
  error: string | undefined = undefined
  readonly replayOf = undefined
  readonly requestRaw: RawMessage
  responseRaw: RawMessage | undefined
  #id: string | undefined
  #streamAddr: string
  #request: CapturedRequest | undefined
  #response: CapturedResponse | undefined

  constructor(endpoint: { name: string; url: string }, streamAddr: string, request: RawMessage) {
    this.endpoint = endpoint
    this.#streamAddr = streamAddr
    this.requestRaw = request
  }

  get id(): string {
    return (this.#id ??= newId())
  }

  get request(): CapturedRequest {
    return (this.#request ??= requestOf(this.requestRaw))
  }

  get response(): CapturedResponse | undefined {
    return this.responseRaw && (this.#response ??= responseOf(this.responseRaw))
  }

  /**
   * The client's address for one request: the edge pools its HTTP connections to the agent, so the
   * stream's ClientAddr is the edge's own; the edge appends the real client to X-Forwarded-For last.
   */
  get clientAddr(): string {
    return header(this.request.headers, 'x-forwarded-for')?.split(',').at(-1)?.trim() || this.#streamAddr
  }
}

/** How a body is delimited, read from a head. */
type Framing = { kind: 'none' } | { kind: 'length'; left: number } | { kind: 'chunked'; decoder: ChunkedDecoder } | { kind: 'close' }

const NONE: Framing = { kind: 'none' }
const CONTENT_LENGTH = 'content-length'
const TRANSFER_ENCODING = 'transfer-encoding'

/** Whether head[at, end) is `name` in any case (`name`: lower-case ASCII letters and '-'). */
function nameIs(head: Uint8Array, at: number, end: number, name: string): boolean {
  if (end - at !== name.length) return false
  for (let i = 0; i < name.length; i++) if ((head[at + i]! | 0x20) !== name.charCodeAt(i)) return false
  return true
}

/** Trimmed latin1 text of head[from, to). */
function text(head: Uint8Array, from: number, to: number): string {
  while (from < to && (head[from] === 32 || head[from] === 9)) from++
  while (to > from && (head[to - 1] === 32 || head[to - 1] === 9 || head[to - 1] === 13)) to--
  // Values read here are a few characters; a loop avoids touching the read's ArrayBuffer (`.buffer` on a fresh Buffer costs ~140 ns).
  let out = ''
  for (let i = from; i < to; i++) out += String.fromCharCode(head[i]!)
  return out
}

/**
 * The body's framing, read straight from the head's bytes buf[from, to) (only Content-Length and
 * Transfer-Encoding lines become text), as leniently as parseHead reads a head: names trimmed and in
 * any case, several lines joined, chunked wins over a length, the first of several lengths counts.
 */
function framing(buf: Uint8Array, from: number, to: number, fallback: 'none' | 'close'): Framing {
  let length: string | undefined
  let te = ''
  let line = buf.indexOf(10, from) + 1
  while (line > 0 && line < to) {
    const lf = buf.indexOf(10, line)
    const end = lf === -1 || lf > to ? to : lf
    const colon = buf.indexOf(58, line)
    if (colon > line && colon < end) {
      let a = line
      let b = colon
      while (a < b && (buf[a] === 32 || buf[a] === 9)) a++
      while (b > a && (buf[b - 1] === 32 || buf[b - 1] === 9)) b--
      if (nameIs(buf, a, b, CONTENT_LENGTH)) length ??= text(buf, colon + 1, end)
      else if (nameIs(buf, a, b, TRANSFER_ENCODING)) te += text(buf, colon + 1, end).toLowerCase()
    }
    line = end + 1
  }
  if (te.includes('chunked')) return { kind: 'chunked', decoder: new ChunkedDecoder() }
  const n = Number(length?.split(',')[0]?.trim())
  if (Number.isInteger(n) && n > 0) return { kind: 'length', left: n }
  if (Number.isInteger(n) && n === 0) return NONE
  return fallback === 'none' ? NONE : { kind: 'close' }
}

/** The status code of the response head starting at buf[from] ("HTTP/1.1 204 …"), or NaN. */
function statusOf(buf: Uint8Array, from: number, to: number): number {
  const sp = buf.indexOf(32, from)
  if (sp === -1 || sp >= to) return NaN
  let status = 0
  let digits = 0
  for (let i = sp + 1; i < to && buf[i] !== 32 && buf[i] !== 13 && buf[i] !== 10; i++, digits++) {
    const d = buf[i]! - 48
    if (d < 0 || d > 9 || digits === 3) return NaN
    status = status * 10 + d
  }
  return digits ? status : NaN
}

/**
 * One direction of a connection: heads and bodies, one message after the other. It walks each read
 * by offset and hands out (buffer, from, to) ranges, so a read makes no views of its own; only a head
 * split over reads is gathered into one array.
 */
class MessageReader {
  #partial: Uint8Array | undefined
  #body: Framing | undefined
  broken = false
  /** After a 101 or CONNECT the bytes are not HTTP any more. */
  tunnel = false

  constructor(
    private readonly onHead: (buf: Uint8Array, from: number, to: number) => Framing,
    private readonly onBody: (buf: Uint8Array, from: number, to: number) => void,
    private readonly onEnd: () => void,
  ) {}

  push(chunk: Uint8Array): void {
    if (this.broken || this.tunnel) return
    try {
      this.#push(chunk)
    } catch {
      this.broken = true
    }
  }

  #push(chunk: Uint8Array): void {
    let data = chunk
    let at = 0
    while (at < data.length && !this.tunnel && !this.broken) {
      const body = this.#body
      if (!body) {
        const prior = this.#partial
        if (prior) {
          const joined = new Uint8Array(prior.length + data.length - at)
          joined.set(prior)
          joined.set(data.subarray(at), prior.length)
          data = joined
          at = 0
        }
        const end = findHeadEnd(data, prior ? Math.max(0, prior.length - 3) : at)
        if (end === -1) {
          if (data.length - at > 64 * 1024) this.broken = true
          else this.#partial = prior ? data : Uint8Array.prototype.slice.call(data, at)
          return
        }
        this.#partial = undefined
        const framing = this.onHead(data, at, end)
        at = end
        if (framing.kind === 'none') this.onEnd()
        else this.#body = framing
        continue
      }
      if (body.kind === 'none') {
        this.#finish()
        continue
      }
      if (body.kind === 'close') {
        this.onBody(data, at, data.length)
        return
      }
      if (body.kind === 'length') {
        const n = Math.min(body.left, data.length - at)
        this.onBody(data, at, at + n)
        body.left -= n
        at += n
        if (body.left === 0) this.#finish()
        continue
      }
      at = body.decoder.push(data, at, (part) => this.onBody(part, 0, part.length))
      if (body.decoder.done) this.#finish()
    }
  }

  #finish(): void {
    this.#body = undefined
    this.onEnd()
  }

  /** The connection closed: a body delimited by the close is complete. */
  close(): void {
    if (this.#body?.kind === 'close') this.#finish()
  }
}

/** A tapped exchange and its place in the store. */
interface Open {
  exchange: TappedExchange
  slot: Slot
}

/**
 * Watches the bytes of one HTTP/1.1 connection passing through the agent (in both directions) and
 * records each request/response pair in the store, pairing them in order (pipelining included).
 * It only observes: bad or unknown bytes stop the capture, never the traffic. Per message it finds
 * the head's end and the body's framing and copies the head and the body bytes within the cap; ids,
 * headers and joined bodies wait until the exchange is read.
 */
export class HttpTap {
  readonly #store: CaptureStore
  readonly #endpoint: { name: string; url: string }
  readonly #clientAddr: string
  readonly #pending: Open[] = []
  #requestInFlight: Open | undefined
  #responding: Open | undefined
  readonly #requests: MessageReader
  readonly #responses: MessageReader

  constructor(store: CaptureStore, endpoint: { name: string; url: string }, clientAddr: string) {
    this.#store = store
    this.#endpoint = endpoint
    this.#clientAddr = clientAddr
    const max = store.limits.maxBodyBytes
    this.#requests = new MessageReader(
      (buf, from, to) => {
        const raw = new RawMessage(buf, from, to)
        const exchange = new TappedExchange(this.#endpoint, this.#clientAddr, raw)
        const open: Open = { exchange, slot: store.open(exchange) }
        this.#requestInFlight = open
        this.#pending.push(open)
        if (raw.startsWith('CONNECT')) this.#requests.tunnel = true
        return framing(buf, from, to, 'none')
      },
      (buf, from, to) => {
        const open = this.#requestInFlight
        if (open?.slot.live) store.grew(open.slot, open.exchange.requestRaw.append(buf, from, to, max))
      },
      () => (this.#requestInFlight = undefined),
    )
    this.#responses = new MessageReader(
      (buf, from, to) => {
        const status = statusOf(buf, from, to)
        // Interim answers (100 Continue) are not the response.
        if (status >= 100 && status < 200 && status !== 101) return NONE
        const open = this.#pending.shift()
        this.#responding = open
        if (open) open.exchange.responseRaw = new RawMessage(buf, from, to)
        if (status === 101) {
          this.#done(open)
          this.#responses.tunnel = true
          this.#requests.tunnel = true
          return NONE
        }
        if (open?.exchange.requestRaw.startsWith('HEAD') || status === 204 || status === 304) return NONE
        return framing(buf, from, to, 'close')
      },
      (buf, from, to) => {
        const open = this.#responding
        if (open?.slot.live && open.exchange.responseRaw) store.grew(open.slot, open.exchange.responseRaw.append(buf, from, to, max))
      },
      () => {
        this.#done(this.#responding)
        this.#responding = undefined
      },
    )
  }

  /** Bytes from the public client (toward the upstream). */
  client(chunk: Uint8Array): void {
    this.#requests.push(chunk)
  }

  /** Bytes from the upstream (toward the client). */
  upstream(chunk: Uint8Array): void {
    this.#responses.push(chunk)
  }

  /** The connection ended. */
  close(): void {
    this.#responses.close()
    const open = this.#responding ? [this.#responding, ...this.#pending] : [...this.#pending]
    for (const o of open) {
      if (o.exchange.durationMs !== undefined) continue
      o.exchange.error = o.exchange.responseRaw ? 'the connection closed before the response ended' : 'the connection closed before a response'
      this.#done(o)
    }
    this.#pending.length = 0
  }

  #done(open: Open | undefined): void {
    if (!open || open.exchange.durationMs !== undefined) return
    open.exchange.durationMs = Date.now() - open.exchange.start
    this.#store.finished(open.slot)
  }
}
