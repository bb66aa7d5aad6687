/**
 * A token issuer for jwt-validation tests: key pairs made with jose, a JWKS served over HTTP on
 * loopback (it counts its fetches, and its keys can be rotated), and signed tokens.
 */
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose'

export interface IssuerKey {
  kid: string
  alg: string
  privateKey: CryptoKey
  jwk: JWK
}

export async function makeKey(kid: string, alg = 'RS256'): Promise<IssuerKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' }
  return { kid, alg, privateKey, jwk }
}

export interface JwksServer {
  url: string
  /** How many times the JWKS was fetched. */
  readonly fetches: number
  /** The keys the JWKS publishes from now on. */
  publish(keys: IssuerKey[]): void
  stop(): void
}

/** Serves `/jwks.json` on 127.0.0.1 (a free port). */
export function serveJwks(keys: IssuerKey[]): JwksServer {
  let published = keys
  let fetches = 0
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    fetch(req) {
      if (new URL(req.url).pathname !== '/jwks.json') return new Response('not found', { status: 404 })
      fetches++
      return Response.json({ keys: published.map((k) => k.jwk) })
    },
  })
  return {
    url: `http://127.0.0.1:${server.port}/jwks.json`,
    get fetches() {
      return fetches
    },
    publish(next) {
      published = next
    },
    stop() {
      void server.stop(true)
    },
  }
}

export interface TokenOptions {
  iss?: string
  aud?: string | string[]
  /** Seconds from now; negative: already expired. */
  expiresIn?: number
  typ?: string
  claims?: JWTPayload
}

export async function signToken(key: IssuerKey, options: TokenOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000)
  const jwt = new SignJWT({ ...options.claims })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, ...(options.typ ? { typ: options.typ } : {}) })
    .setIssuedAt(now - 10)
    .setExpirationTime(now + (options.expiresIn ?? 300))
    .setSubject('user-1')
  if (options.iss !== undefined) jwt.setIssuer(options.iss)
  if (options.aud !== undefined) jwt.setAudience(options.aud)
  return jwt.sign(key.privateKey)
}
