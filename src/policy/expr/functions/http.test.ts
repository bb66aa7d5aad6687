import { describe, expect, test } from 'bun:test'
import { compileMessage, evalCel, testExchange } from '../testing.ts'

function exchange() {
  return testExchange(
    {
      url: '/search?q=a&q=b&empty=',
      headers: { 'user-agent': 'curl/8.5.0', 'x-version-id': '7', cookie: 'session=abc; theme=dark; session=second' },
    },
    {
      response: {
        status: 200,
        headers: new Headers([
          ['content-type', 'application/json'],
          ['set-cookie', '_device_id=mobile-phone-14; Path=/; Max-Age=86400; HttpOnly'],
          ['set-cookie', '_device_id=desktop; Path=/account; Secure; SameSite=Lax; Priority=High'],
        ]),
      },
    },
  )
}

describe('request and response macros read the current exchange', () => {
  test.each([
    { expr: "getReqHeader('User-Agent')", want: ['curl/8.5.0'] },
    { expr: "getReqHeader('user-agent') == getReqHeader('USER-AGENT')", want: true },
    { expr: "getReqHeader('X-Missing')", want: [] },
    { expr: "getReqHeader('User-Agent').exists(v, v.matches('(?i)CURL'))", want: true },
    { expr: "hasReqHeader('X-Version-Id')", want: true },
    { expr: "hasReqHeader('Authorization')", want: false },
    { expr: "getQueryParam('q')", want: ['a', 'b'] },
    { expr: "size(getQueryParam('nope')) == 0", want: true },
    { expr: "hasQueryParam('empty') && !hasQueryParam('nope')", want: true },
    { expr: "getReqCookie('session').value", want: 'abc', desc: 'the first of several, in header order' },
    { expr: "getReqCookie('theme').name", want: 'theme' },
    { expr: "getReqCookie('nope').value", want: '' },
    { expr: "getReqCookie('session').secure", want: false },
    { expr: "hasReqCookie('session') && !hasReqCookie('nope')", want: true },
    { expr: "getResHeader('Content-Type')", want: ['application/json'] },
    { expr: "size(getResHeader('Content-Type').filter(v, v.matches('application/json'))) > 0", want: true },
    { expr: "hasResHeader('content-type') && !hasResHeader('x-nope')", want: true },
    { expr: "getResCookie('_device_id').value", want: 'desktop', desc: 'the longest path wins' },
    { expr: "getResCookie('_device_id').same_site", want: 'Lax' },
    { expr: "getResCookie('_device_id').unparsed_attributes['Priority']", want: 'High' },
    { expr: "getResCookie('_device_id').?max_age.hasValue()", want: false, desc: 'has() only takes variable paths in cel-js' },
    { expr: "!('_device_id' in req.cookies)", want: true },
    { expr: "res.cookies['_device_id'][1].max_age == duration('24h')", want: true },
    { expr: "hasResCookie('_device_id') && !hasResCookie('nope')", want: true },
    { expr: 'getReqHeader(vars.name)', want: ['7'], desc: 'the name may come from a variable' },
  ])('$expr', ({ expr, want }) => {
    const ex = exchange()
    ex.vars = { name: 'x-version-id' }
    expect(evalCel(expr, ex)).toEqual(want)
  })

  test.each([
    { expr: 'getReqHeader(1)', phase: 'on_http_request', error: /getReqHeader\(\) takes a string, got int \(at column 14\)/ },
    { expr: "getReqHeader('a', 'b')", phase: 'on_http_request', error: /no matching overload/ },
    { expr: "getResHeader('x')", phase: 'on_http_request', error: /getResHeader\(\) is only available in on_http_response/ },
    { expr: "hasResCookie('x')", phase: 'on_http_request', error: /only available in on_http_response/ },
    { expr: "getReqHeader('x')", phase: 'on_tcp_connect', error: /getReqHeader\(\) is only available in on_http_request, on_http_response and on_event_stream_message/ },
    { expr: "getReqCookie('s').nope", phase: 'on_http_request', error: /No such key: nope/ },
  ] as const)('load error in $phase: $expr', ({ expr, phase, error }) => {
    expect(compileMessage(expr, phase)).toMatch(error)
  })

  test('request macros work in on_http_response too', () => {
    expect(compileMessage("getReqHeader('x')", 'on_http_response')).toBeUndefined()
  })
})
