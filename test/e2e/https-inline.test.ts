import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { X509Certificate } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { connect as tcpConnect, type Socket as NetSocket } from 'node:net'
import { join } from 'node:path'
import * as tls from 'node:tls'
import { selfSigned } from './framework/certs.ts'
import { eventually, startEdge, type Edge } from './framework/process.ts'
import { responses, startRawHeadUpstream } from './framework/raw.ts'

// HTTPS terminated on the TLS port's accepted socket (upgradeTLS in open(), no loopback hop to an
// internal TLS server), through the compiled binary. `warren_tls_connections_total{path}` proves which
// path each connection took: `inline` here, `relay` once a tls:// endpoint shares the port.

const hasOpenssl = Bun.which('openssl') !== null
const hasCurl = Bun.which('curl') !== null
const KEY = 'e2e-https-inline-key'
const rawUpstream = startRawHeadUpstream()
const heads = rawUpstream.heads

const respond = (url: string, body: string) => `url: ${url}\ntraffic_policy:\n  on_http_request:\n    - actions: [{type: custom-response, config: {body: "${body}"}}]\n`
const forward = (url: string, port: number) => `url: ${url}\ntraffic_policy:\n  on_http_request:\n    - actions: [{type: forward-external, config: {url: "http://127.0.0.1:${port}"}}]\n`
/** Answers `matched` only when the CEL expression over conn.tls.* holds. */
const tlsExpr =
  'url: https://expr.warren.localhost\ntraffic_policy:\n  on_http_request:\n' +
  `    - expressions: ["conn.tls.sni == 'expr.warren.localhost' && conn.tls.version == '1.3' && conn.tls.negotiated_alpn == 'http/1.1' && conn.tls.cipher_suite.startsWith('TLS_')"]\n` +
  '      actions: [{type: custom-response, config: {body: "matched"}}]\n' +
  '    - actions: [{type: custom-response, config: {body: "unmatched"}}]\n'

let edge: Edge
beforeAll(async () => {
  edge = await startEdge({
    config: `api_keys: [${KEY}]\ntls:\n  client_hello_timeout: 1\n`,
    policies: {
      'a.yml': respond('https://a.warren.localhost', 'a'),
      'b.yml': respond('https://b.warren.localhost', 'b'),
      'expr.yml': tlsExpr,
      'proto.yml': respond('https://proto.warren.localhost', '${req.version}|${conn.tls.negotiated_alpn}|${conn.client_ip}'),
      'raw.yml': forward('https://raw.warren.localhost', rawUpstream.port),
      'swap.yml': respond('https://swap.warren.localhost', 'swap'),
      'denied.yml': `url: https://denied.warren.localhost\ntraffic_policy:\n  on_tcp_connect:\n    - actions: [{type: deny}]\n  on_http_request:\n    - actions: [{type: custom-response, config: {body: "unreachable"}}]\n`,
    },
  })
  // Dev certificates for the names are issued when the table loads; until then connections take the relay.
  expect(await eventually(async () => (await tlsPaths()).inline > 0 || (await probeInline()), 10_000)).toBe(true)
})
afterAll(async () => {
  await edge?.stop()
  rawUpstream.stop()
})

/** `warren_tls_connections_total` by path. */
async function tlsPaths(): Promise<{ inline: number; relay: number }> {
  const res = await fetch(`http://127.0.0.1:${edge.apiPort}/metrics`, { headers: { authorization: `Bearer ${KEY}` } })
  const text = await res.text()
  const read = (path: string) => Number(new RegExp(`^warren_tls_connections_total\\{path="${path}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0)
  return { inline: read('inline'), relay: read('relay') }
}

/** One request on a new connection; true when it went the inline path. */
async function probeInline(): Promise<boolean> {
  const before = await tlsPaths()
  await request('a.warren.localhost', 'GET / HTTP/1.1\r\nHost: a.warren.localhost\r\nConnection: close\r\n\r\n')
  return (await tlsPaths()).inline > before.inline
}

/** node:tls options plus the socket ones it passes on (`localAddress`). */
type ConnectOptions = tls.ConnectionOptions & { localAddress?: string }

interface Client {
  sock: tls.TLSSocket
  text: () => string
  closed: Promise<void>
}

async function open(servername: string, options: ConnectOptions = {}): Promise<Client> {
  let out = ''
  const sock = tls.connect({ host: '127.0.0.1', port: edge.httpsPort, servername, ca: readFileSync(edge.caPath), ALPNProtocols: ['http/1.1'], ...options })
  await new Promise<void>((resolve, reject) => (sock.once('secureConnect', resolve), sock.once('error', reject)))
  sock.on('data', (d: Buffer) => (out += d.toString('latin1')))
  sock.on('error', () => {})
  return { sock, text: () => out, closed: new Promise<void>((resolve) => sock.once('close', () => resolve())) }
}

async function request(servername: string, text: string, options: ConnectOptions = {}): Promise<string> {
  const client = await open(servername, options)
  client.sock.write(text)
  const timer = setTimeout(() => client.sock.destroy(), 3000)
  await client.closed
  clearTimeout(timer)
  return client.text()
}

/** Runs a command with stdin, bounded by `timeoutMs`. */
async function run(cmd: string[], stdin: string, timeoutMs = 10_000): Promise<string> {
  const proc = Bun.spawn(cmd, { stdin: 'pipe', stdout: 'pipe', stderr: 'pipe' })
  proc.stdin.write(stdin)
  await proc.stdin.end()
  const timer = setTimeout(() => proc.kill(), timeoutMs)
  const out = await new Response(proc.stdout).text()
  await proc.exited
  clearTimeout(timer)
  return out
}

/** A plain TCP connection to the TLS port: what it receives, and when it closes. */
function rawConnect(): Promise<{ sock: NetSocket; bytes: () => Buffer; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    const sock = tcpConnect({ host: '127.0.0.1', port: edge.httpsPort }, () => {
      const opened = Date.now()
      resolve({ sock, bytes: () => Buffer.concat(chunks), closed: new Promise((r) => sock.once('close', () => r(Date.now() - opened))) })
    })
    sock.on('data', (d: Buffer) => chunks.push(d))
    sock.on('error', () => {})
    sock.once('error', reject)
  })
}

describe('HTTPS/1.1 terminated on the front socket', () => {
  test.skipIf(!hasCurl)('curl --http1.1: several requests on one keep-alive connection, all inline', async () => {
    const before = await tlsPaths()
    const url = `https://a.warren.localhost:${edge.httpsPort}/`
    const proc = Bun.spawn(['curl', '-s', '--http1.1', '--max-time', '20', '--cacert', edge.caPath, '-w', '|%{num_connects}|%{http_version}\n', url, url, url], { stdout: 'pipe' })
    const out = await new Response(proc.stdout).text()
    expect(await proc.exited).toBe(0)
    // One connection made by the first transfer, reused by the next two.
    expect(out.trim().split('\n')).toEqual(['a|1|1.1', 'a|0|1.1', 'a|0|1.1'])
    const after = await tlsPaths()
    expect(after.inline).toBe(before.inline + 1)
    expect(after.relay).toBe(before.relay)
  })

  test.skipIf(!hasOpenssl)('openssl s_client: two pipelined requests in one write, answered in order', async () => {
    const text = 'GET /one HTTP/1.1\r\nHost: raw.warren.localhost\r\n\r\nGET /two HTTP/1.1\r\nHost: raw.warren.localhost\r\nConnection: close\r\n\r\n'
    const out = await run(['openssl', 's_client', '-quiet', '-connect', `127.0.0.1:${edge.httpsPort}`, '-servername', 'raw.warren.localhost', '-alpn', 'http/1.1', '-CAfile', edge.caPath], text)
    expect(responses(out.slice(out.indexOf('HTTP/1.1'))).map((a) => [a.status, a.body])).toEqual([
      [200, 'ok'],
      [200, 'ok'],
    ])
    const paths = heads.map((h) => h.split(' ')[1])
    expect(paths.indexOf('/one')).toBeLessThan(paths.indexOf('/two'))
  })

  test.skipIf(!hasOpenssl)('each SNI gets its own certificate (openssl s_client -servername)', async () => {
    const sanOf = async (name: string) => {
      const pem = await run(['openssl', 's_client', '-connect', `127.0.0.1:${edge.httpsPort}`, '-servername', name, '-alpn', 'http/1.1'], '')
      const cert = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem)?.[0]
      return cert ? new X509Certificate(cert).subjectAltName : undefined
    }
    expect(await sanOf('a.warren.localhost')).toBe('DNS:a.warren.localhost')
    expect(await sanOf('b.warren.localhost')).toBe('DNS:b.warren.localhost')
  })

  test('the client address is the real peer: X-Forwarded-For and conn.client_ip', async () => {
    // From 127.0.0.2: the edge's own loopback relay would have shown 127.0.0.1.
    const proto = await request('proto.warren.localhost', 'GET / HTTP/1.1\r\nHost: proto.warren.localhost\r\nConnection: close\r\n\r\n', { localAddress: '127.0.0.2' })
    expect(responses(proto)[0]?.body).toBe('HTTP/1.1|http/1.1|127.0.0.2')
    await request('raw.warren.localhost', 'GET /xff HTTP/1.1\r\nHost: raw.warren.localhost\r\nConnection: close\r\n\r\n', { localAddress: '127.0.0.2' })
    const head = heads.find((h) => h.startsWith('GET /xff '))!
    expect(head).toMatch(/\r\nx-forwarded-for: 127\.0\.0\.2\r\n/)
  })

  test('conn.tls.sni, version, negotiated_alpn and cipher_suite in a policy expression', async () => {
    const answer = await request('expr.warren.localhost', 'GET / HTTP/1.1\r\nHost: expr.warren.localhost\r\nConnection: close\r\n\r\n', { minVersion: 'TLSv1.3' })
    expect(responses(answer)[0]?.body).toBe('matched')
    const tls12 = await request('expr.warren.localhost', 'GET / HTTP/1.1\r\nHost: expr.warren.localhost\r\nConnection: close\r\n\r\n', { maxVersion: 'TLSv1.2' })
    expect(responses(tls12)[0]?.body).toBe('unmatched')
  })

  test.skipIf(!hasCurl)('h2 by ALPN still answers (relayed to the internal HTTP/2 server)', async () => {
    const before = await tlsPaths()
    const proc = Bun.spawn(['curl', '-s', '--http2', '--max-time', '20', '--cacert', edge.caPath, '-w', '|%{http_version}', `https://proto.warren.localhost:${edge.httpsPort}/`], { stdout: 'pipe' })
    const out = await new Response(proc.stdout).text()
    expect(await proc.exited).toBe(0)
    expect(out).toBe('HTTP/2.0|h2|127.0.0.1|2')
    expect((await tlsPaths()).inline).toBe(before.inline + 1)
  })

  test('a certificate replaced at runtime is served to the next connection; an established one keeps working', async () => {
    const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256
    const untrusted = { rejectUnauthorized: false }
    const served = async () => {
      const c = await open('swap.warren.localhost', untrusted)
      const fp = c.sock.getPeerX509Certificate()!.fingerprint256
      c.sock.destroy()
      return fp
    }
    const ask = async (c: Client, path: string) => {
      const before = c.text().length
      c.sock.write(`GET ${path} HTTP/1.1\r\nHost: swap.warren.localhost\r\n\r\n`)
      await eventually(async () => responses(c.text().slice(before)).length === 1, 3000)
      return responses(c.text().slice(before))[0]?.body
    }
    const first = selfSigned(['swap.warren.localhost'])
    writeFileSync(join(edge.dir, 'certs', 'swap.pem'), first.cert + first.key)
    expect(await eventually(async () => (await served()) === fingerprint(first.cert), 5000)).toBe(true)
    const held = await open('swap.warren.localhost', untrusted)
    expect(await ask(held, '/before')).toBe('swap')
    const paths = await tlsPaths()
    const second = selfSigned(['swap.warren.localhost'])
    writeFileSync(join(edge.dir, 'certs', 'swap.pem'), second.cert + second.key)
    expect(await eventually(async () => (await served()) === fingerprint(second.cert), 5000)).toBe(true)
    expect(await ask(held, '/after')).toBe('swap')
    expect(held.sock.getPeerX509Certificate()!.fingerprint256).toBe(fingerprint(first.cert))
    held.sock.destroy()
    // Every connection since the swap was terminated inline too: no listener to rebuild.
    expect((await tlsPaths()).relay).toBe(paths.relay)
  })

  test('on_tcp_connect deny: closed right after the handshake, no request read', async () => {
    const before = await tlsPaths()
    const client = await open('denied.warren.localhost')
    client.sock.write('GET / HTTP/1.1\r\nHost: denied.warren.localhost\r\n\r\n')
    // The edge closes it (the client would wait for an answer).
    expect(await Promise.race([client.closed.then(() => 'closed'), Bun.sleep(2000).then(() => 'open')])).toBe('closed')
    client.sock.destroy()
    expect(client.text()).toBe('')
    expect((await tlsPaths()).inline).toBe(before.inline + 1)
  })

  test('a garbage first chunk gets a handshake_failure alert, and the edge keeps serving', async () => {
    const conn = await rawConnect()
    // A handshake record whose body is no ClientHello.
    conn.sock.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x08, 0x07, 0x00, 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef]))
    await conn.closed
    expect([...conn.bytes()]).toEqual([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28])
    expect(responses(await request('a.warren.localhost', 'GET / HTTP/1.1\r\nHost: a.warren.localhost\r\nConnection: close\r\n\r\n'))[0]?.body).toBe('a')
  })

  test('an unknown SNI gets unrecognized_name before any ServerHello', async () => {
    const err = await open('nobody.warren.localhost').then(
      (c) => (c.sock.destroy(), undefined),
      (e: Error) => e.message,
    )
    expect(err).toMatch(/unrecognized.name/i)
  })

  test('the hello timeout closes a silent connection, and one that stops mid-hello', async () => {
    const silent = await rawConnect()
    const half = await rawConnect()
    half.sock.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]))
    const [silentMs, halfMs] = await Promise.all([silent.closed, half.closed])
    // client_hello_timeout is 1 s here; nothing was sent back.
    for (const ms of [silentMs, halfMs]) {
      expect(ms).toBeGreaterThanOrEqual(900)
      expect(ms).toBeLessThan(5000)
    }
    expect(silent.bytes().length + half.bytes().length).toBe(0)
  })
})

describe('a tls:// passthrough endpoint on the same port', () => {
  let backend: tls.Server
  beforeAll(async () => {
    const own = selfSigned(['pass.warren.localhost'])
    backend = tls.createServer({ cert: own.cert, key: own.key }, (s) => s.end('passthrough-backend\n'))
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve))
  })
  afterAll(() => void backend.close())

  test('is served beside HTTPS endpoints (both relayed while it exists; inline again once it is gone)', async () => {
    const port = (backend.address() as { port: number }).port
    edge.writePolicy('pass.yml', `url: tls://pass.warren.localhost\ntraffic_policy:\n  on_tcp_connect:\n    - actions: [{type: forward-external, config: {url: "tcp://127.0.0.1:${port}"}}]\n`)
    const passthrough = async () => {
      const c = await open('pass.warren.localhost', { rejectUnauthorized: false, ALPNProtocols: [] }).catch(() => undefined)
      if (!c) return ''
      await c.closed
      return c.text()
    }
    expect(await eventually(async () => (await passthrough()) === 'passthrough-backend\n', 5000)).toBe(true)
    const before = await tlsPaths()
    expect(responses(await request('a.warren.localhost', 'GET / HTTP/1.1\r\nHost: a.warren.localhost\r\nConnection: close\r\n\r\n'))[0]?.body).toBe('a')
    expect(await passthrough()).toBe('passthrough-backend\n')
    const during = await tlsPaths()
    expect(during.relay).toBe(before.relay + 2)
    expect(during.inline).toBe(before.inline)
    edge.removePolicy('pass.yml')
    expect(await eventually(async () => (await passthrough()) === '', 5000)).toBe(true)
    expect(await eventually(probeInline, 5000)).toBe(true)
  })
})
