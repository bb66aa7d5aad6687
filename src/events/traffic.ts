import type { Endpoint } from '../endpoints/endpoint.ts'
import { ERROR_CODE_HEADER } from '../lib/errors.ts'
import type { ConnInfo } from '../policy/types.ts'
import { lazyIso, makeEvent, type EndpointRef, type HttpRequestCompleteEvent, type TcpConnectionClosedEvent } from './types.ts'

/*
 * Builders for the traffic events, so the data path only hands over what it already has. Both are
 * called after the answer is on its way; neither reads a body.
 */

function endpointRef(endpoint: Endpoint | undefined): EndpointRef | null {
  return endpoint ? { id: endpoint.id, url: endpoint.urlText, type: endpoint.kind } : null
}

/** The part of `Headers` an event reads (the engine's fast path has no `Headers` for a request). */
interface Fields {
  get(name: string): string | null
}

function contentLength(headers: Fields): number {
  const value = headers.get('content-length')
  return value !== null && /^\d+$/.test(value) ? Number(value) : -1
}

function logs(metadata: Record<string, unknown> | undefined): { logs: Record<string, unknown> } | null {
  if (!metadata) return null
  for (const _ in metadata) return { logs: metadata }
  return null
}

export interface HttpRequestFacts {
  /** `body` is only asked whether it is null (no body). */
  req: { method: string; headers: Fields; body: unknown }
  /** The URL as the client asked for it, with the listener's scheme (before url-rewrite). */
  url: Pick<URL, 'protocol' | 'pathname' | 'search' | 'href'>
  /** Host name without port (lower case) and the port it stands for. */
  host: string
  port: number
  conn: Pick<ConnInfo, 'clientIp' | 'clientPort' | 'serverIp' | 'serverPort'> | undefined
  endpoint: Endpoint | undefined
  /** `performance.now()` at arrival. */
  started: number
  response: { status: number; headers: Fields }
  /** True when the answer is "drop the connection" (status 0). */
  closed: boolean
  logMetadata?: Record<string, unknown>
}

/** `http_request_complete.v0` for one request, from what the pipeline knows when it answers. */
export function httpRequestEvent(f: HttpRequestFacts): HttpRequestCompleteEvent {
  const now = Date.now()
  const durationMs = performance.now() - f.started
  const status = f.closed ? 0 : f.response.status
  const startTs = lazyIso(now - durationMs)
  return makeEvent(
    'http_request_complete.v0',
    {
      conn: {
        client_ip: f.conn?.clientIp ?? '',
        client_port: f.conn?.clientPort ?? 0,
        server_ip: f.conn?.serverIp ?? '',
        server_name: f.host,
        server_port: f.port,
        get start_ts() {
          return startTs()
        },
      },
      http: {
        request: {
          method: f.req.method,
          url: { scheme: f.url.protocol.slice(0, -1), host: f.host, path: f.url.pathname, query: f.url.search.slice(1), raw: f.url.href },
          user_agent: f.req.headers.get('user-agent') ?? '',
          body_length: f.req.body === null ? 0 : contentLength(f.req.headers),
        },
        response: { status_code: status, body_length: f.closed ? 0 : contentLength(f.response.headers) },
      },
      endpoint: endpointRef(f.endpoint),
      duration_ms: Math.round(durationMs * 100) / 100,
      error_code: f.closed ? null : f.response.headers.get(ERROR_CODE_HEADER),
      traffic_policy: logs(f.logMetadata),
    },
    now,
  )
}

export interface TcpCloseFacts {
  protocol: 'tcp' | 'tls' | 'https'
  endpoint: Endpoint | undefined
  conn: Pick<ConnInfo, 'clientIp' | 'clientPort' | 'serverIp' | 'serverPort'>
  serverName: string
  /** The relay's counts and times (ms since the epoch). */
  stats: { bytesIn: number; bytesOut: number; startedAt: number; endedAt: number }
  logMetadata?: Record<string, unknown>
}

/** `tcp_connection_closed.v0` for one relayed connection. */
export function tcpClosedEvent(f: TcpCloseFacts): TcpConnectionClosedEvent {
  return makeEvent('tcp_connection_closed.v0', {
    conn: {
      client_ip: f.conn.clientIp,
      client_port: f.conn.clientPort,
      server_ip: f.conn.serverIp,
      server_name: f.serverName,
      server_port: f.conn.serverPort,
      start_ts: new Date(f.stats.startedAt).toISOString(),
      end_ts: new Date(f.stats.endedAt).toISOString(),
      bytes_in: f.stats.bytesIn,
      bytes_out: f.stats.bytesOut,
    },
    endpoint: endpointRef(f.endpoint),
    protocol: f.protocol,
    traffic_policy: logs(f.logMetadata),
  })
}
