import { describe, expect, test } from 'bun:test'
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { issueLeaf, loadOrCreateDevCa } from '../certs/dev-ca.ts'
import { tempDir } from '../certs/testing.ts'
import { accountId, AcmeStore, fileId, type CertMeta } from './store.ts'

const mode = (path: string) => statSync(path).mode & 0o777

describe('fileId() and accountId()', () => {
  test.each([
    { name: 'api.example.com', want: 'api.example.com' },
    { name: '*.example.com', want: '%2A.example.com' },
    { name: 'a/../b', want: 'a%2F..%2Fb' },
    { name: '../etc/passwd', want: /^h-[0-9a-f]{32}$/ },
    { name: '.hidden', want: /^h-[0-9a-f]{32}$/ },
    { name: 'a'.repeat(250), want: /^h-[0-9a-f]{32}$/ },
  ])('fileId($name)', ({ name, want }) => {
    if (typeof want === 'string') expect(fileId(name)).toBe(want)
    else expect(fileId(name)).toMatch(want)
  })

  test('accountId() names a directory by host and path', () => {
    expect(accountId('https://acme-v02.api.letsencrypt.org/directory')).toBe('acme-v02.api.letsencrypt.org-directory')
    expect(accountId('https://127.0.0.1:14000/dir')).toBe('127.0.0.1-14000-dir')
    expect(accountId('https://acme-staging-v02.api.letsencrypt.org/directory')).not.toBe(accountId('https://acme-v02.api.letsencrypt.org/directory'))
  })
})

describe('AcmeStore', () => {
  test('saves a certificate as chain, key (0600) and metadata; load() gives them back', async () => {
    using dir = tempDir()
    const { ca } = await loadOrCreateDevCa(dir.path)
    const pair = await issueLeaf(ca, ['*.wild.test'])
    const store = new AcmeStore(dir.path)
    const meta: CertMeta = { name: '*.wild.test', directory: 'https://ca.test/dir', issuer: pair.issuer, notAfter: pair.notAfter.toISOString(), renewAt: '2030-01-01T00:00:00.000Z' }
    await store.saveCertificate({ ...pair, source: 'acme' }, meta)
    const base = join(dir.path, 'acme', 'certificates', '%2A.wild.test')
    expect(mode(`${base}.key`)).toBe(0o600)
    expect(mode(join(dir.path, 'acme'))).toBe(0o700)
    expect(readFileSync(`${base}.crt`, 'utf8')).toBe(pair.cert)
    expect(JSON.parse(readFileSync(`${base}.json`, 'utf8'))).toEqual(meta)
    // No temp files left behind.
    expect(readdirSync(join(dir.path, 'acme', 'certificates')).sort()).toEqual(['%2A.wild.test.crt', '%2A.wild.test.json', '%2A.wild.test.key'])

    const [loaded, ...rest] = await store.load()
    expect(rest).toEqual([])
    expect(loaded!.meta).toEqual(meta)
    expect(loaded!.pair).toMatchObject({ names: ['*.wild.test'], source: 'acme', cert: pair.cert })
  })

  test('metadata alone (a name that never got a certificate) loads without a pair and without a problem', async () => {
    using dir = tempDir()
    const store = new AcmeStore(dir.path)
    await store.saveMeta({ name: 'new.test', directory: 'd', lastError: { at: 'x', message: 'boom', failures: 1, nextAttemptAt: 'y' } })
    expect(await store.load()).toEqual([{ meta: { name: 'new.test', directory: 'd', lastError: { at: 'x', message: 'boom', failures: 1, nextAttemptAt: 'y' } }, pair: undefined }])
  })

  test('a key that does not match its chain is reported, not served', async () => {
    using dir = tempDir()
    const { ca } = await loadOrCreateDevCa(dir.path)
    const store = new AcmeStore(dir.path)
    const a = await issueLeaf(ca, ['a.test'])
    const b = await issueLeaf(ca, ['a.test'])
    await store.saveCertificate(a, { name: 'a.test', directory: 'd', notAfter: a.notAfter.toISOString() })
    writeFileSync(join(dir.path, 'acme', 'certificates', 'a.test.key'), b.key)
    const [loaded] = await store.load()
    expect(loaded!.pair).toBeUndefined()
    expect(loaded!.problem).toBe('the private key does not match the certificate')
  })

  test('garbage metadata files are skipped; a missing directory is empty', async () => {
    using dir = tempDir()
    const store = new AcmeStore(dir.path)
    expect(await store.load()).toEqual([])
    await store.saveMeta({ name: 'ok.test', directory: 'd' })
    writeFileSync(join(dir.path, 'acme', 'certificates', 'bad.json'), '{not json')
    writeFileSync(join(dir.path, 'acme', 'certificates', 'other.json'), '{"x":1}')
    expect((await store.load()).map((s) => s.meta.name)).toEqual(['ok.test'])
  })

  test('account(): the key is created once (0600) and reused; saveAccount() remembers the URL', async () => {
    using dir = tempDir()
    const store = new AcmeStore(dir.path)
    let created = 0
    const make = async () => `KEY-${++created}`
    const first = await store.account('https://ca.test/dir', make)
    expect(first).toEqual({ key: 'KEY-1' })
    expect(mode(join(dir.path, 'acme', 'accounts', 'ca.test-dir.key'))).toBe(0o600)
    await store.saveAccount('https://ca.test/dir', { url: 'https://ca.test/acct/1', email: 'a@b.test' })
    expect(await store.account('https://ca.test/dir', make)).toEqual({ key: 'KEY-1', url: 'https://ca.test/acct/1' })
    expect(created).toBe(1)
    // Another directory, another account.
    expect(await store.account('https://other.test/dir', make)).toEqual({ key: 'KEY-2' })
  })
})
