/**
 * A real OpenID Connect provider for tests: oidc-provider on loopback with its development login
 * forms (any username, any password), plus a scripted browser for tests that need no Chromium.
 * It can also issue JWT access tokens to API clients (client_credentials with resource indicators).
 * oidc-provider warns that Bun is an unsupported runtime; it works (platform-notes §5).
 */
import type { JWK } from 'jose'
import type { Server } from 'node:http'
import Provider, { errors } from 'oidc-provider'
import { hostFetch, type Edge } from '../e2e/framework/process.ts'

export interface IdpClient {
  client_id: string
  client_secret: string
  redirect_uris: string[]
  /** oidc-provider's default is client_secret_basic; the oauth presets post the secret. */
  token_endpoint_auth_method?: 'client_secret_basic' | 'client_secret_post'
  /** Default: the code flow. An API client (`client_credentials`) needs no redirect_uris. */
  grant_types?: ('authorization_code' | 'client_credentials')[]
}

export interface IdpOptions {
  /**
   * Private signing keys (JWKs with `kid`, `alg` and `use: 'sig'`) instead of oidc-provider's fixed
   * development key. Starting the provider again with other keys rotates them.
   */
  keys?: JWK[]
  /**
   * APIs (resource indicators) the client_credentials grant issues JWT access tokens for: RFC 9068
   * (`typ: at+jwt`), `aud` the indicator, `sub` the client, scope `api:read`, signed with the
   * first RS256 key, valid 5 minutes.
   */
  resources?: string[]
}

export interface Idp {
  issuer: string
  /** How many times `/jwks` (the signing keys) was fetched from this provider. */
  readonly jwksFetches: number
  stop(): Promise<void>
}

/** Starts the provider on `port` (127.0.0.1). Users are whatever login name the form gets: `<login>@example.test`. */
export async function startIdp(port: number, clients: IdpClient[], options: IdpOptions = {}): Promise<Idp> {
  const issuer = `http://127.0.0.1:${port}`
  const resources = new Set(options.resources)
  const provider = new Provider(issuer, {
    clients: clients.map(({ grant_types = ['authorization_code'], ...c }) => ({
      ...c,
      grant_types,
      response_types: grant_types.includes('authorization_code') ? ['code'] : [],
    })),
    ...(options.keys ? { jwks: { keys: options.keys } } : {}),
    cookies: { keys: ['test-cookie-key-1'] },
    ttl: { ClientCredentials: 300 },
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: resources.size > 0 },
      resourceIndicators: {
        getResourceServerInfo: async (_ctx: unknown, indicator: string) => {
          if (!resources.has(indicator)) throw new errors.InvalidTarget()
          return { scope: 'api:read', accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } }
        },
      },
    },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    findAccount: async (_ctx: unknown, sub: string) => ({
      accountId: sub,
      claims: async () => ({ sub, email: `${sub}@example.test`, email_verified: true, name: `User ${sub}` }),
    }),
  })
  let jwksFetches = 0
  provider.use(async (ctx, next) => {
    if (ctx.path === '/jwks') jwksFetches++
    await next()
  })
  const server: Server = provider.listen(port, '127.0.0.1')
  await new Promise<void>((resolve, reject) => {
    server.once('listening', () => resolve())
    server.once('error', reject)
  })
  return {
    issuer,
    get jwksFetches() {
      return jwksFetches
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        // Clients' idle keep-alive connections would hold the port (a restart on it) and the close.
        server.closeAllConnections()
      }),
  }
}

/** An access token for `resource` from the client_credentials grant (the client authenticates with HTTP Basic). */
export async function clientCredentialsToken(idp: Idp, client: IdpClient, resource: string): Promise<string> {
  const res = await fetch(`${idp.issuer}/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${btoa(`${client.client_id}:${client.client_secret}`)}` },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource, scope: 'api:read' }),
  })
  const body = (await res.json()) as { access_token?: string; error?: string; error_description?: string }
  if (res.status !== 200 || !body.access_token) throw new Error(`the provider refused the token: ${res.status} ${body.error} ${body.error_description}`)
  return body.access_token
}

/**
 * Plays the user at the provider without a browser: from the authorization URL through the login
 * and consent forms to the redirect back. Returns that redirect (the edge's callback URL with code and state).
 */
export async function loginAt(authorizationUrl: string, login: string): Promise<string> {
  const jar = new Map<string, string>()
  const cookie = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ')
  const keep = (res: Response) => {
    for (const line of res.headers.getSetCookie()) {
      const [pair = ''] = line.split(';')
      const eq = pair.indexOf('=')
      jar.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim())
    }
  }
  let url = authorizationUrl
  let body: URLSearchParams | undefined
  for (let step = 0; step < 12; step++) {
    const res = await fetch(url, { method: body ? 'POST' : 'GET', body, headers: { cookie: cookie() }, redirect: 'manual' })
    keep(res)
    body = undefined
    if (res.status >= 300 && res.status < 400) {
      const next = new URL(res.headers.get('location')!, url).href
      if (!next.startsWith(new URL(authorizationUrl).origin)) return next
      url = next
      continue
    }
    const html = await res.text()
    if (res.status !== 200) throw new Error(`the provider answered ${res.status}: ${html.slice(0, 200)}`)
    const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1]
    if (!action) throw new Error(`no form on the provider's page: ${html.slice(0, 200)}`)
    url = new URL(action, url).href
    const prompt = /name="prompt" value="([^"]+)"/.exec(html)?.[1] ?? 'login'
    body = new URLSearchParams(prompt === 'login' ? { prompt, login, password: 'any' } : { prompt })
  }
  throw new Error('too many steps at the provider')
}

/**
 * Signs `login` in at an openid-connect endpoint of a running edge (`host` is its Host header):
 * the edge's redirect, the provider's forms, the callback. Returns the session cookie (`name=value`)
 * and where the edge sent the browser back to.
 */
export async function signInThroughEdge(edge: Edge, host: string, login: string, path = '/hello'): Promise<{ session: string; back: string }> {
  const first = await hostFetch(edge, host, path)
  if (first.status !== 302) throw new Error(`expected the edge to send the browser to the provider, got ${first.status}`)
  const flow = first.headers.getSetCookie()[0]!.split(';')[0]!
  const callback = new URL(await loginAt(first.headers.get('location')!, login))
  const done = await hostFetch(edge, host, callback.pathname + callback.search, { headers: { cookie: flow } })
  const session = done.headers.getSetCookie().find((c) => c.startsWith('warren_session_'))
  if (done.status !== 302 || !session) throw new Error(`the callback answered ${done.status} without a session: ${await done.text()}`)
  return { session: session.split(';')[0]!, back: done.headers.get('location')! }
}
