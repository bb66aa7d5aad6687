/**
 * jwt-validation through the compiled edge, with tokens signed by keys whose JWKS a local server
 * publishes (and rotates): valid, expired, wrong issuer, audience or algorithm, a rotated key
 * fetched by its new kid (with the refetch rate-limited), a missing token. Then the same cases with
 * access tokens a real identity provider (oidc-provider) issues, its keys rotated by a restart.
 */
import { afterAll, beforeAll, describe, expect, setSystemTime, test } from 'bun:test'
import { decodeProtectedHeader, exportJWK, type JWK } from 'jose'
import { clientCredentialsToken, startIdp, type Idp, type IdpClient, type IdpOptions } from '../helpers/idp.ts'
import { makeKey, serveJwks, signToken, type IssuerKey, type JwksServer } from '../helpers/jwks.ts'
import { curl } from './framework/curl.ts'
import { freePort } from './framework/ports.ts'
import { hostFetch, startEdge, type Edge } from './framework/process.ts'

const ISS = 'https://id.warren.localhost/'
const AUD = 'urn:e2e:api'
const HOST = 'jwt.warren.localhost'

const upstream = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  // The token's claims, when a policy adds them as headers (absent otherwise).
  fetch: (req) =>
    Response.json({ authorization: req.headers.get('authorization'), subject: req.headers.get('x-token-subject') ?? undefined, scope: req.headers.get('x-token-scope') ?? undefined }),
})

/** The identity provider's API client and the APIs (resource indicators) it gets tokens for. */
const API_CLIENT: IdpClient = { client_id: 'api-client', client_secret: 'api-client-secret', redirect_uris: [], grant_types: ['client_credentials'] }
const OTHER_API = 'urn:e2e:other-api'
let idpPort: number
let idp: Idp

/** A private RS256 signing key for the provider. */
async function providerKey(kid: string): Promise<JWK> {
  const { privateKey } = await makeKey(kid)
  return { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' }
}

const idpOptions = async (kid: string): Promise<IdpOptions> => ({ keys: [await providerKey(kid)], resources: [AUD, OTHER_API] })

/**
 * An endpoint that accepts the provider's RFC 9068 access tokens for the API, its keys from the
 * provider's JWKS URL, and passes the token's subject and scope on as headers. `issuer` and
 * `algorithms` change what it accepts.
 */
function idpEndpoint(name: string, change: { issuer?: string; algorithms?: string[] } = {}): string {
  const issuer = `http://127.0.0.1:${idpPort}`
  const claim = (field: string) => '${actions.ngrok.jwt_validation.tokens[0].payload.' + field + '}'
  return JSON.stringify({
    url: `http://${name}.warren.localhost`,
    traffic_policy: {
      on_http_request: [
        {
          actions: [
            {
              type: 'jwt-validation',
              config: {
                issuer: { allow_list: [{ value: change.issuer ?? issuer }] },
                audience: { allow_list: [{ value: AUD }] },
                http: { tokens: [{ type: 'at+jwt', method: 'header', name: 'Authorization', prefix: 'Bearer ' }] },
                jws: { allowed_algorithms: change.algorithms ?? ['RS256'], keys: { sources: { additional_jkus: [`${issuer}/jwks`] } } },
              },
            },
          ],
        },
        { actions: [{ type: 'add-headers', config: { headers: { 'x-token-subject': claim('sub'), 'x-token-scope': claim('scope') } } }] },
        { actions: [{ type: 'forward-external', config: { url: `http://127.0.0.1:${upstream.port}` } }] },
      ],
    },
  })
}

let edge: Edge
let jwks: JwksServer
let rsa: IssuerKey
let ec: IssuerKey
let ps: IssuerKey
beforeAll(async () => {
  rsa = await makeKey('k1')
  ec = await makeKey('k-ec', 'ES256')
  ps = await makeKey('k-ps', 'PS256')
  jwks = serveJwks([rsa, ec, ps])
  const policy = {
    url: `http://${HOST}`,
    traffic_policy: {
      on_http_request: [
        {
          actions: [
            {
              type: 'jwt-validation',
              config: {
                issuer: { allow_list: [{ value: ISS }] },
                audience: { allow_list: [{ value: AUD }] },
                http: { tokens: [{ type: 'jwt', method: 'header', name: 'Authorization', prefix: 'Bearer ' }] },
                jws: { allowed_algorithms: ['RS256', 'ES256'], keys: { sources: { additional_jkus: [jwks.url] } } },
              },
            },
          ],
        },
        { expressions: ["req.url.path == '/whoami'"], actions: [{ type: 'custom-response', config: { body: '${actions.ngrok.jwt_validation.tokens[0].payload.sub}' } }] },
        { actions: [{ type: 'forward-external', config: { url: `http://127.0.0.1:${upstream.port}` } }] },
      ],
    },
  }
  idpPort = await freePort()
  edge = await startEdge({
    policies: {
      'jwt.yml': JSON.stringify(policy),
      'idp.yml': idpEndpoint('idp'),
      'idp-iss.yml': idpEndpoint('idp-iss', { issuer: 'https://id.warren.localhost/' }),
      'idp-es.yml': idpEndpoint('idp-es', { algorithms: ['ES256'] }),
    },
  })
  idp = await startIdp(idpPort, [API_CLIENT], await idpOptions('idp-key-1'))
})
afterAll(async () => {
  await edge?.stop()
  await idp?.stop()
  jwks?.stop()
  upstream.stop(true)
})

const get = (token?: string, path = '/') => hostFetch(edge, HOST, path, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } })

describe('jwt-validation through the edge', () => {
  test('a valid token reaches the upstream; its claims are result variables', async () => {
    const token = await signToken(rsa, { iss: ISS, aud: AUD })
    const res = await get(token)
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ authorization: `Bearer ${token}` })
    const who = await get(await signToken(ec, { iss: ISS, aud: AUD }), '/whoami')
    expect(await who.text()).toBe('user-1')
  })

  test.each<{ desc: string; token: () => Promise<string>; description: string }>([
    { desc: 'expired', token: () => signToken(rsa, { iss: ISS, aud: AUD, expiresIn: -600 }), description: 'the token has expired' },
    { desc: 'wrong issuer', token: () => signToken(rsa, { iss: 'https://evil.example/', aud: AUD }), description: "the token's issuer is not allowed" },
    { desc: 'wrong audience', token: () => signToken(rsa, { iss: ISS, aud: 'urn:other' }), description: "the token's audience is not allowed" },
    { desc: 'algorithm not allowed', token: () => signToken(ps, { iss: ISS, aud: AUD }), description: "the token's signing algorithm is not allowed" },
  ])('$desc: 401 with a Bearer challenge', async ({ token, description }) => {
    const res = await curl(['-H', `Host: ${HOST}`, '-H', `Authorization: Bearer ${await token()}`, `${edge.base}/`])
    expect(res.status).toBe(401)
    expect(res.headers['warren-error-code']).toBe('ERR_WARREN_2131')
    expect(res.headers['www-authenticate']).toBe(`Bearer error="invalid_token", error_description="${description}"`)
  })

  test('no token: 401 with a bare Bearer challenge', async () => {
    const res = await curl(['-H', `Host: ${HOST}`, `${edge.base}/`])
    expect(res.status).toBe(401)
    expect(res.headers['www-authenticate']).toBe('Bearer')
    const wrongScheme = await hostFetch(edge, HOST, '/', { headers: { authorization: 'Basic YTpi' } })
    expect(wrongScheme.status).toBe(401)
  })

  test('key rotation: a token with a new kid makes the edge fetch the JWKS again, at most once per cooldown', async () => {
    expect((await get(await signToken(rsa, { iss: ISS, aud: AUD }))).status).toBe(200)
    const before = jwks.fetches
    // Random kids never published: each would be a fetch if the edge did not rate-limit them.
    const strangers = await Promise.all([1, 2, 3, 4, 5].map((i) => makeKey(`unknown-${i}`)))
    for (const key of strangers) expect((await get(await signToken(key, { iss: ISS, aud: AUD }))).status).toBe(401)
    expect(jwks.fetches - before).toBeLessThanOrEqual(1)

    const next = await makeKey('k2')
    jwks.publish([next, ec])
    await Bun.sleep(5_200) // the refetch cooldown (JWKS_REFETCH_COOLDOWN_MS) passes
    const fetched = jwks.fetches
    const res = await get(await signToken(next, { iss: ISS, aud: AUD }))
    expect(res.status).toBe(200)
    expect(jwks.fetches).toBe(fetched + 1)
    // The retired key is gone from the refreshed set.
    expect((await get(await signToken(rsa, { iss: ISS, aud: AUD }))).status).toBe(401)
  })
})

describe('jwt-validation with access tokens from a real identity provider (oidc-provider)', () => {
  const token = (resource = AUD) => clientCredentialsToken(idp, API_CLIENT, resource)
  const call = (host: string, bearer: string) => hostFetch(edge, `${host}.warren.localhost`, '/', { headers: { authorization: `Bearer ${bearer}` } })

  test("a valid token reaches the upstream with the token's subject and scope as headers", async () => {
    const bearer = await token()
    expect(decodeProtectedHeader(bearer)).toMatchObject({ typ: 'at+jwt', alg: 'RS256', kid: 'idp-key-1' })
    const res = await call('idp', bearer)
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ authorization: `Bearer ${bearer}`, subject: 'api-client', scope: 'api:read' })
  })

  test.each<{ desc: string; host: string; token: () => Promise<string>; description: string }>([
    {
      desc: 'expired',
      host: 'idp',
      // The edge allows 30 s of clock skew (CLOCK_TOLERANCE_S): rather than wait that out after a
      // short lifetime, the provider issues this token with its clock ten minutes behind, so its
      // five minutes are over.
      token: async () => {
        setSystemTime(new Date(Date.now() - 10 * 60_000))
        try {
          return await token()
        } finally {
          setSystemTime()
        }
      },
      description: 'the token has expired',
    },
    { desc: 'wrong issuer', host: 'idp-iss', token: () => token(), description: "the token's issuer is not allowed" },
    { desc: 'wrong audience (a token for another API)', host: 'idp', token: () => token(OTHER_API), description: "the token's audience is not allowed" },
    { desc: 'algorithm not allowed (ES256 only; the provider signs RS256)', host: 'idp-es', token: () => token(), description: "the token's signing algorithm is not allowed" },
  ])('$desc: 401 with a Bearer challenge', async ({ host, token, description }) => {
    const res = await curl(['-H', `Host: ${host}.warren.localhost`, '-H', `Authorization: Bearer ${await token()}`, `${edge.base}/`])
    expect(res.status).toBe(401)
    expect(res.headers['warren-error-code']).toBe('ERR_WARREN_2131')
    expect(res.headers['www-authenticate']).toBe(`Bearer error="invalid_token", error_description="${description}"`)
  })

  test('key rotation: the provider restarts with a new key; the edge fetches it for the new kid and refuses the old key', async () => {
    const old = await token()
    expect((await call('idp', old)).status).toBe(200)

    await idp.stop()
    idp = await startIdp(idpPort, [API_CLIENT], await idpOptions('idp-key-2'))
    await Bun.sleep(5_200) // the refetch cooldown (JWKS_REFETCH_COOLDOWN_MS) passes
    const fresh = await token()
    expect(decodeProtectedHeader(fresh).kid).toBe('idp-key-2')
    const res = await call('idp', fresh)
    expect(res.status).toBe(200)
    expect(idp.jwksFetches).toBe(1)

    // The old key is gone from the refreshed set, and asking again waits for the cooldown.
    const refused = await call('idp', old)
    expect(refused.status).toBe(401)
    expect(refused.headers.get('www-authenticate')).toBe('Bearer error="invalid_token", error_description="no key of the JWKS matches the token"')
    expect(idp.jwksFetches).toBe(1)
  })
})
