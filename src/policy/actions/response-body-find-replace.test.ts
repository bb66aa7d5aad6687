import { describe, expect, test } from 'bun:test'
import { exchange, loadError, run } from '../../../test/helpers/actions.ts'

const json = '{"user":"ann","ssn":"123-45-6789","stack_trace":"at x.go:1"}'

describe('response-body-find-replace config', () => {
  test.each<{ desc: string; phase: 'on_http_request' | 'on_http_response'; config: unknown; want: RegExp | undefined }>([
    { desc: 'one rule', phase: 'on_http_response', config: { replacements: [{ from: 'a' }] }, want: undefined },
    { desc: 'no rules', phase: 'on_http_response', config: { replacements: [] }, want: /at least one replacement/ },
    { desc: 'not in on_http_request', phase: 'on_http_request', config: { replacements: [{ from: 'a' }] }, want: /cannot run in on_http_request/ },
  ])('$desc', ({ phase, config, want }) => {
    const got = loadError({ type: 'response-body-find-replace', phase, config })
    if (want) expect(got).toMatch(want)
    else expect(got).toBeUndefined()
  })
})

describe('response-body-find-replace at runtime', () => {
  test('rewrites the response body and its Content-Length', async () => {
    const ex = exchange('http://a.test/', {
      response: { status: 200, headers: new Headers({ 'content-type': 'application/json', 'content-length': String(json.length) }), body: new Response(json).body! },
    })
    await run(
      {
        type: 'response-body-find-replace',
        phase: 'on_http_response',
        config: { replacements: [{ from: '\\b\\d{3}-\\d{2}-\\d{4}\\b', to: '[SSN REDACTED]' }, { from: '"stack_trace":\\s*"[^"]*"', to: '"stack_trace":"[HIDDEN]"' }] },
      },
      ex,
    )
    const out = await new Response(ex.response!.body).text()
    expect(JSON.parse(out)).toEqual({ user: 'ann', ssn: '[SSN REDACTED]', stack_trace: '[HIDDEN]' })
    expect(ex.response!.headers.get('content-length')).toBe(String(Buffer.byteLength(out)))
    expect((ex.actions['response_body_find_replace'] as { replacements: unknown[] }).replacements).toHaveLength(2)
  })

  test('a response without a body is left alone', async () => {
    const ex = exchange('http://a.test/', { response: { status: 204, headers: new Headers(), body: null } })
    await run({ type: 'response-body-find-replace', phase: 'on_http_response', config: { replacements: [{ from: 'a' }] } }, ex)
    expect(ex.response!.body).toBeNull()
    expect(ex.actions['response_body_find_replace']).toEqual({ replacements: [] })
  })
})
