import { afterAll, expect, test } from 'bun:test'
import { mkdtempSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { HOST_KEY_FILE, loadHostKey } from './host-key.ts'

const dir = mkdtempSync(join(tmpdir(), 'warren-hostkey-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

test('loadHostKey() creates an ed25519 key (0600) on first start and keeps it across restarts', async () => {
  const first = await loadHostKey(join(dir, 'certs'))
  expect(first.created).toBe(true)
  expect(first.fingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/)
  expect(first.privateKey).toContain('BEGIN OPENSSH PRIVATE KEY')
  expect(statSync(join(dir, 'certs', HOST_KEY_FILE)).mode & 0o777).toBe(0o600)
  const again = await loadHostKey(join(dir, 'certs'))
  expect(again).toEqual({ ...first, created: false })
})

test('loadHostKey() refuses a file that holds no key (ERR_WARREN_4030)', async () => {
  mkdirSync(join(dir, 'bad', 'ssh'), { recursive: true })
  writeFileSync(join(dir, 'bad', HOST_KEY_FILE), 'not a key')
  await expect(loadHostKey(join(dir, 'bad'))).rejects.toMatchObject({ code: 'ERR_WARREN_4030' })
})
