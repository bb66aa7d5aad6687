import { describe, expect, test } from 'bun:test'
import type { Endpoint } from '../../endpoints/endpoint.ts'
import { exchange, loadError, responded, run, type ActionCase } from '../../../test/helpers/actions.ts'
import type { Routing } from '../types.ts'

const target = { id: 'ep_internal', urlText: 'https://api.internal' } as Endpoint

/** Routing as the data path provides it: one internal endpoint, `api.internal`. */
const routing: Routing = {
  chain: ['ep_test'],
  resolveInternal(url) {
    if (url.hostname === 'api.internal') return { endpoint: target }
    if (url.hostname === 'loop.internal') return { error: { code: 'ERR_WARREN_2106', message: 'Forwarding to https://loop.internal would loop.' } }
    return { error: { code: 'ERR_WARREN_3200', message: `The internal endpoint ${url.origin} is offline.` } }
  },
  fetchInternal: () => Promise.reject(new Error('unused')),
}

describe('forward-internal config', () => {
  test.each<{ desc: string; c: Partial<ActionCase>; want: RegExp | undefined }>([
    { desc: 'https target', c: { config: { url: 'https://api.internal' } }, want: undefined },
    { desc: 'http target with port', c: { config: { url: 'http://api.internal:8080' } }, want: undefined },
    { desc: 'url required', c: { config: {} }, want: /url/ },
    { desc: 'public target', c: { config: { url: 'https://api.example.com' } }, want: /not an internal endpoint URL/ },
    { desc: 'other protocol', c: { config: { url: 'tcp://db.internal:5432' } }, want: /a http:\/\/ endpoint can only forward to http\/https:\/\/ internal endpoints, not tcp:\/\// },
    { desc: 'path not allowed', c: { config: { url: 'https://api.internal/v1' } }, want: /a path, query or fragment is not allowed/ },
    { desc: 'bad on_error', c: { config: { url: 'https://api.internal', on_error: 'retry' } }, want: /on_error/ },
    { desc: 'templated url checked per request', c: { config: { url: 'https://${vars.svc}.internal' } }, want: undefined },
    { desc: 'on_tcp_connect of an http endpoint', c: { phase: 'on_tcp_connect', config: { url: 'https://api.internal' } }, want: /runs in on_http_request/ },
    { desc: 'tcp endpoint to a tcp internal endpoint', c: { phase: 'on_tcp_connect', scheme: 'tcp', config: { url: 'tcp://db.internal:5432' } }, want: undefined },
  ])('$desc', ({ c, want }) => {
    const got = loadError({ type: 'forward-internal', ...c })
    if (want) expect(got).toMatch(want)
    else expect(got).toBeUndefined()
  })
})

describe('forward-internal at runtime', () => {
  test('resolves through the routing and forwards', async () => {
    const outcome = await run({ type: 'forward-internal', config: { url: 'https://api.internal' } }, exchange('http://a.test/', { routing }))
    expect(outcome).toMatchObject({ kind: 'forward', target: { kind: 'internal', endpoint: target } })
  })

  test('templated URL', async () => {
    const ex = exchange('http://a.test/', { routing })
    ex.vars['svc'] = 'api'
    expect(await run({ type: 'forward-internal', config: { url: 'https://${vars.svc}.internal' } }, ex)).toMatchObject({ kind: 'forward' })
  })

  test.each<{ desc: string; url: string; onError?: string; status?: number; code: string }>([
    { desc: 'offline target halts with 404', url: 'https://gone.internal', status: 404, code: 'ERR_WARREN_3200' },
    { desc: 'loop halts with 508', url: 'https://loop.internal', status: 508, code: 'ERR_WARREN_2106' },
    { desc: 'offline target with on_error continue', url: 'https://gone.internal', onError: 'continue', code: 'ERR_WARREN_3200' },
  ])('$desc', async ({ url, onError, status, code }) => {
    const ex = exchange('http://a.test/', { routing })
    const outcome = await run({ type: 'forward-internal', config: { url, ...(onError ? { on_error: onError } : {}) } }, ex)
    if (status) {
      expect(responded(outcome)!.status).toBe(status)
      expect(responded(outcome)!.headers.get('warren-error-code')).toBe(code)
      return
    }
    expect(outcome.kind).toBe('continue')
    expect(ex.actions['forward_internal']).toMatchObject({ url, error: { code } })
  })

  test('on_error continue makes it non-terminating for cloud endpoints', async () => {
    const { compilePolicy, validatePolicy } = await import('../engine.ts')
    const policy = (onError: string) => validatePolicy({ on_http_request: [{ actions: [{ type: 'forward-internal', config: { url: 'https://api.internal', on_error: onError } }] }] })
    expect(() => compilePolicy(policy('halt'), { scheme: 'http', cloud: true })).not.toThrow()
    expect(() => compilePolicy(policy('continue'), { scheme: 'http', cloud: true })).toThrow(/terminating action/)
  })
})
