import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { X509Certificate } from 'node:crypto'
import * as tls from 'node:tls'
import type * as acme from 'acme-client'
import { TlsAlpn01Responder } from '../acme/challenges/tls-alpn-01.ts'
import { log } from '../lib/log.ts'
import { startFront } from './testing.ts'
import type { TlsFront } from './tls.ts'

// The TLS front terminating connections on the accepted socket (upgradeTLS in open()), in process with
// real sockets: the port goes inline once every name it serves has its certificate, and answers ACME
// TLS-ALPN-01 validators there with the challenge certificate.

const responder = new TlsAlpn01Responder(log.child({ component: 'acme' }))
let front: TlsFront
let ca = ''
let stop = () => {}

beforeAll(async () => {
  ;({ front, ca, stop } = await startFront(
    { 'x.yml': 'url: https://x.warren.localhost\ntraffic_policy:\n  on_http_request:\n    - actions: [{type: custom-response, config: {body: "x ${conn.tls.negotiated_alpn}"}}]\n' },
    { acmeTlsAlpn: (socket) => void socket.end(), acmeTlsAlpnContext: (name) => responder.context(name)?.context },
  ))
})
afterAll(() => {
  stop()
  responder.stop()
})

function ask(name: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host: '127.0.0.1', port: front.port, servername: name, ca, ALPNProtocols: ['http/1.1'] }, () =>
      sock.write(`GET / HTTP/1.1\r\nHost: ${name}:8443\r\nConnection: close\r\n\r\n`),
    )
    let out = ''
    sock.on('data', (d: Buffer) => (out += d.toString()))
    sock.on('close', () => resolve(out.slice(out.indexOf('\r\n\r\n') + 4)))
    sock.on('error', reject)
  })
}

/** `openssl s_client` offering only acme-tls/1, as a validator does; its whole output. */
async function sClient(name: string): Promise<string> {
  const proc = Bun.spawn(['openssl', 's_client', '-connect', `127.0.0.1:${front.port}`, '-servername', name, '-alpn', 'acme-tls/1'], { stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' })
  const timer = setTimeout(() => proc.kill(), 5000)
  const out = await new Response(proc.stdout).text()
  await proc.exited
  clearTimeout(timer)
  return out
}

describe.skipIf(Bun.which('openssl') === null)('TlsFront inline', () => {
  test('the first connection for a name without a certificate is relayed; once issued, connections are terminated inline', async () => {
    // Dev mode issues x's leaf when the port first looks at the table (the first connection's open()).
    expect(await ask('x.warren.localhost')).toBe('x http/1.1')
    expect(front.accepted).toEqual({ inline: 0, relay: 1 })
    const deadline = Date.now() + 5000
    while (front.accepted.inline === 0 && Date.now() < deadline) expect(await ask('x.warren.localhost')).toBe('x http/1.1')
    expect(front.accepted.inline).toBeGreaterThan(0)
    expect(front.engineListeners).toBeLessThanOrEqual(1)
  })

  test('an acme-tls/1 hello for a name being validated gets the challenge certificate; other acme-tls/1 hellos are closed', async () => {
    const authz = { identifier: { type: 'dns', value: 'v.warren.localhost' } } as acme.Authorization
    await responder.present(authz, {}, 'token.key-authorization')
    const before = front.accepted.inline
    // openssl as the validator: BoringSSL clients refuse the challenge certificate's key usage.
    const validated = await sClient('v.warren.localhost')
    expect(front.accepted.inline).toBe(before + 1)
    expect(validated).toContain('ALPN protocol: acme-tls/1')
    const cert = new X509Certificate(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(validated)![0])
    expect(cert.subjectAltName).toBe('DNS:v.warren.localhost')
    // RFC 8737 §3: the acmeIdentifier extension (OID 1.3.6.1.5.5.7.1.31) carries the key authorization's digest.
    expect(cert.raw.includes(Buffer.from([0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x1f]))).toBe(true)
    await responder.cleanup(authz)
    const refused = await sClient('v.warren.localhost')
    expect(refused).not.toContain('BEGIN CERTIFICATE')
  })

  test('stop() closes connections terminated inline, idle or not', async () => {
    const sock = tls.connect({ host: '127.0.0.1', port: front.port, servername: 'x.warren.localhost', ca, ALPNProtocols: ['http/1.1'] })
    await new Promise<void>((resolve, reject) => (sock.once('secureConnect', resolve), sock.once('error', reject)))
    const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()))
    sock.on('error', () => {})
    let out = ''
    sock.on('data', (d: Buffer) => (out += d.toString()))
    sock.write('GET / HTTP/1.1\r\nHost: x.warren.localhost:8443\r\n\r\n')
    const deadline = Date.now() + 3000
    while (!out.endsWith('x http/1.1') && Date.now() < deadline) await Bun.sleep(10)
    expect(out).toEndWith('x http/1.1')
    front.stop()
    expect(await Promise.race([closed.then(() => 'closed'), Bun.sleep(3000).then(() => 'still open')])).toBe('closed')
  })
})
