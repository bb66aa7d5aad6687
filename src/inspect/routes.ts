import type { UpstreamProtocol } from '../agent/spec.ts'
import type { Upstream } from '../agent/upstream.ts'
import { CODES, type ErrorCode } from '../lib/errors.ts'
import type { CaptureStore, CapturedBody, Exchange } from './capture.ts'
import { replay, type ReplayEdits } from './replay.ts'
import { INSPECTOR_PAGE } from './ui/page.ts'

/** What the inspector shows about the agent, and how it finds an endpoint's upstream for replays. */
export interface InspectorSource {
  store: CaptureStore
  status(): Record<string, unknown>
  endpoints(): { name: string; url: string; upstream: Upstream; upstreamProtocol?: UpstreamProtocol; online: boolean; kind: string }[]
}

function bodyJson(body: CapturedBody, headers: [string, string][], full: boolean): Record<string, unknown> {
  const type = headers.find(([k]) => k.toLowerCase() === 'content-type')?.[1] ?? ''
  return { size: body.size, captured: body.bytes.length, truncated: body.truncated, content_type: type, ...(full ? { base64: Buffer.from(body.bytes).toString('base64') } : {}) }
}

/** An exchange as the local API returns it (snake_case, bodies in base64 when `full`). */
export function exchangeJson(e: Exchange, full: boolean): Record<string, unknown> {
  return {
    id: e.id,
    uri: `/api/requests/http/${e.id}`,
    endpoint: e.endpoint,
    remote_addr: e.clientAddr,
    start: new Date(e.start).toISOString(),
    duration_ms: e.durationMs ?? null,
    replay_of: e.replayOf ?? null,
    error: e.error ?? null,
    request: {
      method: e.request.method,
      uri: e.request.uri,
      proto: e.request.proto,
      headers: e.request.headers,
      body: bodyJson(e.request.body, e.request.headers, full),
    },
    response: e.response
      ? {
          status_code: e.response.status,
          status: `${e.response.status} ${e.response.statusText}`.trim(),
          proto: e.response.proto,
          headers: e.response.headers,
          body: bodyJson(e.response.body, e.response.headers, full),
        }
      : null,
  }
}

function json(value: unknown, status = 200): Response {
  return new Response(JSON.stringify(value, null, 2), { status, headers: { 'content-type': 'application/json', 'cache-control': 'no-store' } })
}

function problem(status: number, message: string, code?: ErrorCode): Response {
  return json({ error: { status, message, ...(code ? { code } : {}) } }, status)
}

/** Host names the inspector answers to; anything else could be a DNS-rebinding page in a browser. */
function hostAllowed(hostHeader: string, extra: readonly string[]): boolean {
  const host = hostHeader.startsWith('[') ? hostHeader.slice(0, hostHeader.indexOf(']') + 1) : hostHeader.replace(/:\d+$/, '')
  return ['localhost', '127.0.0.1', '[::1]', ...extra].includes(host.toLowerCase())
}

/**
 * Refuses a state-changing request (replay, clear) that a page of another site could have made the
 * browser send. Such a page can POST without a CORS preflight only with a text/plain, form or
 * multipart body, so a replay must declare JSON: that forces the preflight, which this server never
 * grants. Browsers also say where a request comes from (Origin, Sec-Fetch-Site); when they do, it
 * must be this inspector itself; curl and scripts send neither and are let through.
 */
function crossSiteRefusal(req: Request, host: string): Response | undefined {
  const site = req.headers.get('sec-fetch-site')
  const origin = req.headers.get('origin')
  let sameOrigin = origin === null
  if (origin !== null) {
    try {
      const url = new URL(origin)
      sameOrigin = url.protocol === 'http:' && url.host === new URL(`http://${host}`).host
    } catch {
      sameOrigin = false // "null" (sandboxed frames, file: pages) or garbage
    }
  }
  if (!sameOrigin || (site !== null && site !== 'same-origin' && site !== 'none'))
    return problem(403, `The inspector only accepts ${req.method} from its own page or from non-browser clients (Origin ${JSON.stringify(origin)}, Sec-Fetch-Site ${JSON.stringify(site)}).`, CODES.INSPECTOR_CROSS_ORIGIN)
  if (req.method !== 'POST') return undefined
  const type = (req.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase()
  if (type !== 'application/json') return problem(415, 'A replay must be sent as Content-Type: application/json.', CODES.INSPECTOR_NOT_JSON)
  return undefined
}

function parseEdits(body: Record<string, unknown>): ReplayEdits {
  const edits: ReplayEdits = {}
  if (typeof body.method === 'string' && body.method) edits.method = body.method
  if (typeof body.uri === 'string' && body.uri) edits.uri = body.uri
  if (Array.isArray(body.headers)) edits.headers = body.headers.filter((h): h is [string, string] => Array.isArray(h) && typeof h[0] === 'string' && typeof h[1] === 'string')
  else if (body.headers && typeof body.headers === 'object') edits.headers = Object.entries(body.headers as Record<string, unknown>).map(([k, v]) => [k, String(v)])
  if (typeof body.body_base64 === 'string') edits.body = new Uint8Array(Buffer.from(body.body_base64, 'base64'))
  else if (typeof body.body === 'string') edits.body = new TextEncoder().encode(body.body)
  return edits
}

/**
 * The local inspector: the web UI at `/` and ngrok's local API — `GET /api/status`,
 * `GET /api/endpoints`, `GET|DELETE /api/requests/http`, `GET /api/requests/http/:id`, and
 * `POST /api/requests/http` to replay (`{id, method?, uri?, headers?, body?|body_base64?}`, sent as
 * `Content-Type: application/json`). Requests whose Host is not loopback (or one of `allowedHosts`)
 * are refused, and so are replays and clears from another origin.
 */
export function inspectorHandler(source: InspectorSource, options: { allowedHosts?: readonly string[] } = {}): (req: Request) => Promise<Response> {
  const allowed = options.allowedHosts ?? []
  return async function inspector(req) {
    const host = req.headers.get('host')
    if (!host || !hostAllowed(host, allowed)) return problem(403, 'The inspector only answers to localhost (DNS rebinding protection).')
    const url = new URL(req.url)
    const path = url.pathname.replace(/\/+$/, '') || '/'
    if (path === '/' && req.method === 'GET')
      return new Response(INSPECTOR_PAGE, {
        headers: { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:", 'cache-control': 'no-store' },
      })
    if (path === '/api/status' && req.method === 'GET') return json(source.status())
    if ((path === '/api/endpoints' || path === '/api/tunnels') && req.method === 'GET')
      return json({ endpoints: source.endpoints().map((e) => ({ name: e.name, url: e.url, upstream: e.upstream.text, online: e.online, proto: e.kind })) })
    if (path === '/api/requests/http') {
      const refused = req.method === 'POST' || req.method === 'DELETE' ? crossSiteRefusal(req, host) : undefined
      if (refused) return refused
      if (req.method === 'GET') {
        const limit = Math.min(Number(url.searchParams.get('limit') ?? 50) || 50, 1000)
        const prefix = url.searchParams.get('path') ?? ''
        const status = url.searchParams.get('status')
        const endpoint = url.searchParams.get('endpoint') ?? url.searchParams.get('tunnel_name')
        const list = source.store
          .list()
          .filter((e) => !prefix || e.request.uri.includes(prefix))
          .filter((e) => !status || String(e.response?.status ?? '').startsWith(status))
          .filter((e) => !endpoint || e.endpoint.name === endpoint)
          .slice(0, limit)
        return json({ uri: '/api/requests/http', requests: list.map((e) => exchangeJson(e, false)) })
      }
      if (req.method === 'DELETE') {
        source.store.clear()
        return new Response(null, { status: 204 })
      }
      if (req.method === 'POST') {
        let body: Record<string, unknown>
        try {
          body = (await req.json()) as Record<string, unknown>
        } catch {
          return problem(400, 'The body must be JSON: {"id": "<request id>"}.')
        }
        const original = typeof body.id === 'string' ? source.store.get(body.id) : undefined
        if (!original) return problem(404, `No captured request ${JSON.stringify(body.id)}.`)
        const endpoint = source.endpoints().find((e) => e.name === original.endpoint.name)
        if (!endpoint) return problem(404, `The endpoint "${original.endpoint.name}" is not running any more.`)
        try {
          const replayed = await replay(source.store, original, endpoint.upstream, parseEdits(body), endpoint.upstreamProtocol)
          return json(exchangeJson(replayed, true), 201)
        } catch (err) {
          if (err instanceof RangeError) return problem(400, err.message)
          throw err
        }
      }
      return problem(405, `${req.method} is not allowed here.`)
    }
    const one = /^\/api\/requests\/http\/([\w-]+)$/.exec(path)
    if (one && req.method === 'GET') {
      const e = source.store.get(one[1]!)
      return e ? json(exchangeJson(e, true)) : problem(404, `No captured request "${one[1]}".`)
    }
    return problem(404, 'Not found.')
  }
}
