import { expect, test } from 'bun:test'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { AcmeStore } from '../acme/store.ts'
import { tempDir } from '../certs/testing.ts'
import { certsCommand, formatCertTable } from './certs.ts'

test('formatCertTable() aligns columns, shortens issuers to their CN and lists last errors below', () => {
  const text = formatCertTable([
    { name: 'api.example.com', source: 'acme', issuer: 'CN=R11, O=Let\'s Encrypt, C=US', notAfter: '2030-03-01T00:00:00.000Z', status: 'valid' },
    { name: '*.apps.example.com', source: 'acme', issuer: '', notAfter: '', status: 'pending', lastError: 'create the order: boom', nextAttemptAt: '2030-01-01T00:01:00Z' },
  ])
  expect(text).toBe(
    [
      'NAME                SOURCE  ISSUER  NOT AFTER                 STATUS',
      'api.example.com     acme    R11     2030-03-01T00:00:00.000Z  valid',
      '*.apps.example.com  acme    -       -                         pending',
      '*.apps.example.com: last error: create the order: boom (next attempt 2030-01-01T00:01:00Z)',
      '',
    ].join('\n'),
  )
})

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = ''
  let err = ''
  const write = { out: process.stdout.write, err: process.stderr.write }
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write
  try {
    return { code: await certsCommand(args), out, err }
  } finally {
    process.stdout.write = write.out
    process.stderr.write = write.err
  }
}

test('warren certs list [--json] reads the certs directory', async () => {
  using dir = tempDir()
  mkdirSync(join(dir.path, 'certs'))
  expect(await run(['list', '--certs', join(dir.path, 'certs')])).toEqual({ code: 0, out: '', err: `no certificates in ${join(dir.path, 'certs')}\n` })
  await new AcmeStore(join(dir.path, 'certs')).saveMeta({ name: 'new.example.com', directory: 'd', lastError: { at: 'x', message: 'boom', failures: 1, nextAttemptAt: 'y' } })
  const json = await run(['list', '--certs', join(dir.path, 'certs'), '--json'])
  expect(json.code).toBe(0)
  expect(JSON.parse(json.out)).toEqual([{ name: 'new.example.com', source: 'acme', issuer: '', notAfter: '', status: 'pending', lastError: 'boom', nextAttemptAt: 'y' }])
  expect((await run(['list', '--certs', join(dir.path, 'certs')])).out).toContain('new.example.com  acme    -       -          pending')
  expect((await run(['show'])).code).toBe(2)
})
