import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { startEdge, type Edge } from './framework/process.ts'
import { startUpstream } from './framework/upstreams.ts'

// Read and idle timeouts of the HTTP/1.1 engine, with short values so slow clients show quickly.

const upstream = startUpstream('timeouts-origin')
let edge: Edge
beforeAll(async () => {
  edge = await startEdge({
    config: 'http:\n  read_timeout: 1\n  idle_timeout: 2\n',
    policies: { 'app.yml': `url: http://app.warren.localhost\ntraffic_policy:\n  on_http_request:\n    - actions: [{type: forward-external, config: {url: "http://127.0.0.1:${upstream.port}"}}]\n` },
  })
})
afterAll(async () => {
  await edge?.stop()
  upstream.stop(true)
})

/** A raw connection that records what the edge wrote and when it closed. */
async function connect(): Promise<{ write(text: string): void; received: () => string; closedAt: Promise<number> }> {
  let out = ''
  let closed!: (at: number) => void
  const closedAt = new Promise<number>((resolve) => (closed = resolve))
  const socket = await Bun.connect({
    hostname: '127.0.0.1',
    port: edge.httpPort,
    socket: {
      data: (_s, d) => void (out += d.toString()),
      close: () => closed(performance.now()),
      error: () => closed(performance.now()),
    },
  })
  return { write: (text) => void socket.write(text), received: () => out, closedAt }
}

describe('HTTP/1.1 engine timeouts', () => {
  test('a head trickled byte by byte gets 408 with ERR_WARREN_3033 once read_timeout passes', async () => {
    const conn = await connect()
    const started = performance.now()
    const head = 'GET /slow HTTP/1.1\r\nHost: app.warren.localhost\r\nX-Slow: '
    conn.write(head)
    // One byte every 200 ms never completes the head; each byte must not restart the clock.
    const trickle = setInterval(() => conn.write('a'), 200)
    const at = await Promise.race([conn.closedAt, Bun.sleep(5000).then(() => -1)])
    clearInterval(trickle)
    expect(at).toBeGreaterThan(0)
    expect(at - started).toBeLessThan(2500)
    expect(conn.received()).toMatch(/^HTTP\/1\.1 408 /)
    expect(conn.received()).toMatch(/warren-error-code: ERR_WARREN_3033/i)
    expect(upstream.seen.some((r) => r.path === '/slow')).toBe(false)
  })

  test('an idle keep-alive connection is closed after idle_timeout, not before', async () => {
    const conn = await connect()
    conn.write('GET /echo HTTP/1.1\r\nHost: app.warren.localhost\r\n\r\n')
    const started = performance.now()
    const at = await Promise.race([conn.closedAt, Bun.sleep(6000).then(() => -1)])
    expect(conn.received()).toMatch(/^HTTP\/1\.1 200 /)
    expect(at).toBeGreaterThan(0)
    expect(at - started).toBeGreaterThan(1500)
    expect(at - started).toBeLessThan(4500)
  })

  test('a request body that stalls past read_timeout fails and closes the connection', async () => {
    const conn = await connect()
    const started = performance.now()
    conn.write('POST /stall HTTP/1.1\r\nHost: app.warren.localhost\r\nContent-Length: 100\r\n\r\nonly-some')
    const at = await Promise.race([conn.closedAt, Bun.sleep(6000).then(() => -1)])
    expect(at).toBeGreaterThan(0)
    expect(at - started).toBeLessThan(4000)
    expect(conn.received()).not.toMatch(/^HTTP\/1\.1 200 /)
  })
})
