import ngrok from '@ngrok/ngrok'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import net from 'node:net'
import tls from 'node:tls'
import { curl } from '../e2e/framework/curl.ts'
import { mb, memoryOf, sampleRss } from '../e2e/framework/memory.ts'
import { startEdge, type Edge } from '../e2e/framework/process.ts'
import { startUpstream } from '../e2e/framework/upstreams.ts'

// Floods from clients that never authenticate (agent port), never finish a ClientHello (TLS port) or
// never finish a request head (HTTP port), against the compiled edge: its resident memory stays under
// a stated bound, and a legitimate agent or client still gets through while the flood runs.
// Flood sockets come from 127.0.0.2-5 (four "attackers"); the legitimate clients from 127.0.0.1.
const MB = 1024 ** 2
const SOURCES = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5']
const TOKEN = 'preauth-token'
const AGENT_HOST = 'legit.preauth.warren.localhost'
const STATIC_HOST = 'static.preauth.warren.localhost'
const upstream = startUpstream('preauth-origin')
let edge: Edge

function httpsGet(host: string, path = '/') {
  return curl(['--cacert', edge.caPath, '--resolve', `${host}:${edge.httpsPort}:127.0.0.1`, `https://${host}:${edge.httpsPort}${path}`])
}

/**
 * Keeps `perSource` connections from each source open for `ms`, reopening each one the edge closes;
 * `start` says what a connection sends. Resolves with how many were opened and how many the edge closed.
 */
async function flood(ms: number, perSource: number, start: (source: string, onClose: () => void) => void): Promise<{ opened: number; closed: number }> {
  const stats = { opened: 0, closed: 0 }
  const until = Date.now() + ms
  const open = (source: string) => {
    if (Date.now() >= until) return
    stats.opened++
    start(source, () => {
      stats.closed++
      setTimeout(() => open(source), 5)
    })
  }
  for (const source of SOURCES) for (let i = 0; i < perSource; i++) open(source)
  await Bun.sleep(ms)
  return stats
}

/** Keeps `socket` in `sockets` while it is open; `onClose` when it closes (errors are expected). */
function track<S extends net.Socket>(socket: S, sockets: Set<S>, onClose: () => void): void {
  sockets.add(socket)
  socket.on('error', () => {})
  socket.on('close', () => {
    sockets.delete(socket)
    onClose()
  })
}

/** A TLS connection that announces a 16 MiB muxado DATA frame and sends it as fast as it is taken. */
function bigFrameAgent(source: string, onClose: () => void, sockets: Set<tls.TLSSocket>): void {
  const tcp = net.connect({ host: '127.0.0.1', port: edge.agentPort, localAddress: source })
  tcp.on('error', () => {})
  const socket = tls.connect({ socket: tcp, rejectUnauthorized: false }, () => {
    const header = Buffer.alloc(8)
    header.writeUInt32BE(((0xffffff << 8) | (1 << 4) | 2) >>> 0) // length 16 MiB - 1, DATA, SYN
    header.writeUInt32BE(3, 4)
    socket.write(header)
    const chunk = Buffer.alloc(64 * 1024, 0x61)
    let left = 0xffffff
    const pump = () => {
      while (left > 0 && !socket.destroyed) {
        left -= chunk.length
        if (!socket.write(chunk)) return void socket.once('drain', pump)
      }
    }
    pump()
  })
  track(socket, sockets, onClose)
}

/**
 * A plain TCP connection that sends `bytes` in 1 KiB pieces, then nothing more. It reads (and drops)
 * what the edge answers; one that never reads is cut too, but then the client cannot see when.
 */
function partial(port: number, bytes: Buffer, source: string, onClose: () => void, sockets: Set<net.Socket>): void {
  const socket = net.connect({ host: '127.0.0.1', port, localAddress: source }, () => {
    let at = 0
    const step = () => {
      if (socket.destroyed || at >= bytes.length) return
      socket.write(bytes.subarray(at, at + 1024))
      at += 1024
      setTimeout(step, 2)
    }
    step()
  })
  socket.resume()
  track(socket, sockets, onClose)
}

/**
 * Opens `perSource` connections from each source, each sending `bytes` and then nothing. `stop()`
 * closes what is left and returns how many the edge had closed itself.
 */
function partialFlood(port: number, bytes: Buffer, perSource: number): { readonly closed: number; stop(): number } {
  const sockets = new Set<net.Socket>()
  let closed = 0
  for (const source of SOURCES) for (let i = 0; i < perSource; i++) partial(port, bytes, source, () => closed++, sockets)
  return {
    get closed() {
      return closed
    },
    stop() {
      const byEdge = closed
      for (const s of sockets) s.destroy()
      return byEdge
    },
  }
}

/** The start of a ClientHello that announces 16,000 bytes and never completes (the peek waits for more). */
function helloPrefix(): Buffer {
  const head = Buffer.alloc(11)
  head[0] = 0x16
  head.writeUInt16BE(0x0301, 1)
  head.writeUInt16BE(16_000, 3)
  head[5] = 0x01
  head.writeUIntBE(16_000 - 4, 6, 3)
  head.writeUInt16BE(0x0303, 9)
  return Buffer.concat([head, Buffer.alloc(15_000, 0)])
}

beforeAll(async () => {
  edge = await startEdge({
    config: `accounts:
  - name: preauth
    authtokens: [${TOKEN}]
    domains: ["*.preauth.warren.localhost"]
log:
  requests: false
http:
  read_timeout: 10
`,
    policies: {
      'static.yml': `endpoints:
  - url: https://${STATIC_HOST}
    traffic_policy:
      on_http_request:
        - actions: [{type: custom-response, config: {status_code: 200, content: static-ok}}]
  - url: http://${STATIC_HOST}
    traffic_policy:
      on_http_request:
        - actions: [{type: custom-response, config: {status_code: 200, content: static-ok}}]
`,
    },
  })
  // Warm every path once, so the baseline includes what the first request of each kind allocates.
  expect((await httpsGet(STATIC_HOST)).body).toBe('static-ok')
  expect((await curl(['-H', `Host: ${STATIC_HOST}`, `${edge.base}/`])).body).toBe('static-ok')
}, 30_000)

afterAll(async () => {
  for (const l of await ngrok.listeners()) await l.close().catch(() => {})
  await edge?.stop()
  upstream.stop(true)
})

describe('pre-auth floods against the compiled edge', () => {
  // Measured on this kind of machine (2 shared cores): 40 such connections took the unfixed edge from
  // 75 MB to 320 MB within 5 s (1.2 GB after 10 s); with the limits it stayed within 10 MB of its baseline.
  test('agent port: 16 MiB frames before Auth (40 connections, reopened when cut) stay under +100 MB; an SDK agent connects and serves meanwhile', async () => {
    const baseline = memoryOf(edge.proc.pid).rss
    const rss = sampleRss(edge.proc.pid)
    const sockets = new Set<tls.TLSSocket>()
    const flooding = flood(5_000, 10, (source, onClose) => bigFrameAgent(source, onClose, sockets))
    await Bun.sleep(1_000)
    const session = await new ngrok.SessionBuilder().authtoken(TOKEN).serverAddr(`127.0.0.1:${edge.agentPort}`).rootCas(edge.caPath).connect()
    const listener = await session.httpEndpoint().domain(AGENT_HOST).listenAndForward(`http://127.0.0.1:${upstream.port}`)
    const during = await httpsGet(AGENT_HOST, '/during-agent-flood')
    const stats = { ...(await flooding) }
    const peak = rss.stop()
    for (const s of sockets) s.destroy()
    console.log(`agent flood: ${stats.opened} connections, ${stats.closed} cut; RSS ${mb(baseline)} MB → peak ${mb(peak)} MB`)
    expect(during.status).toBe(200)
    expect(JSON.parse(during.body).path).toBe('/during-agent-flood')
    expect(peak - baseline).toBeLessThan(100 * MB)
    // The edge cut them (it does not wait for 16 MiB), and said why, with the code.
    expect(stats.closed).toBeGreaterThan(40)
    expect(edge.logs()).toContain('ERR_WARREN_4008')
    await listener.close()
  }, 60_000)

  // The unfixed edge accepted all 100 and held them until its 25 s heartbeat deadline.
  test('agent port: 100 connections from one address that never start TLS: 64 are held (the per-IP cap), and the auth deadline (10 s) cuts those', async () => {
    const source = '127.0.0.6'
    const closedAt: number[] = []
    const t0 = Date.now()
    const sockets = Array.from({ length: 100 }, () => {
      const s = net.connect({ host: '127.0.0.1', port: edge.agentPort, localAddress: source })
      s.on('error', () => {})
      s.on('close', () => closedAt.push(Date.now() - t0))
      return s
    })
    await Bun.sleep(1_500)
    expect(closedAt.length).toBe(36)
    expect(edge.logs()).toContain('ERR_WARREN_4010')
    // A legitimate agent from another address is not refused meanwhile.
    const session = await new ngrok.SessionBuilder().authtoken(TOKEN).serverAddr(`127.0.0.1:${edge.agentPort}`).rootCas(edge.caPath).connect()
    await session.close()
    while (closedAt.length < 100 && Date.now() - t0 < 13_000) await Bun.sleep(100)
    for (const s of sockets) s.destroy()
    expect(closedAt.length).toBe(100)
    expect(Math.max(...closedAt)).toBeGreaterThanOrEqual(9_000)
    expect(edge.logs()).toContain('ERR_WARREN_4009')
  }, 30_000)

  // 1000 connections per source, each holding ~15 KiB of an unfinished ClientHello: the unfixed edge
  // took them all (+96 MB); the per-IP cap (256) leaves ~1000 pending of 16 KiB at most (+25 MB measured).
  test('TLS port: 4000 connections with unfinished ClientHellos stay under +60 MB, and an HTTPS client gets through', async () => {
    const baseline = memoryOf(edge.proc.pid).rss
    const rss = sampleRss(edge.proc.pid)
    const flood = partialFlood(edge.httpsPort, helloPrefix(), 1000)
    await Bun.sleep(1_000)
    const during = await httpsGet(STATIC_HOST, '/during-tls-flood')
    await Bun.sleep(1_500)
    const peak = rss.stop()
    const refused = flood.stop()
    console.log(`TLS flood: 4000 connections, ${refused} refused or cut; RSS ${mb(baseline)} MB → peak ${mb(peak)} MB`)
    expect(during.status).toBe(200)
    expect(during.body).toBe('static-ok')
    expect(peak - baseline).toBeLessThan(60 * MB)
    expect(edge.logs()).toContain('ERR_WARREN_3016')
  }, 30_000)

  // 500 connections per source, each holding a 15 KiB head without its end. The engine on the unfixed
  // edge took all 2000 (+97 MB); the per-IP cap (256) refuses half, and http.read_timeout (10 s here;
  // counted from a head's first byte, not reset by a trickle) cuts the rest.
  test('HTTP port: 2000 connections with unfinished 15 KiB heads stay under +80 MB, an HTTP client gets through, and the edge refuses or cuts them all', async () => {
    const baseline = memoryOf(edge.proc.pid).rss
    const rss = sampleRss(edge.proc.pid)
    const t0 = Date.now()
    const flood = partialFlood(edge.httpPort, Buffer.from(`GET / HTTP/1.1\r\nHost: ${STATIC_HOST}\r\nX-Pad: ${'a'.repeat(15_000)}`), 500)
    await Bun.sleep(1_500)
    const during = await curl(['-H', `Host: ${STATIC_HOST}`, `${edge.base}/during-http-flood`])
    while (flood.closed < 2000 && Date.now() - t0 < 20_000) await Bun.sleep(200)
    const peak = rss.stop()
    const closed = flood.stop()
    console.log(`HTTP flood: 2000 connections, ${closed} cut by the edge after ${Date.now() - t0} ms; RSS ${mb(baseline)} MB → peak ${mb(peak)} MB`)
    expect(during.body).toBe('static-ok')
    expect(peak - baseline).toBeLessThan(80 * MB)
    expect(closed).toBe(2000)
    expect(edge.logs()).toContain('ERR_WARREN_3017')
  }, 40_000)

  // Not a flood: the API's own guard against holding bodies for strangers. Passes on the unfixed edge
  // too; it is here so that no middleware ever reads a body before the key check.
  test('API: a request without a key is refused before its body arrives, and a body over 1 MiB is refused from its Content-Length', async () => {
    const answer = (head: string) =>
      new Promise<{ line: string; ms: number }>((resolve) => {
        const t0 = Date.now()
        let text = ''
        const s = net.connect({ host: '127.0.0.1', port: edge.apiPort }, () => s.write(head))
        const timer = setTimeout(() => done('no answer'), 5_000)
        const done = (line: string) => (clearTimeout(timer), s.destroy(), resolve({ line, ms: Date.now() - t0 }))
        s.on('data', (d) => (text += d) && text.includes('\r\n') && done(text.split('\r\n')[0]!))
        s.on('error', () => done(text))
      })
    const unauth = await answer('POST /endpoints HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\nContent-Length: 900000\r\n\r\n{')
    expect(unauth.line).toBe('HTTP/1.1 401 Unauthorized')
    expect(unauth.ms).toBeLessThan(2_000)
    const big = await answer('POST /endpoints HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer x\r\nContent-Length: 2000000\r\n\r\n')
    expect(big.line).toBe('HTTP/1.1 413 Request Entity Too Large')
  })
})
