import { CODES, WarrenError } from '../../lib/errors.ts'
import { linesOf } from '../../lib/header-lines.ts'
import { readyResponse } from '../../lib/ready-body.ts'
import {
  ChunkedDecoder,
  Framing,
  framingOf,
  H1ParseError,
  HeadCollector,
  parseResponseHead,
  type ResponseHead,
} from './parse.ts'
import type { ConnectionSink, H1CloseReason, H1Connection, H1Origin, H1Pool } from './pool.ts'

export interface H1RequestInit {
  origin: H1Origin
  method: string
  /** Path and query, already percent-encoded (`/a/b?c=d`). */
  target: string
  /** Sent as given, Host included; hop-by-hop headers must already be gone. */
  headers: Headers
  body: ReadableStream<Uint8Array> | null
  /**
   * Milliseconds the upstream may stay silent before its response head (and a small body) is in:
   * counted from the call, and again from the last request-body chunk sent, so a long upload is
   * not cut short while it moves.
   */
  timeoutMs: number
}

/**
 * Bodies up to this size are read whole and handed over as bytes; larger ones as a stream, even
 * when they arrived complete. Measured on Bun 1.4.5: Bun.serve sends a byte body above ~16 KiB at
 * about twice the CPU cost of the same bytes as a one-chunk stream (46 vs 25 µs at 16 KiB, 66 vs
 * 38 µs at 64 KiB), while below ~12 KiB bytes are the cheaper of the two.
 */
const INLINE_BODY_LIMIT = 12 * 1024
/** Bytes the response stream holds for a slow reader before the upstream socket is paused. */
const STREAM_HIGH_WATER = 128 * 1024
/** Methods a retry cannot turn into a second side effect (RFC 9110 §9.2.2). */
export const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE'])

/**
 * Whether a request that may have reached the upstream can be sent again on a fresh connection:
 * idempotent methods (RFC 9110 §9.2.2), and requests whose client made them so with an
 * `Idempotency-Key` (or `X-Idempotency-Key`) header.
 */
export function safeToRetry(method: string, hasHeader: (lowerName: string) => boolean): boolean {
  return IDEMPOTENT_METHODS.has(method) || hasHeader('idempotency-key') || hasHeader('x-idempotency-key')
}
const LAST_CHUNK = new TextEncoder().encode('0\r\n\r\n')
const CRLF = new TextEncoder().encode('\r\n')
const DIGITS = /^\d{1,15}$/

const HEAD = 0
const BODY = 1
const DONE = 2

/**
 * The upstream refused or dropped the connection before a byte of its answer arrived. It says how
 * far the request got, so a caller can tell whether sending it again elsewhere is safe.
 */
export class UpstreamRefused extends WarrenError {
  /** Some of the request was handed to the transport before it failed (it may have reached the upstream). */
  readonly requestSent: boolean
  /** What the transport said about its end, when it could tell (agent tunnels). */
  readonly closeReason: H1CloseReason | undefined

  constructor(cause: unknown, stage: { requestSent: boolean; closeReason?: H1CloseReason | undefined }) {
    super(CODES.UPSTREAM_REFUSED, 'The upstream refused or dropped the connection.', { status: 502, cause })
    this.name = 'UpstreamRefused'
    this.requestSent = stage.requestSent
    this.closeReason = stage.closeReason
  }
}

function refused(cause: unknown, stage: { requestSent: boolean; closeReason?: H1CloseReason | undefined } = { requestSent: false }): UpstreamRefused {
  return new UpstreamRefused(cause, stage)
}

/** `detail` stays in `cause` (for logs and tests); clients get the generic message. */
export function invalidResponse(detail: string, cause?: unknown): WarrenError {
  const message = 'The upstream returned an invalid or incomplete HTTP response.'
  return new WarrenError(CODES.UPSTREAM_INVALID_RESPONSE, message, {
    status: 502,
    cause: cause instanceof H1ParseError ? cause : new H1ParseError(detail),
  })
}

/** The upstream did not send its response head in time (504). */
export function upstreamTimedOut(): WarrenError {
  return new WarrenError(CODES.UPSTREAM_TIMEOUT, 'The upstream did not answer in time.', { status: 504 })
}

/**
 * Serializes the request head. `bodyLength` is the Content-Length to send, -1 for chunked, or -2
 * for no body (then `Content-Length: 0` is sent only where the client had one or the method
 * usually carries a body).
 */
export function serializeHead(init: H1RequestInit, bodyLength: number): Uint8Array {
  let head = `${init.method} ${init.target} HTTP/1.1\r\n`
  let hasHost = false
  let hadLength = false
  for (const [name, value] of init.headers) {
    if (name === 'content-length') {
      hadLength = true
      continue
    }
    if (name === 'transfer-encoding') continue
    if (name === 'host') hasHost = true
    const lines = linesOf(init.headers, name, value)
    if (lines) for (const line of lines) head += `${name}: ${line}\r\n`
    else head += `${name}: ${value}\r\n`
  }
  if (!hasHost) head += `host: ${init.origin.key}\r\n`
  if (bodyLength >= 0) head += `content-length: ${bodyLength}\r\n`
  else if (bodyLength === -1) head += 'transfer-encoding: chunked\r\n'
  else if (hadLength || init.method === 'POST' || init.method === 'PUT' || init.method === 'PATCH')
    head += 'content-length: 0\r\n'
  head += '\r\n'
  // Header values are ByteStrings: latin1 gives back the bytes the client sent.
  return Buffer.from(head, 'latin1')
}

/** Chunk-size line for `n` bytes; the data and its CRLF are written as they are, not copied. */
function chunkPrefix(n: number): Uint8Array {
  const line = `${n.toString(16)}\r\n`
  const out = new Uint8Array(line.length)
  for (let i = 0; i < line.length; i++) out[i] = line.charCodeAt(i)
  return out
}

function concat(parts: Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1) return parts[0]!
  const out = new Uint8Array(total)
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

function noop(): void {}

/** The part of a stream reader the body pump uses. */
interface BodyReader {
  read(): Promise<{ done: boolean; value?: Uint8Array | undefined }>
  cancel(reason?: unknown): Promise<void>
}

/**
 * One request/response on one connection (or two, after a stale keep-alive retry). It is the
 * connection's sink: socket events drive the response parser, and a separate loop streams the
 * request body with backpressure. The connection goes back to the pool only when both directions
 * ended cleanly; any doubt (early response, extra bytes, cancelled body, error) closes it.
 */
class Exchange implements ConnectionSink {
  readonly #pool: H1Pool
  readonly #init: H1RequestInit
  readonly #resolve: (res: Response) => void
  readonly #reject: (err: unknown) => void
  #timer: ReturnType<typeof setTimeout>
  /** When the request body last moved; an upload in progress is not a silent upstream. */
  #progressAt = 0
  #conn: H1Connection | null = null
  /** `written` of the connection when this exchange took it: more means the request went out. */
  #writtenAtStart = 0
  /** The request went out on a connection before a stale-connection retry, and why that one closed. */
  #sentBefore = false
  #lostBefore: H1CloseReason | undefined
  #settled = false
  #retried = false
  #phase = HEAD
  #gotBytes = false
  readonly #head = new HeadCollector()
  #res: ResponseHead | null = null
  #framing: Framing = Framing.None
  #remaining = 0
  #decoder: ChunkedDecoder | null = null
  /** Small Content-Length body being collected before the response is handed over. */
  #buffer: Uint8Array | null = null
  #buffered = 0
  #controller: ReadableStreamDefaultController<Uint8Array> | null = null
  #reader: BodyReader | null = null
  #reqDone = false
  #resDone = false
  #reusable = true
  readonly #deliver = (chunk: Uint8Array): void => this.#onBodyChunk(chunk)

  constructor(
    pool: H1Pool,
    init: H1RequestInit,
    resolve: (res: Response) => void,
    reject: (err: unknown) => void,
  ) {
    this.#pool = pool
    this.#init = init
    this.#resolve = resolve
    this.#reject = reject
    this.#timer = setTimeout(() => this.#onTimeout(), init.timeoutMs)
  }

  start(): void {
    const conn = this.#pool.take(this.#init.origin)
    if (conn) this.#attach(conn)
    else this.#dial()
  }

  #dial(): void {
    this.#pool.connect(this.#init.origin).then(
      (conn) => {
        if (this.#settled) this.#pool.release(conn)
        else if (conn.closed)
          this.#failHead(refused(new Error('closed while connecting'), { requestSent: this.#sentBefore, closeReason: conn.socket?.closeReason?.() ?? this.#lostBefore }))
        else this.#attach(conn)
      },
      (err: unknown) => this.#failHead(refused(err, { requestSent: this.#sentBefore, closeReason: this.#lostBefore })),
    )
  }

  #attach(conn: H1Connection): void {
    this.#conn = conn
    this.#writtenAtStart = conn.written
    if (conn.closed) {
      this.onClose(undefined)
      return
    }
    conn.sink = this
    const { body, headers } = this.#init
    let length = -2
    if (body) {
      const declared = headers.get('content-length')
      length = declared !== null && DIGITS.test(declared.trim()) ? Number(declared) : -1
    }
    conn.writeSoon(serializeHead(this.#init, length))
    if (body) void this.#pump(body, length)
    else this.#reqDone = true
  }

  async #pump(body: ReadableStream<Uint8Array>, length: number): Promise<void> {
    const conn = this.#conn!
    let reader: BodyReader
    try {
      reader = this.#reader = body.getReader()
    } catch (err) {
      this.#failRequest(err)
      return
    }
    let sent = 0
    try {
      for (;;) {
        const { done, value } = await reader.read()
        if (conn.closed || this.#conn !== conn) return
        if (done || !value) break
        if (value.length === 0) continue
        if (length >= 0) {
          if (sent + value.length > length)
            throw new RangeError('The request body is longer than its Content-Length.')
          conn.write(value)
        } else {
          conn.write(chunkPrefix(value.length))
          conn.write(value)
          conn.write(CRLF)
        }
        sent += value.length
        this.#progressAt = performance.now()
        // The kernel's send buffer is full: read no more from the client until it drains.
        if (conn.pendingBytes > 0) await conn.whenDrained()
        if (conn.closed) return
      }
      if (length >= 0 && sent !== length)
        throw new RangeError('The request body is shorter than its Content-Length.')
      if (length < 0) conn.write(LAST_CHUNK)
      this.#reader = null
      this.#reqDone = true
      this.#finish()
    } catch (err) {
      this.#reader = null
      reader.cancel(err).catch(noop)
      this.#failRequest(err)
    }
  }

  onData(buf: Buffer): void {
    this.#gotBytes = true
    try {
      if (this.#phase === HEAD) this.#onHeadData(buf)
      else if (this.#phase === BODY) this.#onBodyData(buf)
    } catch (err) {
      if (err instanceof H1ParseError) this.#failResponse(invalidResponse(err.message, err))
      else this.#failResponse(err)
    }
  }

  onClose(error: Error | undefined): void {
    if (this.#phase === HEAD) {
      if (!this.#gotBytes && this.#canRetry()) {
        this.#retried = true
        this.#sentBefore = this.#conn!.written > this.#writtenAtStart
        this.#lostBefore = this.#conn!.socket?.closeReason?.()
        this.#conn = null
        this.#dial()
      } else if (!this.#gotBytes) {
        const conn = this.#conn
        const requestSent = this.#sentBefore || (conn !== null && conn.written > this.#writtenAtStart)
        this.#failHead(refused(error ?? new Error('closed before answering'), { requestSent, closeReason: conn?.socket?.closeReason?.() ?? this.#lostBefore }))
      }
      else this.#failHead(invalidResponse('the connection closed inside the response head', error))
    } else if (this.#phase === BODY) {
      if (this.#framing === Framing.Close && !error) this.#endBody()
      else this.#failResponse(invalidResponse('the connection closed inside the response body', error))
    }
  }

  /** A reused connection that died before any answer most likely lost a race with its idle close. */
  #canRetry(): boolean {
    const conn = this.#conn
    if (this.#retried || this.#settled || !conn || conn.uses === 0 || this.#init.body) return false
    const h = this.#init.headers
    return safeToRetry(this.#init.method, (name) => h.has(name))
  }

  #onHeadData(chunk: Buffer): void {
    const buf = this.#head.push(chunk)
    if (!buf) return
    const end = this.#head.end
    const head = parseResponseHead(buf.toString('latin1', 0, end))
    if (head.status < 200) {
      // 100 Continue, 102, 103 are interim: the final head follows. We never ask to upgrade.
      if (head.status === 101) throw new H1ParseError('unexpected 101 Switching Protocols')
      if (end < buf.length) this.#onHeadData(buf.subarray(end))
      return
    }
    this.#res = head
    if (!head.keepAlive) this.#reusable = false
    const framing = (this.#framing = framingOf(head, this.#init.method))
    const rest = end < buf.length ? buf.subarray(end) : null
    switch (framing) {
      case Framing.None:
        if (rest) this.#reusable = false
        this.#respond(null)
        this.#resDone = true
        this.#phase = DONE
        this.#finish()
        return
      case Framing.Length: {
        const length = head.contentLength
        if (rest && rest.length >= length && length <= INLINE_BODY_LIMIT) {
          if (rest.length > length) this.#reusable = false
          this.#respond(rest.subarray(0, length))
          this.#resDone = true
          this.#phase = DONE
          this.#finish()
          return
        }
        this.#remaining = length
        this.#phase = BODY
        if (length <= INLINE_BODY_LIMIT) this.#buffer = new Uint8Array(length)
        else this.#respond(this.#openStream())
        if (rest) this.#onBodyData(rest)
        return
      }
      case Framing.Chunked: {
        const decoder = (this.#decoder = new ChunkedDecoder())
        this.#phase = BODY
        if (rest) {
          const parts: Uint8Array[] = []
          let total = 0
          const used = decoder.push(rest, 0, (c) => {
            parts.push(c)
            total += c.length
          })
          if (decoder.done && used < rest.length) this.#reusable = false
          if (decoder.done && total <= INLINE_BODY_LIMIT) {
            this.#respond(total ? concat(parts, total) : null)
            this.#resDone = true
            this.#phase = DONE
            this.#finish()
            return
          }
          this.#respond(this.#openStream())
          for (const p of parts) this.#onBodyChunk(p)
          if (decoder.done) this.#endBody()
          return
        }
        this.#respond(this.#openStream())
        return
      }
      case Framing.Close:
        this.#reusable = false
        this.#phase = BODY
        this.#respond(this.#openStream())
        if (rest) this.#onBodyChunk(rest)
        return
    }
  }

  #onBodyData(buf: Uint8Array): void {
    switch (this.#framing) {
      case Framing.Length: {
        const n = Math.min(this.#remaining, buf.length)
        this.#onBodyChunk(n === buf.length ? buf : buf.subarray(0, n))
        this.#remaining -= n
        if (this.#remaining === 0) {
          if (n < buf.length) this.#reusable = false
          this.#endBody()
        }
        return
      }
      case Framing.Chunked: {
        const decoder = this.#decoder!
        const used = decoder.push(buf, 0, this.#deliver)
        if (decoder.done) {
          if (used < buf.length) this.#reusable = false
          this.#endBody()
        }
        return
      }
      default:
        this.#onBodyChunk(buf)
    }
  }

  #onBodyChunk(chunk: Uint8Array): void {
    if (this.#phase !== BODY) return
    const buffer = this.#buffer
    if (buffer) {
      buffer.set(chunk, this.#buffered)
      this.#buffered += chunk.length
      return
    }
    const controller = this.#controller
    if (!controller) return
    controller.enqueue(chunk)
    if ((controller.desiredSize ?? 0) <= 0) this.#conn?.pause()
  }

  #openStream(): ReadableStream<Uint8Array> {
    return new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.#controller = controller
        },
        pull: () => {
          this.#conn?.resume()
        },
        cancel: () => {
          // The client went away: whatever is left of the body cannot be skipped cheaply.
          this.#controller = null
          if (this.#phase === DONE) return
          this.#phase = DONE
          this.#reusable = false
          this.#closeConn()
        },
      },
      { highWaterMark: STREAM_HIGH_WATER, size: (chunk) => chunk?.byteLength ?? 0 },
    )
  }

  #endBody(): void {
    this.#phase = DONE
    this.#resDone = true
    if (this.#buffer) {
      const body = this.#buffer
      this.#buffer = null
      this.#respond(body)
    } else {
      const controller = this.#controller
      this.#controller = null
      controller?.close()
    }
    this.#finish()
  }

  #respond(body: Uint8Array | ReadableStream<Uint8Array> | null): void {
    if (this.#settled) return
    const head = this.#res!
    let res: Response
    try {
      const init = { status: head.status, statusText: head.statusText, headers: head.headers }
      res = body instanceof Uint8Array ? readyResponse(body, init) : new Response(body, init)
    } catch (err) {
      // e.g. a body on 205: the Response constructor refuses what HTTP forbids.
      throw new H1ParseError(err instanceof Error ? err.message : String(err))
    }
    this.#settled = true
    clearTimeout(this.#timer)
    this.#resolve(res)
  }

  /** Hands the connection back once both directions ended; anything less closes it. */
  #finish(): void {
    if (!this.#resDone) return
    const conn = this.#conn
    if (!conn || conn.sink !== this) return
    if (!this.#reqDone) {
      // The upstream answered before taking the whole body: stop sending, drop the connection.
      this.#closeConn()
      return
    }
    conn.uses++
    if (this.#reusable) this.#pool.release(conn)
    else conn.destroy(false)
  }

  #closeConn(): void {
    const reader = this.#reader
    this.#reader = null
    reader?.cancel().catch(noop)
    this.#conn?.destroy()
  }

  #onTimeout(): void {
    if (this.#settled) return
    const idle = performance.now() - this.#progressAt
    if (this.#progressAt && idle < this.#init.timeoutMs) {
      this.#timer = setTimeout(() => this.#onTimeout(), this.#init.timeoutMs - idle)
      return
    }
    this.#failHead(upstreamTimedOut())
  }

  /** Fails before the Response was handed over. */
  #failHead(err: unknown): void {
    this.#phase = DONE
    this.#buffer = null
    this.#closeConn()
    if (this.#settled) return
    this.#settled = true
    clearTimeout(this.#timer)
    this.#reject(err)
  }

  /** Fails wherever we are: before the head the promise rejects, after it the body stream errors. */
  #failResponse(err: unknown): void {
    const controller = this.#controller
    this.#controller = null
    if (!this.#settled) {
      this.#failHead(err)
      return
    }
    this.#phase = DONE
    this.#closeConn()
    controller?.error(err)
  }

  /** The client's request body failed (it went away, or sent more or less than it declared). */
  #failRequest(err: unknown): void {
    if (this.#phase === DONE && this.#resDone) return
    this.#failResponse(
      new WarrenError(CODES.BAD_REQUEST, 'The request body ended early or did not match its length.', {
        status: 400,
        cause: err,
      }),
    )
  }
}

/**
 * Sends one request over a pooled HTTP/1.1 connection and resolves with the upstream's Response
 * once its head is in. Small bodies arrive as bytes, larger ones as a stream that pauses the
 * upstream socket while the reader is slow. Rejects with a `WarrenError`: `UPSTREAM_REFUSED` (502),
 * `UPSTREAM_TIMEOUT` (504), `UPSTREAM_INVALID_RESPONSE` (502) or `BAD_REQUEST` (400, the client's
 * body failed).
 *
 * @example
 * ```ts
 * const res = await h1Request(pool, {
 *   origin: { hostname: '127.0.0.1', port: 8080, key: '127.0.0.1:8080' },
 *   method: 'GET', target: '/', headers: new Headers({ host: 'app.example' }), body: null, timeoutMs: 30_000,
 * })
 * ```
 */
export function h1Request(pool: H1Pool, init: H1RequestInit): Promise<Response> {
  return new Promise((resolve, reject) => new Exchange(pool, init, resolve, reject).start())
}
