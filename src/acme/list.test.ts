import { describe, expect, test } from 'bun:test'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { issueLeaf, loadOrCreateDevCa } from '../certs/dev-ca.ts'
import type { CertPair } from '../certs/pair.ts'
import { opensslCert, tempDir } from '../certs/testing.ts'
import { acmeRow, listCertificates } from './list.ts'
import { AcmeStore, type CertMeta } from './store.ts'

const NOW = Date.parse('2030-01-10T00:00:00Z')
const pair = (notAfter: string): CertPair => ({ cert: '', key: '', names: ['a.test'], notAfter: new Date(notAfter), issuer: 'CN=Test CA', source: 'acme' })
const meta = (extra: Partial<CertMeta> = {}): CertMeta => ({ name: 'a.test', directory: 'd', renewAt: '2030-02-01T00:00:00Z', ...extra })
const failed = { lastError: { at: '2030-01-09T00:00:00Z', message: 'create the order: boom', problem: { type: 'urn:ietf:params:acme:error:serverInternal', detail: 'oops' }, failures: 3, nextAttemptAt: '2030-01-10T01:00:00Z' } }

describe('acmeRow()', () => {
  test.each([
    { desc: 'valid', stored: { meta: meta(), pair: pair('2030-03-01T00:00:00Z') }, status: 'valid' },
    { desc: 'past renewAt', stored: { meta: meta({ renewAt: '2030-01-01T00:00:00Z' }), pair: pair('2030-03-01T00:00:00Z') }, status: 'renewal-due' },
    { desc: 'last attempt failed, still serving', stored: { meta: meta(failed), pair: pair('2030-03-01T00:00:00Z') }, status: 'failing' },
    { desc: 'expired', stored: { meta: meta(failed), pair: pair('2030-01-01T00:00:00Z') }, status: 'expired' },
    { desc: 'never issued', stored: { meta: meta(failed), pair: undefined }, status: 'pending' },
  ])('$desc → $status', ({ stored, status }) => {
    expect(acmeRow(stored, NOW).status).toBe(status as never)
  })

  test('the last error carries the problem document; issuer and notAfter from the certificate', () => {
    expect(acmeRow({ meta: meta(failed), pair: pair('2030-03-01T00:00:00Z') }, NOW)).toEqual({
      name: 'a.test',
      source: 'acme',
      issuer: 'CN=Test CA',
      notAfter: '2030-03-01T00:00:00.000Z',
      status: 'failing',
      renewAt: '2030-02-01T00:00:00Z',
      lastError: 'create the order: boom [urn:ietf:params:acme:error:serverInternal: oops]',
      nextAttemptAt: '2030-01-10T01:00:00Z',
    })
  })
})

test('listCertificates() reads user files, ACME certificates and dev leaves', async () => {
  using dir = tempDir()
  const own = opensslCert(['DNS:own.test'], { days: 5 })
  writeFileSync(join(dir.path, 'own.pem'), own.cert + own.key)
  const { ca } = await loadOrCreateDevCa(dir.path)
  const issued = await issueLeaf(ca, ['acme.test'])
  await new AcmeStore(dir.path).saveCertificate({ ...issued, source: 'acme' }, { name: 'acme.test', directory: 'd', renewAt: new Date(Date.now() + 1e9).toISOString() })
  const dev = await issueLeaf(ca, ['dev.warren.localhost'])
  mkdirSync(join(dir.path, 'dev'))
  writeFileSync(join(dir.path, 'dev', 'dev.warren.localhost.pem'), dev.cert + dev.key)
  const rows = await listCertificates(dir.path)
  expect(rows.map((r) => [r.name, r.source, r.status])).toEqual([
    ['own.test', 'file', 'expiring'],
    ['acme.test', 'acme', 'valid'],
    ['dev.warren.localhost', 'dev', 'valid'],
  ])
  expect(rows[0]!.file).toBe('own.pem')
  expect(rows[1]!.issuer).toContain('warren development CA')
})
