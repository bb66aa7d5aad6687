import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { gunzipSync } from 'node:zlib'
import { curl } from './framework/curl.ts'
import { hostFetch, startEdge, type Edge } from './framework/process.ts'

/** An upstream that tells what it saw, redirects to whatever Host it got, and serves text to rewrite. */
const upstream = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  async fetch(req) {
    const url = new URL(req.url)
    const headers: Record<string, string> = {}
    req.headers.forEach((v, k) => (headers[k] = v))
    if (url.pathname === '/bounce') return new Response(null, { status: 302, headers: { location: `http://${req.headers.get('host')}/landed` } })
    if (url.pathname.startsWith('/status/')) return new Response('failing', { status: Number(url.pathname.slice(8)) })
    if (url.pathname === '/text') return new Response('The password is hunter2. '.repeat(200), { headers: { 'content-type': 'text/plain', 'x-upstream-secret': 'yes' } })
    return Response.json({ method: req.method, path: url.pathname + url.search, headers, body: await req.text() })
  },
})
const origin = `http://127.0.0.1:${upstream.port}`

const forward = { type: 'forward-external', config: { url: origin } }
/** One endpoint file: the URL and its on_http_request/on_http_response rules as JSON (which is YAML). */
const endpoint = (url: string, policy: Record<string, unknown>) => JSON.stringify({ url, traffic_policy: policy })

let edge: Edge
let host: (name: string) => string
beforeAll(async () => {
  edge = await startEdge({
    policies: {
      'deny.yml': endpoint('http://deny.warren.localhost', { on_http_request: [{ actions: [{ type: 'deny', config: { status_code: 404 } }] }] }),
      'redirect.yml': endpoint('http://redirect.warren.localhost', {
        on_http_request: [{ actions: [{ type: 'redirect', config: { from: '/old/(.*)', to: '/new/$1', status_code: 301, headers: { 'x-moved': 'yes' } } }, forward] }],
      }),
      'rewrite.yml': endpoint('http://rewrite.warren.localhost', { on_http_request: [{ actions: [{ type: 'url-rewrite', config: { from: '/v1/', to: '/v2/' } }, forward] }] }),
      'headers.yml': endpoint('http://headers.warren.localhost', {
        on_http_request: [{ actions: [{ type: 'add-headers', config: { headers: { 'x-client-ip': '${conn.client_ip}' } } }, { type: 'remove-headers', config: { headers: ['x-drop-me'] } }, forward] }],
        on_http_response: [{ actions: [{ type: 'add-headers', config: { headers: { 'x-edge': 'warren' } } }, { type: 'remove-headers', config: { headers: ['x-upstream-secret'] } }] }],
      }),
      'hostswap.yml': endpoint('http://hostswap.warren.localhost', { on_http_request: [{ actions: [{ type: 'add-headers', config: { headers: { host: 'backend.local:9999' } } }, forward] }] }),
      'vars.yml': endpoint('http://vars.warren.localhost', {
        on_http_request: [
          { actions: [{ type: 'set-vars', config: { vars: [{ who: 'world' }, { n: 2 }] } }, { type: 'log', config: { metadata: { greeted: '${vars.who}', path: '${req.url.path}' } } }] },
          { expressions: ['vars.n == 2'], actions: [{ type: 'custom-response', config: { body: 'hello ${vars.who}' } }] },
        ],
      }),
      'auth.yml': endpoint('http://auth.warren.localhost', {
        on_http_request: [{ actions: [{ type: 'basic-auth', config: { realm: 'e2e', credentials: ['alice:correct-horse', 'bob:battery-staple'] } }, { type: 'custom-response', config: { body: 'welcome ${actions.ngrok.basic_auth.credentials.username}' } }] }],
      }),
      'ips.yml': endpoint('http://ips.warren.localhost', {
        on_http_request: [
          { expressions: ["req.url.path == '/loopback'"], actions: [{ type: 'restrict-ips', config: { allow: ['127.0.0.0/8', '::1/128'] } }, { type: 'custom-response', config: { body: 'in' } }] },
          { actions: [{ type: 'restrict-ips', config: { allow: ['10.0.0.0/8'] } }, { type: 'custom-response', config: { body: 'in' } }] },
        ],
      }),
      'limit.yml': endpoint('http://limit.warren.localhost', {
        on_http_request: [{ actions: [{ type: 'rate-limit', config: { name: 'e2e', algorithm: 'sliding_window', capacity: 2, rate: '60s', bucket_key: ['conn.client_ip'] } }, { type: 'custom-response', config: { body: 'ok' } }] }],
      }),
      'gzip.yml': endpoint('http://gzip.warren.localhost', { on_http_request: [{ actions: [forward] }], on_http_response: [{ actions: [{ type: 'compress-response' }] }] }),
      'breaker.yml': endpoint('http://breaker.warren.localhost', {
        on_http_request: [{ actions: [{ type: 'circuit-breaker', config: { volume_threshold: 2, error_threshold: 0.5, tripped_duration: '30s' } }, forward] }],
      }),
      'close.yml': endpoint('http://close.warren.localhost', { on_http_request: [{ actions: [{ type: 'close-connection' }] }] }),
      'tcpdeny.yml': endpoint('http://tcpdeny.warren.localhost', { on_tcp_connect: [{ actions: [{ type: 'deny' }] }], on_http_request: [{ actions: [{ type: 'custom-response', config: { body: 'unreachable' } }] }] }),
      'body.yml': endpoint('http://body.warren.localhost', {
        on_http_request: [{ actions: [{ type: 'request-body-find-replace', config: { replacements: [{ from: 'card=[0-9]+', to: 'card=XXXX' }] } }, forward] }],
        on_http_response: [{ actions: [{ type: 'response-body-find-replace', config: { replacements: [{ from: 'hunter2', to: '*******' }] } }] }],
      }),
      // forward-internal: a public endpoint in front of internal ones, each with its own policy.
      'front.yml': endpoint('http://front.warren.localhost', {
        on_http_request: [
          { expressions: ["req.url.path == '/missing'"], actions: [{ type: 'forward-internal', config: { url: 'http://missing.internal', on_error: 'continue' } }, { type: 'custom-response', config: { status_code: 299, body: 'fallback ${actions.ngrok.forward_internal.error.code}' } }] },
          { expressions: ["req.url.path == '/loop'"], actions: [{ type: 'forward-internal', config: { url: 'http://loop.internal' } }] },
          { expressions: ["req.url.path == '/side'"], actions: [{ type: 'http-request', config: { url: 'http://api.internal/from-side' } }, { type: 'custom-response', config: { body: '${actions.ngrok.http_request.res.status_code} ${actions.ngrok.http_request.res.body}' } }] },
          { actions: [{ type: 'add-headers', config: { headers: { 'x-front': '1' } } }, { type: 'forward-internal', config: { url: 'http://api.internal' } }] },
        ],
        on_http_response: [{ actions: [{ type: 'add-headers', config: { headers: { 'x-front-response': '1' } } }] }],
      }),
      'api.yml': endpoint('http://api.internal', {
        on_http_request: [{ actions: [{ type: 'add-headers', config: { headers: { 'x-internal': '${endpoint.url}' } } }, forward] }],
        on_http_response: [{ actions: [{ type: 'add-headers', config: { headers: { 'x-internal-response': '1' } } }] }],
      }),
      'loop.yml': endpoint('http://loop.internal', { on_http_request: [{ actions: [{ type: 'forward-internal', config: { url: 'http://loop.internal' } }] }] }),
      'tls-on-http.yml': endpoint('http://badtls.warren.localhost', { on_tcp_connect: [{ actions: [{ type: 'terminate-tls' }] }], on_http_request: [{ actions: [forward] }] }),
    },
  })
  host = (name: string) => `http://${name}.warren.localhost:${edge.httpPort}`
})
afterAll(async () => {
  await edge?.stop()
  upstream.stop(true)
})

describe('traffic-policy actions through the compiled edge', () => {
  test('deny answers its status with no body', async () => {
    const res = await curl([`${host('deny')}/x`])
    expect(res.status).toBe(404)
    expect(res.body).toBe('')
    expect(res.headers['warren-error-code']).toBe('ERR_WARREN_2101')
  })

  test('redirect: 3xx with Location and headers; no match falls through', async () => {
    const moved = await curl([`${host('redirect')}/old/page?q=1`])
    expect(moved.status).toBe(301)
    expect(moved.headers['location']).toBe(`${host('redirect')}/new/page?q=1`)
    expect(moved.headers['x-moved']).toBe('yes')
    const other = await curl([`${host('redirect')}/other`])
    expect(JSON.parse(other.body).path).toBe('/other')
  })

  test('url-rewrite changes what the upstream sees, not the client URL', async () => {
    const res = await curl([`${host('rewrite')}/api/v1/users?id=3`])
    expect(JSON.parse(res.body).path).toBe('/api/v2/users?id=3')
  })

  test('add-headers and remove-headers on requests and responses', async () => {
    const res = await curl(['-H', 'X-Drop-Me: 1', `${host('headers')}/text`])
    expect(res.headers['x-edge']).toBe('warren')
    expect(res.headers['x-upstream-secret']).toBeUndefined()
    const echo = JSON.parse((await curl(['-H', 'X-Drop-Me: 1', `${host('headers')}/echo`])).body)
    expect(echo.headers['x-client-ip']).toBe('127.0.0.1')
    expect(echo.headers['x-drop-me']).toBeUndefined()
  })

  test('add-headers host: upstream sees it, and its Location comes back on the public host', async () => {
    const echo = JSON.parse((await curl([`${host('hostswap')}/echo`])).body)
    expect(echo.headers['host']).toBe('backend.local:9999')
    expect(echo.headers['x-forwarded-host']).toBe(`hostswap.warren.localhost:${edge.httpPort}`)
    const bounce = await curl([`${host('hostswap')}/bounce`])
    expect(bounce.status).toBe(302)
    expect(bounce.headers['location']).toBe(`${host('hostswap')}/landed`)
  })

  test('set-vars feeds expressions and templates; log metadata lands on the request log line', async () => {
    const res = await curl([`${host('vars')}/greet`])
    expect(res.body).toBe('hello world')
    const line = JSON.parse(await edge.waitForLog(/"path":"\/greet".*"metadata"/))
    expect(line.metadata).toEqual({ greeted: 'world', path: '/greet' })
  })

  test('basic-auth: 401 with WWW-Authenticate, then in with any listed credential', async () => {
    const none = await curl([`${host('auth')}/`])
    expect(none.status).toBe(401)
    expect(none.headers['www-authenticate']).toBe('Basic realm="e2e", charset="UTF-8"')
    expect((await curl(['-u', 'alice:wrong-horse', `${host('auth')}/`])).status).toBe(401)
    const bob = await curl(['-u', 'bob:battery-staple', `${host('auth')}/`])
    expect(bob.status).toBe(200)
    expect(bob.body).toBe('welcome bob')
  })

  test('restrict-ips decides on the TCP peer, never X-Forwarded-For', async () => {
    expect((await curl([`${host('ips')}/loopback`])).body).toBe('in')
    const spoofed = await curl(['-H', 'X-Forwarded-For: 10.1.2.3', `${host('ips')}/`])
    expect(spoofed.status).toBe(403)
    expect(spoofed.headers['warren-error-code']).toBe('ERR_WARREN_2102')
  })

  test('rate-limit: capacity, then 429 with Retry-After', async () => {
    const statuses: number[] = []
    let last
    for (let i = 0; i < 3; i++) {
      last = await curl([`${host('limit')}/`])
      statuses.push(last.status)
    }
    expect(statuses).toEqual([200, 200, 429])
    expect(Number(last!.headers['retry-after'])).toBeGreaterThan(0)
    expect(last!.headers['warren-error-code']).toBe('ERR_WARREN_2104')
  })

  test('compress-response: gzip by Accept-Encoding; the upstream Content-Length does not survive', async () => {
    const res = await hostFetch(edge, 'gzip.warren.localhost', '/text', { headers: { 'accept-encoding': 'br;q=0.5, gzip' }, decompress: false } as RequestInit)
    expect(res.headers.get('content-encoding')).toBe('gzip')
    expect(res.headers.get('vary')).toContain('Accept-Encoding')
    const raw = Buffer.from(await res.arrayBuffer())
    // Bun may frame a short finished stream with its own Content-Length; it must be the compressed size.
    expect(res.headers.get('content-length') ?? String(raw.length)).toBe(String(raw.length))
    const text = gunzipSync(raw).toString()
    expect(raw.length).toBeLessThan(text.length)
    expect(text).toStartWith('The password is hunter2.')
    const plain = await hostFetch(edge, 'gzip.warren.localhost', '/text', { headers: { 'accept-encoding': 'identity' }, decompress: false } as RequestInit)
    expect(plain.headers.get('content-encoding')).toBeNull()
  })

  test('circuit-breaker opens after upstream 5xx and answers 503', async () => {
    expect((await curl([`${host('breaker')}/status/500`])).status).toBe(500)
    expect((await curl([`${host('breaker')}/status/502`])).status).toBe(502)
    const open = await curl([`${host('breaker')}/echo`])
    expect(open.status).toBe(503)
    expect(open.headers['warren-error-code']).toBe('ERR_WARREN_2105')
    expect(Number(open.headers['retry-after'])).toBeGreaterThan(0)
  })

  test('close-connection drops the connection without an answer', async () => {
    const res = await curl([`${host('close')}/`])
    expect(res.status).toBe(0)
    expect([52, 56]).toContain(res.exitCode)
    await edge.waitForLog(/"endpoint":"http:\/\/close\.warren\.localhost".*"closed":true/)
  })

  test('on_tcp_connect runs for http endpoints: deny closes', async () => {
    const res = await curl([`${host('tcpdeny')}/`])
    expect(res.status).toBe(0)
    expect(res.body).not.toContain('unreachable')
  })

  test('request-body-find-replace and response-body-find-replace', async () => {
    const echo = JSON.parse((await curl(['--data-binary', 'name=ann&card=4111111111111111', `${host('body')}/echo`])).body)
    expect(echo.body).toBe('name=ann&card=XXXX')
    expect(echo.headers['content-length']).toBe(String('name=ann&card=XXXX'.length))
    const text = await curl([`${host('body')}/text`])
    expect(text.body).not.toContain('hunter2')
    expect(text.body).toStartWith('The password is *******.')
  })

  test('forward-internal: both policies run, upstream sees the public Host and X-Forwarded-*', async () => {
    const res = await curl([`${host('front')}/hello`])
    expect(res.status).toBe(200)
    expect(res.headers['x-internal-response']).toBe('1')
    expect(res.headers['x-front-response']).toBe('1')
    const seen = JSON.parse(res.body)
    expect(seen.path).toBe('/hello')
    expect(seen.headers['host']).toBe(`front.warren.localhost:${edge.httpPort}`)
    expect(seen.headers['x-forwarded-host']).toBe(`front.warren.localhost:${edge.httpPort}`)
    expect(seen.headers['x-forwarded-proto']).toBe('http')
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1')
    expect(seen.headers['x-front']).toBe('1')
    expect(seen.headers['x-internal']).toBe('http://api.internal')
  })

  test('internal endpoints are not reachable from the listener', async () => {
    const res = await hostFetch(edge, 'api.internal', '/')
    expect(res.status).toBe(404)
    expect(res.headers.get('warren-error-code')).toBe('ERR_WARREN_3200')
  })

  test('forward-internal on_error continue falls through; loops are stopped', async () => {
    const missing = await curl([`${host('front')}/missing`])
    expect(missing.status).toBe(299)
    expect(missing.body).toBe('fallback ERR_WARREN_3200')
    const loop = await curl([`${host('front')}/loop`])
    expect(loop.status).toBe(508)
    expect(loop.headers['warren-error-code']).toBe('ERR_WARREN_2106')
  })

  test('http-request to an internal endpoint: result variables for later actions', async () => {
    const res = await curl([`${host('front')}/side`])
    const [status, ...rest] = res.body.split(' ')
    expect(status).toBe('200')
    const seen = JSON.parse(rest.join(' '))
    expect(seen.path).toBe('/from-side')
    expect(seen.headers['x-internal']).toBe('http://api.internal')
    expect(seen.headers['warren-req-type']).toBe('http-request')
  })

  test('terminate-tls on an http endpoint is a load error that disables only that endpoint', async () => {
    await edge.waitForLog(/tls-on-http\.yml.*terminate-tls applies to https:\/\/ and tls:\/\/ endpoints/)
    expect((await curl([`${host('badtls')}/`])).status).toBe(404)
    expect((await curl([`${host('deny')}/`])).status).toBe(404)
  })
})
