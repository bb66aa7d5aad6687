import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { exchange, loadError, responded, run } from '../../../test/helpers/actions.ts'
import { makeKey, serveJwks, signToken, type IssuerKey, type JwksServer } from '../../../test/helpers/jwks.ts'

const ISS = 'https://issuer.example.com/'
const AUD = 'urn:warren:api'
const HEADER = { type: 'jwt', method: 'header', name: 'Authorization', prefix: 'Bearer ' }

function config(jku: string, over: Record<string, unknown> = {}) {
  return {
    issuer: { allow_list: [{ value: ISS }] },
    audience: { allow_list: [{ value: AUD }, { value: 'other' }] },
    http: { tokens: [HEADER] },
    jws: { allowed_algorithms: ['RS256', 'ES256'], keys: { sources: { additional_jkus: [jku] } } },
    ...over,
  }
}

describe('jwt-validation config', () => {
  const base = config('https://keys.example.com/jwks.json')
  test.each<{ desc: string; config: unknown; want: RegExp | undefined }>([
    { desc: 'full config', config: base, want: undefined },
    { desc: 'audience is optional', config: { ...base, audience: undefined }, want: undefined },
    { desc: 'issuer required', config: { ...base, issuer: undefined }, want: /^ERR_WARREN_2001: .*issuer/ },
    { desc: 'empty issuer list', config: { ...base, issuer: { allow_list: [] } }, want: /at least one value/ },
    { desc: 'no tokens', config: { ...base, http: { tokens: [] } }, want: /at least one token/ },
    { desc: 'unknown method', config: { ...base, http: { tokens: [{ ...HEADER, method: 'path' }] } }, want: /method/ },
    { desc: 'unknown token type', config: { ...base, http: { tokens: [{ ...HEADER, type: 'saml' }] } }, want: /type/ },
    { desc: 'HS256 is refused', config: { ...base, jws: { ...base.jws, allowed_algorithms: ['HS256'] } }, want: /allowed_algorithms/ },
    { desc: 'none is refused', config: { ...base, jws: { ...base.jws, allowed_algorithms: ['none'] } }, want: /allowed_algorithms/ },
    { desc: 'no JWKS URL', config: { ...base, jws: { ...base.jws, keys: { sources: { additional_jkus: [] } } } }, want: /at least one JWKS URL/ },
    { desc: 'JWKS URL not http', config: { ...base, jws: { ...base.jws, keys: { sources: { additional_jkus: ['ftp://x/jwks'] } } } }, want: /http\(s\) URL/ },
    { desc: 'unknown key', config: { ...base, leeway: 5 }, want: /leeway/ },
  ])('$desc', ({ config, want }) => {
    const got = loadError({ type: 'jwt-validation', config })
    if (want) expect(got).toMatch(want)
    else expect(got).toBeUndefined()
  })
})

describe('jwt-validation at runtime', () => {
  let rsa: IssuerKey
  let ec: IssuerKey
  let ps: IssuerKey
  let jwks: JwksServer
  beforeAll(async () => {
    rsa = await makeKey('rsa-1')
    ec = await makeKey('ec-1', 'ES256')
    ps = await makeKey('ps-1', 'PS256')
    jwks = serveJwks([rsa, ec, ps])
  })
  afterAll(() => jwks.stop())

  const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

  test.each<{ desc: string; token: () => Promise<string | undefined>; error?: RegExp; challenge?: string }>([
    { desc: 'valid RS256', token: () => signToken(rsa, { iss: ISS, aud: AUD }) },
    { desc: 'valid ES256, second audience', token: () => signToken(ec, { iss: ISS, aud: ['x', 'other'] }) },
    { desc: 'expired', token: () => signToken(rsa, { iss: ISS, aud: AUD, expiresIn: -120 }), error: /has expired/, challenge: 'Bearer error="invalid_token", error_description="the token has expired"' },
    { desc: 'wrong issuer', token: () => signToken(rsa, { iss: 'https://issuer.example.com', aud: AUD }), error: /issuer is not allowed/ },
    { desc: 'wrong audience', token: () => signToken(rsa, { iss: ISS, aud: 'urn:someone-else' }), error: /audience is not allowed/ },
    { desc: 'algorithm not allowed (PS256)', token: () => signToken(ps, { iss: ISS, aud: AUD }), error: /algorithm is not allowed/ },
    { desc: 'unknown kid', token: async () => signToken(await makeKey('stranger'), { iss: ISS, aud: AUD }), error: /no key of the JWKS matches/ },
    {
      desc: 'signature by another key under a known kid',
      token: async () => signToken({ ...(await makeKey('rsa-1')), kid: 'rsa-1' }, { iss: ISS, aud: AUD }),
      error: /signature is not valid/,
    },
    { desc: 'garbage', token: async () => 'not.a.jwt', error: /not a valid signed JWT/ },
    { desc: 'no token', token: async () => undefined, error: /no token in the header "Authorization"/, challenge: 'Bearer' },
  ])('$desc', async ({ token, error, challenge }) => {
    const t = await token()
    const ex = exchange('http://a.test/', { headersInit: t === undefined ? {} : bearer(t) })
    const outcome = await run({ type: 'jwt-validation', config: config(jwks.url) }, ex)
    const result = ex.actions['jwt_validation'] as { tokens: { payload: { sub: string }; header: { kid: string } }[]; error: { code: string; message: string } }
    if (!error) {
      expect(outcome.kind).toBe('continue')
      expect(result.error).toEqual({ code: '', message: '' })
      expect(result.tokens[0]!.payload.sub).toBe('user-1')
      return
    }
    const res = responded(outcome)!
    expect(res.status).toBe(401)
    expect(result.error.message).toMatch(error)
    expect(res.headers.get('warren-error-code')).toBe('ERR_WARREN_2131')
    expect(res.headers.get('www-authenticate')).toBe(challenge ?? `Bearer error="invalid_token", error_description="${result.error.message}"`)
  })

  test('tokens from a cookie, a query parameter and a form body; all must be present', async () => {
    const t = await signToken(rsa, { iss: ISS, aud: AUD })
    const tokens = [
      { type: 'jwt', method: 'cookie', name: 'session' },
      { type: 'id_token', method: 'query', name: 'id_token' },
      { type: 'access_token', method: 'body', name: 'access_token' },
    ]
    const form = `access_token=${t}&x=1`
    const ex = exchange(`http://a.test/?id_token=${t}`, { method: 'POST', body: new Response(form).body, headersInit: { cookie: `a=b; session=${t}`, 'content-type': 'application/x-www-form-urlencoded' } })
    expect((await run({ type: 'jwt-validation', config: config(jwks.url, { http: { tokens } }) }, ex)).kind).toBe('continue')
    expect((ex.actions['jwt_validation'] as { tokens: unknown[] }).tokens).toHaveLength(3)
    expect(await new Response(ex.body).text()).toBe(form)
    const missing = exchange(`http://a.test/?id_token=${t}`, { headersInit: { cookie: `session=${t}` } })
    expect(responded(await run({ type: 'jwt-validation', config: config(jwks.url, { http: { tokens } }) }, missing))?.status).toBe(401)
  })

  test('at+jwt requires the typ header', async () => {
    const cfg = config(jwks.url, { http: { tokens: [{ ...HEADER, type: 'at+jwt' }] } })
    const typed = exchange('http://a.test/', { headersInit: bearer(await signToken(rsa, { iss: ISS, aud: AUD, typ: 'at+jwt' })) })
    expect((await run({ type: 'jwt-validation', config: cfg }, typed)).kind).toBe('continue')
    const plain = exchange('http://a.test/', { headersInit: bearer(await signToken(rsa, { iss: ISS, aud: AUD })) })
    expect(responded(await run({ type: 'jwt-validation', config: cfg }, plain))?.status).toBe(401)
  })

  test('an unreachable JWKS answers 401 with its own code', async () => {
    const ex = exchange('http://a.test/', { headersInit: bearer(await signToken(rsa, { iss: ISS, aud: AUD })) })
    const res = responded(await run({ type: 'jwt-validation', config: config('http://127.0.0.1:9/jwks.json') }, ex))!
    expect(res.status).toBe(401)
    expect(res.headers.get('warren-error-code')).toBe('ERR_WARREN_2132')
  })
})
