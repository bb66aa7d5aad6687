import { describe, expect, test } from 'bun:test'
import { celContext } from '../context.ts'
import { environmentFor } from './env.ts'
import { compileFast, fastSource } from './fast.ts'
import { rewrite } from './rewrite.ts'
import { testExchange } from './testing.ts'

type Program = (context: Record<string, unknown>) => unknown

function programs(expr: string): { full: Program; fast: Program | undefined } {
  const env = environmentFor('on_http_request')
  const parsed = env.parse(rewrite(expr, env).text)
  if (!parsed.check().valid) throw new Error(`does not check: ${expr}`)
  return { full: parsed as unknown as Program, fast: compileFast((parsed as unknown as { ast: unknown }).ast) }
}

function outcome(program: Program, context: Record<string, unknown>): { value: unknown } | { error: true } {
  try {
    return { value: program(context) }
  } catch {
    return { error: true }
  }
}

const exchanges = () => [
  testExchange({ method: 'GET', url: '/api/v1?a=1&a=2&b=', headers: { 'user-agent': 'curl/8.0', 'x-list': 'one', cookie: 'k=v' } }, { vars: { n: 3n, d: 3, s: 'x', flag: true, nested: { k: 'v' } } }),
  testExchange({ method: 'POST', url: '/', headers: { 'content-length': '2', 'x-debug': '1' }, client_ip: '10.1.2.3', body: 'hi' }, { vars: { flag: 'not a bool' } }),
  testExchange({ method: 'DELETE', url: '/h%C3%A9llo', headers: { 'user-agent': 'Googlebot/2.1' }, client_ip: '::1' }),
]

const EXPRESSIONS = [
  "req.method == 'GET'",
  "req.method != 'GET' && req.url.path.startsWith('/api')",
  "req.url.path.endsWith('llo') || req.url.path.contains('v1')",
  "req.url.path.matches('^/(api|h)')",
  "inCidrRange(conn.client_ip, '10.0.0.0/8')",
  "inCidrRange(conn.client_ip, 'not a cidr')",
  "'x-debug' in req.headers",
  "req.method in ['GET', 'POST']",
  "req.headers['x-list'][0] == 'one'",
  "req.headers['x-missing'][0] == 'one'",
  // ngrok's examples write header names as sent: both evaluators look them up case-insensitively.
  "'X-Debug' in req.headers",
  "req.headers['X-List'][0] == 'one'",
  "req.headers['User-Agent'][0].startsWith('curl')",
  "req.url.query_params['a'][1]",
  'size(req.url.query_params) > 1',
  'size(req.url.path)',
  'string(conn.client_port)',
  'req.content_length > 1',
  'req.content_length >= 2 ? "big" : "small"',
  'req.user_agent.is_bot',
  "req.user_agent == 'curl/8.0'",
  "req.user_agent.contains('curl')",
  "req.url == 'https://api.example.com/'",
  'vars.flag',
  '!vars.flag',
  'vars.flag && true',
  'false && vars.flag',
  'vars.flag || true',
  'vars.n == 3',
  'vars.d == 3',
  'vars.n > 2.5',
  'vars.d < 4.0',
  "vars.s == 'x'",
  "vars.nested.k == 'v'",
  "vars.missing == 'x'",
  'vars.s == null',
  'conn.ts.start',
  'endpoint.port == 443',
]

/** Values only cel-js handles: int/double mixes, null against a value, missing keys. */
const DECLINED = new Set([
  "req.headers['x-missing'][0] == 'one'",
  'vars.n > 2.5',
  'vars.d == 3',
  'vars.s == null',
  "vars.missing == 'x'",
])

describe('fast programs give what cel-js gives (or hand over to it)', () => {
  test.each(EXPRESSIONS)('%s', (expr) => {
    const { full, fast } = programs(expr)
    expect(fast).toBeDefined()
    let answered = 0
    for (const ex of exchanges()) {
      const context = celContext(ex)
      const want = outcome(full, context)
      const got = outcome(fast!, context)
      // A fast program may decline (throw) where cel-js has an answer; it must never answer differently.
      if ('value' in got) {
        expect(want).toEqual(got)
        answered++
      }
    }
    expect(answered > 0).toBe(!DECLINED.has(expr))
  })

  test('the common shapes answer without cel-js', () => {
    const context = celContext(exchanges()[0]!)
    for (const expr of ["req.method == 'GET'", "inCidrRange(conn.client_ip, '127.0.0.0/8')", "req.url.path.matches('^/api')", 'size(req.url.query_params) == 2', "'user-agent' in req.headers", 'vars.flag && vars.n == 3'])
      expect(programs(expr).fast!(context)).toBe(true)
  })
})

describe('shapes without a fast form are left to cel-js', () => {
  test.each(["has(req.url.path)", "[req.url.path].exists(u, u == '/')", "req.url.path + 'x' == '/x'", "vars.n == 1u", "lower(req.method) == 'get'", "req.?url.path == '/'"].filter((e) => {
    const env = environmentFor('on_http_request')
    return env.parse(rewrite(e, env).text).check().valid
  }))('%s', (expr) => {
    expect(programs(expr).fast).toBeUndefined()
  })
})

describe('generated code carries expression text only as JSON literals', () => {
  const hostile = [
    `"); globalThis.pwned = 1; ("`,
    `'); globalThis.pwned = 1; ('`,
    '\\"); globalThis.pwned = 1; //',
    '`${globalThis.pwned = 1}`',
    '\u2028globalThis.pwned = 1\u2029',
    '</script><script>globalThis.pwned = 1</script>',
  ]
  const g = globalThis as { pwned?: unknown }

  test.each(hostile)('a hostile string literal stays a string: %p', (payload) => {
    delete g.pwned
    for (const expr of [`req.method == ${JSON.stringify(payload)}`, `vars[${JSON.stringify(payload)}] == 'x'`, `req.url.path.startsWith(${JSON.stringify(payload)})`]) {
      const env = environmentFor('on_http_request')
      const ast = env.parse(rewrite(expr, env).text).ast
      const generated = fastSource(ast)!
      // The payload appears in the source only as a JSON string literal.
      expect(generated.source).toContain(JSON.stringify(payload))
      expect(generated.source.replaceAll(JSON.stringify(payload), '""')).not.toContain('pwned')
      const context = celContext(testExchange({}, { vars: { [payload]: 'x' } }))
      const fast = compileFast(ast)!
      expect(fast(context)).toBe(expr.startsWith('vars'))
      expect(g.pwned).toBeUndefined()
    }
  })

  test('field names are JSON literals too, and a prototype key is not a field', () => {
    const env = environmentFor('on_http_request')
    for (const key of ['__proto__', 'constructor', 'toString', 'a"]; globalThis.pwned = 1; //']) {
      const ast = env.parse(`vars[${JSON.stringify(key)}] == 'x'`).ast
      expect(fastSource(ast)!.source).toContain(JSON.stringify(key))
      const { full } = programs(`vars[${JSON.stringify(key)}] == 'x'`)
      const context = celContext(testExchange())
      expect(outcome(compileFast(ast)!, context)).toEqual({ error: true }) // declines: cel-js answers
      expect(outcome(full, context)).toEqual({ error: true }) // no such key
      expect(g.pwned).toBeUndefined()
    }
  })

  test('numbers and ints are constants, not source text', () => {
    const env = environmentFor('on_http_request')
    const generated = fastSource(env.parse('req.content_length > 123456789 && vars.d < 1.5e300').ast)!
    expect(generated.source).not.toContain('123456789')
    expect(generated.constants).toContain(123456789n)
    expect(generated.constants).toContain(1.5e300)
  })
})

describe('one header read from the Headers gives what the map of every header gives', () => {
  const SHAPES = [
    "res.headers['set-cookie']",
    "res.headers['Set-Cookie'][1]",
    "size(res.headers['set-cookie']) == 2",
    "req.headers['x-list']",
    "req.headers['cookie'][0].startsWith('k=')",
    "req.headers['x-none']",
    "'set-cookie' in res.headers",
  ]
  test.each(SHAPES)('%s', (expr) => {
    const env = environmentFor('on_http_response')
    const parsed = env.parse(rewrite(expr, env).text)
    expect(parsed.check().valid).toBe(true)
    const fast = compileFast(parsed.ast)!
    const response = { status: 200, headers: new Headers([['set-cookie', 'a=1; Path=/'], ['set-cookie', 'b=2'], ['x-res', 'v']]) }
    const ex = testExchange({ headers: { 'x-list': ['one', 'two'], cookie: 'k=v' } }, { response })
    const context = celContext(ex)
    const want = outcome(parsed as unknown as Program, context)
    const got = outcome(fast, context)
    // Declines only where cel-js fails (a missing header).
    expect(got).toEqual(want)
  })
})
