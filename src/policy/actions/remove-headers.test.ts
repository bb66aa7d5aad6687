import { describe, expect, test } from 'bun:test'
import { exchange, loadError, run } from '../../../test/helpers/actions.ts'

describe('remove-headers config', () => {
  test.each<{ desc: string; config: unknown; phase?: 'on_http_request' | 'on_http_response'; want: RegExp | undefined }>([
    { desc: 'a list', config: { headers: ['x-a'] }, want: undefined },
    { desc: 'empty list', config: { headers: [] }, want: /needs at least one header/ },
    { desc: 'not a list', config: { headers: 'x-a' }, want: /^ERR_WARREN_2001: .*headers/ },
    { desc: 'host on the request', config: { headers: ['Host'] }, want: /must keep its host header/ },
    { desc: 'host on the response is fine', config: { headers: ['host'] }, phase: 'on_http_response', want: undefined },
  ])('$desc', ({ config, phase, want }) => {
    const got = loadError({ type: 'remove-headers', config, ...(phase ? { phase } : {}) })
    if (want) expect(got).toMatch(want)
    else expect(got).toBeUndefined()
  })
})

describe('remove-headers at runtime', () => {
  test('request: removes present headers, case-insensitively, and lists them', async () => {
    const ex = exchange('http://a.test/', { headersInit: { 'x-trace-id': 'abc', cookie: 'a=b' } })
    await run({ type: 'remove-headers', config: { headers: ['X-Trace-Id', 'x-absent', 'cookie'] } }, ex)
    expect(ex.headers.has('x-trace-id')).toBe(false)
    expect(ex.headers.has('cookie')).toBe(false)
    expect(ex.actions['remove_headers']).toEqual({ headers_removed: ['x-trace-id', 'cookie'] })
  })

  test('response', async () => {
    const ex = exchange('http://a.test/', { response: { status: 200, headers: new Headers({ server: 'nginx', 'x-powered-by': 'php' }), body: null } })
    await run({ type: 'remove-headers', phase: 'on_http_response', config: { headers: ['server', 'x-powered-by'] } }, ex)
    expect([...ex.response!.headers.keys()]).toEqual([])
  })
})
