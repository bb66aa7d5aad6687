import { describe, expect, test } from 'bun:test'
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib'
import { exchange, loadError, run } from '../../../test/helpers/actions.ts'
import { negotiate } from './compress-response.ts'

const TEXT = 'hello compressible world '.repeat(200)

function response(headers: Record<string, string>, body: string | null = TEXT) {
  return { status: 200, headers: new Headers(headers), body: body === null ? null : new Response(body).body! }
}

describe('compress-response config', () => {
  test.each<{ desc: string; config: unknown; want: RegExp | undefined }>([
    { desc: 'defaults', config: undefined, want: undefined },
    { desc: 'subset', config: { algorithms: ['br', 'gzip'] }, want: undefined },
    { desc: 'unknown algorithm', config: { algorithms: ['zip'] }, want: /algorithms/ },
    { desc: 'duplicates', config: { algorithms: ['gzip', 'gzip'] }, want: /listed once/ },
    { desc: 'empty', config: { algorithms: [] }, want: /at least one algorithm/ },
    { desc: 'min_length', config: { min_length: 1024 }, want: undefined },
    { desc: 'negative min_length', config: { min_length: -1 }, want: /min_length/ },
  ])('$desc', ({ config, want }) => {
    const got = loadError({ type: 'compress-response', phase: 'on_http_response', ...(config === undefined ? {} : { config }) })
    if (want) expect(got).toMatch(want)
    else expect(got).toBeUndefined()
  })
  test('only on_http_response', () => {
    expect(loadError({ type: 'compress-response' })).toMatch(/cannot run in on_http_request/)
  })
})

describe('negotiate()', () => {
  test.each<{ accept: string | null; allowed?: ('gzip' | 'deflate' | 'br' | 'compress')[]; want: string | undefined }>([
    { accept: 'gzip, deflate, br', want: 'gzip' },
    { accept: 'gzip;q=0.5, br', want: 'br' },
    { accept: 'gzip;q=1.0, br; q=0.5, *;q=0', want: 'gzip' },
    { accept: '*', want: 'gzip' },
    { accept: 'identity', want: undefined },
    { accept: 'br;q=0, gzip;q=0', want: undefined },
    { accept: 'compress', want: undefined },
    { accept: 'gzip, br', allowed: ['br', 'gzip'], want: 'br' },
    { accept: null, want: undefined },
  ])('$accept → $want', ({ accept, allowed, want }) => {
    expect<string | undefined>(negotiate(accept, allowed ?? ['gzip', 'deflate', 'br', 'compress'])).toBe(want)
  })
})

describe('compress-response at runtime', () => {
  test.each<{ alg: string; accept: string; decode: (b: Buffer) => Buffer }>([
    { alg: 'gzip', accept: 'gzip', decode: gunzipSync },
    { alg: 'deflate', accept: 'deflate', decode: inflateSync },
    { alg: 'br', accept: 'br', decode: brotliDecompressSync },
  ])('$alg: streams, drops Content-Length, sets Content-Encoding and Vary', async ({ alg, accept, decode }) => {
    const ex = exchange('http://a.test/', { headersInit: { 'accept-encoding': accept }, response: response({ 'content-type': 'text/plain', 'content-length': String(TEXT.length), etag: '"v1"' }) })
    await run({ type: 'compress-response', phase: 'on_http_response' }, ex)
    const res = ex.response!
    expect(res.headers.get('content-encoding')).toBe(alg)
    expect(res.headers.has('content-length')).toBe(false)
    expect(res.headers.get('vary')).toBe('Accept-Encoding')
    expect(res.headers.get('etag')).toBe('W/"v1"')
    const bytes = Buffer.from(await new Response(res.body).arrayBuffer())
    expect(bytes.length).toBeLessThan(TEXT.length)
    expect(decode(bytes).toString()).toBe(TEXT)
    expect(ex.actions['compress']).toEqual({ already_compressed: false, negotiated_algorithm: alg })
  })

  // ngrok compresses whatever the client accepts, however short: no minimum unless min_length asks.
  test.each<{ desc: string; length: number; config?: Record<string, unknown> }>([
    { desc: 'a 20-byte body by default', length: 20 },
    { desc: 'a body exactly min_length long', length: 64, config: { min_length: 64 } },
  ])('compresses $desc', async ({ length, config }) => {
    const body = 'x'.repeat(length)
    const ex = exchange('http://a.test/', { headersInit: { 'accept-encoding': 'gzip' }, response: response({ 'content-type': 'text/plain', 'content-length': String(length) }, body) })
    await run({ type: 'compress-response', phase: 'on_http_response', ...(config ? { config } : {}) }, ex)
    expect(ex.response!.headers.get('content-encoding')).toBe('gzip')
    expect(ex.response!.headers.has('content-length')).toBe(false)
    expect(gunzipSync(Buffer.from(await new Response(ex.response!.body).arrayBuffer())).toString()).toBe(body)
  })

  test.each<{ desc: string; headers: Record<string, string>; accept?: string; method?: string; already?: boolean; config?: Record<string, unknown> }>([
    { desc: 'already encoded', headers: { 'content-encoding': 'gzip' }, already: true },
    { desc: 'below min_length', headers: { 'content-length': '100' }, config: { min_length: 1024 } },
    { desc: 'no Accept-Encoding', headers: {}, accept: '' },
    { desc: 'image', headers: { 'content-type': 'image/png' } },
    { desc: 'event stream', headers: { 'content-type': 'text/event-stream' } },
    { desc: 'no-transform', headers: { 'cache-control': 'public, no-transform' } },
    { desc: 'HEAD', headers: {}, method: 'HEAD' },
  ])('left alone: $desc', async ({ headers, accept, method, already, config }) => {
    const ex = exchange('http://a.test/', { headersInit: accept === '' ? {} : { 'accept-encoding': accept ?? 'gzip' }, response: response(headers), ...(method ? { method } : {}) })
    const before = ex.response!.body
    await run({ type: 'compress-response', phase: 'on_http_response', ...(config ? { config } : {}) }, ex)
    expect(ex.response!.body).toBe(before)
    expect(ex.actions['compress']).toEqual({ already_compressed: already ?? false, negotiated_algorithm: '' })
  })
})
