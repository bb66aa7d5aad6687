import { afterAll, describe, expect, test } from 'bun:test'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { WarrenError } from '../../lib/errors.ts'
import { loadSessionKey, SESSION_KEY_FILE } from './session-key.ts'

const dirs: string[] = []
function certsDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'warren-session-key-'))
  dirs.push(dir)
  return dir
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

describe('loadSessionKey()', () => {
  test('creates 32 random bytes (mode 0600) on first start and reads the same key afterwards', async () => {
    const dir = certsDir()
    const first = await loadSessionKey(dir)
    expect(first.length).toBe(32)
    expect(statSync(join(dir, SESSION_KEY_FILE)).mode & 0o777).toBe(0o600)
    expect(await loadSessionKey(dir)).toEqual(first)
    expect(await loadSessionKey(certsDir())).not.toEqual(first)
  })

  test('workers starting at once all end up with one key', async () => {
    const dir = certsDir()
    const keys = await Promise.all(Array.from({ length: 8 }, () => loadSessionKey(dir)))
    for (const k of keys) expect(k).toEqual(keys[0]!)
    expect(Buffer.from(readFileSync(join(dir, SESSION_KEY_FILE), 'utf8').trim(), 'base64url')).toEqual(Buffer.from(keys[0]!))
  })

  test.each([
    { desc: 'a key of the wrong size', setup: (dir: string) => writeFileSync(join(dir, SESSION_KEY_FILE), 'c2hvcnQ\n'), want: /not 32 bytes/ },
    { desc: 'a directory where the key should be', setup: (dir: string) => mkdirSync(join(dir, SESSION_KEY_FILE)), want: /Cannot read the session key/ },
  ])('refuses $desc with ERR_WARREN_2164', async ({ setup, want }) => {
    const dir = certsDir()
    mkdirSync(join(dir, 'identity'))
    setup(dir)
    const error = await loadSessionKey(dir).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(WarrenError)
    expect((error as WarrenError).code).toBe('ERR_WARREN_2164')
    expect((error as Error).message).toMatch(want)
  })
})
