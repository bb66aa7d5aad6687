import * as v from 'valibot'
import { markStreamed } from '../../lib/streamed-body.ts'
import { CONTINUE, defineAction } from '../types.ts'

const ALGORITHMS = ['gzip', 'deflate', 'br', 'compress'] as const
type Algorithm = (typeof ALGORITHMS)[number]

/** The CompressionStream format for each content-coding warren can produce (`compress`, LZW, it cannot). */
const FORMATS: Partial<Record<Algorithm, string>> = { gzip: 'gzip', deflate: 'deflate', br: 'brotli' }

/** Media types that are compressed already, or streams that must not wait for a compressor's buffer. */
const SKIP_TYPES = /^(image\/(?!svg)|audio\/|video\/|font\/woff2?|text\/event-stream|application\/(zip|gzip|x-gzip|x-bzip2|x-xz|zstd|x-7z-compressed|x-rar-compressed|wasm|pdf|octet-stream))/i

/**
 * Picks the coding with the highest q-value in `Accept-Encoding` (RFC 9110 §12.5.3) among
 * `allowed`; on a tie the one listed first in `allowed` wins. Undefined when none is acceptable.
 */
export function negotiate(accept: string | null, allowed: readonly Algorithm[]): Algorithm | undefined {
  if (!accept) return undefined
  const q = new Map<string, number>()
  for (const part of accept.split(',')) {
    const [name, ...params] = part.trim().toLowerCase().split(';')
    if (!name) continue
    let weight = 1
    for (const p of params) {
      const m = /^\s*q\s*=\s*([0-9.]+)\s*$/.exec(p)
      if (m) weight = Math.min(1, Number(m[1]) || 0)
    }
    q.set(name, weight)
  }
  let best: Algorithm | undefined
  let bestQ = 0
  for (const alg of allowed) {
    if (!FORMATS[alg]) continue
    const weight = q.get(alg) ?? (alg === 'gzip' ? q.get('x-gzip') : undefined) ?? q.get('*') ?? 0
    if (weight > bestQ) {
      best = alg
      bestQ = weight
    }
  }
  return best
}

/**
 * Compresses the response body with gzip, deflate or br as the client's `Accept-Encoding` allows,
 * while it streams (nothing is buffered). Bodies already encoded, shorter than `min_length` (by
 * Content-Length; ngrok has no minimum, so neither does the default), of compressed media types or
 * marked `Cache-Control: no-transform` pass unchanged.
 */
export const compressResponse = defineAction({
  type: 'compress-response',
  phases: ['on_http_response'],
  terminating: false,
  config: v.strictObject({
    /** Codings to offer, in order of preference on equal q-values; default gzip, deflate, br, compress (`compress` is accepted but never chosen). */
    algorithms: v.optional(
      v.pipe(
        v.array(v.picklist(ALGORITHMS)),
        v.minLength(1, 'needs at least one algorithm'),
        v.check((a) => new Set(a).size === a.length, 'each algorithm may be listed once'),
      ),
      [...ALGORITHMS],
    ),
    /** Bodies whose Content-Length is below this many bytes are sent as they are; default 0 (no minimum, as in ngrok). */
    min_length: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0)), 0),
  }),
  build(config) {
    const allowed = config.algorithms
    const minLength = config.min_length
    return function compressResponse(ex) {
      const res = ex.response
      const result = { already_compressed: false, negotiated_algorithm: '' }
      ex.actions['compress'] = result
      if (!res || !res.body || ex.method === 'HEAD' || res.status < 200 || res.status === 204 || res.status === 206 || res.status === 304) return CONTINUE
      const encoding = res.headers.get('content-encoding')
      if (encoding && encoding.trim().toLowerCase() !== 'identity') {
        result.already_compressed = true
        return CONTINUE
      }
      const alg = negotiate(ex.headers.get('accept-encoding'), allowed)
      if (!alg) return CONTINUE
      const length = res.headers.get('content-length')
      if (minLength > 0 && length !== null && Number(length) < minLength) return CONTINUE
      if (SKIP_TYPES.test(res.headers.get('content-type') ?? '')) return CONTINUE
      if (/(^|,)\s*no-transform\s*(,|$)/i.test(res.headers.get('cache-control') ?? '')) return CONTINUE
      const compressor = new CompressionStream(FORMATS[alg] as ConstructorParameters<typeof CompressionStream>[0])
      res.body = markStreamed(res.body.pipeThrough(compressor as unknown as TransformStream<Uint8Array, Uint8Array>))
      res.headers.delete('content-length')
      res.headers.set('content-encoding', alg)
      const vary = res.headers.get('vary')
      if (!vary) res.headers.set('vary', 'Accept-Encoding')
      else if (!/(^|,)\s*(accept-encoding|\*)\s*(,|$)/i.test(vary)) res.headers.set('vary', `${vary}, Accept-Encoding`)
      // The bytes change, so a strong validator no longer holds.
      const etag = res.headers.get('etag')
      if (etag && !etag.startsWith('W/')) res.headers.set('etag', `W/${etag}`)
      result.negotiated_algorithm = alg
      return CONTINUE
    }
  },
})
