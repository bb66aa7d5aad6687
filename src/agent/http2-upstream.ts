import type * as http2 from 'node:http2'
import { STATUS_CODES } from 'node:http'
import { isIP, connect as netConnect } from 'node:net'
import { CODES } from '../lib/errors.ts'
import { ChunkedDecoder, findHeadEnd } from '../proxy/h1/parse.ts'
import { HOP_BY_HOP } from '../proxy/hop-headers.ts'
import type { MuxStream } from '../tunnel/mux.ts'
import { describeDialError, errorResponse, type ForwardContext } from './forward.ts'
import { MAX_REQUEST_HEAD, parseRequestHead, RequestHeadError, type RequestHead } from './request-head.ts'
import { concat, StreamWriter } from './stream-io.ts'
import { hostText, type Upstream } from './upstream.ts'

type NetUpstream = Exclude<Upstream, { kind: 'file' }>

/** Response bytes queued toward the edge before the upstream's stream is paused. */
const HIGH_WATER = 256 * 1024

/**
 * One HTTP/2 session per upstream, opened on first use and reopened once it closes, fails or gets
 * GOAWAY (requests already on it finish there). Cleartext upstreams get h2c with prior knowledge;
 * https:// ones TLS with ALPN h2, verified only with `--upstream-tls-verify`.
 */
export class Http2Sessions {
  readonly #sessions = new Map<string, Promise<http2.ClientHttp2Session>>()
  #disposed = false

  /** A connected session to `up`; rejects when it cannot be reached (the caller answers 502). */
  get(up: NetUpstream): Promise<http2.ClientHttp2Session> {
    if (this.#disposed) return Promise.reject(new Error('the agent is stopping'))
    const key = `${up.text}|${up.verify}`
    const known = this.#sessions.get(key)
    if (known) return known
    const opening = new Promise<http2.ClientHttp2Session>((resolve, reject) => {
      const session = connectSession(up)
      const forget = () => {
        if (this.#sessions.get(key) === opening) this.#sessions.delete(key)
      }
      session.once('connect', () => resolve(session))
      session.on('error', (err) => {
        forget()
        reject(err)
      })
      session.on('goaway', forget)
      session.on('close', () => {
        forget()
        reject(new Error('the upstream closed the HTTP/2 connection'))
      })
    })
    // A rejected attempt is never reused (the next request dials again); avoid an unhandled rejection.
    opening.catch(() => {})
    this.#sessions.set(key, opening)
    return opening
  }

  dispose(): void {
    this.#disposed = true
    for (const s of this.#sessions.values()) s.then((session) => session.close(), () => {})
    this.#sessions.clear()
  }
}

/**
 * node:http2, loaded on first use: it adds several MB to the resident size of every process that
 * imports it, and the edge (the same binary) never needs it.
 */
function nodeHttp2(): typeof http2 {
  return process.getBuiltinModule('node:http2')
}

function connectSession(up: NetUpstream): http2.ClientHttp2Session {
  const { connect } = nodeHttp2()
  if (up.kind === 'unix') return connect('http://localhost', { createConnection: () => netConnect({ path: up.path }) })
  const host = hostText(up.host)
  if (!up.tls) return connect(`http://${host}:${up.port}`)
  return connect(`https://${host}:${up.port}`, {
    rejectUnauthorized: up.verify,
    ALPNProtocols: ['h2'],
    ...(isIP(up.host) ? {} : { servername: up.host }),
  })
}

export interface Http2ForwardContext extends ForwardContext {
  sessions: Http2Sessions
}

/**
 * One request on a session of its own, answered as a `Response` (the inspector's replay, which goes
 * straight to the upstream). Trailers are dropped, as a `Response` has no place for them.
 */
export async function requestHttp2Once(up: NetUpstream, request: { method: string; target: string; headers: [string, string][]; body: Uint8Array | undefined }): Promise<Response> {
  const session = connectSession(up)
  try {
    await new Promise<void>((resolve, reject) => {
      session.once('connect', () => resolve())
      session.once('error', reject)
    })
    const head: RequestHead = {
      method: request.method,
      target: request.target,
      minor: 1,
      headers: request.headers.map(([n, v]) => [n.toLowerCase(), v]),
      contentLength: request.body?.length ?? -1,
      chunked: false,
      close: false,
      trailers: false,
      upgrade: false,
    }
    const stream = session.request(h2RequestHeaders(head, up), { endStream: !request.body?.length })
    if (request.body?.length) stream.end(request.body)
    const [headers, chunks] = await Promise.all([
      new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
        stream.once('response', resolve)
        stream.once('error', reject)
      }),
      (async () => {
        const parts: Uint8Array[] = []
        for await (const chunk of stream) parts.push(chunk as Uint8Array)
        return parts
      })(),
    ])
    const out = new Headers()
    for (const [name, value] of Object.entries(headers)) {
      if (name.startsWith(':') || value === undefined) continue
      for (const v of Array.isArray(value) ? value : [value]) out.append(name, String(v))
    }
    return new Response(Buffer.concat(chunks), { status: Number(headers[':status'] ?? 502), headers: out })
  } finally {
    session.close()
  }
}

/** Request fields HTTP/2 forbids or that describe the edge→agent hop (RFC 9113 §8.2.2). */
const DROPPED: ReadonlySet<string> = new Set([...HOP_BY_HOP, 'host', 'expect', 'http2-settings'])

/** The HTTP/2 request headers for an HTTP/1.1 request: Host becomes `:authority`, hop-by-hop fields go. */
export function h2RequestHeaders(head: RequestHead, up: NetUpstream): http2.OutgoingHttpHeaders {
  let path = head.target
  let authority = head.headers.find(([n]) => n === 'host')?.[1]
  if (!path.startsWith('/') && path !== '*') {
    // absolute-form: its authority wins over Host (RFC 9112 §3.2.2).
    const url = new URL(path)
    authority = url.host
    path = url.pathname + url.search
  }
  const out: http2.OutgoingHttpHeaders = {
    ':method': head.method,
    ':scheme': up.kind === 'net' && up.tls ? 'https' : 'http',
    ':authority': authority ?? (up.kind === 'net' ? `${hostText(up.host)}:${up.port}` : 'localhost'),
    ':path': path,
  }
  for (const [name, value] of head.headers) {
    if (DROPPED.has(name)) continue
    const prior = out[name]
    if (prior === undefined) out[name] = value
    else if (name === 'cookie') out[name] = `${prior}; ${value}`
    else if (name === 'set-cookie') out[name] = [...(Array.isArray(prior) ? prior : [String(prior)]), value]
    else out[name] = `${prior}, ${value}`
  }
  // gRPC servers check `te: trailers`, which the edge drops as hop-by-hop.
  if (head.trailers || String(out['content-type'] ?? '').startsWith('application/grpc')) out.te = 'trailers'
  return out
}

const encoder = new TextEncoder()

function fieldLines(headers: http2.IncomingHttpHeaders, skip: (name: string) => boolean): string {
  let text = ''
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith(':') || skip(name) || value === undefined) continue
    for (const v of Array.isArray(value) ? value : [value]) text += `${name}: ${v}\r\n`
  }
  return text
}

/**
 * Serves one proxy stream of an endpoint with an HTTP/2 upstream: reads the HTTP/1.1 requests the
 * edge sends (keep-alive, one at a time), sends each as an HTTP/2 request on the upstream's shared
 * session, and writes the answer back as HTTP/1.1: the status, the headers, the body streamed (with
 * its Content-Length, else chunked) and, when the request said `TE: trailers`, the upstream's
 * trailers as chunked trailer fields (otherwise they are dropped: HTTP/1.1 has nowhere else to put
 * them). An upstream that cannot be reached gets the same 502 page as HTTP/1 upstreams.
 */
export function forwardHttp2(stream: MuxStream, first: Uint8Array, ctx: Http2ForwardContext): void {
  const up = ctx.upstream
  const startedAt = Date.now()
  let bytesIn = 0
  let bytesOut = 0
  let buf: Uint8Array = new Uint8Array(0)
  let state: 'head' | 'body' | 'wait' | 'done' = 'head'
  let exchange: Exchange | undefined
  let ended = false
  let closed = false
  const out = new StreamWriter(stream)

  function send(bytes: Uint8Array): void {
    bytesOut += bytes.length
    ctx.observer?.upstream(bytes)
    out.write(bytes)
  }

  /** Answers with the agent's own page and closes the connection (nothing after it is read). */
  function answerError(status: number, accept: string, message: string, code?: string): void {
    const [head, body] = errorResponse(status, accept, { message, upstream: up.text, ...(code ? { code } : {}) })
    send(head)
    if (exchange?.head.method !== 'HEAD') send(body)
    finishConnection()
  }

  function finishConnection(): void {
    if (state === 'done') return
    state = 'done'
    buf = new Uint8Array(0)
    out.end()
  }

  stream.ondata = (chunk) => {
    bytesIn += chunk.length
    ctx.observer?.client(chunk)
    if (state === 'done') return
    buf = concat(buf, chunk)
    pump()
  }
  stream.onend = () => {
    ended = true
    pump()
  }
  stream.onclose = () => {
    closed = true
    exchange?.cancel()
    ctx.onDone?.({ bytesIn, bytesOut, startedAt, endedAt: Date.now(), endpoint: ctx.endpoint, clientAddr: ctx.clientAddr })
    ctx.onStreamClosed?.()
  }

  function pump(): void {
    while (!closed && state !== 'done') {
      if (state === 'head') {
        if (buf.length === 0) {
          if (ended) finishConnection()
          return
        }
        const end = findHeadEnd(buf, 0)
        if (end === -1) {
          if (buf.length > MAX_REQUEST_HEAD) return answerError(431, '', 'The request head is too large.', CODES.BAD_REQUEST)
          if (ended) finishConnection()
          return
        }
        let head: RequestHead
        try {
          head = parseRequestHead(new TextDecoder('latin1').decode(buf.subarray(0, end)))
        } catch (err) {
          if (!(err instanceof RequestHeadError)) throw err
          return answerError(400, '', `The warren agent could not read the request: ${err.message}.`, CODES.BAD_REQUEST)
        }
        buf = buf.subarray(end)
        const accept = head.headers.find(([n]) => n === 'accept')?.[1] ?? ''
        if (head.upgrade || head.method === 'CONNECT')
          return answerError(501, accept, `${head.upgrade ? 'Upgrades (websockets)' : 'CONNECT'} cannot be forwarded to the HTTP/2 upstream ${up.text}.`)
        exchange = new Exchange(head, accept)
        state = head.chunked || head.contentLength > 0 ? 'body' : 'wait'
        if (state === 'wait') exchange.endBody()
        continue
      }
      if (state === 'body') {
        const ex = exchange!
        if (buf.length === 0) {
          if (!ended) return
          ex.cancel()
          return finishConnection()
        }
        if (ex.decoder) {
          let n: number
          try {
            n = ex.decoder.push(buf, 0, (data) => ex.write(data))
          } catch (err) {
            ex.cancel()
            return answerError(400, ex.accept, `The warren agent could not read the request body: ${(err as Error).message}.`, CODES.BAD_REQUEST)
          }
          buf = buf.subarray(n)
          if (ex.decoder.done) {
            ex.endBody()
            state = 'wait'
          }
        } else {
          const n = Math.min(ex.remaining, buf.length)
          ex.write(buf.subarray(0, n))
          ex.remaining -= n
          buf = buf.subarray(n)
          if (ex.remaining === 0) {
            ex.endBody()
            state = 'wait'
          }
        }
        continue
      }
      // 'wait': the answer to the current request comes first; later bytes stay in `buf`.
      return
    }
  }

  /** One request/response on the upstream session. */
  class Exchange {
    readonly head: RequestHead
    readonly accept: string
    readonly decoder: ChunkedDecoder | undefined
    remaining: number
    #req: http2.ClientHttp2Stream | undefined
    #pending: Uint8Array[] = []
    #bodyEnded = false
    #headSent = false
    #finished = false
    #chunked = false
    #trailers: http2.IncomingHttpHeaders | undefined

    constructor(head: RequestHead, accept: string) {
      this.head = head
      this.accept = accept
      this.decoder = head.chunked ? new ChunkedDecoder() : undefined
      this.remaining = Math.max(head.contentLength, 0)
      // Hold the body (and the edge's window) until the session is there.
      stream.pause()
      ctx.sessions.get(up as NetUpstream).then(
        (session) => this.#start(session),
        (err) => this.#fail(err),
      )
    }

    #start(session: http2.ClientHttp2Session): void {
      if (this.#finished || closed) return
      let req: http2.ClientHttp2Stream
      try {
        req = session.request(h2RequestHeaders(this.head, up as NetUpstream), { endStream: false })
      } catch (err) {
        return this.#fail(err)
      }
      this.#req = req
      req.on('response', (headers) => this.#respond(headers))
      req.on('data', (chunk: Buffer) => this.#body(chunk))
      req.on('trailers', (trailers) => (this.#trailers = trailers))
      req.on('end', () => this.#end())
      req.on('error', (err) => this.#fail(err))
      req.on('close', () => {
        if (!this.#finished) this.#fail(new Error(`the upstream reset the HTTP/2 stream (code ${req.rstCode})`))
      })
      for (const chunk of this.#pending) this.write(chunk)
      this.#pending = []
      if (this.#bodyEnded) req.end()
      stream.resume()
    }

    write(data: Uint8Array): void {
      const req = this.#req
      if (!req) return void this.#pending.push(data)
      if (!req.write(data)) {
        stream.pause()
        req.once('drain', () => stream.resume())
      }
    }

    endBody(): void {
      this.#bodyEnded = true
      this.#req?.end()
    }

    cancel(): void {
      this.#finished = true
      if (this.#req && !this.#req.closed) this.#req.close(nodeHttp2().constants.NGHTTP2_CANCEL)
    }

    #respond(headers: http2.IncomingHttpHeaders): void {
      if (this.#finished) return
      const status = Number(headers[':status'])
      const noBody = this.head.method === 'HEAD' || status === 204 || status === 304
      const length = headers['content-length']
      this.#chunked = !noBody && (length === undefined || !/^\d+$/.test(length))
      const close = this.head.close
      const skip = (name: string) => HOP_BY_HOP.includes(name) || (this.#chunked && name === 'content-length')
      const text =
        `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
        fieldLines(headers, skip) +
        (this.#chunked ? 'transfer-encoding: chunked\r\n' : '') +
        (close ? 'connection: close\r\n' : '') +
        '\r\n'
      this.#headSent = true
      send(encoder.encode(text))
    }

    #body(chunk: Buffer): void {
      if (this.#finished || !this.#headSent || chunk.length === 0) return
      const bytes = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length)
      if (this.#chunked) send(encoder.encode(`${chunk.length.toString(16)}\r\n`))
      send(bytes)
      if (this.#chunked) send(encoder.encode('\r\n'))
      if (out.queued > HIGH_WATER) {
        const req = this.#req!
        req.pause()
        out.onflushed = () => {
          out.onflushed = () => {}
          req.resume()
        }
      }
    }

    #end(): void {
      if (this.#finished) return
      if (!this.#headSent) return this.#fail(new Error('the upstream ended the stream without a response'))
      this.#finished = true
      if (this.#chunked) {
        let trailer = ''
        if (this.#trailers) {
          if (this.head.trailers) trailer = fieldLines(this.#trailers, (n) => HOP_BY_HOP.includes(n) || n === 'content-length')
          else ctx.log.debug('upstream trailers dropped: the request did not say "TE: trailers"', { endpoint: ctx.endpoint, trailers: Object.keys(this.#trailers).join(',') })
        }
        send(encoder.encode(`0\r\n${trailer}\r\n`))
      }
      exchange = undefined
      // An answer before the whole request body arrived leaves the rest of that body unread: the
      // connection cannot carry another request.
      if (this.head.close || !this.#bodyEnded) {
        this.cancel()
        return finishConnection()
      }
      state = 'head'
      pump()
    }

    #fail(err: unknown): void {
      if (this.#finished) return
      this.#finished = true
      if (this.#req && !this.#req.closed) this.#req.close(nodeHttp2().constants.NGHTTP2_CANCEL)
      if (closed) return
      const why = describeDialError(err)
      ctx.log.warn('upstream unreachable', { endpoint: ctx.endpoint, upstream: up.text, error: why, code: CODES.UPSTREAM_REFUSED })
      // Mid-response there is no way to say so in HTTP/1.1 but to cut the connection.
      if (this.#headSent) return stream.terminate()
      stream.resume()
      answerError(502, this.accept, `The warren agent could not reach the upstream ${up.text}: ${why}.`)
    }
  }

  if (first.length) stream.ondata(first)
}
