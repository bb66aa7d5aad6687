import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { generateKeyPair, SignJWT } from 'jose'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { signInThroughEdge, startIdp, type Idp } from '../helpers/idp.ts'
import { CHROMIUM, CHROMIUM_ARGS, loadBrowser } from './framework/chromium.ts'
import { freePort } from './framework/ports.ts'
import { hostFetch, startEdge, type Edge } from './framework/process.ts'
import { startUpstream } from './framework/upstreams.ts'

/*
 * openid-connect through the compiled binary: a real identity provider (oidc-provider) on loopback,
 * a login in headless Chromium, the claims reaching the upstream as headers, logout, an allow-list
 * rule, session expiry, and tokens with the wrong audience or issuer refused.
 */

const { playwright, skipReason } = await loadBrowser()
if (skipReason) console.warn(`openid-connect browser e2e SKIPPED: ${skipReason}`)

const SECRET = 'edge-secret-never-logged'
const upstream = startUpstream()
const forward = { type: 'forward-external', config: { url: `http://127.0.0.1:${upstream.port}` } }

/** A provider that lies: its id_tokens name another audience (`/aud`) or another issuer (`/iss`). */
const keys = await generateKeyPair('RS256')
const nonces = new Map<string, string>()
const liar = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  async fetch(req): Promise<Response> {
    const url = new URL(req.url)
    const [, kind = '', rest = ''] = /^\/(aud|iss)(\/.*)?$/.exec(url.pathname) ?? []
    const issuer: string = `http://127.0.0.1:${liar.port}/${kind}`
    if (rest === '/.well-known/openid-configuration')
      return Response.json({ issuer, authorization_endpoint: `${issuer}/auth`, token_endpoint: `${issuer}/token`, jwks_uri: `${issuer}/jwks`, response_types_supported: ['code'], subject_types_supported: ['public'], id_token_signing_alg_values_supported: ['RS256'] })
    if (rest === '/auth') {
      const code = crypto.randomUUID()
      nonces.set(code, url.searchParams.get('nonce') ?? '')
      const back = new URL(url.searchParams.get('redirect_uri')!)
      back.searchParams.set('code', code)
      back.searchParams.set('state', url.searchParams.get('state')!)
      return new Response(null, { status: 302, headers: { location: back.href } })
    }
    if (rest === '/token') {
      const code = new URLSearchParams(await req.text()).get('code') ?? ''
      const idToken = await new SignJWT({ nonce: nonces.get(code) ?? '', email: 'eve@example.test' })
        .setProtectedHeader({ alg: 'RS256' })
        .setSubject('eve')
        .setIssuer(kind === 'iss' ? 'http://127.0.0.1:1/somebody-else' : issuer)
        .setAudience(kind === 'aud' ? 'another-client' : 'edge')
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(keys.privateKey)
      return Response.json({ access_token: 'at', token_type: 'Bearer', expires_in: 300, id_token: idToken })
    }
    return new Response('not found', { status: 404 })
  },
})

let edge: Edge
let idp: Idp
const host = (name: string) => `${name}.warren.localhost:${edge.httpPort}`

function oidcEndpoint(name: string, issuer: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    url: `http://${name}.warren.localhost`,
    traffic_policy: {
      on_http_request: [
        { actions: [{ type: 'openid-connect', config: { issuer_url: issuer, client_id: 'edge', client_secret: SECRET, ...extra } }] },
        // The allow list: an expression on the claims after the action.
        { expressions: ["actions.ngrok.openid_connect.identity.email == 'mallory@example.test'"], actions: [{ type: 'deny', config: { status_code: 403 } }] },
        { actions: [{ type: 'add-headers', config: { headers: { 'x-user-email': '${actions.ngrok.openid_connect.identity.email}', 'x-user-name': '${actions.ngrok.openid_connect.identity.name}' } } }, forward] },
      ],
    },
  })
}

beforeAll(async () => {
  const idpPort = await freePort()
  const issuer = `http://127.0.0.1:${idpPort}`
  edge = await startEdge({
    policies: {
      'app.yml': oidcEndpoint('app', issuer),
      'short.yml': oidcEndpoint('short', issuer, { max_session_duration: '2s' }),
      'idle.yml': oidcEndpoint('idle', issuer, { idle_session_duration: '3s' }),
      // oauth with a provider preset, pointed at the test provider by the documented issuer_url extension.
      'goog.yml': JSON.stringify({
        url: 'http://goog.warren.localhost',
        traffic_policy: {
          on_http_request: [
            { actions: [{ type: 'oauth', config: { provider: 'google', issuer_url: issuer, client_id: 'edge', client_secret: SECRET } }] },
            { actions: [{ type: 'add-headers', config: { headers: { 'x-user-email': '${actions.ngrok.oauth.identity.email}' } } }, forward] },
          ],
        },
      }),
      'aud.yml': oidcEndpoint('aud', `http://127.0.0.1:${liar.port}/aud`),
      'iss.yml': oidcEndpoint('iss', `http://127.0.0.1:${liar.port}/iss`),
    },
  })
  const redirect = (name: string) => `http://${name}.warren.localhost:${edge.httpPort}/ngrok/callback`
  idp = await startIdp(idpPort, [{ client_id: 'edge', client_secret: SECRET, redirect_uris: [redirect('app'), redirect('short'), redirect('idle'), redirect('goog')] }])
})

afterAll(async () => {
  await edge?.stop()
  await idp?.stop()
  upstream.stop(true)
  liar.stop(true)
})

/** Signs `login` in at endpoint `name` without a browser; returns the session cookie (`name=value`). */
async function signIn(name: string, login: string): Promise<string> {
  return (await signInThroughEdge(edge, host(name), login)).session
}

describe.skipIf(skipReason !== undefined)('openid-connect in headless Chromium (compiled binary)', () => {
  test('login, claims at the upstream, logout, allow-list deny', async () => {
    const browser = await playwright!.chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
    try {
      const context = await browser.newContext()
      const page = await context.newPage()
      const visited: string[] = []
      page.on('request', (r) => visited.push(r.url()))

      // (1) No session: the edge sends the browser to the provider, which shows its login form.
      await page.goto(`http://${host('app')}/echo?from=browser`)
      expect(page.url().startsWith(idp.issuer)).toBe(true)
      await page.fill('input[name=login]', 'alice')
      await page.fill('input[name=password]', 'any')
      await page.click('button[type=submit]')
      await page.waitForSelector('button[type=submit]')
      await page.click('button[type=submit]') // consent
      await page.waitForURL(`http://${host('app')}/echo?from=browser`, { timeout: 15_000 })

      // (2) Back at the page asked for: the upstream got the claims as headers, not the edge's cookie.
      const seen = JSON.parse((await page.textContent('body'))!)
      expect(seen.headers['x-user-email']).toBe('alice@example.test')
      expect(seen.headers['x-user-name']).toBe('User alice')
      expect(seen.headers.cookie ?? '').not.toContain('warren_')
      const cookie = (await context.cookies()).find((c) => c.name === 'warren_session_oidc')
      expect(cookie?.httpOnly).toBe(true)
      expect(cookie?.sameSite).toBe('Lax')

      // (3) Logout clears the session: the next visit goes through the provider again.
      await page.goto(`http://${host('app')}/ngrok/logout`)
      expect(await page.textContent('h1')).toContain('signed out')
      expect((await context.cookies()).some((c) => c.name === 'warren_session_oidc')).toBe(false)
      visited.length = 0
      await page.goto(`http://${host('app')}/echo?again=1`)
      expect(visited.some((u) => u.startsWith(`${idp.issuer}/auth`))).toBe(true)

      // (4) A user the allow-list rule refuses gets 403 from deny.
      const other = await browser.newContext()
      const page2 = await other.newPage()
      await page2.goto(`http://${host('app')}/echo`)
      await page2.fill('input[name=login]', 'mallory')
      await page2.fill('input[name=password]', 'any')
      await page2.click('button[type=submit]')
      await page2.waitForSelector('button[type=submit]')
      const [denied] = await Promise.all([page2.waitForResponse((r) => r.url().startsWith(`http://${host('app')}/echo`), { timeout: 15_000 }), page2.click('button[type=submit]')])
      expect(denied.status()).toBe(403)
      expect(denied.headers()['warren-error-code']).toBe('ERR_WARREN_2101')
    } finally {
      await browser.close()
    }
  }, 90_000)
})

describe('openid-connect sessions and token checks (compiled binary)', () => {
  test('a session past max_session_duration goes back to the provider', async () => {
    const session = await signIn('short', 'bob')
    const ok = await hostFetch(edge, host('short'), '/echo', { headers: { cookie: session } })
    expect(ok.status).toBe(200)
    expect(((await ok.json()) as { headers: Record<string, string> }).headers['x-user-email']).toBe('bob@example.test')
    await Bun.sleep(2200)
    const expired = await hostFetch(edge, host('short'), '/echo', { headers: { cookie: session } })
    expect(expired.status).toBe(302)
    expect(expired.headers.get('location')!.startsWith(`${idp.issuer}/auth`)).toBe(true)
  })

  test('activity slides the idle timeout: the edge renews the cookie on the upstream\'s answer', async () => {
    const original = await signIn('idle', 'frank')
    await Bun.sleep(1000)
    const res = await hostFetch(edge, host('idle'), '/echo', { headers: { cookie: original } })
    expect(res.status).toBe(200)
    const renewed = res.headers.getSetCookie().find((c) => c.startsWith('warren_session_oidc='))
    expect(renewed).toBeDefined()
    await Bun.sleep(2300)
    // 3.3 s after sign-in: the original cookie's last activity is too old, the renewed one's is not.
    expect((await hostFetch(edge, host('idle'), '/echo', { headers: { cookie: original } })).status).toBe(302)
    expect((await hostFetch(edge, host('idle'), '/echo', { headers: { cookie: renewed!.split(';')[0]! } })).status).toBe(200)
  })

  test('oauth with a provider preset signs in and exposes actions.ngrok.oauth', async () => {
    const { session } = await signInThroughEdge(edge, host('goog'), 'grace')
    expect(session.startsWith('warren_session_google=')).toBe(true)
    const res = await hostFetch(edge, host('goog'), '/echo', { headers: { cookie: session } })
    expect(res.status).toBe(200)
    expect(((await res.json()) as { headers: Record<string, string> }).headers['x-user-email']).toBe('grace@example.test')
  })

  test('a session cookie from another endpoint is no session here', async () => {
    const session = await signIn('app', 'carol')
    expect((await hostFetch(edge, host('app'), '/echo', { headers: { cookie: session } })).status).toBe(200)
    expect((await hostFetch(edge, host('short'), '/echo', { headers: { cookie: session } })).status).toBe(302)
  })

  test.each([
    { name: 'aud', why: 'an id_token for another client' },
    { name: 'iss', why: 'an id_token from another issuer' },
  ])('$why is refused with 401', async ({ name }) => {
    const first = await hostFetch(edge, host(name), '/hello')
    expect(first.status).toBe(302)
    const flow = first.headers.getSetCookie()[0]!.split(';')[0]!
    const auth = await fetch(first.headers.get('location')!, { redirect: 'manual' })
    const back = new URL(auth.headers.get('location')!)
    const res = await hostFetch(edge, host(name), back.pathname + back.search, { headers: { cookie: flow, accept: 'application/json' } })
    expect(res.status).toBe(401)
    expect(res.headers.get('warren-error-code')).toBe('ERR_WARREN_2163')
    expect(res.headers.getSetCookie().some((c) => c.startsWith('warren_session_'))).toBe(false)
    expect(upstream.seen.some((s) => s.headers.host?.startsWith(`${name}.`))).toBe(false)
  })

  test('the client secret and session cookies never reach the log', async () => {
    const session = await signIn('app', 'dave')
    await hostFetch(edge, host('app'), '/echo', { headers: { cookie: session } })
    const logs = edge.logs()
    expect(logs.length).toBeGreaterThan(0)
    expect(logs).not.toContain(SECRET)
    expect(logs).not.toContain(session.split('=')[1]!)
  })
})

describe('the session key (compiled binary)', () => {
  test('is made on first start under certs/identity/ and keeps sessions across a restart', async () => {
    const ports = { http: await freePort(), https: await freePort(), api: await freePort(), agent: await freePort(), idp: await freePort() }
    const certs = mkdtempSync(join(tmpdir(), 'warren-oidc-certs-'))
    const args = ['--http', `127.0.0.1:${ports.http}`, '--https', `127.0.0.1:${ports.https}`, '--api', `127.0.0.1:${ports.api}`, '--agent', `127.0.0.1:${ports.agent}`, '--certs', certs]
    const policies = { 'keep.yml': oidcEndpoint('keep', `http://127.0.0.1:${ports.idp}`) }
    const keepHost = `keep.warren.localhost:${ports.http}`
    const ownIdp = await startIdp(ports.idp, [{ client_id: 'edge', client_secret: SECRET, redirect_uris: [`http://${keepHost}/ngrok/callback`] }])
    let restartable = await startEdge({ policies, args })
    try {
      const keyFile = join(certs, 'identity', 'session.key')
      expect(statSync(keyFile).mode & 0o777).toBe(0o600)
      // The edge listens where `args` say, not on the ports startEdge picked for itself.
      const at = (e: Edge): Edge => ({ ...e, base: `http://127.0.0.1:${ports.http}` })
      const { session } = await signInThroughEdge(at(restartable), keepHost, 'erin')
      expect((await hostFetch(at(restartable), keepHost, '/echo', { headers: { cookie: session } })).status).toBe(200)
      await restartable.stop()
      restartable = await startEdge({ policies, args })
      const after = await hostFetch(at(restartable), keepHost, '/echo', { headers: { cookie: session } })
      expect(after.status).toBe(200)
      expect(((await after.json()) as { headers: Record<string, string> }).headers['x-user-email']).toBe('erin@example.test')
    } finally {
      await restartable.stop()
      await ownIdp.stop()
      rmSync(certs, { recursive: true, force: true })
    }
  })
})
