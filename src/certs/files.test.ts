import { describe, expect, test } from 'bun:test'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadCertFiles } from './files.ts'
import { parseCertPair } from './pair.ts'
import { opensslCert, tempDir } from './testing.ts'

const a = opensslCert(['DNS:a.example.com', 'DNS:*.A.example.com', 'IP:127.0.0.1', 'IP:::1'])
const b = opensslCert(['DNS:b.example.com'])
const noSan = opensslCert([])

describe('parseCertPair()', () => {
  test('reads SANs (canonical), notAfter and issuer with node:crypto', () => {
    const pair = parseCertPair(a.cert, a.key, 'file')
    expect(pair.names).toEqual(['a.example.com', '*.a.example.com', '127.0.0.1', '::1'])
    expect(pair.notAfter.getTime()).toBeGreaterThan(Date.now() + 29 * 86400_000)
    expect(pair.issuer).toBe('CN=test')
    expect(pair.source).toBe('file')
  })

  test.each([
    { desc: 'mismatched key', cert: a.cert, key: b.key, error: 'the private key does not match the certificate' },
    { desc: 'no certificate', cert: 'hello', key: a.key, error: 'no PEM certificate found' },
    { desc: 'no key', cert: a.cert, key: a.cert, error: 'no PEM private key found' },
    { desc: 'no SAN', cert: noSan.cert, key: noSan.key, error: 'the certificate has no DNS or IP subjectAltName' },
    {
      desc: 'corrupt certificate',
      cert: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',
      key: a.key,
      error: 'the certificate cannot be parsed',
    },
    {
      desc: 'encrypted key',
      cert: a.cert,
      key: '-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n',
      error: 'the private key is encrypted',
    },
  ])('rejects: $desc', ({ cert, key, error }) => {
    expect(() => parseCertPair(cert, key, 'file')).toThrow(error)
  })

  test('keeps the whole chain, leaf first, and drops the key from a combined file', () => {
    const pair = parseCertPair(a.cert + b.cert + a.key, a.cert + a.key, 'file')
    expect(pair.cert).toBe(a.cert + b.cert)
    expect(pair.cert).not.toContain('PRIVATE KEY')
    expect(pair.key.trim()).toBe(a.key.trim())
  })
})

describe('loadCertFiles()', () => {
  test('pairs NAME.pem/.crt with NAME.key or NAME-key.pem, reads combined PEMs, skips bad files', async () => {
    using dir = tempDir()
    const write = (name: string, text: string) => writeFileSync(join(dir.path, name), text)
    write('combined.pem', a.cert + a.key)
    write('split.crt', b.cert)
    write('split.key', b.key)
    const c = opensslCert(['DNS:c.example.com'])
    write('mkcert.pem', c.cert)
    write('mkcert-key.pem', c.key)
    write('mismatch.pem', a.cert)
    write('mismatch.key', b.key)
    write('lonely.crt', b.cert)
    write('orphan.key', a.key)
    write('garbage.pem', 'not a pem at all')
    write('nosan.pem', noSan.cert + noSan.key)
    write('notes.txt', 'ignored: not a certificate extension')
    write('.hidden.pem', 'ignored: hidden')
    write('dev-ca.pem', a.cert) // the dev CA's files are not served
    write('dev-ca.key', a.key)
    mkdirSync(join(dir.path, 'dev'))
    write('dev/x.pem', b.cert + b.key) // subdirectories belong to the dev CA and ACME

    const { loaded, problems } = await loadCertFiles(dir.path)
    expect(loaded.map((l) => [l.file, l.keyFile, l.pair.names[0]])).toEqual([
      ['combined.pem', 'combined.pem', 'a.example.com'],
      ['mkcert.pem', 'mkcert-key.pem', 'c.example.com'],
      ['split.crt', 'split.key', 'b.example.com'],
    ])
    expect(Object.fromEntries(problems.map((p) => [p.file, p.message]))).toEqual({
      'garbage.pem': 'Cannot load "garbage.pem": no PEM certificate or private key in it',
      'lonely.crt': 'Cannot load certificate "lonely.crt": no private key in it and no "lonely.key" or "lonely-key.pem" beside it',
      'mismatch.pem': 'Cannot load certificate "mismatch.pem" with key "mismatch.key": the private key does not match the certificate',
      'nosan.pem': 'Cannot load certificate "nosan.pem": the certificate has no DNS or IP subjectAltName',
      'orphan.key': 'Cannot load "orphan.key": a private key without a certificate of the same name',
    })
  })

  test('a missing directory has no certificates', async () => {
    expect(await loadCertFiles('/nonexistent/warren/certs')).toEqual({ loaded: [], problems: [] })
  })
})
