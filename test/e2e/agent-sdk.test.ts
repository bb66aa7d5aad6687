import ngrok from '@ngrok/ngrok'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import * as tls from 'node:tls'
import { selfSigned } from './framework/certs.ts'
import { curl } from './framework/curl.ts'
import { freePort } from './framework/ports.ts'
import { eventually, startEdge, type Edge } from './framework/process.ts'
import { echoRoundTrip, startEchoServer } from './framework/tcp.ts'
import { startUpstream } from './framework/upstreams.ts'

// The official ngrok SDK (npm @ngrok/ngrok, unmodified) against the compiled warren edge.
const echo = startEchoServer()
const upstream = startUpstream('sdk-origin')
const tlsCert = selfSigned(['secret.alice.warren.localhost'])
const tlsBackend = tls.createServer({ cert: tlsCert.cert, key: tlsCert.key }, (s) => s.end('hello over end-to-end tls\n'))
let edge: Edge
let tcpPorts: number[]

beforeAll(async () => {
  await new Promise<void>((r) => tlsBackend.listen(0, '127.0.0.1', r))
  tcpPorts = [await freePort(), await freePort()]
  edge = await startEdge({
    config: `accounts:
  - name: alice
    authtokens: [alice-token]
    domains: ["*.alice.warren.localhost"]
    tcp_ports: "${tcpPorts[0]}"
  - name: bob
    authtokens: ["sha256:${new Bun.CryptoHasher('sha256').update('bob-token').digest('hex')}"]
    domains: ["*.bob.warren.localhost"]
    tcp_ports: "${tcpPorts[1]}"
agents:
  reconnect_wait: 3
`,
  })
})
afterAll(async () => {
  await edge?.stop()
  echo.stop(true)
  upstream.stop(true)
  tlsBackend.close()
})

/**
 * A fresh SDK session (ngrok.forward() caches sessions, so explicit builders keep tests apart).
 * `close()` unbinds what the session bound first: the SDK's own session close does not.
 */
async function connect(token: string): Promise<{ s: ngrok.Session; close(): Promise<void> }> {
  const s = await new ngrok.SessionBuilder().authtoken(token).serverAddr(`127.0.0.1:${edge.agentPort}`).rootCas(edge.caPath).connect()
  return {
    s,
    async close() {
      for (const l of await ngrok.listeners()) await l.close()
      await s.close()
    },
  }
}

async function refusal(attempt: () => Promise<unknown>): Promise<Error & { errorCode?: string }> {
  try {
    await attempt()
  } catch (e) {
    return e as Error & { errorCode?: string }
  }
  throw new Error('expected a refusal')
}

describe('the official @ngrok/ngrok SDK against warren', () => {
  test('tcp: forward, 3 MB each way checksummed', async () => {
    const { s, close } = await connect('alice-token')
    try {
      const listener = await s.tcpEndpoint().listenAndForward(`tcp://127.0.0.1:${echo.port}`)
      expect(listener.url()).toBe(`tcp://tcp.warren.localhost:${tcpPorts[0]}`)
      const r = await echoRoundTrip(tcpPorts[0]!, 3 * 1024 * 1024)
      expect(r.receivedBytes).toBe(3 * 1024 * 1024)
      expect(r.received).toBe(r.sent)
    } finally {
      await close()
    }
  })

  test('tls: passthrough, the agent side terminates with its own certificate', async () => {
    const port = (tlsBackend.address() as { port: number }).port
    const { s, close } = await connect('alice-token')
    try {
      const listener = await s.tlsEndpoint().domain('secret.alice.warren.localhost').listenAndForward(`tcp://127.0.0.1:${port}`)
      expect(listener.url()).toBe(`tls://secret.alice.warren.localhost:${edge.httpsPort}`)
      const text = await new Promise<string>((resolve, reject) => {
        const sock = tls.connect({ host: '127.0.0.1', port: edge.httpsPort, servername: 'secret.alice.warren.localhost', ca: tlsCert.cert })
        let out = ''
        sock.on('data', (d) => (out += d))
        sock.on('end', () => resolve(out))
        sock.on('error', reject)
      })
      expect(text).toBe('hello over end-to-end tls\n')
    } finally {
      await close()
    }
  })

  test('a bad authtoken is refused with the code visible in the SDK error', async () => {
    const error = await refusal(() => connect('wrong-token'))
    expect(error.message).toContain('authtoken you specified is invalid')
    expect(error.errorCode).toBe('ERR_NGROK_107')
  })

  test('a sha256-hashed authtoken works', async () => {
    const { s, close } = await connect('bob-token')
    const listener = await s.tcpEndpoint().listenAndForward(`tcp://127.0.0.1:${echo.port}`)
    expect(listener.url()).toBe(`tcp://tcp.warren.localhost:${tcpPorts[1]}`)
    await close()
  })

  test('a domain the account does not own is refused; one it owns is accepted', async () => {
    const { s, close } = await connect('alice-token')
    try {
      const error = await refusal(() => s.tlsEndpoint().domain('x.bob.warren.localhost').listenAndForward('tcp://127.0.0.1:1'))
      expect(error.message).toContain('does not own x.bob.warren.localhost')
      expect(error.message).toContain('ERR_NGROK_320')
      const ok = await s.tlsEndpoint().domain('x.alice.warren.localhost').listenAndForward('tcp://127.0.0.1:1')
      expect(ok.url()).toBe(`tls://x.alice.warren.localhost:${edge.httpsPort}`)
    } finally {
      await close()
    }
  })

  test('a tcp port outside the account range is refused', async () => {
    const { s, close } = await connect('alice-token')
    try {
      const error = await refusal(() => s.tcpEndpoint().remoteAddr(`tcp.warren.localhost:${tcpPorts[1]}`).listenAndForward('tcp://127.0.0.1:1'))
      expect(error.message).toContain('not in the tcp port range')
    } finally {
      await close()
    }
  })

  test('a traffic policy passed by the SDK is enforced at the edge', async () => {
    const { s, close } = await connect('alice-token')
    try {
      const policy = JSON.stringify({ on_tcp_connect: [{ actions: [{ type: 'restrict-ips', config: { allow: ['10.0.0.0/8'] } }] }] })
      await s.tcpEndpoint().trafficPolicy(policy).listenAndForward(`tcp://127.0.0.1:${echo.port}`)
      const r = await echoRoundTrip(tcpPorts[0]!, 10)
      expect(r.receivedBytes).toBe(0)
    } finally {
      await close()
    }
  })

  test('http: the SDK\'s webhookVerification is enforced at the edge (verify-webhook)', async () => {
    const { s, close } = await connect('alice-token')
    const secret = 'sdk-webhook-secret'
    try {
      await s.httpEndpoint().domain('hook.alice.warren.localhost').webhookVerification('github', secret).listenAndForward(`http://127.0.0.1:${upstream.port}`)
      const body = '{"zen":"Design for failure."}'
      const sign = (key: string) => 'sha256=' + new Bun.CryptoHasher('sha256', key).update(body).digest('hex')
      const ok = await httpsFetch('hook.alice.warren.localhost', '/echo', { method: 'POST', body, headers: { 'x-hub-signature-256': sign(secret) } })
      expect(ok.status).toBe(200)
      const bad = await httpsFetch('hook.alice.warren.localhost', '/echo', { method: 'POST', body, headers: { 'x-hub-signature-256': sign('another-secret') } })
      expect(bad.status).toBe(403)
      expect(bad.headers.get('warren-error-code')).toBe('ERR_WARREN_2130')
      await bad.body?.cancel()
    } finally {
      await close()
    }
  })

  test('an invalid traffic policy is refused with a clear message', async () => {
    const { s, close } = await connect('alice-token')
    try {
      const error = await refusal(() => s.tcpEndpoint().trafficPolicy('{"on_tcp_connect":[{"actions":[{"type":"nope"}]}]}').listenAndForward('tcp://127.0.0.1:1'))
      expect(error.message).toContain('unknown action type "nope"')
    } finally {
      await close()
    }
  })

  test('the agent endpoint disappears when the SDK closes it', async () => {
    const { s, close } = await connect('alice-token')
    const listener = await s.tcpEndpoint().listenAndForward(`tcp://127.0.0.1:${echo.port}`)
    expect((await echoRoundTrip(tcpPorts[0]!, 5)).receivedBytes).toBe(5)
    await listener.close()
    expect(await eventually(() => echoRoundTrip(tcpPorts[0]!, 5).then((r) => r.receivedBytes === 0, () => true), 3000)).toBe(true)
    await close()
  })

  test('http: forward through the TLS port; 3 MB each way checksummed; 100 concurrent requests', async () => {
    const { s, close } = await connect('alice-token')
    try {
      const listener = await s.httpEndpoint().domain('web.alice.warren.localhost').listenAndForward(`http://127.0.0.1:${upstream.port}`)
      expect(listener.url()).toBe(`https://web.alice.warren.localhost:${edge.httpsPort}`)
      const echoed = await curl(['--cacert', edge.caPath, `https://web.alice.warren.localhost:${edge.httpsPort}/echo?x=1`])
      expect(echoed.status).toBe(200)
      const seen = JSON.parse(echoed.body)
      expect(seen.path).toBe('/echo?x=1')
      expect(seen.headers['x-forwarded-proto']).toBe('https')
      expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1')

      const payload = new Uint8Array(3 * 1024 * 1024).map((_, i) => (i * 13) & 0xff)
      const up = await httpsFetch('web.alice.warren.localhost', '/count', { method: 'POST', body: payload })
      expect(((await up.json()) as { bodyBytes: number }).bodyBytes).toBe(payload.length)
      const down = await httpsFetch('web.alice.warren.localhost', `/bytes/${3 * 1024 * 1024}`)
      expect((await down.arrayBuffer()).byteLength).toBe(3 * 1024 * 1024)

      const statuses = await Promise.all(Array.from({ length: 100 }, (_, i) => httpsFetch('web.alice.warren.localhost', `/echo?i=${i}`).then((r) => r.status)))
      expect(statuses.filter((st) => st === 200).length).toBe(100)
    } finally {
      await close()
    }
  })

  test('http: websockets through an agent endpoint (text, 200 KB binary, close code)', async () => {
    const { s, close } = await connect('alice-token')
    try {
      await s.httpEndpoint().domain('ws.alice.warren.localhost').listenAndForward(`http://127.0.0.1:${upstream.port}`)
      const ws = new WebSocket(`wss://127.0.0.1:${edge.httpsPort}/socket`, {
        headers: { host: 'ws.alice.warren.localhost' },
        tls: { ca: readFileSync(edge.caPath, 'utf8'), serverName: 'ws.alice.warren.localhost' },
      } as unknown as string[])
      ws.binaryType = 'arraybuffer'
      await new Promise((resolve, reject) => ((ws.onopen = resolve), (ws.onerror = reject)))
      const next = () => new Promise<MessageEvent>((resolve) => ws.addEventListener('message', resolve, { once: true }))
      ws.send('through the tunnel')
      expect((await next()).data).toBe('through the tunnel')
      const bytes = new Uint8Array(200_000).map((_, i) => i % 251)
      ws.send(bytes)
      expect(Bun.hash(new Uint8Array((await next()).data as ArrayBuffer))).toBe(Bun.hash(bytes))
      const closed = new Promise<CloseEvent>((resolve) => (ws.onclose = resolve))
      ws.send('close-me')
      expect((await closed).code).toBe(4001)
    } finally {
      await close()
    }
  })

  test('http: a second bind of the same URL without pooling is refused', async () => {
    const a = await connect('alice-token')
    const b = await connect('alice-token')
    try {
      await a.s.httpEndpoint().domain('solo.alice.warren.localhost').listenAndForward(`http://127.0.0.1:${upstream.port}`)
      const error = await refusal(() => b.s.httpEndpoint().domain('solo.alice.warren.localhost').listenAndForward(`http://127.0.0.1:${upstream.port}`))
      expect(error.message).toContain('already online')
      expect(error.message).toContain('ERR_NGROK_334')
    } finally {
      await a.close()
      await b.close()
    }
  })

  test('http: two SDK sessions pooling one URL share the traffic', async () => {
    const other = startUpstream('second-origin')
    const a = await connect('alice-token')
    const b = await connect('alice-token')
    try {
      await a.s.httpEndpoint().domain('pool.alice.warren.localhost').poolingEnabled(true).listenAndForward(`http://127.0.0.1:${upstream.port}`)
      await b.s.httpEndpoint().domain('pool.alice.warren.localhost').poolingEnabled(true).listenAndForward(`http://127.0.0.1:${other.port}`)
      const seen = new Set<string>()
      for (let i = 0; i < 10; i++) seen.add(((await (await httpsFetch('pool.alice.warren.localhost', '/echo')).json()) as { upstream: string }).upstream)
      expect([...seen].sort()).toEqual(['sdk-origin', 'second-origin'])
    } finally {
      await a.close()
      await b.close()
      other.stop(true)
    }
  })

  // `ss -K` needs root (CI runs as root); tunnel-sessions.test.ts covers a stop through the API as well.
  test.skipIf(process.getuid?.() !== 0)('http: when the session drops, the SDK reconnects and the same URL works again', async () => {
    const { s, close } = await connect('alice-token')
    try {
      const listener = await s.httpEndpoint().domain('again.alice.warren.localhost').listenAndForward(`http://127.0.0.1:${upstream.port}`)
      expect((await httpsFetch('again.alice.warren.localhost', '/echo')).status).toBe(200)
      // Cut the agent's TCP connection under both ends (root can; CI runs as root).
      const killed = Bun.spawnSync(['ss', '-K', 'dport', '=', `:${edge.agentPort}`])
      expect(killed.exitCode).toBe(0)
      await edge.waitForLog(/"msg":"agent endpoint resumed".*again\.alice/, 10_000)
      expect(await eventually(async () => (await httpsFetch('again.alice.warren.localhost', '/echo')).status === 200, 5000)).toBe(true)
      expect(listener.url()).toBe(`https://again.alice.warren.localhost:${edge.httpsPort}`)
    } finally {
      await close()
    }
  })

  test('an internal agent endpoint is reachable only through forward-internal from its account', async () => {
    const { s, close } = await connect('alice-token')
    try {
      const listener = await s.httpEndpoint().domain('svc.internal').binding('internal').listenAndForward(`http://127.0.0.1:${upstream.port}`)
      expect(listener.url()).toBe('https://svc.internal')
      const front = (account: string, name: string) =>
        `account: ${account}\nendpoints:\n  - url: https://${name}.warren.localhost\n    traffic_policy:\n      on_http_request:\n        - actions: [{type: forward-internal, config: {url: "https://svc.internal"}}]\n`
      edge.writePolicy('front.yml', front('alice', 'front'))
      edge.writePolicy('bobfront.yml', front('bob', 'bobfront'))
      expect(await eventually(async () => (await httpsFetch('front.warren.localhost', '/echo')).status === 200, 3000)).toBe(true)
      const through = (await (await httpsFetch('front.warren.localhost', '/echo')).json()) as { upstream: string; headers: Record<string, string> }
      expect(through.upstream).toBe('sdk-origin')
      expect(through.headers['x-forwarded-host']).toBe('front.warren.localhost')
      // Another account's cloud endpoint cannot reach alice's internal endpoint.
      expect(await eventually(async () => (await httpsFetch('bobfront.warren.localhost', '/echo')).status === 404, 3000)).toBe(true)
      expect((await httpsFetch('bobfront.warren.localhost', '/echo')).headers.get('warren-error-code')).toBe('ERR_WARREN_3200')
      // And it is never reachable from a listener directly.
      const direct = await httpsFetch('svc.internal', '/echo').then((r) => r.status, () => 0)
      expect(direct).toBe(0)
    } finally {
      edge.removePolicy('front.yml')
      edge.removePolicy('bobfront.yml')
      await close()
    }
  })
})

/** HTTPS to the edge's TLS port with SNI + Host set to `host` (trusting the dev CA). */
function httpsFetch(host: string, path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`https://127.0.0.1:${edge.httpsPort}${path}`, {
    ...init,
    headers: { ...(init.headers as Record<string, string>), host },
    tls: { ca: readFileSync(edge.caPath, 'utf8'), serverName: host },
  } as RequestInit)
}
