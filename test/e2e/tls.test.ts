import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createHash, X509Certificate } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as tls from 'node:tls'
import { selfSigned, sClient, sClientAsync } from './framework/certs.ts'
import { curl } from './framework/curl.ts'
import { eventually, startEdge, type Edge } from './framework/process.ts'
import { scratchDir } from './framework/scratch.ts'
import { startUpstream } from './framework/upstreams.ts'

const hasOpenssl = Bun.which('openssl') !== null
const upstream = startUpstream('tls-origin')

// A TLS backend for passthrough: echoes bytes; its own certificate (the edge never sees plaintext).
const backendCert = selfSigned(['pt.warren.localhost'])
const backend = tls.createServer({ cert: backendCert.cert, key: backendCert.key }, (s) => s.pipe(s))
let backendPort = 0

const respond = (url: string, body: string) =>
  `url: ${url}\ntraffic_policy:\n  on_http_request:\n    - actions: [{type: custom-response, config: {body: "${body}"}}]\n`

let edge: Edge
beforeAll(async () => {
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r))
  backendPort = (backend.address() as { port: number }).port
  edge = await startEdge({
    policies: {
      'secure.yml': respond('https://secure.warren.localhost', 'secure ${req.url.path} ${conn.client_port}'),
      'wild.yml': respond('https://*.wild.warren.localhost', 'wild ${req.host}'),
      'conn-tls.yml': respond('https://conn-tls.warren.localhost', '${conn.tls.version}|${conn.tls.cipher_suite}|${conn.tls.sni}|${conn.tls.negotiated_alpn}|${req.version}|${conn.tls.ja4_fingerprint}'),
      'files.yml': respond('https://byo.warren.localhost', 'byo'),
      'app.yml': `url: https://app.warren.localhost\ntraffic_policy:\n  on_http_request:\n    - actions: [{type: forward-external, config: {url: "http://127.0.0.1:${upstream.port}"}}]\n`,
      'pt.yml': `url: tls://pt.warren.localhost\ntraffic_policy:\n  on_tcp_connect:\n    - actions: [{type: forward-external, config: {url: "tls://127.0.0.1:${backendPort}"}}]\n`,
    },
  })
})
afterAll(async () => {
  await edge?.stop()
  upstream.stop(true)
  backend.close()
})

const https = (host: string, path = '/') => `https://${host}:${edge.httpsPort}${path}`

describe.skipIf(!hasOpenssl)('the TLS port (compiled edge, curl and openssl s_client)', () => {
  test('terminates https:// endpoints with a dev-CA certificate for the name', async () => {
    const res = await curl(['--cacert', edge.caPath, https('secure.warren.localhost', '/x')])
    expect(res.exitCode).toBe(0)
    expect(res.status).toBe(200)
    expect(res.body).toMatch(/^secure \/x \d+$/)
    const s = sClient(['-connect', `127.0.0.1:${edge.httpsPort}`, '-servername', 'secure.warren.localhost', '-CAfile', edge.caPath, '-verify_return_error'])
    expect(s.out).toContain('Verify return code: 0 (ok)')
    expect(s.out).toMatch(/subject=.*secure\.warren\.localhost/)
  })

  test('a wildcard endpoint gets a certificate for each name asked', async () => {
    const res = await curl(['--cacert', edge.caPath, https('a.wild.warren.localhost')])
    expect(res.body).toBe(`wild a.wild.warren.localhost:${edge.httpsPort}`)
    const s = sClient(['-connect', `127.0.0.1:${edge.httpsPort}`, '-servername', 'b.wild.warren.localhost', '-CAfile', edge.caPath, '-verify_return_error'])
    expect(s.out).toContain('Verify return code: 0 (ok)')
  })

  test('the policy sees the real client port, not the edge-internal hop', async () => {
    const { seen, local } = await new Promise<{ seen: number; local: number }>((resolve, reject) => {
      const sock = tls.connect({ host: '127.0.0.1', port: edge.httpsPort, servername: 'secure.warren.localhost', ca: readFileSync(edge.caPath) }, () =>
        sock.write('GET /p HTTP/1.1\r\nHost: secure.warren.localhost\r\nConnection: close\r\n\r\n'),
      )
      let out = ''
      sock.on('data', (d) => (out += d))
      sock.on('end', () => {
        const m = /secure \/p (\d+)/.exec(out)
        m ? resolve({ seen: Number(m[1]), local: sock.localPort! }) : reject(new Error(out))
      })
      sock.on('error', reject)
    })
    expect(seen).toBe(local)
  })

  test('forwarded requests carry X-Forwarded-Proto: https', async () => {
    const res = await curl(['--cacert', edge.caPath, https('app.warren.localhost', '/echo')])
    const seen = JSON.parse(res.body)
    expect(seen.headers['x-forwarded-proto']).toBe('https')
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1')
    expect(seen.headers['host']).toBe(`app.warren.localhost:${edge.httpsPort}`)
  })

  test('HTTP/2 is offered by ALPN (curl --http2)', async () => {
    const res = await curl(['--http2', '--cacert', edge.caPath, '-o', '/dev/null', '-w', '%{http_version}', https('secure.warren.localhost')])
    expect(res.body.trim().endsWith('2')).toBe(true)
  })

  test('conn.tls.* and req.version describe the handshake the edge terminated', async () => {
    const ask = async (...flags: string[]) => (await curl(['--cacert', edge.caPath, ...flags, https('conn-tls.warren.localhost')])).body.split('|')
    const [version, cipher, sni, alpn, httpVersion, ja4] = await ask('--http2', '--tlsv1.3')
    expect([version, sni, alpn, httpVersion]).toEqual(['1.3', 'conn-tls.warren.localhost', 'h2', 'HTTP/2.0'])
    expect(cipher).toMatch(/^TLS_(AES_128_GCM_SHA256|AES_256_GCM_SHA384|CHACHA20_POLY1305_SHA256)$/)
    expect(ja4).toMatch(/^t13d\d{4}h2_[0-9a-f]{12}_[0-9a-f]{12}$/)
    const old = await ask('--http1.1', '--tls-max', '1.2', '--ciphers', 'ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384')
    expect(old.slice(0, 5)).toEqual(['1.2', old[1]!, 'conn-tls.warren.localhost', 'http/1.1', 'HTTP/1.1'])
    expect(old[1]).toMatch(/^TLS_ECDHE_(ECDSA|RSA)_WITH_AES_256_GCM_SHA384$/)
    expect(old[5]).toMatch(/^t1[23]d\d{4}h1_[0-9a-f]{12}_[0-9a-f]{12}$/)
  })

  test('websockets work over the terminated port (wss)', async () => {
    const ws = new WebSocket(`wss://app.warren.localhost:${edge.httpsPort}/ws`, { tls: { ca: readFileSync(edge.caPath, 'utf8') } } as unknown as string[])
    await new Promise((resolve, reject) => ((ws.onopen = resolve), (ws.onerror = reject)))
    ws.send('over tls')
    const msg = await new Promise<MessageEvent>((resolve) => (ws.onmessage = resolve))
    expect(msg.data).toBe('over tls')
    ws.close()
  })

  test('a user certificate in certs/ is served for its name and replaced at runtime without dropping connections', async () => {
    const first = selfSigned(['byo.warren.localhost'])
    writeFileSync(join(edge.dir, 'certs', 'byo.pem'), first.cert + first.key)
    const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256
    const served = () =>
      new Promise<{ fp: string; sock: tls.TLSSocket }>((resolve, reject) => {
        const sock = tls.connect({ host: '127.0.0.1', port: edge.httpsPort, servername: 'byo.warren.localhost', rejectUnauthorized: false }, () =>
          resolve({ fp: sock.getPeerX509Certificate()!.fingerprint256, sock }),
        )
        sock.on('error', reject)
      })
    expect(await eventually(async () => (await served().then((s) => (s.sock.destroy(), s.fp))) === fingerprint(first.cert), 3000)).toBe(true)
    // Hold a connection open across the swap.
    const held = await served()
    const request = (sock: tls.TLSSocket) =>
      new Promise<string>((resolve) => {
        sock.once('data', (d) => resolve(d.toString()))
        sock.write('GET / HTTP/1.1\r\nHost: byo.warren.localhost\r\n\r\n')
      })
    expect(await request(held.sock)).toContain('byo')
    const second = selfSigned(['byo.warren.localhost'])
    writeFileSync(join(edge.dir, 'certs', 'byo.pem'), second.cert + second.key)
    expect(await eventually(async () => (await served().then((s) => (s.sock.destroy(), s.fp))) === fingerprint(second.cert), 3000)).toBe(true)
    expect(await request(held.sock)).toContain('byo')
    held.sock.destroy()
  })

  test('no SNI: TLS alert and a logged code', async () => {
    const s = sClient(['-connect', `127.0.0.1:${edge.httpsPort}`, '-noservername'])
    expect(s.out).toMatch(/alert unrecognized name|unrecognized_name|alert number 112/i)
    await edge.waitForLog(/ERR_WARREN_3008/)
  })

  test('an SNI of name:port (as some clients send) is served as name', async () => {
    const request = 'GET /p HTTP/1.1\r\nHost: secure.warren.localhost\r\nConnection: close\r\n\r\n'
    const s = await sClientAsync(['-connect', `127.0.0.1:${edge.httpsPort}`, '-servername', `secure.warren.localhost:${edge.httpsPort}`, '-CAfile', edge.caPath, '-verify_return_error'], request)
    expect(s.out).toMatch(/subject=.*secure\.warren\.localhost/)
    expect(s.out).toMatch(/secure \/p \d+/)
  })

  test('conn.tls.* through the node:tls terminator too (the name:port path)', async () => {
    const request = 'GET / HTTP/1.1\r\nHost: conn-tls.warren.localhost\r\nConnection: close\r\n\r\n'
    const s = await sClientAsync(['-connect', `127.0.0.1:${edge.httpsPort}`, '-servername', `conn-tls.warren.localhost:${edge.httpsPort}`, '-CAfile', edge.caPath, '-tls1_3'], request)
    expect(s.out).toMatch(/\n1\.3\|TLS_[A-Z0-9_]+\|conn-tls\.warren\.localhost\|\|HTTP\/1\.1\|t13d\d{4}00_[0-9a-f]{12}_[0-9a-f]{12}/)
  })

  test('an unknown name: TLS alert', async () => {
    const s = sClient(['-connect', `127.0.0.1:${edge.httpsPort}`, '-servername', 'nobody.warren.localhost'])
    expect(s.out).toMatch(/alert unrecognized name|unrecognized_name|alert number 112/i)
  })

  test('a ClientHello that never comes is cut at 3 s', async () => {
    const started = Date.now()
    await new Promise<void>((resolve) => {
      void Bun.connect({ hostname: '127.0.0.1', port: edge.httpsPort, socket: { data() {}, close: () => resolve(), error: () => resolve() } })
    })
    const elapsed = Date.now() - started
    expect(elapsed).toBeGreaterThanOrEqual(2900)
    expect(elapsed).toBeLessThan(4500)
    await edge.waitForLog(/ERR_WARREN_3009/)
  })

  test('plain HTTP to an https-only endpoint redirects to https', async () => {
    const res = await curl([`http://secure.warren.localhost:${edge.httpPort}/a?b=1`])
    expect(res.status).toBe(308)
    expect(res.headers['location']).toBe(`https://secure.warren.localhost:${edge.httpsPort}/a?b=1`)
  })

  test('tls:// passthrough: the backend terminates; 100 MB both ways byte-exact', async () => {
    const total = 100 * 1024 * 1024
    const result = await new Promise<{ sent: string; got: string; n: number; subject: string }>((resolve, reject) => {
      const sent = createHash('sha256')
      const got = createHash('sha256')
      let n = 0
      const sock = tls.connect({ host: '127.0.0.1', port: edge.httpsPort, servername: 'pt.warren.localhost', ca: backendCert.cert }, () => {
        const block = Buffer.alloc(1024 * 1024)
        for (let i = 0; i < block.length; i++) block[i] = (i * 7 + 3) & 0xff
        let written = 0
        const pump = () => {
          while (written < total) {
            written += block.length
            sent.update(block)
            if (!sock.write(block)) return void sock.once('drain', pump)
          }
        }
        pump()
      })
      sock.on('data', (d: Buffer) => {
        got.update(d)
        n += d.length
        if (n >= total) {
          const subject = sock.getPeerX509Certificate()?.subject ?? ''
          sock.end()
          resolve({ sent: sent.digest('hex'), got: got.digest('hex'), n, subject })
        }
      })
      sock.on('error', reject)
    })
    expect(result.subject).toContain('CN=pt.warren.localhost')
    expect(result.n).toBe(total)
    expect(result.got).toBe(result.sent)
  }, 60_000)
})

describe.skipIf(!hasOpenssl)('terminate-tls on tls:// endpoints', () => {
  const plain = Bun.listen<undefined>({ hostname: '127.0.0.1', port: 0, socket: { data: (s, d) => void s.write(`plain:${d.toString()}`) } })
  let edge2: Edge
  beforeAll(async () => {
    // A client certificate signed by a CA we make here.
    const dir = scratchDir('warren-mtls-')
    const run = (args: string[]) => Bun.spawnSync(['openssl', ...args], { cwd: dir })
    run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=warren test client CA'])
    run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'alice.key', '-out', 'alice.csr', '-subj', '/CN=alice'])
    run(['x509', '-req', '-in', 'alice.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'alice.pem', '-days', '2'])
    mtls.dir = dir
    mtls.ca = readFileSync(`${dir}/ca.pem`, 'utf8')
    const term = (extra: string) =>
      `url: tls://%s.warren.localhost\ntraffic_policy:\n  on_tcp_connect:\n    - actions:\n        - type: terminate-tls\n          config: ${extra}\n        - type: forward-external\n          config: {url: "tcp://127.0.0.1:${plain.port}"}\n`
    edge2 = await startEdge({
      policies: {
        'v13.yml': term('{min_version: "1.3"}').replace('%s', 'v13'),
        'mtls.yml': term(JSON.stringify({ mutual_tls_certificate_authorities: [mtls.ca] })).replace('%s', 'mtls'),
      },
    })
  })
  afterAll(async () => {
    await edge2?.stop()
    plain.stop(true)
  })
  const mtls = { dir: '', ca: '' }

  test('TLS 1.3 only: a 1.3 client gets through to the plaintext upstream, a 1.2-only client is refused', async () => {
    const ok = await sClientAsync(['-connect', `127.0.0.1:${edge2.httpsPort}`, '-servername', 'v13.warren.localhost', '-CAfile', edge2.caPath, '-tls1_3', '-quiet'], 'ping\n')
    expect(ok.out).toContain('plain:ping')
    const old = await sClientAsync(['-connect', `127.0.0.1:${edge2.httpsPort}`, '-servername', 'v13.warren.localhost', '-tls1_2'])
    expect(old.out).toMatch(/alert protocol version|unsupported protocol|wrong version|no protocols available/i)
    expect(old.out).not.toContain('plain:')
  })

  test('mutual TLS: a client certificate from the CA is accepted, none or a foreign one is rejected', async () => {
    const ok = await sClientAsync(['-connect', `127.0.0.1:${edge2.httpsPort}`, '-servername', 'mtls.warren.localhost', '-CAfile', edge2.caPath, '-cert', `${mtls.dir}/alice.pem`, '-key', `${mtls.dir}/alice.key`, '-quiet'], 'hi\n')
    expect(ok.out).toContain('plain:hi')
    const none = await sClientAsync(['-connect', `127.0.0.1:${edge2.httpsPort}`, '-servername', 'mtls.warren.localhost', '-CAfile', edge2.caPath, '-quiet'], 'hi\n')
    expect(none.out).not.toContain('plain:hi')
    expect(none.out).toMatch(/certificate required|alert|handshake failure/i)
    const foreign = selfSigned(['mallory'])
    const bad = await sClientAsync(['-connect', `127.0.0.1:${edge2.httpsPort}`, '-servername', 'mtls.warren.localhost', '-CAfile', edge2.caPath, '-cert', foreign.certPath, '-key', foreign.keyPath, '-quiet'], 'hi\n')
    expect(bad.out).not.toContain('plain:hi')
  })
})
