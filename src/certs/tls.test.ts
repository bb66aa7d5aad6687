/**
 * The store's certificates in real handshakes: a node:tls server choosing by SNI the way the TLS
 * listener does, a Bun.serve HTTPS server, and openssl / curl as clients that trust only the
 * certificates' issuers.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { writeFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import tls from 'node:tls'
import { CertStore } from './store.ts'
import { opensslCert, recordingLogger, tempDir } from './testing.ts'

const haveTools = Bun.which('openssl') !== null && Bun.which('curl') !== null
if (!haveTools) console.warn('tls.test.ts: skipped, openssl or curl is missing (apt-get install openssl curl)')

async function run(cmd: string[]): Promise<{ code: number; out: string }> {
  const p = Bun.spawn(cmd, { stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' })
  const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()])
  return { code: await p.exited, out: out + err }
}

/** `openssl s_client` that fails unless the chain verifies against `caFile` and `name` is in the SANs. */
function sClient(port: number, name: string, caFile: string): Promise<{ code: number; out: string }> {
  return run([
    'openssl', 's_client', '-connect', `127.0.0.1:${port}`, '-servername', name,
    '-verify_return_error', '-verify_hostname', name, '-CAfile', caFile, '-brief',
  ])
}

describe.skipIf(!haveTools)('certificates in real TLS handshakes', () => {
  const dir = tempDir()
  const controller = new AbortController()
  const store = new CertStore(dir.path, { mode: 'dev', domain: 'warren.localhost', signal: controller.signal, logger: recordingLogger() })
  const fileCert = opensslCert(['DNS:*.files.test'])
  const fileCa = join(dir.path, 'files-root.txt') // not a cert extension: the trust anchor for the self-signed file cert
  let tlsServer: tls.Server
  let tlsPort = 0

  beforeAll(async () => {
    writeFileSync(join(dir.path, 'files.pem'), fileCert.cert + fileCert.key)
    writeFileSync(fileCa, fileCert.cert)
    await store.init()
    const agent = await store.agentCert(['agent.warren.localhost'])
    // What the TLS listener does: the sync select(), else the async ensure() for dev names.
    tlsServer = tls.createServer({
      cert: agent.cert,
      key: agent.key,
      SNICallback(name, cb) {
        const hit = store.select(name)
        if (hit) return cb(null, tls.createSecureContext({ cert: hit.cert, key: hit.key }))
        store.ensure(name).then(
          (pair) => cb(null, pair ? tls.createSecureContext({ cert: pair.cert, key: pair.key }) : undefined),
          (err: Error) => cb(err, undefined),
        )
      },
    })
    tlsServer.on('secureConnection', (s) => s.end('hello\n'))
    tlsServer.on('tlsClientError', () => {})
    await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve))
    tlsPort = (tlsServer.address() as AddressInfo).port
  })

  afterAll(() => {
    tlsServer?.close()
    controller.abort()
    dir[Symbol.dispose]()
  })

  test.each([
    { desc: 'a dev leaf issued during the handshake', name: 'app.warren.localhost', ca: 'dev' },
    { desc: 'a deeper dev name', name: 'a.b.warren.localhost', ca: 'dev' },
    { desc: 'a file certificate by wildcard', name: 'x.files.test', ca: 'file' },
  ])('openssl s_client verifies $desc ($name)', async ({ name, ca }) => {
    const r = await sClient(tlsPort, name, ca === 'dev' ? store.caPath() : fileCa)
    expect(r.out).toContain('Verification: OK')
    expect(r.code).toBe(0)
  })

  test('openssl rejects a name the wildcard does not cover (a.b.files.test gets a dev leaf, not the file cert)', async () => {
    const r = await sClient(tlsPort, 'a.b.files.test', fileCa)
    expect(r.code).not.toBe(0)
    const dev = await sClient(tlsPort, 'a.b.files.test', store.caPath())
    expect(dev.code).toBe(0)
  })

  test('openssl rejects the dev leaf against another CA', async () => {
    const r = await sClient(tlsPort, 'app.warren.localhost', fileCa)
    expect(r.code).not.toBe(0)
    expect(r.out).toMatch(/verify error|unable to get local issuer certificate/)
  })

  test('curl --cacert over HTTPS (Bun.serve) by name, and to 127.0.0.1 / [::1] with the agent certificate', async () => {
    const app = (await store.ensure('curl.warren.localhost'))!
    const agent = await store.agentCert(['agent.warren.localhost'])
    using server = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      tls: [
        { cert: agent.cert, key: agent.key },
        { serverName: 'curl.warren.localhost', cert: app.cert, key: app.key },
      ],
      fetch: (req) => new Response(`ok ${new URL(req.url).hostname}\n`),
    })
    const port = server.port!
    const byName = await run([
      'curl', '-sS', '--cacert', store.caPath(), '--resolve', `curl.warren.localhost:${port}:127.0.0.1`,
      `https://curl.warren.localhost:${port}/`,
    ])
    expect(byName.out).toBe('ok curl.warren.localhost\n')
    expect(byName.code).toBe(0)
    const byIp = await run(['curl', '-sS', '--cacert', store.caPath(), `https://127.0.0.1:${port}/`])
    expect(byIp.out).toBe('ok 127.0.0.1\n')
    const untrusted = await run(['curl', '-sS', `https://127.0.0.1:${port}/`])
    expect(untrusted.code).toBe(60) // CURLE_PEER_FAILED_VERIFICATION: it is the CA that makes it work

    // IPv6 loopback: the agent certificate's ::1 SAN is an IP entry.
    let v6: ReturnType<typeof Bun.serve> | undefined
    try {
      v6 = Bun.serve({ hostname: '::1', port: 0, tls: { cert: agent.cert, key: agent.key }, fetch: () => new Response('v6\n') })
    } catch {
      console.warn('tls.test.ts: no IPv6 loopback, [::1] check skipped')
    }
    if (v6) {
      const r = await run(['curl', '-sS', '--cacert', store.caPath(), `https://[::1]:${v6.port}/`])
      v6.stop(true)
      expect(r.out).toBe('v6\n')
    }
  })
})
