import { describe, expect, test } from 'bun:test'
import { celContext } from '../context.ts'
import { CelEvaluationError, compileCel, positionText } from './compile.ts'
import { compileMessage, evalCel, testExchange } from './testing.ts'

describe('compileCel() accepts', () => {
  test.each([
    { expr: "req.url.path.startsWith('/api')", phase: 'on_http_request' },
    { expr: "conn.client_ip in ['::1', '127.0.0.1']", phase: 'on_tcp_connect' },
    { expr: "req.method == 'POST' || req.method == 'PUT'", phase: 'on_http_request' },
    { expr: "'Fizz' in req.headers['baz']", phase: 'on_http_request' },
    { expr: 'vars.flag', phase: 'on_http_request', desc: 'a dyn result may be bool at run time' },
    { expr: 'res.status_code >= 300', phase: 'on_http_response' },
    { expr: "req.url == 'https://nba.com/'", phase: 'on_http_request' },
    { expr: "req.user_agent.contains('curl') && !req.user_agent.is_bot", phase: 'on_http_request' },
    { expr: "req.content_type == 'application/json' && req.content_type.raw != ''", phase: 'on_http_response' },
    { expr: "has(req.url.path) && has(req.url) && size(req.url) > 0", phase: 'on_http_request' },
    { expr: "req.url in ['a', 'b'] || [req.url].exists(u, u == 'a')", phase: 'on_http_request' },
    { expr: "actions.ngrok.rate_limit.limited == true", phase: 'on_http_request' },
    { expr: "endpoint.protocol == 'https' && time.now != ''", phase: 'on_tcp_connect' },
    { expr: "req.url.\n  path == '/'", phase: 'on_http_request', desc: 'over several lines' },
  ] as const)('$expr ($phase)', ({ expr, phase }) => {
    expect(compileMessage(expr, phase, 'bool')).toBeUndefined()
  })
})

describe('compileCel() reports at load, with the position inside the expression', () => {
  test.each([
    { expr: "req.url.path.startsWith(", phase: 'on_http_request', error: /Unexpected token: EOF \(at column 25\)$/ },
    { expr: "req.method == 'POST' &&", phase: 'on_http_request', error: /\(at column 24\)$/ },
    { expr: "req.method = 'POST'", phase: 'on_http_request', error: /\(at column 12\)$/ },
    { expr: "req.url.\n  path == ", phase: 'on_http_request', error: /\(at line 2, column 11\)$/ },
    { expr: "req.method == 1", phase: 'on_http_request', error: /no such overload: string == int \(at column 1\)/ },
    { expr: "req.headers['x-a'] == 'v'", phase: 'on_http_request', error: /no such overload: list<string> == string/ },
    { expr: "req.url.pth == '/'", phase: 'on_http_request', error: /No such key: pth \(at column 9\)/ },
    { expr: "req.url.path == '/' && req.url.nope", phase: 'on_http_request', error: /No such key: nope \(at column 32\)/ },
    { expr: 'req.url + 1', phase: 'on_http_request', error: /no such overload: string \+ int \(at column 1\)/ },
    { expr: "1 + 'a'", phase: 'on_http_request', error: /no such overload: int \+ string/ },
    { expr: "true ? 1 : 'a'", phase: 'on_http_request', error: /Ternary branches must have the same type/ },
    { expr: 'nope(1)', phase: 'on_http_request', error: /nope/ },
    { expr: "foo == 'x'", phase: 'on_http_request', error: /Unknown variable: foo/ },
    { expr: 'res.status_code == 200', phase: 'on_http_request', error: /Unknown variable: res \(res is not available in on_http_request\)/ },
    { expr: "req.method == 'GET'", phase: 'on_tcp_connect', error: /Unknown variable: req \(req is not available in on_tcp_connect\)/ },
    { expr: "1.matches('x')", phase: 'on_http_request', error: /'int\.matches\(string\)'/ },
    { expr: "'a'", phase: 'on_http_request', error: /it returns string, not bool$/ },
    { expr: 'req.url', phase: 'on_http_request', error: /it returns string, not bool$/ },
    { expr: 'req.headers', phase: 'on_http_request', error: /it returns map<string, list<string>>, not bool$/ },
  ] as const)('$expr ($phase)', ({ expr, phase, error }) => {
    const message = compileMessage(expr, phase, 'bool')
    expect(message).toStartWith(`invalid expression "${expr}": `)
    expect(message).toMatch(error)
    expect(message).not.toMatch(/__text|warrenMatches|warrenDayOfYear/)
  })

  test('the phase comes from the path, or from options', () => {
    expect('issue' in compileCel('res.status_code == 1', ['on_http_request'], 'bool')).toBe(true)
    expect('issue' in compileCel('res.status_code == 1', ['on_http_request'], 'bool', { phase: 'on_http_response' })).toBe(false)
    expect('issue' in compileCel('res.status_code == 1', ['somewhere'], 'bool')).toBe(false)
  })

  test('issues carry the code and the key path', () => {
    const compiled = compileCel('1 +', ['on_http_request', 2, 'expressions', 1], 'bool')
    expect(compiled).toMatchObject({ issue: { code: 'ERR_WARREN_2002', path: ['on_http_request', 2, 'expressions', 1] } })
  })
})

describe('evaluation', () => {
  test('returns CEL values', () => {
    expect(evalCel("req.url.path + '!'", testExchange({ url: '/a' }))).toBe('/a!')
    expect(evalCel('req.url.port * 2')).toBe(886n)
  })

  test('failures throw CelEvaluationError with the position', () => {
    const compiled = compileCel("req.url.path == '/' && vars.missing.x", ['on_http_request'], 'bool')
    if ('issue' in compiled) throw new Error(compiled.issue.message)
    let caught: unknown
    try {
      compiled.program(celContext(testExchange()))
    } catch (err) {
      caught = err
    }
    expect(caught).toBeInstanceOf(CelEvaluationError)
    expect((caught as CelEvaluationError).summary).toBe('No such key: missing')
    expect((caught as CelEvaluationError).message).toBe('No such key: missing (at column 29)')
    expect((caught as CelEvaluationError).expression).toBe("req.url.path == '/' && vars.missing.x")
  })

  test('positionText()', () => {
    expect(positionText('abc', 2)).toBe('column 3')
    expect(positionText('a\nbc', 3)).toBe('line 2, column 2')
  })
})
