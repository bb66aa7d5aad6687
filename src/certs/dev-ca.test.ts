import { describe, expect, test } from 'bun:test'
import { X509Certificate, createPrivateKey } from 'node:crypto'
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { DEV_CA_NAME, devCaPaths, issueLeaf, issuedBy, loadOrCreateDevCa } from './dev-ca.ts'
import { opensslCert, tempDir } from './testing.ts'

const DAY = 86400_000

function openssl(args: string[]): { code: number; out: string } {
  const r = Bun.spawnSync(['openssl', ...args], { stdout: 'pipe', stderr: 'pipe' })
  return { code: r.exitCode, out: r.stdout.toString() + r.stderr.toString() }
}

describe('loadOrCreateDevCa()', () => {
  test('creates an ECDSA P-256 CA valid 10 years, key 0600, written atomically', async () => {
    using dir = tempDir()
    const certs = join(dir.path, 'nested', 'certs')
    const { ca, created } = await loadOrCreateDevCa(certs)
    expect(created).toBe(true)
    expect(ca.certPath).toBe(devCaPaths(certs).certPath)
    expect(statSync(ca.keyPath).mode & 0o777).toBe(0o600)
    expect(readdirSync(certs).sort()).toEqual(['dev-ca.key', 'dev-ca.pem']) // no temp files left behind
    const cert = new X509Certificate(readFileSync(ca.certPath))
    expect(cert.subject).toContain(`CN=${DEV_CA_NAME}`)
    expect(cert.ca).toBe(true)
    const years = (cert.validToDate.getTime() - Date.now()) / (365.25 * DAY)
    expect(years).toBeGreaterThan(9.9)
    expect(years).toBeLessThan(10.1)
    const key = createPrivateKey(readFileSync(ca.keyPath))
    expect(key.asymmetricKeyDetails?.namedCurve).toBe('prime256v1')
    const text = openssl(['x509', '-in', ca.certPath, '-noout', '-text']).out
    expect(text).toContain('CA:TRUE')
    expect(text).toContain('Certificate Sign')
  })

  test('reuses the files on the next load, and concurrent loads create one CA', async () => {
    using dir = tempDir()
    const [first, second] = await Promise.all([loadOrCreateDevCa(dir.path), loadOrCreateDevCa(dir.path)])
    expect(first.ca.certPem).toBe(second.ca.certPem)
    const again = await loadOrCreateDevCa(dir.path)
    expect(again.created).toBe(false)
    expect(again.ca.certPem).toBe(first.ca.certPem)
    const leaf = await issueLeaf(again.ca, ['x.test'])
    expect(issuedBy(first.ca, new X509Certificate(leaf.cert))).toBe(true)
  })

  test.each([
    { desc: 'the key is missing', change: (d: string) => rmSync(join(d, 'dev-ca.key')), error: 'dev-ca.key" is missing' },
    { desc: 'the certificate is missing', change: (d: string) => rmSync(join(d, 'dev-ca.pem')), error: 'the file is missing' },
    {
      desc: 'the key is not the CA key',
      change: (d: string) => writeFileSync(join(d, 'dev-ca.key'), opensslCert(['DNS:x.test']).key),
      error: 'is not the key of this certificate',
    },
    { desc: 'the certificate is garbage', change: (d: string) => writeFileSync(join(d, 'dev-ca.pem'), 'junk'), error: 'cannot be parsed' },
  ])('refuses to replace a CA users may trust when $desc', async ({ change, error }) => {
    using dir = tempDir()
    await loadOrCreateDevCa(dir.path)
    change(dir.path)
    await expect(loadOrCreateDevCa(dir.path)).rejects.toThrow(error)
  })
})

describe('issueLeaf()', () => {
  test('P-256 leaf, 90 days, serverAuth, DNS and IP SANs, verified by openssl against the CA', async () => {
    using dir = tempDir()
    const { ca } = await loadOrCreateDevCa(dir.path)
    const leaf = await issueLeaf(ca, ['API.warren.localhost', '127.0.0.1', '::1', '*.w.test'])
    expect(leaf.names).toEqual(['api.warren.localhost', '127.0.0.1', '::1', '*.w.test'])
    expect(leaf.source).toBe('dev')
    expect(leaf.issuer).toStartWith(`CN=${DEV_CA_NAME}, O=warren`)
    const days = (leaf.notAfter.getTime() - Date.now()) / DAY
    expect(days).toBeGreaterThan(89.9)
    expect(days).toBeLessThanOrEqual(90)
    expect(createPrivateKey(leaf.key).asymmetricKeyDetails?.namedCurve).toBe('prime256v1')

    const leafPath = join(dir.path, 'leaf.pem')
    writeFileSync(leafPath, leaf.cert)
    const text = openssl(['x509', '-in', leafPath, '-noout', '-text']).out
    expect(text).toContain('TLS Web Server Authentication')
    expect(text).toContain('CA:FALSE')
    expect(text).toContain('DNS:api.warren.localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, DNS:*.w.test')
    const verify = openssl(['verify', '-CAfile', ca.certPath, '-purpose', 'sslserver', leafPath])
    expect(verify.out).toContain(': OK')
    expect(verify.code).toBe(0)
  })

  test('leaves of another CA are not "issued by" this one', async () => {
    using one = tempDir()
    using two = tempDir()
    const a = await loadOrCreateDevCa(one.path)
    const b = await loadOrCreateDevCa(two.path)
    const leaf = await issueLeaf(b.ca, ['x.test'])
    expect(issuedBy(a.ca, new X509Certificate(leaf.cert))).toBe(false)
    expect(issuedBy(b.ca, new X509Certificate(leaf.cert))).toBe(true)
  })
})
