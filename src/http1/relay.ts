import { CODES, type ErrorCode } from '../lib/errors.ts'
import { invalidResponse, UpstreamRefused, upstreamTimedOut } from '../proxy/h1/client.ts'
import { ChunkedDecoder, Framing, framingOf, H1ParseError, HeadCollector } from '../proxy/h1/parse.ts'
import type { ConnectionSink, H1Connection, H1Origin, H1Pool } from '../proxy/h1/pool.ts'
import { scanResponseHead } from './response-head.ts'

/**
 * The engine's fast path for one request: its head (already edited by whoever chose the target) and
 * its body bytes go to a pooled upstream connection as they are, framed by the client's
 * Content-Length or chunked encoding (tracked to find the end, never decoded); the upstream's
 * response head is scanned, not parsed into objects (src/http1/response-head.ts), and goes back with
 * its body bytes by their own framing (chunked passes through whole, trailers included). No Request, Response or body stream is made unless the
 * relay fails before the client got anything, when the edge's error page is written instead.
 * Backpressure both ways: a side whose writes queue pauses the other side's reads.
 */

/** Where a request goes and what the data path wants to know about it. */
export interface RelayTarget {
  origin: H1Origin
  /** The request head to send, request line to blank line, framing fields included. */
  head: Uint8Array
  /** Milliseconds the upstream may stay silent before its response head (reset while the body moves). */
  timeoutMs: number
  /**
   * The origin is an agent: its own 502 (upstream unreachable) keeps its `Warren-Error-Code`; any
   * other code an upstream sets is removed, as on the pipeline.
   */
  agent: boolean
  /**
   * The response head the client gets (status and end-to-end fields), or the error page's. `fields`
   * makes strings only for what is asked of it.
   */
  answered(status: number, fields: ResponseFields): void
  /** The edge's page for a relay that failed before the client got a byte of an answer. */
  failure(err: unknown): Response
}

/** The part of `Headers` a consumer of the answer reads. */
export interface ResponseFields {
  get(name: string): string | null
}

/** What the relay asks of the client connection. */
export interface RelayClient {
  /** Writes now or queues; false when the rest waits for the client to read (then `clientDrained` follows). */
  write(bytes: Uint8Array): boolean
  pause(): void
  resume(): void
  /** The relay is over; `inStep` is false when the connection cannot serve another request. */
  finished(inStep: boolean): void
  /** The relay failed before the client got anything: this page is the answer. */
  answer(res: Response, inStep: boolean): void
  /** The request body broke its framing or limit: refused, and the connection closes. */
  refuse(status: number, code: ErrorCode, message: string): void
  /** The response was cut after its head went out: the client can only learn it from the connection ending. */
  terminate(): void
}

export interface RelayRequest {
  method: string
  /** Declared body length, -1 without Content-Length. */
  contentLength: number
  chunked: boolean
  keepAlive: boolean
  maxBodyBytes: number
  /** May be sent again when a reused upstream connection dies before answering (no body; see safeToRetry). */
  retryable: boolean
}

const HEAD = 0
const BODY = 1
const DONE = 2

/** Request-body bytes queued for the upstream before the client's socket pauses. */
const BODY_HIGH_WATER = 64 * 1024
/** Pieces of one flush up to this many bytes in all go out in one write. */
const JOIN_MAX = 16 * 1024
const LAST_CHUNK = Buffer.from('0\r\n\r\n')
const CRLF = Buffer.from('\r\n')

function ignore(): void {}

export class Relay implements ConnectionSink {
  readonly #pool: H1Pool
  readonly #target: RelayTarget
  readonly #client: RelayClient
  readonly #req: RelayRequest
  #conn: H1Connection | null = null
  #writtenAtStart = 0
  #retried = false
  /** When a silent upstream times out (performance.now() ms; 0 once answered), checked by `sweep`. */
  #deadline = 0
  #over = false
  /** When the request body last moved. */
  #progressAt = 0
  #clientPaused = false
  // Request side.
  /** Body bytes that arrived before the upstream connection was there. */
  #early: Uint8Array[] | null = null
  #reqRemaining: number
  #reqDecoder: ChunkedDecoder | null
  #reqBytes = 0
  #reqDone: boolean
  readonly #countChunk = (data: Uint8Array): void => {
    this.#reqBytes += data.length
  }
  // Response side.
  #phase = HEAD
  #gotBytes = false
  readonly #headBytes = new HeadCollector()
  #framing: Framing = Framing.None
  #resRemaining = 0
  #resDecoder: ChunkedDecoder | null = null
  /** A close-delimited upstream body goes to the client chunked, so the client connection stays usable. */
  #rechunk = false
  #reusable = true
  #waitingClient = false

  constructor(pool: H1Pool, target: RelayTarget, client: RelayClient, req: RelayRequest) {
    this.#pool = pool
    this.#target = target
    this.#client = client
    this.#req = req
    this.#reqRemaining = req.chunked ? 0 : Math.max(req.contentLength, 0)
    this.#reqDecoder = req.chunked ? new ChunkedDecoder({ strict: true }) : null
    this.#reqDone = !req.chunked && this.#reqRemaining === 0
  }

  /** The client sent the whole request body (or there was none). */
  get requestDone(): boolean {
    return this.#reqDone
  }

  start(): void {
    this.#deadline = performance.now() + this.#target.timeoutMs
    const conn = this.#pool.take(this.#target.origin)
    if (conn) this.#attach(conn)
    else this.#dial()
  }

  #dial(): void {
    if (!this.#reqDone) this.#pauseClient()
    this.#pool.connect(this.#target.origin).then(
      (conn) => {
        if (this.#over) this.#pool.release(conn)
        else if (conn.closed) this.#fail(new UpstreamRefused(new Error('closed while connecting'), { requestSent: false, closeReason: conn.socket?.closeReason?.() }))
        else this.#attach(conn)
      },
      (err: unknown) => this.#fail(new UpstreamRefused(err, { requestSent: false })),
    )
  }

  #attach(conn: H1Connection): void {
    this.#conn = conn
    this.#writtenAtStart = conn.written
    conn.sink = this
    // With other connections' writes at the end of this turn: requests that arrived together go out together.
    conn.writeSoon(this.#target.head)
    const early = this.#early
    this.#early = null
    if (early) for (const chunk of early) conn.write(chunk)
    this.#resumeClient()
    this.#checkUpload(conn)
  }

  // --- request body, from the client ---

  /** Relays body bytes from `chunk[from…]`; returns the index past the last byte of this request's body. */
  pushBody(chunk: Buffer, from: number): number {
    if (this.#reqDone || this.#over) return from
    let end: number
    const decoder = this.#reqDecoder
    if (decoder) {
      try {
        end = decoder.push(chunk, from, this.#countChunk)
      } catch (err) {
        this.#bodyBroken(400, CODES.BAD_REQUEST, err instanceof H1ParseError ? err.message : 'invalid chunked body')
        return chunk.length
      }
      if (this.#reqBytes > this.#req.maxBodyBytes) {
        this.#bodyBroken(413, CODES.BODY_TOO_LARGE, 'the request body is larger than this edge accepts')
        return chunk.length
      }
      if (decoder.done) this.#reqDone = true
    } else {
      const n = Math.min(this.#reqRemaining, chunk.length - from)
      end = from + n
      this.#reqRemaining -= n
      if (this.#reqRemaining === 0) this.#reqDone = true
    }
    if (end > from) this.#send(end - from === chunk.length ? chunk : chunk.subarray(from, end))
    if (this.#reqDone) this.#finish()
    return end
  }

  #send(bytes: Uint8Array): void {
    const conn = this.#conn
    if (!conn) {
      // Bun hands every read in a fresh Buffer: keeping a view is safe. The client is paused meanwhile.
      ;(this.#early ??= []).push(bytes)
      this.#pauseClient()
      return
    }
    conn.write(bytes)
    this.#progressAt = performance.now()
    this.#checkUpload(conn)
  }

  /** Pauses the client while the upstream has a full window of its body unread. */
  #checkUpload(conn: H1Connection): void {
    if (conn.pendingBytes <= BODY_HIGH_WATER || this.#reqDone) return
    this.#pauseClient()
    void conn.whenDrained().then(() => {
      if (!this.#over && this.#conn === conn) this.#resumeClient()
    })
  }

  /** The client stopped sending its body in time. */
  clientTimedOut(): void {
    this.#bodyBroken(408, CODES.REQUEST_TIMEOUT, 'the request body did not arrive in time')
  }

  #bodyBroken(status: number, code: ErrorCode, reason: string): void {
    const answered = this.#phase !== HEAD
    this.#end()
    this.#conn?.destroy()
    if (answered) this.#client.terminate()
    else this.#client.refuse(status, code, `The request body was refused: ${reason}.`)
  }

  // --- response, from the upstream ---

  onData(buf: Buffer): void {
    this.#gotBytes = true
    try {
      if (this.#phase === HEAD) this.#onHead(buf)
      else if (this.#phase === BODY) this.#flush(this.#onBody(buf, []))
      // Bytes after the response: the connection is out of step.
      else this.#reusable = false
    } catch (err) {
      this.#fail(err instanceof H1ParseError ? invalidResponse(err.message, err) : err)
    }
  }

  onClose(error: Error | undefined): void {
    if (this.#over) return
    const conn = this.#conn
    if (this.#phase === HEAD) {
      if (this.#gotBytes) return this.#fail(invalidResponse('the connection closed inside the response head', error))
      const requestSent = conn !== null && conn.written > this.#writtenAtStart
      // A reused connection that died before any answer most likely lost a race with its idle close.
      if (conn && conn.uses > 0 && !this.#retried && this.#req.retryable) {
        this.#retried = true
        this.#conn = null
        return this.#dial()
      }
      return this.#fail(new UpstreamRefused(error ?? new Error('closed before answering'), { requestSent, closeReason: conn?.socket?.closeReason?.() }))
    }
    if (this.#phase === BODY && this.#framing === Framing.Close && !error) {
      this.#phase = DONE
      this.#reusable = false
      this.#flush(this.#rechunk ? [LAST_CHUNK] : [])
      return
    }
    if (this.#phase === BODY) this.#fail(invalidResponse('the connection closed inside the response body', error))
  }

  #onHead(chunk: Buffer): void {
    const buf = this.#headBytes.push(chunk)
    if (!buf) return
    const end = this.#headBytes.end
    const head = scanResponseHead(buf, end, this.#target.agent ? CODES.UPSTREAM_REFUSED : undefined)
    const status = head.status
    if (status < 200) {
      // Interim answers (100, 102, 103) are the edge's business: it answered Expect itself. 101 was never asked for.
      if (status === 101) throw new H1ParseError('unexpected 101 Switching Protocols')
      if (end < buf.length) this.#onHead(buf.subarray(end))
      return
    }
    if (!head.keepAlive) this.#reusable = false
    const framing = (this.#framing = framingOf(head, this.#req.method))
    let fields = ''
    if (framing === Framing.Chunked) {
      this.#resDecoder = new ChunkedDecoder({ strict: true })
      fields += 'transfer-encoding: chunked\r\n'
    } else if (framing === Framing.Close) {
      this.#rechunk = true
      this.#reusable = false
      fields += 'transfer-encoding: chunked\r\n'
    }
    if (!this.#req.keepAlive) fields += 'connection: close\r\n'
    this.#resRemaining = head.contentLength
    this.#phase = framing === Framing.None ? DONE : BODY
    this.#deadline = 0
    this.#target.answered(status, head)
    if (fields === '' && head.asRead) {
      // The head goes out as read: it and the body bytes after it in this read are one piece of the
      // read, written without a copy (the whole read, most often: no view made either).
      const stop = framing === Framing.Length ? Math.min(end + this.#resRemaining, buf.length) : end
      if (framing === Framing.Length) {
        this.#resRemaining -= stop - end
        if (this.#resRemaining === 0) this.#phase = DONE
      }
      // Bytes after the response: the connection is out of step.
      if (stop < buf.length) this.#reusable = false
      return this.#flush([stop === buf.length ? buf : buf.subarray(0, stop)])
    }
    const out: Uint8Array[] = [head.bytes(fields)]
    if (end < buf.length) {
      const rest = buf.subarray(end)
      if (this.#phase === BODY) this.#onBody(rest, out)
      else this.#reusable = false
    }
    this.#flush(out)
  }

  /** Adds the client's share of `buf` to `out` by the response's framing; returns `out`. */
  #onBody(buf: Uint8Array, out: Uint8Array[]): Uint8Array[] {
    switch (this.#framing) {
      case Framing.Length: {
        const n = Math.min(this.#resRemaining, buf.length)
        out.push(n === buf.length ? buf : buf.subarray(0, n))
        this.#resRemaining -= n
        if (this.#resRemaining === 0) {
          if (n < buf.length) this.#reusable = false
          this.#phase = DONE
        }
        break
      }
      case Framing.Chunked: {
        const decoder = this.#resDecoder!
        const used = decoder.push(buf, 0, ignore)
        out.push(used === buf.length ? buf : buf.subarray(0, used))
        if (decoder.done) {
          if (used < buf.length) this.#reusable = false
          this.#phase = DONE
        }
        break
      }
      default:
        if (buf.length) out.push(Buffer.from(`${buf.length.toString(16)}\r\n`, 'latin1'), buf, CRLF)
    }
    return out
  }

  /**
   * Writes what `out` holds to the client, small pieces joined into one write; the upstream pauses
   * while the client does not read.
   */
  #flush(out: Uint8Array[]): void {
    let total = 0
    for (const part of out) total += part.length
    let flushed = true
    if (out.length === 1) flushed = this.#client.write(out[0]!)
    // Joining copies: past a few KiB a second write is cheaper than the copy (a 64 KiB body joined to
    // its head spent 21 % of samples in Buffer.concat under wrk, 2026-12-07).
    else if (out.length > 1 && total <= JOIN_MAX) flushed = this.#client.write(Buffer.concat(out, total))
    else for (const part of out) flushed = this.#client.write(part) && flushed
    if (!flushed && this.#phase !== DONE) {
      this.#waitingClient = true
      this.#conn?.pause()
    }
    if (this.#phase === DONE) this.#finish()
  }

  /** The client read what was queued for it. */
  clientDrained(): void {
    if (!this.#waitingClient) return
    this.#waitingClient = false
    this.#conn?.resume()
  }

  // --- the end ---

  /** Hands the upstream connection back once both directions ended; anything less closes it. */
  #finish(): void {
    if (this.#phase !== DONE || this.#over) return
    const conn = this.#conn
    if (!this.#reqDone) {
      // The upstream answered before taking the whole body: stop here; the client is out of step.
      this.#end()
      conn?.destroy()
      this.#client.finished(false)
      return
    }
    this.#end()
    if (conn) {
      conn.uses++
      if (this.#reusable) this.#pool.release(conn)
      else conn.destroy(false)
    }
    this.#client.finished(true)
  }

  #fail(err: unknown): void {
    if (this.#over) return
    const answered = this.#phase !== HEAD
    this.#end()
    this.#conn?.destroy()
    if (answered) return this.#client.terminate()
    const page = this.#target.failure(err)
    this.#target.answered(page.status, page.headers)
    this.#client.answer(page, this.#reqDone)
  }

  /** The client went away: nothing more is relayed. */
  abort(): void {
    if (this.#over) return
    this.#end()
    this.#conn?.destroy()
  }

  #end(): void {
    this.#over = true
    this.#early = null
    this.#deadline = 0
    if (this.#conn?.sink === this) this.#conn.sink = null
  }

  /** Called by the client connection on the engine's clock (src/http1/deadlines.ts). */
  sweep(now: number): void {
    if (this.#deadline === 0 || now < this.#deadline || this.#phase !== HEAD || this.#over) return
    // An upload that still moves is not a silent upstream.
    if (this.#progressAt && now - this.#progressAt < this.#target.timeoutMs) {
      this.#deadline = this.#progressAt + this.#target.timeoutMs
      return
    }
    this.#fail(upstreamTimedOut())
  }

  #pauseClient(): void {
    if (this.#clientPaused) return
    this.#clientPaused = true
    this.#client.pause()
  }

  #resumeClient(): void {
    if (!this.#clientPaused) return
    this.#clientPaused = false
    this.#client.resume()
  }
}
