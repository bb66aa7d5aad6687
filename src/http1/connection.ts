import type { Socket } from 'bun'
import { createHash } from 'node:crypto'
import { STATUS_CODES } from 'node:http'
import { CODES, type ErrorCode } from '../lib/errors.ts'
import { linesOf, recordLines } from '../lib/header-lines.ts'
import { readyBody } from '../lib/ready-body.ts'
import { isStreamed } from '../lib/streamed-body.ts'
import { ChunkedDecoder, H1ParseError } from '../proxy/h1/parse.ts'
import { TunnelWebSocket, type FrameStream } from '../proxy/tunnel-websocket.ts'
import { websocketHandlers, type WsData } from '../proxy/websocket.ts'
import { sharedPool } from '../proxy/h1/pool.ts'
import { safeToRetry } from '../proxy/h1/client.ts'
import { RequestHead } from './head.ts'
import { unwatch, watch } from './deadlines.ts'
import { httpDate } from './http-date.ts'
import { findHeadEnd, HeadRefusal, parseHead, type HeadLimits, type ParsedHead } from './parse-head.ts'
import { Relay, type RelayClient, type RelayTarget } from './relay.ts'

/**
 * One client connection of the HTTP/1.1 engine: read, parse, hand each request to the data path,
 * write its answer, then the next one. Requests are served one at a time in arrival order, so
 * pipelined requests are answered in order; bytes that arrive meanwhile wait in the read buffer
 * (bounded: the socket pauses). Writes that the kernel did not take are queued and the producer
 * waits for `drain`; a request body pauses the socket while its reader is behind. Refusals answer
 * with their status, a `Warren-Error-Code` and `Connection: close`, and reach nothing upstream.
 */

export interface Http1Options {
  limits: HeadLimits
  /** A connection with no request in progress is closed after this long. */
  idleTimeoutMs: number
  /** From the first byte of a head to its end, and between two reads of a request body (slowloris). */
  readTimeoutMs: number
  /** Longest request body accepted (413 beyond a declared length; a chunked one is cut). */
  maxBodyBytes: number
  /** The data path: one response per request. */
  handle(req: Request, source: Http1Connection): Promise<Response>
  /**
   * The fast path (relay.ts): where to relay this request's bytes, its answer (only for a request
   * without a body), or undefined to hand it to `handle`. Asked for HTTP/1.1 requests that are not
   * upgrades, before any Request is made.
   */
  relay?(head: RequestHead, source: Http1Connection): RelayTarget | FastAnswer | undefined
  /** True for a response that stands for "drop the connection without an answer". */
  closes(res: Response): boolean
  /** An edge-made error page (status, code, message, the request's Accept). */
  errorPage(status: number, code: ErrorCode, message: string, accept: string | null): Response
  /** Called once per request when its response has been written (or the connection failed). */
  onRequestDone?(): void
  /** The data path threw instead of answering (the client gets a 500 page). */
  onError(err: unknown): void
}

/** The fast path's own answer to a request without a body (a policy's deny or custom-response), written as `handle`'s would be. */
export interface FastAnswer {
  response: Response
}

/** The socket type the engine runs on. */
export type Http1Socket = Socket<unknown>

const IDLE = 0
const BODY = 1
const BUSY = 2
const UPGRADED = 3
const CLOSED = 4
/** A request on the fast path: its bytes go through a Relay. */
const RELAY = 5

/** How long a refused or idle connection's peer has to close after the edge ended it (see #end). */
const END_LINGER_MS = 2000
/** Read-ahead kept for pipelined requests while one is served; more pauses the socket. */
const MAX_READ_AHEAD = 64 * 1024
/** Bytes of a request body queued for a slow reader before the socket pauses. */
const BODY_HIGH_WATER = 64 * 1024
/** Request-body bytes between two full garbage collections (a power of two minus one, as a mask). */
const GC_EVERY_MASK = 8 * 1024 * 1024 - 1
const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
const LAST_CHUNK = Buffer.from('0\r\n\r\n')
const CRLF = Buffer.from('\r\n')
const CONTINUE = Buffer.from('HTTP/1.1 100 Continue\r\n\r\n')
const DIGITS = /^\d{1,15}$/
/** Response fields the engine writes itself, from what it knows about the connection and the body. */
const OWN_FIELDS = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'proxy-connection', 'upgrade', 'trailer'])

export class Http1Connection {
  readonly #socket: Http1Socket
  readonly #o: Http1Options
  #state = IDLE
  /** Unparsed bytes (a partial head, or pipelined requests while one is served). */
  #buf: Buffer | null = null
  #scanned = 0
  /** When the current read or idle wait runs out (performance.now() ms; 0: none), checked by deadlines.ts. */
  #deadline = 0
  /** An expired head wait answers 408 (else the connection just closes). */
  #deadlineAnswers = false
  /** Cuts a half-closed connection whose peer never closes (see #end). */
  #linger: ReturnType<typeof setTimeout> | undefined
  /** Writes the kernel has not taken yet, in order. */
  #out: Uint8Array[] = []
  #drained: (() => void) | undefined
  #paused = false
  // The request being read.
  #remaining = 0
  #decoder: ChunkedDecoder | null = null
  #body: ReadableStreamDefaultController<Uint8Array> | null = null
  #bodyDone = true
  /** Why this request's body broke its framing: its answer is this refusal, whatever the upstream said. */
  #bodyRefusal: HeadRefusal | undefined
  #bodyBytes = 0
  #expectContinue = false
  #head: ParsedHead | null = null
  #version = 'HTTP/1.1'
  /** Close once the current response is written (shutdown, a broken body, a refusal). */
  #closeAfter = false
  #upgrade: { data: WsData; headers: Headers } | undefined
  #ws: (FrameStream & { closed: boolean }) | undefined
  #relay: Relay | null = null
  #relayClient: RelayClient | undefined

  constructor(socket: Http1Socket, options: Http1Options) {
    this.#socket = socket
    this.#o = options
    watch(this)
    this.#arm(options.idleTimeoutMs, false)
  }

  /** Called by deadlines.ts every tick: fires this connection's deadline, and its relay's, once passed. */
  sweep(now: number): void {
    if (this.#deadline !== 0 && now >= this.#deadline) {
      this.#deadline = 0
      this.#expired()
    }
    this.#relay?.sweep(now)
  }

  // --- what the data path may ask of the connection (the parts of Bun's Server it used) ---

  /** Endpoints whose on_tcp_connect already let this connection through (it runs once per connection). */
  readonly connectedEndpoints = new Set<object>()

  /** The fast path's routing of this connection's last Host (its owner, src/proxy/relay-route.ts, checks it is still current). */
  routeMemo: object | undefined = undefined

  #peer: { address: string; port: number } | undefined

  /** The client's address: the socket's peer, read once per connection (each read makes new strings). */
  requestIP(_req?: Request): { address: string; port: number } {
    return (this.#peer ??= { address: this.#socket.remoteAddress, port: this.#socket.remotePort })
  }

  /** `HTTP/1.0` or `HTTP/1.1`: the version the request line named. */
  httpVersion(_req: Request): string {
    return this.#version
  }

  /** Accepts a websocket handshake: `101` is written when the data path returns. */
  upgrade(req: Request, options: { data: WsData; headers?: ConstructorParameters<typeof Headers>[0] }): boolean {
    if (!this.#head?.upgrade || !req.headers.get('sec-websocket-key')) return false
    this.#upgrade = { data: options.data, headers: new Headers(options.headers) }
    return true
  }

  // --- socket events ---

  data(chunk: Buffer): void {
    if (this.#state === UPGRADED) return this.#ws?.ondata(chunk)
    if (this.#state === CLOSED) return
    if (this.#state === BODY) {
      const used = this.#feedBody(chunk, 0)
      if (used === chunk.length) return
      chunk = chunk.subarray(used)
    } else if (this.#state === RELAY && this.#relay && !this.#relay.requestDone) {
      const used = this.#relayBody(chunk)
      if (used === chunk.length) return
      chunk = chunk.subarray(used)
    }
    this.#buf = this.#buf ? Buffer.concat([this.#buf, chunk]) : chunk
    if (this.#state === IDLE) this.#next()
    else if (this.#buf.length > MAX_READ_AHEAD) this.#pause()
  }

  drain(): void {
    while (this.#out.length) {
      const chunk = this.#out[0]!
      const n = this.#socket.write(chunk)
      if (n < chunk.length) {
        this.#out[0] = chunk!.subarray(Math.max(n, 0))
        return
      }
      this.#out.shift()
    }
    const wake = this.#drained
    this.#drained = undefined
    wake?.()
    this.#ws?.ondrain()
    this.#relay?.clientDrained()
  }

  closed(): void {
    if (this.#state === CLOSED) return
    const wasUpgraded = this.#state === UPGRADED
    this.#state = CLOSED
    this.#deadline = 0
    unwatch(this)
    clearTimeout(this.#linger)
    if (this.#body && !this.#bodyDone) this.#body.error(new Error('the client closed the connection'))
    this.#bodyDone = true
    this.#out = []
    this.#drained?.()
    if (this.#relay) {
      this.#relay.abort()
      this.#relayOver()
    }
    if (wasUpgraded && this.#ws && !this.#ws.closed) {
      this.#ws.closed = true
      this.#ws.onclose()
    }
  }

  /** Closes the connection once it is between requests (shutdown); at once when it already is. */
  closeWhenIdle(): void {
    if (this.#state === IDLE && !this.#buf) this.#end()
    else this.#closeAfter = true
  }

  // --- reading ---

  #arm(ms: number, answer: boolean): void {
    this.#deadline = performance.now() + ms
    this.#deadlineAnswers = answer
  }

  #expired(): void {
    // A head that stopped arriving gets 408; a body that did fails the request (its answer closes the
    // connection); an idle connection just closes.
    if (this.#state === BODY) this.#bodyFailed('the request body did not arrive in time', 408, CODES.REQUEST_TIMEOUT)
    else if (this.#state === RELAY) this.#relay?.clientTimedOut()
    else if (this.#state !== IDLE) return
    else if (this.#deadlineAnswers) this.#refuse(408, CODES.REQUEST_TIMEOUT, 'The request did not arrive in time.')
    else this.#end(true)
  }

  #pause(): void {
    if (this.#paused) return
    this.#paused = true
    this.#socket.pause()
    // Waiting on our own reader (or the upstream) is not the client being slow.
    if (this.#state === BODY || this.#state === RELAY) this.#deadline = 0
  }

  #resume(): void {
    if (!this.#paused) return
    this.#paused = false
    this.#socket.resume()
    if (this.#state === BODY || (this.#state === RELAY && !this.#relay?.requestDone)) this.#arm(this.#o.readTimeoutMs, true)
  }

  /** Parses the next head in the buffer and starts serving it. */
  #next(): void {
    const buf = this.#buf
    if (!buf || this.#state !== IDLE) return
    let end: number
    let parsed: ParsedHead
    try {
      end = findHeadEnd(buf, 0, buf.length, this.#scanned, this.#o.limits)
      if (end === -1) {
        // The head's clock starts at its first byte and is not reset by more: a trickle cannot hold it open.
        if (this.#scanned === 0) this.#arm(this.#o.readTimeoutMs, true)
        this.#scanned = buf.length
        return
      }
      parsed = parseHead(buf, 0, end, this.#o.limits)
    } catch (err) {
      if (err instanceof HeadRefusal) return this.#refuse(err.status, err.code, refusalMessage(err))
      throw err
    }
    this.#scanned = 0
    this.#deadline = 0
    const rest = end < buf.length ? buf.subarray(end) : null
    this.#buf = null
    this.#start(parsed, rest)
  }

  #start(parsed: ParsedHead, rest: Buffer | null): void {
    const head = new RequestHead(parsed)
    this.#head = parsed
    this.#version = head.version
    this.#upgrade = undefined
    const declared = parsed.contentLength
    if (declared > this.#o.maxBodyBytes) return this.#refuse(413, CODES.BODY_TOO_LARGE, 'The request body is larger than this edge accepts.')
    if (this.#o.relay && parsed.minor === 1 && !parsed.upgrade) {
      // From the parser: building the head's lines as strings to look for it cost 3 % of a /hello.
      const expect = parsed.expect
      if (expect !== null && expect !== '100-continue') return this.#refuse(417, CODES.BAD_REQUEST, 'Only Expect: 100-continue is understood.')
      const target = this.#o.relay(head, this)
      if (target && 'response' in target) return this.#answerNow(target.response, rest)
      if (target) return this.#startRelay(target, head, rest, expect !== null)
    }
    const headers = head.toHeaders()
    this.#expectContinue = false
    const expect = headers.get('expect')
    if (expect !== null) {
      // The edge answers Expect itself (it reads the body when the data path asks for it).
      if (expect.toLowerCase() !== '100-continue') return this.#refuse(417, CODES.BAD_REQUEST, 'Only Expect: 100-continue is understood.')
      headers.delete('expect')
      this.#expectContinue = parsed.minor === 1
    }
    const hasBody = parsed.chunked || declared > 0
    const bodyAllowed = parsed.method !== 'GET' && parsed.method !== 'HEAD'
    let body: ReadableStream<Uint8Array> | null = null
    this.#remaining = parsed.chunked ? 0 : Math.max(declared, 0)
    this.#decoder = parsed.chunked ? new ChunkedDecoder() : null
    this.#bodyBytes = 0
    this.#body = null
    this.#bodyDone = !hasBody
    this.#bodyRefusal = undefined
    if (hasBody && bodyAllowed)
      body = new ReadableStream<Uint8Array>(
        {
          start: (controller) => {
            this.#body = controller
          },
          pull: () => {
            if (this.#expectContinue) {
              this.#expectContinue = false
              this.#write(CONTINUE)
            }
            if (this.#state === BODY) this.#resume()
          },
          cancel: () => {
            // Nobody wants the rest: it is read and dropped so the connection stays in step.
            this.#body = null
          },
        },
        { highWaterMark: BODY_HIGH_WATER, size: (chunk) => chunk?.byteLength ?? 0 },
      )
    let req: Request
    try {
      req = new Request(`http://${parsed.host}${parsed.path === '*' ? '/' : parsed.path}`, {
        method: parsed.method,
        headers,
        body,
        ...(body ? { duplex: 'half' } : {}),
      } as RequestInit)
    } catch {
      return this.#refuse(400, CODES.BAD_REQUEST, 'The request target or Host is not a valid URL.')
    }
    const repeated = parsed.lines.length > 8 ? head.repeated() : undefined
    if (repeated) for (const [name, lines] of repeated) recordLines(req.headers, name, lines)
    this.#state = hasBody ? BODY : BUSY
    if (hasBody) {
      // Without a reader yet, a client that sent Expect waits for our 100: do not time it out.
      this.#arm(this.#o.readTimeoutMs, true)
      if (rest) {
        const used = this.#feedBody(rest, 0)
        if (used < rest.length) this.#buf = rest.subarray(used)
      }
    } else {
      this.#deadline = 0
      this.#buf = rest
    }
    if (this.#buf && this.#buf.length > MAX_READ_AHEAD) this.#pause()
    void this.#serve(req, parsed)
  }

  /** Hands body bytes from `chunk[from…]` to the request; returns the index past the last one used. */
  #feedBody(chunk: Buffer, from: number): number {
    let end: number
    if (this.#decoder) {
      try {
        end = this.#decoder.push(chunk, from, (data) => this.#deliver(data))
      } catch (err) {
        this.#bodyFailed(err instanceof H1ParseError ? err.message : 'invalid chunked body')
        return chunk.length
      }
      if (this.#decoder.done) this.#finishBody()
    } else {
      const n = Math.min(this.#remaining, chunk.length - from)
      end = from + n
      this.#remaining -= n
      this.#deliver(chunk.subarray(from, end))
      if (this.#remaining === 0) this.#finishBody()
    }
    if (this.#state === BODY) this.#arm(this.#o.readTimeoutMs, true)
    return end
  }

  #deliver(data: Uint8Array): void {
    if (data.length === 0) return
    this.#countBody(data.length)
    if (this.#bodyBytes > this.#o.maxBodyBytes) return this.#bodyFailed('the request body is larger than this edge accepts', 413, CODES.BODY_TOO_LARGE)
    const controller = this.#body
    if (!controller) return
    // Bun hands each read in a fresh Buffer, so the reader may keep a view of it without a copy.
    controller.enqueue(data)
    if ((controller.desiredSize ?? 1) <= 0) this.#pause()
  }

  /** Counts request-body bytes read; the relay's and the pipeline's reads alike. */
  #countBody(n: number): void {
    this.#bodyBytes += n
    // Every read arrives in a new Buffer; on a long upload they pile up faster than the collector's
    // heap-based trigger notices. Measured on a 1 GB upload: +58 MB peak without, +24 MB with a full
    // collection every 16 MiB; every 8 MiB (128 per GB, a few ms each) took the peak from 99.6-100.0 MB
    // to 91.3-94.7 MB (test/e2e/streaming.test.ts, 2026-12-07).
    if ((this.#bodyBytes & GC_EVERY_MASK) < n) Bun.gc(true)
  }

  #finishBody(): void {
    this.#bodyDone = true
    if (this.#body) this.#body.close()
    this.#state = BUSY
    this.#deadline = 0
    this.#resume()
  }

  /** The body broke its framing: nothing more can be read on this connection. */
  #bodyFailed(reason: string, status = 400, code: ErrorCode = CODES.BAD_REQUEST): void {
    const err = new HeadRefusal(status, code, reason)
    this.#bodyRefusal = err
    this.#body?.error(err)
    this.#body = null
    this.#bodyDone = true
    this.#closeAfter = true
    this.#state = BUSY
    this.#resume()
  }

  // --- writing ---

  /** Writes now what the kernel takes and queues the rest; false when the caller should wait for drain. */
  #write(bytes: Uint8Array): boolean {
    if (this.#state === CLOSED) return true
    if (this.#out.length) {
      this.#out.push(bytes)
      return false
    }
    const n = this.#socket.write(bytes)
    if (n >= bytes.length) return true
    this.#out.push(bytes.subarray(Math.max(n, 0)))
    return false
  }

  #waitDrain(): Promise<void> {
    if (!this.#out.length || this.#state === CLOSED) return Promise.resolve()
    return new Promise((resolve) => (this.#drained = resolve))
  }

  /**
   * Half-closes once everything queued is written. With `linger` (a refusal, an idle connection: at
   * most a small error page is in flight) the socket is cut END_LINGER_MS later if the peer has not
   * closed its side: Bun keeps a half-closed socket for as long as the peer does, so a client that
   * never reads nor closes would otherwise hold it for good.
   */
  #end(linger = false): void {
    if (this.#state === CLOSED) return
    this.#deadline = 0
    const end = () => {
      this.#socket.end()
      if (!linger || this.#state === CLOSED) return
      this.#linger = setTimeout(() => this.#socket.terminate(), END_LINGER_MS)
    }
    if (!this.#out.length) return end()
    void this.#waitDrain().then(end)
  }

  /** Answers an edge-made error and closes: the request goes no further. */
  #refuse(status: number, code: ErrorCode, message: string): void {
    this.#state = BUSY
    this.#deadline = 0
    this.#buf = null
    this.#body?.error(new Error(message))
    this.#body = null
    this.#closeAfter = true
    const accept = this.#head ? new RequestHead(this.#head).getAll('accept')[0] ?? null : null
    void this.#respond(this.#o.errorPage(status, code, message, accept), 'GET', 1, false).then(() => this.#end(true))
  }

  async #serve(req: Request, parsed: ParsedHead): Promise<void> {
    let res: Response
    try {
      res = await this.#o.handle(req, this)
    } catch (err) {
      this.#o.onError(err)
      res = this.#o.errorPage(500, CODES.INTERNAL, 'The edge failed to handle this request.', req.headers.get('accept'))
    }
    // The upstream saw a body cut short (and answered 502, or anything): the client sent the bad bytes.
    const refusal = this.#bodyRefusal
    if (refusal && !this.#o.closes(res)) {
      void res.body?.cancel()
      res = this.#o.errorPage(refusal.status, refusal.code, `The request body was refused: ${refusal.message}.`, req.headers.get('accept'))
    }
    if (this.#state === CLOSED) {
      void res.body?.cancel()
      this.#o.onRequestDone?.()
      return
    }
    if (this.#upgrade && !this.#o.closes(res)) {
      void res.body?.cancel()
      this.#o.onRequestDone?.()
      return this.#accept(req)
    }
    if (this.#o.closes(res)) {
      this.#o.onRequestDone?.()
      this.#state = CLOSED
      this.#socket.terminate()
      return
    }
    const keepAlive = parsed.keepAlive && !this.#closeAfter
    const complete = await this.#respond(res, parsed.method, parsed.minor, keepAlive)
    this.#o.onRequestDone?.()
    // A body nobody read to its end leaves the connection out of step with the client: close it.
    this.#nextRequest(complete && keepAlive && this.#bodyDone)
  }

  /** After a response: the next request when the connection is still in step, else the end. */
  #nextRequest(inStep: boolean): void {
    if (this.#state === CLOSED) return
    if (!inStep || this.#closeAfter) return this.#end()
    this.#head = null
    this.#state = IDLE
    this.#resume()
    this.#arm(this.#o.idleTimeoutMs, false)
    if (this.#buf) this.#next()
  }

  // --- the fast path ---

  #startRelay(target: RelayTarget, head: RequestHead, rest: Buffer | null, expectContinue: boolean): void {
    const parsed = head.parsed
    const hasBody = parsed.chunked || parsed.contentLength > 0
    const relay = new Relay(sharedPool(), target, (this.#relayClient ??= this.#makeRelayClient()), {
      method: parsed.method,
      contentLength: parsed.contentLength,
      chunked: parsed.chunked,
      keepAlive: parsed.keepAlive && !this.#closeAfter,
      maxBodyBytes: this.#o.maxBodyBytes,
      retryable: !hasBody && safeToRetry(parsed.method, (name) => head.getAll(name).length > 0),
    })
    this.#relay = relay
    this.#state = RELAY
    this.#bodyBytes = 0
    this.#buf = null
    // The edge answers Expect itself, as the pipeline does once the body is asked for: here at once.
    if (expectContinue && hasBody) this.#write(CONTINUE)
    relay.start()
    if (!hasBody) {
      this.#deadline = 0
      this.#buf = rest
    } else {
      this.#arm(this.#o.readTimeoutMs, true)
      if (rest) {
        const used = this.#relayBody(rest)
        if (used < rest.length && this.#relay === relay) this.#buf = rest.subarray(used)
      }
    }
    if (this.#buf && this.#buf.length > MAX_READ_AHEAD) this.#pause()
  }

  /** Writes the fast path's answer to a request without a body; the next request follows as after a relay. */
  #answerNow(res: Response, rest: Buffer | null): void {
    this.#buf = rest
    ;(this.#relayClient ??= this.#makeRelayClient()).answer(res, true)
  }

  /** Hands request-body bytes to the relay; returns how many belonged to the body. */
  #relayBody(chunk: Buffer): number {
    const relay = this.#relay!
    const used = relay.pushBody(chunk, 0)
    this.#countBody(used)
    if (this.#relay !== relay) return chunk.length
    if (relay.requestDone) this.#deadline = 0
    else if (!this.#paused) this.#arm(this.#o.readTimeoutMs, true)
    return used
  }

  /** The relay let go of this connection: the request is done, whatever comes next. */
  #relayOver(): void {
    this.#relay = null
    this.#o.onRequestDone?.()
  }

  /** What a relay may do to this connection (made once, on its first relayed request). */
  #makeRelayClient(): RelayClient {
    return {
      write: (bytes) => this.#write(bytes),
      pause: () => this.#pause(),
      resume: () => this.#resume(),
      finished: (inStep) => {
        const keepAlive = this.#head?.keepAlive ?? false
        this.#relayOver()
        this.#nextRequest(inStep && keepAlive)
      },
      answer: (res, inStep) => {
        const keepAlive = (this.#head?.keepAlive ?? false) && !this.#closeAfter
        this.#relay = null
        this.#state = BUSY
        void this.#respond(res, this.#head?.method ?? 'GET', 1, keepAlive && inStep).then((complete) => {
          this.#o.onRequestDone?.()
          this.#nextRequest(complete && keepAlive && inStep)
        })
      },
      refuse: (status, code, message) => {
        this.#relayOver()
        this.#refuse(status, code, message)
      },
      terminate: () => {
        this.#relayOver()
        this.#state = CLOSED
        this.#socket.terminate()
      },
    }
  }

  /**
   * Writes a response: status line, fields, framing chosen here (Content-Length when known, else
   * chunked for HTTP/1.1 and close-delimited for 1.0). A body whose bytes are already there goes out
   * in the same write as the head, with its length. Resolves true when the body was written whole.
   */
  async #respond(res: Response, method: string, minor: 0 | 1, keepAlive: boolean): Promise<boolean> {
    const status = res.status
    const noBody = method === 'HEAD' || status < 200 || status === 204 || status === 304
    const declared = res.headers.get('content-length')
    let length = declared !== null && DIGITS.test(declared) ? Number(declared) : -1
    if (noBody) void res.body?.cancel()
    // Bytes already in memory skip the stream (a reader, promises and a turn of the loop per response).
    const ready = noBody ? undefined : readyBody(res)
    const reader = noBody || ready ? null : (res.body?.getReader() ?? null)
    // What the body already holds: read without waiting, so a ready body shares the head's write.
    const first: Uint8Array[] = ready?.length ? [ready] : []
    let ended = reader === null
    /** A read that was not ready in time: its result comes first in the loop below. */
    let pending: Promise<{ done: boolean; value?: Uint8Array | undefined }> | null = null
    if (reader) {
      try {
        for (let n = 0; n < 2 && !ended; n++) {
          pending = reader.read()
          const got = await Promise.race([pending, nextTurn()])
          if (got === NOT_READY) break
          pending = null
          if (got.done) ended = true
          else if (got.value?.length) first.push(got.value)
        }
      } catch {
        this.#state = CLOSED
        this.#socket.terminate()
        return false
      }
      if (this.#state === CLOSED) {
        void reader.cancel()
        return false
      }
    }
    // A body re-encoded on the way (compress-response) streams, however quickly it ended. Only a
    // body already read as a stream is asked: reading `res.body` otherwise would make one.
    const unsized = !ended || (reader !== null && isStreamed(res.body))
    if (length === -1 && !unsized && !noBody) length = first.reduce((n, c) => n + c.length, 0)
    const chunked = unsized && length === -1 && minor === 1
    if (unsized && length === -1 && minor === 0) keepAlive = false
    let fields = ''
    if (length !== -1 && (method === 'HEAD' || !noBody)) fields += `content-length: ${length}\r\n`
    else if (chunked) fields += 'transfer-encoding: chunked\r\n'
    if (!keepAlive) fields += 'connection: close\r\n'
    else if (minor === 0) fields += 'connection: keep-alive\r\n'
    const head = responseHead(status, res.statusText, res.headers, fields)
    const parts: Uint8Array[] = [Buffer.from(head, 'latin1')]
    let sent = 0
    for (const c of first) {
      sent += c.length
      if (chunked) parts.push(Buffer.from(`${c.length.toString(16)}\r\n`, 'latin1'), c, CRLF)
      else parts.push(c)
    }
    if (ended && chunked) parts.push(LAST_CHUNK)
    let flushed = this.#write(parts.length === 1 ? parts[0]! : Buffer.concat(parts))
    if (reader && !ended) {
      try {
        for (;;) {
          if (!flushed) await this.#waitDrain()
          const { done, value } = await (pending ?? reader.read())
          pending = null
          if (this.#state === CLOSED) {
            void reader.cancel()
            return false
          }
          if (done) break
          if (!value || value.length === 0) continue
          sent += value.length
          flushed = this.#write(chunked ? Buffer.concat([Buffer.from(`${value.length.toString(16)}\r\n`, 'latin1'), value, CRLF]) : value)
        }
      } catch {
        // The body failed midway: the client cannot be told in-band, only by the connection ending early.
        this.#state = CLOSED
        this.#socket.terminate()
        return false
      }
      if (chunked) this.#write(LAST_CHUNK)
    }
    await this.#waitDrain()
    if (length !== -1 && !noBody && sent !== length) {
      this.#state = CLOSED
      this.#socket.terminate()
      return false
    }
    return length !== -1 || chunked || noBody
  }

  /** Writes `101` and turns the connection into a websocket relayed to the upstream the data path opened. */
  #accept(req: Request): void {
    const { data, headers } = this.#upgrade!
    const key = req.headers.get('sec-websocket-key') ?? ''
    const accept = createHash('sha1').update(key + WS_GUID).digest('base64')
    let head = `HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ${accept}\r\n`
    headers.forEach((value, name) => (head += `${name}: ${value}\r\n`))
    this.#write(Buffer.from(`${head}\r\n`, 'latin1'))
    this.#state = UPGRADED
    this.#deadline = 0
    this.#resume()
    const stream: FrameStream & { closed: boolean } = {
      closed: false,
      write: (bytes: Uint8Array) => {
        this.#write(bytes)
        return bytes.length
      },
      end: () => this.#end(),
      terminate: () => this.#socket.terminate(),
      ondata: () => {},
      ondrain: () => {},
      onclose: () => {},
    }
    this.#ws = stream
    const rest = this.#buf ?? new Uint8Array(0)
    this.#buf = null
    const client = TunnelWebSocket.accepted(stream, rest)
    // Bun.serve's websocket handlers drive the pairing; this stands in for its ServerWebSocket.
    const peer = {
      data,
      send: (message: string | ArrayBuffer) => client.send(message),
      close: (code?: number, reason?: string) => client.close(code, reason),
    } as unknown as Parameters<NonNullable<typeof websocketHandlers.open>>[0]
    client.onmessage = (e) => void websocketHandlers.message!(peer, typeof e.data === 'string' ? e.data : Buffer.from(e.data))
    client.onclose = (e) => void websocketHandlers.close?.(peer, e.code, e.reason)
    void websocketHandlers.open?.(peer)
  }
}

/**
 * A response head as the engine writes it: status line, the end-to-end fields (repeated lines kept
 * apart), a Date when there is none, then `fields` (framing and connection lines the caller chose).
 */
function responseHead(status: number, statusText: string, headers: Headers, fields: string): string {
  let head = `HTTP/1.1 ${status} ${statusText || STATUS_CODES[status] || ''}\r\n`
  let dated = false
  for (const [name, value] of headers) {
    if (OWN_FIELDS.has(name)) continue
    if (name === 'date') dated = true
    const lines = linesOf(headers, name, value)
    if (lines) for (const line of lines) head += `${name}: ${line}\r\n`
    else head += `${name}: ${value}\r\n`
  }
  // RFC 9110 §6.6.1: the edge's own answers carry a Date, as an upstream's do.
  if (!dated) head += `date: ${httpDate()}\r\n`
  return `${head}${fields}\r\n`
}

const NOT_READY = Symbol('not ready')

/** Settles after the promise jobs of this turn of the event loop: a body read not done by then is not ready. */
function nextTurn(): Promise<typeof NOT_READY> {
  return new Promise((resolve) => setImmediate(() => resolve(NOT_READY)))
}

function refusalMessage(err: HeadRefusal): string {
  if (err.status === 431) return 'Request headers are too large.'
  if (err.status === 505) return 'Only HTTP/1.0 and HTTP/1.1 are served here.'
  if (err.status === 501) return `Not implemented: ${err.message}.`
  return `Malformed request: ${err.message}.`
}
