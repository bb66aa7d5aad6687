import { afterEach, describe, expect, test } from 'bun:test'
import { X509Certificate } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { issueLeaf, loadOrCreateDevCa } from './dev-ca.ts'
import { CertStore, devFileName, type CertStoreOptions } from './store.ts'
import { opensslCert, recordingLogger, tempDir, waitFor } from './testing.ts'

const controllers: AbortController[] = []
afterEach(() => {
  for (const c of controllers.splice(0)) c.abort()
})

function makeStore(dir: string, options: Partial<CertStoreOptions> = {}) {
  const controller = new AbortController()
  controllers.push(controller)
  const logger = recordingLogger()
  const store = new CertStore(dir, { mode: 'dev', domain: 'warren.localhost', signal: controller.signal, logger, debounceMs: 30, ...options })
  let changes = 0
  store.onChange(() => changes++)
  return { store, logger, controller, changes: () => changes }
}

describe('CertStore in dev mode', () => {
  test('init() creates the CA; ensure() issues a leaf, caches it in certs/dev/ and fires onChange once', async () => {
    using dir = tempDir()
    const { store, changes } = makeStore(dir.path)
    await store.init()
    expect(store.caPath()).toBe(join(dir.path, 'dev-ca.pem'))
    expect(existsSync(store.caPath())).toBe(true)
    expect(store.select('app.warren.localhost')).toBeUndefined()

    const [first, second] = await Promise.all([store.ensure('App.Warren.Localhost'), store.ensure('app.warren.localhost')])
    expect(first).toBeDefined()
    expect(second).toBe(first!)
    expect(first!.names).toEqual(['app.warren.localhost'])
    expect(first!.source).toBe('dev')
    expect(changes()).toBe(1)
    expect(store.select('APP.warren.localhost.')).toBe(first!)
    expect(await store.ensure('app.warren.localhost')).toBe(first!)
    expect(store.all()).toEqual([first!])

    const cached = join(dir.path, 'dev', 'app.warren.localhost.pem')
    expect(readFileSync(cached, 'utf8')).toBe(first!.cert + first!.key)
    expect(statSync(cached).mode & 0o777).toBe(0o600)
    expect(changes()).toBe(1)
  })

  test('the CA and issued leaves are reused by a second store on the same directory', async () => {
    using dir = tempDir()
    const one = makeStore(dir.path)
    await one.store.init()
    const leaf = await one.store.ensure('a.warren.localhost')
    const ip = await one.store.ensure('127.0.0.1')
    const caPem = readFileSync(one.store.caPath(), 'utf8')
    one.controller.abort()

    const two = makeStore(dir.path)
    await two.store.init()
    expect(readFileSync(two.store.caPath(), 'utf8')).toBe(caPem)
    expect(two.store.select('a.warren.localhost')?.cert).toBe(leaf!.cert)
    expect(two.store.select('127.0.0.1')?.cert).toBe(ip!.cert)
    expect((await two.store.ensure('a.warren.localhost'))?.cert).toBe(leaf!.cert)
    expect(two.changes()).toBe(0)
    expect(two.logger.lines.filter((l) => l.msg.startsWith('created the development CA'))).toEqual([])
  })

  test('a cached leaf close to expiry is replaced; one from another CA is ignored', async () => {
    using dir = tempDir()
    const { ca } = await loadOrCreateDevCa(dir.path)
    using other = tempDir()
    const foreign = await issueLeaf((await loadOrCreateDevCa(other.path)).ca, ['foreign.test'])
    const soon = await issueLeaf(ca, ['soon.test'], { days: 10 })
    mkdirSync(join(dir.path, 'dev'))
    writeFileSync(join(dir.path, 'dev', devFileName('soon.test')), soon.cert + soon.key)
    writeFileSync(join(dir.path, 'dev', devFileName('foreign.test')), foreign.cert + foreign.key)

    const { store } = makeStore(dir.path)
    await store.init()
    expect(store.select('soon.test')?.cert).toBe(soon.cert)
    expect(store.select('foreign.test')).toBeUndefined()
    const renewed = await store.ensure('soon.test')
    expect(renewed?.cert).not.toBe(soon.cert)
    expect(renewed!.notAfter.getTime()).toBeGreaterThan(Date.now() + 89 * 86400_000)
    expect(store.select('soon.test')).toBe(renewed!)
  })

  test('ensure() does not issue for invalid names', async () => {
    using dir = tempDir()
    const { store } = makeStore(dir.path)
    await store.init()
    for (const name of ['', 'a b', 'x.*.test', '-bad.test', 'a..b']) expect(await store.ensure(name)).toBeUndefined()
    expect(existsSync(join(dir.path, 'dev'))).toBe(false)
  })

  test('ensure() does not issue when a file certificate covers the name, even by wildcard', async () => {
    using dir = tempDir()
    const wild = opensslCert(['DNS:*.warren.localhost'])
    writeFileSync(join(dir.path, 'wild.pem'), wild.cert + wild.key)
    const { store, changes } = makeStore(dir.path)
    await store.init()
    const got = await store.ensure('a.warren.localhost')
    expect(got?.source).toBe('file')
    expect(got?.cert).toBe(wild.cert)
    expect(changes()).toBe(0)
    // Two labels are not covered by the wildcard: the dev CA issues.
    expect((await store.ensure('a.b.warren.localhost'))?.source).toBe('dev')
  })

  test('a file certificate dropped in later takes over from an issued dev leaf', async () => {
    using dir = tempDir()
    const { store, changes } = makeStore(dir.path)
    await store.init()
    expect((await store.ensure('a.warren.localhost'))?.source).toBe('dev')
    const wild = opensslCert(['DNS:*.warren.localhost'])
    writeFileSync(join(dir.path, 'wild.pem'), wild.cert + wild.key)
    await waitFor(() => changes() === 2)
    expect(store.select('a.warren.localhost')?.source).toBe('file')
  })

  test('agentCert() covers localhost, 127.0.0.1, ::1 and the given names; reused while they stay the same', async () => {
    using dir = tempDir()
    const one = makeStore(dir.path)
    await one.store.init()
    const agent = await one.store.agentCert(['agent.warren.localhost', 'Tunnel.Example.com'])
    expect(agent.names).toEqual(['localhost', '127.0.0.1', '::1', 'agent.warren.localhost', 'tunnel.example.com'])
    const text = new X509Certificate(agent.cert).subjectAltName
    expect(text).toContain('IP Address:127.0.0.1')
    expect(text).toContain('IP Address:0:0:0:0:0:0:0:1')
    expect(await one.store.agentCert(['agent.warren.localhost', 'tunnel.example.com'])).toBe(agent)
    // Not served on the https port, and not a change.
    expect(one.store.all()).toEqual([])
    expect(one.changes()).toBe(0)

    const two = makeStore(dir.path)
    await two.store.init()
    expect((await two.store.agentCert(['tunnel.example.com', 'agent.warren.localhost'])).cert).toBe(agent.cert)
    const wider = await two.store.agentCert(['agent.warren.localhost', 'other.example.com'])
    expect(wider.cert).not.toBe(agent.cert)
    expect(wider.names).toContain('other.example.com')
    await expect(two.store.agentCert(['not a name'])).rejects.toThrow('"not a name" is not a valid DNS name or IP address')
  })
})

describe('CertStore in files mode', () => {
  test('loads, reloads on change and on delete, without a restart', async () => {
    using dir = tempDir()
    const { store, changes } = makeStore(dir.path, { mode: 'files' })
    await store.init()
    expect(existsSync(store.caPath())).toBe(false) // no CA outside dev mode
    expect(store.all()).toEqual([])

    const first = opensslCert(['DNS:api.example.com'])
    writeFileSync(join(dir.path, 'api.crt'), first.cert)
    writeFileSync(join(dir.path, 'api.key'), first.key)
    await waitFor(() => store.select('api.example.com') !== undefined)
    expect(store.select('api.example.com')?.cert).toBe(first.cert)
    const afterAdd = changes()
    expect(afterAdd).toBeGreaterThanOrEqual(1)

    // Replace atomically (temp + rename), as editors and cert tools do.
    const second = opensslCert(['DNS:api.example.com', 'DNS:www.example.com'])
    writeFileSync(join(dir.path, '.api.pem.tmp'), second.cert + second.key)
    rmSync(join(dir.path, 'api.crt'))
    rmSync(join(dir.path, 'api.key'))
    renameSync(join(dir.path, '.api.pem.tmp'), join(dir.path, 'api.pem'))
    await waitFor(() => store.select('www.example.com') !== undefined)
    expect(store.select('api.example.com')?.cert).toBe(second.cert)
    expect(changes()).toBeGreaterThan(afterAdd)

    const beforeDelete = changes()
    rmSync(join(dir.path, 'api.pem'))
    await waitFor(() => store.select('api.example.com') === undefined)
    expect(changes()).toBeGreaterThan(beforeDelete)
  })

  test('bad and mismatched files are logged and skipped, never fatal', async () => {
    using dir = tempDir()
    const good = opensslCert(['DNS:good.example.com'])
    const other = opensslCert(['DNS:other.example.com'])
    writeFileSync(join(dir.path, 'good.pem'), good.cert + good.key)
    writeFileSync(join(dir.path, 'broken.pem'), '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' + good.key)
    writeFileSync(join(dir.path, 'mismatch.crt'), good.cert)
    writeFileSync(join(dir.path, 'mismatch.key'), other.key)
    const { store, logger, changes } = makeStore(dir.path, { mode: 'files' })
    await store.init()
    expect(store.all().map((p) => p.names[0])).toEqual(['good.example.com'])
    const warnings = logger.lines.filter((l) => l.level === 'warn').map((l) => l.fields.file)
    expect(warnings.sort()).toEqual(['broken.pem', 'mismatch.crt'])

    // A bad file appearing later is logged too and leaves the good one in place.
    writeFileSync(join(dir.path, 'late.pem'), 'garbage')
    await waitFor(() => logger.lines.some((l) => l.fields.file === 'late.pem'))
    expect(store.select('good.example.com')?.cert).toBe(good.cert)
    expect(changes()).toBe(0) // nothing served changed
  })

  test('ensure() never issues; agentCert() uses a file certificate or says what is missing', async () => {
    using dir = tempDir()
    const { store } = makeStore(dir.path, { mode: 'files', domain: 'example.com' })
    await store.init()
    expect(await store.ensure('a.example.com')).toBeUndefined()
    expect(existsSync(join(dir.path, 'dev'))).toBe(false)
    await expect(store.agentCert([])).rejects.toThrow('No certificate for the agent port: add one for "agent.example.com"')
    const agent = opensslCert(['DNS:agent.example.com'])
    writeFileSync(join(dir.path, 'agent.pem'), agent.cert + agent.key)
    await waitFor(() => store.select('agent.example.com') !== undefined)
    expect((await store.agentCert([])).cert).toBe(agent.cert)
  })

  test('after the signal aborts, changes are no longer watched', async () => {
    using dir = tempDir()
    const { store, controller, changes } = makeStore(dir.path, { mode: 'files' })
    await store.init()
    controller.abort()
    const cert = opensslCert(['DNS:late.example.com'])
    writeFileSync(join(dir.path, 'late.pem'), cert.cert + cert.key)
    await Bun.sleep(200)
    expect(changes()).toBe(0)
    expect(store.select('late.example.com')).toBeUndefined()
    expect(readdirSync(dir.path)).toEqual(['late.pem'])
  })
})
