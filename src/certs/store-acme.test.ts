import { afterEach, describe, expect, test } from 'bun:test'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { issueLeaf, loadOrCreateDevCa } from './dev-ca.ts'
import type { CertPair } from './pair.ts'
import { CertStore } from './store.ts'
import { opensslCert, recordingLogger, tempDir } from './testing.ts'

const controllers: AbortController[] = []
afterEach(() => {
  for (const c of controllers.splice(0)) c.abort()
})

async function acmeStore(dir: string) {
  const controller = new AbortController()
  controllers.push(controller)
  const store = new CertStore(dir, { mode: 'acme', domain: 'example.com', signal: controller.signal, logger: recordingLogger(), debounceMs: 20 })
  await store.init()
  let changes = 0
  store.onChange(() => changes++)
  return { store, changes: () => changes }
}

describe('CertStore in acme mode: add() and the on-demand hook', () => {
  test('add() serves a pair under an id, replaces it on a second add, and tells listeners once each', async () => {
    using dir = tempDir()
    using caDir = tempDir()
    const { ca } = await loadOrCreateDevCa(caDir.path)
    const { store, changes } = await acmeStore(dir.path)
    const first: CertPair = { ...(await issueLeaf(ca, ['api.example.com'])), source: 'acme' }
    store.add('acme:api.example.com', first)
    expect(store.select('api.example.com')).toBe(first)
    expect(store.all()).toEqual([first])
    expect(changes()).toBe(1)
    store.add('acme:api.example.com', first)
    expect(changes()).toBe(1)
    const second: CertPair = { ...(await issueLeaf(ca, ['api.example.com'])), source: 'acme' }
    store.add('acme:api.example.com', second)
    expect(store.select('api.example.com')).toBe(second)
    expect(store.all()).toEqual([second])
    expect(changes()).toBe(2)
  })

  test('a user file still wins over an added ACME certificate', async () => {
    using dir = tempDir()
    using caDir = tempDir()
    const own = opensslCert(['DNS:api.example.com'])
    writeFileSync(join(dir.path, 'api.pem'), own.cert + own.key)
    const { ca } = await loadOrCreateDevCa(caDir.path)
    const { store } = await acmeStore(dir.path)
    store.add('acme:api.example.com', { ...(await issueLeaf(ca, ['api.example.com'])), source: 'acme' })
    expect(store.select('api.example.com')!.source).toBe('file')
  })

  test('ensure() asks the hook only when nothing unexpired covers the name, and serves what it returns', async () => {
    using dir = tempDir()
    using caDir = tempDir()
    const { ca } = await loadOrCreateDevCa(caDir.path)
    const { store } = await acmeStore(dir.path)
    expect(await store.ensure('a.example.com')).toBeUndefined() // no hook: nothing
    const asked: string[] = []
    const made = { ...(await issueLeaf(ca, ['a.example.com'])), source: 'acme' as const }
    store.setOnDemand(async (name) => {
      asked.push(name)
      return name === 'a.example.com' ? made : undefined
    })
    expect(await store.ensure('A.Example.com.')).toBe(made)
    expect(await store.ensure('b.example.com')).toBeUndefined()
    expect(asked).toEqual(['a.example.com', 'b.example.com'])
    store.add('acme:a.example.com', made)
    expect(await store.ensure('a.example.com')).toBe(made)
    expect(asked.length).toBe(2)
    // An expired one is not served without asking; the hook's answer (none) leaves the expired pair as the fallback.
    const expired = { ...(await issueLeaf(ca, ['old.example.com'], { days: -1 })), source: 'acme' as const }
    store.add('acme:old.example.com', expired)
    expect(await store.ensure('old.example.com')).toBe(expired)
    expect(asked).toEqual(['a.example.com', 'b.example.com', 'old.example.com'])
  })
})
