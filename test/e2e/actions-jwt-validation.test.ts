/**
 * jwt-validation through the compiled edge, with tokens signed by keys whose JWKS a local server
 * publishes (and rotates): valid, expired, wrong issuer, audience or algorithm, a rotated key
 * fetched by its new kid (with the refetch rate-limited), a missing token.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { makeKey, serveJwks, signToken, type IssuerKey, type JwksServer } from '../helpers/jwks.ts'
import { curl } from './framework/curl.ts'
import { hostFetch, startEdge, type Edge } from './framework/process.ts'

const ISS = 'https://id.warren.localhost/'
const AUD = 'urn:e2e:api'
const HOST = 'jwt.warren.localhost'

const upstream = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  fetch: (req) => Response.json({ authorization: req.headers.get('authorization') }),
})

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
  edge = await startEdge({ policies: { 'jwt.yml': JSON.stringify(policy) } })
})
afterAll(async () => {
  await edge?.stop()
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
