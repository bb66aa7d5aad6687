import { describe, expect, test } from 'bun:test'
import { exchange, loadError, responded, run } from '../../../test/helpers/actions.ts'

describe('redirect config', () => {
  test.each<{ desc: string; config: unknown; want: RegExp | undefined }>([
    { desc: 'to only', config: { to: 'https://example.com/' }, want: undefined },
    { desc: 'from and to', config: { from: '/old/(.*)', to: '/new/$1' }, want: undefined },
    { desc: 'to is required', config: { from: '/old' }, want: /^ERR_WARREN_2001: .*to/ },
    { desc: 'invalid regexp', config: { from: '(unclosed', to: '/x' }, want: /^ERR_WARREN_2001: .*invalid regular expression "\(unclosed"/ },
    { desc: 'status must be 3xx', config: { to: '/x', status_code: 200 }, want: /status_code/ },
    { desc: 'bad template', config: { to: '${req.url.path' }, want: /^ERR_WARREN_2002: .*unclosed/ },
    { desc: 'RE2 inline flag', config: { from: '(?i)/OLD', to: '/new' }, want: undefined },
  ])('$desc', ({ config, want }) => {
    const got = loadError({ type: 'redirect', config })
    if (want) expect(got).toMatch(want)
    else expect(got).toBeUndefined()
  })
})

describe('redirect at runtime', () => {
  test.each<{ desc: string; url: string; config: Record<string, unknown>; status?: number; location?: string; headers?: Record<string, string> }>([
    { desc: 'path with captures, default 302', url: 'http://a.test/old/x?y=1', config: { from: '/old/(.*)', to: '/new/$1' }, status: 302, location: 'http://a.test/new/x?y=1' },
    { desc: 'whole URL when from is omitted', url: 'http://a.test/p', config: { to: 'https://b.test/q', status_code: 301 }, status: 301, location: 'https://b.test/q' },
    { desc: 'anchored full-URL pattern to another host', url: 'http://a.test/old/foo', config: { from: '^https?://[^/]+/old/(.*)$', to: 'https://new.test/new/$1' }, status: 302, location: 'https://new.test/new/foo' },
    { desc: 'no match: request continues', url: 'http://a.test/other', config: { from: '/old', to: '/new' } },
    { desc: 'unchanged URL: request continues', url: 'http://a.test/same', config: { from: '/same', to: '/same' } },
    { desc: 'template in to and extra headers', url: 'http://a.test/p', config: { to: 'http://a.test/home${req.url.path}', status_code: 308, headers: { 'x-why': 'moved ${req.method}' } }, status: 308, location: 'http://a.test/home/p', headers: { 'x-why': 'moved GET' } },
    // A path `to` keeps scheme and authority, also when `from` matched the authority (shared with url-rewrite).
    { desc: 'from names the authority, to is a path', url: 'http://a.test/products/7', config: { from: '${req.url.authority}/products/([0-9]+)', to: '/products.php?id=$1' }, status: 302, location: 'http://a.test/products.php?id=7' },
    { desc: 'case-insensitive (?i)', url: 'http://a.test/OLD', config: { from: '(?i)/old', to: '/new' }, status: 302, location: 'http://a.test/new' },
  ])('$desc', async ({ url, config, status, location, headers }) => {
    const ex = exchange(url)
    const outcome = await run({ type: 'redirect', config }, ex)
    if (status === undefined) {
      expect(outcome.kind).toBe('continue')
      return
    }
    const res = responded(outcome)!
    expect(res.status).toBe(status)
    expect(res.headers.get('location')).toBe(location!)
    for (const [k, v] of Object.entries(headers ?? {})) expect(res.headers.get(k)).toBe(v)
    expect(ex.actions['redirect']).toMatchObject({ url: location, error: { code: '' } })
  })
})
