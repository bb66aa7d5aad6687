import { createHash, timingSafeEqual } from 'node:crypto'
import type { MiddlewareHandler } from 'hono'
import { CODES, WarrenError } from '../lib/errors.ts'
import { ApiError, errorResponse } from './errors.ts'

const SHA256_KEY = /^sha256:([0-9a-f]{64})$/i

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest()
}

/**
 * SHA-256 digests of the configured `api_keys` (plain text or `sha256:<hex>`). Comparing digests of a
 * fixed size means neither a key's length nor its prefix leaks through timing.
 */
export function keyDigests(keys: readonly string[]): Buffer[] {
  return keys.map((key, i) => {
    if (!key.toLowerCase().startsWith('sha256:')) return sha256(key)
    const hex = SHA256_KEY.exec(key)?.[1]
    if (!hex) throw new WarrenError(CODES.CONFIG_INVALID, `api_keys[${i}]: "sha256:" must be followed by 64 hex digits`)
    return Buffer.from(hex, 'hex')
  })
}

/** True when `presented` matches one of `digests`; every digest is compared, so timing does not tell which. */
export function keyMatches(presented: string, digests: readonly Buffer[]): boolean {
  const digest = sha256(presented)
  let ok = false
  for (const d of digests) ok = timingSafeEqual(digest, d) || ok
  return ok
}

/** Requires `Authorization: Bearer <key>`. Without configured keys every request is refused. */
export function bearerAuth(digests: readonly Buffer[]): MiddlewareHandler {
  return async function bearerAuth(c, next) {
    const header = c.req.header('authorization')
    const key = header ? /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header)?.[1] : undefined
    let refusal: ApiError | undefined
    if (digests.length === 0)
      refusal = new ApiError(CODES.API_NO_KEYS, 401, 'The API is disabled: warren.yaml sets no api_keys (add one, e.g. api_keys: ["sha256:<hex of your key>"])')
    else if (!key) refusal = new ApiError(CODES.API_UNAUTHORIZED, 401, 'Missing API key: send "Authorization: Bearer <key>"')
    else if (!keyMatches(key, digests)) refusal = new ApiError(CODES.API_UNAUTHORIZED, 401, 'Invalid API key')
    if (refusal) {
      const res = errorResponse(c, refusal)
      res.headers.set('www-authenticate', 'Bearer realm="warren"')
      return res
    }
    await next()
  }
}
