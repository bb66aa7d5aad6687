import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { randomBytes } from 'node:crypto'
import { exchange, loadError, responded, type ActionCase } from '../../../test/helpers/actions.ts'
import { loginAt, startIdp, type Idp } from '../../../test/helpers/idp.ts'
import { freePort } from '../../../test/e2e/framework/ports.ts'
import { compilePolicy, runPhase, validatePolicy } from '../engine.ts'

const ORIGIN = 'https://app.example.test'

describe('oauth config', () => {
  const app = { client_id: 'id', client_secret: 'secret' }
  test.each<{ desc: string; c: ActionCase; want: RegExp | undefined }>([
    ...['google', 'github', 'gitlab', 'microsoft', 'linkedin', 'twitch', 'amazon', 'facebook'].map((provider) => ({ desc: `${provider} with an app`, c: { type: 'oauth', config: { provider, ...app } }, want: undefined })),
    { desc: 'no client id: no shared app on a self-hosted edge', c: { type: 'oauth', config: { provider: 'google' } }, want: /^ERR_WARREN_2160: .*client_id and client_secret.*no shared ngrok app/ },
    { desc: 'client id without secret', c: { type: 'oauth', config: { provider: 'github', client_id: 'id' } }, want: /^ERR_WARREN_2160/ },
    { desc: 'unknown provider', c: { type: 'oauth', config: { provider: 'myspace', ...app } }, want: /^ERR_WARREN_2001: .*must be one of google/ },
    { desc: 'issuer_url and endpoints', c: { type: 'oauth', config: { provider: 'gitlab', ...app, issuer_url: 'https://git.example.com', endpoints: { authorization_url: 'https://a.example', token_url: 'https://a.example/t', userinfo_url: 'https://a.example/u' } } }, want: /^ERR_WARREN_2165: .*not both/ },
    { desc: 'http endpoints off loopback', c: { type: 'oauth', config: { provider: 'github', ...app, endpoints: { authorization_url: 'http://gh.example/a', token_url: 'https://gh.example/t', userinfo_url: 'https://gh.example/u' } } }, want: /^ERR_WARREN_2165: .*endpoints.authorization_url/ },
    { desc: 'self-hosted gitlab issuer', c: { type: 'oauth', config: { provider: 'gitlab', ...app, issuer_url: 'https://git.example.com' } }, want: undefined },
  ])('$desc', ({ c, want }) => {
    const got = loadError(c)
    if (want) expect(got).toMatch(want)
    else expect(got).toBeUndefined()
  })
})

describe('oauth against a real provider', () => {
  let idp: Idp
  const key = new Uint8Array(randomBytes(32))
  beforeAll(async () => {
    idp = await startIdp(await freePort(), [{ client_id: 'gh-app', client_secret: 'gh-secret', redirect_uris: [`${ORIGIN}/ngrok/callback`], token_endpoint_auth_method: 'client_secret_post' }])
  })
  afterAll(() => idp?.stop())

  test('fixed OAuth 2.0 endpoints: code flow with PKCE, the profile API names the user', async () => {
    // oidc-provider's userinfo endpoint wants the openid scope; the github preset's own scopes come first.
    const config = { provider: 'github', client_id: 'gh-app', client_secret: 'gh-secret', scopes: ['openid', 'email'], endpoints: { authorization_url: `${idp.issuer}/auth`, token_url: `${idp.issuer}/token`, userinfo_url: `${idp.issuer}/me` } }
    const rules = compilePolicy(validatePolicy({ on_http_request: [{ actions: [{ type: 'oauth', config }] }] }), { scheme: 'https', cloud: false, sessionKey: key }).on_http_request
    const first = responded(await runPhase(rules, exchange(`${ORIGIN}/private`)))!
    const auth = new URL(first.headers.get('location')!)
    expect(auth.searchParams.get('scope')).toBe('read:user user:email openid email')
    expect(auth.searchParams.has('nonce')).toBe(false)
    const flow = first.headers.getSetCookie().find((c) => c.startsWith('warren_login_github='))!
    expect(flow).toMatch(/; Secure/)
    const back = new URL(await loginAt(auth.href, 'dora'))
    const done = responded(await runPhase(rules, exchange(`${ORIGIN}${back.pathname}${back.search}`, { headersInit: { cookie: flow.split(';')[0]! } })))!
    expect(done.status).toBe(302)
    expect(done.headers.get('location')).toBe('/private')
    const session = done.headers.getSetCookie().find((c) => c.startsWith('warren_session_github='))!.split(';')[0]!
    const ex = exchange(`${ORIGIN}/private`, { headersInit: { cookie: session } })
    expect(responded(await runPhase(rules, ex))).toBeUndefined()
    expect(ex.actions.oauth).toMatchObject({ identity: { email: 'dora@example.test', provider_user_id: 'dora' } })
  })
})
