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
  id: string
  /** Endpoint name and URL it came through. */
  endpoint: { name: string; url: string }
  clientAddr: string
  /** ms since epoch. */
  start: number
  /** ms from the request head to the end of the response (undefined while in flight). */
  durationMs: number | undefined
  request: CapturedRequest
  response: CapturedResponse | undefined
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

function bodyBytes(e: Exchange): number {
  return e.request.body.bytes.length + (e.response?.body.bytes.length ?? 0)
}

/**
 * The inspector's ring buffer: newest exchanges first, bounded by count and by captured body bytes
 * (the oldest are dropped). Exchanges are added when their request head is seen and updated in place
 * as the response arrives.
 */
export class CaptureStore {
  readonly limits: CaptureLimits
  #entries: Exchange[] = []
  #bytes = 0
  #listeners = new Set<(e: Exchange) => void>()

  constructor(limits: Partial<CaptureLimits> = {}) {
    this.limits = { ...DEFAULT_LIMITS, ...limits }
  }

  /** Newest first. */
  list(): readonly Exchange[] {
    return this.#entries
  }

  get(id: string): Exchange | undefined {
    return this.#entries.find((e) => e.id === id)
  }

  clear(): void {
    this.#entries = []
    this.#bytes = 0
  }

  /** Called with every exchange added or completed. */
  subscribe(listener: (e: Exchange) => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  /** @internal a new exchange (request head seen). */
  add(init: Omit<Exchange, 'id'>): Exchange {
    const exchange: Exchange = { id: newId(), ...init }
    this.#entries.unshift(exchange)
    this.#bytes += bodyBytes(exchange)
    this.#trim()
    this.#emit(exchange)
    return exchange
  }

  /** @internal an exchange's bodies grew or it completed. */
  update(exchange: Exchange, addedBytes: number, done: boolean): void {
    if (!this.#entries.includes(exchange)) return
    this.#bytes += addedBytes
    this.#trim()
    if (done) this.#emit(exchange)
  }

  #trim(): void {
    while (this.#entries.length > this.limits.maxEntries || (this.#bytes > this.limits.maxBytes && this.#entries.length > 1)) {
      const old = this.#entries.pop()!
      this.#bytes -= bodyBytes(old)
    }
  }

  #emit(e: Exchange): void {
    for (const l of this.#listeners) l(e)
  }
}

/** Appends to a captured body, keeping at most `max` bytes. Returns the bytes kept. */
function appendBody(body: CapturedBody, chunk: Uint8Array, max: number): number {
  body.size += chunk.length
  const room = max - body.bytes.length
  if (room <= 0) {
    if (chunk.length) body.truncated = true
    return 0
  }
  const take = chunk.subarray(0, room)
  if (take.length < chunk.length) body.truncated = true
  const joined = new Uint8Array(body.bytes.length + take.length)
  joined.set(body.bytes)
  joined.set(take, body.bytes.length)
  body.bytes = joined
  return take.length
}

interface Head {
  first: string
  headers: [string, string][]
}

/** A lenient head parser: the inspector observes, it never decides what is valid. */
function parseHead(bytes: Uint8Array): Head {
  const text = new TextDecoder('latin1').decode(bytes)
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

/**
 * The client's address for one request: the edge pools its HTTP connections to the agent, so the
 * stream's ClientAddr is the edge's own; the edge appends the real client to X-Forwarded-For last.
 */
function clientOf(headers: [string, string][]): string | undefined {
  return header(headers, 'x-forwarded-for')?.split(',').at(-1)?.trim() || undefined
}

/** How a body is delimited, read from a head. */
type Framing = { kind: 'none' } | { kind: 'length'; left: number } | { kind: 'chunked'; decoder: ChunkedDecoder } | { kind: 'close' }

function framing(headers: [string, string][], fallback: 'none' | 'close'): Framing {
  if ((header(headers, 'transfer-encoding') ?? '').toLowerCase().includes('chunked')) return { kind: 'chunked', decoder: new ChunkedDecoder() }
  const length = Number(header(headers, 'content-length')?.split(',')[0]?.trim())
  if (Number.isInteger(length) && length > 0) return { kind: 'length', left: length }
  if (Number.isInteger(length) && length === 0) return { kind: 'none' }
  return { kind: fallback }
}

/** One direction of a connection: heads and bodies, one message after the other. */
class MessageReader {
  #buf: Uint8Array = new Uint8Array(0)
  #body: Framing | undefined
  broken = false
  /** After a 101 or CONNECT the bytes are not HTTP any more. */
  tunnel = false

  constructor(
    private readonly onHead: (head: Head) => Framing,
    private readonly onBody: (chunk: Uint8Array) => void,
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
    while (data.length && !this.tunnel && !this.broken) {
      const body = this.#body
      if (!body) {
        const joined = new Uint8Array(this.#buf.length + data.length)
        joined.set(this.#buf)
        joined.set(data, this.#buf.length)
        const end = findHeadEnd(joined, Math.max(0, this.#buf.length - 3))
        if (end === -1) {
          if (joined.length > 64 * 1024) this.broken = true
          else this.#buf = joined
          return
        }
        this.#buf = new Uint8Array(0)
        const framing = this.onHead(parseHead(joined.subarray(0, end)))
        data = joined.subarray(end)
        if (framing.kind === 'none') this.onEnd()
        else this.#body = framing
        continue
      }
      if (body.kind === 'none') {
        this.#finish()
        continue
      }
      if (body.kind === 'close') {
        this.onBody(data)
        return
      }
      if (body.kind === 'length') {
        const n = Math.min(body.left, data.length)
        this.onBody(data.subarray(0, n))
        body.left -= n
        data = data.subarray(n)
        if (body.left === 0) this.#finish()
        continue
      }
      const used = body.decoder.push(data, 0, (part) => this.onBody(part))
      data = data.subarray(used)
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

/**
 * Watches the bytes of one HTTP/1.1 connection passing through the agent (in both directions) and
 * records each request/response pair in the store, pairing them in order (pipelining included).
 * It only observes: bad or unknown bytes stop the capture, never the traffic.
 */
export class HttpTap {
  readonly #store: CaptureStore
  readonly #endpoint: { name: string; url: string }
  readonly #clientAddr: string
  readonly #pending: Exchange[] = []
  #requestInFlight: Exchange | undefined
  #responding: Exchange | undefined
  readonly #requests: MessageReader
  readonly #responses: MessageReader

  constructor(store: CaptureStore, endpoint: { name: string; url: string }, clientAddr: string) {
    this.#store = store
    this.#endpoint = endpoint
    this.#clientAddr = clientAddr
    const max = store.limits.maxBodyBytes
    this.#requests = new MessageReader(
      (head) => {
        const [method = '', uri = '', proto = ''] = head.first.split(' ')
        const exchange = store.add({
          endpoint: this.#endpoint,
          clientAddr: clientOf(head.headers) ?? this.#clientAddr,
          start: Date.now(),
          durationMs: undefined,
          request: { method, uri, proto, headers: head.headers, body: { bytes: new Uint8Array(0), size: 0, truncated: false } },
          response: undefined,
          error: undefined,
          replayOf: undefined,
        })
        this.#requestInFlight = exchange
        this.#pending.push(exchange)
        if (method.toUpperCase() === 'CONNECT') this.#requests.tunnel = true
        return framing(head.headers, 'none')
      },
      (chunk) => {
        const e = this.#requestInFlight
        if (e) store.update(e, appendBody(e.request.body, chunk, max), false)
      },
      () => (this.#requestInFlight = undefined),
    )
    this.#responses = new MessageReader(
      (head) => {
        const [proto = '', statusText = '', ...reason] = head.first.split(' ')
        const status = Number(statusText)
        const exchange = this.#pending[0]
        // Interim answers (100 Continue) are not the response.
        if (status >= 100 && status < 200 && status !== 101) return { kind: 'none' }
        this.#responding = exchange
        if (exchange) {
          this.#pending.shift()
          exchange.response = { status, statusText: reason.join(' '), proto, headers: head.headers, body: { bytes: new Uint8Array(0), size: 0, truncated: false } }
        }
        if (status === 101) {
          this.#done(exchange)
          this.#responses.tunnel = true
          this.#requests.tunnel = true
          return { kind: 'none' }
        }
        const method = exchange?.request.method.toUpperCase()
        if (method === 'HEAD' || status === 204 || status === 304) return { kind: 'none' }
        return framing(head.headers, 'close')
      },
      (chunk) => {
        const e = this.#responding
        if (e?.response) store.update(e, appendBody(e.response.body, chunk, max), false)
      },
      () => {
        if (this.#responding) this.#done(this.#responding)
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
    for (const e of open) {
      if (e.durationMs !== undefined) continue
      e.error = e.response ? 'the connection closed before the response ended' : 'the connection closed before a response'
      this.#done(e)
    }
    this.#pending.length = 0
  }

  #done(e: Exchange | undefined): void {
    if (!e || e.durationMs !== undefined) return
    e.durationMs = Date.now() - e.start
    this.#store.update(e, 0, true)
  }
}
