import { afterAll, describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import * as tls from 'node:tls'
import { startEdge, type Edge } from '../e2e/framework/process.ts'

// SIGTERM after connections went through the node:tls terminator (a terminate-tls policy on an https://
// and on a tls:// endpoint) and through an SNI sent as `name:port`: the edge still exits 0 within its
// drain deadline (it used to keep a listener open for good).

const plain = Bun.listen<undefined>({ hostname: '127.0.0.1', port: 0, socket: { data: (s, d) => void s.write(`plain:${d.toString()}`) } })
const edges: Edge[] = []
afterAll(async () => {
  for (const e of edges) await e.stop()
  plain.stop(true)
})

const terminate = (extra = '{}') => `        - type: terminate-tls\n          config: ${extra}\n`
const POLICIES = {
  'termh.yml': `url: https://termh.warren.localhost\ntraffic_policy:\n  on_tcp_connect:\n    - actions:\n${terminate('{min_version: "1.2"}')}  on_http_request:\n    - actions:\n        - type: custom-response\n          config: {status_code: 200, content: terminated}\n`,
  'secure.yml': `url: https://secure.warren.localhost\ntraffic_policy:\n  on_http_request:\n    - actions:\n        - type: custom-response\n          config: {status_code: 200, content: secure}\n`,
  'raw.yml': `url: tls://raw.warren.localhost\ntraffic_policy:\n  on_tcp_connect:\n    - actions:\n${terminate()}        - type: forward-external\n          config: {url: "tcp://127.0.0.1:${plain.port}"}\n`,
}

/** A TLS connection to the edge's TLS port; `send` writes and resolves with the first answer. */
function open(edge: Edge, servername: string): Promise<{ socket: tls.TLSSocket; send(text: string): Promise<string>; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    // An SNI of `name:port` cannot match the certificate's name in Node's check; the chain is still verified.
    const socket = tls.connect({ host: '127.0.0.1', port: edge.httpsPort, servername, ca: readFileSync(edge.caPath), checkServerIdentity: () => undefined }, () =>
      resolve({
        socket,
        send: (text) =>
          new Promise<string>((done) => {
            socket.once('data', (d: Buffer) => done(d.toString()))
            socket.write(text)
          }),
        closed,
      }),
    )
    const closed = new Promise<void>((r) => socket.once('close', () => r()))
    socket.once('error', reject)
  })
}

const get = (host: string) => `GET / HTTP/1.1\r\nhost: ${host}\r\n\r\n`

async function sigterm(edge: Edge, boundMs: number): Promise<{ code: number | string; ms: number }> {
  const signalled = Date.now()
  edge.proc.kill('SIGTERM')
  const code = await Promise.race([edge.proc.exited, Bun.sleep(boundMs + 5000).then(() => 'still running')])
  return { code, ms: Date.now() - signalled }
}

describe('SIGTERM after the node:tls terminator', () => {
  test('terminate-tls (https:// and tls://) and an SNI of name:port: exit 0 at once when nothing is in flight', async () => {
    const edge = await startEdge({ policies: POLICIES })
    edges.push(edge)
    const termh = await open(edge, 'termh.warren.localhost')
    expect(await termh.send(get('termh.warren.localhost'))).toContain('terminated')
    const withPort = await open(edge, `secure.warren.localhost:${edge.httpsPort}`)
    expect(await withPort.send(get('secure.warren.localhost'))).toContain('secure')
    const raw = await open(edge, 'raw.warren.localhost')
    expect(await raw.send('hello')).toBe('plain:hello')
    // Done with them: what is left are closed or idle keep-alive connections.
    raw.socket.end()
    await raw.closed
    const { code, ms } = await sigterm(edge, 10_000)
    expect(code).toBe(0)
    // The default drain is 10 s; idle keep-alive connections are not waited for.
    expect(ms).toBeLessThan(3000)
    await Promise.all([termh.closed, withPort.closed])
  }, 30_000)

  test('an open connection through the terminator is cut at shutdown.drain, and the edge exits 0', async () => {
    const edge = await startEdge({ policies: POLICIES, config: 'shutdown: {drain: 1500ms}\n' })
    edges.push(edge)
    const raw = await open(edge, 'raw.warren.localhost')
    expect(await raw.send('hello')).toBe('plain:hello')
    const withPort = await open(edge, `secure.warren.localhost:${edge.httpsPort}`)
    expect(await withPort.send(get('secure.warren.localhost'))).toContain('secure')
    const { code, ms } = await sigterm(edge, 1500)
    expect(code).toBe(0)
    expect(ms).toBeGreaterThanOrEqual(1400)
    expect(ms).toBeLessThan(3500)
    await Promise.all([raw.closed, withPort.closed])
    expect(edge.logs()).toMatch(/"code":"ERR_WARREN_3020","in_flight":\{"tls":1\}/)
  }, 30_000)
})
