import type { Server } from 'bun'
import type { Scheme } from '../config/url.ts'
import type { EndpointStore } from '../endpoints/store.ts'
import { CODES } from '../lib/errors.ts'
import type { Logger } from '../lib/log.ts'
import { runPhase } from '../policy/engine.ts'
import type { HttpExchange } from '../policy/types.ts'
import { errorResponse } from './errors.ts'
import { setForwardedHeaders } from './forwarded.ts'
import { isWebSocketUpgrade } from './hop-headers.ts'
import { forwardHttp } from './http.ts'
import { proxyWebSocket, type WsData } from './websocket.ts'

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
 * The HTTP data path for one listener: Host → endpoint, on_http_request, forward, on_http_response.
 * Each request reads the table once, so a reload mid-request never changes its endpoint or policy.
 */
export function createPipeline(options: PipelineOptions) {
  const { store, log } = options
  return async function handleHttp(req: Request, server: Server<WsData>): Promise<Response> {
    const started = performance.now()
    const accept = req.headers.get('accept')
    if (headerBytes(req) > options.maxHeaderBytes)
      return errorResponse(431, CODES.HEADERS_TOO_LARGE, 'Request headers are too large.', accept)
    const hostHeader = req.headers.get('host')
    // Several Host headers arrive joined by commas; RFC 9112 says answer 400, never guess which one.
    if (!hostHeader || hostHeader.includes(','))
      return errorResponse(400, CODES.BAD_REQUEST, 'The request needs exactly one Host header.', accept)
    const { name, port } = splitHost(hostHeader, options.defaultPort)
    const pool = store.current.lookup({ account: '', binding: 'public', scheme: options.scheme, host: name, port })
    if (!pool) {
      const res = errorResponse(404, CODES.ENDPOINT_NOT_FOUND, `The endpoint ${name} is offline.`, accept)
      if (options.logRequests) log.info('request', { host: name, method: req.method, status: 404, code: CODES.ENDPOINT_NOT_FOUND })
      return res
    }
    const endpoint = pool.pick()
    const client = server.requestIP(req)
    const url = new URL(req.url)
    url.protocol = options.scheme + ':'
    const ex: HttpExchange = {
      endpoint: endpoint.info,
      conn: {
        clientIp: client?.address ?? '',
        clientPort: client?.port ?? 0,
        serverIp: options.serverIp,
        serverPort: options.serverPort,
        startedAt: Date.now(),
      },
      method: req.method,
      url,
      headers: new Headers(req.headers),
      vars: {},
      actions: {},
      logMetadata: {},
    }

    let response: Response
    const outcome = await runPhase(endpoint.policy.on_http_request, ex)
    if (outcome.kind === 'respond') response = outcome.response
    else if (outcome.kind === 'forward') {
      setForwardedHeaders(ex, hostHeader)
      if (isWebSocketUpgrade(req.headers)) {
        response = await proxyWebSocket(req, server, ex, outcome.target.url, { timeoutMs: options.upstreamTimeoutMs })
        if (response.status === 200) return response
      } else {
        response = await forwardHttp(ex, outcome.target.url, req.body, { timeoutMs: options.upstreamTimeoutMs })
      }
    } else {
      response = errorResponse(503, CODES.POLICY_NOT_TERMINATED, "The endpoint's traffic policy did not handle this request.", accept)
    }

    if (endpoint.policy.on_http_response.length) {
      ex.response = { status: response.status, headers: response.headers }
      const after = await runPhase(endpoint.policy.on_http_response, ex)
      if (after.kind === 'respond') response = after.response
    }
    if (options.logRequests)
      log.info('request', {
        endpoint: endpoint.urlText,
        method: req.method,
        path: url.pathname,
        status: response.status,
        duration_ms: Math.round((performance.now() - started) * 100) / 100,
        client_ip: ex.conn.clientIp,
      })
    return response
  }
}
