import { describe, expect, test } from 'bun:test'
import { linesOf } from '../../lib/header-lines.ts'
import { compile, exchange, loadError, run } from '../../../test/helpers/actions.ts'
import { runPhase } from '../engine.ts'
import { xorshift } from '../../../test/helpers/xorshift.ts'
import { headerValue } from './add-headers.ts'

describe('add-headers config', () => {
  test.each<{ desc: string; config: unknown; want: RegExp | undefined }>([
    { desc: 'one header', config: { headers: { 'x-a': '1' } }, want: undefined },
    { desc: 'headers required', config: {}, want: /^ERR_WARREN_2001: .*headers/ },
    { desc: 'at least one', config: { headers: {} }, want: /needs at least one header/ },
    { desc: 'invalid name', config: { headers: { 'bad name': '1' } }, want: /not a valid header name/ },
    { desc: 'bad template', config: { headers: { 'x-a': '${nope(' } }, want: /^ERR_WARREN_2002: / },
  ])('$desc', ({ config, want }) => {
    const got = loadError({ type: 'add-headers', config })
    if (want) expect(got).toMatch(want)
    else expect(got).toBeUndefined()
  })
})

describe('add-headers at runtime', () => {
  test('request: appends, templates, replaces host', async () => {
    const ex = exchange('http://a.test/p', { headersInit: { 'x-list': 'one' } })
    await run({ type: 'add-headers', config: { headers: { 'X-List': 'two', 'x-ip': '${conn.client_ip}', host: 'backend.local:3000' } } }, ex)
    expect(ex.headers.get('x-list')).toBe('one, two')
    expect(ex.headers.get('x-ip')).toBe('203.0.113.7')
    expect(ex.headers.get('host')).toBe('backend.local:3000')
    // No expression or template of that policy names `actions`: the result is not built.
    expect(ex.actions['add_headers']).toBeUndefined()
  })

  test('the result (actions.ngrok.add_headers.headers_added) is set where the policy reads it', async () => {
    const ex = exchange('http://a.test/p', { headersInit: { 'x-list': 'one' } })
    const policy = compile({
      on_http_request: [
        { actions: [{ type: 'add-headers', config: { headers: { 'X-List': 'two', 'x-ip': '${conn.client_ip}', host: 'backend.local:3000' } } }] },
        {
          expressions: ["actions.ngrok.add_headers.headers_added['x-ip'] == '203.0.113.7'"],
          actions: [{ type: 'set-vars', config: { vars: { seen: '${actions.ngrok.add_headers.headers_added.host}' } } }],
        },
      ],
    })
    await runPhase(policy.on_http_request, ex)
    expect(ex.actions['add_headers']).toEqual({ headers_added: { 'x-list': 'two', 'x-ip': '203.0.113.7', host: 'backend.local:3000' } })
    expect(ex.vars['seen']).toBe('backend.local:3000')
  })

  test('response: headers go on the response, not the request', async () => {
    const ex = exchange('http://a.test/p', { response: { status: 200, headers: new Headers({ 'content-type': 'text/plain' }), body: null } })
    await run({ type: 'add-headers', phase: 'on_http_response', config: { headers: { 'x-served-by': 'warren', 'x-status': '${res.status_code}' } } }, ex)
    expect(ex.response!.headers.get('x-served-by')).toBe('warren')
    expect(ex.response!.headers.get('x-status')).toBe('200')
    expect(ex.headers.has('x-served-by')).toBe(false)
  })

  test('response: an existing name gets another line (ngrok appends), not a joined value', async () => {
    const ex = exchange('http://a.test/p', { response: { status: 200, headers: new Headers({ 'x-tag': 'upstream' }), body: null } })
    await run({ type: 'add-headers', phase: 'on_http_response', config: { headers: { 'X-Tag': 'edge' } } }, ex)
    const headers = ex.response!.headers
    expect(linesOf(headers, 'x-tag', headers.get('x-tag')!)).toEqual(['upstream', 'edge'])
  })

  test('CR/LF from a template cannot split headers', async () => {
    const ex = exchange('http://a.test/p', { headersInit: { 'x-in': 'a' } })
    ex.vars['evil'] = 'a\r\nx-injected: 1'
    await run({ type: 'add-headers', config: { headers: { 'x-out': '${vars.evil}' } } }, ex)
    expect(ex.headers.get('x-out')).toBe('a x-injected: 1')
    expect(ex.headers.has('x-injected')).toBe(false)
  })
})

test('headerValue gives what replacing CR/LF/NUL runs with a space and trimming gives, over 20000 random values', () => {
  const chars = ['a', 'Z', '0', ' ', '\t', '\r', '\n', '\0', '\v', '\f', '\u00a0', '\u00e9', '\u2028', '\ufeff', '\u3000', '~', '\x7f', '"']
  const next = xorshift(7)
  for (let n = 0; n < 20000; n++) {
    const text = Array.from({ length: Math.floor(next() * 6) }, () => chars[Math.floor(next() * chars.length)]).join('')
    expect([text, headerValue(text)]).toEqual([text, text.replace(/[\r\n\0]+/g, ' ').trim()])
  }
  expect(headerValue('127.0.0.1')).toBe('127.0.0.1')
})
