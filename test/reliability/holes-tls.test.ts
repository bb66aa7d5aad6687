import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as tls from 'node:tls'
import { edgeFlags, startAgent, type AgentProcess } from '../e2e/framework/agent.ts'
import { sClientAsync } from '../e2e/framework/certs.ts'
import { curl } from '../e2e/framework/curl.ts'
import { startEdge, type Edge } from '../e2e/framework/process.ts'
import { rawRequest } from '../e2e/framework/raw.ts'
import { startUpstream } from '../e2e/framework/upstreams.ts'

// Issue 12, holes 1 and 2, against the compiled edge with real clients (curl h1 and h2, openssl
// s_client, node:tls raw sockets, the compiled agent).
// 1. A request whose Host selects another endpoint than the one its TLS handshake was made for gets
//    421 (else `Host: mtls…` on a connection made for `up…` skips mtls's client-certificate check).
// 2. A client's `Connection: x-forwarded-for, host, x-policy-added` cannot strip what the edge or a
//    policy sets: Connection-listed fields are dropped at entry, before anything is added.

const hasOpenssl = Bun.which('openssl') !== null
const hasCurl = Bun.which('curl') !== null
const upstream = startUpstream('holes-tls')
/** A websocket upstream that records the handshake headers it got. */
const wsSeen: Record<string, string>[] = []
const wsUpstream = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  fetch(req, server) {
    wsSeen.push(Object.fromEntries(req.headers))
    return server.upgrade(req) ? undefined : new Response('not a websocket', { status: 400 })
  },
  websocket: { message: (ws, m) => void ws.send(m) },
})
const MISDIRECTED = 'ERR_WARREN_3012'
/** Sent by the client and named by its Connection header: the edge must not forward it. */
const CLIENT_OPTION = 'x-client-option'
const STRIP_ATTEMPT = `x-forwarded-for, host, x-policy-added, x-forwarded-proto, x-forwarded-host, ${CLIENT_OPTION}`

const respond = (url: string, body: string, onTcpConnect = '') =>
  `url: ${url}\ntraffic_policy:\n${onTcpConnect}  on_http_request:\n    - actions: [{type: custom-response, config: {body: "${body}"}}]\n`
const terminate = (config: string) => `  on_tcp_connect:\n    - actions: [{type: terminate-tls, config: ${config}}]\n`
const echo = (url: string, port = upstream.port) =>
  `url: ${url}\ntraffic_policy:\n  on_http_request:\n    - actions:\n        - {type: add-headers, config: {headers: {x-policy-added: "yes"}}}\n        - {type: forward-external, config: {url: "http://127.0.0.1:${port}"}}\n`

const certDir = mkdtempSync(join(tmpdir(), 'warren-holes-tls-'))
let clientCa = ''
let edge: Edge
let agent: AgentProcess | undefined

beforeAll(async () => {
  if (hasOpenssl) {
    // A client CA and a client certificate for the mutual-TLS endpoint.
    const run = (args: string[]) => Bun.spawnSync(['openssl', ...args], { cwd: certDir })
    run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=holes client CA'])
    run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'alice.key', '-out', 'alice.csr', '-subj', '/CN=alice'])
    run(['x509', '-req', '-in', 'alice.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'alice.pem', '-days', '2'])
    clientCa = readFileSync(join(certDir, 'ca.pem'), 'utf8')
  }
  edge = await startEdge({
    config: 'accounts:\n  - name: holes\n    authtokens: [holes-token]\n    domains: ["*.warren.localhost"]\n',
    policies: {
      'mtls.yml': respond('https://mtls.warren.localhost', 'mtls-only', terminate(JSON.stringify({ mutual_tls_certificate_authorities: [clientCa] }))),
      'up.yml': respond('https://up.warren.localhost', 'up ${req.host}'),
      'term.yml': respond('https://term.warren.localhost', 'term', terminate('{min_version: "1.2"}')),
      'wild.yml': respond('https://*.wild.warren.localhost', 'wild ${req.host}'),
      'echo-http.yml': echo('http://echo.warren.localhost'),
      'echo-https.yml': echo('https://echo.warren.localhost'),
      'ws.yml': echo('http://ws.warren.localhost', wsUpstream.port),
    },
  })
})
afterAll(async () => {
  await agent?.stop()
  await edge?.stop()
  upstream.stop(true)
  wsUpstream.stop(true)
  rmSync(certDir, { recursive: true, force: true })
})

const at = (host: string, path = '/') => `https://${host}:${edge.httpsPort}${path}`
const clientCert = () => ['--cert', join(certDir, 'alice.pem'), '--key', join(certDir, 'alice.key')]

/** Requests sent one after another on one TLS connection (keep-alive); returns everything answered. */
function oneConnection(servername: string, requests: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = ''
    let answered = 0
    const sock = tls.connect({ host: '127.0.0.1', port: edge.httpsPort, servername, ca: readFileSync(edge.caPath), ALPNProtocols: ['http/1.1'] }, () => sock.write(requests[0]!))
    const timer = setTimeout(() => (sock.destroy(), reject(new Error(`no answer in time; got:\n${out}`))), 10_000)
    sock.on('data', (d) => {
      out += d
      // Every answer here is small and sized: one complete response per Content-Length body seen.
      const done = [...out.matchAll(/content-length: (\d+)\r\n(?:.*\r\n)*?\r\n/gi)].filter((m) => out.length >= m.index! + m[0].length + Number(m[1])).length
      if (done > answered) {
        answered = done
        if (answered < requests.length) sock.write(requests[answered]!)
        else sock.end()
      }
    })
    sock.on('close', () => (clearTimeout(timer), resolve(out)))
    sock.on('error', (err) => (clearTimeout(timer), reject(err)))
  })
}

describe.skipIf(!hasOpenssl || !hasCurl)('hole 1: Host ≠ SNI gets 421 Misdirected Request', () => {
  test('the mTLS bypass: a connection made for up.* cannot ask for mtls.* (curl HTTP/1.1 and HTTP/2)', async () => {
    for (const version of ['--http1.1', '--http2']) {
      const res = await curl([version, '--cacert', edge.caPath, at('up.warren.localhost'), '-H', `Host: mtls.warren.localhost:${edge.httpsPort}`])
      expect({ version, status: res.status, code: res.headers['warren-error-code'] }).toEqual({ version, status: 421, code: MISDIRECTED })
      expect(res.body).not.toContain('mtls-only')
      // Without the port, as an h2 client coalescing connections would send it.
      const bare = await curl([version, '--cacert', edge.caPath, at('up.warren.localhost'), '-H', 'Host: mtls.warren.localhost'])
      expect({ version, status: bare.status, body: bare.body.includes('mtls-only') }).toEqual({ version, status: 421, body: false })
    }
    // The mutual-TLS endpoint itself still wants its client certificate, and serves with one.
    const without = await curl(['--cacert', edge.caPath, at('mtls.warren.localhost')])
    expect(without.status).toBe(0)
    const withCert = await curl(['--cacert', edge.caPath, ...clientCert(), at('mtls.warren.localhost')])
    expect([withCert.status, withCert.body]).toEqual([200, 'mtls-only'])
  })

  test('the terminate-tls (node:tls) path: a connection made for mtls.* or term.* cannot ask for another endpoint', async () => {
    const cross = await curl(['--cacert', edge.caPath, ...clientCert(), at('mtls.warren.localhost'), '-H', `Host: up.warren.localhost:${edge.httpsPort}`])
    expect([cross.status, cross.headers['warren-error-code']]).toEqual([421, MISDIRECTED])
    const fromTerm = await curl(['--cacert', edge.caPath, at('term.warren.localhost'), '-H', 'Host: mtls.warren.localhost'])
    expect([fromTerm.status, fromTerm.headers['warren-error-code']]).toEqual([421, MISDIRECTED])
    expect(fromTerm.body).not.toContain('mtls-only')
    const same = await curl(['--cacert', edge.caPath, at('term.warren.localhost')])
    expect([same.status, same.body]).toEqual([200, 'term'])
  })

  test('a raw HTTP/1.1 connection: its own Host is served, then another Host on the same connection gets 421', async () => {
    const ask = (host: string) => `GET /raw HTTP/1.1\r\nHost: ${host}\r\n\r\n`
    const out = await oneConnection('up.warren.localhost', [ask('up.warren.localhost'), ask('mtls.warren.localhost'), ask('UP.warren.localhost.')])
    const statuses = [...out.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]))
    expect(statuses).toEqual([200, 421, 200])
    expect(out).toContain(`warren-error-code: ${MISDIRECTED}`)
    expect(out).not.toContain('mtls-only')
  })

  test('an SNI of name:port (the node:tls path) is held to its name too', async () => {
    const request = (host: string) => `GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`
    const sni = `up.warren.localhost:${edge.httpsPort}`
    const bad = await sClientAsync(['-connect', `127.0.0.1:${edge.httpsPort}`, '-servername', sni, '-CAfile', edge.caPath, '-quiet'], request('mtls.warren.localhost'))
    expect(bad.out).toMatch(/HTTP\/1\.1 421/)
    expect(bad.out).not.toContain('mtls-only')
    const good = await sClientAsync(['-connect', `127.0.0.1:${edge.httpsPort}`, '-servername', sni, '-CAfile', edge.caPath, '-quiet'], request('up.warren.localhost'))
    expect(good.out).toMatch(/HTTP\/1\.1 200[\s\S]*up up\.warren\.localhost/)
  })

  test('another name under the same wildcard endpoint is the same endpoint: served, h1 and h2', async () => {
    for (const version of ['--http1.1', '--http2']) {
      const res = await curl([version, '--cacert', edge.caPath, at('a.wild.warren.localhost'), '-H', 'Host: b.wild.warren.localhost'])
      expect({ version, status: res.status, body: res.body }).toEqual({ version, status: 200, body: 'wild b.wild.warren.localhost' })
      const out = await curl([version, '--cacert', edge.caPath, at('a.wild.warren.localhost'), '-H', 'Host: up.warren.localhost'])
      expect({ version, status: out.status }).toEqual({ version, status: 421 })
    }
  })

  test('the plaintext port is not affected: Host alone picks the endpoint', async () => {
    const res = await curl([`http://127.0.0.1:${edge.httpPort}/plain`, '-H', 'Host: echo.warren.localhost'])
    expect(res.status).toBe(200)
    expect(JSON.parse(res.body).path).toBe('/plain')
  })
})

describe.skipIf(!hasCurl)('hole 2: a Connection header cannot strip what the edge or a policy sets', () => {
  /** What the echo upstream saw, after the client asked the edge to drop the edge's own headers. */
  async function stripAttempt(url: string, extra: string[] = []): Promise<Record<string, string>> {
    const res = await curl([
      ...extra,
      url,
      '-H', `Connection: ${STRIP_ATTEMPT}`,
      '-H', 'X-Forwarded-For: 203.0.113.9',
      '-H', `${CLIENT_OPTION}: for-the-first-hop-only`,
    ])
    expect(res.status).toBe(200)
    return JSON.parse(res.body).headers
  }

  /** `h2`: HTTP/2 has no Connection header (RFC 9113 §8.2.2; curl leaves it out), so the client's fields all stay. */
  function expectEdgeHeaders(seen: Record<string, string>, host: string, proto: string, h2 = false): void {
    expect(seen['host']).toBe(host)
    expect(seen['x-policy-added']).toBe('yes')
    // Over HTTP/1.1 the client's own X-Forwarded-For was a Connection option: gone, and the edge's entry is whole.
    expect(seen['x-forwarded-for']).toBe(h2 ? '203.0.113.9, 127.0.0.1' : '127.0.0.1')
    expect(seen['x-forwarded-proto']).toBe(proto)
    expect(seen['x-forwarded-host']).toBe(host)
    expect(seen[CLIENT_OPTION]).toBe(h2 ? 'for-the-first-hop-only' : undefined)
    expect(seen['connection'] ?? '').not.toContain('x-')
  }

  test('HTTP/1.1 on the plaintext port (warren HTTP/1.1 client to the upstream)', async () => {
    const host = `echo.warren.localhost:${edge.httpPort}`
    expectEdgeHeaders(await stripAttempt(`http://${host}/echo`), host, 'http')
  })

  test('HTTP/1.1 and HTTP/2 over TLS', async () => {
    const host = `echo.warren.localhost:${edge.httpsPort}`
    expectEdgeHeaders(await stripAttempt(`https://${host}/echo`, ['--http1.1', '--cacert', edge.caPath]), host, 'https')
    expectEdgeHeaders(await stripAttempt(`https://${host}/echo`, ['--http2', '--cacert', edge.caPath]), host, 'https', true)
  })

  test('an upload without Content-Length (the fetch path to the upstream)', async () => {
    const host = `echo.warren.localhost:${edge.httpPort}`
    const seen = await stripAttempt(`http://${host}/echo`, ['-H', 'Transfer-Encoding: chunked', '--data-binary', 'chunked body'])
    expectEdgeHeaders(seen, host, 'http')
  })

  test('a websocket handshake: Connection: Upgrade still upgrades, its other options and Keep-Alive stay on the first hop', async () => {
    const host = `ws.warren.localhost:${edge.httpPort}`
    const handshake = [
      'GET /chat HTTP/1.1',
      `Host: ${host}`,
      `Connection: Upgrade, ${STRIP_ATTEMPT}`,
      'Upgrade: websocket',
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
      'Sec-WebSocket-Version: 13',
      'Keep-Alive: timeout=5',
      'X-Forwarded-For: 203.0.113.9',
      `${CLIENT_OPTION}: for-the-first-hop-only`,
    ]
    const answer = await rawRequest(edge.httpPort, handshake.join('\r\n') + '\r\n\r\n', 1000)
    expect(answer).toMatch(/^HTTP\/1\.1 101 /)
    const seen = wsSeen.at(-1)!
    expectEdgeHeaders(seen, host, 'http')
    expect(seen['keep-alive']).toBeUndefined()
  })

  test('an agent endpoint (the tunnel path): the policy header and X-Forwarded-For reach the agent’s upstream', async () => {
    const policyFile = join(certDir, 'agent-policy.yml')
    writeFileSync(policyFile, 'on_http_request:\n  - actions: [{type: add-headers, config: {headers: {x-policy-added: "yes"}}}]\n')
    agent = startAgent(['http', String(upstream.port), '--url', 'http://tunnel.warren.localhost', '--traffic-policy-file', policyFile, ...edgeFlags(edge, 'holes-token')])
    await agent.forwarding()
    const host = `tunnel.warren.localhost:${edge.httpPort}`
    expectEdgeHeaders(await stripAttempt(`http://${host}/echo`), host, 'http')
  })
})
