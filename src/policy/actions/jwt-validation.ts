import { createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose'
import * as v from 'valibot'
import { CODES, type ErrorCode } from '../../lib/errors.ts'
import { log } from '../../lib/log.ts'
import { errorResponse } from '../../proxy/errors.ts'
import { parseCookieHeader } from '../cookies.ts'
import { takeBody } from '../take-body.ts'
import { CONTINUE, defineAction, type HttpExchange } from '../types.ts'

/** Asymmetric JWS algorithms only: an HMAC key in a public JWKS would let anyone sign, and `none` signs nothing. */
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const

/** A fetched JWKS is used this long before it is fetched again (ngrok: about 15 minutes). */
export const JWKS_MAX_AGE_MS = 15 * 60_000
/** A token whose `kid` is not in the cached set fetches the set again, at most once per this long (key rotation; bounds what random kids can make the edge fetch). */
export const JWKS_REFETCH_COOLDOWN_MS = 5_000
/** How far `exp`, `nbf` and `iat` may be off because clocks differ. */
export const CLOCK_TOLERANCE_S = 30

const AllowList = v.strictObject({
  /** Accepted values, compared exactly (a trailing slash counts). */
  allow_list: v.pipe(v.array(v.strictObject({ value: v.pipe(v.string(), v.minLength(1, 'must not be empty')) })), v.minLength(1, 'needs at least one value')),
})

const Token = v.strictObject({
  /**
   * What kind of JWT: `jwt`, `access_token`, `id_token`, `plain` take any `typ`; `at+jwt` and `it+jwt`
   * require that `typ` header (RFC 9068 access tokens).
   */
  type: v.picklist(['jwt', 'access_token', 'at+jwt', 'id_token', 'it+jwt', 'plain']),
  /** Where the token is: a request `header`, a `body` field (JSON or form), or (warren) a `cookie` or `query` parameter. */
  method: v.picklist(['header', 'body', 'cookie', 'query']),
  /** The header, field, cookie or parameter name. */
  name: v.pipe(v.string(), v.minLength(1, 'must not be empty')),
  /** Text before the token in the value, e.g. `Bearer ` (compared case-insensitively); default none. */
  prefix: v.optional(v.string(), ''),
})

type TokenSpec = v.InferOutput<typeof Token>

/** What a failed check tells the client and the result variables. */
interface Failure {
  code: ErrorCode
  message: string
  /** RFC 6750 error for WWW-Authenticate; absent when no token was presented at all. */
  bearerError?: 'invalid_token' | 'invalid_request'
}

/** One token as the result variable `tokens` lists it. */
interface TokenResult {
  type: string
  method: string
  name: string
  header: Record<string, unknown>
  payload: JWTPayload
}

async function bodyFields(ex: HttpExchange): Promise<Record<string, unknown> | undefined> {
  if (!['POST', 'PUT', 'PATCH'].includes(ex.method)) return undefined
  const taken = await takeBody(ex.body)
  ex.body = taken.body
  if (!taken.complete) return undefined
  const text = taken.bytes.toString('utf8')
  const type = ex.headers.get('content-type') ?? ''
  if (/^application\/x-www-form-urlencoded\b/i.test(type)) return Object.fromEntries(new URLSearchParams(text))
  if (/^application\/([\w.+-]*\+)?json\b/i.test(type)) {
    try {
      const doc: unknown = JSON.parse(text)
      return doc !== null && typeof doc === 'object' && !Array.isArray(doc) ? (doc as Record<string, unknown>) : undefined
    } catch {
      return undefined
    }
  }
  return undefined
}

/** The raw token `spec` names in the request, or undefined when it is not there. */
async function find(ex: HttpExchange, spec: TokenSpec, body: () => Promise<Record<string, unknown> | undefined>): Promise<string | undefined> {
  let value: string | undefined
  if (spec.method === 'header') value = ex.headers.get(spec.name) ?? undefined
  else if (spec.method === 'query') value = ex.url.searchParams.get(spec.name) ?? undefined
  else if (spec.method === 'cookie') value = parseCookieHeader(ex.headers.get('cookie') ? [ex.headers.get('cookie')!] : [])[spec.name]?.[0]?.value
  else {
    const field = (await body())?.[spec.name]
    value = typeof field === 'string' ? field : undefined
  }
  if (value === undefined) return undefined
  if (spec.prefix) {
    if (value.slice(0, spec.prefix.length).toLowerCase() !== spec.prefix.toLowerCase()) return undefined
    value = value.slice(spec.prefix.length)
  }
  value = value.trim()
  return value === '' ? undefined : value
}

/** Why jose refused a token, in words a client may see (no key material, no token text). */
function failureOf(err: unknown): Failure {
  const invalid = (message: string): Failure => ({ code: CODES.JWT_INVALID, message, bearerError: 'invalid_token' })
  if (err instanceof errors.JWTExpired) return invalid('the token has expired')
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'iss') return invalid('the token\'s issuer is not allowed')
    if (err.claim === 'aud') return invalid('the token\'s audience is not allowed')
    if (err.claim === 'nbf') return invalid('the token is not valid yet')
    return invalid(`the token's "${err.claim}" claim is not valid`)
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return invalid('the token\'s signing algorithm is not allowed')
  if (err instanceof errors.JWSSignatureVerificationFailed) return invalid('the token\'s signature is not valid')
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) return invalid('no key of the JWKS matches the token')
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid || err instanceof TypeError || (err instanceof errors.JOSEError && /JWKS|response/i.test(err.message)))
    return { code: CODES.JWKS_UNAVAILABLE, message: 'the signing keys (JWKS) could not be fetched', bearerError: 'invalid_token' }
  if (err instanceof errors.JWTInvalid || err instanceof errors.JWSInvalid || err instanceof errors.JOSENotSupported) return invalid('the token is not a valid signed JWT')
  return invalid('the token could not be validated')
}

/**
 * Validates JSON Web Tokens against the signing keys of the allowed issuers (JWKS URLs, cached and
 * fetched again when a token names an unknown key), the allowed algorithms, issuers and audiences,
 * and `exp`/`nbf`. Every configured token must be present and valid; otherwise 401 with a Bearer
 * `WWW-Authenticate`. Signatures are checked by `jose`.
 */
export const jwtValidation = defineAction({
  type: 'jwt-validation',
  phases: ['on_http_request'],
  terminating: false,
  config: v.strictObject({
    /** Accepted `iss` values (at least one). */
    issuer: AllowList,
    /** Accepted `aud` values; the token's `aud` must hold at least one. Omitted: any audience. */
    audience: v.optional(AllowList),
    /** Where the tokens are. */
    http: v.strictObject({
      /** Every listed token must be present and valid (at least one). */
      tokens: v.pipe(v.array(Token), v.minLength(1, 'needs at least one token')),
    }),
    /** How the tokens are signed. */
    jws: v.strictObject({
      /** Algorithms a token may use (asymmetric only; at least one). */
      allowed_algorithms: v.pipe(v.array(v.picklist(ALGORITHMS)), v.minLength(1, 'needs at least one algorithm')),
      keys: v.strictObject({
        sources: v.strictObject({
          /** JWKS URLs (https://, or http:// for a key server on this host); tried in order. */
          additional_jkus: v.pipe(
            v.array(v.pipe(v.string(), v.url('must be a URL'), v.regex(/^https?:\/\//i, 'must be an http(s) URL'))),
            v.minLength(1, 'needs at least one JWKS URL'),
          ),
        }),
      }),
    }),
  }),
  build(config) {
    const issuers = config.issuer.allow_list.map((i) => i.value)
    const audiences = config.audience?.allow_list.map((a) => a.value)
    const sets: JWTVerifyGetKey[] = config.jws.keys.sources.additional_jkus.map((url) =>
      createRemoteJWKSet(new URL(url), { cacheMaxAge: JWKS_MAX_AGE_MS, cooldownDuration: JWKS_REFETCH_COOLDOWN_MS, timeoutDuration: 5_000 }),
    )
    const options = {
      issuer: issuers,
      ...(audiences ? { audience: audiences } : {}),
      algorithms: [...config.jws.allowed_algorithms],
      clockTolerance: CLOCK_TOLERANCE_S,
    }

    async function check(token: string, spec: TokenSpec): Promise<TokenResult | Failure> {
      let failure: Failure | undefined
      // Something that is not a JWS at all never costs a JWKS fetch.
      try {
        decodeProtectedHeader(token)
      } catch {
        return { code: CODES.JWT_INVALID, message: 'the token is not a valid signed JWT', bearerError: 'invalid_token' }
      }
      const typ = spec.type === 'at+jwt' || spec.type === 'it+jwt' ? { typ: spec.type } : {}
      // Each JWKS in order; a later one is only asked when an earlier one has no key for the token.
      for (const keys of sets) {
        try {
          const { payload, protectedHeader } = await jwtVerify(token, keys, { ...options, ...typ })
          return { type: spec.type, method: spec.method, name: spec.name, header: { ...protectedHeader }, payload }
        } catch (err) {
          failure = failureOf(err)
          if (!(err instanceof errors.JWKSNoMatchingKey)) break
        }
      }
      return failure!
    }

    return async function jwtValidation(ex) {
      const tokens: TokenResult[] = []
      let failure: Failure | undefined
      let fields: Promise<Record<string, unknown> | undefined> | undefined
      const body = () => (fields ??= bodyFields(ex))
      for (const spec of config.http.tokens) {
        const raw = await find(ex, spec, body)
        if (raw === undefined) {
          failure = { code: CODES.JWT_INVALID, message: `no token in the ${spec.method} "${spec.name}"` }
          break
        }
        const result = await check(raw, spec)
        if ('code' in result) {
          failure = result
          break
        }
        tokens.push(result)
      }
      ex.actions['jwt_validation'] = { tokens, error: failure ? { code: failure.code, message: failure.message } : { code: '', message: '' } }
      if (!failure) return CONTINUE
      if (failure.code === CODES.JWKS_UNAVAILABLE) log.warn('jwt-validation could not fetch a JWKS', { code: failure.code })
      const response = errorResponse(401, failure.code, `Unauthorized: ${failure.message}.`, ex.headers.get('accept'))
      const challenge = failure.bearerError ? `Bearer error="${failure.bearerError}", error_description="${failure.message.replace(/"/g, "'")}"` : 'Bearer'
      response.headers.set('www-authenticate', challenge)
      return { kind: 'respond', response }
    }
  },
})
