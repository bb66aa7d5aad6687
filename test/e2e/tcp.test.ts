import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { eventually, startEdge, type Edge } from './framework/process.ts'
import { freePort } from './framework/ports.ts'
import { rawRequest } from './framework/raw.ts'
import { echoRoundTrip, startEchoServer } from './framework/tcp.ts'

const echo = startEchoServer()
let edge: Edge
let port: number
const tcpPolicy = (p: number, upstream: number) =>
  `url: tcp://echo.warren.localhost:${p}\ntraffic_policy:\n  on_tcp_connect:\n    - actions: [{type: forward-external, config: {url: "tcp://127.0.0.1:${upstream}"}}]\n`

beforeAll(async () => {
  port = await freePort()
  edge = await startEdge({ policies: { 'echo.yml': tcpPolicy(port, echo.port) } })
})
afterAll(async () => {
  await edge?.stop()
  echo.stop(true)
})

describe('tcp:// endpoints', () => {
  test('small echo', async () => {
    const r = await echoRoundTrip(port, 11)
    expect(r.receivedBytes).toBe(11)
    expect(r.received).toBe(r.sent)
  })

  test('100 MB round trip is byte-exact (backpressure both ways)', async () => {
    const r = await echoRoundTrip(port, 100 * 1024 * 1024)
    expect(r.receivedBytes).toBe(100 * 1024 * 1024)
    expect(r.received).toBe(r.sent)
  }, 60_000)

  test('20 concurrent connections', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, () => echoRoundTrip(port, 1024 * 1024)))
    for (const r of results) expect(r.received).toBe(r.sent)
  })

  test('an unreachable upstream closes the client connection', async () => {
    const p = await freePort()
    edge.writePolicy('dead.yml', tcpPolicy(p, 1))
    expect(await eventually(async () => edge.logs().includes(`"address":"127.0.0.1:${p}"`), 2000)).toBe(true)
    expect(await rawRequest(p, 'hello', 2000)).toBe('')
    await edge.waitForLog(/upstream unreachable/)
  })

  test('listeners open and close with hot reload', async () => {
    const p = await freePort()
    edge.writePolicy('late.yml', tcpPolicy(p, echo.port))
    expect(await eventually(async () => (await echoRoundTrip(p, 5)).receivedBytes === 5, 2000)).toBe(true)
    edge.removePolicy('late.yml')
    expect(await eventually(async () => new RegExp(`"msg":"tcp listener closed".*"port":${p}\\b`).test(edge.logs()), 2000)).toBe(true)
    const refused = await Bun.connect({ hostname: '127.0.0.1', port: p, socket: { data() {} } }).then(
      (s) => (s.end(), false),
      () => true,
    )
    expect(refused).toBe(true)
  })

  test.each([1, 2])('forward-external with proxy_protocol: %d sends the client address first', async (version) => {
    let seen = new Uint8Array(0)
    const recorder = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data: (_s, d) => void (seen = Buffer.concat([seen, d])) } })
    const p = await freePort()
    edge.writePolicy(`pp${version}.yml`, `url: tcp://pp${version}.warren.localhost:${p}\ntraffic_policy:\n  on_tcp_connect:\n    - actions: [{type: forward-external, config: {url: "tcp://127.0.0.1:${recorder.port}", proxy_protocol: ${version}}}]\n`)
    try {
      expect(await eventually(async () => (await rawRequest(p, 'ping', 200), seen.length > 0), 3000)).toBe(true)
      if (version === 1) expect(Buffer.from(seen).toString('latin1')).toMatch(/^PROXY TCP4 127\.0\.0\.1 127\.0\.0\.1 \d+ \d+\r\n/)
      else {
        expect([...seen.subarray(0, 12)]).toEqual([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a])
        expect([...seen.subarray(16, 20)]).toEqual([127, 0, 0, 1])
        expect((seen[26]! << 8) | seen[27]!).toBe(p)
      }
    } finally {
      edge.removePolicy(`pp${version}.yml`)
      recorder.stop(true)
    }
  })

  test('a connection-level log line carries byte counts', async () => {
    await echoRoundTrip(port, 1000)
    const line = await edge.waitForLog(/"msg":"connection closed".*"bytes_in":1000/)
    expect(JSON.parse(line).bytes_out).toBe(1000)
  })
})
