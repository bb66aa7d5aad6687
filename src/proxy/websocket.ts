import type { ServerWebSocket, WebSocketHandler } from 'bun'
import { CODES } from '../lib/errors.ts'
import type { TunnelTarget } from '../endpoints/endpoint.ts'
import type { HttpExchange } from '../policy/types.ts'
import { errorResponse } from './errors.ts'
import { stripHopHeaders } from './hop-headers.ts'
import { TunnelWebSocket } from './tunnel-websocket.ts'

/** Per-connection state: the upstream websocket (a direct one, or one over an agent's tunnel). */
export interface WsData {
  upstream: WebSocket | TunnelWebSocket
}

/**
 * What the data path needs from the server a request arrived on: Bun.serve (HTTP/2 by ALPN) and the
 * HTTP/1 engine's connections both provide it.
 */
export interface RequestSource {
  requestIP(req: Request): { address: string; port: number } | null
  upgrade(req: Request, options: { data: WsData; headers?: ConstructorParameters<typeof Headers>[0] }): boolean
  /** The version the request line named, where the server knows it. */
  httpVersion?(req: Request): string
  /** Per connection, where the server has connections: endpoints whose on_tcp_connect let it through. */
  readonly connectedEndpoints?: Set<object>
}

/** Close codes that may not be sent on the wire (RFC 6455 §7.4.1) become 1000/1011. */
function sendableCode(code: number): number {
  if (code === 1000 || (code >= 1001 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999)) return code
  return code === 1005 ? 1000 : 1011
}

/** Headers not to copy onto the upstream handshake: the WebSocket client makes its own. */
const HANDSHAKE = new Set(['upgrade', 'connection', 'sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions', 'sec-websocket-protocol', 'host', 'content-length'])

/**
 * Proxies a websocket: opens the upstream first (so a dead upstream still gets a 502 page), then
 * upgrades the client and relays frames both ways with close codes and reasons intact.
 */
export async function proxyWebSocket(
  req: Request,
  server: RequestSource,
  ex: HttpExchange,
  origin: URL,
  options: { timeoutMs: number },
): Promise<Response> {
  stripHopHeaders(ex.headers)
  const target = new URL(ex.url.pathname + ex.url.search, origin)
  target.protocol = origin.protocol === 'https:' ? 'wss:' : 'ws:'
  const headers: Record<string, string> = {}
  ex.headers.forEach((value, name) => {
    if (!HANDSHAKE.has(name)) headers[name] = value
  })
  headers['host'] = ex.headers.get('host') ?? ex.url.host
  const protocols = (req.headers.get('sec-websocket-protocol') ?? '').split(',').map((p) => p.trim()).filter(Boolean)
  const upstream = new WebSocket(target.href, { headers, protocols } as unknown as string[])
  upstream.binaryType = 'arraybuffer'
  const opened = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), options.timeoutMs)
    upstream.addEventListener('open', () => (clearTimeout(timer), resolve(true)), { once: true })
    upstream.addEventListener('error', () => (clearTimeout(timer), resolve(false)), { once: true })
    upstream.addEventListener('close', () => (clearTimeout(timer), resolve(false)), { once: true })
  })
  if (!opened) {
    upstream.close()
    return errorResponse(502, CODES.UPSTREAM_REFUSED, 'The upstream websocket could not be reached.', req.headers.get('accept'))
  }
  const upgraded = server.upgrade(req, {
    data: { upstream },
    headers: upstream.protocol ? { 'sec-websocket-protocol': upstream.protocol } : {},
  })
  if (!upgraded) {
    upstream.close()
    return errorResponse(400, CODES.BAD_REQUEST, 'Invalid websocket upgrade request.', req.headers.get('accept'))
  }
  return upgradedResponse()
}

/** Answers that stand for "the connection was upgraded": the listener already wrote the 101. */
const UPGRADED = new WeakSet<Response>()

/** What the data path returns once the upgrade is done; a Response cannot carry status 101 itself. */
function upgradedResponse(): Response {
  const res = new Response(null)
  UPGRADED.add(res)
  return res
}

/** True for the answer of an upgraded websocket (logged and counted as 101). */
export function isUpgraded(res: Response): boolean {
  return UPGRADED.has(res)
}

/** Proxies a websocket to an agent endpoint: the handshake and frames go over one proxy stream. */
export async function proxyWebSocketToTunnel(
  req: Request,
  server: RequestSource,
  ex: HttpExchange,
  tunnel: TunnelTarget,
  options: { timeoutMs: number; clientAddr: string },
): Promise<Response> {
  stripHopHeaders(ex.headers)
  const protocols = (req.headers.get('sec-websocket-protocol') ?? '').split(',').map((p) => p.trim()).filter(Boolean)
  const upstream = await TunnelWebSocket.connect(tunnel, options.clientAddr, { path: ex.url.pathname + ex.url.search, headers: ex.headers, protocols }, options.timeoutMs)
  if (!upstream) return errorResponse(502, CODES.UPSTREAM_REFUSED, 'The agent could not open the upstream websocket.', req.headers.get('accept'))
  const upgraded = server.upgrade(req, { data: { upstream }, headers: upstream.protocol ? { 'sec-websocket-protocol': upstream.protocol } : {} })
  if (!upgraded) {
    upstream.close()
    return errorResponse(400, CODES.BAD_REQUEST, 'Invalid websocket upgrade request.', req.headers.get('accept'))
  }
  return upgradedResponse()
}

/** The Bun.serve websocket handlers that pair with `proxyWebSocket` and `proxyWebSocketToTunnel`. */
export const websocketHandlers: WebSocketHandler<WsData> = {
  open(ws: ServerWebSocket<WsData>) {
    const up = ws.data.upstream
    up.onmessage = (e: { data: unknown }) => ws.send(e.data as string | ArrayBuffer)
    up.onclose = (e: { code: number; reason: string }) => ws.close(sendableCode(e.code), e.reason)
    up.onerror = () => ws.close(1011, 'upstream error')
  },
  message(ws, message) {
    const up = ws.data.upstream
    if (up.readyState === WebSocket.OPEN) up.send(message)
  },
  close(ws, code, reason) {
    const up = ws.data.upstream
    if (up.readyState === WebSocket.OPEN || up.readyState === WebSocket.CONNECTING) up.close(sendableCode(code), reason)
  },
}
