import type { Server, Socket, SocketHandler } from 'bun'
import { STATUS_CODES } from 'node:http'
import { isIP } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CODES, ERROR_CODE_HEADER } from '../lib/errors.ts'
import type { Logger } from '../lib/log.ts'
import { Relay, type RelayStats } from '../proxy/tcp-relay.ts'
import type { MuxStream } from '../tunnel/mux.ts'
import { MuxError } from '../tunnel/proto/frame.ts'
import { fileServer } from './file-server.ts'
import { concat, indexOfBytes, StreamWriter } from './stream-io.ts'
import type { EndpointKind, Upstream } from './upstream.ts'

/** How long an HTTP stream waits for the request head before the agent answers 502 anyway. */
const HEAD_WAIT_MS = 2000
/** Request-head bytes kept for that answer (only the Accept header is read). */
const HEAD_LIMIT = 64 * 1024

/** One finished connection, for logs and counters. */
export interface ConnectionDone extends RelayStats {
  endpoint: string
  clientAddr: string
}

/**
 * Serves `file://` upstreams: one local HTTP server per root (and dotfiles setting) on a unix
 * socket in a private directory (0700), so the proxy stream is relayed to it like to any HTTP upstream.
 */
export class FileServers {
  #dir: string | undefined
  readonly #servers = new Map<string, { path: string; server: Server<undefined> }>()

  /** The socket serving this upstream, started on first use. */
  socketFor(upstream: Extract<Upstream, { kind: 'file' }>): string {
    const key = `${upstream.dotfiles ? 'dotfiles' : 'plain'}\0${upstream.root}`
    const known = this.#servers.get(key)
    if (known) return known.path
    this.#dir ??= mkdtempSync(join(tmpdir(), 'warren-agent-'))
    const path = join(this.#dir, `files-${this.#servers.size}.sock`)
    const server = Bun.serve({ unix: path, fetch: fileServer(upstream.root, { dotfiles: upstream.dotfiles }) }) as Server<undefined>
    this.#servers.set(key, { path, server })
    return path
  }

  dispose(): void {
    for (const { server } of this.#servers.values()) void server.stop(true)
    this.#servers.clear()
    if (this.#dir) rmSync(this.#dir, { recursive: true, force: true })
    this.#dir = undefined
  }
}

export interface ForwardContext {
  /** The endpoint's URL (for logs). */
  endpoint: string
  kind: EndpointKind
  upstream: Upstream
  files: FileServers
  log: Logger
  /** The client's address from the proxy header. */
  clientAddr: string
  onDone?: (done: ConnectionDone) => void
  /** The proxy stream is gone (whether or not the upstream was reached). */
  onStreamClosed?: () => void
  /** Sees every byte of the connection (idle detection at shutdown, the inspector's capture). */
  observer?: StreamObserver
  /**
   * The endpoint has pooling enabled: an unreachable upstream refuses the stream instead of answering
   * 502, so the edge can send the request to another member (it answers the 502 itself otherwise).
   */
  pooled?: boolean
}

/** Watches a proxied connection's bytes without changing them. */
export interface StreamObserver {
  /** Bytes from the public client, toward the upstream. */
  client(chunk: Uint8Array): void
  /** Bytes toward the client: the upstream's, or the agent's own 502 answer. */
  upstream(chunk: Uint8Array): void
}

type UpstreamData = { relay: Relay | undefined; observer: StreamObserver | undefined }

/** Opens the upstream connection; resolves once it can carry bytes (after the TLS handshake for TLS). */
async function dial(up: Upstream, files: FileServers, data: UpstreamData): Promise<Socket<UpstreamData>> {
  const tls = up.kind === 'file' ? false : up.tls
  const verify = up.kind === 'file' ? false : up.verify
  return await new Promise<Socket<UpstreamData>>((resolve, reject) => {
    let ready = false
    const done = (socket: Socket<UpstreamData>) => {
      if (ready) return
      ready = true
      resolve(socket)
    }
    const fail = (err: Error) => {
      if (ready) return
      ready = true
      reject(err)
    }
    const socket: SocketHandler<UpstreamData> = {
      open(socket) {
        if (!tls) done(socket)
      },
      handshake(socket, success, err) {
        if (success && (!verify || !err)) done(socket)
        else {
          fail(new Error(`TLS handshake with the upstream failed: ${err?.message ?? 'unknown error'}`))
          socket.terminate()
        }
      },
      data(s, chunk) {
        s.data.observer?.upstream(chunk)
        s.data.relay?.fromUpstream(chunk)
      },
      drain: (s) => s.data.relay?.upstreamDrained(),
      end: (s) => s.data.relay?.upstreamEnded(),
      close(s) {
        fail(new Error('the upstream closed the connection'))
        s.data.relay?.upstreamClosed()
      },
      error(_s, err) {
        fail(err)
      },
      connectError(_s, err) {
        fail(err)
      },
    }
    const tlsOptions = tls
      ? { tls: { rejectUnauthorized: verify, ...(up.kind === 'net' && !isIP(up.host) ? { serverName: up.host } : {}) } }
      : {}
    const connecting =
      up.kind === 'net'
        ? Bun.connect<UpstreamData>({ hostname: up.host, port: up.port, data, socket, ...tlsOptions })
        : Bun.connect<UpstreamData>({ unix: up.kind === 'unix' ? up.path : files.socketFor(up), data, socket, ...tlsOptions })
    connecting.catch(fail)
  })
}

/** A dial error in words for logs and the 502 page. */
export function describeDialError(err: unknown): string {
  const e = err as { code?: string; message?: string }
  if (e?.code === 'ECONNREFUSED') return 'connection refused'
  if (e?.code === 'ENOENT') return 'no such socket'
  if (e?.code === 'ENOTFOUND' || e?.code === 'EAI_NONAME') return 'host not found'
  return e?.message ?? String(err)
}

/**
 * Carries one proxy stream to the upstream: bytes are relayed both ways with backpressure (the HTTP
 * the edge sends is passed through unchanged, as ngrok's agent does). When the upstream cannot be
 * reached, an HTTP endpoint's client gets a 502 page with the error code; tcp/tls streams, and those
 * of pooled endpoints, are refused (StreamRefused: nothing was read, so the edge may try another member).
 */
export function forwardStream(stream: MuxStream, first: Uint8Array, ctx: ForwardContext): void {
  // Hold the client's bytes (and its window) until the upstream answers.
  let early = first.length ? [first] : []
  if (first.length) ctx.observer?.client(first)
  let ended = false
  let closed = false
  stream.pause()
  stream.ondata = (chunk) => {
    ctx.observer?.client(chunk)
    early.push(chunk)
  }
  stream.onend = () => (ended = true)
  stream.onclose = () => {
    closed = true
    ctx.onStreamClosed?.()
  }
  const data: UpstreamData = { relay: undefined, observer: ctx.observer }

  dial(ctx.upstream, ctx.files, data).then(
    (socket) => {
      if (closed) return void socket.terminate()
      const relay = new Relay(stream, socket, (stats) => ctx.onDone?.({ ...stats, endpoint: ctx.endpoint, clientAddr: ctx.clientAddr }))
      data.relay = relay
      stream.ondata = (chunk) => {
        ctx.observer?.client(chunk)
        relay.fromClient(chunk)
      }
      stream.ondrain = () => relay.clientDrained()
      stream.onend = () => relay.clientEnded()
      stream.onclose = () => {
        relay.clientClosed()
        ctx.onStreamClosed?.()
      }
      for (const chunk of early) relay.fromClient(chunk)
      early = []
      stream.resume()
      if (ended) relay.clientEnded()
    },
    (err) => {
      const why = describeDialError(err)
      ctx.log.warn('upstream unreachable', { endpoint: ctx.endpoint, upstream: ctx.upstream.text, error: why, code: CODES.UPSTREAM_REFUSED })
      if (closed) return
      if (ctx.kind !== 'http' || ctx.pooled) return stream.terminate(MuxError.STREAM_REFUSED)
      answerBadGateway(stream, early, ended, ctx.upstream.text, why, ctx.observer)
    },
  )
}

/** Waits for the request head (to honour `Accept`), then writes a 502 page and closes. */
function answerBadGateway(stream: MuxStream, early: Uint8Array[], ended: boolean, upstream: string, why: string, observer: StreamObserver | undefined): void {
  let head = early.reduce(concat, new Uint8Array(0))
  let answered = false
  const answer = () => {
    if (answered) return
    answered = true
    clearTimeout(timer)
    const headText = new TextDecoder().decode(head.subarray(0, HEAD_LIMIT))
    const accept = /^accept:\s*(.*)$/im.exec(headText)?.[1] ?? ''
    const [responseHead, bytes] = errorResponse(502, accept, { message: `The warren agent could not reach the upstream ${upstream}: ${why}.`, upstream })
    const writer = new StreamWriter(stream)
    observer?.upstream(responseHead)
    observer?.upstream(bytes)
    writer.write(responseHead)
    writer.write(bytes)
    writer.end()
  }
  const timer = setTimeout(answer, HEAD_WAIT_MS)
  // Bytes after the answer (a request body) are read and dropped so the edge is never blocked.
  stream.ondata = (chunk) => {
    if (answered) return
    observer?.client(chunk)
    if (head.length < HEAD_LIMIT) head = concat(head, chunk)
    if (indexOfBytes(head, CRLF2) !== -1) answer()
  }
  stream.onend = answer
  stream.resume()
  if (ended || indexOfBytes(head, CRLF2) !== -1) answer()
}

const CRLF2 = new TextEncoder().encode('\r\n\r\n')

/**
 * The agent's own error answer (head, then body; `connection: close`): JSON when `accept` asks for
 * it, else an HTML page, both carrying `code` (default: the upstream could not be reached).
 */
export function errorResponse(status: number, accept: string, options: { message: string; upstream: string; code?: string }): [Uint8Array, Uint8Array] {
  const code = options.code ?? CODES.UPSTREAM_REFUSED
  const reason = STATUS_CODES[status] ?? 'Error'
  const json = /application\/json/i.test(accept)
  const body = json
    ? JSON.stringify({ error: { code, message: options.message, upstream: options.upstream } })
    : `<!doctype html><html><head><meta charset="utf-8"><title>${status} ${reason}</title></head><body><h1>${status} ${reason}</h1><p>${escapeHtml(options.message)}</p><p><code>${code}</code></p></body></html>\n`
  const bytes = new TextEncoder().encode(body)
  const head = new TextEncoder().encode(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: ${json ? 'application/json' : 'text/html; charset=utf-8'}\r\ncontent-length: ${bytes.length}\r\n${ERROR_CODE_HEADER}: ${code}\r\nconnection: close\r\ncache-control: no-store\r\n\r\n`,
  )
  return [head, bytes]
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}
