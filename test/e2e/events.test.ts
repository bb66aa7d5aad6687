import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { curl } from './framework/curl.ts'
import { openEventStream, type EventStream } from './framework/event-stream.ts'
import { freePort } from './framework/ports.ts'
import { eventually, fileEvents, startEdge, type Edge } from './framework/process.ts'
import { echoRoundTrip, startEchoServer } from './framework/tcp.ts'
import { startUpstream } from './framework/upstreams.ts'

// Events from the compiled binary: file and HTTP sinks, byte counts of tcp and https connections,
// log-action metadata, config reloads, and the API's live stream with a CEL filter.
const KEY = 'e2e-events-key'
const upstream = startUpstream('events-origin')
const echo = startEchoServer()
const received: any[] = []
const receiver = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  async fetch(req) {
    received.push(...((await req.json()) as unknown[]))
    return new Response(null, { status: 204 })
  },
})
let edge: Edge
let tcpPort: number

const HTTP_POLICY = `url: http://events.warren.localhost
traffic_policy:
  on_http_request:
    - actions:
        - type: log
          config: {metadata: {route: "\${req.url.path}", team: blue}}
        - type: forward-external
          config: {url: "http://127.0.0.1:${upstream.port}"}
`
const HTTPS_POLICY = `url: https://secure-events.warren.localhost
traffic_policy:
  on_http_request:
    - actions: [{type: custom-response, config: {status_code: 200, body: "secure hello"}}]
`


async function waitForEvent(find: () => any | undefined, what: string, timeoutMs = 5000): Promise<any> {
  let found: any
  const ok = await eventually(async () => (found = find()) !== undefined, timeoutMs)
  if (!ok) throw new Error(`no ${what} within ${timeoutMs} ms; file events:\n${fileEvents(edge).map((e) => JSON.stringify(e)).join('\n')}`)
  return found
}

/** Opens /events/stream on the edge's API. */
function openStream(filter?: string): Promise<EventStream> {
  return openEventStream(edge.apiPort, KEY, filter)
}

beforeAll(async () => {
  tcpPort = await freePort()
  edge = await startEdge({
    config: `api_keys: [${KEY}]
events:
  sinks:
    - type: file
      path: events.jsonl
    - type: http
      url: http://127.0.0.1:${receiver.port}/ingest
      batch_size: 5
      flush_interval: 0.05
      filter: 'event_type == "http_request_complete.v0"'
`,
    policies: {
      'http.yml': HTTP_POLICY,
      'https.yml': HTTPS_POLICY,
      'tcp.yml': `url: tcp://echo.warren.localhost:${tcpPort}\ntraffic_policy:\n  on_tcp_connect:\n    - actions:\n        - type: log\n          config: {metadata: {kind: echo}}\n        - type: forward-external\n          config: {url: "tcp://127.0.0.1:${echo.port}"}\n`,
    },
  })
})
afterAll(async () => {
  await edge?.stop()
  upstream.stop(true)
  echo.stop(true)
  receiver.stop(true)
})

describe('events (compiled binary)', () => {
  test('the first load is a config_reload.v0 event', async () => {
    const e = await waitForEvent(() => fileEvents(edge).find((e) => e.event_type === 'config_reload.v0'), 'config_reload.v0')
    expect(e.event_id).toMatch(/^ev_/)
    expect(Date.parse(e.event_timestamp)).toBeGreaterThan(0)
    expect(e.object).toMatchObject({ reason: 'start', ok: true, endpoints: 3, errors: [] })
    expect(e.object.changed.sort()).toEqual(['http.yml', 'https.yml', 'tcp.yml'])
  })

  test('an HTTP request is one http_request_complete.v0 with ngrok field names and the log metadata', async () => {
    const res = await curl(['-H', 'Host: events.warren.localhost', '-H', 'User-Agent: events-test', `${edge.base}/bytes/12345?x=1`])
    expect(res.status).toBe(200)
    expect(res.body.length).toBe(12345)
    const e = await waitForEvent(() => fileEvents(edge).find((e) => e.event_type === 'http_request_complete.v0' && e.object.http.request.url.path === '/bytes/12345'), 'request event')
    expect(e.object.conn).toMatchObject({ client_ip: '127.0.0.1', server_name: 'events.warren.localhost', server_port: edge.httpPort })
    expect(e.object.http.request).toMatchObject({ method: 'GET', user_agent: 'events-test', body_length: 0, url: { scheme: 'http', host: 'events.warren.localhost', path: '/bytes/12345', query: 'x=1' } })
    expect(e.object.http.response.status_code).toBe(200)
    expect(e.object.endpoint).toMatchObject({ url: 'http://events.warren.localhost', type: 'cloud' })
    expect(e.object.traffic_policy).toEqual({ logs: { route: '/bytes/12345', team: 'blue' } })
    expect(e.object.duration_ms).toBeGreaterThanOrEqual(0)
    // Exactly one event for the request.
    expect(fileEvents(edge).filter((x) => x.object.http?.request.url.path === '/bytes/12345').length).toBe(1)
  })

  test('an unknown host is an event with the edge error code and no endpoint', async () => {
    await curl(['-H', 'Host: nobody.warren.localhost', `${edge.base}/missing`])
    const e = await waitForEvent(() => fileEvents(edge).find((e) => e.object.conn?.server_name === 'nobody.warren.localhost'), '404 event')
    expect(e.object).toMatchObject({ endpoint: null, error_code: 'ERR_WARREN_3200', http: { response: { status_code: 404 } } })
  })

  test('a tcp connection is one tcp_connection_closed.v0 with exact byte counts', async () => {
    const sizes = [1, 70_000, 3 * 1024 * 1024]
    for (const size of sizes) {
      const r = await echoRoundTrip(tcpPort, size)
      expect(r.receivedBytes).toBe(size)
    }
    for (const size of sizes) {
      const e = await waitForEvent(() => fileEvents(edge).find((e) => e.event_type === 'tcp_connection_closed.v0' && e.object.protocol === 'tcp' && e.object.conn.bytes_in === size), `tcp event of ${size} bytes`)
      expect(e.object.conn.bytes_out).toBe(size)
      expect(e.object.conn).toMatchObject({ client_ip: '127.0.0.1', server_port: tcpPort })
      expect(Date.parse(e.object.conn.end_ts)).toBeGreaterThanOrEqual(Date.parse(e.object.conn.start_ts))
      expect(e.object.endpoint).toMatchObject({ url: `tcp://echo.warren.localhost:${tcpPort}` })
      expect(e.object.traffic_policy).toEqual({ logs: { kind: 'echo' } })
    }
  })

  test('an https connection (TLS terminated at the edge) is one tcp_connection_closed.v0 as well as a request event', async () => {
    const host = 'secure-events.warren.localhost'
    const res = await curl(['--cacert', edge.caPath, '--resolve', `${host}:${edge.httpsPort}:127.0.0.1`, `https://${host}:${edge.httpsPort}/tls`])
    expect(res.body).toBe('secure hello')
    const conn = await waitForEvent(() => fileEvents(edge).find((e) => e.event_type === 'tcp_connection_closed.v0' && e.object.protocol === 'https'), 'https connection event')
    expect(conn.object.conn.server_name).toBe(host)
    // A TLS handshake alone is well over a few hundred bytes each way.
    expect(conn.object.conn.bytes_in).toBeGreaterThan(200)
    expect(conn.object.conn.bytes_out).toBeGreaterThan(500)
    const req = await waitForEvent(() => fileEvents(edge).find((e) => e.event_type === 'http_request_complete.v0' && e.object.conn.server_name === host), 'https request event')
    expect(req.object.http.request.url.scheme).toBe('https')
    expect(req.object.conn.client_ip).toBe('127.0.0.1')
  })

  test('the HTTP sink receives batches of the events its filter selects', async () => {
    await curl(['-H', 'Host: events.warren.localhost', `${edge.base}/to-the-sink`])
    const e = await waitForEvent(() => received.find((e) => e.object.http?.request.url.path === '/to-the-sink'), 'event at the HTTP sink')
    expect(e.event_type).toBe('http_request_complete.v0')
    expect(received.every((e) => e.event_type === 'http_request_complete.v0')).toBe(true)
  })

  test('/events/stream?filter= streams only matching events, live', async () => {
    const filtered = await openStream('ev.http.request.url.path == "/wanted" || event_type == "tcp_connection_closed.v0"')
    const all = await openStream()
    try {
      await curl(['-H', 'Host: events.warren.localhost', `${edge.base}/unwanted`])
      await curl(['-H', 'Host: events.warren.localhost', `${edge.base}/wanted`])
      await echoRoundTrip(tcpPort, 4321)
      expect(await eventually(async () => filtered.messages.some((m) => m.data?.object?.conn?.bytes_in === 4321), 5000)).toBe(true)
      expect(await eventually(async () => all.messages.some((m) => m.data?.object?.http?.request.url.path === '/unwanted'), 5000)).toBe(true)
      const paths = filtered.messages.filter((m) => m.event === 'http_request_complete.v0').map((m) => m.data.object.http.request.url.path)
      expect(paths).toEqual(['/wanted'])
      const tcp = filtered.messages.find((m) => m.event === 'tcp_connection_closed.v0')!
      expect(tcp.data.object.conn.bytes_out).toBe(4321)
    } finally {
      filtered.stop()
      all.stop()
    }
  })

  test('a bad filter is a 400 with the reason; no key is a 401', async () => {
    const bad = await fetch(`http://127.0.0.1:${edge.apiPort}/events/stream?filter=${encodeURIComponent('ev.http.response.status_code >')}`, { headers: { authorization: `Bearer ${KEY}` } })
    expect(bad.status).toBe(400)
    expect(await bad.json()).toMatchObject({ error_code: 'ERR_WARREN_6004' })
    expect((await fetch(`http://127.0.0.1:${edge.apiPort}/events/stream`)).status).toBe(401)
  })

  test('a hot reload is a config_reload.v0 event with the changed file and its errors', async () => {
    const stream = await openStream('event_type == "config_reload.v0"')
    try {
      edge.writePolicy('broken.yml', 'url: http://broken.warren.localhost\ntraffic_policy:\n  on_http_request:\n    - actions: [{type: no-such-action}]\n')
      expect(await eventually(async () => stream.messages.some((m) => m.data?.object?.changed?.includes('broken.yml')), 5000)).toBe(true)
      const e = stream.messages.find((m) => m.data?.object?.changed?.includes('broken.yml'))!.data
      expect(e.object).toMatchObject({ reason: 'watch', ok: false })
      expect(e.object.errors[0]).toMatchObject({ file: 'broken.yml', code: expect.stringMatching(/^ERR_WARREN_/) })
    } finally {
      stream.stop()
    }
  })
})
