import { Agent } from 'node:https'
import * as acme from 'acme-client'
import { recordResponse } from './problem.ts'

export type ChallengeType = 'http-01' | 'tls-alpn-01' | 'dns-01'

/** What an ACME challenge handler does: make the proof visible, then take it away again. */
export interface Solver {
  /** `keyAuthorization` is the TXT value for dns-01 (acme-client already hashed it). */
  present(authz: acme.Authorization, challenge: { type: string; token: string }, keyAuthorization: string): Promise<void>
  cleanup(authz: acme.Authorization, challenge: { type: string; token: string }, keyAuthorization: string): Promise<void>
}

/** Where the account lives and how to prove it. */
export interface AccountOptions {
  directory: string
  /** PEM account key. */
  accountKey: string
  email?: string
  eab?: { kid: string; hmacKey: string }
}

export interface IssueOptions extends AccountOptions {
  /** The account URL `registerAccount` returned. */
  accountUrl: string
  /** Challenge types in order of preference (wildcards only ever use dns-01). */
  challenges: readonly ChallengeType[]
  solvers: Partial<Record<ChallengeType, Solver>>
  /** First status poll delay; later ones double up to 10 s. */
  pollMs: number
}

/** A failure at a named step of an order, so logs say where it broke. */
export class AcmeStepError extends Error {
  readonly step: string
  constructor(step: string, cause: unknown) {
    super(`${step}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause })
    this.name = 'AcmeStepError'
    this.step = step
  }
}

async function step<T>(name: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    throw err instanceof AcmeStepError ? err : new AcmeStepError(name, err)
  }
}

let configured = false

/** The ACME server could not be reached (refused, reset, timed out, TLS failure). */
export class AcmeNetworkError extends Error {
  readonly code: string | undefined
  constructor(url: string, cause: { message?: string; code?: string }) {
    const code = cause.code
    const text = cause.message || code || 'network error'
    super(`cannot reach ${url}: ${text}${code && !text.includes(code) ? ` (${code})` : ''}`, { cause })
    this.name = 'AcmeNetworkError'
    this.code = code
  }
}

/**
 * Sets up acme-client's shared HTTP client once per process: trust `trustedRoots` (PEM) for the
 * directory's HTTPS when given, a 30 s request timeout, no retries of its own (the manager retries
 * whole orders with backoff and honors Retry-After), and an interceptor that keeps problem
 * documents and turns network failures into one clear error.
 */
export function configureAcmeHttp(options: { trustedRoots?: string }): void {
  const http = acme.axios
  http.defaults.timeout = 30_000
  http.defaults.httpsAgent = options.trustedRoots ? new Agent({ ca: options.trustedRoots, keepAlive: true }) : new Agent({ keepAlive: true })
  const settings = (http.defaults as { acmeSettings?: { retryMaxAttempts: number } }).acmeSettings
  if (settings) settings.retryMaxAttempts = 0
  if (configured) return
  configured = true
  http.interceptors.response.use(
    (resp) => {
      recordResponse(resp)
      return resp
    },
    (err: { response?: Parameters<typeof recordResponse>[0]; config?: { url?: string }; message?: string; code?: string }) => {
      if (err?.response) recordResponse(err.response)
      else if (err?.config) return Promise.reject(new AcmeNetworkError(err.config.url ?? 'the ACME server', err))
      return Promise.reject(err)
    },
  )
  // Run before acme-client's own interceptor: on a failure without a response it reads
  // `response.config` and throws "undefined is not an object", hiding the real error. An error
  // without `config` passes through it untouched. (axios documents `handlers` as public.)
  const manager = http.interceptors.response as unknown as { handlers?: unknown[] }
  if (Array.isArray(manager.handlers) && manager.handlers.length > 1) manager.handlers.unshift(manager.handlers.pop())
}

/** A new ECDSA P-256 key as PEM (account and certificate keys). */
export async function createKey(): Promise<string> {
  return (await acme.crypto.createPrivateEcdsaKey('P-256')).toString()
}

/** The challenge to answer for an authorization: the first preferred type the CA offers that warren can solve. */
export function pickChallenge(authz: acme.Authorization, preference: readonly ChallengeType[], solvers: IssueOptions['solvers']) {
  const offered = authz.challenges ?? []
  const order: readonly ChallengeType[] = authz.wildcard ? ['dns-01'] : preference
  for (const type of order) {
    if (!solvers[type]) continue
    const challenge = offered.find((c) => c.type === type)
    if (challenge) return { type, challenge }
  }
  const want = order.filter((t) => solvers[t]).join(', ') || 'none'
  throw new Error(
    `no usable challenge for "${authz.identifier.value}"${authz.wildcard ? ' (wildcard: needs dns-01 and tls.acme.dns_hook)' : ''}: the CA offers ${offered.map((c) => c.type).join(', ') || 'none'}, warren is set up for ${want}`,
  )
}

function client(options: AccountOptions & { accountUrl?: string; pollMs?: number }): acme.Client {
  return new acme.Client({
    directoryUrl: options.directory,
    accountKey: options.accountKey,
    ...(options.accountUrl ? { accountUrl: options.accountUrl } : {}),
    ...(options.eab ? { externalAccountBinding: { kid: options.eab.kid, hmacKey: options.eab.hmacKey } } : {}),
    backoffAttempts: 12,
    backoffMin: options.pollMs ?? 1000,
    backoffMax: 10_000,
  })
}

/**
 * Creates the ACME account for the key (agreeing to the terms of service, with EAB when set), or
 * finds the one that exists, and returns its URL. Orders then reuse the URL.
 */
export async function registerAccount(options: AccountOptions): Promise<string> {
  const c = client(options)
  await step('register the ACME account', () =>
    c.createAccount({ termsOfServiceAgreed: true, ...(options.email ? { contact: [`mailto:${options.email}`] } : {}) }),
  )
  return c.getAccountUrl()
}

/**
 * Runs one ACME order for `name` (an exact name or `*.` wildcard) and returns the PEM chain with a
 * new ECDSA key: order, one challenge per authorization (present,
 * tell the CA, wait, clean up), CSR, finalize, download.
 *
 * @example
 * const { cert, key } = await issueCertificate('api.example.com', { directory, accountKey, accountUrl, challenges: ['http-01'], solvers, pollMs: 1000 })
 */
export async function issueCertificate(name: string, options: IssueOptions): Promise<{ cert: string; key: string }> {
  const c = client(options)
  const order = await step('create the order', () => c.createOrder({ identifiers: [{ type: 'dns', value: name }] }))
  const authorizations = await step('fetch the authorizations', () => c.getAuthorizations(order))
  await Promise.all(
    authorizations.map(async (authz) => {
      if (authz.status === 'valid') return
      const what = `${authz.wildcard ? '*.' : ''}${authz.identifier.value}`
      const { type, challenge } = pickChallenge(authz, options.challenges, options.solvers)
      const solver = options.solvers[type]!
      const keyAuthorization = await c.getChallengeKeyAuthorization(challenge)
      await step(`${type} for "${what}": present the challenge`, () => solver.present(authz, challenge, keyAuthorization))
      try {
        await step(`${type} for "${what}": validation`, async () => {
          await c.completeChallenge(challenge)
          await c.waitForValidStatus(challenge)
        })
      } finally {
        await solver.cleanup(authz, challenge, keyAuthorization).catch(() => {})
      }
    }),
  )
  const key = await createKey()
  // A common name holds at most 64 characters; the SAN alone is what clients check.
  const [, csr] = await acme.crypto.createCsr({ altNames: [name], ...(name.length <= 64 ? { commonName: name } : {}) }, key)
  const finalized = await step('finalize the order', () => c.finalizeOrder(order, csr))
  const cert = await step('download the certificate', () => c.getCertificate(finalized))
  return { cert, key }
}
