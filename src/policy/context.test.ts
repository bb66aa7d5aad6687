import { describe, expect, test } from 'bun:test'
import type { ObjectSchema } from '@marcbachmann/cel-js'
import { celContext, EXCHANGE_READS, VARIABLE_CLASSES } from './context.ts'
import { FAST_RUNTIME } from './expr/fast.ts'
import { SCHEMAS } from './expr/variables.ts'
import { evalCel, testExchange } from './expr/testing.ts'
import { toPlain } from './expr/values.ts'
import type { HttpExchange } from './types.ts'

const STARTED = Date.parse('2024-05-06T07:08:09.010Z')

function exchange(): HttpExchange {
  const ex = testExchange(
    {
      method: 'post',
      url: 'https://user:pw@api.example.com:8443/v1/users?id=7&id=8&x=y',
      client_ip: '203.0.113.9',
      headers: {
        'user-agent': 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1',
        'content-type': 'text/html; charset="utf-8"; boundary=x',
        'content-encoding': 'gzip, br',
        'content-length': '12',
        cookie: 'a=1; b=2; a=3',
        location: '/index.html',
        'x-multi': ['one', 'two'],
      },
    },
    {
      httpVersion: 'HTTP/2.0',
      vars: { name: 'v' },
      actions: { rate_limit: { limited: false } },
      response: {
        status: 302,
        headers: new Headers([
          ['content-type', 'application/json'],
          ['content-length', '99'],
          ['location', 'https://elsewhere.example/'],
          ['content-encoding', 'br'],
          ['set-cookie', 'sid=xyz; Domain=.example.com; Path=/; Expires=Wed, 21 Oct 2026 07:28:00 GMT; Secure; HttpOnly; SameSite=Strict'],
        ]),
      },
    },
  )
  return Object.assign(ex, {
    conn: { ...ex.conn, clientPort: 51000, serverIp: '192.0.2.1', serverPort: 8443, startedAt: STARTED, tls: { version: '1.3', cipherSuite: 'TLS_AES_128_GCM_SHA256', sni: 'api.example.com', alpn: 'h2' } },
  })
}

describe('celContext() has every ngrok variable warren supports', () => {
  test.each([
    // conn
    { expr: 'conn.client_ip', want: '203.0.113.9' },
    { expr: 'conn.client_port', want: 51000n },
    { expr: 'conn.server_ip', want: '192.0.2.1' },
    { expr: 'conn.server_port', want: 8443n },
    { expr: 'conn.server_region', want: '' },
    { expr: 'conn.ts.start', want: new Date(STARTED) },
    { expr: 'conn.tls.version', want: '1.3' },
    { expr: 'conn.tls.cipher_suite', want: 'TLS_AES_128_GCM_SHA256' },
    { expr: 'conn.tls.sni', want: 'api.example.com' },
    { expr: 'conn.tls.negotiated_alpn', want: 'h2' },
    { expr: 'conn.tls.session_resumed', want: false },
    { expr: 'conn.tls.ja4_fingerprint', want: '' },
    { expr: 'conn.geo.country_code', want: '' },
    { expr: "[conn.geo.city, conn.geo.country, conn.geo.latitude, conn.geo.longitude, conn.geo.radius, conn.geo.subdivision].all(f, f == '')", want: true },
    // endpoint
    { expr: 'endpoint.id', want: 'ep_test' },
    { expr: 'endpoint.url', want: 'https://api.example.com' },
    { expr: 'endpoint.addr', want: 'api.example.com:443' },
    { expr: 'endpoint.host', want: 'api.example.com' },
    { expr: 'endpoint.port', want: 443n },
    { expr: 'endpoint.protocol', want: 'https' },
    { expr: 'endpoint.binding', want: 'public' },
    // req
    { expr: 'req.method', want: 'POST' },
    { expr: 'req.version', want: 'HTTP/2.0' },
    { expr: 'req.host', want: 'api.example.com:8443' },
    { expr: 'req.location', want: '/index.html' },
    { expr: 'req.url', want: 'https://user:pw@api.example.com:8443/v1/users?id=7&id=8&x=y' },
    { expr: 'req.url.raw', want: 'https://user:pw@api.example.com:8443/v1/users?id=7&id=8&x=y' },
    { expr: 'req.url.scheme', want: 'https' },
    { expr: 'req.url.authority', want: 'user:pw@api.example.com:8443' },
    { expr: 'req.url.user_password', want: 'user:pw' },
    { expr: 'req.url.host', want: 'api.example.com' },
    { expr: 'req.url.port', want: 8443n },
    { expr: 'req.url.path', want: '/v1/users' },
    { expr: 'req.url.raw_path', want: '/v1/users' },
    { expr: 'req.url.query', want: 'id=7&id=8&x=y' },
    { expr: 'req.url.uri', want: '/v1/users?id=7&id=8&x=y' },
    { expr: 'req.url.query_params', want: { id: ['7', '8'], x: ['y'] } },
    { expr: "req.headers['x-multi']", want: ['one, two'] },
    { expr: "'content-type' in req.headers", want: true },
    // Header names are case-insensitive, as ngrok's examples write them (`req.headers['X-Api-Version']`).
    { expr: "req.headers['X-Multi']", want: ['one, two'] },
    { expr: "'Content-Type' in req.headers", want: true },
    { expr: "has(req.headers.CONTENT_TYPE)", want: false },
    { expr: "req.headers.exists(name, name == 'content-type')", want: true },
    { expr: 'req.trailers', want: {} },
    { expr: 'req.content_length', want: 12n },
    { expr: 'req.content_encoding', want: ['gzip', 'br'] },
    { expr: 'req.content_type', want: 'text/html' },
    { expr: 'req.content_type.raw', want: 'text/html; charset="utf-8"; boundary=x' },
    { expr: 'req.content_type.parameters', want: { charset: 'utf-8', boundary: 'x' } },
    { expr: "req.cookies['a'].map(c, c.value)", want: ['1', '3'] },
    { expr: "req.cookies.b[0].name + '=' + req.cookies.b[0].value", want: 'b=2' },
    { expr: 'size(req.cookies)', want: 2n },
    { expr: "req.user_agent.startsWith('Mozilla/5.0 (iPhone')", want: true },
    { expr: 'req.user_agent.name', want: 'Safari' },
    { expr: 'req.user_agent.version', want: '17.1' },
    { expr: 'req.user_agent.os', want: 'iOS' },
    { expr: 'req.user_agent.os_version', want: '17.1' },
    { expr: 'req.user_agent.device', want: 'iPhone' },
    { expr: 'req.user_agent.is_mobile && !req.user_agent.is_tablet && !req.user_agent.is_desktop && !req.user_agent.is_bot', want: true },
    { expr: 'req.user_agent.url', want: '' },
    { expr: 'req.ts.header_received', want: new Date(STARTED) },
    // res
    { expr: 'res.status_code', want: 302n },
    { expr: "res.headers['content-type']", want: ['application/json'] },
    { expr: "res.headers['Content-Type']", want: ['application/json'] },
    { expr: "'Location' in res.headers", want: true },
    { expr: 'res.content_type', want: 'application/json' },
    { expr: 'res.content_type.parameters', want: {} },
    { expr: 'res.content_length', want: 99n },
    { expr: 'res.content_encoding', want: ['br'] },
    { expr: 'res.location', want: 'https://elsewhere.example/' },
    { expr: 'res.trailers', want: {} },
    { expr: 'res.cookies.sid[0].domain', want: 'example.com' },
    { expr: 'res.cookies.sid[0].path', want: '/' },
    { expr: 'res.cookies.sid[0].expires', want: new Date('2026-10-21T07:28:00Z') },
    { expr: 'res.cookies.sid[0].secure && res.cookies.sid[0].http_only', want: true },
    { expr: 'res.cookies.sid[0].same_site', want: 'Strict' },
    // time, vars, actions
    { expr: "time.now.endsWith('Z') && timestamp(time.now) >= conn.ts.start", want: true },
    { expr: 'vars.name', want: 'v' },
    { expr: 'actions.ngrok.rate_limit.limited', want: false },
  ])('$expr', ({ expr, want }) => {
    expect(evalCel(expr, exchange())).toEqual(want)
  })

  test('defaults: no content length is -1, no TLS is empty, HTTP/1.1, the endpoint port', () => {
    const ex = testExchange({ url: '/' })
    expect(evalCel('req.content_length', ex)).toBe(-1n)
    expect(evalCel("conn.tls.version == '' && conn.tls.sni == ''", ex)).toBe(true)
    expect(evalCel('req.version', ex)).toBe('HTTP/1.1')
    expect(evalCel('req.url.port', ex)).toBe(443n)
    expect(evalCel('req.content_type', ex)).toBe('')
  })

  test('is lazy: nothing is read before an expression asks, and parsed values are kept', () => {
    const ex = exchange()
    let reads = 0
    const headers = ex.headers
    ex.headers = new Proxy(headers, {
      get(target, prop) {
        if (prop === 'get') reads++
        const value = Reflect.get(target, prop, target) as unknown
        return typeof value === 'function' ? value.bind(target) : value
      },
    })
    const ctx = celContext(ex)
    expect(reads).toBe(0)
    const req = ctx['req'] as Record<string, unknown>
    expect(reads).toBe(0)
    const cookies = req['cookies']
    expect(req['cookies']).toBe(cookies)
    expect(reads).toBe(1)
  })

  test('"string with fields" values encode as their text', () => {
    const req = celContext(exchange())['req'] as Record<string, unknown>
    expect(toPlain(req['url'])).toBe('https://user:pw@api.example.com:8443/v1/users?id=7&id=8&x=y')
    expect(toPlain(req['content_type'])).toBe('text/html')
  })
})

describe('VARIABLE_CLASSES', () => {
  const paths: [string, ObjectSchema][] = []
  const walk = (path: string, schema: ObjectSchema): void => {
    paths.push([path, schema])
    for (const [key, type] of Object.entries(schema)) if (typeof type !== 'string') walk(`${path}.${key}`, type)
  }
  for (const [name, schema] of Object.entries(SCHEMAS)) walk(name, schema)

  test.each(paths)('%s has a class with every declared field', (path, schema) => {
    const Class = VARIABLE_CLASSES[path]
    expect(Class).toBeDefined()
    for (const key of Object.keys(schema)) expect(key in Class!.prototype).toBe(true)
  })

  test('JSON of a whole variable lists its fields', () => {
    expect(evalCel('json.decode(json.encode(req)).url', exchange())).toBe('https://user:pw@api.example.com:8443/v1/users?id=7&id=8&x=y')
    expect(evalCel("json.encode(conn.geo)", exchange())).toBe('{"city":"","country":"","country_code":"","latitude":"","longitude":"","radius":"","subdivision":""}')
  })
})

describe('EXCHANGE_READS', () => {
  // Each read is fixed code over `ex`, as generated phases inline it.
  const read = (code: string, ex: HttpExchange): unknown => new Function('ex', 'rt', `return ${code}`)(ex, FAST_RUNTIME)
  const through = (path: string, ex: HttpExchange): unknown =>
    path.split('.').reduce<unknown>((value, key) => (value as Record<string, unknown>)[key], celContext(ex))

  test.each(Object.entries(EXCHANGE_READS))('%s reads what the variable gives', (path, code) => {
    for (const ex of [exchange(), testExchange({ method: 'GET', url: '/a%20b?q', client_ip: '::1' })]) {
      const [got, want] = [read(code, ex), through(path, ex)]
      // A timestamp is made per read; CEL compares its value.
      if (want instanceof Date) expect((got as Date).getTime()).toBe(want.getTime())
      else expect(got).toEqual(want)
    }
  })

  test('after the URL changes (forgetVariables), the read and the variable agree again', () => {
    const ex = exchange()
    ex.url = new URL('https://other.example/next')
    ex.variables = undefined
    expect(read(EXCHANGE_READS['req.url.path']!, ex)).toBe('/next')
    expect(through('req.url.host', ex)).toBe(read(EXCHANGE_READS['req.url.host']!, ex))
  })
})
