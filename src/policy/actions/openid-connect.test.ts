import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { randomBytes } from 'node:crypto'
import { exchange, loadError, responded, type ActionCase } from '../../../test/helpers/actions.ts'
import { loginAt, startIdp, type Idp } from '../../../test/helpers/idp.ts'
import { freePort } from '../../../test/e2e/framework/ports.ts'
import { compilePolicy, runPhase, validatePolicy } from '../engine.ts'
import type { HttpExchange } from '../types.ts'

const ORIGIN = 'http://app.example.test:8080'

describe('openid-connect config', () => {
  const base = { issuer_url: 'https://idp.example.com', client_id: 'edge', client_secret: 's3cret' }
  test.each<{ desc: string; c: ActionCase; want: RegExp | undefined }>([
    { desc: 'minimal', c: { type: 'openid-connect', config: base }, want: undefined },
    { desc: 'every field', c: { type: 'openid-connect', config: { ...base, auth_id: 'corp', scopes: ['groups'], authz_url_params: { hd: 'example.com' }, max_session_duration: '8h', idle_session_duration: '30m', userinfo_refresh_interval: '5m', allow_cors_preflight: true } }, want: undefined },
    { desc: 'http issuer on loopback', c: { type: 'openid-connect', config: { ...base, issuer_url: 'http://127.0.0.1:9000' } }, want: undefined },
    { desc: 'http issuer elsewhere', c: { type: 'openid-connect', config: { ...base, issuer_url: 'http://idp.example.com' } }, want: /^ERR_WARREN_2165: .*https:\/\// },
    { desc: 'issuer not a URL', c: { type: 'openid-connect', config: { ...base, issuer_url: 'idp' } }, want: /^ERR_WARREN_2165: .*not a URL/ },
    { desc: 'no client_secret', c: { type: 'openid-connect', config: { issuer_url: base.issuer_url, client_id: 'edge' } }, want: /^ERR_WARREN_2001: .*client_secret/ },
    { desc: 'bad auth_id', c: { type: 'openid-connect', config: { ...base, auth_id: 'a b' } }, want: /^ERR_WARREN_2001: .*auth_id/ },
    { desc: 'duration under 1s', c: { type: 'openid-connect', config: { ...base, idle_session_duration: '10ms' } }, want: /^ERR_WARREN_2001: .*at least 1s/ },
    { desc: 'unknown key', c: { type: 'openid-connect', config: { ...base, issuer: 'x' } }, want: /^ERR_WARREN_2001: .*issuer/ },
    { desc: 'not in on_http_response', c: { type: 'openid-connect', phase: 'on_http_response', config: base }, want: /cannot run in on_http_response/ },
  ])('$desc', ({ c, want }) => {
    const got = loadError(c)
    if (want) expect(got).toMatch(want)
    else expect(got).toBeUndefined()
  })
})

describe('openid-connect against a real provider', () => {
  let idp: Idp
  const key = new Uint8Array(randomBytes(32))
  beforeAll(async () => {
    idp = await startIdp(await freePort(), [{ client_id: 'edge', client_secret: 'edge-secret', redirect_uris: [`${ORIGIN}/ngrok/callback`] }])
  })
  afterAll(() => idp?.stop())

  function policy(config: Record<string, unknown> = {}, sessionKey = key) {
    const spec = validatePolicy({ on_http_request: [{ actions: [{ type: 'openid-connect', config: { issuer_url: idp.issuer, client_id: 'edge', client_secret: 'edge-secret', ...config } }] }] })
    return compilePolicy(spec, { scheme: 'http', cloud: false, sessionKey }).on_http_request
  }
  async function send(rules: ReturnType<typeof policy>, path: string, cookie?: string): Promise<{ ex: HttpExchange; res: Response | undefined }> {
    const ex = exchange(`${ORIGIN}${path}`, cookie ? { headersInit: { cookie } } : {})
    const res = responded(await runPhase(rules, ex))
    return { ex, res }
  }
  function cookieOf(res: Response, prefix: string): string {
    const line = res.headers.getSetCookie().find((c) => c.startsWith(prefix))
    expect(line).toBeDefined()
    return line!.split(';')[0]!
  }
  /** Signs `login` in and returns the session cookie (`name=value`). */
  async function signIn(rules: ReturnType<typeof policy>, login: string, path = '/hello?x=1'): Promise<string> {
    const first = await send(rules, path)
    expect(first.res?.status).toBe(302)
    const auth = new URL(first.res!.headers.get('location')!)
    expect(auth.origin).toBe(idp.issuer)
    expect(auth.searchParams.get('code_challenge_method')).toBe('S256')
    expect(auth.searchParams.get('redirect_uri')).toBe(`${ORIGIN}/ngrok/callback`)
    expect(auth.searchParams.get('scope')).toBe('openid profile email')
    const flow = cookieOf(first.res!, 'warren_login_oidc=')
    const back = await loginAt(auth.href, login)
    const callback = await send(rules, new URL(back).pathname + new URL(back).search, flow)
    expect(callback.res?.status).toBe(302)
    expect(callback.res!.headers.get('location')).toBe(path)
    return cookieOf(callback.res!, 'warren_session_oidc=')
  }

  test('a login sets a session whose claims the next rules see; the cookie never reaches the upstream', async () => {
    const rules = policy()
    const session = await signIn(rules, 'alice')
    const { ex, res } = await send(rules, '/hello', `${session}; theme=dark`)
    expect(res).toBeUndefined()
    expect(ex.actions.openid_connect).toMatchObject({ identity: { email: 'alice@example.test', name: 'User alice', provider_user_id: 'alice' }, claims: { sub: 'alice', email_verified: true } })
    expect(ex.headers.get('cookie')).toBe('theme=dark')
  })

  test('without a session the request goes to the provider; a tampered or foreign cookie is no session', async () => {
    const rules = policy()
    const session = await signIn(rules, 'bob')
    const tampered = session.slice(0, -3) + (session.endsWith('AAA') ? 'BBB' : 'AAA')
    expect((await send(rules, '/', tampered)).res?.status).toBe(302)
    const other = policy({}, new Uint8Array(randomBytes(32)))
    expect((await send(other, '/', session)).res?.status).toBe(302)
    const otherId = policy({ auth_id: 'other' })
    expect((await send(otherId, '/', session.replace('warren_session_oidc', 'warren_session_other'))).res?.status).toBe(302)
  })

  test('logout clears the cookie; redirect_path must stay on the endpoint', async () => {
    const rules = policy()
    const page = (await send(rules, '/ngrok/logout')).res!
    expect(page.status).toBe(200)
    expect(page.headers.getSetCookie()[0]).toMatch(/^warren_session_oidc=; .*Max-Age=0/)
    expect((await send(rules, '/ngrok/logout?redirect_path=/bye')).res!.headers.get('location')).toBe('/bye')
    expect((await send(rules, '/ngrok/logout?redirect_path=//evil.example')).res!.headers.get('location')).toBe('/')
  })

  test('a callback without a login in progress is refused', async () => {
    const { res } = await send(policy(), '/ngrok/callback?code=x&state=y')
    expect(res?.status).toBe(400)
    expect(res?.headers.get('warren-error-code')).toBe('ERR_WARREN_2162')
  })

  test('/ngrok/login forces a login and returns to redirect_path', async () => {
    const { res } = await send(policy(), '/ngrok/login?redirect_path=/after')
    const auth = new URL(res!.headers.get('location')!)
    expect(auth.searchParams.get('prompt')).toBe('login')
  })

  test('an idle session ends', async () => {
    const rules = policy({ idle_session_duration: '1s' })
    const session = await signIn(rules, 'carol')
    expect((await send(rules, '/', session)).res).toBeUndefined()
    await Bun.sleep(1100)
    expect((await send(rules, '/', session)).res?.status).toBe(302)
  })

  test('an unreachable provider answers 502', async () => {
    const spec = validatePolicy({ on_http_request: [{ actions: [{ type: 'openid-connect', config: { issuer_url: `http://127.0.0.1:${await freePort()}`, client_id: 'edge', client_secret: 'x' } }] }] })
    const rules = compilePolicy(spec, { scheme: 'http', cloud: false, sessionKey: key }).on_http_request
    const res = responded(await runPhase(rules, exchange(`${ORIGIN}/`)))
    expect(res?.status).toBe(502)
    expect(res?.headers.get('warren-error-code')).toBe('ERR_WARREN_2161')
  })
})
