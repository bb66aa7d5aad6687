import { describe, expect, test } from 'bun:test'
import { CaptureStore, HttpTap } from '../inspect/capture.ts'
import { Dashboard, type DashboardSource } from './dashboard.ts'

function source(over: Partial<DashboardSource> = {}): DashboardSource {
  return {
    status: () => 'online',
    account: () => 'alice',
    version: '1.2.3',
    server: 'edge.example.com:4443',
    latencyMs: () => 1.5,
    webInterface: () => 'http://127.0.0.1:4040',
    forwarding: () => [
      { url: 'https://web.example.com', upstream: 'http://localhost:8080' },
      { url: 'tcp://tcp.example.com:20001', upstream: 'localhost:22' },
    ],
    connections: () => ({ total: 12, open: 2 }),
    ...over,
  }
}

describe('Dashboard.render()', () => {
  test('session, forwarding lines and counters', () => {
    const d = new Dashboard(source(), { write: () => {} })
    const now = 1_000_000
    for (const [start, end] of [[now - 5000, now - 4000], [now - 3000, now - 1000], [now - 200_000, now - 100_000]] as const)
      d.connectionDone({ startedAt: start, endedAt: end, bytesIn: 1, bytesOut: 1, endpoint: 'x', clientAddr: 'c' })
    const text = d.render(now)
    expect(text).toContain('Session Status                online')
    expect(text).toContain('Account                       alice')
    expect(text).toContain('Latency                       1.5ms')
    expect(text).toContain('Web Interface                 http://127.0.0.1:4040')
    expect(text).toContain('Forwarding                    https://web.example.com -> http://localhost:8080')
    expect(text).toContain('Forwarding                    tcp://tcp.example.com:20001 -> localhost:22')
    expect(text).toMatch(/Connections\s+ttl\s+opn\s+rt1\s+rt5\s+p50\s+p90/)
    // 2 connections in the last minute, 3 in five; durations 1 s, 2 s, 100 s.
    expect(text).toMatch(/\n\s+12\s+2\s+0\.03\s+0\.01\s+2\.00\s+100\.00/)
  })

  test('before the first connection', () => {
    const text = new Dashboard(source({ status: () => 'connecting', account: () => undefined, latencyMs: () => undefined, webInterface: () => undefined, forwarding: () => [] }), { write: () => {} }).render()
    expect(text).toContain('Session Status                connecting')
    expect(text).toContain('Latency                       -')
    expect(text).not.toContain('Web Interface')
  })

  test('lists the last HTTP requests, newest first', () => {
    const capture = new CaptureStore()
    const d = new Dashboard(source(), { write: () => {}, capture })
    const tap = new HttpTap(capture, { name: 'web', url: 'u' }, 'c')
    const enc = (s: string) => new TextEncoder().encode(s)
    tap.client(enc('GET /first HTTP/1.1\r\n\r\nPOST /second HTTP/1.1\r\n\r\n'))
    tap.upstream(enc('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n'))
    const text = d.render()
    expect(text).toContain('HTTP Requests')
    expect(text.indexOf('POST /second                  404 Not Found')).toBeGreaterThan(-1)
    expect(text.indexOf('POST /second')).toBeLessThan(text.indexOf('GET /first                    200 OK'))
  })

  test('start() draws on the alternate screen and stop() restores the terminal', () => {
    let out = ''
    const d = new Dashboard(source(), { write: (t) => (out += t) })
    d.start()
    d.stop()
    expect(out.startsWith('\x1b[?1049h\x1b[?25l')).toBe(true)
    expect(out).toContain('Forwarding')
    expect(out.endsWith('\x1b[?25h\x1b[?1049l')).toBe(true)
  })
})
