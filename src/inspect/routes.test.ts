import { afterAll, beforeEach, describe, expect, test } from 'bun:test'
import { parseUpstream } from '../agent/upstream.ts'
import { CaptureStore, HttpTap } from './capture.ts'
import { inspectorHandler } from './routes.ts'

const seen: { method: string; path: string; host: string | null; header: string | null; body: string }[] = []
const origin = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  async fetch(req) {
    const url = new URL(req.url)
    seen.push({ method: req.method, path: url.pathname + url.search, host: req.headers.get('host'), header: req.headers.get('x-edit'), body: await req.text() })
    return Response.json({ got: url.pathname }, { status: 202 })
  },
})
afterAll(() => void origin.stop(true))

let store: CaptureStore
let handler: (req: Request) => Promise<Response>
const enc = (s: string) => new TextEncoder().encode(s)

function capture(request: string, response: string): void {
  const tap = new HttpTap(store, { name: 'web', url: 'https://web.example.com' }, '9.9.9.9:1')
  tap.client(enc(request))
  tap.upstream(enc(response))
  tap.close()
}

function call(path: string, init: RequestInit & { host?: string } = {}): Promise<Response> {
  const headers = new Headers(init.headers)
  headers.set('host', init.host ?? '127.0.0.1:4040')
  return handler(new Request(`http://127.0.0.1:4040${path}`, { ...init, headers }))
}

/** A replay as the inspector page (and scripts) send it: a JSON body. */
function replayCall(body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return call('/api/requests/http', { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) })
}

beforeEach(() => {
  store = new CaptureStore({ maxBodyBytes: 1024 })
  seen.length = 0
  handler = inspectorHandler(
    {
      store,
      status: () => ({ online: true, account: 'alice' }),
      endpoints: () => [{ name: 'web', url: 'https://web.example.com', upstream: parseUpstream(String(origin.port), { endpoint: 'http' }), online: true, kind: 'http' }],
    },
    { allowedHosts: ['inspector.lan'] },
  )
  capture('POST /form?x=1 HTTP/1.1\r\nHost: web.example.com\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\na=1&b=2', 'HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope')
  capture('GET /json HTTP/1.1\r\nHost: web.example.com\r\n\r\n', 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 8\r\n\r\n{"a":[]}')
})

describe('the inspector API', () => {
  test.each(['127.0.0.1:4040', 'localhost:4040', '[::1]:4040', 'localhost', 'inspector.lan:4040'])('answers Host %s', async (host) => {
    expect((await call('/api/status', { host })).status).toBe(200)
  })

  test.each(['evil.example.com', 'evil.example.com:4040', '127.0.0.1.evil.com'])('refuses Host %s (DNS rebinding)', async (host) => {
    expect((await call('/api/requests/http', { host })).status).toBe(403)
  })

  test('lists requests newest first, without bodies', async () => {
    const body = (await (await call('/api/requests/http')).json()) as { requests: { request: { uri: string; body: Record<string, unknown> }; response: { status_code: number } }[] }
    expect(body.requests.map((r) => [r.request.uri, r.response.status_code])).toEqual([
      ['/json', 200],
      ['/form?x=1', 404],
    ])
    expect(body.requests[0]!.request.body.base64).toBeUndefined()
  })

  test.each([
    { query: '?path=/form', want: ['/form?x=1'] },
    { query: '?status=4', want: ['/form?x=1'] },
    { query: '?status=200', want: ['/json'] },
    { query: '?limit=1', want: ['/json'] },
    { query: '?endpoint=other', want: [] },
  ] as { query: string; want: string[] }[])('filters $query', async ({ query, want }) => {
    const body = (await (await call(`/api/requests/http${query}`)).json()) as { requests: { request: { uri: string } }[] }
    expect(body.requests.map((r) => r.request.uri)).toEqual(want)
  })

  test('one request in full, bodies in base64', async () => {
    const id = store.list()[1]!.id
    const r = (await (await call(`/api/requests/http/${id}`)).json()) as Record<string, any>
    expect(r).toMatchObject({ id, uri: `/api/requests/http/${id}`, remote_addr: '9.9.9.9:1', endpoint: { name: 'web' }, replay_of: null, error: null })
    expect(Buffer.from(r.request.body.base64, 'base64').toString()).toBe('a=1&b=2')
    expect(r.request.body).toMatchObject({ size: 7, truncated: false, content_type: 'application/x-www-form-urlencoded' })
    expect(r.response).toMatchObject({ status_code: 404, status: '404 Not Found' })
    expect((await call('/api/requests/http/ex_nope')).status).toBe(404)
  })

  test('replay sends the request to the upstream again and records it', async () => {
    const original = store.list()[1]!
    const res = await replayCall({ id: original.id })
    expect(res.status).toBe(201)
    const r = (await res.json()) as Record<string, any>
    expect(r.replay_of).toBe(original.id)
    expect(r.response.status_code).toBe(202)
    expect(seen).toEqual([{ method: 'POST', path: '/form?x=1', host: 'web.example.com', header: null, body: 'a=1&b=2' }])
    expect(store.list()[0]!.id).toBe(r.id)
  })

  test('replay with edits changes method, path, headers and body', async () => {
    const original = store.list()[1]!
    const res = await replayCall({ id: original.id, method: 'PUT', uri: '/edited', headers: [['x-edit', 'yes'], ['host', 'other.example.com']], body: 'new body' })
    expect(res.status).toBe(201)
    expect(seen).toEqual([{ method: 'PUT', path: '/edited', host: 'other.example.com', header: 'yes', body: 'new body' }])
  })

  test('replay refuses an unknown id, a bad path, and a truncated body', async () => {
    expect((await replayCall('{"id":"ex_nope"}')).status).toBe(404)
    expect((await replayCall('not json')).status).toBe(400)
    const id = store.list()[0]!.id
    expect((await replayCall({ id, uri: 'http://elsewhere/' })).status).toBe(400)
    capture(`POST /big HTTP/1.1\r\nContent-Length: 2000\r\n\r\n${'x'.repeat(2000)}`, 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n')
    const big = await replayCall({ id: store.list()[0]!.id })
    expect(big.status).toBe(400)
    expect(seen).toEqual([])
  })

  // What a page of another site can make a browser send without a CORS preflight, and what a
  // same-site page (another port of localhost) or a sandboxed frame sends.
  test.each([
    { desc: 'text/plain from evil.com', type: 'text/plain', headers: { origin: 'http://evil.com', 'sec-fetch-site': 'cross-site' }, status: 403, code: 'ERR_WARREN_6011' },
    { desc: 'a form post from evil.com', type: 'application/x-www-form-urlencoded', headers: { origin: 'http://evil.com' }, status: 403, code: 'ERR_WARREN_6011' },
    { desc: 'JSON from another port of localhost', type: 'application/json', headers: { origin: 'http://127.0.0.1:3000', 'sec-fetch-site': 'same-site' }, status: 403, code: 'ERR_WARREN_6011' },
    { desc: 'Origin null (sandboxed frame)', type: 'application/json', headers: { origin: 'null' }, status: 403, code: 'ERR_WARREN_6011' },
    { desc: 'same Origin but Sec-Fetch-Site cross-site', type: 'application/json', headers: { origin: 'http://127.0.0.1:4040', 'sec-fetch-site': 'cross-site' }, status: 403, code: 'ERR_WARREN_6011' },
    { desc: 'https origin of the same host', type: 'application/json', headers: { origin: 'https://127.0.0.1:4040' }, status: 403, code: 'ERR_WARREN_6011' },
    { desc: 'text/plain without Origin (curl -d)', type: 'text/plain', headers: {}, status: 415, code: 'ERR_WARREN_6012' },
    { desc: 'text/plain from its own page', type: 'text/plain;charset=UTF-8', headers: { origin: 'http://127.0.0.1:4040', 'sec-fetch-site': 'same-origin' }, status: 415, code: 'ERR_WARREN_6012' },
  ])('replay refuses $desc', async ({ type, headers, status, code }) => {
    const res = await call('/api/requests/http', { method: 'POST', headers: { 'content-type': type, ...headers }, body: JSON.stringify({ id: store.list()[1]!.id }) })
    expect(res.status).toBe(status)
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code)
    expect(seen).toEqual([])
    expect(store.list()).toHaveLength(2)
  })

  test.each([
    { desc: 'from its own page', headers: { origin: 'http://127.0.0.1:4040', 'sec-fetch-site': 'same-origin' } },
    { desc: 'from its own page, charset given', headers: { origin: 'http://127.0.0.1:4040', 'sec-fetch-site': 'same-origin', 'content-type': 'Application/JSON; charset=utf-8' } },
    { desc: 'from its page under an allowed name', headers: { origin: 'http://inspector.lan:4040' }, host: 'inspector.lan:4040' },
    { desc: 'from a script (no Origin, no Sec-Fetch-Site)', headers: {} },
  ] as { desc: string; headers: Record<string, string>; host?: string }[])('replay accepts JSON $desc', async ({ headers, host }) => {
    const res = await call('/api/requests/http', { method: 'POST', ...(host ? { host } : {}), headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ id: store.list()[1]!.id }) })
    expect(res.status).toBe(201)
    expect(seen).toHaveLength(1)
  })

  test('DELETE from another site is refused and keeps the captures', async () => {
    const res = await call('/api/requests/http', { method: 'DELETE', headers: { origin: 'http://evil.com', 'sec-fetch-site': 'cross-site' } })
    expect(res.status).toBe(403)
    expect(store.list()).toHaveLength(2)
  })

  test('ids are 128 random bits, not a clock or a counter', () => {
    const ids = store.list().map((e) => e.id)
    for (const id of ids) expect(id).toMatch(/^ex_[0-9a-f]{32}$/)
    expect(new Set(ids).size).toBe(ids.length)
  })

  test('DELETE clears the captured requests', async () => {
    expect((await call('/api/requests/http', { method: 'DELETE' })).status).toBe(204)
    expect(((await (await call('/api/requests/http')).json()) as { requests: unknown[] }).requests).toEqual([])
  })

  test('status and endpoints', async () => {
    expect(await (await call('/api/status')).json()).toEqual({ online: true, account: 'alice' })
    expect(await (await call('/api/endpoints')).json()).toEqual({ endpoints: [{ name: 'web', url: 'https://web.example.com', upstream: `http://localhost:${origin.port}`, online: true, proto: 'http' }] })
  })

  test('the web UI is one self-contained page with a strict CSP', async () => {
    const res = await call('/')
    expect(res.headers.get('content-type')).toStartWith('text/html')
    expect(res.headers.get('content-security-policy')).toContain("default-src 'self'")
    const html = await res.text()
    expect(html).toContain('warren inspector')
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+href=/)
  })

  test('unknown routes and methods', async () => {
    expect((await call('/api/nope')).status).toBe(404)
    expect((await call('/api/requests/http', { method: 'PATCH' })).status).toBe(405)
  })
})

describe('replay to an HTTP/2 (h2c) upstream', () => {
  test('goes over HTTP/2 and records the answer', async () => {
    const { createServer } = await import('node:http2')
    const h2seen: { version: string; method: string; path: string; authority: string; body: string }[] = []
    const h2 = createServer((req, res) => {
      let body = ''
      req.on('data', (c: Buffer) => (body += c))
      req.on('end', () => {
        h2seen.push({ version: req.httpVersion, method: req.method, path: req.url, authority: req.authority, body })
        res.writeHead(201, { 'content-type': 'text/plain', 'x-h2': 'yes' })
        res.end('made over h2')
      })
    })
    await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r))
    try {
      const port = (h2.address() as { port: number }).port
      const h2handler = inspectorHandler(
        {
          store,
          status: () => ({ online: true, account: 'alice' }),
          endpoints: () => [{ name: 'web', url: 'https://web.example.com', upstream: parseUpstream(String(port), { endpoint: 'http' }), upstreamProtocol: 'http2', online: true, kind: 'http' }],
        },
        {},
      )
      const res = await h2handler(new Request('http://127.0.0.1:4040/api/requests/http', { method: 'POST', headers: { host: '127.0.0.1:4040', 'content-type': 'application/json' }, body: JSON.stringify({ id: store.list()[1]!.id }) }))
      expect(res.status).toBe(201)
      const r = (await res.json()) as Record<string, any>
      expect(r.response.status_code).toBe(201)
      expect(r.response.proto).toBe('HTTP/2.0')
      expect(Buffer.from(r.response.body.base64, 'base64').toString()).toBe('made over h2')
      expect(h2seen).toEqual([{ version: '2.0', method: 'POST', path: '/form?x=1', authority: 'web.example.com', body: 'a=1&b=2' }])
    } finally {
      h2.close()
    }
  })
})
