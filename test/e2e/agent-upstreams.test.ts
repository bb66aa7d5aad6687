import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { X509Certificate } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import * as http2 from 'node:http2'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as tls from 'node:tls'
import { edgeFlags, startAgent, type AgentProcess } from './framework/agent.ts'
import { sClientAsync, selfSigned } from './framework/certs.ts'
import { curl } from './framework/curl.ts'
import { freePort } from './framework/ports.ts'
import { startEdge, type Edge } from './framework/process.ts'
import { startEchoServer } from './framework/tcp.ts'
import { startUpstream } from './framework/upstreams.ts'

// How the agent talks to its upstream: HTTP/2, a rewritten Host, TLS terminated in the agent.
// Compiled edge + compiled agent, real clients (curl, openssl s_client, node:tls).

/** A gRPC-style upstream that speaks only HTTP/2 (h2c, prior knowledge): echoes the body, sets grpc-status trailers. */
const grpcSeen: { version: string; authority: string; path: string; te: unknown; body: string }[] = []
const grpc = http2.createServer((req, res) => {
  let body = ''
  req.setEncoding('utf8')
  req.on('data', (c: string) => (body += c))
  req.on('end', () => {
    grpcSeen.push({ version: req.httpVersion, authority: req.authority, path: req.url, te: req.headers.te, body })
    res.writeHead(200, { 'content-type': 'application/grpc', 'x-upstream': 'h2' })
    res.addTrailers({ 'grpc-status': '0', 'grpc-message': 'OK' })
    res.end(`echo:${body}`)
  })
})
const upstream = startUpstream('host-header-origin')
const echo = startEchoServer()
const agentCert = selfSigned(['term.warren.localhost'])
const dir = mkdtempSync(join(tmpdir(), 'warren-agent-upstreams-'))
let edge: Edge
const agents: AgentProcess[] = []

function agent(args: string[]): AgentProcess {
  const a = startAgent(args)
  agents.push(a)
  return a
}

beforeAll(async () => {
  await new Promise<void>((r) => grpc.listen(0, '127.0.0.1', r))
  edge = await startEdge({
    config: `accounts:
  - name: alice
    authtokens: [alice-token]
    domains: ["*.warren.localhost"]
    tcp_ports: "${await freePort()}"
`,
  })
})
afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()))
  await edge?.stop()
  grpc.close()
  upstream.stop(true)
  echo.stop(true)
  rmSync(dir, { recursive: true, force: true })
})

const alice = () => edgeFlags(edge, 'alice-token')
/** curl to an https:// endpoint of the edge, by name. */
const https = (host: string, path: string, args: string[] = []) =>
  curl(['--cacert', edge.caPath, '--connect-to', `${host}:443:127.0.0.1:${edge.httpsPort}`, ...args, `https://${host}${path}`])

describe('warren http --upstream-protocol http2', () => {
  test('curl --http2 → edge → agent → h2c upstream: the upstream sees HTTP/2, the body comes back', async () => {
    const port = (grpc.address() as { port: number }).port
    const a = agent(['http', String(port), '--upstream-protocol', 'http2', '--url', 'https://grpc.warren.localhost', ...alice()])
    expect(await a.forwarding()).toEqual([`https://grpc.warren.localhost:${edge.httpsPort}`])
    const res = await https('grpc.warren.localhost', '/pkg.Echo/Say', ['--http2', '-H', 'content-type: application/grpc', '--data-binary', 'hello over h2'])
    expect(res.status).toBe(200)
    expect(res.body).toBe('echo:hello over h2')
    expect(res.headers['x-upstream']).toBe('h2')
    expect(grpcSeen.at(-1)).toEqual({ version: '2.0', authority: 'grpc.warren.localhost', path: '/pkg.Echo/Say', te: 'trailers', body: 'hello over h2' })

    // HTTP/1.1 with TE: trailers and a chunked upload works the same way.
    const h1 = await https('grpc.warren.localhost', '/pkg.Echo/Again', ['--http1.1', '-H', 'TE: trailers', '-H', 'transfer-encoding: chunked', '--data-binary', 'chunked body'])
    expect(h1.status).toBe(200)
    expect(h1.body).toBe('echo:chunked body')
    expect(grpcSeen.at(-1)).toMatchObject({ version: '2.0', path: '/pkg.Echo/Again', body: 'chunked body' })
    await a.stop()
  })

  test('an http2 upstream that is down gets the agent 502 page with ERR_WARREN_8012', async () => {
    const a = agent(['http', String(await freePort()), '--upstream-protocol', 'http2', '--url', 'https://grpc-down.warren.localhost', ...alice()])
    await a.forwarding()
    const res = await https('grpc-down.warren.localhost', '/', ['-H', 'accept: application/json'])
    expect(res.status).toBe(502)
    expect(JSON.parse(res.body).error.code).toBe('ERR_WARREN_8012')
    await a.stop()
  })
})

describe('warren http --host-header', () => {
  test('rewrite: the upstream sees its own host:port as Host', async () => {
    const a = agent(['http', String(upstream.port), '--host-header', 'rewrite', '--url', 'https://rewrite.warren.localhost', ...alice()])
    await a.forwarding()
    const res = await https('rewrite.warren.localhost', '/echo')
    expect(res.status).toBe(200)
    expect(JSON.parse(res.body).headers.host).toBe(`localhost:${upstream.port}`)
    await a.stop()
  })

  test('a value: the upstream sees that Host', async () => {
    const a = agent(['http', String(upstream.port), '--host-header', 'internal.example:8081', '--url', 'https://hostval.warren.localhost', ...alice()])
    await a.forwarding()
    const res = await https('hostval.warren.localhost', '/echo')
    expect(JSON.parse(res.body).headers.host).toBe('internal.example:8081')
    await a.stop()
  })
})

describe('warren tls --crt --key (agent TLS termination)', () => {
  /** Connects through the edge's TLS port with SNI; returns the served certificate and the echo of `text`. */
  function roundTrip(name: string, text: string): Promise<{ fingerprint: string; subject: string; echoed: string }> {
    return new Promise((resolve, reject) => {
      const sock = tls.connect({ host: '127.0.0.1', port: edge.httpsPort, servername: name, ca: agentCert.cert }, () => sock.write(text))
      let echoed = ''
      sock.on('data', (d) => {
        echoed += d
        if (echoed.length >= text.length) {
          const peer = sock.getPeerCertificate()
          resolve({ fingerprint: peer.fingerprint256, subject: peer.subject.CN as string, echoed })
          sock.end()
        }
      })
      sock.on('error', reject)
    })
  }
  const fingerprint = new X509Certificate(agentCert.cert).fingerprint256

  test('flags: the edge passes TLS through, the agent presents its certificate, plaintext reaches a TCP upstream', async () => {
    const a = agent(['tls', String(echo.port), '--url', 'tls://term.warren.localhost', '--crt', agentCert.certPath, '--key', agentCert.keyPath, ...alice()])
    expect(await a.forwarding()).toEqual([`tls://term.warren.localhost:${edge.httpsPort}`])
    const r = await roundTrip('term.warren.localhost', 'ping through agent TLS\n')
    expect(r).toEqual({ fingerprint, subject: 'term.warren.localhost', echoed: 'ping through agent TLS\n' })

    const s = await sClientAsync(['-connect', `127.0.0.1:${edge.httpsPort}`, '-servername', 'term.warren.localhost', '-CAfile', agentCert.certPath, '-verify_return_error'], 'hello from s_client\n')
    expect(s.out).toMatch(/subject=.*CN\s*=\s*term\.warren\.localhost/)
    expect(s.out).toContain('Verify return code: 0 (ok)')
    expect(s.out).toContain('hello from s_client')
    await a.stop()
  })

  test('config: agent_tls_termination {server_certificate, server_private_key} does the same', async () => {
    writeFileSync(join(dir, 'agent.crt'), agentCert.cert)
    writeFileSync(join(dir, 'agent.key'), agentCert.key)
    const config = join(dir, 'agent.yml')
    writeFileSync(
      config,
      `version: 3
endpoints:
  - name: term
    url: tls://term2.warren.localhost
    upstream: {url: ${echo.port}}
    agent_tls_termination:
      server_certificate: agent.crt
      server_private_key: agent.key
`,
    )
    const a = agent(['start', 'term', '--config', config, ...alice()])
    expect(await a.forwarding()).toEqual([`tls://term2.warren.localhost:${edge.httpsPort}`])
    // The certificate names term.warren.localhost only: check it by fingerprint, not by name.
    const got = await new Promise<{ fingerprint: string; echoed: string }>((resolve, reject) => {
      const sock = tls.connect({ host: '127.0.0.1', port: edge.httpsPort, servername: 'term2.warren.localhost', rejectUnauthorized: false }, () => sock.write('via config\n'))
      let echoed = ''
      sock.on('data', (d) => {
        echoed += d
        if (echoed.endsWith('\n')) {
          resolve({ fingerprint: sock.getPeerCertificate().fingerprint256, echoed })
          sock.end()
        }
      })
      sock.on('error', reject)
    })
    expect(got).toEqual({ fingerprint, echoed: 'via config\n' })
    await a.stop()
  })
})
