import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { issueLeaf, loadOrCreateDevCa, type DevCa } from '../certs/dev-ca.ts'
import { CertStore } from '../certs/store.ts'
import { opensslCert, recordingLogger, tempDir, waitFor } from '../certs/testing.ts'
import { formatEndpointUrl, parseEndpointUrl } from '../config/url.ts'
import type { Endpoint } from '../endpoints/endpoint.ts'
import { EndpointStore } from '../endpoints/store.ts'
import { EndpointTable } from '../endpoints/table.ts'
import { EMPTY_POLICY } from '../policy/engine.ts'
import { AcmeManager, certId, type IssueFn } from './manager.ts'
import { recordResponse } from './problem.ts'
import type { AcmeSettings } from './settings.ts'
import { http01Key, type AcmeShare } from './share.ts'
import { redisAcmeShare } from '../cluster/acme-share.ts'
import { RedisRegistry } from '../cluster/redis-registry.ts'
import { redisUnavailable, startRedis, type RedisServer } from '../../test/helpers/redis.ts'
import { AcmeStore, type CertMeta } from './store.ts'

function ep(url: string, kind: 'cloud' | 'agent' = 'cloud'): Endpoint {
  const parsed = parseEndpointUrl(url)
  const port = parsed.port ?? 443
  const urlText = formatEndpointUrl(parsed)
  return {
    id: url,
    kind,
    url: parsed,
    urlText,
    port,
    account: 'default',
    poolingEnabled: false,
    source: 'a.yml',
    position: { line: 1, col: 1 },
    description: undefined,
    metadata: undefined,
    policy: EMPTY_POLICY,
    info: { id: url, url: urlText, scheme: parsed.scheme, host: parsed.host, port, binding: parsed.binding },
  }
}

const DIRECTORY = 'https://ca.test/dir'
const SETTINGS: AcmeSettings = { directory: DIRECTORY, challenges: ['http-01'], baseDir: '/', onDemandTimeoutMs: 2000, pollMs: 10, retryMinMs: 30, retryMaxMs: 200 }

const cleanups: (() => void)[] = []
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c()
})

let caDir: ReturnType<typeof tempDir> | undefined
let ca: DevCa | undefined
async function testCa(): Promise<DevCa> {
  caDir ??= tempDir('warren-acme-ca-')
  ca ??= (await loadOrCreateDevCa(caDir.path)).ca
  return ca
}
afterAll(() => caDir?.[Symbol.dispose]())

interface Setup {
  dir: string
  certs: CertStore
  endpoints: EndpointStore
  manager: AcmeManager
  issued: string[]
  logger: ReturnType<typeof recordingLogger>
  store: AcmeStore
}

async function setup(options: { urls?: string[]; issue?: IssueFn; settings?: Partial<AcmeSettings>; dir?: string; files?: Record<string, string>; accountDomains?: string[]; maxConcurrent?: number; share?: AcmeShare } = {}): Promise<Setup> {
  const owned = options.dir ? undefined : tempDir('warren-acme-')
  if (owned) cleanups.push(() => owned[Symbol.dispose]())
  const dir = options.dir ?? owned!.path
  for (const [name, text] of Object.entries(options.files ?? {})) writeFileSync(join(dir, name), text)
  const controller = new AbortController()
  cleanups.push(() => controller.abort())
  const logger = recordingLogger()
  const certs = new CertStore(dir, { mode: 'acme', domain: 'example.com', signal: controller.signal, logger, debounceMs: 20 })
  await certs.init()
  const endpoints = new EndpointStore()
  endpoints.swap(EndpointTable.build(1, (options.urls ?? []).map((u) => ep(u))).table, { files: [], endpoints: [] })
  const issued: string[] = []
  const authority = await testCa()
  const issue: IssueFn =
    options.issue ??
    (async (name) => {
      issued.push(name)
      const pair = await issueLeaf(authority, [name])
      return { cert: pair.cert, key: pair.key }
    })
  const store = new AcmeStore(dir)
  const manager = new AcmeManager({
    settings: { ...SETTINGS, ...options.settings },
    store,
    certs,
    endpoints,
    accountDomains: () => options.accountDomains ?? [],
    httpsPort: 443,
    ownNames: [],
    signal: controller.signal,
    logger,
    issue: async (name) => {
      if (options.issue) issued.push(name)
      return issue(name)
    },
    random: () => 0.5,
    ...(options.maxConcurrent ? { maxConcurrent: options.maxConcurrent } : {}),
    ...(options.share ? { share: options.share } : {}),
  })
  certs.setOnDemand(manager.onDemand)
  return { dir, certs, endpoints, manager, issued, logger, store }
}

const metaOf = (dir: string, file: string) => JSON.parse(readFileSync(join(dir, 'acme', 'certificates', `${file}.json`), 'utf8')) as CertMeta

describe('AcmeManager: what gets ordered', () => {
  test('start() orders each claimed https name once, serves it, stores it; nothing for unclaimed or private names', async () => {
    const s = await setup({ urls: ['https://api.example.com', 'https://app.warren.localhost', 'http://plain.example.com', 'https://*.apps.example.com', 'tls://db.example.com'] })
    await s.manager.start()
    // The certificate serves before it is written: the log line comes after the files.
    await waitFor(() => s.logger.lines.some((l) => l.msg === 'certificate obtained'))
    await Bun.sleep(30)
    expect(s.issued).toEqual(['api.example.com'])
    expect(s.certs.select('api.example.com')!.source).toBe('acme')
    expect(existsSync(join(s.dir, 'acme', 'certificates', 'api.example.com.crt'))).toBe(true)
    const meta = metaOf(s.dir, 'api.example.com')
    expect(meta).toMatchObject({ name: 'api.example.com', directory: DIRECTORY })
    expect(Date.parse(meta.renewAt!)).toBeLessThan(Date.parse(meta.notAfter!))
    expect(s.logger.lines.find((l) => l.msg === 'certificate obtained')?.fields).toMatchObject({ name: 'api.example.com' })
  })

  test('a new endpoint in the table (an agent binds) is ordered in the background', async () => {
    const s = await setup({ urls: [] })
    await s.manager.start()
    s.endpoints.setAgentEndpoints([ep('https://abc123.example.com', 'agent')])
    await waitFor(() => s.certs.select('abc123.example.com') !== undefined)
    expect(s.issued).toEqual(['abc123.example.com'])
  })

  test('account domains are ordered; with dns-01 a wildcard endpoint is ordered as *.name', async () => {
    const s = await setup({ urls: ['https://*.apps.example.com', 'https://x.apps.example.com'], accountDomains: ['owned.example.org'], settings: { challenges: ['http-01', 'dns-01'], dnsHook: 'true' } })
    await s.manager.start()
    await waitFor(() => s.certs.select('x.apps.example.com') !== undefined && s.certs.select('owned.example.org') !== undefined)
    await Bun.sleep(30)
    expect(s.issued.sort()).toEqual(['*.apps.example.com', 'owned.example.org'])
    expect(s.certs.select('x.apps.example.com')!.names).toEqual(['*.apps.example.com'])
  })

  test('a valid user certificate in certs/ covering the name: no order', async () => {
    const own = opensslCert(['DNS:api.example.com'])
    const s = await setup({ urls: ['https://api.example.com', 'https://other.example.com'], files: { 'api.pem': own.cert + own.key } })
    await s.manager.start()
    await waitFor(() => s.certs.select('other.example.com') !== undefined)
    await Bun.sleep(30)
    expect(s.issued).toEqual(['other.example.com'])
    expect(s.certs.select('api.example.com')!.source).toBe('file')
  })

  test('at most maxConcurrent orders run at once', async () => {
    let active = 0
    let peak = 0
    const authority = await testCa()
    const s = await setup({
      urls: ['https://a.example.com', 'https://b.example.com', 'https://c.example.com'],
      maxConcurrent: 1,
      issue: async (name) => {
        peak = Math.max(peak, ++active)
        await Bun.sleep(10)
        const pair = await issueLeaf(authority, [name])
        active--
        return { cert: pair.cert, key: pair.key }
      },
    })
    await s.manager.start()
    await waitFor(() => ['a', 'b', 'c'].every((n) => s.certs.select(`${n}.example.com`)))
    expect(peak).toBe(1)
  })
})

describe('AcmeManager: restart, renewal, failures', () => {
  test('restart: stored certificates serve without an order; one from another CA directory is replaced', async () => {
    const first = await setup({ urls: ['https://api.example.com'] })
    await first.manager.start()
    await waitFor(() => first.issued.length === 1 && existsSync(join(first.dir, 'acme', 'certificates', 'api.example.com.json')))
    const served = first.certs.select('api.example.com')!

    const again = await setup({ urls: ['https://api.example.com'], dir: first.dir })
    await again.manager.start()
    await Bun.sleep(50)
    expect(again.issued).toEqual([])
    expect(again.certs.select('api.example.com')!.cert).toBe(served.cert)
    expect(again.logger.lines.find((l) => l.msg === 'loaded stored certificates')?.fields).toMatchObject({ count: 1 })

    const moved = await setup({ urls: ['https://api.example.com'], dir: first.dir, settings: { directory: 'https://other-ca.test/dir' } })
    await moved.manager.start()
    await waitFor(() => moved.issued.length === 1)
    await waitFor(() => metaOf(first.dir, 'api.example.com').directory === 'https://other-ca.test/dir')
  })

  test('renewal: past renewAt the certificate is renewed and the new one replaces it', async () => {
    const s = await setup({ urls: ['https://api.example.com'] })
    const old = await issueLeaf(await testCa(), ['api.example.com'])
    await s.store.saveCertificate({ ...old, source: 'acme' }, { name: 'api.example.com', directory: DIRECTORY, notAfter: old.notAfter.toISOString(), renewAt: new Date(Date.now() - 1000).toISOString() })
    await s.manager.start()
    await waitFor(() => s.logger.lines.some((l) => l.msg === 'certificate renewed'))
    expect(s.issued).toEqual(['api.example.com'])
    expect(s.certs.select('api.example.com')!.cert).not.toBe(old.cert)
    expect(Date.parse(metaOf(s.dir, 'api.example.com').renewAt!)).toBeGreaterThan(Date.now())
  })

  test('failures: backoff retries, lastError on disk, the old certificate keeps serving; success clears the error', async () => {
    let calls = 0
    const authority = await testCa()
    const s = await setup({
      urls: ['https://api.example.com'],
      issue: async (name) => {
        if (++calls <= 2) throw Object.assign(new Error('cannot reach https://ca.test/dir: connect ECONNREFUSED'), { code: 'ECONNREFUSED' })
        const pair = await issueLeaf(authority, [name])
        return { cert: pair.cert, key: pair.key }
      },
    })
    const old = await issueLeaf(authority, ['api.example.com'])
    await s.store.saveCertificate({ ...old, source: 'acme' }, { name: 'api.example.com', directory: DIRECTORY, notAfter: old.notAfter.toISOString(), renewAt: new Date(Date.now() - 1000).toISOString() })
    await s.manager.start()
    await waitFor(() => calls === 1 && existsSync(join(s.dir, 'acme', 'certificates', 'api.example.com.json')) && metaOf(s.dir, 'api.example.com').lastError !== undefined)
    expect(s.certs.select('api.example.com')!.cert).toBe(old.cert)
    expect(metaOf(s.dir, 'api.example.com').lastError).toMatchObject({ failures: 1, message: 'cannot reach https://ca.test/dir: connect ECONNREFUSED' })
    const errors = () => s.logger.lines.filter((l) => l.level === 'error')
    expect(errors()[0]).toMatchObject({
      msg: 'Cannot obtain a certificate for "api.example.com": cannot reach https://ca.test/dir: connect ECONNREFUSED',
      fields: { code: 'ERR_WARREN_5001', attempt: 1, serving: `the previous certificate (valid until ${old.notAfter.toISOString()})` },
    })
    await waitFor(() => s.logger.lines.some((l) => l.msg === 'certificate renewed'))
    expect(calls).toBe(3)
    expect(errors().map((l) => l.fields.attempt)).toEqual([1, 2])
    // Backoff doubled: 30 ms, then 60 ms (± jitter; random is 0.5 here, so exactly).
    expect(errors().map((l) => l.fields.retry_in_s)).toEqual([0, 0.1])
    await waitFor(() => metaOf(s.dir, 'api.example.com').lastError === undefined)
    expect(s.certs.select('api.example.com')!.cert).not.toBe(old.cert)
  })

  test('a rate-limit problem document is logged whole and its Retry-After stretches the backoff', async () => {
    const s = await setup({
      urls: ['https://api.example.com'],
      issue: async () => {
        recordResponse({ status: 429, headers: { 'retry-after': '3600' }, data: { type: 'urn:ietf:params:acme:error:rateLimited', detail: 'too many certificates already issued', status: 429 } })
        throw new Error('create the order: too many certificates already issued')
      },
    })
    await s.manager.start()
    await waitFor(() => s.logger.lines.some((l) => l.level === 'error'))
    const line = s.logger.lines.find((l) => l.level === 'error')!
    expect(line.fields).toMatchObject({
      code: 'ERR_WARREN_5002',
      serving: 'nothing',
      problem: { type: 'urn:ietf:params:acme:error:rateLimited', detail: 'too many certificates already issued', status: 429 },
      problem_text: 'urn:ietf:params:acme:error:rateLimited: too many certificates already issued (429)',
    })
    expect(line.fields.retry_in_s).toBe(3600)
    await waitFor(() => existsSync(join(s.dir, 'acme', 'certificates', 'api.example.com.json')))
    const meta = metaOf(s.dir, 'api.example.com')
    expect(Date.parse(meta.lastError!.nextAttemptAt) - Date.now()).toBeGreaterThan(3500_000)
    expect(meta.lastError!.problem!.type).toBe('urn:ietf:params:acme:error:rateLimited')
  })
})

describe('AcmeManager: on-demand (TLS handshakes)', () => {
  test('a name under a wildcard endpoint: the handshake waits for its certificate', async () => {
    const s = await setup({ urls: ['https://*.apps.example.com'] })
    await s.manager.start()
    const [a, b] = await Promise.all([s.certs.ensure('x.apps.example.com'), s.certs.ensure('X.Apps.Example.com')])
    expect(a!.names).toEqual(['x.apps.example.com'])
    expect(b).toBe(a!)
    expect(s.issued).toEqual(['x.apps.example.com'])
    expect(s.certs.select('x.apps.example.com')).toBe(a!)
  })

  test('names nothing claims get nothing, without an order', async () => {
    const s = await setup({ urls: ['https://*.apps.example.com'] })
    await s.manager.start()
    for (const name of ['evil.example.com', 'apps.example.com', 'x.apps.example.com.evil.org', 'localhost', '127.0.0.1']) expect(await s.certs.ensure(name)).toBeUndefined()
    expect(s.issued).toEqual([])
  })

  test('an order slower than on_demand_timeout: the handshake gives up, the certificate arrives for the next one', async () => {
    const authority = await testCa()
    const s = await setup({
      urls: ['https://*.apps.example.com'],
      settings: { onDemandTimeoutMs: 30 },
      issue: async (name) => {
        await Bun.sleep(120)
        const pair = await issueLeaf(authority, [name])
        return { cert: pair.cert, key: pair.key }
      },
    })
    await s.manager.start()
    const started = Date.now()
    expect(await s.certs.ensure('slow.apps.example.com')).toBeUndefined()
    expect(Date.now() - started).toBeLessThan(110)
    await waitFor(() => s.certs.select('slow.apps.example.com') !== undefined)
    expect((await s.certs.ensure('slow.apps.example.com'))!.names).toEqual(['slow.apps.example.com'])
    expect(s.issued).toEqual(['slow.apps.example.com'])
  })

  test('a name backing off after a failure is refused at once instead of ordering again', async () => {
    const s = await setup({
      urls: ['https://*.apps.example.com'],
      settings: { retryMinMs: 60_000, retryMaxMs: 60_000 },
      issue: async () => {
        throw new Error('urn:ietf:params:acme:error:rejectedIdentifier')
      },
    })
    await s.manager.start()
    expect(await s.certs.ensure('x.apps.example.com')).toBeUndefined()
    expect(await s.certs.ensure('x.apps.example.com')).toBeUndefined()
    expect(s.issued).toEqual(['x.apps.example.com'])
  })

  test('new names on demand are rate limited (a burst of 10)', async () => {
    const s = await setup({ urls: ['https://*.apps.example.com'] })
    await s.manager.start()
    for (let i = 0; i < 10; i++) expect(await s.certs.ensure(`n${i}.apps.example.com`)).toBeDefined()
    expect(await s.certs.ensure('n10.apps.example.com')).toBeUndefined()
    expect(s.issued.length).toBe(10)
    expect(s.logger.lines.some((l) => l.fields.code === 'ERR_WARREN_5004')).toBe(true)
  })

  test('with dns-01, a handshake under a wildcard being ordered waits for that wildcard instead of ordering its own', async () => {
    const authority = await testCa()
    const s = await setup({
      urls: ['https://*.apps.example.com'],
      settings: { challenges: ['dns-01'], dnsHook: 'true' },
      issue: async (name) => {
        await Bun.sleep(40)
        const pair = await issueLeaf(authority, [name])
        return { cert: pair.cert, key: pair.key }
      },
    })
    await s.manager.start()
    const pair = await s.certs.ensure('a.apps.example.com')
    expect(pair!.names).toEqual(['*.apps.example.com'])
    expect(s.issued).toEqual(['*.apps.example.com'])
  })

  test('certId() is the CertStore id of a name', () => {
    expect(certId('*.a.test')).toBe('acme:*.a.test')
  })
})

// Several edges sharing one Redis (cluster.redis): a real redis-server, the nodes' registries and the share on them.
const noRedis = redisUnavailable()
if (noRedis) console.warn(`AcmeManager with a Redis share skipped: ${noRedis}`)

describe.skipIf(noRedis !== undefined)('AcmeManager with a Redis share (three nodes)', () => {
  let redis: RedisServer
  const registries: RedisRegistry[] = []
  beforeAll(async () => {
    redis = await startRedis()
  })
  afterAll(async () => {
    for (const r of registries) r.close()
    await Bun.sleep(50)
    await redis?.stop()
  })

  async function share(node: string): Promise<AcmeShare> {
    const registry = await RedisRegistry.connect({ url: redis.url, member: node, leaseMs: 1000, graceMs: 1000, log: recordingLogger() })
    registries.push(registry)
    return redisAcmeShare(registry, { lockMs: 600, log: recordingLogger() })
  }

  /** Three nodes claiming the same names, each with its own certs/ and an order that takes `orderMs`. */
  async function three(prefix: string, urls: string[], issue: (node: number, name: string) => Promise<{ cert: string; key: string }>, settings: Partial<AcmeSettings> = {}) {
    const orders: string[] = []
    const nodes: Setup[] = []
    for (let i = 0; i < 3; i++)
      nodes.push(
        await setup({
          urls,
          share: await share(`${prefix}${i}`),
          settings,
          issue: async (name) => {
            orders.push(`${i} ${name}`)
            return issue(i, name)
          },
        }),
      )
    return { nodes, orders }
  }

  test('one order per name for three nodes; every node serves the same certificate, and caches it', async () => {
    const authority = await testCa()
    const { nodes, orders } = await three('one', ['https://a.shared.example.com', 'https://b.shared.example.com'], async (_node, name) => {
      await Bun.sleep(100)
      const pair = await issueLeaf(authority, [name])
      return { cert: pair.cert, key: pair.key }
    })
    await Promise.all(nodes.map((n) => n.manager.start()))
    for (const name of ['a.shared.example.com', 'b.shared.example.com']) {
      await waitFor(() => nodes.every((n) => n.certs.select(name)?.source === 'acme'))
      expect(new Set(nodes.map((n) => n.certs.select(name)!.cert)).size).toBe(1)
      // Served first, then cached in each node's certs/acme/.
      await waitFor(() => nodes.every((n) => existsSync(join(n.dir, 'acme', 'certificates', `${name}.crt`))))
    }
    expect(orders.map((o) => o.split(' ')[1]).sort()).toEqual(['a.shared.example.com', 'b.shared.example.com'])
    const adopted = nodes.flatMap((n) => n.logger.lines.filter((l) => l.msg === 'certificate from another node'))
    expect(adopted.length).toBe(4)

    // A node joining later serves what the others ordered, without an order of its own.
    const late = await setup({ urls: ['https://a.shared.example.com'], share: await share('one-late'), issue: async () => Promise.reject(new Error('must not order')) })
    await late.manager.start()
    expect(late.certs.select('a.shared.example.com')?.cert).toBe(nodes[0]!.certs.select('a.shared.example.com')!.cert)
    expect(late.logger.lines.some((l) => l.msg === 'ordering certificate')).toBe(false)
  })

  test('an order that fails on the node holding the lock: the others do not order meanwhile, then one retries and all serve', async () => {
    const authority = await testCa()
    let failed = 0
    const { nodes, orders } = await three('fail', ['https://c.shared.example.com'], async (_node, name) => {
      await Bun.sleep(80)
      if (failed++ === 0) throw new Error('the CA said no')
      const pair = await issueLeaf(authority, [name])
      return { cert: pair.cert, key: pair.key }
      // A backoff longer than the waiters' look at the lock: they see the order end without a certificate.
    }, { retryMinMs: 1000, retryMaxMs: 1000 })
    await Promise.all(nodes.map((n) => n.manager.start()))
    await waitFor(() => nodes.every((n) => n.certs.select('c.shared.example.com')?.source === 'acme'), 8000)
    // One failed order, one good one: no node ordered while another held the lock.
    expect(orders.length).toBe(2)
    const waited = nodes.flatMap((n) => n.logger.lines.filter((l) => l.fields.code === 'ERR_WARREN_7029'))
    expect(waited.length).toBeGreaterThan(0)
  })

  test('renewal: the three nodes due at once renew with one order and all serve the new certificate', async () => {
    const authority = await testCa()
    const old = await issueLeaf(authority, ['d.shared.example.com'])
    const due = { name: 'd.shared.example.com', directory: DIRECTORY, notAfter: old.notAfter.toISOString(), renewAt: new Date(Date.now() - 1000).toISOString() }
    const orders: string[] = []
    const nodes: Setup[] = []
    const publisher = await share('renew-publisher')
    await publisher.save({ cert: old.cert, key: old.key, meta: due })
    for (let i = 0; i < 3; i++) {
      const dir = tempDir('warren-acme-')
      cleanups.push(() => dir[Symbol.dispose]())
      // Each node serves the old certificate from its own cache, as after a restart.
      await new AcmeStore(dir.path).saveCertificate({ ...old, source: 'acme' }, due)
      nodes.push(
        await setup({
          dir: dir.path,
          urls: ['https://d.shared.example.com'],
          share: await share(`renew${i}`),
          issue: async (name) => {
            orders.push(name)
            await Bun.sleep(80)
            const pair = await issueLeaf(authority, [name])
            return { cert: pair.cert, key: pair.key }
          },
        }),
      )
    }
    await Promise.all(nodes.map((n) => n.manager.start()))
    // Served first; the node that renewed logs once it has shared and stored it.
    const renewed = () => nodes.flatMap((n) => n.logger.lines.filter((l) => l.msg === 'certificate renewed'))
    await waitFor(() => nodes.every((n) => n.certs.select('d.shared.example.com')!.cert !== old.cert) && renewed().length > 0)
    expect(orders).toEqual(['d.shared.example.com'])
    expect(new Set(nodes.map((n) => n.certs.select('d.shared.example.com')!.cert)).size).toBe(1)
    expect(renewed().length).toBe(1)
    // Every node has the same renewal time, from the node that renewed.
    const renewAts = nodes.map((n) => n.manager.snapshot().find((e) => e.meta.name === 'd.shared.example.com')!.meta.renewAt)
    expect(new Set(renewAts).size).toBe(1)
    expect(Date.parse(renewAts[0]!)).toBeGreaterThan(Date.now())
  })

  test('a shared certificate that does not load is not served: a node orders one, which replaces it', async () => {
    const publisher = await share('corrupt-publisher')
    const future = new Date(Date.now() + 86_400_000).toISOString()
    await publisher.save({ cert: 'not a certificate', key: 'not a key', meta: { name: 'e.shared.example.com', directory: DIRECTORY, notAfter: future, renewAt: future } })
    const s = await setup({ urls: ['https://e.shared.example.com'], share: await share('corrupt0') })
    await s.manager.start()
    await waitFor(() => s.certs.select('e.shared.example.com')?.source === 'acme')
    expect(s.issued).toEqual(['e.shared.example.com'])
    expect(s.logger.lines.some((l) => l.fields.code === 'ERR_WARREN_5003')).toBe(true)
    await waitFor(() => s.logger.lines.some((l) => l.msg === 'certificate obtained'))
    expect((await publisher.certificate('e.shared.example.com'))!.cert).toBe(s.certs.select('e.shared.example.com')!.cert)
  })

  test('HTTP-01: a node answers a token another node published; unknown tokens fall through', async () => {
    const { nodes } = await three('http', [], async () => Promise.reject(new Error('no orders here')))
    const s = await share('http-publisher')
    await s.putChallenge(http01Key('Web.Shared.example.com', 'tok-1'), 'tok-1.thumb')
    expect(await nodes[1]!.manager.http01Answer('web.shared.example.com', 'tok-1')).toBe('tok-1.thumb')
    expect(await nodes[1]!.manager.http01Answer('web.shared.example.com', 'tok-2')).toBeUndefined()
    await s.deleteChallenge(http01Key('web.shared.example.com', 'tok-1'))
    expect(await nodes[2]!.manager.http01Answer('web.shared.example.com', 'tok-1')).toBeUndefined()
  })
})
