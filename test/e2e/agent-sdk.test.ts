import ngrok from '@ngrok/ngrok'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import * as tls from 'node:tls'
import { selfSigned } from './framework/certs.ts'
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
      expect(listener.url()).toBe('tls://secret.alice.warren.localhost')
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
      expect(ok.url()).toBe('tls://x.alice.warren.localhost')
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
})

