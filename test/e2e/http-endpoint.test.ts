import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { gzipSync } from 'node:zlib'
import { curl } from './framework/curl.ts'
import { hostFetch, startEdge, type Edge } from './framework/process.ts'
import { startUpstream } from './framework/upstreams.ts'

const upstream = startUpstream('origin')
const slow = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  async fetch(req) {
    const url = new URL(req.url)
    if (url.pathname === '/gzip') return new Response(gzipSync('x'.repeat(100_000)), { headers: { 'content-encoding': 'gzip', 'content-type': 'text/plain' } })
    await Bun.sleep(3000)
    return new Response('late')
  },
})
const forward = (name: string, url: string) => `url: http://${name}.warren.localhost
traffic_policy:
  on_http_request:
    - actions:
        - type: forward-external
          config: {url: "${url}"}
`

let edge: Edge
beforeAll(async () => {
  edge = await startEdge({
    config: 'http:\n  upstream_timeout: 1\n',
    policies: {
      'hello.yml': `url: http://hello.warren.localhost
traffic_policy:
  on_http_request:
    - expressions: ["req.url.path == '/teapot'"]
      actions:
        - type: custom-response
          config: {status_code: 418, body: "short and stout", headers: {x-kind: teapot}}
    - actions:
        - type: custom-response
          config: {body: "hello \${req.url.path}"}
`,
      'app.yml': forward('app', `http://127.0.0.1:${upstream.port}`),
      'down.yml': forward('down', 'http://127.0.0.1:1'),
      'slow.yml': forward('slow', `http://127.0.0.1:${slow.port}`),
      'wild.yml': `url: http://*.wild.warren.localhost
traffic_policy:
  on_http_request:
    - actions: [{type: custom-response, config: {body: "wildcard \${req.host}"}}]
`,
    },
  })
})
afterAll(async () => {
  await edge?.stop()
  upstream.stop(true)
  slow.stop(true)
})

describe('HTTP endpoints through the compiled edge (curl)', () => {
  test('custom-response with a CEL rule and interpolation', async () => {
    const teapot = await curl([`http://hello.warren.localhost:${edge.httpPort}/teapot`])
    expect(teapot.status).toBe(418)
    expect(teapot.headers['x-kind']).toBe('teapot')
    expect(teapot.body).toBe('short and stout')
    const other = await curl([`http://hello.warren.localhost:${edge.httpPort}/abc`])
    expect(other.status).toBe(200)
    expect(other.body).toBe('hello /abc')
  })

  test('Host without a port matches the listener port', async () => {
    const res = await curl(['-H', 'Host: hello.warren.localhost', `${edge.base}/p`])
    expect(res.body).toBe('hello /p')
  })

  test('wildcard endpoint answers any subdomain', async () => {
    const res = await curl([`http://x.y.wild.warren.localhost:${edge.httpPort}/`])
    expect(res.body).toBe(`wildcard x.y.wild.warren.localhost:${edge.httpPort}`)
  })

  test('unknown host: 404 with ERR_WARREN_3200', async () => {
    const res = await curl([`http://missing.warren.localhost:${edge.httpPort}/`])
    expect(res.status).toBe(404)
    expect(res.headers['warren-error-code']).toBe('ERR_WARREN_3200')
    expect(res.body).toContain('ERR_WARREN_3200')
  })

  test('browsers get an HTML error page', async () => {
    const res = await curl(['-H', 'Accept: text/html', `http://missing.warren.localhost:${edge.httpPort}/`])
    expect(res.headers['content-type']).toContain('text/html')
    expect(res.body).toContain('<code>ERR_WARREN_3200</code>')
  })

  test('forward-external: upstream sees X-Forwarded-*, the original Host, no hop-by-hop headers', async () => {
    const res = await curl([
      '-H', 'X-Forwarded-For: 203.0.113.7',
      '-H', 'Connection: keep-alive, X-Hop',
      '-H', 'X-Hop: secret',
      '-H', 'Keep-Alive: timeout=5',
      '-H', 'TE: trailers',
      '-H', 'X-Custom: kept',
      `http://app.warren.localhost:${edge.httpPort}/echo?q=1`,
    ])
    expect(res.status).toBe(200)
    const seen = JSON.parse(res.body)
    expect(seen.path).toBe('/echo?q=1')
    expect(seen.headers['host']).toBe(`app.warren.localhost:${edge.httpPort}`)
    expect(seen.headers['x-forwarded-for']).toBe('203.0.113.7, 127.0.0.1')
    expect(seen.headers['x-forwarded-proto']).toBe('http')
    expect(seen.headers['x-forwarded-host']).toBe(`app.warren.localhost:${edge.httpPort}`)
    expect(seen.headers['x-custom']).toBe('kept')
    expect(seen.headers['x-hop']).toBeUndefined()
    expect(seen.headers['keep-alive']).toBeUndefined()
    expect(seen.headers['te']).toBeUndefined()
  })

  test('POST bodies are forwarded intact', async () => {
    const res = await curl(['--data-binary', 'a'.repeat(100_000), `http://app.warren.localhost:${edge.httpPort}/count`])
    expect(JSON.parse(res.body).bodyBytes).toBe(100_000)
  })

  test('upstream status codes pass through', async () => {
    const res = await curl([`http://app.warren.localhost:${edge.httpPort}/status/503`])
    expect(res.status).toBe(503)
    expect(res.headers['warren-error-code']).toBeUndefined()
  })

  test('an upstream cannot fake Warren-Error-Code, nor send hop-by-hop headers', async () => {
    const res = await curl([`http://app.warren.localhost:${edge.httpPort}/spoof`])
    expect(res.status).toBe(200)
    expect(res.body).toBe('spoofed')
    expect(res.headers['warren-error-code']).toBeUndefined()
    expect(res.headers['x-secret']).toBeUndefined()
  })

  test('upstream refused: 502 with ERR_WARREN_8012', async () => {
    const res = await curl([`http://down.warren.localhost:${edge.httpPort}/`])
    expect(res.status).toBe(502)
    expect(res.headers['warren-error-code']).toBe('ERR_WARREN_8012')
    expect(res.body).toContain('The upstream http://127.0.0.1:1 refused')
    // An API client asking for JSON gets the agent's shape, naming the upstream.
    const json = await curl(['-H', 'Accept: application/json', `http://down.warren.localhost:${edge.httpPort}/`])
    expect(json.status).toBe(502)
    expect(json.headers['content-type']).toBe('application/json')
    expect(JSON.parse(json.body)).toEqual({ error: { code: 'ERR_WARREN_8012', message: 'The upstream http://127.0.0.1:1 refused or dropped the connection.', upstream: 'http://127.0.0.1:1' } })
  })

  test('upstream too slow: 504 with ERR_WARREN_3005 after upstream_timeout', async () => {
    const started = Date.now()
    const res = await curl([`http://slow.warren.localhost:${edge.httpPort}/`])
    expect(res.status).toBe(504)
    expect(res.headers['warren-error-code']).toBe('ERR_WARREN_3005')
    expect(Date.now() - started).toBeLessThan(2900)
  })

  test('compressed upstream bodies are not decompressed', async () => {
    const res = await hostFetch(edge, `slow.warren.localhost`, '/gzip', { headers: { 'accept-encoding': 'gzip' }, decompress: false } as RequestInit)
    expect(res.headers.get('content-encoding')).toBe('gzip')
    const raw = new Uint8Array(await res.arrayBuffer())
    expect(raw.length).toBeLessThan(1000)
    expect(raw[0]).toBe(0x1f)
    expect(raw[1]).toBe(0x8b)
  })

  test('oversized request headers: 431', async () => {
    const res = await curl(['-H', `X-Big: ${'b'.repeat(20_000)}`, `http://app.warren.localhost:${edge.httpPort}/`])
    expect(res.status).toBe(431)
  })

  test('one JSON log line per request with endpoint, status and duration', async () => {
    await curl([`http://hello.warren.localhost:${edge.httpPort}/logged-path`])
    const line = await edge.waitForLog(/"path":"\/logged-path"/)
    const entry = JSON.parse(line)
    expect(entry.endpoint).toBe('http://hello.warren.localhost')
    expect(entry.status).toBe(200)
    expect(typeof entry.duration_ms).toBe('number')
  })
})
