import type { Server } from 'bun'
import { Hono } from 'hono'
import { Http1Connection, type Http1Options, type Http1Socket } from '../http1/connection.ts'
import { CODES } from '../lib/errors.ts'
import { log } from '../lib/log.ts'
import { throttledLog } from '../lib/throttled-log.ts'
import { errorResponse } from '../proxy/errors.ts'
import type { ClientAddress, PipelineOptions } from '../proxy/pipeline.ts'
import { closesConnection, createPipeline, splitHost } from '../proxy/pipeline.ts'
import { createRelayRoute, RelayStats } from '../proxy/relay-route.ts'
import { websocketHandlers, type WsData } from '../proxy/websocket.ts'
import { PendingGate, type PendingLimits } from './pending-gate.ts'

export interface HttpListenerOptions extends Omit<PipelineOptions, 'serverIp' | 'serverPort' | 'log'> {
  hostname: string
  port: number
  /** SO_REUSEPORT: the worker processes of `warren serve --workers` listen on the same port. */
  reusePort?: boolean
  idleTimeoutSec: number
  /** Time a request head may take, and a request body may go silent (default 30 s). */
  readTimeoutSec?: number
  maxBodyBytes: number
  /** Address shown in logs instead of hostname:port (the public side of an internal server). */
  serverIp?: string
  serverPort?: number
  /**
   * ACME HTTP-01: for `GET /.well-known/acme-challenge/<token>`, the key authorization when `host`
   * (lower-case, no port) is being validated with that token. Undefined lets the request through to
   * the endpoints, so the path is only taken over while a validation runs. A promise when the answer
   * is looked up elsewhere (another node's or worker's order).
   */
  acmeChallenge?: (host: string, token: string) => string | undefined | Promise<string | undefined>
  /**
   * Caps on connections that have not sent a whole request head yet (`http.max_pending`,
   * `http.max_pending_per_ip`); more are refused at accept. Unset for the internal server behind
   * terminate-tls, whose connections all come from the edge itself.
   */
  pending?: PendingLimits
  /**
   * Serve TLS with this certificate (ALPN http/1.1): the TLS front relays the HTTPS connections whose
   * ALPN did not choose h2 to the listener holding their certificate. Bun.listen takes one
   * certificate per listener, so the front starts one per certificate in use.
   */
  tls?: { cert: string; key: string }
  /**
   * The client an engine connection stands for, where its socket's peer is the TLS front's relay:
   * what `clientAddress` answers for a request, for the byte relay, which has none.
   */
  connectionClient?: (conn: Http1Connection) => ClientAddress | null
  /** Counts the relayed requests; shared by the listeners of one edge (plaintext and HTTPS/1.1). */
  relayStats?: RelayStats
}

/** The plaintext HTTP/1 listener as the rest of the edge sees it. */
export interface HttpServer {
  readonly port: number
  /** Requests being served now (for shutdown reporting). */
  readonly pendingRequests: number
  /** Requests the engine's byte relay served (the fast path, src/http1/relay.ts) since start, by every listener sharing its `relayStats`. */
  readonly relayedRequests: number
  /** Stops accepting; closes idle connections, and the rest after their current response (or at once with `force`). */
  stop(force?: boolean): Promise<void>
}

const ACME_PREFIX = '/.well-known/acme-challenge/'
/** ALPN as Bun.listen wants it: the wire format (length-prefixed names). */
const ALPN_HTTP1 = Buffer.from('\x08http/1.1', 'latin1')
/** Header lines a request may carry (beyond: 431). */
const MAX_HEADER_LINES = 100

/** The answer to an ACME HTTP-01 validation: the key authorization as plain text. */
function challengeAnswer(text: string): Response {
  return new Response(text, { headers: { 'content-type': 'text/plain; charset=utf-8' } })
}

/**
 * The HTTP/1.1 engine's connections as a listener keeps them: each request handed to the endpoint
 * data path, the pending gate, and stop. `listenHttp` feeds it the sockets of its own `Bun.listen`;
 * the TLS front feeds it the TLS sockets it terminates itself.
 */
export interface HttpEngine {
  /** A new connection on `socket`; undefined when the pending gate refused it (the socket is closed). */
  accept(socket: Http1Socket): Http1Connection | undefined
  data(conn: Http1Connection, chunk: Buffer, socket: Http1Socket): void
  closed(conn: Http1Connection): void
  readonly pendingRequests: number
  readonly relayedRequests: number
  /** Closes idle connections, and the rest after their current response (or at once with `force`). */
  stop(force: boolean): Promise<void>
}

/** The engine for `options`; `serverPort` is the port logs and `conn.server_port` show. */
export function createHttpEngine(options: Omit<HttpListenerOptions, 'hostname' | 'port' | 'reusePort' | 'tls'> & { serverIp: string; serverPort: number }): HttpEngine {
  const logger = log.child({ component: options.scheme })
  const relayStats = options.relayStats ?? new RelayStats()
  let pending = 0
  const connections = new Set<Http1Connection>()
  let stopped: (() => void) | undefined
  const acmeChallenge = options.acmeChallenge
  const gate = options.pending && new PendingGate(options.pending)
  const limitLog = throttledLog(logger)
  /** Connections still waiting for their first whole request head, with the address they count under. */
  const waiting = new Map<Http1Connection, string>()
  const settle = (conn: Http1Connection) => {
    const ip = waiting.get(conn)
    if (ip === undefined) return
    waiting.delete(conn)
    gate?.release(ip)
  }
  const handle = createPipeline({ ...options, log: logger })
  const route = createRelayRoute(
    {
      ...options,
      log: logger,
      ...(acmeChallenge ? { reserved: (path: string) => path.startsWith(ACME_PREFIX) } : {}),
    },
    relayStats,
  )
  const engine: Http1Options = {
    limits: { maxHeadBytes: options.maxHeaderBytes, maxHeaders: MAX_HEADER_LINES },
    idleTimeoutMs: options.idleTimeoutSec * 1000,
    readTimeoutMs: (options.readTimeoutSec ?? 30) * 1000,
    maxBodyBytes: options.maxBodyBytes,
    handle(req, source) {
      settle(source)
      pending++
      if (acmeChallenge && req.method === 'GET') {
        const url = new URL(req.url)
        const token = url.pathname.startsWith(ACME_PREFIX) ? url.pathname.slice(ACME_PREFIX.length) : ''
        const answer = token && !token.includes('/') ? acmeChallenge(splitHost(req.headers.get('host') ?? url.host, 0).name, token) : undefined
        if (typeof answer === 'string') return Promise.resolve(challengeAnswer(answer))
        // Another node's or worker's validation: the answer comes from Redis or the supervisor.
        if (answer) return answer.then((text) => (text === undefined ? handle(req, source) : challengeAnswer(text)))
      }
      return handle(req, source)
    },
    // The fast path serves the public plaintext port, and HTTPS/1.1 behind the TLS front (which tells
    // each connection's client and handshake); any other internal server keeps the pipeline.
    ...((options.scheme === 'http' && !options.clientAddress) || options.connectionClient
      ? {
          relay(head, source) {
            const target = route(head, source)
            if (target) {
              settle(source)
              pending++
            }
            return target
          },
        }
      : {}),
    closes: closesConnection,
    errorPage: errorResponse,
    onRequestDone() {
      pending--
    },
    onError(err) {
      logger.error('request failed', { error: err instanceof Error ? err.stack : String(err) })
    },
  }
  return {
    accept(socket) {
      const conn = new Http1Connection(socket, engine)
      if (gate) {
        const ip = socket.remoteAddress
        if (!gate.admit(ip)) {
          limitLog('warn', 'too many connections without a whole request head; refused', { client_ip: ip, code: CODES.HTTP_PENDING_LIMIT, pending: gate.pending })
          socket.terminate()
          return undefined
        }
        waiting.set(conn, ip)
      }
      connections.add(conn)
      return conn
    },
    data(conn, chunk, socket) {
      try {
        conn.data(chunk)
      } catch (err) {
        logger.error('connection failed', { error: err instanceof Error ? err.stack : String(err) })
        socket.terminate()
      }
    },
    closed(conn) {
      conn.closed()
      settle(conn)
      connections.delete(conn)
      if (stopped && connections.size === 0) stopped()
    },
    get pendingRequests() {
      return pending
    },
    get relayedRequests() {
      return relayStats.relayed
    },
    stop(force) {
      if (force || connections.size === 0) return Promise.resolve()
      const done = new Promise<void>((resolve) => (stopped = resolve))
      for (const conn of connections) conn.closeWhenIdle()
      return done
    },
  }
}

/**
 * warren's HTTP/1.1 engine (src/http1) on `Bun.listen`: the plaintext listener, the internal
 * plaintext server behind terminate-tls, and (with `tls`) the internal HTTPS/1.1 servers the TLS
 * front relays into when it cannot terminate a connection itself.
 */
export function listenHttp(options: HttpListenerOptions): HttpServer {
  let engine: HttpEngine | undefined
  const listener = Bun.listen<Http1Connection | undefined>({
    hostname: options.hostname,
    port: options.port,
    ...(options.reusePort ? { reusePort: true } : {}),
    ...(options.tls ? { tls: { ...options.tls, ALPNProtocols: ALPN_HTTP1 } } : {}),
    socket: {
      open(socket) {
        socket.data = engine!.accept(socket)
      },
      data(socket, chunk) {
        if (socket.data) engine!.data(socket.data, chunk, socket)
      },
      drain(socket) {
        socket.data?.drain()
      },
      close(socket) {
        if (socket.data) engine!.closed(socket.data)
      },
      error(socket) {
        socket.data?.closed()
      },
    },
  })
  engine = createHttpEngine({ ...options, serverIp: options.serverIp ?? options.hostname, serverPort: options.serverPort ?? listener.port })
  return {
    port: listener.port,
    get pendingRequests() {
      return engine!.pendingRequests
    },
    get relayedRequests() {
      return engine!.relayedRequests
    },
    stop(force = false) {
      listener.stop(force)
      return engine!.stop(force)
    },
  }
}

type Env = { Bindings: { server: Server<WsData> } }

/**
 * The internal HTTP/2 server the TLS front hands connections whose ClientHello offered h2 to:
 * Bun.serve, which picks h2 by ALPN (the HTTP/1.1 engine does not speak h2).
 */
export function listenH2(options: Omit<HttpListenerOptions, 'tls'> & { tls: { cert: string; key: string; serverName?: string }[] }): Server<WsData> {
  const logger = log.child({ component: options.scheme })
  let handle: ReturnType<typeof createPipeline> | undefined
  const app = new Hono<Env>()
  app.all('*', (c) => handle!(c.req.raw, c.env.server))
  app.onError((err, c) => {
    logger.error('request failed', { error: err instanceof Error ? err.stack : String(err) })
    return errorResponse(500, CODES.INTERNAL, 'The edge failed to handle this request.', c.req.header('accept'))
  })
  const server = Bun.serve<WsData>({
    hostname: options.hostname,
    port: options.port,
    // Bun.serve caps its idle timeout at 255 s.
    idleTimeout: Math.min(options.idleTimeoutSec, 255),
    maxRequestBodySize: options.maxBodyBytes,
    fetch: (req, srv) => app.fetch(req, { server: srv }),
    websocket: websocketHandlers,
    tls: options.tls,
    http2: true,
  })
  handle = createPipeline({
    ...options,
    serverIp: options.serverIp ?? options.hostname,
    serverPort: options.serverPort ?? server.port ?? options.port,
    log: logger,
  })
  return server
}
