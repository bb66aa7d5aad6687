import { describe, expect, test } from 'bun:test'
import { exchange, loadError, run } from '../../../test/helpers/actions.ts'

describe('url-rewrite config', () => {
  test.each<{ desc: string; config: unknown; want: RegExp | undefined }>([
    { desc: 'from and to', config: { from: '/a', to: '/b' }, want: undefined },
    { desc: 'to is required', config: { from: '/a' }, want: /^ERR_WARREN_2001: .*to/ },
    { desc: 'invalid regexp', config: { from: '[', to: '/b' }, want: /invalid regular expression/ },
    { desc: 'unknown key', config: { from: '/a', to: '/b', flags: 'i' }, want: /flags/ },
    { desc: 'to only: the whole URL', config: { to: 'http://a.test/b' }, want: undefined },
  ])('$desc', ({ config, want }) => {
    const got = loadError({ type: 'url-rewrite', config })
    if (want) expect(got).toMatch(want)
    else expect(got).toBeUndefined()
  })
  test('rejects on_http_response', () => {
    expect(loadError({ type: 'url-rewrite', config: { to: '/b' }, phase: 'on_http_response' })).toMatch(/cannot run in on_http_response/)
  })
})

describe('url-rewrite at runtime', () => {
  test.each<{ desc: string; url: string; config: Record<string, unknown>; want: string; matches?: string[] }>([
    { desc: 'path segment', url: 'http://a.test/products', config: { from: '/products', to: '/products.php' }, want: 'http://a.test/products.php', matches: ['/products'] },
    { desc: 'every occurrence', url: 'http://a.test/x/x', config: { from: '/x', to: '/y' }, want: 'http://a.test/y/y', matches: ['/x', '/x'] },
    { desc: 'captures', url: 'http://a.test/users/42?v=1', config: { from: '/users/([0-9]+)', to: '/api/users?id=$1&' }, want: 'http://a.test/api/users?id=42&?v=1' },
    { desc: 'CEL interpolation before matching', url: 'http://a.test/p', config: { from: '^http://${req.url.host}/p$', to: 'http://a.test/q' }, want: 'http://a.test/q' },
    // A path `to` keeps the request's scheme and authority, also when `from` matched the authority.
    { desc: 'from names the authority, to is a path', url: 'http://a.test/products/42', config: { from: '${req.url.authority}/products/([0-9]+)', to: '/products.php?id=$1' }, want: 'http://a.test/products.php?id=42', matches: ['a.test/products/42'] },
    { desc: 'from names the authority with a port', url: 'http://a.test:8080/products/42', config: { from: '${req.url.authority}/products/([0-9]+)', to: '/products.php?id=$1' }, want: 'http://a.test:8080/products.php?id=42' },
    { desc: 'from names scheme and authority, to is a path', url: 'http://a.test/old', config: { from: 'http://${req.url.authority}/old', to: '/new' }, want: 'http://a.test/new' },
    { desc: 'no match leaves the URL', url: 'http://a.test/p', config: { from: '/zzz', to: '/q' }, want: 'http://a.test/p', matches: [] },
  ])('$desc', async ({ url, config, want, matches }) => {
    const ex = exchange(url)
    expect((await run({ type: 'url-rewrite', config }, ex)).kind).toBe('continue')
    expect(ex.url.href).toBe(want)
    expect(ex.headers.get('host')).toBe(new URL(url).host)
    expect(ex.actions['url_rewrite']).toMatchObject({ url: want, error: { code: '' }, ...(matches ? { matches } : {}) })
  })
})
