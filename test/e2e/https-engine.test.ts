import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { X509Certificate } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as tls from 'node:tls'
import { selfSigned } from './framework/certs.ts'
import { curl } from './framework/curl.ts'
import { eventually, fileEvents, startEdge, type Edge } from './framework/process.ts'
import { responses, startRawHeadUpstream } from './framework/raw.ts'
import { startUpstream } from './framework/upstreams.ts'

// HTTPS connections whose ALPN did not choose h2 are served by warren's HTTP/1.1 engine behind the
// TLS front, as on the plaintext port: what Bun.serve did differently (pipelining, repeated lines,
// refusals with a Warren-Error-Code) is checked over TLS; h2 by ALPN still reaches Bun.serve.

const hasCurl = Bun.which('curl') !== null
const upstream = startUpstream('https-engine-origin')
/** Keeps the request heads exactly as they arrived (Bun.serve would join lines). */
const rawUpstream = startRawHeadUpstream()
const heads = rawUpstream.heads

const forward = (url: string, port: number, extra = '') =>
  `url: ${url}\ntraffic_policy:\n${extra}  on_http_request:\n    - actions: [{type: forward-external, config: {url: "http://127.0.0.1:${port}"}}]\n`
const respond = (url: string, body: string, extra = '') =>
  `url: ${url}\ntraffic_policy:\n${extra}  on_http_request:\n    - actions: [{type: custom-response, config: {body: "${body}"}}]\n`

const KEY = 'e2e-https-engine-key'

let edge: Edge
beforeAll(async () => {
  edge = await startEdge({
    config: `api_keys: [${KEY}]\nhttp:\n  max_header_bytes: 16384\nevents:\n  sinks:\n    - type: file\n      path: events.jsonl\n`,
    policies: {
      'app.yml': forward('https://app.warren.localhost', upstream.port!),
      'raw.yml': forward('https://raw.warren.localhost', rawUpstream.port),
      'other.yml': respond('https://other.warren.localhost', 'other'),
      'proto.yml': respond('https://proto.warren.localhost', '${req.version}|${conn.tls.negotiated_alpn}|${conn.tls.sni}'),
      'once.yml': respond('https://once.warren.localhost', 'once', '  on_tcp_connect:\n    - actions: [{type: log, config: {metadata: {tcp_connect: ran}}}]\n'),
      'swap.yml': respond('https://swap.warren.localhost', 'swap'),
    },
  })
})
afterAll(async () => {
  await edge?.stop()
  upstream.stop(true)
  rawUpstream.stop()
})

/** A TLS client connection to the edge's HTTPS port, with what it has read so far. */
interface Client {
  sock: tls.TLSSocket
  text: () => string
  closed: Promise<void>
}

async function connect(servername: string, alpn?: string[]): Promise<Client> {
  let out = ''
  const sock = tls.connect({ host: '127.0.0.1', port: edge.httpsPort, servername, ca: readFileSync(edge.caPath), ...(alpn ? { ALPNProtocols: alpn } : {}) })
  await new Promise<void>((resolve, reject) => (sock.once('secureConnect', resolve), sock.once('error', reject)))
  sock.on('data', (d: Buffer) => (out += d.toString('latin1')))
  const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()))
  sock.on('error', () => {})
  return { sock, text: () => out, closed }
}

/** Writes `text` on a new TLS connection and returns what came back before the edge closed it (or `waitMs`). */
async function tlsRequest(servername: string, text: string, options: { alpn?: string[]; waitMs?: number } = {}): Promise<string> {
  const client = await connect(servername, options.alpn ?? ['http/1.1'])
  client.sock.write(text)
  const timer = setTimeout(() => client.sock.destroy(), options.waitMs ?? 1500)
  await client.closed
  clearTimeout(timer)
  return client.text()
}

const APP = 'Host: app.warren.localhost\r\n'

/** `warren_http_relayed_requests_total`: requests the engine's byte relay served, plaintext and HTTPS. */
async function relayed(): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${edge.apiPort}/metrics`, { headers: { authorization: `Bearer ${KEY}` } })
  return Number(/^warren_http_relayed_requests_total (\d+)$/m.exec(await res.text())?.[1] ?? -1)
}

describe('HTTPS/1.1 on the HTTP/1.1 engine', () => {
  test('three pipelined requests in one TLS write are answered in order', async () => {
    const text = ['/first', '/second', '/third'].map((p) => `GET /echo${p} HTTP/1.1\r\n${APP}\r\n`).join('') + `GET /echo/last HTTP/1.1\r\n${APP}Connection: close\r\n\r\n`
    const answers = responses(await tlsRequest('app.warren.localhost', text))
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200])
    expect(answers.map((a) => (JSON.parse(a.body) as { path: string }).path)).toEqual(['/echo/first', '/echo/second', '/echo/third', '/echo/last'])
  })

  test('repeated header lines reach the upstream as separate lines over HTTPS too', async () => {
    const text = 'GET /dup-tls HTTP/1.1\r\nHost: raw.warren.localhost\r\nX-Dup: one\r\nx-dup: two\r\nX-Single: s\r\nConnection: close\r\n\r\n'
    const [answer] = responses(await tlsRequest('raw.warren.localhost', text))
    expect(answer?.body).toBe('ok')
    const head = heads.find((h) => h.startsWith('GET /dup-tls '))!
    const lines = head.split('\r\n').slice(1).map((l) => l.toLowerCase())
    expect(lines.filter((l) => l.startsWith('x-dup:'))).toEqual(['x-dup: one', 'x-dup: two'])
    expect(lines.filter((l) => l.startsWith('x-single:'))).toEqual(['x-single: s'])
  })

  test('a forward-only endpoint is relayed byte for byte over HTTPS: the real client and proto https upstream, an https event', async () => {
    const before = await relayed()
    const text = 'GET /relayed-tls?q=1 HTTP/1.1\r\nHost: raw.warren.localhost\r\nX-Forwarded-Proto: spoofed\r\n\r\nGET /relayed-tls-2 HTTP/1.1\r\nHost: raw.warren.localhost\r\nConnection: close\r\n\r\n'
    const answers = responses(await tlsRequest('raw.warren.localhost', text))
    expect(answers.map((a) => [a.status, a.body])).toEqual([
      [200, 'ok'],
      [200, 'ok'],
    ])
    expect(await relayed()).toBe(before + 2)
    const head = heads.find((h) => h.startsWith('GET /relayed-tls?q=1 '))!
    // The TLS front's loopback relay is not the client: the address it relayed for is.
    expect(head).toMatch(/\r\nx-forwarded-for: 127\.0\.0\.1\r\nx-forwarded-proto: https\r\nx-forwarded-host: raw\.warren\.localhost(\r\n|$)/)
    expect(head).not.toMatch(/spoofed/)
    const event = () => fileEvents(edge).find((e) => e.event_type === 'http_request_complete.v0' && JSON.stringify(e).includes('/relayed-tls'))
    expect(await eventually(async () => event() !== undefined, 5000)).toBe(true)
    expect(event()!.object.http?.request.url).toMatchObject({ scheme: 'https', host: 'raw.warren.localhost', path: '/relayed-tls', query: 'q=1' })
    const client = event()!.object.conn!
    expect(client.client_ip).toBe('127.0.0.1')
    expect(client.server_port).toBe(edge.httpsPort)
  })

  test('a 20 KiB head over TLS → 431 with Warren-Error-Code, nothing upstream', async () => {
    const before = upstream.seen.length
    const answer = await tlsRequest('app.warren.localhost', `GET /big HTTP/1.1\r\n${APP}X-Big: ${'x'.repeat(20 * 1024)}\r\n\r\n`)
    expect(answer).toMatch(/^HTTP\/1\.1 431 /)
    expect(answer).toMatch(/warren-error-code: ERR_WARREN_3006/i)
    expect(answer).toMatch(/connection: close/i)
    expect(upstream.seen.length).toBe(before)
  })

  test('a client that offers no ALPN is served HTTP/1.1, and req.version / conn.tls.* say so', async () => {
    const answer = await tlsRequest('proto.warren.localhost', 'GET / HTTP/1.1\r\nHost: proto.warren.localhost\r\nConnection: close\r\n\r\n', { alpn: [] })
    expect(responses(answer)[0]?.body).toBe('HTTP/1.1||proto.warren.localhost')
    const offered = await tlsRequest('proto.warren.localhost', 'GET / HTTP/1.0\r\nHost: proto.warren.localhost\r\n\r\n')
    expect(responses(offered)[0]?.body).toBe('HTTP/1.0|http/1.1|proto.warren.localhost')
  })

  test('a Host other than the SNI → 421 with ERR_WARREN_3012, also between two endpoints the relay serves', async () => {
    const answer = await tlsRequest('app.warren.localhost', 'GET / HTTP/1.1\r\nHost: other.warren.localhost\r\nConnection: close\r\n\r\n')
    expect(answer).toMatch(/^HTTP\/1\.1 421 /)
    expect(answer).toMatch(/warren-error-code: ERR_WARREN_3012/i)
    const before = heads.length
    const relayedHost = await tlsRequest('app.warren.localhost', 'GET /misdirected HTTP/1.1\r\nHost: raw.warren.localhost\r\nConnection: close\r\n\r\n')
    expect(relayedHost).toMatch(/^HTTP\/1\.1 421 /)
    expect(relayedHost).toMatch(/warren-error-code: ERR_WARREN_3012/i)
    expect(heads.length).toBe(before)
  })

  test('on_tcp_connect runs once per HTTPS connection (at the TLS front), not once per request', async () => {
    const text = ['/a', '/b', '/c'].map((p, i) => `GET ${p} HTTP/1.1\r\nHost: once.warren.localhost\r\n${i === 2 ? 'Connection: close\r\n' : ''}\r\n`).join('')
    expect(responses(await tlsRequest('once.warren.localhost', text)).map((a) => a.body)).toEqual(['once', 'once', 'once'])
    const onceEvents = () => fileEvents(edge).filter((e) => e.object.conn?.server_name === 'once.warren.localhost')
    expect(await eventually(async () => onceEvents().filter((e) => e.event_type === 'http_request_complete.v0').length === 3 && onceEvents().some((e) => e.event_type === 'tcp_connection_closed.v0'), 5000)).toBe(true)
    const ran = onceEvents().filter((e) => JSON.stringify(e).includes('"tcp_connect":"ran"'))
    expect(ran.map((e) => e.event_type)).toEqual(['tcp_connection_closed.v0'])
  })

  test('a certificate replaced at runtime is served on the next connection; a held one keeps its own', async () => {
    const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256
    const peer = (c: Client) => c.sock.getPeerX509Certificate()!.fingerprint256
    const ask = async (c: Client, path: string) => {
      const before = c.text().length
      c.sock.write(`GET ${path} HTTP/1.1\r\nHost: swap.warren.localhost\r\n\r\n`)
      await eventually(async () => c.text().length > before, 3000)
      return responses(c.text().slice(before))
    }
    const first = selfSigned(['swap.warren.localhost'])
    writeFileSync(join(edge.dir, 'certs', 'swap.pem'), first.cert + first.key)
    const untrusted = (servername: string) =>
      new Promise<Client>((resolve, reject) => {
        let out = ''
        const sock = tls.connect({ host: '127.0.0.1', port: edge.httpsPort, servername, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () =>
          resolve({ sock, text: () => out, closed: new Promise((r) => sock.once('close', () => r())) }),
        )
        sock.on('data', (d: Buffer) => (out += d.toString('latin1')))
        sock.once('error', reject)
      })
    const served = async () => {
      const c = await untrusted('swap.warren.localhost')
      const fp = peer(c)
      c.sock.destroy()
      return fp
    }
    expect(await eventually(async () => (await served()) === fingerprint(first.cert), 3000)).toBe(true)
    const held = await untrusted('swap.warren.localhost')
    expect(peer(held)).toBe(fingerprint(first.cert))
    expect((await ask(held, '/before'))[0]?.body).toBe('swap')
    const second = selfSigned(['swap.warren.localhost'])
    writeFileSync(join(edge.dir, 'certs', 'swap.pem'), second.cert + second.key)
    expect(await eventually(async () => (await served()) === fingerprint(second.cert), 3000)).toBe(true)
    // The new connection is the engine's too: two pipelined requests, both answered.
    const fresh = await untrusted('swap.warren.localhost')
    fresh.sock.write('GET /1 HTTP/1.1\r\nHost: swap.warren.localhost\r\n\r\nGET /2 HTTP/1.1\r\nHost: swap.warren.localhost\r\n\r\n')
    await eventually(async () => responses(fresh.text()).length === 2, 3000)
    expect(responses(fresh.text()).map((a) => a.body)).toEqual(['swap', 'swap'])
    fresh.sock.destroy()
    // The connection made before the swap still works on its listener.
    expect((await ask(held, '/after'))[0]?.body).toBe('swap')
    held.sock.destroy()
  })
})

describe.skipIf(!hasCurl)('HTTP/2 by ALPN still goes to Bun.serve', () => {
  test('curl offering h2 gets HTTP/2, with conn.tls.negotiated_alpn h2', async () => {
    const res = await curl(['--http2', '--cacert', edge.caPath, '-w', '\n%{http_version}', `https://proto.warren.localhost:${edge.httpsPort}/`])
    expect(res.exitCode).toBe(0)
    expect(res.body.split('\n')).toEqual(['HTTP/2.0|h2|proto.warren.localhost', '2'])
  })

  test('forwarded over h2 to the upstream', async () => {
    const res = await curl(['--http2', '--cacert', edge.caPath, `https://app.warren.localhost:${edge.httpsPort}/echo/h2`])
    expect(res.status).toBe(200)
    expect((JSON.parse(res.body) as { path: string }).path).toBe('/echo/h2')
  })
})
