import { describe, expect, test } from 'bun:test'
import { exchange, loadError, run } from '../../../test/helpers/actions.ts'

describe('log config', () => {
  test.each<{ desc: string; config: unknown; want: RegExp | undefined }>([
    { desc: 'metadata', config: { metadata: { a: 1 } }, want: undefined },
    { desc: 'metadata required', config: {}, want: /^ERR_WARREN_2001: .*metadata/ },
    { desc: 'empty metadata', config: { metadata: {} }, want: /needs at least one key/ },
    { desc: 'bad template', config: { metadata: { a: '${' } }, want: /^ERR_WARREN_2002: / },
  ])('$desc', ({ config, want }) => {
    const got = loadError({ type: 'log', config })
    if (want) expect(got).toMatch(want)
    else expect(got).toBeUndefined()
  })
})

describe('log at runtime', () => {
  test('evaluates metadata into JSON-safe values, merges into logMetadata, sets the result', async () => {
    const ex = exchange('http://a.test/p')
    ex.logMetadata['earlier'] = true
    await run({ type: 'log', config: { metadata: { message: 'hit ${req.url.path}', port: '${req.url.port}', nested: { ip: '${conn.client_ip}' } } } }, ex)
    const want = { message: 'hit /p', port: 80, nested: { ip: '203.0.113.7' } }
    expect(ex.logMetadata).toEqual({ earlier: true, ...want })
    expect(ex.actions['log']).toEqual({ metadata: want })
    expect(() => JSON.stringify(ex.logMetadata)).not.toThrow()
  })

  test('runs in every phase', () => {
    for (const phase of ['on_tcp_connect', 'on_http_request', 'on_http_response'] as const)
      expect(loadError({ type: 'log', phase, config: { metadata: { a: 1 } } })).toBeUndefined()
  })
})
