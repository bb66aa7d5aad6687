import type { Scheme } from '../config/url.ts'
import type { Endpoint } from '../endpoints/endpoint.ts'
import type { EndpointStore } from '../endpoints/store.ts'
import type { EndpointTable, Pool } from '../endpoints/table.ts'
import { httpRequestEvent } from '../events/traffic.ts'
import type { EventSink } from '../events/types.ts'
import { CODES } from '../lib/errors.ts'
import { carryLines, copyHeaders } from '../lib/header-lines.ts'
import type { Logger } from '../lib/log.ts'
import { runPhase } from '../policy/engine.ts'
import { CONTINUE, type ConnInfo, type EndpointInfo, type HttpExchange, type HttpResponseParts, type Routing, type TlsInfo } from '../policy/types.ts'
import { errorResponse } from './errors.ts'
import { eventStreamResponse } from './event-stream.ts'
import { setForwardedHeaders } from './forwarded.ts'
import { dropConnectionListed, isWebSocketUpgrade } from './hop-headers.ts'
import { forwardHttp, h1FailureResponse, sendH1 } from './http.ts'
import { misdirected } from './misdirected.ts'
import { attemptFailure, mayRetry, POOL_RETRIES, readReplayBody, replayStream, type AttemptFailure, type PoolRetryStats, type ReplayBody } from './pool-retry.ts'
import { tunnelOrigin } from './tunnel-http.ts'
import { isUpgraded, proxyWebSocket, proxyWebSocketToTunnel, type RequestSource } from './websocket.ts'

export interface PipelineOptions {
  store: EndpointStore
  scheme: Scheme
  /** Port a Host header without one stands for (public port, else the listener's). */
  defaultPort: number
  serverIp: string
  serverPort: number
  upstreamTimeoutMs: number
  maxHeaderBytes: number
  log: Logger
  logRequests: boolean
  /**
   * On the plaintext listener: an https:// endpoint without an http:// twin answers with a redirect to
   * this port (the public https port; 443 is left out of the URL). Undefined turns redirects off.
   */
  httpsRedirectPort?: number
  /**
   * The real client behind an internal hop, with the TLS handshake the edge saw when it has one and
   * the endpoint whose on_tcp_connect the TLS front already ran for the connection.
   */
  clientAddress?: (req: Request, server: RequestSource) => ClientAddress | null
  /** Receives one `http_request_complete.v0` per request, after its response head is ready. */
  events?: EventSink
  /** Counts requests sent again to another pool member (see pool-retry.ts). */
  poolRetries?: PoolRetryStats
}

/** Who a request came from, as the listener knows it. */
export interface ClientAddress {
  address: string
  port: number
  tls?: TlsInfo
  connected?: Endpoint
}

/** Splits a Host header into lower-case name and port (IPv6 literals in brackets kept whole). */
export function splitHost(host: string, defaultPort: number): { name: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(host)
  if (!m) return { name: host.toLowerCase(), port: defaultPort }
  return { name: m[1]!.toLowerCase().replace(/\.$/, ''), port: m[2] ? Number(m[2]) : defaultPort }
}

function headerBytes(req: Request): number {
  let n = req.method.length + req.url.length + 12
  req.headers.forEach((value, name) => (n += name.length + value.length + 4))
  return n
}

/**
 * The URL of a refused request, for its event. Bun builds `req.url` from the Host header, so an empty
 * or malformed Host (refused with 400 or 404) makes it unparseable: the event then keeps the path.
 */
function refusedUrl(req: Request): URL {
  const parsed = URL.parse(req.url)
  if (parsed) return parsed
  // Through the setter: a path like `/\` parsed against a base turns into `//`, an empty authority.
  const url = new URL('http://invalid/')
  url.pathname = req.url.replace(/^[a-z]+:\/\/[^/]*/i, '').split(/[?#]/, 1)[0]!
  return url
}

/**
 * The HTTP data path for one listener: Host → endpoint, on_http_request, forward, on_http_response.
 * Each request reads the table once, so a reload mid-request never changes its endpoint or policy.
 */
export function createPipeline(options: PipelineOptions) {
  const { store, log, events } = options
  /** Publishes a request that ended before reaching an endpoint's policy. */
  const refused = (req: Request, server: RequestSource, started: number, response: Response, host = '', port = options.defaultPort): Response => {
    if (!events) return response
    const client = options.clientAddress ? options.clientAddress(req, server) : server.requestIP(req)
    const conn = { clientIp: client?.address ?? '', clientPort: client?.port ?? 0, serverIp: options.serverIp, serverPort: options.serverPort }
    events.emit(httpRequestEvent({ req, url: refusedUrl(req), host, port, conn, endpoint: undefined, started, response, closed: false }))
    return response
  }
  /** The retry state of one request whose body can be sent again (pool-retry.ts has the rule). */
  const poolRetry = (pool: Pool, req: Request, url: URL): PoolRetry => {
    const retry: PoolRetry = {
      tried: new Set(),
      sentUrl: url.href,
      next: undefined,
      failure: undefined,
      possible: () => retry.tried.size <= POOL_RETRIES && pool.members.some((m) => !retry.tried.has(m) && (m.tunnel?.online ?? true)),
      take(from, failure) {
        if (retry.tried.size > POOL_RETRIES || !mayRetry(req.method, failure)) return false
        retry.next = pool.pickOther(retry.tried)
        if (!retry.next) return false
        retry.failure = failure
        options.poolRetries?.count(from.urlText, failure.reason)
        log.warn('pool member failed before answering; retrying on another member', {
          endpoint: from.urlText,
          member: from.id,
          retry_member: retry.next.id,
          reason: failure.reason,
          request_sent: !failure.unsent,
          method: req.method,
          path: url.pathname,
        })
        return true
      },
    }
    return retry
  }
  return async function handleHttp(req: Request, server: RequestSource): Promise<Response> {
    const started = performance.now()
    const accept = req.headers.get('accept')
    if (headerBytes(req) > options.maxHeaderBytes)
      return refused(req, server, started, errorResponse(431, CODES.HEADERS_TOO_LARGE, 'Request headers are too large.', accept))
    const hostHeader = req.headers.get('host')
    // Several Host headers arrive joined by commas; RFC 9112 says answer 400, never guess which one.
    if (!hostHeader || hostHeader.includes(','))
      return refused(req, server, started, errorResponse(400, CODES.BAD_REQUEST, 'The request needs exactly one Host header.', accept))
    const { name, port } = splitHost(hostHeader, options.defaultPort)
    const table = store.current
    const pool = table.lookup({ account: '', binding: 'public', scheme: options.scheme, host: name, port })
    const client: ClientAddress | null = options.clientAddress ? options.clientAddress(req, server) : server.requestIP(req)
    const tls = client?.tls
    // https is only served behind the TLS front, so every request here came through a handshake.
    if (options.scheme === 'https' && misdirected(table, pool, tls, options.defaultPort)) {
      const res = errorResponse(421, CODES.MISDIRECTED_REQUEST, `This connection cannot serve ${name}: open a new one for it.`, accept)
      if (options.logRequests) log.info('request', { host: name, sni: tls?.sni ?? '', method: req.method, status: 421, code: CODES.MISDIRECTED_REQUEST })
      return refused(req, server, started, res, name, port)
    }
    if (!pool && options.httpsRedirectPort !== undefined) {
      const https = store.current.lookup({ account: '', binding: 'public', scheme: 'https', host: name, port: options.httpsRedirectPort })
      if (https) {
        const url = new URL(req.url)
        const port = options.httpsRedirectPort === 443 ? '' : `:${options.httpsRedirectPort}`
        return refused(req, server, started, new Response(null, { status: 308, headers: { location: `https://${name}${port}${url.pathname}${url.search}` } }), name, options.defaultPort)
      }
    }
    if (!pool) {
      const res = errorResponse(404, CODES.ENDPOINT_NOT_FOUND, `The endpoint ${name} is offline.`, accept)
      if (options.logRequests) log.info('request', { host: name, method: req.method, status: 404, code: CODES.ENDPOINT_NOT_FOUND })
      return refused(req, server, started, res, name, port)
    }
    const url = new URL(req.url)
    url.protocol = options.scheme + ':'
    const conn: ConnInfo = {
      clientIp: client?.address ?? '',
      clientPort: client?.port ?? 0,
      serverIp: options.serverIp,
      serverPort: options.serverPort,
      startedAt: Date.now(),
      ...(tls ? { tls } : {}),
    }
    const websocket = isWebSocketUpgrade(req.headers)
    // A pool may send a failed request again to another member: only a body read whole can go twice.
    let replay: ReplayBody | undefined
    if (pool.members.length > 1 && !websocket && pool.members.some((m) => m.tunnel)) {
      try {
        replay = await readReplayBody(req)
      } catch {
        return refused(req, server, started, errorResponse(400, CODES.BAD_REQUEST, 'The request body ended early or did not match its length.', accept), name, port)
      }
    }
    // The client's Connection options go before anything reads or adds headers (hop-headers.ts).
    const headers = copyHeaders(req.headers)
    dropConnectionListed(headers)
    let endpoint = pool.pick()
    const retry = replay ? poolRetry(pool, req, url) : undefined
    let ex: HttpExchange
    let response: Response
    for (let attempt = 0; ; attempt++) {
      retry?.tried.add(endpoint)
      ex = {
        endpoint: endpoint.info,
        conn: attempt === 0 ? conn : { ...conn },
        // Bun.serve does not say which protocol a request came in on (the handshake does); the engine does.
        ...(tls?.alpn === 'h2' ? { httpVersion: 'HTTP/2.0' } : server.httpVersion ? { httpVersion: server.httpVersion(req) } : {}),
        method: req.method,
        url: attempt === 0 ? url : new URL(retry!.sentUrl),
        // Policies change headers in place: a retry starts again from the client's.
        headers: retry ? copyHeaders(headers) : headers,
        vars: {},
        actions: {},
        logMetadata: {},
        body: replay ? replayStream(replay) : req.body,
      }
      const scope: RequestScope = {
        req,
        server,
        hostHeader,
        entry: endpoint.info,
        table,
        account: endpoint.account,
        conn: ex.conn,
        timeoutMs: options.upstreamTimeoutMs,
        websocket,
        ...(retry ? { retry } : {}),
      }
      // on_tcp_connect runs once per connection and endpoint: the HTTP/1 engine remembers the endpoints
      // it ran for on each connection; the TLS front runs it for the endpoint the SNI selected before
      // the handshake (Bun.serve, which serves h2, hands over requests, not connections).
      const passed = server.connectedEndpoints
      let connect = CONTINUE
      if (endpoint.policy.on_tcp_connect.length && !passed?.has(endpoint) && client?.connected !== endpoint) {
        connect = await runPhase(endpoint.policy.on_tcp_connect, ex)
        if (connect.kind === 'continue') passed?.add(endpoint)
      }
      if (connect.kind === 'close') response = closeConnection()
      else if (connect.kind === 'respond') response = connect.response
      else response = await serveEndpoint(endpoint, ex, scope, [])
      const next = retry?.next
      if (!RETRY.has(response) || !next) break
      // The other member serves it from the start: its own on_tcp_connect and traffic policy run.
      endpoint = next
      retry.next = undefined
    }

    if (options.logRequests)
      log.info('request', {
        endpoint: endpoint.urlText,
        method: req.method,
        path: ex.url.pathname,
        status: CLOSING.has(response) ? 0 : isUpgraded(response) ? 101 : response.status,
        duration_ms: Math.round((performance.now() - started) * 100) / 100,
        client_ip: ex.conn.clientIp,
        ...(CLOSING.has(response) ? { closed: true } : {}),
        ...(retry?.failure ? { retried: retry.failure.reason } : {}),
        ...(Object.keys(ex.logMetadata).length ? { metadata: ex.logMetadata } : {}),
      })
    const answered = isUpgraded(response) ? { status: 101, headers: response.headers } : response
    events?.emit(httpRequestEvent({ req, url: ex.url, host: name, port, conn: ex.conn, endpoint, started, response: answered, closed: CLOSING.has(response), logMetadata: ex.logMetadata }))
    return response
  }
}

/** True for the response that stands for "drop the connection without answering". */
export function closesConnection(res: Response): boolean {
  return CLOSING.has(res)
}

/** Responses that end the request as they are: no on_http_response, no rebuilding (closed, upgraded). */
const FINAL = new WeakSet<Response>()
/** Responses that stand for "drop the connection". */
const CLOSING = new WeakSet<Response>()
/** Responses that stand for "another pool member takes this request"; never sent to a client. */
const RETRY = new WeakSet<Response>()

function retryMarker(): Response {
  const res = new Response(null, { status: 502 })
  RETRY.add(res)
  return res
}

/** A response that makes Bun reset the connection without writing a byte: its body errors before the first one. */
function closeConnection(): Response {
  const res = new Response(
    new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.error()
      },
    }),
  )
  FINAL.add(res)
  CLOSING.add(res)
  return res
}

/** How many internal endpoints one request may pass through (forward-internal and http-request). */
export const MAX_INTERNAL_DEPTH = 8

/** What one client request carries through every endpoint it visits. */
interface RequestScope {
  req: Request
  server: RequestSource
  /** The Host the client sent: upstreams get it, and Location headers naming a replaced Host get it back. */
  hostHeader: string
  /** The endpoint the request entered by (X-Forwarded-Proto follows its scheme). */
  entry: EndpointInfo
  table: EndpointTable
  /** Internal endpoints are looked up in this account's namespace only. */
  account: string
  conn: ConnInfo
  timeoutMs: number
  /** A websocket handshake from the client (side requests never are). */
  websocket: boolean
  /** Set on the request's entry pool: another member may take a request its agent failed (pool-retry.ts). */
  retry?: PoolRetry
}

interface PoolRetry {
  /** Members that had the request. */
  readonly tried: Set<Endpoint>
  /** The URL the client sent: a policy may change the exchange's URL in place, a retry starts from this. */
  readonly sentUrl: string
  /** The member `take` chose for the next attempt. */
  next: Endpoint | undefined
  /** Why the attempt before failed, once a retry was taken (for the request's log line). */
  failure: AttemptFailure | undefined
  /** Another online member could take the request if this attempt fails: do not wait for this one's agent. */
  possible(): boolean
  /** Asked when the agent failed before answering; true when another member takes the request instead. */
  take(from: Endpoint, failure: AttemptFailure): boolean
}

const defaultPorts = new WeakMap<EndpointTable, Map<string, number | undefined>>()

/** The port a URL without one means for `scheme`: what the table gave endpoint URLs without a port. */
function defaultPortOf(table: EndpointTable, scheme: string): number | undefined {
  let ports = defaultPorts.get(table)
  if (!ports) defaultPorts.set(table, (ports = new Map()))
  if (!ports.has(scheme)) ports.set(scheme, table.endpoints.find((e) => e.url.scheme === scheme && e.url.port === undefined)?.port)
  return ports.get(scheme)
}

function routingFor(scope: RequestScope, chain: readonly string[]): Routing {
  return {
    chain,
    resolveInternal(url) {
      const scheme = url.protocol.slice(0, -1).toLowerCase()
      const port = url.port ? Number(url.port) : defaultPortOf(scope.table, scheme)
      const name = `${scheme}://${url.host}`
      const pool =
        port === undefined ? undefined : scope.table.lookup({ account: scope.account, binding: 'internal', scheme: scheme as Scheme, host: url.hostname.toLowerCase(), port })
      if (!pool) return { error: { code: CODES.ENDPOINT_NOT_FOUND, message: `The internal endpoint ${name} is offline.` } }
      if (pool.members.some((m) => chain.includes(m.id)))
        return { error: { code: CODES.FORWARD_LOOP, message: `Forwarding to ${name} would loop: the request already passed through it.` } }
      if (chain.length > MAX_INTERNAL_DEPTH)
        return { error: { code: CODES.FORWARD_LOOP, message: `Forwarding to ${name} would pass through more than ${MAX_INTERNAL_DEPTH} internal endpoints.` } }
      return { endpoint: pool.pick() }
    },
    fetchInternal(endpoint, request) {
      return sideRequest(scope, chain, endpoint, request)
    },
  }
}

/** http-request to an internal endpoint: a fresh exchange through that endpoint's policy. */
async function sideRequest(scope: RequestScope, chain: readonly string[], endpoint: Endpoint, request: Request): Promise<Response> {
  const url = new URL(request.url)
  const headers = new Headers(request.headers)
  headers.set('host', url.host)
  const ex: HttpExchange = {
    endpoint: endpoint.info,
    conn: scope.conn,
    method: request.method,
    url,
    headers,
    vars: {},
    actions: {},
    logMetadata: {},
    body: request.body,
  }
  const res = await serveEndpoint(endpoint, ex, { ...scope, hostHeader: url.host, entry: endpoint.info, websocket: false }, chain)
  if (CLOSING.has(res)) throw new Error(`${endpoint.urlText} closed the connection`)
  return res
}

function notifyUpstream(ex: HttpExchange, status: number): void {
  const observers = ex.upstreamObservers
  if (!observers) return
  delete ex.upstreamObservers
  for (const observe of observers) observe(status)
}

/**
 * When add-headers replaced Host, an upstream's absolute redirect names that host; point it back at
 * the host the client used so the client stays on the edge.
 */
function rewriteLocation(headers: Headers, sentHost: string | null, scope: RequestScope): void {
  const location = headers.get('location')
  if (!location || !sentHost || sentHost.toLowerCase() === scope.hostHeader.toLowerCase()) return
  let url: URL
  try {
    url = new URL(location)
  } catch {
    return // relative: it already resolves against the public host
  }
  const sent = sentHost.toLowerCase()
  if (url.host.toLowerCase() !== sent && url.hostname.toLowerCase() !== sent) return
  url.protocol = scope.entry.scheme === 'https' ? 'https:' : 'http:'
  url.host = scope.hostHeader
  headers.set('location', url.href)
}

const NULL_BODY = new Set([101, 204, 205, 304])

/**
 * One endpoint's part of a request: on_http_request, then forward (to an upstream, or into an internal
 * endpoint, which runs this again), then on_http_response over whatever came back.
 */
async function serveEndpoint(endpoint: Endpoint, ex: HttpExchange, scope: RequestScope, chain: readonly string[]): Promise<Response> {
  const here = [...chain, endpoint.id]
  ex.routing = routingFor(scope, here)
  // Variables belong to the phase that set them (ngrok's scoping).
  ex.vars = {}
  let response: Response
  const outcome = await runPhase(endpoint.policy.on_http_request, ex)
  if (outcome.kind === 'close') return closeConnection()
  if (outcome.kind === 'respond') response = outcome.response
  else if (outcome.kind === 'forward' && outcome.target.kind === 'internal') {
    const target = outcome.target.endpoint
    const { response: _r, routing: _g, upstreamObservers: _o, responseCookies: _c, ...rest } = ex
    const inner: HttpExchange = { ...rest, endpoint: target.info, headers: copyHeaders(ex.headers), vars: {}, actions: {} }
    response = await serveEndpoint(target, inner, scope, here)
    if (FINAL.has(response)) return response
    notifyUpstream(ex, response.status)
  } else if (outcome.kind === 'forward') {
    setForwardedHeaders({ ...ex, endpoint: scope.entry }, scope.hostHeader)
    if (scope.websocket) {
      response = await proxyWebSocket(scope.req, scope.server, ex, outcome.target.url, { timeoutMs: scope.timeoutMs })
      if (isUpgraded(response)) {
        FINAL.add(response)
        return response
      }
    } else {
      response = await forwardHttp(ex, outcome.target.url, ex.body ?? null, { timeoutMs: scope.timeoutMs })
      rewriteLocation(response.headers, ex.headers.get('host'), scope)
    }
    notifyUpstream(ex, response.status)
  } else if (endpoint.tunnel) {
    // An agent endpoint: what the policy lets through goes to the agent, over a proxy stream.
    setForwardedHeaders({ ...ex, endpoint: scope.entry }, scope.hostHeader)
    if (scope.websocket) {
      response = await proxyWebSocketToTunnel(scope.req, scope.server, ex, endpoint.tunnel, { timeoutMs: scope.timeoutMs, clientAddr: `${ex.conn.clientIp}:${ex.conn.clientPort}` })
      if (isUpgraded(response)) {
        FINAL.add(response)
        return response
      }
    } else {
      // Only the entry endpoint retries: it is the pool the client chose; internal hops answer as they are.
      const retry = chain.length === 0 && scope.retry?.possible() ? scope.retry : undefined
      // Its session closed after the pick (during the policy): another member gets it without a wait.
      if (retry && !endpoint.tunnel.online && retry.take(endpoint, { unsent: true, reason: 'session closed' })) return retryMarker()
      const origin = tunnelOrigin(endpoint.tunnel, `${ex.conn.serverIp}:${ex.conn.serverPort}`, retry ? { wait: false } : {})
      try {
        response = await sendH1(ex, origin, ex.body ?? null, { timeoutMs: scope.timeoutMs, agent: true })
      } catch (err) {
        const failure = retry && attemptFailure(err)
        if (failure && retry.take(endpoint, failure)) return retryMarker()
        response = h1FailureResponse(err, ex.headers.get('accept'))
      }
      rewriteLocation(response.headers, ex.headers.get('host'), scope)
    }
    notifyUpstream(ex, response.status)
  } else {
    response = errorResponse(503, CODES.POLICY_NOT_TERMINATED, "The endpoint's traffic policy did not handle this request.", scope.req.headers.get('accept'))
  }

  for (const cookie of ex.responseCookies ?? []) response.headers.append('set-cookie', cookie)
  if (endpoint.policy.on_http_response.length) {
    ex.vars = {}
    const parts: HttpResponseParts = { status: response.status, headers: new Headers(response.headers), body: response.body }
    ex.response = parts
    const after = await runPhase(endpoint.policy.on_http_response, ex)
    if (after.kind === 'close') {
      void parts.body?.cancel()
      return closeConnection()
    }
    if (after.kind === 'respond') {
      void parts.body?.cancel()
      response = after.response
    } else {
      const empty = NULL_BODY.has(parts.status)
      if (empty) void parts.body?.cancel()
      response = new Response(empty ? null : (parts.body ?? null), {
        status: parts.status,
        ...(parts.status === response.status ? { statusText: response.statusText } : {}),
        headers: parts.headers,
      })
      // Lines add-headers appended reach the client as lines of their own (the engine writes them).
      carryLines(parts.headers, response.headers)
    }
  }
  const messages = endpoint.policy.on_event_stream_message
  if (messages.length) response = eventStreamResponse(response, ex, { rules: messages, vars: endpoint.policy.on_http_response.length ? ex.vars : {} })
  return response
}
