import * as oauth from 'oauth4webapi'
import { CODES, type ErrorCode } from '../../lib/errors.ts'
import { log } from '../../lib/log.ts'
import type { Secret } from '../../lib/secret.ts'
import { errorResponse, sized } from '../../proxy/errors.ts'
import { parseCookieHeader } from '../cookies.ts'
import { CONTINUE, type ActionRun, type HttpExchange, type Outcome } from '../types.ts'
import { identityOf } from './providers.ts'
import { clearCookie, cookieHeader, seal, unseal } from './session.ts'

/** ngrok's reserved paths: start a login, end a session. */
export const LOGIN_PATH = '/ngrok/login'
export const LOGOUT_PATH = '/ngrok/logout'
/** Where the provider sends the browser back (ngrok has a hosted one; a self-hosted edge uses the endpoint's own). */
export const CALLBACK_PATH = '/ngrok/callback'

/** How long a started login may take at the provider. */
const FLOW_TTL_MS = 10 * 60_000
/** A failed discovery is retried after this long, not on every request. */
const DISCOVERY_RETRY_MS = 5_000
/** Discovered metadata is fetched again after this long (providers rotate endpoints rarely). */
const DISCOVERY_TTL_MS = 60 * 60_000
const HTTP_TIMEOUT_MS = 10_000
/** Claims kept in the session cookie beyond the identity, so a cookie stays well under 4 KiB. */
const MAX_CLAIMS_BYTES = 1500
/** Claims about the token rather than the user: not exposed. */
const TOKEN_CLAIMS = new Set(['iss', 'aud', 'exp', 'iat', 'nbf', 'nonce', 'at_hash', 'c_hash', 'azp', 'sid', 'jti', 'auth_time', 'acr', 'amr'])

/** Where the authorization server comes from: OIDC discovery, or fixed OAuth 2.0 URLs. */
export type ServerSource =
  | { kind: 'discover'; issuer: URL }
  | { kind: 'static'; authorization: URL; token: URL; userinfo: URL }

export interface IdentityConfig {
  /** Result name under `actions.ngrok` (`oauth`, `openid_connect`). */
  result: string
  authId: string
  server: ServerSource
  clientId: string
  clientSecret: Secret
  /** `auto` picks basic or post from what discovery says the provider supports. */
  clientAuth: 'basic' | 'post' | 'auto'
  scopes: readonly string[]
  authzParams: Readonly<Record<string, string>>
  maxSessionMs: number
  idleMs: number
  /** 0: never ask the provider again during a session. */
  userinfoRefreshMs: number
  allowCorsPreflight: boolean
  /** The edge's session key; absent where policies are only checked (agent side, `warren validate`). */
  key: Uint8Array | undefined
}

/** True for hosts that never leave the machine: the only place an http:// provider is accepted. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase()
  return h === 'localhost' || h.endsWith('.localhost') || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h)
}

/** A relative path on this endpoint, or '/' (never an open redirect to another site). */
function safePath(text: string | null | undefined): string {
  if (!text || !text.startsWith('/') || text.startsWith('//') || text.startsWith('/\\')) return '/'
  return text
}

class FlowError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message)
  }
}

/** The claims worth keeping: user attributes, strings/numbers/booleans/short lists, within a size budget. */
function keptClaims(...sources: (Record<string, unknown> | undefined)[]): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  let size = 0
  for (const source of sources)
    for (const [k, value] of Object.entries(source ?? {})) {
      if (TOKEN_CLAIMS.has(k)) continue
      const simple = ['string', 'number', 'boolean'].includes(typeof value) || (Array.isArray(value) && value.every((x) => typeof x === 'string'))
      if (!simple) continue
      const cost = k.length + JSON.stringify(value).length
      if (size + cost > MAX_CLAIMS_BYTES) continue
      size += cost
      out[k] = value
    }
  return out
}

/**
 * The runtime of `oauth` and `openid-connect`: the authorization-code flow with PKCE (and nonce for
 * OpenID Connect) through oauth4webapi, a session in an encrypted cookie per `auth_id`, ngrok's
 * login and logout paths, and the identity as `actions.ngrok.<result>.*` for the rules after it.
 */
export function identityAction(config: IdentityConfig): ActionRun {
  const sessionCookie = `warren_session_${config.authId}`
  const flowCookie = `warren_login_${config.authId}`
  const client: oauth.Client = { client_id: config.clientId }
  const insecure = (config.server.kind === 'discover' ? config.server.issuer : config.server.authorization).protocol === 'http:'
  const http = { [oauth.allowInsecureRequests]: insecure, signal: () => AbortSignal.timeout(HTTP_TIMEOUT_MS) }
  const providerName = config.server.kind === 'discover' ? config.server.issuer.href : config.server.authorization.origin

  let server: { at: number; value: Promise<oauth.AuthorizationServer> } | undefined
  function authorizationServer(): Promise<oauth.AuthorizationServer> {
    const source = config.server
    if (source.kind === 'static') {
      return Promise.resolve({
        issuer: source.authorization.origin,
        authorization_endpoint: source.authorization.href,
        token_endpoint: source.token.href,
        userinfo_endpoint: source.userinfo.href,
      })
    }
    if (server && Date.now() - server.at < DISCOVERY_TTL_MS) return server.value
    const value = (async () => {
      try {
        const res = await oauth.discoveryRequest(source.issuer, { ...http, algorithm: 'oidc' })
        return await oauth.processDiscoveryResponse(source.issuer, res)
      } catch (err) {
        // Try again soon, not on every request while the provider is down.
        setTimeout(() => {
          if (server?.value === value) server = undefined
        }, DISCOVERY_RETRY_MS).unref?.()
        throw new FlowError(502, CODES.IDENTITY_PROVIDER_UNAVAILABLE, `Cannot discover the identity provider ${source.issuer.href}: ${(err as Error).message}`)
      }
    })()
    server = { at: Date.now(), value }
    return value
  }

  function clientAuth(as: oauth.AuthorizationServer): oauth.ClientAuth {
    const secret = config.clientSecret.reveal()
    let method = config.clientAuth
    if (method === 'auto') {
      const supported = as.token_endpoint_auth_methods_supported
      method = !supported || supported.includes('client_secret_basic') ? 'basic' : 'post'
    }
    return method === 'basic' ? oauth.ClientSecretBasic(secret) : oauth.ClientSecretPost(secret)
  }

  function audience(ex: HttpExchange): string {
    return `${config.result}:${config.authId}:${providerName}:${config.clientId}@${ex.url.host}`
  }

  function key(): Uint8Array {
    if (!config.key) throw new FlowError(500, CODES.INTERNAL, 'The edge has no session key for identity actions.')
    return config.key
  }

  async function startLogin(ex: HttpExchange, returnTo: string, forceLogin: boolean): Promise<Outcome> {
    const as = await authorizationServer()
    if (!as.authorization_endpoint) throw new FlowError(502, CODES.IDENTITY_PROVIDER_UNAVAILABLE, 'The identity provider has no authorization endpoint.')
    const verifier = oauth.generateRandomCodeVerifier()
    const state = oauth.generateRandomState()
    const nonce = config.server.kind === 'discover' ? oauth.generateRandomNonce() : undefined
    const url = new URL(as.authorization_endpoint)
    const params = url.searchParams
    for (const [k, v] of Object.entries(config.authzParams)) params.set(k, v)
    params.set('client_id', config.clientId)
    params.set('redirect_uri', `${ex.url.origin}${CALLBACK_PATH}`)
    params.set('response_type', 'code')
    params.set('scope', config.scopes.join(' '))
    params.set('state', state)
    params.set('code_challenge', await oauth.calculatePKCECodeChallenge(verifier))
    params.set('code_challenge_method', 'S256')
    if (nonce) params.set('nonce', nonce)
    if (forceLogin) params.set('prompt', 'login')
    const expiresAt = Date.now() + FLOW_TTL_MS
    const flow = await seal({ v: verifier, s: state, ...(nonce ? { n: nonce } : {}), r: returnTo }, key(), { audience: `${audience(ex)}#login`, expiresAt })
    const headers = new Headers({ location: url.href, 'cache-control': 'no-store' })
    headers.append('set-cookie', cookieHeader(flowCookie, flow, { secure: ex.url.protocol === 'https:', maxAgeSeconds: FLOW_TTL_MS / 1000 }))
    return { kind: 'respond', response: sized('', 302, headers) }
  }

  async function finishLogin(ex: HttpExchange, flowText: string | undefined): Promise<Outcome> {
    const flow = flowText ? await unseal(flowText, key(), { audience: `${audience(ex)}#login` }) : undefined
    if (!flow || typeof flow.v !== 'string' || typeof flow.s !== 'string') {
      throw new FlowError(400, CODES.IDENTITY_CALLBACK_INVALID, 'No login is in progress in this browser (it expired, or cookies are blocked). Reload the page to start again.')
    }
    const as = await authorizationServer()
    const oidc = typeof flow.n === 'string'
    let claims: Record<string, unknown>
    let accessToken: string
    try {
      const params = oauth.validateAuthResponse(as, client, ex.url, flow.s)
      const res = await oauth.authorizationCodeGrantRequest(as, client, clientAuth(as), params, `${ex.url.origin}${CALLBACK_PATH}`, flow.v, http)
      const tokens = await oauth.processAuthorizationCodeResponse(as, client, res, oidc ? { expectedNonce: flow.n as string, requireIdToken: true } : { requireIdToken: false })
      accessToken = tokens.access_token
      const idToken = oidc ? oauth.getValidatedIdTokenClaims(tokens) : undefined
      const profile = await fetchProfile(as, accessToken, idToken?.sub)
      claims = { ...(idToken ?? {}), ...profile }
    } catch (err) {
      if (err instanceof FlowError) throw err
      const detail = err instanceof oauth.AuthorizationResponseError || err instanceof oauth.ResponseBodyError ? `${err.error}${err.error_description ? `: ${err.error_description}` : ''}` : (err as Error).message
      throw new FlowError(401, CODES.IDENTITY_LOGIN_FAILED, `The identity provider did not sign you in (${detail}).`)
    }
    const now = Date.now()
    const headers = new Headers({ location: safePath(typeof flow.r === 'string' ? flow.r : '/'), 'cache-control': 'no-store' })
    headers.append('set-cookie', clearCookie(flowCookie, ex.url.protocol === 'https:'))
    headers.append('set-cookie', await sessionSetCookie(ex, { claims: keptClaims(claims), at: now, seen: now, rf: now, ...(config.userinfoRefreshMs ? { tok: accessToken } : {}) }))
    return { kind: 'respond', response: sized('', 302, headers) }
  }

  /** The user's profile: the userinfo endpoint (OIDC, checked against the id_token's subject) or the provider's API. */
  async function fetchProfile(as: oauth.AuthorizationServer, accessToken: string, subject: string | undefined): Promise<Record<string, unknown>> {
    if (!as.userinfo_endpoint) return {}
    if (config.server.kind === 'discover') {
      const res = await oauth.userInfoRequest(as, client, accessToken, http)
      return { ...(await oauth.processUserInfoResponse(as, client, subject ?? oauth.skipSubjectCheck, res)) }
    }
    const res = await oauth.protectedResourceRequest(accessToken, 'GET', new URL(as.userinfo_endpoint), new Headers({ accept: 'application/json', 'user-agent': 'warren' }), null, http)
    if (!res.ok) throw new Error(`the profile API answered ${res.status}`)
    const body: unknown = await res.json()
    if (typeof body !== 'object' || body === null) throw new Error('the profile API answered no JSON object')
    return body as Record<string, unknown>
  }

  async function sessionSetCookie(ex: HttpExchange, session: { claims: Record<string, unknown>; at: number; seen: number; rf: number; tok?: string }): Promise<string> {
    const expiresAt = session.at + config.maxSessionMs
    const value = await seal(session, key(), { audience: audience(ex), expiresAt })
    return cookieHeader(sessionCookie, value, { secure: ex.url.protocol === 'https:', maxAgeSeconds: (expiresAt - Date.now()) / 1000 })
  }

  function logout(ex: HttpExchange): Outcome {
    const target = ex.url.searchParams.get('redirect_path')
    const headers = new Headers({ 'cache-control': 'no-store' })
    headers.append('set-cookie', clearCookie(sessionCookie, ex.url.protocol === 'https:'))
    if (target !== null) {
      headers.set('location', safePath(target))
      return { kind: 'respond', response: sized('', 302, headers) }
    }
    headers.set('content-type', 'text/html; charset=utf-8')
    return { kind: 'respond', response: sized('<!doctype html><html><head><meta charset="utf-8"><title>Signed out</title></head><body><h1>You are signed out.</h1></body></html>\n', 200, headers) }
  }

  /** The session in the request's cookie, still within its idle and maximum time; refreshed from userinfo when due. */
  async function currentSession(ex: HttpExchange, text: string | undefined): Promise<Record<string, unknown> | undefined> {
    if (!text) return undefined
    const session = await unseal(text, key(), { audience: audience(ex) })
    if (!session) return undefined
    const now = Date.now()
    const at = Number(session.at)
    let seen = Number(session.seen)
    let rf = Number(session.rf)
    if (!(now - at < config.maxSessionMs) || !(now - seen < config.idleMs)) return undefined
    let claims = (session.claims ?? {}) as Record<string, unknown>
    let refreshed = false
    if (config.userinfoRefreshMs && now - rf >= config.userinfoRefreshMs && typeof session.tok === 'string') {
      try {
        const as = await authorizationServer()
        claims = keptClaims(claims, await fetchProfile(as, session.tok, typeof claims.sub === 'string' ? claims.sub : undefined))
      } catch (err) {
        // The provider no longer vouches for this user (revoked token, deleted account): sign in again.
        log.info('identity session ended: the provider refused the userinfo refresh', { auth_id: config.authId, error: (err as Error).message })
        return undefined
      }
      rf = now
      refreshed = true
    }
    // Sliding idle timeout: a new cookie once a good part of the idle time has passed, not on every request.
    if (refreshed || now - seen >= Math.min(60_000, config.idleMs / 4)) {
      seen = now
      ;(ex.responseCookies ??= []).push(await sessionSetCookie(ex, { claims, at, seen, rf, ...(typeof session.tok === 'string' ? { tok: session.tok } : {}) }))
    }
    return claims
  }

  /** The edge's own cookies never reach the upstream. */
  function stripOwnCookies(ex: HttpExchange): void {
    const header = ex.headers.get('cookie')
    if (!header) return
    const kept = header
      .split(';')
      .map((p) => p.trim())
      .filter((p) => p !== '' && !p.startsWith(`${sessionCookie}=`) && !p.startsWith(`${flowCookie}=`))
    if (kept.length) ex.headers.set('cookie', kept.join('; '))
    else ex.headers.delete('cookie')
  }

  async function run(ex: HttpExchange): Promise<Outcome> {
    if (config.allowCorsPreflight && ex.method === 'OPTIONS' && ex.headers.has('origin') && ex.headers.has('access-control-request-method')) return CONTINUE
    const cookies = parseCookieHeader(ex.headers.has('cookie') ? [ex.headers.get('cookie')!] : [])
    const path = ex.url.pathname
    const query = ex.url.searchParams
    // Another action's auth_id: this one treats the path like any other (a session is still required).
    const mine = (query.get('auth_id') ?? config.authId) === config.authId
    if (path === LOGOUT_PATH && mine) return logout(ex)
    if (path === LOGIN_PATH && mine) return startLogin(ex, safePath(query.get('redirect_path')), true)
    if (path === CALLBACK_PATH && cookies[flowCookie]) return finishLogin(ex, cookies[flowCookie]?.[0]?.value)
    const claims = await currentSession(ex, cookies[sessionCookie]?.[0]?.value)
    if (!claims) {
      // A callback without this action's login cookie: say so rather than start a login that comes back here.
      if (path === CALLBACK_PATH) return finishLogin(ex, undefined)
      const back = ex.method === 'GET' || ex.method === 'HEAD' ? `${path}${ex.url.search}` : '/'
      return startLogin(ex, safePath(back), false)
    }
    stripOwnCookies(ex)
    ex.actions[config.result] = { identity: identityOf(claims), claims }
    return CONTINUE
  }

  return async function identity(ex) {
    try {
      return await run(ex)
    } catch (err) {
      if (!(err instanceof FlowError)) throw err
      log.warn('identity action refused a request', { endpoint: ex.endpoint.url, auth_id: config.authId, code: err.code, error: err.message })
      return { kind: 'respond', response: errorResponse(err.status, err.code, err.message, ex.headers.get('accept')) }
    }
  }
}
