import { afterEach, describe, expect, test } from 'bun:test'
import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { PolicyDirectory } from '../config/policies.ts'
import { LOAD_OPTIONS, respondPolicy, setup } from './test-helpers.ts'

let cleanups: (() => void)[] = []
afterEach(() => {
  for (const c of cleanups.reverse()) c()
  cleanups = []
})
function api(options: Parameters<typeof setup>[0] = {}) {
  const s = setup(options)
  cleanups.push(s.cleanup)
  return s
}

const HAND_WRITTEN = `endpoints:
  - url: http://hand.example.com
    description: from a file
    metadata: {team: core}
    traffic_policy:
      on_http_request:
        - actions: [{type: custom-response, config: {body: hand}}]
`

/** The URL the current table serves for a host, if any. */
function served(s: ReturnType<typeof setup>, host: string): string | undefined {
  return s.store.current.endpoints.find((e) => e.url.host === host)?.urlText
}

describe('POST /endpoints', () => {
  test('creates a cloud endpoint, stores it as api-<id>.yml and serves it at once', async () => {
    const s = api()
    const res = await s.call('POST', '/endpoints', { url: 'http://new.example.com', traffic_policy: respondPolicy('hi'), description: 'made by test', metadata: '{"k":1}' })
    expect(res.status).toBe(201)
    const ep = await res.json()
    expect(ep).toMatchObject({
      type: 'cloud',
      url: 'http://new.example.com:8080',
      scheme: 'http',
      host: 'new.example.com',
      port: 8080,
      hostport: 'new.example.com:8080',
      bindings: ['public'],
      pooling_enabled: false,
      description: 'made by test',
      metadata: '{"k":1}',
      traffic_policy: respondPolicy('hi'),
      account: 'default',
      read_only: false,
    })
    expect(ep.id).toMatch(/^ep_[0-9a-z]{26}$/)
    expect(ep.uri).toBe(`http://127.0.0.1:4041/endpoints/${ep.id}`)
    expect(ep.source).toBe(`api-${ep.id}.yml`)
    // Visible without waiting for the watcher: the handler reloaded synchronously.
    expect(s.reasons).toEqual(['start', 'api'])
    expect(served(s, 'new.example.com')).toBe('http://new.example.com')
    const text = readFileSync(join(s.dir, ep.source), 'utf8')
    expect(text).toStartWith(`# Endpoint ${ep.id}, managed by the warren REST API`)
    // No temp files are left behind.
    expect(readdirSync(s.dir)).toEqual([ep.source])
  })

  test('the stored file loads on its own, like after a restart, with the same id', async () => {
    const s = api()
    const ep = await (await s.call('POST', '/endpoints', { url: 'https://persist.example.com', traffic_policy: respondPolicy('p'), pooling_enabled: true })).json()
    const fresh = new PolicyDirectory(s.dir, LOAD_OPTIONS).reload()
    expect(fresh.files).toEqual([{ file: ep.source, status: 'ok', issues: [], servingPrevious: false }])
    expect(fresh.table.endpoints.map((e) => [e.id, e.urlText, e.poolingEnabled])).toEqual([[ep.id, 'https://persist.example.com', true]])
    // A second API over the same directory (a restarted edge) serves it.
    const again = setup({ files: { [ep.source]: readFileSync(join(s.dir, ep.source), 'utf8') } })
    cleanups.push(again.cleanup)
    const got = await again.call('GET', `/endpoints/${ep.id}`)
    expect(got.status).toBe(200)
    expect(await got.json()).toMatchObject({ id: ep.id, url: 'https://persist.example.com:8443', traffic_policy: respondPolicy('p') })
  })

  test('a traffic policy given as an object is stored as a map and shown as JSON', async () => {
    const s = api()
    const policy = { on_http_request: [{ actions: [{ type: 'custom-response', config: { body: 'obj' } }] }] }
    const ep = await (await s.call('POST', '/endpoints', { url: 'http://obj.example.com', traffic_policy: policy })).json()
    expect(JSON.parse(ep.traffic_policy)).toEqual(policy)
  })

  test('bindings: ["internal"] with a .internal host makes an internal endpoint', async () => {
    const s = api()
    const res = await s.call('POST', '/endpoints', { url: 'https://svc.internal', bindings: ['internal'], traffic_policy: respondPolicy('i') })
    expect(res.status).toBe(201)
    expect(await res.json()).toMatchObject({ url: 'https://svc.internal', bindings: ['internal'] })
  })

  test.each([
    { desc: 'bad URL scheme', body: { url: 'ftp://x.example.com', traffic_policy: respondPolicy('x') }, code: 'ERR_WARREN_6005', field: 'url', msg: /^url: Invalid endpoint URL "ftp:\/\/x\.example\.com": scheme "ftp" is not one of http, https, tcp, tls \[ERR_WARREN_1004\]$/ },
    { desc: 'URL with a path', body: { url: 'https://x.example.com/api', traffic_policy: respondPolicy('x') }, code: 'ERR_WARREN_6005', field: 'url', msg: /^url: .*path.* \[ERR_WARREN_1004\]$/ },
    { desc: 'public binding on a .internal host', body: { url: 'https://a.internal', bindings: ['public'], traffic_policy: respondPolicy('x') }, code: 'ERR_WARREN_6005', field: 'url', msg: /internal.*\[ERR_WARREN_1004\]/ },
    { desc: 'unknown action', body: { url: 'http://x.example.com', traffic_policy: 'on_http_request:\n  - actions: [{type: rewrite-url}]\n' }, code: 'ERR_WARREN_6005', field: 'traffic_policy', msg: /^traffic_policy: .*unknown action type "rewrite-url".*\[ERR_WARREN_2001\]$/ },
    { desc: 'policy that is not YAML', body: { url: 'http://x.example.com', traffic_policy: 'on_http_request: [unclosed' }, code: 'ERR_WARREN_6005', field: 'traffic_policy', msg: /^traffic_policy: .*\[ERR_WARREN_1002\]$/ },
    {
      desc: 'policy with an alias bomb',
      body: { url: 'http://x.example.com', traffic_policy: `a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n${'bcdefgh'.split('').map((k, i) => `${k}: &${k} [${Array(9).fill(`*${'abcdefgh'[i]}`).join(',')}]`).join('\n')}\n` },
      code: 'ERR_WARREN_6005',
      field: 'traffic_policy',
      msg: /^traffic_policy: .*YAML aliases expand too far.*\[ERR_WARREN_1007\]$/,
    },
    { desc: 'policy without a terminating action', body: { url: 'http://x.example.com', traffic_policy: 'on_http_request: []\n' }, code: 'ERR_WARREN_6005', field: 'traffic_policy', msg: /ERR_WARREN_6029/ },
    { desc: 'bad CEL expression', body: { url: 'http://x.example.com', traffic_policy: 'on_http_request:\n  - expressions: ["req.url.path.startsWith("]\n    actions: [{type: custom-response}]\n' }, code: 'ERR_WARREN_6005', field: 'traffic_policy', msg: /ERR_WARREN_2002/ },
    { desc: 'missing url', body: { traffic_policy: respondPolicy('x') }, code: 'ERR_WARREN_6004', field: 'url', msg: /url/ },
    { desc: 'unknown field', body: { url: 'http://x.example.com', upstream: 'x' }, code: 'ERR_WARREN_6004', field: 'upstream', msg: /unknown key "upstream"/ },
    { desc: 'two bindings', body: { url: 'http://x.example.com', bindings: ['public', 'internal'] }, code: 'ERR_WARREN_6004', field: 'bindings', msg: /^bindings: must hold exactly one binding$/ },
    { desc: 'type agent', body: { url: 'http://x.example.com', type: 'agent' }, code: 'ERR_WARREN_6004', field: 'type', msg: /^type: / },
    { desc: 'pooling_enabled not a boolean', body: { url: 'http://x.example.com', pooling_enabled: 'yes' }, code: 'ERR_WARREN_6004', field: 'pooling_enabled', msg: /^pooling_enabled: / },
  ])('$desc → 400 $code naming $field', async ({ body, code, field, msg }) => {
    const s = api()
    const res = await s.call('POST', '/endpoints', body)
    expect(res.status).toBe(400)
    const err = await res.json()
    expect(err).toMatchObject({ error_code: code, status_code: 400 })
    expect(err.msg).toMatch(msg)
    if (code === 'ERR_WARREN_6005') expect(err.details.issues[0].field).toBe(field)
    else expect(err.details.field).toBe(field)
    // Nothing was written and nothing reloaded.
    expect(readdirSync(s.dir)).toEqual([])
    expect(s.reasons).toEqual(['start'])
  })

  test('a body that is not JSON → 400 ERR_WARREN_6004', async () => {
    const res = await api().call('POST', '/endpoints', '{"url": ')
    expect(res.status).toBe(400)
    const err = await res.json()
    expect(err.error_code).toBe('ERR_WARREN_6004')
    expect(err.msg).toStartWith('The request body is not valid JSON')
  })

  test('a URL already served without pooling → 409 ERR_WARREN_6007, and the file is rolled back', async () => {
    const s = api({ files: { 'hand.yml': HAND_WRITTEN } })
    const res = await s.call('POST', '/endpoints', { url: 'http://hand.example.com', traffic_policy: respondPolicy('dup') })
    expect(res.status).toBe(409)
    const err = await res.json()
    expect(err.error_code).toBe('ERR_WARREN_6007')
    expect(err.msg).toContain('http://hand.example.com (public) is already served by hand.yml')
    expect(readdirSync(s.dir)).toEqual(['hand.yml'])
    expect(s.store.current.endpoints.map((e) => e.source)).toEqual(['hand.yml'])
  })
})

describe('GET /endpoints', () => {
  test('lists hand-written endpoints read-only, with their policy text', async () => {
    const s = api({ files: { 'hand.yml': HAND_WRITTEN } })
    const body = await (await s.call('GET', '/endpoints')).json()
    expect(body.endpoints).toHaveLength(1)
    const [ep] = body.endpoints
    expect(ep).toMatchObject({ type: 'cloud', url: 'http://hand.example.com:8080', source: 'hand.yml', read_only: true, description: 'from a file', metadata: '{"team":"core"}' })
    expect(JSON.parse(ep.traffic_policy)).toEqual({ on_http_request: [{ actions: [{ type: 'custom-response', config: { body: 'hand' } }] }] })
    expect(body.uri).toBe('http://127.0.0.1:4041/endpoints')
  })

  test('traffic_policy_file is shown as the referenced text', async () => {
    const s = api({ files: { '_p.yml': respondPolicy('f'), 'f.yml': 'url: http://f.example.com\ntraffic_policy_file: _p.yml\n' } })
    const [ep] = (await (await s.call('GET', '/endpoints')).json()).endpoints
    expect(ep.traffic_policy).toBe(respondPolicy('f'))
  })

  test('filters by url, binding and type', async () => {
    const s = api({ files: { 'hand.yml': HAND_WRITTEN } })
    await s.call('POST', '/endpoints', { url: 'http://a.example.com', traffic_policy: respondPolicy('a') })
    await s.call('POST', '/endpoints', { url: 'https://b.internal', traffic_policy: respondPolicy('b') })
    const urls = async (q: string) => ((await (await s.call('GET', `/endpoints${q}`)).json()).endpoints as { url: string }[]).map((e) => e.url).sort()
    expect(await urls('')).toEqual(['http://a.example.com:8080', 'http://hand.example.com:8080', 'https://b.internal'])
    expect(await urls('?url=http://a.example.com')).toEqual(['http://a.example.com:8080'])
    // The URL as shown (with the listener's port) filters the same.
    expect(await urls('?url=http://a.example.com:8080')).toEqual(['http://a.example.com:8080'])
    expect(await urls('?url=b.internal')).toEqual(['https://b.internal'])
    expect(await urls('?binding=internal')).toEqual(['https://b.internal'])
    expect(await urls('?binding=public')).toEqual(['http://a.example.com:8080', 'http://hand.example.com:8080'])
    expect(await urls('?type=cloud')).toHaveLength(3)
    expect(await urls('?type=agent')).toEqual([])
  })

  test('pages with limit and before_id, newest first, like ngrok', async () => {
    const s = api()
    const ids: string[] = []
    for (let i = 0; i < 5; i++) {
      ids.push((await (await s.call('POST', '/endpoints', { url: `http://p${i}.example.com`, traffic_policy: respondPolicy(`p${i}`) })).json()).id)
      await Bun.sleep(2)
    }
    const seen: string[] = []
    let next: string | null = '/endpoints?limit=2'
    let pages = 0
    while (next) {
      const page: { endpoints: { id: string }[]; next_page_uri: string | null } = await (await s.call('GET', next.replace('http://127.0.0.1:4041', ''))).json()
      expect(page.endpoints.length).toBeLessThanOrEqual(2)
      seen.push(...page.endpoints.map((e) => e.id))
      next = page.next_page_uri
      pages++
    }
    expect(pages).toBe(3)
    expect(seen).toEqual([...ids].reverse())
  })

  test.each([
    { q: '?limit=0', field: 'limit' },
    { q: '?limit=101', field: 'limit' },
    { q: '?limit=abc', field: 'limit' },
    { q: '?type=edge', field: 'type' },
    { q: '?binding=kubernetes', field: 'binding' },
    { q: '?url=ftp://x', field: 'url' },
    { q: '?filter=obj.type', field: 'filter' },
  ])('$q → 400 ERR_WARREN_6004 naming $field', async ({ q, field }) => {
    const res = await api().call('GET', `/endpoints${q}`)
    expect(res.status).toBe(400)
    const err = await res.json()
    expect(err.error_code).toBe('ERR_WARREN_6004')
    expect(err.details.field).toBe(field)
    expect(err.msg).toContain(field)
  })

  test('GET /endpoints/:id → 404 ERR_WARREN_6003 for an unknown id', async () => {
    const res = await api().call('GET', '/endpoints/ep_nope')
    expect(res.status).toBe(404)
    expect(await res.json()).toEqual({ error_code: 'ERR_WARREN_6003', status_code: 404, msg: 'No endpoint with id "ep_nope"' })
  })
})

describe('PATCH and DELETE /endpoints/:id', () => {
  test('update changes only the given fields, keeps the id, and serves the new URL at once', async () => {
    const s = api()
    const created = await (await s.call('POST', '/endpoints', { url: 'http://old.example.com', traffic_policy: respondPolicy('v1'), description: 'keep me' })).json()
    const res = await s.call('PATCH', `/endpoints/${created.id}`, { url: 'http://new.example.com', traffic_policy: respondPolicy('v2') })
    expect(res.status).toBe(200)
    expect(await res.json()).toMatchObject({ id: created.id, url: 'http://new.example.com:8080', description: 'keep me', traffic_policy: respondPolicy('v2'), read_only: false })
    expect(s.store.current.endpoints.map((e) => [e.id, e.urlText])).toEqual([[created.id, 'http://new.example.com']])
    // "" clears a text field.
    const cleared = await (await s.call('PATCH', `/endpoints/${created.id}`, { description: '' })).json()
    expect(cleared.description).toBeUndefined()
  })

  test('an invalid update → 400 and the file keeps its previous content', async () => {
    const s = api()
    const created = await (await s.call('POST', '/endpoints', { url: 'http://keep.example.com', traffic_policy: respondPolicy('v1') })).json()
    const before = readFileSync(join(s.dir, created.source), 'utf8')
    const res = await s.call('PATCH', `/endpoints/${created.id}`, { url: 'tcp://keep.example.com' })
    expect(res.status).toBe(400)
    expect((await res.json()).msg).toBe('url: Invalid endpoint URL "tcp://keep.example.com": tcp endpoints must specify a port [ERR_WARREN_1004]')
    expect(readFileSync(join(s.dir, created.source), 'utf8')).toBe(before)
  })

  test('an update onto a taken URL → 409 and the old version serves again', async () => {
    const s = api({ files: { 'hand.yml': HAND_WRITTEN } })
    const created = await (await s.call('POST', '/endpoints', { url: 'http://mine.example.com', traffic_policy: respondPolicy('v1') })).json()
    const res = await s.call('PATCH', `/endpoints/${created.id}`, { url: 'http://hand.example.com' })
    expect(res.status).toBe(409)
    expect((await res.json()).error_code).toBe('ERR_WARREN_6007')
    expect(s.store.current.endpoints.map((e) => e.urlText).sort()).toEqual(['http://hand.example.com', 'http://mine.example.com'])
  })

  test('delete removes the file and the endpoint; a second delete is 404', async () => {
    const s = api()
    const created = await (await s.call('POST', '/endpoints', { url: 'http://gone.example.com', traffic_policy: respondPolicy('x') })).json()
    const res = await s.call('DELETE', `/endpoints/${created.id}`)
    expect(res.status).toBe(204)
    expect(await res.text()).toBe('')
    expect(existsSync(join(s.dir, created.source))).toBe(false)
    expect(s.store.current.endpoints).toEqual([])
    expect((await s.call('DELETE', `/endpoints/${created.id}`)).status).toBe(404)
    expect((await s.call('GET', `/endpoints/${created.id}`)).status).toBe(404)
  })

  test.each(['PATCH', 'DELETE'])('%s on an endpoint of a hand-written file → 409 ERR_WARREN_6006 naming the file', async (method) => {
    const s = api({ files: { 'hand.yml': HAND_WRITTEN } })
    const [ep] = (await (await s.call('GET', '/endpoints')).json()).endpoints
    const res = await s.call(method, `/endpoints/${ep.id}`, method === 'PATCH' ? { description: 'x' } : undefined)
    expect(res.status).toBe(409)
    const err = await res.json()
    expect(err.error_code).toBe('ERR_WARREN_6006')
    expect(err.msg).toBe(`Endpoint ${ep.id} (http://hand.example.com) cannot be changed through the API: it is declared in the hand-written policies file "hand.yml" (line 2); edit that file instead`)
    expect(readFileSync(join(s.dir, 'hand.yml'), 'utf8')).toBe(HAND_WRITTEN)
  })

  test('a hand-written file named like an API file but holding two endpoints: only the first is API-owned', async () => {
    const name = 'api-ep_01aaaaaaaaaaaaaaaaaaaaaaaa.yml'
    const s = api({ files: { [name]: `endpoints:\n  - url: http://one.example.com\n    traffic_policy: {on_http_request: [{actions: [{type: custom-response}]}]}\n  - url: http://two.example.com\n    traffic_policy: {on_http_request: [{actions: [{type: custom-response}]}]}\n` } })
    const eps: { id: string; url: string; read_only: boolean }[] = (await (await s.call('GET', '/endpoints')).json()).endpoints
    expect(eps.find((e) => e.url === 'http://one.example.com:8080')).toMatchObject({ id: 'ep_01aaaaaaaaaaaaaaaaaaaaaaaa', read_only: false })
    expect(eps.find((e) => e.url === 'http://two.example.com:8080')?.read_only).toBe(true)
  })

  test('ids are never turned into paths outside the API files', async () => {
    const s = api({ files: { 'hand.yml': HAND_WRITTEN } })
    for (const id of ['..%2Fhand', '..%2F..%2Fetc%2Fpasswd', 'ep_x%2F..%2F..%2Fhand']) {
      expect((await s.call('DELETE', `/endpoints/${id}`)).status).toBe(404)
      expect((await s.call('PATCH', `/endpoints/${id}`, { description: 'x' })).status).toBe(404)
    }
    expect(readFileSync(join(s.dir, 'hand.yml'), 'utf8')).toBe(HAND_WRITTEN)
  })

  test('unsupported methods → 405 ERR_WARREN_6009 with Allow', async () => {
    const s = api()
    const res = await s.call('PUT', '/endpoints/ep_x', {})
    expect(res.status).toBe(405)
    expect(res.headers.get('allow')).toBe('GET, PATCH, DELETE')
    expect((await res.json()).error_code).toBe('ERR_WARREN_6009')
  })
})

describe('a policies directory warren cannot write', () => {
  test('create → 503 ERR_WARREN_6008 with a clear message, not a 500', async () => {
    const s = api()
    let undo = () => {}
    if (process.getuid?.() === 0) {
      // root ignores permission bits; the immutable attribute stops it.
      const r = Bun.spawnSync(['chattr', '+i', s.dir])
      if (r.exitCode === 0) undo = () => Bun.spawnSync(['chattr', '-i', s.dir])
    } else {
      chmodSync(s.dir, 0o555)
      undo = () => chmodSync(s.dir, 0o755)
    }
    cleanups.push(undo)
    try {
      writeFileSync(join(s.dir, '.probe'), '')
      console.warn('skipped: cannot make a directory read-only here')
      return
    } catch {}
    const res = await s.call('POST', '/endpoints', { url: 'http://ro.example.com', traffic_policy: respondPolicy('x') })
    expect(res.status).toBe(503)
    const err = await res.json()
    expect(err.error_code).toBe('ERR_WARREN_6008')
    expect(err.msg).toMatch(/^Cannot write to the policies directory ".*": E(ACCES|PERM|ROFS) \(it is read-only to warren\); API changes need a writable policies directory$/)
    expect(JSON.stringify(err)).not.toContain('    at ')
  })
})
