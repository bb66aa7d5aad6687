import { describe, expect, test } from 'bun:test'
import { currentScope, formatProblem, problemOf, recordResponse, retryAfterMs, withProblemScope, type ProblemScope } from './problem.ts'

describe('problemOf()', () => {
  test.each([
    {
      desc: 'a problem+json body',
      data: { type: 'urn:ietf:params:acme:error:rateLimited', detail: 'too many certificates', status: 429 },
      want: { type: 'urn:ietf:params:acme:error:rateLimited', detail: 'too many certificates', status: 429 },
    },
    {
      desc: 'an invalid challenge carries its error',
      data: { type: 'http-01', status: 'invalid', error: { type: 'urn:ietf:params:acme:error:connection', detail: 'refused', status: 400 } },
      want: { type: 'urn:ietf:params:acme:error:connection', detail: 'refused', status: 400 },
    },
    {
      desc: 'an invalid authorization: the error of its challenge',
      data: { status: 'invalid', identifier: { type: 'dns', value: 'a.test' }, challenges: [{ type: 'dns-01', status: 'invalid', error: { type: 'urn:ietf:params:acme:error:dns', detail: 'no TXT' } }] },
      want: { type: 'urn:ietf:params:acme:error:dns', detail: 'no TXT' },
    },
    {
      desc: 'subproblems are kept',
      data: { type: 'urn:ietf:params:acme:error:compound', subproblems: [{ type: 'urn:ietf:params:acme:error:rejectedIdentifier', detail: 'no', identifier: { type: 'dns', value: 'x.local' } }, { nonsense: 1 }] },
      want: { type: 'urn:ietf:params:acme:error:compound', subproblems: [{ type: 'urn:ietf:params:acme:error:rejectedIdentifier', detail: 'no', identifier: { type: 'dns', value: 'x.local' } }] },
    },
    { desc: 'a valid order', data: { status: 'valid', identifiers: [] }, want: undefined },
    { desc: 'a PEM string', data: '-----BEGIN CERTIFICATE-----', want: undefined },
    { desc: 'nothing', data: undefined, want: undefined },
  ])('$desc', ({ data, want }) => {
    expect(problemOf(data)).toEqual(want as never)
  })
})

describe('retryAfterMs()', () => {
  test.each([
    { value: '120', want: 120_000 },
    { value: ' 5 ', want: 5000 },
    { value: 'Thu, 01 Jan 1970 00:01:40 GMT', want: 100_000 },
    { value: 'soon', want: undefined },
    { value: '', want: undefined },
    { value: undefined, want: undefined },
  ])('$value → $want', ({ value, want }) => {
    expect(retryAfterMs(value, 0)).toBe(want as number)
  })
})

test('formatProblem() puts type, detail, status and subproblems on one line', () => {
  expect(
    formatProblem({
      type: 'urn:ietf:params:acme:error:compound',
      detail: 'several',
      status: 400,
      subproblems: [{ type: 'urn:ietf:params:acme:error:caa', detail: 'CAA forbids', identifier: { type: 'dns', value: 'a.test' } }],
    }),
  ).toBe('urn:ietf:params:acme:error:compound: several (400); a.test: caa CAA forbids')
})

test('recordResponse() lands in the scope of the issuance that made the request, and only there', async () => {
  const a: ProblemScope = {}
  const b: ProblemScope = {}
  await Promise.all([
    withProblemScope(a, async () => {
      await Bun.sleep(5)
      recordResponse({ status: 429, headers: { 'retry-after': '30' }, data: { type: 'urn:ietf:params:acme:error:rateLimited', detail: 'slow down' } })
      expect(currentScope()).toBe(a)
    }),
    withProblemScope(b, async () => {
      recordResponse({ status: 200, data: { status: 'valid' } })
    }),
  ])
  recordResponse({ status: 400, data: { type: 'urn:ietf:params:acme:error:malformed' } })
  expect(a).toEqual({ problem: { type: 'urn:ietf:params:acme:error:rateLimited', detail: 'slow down' }, retryAfterMs: 30_000 })
  expect(b).toEqual({})
  expect(currentScope()).toBeUndefined()
})
