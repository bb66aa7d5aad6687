import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { curl } from './framework/curl.ts'
import { freePort } from './framework/ports.ts'
import { eventually, startEdge, type Edge } from './framework/process.ts'
import { echoRoundTrip, startEchoServer } from './framework/tcp.ts'
import { startUpstream } from './framework/upstreams.ts'

// /metrics of the compiled binary, scraped and parsed as Prometheus would.
const KEY = 'e2e-metrics-key'
const echo = startEchoServer()
const upstream = startUpstream('metrics-origin')
let edge: Edge
let tcpPort: number

interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/** A strict parser of the text exposition format: every line is HELP, TYPE or a well-formed sample. */
function parse(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = []
  const types = new Map<string, string>()
  for (const line of text.split('\n')) {
    if (line === '') continue
    if (line.startsWith('# HELP ')) continue
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line)
    if (type) {
      types.set(type[1]!, type[2]!)
      continue
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9.e+-]+|\+Inf|-Inf|NaN)$/.exec(line)
    if (!m) throw new Error(`not a valid exposition line: ${line}`)
    const labels: Record<string, string> = {}
    if (m[2]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)/g
      let consumed = 0
      for (const l of m[2].matchAll(re)) {
        labels[l[1]!] = l[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\')
        consumed += l[0].length
      }
      if (consumed !== m[2].length) throw new Error(`bad labels in: ${line}`)
    }
    samples.push({ name: m[1]!, labels, value: Number(m[3] === '+Inf' ? Infinity : m[3]) })
  }
  return { samples, types }
}

async function scrape(): Promise<{ samples: Sample[]; types: Map<string, string> }> {
  const res = await fetch(`http://127.0.0.1:${edge.apiPort}/metrics`, { headers: { authorization: `Bearer ${KEY}` } })
  expect(res.status).toBe(200)
  expect(res.headers.get('content-type')).toContain('text/plain; version=0.0.4')
  return parse(await res.text())
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value
}

beforeAll(async () => {
  tcpPort = await freePort()
  edge = await startEdge({
    config: `api_keys: [${KEY}]\n`,
    policies: {
      'hello.yml': `url: http://metrics.warren.localhost\ntraffic_policy:\n  on_http_request:\n    - actions: [{type: forward-external, config: {url: "http://127.0.0.1:${upstream.port}"}}]\n`,
      'tcp.yml': `url: tcp://echo.warren.localhost:${tcpPort}\ntraffic_policy:\n  on_tcp_connect:\n    - actions: [{type: forward-external, config: {url: "tcp://127.0.0.1:${echo.port}"}}]\n`,
      'secure.yml': 'url: https://secure-metrics.warren.localhost\ntraffic_policy:\n  on_http_request:\n    - actions: [{type: custom-response, config: {body: ok}}]\n',
    },
  })
})
afterAll(async () => {
  await edge?.stop()
  echo.stop(true)
  upstream.stop(true)
})

describe('/metrics (compiled binary)', () => {
  test('needs the API key', async () => {
    expect((await fetch(`http://127.0.0.1:${edge.apiPort}/metrics`)).status).toBe(401)
  })

  test('requests by endpoint and status, latency histogram, bytes, connections, reloads, certificates', async () => {
    for (let i = 0; i < 3; i++) expect((await curl(['-H', 'Host: metrics.warren.localhost', `${edge.base}/status/201`])).status).toBe(201)
    expect((await curl(['-H', 'Host: unknown.warren.localhost', `${edge.base}/`])).status).toBe(404)
    const r = await echoRoundTrip(tcpPort, 50_000)
    expect(r.receivedBytes).toBe(50_000)
    const host = 'secure-metrics.warren.localhost'
    expect((await curl(['--cacert', edge.caPath, '--resolve', `${host}:${edge.httpsPort}:127.0.0.1`, `https://${host}:${edge.httpsPort}/`])).body).toBe('ok')

    const endpoint = 'http://metrics.warren.localhost'
    let m = await scrape()
    // The upstream's answers ("status 201") declare their length.
    // The tcp relay reports when both sides closed; give it a moment.
    await eventually(async () => value((m = await scrape()).samples, 'warren_tcp_connections_total', { protocol: 'tcp' }) === 1, 3000)
    const { samples, types } = m
    expect(types.get('warren_http_requests_total')).toBe('counter')
    expect(types.get('warren_http_request_duration_seconds')).toBe('histogram')
    expect(types.get('warren_active_connections')).toBe('gauge')
    expect(value(samples, 'warren_http_requests_total', { endpoint, status: '201' })).toBe(3)
    expect(value(samples, 'warren_http_requests_total', { endpoint: '', status: '404' })).toBe(1)
    expect(value(samples, 'warren_http_request_duration_seconds_count', { endpoint })).toBe(3)
    expect(value(samples, 'warren_http_request_duration_seconds_bucket', { endpoint, le: '+Inf' })).toBe(3)
    // Buckets are cumulative: never decreasing with le.
    const buckets = samples.filter((s) => s.name === 'warren_http_request_duration_seconds_bucket' && s.labels.endpoint === endpoint).map((s) => s.value)
    expect(buckets).toEqual([...buckets].sort((a, b) => a - b))
    expect(value(samples, 'warren_http_response_body_bytes_total', { endpoint })).toBe(30)
    expect(value(samples, 'warren_tcp_bytes_total', { protocol: 'tcp', direction: 'in' })).toBe(50_000)
    expect(value(samples, 'warren_tcp_bytes_total', { protocol: 'tcp', direction: 'out' })).toBe(50_000)
    expect(value(samples, 'warren_tcp_connections_total', { protocol: 'https' })).toBeGreaterThanOrEqual(1)
    expect(value(samples, 'warren_active_connections', { listener: 'tcp' })).toBe(0)
    expect(value(samples, 'warren_agent_sessions')).toBe(0)
    expect(value(samples, 'warren_endpoints', { type: 'cloud' })).toBe(3)
    expect(value(samples, 'warren_config_reloads_total', { reason: 'start' })).toBe(1)
    expect(value(samples, 'warren_build_info')).toBe(1)
    // The https request issued a development certificate; its expiry is in the future.
    const expiry = samples.find((s) => s.name === 'warren_certificate_expiry_timestamp_seconds' && s.labels.names!.includes(host))
    expect(expiry?.labels.source).toBe('dev')
    expect(expiry!.value * 1000).toBeGreaterThan(Date.now())
  })

  test('reload failures are counted; open tcp connections show as active', async () => {
    edge.writePolicy('broken.yml', 'url: http://broken.warren.localhost\ntraffic_policy: {on_http_request: [{actions: [{type: nope}]}]}\n')
    expect(await eventually(async () => value((await scrape()).samples, 'warren_config_reload_failures_total', { reason: 'watch' }) === 1, 5000)).toBe(true)
    const socket = await Bun.connect({ hostname: '127.0.0.1', port: tcpPort, socket: { data() {} } })
    try {
      expect(await eventually(async () => value((await scrape()).samples, 'warren_active_connections', { listener: 'tcp' }) === 1, 3000)).toBe(true)
    } finally {
      socket.end()
    }
    expect(await eventually(async () => value((await scrape()).samples, 'warren_active_connections', { listener: 'tcp' }) === 0, 3000)).toBe(true)
  })
})
