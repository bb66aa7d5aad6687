import { describe, expect, test } from 'bun:test'
import { EventBus } from '../events/bus.ts'
import { makeEvent } from '../events/types.ts'
import { edgeMetrics } from './edge.ts'

/** Parses the exposition text into `name{labels} → value`. */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue
    const i = line.lastIndexOf(' ')
    out.set(line.slice(0, i), Number(line.slice(i + 1)))
  }
  return out
}

describe('edgeMetrics()', () => {
  test('a request counted without its event (countRequest) lands in the same series as one from an event', () => {
    const bus = new EventBus()
    const metrics = edgeMetrics({ bus })
    const tally = { endpoint: 'http://a.example.com', endpointId: 'ep_a', method: 'GET', path: '/', status: 200, durationMs: 20, requestBytes: 0, responseBytes: 5 }
    expect(bus.countRequest(tally)).toBe(true)
    // The emitter reuses its object: the counters read it before countRequest returned.
    tally.status = 404
    tally.responseBytes = -1
    expect(bus.countRequest(tally)).toBe(true)
    const m = parseMetrics(metrics.render())
    expect(m.get('warren_http_requests_total{endpoint="http://a.example.com",status="200"}')).toBe(1)
    expect(m.get('warren_http_requests_total{endpoint="http://a.example.com",status="404"}')).toBe(1)
    expect(m.get('warren_http_request_duration_seconds_count{endpoint="http://a.example.com"}')).toBe(2)
    expect(m.get('warren_http_response_body_bytes_total{endpoint="http://a.example.com"}')).toBe(5)
    expect(m.has('warren_http_request_body_bytes_total{endpoint="http://a.example.com"}')).toBe(false)
    expect(m.get('warren_events_total{type="http_request_complete.v0"}')).toBe(2)
    expect(bus.emitted).toBe(2)
  })

  test('counts requests, latency, connections, bytes, sessions and reloads from events', () => {
    const bus = new EventBus()
    const metrics = edgeMetrics({
      bus,
      endpoints: () => [{ kind: 'cloud' }, { kind: 'cloud' }, { kind: 'agent' }],
      agentSessions: () => 1,
      activeConnections: () => ({ http: 2, tcp: 3 }),
      certificates: () => [{ names: ['a.example.com', '*.example.com'], notAfter: new Date(1_900_000_000_000), source: 'dev' }],
      sinkDrops: () => [{ name: 'file:/tmp/x', dropped: 4 }],
      poolRetries: () => [{ endpoint: 'https://p.example.com', reason: 'session closed', count: 5 }],
    })
    const conn = { client_ip: '1.2.3.4', client_port: 1, server_ip: '', server_name: 'a.example.com', server_port: 80, start_ts: '2026-01-01T00:00:00.000Z' }
    const endpoint = { id: 'ep_1', url: 'http://a.example.com', type: 'cloud' as const }
    for (const status of [200, 200, 503])
      bus.emit(
        makeEvent('http_request_complete.v0', {
          conn,
          http: { request: { method: 'GET', url: { scheme: 'http', host: 'a', path: '/', query: '', raw: '' }, user_agent: '', body_length: 10 }, response: { status_code: status, body_length: 100 } },
          endpoint,
          duration_ms: 20,
          error_code: null,
          traffic_policy: null,
        }),
      )
    bus.emit(
      makeEvent('tcp_connection_closed.v0', {
        conn: { ...conn, end_ts: '2026-01-01T00:00:02.000Z', bytes_in: 300, bytes_out: 4000 },
        endpoint: { id: 'ep_2', url: 'tcp://t:1', type: 'cloud' },
        protocol: 'tcp',
        traffic_policy: null,
      }),
    )
    bus.emit(makeEvent('config_reload.v0', { reason: 'watch', version: 2, ok: false, endpoints: 3, changed: [], errors: [] }))
    bus.emit(makeEvent('agent_session_start.v0', { id: 's', account: 'a', remote_addr: '', started_at: '', agent_version: '', os: '', client_info: {} }))
    const m = parseMetrics(metrics.render())
    expect(m.get('warren_http_requests_total{endpoint="http://a.example.com",status="200"}')).toBe(2)
    expect(m.get('warren_http_requests_total{endpoint="http://a.example.com",status="503"}')).toBe(1)
    expect(m.get('warren_http_request_duration_seconds_bucket{endpoint="http://a.example.com",le="0.025"}')).toBe(3)
    expect(m.get('warren_http_request_duration_seconds_bucket{endpoint="http://a.example.com",le="0.01"}')).toBe(0)
    expect(m.get('warren_http_request_duration_seconds_count{endpoint="http://a.example.com"}')).toBe(3)
    expect(m.get('warren_http_response_body_bytes_total{endpoint="http://a.example.com"}')).toBe(300)
    expect(m.get('warren_tcp_bytes_total{endpoint="tcp://t:1",protocol="tcp",direction="in"}')).toBe(300)
    expect(m.get('warren_tcp_bytes_total{endpoint="tcp://t:1",protocol="tcp",direction="out"}')).toBe(4000)
    expect(m.get('warren_tcp_connection_duration_seconds_sum{endpoint="tcp://t:1",protocol="tcp"}')).toBe(2)
    expect(m.get('warren_config_reloads_total{reason="watch"}')).toBe(1)
    expect(m.get('warren_config_reload_failures_total{reason="watch"}')).toBe(1)
    expect(m.get('warren_agent_session_starts_total')).toBe(1)
    expect(m.get('warren_agent_sessions')).toBe(1)
    expect(m.get('warren_active_connections{listener="tcp"}')).toBe(3)
    expect(m.get('warren_endpoints{type="cloud"}')).toBe(2)
    expect(m.get('warren_certificate_expiry_timestamp_seconds{names="a.example.com,*.example.com",source="dev"}')).toBe(1_900_000_000)
    expect(m.get('warren_events_dropped_total{sink="file:/tmp/x"}')).toBe(4)
    expect(m.get('warren_events_total{type="http_request_complete.v0"}')).toBe(3)
    expect(m.get('warren_pool_retries_total{endpoint="https://p.example.com",reason="session closed"}')).toBe(5)
  })
})
