import { afterEach, describe, expect, test } from 'bun:test'
import { createHash } from 'node:crypto'
import { KEY, setup } from './test-helpers.ts'
import { OPENAPI } from './routes/openapi.ts'
import { keyDigests, keyMatches } from './auth.ts'

let cleanups: (() => void)[] = []
afterEach(() => {
  for (const c of cleanups) c()
  cleanups = []
})
function api(options: Parameters<typeof setup>[0] = {}) {
  const s = setup(options)
  cleanups.push(s.cleanup)
  return s
}

describe('API authentication', () => {
  test.each([
    { desc: 'no Authorization header', key: null, code: 'ERR_WARREN_6001', msg: /Missing API key/ },
    { desc: 'wrong key', key: 'nope', code: 'ERR_WARREN_6001', msg: /Invalid API key/ },
    { desc: 'right key as a prefix', key: KEY.slice(0, -1), code: 'ERR_WARREN_6001', msg: /Invalid API key/ },
    { desc: 'right key plus a suffix', key: `${KEY}x`, code: 'ERR_WARREN_6001', msg: /Invalid API key/ },
  ])('$desc → 401 $code', async ({ key, code, msg }) => {
    const { call } = api()
    const res = await call('GET', '/endpoints', undefined, key)
    expect(res.status).toBe(401)
    expect(res.headers.get('www-authenticate')).toBe('Bearer realm="warren"')
    const body = await res.json()
    expect(body).toMatchObject({ error_code: code, status_code: 401 })
    expect(body.msg).toMatch(msg)
  })

  test('the right key → 200', async () => {
    const res = await api().call('GET', '/endpoints')
    expect(res.status).toBe(200)
    expect(await res.json()).toMatchObject({ endpoints: [], next_page_uri: null })
  })

  test('a sha256:<hex> key in the config accepts the plain key', async () => {
    const hashed = `sha256:${createHash('sha256').update('s3cret').digest('hex')}`
    const { call } = api({ apiKeys: ['other', hashed] })
    expect((await call('GET', '/status', undefined, 's3cret')).status).toBe(200)
    expect((await call('GET', '/status', undefined, hashed)).status).toBe(401)
  })

  test('"Bearer" is case-insensitive; other schemes are refused', async () => {
    const { app } = api()
    expect((await app.request('/status', { headers: { authorization: `bearer ${KEY}` } })).status).toBe(200)
    expect((await app.request('/status', { headers: { authorization: `Basic ${btoa(`x:${KEY}`)}` } })).status).toBe(401)
  })

  test('no keys configured → 401 ERR_WARREN_6002 everywhere except /healthz and /readyz', async () => {
    const { call } = api({ apiKeys: [] })
    for (const path of ['/endpoints', '/status', '/openapi.json', '/nope']) {
      const res = await call('GET', path)
      expect(res.status).toBe(401)
      const body = await res.json()
      expect(body.error_code).toBe('ERR_WARREN_6002')
      expect(body.msg).toContain('api_keys')
    }
    expect((await call('GET', '/healthz', undefined, null)).status).toBe(200)
    expect((await call('GET', '/readyz', undefined, null)).status).toBe(200)
  })

  test('unknown routes are 401 without a key (no route discovery), 404 with one', async () => {
    const { call } = api()
    expect((await call('GET', '/secret-route', undefined, null)).status).toBe(401)
    const res = await call('GET', '/secret-route')
    expect(res.status).toBe(404)
    expect((await res.json()).error_code).toBe('ERR_WARREN_6003')
  })

  test('keyDigests() rejects a malformed "sha256:" key; keyMatches() compares digests', () => {
    expect(() => keyDigests(['sha256:abc'])).toThrow(/api_keys\[0\]: "sha256:" must be followed by 64 hex digits/)
    const digests = keyDigests(['a', `sha256:${createHash('sha256').update('b').digest('hex')}`])
    expect(keyMatches('a', digests)).toBe(true)
    expect(keyMatches('b', digests)).toBe(true)
    expect(keyMatches('c', digests)).toBe(false)
    expect(keyMatches('', digests)).toBe(false)
  })
})

describe('health, readiness and status', () => {
  test('/readyz is 503 before the first load, 200 after', async () => {
    const { call, reload } = api({ load: false })
    const before = await call('GET', '/readyz', undefined, null)
    expect(before.status).toBe(503)
    expect(await before.json()).toEqual({ status: 'loading', version: 0 })
    reload('start')
    expect(await (await call('GET', '/readyz', undefined, null)).json()).toEqual({ status: 'ready', version: 1 })
  })

  test('/status reports files and endpoints, with file:line:col issues', async () => {
    const { call } = api({
      files: {
        'good.yml': 'url: http://good.example.com\ntraffic_policy:\n  on_http_request:\n    - actions: [{type: custom-response}]\n',
        'bad.yml': 'url: ftp://bad.example.com\n',
      },
    })
    const res = await call('GET', '/status')
    expect(res.status).toBe(200)
    const body = await res.json()
    expect(body).toMatchObject({ ready: true, version: 1, serving: 1 })
    expect(body.files).toContainEqual({ file: 'good.yml', status: 'ok', issues: [], servingPrevious: false })
    const bad = body.files.find((f: { file: string }) => f.file === 'bad.yml')
    expect(bad.status).toBe('error')
    expect(bad.issues[0]).toMatchObject({ file: 'bad.yml', line: 1, col: 6, code: 'ERR_WARREN_1004' })
    expect(body.endpoints).toContainEqual(expect.objectContaining({ url: 'http://good.example.com', status: 'enabled', source: 'good.yml' }))
    expect(body.endpoints).toContainEqual(expect.objectContaining({ source: 'bad.yml', status: 'error' }))
  })
})

describe('OpenAPI document', () => {
  test('is served and lists exactly the routes the app answers', async () => {
    const { app, call } = api()
    const res = await call('GET', '/openapi.json')
    expect(res.status).toBe(200)
    const doc = await res.json()
    expect(doc.openapi).toBe('3.1.0')
    const served = new Set(
      app.routes
        .filter((r) => r.method !== 'ALL')
        .map((r) => `${r.method.toLowerCase()} ${r.path.replace(/\/$/, '').replace(/:(\w+)/g, '{$1}') || '/'}`),
    )
    const documented = new Set(Object.entries(OPENAPI.paths).flatMap(([path, ops]) => Object.keys(ops).filter((k) => k !== 'parameters').map((m) => `${m} ${path}`)))
    expect([...served].sort()).toEqual([...documented].sort())
  })

  test('request schemas come from the validators (unknown keys refused)', () => {
    const create = OPENAPI.paths['/endpoints'].post.requestBody.content['application/json'].schema as { required?: string[]; additionalProperties?: unknown; properties: Record<string, unknown> }
    expect(create.required).toEqual(['url'])
    expect(create.additionalProperties).toBe(false)
    expect(Object.keys(create.properties).sort()).toEqual(['bindings', 'description', 'metadata', 'pooling_enabled', 'traffic_policy', 'type', 'url'])
  })
})
