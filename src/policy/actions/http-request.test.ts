import { afterAll, describe, expect, test } from 'bun:test'
import type { Endpoint } from '../../endpoints/endpoint.ts'
import { exchange, loadError, responded, run } from '../../../test/helpers/actions.ts'
import type { Routing } from '../types.ts'
import { retryExpression } from './http-request.ts'

let flaky = 0
/** The Warren-Req-Id of each request to /ids. */
const ids: (string | null)[] = []
const upstream = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  async fetch(req) {
    const url = new URL(req.url)
    if (url.pathname === '/flaky') return new Response(`try ${++flaky}`, { status: flaky < 3 ? 500 : 200 })
    if (url.pathname === '/ids') {
      ids.push(req.headers.get('warren-req-id'))
      return new Response(null, { status: 500 })
    }
    if (url.pathname === '/slow') return Bun.sleep(3000).then(() => new Response('late'))
    if (url.pathname === '/big') return new Response('x'.repeat(300 * 1024))
    if (url.pathname === '/hop') return new Response(null, { status: 302, headers: { location: '/echo?from=hop' } })
    return Response.json({ method: req.method, path: url.pathname + url.search, body: await req.text(), headers: Object.fromEntries(req.headers) })
  },
})
afterAll(() => upstream.stop(true))
const base = `http://127.0.0.1:${upstream.port}`

describe('http-request config', () => {
  test.each<{ desc: string; config: unknown; want: RegExp | undefined }>([
    { desc: 'url only', config: { url: 'https://auth.internal/check' }, want: undefined },
    { desc: 'url required', config: {}, want: /url/ },
    { desc: 'method lower-case accepted', config: { url: base, method: 'post' }, want: undefined },
    { desc: 'unknown method', config: { url: base, method: 'TRACE' }, want: /must be one of GET, PUT, POST, PATCH, DELETE, OPTIONS/ },
    { desc: 'timeout over 30s', config: { url: base, timeout: '1m' }, want: /between 1s and 30s/ },
    { desc: 'redirects over 100', config: { url: base, max_redirects: 101 }, want: /max_redirects/ },
    { desc: 'retry condition compiles with attempts/last_attempt', config: { url: base, retry_condition: 'last_attempt.res.status_code >= 500 && attempts < 3' }, want: undefined },
    { desc: 'bad retry condition', config: { url: base, retry_condition: 'attempts <' }, want: /^ERR_WARREN_2002: / },
    { desc: 'bad on_error', config: { url: base, on_error: 'ignore' }, want: /on_error/ },
  ])('$desc', ({ config, want }) => {
    const got = loadError({ type: 'http-request', config })
    if (want) expect(got).toMatch(want)
    else expect(got).toBeUndefined()
  })
})

describe('retryExpression()', () => {
  test.each([
    ['attempts < 3', 'actions.ngrok.http_request.attempts < 3'],
    ["last_attempt.error != ''", "actions.ngrok.http_request.last_attempt.error != ''"],
    ["'attempts' == x.attempts", "'attempts' == x.attempts"],
  ])('%s', (input, want) => expect(retryExpression(input)).toBe(want))
})

describe('http-request at runtime', () => {
  test('POST with templated headers, query and body; result in actions.ngrok.http_request', async () => {
    const ex = exchange('http://a.test/p')
    const config = { url: `${base}/echo`, method: 'POST', headers: { 'x-path': '${req.url.path}' }, query_params: [{ key: 'ip', value: '${conn.client_ip}' }], body: '{"p":"${req.url.path}"}' }
    expect((await run({ type: 'http-request', config }, ex)).kind).toBe('continue')
    const result = ex.actions['http_request'] as { res: { status_code: bigint; body: string }; req: { url: string }; attempts: unknown[]; error: { code: string } }
    expect(result.res.status_code).toBe(200n)
    expect(result.req.url).toBe(`${base}/echo?ip=203.0.113.7`)
    expect(result.attempts).toHaveLength(1)
    expect(result.error.code).toBe('')
    const seen = JSON.parse(result.res.body)
    expect(seen).toMatchObject({ method: 'POST', path: '/echo?ip=203.0.113.7', body: '{"p":"/p"}' })
    expect(seen.headers).toMatchObject({ 'x-path': '/p', 'x-forwarded-for': '203.0.113.7', 'warren-req-type': 'http-request' })
    expect(seen.headers['warren-req-id']).toMatch(/^[0-9a-f-]{36}$/)
  })

  test('all attempts of one side request share its Warren-Req-Id; the next side request gets another', async () => {
    ids.length = 0
    const config = { url: `${base}/ids`, retry_condition: 'attempts < 2' }
    await run({ type: 'http-request', config }, exchange())
    await run({ type: 'http-request', config }, exchange())
    expect(ids).toHaveLength(4)
    expect(ids[0]).toMatch(/^[0-9a-f-]{36}$/)
    expect(ids[1]).toBe(ids[0])
    expect(ids[3]).toBe(ids[2])
    expect(ids[2]).not.toBe(ids[0])
  })

  test('later actions read the response', async () => {
    const { compile } = await import('../../../test/helpers/actions.ts')
    const { runPhase } = await import('../engine.ts')
    const rules = compile({
      on_http_request: [
        { actions: [{ type: 'http-request', config: { url: `${base}/echo` } }] },
        { expressions: ['actions.ngrok.http_request.res.status_code == 200'], actions: [{ type: 'custom-response', config: { body: '${actions.ngrok.http_request.res.body}' } }] },
      ],
    }).on_http_request
    const outcome = await runPhase(rules, exchange())
    expect(JSON.parse(await responded(outcome)!.text())).toMatchObject({ path: '/echo' })
  })

  test('retry_condition retries up to 3 times', async () => {
    flaky = 0
    const ex = exchange()
    await run({ type: 'http-request', config: { url: `${base}/flaky`, retry_condition: 'last_attempt.res.status_code >= 500' } }, ex)
    const result = ex.actions['http_request'] as { res: { status_code: bigint; body: string }; attempts: unknown[] }
    expect(result.attempts).toHaveLength(3)
    expect(result.res).toMatchObject({ status_code: 200n, body: 'try 3' })
  })

  test.each<{ desc: string; config: Record<string, unknown>; message: RegExp }>([
    { desc: 'timeout', config: { url: `${base}/slow`, timeout: '1s' }, message: /timed out after 1s/ },
    { desc: 'body over 256 KiB', config: { url: `${base}/big` }, message: /response size exceeded/ },
    { desc: 'refused', config: { url: 'http://127.0.0.1:1/' }, message: /./ },
    { desc: 'not a URL', config: { url: '${req.url.path}' }, message: /not a valid URL/ },
  ])('failure ($desc): continue by default, 502 with on_error halt', async ({ config, message }) => {
    const ex = exchange()
    expect((await run({ type: 'http-request', config }, ex)).kind).toBe('continue')
    expect((ex.actions['http_request'] as { error: { code: string; message: string } }).error).toMatchObject({ code: 'ERR_WARREN_2107', message: expect.stringMatching(message) })
    const halted = responded(await run({ type: 'http-request', config: { ...config, on_error: 'halt' } }, exchange()))!
    expect(halted.status).toBe(502)
    expect(halted.headers.get('warren-error-code')).toBe('ERR_WARREN_2107')
  })

  test('redirects: returned as they are by default, followed up to max_redirects', async () => {
    const ex = exchange()
    await run({ type: 'http-request', config: { url: `${base}/hop` } }, ex)
    expect((ex.actions['http_request'] as { res: { status_code: bigint } }).res.status_code).toBe(302n)
    await run({ type: 'http-request', config: { url: `${base}/hop`, max_redirects: 1 } }, ex)
    expect(JSON.parse((ex.actions['http_request'] as { res: { body: string } }).res.body).path).toBe('/echo?from=hop')
  })

  test('.internal URLs go through the routing', async () => {
    const seen: string[] = []
    const routing: Routing = {
      chain: [],
      resolveInternal: (url) => (url.hostname === 'auth.internal' ? { endpoint: { id: 'ep_auth' } as Endpoint } : { error: { code: 'ERR_WARREN_3200', message: 'offline' } }),
      fetchInternal: async (endpoint, request) => {
        seen.push(`${endpoint.id} ${request.method} ${request.url}`)
        return new Response('ok from internal')
      },
    }
    const ex = exchange('http://a.test/', { routing })
    await run({ type: 'http-request', config: { url: 'https://auth.internal/check' } }, ex)
    expect(seen).toEqual(['ep_auth GET https://auth.internal/check'])
    expect((ex.actions['http_request'] as { res: { body: string } }).res.body).toBe('ok from internal')
  })
})
