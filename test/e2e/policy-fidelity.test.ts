import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { gunzipSync } from 'node:zlib'
import { curl } from './framework/curl.ts'
import { eventually, fileEvents, startEdge, type Edge } from './framework/process.ts'
import { rawRequest, startRawHeadUpstream } from './framework/raw.ts'

// Traffic-policy behaviour as ngrok's documentation writes it, through the compiled binary: the
// policies below use the documented forms (header names as sent, set-vars as a map, url-rewrite
// from `${req.url.authority}`), and each test checks what the client or the upstream got.

/**
 * An upstream on raw sockets, so the test sees header lines exactly as they arrived (a Bun.serve
 * upstream joins repeated names). It answers with the request head as its body, plus an
 * `X-Tag: upstream` and a short text for `/text`.
 */
const upstream = startRawHeadUpstream((head) => {
  const path = head.split(' ')[1] ?? '/'
  const body = path === '/text' ? 'short text' : head
  const type = path === '/text' ? 'text/plain' : 'application/octet-stream'
  return `HTTP/1.1 200 OK\r\ncontent-type: ${type}\r\nx-tag: upstream\r\ncontent-length: ${Buffer.byteLength(body, 'latin1')}\r\n\r\n${body}`
})
const heads = upstream.heads
const forward = `{type: forward-external, config: {url: "http://127.0.0.1:${upstream.port}"}}`

/** The header lines of a request head or a raw response, lower-cased names, in order. */
function lines(text: string): string[] {
  const head = text.split('\r\n\r\n')[0]!
  return head
    .split('\r\n')
    .slice(1)
    .map((l) => l.replace(/^([^:]+):\s*/, (_, n: string) => `${n.toLowerCase()}: `))
}

let edge: Edge
const url = (name: string, path = '/') => `http://${name}.warren.localhost:${edge.httpPort}${path}`


beforeAll(async () => {
  edge = await startEdge({
    config: 'events:\n  sinks:\n    - type: file\n      path: events.jsonl\n',
    policies: {
      // ngrok: add-headers with a name already present appends a header.
      'append.yml': `url: http://append.warren.localhost
traffic_policy:
  on_http_request:
    - actions:
        - {type: add-headers, config: {headers: {X-Tag: edge-request}}}
        - ${forward}
  on_http_response:
    - actions:
        - {type: add-headers, config: {headers: {X-Tag: edge-response}}}
`,
      // ngrok's examples: req.headers['X-Api-Version'], 'Authorization' in req.headers, res.headers[...].
      'cel.yml': `url: http://cel.warren.localhost
traffic_policy:
  on_http_request:
    - expressions: ["'Authorization' in req.headers"]
      actions: [{type: custom-response, config: {status_code: 401, body: "has authorization"}}]
    - expressions: ["req.headers['X-Api-Version'][0] == '2'"]
      actions: [{type: custom-response, config: {body: "api v2"}}]
    - actions: [${forward}]
  on_http_response:
    - expressions: ["res.headers['X-Tag'][0] == 'upstream' && res.headers['Content-Type'][0] == 'text/plain'"]
      actions: [{type: add-headers, config: {headers: {x-saw-upstream: "yes"}}}]
`,
      // set-vars with a map, as one of ngrok's pages writes it.
      'vars.yml': `url: http://vars.warren.localhost
traffic_policy:
  on_http_request:
    - actions:
        - type: set-vars
          config:
            vars:
              tier: gold
              path: \${req.url.path}
        - {type: custom-response, config: {body: "\${vars.tier} \${vars.path}"}}
`,
      // url-rewrite whose from names the authority and whose to is a path.
      'rewrite.yml': `url: http://rewrite.warren.localhost
traffic_policy:
  on_http_request:
    - actions:
        - {type: url-rewrite, config: {from: "\${req.url.authority}/products/([0-9]+)", to: "/products.php?id=$1"}}
        - ${forward}
`,
      'gzip.yml': `url: http://gzip.warren.localhost
traffic_policy:
  on_http_request: [{actions: [${forward}]}]
  on_http_response: [{actions: [{type: compress-response}]}]
`,
      'side.yml': `url: http://side.warren.localhost
traffic_policy:
  on_http_request:
    - actions:
        - {type: http-request, config: {url: "http://target.internal/side"}}
        - {type: custom-response, config: {body: "\${actions.ngrok.http_request.res.body}"}}
`,
      'target.yml': `url: http://target.internal
traffic_policy:
  on_http_request: [{actions: [${forward}]}]
`,
      'made.yml': `url: http://made.warren.localhost
traffic_policy:
  on_http_request:
    - expressions: ["req.url.path == '/deny'"]
      actions: [{type: deny, config: {status_code: 403}}]
    - expressions: ["req.url.path == '/go'"]
      actions: [{type: redirect, config: {to: "/hello"}}]
    - actions: [{type: custom-response, config: {status_code: 200, body: "twelve bytes"}}]
`,
    },
  })
  for (const name of ['append', 'cel', 'vars', 'rewrite', 'gzip', 'side', 'made']) await edge.waitForLog(new RegExp(`${name}\\.warren\\.localhost`), 10_000).catch(() => undefined)
})

afterAll(async () => {
  await edge?.stop()
  upstream.stop()
})

describe('policy fidelity (ngrok-documented forms)', () => {
  test('add-headers with an existing name adds another line, toward the upstream and toward the client', async () => {
    heads.length = 0
    const raw = await rawRequest(edge.httpPort, 'GET /echo HTTP/1.1\r\nHost: append.warren.localhost\r\nX-Tag: client\r\nConnection: close\r\n\r\n', 3000)
    expect(raw).toStartWith('HTTP/1.1 200')
    const sent = lines(heads.at(-1) ?? '').filter((l) => l.startsWith('x-tag:'))
    expect(sent).toEqual(['x-tag: client', 'x-tag: edge-request'])
    const got = lines(raw).filter((l) => l.startsWith('x-tag:'))
    expect(got).toEqual(['x-tag: upstream', 'x-tag: edge-response'])
  })

  test('CEL reads header names as ngrok writes them (any case), in requests and responses', async () => {
    expect((await curl([url('cel'), '-H', 'X-Api-Version: 2'])).body).toBe('api v2')
    expect((await curl([url('cel'), '-H', 'authorization: Bearer x'])).status).toBe(401)
    const passed = await curl([url('cel', '/text')])
    expect(passed.body).toBe('short text')
    expect(passed.headers['x-saw-upstream']).toBe('yes')
  })

  test('set-vars takes a map of name to value', async () => {
    expect((await curl([url('vars', '/shop')])).body).toBe('gold /shop')
  })

  test('url-rewrite: a path `to` keeps scheme and authority when `from` matched the authority', async () => {
    heads.length = 0
    const res = await curl([url('rewrite', '/products/42')])
    expect(res.status).toBe(200)
    expect(heads.at(-1)?.split('\r\n')[0]).toBe('GET /products.php?id=42 HTTP/1.1')
    expect(lines(heads.at(-1)!)).toContain('host: rewrite.warren.localhost:' + edge.httpPort)
  })

  test('compress-response: a 10-byte body is compressed and streamed without Content-Length', async () => {
    const raw = await new Promise<Buffer>((resolve) => {
      const chunks: Buffer[] = []
      void Bun.connect({
        hostname: '127.0.0.1',
        port: edge.httpPort,
        socket: {
          open: (s) => void s.write('GET /text HTTP/1.1\r\nHost: gzip.warren.localhost\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n'),
          data: (_s, d) => void chunks.push(Buffer.from(d)),
          close: () => resolve(Buffer.concat(chunks)),
          error: () => resolve(Buffer.concat(chunks)),
        },
      })
    })
    const end = raw.indexOf('\r\n\r\n')
    const head = lines(raw.subarray(0, end).toString('latin1'))
    expect(head).toContain('content-encoding: gzip')
    expect(head).toContain('transfer-encoding: chunked')
    expect(head.some((l) => l.startsWith('content-length:'))).toBe(false)
    // Undo the chunked framing, then the gzip.
    let rest = raw.subarray(end + 4)
    const body: Buffer[] = []
    for (;;) {
      const crlf = rest.indexOf('\r\n')
      const size = parseInt(rest.subarray(0, crlf).toString(), 16)
      if (!size) break
      body.push(rest.subarray(crlf + 2, crlf + 2 + size))
      rest = rest.subarray(crlf + 4 + size)
    }
    expect(gunzipSync(Buffer.concat(body)).toString()).toBe('short text')
  })

  test('http-request: the side request carries the request type and id, and X-Forwarded-For once', async () => {
    heads.length = 0
    const res = await curl([url('side')])
    expect(res.status).toBe(200)
    const sent = lines(res.body)
    expect(sent).toContain('warren-req-type: http-request')
    expect(sent.find((l) => l.startsWith('warren-req-id:'))).toMatch(/^warren-req-id: [0-9a-f-]{36}$/)
    expect(sent.filter((l) => l.startsWith('x-forwarded-for:'))).toEqual(['x-forwarded-for: 127.0.0.1'])
  })

  test('events: body_length of edge-made answers is their real size', async () => {
    expect((await curl([url('made', '/hello')])).body).toBe('twelve bytes')
    expect((await curl([url('made', '/deny')])).status).toBe(403)
    expect((await curl([url('made', '/go')])).status).toBe(302)
    const page = await curl([url('nothere', '/page')])
    expect(page.status).toBe(404)
    const find = (host: string, path: string) =>
      fileEvents(edge).find((e) => e.event_type === 'http_request_complete.v0' && e.object.http.request.url.path === path && e.object.http.request.url.host === `${host}.warren.localhost`)
    expect(await eventually(async () => [find('made', '/hello'), find('made', '/deny'), find('made', '/go'), find('nothere', '/page')].every(Boolean), 5000)).toBe(true)
    expect(find('made', '/hello').object.http.response.body_length).toBe(12)
    // deny sends no body: a known 0, not -1 (unknown).
    expect(find('made', '/deny').object.http.response).toMatchObject({ status_code: 403, body_length: 0 })
    expect(find('made', '/go').object.http.response).toMatchObject({ status_code: 302, body_length: 0 })
    // The edge's own error page for an unknown host.
    expect(find('nothere', '/page').object.http.response).toMatchObject({ status_code: 404, body_length: Buffer.byteLength(page.body) })
  })
})
