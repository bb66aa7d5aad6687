import { AsyncLocalStorage } from 'node:async_hooks'

/** An RFC 7807 problem document as ACME servers send them (RFC 8555 §6.7). */
export interface AcmeProblem {
  /** e.g. `urn:ietf:params:acme:error:rateLimited`. */
  type: string
  detail?: string
  status?: number
  /** Per-identifier problems of a compound error. */
  subproblems?: { type: string; detail?: string; identifier?: { type: string; value: string } }[]
}

/** What one issuance saw on the wire: the last problem document and any Retry-After. */
export interface ProblemScope {
  problem?: AcmeProblem
  /** Milliseconds the server asked us to wait (Retry-After on 429/503). */
  retryAfterMs?: number
}

const scopes = new AsyncLocalStorage<ProblemScope>()

/** Runs `fn` so that problem documents met by ACME requests inside it land in `scope`. */
export function withProblemScope<T>(scope: ProblemScope, fn: () => Promise<T>): Promise<T> {
  return scopes.run(scope, fn)
}

/** The scope of the issuance running in this async context, if any. */
export function currentScope(): ProblemScope | undefined {
  return scopes.getStore()
}

/** Minimal view of an axios response, so this file does not depend on axios. */
interface ResponseLike {
  status?: number
  headers?: Record<string, unknown>
  data?: unknown
}

/**
 * Finds the problem in an ACME response body: the body itself (`application/problem+json`), or the
 * `error` of an invalid challenge, authorization or order (a failed validation is reported there).
 */
export function problemOf(data: unknown): AcmeProblem | undefined {
  if (!data || typeof data !== 'object') return undefined
  const d = data as Record<string, unknown>
  if (typeof d.type === 'string' && d.type.startsWith('urn:')) return cleanProblem(d)
  if (d.error && typeof d.error === 'object') return cleanProblem(d.error as Record<string, unknown>)
  // An invalid authorization carries the failure on the challenge that was tried.
  if (d.status === 'invalid' && Array.isArray(d.challenges))
    for (const c of d.challenges as Record<string, unknown>[]) if (c?.error && typeof c.error === 'object') return cleanProblem(c.error as Record<string, unknown>)
  return undefined
}

function cleanProblem(p: Record<string, unknown>): AcmeProblem | undefined {
  if (typeof p.type !== 'string') return undefined
  const out: AcmeProblem = { type: p.type }
  if (typeof p.detail === 'string') out.detail = p.detail
  if (typeof p.status === 'number') out.status = p.status
  if (Array.isArray(p.subproblems))
    out.subproblems = (p.subproblems as Record<string, unknown>[])
      .filter((s) => s && typeof s.type === 'string')
      .map((s) => ({
        type: s.type as string,
        ...(typeof s.detail === 'string' ? { detail: s.detail } : {}),
        ...(s.identifier && typeof s.identifier === 'object' ? { identifier: s.identifier as { type: string; value: string } } : {}),
      }))
  return out
}

/** Retry-After in milliseconds (seconds or an HTTP date), or undefined. */
export function retryAfterMs(value: unknown, now = Date.now()): number | undefined {
  if (typeof value !== 'string' || value.trim() === '') return undefined
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000
  const at = Date.parse(value)
  return Number.isNaN(at) ? undefined : Math.max(0, at - now)
}

/** Notes what an ACME response says in the scope of the issuance that made the request. */
export function recordResponse(resp: ResponseLike | undefined): void {
  const scope = scopes.getStore()
  if (!scope || !resp) return
  const problem = problemOf(resp.data)
  if (problem) scope.problem = problem
  if (resp.status === 429 || resp.status === 503) {
    const after = retryAfterMs(resp.headers?.['retry-after'])
    if (after !== undefined) scope.retryAfterMs = after
  }
}

/** One line for logs: `urn:…:rateLimited: too many certificates (429)`. */
export function formatProblem(p: AcmeProblem): string {
  const sub = p.subproblems?.length ? `; ${p.subproblems.map((s) => `${s.identifier?.value ?? '?'}: ${s.type.replace(/^urn:ietf:params:acme:error:/, '')} ${s.detail ?? ''}`.trim()).join('; ')}` : ''
  return `${p.type}${p.detail ? `: ${p.detail}` : ''}${p.status ? ` (${p.status})` : ''}${sub}`
}
