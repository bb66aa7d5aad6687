import { describe, expect, test } from 'bun:test'
import { compileEventFilter } from './filter.ts'
import { makeEvent, type WarrenEvent } from './types.ts'

const tcp: WarrenEvent = makeEvent('tcp_connection_closed.v0', {
  conn: { client_ip: '10.1.2.3', client_port: 5000, server_ip: '127.0.0.1', server_name: 'db.example.com', server_port: 20001, start_ts: '2026-01-01T00:00:00.000Z', end_ts: '2026-01-01T00:00:01.000Z', bytes_in: 2048, bytes_out: 10 },
  endpoint: { id: 'ep_1', url: 'tcp://db.example.com:20001', type: 'cloud' },
  protocol: 'tcp',
  traffic_policy: { logs: { team: 'db' } },
})
const http: WarrenEvent = makeEvent('http_request_complete.v0', {
  conn: { client_ip: '192.168.1.9', client_port: 1, server_ip: '127.0.0.1', server_name: 'api.example.com', server_port: 80, start_ts: '2026-01-01T00:00:00.000Z' },
  http: {
    request: { method: 'POST', url: { scheme: 'http', host: 'api.example.com', path: '/v1/users', query: 'a=1', raw: 'http://api.example.com/v1/users?a=1' }, user_agent: 'curl/8', body_length: 12 },
    response: { status_code: 503, body_length: -1 },
  },
  endpoint: null,
  duration_ms: 3,
  error_code: null,
  traffic_policy: null,
})

describe('compileEventFilter()', () => {
  test.each([
    { desc: 'event_type', expr: 'event_type == "tcp_connection_closed.v0"', tcp: true, http: false },
    { desc: 'ngrok example: server_name and port', expr: 'ev.conn.server_name == "api.example.com" && ev.conn.server_port == 80', tcp: false, http: true },
    { desc: 'matches() in RE2 syntax', expr: 'ev.conn.server_name.matches("^db\\\\.")', tcp: true, http: false },
    { desc: 'bytes threshold', expr: 'ev.conn.bytes_in > 1000', tcp: true, http: false },
    { desc: 'a field the event lacks is false, not an error', expr: 'ev.http.response.status_code >= 500', tcp: false, http: true },
    { desc: 'has() guards', expr: '!has(ev.http) || ev.http.request.method == "GET"', tcp: true, http: false },
    { desc: 'CIDR functions from the policy library', expr: 'inCidrRange(ev.conn.client_ip, "10.0.0.0/8")', tcp: true, http: false },
    { desc: 'log metadata', expr: 'ev.traffic_policy.logs.team == "db"', tcp: true, http: false },
    { desc: 'a dyn result that is not true is false', expr: 'ev.conn.client_ip', tcp: false, http: false },
  ])('$desc', ({ expr, tcp: wantTcp, http: wantHttp }) => {
    const compiled = compileEventFilter(expr)
    if ('error' in compiled) throw new Error(compiled.error)
    expect(compiled.filter(tcp)).toBe(wantTcp)
    expect(compiled.filter(http)).toBe(wantHttp)
  })

  test.each([
    { desc: 'syntax error with its column', expr: 'ev.conn.bytes_in >', message: /invalid filter .*column/ },
    { desc: 'unknown variable', expr: 'req.url.path == "/"', message: /Unknown variable: req/ },
    { desc: 'not a bool', expr: '1 + 2', message: /returns int, not bool/ },
    { desc: 'bad regular expression', expr: 'ev.conn.server_name.matches("(")', message: /invalid regular expression/ },
  ])('rejects $desc', ({ expr, message }) => {
    const compiled = compileEventFilter(expr)
    expect('error' in compiled && compiled.error).toMatch(message)
  })
})
