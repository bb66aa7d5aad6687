import type { Server } from 'bun'
import { Hono } from 'hono'
import { CODES } from '../lib/errors.ts'
import { log } from '../lib/log.ts'
import { errorResponse } from '../proxy/errors.ts'
import type { PipelineOptions } from '../proxy/pipeline.ts'
import { createPipeline, splitHost } from '../proxy/pipeline.ts'
import { websocketHandlers, type WsData } from '../proxy/websocket.ts'

export interface HttpListenerOptions extends Omit<PipelineOptions, 'serverIp' | 'serverPort' | 'log'> {
  hostname: string
  port: number
  idleTimeoutSec: number
  maxBodyBytes: number
  /** Certificates (first = default) for the HTTPS server behind the TLS front; offers h2 by ALPN. */
  tls?: { cert: string; key: string; serverName?: string }[]
  /** Address shown in logs instead of hostname:port (the public side of an internal server). */
  serverIp?: string
  serverPort?: number
  /**
   * ACME HTTP-01: for `GET /.well-known/acme-challenge/<token>`, the key authorization when `host`
   * (lower-case, no port) is being validated with that token. Undefined lets the request through to
   * the endpoints, so the path is only taken over while a validation runs.
   */
  acmeChallenge?: (host: string, token: string) => string | undefined
}

const ACME_CHALLENGE_ROUTE = '/.well-known/acme-challenge/:token'

type Env = { Bindings: { server: Server<WsData> } }

/**
 * An HTTP server whose only route is the endpoint data path (a Hono app): the plaintext listener, and
 * (with `tls`) the internal HTTPS server that the TLS front hands terminated connections to.
 */
export function listenHttp(options: HttpListenerOptions): Server<WsData> {
  const logger = log.child({ component: options.scheme })
  let handle: ReturnType<typeof createPipeline> | undefined
  const app = new Hono<Env>()
  const acmeChallenge = options.acmeChallenge
  if (acmeChallenge)
    app.get(ACME_CHALLENGE_ROUTE, (c) => {
      const host = c.req.header('host')
      const answer = host && !host.includes(',') ? acmeChallenge(splitHost(host, 0).name, c.req.param('token')) : undefined
      return answer !== undefined ? c.text(answer) : handle!(c.req.raw, c.env.server)
    })
  app.all('*', async (c) => {
    const res = await handle!(c.req.raw, c.env.server)
    // Bun closes after answering a `Connection: close` request but does not say so (RFC 9112 §9.6).
    if (/\bclose\b/i.test(c.req.raw.headers.get('connection') ?? '') && res.status !== 101) res.headers.set('connection', 'close')
    return res
  })
  app.onError((err, c) => {
    logger.error('request failed', { error: err instanceof Error ? err.stack : String(err) })
    return errorResponse(500, CODES.INTERNAL, 'The edge failed to handle this request.', c.req.header('accept'))
  })
  const server = Bun.serve<WsData>({
    hostname: options.hostname,
    port: options.port,
    idleTimeout: options.idleTimeoutSec,
    maxRequestBodySize: options.maxBodyBytes,
    fetch: (req, srv) => app.fetch(req, { server: srv }),
    websocket: websocketHandlers,
    ...(options.tls ? { tls: options.tls, http2: true } : {}),
  })
  handle = createPipeline({
    ...options,
    serverIp: options.serverIp ?? options.hostname,
    serverPort: options.serverPort ?? server.port ?? options.port,
    log: logger,
  })
  return server
}
