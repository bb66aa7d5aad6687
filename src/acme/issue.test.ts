import { afterAll, describe, expect, test } from 'bun:test'
import type * as acme from 'acme-client'
import { configureAcmeHttp, createKey, pickChallenge, registerAccount, type Solver } from './issue.ts'
import { withProblemScope, type ProblemScope } from './problem.ts'

const solver: Solver = { present: async () => {}, cleanup: async () => {} }
const authz = (value: string, types: string[], wildcard = false) =>
  ({ identifier: { type: 'dns', value }, wildcard, status: 'pending', challenges: types.map((type) => ({ type, token: 't', url: 'u', status: 'pending' })) }) as unknown as acme.Authorization

describe('pickChallenge()', () => {
  test.each([
    { desc: 'first preference the CA offers', offered: ['http-01', 'tls-alpn-01', 'dns-01'], pref: ['tls-alpn-01', 'http-01'], want: 'tls-alpn-01' },
    { desc: 'skips what the CA does not offer', offered: ['http-01', 'dns-01'], pref: ['tls-alpn-01', 'http-01'], want: 'http-01' },
    { desc: 'skips what warren has no solver for', offered: ['http-01', 'dns-01'], pref: ['dns-01', 'http-01'], want: 'http-01', solvers: ['http-01'] },
  ])('$desc', ({ offered, pref, want, solvers }) => {
    const all = Object.fromEntries((solvers ?? ['http-01', 'tls-alpn-01', 'dns-01']).map((t) => [t, solver]))
    expect(pickChallenge(authz('a.test', [...offered]), pref as never, all).type).toBe(want as never)
  })

  test('a wildcard only ever uses dns-01, and says so when it cannot', () => {
    expect(pickChallenge(authz('a.test', ['dns-01'], true), ['http-01', 'dns-01'], { 'http-01': solver, 'dns-01': solver }).type).toBe('dns-01')
    expect(() => pickChallenge(authz('a.test', ['dns-01'], true), ['http-01'], { 'http-01': solver })).toThrow(
      'no usable challenge for "a.test" (wildcard: needs dns-01 and tls.acme.dns_hook): the CA offers dns-01, warren is set up for none',
    )
  })
})

describe('registerAccount() errors', () => {
  // A fake ACME server: the directory answers with a problem document and Retry-After.
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    fetch: () =>
      new Response(JSON.stringify({ type: 'urn:ietf:params:acme:error:serverInternal', detail: 'maintenance', status: 503 }), {
        status: 503,
        headers: { 'content-type': 'application/problem+json', 'retry-after': '120' },
      }),
  })
  afterAll(() => void server.stop(true))
  configureAcmeHttp({})

  test('a server that is not there: one clear sentence with the URL and the errno', async () => {
    const closed = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
    const port = closed.port
    closed.stop(true)
    const key = await createKey()
    const scope: ProblemScope = {}
    const err = await withProblemScope(scope, () => registerAccount({ directory: `http://127.0.0.1:${port}/dir`, accountKey: key })).catch((e: Error) => e)
    expect(String((err as Error).message)).toMatch(new RegExp(`^register the ACME account: cannot reach http://127\\.0\\.0\\.1:${port}/dir: .*ECONNREFUSED`))
    expect(scope).toEqual({})
  })

  test('a problem document and Retry-After land in the scope', async () => {
    const key = await createKey()
    const scope: ProblemScope = {}
    await expect(withProblemScope(scope, () => registerAccount({ directory: `http://127.0.0.1:${server.port}/dir`, accountKey: key }))).rejects.toThrow('register the ACME account')
    expect(scope).toEqual({ problem: { type: 'urn:ietf:params:acme:error:serverInternal', detail: 'maintenance', status: 503 }, retryAfterMs: 120_000 })
  })
})
